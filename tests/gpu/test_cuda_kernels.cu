/* Every CUDA kernel of kernels/cuda/k_*.cu against the CPU kernel of the same name
 * (kernels/cpu, kcpu_*) on random inputs, forward and backward, printing each comparison's
 * maximum absolute error beside its tolerance. Inputs are uniform in [-1, 1) unless noted;
 * gradient buffers start non-zero, so the "backward accumulates" convention is checked too.
 * Tolerances (absolute, on outputs of magnitude <= ~1 for these sizes):
 *  - exact (0): embedding forward/backward (the same fp32 additions in the same order), the
 *    residual, copy/axpy, KV-cache append, bf16 <-> fp32 conversion (the CPU's bit recipe),
 *    fp16 <-> fp32 conversion and round_f16 (every one of the 65536 halves, and fp32 values
 *    around every rounding boundary: overflow, subnormals, ties, NaN payloads),
 *    int8 quantisation, the 8-bit AdamW state (codes and absmax, bit for bit: checkpoints are
 *    interchangeable);
 *  - fp32 1e-5 .. 1e-4: norms, activations, RoPE, attention (reduction order and FMA
 *    contraction differ from the CPU), 1e-6 on the softmax gradients (values ~1/V);
 *  - optimizers 1e-5 on parameters after 3 steps (FMA contraction vs the CPU's separate
 *    multiply-add);
 *  - gradient norm: 1e-9 relative (both sum in double);
 *  - bf16 attention: the CPU reference runs on the bf16-rounded inputs, so only the bf16
 *    rounding of the output (2^-8 relative) and of the accumulated gradient remains: 1e-2
 *    absolute on out, 1e-2 times the largest |dqkv| (at least 1) on dqkv;
 *  - the int8 matmul: 1e-4 (the same int8 codes; fp32 sums over C = 300 in another order);
 *  - tensor-core attention (kcuda_flash_attention_*_tc): bounds derived from the bf16 rounding
 *    of P and dS (2^-8 relative) against the CPU, 2^-5 relative (Frobenius) against the FMA
 *    kernels on raw fp32 inputs; the derivation is at test_flash_attention_tc.
 *  - flash attention with bf16 activations (_a16): bit for bit the fp32-input kernels' results
 *    on bf16 inputs (O rounded), bounds from O's rounding otherwise; derived at a16_impl.
 * Where no GPU is present it prints "skipped: no GPU (<reason from cudaGetDeviceCount>)" and
 * exits 0. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "harness.h"
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"
extern "C" {
#include "kernels/cpu/kernels_cpu.h"
}

extern "C" const struct backend *scalewise_cuda_backend(int api_version, char *err, size_t n);

typedef std::vector<float> vec;

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static vec rnd(size_t n, float scale = 1.0f)
{
    vec v(n);
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

/* Device buffers: freed all at once at the end of each test. */
static std::vector<void *> g_dev;
static void *dalloc(size_t bytes)
{
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    g_dev.push_back(p);
    return p;
}
static void dfree_all(void)
{
    CUDA_CHECK(cudaDeviceSynchronize());
    for (void *p : g_dev)
        CUDA_CHECK(cudaFree(p));
    g_dev.clear();
}
template <typename T> static T *up(const std::vector<T> &h)
{
    T *d = (T *)dalloc(h.size() * sizeof(T));
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
template <typename T> static std::vector<T> down(const T *d, size_t n)
{
    std::vector<T> h(n);
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

static double max_err(const vec &a, const vec &b)
{
    double e = 0.0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= e)) /* NaN counts as infinite */
            e = d == d ? d : INFINITY;
    }
    return a.size() == b.size() ? e : INFINITY;
}

/* Compares a device buffer with the CPU reference, prints the maximum error. */
static void expect_close(const char *what, const float *dev, const vec &ref, double tol)
{
    vec got = down(dev, ref.size());
    double e = max_err(got, ref);
    printf("  %-44s max err %.3g (tol %.3g)\n", what, e, tol);
    CHECK_MSG(e <= tol, "%s: max err %.3g > tol %.3g", what, e, tol);
}

static vec bf16_round(const vec &x)
{
    std::vector<uint16_t> b(x.size());
    vec y(x.size());
    kcpu_f32_to_bf16(b.data(), x.data(), x.size());
    kcpu_bf16_to_f32(y.data(), b.data(), x.size());
    return y;
}
static std::vector<__nv_bfloat16> to_bf16(const vec &x)
{
    std::vector<uint16_t> b(x.size());
    kcpu_f32_to_bf16(b.data(), x.data(), x.size());
    std::vector<__nv_bfloat16> r(x.size());
    memcpy((void *)r.data(), b.data(), b.size() * 2);
    return r;
}
static vec from_bf16(const std::vector<__nv_bfloat16> &b)
{
    vec y(b.size());
    kcpu_bf16_to_f32(y.data(), (const uint16_t *)b.data(), b.size());
    return y;
}

/* ---------------------------------------------------------------- embedding, residual */

static void test_embedding(void)
{
    const int B = 3, T = 37, C = 80, V = 50, maxT = 64, pos = 5;
    std::vector<int> tok(B * T);
    for (int i = 0; i < B * T; i++)
        tok[i] = (int)((frand() + 1.0f) * 0.5f * 9.99f) * 5 % V; /* many repeats */
    vec wte = rnd((size_t)V * C), wpe = rnd((size_t)maxT * C), dout = rnd((size_t)B * T * C);
    vec out(B * T * C);
    float *d_out = (float *)dalloc(out.size() * 4);
    int *d_tok = up(tok);
    float *d_wte = up(wte), *d_wpe = up(wpe);
    kcpu_embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C, V, maxT, pos);
    kcuda_embedding_forward(d_out, d_tok, d_wte, d_wpe, B, T, C, V, maxT, pos);
    expect_close("embedding_forward (wte+wpe)", d_out, out, 0.0);
    kcpu_embedding_forward(out.data(), tok.data(), wte.data(), NULL, B, T, C, V, maxT, 0);
    kcuda_embedding_forward(d_out, d_tok, d_wte, NULL, B, T, C, V, maxT, 0);
    expect_close("embedding_forward (wte only)", d_out, out, 0.0);

    vec dwte = rnd((size_t)V * C), dwpe = rnd((size_t)maxT * C);
    float *d_dwte = up(dwte), *d_dwpe = up(dwpe), *d_dout = up(dout);
    kcpu_embedding_backward(dwte.data(), dwpe.data(), dout.data(), tok.data(), B, T, C, V, maxT,
                            pos);
    kcuda_embedding_backward(d_dwte, d_dwpe, d_dout, d_tok, B, T, C, V, maxT, pos);
    expect_close("embedding_backward dwte (bitwise)", d_dwte, dwte, 0.0);
    expect_close("embedding_backward dwpe (bitwise)", d_dwpe, dwpe, 0.0);
    dfree_all();
}

static void test_residual_strided(void)
{
    const size_t n = 1003;
    vec a = rnd(n), b = rnd(n), g = rnd(n), da = rnd(n), db = rnd(n), out(n);
    float *d_a = up(a), *d_b = up(b), *d_g = up(g), *d_da = up(da), *d_db = up(db);
    float *d_out = (float *)dalloc(n * 4);
    kcpu_residual_forward(out.data(), a.data(), b.data(), n);
    kcuda_residual_forward(d_out, d_a, d_b, n);
    expect_close("residual_forward", d_out, out, 0.0);
    kcuda_residual_forward(d_out, d_a, d_b, 1000); /* float4 path */
    expect_close("residual_forward (vectorised)", d_out, out, 0.0);
    kcpu_residual_backward(da.data(), db.data(), g.data(), n);
    kcuda_residual_backward(d_da, d_db, d_g, n);
    expect_close("residual_backward da", d_da, da, 0.0);
    expect_close("residual_backward db", d_db, db, 0.0);

    /* copy_2d / axpy_2d on a 7×5 view of a 7×9 source into a 7×6 destination. */
    vec src = rnd(7 * 9), dst = rnd(7 * 6);
    float *d_src = up(src), *d_dst = up(dst);
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++)
            dst[r * 6 + c] += 0.5f * src[r * 9 + c + 2];
    kcuda_axpy_2d(d_dst, 6, d_src + 2, 9, 7, 5, 0.5f);
    expect_close("axpy_2d", d_dst, dst, 0.0);
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++)
            dst[r * 6 + c] = -2.0f * src[r * 9 + c + 2];
    kcuda_copy_2d(d_dst, 6, d_src + 2, 9, 7, 5, -2.0f);
    expect_close("copy_2d", d_dst, dst, 0.0);
    vec x = rnd(n);
    float *d_x = up(x);
    kcpu_scale(x.data(), n, 0.37f);
    kcuda_scale(d_x, n, 0.37f);
    expect_close("scale", d_x, x, 0.0);
    dfree_all();
}

/* ---------------------------------------------------------------- norms, activations, RoPE */

static void test_norms(void)
{
    const int N = 37, C = 200;
    vec x = rnd((size_t)N * C), w = rnd(C), bias = rnd(C), dout = rnd((size_t)N * C);
    for (auto &v : x)
        v = v * 3.0f + 2.0f; /* a mean far from zero exercises the two-pass variance */
    vec out((size_t)N * C), mean(N), rstd(N);
    float *d_x = up(x), *d_w = up(w), *d_b = up(bias), *d_dout = up(dout);
    float *d_out = (float *)dalloc(out.size() * 4), *d_mean = (float *)dalloc(N * 4);
    float *d_rstd = (float *)dalloc(N * 4);
    kcpu_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), bias.data(),
                           N, C, 1e-5f);
    kcuda_layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-5f);
    expect_close("layernorm_forward out", d_out, out, 1e-5);
    expect_close("layernorm_forward mean", d_mean, mean, 1e-5);
    expect_close("layernorm_forward rstd", d_rstd, rstd, 1e-5);
    vec dx = rnd((size_t)N * C), dw = rnd(C), db = rnd(C);
    float *d_dx = up(dx), *d_dw = up(dw), *d_db = up(db);
    kcpu_layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                            mean.data(), rstd.data(), N, C);
    kcuda_layernorm_backward(d_dx, d_dw, d_db, d_dout, d_x, d_w, d_mean, d_rstd, N, C);
    expect_close("layernorm_backward dinp", d_dx, dx, 1e-4);
    expect_close("layernorm_backward dweight", d_dw, dw, 1e-4);
    expect_close("layernorm_backward dbias", d_db, db, 1e-4);

    kcpu_rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
    kcuda_rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-6f);
    expect_close("rmsnorm_forward out", d_out, out, 1e-5);
    expect_close("rmsnorm_forward rstd", d_rstd, rstd, 1e-6);
    kcpu_rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N,
                          C);
    kcuda_rmsnorm_backward(d_dx, d_dw, d_dout, d_x, d_w, d_rstd, N, C);
    expect_close("rmsnorm_backward dinp", d_dx, dx, 1e-4);
    expect_close("rmsnorm_backward dweight", d_dw, dw, 1e-4);
    dfree_all();
}

static void test_activations(void)
{
    const int N = 29, H = 130;
    const size_t n = (size_t)N * H;
    vec x = rnd(n, 4.0f), dout = rnd(n), out(n), dx = rnd(n);
    float *d_x = up(x), *d_dout = up(dout), *d_dx = up(dx);
    float *d_out = (float *)dalloc(n * 4);
    kcpu_gelu_forward(out.data(), x.data(), n);
    kcuda_gelu_forward(d_out, d_x, n);
    expect_close("gelu_forward", d_out, out, 1e-5);
    kcpu_gelu_backward(dx.data(), x.data(), dout.data(), n);
    kcuda_gelu_backward(d_dx, d_x, d_dout, n);
    expect_close("gelu_backward", d_dx, dx, 1e-5);

    vec gu = rnd(2 * n, 4.0f), dgu = rnd(2 * n);
    float *d_gu = up(gu), *d_dgu = up(dgu);
    kcpu_swiglu_forward(out.data(), gu.data(), N, H);
    kcuda_swiglu_forward(d_out, d_gu, N, H);
    expect_close("swiglu_forward", d_out, out, 1e-5);
    kcpu_swiglu_backward(dgu.data(), dout.data(), gu.data(), N, H);
    kcuda_swiglu_backward(d_dgu, d_dout, d_gu, N, H);
    expect_close("swiglu_backward", d_dgu, dgu, 1e-5);
    dfree_all();
}

/* RoPE tables (theta 500000) of maxT positions for head size HS, made by the CPU (cs, sn) and
 * by the device (d_cs, d_sn, freed by dfree_all). */
struct rope_tabs {
    vec cs, sn;
    float *d_cs, *d_sn;
};
static rope_tabs rope_tables_both(int maxT, int HS)
{
    rope_tabs t;
    t.cs.resize((size_t)maxT * HS / 2);
    t.sn.resize(t.cs.size());
    t.d_cs = (float *)dalloc(t.cs.size() * 4);
    t.d_sn = (float *)dalloc(t.sn.size() * 4);
    kcpu_rope_tables(t.cs.data(), t.sn.data(), maxT, HS, 500000.0);
    kcuda_rope_tables(t.d_cs, t.d_sn, maxT, HS, 500000.0);
    return t;
}

static void test_rope(void)
{
    const int B = 2, T = 11, NH = 4, NKV = 2, HS = 48, maxT = 40, pos = 7;
    const int R = (NH + 2 * NKV) * HS;
    rope_tabs rt = rope_tables_both(maxT, HS);
    const vec &cs = rt.cs, &sn = rt.sn;
    float *d_cs = rt.d_cs, *d_sn = rt.d_sn;
    expect_close("rope_tables cos", d_cs, cs, 1e-7);
    expect_close("rope_tables sin", d_sn, sn, 1e-7);
    vec x = rnd((size_t)B * T * R);
    float *d_x = up(x);
    kcpu_rope_forward(x.data(), cs.data(), sn.data(), B, T, R, NH + NKV, HS, maxT, pos);
    kcuda_rope_forward(d_x, d_cs, d_sn, B, T, R, NH + NKV, HS, maxT, pos);
    expect_close("rope_forward (q and k heads)", d_x, x, 1e-6);
    kcpu_rope_backward(x.data(), cs.data(), sn.data(), B, T, R, NH + NKV, HS, maxT, pos);
    kcuda_rope_backward(d_x, d_cs, d_sn, B, T, R, NH + NKV, HS, maxT, pos);
    expect_close("rope_backward", d_x, x, 1e-6);
    dfree_all();
}

/* ---------------------------------------------------------------- bf16 activations (_a16) */

/* The element-wise _a16 entries (k_norm.cu, k_act.cu, k_rope.cu) are the fp32 kernels'
 * bodies with bf16 operands widened and bf16 outputs rounded once, so each is checked twice:
 * bit for bit against the fp32 entry on the widened inputs (its bf16 output rounded by the
 * CPU's recipe; the norm statistics and the accumulated fp32 gradients as they are), and
 * against the CPU kernel on the widened inputs: fp32 outputs within the fp32 tests' tolerance,
 * bf16 outputs (the CPU's fp32 result rounded) at most 1 bf16 ulp apart, since a different
 * fp32 summation order or tanhf/expf can put the two on either side of a rounding boundary.
 * Elements within the fp32 tolerance are not counted in ulps: near zero a bf16 ulp is smaller
 * than the fp32 kernels' own differences. */

static std::vector<uint16_t> a16_bits(const vec &x)
{
    std::vector<uint16_t> b(x.size());
    kcpu_f32_to_bf16(b.data(), x.data(), x.size());
    return b;
}
static vec a16_widen(const std::vector<uint16_t> &b)
{
    vec y(b.size());
    kcpu_bf16_to_f32(y.data(), b.data(), b.size());
    return y;
}
/* A bf16 pattern's position on the number line: neighbours differ by 1, +0 and -0 are 0. */
static long a16_ord(uint16_t b)
{
    return b & 0x8000u ? -(long)(b & 0x7fffu) : (long)b;
}

static void expect_a16_same(const char *what, const uint16_t *dev, const float *dev32, size_t n)
{
    std::vector<uint16_t> got = down(dev, n), ref = a16_bits(down(dev32, n));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i] != ref[i];
    printf("  %-44s %zu of %zu differ (tol 0)\n", what, bad, n);
    CHECK_MSG(bad == 0, "%s: %zu of %zu bf16 values differ", what, bad, n);
}

static void expect_f32_same(const char *what, const float *dev, const float *dev32, size_t n)
{
    vec got = down(dev, n), ref = down(dev32, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
    printf("  %-44s %zu of %zu differ (tol 0)\n", what, bad, n);
    CHECK_MSG(bad == 0, "%s: %zu of %zu values differ", what, bad, n);
}

static void expect_a16_ulps(const char *what, const uint16_t *dev, const vec &ref, double tol32)
{
    std::vector<uint16_t> got = down(dev, ref.size()), rb = a16_bits(ref);
    vec gw = a16_widen(got), rw = a16_widen(rb);
    long ulps = 0, counted = 0;
    double e = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        long u = labs(a16_ord(got[i]) - a16_ord(rb[i]));
        double d = fabs((double)gw[i] - (double)rw[i]);
        e = d > e || d != d ? d : e;
        ulps = u > ulps ? u : ulps;
        if (!(d <= tol32) && u > counted)
            counted = u;
    }
    printf("  %-44s max diff %.3g, %ld bf16 ulp (tol 1 ulp)\n", what, e, ulps);
    CHECK_MSG(counted <= 1 && e == e, "%s: %ld bf16 ulp apart (max diff %.3g)", what, counted, e);
}

static void a16_norms(void)
{
    const int N = 37, C = 201; /* C: not a multiple of the warp's 32 columns */
    vec x = rnd((size_t)N * C), w = rnd(C), bias = rnd(C), zero(C, 0.0f);
    for (auto &v : x)
        v = v * 3.0f + 2.0f;
    vec out((size_t)N * C), mean(N), rstd(N);
    float *d_x = up(x), *d_w = up(w), *d_b = up(bias);
    float *d_o32 = (float *)dalloc(out.size() * 4);
    uint16_t *d_o16 = (uint16_t *)dalloc(out.size() * 2);
    float *d_m32 = (float *)dalloc(N * 4), *d_r32 = (float *)dalloc(N * 4);
    float *d_m16 = (float *)dalloc(N * 4), *d_r16 = (float *)dalloc(N * 4);
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        const char *tag = with_bias ? "" : " (bias NULL)";
        char what[96];
        const float *db = with_bias ? d_b : NULL;
        kcpu_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(),
                               with_bias ? bias.data() : zero.data(), N, C, 1e-5f);
        kcuda_layernorm_forward(d_o32, d_m32, d_r32, d_x, d_w, db, N, C, 1e-5f);
        kcuda_layernorm_forward_a16(d_o16, d_m16, d_r16, d_x, d_w, db, N, C, 1e-5f);
        snprintf(what, sizeof what, "layernorm_a16 mean = fp32's%s", tag);
        expect_f32_same(what, d_m16, d_m32, N);
        snprintf(what, sizeof what, "layernorm_a16 rstd = fp32's%s", tag);
        expect_f32_same(what, d_r16, d_r32, N);
        snprintf(what, sizeof what, "layernorm_a16 out = r(fp32's)%s", tag);
        expect_a16_same(what, d_o16, d_o32, out.size());
        snprintf(what, sizeof what, "layernorm_a16 out vs CPU%s", tag);
        expect_a16_ulps(what, d_o16, out, 1e-5);
    }
    /* Inference: no statistics saved, the same output. */
    uint16_t *d_o16b = (uint16_t *)dalloc(out.size() * 2);
    kcuda_layernorm_forward_a16(d_o16b, NULL, NULL, d_x, d_w, d_b, N, C, 1e-5f);
    expect_a16_same("layernorm_a16 out, mean/rstd NULL", d_o16b, d_o32, out.size());

    kcpu_rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
    kcuda_rmsnorm_forward(d_o32, d_r32, d_x, d_w, N, C, 1e-6f);
    kcuda_rmsnorm_forward_a16(d_o16, d_r16, d_x, d_w, N, C, 1e-6f);
    expect_f32_same("rmsnorm_a16 rstd = fp32's", d_r16, d_r32, N);
    expect_a16_same("rmsnorm_a16 out = r(fp32's)", d_o16, d_o32, out.size());
    expect_a16_ulps("rmsnorm_a16 out vs CPU", d_o16, out, 1e-5);
    kcuda_rmsnorm_forward_a16(d_o16b, NULL, d_x, d_w, N, C, 1e-6f);
    expect_a16_same("rmsnorm_a16 out, rstd NULL", d_o16b, d_o32, out.size());
    dfree_all();
}

static void a16_activations(void)
{
    const int N = 29, H = 131;
    const size_t n = (size_t)N * H; /* odd: not a multiple of any vector width */
    std::vector<uint16_t> xb = a16_bits(rnd(n, 4.0f));
    vec xw = a16_widen(xb), out(n), dout = rnd(n), dx = rnd(n);
    uint16_t *d_xb = up(xb), *d_o16 = (uint16_t *)dalloc(n * 2);
    float *d_xw = up(xw), *d_o32 = (float *)dalloc(n * 4), *d_dout = up(dout);
    float *d_dx16 = up(dx), *d_dx32 = up(dx); /* non-zero: the backward accumulates */
    kcpu_gelu_forward(out.data(), xw.data(), n);
    kcuda_gelu_forward(d_o32, d_xw, n);
    kcuda_gelu_forward_a16(d_o16, d_xb, n);
    expect_a16_same("gelu_forward_a16 = r(fp32's)", d_o16, d_o32, n);
    expect_a16_ulps("gelu_forward_a16 vs CPU", d_o16, out, 1e-5);
    kcpu_gelu_backward(dx.data(), xw.data(), dout.data(), n);
    kcuda_gelu_backward(d_dx32, d_xw, d_dout, n);
    kcuda_gelu_backward_a16(d_dx16, d_xb, d_dout, n);
    expect_f32_same("gelu_backward_a16 = fp32's", d_dx16, d_dx32, n);
    expect_close("gelu_backward_a16 vs CPU", d_dx16, dx, 1e-5);

    std::vector<uint16_t> gb = a16_bits(rnd(2 * n, 4.0f));
    vec gw = a16_widen(gb), dgu = rnd(2 * n);
    uint16_t *d_gb = up(gb);
    float *d_gw = up(gw), *d_dg16 = up(dgu), *d_dg32 = up(dgu);
    kcpu_swiglu_forward(out.data(), gw.data(), N, H);
    kcuda_swiglu_forward(d_o32, d_gw, N, H);
    kcuda_swiglu_forward_a16(d_o16, d_gb, N, H);
    expect_a16_same("swiglu_forward_a16 = r(fp32's)", d_o16, d_o32, n);
    expect_a16_ulps("swiglu_forward_a16 vs CPU", d_o16, out, 1e-5);
    kcpu_swiglu_backward(dgu.data(), dout.data(), gw.data(), N, H);
    kcuda_swiglu_backward(d_dg32, d_dout, d_gw, N, H);
    kcuda_swiglu_backward_a16(d_dg16, d_dout, d_gb, N, H);
    expect_f32_same("swiglu_backward_a16 = fp32's", d_dg16, d_dg32, 2 * n);
    expect_close("swiglu_backward_a16 vs CPU", d_dg16, dgu, 1e-5);
    dfree_all();
}

/* On the qkv layout: rows of (NH + 2·NKV)·HS, the q and k heads rotated, v left alone. */
static void a16_rope(void)
{
    const int B = 2, T = 11, NH = 4, NKV = 2, HS = 48, maxT = 40, pos = 7;
    const int R = (NH + 2 * NKV) * HS;
    rope_tabs rt = rope_tables_both(maxT, HS);
    const vec &cs = rt.cs, &sn = rt.sn;
    float *d_cs = rt.d_cs, *d_sn = rt.d_sn;
    std::vector<uint16_t> qb = a16_bits(rnd((size_t)B * T * R));
    vec qw = a16_widen(qb);
    uint16_t *d_qb = up(qb);
    float *d_qw = up(qw);
    kcpu_rope_forward(qw.data(), cs.data(), sn.data(), B, T, R, NH + NKV, HS, maxT, pos);
    kcuda_rope_forward(d_qw, d_cs, d_sn, B, T, R, NH + NKV, HS, maxT, pos);
    kcuda_rope_forward_a16(d_qb, d_cs, d_sn, B, T, R, NH + NKV, HS, maxT, pos);
    expect_a16_same("rope_forward_a16 = r(fp32's)", d_qb, d_qw, qb.size());
    expect_a16_ulps("rope_forward_a16 vs CPU (q, k rotated)", d_qb, qw, 1e-6);
    std::vector<uint16_t> got = down(d_qb, qb.size());
    size_t moved = 0;
    for (int r = 0; r < B * T; r++)
        for (int c = (NH + NKV) * HS; c < R; c++)
            moved += got[(size_t)r * R + c] != qb[(size_t)r * R + c];
    CHECK_MSG(moved == 0, "rope_forward_a16 changed %zu v values", moved);
    dfree_all();
}

static void test_a16_elementwise(void)
{
    a16_norms();
    a16_activations();
    a16_rope();
}

/* ---------------------------------------------------------------- attention */

static void flash_case(int B, int T, int NH, int NKV, int HS)
{
    char what[96];
    const int R = (NH + 2 * NKV) * HS, O = NH * HS;
    vec qkv = rnd((size_t)B * T * R), dout = rnd((size_t)B * T * O);
    vec out((size_t)B * T * O), lse((size_t)B * NH * T), dqkv = rnd((size_t)B * T * R, 0.1f);
    float *d_qkv = up(qkv), *d_dout = up(dout), *d_dqkv = up(dqkv);
    float *d_out = (float *)dalloc(out.size() * 4), *d_lse = (float *)dalloc(lse.size() * 4);
    kcpu_flash_attention_forward(out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);
    kcuda_flash_attention_forward(d_out, d_lse, d_qkv, B, T, NH, NKV, HS);
    snprintf(what, sizeof what, "flash fwd out B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    expect_close(what, d_out, out, 1e-5);
    snprintf(what, sizeof what, "flash fwd lse B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    expect_close(what, d_lse, lse, 1e-5);
    float *d_out2 = (float *)dalloc(out.size() * 4); /* without lse: the same bits */
    kcuda_flash_attention_forward(d_out2, NULL, d_qkv, B, T, NH, NKV, HS);
    CHECK_MSG(down(d_out2, out.size()) == down(d_out, out.size()),
              "flash fwd without lse differs B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    kcpu_flash_attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(),
                                  B, T, NH, NKV, HS);
    kcuda_flash_attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_lse, B, T, NH, NKV, HS);
    snprintf(what, sizeof what, "flash bwd dqkv B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    expect_close(what, d_dqkv, dqkv, 1e-4);
    dfree_all();
}

static void test_flash_attention(void)
{
    flash_case(2, 70, 4, 2, 64);   /* GQA, T not a multiple of the tiles */
    flash_case(1, 33, 3, 3, 128);  /* MHA, largest head size */
    flash_case(2, 17, 4, 1, 48);   /* MQA, padded head size */
    flash_case(1, 130, 2, 2, 32);  /* several key tiles per query tile */
    flash_case(1, 1, 2, 1, 16);    /* a single token */
}

static void test_flash_attention_bf16(void)
{
    const int B = 2, T = 45, NH = 4, NKV = 2, HS = 64;
    const int R = (NH + 2 * NKV) * HS, O = NH * HS;
    vec qkv = bf16_round(rnd((size_t)B * T * R)), dout = bf16_round(rnd((size_t)B * T * O));
    vec out((size_t)B * T * O), lse((size_t)B * NH * T), dqkv((size_t)B * T * R, 0.0f);
    kcpu_flash_attention_forward(out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);
    __nv_bfloat16 *d_qkv = up(to_bf16(qkv)), *d_dout = up(to_bf16(dout));
    __nv_bfloat16 *d_dqkv = up(to_bf16(dqkv));
    __nv_bfloat16 *d_out = (__nv_bfloat16 *)dalloc(out.size() * 2);
    float *d_lse = (float *)dalloc(lse.size() * 4);
    kcuda_flash_attention_forward_bf16(d_out, d_lse, d_qkv, B, T, NH, NKV, HS);
    vec got = from_bf16(down(d_out, out.size()));
    double e = max_err(got, out);
    printf("  %-44s max err %.3g (tol %.3g)\n", "flash fwd bf16 out", e, 1e-2);
    CHECK(e <= 1e-2);
    expect_close("flash fwd bf16 lse", d_lse, lse, 1e-4);
    /* The backward reads the bf16 output, so the reference uses the same rounded output. */
    vec out_r = bf16_round(out);
    kcpu_flash_attention_backward(dqkv.data(), dout.data(), qkv.data(), out_r.data(), lse.data(),
                                  B, T, NH, NKV, HS);
    kcuda_flash_attention_backward_bf16(d_dqkv, d_dout, d_qkv, d_out, d_lse, B, T, NH, NKV, HS);
    got = from_bf16(down(d_dqkv, dqkv.size()));
    e = max_err(got, dqkv);
    double big = 1.0; /* bf16 keeps 8 bits: the tolerance scales with the largest gradient */
    for (float r : dqkv)
        big = fmax(big, fabs(r));
    printf("  %-44s max err %.3g (tol %.3g)\n", "flash bwd bf16 dqkv", e, 1e-2 * big);
    CHECK(e <= 1e-2 * big);
    dfree_all();
}

/* The mean time (ms) of one fwd() and of one bwd() call over `reps` each, timed with events on
 * the plugin's stream after `warmups` untimed rounds of both. */
template <typename F, typename G>
static void time_fwd_bwd(F fwd, G bwd, int reps, int warmups, double *fwd_ms, double *bwd_ms)
{
    for (int w = 0; w < warmups; w++) {
        fwd();
        bwd();
    }
    cudaEvent_t ev[3];
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaEventCreate(&ev[i]));
    CUDA_CHECK(cudaEventRecord(ev[0], cuda_stream()));
    for (int i = 0; i < reps; i++)
        fwd();
    CUDA_CHECK(cudaEventRecord(ev[1], cuda_stream()));
    for (int i = 0; i < reps; i++)
        bwd();
    CUDA_CHECK(cudaEventRecord(ev[2], cuda_stream()));
    CUDA_CHECK(cudaEventSynchronize(ev[2]));
    float f = 0.0f, b = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&f, ev[0], ev[1]));
    CUDA_CHECK(cudaEventElapsedTime(&b, ev[1], ev[2]));
    *fwd_ms = f / reps;
    *bwd_ms = b / reps;
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaEventDestroy(ev[i]));
}

/* ---------------------------------------------------------------- tensor-core attention */

/* kcuda_flash_attention_*_tc (k_attention_tc.cu) round q, k, v and dO to bf16 on load and the
 * probabilities P and dS to bf16 for their products; everything else is fp32. Two checks:
 *  (a) against the fp32 CPU kernels on inputs that are already bf16 values (so the loads round
 *      nothing) and, for the backward, the CPU's out and lse: only the P and dS roundings
 *      remain, each at most u = 2^-8 relative (bf16 keeps 8 significand bits). First-order
 *      bounds, per element:
 *        out:  |Σ_j (bf16(p_j) - p_j)·v_j| / Σ_j p_j <= u·max|v|   (the sum l adds fp32 p)
 *        dq_t: u·Σ_j |dS_tj|·|k_j| <= u·max|k|·max_t Σ_j |dS_tj|
 *        dk_j: u·max|q|·max_j Σ_{h,t} |dS_tj|,   dv_j: u·max|dO|·max_j Σ_{h,t} P_tj
 *      (dS_tj = scale·P_tj·(dP_tj - D_t); the sums are computed here in double). The
 *      tolerances are twice these bounds (fp32 differences in S, P and D: tensor-core fp32
 *      accumulation, exp2f) plus 1e-5, and 1e-4 absolute on lse (fp32 in both, from scores
 *      of magnitude <= ~3 summed in another order).
 *  (b) against the FMA kernels on the device on raw fp32 inputs (the input roundings too):
 *      relative Frobenius error <= 2^-5 (8u) for out, lse and dqkv; a masking or indexing
 *      error gives O(0.1 .. 1). */
static const double TC_U = 1.0 / 256.0;

/* Max |got - ref| over columns [c0, c1) of rows of ld floats, printed beside tol. */
static void expect_cols(const char *what, const vec &got, const vec &ref, size_t ld, size_t c0,
                        size_t c1, double tol)
{
    double e = 0.0;
    for (size_t r = 0; r < ref.size() / ld; r++)
        for (size_t c = c0; c < c1; c++) {
            double d = fabs((double)got[r * ld + c] - (double)ref[r * ld + c]);
            if (!(d <= e))
                e = d == d ? d : INFINITY;
        }
    printf("  %-44s max err %.3g (tol %.3g)\n", what, e, tol);
    CHECK_MSG(e <= tol, "%s: max err %.3g > tol %.3g", what, e, tol);
}

/* ||got - ref|| / ||ref|| (Frobenius; NaN counts as infinite). */
static double rel_err(const vec &got, const vec &ref)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    double r = sqrt(num / (den > 0.0 ? den : 1.0));
    return r == r ? r : INFINITY;
}

static double max_abs_cols(const vec &x, size_t ld, size_t c0, size_t c1)
{
    double m = 0.0;
    for (size_t r = 0; r < x.size() / ld; r++)
        for (size_t c = c0; c < c1; c++)
            m = fmax(m, fabs(x[r * ld + c]));
    return m;
}

/* The sums of check (a): max_t Σ_j |dS_tj| (sq), max over (b, kv head, j) of Σ_{h,t} |dS_tj|
 * (sk) and of Σ_{h,t} P_tj (sv), from the CPU's out and lse, in double. */
static void tc_grad_sums(const vec &qkv, const vec &dout, const vec &out, const vec &lse, int B,
                         int T, int NH, int NKV, int HS, double *sq, double *sk, double *sv)
{
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const double scale = 1.0 / sqrt((double)HS);
    std::vector<double> ck((size_t)B * NKV * T, 0.0), cv((size_t)B * NKV * T, 0.0);
    *sq = 0.0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int g = h / (NH / NKV);
                const float *q = &qkv[((size_t)b * T + t) * R + (size_t)h * HS];
                const float *go = &dout[((size_t)b * T + t) * O + (size_t)h * HS];
                const float *o = &out[((size_t)b * T + t) * O + (size_t)h * HS];
                double D = 0.0, row = 0.0, L = lse[((size_t)b * NH + h) * T + t];
                for (int d = 0; d < HS; d++)
                    D += (double)go[d] * o[d];
                for (int j = 0; j <= t; j++) {
                    const float *k = &qkv[((size_t)b * T + j) * R + (size_t)(NH + g) * HS];
                    const float *v = k + (size_t)NKV * HS;
                    double s = 0.0, dp = 0.0;
                    for (int d = 0; d < HS; d++) {
                        s += (double)q[d] * k[d];
                        dp += (double)go[d] * v[d];
                    }
                    double p = exp(scale * s - L), ds = fabs(scale * p * (dp - D));
                    row += ds;
                    ck[((size_t)b * NKV + g) * T + j] += ds;
                    cv[((size_t)b * NKV + g) * T + j] += p;
                }
                *sq = fmax(*sq, row);
            }
    *sk = *sv = 0.0;
    for (size_t i = 0; i < ck.size(); i++) {
        *sk = fmax(*sk, ck[i]);
        *sv = fmax(*sv, cv[i]);
    }
}

/* The two tensor-core implementations of the flash entries, checked the same way: WMMA
 * (SCALEWISE_CUDA_ATTENTION=wmma) and PTX mma.sync (the 16-bit plans' default). */
struct tc_impl {
    const char *name;
    void (*fwd)(float *out, float *lse, const float *qkv, int B, int T, int NH, int NKV, int HS);
    void (*bwd)(float *dqkv, const float *dout, const float *qkv, const float *out,
                const float *lse, int B, int T, int NH, int NKV, int HS);
};
static const tc_impl TC_WMMA = {"tc", kcuda_flash_attention_forward_tc,
                                kcuda_flash_attention_backward_tc};
static const tc_impl TC_MMA = {"mma", kcuda_flash_attention_forward_mma,
                               kcuda_flash_attention_backward_mma};

/* Check (a) for one shape. */
static void tc_vs_cpu(const tc_impl &im, int B, int T, int NH, int NKV, int HS)
{
    char what[96];
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    vec qkv = bf16_round(rnd((size_t)B * T * R)), dout = bf16_round(rnd((size_t)B * T * O));
    vec out((size_t)B * T * O), lse((size_t)B * NH * T), dqkv = rnd((size_t)B * T * R, 0.1f);
    float *d_qkv = up(qkv), *d_dout = up(dout), *d_dqkv = up(dqkv);
    float *d_out = (float *)dalloc(out.size() * 4), *d_lse = (float *)dalloc(lse.size() * 4);
    kcpu_flash_attention_forward(out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);
    im.fwd(d_out, d_lse, d_qkv, B, T, NH, NKV, HS);
    double tol = TC_U * max_abs_cols(qkv, R, (NH + NKV) * HS, R) + 1e-4;
    snprintf(what, sizeof what, "%s fwd out B%d T%d NH%d NKV%d HS%d", im.name, B, T, NH, NKV,
             HS);
    expect_cols(what, down(d_out, out.size()), out, O, 0, O, tol);
    snprintf(what, sizeof what, "%s fwd lse B%d T%d NH%d NKV%d HS%d", im.name, B, T, NH, NKV,
             HS);
    expect_close(what, d_lse, lse, 1e-4);
    /* Without lse (a prefill): the same output, bit for bit. */
    float *d_out2 = (float *)dalloc(out.size() * 4);
    im.fwd(d_out2, NULL, d_qkv, B, T, NH, NKV, HS);
    CHECK_MSG(down(d_out2, out.size()) == down(d_out, out.size()),
              "%s fwd without lse differs from the fwd with it", im.name);

    double sq, sk, sv;
    tc_grad_sums(qkv, dout, out, lse, B, T, NH, NKV, HS, &sq, &sk, &sv);
    float *c_out = up(out), *c_lse = up(lse); /* the backward reads the CPU's out and lse */
    kcpu_flash_attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(),
                                  B, T, NH, NKV, HS);
    im.bwd(d_dqkv, d_dout, d_qkv, c_out, c_lse, B, T, NH, NKV, HS);
    vec got = down(d_dqkv, dqkv.size());
    size_t q1 = (size_t)NH * HS, k1 = (size_t)(NH + NKV) * HS;
    double mq = max_abs_cols(qkv, R, 0, q1), mk = max_abs_cols(qkv, R, q1, k1);
    double mo = max_abs_cols(dout, O, 0, O);
    snprintf(what, sizeof what, "%s bwd dq B%d T%d NH%d NKV%d HS%d", im.name, B, T, NH, NKV,
             HS);
    expect_cols(what, got, dqkv, R, 0, q1, 2.0 * TC_U * mk * sq + 1e-5);
    snprintf(what, sizeof what, "%s bwd dk B%d T%d NH%d NKV%d HS%d", im.name, B, T, NH, NKV,
             HS);
    expect_cols(what, got, dqkv, R, q1, k1, 2.0 * TC_U * mq * sk + 1e-5);
    snprintf(what, sizeof what, "%s bwd dv B%d T%d NH%d NKV%d HS%d", im.name, B, T, NH, NKV,
             HS);
    expect_cols(what, got, dqkv, R, k1, R, 2.0 * TC_U * mo * sv + 1e-5);
    dfree_all();
}

/* Check (b) for one shape: relative errors of `im` against the FMA kernels; *fwd_ms and
 * *bwd_ms (may be NULL) receive the mean time of `reps` further calls of each (im, then FMA). */
static void tc_vs_fma(const tc_impl &im, int B, int T, int NH, int NKV, int HS, int reps,
                      double fwd_ms[2], double bwd_ms[2])
{
    char what[96];
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    vec qkv = rnd((size_t)B * T * R), dout = rnd((size_t)B * T * O);
    float *d_qkv = up(qkv), *d_dout = up(dout);
    float *o_f = (float *)dalloc(O * B * T * 4), *o_t = (float *)dalloc(O * B * T * 4);
    float *l_f = (float *)dalloc((size_t)B * NH * T * 4);
    float *l_t = (float *)dalloc((size_t)B * NH * T * 4);
    float *g_f = (float *)dalloc(R * B * T * 4), *g_t = (float *)dalloc(R * B * T * 4);
    CUDA_CHECK(cudaMemset(g_f, 0, R * B * T * 4));
    CUDA_CHECK(cudaMemset(g_t, 0, R * B * T * 4));
    /* kcuda_flash_attention_* are the FMA kernels (the fp32 plans' attention). */
    kcuda_flash_attention_forward(o_f, l_f, d_qkv, B, T, NH, NKV, HS);
    im.fwd(o_t, l_t, d_qkv, B, T, NH, NKV, HS);
    kcuda_flash_attention_backward(g_f, d_dout, d_qkv, o_f, l_f, B, T, NH, NKV, HS);
    im.bwd(g_t, d_dout, d_qkv, o_f, l_f, B, T, NH, NKV, HS);
    vec of = down(o_f, O * B * T), ot = down(o_t, O * B * T);
    vec lf = down(l_f, (size_t)B * NH * T), lt = down(l_t, (size_t)B * NH * T);
    vec gf = down(g_f, R * B * T), gt = down(g_t, R * B * T);
    /* The 16-bit plans' entries take the default path (main() clears SCALEWISE_CUDA_ATTENTION):
     * bit for bit the mma.sync kernels' results, or WMMA's where those are unsupported. */
    float *o_h = (float *)dalloc(O * B * T * 4), *l_h = (float *)dalloc((size_t)B * NH * T * 4);
    float *g_h = (float *)dalloc(R * B * T * 4);
    CUDA_CHECK(cudaMemset(g_h, 0, R * B * T * 4));
    kcuda_flash_attention_forward_16(o_h, l_h, d_qkv, B, T, NH, NKV, HS);
    kcuda_flash_attention_backward_16(g_h, d_dout, d_qkv, o_f, l_f, B, T, NH, NKV, HS);
    vec oh = down(o_h, O * B * T), gh = down(g_h, R * B * T);
    const tc_impl &def = kcuda_flash_attention_mma_supported(HS) ? TC_MMA : TC_WMMA;
    if (im.fwd == def.fwd)
        CHECK_MSG(memcmp(oh.data(), ot.data(), oh.size() * 4) == 0 &&
                      memcmp(gh.data(), gt.data(), gh.size() * 4) == 0,
                  "flash_attention_*_16 B%d T%d HS%d: not the %s kernels' results", B, T, HS,
                  def.name);
    const vec *tc[3] = {&ot, &lt, &gt}, *fma[3] = {&of, &lf, &gf};
    const char *name[3] = {"out", "lse", "dqkv"};
    for (int i = 0; i < 3; i++) {
        double e = rel_err(*tc[i], *fma[i]);
        snprintf(what, sizeof what, "%s vs fma %s B%d T%d NH%d NKV%d HS%d", im.name, name[i], B,
                 T, NH, NKV, HS);
        printf("  %-44s rel err %.3g (tol %.3g), max abs %.3g\n", what, e, 1.0 / 32.0,
               max_err(*tc[i], *fma[i]));
        CHECK_MSG(e <= 1.0 / 32.0, "%s: rel err %.3g > 2^-5", what, e);
    }
    if (reps > 0 && fwd_ms && bwd_ms) {
        time_fwd_bwd([&] { im.fwd(o_t, l_t, d_qkv, B, T, NH, NKV, HS); },
                     [&] { im.bwd(g_t, d_dout, d_qkv, o_f, l_f, B, T, NH, NKV, HS); }, reps, 0,
                     &fwd_ms[0], &bwd_ms[0]);
        time_fwd_bwd([&] { kcuda_flash_attention_forward(o_f, l_f, d_qkv, B, T, NH, NKV, HS); },
                     [&] {
                         kcuda_flash_attention_backward(g_f, d_dout, d_qkv, o_f, l_f, B, T, NH,
                                                        NKV, HS);
                     },
                     reps, 0, &fwd_ms[1], &bwd_ms[1]);
    }
    dfree_all();
}

static void a16_attention_timing(void); /* below, with the a16 tests */

static void test_flash_attention_tc(void)
{
    const cudaDeviceProp *prop = cuda_props();
    if (!kcuda_flash_attention_tc_supported(64) || !kcuda_flash_attention_tc_supported(128)) {
        printf("  tensor-core attention: skipped: unsupported here (sm_%d%d, %zu bytes of "
               "opt-in shared memory per block)\n",
               prop->major, prop->minor, (size_t)prop->sharedMemPerBlockOptin);
        return;
    }
    const tc_impl *impls[2] = {&TC_WMMA, &TC_MMA};
    int n_impl = kcuda_flash_attention_mma_supported(64) && kcuda_flash_attention_mma_supported(128)
                     ? 2
                     : 1;
    const int Ts[5] = {1, 17, 64, 200, 1024};
    const int heads[3][3] = {{4, 4, 64}, {8, 2, 64}, {4, 2, 128}}; /* NH, NKV, HS */
    for (int m = 0; m < n_impl; m++) {
        const tc_impl &im = *impls[m];
        int before = harness_failed;
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < 5; i++) {
                tc_vs_cpu(im, 2, Ts[i], heads[s][0], heads[s][1], heads[s][2]);
                tc_vs_fma(im, 2, Ts[i], heads[s][0], heads[s][1], heads[s][2], 0, NULL, NULL);
            }
        printf("%s attention vs CPU and FMA kernels, 15 shapes: max error within tolerance in "
               "%s\n",
               im.name, harness_failed == before ? "every check" : "NOT every check (see above)");
        /* GPT-2 124M's attention at micro-batch 8: agreement and time of both device paths.
         * FLOPs of causal attention: forward 4·B·NH·HS·T(T+1)/2 (QKᵀ and PV), backward 2.5×
         * that (FlashAttention-2's convention; these kernels recompute QKᵀ twice). */
        const int B = 8, T = 1024, NH = 12, HS = 64;
        double fwd_ms[2] = {0, 0}, bwd_ms[2] = {0, 0};
        before = harness_failed;
        tc_vs_fma(im, B, T, NH, NH, HS, 5, fwd_ms, bwd_ms);
        double fl = 4.0 * B * NH * HS * (double)T * (T + 1) / 2.0;
        printf("%s attention B%d T%d NH%d HS%d: max error vs FMA %s; forward %s %.3f ms (%.1f "
               "TFLOP/s) fma %.3f ms; backward %s %.3f ms (%.1f TFLOP/s) fma %.3f ms\n",
               im.name, B, T, NH, HS,
               harness_failed == before ? "within 2^-5 relative" : "TOO LARGE", im.name,
               fwd_ms[0], fl / (fwd_ms[0] * 1e9), fwd_ms[1], im.name, bwd_ms[0],
               2.5 * fl / (bwd_ms[0] * 1e9), bwd_ms[1]);
    }
    if (n_impl < 2)
        printf("  mma attention: skipped: unsupported here (%zu bytes of opt-in shared memory "
               "per block)\n",
               (size_t)prop->sharedMemPerBlockOptin);
    a16_attention_timing();
}

/* The time of the bf16-activation attention entry (the default dispatch: the fastest of the
 * wide, pipe and mma.sync kernels, tuned on its first call) beside each of those families pinned
 * and the fp32-input 16-bit entry, at GPT-2 124M's shape, micro-batch 8; then what the entry's
 * tuning measured. Printed only (a benchmark, not a check). */
static void a16_attention_timing(void)
{
    const int B = 8, T = 1024, NH = 12, HS = 64, reps = 5;
    const size_t R = (size_t)3 * NH * HS, O = (size_t)NH * HS, N = (size_t)B * T;
    vec qkv = rnd(N * R), dout = rnd(N * O);
    std::vector<uint16_t> q16(qkv.size());
    kcpu_f32_to_bf16(q16.data(), qkv.data(), qkv.size());
    float *d_qkv = up(qkv), *d_dout = up(dout), *o32 = (float *)dalloc(N * O * 4);
    float *lse = (float *)dalloc((size_t)B * NH * T * 4), *g = (float *)dalloc(N * R * 4);
    uint16_t *d_q16 = up(q16), *o16 = (uint16_t *)dalloc(N * O * 2);
    size_t sb = kcuda_flash_attention_pipe_scratch_bytes(B, T, NH, HS);
    void *scr = dalloc(sb);
    /* fp32 input, the a16 entry, then wide, pipe, mma.sync (0: unsupported here) */
    double ms[5][2] = {{0.0, 0.0}, {0.0, 0.0}, {0.0, 0.0}, {0.0, 0.0}, {0.0, 0.0}};
    kcuda_flash_attention_tuning_reset(); /* the entry tunes this shape in its warm-up */
    time_fwd_bwd([&] { kcuda_flash_attention_forward_16(o32, lse, d_qkv, B, T, NH, NH, HS); },
                 [&] {
                     kcuda_flash_attention_backward_16(g, d_dout, d_qkv, o32, lse, B, T, NH, NH,
                                                       HS);
                 },
                 reps, reps, &ms[0][0], &ms[0][1]);
    time_fwd_bwd([&] { kcuda_flash_attention_forward_a16(o16, lse, d_q16, B, T, NH, NH, HS); },
                 [&] {
                     kcuda_flash_attention_backward_a16(g, d_dout, d_q16, o16, lse, scr, sb, B, T,
                                                        NH, NH, HS);
                 },
                 reps, reps, &ms[1][0], &ms[1][1]);
    if (kcuda_flash_attention_wide_supported(HS))
        time_fwd_bwd(
            [&] { kcuda_flash_attention_forward_wide_a16(o16, lse, d_q16, B, T, NH, NH, HS); },
            [&] {
                kcuda_flash_attention_backward_wide_a16(g, d_dout, d_q16, o16, lse, scr, sb, B, T,
                                                        NH, NH, HS);
            },
            reps, reps, &ms[2][0], &ms[2][1]);
    if (kcuda_flash_attention_pipe_supported(HS))
        time_fwd_bwd(
            [&] { kcuda_flash_attention_forward_pipe_a16(o16, lse, d_q16, B, T, NH, NH, HS); },
            [&] {
                kcuda_flash_attention_backward_pipe_a16(g, d_dout, d_q16, o16, lse, scr, sb, B, T,
                                                        NH, NH, HS);
            },
            reps, reps, &ms[3][0], &ms[3][1]);
    if (kcuda_flash_attention_mma_supported(HS))
        time_fwd_bwd(
            [&] { kcuda_flash_attention_forward_mma_a16(o16, lse, d_q16, B, T, NH, NH, HS); },
            [&] {
                kcuda_flash_attention_backward_mma_a16(g, d_dout, d_q16, o16, lse, B, T, NH, NH,
                                                       HS);
            },
            reps, reps, &ms[4][0], &ms[4][1]);
    /* Causal FLOPs: forward 4·B·NH·HS·T(T+1)/2, backward 2.5 times that (the backward's own
     * count; the kernels recompute the scores in both of their passes). */
    double fl = 4.0 * B * NH * HS * (double)T * (T + 1) / 2.0;
    auto tf = [&](double f, double m) { return m > 0.0 ? f / (m * 1e9) : 0.0; };
    printf("attention a16 B%d T%d NH%d HS%d: entry forward %.3f ms (%.0f TFLOP/s), backward %.3f "
           "ms (%.0f TFLOP/s); wide %.3f / %.3f (%.0f / %.0f TFLOP/s), pipe %.3f / %.3f, mma.sync "
           "%.3f / %.3f, fp32 input %.3f / %.3f\n",
           B, T, NH, HS, ms[1][0], tf(fl, ms[1][0]), ms[1][1], tf(2.5 * fl, ms[1][1]), ms[2][0],
           ms[2][1], tf(fl, ms[2][0]), tf(2.5 * fl, ms[2][1]), ms[3][0], ms[3][1], ms[4][0],
           ms[4][1], ms[0][0], ms[0][1]);
    char buf[1024];
    kcuda_flash_attention_tuning(buf, sizeof buf);
    for (char *line = buf, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            break;
        printf("attention a16 tuned %.*s\n", (int)(end - line), line);
    }
    dfree_all();
}

/* ---------------------------------------------------------------- flash attention, a16 */

/* kcuda_flash_attention_*_a16 read bf16 q, k, v (and O in the backward's D_t = dO_t·O_t) and
 * write a bf16 O; lse, dO and dqkv are fp32. Each kernel variant is the fp32-input kernel's body
 * with the element type of qkv and out changed, so on bf16 inputs:
 *  - forward: O is the fp32-input kernel's O rounded to bf16 and lse is its lse, bit for bit
 *    (the tensor-core kernels round q, k, v to bf16 on load either way);
 *  - backward: bit for bit the fp32-input kernel's given O = bf16(O_16) widened; given the
 *    unrounded O_16 it differs only through D: |ΔD_t| <= u·Σ_d |dO_td·O_td| (one rounding to
 *    nearest, u = 2^-8), and with P unchanged and Σ_j P_tj = 1, |Δdq_t| <= scale·|ΔD|·max|k|,
 *    |Δdk_j| <= scale·|ΔD|·max|q|·Σ_{h,t} P_tj, Δdv = 0. The tensor-core kernels round dS to
 *    bf16, and a changed dS may round the other way: each such flip is at most 2u·|dS|
 *    relative, so their bound adds check (a)'s 2u·max|k|·max_t Σ_j |dS_tj| (dk: with q, sk).
 *    Tolerances: twice the D term plus that, plus 1e-5;
 *  - against the CPU kernels: the forward within the fp32-input kernel's tolerance (tensor
 *    cores: check (a)'s; FMA: flash_case's 1e-5) plus O's rounding (u·max|out|), lse as
 *    there; the backward given the CPU's lse and bf16-rounded out (the CPU reading that out
 *    widened) within the same tolerances as the fp32-input kernel.
 * The variants: mma.sync and WMMA through their own entries; the FMA kernels (and the default
 * dispatch) through kcuda_flash_attention_*_a16 against *_16 at head sizes the tensor-core
 * kernels do not take (16, 48, 96: padded to 32, 64, 128) and at HS 64 (the default path). */
struct a16_impl {
    const char *name;
    void (*fwd)(float *out, float *lse, const float *qkv, int B, int T, int NH, int NKV, int HS);
    void (*bwd)(float *dqkv, const float *dout, const float *qkv, const float *out,
                const float *lse, int B, int T, int NH, int NKV, int HS);
    void (*fwd_a16)(uint16_t *out, float *lse, const uint16_t *qkv, int B, int T, int NH, int NKV,
                    int HS);
    void (*bwd_a16)(float *dqkv, const float *dout, const uint16_t *qkv, const uint16_t *out,
                    const float *lse, void *scratch, size_t scratch_bytes, int B, int T, int NH,
                    int NKV, int HS);
};
/* The mma.sync and WMMA a16 backward entries take no scratch. */
static void mma_bwd_a16(float *dqkv, const float *dout, const uint16_t *qkv, const uint16_t *out,
                        const float *lse, void *, size_t, int B, int T, int NH, int NKV, int HS)
{
    kcuda_flash_attention_backward_mma_a16(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}
static void tc_bwd_a16(float *dqkv, const float *dout, const uint16_t *qkv, const uint16_t *out,
                       const float *lse, void *, size_t, int B, int T, int NH, int NKV, int HS)
{
    kcuda_flash_attention_backward_tc_a16(dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS);
}
static const a16_impl A16_MMA = {"mma", kcuda_flash_attention_forward_mma,
                                 kcuda_flash_attention_backward_mma,
                                 kcuda_flash_attention_forward_mma_a16, mma_bwd_a16};
static const a16_impl A16_WMMA = {"tc", kcuda_flash_attention_forward_tc,
                                  kcuda_flash_attention_backward_tc,
                                  kcuda_flash_attention_forward_tc_a16, tc_bwd_a16};
/* The pipelined kernels against the mma.sync ones with fp32 inputs: the same bits. */
static const a16_impl A16_PIPE = {"pipe", kcuda_flash_attention_forward_mma,
                                  kcuda_flash_attention_backward_mma,
                                  kcuda_flash_attention_forward_pipe_a16,
                                  kcuda_flash_attention_backward_pipe_a16};
/* The wide pipelined kernels (HS 64): the same bits again. */
static const a16_impl A16_WIDE = {"wide", kcuda_flash_attention_forward_mma,
                                  kcuda_flash_attention_backward_mma,
                                  kcuda_flash_attention_forward_wide_a16,
                                  kcuda_flash_attention_backward_wide_a16};
/* The backward with one of its two kernels register-held (the tuned dispatch's wide-dq and
 * wide-dkv), the wide forward before it: the same bits again. */
static void wide_dq_bwd_a16(float *dqkv, const float *dout, const uint16_t *qkv,
                            const uint16_t *out, const float *lse, void *scratch, size_t sb,
                            int B, int T, int NH, int NKV, int HS)
{
    kcuda_flash_attention_backward_pp_a16(true, false, dqkv, dout, qkv, out, lse, scratch, sb, B,
                                          T, NH, NKV, HS);
}
static void wide_dkv_bwd_a16(float *dqkv, const float *dout, const uint16_t *qkv,
                             const uint16_t *out, const float *lse, void *scratch, size_t sb,
                             int B, int T, int NH, int NKV, int HS)
{
    kcuda_flash_attention_backward_pp_a16(false, true, dqkv, dout, qkv, out, lse, scratch, sb, B,
                                          T, NH, NKV, HS);
}
static const a16_impl A16_WIDE_DQ = {"wide-dq", kcuda_flash_attention_forward_mma,
                                     kcuda_flash_attention_backward_mma,
                                     kcuda_flash_attention_forward_wide_a16, wide_dq_bwd_a16};
static const a16_impl A16_WIDE_DKV = {"wide-dkv", kcuda_flash_attention_forward_mma,
                                      kcuda_flash_attention_backward_mma,
                                      kcuda_flash_attention_forward_wide_a16, wide_dkv_bwd_a16};
static const a16_impl A16_ENTRY = {"entry", kcuda_flash_attention_forward_16,
                                   kcuda_flash_attention_backward_16,
                                   kcuda_flash_attention_forward_a16,
                                   kcuda_flash_attention_backward_a16};

/* dq, dk, dv columns of got against ref, tolerances tol[0..2]. */
static void expect_dqkv(const char *what, const vec &got, const vec &ref, int NH, int NKV, int HS,
                        const double tol[3])
{
    const size_t R = (size_t)(NH + 2 * NKV) * HS, q1 = (size_t)NH * HS;
    const size_t k1 = (size_t)(NH + NKV) * HS, c[4] = {0, q1, k1, R};
    const char *part[3] = {"dq", "dk", "dv"};
    char w[128];
    for (int i = 0; i < 3; i++) {
        snprintf(w, sizeof w, "%s %s", what, part[i]);
        expect_cols(w, got, ref, R, c[i], c[i + 1], tol[i]);
    }
}

static void a16_case(const a16_impl &im, int B, int T, int NH, int NKV, int HS)
{
    char what[112], shape[48];
    snprintf(shape, sizeof shape, "B%d T%d NH%d NKV%d HS%d", B, T, NH, NKV, HS);
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const size_t nq = (size_t)B * T * R, no = (size_t)B * T * O, nl = (size_t)B * NH * T;
    /* Tensor-core numerics (P, dS rounded to bf16) or the FMA kernels' fp32 ones. */
    bool tc = &im != &A16_ENTRY || kcuda_flash_attention_mma_enabled(HS) ||
              kcuda_flash_attention_tc_enabled(HS);
    /* The entries (the backend's _a16 contract) and the pipelined kernels WRITE dqkv: they start
     * from NaN (every element must be written) and the references, which add, from zeros. The
     * mma.sync and WMMA kernels add into random gradients. */
    bool writes = &im == &A16_PIPE || &im == &A16_WIDE || &im == &A16_WIDE_DQ ||
                  &im == &A16_WIDE_DKV || &im == &A16_ENTRY;
    vec qkv = bf16_round(rnd(nq)), dout = bf16_round(rnd(no));
    vec g0 = writes ? vec(nq, 0.0f) : rnd(nq, 0.1f), gw = writes ? vec(nq, NAN) : g0;
    float *d_qkv = up(qkv), *d_dout = up(dout);
    const uint16_t *a_qkv = (const uint16_t *)up(to_bf16(qkv));
    float *o16 = (float *)dalloc(no * 4), *l16 = (float *)dalloc(nl * 4);
    float *la = (float *)dalloc(nl * 4);
    uint16_t *oa = (uint16_t *)dalloc(no * 2);
    im.fwd(o16, l16, d_qkv, B, T, NH, NKV, HS);
    im.fwd_a16(oa, la, a_qkv, B, T, NH, NKV, HS);
    vec o16h = down(o16, no), l16h = down(l16, nl);
    vec oah = from_bf16(down((const __nv_bfloat16 *)oa, no)), lah = down(la, nl);
    snprintf(what, sizeof what, "%s a16 fwd out = bf16(_16's) %s", im.name, shape);
    expect_cols(what, oah, bf16_round(o16h), no, 0, no, 0.0);
    snprintf(what, sizeof what, "%s a16 fwd lse = _16's %s", im.name, shape);
    expect_cols(what, lah, l16h, nl, 0, nl, 0.0);

    vec out(no), lse(nl);
    kcpu_flash_attention_forward(out.data(), lse.data(), qkv.data(), B, T, NH, NKV, HS);
    double mv = max_abs_cols(qkv, R, (NH + NKV) * HS, R), mo = max_abs_cols(out, O, 0, O);
    double tol = (tc ? TC_U * mv + 1e-4 : 1e-5) + TC_U * mo;
    snprintf(what, sizeof what, "%s a16 fwd out vs CPU %s", im.name, shape);
    expect_cols(what, oah, out, O, 0, O, tol);
    snprintf(what, sizeof what, "%s a16 fwd lse vs CPU %s", im.name, shape);
    expect_cols(what, lah, lse, nl, 0, nl, tc ? 1e-4 : 1e-5);

    /* Backward against the fp32-input kernel given bf16(O_16) (exact) and O_16 (close). */
    vec o16r = bf16_round(o16h);
    float *g16 = up(g0), *g16r = up(g0), *ga = up(gw), *d_o16r = up(o16r);
    im.bwd(g16, d_dout, d_qkv, o16, l16, B, T, NH, NKV, HS);
    im.bwd(g16r, d_dout, d_qkv, d_o16r, l16, B, T, NH, NKV, HS);
    size_t sb = kcuda_flash_attention_pipe_scratch_bytes(B, T, NH, HS);
    void *scr = dalloc(sb);
    im.bwd_a16(ga, d_dout, a_qkv, oa, la, scr, sb, B, T, NH, NKV, HS);
    vec gah = down(ga, nq);
    const double exact[3] = {0.0, 0.0, 0.0};
    if (&im == &A16_ENTRY) { /* without scratch: the mma.sync kernels' (or FMA's) bits too */
        float *gn = up(gw);
        im.bwd_a16(gn, d_dout, a_qkv, oa, la, NULL, 0, B, T, NH, NKV, HS);
        snprintf(what, sizeof what, "%s a16 bwd without scratch = with %s", im.name, shape);
        expect_dqkv(what, down(gn, nq), gah, NH, NKV, HS, exact);
    }
    snprintf(what, sizeof what, "%s a16 bwd = _16's given bf16(O) %s", im.name, shape);
    expect_dqkv(what, gah, down(g16r, nq), NH, NKV, HS, exact);
    double dD = 0.0; /* max_t u·Σ_d |dO_td·O_td| */
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int h = 0; h < NH; h++) {
            double s = 0.0;
            for (int d = 0; d < HS; d++)
                s += fabs((double)dout[r * O + h * HS + d] * o16h[r * O + h * HS + d]);
            dD = fmax(dD, TC_U * s);
        }
    double sq, sk, sv;
    tc_grad_sums(qkv, dout, out, lse, B, T, NH, NKV, HS, &sq, &sk, &sv);
    size_t q1 = (size_t)NH * HS, k1 = (size_t)(NH + NKV) * HS;
    double mq = max_abs_cols(qkv, R, 0, q1), mk = max_abs_cols(qkv, R, q1, k1);
    double scale = 1.0 / sqrt((double)HS);
    const double near[3] = {2.0 * scale * dD * mk + (tc ? 2.0 * TC_U * mk * sq : 0.0) + 1e-5,
                            2.0 * scale * dD * mq * sv + (tc ? 2.0 * TC_U * mq * sk : 0.0) + 1e-5,
                            0.0};
    snprintf(what, sizeof what, "%s a16 bwd vs _16's given O %s", im.name, shape);
    expect_dqkv(what, gah, down(g16, nq), NH, NKV, HS, near);

    /* Backward against the CPU, both reading the CPU's lse and bf16-rounded out. */
    vec out_r = bf16_round(out), dqkv = g0;
    kcpu_flash_attention_backward(dqkv.data(), dout.data(), qkv.data(), out_r.data(), lse.data(),
                                  B, T, NH, NKV, HS);
    float *gc = up(gw), *c_lse = up(lse);
    const uint16_t *c_out = (const uint16_t *)up(to_bf16(out));
    im.bwd_a16(gc, d_dout, a_qkv, c_out, c_lse, scr, sb, B, T, NH, NKV, HS);
    double mdo = max_abs_cols(dout, O, 0, O);
    const double cpu_tc[3] = {2.0 * TC_U * mk * sq + 1e-5, 2.0 * TC_U * mq * sk + 1e-5,
                              2.0 * TC_U * mdo * sv + 1e-5};
    const double cpu_fma[3] = {1e-4, 1e-4, 1e-4};
    snprintf(what, sizeof what, "%s a16 bwd vs CPU %s", im.name, shape);
    expect_dqkv(what, down(gc, nq), dqkv, NH, NKV, HS, tc ? cpu_tc : cpu_fma);
    dfree_all();
}

/* The tile loads' scalar path (bf16 rows not 4-byte aligned: qkv and out one element past an
 * aligned start) gives the same tiles, so the same results bit for bit. Through the entries
 * (A16_ENTRY), unaligned qkv takes the mma.sync kernels instead of the pipelined ones: the
 * same bits again. */
static void a16_unaligned(const a16_impl &im)
{
    const int B = 1, T = 20, NH = 2, NKV = 1, HS = 64;
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const size_t nq = (size_t)B * T * R, no = (size_t)B * T * O, nl = (size_t)B * NH * T;
    vec qkv = rnd(nq), qkv1(nq + 1, 0.0f), dout = rnd(no);
    for (size_t i = 0; i < nq; i++)
        qkv1[i + 1] = qkv[i];
    const uint16_t *a_qkv = (const uint16_t *)up(to_bf16(qkv));
    const uint16_t *u_qkv = (const uint16_t *)up(to_bf16(qkv1)) + 1;
    float *d_dout = up(dout), *l_a = (float *)dalloc(nl * 4), *l_u = (float *)dalloc(nl * 4);
    uint16_t *o_a = (uint16_t *)dalloc(no * 2), *o_u = (uint16_t *)dalloc((no + 1) * 2) + 1;
    float g_init = &im == &A16_ENTRY ? NAN : 0.0f; /* the entry writes dqkv; the kernels add */
    float *g_a = up(vec(nq, g_init)), *g_u = up(vec(nq, g_init));
    im.fwd_a16(o_a, l_a, a_qkv, B, T, NH, NKV, HS);
    im.fwd_a16(o_u, l_u, u_qkv, B, T, NH, NKV, HS);
    size_t sb = kcuda_flash_attention_pipe_scratch_bytes(B, T, NH, HS);
    void *scr = dalloc(sb);
    im.bwd_a16(g_a, d_dout, a_qkv, o_a, l_a, scr, sb, B, T, NH, NKV, HS);
    im.bwd_a16(g_u, d_dout, u_qkv, o_u, l_a, scr, sb, B, T, NH, NKV, HS);
    char what[96];
    vec oa = from_bf16(down((const __nv_bfloat16 *)o_a, no));
    vec ou = from_bf16(down((const __nv_bfloat16 *)o_u, no));
    snprintf(what, sizeof what, "%s a16 fwd out, unaligned rows = aligned", im.name);
    expect_cols(what, ou, oa, no, 0, no, 0.0);
    snprintf(what, sizeof what, "%s a16 fwd lse, unaligned rows = aligned", im.name);
    expect_close(what, l_u, down(l_a, nl), 0.0);
    snprintf(what, sizeof what, "%s a16 bwd dqkv, unaligned rows = aligned", im.name);
    expect_close(what, g_u, down(g_a, nq), 0.0);
    dfree_all();
}

static void test_flash_attention_a16(void)
{
    for (const a16_impl *im : {&A16_MMA, &A16_WMMA}) {
        bool mma = im == &A16_MMA;
        for (int HS : {64, 128}) {
            if (!(mma ? kcuda_flash_attention_mma_supported(HS)
                      : kcuda_flash_attention_tc_supported(HS))) {
                printf("  %s a16 attention HS %d: skipped: unsupported here\n", im->name, HS);
                continue;
            }
            if (HS == 64)
                a16_case(*im, 1, 70, 4, 2, 64); /* GQA, two query tiles, the last partial */
            else
                a16_case(*im, 1, 17, 2, 1, 128); /* MQA, one partial tile */
        }
        if (mma ? kcuda_flash_attention_mma_supported(64) : kcuda_flash_attention_tc_supported(64))
            a16_unaligned(*im);
    }
    /* The entries: the FMA kernels at HS 48 (padded to 64), 16 (32) and 96 (128); the default
     * tensor-core path (or FMA where unsupported) at HS 64. */
    a16_case(A16_ENTRY, 2, 45, 4, 2, 48);
    a16_case(A16_ENTRY, 1, 33, 2, 1, 16);
    a16_case(A16_ENTRY, 1, 20, 2, 2, 96);
    a16_case(A16_ENTRY, 1, 40, 2, 1, 64);
    if (kcuda_flash_attention_mma_supported(64))
        a16_unaligned(A16_ENTRY);
    /* The pipelined kernels (HS 64, 128): several key and query tiles with a partial last,
     * grouped heads (the dk/dv kernel's items cross query heads), one token. */
    for (int HS : {64, 128}) {
        if (!kcuda_flash_attention_pipe_supported(HS) || !kcuda_flash_attention_mma_supported(HS)) {
            printf("  pipe a16 attention HS %d: skipped: unsupported here\n", HS);
            continue;
        }
        a16_case(A16_PIPE, 2, 130, 4, 2, HS);
        a16_case(A16_PIPE, 1, 64, 2, 2, HS);
        a16_case(A16_PIPE, 1, 1, 3, 1, HS);
    }
    /* The wide ones (HS 64): 128-row forward blocks, so T 130 has a block whose second m-tiles
     * alone meet the diagonal key tile and a block of two rows; T 200 a partial block whose
     * second m-tiles hold rows past T; T 260 full blocks of 4 and 5 key tiles, in the
     * emulation's warp-by-warp slots too (a missing barrier before a key buffer is refilled
     * shows there, where T 130's and T 200's live rows sit in warps that read before the
     * refill); grouped heads; one token. */
    if (!kcuda_flash_attention_wide_supported(64) || !kcuda_flash_attention_mma_supported(64)) {
        printf("  wide a16 attention HS 64: skipped: unsupported here\n");
        return;
    }
    a16_case(A16_WIDE, 2, 130, 4, 2, 64);
    a16_case(A16_WIDE, 1, 200, 3, 1, 64);
    a16_case(A16_WIDE, 2, 260, 2, 1, 64);
    a16_case(A16_WIDE, 1, 1, 3, 1, 64);
    a16_case(A16_WIDE_DQ, 2, 130, 4, 2, 64);
    a16_case(A16_WIDE_DKV, 2, 130, 4, 2, 64);
}

/* The default dispatch of the _a16 entries (SCALEWISE_CUDA_ATTENTION unset: auto) among the
 * bit-identical wide, pipe and mma.sync kernels: the first call of a shape times every
 * applicable one and records the shape with the choice; a second call runs the choice alone,
 * records nothing and gives the same bits; the results equal each family's own; unaligned qkv
 * (the mma.sync kernels only) is not tuned. */
static void test_attention_tuning(void)
{
    const int B = 1, T = 150, NH = 2, NKV = 1, HS = 64;
    if (!kcuda_flash_attention_wide_supported(HS) || !kcuda_flash_attention_mma_supported(HS)) {
        printf("  attention tuning: skipped: the pipelined kernels are unsupported here\n");
        return;
    }
    const size_t R = (size_t)(NH + 2 * NKV) * HS, O = (size_t)NH * HS;
    const size_t nq = (size_t)B * T * R, no = (size_t)B * T * O, nl = (size_t)B * NH * T;
    vec qkv = rnd(nq), dout = rnd(no);
    const uint16_t *a_qkv = (const uint16_t *)up(to_bf16(qkv));
    float *d_dout = up(dout), *lse = (float *)dalloc(nl * 4), *lse2 = (float *)dalloc(nl * 4);
    uint16_t *o1 = (uint16_t *)dalloc(no * 2), *o2 = (uint16_t *)dalloc(no * 2);
    float *g1 = up(vec(nq, NAN)), *g2 = up(vec(nq, NAN));
    size_t sb = kcuda_flash_attention_pipe_scratch_bytes(B, T, NH, HS);
    void *scr = dalloc(sb);
    kcuda_flash_attention_tuning_reset();
    CHECK(kcuda_flash_attention_forward_tuned_a16(o1, lse, a_qkv, B, T, NH, NKV, HS));
    CHECK(kcuda_flash_attention_backward_tuned_a16(g1, d_dout, a_qkv, o1, lse, scr, sb, B, T, NH,
                                                   NKV, HS));
    char buf[1024];
    CHECK(kcuda_flash_attention_tuning(buf, sizeof buf) == 2);
    printf("  tuned: %s", buf);
    CHECK(strstr(buf, "forward B1 T150 NH2 NKV1 HS64: ") == buf);
    CHECK(strstr(buf, "\nbackward B1 T150 NH2 NKV1 HS64: ") != NULL);
    for (const char *f : {"wide ", "pipe ", "mma "}) /* every candidate timed, in both */
        CHECK(strstr(buf, f) && strstr(strstr(buf, "\nbackward"), f));
    const char *bw = strstr(buf, "\nbackward"); /* the mixed ones in the backward only */
    CHECK(bw && strstr(bw, "wide-dq ") && strstr(bw, "wide-dkv "));
    CHECK(!strstr(buf, "wide-dq ") || strstr(buf, "wide-dq ") > bw);
    char small[8];
    CHECK(kcuda_flash_attention_tuning(small, sizeof small) == 2 && small[0] == '\0');
    kcuda_flash_attention_forward_a16(o2, lse2, a_qkv, B, T, NH, NKV, HS);
    kcuda_flash_attention_backward_a16(g2, d_dout, a_qkv, o2, lse2, scr, sb, B, T, NH, NKV, HS);
    CHECK(kcuda_flash_attention_tuning(buf, sizeof buf) == 2);
    vec h1 = from_bf16(down((const __nv_bfloat16 *)o1, no));
    expect_cols("tuned a16 fwd out, second call = first", from_bf16(down((const __nv_bfloat16 *)o2,
                no)), h1, no, 0, no, 0.0);
    expect_close("tuned a16 fwd lse, second call = first", lse2, down(lse, nl), 0.0);
    expect_close("tuned a16 bwd dqkv, second call = first", g2, down(g1, nq), 0.0);
    /* Each family pinned by its own entry: the same bits. */
    kcuda_flash_attention_forward_mma_a16(o2, lse2, a_qkv, B, T, NH, NKV, HS);
    expect_cols("tuned a16 fwd out = mma's", from_bf16(down((const __nv_bfloat16 *)o2, no)), h1,
                no, 0, no, 0.0);
    kcuda_flash_attention_backward_wide_a16(g2, d_dout, a_qkv, o1, lse, scr, sb, B, T, NH, NKV, HS);
    expect_close("tuned a16 bwd dqkv = wide's", g2, down(g1, nq), 0.0);
    kcuda_flash_attention_backward_pipe_a16(g2, d_dout, a_qkv, o1, lse, scr, sb, B, T, NH, NKV, HS);
    expect_close("tuned a16 bwd dqkv = pipe's", g2, down(g1, nq), 0.0);
    /* Unaligned qkv: one candidate, nothing tuned. */
    vec qkv1(nq + 1, 0.0f);
    for (size_t i = 0; i < nq; i++)
        qkv1[i + 1] = qkv[i];
    const uint16_t *u_qkv = (const uint16_t *)up(to_bf16(qkv1)) + 1;
    CHECK(kcuda_flash_attention_forward_tuned_a16(o2, lse2, u_qkv, B, T, NH, NKV, HS));
    CHECK(kcuda_flash_attention_tuning(buf, sizeof buf) == 2);
    expect_cols("tuned a16 fwd out, unaligned (mma only) = aligned",
                from_bf16(down((const __nv_bfloat16 *)o2, no)), h1, no, 0, no, 0.0);
    kcuda_flash_attention_tuning_reset();
    CHECK(kcuda_flash_attention_tuning(buf, sizeof buf) == 0 && buf[0] == '\0');
    dfree_all();
}

static void test_attention_materialised(void)
{
    const int B = 2, T = 23, NH = 4, NKV = 2, HS = 40;
    const int R = (NH + 2 * NKV) * HS, O = NH * HS;
    vec qkv = rnd((size_t)B * T * R), dout = rnd((size_t)B * T * O);
    vec out((size_t)B * T * O), att((size_t)B * NH * T * T), dqkv = rnd((size_t)B * T * R, 0.1f);
    vec scratch(kcpu_attention_backward_scratch_bytes(B, T, NH) / 4);
    float *d_qkv = up(qkv), *d_dout = up(dout), *d_dqkv = up(dqkv);
    float *d_out = (float *)dalloc(out.size() * 4), *d_att = (float *)dalloc(att.size() * 4);
    float *d_scr = (float *)dalloc(kcuda_attention_backward_scratch_bytes(B, T, NH));
    kcpu_attention_forward(out.data(), att.data(), qkv.data(), B, T, NH, NKV, HS);
    kcuda_attention_forward(d_out, d_att, d_qkv, B, T, NH, NKV, HS);
    expect_close("attention_forward out", d_out, out, 1e-5);
    expect_close("attention_forward att (zeros above diagonal)", d_att, att, 1e-6);
    kcpu_attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), scratch.data(), B,
                            T, NH, NKV, HS);
    kcuda_attention_backward(d_dqkv, d_dout, d_qkv, d_att, d_scr, B, T, NH, NKV, HS);
    expect_close("attention_backward dqkv", d_dqkv, dqkv, 1e-4);
    dfree_all();
}

/* Decode of Tn new tokens at pos over a cache of random bf16-representable values (rows past
 * pos + Tn too: decode must not read them), against the CPU; then the determinism (a second
 * call gives the same bits) and the bf16 instantiation, which must give the fp32 kernel's
 * result on the same values rounded once, bit for bit (both widen and compute in fp32). */
static void decode_case(int B, int NH, int NKV, int HS, int pos, int Tn)
{
    const int cache_T = pos + Tn + 5, R = (NH + 2 * NKV) * HS, KV = NKV * HS;
    const size_t no = (size_t)B * Tn * NH * HS;
    vec kc = bf16_round(rnd((size_t)B * cache_T * KV)), vc = bf16_round(rnd(kc.size()));
    vec qkv = bf16_round(rnd((size_t)B * Tn * R)), out(no);
    float *d_kc = up(kc), *d_vc = up(vc), *d_qkv = up(qkv);
    __nv_bfloat16 *b_kc = up(to_bf16(kc)), *b_vc = up(to_bf16(vc)), *b_qkv = up(to_bf16(qkv));
    float *d_out = (float *)dalloc(no * 4), *d_out2 = (float *)dalloc(no * 4);
    __nv_bfloat16 *b_out = (__nv_bfloat16 *)dalloc(no * 2);
    __nv_bfloat16 *b_out2 = (__nv_bfloat16 *)dalloc(no * 2);
    kcpu_kv_cache_append(kc.data(), vc.data(), qkv.data(), B, Tn, pos, NH, NKV, HS, cache_T);
    kcpu_attention_decode(out.data(), qkv.data(), kc.data(), vc.data(), B, Tn, pos, NH, NKV, HS,
                          cache_T);
    kcuda_kv_cache_append(d_kc, d_vc, d_qkv, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode(d_out, d_qkv, d_kc, d_vc, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode(d_out2, d_qkv, d_kc, d_vc, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_kv_cache_append_bf16(b_kc, b_vc, b_qkv, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode_bf16(b_out, b_qkv, b_kc, b_vc, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode_bf16(b_out2, b_qkv, b_kc, b_vc, B, Tn, pos, NH, NKV, HS, cache_T);
    char what[64];
    snprintf(what, sizeof what, "decode B%d NH%d/%d HS%d pos %d +%d", B, NH, NKV, HS, pos, Tn);
    expect_close(what, d_out, out, 1e-5);
    expect_f32_same("  second call, same bits", d_out2, d_out, no);
    expect_a16_same("  bf16 = fp32 result rounded", (const uint16_t *)b_out, d_out, no);
    expect_a16_same("  bf16 second call, same bits", (const uint16_t *)b_out2, d_out, no);
    dfree_all();
}

static void test_kv_cache_decode(void)
{
    const int B = 3, NH = 4, NKV = 2, HS = 64, cache_T = 80;
    const int R = (NH + 2 * NKV) * HS, KV = NKV * HS;
    vec kc((size_t)B * cache_T * KV, 0.0f), vc((size_t)B * cache_T * KV, 0.0f);
    float *d_kc = up(kc), *d_vc = up(vc);
    /* A prompt of 40 tokens, then 3 new tokens: decode sees the prompt and itself. */
    int steps[2][2] = {{0, 40}, {40, 3}};
    for (int s = 0; s < 2; s++) {
        int pos = steps[s][0], Tn = steps[s][1];
        vec qkv = rnd((size_t)B * Tn * R), out((size_t)B * Tn * NH * HS);
        float *d_qkv = up(qkv), *d_out = (float *)dalloc(out.size() * 4);
        kcpu_kv_cache_append(kc.data(), vc.data(), qkv.data(), B, Tn, pos, NH, NKV, HS, cache_T);
        kcuda_kv_cache_append(d_kc, d_vc, d_qkv, B, Tn, pos, NH, NKV, HS, cache_T);
        expect_close("kv_cache_append k", d_kc, kc, 0.0);
        expect_close("kv_cache_append v", d_vc, vc, 0.0);
        kcpu_attention_decode(out.data(), qkv.data(), kc.data(), vc.data(), B, Tn, pos, NH, NKV,
                              HS, cache_T);
        kcuda_attention_decode(d_out, d_qkv, d_kc, d_vc, B, Tn, pos, NH, NKV, HS, cache_T);
        expect_close(s == 0 ? "attention_decode (prefill 40)" : "attention_decode (3 new)", d_out,
                     out, 1e-5);
        if (s == 1) { /* the same through bf16 caches */
            __nv_bfloat16 *b_kc = up(to_bf16(vec(kc.size(), 0.0f)));
            __nv_bfloat16 *b_vc = up(to_bf16(vec(vc.size(), 0.0f)));
            vec qall = bf16_round(rnd((size_t)B * 5 * R)), kr(kc.size(), 0.0f),
                vr(vc.size(), 0.0f), o2((size_t)B * 5 * NH * HS);
            __nv_bfloat16 *b_q = up(to_bf16(qall));
            __nv_bfloat16 *b_out = (__nv_bfloat16 *)dalloc(o2.size() * 2);
            kcpu_kv_cache_append(kr.data(), vr.data(), qall.data(), B, 5, 0, NH, NKV, HS, cache_T);
            kcpu_attention_decode(o2.data(), qall.data(), kr.data(), vr.data(), B, 5, 0, NH, NKV,
                                  HS, cache_T);
            kcuda_kv_cache_append_bf16(b_kc, b_vc, b_q, B, 5, 0, NH, NKV, HS, cache_T);
            kcuda_attention_decode_bf16(b_out, b_q, b_kc, b_vc, B, 5, 0, NH, NKV, HS, cache_T);
            vec got = from_bf16(down(b_out, o2.size()));
            double e = max_err(got, o2);
            printf("  %-44s max err %.3g (tol %.3g)\n", "attention_decode bf16", e, 1e-2);
            CHECK(e <= 1e-2);
        }
    }
    dfree_all();
    /* The decode kernel splits a token's keys over 8 warps in 32-key tiles: a long cache gives
     * every warp 2-3 tiles (MQA, HS 128), others leave some warps idle, none is a multiple of
     * 32; padded head sizes 48 (of 64), 80 (of 128, a dims pass skipped) and 16 (of 32). */
    decode_case(1, 4, 1, 128, 560, 3);
    decode_case(2, 4, 2, 48, 300, 2);
    decode_case(1, 2, 2, 64, 299, 1);
    decode_case(1, 3, 1, 80, 70, 2);
    decode_case(2, 2, 1, 16, 33, 4);
}

/* The bf16 KV cache under fp32 activations (_c16). Append: the cache's bits are exactly
 * kcpu_f32_to_bf16 of qkv's K and V columns at rows pos..pos+Tn-1 (qkv is raw fp32, with
 * rounding ties planted: 1 + 2^-8 rounds down to even, 1 + 3·2^-8 up), and every other row
 * keeps its (random) bits. Decode: bit for bit the fp32 kernel on an fp32 cache holding the
 * widened values (the same fp32 operations on the same values), 1e-5 against the CPU on that
 * cache, and a second call gives the same bits. */
static void decode_c16_case(int B, int NH, int NKV, int HS, int pos, int Tn)
{
    const int cache_T = pos + Tn + 5, R = (NH + 2 * NKV) * HS, KV = NKV * HS;
    const size_t nc = (size_t)B * cache_T * KV, no = (size_t)B * Tn * NH * HS;
    std::vector<uint16_t> kb = a16_bits(rnd(nc)), vb = a16_bits(rnd(nc));
    vec qkv = rnd((size_t)B * Tn * R);
    for (int r = 0; r < B * Tn; r++) {
        qkv[(size_t)r * R + (size_t)NH * HS] = 1.00390625f;          /* 1 + 2^-8 -> 1 */
        qkv[(size_t)r * R + (size_t)(NH + NKV) * HS] = -1.01171875f; /* -(1 + 3·2^-8) */
    }
    uint16_t *d_kb = up(kb), *d_vb = up(vb);
    float *d_qkv = up(qkv);
    kcuda_kv_cache_append_c16(d_kb, d_vb, d_qkv, B, Tn, pos, NH, NKV, HS, cache_T);
    for (int b = 0; b < B; b++) /* the expected cache: kb, vb with the new rows rounded in */
        for (int i = 0; i < Tn; i++) {
            const float *row = &qkv[((size_t)b * Tn + i) * R];
            size_t dst = ((size_t)b * cache_T + pos + i) * KV;
            kcpu_f32_to_bf16(&kb[dst], row + (size_t)NH * HS, (size_t)KV);
            kcpu_f32_to_bf16(&vb[dst], row + (size_t)(NH + NKV) * HS, (size_t)KV);
        }
    std::vector<uint16_t> gk = down(d_kb, nc), gv = down(d_vb, nc);
    size_t bad = 0;
    for (size_t e = 0; e < nc; e++)
        bad += (gk[e] != kb[e]) + (gv[e] != vb[e]);
    char what[80];
    snprintf(what, sizeof what, "append_c16 B%d NH%d/%d HS%d pos %d +%d", B, NH, NKV,
             HS, pos, Tn);
    printf("  %-44s %zu of %zu differ (tol 0)\n", what, bad, 2 * nc);
    CHECK_MSG(bad == 0, "%s: %zu of %zu bf16 values differ", what, bad, 2 * nc);
    vec kw = a16_widen(kb), vw = a16_widen(vb), out(no);
    float *d_kw = up(kw), *d_vw = up(vw);
    float *d_ref = (float *)dalloc(no * 4), *d_out = (float *)dalloc(no * 4);
    float *d_out2 = (float *)dalloc(no * 4);
    kcpu_attention_decode(out.data(), qkv.data(), kw.data(), vw.data(), B, Tn, pos, NH, NKV, HS,
                          cache_T);
    kcuda_attention_decode(d_ref, d_qkv, d_kw, d_vw, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode_c16(d_out, d_qkv, d_kb, d_vb, B, Tn, pos, NH, NKV, HS, cache_T);
    kcuda_attention_decode_c16(d_out2, d_qkv, d_kb, d_vb, B, Tn, pos, NH, NKV, HS, cache_T);
    expect_f32_same("  decode_c16 = fp32 decode on widened cache", d_out, d_ref, no);
    expect_close("  decode_c16 vs CPU on widened cache", d_out, out, 1e-5);
    expect_f32_same("  decode_c16 second call, same bits", d_out2, d_out, no);
    dfree_all();
}

/* Shapes: batch 1 over 532 keys (17 tiles: every warp gets 2-3), MQA at HS 128; GQA with the
 * padded head size 48 (of 64), batch 2 and 3 new tokens at pos 37; HS 64 with NH = NKV. */
static void test_decode_c16(void)
{
    decode_c16_case(1, 2, 1, 128, 530, 2);
    decode_c16_case(2, 4, 2, 48, 37, 3);
    decode_c16_case(1, 2, 2, 64, 100, 1);
}

/* ---------------------------------------------------------------- loss */

static void test_softmax_ce(void)
{
    const int N = 19, V = 1000, Vp = 1024;
    vec logits = rnd((size_t)N * Vp, 5.0f);
    std::vector<int> tgt(N);
    for (int i = 0; i < N; i++)
        tgt[i] = i % 5 == 3 ? -1 : (i * 97) % V;
    float *d_log = up(logits);
    int *d_tgt = up(tgt);
    float *d_losses = (float *)dalloc(N * 4);
    vec losses(N);
    int nv_cpu = -1, nv_gpu = -2;
    /* Loss only: logits untouched. */
    float l_cpu = kcpu_softmax_ce(logits.data(), losses.data(), &nv_cpu, tgt.data(), N, V, Vp,
                                  false, 1.0f);
    float l_gpu = kcuda_softmax_ce(d_log, d_losses, &nv_gpu, d_tgt, N, V, Vp, false, 1.0f);
    printf("  %-44s cpu %.7g gpu %.7g\n", "softmax_ce mean loss (no grad)", l_cpu, l_gpu);
    CHECK_REL(l_gpu, l_cpu, 1e-5);
    CHECK_INT(nv_gpu, nv_cpu);
    expect_close("softmax_ce losses", d_losses, losses, 2e-5);
    expect_close("softmax_ce logits unchanged", d_log, logits, 0.0);
    /* With the gradient written over the logits. */
    l_cpu = kcpu_softmax_ce(logits.data(), NULL, NULL, tgt.data(), N, V, Vp, true, 0.5f);
    l_gpu = kcuda_softmax_ce(d_log, NULL, NULL, d_tgt, N, V, Vp, true, 0.5f);
    CHECK_REL(l_gpu, l_cpu, 1e-5);
    expect_close("softmax_ce gradient in place (+pad, ignored)", d_log, logits, 1e-7);
    /* Every row ignored: loss 0, gradient 0. */
    std::vector<int> none(N, -1);
    int *d_none = up(none);
    l_gpu = kcuda_softmax_ce(d_log, NULL, &nv_gpu, d_none, N, V, Vp, true, 1.0f);
    CHECK(l_gpu == 0.0f);
    CHECK_INT(nv_gpu, 0);
    expect_close("softmax_ce all ignored -> zero gradient", d_log, vec((size_t)N * Vp, 0.0f),
                 0.0);
    dfree_all();
}

/* softmax_ce on bf16 logits (bf16 activations): the fp32 kernel's body reading widened values,
 * so its loss and per-row losses are kcuda_softmax_ce's on the widened logits bit for bit, and
 * its in-place gradient is that kernel's fp32 gradient rounded to bf16 (nearest even) bit for
 * bit; against the CPU on the widened logits the loss is within the fp32 test's tolerance and
 * the gradient at most 1 bf16 ulp from the CPU's fp32 gradient rounded (a different summation
 * order can put the two on either side of a rounding boundary). Padding (random here) and
 * ignored rows must come back +0 exactly. */
static void test_softmax_ce_a16(void)
{
    const int N = 19, V = 1000, Vp = 1024;
    std::vector<uint16_t> lb = a16_bits(rnd((size_t)N * Vp, 5.0f));
    vec lw = a16_widen(lb), logits = lw;
    std::vector<int> tgt(N);
    for (int i = 0; i < N; i++)
        tgt[i] = i % 5 == 3 ? -1 : (i * 97) % V;
    uint16_t *d_lb = up(lb);
    float *d_lw = up(lw);
    int *d_tgt = up(tgt);
    float *d_losses = (float *)dalloc(N * 4), *d_losses32 = (float *)dalloc(N * 4);
    vec losses(N);
    int nv_cpu = -1, nv_gpu = -2, nv32 = -3;
    /* Loss only: the bf16 logits untouched. */
    float l_cpu = kcpu_softmax_ce(logits.data(), losses.data(), &nv_cpu, tgt.data(), N, V, Vp,
                                  false, 1.0f);
    float l_gpu = kcuda_softmax_ce_a16(d_lb, d_losses, &nv_gpu, d_tgt, N, V, Vp, false, 1.0f);
    float l32 = kcuda_softmax_ce(d_lw, d_losses32, &nv32, d_tgt, N, V, Vp, false, 1.0f);
    printf("  %-44s cpu %.7g gpu %.7g fp32 %.7g\n", "softmax_ce_a16 mean loss (no grad)", l_cpu,
           l_gpu, l32);
    CHECK_REL(l_gpu, l_cpu, 1e-5);
    CHECK(memcmp(&l_gpu, &l32, sizeof l32) == 0);
    CHECK_INT(nv_gpu, nv_cpu);
    CHECK_INT(nv32, nv_cpu);
    expect_close("softmax_ce_a16 losses vs CPU", d_losses, losses, 2e-5);
    expect_f32_same("softmax_ce_a16 losses = fp32's", d_losses, d_losses32, N);
    std::vector<uint16_t> after = down(d_lb, lb.size());
    CHECK_MSG(after == lb, "softmax_ce_a16 (no grad) changed the logits");
    /* With the gradient written over the logits, rounded to bf16. */
    l_cpu = kcpu_softmax_ce(logits.data(), NULL, NULL, tgt.data(), N, V, Vp, true, 0.5f);
    l_gpu = kcuda_softmax_ce_a16(d_lb, NULL, &nv_gpu, d_tgt, N, V, Vp, true, 0.5f);
    l32 = kcuda_softmax_ce(d_lw, NULL, NULL, d_tgt, N, V, Vp, true, 0.5f);
    CHECK_REL(l_gpu, l_cpu, 1e-5);
    CHECK(memcmp(&l_gpu, &l32, sizeof l32) == 0);
    CHECK_INT(nv_gpu, nv_cpu);
    expect_a16_same("softmax_ce_a16 gradient = r(fp32's)", d_lb, d_lw, lb.size());
    expect_a16_ulps("softmax_ce_a16 gradient vs r(CPU's)", d_lb, logits, 1e-7);
    after = down(d_lb, lb.size());
    size_t nonzero = 0;
    for (int r = 0; r < N; r++)
        for (int i = tgt[r] < 0 ? 0 : V; i < Vp; i++)
            nonzero += after[(size_t)r * Vp + i] != 0;
    printf("  %-44s %zu nonzero (tol 0)\n", "softmax_ce_a16 padding, ignored rows = +0", nonzero);
    CHECK_MSG(nonzero == 0, "softmax_ce_a16: %zu padded or ignored values not +0", nonzero);
    /* Every row ignored: loss 0, gradient 0; no rows: loss 0, nothing read. */
    std::vector<int> none(N, -1);
    int *d_none = up(none);
    CUDA_CHECK(cudaMemcpy(d_lb, lb.data(), lb.size() * 2, cudaMemcpyHostToDevice));
    l_gpu = kcuda_softmax_ce_a16(d_lb, NULL, &nv_gpu, d_none, N, V, Vp, true, 1.0f);
    CHECK(l_gpu == 0.0f);
    CHECK_INT(nv_gpu, 0);
    after = down(d_lb, lb.size());
    CHECK_MSG(after == std::vector<uint16_t>(lb.size(), 0), "softmax_ce_a16: all ignored != +0");
    nv_gpu = -1;
    CHECK(kcuda_softmax_ce_a16(NULL, NULL, &nv_gpu, NULL, 0, V, Vp, true, 1.0f) == 0.0f);
    CHECK_INT(nv_gpu, 0);
    dfree_all();
}

/* Greedy decoding's argmax: the CPU rule (lowest index of the maximum, NaN never chosen, an
 * all-NaN row gives 0) on rows with planted ties at both ends of the block's strided scan, NaN,
 * -inf and +inf, V not a multiple of the block, ld > V (the padded columns hold the largest
 * values and must be ignored). */
static void test_argmax_rows(void)
{
    const int rows = 9, V = 50257, ld = 50304;
    vec x = rnd((size_t)rows * ld, 5.0f);
    for (int r = 0; r < rows; r++)
        for (int i = V; i < ld; i++)
            x[(size_t)r * ld + i] = 100.0f; /* padding: never read */
    float *r1 = &x[1 * (size_t)ld], *r2 = &x[2 * (size_t)ld], *r3 = &x[3 * (size_t)ld];
    float *r4 = &x[4 * (size_t)ld], *r5 = &x[5 * (size_t)ld], *r6 = &x[6 * (size_t)ld];
    r1[7] = r1[300] = r1[V - 1] = 9.0f;        /* a tie: the lowest index, 7 */
    r2[0] = NAN, r2[4095] = 8.5f, r2[4096] = NAN; /* NaN around the maximum */
    for (int i = 0; i < V; i++)
        r3[i] = NAN;                            /* all NaN: 0 */
    r4[123] = INFINITY, r4[124] = INFINITY;     /* +inf ties */
    for (int i = 0; i < V; i++)
        r5[i] = -INFINITY;                      /* all -inf: the first, 0 */
    r6[V - 1] = 20.0f;                          /* the last column */
    std::vector<int> want(rows), got(rows, -7);
    kcpu_argmax_rows(want.data(), x.data(), rows, V, ld);
    CHECK_INT(want[1], 7);
    CHECK_INT(want[3], 0);
    CHECK_INT(want[4], 123);
    CHECK_INT(want[6], V - 1);
    float *d_x = up(x);
    kcuda_argmax_rows(got.data(), d_x, rows, V, ld);
    int same = 0;
    for (int r = 0; r < rows; r++) {
        same += got[r] == want[r];
        CHECK_MSG(got[r] == want[r], "argmax row %d: %d, cpu %d", r, got[r], want[r]);
    }
    printf("  %-44s %d of %d rows equal\n", "argmax_rows (ties, NaN, inf, padding)", same, rows);
    dfree_all();
}

/* ---------------------------------------------------------------- optimizers */

static void test_optimizers(void)
{
    const size_t n = 5003;
    vec p0 = rnd(n), m0(n, 0.0f), v0(n, 0.0f);
    /* AdamW, 3 steps. */
    {
        vec p = p0, m = m0, v = v0;
        float *d_p = up(p), *d_m = up(m), *d_v = up(v);
        for (int step = 1; step <= 3; step++) {
            vec g = rnd(n);
            float *d_g = up(g);
            kcpu_adamw_step(p.data(), g.data(), m.data(), v.data(), n, step, 1e-2f, 0.9f, 0.95f,
                            1e-8f, 0.1f);
            kcuda_adamw_step(d_p, d_g, d_m, d_v, n, step, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f);
        }
        expect_close("adamw param (3 steps)", d_p, p, 1e-5);
        expect_close("adamw m", d_m, m, 1e-6);
        expect_close("adamw v", d_v, v, 1e-6);
    }
    /* SGD, SGD with momentum (plain and Nesterov), Lion. */
    {
        vec p = p0, pm = p0, pn = p0, pl = p0, b1(n, 0.0f), b2(n, 0.0f), ml(n, 0.0f);
        float *d_p = up(p), *d_pm = up(pm), *d_pn = up(pn), *d_pl = up(pl);
        float *d_b1 = up(b1), *d_b2 = up(b2), *d_ml = up(ml);
        for (int step = 1; step <= 3; step++) {
            vec g = rnd(n);
            float *d_g = up(g);
            kcpu_sgd_step(p.data(), g.data(), n, 0.1f, 0.01f);
            kcuda_sgd_step(d_p, d_g, n, 0.1f, 0.01f);
            kcpu_sgd_momentum_step(pm.data(), g.data(), b1.data(), n, 0.1f, 0.9f, 0.01f, false);
            kcuda_sgd_momentum_step(d_pm, d_g, d_b1, n, 0.1f, 0.9f, 0.01f, false);
            kcpu_sgd_momentum_step(pn.data(), g.data(), b2.data(), n, 0.1f, 0.9f, 0.01f, true);
            kcuda_sgd_momentum_step(d_pn, d_g, d_b2, n, 0.1f, 0.9f, 0.01f, true);
            kcpu_lion_step(pl.data(), g.data(), ml.data(), n, 1e-3f, 0.9f, 0.99f, 0.1f);
            kcuda_lion_step(d_pl, d_g, d_ml, n, 1e-3f, 0.9f, 0.99f, 0.1f);
        }
        expect_close("sgd param", d_p, p, 1e-6);
        expect_close("sgd momentum param", d_pm, pm, 1e-6);
        expect_close("sgd momentum buf", d_b1, b1, 1e-6);
        expect_close("sgd nesterov param", d_pn, pn, 1e-6);
        expect_close("lion param", d_pl, pl, 1e-6);
        expect_close("lion m", d_ml, ml, 1e-6);
    }
    dfree_all();
}

static void adafactor_case(int rows, int cols, bool first_moment)
{
    char what[96];
    size_t n = (size_t)rows * cols;
    size_t rn = kcpu_adafactor_row_floats(rows, cols), cn = kcpu_adafactor_col_floats(rows, cols);
    CHECK_INT(kcuda_adafactor_row_floats(rows, cols), rn);
    CHECK_INT(kcuda_adafactor_col_floats(rows, cols), cn);
    vec p = rnd(n), R(rn, 0.0f), Cs(cn ? cn : 1, 0.0f), m(n, 0.0f);
    float *d_p = up(p), *d_R = up(R), *d_C = up(Cs), *d_m = up(m);
    for (int step = 1; step <= 3; step++) {
        vec g = rnd(n, step == 2 ? 10.0f : 0.01f); /* step 2 clips, the others do not */
        float *d_g = up(g);
        kcpu_adafactor_step(p.data(), g.data(), R.data(), cn ? Cs.data() : NULL,
                            first_moment ? m.data() : NULL, rows, cols, step, 1e-2f, 0.9f, -0.8f,
                            1e-30f, 1.0f, 0.1f);
        kcuda_adafactor_step(d_p, d_g, d_R, cn ? d_C : NULL, first_moment ? d_m : NULL, rows, cols,
                             step, 1e-2f, 0.9f, -0.8f, 1e-30f, 1.0f, 0.1f);
    }
    snprintf(what, sizeof what, "adafactor %dx%d%s param", rows, cols, first_moment ? " +m" : "");
    expect_close(what, d_p, p, 1e-5);
    /* Row/col states hold mean squares (~1e-4 here): compare relative to their size. */
    vec gR = down(d_R, rn);
    double e = 0.0;
    for (size_t i = 0; i < rn; i++)
        e = fmax(e, fabs(gR[i] - R[i]) / fmax(fabs(R[i]), 1e-30));
    printf("  %-44s rel err %.3g (tol 1e-5)\n", "adafactor row state", e);
    CHECK(e <= 1e-5);
    if (cn) {
        vec gC = down(d_C, cn);
        e = 0.0;
        for (size_t i = 0; i < cn; i++)
            e = fmax(e, fabs(gC[i] - Cs[i]) / fmax(fabs(Cs[i]), 1e-30));
        printf("  %-44s rel err %.3g (tol 1e-5)\n", "adafactor col state", e);
        CHECK(e <= 1e-5);
    }
    dfree_all();
}

static void test_adafactor(void)
{
    adafactor_case(33, 70, false);
    adafactor_case(40, 3, true);
    adafactor_case(1, 50, false); /* a vector: unfactored */
}

static void adam8_case(size_t n)
{
    char what[96];
    size_t sb = kcpu_adamw8bit_state_bytes(n);
    CHECK_INT(kcuda_adamw8bit_state_bytes(n), sb);
    std::vector<uint8_t> st(sb, 0);
    vec p = rnd(n);
    float *d_p = up(p);
    uint8_t *d_st = up(st);
    for (int step = 1; step <= 3; step++) {
        vec g = rnd(n, step == 3 ? 1e-3f : 1.0f);
        float *d_g = up(g);
        kcpu_adamw8bit_step(p.data(), g.data(), st.data(), n, step, 1e-3f, 0.9f, 0.999f, 1e-8f,
                            0.01f);
        kcuda_adamw8bit_step(d_p, d_g, d_st, n, step, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
    }
    snprintf(what, sizeof what, "adamw8bit n=%zu param", n);
    expect_close(what, d_p, p, 1e-5);
    std::vector<uint8_t> got = down(d_st, sb);
    size_t diff = 0;
    for (size_t i = 0; i < sb; i++)
        diff += got[i] != st[i];
    printf("  %-44s %zu of %zu bytes differ (%s)\n", "adamw8bit state vs CPU", diff, sb,
           n >= KCPU_ADAM8_MIN_N ? "must be 0" : "fp32 states, tol 1e-6");
    if (n >= KCPU_ADAM8_MIN_N) {
        CHECK_INT(diff, 0);
    }
    for (int which = 0; which < 2; which++) {
        vec ref(n);
        kcpu_adamw8bit_read_state(ref.data(), st.data(), n, which);
        float *d_out = (float *)dalloc(n * 4);
        kcuda_adamw8bit_read_state(d_out, d_st, n, which);
        expect_close(which ? "adamw8bit read_state v" : "adamw8bit read_state m", d_out, ref,
                     n >= KCPU_ADAM8_MIN_N ? 0.0 : 1e-6);
    }
    dfree_all();
}

static void test_adamw8bit(void)
{
    adam8_case(2 * KCPU_ADAM8_BLOCK + 77); /* quantised, last block partial */
    adam8_case(1000);                      /* below KCPU_ADAM8_MIN_N: fp32 states */
}

/* The one-launch multi-segment updates equal per-segment CPU calls. */
static void test_multi_segment(void)
{
    const size_t sizes[3] = {3000, 17, 9000};
    const float wds[3] = {0.1f, 0.0f, 0.05f};
    std::vector<backend_opt_seg> segs(3);
    size_t off = 0, soff = 0, max_n = 0;
    for (int i = 0; i < 3; i++) {
        segs[i].off = off;
        segs[i].n = sizes[i];
        segs[i].state_off = soff;
        segs[i].weight_decay = wds[i];
        off += sizes[i];
        soff += (kcpu_adamw8bit_state_bytes(sizes[i]) + 63) & ~(size_t)63;
        max_n = sizes[i] > max_n ? sizes[i] : max_n;
    }
    size_t n = off;
    backend_opt_seg *d_segs = up(segs);
    vec p = rnd(n), m(n, 0.0f), v(n, 0.0f), p8 = p, pl = p, ml(n, 0.0f);
    std::vector<uint8_t> st(soff, 0);
    float *d_p = up(p), *d_m = up(m), *d_v = up(v), *d_p8 = up(p8), *d_pl = up(pl);
    float *d_ml = up(ml);
    uint8_t *d_st = up(st);
    for (int step = 1; step <= 2; step++) {
        vec g = rnd(n);
        float *d_g = up(g);
        for (int i = 0; i < 3; i++) {
            size_t o = segs[i].off, k = segs[i].n;
            kcpu_adamw_step(p.data() + o, g.data() + o, m.data() + o, v.data() + o, k, step, 1e-2f,
                            0.9f, 0.95f, 1e-8f, wds[i]);
            kcpu_adamw8bit_step(p8.data() + o, g.data() + o, st.data() + segs[i].state_off, k,
                                step, 1e-2f, 0.9f, 0.95f, 1e-8f, wds[i]);
            kcpu_lion_step(pl.data() + o, g.data() + o, ml.data() + o, k, 1e-3f, 0.9f, 0.99f,
                           wds[i]);
        }
        kcuda_adamw_step_multi(d_p, d_g, d_m, d_v, d_segs, 3, max_n, step, 1e-2f, 0.9f, 0.95f,
                               1e-8f);
        kcuda_adamw8bit_step_multi(d_p8, d_g, d_st, d_segs, 3, max_n, step, 1e-2f, 0.9f, 0.95f,
                                   1e-8f);
        kcuda_lion_step_multi(d_pl, d_g, d_ml, d_segs, 3, max_n, 1e-3f, 0.9f, 0.99f);
    }
    expect_close("adamw_multi param (3 segments)", d_p, p, 1e-5);
    expect_close("adamw8bit_multi param", d_p8, p8, 1e-5);
    expect_close("lion_multi param", d_pl, pl, 1e-6);
    std::vector<uint8_t> got = down(d_st, soff);
    size_t diff = 0;
    for (int i = 0; i < 3; i++)
        if (sizes[i] >= KCPU_ADAM8_MIN_N)
            for (size_t b = 0; b < kcpu_adamw8bit_state_bytes(sizes[i]); b++)
                diff += got[segs[i].state_off + b] != st[segs[i].state_off + b];
    printf("  %-44s %zu bytes differ (must be 0)\n", "adamw8bit_multi quantised states", diff);
    CHECK_INT(diff, 0);
    dfree_all();
}

/* grad_norm and clip_grad_norm over n random gradients against the CPU (the emulation runs it
 * with a smaller n). */
static void grad_norm_case(size_t n)
{
    vec g = rnd(n);
    float *d_g = up(g);
    double ref = kcpu_grad_norm(g.data(), n), got = kcuda_grad_norm(d_g, n);
    printf("  %-44s cpu %.12g gpu %.12g\n", "grad_norm", ref, got);
    CHECK_REL(got, ref, 1e-9);
    double again = kcuda_grad_norm(d_g, n);
    CHECK_MSG(again == got, "grad_norm not deterministic: %.17g vs %.17g", again, got);
    double nc = kcpu_clip_grad_norm(g.data(), n, 1.0), ng = kcuda_clip_grad_norm(d_g, n, 1.0);
    CHECK_REL(ng, nc, 1e-9);
    expect_close("clip_grad_norm scaled gradient", d_g, g, 1e-7);
    /* max_norm above the norm: unchanged. */
    ng = kcuda_clip_grad_norm(d_g, n, 1e9);
    expect_close("clip_grad_norm below max: unchanged", d_g, g, 0.0);
    dfree_all();
}

static void test_grad_norm(void)
{
    grad_norm_case(1000003);
}

/* ---------------------------------------------------------------- formats */

static void test_bf16_int8(void)
{
    const size_t n = 4099;
    vec x = rnd(n, 100.0f);
    x[0] = NAN;
    x[1] = -NAN;
    x[2] = INFINITY;
    x[3] = -0.0f;
    x[4] = 3.4028235e38f; /* rounds to infinity */
    x[5] = 1.0f + 1.0f / 256.0f; /* a tie: to even */
    std::vector<uint16_t> ref(n), back_ref_u(n);
    kcpu_f32_to_bf16(ref.data(), x.data(), n);
    float *d_x = up(x);
    uint16_t *d_b = (uint16_t *)dalloc(n * 2);
    kcuda_f32_to_bf16(d_b, d_x, n);
    std::vector<uint16_t> got = down(d_b, n);
    CHECK_MSG(memcmp(got.data(), ref.data(), n * 2) == 0, "f32_to_bf16 differs from the CPU's bits");
    printf("  %-44s %s\n", "f32_to_bf16 bits", memcmp(got.data(), ref.data(), n * 2) ? "DIFFER" : "identical");
    vec back(n);
    kcpu_bf16_to_f32(back.data(), ref.data(), n);
    float *d_back = (float *)dalloc(n * 4);
    kcuda_bf16_to_f32(d_back, d_b, n);
    vec gb = down(d_back, n);
    CHECK(memcmp(gb.data(), back.data(), n * 4) == 0);

    const int OC = 37, C = 300, N = 11;
    vec w = rnd((size_t)OC * C), inp = rnd((size_t)N * C), bias = rnd(OC);
    for (int c = 0; c < C; c++)
        w[5 * C + c] = 0.0f; /* a zero row: scale 0 */
    std::vector<int8_t> wq((size_t)OC * C);
    vec sc(OC), out((size_t)N * OC);
    kcpu_quantize_int8_rows(wq.data(), sc.data(), w.data(), OC, C);
    float *d_w = up(w), *d_sc = (float *)dalloc(OC * 4), *d_in = up(inp), *d_bias = up(bias);
    int8_t *d_wq = (int8_t *)dalloc(wq.size());
    kcuda_quantize_int8_rows(d_wq, d_sc, d_w, OC, C);
    std::vector<int8_t> gq = down(d_wq, wq.size());
    CHECK_MSG(memcmp(gq.data(), wq.data(), wq.size()) == 0, "int8 codes differ from the CPU's");
    expect_close("quantize_int8_rows scales", d_sc, sc, 0.0);
    float *d_out = (float *)dalloc(out.size() * 4);
    kcpu_matmul_int8_forward(out.data(), inp.data(), wq.data(), sc.data(), bias.data(), N, C, OC);
    kcuda_matmul_int8_forward(d_out, d_in, d_wq, d_sc, d_bias, N, C, OC);
    expect_close("matmul_int8_forward", d_out, out, 1e-4);
    dfree_all();
}

/* fp16 (fp16-mixed): kcuda_f32_to_f16 / f16_to_f32 / round_f16 against the kcpu_ versions,
 * bit for bit, NaN included (sign and payload: the kernels handle NaN themselves because the
 * hardware's conversion returns a canonical NaN). Inputs: all 65536 halves (decoded, then
 * encoded again: each must come back as itself, a signalling NaN as its quiet twin) and fp32 values at the edges where the rounding
 * changes: around 65504/65520 (largest half, overflow), 2^-14 (smallest normal), 2^-24 and
 * 2^-25 (smallest subnormal, and the tie below it), the midpoints between neighbouring halves
 * and one fp32 ulp either side of them, NaN payloads, infinities, signed zeros, plus random
 * values over the whole fp32 exponent range. */
static uint32_t rand_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static uint32_t f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static void f16_bits_case(const char *what, const vec &x)
{
    size_t n = x.size();
    std::vector<uint16_t> ref(n);
    vec ref_r(n);
    kcpu_f32_to_f16(ref.data(), x.data(), n);
    kcpu_round_f16(ref_r.data(), x.data(), n);
    float *d_x = up(x), *d_r = (float *)dalloc(n * 4);
    uint16_t *d_h = (uint16_t *)dalloc(n * 2);
    kcuda_f32_to_f16(d_h, d_x, n);
    kcuda_round_f16(d_r, d_x, n);
    std::vector<uint16_t> got = down(d_h, n);
    vec got_r = down(d_r, n);
    size_t bad = 0, bad_r = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        bad += got[i] != ref[i];
        if (got[i] != ref[i] && first == n)
            first = i;
        bad_r += memcmp(&got_r[i], &ref_r[i], 4) != 0;
    }
    printf("  %-44s %zu of %zu differ\n", what, bad, n);
    CHECK_MSG(bad == 0, "%s: %zu values differ, first x=%a (0x%08x): gpu 0x%04x, cpu 0x%04x",
              what, bad, first < n ? (double)x[first] : 0.0,
              first < n ? f2u(x[first]) : 0u, first < n ? got[first] : 0,
              first < n ? ref[first] : 0);
    CHECK_MSG(bad_r == 0, "%s: round_f16 differs from the CPU's bits in %zu values", what, bad_r);
    /* In place (dst == src), as the contract allows. */
    kcuda_round_f16(d_x, d_x, n);
    vec got_ip = down(d_x, n);
    CHECK_MSG(memcmp(got_ip.data(), ref_r.data(), n * 4) == 0, "%s: round_f16 in place differs",
              what);
    dfree_all();
}

static void test_fp16(void)
{
    /* Every half: decode (GPU vs CPU), then encode the CPU's decoding again. */
    const size_t nh = 65536;
    std::vector<uint16_t> all(nh);
    for (size_t i = 0; i < nh; i++)
        all[i] = (uint16_t)i;
    vec dec(nh);
    kcpu_f16_to_f32(dec.data(), all.data(), nh);
    uint16_t *d_all = up(all);
    float *d_dec = (float *)dalloc(nh * 4);
    kcuda_f16_to_f32(d_dec, d_all, nh);
    vec gdec = down(d_dec, nh);
    size_t bad = 0;
    for (size_t i = 0; i < nh; i++)
        bad += memcmp(&gdec[i], &dec[i], 4) != 0;
    printf("  %-44s %zu of %zu differ\n", "f16_to_f32 (all halves)", bad, nh);
    CHECK_MSG(bad == 0, "f16_to_f32: %zu of the 65536 halves decode differently", bad);
    float *d_dec_cpu = up(dec);
    uint16_t *d_back = (uint16_t *)dalloc(nh * 2);
    kcuda_f32_to_f16(d_back, d_dec_cpu, nh);
    std::vector<uint16_t> back = down(d_back, nh);
    bad = 0;
    for (size_t i = 0; i < nh; i++) {
        bool nan = (all[i] & 0x7fffu) > 0x7c00u; /* a signalling NaN comes back quiet */
        bad += back[i] != (nan ? (all[i] | 0x0200u) : all[i]);
    }
    printf("  %-44s %zu of %zu differ\n", "f32_to_f16 round trip (all halves)", bad, nh);
    CHECK_MSG(bad == 0, "f32_to_f16(f16_to_f32(h)) != h (quietened if NaN) for %zu halves", bad);
    dfree_all();
    f16_bits_case("f32_to_f16 / round_f16 (all halves)", dec);

    /* The edges, each with its neighbours one fp32 ulp away, both signs. */
    vec x;
    const float edges[] = {65504.0f, 65520.0f, 65536.0f, 0x1p-14f, 0x1p-24f, 0x1p-25f,
                           0x1.8p-25f, 0x1p-26f, 0x1.ffcp-15f, 1.0f, 2048.0f, 4097.0f,
                           3.4028235e38f, 1e-40f /* an fp32 subnormal */};
    for (float e : edges)
        for (int d = -2; d <= 2; d++) {
            float v = u2f(f2u(e) + (uint32_t)d);
            x.push_back(v);
            x.push_back(-v);
        }
    /* Midpoints between neighbouring halves (ties), and one ulp either side, across the range. */
    for (uint32_t h = 0; h < 0x7c00u; h += 37) {
        float lo = dec[h], hi = dec[h + 1];
        float mid = (float)(((double)lo + (double)hi) / 2.0);
        x.push_back(mid);
        x.push_back(-nextafterf(mid, 0.0f));
        x.push_back(nextafterf(mid, INFINITY));
    }
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u,
                                 0x7f800001u, 0x7fa5a5a5u, 0xff812345u, 0x7fffffffu,
                                 0x00000000u, 0x80000000u};
    for (uint32_t u : specials)
        x.push_back(u2f(u));
    /* Random fp32 bit patterns with exponents from 2^-30 to 2^20, then uniform in [-1e5, 1e5). */
    while (x.size() < 6000) {
        uint32_t r = rand_u32(), ex = 97u + rand_u32() % 51u; /* biased exponent 97 .. 147 */
        x.push_back(u2f((r & 0x807fffffu) | (ex << 23)));
    }
    for (int i = 0; i < 2000; i++)
        x.push_back(frand() * 1e5f);
    f16_bits_case("f32_to_f16 / round_f16 (edges, random)", x);
}

int main(void)
{
    /* The default: the 16-bit entries use the tensor-core kernels where supported. (Cleared
     * before the plugin reads it, once.) */
    unsetenv("SCALEWISE_CUDA_ATTENTION");
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        printf("test_cuda_kernels: skipped: no GPU (cudaGetDeviceCount returned %d: %s)\n",
               (int)e, e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        printf("test_cuda_kernels: 0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    char err[512];
    if (!scalewise_cuda_backend(BACKEND_API_VERSION, err, sizeof err)) {
        printf("test_cuda_kernels: skipped: no GPU (%s)\n", err);
        printf("test_cuda_kernels: 0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    const cudaDeviceProp *prop = cuda_props();
    printf("test_cuda_kernels on %s (sm_%d%d)\n", prop->name, prop->major, prop->minor);
    RUN(test_embedding);
    RUN(test_residual_strided);
    RUN(test_norms);
    RUN(test_activations);
    RUN(test_rope);
    RUN(test_a16_elementwise);
    RUN(test_flash_attention);
    RUN(test_flash_attention_bf16);
    RUN(test_flash_attention_tc);
    RUN(test_flash_attention_a16);
    RUN(test_attention_tuning);
    RUN(test_attention_materialised);
    RUN(test_kv_cache_decode);
    RUN(test_decode_c16);
    RUN(test_softmax_ce);
    RUN(test_softmax_ce_a16);
    RUN(test_argmax_rows);
    RUN(test_optimizers);
    RUN(test_adafactor);
    RUN(test_adamw8bit);
    RUN(test_multi_segment);
    RUN(test_grad_norm);
    RUN(test_bf16_int8);
    RUN(test_fp16);
    return harness_finish("test_cuda_kernels");
}
