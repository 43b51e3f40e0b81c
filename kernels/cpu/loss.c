/* Fused softmax + cross-entropy over the vocabulary (llm.c's fused classifier): one pass finds
 * each row's maximum and logsumexp, the loss is logsumexp - logit[target], and the gradient
 * (softmax - onehot)·scale is written over the logits in place, so the executor holds one
 * N×Vp fp32 buffer for logits and their gradient (strategy reference 3.6, c_V = 4); with the
 * gradient wanted, the first pass leaves each e^(x - max) in place, so one exponential per
 * element serves both the sum and the gradient. The exponentials go 16 at a time through
 * kc_exp16 (vexp.h), in a row function cloned per instruction set; the row's sum stays in
 * order, so every clone gives the same bits. Rows with target -1 are ignored (loss 0, gradient
 * 0), as PyTorch's ignore_index. Also the rows' argmax for greedy decoding (kcpu_argmax_rows). */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>
#include <string.h>

#include "common/common.h"
#include "kernels/cpu/vexp.h"

#define CE_CHUNK 256 /* logits per pass through the exponential */

/* One valid row (target tgt): its loss; with want_grad its gradient over the row. */
KC_CLONES static float ce_row(float *x, int tgt, int V, int Vp, bool want_grad, float gscale)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f, xt = x[tgt], e[CE_CHUNK];
    for (int c0 = 0; c0 < V; c0 += CE_CHUNK) {
        int m = V - c0 < CE_CHUNK ? V - c0 : CE_CHUNK;
        KC_SIMD
        for (int k = 0; k < m; k++)
            e[k] = x[c0 + k] - mx;
        kc_exp_n(e, e, m);
        for (int k = 0; k < m; k++) /* in order: the same sum whatever the vector width */
            sum += e[k];
        if (want_grad) /* keep each e^(x - max) in place: the gradient pass reuses it */
            memcpy(x + c0, e, sizeof(float) * (size_t)m);
    }
    float lse = mx + logf(sum);
    if (want_grad) {
        float inv = 1.0f / sum;
        KC_SIMD
        for (int i = 0; i < V; i++)
            x[i] = x[i] * inv * gscale;
        x[tgt] -= gscale;
        for (int i = V; i < Vp; i++)
            x[i] = 0.0f;
    }
    return lse - xt;
}

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
        float loss = ce_row(x, tgt, V, Vp, want_grad, gscale);
        if (losses)
            losses[n] = loss;
        total += loss;
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
