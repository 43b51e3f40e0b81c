/* The CUDA backend's infrastructure, through the loader exactly as the executor uses it
 * (backend_cuda_load, no CUDA headers here): the loader's refusals, then on a GPU the table,
 * the allocator's per-category accounting and out-of-memory report, the copies and memset,
 * and the cuBLASLt matmuls against the CPU kernels on random inputs.
 * Tolerances: each output element's error is bounded relative to b = Σ_k |x_k·y_k| (the sum
 * of absolute products of its dot product), so the bound holds for any data:
 *  - fp32 entries run TF32 (10-bit mantissas): |gpu - cpu| <= 2e-3·b (two roundings of
 *    2^-11 per product plus fp32 sums);
 *  - bf16 entries are compared with kcpu_matmul_bf16_*_ref, which rounds the same operands
 *    the same way (nearest even), so only the fp32 summation order differs: <= 1e-4·b;
 *  - fp16 entries are compared with the CPU's emulation of fp16-mixed (kcpu_round_f16 on the
 *    activations, the decoded fp16 weight, the fp32 matmul): again only the summation order
 *    differs (products of two 11-bit significands are exact in fp32): <= 5e-5·b. Half the bf16
 *    bound, so that rounding the operands to bf16 instead of fp16 fails every case but the
 *    50304-wide input gradient (it gives 2e-4 to 2e-3 of b on these shapes);
 *  - the 16-bit weight gradients against a double sum of the same rounded operands, with the
 *    format's tolerance;
 *  - the bias gradient is an fp32 column sum: <= 1e-5·Σ|dout| + 1e-6.
 * test_f16_overflow checks that an fp16 operand from 65520 up makes the outputs that use it
 * infinite (what dynamic loss scaling detects), as in the CPU's emulation.
 * Where no GPU is present it checks that the plugin loads and says why there is no device, and
 * prints "skipped: no GPU (<reason>)". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/backend.h"
#include "harness.h"
#include "kernels/cpu/kernels_cpu.h"

static const struct backend *be;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *host_rand(size_t n)
{
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

/* A device copy of host[0..n) (+ `pad` floats in front, to test unaligned pointers). */
static float *dev_from(const float *host, size_t n, enum backend_mem cat, void **base, int pad)
{
    struct sw_err err;
    *base = be->alloc((n + (size_t)pad) * sizeof(float), cat, &err);
    SW_ASSERT(*base);
    float *d = (float *)*base + pad;
    be->memcpy(d, host, n * sizeof(float), BACKEND_H2D);
    return d;
}

/* be->free of each of n device buffers. */
static void dev_free_all(void *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        be->free(p[i]);
}

static void to_host(float *host, const float *dev, size_t n)
{
    be->memcpy(host, dev, n * sizeof(float), BACKEND_D2H);
}

/* ---------------------------------------------------------------- loader (any machine) */

static void test_loader_missing_plugin(void)
{
    /* Run before the real load: a successful load is cached for the process. */
    setenv("SCALEWISE_CUDA_PLUGIN", "/nonexistent/libscalewise-cuda.so", 1);
    struct sw_err err;
    sw_err_init(&err);
    CHECK(backend_cuda_load(&err) == NULL);
    CHECK_INT(err.code, SW_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "not built") && strstr(err.msg, "/nonexistent/"), "msg: %s",
              err.msg);
    unsetenv("SCALEWISE_CUDA_PLUGIN");
}

/* ---------------------------------------------------------------- GPU */

static void test_table(void)
{
    CHECK_STR(be->name, "cuda");
    CHECK(be->alloc && be->free && be->memcpy && be->memset && be->mem_stats &&
          be->mem_reset_peak && be->synchronize);
    CHECK(be->matmul_forward && be->matmul_backward && be->matmul_bf16_forward &&
          be->matmul_bf16_backward_input && be->matmul_bf16_scratch_bytes);
    CHECK(be->has_native_bf16 && be->has_native_bf16());
    CHECK(be->flash_max_hs >= 64);
    /* Kernel entries the plugin does not define yet are NULL (the executor refuses plans
     * that need them): list them, so the state is visible in the log. */
    const void *const *slot = (const void *const *)&be->copy_2d;
    const void *const *end = (const void *const *)(be + 1);
    int missing = 0;
    for (; slot < end; slot++)
        missing += *slot == NULL;
    printf("test_cuda_backend: %d of %d kernel entries not implemented yet\n", missing,
           (int)(end - (const void *const *)&be->copy_2d));
}

static void test_alloc_accounting(void)
{
    struct backend_mem_stats s0, s1, s2;
    struct sw_err err;
    be->mem_stats(&s0);
    void *a = be->alloc(1 << 20, BACKEND_MEM_WEIGHTS, &err);
    void *b = be->alloc(123, BACKEND_MEM_GRADIENTS, &err);
    void *z1 = be->alloc(0, BACKEND_MEM_ACTIVATIONS, &err);
    void *z2 = be->alloc(0, BACKEND_MEM_ACTIVATIONS, &err);
    CHECK(a && b && z1 && z2);
    CHECK(z1 != z2); /* bytes == 0 still gives a unique pointer */
    CHECK((uintptr_t)a % 64 == 0 && (uintptr_t)b % 64 == 0);
    be->mem_stats(&s1);
    CHECK_INT(s1.current_bytes[BACKEND_MEM_WEIGHTS] - s0.current_bytes[BACKEND_MEM_WEIGHTS],
              1 << 20);
    CHECK_INT(s1.current_bytes[BACKEND_MEM_GRADIENTS] - s0.current_bytes[BACKEND_MEM_GRADIENTS],
              123);
    CHECK_INT(s1.current_bytes[BACKEND_MEM_ACTIVATIONS],
              s0.current_bytes[BACKEND_MEM_ACTIVATIONS]);
    CHECK_INT(s1.current_total_bytes - s0.current_total_bytes, (1 << 20) + 123);
    CHECK(s1.peak_total_bytes >= s1.current_total_bytes);
    be->free(a);
    be->free(b);
    be->free(z1);
    be->free(z2);
    be->free(NULL);
    be->mem_stats(&s2);
    CHECK_INT(s2.current_total_bytes, s0.current_total_bytes);
    CHECK_INT(s2.current_bytes[BACKEND_MEM_WEIGHTS], s0.current_bytes[BACKEND_MEM_WEIGHTS]);
    CHECK(s2.peak_bytes[BACKEND_MEM_WEIGHTS] >= s0.current_bytes[BACKEND_MEM_WEIGHTS] + (1 << 20));
    be->mem_reset_peak();
    be->mem_stats(&s2);
    CHECK_INT(s2.peak_total_bytes, s2.current_total_bytes);
    CHECK_INT(s2.peak_bytes[BACKEND_MEM_WEIGHTS], s2.current_bytes[BACKEND_MEM_WEIGHTS]);

    /* Out of memory: NULL, SW_ENOMEM naming bytes, category and what is held; nothing counted;
     * the device still works afterwards. */
    void *keep = be->alloc(4096, BACKEND_MEM_OPTIMIZER, &err);
    sw_err_init(&err);
    void *huge = be->alloc((size_t)1 << 50, BACKEND_MEM_ACTIVATIONS, &err);
    CHECK(huge == NULL);
    CHECK_INT(err.code, SW_ENOMEM);
    CHECK_MSG(strstr(err.msg, "1125899906842624 bytes") && strstr(err.msg, "for activations") &&
                  strstr(err.msg, "already allocated") && strstr(err.msg, "optimizer 4.00 KiB"),
              "msg: %s", err.msg);
    printf("test_cuda_backend: out-of-memory message: %s\n", err.msg);
    struct backend_mem_stats s3;
    be->mem_stats(&s3);
    CHECK_INT(s3.current_bytes[BACKEND_MEM_ACTIVATIONS], s2.current_bytes[BACKEND_MEM_ACTIVATIONS]);
    void *after = be->alloc(1 << 16, BACKEND_MEM_ACTIVATIONS, &err);
    CHECK(after != NULL);
    be->memset(after, 0, 1 << 16);
    be->synchronize();
    be->free(after);
    be->free(keep);
}

static void test_copies(void)
{
    enum { N = 100003 };
    float *h = host_rand(N), *back = malloc(N * sizeof(float));
    void *b1;
    float *d1 = dev_from(h, N, BACKEND_MEM_WORKSPACE, &b1, 0);
    struct sw_err err;
    float *d2 = be->alloc(N * sizeof(float), BACKEND_MEM_WORKSPACE, &err);
    SW_ASSERT(d2);
    be->memcpy(d2, d1, N * sizeof(float), BACKEND_D2D);
    to_host(back, d2, N);
    CHECK(memcmp(back, h, N * sizeof(float)) == 0);
    /* memset sets bytes: 0x3f3f3f3f as a float. */
    be->memset(d2 + 5, 0x3f, 7 * sizeof(float));
    to_host(back, d2, N);
    uint32_t word;
    memcpy(&word, &back[5], 4);
    CHECK_INT(word, 0x3f3f3f3fu);
    memcpy(&word, &back[11], 4);
    CHECK_INT(word, 0x3f3f3f3fu);
    CHECK(back[4] == h[4] && back[12] == h[12]);
    /* Page-locked host memory (generation's logits): a device-to-host copy lands in it. */
    CHECK(be->host_alloc_pinned && be->host_free_pinned);
    float *pinned = be->host_alloc_pinned ? be->host_alloc_pinned(N * sizeof(float)) : NULL;
    CHECK(pinned != NULL);
    if (pinned) {
        be->memcpy(pinned, d1, N * sizeof(float), BACKEND_D2H);
        CHECK(memcmp(pinned, h, N * sizeof(float)) == 0);
        be->host_free_pinned(pinned);
    }
    be->free(b1);
    be->free(d2);
    free(h);
    free(back);
}

/* optim_step_segments (one launch over a region's segments) against one per-segment call each,
 * bit for bit, for the five element-wise optimizers: three segments of 1000, 37 and 5000
 * elements (8-bit AdamW quantises blocks of >= KCPU_ADAM8_MIN_N), weight decay on, off, on,
 * three steps. */
static void test_optim_segments(void)
{
    CHECK(be->optim_step_segments != NULL);
    if (!be->optim_step_segments)
        return;
    enum { NSEG = 3 };
    const size_t sz[NSEG] = {1000, 37, 5000};
    struct backend_opt_seg segs[NSEG];
    size_t n = 0, sbytes = 0;
    for (int i = 0; i < NSEG; i++) {
        segs[i].off = n;
        segs[i].n = sz[i];
        segs[i].state_off = sbytes;
        segs[i].weight_decay = i == 1 ? 0.0f : 0.1f;
        n += sz[i];
        sbytes += (be->adamw8bit_state_bytes(sz[i]) + 3) / 4 * 4; /* 4-byte aligned blocks */
    }
    static const char *const names[] = {"adamw", "sgd", "sgd_momentum", "lion", "adamw8bit"};
    float *p0 = host_rand(n), *g0 = host_rand(n), *a = malloc(n * 4), *b = malloc(n * 4);
    for (int kind = BACKEND_OPTIM_ADAMW; kind <= BACKEND_OPTIM_ADAMW8BIT; kind++) {
        bool q8 = kind == BACKEND_OPTIM_ADAMW8BIT;
        size_t state = q8 ? sbytes : 2 * n * sizeof(float);
        struct sw_err err;
        void *pa, *pb, *gb, *sa = be->alloc(state, BACKEND_MEM_OPTIMIZER, &err);
        void *sb = be->alloc(state, BACKEND_MEM_OPTIMIZER, &err);
        SW_ASSERT(sa && sb);
        be->memset(sa, 0, state);
        be->memset(sb, 0, state);
        float *dpa = dev_from(p0, n, BACKEND_MEM_WEIGHTS, &pa, 0);
        float *dpb = dev_from(p0, n, BACKEND_MEM_WEIGHTS, &pb, 0);
        float *dg = dev_from(g0, n, BACKEND_MEM_GRADIENTS, &gb, 0);
        float *fb = sb;
        for (int step = 1; step <= 3; step++) {
            be->optim_step_segments((enum backend_optim)kind, dpa, dg, sa, n, segs, NSEG, step,
                                    1e-2f, 0.9f, 0.95f, 1e-8f);
            for (int i = 0; i < NSEG; i++) {
                size_t o = segs[i].off, k = segs[i].n;
                float wd = segs[i].weight_decay;
                switch (kind) {
                case BACKEND_OPTIM_ADAMW:
                    be->adamw_step(dpb + o, dg + o, fb + o, fb + n + o, k, step, 1e-2f, 0.9f,
                                   0.95f, 1e-8f, wd);
                    break;
                case BACKEND_OPTIM_SGD:
                    be->sgd_step(dpb + o, dg + o, k, 1e-2f, wd);
                    break;
                case BACKEND_OPTIM_SGD_MOMENTUM:
                    be->sgd_momentum_step(dpb + o, dg + o, fb + o, k, 1e-2f, 0.9f, wd, false);
                    break;
                case BACKEND_OPTIM_LION:
                    be->lion_step(dpb + o, dg + o, fb + o, k, 1e-2f, 0.9f, 0.95f, wd);
                    break;
                default:
                    be->adamw8bit_step(dpb + o, dg + o, (char *)sb + segs[i].state_off, k, step,
                                       1e-2f, 0.9f, 0.95f, 1e-8f, wd);
                }
            }
        }
        to_host(a, dpa, n);
        to_host(b, dpb, n);
        CHECK_MSG(memcmp(a, b, n * 4) == 0, "optim_step_segments %s: parameters differ from "
                  "per-segment calls", names[kind]);
        CHECK_MSG(memcmp(a, p0, n * 4) != 0, "optim_step_segments %s: nothing updated",
                  names[kind]);
        be->free(pa);
        be->free(pb);
        be->free(gb);
        be->free(sa);
        be->free(sb);
    }
    printf("  optim_step_segments: 5 optimizers, 3 segments, 3 steps: equal to per-segment "
           "calls bit for bit\n");
    free(p0);
    free(g0);
    free(a);
    free(b);
}

static bool compare_quiet; /* compare prints only failures */

/* max |got - want| / bound over n elements; counts elements beyond tol·bound + abs_tol, and
 * NaN where want is not (a gradient written over NaN that was accumulated into instead). */
static int compare(const char *what, const float *got, const float *want, const double *bound,
                   size_t n, double tol, double abs_tol)
{
    double worst = 0, worst_abs = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = isnan(got[i]) && isnan(want[i]) ? 0 : fabs((double)got[i] - (double)want[i]);
        if (!(d <= tol * bound[i] + abs_tol))
            bad++;
        if (d != d) /* NaN: shown as infinite */
            d = INFINITY;
        if (bound[i] > 0 && d / bound[i] > worst)
            worst = d / bound[i];
        if (d > worst_abs)
            worst_abs = d;
    }
    if (bad || !compare_quiet)
        printf("test_cuda_backend: %-34s max error %.3g (%.3g of the bound; tolerance %.3g)%s\n",
               what, worst_abs, worst, tol, bad ? "  FAIL" : "");
    return bad;
}

/* Bounds of out = x·wᵀ (+bias): Σ_k |x[n,k] w[o,k]| (+|bias|). */
static double *bound_fwd(const float *x, const float *w, const float *bias, int N, int C, int OC)
{
    double *b = malloc((size_t)N * OC * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? fabs(bias[o]) : 0;
            for (int k = 0; k < C; k++)
                s += fabs((double)x[(size_t)n * C + k] * w[(size_t)o * C + k]);
            b[(size_t)n * OC + o] = s;
        }
    return b;
}

/* The fused MLP matmul (matmul_gelu_forward) in format fmt: its pre-activation against the
 * unfused reference `ref` (tolerance tol of the bound), and its output against the CPU's GELU
 * (the tanh form) of the pre-activation it wrote, within 2e-3·(1 + |pre|): cuBLASLt's epilogue
 * may evaluate tanh with a fast approximation (about 2^-11 relative) or even use the erf form
 * (differences up to about 1e-3), either of which trains the same; the printed maximum error
 * says which (under 1e-6: the same tanh form as the CPU). A wrong activation or a missing GELU
 * fails. */
static void gelu_fused_check(const char *fmt_name, int fmt, const float *dX, const void *dW,
                             const float *dB, int N, int C, int OC, void *scratch,
                             const float *ref, const double *bound, double tol)
{
    if (!be->matmul_gelu_forward) {
        printf("test_cuda_backend: no matmul_gelu_forward (SCALEWISE_CUDA_FUSED_GELU=0)\n");
        return;
    }
    size_t no = (size_t)N * OC;
    struct sw_err err;
    float *dOut = be->alloc(no * sizeof(float), BACKEND_MEM_ACTIVATIONS, &err);
    float *dPre = be->alloc(no * sizeof(float), BACKEND_MEM_ACTIVATIONS, &err);
    SW_ASSERT(dOut && dPre);
    float *pre = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float)),
          *want = malloc(no * sizeof(float));
    be->matmul_gelu_forward(dOut, dPre, dX, dW, fmt, dB, N, C, OC, scratch);
    to_host(pre, dPre, no);
    to_host(out, dOut, no);
    char what[96];
    snprintf(what, sizeof what, "%s gelu-fused pre %dx%dx%d", fmt_name, N, C, OC);
    CHECK(compare(what, pre, ref, bound, no, tol, 1e-6) == 0);
    kcpu_gelu_forward(want, pre, no);
    double *gb = malloc(no * sizeof(double));
    for (size_t i = 0; i < no; i++)
        gb[i] = 1.0 + fabs(pre[i]);
    snprintf(what, sizeof what, "%s gelu-fused out %dx%dx%d", fmt_name, N, C, OC);
    CHECK(compare(what, out, want, gb, no, 2e-3, 0) == 0);
    be->free(dOut);
    be->free(dPre);
    free(pre), free(out), free(want), free(gb);
}

/* The fused backward partner (matmul_backward_input_dgelu) in format fmt, with x as the
 * pre-activation: dpre = (dout·W) ⊙ gelu'(x), against `prod` (the same product computed by the
 * CPU reference into zeros) through kcpu_gelu_backward. The bound is the product's (bound,
 * which may include an accumulated term) times 1.13, GELU's largest slope; the tolerance is the
 * format's plus 2e-3 for an epilogue whose gelu' is a fast approximation (see
 * gelu_fused_check). The written output must ignore what the buffer held (it is filled with NaN
 * first). */
static void dgelu_fused_check(const char *fmt_name, int fmt, const float *dDO, const void *dW,
                              const float *dX, const float *x, int N, int C, int OC,
                              void *scratch, const float *prod, const double *bound, double tol)
{
    if (!be->matmul_backward_input_dgelu) {
        printf("test_cuda_backend: no matmul_backward_input_dgelu (SCALEWISE_CUDA_FUSED_GELU=0)\n");
        return;
    }
    size_t nx = (size_t)N * C;
    struct sw_err err;
    float *dD = be->alloc(nx * sizeof(float), BACKEND_MEM_GRADIENTS, &err);
    SW_ASSERT(dD);
    float *got = malloc(nx * sizeof(float)), *want = calloc(nx, sizeof(float));
    double *b = malloc(nx * sizeof(double));
    for (size_t i = 0; i < nx; i++)
        got[i] = NAN, b[i] = 1.13 * bound[i];
    be->memcpy(dD, got, nx * sizeof(float), BACKEND_H2D);
    be->matmul_backward_input_dgelu(dD, dDO, dW, fmt, dX, N, C, OC, scratch);
    to_host(got, dD, nx);
    kcpu_gelu_backward(want, x, prod, nx);
    char what[96];
    snprintf(what, sizeof what, "%s dgelu-fused dinp %dx%dx%d", fmt_name, N, C, OC);
    CHECK(compare(what, got, want, b, nx, tol + 2e-3, 1e-6) == 0);
    be->free(dD);
    free(got), free(want), free(b);
}

/* One matmul shape's data, shared by the checks of its 16-bit entries. */
struct mm {
    int N, C, OC;
    size_t nx, nw, no;
    const float *x, *w, *bias, *dout, *dx0, *dw0, *db0; /* host inputs */
    const float *rdb;                                   /* db0 + Σ dout in fp32 */
    const double *bb;                                   /* its bound: Σ |dout| */
    float *ref, *got, *rdx, *rdw;                       /* host work arrays (n·x, n·w, n·out) */
    double *bx, *bw;                                    /* bound work arrays */
    float *dX, *dB, *dO, *dDO, *dDX, *dDW, *dDB;        /* device copies */
};

typedef void (*lp16_fwd_fn)(float *out, const float *inp, const uint16_t *weight,
                            const float *bias, int N, int C, int OC, void *scratch);
typedef void (*lp16_bin_fn)(float *dinp, const float *dout, const uint16_t *weight, int N, int C,
                            int OC, void *scratch);
typedef void (*lp16_bw_fn)(float *dweight, float *dbias, const float *dout, const float *inp,
                           int N, int C, int OC, void *scratch);

/* A 16-bit weight format: its CPU conversions and references, and which backend entries run it.
 * The references take the same operands the entries do (fp32 x and dout, the 16-bit weight) and
 * round them the same way, so only the order of the fp32 sums differs from the GPU. */
struct lp16_fmt {
    const char *name; /* "bf16" | "fp16" */
    bool fp16;        /* true: the matmul_f16_* entries; false: matmul_bf16_* */
    void (*encode)(uint16_t *dst, const float *src, size_t n);
    void (*decode)(float *dst, const uint16_t *src, size_t n);
    void (*ref_forward)(float *out, const float *inp, const uint16_t *w16, const float *bias,
                        int N, int C, int OC);
    void (*ref_backward_input)(float *dinp, const float *dout, const uint16_t *w16, int N, int C,
                               int OC);
    double tol; /* relative to the bound b = Σ |products| (file comment) */
};

/* fp16-mixed as the CPU runs it (the backend's matmul_f16_* entries are NULL there): the
 * activations rounded by kcpu_round_f16, the fp16 weight decoded, then the fp32 matmul. */
static void f16_forward_ref(float *out, const float *inp, const uint16_t *w16, const float *bias,
                            int N, int C, int OC)
{
    float *xr = malloc((size_t)N * C * sizeof(float) + 1);
    float *wf = malloc((size_t)OC * C * sizeof(float) + 1);
    kcpu_round_f16(xr, inp, (size_t)N * C);
    kcpu_f16_to_f32(wf, w16, (size_t)OC * C);
    kcpu_matmul_forward(out, xr, wf, bias, N, C, OC);
    free(xr);
    free(wf);
}

static void f16_backward_input_ref(float *dinp, const float *dout, const uint16_t *w16, int N,
                                   int C, int OC)
{
    float *gr = malloc((size_t)N * OC * sizeof(float) + 1);
    float *wf = malloc((size_t)OC * C * sizeof(float) + 1);
    kcpu_round_f16(gr, dout, (size_t)N * OC);
    kcpu_f16_to_f32(wf, w16, (size_t)OC * C);
    kcpu_matmul_backward(dinp, NULL, NULL, gr, NULL, wf, N, C, OC);
    free(gr);
    free(wf);
}

static const struct lp16_fmt LP_BF16 = {"bf16", false, kcpu_f32_to_bf16, kcpu_bf16_to_f32,
                                        kcpu_matmul_bf16_forward_ref,
                                        kcpu_matmul_bf16_backward_input_ref, 1e-4};
static const struct lp16_fmt LP_F16 = {"fp16", true, kcpu_f32_to_f16, kcpu_f16_to_f32,
                                       f16_forward_ref, f16_backward_input_ref, 5e-5};

/* The format's forward, input gradient and weight (and bias) gradient on m's data, each against
 * the CPU reference; the weight gradient against a double-precision sum of the same rounded
 * operands. */
static void lp16_checks(const struct lp16_fmt *f, const struct mm *m)
{
    const int N = m->N, C = m->C, OC = m->OC;
    const size_t nx = m->nx, nw = m->nw, no = m->no;
    lp16_fwd_fn fwd = f->fp16 ? be->matmul_f16_forward : be->matmul_bf16_forward;
    lp16_bin_fn bin = f->fp16 ? be->matmul_f16_backward_input : be->matmul_bf16_backward_input;
    lp16_bw_fn bwt = f->fp16 ? be->matmul_f16_backward_weight : be->matmul_bf16_backward_weight;
    CHECK_MSG(fwd && bin && bwt, "%s matmul entries missing", f->name);
    if (!fwd || !bin || !bwt)
        return;
    char what[96];
    struct sw_err err;
    uint16_t *w16 = malloc(nw * sizeof(uint16_t));
    f->encode(w16, m->w, nw);
    void *dW16 = be->alloc(nw * sizeof(uint16_t), BACKEND_MEM_WEIGHTS, &err);
    void *scratch = be->alloc(be->matmul_bf16_scratch_bytes(N), BACKEND_MEM_WORKSPACE, &err);
    SW_ASSERT(dW16 && scratch);
    be->memcpy(dW16, w16, nw * sizeof(uint16_t), BACKEND_H2D);
    /* The rounded operands, for the bounds and the weight-gradient reference. */
    float *w16f = malloc(nw * sizeof(float)), *x16f = malloc(nx * sizeof(float)),
          *do16f = malloc(no * sizeof(float));
    uint16_t *tmp16 = malloc((nx > no ? nx : no) * sizeof(uint16_t));
    f->decode(w16f, w16, nw);
    f->encode(tmp16, m->x, nx);
    f->decode(x16f, tmp16, nx);
    f->encode(tmp16, m->dout, no);
    f->decode(do16f, tmp16, no);

    f->ref_forward(m->ref, m->x, w16, m->bias, N, C, OC);
    fwd(m->dO, m->dX, dW16, m->dB, N, C, OC, scratch);
    to_host(m->got, m->dO, no);
    double *bfwd = bound_fwd(x16f, w16f, m->bias, N, C, OC);
    snprintf(what, sizeof what, "%s fwd %dx%dx%d", f->name, N, C, OC);
    CHECK(compare(what, m->got, m->ref, bfwd, no, f->tol, 1e-6) == 0);
    gelu_fused_check(f->name, f->fp16 ? BACKEND_WFMT_FP16 : BACKEND_WFMT_BF16, m->dX, dW16, m->dB,
                     N, C, OC, scratch, m->ref, bfwd, f->tol);

    memcpy(m->rdx, m->dx0, nx * sizeof(float));
    be->memcpy(m->dDX, m->dx0, nx * sizeof(float), BACKEND_H2D);
    f->ref_backward_input(m->rdx, m->dout, w16, N, C, OC);
    bin(m->dDX, m->dDO, dW16, N, C, OC, scratch);
    to_host(m->got, m->dDX, nx);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = fabs(m->dx0[(size_t)n * C + c]);
            for (int o = 0; o < OC; o++)
                s += fabs((double)do16f[(size_t)n * OC + o] * w16f[(size_t)o * C + c]);
            m->bx[(size_t)n * C + c] = s;
        }
    snprintf(what, sizeof what, "%s dinp %dx%dx%d", f->name, N, C, OC);
    CHECK(compare(what, m->got, m->rdx, m->bx, nx, f->tol, 1e-6) == 0);
    float *prod = calloc(nx, sizeof(float));
    f->ref_backward_input(prod, m->dout, w16, N, C, OC);
    dgelu_fused_check(f->name, f->fp16 ? BACKEND_WFMT_FP16 : BACKEND_WFMT_BF16, m->dDO, dW16,
                      m->dX, m->x, N, C, OC, scratch, prod, m->bx, f->tol);
    free(prod);

    /* dW += r(dout)ᵀ·r(x) in fp32, dbias += Σ dout (fp32). */
    be->memcpy(m->dDW, m->dw0, nw * sizeof(float), BACKEND_H2D);
    be->memcpy(m->dDB, m->db0, (size_t)OC * sizeof(float), BACKEND_H2D);
    bwt(m->dDW, m->dDB, m->dDO, m->dX, N, C, OC, scratch);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double r = m->dw0[(size_t)o * C + c], b = fabs(r);
            for (int n = 0; n < N; n++) {
                double t = (double)do16f[(size_t)n * OC + o] * x16f[(size_t)n * C + c];
                r += t;
                b += fabs(t);
            }
            m->rdw[(size_t)o * C + c] = (float)r;
            m->bw[(size_t)o * C + c] = b;
        }
    to_host(m->got, m->dDW, nw);
    snprintf(what, sizeof what, "%s dweight %dx%dx%d", f->name, N, C, OC);
    CHECK(compare(what, m->got, m->rdw, m->bw, nw, f->tol, 1e-6) == 0);
    to_host(m->got, m->dDB, (size_t)OC);
    snprintf(what, sizeof what, "%s-entry dbias %dx%d", f->name, N, OC);
    CHECK(compare(what, m->got, m->rdb, m->bb, (size_t)OC, 1e-5, 1e-6) == 0);

    /* The whole backward in one entry (dout rounded once for both gradients): the same three
     * references, accumulating into the same initial gradients. */
    CHECK(be->matmul_16_backward != NULL);
    if (be->matmul_16_backward) {
        be->memcpy(m->dDX, m->dx0, nx * sizeof(float), BACKEND_H2D);
        be->memcpy(m->dDW, m->dw0, nw * sizeof(float), BACKEND_H2D);
        be->memcpy(m->dDB, m->db0, (size_t)OC * sizeof(float), BACKEND_H2D);
        be->matmul_16_backward(m->dDX, m->dDW, m->dDB, m->dDO, m->dX, dW16,
                               f->fp16 ? BACKEND_WFMT_FP16 : BACKEND_WFMT_BF16, NULL, N, C, OC,
                               scratch);
        to_host(m->got, m->dDX, nx);
        snprintf(what, sizeof what, "%s whole-backward dinp %dx%dx%d", f->name, N, C, OC);
        CHECK(compare(what, m->got, m->rdx, m->bx, nx, f->tol, 1e-6) == 0);
        to_host(m->got, m->dDW, nw);
        snprintf(what, sizeof what, "%s whole-backward dweight %dx%dx%d", f->name, N, C, OC);
        CHECK(compare(what, m->got, m->rdw, m->bw, nw, f->tol, 1e-6) == 0);
        to_host(m->got, m->dDB, (size_t)OC);
        snprintf(what, sizeof what, "%s whole-backward dbias %dx%d", f->name, N, OC);
        CHECK(compare(what, m->got, m->rdb, m->bb, (size_t)OC, 1e-5, 1e-6) == 0);
    }

    be->free(scratch);
    be->free(dW16);
    free(w16), free(w16f), free(x16f), free(do16f), free(tmp16), free(bfwd);
}

/* ---- bf16 activations (the _a16 entries) */

/* A device copy of host[0..n) 16-bit codes, `pad` elements in (pad 2: 4-byte aligned). */
static uint16_t *dev16_from(const uint16_t *host, size_t n, enum backend_mem cat, void **base,
                            int pad)
{
    struct sw_err err;
    *base = be->alloc((n + (size_t)pad) * sizeof(uint16_t), cat, &err);
    SW_ASSERT(*base);
    uint16_t *d = (uint16_t *)*base + pad;
    be->memcpy(d, host, n * sizeof(uint16_t), BACKEND_H2D);
    return d;
}

/* bf16 code -> float, and the bf16 value nearest x (nearest even; NaN stays NaN) as a float:
 * kcpu_bf16_to_f32 and kcpu_f32_to_bf16 for one element, inline (those enter an OpenMP region
 * per call, which costs more than the check itself on millions of elements). */
static float bf16_value(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return x;
    return bf16_value((uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16));
}

/* The spacing of bf16 values at |x| (8 significant bits), 2^-133 at the smallest. */
static double bf16_ulp(double x)
{
    int e;
    frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
    return ldexp(1.0, (e - 8 < -133 ? -133 : e - 8));
}

/* A bf16 output (n codes) against want, the fp32 reference before rounding: element i passes
 * when |got - r(want)| <= tol·bound[i] + one bf16 ulp of r(want) (summation order may move the
 * fp32 value across a rounding boundary: then the two differ by exactly one ulp). Prints the
 * largest difference in ulps and how many elements differ from r(want) at all. */
static int compare16(const char *what, const uint16_t *got16, const float *want,
                     const double *bound, size_t n, double tol)
{
    double worst_ulps = 0;
    int bad = 0;
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        float g = bf16_value(got16[i]), w = round_bf16(want[i]);
        double d = fabs((double)g - w), u = bf16_ulp(fabs(g) > fabs(w) ? g : w);
        differ += d != 0 || isnan(g) != isnan(w);
        if (!(d <= tol * bound[i] + u))
            bad++;
        if (d / u > worst_ulps)
            worst_ulps = d / u;
    }
    printf("test_cuda_backend: %-34s max error %.3g bf16 ulps, %zu of %zu differ from r(ref)%s\n",
           what, worst_ulps, differ, n, bad ? "  FAIL" : "");
    return bad;
}

/* The _a16 entries on one shape's data: x, the weight and the bias rounded to bf16 (the bias
 * also kept fp32 for the fp32 output), dout and the initial gradients fp32 (rdb: db0 + Σ dout in
 * fp32, bb its bound), and a bf16 pre-activation for the GELU backward. Pointers are offset by
 * `pad` fp32 words (4-byte aligned bf16) as in matmul_case. References: the CPU's fp32 kernels on
 * the widened bf16 values (tolerance 1e-4 of the bound: only the summation order differs), rounded
 * where the output is bf16 (compare16).
 *  - matmul_a16_forward: fp32 out against kcpu_matmul_forward and against matmul_bf16_forward on
 *    the same values held fp32 (the same GEMM but for where the operands come from); bf16 out
 *    with the bias's bf16 mirror; each with and without bias;
 *  - matmul_gelu_forward_a16: pre as the bf16-out forward; out against the CPU's GELU of the
 *    stored pre within 1.1e-2·(1 + |pre|): 2e-3 for an epilogue's fast tanh
 *    (gelu_fused_check), 4.4e-3 because the epilogue applies GELU to the unrounded pre (up to
 *    half a bf16 ulp, 2^-8·|pre|, away, at a slope up to 1.13; the fallback applies it to the
 *    stored pre), and 3.9e-3 for out's own rounding (2^-8·|out|). A missing GELU is off by
 *    0.84 at pre = -1, 0.42 of its bound;
 *  - matmul_16_backward_a16 with every subset of dinp, dweight, dbias, without pre (dinp =
 *    r(dout)·W) and with it (dinp = (r(dout)·W) ⊙ gelu'(pre)), dinp written over NaN either way
 *    (the weight and bias gradients accumulate). */
static void a16_checks(int N, int C, int OC, const float *x, const float *w, const float *bias,
                       const float *dout, const float *dx0, const float *dw0, const float *db0,
                       const float *rdb, const double *bb, int pad)
{
    if (!be->matmul_a16_forward || !be->matmul_16_backward_a16) {
        const char *off = getenv("SCALEWISE_CUDA_ACT16");
        CHECK_MSG(off && strcmp(off, "0") == 0, "bf16-activation matmul entries missing");
        printf("test_cuda_backend: no bf16-activation matmuls (SCALEWISE_CUDA_ACT16=0)\n");
        return;
    }
    const size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    const int p16 = 2 * pad;
    char what[96];
    struct sw_err err;
    uint16_t *x16 = malloc(nx * 2 + 2), *w16 = malloc(nw * 2 + 2), *b16 = malloc((size_t)OC * 2);
    uint16_t *pre16 = malloc(nx * 2 + 2), *got16 = malloc((no > nx ? no : nx) * 2 + 2);
    float *xf = malloc(nx * 4 + 4), *wf = malloc(nw * 4 + 4), *bf = malloc((size_t)OC * 4);
    float *pref = host_rand(nx), *dof = malloc(no * 4 + 4), *ref = malloc(no * 4 + 4);
    size_t most = nx > nw ? nx : nw;
    most = most > no ? most : no;
    float *got = malloc(most * 4 + 4);
    kcpu_f32_to_bf16(x16, x, nx);
    kcpu_bf16_to_f32(xf, x16, nx);
    kcpu_f32_to_bf16(w16, w, nw);
    kcpu_bf16_to_f32(wf, w16, nw);
    kcpu_f32_to_bf16(b16, bias, (size_t)OC);
    kcpu_bf16_to_f32(bf, b16, (size_t)OC);
    for (size_t i = 0; i < nx; i++)
        pref[i] *= 3.0f; /* GELU's curved part */
    kcpu_f32_to_bf16(pre16, pref, nx);
    kcpu_bf16_to_f32(pref, pre16, nx);
    for (size_t i = 0; i < no; i++)
        dof[i] = round_bf16(dout[i]);
    void *bx, *bw, *bb16, *bb32, *bpre, *bo32, *bo16, *bo16b, *bxf, *bdo, *bdx, *bdw, *bdb;
    uint16_t *dX = dev16_from(x16, nx, BACKEND_MEM_ACTIVATIONS, &bx, p16);
    uint16_t *dW = dev16_from(w16, nw, BACKEND_MEM_WEIGHTS, &bw, p16);
    uint16_t *dB16 = dev16_from(b16, (size_t)OC, BACKEND_MEM_WEIGHTS, &bb16, p16);
    uint16_t *dPre = dev16_from(pre16, nx, BACKEND_MEM_ACTIVATIONS, &bpre, p16);
    uint16_t *dO16 = dev16_from(got16, no, BACKEND_MEM_ACTIVATIONS, &bo16, p16); /* overwritten */
    uint16_t *dO16b = dev16_from(got16, no, BACKEND_MEM_ACTIVATIONS, &bo16b, p16);
    float *dB = dev_from(bias, (size_t)OC, BACKEND_MEM_WEIGHTS, &bb32, pad);
    float *dO = dev_from(ref, no, BACKEND_MEM_ACTIVATIONS, &bo32, pad); /* overwritten */
    float *dXf = dev_from(xf, nx, BACKEND_MEM_ACTIVATIONS, &bxf, pad);
    float *dDO = dev_from(dout, no, BACKEND_MEM_ACTIVATIONS, &bdo, pad);
    float *dDX = dev_from(dx0, nx, BACKEND_MEM_GRADIENTS, &bdx, pad);
    float *dDW = dev_from(dw0, nw, BACKEND_MEM_GRADIENTS, &bdw, pad);
    float *dDB = dev_from(db0, (size_t)OC, BACKEND_MEM_GRADIENTS, &bdb, pad);
    void *scratch = be->alloc(be->matmul_bf16_scratch_bytes(N), BACKEND_MEM_WORKSPACE, &err);
    SW_ASSERT(scratch);

    /* Forward: fp32 out (fp32 bias), then bf16 out (the bias's bf16 mirror); with, without. */
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        const char *tag = with_bias ? "" : " no bias";
        double *bnd = bound_fwd(xf, wf, with_bias ? bias : NULL, N, C, OC);
        kcpu_matmul_forward(ref, xf, wf, with_bias ? bias : NULL, N, C, OC);
        be->matmul_a16_forward(dO, false, dX, dW, with_bias ? dB : NULL, NULL, N, C, OC);
        to_host(got, dO, no);
        snprintf(what, sizeof what, "a16 fwd %dx%dx%d%s", N, C, OC, tag);
        CHECK(compare(what, got, ref, bnd, no, 1e-4, 1e-6) == 0);
        float *lp = malloc(no * 4 + 4);
        be->matmul_bf16_forward(dO, dXf, dW, with_bias ? dB : NULL, N, C, OC, scratch);
        to_host(lp, dO, no);
        snprintf(what, sizeof what, "a16 fwd vs bf16 fwd %dx%dx%d%s", N, C, OC, tag);
        CHECK(compare(what, got, lp, bnd, no, 1e-4, 0) == 0);
        free(lp);
        { /* with a residual added by the epilogue: ref + res, bound + |res| */
            float *rr = host_rand(no), *ref2 = malloc(no * 4 + 4);
            double *bnd2 = malloc(no * sizeof(double));
            void *brr;
            float *dR = dev_from(rr, no, BACKEND_MEM_ACTIVATIONS, &brr, pad);
            for (size_t i = 0; i < no; i++) {
                ref2[i] = ref[i] + rr[i];
                bnd2[i] = bnd[i] + fabs(rr[i]);
            }
            be->matmul_a16_forward(dO, false, dX, dW, with_bias ? dB : NULL, dR, N, C, OC);
            to_host(got, dO, no);
            snprintf(what, sizeof what, "a16 fwd + residual %dx%dx%d%s", N, C, OC, tag);
            CHECK(compare(what, got, ref2, bnd2, no, 1e-4, 1e-6) == 0);
            be->free(brr);
            free(rr), free(ref2), free(bnd2);
        }
        free(bnd);
        bnd = bound_fwd(xf, wf, with_bias ? bf : NULL, N, C, OC);
        kcpu_matmul_forward(ref, xf, wf, with_bias ? bf : NULL, N, C, OC);
        be->matmul_a16_forward(dO16, true, dX, dW, with_bias ? dB16 : NULL, NULL, N, C, OC);
        be->memcpy(got16, dO16, no * 2, BACKEND_D2H);
        snprintf(what, sizeof what, "a16 fwd bf16-out %dx%dx%d%s", N, C, OC, tag);
        CHECK(compare16(what, got16, ref, bnd, no, 1e-4) == 0);

        /* The fused GELU (bf16 pre and out), on the same reference. */
        if (!be->matmul_gelu_forward_a16) {
            printf("test_cuda_backend: no matmul_gelu_forward_a16 (SCALEWISE_CUDA_FUSED_GELU=0)\n");
        } else {
            be->matmul_gelu_forward_a16(dO16b, dO16, dX, dW, with_bias ? dB16 : NULL, N, C, OC);
            be->memcpy(got16, dO16, no * 2, BACKEND_D2H);
            snprintf(what, sizeof what, "a16 gelu-fused pre %dx%dx%d%s", N, C, OC, tag);
            CHECK(compare16(what, got16, ref, bnd, no, 1e-4) == 0);
            float *pre = malloc(no * 4 + 4), *gw = malloc(no * 4 + 4);
            double *gb = malloc(no * sizeof(double));
            kcpu_bf16_to_f32(pre, got16, no);
            kcpu_gelu_forward(gw, pre, no);
            for (size_t i = 0; i < no; i++)
                gb[i] = 1.0 + fabs(pre[i]);
            be->memcpy(got16, dO16b, no * 2, BACKEND_D2H);
            kcpu_bf16_to_f32(got, got16, no);
            snprintf(what, sizeof what, "a16 gelu-fused out %dx%dx%d%s", N, C, OC, tag);
            CHECK(compare(what, got, gw, gb, no, 1.1e-2, 0) == 0);
            free(pre), free(gw), free(gb);
        }
        free(bnd);
    }

    /* Backward references: dinp = r(dout)·W, written (bound bx), the same times gelu'(pre),
     * dW = dw0 + r(dout)ᵀ·x in double (bound bw). */
    float *rdx = malloc(nx * 4 + 4), *prod = calloc(nx + 1, 4), *rdxg = calloc(nx + 1, 4);
    float *rdw = malloc(nw * 4 + 4);
    double *bx_ = malloc(nx * sizeof(double) + 8), *bxg = malloc(nx * sizeof(double) + 8);
    double *bw_ = malloc(nw * sizeof(double) + 8);
    memset(rdx, 0, nx * 4);
    kcpu_matmul_backward(rdx, NULL, NULL, dof, NULL, wf, N, C, OC);
    kcpu_matmul_backward(prod, NULL, NULL, dof, NULL, wf, N, C, OC);
    kcpu_gelu_backward(rdxg, pref, prod, nx);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++)
                s += fabs((double)dof[(size_t)n * OC + o] * wf[(size_t)o * C + c]);
            bx_[(size_t)n * C + c] = s;
            bxg[(size_t)n * C + c] = 1.13 * s; /* GELU's largest slope */
        }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double r = dw0[(size_t)o * C + c], b = fabs(r);
            for (int n = 0; n < N; n++) {
                double t = (double)dof[(size_t)n * OC + o] * xf[(size_t)n * C + c];
                r += t;
                b += fabs(t);
            }
            rdw[(size_t)o * C + c] = (float)r;
            bw_[(size_t)o * C + c] = b;
        }
    float *nans = malloc(nx * 4 + 4);
    for (size_t i = 0; i < nx; i++)
        nans[i] = NAN;
    int runs = 0, bad_runs = 0;
    for (int with_pre = 0; with_pre <= 1; with_pre++)
        for (int mask = 1; mask < 8; mask++) {
            bool gx = mask & 1, gw = mask & 2, gb = mask & 4;
            if (with_pre && !gx)
                continue; /* pre only shapes the input gradient */
            be->memcpy(dDX, nans, nx * 4, BACKEND_H2D);
            be->memcpy(dDW, dw0, nw * 4, BACKEND_H2D);
            be->memcpy(dDB, db0, (size_t)OC * 4, BACKEND_H2D);
            be->matmul_16_backward_a16(gx ? dDX : NULL, gw ? dDW : NULL, gb ? dDB : NULL, dDO,
                                       NULL, dX, dW, with_pre ? dPre : NULL, N, C, OC, scratch);
            int bad = 0;
            char tag[48];
            compare_quiet = mask != 7; /* print the full runs; the others when they fail */
            snprintf(tag, sizeof tag, "%dx%dx%d %s%s%s%s", N, C, OC, gx ? "x" : "",
                     gw ? "w" : "", gb ? "b" : "", with_pre ? " pre" : "");
            if (gx) {
                to_host(got, dDX, nx);
                snprintf(what, sizeof what, "a16 bwd dinp %s", tag);
                bad += compare(what, got, with_pre ? rdxg : rdx, with_pre ? bxg : bx_, nx, 1e-4,
                               1e-6);
            }
            if (gw) {
                to_host(got, dDW, nw);
                snprintf(what, sizeof what, "a16 bwd dweight %s", tag);
                bad += compare(what, got, rdw, bw_, nw, 1e-4, 1e-6);
            }
            if (gb) {
                to_host(got, dDB, (size_t)OC);
                snprintf(what, sizeof what, "a16 bwd dbias %s", tag);
                bad += compare(what, got, rdb, bb, (size_t)OC, 1e-5, 1e-6);
            }
            compare_quiet = false;
            CHECK_MSG(bad == 0, "matmul_16_backward_a16 %s", tag);
            runs++;
            bad_runs += bad != 0;
        }
    printf("test_cuda_backend: a16 bwd %dx%dx%d: %d output subsets, %d wrong\n", N, C, OC, runs,
           bad_runs);

    /* dout_pre (dout a GELU's output gradient, taken through it as it is rounded): bit for bit
     * the backend's gelu_backward_a16 into a zeroed buffer, then the plain call. */
    if (be->gelu_backward_a16) {
        float *gpf = host_rand(no);
        uint16_t *gp16 = malloc(no * 2 + 2);
        for (size_t i = 0; i < no; i++)
            gpf[i] *= 3.0f;
        kcpu_f32_to_bf16(gp16, gpf, no);
        void *bgp, *bg, *bx2, *bw2, *bb2;
        uint16_t *dGP = dev16_from(gp16, no, BACKEND_MEM_ACTIVATIONS, &bgp, p16);
        float *dG = dev_from(dout, no, BACKEND_MEM_ACTIVATIONS, &bg, pad);
        float *dX2 = dev_from(dx0, nx, BACKEND_MEM_GRADIENTS, &bx2, pad);
        float *dW2 = dev_from(dw0, nw, BACKEND_MEM_GRADIENTS, &bw2, pad);
        float *dB2 = dev_from(db0, (size_t)OC, BACKEND_MEM_GRADIENTS, &bb2, pad);
        be->memset(dG, 0, no * 4);
        be->gelu_backward_a16(dG, dGP, dDO, no);
        float *got2 = malloc(most * 4 + 4);
        int differ = 0;
        for (int mask = 1; mask < 8; mask++) {
            bool gx = mask & 1, gw = mask & 2, gb = mask & 4;
            be->memcpy(dDX, nans, nx * 4, BACKEND_H2D);
            be->memcpy(dX2, nans, nx * 4, BACKEND_H2D);
            be->memcpy(dDW, dw0, nw * 4, BACKEND_H2D);
            be->memcpy(dW2, dw0, nw * 4, BACKEND_H2D);
            be->memcpy(dDB, db0, (size_t)OC * 4, BACKEND_H2D);
            be->memcpy(dB2, db0, (size_t)OC * 4, BACKEND_H2D);
            be->matmul_16_backward_a16(gx ? dDX : NULL, gw ? dDW : NULL, gb ? dDB : NULL, dDO,
                                       dGP, dX, dW, NULL, N, C, OC, scratch);
            be->matmul_16_backward_a16(gx ? dX2 : NULL, gw ? dW2 : NULL, gb ? dB2 : NULL, dG,
                                       NULL, dX, dW, NULL, N, C, OC, scratch);
            const float *pairs[3][2] = {{dDX, dX2}, {dDW, dW2}, {dDB, dB2}};
            const size_t len[3] = {nx, nw, (size_t)OC};
            for (int k = 0; k < 3; k++) {
                if (!(mask & (1 << k)))
                    continue;
                to_host(got, pairs[k][0], len[k]);
                to_host(got2, pairs[k][1], len[k]);
                for (size_t i = 0; i < len[k]; i++)
                    differ += !(got[i] == got2[i]); /* NaN (an unwritten dinp) differs */
            }
        }
        printf("test_cuda_backend: a16 bwd %dx%dx%d with dout_pre = gelu_backward_a16 then "
               "plain: %d values differ over 7 output subsets\n",
               N, C, OC, differ);
        CHECK_MSG(differ == 0, "matmul_16_backward_a16 dout_pre %dx%dx%d: %d values differ", N,
                  C, OC, differ);
        free(got2);
        free(gpf);
        free(gp16);
        void *more[] = {bgp, bg, bx2, bw2, bb2};
        dev_free_all(more, sizeof more / sizeof more[0]);
    }

    be->free(scratch);
    void *bases[] = {bx, bw, bb16, bb32, bpre, bo32, bo16, bo16b, bxf, bdo, bdx, bdw, bdb};
    dev_free_all(bases, sizeof bases / sizeof bases[0]);
    free(x16), free(w16), free(b16), free(pre16), free(got16), free(xf), free(wf), free(bf);
    free(pref), free(dof), free(ref), free(got), free(rdx), free(prod), free(rdxg), free(rdw);
    free(bx_), free(bxg), free(bw_), free(nans);
}

/* a16_checks on fresh random data of one shape (matmul_case runs them on its own data). */
static void a16_case(int N, int C, int OC, int pad)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = host_rand(nx), *w = host_rand(nw), *bias = host_rand((size_t)OC);
    float *dout = host_rand(no), *dx0 = host_rand(nx), *dw0 = host_rand(nw),
          *db0 = host_rand((size_t)OC);
    float *rdb = malloc((size_t)OC * sizeof(float) + 4);
    double *bb = malloc((size_t)OC * sizeof(double) + 8);
    memcpy(rdb, db0, (size_t)OC * sizeof(float));
    kcpu_matmul_backward(NULL, NULL, rdb, dout, NULL, NULL, N, C, OC);
    for (int o = 0; o < OC; o++) {
        double s = 0;
        for (int n = 0; n < N; n++)
            s += fabs(dout[(size_t)n * OC + o]);
        bb[o] = s;
    }
    a16_checks(N, C, OC, x, w, bias, dout, dx0, dw0, db0, rdb, bb, pad);
    free(x), free(w), free(bias), free(dout), free(dx0), free(dw0), free(db0), free(rdb), free(bb);
}

/* matmul_a16_backward_d16 (the head's backward from the bf16 logits' gradient) on random bf16
 * x, W and dout against kcpu_matmul_backward on the widened values, for every non-empty subset
 * of dinp and dweight: dinp written over NaN (bound Σ|dout·W|), dweight accumulated into random
 * values (bound |dw0| + Σ|dout·x|), both within 1e-4 of the bound (only the fp32 summation
 * order differs: the operands are the same bf16 values). The bounds are themselves fp32
 * matmuls of the absolute values (kcpu_matmul_backward), accurate far beyond what they scale.
 * Pointers are offset by `pad` fp32 words as in matmul_case. */
static void d16_case(int N, int C, int OC, int pad)
{
    if (!be->matmul_a16_backward_d16) {
        const char *off = getenv("SCALEWISE_CUDA_ACT16");
        CHECK_MSG(off && strcmp(off, "0") == 0, "matmul_a16_backward_d16 missing");
        printf("test_cuda_backend: no matmul_a16_backward_d16 (SCALEWISE_CUDA_ACT16=0)\n");
        return;
    }
    const size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    const int p16 = 2 * pad;
    float *xf = host_rand(nx), *wf = host_rand(nw), *dof = host_rand(no), *dw0 = host_rand(nw);
    uint16_t *x16 = malloc(nx * 2 + 2), *w16 = malloc(nw * 2 + 2), *do16 = malloc(no * 2 + 2);
    kcpu_f32_to_bf16(x16, xf, nx);
    kcpu_bf16_to_f32(xf, x16, nx);
    kcpu_f32_to_bf16(w16, wf, nw);
    kcpu_bf16_to_f32(wf, w16, nw);
    kcpu_f32_to_bf16(do16, dof, no);
    kcpu_bf16_to_f32(dof, do16, no);
    float *rdx = calloc(nx + 1, 4), *rdw = malloc(nw * 4 + 4);
    float *got = malloc((nx > nw ? nx : nw) * 4 + 4);
    memcpy(rdw, dw0, nw * 4);
    kcpu_matmul_backward(rdx, rdw, NULL, dof, xf, wf, N, C, OC);
    /* Bounds: the same products of absolute values. */
    float *ax = malloc(nx * 4 + 4), *aw = malloc(nw * 4 + 4), *ado = malloc(no * 4 + 4);
    float *fbx = calloc(nx + 1, 4), *fbw = malloc(nw * 4 + 4);
    for (size_t i = 0; i < nx; i++)
        ax[i] = fabsf(xf[i]);
    for (size_t i = 0; i < nw; i++) {
        aw[i] = fabsf(wf[i]);
        fbw[i] = fabsf(dw0[i]);
    }
    for (size_t i = 0; i < no; i++)
        ado[i] = fabsf(dof[i]);
    kcpu_matmul_backward(fbx, fbw, NULL, ado, ax, aw, N, C, OC);
    double *bx_ = malloc(nx * sizeof(double) + 8), *bw_ = malloc(nw * sizeof(double) + 8);
    for (size_t i = 0; i < nx; i++)
        bx_[i] = fbx[i];
    for (size_t i = 0; i < nw; i++)
        bw_[i] = fbw[i];
    float *nans = malloc(nx * 4 + 4);
    for (size_t i = 0; i < nx; i++)
        nans[i] = NAN;
    void *bx, *bw, *bdo, *bdx, *bdw;
    uint16_t *dX = dev16_from(x16, nx, BACKEND_MEM_ACTIVATIONS, &bx, p16);
    uint16_t *dW = dev16_from(w16, nw, BACKEND_MEM_WEIGHTS, &bw, p16);
    uint16_t *dDO = dev16_from(do16, no, BACKEND_MEM_ACTIVATIONS, &bdo, p16);
    float *dDX = dev_from(nans, nx, BACKEND_MEM_GRADIENTS, &bdx, pad);
    float *dDW = dev_from(dw0, nw, BACKEND_MEM_GRADIENTS, &bdw, pad);
    char what[96];
    for (int mask = 1; mask < 4; mask++) {
        bool gx = mask & 1, gw = mask & 2;
        be->memcpy(dDX, nans, nx * 4, BACKEND_H2D);
        be->memcpy(dDW, dw0, nw * 4, BACKEND_H2D);
        be->matmul_a16_backward_d16(gx ? dDX : NULL, gw ? dDW : NULL, dDO, dX, dW, N, C, OC);
        int bad = 0;
        to_host(got, dDX, nx);
        snprintf(what, sizeof what, "d16 bwd dinp %dx%dx%d %s%s", N, C, OC, gx ? "x" : "",
                 gw ? "w" : "");
        if (gx)
            bad += compare(what, got, rdx, bx_, nx, 1e-4, 1e-6);
        else /* untouched: still NaN */
            for (size_t i = 0; i < nx; i++)
                bad += !isnan(got[i]);
        to_host(got, dDW, nw);
        snprintf(what, sizeof what, "d16 bwd dweight %dx%dx%d %s%s", N, C, OC, gx ? "x" : "",
                 gw ? "w" : "");
        if (gw)
            bad += compare(what, got, rdw, bw_, nw, 1e-4, 1e-6);
        else
            bad += memcmp(got, dw0, nw * 4) != 0;
        CHECK_MSG(bad == 0, "matmul_a16_backward_d16 %dx%dx%d mask %d", N, C, OC, mask);
    }
    void *bases[] = {bx, bw, bdo, bdx, bdw};
    dev_free_all(bases, sizeof bases / sizeof bases[0]);
    free(xf), free(wf), free(dof), free(dw0), free(x16), free(w16), free(do16), free(rdx);
    free(rdw), free(got), free(ax), free(aw), free(ado), free(fbx), free(fbw), free(bx_);
    free(bw_), free(nans);
}

/* matmul_a16_backward_d16's empty shapes: OC 0 writes dinp to zeros and leaves dweight alone;
 * N 0 and C 0 change nothing (the buffers start as NaN / 7 and must stay so). */
static void d16_empty(void)
{
    if (!be->matmul_a16_backward_d16)
        return; /* d16_case reports it */
    const int N = 5, C = 6, OC = 4;
    float host[32], got[32], zeros[32];
    void *b1, *b2;
    for (int i = 0; i < 32; i++) {
        host[i] = 7.0f;
        zeros[i] = 0.0f;
    }
    float *dx = dev_from(host, 32, BACKEND_MEM_GRADIENTS, &b1, 0);
    float *dw = dev_from(host, 32, BACKEND_MEM_GRADIENTS, &b2, 0);
    uint16_t ones[32];
    for (int i = 0; i < 32; i++)
        ones[i] = 0x3f80; /* 1.0 */
    void *b3;
    uint16_t *d1 = dev16_from(ones, 32, BACKEND_MEM_ACTIVATIONS, &b3, 0);
    be->matmul_a16_backward_d16(dx, dw, d1, d1, d1, N, C, 0);
    to_host(got, dx, 32);
    CHECK_MSG(memcmp(got, zeros, (size_t)N * C * 4) == 0 && got[N * C] == 7.0f,
              "d16 OC 0: dinp not written to zeros (or written past N·C)");
    to_host(got, dw, 32);
    CHECK_MSG(memcmp(got, host, sizeof host) == 0, "d16 OC 0: dweight changed");
    be->memcpy(dx, host, sizeof host, BACKEND_H2D);
    be->matmul_a16_backward_d16(dx, dw, d1, d1, d1, 0, C, OC);
    be->matmul_a16_backward_d16(dx, dw, d1, d1, d1, N, 0, OC);
    to_host(got, dx, 32);
    CHECK_MSG(memcmp(got, host, sizeof host) == 0, "d16 N or C 0: dinp changed");
    to_host(got, dw, 32);
    CHECK_MSG(memcmp(got, host, sizeof host) == 0, "d16 N or C 0: dweight changed");
    printf("test_cuda_backend: d16 empty shapes (OC, N, C = 0) checked\n");
    be->free(b1), be->free(b2), be->free(b3);
}

static void matmul_case(int N, int C, int OC, int pad)
{
    char what[96];
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = host_rand(nx), *w = host_rand(nw), *bias = host_rand((size_t)OC);
    float *dout = host_rand(no), *dx0 = host_rand(nx), *dw0 = host_rand(nw),
          *db0 = host_rand((size_t)OC);
    float *ref = malloc(no * sizeof(float)), *got = malloc((nx > nw ? nx : nw) * sizeof(float) +
                                                            no * sizeof(float));
    void *bx, *bw, *bb, *bo, *bdo, *bdx, *bdw, *bdb;
    float *dX = dev_from(x, nx, BACKEND_MEM_ACTIVATIONS, &bx, pad);
    float *dW = dev_from(w, nw, BACKEND_MEM_WEIGHTS, &bw, pad);
    float *dB = dev_from(bias, (size_t)OC, BACKEND_MEM_WEIGHTS, &bb, pad);
    float *dO = dev_from(ref, no, BACKEND_MEM_ACTIVATIONS, &bo, pad); /* contents overwritten */
    float *dDO = dev_from(dout, no, BACKEND_MEM_ACTIVATIONS, &bdo, pad);
    float *dDX = dev_from(dx0, nx, BACKEND_MEM_GRADIENTS, &bdx, pad);
    float *dDW = dev_from(dw0, nw, BACKEND_MEM_GRADIENTS, &bdw, pad);
    float *dDB = dev_from(db0, (size_t)OC, BACKEND_MEM_GRADIENTS, &bdb, pad);

    /* forward, fp32 (TF32) */
    kcpu_matmul_forward(ref, x, w, bias, N, C, OC);
    be->matmul_forward(dO, dX, dW, dB, N, C, OC);
    to_host(got, dO, no);
    double *bf = bound_fwd(x, w, bias, N, C, OC);
    snprintf(what, sizeof what, "tf32 fwd %dx%dx%d%s", N, C, OC, pad ? " unaligned" : "");
    CHECK(compare(what, got, ref, bf, no, 2e-3, 1e-6) == 0);
    gelu_fused_check("tf32", BACKEND_WFMT_FP32, dX, dW, dB, N, C, OC, NULL, ref, bf, 2e-3);

    /* backward, fp32 (TF32), accumulating into random initial gradients */
    float *rdx = malloc(nx * sizeof(float)), *rdw = malloc(nw * sizeof(float)),
          *rdb = malloc((size_t)OC * sizeof(float));
    memcpy(rdx, dx0, nx * sizeof(float));
    memcpy(rdw, dw0, nw * sizeof(float));
    memcpy(rdb, db0, (size_t)OC * sizeof(float));
    kcpu_matmul_backward(rdx, rdw, rdb, dout, x, w, N, C, OC);
    be->matmul_backward(dDX, dDW, dDB, dDO, dX, dW, N, C, OC);
    double *bx_ = malloc(nx * sizeof(double)), *bw_ = malloc(nw * sizeof(double)),
           *bb_ = malloc((size_t)OC * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = fabs(dx0[(size_t)n * C + c]);
            for (int o = 0; o < OC; o++)
                s += fabs((double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c]);
            bx_[(size_t)n * C + c] = s;
        }
    for (int o = 0; o < OC; o++) {
        double sb = 0;
        for (int n = 0; n < N; n++)
            sb += fabs(dout[(size_t)n * OC + o]);
        bb_[o] = sb;
        for (int c = 0; c < C; c++) {
            double s = fabs(dw0[(size_t)o * C + c]);
            for (int n = 0; n < N; n++)
                s += fabs((double)dout[(size_t)n * OC + o] * x[(size_t)n * C + c]);
            bw_[(size_t)o * C + c] = s;
        }
    }
    to_host(got, dDX, nx);
    snprintf(what, sizeof what, "tf32 dinp %dx%dx%d", N, C, OC);
    CHECK(compare(what, got, rdx, bx_, nx, 2e-3, 1e-6) == 0);
    float *prod = calloc(nx, sizeof(float));
    kcpu_matmul_backward(prod, NULL, NULL, dout, NULL, w, N, C, OC);
    dgelu_fused_check("tf32", BACKEND_WFMT_FP32, dDO, dW, dX, x, N, C, OC, NULL, prod, bx_, 2e-3);
    free(prod);
    to_host(got, dDW, nw);
    snprintf(what, sizeof what, "tf32 dweight %dx%dx%d", N, C, OC);
    CHECK(compare(what, got, rdw, bw_, nw, 2e-3, 1e-6) == 0);
    to_host(got, dDB, (size_t)OC);
    snprintf(what, sizeof what, "dbias %dx%d", N, OC);
    CHECK(compare(what, got, rdb, bb_, (size_t)OC, 1e-5, 1e-6) == 0);

    /* The bias gradient is deterministic: the same sum again gives the same bits. */
    float *db1 = malloc((size_t)OC * sizeof(float)), *db2 = malloc((size_t)OC * sizeof(float));
    be->memcpy(dDB, db0, (size_t)OC * sizeof(float), BACKEND_H2D);
    be->matmul_backward(NULL, NULL, dDB, dDO, dX, dW, N, C, OC);
    to_host(db1, dDB, (size_t)OC);
    be->memcpy(dDB, db0, (size_t)OC * sizeof(float), BACKEND_H2D);
    be->matmul_backward(NULL, NULL, dDB, dDO, dX, dW, N, C, OC);
    to_host(db2, dDB, (size_t)OC);
    CHECK(memcmp(db1, db2, (size_t)OC * sizeof(float)) == 0);

    /* 16-bit weights (bf16-mixed, then fp16-mixed): forward, input and weight gradients */
    struct mm m = {.N = N, .C = C, .OC = OC, .nx = nx, .nw = nw, .no = no, .x = x, .w = w,
                   .bias = bias, .dout = dout, .dx0 = dx0, .dw0 = dw0, .db0 = db0, .rdb = rdb,
                   .bb = bb_, .ref = ref, .got = got, .rdx = rdx, .rdw = rdw, .bx = bx_,
                   .bw = bw_, .dX = dX, .dB = dB, .dO = dO, .dDO = dDO, .dDX = dDX, .dDW = dDW,
                   .dDB = dDB};
    lp16_checks(&LP_BF16, &m);
    lp16_checks(&LP_F16, &m);
    a16_checks(N, C, OC, x, w, bias, dout, dx0, dw0, db0, rdb, bb_, pad);

    void *bases[] = {bx, bw, bb, bo, bdo, bdx, bdw, bdb};
    dev_free_all(bases, sizeof bases / sizeof bases[0]);
    free(x), free(w), free(bias), free(dout), free(dx0), free(dw0), free(db0), free(ref);
    free(got), free(bf), free(rdx), free(rdw), free(rdb), free(bx_), free(bw_), free(bb_);
    free(db1), free(db2);
}

static void test_matmul(void)
{
    matmul_case(64, 128, 96, 0);
    matmul_case(37, 75, 51, 1);    /* odd sizes, 4-byte aligned pointers */
    matmul_case(256, 768, 2304, 0); /* GPT-2 small's QKV projection, 256 rows */
    matmul_case(64, 64, 50304, 0);  /* a head as wide as GPT-2's (one chunk at 64 rows) */
    a16_case(128, 768, 3072, 0);    /* GPT-2 small's first MLP matmul, bf16 activations */
    d16_case(32, 768, 50304, 0);    /* GPT-2's head from bf16 logits' gradient */
    d16_case(37, 75, 51, 1);        /* odd sizes, 4-byte aligned pointers */
    d16_empty();
}

/* Elements where got and want disagree: a different infinity (or a finite value where want is
 * infinite), or finite values more than 1e-4·(1 + |want|) apart. */
static int inf_mismatches(const float *got, const float *want, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(want[i]))
            bad += got[i] != want[i];
        else
            bad += !isfinite(got[i]) || fabs((double)got[i] - want[i]) > 1e-4 * (1 + fabs(want[i]));
    }
    return bad;
}

/* fp16 overflow, which dynamic loss scaling watches for: an operand beyond 65504 (from 65520 on,
 * where nearest-even rounding passes the largest half) becomes infinity, so the outputs that
 * use it are ±inf, on the GPU as in the CPU's emulation; 65504 and 65519 stay finite. The bias
 * gradient sums fp32 dout, so it stays finite. Weights are positive and activations non-zero,
 * so every product with an infinite operand is a signed infinity (never inf·0 = NaN). */
static void test_f16_overflow(void)
{
    if (!be->matmul_f16_forward || !be->matmul_f16_backward_input ||
        !be->matmul_f16_backward_weight) {
        CHECK_MSG(0, "fp16 matmul entries missing");
        return;
    }
    enum { N = 4, C = 16, OC = 8 };
    float x[N * C], w[OC * C], bias[OC], dout[N * OC], out[N * OC], ref[N * OC];
    float dx[N * C], rdx[N * C], dw[OC * C], rdw[OC * C], db[OC];
    for (int i = 0; i < N * C; i++)
        x[i] = (frand() < 0 ? -1.0f : 1.0f) * (0.5f + 0.25f * (frand() + 1.0f));
    for (int i = 0; i < OC * C; i++)
        w[i] = 0.25f + 0.375f * (frand() + 1.0f);
    for (int i = 0; i < OC; i++)
        bias[i] = frand();
    for (int i = 0; i < N * OC; i++)
        dout[i] = frand();
    x[0 * C + 3] = 70000.0f;  /* row 0: +inf */
    x[1 * C + 3] = 65504.0f;  /* row 1: the largest half, finite */
    x[2 * C + 3] = 65519.0f;  /* row 2: rounds down to 65504, finite */
    x[3 * C + 3] = -65520.0f; /* row 3: the first value that overflows, -inf */
    dout[1 * OC + 2] = 1e5f;  /* dinp row 1 = +inf; dW row 2 = ±inf (the sign of x) */
    uint16_t w16[OC * C];
    kcpu_f32_to_f16(w16, w, OC * C);

    struct sw_err err;
    void *bx, *bb, *bo, *bdo, *bdx, *bdw, *bdb;
    float *dX = dev_from(x, N * C, BACKEND_MEM_ACTIVATIONS, &bx, 0);
    float *dB = dev_from(bias, OC, BACKEND_MEM_WEIGHTS, &bb, 0);
    float *dO = dev_from(out, N * OC, BACKEND_MEM_ACTIVATIONS, &bo, 0); /* overwritten */
    float *dDO = dev_from(dout, N * OC, BACKEND_MEM_ACTIVATIONS, &bdo, 0);
    memset(dx, 0, sizeof dx);
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    float *dDX = dev_from(dx, N * C, BACKEND_MEM_GRADIENTS, &bdx, 0);
    float *dDW = dev_from(dw, OC * C, BACKEND_MEM_GRADIENTS, &bdw, 0);
    float *dDB = dev_from(db, OC, BACKEND_MEM_GRADIENTS, &bdb, 0);
    void *dW16 = be->alloc(sizeof w16, BACKEND_MEM_WEIGHTS, &err);
    void *scratch = be->alloc(be->matmul_bf16_scratch_bytes(N), BACKEND_MEM_WORKSPACE, &err);
    SW_ASSERT(dW16 && scratch);
    be->memcpy(dW16, w16, sizeof w16, BACKEND_H2D);

    be->matmul_f16_forward(dO, dX, dW16, dB, N, C, OC, scratch);
    to_host(out, dO, N * OC);
    f16_forward_ref(ref, x, w16, bias, N, C, OC);
    int inf_rows_ok = 1;
    for (int o = 0; o < OC; o++)
        inf_rows_ok &= out[0 * OC + o] == INFINITY && isfinite(out[1 * OC + o]) &&
                       isfinite(out[2 * OC + o]) && out[3 * OC + o] == -INFINITY;
    CHECK_MSG(inf_rows_ok, "fp16 forward: rows 0 and 3 must be +inf and -inf, rows 1 and 2 finite");
    CHECK_INT(inf_mismatches(out, ref, N * OC), 0);
    CHECK(fabsf(out[1 * OC] - out[2 * OC]) <= 1e-3f * fabsf(out[1 * OC])); /* 65519 -> 65504 */

    be->matmul_f16_backward_input(dDX, dDO, dW16, N, C, OC, scratch);
    to_host(dx, dDX, N * C);
    memset(rdx, 0, sizeof rdx);
    f16_backward_input_ref(rdx, dout, w16, N, C, OC);
    int dinp_ok = 1;
    for (int c = 0; c < C; c++)
        dinp_ok &= dx[1 * C + c] == INFINITY && isfinite(dx[0 * C + c]);
    CHECK_MSG(dinp_ok, "fp16 dinp: row 1 must be +inf, row 0 finite");
    CHECK_INT(inf_mismatches(dx, rdx, N * C), 0);

    /* The weight gradient: dout[1, 2] = inf after rounding, times x[1, c] (65504 at c = 3).
     * Rows 0 and 3 of x lose their overflowing values first, or column 3 of every dW row
     * would be infinite too (and inf - inf = NaN where both signs meet). */
    x[0 * C + 3] = 1.0f;
    x[3 * C + 3] = -1.0f;
    be->memcpy(dX, x, sizeof x, BACKEND_H2D);
    be->matmul_f16_backward_weight(dDW, dDB, dDO, dX, N, C, OC, scratch);
    to_host(dw, dDW, OC * C);
    to_host(db, dDB, OC);
    float xr[N * C], gr[N * OC];
    kcpu_round_f16(xr, x, N * C);
    kcpu_round_f16(gr, dout, N * OC);
    memset(rdw, 0, sizeof rdw);
    kcpu_matmul_backward(NULL, rdw, NULL, gr, xr, w, N, C, OC);
    int dw_ok = 1;
    for (int c = 0; c < C; c++)
        dw_ok &= isinf(dw[2 * C + c]) && (dw[2 * C + c] > 0) == (x[1 * C + c] > 0) &&
                 isfinite(dw[1 * C + c]);
    CHECK_MSG(dw_ok, "fp16 dweight: row 2 must be ±inf (the sign of x), row 1 finite");
    CHECK_INT(inf_mismatches(dw, rdw, OC * C), 0);
    CHECK(isfinite(db[2]) && fabsf(db[2] - 1e5f) < 10.0f); /* fp32 sum: no overflow */
    printf("test_cuda_backend: fp16 overflow: out[0,0] %g, out[1,0] %g, dinp[1,0] %g, "
           "dweight[2,0] %g, dbias[2] %g\n",
           out[0], out[OC], dx[C], dw[2 * C], db[2]);

    be->free(scratch);
    be->free(dW16);
    void *bases[] = {bx, bb, bo, bdo, bdx, bdw, bdb};
    dev_free_all(bases, sizeof bases / sizeof bases[0]);
}

int main(void)
{
    RUN(test_loader_missing_plugin);
    struct sw_err err;
    sw_err_init(&err);
    be = backend_cuda_load(&err);
    if (!be) {
        /* Skip only for "no device"; a plugin that does not load is a failure. */
        CHECK_INT(err.code, SW_EUNSUPPORTED);
        CHECK_MSG(strncmp(err.msg, "no NVIDIA GPU", 13) == 0, "loader: %s", err.msg);
        printf("test_cuda_backend: skipped: no GPU (%s)\n", err.msg);
        printf("test_cuda_backend: %d passed, %d failed, 1 skipped\n", harness_passed,
               harness_failed);
        return harness_failed ? 1 : 0;
    }
    RUN(test_table);
    RUN(test_alloc_accounting);
    RUN(test_copies);
    RUN(test_optim_segments);
    RUN(test_matmul);
    RUN(test_f16_overflow);
    return harness_finish("test_cuda_backend");
}
