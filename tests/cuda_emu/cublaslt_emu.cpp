/* A CPU fake of the part of cuBLASLt that kernels/cuda/matmul.cu uses
 * (tests/cuda_emu/include/cublasLt.h declares it), so matmul.cu's layouts, transposes, leading
 * dimensions, chunking, plan cache and fallbacks run under the CUDA emulation.
 *
 * The product: D(m,n) = alpha·op(A)(m,k)·op(B)(k,n) + beta·C(m,n), column-major with the layouts'
 * leading dimensions (C is not read when beta == 0, as in BLAS), then the epilogue:
 *  - DEFAULT: nothing; BIAS: + bias[i] on row i of D;
 *  - GELU_AUX_BIAS: pre = ... + bias[i] is stored in the aux matrix (column-major, its own
 *    leading dimension), D = gelu(pre) in cuBLASLt's tanh form
 *    (0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), as kernels/cuda/k_act.cu computes it, in
 *    float, on the fp32 pre before it is stored; kernels/cpu/activation.c reaches the same
 *    function through 1/(1 + e^(-2u)), a few ulps away); GELU_AUX: the same without the bias;
 *  - DGELU: the aux matrix is read instead: D = (product + beta·C) · gelu'(aux), the tanh
 *    form's derivative.
 * Types, as cublasLt.h documents them (its fp8 and integer exceptions are not emulated): C and D
 * CUDA_R_32F, or the 16-bit type of A and B (CUDA_R_16BF with bf16 operands, CUDA_R_16F with
 * fp16); the bias and the aux matrix have D's type — BIAS_DATA_TYPE and EPILOGUE_AUX_DATA_TYPE
 * may be set, but only to D's type (a bf16 bias or aux beside an fp32 D is refused).
 * Operands CUDA_R_32F, CUDA_R_16BF or CUDA_R_16F are widened exactly; CUBLAS_COMPUTE_32F_FAST_TF32
 * first rounds each fp32 operand to TF32 (10 mantissa bits, nearest, ties away from zero: the
 * hardware's cvt.rna.tf32.f32); products are summed in double and rounded once to fp32 (then to
 * a 16-bit D or aux, nearest even), so the fake is at least as accurate as any GPU algorithm and
 * the tests' tolerances (set for the GPU's fp32 sums) hold with margin. Anything else (other
 * types, compute types, epilogues, batch, pointer mode device) is CUBLAS_STATUS_NOT_SUPPORTED.
 *
 * Checks, each a failing status with its reason on stderr (emu_cublaslt_last_error): attribute
 * sizes and values; live objects (use after destroy, wrong kind); shapes (op(A) m×k, op(B) k×n,
 * C and D m×n of one type); ld >= rows of the stored matrix; the aux leading dimension (a multiple
 * of 8, >= m, as the toolkit documents); an algorithm used only for the problem it was chosen
 * for (its fingerprint: types, transposes, sizes, leading dimensions, epilogue); pointers aligned
 * as the preference promised when the algorithm was chosen (the lesser of that promise and 16
 * bytes), never below the element size; workspace at least what the heuristic asked for; A, B,
 * alpha, beta, D (and C when beta != 0, bias and aux for their epilogues) non-NULL; in place
 * (C == D) only with identical C and D layouts; D not overlapping A, B, the bias or the aux
 * matrix; every byte read or written inside one cudaMalloc allocation (emu_device_span: on a GPU
 * an illegal address, or a silent read of the neighbour). Real cuBLASLt checks some of these in
 * other calls or returns other codes; the point is that a misuse fails here instead of computing
 * something.
 * Test hooks: refusing algorithms (emu_cublaslt_set_refuse or SCALEWISE_EMU_CUBLASLT_NO_ALGO),
 * counters and live-object counts (emu_cublaslt_stats). */
#include <cublasLt.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <unordered_set>
#include <vector>

#define ALGO_MAGIC 0x656d754c74616c67ull /* "emuLtalg" */
#define ALGO_WORKSPACE_BYTES ((size_t)1 << 20)
#define MAX_VECTOR_ALIGN 16u /* the widest vector access an algorithm may assume */

struct cublasLtContext {
    int unused;
};

struct cublasLtMatmulDescOpaque_t {
    cublasComputeType_t compute;
    int32_t scale_type, pointer_mode, transa, transb;
    uint32_t epilogue;
    const void *bias;
    void *aux;
    int64_t aux_ld;
    int32_t bias_type, aux_type; /* -1: the type of D */
};

struct cublasLtMatrixLayoutOpaque_t {
    int32_t type;
    uint64_t rows, cols;
    int64_t ld;
};

struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D; the toolkit's default is 256 */
};

/* ---------------------------------------------------------------- bookkeeping */

static std::unordered_set<const void *> &g_handles = *new std::unordered_set<const void *>;
static std::unordered_set<const void *> &g_descs = *new std::unordered_set<const void *>;
static std::unordered_set<const void *> &g_layouts = *new std::unordered_set<const void *>;
static std::unordered_set<const void *> &g_prefs = *new std::unordered_set<const void *>;
static emu_lt_stats g_stats;
static char g_last_error[512];
static bool g_quiet;
static emu_lt_refuse g_refuse = EMU_LT_REFUSE_ENV;

/* Records (and unless quiet prints) why `fn` fails; returns st. A heuristic refusal is printed
 * once per distinct reason: callers try an epilogue and fall back (matmul.cu does), and the
 * reason matters once, not at every plan. */
__attribute__((format(printf, 3, 4))) static cublasStatus_t fail(cublasStatus_t st, const char *fn,
                                                                 const char *fmt, ...)
{
    static std::unordered_set<std::string> &said = *new std::unordered_set<std::string>;
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(g_last_error, sizeof g_last_error, "%s: %s: %s", fn, cublasLtGetStatusString(st), why);
    g_stats.failures++;
    bool again = strcmp(fn, "cublasLtMatmulAlgoGetHeuristic") == 0 && !said.insert(why).second;
    if (!g_quiet && !again)
        fprintf(stderr, "cublasLt emulation: %s\n", g_last_error);
    return st;
}

void emu_cublaslt_set_refuse(enum emu_lt_refuse mode)
{
    g_refuse = mode;
}

void emu_cublaslt_stats(struct emu_lt_stats *out)
{
    *out = g_stats;
    out->live_handles = (int)g_handles.size();
    out->live_descs = (int)g_descs.size();
    out->live_layouts = (int)g_layouts.size();
    out->live_prefs = (int)g_prefs.size();
}

const char *emu_cublaslt_last_error(void)
{
    return g_last_error;
}

void emu_cublaslt_set_quiet(bool quiet)
{
    g_quiet = quiet;
}

const char *cublasLtGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
        return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
        return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
        return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

/* ---------------------------------------------------------------- objects */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    if (!handle)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate", "handle is NULL");
    *handle = new cublasLtContext();
    g_handles.insert(*handle);
    return CUBLAS_STATUS_SUCCESS;
}

/* Destroys obj if `live` holds it, else fails as fn with status bad ("not a live <what>"). */
template <typename T>
static cublasStatus_t destroy_live(std::unordered_set<const void *> &live, T *obj,
                                   cublasStatus_t bad, const char *fn, const char *what)
{
    if (!live.erase(obj))
        return fail(bad, fn, "not a live %s", what);
    delete obj;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
    return destroy_live(g_handles, handle, CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy",
                        "handle");
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type)
{
    if (!desc)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate", "desc is NULL");
    cublasLtMatmulDesc_t d = new cublasLtMatmulDescOpaque_t();
    d->compute = compute;
    d->scale_type = scale_type;
    d->transa = d->transb = CUBLAS_OP_N;
    d->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    d->bias_type = d->aux_type = -1;
    g_descs.insert(d);
    *desc = d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc)
{
    return destroy_live(g_descs, desc, CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescDestroy",
                        "matmul descriptor");
}

static bool known_epilogue(uint32_t e)
{
    static const uint32_t all[] = {CUBLASLT_EPILOGUE_DEFAULT,       CUBLASLT_EPILOGUE_RELU,
                                   CUBLASLT_EPILOGUE_BIAS,          CUBLASLT_EPILOGUE_RELU_BIAS,
                                   CUBLASLT_EPILOGUE_DRELU,         CUBLASLT_EPILOGUE_GELU,
                                   CUBLASLT_EPILOGUE_GELU_BIAS,     CUBLASLT_EPILOGUE_RELU_AUX,
                                   CUBLASLT_EPILOGUE_RELU_AUX_BIAS, CUBLASLT_EPILOGUE_GELU_AUX,
                                   CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUBLASLT_EPILOGUE_DGELU,
                                   CUBLASLT_EPILOGUE_DGELU_BGRAD,   CUBLASLT_EPILOGUE_BGRADA,
                                   CUBLASLT_EPILOGUE_BGRADB};
    for (uint32_t a : all)
        if (a == e)
            return true;
    return false;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size_bytes)
{
    const char *fn = "cublasLtMatmulDescSetAttribute";
    if (!g_descs.count(desc))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "not a live matmul descriptor");
    if (!buf)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL (attribute %d)", (int)attr);
    size_t want;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
        want = sizeof(int32_t);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        want = sizeof(uint32_t);
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        want = sizeof(void *);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        want = sizeof(int64_t);
        break;
    default:
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "attribute %d is not emulated", (int)attr);
    }
    if (size_bytes != want)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "attribute %d takes %zu bytes, got %zu",
                    (int)attr, want, size_bytes);
    int32_t i32 = 0;
    if (want == sizeof(int32_t))
        memcpy(&i32, buf, sizeof i32);
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        desc->compute = (cublasComputeType_t)i32;
        break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
        desc->scale_type = i32;
        break;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
        desc->pointer_mode = i32;
        break;
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
        if (i32 < CUBLAS_OP_N || i32 > CUBLAS_OP_C)
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "transpose %d is not a cublasOperation_t",
                        (int)i32);
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->transa : desc->transb) = i32;
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        desc->bias_type = i32;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
        desc->aux_type = i32;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        uint32_t e;
        memcpy(&e, buf, sizeof e);
        if (!known_epilogue(e))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "epilogue %u is not a cublasLtEpilogue_t",
                        e);
        desc->epilogue = e;
        break;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        memcpy(&desc->bias, buf, sizeof desc->bias);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        memcpy(&desc->aux, buf, sizeof desc->aux);
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        memcpy(&desc->aux_ld, buf, sizeof desc->aux_ld);
        break;
    default:
        break;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static size_t elem_bytes(int32_t type)
{
    switch (type) {
    case CUDA_R_32F:
    case CUDA_R_32I:
        return 4;
    case CUDA_R_64F:
        return 8;
    case CUDA_R_16F:
    case CUDA_R_16BF:
        return 2;
    case CUDA_R_8I:
        return 1;
    default:
        return 0;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld)
{
    const char *fn = "cublasLtMatrixLayoutCreate";
    if (!layout)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "layout is NULL");
    if (!elem_bytes(type))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "unknown data type %d", (int)type);
    if (ld < 0 || rows > INT32_MAX || cols > INT32_MAX)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "rows %llu cols %llu ld %lld",
                    (unsigned long long)rows, (unsigned long long)cols, (long long)ld);
    cublasLtMatrixLayout_t l = new cublasLtMatrixLayoutOpaque_t();
    l->type = type;
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    g_layouts.insert(l);
    *layout = l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout)
{
    return destroy_live(g_layouts, layout, CUBLAS_STATUS_INVALID_VALUE,
                        "cublasLtMatrixLayoutDestroy", "matrix layout");
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    if (!pref)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate", "NULL");
    cublasLtMatmulPreference_t p = new cublasLtMatmulPreferenceOpaque_t();
    for (int i = 0; i < 4; i++)
        p->align[i] = 256;
    g_prefs.insert(p);
    *pref = p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
    return destroy_live(g_prefs, pref, CUBLAS_STATUS_INVALID_VALUE,
                        "cublasLtMatmulPreferenceDestroy", "preference");
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size_bytes)
{
    const char *fn = "cublasLtMatmulPreferenceSetAttribute";
    if (!g_prefs.count(pref))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "not a live preference");
    if (!buf)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL");
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        if (size_bytes != sizeof(uint64_t))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                        "MAX_WORKSPACE_BYTES takes 8 bytes, got %zu", size_bytes);
        memcpy(&pref->max_workspace, buf, sizeof(uint64_t));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
        if (size_bytes != sizeof(uint32_t))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "MIN_ALIGNMENT takes 4 bytes, got %zu",
                        size_bytes);
        uint32_t a;
        memcpy(&a, buf, sizeof a);
        if (a == 0 || (a & (a - 1)))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "alignment %u is not a power of 2", a);
        pref->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = a;
        return CUBLAS_STATUS_SUCCESS;
    }
    default:
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "attribute %d is not emulated", (int)attr);
    }
}

/* ---------------------------------------------------------------- the problem */

/* A matmul as the descriptor and the four layouts describe it. */
struct problem {
    cublasComputeType_t compute;
    bool ta, tb;
    int64_t m, n, k;
    int32_t ab_type, cd_type;
    int64_t lda, ldb, ldc, ldd;
    uint32_t epilogue;
    int64_t aux_ld;
    int32_t bias_type, aux_type; /* resolved: D's type */
};

static bool epilogue_has_bias(uint32_t e)
{
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}

static bool epilogue_has_gelu_aux(uint32_t e)
{
    return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}

/* The epilogues with an aux matrix: GELU_AUX(_BIAS) write the pre-activation to it, DGELU
 * reads it (D = product · gelu'(aux)). */
static bool epilogue_has_aux(uint32_t e)
{
    return epilogue_has_gelu_aux(e) || e == CUBLASLT_EPILOGUE_DGELU;
}

/* Fills *p from the descriptor and layouts, or fails (as function fn) with the reason. */
static cublasStatus_t problem_of(const char *fn, cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                 cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                 cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, problem *p)
{
    if (!g_handles.count(h))
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, fn, "not a live handle");
    if (!g_descs.count(d))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "not a live matmul descriptor");
    const cublasLtMatrixLayout_t ls[4] = {a, b, c, dd};
    const char *names = "ABCD";
    for (int i = 0; i < 4; i++)
        if (!g_layouts.count(ls[i]))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "%c: not a live matrix layout", names[i]);
    for (int i = 0; i < 4; i++) {
        const cublasLtMatrixLayoutOpaque_t *l = ls[i];
        if (l->ld < (int64_t)l->rows || (l->ld < 1 && l->rows > 0))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "%c: leading dimension %lld < rows %llu",
                        names[i], (long long)l->ld, (unsigned long long)l->rows);
    }
    if (d->scale_type != CUDA_R_32F || d->pointer_mode != 0)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn,
                    "scale type %d / pointer mode %d (only fp32 scalars on the host)",
                    (int)d->scale_type, (int)d->pointer_mode);
    if (d->compute != CUBLAS_COMPUTE_32F && d->compute != CUBLAS_COMPUTE_32F_FAST_TF32)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "compute type %d is not emulated",
                    (int)d->compute);
    if (a->type != b->type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "A type %d != B type %d", (int)a->type,
                    (int)b->type);
    if (a->type != CUDA_R_32F && a->type != CUDA_R_16BF && a->type != CUDA_R_16F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "A/B type %d is not emulated", (int)a->type);
    if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a->type != CUDA_R_32F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn,
                    "CUBLAS_COMPUTE_32F_FAST_TF32 takes fp32 A/B, got type %d", (int)a->type);
    if (c->type != dd->type || (dd->type != CUDA_R_32F && dd->type != a->type))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn,
                    "C type %d, D type %d with A/B type %d (fp32 out or the operands' type)",
                    (int)c->type, (int)dd->type, (int)a->type);
    p->compute = d->compute;
    p->ta = d->transa != CUBLAS_OP_N; /* OP_C is OP_T on real types */
    p->tb = d->transb != CUBLAS_OP_N;
    p->m = (int64_t)(p->ta ? a->cols : a->rows);
    p->k = (int64_t)(p->ta ? a->rows : a->cols);
    int64_t kb = (int64_t)(p->tb ? b->cols : b->rows);
    p->n = (int64_t)(p->tb ? b->rows : b->cols);
    if (kb != p->k || (int64_t)dd->rows != p->m || (int64_t)dd->cols != p->n ||
        c->rows != dd->rows || c->cols != dd->cols)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                    "shapes disagree: op(A) %lldx%lld, op(B) %lldx%lld, C %llux%llu, D %llux%llu",
                    (long long)p->m, (long long)p->k, (long long)kb, (long long)p->n,
                    (unsigned long long)c->rows, (unsigned long long)c->cols,
                    (unsigned long long)dd->rows, (unsigned long long)dd->cols);
    p->ab_type = a->type;
    p->cd_type = dd->type;
    p->lda = a->ld;
    p->ldb = b->ld;
    p->ldc = c->ld;
    p->ldd = dd->ld;
    p->epilogue = d->epilogue;
    p->aux_ld = 0;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS &&
        !epilogue_has_aux(d->epilogue))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "epilogue %u is not emulated", d->epilogue);
    /* cublasLt.h: the bias and the GELU aux have D's type (exceptions: fp8 and IMMA kernels). */
    p->bias_type = p->aux_type = p->cd_type;
    if (epilogue_has_bias(d->epilogue) && d->bias_type != -1 && d->bias_type != p->cd_type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "bias type %d differs from D's type %d",
                    (int)d->bias_type, (int)p->cd_type);
    if (epilogue_has_aux(d->epilogue)) {
        if (d->aux_type != -1 && d->aux_type != p->cd_type)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "aux type %d differs from D's type %d",
                        (int)d->aux_type, (int)p->cd_type);
        if (d->aux_ld % 8 != 0 || d->aux_ld < p->m || d->aux_ld < 1)
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                        "EPILOGUE_AUX_LD %lld: must be a multiple of 8 and >= m = %lld",
                        (long long)d->aux_ld, (long long)p->m);
        p->aux_ld = d->aux_ld;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* FNV-1a over the problem's fields: the algorithm's fingerprint. */
static uint64_t problem_hash(const problem *p)
{
    const int64_t f[] = {(int64_t)p->compute,  p->ta,      p->tb,  p->m,   p->n,   p->k,
                         p->ab_type,           p->cd_type, p->lda, p->ldb, p->ldc, p->ldd,
                         (int64_t)p->epilogue, p->aux_ld};
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = reinterpret_cast<const unsigned char *>(f);
    for (size_t i = 0; i < sizeof f; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* The largest power of two (<= 256) dividing p; 256 for NULL. */
static uint32_t ptr_alignment(const void *p)
{
    uint32_t a = 256;
    while (a > 1 && ((uintptr_t)p & (a - 1)))
        a >>= 1;
    return a;
}

/* Which algorithms the test hook lets the heuristic return. */
static bool refused(const problem *p)
{
    emu_lt_refuse mode = g_refuse;
    if (mode == EMU_LT_REFUSE_ENV) {
        const char *e = getenv("SCALEWISE_EMU_CUBLASLT_NO_ALGO");
        mode = !e                       ? EMU_LT_REFUSE_NONE
               : !strcmp(e, "all")      ? EMU_LT_REFUSE_ALL
               : !strcmp(e, "epilogue") ? EMU_LT_REFUSE_EPILOGUE
                                        : EMU_LT_REFUSE_NONE;
    }
    return mode == EMU_LT_REFUSE_ALL ||
           (mode == EMU_LT_REFUSE_EPILOGUE && p->epilogue != CUBLASLT_EPILOGUE_DEFAULT);
}

cublasStatus_t
cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                               cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                               cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                               cublasLtMatmulPreference_t pref, int requested,
                               cublasLtMatmulHeuristicResult_t results[], int *returned)
{
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    g_stats.heuristic_calls++;
    if (returned)
        *returned = 0;
    if (!returned || !results || requested < 1) {
        g_stats.heuristic_refused++;
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "results %p, returned %p, requested %d",
                    (void *)results, (void *)returned, requested);
    }
    if (!g_prefs.count(pref)) {
        g_stats.heuristic_refused++;
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "not a live preference");
    }
    problem p;
    cublasStatus_t st = problem_of(fn, handle, desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) {
        g_stats.heuristic_refused++;
        return st;
    }
    /* An algorithm may assume what the preference promised, up to its widest vector access;
     * none handles an element split across its natural alignment. */
    uint32_t req[5];
    const int32_t types[4] = {p.ab_type, p.ab_type, p.cd_type, p.cd_type};
    for (int i = 0; i < 4; i++) {
        req[i] = min_u32(pref->align[i], MAX_VECTOR_ALIGN);
        if (req[i] < elem_bytes(types[i])) {
            g_stats.heuristic_refused++;
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn,
                        "no algorithm for %c aligned to %u bytes (elements of %zu bytes)",
                        "ABCD"[i], pref -> align[i], elem_bytes(types[i]));
        }
    }
    /* The bias and aux pointers' alignment is read from the descriptor, as the toolkit does. */
    req[4] =
        min_u32(min_u32(ptr_alignment(desc->bias), ptr_alignment(desc->aux)), MAX_VECTOR_ALIGN);
    if (refused(&p)) {
        g_stats.heuristic_refused++;
        snprintf(g_last_error, sizeof g_last_error, "%s: no algorithm (test hook)", fn);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    cublasLtMatmulHeuristicResult_t &r = results[0];
    memset(&r, 0, sizeof r);
    r.algo.data[0] = ALGO_MAGIC;
    r.algo.data[1] = problem_hash(&p);
    for (int i = 0; i < 5; i++)
        r.algo.data[2] |= (uint64_t)req[i] << (12 * i);
    r.workspaceSize = pref->max_workspace < ALGO_WORKSPACE_BYTES ? (size_t)pref->max_workspace
                                                                 : ALGO_WORKSPACE_BYTES;
    r.algo.data[3] = r.workspaceSize;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- the product */

float emu_cublaslt_round_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) /* inf, NaN: kept */
        return x;
    u += 0x1000u; /* half of the 13 dropped bits: nearest, ties away from zero */
    u &= 0xffffe000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

/* fp32 -> bf16 or fp16 bits, nearest even (NaN stays a quiet NaN), and the store of one element
 * of a D or aux matrix of that type. */
static uint16_t to_bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static void store(int32_t type, void *base, int64_t idx, float x)
{
    if (type == CUDA_R_32F)
        static_cast<float *>(base)[idx] = x;
    else if (type == CUDA_R_16BF)
        static_cast<uint16_t *>(base)[idx] = to_bf16_bits(x);
    else
        static_cast<uint16_t *>(base)[idx] = __half_as_ushort(__float2half_rn(x));
}

static float load(int32_t type, const void *base, int64_t idx)
{
    if (type == CUDA_R_32F)
        return static_cast<const float *>(base)[idx];
    uint16_t h = static_cast<const uint16_t *>(base)[idx];
    if (type == CUDA_R_16BF) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return __half2float(__ushort_as_half(h));
}

/* The GPT-2 tanh GELU and its derivative in the tanh form (kernels/cuda/k_act.cu's). */
static float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static float gelu_tanh_grad(float x)
{
    const float k = 0.7978845608028654f, a = 0.044715f;
    float th = tanhf(k * (x + a * x * x * x));
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * k * (1.0f + 3.0f * a * x * x);
}

/* [start, end) of the bytes a layout's matrix spans at ptr. */
struct span {
    uintptr_t lo, hi;
};
static span span_of(const void *ptr, int64_t rows, int64_t cols, int64_t ld, size_t esz)
{
    span s{(uintptr_t)ptr, (uintptr_t)ptr};
    if (ptr && rows > 0 && cols > 0)
        s.hi = s.lo + (uintptr_t)(((cols - 1) * ld + rows) * (int64_t)esz);
    return s;
}
static bool overlap(span a, span b)
{
    return a.lo < a.hi && b.lo < b.hi && a.lo < b.hi && b.lo < a.hi;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream)
{
    (void)stream; /* launches are synchronous in the emulation */
    const char *fn = "cublasLtMatmul";
    problem p;
    cublasStatus_t st = problem_of(fn, handle, desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS)
        return st;
    if (!algo || algo->data[0] != ALGO_MAGIC)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "algo is NULL or not from the heuristic");
    if (algo->data[1] != problem_hash(&p))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                    "algo was chosen for another problem (m %lld n %lld k %lld now)",
                    (long long)p.m, (long long)p.n, (long long)p.k);
    if (!alpha || !beta)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "alpha or beta is NULL");
    float al, be;
    memcpy(&al, alpha, 4);
    memcpy(&be, beta, 4);
    const bool bias = epilogue_has_bias(p.epilogue);
    const bool gelu = epilogue_has_gelu_aux(p.epilogue);
    const bool dgelu = p.epilogue == CUBLASLT_EPILOGUE_DGELU;
    const bool has_aux = gelu || dgelu;
    const void *ptrs[4] = {A, B, C, D};
    const char *names = "ABCD";
    for (int i = 0; i < 4; i++) {
        bool needed = i != 2 || be != 0.0f;
        if (needed && !ptrs[i] && p.m > 0 && p.n > 0 && (p.k > 0 || i >= 2))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "%c is NULL", names[i]);
    }
    if (bias && !desc->bias)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "the epilogue's bias pointer is NULL");
    if (has_aux && !desc->aux)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "the epilogue's aux pointer is NULL");
    for (int i = 0; i < 5; i++) {
        uint32_t req = (uint32_t)(algo->data[2] >> (12 * i)) & 0xfffu;
        const void *ptr = i < 4 ? ptrs[i] : nullptr;
        if (i == 4) { /* bias and aux */
            if (bias && ptr_alignment(desc->bias) < req)
                ptr = desc->bias;
            else if (has_aux && ptr_alignment(desc->aux) < req)
                ptr = desc->aux;
        }
        if (ptr && ptr_alignment(ptr) < req)
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                        "%s %p is not aligned to the %u bytes the algorithm was chosen for",
                        i < 4 ? (i == 0   ? "A"
                                 : i == 1 ? "B"
                                 : i == 2 ? "C"
                                          : "D")
                              : "bias/aux",
                        ptr, req);
    }
    if (workspace_bytes < algo->data[3] || (algo->data[3] && !workspace))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                    "workspace %p of %zu bytes; the algorithm needs %llu", workspace,
                    workspace_bytes, (unsigned long long)algo->data[3]);
    if (C && be != 0.0f && C == D && p.ldc != p.ldd)
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "in place (C == D) with ldc %lld != ldd %lld",
                    (long long)p.ldc, (long long)p.ldd);
    const size_t ab_bytes = elem_bytes(p.ab_type), cd_bytes = elem_bytes(p.cd_type);
    const span sa = span_of(A, p.ta ? p.k : p.m, p.ta ? p.m : p.k, p.lda, ab_bytes);
    const span sb = span_of(B, p.tb ? p.n : p.k, p.tb ? p.k : p.n, p.ldb, ab_bytes);
    const span sc = span_of(C, p.m, p.n, p.ldc, cd_bytes);
    const span sd = span_of(D, p.m, p.n, p.ldd, cd_bytes);
    const span sbias = span_of(bias ? desc->bias : nullptr, p.m, 1, p.m, elem_bytes(p.bias_type));
    const span saux =
        span_of(has_aux ? desc->aux : nullptr, p.m, p.n, p.aux_ld, elem_bytes(p.aux_type));
    if (overlap(sd, sa) || overlap(sd, sb) || overlap(sd, sbias) || overlap(sd, saux) ||
        (C != D && be != 0.0f && overlap(sd, sc)) || overlap(saux, sa) || overlap(saux, sb))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                    "the output overlaps an input (D %p, A %p, B %p, C %p, bias %p, aux %p)", D, A,
                    B, C, desc->bias, desc->aux);
    /* Every byte the product reads or writes inside one cudaMalloc allocation. */
    const struct {
        const char *what;
        span s;
    } spans[] = {{"A", sa},
                 {"B", sb},
                 {"C", be != 0.0f ? sc : span{0, 0}},
                 {"D", sd},
                 {"bias", sbias},
                 {"aux", saux},
                 {"workspace", span_of(workspace, (int64_t)workspace_bytes, 1, 0, 1)}};
    for (const auto &sp : spans)
        if (sp.s.hi > sp.s.lo &&
            !emu_device_span((const void *)sp.s.lo, (size_t)(sp.s.hi - sp.s.lo)))
            return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                        "%s (%p, %zu bytes) is not inside one cudaMalloc allocation (m %lld n "
                        "%lld k %lld)",
                        sp.what, (void *)sp.s.lo, (size_t)(sp.s.hi - sp.s.lo), (long long)p.m,
                        (long long)p.n, (long long)p.k);
    /* The algorithm's use of its workspace: scribble on all it asked for. */
    if (algo->data[3])
        memset(workspace, 0xa5, (size_t)algo->data[3]);

    const int64_t m = p.m, n = p.n, k = p.k;
    const bool tf32 = p.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    /* op(A) row-major m×k and op(B)ᵀ row-major n×k: each output is one contiguous dot. */
    std::vector<float> ap((size_t)(m * k)), bp((size_t)(n * k));
    for (int64_t i = 0; i < m; i++)
        for (int64_t l = 0; l < k; l++) {
            float v = load(p.ab_type, A, p.ta ? l + i * p.lda : i + l * p.lda);
            ap[(size_t)(i * k + l)] = tf32 ? emu_cublaslt_round_tf32(v) : v;
        }
    for (int64_t j = 0; j < n; j++)
        for (int64_t l = 0; l < k; l++) {
            float v = load(p.ab_type, B, p.tb ? j + l * p.ldb : l + j * p.ldb);
            bp[(size_t)(j * k + l)] = tf32 ? emu_cublaslt_round_tf32(v) : v;
        }
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            const float *x = &ap[(size_t)(i * k)], *y = &bp[(size_t)(j * k)];
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int64_t l = 0;
            for (; l + 4 <= k; l += 4) {
                s0 += (double)x[l] * y[l];
                s1 += (double)x[l + 1] * y[l + 1];
                s2 += (double)x[l + 2] * y[l + 2];
                s3 += (double)x[l + 3] * y[l + 3];
            }
            for (; l < k; l++)
                s0 += (double)x[l] * y[l];
            double v = (double)al * ((s0 + s1) + (s2 + s3));
            if (be != 0.0f) /* beta == 0: C is not read (it may hold NaN) */
                v += (double)be * load(p.cd_type, C, i + j * p.ldc);
            if (bias)
                v += load(p.bias_type, desc->bias, i);
            float out = (float)v;
            if (gelu) {
                store(p.aux_type, desc->aux, i + j * p.aux_ld, out);
                out = gelu_tanh(out);
            } else if (dgelu) {
                out = gelu_tanh_grad(load(p.aux_type, desc->aux, i + j * p.aux_ld)) * out;
            }
            store(p.cd_type, D, i + j * p.ldd, out);
        }
    g_stats.matmuls++;
    g_stats.matmuls_bias += p.epilogue == CUBLASLT_EPILOGUE_BIAS;
    g_stats.matmuls_gelu_aux += gelu;
    g_stats.matmuls_dgelu += dgelu;
    return CUBLAS_STATUS_SUCCESS;
}
