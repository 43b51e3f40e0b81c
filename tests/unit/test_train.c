/* Tests of the training path (executor/optimizer.c, train.c, checkpoint.c, metrics.c, run.c)
 * on the CPU backend with a tiny GPT-2 (L=2, C=32, NH=4, VOCAB=97 padded to 128, SEQ=16) trained on a
 * synthetic shard whose next token is a fixed permutation of the current one (learnable in a
 * few steps): gradient accumulation against one big batch, recompute modes, bit-exact resume
 * through a checkpoint for three optimizers, refusals of other shapes, other plans and
 * corrupt files, LR schedule values, clipping, every optimizer lowering the loss, optimizer
 * bytes predicted = allocated, metrics and report files, the run refusals, and the PyTorch
 * comparison: HF-layout fixture weights (tests/data/reference/, written by
 * tests/reference/make_fixtures.py) loaded into the model, logits, loss and every parameter
 * gradient against PyTorch's. Tolerances are stated beside each check. */
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/executor.h"

#define VOCAB 97
#define SEQ 16
#define N_TOK 20000

static char g_dir[256];
static struct shard g_train, g_val;

static struct model_desc tiny(void)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-gpt2");
    d.arch = MODEL_ARCH_GPT2;
    d.n_layers = 2;
    d.hidden = 32;
    d.n_heads = 4;
    d.n_kv_heads = 4;
    d.head_dim = 8;
    d.ffn = 128;
    d.vocab = VOCAB;
    d.max_pos = 32;
    d.norm_eps = 1e-5;
    model_fill_defaults(&d);
    return d;
}

/* The synthetic corpus: t[i+1] = perm[t[i]] with one random token in 16 (noise). */
static void make_shards(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/sw_test_train_%d", (int)getpid());
    mkdir(g_dir, 0777);
    uint32_t perm[VOCAB];
    for (int i = 0; i < VOCAB; i++)
        perm[i] = (uint32_t)((i * 37 + 11) % VOCAB);
    uint32_t *ids = malloc(N_TOK * sizeof(uint32_t));
    uint64_t s = 12345;
    ids[0] = 0;
    for (int i = 1; i < N_TOK; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = ((s >> 33) % 16 == 0) ? (uint32_t)((s >> 40) % VOCAB) : perm[ids[i - 1]];
    }
    char p1[300], p2[300];
    snprintf(p1, sizeof(p1), "%s/train.bin", g_dir);
    snprintf(p2, sizeof(p2), "%s/val.bin", g_dir);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(shard_write(p1, ids, N_TOK - 2000, VOCAB, TOK_GPT2, &err),
             &err);
    CHECK_OK(shard_write(p2, ids + N_TOK - 2000, 2000, VOCAB, TOK_GPT2, &err), &err);
    free(ids);
    shard_init(&g_train);
    shard_init(&g_val);
    CHECK_OK(shard_load(p1, &g_train, &err), &err);
    CHECK_OK(shard_load(p2, &g_val, &err), &err);
}

/* A model, optimizer and trainer together. */
struct rig {
    struct exec_model m;
    struct exec_optimizer o;
    struct exec_trainer t;
};

static void train_cfg(struct exec_train_config *c, int mb, int accum)
{
    memset(c, 0, sizeof(*c));
    c->micro_batch = mb;
    c->grad_accum = accum;
    c->seq = SEQ;
    c->lr.schedule = LR_COSINE;
    c->lr.lr = 1e-2;
    c->lr.min_lr = 1e-3;
    c->lr.warmup_steps = 2;
    c->lr.total_steps = 20;
    c->grad_clip = 1.0;
    c->seed = 7;
    c->eval_batches = 2;
}

static int rig_init(struct rig *r, const struct exec_model_opts *mo,
                    const struct exec_optim_config *oc, const struct exec_train_config *tc,
                    uint64_t seed)
{
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc d = tiny();
    int rc = exec_model_init(&r->m, &d, mo, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return rc;
    exec_model_init_weights(&r->m, seed);
    rc = exec_optimizer_init(&r->o, &r->m, oc, &err);
    CHECK_OK(rc, &err);
    if (rc == 0) {
        rc = exec_trainer_init(&r->t, &r->m, &r->o, tc, &g_train, &g_val, &err);
        CHECK_OK(rc, &err);
    }
    return rc;
}

static void rig_release(struct rig *r)
{
    exec_trainer_release(&r->t);
    exec_optimizer_release(&r->o);
    exec_model_release(&r->m);
}

static void mopts(struct exec_model_opts *o, int batch)
{
    exec_model_opts_init(o);
    o->batch = batch;
    o->seq = SEQ;
}

static double step_loss(struct rig *r)
{
    struct sw_err err;
    struct exec_step_stats st;
    int rc = exec_trainer_step(&r->t, &st, &err);
    CHECK_OK(rc, &err);
    return rc == 0 ? st.loss : NAN;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double mx = 0, sc = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > mx || d != d)
            mx = d;
        if (fabs(a[i]) > sc)
            sc = fabs(a[i]);
    }
    if (scale)
        *scale = sc;
    return mx;
}

/* ---------------------------------------------------------------- accumulation */

static void test_grad_accumulation(void)
{
    /* One SGD step (lr 0.5, no decay, no clipping) on a batch of 8 sequences taken as 1 x 8
     * and as 4 micro-batches of 2: the weight changes must agree to 1e-5 relative to the
     * largest change (fp32 sums in another order differ by a few ulps). */
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    oc.kind = OPT_SGD;
    oc.weight_decay = 0;
    struct exec_train_config c1, c4;
    train_cfg(&c1, 8, 1);
    train_cfg(&c4, 2, 4);
    c1.grad_clip = c4.grad_clip = 0;
    c1.lr.schedule = c4.lr.schedule = LR_CONSTANT;
    c1.lr.warmup_steps = c4.lr.warmup_steps = 0;
    c1.lr.lr = c4.lr.lr = 0.5;
    struct exec_model_opts o8, o2;
    mopts(&o8, 8);
    mopts(&o2, 2);
    struct rig a, b;
    if (rig_init(&a, &o8, &oc, &c1, 3) < 0 || rig_init(&b, &o2, &oc, &c4, 3) < 0)
        return;
    size_t n = a.m.n_train;
    float *w0 = malloc(n * sizeof(float));
    memcpy(w0, a.m.train_params, n * sizeof(float));
    double la = step_loss(&a), lb = step_loss(&b);
    CHECK_REL(lb, la, 1e-6);
    for (size_t i = 0; i < n; i++) {
        a.m.train_params[i] -= w0[i];
        b.m.train_params[i] -= w0[i];
    }
    double scale;
    double d = max_abs_diff(a.m.train_params, b.m.train_params, n, &scale);
    printf("  accumulation 4x2 vs 1x8: loss %.7f vs %.7f, max |dw diff| %.3g (max |dw| %.3g)\n",
           lb, la, d, scale);
    CHECK(scale > 1e-4);
    CHECK_MSG(d <= 1e-5 * scale, "max diff %.3g > 1e-5 x %.3g", d, scale);
    free(w0);
    rig_release(&a);
    rig_release(&b);
}

/* ---------------------------------------------------------------- recompute */

static void test_recompute(void)
{
    /* The model promises bit-identical gradients in every recompute mode: after 3 AdamW steps
     * the weights must be bitwise equal. */
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct exec_train_config c;
    train_cfg(&c, 2, 2);
    struct rig r[3];
    enum sw_recompute modes[3] = {RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL};
    for (int k = 0; k < 3; k++) {
        struct exec_model_opts mo;
        mopts(&mo, 2);
        mo.recompute = modes[k];
        mo.attention = k == 1 ? ATTN_NAIVE : ATTN_FLASH;
        if (rig_init(&r[k], &mo, &oc, &c, 5) < 0)
            return;
        for (int s = 0; s < 3; s++)
            step_loss(&r[k]);
    }
    /* Selective with naive attention is compared with none+naive for bitwise equality. */
    struct exec_model_opts mo;
    mopts(&mo, 2);
    mo.attention = ATTN_NAIVE;
    struct rig nv;
    if (rig_init(&nv, &mo, &oc, &c, 5) < 0)
        return;
    for (int s = 0; s < 3; s++)
        step_loss(&nv);
    size_t bytes = r[0].m.n_train * sizeof(float);
    CHECK(memcmp(r[0].m.train_params, r[2].m.train_params, bytes) == 0);
    CHECK(memcmp(nv.m.train_params, r[1].m.train_params, bytes) == 0);
    for (int k = 0; k < 3; k++)
        rig_release(&r[k]);
    rig_release(&nv);
}

/* ---------------------------------------------------------------- resume */

static void resume_case(enum sw_optimizer kind)
{
    struct sw_err err;
    sw_err_init(&err);
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    oc.kind = kind;
    struct exec_train_config c;
    train_cfg(&c, 2, 2);
    c.lr.total_steps = 6;
    struct exec_model_opts mo;
    mopts(&mo, 2);
    struct rig a, b, f;
    if (rig_init(&a, &mo, &oc, &c, 9) < 0 || rig_init(&b, &mo, &oc, &c, 9) < 0 ||
        rig_init(&f, &mo, &oc, &c, 1234) < 0)
        return;
    double la[6], lb[6];
    for (int s = 0; s < 6; s++)
        la[s] = step_loss(&a);
    for (int s = 0; s < 3; s++)
        lb[s] = step_loss(&b);
    char path[300];
    snprintf(path, sizeof(path), "%s/resume_%s.safetensors", g_dir, optimizer_name(kind));
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    meta.step = b.t.step;
    meta.seed = c.seed;
    meta.data_offset = b.t.train.offset;
    snprintf(meta.plan_hash, sizeof(meta.plan_hash), "0123456789abcdef");
    snprintf(meta.numerics, sizeof(meta.numerics), "train.lr=0.01");
    CHECK_OK(exec_checkpoint_save(path, &b.m, &b.o, &meta, &err), &err);
    /* A fresh model (other init) and optimizer take the checkpoint and continue. */
    struct exec_ckpt_meta got;
    enum exec_ckpt_kind kind_got;
    CHECK_OK(exec_checkpoint_load(path, &f.m, &f.o, &meta, &got, &kind_got, &err), &err);
    CHECK_INT(kind_got, EXEC_CKPT_SCALEWISE);
    CHECK_INT(got.step, 3);
    CHECK_INT(f.o.step, 3);
    CHECK(got.data_offset == b.t.train.offset);
    f.t.step = got.step;
    for (int s = 3; s < 6; s++)
        lb[s] = step_loss(&f);
    int same = 1;
    for (int s = 0; s < 6; s++)
        same &= memcmp(&la[s], &lb[s], sizeof(double)) == 0;
    CHECK_MSG(same, "%s: losses differ after resume: %.9g vs %.9g at step 5",
              optimizer_name(kind), la[5], lb[5]);
    CHECK_MSG(memcmp(a.m.train_params, f.m.train_params, a.m.n_train * sizeof(float)) == 0,
              "%s: final weights differ after resume", optimizer_name(kind));
    CHECK(a.o.state_bytes == f.o.state_bytes &&
          memcmp(a.o.state, f.o.state, (size_t)a.o.state_bytes) == 0);
    printf("  resume %-10s 6 steps = 3 + checkpoint + 3: losses %.6f .. %.6f bitwise equal\n",
           optimizer_name(kind), la[0], la[5]);
    rig_release(&a);
    rig_release(&b);
    rig_release(&f);
}

static void test_resume(void)
{
    resume_case(OPT_ADAMW);
    resume_case(OPT_ADAMW8BIT);
    resume_case(OPT_ADAFACTOR);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct exec_train_config c;
    train_cfg(&c, 2, 1);
    struct exec_model_opts mo;
    mopts(&mo, 2);
    struct rig a;
    if (rig_init(&a, &mo, &oc, &c, 9) < 0)
        return;
    step_loss(&a);
    /* Plan hashes of two plans that differ in the learning rate. */
    struct plan *p = calloc(1, sizeof(*p));
    plan_init(p);
    p->model = tiny();
    p->workload.seq = SEQ;
    struct exec_ckpt_meta m1, m2;
    exec_plan_numerics(p, &m1);
    p->train.lr *= 2;
    exec_plan_numerics(p, &m2);
    CHECK(strcmp(m1.plan_hash, m2.plan_hash) != 0);
    p->strategy.threads = 7; /* not a numeric setting */
    p->strategy.recompute = RECOMPUTE_FULL;
    struct exec_ckpt_meta m3;
    exec_plan_numerics(p, &m3);
    CHECK_STR(m3.plan_hash, m2.plan_hash);
    free(p);

    char path[300];
    snprintf(path, sizeof(path), "%s/refuse.safetensors", g_dir);
    CHECK_OK(exec_checkpoint_save(path, &a.m, &a.o, &m1, &err), &err);
    size_t nb = a.m.n_train * sizeof(float);
    float *before = malloc(nb);
    memcpy(before, a.m.train_params, nb);

    /* Another plan. */
    int rc = exec_checkpoint_load(path, &a.m, &a.o, &m2, NULL, NULL, &err);
    CHECK(rc < 0);
    CHECK_MSG(strstr(err.msg, "train.lr") != NULL, "message: %s", err.msg);
    printf("  other plan: %s\n", err.msg);
    CHECK_OK(exec_checkpoint_load(path, &a.m, &a.o, &m1, NULL, NULL, &err), &err);

    /* Another shape. */
    struct model_desc d2 = tiny();
    d2.hidden = 64;
    d2.head_dim = 16;
    struct exec_model big;
    CHECK_OK(exec_model_init(&big, &d2, &mo, backend_cpu(), &err), &err);
    rc = exec_checkpoint_load(path, &big, NULL, NULL, NULL, NULL, &err);
    CHECK(rc < 0);
    CHECK_MSG(strstr(err.msg, "different model") && strstr(err.msg, "hidden 32"), "message: %s",
              err.msg);
    printf("  other shape: %s\n", err.msg);
    exec_model_release(&big);

    /* Another optimizer. */
    struct exec_optimizer lion;
    struct exec_optim_config lc;
    exec_optim_config_init(&lc);
    lc.kind = OPT_LION;
    CHECK_OK(exec_optimizer_init(&lion, &a.m, &lc, &err), &err);
    CHECK(exec_checkpoint_load(path, &a.m, &lion, NULL, NULL, NULL, &err) < 0);
    CHECK(strstr(err.msg, "adamw") != NULL);
    exec_optimizer_release(&lion);

    /* A flipped byte in the data section: checksum. */
    char *bytes = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(path, 1 << 26, &bytes, &len, &err), &err);
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/corrupt.safetensors", g_dir);
    bytes[len - 100] ^= 0x40;
    CHECK_OK(sw_write_file_atomic(bad, bytes, len, &err), &err);
    memset(a.m.train_params, 0, nb); /* something the load would overwrite */
    memcpy(before, a.m.train_params, nb);
    rc = exec_checkpoint_load(bad, &a.m, &a.o, &m1, NULL, NULL, &err);
    CHECK(rc < 0);
    CHECK_MSG(strstr(err.msg, "corrupt") != NULL, "message: %s", err.msg);
    CHECK(memcmp(before, a.m.train_params, nb) == 0); /* unchanged on refusal */
    /* Truncated. */
    bytes[len - 100] ^= 0x40;
    CHECK_OK(sw_write_file_atomic(bad, bytes, len / 2, &err), &err);
    CHECK(exec_checkpoint_load(bad, &a.m, &a.o, &m1, NULL, NULL, &err) < 0);
    printf("  truncated: %s\n", err.msg);
    free(bytes);
    free(before);
    rig_release(&a);
}

/* ---------------------------------------------------------------- schedule, clipping */

static void test_lr_schedule(void)
{
    struct exec_lr s = {.schedule = LR_COSINE, .lr = 1.0, .min_lr = 0.1, .warmup_steps = 10,
                        .total_steps = 110};
    CHECK_NEAR(exec_lr_at(&s, 0), 0.1, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 4), 0.5, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 9), 1.0, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 10), 1.0, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 35), 0.1 + 0.45 * (1 + cos(M_PI / 4)), 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 60), 0.55, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 110), 0.1, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 500), 0.1, 1e-12);
    s.schedule = LR_LINEAR;
    CHECK_NEAR(exec_lr_at(&s, 35), 0.775, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 60), 0.55, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 110), 0.1, 1e-12);
    s.schedule = LR_CONSTANT;
    CHECK_NEAR(exec_lr_at(&s, 4), 0.5, 1e-12);
    CHECK_NEAR(exec_lr_at(&s, 100), 1.0, 1e-12);
    s.warmup_steps = 0;
    CHECK_NEAR(exec_lr_at(&s, 0), 1.0, 1e-12);
}

static void test_clipping(void)
{
    struct sw_err err;
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct exec_train_config c;
    train_cfg(&c, 2, 1);
    struct exec_model_opts mo;
    mopts(&mo, 2);
    struct rig a;
    if (rig_init(&a, &mo, &oc, &c, 9) < 0)
        return;
    int tok[2 * SEQ], tgt[2 * SEQ];
    for (int i = 0; i < 2 * SEQ; i++)
        tok[i] = i % VOCAB, tgt[i] = (i * 5 + 1) % VOCAB;
    float loss;
    exec_model_zero_grad(&a.m);
    CHECK_OK(exec_model_forward(&a.m, tok, tgt, 2, SEQ, &loss, &err), &err);
    CHECK_OK(exec_model_backward(&a.m, 1.0f, &err), &err);
    double ref = 0;
    for (size_t i = 0; i < a.m.n_train; i++)
        ref += (double)a.m.train_grads[i] * a.m.train_grads[i];
    ref = sqrt(ref);
    /* Measure only: the norm (double sums: 1e-9 relative), gradients untouched. */
    CHECK_REL(exec_optimizer_clip(&a.o, 0), ref, 1e-9);
    /* Clip to a tenth: the returned norm is the old one, the new norm max/(norm+1e-6)·norm. */
    double mx = ref / 10;
    CHECK_REL(exec_optimizer_clip(&a.o, mx), ref, 1e-9);
    CHECK_REL(exec_optimizer_clip(&a.o, 0), mx * ref / (ref + 1e-6), 1e-6);
    /* Under the threshold nothing changes. */
    CHECK_REL(exec_optimizer_clip(&a.o, 1e9), mx * ref / (ref + 1e-6), 1e-6);
    CHECK_REL(exec_optimizer_clip(&a.o, 0), mx * ref / (ref + 1e-6), 1e-6);
    rig_release(&a);
}

/* ---------------------------------------------------------------- fp16-mixed, loss scaling */

/* Gradients of one micro-batch (8 x SEQ tokens) with grad_scale `scale`, divided back by it. */
static int grads_at(enum sw_precision prec, double scale, float *out, size_t *n)
{
    struct sw_err err;
    sw_err_init(&err);
    struct exec_model_opts mo;
    mopts(&mo, 8);
    mo.precision = prec;
    struct model_desc d = tiny();
    struct exec_model m;
    int rc = exec_model_init(&m, &d, &mo, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return rc;
    exec_model_init_weights(&m, 21);
    int tok[8 * SEQ], tgt[8 * SEQ];
    for (int i = 0; i < 8 * SEQ; i++)
        tok[i] = (i * 7 + 3) % VOCAB, tgt[i] = (i * 5 + 1) % VOCAB;
    float loss;
    exec_model_zero_grad(&m);
    if ((rc = exec_model_forward(&m, tok, tgt, 8, SEQ, &loss, &err)) == 0)
        rc = exec_model_backward(&m, (float)scale, &err);
    CHECK_OK(rc, &err);
    for (size_t i = 0; i < m.n_train; i++)
        out[i] = (float)(m.train_grads[i] / scale);
    *n = m.n_train;
    exec_model_release(&m);
    return rc;
}

/* fp16 operands lose gradients below 2^-24: at a scale of 2^-12 (as a large batch's mean makes
 * per-token gradients tiny) most of them vanish; scaled up by 2^16 the fp16 gradients match
 * fp32's to fp16 precision. Errors relative to fp32's largest gradient. */
static void test_fp16_loss_scale_saves_gradients(void)
{
    enum { MAXP = 60000 };
    static float ref[MAXP], big[MAXP], small[MAXP];
    size_t n = 0, n2 = 0, n3 = 0;
    if (grads_at(PREC_FP32, 1.0, ref, &n) < 0 || grads_at(PREC_FP16_MIXED, 65536.0, big, &n2) < 0 ||
        grads_at(PREC_FP16_MIXED, 1.0 / 4096, small, &n3) < 0)
        return;
    CHECK(n <= MAXP && n == n2 && n == n3);
    double sc = 0, e_big = max_abs_diff(ref, big, n, &sc), e_small = max_abs_diff(ref, small, n, NULL);
    size_t zero_ref = 0, zero_small = 0;
    for (size_t i = 0; i < n; i++)
        zero_ref += ref[i] == 0.0f, zero_small += small[i] == 0.0f;
    printf("  fp16 gradients vs fp32: scale 2^16 max err %.2e, scale 2^-12 %.2e (of %.2e); zeros "
           "%zu -> %zu of %zu\n",
           e_big, e_small, sc, zero_ref, zero_small, n);
    CHECK(e_big < 2e-3 * sc); /* fp16's 11-bit mantissa (measured 5e-4 sc) */
    CHECK(e_small > 0.5 * sc); /* underflow: the signal is gone (measured 2.6x sc) */
    CHECK(zero_small > zero_ref + n / 10); /* measured 1505 -> 5600 of 30592 */
}

/* An fp16-mixed rig (micro-batch 4, 40-step schedule, AdamW) with the loss scaler given. */
static int fp16_rig(struct rig *a, double scale, int64_t window)
{
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct exec_model_opts mo;
    mopts(&mo, 4);
    mo.precision = PREC_FP16_MIXED;
    struct exec_train_config c;
    train_cfg(&c, 4, 1);
    c.lr.total_steps = 40;
    c.loss_scale = scale;
    c.loss_scale_window = window;
    return rig_init(a, &mo, &oc, &c, 5);
}

/* Dynamic scaling from an absurd 2^40: the first steps overflow and are skipped (no weight and
 * no optimizer step changes), the scale halves on each skip and doubles after `window` finite
 * steps in a row; the run then learns. */
static void test_fp16_dynamic_loss_scale(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct rig a;
    if (fp16_rig(&a, 1099511627776.0, 3) < 0)
        return;
    size_t n = a.m.n_train;
    float *before = malloc(n * sizeof(float));
    double expect = a.t.cfg.loss_scale, first = NAN, last = NAN;
    int64_t good = 0, skipped = 0;
    bool rule_ok = true, frozen_ok = true;
    for (int i = 0; i < 40; i++) {
        memcpy(before, a.m.train_params, n * sizeof(float));
        int64_t ostep = a.o.step;
        struct exec_step_stats st;
        int rc = exec_trainer_step(&a.t, &st, &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            break;
        if (st.loss_scale != expect)
            rule_ok = false;
        if (st.skipped) {
            skipped++;
            if (memcmp(before, a.m.train_params, n * sizeof(float)) || a.o.step != ostep)
                frozen_ok = false;
            expect /= 2, good = 0;
        } else if (++good == 3) {
            expect *= 2, good = 0;
        }
        if (i == 0)
            CHECK(st.skipped); /* 2^40 overflows fp16 at once */
        if (!st.skipped && isnan(first))
            first = st.loss;
        last = st.loss;
    }
    printf("  dynamic loss scale: %lld of 40 steps skipped, final scale %g, loss %.3f -> %.3f\n",
           (long long)skipped, a.t.loss_scale, first, last);
    CHECK(rule_ok);
    CHECK(frozen_ok);
    CHECK_INT(a.t.skipped_steps, skipped);
    CHECK(skipped >= 10 && skipped < 35);
    CHECK(a.t.loss_scale == expect);
    CHECK(isfinite(last) && last < first - 0.5);
    free(before);
    rig_release(&a);
}

/* fp16-mixed with the default dynamic scale follows fp32's loss curve (the same data, weights
 * and optimizer; fp16 operands change the losses in the third decimal). */
static void test_fp16_tracks_fp32(void)
{
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct exec_model_opts mo32;
    struct exec_train_config c32;
    mopts(&mo32, 4);
    train_cfg(&c32, 4, 1);
    c32.lr.total_steps = 40;
    struct rig a, b;
    if (fp16_rig(&a, 65536, 2000) < 0)
        return;
    if (rig_init(&b, &mo32, &oc, &c32, 5) < 0) {
        rig_release(&a);
        return;
    }
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double l16 = step_loss(&a), l32 = step_loss(&b);
        worst = fmax(worst, fabs(l16 - l32));
    }
    printf("  fp16-mixed vs fp32, 20 steps: worst loss difference %.2e\n", worst);
    CHECK(worst < 0.05);
    CHECK_INT(a.t.skipped_steps, 0);
    rig_release(&a);
    rig_release(&b);
}

/* Weights so large that the forward overflows fp16 (values past 65504 reach a matmul): every
 * step is skipped whatever the scale, until the scale passes its floor and the step fails with
 * SW_ERANGE naming the way out, instead of skipping forever. */
static void test_fp16_forward_overflow(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct rig a;
    if (fp16_rig(&a, 65536, 2000) < 0)
        return;
    for (size_t i = 0; i < a.m.n_train; i++)
        a.m.train_params[i] *= 1e6f;
    exec_model_weights_changed(&a.m);
    int rc = 0, steps = 0;
    while (steps < 60 && (rc = exec_trainer_step(&a.t, NULL, &err)) == 0)
        steps++;
    CHECK_INT(rc, SW_ERANGE);
    CHECK(strstr(err.msg, "bf16-mixed") != NULL);
    CHECK_INT(steps, 40); /* 2^16 halved 40 times passes 2^-24 */
    rig_release(&a);
}

/* ---------------------------------------------------------------- every optimizer learns */

static void test_optimizers_learn(void)
{
    /* 40 steps on the permutation corpus, no clipping: the mean loss of the last 5 steps must
     * fall below max_ratio x the first step's (ln 97 = 4.57 at init; the corpus is ~94%
     * predictable), and the validation loss below max_ratio + 0.05. Adaptive optimizers get
     * there fast (ratio 0.6); plain SGD from GPT-2's 0.02 init is slow (0.9, 0.85 with
     * momentum). Learning rates are each optimizer's workable scale on this problem. Also: the
     * state bytes equal the prediction and the backend's optimizer counter. */
    struct {
        enum sw_optimizer kind;
        double lr, max_ratio;
    } cases[] = {{OPT_ADAMW, 1e-2, 0.6},       {OPT_ADAMW8BIT, 1e-2, 0.6},
                 {OPT_ADAFACTOR, 1e-2, 0.6},   {OPT_SGD, 0.3, 0.9},
                 {OPT_SGD_MOMENTUM, 0.1, 0.85}, {OPT_LION, 1e-2, 0.6}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct sw_err err;
        sw_err_init(&err);
        struct exec_optim_config oc;
        exec_optim_config_init(&oc);
        oc.kind = cases[k].kind;
        struct exec_train_config c;
        train_cfg(&c, 4, 1);
        c.lr.lr = cases[k].lr;
        c.lr.min_lr = cases[k].lr / 10;
        c.lr.total_steps = 40;
        c.grad_clip = 0; /* clipping at 1 would slow the SGD family down */
        struct exec_model_opts mo;
        mopts(&mo, 4);
        struct exec_model m;
        struct model_desc d = tiny();
        CHECK_OK(exec_model_init(&m, &d, &mo, backend_cpu(), &err), &err);
        exec_model_init_weights(&m, 77);
        uint64_t predicted = 0;
        CHECK_OK(exec_optimizer_plan_bytes(&m, oc.kind, &predicted, &err), &err);
        struct backend_mem_stats s0, s1;
        backend_cpu()->mem_stats(&s0);
        struct rig r;
        r.m = m;
        CHECK_OK(exec_optimizer_init(&r.o, &r.m, &oc, &err), &err);
        backend_cpu()->mem_stats(&s1);
        CHECK(r.o.state_bytes == predicted);
        CHECK(s1.current_bytes[BACKEND_MEM_OPTIMIZER] - s0.current_bytes[BACKEND_MEM_OPTIMIZER] ==
              predicted);
        CHECK_OK(exec_trainer_init(&r.t, &r.m, &r.o, &c, &g_train, &g_val, &err), &err);
        int ln = exec_model_find_tensor(&r.m, "h.0.ln_1.weight");
        double first = 0, last = 0;
        for (int s = 0; s < 40; s++) {
            double l = step_loss(&r);
            if (s == 0)
                first = l;
            if (s >= 35)
                last += l / 5;
        }
        double val = 0;
        CHECK_OK(exec_trainer_eval(&r.t, &val, &err), &err);
        printf("  %-12s lr %-6g loss %.4f -> %.4f (val %.4f), state %llu bytes\n",
               optimizer_name(cases[k].kind), cases[k].lr, first, last, val,
               (unsigned long long)predicted);
        CHECK_MSG(last < cases[k].max_ratio * first, "%s: %.4f -> %.4f",
                  optimizer_name(cases[k].kind), first, last);
        CHECK_MSG(val < (cases[k].max_ratio + 0.05) * first, "%s: val %.4f",
                  optimizer_name(cases[k].kind), val);
        CHECK(ln >= 0 && r.m.tensors[ln].ndim == 1);
        rig_release(&r);
    }
    /* Decay only on >= 2-D tensors: with zero gradients and no momentum state, AdamW changes
     * nothing but the decayed tensors. */
    struct sw_err err;
    struct exec_model_opts mo;
    mopts(&mo, 2);
    struct model_desc d = tiny();
    struct exec_model m;
    CHECK_OK(exec_model_init(&m, &d, &mo, backend_cpu(), &err), &err);
    exec_model_init_weights(&m, 1);
    struct exec_optimizer o;
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    oc.weight_decay = 0.5;
    CHECK_OK(exec_optimizer_init(&o, &m, &oc, &err), &err);
    exec_model_zero_grad(&m);
    int i_ln = exec_model_find_tensor(&m, "h.0.ln_1.weight");
    int i_w = exec_model_find_tensor(&m, "h.0.mlp.c_fc.weight");
    float ln0 = m.tensors[i_ln].data[0], w0 = m.tensors[i_w].data[0];
    exec_optimizer_step(&o, 0.1);
    CHECK(m.tensors[i_ln].data[0] == ln0);
    CHECK_NEAR(m.tensors[i_w].data[0], w0 * (1 - 0.1f * 0.5f), 1e-7);
    exec_optimizer_release(&o);
    exec_model_release(&m);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static void fixture_case(const char *file, bool llama)
{
    struct sw_err err;
    sw_err_init(&err);
    struct sft_file *f = NULL;
    if (sft_open(file, &f, &err) < 0) {
        CHECK_OK(-1, &err);
        return;
    }
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", llama ? "fixture-llama" : "fixture-gpt2");
    d.arch = llama ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2;
    int64_t x;
#define META_INT(key, field)                                                                     \
    CHECK_OK(sft_meta_i64(f, key, 0, 1 << 20, &x, &err), &err);                                  \
    d.field = (int)x
    META_INT("layers", n_layers);
    META_INT("hidden", hidden);
    META_INT("heads", n_heads);
    META_INT("kv_heads", n_kv_heads);
    META_INT("head_dim", head_dim);
    META_INT("ffn", ffn);
    META_INT("vocab", vocab);
    META_INT("max_pos", max_pos);
#undef META_INT
    model_fill_defaults(&d);
    CHECK_OK(sft_meta_f64(f, "eps", &d.norm_eps, &err), &err);
    CHECK_OK(sft_meta_f64(f, "rope_theta", &d.rope_theta, &err), &err);
    d.tied_head = !llama;
    d.bias = !llama;
    int64_t B = 0, S = 0;
    CHECK_OK(sft_meta_i64(f, "batch", 1, 64, &B, &err), &err);
    CHECK_OK(sft_meta_i64(f, "seq_len", 1, 4096, &S, &err), &err);

    struct exec_model_opts mo;
    exec_model_opts_init(&mo);
    mo.batch = (int)B;
    mo.seq = (int)S;
    struct exec_model m;
    if (exec_model_init(&m, &d, &mo, backend_cpu(), &err) < 0) {
        CHECK_OK(-1, &err);
        sft_close(f);
        return;
    }
    enum exec_ckpt_kind kind;
    CHECK_OK(exec_checkpoint_load(file, &m, NULL, NULL, NULL, &kind, &err), &err);
    CHECK_INT(kind, EXEC_CKPT_HF);
    size_t N = (size_t)(B * S);
    int *tok = malloc(N * sizeof(int)), *tgt = malloc(N * sizeof(int));
    CHECK_OK(sft_read_raw(f, sft_find(f, "inputs.tokens"), tok, N * sizeof(int), &err), &err);
    CHECK_OK(sft_read_raw(f, sft_find(f, "inputs.targets"), tgt, N * sizeof(int), &err), &err);
    float loss = 0;
    exec_model_zero_grad(&m);
    CHECK_OK(exec_model_forward(&m, tok, tgt, (int)B, (int)S, &loss, &err), &err);
    /* Logits: (N, Vp) with Vp = VOCAB = 256 here; atol 2e-5 + rtol 1e-4 (fp32, other summation
     * order than PyTorch's). */
    SW_ASSERT(m.Vp == m.V);
    struct sft_diff df;
    CHECK_OK(sft_compare_f32(f, "out.logits", exec_model_logits(&m), N * (size_t)m.Vp, 2e-5, 1e-4,
                             &df, &err),
             &err);
    CHECK_MSG(df.n_bad == 0, "logits: %zu bad, max |diff| %.3g", df.n_bad, df.max_abs);
    double logit_diff = df.max_abs;
    float want_loss = 0;
    CHECK_OK(sft_load_f32(f, "out.loss", 1, (int64_t[]){1}, &want_loss, &err), &err);
    CHECK_REL(loss, want_loss, 1e-5);
    CHECK_OK(exec_model_backward(&m, 1.0f, &err), &err);
    /* Every parameter gradient: atol 1e-6 + rtol 1e-3 per element, in HF layout. */
    double worst = 0;
    int n_checked = 0;
    float *tmp = malloc(m.n_params * sizeof(float));
    for (int i = 0; i < m.n_tensors; i++) {
        const struct exec_tensor *t = &m.tensors[i];
        char gn[128];
        snprintf(gn, sizeof(gn), "grad.%s", t->name);
        const float *g = t->grad;
        if (t->hf_transposed) {
            for (int64_t r = 0; r < t->shape[0]; r++)
                for (int64_t c = 0; c < t->shape[1]; c++)
                    tmp[c * t->shape[0] + r] = t->grad[r * t->shape[1] + c];
            g = tmp;
        }
        int rc = sft_compare_f32(f, gn, g, t->numel, 1e-6, 1e-3, &df, &err);
        CHECK_OK(rc, &err);
        if (rc == 0) {
            n_checked++;
            CHECK_MSG(df.n_bad == 0, "%s: %zu bad, max |diff| %.3g (max |ref| %.3g), worst %g vs %g",
                      gn, df.n_bad, df.max_abs, df.max_ref, df.worst_got, df.worst_want);
            if (df.max_abs > worst)
                worst = df.max_abs;
        }
    }
    printf("  %s vs PyTorch: logits max |diff| %.3g, loss %.7f vs %.7f, %d gradients max |diff| "
           "%.3g\n", llama ? "tiny-llama" : "tiny-gpt2 ", logit_diff, loss, want_loss, n_checked,
           worst);
    CHECK_INT(n_checked, m.n_tensors);
    free(tmp);
    free(tok);
    free(tgt);
    exec_model_release(&m);
    sft_close(f);
}

static void test_pytorch_fixtures(void)
{
    fixture_case("tests/data/reference/tiny_gpt2.safetensors", false);
    fixture_case("tests/data/reference/tiny_llama.safetensors", true);
}

static void test_checkpoint_is_hf_loadable(void)
{
    /* Our checkpoint loads through the HF path too (Conv1D weights transposed back), and HF
     * names with the "transformer." prefix are accepted: round trip of the weights. */
    struct sw_err err;
    struct exec_model_opts mo;
    mopts(&mo, 2);
    struct model_desc d = tiny();
    struct exec_model a, b;
    CHECK_OK(exec_model_init(&a, &d, &mo, backend_cpu(), &err), &err);
    CHECK_OK(exec_model_init(&b, &d, &mo, backend_cpu(), &err), &err);
    exec_model_init_weights(&a, 1);
    exec_model_init_weights(&b, 2);
    char path[300];
    snprintf(path, sizeof(path), "%s/weights.safetensors", g_dir);
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    CHECK_OK(exec_checkpoint_save(path, &a, NULL, &meta, &err), &err);
    struct sft_file *f = NULL;
    CHECK_OK(sft_open(path, &f, &err), &err);
    if (f) {
        const struct sft_tensor *t = sft_find(f, "h.0.attn.c_attn.weight");
        CHECK(t && t->shape[0] == 32 && t->shape[1] == 96); /* HF Conv1D (in, out) */
        CHECK_STR(sft_meta_get(f, "format"), "pt");
        sft_close(f);
    }
    CHECK_OK(exec_hf_load_weights(path, &b, &err), &err);
    CHECK(memcmp(a.train_params, b.train_params, a.n_train * sizeof(float)) == 0);
    /* A missing tensor is named. */
    struct sft_writer *w = sft_writer_new();
    int64_t sh[2] = {VOCAB, 32};
    CHECK_OK(sft_writer_add(w, "transformer.wte.weight", SFT_F32, 2, sh, a.tensors[0].data,
                            &err),
             &err);
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);
    CHECK(exec_hf_load_weights(path, &b, &err) == SW_ENOENT);
    CHECK_MSG(strstr(err.msg, "wpe.weight") != NULL, "message: %s", err.msg);
    exec_model_release(&a);
    exec_model_release(&b);
}

/* ---------------------------------------------------------------- metrics, report, refusals */

static void test_metrics_and_report(void)
{
    struct sw_err err;
    char path[300];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", g_dir);
    struct exec_metrics mt;
    CHECK_OK(exec_metrics_open(&mt, path, -1, &err), &err);
    for (int s = 1; s <= 4; s++) {
        struct exec_metrics_row r = {.step = s, .loss = 3.0 - s * 0.1, .has_val = s == 2,
                                     .val_loss = 2.5, .lr = 1e-3, .grad_norm = 0.5,
                                     .tokens_per_s = 1000, .ms_per_step = 12.5, .mfu = NAN,
                                     .peak_rss_bytes = 1 << 20};
        CHECK_OK(exec_metrics_append(&mt, &r, &err), &err);
    }
    exec_metrics_close(&mt);
    /* Resuming at step 2 keeps steps 1 and 2 only. */
    CHECK_OK(exec_metrics_open(&mt, path, 2, &err), &err);
    exec_metrics_close(&mt);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(path, 1 << 20, &text, &len, &err), &err);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    CHECK_INT(lines, 2);
    CHECK(strstr(text, "\"val_loss\": 2.5") != NULL);
    CHECK(strstr(text, "\"mfu\": null") != NULL);
    CHECK(strstr(text, "\"step\": 3") == NULL);
    free(text);

    char buf[200];
    struct exec_progress p = {.step = 50, .steps = 100, .loss = 2.5, .lr = 1e-3,
                              .tokens_per_s = 12345, .elapsed_s = 10, .eta_s = 10};
    exec_progress_format(&p, true, 80, buf, sizeof(buf));
    CHECK(strlen(buf) <= 80);
    CHECK(strstr(buf, "50/100") && strstr(buf, "ETA 0:10") && strstr(buf, "12.3k"));
    exec_progress_format(&p, false, 0, buf, sizeof(buf));
    CHECK(strncmp(buf, "step 50/100", 11) == 0);
}

static void test_run_refusals(void)
{
    struct sw_err err;
    struct plan *p = calloc(1, sizeof(*p));
    plan_init(p);
    p->model = tiny();
    p->workload.task = TASK_TRAIN;
    p->workload.seq = SEQ;
    p->strategy.device = DEVICE_CPU;
    p->strategy.precision = PREC_FP32;
    p->strategy.micro_batch = 2;
    p->strategy.grad_accum = 1;
    p->strategy.dp = p->strategy.tp = p->strategy.pp = 1;
    p->strategy.zero = 0;
    CHECK_OK(exec_run_check(p, &err), &err);
    p->strategy.device = DEVICE_CUDA;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED && strstr(err.msg, "CUDA backend"));
    p->strategy.device = DEVICE_CPU;
    p->strategy.tp = 2;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED && strstr(err.msg, "tp 2"));
    p->strategy.tp = 1;
    p->strategy.dp = 2; /* data parallelism runs (as dp processes: tests/unit/test_dp.c) */
    CHECK_OK(exec_run_check(p, &err), &err);
    p->strategy.dp = 1;
    p->strategy.zero = 1;
    CHECK(exec_run_check(p, &err) == SW_EINVAL && strstr(err.msg, "dp >= 2"));
    p->strategy.zero = 0;
    p->strategy.offload_optimizer = true;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED && strstr(err.msg, "offload"));
    p->strategy.offload_optimizer = false;
    p->strategy.precision = PREC_FP16_MIXED; /* runs (emulated on the CPU) */
    CHECK_OK(exec_run_check(p, &err), &err);
    p->strategy.precision = PREC_TF32;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED && strstr(err.msg, "tf32"));
    p->strategy.precision = PREC_BF16_MIXED;
    CHECK_OK(exec_run_check(p, &err), &err);
    p->strategy.lora_rank = 4;
    p->strategy.weights = WFMT_INT4;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED && strstr(err.msg, "quantised"));
    p->strategy.weights = WFMT_BF16;
    CHECK_OK(exec_run_check(p, &err), &err);
    p->workload.seq = 64; /* beyond max_pos 32: the model refuses */
    CHECK(exec_run_check(p, &err) < 0);
    printf("  seq past max_pos: %s\n", err.msg);
    p->workload.seq = SEQ;
    p->workload.task = TASK_INFER;
    CHECK(exec_run_check(p, &err) == SW_EUNSUPPORTED);
    free(p);
}

int main(void)
{
    make_shards();
    RUN(test_grad_accumulation);
    RUN(test_recompute);
    RUN(test_resume);
    RUN(test_refusals);
    RUN(test_lr_schedule);
    RUN(test_clipping);
    RUN(test_fp16_loss_scale_saves_gradients);
    RUN(test_fp16_dynamic_loss_scale);
    RUN(test_fp16_tracks_fp32);
    RUN(test_fp16_forward_overflow);
    RUN(test_optimizers_learn);
    RUN(test_pytorch_fixtures);
    RUN(test_checkpoint_is_hf_loadable);
    RUN(test_metrics_and_report);
    RUN(test_run_refusals);
    shard_release(&g_train);
    shard_release(&g_val);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return harness_finish("test_train");
}
