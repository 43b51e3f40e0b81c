/* IEEE fp16 conversions for fp16-mixed on the CUDA backend: fp32 -> binary16 (the weight
 * mirror), binary16 -> fp32, and both at once (round_f16: an fp32 tensor replaced by its nearest
 * fp16 values). kernels/cpu/quant.c's kcpu_f32_to_f16 / kcpu_f16_to_f32 / kcpu_round_f16 have the
 * contract, and the results are the CPU's bit for bit, so fp16 mirrors made on either backend
 * are identical:
 *  - finite and infinite values go through the hardware conversions: __float2half_rn rounds to
 *    nearest even, keeps subnormals and sends |x| >= 65520 to infinity, exactly as the CPU's
 *    integer recipe; __half2float is exact;
 *  - NaN is done by hand with the CPU's bit pattern (sign, quiet bit, the top 10 payload bits
 *    either way), because the hardware returns a canonical NaN and drops sign and payload.
 * One grid-stride element-wise kernel each. The fp16 matmuls (and their operand rounding) are in
 * matmul.cu. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#include <cuda_fp16.h>

/* fp32 -> fp16 bits, as kcpu_f32_to_f16. */
static __device__ __forceinline__ uint16_t f16_bits(float x)
{
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)(((u >> 16) & 0x8000u) | 0x7E00u | ((u >> 13) & 0x03FFu));
    return __half_as_ushort(__float2half_rn(x));
}

/* fp16 bits -> fp32, as kcpu_f16_to_f32 (a NaN keeps sign and payload, quiet or not). */
static __device__ __forceinline__ float f16_value(uint16_t h)
{
    if ((h & 0x7FFFu) > 0x7C00u)
        return __uint_as_float(((uint32_t)(h & 0x8000u) << 16) | 0x7F800000u |
                               ((uint32_t)(h & 0x03FFu) << 13));
    return __half2float(__ushort_as_half(h));
}

__global__ static void f32_to_f16_kernel(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        dst[i] = f16_bits(src[i]);
}

__global__ static void f16_to_f32_kernel(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        dst[i] = f16_value(src[i]);
}

/* Element-wise, so dst may equal src. */
__global__ static void round_f16_kernel(float *dst, const float *src, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        dst[i] = f16_value(f16_bits(src[i]));
}

static unsigned fp16_blocks(size_t n)
{
    unsigned need = cuda_blocks(n, 256), cap = cuda_fill_blocks(256, 8);
    return need < cap ? need : cap;
}

KCUDA_API void kcuda_f32_to_f16(uint16_t *dst, const float *src, size_t n)
{
    if (n == 0)
        return;
    f32_to_f16_kernel<<<fp16_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_f16_to_f32(float *dst, const uint16_t *src, size_t n)
{
    if (n == 0)
        return;
    f16_to_f32_kernel<<<fp16_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_round_f16(float *dst, const float *src, size_t n)
{
    if (n == 0)
        return;
    round_f16_kernel<<<fp16_blocks(n), 256, 0, cuda_stream()>>>(dst, src, n);
    CUDA_LAUNCH_CHECK();
}
