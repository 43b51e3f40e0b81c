/* Element-wise activations: GELU with the tanh approximation (GPT-2's MLP) and SwiGLU
 * (Llama's MLP, silu(gate)·up over a fused gate|up row), forward and backward. The loops call
 * libm's tanhf/expf, which neither GCC nor clang vectorise without -ffast-math (glibc's vector
 * variants are declared only then), so they carry no simd pragma; they are cheap next to the
 * matmuls around them and parallelise over threads. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

#define ACT_PARALLEL_MIN 16384
#define GELU_K 0.7978845608028654f /* sqrt(2/π) */
#define GELU_A 0.044715f

void kcpu_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n > ACT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
    }
}

void kcpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    /* d/dx [0.5·x·(1 + tanh u)] = 0.5·(1 + tanh u) + 0.5·x·sech²u·du/dx,
     * u = k(x + a·x³), du/dx = k(1 + 3a·x²). */
#pragma omp parallel for schedule(static) if (n > ACT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = tanhf(GELU_K * (x + GELU_A * x * x * x));
        float sech2 = 1.0f - th * th;
        float d = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
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
