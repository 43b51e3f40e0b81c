/* Number formats on the CUDA backend, as kernels/cpu/quant.c: fp32 -> bf16 with the CPU's
 * exact bit recipe (round to nearest even, NaN kept as a quiet NaN of the same sign, overflow
 * to infinity), so bf16 copies made on either backend are identical; bf16 -> fp32 (exact);
 * int8 weight-only quantisation per output row (symmetric, scale = max|w|/127, round half to
 * even as nearbyintf) and the matmul that dequantises the int8 weight on the fly for
 * generation: one warp per output channel reads its int8 row once per group of KQ_ROWS input
 * rows and keeps KQ_ROWS fp32 dot products (matrix-vector shaped: decode has few rows). */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define KQ_WARPS 8
#define KQ_ROWS 8

__global__ void f32_to_bf16_bits_kernel(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        uint32_t u = __float_as_uint(src[i]);
        uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        uint32_t qnan = (u >> 16) | 0x0040u;
        bool is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
        dst[i] = (uint16_t)(is_nan ? qnan : rounded);
    }
}

__global__ void bf16_to_f32_bits_kernel(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

/* One warp per row: absmax (exact in any order), then the codes. */
__global__ void quantize_int8_rows_kernel(int8_t *wq, float *scale, const float *w, int OC, int C)
{
    int lane = threadIdx.x & 31;
    int o = blockIdx.x * KQ_WARPS + (threadIdx.x >> 5);
    if (o >= OC)
        return;
    const float *row = w + (size_t)o * C;
    int8_t *q = wq + (size_t)o * C;
    float amax = 0.0f;
    for (int c = lane; c < C; c += 32)
        amax = fmaxf(amax, fabsf(row[c]));
    amax = kc_warp_max(amax);
    float s = amax / 127.0f;
    float inv = s > 0.0f ? 1.0f / s : 0.0f;
    if (lane == 0)
        scale[o] = s;
    for (int c = lane; c < C; c += 32) {
        float r = rintf(__fmul_rn(row[c], inv));
        r = fminf(127.0f, fmaxf(-127.0f, r));
        q[c] = (int8_t)r;
    }
}

/* Warp per output channel o: out[n, o] = scale[o]·Σ_c inp[n, c]·wq[o, c] + bias[o]. */
__global__ void matmul_int8_kernel(float *out, const float *inp, const int8_t *wq,
                                   const float *scale, const float *bias, int N, int C, int OC)
{
    int lane = threadIdx.x & 31;
    int o = blockIdx.x * KQ_WARPS + (threadIdx.x >> 5);
    if (o >= OC)
        return;
    const int8_t *q = wq + (size_t)o * C;
    float so = scale[o], bo = bias ? bias[o] : 0.0f;
    for (int n0 = 0; n0 < N; n0 += KQ_ROWS) {
        int nr = N - n0 < KQ_ROWS ? N - n0 : KQ_ROWS;
        float acc[KQ_ROWS];
#pragma unroll
        for (int r = 0; r < KQ_ROWS; r++)
            acc[r] = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float wv = (float)q[c];
#pragma unroll
            for (int r = 0; r < KQ_ROWS; r++)
                if (r < nr)
                    acc[r] += inp[(size_t)(n0 + r) * C + c] * wv;
        }
#pragma unroll
        for (int r = 0; r < KQ_ROWS; r++) {
            float s = kc_warp_sum(acc[r]);
            if (lane == 0 && r < nr)
                out[(size_t)(n0 + r) * OC + o] = s * so + bo;
        }
    }
}

static unsigned ew_blocks(size_t n)
{
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    return need < fill ? need : fill;
}

KCUDA_API void kcuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n)
{
    if (n == 0)
        return;
    f32_to_bf16_bits_kernel<<<ew_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n)
{
    if (n == 0)
        return;
    bf16_to_f32_bits_kernel<<<ew_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_quantize_int8_rows(int8_t *wq, float *scale, const float *w, int OC, int C)
{
    if (OC <= 0 || C <= 0)
        return;
    quantize_int8_rows_kernel<<<(unsigned)((OC + KQ_WARPS - 1) / KQ_WARPS), KQ_WARPS * 32, 0,
                                cuda_stream()>>>(wq, scale, w, OC, C);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_matmul_int8_forward(float *out, const float *inp, const int8_t *wq,
                                         const float *scale, const float *bias, int N, int C,
                                         int OC)
{
    if (N <= 0 || OC <= 0 || C <= 0)
        return;
    matmul_int8_kernel<<<(unsigned)((OC + KQ_WARPS - 1) / KQ_WARPS), KQ_WARPS * 32, 0,
                         cuda_stream()>>>(out, inp, wq, scale, bias, N, C, OC);
    CUDA_LAUNCH_CHECK();
}
