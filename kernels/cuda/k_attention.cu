/* Causal self-attention with GQA for the CUDA backend, on the fused QKV layout of
 * kernels/cpu/attention.c and flash.c (a row of (NH + 2·NKV)·HS values per token; query head h
 * reads kv head h / (NH/NKV); scale 1/sqrt(HS)):
 *  - the streaming (FlashAttention-2-style, Dao 2023) forward: a block holds FA_BQ query rows
 *    of one head in shared memory and walks key tiles of FA_BK keys with an online softmax; it
 *    keeps a running max, sum and an HS-wide fp32 accumulator per row in registers and saves
 *    each row's logsumexp. No T×T buffer exists.
 *  - its backward, recomputing the probabilities tile by tile from the logsumexp, in two
 *    kernels: one over query tiles writes dq, one over key tiles writes dk and dv (summing the
 *    query heads of the kv group). Each gradient element has one writer: no atomics, no
 *    scratch, deterministic. D_t = dO_t·O_t is recomputed where needed (the backend interface
 *    gives no scratch for it).
 *  - the materialised form (att(B,NH,T,T) probabilities kept for backward), for parity with the
 *    CPU backend's small-model path.
 *  - the KV cache append and the decode attention of a few new tokens over the cache (a block
 *    per query head and token, its warps splitting the keys in 32-key tiles, each with its own
 *    online softmax, merged in a fixed order).
 * The flash and decode kernels are templated on the element type (fp32, or bf16 widened to fp32
 * on load; all arithmetic and the accumulators are fp32) and on the head size padded to 32, 64
 * or 128 (HS <= KCUDA_FLASH_MAX_HS); the flash backward takes the activations' type (q, k, v,
 * O) and the gradients' (dO, dqkv) apart, so bf16 activations can meet fp32 gradients (the _a16
 * entries), and the KV-cache kernels take qkv's type and the cache's apart, so fp32 activations
 * can keep a bf16 cache (the _c16 entries). They use scalar fp32 FMAs with warp shuffles, not
 * tensor cores: correct, and the fp32 plans' attention. The 16-bit plans' entries (_16, and
 * _a16 with bf16 activations) hand over to the tensor-core kernels of k_attention_tc.cu
 * (for _a16 the fastest of the bit-identical wide, pipelined and mma.sync kernels, timed on the
 * first call of each shape, the pipelined ones where qkv is aligned and the backward has
 * scratch; else mma.sync, else WMMA) where the head size (64, 128) and device allow, unless
 * SCALEWISE_CUDA_ATTENTION names one (fma: 2.2× slower for GPT-2 124M training on an H200). */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define FA_WARPS 4
#define FA_ROWS 4                    /* query rows per warp */
#define FA_BQ (FA_WARPS * FA_ROWS)   /* query rows per block */
#define FA_BK 32                     /* keys per tile: one per lane */
#define FA_THREADS (FA_WARPS * 32)

/* Copies rows [r0, r0+nrows) of a head slice (HS values at src + row·stride) into a shared
 * tile of HP(+pad) floats per row, zero-filling rows >= T and columns >= HS. */
template <typename T>
static __device__ void load_tile(float *dst, int ld_dst, int nrows, const T *src, size_t stride,
                                 int r0, int Tlen, int HS, int HP)
{
    for (int e = threadIdx.x; e < nrows * HP; e += blockDim.x) {
        int r = e / HP, d = e % HP;
        float v = 0.0f;
        if (r0 + r < Tlen && d < HS)
            v = kc_ld(src + (size_t)(r0 + r) * stride + d);
        dst[r * ld_dst + d] = v;
    }
}

/* ---------------------------------------------------------------- flash forward */

/* grid (query tiles, NH, B); FA_THREADS threads; dynamic shared memory: Q (FA_BQ × HP),
 * K (FA_BK × (HP+1)), V (FA_BK × HP) floats. */
template <typename T, int HP>
__global__ void __launch_bounds__(FA_THREADS)
    flash_forward_kernel(T *out, float *lse, const T *qkv, int Tlen, int NH, int NKV, int HS,
                         float scale)
{
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + FA_BQ * HP, *Vs = Ks + FA_BK * (HP + 1);
    const int NI = HP / 32;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int qb = gridDim.x - 1 - blockIdx.x; /* heaviest (latest) tiles first */
    int h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int t0 = qb * FA_BQ;

    load_tile(Qs, HP, FA_BQ, base + (size_t)h * HS, R, t0, Tlen, HS, HP);

    float m[FA_ROWS], l[FA_ROWS], acc[FA_ROWS][NI];
#pragma unroll
    for (int rr = 0; rr < FA_ROWS; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int i = 0; i < NI; i++)
            acc[rr][i] = 0.0f;
    }
    int row0 = warp * FA_ROWS;               /* this warp's first row in the tile */
    int tw_last = t0 + row0 + FA_ROWS - 1;   /* its last query position */
    int kend = t0 + FA_BQ < Tlen ? t0 + FA_BQ : Tlen;
    for (int j0 = 0; j0 < kend; j0 += FA_BK) {
        __syncthreads();
        load_tile(Ks, HP + 1, FA_BK, base + (size_t)(NH + g) * HS, R, j0, Tlen, HS, HP);
        load_tile(Vs, HP, FA_BK, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen, HS, HP);
        __syncthreads();
        if (j0 > tw_last || t0 + row0 >= Tlen)
            continue; /* warp-uniform: nothing of this tile is visible to these rows */
        int j = j0 + lane;
        float s[FA_ROWS];
#pragma unroll
        for (int rr = 0; rr < FA_ROWS; rr++)
            s[rr] = 0.0f;
        for (int d = 0; d < HS; d++) {
            float kd = Ks[lane * (HP + 1) + d];
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++)
                s[rr] += Qs[(row0 + rr) * HP + d] * kd;
        }
        float p[FA_ROWS];
#pragma unroll
        for (int rr = 0; rr < FA_ROWS; rr++) {
            int t = t0 + row0 + rr;
            p[rr] = 0.0f;
            if (t >= Tlen || j0 > t)
                continue; /* warp-uniform */
            bool ok = j <= t;
            float sc = ok ? s[rr] * scale : -INFINITY;
            float mn = fmaxf(m[rr], kc_warp_max(sc)); /* finite: key j0 <= t is in the tile */
            float corr = expf(m[rr] - mn);            /* 0 while m is -inf */
            float pj = ok ? expf(sc - mn) : 0.0f;
            l[rr] = l[rr] * corr + kc_warp_sum(pj);
            m[rr] = mn;
#pragma unroll
            for (int i = 0; i < NI; i++)
                acc[rr][i] *= corr;
            p[rr] = pj;
        }
        for (int jj = 0; jj < FA_BK; jj++) {
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++) {
                float pj = __shfl_sync(KC_FULL_MASK, p[rr], jj);
#pragma unroll
                for (int i = 0; i < NI; i++)
                    acc[rr][i] += pj * Vs[jj * HP + lane + 32 * i];
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < FA_ROWS; rr++) {
        int t = t0 + row0 + rr;
        if (t >= Tlen)
            continue;
        float inv = 1.0f / l[rr];
        T *o = out + ((size_t)b * Tlen + t) * NH * HS + (size_t)h * HS;
#pragma unroll
        for (int i = 0; i < NI; i++) {
            int d = lane + 32 * i;
            if (d < HS)
                kc_st(o + d, acc[rr][i] * inv);
        }
        if (lane == 0 && lse)
            lse[((size_t)b * NH + h) * Tlen + t] = m[rr] + logf(l[rr]);
    }
}

/* ---------------------------------------------------------------- flash backward: dq */

/* grid (query tiles, NH, B). Shared: Q, dO (FA_BQ × HP each), K, V (FA_BK × (HP+1) each).
 * T: the element type of qkv and out, G: of dout and dqkv (fp32 in shared memory either way).
 * dq_t += scale·Σ_j P_tj(dP_tj - D_t)·k_j, P_tj = exp(scale·q_t·k_j - lse_t), dP_tj = dO_t·v_j,
 * D_t = dO_t·O_t (flash.c pass 1). */
template <typename T, typename G, int HP>
__global__ void __launch_bounds__(FA_THREADS)
    flash_backward_dq_kernel(G *dqkv, const G *dout, const T *qkv, const T *out,
                             const float *lse, int Tlen, int NH, int NKV, int HS, float scale)
{
    extern __shared__ float smem[];
    float *Qs = smem, *dOs = Qs + FA_BQ * HP, *Ks = dOs + FA_BQ * HP;
    float *Vs = Ks + FA_BK * (HP + 1);
    const int NI = HP / 32;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int qb = gridDim.x - 1 - blockIdx.x;
    int h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int t0 = qb * FA_BQ;

    load_tile(Qs, HP, FA_BQ, base + (size_t)h * HS, R, t0, Tlen, HS, HP);
    load_tile(dOs, HP, FA_BQ, dout + (size_t)b * Tlen * O + (size_t)h * HS, O, t0, Tlen, HS, HP);
    int row0 = warp * FA_ROWS;
    float Dr[FA_ROWS], L[FA_ROWS], dq[FA_ROWS][NI];
#pragma unroll
    for (int rr = 0; rr < FA_ROWS; rr++) {
        int t = t0 + row0 + rr;
        float part = 0.0f;
        if (t < Tlen) {
            const G *go = dout + ((size_t)b * Tlen + t) * O + (size_t)h * HS;
            const T *o = out + ((size_t)b * Tlen + t) * O + (size_t)h * HS;
            for (int d = lane; d < HS; d += 32)
                part += kc_ld(go + d) * kc_ld(o + d);
        }
        Dr[rr] = kc_warp_sum(part);
        L[rr] = t < Tlen ? lse[((size_t)b * NH + h) * Tlen + t] : 0.0f;
#pragma unroll
        for (int i = 0; i < NI; i++)
            dq[rr][i] = 0.0f;
    }
    int tw_last = t0 + row0 + FA_ROWS - 1;
    int kend = t0 + FA_BQ < Tlen ? t0 + FA_BQ : Tlen;
    for (int j0 = 0; j0 < kend; j0 += FA_BK) {
        __syncthreads();
        load_tile(Ks, HP + 1, FA_BK, base + (size_t)(NH + g) * HS, R, j0, Tlen, HS, HP);
        load_tile(Vs, HP + 1, FA_BK, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen, HS, HP);
        __syncthreads();
        if (j0 > tw_last || t0 + row0 >= Tlen)
            continue;
        int j = j0 + lane;
        float s[FA_ROWS], dp[FA_ROWS];
#pragma unroll
        for (int rr = 0; rr < FA_ROWS; rr++)
            s[rr] = dp[rr] = 0.0f;
        for (int d = 0; d < HS; d++) {
            float kd = Ks[lane * (HP + 1) + d], vd = Vs[lane * (HP + 1) + d];
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++) {
                s[rr] += Qs[(row0 + rr) * HP + d] * kd;
                dp[rr] += dOs[(row0 + rr) * HP + d] * vd;
            }
        }
        float ds[FA_ROWS];
#pragma unroll
        for (int rr = 0; rr < FA_ROWS; rr++) {
            int t = t0 + row0 + rr;
            bool ok = t < Tlen && j <= t;
            float p = ok ? expf(scale * s[rr] - L[rr]) : 0.0f;
            ds[rr] = scale * p * (dp[rr] - Dr[rr]);
        }
        for (int jj = 0; jj < FA_BK; jj++) {
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++) {
                float c = __shfl_sync(KC_FULL_MASK, ds[rr], jj);
#pragma unroll
                for (int i = 0; i < NI; i++)
                    dq[rr][i] += c * Ks[jj * (HP + 1) + lane + 32 * i];
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < FA_ROWS; rr++) {
        int t = t0 + row0 + rr;
        if (t >= Tlen)
            continue;
        G *dst = dqkv + ((size_t)b * Tlen + t) * R + (size_t)h * HS;
#pragma unroll
        for (int i = 0; i < NI; i++) {
            int d = lane + 32 * i;
            if (d < HS)
                kc_st(dst + d, kc_ld(dst + d) + dq[rr][i]);
        }
    }
}

/* ---------------------------------------------------------------- flash backward: dk, dv */

/* grid (key tiles of FA_BK, NKV, B). Shared: K, V (FA_BK × (HP+1)), Q, dO (FA_BQ × HP),
 * P, dS (FA_BQ × (FA_BK+1)). Thread tid owns the dk/dv elements (j, d) with d = tid % HP and
 * j = tid / HP + i·(FA_THREADS/HP). dv_j += Σ_{h,t} P_tj·dO_t, dk_j += Σ_{h,t} dS_tj·q_t over
 * the kv group's query heads and t >= j (flash.c pass 2). T and G as for the dq kernel. */
template <typename T, typename G, int HP>
__global__ void __launch_bounds__(FA_THREADS)
    flash_backward_dkv_kernel(G *dqkv, const G *dout, const T *qkv, const T *out,
                              const float *lse, int Tlen, int NH, int NKV, int HS, float scale)
{
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + FA_BK * (HP + 1), *Qs = Vs + FA_BK * (HP + 1);
    float *dOs = Qs + FA_BQ * HP, *Ps = dOs + FA_BQ * HP, *dSs = Ps + FA_BQ * (FA_BK + 1);
    const int JSTEP = FA_THREADS / HP, NE = FA_BK / JSTEP;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int kb = gridDim.x - 1 - blockIdx.x;
    int g = blockIdx.y, b = blockIdx.z, rep = NH / NKV;
    size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const T *base = qkv + (size_t)b * Tlen * R;
    int j0 = kb * FA_BK;

    load_tile(Ks, HP + 1, FA_BK, base + (size_t)(NH + g) * HS, R, j0, Tlen, HS, HP);
    load_tile(Vs, HP + 1, FA_BK, base + (size_t)(NH + NKV + g) * HS, R, j0, Tlen, HS, HP);
    int my_d = threadIdx.x % HP, my_j = threadIdx.x / HP;
    float dk[NE], dv[NE];
#pragma unroll
    for (int e = 0; e < NE; e++)
        dk[e] = dv[e] = 0.0f;
    int row0 = warp * FA_ROWS, j = j0 + lane;
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        for (int t0 = j0 / FA_BQ * FA_BQ; t0 < Tlen; t0 += FA_BQ) {
            __syncthreads(); /* previous tile's Q, dO, P, dS fully read */
            load_tile(Qs, HP, FA_BQ, base + (size_t)h * HS, R, t0, Tlen, HS, HP);
            load_tile(dOs, HP, FA_BQ, dout + (size_t)b * Tlen * O + (size_t)h * HS, O, t0, Tlen,
                      HS, HP);
            float Dr[FA_ROWS];
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++) {
                int t = t0 + row0 + rr;
                float part = 0.0f;
                if (t < Tlen) {
                    const G *go = dout + ((size_t)b * Tlen + t) * O + (size_t)h * HS;
                    const T *o = out + ((size_t)b * Tlen + t) * O + (size_t)h * HS;
                    for (int d = lane; d < HS; d += 32)
                        part += kc_ld(go + d) * kc_ld(o + d);
                }
                Dr[rr] = kc_warp_sum(part);
            }
            __syncthreads();
            float s[FA_ROWS], dp[FA_ROWS];
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++)
                s[rr] = dp[rr] = 0.0f;
            for (int d = 0; d < HS; d++) {
                float kd = Ks[lane * (HP + 1) + d], vd = Vs[lane * (HP + 1) + d];
#pragma unroll
                for (int rr = 0; rr < FA_ROWS; rr++) {
                    s[rr] += Qs[(row0 + rr) * HP + d] * kd;
                    dp[rr] += dOs[(row0 + rr) * HP + d] * vd;
                }
            }
#pragma unroll
            for (int rr = 0; rr < FA_ROWS; rr++) {
                int t = t0 + row0 + rr;
                bool ok = t < Tlen && j < Tlen && j <= t;
                float L = t < Tlen ? lse[((size_t)b * NH + h) * Tlen + t] : 0.0f;
                float p = ok ? expf(scale * s[rr] - L) : 0.0f;
                Ps[(row0 + rr) * (FA_BK + 1) + lane] = p;
                dSs[(row0 + rr) * (FA_BK + 1) + lane] = scale * p * (dp[rr] - Dr[rr]);
            }
            __syncthreads();
            for (int r = 0; r < FA_BQ; r++) {
                float go = dOs[r * HP + my_d], q = Qs[r * HP + my_d];
#pragma unroll
                for (int e = 0; e < NE; e++) {
                    int jl = my_j + e * JSTEP;
                    dv[e] += Ps[r * (FA_BK + 1) + jl] * go;
                    dk[e] += dSs[r * (FA_BK + 1) + jl] * q;
                }
            }
        }
    }
    if (my_d >= HS)
        return;
#pragma unroll
    for (int e = 0; e < NE; e++) {
        int jj = j0 + my_j + e * JSTEP;
        if (jj >= Tlen)
            continue;
        G *dkp = dqkv + ((size_t)b * Tlen + jj) * R + (size_t)(NH + g) * HS + my_d;
        G *dvp = dkp + (size_t)NKV * HS;
        kc_st(dkp, kc_ld(dkp) + dk[e]);
        kc_st(dvp, kc_ld(dvp) + dv[e]);
    }
}

/* ---------------------------------------------------------------- flash launchers */

static size_t fa_fwd_smem(int HP)
{
    return sizeof(float) * ((size_t)FA_BQ * HP + (size_t)FA_BK * (HP + 1) + (size_t)FA_BK * HP);
}
static size_t fa_dq_smem(int HP)
{
    return sizeof(float) * (2 * (size_t)FA_BQ * HP + 2 * (size_t)FA_BK * (HP + 1));
}
static size_t fa_dkv_smem(int HP)
{
    return sizeof(float) * (2 * (size_t)FA_BK * (HP + 1) + 2 * (size_t)FA_BQ * HP +
                            2 * (size_t)FA_BQ * (FA_BK + 1));
}

template <typename T, int HP>
static void flash_forward_hp(T *out, float *lse, const T *qkv, int B, int Tlen, int NH, int NKV,
                             int HS)
{
    size_t sm = fa_fwd_smem(HP);
    CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<T, HP>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid((unsigned)((Tlen + FA_BQ - 1) / FA_BQ), (unsigned)NH, (unsigned)B);
    flash_forward_kernel<T, HP><<<grid, FA_THREADS, sm, cuda_stream()>>>(
        out, lse, qkv, Tlen, NH, NKV, HS, 1.0f / sqrtf((float)HS));
    CUDA_LAUNCH_CHECK();
}

template <typename T, typename G, int HP>
static void flash_backward_hp(G *dqkv, const G *dout, const T *qkv, const T *out,
                              const float *lse, int B, int Tlen, int NH, int NKV, int HS)
{
    float scale = 1.0f / sqrtf((float)HS);
    size_t sm = fa_dq_smem(HP);
    CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dq_kernel<T, G, HP>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid((unsigned)((Tlen + FA_BQ - 1) / FA_BQ), (unsigned)NH, (unsigned)B);
    flash_backward_dq_kernel<T, G, HP><<<grid, FA_THREADS, sm, cuda_stream()>>>(
        dqkv, dout, qkv, out, lse, Tlen, NH, NKV, HS, scale);
    CUDA_LAUNCH_CHECK();
    sm = fa_dkv_smem(HP);
    CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dkv_kernel<T, G, HP>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid2((unsigned)((Tlen + FA_BK - 1) / FA_BK), (unsigned)NKV, (unsigned)B);
    flash_backward_dkv_kernel<T, G, HP><<<grid2, FA_THREADS, sm, cuda_stream()>>>(
        dqkv, dout, qkv, out, lse, Tlen, NH, NKV, HS, scale);
    CUDA_LAUNCH_CHECK();
}

/* HS is padded to 32, 64 or 128 (the dk/dv ownership map needs HP to divide FA_THREADS).
 * HS > KCUDA_FLASH_MAX_HS is a caller bug (backend.flash_max_hs says so): abort loudly. */
static int flash_hp(int HS)
{
    if (HS <= 0 || HS > KCUDA_FLASH_MAX_HS)
        cuda_fail(cudaErrorInvalidValue, "flash attention head size out of range", __FILE__,
                  __LINE__);
    return HS <= 32 ? 32 : HS <= 64 ? 64 : 128;
}

template <typename T>
static void flash_forward(T *out, float *lse, const T *qkv, int B, int Tlen, int NH, int NKV,
                          int HS)
{
    if (B <= 0 || Tlen <= 0)
        return;
    switch (flash_hp(HS)) {
    case 32:
        flash_forward_hp<T, 32>(out, lse, qkv, B, Tlen, NH, NKV, HS);
        break;
    case 64:
        flash_forward_hp<T, 64>(out, lse, qkv, B, Tlen, NH, NKV, HS);
        break;
    default:
        flash_forward_hp<T, 128>(out, lse, qkv, B, Tlen, NH, NKV, HS);
        break;
    }
}

template <typename T, typename G>
static void flash_backward(G *dqkv, const G *dout, const T *qkv, const T *out, const float *lse,
                           int B, int Tlen, int NH, int NKV, int HS)
{
    if (B <= 0 || Tlen <= 0)
        return;
    switch (flash_hp(HS)) {
    case 32:
        flash_backward_hp<T, G, 32>(dqkv, dout, qkv, out, lse, B, Tlen, NH, NKV, HS);
        break;
    case 64:
        flash_backward_hp<T, G, 64>(dqkv, dout, qkv, out, lse, B, Tlen, NH, NKV, HS);
        break;
    default:
        flash_backward_hp<T, G, 128>(dqkv, dout, qkv, out, lse, B, Tlen, NH, NKV, HS);
        break;
    }
}

KCUDA_API void kcuda_flash_attention_forward(float *out, float *lse, const float *qkv, int B,
                                             int T, int NH, int NKV, int HS)
{
    flash_forward<float>(out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                              const float *out, const float *lse, int B, int T,
                                              int NH, int NKV, int HS)
{
    flash_backward<float, float>(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}

/* The 16-bit plans' entries: tensor cores (k_attention_tc.cu) where enabled and supported. */
KCUDA_API void kcuda_flash_attention_forward_16(float *out, float *lse, const float *qkv, int B,
                                                int T, int NH, int NKV, int HS)
{
    if (kcuda_flash_attention_mma_enabled(HS))
        kcuda_flash_attention_forward_mma(out, lse, qkv, B, T, NH, NKV, HS);
    else if (kcuda_flash_attention_tc_enabled(HS))
        kcuda_flash_attention_forward_tc(out, lse, qkv, B, T, NH, NKV, HS);
    else
        flash_forward<float>(out, lse, qkv, B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_16(float *dqkv, const float *dout, const float *qkv,
                                                 const float *out, const float *lse, int B, int T,
                                                 int NH, int NKV, int HS)
{
    if (kcuda_flash_attention_mma_enabled(HS))
        kcuda_flash_attention_backward_mma(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
    else if (kcuda_flash_attention_tc_enabled(HS))
        kcuda_flash_attention_backward_tc(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
    else
        flash_backward<float, float>(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}

void kcuda_flash_attention_forward_bf16(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *qkv,
                                        int B, int T, int NH, int NKV, int HS)
{
    flash_forward<__nv_bfloat16>(out, lse, qkv, B, T, NH, NKV, HS);
}

void kcuda_flash_attention_backward_bf16(__nv_bfloat16 *dqkv, const __nv_bfloat16 *dout,
                                         const __nv_bfloat16 *qkv, const __nv_bfloat16 *out,
                                         const float *lse, int B, int T, int NH, int NKV, int HS)
{
    flash_backward<__nv_bfloat16, __nv_bfloat16>(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}

/* bf16 activations: the _16 entries' dispatch with bf16 q, k, v and O (uint16_t in the C
 * interface, the bits of __nv_bfloat16). On bf16 inputs each path computes what its _16 twin
 * computes — the tensor-core kernels round q, k, v to bf16 on load anyway — and rounds O once
 * when storing it. */
KCUDA_API void kcuda_flash_attention_forward_a16(uint16_t *out, float *lse, const uint16_t *qkv,
                                                 int B, int T, int NH, int NKV, int HS)
{
    if (kcuda_flash_attention_forward_tuned_a16(out, lse, qkv, B, T, NH, NKV, HS))
        return; /* the mma.sync family: wide, pipe or mma */
    if (kcuda_flash_attention_tc_enabled(HS))
        kcuda_flash_attention_forward_tc_a16(out, lse, qkv, B, T, NH, NKV, HS);
    else
        flash_forward<__nv_bfloat16>(kc_bf16(out), lse, kc_bf16(qkv), B, T, NH, NKV, HS);
}

KCUDA_API void kcuda_flash_attention_backward_a16(float *dqkv, const float *dout,
                                                  const uint16_t *qkv, const uint16_t *out,
                                                  const float *lse, void *scratch,
                                                  size_t scratch_bytes, int B, int T, int NH,
                                                  int NKV, int HS)
{
    if (kcuda_flash_attention_backward_tuned_a16(dqkv, dout, qkv, out, lse, scratch,
                                                 scratch_bytes, B, T, NH, NKV, HS))
        return; /* the mma.sync family: wide, pipe or mma */
    /* The other kernels add their gradient: the entry writes it, so they start from zeros. */
    if (B > 0 && T > 0)
        CUDA_CHECK(cudaMemsetAsync(dqkv, 0, (size_t)B * T * (NH + 2 * NKV) * HS * sizeof(float),
                                   cuda_stream()));
    if (kcuda_flash_attention_tc_enabled(HS))
        kcuda_flash_attention_backward_tc_a16(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
    else
        flash_backward<__nv_bfloat16, float>(dqkv, dout, kc_bf16(qkv), kc_bf16(out), lse, B, T, NH,
                                             NKV, HS);
}

/* ---------------------------------------------------------------- materialised attention */

#define MAT_THREADS 128

/* One block per (b, h, t) row: scores, softmax into att's row (zeros beyond t), out = P·V. */
__global__ void __launch_bounds__(MAT_THREADS)
    attention_forward_kernel(float *out, float *att, const float *qkv, int Tlen, int NH,
                             int NKV, int HS, float scale)
{
    extern __shared__ float q_s[]; /* HS floats */
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const float *base = qkv + (size_t)b * Tlen * R;
    float *p = att + (((size_t)b * NH + h) * Tlen + t) * Tlen;
    for (int d = threadIdx.x; d < HS; d += blockDim.x)
        q_s[d] = base[(size_t)t * R + (size_t)h * HS + d];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        const float *k = base + (size_t)j * R + (size_t)(NH + g) * HS;
        float s = 0.0f;
        for (int d = 0; d < HS; d++)
            s += q_s[d] * k[d];
        s *= scale;
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = kc_block_max(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    float inv = 1.0f / kc_block_sum(sum, red);
    for (int j = threadIdx.x; j < Tlen; j += blockDim.x)
        p[j] = j <= t ? p[j] * inv : 0.0f;
    __syncthreads(); /* the block's global writes of p are visible to the block after this */
    float *o = out + ((size_t)b * Tlen + t) * NH * HS + (size_t)h * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        const float *v = base + (size_t)(NH + NKV + g) * HS + d;
        float a = 0.0f;
        for (int j = 0; j <= t; j++)
            a += p[j] * v[(size_t)j * R];
        o[d] = a;
    }
}

/* One block per (b, h, t): dS = P ⊙ (dP - Σ P·dP) into scratch (dP = dO·Vᵀ), then
 * dq += scale·dS·K. */
__global__ void __launch_bounds__(MAT_THREADS)
    attention_backward_q_kernel(float *dqkv, float *dsc, const float *dout, const float *qkv,
                                const float *att, int Tlen, int NH, int NKV, int HS, float scale)
{
    extern __shared__ float go_s[]; /* HS floats */
    __shared__ float red[32];
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (NH / NKV);
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const float *base = qkv + (size_t)b * Tlen * R;
    size_t row = (((size_t)b * NH + h) * Tlen + t) * Tlen;
    const float *p = att + row;
    float *ds = dsc + row;
    for (int d = threadIdx.x; d < HS; d += blockDim.x)
        go_s[d] = dout[((size_t)b * Tlen + t) * NH * HS + (size_t)h * HS + d];
    __syncthreads();
    float dsum = 0.0f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        const float *v = base + (size_t)j * R + (size_t)(NH + NKV + g) * HS;
        float dp = 0.0f;
        for (int d = 0; d < HS; d++)
            dp += go_s[d] * v[d];
        ds[j] = dp;
        dsum += p[j] * dp;
    }
    dsum = kc_block_sum(dsum, red);
    for (int j = threadIdx.x; j <= t; j += blockDim.x)
        ds[j] = p[j] * (ds[j] - dsum);
    __syncthreads();
    float *dq = dqkv + ((size_t)b * Tlen + t) * R + (size_t)h * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        const float *k = base + (size_t)(NH + g) * HS + d;
        float a = 0.0f;
        for (int j = 0; j <= t; j++)
            a += ds[j] * k[(size_t)j * R];
        dq[d] += scale * a;
    }
}

/* One block per (b, g, j): dk_j += scale·Σ_{h,t>=j} dS_tj·q_t, dv_j += Σ_{h,t>=j} P_tj·dO_t. */
__global__ void __launch_bounds__(MAT_THREADS)
    attention_backward_kv_kernel(float *dqkv, const float *dsc, const float *dout,
                                 const float *qkv, const float *att, int Tlen, int NH, int NKV,
                                 int HS, float scale)
{
    int j = blockIdx.x, g = blockIdx.y, b = blockIdx.z, rep = NH / NKV;
    size_t R = (size_t)(NH + 2 * NKV) * HS;
    const float *base = qkv + (size_t)b * Tlen * R;
    float *dk = dqkv + ((size_t)b * Tlen + j) * R + (size_t)(NH + g) * HS;
    float *dv = dk + (size_t)NKV * HS;
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        float ak = 0.0f, av = 0.0f;
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            for (int t = j; t < Tlen; t++) {
                size_t idx = (((size_t)b * NH + h) * Tlen + t) * Tlen + j;
                ak += dsc[idx] * base[(size_t)t * R + (size_t)h * HS + d];
                av += att[idx] * dout[((size_t)b * Tlen + t) * NH * HS + (size_t)h * HS + d];
            }
        }
        dk[d] += scale * ak;
        dv[d] += av;
    }
}

KCUDA_API void kcuda_attention_forward(float *out, float *att, const float *qkv, int B, int T,
                                       int NH, int NKV, int HS)
{
    if (B <= 0 || T <= 0)
        return;
    dim3 grid((unsigned)T, (unsigned)NH, (unsigned)B);
    attention_forward_kernel<<<grid, MAT_THREADS, sizeof(float) * HS, cuda_stream()>>>(
        out, att, qkv, T, NH, NKV, HS, 1.0f / sqrtf((float)HS));
    CUDA_LAUNCH_CHECK();
}

KCUDA_API size_t kcuda_attention_backward_scratch_bytes(int B, int T, int NH)
{
    return (size_t)B * NH * T * T * sizeof(float);
}

KCUDA_API void kcuda_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                        const float *att, void *scratch, int B, int T, int NH,
                                        int NKV, int HS)
{
    if (B <= 0 || T <= 0)
        return;
    float scale = 1.0f / sqrtf((float)HS);
    float *dsc = (float *)scratch;
    dim3 grid((unsigned)T, (unsigned)NH, (unsigned)B);
    attention_backward_q_kernel<<<grid, MAT_THREADS, sizeof(float) * HS, cuda_stream()>>>(
        dqkv, dsc, dout, qkv, att, T, NH, NKV, HS, scale);
    CUDA_LAUNCH_CHECK();
    dim3 grid2((unsigned)T, (unsigned)NKV, (unsigned)B);
    attention_backward_kv_kernel<<<grid2, MAT_THREADS, 0, cuda_stream()>>>(
        dqkv, dsc, dout, qkv, att, T, NH, NKV, HS, scale);
    CUDA_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- KV cache */

/* A cache element from a qkv element: a copy where the types agree (bits kept, NaN payloads
 * included), rounded to nearest even where a bf16 cache takes fp32 K and V (the _c16 entries). */
template <typename T>
static __device__ __forceinline__ void kv_put(T *dst, const T *src)
{
    *dst = *src;
}
static __device__ __forceinline__ void kv_put(__nv_bfloat16 *dst, const float *src)
{
    kc_st(dst, *src);
}

/* TQ: qkv's element type; TC: the cache's (fp32 and fp32, bf16 and bf16, or fp32 and bf16). */
template <typename TQ, typename TC>
__global__ void kv_cache_append_kernel(TC *k_cache, TC *v_cache, const TQ *qkv, int T_new,
                                       int pos, int NH, int NKV, int HS, int cache_T, size_t n)
{
    size_t R = (size_t)(NH + 2 * NKV) * HS, KV = (size_t)NKV * HS;
    for (size_t e = kc_gtid(); e < n; e += kc_gstride()) {
        size_t c = e % KV, bi = e / KV; /* bi = b·T_new + i */
        size_t b = bi / T_new, i = bi % T_new;
        const TQ *row = qkv + bi * R;
        size_t dst = (b * cache_T + pos + i) * KV + c;
        kv_put(k_cache + dst, row + (size_t)NH * HS + c);
        kv_put(v_cache + dst, row + (size_t)(NH + NKV) * HS + c);
    }
}

/* Decode attention: a block per (query head, new token, batch); its DEC_WARPS warps split the
 * cache positions 0..pos+i in tiles of DEC_BK keys, tile t going to warp t % DEC_WARPS. A warp
 * stages its tile's K rows in shared memory DEC_BK dims at a time (lane l loads dim c0+l of
 * every row: coalesced), each lane then dots its key's row with q from shared memory (the
 * row pad of one float keeps the 32 lanes on 32 banks) and the warp runs an online softmax
 * (running max m, per-lane sum l, HP-wide accumulator acc in registers; V rows are read
 * coalesced, lane l owning dims l, l+32, ..). The warps' (m, l, acc) meet in shared memory and
 * are merged in warp order, so the result is deterministic and, the tile-to-warp map being
 * fixed, the same for a token whatever T_new or B is. No global scratch (the executor budgets
 * none). DEC_WARPS is fixed rather than sized to the cache: a short cache leaves warps idle,
 * a long one (generation at batch 1) gets DEC_WARPS times the parallelism of a warp. */
#define DEC_WARPS 8
#define DEC_BK 32 /* keys per tile, one per lane; also the dims staged per pass */
#define DEC_THREADS (DEC_WARPS * 32)

template <typename TQ, typename TC, int HP>
__global__ void __launch_bounds__(DEC_THREADS)
    attention_decode_kernel(TQ *out, const TQ *qkv, const TC *k_cache, const TC *v_cache,
                            int T_new, int pos, int NH, int NKV, int HS, int cache_T, float scale)
{
    /* Per warp: a DEC_BK × DEC_BK K tile (+1 pad per row), later its (acc, m, l) for the merge
     * (HP + 2 <= DEC_BK · (DEC_BK + 1) floats); the tile's probabilities. */
    __shared__ float ks[DEC_WARPS][DEC_BK * (DEC_BK + 1)];
    __shared__ float p_s[DEC_WARPS][DEC_BK];
    __shared__ float q_s[HP];
    static_assert(HP + 2 <= DEC_BK * (DEC_BK + 1) && HP <= DEC_THREADS, "merge layout");
    const int NI = HP / 32;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int h = blockIdx.x, i = blockIdx.y, b = blockIdx.z;
    int g = h / (NH / NKV), n_keys = pos + i + 1;
    size_t R = (size_t)(NH + 2 * NKV) * HS, KV = (size_t)NKV * HS;
    const TQ *q = qkv + ((size_t)b * T_new + i) * R + (size_t)h * HS;
    for (int d = threadIdx.x; d < HP; d += DEC_THREADS)
        q_s[d] = d < HS ? kc_ld(q + d) : 0.0f;
    __syncthreads();
    const TC *kb = k_cache + (size_t)b * cache_T * KV + (size_t)g * HS;
    const TC *vb = v_cache + (size_t)b * cache_T * KV + (size_t)g * HS;
    float *kt = ks[warp];
    float m = -INFINITY, l = 0.0f, acc[NI];
#pragma unroll
    for (int k = 0; k < NI; k++)
        acc[k] = 0.0f;
    for (int j0 = warp * DEC_BK; j0 < n_keys; j0 += DEC_WARPS * DEC_BK) {
        int jn = n_keys - j0 < DEC_BK ? n_keys - j0 : DEC_BK; /* valid rows of the tile */
        float dot = 0.0f;
#pragma unroll
        for (int c0 = 0; c0 < HP; c0 += DEC_BK) {
            if (c0 >= HS) /* padding only (HS 80 of 128: the last pass) */
                break;
            int d = c0 + lane;
            const TC *kr = kb + (size_t)j0 * KV + d;
#pragma unroll 8
            for (int r = 0; r < DEC_BK; r++)
                kt[r * (DEC_BK + 1) + lane] = r < jn && d < HS ? kc_ld(kr + (size_t)r * KV) : 0.0f;
            __syncwarp();
#pragma unroll 8
            for (int dd = 0; dd < DEC_BK; dd++)
                dot += kt[lane * (DEC_BK + 1) + dd] * q_s[c0 + dd];
            __syncwarp(); /* the tile is overwritten next pass */
        }
        float s = lane < jn ? dot * scale : -INFINITY;
        float mn = fmaxf(m, kc_warp_max(s)); /* finite: row 0 of the tile is a key */
        float corr = expf(m - mn);           /* 0 on the first tile (m = -inf) */
        float p = lane < jn ? expf(s - mn) : 0.0f;
        l = l * corr + p; /* this lane's share of the sum; summed over the warp at the end */
        m = mn;
#pragma unroll
        for (int k = 0; k < NI; k++)
            acc[k] *= corr;
        p_s[warp][lane] = p;
        __syncwarp();
        const TC *vr = vb + (size_t)j0 * KV;
#pragma unroll 4
        for (int jj = 0; jj < jn; jj++) {
            float pj = p_s[warp][jj];
#pragma unroll
            for (int k = 0; k < NI; k++) {
                int d = lane + 32 * k;
                if (d < HS)
                    acc[k] += pj * kc_ld(vr + (size_t)jj * KV + d);
            }
        }
        __syncwarp(); /* p_s is rewritten by the next tile */
    }
    /* Merge: a warp's own tile area takes its state (no other warp reads it before the
     * barrier); thread d then combines dim d over the warps in order 0..DEC_WARPS-1. A warp
     * with no tile has m = -inf, l = 0, acc = 0 and weight 0; warp 0 always has key 0. */
    l = kc_warp_sum(l);
#pragma unroll
    for (int k = 0; k < NI; k++)
        kt[lane + 32 * k] = acc[k];
    if (lane == 0) {
        kt[HP] = m;
        kt[HP + 1] = l;
    }
    __syncthreads();
    int d = threadIdx.x;
    if (d < HS) {
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++)
            M = fmaxf(M, ks[w][HP]);
        float L = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            float f = expf(ks[w][HP] - M);
            L += ks[w][HP + 1] * f;
            o += ks[w][d] * f;
        }
        kc_st(out + ((size_t)b * T_new + i) * NH * HS + (size_t)h * HS + d, o / L);
    }
}

template <typename TQ, typename TC>
static void kv_cache_append(TC *k_cache, TC *v_cache, const TQ *qkv, int B, int T_new, int pos,
                            int NH, int NKV, int HS, int cache_T)
{
    size_t n = (size_t)B * T_new * NKV * HS;
    if (n == 0)
        return;
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    kv_cache_append_kernel<TQ, TC><<<need < fill ? need : fill, 256, 0, cuda_stream()>>>(
        k_cache, v_cache, qkv, T_new, pos, NH, NKV, HS, cache_T, n);
    CUDA_LAUNCH_CHECK();
}

template <typename TQ, typename TC>
static void attention_decode(TQ *out, const TQ *qkv, const TC *k_cache, const TC *v_cache, int B,
                             int T_new, int pos, int NH, int NKV, int HS, int cache_T)
{
    if (B <= 0 || T_new <= 0)
        return;
    dim3 grid((unsigned)NH, (unsigned)T_new, (unsigned)B);
    float scale = 1.0f / sqrtf((float)HS);
    cudaStream_t s = cuda_stream();
    switch (flash_hp(HS)) {
    case 32:
        attention_decode_kernel<TQ, TC, 32><<<grid, DEC_THREADS, 0, s>>>(
            out, qkv, k_cache, v_cache, T_new, pos, NH, NKV, HS, cache_T, scale);
        break;
    case 64:
        attention_decode_kernel<TQ, TC, 64><<<grid, DEC_THREADS, 0, s>>>(
            out, qkv, k_cache, v_cache, T_new, pos, NH, NKV, HS, cache_T, scale);
        break;
    default:
        attention_decode_kernel<TQ, TC, 128><<<grid, DEC_THREADS, 0, s>>>(
            out, qkv, k_cache, v_cache, T_new, pos, NH, NKV, HS, cache_T, scale);
        break;
    }
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_kv_cache_append(float *k_cache, float *v_cache, const float *qkv, int B,
                                     int T_new, int pos, int NH, int NKV, int HS, int cache_T)
{
    kv_cache_append<float, float>(k_cache, v_cache, qkv, B, T_new, pos, NH, NKV, HS, cache_T);
}

KCUDA_API void kcuda_attention_decode(float *out, const float *qkv, const float *k_cache,
                                      const float *v_cache, int B, int T_new, int pos, int NH,
                                      int NKV, int HS, int cache_T)
{
    attention_decode<float, float>(out, qkv, k_cache, v_cache, B, T_new, pos, NH, NKV, HS, cache_T);
}

void kcuda_kv_cache_append_bf16(__nv_bfloat16 *k_cache, __nv_bfloat16 *v_cache,
                                const __nv_bfloat16 *qkv, int B, int T_new, int pos, int NH,
                                int NKV, int HS, int cache_T)
{
    kv_cache_append<__nv_bfloat16, __nv_bfloat16>(k_cache, v_cache, qkv, B, T_new, pos, NH, NKV,
                                                  HS, cache_T);
}

void kcuda_attention_decode_bf16(__nv_bfloat16 *out, const __nv_bfloat16 *qkv,
                                 const __nv_bfloat16 *k_cache, const __nv_bfloat16 *v_cache,
                                 int B, int T_new, int pos, int NH, int NKV, int HS, int cache_T)
{
    attention_decode<__nv_bfloat16, __nv_bfloat16>(out, qkv, k_cache, v_cache, B, T_new, pos, NH,
                                                   NKV, HS, cache_T);
}

/* The bf16 entries above with uint16_t storage: generation with bf16 activations (backend.h's
 * kv_cache_append_a16, attention_decode_a16). */
KCUDA_API void kcuda_kv_cache_append_a16(uint16_t *k_cache, uint16_t *v_cache,
                                         const uint16_t *qkv, int B, int T_new, int pos, int NH,
                                         int NKV, int HS, int cache_T)
{
    kcuda_kv_cache_append_bf16(kc_bf16(k_cache), kc_bf16(v_cache), kc_bf16(qkv), B, T_new, pos,
                               NH, NKV, HS, cache_T);
}

KCUDA_API void kcuda_attention_decode_a16(uint16_t *out, const uint16_t *qkv,
                                          const uint16_t *k_cache, const uint16_t *v_cache, int B,
                                          int T_new, int pos, int NH, int NKV, int HS, int cache_T)
{
    kcuda_attention_decode_bf16(kc_bf16(out), kc_bf16(qkv), kc_bf16(k_cache), kc_bf16(v_cache), B,
                                T_new, pos, NH, NKV, HS, cache_T);
}

/* A bf16 KV cache under fp32 activations (half the cache memory and bandwidth of generation):
 * the fp32 entries' contracts with K and V rounded to bf16 (nearest even) as they are appended
 * and widened back as decode reads them; q, out and all arithmetic stay fp32. On the same
 * (widened) cache values decode computes exactly what kcuda_attention_decode computes. */
KCUDA_API void kcuda_kv_cache_append_c16(uint16_t *k_cache, uint16_t *v_cache, const float *qkv,
                                         int B, int T_new, int pos, int NH, int NKV, int HS,
                                         int cache_T)
{
    kv_cache_append<float, __nv_bfloat16>(kc_bf16(k_cache), kc_bf16(v_cache), qkv, B, T_new, pos,
                                          NH, NKV, HS, cache_T);
}

KCUDA_API void kcuda_attention_decode_c16(float *out, const float *qkv, const uint16_t *k_cache,
                                          const uint16_t *v_cache, int B, int T_new, int pos,
                                          int NH, int NKV, int HS, int cache_T)
{
    attention_decode<float, __nv_bfloat16>(out, qkv, kc_bf16(k_cache), kc_bf16(v_cache), B, T_new,
                                           pos, NH, NKV, HS, cache_T);
}
