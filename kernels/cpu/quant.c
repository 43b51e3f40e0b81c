/* Number formats: fp32 <-> bf16 conversion (round to nearest even, branch-free so the loops
 * vectorise), the native-bf16 CPU check, and int8 weight-only quantisation (per output row,
 * symmetric, fp32 scale) with a matmul that dequantises the weight on the fly. The 8-bit
 * optimizer states are in adam8bit.c. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>
#include <string.h>

#include "common/common.h"

#define Q_PARALLEL_MIN 65536

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* RNE on the low 16 bits: add 0x7FFF plus the lowest kept bit, then truncate. A carry out of
 * the mantissa correctly bumps the exponent (and the largest finite values round to infinity,
 * as IEEE RNE does). NaN must not be rounded (it could become infinity): it maps to a quiet NaN
 * with the same sign. */
void kcpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > Q_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f32_bits(src[i]);
        uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        uint32_t qnan = (u >> 16) | 0x0040u;
        int is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
        dst[i] = (uint16_t)(is_nan ? qnan : rounded);
    }
}

void kcpu_bf16_to_f32(float *dst, const uint16_t *src, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > Q_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = bits_f32((uint32_t)src[i] << 16);
}

bool kcpu_has_native_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    /* GCC's check also confirms the OS saves the AVX-512 state (XCR0). */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
#else
    /* TODO: clang lacks the "avx512bf16" name in older releases and ARM's BF16 extension needs
     * a getauxval check; until then other compilers and architectures report emulation. */
    return false;
#endif
}

void kcpu_quantize_int8_rows(int8_t *wq, float *scale, const float *w, int OC, int C)
{
    SW_ASSERT(OC > 0 && C > 0);
#pragma omp parallel for schedule(static) if ((long)OC * C > Q_PARALLEL_MIN)
    for (int o = 0; o < OC; o++) {
        const float *row = w + (size_t)o * C;
        int8_t *q = wq + (size_t)o * C;
        float amax = 0.0f;
        for (int c = 0; c < C; c++) {
            float a = fabsf(row[c]);
            amax = a > amax ? a : amax;
        }
        float s = amax / 127.0f;
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        scale[o] = s;
        for (int c = 0; c < C; c++) {
            /* |row·inv| <= 127 up to one rounding; clamp guards that last ulp. */
            float r = nearbyintf(row[c] * inv);
            r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
            q[c] = (int8_t)r;
        }
    }
}

void kcpu_matmul_int8_forward(float *out, const float *inp, const int8_t *wq, const float *scale,
                              const float *bias, int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    /* Threads own output channels, so each reads its int8 weight row once per input row while
     * it is hot in L1; the int8 -> fp32 widening inside the dot product vectorises. The scale is
     * applied once per output, after the sum (it is constant along the row). */
#pragma omp parallel for collapse(2) schedule(static) if ((long)N * OC * C > Q_PARALLEL_MIN)
    for (int o = 0; o < OC; o++) {
        for (int n = 0; n < N; n++) {
            const int8_t *q = wq + (size_t)o * C;
            const float *x = inp + (size_t)n * C;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int c = 0; c < C; c++)
                acc += x[c] * (float)q[c];
            out[(size_t)n * OC + o] = acc * scale[o] + (bias ? bias[o] : 0.0f);
        }
    }
}
