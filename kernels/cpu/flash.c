/* Causal self-attention with GQA, streaming form (FlashAttention-2, Dao 2023, on the CPU): the
 * forward walks key blocks of FL_BK positions with an online softmax for a block of FL_BQ query
 * rows at a time, keeping only a running maximum, a running sum and an HS-wide accumulator per
 * row (on the stack), and saves the per-row logsumexp. The backward recomputes the
 * probabilities block by block from the logsumexp: one pass over query blocks writes dq, a
 * second over key blocks writes dk and dv (summing the query heads of its kv group), so no
 * element has two writers, there are no atomics and no T×T buffer, and the result does not
 * depend on the thread count. The price is computing QKᵀ twice in backward. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"

#define FL_BQ 16 /* query rows per task: the accumulators are FL_BQ × HS floats (≤ 32 KiB) */
#define FL_BK 64 /* keys per block: 64 × HS keys and values stay in L1/L2 across the rows */
#define FL_PARALLEL_MIN 16384

static inline float dotf(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < n; d++)
        s += a[d] * b[d];
    return s;
}

static void check_shape(int B, int T, int NH, int NKV, int HS)
{
    SW_ASSERT(B >= 0 && T >= 0 && NH > 0 && NKV > 0 && NH % NKV == 0);
    SW_ASSERT(HS > 0 && HS <= KCPU_FLASH_MAX_HS);
}

void kcpu_flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int NH,
                                  int NKV, int HS)
{
    check_shape(B, T, NH, NKV, HS);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    int rep = NH / NKV, nqb = (T + FL_BQ - 1) / FL_BQ;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(3) schedule(dynamic, 1) \
    if ((long)B * NH * T * T * HS > FL_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int qb = 0; qb < nqb; qb++) {
                int g = h / rep, t0 = qb * FL_BQ, t1 = t0 + FL_BQ < T ? t0 + FL_BQ : T;
                const float *base = qkv + (size_t)b * T * R;
                float acc[FL_BQ * KCPU_FLASH_MAX_HS], m[FL_BQ], l[FL_BQ], s[FL_BK];
                for (int r = 0; r < t1 - t0; r++) {
                    m[r] = -INFINITY;
                    l[r] = 0.0f;
                    for (int d = 0; d < HS; d++)
                        acc[r * HS + d] = 0.0f;
                }
                /* Causal: keys beyond the block's last row are never needed. */
                for (int j0 = 0; j0 < t1; j0 += FL_BK) {
                    int j1 = j0 + FL_BK < t1 ? j0 + FL_BK : t1;
                    for (int t = t0; t < t1; t++) {
                        int r = t - t0, je = j1 < t + 1 ? j1 : t + 1;
                        if (je <= j0)
                            continue;
                        const float *q = base + (size_t)t * R + (size_t)h * HS;
                        float bm = -INFINITY;
                        for (int j = j0; j < je; j++) {
                            const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
                            s[j - j0] = scale * dotf(q, k, HS);
                            bm = s[j - j0] > bm ? s[j - j0] : bm;
                        }
                        float mn = bm > m[r] ? bm : m[r];
                        float corr = expf(m[r] - mn); /* 0 while m is still -inf */
                        float *a = acc + (size_t)r * HS;
                        float lsum = l[r] * corr;
#pragma omp simd
                        for (int d = 0; d < HS; d++)
                            a[d] *= corr;
                        for (int j = j0; j < je; j++) {
                            const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
                            float p = expf(s[j - j0] - mn);
                            lsum += p;
#pragma omp simd
                            for (int d = 0; d < HS; d++)
                                a[d] += p * v[d];
                        }
                        l[r] = lsum;
                        m[r] = mn;
                    }
                }
                for (int t = t0; t < t1; t++) {
                    int r = t - t0;
                    float *o = out + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                    float inv = 1.0f / l[r];
                    for (int d = 0; d < HS; d++)
                        o[d] = acc[(size_t)r * HS + d] * inv;
                    if (lse)
                        lse[((size_t)b * NH + h) * T + t] = m[r] + logf(l[r]);
                }
            }
        }
    }
}

void kcpu_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int B, int T, int NH,
                                   int NKV, int HS)
{
    check_shape(B, T, NH, NKV, HS);
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    int rep = NH / NKV, nqb = (T + FL_BQ - 1) / FL_BQ, nkb = (T + FL_BK - 1) / FL_BK;
    float scale = 1.0f / sqrtf((float)HS);
    long work = (long)B * NH * T * T * HS;

    /* Pass 1, tasks own query blocks: dq_t += scale·Σ_j P_tj(dP_tj - D_t)·k_j, with
     * P_tj = exp(scale·q_t·k_j - lse_t), dP_tj = dO_t·v_j and D_t = dO_t·O_t (= Σ_j P_tj dP_tj). */
#pragma omp parallel for collapse(3) schedule(dynamic, 1) if (work > FL_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int qb = 0; qb < nqb; qb++) {
                int g = h / rep, t0 = qb * FL_BQ, t1 = t0 + FL_BQ < T ? t0 + FL_BQ : T;
                const float *base = qkv + (size_t)b * T * R;
                float D[FL_BQ];
                for (int t = t0; t < t1; t++)
                    D[t - t0] = dotf(dout + ((size_t)b * T + t) * O + (size_t)h * HS,
                                     out + ((size_t)b * T + t) * O + (size_t)h * HS, HS);
                for (int j0 = 0; j0 < t1; j0 += FL_BK) {
                    int j1 = j0 + FL_BK < t1 ? j0 + FL_BK : t1;
                    for (int t = t0; t < t1; t++) {
                        int je = j1 < t + 1 ? j1 : t + 1;
                        const float *q = base + (size_t)t * R + (size_t)h * HS;
                        const float *go = dout + ((size_t)b * T + t) * O + (size_t)h * HS;
                        float *dq = dqkv + ((size_t)b * T + t) * R + (size_t)h * HS;
                        float ls = lse[((size_t)b * NH + h) * T + t];
                        for (int j = j0; j < je; j++) {
                            const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
                            const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
                            float p = expf(scale * dotf(q, k, HS) - ls);
                            float c = scale * p * (dotf(go, v, HS) - D[t - t0]);
#pragma omp simd
                            for (int d = 0; d < HS; d++)
                                dq[d] += c * k[d];
                        }
                    }
                }
            }
        }
    }

    /* Pass 2, tasks own key blocks of one kv head: dv_j += Σ_{h,t} P_tj·dO_t and
     * dk_j += scale·Σ_{h,t} P_tj(dP_tj - D_t)·q_t over the group's query heads and t >= j. */
#pragma omp parallel for collapse(3) schedule(dynamic, 1) if (work > FL_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            for (int kb = 0; kb < nkb; kb++) {
                int j0 = kb * FL_BK, j1 = j0 + FL_BK < T ? j0 + FL_BK : T;
                const float *base = qkv + (size_t)b * T * R;
                for (int h = g * rep; h < (g + 1) * rep; h++) {
                    for (int t = j0; t < T; t++) {
                        int je = j1 < t + 1 ? j1 : t + 1;
                        const float *q = base + (size_t)t * R + (size_t)h * HS;
                        const float *go = dout + ((size_t)b * T + t) * O + (size_t)h * HS;
                        float Dt = dotf(go, out + ((size_t)b * T + t) * O + (size_t)h * HS, HS);
                        float ls = lse[((size_t)b * NH + h) * T + t];
                        for (int j = j0; j < je; j++) {
                            const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
                            const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
                            float *dk = dqkv + ((size_t)b * T + j) * R + (size_t)(NH + g) * HS;
                            float *dv = dk + (size_t)NKV * HS;
                            float p = expf(scale * dotf(q, k, HS) - ls);
                            float c = scale * p * (dotf(go, v, HS) - Dt);
#pragma omp simd
                            for (int d = 0; d < HS; d++) {
                                dv[d] += p * go[d];
                                dk[d] += c * q[d];
                            }
                        }
                    }
                }
            }
        }
    }
}
