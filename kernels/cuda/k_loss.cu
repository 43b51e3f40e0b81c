/* Fused softmax + cross-entropy for the CUDA backend (kernels/cpu/loss.c's contract, llm.c's
 * fused classifier): one block per row reads the Vp-wide logits once with an online softmax
 * (running max and rescaled sum, Milakov & Gimelshein 2018) to get the logsumexp and the loss,
 * then, when the gradient is wanted, overwrites the row in place with
 * grad_scale·(softmax - onehot)/n_valid (a second sweep over the row it just read, which is
 * still in L2), zeroing the padded columns V..Vp-1 and ignored rows (target -1). No second
 * N×Vp buffer exists (strategy reference 3.6, c_V = 4).
 * The mean loss comes back to the host, deterministically: kernel 1 counts the valid targets,
 * kernel 2's blocks each add their rows' losses in row order (double) into a partial, kernel 3
 * adds the partials in a fixed tree; the grid size depends only on N, never on the device.
 * Partials live in the plugin's reduction buffer (cuda_reduce_buf). n_valid is a HOST pointer;
 * losses and targets are device pointers.
 * bf16 logits (kcuda_softmax_ce_a16, bf16 activations: the head matmul writes them bf16, as
 * PyTorch's autocast does): the same kernel templated on the element type, each value widened
 * to fp32 as it is read, so the loss is the fp32 kernel's on the widened values bit for bit;
 * the gradient is computed in fp32 and rounded to bf16 (nearest even) as it is stored. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define CE_THREADS 512
#define CE_MAX_BLOCKS 8192 /* partials: 8192 doubles = 16 K floats of the reduction buffer */

/* buf layout (floats): [0..1] total (double), [2] valid count (int), [4..] partials (double). */
struct ce_result {
    double total;
    int valid;
    int pad;
};

__global__ void ce_count_kernel(struct ce_result *res, const int *targets, int N)
{
    __shared__ float red[32];
    float c = 0.0f; /* exact: counts stay far below 2^24 per thread */
    for (int i = threadIdx.x; i < N; i += blockDim.x)
        c += targets[i] >= 0 ? 1.0f : 0.0f;
    float tot = kc_block_sum(c, red);
    if (threadIdx.x == 0)
        res->valid = (int)tot;
}

/* Merge two (max, sum-of-exp relative to max) pairs. */
static __device__ __forceinline__ void ce_merge(float &m, float &s, float m2, float s2)
{
    float mn = fmaxf(m, m2);
    if (mn == -INFINITY)
        return; /* both empty */
    s = (m == -INFINITY ? 0.0f : s * expf(m - mn)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn));
    m = mn;
}

template <typename T>
__global__ void __launch_bounds__(CE_THREADS)
    ce_rows_kernel(T *logits, float *losses, double *partial,
                   const struct ce_result *res, const int *targets, int N, int V, int Vp,
                   bool want_grad, float grad_scale)
{
    __shared__ float sm_m[32], sm_s[32];
    __shared__ float s_target_logit;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int valid = res->valid;
    float gscale = valid > 0 ? grad_scale / (float)valid : 0.0f;
    double block_total = 0.0;
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        T *x = logits + (size_t)row * Vp;
        int tgt = targets[row];
        if (tgt < 0) { /* block-uniform */
            if (threadIdx.x == 0 && losses)
                losses[row] = 0.0f;
            if (want_grad)
                for (int i = threadIdx.x; i < Vp; i += blockDim.x)
                    kc_st(x + i, 0.0f);
            continue;
        }
        float m = -INFINITY, s = 0.0f;
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float xi = kc_ld(x + i);
            if (xi > m) {
                s = s * expf(m - xi) + 1.0f; /* m = -inf: 0·0 + 1 */
                m = xi;
            } else {
                s += expf(xi - m);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(KC_FULL_MASK, m, o);
            float s2 = __shfl_xor_sync(KC_FULL_MASK, s, o);
            ce_merge(m, s, m2, s2);
        }
        if (lane == 0) {
            sm_m[warp] = m;
            sm_s[warp] = s;
        }
        if (threadIdx.x == 0)
            s_target_logit = kc_ld(x + tgt);
        __syncthreads();
        m = sm_m[0];
        s = sm_s[0];
        for (int w = 1; w < nw; w++) /* fixed order: every thread gets the same result */
            ce_merge(m, s, sm_m[w], sm_s[w]);
        float lse = m + logf(s);
        float loss = lse - s_target_logit;
        __syncthreads(); /* sm_* and s_target_logit are rewritten by the next row */
        if (threadIdx.x == 0) {
            if (losses)
                losses[row] = loss;
            block_total += loss;
        }
        if (want_grad) {
            float inv = 1.0f / s;
            for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
                float gi = 0.0f;
                if (i < V)
                    gi = expf(kc_ld(x + i) - m) * inv * gscale - (i == tgt ? gscale : 0.0f);
                kc_st(x + i, gi);
            }
        }
    }
    if (threadIdx.x == 0)
        partial[blockIdx.x] = block_total;
}

/* One block: res->total = Σ partial[0..n) in a fixed order. */
__global__ void ce_total_kernel(struct ce_result *res, const double *partial, int n)
{
    __shared__ double red[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += partial[i];
    s = kc_block_sum_d(s, red);
    if (threadIdx.x == 0)
        res->total = s;
}

template <typename T>
static float softmax_ce(T *logits, float *losses, int *n_valid, const int *targets, int N, int V,
                        int Vp, bool want_grad, float grad_scale)
{
    if (N <= 0) {
        if (n_valid)
            *n_valid = 0;
        return 0.0f;
    }
    cudaStream_t st = cuda_stream();
    float *buf = cuda_reduce_buf();
    struct ce_result *res = (struct ce_result *)buf;
    double *partial = (double *)(buf + 4);
    int blocks = N < CE_MAX_BLOCKS ? N : CE_MAX_BLOCKS;
    ce_count_kernel<<<1, 1024, 0, st>>>(res, targets, N);
    CUDA_LAUNCH_CHECK();
    ce_rows_kernel<T><<<blocks, CE_THREADS, 0, st>>>(logits, losses, partial, res, targets, N, V,
                                                     Vp, want_grad, grad_scale);
    CUDA_LAUNCH_CHECK();
    ce_total_kernel<<<1, 1024, 0, st>>>(res, partial, blocks);
    CUDA_LAUNCH_CHECK();
    struct ce_result h;
    CUDA_CHECK(cudaMemcpyAsync(&h, res, sizeof h, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    if (n_valid)
        *n_valid = h.valid;
    return h.valid > 0 ? (float)(h.total / h.valid) : 0.0f;
}

KCUDA_API float kcuda_softmax_ce(float *logits, float *losses, int *n_valid, const int *targets,
                                 int N, int V, int Vp, bool want_grad, float grad_scale)
{
    return softmax_ce(logits, losses, n_valid, targets, N, V, Vp, want_grad, grad_scale);
}

KCUDA_API float kcuda_softmax_ce_a16(uint16_t *logits, float *losses, int *n_valid,
                                     const int *targets, int N, int V, int Vp, bool want_grad,
                                     float grad_scale)
{
    return softmax_ce(kc_bf16(logits), losses, n_valid, targets, N, V, Vp, want_grad,
                      grad_scale);
}

/* ---------------------------------------------------------------- greedy argmax */

/* A candidate (value, index); index -1: none yet. b replaces a when it is larger, or equal at a
 * lower index: the lowest index of the maximum, in any combining order. NaN never enters. */
static __device__ __forceinline__ void am_take(float &av, int &ai, float bv, int bi)
{
    if (bi >= 0 && (ai < 0 || bv > av || (bv == av && bi < ai))) {
        av = bv;
        ai = bi;
    }
}

/* One block per row r0 + blockIdx.x: out[blockIdx.x] = argmax of x[row·ld + 0 .. V). */
__global__ void __launch_bounds__(256)
    argmax_rows_kernel(int *out, const float *x, int r0, int V, int ld)
{
    __shared__ float sv[256];
    __shared__ int si[256];
    const float *row = x + (size_t)(r0 + blockIdx.x) * ld;
    float bv = 0.0f;
    int bi = -1;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = row[i];
        if (!isnan(v))
            am_take(bv, bi, v, i);
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float v = sv[threadIdx.x];
            int i = si[threadIdx.x];
            am_take(v, i, sv[threadIdx.x + s], si[threadIdx.x + s]);
            sv[threadIdx.x] = v;
            si[threadIdx.x] = i;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = si[0] < 0 ? 0 : si[0];
}

/* The rows' indices go through the plugin's reduction buffer, CUDA_REDUCE_FLOATS rows at a time,
 * and come back to the host: greedy decoding then copies B ints instead of B·Vp logits. */
KCUDA_API void kcuda_argmax_rows(int *out, const float *x, int rows, int V, int ld)
{
    cudaStream_t st = cuda_stream();
    int *buf = (int *)cuda_reduce_buf();
    for (int r0 = 0; r0 < rows; r0 += CUDA_REDUCE_FLOATS) {
        int n = rows - r0 < CUDA_REDUCE_FLOATS ? rows - r0 : CUDA_REDUCE_FLOATS;
        argmax_rows_kernel<<<n, 256, 0, st>>>(buf, x, r0, V, ld);
        CUDA_LAUNCH_CHECK();
        CUDA_CHECK(cudaMemcpyAsync(out + r0, buf, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost,
                                   st));
        CUDA_CHECK(cudaStreamSynchronize(st));
    }
}

