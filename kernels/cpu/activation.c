/* Element-wise activations: GELU with the tanh approximation (GPT-2's MLP) and SwiGLU
 * (Llama's MLP, silu(gate)·up over a fused gate|up row), forward and backward.
 * GELU goes through the identity 0.5·(1 + tanh u) = 1 / (1 + e^(-2u)), not tanhf: glibc's
 * tanhf took 18 ns an element here against 3.4 ns for the expf form (a 2-core EPYC VM), and
 * GELU was a third of GPT-2 124M's CPU prefill. The exponential form is also the more accurate
 * one for negative x, where 1 + tanh u cancels. Its exponentials go through kc_exp16 (vexp.h,
 * vectorised; libm's expf is a scalar call without -ffast-math) in ranges cloned per
 * instruction set, one range per thread; every clone gives the same bits. SwiGLU still calls
 * libm's expf. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"
#include "kernels/cpu/vexp.h"

#define ACT_PARALLEL_MIN 16384
#define GELU_K 0.7978845608028654f /* sqrt(2/π) */
#define GELU_A 0.044715f
#define ACT_CHUNK 256 /* elements per pass through the exponential */

/* e[k] = e^(-2u) for the m inputs x, u = k(x + a·x³), u clamped to ±20 when clamp (the
 * backward's); -2·(k·p) is the value (-2k)·p, as scaling by 2 does not round. Inlined into the
 * cloned ranges below, like kc_exp_n itself. */
KC_VEXP_INLINE void gelu_exp_neg2u(float *e, const float *inp, int m, bool clamp)
{
    KC_SIMD
    for (int k = 0; k < m; k++) {
        float x = inp[k], u = GELU_K * (x + GELU_A * x * x * x);
        if (clamp)
            u = fminf(fmaxf(u, -20.0f), 20.0f);
        e[k] = -2.0f * u;
    }
    kc_exp_n(e, e, m);
}

/* out[i0..i1) = GELU(inp): 0.5·x·(1 + tanh u) = x·s, s = 1 / (1 + e^(-2u)), u = k(x + a·x³);
 * e^(-2u) overflows to inf for very negative x, and s to exactly 0, where tanh u is -1 in float
 * as well. The exponentials go 16 at a time through kc_exp16 (vexp.h). */
KC_CLONES static void gelu_forward_range(float *out, const float *inp, size_t i0, size_t i1)
{
    float e[ACT_CHUNK];
    for (size_t c0 = i0; c0 < i1; c0 += ACT_CHUNK) {
        int m = i1 - c0 < ACT_CHUNK ? (int)(i1 - c0) : ACT_CHUNK;
        gelu_exp_neg2u(e, inp + c0, m, false);
        KC_SIMD
        for (int k = 0; k < m; k++)
            out[c0 + k] = inp[c0 + k] / (1.0f + e[k]);
    }
}

/* dinp[i0..i1) += GELU'(inp)·dout: d/dx [x·s] with s = sigmoid(2u), u = k(x + a·x³),
 * du/dx = k(1 + 3a·x²): s + x·2s(1 - s)·du/dx, and 1 - s = e·s with e = e^(-2u) (no
 * cancellation near s = 1). u is clamped to ±20 so that e stays finite (e·s² would be inf·0
 * past it); beyond |u| = 10, s(1 - s) is below float's resolution of s anyway. NaN passes
 * through x. */
KC_CLONES static void gelu_backward_range(float *dinp, const float *inp, const float *dout,
                                           size_t i0, size_t i1)
{
    float e[ACT_CHUNK];
    for (size_t c0 = i0; c0 < i1; c0 += ACT_CHUNK) {
        int m = i1 - c0 < ACT_CHUNK ? (int)(i1 - c0) : ACT_CHUNK;
        gelu_exp_neg2u(e, inp + c0, m, true);
        KC_SIMD
        for (int k = 0; k < m; k++) {
            float x = inp[c0 + k], s = 1.0f / (1.0f + e[k]);
            float d = s + 2.0f * x * e[k] * s * s * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
            dinp[c0 + k] += d * dout[c0 + k];
        }
    }
}

void kcpu_gelu_forward(float *out, const float *inp, size_t n)
{
    KC_RANGES(n, ACT_PARALLEL_MIN, gelu_forward_range(out, inp, i0, i1));
}

void kcpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    KC_RANGES(n, ACT_PARALLEL_MIN, gelu_backward_range(dinp, inp, dout, i0, i1));
}

void kcpu_swiglu_forward(float *out, const float *gate_up, int N, int H)
{
    SW_ASSERT(N >= 0 && H > 0);
#pragma omp parallel for schedule(static) if ((long)N * H > ACT_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gate_up + (size_t)n * 2 * H;
        const float *u = g + H;
        float *y = out + (size_t)n * H;
        for (int j = 0; j < H; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            y[j] = g[j] * sig * u[j];
        }
    }
}

void kcpu_swiglu_backward(float *dgate_up, const float *dout, const float *gate_up, int N, int H)
{
    SW_ASSERT(N >= 0 && H > 0);
    /* y = silu(g)·u: dy/du = silu(g); dy/dg = u·σ(g)·(1 + g·(1 - σ(g))). */
#pragma omp parallel for schedule(static) if ((long)N * H > ACT_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gate_up + (size_t)n * 2 * H;
        const float *u = g + H;
        const float *dy = dout + (size_t)n * H;
        float *dg = dgate_up + (size_t)n * 2 * H;
        float *du = dg + H;
        for (int j = 0; j < H; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            du[j] += g[j] * sig * dy[j];
            dg[j] += u[j] * sig * (1.0f + g[j] * (1.0f - sig)) * dy[j];
        }
    }
}
