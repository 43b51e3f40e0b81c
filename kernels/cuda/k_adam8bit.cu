/* 8-bit AdamW (Dettmers et al., 2022) for the CUDA backend, with the state layout, the code
 * tables and the arithmetic of kernels/cpu/adam8bit.c, so an 8-bit state written by either
 * backend is read by the other (checkpoints are interchangeable):
 *  - state for n >= KCPU_ADAM8_MIN_N: m codes (n bytes), v codes (n bytes), padding to 4 bytes,
 *    m absmax and v absmax (one float per KCPU_ADAM8_BLOCK elements each); smaller tensors keep
 *    fp32 m then v (the plain AdamW update).
 *  - codes: bitsandbytes' dynamic-exponent maps (signed for m, unsigned for v), built on the
 *    host by the same double-precision code as the CPU and sorted the same way, uploaded once.
 *  - one CUDA block per quantisation block: dequantise, update m and v in fp32, update the
 *    parameter from the fp32 values, take the block's new absmax, requantise to the nearest
 *    code (the CPU's bisection and tie rule). The m/v arithmetic uses explicit round-to-nearest
 *    multiplies and adds (no FMA contraction), so m, v, absmax and the codes match the CPU's bit
 *    for bit; the parameter update may differ from the CPU's in the last ulp. */
#include <algorithm>
#include <math.h>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define A8_THREADS 256
#define A8_PER_THREAD (KCPU_ADAM8_BLOCK / A8_THREADS)

__constant__ float a8_code_sgn[256];
__constant__ float a8_code_uns[256];

/* bitsandbytes create_dynamic_map, exactly as adam8bit.c's q8_build. */
static void q8_build(float *code, bool is_signed)
{
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int parts = is_signed ? 1 << i : 1 << (i + 1);
        double scale = pow(10.0, (double)(i - 6));
        for (int j = 0; j < parts; j++) {
            double lo = 0.1 + 0.9 * j / parts, hi = 0.1 + 0.9 * (j + 1) / parts;
            double mid = 0.5 * (lo + hi) * scale;
            code[k++] = (float)mid;
            if (is_signed)
                code[k++] = (float)-mid;
        }
    }
    code[k++] = 0.0f;
    code[k++] = 1.0f;
    std::sort(code, code + 256);
}

/* Uploads the code tables once (the plugin has one host thread driving the device). */
static void a8_init_codes(void)
{
    static bool done;
    if (done)
        return;
    float sgn[256], uns[256];
    q8_build(sgn, true);
    q8_build(uns, false);
    CUDA_CHECK(cudaMemcpyToSymbol(a8_code_sgn, sgn, sizeof sgn));
    CUDA_CHECK(cudaMemcpyToSymbol(a8_code_uns, uns, sizeof uns));
    done = true;
}

static size_t a8_nblocks(size_t n)
{
    return (n + KCPU_ADAM8_BLOCK - 1) / KCPU_ADAM8_BLOCK;
}

static __host__ __device__ size_t a8_codes_bytes_padded(size_t n)
{
    return (2 * n + 3) & ~(size_t)3;
}

/* Index of the code nearest to x: adam8bit.c's q8_encode. */
static __device__ uint8_t a8_encode(const float *code, float x)
{
    int lo = 0, hi = 255;
    if (x >= code[255])
        return 255;
    if (x <= code[0])
        return 0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (code[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint8_t)(__fsub_rn(x, code[lo - 1]) <= __fsub_rn(code[lo], x) ? lo - 1 : lo);
}

struct a8_args {
    float *param;
    const float *grad;
    char *state; /* base; each segment at state + state_off */
    float lr, beta1, beta2, eps, bc1, bc2;
};

/* Block blockIdx.x of one segment (n elements at seg_off of param/grad, state at st). */
static __device__ void a8_block(const a8_args &a, size_t seg_off, size_t n, char *st, float wd,
                                const float *sgn, const float *uns)
{
    __shared__ float red[32];
    size_t i0 = (size_t)blockIdx.x * KCPU_ADAM8_BLOCK;
    if (i0 >= n)
        return; /* block-uniform */
    float *p = a.param + seg_off;
    const float *g = a.grad + seg_off;
    float decay = 1.0f - a.lr * wd;
    if (n < KCPU_ADAM8_MIN_N) { /* fp32 states, kcpu_adamw_step */
        float *m = (float *)st, *v = m + n;
        for (size_t i = i0 + threadIdx.x; i < n && i < i0 + KCPU_ADAM8_BLOCK; i += blockDim.x) {
            float gi = g[i];
            float mi = a.beta1 * m[i] + (1.0f - a.beta1) * gi;
            float vi = a.beta2 * v[i] + (1.0f - a.beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - a.lr * (mi / a.bc1) / (sqrtf(vi / a.bc2) + a.eps);
        }
        return;
    }
    uint8_t *mq = (uint8_t *)st, *vq = mq + n;
    float *mabs = (float *)(st + a8_codes_bytes_padded(n));
    float *vabs = mabs + (n + KCPU_ADAM8_BLOCK - 1) / KCPU_ADAM8_BLOCK;
    size_t blk = blockIdx.x;
    float ma = mabs[blk], va = vabs[blk];
    float mloc[A8_PER_THREAD], vloc[A8_PER_THREAD], mmax = 0.0f, vmax = 0.0f;
#pragma unroll
    for (int k = 0; k < A8_PER_THREAD; k++) {
        size_t i = i0 + threadIdx.x + (size_t)k * A8_THREADS;
        mloc[k] = vloc[k] = 0.0f;
        if (i >= n)
            continue;
        float gi = g[i];
        /* beta1·(code·absmax) + (1-beta1)·g, rounded step by step as the CPU does. */
        float mi = __fadd_rn(__fmul_rn(a.beta1, __fmul_rn(sgn[mq[i]], ma)),
                             __fmul_rn(1.0f - a.beta1, gi));
        float vi = __fadd_rn(__fmul_rn(a.beta2, __fmul_rn(uns[vq[i]], va)),
                             __fmul_rn(__fmul_rn(1.0f - a.beta2, gi), gi));
        mloc[k] = mi;
        vloc[k] = vi;
        mmax = fmaxf(mmax, fabsf(mi));
        vmax = fmaxf(vmax, vi);
        p[i] = p[i] * decay - a.lr * (mi / a.bc1) / (sqrtf(vi / a.bc2) + a.eps);
    }
    mmax = kc_block_max(mmax, red);
    vmax = kc_block_max(vmax, red);
    float minv = mmax > 0.0f ? 1.0f / mmax : 0.0f, vinv = vmax > 0.0f ? 1.0f / vmax : 0.0f;
#pragma unroll
    for (int k = 0; k < A8_PER_THREAD; k++) {
        size_t i = i0 + threadIdx.x + (size_t)k * A8_THREADS;
        if (i >= n)
            continue;
        mq[i] = a8_encode(sgn, __fmul_rn(mloc[k], minv));
        vq[i] = a8_encode(uns, __fmul_rn(vloc[k], vinv));
    }
    if (threadIdx.x == 0) {
        mabs[blk] = mmax;
        vabs[blk] = vmax;
    }
}

/* The code tables in shared memory: the bisection's divergent reads would serialise on the
 * constant cache. */
#define A8_LOAD_CODES()                                                                          \
    __shared__ float sgn[256], uns[256];                                                         \
    for (int k = threadIdx.x; k < 256; k += blockDim.x) {                                        \
        sgn[k] = a8_code_sgn[k];                                                                 \
        uns[k] = a8_code_uns[k];                                                                 \
    }                                                                                            \
    __syncthreads()

__global__ void __launch_bounds__(A8_THREADS) a8_kernel(a8_args a, size_t n, float wd)
{
    A8_LOAD_CODES();
    a8_block(a, 0, n, a.state, wd, sgn, uns);
}

__global__ void __launch_bounds__(A8_THREADS)
    a8_multi_kernel(a8_args a, const struct backend_opt_seg *segs)
{
    A8_LOAD_CODES();
    struct backend_opt_seg s = segs[blockIdx.y];
    a8_block(a, s.off, s.n, a.state + s.state_off, s.weight_decay, sgn, uns);
}

__global__ void a8_read_kernel(float *out, const char *state, size_t n, int which)
{
    const uint8_t *q = (const uint8_t *)state + (size_t)which * n;
    const float *absmax = (const float *)(state + a8_codes_bytes_padded(n)) +
                          (size_t)which * ((n + KCPU_ADAM8_BLOCK - 1) / KCPU_ADAM8_BLOCK);
    const float *code = which == 0 ? a8_code_sgn : a8_code_uns;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        out[i] = code[q[i]] * absmax[i / KCPU_ADAM8_BLOCK];
}

static a8_args make_args(float *param, const float *grad, void *state, int step, float lr,
                         float beta1, float beta2, float eps)
{
    a8_args a;
    a.param = param;
    a.grad = grad;
    a.state = (char *)state;
    a.lr = lr;
    a.beta1 = beta1;
    a.beta2 = beta2;
    a.eps = eps;
    a.bc1 = (float)(1.0 - pow(beta1, step));
    a.bc2 = (float)(1.0 - pow(beta2, step));
    return a;
}

KCUDA_API size_t kcuda_adamw8bit_state_bytes(size_t n)
{
    if (n < KCPU_ADAM8_MIN_N)
        return 2 * n * sizeof(float);
    return a8_codes_bytes_padded(n) + 2 * a8_nblocks(n) * sizeof(float);
}

KCUDA_API void kcuda_adamw8bit_step(float *param, const float *grad, void *state, size_t n,
                                    int step, float lr, float beta1, float beta2, float eps,
                                    float weight_decay)
{
    if (n == 0)
        return;
    a8_init_codes();
    a8_kernel<<<(unsigned)a8_nblocks(n), A8_THREADS, 0, cuda_stream()>>>(
        make_args(param, grad, state, step, lr, beta1, beta2, eps), n, weight_decay);
    CUDA_LAUNCH_CHECK();
}

extern "C" void kcuda_adamw8bit_step_multi(float *param, const float *grad, void *state,
                                           const struct backend_opt_seg *segs, int nseg,
                                           size_t max_n, int step, float lr, float beta1,
                                           float beta2, float eps)
{
    if (nseg <= 0 || max_n == 0)
        return;
    if (nseg > 65535)
        cuda_fail(cudaErrorInvalidValue, "more than 65535 optimizer segments", __FILE__,
                  __LINE__);
    a8_init_codes();
    dim3 grid((unsigned)a8_nblocks(max_n), (unsigned)nseg);
    a8_multi_kernel<<<grid, A8_THREADS, 0, cuda_stream()>>>(
        make_args(param, grad, state, step, lr, beta1, beta2, eps), segs);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_adamw8bit_read_state(float *out, const void *state, size_t n, int which)
{
    if (n == 0)
        return;
    if (n < KCPU_ADAM8_MIN_N) {
        CUDA_CHECK(cudaMemcpyAsync(out, (const float *)state + (size_t)which * n,
                                   n * sizeof(float), cudaMemcpyDeviceToDevice, cuda_stream()));
        return;
    }
    a8_init_codes();
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    a8_read_kernel<<<need < fill ? need : fill, 256, 0, cuda_stream()>>>(
        out, (const char *)state, n, which);
    CUDA_LAUNCH_CHECK();
}
