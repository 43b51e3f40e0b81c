/* Tests of kernels/cpu, element-wise and row-wise kernels: matmul (BLAS or fallback), int8
 * weight-only matmul, embedding, residual, LayerNorm, RMSNorm, GELU, SwiGLU, RoPE, fused
 * softmax + cross-entropy, bf16 conversion. Every forward is compared with a naive reference
 * written here in double; every backward with central finite differences of that reference
 * (or, for the larger sizes, its analytic gradient), into gradient buffers that start non-zero
 * so that accumulation (+=) is checked too. Attention and optimizers have their own programs. */
#include "kernels_check.h"

#include <float.h>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/cpu/vexp.h"

/* Forward tolerance for fp32 kernels against a double reference at O(1) values. */
#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-5
/* Backward against finite differences (h = 1e-5 in double: FD error ~1e-9). */
#define BWD_ATOL 5e-5
#define BWD_RTOL 1e-4
#define FD_H 1e-5

/* ---------------------------------------------------------------- matmul */

struct mm_ctx {
    int N, C, OC;
    const float *dout;
};

static void mm_ref(const double *inp, const double *w, const double *b, double *out, int N, int C,
                   int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int c = 0; c < C; c++)
                s += inp[n * C + c] * w[o * C + c];
            out[n * OC + o] = s;
        }
}

static double mm_loss(const void *vctx, const double *th)
{
    const struct mm_ctx *x = vctx;
    double *out = malloc(sizeof(double) * x->N * x->OC);
    mm_ref(th, th + x->N * x->C, th + x->N * x->C + x->OC * x->C, out, x->N, x->C, x->OC);
    double l = kc_dot(out, x->dout, (size_t)x->N * x->OC);
    free(out);
    return l;
}

static void check_matmul(int N, int C, int OC, bool use_fd)
{
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    size_t nt = ni + nw + OC;
    float *th = kc_floats(nt, -1, 1);
    float *inp = th, *w = th + ni, *b = th + ni + nw;
    float *out = kc_zeros(no), *dout = kc_floats(no, -1, 1);
    double *thd = kc_to_double(th, nt), *ref = malloc(sizeof(double) * no);
    char what[96];

    kcpu_matmul_forward(out, inp, w, b, N, C, OC);
    mm_ref(thd, thd + ni, thd + ni + nw, ref, N, C, OC);
    snprintf(what, sizeof what, "matmul fwd %dx%dx%d", N, C, OC);
    KC_CLOSE(what, out, ref, no, FWD_ATOL, FWD_RTOL);
    kcpu_matmul_forward(out, inp, w, NULL, N, C, OC);
    mm_ref(thd, thd + ni, NULL, ref, N, C, OC);
    snprintf(what, sizeof what, "matmul fwd no bias %dx%dx%d", N, C, OC);
    KC_CLOSE(what, out, ref, no, FWD_ATOL, FWD_RTOL);

    float *pre = kc_floats(nt, -1, 1), *grad = kc_copyf(pre, nt);
    kcpu_matmul_backward(grad, grad + ni, grad + ni + nw, dout, inp, w, N, C, OC);
    double *g = malloc(sizeof(double) * nt);
    if (use_fd) {
        struct mm_ctx ctx = {N, C, OC, dout};
        kc_fd_grad(mm_loss, &ctx, thd, nt, FD_H, g);
    } else { /* analytic, in double */
        for (size_t i = 0; i < nt; i++)
            g[i] = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double go = dout[n * OC + o];
                g[ni + nw + o] += go;
                for (int c = 0; c < C; c++) {
                    g[n * C + c] += go * thd[ni + o * C + c];
                    g[ni + o * C + c] += go * thd[n * C + c];
                }
            }
    }
    snprintf(what, sizeof what, "matmul dinp %s", use_fd ? "vs FD" : "vs analytic");
    KC_CLOSE_DELTA(what, grad, pre, g, ni, BWD_ATOL, BWD_RTOL);
    snprintf(what, sizeof what, "matmul dweight %s", use_fd ? "vs FD" : "vs analytic");
    KC_CLOSE_DELTA(what, grad + ni, pre + ni, g + ni, nw, BWD_ATOL, BWD_RTOL);
    snprintf(what, sizeof what, "matmul dbias %s", use_fd ? "vs FD" : "vs analytic");
    KC_CLOSE_DELTA(what, grad + ni + nw, pre + ni + nw, g + ni + nw, OC, BWD_ATOL, BWD_RTOL);

    /* NULL gradients are skipped: only dinp changes. */
    float *g2 = kc_copyf(pre, nt);
    kcpu_matmul_backward(g2, NULL, NULL, dout, inp, w, N, C, OC);
    CHECK(memcmp(g2 + ni, pre + ni, (nw + OC) * sizeof(float)) == 0);
    free(g2);
    free(th), free(out), free(dout), free(thd), free(ref), free(pre), free(grad), free(g);
}

static void test_matmul(void)
{
#ifdef SW_HAVE_OPENBLAS
    CHECK(kcpu_matmul_uses_blas());
#else
    CHECK(!kcpu_matmul_uses_blas());
#endif
    check_matmul(5, 7, 6, true);
    check_matmul(1, 3, 70, true); /* a bias slice boundary (64) */
    check_matmul(48, 96, 80, false);
}

/* ---------------------------------------------------------------- int8 weight-only */

static void test_int8(void)
{
    int N = 9, C = 67, OC = 21;
    float *w = kc_floats((size_t)OC * C, -0.5, 0.5), *inp = kc_floats((size_t)N * C, -2, 2);
    float *bias = kc_floats(OC, -1, 1);
    for (int c = 0; c < C; c++)
        w[3 * C + c] = 0.0f; /* an all-zero row */
    int8_t *q = malloc((size_t)OC * C);
    float *scale = kc_zeros(OC);
    kcpu_quantize_int8_rows(q, scale, w, OC, C);
    int bad_round = 0, row_max_ok = 1;
    for (int o = 0; o < OC; o++) {
        int amax = 0;
        for (int c = 0; c < C; c++) {
            int v = q[o * C + c];
            amax = abs(v) > amax ? abs(v) : amax;
            double err = fabs((double)w[o * C + c] - (double)scale[o] * v);
            if (err > scale[o] * 0.5 * (1 + 1e-5) + 1e-12)
                bad_round++;
        }
        if (o == 3)
            row_max_ok &= amax == 0 && scale[o] == 0.0f;
        else
            row_max_ok &= amax == 127;
    }
    CHECK_INT(bad_round, 0);
    CHECK(row_max_ok);

    float *out = kc_zeros((size_t)N * OC);
    kcpu_matmul_int8_forward(out, inp, q, scale, bias, N, C, OC);
    /* (a) equals the double matmul with the dequantised weight, to fp32 rounding. */
    double *deq = malloc(sizeof(double) * OC * C), *ind = kc_to_double(inp, (size_t)N * C);
    double *bd = kc_to_double(bias, OC), *ref = malloc(sizeof(double) * N * OC);
    for (int i = 0; i < OC * C; i++)
        deq[i] = (double)scale[i / C] * q[i];
    mm_ref(ind, deq, bd, ref, N, C, OC);
    KC_CLOSE("int8 matmul vs dequantised double", out, ref, (size_t)N * OC, FWD_ATOL, FWD_RTOL);
    /* (b) within the stated bound of the fp32 weight: Σ|x|·scale/2 per element. */
    double *wd = kc_to_double(w, (size_t)OC * C);
    mm_ref(ind, wd, bd, ref, N, C, OC);
    int over = 0;
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double bound = 0;
            for (int c = 0; c < C; c++)
                bound += fabs(ind[n * C + c]) * scale[o] * 0.5;
            double err = fabs(out[n * OC + o] - ref[n * OC + o]);
            worst = err / (bound + 1e-5) > worst ? err / (bound + 1e-5) : worst;
            over += err > bound + 1e-5;
        }
    printf("  int8 matmul vs fp32 weight: worst error / bound = %.3f\n", worst);
    CHECK_INT(over, 0);
    free(w), free(inp), free(bias), free(q), free(scale), free(out), free(deq), free(ind),
        free(bd), free(ref), free(wd);
}

/* ---------------------------------------------------------------- embedding, residual */

struct emb_ctx {
    int B, T, C, V, maxT, off;
    const int *tok;
    const float *dout;
};

static double emb_loss(const void *vctx, const double *th)
{
    const struct emb_ctx *x = vctx;
    const double *wte = th, *wpe = th + x->V * x->C;
    double l = 0;
    for (int i = 0; i < x->B * x->T; i++)
        for (int c = 0; c < x->C; c++)
            l += (wte[x->tok[i] * x->C + c] + wpe[(x->off + i % x->T) * x->C + c]) *
                 x->dout[i * x->C + c];
    return l;
}

static void test_embedding(void)
{
    int B = 2, T = 5, C = 70, V = 7, maxT = 9, off = 3;
    int tok[10] = {1, 4, 1, 6, 0, 4, 4, 2, 1, 5}; /* repeated ids: scatter-add collisions */
    size_t nte = (size_t)V * C, npe = (size_t)maxT * C, nt = nte + npe, no = (size_t)B * T * C;
    float *th = kc_floats(nt, -1, 1), *out = kc_zeros(no), *dout = kc_floats(no, -1, 1);
    double *thd = kc_to_double(th, nt), *ref = malloc(sizeof(double) * no);

    kcpu_embedding_forward(out, tok, th, th + nte, B, T, C, V, maxT, off);
    for (int i = 0; i < B * T; i++)
        for (int c = 0; c < C; c++)
            ref[i * C + c] = thd[tok[i] * C + c] + thd[nte + (off + i % T) * C + c];
    KC_CLOSE("embedding fwd (wte + wpe, offset 3)", out, ref, no, 1e-6, 1e-6);
    kcpu_embedding_forward(out, tok, th, NULL, B, T, C, V, maxT, 0);
    for (int i = 0; i < B * T; i++)
        for (int c = 0; c < C; c++)
            ref[i * C + c] = thd[tok[i] * C + c];
    KC_CLOSE("embedding fwd (wte only)", out, ref, no, 0, 0);

    float *pre = kc_floats(nt, -1, 1), *grad = kc_copyf(pre, nt);
    kcpu_embedding_backward(grad, grad + nte, dout, tok, B, T, C, V, maxT, off);
    double *g = malloc(sizeof(double) * nt);
    struct emb_ctx ctx = {B, T, C, V, maxT, off, tok, dout};
    kc_fd_grad(emb_loss, &ctx, thd, nt, FD_H, g);
    KC_CLOSE_DELTA("embedding dwte vs FD", grad, pre, g, nte, BWD_ATOL, BWD_RTOL);
    KC_CLOSE_DELTA("embedding dwpe vs FD", grad + nte, pre + nte, g + nte, npe, BWD_ATOL,
                   BWD_RTOL);

    /* residual: out = a + b; da += dout, db += dout. */
    float *a = kc_floats(no, -1, 1), *b2 = kc_floats(no, -1, 1), *r = kc_zeros(no);
    kcpu_residual_forward(r, a, b2, no);
    for (size_t i = 0; i < no; i++)
        ref[i] = (double)a[i] + b2[i];
    KC_CLOSE("residual fwd", r, ref, no, 1e-7, 1e-7);
    float *da = kc_copyf(a, no);
    kcpu_residual_backward(da, NULL, dout, no);
    for (size_t i = 0; i < no; i++)
        ref[i] = dout[i];
    KC_CLOSE_DELTA("residual bwd (+=)", da, a, ref, no, 1e-6, 1e-6);
    free(th), free(out), free(dout), free(thd), free(ref), free(pre), free(grad), free(g);
    free(a), free(b2), free(r), free(da);
}

/* ---------------------------------------------------------------- LayerNorm, RMSNorm */

struct norm_ctx {
    int N, C;
    bool rms;
    double eps;
    const float *dout;
};

static void norm_ref(const struct norm_ctx *x, const double *inp, const double *w,
                     const double *b, double *out)
{
    for (int n = 0; n < x->N; n++) {
        const double *r = inp + n * x->C;
        double m = 0, v = 0;
        if (!x->rms) {
            for (int c = 0; c < x->C; c++)
                m += r[c];
            m /= x->C;
        }
        for (int c = 0; c < x->C; c++)
            v += (r[c] - m) * (r[c] - m);
        double rs = 1 / sqrt(v / x->C + x->eps);
        for (int c = 0; c < x->C; c++)
            out[n * x->C + c] = (r[c] - m) * rs * w[c] + (x->rms ? 0 : b[c]);
    }
}

static double norm_loss(const void *vctx, const double *th)
{
    const struct norm_ctx *x = vctx;
    size_t ni = (size_t)x->N * x->C;
    double *out = malloc(sizeof(double) * ni);
    norm_ref(x, th, th + ni, th + ni + x->C, out);
    double l = kc_dot(out, x->dout, ni);
    free(out);
    return l;
}

static void check_norm(bool rms, int N, int C)
{
    size_t ni = (size_t)N * C, nt = ni + 2 * (size_t)C;
    float *th = kc_floats(nt, -1, 1);
    for (size_t i = 0; i < ni; i++)
        th[i] += 0.7f; /* a non-zero mean exercises the LayerNorm centring */
    float *out = kc_zeros(ni), *mean = kc_zeros(N), *rstd = kc_zeros(N);
    float *dout = kc_floats(ni, -1, 1);
    double *thd = kc_to_double(th, nt), *ref = malloc(sizeof(double) * ni);
    struct norm_ctx ctx = {N, C, rms, 1e-5, dout};
    char what[96];
    if (rms)
        kcpu_rmsnorm_forward(out, rstd, th, th + ni, N, C, 1e-5f);
    else
        kcpu_layernorm_forward(out, mean, rstd, th, th + ni, th + ni + C, N, C, 1e-5f);
    norm_ref(&ctx, thd, thd + ni, thd + ni + C, ref);
    snprintf(what, sizeof what, "%s fwd N=%d C=%d", rms ? "rmsnorm" : "layernorm", N, C);
    KC_CLOSE(what, out, ref, ni, FWD_ATOL, FWD_RTOL);

    float *pre = kc_floats(nt, -1, 1), *grad = kc_copyf(pre, nt);
    if (rms)
        kcpu_rmsnorm_backward(grad, grad + ni, dout, th, th + ni, rstd, N, C);
    else
        kcpu_layernorm_backward(grad, grad + ni, grad + ni + C, dout, th, th + ni, mean, rstd, N,
                                C);
    double *g = malloc(sizeof(double) * nt);
    kc_fd_grad(norm_loss, &ctx, thd, nt, FD_H, g);
    snprintf(what, sizeof what, "%s dinp vs FD", rms ? "rmsnorm" : "layernorm");
    KC_CLOSE_DELTA(what, grad, pre, g, ni, BWD_ATOL, BWD_RTOL);
    snprintf(what, sizeof what, "%s dweight vs FD", rms ? "rmsnorm" : "layernorm");
    KC_CLOSE_DELTA(what, grad + ni, pre + ni, g + ni, C, BWD_ATOL, BWD_RTOL);
    if (!rms)
        KC_CLOSE_DELTA("layernorm dbias vs FD", grad + ni + C, pre + ni + C, g + ni + C, C,
                       BWD_ATOL, BWD_RTOL);
    free(th), free(out), free(mean), free(rstd), free(dout), free(thd), free(ref), free(pre),
        free(grad), free(g);
}

static void test_norms(void)
{
    check_norm(false, 6, 10);
    check_norm(false, 3, 70); /* two channel slices in the weight-gradient pass */
    check_norm(true, 6, 10);
    check_norm(true, 3, 70);
}

/* ---------------------------------------------------------------- GELU, SwiGLU */

struct act_ctx {
    int N, H; /* GELU: N elements, H = 0 */
    const float *dout;
};

static double gelu_ref(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double silu_ref(double x)
{
    return x / (1 + exp(-x));
}

static double act_loss(const void *vctx, const double *th)
{
    const struct act_ctx *x = vctx;
    double l = 0;
    if (x->H == 0) {
        for (int i = 0; i < x->N; i++)
            l += gelu_ref(th[i]) * x->dout[i];
        return l;
    }
    for (int n = 0; n < x->N; n++)
        for (int j = 0; j < x->H; j++)
            l += silu_ref(th[n * 2 * x->H + j]) * th[n * 2 * x->H + x->H + j] *
                 x->dout[n * x->H + j];
    return l;
}

/* kc_exp16 (kernels/cpu/vexp.h, the GELU's, softmax-CE's and flash attention's exponential)
 * against double exp from -110 to 90, in steps that are not a multiple of anything: within one
 * float epsilon relative for normal results, one denormal step absolute below FLT_MIN (where
 * the result is a denormal, or 0 below e^-104); the edges exactly: e^0 = 1, e^88.72 finite,
 * +inf at 88.73 (past ln FLT_MAX) and at +inf, 0 at -inf and -200, NaN for NaN, a denormal at
 * -103.5; and kc_exp_n's padded tail equal to the full groups on the same values. */
static void test_vexp(void)
{
    double worst = 0.0, at = 0.0;
    float in[16], out[16];
    for (double x0 = -110.0; x0 <= 90.0; x0 += 0.01171875 * 16) {
        for (int k = 0; k < 16; k++)
            in[k] = (float)(x0 + 0.000733 * k);
        kc_exp16(out, in);
        for (int k = 0; k < 16; k++) {
            double r = exp((double)in[k]), err;
            if (r < FLT_MIN)
                err = fabs(out[k] - r) / (double)FLT_TRUE_MIN;
            else if (r > FLT_MAX)
                err = isinf(out[k]) ? 0.0 : INFINITY;
            else
                err = fabs(out[k] - r) / (r * FLT_EPSILON);
            if (err > worst) {
                worst = err;
                at = in[k];
            }
        }
    }
    printf("  kc_exp16 over [-110, 90]: within %.3f float epsilons (worst at x = %g)\n", worst,
           at);
    CHECK_MSG(worst <= 1.0, "kc_exp16 %.3f epsilons from exp at x = %g", worst, at);
    float sp[16] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72f, 88.73f, -200.0f,
                    1.0f, -1.0f, 1e-30f, -104.0f, -103.5f, 50.0f, -50.0f, 2.0f};
    kc_exp16(out, sp);
    CHECK(out[0] == 1.0f && out[1] == 1.0f);
    CHECK(out[2] == INFINITY && out[3] == 0.0f && isnan(out[4]));
    CHECK(isfinite(out[5]) && out[6] == INFINITY && out[7] == 0.0f);
    CHECK(out[12] > 0.0f && out[12] < FLT_MIN); /* a denormal */
    float big[40], ref[48], got[40];
    for (int i = 0; i < 40; i++)
        big[i] = -3.0f + 0.17f * (float)i;
    kc_exp_n(got, big, 40); /* two groups of 16, then 8 through the padded copy */
    for (int g = 0; g < 48; g += 16) {
        float t[16] = {0};
        for (int k = 0; k < 16 && g + k < 40; k++)
            t[k] = big[g + k];
        kc_exp16(ref + g, t);
    }
    CHECK(memcmp(got, ref, sizeof got) == 0);
}

/* GELU and its derivative in double through the sigmoid form, s = 0.5(1 + tanh u) =
 * 1 / (1 + e^(-2u)): the tanh form cancels in double too once u < -18 (at x = -7 it is 0.7%
 * off). sech²u / 4 = s(1 - s) = 1 / (2 + e + 1/e), which stays finite when e overflows. */
static double gelu_ref_sig(double x)
{
    double u = sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1 + exp(-2 * u));
}

static double gelu_grad_ref(double x)
{
    double k = sqrt(2 / M_PI), a = 0.044715, u = k * (x + a * x * x * x), e = exp(-2 * u);
    return 1 / (1 + e) + 2 * x * k * (1 + 3 * a * x * x) / (2 + e + 1 / e);
}

/* The kernels (the sigmoid form of tanh) against double references over [-30, 30], past where
 * e^(-2u) overflows in float and where the backward clamps u: the forward within 8 + 4|u|
 * float epsilons relative (1e-30 absolute near its vanishing tail; on the negative tail the
 * value is about x·e^(2u), so u's own float rounding, a few epsilons of |u|, moves it by
 * 2|u| times that), the derivative (of order 1, and 0 near x = -0.75) within 16 epsilons of
 * (|derivative| + 1); NaN in, NaN out; GELU(+inf) = inf; at 0, 0 and 1/2. */
static void test_gelu_tails(void)
{
    enum { n = 6001 };
    static float x[n], y[n], dx[n], ones[n];
    double worst_f = 0.0, worst_b = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = -30.0f + 0.01f * (float)i;
        dx[i] = 0.0f;
        ones[i] = 1.0f;
    }
    kcpu_gelu_forward(y, x, n);
    kcpu_gelu_backward(dx, x, ones, n);
    for (int i = 0; i < n; i++) {
        double rf = gelu_ref_sig(x[i]), rb = gelu_grad_ref(x[i]);
        double u = sqrt(2 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i]);
        double ef = fabs(y[i] - rf) / (fabs(rf) * FLT_EPSILON + 1e-30) / (8.0 + 4.0 * fabs(u));
        double eb = fabs(dx[i] - rb) / ((fabs(rb) + 1.0) * FLT_EPSILON);
        worst_f = fmax(worst_f, ef);
        worst_b = fmax(worst_b, eb);
    }
    printf("  gelu over [-30, 30]: forward %.2f of its bound, backward %.1f epsilons\n", worst_f,
           worst_b);
    CHECK_MSG(worst_f <= 1.0, "gelu forward %.2f of its bound (8 + 4|u| float epsilons)",
              worst_f);
    CHECK_MSG(worst_b <= 16.0, "gelu backward %.1f float epsilons from the double reference",
              worst_b);
    float special[3] = {NAN, INFINITY, 0.0f}, ys[3], ds[3] = {0, 0, 0}, one3[3] = {1, 1, 1};
    kcpu_gelu_forward(ys, special, 3);
    kcpu_gelu_backward(ds, special, one3, 3);
    CHECK(isnan(ys[0]) && isnan(ds[0]));
    CHECK(ys[1] == INFINITY);
    CHECK(ys[2] == 0.0f && ds[2] == 0.5f);
}

static void test_activations(void)
{
    int n = 101;
    float *x = kc_floats(n, -5, 5), *y = kc_zeros(n), *dout = kc_floats(n, -1, 1);
    double *xd = kc_to_double(x, n), *ref = malloc(sizeof(double) * n), *g = malloc(8 * n);
    kcpu_gelu_forward(y, x, n);
    for (int i = 0; i < n; i++)
        ref[i] = gelu_ref(xd[i]);
    KC_CLOSE("gelu fwd", y, ref, n, 1e-6, 1e-5);
    float *pre = kc_floats(n, -1, 1), *dx = kc_copyf(pre, n);
    kcpu_gelu_backward(dx, x, dout, n);
    struct act_ctx gctx = {n, 0, dout};
    kc_fd_grad(act_loss, &gctx, xd, n, FD_H, g);
    KC_CLOSE_DELTA("gelu bwd vs FD", dx, pre, g, n, BWD_ATOL, BWD_RTOL);
    free(x), free(y), free(dout), free(xd), free(ref), free(g), free(pre), free(dx);
    test_gelu_tails();
    test_vexp();

    int N = 4, H = 9;
    size_t ngu = (size_t)N * 2 * H, no = (size_t)N * H;
    float *gu = kc_floats(ngu, -4, 4), *out = kc_zeros(no), *dy = kc_floats(no, -1, 1);
    double *gud = kc_to_double(gu, ngu), *r2 = malloc(sizeof(double) * no);
    double *g2 = malloc(sizeof(double) * ngu);
    kcpu_swiglu_forward(out, gu, N, H);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < H; j++)
            r2[r * H + j] = silu_ref(gud[r * 2 * H + j]) * gud[r * 2 * H + H + j];
    KC_CLOSE("swiglu fwd", out, r2, no, 1e-6, 1e-5);
    float *pre2 = kc_floats(ngu, -1, 1), *dgu = kc_copyf(pre2, ngu);
    kcpu_swiglu_backward(dgu, dy, gu, N, H);
    struct act_ctx sctx = {N, H, dy};
    kc_fd_grad(act_loss, &sctx, gud, ngu, FD_H, g2);
    KC_CLOSE_DELTA("swiglu bwd (gate and up) vs FD", dgu, pre2, g2, ngu, BWD_ATOL, BWD_RTOL);
    free(gu), free(out), free(dy), free(gud), free(r2), free(g2), free(pre2), free(dgu);
}

/* ---------------------------------------------------------------- RoPE */

static void test_rope(void)
{
    int B = 2, T = 6, NH = 4, NKV = 2, HS = 8, maxT = 16, off = 5;
    int R = (NH + 2 * NKV) * HS, half = HS / 2;
    double theta = 10000.0;
    float *cs = kc_zeros((size_t)maxT * half), *sn = kc_zeros((size_t)maxT * half);
    kcpu_rope_tables(cs, sn, maxT, HS, theta);
    double *rc = malloc(sizeof(double) * maxT * half), *rs = malloc(sizeof(double) * maxT * half);
    for (int p = 0; p < maxT; p++)
        for (int i = 0; i < half; i++) {
            double ang = p / pow(theta, 2.0 * i / HS);
            rc[p * half + i] = cos(ang);
            rs[p * half + i] = sin(ang);
        }
    KC_CLOSE("rope cos table", cs, rc, (size_t)maxT * half, 1e-7, 0);
    KC_CLOSE("rope sin table", sn, rs, (size_t)maxT * half, 1e-7, 0);

    size_t n = (size_t)B * T * R;
    float *x = kc_floats(n, -1, 1), *y = kc_copyf(x, n);
    double *ref = malloc(sizeof(double) * n);
    kcpu_rope_forward(y, cs, sn, B, T, R, NH + NKV, HS, maxT, off);
    /* Naive: rotate_half as HF, x·cos + rotate_half(x)·sin with cos/sin repeated twice. */
    for (int i = 0; i < B * T; i++) {
        int p = off + i % T;
        for (int k = 0; k < R; k++) {
            int h = k / HS, d = k % HS;
            double v = x[(size_t)i * R + k];
            if (h < NH + NKV) {
                int j = d % half;
                double rot = d < half ? -(double)x[(size_t)i * R + h * HS + d + half]
                                      : (double)x[(size_t)i * R + h * HS + d - half];
                v = v * rc[p * half + j] + rot * rs[p * half + j];
            }
            ref[(size_t)i * R + k] = v;
        }
    }
    KC_CLOSE("rope fwd (q,k rotated, v untouched)", y, ref, n, 1e-6, 1e-6);

    /* The map is linear, so its gradient w.r.t. x applied to g is Rᵀg: check
     * <rope(x), g> = <x, rope_bwd(g)> for random x, g (adjointness), and bwd∘fwd = identity. */
    float *gr = kc_floats(n, -1, 1), *gb = kc_copyf(gr, n);
    kcpu_rope_backward(gb, cs, sn, B, T, R, NH + NKV, HS, maxT, off);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < n; i++) {
        lhs += (double)y[i] * gr[i];
        rhs += (double)x[i] * gb[i];
    }
    printf("  rope adjoint: <R x, g> - <x, R^T g> = %.3g\n", lhs - rhs);
    CHECK_NEAR(lhs, rhs, 1e-4);
    float *z = kc_copyf(y, n);
    kcpu_rope_backward(z, cs, sn, B, T, R, NH + NKV, HS, maxT, off);
    double *xd = kc_to_double(x, n);
    KC_CLOSE("rope bwd(fwd(x)) == x", z, xd, n, 1e-6, 0);

    /* Decode consistency: the last 2 tokens rotated alone with pos_offset = T-2 equal the
     * same rows of the full-sequence rotation. */
    float *full = kc_copyf(x, n);
    kcpu_rope_forward(full, cs, sn, 1, T, R, NH + NKV, HS, maxT, 0);
    float *tail = kc_copyf(x + (size_t)(T - 2) * R, (size_t)2 * R);
    kcpu_rope_forward(tail, cs, sn, 1, 2, R, NH + NKV, HS, maxT, T - 2);
    CHECK(memcmp(tail, full + (size_t)(T - 2) * R, (size_t)2 * R * sizeof(float)) == 0);
    free(cs), free(sn), free(rc), free(rs), free(x), free(y), free(ref), free(gr), free(gb);
    free(z), free(xd), free(full), free(tail);
}

/* ---------------------------------------------------------------- softmax + cross-entropy */

struct ce_ctx {
    int N, V, Vp;
    const int *tgt;
    double scale;
};

static double ce_loss(const void *vctx, const double *th)
{
    const struct ce_ctx *x = vctx;
    double total = 0;
    int valid = 0;
    for (int n = 0; n < x->N; n++) {
        if (x->tgt[n] < 0)
            continue;
        const double *r = th + n * x->Vp;
        double mx = r[0], s = 0;
        for (int i = 1; i < x->V; i++)
            mx = r[i] > mx ? r[i] : mx;
        for (int i = 0; i < x->V; i++)
            s += exp(r[i] - mx);
        total += mx + log(s) - r[x->tgt[n]];
        valid++;
    }
    return valid ? x->scale * total / valid : 0;
}

static void test_softmax_ce(void)
{
    int N = 6, V = 11, Vp = 13;
    int tgt[6] = {3, -1, 0, 10, 3, 7};
    size_t nl = (size_t)N * Vp;
    float *logits = kc_floats(nl, -3, 3), *losses = kc_zeros(N);
    double *ld = kc_to_double(logits, nl);
    float *work = kc_copyf(logits, nl);
    int nv = -1;
    float loss = kcpu_softmax_ce(work, losses, &nv, tgt, N, V, Vp, false, 1.0f);
    CHECK(memcmp(work, logits, nl * sizeof(float)) == 0); /* no grad: logits untouched */
    struct ce_ctx ctx = {N, V, Vp, tgt, 1.0};
    double ref = ce_loss(&ctx, ld);
    printf("  softmax-ce loss %.9g, reference %.9g\n", loss, ref);
    CHECK_NEAR(loss, ref, 1e-5);
    CHECK_INT(nv, 5);
    CHECK(losses[1] == 0.0f);
    double sum_rows = 0;
    for (int n = 0; n < N; n++)
        sum_rows += losses[n];
    CHECK_NEAR(sum_rows / 5, ref, 1e-5);

    float gscale = 0.25f; /* e.g. 1/grad_accum */
    float loss2 = kcpu_softmax_ce(work, NULL, NULL, tgt, N, V, Vp, true, gscale);
    CHECK_NEAR(loss2, ref, 1e-5);
    ctx.scale = gscale;
    double *g = malloc(sizeof(double) * nl);
    kc_fd_grad(ce_loss, &ctx, ld, nl, FD_H, g); /* padded columns: FD 0 */
    KC_CLOSE("softmax-ce dlogits (in place) vs FD", work, g, nl, 1e-6, 1e-4);
    int pad_zero = 1;
    for (int n = 0; n < N; n++)
        for (int i = V; i < Vp; i++)
            pad_zero &= work[n * Vp + i] == 0.0f;
    CHECK(pad_zero);

    /* Large logits: no overflow; all ignored: loss 0 and zero gradient. */
    float big[4] = {1000.0f, 990.0f, -1000.0f, 0.0f};
    int t1 = 1;
    float lb = kcpu_softmax_ce(big, NULL, NULL, &t1, 1, 4, 4, true, 1.0f);
    CHECK_NEAR(lb, 10.0000453989, 1e-4);
    CHECK(isfinite(big[0]) && isfinite(big[2]));
    int none[2] = {-1, -1};
    float z[6] = {1, 2, 3, 4, 5, 6};
    CHECK(kcpu_softmax_ce(z, NULL, &nv, none, 2, 3, 3, true, 1.0f) == 0.0f);
    CHECK_INT(nv, 0);
    CHECK(z[0] == 0.0f && z[5] == 0.0f);
    free(logits), free(losses), free(ld), free(work), free(g);
}

/* ---------------------------------------------------------------- bf16 */

static uint16_t bf16_ref(float f)
{
    /* The two bf16 neighbours by truncation, the nearer one in double; ties to even. */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t lo = u & 0xFFFF0000u, hi = lo + 0x10000u;
    float flo, fhi;
    memcpy(&flo, &lo, 4);
    memcpy(&fhi, &hi, 4);
    /* Rounding up from the largest finite bf16 gives infinity; IEEE decides as if the exponent
     * were unbounded, so weigh that neighbour as ±2^128. */
    double dfhi = (hi & 0x7F800000u) == 0x7F800000u ? copysign(0x1p128, f) : (double)fhi;
    double dlo = fabs((double)f - flo), dhi = fabs(dfhi - f);
    if (dlo < dhi)
        return (uint16_t)(lo >> 16);
    if (dhi < dlo)
        return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

static float f_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16(void)
{
    /* Exact round trip of every finite bf16 value. */
    int n = 65536, bad = 0;
    uint16_t *b = malloc(sizeof(uint16_t) * n), *b2 = malloc(sizeof(uint16_t) * n);
    float *f = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++)
        b[i] = (uint16_t)i;
    kcpu_bf16_to_f32(f, b, n);
    kcpu_f32_to_bf16(b2, f, n);
    for (int i = 0; i < n; i++) {
        bool is_nan = (i & 0x7F80) == 0x7F80 && (i & 0x7F);
        if (is_nan)
            bad += !(isnan(f[i]) && (b2[i] & 0x7F80) == 0x7F80 && (b2[i] & 0x7F));
        else
            bad += b2[i] != b[i] || f[i] != f_of((uint32_t)i << 16);
    }
    CHECK_INT(bad, 0);

    /* Ties: 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7: goes to 1. 1 + 3·2^-8 lies
     * halfway between 1 + 2^-7 (odd) and 1 + 2^-6: goes up. Just above/below a tie. */
    float ties[6] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f),
                     f_of(0x3F808001u), f_of(0x3F807FFFu), f_of(0x7F7FFFFFu)};
    uint16_t want[6] = {0x3F80, 0x3F82, 0xBF80, 0x3F81, 0x3F80, 0x7F80 /* FLT_MAX -> inf */};
    uint16_t got[6];
    kcpu_f32_to_bf16(got, ties, 6);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(got[i] == want[i], "tie case %d: 0x%04x, expected 0x%04x", i, got[i], want[i]);
    float spec[4] = {INFINITY, -0.0f, NAN, f_of(0x7F800001u) /* NaN with low bits only */};
    kcpu_f32_to_bf16(got, spec, 4);
    CHECK(got[0] == 0x7F80 && got[1] == 0x8000);
    CHECK((got[2] & 0x7F80) == 0x7F80 && (got[2] & 0x7F) != 0);
    CHECK((got[3] & 0x7F80) == 0x7F80 && (got[3] & 0x7F) != 0);

    /* Random finite floats against the reference rounding. */
    int m = 200000;
    float *r = malloc(sizeof(float) * m);
    uint16_t *rb = malloc(sizeof(uint16_t) * m);
    for (int i = 0; i < m; i++) {
        uint32_t u = kc_u32();
        if ((u & 0x7F800000u) == 0x7F800000u)
            u &= 0xBFFFFFFFu; /* keep it finite */
        if (i % 4 == 0)
            u = (u & 0xFFFF0000u) | 0x8000u; /* exact ties */
        r[i] = f_of(u);
    }
    kcpu_f32_to_bf16(rb, r, m);
    int wrong = 0;
    for (int i = 0; i < m; i++) {
        uint32_t bits;
        memcpy(&bits, &r[i], 4);
        if (rb[i] != bf16_ref(r[i]) && wrong++ < 3)
            printf("  bf16 mismatch: 0x%08x -> 0x%04x, reference 0x%04x\n", (unsigned)bits,
                   rb[i], bf16_ref(r[i]));
    }
    printf("  bf16 RNE: %d of %d random values differ from the reference\n", wrong, m);
    CHECK_INT(wrong, 0);
    free(b), free(b2), free(f), free(r), free(rb);

    /* The feature check agrees with the kernel's own report in /proc/cpuinfo. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (fp) {
        char line[8192];
        bool listed = false;
        while (fgets(line, sizeof line, fp))
            if (strncmp(line, "flags", 5) == 0) {
                listed = strstr(line, " avx512_bf16") != NULL;
                break;
            }
        fclose(fp);
        printf("  native bf16: %s (cpuinfo lists avx512_bf16: %s)\n",
               kcpu_has_native_bf16() ? "yes" : "no (emulated)", listed ? "yes" : "no");
        CHECK(kcpu_has_native_bf16() == listed);
    }
#endif
}

int main(void)
{
    kc_seed(12345);
    RUN(test_matmul);
    RUN(test_int8);
    RUN(test_embedding);
    RUN(test_norms);
    RUN(test_activations);
    RUN(test_rope);
    RUN(test_softmax_ce);
    RUN(test_bf16);
    return harness_finish("test_kernels_cpu");
}
