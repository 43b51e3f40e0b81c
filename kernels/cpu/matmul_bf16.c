/* Native bf16 matmuls with fp32 accumulation for weights stored in bf16: the forward out(N,OC) =
 * inp(N,C)·W(OC,C)ᵀ + bias, the backward input gradient dinp(N,C) += dout(N,OC)·W, and the weight
 * gradient dW(OC,C) += doutᵀ·inp, with the fp32 activations and gradients rounded to bf16 (nearest
 * even) on the fly and the fp32 master gradient accumulated.
 *
 * All three products are one GEMM, out(M,Nc) (=|+=) A(M,K)·B(K,Nc), A fp32 and B bf16 read through
 * strides (forward: B(k,j) = W[j·C + k]; backward: B(k,j) = W[k·C + j]); the weight gradient reads
 * A = doutᵀ transposed and B = inp in fp32, rounding both as they are converted and packed, each
 * task converting its own rows of A (mmb_dw_run: the scratch is sized for N rows, dW has OC of
 * them). Before it, dW was an fp32 sgemm: at GPT-2 124M, B 2, T 128 on 2 Zen cores, 286 ms of a
 * 694 ms step, against 104 ms for the bf16 forward of the same FLOPs. The blocking follows BLIS
 * (Van Zee & van de Geijn, 2015): for each block of KC depth, A's rows are converted to bf16 once
 * into scratch; for each block of NC output columns, B is packed into panels of NR = 48 columns in
 * the pair-interleaved order VDPBF16PS reads (for each pair of k: the 48 columns' (B[k,j],
 * B[k+1,j]) as one 32-bit word each); then threads share (MC-row block, panel) tasks, each running
 * an 8×48 register tile (24 zmm accumulators, the A pair broadcast from memory) over the block's
 * depth. The output tile is fp32 and every VDPBF16PS accumulates in fp32. Scratch is the caller's
 * (kcpu_matmul_bf16_scratch_bytes), so the hot path never allocates.
 *
 * A forward of at most MMB_GEMV_MAX_N rows (decode: one token per sequence) skips the packing:
 * the tile above would compute MR rows for one, after copying the whole weight matrix into
 * panels, so decode read GPT-2's weights at 11 GB/s of a 75 GB/s machine. mmb_gemv instead
 * reads each weight row once, 64 bytes at a time from 16 rows, and transposes the 16 × 16
 * block of 32-bit pairs in registers into exactly the words the packed panel holds. Each
 * output column then gets the same VDPBF16PS steps on the same pairs in the same order as in
 * the tile, with the same depth blocks and the same bias and block additions, so both paths
 * give the same bits (tests/unit/test_kernels_bf16.c checks it).
 *
 * The AVX512-BF16 code is compiled per function with a target attribute, so this file builds with
 * any x86-64 GCC and the instructions run only when kcpu_has_native_bf16() says the CPU has them.
 * Elsewhere (no AVX512-BF16, not x86-64, not GCC) the public functions run a scalar reference
 * with the same rounding of the inputs: always correct, far slower, and the executor does not
 * choose it (executor/model.c then widens the weight to fp32 and uses sgemm). */
#include "kernels/cpu/kernels_cpu.h"

#include <string.h>

#include "common/common.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MMB_NATIVE 1
#include <immintrin.h>
#endif

/* Register tile MR rows × NR columns (NV zmm of 16 fp32 each: 24 accumulators, 3 B vectors and
 * the broadcast fill 28 of the 32 zmm). KC is the depth per block (a multiple of 32), NC the
 * columns per packed B block (a multiple of NR), MC the rows per task (a multiple of MR).
 * KC = 768 covers GPT-2's width in one depth block, so a forward writes its output once instead
 * of reading and rewriting it per block: on a Zen 5 core, KC = 256 ran the 768-deep products at
 * 290-410 GFLOP/s and KC = 768 at 380-460, at the price of a B panel (KC·NR·2 = 72 KiB) that
 * streams from L2 rather than staying in L1. The packed block, KC·NC·2 = 1.1 MiB, is shared by
 * the threads from L2/L3. KC and NC are in kernels_cpu.h because they fix the scratch size. */
#define MMB_MR KCPU_BF16_MM_MR
#define MMB_NV 3
#define MMB_NR (16 * MMB_NV)
#define MMB_KC KCPU_BF16_MM_KC
#define MMB_NC KCPU_BF16_MM_NC
#define MMB_MC 128

/* Below this many multiply-adds the call stays on one thread. */
#define MMB_PARALLEL_MIN_FLOPS 262144L
/* Forwards of at most this many rows take mmb_gemv (at most MR: one tile's rows). */
#define MMB_GEMV_MAX_N 8
/* mmb_gemv's software prefetch distance along each weight row (elements: 192 bytes, three
 * cache lines ahead). Without it, 16 rows read 64 bytes at a time defeated the hardware
 * prefetcher: GPT-2's 77 MB head read at 9 GB/s; with 64 to 128 elements, at 20 to 21 (2-core
 * EPYC VM, tests/bench/bench_bf16 shapes). */
#define MMB_GEMV_PREFETCH 96

_Static_assert(MMB_KC % 32 == 0, "KC must be a multiple of 32 (conversion chunk)");
_Static_assert(MMB_NC % MMB_NR == 0, "NC must be a multiple of NR");
_Static_assert(MMB_MC % MMB_MR == 0, "MC must be a multiple of MR");

size_t kcpu_matmul_bf16_scratch_bytes(int N)
{
    SW_ASSERT(N >= 0);
    size_t rows = ((size_t)N + MMB_MR - 1) / MMB_MR * MMB_MR;
    return 2 * rows * MMB_KC + 2 * (size_t)MMB_KC * MMB_NC;
}

/* fp32 -> bf16, round to nearest even; NaN stays a quiet NaN (as kcpu_f32_to_bf16). */
static inline float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t r = (u & 0x7FFFFFFFu) > 0x7F800000u ? (u | 0x00400000u) & 0xFFFF0000u
                                                 : ((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
    memcpy(&f, &r, sizeof f);
    return f;
}

static inline float bf16_widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void kcpu_matmul_bf16_forward_ref(float *out, const float *inp, const uint16_t *weight,
                                  const float *bias, int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
#pragma omp parallel for schedule(static) if ((long)N * OC * C > MMB_PARALLEL_MIN_FLOPS)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        for (int o = 0; o < OC; o++) {
            const uint16_t *w = weight + (size_t)o * C;
            float acc = 0.0f;
            for (int c = 0; c < C; c++)
                acc += bf16_round(x[c]) * bf16_widen(w[c]);
            out[(size_t)n * OC + o] = acc + (bias ? bias[o] : 0.0f);
        }
    }
}

void kcpu_matmul_bf16_backward_input_ref(float *dinp, const float *dout, const uint16_t *weight,
                                         int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
#pragma omp parallel for schedule(static) if ((long)N * OC * C > MMB_PARALLEL_MIN_FLOPS)
    for (int n = 0; n < N; n++) {
        float *dx = dinp + (size_t)n * C;
        const float *g = dout + (size_t)n * OC;
        for (int o = 0; o < OC; o++) {
            const uint16_t *w = weight + (size_t)o * C;
            float go = bf16_round(g[o]);
            for (int c = 0; c < C; c++)
                dx[c] += go * bf16_widen(w[c]);
        }
    }
}

void kcpu_matmul_bf16_backward_weight_ref(float *dweight, float *dbias, const float *dout,
                                          const float *inp, int N, int C, int OC)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (dweight) {
#pragma omp parallel for schedule(static) if ((long)N * OC * C > MMB_PARALLEL_MIN_FLOPS)
        for (int o = 0; o < OC; o++) {
            float *dw = dweight + (size_t)o * C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C;
                float go = bf16_round(dout[(size_t)n * OC + o]);
                for (int c = 0; c < C; c++)
                    dw[c] += go * bf16_round(x[c]);
            }
        }
    }
    if (dbias)
        kcpu_matmul_backward(NULL, NULL, dbias, dout, NULL, NULL, N, C, OC);
}

#ifdef MMB_NATIVE

/* avx512bw: the 16-bit masked loads of mmb_gemv (every AVX512-BF16 CPU has it;
 * kcpu_has_native_bf16 requires both). */
#define MMB_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* One GEMM's operands, shared by the helpers below. */
struct mmb_gemm {
    float *out;
    int ldo;
    bool accumulate;   /* out += A·B (else out = A·B + bias) */
    const float *bias; /* (Nc) or NULL; only when !accumulate */
    const float *a;    /* A(M,K) fp32: A(m,k) = a[m·lda + k] (a[k·lda + m] in mmb_dw_run) */
    int lda;
    const uint16_t *b; /* B(k,j) = b[k·sk + j·sj] bf16, or with bf (fp32, sj == 1) */
    const float *bf;   /* bf[k·sk + j] rounded to bf16 as it is packed */
    size_t sk, sj;
    int M, K, Nc;
    uint16_t *ab; /* converted A block: Mp rows × KC bf16 (NULL in mmb_dw_run: per task) */
    uint16_t *bp; /* packed B block: NC/NR panels × (KC/2 pairs × NR × 2) bf16 */
};

/* The packed B block in the caller's scratch (kcpu_matmul_bf16_scratch_bytes(N)), after the
 * converted A block's room: N rows rounded up to MR, KC each. */
static uint16_t *mmb_scratch_bp(void *scratch, int N)
{
    SW_ASSERT(scratch && ((uintptr_t)scratch & 63u) == 0);
    size_t rows = ((size_t)N + MMB_MR - 1) / MMB_MR * MMB_MR;
    return (uint16_t *)scratch + rows * MMB_KC;
}

/* Row n of the A block (depth pc..pc+kc) to bf16, zero-padded to a multiple of 32; rows past M
 * (the padding up to a multiple of MR) are zero. */
MMB_TARGET static void mmb_convert_row(const struct mmb_gemm *g, int n, int pc, int kc)
{
    uint16_t *dst = g->ab + (size_t)n * MMB_KC;
    if (n >= g->M) {
        memset(dst, 0, sizeof(uint16_t) * MMB_KC);
        return;
    }
    const float *src = g->a + (size_t)n * g->lda + pc;
    for (int i = 0; i < kc; i += 32) {
        int left = kc - i;
        __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __mmask16 m1 = left >= 32
                           ? (__mmask16)0xFFFF
                           : (left <= 16 ? (__mmask16)0 : (__mmask16)((1u << (left - 16)) - 1u));
        __m512 lo = _mm512_maskz_loadu_ps(m0, src + i);
        __m512 hi = _mm512_maskz_loadu_ps(m1, src + i + 16);
        __m512bh h = _mm512_cvtne2ps_pbh(hi, lo);
        _mm512_storeu_si512((void *)(dst + i), (__m512i)h);
    }
}

/* Rows m..m+15 of A (depth pc..pc+kc) to bf16 into dst (16 rows of KC) when A is read
 * transposed (the weight gradient's doutᵀ, whose rows are columns of dout): 32 depths at
 * a time, 16 adjacent floats of each dout row loaded and rounded, then the 32 × 16 block of
 * halfwords written out transposed. Depth zero-padded to a multiple of 32 and rows past M zero,
 * as mmb_convert_row. */
MMB_TARGET static void mmb_convert_t16(const struct mmb_gemm *g, uint16_t *dst, int m, int pc,
                                       int kc)
{
    int live = g->M - m < 16 ? g->M - m : 16;
    __mmask16 mk = live >= 16  ? (__mmask16)0xFFFF
                   : live <= 0 ? (__mmask16)0
                               : (__mmask16)((1u << live) - 1u);
    uint16_t tmp[32][16] __attribute__((aligned(64)));
    for (int k0 = 0; k0 < kc; k0 += 32) {
        for (int kk = 0; kk < 32; kk++) {
            __m512 v = k0 + kk < kc && mk ? _mm512_maskz_loadu_ps(
                                                 mk, g->a + (size_t)(pc + k0 + kk) * g->lda + m)
                                           : _mm512_setzero_ps();
            _mm256_store_si256((__m256i *)tmp[kk], (__m256i)_mm512_cvtneps_pbh(v));
        }
        for (int r = 0; r < 16; r++)
            for (int kk = 0; kk < 32; kk++)
                dst[(size_t)r * MMB_KC + k0 + kk] = tmp[kk][r];
    }
}

/* Panel jr of the B block at depth pc..pc+kc and columns j0..j0+nr-1 (nr <= NR): for each k
 * pair kk, NR 32-bit words (B[pc+2kk, j], B[pc+2kk+1, j]), low half first; zero past K and Nc. */
static void mmb_pack_panel(const struct mmb_gemm *g, int jr, int pc, int kc, int j0, int nr)
{
    uint32_t *dst = (uint32_t *)(g->bp + (size_t)jr * MMB_KC * MMB_NR);
    int kp = (kc + 1) / 2;
    const uint16_t *b = g->b;
    size_t sk = g->sk, sj = g->sj;
    if (sk == 1) {
        /* Forward: a column j is a contiguous weight row; pairs are adjacent halfwords. */
        for (int j = 0; j < MMB_NR; j++) {
            if (j >= nr) {
                for (int kk = 0; kk < kp; kk++)
                    dst[(size_t)kk * MMB_NR + j] = 0;
                continue;
            }
            const uint16_t *col = b + (size_t)(j0 + j) * sj + pc;
            int full = kc / 2;
            for (int kk = 0; kk < full; kk++) {
                uint32_t hi = col[2 * kk + 1];
                dst[(size_t)kk * MMB_NR + j] = (uint32_t)col[2 * kk] | hi << 16;
            }
            if (kp > full)
                dst[(size_t)full * MMB_NR + j] = col[2 * full];
        }
        return;
    }
    /* Backward: a k row is a contiguous weight row; interleave two rows. */
    for (int kk = 0; kk < kp; kk++) {
        int k0 = pc + 2 * kk;
        const uint16_t *r0 = b + (size_t)k0 * sk + (size_t)j0 * sj;
        const uint16_t *r1 = k0 + 1 < pc + kc ? r0 + sk : NULL;
        uint32_t *d = dst + (size_t)kk * MMB_NR;
        if (sj == 1 && r1) {
            for (int j = 0; j < nr; j++)
                d[j] = (uint32_t)r0[j] | (uint32_t)r1[j] << 16;
        } else {
            for (int j = 0; j < nr; j++)
                d[j] =
                    (uint32_t)r0[(size_t)j * sj] | (r1 ? (uint32_t)r1[(size_t)j * sj] << 16 : 0u);
        }
        for (int j = nr; j < MMB_NR; j++)
            d[j] = 0;
    }
}

/* mmb_pack_panel for fp32 B (bf, the weight gradient's inp): each k row pair of 16 columns
 * rounded to bf16 (VCVTNEPS2BF16, as the A side) and interleaved, low half the even row. */
MMB_TARGET static void mmb_pack_panel_f32(const struct mmb_gemm *g, int jr, int pc, int kc,
                                          int j0, int nr)
{
    uint32_t *dst = (uint32_t *)(g->bp + (size_t)jr * MMB_KC * MMB_NR);
    int kp = (kc + 1) / 2;
    for (int kk = 0; kk < kp; kk++) {
        int k0 = pc + 2 * kk;
        const float *r0 = g->bf + (size_t)k0 * g->sk + j0;
        const float *r1 = k0 + 1 < pc + kc ? r0 + g->sk : NULL;
        uint32_t *d = dst + (size_t)kk * MMB_NR;
        for (int j = 0; j < MMB_NR; j += 16) {
            int left = nr - j;
            __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF
                                      : (left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u));
            __m512i lo = _mm512_cvtepu16_epi32(
                (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, r0 + j)));
            __m512i hi = r1 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(
                                  _mm512_maskz_loadu_ps(mk, r1 + j)))
                            : _mm512_setzero_si512();
            _mm512_store_si512((void *)(d + j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* The register tile: c(mr,nr) (=|+=) Σ over kp pairs of a(MR rows, stride KC) · b(panel).
 * first: the first depth block of an overwriting GEMM (c = acc + bias); otherwise c += acc. */
MMB_TARGET static void mmb_tile(int kp, const uint16_t *a, const uint16_t *b, float *c, int ldc,
                                int mr, int nr, const float *bias, bool first)
{
    __m512 acc[MMB_MR][MMB_NV];
#pragma GCC unroll 8
    for (int r = 0; r < MMB_MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < MMB_NV; v++)
            acc[r][v] = _mm512_setzero_ps();
    const int32_t *ap = (const int32_t *)a;
    const __m512i *bp = (const __m512i *)b;
    for (int kk = 0; kk < kp; kk++) {
        __m512bh bv[MMB_NV];
#pragma GCC unroll 4
        for (int v = 0; v < MMB_NV; v++)
            bv[v] = (__m512bh)_mm512_load_si512(bp + (size_t)kk * MMB_NV + v);
#pragma GCC unroll 8
        for (int r = 0; r < MMB_MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32(ap[r * (MMB_KC / 2) + kk]);
#pragma GCC unroll 4
            for (int v = 0; v < MMB_NV; v++)
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    __mmask16 mk[MMB_NV];
    for (int v = 0; v < MMB_NV; v++) {
        int left = nr - 16 * v;
        mk[v] = left >= 16 ? (__mmask16)0xFFFF
                           : (left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u));
    }
    for (int r = 0; r < mr; r++) {
        float *row = c + (size_t)r * ldc;
        for (int v = 0; v < MMB_NV; v++) {
            if (!mk[v])
                continue;
            __m512 add =
                first ? (bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v) : _mm512_setzero_ps())
                      : _mm512_maskz_loadu_ps(mk[v], row + 16 * v);
            _mm512_mask_storeu_ps(row + 16 * v, mk[v], _mm512_add_ps(acc[r][v], add));
        }
    }
}

/* Rows ic0..ic0+MC-1 of panel jr (columns jc + jr·NR ...) at depth block pc. */
static void mmb_task(const struct mmb_gemm *g, int ic0, int jr, int jc, int pc, int kc)
{
    int kp = (kc + 1) / 2;
    int j0 = jc + jr * MMB_NR;
    int nr = g->Nc - j0 < MMB_NR ? g->Nc - j0 : MMB_NR;
    int i1 = ic0 + MMB_MC < g->M ? ic0 + MMB_MC : g->M;
    bool first = pc == 0 && !g->accumulate;
    const float *bias = g->bias ? g->bias + j0 : NULL;
    const uint16_t *panel = g->bp + (size_t)jr * MMB_KC * MMB_NR;
    for (int i = ic0; i < i1; i += MMB_MR) {
        int mr = i1 - i < MMB_MR ? i1 - i : MMB_MR;
        mmb_tile(kp, g->ab + (size_t)i * MMB_KC, panel, g->out + (size_t)i * g->ldo + j0, g->ldo,
                 mr, nr, bias, first);
    }
}

/* The 16 x 16 block of 32-bit words r[i][j] transposed in place (r[j][i]): pairs of rows
 * interleaved by 32 then 64 bits, which leaves u[4i + c] holding column 4L + c of rows
 * 4i..4i+3 in its 128-bit lane L; then the lanes regrouped by two rounds of shuffle_i32x4. */
MMB_TARGET static void mmb_transpose16(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);  /* A0 A1 B0 B1 */
        __m512i x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);  /* A2 A3 B2 B3 */
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        __m512i y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);      /* column c: A0 B0 C0 D0 */
        r[4 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);  /* column 4 + c */
        r[8 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);  /* column 8 + c */
        r[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD); /* column 12 + c */
    }
}

/* Columns j0..j0+15 (fewer at the end) of the forward out(M, Nc) = A·W(Nc, K)ᵀ + bias for
 * M <= MMB_GEMV_MAX_N rows, A already converted into g->ab (rows of KC, per depth block pc:
 * the caller converts each block before calling this for it). first: pc == 0 (out = acc +
 * bias, or + 0 as the tile adds, which turns -0 into +0); else out += acc. */
MMB_TARGET static void mmb_gemv_block(const struct mmb_gemm *g, int j0, int pc, int kc)
{
    int nj = g->Nc - j0 < 16 ? g->Nc - j0 : 16, kp = (kc + 1) / 2, M = g->M;
    __m512 acc[MMB_GEMV_MAX_N];
    for (int n = 0; n < M; n++)
        acc[n] = _mm512_setzero_ps();
    const int32_t *ap = (const int32_t *)g->ab;
    for (int kk0 = 0; kk0 < kp; kk0 += 16) {
        int ne = kc - 2 * kk0 < 32 ? kc - 2 * kk0 : 32; /* bf16 elements of this chunk */
        __mmask32 em = ne >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << ne) - 1u);
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            const uint16_t *src = g->b + (size_t)(j0 + i) * g->sj + pc + 2 * kk0;
            r[i] = i < nj ? _mm512_maskz_loadu_epi16(em, src) : _mm512_setzero_si512();
            if (i < nj)
                _mm_prefetch((const char *)(src + MMB_GEMV_PREFETCH), _MM_HINT_T0);
        }
        mmb_transpose16(r); /* r[p]: pair kk0 + p of the 16 columns, as the panel holds it */
        int np = kp - kk0 < 16 ? kp - kk0 : 16;
        for (int p = 0; p < np; p++)
            for (int n = 0; n < M; n++)
                acc[n] = _mm512_dpbf16_ps(
                    acc[n], (__m512bh)_mm512_set1_epi32(ap[n * (MMB_KC / 2) + kk0 + p]),
                    (__m512bh)r[p]);
    }
    __mmask16 mk = nj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nj) - 1u);
    bool first = pc == 0;
    for (int n = 0; n < M; n++) {
        float *row = g->out + (size_t)n * g->ldo + j0;
        __m512 add = first ? (g->bias ? _mm512_maskz_loadu_ps(mk, g->bias + j0)
                                      : _mm512_setzero_ps())
                           : _mm512_maskz_loadu_ps(mk, row);
        _mm512_mask_storeu_ps(row, mk, _mm512_add_ps(acc[n], add));
    }
}

/* The forward for M <= MMB_GEMV_MAX_N rows (g->sk == 1: W's rows contiguous): per depth block,
 * the rows converted, then blocks of 16 output columns shared by the threads. */
static void mmb_gemv_run(struct mmb_gemm *g)
{
    int nb = (g->Nc + 15) / 16;
    bool par = (long)g->M * g->K * g->Nc > MMB_PARALLEL_MIN_FLOPS;
#pragma omp parallel if (par)
    for (int pc = 0; pc < g->K; pc += MMB_KC) {
        int kc = g->K - pc < MMB_KC ? g->K - pc : MMB_KC;
#pragma omp single
        for (int n = 0; n < g->M; n++)
            mmb_convert_row(g, n, pc, kc);
#pragma omp for schedule(static)
        for (int b = 0; b < nb; b++)
            mmb_gemv_block(g, 16 * b, pc, kc);
    }
}

static void mmb_gemm_run(struct mmb_gemm *g)
{
    int Mp = (g->M + MMB_MR - 1) / MMB_MR * MMB_MR;
    int n_ic = (g->M + MMB_MC - 1) / MMB_MC;
    bool par = (long)g->M * g->K * g->Nc > MMB_PARALLEL_MIN_FLOPS;
#pragma omp parallel if (par)
    for (int pc = 0; pc < g->K; pc += MMB_KC) {
        int kc = g->K - pc < MMB_KC ? g->K - pc : MMB_KC;
#pragma omp for schedule(static)
        for (int n = 0; n < Mp; n++)
            mmb_convert_row(g, n, pc, kc);
        for (int jc = 0; jc < g->Nc; jc += MMB_NC) {
            int nc = g->Nc - jc < MMB_NC ? g->Nc - jc : MMB_NC;
            int np = (nc + MMB_NR - 1) / MMB_NR;
#pragma omp for schedule(static)
            for (int jr = 0; jr < np; jr++) {
                int j0 = jc + jr * MMB_NR;
                mmb_pack_panel(g, jr, pc, kc, j0, g->Nc - j0 < MMB_NR ? g->Nc - j0 : MMB_NR);
            }
#pragma omp for collapse(2) schedule(dynamic)
            for (int ic = 0; ic < n_ic; ic++)
                for (int jr = 0; jr < np; jr++)
                    mmb_task(g, ic * MMB_MC, jr, jc, pc, kc);
        }
    }
}

/* The weight gradient's GEMM, dW(OC, C) += doutᵀ(OC, N) · inp(N, C) (A read transposed, B from
 * bf). M = OC is often far more rows than the scratch's A block holds (it is sized for N rows;
 * GPT-2's head has 50,304), so each task converts its own MMB_DW_ROWS rows of A into a buffer on
 * its thread's stack and runs them against every panel of the column block: per depth block and
 * per NC block of columns, B is packed once (one barrier) and the row tasks follow (another),
 * however many rows. An earlier form ran the rows in chunks of the scratch's N rows with two
 * barriers each: GPT-2's head at N = 64 took 786 chunks, and with a second process on one of the
 * two cores each barrier waited out a time slice (256 ms a call instead of about 10). A is
 * converted once per column block: OC·N·(C/NC) elements against 2·OC·N·C multiply-adds. */
#define MMB_DW_ROWS 32
_Static_assert(MMB_DW_ROWS % 16 == 0 && MMB_DW_ROWS % MMB_MR == 0, "whole conversion groups");

static void mmb_dw_rows(const struct mmb_gemm *g, uint16_t *ab, int m0, int pc, int kc, int jc,
                        int np)
{
    for (int r = 0; r < MMB_DW_ROWS; r += 16)
        mmb_convert_t16(g, ab + (size_t)r * MMB_KC, m0 + r, pc, kc);
    int kp = (kc + 1) / 2, live = g->M - m0 < MMB_DW_ROWS ? g->M - m0 : MMB_DW_ROWS;
    for (int jr = 0; jr < np; jr++) {
        int j0 = jc + jr * MMB_NR;
        int nr = g->Nc - j0 < MMB_NR ? g->Nc - j0 : MMB_NR;
        const uint16_t *panel = g->bp + (size_t)jr * MMB_KC * MMB_NR;
        for (int i = 0; i < live; i += MMB_MR)
            mmb_tile(kp, ab + (size_t)i * MMB_KC, panel, g->out + (size_t)(m0 + i) * g->ldo + j0,
                     g->ldo, live - i < MMB_MR ? live - i : MMB_MR, nr, NULL, false);
    }
}

static void mmb_dw_run(const struct mmb_gemm *g)
{
    bool par = (long)g->M * g->K * g->Nc > MMB_PARALLEL_MIN_FLOPS;
    int n_rb = (g->M + MMB_DW_ROWS - 1) / MMB_DW_ROWS;
#pragma omp parallel if (par)
    {
        uint16_t ab[MMB_DW_ROWS * MMB_KC] __attribute__((aligned(64))); /* 48 KiB */
        for (int pc = 0; pc < g->K; pc += MMB_KC) {
            int kc = g->K - pc < MMB_KC ? g->K - pc : MMB_KC;
            for (int jc = 0; jc < g->Nc; jc += MMB_NC) {
                int nc = g->Nc - jc < MMB_NC ? g->Nc - jc : MMB_NC;
                int np = (nc + MMB_NR - 1) / MMB_NR;
#pragma omp for schedule(static)
                for (int jr = 0; jr < np; jr++) {
                    int j0 = jc + jr * MMB_NR;
                    mmb_pack_panel_f32(g, jr, pc, kc, j0,
                                       g->Nc - j0 < MMB_NR ? g->Nc - j0 : MMB_NR);
                }
#pragma omp for schedule(dynamic)
                for (int rb = 0; rb < n_rb; rb++)
                    mmb_dw_rows(g, ab, rb * MMB_DW_ROWS, pc, kc, jc, np);
            }
        }
    }
}

#endif /* MMB_NATIVE */

void kcpu_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
                              const float *bias, int N, int C, int OC, void *scratch)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (N == 0)
        return;
#ifdef MMB_NATIVE
    if (kcpu_has_native_bf16()) {
        struct mmb_gemm g = {.out = out,
                             .ldo = OC,
                             .accumulate = false,
                             .bias = bias,
                             .a = inp,
                             .lda = C,
                             .b = weight,
                             .sk = 1,
                             .sj = (size_t)C,
                             .M = N,
                             .K = C,
                             .Nc = OC,
                             .ab = scratch,
                             .bp = mmb_scratch_bp(scratch, N)};
        if (N <= MMB_GEMV_MAX_N)
            mmb_gemv_run(&g);
        else
            mmb_gemm_run(&g);
        return;
    }
#endif
    kcpu_matmul_bf16_forward_ref(out, inp, weight, bias, N, C, OC);
}

void kcpu_matmul_bf16_backward_input(float *dinp, const float *dout, const uint16_t *weight, int N,
                                     int C, int OC, void *scratch)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (N == 0)
        return;
#ifdef MMB_NATIVE
    if (kcpu_has_native_bf16()) {
        struct mmb_gemm g = {.out = dinp,
                             .ldo = C,
                             .accumulate = true,
                             .bias = NULL,
                             .a = dout,
                             .lda = OC,
                             .b = weight,
                             .sk = (size_t)C,
                             .sj = 1,
                             .M = N,
                             .K = OC,
                             .Nc = C,
                             .ab = scratch,
                             .bp = mmb_scratch_bp(scratch, N)};
        mmb_gemm_run(&g);
        return;
    }
#endif
    kcpu_matmul_bf16_backward_input_ref(dinp, dout, weight, N, C, OC);
}

void kcpu_matmul_bf16_backward_weight(float *dweight, float *dbias, const float *dout,
                                      const float *inp, int N, int C, int OC, void *scratch)
{
    SW_ASSERT(N >= 0 && C > 0 && OC > 0);
    if (N == 0)
        return;
#ifdef MMB_NATIVE
    if (kcpu_has_native_bf16()) {
        if (dweight) {
            struct mmb_gemm g = {.out = dweight,
                                 .ldo = C,
                                 .accumulate = true,
                                 .bias = NULL,
                                 .a = dout,
                                 .lda = OC,
                                 .b = NULL,
                                 .bf = inp,
                                 .sk = (size_t)C,
                                 .sj = 1,
                                 .M = OC,
                                 .K = N,
                                 .Nc = C,
                                 .ab = NULL,
                                 .bp = mmb_scratch_bp(scratch, N)};
            mmb_dw_run(&g);
        }
        if (dbias)
            kcpu_matmul_backward(NULL, NULL, dbias, dout, NULL, NULL, N, C, OC);
        return;
    }
#endif
    kcpu_matmul_bf16_backward_weight_ref(dweight, dbias, dout, inp, N, C, OC);
}
