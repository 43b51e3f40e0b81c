/* Number formats: fp32 <-> bf16 and fp32 <-> IEEE fp16 conversion (round to nearest even), the
 * native-bf16 CPU check, and int8 weight-only quantisation (per output row,
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

/* fp32 -> fp16, round to nearest even, in integer steps on the bits:
 *  - |x| >= 65520 (the halfway point above the largest half, 65504) -> infinity; NaN -> a
 *    quiet NaN keeping the sign and the top mantissa bits;
 *  - normal halves: rebias the exponent and round the 13 dropped bits to nearest even (a carry
 *    out of the mantissa bumps the exponent, as it should);
 *  - below 2^-14 (subnormal halves, step 2^-24): the mantissa with its implicit bit, shifted
 *    right by the exponent deficit, rounded to nearest even on the shifted-out bits. */
static inline uint16_t f32_to_f16_one(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) /* NaN */
        return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x03FFu));
    if (a >= 0x477FF000u) /* 65520 and up, and infinity */
        return (uint16_t)(sign | 0x7C00u);
    if (a >= 0x38800000u) { /* 2^-14 and up: a normal half */
        uint32_t r = a + 0x0FFFu + ((a >> 13) & 1u) - (112u << 23);
        return (uint16_t)(sign | (r >> 13));
    }
    if (a < 0x33000000u) /* below 2^-25: rounds to zero (2^-25 itself is a tie, to even 0) */
        return (uint16_t)sign;
    uint32_t e = a >> 23;          /* 102 .. 112 */
    uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
    uint32_t shift = 126u - e;     /* 14 .. 24: value = m * 2^(e-150) = q * 2^-24 */
    uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

void kcpu_f32_to_f16(uint16_t *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n > Q_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = f32_to_f16_one(f32_bits(src[i]));
}

/* fp16 -> fp32, exact: normals rebias the exponent, subnormals are q * 2^-24, 31 is inf/NaN. */
static inline float f16_to_f32_one(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x03FFu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f; /* 2^-24 */
        return sign ? -v : v;
    }
    if (e == 31)
        return bits_f32(sign | 0x7F800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

void kcpu_f16_to_f32(float *dst, const uint16_t *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n > Q_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = f16_to_f32_one(src[i]);
}

/* fp32 -> the nearest fp16 value, as fp32 (the two conversions above in one pass). */
void kcpu_round_f16(float *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n > Q_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = f16_to_f32_one(f32_to_f16_one(f32_bits(src[i])));
}

bool kcpu_has_native_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    /* GCC's check also confirms the OS saves the AVX-512 state (XCR0). */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0 && __builtin_cpu_supports("avx512bw") != 0;
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
