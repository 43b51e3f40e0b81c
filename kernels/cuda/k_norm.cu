/* LayerNorm (GPT-2) and RMSNorm (Llama), forward and backward, for the CUDA backend; the
 * formulas and the saved statistics (LayerNorm mean and rstd, RMSNorm rstd, fp32, one per row)
 * are kernels/cpu/norm.c's. One warp per row: the row statistics are warp-shuffle sums in fp32,
 * the LayerNorm variance is two-pass (the row is read again, from L1/L2) so a large mean does
 * not cancel. The weight and bias gradients sum over rows in two passes, as matmul.cu's bias
 * gradient: blocks of 32 columns × a slice of the rows (enough blocks to fill the GPU: with one
 * block per 32 columns, GPT-2's 768 columns kept 24 of an H200's 132 SMs busy, 0.2 ms a call),
 * each slice's sum into the plugin's reduction buffer, then the slices added in order: no
 * atomics, deterministic. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define NORM_ROWS_PER_BLOCK 8 /* warps per block in the row kernels */
#define COLS_SLICE 32         /* columns per block in the weight-gradient kernels */
#define ROW_GROUPS 32         /* row strides per block in the weight-gradient kernels */

/* The forward kernels are templated on the output's element type: float (the fp32 entries) or
 * __nv_bfloat16 (the _a16 entries: the same fp32 arithmetic, the output rounded once by kc_st),
 * so the saved statistics of both are the same bits. bias may be NULL (model.c passes NULL for
 * a LayerNorm without one): nothing is added. */
template <typename TO>
__global__ void layernorm_forward_kernel(TO *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int N, int C,
                                         float eps)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    TO *y = out + (size_t)row * C;
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
    if (bias)
        for (int c = lane; c < C; c += 32)
            kc_st(y + c, (x[c] - m) * r * weight[c] + bias[c]);
    else
        for (int c = lane; c < C; c += 32)
            kc_st(y + c, (x[c] - m) * r * weight[c]);
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

/* Pass 1, block (COLS_SLICE, ROW_GROUPS), grid (column slices, gy row slices): slice
 * y = blockIdx.y sums rows y·ROW_GROUPS + ty, stepping gy·ROW_GROUPS, of n̂[n,c]·dy[n,c] and
 * dy[n,c]; with one slice it adds into dweight / dbias, else it writes partial[y·C + c] and
 * partial[(gy + y)·C + c]. RMS: mean is NULL (n̂ = x·rstd) and dbias is NULL. */
__global__ void norm_backward_weight_kernel(float *dweight, float *dbias, float *partial,
                                            const float *dout, const float *inp,
                                            const float *mean, const float *rstd, int N, int C)
{
    __shared__ float sw[ROW_GROUPS][COLS_SLICE + 1], sb[ROW_GROUPS][COLS_SLICE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * COLS_SLICE + tx;
    int gy = (int)gridDim.y, y = (int)blockIdx.y;
    float dw = 0.0f, db = 0.0f;
    if (c < C) {
        for (int n = y * ROW_GROUPS + ty; n < N; n += gy * ROW_GROUPS) {
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
    if (ty != 0 || c >= C)
        return;
    if (gy == 1) {
        if (dweight)
            dweight[c] += sw[0][tx];
        if (dbias)
            dbias[c] += sb[0][tx];
    } else {
        partial[(size_t)y * C + c] = sw[0][tx];
        partial[(size_t)(gy + y) * C + c] = sb[0][tx];
    }
}

/* Pass 2: dweight[c] += Σ_y partial[y·C + c], dbias[c] += Σ_y partial[(gy + y)·C + c], in
 * order y = 0, 1, ... */
__global__ void norm_backward_weight_pass2(float *dweight, float *dbias, const float *partial,
                                           int C, int gy)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float w = 0.0f, b = 0.0f;
    for (int y = 0; y < gy; y++) {
        w += partial[(size_t)y * C + c];
        b += partial[(size_t)(gy + y) * C + c];
    }
    if (dweight)
        dweight[c] += w;
    if (dbias)
        dbias[c] += b;
}

template <typename TO>
__global__ void rmsnorm_forward_kernel(TO *out, float *rstd, const float *inp,
                                       const float *weight, int N, int C, float eps)
{
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * NORM_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    TO *y = out + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
        ss += x[c] * x[c];
    float r = rsqrtf(kc_warp_sum(ss) / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        kc_st(y + c, x[c] * r * weight[c]);
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
    /* Row slices: at most 64, as many as the reduction buffer holds two partial rows of, and
     * no more than there are row groups. */
    int gy = CUDA_REDUCE_FLOATS / (2 * C);
    int max_gy = (N + ROW_GROUPS - 1) / ROW_GROUPS;
    gy = gy > 64 ? 64 : gy;
    gy = gy > max_gy ? max_gy : gy;
    gy = gy < 1 ? 1 : gy;
    dim3 block(COLS_SLICE, ROW_GROUPS);
    dim3 grid((unsigned)((C + COLS_SLICE - 1) / COLS_SLICE), (unsigned)gy);
    norm_backward_weight_kernel<<<grid, block, 0, cuda_stream()>>>(
        dweight, dbias, cuda_reduce_buf(), dout, inp, mean, rstd, N, C);
    CUDA_LAUNCH_CHECK();
    if (gy > 1) {
        norm_backward_weight_pass2<<<cuda_blocks((size_t)C, 256), 256, 0, cuda_stream()>>>(
            dweight, dbias, cuda_reduce_buf(), C, gy);
        CUDA_LAUNCH_CHECK();
    }
}

template <typename TO>
static void layernorm_forward(TO *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, float eps)
{
    if (N <= 0 || C <= 0)
        return;
    layernorm_forward_kernel<TO><<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0, cuda_stream()>>>(
        out, mean, rstd, inp, weight, bias, N, C, eps);
    CUDA_LAUNCH_CHECK();
}

template <typename TO>
static void rmsnorm_forward(TO *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, float eps)
{
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_forward_kernel<TO><<<row_blocks(N), NORM_ROWS_PER_BLOCK * 32, 0, cuda_stream()>>>(
        out, rstd, inp, weight, N, C, eps);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                       const float *weight, const float *bias, int N, int C,
                                       float eps)
{
    layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}

KCUDA_API void kcuda_layernorm_forward_a16(uint16_t *out, float *mean, float *rstd,
                                           const float *inp, const float *weight,
                                           const float *bias, int N, int C, float eps)
{
    layernorm_forward(kc_bf16(out), mean, rstd, inp, weight, bias, N, C, eps);
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
    rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
}

KCUDA_API void kcuda_rmsnorm_forward_a16(uint16_t *out, float *rstd, const float *inp,
                                         const float *weight, int N, int C, float eps)
{
    rmsnorm_forward(kc_bf16(out), rstd, inp, weight, N, C, eps);
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
