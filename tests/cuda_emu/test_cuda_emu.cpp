/* The CUDA kernels of kernels/cuda/k_*.cu and matmul.cu, compiled by g++ and run on the CPU under
 * the emulation of tests/cuda_emu/cuda_emu.h (matmul.cu on the cuBLASLt fake
 * tests/cuda_emu/cublaslt_emu.cpp), against the CPU kernels (kernels/cpu) on random inputs: every
 * kcuda_* entry those files define.
 *
 * The comparisons, their shapes and their tolerances are those of the GPU test
 * tests/gpu/test_cuda_kernels.cu, which this file includes (its main renamed) so both stay one
 * set of cases: its test functions are called as they are where their sizes suit the emulation,
 * and with smaller shapes where they do not (flash attention with T up to 64 plus one longer
 * case; tensor-core attention without the T = 1024 and GPT-2-sized timing runs; the gradient
 * norm on 300 K elements instead of 1 M). Added here: the one-launch SGD updates the GPU test
 * does not cover, and a self-test of the emulation (barriers, shuffles, ballot, per-block
 * shared memory, cp.async and ldmatrix, launch checks, deadlock detection, and that a missing
 * __syncthreads shows, also before a cp.async re-issue into a buffer still being read).
 * The matmuls: tests/gpu/test_cuda_backend.c's cases (through tests/cuda_emu/backend_cases.c and
 * a backend table of the kcuda_matmul_* entries), a self-test of the cuBLASLt fake (against a
 * double-precision GEMM, and its refusals of misuse), and matmul.cu's own logic: GEMMs per
 * chunked call, NULL bias, C = 0, the epilogue fallbacks, the fused GELU, the plan cache.
 * Ends with "test_cuda_emu: N passed, N failed". docs/cuda.md ("Kernel logic without a GPU")
 * says what a pass does and does not prove. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <cublasLt.h>

#define main test_cuda_kernels_gpu_main
#include "tests/gpu/test_cuda_kernels.cu"
#undef main

/* Declared and called by the GPU test's main, which never runs here. */
extern "C" const struct backend *scalewise_cuda_backend(int api_version, char *err, size_t n)
{
    (void)api_version;
    snprintf(err, n, "the CUDA emulation has no backend table");
    return NULL;
}

/* ---------------------------------------------------------------- the emulation itself */

/* Thread t of a block of n: shared s[t] = t + 1000·block, barrier, out = s[(t + 1) % n];
 * also the block's first read of a shared word no thread wrote (must be the poison, -1, in
 * every block although the previous block wrote it). */
static void emu_k_shared(int *out, int *first_read)
{
    __shared__ int s[1024];
    __shared__ int untouched;
    int t = (int)threadIdx.x, n = (int)blockDim.x, b = (int)blockIdx.x;
    if (t == 0)
        first_read[b] = untouched;
    __syncthreads();
    s[t] = t + 1000 * b;
    __syncthreads();
    out[b * n + t] = s[(t + 1) % n];
    if (t == n - 1)
        untouched = 7; /* the next block must not see it */
}

/* The same without the second barrier: a thread reads its neighbour's slot before the
 * neighbour wrote it in one of the two scheduling orders. */
static void emu_k_racy(int *out)
{
    __shared__ int s[1024];
    int t = (int)threadIdx.x, n = (int)blockDim.x, b = (int)blockIdx.x;
    s[t] = t + 1000 * b;
    out[b * n + t] = s[(t + 1) % n];
}

/* Per lane: xor 5, down 3, up 2, idx 7 of the value 100·lane (float), a double warp sum and
 * the ballot of even lanes. Blocks of 64 threads. */
static void emu_k_warp(float *out, unsigned *ballot)
{
    int t = (int)threadIdx.x, lane = t & 31;
    float v = 100.0f * (float)lane;
    float *o = out + 5 * t;
    o[0] = __shfl_xor_sync(KC_FULL_MASK, v, 5);
    o[1] = __shfl_down_sync(KC_FULL_MASK, v, 3);
    o[2] = __shfl_up_sync(KC_FULL_MASK, v, 2);
    o[3] = __shfl_sync(KC_FULL_MASK, v, 7);
    o[4] = (float)kc_warp_sum_d((double)lane);
    ballot[t] = __ballot_sync(KC_FULL_MASK, (lane & 1) == 0);
}

static void emu_k_dyn(float *out)
{
    float *sm = static_cast<float *>(emu_dyn_smem());
    sm[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = sm[blockDim.x - 1 - threadIdx.x];
}

/* cp.async (one warp, 32 × 16 bytes of src into shared memory): before[t] is the first word
 * of thread t's destination read after commit but before the wait (still the poison), after[t]
 * the same word after wait_group 0 and a barrier, read by another thread's slot. */
static void emu_k_cp_async(const uint32_t *src, uint32_t *before, uint32_t *after)
{
    __shared__ __attribute__((aligned(16))) uint32_t s[32 * 4];
    int t = (int)threadIdx.x;
    emu_cp_async16(s + 4 * t, src + 4 * t);
    emu_cp_async_commit();
    before[t] = s[4 * t];
    emu_cp_async_wait(0);
    __syncthreads();
    after[t] = s[4 * ((t + 1) & 31) + 1];
}

/* A double-buffered cp.async pipeline of two warps over ntiles tiles of 64 × 16 bytes (the
 * pattern of k_attention_tc.cu's pipelined kernels): thread t copies chunk t of tile it + 1
 * into one buffer while the block reads tile it from the other; there thread t takes the first
 * word of chunk 63 - t (copied by the other warp) plus its xor-1 neighbour's through a shuffle.
 * out[64·block + t] is the sum over the tiles. Without the barrier before the issue, a warp
 * that runs ahead re-issues into the buffer the other warp has yet to read: a race on the
 * hardware, poison here in the warp-serial blocks (1 and 2). The shuffle is a warp barrier
 * between the read and the next issue, so with all warps in step the reads would come first. */
static void emu_k_cp_pipe(const uint32_t *src, uint32_t *out, int ntiles, int barrier)
{
    __shared__ __attribute__((aligned(16))) uint32_t s[2][64 * 4];
    int t = (int)threadIdx.x;
    uint32_t acc = 0;
    emu_cp_async16(&s[0][4 * t], src + 4 * t);
    emu_cp_async_commit();
    for (int it = 0; it < ntiles; it++) {
        if (barrier)
            __syncthreads(); /* every warp is done with the buffer tile it + 1 goes into */
        if (it + 1 < ntiles) {
            emu_cp_async16(&s[(it + 1) & 1][4 * t], src + (size_t)(it + 1) * 256 + 4 * t);
            emu_cp_async_commit();
            emu_cp_async_wait(1);
        } else {
            emu_cp_async_wait(0);
        }
        __syncthreads(); /* tile it has landed, from every thread */
        uint32_t v = s[it & 1][4 * (63 - t)];
        acc += v + __shfl_xor_sync(KC_FULL_MASK, v, 1);
    }
    out[blockIdx.x * 64 + t] = acc;
}

/* ldmatrix.x4 on four 8×8 b16 matrices whose element (m, r, c) is 256·m + 16·r + c, each row at
 * its own 16-byte aligned slot (row pitch 24 elements: rows need not be adjacent); every lane
 * names its row. out[32·m + lane] plain, out[128 + 32·m + lane] transposed. */
static void emu_k_ldmatrix(uint32_t *out)
{
    __shared__ __attribute__((aligned(16))) uint16_t s[4 * 8 * 24];
    int l = (int)threadIdx.x;
    for (int e = l; e < 4 * 8 * 8; e += 32) {
        int m = e / 64, r = e / 8 % 8, c = e % 8;
        s[(m * 8 + r) * 24 + c] = (uint16_t)(256 * m + 16 * r + c);
    }
    __syncwarp();
    uint32_t r[4], rt[4];
    emu_ldmatrix_x4(r, s + ((l / 8) * 8 + l % 8) * 24, false);
    emu_ldmatrix_x4(rt, s + ((l / 8) * 8 + l % 8) * 24, true);
    for (int m = 0; m < 4; m++) {
        out[32 * m + l] = r[m];
        out[128 + 32 * m + l] = rt[m];
    }
}

/* Half of each warp waits at __syncthreads, the other half at __syncwarp: no thread can go on. */
static void emu_k_deadlock(void)
{
    if ((threadIdx.x & 31) < 16)
        __syncthreads();
    else
        __syncwarp();
}

static void test_emulation(void)
{
    const int n = 40, nb = 3; /* 40 threads: the second warp is partial */
    std::vector<int> out(n * nb, 0), first(nb, 0);
    emu_launch(emu_cfg(nb, n), emu_k_shared, out.data(), first.data());
    CHECK_INT(cudaGetLastError(), cudaSuccess);
    int bad = 0;
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < n; t++)
            bad += out[b * n + t] != (t + 1) % n + 1000 * b;
        CHECK_INT(first[b], -1);
    }
    CHECK_INT(bad, 0);
    printf("  %-44s %s\n", "emulation: barrier, per-block shared memory", bad ? "WRONG" : "ok");

    std::fill(out.begin(), out.end(), 0);
    emu_launch(emu_cfg(2, n), emu_k_racy, out.data());
    int stale0 = 0, stale1 = 0;
    for (int t = 0; t < n; t++) {
        stale0 += out[t] != (t + 1) % n;
        stale1 += out[n + t] != (t + 1) % n + 1000;
    }
    printf("  %-44s %d + %d stale reads (must be > 0)\n", "emulation: a missing __syncthreads",
           stale0, stale1);
    CHECK(stale0 > 0 && stale1 > 0);

    std::vector<float> w(64 * 5);
    std::vector<unsigned> bal(64);
    emu_launch(emu_cfg(1, 64), emu_k_warp, w.data(), bal.data());
    bad = 0;
    for (int t = 0; t < 64; t++) {
        int l = t & 31;
        bad += w[5 * t + 0] != 100.0f * (float)(l ^ 5);
        bad += w[5 * t + 1] != 100.0f * (float)(l + 3 < 32 ? l + 3 : l);
        bad += w[5 * t + 2] != 100.0f * (float)(l >= 2 ? l - 2 : l);
        bad += w[5 * t + 3] != 700.0f;
        bad += w[5 * t + 4] != 496.0f;
        bad += bal[t] != 0x55555555u;
    }
    CHECK_INT(bad, 0);
    printf("  %-44s %s\n", "emulation: shuffles, ballot", bad ? "WRONG" : "ok");

    /* cp.async lands at its wait, not before; ldmatrix's register layout (PTX ISA: register m
     * of lane l holds matrix m's elements (l/4, 2(l%4)) and (l/4, 2(l%4)+1), the first in the
     * low half; .trans: (2(l%4), l/4) and (2(l%4)+1, l/4)). */
    std::vector<uint32_t> src(128), before(32), after(32);
    for (int i = 0; i < 128; i++)
        src[(size_t)i] = 0xabc00000u + (uint32_t)i;
    uint32_t *d_src = nullptr;
    CHECK_INT(cudaMalloc((void **)&d_src, 128 * 4), cudaSuccess);
    CHECK_INT(cudaMemcpy(d_src, src.data(), 128 * 4, cudaMemcpyHostToDevice), cudaSuccess);
    emu_launch(emu_cfg(1, 32), emu_k_cp_async, (const uint32_t *)d_src, before.data(),
               after.data());
    CHECK_INT(cudaFree(d_src), cudaSuccess);
    bad = 0;
    for (int t = 0; t < 32; t++)
        bad += before[(size_t)t] != 0xffffffffu ||
               after[(size_t)t] != src[(size_t)(4 * ((t + 1) & 31) + 1)];
    CHECK_INT(bad, 0);
    printf("  %-44s %s\n", "emulation: cp.async lands at its wait", bad ? "WRONG" : "ok");

    /* The pipeline with its barrier is exact in every block; without it the warp-serial blocks
     * 1 and 2 must read poison (the lock-step blocks 0 and 3 read before any re-issue). */
    const int nt = 4, npb = 4;
    std::vector<uint32_t> tiles((size_t)nt * 256), pipe((size_t)npb * 64), want(64, 0);
    for (int i = 0; i < nt * 256; i++)
        tiles[(size_t)i] = 1000u * (uint32_t)(i / 256) + (uint32_t)(i % 256);
    for (int t = 0; t < 64; t++)
        for (int it = 0; it < nt; it++)
            want[(size_t)t] += tiles[(size_t)(256 * it + 4 * (63 - t))] +
                               tiles[(size_t)(256 * it + 4 * (63 - (t ^ 1)))];
    CHECK_INT(cudaMalloc((void **)&d_src, tiles.size() * 4), cudaSuccess);
    CHECK_INT(cudaMemcpy(d_src, tiles.data(), tiles.size() * 4, cudaMemcpyHostToDevice),
              cudaSuccess);
    int wrong[2][npb] = {};
    for (int barrier = 1; barrier >= 0; barrier--) {
        std::fill(pipe.begin(), pipe.end(), 0u);
        emu_launch(emu_cfg(npb, 64), emu_k_cp_pipe, (const uint32_t *)d_src, pipe.data(), nt,
                   barrier);
        CHECK_INT(cudaGetLastError(), cudaSuccess);
        for (int b = 0; b < npb; b++)
            for (int t = 0; t < 64; t++)
                wrong[barrier][b] += pipe[(size_t)(64 * b + t)] != want[(size_t)t];
    }
    CHECK_INT(cudaFree(d_src), cudaSuccess);
    for (int b = 0; b < npb; b++)
        CHECK_INT(wrong[1][b], 0);
    CHECK(wrong[0][1] > 0 && wrong[0][2] > 0);
    printf("  %-44s %d, %d, %d, %d wrong in blocks 0-3 (1, 2 > 0)\n",
           "emulation: cp.async re-issue, no barrier", wrong[0][0], wrong[0][1],
           wrong[0][2], wrong[0][3]);
    std::vector<uint32_t> lm(256);
    emu_launch(emu_cfg(1, 32), emu_k_ldmatrix, lm.data());
    bad = 0;
    for (int m = 0; m < 4; m++)
        for (int l = 0; l < 32; l++) {
            uint32_t e0 = 256u * m + 16u * (l / 4) + 2u * (l % 4);
            uint32_t t0 = 256u * m + 16u * (2u * (l % 4)) + (uint32_t)(l / 4);
            bad += lm[(size_t)(32 * m + l)] != (e0 | (e0 + 1) << 16);
            bad += lm[(size_t)(128 + 32 * m + l)] != (t0 | (t0 + 16) << 16);
        }
    CHECK_INT(bad, 0);
    printf("  %-44s %s\n", "emulation: ldmatrix.x4 (.trans) layouts", bad ? "WRONG" : "ok");

    /* Launch checks: too many threads; > 48 KiB of dynamic shared memory without opt-in. */
    emu_launch(emu_cfg(1, 2048), emu_k_dyn, w.data());
    CHECK_INT(cudaGetLastError(), cudaErrorInvalidConfiguration);
    std::vector<float> d(256);
    emu_launch(emu_cfg(2, 256, 64 * 1024), emu_k_dyn, d.data());
    CHECK_INT(cudaGetLastError(), cudaErrorInvalidConfiguration);
    CHECK_INT(cudaFuncSetAttribute(emu_k_dyn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   64 * 1024),
              cudaSuccess);
    emu_launch(emu_cfg(2, 256, 64 * 1024), emu_k_dyn, d.data());
    CHECK_INT(cudaGetLastError(), cudaSuccess);
    CHECK(d[0] == 255.0f && d[255] == 0.0f);
    printf("  %-44s %s\n", "emulation: launch checks", "ok (the 2 rejections above are expected)");

    /* Deadlock: the child must abort (with a report on stderr, silenced here). */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        emu_launch(emu_cfg(1, 64), emu_k_deadlock);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "deadlock not reported (status %d)",
              st);
    printf("  %-44s %s\n", "emulation: deadlock detected",
           WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT ? "ok" : "NO");
}

/* ---------------------------------------------------------------- smaller shapes */

static void test_flash_attention_emu(void)
{
    flash_case(2, 45, 4, 2, 64);  /* GQA, T not a multiple of the tiles */
    flash_case(1, 33, 3, 3, 128); /* MHA, largest head size */
    flash_case(2, 17, 4, 1, 48);  /* MQA, padded head size */
    flash_case(1, 130, 2, 2, 32); /* the longer case: several key tiles per query tile */
    flash_case(1, 1, 2, 1, 16);   /* a single token */
}

static void test_flash_attention_tc_emu(void)
{
    const int Ts[3] = {1, 17, 64};
    const int heads[3][3] = {{4, 4, 64}, {8, 2, 64}, {4, 2, 128}}; /* NH, NKV, HS */
    CHECK(kcuda_flash_attention_tc_supported(64) && kcuda_flash_attention_tc_supported(128));
    CHECK(kcuda_flash_attention_mma_supported(64) && kcuda_flash_attention_mma_supported(128));
    for (const tc_impl *im : {&TC_WMMA, &TC_MMA}) {
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < 3; i++)
                tc_vs_cpu(*im, s == 2 ? 1 : 2, Ts[i], heads[s][0], heads[s][1], heads[s][2]);
        tc_vs_cpu(*im, 1, 150, 2, 1, 64); /* several 64-row tiles, the last one partial */
        tc_vs_fma(*im, 1, 70, 4, 2, 64, 0, NULL, NULL);
        tc_vs_fma(*im, 1, 40, 2, 2, 128, 0, NULL, NULL);
    }
}

/* The tensor-core kernels' scalar load path (rows not 16-byte aligned): the same bf16 tiles,
 * so the same results, bit for bit, as the float4 path. */
static void test_flash_attention_tc_unaligned(void)
{
    const int B = 1, T = 40, NH = 2, NKV = 1, HS = 64;
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    vec qkv = rnd(B * T * R), dout = rnd(B * T * O);
    float *d_qkv = up(qkv), *d_dout = up(dout);
    vec qkv1(qkv.size() + 1), dout1(dout.size() + 1);
    std::copy(qkv.begin(), qkv.end(), qkv1.begin() + 1);
    std::copy(dout.begin(), dout.end(), dout1.begin() + 1);
    float *u_qkv = up(qkv1) + 1, *u_dout = up(dout1) + 1; /* 4 bytes past an aligned start */
    float *o_a = (float *)dalloc(B * T * O * 4), *o_u = (float *)dalloc(B * T * O * 4);
    float *l_a = (float *)dalloc(B * NH * T * 4), *l_u = (float *)dalloc(B * NH * T * 4);
    float *g_a = up(vec(B * T * R, 0.0f)), *g_u = up(vec(B * T * R, 0.0f));
    kcuda_flash_attention_forward_tc(o_a, l_a, d_qkv, B, T, NH, NKV, HS);
    kcuda_flash_attention_forward_tc(o_u, l_u, u_qkv, B, T, NH, NKV, HS);
    kcuda_flash_attention_backward_tc(g_a, d_dout, d_qkv, o_a, l_a, B, T, NH, NKV, HS);
    kcuda_flash_attention_backward_tc(g_u, u_dout, u_qkv, o_a, l_a, B, T, NH, NKV, HS);
    expect_close("tc fwd out, unaligned rows = aligned", o_u, down(o_a, B * T * O), 0.0);
    expect_close("tc fwd lse, unaligned rows = aligned", l_u, down(l_a, B * NH * T), 0.0);
    expect_close("tc bwd dqkv, unaligned rows = aligned", g_u, down(g_a, B * T * R), 0.0);
    dfree_all();
}

/* Decode over 31..34 keys: 31 and 32 fit one 32-key tile, 33 and 34 spill 1-2 keys into a
 * second (warp 1's); warps 2-7 of each block have no tile and only join the merge. A padded
 * head size (48 of 64) and an odd head count (NH 6). */
static void test_decode_partial_emu(void)
{
    const int B = 2, NH = 6, NKV = 3, HS = 48, cache_T = 50, pos = 30, Tn = 4;
    const int R = (NH + 2 * NKV) * HS, KV = NKV * HS;
    vec kc = rnd((size_t)B * cache_T * KV), vc = rnd((size_t)B * cache_T * KV);
    vec qkv = rnd((size_t)B * Tn * R), out((size_t)B * Tn * NH * HS);
    float *d_kc = up(kc), *d_vc = up(vc), *d_qkv = up(qkv);
    float *d_out = (float *)dalloc(out.size() * 4);
    kcpu_kv_cache_append(kc.data(), vc.data(), qkv.data(), B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_kv_cache_append(d_kc, d_vc, d_qkv, B, Tn, pos, NH, NKV, HS, cache_T);
    expect_close("kv_cache_append k (NH 6, HS 48)", d_kc, kc, 0.0);
    kcpu_attention_decode(out.data(), qkv.data(), kc.data(), vc.data(), B, Tn, pos, NH, NKV, HS,
                          cache_T);
    kcuda_attention_decode(d_out, d_qkv, d_kc, d_vc, B, Tn, pos, NH, NKV, HS, cache_T);
    expect_close("attention_decode (NH 6, HS 48, pos 30)", d_out, out, 1e-5);
    dfree_all();
}

static void test_grad_norm_emu(void)
{
    grad_norm_case(300007); /* > NORM_BLOCKS · 256: the first pass's grid strides */
}

/* kcuda_sgd_step_multi and kcuda_sgd_momentum_step_multi equal per-segment CPU calls. */
static void test_sgd_multi_emu(void)
{
    const size_t sizes[3] = {3000, 17, 9000};
    const float wds[3] = {0.1f, 0.0f, 0.05f};
    std::vector<backend_opt_seg> segs(3);
    size_t off = 0, max_n = 0;
    for (int i = 0; i < 3; i++) {
        segs[i].off = off;
        segs[i].n = sizes[i];
        segs[i].state_off = 0;
        segs[i].weight_decay = wds[i];
        off += sizes[i];
        max_n = sizes[i] > max_n ? sizes[i] : max_n;
    }
    const size_t n = off;
    backend_opt_seg *d_segs = up(segs);
    vec p = rnd(n), pm = p, pn = p, b1(n, 0.0f), b2(n, 0.0f);
    float *d_p = up(p), *d_pm = up(pm), *d_pn = up(pn), *d_b1 = up(b1), *d_b2 = up(b2);
    for (int step = 1; step <= 2; step++) {
        vec g = rnd(n);
        float *d_g = up(g);
        for (int i = 0; i < 3; i++) {
            size_t o = segs[i].off, k = segs[i].n;
            kcpu_sgd_step(p.data() + o, g.data() + o, k, 0.1f, wds[i]);
            kcpu_sgd_momentum_step(pm.data() + o, g.data() + o, b1.data() + o, k, 0.1f, 0.9f,
                                   wds[i], false);
            kcpu_sgd_momentum_step(pn.data() + o, g.data() + o, b2.data() + o, k, 0.1f, 0.9f,
                                   wds[i], true);
        }
        kcuda_sgd_step_multi(d_p, d_g, d_segs, 3, max_n, 0.1f);
        kcuda_sgd_momentum_step_multi(d_pm, d_g, d_b1, d_segs, 3, max_n, 0.1f, 0.9f, false);
        kcuda_sgd_momentum_step_multi(d_pn, d_g, d_b2, d_segs, 3, max_n, 0.1f, 0.9f, true);
    }
    expect_close("sgd_multi param (3 segments)", d_p, p, 1e-6);
    expect_close("sgd_momentum_multi param", d_pm, pm, 1e-6);
    expect_close("sgd_momentum_multi buf", d_b1, b1, 1e-6);
    expect_close("sgd_nesterov_multi param", d_pn, pn, 1e-6);
    dfree_all();
}

/* ---------------------------------------------------------------- matmul.cu on the fake */

extern "C" void emu_backend_matmul_cases(const struct backend *b, int *passed, int *failed);

static long lt_delta(long emu_lt_stats::*field, const emu_lt_stats &before)
{
    emu_lt_stats now;
    emu_cublaslt_stats(&now);
    return now.*field - before.*field;
}

static void be_memcpy(void *dst, const void *src, size_t bytes, enum backend_copy kind)
{
    (void)kind;
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

static void be_memset(void *dst, int value, size_t bytes)
{
    CUDA_CHECK(cudaMemset(dst, value, bytes));
}

/* The backend table of the matmul and optimizer entries tests/gpu/test_cuda_backend.c's cases
 * use (the plugin's is built by plugin.cu, not emulated). */
static const struct backend *emu_matmul_backend(void)
{
    static struct backend b;
    b.name = "cuda-emu";
    b.alloc = cuda_alloc;
    b.free = cuda_free;
    b.memcpy = be_memcpy;
    b.matmul_uses_blas = kcuda_matmul_uses_blas;
    b.matmul_forward = kcuda_matmul_forward;
    b.matmul_backward = kcuda_matmul_backward;
    b.matmul_bf16_scratch_bytes = kcuda_matmul_bf16_scratch_bytes;
    b.matmul_bf16_forward = kcuda_matmul_bf16_forward;
    b.matmul_bf16_backward_input = kcuda_matmul_bf16_backward_input;
    b.matmul_bf16_backward_weight = kcuda_matmul_bf16_backward_weight;
    b.matmul_f16_forward = kcuda_matmul_f16_forward;
    b.matmul_f16_backward_input = kcuda_matmul_f16_backward_input;
    b.matmul_f16_backward_weight = kcuda_matmul_f16_backward_weight;
    b.matmul_gelu_forward = kcuda_matmul_gelu_forward;
    b.matmul_backward_input_dgelu = kcuda_matmul_backward_input_dgelu;
    b.matmul_16_backward = kcuda_matmul_16_backward;
    b.matmul_a16_forward = kcuda_matmul_a16_forward;
    b.matmul_gelu_forward_a16 = kcuda_matmul_gelu_forward_a16;
    b.matmul_16_backward_a16 = kcuda_matmul_16_backward_a16;
    b.matmul_a16_backward_d16 = kcuda_matmul_a16_backward_d16;
    b.gelu_backward_a16 = kcuda_gelu_backward_a16; /* the a16 backward's dout_pre check */
    b.memset = be_memset;
    b.adamw_step = kcuda_adamw_step;
    b.sgd_step = kcuda_sgd_step;
    b.sgd_momentum_step = kcuda_sgd_momentum_step;
    b.lion_step = kcuda_lion_step;
    b.adamw8bit_state_bytes = kcuda_adamw8bit_state_bytes;
    b.adamw8bit_step = kcuda_adamw8bit_step;
    b.optim_step_segments = kcuda_optim_step_segments;
    return &b;
}

static void test_matmul_init(void)
{
    struct sw_err err;
    memset(&err, 0, sizeof err);
    CHECK_INT(kcuda_matmul_init(&err), 0);
    CHECK_INT(kcuda_matmul_init(&err), 0); /* once only */
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    CHECK_INT(s.live_handles, 1);
    CHECK(kcuda_matmul_uses_blas() && kcuda_has_native_bf16()); /* the emulated sm_80 */
}

/* tests/gpu/test_cuda_backend.c's matmul checks (backend_cases.c), counted here. */
static void test_matmul_backend_cases(void)
{
    int p = 0, f = 0;
    emu_backend_matmul_cases(emu_matmul_backend(), &p, &f);
    printf("  %-44s %d passed, %d failed\n", "tests/gpu/test_cuda_backend.c matmul, optim cases",
           p, f);
    harness_passed += p;
    harness_failed += f;
}

/* ---- the fake itself, against a double-precision GEMM */

static float tf32_ref(float x) /* nearest TF32, ties away from zero, by arithmetic */
{
    if (!isfinite(x) || x == 0.0f)
        return x;
    int e;
    double m = frexp((double)x, &e);             /* |m| in [0.5, 1): 11 significant bits */
    double r = round(m * 2048.0) / 2048.0;       /* round() ties away from zero */
    return (float)ldexp(r, e);
}

static void test_cublaslt_tf32(void)
{
    const float one = 1.0f;
    CHECK(emu_cublaslt_round_tf32(one + 0x1p-11f) == one + 0x1p-10f); /* tie: away */
    CHECK(emu_cublaslt_round_tf32(-(one + 0x1p-11f)) == -(one + 0x1p-10f));
    CHECK(emu_cublaslt_round_tf32(one + 0x1p-12f) == one);
    CHECK(emu_cublaslt_round_tf32(one + 0x1p-11f + 0x1p-23f) == one + 0x1p-10f);
    CHECK(isinf(emu_cublaslt_round_tf32(INFINITY)) && isnan(emu_cublaslt_round_tf32(NAN)));
    int bad = 0;
    vec r = rnd(100000, 1000.0f);
    for (float x : r)
        bad += emu_cublaslt_round_tf32(x) != tf32_ref(x);
    CHECK_INT(bad, 0);
    printf("  %-44s %d of %zu differ from round(m·2^11)\n", "cublasLt fake: TF32 rounding", bad,
           r.size());
}

/* One GEMM through the fake's API; returns the status of the first call that fails. */
struct lt_case {
    cublasOperation_t ta, tb;
    int m, n, k;
    int64_t lda, ldb, ldc, ldd;
    cudaDataType_t ab;
    cublasComputeType_t compute;
    uint32_t epi;
    int64_t aux_ld;
    const void *A, *B, *C;
    void *D;
    const void *bias;
    void *aux;
    float alpha, beta;
    cudaDataType_t cd;               /* C and D (0: CUDA_R_32F) */
    bool set_bias_type, set_aux_type; /* set BIAS_DATA_TYPE / EPILOGUE_AUX_DATA_TYPE ... */
    int32_t bias_type, aux_type;      /* ... to these */
    size_t ws_bytes; /* the preference's maximum, and what cublasLtMatmul gets ... */
    bool ws_short;   /* ... or half of it */
    uint32_t align;  /* the preference's promise for A..D */
};

static cublasStatus_t lt_run_case(cublasLtHandle_t h, const lt_case &c, void *ws)
{
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, cc = nullptr, d = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t st;
    int32_t ta = c.ta, tb = c.tb;
    uint64_t ws_max = c.ws_bytes;
#define LT_TRY(call)                                                                             \
    do {                                                                                         \
        st = (call);                                                                             \
        if (st != CUBLAS_STATUS_SUCCESS)                                                         \
            goto out;                                                                            \
    } while (0)
    LT_TRY(cublasLtMatmulDescCreate(&op, c.compute, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &c.epi, sizeof c.epi));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias,
                                          sizeof c.bias));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c.aux,
                                          sizeof c.aux));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &c.aux_ld,
                                          sizeof c.aux_ld));
    LT_TRY(cublasLtMatrixLayoutCreate(&a, c.ab, c.ta ? c.k : c.m, c.ta ? c.m : c.k, c.lda));
    LT_TRY(cublasLtMatrixLayoutCreate(&b, c.ab, c.tb ? c.n : c.k, c.tb ? c.k : c.n, c.ldb));
    if (c.set_bias_type)
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                              &c.bias_type, sizeof c.bias_type));
    if (c.set_aux_type)
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE,
                                              &c.aux_type, sizeof c.aux_type));
    LT_TRY(cublasLtMatrixLayoutCreate(&cc, c.cd, c.m, c.n, c.ldc));
    LT_TRY(cublasLtMatrixLayoutCreate(&d, c.cd, c.m, c.n, c.ldd));
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &ws_max, sizeof ws_max));
    for (int i = 0; i < 4; i++)
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(
            pref,
            (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i),
            &c.align, sizeof c.align));
    LT_TRY(cublasLtMatmulAlgoGetHeuristic(h, op, a, b, cc, d, pref, 1, &res, &nres));
    LT_TRY(cublasLtMatmul(h, op, &c.alpha, c.A, a, c.B, b, &c.beta, c.C, cc, c.D, d, &res.algo,
                          ws, c.ws_short ? c.ws_bytes / 2 : c.ws_bytes, cuda_stream()));
#undef LT_TRY
out:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayout_t ls[4] = {a, b, cc, d};
    for (cublasLtMatrixLayout_t l : ls)
        if (l)
            cublasLtMatrixLayoutDestroy(l);
    if (op)
        cublasLtMatmulDescDestroy(op);
    return st;
}

/* Element (r, c) of a column-major matrix as the fake must read it. */
static float elem_of(cudaDataType_t t, const std::vector<uint16_t> &h, const vec &f, int64_t idx)
{
    if (t == CUDA_R_32F)
        return f[(size_t)idx];
    vec one(1);
    if (t == CUDA_R_16BF)
        kcpu_bf16_to_f32(one.data(), &h[(size_t)idx], 1);
    else
        kcpu_f16_to_f32(one.data(), &h[(size_t)idx], 1);
    return one[0];
}

/* cuBLASLt's GELU epilogue in the tanh form, the float operations of the fake
 * (tests/cuda_emu/cublaslt_emu.cpp) and of kernels/cuda/k_act.cu: the fake's outputs are
 * compared with it bit for bit. (kcpu_gelu_forward computes the same function through
 * 1/(1 + e^(-2u)), a few ulps away.) */
static float gelu_tanh_ref(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

/* Every transpose pair, operand type and compute type, with leading dimensions larger than the
 * rows and NaN in every element a layout excludes; D's padding must stay as it was. */
static void test_cublaslt_gemm(void)
{
    cublasLtHandle_t h;
    CHECK_INT(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
    const int m = 5, n = 7, k = 9;
    const uint16_t nan16[2] = {0x7fc1, 0x7e01}; /* bf16, fp16 NaN */
    void *ws = dalloc(4096);
    int bad = 0, cases = 0;
    for (int t = 0; t < 4; t++)
        for (int ty = 0; ty < 4; ty++)
            for (int e = 0; e < 4; e++) {
                lt_case c{};
                c.ta = (t & 1) ? CUBLAS_OP_T : CUBLAS_OP_N;
                c.tb = (t & 2) ? CUBLAS_OP_T : CUBLAS_OP_N;
                c.m = m, c.n = n, c.k = k;
                c.ab = ty == 1 ? CUDA_R_16BF : ty == 2 ? CUDA_R_16F : CUDA_R_32F;
                c.compute = ty == 3 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
                c.epi = e == 0   ? CUBLASLT_EPILOGUE_DEFAULT
                        : e == 1 ? CUBLASLT_EPILOGUE_BIAS
                        : e == 2 ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                 : CUBLASLT_EPILOGUE_GELU_AUX;
                const bool has_bias = e == 1 || e == 2, has_aux = e >= 2;
                const int64_t ar = c.ta ? k : m, acol = c.ta ? m : k;
                const int64_t br = c.tb ? n : k, bcol = c.tb ? k : n;
                c.lda = ar + 3, c.ldb = br + 1, c.ldc = m + 2, c.ldd = m + 1, c.aux_ld = 16;
                /* operands: fp32 values, or their 16-bit codes */
                vec af(c.lda * acol), bf(c.ldb * bcol);
                std::vector<uint16_t> ah(af.size()), bh(bf.size());
                vec av = rnd(af.size(), 2.0f), bv = rnd(bf.size(), 2.0f);
                if (ty == 1 || ty == 2) {
                    (ty == 1 ? kcpu_f32_to_bf16 : kcpu_f32_to_f16)(ah.data(), av.data(), av.size());
                    (ty == 1 ? kcpu_f32_to_bf16 : kcpu_f32_to_f16)(bh.data(), bv.data(), bv.size());
                }
                af = av, bf = bv;
                for (int64_t j = 0; j < acol; j++)
                    for (int64_t i = ar; i < c.lda; i++) {
                        af[(size_t)(i + j * c.lda)] = NAN;
                        ah[(size_t)(i + j * c.lda)] = nan16[ty == 2];
                    }
                for (int64_t j = 0; j < bcol; j++)
                    for (int64_t i = br; i < c.ldb; i++) {
                        bf[(size_t)(i + j * c.ldb)] = NAN;
                        bh[(size_t)(i + j * c.ldb)] = nan16[ty == 2];
                    }
                vec cf = rnd((size_t)(c.ldc * n)), df((size_t)(c.ldd * n), 12345.0f);
                vec auxf((size_t)(c.aux_ld * n), 54321.0f), bias = rnd(m);
                for (int j = 0; j < n; j++)
                    for (int64_t i = e == 1 ? 0 : m; i < c.ldc; i++) /* beta 0: all unread */
                        cf[(size_t)(i + j * c.ldc)] = NAN;
                const bool wide = ty == 0 || ty == 3;
                c.A = wide ? (const void *)up(af) : (const void *)up(ah);
                c.B = wide ? (const void *)up(bf) : (const void *)up(bh);
                c.C = up(cf);
                float *d_d = up(df), *d_aux = up(auxf);
                c.D = d_d;
                c.bias = has_bias ? up(bias) : nullptr;
                c.aux = has_aux ? d_aux : nullptr;
                c.alpha = 2.0f, c.beta = e == 1 ? 0.0f : 0.5f; /* beta 0: C (NaN-padded) unread */
                c.ws_bytes = 4096;
                c.align = 16;
                cublasStatus_t st = lt_run_case(h, c, ws);
                CHECK_MSG(st == CUBLAS_STATUS_SUCCESS, "status %d: %s", (int)st,
                          emu_cublaslt_last_error());
                vec d = down(d_d, df.size()), aux = down(d_aux, auxf.size());
                for (int j = 0; j < n; j++) {
                    for (int i = 0; i < m; i++) {
                        double s = 0, bnd = 0;
                        for (int l = 0; l < k; l++) {
                            int64_t ia = c.ta ? l + i * c.lda : i + l * c.lda;
                            int64_t ib = c.tb ? j + l * c.ldb : l + j * c.ldb;
                            float x = elem_of(c.ab, ah, af, ia), y = elem_of(c.ab, bh, bf, ib);
                            if (ty == 3)
                                x = tf32_ref(x), y = tf32_ref(y);
                            s += (double)x * y;
                            bnd += fabs((double)x * y);
                        }
                        double v = c.alpha * s, vb = fabs(c.alpha) * bnd;
                        if (c.beta != 0.0f) {
                            v += c.beta * (double)cf[(size_t)(i + j * c.ldc)];
                            vb += fabs(c.beta * (double)cf[(size_t)(i + j * c.ldc)]);
                        }
                        if (has_bias) {
                            v += bias[(size_t)i];
                            vb += fabs(bias[(size_t)i]);
                        }
                        float got = d[(size_t)(i + j * c.ldd)];
                        if (has_aux) {
                            float pre = aux[(size_t)(i + j * c.aux_ld)];
                            float g = gelu_tanh_ref(pre);
                            bad += !(fabs(pre - v) <= 1e-6 * vb + 1e-30) || got != g;
                        } else {
                            bad += !(fabs(got - v) <= 1e-6 * vb + 1e-30);
                        }
                    }
                    for (int64_t i = m; i < c.ldd; i++)
                        bad += d[(size_t)(i + j * c.ldd)] != 12345.0f;
                    for (int64_t i = has_aux ? m : 0; i < c.aux_ld; i++)
                        bad += auxf[(size_t)(i + j * c.aux_ld)] != aux[(size_t)(i + j * c.aux_ld)];
                }
                cases++;
            }
    CHECK_INT(bad, 0);
    printf("  %-44s %d cases (N/T x fp32/bf16/fp16/tf32 x 4 epilogues), %d wrong\n",
           "cublasLt fake: column-major GEMM", cases, bad);

    /* In place (C == D, beta = 1), as matmul.cu's backward runs. */
    {
        vec a = rnd(6), b = rnd(6), cd = rnd(4);
        lt_case c{};
        c.ta = CUBLAS_OP_N, c.tb = CUBLAS_OP_N, c.m = 2, c.n = 2, c.k = 3;
        c.lda = 2, c.ldb = 3, c.ldc = 2, c.ldd = 2, c.ab = CUDA_R_32F;
        c.compute = CUBLAS_COMPUTE_32F, c.epi = CUBLASLT_EPILOGUE_DEFAULT;
        float *d_cd = up(cd);
        c.A = up(a), c.B = up(b), c.C = d_cd, c.D = d_cd, c.alpha = 1, c.beta = 1;
        c.ws_bytes = 4096, c.align = 16;
        CHECK_INT(lt_run_case(h, c, ws), CUBLAS_STATUS_SUCCESS);
        vec got = down(d_cd, 4);
        int wrong = 0;
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++) {
                double s = cd[(size_t)(i + 2 * j)];
                for (int l = 0; l < 3; l++)
                    s += (double)a[(size_t)(i + 2 * l)] * b[(size_t)(l + 3 * j)];
                wrong += fabs(got[(size_t)(i + 2 * j)] - s) > 1e-6;
            }
        CHECK_INT(wrong, 0);
    }
    CHECK_INT(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
    dfree_all();
}

/* Misuse fails with a reason instead of computing something; the refusal hook. */
static void test_cublaslt_checks(void)
{
    emu_lt_stats s0;
    emu_cublaslt_stats(&s0);
    cublasLtHandle_t h;
    CHECK_INT(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
    void *ws = dalloc(4096);
    vec a = rnd(64), b = rnd(64), bias = rnd(8);
    float *d_a = up(a), *d_b = up(b), *d_c = up(vec(64, 0.0f)), *d_bias = up(bias);
    float *d_aux = up(vec(64, 0.0f));
    lt_case base{};
    base.ta = CUBLAS_OP_T, base.tb = CUBLAS_OP_N, base.m = 4, base.n = 3, base.k = 5;
    base.lda = 5, base.ldb = 5, base.ldc = 4, base.ldd = 4, base.ab = CUDA_R_32F;
    base.compute = CUBLAS_COMPUTE_32F_FAST_TF32, base.epi = CUBLASLT_EPILOGUE_DEFAULT;
    base.A = d_a, base.B = d_b, base.C = d_c, base.D = d_c, base.alpha = 1, base.beta = 0;
    base.ws_bytes = 4096, base.align = 16;
    CHECK_INT(lt_run_case(h, base, ws), CUBLAS_STATUS_SUCCESS);

    struct bad_case {
        const char *what, *reason;
        cublasStatus_t want;
        lt_case c;
    };
    std::vector<bad_case> bads;
    lt_case c = base;
    c.lda = 4; /* A is stored 5 x 4 (transposed): ld 4 < 5 rows */
    bads.push_back({"ld < rows", "leading dimension", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.ab = CUDA_R_16BF;
    bads.push_back(
        {"TF32 compute with bf16 operands", "FAST_TF32", CUBLAS_STATUS_NOT_SUPPORTED, c});
    c = base;
    c.ws_short = true;
    bads.push_back(
        {"workspace below the algorithm's", "workspace", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.A = d_a + 1;
    bads.push_back({"A less aligned than promised", "aligned", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.ldc = 5;
    c.beta = 1;
    bads.push_back({"in place with ldc != ldd", "in place", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.D = d_a;
    bads.push_back({"D overlapping A", "overlaps", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.B = d_b + 60; /* B is 5 x 3: 15 floats from float 60 of 64 */
    bads.push_back({"B past the end of its allocation", "not inside one cudaMalloc",
                    CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.epi = CUBLASLT_EPILOGUE_BIAS;
    bads.push_back({"BIAS epilogue without a bias", "bias pointer is NULL",
                    CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.epi = CUBLASLT_EPILOGUE_GELU_AUX_BIAS, c.bias = d_bias, c.aux = d_aux, c.aux_ld = 12;
    bads.push_back({"aux ld not a multiple of 8", "AUX_LD", CUBLAS_STATUS_INVALID_VALUE, c});
    c = base;
    c.epi = CUBLASLT_EPILOGUE_RELU_BIAS, c.bias = d_bias;
    bads.push_back({"an epilogue not emulated", "not emulated", CUBLAS_STATUS_NOT_SUPPORTED, c});
    c = base;
    c.align = 2;
    bads.push_back(
        {"fp32 promised 2-byte aligned", "no algorithm", CUBLAS_STATUS_NOT_SUPPORTED, c});
    /* Types cublasLt.h rules out: a 16-bit D of other operands, a bias or aux not of D's type. */
    c = base;
    c.cd = CUDA_R_16BF;
    bads.push_back({"bf16 D with fp32 operands", "D type", CUBLAS_STATUS_NOT_SUPPORTED, c});
    c = base;
    c.ab = CUDA_R_16BF, c.compute = CUBLAS_COMPUTE_32F, c.cd = CUDA_R_16BF;
    c.epi = CUBLASLT_EPILOGUE_BIAS, c.bias = d_bias, c.set_bias_type = true;
    c.bias_type = CUDA_R_32F;
    bads.push_back({"fp32 bias beside a bf16 D", "bias type", CUBLAS_STATUS_NOT_SUPPORTED, c});
    c = base;
    c.ab = CUDA_R_16BF, c.compute = CUBLAS_COMPUTE_32F;
    c.epi = CUBLASLT_EPILOGUE_DGELU, c.aux = d_aux, c.aux_ld = 8, c.set_aux_type = true;
    c.aux_type = CUDA_R_16BF;
    bads.push_back({"bf16 aux beside an fp32 D", "aux type", CUBLAS_STATUS_NOT_SUPPORTED, c});
    emu_cublaslt_set_quiet(true);
    int ok = 0;
    for (const bad_case &bc : bads) {
        cublasStatus_t st = lt_run_case(h, bc.c, ws);
        bool good = st == bc.want && strstr(emu_cublaslt_last_error(), bc.reason);
        CHECK_MSG(good, "%s: status %d, want %d, reason \"%s\"", bc.what, (int)st, (int)bc.want,
                  emu_cublaslt_last_error());
        ok += good;
    }
    /* Direct misuse: a wrong attribute size, a destroyed layout, an algorithm used for another
     * problem. */
    cublasLtMatmulDesc_t op;
    CHECK_INT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), 0);
    int64_t t64 = CUBLAS_OP_T;
    CHECK_INT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t64, sizeof t64),
              CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatrixLayout_t l4, l5;
    CHECK_INT(cublasLtMatrixLayoutCreate(&l4, CUDA_R_32F, 4, 4, 4), 0);
    CHECK_INT(cublasLtMatrixLayoutCreate(&l5, CUDA_R_32F, 5, 5, 5), 0);
    cublasLtMatmulPreference_t pref;
    CHECK_INT(cublasLtMatmulPreferenceCreate(&pref), 0);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres), 0);
    CHECK_INT(nres, 1);
    float one = 1.0f, zero = 0.0f;
    CHECK_INT(cublasLtMatmul(h, op, &one, d_a, l5, d_b, l5, &zero, d_c, l5, d_c, l5, &res.algo,
                             ws, 4096, cuda_stream()),
              CUBLAS_STATUS_INVALID_VALUE);
    CHECK(strstr(emu_cublaslt_last_error(), "another problem"));
    CHECK_INT(cublasLtMatrixLayoutDestroy(l5), 0);
    CHECK_INT(cublasLtMatmul(h, op, &one, d_a, l5, d_b, l5, &zero, d_c, l5, d_c, l5, &res.algo,
                             ws, 4096, cuda_stream()),
              CUBLAS_STATUS_INVALID_VALUE);
    CHECK(strstr(emu_cublaslt_last_error(), "not a live matrix layout"));
    /* The refusal hook: epilogues only, then everything, then the environment variable. */
    uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    CHECK_INT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
              0);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_EPILOGUE);
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres),
              CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK_INT(nres, 0);
    epi = CUBLASLT_EPILOGUE_DEFAULT;
    CHECK_INT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
              0);
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres), 0);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_ALL);
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres),
              CUBLAS_STATUS_NOT_SUPPORTED);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_ENV);
    setenv("SCALEWISE_EMU_CUBLASLT_NO_ALGO", "all", 1);
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres),
              CUBLAS_STATUS_NOT_SUPPORTED);
    unsetenv("SCALEWISE_EMU_CUBLASLT_NO_ALGO");
    CHECK_INT(cublasLtMatmulAlgoGetHeuristic(h, op, l4, l4, l4, l4, pref, 1, &res, &nres), 0);
    emu_cublaslt_set_quiet(false);
    CHECK_INT(cublasLtMatmulPreferenceDestroy(pref), 0);
    CHECK_INT(cublasLtMatrixLayoutDestroy(l4), 0);
    CHECK_INT(cublasLtMatmulDescDestroy(op), 0);
    CHECK_INT(cublasLtDestroy(h), 0);
    emu_lt_stats s1;
    emu_cublaslt_stats(&s1);
    CHECK(s1.live_descs == s0.live_descs && s1.live_layouts == s0.live_layouts &&
          s1.live_prefs == s0.live_prefs && s1.live_handles == s0.live_handles);
    printf("  %-44s %d of %zu refused with the expected reason\n", "cublasLt fake: misuse", ok,
           bads.size());
    dfree_all();
}

/* bf16 C and D (bf16 operands): D = r(alpha·op(A)·op(B) + beta·C + bias) with a bf16 C and
 * bias (BIAS_DATA_TYPE set to D's type, which is accepted), and GELU_AUX_BIAS's aux = r(pre),
 * D = r(gelu(pre)), bit for bit: products of bf16 values and their sums here are exact in
 * double, so the one rounding is to bf16 (nearest even). The aux's padding stays untouched. */
static void test_cublaslt_bf16_out(void)
{
    cublasLtHandle_t h;
    CHECK_INT(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
    const int m = 6, n = 5, k = 7, aux_ld = 8;
    void *ws = dalloc(4096);
    int bad = 0;
    for (int e = 0; e < 3; e++) {
        lt_case c{};
        c.ta = CUBLAS_OP_T, c.tb = CUBLAS_OP_N, c.m = m, c.n = n, c.k = k;
        c.lda = k, c.ldb = k, c.ldc = m, c.ldd = m, c.aux_ld = aux_ld;
        c.ab = CUDA_R_16BF, c.cd = CUDA_R_16BF, c.compute = CUBLAS_COMPUTE_32F;
        c.epi = e == 0 ? CUBLASLT_EPILOGUE_DEFAULT
                : e == 1 ? CUBLASLT_EPILOGUE_BIAS
                         : CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
        c.set_bias_type = e == 1, c.bias_type = CUDA_R_16BF;
        std::vector<uint16_t> ah(m * k), bh(k * n), ch(m * n), bh16(m), dh(m * n, 0x7fc0);
        std::vector<uint16_t> auxh(aux_ld * n, 0x1234);
        vec av = rnd(ah.size(), 2.0f), bv = rnd(bh.size(), 2.0f), cv = rnd(ch.size()),
            biasv = rnd(m);
        kcpu_f32_to_bf16(ah.data(), av.data(), ah.size());
        kcpu_f32_to_bf16(bh.data(), bv.data(), bh.size());
        kcpu_f32_to_bf16(ch.data(), cv.data(), ch.size());
        kcpu_f32_to_bf16(bh16.data(), biasv.data(), bh16.size());
        kcpu_bf16_to_f32(av.data(), ah.data(), ah.size());
        kcpu_bf16_to_f32(bv.data(), bh.data(), bh.size());
        kcpu_bf16_to_f32(cv.data(), ch.data(), ch.size());
        kcpu_bf16_to_f32(biasv.data(), bh16.data(), bh16.size());
        uint16_t *d_d = up(dh), *d_aux = up(auxh);
        c.A = up(ah), c.B = up(bh), c.C = up(ch), c.D = d_d;
        c.bias = e >= 1 ? up(bh16) : nullptr;
        c.aux = e == 2 ? d_aux : nullptr;
        c.alpha = 2.0f, c.beta = e == 0 ? 0.5f : 0.0f;
        c.ws_bytes = 4096, c.align = 16;
        cublasStatus_t st = lt_run_case(h, c, ws);
        CHECK_MSG(st == CUBLAS_STATUS_SUCCESS, "status %d: %s", (int)st,
                  emu_cublaslt_last_error());
        std::vector<uint16_t> d = down(d_d, dh.size()), aux = down(d_aux, auxh.size());
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double v = 0;
                for (int l = 0; l < k; l++)
                    v += (double)av[(size_t)(l + i * k)] * bv[(size_t)(l + j * k)];
                v = c.alpha * v + c.beta * (double)cv[(size_t)(i + j * m)];
                if (e >= 1)
                    v += biasv[(size_t)i];
                float pre = (float)v, out = pre;
                uint16_t want_aux, want_d;
                if (e == 2)
                    out = gelu_tanh_ref(pre);
                kcpu_f32_to_bf16(&want_aux, &pre, 1);
                kcpu_f32_to_bf16(&want_d, &out, 1);
                bad += d[(size_t)(i + j * m)] != want_d;
                if (e == 2)
                    bad += aux[(size_t)(i + j * aux_ld)] != want_aux;
            }
            for (int i = e == 2 ? m : 0; i < aux_ld; i++)
                bad += aux[(size_t)(i + j * aux_ld)] != 0x1234;
        }
    }
    CHECK_INT(bad, 0);
    printf("  %-44s 3 epilogues (beta + C, BIAS, GELU_AUX_BIAS), %d wrong\n",
           "cublasLt fake: bf16 C, D, bias and aux", bad);
    CHECK_INT(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
    dfree_all();
}

/* ---- matmul.cu's own logic */

/* max over elements of |got - want| / (Σ|products| + |bias|), and whether all are within tol. */
static void expect_mm(const char *what, const float *dev, const vec &want, const vec &x,
                      const vec &w, const float *bias, int N, int C, int OC, double tol)
{
    vec got = down(dev, want.size());
    double worst = 0;
    int bad = 0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++) {
            double b = bias ? fabs(bias[o]) : 0;
            for (int c = 0; c < C; c++)
                b += fabs((double)x[(size_t)r * C + c] * w[(size_t)o * C + c]);
            double d = fabs((double)got[(size_t)r * OC + o] - want[(size_t)r * OC + o]);
            if (!(d <= tol * b + 1e-6))
                bad++;
            if (b > 0 && d / b > worst)
                worst = d / b;
        }
    printf("  %-44s max %.3g of the bound (tol %.3g)%s\n", what, worst, tol, bad ? "  FAIL" : "");
    CHECK_MSG(bad == 0, "%s: %d elements beyond %.3g of the bound", what, bad, tol);
}

static vec f16_round(const vec &x)
{
    vec y(x.size());
    kcpu_round_f16(y.data(), x.data(), x.size());
    return y;
}

/* Forward of all three families with the bias, on a fresh shape (N, C, OC): outputs against the
 * CPU. fp32 runs TF32 (2e-3 of Σ|x·w|); the 16-bit entries use the same rounded operands as
 * the references, so only the summation order differs (1e-5). */
static void forward_three(const char *tag, int N, int C, int OC, bool with_bias)
{
    vec x = rnd((size_t)N * C), w = rnd((size_t)OC * C), bias = rnd(OC), ref((size_t)N * OC);
    std::vector<uint16_t> wb(w.size()), wh(w.size());
    kcpu_f32_to_bf16(wb.data(), w.data(), w.size());
    kcpu_f32_to_f16(wh.data(), w.data(), w.size());
    vec wbf(w.size()), whf(w.size());
    kcpu_bf16_to_f32(wbf.data(), wb.data(), w.size());
    kcpu_f16_to_f32(whf.data(), wh.data(), w.size());
    const float *hb = with_bias ? bias.data() : nullptr;
    float *d_x = up(x), *d_w = up(w), *d_b = with_bias ? up(bias) : nullptr;
    float *d_o = (float *)dalloc(ref.size() * 4);
    void *scratch = dalloc(kcuda_matmul_bf16_scratch_bytes(N));
    uint16_t *d_wb = up(wb), *d_wh = up(wh);
    char what[96];
    kcpu_matmul_forward(ref.data(), x.data(), w.data(), hb, N, C, OC);
    kcuda_matmul_forward(d_o, d_x, d_w, d_b, N, C, OC);
    snprintf(what, sizeof what, "%s: tf32 fwd %dx%dx%d", tag, N, C, OC);
    expect_mm(what, d_o, ref, x, w, hb, N, C, OC, 2e-3);
    vec xb = bf16_round(x);
    kcpu_matmul_forward(ref.data(), xb.data(), wbf.data(), hb, N, C, OC);
    kcuda_matmul_bf16_forward(d_o, d_x, d_wb, d_b, N, C, OC, scratch);
    snprintf(what, sizeof what, "%s: bf16 fwd %dx%dx%d", tag, N, C, OC);
    expect_mm(what, d_o, ref, xb, wbf, hb, N, C, OC, 1e-5);
    vec xh = f16_round(x);
    kcpu_matmul_forward(ref.data(), xh.data(), whf.data(), hb, N, C, OC);
    kcuda_matmul_f16_forward(d_o, d_x, d_wh, d_b, N, C, OC, scratch);
    snprintf(what, sizeof what, "%s: fp16 fwd %dx%dx%d", tag, N, C, OC);
    expect_mm(what, d_o, ref, xh, whf, hb, N, C, OC, 1e-5);
    dfree_all();
}

static void test_matmul_no_bias(void)
{
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    forward_three("bias NULL", 19, 40, 23, false);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls, s), 3);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 0);
}

/* C = 0 (an empty product): out = bias, and with GELU pre = bias, out = gelu(bias); lt_run
 * skips cublasLtMatmul (the fake accepts the k = 0 plan, which real cuBLASLt may not). */
static void test_matmul_empty_k(void)
{
    const int N = 3, OC = 8;
    vec bias = rnd(OC), want((size_t)N * OC), g((size_t)N * OC);
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++)
            want[(size_t)r * OC + o] = bias[(size_t)o];
    kcpu_gelu_forward(g.data(), want.data(), want.size());
    float *d_b = up(bias), *d_x = up(vec(1, 0.0f)), *d_w = up(vec(1, 0.0f));
    float *d_o = up(vec(want.size(), NAN)), *d_pre = up(vec(want.size(), NAN));
    kcuda_matmul_forward(d_o, d_x, d_w, d_b, N, 0, OC);
    expect_close("fwd C = 0: out = bias", d_o, want, 0.0);
    kcuda_matmul_gelu_forward(d_o, d_pre, d_x, d_w, BACKEND_WFMT_FP32, d_b, N, 0, OC, nullptr);
    expect_close("gelu fwd C = 0: pre = bias", d_pre, want, 0.0);
    expect_close("gelu fwd C = 0: out = gelu(bias)", d_o, g, 1e-6);
    dfree_all();
}

/* No algorithm takes the BIAS epilogue: matmul.cu builds the plan without it and adds the bias
 * with add_bias_kernel. Then no algorithm at all: matmul.cu aborts and says why. */
static void test_matmul_fallback(void)
{
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    forward_three("BIAS epilogue", 21, 36, 29, true);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 3);
    emu_cublaslt_stats(&s);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_EPILOGUE);
    forward_three("fallback (no BIAS epilogue)", 22, 36, 29, true);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_NONE);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 0);
    CHECK_INT(lt_delta(&emu_lt_stats::heuristic_refused, s), 3);
    emu_cublaslt_stats(&s);
    forward_three("fallback plans, cached", 22, 36, 29, true); /* the same keys: no heuristic */
    CHECK_INT(lt_delta(&emu_lt_stats::heuristic_calls, s), 0);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 0);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_ENV);

    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        emu_cublaslt_set_refuse(EMU_LT_REFUSE_ALL);
        vec x = rnd(6), w = rnd(6);
        float *d_x = up(x), *d_w = up(w), *d_o = (float *)dalloc(4 * 4);
        kcuda_matmul_forward(d_o, d_x, d_w, nullptr, 2, 3, 2);
        _exit(0);
    }
    close(fds[1]);
    char msg[512] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof msg - 1 && (r = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    CHECK_MSG(aborted && strstr(msg, "cublasLt: no algorithm for m=2 n=2 k=3"),
              "status %d, stderr \"%s\"", st, msg);
    printf("  %-44s %s\n", "no algorithm at all: matmul.cu aborts", aborted ? "ok" : "NO");
}

/* How many GEMMs each entry runs: the 16-bit entries cut rows into chunks when the 16-bit
 * operand is wider than the scratch allows (see backend_cases.c for the arithmetic). The values
 * are checked by the backend cases on the same shapes; here the chunk counts, and the weight
 * gradient's bias gradient, summed chunk by chunk by the rounding passes. */
static void test_matmul_chunks(void)
{
    struct {
        int N, C, OC, which; /* 0 forward, 1 backward input, 2 backward weight */
        long gemms;
    } cases[] = {
        {33, 69757, 7, 0, 2},  /* 31 + 2 rows */
        {33, 69757, 7, 2, 2},  /* 23 + 10 rows (alignment of the second copy) */
        {40, 3, 70001, 1, 2},  /* 37 + 3 rows */
        {40, 3, 70001, 2, 2},  /* dout + inp 70004 wide: 37 + 3 rows */
        {6, 64, 50304, 0, 1},  /* GPT-2's head at decode: one GEMM */
        {6, 64, 50304, 1, 1},
        {6, 64, 50304, 2, 1},
        {64, 64, 50304, 1, 1}, /* 83 rows fit: one GEMM */
    };
    for (auto &c : cases) {
        size_t nx = (size_t)c.N * c.C, nw = (size_t)c.OC * c.C, no = (size_t)c.N * c.OC;
        float *d_x = up(vec(nx, 0.25f)), *d_g = up(vec(no, 0.5f)), *d_o = (float *)dalloc(no * 4);
        float *d_dx = up(vec(nx, 0.0f)), *d_dw = up(vec(nw, 0.0f)), *d_db = up(vec(c.OC, 1.0f));
        uint16_t *d_w = up(std::vector<uint16_t>(nw, 0x3f80)); /* bf16 1.0 */
        void *scratch = dalloc(kcuda_matmul_bf16_scratch_bytes(c.N));
        emu_lt_stats s;
        emu_cublaslt_stats(&s);
        if (c.which == 0)
            kcuda_matmul_bf16_forward(d_o, d_x, d_w, nullptr, c.N, c.C, c.OC, scratch);
        else if (c.which == 1)
            kcuda_matmul_bf16_backward_input(d_dx, d_g, d_w, c.N, c.C, c.OC, scratch);
        else
            kcuda_matmul_bf16_backward_weight(d_dw, d_db, d_g, d_x, c.N, c.C, c.OC, scratch);
        long n = lt_delta(&emu_lt_stats::matmuls, s);
        /* Constant operands: every output is a known multiple (all exact in bf16 and fp32). */
        vec out = c.which == 0 ? down(d_o, no) : c.which == 1 ? down(d_dx, nx) : down(d_dw, nw);
        float want = c.which == 0 ? 0.25f * c.C : c.which == 1 ? 0.5f * c.OC : 0.125f * c.N;
        int bad = 0;
        for (float v : out)
            bad += v != want;
        if (c.which == 2) /* dbias += 0.5 per row, added to 1 (exact) */
            for (float v : down(d_db, (size_t)c.OC))
                bad += v != 1.0f + 0.5f * c.N;
        char what[96];
        snprintf(what, sizeof what, "bf16 %s %dx%dx%d",
                 c.which == 0 ? "fwd" : c.which == 1 ? "dinp" : "dweight", c.N, c.C, c.OC);
        printf("  %-44s %ld GEMM(s), %d wrong\n", what, n, bad);
        CHECK_MSG(n == c.gemms, "%s: %ld GEMMs, expected %ld", what, n, c.gemms);
        CHECK_INT(bad, 0);
        dfree_all();
    }
}

/* kcuda_matmul_gelu_forward in each weight format on a fresh shape: pre against the CPU's
 * matmul of the same rounded operands (tolerances as forward_three), out against the CPU's GELU
 * of the pre it wrote (1e-6·(1 + |pre|): the fused epilogue computes the same float operations,
 * the unfused path runs kcuda_gelu_forward). Returns the GEMMs that fused GELU. */
static long gelu_three(const char *tag, int N, int C, int OC, bool with_bias, int fmts = 7)
{
    vec x = rnd((size_t)N * C), w = rnd((size_t)OC * C), bias = rnd(OC), ref((size_t)N * OC);
    std::vector<uint16_t> w16[3] = {{}, std::vector<uint16_t>(w.size()),
                                    std::vector<uint16_t>(w.size())};
    kcpu_f32_to_bf16(w16[1].data(), w.data(), w.size());
    kcpu_f32_to_f16(w16[2].data(), w.data(), w.size());
    const float *hb = with_bias ? bias.data() : nullptr;
    float *d_x = up(x), *d_b = with_bias ? up(bias) : nullptr;
    float *d_o = (float *)dalloc(ref.size() * 4), *d_pre = (float *)dalloc(ref.size() * 4);
    void *scratch = dalloc(kcuda_matmul_bf16_scratch_bytes(N));
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    const char *names[3] = {"tf32", "bf16", "fp16"};
    const int wfmt[3] = {BACKEND_WFMT_FP32, BACKEND_WFMT_BF16, BACKEND_WFMT_FP16};
    for (int f = 0; f < 3; f++) {
        if (!(fmts & (1 << f)))
            continue;
        vec xr = f == 0 ? x : f == 1 ? bf16_round(x) : f16_round(x), wr(w.size());
        if (f == 0)
            wr = w;
        else
            (f == 1 ? kcpu_bf16_to_f32 : kcpu_f16_to_f32)(wr.data(), w16[f].data(), w.size());
        const void *d_w = f == 0 ? (const void *)up(w) : (const void *)up(w16[f]);
        kcpu_matmul_forward(ref.data(), xr.data(), wr.data(), hb, N, C, OC);
        kcuda_matmul_gelu_forward(d_o, d_pre, d_x, d_w, wfmt[f], d_b, N, C, OC,
                                  f ? scratch : nullptr);
        char what[96];
        snprintf(what, sizeof what, "%s: %s gelu pre %dx%dx%d", tag, names[f], N, C, OC);
        expect_mm(what, d_pre, ref, xr, wr, hb, N, C, OC, f == 0 ? 2e-3 : 1e-5);
        vec pre = down(d_pre, ref.size()), out = down(d_o, ref.size()), want(ref.size());
        kcpu_gelu_forward(want.data(), pre.data(), pre.size());
        int bad = 0;
        for (size_t i = 0; i < want.size(); i++)
            bad += !(fabs(out[i] - want[i]) <= 1e-6 * (1.0 + fabs(pre[i])));
        CHECK_MSG(bad == 0, "%s: %d outputs differ from gelu(pre)", what, bad);
    }
    dfree_all();
    return lt_delta(&emu_lt_stats::matmuls_gelu_aux, s);
}

static void test_matmul_gelu(void)
{
    /* OC a multiple of 8: the GELU_AUX_BIAS epilogue (GELU_AUX without bias), one GEMM each */
    CHECK_INT(gelu_three("fused", 19, 40, 24, true), 3);
    CHECK_INT(gelu_three("fused, bias NULL", 19, 40, 32, false), 3);
    /* fused and chunked: the aux pointer follows the chunks (31 + 2 rows) */
    CHECK_INT(gelu_three("fused, chunked", 33, 69757, 8, true, 2), 2);
    /* OC = 23: cuBLASLt wants the aux ld (= OC) a multiple of 8, so no fused algorithm: BIAS
     * epilogue, then the copy to pre and kcuda_gelu_forward */
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    CHECK_INT(gelu_three("aux ld 23", 19, 40, 23, true), 0);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 3);
    /* the same shape (and alignment) as plain forwards: the GELU call gets its own fused plan,
     * and the plain calls after it do not reuse that one */
    forward_three("plain before gelu", 18, 40, 16, true);
    CHECK_INT(gelu_three("gelu after plain", 18, 40, 16, true), 3);
    emu_cublaslt_stats(&s);
    forward_three("plain after gelu", 18, 40, 16, true);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_gelu_aux, s), 0);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 3);
    /* no epilogue at all: plain GEMM, bias kernel, copy, GELU kernel */
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_EPILOGUE);
    emu_cublaslt_stats(&s);
    CHECK_INT(gelu_three("no epilogue", 20, 40, 24, true), 0);
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_bias, s), 0);
    emu_cublaslt_set_refuse(EMU_LT_REFUSE_ENV);
}

/* One cached plan, new bias and aux pointers (same alignment): the plan follows them. */
static void test_matmul_pointer_reuse(void)
{
    const int N = 5, C = 9, OC = 8;
    vec x = rnd((size_t)N * C), w = rnd((size_t)OC * C), b1 = rnd(OC), b2 = rnd(OC);
    vec ref((size_t)N * OC);
    float *d_x = up(x), *d_w = up(w), *d_b1 = up(b1), *d_b2 = up(b2);
    float *d_o = (float *)dalloc(ref.size() * 4), *d_p1 = (float *)dalloc(ref.size() * 4);
    float *d_p2 = up(vec(ref.size(), NAN));
    kcpu_matmul_forward(ref.data(), x.data(), w.data(), b2.data(), N, C, OC);
    emu_lt_stats s;
    emu_cublaslt_stats(&s);
    kcuda_matmul_forward(d_o, d_x, d_w, d_b1, N, C, OC);
    kcuda_matmul_forward(d_o, d_x, d_w, d_b2, N, C, OC);
    expect_mm("tf32 fwd, second bias on a cached plan", d_o, ref, x, w, b2.data(), N, C, OC,
              2e-3);
    kcuda_matmul_gelu_forward(d_o, d_p1, d_x, d_w, BACKEND_WFMT_FP32, d_b1, N, C, OC, nullptr);
    kcuda_matmul_gelu_forward(d_o, d_p2, d_x, d_w, BACKEND_WFMT_FP32, d_b2, N, C, OC, nullptr);
    expect_mm("tf32 gelu, second pre and bias on a cached plan", d_p2, ref, x, w, b2.data(), N, C,
              OC, 2e-3);
    CHECK_INT(lt_delta(&emu_lt_stats::heuristic_calls, s), 2); /* one plan each */
    CHECK_INT(lt_delta(&emu_lt_stats::matmuls_gelu_aux, s), 2);
    dfree_all();
}

/* The plan cache: a repeated shape asks the heuristic nothing; another pointer alignment is
 * another plan; past LT_CACHE_MAX (256) plans the extra ones are built, used and released each
 * call (no descriptor or layout outlives its call). Runs last: it fills the cache. */
static void test_matmul_plan_cache(void)
{
    const int NMAX = 301, C = 9, OC = 4;
    vec x = rnd((size_t)NMAX * C + 1), w = rnd((size_t)OC * C), bias = rnd(OC);
    vec ref((size_t)NMAX * OC);
    float *d_x = up(x), *d_w = up(w), *d_b = up(bias);
    float *d_o = (float *)dalloc((ref.size() + 1) * 4);
    emu_lt_stats s;
    kcuda_matmul_forward(d_o, d_x, d_w, nullptr, 5, C, OC);
    emu_cublaslt_stats(&s);
    kcuda_matmul_forward(d_o, d_x, d_w, nullptr, 5, C, OC);
    CHECK_INT(lt_delta(&emu_lt_stats::heuristic_calls, s), 0);
    vec x1(x.begin() + 1, x.begin() + 1 + 5 * C), r1(5 * OC);
    kcpu_matmul_forward(r1.data(), x1.data(), w.data(), nullptr, 5, C, OC);
    kcuda_matmul_forward(d_o + 1, d_x + 1, d_w, nullptr, 5, C, OC); /* 4-byte aligned */
    CHECK_INT(lt_delta(&emu_lt_stats::heuristic_calls, s), 1);
    expect_mm("tf32 fwd, 4-byte aligned in and out", d_o + 1, r1, x1, w, nullptr, 5, C, OC, 2e-3);
    for (int n = 1; n < NMAX; n++) /* 300 shapes: more than the cache holds */
        kcuda_matmul_forward(d_o, d_x, d_w, nullptr, n, C, OC);
    emu_cublaslt_stats(&s);
    printf("  %-44s %d descriptors, %d layouts, %d preferences live\n",
           "plan cache full (256 plans)", s.live_descs, s.live_layouts, s.live_prefs);
    CHECK_INT(s.live_descs, 256);
    CHECK_INT(s.live_layouts, 3 * 256);
    CHECK_INT(s.live_prefs, 0);
    /* A plan that does not fit the cache still computes the right thing, and is released. */
    x.resize((size_t)NMAX * C);
    kcpu_matmul_forward(ref.data(), x.data(), w.data(), bias.data(), NMAX, C, OC);
    kcuda_matmul_forward(d_o, d_x, d_w, d_b, NMAX, C, OC);
    expect_mm("tf32 fwd + bias, plan beyond the cache", d_o, ref, x, w, bias.data(), NMAX, C, OC,
              2e-3);
    emu_lt_stats s2;
    emu_cublaslt_stats(&s2);
    CHECK(s2.live_descs == 256 && s2.live_layouts == 3 * 256 && s2.live_prefs == 0);
    dfree_all();
}

/* ---------------------------------------------------------------- main */

#define RUN_TIMED(fn)                                                                            \
    do {                                                                                         \
        auto t0_ = std::chrono::steady_clock::now();                                             \
        RUN(fn);                                                                                 \
        double s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); \
        printf("%s: %.2f s\n", #fn, s_);                                                         \
    } while (0)

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* the emulation's reports (stderr) stay in order */
    /* The kcuda_flash_attention_* entries must run the FMA kernels (as in the GPU test). */
    unsetenv("SCALEWISE_CUDA_ATTENTION");
    const cudaDeviceProp *prop = cuda_props();
    printf("test_cuda_emu: kernels/cuda/k_*.cu on %s (sm_%d%d, %d SMs)\n", prop->name,
           prop->major, prop->minor, prop->multiProcessorCount);
    RUN_TIMED(test_emulation);
    RUN_TIMED(test_embedding);
    RUN_TIMED(test_residual_strided);
    RUN_TIMED(test_norms);
    RUN_TIMED(test_activations);
    RUN_TIMED(test_rope);
    RUN_TIMED(test_a16_elementwise);
    RUN_TIMED(test_flash_attention_emu);
    RUN_TIMED(test_flash_attention_bf16);
    RUN_TIMED(test_flash_attention_tc_emu);
    RUN_TIMED(test_flash_attention_tc_unaligned);
    RUN_TIMED(test_flash_attention_a16);
    RUN_TIMED(test_attention_tuning);
    RUN_TIMED(test_attention_materialised);
    RUN_TIMED(test_kv_cache_decode);
    RUN_TIMED(test_decode_partial_emu);
    RUN_TIMED(test_decode_c16);
    RUN_TIMED(test_softmax_ce);
    RUN_TIMED(test_softmax_ce_a16);
    RUN_TIMED(test_argmax_rows);
    RUN_TIMED(test_optimizers);
    RUN_TIMED(test_adafactor);
    RUN_TIMED(test_adamw8bit);
    RUN_TIMED(test_multi_segment);
    RUN_TIMED(test_sgd_multi_emu);
    RUN_TIMED(test_grad_norm_emu);
    RUN_TIMED(test_bf16_int8);
    RUN_TIMED(test_fp16);
    RUN_TIMED(test_cublaslt_tf32);
    RUN_TIMED(test_cublaslt_gemm);
    RUN_TIMED(test_cublaslt_checks);
    RUN_TIMED(test_cublaslt_bf16_out);
    RUN_TIMED(test_matmul_init);
    RUN_TIMED(test_matmul_backend_cases);
    RUN_TIMED(test_matmul_no_bias);
    RUN_TIMED(test_matmul_empty_k);
    RUN_TIMED(test_matmul_fallback);
    RUN_TIMED(test_matmul_chunks);
    RUN_TIMED(test_matmul_gelu);
    RUN_TIMED(test_matmul_pointer_reuse);
    RUN_TIMED(test_matmul_plan_cache); /* last: fills matmul.cu's plan cache */
    return harness_finish("test_cuda_emu");
}
