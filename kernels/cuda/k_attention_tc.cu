/* Causal self-attention with GQA on tensor cores (FlashAttention-2, Dao 2023), forward and
 * backward, with the contracts of kcuda_flash_attention_forward / _backward (k_attention.cu,
 * kernels/cpu/flash.c): fp32 fused qkv (B,T,(NH+2·NKV)·HS), query head h reads kv head
 * h / (NH/NKV), scale 1/sqrt(HS), out (B,T,NH·HS), lse (B,NH,T) in natural-log units, and the
 * backward ADDS its gradient into dqkv. Only HS = 64 and 128; other head sizes stay on the FMA
 * kernels of k_attention.cu, whose 16-bit plans' entries dispatch here unless
 * SCALEWISE_CUDA_ATTENTION=fma.
 *
 * Numerics: tiles of q, k, v and dO are rounded to bf16 (round to nearest) as they are copied
 * from global memory into shared memory; every product runs as a WMMA 16×16×16 bf16 MMA with an
 * fp32 accumulator (nvcuda::wmma, sm_80+). The probabilities P (forward, and dV's factor) and
 * dS (dQ's and dK's factor) are rounded to bf16 for their MMA; everything else is fp32: scores,
 * the online-softmax max and sum (the sum adds the unrounded fp32 probabilities, so lse is the
 * fp32 value and out = Σ bf16(p)·v / Σ p), the output accumulator, D_t = dO_t·O_t (from the fp32
 * out and dout), the gradient accumulators, and every value written to memory.
 *
 * bf16 activations (the _a16 entries): every kernel is templated on the element type of qkv and
 * out, fp32 or bf16. bf16 q, k, v go into the tiles as they are (the bf16 an fp32 load of the
 * same values would give), O is rounded to bf16 (nearest) once as it is stored, and the
 * backward's D_t widens the bf16 O; dO, lse and dqkv stay fp32. So on bf16 inputs the forward's
 * lse and bf16(out) are the fp32 entries' bit for bit, and the backward differs only through
 * O's rounding in D.
 *
 * Blocks: TC_WARPS = 4 warps; each warp owns 16 rows of a 64-row tile (one WMMA fragment row),
 * so a block covers 64 queries (forward, dq) or 64 keys (dk, dv). WMMA fragments are opaque, so
 * each warp stores its 16×64 score tile to its own fp32 slice of shared memory, where lanes do
 * the softmax arithmetic (lane = 2·row + parity, columns 2i + parity), and the forward keeps
 * its output accumulator there too (it must be rescaled row by row).
 *  - forward: grid (ceil(T/64), NH, B); the block walks key tiles 0..its last query.
 *  - backward, two kernels as in k_attention.cu, each gradient element with one writer (no
 *    atomics, deterministic): dq over query tiles (grid (ceil(T/64), NH, B), dQ accumulated in
 *    fragments over key tiles); dk, dv over key tiles (grid (ceil(T/64), NKV, B), dK and dV in
 *    fragments, looping over the kv group's query heads and the query tiles at or after the key
 *    tile). D_t is recomputed per query tile from out and dout (16 warp reductions per warp per
 *    tile) rather than kept in a scratch buffer: the backend entry has no scratch argument, and
 *    a hidden plugin allocation would fall outside the advisor's byte-exact model of the
 *    backend's workspace (docs/cuda.md, tests/unit/test_exec_vs_advisor.c); the extra cost is
 *    one fp32 read of the out tile next to the dO tile the kernel reads anyway.
 *  - tiles start heaviest first (the latest query tiles, the earliest key tiles), as the FMA
 *    kernels do.
 *
 * Dynamic shared memory per block (bytes; tc_dims below; all above the 48 KiB static limit, so
 * each kernel opts in with cudaFuncSetAttribute once; all fit the 99 KiB opt-in limit of sm_86
 * and sm_89, A100 holds 2 (HS 64) or 1 (HS 128) blocks per SM, H100 3 or 2):
 *              HS = 64   HS = 128
 *    forward    62,464     95,232   q tile (aliased by the scores once q is in fragments), k, v
 *                                   tiles, 4 × (16×64 fp32 scores, 16×64 bf16 P, 16×HS fp32 O)
 *    dq, dkv    64,000     96,768   q, dO, k, v tiles, 4 × (16×64 fp32 scores, 16×64 bf16 P or
 *                                   dS), lse and D of 64 rows
 * Checked on an H200 (2026-11-28, tests/gpu/test_cuda_kernels.cu against the CPU kernels): at
 * GPT-2 124M's shape (B 8, T 1024, 12 heads of 64) forward 0.38 ms (34 TFLOP/s), backward
 * 1.30 ms, 4.7× and 3.2× the FMA kernels; far from FlashAttention-2's rates (the scores and
 * the forward's output accumulator go through shared memory, WMMA fragments being opaque). */
#include <mma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

using namespace nvcuda;

#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * 32)
#define TC_TILE 64           /* rows of a q, k, v or dO tile: 16 per warp */
#define TC_SLD (TC_TILE + 4) /* fp32 score row (floats): 16-byte pad against bank conflicts */
#define TC_PLD (TC_TILE + 8) /* bf16 P / dS row (elements): 16-byte pad */
#define TC_LOG2E 1.4426950408889634f
#define TC_LN2 0.6931471805599453f

using bf16 = __nv_bfloat16;
using frag_a = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using frag_b = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
/* B = Xᵀ of a row-major X (keys or queries by head dimension): X read column-major. */
using frag_bt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using frag_c = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

/* Shared-memory geometry for head size HS. Every region and every per-warp slice is a
 * multiple of 128 bytes, and every fragment pointer (16-row or 16-column steps) stays 32-byte
 * aligned, as load/store_matrix_sync require. */
template <int HS> struct tc_dims {
    static constexpr int HLD = HS + 8; /* bf16 tile row (elements): 16-byte pad */
    static constexpr int OLD = HS + 4; /* fp32 16×HS staging row (floats) */
    static constexpr size_t TILE = (size_t)TC_TILE * HLD * sizeof(bf16);
    static constexpr size_t SCORES = (size_t)TC_WARPS * 16 * TC_SLD * sizeof(float);
    static constexpr size_t PROBS = (size_t)TC_WARPS * 16 * TC_PLD * sizeof(bf16);
    static constexpr size_t OACC = (size_t)TC_WARPS * 16 * OLD * sizeof(float);
    static constexpr size_t STATS = (size_t)2 * TC_TILE * sizeof(float);
    static constexpr size_t QS = TILE > SCORES ? TILE : SCORES; /* q tile ∪ scores */
    static constexpr size_t FWD = QS + 2 * TILE + PROBS + OACC;
    static constexpr size_t BWD = 4 * TILE + SCORES + PROBS + STATS;
};
static_assert(tc_dims<64>::FWD == 62464 && tc_dims<128>::FWD == 95232, "documented sizes");
static_assert(tc_dims<64>::BWD == 64000 && tc_dims<128>::BWD == 96768, "documented sizes");
/* The backward kernels stage their 16×HS fp32 results in two freed tiles. */
static_assert(tc_dims<64>::OACC <= 2 * tc_dims<64>::TILE, "dq/dk/dv staging fits");
static_assert(tc_dims<128>::OACC <= 2 * tc_dims<128>::TILE, "dq/dk/dv staging fits");
static_assert(tc_dims<128>::TILE % 128 == 0 && tc_dims<64>::TILE % 128 == 0, "alignment");
static_assert(tc_dims<64>::OACC % 128 == 0 && tc_dims<128>::OACC % 128 == 0, "alignment");

/* Rows [r0, r0+64) of a head slice (row r: HS values of type T, fp32 or bf16, at
 * src + r·stride) into a bf16 tile of 64 × HLD: fp32 rounded to nearest, bf16 copied (the tile
 * an fp32 copy of the same values gives); rows >= T are zeros (so masked products stay
 * finite). Vector loads where every row start is aligned: a float4, or two bf16 pairs. */
template <int HS, typename T>
static __device__ __forceinline__ void tc_load_tile(bf16 *dst, const T *src, size_t stride,
                                                    int r0, int Tlen)
{
    constexpr int HLD = tc_dims<HS>::HLD, C4 = HS / 4;
    uintptr_t bits = reinterpret_cast<uintptr_t>(src) | (uintptr_t)(stride * sizeof(T));
    /* Two bodies, the fp32 one as before bf16 was added: one shared body (widen bf16, round
     * back) moved ptxas's register allocation of the fp32 kernels (mma dq at HS 64 on sm_90
     * 127 -> 135 registers, one block less per SM; spills in the WMMA dq kernel). */
    if constexpr (sizeof(T) == sizeof(float)) {
        bool vec = (bits & 15) == 0;
        for (int e = threadIdx.x; e < TC_TILE * C4; e += TC_THREADS) {
            int r = e / C4, c = (e % C4) * 4;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (r0 + r < Tlen) {
                const T *p = src + (size_t)(r0 + r) * stride + c;
                if (vec)
                    v = *reinterpret_cast<const float4 *>(p);
                else
                    v = make_float4(p[0], p[1], p[2], p[3]);
            }
            __nv_bfloat162 *d = reinterpret_cast<__nv_bfloat162 *>(dst + r * HLD + c);
            d[0] = __floats2bfloat162_rn(v.x, v.y);
            d[1] = __floats2bfloat162_rn(v.z, v.w);
        }
    } else {
        bool vec = (bits & 3) == 0;
        for (int e = threadIdx.x; e < TC_TILE * C4; e += TC_THREADS) {
            int r = e / C4, c = (e % C4) * 4;
            __nv_bfloat162 *d = reinterpret_cast<__nv_bfloat162 *>(dst + r * HLD + c);
            if (r0 + r >= Tlen) {
                d[0] = d[1] = __floats2bfloat162_rn(0.0f, 0.0f);
            } else if (vec) {
                const __nv_bfloat162 *p =
                    reinterpret_cast<const __nv_bfloat162 *>(src + (size_t)(r0 + r) * stride + c);
                d[0] = p[0];
                d[1] = p[1];
            } else {
                const T *p = src + (size_t)(r0 + r) * stride + c;
                dst[r * HLD + c] = p[0];
                dst[r * HLD + c + 1] = p[1];
                dst[r * HLD + c + 2] = p[2];
                dst[r * HLD + c + 3] = p[3];
            }
        }
    }
}

/* For the 16 query rows tw0.. of this warp: D_t = dO_t·O_t (fp32; O fp32 or bf16, widened) and
 * lse_t·log2(e) into slots slot0.. of D_s and lse2_s; 0 for rows >= T. go and o point at row 0
 * of head h of batch b (row stride O elements), lse_row at lse of (b, h, 0). */
template <int HS, typename T>
static __device__ __forceinline__ void tc_row_stats(float *lse2_s, float *D_s, int slot0,
                                                    const float *go, const T *o, size_t O,
                                                    const float *lse_row, int tw0, int Tlen)
{
    int lane = threadIdx.x & 31;
    for (int rr = 0; rr < 16; rr++) {
        int t = tw0 + rr;
        float part = 0.0f;
        if (t < Tlen) {
#pragma unroll
            for (int d = lane; d < HS; d += 32)
                part += go[(size_t)t * O + d] * kc_ld(o + (size_t)t * O + d);
        }
        part = kc_warp_sum(part);
        if (lane == 0) {
            D_s[slot0 + rr] = part;
            lse2_s[slot0 + rr] = t < Tlen ? lse_row[t] * TC_LOG2E : 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- forward */

/* grid (ceil(T/64), NH, B), TC_THREADS threads, tc_dims<HS>::FWD bytes of dynamic shared
 * memory. Warp w owns query rows t0 + 16w .. +15; per key tile it computes S = Q·Kᵀ (scaled to
 * log2 units), updates the running max m and sum l of each row, rescales its fp32 output rows
 * in shared memory by 2^(m_old - m_new) and adds bf16(P)·V. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    tc_forward_kernel(T *out, float *lse, const T *qkv, int Tlen, int NH, int NKV,
                      float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* bf16 WMMA is sm_80+: kcuda_flash_attention_tc_supported keeps this unlaunched */
#else
    using D = tc_dims<HS>;
    constexpr int HLD = D::HLD, OLD = D::OLD, NF = HS / 16;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem);
    float *Ss = reinterpret_cast<float *>(tc_smem); /* after the q fragments are loaded */
    bf16 *Ks = reinterpret_cast<bf16 *>(tc_smem + D::QS), *Vs = Ks + TC_TILE * HLD;
    bf16 *Ps = Vs + TC_TILE * HLD;
    float *Os = reinterpret_cast<float *>(Ps + TC_WARPS * 16 * TC_PLD);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int qb = gridDim.x - 1 - blockIdx.x; /* heaviest (latest) tiles first */
    int h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int t0 = qb * TC_TILE, tw0 = t0 + 16 * warp;
    float *Sw = Ss + warp * 16 * TC_SLD, *Ow = Os + warp * 16 * OLD;
    bf16 *Pw = Ps + warp * 16 * TC_PLD;

    tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
    for (int e = lane; e < 16 * OLD; e += 32)
        Ow[e] = 0.0f;
    __syncthreads();
    frag_a qf[NF];
#pragma unroll
    for (int k = 0; k < NF; k++)
        wmma::load_matrix_sync(qf[k], Qs + 16 * warp * HLD + 16 * k, HLD);

    /* This lane's softmax row (r) and column parity; both lanes of a row hold its m and l. */
    int r = lane >> 1, par = lane & 1, t = tw0 + r;
    float m = -INFINITY, l = 0.0f;
    bool active = tw0 < Tlen; /* warp-uniform: some row of the warp is a real position */
    int kend = t0 + TC_TILE < Tlen ? t0 + TC_TILE : Tlen;
    for (int j0 = 0; j0 < kend; j0 += TC_TILE) {
        __syncthreads(); /* previous K, V read by every warp; every q fragment loaded (Ss = Qs) */
        tc_load_tile<HS>(Ks, base + (size_t)(NH + g) * HS, R, j0, Tlen);
        tc_load_tile<HS>(Vs, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen);
        __syncthreads();
        if (!active || j0 > tw0 + 15)
            continue; /* warp-uniform: nothing of this tile is visible to these rows */
        /* 16-key sub-blocks any row of the warp sees: keys <= its last row and < T. */
        int jmax = tw0 + 15 < Tlen - 1 ? tw0 + 15 : Tlen - 1;
        int nsub = (jmax - j0) / 16 + 1;
        nsub = nsub < 4 ? nsub : 4;
        for (int nb = 0; nb < nsub; nb++) {
            frag_c s;
            wmma::fill_fragment(s, 0.0f);
#pragma unroll
            for (int k = 0; k < NF; k++) {
                frag_bt kf;
                wmma::load_matrix_sync(kf, Ks + 16 * nb * HLD + 16 * k, HLD);
                wmma::mma_sync(s, qf[k], kf, s);
            }
            wmma::store_matrix_sync(Sw + 16 * nb, s, TC_SLD, wmma::mem_row_major);
        }
        __syncwarp();
        float mx = -INFINITY;
#pragma unroll 8
        for (int i = 0; i < 32; i++) {
            int c = 2 * i + par, j = j0 + c;
            if (c < 16 * nsub && j <= t && j < Tlen)
                mx = fmaxf(mx, Sw[r * TC_SLD + c] * scale_log2);
        }
        mx = fmaxf(mx, __shfl_xor_sync(KC_FULL_MASK, mx, 1));
        float mn = fmaxf(m, mx); /* finite for t < T: key j0 <= t was seen by tile 0 */
        float corr = mn == -INFINITY ? 1.0f : exp2f(m - mn); /* 0 while m is -inf */
        float ps = 0.0f;
#pragma unroll 8
        for (int i = 0; i < 32; i++) {
            int c = 2 * i + par, j = j0 + c;
            float p = 0.0f;
            if (c < 16 * nsub && j <= t && j < Tlen)
                p = exp2f(Sw[r * TC_SLD + c] * scale_log2 - mn);
            ps += p;
            Pw[r * TC_PLD + c] = __float2bfloat16_rn(p);
        }
        ps += __shfl_xor_sync(KC_FULL_MASK, ps, 1);
        l = l * corr + ps;
        m = mn;
        for (int i = 0; i < HS / 2; i++)
            Ow[r * OLD + 2 * i + par] *= corr;
        __syncwarp();
#pragma unroll
        for (int nd = 0; nd < NF; nd++) {
            frag_c o;
            wmma::load_matrix_sync(o, Ow + 16 * nd, OLD, wmma::mem_row_major);
            for (int kb = 0; kb < nsub; kb++) {
                frag_a pf;
                frag_b vf;
                wmma::load_matrix_sync(pf, Pw + 16 * kb, TC_PLD);
                wmma::load_matrix_sync(vf, Vs + 16 * kb * HLD + 16 * nd, HLD);
                wmma::mma_sync(o, pf, vf, o);
            }
            wmma::store_matrix_sync(Ow + 16 * nd, o, OLD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    if (!active)
        return; /* no block-wide synchronisation below */
    float inv = 1.0f / l;
    for (int rr = 0; rr < 16; rr++) {
        float iv = __shfl_sync(KC_FULL_MASK, inv, 2 * rr);
        int tt = tw0 + rr;
        if (tt >= Tlen)
            break; /* warp-uniform */
        T *o = out + ((size_t)b * Tlen + tt) * NH * HS + (size_t)h * HS;
        for (int d = lane; d < HS; d += 32)
            kc_st(o + d, Ow[rr * OLD + d] * iv);
    }
    if (par == 0 && t < Tlen && lse)
        lse[((size_t)b * NH + h) * Tlen + t] = m * TC_LN2 + logf(l);
#endif
}

/* ---------------------------------------------------------------- backward: dq */

/* grid (ceil(T/64), NH, B), tc_dims<HS>::BWD bytes. Warp w owns query rows t0 + 16w .. +15:
 * per key tile, S = Q·Kᵀ and dP = dO·Vᵀ through the warp's fp32 score slice,
 * P = 2^(S·scale·log2e - lse·log2e), dS = scale·P·(dP - D) (flash.c pass 1), dQ += bf16(dS)·K
 * in fragments; at the end dq is added to dqkv. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    tc_backward_dq_kernel(float *dqkv, const float *dout, const T *qkv, const T *out,
                          const float *lse, int Tlen, int NH, int NKV, float scale,
                          float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* bf16 WMMA is sm_80+: kcuda_flash_attention_tc_supported keeps this unlaunched */
#else
    using D = tc_dims<HS>;
    constexpr int HLD = D::HLD, OLD = D::OLD, NF = HS / 16;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem), *dOs = Qs + TC_TILE * HLD;
    bf16 *Ks = dOs + TC_TILE * HLD, *Vs = Ks + TC_TILE * HLD;
    float *Ss = reinterpret_cast<float *>(Vs + TC_TILE * HLD);
    bf16 *Ps = reinterpret_cast<bf16 *>(Ss + TC_WARPS * 16 * TC_SLD);
    float *lse2_s = reinterpret_cast<float *>(Ps + TC_WARPS * 16 * TC_PLD);
    float *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int qb = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    const float *go = dout + (size_t)b * Tlen * O + (size_t)h * HS;
    int t0 = qb * TC_TILE, tw0 = t0 + 16 * warp;
    float *Sw = Ss + warp * 16 * TC_SLD;
    bf16 *Pw = Ps + warp * 16 * TC_PLD;

    tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
    tc_load_tile<HS>(dOs, go, O, t0, Tlen);
    tc_row_stats<HS>(lse2_s, D_s, 16 * warp, go, out + (size_t)b * Tlen * O + (size_t)h * HS, O,
                     lse + ((size_t)b * NH + h) * Tlen, tw0, Tlen);
    __syncwarp();
    int r = lane >> 1, par = lane & 1, t = tw0 + r;
    float L2 = lse2_s[16 * warp + r], Dt = D_s[16 * warp + r];
    frag_c dq[NF];
#pragma unroll
    for (int nd = 0; nd < NF; nd++)
        wmma::fill_fragment(dq[nd], 0.0f);
    bool active = tw0 < Tlen;
    int kend = t0 + TC_TILE < Tlen ? t0 + TC_TILE : Tlen;
    for (int j0 = 0; j0 < kend; j0 += TC_TILE) {
        __syncthreads();
        tc_load_tile<HS>(Ks, base + (size_t)(NH + g) * HS, R, j0, Tlen);
        tc_load_tile<HS>(Vs, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen);
        __syncthreads(); /* also publishes the q and dO tiles on the first pass */
        if (!active || j0 > tw0 + 15)
            continue;
        int jmax = tw0 + 15 < Tlen - 1 ? tw0 + 15 : Tlen - 1;
        int nsub = (jmax - j0) / 16 + 1;
        nsub = nsub < 4 ? nsub : 4;
        /* S = Q·Kᵀ */
        for (int nb = 0; nb < nsub; nb++) {
            frag_c s;
            wmma::fill_fragment(s, 0.0f);
#pragma unroll
            for (int k = 0; k < NF; k++) {
                frag_a a;
                frag_bt bt;
                wmma::load_matrix_sync(a, Qs + 16 * warp * HLD + 16 * k, HLD);
                wmma::load_matrix_sync(bt, Ks + 16 * nb * HLD + 16 * k, HLD);
                wmma::mma_sync(s, a, bt, s);
            }
            wmma::store_matrix_sync(Sw + 16 * nb, s, TC_SLD, wmma::mem_row_major);
        }
        __syncwarp();
        float p[32];
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int c = 2 * i + par, j = j0 + c;
            bool ok = c < 16 * nsub && j <= t && t < Tlen;
            p[i] = ok ? exp2f(Sw[r * TC_SLD + c] * scale_log2 - L2) : 0.0f;
        }
        __syncwarp(); /* every lane has read S before dP overwrites it */
        /* dP = dO·Vᵀ */
        for (int nb = 0; nb < nsub; nb++) {
            frag_c s;
            wmma::fill_fragment(s, 0.0f);
#pragma unroll
            for (int k = 0; k < NF; k++) {
                frag_a a;
                frag_bt bt;
                wmma::load_matrix_sync(a, dOs + 16 * warp * HLD + 16 * k, HLD);
                wmma::load_matrix_sync(bt, Vs + 16 * nb * HLD + 16 * k, HLD);
                wmma::mma_sync(s, a, bt, s);
            }
            wmma::store_matrix_sync(Sw + 16 * nb, s, TC_SLD, wmma::mem_row_major);
        }
        __syncwarp();
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int c = 2 * i + par;
            float ds = 0.0f;
            if (c < 16 * nsub) /* p is 0 where masked; the score slice is stale beyond nsub */
                ds = scale * p[i] * (Sw[r * TC_SLD + c] - Dt);
            Pw[r * TC_PLD + c] = __float2bfloat16_rn(ds);
        }
        __syncwarp();
        /* dQ += dS·K */
#pragma unroll
        for (int nd = 0; nd < NF; nd++) {
            for (int kb = 0; kb < nsub; kb++) {
                frag_a a;
                frag_b bf;
                wmma::load_matrix_sync(a, Pw + 16 * kb, TC_PLD);
                wmma::load_matrix_sync(bf, Ks + 16 * kb * HLD + 16 * nd, HLD);
                wmma::mma_sync(dq[nd], a, bf, dq[nd]);
            }
        }
    }
    __syncthreads(); /* the k and v tiles are free: stage dq there */
    float *St = reinterpret_cast<float *>(Ks) + warp * 16 * OLD;
#pragma unroll
    for (int nd = 0; nd < NF; nd++)
        wmma::store_matrix_sync(St + 16 * nd, dq[nd], OLD, wmma::mem_row_major);
    __syncwarp();
    for (int rr = 0; rr < 16; rr++) {
        int tt = tw0 + rr;
        if (tt >= Tlen)
            break;
        float *dst = dqkv + ((size_t)b * Tlen + tt) * R + (size_t)h * HS;
        for (int d = lane; d < HS; d += 32)
            dst[d] += St[rr * OLD + d];
    }
#endif
}

/* ---------------------------------------------------------------- backward: dk, dv */

/* grid (ceil(T/64), NKV, B), tc_dims<HS>::BWD bytes. Warp w owns keys j0 + 16w .. +15 of kv
 * head g; for each query head h of the group and each query tile t0 >= j0 (tiles are aligned,
 * so the first one holding a query >= j0 starts at j0): Sᵀ = K·Qᵀ, Pᵀ, dV += bf16(Pᵀ)·dO,
 * dPᵀ = V·dOᵀ, dSᵀ = scale·Pᵀ·(dPᵀ - D), dK += bf16(dSᵀ)·Q (flash.c pass 2), then dk and dv
 * are added to dqkv. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    tc_backward_dkv_kernel(float *dqkv, const float *dout, const T *qkv, const T *out,
                           const float *lse, int Tlen, int NH, int NKV, float scale,
                           float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* bf16 WMMA is sm_80+: kcuda_flash_attention_tc_supported keeps this unlaunched */
#else
    using D = tc_dims<HS>;
    constexpr int HLD = D::HLD, OLD = D::OLD, NF = HS / 16;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(tc_smem), *Vs = Ks + TC_TILE * HLD;
    bf16 *Qs = Vs + TC_TILE * HLD, *dOs = Qs + TC_TILE * HLD;
    float *Ss = reinterpret_cast<float *>(dOs + TC_TILE * HLD);
    bf16 *Ps = reinterpret_cast<bf16 *>(Ss + TC_WARPS * 16 * TC_SLD);
    float *lse2_s = reinterpret_cast<float *>(Ps + TC_WARPS * 16 * TC_PLD);
    float *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int kb = gridDim.x - 1 - blockIdx.x; /* heaviest (earliest) key tiles first */
    int g = blockIdx.y, b = blockIdx.z, rep = NH / NKV;
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int j0 = kb * TC_TILE, jw0 = j0 + 16 * warp;
    float *Sw = Ss + warp * 16 * TC_SLD;
    bf16 *Pw = Ps + warp * 16 * TC_PLD;

    tc_load_tile<HS>(Ks, base + (size_t)(NH + g) * HS, R, j0, Tlen);
    tc_load_tile<HS>(Vs, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen);
    int r = lane >> 1, par = lane & 1, j = jw0 + r; /* this lane's key row */
    frag_c dk[NF], dv[NF];
#pragma unroll
    for (int nd = 0; nd < NF; nd++) {
        wmma::fill_fragment(dk[nd], 0.0f);
        wmma::fill_fragment(dv[nd], 0.0f);
    }
    bool active = jw0 < Tlen;
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        const float *go = dout + (size_t)b * Tlen * O + (size_t)h * HS;
        const T *oh = out + (size_t)b * Tlen * O + (size_t)h * HS;
        const float *lrow = lse + ((size_t)b * NH + h) * Tlen;
        for (int t0 = j0; t0 < Tlen; t0 += TC_TILE) {
            __syncthreads(); /* the previous q, dO tiles and row statistics are read */
            tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
            tc_load_tile<HS>(dOs, go, O, t0, Tlen);
            tc_row_stats<HS>(lse2_s, D_s, 16 * warp, go, oh, O, lrow, t0 + 16 * warp, Tlen);
            __syncthreads();
            if (!active)
                continue;
            /* 16-query sub-blocks the warp needs: queries >= its first key and < T. */
            int qlo = (jw0 - t0) / 16, qhi = (Tlen - t0 + 15) / 16;
            qlo = qlo > 0 ? qlo : 0;
            qhi = qhi < 4 ? qhi : 4;
            if (qlo >= qhi)
                continue;
            /* Sᵀ = K·Qᵀ */
            for (int nb = qlo; nb < qhi; nb++) {
                frag_c s;
                wmma::fill_fragment(s, 0.0f);
#pragma unroll
                for (int k = 0; k < NF; k++) {
                    frag_a a;
                    frag_bt bt;
                    wmma::load_matrix_sync(a, Ks + 16 * warp * HLD + 16 * k, HLD);
                    wmma::load_matrix_sync(bt, Qs + 16 * nb * HLD + 16 * k, HLD);
                    wmma::mma_sync(s, a, bt, s);
                }
                wmma::store_matrix_sync(Sw + 16 * nb, s, TC_SLD, wmma::mem_row_major);
            }
            __syncwarp();
            float p[32];
#pragma unroll
            for (int i = 0; i < 32; i++) {
                int c = 2 * i + par, q = t0 + c;
                bool ok = c >= 16 * qlo && c < 16 * qhi && j <= q && q < Tlen && j < Tlen;
                p[i] = ok ? exp2f(Sw[r * TC_SLD + c] * scale_log2 - lse2_s[c]) : 0.0f;
                Pw[r * TC_PLD + c] = __float2bfloat16_rn(p[i]);
            }
            __syncwarp();
            /* dV += Pᵀ·dO */
#pragma unroll
            for (int nd = 0; nd < NF; nd++) {
                for (int qk = qlo; qk < qhi; qk++) {
                    frag_a a;
                    frag_b bf;
                    wmma::load_matrix_sync(a, Pw + 16 * qk, TC_PLD);
                    wmma::load_matrix_sync(bf, dOs + 16 * qk * HLD + 16 * nd, HLD);
                    wmma::mma_sync(dv[nd], a, bf, dv[nd]);
                }
            }
            /* dPᵀ = V·dOᵀ */
            for (int nb = qlo; nb < qhi; nb++) {
                frag_c s;
                wmma::fill_fragment(s, 0.0f);
#pragma unroll
                for (int k = 0; k < NF; k++) {
                    frag_a a;
                    frag_bt bt;
                    wmma::load_matrix_sync(a, Vs + 16 * warp * HLD + 16 * k, HLD);
                    wmma::load_matrix_sync(bt, dOs + 16 * nb * HLD + 16 * k, HLD);
                    wmma::mma_sync(s, a, bt, s);
                }
                wmma::store_matrix_sync(Sw + 16 * nb, s, TC_SLD, wmma::mem_row_major);
            }
            __syncwarp(); /* dP stored, and every lane's Pᵀ fragment loads are done */
#pragma unroll
            for (int i = 0; i < 32; i++) {
                int c = 2 * i + par;
                float ds = 0.0f;
                if (c >= 16 * qlo && c < 16 * qhi) /* p is 0 where masked */
                    ds = scale * p[i] * (Sw[r * TC_SLD + c] - D_s[c]);
                Pw[r * TC_PLD + c] = __float2bfloat16_rn(ds);
            }
            __syncwarp();
            /* dK += dSᵀ·Q */
#pragma unroll
            for (int nd = 0; nd < NF; nd++) {
                for (int qk = qlo; qk < qhi; qk++) {
                    frag_a a;
                    frag_b bf;
                    wmma::load_matrix_sync(a, Pw + 16 * qk, TC_PLD);
                    wmma::load_matrix_sync(bf, Qs + 16 * qk * HLD + 16 * nd, HLD);
                    wmma::mma_sync(dk[nd], a, bf, dk[nd]);
                }
            }
        }
    }
    __syncthreads(); /* every tile is free: stage dk in the k, v tiles and dv in the q, dO ones */
    float *Sk = reinterpret_cast<float *>(Ks) + warp * 16 * OLD;
    float *Sv = reinterpret_cast<float *>(Qs) + warp * 16 * OLD;
#pragma unroll
    for (int nd = 0; nd < NF; nd++) {
        wmma::store_matrix_sync(Sk + 16 * nd, dk[nd], OLD, wmma::mem_row_major);
        wmma::store_matrix_sync(Sv + 16 * nd, dv[nd], OLD, wmma::mem_row_major);
    }
    __syncwarp();
    for (int rr = 0; rr < 16; rr++) {
        int jj = jw0 + rr;
        if (jj >= Tlen)
            break;
        float *dkp = dqkv + ((size_t)b * Tlen + jj) * R + (size_t)(NH + g) * HS;
        float *dvp = dkp + (size_t)NKV * HS;
        for (int d = lane; d < HS; d += 32) {
            dkp[d] += Sk[rr * OLD + d];
            dvp[d] += Sv[rr * OLD + d];
        }
    }
#endif
}

/* ---------------------------------------------------------------- mma.sync kernels
 *
 * The same three kernels written with PTX mma.sync m16n8k16 (bf16 operands, fp32 accumulators)
 * instead of WMMA, in the manner of FlashAttention-2: the accumulator layout is documented (PTX
 * ISA, "Matrix Fragments for mma.m16n8k16"), so the scores, the softmax and the probabilities
 * stay in registers: no shared-memory round trip per key tile, and P (or dS) becomes the next
 * product's A operand directly (the accumulators of two adjacent 8-column tiles are the A
 * fragment of a 16-column step). The same numerics as the WMMA kernels (bf16 q, k, v, dO, P and
 * dS; fp32 rest). The 16-bit plans' default where they fit (SCALEWISE_CUDA_ATTENTION=wmma or
 * =fma picks the others). On an H200 (2026-11-28, GPT-2 124M's shape, B 8): forward 0.346 ms,
 * backward 1.031 ms (WMMA 0.385 and 1.303); bf16-mixed training 8% faster at B 16 and 64, the
 * same loss curve to 1e-3. Still 8× short of FlashAttention-2's rates: the tiles are converted
 * from fp32 as they are loaded (no cp.async, no double buffering) and fragments are built with
 * 32-bit shared-memory loads rather than ldmatrix.
 *
 * Fragments, lane = 4·g + t (g 0..7, t 0..3): A (16×16) a0 = A[g][2t..2t+1], a1 = A[g+8][2t..],
 * a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]; B (16×8, k × n) b0 = B[2t..2t+1][g], b1 = B[2t+8..][g];
 * C (16×8) c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1]. A pair along k is
 * one 32-bit shared-memory load when the operand is stored with k contiguous: row-major tiles
 * serve A operands and Bᵀ = X products (k = the head dimension), transposed tiles (head
 * dimension × rows) the B operands whose k is a row index. */

#define MM_TLD (TC_TILE + 8) /* transposed tile row (bf16 elements): 16-byte pad */

/* The helpers exist where the kernels have bodies (not in sm_75's device pass: traps there). */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
/* d += a·b on bf16 tensor cores. The CUDA emulation (tests/cuda_emu) has no PTX: there the
 * product is computed from the documented fragment layouts, gathering each lane's A rows and B
 * columns with shuffles, so the kernels' use of the layouts is what the emulation tests. */
static __device__ __forceinline__ void mm_mma(float (&d)[4], const uint32_t (&a)[4],
                                              const uint32_t (&b)[2])
{
#if defined(__CUDA_ARCH__)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float ar[2][16], bc[2][16];
    for (int u = 0; u < 4; u++) {
        uint32_t x[4], y[2][2];
        for (int i = 0; i < 4; i++)
            x[i] = __shfl_sync(KC_FULL_MASK, a[i], 4 * g + u);
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 2; i++)
                y[c][i] = __shfl_sync(KC_FULL_MASK, b[i], 4 * (2 * t + c) + u);
        for (int h = 0; h < 2; h++) { /* h: the pair's first or second element */
            int sh = 16 * h;
            ar[0][2 * u + h] = __uint_as_float((x[0] >> sh & 0xffffu) << 16);
            ar[1][2 * u + h] = __uint_as_float((x[1] >> sh & 0xffffu) << 16);
            ar[0][8 + 2 * u + h] = __uint_as_float((x[2] >> sh & 0xffffu) << 16);
            ar[1][8 + 2 * u + h] = __uint_as_float((x[3] >> sh & 0xffffu) << 16);
            for (int c = 0; c < 2; c++) {
                bc[c][2 * u + h] = __uint_as_float((y[c][0] >> sh & 0xffffu) << 16);
                bc[c][8 + 2 * u + h] = __uint_as_float((y[c][1] >> sh & 0xffffu) << 16);
            }
        }
    }
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) {
            float acc = d[2 * r + c];
            for (int k = 0; k < 16; k++)
                acc += ar[r][k] * bc[c][k];
            d[2 * r + c] = acc;
        }
#endif
}

static __device__ __forceinline__ uint32_t mm_pack(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* One key tile's online-softmax step of the forward kernels (mm_forward_kernel,
 * pp_forward_kernel), on this lane's scores s of 8 column tiles of 8 keys from j0 (raw
 * products): the causal mask and the scale to log2 units; each row's running max m (over its
 * quad) and sum l (this lane's share, of the unrounded probabilities); the output accumulators
 * o rescaled by 2^(m_old - m_new); P rounded to bf16 into pa, the A operand of 4 k-steps of 16
 * keys. row: this lane's two query rows. */
template <int ND>
static __device__ __forceinline__ void mm_softmax_step(float (&s)[8][4], float (&m)[2],
                                                       float (&l)[2], float (&o)[ND][4],
                                                       uint32_t (&pa)[4][4], const int (&row)[2],
                                                       int j0, int Tlen, float scale_log2)
{
    int t = threadIdx.x & 3;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int j = j0 + 8 * n + 2 * t + (e & 1), r = e >> 1;
            float v = j <= row[r] && j < Tlen ? s[n][e] * scale_log2 : -INFINITY;
            s[n][e] = v;
            mx[r] = fmaxf(mx[r], v);
        }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(KC_FULL_MASK, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(KC_FULL_MASK, mx[r], 2));
        float mn = fmaxf(m[r], mx[r]); /* -inf only for a row that sees no key yet */
        corr[r] = mn == -INFINITY ? 1.0f : exp2f(m[r] - mn);
        m[r] = mn;
        l[r] *= corr[r];
    }
#pragma unroll
    for (int n = 0; n < 8; n++) {
        float p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = e >> 1;
            p[e] = s[n][e] == -INFINITY ? 0.0f : exp2f(s[n][e] - m[r]);
            l[r] += p[e];
        }
        pa[n >> 1][(n & 1) * 2] = mm_pack(p[0], p[1]);
        pa[n >> 1][(n & 1) * 2 + 1] = mm_pack(p[2], p[3]);
    }
#pragma unroll
    for (int n = 0; n < ND; n++) {
        o[n][0] *= corr[0];
        o[n][1] *= corr[0];
        o[n][2] *= corr[1];
        o[n][3] *= corr[1];
    }
}

/* Two consecutive bf16 of shared memory (an even element index) as one 32-bit register. */
static __device__ __forceinline__ uint32_t mm_ld2(const bf16 *p)
{
    return *reinterpret_cast<const uint32_t *>(p);
}

/* The A fragment of rows r0..r0+15, columns k0..k0+15 of a row-major tile (row stride ld). */
static __device__ __forceinline__ void mm_frag_a(uint32_t (&a)[4], const bf16 *tile, int ld,
                                                 int r0, int k0)
{
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16 *p = tile + (size_t)(r0 + g) * ld + k0 + 2 * t;
    a[0] = mm_ld2(p);
    a[1] = mm_ld2(p + 8 * ld);
    a[2] = mm_ld2(p + 8);
    a[3] = mm_ld2(p + 8 * ld + 8);
}

/* The B fragment of the k-step k0..k0+15 and columns n0..n0+7 from a tile stored n-major
 * (element (k, n) at tile[n·ld + k]: a row-major X for B = Xᵀ, or a transposed tile). */
static __device__ __forceinline__ void mm_frag_b(uint32_t (&b)[2], const bf16 *tile, int ld,
                                                 int n0, int k0)
{
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16 *p = tile + (size_t)(n0 + g) * ld + k0 + 2 * t;
    b[0] = mm_ld2(p);
    b[1] = mm_ld2(p + 8);
}

/* Rows [r0, r0+64) of a head slice (fp32 or bf16) into a transposed bf16 tile
 * dst[d·MM_TLD + r] (HS rows of 64 positions), rounding to nearest; rows >= T are zeros. */
template <int HS, typename T>
static __device__ __forceinline__ void mm_load_tile_t(bf16 *dst, const T *src, size_t stride,
                                                      int r0, int Tlen)
{
    for (int e = threadIdx.x; e < TC_TILE * HS; e += TC_THREADS) {
        int r = e / HS, c = e % HS; /* consecutive threads: consecutive columns of one row */
        float v = r0 + r < Tlen ? kc_ld(src + (size_t)(r0 + r) * stride + c) : 0.0f;
        dst[c * MM_TLD + r] = __float2bfloat16_rn(v);
    }
}
#endif

/* Shared memory (bytes) of the mma kernels for head size HS. */
template <int HS> struct mm_dims {
    static constexpr size_t ROW = (size_t)TC_TILE * tc_dims<HS>::HLD * sizeof(bf16); /* 64×HS */
    static constexpr size_t TRN = (size_t)HS * MM_TLD * sizeof(bf16); /* HS×64 transposed */
    static constexpr size_t STATS = (size_t)2 * TC_TILE * sizeof(float);
    static constexpr size_t FWD = 2 * ROW + TRN;          /* q, k; vᵀ */
    static constexpr size_t DQ = 4 * ROW + TRN + STATS;   /* q, dO, k, v; kᵀ; lse, D */
    static constexpr size_t DKV = 4 * ROW + 2 * TRN + STATS; /* k, v, q, dO; qᵀ, dOᵀ; lse, D */
};

/* grid (ceil(T/64), NH, B), TC_THREADS threads, mm_dims<HS>::FWD bytes. Warp w owns query rows
 * t0 + 16w .. +15 (this lane: rows g and g+8 of them); per key tile: S = Q·Kᵀ in 8 column
 * tiles of 8 keys, the online softmax on the registers (a row's max and sum over its quad),
 * O += bf16(P)·V. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    mm_forward_kernel(T *out, float *lse, const T *qkv, int Tlen, int NH, int NKV,
                      float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap(); /* bf16 mma.sync is sm_80+: kcuda_flash_attention_mma_supported keeps this out */
#else
    constexpr int HLD = tc_dims<HS>::HLD, NK = HS / 16, ND = HS / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem), *Ks = Qs + TC_TILE * HLD;
    bf16 *Vt = Ks + TC_TILE * HLD;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int qb = gridDim.x - 1 - blockIdx.x; /* heaviest (latest) tiles first */
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int t0 = qb * TC_TILE, tw0 = t0 + 16 * warp;
    int row[2] = {tw0 + g, tw0 + g + 8};

    tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
    __syncthreads();
    uint32_t qa[NK][4];
#pragma unroll
    for (int k = 0; k < NK; k++)
        mm_frag_a(qa[k], Qs, HLD, 16 * warp, 16 * k);
    float o[ND][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < ND; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    int kend = t0 + TC_TILE < Tlen ? t0 + TC_TILE : Tlen;
    for (int j0 = 0; j0 < kend; j0 += TC_TILE) {
        __syncthreads(); /* every warp is done with the previous K and Vᵀ */
        tc_load_tile<HS>(Ks, base + (size_t)(NH + kvh) * HS, R, j0, Tlen);
        mm_load_tile_t<HS>(Vt, base + (size_t)(NH + NKV + kvh) * HS, R, j0, Tlen);
        __syncthreads();
        if (j0 > tw0 + 15)
            continue; /* warp-uniform: no key of this tile is visible to these rows */
        float s[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                uint32_t kb[2];
                mm_frag_b(kb, Ks, HLD, 8 * n, 16 * k);
                mm_mma(s[n], qa[k], kb);
            }
        }
        uint32_t pa[4][4]; /* P as the A operand of 4 k-steps of 16 keys */
        mm_softmax_step(s, m, l, o, pa, row, j0, Tlen, scale_log2);
#pragma unroll
        for (int n = 0; n < ND; n++) {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                uint32_t vb[2];
                mm_frag_b(vb, Vt, MM_TLD, 8 * n, 16 * k);
                mm_mma(o[n], pa[k], vb);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(KC_FULL_MASK, l[r], 1);
        l[r] += __shfl_xor_sync(KC_FULL_MASK, l[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row[r] >= Tlen)
            continue;
        float inv = 1.0f / l[r];
        T *op = out + ((size_t)b * Tlen + row[r]) * NH * HS + (size_t)h * HS;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            kc_st(op + 8 * n + 2 * t, o[n][2 * r] * inv);
            kc_st(op + 8 * n + 2 * t + 1, o[n][2 * r + 1] * inv);
        }
        if (t == 0 && lse)
            lse[((size_t)b * NH + h) * Tlen + row[r]] = m[r] * TC_LN2 + logf(l[r]);
    }
#endif
}

/* grid (ceil(T/64), NH, B), mm_dims<HS>::DQ bytes. Warp w owns query rows t0 + 16w .. +15: per
 * key tile, S = Q·Kᵀ and dP = dO·Vᵀ in registers, P = 2^(S·scale·log2e - lse·log2e),
 * dS = scale·P·(dP - D), dQ += bf16(dS)·K; at the end dq is added to dqkv. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    mm_backward_dq_kernel(float *dqkv, const float *dout, const T *qkv, const T *out,
                          const float *lse, int Tlen, int NH, int NKV, float scale,
                          float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    constexpr int HLD = tc_dims<HS>::HLD, NK = HS / 16, ND = HS / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem), *dOs = Qs + TC_TILE * HLD;
    bf16 *Ks = dOs + TC_TILE * HLD, *Kt = Ks + TC_TILE * HLD, *Vs = Kt + HS * MM_TLD;
    float *lse2_s = reinterpret_cast<float *>(Vs + TC_TILE * HLD), *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int qb = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    const float *go = dout + (size_t)b * Tlen * O + (size_t)h * HS;
    int t0 = qb * TC_TILE, tw0 = t0 + 16 * warp;
    int row[2] = {tw0 + g, tw0 + g + 8};

    tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
    tc_load_tile<HS>(dOs, go, O, t0, Tlen);
    tc_row_stats<HS>(lse2_s, D_s, 16 * warp, go, out + (size_t)b * Tlen * O + (size_t)h * HS, O,
                     lse + ((size_t)b * NH + h) * Tlen, tw0, Tlen);
    __syncthreads();
    float L2[2], Dt[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        L2[r] = lse2_s[16 * warp + g + 8 * r];
        Dt[r] = D_s[16 * warp + g + 8 * r];
    }
    float dq[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
        dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    int kend = t0 + TC_TILE < Tlen ? t0 + TC_TILE : Tlen;
    for (int j0 = 0; j0 < kend; j0 += TC_TILE) {
        __syncthreads();
        tc_load_tile<HS>(Ks, base + (size_t)(NH + kvh) * HS, R, j0, Tlen);
        mm_load_tile_t<HS>(Kt, base + (size_t)(NH + kvh) * HS, R, j0, Tlen);
        tc_load_tile<HS>(Vs, base + (size_t)(NH + NKV + kvh) * HS, R, j0, Tlen);
        __syncthreads();
        if (j0 > tw0 + 15)
            continue;
        uint32_t da[4][4]; /* dS as the A operand of 4 k-steps of 16 keys */
#pragma unroll
        for (int n = 0; n < 8; n++) {
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, dp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int k = 0; k < NK; k++) {
                uint32_t a[4], kb[2], vb[2];
                mm_frag_a(a, Qs, HLD, 16 * warp, 16 * k);
                mm_frag_b(kb, Ks, HLD, 8 * n, 16 * k);
                mm_mma(s, a, kb);
                mm_frag_a(a, dOs, HLD, 16 * warp, 16 * k);
                mm_frag_b(vb, Vs, HLD, 8 * n, 16 * k);
                mm_mma(dp, a, vb);
            }
            float ds[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = j0 + 8 * n + 2 * t + (e & 1), r = e >> 1;
                bool ok = j <= row[r] && j < Tlen && row[r] < Tlen;
                float p = ok ? exp2f(s[e] * scale_log2 - L2[r]) : 0.0f;
                ds[e] = scale * p * (dp[e] - Dt[r]);
            }
            da[n >> 1][(n & 1) * 2] = mm_pack(ds[0], ds[1]);
            da[n >> 1][(n & 1) * 2 + 1] = mm_pack(ds[2], ds[3]);
        }
#pragma unroll
        for (int n = 0; n < ND; n++)
#pragma unroll
            for (int k = 0; k < 4; k++) {
                uint32_t kb[2];
                mm_frag_b(kb, Kt, MM_TLD, 8 * n, 16 * k);
                mm_mma(dq[n], da[k], kb);
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row[r] >= Tlen)
            continue;
        float *dst = dqkv + ((size_t)b * Tlen + row[r]) * R + (size_t)h * HS;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            dst[8 * n + 2 * t] += dq[n][2 * r];
            dst[8 * n + 2 * t + 1] += dq[n][2 * r + 1];
        }
    }
#endif
}

/* grid (ceil(T/64), NKV, B), mm_dims<HS>::DKV bytes. Warp w owns keys j0 + 16w .. +15 of kv
 * head g; for each query head of the group and each query tile t0 >= j0: Sᵀ = K·Qᵀ and
 * dPᵀ = V·dOᵀ in registers, Pᵀ, dV += bf16(Pᵀ)·dO, dSᵀ = scale·Pᵀ·(dPᵀ - D),
 * dK += bf16(dSᵀ)·Q; then dk and dv are added to dqkv. */
template <int HS, typename T>
__global__ void __launch_bounds__(TC_THREADS)
    mm_backward_dkv_kernel(float *dqkv, const float *dout, const T *qkv, const T *out,
                           const float *lse, int Tlen, int NH, int NKV, float scale,
                           float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    constexpr int HLD = tc_dims<HS>::HLD, NK = HS / 16, ND = HS / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(tc_smem), *Vs = Ks + TC_TILE * HLD;
    bf16 *Qs = Vs + TC_TILE * HLD, *dOs = Qs + TC_TILE * HLD;
    bf16 *Qt = dOs + TC_TILE * HLD, *dOt = Qt + HS * MM_TLD;
    float *lse2_s = reinterpret_cast<float *>(dOt + HS * MM_TLD), *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int kb0 = gridDim.x - 1 - blockIdx.x; /* heaviest (earliest) key tiles first */
    int kvh = blockIdx.y, b = blockIdx.z, rep = NH / NKV;
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int j0 = kb0 * TC_TILE, jw0 = j0 + 16 * warp;
    int key[2] = {jw0 + g, jw0 + g + 8}; /* this lane's key rows */

    tc_load_tile<HS>(Ks, base + (size_t)(NH + kvh) * HS, R, j0, Tlen);
    tc_load_tile<HS>(Vs, base + (size_t)(NH + NKV + kvh) * HS, R, j0, Tlen);
    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dk[n][e] = dv[n][e] = 0.0f;
    bool active = jw0 < Tlen;
    for (int h = kvh * rep; h < (kvh + 1) * rep; h++) {
        const float *go = dout + (size_t)b * Tlen * O + (size_t)h * HS;
        const T *oh = out + (size_t)b * Tlen * O + (size_t)h * HS;
        const float *lrow = lse + ((size_t)b * NH + h) * Tlen;
        for (int t0 = j0; t0 < Tlen; t0 += TC_TILE) {
            __syncthreads(); /* the previous q, dO tiles and row statistics are read */
            tc_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
            mm_load_tile_t<HS>(Qt, base + (size_t)h * HS, R, t0, Tlen);
            tc_load_tile<HS>(dOs, go, O, t0, Tlen);
            mm_load_tile_t<HS>(dOt, go, O, t0, Tlen);
            tc_row_stats<HS>(lse2_s, D_s, 16 * warp, go, oh, O, lrow, t0 + 16 * warp, Tlen);
            __syncthreads();
            if (!active)
                continue; /* warp-uniform; every later query tile sees these keys (t0 >= j0) */
            uint32_t pa[4][4], da[4][4]; /* Pᵀ and dSᵀ as A operands, 4 k-steps of 16 queries */
#pragma unroll
            for (int n = 0; n < 8; n++) {
                float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, dp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int k = 0; k < NK; k++) {
                    uint32_t a[4], qb[2], ob[2];
                    mm_frag_a(a, Ks, HLD, 16 * warp, 16 * k);
                    mm_frag_b(qb, Qs, HLD, 8 * n, 16 * k);
                    mm_mma(s, a, qb);
                    mm_frag_a(a, Vs, HLD, 16 * warp, 16 * k);
                    mm_frag_b(ob, dOs, HLD, 8 * n, 16 * k);
                    mm_mma(dp, a, ob);
                }
                float p[4], ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int c = 8 * n + 2 * t + (e & 1), q = t0 + c, r = e >> 1;
                    bool ok = key[r] <= q && q < Tlen && key[r] < Tlen;
                    p[e] = ok ? exp2f(s[e] * scale_log2 - lse2_s[c]) : 0.0f;
                    ds[e] = scale * p[e] * (dp[e] - D_s[c]);
                }
                pa[n >> 1][(n & 1) * 2] = mm_pack(p[0], p[1]);
                pa[n >> 1][(n & 1) * 2 + 1] = mm_pack(p[2], p[3]);
                da[n >> 1][(n & 1) * 2] = mm_pack(ds[0], ds[1]);
                da[n >> 1][(n & 1) * 2 + 1] = mm_pack(ds[2], ds[3]);
            }
#pragma unroll
            for (int n = 0; n < ND; n++)
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    uint32_t ob[2], qb[2];
                    mm_frag_b(ob, dOt, MM_TLD, 8 * n, 16 * k);
                    mm_mma(dv[n], pa[k], ob);
                    mm_frag_b(qb, Qt, MM_TLD, 8 * n, 16 * k);
                    mm_mma(dk[n], da[k], qb);
                }
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (key[r] >= Tlen)
            continue;
        float *dkp = dqkv + ((size_t)b * Tlen + key[r]) * R + (size_t)(NH + kvh) * HS;
        float *dvp = dkp + (size_t)NKV * HS;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            dkp[8 * n + 2 * t] += dk[n][2 * r];
            dkp[8 * n + 2 * t + 1] += dk[n][2 * r + 1];
            dvp[8 * n + 2 * t] += dv[n][2 * r];
            dvp[8 * n + 2 * t + 1] += dv[n][2 * r + 1];
        }
    }
#endif
}

/* ---------------------------------------------------------------- pipelined mma.sync kernels
 *
 * The mma.sync kernels' arithmetic for bf16 q, k, v (the _a16 entries), with FlashAttention-2's
 * data movement. The same products in the same order and the same softmax, so on the same
 * inputs they give the mma.sync kernels' results bit for bit (tests/gpu/test_cuda_kernels.cu
 * checks it); what changes is how operands reach the tensor cores:
 *  - q, k, v (and the backward's dO) tiles are copied into shared memory by cp.async, 16 bytes
 *    a thread, without passing through registers, and double-buffered: the next key tile
 *    (forward, dq) or query tile (dk/dv) is in flight while the current one is multiplied;
 *  - every operand fragment is one ldmatrix.x4 from a row-major tile (one 16×16 A fragment, or
 *    the B fragments of two 8-column tiles); .trans serves the operands whose k is a row index
 *    (V in P·V, K in dS·K, dO in dV, Q in dK), so there are no transposed tiles and none of
 *    their bank-conflicted element stores;
 *  - the backward WRITES dqkv (every element of it has exactly one writer), so the caller
 *    needs no memset; the other kernels add into it (the entry clears it for them);
 *  - the backward runs a preparation pass first (pp_prep_kernel): dO rounded to bf16 and
 *    D_t = dO_t·O_t computed once per row into the caller's scratch, where the mma.sync dk/dv
 *    kernel recomputed D for every (key tile, query tile) pair with 16 serial warp
 *    reductions and converted the fp32 dO tile each time. Without scratch the entries use the
 *    mma.sync kernels.
 * Rows >= T of a tile are zeros, stored directly (no copy issued for them).
 * Shared memory (PP tile: 64 × (HS + 8) bf16, 9,216 or 17,408 bytes; 16-byte rows, so every
 * ldmatrix row address is aligned, and a 144- or 272-byte row pitch puts the 8 rows of one
 * 8×8 matrix in distinct bank groups):
 *              HS = 64   HS = 128
 *    forward    46,080     87,040   q; k, v double-buffered
 *    wide fwd   55,296          -   q of 128 rows; k, v double-buffered
 *    dq         55,808    104,960   q, dO; k, v double-buffered; lse, D of 64 rows
 *    dk/dv      55,808    104,960   k, v; q, dO double-buffered; lse, D
 * sm_86 and sm_89 (99 KiB opt-in) take HS 64 only; A100, H100 and H200 both. The "wide"
 * variants (HS 64: two m-tiles per warp in the forward, the backward's A fragments held in
 * registers) trade registers for shared-memory traffic; which is faster is left to the tuned
 * dispatch at the end of this file, since all of them give the same bits.
 * Not yet run on a GPU (written without one, 2026-11-28): tested in the CUDA emulation, where a
 * cp.async copy lands only at its wait_group and ldmatrix follows the documented layouts
 * (tests/cuda_emu/cuda_emu.h). SCALEWISE_CUDA_ATTENTION=mma selects the mma.sync kernels. */

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
/* 16 bytes global -> shared, asynchronous (cp.async.cg: cached in L2 only). */
static __device__ __forceinline__ void pp_cp16(void *smem, const void *gmem)
{
#if defined(__CUDA_ARCH__)
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#elif defined(SW_CUDA_EMU_H)
    emu_cp_async16(smem, gmem);
#else
    (void)smem;
    (void)gmem;
#endif
}

/* Closes the group of this thread's copies issued since the last commit. */
static __device__ __forceinline__ void pp_commit(void)
{
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(SW_CUDA_EMU_H)
    emu_cp_async_commit();
#endif
}

/* Waits until at most N of this thread's closed groups are still in flight (the newest N);
 * other threads' copies are visible only after a barrier that follows their waits. */
template <int N> static __device__ __forceinline__ void pp_wait(void)
{
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(SW_CUDA_EMU_H)
    emu_cp_async_wait(N);
#endif
}

/* ldmatrix.x4: lane l names row l%8 of 8×8 matrix l/8; r[m] gets this lane's pair of matrix m
 * (the mma fragment layout; with TRANS, of the matrix transposed). */
template <bool TRANS>
static __device__ __forceinline__ void pp_ldsm4(uint32_t (&r)[4], const bf16 *row)
{
#if defined(__CUDA_ARCH__)
    unsigned s = (unsigned)__cvta_generic_to_shared(row);
    if constexpr (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s)
                     : "memory");
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s)
                     : "memory");
#elif defined(SW_CUDA_EMU_H)
    emu_ldmatrix_x4(r, row, TRANS);
#else
    (void)row;
    r[0] = r[1] = r[2] = r[3] = 0;
#endif
}

/* The A fragment of rows r0..r0+15, columns k0..k0+15 of a row-major tile (row stride ld):
 * matrices (rows +0, cols +0), (+8, +0), (+0, +8), (+8, +8) = a0..a3. */
static __device__ __forceinline__ void pp_frag_a(uint32_t (&a)[4], const bf16 *tile, int ld,
                                                 int r0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3, i = lane & 7;
    pp_ldsm4<false>(a, tile + (size_t)(r0 + i + 8 * (m & 1)) * ld + k0 + 8 * (m >> 1));
}

/* The B fragments of the k-step k0..k0+15 for the 8-column tiles n0 (b[0], b[1]) and n0 + 8
 * (b[2], b[3]) from a tile stored n-major (element (k, n) at tile[n·ld + k]: a row-major X for
 * B = Xᵀ). */
static __device__ __forceinline__ void pp_frag_b2(uint32_t (&b)[4], const bf16 *tile, int ld,
                                                  int n0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3, i = lane & 7;
    pp_ldsm4<false>(b, tile + (size_t)(n0 + i + 8 * (m >> 1)) * ld + k0 + 8 * (m & 1));
}

/* The same from a tile stored k-major (element (k, n) at tile[k·ld + n]: a row-major X for
 * B = X), through the transposing load. */
static __device__ __forceinline__ void pp_frag_b2t(uint32_t (&b)[4], const bf16 *tile, int ld,
                                                   int n0, int k0)
{
    int lane = threadIdx.x & 31, m = lane >> 3, i = lane & 7;
    pp_ldsm4<true>(b, tile + (size_t)(k0 + i + 8 * (m & 1)) * ld + n0 + 8 * (m >> 1));
}

/* d0 += a·(b[0], b[1]) and d1 += a·(b[2], b[3]): two 8-column tiles from one pp_frag_b2(t). */
static __device__ __forceinline__ void pp_mma2(float (&d0)[4], float (&d1)[4],
                                               const uint32_t (&a)[4], const uint32_t (&b)[4])
{
    const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
    mm_mma(d0, a, b0);
    mm_mma(d1, a, b1);
}

/* Rows [r0, r0+64) of a bf16 head slice (row r at src + r·stride, 16-byte aligned: pp_usable)
 * into a 64 × (HS + 8) tile by cp.async (not committed); rows >= T are zeroed directly. */
template <int HS>
static __device__ __forceinline__ void pp_load_tile(bf16 *dst, const bf16 *src, size_t stride,
                                                    int r0, int Tlen)
{
    constexpr int HLD = HS + 8, C8 = HS / 8;
    for (int e = threadIdx.x; e < TC_TILE * C8; e += TC_THREADS) {
        int r = e / C8, c = (e % C8) * 8;
        bf16 *d = dst + r * HLD + c;
        if (r0 + r < Tlen) {
            pp_cp16(d, src + (size_t)(r0 + r) * stride + c);
        } else {
            uint32_t *z = reinterpret_cast<uint32_t *>(d);
            z[0] = z[1] = z[2] = z[3] = 0u;
        }
    }
}

/* The backward's two score products for rows r0..r0+15 of A1, A2 and the 8-column tiles n0 and
 * n0 + 8: s = A1·B1ᵀ and dp = A2·B2ᵀ over the head dimension (k-steps in order), all four
 * operands 64 × (HS + 8) tiles (dq: Q·Kᵀ, dO·Vᵀ; dk/dv: K·Qᵀ, V·dOᵀ). RA: A1's and A2's
 * fragments of those rows are already in a1, a2 (the same values pp_frag_a would load; A1 and
 * A2 unread), else a1, a2 are unused and each k-step loads them. */
template <int HS, bool RA>
static __device__ __forceinline__ void pp_two_products(float (&s)[2][4], float (&dp)[2][4],
                                                       const uint32_t (&a1)[HS / 16][4],
                                                       const uint32_t (&a2)[HS / 16][4],
                                                       const bf16 *A1, const bf16 *B1,
                                                       const bf16 *A2, const bf16 *B2, int r0,
                                                       int n0)
{
    constexpr int HLD = HS + 8;
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            s[h][e] = dp[h][e] = 0.0f;
#pragma unroll
    for (int k = 0; k < HS / 16; k++) {
        uint32_t a[4], b[4];
        pp_frag_b2(b, B1, HLD, n0, 16 * k);
        if constexpr (RA) {
            pp_mma2(s[0], s[1], a1[k], b);
        } else {
            pp_frag_a(a, A1, HLD, r0, 16 * k);
            pp_mma2(s[0], s[1], a, b);
        }
        pp_frag_b2(b, B2, HLD, n0, 16 * k);
        if constexpr (RA) {
            pp_mma2(dp[0], dp[1], a2[k], b);
        } else {
            pp_frag_a(a, A2, HLD, r0, 16 * k);
            pp_mma2(dp[0], dp[1], a, b);
        }
    }
}

/* Rows r0..r0+15 of a 64 × (HS + 8) tile as the A fragments of its HS / 16 k-steps. */
template <int HS>
static __device__ __forceinline__ void pp_frags_a(uint32_t (&a)[HS / 16][4], const bf16 *tile,
                                                  int r0)
{
#pragma unroll
    for (int k = 0; k < HS / 16; k++)
        pp_frag_a(a[k], tile, HS + 8, r0, 16 * k);
}

/* lse·log2(e) and D of query rows t0..t0+63 (0 past T) into lse2_s, D_s: threads 0..63 and
 * 64..127, one value each. */
static __device__ __forceinline__ void pp_load_stats(float *lse2_s, float *D_s,
                                                     const float *lse_row, const float *D_row,
                                                     int t0, int Tlen)
{
    int i = threadIdx.x & (TC_TILE - 1), t = t0 + i;
    if (threadIdx.x < TC_TILE)
        lse2_s[i] = t < Tlen ? lse_row[t] * TC_LOG2E : 0.0f;
    else if (threadIdx.x < 2 * TC_TILE)
        D_s[i] = t < Tlen ? D_row[t] : 0.0f;
}
#endif

/* Shared memory (bytes) of the pipelined kernels for head size HS. */
template <int HS> struct pp_dims {
    static constexpr int HLD = HS + 8;
    static constexpr int TE = TC_TILE * HLD; /* elements of one tile */
    static constexpr size_t TILE = (size_t)TE * sizeof(bf16);
    static constexpr size_t STATS = (size_t)2 * TC_TILE * sizeof(float);
    static constexpr size_t FWD = 5 * TILE;         /* q; k ×2; v ×2 */
    static constexpr size_t FWD2 = 6 * TILE;        /* the wide forward: q ×2; k ×2; v ×2 */
    static constexpr size_t DQ = 6 * TILE + STATS;  /* q, dO; k ×2; v ×2; lse, D */
    static constexpr size_t DKV = 6 * TILE + STATS; /* k, v; q ×2; dO ×2; lse, D */
};
static_assert(pp_dims<64>::HLD == tc_dims<64>::HLD && pp_dims<128>::HLD == tc_dims<128>::HLD,
              "tile layouts shared with tc_load_tile");
static_assert(pp_dims<64>::FWD == 46080 && pp_dims<128>::FWD == 87040, "documented sizes");
static_assert(pp_dims<64>::DQ == 55808 && pp_dims<128>::DQ == 104960, "documented sizes");
static_assert(pp_dims<64>::FWD2 == 55296, "documented sizes");
static_assert(pp_dims<64>::TILE % 128 == 0 && pp_dims<128>::TILE % 128 == 0, "alignment");

/* The backward's scratch for B, T, NH, HS: dO in bf16 (B, T, NH·HS), then D (B, NH, T) fp32. */
static size_t pp_scratch_bytes(int B, int T, int NH, int HS)
{
    return (size_t)B * T * NH * HS * sizeof(bf16) + (size_t)B * NH * T * sizeof(float);
}

/* grid ceil(B·T·NH / TC_WARPS), TC_THREADS threads: one warp per (b, t, h) row: D = dO·O in
 * fp32 (the same sum, in the same order, as tc_row_stats) into Dg (B, NH, T), and dO rounded to
 * bf16 (nearest, as tc_load_tile rounds it) into do16 (dout's layout). */
template <int HS>
__global__ void __launch_bounds__(TC_THREADS)
    pp_prep_kernel(bf16 *do16, float *Dg, const float *dout, const bf16 *out, int Tlen, int NH,
                   size_t rows)
{
    size_t row = (size_t)blockIdx.x * TC_WARPS + (threadIdx.x >> 5); /* ((b·T + t)·NH + h) */
    if (row >= rows)
        return; /* warp-uniform */
    int lane = threadIdx.x & 31;
    const float *go = dout + row * HS;
    const bf16 *o = out + row * HS;
    float part = 0.0f;
#pragma unroll
    for (int d = lane; d < HS; d += 32)
        part += go[d] * kc_ld(o + d);
    part = kc_warp_sum(part);
#pragma unroll
    for (int d = lane; d < HS; d += 32)
        do16[row * HS + d] = __float2bfloat16_rn(go[d]);
    if (lane == 0) {
        size_t bt = row / (size_t)NH, b = bt / (size_t)Tlen, t = bt % (size_t)Tlen;
        Dg[(b * NH + row % (size_t)NH) * Tlen + t] = part;
    }
}

/* grid (ceil(T/(64·MT)), NH, B), TC_THREADS threads, pp_dims<HS>::fwd(MT) bytes:
 * mm_forward_kernel with q in a tile (then in registers), k and v tiles double-buffered by
 * cp.async, ldmatrix fragments (V's through .trans). MT: 16-row query m-tiles per warp. With
 * MT = 2 ("wide") a block takes 128 query rows, warp w the m-tiles w and w + 4 (so on the
 * diagonal key tiles every warp has a live m-tile), and each K and V fragment read from shared
 * memory feeds two mma.sync instead of one: half the ldmatrix traffic per product. Each row
 * still meets the key tiles of 64 in order, skipped per 16-row m-tile exactly as with MT = 1,
 * so both give the same bits. */
template <int HS, int MT>
__global__ void __launch_bounds__(TC_THREADS)
    pp_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, int Tlen, int NH, int NKV,
                      float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    constexpr int HLD = pp_dims<HS>::HLD, TE = pp_dims<HS>::TE, NK = HS / 16, ND = HS / 8;
    constexpr int QR = TC_TILE * MT; /* query rows of a block */
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem), *Ks = Qs + MT * TE, *Vs = Ks + 2 * TE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int qb = gridDim.x - 1 - blockIdx.x; /* heaviest (latest) tiles first */
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const bf16 *base = qkv + (size_t)b * Tlen * R;
    const bf16 *kbase = base + (size_t)(NH + kvh) * HS;
    const bf16 *vbase = base + (size_t)(NH + NKV + kvh) * HS;
    int t0 = qb * QR, tw0[MT], row[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++) {
        tw0[i] = t0 + 16 * (warp + TC_WARPS * i);
        row[i][0] = tw0[i] + g;
        row[i][1] = tw0[i] + g + 8;
    }
    int kend = t0 + QR < Tlen ? t0 + QR : Tlen;
    int ntiles = (kend + TC_TILE - 1) / TC_TILE;

#pragma unroll
    for (int i = 0; i < MT; i++)
        pp_load_tile<HS>(Qs + i * TE, base + (size_t)h * HS, R, t0 + TC_TILE * i, Tlen);
    pp_load_tile<HS>(Ks, kbase, R, 0, Tlen);
    pp_load_tile<HS>(Vs, vbase, R, 0, Tlen);
    pp_commit();
    uint32_t qa[MT][NK][4];
    float o[MT][ND][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++) {
        m[i][0] = m[i][1] = -INFINITY;
        l[i][0] = l[i][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < ND; n++)
            o[i][n][0] = o[i][n][1] = o[i][n][2] = o[i][n][3] = 0.0f;
    }
    for (int it = 0; it < ntiles; it++) {
        int j0 = it * TC_TILE;
        __syncthreads(); /* every warp is done with the buffers the next tile goes into */
        if (it + 1 < ntiles) {
            int nb = (it + 1) & 1;
            pp_load_tile<HS>(Ks + nb * TE, kbase, R, j0 + TC_TILE, Tlen);
            pp_load_tile<HS>(Vs + nb * TE, vbase, R, j0 + TC_TILE, Tlen);
            pp_commit();
            pp_wait<1>();
        } else {
            pp_wait<0>();
        }
        __syncthreads(); /* this tile's copies (and q's) have landed, from every thread */
        if (it == 0) {
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int k = 0; k < NK; k++)
                    pp_frag_a(qa[i][k], Qs + i * TE, HLD, 16 * warp, 16 * k);
        }
        bool live[MT]; /* warp-uniform: some key of this tile is visible to the m-tile's rows */
#pragma unroll
        for (int i = 0; i < MT; i++)
            live[i] = j0 <= tw0[i] + 15;
        if (!live[MT - 1])
            continue; /* the last m-tile has the latest rows: none is live */
        const bf16 *Kb = Ks + (it & 1) * TE, *Vb = Vs + (it & 1) * TE;
        float s[MT][8][4];
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int n = 0; n < 8; n++)
                s[i][n][0] = s[i][n][1] = s[i][n][2] = s[i][n][3] = 0.0f;
#pragma unroll
        for (int k = 0; k < NK; k++)
#pragma unroll
            for (int np = 0; np < 4; np++) {
                uint32_t kb[4];
                pp_frag_b2(kb, Kb, HLD, 16 * np, 16 * k);
#pragma unroll
                for (int i = 0; i < MT; i++)
                    if (live[i])
                        pp_mma2(s[i][2 * np], s[i][2 * np + 1], qa[i][k], kb);
            }
        uint32_t pa[MT][4][4];
#pragma unroll
        for (int i = 0; i < MT; i++)
            if (live[i])
                mm_softmax_step(s[i], m[i], l[i], o[i], pa[i], row[i], j0, Tlen, scale_log2);
#pragma unroll
        for (int k = 0; k < 4; k++)
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t vb[4];
                pp_frag_b2t(vb, Vb, HLD, 16 * np, 16 * k);
#pragma unroll
                for (int i = 0; i < MT; i++)
                    if (live[i])
                        pp_mma2(o[i][2 * np], o[i][2 * np + 1], pa[i][k], vb);
            }
    }
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            l[i][r] += __shfl_xor_sync(KC_FULL_MASK, l[i][r], 1);
            l[i][r] += __shfl_xor_sync(KC_FULL_MASK, l[i][r], 2);
        }
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            if (row[i][r] >= Tlen)
                continue;
            float inv = 1.0f / l[i][r];
            bf16 *op = out + ((size_t)b * Tlen + row[i][r]) * NH * HS + (size_t)h * HS;
#pragma unroll
            for (int n = 0; n < ND; n++) {
                kc_st(op + 8 * n + 2 * t, o[i][n][2 * r] * inv);
                kc_st(op + 8 * n + 2 * t + 1, o[i][n][2 * r + 1] * inv);
            }
            if (t == 0 && lse)
                lse[((size_t)b * NH + h) * Tlen + row[i][r]] = m[i][r] * TC_LN2 + logf(l[i][r]);
        }
#endif
}

/* grid (ceil(T/64), NH, B), pp_dims<HS>::DQ bytes: mm_backward_dq_kernel with q and dO (bf16,
 * from the preparation pass) copied once, k and v tiles double-buffered by cp.async, D read
 * from the preparation pass's Dg; dq is written into dqkv, not added (no memset before).
 * RA ("wide"): the warp's q and dO fragments stay in registers for the whole loop, where
 * without it every score product reads them from shared memory again (a third of its
 * ldmatrix traffic); the same values, so the same bits. */
template <int HS, bool RA>
__global__ void __launch_bounds__(TC_THREADS)
    pp_backward_dq_kernel(float *dqkv, const bf16 *do16, const float *Dg, const bf16 *qkv,
                          const float *lse, int Tlen, int NH, int NKV, float scale,
                          float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    constexpr int HLD = pp_dims<HS>::HLD, TE = pp_dims<HS>::TE, ND = HS / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(tc_smem), *dOs = Qs + TE, *Ks = dOs + TE;
    bf16 *Vs = Ks + 2 * TE;
    float *lse2_s = reinterpret_cast<float *>(Vs + 2 * TE), *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int qb = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const bf16 *base = qkv + (size_t)b * Tlen * R;
    const bf16 *kbase = base + (size_t)(NH + kvh) * HS;
    const bf16 *vbase = base + (size_t)(NH + NKV + kvh) * HS;
    int t0 = qb * TC_TILE, tw0 = t0 + 16 * warp;
    int row[2] = {tw0 + g, tw0 + g + 8};
    int kend = t0 + TC_TILE < Tlen ? t0 + TC_TILE : Tlen;
    int ntiles = (kend + TC_TILE - 1) / TC_TILE;

    pp_load_tile<HS>(Qs, base + (size_t)h * HS, R, t0, Tlen);
    pp_load_tile<HS>(dOs, do16 + (size_t)b * Tlen * O + (size_t)h * HS, O, t0, Tlen);
    pp_load_tile<HS>(Ks, kbase, R, 0, Tlen);
    pp_load_tile<HS>(Vs, vbase, R, 0, Tlen);
    pp_commit();
    size_t srow = ((size_t)b * NH + h) * Tlen;
    pp_load_stats(lse2_s, D_s, lse + srow, Dg + srow, t0, Tlen);
    float L2[2] = {0.0f, 0.0f}, Dt[2] = {0.0f, 0.0f};
    uint32_t qa[HS / 16][4] = {}, oa[HS / 16][4] = {}; /* RA: this warp's q, dO fragments */
    float dq[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
        dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    for (int it = 0; it < ntiles; it++) {
        int j0 = it * TC_TILE;
        __syncthreads();
        if (it + 1 < ntiles) {
            int nb = (it + 1) & 1;
            pp_load_tile<HS>(Ks + nb * TE, kbase, R, j0 + TC_TILE, Tlen);
            pp_load_tile<HS>(Vs + nb * TE, vbase, R, j0 + TC_TILE, Tlen);
            pp_commit();
            pp_wait<1>();
        } else {
            pp_wait<0>();
        }
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                L2[r] = lse2_s[16 * warp + g + 8 * r];
                Dt[r] = D_s[16 * warp + g + 8 * r];
            }
            if constexpr (RA) {
                pp_frags_a<HS>(qa, Qs, 16 * warp);
                pp_frags_a<HS>(oa, dOs, 16 * warp);
            }
        }
        if (j0 > tw0 + 15)
            continue;
        const bf16 *Kb = Ks + (it & 1) * TE, *Vb = Vs + (it & 1) * TE;
        uint32_t da[4][4]; /* dS as the A operand of 4 k-steps of 16 keys */
#pragma unroll
        for (int np = 0; np < 4; np++) {
            float s[2][4], dp[2][4];
            pp_two_products<HS, RA>(s, dp, qa, oa, Qs, Kb, dOs, Vb, 16 * warp, 16 * np);
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int n = 2 * np + hh;
                float ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int j = j0 + 8 * n + 2 * t + (e & 1), r = e >> 1;
                    bool ok = j <= row[r] && j < Tlen && row[r] < Tlen;
                    float p = ok ? exp2f(s[hh][e] * scale_log2 - L2[r]) : 0.0f;
                    ds[e] = scale * p * (dp[hh][e] - Dt[r]);
                }
                da[np][hh * 2] = mm_pack(ds[0], ds[1]);
                da[np][hh * 2 + 1] = mm_pack(ds[2], ds[3]);
            }
        }
#pragma unroll
        for (int k = 0; k < 4; k++)
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t kb[4];
                pp_frag_b2t(kb, Kb, HLD, 16 * np, 16 * k);
                pp_mma2(dq[2 * np], dq[2 * np + 1], da[k], kb);
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row[r] >= Tlen)
            continue;
        float *dst = dqkv + ((size_t)b * Tlen + row[r]) * R + (size_t)h * HS;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            dst[8 * n + 2 * t] = dq[n][2 * r];
            dst[8 * n + 2 * t + 1] = dq[n][2 * r + 1];
        }
    }
#endif
}

/* grid (ceil(T/64), NKV, B), pp_dims<HS>::DKV bytes: mm_backward_dkv_kernel over the same
 * (query head, query tile) items in the same order, with k and v copied once and each item's q
 * and dO tiles double-buffered by cp.async (the next item's in flight during this one's
 * products), lse and D read per item; dk and dv are written into dqkv, not added. RA
 * ("wide"): the warp's k and v fragments are read from shared memory once and stay in
 * registers for every item (without it, every item's score products read them again: a third
 * of the kernel's ldmatrix traffic); the same values, so the same bits. */
template <int HS, bool RA>
__global__ void __launch_bounds__(TC_THREADS)
    pp_backward_dkv_kernel(float *dqkv, const bf16 *do16, const float *Dg, const bf16 *qkv,
                           const float *lse, int Tlen, int NH, int NKV, float scale,
                           float scale_log2)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    __trap();
#else
    constexpr int HLD = pp_dims<HS>::HLD, TE = pp_dims<HS>::TE, ND = HS / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(tc_smem), *Vs = Ks + TE, *Qs = Vs + TE;
    bf16 *dOs = Qs + 2 * TE;
    float *lse2_s = reinterpret_cast<float *>(dOs + 2 * TE), *D_s = lse2_s + TC_TILE;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int kb0 = gridDim.x - 1 - blockIdx.x; /* heaviest (earliest) key tiles first */
    int kvh = blockIdx.y, b = blockIdx.z, rep = NH / NKV;
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const bf16 *base = qkv + (size_t)b * Tlen * R;
    const bf16 *gob = do16 + (size_t)b * Tlen * O;
    int j0 = kb0 * TC_TILE, jw0 = j0 + 16 * warp;
    int key[2] = {jw0 + g, jw0 + g + 8};
    int nq = (Tlen - j0 + TC_TILE - 1) / TC_TILE, items = rep * nq; /* (head, query tile) */

    pp_load_tile<HS>(Ks, base + (size_t)(NH + kvh) * HS, R, j0, Tlen);
    pp_load_tile<HS>(Vs, base + (size_t)(NH + NKV + kvh) * HS, R, j0, Tlen);
    int h = kvh * rep;
    pp_load_tile<HS>(Qs, base + (size_t)h * HS, R, j0, Tlen);
    pp_load_tile<HS>(dOs, gob + (size_t)h * HS, O, j0, Tlen);
    pp_commit();
    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            dk[n][e] = dv[n][e] = 0.0f;
    bool active = jw0 < Tlen;
    uint32_t ka[HS / 16][4] = {}, va[HS / 16][4] = {}; /* RA: this warp's k, v fragments */
    for (int it = 0; it < items; it++) {
        int t0 = j0 + (it % nq) * TC_TILE;
        h = kvh * rep + it / nq;
        __syncthreads(); /* the previous item's q, dO buffer and statistics are read */
        if (it + 1 < items) {
            int nh = kvh * rep + (it + 1) / nq, nt0 = j0 + ((it + 1) % nq) * TC_TILE;
            int nb = (it + 1) & 1;
            pp_load_tile<HS>(Qs + nb * TE, base + (size_t)nh * HS, R, nt0, Tlen);
            pp_load_tile<HS>(dOs + nb * TE, gob + (size_t)nh * HS, O, nt0, Tlen);
            pp_commit();
        }
        size_t srow = ((size_t)b * NH + h) * Tlen;
        pp_load_stats(lse2_s, D_s, lse + srow, Dg + srow, t0, Tlen);
        if (it + 1 < items)
            pp_wait<1>();
        else
            pp_wait<0>();
        __syncthreads();
        if (!active)
            continue; /* warp-uniform; every later query tile sees these keys (t0 >= j0) */
        if (RA && it == 0) { /* k and v landed with item 0's copies */
            pp_frags_a<HS>(ka, Ks, 16 * warp);
            pp_frags_a<HS>(va, Vs, 16 * warp);
        }
        const bf16 *Qb = Qs + (it & 1) * TE, *dOb = dOs + (it & 1) * TE;
        uint32_t pa[4][4], da[4][4]; /* Pᵀ and dSᵀ as A operands, 4 k-steps of 16 queries */
#pragma unroll
        for (int np = 0; np < 4; np++) {
            float s[2][4], dp[2][4];
            pp_two_products<HS, RA>(s, dp, ka, va, Ks, Qb, Vs, dOb, 16 * warp, 16 * np);
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int n = 2 * np + hh;
                float p[4], ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int c = 8 * n + 2 * t + (e & 1), q = t0 + c, r = e >> 1;
                    bool ok = key[r] <= q && q < Tlen && key[r] < Tlen;
                    p[e] = ok ? exp2f(s[hh][e] * scale_log2 - lse2_s[c]) : 0.0f;
                    ds[e] = scale * p[e] * (dp[hh][e] - D_s[c]);
                }
                pa[np][hh * 2] = mm_pack(p[0], p[1]);
                pa[np][hh * 2 + 1] = mm_pack(p[2], p[3]);
                da[np][hh * 2] = mm_pack(ds[0], ds[1]);
                da[np][hh * 2 + 1] = mm_pack(ds[2], ds[3]);
            }
        }
#pragma unroll
        for (int k = 0; k < 4; k++)
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t ob[4], qb[4];
                pp_frag_b2t(ob, dOb, HLD, 16 * np, 16 * k);
                pp_mma2(dv[2 * np], dv[2 * np + 1], pa[k], ob);
                pp_frag_b2t(qb, Qb, HLD, 16 * np, 16 * k);
                pp_mma2(dk[2 * np], dk[2 * np + 1], da[k], qb);
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (key[r] >= Tlen)
            continue;
        float *dkp = dqkv + ((size_t)b * Tlen + key[r]) * R + (size_t)(NH + kvh) * HS;
        float *dvp = dkp + (size_t)NKV * HS;
#pragma unroll
        for (int n = 0; n < ND; n++) {
            dkp[8 * n + 2 * t] = dk[n][2 * r];
            dkp[8 * n + 2 * t + 1] = dk[n][2 * r + 1];
            dvp[8 * n + 2 * t] = dv[n][2 * r];
            dvp[8 * n + 2 * t + 1] = dv[n][2 * r + 1];
        }
    }
#endif
}

/* ---------------------------------------------------------------- launchers */

/* Opting a kernel into more than 48 KiB of dynamic shared memory, once per kernel (one host
 * thread drives the device). */
template <typename K> static void tc_opt_in(K kernel, size_t bytes, bool *done)
{
    if (*done)
        return;
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    *done = true;
}

/* One forward launch: grid (ceil(T/64), NH, B), `smem` bytes (WMMA or mma.sync kernels; E the
 * element type of qkv and out, fp32 or bf16). */
template <typename K, typename E>
static void launch_forward(K kernel, size_t smem, bool *opted, E *out, float *lse, const E *qkv,
                           int B, int T, int NH, int NKV, int HS)
{
    tc_opt_in(kernel, smem, opted);
    dim3 grid((unsigned)((T + TC_TILE - 1) / TC_TILE), (unsigned)NH, (unsigned)B);
    float scale_log2 = TC_LOG2E / sqrtf((float)HS);
    kernel<<<grid, TC_THREADS, smem, cuda_stream()>>>(out, lse, qkv, T, NH, NKV, scale_log2);
    CUDA_LAUNCH_CHECK();
}

/* The backward's two launches: dq over query tiles (grid (tiles, NH, B)), then dk, dv over key
 * tiles (grid (tiles, NKV, B)). */
template <typename KQ, typename KKV, typename E>
static void launch_backward(KQ dq_kernel, size_t dq_smem, bool *dq_opted, KKV dkv_kernel,
                            size_t dkv_smem, bool *dkv_opted, float *dqkv, const float *dout,
                            const E *qkv, const E *out, const float *lse, int B, int T, int NH,
                            int NKV, int HS)
{
    tc_opt_in(dq_kernel, dq_smem, dq_opted);
    tc_opt_in(dkv_kernel, dkv_smem, dkv_opted);
    float scale = 1.0f / sqrtf((float)HS), scale_log2 = TC_LOG2E * scale;
    unsigned tiles = (unsigned)((T + TC_TILE - 1) / TC_TILE);
    dq_kernel<<<dim3(tiles, (unsigned)NH, (unsigned)B), TC_THREADS, dq_smem, cuda_stream()>>>(
        dqkv, dout, qkv, out, lse, T, NH, NKV, scale, scale_log2);
    CUDA_LAUNCH_CHECK();
    dkv_kernel<<<dim3(tiles, (unsigned)NKV, (unsigned)B), TC_THREADS, dkv_smem, cuda_stream()>>>(
        dqkv, dout, qkv, out, lse, T, NH, NKV, scale, scale_log2);
    CUDA_LAUNCH_CHECK();
}

template <int HS, typename E>
static void tc_forward(E *out, float *lse, const E *qkv, int B, int T, int NH, int NKV)
{
    static bool opted;
    launch_forward(tc_forward_kernel<HS, E>, tc_dims<HS>::FWD, &opted, out, lse, qkv, B, T, NH,
                   NKV, HS);
}

template <int HS, typename E>
static void tc_backward(float *dqkv, const float *dout, const E *qkv, const E *out,
                        const float *lse, int B, int T, int NH, int NKV)
{
    static bool opted_dq, opted_dkv;
    launch_backward(tc_backward_dq_kernel<HS, E>, tc_dims<HS>::BWD, &opted_dq,
                    tc_backward_dkv_kernel<HS, E>, tc_dims<HS>::BWD, &opted_dkv, dqkv, dout, qkv,
                    out, lse, B, T, NH, NKV, HS);
}

KCUDA_API bool kcuda_flash_attention_tc_supported(int HS)
{
    if (HS != 64 && HS != 128)
        return false;
    const cudaDeviceProp *p = cuda_props();
    size_t need = HS == 64 ? tc_dims<64>::BWD : tc_dims<128>::BWD; /* BWD >= FWD */
    return p->major >= 8 && p->sharedMemPerBlockOptin >= need;
}

/* SCALEWISE_CUDA_ATTENTION, read once: 'fma', 'wmma', 'mma' (the mma.sync kernels for bf16
 * activations too), 'pipe' or 'wide' (those pipelined kernels for bf16 activations), else the
 * default, 'auto': for bf16 activations the fastest of the bit-identical wide, pipe and mma
 * kernels, timed on the first call of each shape (kcuda_flash_attention_*_tuned_a16); mma.sync
 * for fp32 activations. */
enum tc_choice {
    TC_CHOICE_AUTO,
    TC_CHOICE_WIDE,
    TC_CHOICE_PIPE,
    TC_CHOICE_MMA,
    TC_CHOICE_WMMA,
    TC_CHOICE_FMA
};
static enum tc_choice tc_choice(void)
{
    static int choice = -1;
    if (choice < 0) {
        const char *s = getenv("SCALEWISE_CUDA_ATTENTION");
        choice = s && strcmp(s, "fma") == 0    ? TC_CHOICE_FMA
                 : s && strcmp(s, "wmma") == 0 ? TC_CHOICE_WMMA
                 : s && strcmp(s, "mma") == 0  ? TC_CHOICE_MMA
                 : s && strcmp(s, "pipe") == 0 ? TC_CHOICE_PIPE
                 : s && strcmp(s, "wide") == 0 ? TC_CHOICE_WIDE
                                               : TC_CHOICE_AUTO;
    }
    return (enum tc_choice)choice;
}

/* The mma.sync family is wanted: asked for, or the default. */
static bool tc_choice_mma(void)
{
    enum tc_choice c = tc_choice();
    return c != TC_CHOICE_WMMA && c != TC_CHOICE_FMA;
}

/* The WMMA kernels: asked for, or the default where the mma.sync ones do not fit (sm_86 and
 * sm_89 at HS 128: their dK/dV kernel needs 107 KB of shared memory, those GPUs opt in 99). */
KCUDA_API bool kcuda_flash_attention_tc_enabled(int HS)
{
    enum tc_choice c = tc_choice();
    bool wanted = c == TC_CHOICE_WMMA ||
                  (tc_choice_mma() && !kcuda_flash_attention_mma_supported(HS));
    return wanted && kcuda_flash_attention_tc_supported(HS);
}

KCUDA_API bool kcuda_flash_attention_mma_supported(int HS)
{
    if (HS != 64 && HS != 128)
        return false;
    const cudaDeviceProp *p = cuda_props();
    size_t need = HS == 64 ? mm_dims<64>::DKV : mm_dims<128>::DKV; /* the largest of the three */
    return p->major >= 8 && p->sharedMemPerBlockOptin >= need;
}

KCUDA_API bool kcuda_flash_attention_mma_enabled(int HS)
{
    return tc_choice_mma() && kcuda_flash_attention_mma_supported(HS);
}

template <int HS, typename E>
static void mm_forward(E *out, float *lse, const E *qkv, int B, int T, int NH, int NKV)
{
    static bool opted;
    launch_forward(mm_forward_kernel<HS, E>, mm_dims<HS>::FWD, &opted, out, lse, qkv, B, T, NH,
                   NKV, HS);
}

template <int HS, typename E>
static void mm_backward(float *dqkv, const float *dout, const E *qkv, const E *out,
                        const float *lse, int B, int T, int NH, int NKV)
{
    static bool opted_dq, opted_dkv;
    launch_backward(mm_backward_dq_kernel<HS, E>, mm_dims<HS>::DQ, &opted_dq,
                    mm_backward_dkv_kernel<HS, E>, mm_dims<HS>::DKV, &opted_dkv, dqkv, dout, qkv,
                    out, lse, B, T, NH, NKV, HS);
}

/* An unsupported head size or device is a caller bug (the _supported queries say which are
 * supported): abort loudly. mma: the mma.sync kernels, else the WMMA ones. */
static void entry_require(bool mma, int HS)
{
    if (mma ? !kcuda_flash_attention_mma_supported(HS) : !kcuda_flash_attention_tc_supported(HS))
        cuda_fail(cudaErrorInvalidValue,
                  mma ? "mma attention: head size or device unsupported"
                      : "tensor-core attention: head size or device unsupported",
                  __FILE__, __LINE__);
}

/* The entries of either kernel family (mma: mma.sync, else WMMA) for either element type of qkv
 * and out: fp32 (the _16 paths) or bf16 (_a16). */
template <typename E>
static void entry_forward(bool mma, E *out, float *lse, const E *qkv, int B, int T, int NH, int NKV,
                          int HS)
{
    if (B <= 0 || T <= 0)
        return;
    entry_require(mma, HS);
    if (mma && HS == 64)
        mm_forward<64>(out, lse, qkv, B, T, NH, NKV);
    else if (mma)
        mm_forward<128>(out, lse, qkv, B, T, NH, NKV);
    else if (HS == 64)
        tc_forward<64>(out, lse, qkv, B, T, NH, NKV);
    else
        tc_forward<128>(out, lse, qkv, B, T, NH, NKV);
}

template <typename E>
static void entry_backward(bool mma, float *dqkv, const float *dout, const E *qkv, const E *out,
                           const float *lse, int B, int T, int NH, int NKV, int HS)
{
    if (B <= 0 || T <= 0)
        return;
    entry_require(mma, HS);
    if (mma && HS == 64)
        mm_backward<64>(dqkv, dout, qkv, out, lse, B, T, NH, NKV);
    else if (mma)
        mm_backward<128>(dqkv, dout, qkv, out, lse, B, T, NH, NKV);
    else if (HS == 64)
        tc_backward<64>(dqkv, dout, qkv, out, lse, B, T, NH, NKV);
    else
        tc_backward<128>(dqkv, dout, qkv, out, lse, B, T, NH, NKV);
}

KCUDA_API void kcuda_flash_attention_forward_mma(float *out, float *lse, const float *qkv, int B,
                                                 int T, int NH, int NKV, int HS)
{
    entry_forward(true, out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_mma(float *dqkv, const float *dout, const float *qkv,
                                                  const float *out, const float *lse, int B, int T,
                                                  int NH, int NKV, int HS)
{
    entry_backward(true, dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_forward_tc(float *out, float *lse, const float *qkv, int B,
                                                int T, int NH, int NKV, int HS)
{
    entry_forward(false, out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_tc(float *dqkv, const float *dout, const float *qkv,
                                                 const float *out, const float *lse, int B, int T,
                                                 int NH, int NKV, int HS)
{
    entry_backward(false, dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}

/* bf16 q, k, v and O (uint16_t in the C interface: the bits of __nv_bfloat16, kc_bf16). */

KCUDA_API void kcuda_flash_attention_forward_mma_a16(uint16_t *out, float *lse, const uint16_t *qkv,
                                                     int B, int T, int NH, int NKV, int HS)
{
    entry_forward(true, kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_mma_a16(float *dqkv, const float *dout,
                                                      const uint16_t *qkv, const uint16_t *out,
                                                      const float *lse, int B, int T, int NH,
                                                      int NKV, int HS)
{
    entry_backward(true, dqkv, dout, kc_bf16(qkv), kc_bf16(out), lse, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_forward_tc_a16(uint16_t *out, float *lse, const uint16_t *qkv,
                                                    int B, int T, int NH, int NKV, int HS)
{
    entry_forward(false, kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_tc_a16(float *dqkv, const float *dout,
                                                     const uint16_t *qkv, const uint16_t *out,
                                                     const float *lse, int B, int T, int NH,
                                                     int NKV, int HS)
{
    entry_backward(false, dqkv, dout, kc_bf16(qkv), kc_bf16(out), lse, B, T, NH, NKV, HS);
}

/* ---------------------------------------------------------------- pipelined entries */

KCUDA_API bool kcuda_flash_attention_pipe_supported(int HS)
{
    if (HS != 64 && HS != 128)
        return false;
    const cudaDeviceProp *p = cuda_props();
    size_t need = HS == 64 ? pp_dims<64>::DQ : pp_dims<128>::DQ; /* DQ == DKV >= FWD */
    return p->major >= 8 && p->sharedMemPerBlockOptin >= need;
}

KCUDA_API size_t kcuda_flash_attention_pipe_scratch_bytes(int B, int T, int NH, int HS)
{
    return pp_scratch_bytes(B, T, NH, HS);
}

/* cp.async moves 16-byte pieces: a base address the kernels can copy from. The row pitches
 * (multiples of HS = 64 or 128 elements) keep every row aligned once the base is. */
KCUDA_API bool kcuda_flash_attention_pipe_aligned(const void *p)
{
    return p && ((uintptr_t)p & 15) == 0;
}

template <int HS, int MT>
static void pp_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int NH, int NKV)
{
    static bool opted;
    constexpr size_t smem = MT == 1 ? pp_dims<HS>::FWD : pp_dims<HS>::FWD2;
    tc_opt_in(pp_forward_kernel<HS, MT>, smem, &opted);
    dim3 grid((unsigned)((T + TC_TILE * MT - 1) / (TC_TILE * MT)), (unsigned)NH, (unsigned)B);
    float scale_log2 = TC_LOG2E / sqrtf((float)HS);
    pp_forward_kernel<HS, MT><<<grid, TC_THREADS, smem, cuda_stream()>>>(out, lse, qkv, T, NH,
                                                                        NKV, scale_log2);
    CUDA_LAUNCH_CHECK();
}

/* The preparation pass, then dq over query tiles and dk, dv over key tiles; RAQ, RAKV: each
 * kernel's register-held variant. */
template <int HS, bool RAQ, bool RAKV>
static void pp_backward(float *dqkv, const float *dout, const bf16 *qkv, const bf16 *out,
                        const float *lse, void *scratch, int B, int T, int NH, int NKV)
{
    static bool opted_dq, opted_dkv;
    bf16 *do16 = static_cast<bf16 *>(scratch);
    float *Dg = reinterpret_cast<float *>(do16 + (size_t)B * T * NH * HS);
    size_t rows = (size_t)B * T * NH;
    pp_prep_kernel<HS><<<(unsigned)((rows + TC_WARPS - 1) / TC_WARPS), TC_THREADS, 0,
                         cuda_stream()>>>(do16, Dg, dout, out, T, NH, rows);
    CUDA_LAUNCH_CHECK();
    tc_opt_in(pp_backward_dq_kernel<HS, RAQ>, pp_dims<HS>::DQ, &opted_dq);
    tc_opt_in(pp_backward_dkv_kernel<HS, RAKV>, pp_dims<HS>::DKV, &opted_dkv);
    float scale = 1.0f / sqrtf((float)HS), scale_log2 = TC_LOG2E * scale;
    unsigned tiles = (unsigned)((T + TC_TILE - 1) / TC_TILE);
    pp_backward_dq_kernel<HS, RAQ><<<dim3(tiles, (unsigned)NH, (unsigned)B), TC_THREADS,
                                     pp_dims<HS>::DQ, cuda_stream()>>>(
        dqkv, do16, Dg, qkv, lse, T, NH, NKV, scale, scale_log2);
    CUDA_LAUNCH_CHECK();
    pp_backward_dkv_kernel<HS, RAKV><<<dim3(tiles, (unsigned)NKV, (unsigned)B), TC_THREADS,
                                       pp_dims<HS>::DKV, cuda_stream()>>>(
        dqkv, do16, Dg, qkv, lse, T, NH, NKV, scale, scale_log2);
    CUDA_LAUNCH_CHECK();
}

/* Unsupported shapes, unaligned operands or missing scratch are caller bugs (the dispatch in
 * k_attention.cu asks first): abort loudly. */
static void pp_require(bool ok, const char *what)
{
    if (!ok)
        cuda_fail(cudaErrorInvalidValue, what, __FILE__, __LINE__);
}

/* The wide variants hold more in registers: at HS 128 they would spill (ptxas, sm_80 and
 * sm_90: 500 bytes in the forward, 24 to 40 in dk/dv), so they exist for HS 64 only. */
KCUDA_API bool kcuda_flash_attention_wide_supported(int HS)
{
    return HS == 64 && kcuda_flash_attention_pipe_supported(HS);
}

/* Either pipelined family (wide: MT = 2 forward, RA backward; HS 64 only). */
static void pp_forward_entry(bool wide, uint16_t *out, float *lse, const uint16_t *qkv, int B,
                             int T, int NH, int NKV, int HS)
{
    if (B <= 0 || T <= 0)
        return;
    pp_require((wide ? kcuda_flash_attention_wide_supported(HS)
                     : kcuda_flash_attention_pipe_supported(HS)) &&
                   kcuda_flash_attention_pipe_aligned(qkv),
               "pipelined attention: head size or device unsupported, or qkv not 16-byte aligned");
    if (wide)
        pp_forward<64, 2>(kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV);
    else if (HS == 64)
        pp_forward<64, 1>(kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV);
    else
        pp_forward<128, 1>(kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV);
}

/* ra_dq, ra_dkv: the dq and dk/dv kernels' register-held variants (HS 64 only); both: the wide
 * backward, neither: the pipelined one. */
KCUDA_API void kcuda_flash_attention_backward_pp_a16(bool ra_dq, bool ra_dkv, float *dqkv,
                                                     const float *dout, const uint16_t *qkv,
                                                     const uint16_t *out, const float *lse,
                                                     void *scratch, size_t scratch_bytes, int B,
                                                     int T, int NH, int NKV, int HS)
{
    if (B <= 0 || T <= 0)
        return;
    pp_require((ra_dq || ra_dkv ? kcuda_flash_attention_wide_supported(HS)
                                : kcuda_flash_attention_pipe_supported(HS)) &&
                   kcuda_flash_attention_pipe_aligned(qkv) &&
                   kcuda_flash_attention_pipe_aligned(scratch) &&
                   scratch_bytes >= pp_scratch_bytes(B, T, NH, HS),
               "pipelined attention backward: head size or device unsupported, qkv or scratch "
               "not 16-byte aligned, or scratch too small");
    const bf16 *q16 = kc_bf16(qkv), *o16 = kc_bf16(out);
    if (ra_dq && ra_dkv)
        pp_backward<64, true, true>(dqkv, dout, q16, o16, lse, scratch, B, T, NH, NKV);
    else if (ra_dq)
        pp_backward<64, true, false>(dqkv, dout, q16, o16, lse, scratch, B, T, NH, NKV);
    else if (ra_dkv)
        pp_backward<64, false, true>(dqkv, dout, q16, o16, lse, scratch, B, T, NH, NKV);
    else if (HS == 64)
        pp_backward<64, false, false>(dqkv, dout, q16, o16, lse, scratch, B, T, NH, NKV);
    else
        pp_backward<128, false, false>(dqkv, dout, q16, o16, lse, scratch, B, T, NH, NKV);
}

KCUDA_API void kcuda_flash_attention_forward_pipe_a16(uint16_t *out, float *lse,
                                                      const uint16_t *qkv, int B, int T, int NH,
                                                      int NKV, int HS)
{
    pp_forward_entry(false, out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_pipe_a16(float *dqkv, const float *dout,
                                                       const uint16_t *qkv, const uint16_t *out,
                                                       const float *lse, void *scratch,
                                                       size_t scratch_bytes, int B, int T, int NH,
                                                       int NKV, int HS)
{
    kcuda_flash_attention_backward_pp_a16(false, false, dqkv, dout, qkv, out, lse, scratch,
                                          scratch_bytes, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_forward_wide_a16(uint16_t *out, float *lse,
                                                      const uint16_t *qkv, int B, int T, int NH,
                                                      int NKV, int HS)
{
    pp_forward_entry(true, out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_wide_a16(float *dqkv, const float *dout,
                                                       const uint16_t *qkv, const uint16_t *out,
                                                       const float *lse, void *scratch,
                                                       size_t scratch_bytes, int B, int T, int NH,
                                                       int NKV, int HS)
{
    kcuda_flash_attention_backward_pp_a16(true, true, dqkv, dout, qkv, out, lse, scratch,
                                          scratch_bytes, B, T, NH, NKV, HS);
}

/* ---------------------------------------------------------------- tuned dispatch (bf16)
 *
 * The wide, pipe and mma.sync kernels give the same bits on bf16 activations (the tests check
 * it at tolerance 0), and so do the backward's mixed wide-dq and wide-dkv (one of its two
 * kernels register-held), so which one runs is only a question of speed, and the answer depends on
 * the GPU (occupancy against shared-memory traffic: the wide kernels use 174 to 235 registers
 * where the others use 135 to 167) and on the shape. With the default SCALEWISE_CUDA_ATTENTION
 * (auto), the first call of each shape and direction times every applicable candidate on the
 * caller's own data (one untimed run, then the best of two timed by events on the stream) and
 * keeps the fastest for the shape; every run writes the same outputs, so the call's results are
 * what any one of them gives. This blocks the host once per shape (a few ms at GPT-2's sizes).
 * 'pipe', 'wide' and 'mma' pin one (wide and pipe fall back as their kernels allow). */

/* wide-dq and wide-dkv (backward only): one of the two backward kernels register-held, the
 * other not, since each costs a block per SM of occupancy on its own. The pinned choices fall
 * back in the order wide, pipe, mma. */
enum pp_family { PP_WIDE, PP_PIPE, PP_MMA, PP_WIDE_DQ, PP_WIDE_DKV, PP_NFAMILIES };
static const char *const pp_family_name[PP_NFAMILIES] = {"wide", "pipe", "mma", "wide-dq",
                                                         "wide-dkv"};

/* A tuned shape: direction (0 forward, 1 backward), the candidates' mask, B, T, NH, NKV, HS;
 * the chosen family and every candidate's time (ms; 0 for one not applicable). */
struct pp_tuned {
    int dir, mask, B, T, NH, NKV, HS;
    int family;
    float ms[PP_NFAMILIES];
};
#define PP_TUNED_MAX 32
static struct pp_tuned g_tuned[PP_TUNED_MAX];
static int g_ntuned, g_tuned_next; /* entries in use; the one to replace when full */

/* The candidates a call may use (bit f: family f): what SCALEWISE_CUDA_ATTENTION allows, the
 * device and head size support, and qkv's (and the backward's scratch's) alignment permit.
 * backward: the mixed wide-dq and wide-dkv exist there only. */
static int pp_candidates(int HS, bool aligned, bool backward)
{
    enum tc_choice c = tc_choice();
    bool wide = kcuda_flash_attention_wide_supported(HS) && aligned;
    int all = (wide ? 1 << PP_WIDE : 0) |
              (kcuda_flash_attention_pipe_supported(HS) && aligned ? 1 << PP_PIPE : 0) |
              (kcuda_flash_attention_mma_supported(HS) ? 1 << PP_MMA : 0);
    if (c == TC_CHOICE_AUTO)
        return all | (wide && backward ? 1 << PP_WIDE_DQ | 1 << PP_WIDE_DKV : 0);
    if (c == TC_CHOICE_WMMA || c == TC_CHOICE_FMA)
        return 0;
    int want = c == TC_CHOICE_WIDE ? PP_WIDE : c == TC_CHOICE_PIPE ? PP_PIPE : PP_MMA;
    for (int f = want; f <= PP_MMA; f++) /* the first allowed one from the pinned one on */
        if (all & (1 << f))
            return 1 << f;
    return 0;
}

/* The elapsed time (ms) of the best of two runs of `run` after an untimed one. */
template <typename F> static float pp_time_ms(F &&run)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    run(); /* the first launch loads the kernels and opts them into their shared memory */
    float best = 0.0f;
    for (int rep = 0; rep < 2; rep++) {
        CUDA_CHECK(cudaEventRecord(a, cuda_stream()));
        run();
        CUDA_CHECK(cudaEventRecord(b, cuda_stream()));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (rep == 0 || ms < best)
            best = ms;
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return best;
}

/* Runs this call through run(f) with f the only candidate (mask != 0), or the one tuned for the
 * shape, or, on the shape's first call, every candidate timed (its outputs are then the last
 * one's, the same bits) and the fastest kept for the next calls. */
template <typename F>
static void pp_run_tuned(int dir, int mask, int B, int T, int NH, int NKV, int HS, F &&run)
{
    if ((mask & (mask - 1)) == 0) { /* one candidate */
        run(__builtin_ctz((unsigned)mask));
        return;
    }
    for (int i = 0; i < g_ntuned; i++) {
        const struct pp_tuned *e = &g_tuned[i];
        if (e->dir == dir && e->mask == mask && e->B == B && e->T == T && e->NH == NH &&
            e->NKV == NKV && e->HS == HS) {
            run(e->family);
            return;
        }
    }
    struct pp_tuned e = {dir, mask, B, T, NH, NKV, HS, -1, {0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};
    for (int f = 0; f < PP_NFAMILIES; f++) {
        if (!(mask & (1 << f)))
            continue;
        e.ms[f] = pp_time_ms([&] { run(f); });
        if (e.family < 0 || e.ms[f] < e.ms[e.family])
            e.family = f;
    }
    int slot = g_ntuned < PP_TUNED_MAX ? g_ntuned++ : (g_tuned_next++ % PP_TUNED_MAX);
    g_tuned[slot] = e;
}

KCUDA_API bool kcuda_flash_attention_forward_tuned_a16(uint16_t *out, float *lse,
                                                       const uint16_t *qkv, int B, int T, int NH,
                                                       int NKV, int HS)
{
    int mask = pp_candidates(HS, kcuda_flash_attention_pipe_aligned(qkv), false);
    if (mask == 0)
        return false;
    if (B <= 0 || T <= 0)
        return true;
    auto run = [&](int f) {
        if (f == PP_MMA)
            entry_forward(true, kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV, HS);
        else
            pp_forward_entry(f == PP_WIDE, out, lse, qkv, B, T, NH, NKV, HS);
    };
    pp_run_tuned(0, mask, B, T, NH, NKV, HS, run);
    return true;
}

KCUDA_API bool kcuda_flash_attention_backward_tuned_a16(float *dqkv, const float *dout,
                                                        const uint16_t *qkv, const uint16_t *out,
                                                        const float *lse, void *scratch,
                                                        size_t scratch_bytes, int B, int T,
                                                        int NH, int NKV, int HS)
{
    bool aligned = kcuda_flash_attention_pipe_aligned(qkv) &&
                   kcuda_flash_attention_pipe_aligned(scratch) &&
                   scratch_bytes >= pp_scratch_bytes(B, T, NH, HS);
    int mask = pp_candidates(HS, aligned, true);
    if (mask == 0)
        return false;
    if (B <= 0 || T <= 0)
        return true;
    auto run = [&](int f) {
        if (f == PP_MMA) { /* these kernels add their gradient: the entry writes it */
            CUDA_CHECK(cudaMemsetAsync(
                dqkv, 0, (size_t)B * T * (NH + 2 * NKV) * HS * sizeof(float), cuda_stream()));
            entry_backward(true, dqkv, dout, kc_bf16(qkv), kc_bf16(out), lse, B, T, NH, NKV, HS);
        } else {
            kcuda_flash_attention_backward_pp_a16(f == PP_WIDE || f == PP_WIDE_DQ,
                                                  f == PP_WIDE || f == PP_WIDE_DKV, dqkv, dout,
                                                  qkv, out, lse, scratch, scratch_bytes, B, T, NH,
                                                  NKV, HS);
        }
    };
    pp_run_tuned(1, mask, B, T, NH, NKV, HS, run);
    return true;
}

KCUDA_API int kcuda_flash_attention_tuning(char *buf, size_t size)
{
    size_t used = 0;
    if (size > 0)
        buf[0] = '\0';
    for (int i = 0; i < g_ntuned; i++) {
        const struct pp_tuned *e = &g_tuned[i];
        char line[512], part[PP_NFAMILIES][64] = {"", "", "", "", ""};
        for (int f = 0, k = 0; f < PP_NFAMILIES; f++)
            if (e->mask & (1 << f)) {
                snprintf(part[k], sizeof part[0], "%s%s %.3f ms", k ? ", " : "",
                         pp_family_name[f], (double)e->ms[f]);
                k++;
            }
        snprintf(line, sizeof line, "%s B%d T%d NH%d NKV%d HS%d: %s (%s%s%s%s%s)\n",
                 e->dir ? "backward" : "forward", e->B, e->T, e->NH, e->NKV, e->HS,
                 pp_family_name[e->family], part[0], part[1], part[2], part[3], part[4]);
        size_t len = strlen(line);
        if (used + len < size) {
            memcpy(buf + used, line, len + 1);
            used += len;
        }
    }
    return g_ntuned;
}

KCUDA_API void kcuda_flash_attention_tuning_reset(void)
{
    g_ntuned = 0;
    g_tuned_next = 0;
}
