/* The CUDA backend's matmuls, through cuBLASLt (kernels/cpu/kernels_cpu.h has the contracts:
 * row-major, weight (OC, C) as PyTorch nn.Linear, "backward accumulates").
 *  - fp32 entries (kcuda_matmul_forward/backward): fp32 in and out, TF32 tensor cores
 *    (CUBLAS_COMPUTE_32F_FAST_TF32: 10-bit mantissa products, fp32 accumulation), as PyTorch
 *    does with allow_tf32 on Ampere and newer.
 *  - bf16 entries (kcuda_matmul_bf16_*): the weight is the bf16 mirror of mixed precision; the
 *    fp32 activations are rounded to bf16 (nearest even) into the caller's scratch, one chunk of
 *    rows at a time, and the product runs bf16 x bf16 with fp32 accumulation
 *    (CUBLAS_COMPUTE_32F) into fp32 out — the same numbers as kcpu_matmul_bf16_* up to the
 *    order of the fp32 sums.
 *  - fp16 entries (kcuda_matmul_f16_*, fp16-mixed): the same three with IEEE fp16 operands
 *    (CUDA_R_16F; the weight is the fp16 mirror, activations and dout rounded to nearest even,
 *    beyond ±65504 to infinity, which loss scaling watches for), fp32 accumulation and fp32
 *    out: the CPU's emulation (kcpu_round_f16 on the operands, then the fp32 matmuls) up to the
 *    order of the fp32 sums. Both families share one implementation (struct lp_fmt names the
 *    16-bit format) and one scratch size, kcuda_matmul_bf16_scratch_bytes: the elements are
 *    2 bytes either way.
 *  - Forward bias: cuBLASLt's BIAS epilogue (fused into the GEMM's store). Backward: the input
 *    and weight gradients are GEMMs with beta = 1 (accumulate in place, C == D); the bias
 *    gradient is a deterministic two-pass column sum (partials in cuda_reduce_buf, then a
 *    fixed-order sum), so repeated runs give identical bits.
 *  - Row-major to cuBLASLt's column-major: a row-major (R, K) matrix is a column-major (K, R)
 *    one, so out(N,OC) = inp·Wᵀ is computed as outᵀ(OC,N) = op(W)·inpᵀ with op = transpose.
 *  - One cuBLASLt handle and one 32 MiB workspace (category workspace) made at start
 *    (kcuda_matmul_init); the heuristic's algorithm, descriptors and layouts are cached per
 *    shape (transposes, m, n, k, leading dimensions, types, epilogue, beta, pointer alignment).
 * The bf16 and fp16 weight gradients round a chunk of dout rows and the same rows of inp to 16
 * bits (one scratch holds both) and accumulate dW chunk by chunk (beta = 1), so their 16-bit
 * GEMMs run at twice TF32's rate on the third of the matmul FLOPs the weight gradients are, as
 * PyTorch's autocast does.
 *  - The GELU MLP's first matmul may fuse GELU (kcuda_matmul_gelu_forward): cuBLASLt's
 *    GELU_AUX_BIAS epilogue writes gelu(x·Wᵀ + b) to D and the pre-activation to the aux
 *    buffer the backward needs; an algorithm is looked for with the epilogue, then with the
 *    bias alone, then plain, and lt_run finishes what the chosen one did not (bias kernel,
 *    copy to aux and kcuda_gelu_forward), so every entry works on any GPU. Its backward
 *    partner (kcuda_matmul_backward_input_dgelu) is the second matmul's input-gradient GEMM
 *    with the DGELU epilogue, reading the pre-activation as aux: d(pre) in one GEMM, written
 *    (beta 0); its fallback scales the plain product by gelu' (dgelu_inplace_kernel).
 *  - bf16 activations (the _a16 entries, backend.h): the activation operand is bf16 already, so
 *    the GEMMs read it in place (no rounding pass, no chunks in the forward); D is fp32 or bf16
 *    (CUDA_R_16BF: cuBLASLt rounds the fp32 result once, nearest even), the bias and the GELU
 *    aux take D's type as cuBLASLt requires. Where no algorithm takes the BIAS epilogue with a
 *    bf16 D, D is filled with the bias and the GEMM adds to it (beta 1), so the sum is still
 *    rounded once. The backward rounds dout chunk by chunk as the 16-bit backward does (the
 *    same pass sums the bias gradient, and with dout_pre takes dout through a GELU); with a
 *    bf16 pre-activation it scales the written input gradient by gelu'(pre) in a pass of its own
 *    rather than hand cuBLASLt's DGELU a bf16 aux beside an fp32 D. The forward may add a
 *    residual in its epilogue (C = the residual, beta 1).
 * Not here: the int8 weight-only matmul. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define LT_CACHE_MAX 256

static cublasLtHandle_t g_lt;
static void *g_lt_ws;

/* ---------------------------------------------------------------- small kernels */

/* The 16-bit value nearest x, round to nearest even (both conversions are RN; fp16 overflows
 * to infinity at 65520). */
static __device__ __forceinline__ void store_16(__nv_bfloat16 *p, float x)
{
    *p = __float2bfloat16(x);
}
static __device__ __forceinline__ void store_16(__half *p, float x)
{
    *p = __float2half_rn(x);
}

/* src[i], or with a GELU pre-activation gelu'(pre[i])·src[i] (the gradient through the GELU, as
 * dgelu_inplace_kernel computes it). */
static __device__ __forceinline__ float grad_in(const float *src, const __nv_bfloat16 *pre,
                                                size_t i)
{
    return pre ? kc_gelu_grad(kc_ld(&pre[i])) * src[i] : src[i];
}

/* dst[i] = T(grad_in(src, pre, i)) for T = __nv_bfloat16 or __half; pre may be NULL. */
template <typename T>
__global__ static void f32_to_16_kernel(T *dst, const float *src, const __nv_bfloat16 *pre,
                                        size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        store_16(&dst[i], grad_in(src, pre, i));
}

/* d[i] *= gelu'(pre[i]) for fp32 or bf16 pre (widened): the DGELU epilogue's fallback, and the
 * bf16-activation backward's GELU step. */
template <typename T> __global__ static void dgelu_inplace_kernel(float *d, const T *pre, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        d[i] = kc_gelu_grad(kc_ld(&pre[i])) * d[i];
}

/* d[0..n) *= gelu'(pre[0..n)). */
template <typename T> static void dgelu_inplace(float *d, const T *pre, size_t n)
{
    unsigned blocks = cuda_blocks(n, 256), cap = cuda_fill_blocks(256, 8);
    dgelu_inplace_kernel<<<blocks < cap ? blocks : cap, 256, 0, cuda_stream()>>>(d, pre, n);
    CUDA_LAUNCH_CHECK();
}

/* out(N,OC) += bias(OC) per row: the fallback when no algorithm takes the BIAS epilogue. */
__global__ static void add_bias_kernel(float *out, const float *bias, size_t N, int OC)
{
    size_t total = N * (size_t)OC;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] += bias[i % (size_t)OC];
}

/* out(N,OC) = bias(OC) on every row (2-byte elements): with a bf16 D, the BIAS epilogue's
 * fallback fills D with the bias and runs the GEMM with beta = 1, so the sum is rounded to bf16
 * once, as the epilogue rounds it (adding the bias to a rounded D would round twice). */
__global__ static void fill_rows_kernel(uint16_t *out, const uint16_t *bias, size_t N, int OC)
{
    size_t total = N * (size_t)OC;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] = bias[i % (size_t)OC];
}

/* Pass 1 of dbias: block (32, 8) sums column bx·32+tx over rows by·8+ty, by·8+ty+gy·8, ...;
 * the 8 row-lanes are combined in shared memory in a fixed order. With one row-block
 * (gridDim.y == 1) it adds straight into dbias; otherwise it writes partial[by·OC + c]. With
 * dst, it also stores the 16-bit rounding of every element it reads there (dst has dout's
 * layout): the backward's rounding pass and the bias gradient's read of dout in one. With pre,
 * every element is taken through the GELU first (grad_in). */
#define BG_TX 32
#define BG_TY 8
template <typename T>
__global__ static void bias_grad_pass1(T *dst, float *dbias, float *partial, const float *dout,
                                       const __nv_bfloat16 *pre, int N, int OC)
{
    __shared__ float s[BG_TY][BG_TX + 1];
    int c = blockIdx.x * BG_TX + threadIdx.x;
    float acc = 0.0f;
    if (c < OC)
        for (int r = blockIdx.y * BG_TY + threadIdx.y; r < N; r += gridDim.y * BG_TY) {
            float v = grad_in(dout, pre, (size_t)r * OC + c);
            acc += v;
            if (dst)
                store_16(&dst[(size_t)r * OC + c], v);
        }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || c >= OC)
        return;
    float sum = 0.0f;
    for (int y = 0; y < BG_TY; y++)
        sum += s[y][threadIdx.x];
    if (gridDim.y == 1)
        dbias[c] += sum;
    else
        partial[(size_t)blockIdx.y * OC + c] = sum;
}

/* Pass 2: dbias[c] += Σ_y partial[y·OC + c] in order y = 0, 1, ... */
__global__ static void bias_grad_pass2(float *dbias, const float *partial, int OC, int gy)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC)
        return;
    float sum = 0.0f;
    for (int y = 0; y < gy; y++)
        sum += partial[(size_t)y * OC + c];
    dbias[c] += sum;
}

/* dbias(OC) += Σ_rows dout(N,OC); with dst16, also dst16 = the 16-bit rounding of dout (T:
 * __nv_bfloat16 or __half); with pre, of dout taken through the GELU (grad_in) for both. */
template <typename T>
static void bias_grad_ex(T *dst16, float *dbias, const float *dout, const __nv_bfloat16 *pre,
                         int N, int OC)
{
    int gy = CUDA_REDUCE_FLOATS / OC;
    if (gy > 64)
        gy = 64;
    int max_gy = (N + BG_TY - 1) / BG_TY;
    if (gy > max_gy)
        gy = max_gy;
    if (gy < 1)
        gy = 1;
    dim3 grid((unsigned)((OC + BG_TX - 1) / BG_TX), (unsigned)gy);
    dim3 block(BG_TX, BG_TY);
    bias_grad_pass1<<<grid, block, 0, cuda_stream()>>>(dst16, dbias, cuda_reduce_buf(), dout,
                                                       pre, N, OC);
    CUDA_LAUNCH_CHECK();
    if (gy > 1) {
        bias_grad_pass2<<<cuda_blocks((size_t)OC, 256), 256, 0, cuda_stream()>>>(
            dbias, cuda_reduce_buf(), OC, gy);
        CUDA_LAUNCH_CHECK();
    }
}

static void bias_grad(float *dbias, const float *dout, int N, int OC)
{
    bias_grad_ex<__nv_bfloat16>(NULL, dbias, dout, NULL, N, OC);
}

/* The 16-bit operand format of a reduced-precision matmul entry. */
struct lp_fmt {
    cudaDataType_t type; /* CUDA_R_16BF (bf16-mixed) or CUDA_R_16F (fp16-mixed) */
    const char *name;    /* "bf16" or "f16": the entries' names, for messages */
};
static const struct lp_fmt LP_BF16 = {CUDA_R_16BF, "bf16"};
static const struct lp_fmt LP_F16 = {CUDA_R_16F, "f16"};

/* dst[0..n) = the format's rounding of src[0..n) (dst: 2-byte elements). */
static void to_16(const struct lp_fmt *f, void *dst, const float *src, size_t n,
                  const __nv_bfloat16 *pre = NULL)
{
    unsigned blocks = cuda_blocks(n, 256);
    unsigned cap = cuda_fill_blocks(256, 8);
    blocks = blocks < cap ? blocks : cap;
    if (f->type == CUDA_R_16F)
        f32_to_16_kernel<<<blocks, 256, 0, cuda_stream()>>>((__half *)dst, src, pre, n);
    else
        f32_to_16_kernel<<<blocks, 256, 0, cuda_stream()>>>((__nv_bfloat16 *)dst, src, pre, n);
    CUDA_LAUNCH_CHECK();
}

/* dst[0..rows·OC) = the format's rounding of dout's rows and dbias(OC) += their column sums, in
 * one pass over dout (bias_grad_ex). */
static void to_16_bias(const struct lp_fmt *f, void *dst, float *dbias, const float *dout,
                       const __nv_bfloat16 *pre, int rows, int OC)
{
    if (f->type == CUDA_R_16F)
        bias_grad_ex((__half *)dst, dbias, dout, pre, rows, OC);
    else
        bias_grad_ex((__nv_bfloat16 *)dst, dbias, dout, pre, rows, OC);
}

/* ---------------------------------------------------------------- cuBLASLt wrapper */

/* One GEMM in cuBLASLt's column-major terms: D(m,n) = alpha·op(A)·op(B) + beta·D [+ bias(m)].
 * D is CUDA_R_32F, or CUDA_R_16BF (the bf16-activation forward, always written: beta 0). */
struct lt_gemm {
    cublasOperation_t ta, tb;
    int m, n, k;
    int64_t lda, ldb, ldd;
    cudaDataType_t ab_type, d_type;
    cublasComputeType_t compute;
    const void *A, *B;
    void *D;
    const void *bias; /* of D's type (cuBLASLt's rule for the bias); NULL: no epilogue */
    float beta;
    /* GELU fused (kcuda_matmul_gelu_forward): D = gelu(product + bias) and aux = product +
     * bias (ld ldd, D's type: cuBLASLt's default for the aux); NULL: no GELU. With dgelu, aux
     * is an fp32 input instead (kcuda_matmul_backward_input_dgelu; D fp32): D = product ·
     * gelu'(aux). */
    void *aux;
    bool dgelu;
    /* With beta != 0, the C it scales when that is not D (same layout as D, fp32 D only; the
     * residual-fused forward); NULL: C is D (in place). */
    const void *C;
};

struct lt_key {
    int ta, tb, m, n, k;
    int64_t lda, ldb, ldd;
    int ab_type, d_type, compute, bias, beta_nonzero, gelu;
    /* Pointer alignment (ptr_align) of A, B, D (C is D) and of the bias and aux together: each
     * matrix's own, so a 2-byte-aligned bf16 operand does not make the heuristic look for an fp32
     * D aligned to 2 bytes. */
    uint32_t align[4];
};

struct lt_plan {
    struct lt_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    bool use_epilogue; /* false: the bias is added by add_bias_kernel */
    bool gelu_fused;   /* the GELU_AUX(_BIAS) or DGELU epilogue; false: lt_run applies it */
};

static struct lt_plan g_cache[LT_CACHE_MAX];
static int g_cache_n;

/* The algorithm survey (kcuda_matmul_algo_select: bench_matmul only). Outside it (the default,
 * g_algo_survey false) a plan takes the heuristic's first algorithm, asking for that one alone.
 * In it, new plans ask for up to LT_ALGO_SURVEY_MAX and take the g_algo_index-th (the last
 * when fewer exist); g_algo_fewest is the fewest any plan built since the selection got. */
#define LT_ALGO_SURVEY_MAX 8
static bool g_algo_survey;
static int g_algo_index, g_algo_fewest;

/* Largest power of two (<= 256) dividing the non-NULL pointers: the alignment the heuristic may
 * assume. */
static uint32_t ptr_align(const void *x, const void *y = NULL)
{
    uint32_t a = 256;
    uintptr_t p = (uintptr_t)x | (uintptr_t)y;
    while (a > 1 && (p & (a - 1)))
        a >>= 1;
    return a;
}

static void plan_release(struct lt_plan *p)
{
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->d);
    cublasLtMatmulDescDestroy(p->op);
}

/* Descriptors and the heuristic's first algorithm for g; false when none exists. with_bias:
 * the BIAS epilogue; with_gelu: GELU_AUX (GELU_AUX_BIAS with the bias), writing the
 * pre-activation to g->aux. */
static bool plan_build(struct lt_plan *p, const struct lt_gemm *g, bool with_bias, bool with_gelu,
                       const uint32_t *align)
{
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, g->compute, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &g->ta,
                                                sizeof g->ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &g->tb,
                                                sizeof g->tb));
    if (with_bias || with_gelu) {
        cublasLtEpilogue_t epi = !with_gelu ? CUBLASLT_EPILOGUE_BIAS
                                 : g->dgelu ? CUBLASLT_EPILOGUE_DGELU
                                 : with_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                             : CUBLASLT_EPILOGUE_GELU_AUX;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
    }
    if (with_bias) {
        int32_t bias_type = g->d_type; /* cublasLt.h: the bias has D's type */
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &g->bias, sizeof g->bias));
    }
    if (with_gelu) {
        int64_t ld = g->ldd;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g->aux, sizeof g->aux));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                    &ld, sizeof ld));
    }
    /* Layouts describe the matrices as stored (before op). */
    bool at = g->ta == CUBLAS_OP_T, bt = g->tb == CUBLAS_OP_T;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, g->ab_type, (uint64_t)(at ? g->k : g->m),
                                            (uint64_t)(at ? g->m : g->k), g->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, g->ab_type, (uint64_t)(bt ? g->n : g->k),
                                            (uint64_t)(bt ? g->k : g->n), g->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, g->d_type, (uint64_t)g->m, (uint64_t)g->n,
                                            g->ldd));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = LT_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulPreferenceAttributes_t al[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    /* A, B, C, D (C and D together: C is D, or the residual-fused forward's input of D's
     * layout); the bias's and aux's alignment the heuristic reads from their pointers. */
    const uint32_t *al_val[] = {&align[0], &align[1], &align[2], &align[2]};
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++)
        CUBLAS_CHECK(
            cublasLtMatmulPreferenceSetAttribute(pref, al[i], al_val[i], sizeof(uint32_t)));
    cublasLtMatmulHeuristicResult_t res[LT_ALGO_SURVEY_MAX];
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_lt, p->op, p->a, p->b, p->d, p->d, pref,
                                                       g_algo_survey ? LT_ALGO_SURVEY_MAX : 1,
                                                       res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || nres < 1) {
        plan_release(p);
        return false;
    }
    int pick = 0;
    if (g_algo_survey) {
        pick = g_algo_index < nres ? g_algo_index : nres - 1;
        if (g_algo_fewest == 0 || nres < g_algo_fewest)
            g_algo_fewest = nres;
    }
    p->algo = res[pick].algo;
    p->use_epilogue = with_bias;
    p->gelu_fused = with_gelu;
    return true;
}

/* The cached plan for g (built on first use). Aborts when cuBLASLt has no algorithm even
 * without the epilogue: a shape or alignment this file never produces. */
static const struct lt_plan *plan_get(const struct lt_gemm *g, struct lt_plan *tmp)
{
    struct lt_key key;
    memset(&key, 0, sizeof key);
    key.ta = (int)g->ta;
    key.tb = (int)g->tb;
    key.m = g->m;
    key.n = g->n;
    key.k = g->k;
    key.lda = g->lda;
    key.ldb = g->ldb;
    key.ldd = g->ldd;
    key.ab_type = (int)g->ab_type;
    key.d_type = (int)g->d_type;
    key.compute = (int)g->compute;
    key.bias = g->bias != NULL;
    key.beta_nonzero = g->beta != 0.0f;
    key.gelu = g->aux == NULL ? 0 : g->dgelu ? 2 : 1;
    key.align[0] = ptr_align(g->A);
    key.align[1] = ptr_align(g->B);
    key.align[2] = ptr_align(g->D, g->C);
    key.align[3] = ptr_align(g->bias, g->aux);
    for (int i = 0; i < g_cache_n; i++)
        if (memcmp(&g_cache[i].key, &key, sizeof key) == 0)
            return &g_cache[i];
    struct lt_plan *p = g_cache_n < LT_CACHE_MAX ? &g_cache[g_cache_n] : tmp;
    memset(p, 0, sizeof *p);
    p->key = key;
    /* Fused as asked, else the bias alone, else a plain GEMM (lt_run does the rest). The GELU
     * epilogue's aux leading dimension must be a multiple of 8 (cuBLASLt's rule), so other
     * widths are not even offered to the heuristic. */
    bool bias = g->bias != NULL, gelu = g->aux != NULL && g->ldd % 8 == 0;
    if (!(gelu && plan_build(p, g, bias, true, key.align)) &&
        !plan_build(p, g, bias, false, key.align) &&
        !(bias && plan_build(p, g, false, false, key.align))) {
        fprintf(stderr,
                "cublasLt: no algorithm for m=%d n=%d k=%d (lda %lld ldb %lld ldd %lld, "
                "alignment of A %u, B %u, D %u bytes)\n",
                g->m, g->n, g->k, (long long)g->lda, (long long)g->ldb, (long long)g->ldd,
                key.align[0], key.align[1], key.align[2]);
        abort();
    }
    if (p != tmp)
        g_cache_n++;
    return p;
}

static void lt_run(const struct lt_gemm *g)
{
    if (g->m <= 0 || g->n <= 0)
        return;
    /* An empty product (k = 0) is D = beta·D (+ bias) without cuBLASLt, whose layouts would
     * have a leading dimension of 0; the bias and GELU follow below as unfused. */
    struct lt_plan tmp, empty;
    memset(&empty, 0, sizeof empty);
    const struct lt_plan *p = g->k > 0 ? plan_get(g, &tmp) : &empty;
    if (p->use_epilogue) /* the pointer may differ from the one the plan was built with */
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &g->bias, sizeof g->bias));
    if (p->gelu_fused)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g->aux, sizeof g->aux));
    float alpha = 1.0f, beta = g->beta;
    const bool d16 = g->d_type != CUDA_R_32F;
    const void *C = g->C ? g->C : g->D;
    if (g->C && (d16 || g->aux || g->beta == 0.0f)) /* this file never asks for it */
        cuda_fail(cudaErrorInvalidValue, "lt_run: a separate C needs an fp32 D, no aux, beta 1",
                  __FILE__, __LINE__);
    if (g->bias && !p->use_epilogue && d16) {
        /* Unfused bias, bf16 D (written, beta 0, ld m): D = bias, then the GEMM adds to it. */
        size_t total = (size_t)g->n * g->m;
        unsigned blocks = cuda_blocks(total, 256), cap = cuda_fill_blocks(256, 8);
        fill_rows_kernel<<<blocks < cap ? blocks : cap, 256, 0, cuda_stream()>>>(
            (uint16_t *)g->D, (const uint16_t *)g->bias, (size_t)g->n, g->m);
        CUDA_LAUNCH_CHECK();
        beta = 1.0f;
    }
    if (g->k <= 0) {
        if (beta == 0.0f)
            CUDA_CHECK(cudaMemsetAsync(g->D, 0,
                                       (size_t)g->ldd * g->n *
                                           (g->d_type == CUDA_R_32F ? 4 : 2),
                                       cuda_stream()));
        else if (C != g->D) /* D = C */
            CUDA_CHECK(cudaMemcpyAsync(g->D, C, (size_t)g->ldd * g->n * sizeof(float),
                                       cudaMemcpyDeviceToDevice, cuda_stream()));
    } else {
        CUBLAS_CHECK(cublasLtMatmul(g_lt, p->op, &alpha, g->A, p->a, g->B, p->b, &beta, C, p->d,
                                    g->D, p->d, &p->algo, g_lt_ws, LT_WORKSPACE_BYTES,
                                    cuda_stream()));
    }
    if (g->bias && !p->use_epilogue && !d16) {
        /* D is column-major (m, n) = row-major (n rows, m columns): bias runs along m. */
        size_t total = (size_t)g->n * g->m;
        unsigned blocks = cuda_blocks(total, 256), cap = cuda_fill_blocks(256, 8);
        add_bias_kernel<<<blocks < cap ? blocks : cap, 256, 0, cuda_stream()>>>(
            (float *)g->D, (const float *)g->bias, (size_t)g->n, g->m);
        CUDA_LAUNCH_CHECK();
    }
    size_t d_elems = (size_t)g->ldd * g->n;
    if (g->aux && !p->gelu_fused && g->dgelu) {
        /* Unfused DGELU: D holds the product; scale it by gelu'(aux) in place. */
        dgelu_inplace((float *)g->D, (const float *)g->aux, d_elems);
    } else if (g->aux && !p->gelu_fused) {
        /* Unfused: D holds the pre-activation; keep it in aux and write gelu(aux) to D. */
        size_t bytes = d_elems * (d16 ? 2 : sizeof(float));
        CUDA_CHECK(cudaMemcpyAsync(g->aux, g->D, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
        if (d16)
            kcuda_gelu_forward_a16((uint16_t *)g->D, (const uint16_t *)g->aux, d_elems);
        else
            kcuda_gelu_forward((float *)g->D, (const float *)g->aux, d_elems);
    }
    if (p == &tmp)
        plan_release(&tmp);
}

/* out(N,OC) = inp(N,C)·W(OC,C)ᵀ [+ bias] [+ res(N,OC)], row-major, as outᵀ = op_T(W)·inpᵀ;
 * with aux, out = gelu(that) and aux(N,OC) = that (the fused MLP forward); res (fp32 out, no
 * aux): the residual added in the GEMM's epilogue (beta 1 on C = res). */
static void gemm_forward(void *out, cudaDataType_t out_type, const void *inp, const void *w,
                         const void *bias, int N, int C, int OC, cudaDataType_t ab_type,
                         cublasComputeType_t compute, void *aux, const float *res = NULL)
{
    /* struct lt_gemm order: transposes; m, n, k; lda, ldb, ldd; types; A, B, D; bias; beta;
     * aux, dgelu; C */
    struct lt_gemm g = {CUBLAS_OP_T, CUBLAS_OP_N, OC,  N,    C,   C, C, OC, ab_type, out_type,
                        compute,     w,           inp, out, bias, res ? 1.0f : 0.0f,
                        aux,         false,       res};
    lt_run(&g);
}

/* dinp(N,C) += dout(N,OC)·W(OC,C): dinpᵀ(C,N) = W_cm(C,OC)·doutᵀ(OC,N); write: dinp = that
 * (beta 0). With pre (N,C, fp32): dinp = (dout·W) ⊙ gelu'(pre) instead, written, through the
 * DGELU epilogue. */
static void gemm_dinp(float *dinp, const void *dout, const void *w, int N, int C, int OC,
                      cudaDataType_t ab_type, cublasComputeType_t compute, const float *pre,
                      bool write)
{
    struct lt_gemm g = {CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, C, OC, C,
                        ab_type, CUDA_R_32F, compute, w, dout, dinp, NULL,
                        pre || write ? 0.0f : 1.0f, (float *)pre, pre != NULL, NULL};
    lt_run(&g);
}

/* dW(OC,C) += dout(N,OC)ᵀ·inp(N,C): dWᵀ(C,OC) = inp_cm(C,N)·op_T(dout_cm(OC,N)). fp32
 * operands on TF32, or 16-bit operands (ab_type CUDA_R_16BF / CUDA_R_16F) with fp32
 * accumulation. */
static void gemm_dweight(float *dw, const void *dout, const void *inp, int N, int C, int OC,
                         cudaDataType_t ab_type, cublasComputeType_t compute)
{
    struct lt_gemm g = {CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, C, OC, C,
                        ab_type, CUDA_R_32F, compute, inp, dout, dw, NULL, 1.0f, NULL, false, NULL};
    lt_run(&g);
}

/* ---------------------------------------------------------------- algorithm survey */

extern "C" int kcuda_matmul_algo_select(int index)
{
    int fewest = g_algo_survey ? g_algo_fewest : 0;
    for (int i = 0; i < g_cache_n; i++)
        plan_release(&g_cache[i]);
    g_cache_n = 0;
    g_algo_survey = index >= 0;
    g_algo_index = index >= 0 ? index : 0;
    g_algo_fewest = 0;
    return fewest;
}

/* ---------------------------------------------------------------- start */

int kcuda_matmul_init(struct sw_err *err)
{
    if (g_lt)
        return 0;
    const char *algo = getenv("SCALEWISE_CUDA_GEMM_ALGO"); /* below */
    if (algo && algo[0] && (algo[0] < '0' || algo[0] >= '0' + LT_ALGO_SURVEY_MAX || algo[1]))
        return cuda_set_err(err, SW_EINVAL,
                            "SCALEWISE_CUDA_GEMM_ALGO=%s: expected one digit, 0 to %d", algo,
                            LT_ALGO_SURVEY_MAX - 1);
    cublasStatus_t st = cublasLtCreate(&g_lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        g_lt = NULL;
        return cuda_set_err(err, SW_EUNSUPPORTED, "cublasLtCreate failed: %s",
                            cublasLtGetStatusString(st));
    }
    g_lt_ws = cuda_alloc(LT_WORKSPACE_BYTES, BACKEND_MEM_WORKSPACE, err);
    if (!g_lt_ws) {
        cublasLtDestroy(g_lt);
        g_lt = NULL;
        return err->code;
    }
    /* SCALEWISE_CUDA_GEMM_ALGO=k (0 to 7): every plan takes the heuristic's k-th algorithm (the
     * last offered where fewer exist) instead of its first, as bench_matmul's survey times
     * them: for measuring a whole step with another algorithm (tests/gpu/check.sh). Fixed for
     * the process, so runs stay reproducible; algorithms differ in the last bits. */
    if (algo && algo[0])
        kcuda_matmul_algo_select(algo[0] - '0');
    return 0;
}

/* ---------------------------------------------------------------- entries */

/* The compute type of the fp32 entries: TF32 tensor cores on sm_80 and newer; plain fp32 on
 * sm_75, which has no TF32 (asked for explicitly rather than left to the library). */
static cublasComputeType_t fp32_compute(void)
{
    return cuda_props()->major >= 8 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

extern "C" bool kcuda_matmul_uses_blas(void)
{
    return true; /* cuBLASLt */
}

/* bf16 tensor cores are sm_80+. On sm_75 (Turing) the model widens its bf16 weights to fp32
 * and runs the fp32 matmuls instead (emulated bf16-mixed: correct, not fast); fp16-mixed is
 * that GPU's fast path. */
extern "C" bool kcuda_has_native_bf16(void)
{
    return cuda_props()->major >= 8;
}

extern "C" void kcuda_matmul_forward(float *out, const float *inp, const float *weight,
                                     const float *bias, int N, int C, int OC)
{
    gemm_forward(out, CUDA_R_32F, inp, weight, bias, N, C, OC, CUDA_R_32F,
                 fp32_compute(), NULL);
}

extern "C" void kcuda_matmul_backward(float *dinp, float *dweight, float *dbias,
                                      const float *dout, const float *inp, const float *weight,
                                      int N, int C, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    if (dinp)
        gemm_dinp(dinp, dout, weight, N, C, OC, CUDA_R_32F, fp32_compute(), NULL, false);
    if (dweight)
        gemm_dweight(dweight, dout, inp, N, C, OC, CUDA_R_32F, fp32_compute());
    if (dbias)
        bias_grad(dbias, dout, N, OC);
}

/* Scratch for the bf16 and fp16 entries: the 16-bit copy of a chunk of activation rows. Any
 * width fits (rows per chunk = scratch elements / width), so the size depends on N only, as the
 * contract asks: 2 bytes x N x 64 Ki elements, at least 4 MiB (GPT-2's 50304-wide head gets 41
 * rows at once at decode), at most 256 MiB. The cap sets how many chunks a large N takes, and
 * each chunk of a weight gradient is one more read-modify-write of dW: GPT-2's head (50304 x
 * 768 fp32, 154 MB) at 16 Ki rows takes 7 chunks (2,628 rows of dout and inp each) at 256 MiB,
 * 25 at 64 MiB — about 5.5 GB less memory traffic per step for 192 MiB more workspace. */
extern "C" size_t kcuda_matmul_bf16_scratch_bytes(int N)
{
    size_t lo = (size_t)4 << 20, hi = (size_t)256 << 20;
    size_t b = (size_t)(N > 0 ? N : 1) * 65536u * 2u;
    return b < lo ? lo : b > hi ? hi : b;
}

/* Rows of a width-`width` matrix whose 16-bit copy fits the scratch for N rows. */
static int chunk_rows(const struct lp_fmt *f, int N, int width)
{
    size_t elems = kcuda_matmul_bf16_scratch_bytes(N) / 2;
    size_t rows = elems / (size_t)(width > 0 ? width : 1);
    if (rows < 1) {
        fprintf(stderr, "matmul_%s: width %d exceeds the scratch of %zu elements\n", f->name,
                width, elems);
        abort();
    }
    return rows > (size_t)N ? N : (int)rows;
}

/* Aborts when an entry got no scratch: a programming error of the caller. */
static void need_scratch(const void *scratch, const struct lp_fmt *f, const char *entry)
{
    if (scratch)
        return;
    fprintf(stderr, "matmul_%s_%s: scratch is NULL (kcuda_matmul_bf16_scratch_bytes)\n", f->name,
            entry);
    abort();
}

/* out(N,OC) = f(inp)·Wᵀ + bias, W already in format f, chunk by chunk of inp rows; with aux,
 * aux = that and out = gelu(that). */
static void lp_forward(const struct lp_fmt *f, float *out, const float *inp,
                       const uint16_t *weight, const float *bias, int N, int C, int OC,
                       void *scratch, float *aux)
{
    if (N <= 0 || OC <= 0)
        return;
    need_scratch(scratch, f, "forward");
    int R = chunk_rows(f, N, C);
    for (int r0 = 0; r0 < N; r0 += R) {
        int rows = N - r0 < R ? N - r0 : R;
        to_16(f, scratch, inp + (size_t)r0 * C, (size_t)rows * C);
        gemm_forward(out + (size_t)r0 * OC, CUDA_R_32F, scratch, weight, bias, rows, C, OC,
                     f->type, CUBLAS_COMPUTE_32F, aux ? aux + (size_t)r0 * OC : NULL);
    }
}

/* The 16-bit backward, chunk by chunk of rows, rounding each chunk of dout once for both
 * gradients: dinp(N,C) += f(dout)·W (with pre: dinp = that ⊙ gelu'(pre), written: the DGELU
 * partner), dweight += f(dout)ᵀ·f(inp) (the chunks add up in dW, beta = 1), dbias += Σ dout in
 * fp32 (each chunk's column sums, taken by the pass that rounds the chunk: dout is read once);
 * any of the three may be NULL. A chunk's 16-bit copies sit in the scratch: dout's rows
 * (rows × OC), then, for dW, inp's rows starting 16-byte aligned (cuBLASLt's alignment): R·OC
 * rounded up to 8, then R·C, within the scratch's elements — R·(OC + C) + 7 at most. Without
 * dW the chunk is as many rows of dout as fit (chunk_rows).
 * The bf16-activation form (kcuda_matmul_16_backward_a16): inp16, a bf16 inp, is read as it is
 * (inp unused; only dout takes scratch, so chunks are chunk_rows as without dW); write: dinp is
 * written (beta 0), not accumulated; pre16, a bf16 pre-activation, scales the written product by
 * gelu'(pre16) in a pass of its own afterwards (cuBLASLt's DGELU epilogue reads its aux in D's
 * type, fp32 here, and a bf16 aux beside an fp32 D is not documented to work); dout_pre16, the
 * bf16 pre-activation of a GELU whose output gradient dout is, takes dout through the GELU as
 * it is read (grad_in: the rounding pass and the bias sums see gelu'(dout_pre16) ⊙ dout), which
 * spares the model a pass over the GELU's gradient. */
static void lp_backward_ex(const struct lp_fmt *f, float *dinp, float *dweight, float *dbias,
                           const float *dout, const float *inp, const uint16_t *inp16,
                           const uint16_t *weight, int N, int C, int OC, void *scratch,
                           const float *pre, const uint16_t *pre16, bool write,
                           const uint16_t *dout_pre16 = NULL)
{
    const __nv_bfloat16 *gp16 = dout_pre16 ? kc_bf16(dout_pre16) : NULL;
    if (N <= 0)
        return;
    if (OC <= 0) { /* an empty product: only a written input gradient changes: to 0 */
        if ((pre || pre16 || write) && dinp && C > 0)
            CUDA_CHECK(cudaMemsetAsync(dinp, 0, (size_t)N * C * sizeof(float), cuda_stream()));
        return;
    }
    if (C > 0 && (dinp || dweight)) {
        need_scratch(scratch, f, dweight ? "backward_weight" : "backward_input");
        int R;
        size_t g_elems = 0;
        if (dweight && !inp16) {
            size_t elems = kcuda_matmul_bf16_scratch_bytes(N) / 2, width = (size_t)OC + C;
            if (elems < width + 7) {
                fprintf(stderr, "matmul_%s: width %zu exceeds the scratch of %zu elements\n",
                        f->name, width, elems);
                abort();
            }
            size_t rmax = (elems - 7) / width;
            R = rmax > (size_t)N ? N : (int)rmax;
            g_elems = ((size_t)R * OC + 7) / 8 * 8;
        } else {
            R = chunk_rows(f, N, OC);
        }
        uint16_t *g16 = (uint16_t *)scratch, *x16 = g16 + g_elems;
        for (int r0 = 0; r0 < N; r0 += R) {
            int rows = N - r0 < R ? N - r0 : R;
            const __nv_bfloat16 *gpc = gp16 ? gp16 + (size_t)r0 * OC : NULL;
            if (dbias) /* the chunk's bias gradient from the same read of dout */
                to_16_bias(f, g16, dbias, dout + (size_t)r0 * OC, gpc, rows, OC);
            else
                to_16(f, g16, dout + (size_t)r0 * OC, (size_t)rows * OC, gpc);
            if (dinp)
                gemm_dinp(dinp + (size_t)r0 * C, g16, weight, rows, C, OC, f->type,
                          CUBLAS_COMPUTE_32F, pre ? pre + (size_t)r0 * C : NULL, write);
            if (dweight && inp16) {
                gemm_dweight(dweight, g16, inp16 + (size_t)r0 * C, rows, C, OC, f->type,
                             CUBLAS_COMPUTE_32F);
            } else if (dweight) {
                to_16(f, x16, inp + (size_t)r0 * C, (size_t)rows * C);
                gemm_dweight(dweight, g16, x16, rows, C, OC, f->type, CUBLAS_COMPUTE_32F);
            }
        }
        if (pre16 && dinp)
            dgelu_inplace(dinp, kc_bf16(pre16), (size_t)N * C);
    } else if (dbias) {
        bias_grad_ex<__nv_bfloat16>(NULL, dbias, dout, gp16, N, OC);
    }
}

/* lp_backward_ex for fp32 activations. */
static void lp_backward(const struct lp_fmt *f, float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const uint16_t *weight, int N,
                        int C, int OC, void *scratch, const float *pre)
{
    lp_backward_ex(f, dinp, dweight, dbias, dout, inp, NULL, weight, N, C, OC, scratch, pre, NULL,
                   false);
}

extern "C" void kcuda_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
                                          const float *bias, int N, int C, int OC, void *scratch)
{
    lp_forward(&LP_BF16, out, inp, weight, bias, N, C, OC, scratch, NULL);
}

extern "C" void kcuda_matmul_bf16_backward_input(float *dinp, const float *dout,
                                                 const uint16_t *weight, int N, int C, int OC,
                                                 void *scratch)
{
    lp_backward(&LP_BF16, dinp, NULL, NULL, dout, NULL, weight, N, C, OC, scratch, NULL);
}

extern "C" void kcuda_matmul_bf16_backward_weight(float *dweight, float *dbias, const float *dout,
                                                  const float *inp, int N, int C, int OC,
                                                  void *scratch)
{
    lp_backward(&LP_BF16, NULL, dweight, dbias, dout, inp, NULL, N, C, OC, scratch, NULL);
}

extern "C" void kcuda_matmul_f16_forward(float *out, const float *inp, const uint16_t *weight,
                                         const float *bias, int N, int C, int OC, void *scratch)
{
    lp_forward(&LP_F16, out, inp, weight, bias, N, C, OC, scratch, NULL);
}

extern "C" void kcuda_matmul_f16_backward_input(float *dinp, const float *dout,
                                                const uint16_t *weight, int N, int C, int OC,
                                                void *scratch)
{
    lp_backward(&LP_F16, dinp, NULL, NULL, dout, NULL, weight, N, C, OC, scratch, NULL);
}

extern "C" void kcuda_matmul_f16_backward_weight(float *dweight, float *dbias, const float *dout,
                                                 const float *inp, int N, int C, int OC,
                                                 void *scratch)
{
    lp_backward(&LP_F16, NULL, dweight, dbias, dout, inp, NULL, N, C, OC, scratch, NULL);
}

/* The GELU MLP's first matmul with GELU in the epilogue (struct backend matmul_gelu_forward):
 * pre = inp·Wᵀ + bias and out = gelu(pre). cuBLASLt's GELU epilogues use the tanh form, as
 * kcuda_gelu_forward does; where no algorithm takes the epilogue (lt_run) the GEMM writes the
 * pre-activation and kcuda_gelu_forward follows, so the entry always works. */
extern "C" void kcuda_matmul_gelu_forward(float *out, float *pre, const float *inp,
                                          const void *weight, int weight_fmt, const float *bias,
                                          int N, int C, int OC, void *scratch)
{
    if (weight_fmt == BACKEND_WFMT_FP32)
        gemm_forward(out, CUDA_R_32F, inp, weight, bias, N, C, OC, CUDA_R_32F,
                     fp32_compute(), pre);
    else
        lp_forward(weight_fmt == BACKEND_WFMT_FP16 ? &LP_F16 : &LP_BF16, out, inp,
                   (const uint16_t *)weight, bias, N, C, OC, scratch, pre);
}

/* The GELU MLP's input gradient through the GELU (struct backend
 * matmul_backward_input_dgelu): dpre = (dout·W) ⊙ gelu'(pre), written, with cuBLASLt's DGELU
 * epilogue (or, where no algorithm takes it, the GEMM and then dgelu_inplace_kernel). */
extern "C" void kcuda_matmul_backward_input_dgelu(float *dpre, const float *dout,
                                                  const void *weight, int weight_fmt,
                                                  const float *pre, int N, int C, int OC,
                                                  void *scratch)
{
    if (N <= 0 || C <= 0)
        return;
    if (weight_fmt == BACKEND_WFMT_FP32)
        gemm_dinp(dpre, dout, weight, N, C, OC, CUDA_R_32F, fp32_compute(), pre, false);
    else
        lp_backward(weight_fmt == BACKEND_WFMT_FP16 ? &LP_F16 : &LP_BF16, dpre, NULL, NULL, dout,
                    NULL, (const uint16_t *)weight, N, C, OC, scratch, pre);
}

/* The whole 16-bit backward of one matmul (struct backend matmul_16_backward): lp_backward,
 * which rounds each chunk of dout once for the input and the weight gradients instead of once
 * per entry. */
extern "C" void kcuda_matmul_16_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const uint16_t *weight, int weight_fmt,
                                         const float *pre, int N, int C, int OC, void *scratch)
{
    lp_backward(weight_fmt == BACKEND_WFMT_FP16 ? &LP_F16 : &LP_BF16, dinp, dweight, dbias, dout,
                inp, weight, N, C, OC, scratch, pre);
}

/* ---------------------------------------------------------------- bf16 activations */

/* out(N,OC) = inp·Wᵀ + bias (+ res) with bf16 inp and W read as they are (no rounding pass, one
 * GEMM over all rows), fp32 accumulation, fp32 or bf16 out (bias of out's type; cuBLASLt rounds
 * the fp32 result to bf16 once, nearest even); res, with fp32 out only: the residual stream,
 * added by the epilogue (C = res, beta 1), so the sum needs no pass of its own. */
extern "C" void kcuda_matmul_a16_forward(void *out, bool out_bf16, const uint16_t *inp,
                                         const uint16_t *weight, const void *bias,
                                         const float *res, int N, int C, int OC)
{
    if (res && out_bf16)
        cuda_fail(cudaErrorInvalidValue, "matmul_a16_forward: a residual needs an fp32 output",
                  __FILE__, __LINE__);
    gemm_forward(out, out_bf16 ? CUDA_R_16BF : CUDA_R_32F, inp, weight, bias, N, C, OC,
                 CUDA_R_16BF, CUBLAS_COMPUTE_32F, NULL, res);
}

/* pre = inp·Wᵀ + bias, out = gelu(pre), all bf16: the GELU_AUX_BIAS epilogue with a bf16 D
 * (its aux takes D's type: pre is stored bf16); where no algorithm takes it, lt_run writes pre
 * and kcuda_gelu_forward_a16 follows (gelu of the rounded pre, rounded again). */
extern "C" void kcuda_matmul_gelu_forward_a16(uint16_t *out, uint16_t *pre, const uint16_t *inp,
                                              const uint16_t *weight, const uint16_t *bias, int N,
                                              int C, int OC)
{
    gemm_forward(out, CUDA_R_16BF, inp, weight, bias, N, C, OC, CUDA_R_16BF, CUBLAS_COMPUTE_32F,
                 pre);
}

/* matmul_16_backward with bf16 inp and pre, dinp written (which spares the model a memset per
 * matmul), dout optionally taken through a GELU (dout_pre): lp_backward_ex's bf16-activation
 * form. */
extern "C" void kcuda_matmul_16_backward_a16(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const uint16_t *dout_pre,
                                             const uint16_t *inp, const uint16_t *weight,
                                             const uint16_t *pre, int N, int C, int OC,
                                             void *scratch)
{
    lp_backward_ex(&LP_BF16, dinp, dweight, dbias, dout, NULL, inp, weight, N, C, OC, scratch,
                   NULL, pre, true, dout_pre);
}

/* The head's backward from the bf16 logits' gradient (softmax_ce_a16 leaves it in place): every
 * operand is bf16 already, so both GEMMs read them as they are — no scratch, no rounding pass,
 * no chunks. dinp is written (beta 0), dweight accumulated (beta 1); either may be NULL. */
extern "C" void kcuda_matmul_a16_backward_d16(float *dinp, float *dweight, const uint16_t *dout,
                                              const uint16_t *inp, const uint16_t *weight, int N,
                                              int C, int OC)
{
    if (N <= 0 || C <= 0)
        return;
    if (OC <= 0) { /* an empty product: the written input gradient is 0 */
        if (dinp)
            CUDA_CHECK(cudaMemsetAsync(dinp, 0, (size_t)N * C * sizeof(float), cuda_stream()));
        return;
    }
    if (dinp)
        gemm_dinp(dinp, dout, weight, N, C, OC, CUDA_R_16BF, CUBLAS_COMPUTE_32F, NULL, true);
    if (dweight)
        gemm_dweight(dweight, dout, inp, N, C, OC, CUDA_R_16BF, CUBLAS_COMPUTE_32F);
}
