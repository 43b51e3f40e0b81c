/* Tests of the executor's transformer (executor/model.c) on the CPU backend, with a tiny GPT-2
 * (L=2, C=32, NH=4, V=97 padded to 128) and a tiny Llama (L=2, C=32, NH=4, NKV=2, SwiGLU,
 * RoPE, untied head): loss at init, gradients against central finite differences, recompute
 * and attention variants, gradient accumulation, LoRA, the KV cache, int8 and bf16 modes,
 * predicted against allocated bytes, and allocation failure. Tolerances are stated beside
 * each check and every comparison prints its maximum error. */
#include "kernels_check.h"

#include <sys/wait.h>
#include <unistd.h>

#include "advisor/advisor_int.h"
#include "executor/executor.h"

#define BATCH 2
#define SEQ 16

static struct model_desc tiny(enum model_arch arch)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-%s", model_arch_name(arch));
    d.arch = arch;
    d.n_layers = 2;
    d.hidden = 32;
    d.n_heads = 4;
    d.n_kv_heads = arch == MODEL_ARCH_LLAMA ? 2 : 4;
    d.head_dim = 8;
    d.ffn = arch == MODEL_ARCH_LLAMA ? 64 : 128;
    d.vocab = 97;
    d.max_pos = 32;
    model_fill_defaults(&d);
    return d;
}

static void opts_train(struct exec_model_opts *o)
{
    exec_model_opts_init(o);
    o->batch = BATCH;
    o->seq = SEQ;
}

static int tokens[BATCH * SEQ], targets[BATCH * SEQ];

static void make_batch(uint64_t seed)
{
    kc_seed(seed);
    for (int i = 0; i < BATCH * SEQ; i++) {
        tokens[i] = (int)(kc_u32() % 97);
        targets[i] = (int)(kc_u32() % 97);
    }
    targets[3] = -1; /* one ignored target */
}

/* Move every weight away from the tiny init so gradients are large and every path matters:
 * matrices ± 0.15, norm weights 1 ± 0.2, biases ± 0.1 (LoRA B too, when `lora_b`). */
static void perturb(struct exec_model *m, uint64_t seed, bool lora_b)
{
    kc_seed(seed);
    for (int i = 0; i < m->n_tensors; i++) {
        struct exec_tensor *t = &m->tensors[i];
        if (t->is_lora && !lora_b)
            continue;
        bool vec = t->ndim == 1;
        bool bias = strstr(t->name, ".bias") != NULL;
        for (size_t k = 0; k < t->numel; k++) {
            if (vec && !bias)
                t->data[k] = (float)(1.0 + kc_uniform(-0.2, 0.2));
            else
                t->data[k] += (float)kc_uniform(bias ? -0.1 : -0.15, bias ? 0.1 : 0.15);
        }
    }
    exec_model_weights_changed(m);
}

static int model_new(struct exec_model *m, const struct model_desc *d,
                     const struct exec_model_opts *o, uint64_t seed)
{
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_init(m, d, o, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc == 0)
        exec_model_init_weights(m, seed);
    return rc;
}

static double loss_of(struct exec_model *m, int B, int T)
{
    struct sw_err err;
    float loss = 0;
    exec_model_weights_changed(m);
    int rc = exec_model_forward(m, tokens, targets, B, T, &loss, &err);
    SW_ASSERT(rc == 0);
    return loss;
}

static void grads_of(struct exec_model *m, int B, int T)
{
    struct sw_err err;
    float loss;
    exec_model_zero_grad(m);
    CHECK_OK(exec_model_forward(m, tokens, targets, B, T, &loss, &err), &err);
    CHECK_OK(exec_model_backward(m, 1.0f, &err), &err);
}

/* Central difference with actual (rounded) steps, Richardson-extrapolated from h and h/2 so the
 * O(h²) truncation error cancels and a larger h keeps fp32 loss rounding small. */
static double fd_dir(struct exec_model *m, float *x, const float *dir, size_t n, double h)
{
    float *keep = kc_copyf(x, n);
    double est[2];
    for (int s = 0; s < 2; s++) {
        double hh = s == 0 ? h : h / 2;
        for (size_t i = 0; i < n; i++)
            x[i] = keep[i] + (float)(hh * dir[i]);
        double lp = loss_of(m, BATCH, SEQ);
        for (size_t i = 0; i < n; i++)
            x[i] = keep[i] - (float)(hh * dir[i]);
        double lm = loss_of(m, BATCH, SEQ);
        est[s] = (lp - lm) / (2 * hh);
    }
    memcpy(x, keep, n * sizeof(float));
    free(keep);
    return (4 * est[1] - est[0]) / 3;
}

/* For every trainable tensor (or only LoRA ones): the directional derivative along a random
 * ±1 direction (all elements at once: a large signal against fp32 rounding of the loss, step
 * DIR_H per element), and three single elements (step EL_H). Both Richardson-extrapolated.
 * Tolerances: directional |fd - g·d| <= 1e-2·|g|₂ + 2e-5 (|g|₂ is the expected size of g·d;
 * measured worst 2.6e-3); elements |fd - g| <= 3e-2·|g| + 1e-4 (measured worst 8.7e-3). The
 * model is fp32 and its loss is rounded to ~5e-7, which puts a floor of ~1e-5/h under any
 * difference quotient: float64-level agreement is not reachable; the recompute, attention and
 * accumulation tests below compare analytic gradients with each other at 1e-6..1e-5. */
#define DIR_H 1e-2
#define EL_H 6e-2
#define DIR_RTOL 1e-2
#define DIR_ATOL 2e-5
#define EL_RTOL 3e-2
#define EL_ATOL 1e-4
static void grad_check(struct exec_model *m, const char *label, bool lora_only)
{
    grads_of(m, BATCH, SEQ);
    double worst_dir = 0, worst_el = 0;
    int n_checked = 0;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        struct exec_tensor *t = &m->tensors[ti];
        if (!t->trainable || (lora_only && !t->is_lora))
            continue;
        float *g = kc_copyf(t->grad, t->numel);
        float *dir = malloc(t->numel * sizeof(float));
        double gd = 0, g2 = 0;
        for (size_t k = 0; k < t->numel; k++) {
            dir[k] = kc_u32() & 1 ? 1.0f : -1.0f;
            gd += (double)g[k] * dir[k];
            g2 += (double)g[k] * g[k];
        }
        g2 = sqrt(g2); /* the expected size of g·d for a random ±1 direction */
        double fd = fd_dir(m, t->data, dir, t->numel, DIR_H);
        double e = fabs(fd - gd);
        double tol = DIR_RTOL * g2 + DIR_ATOL;
        CHECK_MSG(e <= tol, "%s %s: directional fd %.8g vs analytic %.8g (|g|2 %.3g)", label,
                  t->name, fd, gd, g2);
        worst_dir = fmax(worst_dir, e / (g2 + 1e-12));
        for (int s = 0; s < 3; s++) {
            size_t k = kc_u32() % t->numel;
            if (s == 0 && (strstr(t->name, "wte") || strstr(t->name, "embed_tokens")))
                k = (size_t)tokens[5] * (size_t)t->shape[1] + (kc_u32() % t->shape[1]);
            float one = 1.0f;
            double fde = fd_dir(m, t->data + k, &one, 1, EL_H);
            double ee = fabs(fde - g[k]);
            CHECK_MSG(ee <= EL_RTOL * fabs(g[k]) + EL_ATOL, "%s %s[%zu]: fd %.8g vs analytic %.8g",
                      label, t->name, k, fde, (double)g[k]);
            if (fabs(g[k]) > 1e-3)
                worst_el = fmax(worst_el, ee / fabs(g[k]));
        }
        n_checked++;
        free(g);
        free(dir);
    }
    CHECK(n_checked > 0);
    printf("  %-10s grad check: %d tensors, max rel err directional %.2e, element %.2e\n", label,
           n_checked, worst_dir, worst_el);
}

/* ---------------------------------------------------------------- tests */

static void test_loss_at_init(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        struct exec_model m;
        if (model_new(&m, &d, &o, 42) < 0)
            continue;
        make_batch(1);
        double loss = loss_of(&m, BATCH, SEQ);
        printf("  %-10s loss at init %.5f, ln(V) = %.5f\n", d.name, loss, log(97.0));
        CHECK_NEAR(loss, log(97.0), 0.05);
        exec_model_release(&m);
    }
}

static void test_names_and_counts(void)
{
    struct model_desc g = tiny(MODEL_ARCH_GPT2), l = tiny(MODEL_ARCH_LLAMA);
    struct exec_model_opts o;
    opts_train(&o);
    struct exec_model m;
    if (model_new(&m, &g, &o, 1) == 0) {
        struct model_counts c;
        model_count(&g, 128, &c);
        CHECK_INT(m.n_params, c.params_total);
        CHECK_INT(m.n_train, c.params_total);
        int i = exec_model_find_tensor(&m, "transformer.h.1.attn.c_attn.weight");
        CHECK(i >= 0);
        if (i >= 0) {
            CHECK(m.tensors[i].hf_transposed);
            CHECK_INT(m.tensors[i].shape[0], 96);
            CHECK_INT(m.tensors[i].shape[1], 32);
        }
        CHECK(exec_model_find_tensor(&m, "wte.weight") == 0);
        CHECK_INT(m.tensors[0].shape[0], 97);
        CHECK(exec_model_find_tensor(&m, "lm_head.weight") < 0);
        CHECK(exec_model_find_tensor(&m, "ln_f.bias") >= 0);
        exec_model_release(&m);
    }
    if (model_new(&m, &l, &o, 1) == 0) {
        struct model_counts c;
        model_count(&l, 128, &c);
        CHECK_INT(m.n_params, c.params_total);
        int k = exec_model_find_tensor(&m, "model.layers.0.self_attn.k_proj.weight");
        int q = exec_model_find_tensor(&m, "model.layers.0.self_attn.q_proj.weight");
        CHECK(k >= 0 && q >= 0);
        if (k >= 0 && q >= 0) {
            CHECK_INT(m.tensors[k].shape[0], 16); /* NKV·HS */
            CHECK(m.tensors[k].data == m.tensors[q].data + 32 * 32);
        }
        CHECK(exec_model_find_tensor(&m, "lm_head.weight") >= 0);
        CHECK(exec_model_find_tensor(&m, "model.layers.1.mlp.up_proj.weight") >= 0);
        size_t total = 0;
        for (int i = 0; i < m.n_tensors; i++)
            total += m.tensors[i].numel;
        /* Views cover every parameter except the padded vocabulary rows (embed + head). */
        CHECK_INT(total, m.n_params - 2 * (size_t)(128 - 97) * 32);
        exec_model_release(&m);
    }
}

static void test_grad_check(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        o.attention = a ? ATTN_NAIVE : ATTN_FLASH; /* one of each; variants compared below */
        struct exec_model m;
        if (model_new(&m, &d, &o, 7) < 0)
            continue;
        perturb(&m, 11, false);
        make_batch(2);
        grad_check(&m, d.name, false);
        exec_model_release(&m);
    }
}

static double max_abs(const float *x, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(x[i]));
    return mx;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx;
}

/* Gradients of the model built with `o` on the fixed batch, perturbed weights. */
static float *grads_with(const struct model_desc *d, const struct exec_model_opts *o, size_t *n,
                         float *loss_out)
{
    struct exec_model m;
    if (model_new(&m, d, o, 3) < 0)
        return NULL;
    perturb(&m, 5, false);
    grads_of(&m, BATCH, SEQ);
    if (loss_out)
        *loss_out = (float)loss_of(&m, BATCH, SEQ);
    float *g = kc_copyf(m.train_grads, m.n_train);
    *n = m.n_train;
    exec_model_release(&m);
    return g;
}

static void test_recompute_and_attention(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        float *ref[2] = {NULL, NULL};
        size_t n = 0;
        for (int at = 0; at < 2; at++) {
            for (int rc = 0; rc < 3; rc++) {
                struct exec_model_opts o;
                opts_train(&o);
                o.attention = at ? ATTN_NAIVE : ATTN_FLASH;
                o.recompute = rc == 0   ? RECOMPUTE_NONE
                              : rc == 1 ? RECOMPUTE_SELECTIVE
                                        : RECOMPUTE_FULL;
                float *g = grads_with(&d, &o, &n, NULL);
                if (!g)
                    continue;
                if (rc == 0) {
                    ref[at] = g;
                    continue;
                }
                /* Recomputed activations are the same computation: bit-identical. */
                double md = max_diff(g, ref[at], n);
                printf("  %-10s %s recompute %s vs none: max |diff| %.3g\n", d.name,
                       attention_name(o.attention), recompute_name(o.recompute), md);
                CHECK_MSG(memcmp(g, ref[at], n * sizeof(float)) == 0,
                          "%s %s: recompute %s gradients differ (max %.3g)", d.name,
                          attention_name(o.attention), recompute_name(o.recompute), md);
                free(g);
            }
        }
        if (ref[0] && ref[1]) {
            /* Flash vs naive: different summation orders; within 1e-5 of the largest grad. */
            double md = max_diff(ref[0], ref[1], n), mx = max_abs(ref[1], n);
            printf("  %-10s flash vs naive: max |diff| %.3g (max |g| %.3g)\n", d.name, md, mx);
            CHECK_MSG(md <= 1e-5 * mx, "flash vs naive %.3g > 1e-5 · %.3g", md, mx);
        }
        free(ref[0]);
        free(ref[1]);
    }
}

static void test_grad_accumulation(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        struct exec_model m;
        struct sw_err err;
        if (model_new(&m, &d, &o, 9) < 0)
            continue;
        perturb(&m, 13, false);
        make_batch(4);
        targets[3] = 5; /* equal valid counts per row, so mean(B=2) = (mean1 + mean2)/2 */
        grads_of(&m, BATCH, SEQ);
        float *one = kc_copyf(m.train_grads, m.n_train);
        exec_model_zero_grad(&m);
        int save_t[SEQ], save_y[SEQ];
        memcpy(save_t, tokens, sizeof(save_t));
        memcpy(save_y, targets, sizeof(save_y));
        float loss;
        for (int b = 0; b < BATCH; b++) {
            /* Row b moved to the front, run as B=1. */
            memcpy(tokens, (b ? tokens + SEQ : save_t), sizeof(save_t));
            memcpy(targets, (b ? targets + SEQ : save_y), sizeof(save_y));
            CHECK_OK(exec_model_forward(&m, tokens, targets, 1, SEQ, &loss, &err), &err);
            CHECK_OK(exec_model_backward(&m, 0.5f, &err), &err);
        }
        double md = max_diff(m.train_grads, one, m.n_train), mx = max_abs(one, m.n_train);
        printf("  %-10s 2 x B=1 vs B=2: max |diff| %.3g (max |g| %.3g)\n", d.name, md, mx);
        CHECK_MSG(md <= 1e-6 * mx, "accumulated grads differ by %.3g > 1e-6 · %.3g", md, mx);
        free(one);
        exec_model_release(&m);
    }
}

static void test_lora(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        struct exec_model base, m;
        if (model_new(&base, &d, &o, 21) < 0)
            continue;
        o.lora_rank = 4;
        o.lora_alpha = 8; /* scale 2, so a missing or doubled scale cannot pass */
        o.lora_targets = EXEC_LORA_ALL;
        if (model_new(&m, &d, &o, 21) < 0) {
            exec_model_release(&base);
            continue;
        }
        double adapters = model_lora_params_layer(&d, 4, 1) * d.n_layers;
        CHECK_INT(m.n_lora_params, (int64_t)adapters);
        CHECK_INT(m.n_train, m.n_lora_params);
        CHECK_INT(m.planned.bytes[BACKEND_MEM_GRADIENTS], (m.n_lora_params * 4 + 63) / 64 * 64);
        int n_lora = 0, base_with_grad = 0;
        for (int i = 0; i < m.n_tensors; i++) {
            n_lora += m.tensors[i].is_lora;
            base_with_grad += !m.tensors[i].is_lora && m.tensors[i].grad != NULL;
        }
        CHECK_INT(n_lora, a ? 2 * 7 * 2 : 2 * 4 * 2);
        CHECK_INT(base_with_grad, 0);
        /* B = 0: the adapted model is the base model exactly. */
        make_batch(6);
        struct sw_err err;
        float l0, l1;
        CHECK_OK(exec_model_forward(&base, tokens, targets, BATCH, SEQ, &l0, &err), &err);
        CHECK_OK(exec_model_forward(&m, tokens, targets, BATCH, SEQ, &l1, &err), &err);
        size_t nl = (size_t)BATCH * SEQ * m.Vp;
        double md = max_diff(exec_model_logits(&m), exec_model_logits(&base), nl);
        printf("  %-10s LoRA B=0 vs base: max |logit diff| %.3g\n", d.name, md);
        CHECK(md == 0.0);
        /* Adapter gradients against finite differences (B moved off zero). */
        perturb(&m, 23, true);
        grad_check(&m, a ? "llama-lora" : "gpt2-lora", true);
        exec_model_release(&m);
        exec_model_release(&base);
    }
}

static void test_kv_cache(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        o.training = false;
        o.kv_batch = BATCH;
        o.kv_seq = SEQ;
        struct exec_model m;
        struct sw_err err;
        if (model_new(&m, &d, &o, 31) < 0)
            continue;
        perturb(&m, 37, false);
        make_batch(8);
        CHECK_OK(exec_model_forward(&m, tokens, NULL, BATCH, SEQ, NULL, &err), &err);
        size_t nl = (size_t)BATCH * SEQ * m.Vp;
        float *full = kc_copyf(exec_model_logits(&m), nl);
        const int Tp = 5;
        int prompt[BATCH * 5], step[BATCH];
        for (int b = 0; b < BATCH; b++)
            memcpy(prompt + b * Tp, tokens + b * SEQ, Tp * sizeof(int));
        const float *lg = NULL;
        double worst = 0, mx = max_abs(full, nl);
        CHECK_OK(exec_model_prefill(&m, prompt, BATCH, Tp, &lg, &err), &err);
        for (int t = Tp - 1; t < SEQ && lg; t++) {
            for (int b = 0; b < BATCH; b++)
                worst = fmax(worst, max_diff(lg + (size_t)b * m.Vp,
                                             full + ((size_t)b * SEQ + t) * m.Vp, (size_t)m.V));
            if (t + 1 == SEQ)
                break;
            for (int b = 0; b < BATCH; b++)
                step[b] = tokens[b * SEQ + t + 1];
            if (exec_model_decode(&m, step, BATCH, &lg, &err) < 0) {
                CHECK_OK(-1, &err);
                break;
            }
        }
        printf("  %-10s KV prefill+decode vs full forward: max |diff| %.3g (max |logit| %.3g)\n",
               d.name, worst, mx);
        CHECK_MSG(worst <= 1e-5 * fmax(1.0, mx), "KV-cache logits differ by %.3g", worst);
        CHECK(m.kv_len == SEQ);
        CHECK(exec_model_decode(&m, step, BATCH, &lg, &err) == SW_ERANGE);
        free(full);
        exec_model_release(&m);
    }
}

/* int8 weight-only against fp32 logits, full forward and the cached path. Tolerance: 3% of
 * the largest |logit| (per-row int8 rounding is ≤ scale/2 per weight; measured ≈ 0.5-1%). */
static void test_int8(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        o.training = false;
        o.kv_batch = BATCH;
        o.kv_seq = SEQ;
        struct exec_model m32, m8;
        struct sw_err err;
        if (model_new(&m32, &d, &o, 41) < 0)
            continue;
        o.int8_weights = true;
        if (model_new(&m8, &d, &o, 41) < 0) {
            exec_model_release(&m32);
            continue;
        }
        perturb(&m32, 43, false);
        perturb(&m8, 43, false);
        make_batch(10);
        size_t nl = (size_t)BATCH * SEQ * m32.Vp;
        CHECK_OK(exec_model_forward(&m32, tokens, NULL, BATCH, SEQ, NULL, &err), &err);
        CHECK_OK(exec_model_forward(&m8, tokens, NULL, BATCH, SEQ, NULL, &err), &err);
        double md = max_diff(exec_model_logits(&m8), exec_model_logits(&m32), nl);
        double mx = max_abs(exec_model_logits(&m32), nl);
        const float *l32, *l8;
        CHECK_OK(exec_model_prefill(&m32, tokens, 1, SEQ, &l32, &err), &err);
        CHECK_OK(exec_model_prefill(&m8, tokens, 1, SEQ, &l8, &err), &err);
        double mdk = max_diff(l8, l32, (size_t)m32.V);
        printf("  %-10s int8 vs fp32 logits: max |diff| %.3g, cached %.3g (max |logit| %.3g)\n",
               d.name, md, mdk, mx);
        CHECK_MSG(md <= 0.03 * mx && md > 0, "int8 logits off by %.3g", md);
        CHECK(mdk <= 0.03 * mx);
        exec_model_release(&m8);
        exec_model_release(&m32);
    }
}

/* bf16 storage: weights rounded to bf16 in every matmul. Tolerances: loss within 1% and
 * gradients within 5% of the largest gradient (bf16 keeps 8 bits of mantissa: ~0.4%/weight). */
static void test_bf16(void)
{
    for (int a = 0; a < 2; a++) {
        struct model_desc d = tiny(a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        make_batch(12);
        size_t n32 = 0, n16 = 0;
        float l32 = 0, l16 = 0;
        float *g32 = grads_with(&d, &o, &n32, &l32);
        o.precision = PREC_BF16_MIXED;
        float *g16 = grads_with(&d, &o, &n16, &l16);
        if (g32 && g16 && n32 == n16) {
            double md = max_diff(g16, g32, n32), mx = max_abs(g32, n32);
            printf("  %-10s bf16 vs fp32: loss %.6f vs %.6f, grads max |diff| %.3g (max %.3g)\n",
                   d.name, l16, l32, md, mx);
            CHECK_REL(l16, l32, 0.01);
            CHECK_MSG(md <= 0.05 * mx && md > 0, "bf16 grads off by %.3g", md);
        }
        free(g32);
        free(g16);
    }
}

static void test_predicted_bytes(void)
{
    struct {
        enum model_arch arch;
        enum sw_precision prec;
        enum sw_recompute rc;
        enum sw_attention at;
        int lora;
        bool train, int8, kv;
    } cases[] = {
        {MODEL_ARCH_GPT2, PREC_FP32, RECOMPUTE_NONE, ATTN_FLASH, 0, true, false, false},
        {MODEL_ARCH_GPT2, PREC_BF16_MIXED, RECOMPUTE_FULL, ATTN_NAIVE, 0, true, false, false},
        {MODEL_ARCH_LLAMA, PREC_FP32, RECOMPUTE_SELECTIVE, ATTN_NAIVE, 4, true, false, false},
        {MODEL_ARCH_LLAMA, PREC_BF16_MIXED, RECOMPUTE_NONE, ATTN_FLASH, 0, true, false, false},
        {MODEL_ARCH_LLAMA, PREC_FP32, RECOMPUTE_NONE, ATTN_FLASH, 0, false, true, true},
        {MODEL_ARCH_GPT2, PREC_FP32, RECOMPUTE_NONE, ATTN_NAIVE, 2, false, false, true},
    };
    const struct backend *be = backend_cpu();
    uint64_t act[3] = {0, 0, 0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct model_desc d = tiny(cases[i].arch);
        struct exec_model_opts o;
        opts_train(&o);
        o.precision = cases[i].prec;
        o.recompute = cases[i].rc;
        o.attention = cases[i].at;
        o.lora_rank = cases[i].lora;
        o.training = cases[i].train;
        o.int8_weights = cases[i].int8;
        o.kv_batch = cases[i].kv ? 2 : 0;
        o.kv_seq = cases[i].kv ? 24 : 0;
        struct exec_mem plan;
        struct sw_err err;
        CHECK_OK(exec_model_plan_bytes(&d, &o, be, &plan, &err), &err);
        struct backend_mem_stats s0, s1, s2;
        be->mem_stats(&s0);
        struct exec_model m;
        if (exec_model_init(&m, &d, &o, be, &err) < 0) {
            CHECK_OK(-1, &err);
            continue;
        }
        be->mem_stats(&s1);
        for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
            uint64_t got = s1.current_bytes[c] - s0.current_bytes[c];
            CHECK_MSG(got == plan.bytes[c], "case %zu %s: measured %llu, planned %llu", i,
                      backend_mem_name((enum backend_mem)c), (unsigned long long)got,
                      (unsigned long long)plan.bytes[c]);
        }
        CHECK_INT(s1.current_total_bytes - s0.current_total_bytes, plan.total_bytes);
        CHECK(plan.bytes[BACKEND_MEM_GRADIENTS] == 0 || cases[i].train);
        CHECK((plan.bytes[BACKEND_MEM_KV_CACHE] > 0) == cases[i].kv);
        if (i == 0) {
            /* Hand count: fp32 weights are exactly 4 bytes per parameter (64-byte aligned). */
            CHECK_INT(plan.bytes[BACKEND_MEM_WEIGHTS], (m.n_params * 4 + 63) / 64 * 64);
            CHECK_INT(plan.bytes[BACKEND_MEM_GRADIENTS], (m.n_params * 4 + 63) / 64 * 64);
        }
        exec_model_release(&m);
        be->mem_stats(&s2);
        CHECK_INT(s2.current_total_bytes, s0.current_total_bytes);
    }
    /* Recompute shrinks activations: none > selective > full (GPT-2, naive attention). */
    for (int rc = 0; rc < 3; rc++) {
        struct model_desc d = tiny(MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        opts_train(&o);
        o.attention = ATTN_NAIVE;
        o.recompute = rc == 0 ? RECOMPUTE_NONE : rc == 1 ? RECOMPUTE_SELECTIVE : RECOMPUTE_FULL;
        struct exec_mem plan;
        struct sw_err err;
        CHECK_OK(exec_model_plan_bytes(&d, &o, be, &plan, &err), &err);
        act[rc] = plan.bytes[BACKEND_MEM_ACTIVATIONS];
    }
    printf("  activations none %llu, selective %llu, full %llu bytes\n", (unsigned long long)act[0],
           (unsigned long long)act[1], (unsigned long long)act[2]);
    CHECK(act[0] > act[1] && act[1] > act[2]);
}

static void test_bad_input(void)
{
    struct model_desc d = tiny(MODEL_ARCH_LLAMA);
    struct exec_model_opts o;
    opts_train(&o);
    struct sw_err err;
    struct exec_mem plan;
    o.seq = 33; /* > max_pos */
    CHECK(exec_model_plan_bytes(&d, &o, backend_cpu(), &plan, &err) == SW_EINVAL);
    opts_train(&o);
    o.precision = PREC_TF32; /* the executor's precisions: fp32, bf16-mixed, fp16-mixed */
    CHECK(exec_model_plan_bytes(&d, &o, backend_cpu(), &plan, &err) == SW_EUNSUPPORTED);
    opts_train(&o);
    o.int8_weights = true;
    CHECK(exec_model_plan_bytes(&d, &o, backend_cpu(), &plan, &err) == SW_EINVAL);
    opts_train(&o);
    struct exec_model m;
    if (model_new(&m, &d, &o, 1) == 0) {
        make_batch(3);
        tokens[4] = 97;
        CHECK(exec_model_forward(&m, tokens, targets, BATCH, SEQ, NULL, &err) == SW_EINVAL);
        CHECK(strstr(err.msg, "tokens[4]") != NULL);
        tokens[4] = 1;
        CHECK(exec_model_forward(&m, tokens, targets, BATCH + 1, SEQ, NULL, &err) == SW_EINVAL);
        CHECK(exec_model_backward(&m, 1.0f, &err) == SW_EINVAL); /* no forward yet */
        CHECK(exec_model_prefill(&m, tokens, 1, 4, &(const float *){NULL}, &err) == SW_EINVAL);
        exec_model_release(&m);
    }
    unsigned t;
    CHECK(exec_lora_targets_parse("qkv,mlp", &t, &err) == 0 &&
          t == (EXEC_LORA_Q | EXEC_LORA_K | EXEC_LORA_V | EXEC_LORA_MLP));
    CHECK(exec_lora_targets_parse("q,x", &t, &err) == SW_EINVAL);
}

/* SW_FAIL_ALLOC_AT=k fails the k-th fallible allocation of the process: run each case in a
 * fresh child (fork before this process made any fallible allocation). The child checks that
 * init fails with SW_ENOMEM naming the category and holds nothing; LeakSanitizer runs at the
 * child's exit. Family order of a training model: weights, gradients, activations,
 * workspace. */
static void test_alloc_failure(void)
{
    static const char *const names[] = {"weights", "gradients", "activations", "workspace"};
    for (int k = 1; k <= 4; k++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            char v[16];
            snprintf(v, sizeof(v), "%d", k);
            setenv("SW_FAIL_ALLOC_AT", v, 1);
            struct model_desc d = tiny(MODEL_ARCH_GPT2);
            struct exec_model_opts o;
            opts_train(&o);
            struct exec_model m;
            struct sw_err err;
            sw_err_init(&err);
            int rc = exec_model_init(&m, &d, &o, backend_cpu(), &err);
            struct backend_mem_stats s;
            backend_cpu()->mem_stats(&s);
            bool ok = rc == SW_ENOMEM && strstr(err.msg, names[k - 1]) != NULL &&
                      s.current_total_bytes == 0 && m.impl == NULL;
            if (!ok)
                fprintf(stderr, "alloc failure %d: rc %d, msg '%s', held %llu\n", k, rc, err.msg,
                        (unsigned long long)s.current_total_bytes);
            exec_model_release(&m);
            exit(ok ? 0 : 1);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "SW_FAIL_ALLOC_AT=%d: child status %d", k, status);
    }
}

int main(void)
{
    (void)kc_floats; /* shared helpers this file does not need */
    (void)kc_zeros;
    (void)kc_to_double;
    RUN(test_alloc_failure); /* first: the children need a process with no allocation yet */
    RUN(test_loss_at_init);
    RUN(test_names_and_counts);
    RUN(test_grad_check);
    RUN(test_recompute_and_attention);
    RUN(test_grad_accumulation);
    RUN(test_lora);
    RUN(test_kv_cache);
    RUN(test_int8);
    RUN(test_bf16);
    RUN(test_predicted_bytes);
    RUN(test_bad_input);
    return harness_finish("test_exec_model");
}
