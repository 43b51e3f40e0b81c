/* The CUDA kernels of kernels/cuda/k_*.cu, compiled by g++ and run on the CPU under the
 * emulation of tests/cuda_emu/cuda_emu.h, against the CPU kernels (kernels/cpu) on random
 * inputs: every kcuda_* entry the k_*.cu files define (matmul.cu's cuBLASLt entries excepted).
 *
 * The comparisons, their shapes and their tolerances are those of the GPU test
 * tests/gpu/test_cuda_kernels.cu, which this file includes (its main renamed) so both stay one
 * set of cases: its test functions are called as they are where their sizes suit the emulation,
 * and with smaller shapes where they do not (flash attention with T up to 64 plus one longer
 * case; tensor-core attention without the T = 1024 and GPT-2-sized timing runs; the gradient
 * norm on 300 K elements instead of 1 M). Added here: the one-launch SGD updates the GPU test
 * does not cover, and a self-test of the emulation (barriers, shuffles, ballot, per-block
 * shared memory, launch checks, deadlock detection, and that a missing __syncthreads shows).
 * Ends with "test_cuda_emu: N passed, N failed". docs/cuda.md ("Kernel logic without a GPU")
 * says what a pass does and does not prove. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

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
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 3; i++)
            tc_vs_cpu(s == 2 ? 1 : 2, Ts[i], heads[s][0], heads[s][1], heads[s][2]);
    tc_vs_cpu(1, 150, 2, 1, 64); /* several 64-row tiles, the last one partial */
    tc_vs_fma(1, 70, 4, 2, 64, 0, NULL, NULL);
    tc_vs_fma(1, 40, 2, 2, 128, 0, NULL, NULL);
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

/* Decode with a head count that leaves the last block's warps idle (NH = 6: warps 2 and 3 of
 * the second block exit at once) and a padded head size (48 of 64). */
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
    const size_t n = 300007; /* > NORM_BLOCKS · 256: the first pass's grid strides */
    vec g = rnd(n);
    float *d_g = up(g);
    double ref = kcpu_grad_norm(g.data(), n), got = kcuda_grad_norm(d_g, n);
    printf("  %-44s cpu %.12g gpu %.12g\n", "grad_norm", ref, got);
    CHECK_REL(got, ref, 1e-9);
    double nc = kcpu_clip_grad_norm(g.data(), n, 1.0), ng = kcuda_clip_grad_norm(d_g, n, 1.0);
    CHECK_REL(ng, nc, 1e-9);
    expect_close("clip_grad_norm scaled gradient", d_g, g, 1e-7);
    ng = kcuda_clip_grad_norm(d_g, n, 1e9);
    expect_close("clip_grad_norm below max: unchanged", d_g, g, 0.0);
    dfree_all();
}

/* kcuda_sgd_step_multi and kcuda_sgd_momentum_step_multi equal per-segment CPU calls. */
static void test_sgd_multi_emu(void)
{
    const size_t sizes[3] = {3000, 17, 9000};
    const float wds[3] = {0.1f, 0.0f, 0.05f};
    std::vector<kcuda_opt_seg> segs(3);
    size_t off = 0, max_n = 0;
    for (int i = 0; i < 3; i++) {
        segs[i].off = off;
        segs[i].n = sizes[i];
        segs[i].state_off = 0;
        segs[i].weight_decay = wds[i];
        segs[i].pad = 0;
        off += sizes[i];
        max_n = sizes[i] > max_n ? sizes[i] : max_n;
    }
    const size_t n = off;
    kcuda_opt_seg *d_segs = up(segs);
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
    RUN_TIMED(test_flash_attention_emu);
    RUN_TIMED(test_flash_attention_bf16);
    RUN_TIMED(test_flash_attention_tc_emu);
    RUN_TIMED(test_flash_attention_tc_unaligned);
    RUN_TIMED(test_attention_materialised);
    RUN_TIMED(test_kv_cache_decode);
    RUN_TIMED(test_decode_partial_emu);
    RUN_TIMED(test_softmax_ce);
    RUN_TIMED(test_optimizers);
    RUN_TIMED(test_adafactor);
    RUN_TIMED(test_adamw8bit);
    RUN_TIMED(test_multi_segment);
    RUN_TIMED(test_sgd_multi_emu);
    RUN_TIMED(test_grad_norm_emu);
    RUN_TIMED(test_bf16_int8);
    RUN_TIMED(test_fp16);
    return harness_finish("test_cuda_emu");
}
