/* Causal self-attention with GQA, streaming form (FlashAttention-2, Dao 2023, on the CPU): the
 * forward walks key blocks of FL_BK positions with an online softmax for a block of FL_BQ query
 * rows at a time, keeping only a running maximum, a running sum and an HS-wide accumulator per
 * row (on the stack), and saves the per-row logsumexp. The backward recomputes the
 * probabilities block by block from the logsumexp: one pass over query blocks writes dq, a
 * second over key blocks writes dk and dv (summing the query heads of its kv group), so no
 * element has two writers, there are no atomics and no T×T buffer, and the result does not
 * depend on the thread count. The price is computing QKᵀ twice in backward.
 *
 * Each task copies its key block's K (and V) transposed, kt[d·FL_BK + jj] = k_(j0+jj)[d], so a
 * row's 64 scores are one loop over d of 64-wide multiply-adds across the keys, instead of 64
 * dot products each ending in a horizontal sum (which bound the old kernels at 16 to 33
 * GFLOP/s on 2 cores). Every sum runs in a fixed order (a score over d, an accumulator over
 * keys), never split across vector lanes, so the results are the same whatever the vector
 * width: the task functions are compiled for AVX-512, AVX2 and the baseline (GCC's
 * target_clones, picked once at load time) and agree to the bit (-ffp-contract=off: no FMA
 * contraction in any of them). The probabilities' exponentials go 16 at a time through
 * kc_exp16 (vexp.h), the same function in every clone. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>
#include <string.h>

#include "common/common.h"
#include "kernels/cpu/vexp.h"

#define FL_BQ 16 /* query rows per task: the accumulators are FL_BQ × HS floats (≤ 32 KiB) */
#define FL_BK 64 /* keys per block: 64 × HS keys and values stay in L1/L2 across the rows */
#define FL_PARALLEL_MIN 16384

/* Σ_d a[d]·b[d] in order of d (no lane split: the same bits in every clone). */
static inline float dot_seq(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int d = 0; d < n; d++)
        s += a[d] * b[d];
    return s;
}

static void check_shape(int B, int T, int NH, int NKV, int HS)
{
    SW_ASSERT(B >= 0 && T >= 0 && NH > 0 && NKV > 0 && NH % NKV == 0);
    SW_ASSERT(HS > 0 && HS <= KCPU_FLASH_MAX_HS);
}

/* Rows j0..j1-1 (j1 - j0 <= FL_BK) of the head slice at base + off (row stride R), transposed
 * into dst[d·FL_BK + jj]; columns past j1 - j0 are zeros (their scores are computed and
 * ignored). */
static inline void load_transposed(float *dst, const float *base, size_t R, size_t off, int j0,
                                   int j1, int HS)
{
    for (int j = j0; j < j1; j++) {
        const float *k = base + (size_t)j * R + off;
        for (int d = 0; d < HS; d++)
            dst[(size_t)d * FL_BK + (j - j0)] = k[d];
    }
    for (int jj = j1 - j0; jj < FL_BK; jj++)
        for (int d = 0; d < HS; d++)
            dst[(size_t)d * FL_BK + jj] = 0.0f;
}

/* s[jj] = Σ_d a[d]·bt[d·FL_BK + jj] for all FL_BK columns, each in order of d. With GCC's
 * vector extensions the 64 sums are four 16-float registers for the whole loop over d (each
 * clone lowers them to its widest vectors); a loop over s in memory instead stored and
 * reloaded every sum at every d, and that store-to-load chain was a third of the backward's
 * time. */
#if defined(__GNUC__)
typedef float fl_v16 __attribute__((vector_size(64)));
_Static_assert(FL_BK == 64, "row_scores holds FL_BK sums in four 16-float vectors");
static inline void row_scores(float *restrict s, const float *restrict a,
                              const float *restrict bt, int HS)
{
    fl_v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, b0, b1, b2, b3;
    for (int d = 0; d < HS; d++) {
        float ad = a[d];
        const float *b = bt + (size_t)d * FL_BK;
        memcpy(&b0, b, sizeof b0); /* (a function returning the vector would change the ABI) */
        memcpy(&b1, b + 16, sizeof b1);
        memcpy(&b2, b + 32, sizeof b2);
        memcpy(&b3, b + 48, sizeof b3);
        s0 += ad * b0;
        s1 += ad * b1;
        s2 += ad * b2;
        s3 += ad * b3;
    }
    memcpy(s, &s0, sizeof s0);
    memcpy(s + 16, &s1, sizeof s1);
    memcpy(s + 32, &s2, sizeof s2);
    memcpy(s + 48, &s3, sizeof s3);
}
#else
static inline void row_scores(float *restrict s, const float *restrict a,
                              const float *restrict bt, int HS)
{
    for (int jj = 0; jj < FL_BK; jj++)
        s[jj] = 0.0f;
    for (int d = 0; d < HS; d++)
        for (int jj = 0; jj < FL_BK; jj++)
            s[jj] += a[d] * bt[(size_t)d * FL_BK + jj];
}
#endif

/* acc[d] += w[j]·rows[j·stride + d] for j = 0..n-1 in order, d < HS: the accumulator held in
 * registers, 64 floats at a time, across the loop over j (updating it in memory made every
 * row wait for the previous row's store: a quarter of the forward's and dq's time). Its four
 * named vectors repeat row_scores' on purpose: one helper over an array of four vectors kept
 * that array in memory, 20% slower here. */
static inline void accumulate_rows(float *restrict acc, const float *restrict w,
                                   const float *restrict rows, size_t stride, int n, int HS)
{
    int d = 0;
#if defined(__GNUC__)
    for (; d + 64 <= HS; d += 64) {
        fl_v16 a0, a1, a2, a3, b0, b1, b2, b3;
        memcpy(&a0, acc + d, sizeof a0);
        memcpy(&a1, acc + d + 16, sizeof a1);
        memcpy(&a2, acc + d + 32, sizeof a2);
        memcpy(&a3, acc + d + 48, sizeof a3);
        for (int j = 0; j < n; j++) {
            const float *r = rows + (size_t)j * stride + d;
            float wj = w[j];
            memcpy(&b0, r, sizeof b0);
            memcpy(&b1, r + 16, sizeof b1);
            memcpy(&b2, r + 32, sizeof b2);
            memcpy(&b3, r + 48, sizeof b3);
            a0 += wj * b0;
            a1 += wj * b1;
            a2 += wj * b2;
            a3 += wj * b3;
        }
        memcpy(acc + d, &a0, sizeof a0);
        memcpy(acc + d + 16, &a1, sizeof a1);
        memcpy(acc + d + 32, &a2, sizeof a2);
        memcpy(acc + d + 48, &a3, sizeof a3);
    }
#endif
    for (; d < HS; d++) {
        float a = acc[d];
        for (int j = 0; j < n; j++)
            a += w[j] * rows[(size_t)j * stride + d];
        acc[d] = a;
    }
}

/* One forward task: query rows t0..t1-1 of head h (kv head g) of one sequence (base: its qkv). */
KC_CLONES static void fwd_task(float *out, float *lse, const float *base, int b, int h, int g,
                               int t0, int t1, int T, int NH, int NKV, int HS, float scale)
{
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    float acc[FL_BQ * KCPU_FLASH_MAX_HS], m[FL_BQ], l[FL_BQ], s[FL_BK], p[FL_BK];
    float kt[FL_BK * HS]; /* (variable length: 16 KiB at HS 64) */
    for (int r = 0; r < t1 - t0; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int d = 0; d < HS; d++)
            acc[r * HS + d] = 0.0f;
    }
    /* Causal: keys beyond the block's last row are never needed. */
    for (int j0 = 0; j0 < t1; j0 += FL_BK) {
        int j1 = j0 + FL_BK < t1 ? j0 + FL_BK : t1;
        load_transposed(kt, base, R, (size_t)(NH + g) * HS, j0, j1, HS);
        for (int t = t0; t < t1; t++) {
            int r = t - t0, je = j1 < t + 1 ? j1 : t + 1;
            if (je <= j0)
                continue;
            row_scores(s, base + (size_t)t * R + (size_t)h * HS, kt, HS);
            float bm = -INFINITY;
            for (int j = j0; j < je; j++) {
                s[j - j0] *= scale;
                bm = s[j - j0] > bm ? s[j - j0] : bm;
            }
            float mn = bm > m[r] ? bm : m[r];
            float corr = expf(m[r] - mn); /* 0 while m is still -inf */
            float *a = acc + (size_t)r * HS;
            float lsum = l[r] * corr;
#pragma omp simd
            for (int d = 0; d < HS; d++)
                a[d] *= corr;
            int nj = je - j0;
            for (int jj = 0; jj < nj; jj++)
                p[jj] = s[jj] - mn;
            kc_exp_n(p, p, nj);
            for (int jj = 0; jj < nj; jj++)
                lsum += p[jj];
            accumulate_rows(a, p, base + (size_t)j0 * R + (size_t)(NH + NKV + g) * HS, R,
                            je - j0, HS);
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

/* Backward pass 1, one task: dq of query rows t0..t1-1 of head h (kv head g) of sequence b:
 * dq_t += scale·Σ_j P_tj(dP_tj - D_t)·k_j, with P_tj = exp(scale·q_t·k_j - lse_t),
 * dP_tj = dO_t·v_j and D_t = dO_t·O_t (= Σ_j P_tj dP_tj). */
KC_CLONES static void bwd_dq_task(float *dqkv, const float *dout, const float *qkv,
                                  const float *out, const float *lse, int b, int h, int g, int t0,
                                  int t1, int T, int NH, int NKV, int HS, float scale)
{
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const float *base = qkv + (size_t)b * T * R;
    float D[FL_BQ], s[FL_BK], dp[FL_BK], c[FL_BK];
    float kt[FL_BK * HS], vt[FL_BK * HS]; /* (variable length: 32 KiB at HS 64) */
    for (int t = t0; t < t1; t++)
        D[t - t0] = dot_seq(dout + ((size_t)b * T + t) * O + (size_t)h * HS,
                            out + ((size_t)b * T + t) * O + (size_t)h * HS, HS);
    for (int j0 = 0; j0 < t1; j0 += FL_BK) {
        int j1 = j0 + FL_BK < t1 ? j0 + FL_BK : t1;
        load_transposed(kt, base, R, (size_t)(NH + g) * HS, j0, j1, HS);
        load_transposed(vt, base, R, (size_t)(NH + NKV + g) * HS, j0, j1, HS);
        for (int t = t0; t < t1; t++) {
            int je = j1 < t + 1 ? j1 : t + 1;
            if (je <= j0)
                continue;
            const float *go = dout + ((size_t)b * T + t) * O + (size_t)h * HS;
            float *dq = dqkv + ((size_t)b * T + t) * R + (size_t)h * HS;
            float ls = lse[((size_t)b * NH + h) * T + t];
            row_scores(s, base + (size_t)t * R + (size_t)h * HS, kt, HS);
            row_scores(dp, go, vt, HS);
            for (int jj = 0; jj < je - j0; jj++)
                c[jj] = scale * s[jj] - ls;
            kc_exp_n(c, c, je - j0); /* P */
            for (int jj = 0; jj < je - j0; jj++)
                c[jj] = scale * c[jj] * (dp[jj] - D[t - t0]);
            accumulate_rows(dq, c, base + (size_t)j0 * R + (size_t)(NH + g) * HS, R, je - j0,
                            HS);
        }
    }
}

/* Backward pass 2, one task: dk and dv of keys j0..j1-1 of kv head g of sequence b:
 * dv_j += Σ_{h,t} P_tj·dO_t and dk_j += scale·Σ_{h,t} P_tj(dP_tj - D_t)·q_t over the group's
 * query heads and t >= j. The block's K and V are transposed once for all its rows; the rows
 * go in blocks of FL_BK whose P and dS are kept transposed (pt[jj][t], ct[jj][t]), so that each
 * key's dk and dv then take the block's rows with their accumulators in registers
 * (accumulate_rows), in the same order of t as one row at a time. */
KC_CLONES static void bwd_dkv_task(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int b, int g, int j0,
                                   int j1, int T, int NH, int NKV, int HS, float scale)
{
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    int rep = NH / NKV;
    const float *base = qkv + (size_t)b * T * R;
    float s[FL_BK], dp[FL_BK], pt[FL_BK * FL_BK], ct[FL_BK * FL_BK];
    float kt[FL_BK * HS], vt[FL_BK * HS]; /* (variable length: 32 KiB at HS 64) */
    load_transposed(kt, base, R, (size_t)(NH + g) * HS, j0, j1, HS);
    load_transposed(vt, base, R, (size_t)(NH + NKV + g) * HS, j0, j1, HS);
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        for (int t0 = j0; t0 < T; t0 += FL_BK) {
            int t1 = t0 + FL_BK < T ? t0 + FL_BK : T;
            for (int t = t0; t < t1; t++) {
                int je = j1 < t + 1 ? j1 : t + 1;
                const float *go = dout + ((size_t)b * T + t) * O + (size_t)h * HS;
                float Dt = dot_seq(go, out + ((size_t)b * T + t) * O + (size_t)h * HS, HS);
                float ls = lse[((size_t)b * NH + h) * T + t];
                row_scores(s, base + (size_t)t * R + (size_t)h * HS, kt, HS);
                row_scores(dp, go, vt, HS);
                for (int jj = 0; jj < je - j0; jj++)
                    s[jj] = scale * s[jj] - ls;
                kc_exp_n(s, s, je - j0); /* P */
                for (int j = j0; j < je; j++) {
                    float p = s[j - j0];
                    pt[(j - j0) * FL_BK + (t - t0)] = p;
                    ct[(j - j0) * FL_BK + (t - t0)] = scale * p * (dp[j - j0] - Dt);
                }
            }
            for (int j = j0; j < j1; j++) {
                int ts = j > t0 ? j : t0; /* the block's first row that sees key j */
                if (ts >= t1)
                    continue;
                float *dk = dqkv + ((size_t)b * T + j) * R + (size_t)(NH + g) * HS;
                float *dv = dk + (size_t)NKV * HS;
                const float *w = pt + (size_t)(j - j0) * FL_BK + (ts - t0);
                accumulate_rows(dv, w, dout + ((size_t)b * T + ts) * O + (size_t)h * HS, O,
                                t1 - ts, HS);
                w = ct + (size_t)(j - j0) * FL_BK + (ts - t0);
                accumulate_rows(dk, w, base + (size_t)ts * R + (size_t)h * HS, R, t1 - ts, HS);
            }
        }
    }
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
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int qb = 0; qb < nqb; qb++) {
                int t0 = qb * FL_BQ, t1 = t0 + FL_BQ < T ? t0 + FL_BQ : T;
                fwd_task(out, lse, qkv + (size_t)b * T * R, b, h, h / rep, t0, t1, T, NH, NKV,
                         HS, scale);
            }
}

void kcpu_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int B, int T, int NH,
                                   int NKV, int HS)
{
    check_shape(B, T, NH, NKV, HS);
    int rep = NH / NKV, nqb = (T + FL_BQ - 1) / FL_BQ, nkb = (T + FL_BK - 1) / FL_BK;
    float scale = 1.0f / sqrtf((float)HS);
    long work = (long)B * NH * T * T * HS;
#pragma omp parallel for collapse(3) schedule(dynamic, 1) if (work > FL_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int qb = 0; qb < nqb; qb++) {
                int t0 = qb * FL_BQ, t1 = t0 + FL_BQ < T ? t0 + FL_BQ : T;
                bwd_dq_task(dqkv, dout, qkv, out, lse, b, h, h / rep, t0, t1, T, NH, NKV, HS,
                            scale);
            }
#pragma omp parallel for collapse(3) schedule(dynamic, 1) if (work > FL_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < NKV; g++)
            for (int kb = 0; kb < nkb; kb++) {
                int j0 = kb * FL_BK, j1 = j0 + FL_BK < T ? j0 + FL_BK : T;
                bwd_dkv_task(dqkv, dout, qkv, out, lse, b, g, j0, j1, T, NH, NKV, HS, scale);
            }
}
