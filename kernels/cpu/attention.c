/* Causal self-attention with GQA on the fused QKV layout, materialised form: the T×T softmax
 * probabilities of every head are written out and kept for backward (the simple, memory-hungry
 * form; flash.c has the streaming one). Also the KV cache for generation: appending the new
 * tokens' keys and values, and the decode attention of a few new tokens over the cache, which
 * streams over cached positions with an online softmax (Milakov & Gimelshein, 2018).
 * Scale 1/sqrt(HS); query head h reads key/value head h/(NH/NKV) (HF Llama repeat_kv). */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>
#include <string.h>

#include "common/common.h"

#define ATT_PARALLEL_MIN 16384
#define DEC_BLOCK 64 /* cached positions scored at once in decode */

void kcpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                            int NKV, int HS)
{
    SW_ASSERT(B >= 0 && T >= 0 && NH > 0 && NKV > 0 && NH % NKV == 0 && HS > 0);
    size_t R = (size_t)(NH + 2 * NKV) * HS; /* floats per token in qkv */
    int rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(3) schedule(dynamic, 4) \
    if ((long)B * NH * T * T * HS > ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                int g = h / rep;
                const float *base = qkv + (size_t)b * T * R;
                const float *q = base + (size_t)t * R + (size_t)h * HS;
                float *p = att + (((size_t)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int d = 0; d < HS; d++)
                        s += q[d] * k[d];
                    s *= scale;
                    p[j] = s;
                    mx = s > mx ? s : mx;
                }
                float sum = 0.0f;
                for (int j = 0; j <= t; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j <= t; j++)
                    p[j] *= inv;
                for (int j = t + 1; j < T; j++)
                    p[j] = 0.0f;
                float *o = out + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                for (int d = 0; d < HS; d++)
                    o[d] = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
                    float pj = p[j];
#pragma omp simd
                    for (int d = 0; d < HS; d++)
                        o[d] += pj * v[d];
                }
            }
        }
    }
}

size_t kcpu_attention_backward_scratch_bytes(int B, int T, int NH)
{
    return (size_t)B * NH * T * T * sizeof(float);
}

void kcpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             void *scratch, int B, int T, int NH, int NKV, int HS)
{
    SW_ASSERT(B >= 0 && T >= 0 && NH > 0 && NKV > 0 && NH % NKV == 0 && HS > 0);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    int rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    float *dsc = scratch; /* (B,NH,T,T) score gradients */
    long work = (long)B * NH * T * T * HS;

    /* Pass 1, one task per query row: dP = dO·Vᵀ, dS = P ⊙ (dP - Σ P·dP) (softmax backward),
     * dQ = scale·dS·K. Each task owns its dq row. */
#pragma omp parallel for collapse(3) schedule(dynamic, 4) if (work > ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                int g = h / rep;
                const float *base = qkv + (size_t)b * T * R;
                const float *p = att + (((size_t)b * NH + h) * T + t) * T;
                float *ds = dsc + (((size_t)b * NH + h) * T + t) * T;
                const float *go = dout + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                float dsum = 0.0f;
                for (int j = 0; j <= t; j++) {
                    const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
                    float dp = 0.0f;
#pragma omp simd reduction(+ : dp)
                    for (int d = 0; d < HS; d++)
                        dp += go[d] * v[d];
                    ds[j] = dp;
                    dsum += p[j] * dp;
                }
                float *dq = dqkv + ((size_t)b * T + t) * R + (size_t)h * HS;
                for (int j = 0; j <= t; j++) {
                    ds[j] = p[j] * (ds[j] - dsum);
                    const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
                    float c = scale * ds[j];
#pragma omp simd
                    for (int d = 0; d < HS; d++)
                        dq[d] += c * k[d];
                }
            }
        }
    }
    /* Pass 2, one task per key position and kv head: dK = scale·dSᵀ·Q and dV = Pᵀ·dO, summed
     * over the query heads that share the kv head. Each task owns its dk and dv rows. */
#pragma omp parallel for collapse(3) schedule(dynamic, 4) if (work > ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            for (int j = 0; j < T; j++) {
                const float *base = qkv + (size_t)b * T * R;
                float *dk = dqkv + ((size_t)b * T + j) * R + (size_t)(NH + g) * HS;
                float *dv = dqkv + ((size_t)b * T + j) * R + (size_t)(NH + NKV + g) * HS;
                for (int h = g * rep; h < (g + 1) * rep; h++) {
                    for (int t = j; t < T; t++) {
                        size_t idx = (((size_t)b * NH + h) * T + t) * T + j;
                        float cs = scale * dsc[idx], pp = att[idx];
                        const float *q = base + (size_t)t * R + (size_t)h * HS;
                        const float *go = dout + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
#pragma omp simd
                        for (int d = 0; d < HS; d++) {
                            dk[d] += cs * q[d];
                            dv[d] += pp * go[d];
                        }
                    }
                }
            }
        }
    }
}

void kcpu_kv_cache_append(float *k_cache, float *v_cache, const float *qkv, int B, int T_new,
                          int pos, int NH, int NKV, int HS, int cache_T)
{
    SW_ASSERT(B >= 0 && T_new >= 0 && pos >= 0 && pos + T_new <= cache_T);
    size_t R = (size_t)(NH + 2 * NKV) * HS, KV = (size_t)NKV * HS;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < T_new; i++) {
            const float *row = qkv + ((size_t)b * T_new + i) * R;
            size_t dst = ((size_t)b * cache_T + pos + i) * KV;
            memcpy(k_cache + dst, row + (size_t)NH * HS, KV * sizeof(float));
            memcpy(v_cache + dst, row + (size_t)(NH + NKV) * HS, KV * sizeof(float));
        }
    }
}

void kcpu_attention_decode(float *out, const float *qkv, const float *k_cache,
                           const float *v_cache, int B, int T_new, int pos, int NH, int NKV, int HS,
                           int cache_T)
{
    SW_ASSERT(B >= 0 && T_new >= 0 && pos >= 0 && pos + T_new <= cache_T);
    SW_ASSERT(NH > 0 && NKV > 0 && NH % NKV == 0 && HS > 0 && HS <= KCPU_FLASH_MAX_HS);
    size_t R = (size_t)(NH + 2 * NKV) * HS, KV = (size_t)NKV * HS;
    int rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(3) schedule(static) \
    if ((long)B * T_new * NH * (pos + T_new) * HS > ATT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < T_new; i++) {
            for (int h = 0; h < NH; h++) {
                int g = h / rep, n_keys = pos + i + 1;
                const float *q = qkv + ((size_t)b * T_new + i) * R + (size_t)h * HS;
                const float *kb = k_cache + (size_t)b * cache_T * KV + (size_t)g * HS;
                const float *vb = v_cache + (size_t)b * cache_T * KV + (size_t)g * HS;
                float acc[KCPU_FLASH_MAX_HS], s[DEC_BLOCK];
                float m = -INFINITY, l = 0.0f;
                for (int d = 0; d < HS; d++)
                    acc[d] = 0.0f;
                for (int j0 = 0; j0 < n_keys; j0 += DEC_BLOCK) {
                    int j1 = j0 + DEC_BLOCK < n_keys ? j0 + DEC_BLOCK : n_keys;
                    float bm = -INFINITY;
                    for (int j = j0; j < j1; j++) {
                        const float *k = kb + (size_t)j * KV;
                        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                        for (int d = 0; d < HS; d++)
                            dot += q[d] * k[d];
                        s[j - j0] = dot * scale;
                        bm = s[j - j0] > bm ? s[j - j0] : bm;
                    }
                    /* Online softmax: rescale what was summed under the old maximum. */
                    float mn = bm > m ? bm : m;
                    float corr = expf(m - mn); /* m = -inf on the first block: corr = 0 */
                    l *= corr;
                    for (int d = 0; d < HS; d++)
                        acc[d] *= corr;
                    for (int j = j0; j < j1; j++) {
                        float p = expf(s[j - j0] - mn);
                        const float *v = vb + (size_t)j * KV;
                        l += p;
#pragma omp simd
                        for (int d = 0; d < HS; d++)
                            acc[d] += p * v[d];
                    }
                    m = mn;
                }
                float *o = out + ((size_t)b * T_new + i) * NH * HS + (size_t)h * HS;
                float inv = 1.0f / l;
                for (int d = 0; d < HS; d++)
                    o[d] = acc[d] * inv;
            }
        }
    }
}
