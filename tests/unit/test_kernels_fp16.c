/* IEEE fp16 conversion (kernels/cpu/quant.c): every one of the 65536 halves converts to fp32
 * and back unchanged (NaNs stay NaN); rounding of fp32 to fp16 at the edges (ties to even,
 * the largest half, overflow to infinity, subnormals and the underflow tie) against hand
 * values; and, where the CPU has F16C, 2^20 random fp32 values against the hardware's own
 * round-to-nearest-even conversion (vcvtps2ph). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "kernels/cpu/kernels_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_F16C_TEST 1
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#endif

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t h_of(float f)
{
    uint16_t h;
    kcpu_f32_to_f16(&h, &f, 1);
    return h;
}

static void test_roundtrip_all(void)
{
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    kcpu_f16_to_f32(f, h, 65536);
    kcpu_f32_to_f16(back, f, 65536);
    int bad = 0, nan_bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        bool is_nan = ((i >> 10) & 0x1F) == 0x1F && (i & 0x3FF);
        if (is_nan)
            nan_bad += !isnan(f[i]) || ((back[i] & 0x7C00) != 0x7C00) || !(back[i] & 0x3FF);
        else
            bad += back[i] != h[i];
    }
    CHECK_INT(bad, 0);
    CHECK_INT(nan_bad, 0);
    /* A few exact values. */
    CHECK(f[0x3C00] == 1.0f && f[0xC000] == -2.0f && f[0x7BFF] == 65504.0f);
    CHECK(f[0x0001] == ldexpf(1.0f, -24) && f[0x0400] == ldexpf(1.0f, -14));
    CHECK(isinf(f[0x7C00]) && f[0xFC00] < 0);
}

static void test_rounding_edges(void)
{
    CHECK_INT(h_of(1.0f + ldexpf(1.0f, -11)), 0x3C00);     /* tie: to even (1.0) */
    CHECK_INT(h_of(1.0f + 3 * ldexpf(1.0f, -11)), 0x3C02); /* tie: to even (up) */
    CHECK_INT(h_of(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3C01);
    CHECK_INT(h_of(65504.0f), 0x7BFF);
    CHECK_INT(h_of(65519.996f), 0x7BFF);
    CHECK_INT(h_of(65520.0f), 0x7C00); /* halfway above the largest half: to infinity */
    CHECK_INT(h_of(-1e10f), 0xFC00);
    CHECK_INT(h_of(ldexpf(1.0f, -24)), 0x0001);
    CHECK_INT(h_of(ldexpf(1.0f, -25)), 0x0000);              /* underflow tie: to even 0 */
    CHECK_INT(h_of(ldexpf(1.5f, -25)), 0x0001);
    CHECK_INT(h_of(ldexpf(3.0f, -25)), 0x0002);              /* 1.5 steps: tie to even 2 */
    CHECK_INT(h_of(ldexpf(1023.5f, -24)), 0x0400);           /* rounds up into the normals */
    CHECK_INT(h_of(-0.0f), 0x8000);
    CHECK_INT(h_of(from_bits(0x7FC00000u)) & 0x7E00, 0x7E00); /* quiet NaN */
}

static void test_against_f16c(void)
{
#ifdef HAVE_F16C_TEST
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) {
        printf("test_kernels_fp16: F16C comparison skipped: this CPU has no F16C\n");
        return;
    }
    enum { N = 1 << 20 };
    static float f[N];
    static uint16_t mine[N];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        /* Exponents concentrated around fp16's range (2^-30 .. 2^20), all mantissas. */
        uint32_t e = 97u + (uint32_t)(s % 50u), m = (uint32_t)(s >> 20) & 0x7FFFFFu;
        f[i] = from_bits(((uint32_t)(s >> 63) << 31) | (e << 23) | m);
    }
    kcpu_f32_to_f16(mine, f, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (mine[i] != hw_f32_to_f16(f[i]) && bad++ < 5)
            fprintf(stderr, "f16c mismatch: %a -> %04x, hardware %04x\n", (double)f[i], mine[i],
                    hw_f32_to_f16(f[i]));
    CHECK_INT(bad, 0);
#else
    printf("test_kernels_fp16: F16C comparison skipped: not an x86-64 GCC build\n");
#endif
}

/* kcpu_round_f16 is the two conversions in one pass, in place too. */
static void test_round_f16(void)
{
    enum { N = 4096 };
    static float f[N], r[N], two[N];
    static uint16_t h[N];
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t e = 97u + (uint32_t)(s % 50u), m = (uint32_t)(s >> 20) & 0x7FFFFFu;
        f[i] = from_bits(((uint32_t)(s >> 63) << 31) | (e << 23) | m);
    }
    f[0] = 70000.0f; /* overflows to infinity */
    f[1] = 1e-9f;    /* underflows to zero */
    kcpu_f32_to_f16(h, f, N);
    kcpu_f16_to_f32(two, h, N);
    kcpu_round_f16(r, f, N);
    CHECK(memcmp(r, two, sizeof r) == 0);
    CHECK(isinf(r[0]) && r[0] > 0);
    CHECK(r[1] == 0.0f);
    kcpu_round_f16(f, f, N);
    CHECK(memcmp(f, two, sizeof f) == 0);
}

int main(void)
{
    RUN(test_round_f16);
    RUN(test_roundtrip_all);
    RUN(test_rounding_edges);
    RUN(test_against_f16c);
    return harness_finish("test_kernels_fp16");
}
