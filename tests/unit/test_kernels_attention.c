/* Tests of the causal self-attention kernels in kernels/cpu: the materialised and the streaming
 * (flash-style) forms against a naive double reference (outputs, probabilities, logsumexp),
 * both backwards against central finite differences of that reference, flash against
 * materialised within 1e-5 at sizes spanning several key/query blocks, the flash backward's
 * independence from the thread count, and KV-cache decode against the full forward's last
 * positions. GQA (NKV < NH), MQA (NKV = 1) and plain multi-head (NKV = NH) are all covered. */
#include "kernels_check.h"

#include <omp.h>

#include "kernels/cpu/kernels_cpu.h"

struct att_cfg {
    int B, T, NH, NKV, HS;
};

static size_t qkv_len(struct att_cfg c)
{
    return (size_t)c.B * c.T * (c.NH + 2 * c.NKV) * c.HS;
}

static size_t out_len(struct att_cfg c)
{
    return (size_t)c.B * c.T * c.NH * c.HS;
}

/* Naive causal attention in double, straight from the definition. att and lse may be NULL. */
static void attn_ref(struct att_cfg c, const double *qkv, double *out, double *att, double *lse)
{
    int R = (c.NH + 2 * c.NKV) * c.HS, rep = c.NH / c.NKV;
    double *s = malloc(sizeof(double) * c.T);
    for (int b = 0; b < c.B; b++)
        for (int h = 0; h < c.NH; h++)
            for (int t = 0; t < c.T; t++) {
                int g = h / rep;
                const double *q = qkv + ((size_t)b * c.T + t) * R + h * c.HS;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * c.T + j) * R + (c.NH + g) * c.HS;
                    double d = 0;
                    for (int i = 0; i < c.HS; i++)
                        d += q[i] * k[i];
                    s[j] = d / sqrt((double)c.HS);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j <= t; j++)
                    sum += exp(s[j] - mx);
                if (lse)
                    lse[((size_t)b * c.NH + h) * c.T + t] = mx + log(sum);
                double *o = out + ((size_t)b * c.T + t) * c.NH * c.HS + h * c.HS;
                for (int i = 0; i < c.HS; i++)
                    o[i] = 0;
                for (int j = 0; j < c.T; j++) {
                    double p = j <= t ? exp(s[j] - mx) / sum : 0;
                    if (att)
                        att[(((size_t)b * c.NH + h) * c.T + t) * c.T + j] = p;
                    if (j > t)
                        continue;
                    const double *v =
                        qkv + ((size_t)b * c.T + j) * R + (c.NH + c.NKV + g) * c.HS;
                    for (int i = 0; i < c.HS; i++)
                        o[i] += p * v[i];
                }
            }
    free(s);
}

struct att_ctx {
    struct att_cfg c;
    const float *dout;
};

static double attn_loss(const void *vctx, const double *qkv)
{
    const struct att_ctx *x = vctx;
    size_t no = out_len(x->c);
    double *out = malloc(sizeof(double) * no);
    attn_ref(x->c, qkv, out, NULL, NULL);
    double l = kc_dot(out, x->dout, no);
    free(out);
    return l;
}

/* Both forms against the reference; both backwards against finite differences. */
static void check_small(struct att_cfg c)
{
    size_t nq = qkv_len(c), no = out_len(c), na = (size_t)c.B * c.NH * c.T * c.T;
    size_t nl = (size_t)c.B * c.NH * c.T;
    float *qkv = kc_floats(nq, -1.5, 1.5), *dout = kc_floats(no, -1, 1);
    float *out = kc_zeros(no), *att = kc_zeros(na), *fout = kc_zeros(no), *lse = kc_zeros(nl);
    double *qd = kc_to_double(qkv, nq), *ro = malloc(sizeof(double) * no);
    double *ra = malloc(sizeof(double) * na), *rl = malloc(sizeof(double) * nl);
    char what[128];
    attn_ref(c, qd, ro, ra, rl);

    kcpu_attention_forward(out, att, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    snprintf(what, sizeof what, "materialised out B%d T%d NH%d NKV%d HS%d", c.B, c.T, c.NH,
             c.NKV, c.HS);
    KC_CLOSE(what, out, ro, no, 1e-6, 1e-5);
    KC_CLOSE("materialised probabilities (incl. zeros)", att, ra, na, 1e-6, 1e-5);
    kcpu_flash_attention_forward(fout, lse, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    KC_CLOSE("flash out", fout, ro, no, 1e-6, 1e-5);
    KC_CLOSE("flash logsumexp", lse, rl, nl, 1e-6, 1e-5);
    /* Without lse (a prefill): the same output, bit for bit. */
    float *nout = kc_zeros(no);
    kcpu_flash_attention_forward(nout, NULL, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    CHECK(memcmp(nout, fout, no * sizeof(float)) == 0);
    free(nout);

    double *g = malloc(sizeof(double) * nq);
    struct att_ctx ctx = {c, dout};
    kc_fd_grad(attn_loss, &ctx, qd, nq, 1e-5, g);
    float *pre = kc_floats(nq, -1, 1), *dq = kc_copyf(pre, nq);
    void *scratch = malloc(kcpu_attention_backward_scratch_bytes(c.B, c.T, c.NH));
    kcpu_attention_backward(dq, dout, qkv, att, scratch, c.B, c.T, c.NH, c.NKV, c.HS);
    KC_CLOSE_DELTA("materialised dqkv vs FD", dq, pre, g, nq, 5e-5, 1e-4);
    float *df = kc_copyf(pre, nq);
    kcpu_flash_attention_backward(df, dout, qkv, fout, lse, c.B, c.T, c.NH, c.NKV, c.HS);
    KC_CLOSE_DELTA("flash dqkv vs FD", df, pre, g, nq, 5e-5, 1e-4);
    free(qkv), free(dout), free(out), free(att), free(fout), free(lse), free(qd), free(ro);
    free(ra), free(rl), free(g), free(pre), free(dq), free(scratch), free(df);
}

static void test_small(void)
{
    check_small((struct att_cfg){2, 5, 4, 2, 4}); /* GQA */
    check_small((struct att_cfg){1, 6, 3, 3, 5}); /* multi-head */
    check_small((struct att_cfg){2, 4, 4, 1, 6}); /* multi-query */
    check_small((struct att_cfg){1, 1, 2, 1, 3}); /* one token */
}

/* Flash backward against FD where the sequence spans two key blocks and five query blocks. */
static void test_flash_fd_blocks(void)
{
    struct att_cfg c = {1, 70, 2, 1, 4};
    size_t nq = qkv_len(c), no = out_len(c);
    float *qkv = kc_floats(nq, -1.5, 1.5), *dout = kc_floats(no, -1, 1), *out = kc_zeros(no);
    float *lse = kc_zeros((size_t)c.B * c.NH * c.T), *dq = kc_zeros(nq);
    double *qd = kc_to_double(qkv, nq), *ro = malloc(sizeof(double) * no);
    double *g = malloc(sizeof(double) * nq);
    kcpu_flash_attention_forward(out, lse, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    attn_ref(c, qd, ro, NULL, NULL);
    KC_CLOSE("flash out T=70 (2 key blocks)", out, ro, no, 1e-6, 1e-5);
    kcpu_flash_attention_backward(dq, dout, qkv, out, lse, c.B, c.T, c.NH, c.NKV, c.HS);
    struct att_ctx ctx = {c, dout};
    kc_fd_grad(attn_loss, &ctx, qd, nq, 1e-5, g);
    KC_CLOSE("flash dqkv T=70 vs FD", dq, g, nq, 5e-5, 1e-4);
    free(qkv), free(dout), free(out), free(lse), free(dq), free(qd), free(ro), free(g);
}

/* Flash and materialised agree within 1e-5 (forward and backward), at sizes with several
 * blocks and a partial last block; the flash backward is bitwise the same on 1 and 3 threads. */
static void check_flash_vs_materialised(struct att_cfg c)
{
    size_t nq = qkv_len(c), no = out_len(c), nl = (size_t)c.B * c.NH * c.T;
    float *qkv = kc_floats(nq, -2, 2), *dout = kc_floats(no, -1, 1);
    float *mo = kc_zeros(no), *fo = kc_zeros(no), *lse = kc_zeros(nl);
    float *att = kc_zeros((size_t)c.B * c.NH * c.T * c.T);
    void *scratch = malloc(kcpu_attention_backward_scratch_bytes(c.B, c.T, c.NH));
    float *dm = kc_zeros(nq), *dfl = kc_zeros(nq);
    char what[128];
    kcpu_attention_forward(mo, att, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    kcpu_flash_attention_forward(fo, lse, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    double *md = kc_to_double(mo, no);
    snprintf(what, sizeof what, "flash vs materialised out T%d NH%d NKV%d HS%d", c.T, c.NH,
             c.NKV, c.HS);
    KC_CLOSE(what, fo, md, no, 1e-5, 0);
    double *qd = kc_to_double(qkv, nq), *ro = malloc(sizeof(double) * no);
    attn_ref(c, qd, ro, NULL, NULL);
    KC_CLOSE("flash out vs naive double", fo, ro, no, 1e-5, 0);

    kcpu_attention_backward(dm, dout, qkv, att, scratch, c.B, c.T, c.NH, c.NKV, c.HS);
    kcpu_flash_attention_backward(dfl, dout, qkv, fo, lse, c.B, c.T, c.NH, c.NKV, c.HS);
    double *dmd = kc_to_double(dm, nq);
    KC_CLOSE("flash vs materialised dqkv", dfl, dmd, nq, 1e-5, 0);

    int keep = omp_get_max_threads();
    float *d1 = kc_zeros(nq), *d3 = kc_zeros(nq);
    omp_set_num_threads(1);
    kcpu_flash_attention_backward(d1, dout, qkv, fo, lse, c.B, c.T, c.NH, c.NKV, c.HS);
    omp_set_num_threads(3);
    kcpu_flash_attention_backward(d3, dout, qkv, fo, lse, c.B, c.T, c.NH, c.NKV, c.HS);
    omp_set_num_threads(keep);
    CHECK_MSG(memcmp(d1, d3, nq * sizeof(float)) == 0, "flash backward depends on threads");
    free(qkv), free(dout), free(mo), free(fo), free(lse), free(att), free(scratch), free(dm);
    free(dfl), free(md), free(qd), free(ro), free(dmd), free(d1), free(d3);
}

static void test_flash_vs_materialised(void)
{
    check_flash_vs_materialised((struct att_cfg){2, 77, 4, 2, 16});
    check_flash_vs_materialised((struct att_cfg){1, 130, 2, 1, 8});
    check_flash_vs_materialised((struct att_cfg){1, 33, 2, 2, 64});
    /* Past one key block with the backward's second row block (T 150), and head sizes that
     * leave a scalar tail after the 64-wide register blocks (96: 64 + 32; 136: 128 + 8). */
    check_flash_vs_materialised((struct att_cfg){1, 150, 3, 1, 96});
    check_flash_vs_materialised((struct att_cfg){1, 70, 2, 2, 136});
}

/* Decode with a KV cache equals the full forward at the last positions. */
static void check_decode(struct att_cfg c, int T_new)
{
    int R = (c.NH + 2 * c.NKV) * c.HS, O = c.NH * c.HS, cache_T = c.T + 3;
    int pos = c.T - T_new;
    size_t nq = qkv_len(c), no = out_len(c), nc = (size_t)c.B * cache_T * c.NKV * c.HS;
    float *qkv = kc_floats(nq, -2, 2), *full = kc_zeros(no), *lse = kc_zeros(nq);
    kcpu_flash_attention_forward(full, lse, qkv, c.B, c.T, c.NH, c.NKV, c.HS);
    float *kc = kc_floats(nc, 50, 60), *vc = kc_floats(nc, 50, 60); /* junk beyond the end */
    /* Prefill the first pos tokens, then append the new ones, as generation does. */
    float *pre = malloc(sizeof(float) * c.B * pos * R + 1), *nw = malloc(sizeof(float) * c.B * T_new * R);
    for (int b = 0; b < c.B; b++) {
        memcpy(pre + (size_t)b * pos * R, qkv + (size_t)b * c.T * R, sizeof(float) * pos * R);
        memcpy(nw + (size_t)b * T_new * R, qkv + ((size_t)b * c.T + pos) * R,
               sizeof(float) * T_new * R);
    }
    kcpu_kv_cache_append(kc, vc, pre, c.B, pos, 0, c.NH, c.NKV, c.HS, cache_T);
    kcpu_kv_cache_append(kc, vc, nw, c.B, T_new, pos, c.NH, c.NKV, c.HS, cache_T);
    float *out = kc_zeros((size_t)c.B * T_new * O);
    kcpu_attention_decode(out, nw, kc, vc, c.B, T_new, pos, c.NH, c.NKV, c.HS, cache_T);
    double *want = malloc(sizeof(double) * c.B * T_new * O);
    for (int b = 0; b < c.B; b++)
        for (int i = 0; i < T_new * O; i++)
            want[(size_t)b * T_new * O + i] = full[((size_t)b * c.T + pos) * O + i];
    char what[128];
    snprintf(what, sizeof what, "decode %d new at pos %d (T=%d) vs full forward", T_new, pos,
             c.T);
    KC_CLOSE(what, out, want, (size_t)c.B * T_new * O, 1e-5, 0);
    free(qkv), free(full), free(lse), free(kc), free(vc), free(pre), free(nw), free(out);
    free(want);
}

static void test_decode(void)
{
    check_decode((struct att_cfg){2, 77, 4, 2, 16}, 1); /* two cache blocks */
    check_decode((struct att_cfg){2, 77, 4, 2, 16}, 3);
    check_decode((struct att_cfg){1, 9, 4, 1, 8}, 1);
    check_decode((struct att_cfg){1, 5, 2, 2, 4}, 5); /* empty cache: a prefill */
}

int main(void)
{
    kc_seed(777);
    RUN(test_small);
    RUN(test_flash_fd_blocks);
    RUN(test_flash_vs_materialised);
    RUN(test_decode);
    return harness_finish("test_kernels_attention");
}
