/* Rotary position embeddings (Su et al., 2021, "RoFormer") in HF Llama's rotate-half layout:
 * the pair (x[i], x[i + HS/2]) is rotated by angle pos·theta^(-2i/HS). Tables are precomputed
 * by the caller once per model (maxT × HS/2 each for cos and sin). The transform is applied in
 * place on any (B,T,row) buffer, so it serves the fused QKV buffer in training and the new
 * tokens' q and k at decode (pos_offset = cached length). The backward is the inverse rotation. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

#define ROPE_PARALLEL_MIN 16384

void kcpu_rope_tables(float *cos_tab, float *sin_tab, int maxT, int HS, double theta)
{
    SW_ASSERT(maxT > 0 && HS > 0 && HS % 2 == 0 && theta > 0);
    int half = HS / 2;
    for (int p = 0; p < maxT; p++) {
        for (int i = 0; i < half; i++) {
            double inv_freq = pow(theta, -2.0 * i / (double)HS);
            double ang = (double)p * inv_freq;
            cos_tab[(size_t)p * half + i] = (float)cos(ang);
            sin_tab[(size_t)p * half + i] = (float)sin(ang);
        }
    }
}

/* sign = +1 rotates by +angle (forward), -1 by -angle (backward: Rᵀ). */
static void rope_apply(float *x, const float *cos_tab, const float *sin_tab, int B, int T,
                       int row_stride, int n_heads, int HS, int maxT, int pos_offset, float sign)
{
    SW_ASSERT(B >= 0 && T >= 0 && HS > 0 && HS % 2 == 0 && pos_offset >= 0);
    SW_ASSERT(n_heads * HS <= row_stride && pos_offset + T <= maxT);
    int half = HS / 2;
    int BT = B * T;
#pragma omp parallel for schedule(static) if ((long)BT * n_heads * HS > ROPE_PARALLEL_MIN)
    for (int i = 0; i < BT; i++) {
        int p = pos_offset + i % T;
        const float *cs = cos_tab + (size_t)p * half;
        const float *sn = sin_tab + (size_t)p * half;
        float *row = x + (size_t)i * row_stride;
        for (int h = 0; h < n_heads; h++) {
            float *a = row + (size_t)h * HS, *b = a + half;
#pragma omp simd
            for (int j = 0; j < half; j++) {
                float s = sign * sn[j];
                float x1 = a[j], x2 = b[j];
                a[j] = x1 * cs[j] - x2 * s;
                b[j] = x2 * cs[j] + x1 * s;
            }
        }
    }
}

void kcpu_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int B, int T,
                       int row_stride, int n_heads, int HS, int maxT, int pos_offset)
{
    rope_apply(x, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, maxT, pos_offset, 1.0f);
}

void kcpu_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int B, int T,
                        int row_stride, int n_heads, int HS, int maxT, int pos_offset)
{
    rope_apply(dx, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, maxT, pos_offset, -1.0f);
}
