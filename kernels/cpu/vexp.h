/* kernels/cpu/vexp.h — e^x for 16 floats at a time, for the CPU kernels' hot loops (GELU, the
 * softmax-CE, flash attention): internal to kernels/cpu, not part of the module's interface.
 *
 * glibc's expf is a scalar call (2 ns an element here), which GCC vectorises only under
 * -ffast-math. kc_exp16 is Cephes' expf (Moshier) in GCC vector extensions: x = n·ln2 + r with
 * n = round(x·log2 e) and ln 2 split in two (Cody-Waite), e^r by a degree-7 polynomial, 2^n
 * from exponent bits as 2^(n>>1)·2^(n - (n>>1)) so that gradual underflow down to e^-104 and
 * the top of the range stay exact. Within 0.75 float epsilons (relative) of exp over normal
 * results, down to denormals; e^x = +inf above 88.7228394, +0 at -inf, NaN for NaN. Inlined
 * (always_inline) into functions cloned per instruction set, it becomes AVX-512, AVX2 or SSE2
 * code; the operations per lane are the same in each, so every clone gives the same bits.
 * Elsewhere (not GCC or clang) it falls back to expf. */
#ifndef SW_KERNELS_CPU_VEXP_H
#define SW_KERNELS_CPU_VEXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/simd.h"

#if defined(__GNUC__)
#define KC_VEXP_INLINE static inline __attribute__((always_inline))
typedef float kc_vf16 __attribute__((vector_size(64)));
typedef int32_t kc_vi16 __attribute__((vector_size(64)));

/* out[0..15] = e^in[0..15] (out may be in). */
KC_VEXP_INLINE void kc_exp16(float *out, const float *in)
{
    const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
    const float hi = 88.7228394f, lo = -104.0f, magic = 12582912.0f; /* 1.5·2^23 */
    const kc_vf16 zero = {0}, vhi = zero + hi, vlo = zero + lo, vinf = zero + INFINITY;
    kc_vf16 x, xc, t, nf, r, z, p, s1, s2, y;
    kc_vi16 n, n1, n2, big, small;
    memcpy(&x, in, sizeof x);
    big = x > hi; /* all ones where x > hi (not for NaN) */
    xc = (kc_vf16)(((kc_vi16)x & ~big) | ((kc_vi16)vhi & big));
    small = xc < lo;
    xc = (kc_vf16)(((kc_vi16)xc & ~small) | ((kc_vi16)vlo & small));
    t = xc * log2e + magic; /* round(x·log2 e) in t's low mantissa bits */
    n = (kc_vi16)t - 0x4B400000;
    nf = t - magic;
    r = xc - nf * c1;
    r = r - nf * c2;
    z = r * r;
    p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    n1 = n >> 1;
    n2 = n - n1;
    s1 = (kc_vf16)((n1 + 127) << 23);
    s2 = (kc_vf16)((n2 + 127) << 23);
    y = p * s1 * s2;
    y = (kc_vf16)(((kc_vi16)y & ~big) | ((kc_vi16)vinf & big));
    memcpy(out, &y, sizeof y);
}
#else
#define KC_VEXP_INLINE static inline
static inline void kc_exp16(float *out, const float *in)
{
    for (int i = 0; i < 16; i++)
        out[i] = expf(in[i]);
}
#endif

/* out[i] = e^in[i] for i < n, 16 at a time (the last group through a padded copy). */
KC_VEXP_INLINE void kc_exp_n(float *out, const float *in, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        kc_exp16(out + i, in + i);
    if (i < n) {
        float t[16] = {0};
        memcpy(t, in + i, sizeof(float) * (size_t)(n - i));
        kc_exp16(t, t);
        memcpy(out + i, t, sizeof(float) * (size_t)(n - i));
    }
}

#endif
