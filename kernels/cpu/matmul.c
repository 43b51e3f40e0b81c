/* Dense fp32 matmuls for linear layers, forward and backward, in PyTorch nn.Linear's layout
 * (weight is OC×C, out = inp·Wᵀ + b). With OpenBLAS (SW_HAVE_OPENBLAS, the OpenMP build, so it
 * shares our thread pool) each product is one cblas_sgemm; without it, a plain OpenMP loop that
 * the compiler vectorises, correct but several times slower. Bias gradients are our own loop in
 * both cases. Quantised (int8) matmuls live in quant.c. */
#include "kernels/cpu/kernels_cpu.h"

#include <string.h>

#ifdef SW_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "common/common.h"

/* Below this many multiply-adds a loop stays on one thread: spawning costs more (~µs). */
#define MM_PARALLEL_MIN_FLOPS 32768

bool kcpu_matmul_uses_blas(void)
{
#ifdef SW_HAVE_OPENBLAS
    return true;
#else
    return false;
#endif
}

/* dbias(OC) += Σ_n dout(N,OC)[n,:]. Threads own blocks of 64 output channels, so the sum over
 * rows is serial per channel and deterministic; the inner loop runs along a contiguous row. */
static void bias_backward(float *dbias, const float *dout, int N, int OC)
{
    const int blk = 64;
    int nblk = (OC + blk - 1) / blk;
#pragma omp parallel for schedule(static) if ((long)N * OC > MM_PARALLEL_MIN_FLOPS)
    for (int ib = 0; ib < nblk; ib++) {
        int o0 = ib * blk, o1 = o0 + blk < OC ? o0 + blk : OC;
        float acc[64];
        for (int o = o0; o < o1; o++)
            acc[o - o0] = 0.0f;
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
#pragma omp simd
            for (int o = o0; o < o1; o++)
                acc[o - o0] += row[o];
        }
        for (int o = o0; o < o1; o++)
            dbias[o] += acc[o - o0];
    }
}

void kcpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (N == 0)
        return;
#ifdef SW_HAVE_OPENBLAS
    float beta = 0.0f;
    if (bias) {
        /* Start from the bias and let the GEMM add into it (beta = 1): one pass over out. */
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta,
                out, OC);
#else
    /* Each (row, output) pair is one dot product along contiguous memory of both operands. */
#pragma omp parallel for collapse(2) schedule(static) \
    if ((long)N * OC * C > MM_PARALLEL_MIN_FLOPS)
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            const float *x = inp + (size_t)n * C;
            const float *w = weight + (size_t)o * C;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int c = 0; c < C; c++)
                acc += x[c] * w[c];
            out[(size_t)n * OC + o] = acc + (bias ? bias[o] : 0.0f);
        }
    }
#endif
}

void kcpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (N == 0)
        return;
#ifdef SW_HAVE_OPENBLAS
    if (dinp) /* dinp(N,C) += dout(N,OC) · W(OC,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight,
                    C, 1.0f, dinp, C);
    if (dweight) /* dW(OC,C) += dout(N,OC)ᵀ · inp(N,C) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                    1.0f, dweight, C);
#else
    long flops = (long)N * OC * C;
    if (dinp) {
        /* Row n of dinp is a sum of weight rows scaled by dout[n,:]: one thread per row. */
#pragma omp parallel for schedule(static) if (flops > MM_PARALLEL_MIN_FLOPS)
        for (int n = 0; n < N; n++) {
            float *dx = dinp + (size_t)n * C;
            const float *g = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) {
                const float *w = weight + (size_t)o * C;
                float go = g[o];
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dx[c] += go * w[c];
            }
        }
    }
    if (dweight) {
        /* Row o of dW is a sum of input rows scaled by dout[:,o]: one thread per output row. */
#pragma omp parallel for schedule(static) if (flops > MM_PARALLEL_MIN_FLOPS)
        for (int o = 0; o < OC; o++) {
            float *dw = dweight + (size_t)o * C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C;
                float go = dout[(size_t)n * OC + o];
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dw[c] += go * x[c];
            }
        }
    }
#endif
    if (dbias)
        bias_backward(dbias, dout, N, OC);
}
