/* Token and learned-position embeddings (GPT-2's wte + wpe; Llama uses wte only), forward and
 * scatter-add backward, and the residual add. The backward parallelises over channel slices
 * rather than tokens: two tokens with the same id write the same row, and splitting the
 * channels instead keeps every write owned by one thread without atomics, in a fixed order. */
#include "kernels/cpu/kernels_cpu.h"

#include "common/common.h"

#define EW_PARALLEL_MIN 65536

void kcpu_embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                            int B, int T, int C, int V, int maxT, int pos_offset)
{
    SW_ASSERT(B >= 0 && T >= 0 && C > 0 && V > 0 && pos_offset >= 0);
    SW_ASSERT(!wpe || pos_offset + T <= maxT);
    int BT = B * T;
#pragma omp parallel for schedule(static) if ((long)BT * C > EW_PARALLEL_MIN)
    for (int i = 0; i < BT; i++) {
        int tok = tokens[i];
        SW_ASSERT(tok >= 0 && tok < V);
        float *o = out + (size_t)i * C;
        const float *e = wte + (size_t)tok * C;
        if (wpe) {
            const float *p = wpe + (size_t)(pos_offset + i % T) * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = e[c] + p[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = e[c];
        }
    }
}

void kcpu_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                             int B, int T, int C, int V, int maxT, int pos_offset)
{
    SW_ASSERT(B >= 0 && T >= 0 && C > 0 && V > 0 && pos_offset >= 0);
    SW_ASSERT(!dwpe || pos_offset + T <= maxT);
    const int slice = 64; /* channels per task: one cache line stride of 256 B per row */
    int nslice = (C + slice - 1) / slice;
    int BT = B * T;
#pragma omp parallel for schedule(static) if ((long)BT * C > EW_PARALLEL_MIN)
    for (int s = 0; s < nslice; s++) {
        int c0 = s * slice, c1 = c0 + slice < C ? c0 + slice : C;
        for (int i = 0; i < BT; i++) {
            int tok = tokens[i];
            SW_ASSERT(tok >= 0 && tok < V);
            const float *g = dout + (size_t)i * C;
            float *dw = dwte + (size_t)tok * C;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                dw[c] += g[c];
            if (dwpe) {
                float *dp = dwpe + (size_t)(pos_offset + i % T) * C;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    dp[c] += g[c];
            }
        }
    }
}

void kcpu_residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void kcpu_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    if (da) {
#pragma omp parallel for simd schedule(static) if (n > EW_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++)
            da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n > EW_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++)
            db[i] += dout[i];
    }
}
