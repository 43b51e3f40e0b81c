/* LayerNorm (GPT-2) and RMSNorm (Llama), forward and backward, for the CUDA backend; the
 * formulas and the saved statistics (LayerNorm mean and rstd, RMSNorm rstd, fp32, one per row)
 * are kernels/cpu/norm.c's. One warp per row: the row statistics are warp-shuffle sums in fp32,
 * the LayerNorm variance is two-pass (the row is read again, from L1/L2) so a large mean does
 * not cancel. The weight and bias gradients sum over rows; a block owns 32 columns and its 32
 * warps stride over the rows, then the 32 partial sums are added in a fixed tree: no atomics,
 * no scratch, deterministic. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define NORM_ROWS_PER_BLOCK 8 /* warps per block in the row kernels */
#define COLS_SLICE 32         /* columns per block in the weight-gradient kernels */
#define ROW_GROUPS 32         /* row strides per block in the weight-gradient kernels */

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int N, int C,
                                         float eps)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    float *y = out + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32)
        s += x[c];
    float m = kc_warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = rsqrtf(kc_warp_sum(v) / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (lane == 0) {
        if (mean)
            mean[row] = m;
        if (rstd)
            rstd[row] = r;
    }
}

/* dx += (w·dy - mean(w·dy) - n̂·mean(w·dy·n̂))·rstd, n̂ = (x - mean)·rstd (norm.c). */
__global__ void layernorm_backward_input_kernel(float *dinp, const float *dout, const float *inp,
                                                const float *weight, const float *mean,
                                                const float *rstd, int N, int C)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    const float *g = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sdn = 0.0f, sdnh = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = weight[c] * g[c];
        sdn += dn;
        sdnh += dn * (x[c] - m) * r;
    }
    float mdn = kc_warp_sum(sdn) / (float)C, mdnh = kc_warp_sum(sdnh) / (float)C;
    for (int c = lane; c < C; c += 32) {
        float nh = (x[c] - m) * r;
        dx[c] += (weight[c] * g[c] - mdn - nh * mdnh) * r;
    }
}

/* Block (COLS_SLICE, ROW_GROUPS): dweight[c] += Σ_n n̂[n,c]·dy[n,c], dbias[c] += Σ_n dy[n,c].
 * RMS: mean is NULL (n̂ = x·rstd) and dbias is NULL. */
__global__ void norm_backward_weight_kernel(float *dweight, float *dbias, const float *dout,
                                            const float *inp, const float *mean,
                                            const float *rstd, int N, int C)
{
    __shared__ float sw[ROW_GROUPS][COLS_SLICE + 1], sb[ROW_GROUPS][COLS_SLICE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * COLS_SLICE + tx;
    float dw = 0.0f, db = 0.0f;
    if (c < C) {
        for (int n = ty; n < N; n += ROW_GROUPS) {
            float g = dout[(size_t)n * C + c];
            float xv = inp[(size_t)n * C + c];
            float nh = (mean ? xv - mean[n] : xv) * rstd[n];
            dw += nh * g;
            db += g;
        }
    }
    sw[ty][tx] = dw;
    sb[ty][tx] = db;
    __syncthreads();
    for (int half = ROW_GROUPS / 2; half > 0; half >>= 1) {
        if (ty < half) {
            sw[ty][tx] += sw[ty + half][tx];
            sb[ty][tx] += sb[ty + half][tx];
        }
        __syncthreads();
    }
    if (ty == 0 && c < C) {
        if (dweight)
            dweight[c] += sw[0][tx];
        if (dbias)
            dbias[c] += sb[0][tx];
    }
}

__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp,
                                       const float *weight, int N, int C, float eps)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    float *y = out + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
        ss += x[c] * x[c];
    float r = rsqrtf(kc_warp_sum(ss) / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        y[c] = x[c] * r * weight[c];
    if (lane == 0 && rstd)
        rstd[row] = r;
}

/* dx += r·w·dy - x·r³·mean(dy·w·x) (norm.c). */
__global__ void rmsnorm_backward_input_kernel(float *dinp, const float *dout, const float *inp,
                                              const float *weight, const float *rstd, int N,
                                              int C)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    const float *g = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float r = rstd[row];
    float dot = 0.0f;
    for (int c = lane; c < C; c += 32)
        dot += g[c] * weight[c] * x[c];
    float k = r * r * r * kc_warp_sum(dot) / (float)C;
    for (int c = lane; c < C; c += 32)
        dx[c] += r * weight[c] * g[c] - x[c] * k;
}

static unsigned row_blocks(int N)
{
    return (unsigned)((N + NORM_ROWS_PER_BLOCK - 1) / NORM_ROWS_PER_BLOCK);
}

static void weight_grads(float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *mean, const float *rstd, int N, int C)
{
    if (!dweight && !dbias)
        return;
    dim3 block(COLS_SLICE, ROW_GROUPS);
    norm_backward_weight_kernel<<<(unsigned)((C + COLS_SLICE - 1) / COLS_SLICE), block, 0,
                                  cuda_stream()>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                       const float *weight, const float *bias, int N, int C,
                                       float eps)
{
    if (N <= 0 || C <= 0)
        return;
    layernorm_forward_kernel<<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0, cuda_stream()>>>(
        out, mean, rstd, inp, weight, bias, N, C, eps);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_layernorm_backward(float *dinp, float *dweight, float *dbias,
                                        const float *dout, const float *inp,
                                        const float *weight, const float *mean,
                                        const float *rstd, int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    layernorm_backward_input_kernel<<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0,
                                      cuda_stream()>>>(dinp, dout, inp, weight, mean, rstd, N, C);
    CUDA_LAUNCH_CHECK();
    weight_grads(dweight, dbias, dout, inp, mean, rstd, N, C);
}

KCUDA_API void kcuda_rmsnorm_forward(float *out, float *rstd, const float *inp,
                                     const float *weight, int N, int C, float eps)
{
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_forward_kernel<<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0, cuda_stream()>>>(
        out, rstd, inp, weight, N, C, eps);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout,
                                      const float *inp, const float *weight, const float *rstd,
                                      int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_backward_input_kernel<<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0,
                                    cuda_stream()>>>(dinp, dout, inp, weight, rstd, N, C);
    CUDA_LAUNCH_CHECK();
    weight_grads(dweight, nullptr, dout, inp, nullptr, rstd, N, C);
}
