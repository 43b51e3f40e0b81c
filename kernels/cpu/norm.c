/* LayerNorm (GPT-2) and RMSNorm (Llama), forward and backward. Rows (tokens) are independent, so
 * the input gradient parallelises over rows; the weight and bias gradients sum over rows, so a
 * second pass gives each thread a slice of channels and walks every row for it, which needs no
 * per-thread copies and no atomics and adds in a fixed order (deterministic). Saved statistics:
 * LayerNorm mean and rstd, RMSNorm rstd, one float per row each. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

#define NORM_PARALLEL_MIN 32768
#define NORM_SLICE 64 /* channels per task in the weight-gradient pass */

void kcpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C, float eps)
{
    SW_ASSERT(N >= 0 && C > 0);
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += x[c];
        float m = s / (float)C;
        /* Two-pass variance: no cancellation when |mean| >> std. */
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(v / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * r * weight[c] + bias[c];
        if (mean)
            mean[n] = m;
        if (rstd)
            rstd[n] = r;
    }
}

void kcpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C)
{
    SW_ASSERT(N >= 0 && C > 0);
    /* dx = rstd·(dn - mean(dn) - n̂·mean(dn·n̂)), dn = w·dy, n̂ = (x - mean)·rstd. */
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        float sum_dn = 0.0f, sum_dn_nh = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dn_nh)
        for (int c = 0; c < C; c++) {
            float dn = weight[c] * g[c];
            sum_dn += dn;
            sum_dn_nh += dn * (x[c] - m) * r;
        }
        float mean_dn = sum_dn / (float)C, mean_dn_nh = sum_dn_nh / (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float nh = (x[c] - m) * r;
            dx[c] += (weight[c] * g[c] - mean_dn - nh * mean_dn_nh) * r;
        }
    }
    if (!dweight && !dbias)
        return;
    int nslice = (C + NORM_SLICE - 1) / NORM_SLICE;
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int s = 0; s < nslice; s++) {
        int c0 = s * NORM_SLICE, c1 = c0 + NORM_SLICE < C ? c0 + NORM_SLICE : C;
        float dw[NORM_SLICE] = {0}, db[NORM_SLICE] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *g = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                dw[c - c0] += (x[c] - m) * r * g[c];
                db[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            if (dweight)
                dweight[c] += dw[c - c0];
            if (dbias)
                dbias[c] += db[c - c0];
        }
    }
}

void kcpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                          int C, float eps)
{
    SW_ASSERT(N >= 0 && C > 0);
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++)
            ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++)
            y[c] = x[c] * r * weight[c];
        if (rstd)
            rstd[n] = r;
    }
}

void kcpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C)
{
    SW_ASSERT(N >= 0 && C > 0);
    /* y = x·r·w with r = (mean(x²) + eps)^(-1/2):
     * dx = r·w·dy - x·r³·mean(dy·w·x). */
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n];
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++)
            dot += g[c] * weight[c] * x[c];
        float k = r * r * r * dot / (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            dx[c] += r * weight[c] * g[c] - x[c] * k;
    }
    if (!dweight)
        return;
    int nslice = (C + NORM_SLICE - 1) / NORM_SLICE;
#pragma omp parallel for schedule(static) if ((long)N * C > NORM_PARALLEL_MIN)
    for (int s = 0; s < nslice; s++) {
        int c0 = s * NORM_SLICE, c1 = c0 + NORM_SLICE < C ? c0 + NORM_SLICE : C;
        float dw[NORM_SLICE] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *g = dout + (size_t)n * C;
            float r = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++)
                dw[c - c0] += x[c] * r * g[c];
        }
        for (int c = c0; c < c1; c++)
            dweight[c] += dw[c - c0];
    }
}
