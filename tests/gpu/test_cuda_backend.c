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
 *  - the bias gradient is an fp32 column sum: <= 1e-5·Σ|dout| + 1e-6.
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
    be->free(b1);
    be->free(d2);
    free(h);
    free(back);
}

/* max |got - want| / bound over n elements; counts elements beyond tol·bound + abs_tol. */
static int compare(const char *what, const float *got, const float *want, const double *bound,
                   size_t n, double tol, double abs_tol)
{
    double worst = 0, worst_abs = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (d > tol * bound[i] + abs_tol)
            bad++;
        if (bound[i] > 0 && d / bound[i] > worst)
            worst = d / bound[i];
        if (d > worst_abs)
            worst_abs = d;
    }
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

    /* bf16 weights: forward and input gradient against the CPU's bf16 reference */
    uint16_t *w16 = malloc(nw * sizeof(uint16_t));
    kcpu_f32_to_bf16(w16, w, nw);
    struct sw_err err;
    void *dW16 = be->alloc(nw * sizeof(uint16_t), BACKEND_MEM_WEIGHTS, &err);
    be->memcpy(dW16, w16, nw * sizeof(uint16_t), BACKEND_H2D);
    size_t sb = be->matmul_bf16_scratch_bytes(N);
    void *scratch = be->alloc(sb, BACKEND_MEM_WORKSPACE, &err);
    CHECK(dW16 && scratch);
    float *w16f = malloc(nw * sizeof(float)), *x16f = malloc(nx * sizeof(float)),
          *do16f = malloc(no * sizeof(float));
    uint16_t *tmp16 = malloc((nx > no ? nx : no) * sizeof(uint16_t));
    kcpu_bf16_to_f32(w16f, w16, nw);
    kcpu_f32_to_bf16(tmp16, x, nx);
    kcpu_bf16_to_f32(x16f, tmp16, nx);
    kcpu_f32_to_bf16(tmp16, dout, no);
    kcpu_bf16_to_f32(do16f, tmp16, no);
    kcpu_matmul_bf16_forward_ref(ref, x, w16, bias, N, C, OC);
    be->matmul_bf16_forward(dO, dX, dW16, dB, N, C, OC, scratch);
    to_host(got, dO, no);
    double *bf16b = bound_fwd(x16f, w16f, bias, N, C, OC);
    snprintf(what, sizeof what, "bf16 fwd %dx%dx%d", N, C, OC);
    CHECK(compare(what, got, ref, bf16b, no, 1e-4, 1e-6) == 0);

    memcpy(rdx, dx0, nx * sizeof(float));
    be->memcpy(dDX, dx0, nx * sizeof(float), BACKEND_H2D);
    kcpu_matmul_bf16_backward_input_ref(rdx, dout, w16, N, C, OC);
    be->matmul_bf16_backward_input(dDX, dDO, dW16, N, C, OC, scratch);
    to_host(got, dDX, nx);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = fabs(dx0[(size_t)n * C + c]);
            for (int o = 0; o < OC; o++)
                s += fabs((double)do16f[(size_t)n * OC + o] * w16f[(size_t)o * C + c]);
            bx_[(size_t)n * C + c] = s;
        }
    snprintf(what, sizeof what, "bf16 dinp %dx%dx%d", N, C, OC);
    CHECK(compare(what, got, rdx, bx_, nx, 1e-4, 1e-6) == 0);

    /* bf16 weight gradient: dW += bf16(dout)ᵀ·bf16(x) in fp32, dbias += Σ dout (fp32). The
     * reference sums the same bf16-rounded operands in double. */
    CHECK(be->matmul_bf16_backward_weight != NULL);
    if (be->matmul_bf16_backward_weight) {
        be->memcpy(dDW, dw0, nw * sizeof(float), BACKEND_H2D);
        be->memcpy(dDB, db0, (size_t)OC * sizeof(float), BACKEND_H2D);
        be->matmul_bf16_backward_weight(dDW, dDB, dDO, dX, N, C, OC, scratch);
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double r = dw0[(size_t)o * C + c], b = fabs(r);
                for (int n = 0; n < N; n++) {
                    double t = (double)do16f[(size_t)n * OC + o] * x16f[(size_t)n * C + c];
                    r += t;
                    b += fabs(t);
                }
                rdw[(size_t)o * C + c] = (float)r;
                bw_[(size_t)o * C + c] = b;
            }
        to_host(got, dDW, nw);
        snprintf(what, sizeof what, "bf16 dweight %dx%dx%d", N, C, OC);
        CHECK(compare(what, got, rdw, bw_, nw, 1e-4, 1e-6) == 0);
        to_host(got, dDB, (size_t)OC);
        snprintf(what, sizeof what, "bf16-entry dbias %dx%d", N, OC);
        CHECK(compare(what, got, rdb, bb_, (size_t)OC, 1e-5, 1e-6) == 0);
    }

    be->free(scratch);
    be->free(dW16);
    void *bases[] = {bx, bw, bb, bo, bdo, bdx, bdw, bdb};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++)
        be->free(bases[i]);
    free(x), free(w), free(bias), free(dout), free(dx0), free(dw0), free(db0), free(ref);
    free(got), free(bf), free(rdx), free(rdw), free(rdb), free(bx_), free(bw_), free(bb_);
    free(db1), free(db2), free(w16), free(w16f), free(x16f), free(do16f), free(tmp16),
        free(bf16b);
}

static void test_matmul(void)
{
    matmul_case(64, 128, 96, 0);
    matmul_case(37, 75, 51, 1);    /* odd sizes, 4-byte aligned pointers */
    matmul_case(256, 768, 2304, 0); /* GPT-2 small's QKV projection, 256 rows */
    matmul_case(64, 64, 50304, 0);  /* a head as wide as GPT-2's: bf16 dinp runs in chunks */
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
    RUN(test_matmul);
    return harness_finish("test_cuda_backend");
}
