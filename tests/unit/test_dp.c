/* Tests of data parallelism and ZeRO on the CPU executor without a second process
 * (tests/cli/dp.sh runs the real thing under mpirun): the shard cuts (even slots; 8-bit AdamW
 * cuts on block boundaries inside runs, never leaving a piece under the 8-bit minimum), the
 * sharded optimizers against the unsharded one (W simulated ranks updating disjoint shards of
 * one model give bit-identical parameters, for AdamW, Lion, SGD-momentum and 8-bit AdamW, and
 * with an owned ZeRO-3 parameter shard), the extents (every rank's state bytes tile the
 * unsharded layout exactly once, and assembling them gives the unsharded state byte for byte),
 * a normal checkpoint loaded into one rank's shard and a rank's shard file round trip, the
 * advisor's per-rank bytes for the executor's ZeRO layout (exact for weights, gradients,
 * optimizer and the staging workspace), the world-1 trainer through the single comm engine
 * equal to the plain one, the plan hash across dp splits of one global batch, and the
 * refusals. The model: GPT-2, L=2, C=64, vocab 500 (padded to 512), so runs are large enough
 * for 8-bit cuts inside them. Also: the model's gradient-ready hook (suffixes reported after
 * each layer are final, bitwise the same gradients as without it, full training and LoRA),
 * DDP with the all-reduce overlapped with backward against the non-overlapped path (bitwise
 * identical, several buckets, last bucket first), and the plan's `launch` section (commands
 * for GPU and CPU plans, byte-identical save -> load -> save, hand-edited commands kept, key
 * and type errors). */
#include "harness.h"

#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor/comm.h"
#include "executor/executor.h"

#define VOCAB 500
#define SEQ 16
#define N_TOK 6000

static char g_dir[256];
static struct shard g_train;

static struct model_desc model(void)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "dp-gpt2");
    d.arch = MODEL_ARCH_GPT2;
    d.n_layers = 2;
    d.hidden = 64;
    d.n_heads = 4;
    d.n_kv_heads = 4;
    d.head_dim = 16;
    d.ffn = 256;
    d.vocab = VOCAB;
    d.max_pos = 32;
    d.norm_eps = 1e-5;
    model_fill_defaults(&d);
    return d;
}

/* The training tests' model: the same shape at C = 32 and vocab 128 (fast under ASan). */
static struct model_desc small_model(void)
{
    struct model_desc d = model();
    d.hidden = 32;
    d.head_dim = 8;
    d.ffn = 128;
    d.vocab = 128;
    return d;
}

/* exec_model_opts.layer_gather_bufs and shard_grads of the models build_desc makes (2 and
 * true: ZeRO-3's; false and true: ZeRO-2's). */
static int g_gather_bufs;
static bool g_shard_grads;
static enum sw_precision g_prec = PREC_FP32; /* their precision */

static int build_desc(struct exec_model *m, const struct backend *be, struct model_desc d)
{
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = 2;
    o.seq = SEQ;
    o.layer_gather_bufs = g_gather_bufs;
    o.shard_grads = g_shard_grads;
    o.precision = g_prec;
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_init(m, &d, &o, be, &err);
    CHECK_OK(rc, &err);
    if (rc == 0)
        exec_model_init_weights(m, 11);
    return rc;
}

static int build(struct exec_model *m, const struct backend *be)
{
    return build_desc(m, be, model());
}

static int build_small(struct exec_model *m)
{
    return build_desc(m, backend_cpu(), small_model());
}

static void ocfg(struct exec_optim_config *c, enum sw_optimizer k)
{
    exec_optim_config_init(c);
    c->kind = k;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
}

/* Gradients of step s: a fixed pseudo-random pattern with a wide range of magnitudes on every
 * tensor; elements outside the tensors (padded vocabulary rows) keep zero, as in training. */
static void fill_grads(struct exec_model *m, int s)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(s + 1);
    memset(m->train_grads, 0, m->n_train * sizeof(float));
    for (int t = 0; t < m->n_tensors; t++) {
        float *g = m->tensors[t].grad;
        for (size_t i = 0; g && i < m->tensors[t].numel; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(x >> 11) / 9007199254740992.0 - 0.5;
            g[i] = (float)(u * pow(10.0, (double)(i % 5) - 3.0));
        }
    }
}

/* The runs of one weight-decay setting in region order, as optimizer.c builds its segments
 * (decay = 2+ dimensions; a run reaches the next run's first tensor). */
struct toff {
    size_t off;
    bool decay;
};

static int cmp_toff(const void *a, const void *b)
{
    const struct toff *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int runs_of(const struct exec_model *m, size_t *off, size_t *n, int cap)
{
    struct toff *t = calloc((size_t)m->n_tensors, sizeof(*t));
    int nt = 0, k = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].trainable && m->tensors[i].grad)
            t[nt++] = (struct toff){(size_t)(m->tensors[i].grad - m->train_grads),
                                    m->tensors[i].ndim >= 2};
    qsort(t, (size_t)nt, sizeof(*t), cmp_toff);
    for (int i = 0; i < nt; i++) {
        if (i > 0 && t[i].decay == t[i - 1].decay)
            continue;
        SW_ASSERT(k < cap);
        off[k++] = i == 0 ? 0 : t[i].off;
    }
    for (int i = 0; i < k; i++)
        n[i] = (i + 1 < k ? off[i + 1] : m->n_train) - off[i];
    free(t);
    return k;
}

/* ---------------------------------------------------------------- cuts */

static void test_cut_rule(void)
{
    const uint64_t B = ADVISOR_ADAM8_BLOCK, MIN = ADVISOR_ADAM8_MIN_N;
    /* At or outside the run: its edges. */
    CHECK_INT(advisor_zero_cut_adam8(1000, 1000, 50000, 20000), 1000);
    CHECK_INT(advisor_zero_cut_adam8(60000, 1000, 50000, 20000), 51000);
    /* Small slot or small run: the nearer edge. */
    CHECK_INT(advisor_zero_cut_adam8(1100, 1000, 50000, 4 * MIN - 1), 1000);
    CHECK_INT(advisor_zero_cut_adam8(50900, 1000, 50000, 4 * MIN - 1), 51000);
    CHECK_INT(advisor_zero_cut_adam8(4000, 0, 2 * MIN - 1, 1 << 20), 0);
    CHECK_INT(advisor_zero_cut_adam8(5000, 0, 2 * MIN - 1, 1 << 20), 2 * MIN - 1);
    /* Inside a big run: block-aligned from the run's start, >= MIN from both ends, monotone. */
    uint64_t off = 777, n = 100000, prev = 0;
    int bad = 0;
    for (uint64_t t = off; t <= off + n; t += 97) {
        uint64_t c = advisor_zero_cut_adam8(t, off, n, 4 * MIN);
        bool edge = c == off || c == off + n;
        bool inner = (c - off) % B == 0 && c - off >= MIN && off + n - c >= MIN;
        bad += !(edge || inner) || c < prev;
        prev = c;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(advisor_zero_cut_adam8(off + 50000, off, n, 1 << 20), off + 49152); /* 24·2048 */
}

static void test_shard_cuts(void)
{
    struct exec_model m;
    if (build(&m, backend_cpu()) < 0)
        return;
    struct sw_err err;
    sw_err_init(&err);
    size_t n = m.n_train, cuts[9];
    for (int W = 1; W <= 8; W++) {
        CHECK_OK(exec_optimizer_shard_cuts(&m, OPT_ADAMW, W, cuts, &err), &err);
        size_t slot = (n + (size_t)W - 1) / (size_t)W;
        int bad = 0;
        for (int r = 0; r <= W; r++)
            bad += cuts[r] != ((size_t)r * slot < n ? (size_t)r * slot : n);
        CHECK_MSG(bad == 0, "adamw cuts for world %d", W);
    }
    size_t roff[64], rn[64];
    int nr = runs_of(&m, roff, rn, 64);
    CHECK(nr > 4);
    int inner_cuts = 0;
    for (int W = 2; W <= 8; W++) {
        CHECK_OK(exec_optimizer_shard_cuts(&m, OPT_ADAMW8BIT, W, cuts, &err), &err);
        int bad = 0;
        for (int r = 0; r < W; r++)
            bad += cuts[r + 1] < cuts[r];
        for (int r = 1; r < W; r++) {
            int k = 0;
            while (k + 1 < nr && roff[k] + rn[k] <= cuts[r])
                k++;
            size_t rel = cuts[r] - roff[k];
            bool edge = rel == 0 || rel == rn[k];
            bool inner = rel % ADVISOR_ADAM8_BLOCK == 0 && rel >= ADVISOR_ADAM8_MIN_N &&
                         rn[k] - rel >= ADVISOR_ADAM8_MIN_N;
            bad += !(edge || inner);
            inner_cuts += inner && !edge;
            /* No piece of a run under the 8-bit minimum unless it is the whole run. */
            if (r + 1 < W && cuts[r + 1] < roff[k] + rn[k] && cuts[r + 1] > cuts[r])
                bad += cuts[r + 1] - cuts[r] < ADVISOR_ADAM8_MIN_N;
        }
        CHECK_MSG(bad == 0, "8-bit cuts for world %d", W);
        CHECK(cuts[0] == 0 && cuts[W] == n);
    }
    CHECK_MSG(inner_cuts > 0, "no 8-bit cut fell inside a run: the model is too small to test");
    CHECK_INT(exec_optimizer_shard_cuts(&m, OPT_ADAFACTOR, 2, cuts, &err), SW_EUNSUPPORTED);
    CHECK_OK(exec_optimizer_shard_cuts(&m, OPT_ADAFACTOR, 1, cuts, &err), &err);
    CHECK_INT(exec_optimizer_shard_cuts(&m, OPT_ADAMW, 0, cuts, &err), SW_EINVAL);
    exec_model_release(&m);
}

/* ---------------------------------------------------------------- sharded updates */

/* W simulated ranks: shard optimizers over one model against a full optimizer over another
 * with the same weights and gradients, 3 steps; then the extents assembled against the full
 * state, and a normal checkpoint of the full state loaded into each rank's shard. */
static void shard_case(enum sw_optimizer kind, int W, bool own_params)
{
    struct exec_model full_m, sh_m;
    if (build(&full_m, backend_cpu()) < 0 || build(&sh_m, backend_cpu()) < 0)
        return;
    struct sw_err err;
    sw_err_init(&err);
    struct exec_optim_config c;
    ocfg(&c, kind);
    struct exec_optimizer full, sh[4];
    size_t cuts[5];
    CHECK_OK(exec_optimizer_init(&full, &full_m, &c, &err), &err);
    CHECK_OK(exec_optimizer_shard_cuts(&sh_m, kind, W, cuts, &err), &err);
    uint64_t sum_state = 0;
    for (int r = 0; r < W; r++) {
        CHECK_OK(exec_optimizer_init_shard(&sh[r], &sh_m, &c, cuts[r], cuts[r + 1],
                                           own_params ? backend_cpu() : NULL, &err),
                 &err);
        sum_state += sh[r].state_bytes;
    }
    if (kind != OPT_ADAMW8BIT) /* 8-bit pieces carry their own block scales and alignment */
        CHECK_INT(sum_state, full.state_bytes);
    for (int s = 0; s < 3; s++) {
        fill_grads(&full_m, s);
        fill_grads(&sh_m, s);
        exec_optimizer_step(&full, 1e-2 * (s + 1));
        for (int r = 0; r < W; r++) {
            exec_optimizer_step(&sh[r], 1e-2 * (s + 1));
            if (own_params) /* ZeRO-3: the "all-gather" of the owned shard into the model */
                memcpy(sh_m.train_params + sh[r].lo, sh[r].params,
                       (sh[r].hi - sh[r].lo) * sizeof(float));
        }
    }
    CHECK_MSG(memcmp(full_m.train_params, sh_m.train_params, full_m.n_train * sizeof(float)) == 0,
              "%s world %d%s: sharded parameters differ from unsharded", optimizer_name(kind), W,
              own_params ? " (owned shards)" : "");

    /* The extents tile the full layout once; assembled, they are the full state. */
    struct exec_optim_buf *fb = NULL;
    int nfb = 0;
    CHECK_OK(exec_optimizer_full_layout(&sh_m, &c, &fb, &nfb, &err), &err);
    CHECK_INT(nfb, full.n_bufs);
    int bad = 0, overlap = 0;
    for (int b = 0; b < nfb && b < full.n_bufs; b++) {
        size_t nb = (size_t)fb[b].n_elems * sft_dtype_bytes(fb[b].dtype);
        CHECK_STR(fb[b].name, full.bufs[b].name);
        unsigned char *asm_ = calloc(nb ? nb : 1, 1), *cover = calloc(nb ? nb : 1, 1);
        for (int r = 0; r < W; r++)
            for (int i = 0; i < sh[r].n_ext; i++) {
                const struct exec_optim_extent *e = &sh[r].ext[i];
                if (e->buf != b)
                    continue;
                if (e->off_bytes + e->bytes > nb) {
                    bad++;
                    continue;
                }
                memcpy(asm_ + e->off_bytes, e->data, (size_t)e->bytes);
                for (uint64_t k = 0; k < e->bytes; k++)
                    overlap += cover[e->off_bytes + k]++ > 0;
            }
        bad += memcmp(asm_, full.bufs[b].data, nb) != 0;
        free(asm_);
        free(cover);
    }
    CHECK_MSG(bad == 0 && overlap == 0, "%s world %d: extents: %d bad, %d overlapping bytes",
              optimizer_name(kind), W, bad, overlap);

    /* A normal checkpoint of the full state into each rank's shard: the same bytes. */
    char path[300];
    snprintf(path, sizeof(path), "%s/full_%d.safetensors", g_dir, (int)kind);
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    meta.step = 3;
    CHECK_OK(exec_checkpoint_save(path, &full_m, &full, &meta, &err), &err);
    CHECK_INT(exec_checkpoint_save(path, &sh_m, &sh[0], &meta, &err), SW_EINVAL);
    for (int r = 0; r < W; r++) {
        struct exec_model m2;
        struct exec_optimizer o2;
        if (build(&m2, backend_cpu()) < 0)
            break;
        CHECK_OK(exec_optimizer_init_shard(&o2, &m2, &c, cuts[r], cuts[r + 1],
                                           own_params ? backend_cpu() : NULL, &err),
                 &err);
        CHECK_OK(exec_checkpoint_load(path, &m2, &o2, NULL, NULL, NULL, &err), &err);
        CHECK_INT(o2.step, 3);
        bool same =
            o2.state_bytes == sh[r].state_bytes &&
            (o2.state_bytes == 0 || memcmp(o2.state, sh[r].state, (size_t)o2.state_bytes) == 0);
        CHECK_MSG(same, "%s rank %d of %d: state loaded from a normal checkpoint differs",
                  optimizer_name(kind), r, W);
        if (own_params)
            CHECK(memcmp(o2.params, full_m.train_params + cuts[r],
                         (cuts[r + 1] - cuts[r]) * sizeof(float)) == 0);
        exec_optimizer_release(&o2);
        exec_model_release(&m2);
    }
    free(fb);
    for (int r = 0; r < W; r++)
        exec_optimizer_release(&sh[r]);
    exec_optimizer_release(&full);
    exec_model_release(&full_m);
    exec_model_release(&sh_m);
}

static void test_sharded_updates(void)
{
    shard_case(OPT_ADAMW, 2, false);
    shard_case(OPT_ADAMW, 3, true);
    shard_case(OPT_LION, 2, false);
    shard_case(OPT_SGD_MOMENTUM, 3, false);
    shard_case(OPT_ADAMW8BIT, 2, false);
    shard_case(OPT_ADAMW8BIT, 3, true);
    shard_case(OPT_ADAMW8BIT, 4, false);
}

static void test_shard_file(void)
{
    struct exec_model m;
    if (build(&m, backend_cpu()) < 0)
        return;
    struct sw_err err;
    sw_err_init(&err);
    struct exec_optim_config c;
    ocfg(&c, OPT_ADAMW8BIT);
    size_t cuts[3];
    CHECK_OK(exec_optimizer_shard_cuts(&m, c.kind, 2, cuts, &err), &err);
    struct exec_optimizer o, o2;
    CHECK_OK(exec_optimizer_init_shard(&o, &m, &c, cuts[1], cuts[2], NULL, &err), &err);
    fill_grads(&m, 0);
    exec_optimizer_step(&o, 1e-2);
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    meta.step = 1;
    snprintf(meta.plan_hash, sizeof(meta.plan_hash), "00000000000000aa");
    char path[300];
    snprintf(path, sizeof(path), "%s/shard.rank1.safetensors", g_dir);
    CHECK_OK(exec_checkpoint_save_shard(path, &o, &meta, 1, 2, &err), &err);
    CHECK_OK(exec_optimizer_init_shard(&o2, &m, &c, cuts[1], cuts[2], NULL, &err), &err);
    CHECK_OK(exec_checkpoint_load_shard(path, &o2, &meta, 1, 2, &err), &err);
    CHECK(o2.step == 1 && memcmp(o2.state, o.state, (size_t)o.state_bytes) == 0);
    /* Another rank, world, step or plan: refused, naming both. */
    CHECK_INT(exec_checkpoint_load_shard(path, &o2, &meta, 0, 2, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "rank 1 of 2") != NULL);
    CHECK_INT(exec_checkpoint_load_shard(path, &o2, &meta, 1, 3, &err), SW_EINVAL);
    meta.step = 2;
    CHECK_INT(exec_checkpoint_load_shard(path, &o2, &meta, 1, 2, &err), SW_EINVAL);
    meta.step = 1;
    snprintf(meta.plan_hash, sizeof(meta.plan_hash), "00000000000000bb");
    CHECK_INT(exec_checkpoint_load_shard(path, &o2, &meta, 1, 2, &err), SW_EINVAL);
    exec_optimizer_release(&o2);
    exec_optimizer_release(&o);
    exec_model_release(&m);
}

/* ---------------------------------------------------------------- advisor */

static void cpu_node(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    snprintf(hw->name, sizeof(hw->name), "test-cpu");
    hw->nodes = 1;
    hw->cpu.sockets = 1, hw->cpu.cores_per_socket = 4, hw->cpu.usable_cpus = 4;
    hw->cpu.peak_fp32_flops = 157e9;
    hw->host_mem_bytes_per_s = 20e9;
    hw->mem.total_bytes = hw->mem.usable_bytes = 64ull << 30;
}

static double category(const struct estimate *e, int c)
{
    switch (c) {
    case BACKEND_MEM_WEIGHTS:
        return e->dev.weights;
    case BACKEND_MEM_GRADIENTS:
        return e->dev.gradients;
    case BACKEND_MEM_OPTIMIZER:
        return e->dev.optimizer;
    case BACKEND_MEM_WORKSPACE:
        return e->dev.workspace;
    default:
        return e->dev.activations;
    }
}

/* The advisor's heaviest-rank bytes against the executor's ranks for one plan. */
static void advisor_case(enum sw_optimizer kind, int W, int zero, enum sw_precision prec)
{
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc d = model();
    struct hardware hw;
    cpu_node(&hw);
    /* The bf16 matmul scratch depends on the CPU: describe the one the test runs on. */
    if (backend_cpu()->has_native_bf16())
        hw.cpu.isa |= HW_ISA_AVX512_BF16;
    else
        hw.cpu.isa &= ~(unsigned)HW_ISA_AVX512_BF16;
    struct workload w;
    workload_init(&w);
    w.task = TASK_TRAIN;
    w.seq = SEQ;
    struct strategy s;
    strategy_init(&s);
    s.device = DEVICE_CPU;
    s.precision = prec;
    s.optimizer = kind;
    s.micro_batch = 2;
    s.grad_accum = 1;
    s.dp = W;
    s.zero = zero;
    s.attention = ATTN_FLASH;
    s.recompute = RECOMPUTE_NONE;
    struct estimate e;
    int rc = advisor_estimate(&d, &hw, &w, &s, NULL, &e, &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return;
    /* The executor: each rank's model (layer-gathered under ZeRO-3, as a run builds it),
     * optimizer and trainer staging, counted by hand from what each allocates. */
    struct exec_model m;
    g_gather_bufs = zero == 3 ? 2 : 0;
    g_shard_grads = zero >= 2;
    g_prec = prec;
    rc = build(&m, backend_cpu());
    g_gather_bufs = 0;
    g_shard_grads = false;
    g_prec = PREC_FP32;
    if (rc < 0)
        return;
    struct exec_optim_config c;
    ocfg(&c, kind);
    size_t cuts[9];
    CHECK_OK(exec_optimizer_shard_cuts(&m, kind, W, cuts, &err), &err);
    double ex[BACKEND_MEM_COUNT] = {0};
    size_t slot = 0, grad_shard_bytes = 0;
    for (int r = 0; r < W; r++) {
        struct exec_optimizer o;
        CHECK_OK(exec_optimizer_init_shard(&o, &m, &c, cuts[r], cuts[r + 1],
                                           zero == 3 ? backend_cpu() : NULL, &err),
                 &err);
        if ((double)o.state_bytes > ex[BACKEND_MEM_OPTIMIZER])
            ex[BACKEND_MEM_OPTIMIZER] = (double)o.state_bytes;
        if (o.own_grads && (cuts[r + 1] - cuts[r]) * 4 > grad_shard_bytes)
            grad_shard_bytes = (cuts[r + 1] - cuts[r]) * 4;
        if (cuts[r + 1] - cuts[r] > slot)
            slot = cuts[r + 1] - cuts[r];
        exec_optimizer_release(&o);
    }
    size_t per = EXEC_DP_BUCKET_BYTES / 4 / (size_t)W, chunk = slot < per ? slot : per;
    /* ZeRO-2/3: the model's non-layer gradients and one layer buffer, plus the rank's
     * gradient shard (the optimizer's own). */
    ex[BACKEND_MEM_GRADIENTS] =
        (double)m.planned.bytes[BACKEND_MEM_GRADIENTS] + (double)grad_shard_bytes;
    /* ZeRO-3: the rank's parameter shard, plus the model's non-layer weights and two layer
     * buffers. */
    ex[BACKEND_MEM_WEIGHTS] =
        (zero == 3 ? 4.0 * (double)slot : 0) + (double)m.planned.bytes[BACKEND_MEM_WEIGHTS];
    ex[BACKEND_MEM_WORKSPACE] = (double)m.planned.bytes[BACKEND_MEM_WORKSPACE] +
                                4.0 * (W + 1) * (double)(chunk ? chunk : 1);
    static const int cats[] = {BACKEND_MEM_WEIGHTS, BACKEND_MEM_GRADIENTS, BACKEND_MEM_OPTIMIZER,
                               BACKEND_MEM_WORKSPACE};
    for (int i = 0; i < 4; i++)
        CHECK_MSG(category(&e, cats[i]) == ex[cats[i]],
                  "%s dp %d zero %d %s: advisor %.0f, executor %.0f", optimizer_name(kind), W, zero,
                  backend_mem_name(cats[i]), category(&e, cats[i]), ex[cats[i]]);
    exec_model_release(&m);
}

static void test_advisor(void)
{
    advisor_case(OPT_ADAMW, 2, 1, PREC_FP32);
    advisor_case(OPT_ADAMW, 3, 2, PREC_FP32);
    advisor_case(OPT_ADAMW, 2, 3, PREC_FP32);
    advisor_case(OPT_ADAMW, 2, 3, PREC_BF16_MIXED);
    advisor_case(OPT_ADAMW, 3, 2, PREC_BF16_MIXED);
    advisor_case(OPT_LION, 4, 3, PREC_FP32);
    advisor_case(OPT_ADAMW8BIT, 2, 1, PREC_FP32);
    advisor_case(OPT_ADAMW8BIT, 3, 3, PREC_FP32);
    /* Halving: ZeRO-1 optimizer and ZeRO-3 weights per rank, against dp 2 without ZeRO. */
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc d = model();
    struct hardware hw;
    cpu_node(&hw);
    struct workload w;
    workload_init(&w);
    w.task = TASK_TRAIN;
    w.seq = SEQ;
    struct strategy s;
    strategy_init(&s);
    s.device = DEVICE_CPU;
    s.precision = PREC_FP32;
    s.micro_batch = 2;
    s.dp = 2;
    struct estimate e0, e1, e3;
    CHECK_OK(advisor_estimate(&d, &hw, &w, &s, NULL, &e0, &err), &err);
    s.zero = 1;
    CHECK_OK(advisor_estimate(&d, &hw, &w, &s, NULL, &e1, &err), &err);
    s.zero = 3;
    CHECK_OK(advisor_estimate(&d, &hw, &w, &s, NULL, &e3, &err), &err);
    CHECK_NEAR(e1.dev.optimizer / e0.dev.optimizer, 0.5, 1e-4);
    /* ZeRO-3: half the weights, plus what the layer-gathered model keeps (the non-layer
     * weights and two layer buffers). */
    struct exec_model mg;
    g_gather_bufs = 2;
    int rc = build(&mg, backend_cpu());
    g_gather_bufs = 0;
    if (rc < 0)
        return;
    double kept = (double)mg.planned.bytes[BACKEND_MEM_WEIGHTS];
    CHECK_NEAR((e3.dev.weights - kept) / e0.dev.weights, 0.5, 1e-3);
    exec_model_release(&mg);
}

/* ---------------------------------------------------------------- trainer and run */

static void test_single_engine(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct comm c;
    struct comm_opts co;
    comm_opts_init(&co);
    co.rank = 0;
    co.world = 1;
    CHECK_OK(comm_init(&c, &co, &err), &err);
    struct exec_train_config tc;
    memset(&tc, 0, sizeof(tc));
    tc.micro_batch = 2;
    tc.grad_accum = 2;
    tc.seq = SEQ;
    tc.lr.lr = 1e-2;
    tc.lr.total_steps = 3;
    tc.grad_clip = 1.0;
    tc.seed = 3;
    struct exec_model m1, m2;
    struct exec_optimizer o1, o2;
    struct exec_trainer t1, t2;
    struct exec_optim_config oc;
    ocfg(&oc, OPT_ADAMW);
    if (build_small(&m1) < 0 || build_small(&m2) < 0)
        return;
    CHECK_OK(exec_optimizer_init(&o1, &m1, &oc, &err), &err);
    CHECK_OK(exec_optimizer_init(&o2, &m2, &oc, &err), &err);
    CHECK_OK(exec_trainer_init(&t1, &m1, &o1, &tc, &g_train, NULL, &err), &err);
    CHECK_OK(exec_trainer_init_dp(&t2, &m2, &o2, &tc, &g_train, NULL, &c, 2, &err), &err);
    CHECK_INT(t2.zero, 0); /* world 1: no sharding whatever the plan says */
    for (int i = 0; i < 3; i++) {
        struct exec_step_stats a, b;
        CHECK_OK(exec_trainer_step(&t1, &a, &err), &err);
        CHECK_OK(exec_trainer_step(&t2, &b, &err), &err);
        CHECK(a.loss == b.loss && a.grad_norm == b.grad_norm && b.comm_s == 0.0);
    }
    CHECK(memcmp(m1.train_params, m2.train_params, m1.n_train * sizeof(float)) == 0);
    exec_trainer_release(&t1);
    exec_trainer_release(&t2);
    /* A sharded optimizer in a one-process run is refused. */
    struct exec_optimizer o3;
    CHECK_OK(exec_optimizer_init_shard(&o3, &m2, &oc, 0, m2.n_train / 2, NULL, &err), &err);
    CHECK_INT(exec_trainer_init_dp(&t2, &m2, &o3, &tc, &g_train, NULL, &c, 1, &err), SW_EINVAL);
    exec_trainer_release(&t2);
    exec_optimizer_release(&o3);
    exec_optimizer_release(&o1);
    exec_optimizer_release(&o2);
    exec_model_release(&m1);
    exec_model_release(&m2);
    c.finalize(&c);
}

/* ---------------------------------------------------------------- an in-process world
 * W ranks as W threads of this process, with collectives over shared buffers (each collective:
 * publish, barrier, compute from every rank's buffer into a private result, barrier, publish
 * the result), so the trainer's DDP and ZeRO paths and the consolidated save run under ASan and
 * the leak checker without MPI. Everything is allocated on the main thread (the backend's
 * counters are not thread-safe); the threads only step and save. */

#define FW_MAX 4

struct fake_world {
    int W;
    pthread_barrier_t bar;
    const void *buf[FW_MAX];
    const float *first_allreduce[FW_MAX]; /* the buffer of each rank's first all-reduce */
};

struct fake_rank {
    struct fake_world *w;
    int rank;
};

static struct fake_world *fw_of(struct comm *c, int *rank)
{
    struct fake_rank *r = c->impl;
    *rank = r->rank;
    return r->w;
}

static int fw_allreduce(struct comm *c, float *buf, size_t n, struct sw_err *err)
{
    (void)err;
    int r;
    struct fake_world *w = fw_of(c, &r);
    w->buf[r] = buf;
    if (!w->first_allreduce[r])
        w->first_allreduce[r] = buf;
    pthread_barrier_wait(&w->bar);
    float *sum = calloc(n ? n : 1, sizeof(float));
    for (int q = 0; q < w->W; q++)
        for (size_t i = 0; i < n; i++)
            sum[i] += ((const float *)w->buf[q])[i];
    pthread_barrier_wait(&w->bar);
    memcpy(buf, sum, n * sizeof(float));
    free(sum);
    return 0;
}

static int fw_reduce_scatter(struct comm *c, const float *send, float *recv, size_t n,
                             struct sw_err *err)
{
    (void)err;
    int r;
    struct fake_world *w = fw_of(c, &r);
    w->buf[r] = send;
    pthread_barrier_wait(&w->bar);
    for (size_t i = 0; i < n; i++) {
        float x = 0.0f;
        for (int q = 0; q < w->W; q++)
            x += ((const float *)w->buf[q])[(size_t)r * n + i];
        recv[i] = x;
    }
    pthread_barrier_wait(&w->bar);
    return 0;
}

/* The root sums every rank's send element by element (all of element i is read before recv[i]
 * is written, so send == recv on the root is safe); the others only publish theirs. */
static int fw_reduce_sum(struct comm *c, const float *send, float *recv, size_t n, int root,
                         struct sw_err *err)
{
    int r;
    struct fake_world *w = fw_of(c, &r);
    if (root < 0 || root >= w->W)
        return sw_errf(err, SW_EINVAL, "reduce root %d is not a rank of a world of %d", root, w->W);
    w->buf[r] = send;
    pthread_barrier_wait(&w->bar);
    for (size_t i = 0; r == root && i < n; i++) {
        float x = 0.0f;
        for (int q = 0; q < w->W; q++)
            x += ((const float *)w->buf[q])[i];
        recv[i] = x;
    }
    pthread_barrier_wait(&w->bar);
    return 0;
}

static int fw_allgather_bytes(struct comm *c, const void *send, void *recv, size_t bytes,
                              struct sw_err *err)
{
    (void)err;
    int r;
    struct fake_world *w = fw_of(c, &r);
    w->buf[r] = send;
    pthread_barrier_wait(&w->bar);
    for (int q = 0; q < w->W; q++)
        memcpy((char *)recv + (size_t)q * bytes, w->buf[q], bytes);
    pthread_barrier_wait(&w->bar);
    return 0;
}

static int fw_allgather(struct comm *c, const float *send, float *recv, size_t n,
                        struct sw_err *err)
{
    return fw_allgather_bytes(c, send, recv, n * sizeof(float), err);
}

static int fw_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct sw_err *err)
{
    (void)err;
    int r;
    struct fake_world *w = fw_of(c, &r);
    w->buf[r] = buf;
    pthread_barrier_wait(&w->bar);
    if (r != root)
        memcpy(buf, w->buf[root], bytes);
    pthread_barrier_wait(&w->bar);
    return 0;
}

static int fw_barrier(struct comm *c, struct sw_err *err)
{
    (void)err;
    int r;
    struct fake_world *w = fw_of(c, &r);
    pthread_barrier_wait(&w->bar);
    return 0;
}

static void fw_finalize(struct comm *c)
{
    (void)c;
}

struct fw_job {
    struct comm comm;
    struct fake_rank fr;
    struct exec_model m;
    struct exec_optimizer o;
    struct exec_trainer t;
    double loss[4];
    int rc;
    struct sw_err err;
    const char *save_path;
};

static void *fw_thread(void *arg)
{
    struct fw_job *j = arg;
    omp_set_num_threads(1);
    for (int k = 0; k < 3 && j->rc == 0; k++) {
        struct exec_step_stats st;
        j->rc = exec_trainer_step(&j->t, &st, &j->err);
        j->loss[k] = st.loss;
    }
    double val = 0;
    if (j->rc == 0)
        j->rc = exec_trainer_eval(&j->t, &val, &j->err);
    j->loss[3] = val;
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    meta.step = j->t.step;
    if (j->rc == 0)
        j->rc = exec_checkpoint_save_dp(j->save_path, &j->m, &j->o, &meta, &j->comm, &j->err);
    return NULL;
}

static void train_cfg(struct exec_train_config *tc, int accum)
{
    memset(tc, 0, sizeof(*tc));
    tc->micro_batch = 2;
    tc->grad_accum = accum;
    tc->seq = SEQ;
    tc->lr.lr = 1e-2;
    tc->lr.total_steps = 3;
    tc->grad_clip = 0.5; /* clipping active: the sharded norm is under test too */
    tc->seed = 5;
    tc->eval_batches = 3;
}

static bool same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    struct sw_err err;
    sw_err_init(&err);
    bool same = sw_read_file(a, (size_t)1 << 26, &x, &nx, &err) == 0 &&
                sw_read_file(b, (size_t)1 << 26, &y, &ny, &err) == 0 && nx == ny &&
                memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

/* DDP schedule of the next world_case: bucket in elements (0: the default) and overlap. */
static size_t g_bucket;
static bool g_overlap = true;

/* One process with grad_accum 4 against W ranks x grad_accum 4/W under `zero`, 3 steps with
 * clipping and an evaluation: losses within 1e-5 relative; the ranks' consolidated checkpoint
 * has the single one's tensors, within 1e-5 for SGD-momentum; with `same_as`, byte-identical
 * to that case's checkpoint. */
static void world_case(int W, int zero, enum sw_optimizer kind, const char *tag,
                       const char *same_as)
{
    struct sw_err err;
    sw_err_init(&err);
    struct exec_optim_config oc;
    ocfg(&oc, kind);
    struct exec_train_config tc;
    /* The reference. */
    struct exec_model m1;
    struct exec_optimizer o1;
    struct exec_trainer t1;
    if (build_small(&m1) < 0)
        return;
    train_cfg(&tc, 4);
    CHECK_OK(exec_optimizer_init(&o1, &m1, &oc, &err), &err);
    CHECK_OK(exec_trainer_init(&t1, &m1, &o1, &tc, &g_train, &g_train, &err), &err);
    double ref[4] = {0};
    for (int k = 0; k < 3; k++) {
        struct exec_step_stats st;
        CHECK_OK(exec_trainer_step(&t1, &st, &err), &err);
        ref[k] = st.loss;
    }
    CHECK_OK(exec_trainer_eval(&t1, &ref[3], &err), &err);
    char ref_path[300], path[300];
    snprintf(ref_path, sizeof(ref_path), "%s/ref_%s.safetensors", g_dir, tag);
    snprintf(path, sizeof(path), "%s/world_%s.safetensors", g_dir, tag);
    struct exec_ckpt_meta meta;
    exec_ckpt_meta_init(&meta);
    meta.step = 3;
    CHECK_OK(exec_checkpoint_save(ref_path, &m1, &o1, &meta, &err), &err);

    /* The ranks. */
    struct fake_world w = {.W = W};
    pthread_barrier_init(&w.bar, NULL, (unsigned)W);
    struct fw_job *j = calloc((size_t)W, sizeof(*j));
    train_cfg(&tc, 4 / W);
    size_t cuts[FW_MAX + 1];
    int ok_init = 1;
    for (int r = 0; r < W; r++) {
        struct comm *c = &j[r].comm;
        j[r].fr = (struct fake_rank){&w, r};
        *c = (struct comm){.engine = COMM_MPI,
                           .engine_name = "test",
                           .rank = r,
                           .world = W,
                           .local_world = W,
                           .n_nodes = 1,
                           .launcher = "test"};
        c->allreduce_sum = fw_allreduce;
        c->reduce_scatter_sum = fw_reduce_scatter;
        c->reduce_sum = fw_reduce_sum;
        c->allgather = fw_allgather;
        c->broadcast = fw_broadcast;
        c->allgather_bytes = fw_allgather_bytes;
        c->barrier = fw_barrier;
        c->finalize = fw_finalize;
        c->impl = &j[r].fr;
        j[r].save_path = path;
        sw_err_init(&j[r].err);
        g_gather_bufs = zero == 3 ? 2 : 0;
        g_shard_grads = zero >= 2;
        int brc = build_small(&j[r].m);
        g_gather_bufs = 0;
        g_shard_grads = false;
        if (brc < 0) {
            ok_init = 0;
            break;
        }
        if (zero > 0) {
            CHECK_OK(exec_optimizer_shard_cuts(&j[r].m, kind, W, cuts, &err), &err);
            CHECK_OK(exec_optimizer_init_shard(&j[r].o, &j[r].m, &oc, cuts[r], cuts[r + 1],
                                               zero == 3 ? backend_cpu() : NULL, &err),
                     &err);
            /* ZeRO-3: the weights again, now that the rank's shard exists to hold them. */
            if (zero == 3)
                exec_model_init_weights(&j[r].m, 11);
        } else {
            CHECK_OK(exec_optimizer_init(&j[r].o, &j[r].m, &oc, &err), &err);
        }
        int rc =
            exec_trainer_init_dp(&j[r].t, &j[r].m, &j[r].o, &tc, &g_train, &g_train, c, zero, &err);
        CHECK_OK(rc, &err);
        ok_init &= rc == 0;
        if (g_bucket)
            j[r].t.bucket = g_bucket;
        j[r].t.ddp_overlap = g_overlap;
    }
    if (ok_init) {
        pthread_t th[FW_MAX];
        for (int r = 0; r < W; r++)
            pthread_create(&th[r], NULL, fw_thread, &j[r]);
        for (int r = 0; r < W; r++)
            pthread_join(th[r], NULL);
        for (int r = 0; r < W; r++)
            CHECK_OK(j[r].rc, &j[r].err);
        double worst = 0;
        for (int k = 0; k < 4; k++)
            for (int r = 0; r < W; r++)
                worst = fmax(worst, fabs(j[r].loss[k] - ref[k]) / fabs(ref[k]));
        CHECK_MSG(worst <= 1e-5, "%s: losses differ from one process by %.3g (relative)", tag,
                  worst);
        /* The consolidated checkpoint against the single one, tensor by tensor. */
        struct sft_file *fa = NULL, *fb = NULL;
        CHECK_OK(sft_open(ref_path, &fa, &err), &err);
        CHECK_OK(sft_open(path, &fb, &err), &err);
        double dmax = 0;
        size_t n_bad = 0;
        for (size_t i = 0; fa && fb && i < sft_count(fa); i++) {
            const struct sft_tensor *ta = sft_at(fa, i), *tb = sft_find(fb, ta->name);
            if (!tb || tb->n_elems != ta->n_elems || tb->dtype != ta->dtype) {
                n_bad++;
                continue;
            }
            size_t nb = (size_t)sft_tensor_bytes(ta);
            unsigned char *xa = malloc(nb ? nb : 1), *xb = malloc(nb ? nb : 1);
            CHECK_OK(sft_read_raw(fa, ta, xa, nb, &err), &err);
            CHECK_OK(sft_read_raw(fb, tb, xb, nb, &err), &err);
            if (ta->dtype == SFT_F32) {
                for (size_t e = 0; e < ta->n_elems; e++)
                    dmax = fmax(dmax, fabs((double)((float *)xa)[e] - ((float *)xb)[e]));
            } else if (memcmp(xa, xb, nb) != 0 && kind != OPT_ADAMW8BIT) {
                n_bad++;
            }
            free(xa);
            free(xb);
        }
        /* SGD-momentum: the tolerance; Adam kinds: only the layout (bytes are compared
         * between strategies below). */
        double tol = kind == OPT_SGD_MOMENTUM ? 1e-5 : INFINITY;
        CHECK_MSG(n_bad == 0 && dmax <= tol && sft_count(fa) == sft_count(fb),
                  "%s: consolidated checkpoint: %zu tensors differ in kind, max |diff| %.3g", tag,
                  n_bad, dmax);
        if (same_as) {
            char other[300];
            snprintf(other, sizeof(other), "%s/world_%s.safetensors", g_dir, same_as);
            CHECK_MSG(same_file(path, other), "%s and %s checkpoints differ", tag, same_as);
        }
        /* DDP: with overlap and several buckets the first all-reduce is the last bucket, sent
         * during the backward; without overlap, the first bucket after it. */
        if (zero == 0 && g_bucket && g_bucket < j[0].m.n_train)
            for (int r = 0; r < W; r++)
                CHECK_MSG((w.first_allreduce[r] == j[r].m.train_grads) == !g_overlap,
                          "%s: rank %d's first all-reduce is at element %td", tag, r,
                          w.first_allreduce[r] - j[r].m.train_grads);
        printf("      %-22s %d ranks: losses within %.2g, checkpoint max |diff| %.2g\n", tag, W,
               worst, dmax);
        sft_close(fa);
        sft_close(fb);
    }
    for (int r = 0; r < W; r++) {
        exec_trainer_release(&j[r].t);
        exec_optimizer_release(&j[r].o);
        exec_model_release(&j[r].m);
    }
    free(j);
    pthread_barrier_destroy(&w.bar);
    exec_trainer_release(&t1);
    exec_optimizer_release(&o1);
    exec_model_release(&m1);
}

static void test_world(void)
{
    /* Against one process (SGD-momentum: linear in the gradients, so the order of float sums
     * shows as ~1e-7, where Adam's m/sqrt(v) and Lion's sign amplify it for tiny gradients). */
    world_case(2, 0, OPT_SGD_MOMENTUM, "ddp sgd-momentum", NULL);
    world_case(4, 3, OPT_SGD_MOMENTUM, "zero3 sgd-momentum", NULL);
    /* Where the sums are the same, sharding changes nothing: DDP = ZeRO-1 and ZeRO-2 = ZeRO-3
     * bit for bit, for AdamW and 8-bit AdamW. */
    world_case(2, 0, OPT_ADAMW, "ddp adamw", NULL);
    world_case(2, 1, OPT_ADAMW, "zero1 adamw", "ddp adamw");
    world_case(2, 2, OPT_ADAMW, "zero2 adamw", NULL);
    world_case(2, 3, OPT_ADAMW, "zero3 adamw", "zero2 adamw");
    world_case(2, 0, OPT_ADAMW8BIT, "ddp adamw8bit", NULL);
    world_case(2, 1, OPT_ADAMW8BIT, "zero1 adamw8bit", "ddp adamw8bit");
    /* DDP overlapped with backward, in buckets of 1000 elements (the model has ~15k), against
     * the same buckets after the backward and the default one-bucket run: bit for bit. */
    g_bucket = 1000;
    g_overlap = false;
    world_case(2, 0, OPT_ADAMW, "ddp after backward", "ddp adamw");
    g_overlap = true;
    world_case(2, 0, OPT_ADAMW, "ddp overlapped", "ddp after backward");
    world_case(4, 0, OPT_SGD_MOMENTUM, "ddp overlapped w4", NULL);
    g_overlap = false;
    world_case(4, 0, OPT_SGD_MOMENTUM, "ddp after w4", "ddp overlapped w4");
    g_bucket = 0;
    g_overlap = true;
}

/* ---------------------------------------------------------------- gradient-ready hook */

struct hook_log {
    const struct exec_model *m;
    size_t from[16];
    float *snap[16]; /* train_grads[from, n_train) when reported */
    int n;
    int fail_at; /* return SW_EIO at this call (-1: never) */
};

static int log_ready(void *ctx, size_t ready_from, struct sw_err *err)
{
    struct hook_log *h = ctx;
    if (h->n == h->fail_at)
        return sw_errf(err, SW_EIO, "hook failed on purpose");
    SW_ASSERT(h->n < 16 && ready_from <= h->m->n_train);
    size_t k = h->m->n_train - ready_from;
    h->from[h->n] = ready_from;
    h->snap[h->n] = malloc((k ? k : 1) * sizeof(float));
    memcpy(h->snap[h->n], h->m->train_grads + ready_from, k * sizeof(float));
    h->n++;
    return 0;
}

/* L + 1 calls with decreasing starts ending at 0; what each call reported final is
 * what the gradients are at the end; the same gradients as a backward without the hook. */
static void hook_case(int lora_rank, const char *tag)
{
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc d = small_model();
    d.n_layers = 3;
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = 2;
    o.seq = SEQ;
    o.lora_rank = lora_rank;
    o.lora_targets = lora_rank ? EXEC_LORA_ALL : 0;
    struct exec_model a, b;
    if (exec_model_init(&a, &d, &o, backend_cpu(), &err) < 0 ||
        exec_model_init(&b, &d, &o, backend_cpu(), &err) < 0) {
        CHECK_OK(-1, &err);
        return;
    }
    exec_model_init_weights(&a, 7);
    exec_model_init_weights(&b, 7);
    if (lora_rank) /* B = 0 at init: give the adapters a value so every gradient is non-zero */
        for (size_t i = 0; i < a.n_train; i++)
            a.train_params[i] = b.train_params[i] = 0.01f * (float)((i * 37) % 11) - 0.05f;
    exec_model_weights_changed(&a);
    exec_model_weights_changed(&b);
    int tok[2 * SEQ], tgt[2 * SEQ];
    for (int i = 0; i < 2 * SEQ; i++) {
        tok[i] = (i * 5 + 3) % 128;
        tgt[i] = (i * 11 + 1) % 128;
    }
    struct hook_log h = {.m = &a, .fail_at = -1};
    exec_model_zero_grad(&a);
    exec_model_zero_grad(&b);
    /* Two backwards accumulate; the hook sees the second. */
    for (int pass = 0; pass < 2; pass++) {
        CHECK_OK(exec_model_forward(&a, tok, tgt, 2, SEQ, NULL, &err), &err);
        CHECK_OK(exec_model_forward(&b, tok, tgt, 2, SEQ, NULL, &err), &err);
        exec_model_set_grad_ready(&a, pass == 1 ? log_ready : NULL, &h);
        CHECK_OK(exec_model_backward(&a, 0.5f, &err), &err);
        CHECK_OK(exec_model_backward(&b, 0.5f, &err), &err);
    }
    exec_model_set_grad_ready(&a, NULL, NULL);
    CHECK_INT(h.n, d.n_layers + 1);
    CHECK(h.n > 0 && h.from[h.n - 1] == 0);
    /* Strictly decreasing over the layers; the embedding's call may repeat 0 (LoRA: layer 0's
     * adapters start the region). */
    for (int i = 1; i < h.n; i++)
        CHECK_MSG(i == h.n - 1 ? h.from[i] <= h.from[i - 1] : h.from[i] < h.from[i - 1],
                  "%s: call %d starts at %zu after %zu", tag, i, h.from[i], h.from[i - 1]);
    for (int i = 0; i < h.n; i++) {
        size_t k = a.n_train - h.from[i];
        CHECK_MSG(memcmp(h.snap[i], a.train_grads + h.from[i], k * sizeof(float)) == 0,
                  "%s: gradients reported final after call %d changed later", tag, i);
        free(h.snap[i]);
    }
    CHECK_MSG(memcmp(a.train_grads, b.train_grads, a.n_train * sizeof(float)) == 0,
              "%s: gradients with the hook differ from without", tag);
    /* The first suffix is a real part of the region: the last layer and what follows it. */
    CHECK(h.from[0] > 0 && h.from[0] < a.n_train);
    /* A failing hook stops the backward with its error. */
    struct hook_log f = {.m = &a, .fail_at = 1};
    CHECK_OK(exec_model_forward(&a, tok, tgt, 2, SEQ, NULL, &err), &err);
    exec_model_set_grad_ready(&a, log_ready, &f);
    CHECK_INT(exec_model_backward(&a, 1.0f, &err), SW_EIO);
    CHECK(strstr(err.msg, "on purpose") != NULL);
    for (int i = 0; i < f.n; i++)
        free(f.snap[i]);
    exec_model_release(&a);
    exec_model_release(&b);
}

static void test_grad_hook(void)
{
    hook_case(0, "full");
    hook_case(2, "lora");
}

/* ---------------------------------------------------------------- layer gather */

/* A layer hook that copies from a full region and counts its calls. */
struct gather_log {
    const float *region;
    int calls;
    int fail_at; /* the call that fails (0: none) */
};

static int gather_from(void *ctx, int layer, float *dst, size_t off, size_t n, struct sw_err *err)
{
    struct gather_log *g = ctx;
    (void)layer;
    if (++g->calls == g->fail_at)
        return sw_errf(err, SW_EIO, "gather failed on purpose");
    memcpy(dst, g->region + off, n * sizeof(float));
    return 0;
}

/* ZeRO-3's model in one process: a 4-layer model whose layers are gathered (from a whole-region
 * "shard") into two buffers gives bitwise the loss and gradients of the resident model, under
 * full recompute; init writes the same values into the shard; a layer is gathered only when its
 * buffer holds another one; a failing hook stops the forward. */
static void test_layer_gather(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc d = small_model();
    d.n_layers = 4;
    struct exec_model a, b;
    if (build_desc(&a, backend_cpu(), d) < 0)
        return;
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = 2;
    o.seq = SEQ;
    o.recompute = RECOMPUTE_FULL;
    o.layer_gather_bufs = 2;
    int rc = exec_model_init(&b, &d, &o, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc < 0) {
        exec_model_release(&a);
        return;
    }
    CHECK(b.train_params == NULL && b.n_train == a.n_train);
    /* Two layer buffers and the rest: less than the resident model's weights. */
    CHECK_INT((long long)b.planned.bytes[BACKEND_MEM_WEIGHTS],
              (long long)(a.planned.bytes[BACKEND_MEM_WEIGHTS] - 2 * 4 * b.layer_n));
    float *shard = calloc(b.n_train, sizeof(float));
    exec_model_set_weight_shard(&b, shard, 0, b.n_train);
    exec_model_init_weights(&b, 11);
    CHECK(memcmp(shard, a.train_params, a.n_train * sizeof(float)) == 0);
    struct gather_log g = {.region = shard};
    int tok[2 * SEQ], tgt[2 * SEQ];
    for (int i = 0; i < 2 * SEQ; i++) {
        tok[i] = (i * 7 + 3) % 128;
        tgt[i] = (i * 5 + 1) % 128;
    }
    CHECK_INT(exec_model_forward(&b, tok, tgt, 2, SEQ, NULL, &err), SW_EINVAL); /* no hook */
    exec_model_set_layer_hook(&b, gather_from, &g);
    float la = 0, lb = 0;
    CHECK_OK(exec_model_forward(&a, tok, tgt, 2, SEQ, &la, &err), &err);
    CHECK_OK(exec_model_backward(&a, 1.0f, &err), &err);
    CHECK_OK(exec_model_forward(&b, tok, tgt, 2, SEQ, &lb, &err), &err);
    CHECK_INT(g.calls, 4);
    CHECK_OK(exec_model_backward(&b, 1.0f, &err), &err);
    CHECK_INT(g.calls, 6); /* layers 3 and 2 were still in their buffers */
    CHECK(la == lb);
    CHECK(memcmp(a.train_grads, b.train_grads, a.n_train * sizeof(float)) == 0);
    /* Changed weights: every layer again. A failing gather stops the forward. */
    exec_model_weights_changed(&b);
    g.fail_at = 8;
    CHECK_INT(exec_model_forward(&b, tok, tgt, 2, SEQ, NULL, &err), SW_EIO);
    CHECK(strstr(err.msg, "on purpose") != NULL);
    /* A checkpoint of it is refused outside a data-parallel save. */
    CHECK_INT(exec_checkpoint_save("/nonexistent/x.safetensors", &b, NULL, NULL, &err),
              SW_EINVAL);
    exec_model_set_weight_shard(&b, NULL, 0, 0);
    free(shard);
    exec_model_release(&a);
    exec_model_release(&b);
}

/* ---------------------------------------------------------------- launch section */

static const char *const launch_plan_yaml =
    "scalewise_plan: 1\n"
    "task: train\n"
    "hardware: {profile: h100-sxm, nodes: 2, gpus_per_node: 8}\n"
    "model: {profile: gpt2-124m}\n"
    "train: {steps: 10, seq: 1024, global_batch: 64}\n"
    "strategy: {device: cuda, micro_batch: 2, grad_accum: 2, dp: 16}\n";

static void test_launch(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct plan *p = calloc(1, sizeof(*p)), *q = calloc(1, sizeof(*q));
    struct plan_launch l;
    /* GPU: 16 ranks on 2 nodes of 8. */
    CHECK_OK(plan_load_string(launch_plan_yaml, strlen(launch_plan_yaml), "x.yaml", p, &err), &err);
    CHECK(!p->launch.present);
    plan_launch_build(&p->strategy, &p->hardware, "runs/my plan.yaml", &l);
    CHECK(l.present && l.processes == 16 && l.nodes == 2 && l.per_node == 8);
    CHECK_STR(l.mpirun, "mpirun -np 16 -H <host1>:8,<host2>:8 scalewise run 'runs/my plan.yaml'");
    CHECK(strstr(l.srun, "srun --mpi=pmix --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 ") &&
          strstr(l.srun, "MASTER_ADDR=") && strstr(l.srun, "MASTER_PORT=29500"));
    CHECK_STR(l.torchrun, "torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d "
                          "--rdzv-endpoint=<host1>:29500 --no-python scalewise run "
                          "'runs/my plan.yaml'");
    CHECK(l.nproc[0] == '\0');
    /* 12 ranks on nodes of 8: an uneven last node. */
    p->strategy.dp = 12;
    plan_launch_build(&p->strategy, &p->hardware, "p.yaml", &l);
    CHECK(strstr(l.mpirun, "-H <host1>:8,<host2>:4 ") && strstr(l.srun, "--ntasks=12") &&
          !l.torchrun[0]);
    /* One process: nothing to launch. */
    p->strategy.dp = 1;
    plan_launch_build(&p->strategy, &p->hardware, "p.yaml", &l);
    CHECK(!l.present);
    /* CPU: --nproc and mpirun without core binding; no torchrun (CPU bytes move through MPI). */
    struct strategy cs = p->strategy;
    struct hardware hw1 = p->hardware;
    cs.device = DEVICE_CPU;
    cs.dp = 2;
    hw1.nodes = 1;
    plan_launch_build(&cs, &hw1, "plan.yaml", &l);
    CHECK_STR(l.nproc, "scalewise run --nproc 2 plan.yaml");
    CHECK_STR(l.mpirun, "mpirun -np 2 --bind-to none scalewise run plan.yaml");
    CHECK(!l.torchrun[0] && l.nodes == 1 && l.per_node == 2);

    /* plan_save of a plan with an estimate writes the section; save -> load -> save is
     * byte-identical; an edited command survives. */
    p->strategy.dp = 16;
    p->has_estimate = true;
    p->estimate.valid = true;
    char path[300], path2[300];
    snprintf(path, sizeof(path), "%s/launch.yaml", g_dir);
    snprintf(path2, sizeof(path2), "%s/launch2.yaml", g_dir);
    CHECK_OK(plan_save(path, p, &err), &err);
    CHECK_OK(plan_load(path, q, &err), &err);
    CHECK(q->launch.present && q->launch.processes == 16);
    CHECK(strstr(q->launch.mpirun, path) != NULL);
    CHECK_OK(plan_save(path2, q, &err), &err);
    CHECK(same_file(path, path2));
    sw_strlcpy(q->launch.mpirun, "mpirun -np 16 -H gpu01:8,gpu02:8 scalewise run \"x\": y",
               sizeof(q->launch.mpirun));
    CHECK_OK(plan_save(path, q, &err), &err);
    CHECK_OK(plan_load(path, p, &err), &err);
    CHECK_STR(p->launch.mpirun, q->launch.mpirun);
    CHECK_OK(plan_save(path2, p, &err), &err);
    CHECK(same_file(path, path2));
    /* Without an estimate (a hand-written plan) plan_save adds nothing. */
    CHECK_OK(plan_load_string(launch_plan_yaml, strlen(launch_plan_yaml), "x.yaml", p, &err), &err);
    struct sw_buf b;
    sw_buf_init(&b, 1 << 20);
    CHECK_OK(plan_to_yaml(p, &b, &err), &err);
    CHECK(b.data && !strstr(b.data, "launch:"));
    sw_buf_release(&b);

    /* Unknown keys and wrong types are errors with a place. */
    char bad[1024];
    snprintf(bad, sizeof(bad), "%slaunch: {processes: 16, mpiurn: x}\n", launch_plan_yaml);
    CHECK_INT(plan_load_string(bad, strlen(bad), "bad.yaml", p, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "mpiurn") && strstr(err.msg, "mpirun") && err.line == 7);
    snprintf(bad, sizeof(bad), "%slaunch: {processes: many}\n", launch_plan_yaml);
    CHECK(plan_load_string(bad, strlen(bad), "bad.yaml", p, &err) < 0 && err.line == 7);
    snprintf(bad, sizeof(bad), "%slaunch: [mpirun]\n", launch_plan_yaml);
    CHECK(plan_load_string(bad, strlen(bad), "bad.yaml", p, &err) < 0);
    free(p);
    free(q);
}

static void test_plan_rules(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct plan *p = calloc(1, sizeof(*p));
    plan_init(p);
    p->model = model();
    p->workload.task = TASK_TRAIN;
    p->workload.seq = SEQ;
    p->strategy.device = DEVICE_CPU;
    p->strategy.precision = PREC_FP32;
    p->strategy.micro_batch = 2;
    /* The same global batch split over ranks or accumulation: one hash (resume N -> M). */
    struct exec_ckpt_meta a, b, c;
    p->strategy.grad_accum = 4;
    exec_plan_numerics(p, &a);
    p->strategy.grad_accum = 2;
    p->strategy.dp = 2;
    p->strategy.zero = 1;
    exec_plan_numerics(p, &b);
    CHECK_STR(a.plan_hash, b.plan_hash);
    p->strategy.grad_accum = 1;
    exec_plan_numerics(p, &c);
    CHECK(strcmp(c.plan_hash, b.plan_hash) != 0);
    /* Refusals. */
    p->strategy.optimizer = OPT_ADAMW;
    CHECK_OK(exec_run_check(p, &err), &err);
    p->strategy.optimizer = OPT_ADAFACTOR;
    CHECK_INT(exec_run_check(p, &err), SW_EUNSUPPORTED);
    CHECK(strstr(err.msg, "adafactor") != NULL);
    p->strategy.optimizer = OPT_ADAMW;
    p->strategy.zero = 3;
    p->strategy.lora_rank = 4;
    CHECK_INT(exec_run_check(p, &err), SW_EUNSUPPORTED);
    p->strategy.lora_rank = 0;
    p->strategy.dp = 1;
    CHECK_INT(exec_run_check(p, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "dp >= 2") != NULL);
    /* A dp 2 plan run by one process: refused before anything is built. */
    p->strategy.zero = 0;
    p->strategy.dp = 2;
    struct exec_run_opts ro;
    exec_run_opts_init(&ro);
    struct exec_run_result r;
    CHECK_INT(exec_run_train(p, &ro, &r, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "--nproc 2") != NULL);
    free(p);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/sw_test_dp_%d", (int)getpid());
    mkdir(g_dir, 0777);
    uint32_t *ids = malloc(N_TOK * sizeof(uint32_t));
    for (int i = 0; i < N_TOK; i++)
        ids[i] = (uint32_t)((i * 7 + i / 13) % 128); /* both models' vocabularies hold it */
    char p1[300];
    snprintf(p1, sizeof(p1), "%s/train.bin", g_dir);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(shard_write(p1, ids, N_TOK, 128, TOK_GPT2, &err), &err);
    free(ids);
    shard_init(&g_train);
    CHECK_OK(shard_load(p1, &g_train, &err), &err);

    RUN(test_cut_rule);
    RUN(test_shard_cuts);
    RUN(test_sharded_updates);
    RUN(test_shard_file);
    RUN(test_advisor);
    RUN(test_single_engine);
    RUN(test_world);
    RUN(test_grad_hook);
    RUN(test_layer_gather);
    RUN(test_launch);
    RUN(test_plan_rules);

    shard_release(&g_train);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return harness_finish("test_dp");
}
