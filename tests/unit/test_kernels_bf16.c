/* Tests of the bf16-weight matmuls (kernels/cpu/matmul_bf16.c): the forward out = inp·Wᵀ + b
 * and the input gradient dinp += dout·W with W in bf16, against a double-precision reference of
 * the same bf16-rounded operands (the activations rounded with kcpu_f32_to_bf16, as the kernel
 * contract says). Tolerance, per element, relative to the magnitude of what was summed:
 *   |got - ref| <= (K + 2)·2⁻²⁴ · (Σ_k |a_k|·|b_k| + |bias|)
 * which is the worst-case error bound of K fp32 additions (Higham, "Accuracy and Stability of
 * Numerical Algorithms", 2002, eq. 4.4: γ_K ≈ K·u, u = 2⁻²⁴) with two roundings to spare; using
 * the activations unrounded, or any wrong index, misses it by orders of magnitude. Shapes are
 * odd on purpose (N, C, OC not multiples of the 8×48 tile, C odd, OC > the packed block
 * width, depth > one block), bias NULL and not, and the scratch is poisoned first.
 * The AVX512-BF16 kernel is checked only where the CPU has it (one line says so otherwise); the
 * scalar reference functions are checked everywhere. Last, the executor's two bf16 paths
 * (native kernel, or the weight widened to fp32 and sgemm) give the same tiny GPT-2 and Llama
 * loss and gradients up to the activations' bf16 rounding, and the native path carves the
 * kernel's scratch instead of the fp32 weight buffer. */
#include "kernels_check.h"

#include <stdbool.h>
#include <stdint.h>

#include "executor/executor.h"
#include "kernels/cpu/kernels_cpu.h"

static double widen(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t *round_bf16(const float *x, size_t n)
{
    uint16_t *h = malloc(n * sizeof(uint16_t) + 2);
    kcpu_f32_to_bf16(h, x, n);
    return h;
}

static void *scratch_for(int N)
{
    size_t bytes = kcpu_matmul_bf16_scratch_bytes(N);
    size_t alloc = (bytes + 63) / 64 * 64 + 64;
    void *p = aligned_alloc(64, alloc);
    memset(p, 0xFF, alloc); /* NaN bf16 everywhere: a read of unwritten scratch shows */
    return p;
}

/* Worst |got - ref| / bound over n elements; prints it and counts one check. */
static void check_bound(const char *what, const float *got, const double *ref, const double *mag,
                        size_t n, int K)
{
    double u = ldexp(1.0, -24), worst = 0;
    size_t at = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        double bound = (K + 2) * u * mag[i];
        double d = fabs((double)got[i] - ref[i]);
        double r = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0);
        if (!(r <= 1.0))
            ok = false;
        if (!(r <= worst)) {
            worst = r;
            at = i;
        }
    }
    printf("  %-52s max err / bound %.3f\n", what, worst);
    CHECK_MSG(ok, "%s: element %zu = %.9g, expected %.9g (bound %.3g)", what, at,
              n ? (double)got[at] : 0.0, n ? ref[at] : 0.0, n ? (K + 2) * u * mag[at] : 0.0);
}

/* One output's reference in double, start + Σ_k widen(a[k·sa])·widen(b[k·sb]) over k < K, into
 * *ref, and its error scale |start| + Σ_k |term| into *mag (check_bound's bound). */
static void ref_dot(double start, const uint16_t *a, size_t sa, const uint16_t *b, size_t sb,
                    int K, double *ref, double *mag)
{
    double s = start, m = fabs(start);
    for (int k = 0; k < K; k++) {
        double p = widen(a[(size_t)k * sa]) * widen(b[(size_t)k * sb]);
        s += p;
        m += fabs(p);
    }
    *ref = s;
    *mag = m;
}

typedef void (*fwd_fn)(float *out, const float *inp, const uint16_t *w, const float *bias, int N,
                       int C, int OC, void *scratch);

static void fwd_ref_adapter(float *out, const float *inp, const uint16_t *w, const float *bias,
                            int N, int C, int OC, void *scratch)
{
    (void)scratch;
    kcpu_matmul_bf16_forward_ref(out, inp, w, bias, N, C, OC);
}

static void check_forward(const char *impl, fwd_fn fn, int N, int C, int OC, bool with_bias)
{
    float *x = kc_floats((size_t)N * C, -1, 1);
    float *wf = kc_floats((size_t)OC * C, -0.5, 0.5);
    float *bias = with_bias ? kc_floats((size_t)OC, -1, 1) : NULL;
    uint16_t *w = round_bf16(wf, (size_t)OC * C), *xb = round_bf16(x, (size_t)N * C);
    double *ref = malloc(sizeof(double) * ((size_t)N * OC + 1));
    double *mag = malloc(sizeof(double) * ((size_t)N * OC + 1));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            ref_dot(bias ? bias[o] : 0, xb + (size_t)n * C, 1, w + (size_t)o * C, 1, C,
                    &ref[(size_t)n * OC + o], &mag[(size_t)n * OC + o]);
    float *out = kc_floats((size_t)N * OC, 100, 200); /* overwritten, not added to */
    void *scratch = scratch_for(N);
    fn(out, x, w, bias, N, C, OC, scratch);
    char what[96];
    snprintf(what, sizeof what, "%s forward N=%d C=%d OC=%d%s", impl, N, C, OC,
             with_bias ? "" : " bias=NULL");
    check_bound(what, out, ref, mag, (size_t)N * OC, C);
    free(x), free(wf), free(bias), free(w), free(xb), free(ref), free(mag), free(out);
    free(scratch);
}

typedef void (*bwd_fn)(float *dinp, const float *dout, const uint16_t *w, int N, int C, int OC,
                       void *scratch);

static void bwd_ref_adapter(float *dinp, const float *dout, const uint16_t *w, int N, int C, int OC,
                            void *scratch)
{
    (void)scratch;
    kcpu_matmul_bf16_backward_input_ref(dinp, dout, w, N, C, OC);
}

static void check_backward(const char *impl, bwd_fn fn, int N, int C, int OC)
{
    float *g = kc_floats((size_t)N * OC, -1, 1);
    float *wf = kc_floats((size_t)OC * C, -0.5, 0.5);
    float *pre = kc_floats((size_t)N * C, -2, 2); /* the gradient accumulates onto this */
    uint16_t *w = round_bf16(wf, (size_t)OC * C), *gb = round_bf16(g, (size_t)N * OC);
    double *ref = malloc(sizeof(double) * ((size_t)N * C + 1));
    double *mag = malloc(sizeof(double) * ((size_t)N * C + 1));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            ref_dot(pre[(size_t)n * C + c], gb + (size_t)n * OC, 1, w + c, (size_t)C, OC,
                    &ref[(size_t)n * C + c], &mag[(size_t)n * C + c]);
    float *dinp = kc_copyf(pre, (size_t)N * C);
    void *scratch = scratch_for(N);
    fn(dinp, g, w, N, C, OC, scratch);
    char what[96];
    snprintf(what, sizeof what, "%s backward-input N=%d C=%d OC=%d", impl, N, C, OC);
    check_bound(what, dinp, ref, mag, (size_t)N * C, OC);
    free(g), free(wf), free(pre), free(w), free(gb), free(ref), free(mag), free(dinp);
    free(scratch);
}

typedef void (*bww_fn)(float *dweight, float *dbias, const float *dout, const float *inp, int N,
                       int C, int OC, void *scratch);

static void bww_ref_adapter(float *dweight, float *dbias, const float *dout, const float *inp,
                            int N, int C, int OC, void *scratch)
{
    (void)scratch;
    kcpu_matmul_bf16_backward_weight_ref(dweight, dbias, dout, inp, N, C, OC);
}

/* dW(OC,C) += bf16(dout)ᵀ·bf16(inp) onto nonzero values (its depth is N), and dbias += the
 * fp32 column sums of dout (unrounded: bound over N additions); dbias NULL in every other call. */
static void check_backward_weight(const char *impl, bww_fn fn, int N, int C, int OC, bool bias)
{
    float *g = kc_floats((size_t)N * OC, -1, 1);
    float *x = kc_floats((size_t)N * C, -2, 2);
    float *pre = kc_floats((size_t)OC * C, -3, 3);
    float *bpre = kc_floats((size_t)OC, -1, 1);
    uint16_t *gb = round_bf16(g, (size_t)N * OC), *xb = round_bf16(x, (size_t)N * C);
    double *ref = malloc(sizeof(double) * ((size_t)OC * C + 1));
    double *mag = malloc(sizeof(double) * ((size_t)OC * C + 1));
    double *bref = malloc(sizeof(double) * ((size_t)OC + 1));
    double *bmag = malloc(sizeof(double) * ((size_t)OC + 1));
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++)
            ref_dot(pre[(size_t)o * C + c], gb + o, (size_t)OC, xb + c, (size_t)C, N,
                    &ref[(size_t)o * C + c], &mag[(size_t)o * C + c]);
        double s = bpre[o], m = fabs(s);
        for (int n = 0; n < N; n++) {
            s += g[(size_t)n * OC + o];
            m += fabs(g[(size_t)n * OC + o]);
        }
        bref[o] = s;
        bmag[o] = m;
    }
    float *dw = kc_copyf(pre, (size_t)OC * C), *db = kc_copyf(bpre, (size_t)OC);
    void *scratch = scratch_for(N);
    fn(dw, bias ? db : NULL, g, x, N, C, OC, scratch);
    char what[96];
    snprintf(what, sizeof what, "%s backward-weight N=%d C=%d OC=%d", impl, N, C, OC);
    check_bound(what, dw, ref, mag, (size_t)OC * C, N);
    if (bias) {
        snprintf(what, sizeof what, "%s backward-bias N=%d OC=%d", impl, N, OC);
        check_bound(what, db, bref, bmag, (size_t)OC, N);
    } else {
        CHECK(memcmp(db, bpre, sizeof(float) * (size_t)OC) == 0);
    }
    free(g), free(x), free(pre), free(bpre), free(gb), free(xb), free(ref), free(mag);
    free(bref), free(bmag), free(dw), free(db), free(scratch);
}

/* (N, C, OC): tails in every dimension; C odd; OC > NC (two packed column blocks) and depth >
 * KC (several depth blocks, the output accumulated across them); N > MC (several row tasks). */
static const int shapes[][3] = {
    {1, 1, 1},       {3, 5, 7},      {9, 33, 50},   {17, 255, 97},  {13, 257, 49},
    {130, 300, 100}, {8, 520, 1600}, {2, 1601, 40}, {64, 64, 1537},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* The weight gradient's depth is N: past one depth block (800, 1601 with an unpaired last row),
 * C past one packed column block (1601), and OC many times a row task's 32 rows (1000: 31 and a
 * partial one; 200 with a depth of 3). */
static const int dw_shapes[][3] = {
    {800, 50, 37}, {1601, 20, 9}, {5, 1601, 40}, {3, 7, 200}, {40, 130, 1000},
};
#define N_DW_SHAPES (sizeof(dw_shapes) / sizeof(dw_shapes[0]))

static void run_impl(const char *impl, fwd_fn f, bwd_fn b, bww_fn w)
{
    for (size_t i = 0; i < N_SHAPES; i++)
        check_backward_weight(impl, w, shapes[i][0], shapes[i][1], shapes[i][2], i % 2 == 0);
    for (size_t i = 0; i < N_DW_SHAPES; i++)
        check_backward_weight(impl, w, dw_shapes[i][0], dw_shapes[i][1], dw_shapes[i][2],
                              i % 2 == 1);
    for (size_t i = 0; i < N_SHAPES; i++) {
        int N = shapes[i][0], C = shapes[i][1], OC = shapes[i][2];
        check_forward(impl, f, N, C, OC, true);
        if (i % 2 == 0)
            check_forward(impl, f, N, C, OC, false);
        /* backward: the same shape with C and OC swapped too, so its depth (OC) has tails */
        check_backward(impl, b, N, C, OC);
        check_backward(impl, b, N, OC, C);
    }
}

static void test_reference(void)
{
    run_impl("scalar", fwd_ref_adapter, bwd_ref_adapter, bww_ref_adapter);
}

static void test_native(void)
{
    if (!kcpu_has_native_bf16()) {
        printf("  native AVX512-BF16 kernel: skipped, this CPU has no avx512bf16 (the public "
               "functions run the scalar reference)\n");
        return;
    }
    run_impl("avx512bf16", kcpu_matmul_bf16_forward, kcpu_matmul_bf16_backward_input,
             kcpu_matmul_bf16_backward_weight);
}

/* A forward of at most 8 rows (mmb_gemv: weight rows read directly, transposed in registers)
 * gives, row for row, the bits the packed GEMM gives for the same rows inside a 12-row call
 * (each output element's arithmetic is the same): depths with tails, odd, and past one depth
 * block; column counts with tails of the 16-column blocks; bias and none; a zero row (whose
 * outputs are +0 either way: the tile adds 0 to -0). */
static void test_gemv_equals_gemm(void)
{
    if (!kcpu_has_native_bf16()) {
        printf("  gemv = gemm: skipped, this CPU has no avx512bf16\n");
        return;
    }
    static const int cs[][2] = {{1, 1},     {5, 7},     {33, 50},   {255, 97},
                                {768, 768}, {1601, 40}, {3072, 17}, {64, 1537}};
    const int NB = 12;
    int diffs = 0, cases = 0;
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        int C = cs[s][0], OC = cs[s][1];
        float *x = kc_floats((size_t)NB * C, -2, 2), *wf = kc_floats((size_t)OC * C, -0.5, 0.5);
        float *bias = kc_floats((size_t)OC, -1, 1);
        for (int c = 0; c < C; c++)
            x[(size_t)2 * C + c] = 0.0f; /* row 2: zeros */
        uint16_t *w = round_bf16(wf, (size_t)OC * C);
        float *big = malloc(sizeof(float) * (size_t)NB * OC);
        float *small = malloc(sizeof(float) * (size_t)NB * OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            void *sb = scratch_for(NB);
            kcpu_matmul_bf16_forward(big, x, w, with_bias ? bias : NULL, NB, C, OC, sb);
            free(sb);
            static const int ns[] = {1, 2, 3, 8};
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                int n = ns[k];
                void *ss = scratch_for(n);
                kcpu_matmul_bf16_forward(small, x, w, with_bias ? bias : NULL, n, C, OC, ss);
                free(ss);
                cases++;
                if (memcmp(small, big, sizeof(float) * (size_t)n * OC) != 0) {
                    diffs++;
                    printf("  gemv != gemm: N=%d C=%d OC=%d bias %d\n", n, C, OC, with_bias);
                }
            }
        }
        free(x), free(wf), free(bias), free(w), free(big), free(small);
    }
    printf("  gemv (N <= 8) = gemm rows, bit for bit: %d of %d cases differ\n", diffs, cases);
    CHECK_INT(diffs, 0);
}

/* The scratch size is the documented formula, depends on N only, and N = 0 touches nothing. */
static void test_scratch_and_empty(void)
{
    for (int N = 0; N < 40; N += 7) {
        size_t rows = ((size_t)N + KCPU_BF16_MM_MR - 1) / KCPU_BF16_MM_MR * KCPU_BF16_MM_MR;
        CHECK_INT(kcpu_matmul_bf16_scratch_bytes(N),
                  2 * KCPU_BF16_MM_KC * rows + 2 * (size_t)KCPU_BF16_MM_KC * KCPU_BF16_MM_NC);
    }
    CHECK(kcpu_matmul_bf16_scratch_bytes(0) % 64 == 0);
    float out = 7.0f, x = 1.0f, bias = 3.0f;
    uint16_t w = 0x3F80; /* 1.0 */
    kcpu_matmul_bf16_forward(&out, &x, &w, &bias, 0, 1, 1, NULL);
    kcpu_matmul_bf16_backward_input(&out, &x, &w, 0, 1, 1, NULL);
    CHECK(out == 7.0f);
    /* One element, exactly representable: 1.5 · 2.0 + 3.0 = 6.0 on either path. */
    void *scratch = scratch_for(1);
    x = 1.5f;
    w = 0x4000; /* 2.0 */
    kcpu_matmul_bf16_forward(&out, &x, &w, &bias, 1, 1, 1, scratch);
    CHECK(out == 6.0f);
    kcpu_matmul_bf16_backward_input(&out, &x, &w, 1, 1, 1, scratch);
    CHECK(out == 9.0f);
    free(scratch);
}

/* The executor's bf16 path follows be->has_native_bf16(): copies of the CPU backend answering
 * yes and no select the native kernel and the emulation on any CPU (a "native" answer on a CPU
 * without AVX512-BF16 runs the kernel's scalar fallback, still correct). */
static bool say_yes(void)
{
    return true;
}

static bool say_no(void)
{
    return false;
}

static struct model_desc tiny(enum model_arch arch)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-%s", model_arch_name(arch));
    d.arch = arch;
    d.n_layers = 2;
    d.hidden = 40; /* not a multiple of the tile */
    d.n_heads = 4;
    d.n_kv_heads = arch == MODEL_ARCH_LLAMA ? 2 : 4;
    d.head_dim = 10;
    d.ffn = arch == MODEL_ARCH_LLAMA ? 72 : 160;
    d.vocab = 97;
    d.max_pos = 32;
    model_fill_defaults(&d);
    return d;
}

/* Loss and a copy of the gradients of one forward/backward on `be`; NULL on failure. */
static float *model_grads(const struct model_desc *d, const struct backend *be, float *loss,
                          size_t *n, uint64_t *ws_bytes)
{
    enum { B = 2, T = 12 };
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = B;
    o.seq = T;
    o.precision = PREC_BF16_MIXED;
    struct exec_model m;
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_init(&m, d, &o, be, &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return NULL;
    exec_model_init_weights(&m, 7);
    int tokens[B * T], targets[B * T];
    kc_seed(99);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)(kc_u32() % 97);
        targets[i] = (int)(kc_u32() % 97);
    }
    exec_model_zero_grad(&m);
    CHECK_OK(exec_model_forward(&m, tokens, targets, B, T, loss, &err), &err);
    CHECK_OK(exec_model_backward(&m, 1.0f, &err), &err);
    float *g = kc_copyf(m.train_grads, m.n_train);
    *n = m.n_train;
    *ws_bytes = m.held.bytes[BACKEND_MEM_WORKSPACE];
    exec_model_release(&m);
    return g;
}

/* Tolerances: loss within 0.5% and gradients within 3% of the largest gradient (the native
 * path also rounds activations and output gradients to bf16, 2⁻⁹ relative each). */
static void test_model_paths(void)
{
    struct backend native = *backend_cpu(), emulated = *backend_cpu();
    native.has_native_bf16 = say_yes;
    emulated.has_native_bf16 = say_no;
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        float ln = 0, le = 0;
        size_t nn = 0, ne = 0;
        uint64_t wsn = 0, wse = 0;
        float *gn = model_grads(&d, &native, &ln, &nn, &wsn);
        float *ge = model_grads(&d, &emulated, &le, &ne, &wse);
        if (gn && ge && nn == ne) {
            double md = 0, mx = 0;
            for (size_t i = 0; i < nn; i++) {
                md = fmax(md, fabs((double)gn[i] - ge[i]));
                mx = fmax(mx, fabs((double)ge[i]));
            }
            printf("  %-10s bf16 native vs emulated: loss %.6f vs %.6f, grads max |diff| %.3g "
                   "(max %.3g), workspace %llu vs %llu bytes\n",
                   d.name, ln, le, md, mx, (unsigned long long)wsn, (unsigned long long)wse);
            CHECK_REL(ln, le, 0.005);
            CHECK_MSG(md <= 0.03 * mx && mx > 0, "native bf16 grads off by %.3g", md);
            CHECK(wsn != wse); /* the paths really differ: scratch vs fp32 weight buffer */
        } else {
            CHECK(gn && ge && nn == ne);
        }
        free(gn);
        free(ge);
    }
}

int main(void)
{
    kc_seed(4242);
    (void)kc_zeros, (void)kc_to_double; /* kernels_check.h helpers this file has no use for */
    printf("native bf16: %s\n", kcpu_has_native_bf16() ? "yes (AVX512-BF16)" : "no");
    RUN(test_scratch_and_empty);
    RUN(test_reference);
    RUN(test_native);
    RUN(test_gemv_equals_gemm);
    RUN(test_model_paths);
    return harness_finish("test_kernels_bf16");
}
