/* Fused softmax + cross-entropy over the vocabulary (llm.c's fused classifier): one pass finds
 * each row's maximum and logsumexp, the loss is logsumexp - logit[target], and the gradient
 * (softmax - onehot)·scale is written over the logits in place, so the executor holds one
 * N×Vp fp32 buffer for logits and their gradient (strategy reference 3.6, c_V = 4); with the
 * gradient wanted, the first pass leaves each e^(x - max) in place, so one expf per element
 * serves both the sum and the gradient (the same values, so the same bits, as computing it
 * twice). Rows with target -1 are ignored (loss 0, gradient 0), as PyTorch's ignore_index.
 * Also the rows' argmax for greedy decoding (kcpu_argmax_rows). */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

float kcpu_softmax_ce(float *logits, float *losses, int *n_valid, const int *targets, int N, int V,
                      int Vp, bool want_grad, float grad_scale)
{
    SW_ASSERT(N >= 0 && V > 0 && Vp >= V);
    int valid = 0;
    for (int n = 0; n < N; n++) {
        SW_ASSERT(targets[n] == -1 || (targets[n] >= 0 && targets[n] < V));
        valid += targets[n] >= 0;
    }
    /* d(mean loss)/d(row loss) = 1/valid, times the caller's scale. */
    float gscale = valid > 0 ? grad_scale / (float)valid : 0.0f;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if ((long)N * V > 65536)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * Vp;
        int tgt = targets[n];
        if (tgt < 0) {
            if (losses)
                losses[n] = 0.0f;
            if (want_grad) {
                for (int i = 0; i < Vp; i++)
                    x[i] = 0.0f;
            }
            continue;
        }
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            mx = x[i] > mx ? x[i] : mx;
        float sum = 0.0f, xt = x[tgt];
        if (want_grad) { /* keep each e^(x - max) in place: the gradient pass reuses it */
            for (int i = 0; i < V; i++) {
                x[i] = expf(x[i] - mx);
                sum += x[i];
            }
        } else {
            for (int i = 0; i < V; i++)
                sum += expf(x[i] - mx);
        }
        float lse = mx + logf(sum);
        float loss = lse - xt;
        if (losses)
            losses[n] = loss;
        total += loss;
        if (want_grad) {
            float inv = 1.0f / sum;
            for (int i = 0; i < V; i++)
                x[i] = x[i] * inv * gscale;
            x[tgt] -= gscale;
            for (int i = V; i < Vp; i++)
                x[i] = 0.0f;
        }
    }
    if (n_valid)
        *n_valid = valid;
    return valid > 0 ? (float)(total / valid) : 0.0f;
}

void kcpu_argmax_rows(int *out, const float *x, int rows, int V, int ld)
{
    SW_ASSERT(rows >= 0 && V > 0 && ld >= V);
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * ld;
        int best = -1;
        for (int i = 0; i < V; i++)
            if (!isnan(row[i]) && (best < 0 || row[i] > row[best]))
                best = i;
        out[r] = best < 0 ? 0 : best;
    }
}
