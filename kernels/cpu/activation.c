/* Element-wise activations: GELU with the tanh approximation (GPT-2's MLP) and SwiGLU
 * (Llama's MLP, silu(gate)·up over a fused gate|up row), forward and backward. The loops call
 * libm's expf, which neither GCC nor clang vectorise without -ffast-math (glibc's vector
 * variants are declared only then), so they carry no simd pragma and parallelise over threads.
 * GELU goes through the identity 0.5·(1 + tanh u) = 1 / (1 + e^(-2u)), not tanhf: glibc's
 * tanhf took 18 ns an element here against 3.4 ns for the expf form (a 2-core EPYC VM), and
 * GELU was a third of GPT-2 124M's CPU prefill. The expf form is also the more accurate one
 * for negative x, where 1 + tanh u cancels. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

#define ACT_PARALLEL_MIN 16384
#define GELU_K 0.7978845608028654f /* sqrt(2/π) */
#define GELU_A 0.044715f

void kcpu_gelu_forward(float *out, const float *inp, size_t n)
{
    /* 0.5·x·(1 + tanh u) = x·s, s = 1 / (1 + e^(-2u)), u = k(x + a·x³): e^(-2u) overflows to
     * inf for very negative x, and s to exactly 0, where tanh u is -1 in float as well. */
#pragma omp parallel for schedule(static) if (n > ACT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-2.0f * GELU_K * (x + GELU_A * x * x * x)));
    }
}

void kcpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    /* d/dx [x·s] with s = sigmoid(2u), u = k(x + a·x³), du/dx = k(1 + 3a·x²):
     * s + x·2s(1 - s)·du/dx, and 1 - s = e·s with e = e^(-2u) (no cancellation near s = 1).
     * u is clamped to ±20 so that e stays finite (e·s² would be inf·0 past it); beyond
     * |u| = 10, s(1 - s) is below float's resolution of s anyway. NaN passes through x. */
#pragma omp parallel for schedule(static) if (n > ACT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = fminf(fmaxf(GELU_K * (x + GELU_A * x * x * x), -20.0f), 20.0f);
        float e = expf(-2.0f * u), s = 1.0f / (1.0f + e);
        float d = s + 2.0f * x * e * s * s * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] += d * dout[i];
    }
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
