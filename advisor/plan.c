/* Plan files (docs/plan-format.md): the defaults of a plan, loading a `scalewise_plan: 1` YAML
 * document with the ydoc helpers (every error at file:line:column, unknown keys with "did you
 * mean"), resolving what it names (hardware profile, saved report or the probe; model profile,
 * config.json or inline sizes), checking the combinations of section 10 of the strategy
 * reference before handing the plan to advisor_check, and writing it back deterministically
 * with sw_emit so that save -> load -> save is byte-identical. The estimate section is written by
 * estimate_emit (estimate.c) and only read back loosely here; the formulas live in memory.c and
 * speed.c, the profile search in profiles.c. */
#include "advisor/advisor.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "advisor/advisor_int.h"

/* A plan larger than this is not a plan. */
#define PLAN_FILE_MAX_BYTES (1u << 20)
/* The emitted text of one plan: far above the largest plan (an estimate with 40 reasons). */
#define PLAN_TEXT_MAX_BYTES (4u << 20)

/* Range limits. The model limits mirror model.c's (sizes far above any published model, small
 * enough that the parameter-count products stay inside int64). */
#define LIM_LAYERS 4096
#define LIM_HIDDEN (1 << 20)
#define LIM_HEADS 16384
#define LIM_HEAD_DIM 16384
#define LIM_FFN (1 << 22)
#define LIM_VOCAB (1 << 24)
#define LIM_POS (1 << 27)
#define LIM_ROPE_THETA 1e12
#define LIM_NORM_EPS_MIN 1e-12
#define LIM_NORM_EPS_MAX 0.1
#define LIM_STEPS 1000000000000LL        /* 1e12 optimizer steps */
#define LIM_TOKENS 1000000000000000000LL /* 1e18 tokens */
#define LIM_GLOBAL_BATCH (1LL << 40)     /* sequences */
#define LIM_BATCH (1 << 20)
#define LIM_DEGREE 1024 /* tp */
#define LIM_DP (1 << 20)
#define LIM_PP 4096
#define LIM_NODES 65536
#define LIM_THREADS 65536
#define LIM_LORA_RANK 65536
#define LIM_TOP_K (1 << 24)

/* The keys of each section, in the order they are written. */
/* clang-format off */
static const char *const top_keys[] = {
    "scalewise_plan", "name", "task", "hardware", "model", "data", "train", "infer", "strategy",
    "launch", "estimate", NULL};
static const char *const hw_keys[] = {"profile", "file", "probe", "nodes", "gpus_per_node", NULL};
static const char *const model_keys[] = {
    "profile", "config_json", "name", "arch", "layers", "hidden", "heads", "kv_heads", "head_dim",
    "ffn", "vocab", "max_pos", "tied_head", "bias", "norm", "activation", "sliding_window",
    "rope_theta", "norm_eps", "dtype", NULL};
static const char *const data_keys[] = {"path", "tokenizer", "vocab", "merges", "val_fraction",
                                        NULL};
static const char *const train_keys[] = {
    "steps", "seq", "global_batch", "tokens", "lr", "min_lr", "schedule", "warmup_steps",
    "weight_decay", "grad_clip", "beta1", "beta2", "eps", "seed", "eval_every", "eval_batches",
    "checkpoint_every", "out_dir", "resume", "lora_targets", "log_every", "loss_scale",
    "loss_scale_init", "loss_scale_window", NULL};
static const char *const infer_keys[] = {
    "checkpoint", "prompt", "batch", "prompt_len", "gen_len", "temperature", "top_k", "top_p",
    "seed", NULL};
static const char *const strategy_keys[] = {
    "device", "precision", "optimizer", "micro_batch", "grad_accum", "recompute", "attention",
    "dp", "tp", "pp", "pp_interleave", "zero", "sequence_parallel", "offload_optimizer",
    "offload_params", "lora_rank", "weights", "kv_dtype", "threads", NULL};
static const char *const launch_keys[] = {
    "processes", "nodes", "per_node", "mpirun", "srun", "torchrun", "nproc", NULL};
/* clang-format on */

static const char *const arch_words[] = {"gpt2", "llama", NULL};
static const char *const norm_words[] = {"layernorm", "rmsnorm", NULL};
static const char *const act_words[] = {"gelu", "swiglu", NULL};
/* Checkpoint dtype of a model (as in model profiles): bytes per stored parameter. */
static const char *const mdtype_words[] = {"fp32", "bf16", "fp16", NULL};
static const int mdtype_bytes[] = {4, 2, 2};
static const char *const tokenizer_words[] = {"byte", "gpt2", NULL};
/* The linear layers a LoRA adapter can sit on (strategy reference 3.4). */
static const char *const lora_target_words[] = {"qkv", "o", "mlp", "all", NULL};

/* ------------------------------------------------------------------ defaults */

void plan_init(struct plan *p)
{
    memset(p, 0, sizeof(*p));
    p->version = PLAN_VERSION;
    p->hw_ref.nodes = 0;          /* 0: as the hardware says */
    p->hw_ref.gpus_per_node = -1; /* -1: as the hardware says */
    hw_init(&p->hardware);
    strategy_init(&p->strategy);
    workload_init(&p->workload);
    estimate_init(&p->estimate);

    sw_strlcpy(p->data.tokenizer, "byte", sizeof(p->data.tokenizer));
    p->data.val_fraction = 0.1;

    struct plan_train *t = &p->train;
    t->steps = 100;
    t->lr = 3e-4;
    t->min_lr = 3e-5; /* lr/10 (nanoGPT's cosine floor); a loaded plan recomputes it from lr */
    t->schedule = LR_COSINE;
    t->warmup_steps = 10;
    t->weight_decay = 0.1;
    t->grad_clip = 1.0;
    t->beta1 = 0.9;
    t->beta2 = 0.95;
    t->eps = 1e-8;
    t->seed = 1337;
    t->eval_every = 0;
    t->eval_batches = 8;
    t->checkpoint_every = 0;
    sw_strlcpy(t->out_dir, "runs/plan", sizeof(t->out_dir));
    t->log_every = 1;
    /* Every linear layer: what the advisor's LoRA estimate assumes (strategy reference 3.4). */
    sw_strlcpy(t->lora_targets, "all", sizeof(t->lora_targets));
    /* PyTorch's GradScaler defaults: 2^16, doubled every 2000 finite steps. */
    t->loss_scale = 0;
    t->loss_scale_init = 65536;
    t->loss_scale_window = 2000;

    p->infer.temperature = 1.0;
    p->infer.top_k = 0;
    p->infer.top_p = 1.0;
    p->infer.seed = 1337;
}

/* ------------------------------------------------------------------ small helpers */

/* Relative `path` against directory `base` ("" = the working directory). */
static int join_path(const char *base, const char *path, char *out, size_t n, struct sw_err *err)
{
    int len;
    if (path[0] == '/' || !base[0])
        len = snprintf(out, n, "%s", path);
    else
        len = snprintf(out, n, "%s/%s", base, path);
    if (len < 0 || (size_t)len >= n)
        return sw_errf(err, SW_ERANGE, "path '%s' is too long", path);
    return 0;
}

/* The directory of `file` ("dir/plan.yaml" -> "dir"; "plan.yaml" -> ""). */
static void dir_of(const char *file, char *out, size_t n)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (!slash) {
        out[0] = '\0';
        return;
    }
    size_t len = (size_t)(slash - file);
    if (len == 0)
        len = 1; /* "/plan.yaml" -> "/" */
    if (len >= n)
        len = n - 1;
    memcpy(out, file, len);
    out[len] = '\0';
}

static bool gpu_has_bf16(const struct hw_gpu *g)
{
    if (g->known & HW_GPU_CC)
        return g->cc_major >= 8; /* strategy reference 10: bf16 needs CC >= 8.0 */
    return g->peak_flops[HW_DT_BF16] > 0;
}

/* Index of the first GPU of the node without bf16, or -1 when all have it. */
static int first_gpu_without_bf16(const struct hardware *hw)
{
    for (int i = 0; i < hw->n_gpus && i < HW_MAX_GPUS; i++)
        if (!gpu_has_bf16(&hw->gpus[i]))
            return i;
    return -1;
}

static bool wformat_is_int(enum sw_wformat w)
{
    return w == WFMT_INT8 || w == WFMT_INT4;
}

/* ------------------------------------------------------------------ combination checks */

/* Say which plan key a rule concerns ("strategy.tp") so the loader can put the error there. */
static int fail_at(const char **culprit, const char *key, struct sw_err *err, int code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(const char **culprit, const char *key, struct sw_err *err, int code,
                   const char *fmt, ...)
{
    char msg[SW_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *culprit = key;
    return sw_errf(err, code, "%s", msg);
}

static int check_lora_targets(const char *list, const char **culprit, struct sw_err *err)
{
    char buf[sizeof(((struct plan_train *)0)->lora_targets)];
    sw_strlcpy(buf, list, sizeof(buf));
    if (!buf[0])
        return fail_at(culprit, "train.lora_targets", err, SW_EINVAL,
                       "'train.lora_targets' is empty; expected a comma-separated list of: qkv, "
                       "o, mlp, all");
    char *s = buf;
    while (s) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        bool ok = false;
        for (int i = 0; lora_target_words[i]; i++)
            ok = ok || !strcmp(s, lora_target_words[i]);
        if (!ok) {
            const char *near = sw_suggest(s, lora_target_words);
            return fail_at(culprit, "train.lora_targets", err, SW_EINVAL,
                           "'train.lora_targets': unknown target '%s'%s%s%s; expected a "
                           "comma-separated list of: qkv, o, mlp, all",
                           s, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
        }
        s = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* The rules of strategy reference sections 10 and 12 that a plan file can break, each naming the
 * key at fault in *culprit. advisor_check runs after these (plan_validate). */
static int plan_check(const struct plan *p, const char **culprit, struct sw_err *err)
{
    const struct strategy *s = &p->strategy;
    const struct workload *w = &p->workload;
    const struct model_desc *m = &p->model;
    const struct hardware *hw = &p->hardware;
    bool train = w->task == TASK_TRAIN;
    *culprit = NULL;

    if (p->version != PLAN_VERSION)
        return fail_at(culprit, "scalewise_plan", err, SW_EINVAL,
                       "unsupported plan version %d; this scalewise reads version %d", p->version,
                       PLAN_VERSION);
    if (hw->nodes < 1)
        return fail_at(culprit, "hardware.nodes", err, SW_EINVAL,
                       "'hardware.nodes' must be at least 1");

    /* Device and numerics (section 10, first rows). */
    if (s->device == DEVICE_CUDA && hw->n_gpus == 0)
        return fail_at(culprit, "strategy.device", err, SW_EINVAL,
                       "device 'cuda' needs a GPU, but the hardware '%s' has none; expected "
                       "device: cpu",
                       hw->name);
    if (s->device == DEVICE_CPU) {
        if (s->precision == PREC_TF32)
            return fail_at(culprit, "strategy.precision", err, SW_EINVAL,
                           "precision '%s' needs an NVIDIA GPU; on the CPU expected fp32, "
                           "bf16-mixed, fp16-mixed (emulated) or bf16",
                           precision_name(s->precision));
    } else {
        int bad = first_gpu_without_bf16(hw);
        bool needs_cc8 = s->precision == PREC_BF16_MIXED || s->precision == PREC_BF16 ||
                         s->precision == PREC_TF32;
        if (bad >= 0 && needs_cc8)
            return fail_at(culprit, "strategy.precision", err, SW_EINVAL,
                           "precision '%s' needs a GPU with %s (compute capability 8.0 or "
                           "newer); '%s' has %d.%d: expected fp16-mixed or fp32",
                           precision_name(s->precision),
                           s->precision == PREC_TF32 ? "tf32" : "bf16", hw->gpus[bad].name,
                           hw->gpus[bad].cc_major, hw->gpus[bad].cc_minor);
        bool weights_used = !train || s->lora_rank > 0;
        if (bad >= 0 && weights_used && s->weights == WFMT_BF16)
            return fail_at(culprit, "strategy.weights", err, SW_EINVAL,
                           "weights 'bf16' need a GPU with bf16 (compute capability 8.0 or "
                           "newer); '%s' has %d.%d: expected fp16",
                           hw->gpus[bad].name, hw->gpus[bad].cc_major, hw->gpus[bad].cc_minor);
        if (bad >= 0 && !train && s->kv_dtype == WFMT_BF16)
            return fail_at(culprit, "strategy.kv_dtype", err, SW_EINVAL,
                           "kv_dtype 'bf16' needs a GPU with bf16 (compute capability 8.0 or "
                           "newer); '%s' has %d.%d: expected fp16",
                           hw->gpus[bad].name, hw->gpus[bad].cc_major, hw->gpus[bad].cc_minor);
    }

    /* Tensor parallelism (section 10 and 12): a divides by t, g divides by t or t is a multiple
     * of g (KV heads replicated), f divides by t; TP stays inside a node. */
    if (s->tp > 1) {
        if (m->n_heads % s->tp != 0)
            return fail_at(culprit, "strategy.tp", err, SW_EINVAL,
                           "tp %d must divide the model's heads (%d); expected one of the "
                           "divisors of %d",
                           s->tp, m->n_heads, m->n_heads);
        if (m->n_kv_heads % s->tp != 0 && s->tp % m->n_kv_heads != 0)
            return fail_at(culprit, "strategy.tp", err, SW_EINVAL,
                           "tp %d must divide the model's kv_heads (%d) or be a multiple of it",
                           s->tp, m->n_kv_heads);
        if (m->ffn % s->tp != 0)
            return fail_at(culprit, "strategy.tp", err, SW_EINVAL,
                           "tp %d must divide the model's ffn (%d)", s->tp, m->ffn);
        if (s->device == DEVICE_CUDA && s->tp > hw->n_gpus)
            return fail_at(culprit, "strategy.tp", err, SW_EINVAL,
                           "tp %d exceeds the %d GPUs of one node; tensor parallelism stays "
                           "inside a node",
                           s->tp, hw->n_gpus);
    }
    if (s->sequence_parallel && s->tp < 2)
        return fail_at(culprit, "strategy.sequence_parallel", err, SW_EINVAL,
                       "sequence_parallel needs tensor parallelism (tp >= 2), but tp is %d", s->tp);
    if (s->pp > m->n_layers)
        return fail_at(culprit, "strategy.pp", err, SW_EINVAL,
                       "pp %d exceeds the model's %d layers", s->pp, m->n_layers);
    if (s->pp_interleave > 1) {
        if (s->pp < 2)
            return fail_at(culprit, "strategy.pp_interleave", err, SW_EINVAL,
                           "pp_interleave %d needs pipeline parallelism (pp >= 2)",
                           s->pp_interleave);
        if (m->n_layers % (s->pp * s->pp_interleave) != 0)
            return fail_at(culprit, "strategy.pp_interleave", err, SW_EINVAL,
                           "interleaving needs layers (%d) divisible by pp x pp_interleave "
                           "(%d x %d)",
                           m->n_layers, s->pp, s->pp_interleave);
    }
    if (s->device == DEVICE_CUDA) {
        int64_t used = (int64_t)s->dp * s->tp * s->pp;
        int64_t have = (int64_t)hw->nodes * hw->n_gpus;
        if (used > have)
            return fail_at(culprit, "strategy.dp", err, SW_EINVAL,
                           "dp x tp x pp = %lld GPUs, but the hardware has %lld (%d node%s x "
                           "%d GPUs)",
                           (long long)used, (long long)have, hw->nodes, hw->nodes == 1 ? "" : "s",
                           hw->n_gpus);
    }

    /* Memory savers and fine-tuning (sections 10 and 12). */
    if (s->offload_params && s->zero != 3)
        return fail_at(culprit, "strategy.offload_params", err, SW_EINVAL,
                       "offload_params needs ZeRO-3 (zero: 3), but zero is %d", s->zero);
    if (train && wformat_is_int(s->weights) && s->lora_rank == 0)
        return fail_at(culprit, "strategy.weights", err, SW_EINVAL,
                       "quantised weights '%s' are only for inference or as the frozen base of "
                       "LoRA (QLoRA); expected lora_rank > 0 or 16/32-bit weights",
                       wformat_name(s->weights));
    if (!train && s->lora_rank > 0)
        return fail_at(culprit, "strategy.lora_rank", err, SW_EINVAL,
                       "lora_rank is for training (task: train); an inference plan has no adapters "
                       "to train");

    /* The workload. */
    if (train) {
        const struct plan_train *t = &p->train;
        int64_t per_step = (int64_t)s->micro_batch * s->grad_accum * s->dp;
        if (w->global_batch != 0 && w->global_batch != per_step)
            return fail_at(culprit, "train.global_batch", err, SW_EINVAL,
                           "global_batch %lld must equal micro_batch x grad_accum x dp = %d x "
                           "%d x %d = %lld (strategy reference 12)",
                           (long long)w->global_batch, s->micro_batch, s->grad_accum, s->dp,
                           (long long)per_step);
        if (m->arch == MODEL_ARCH_GPT2 && w->seq > m->max_pos)
            return fail_at(culprit, "train.seq", err, SW_EINVAL,
                           "seq %d exceeds the model's max_pos %d (learned positions)", w->seq,
                           m->max_pos);
        if (t->min_lr > t->lr)
            return fail_at(culprit, "train.min_lr", err, SW_EINVAL, "min_lr %g exceeds lr %g",
                           t->min_lr, t->lr);
        if (t->eval_every > 0 && p->data.val_fraction <= 0)
            return fail_at(culprit, "train.eval_every", err, SW_EINVAL,
                           "eval_every needs a validation split; expected data.val_fraction > 0");
        int rc = check_lora_targets(t->lora_targets, culprit, err);
        if (rc < 0)
            return rc;
        if (t->loss_scale_given && p->strategy.precision != PREC_FP16_MIXED)
            return fail_at(culprit, "train.loss_scale", err, SW_EINVAL,
                           "loss scaling applies to fp16-mixed only; precision %s keeps "
                           "gradients in a format with fp32's range: remove train.loss_scale*",
                           precision_name(p->strategy.precision));
    } else if (m->arch == MODEL_ARCH_GPT2 &&
               (int64_t)w->prompt_len + w->gen_len > (int64_t)m->max_pos) {
        return fail_at(culprit, "infer.gen_len", err, SW_EINVAL,
                       "prompt_len + gen_len = %d + %d exceeds the model's max_pos %d (learned "
                       "positions)",
                       w->prompt_len, w->gen_len, m->max_pos);
    }

    /* The tokenizer must fit the vocabulary: 256 byte values, or GPT-2's 50257 BPE tokens. */
    int need_vocab = !strcmp(p->data.tokenizer, "gpt2") ? 50257 : 256;
    if (strcmp(p->data.tokenizer, "gpt2") && strcmp(p->data.tokenizer, "byte"))
        return fail_at(culprit, "data.tokenizer", err, SW_EINVAL,
                       "unknown tokenizer '%s'; expected byte or gpt2", p->data.tokenizer);
    if (m->vocab < need_vocab)
        return fail_at(culprit, "data.tokenizer", err, SW_EINVAL,
                       "tokenizer '%s' needs a vocabulary of at least %d, but the model's vocab "
                       "is %d",
                       p->data.tokenizer, need_vocab, m->vocab);
    return 0;
}

int plan_validate(const struct plan *p, struct sw_err *err)
{
    const char *culprit = NULL;
    int rc = model_validate(&p->model, err);
    if (rc < 0)
        return rc;
    if ((rc = plan_check(p, &culprit, err)) < 0)
        return rc;
    return advisor_check(&p->model, &p->hardware, &p->workload, &p->strategy, err);
}

/* ------------------------------------------------------------------ loading */

struct loader {
    struct ydoc d;
    char base_dir[PLAN_PATH_MAX]; /* relative hardware/config_json paths start here */
    yaml_node_t *root, *hw, *model, *data, *train, *infer, *strategy, *launch, *estimate;
};

/* `section` of the root: a mapping, or an empty value (`train:` alone) meaning "all defaults". */
static int get_section(struct loader *ld, const char *key, yaml_node_t **out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(&ld->d, ld->root, key);
    *out = NULL;
    if (!n)
        return 0;
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *v = (const char *)n->data.scalar.value;
        if (!v[0] || !strcmp(v, "~") || !strcmp(v, "null"))
            return 0;
    }
    char what[64];
    snprintf(what, sizeof(what), "section '%s'", key);
    int rc = ydoc_expect_map(&ld->d, n, what, err);
    if (rc == 0)
        *out = n;
    return rc;
}

/* The node for a dotted key ("strategy.tp"): its value, else its section's key, else the root. */
static yaml_node_t *node_for(struct loader *ld, const char *dotted)
{
    if (!dotted)
        return ld->root;
    const char *dot = strchr(dotted, '.');
    if (!dot)
        return ydoc_get(&ld->d, ld->root, dotted) ? ydoc_get(&ld->d, ld->root, dotted) : ld->root;
    char section[32];
    size_t len = (size_t)(dot - dotted);
    if (len >= sizeof(section))
        return ld->root;
    memcpy(section, dotted, len);
    section[len] = '\0';
    yaml_node_t *map = ydoc_get(&ld->d, ld->root, section);
    yaml_node_t *v = map ? ydoc_get(&ld->d, map, dot + 1) : NULL;
    if (v)
        return v;
    yaml_node_t *k = ydoc_get_key(&ld->d, ld->root, section);
    return k ? k : ld->root;
}

/* Give an error without a place (from a profile lookup, the probe, advisor_check) the place of
 * `node` in the plan. Errors that already point into another file keep their place. */
static int place(struct loader *ld, yaml_node_t *node, int rc, struct sw_err *err)
{
    if (!err || err->line > 0)
        return rc;
    char msg[SW_ERR_MSG_MAX];
    if (err->file[0] && strcmp(err->file, ld->d.file)) /* "config.json: cannot open: ..." */
        snprintf(msg, sizeof(msg), "%.200s: %.300s", err->file, err->msg);
    else
        sw_strlcpy(msg, err->msg, sizeof(msg));
    return ydoc_err(&ld->d, node, rc, err, "%s", msg);
}

/* Typed readers for one optional key of a section; `sec` names the section in messages. */
static int rd_i64(struct loader *ld, yaml_node_t *map, const char *sec, const char *key,
                  int64_t min, int64_t max, int64_t *out, struct sw_err *err)
{
    return ydoc_opt_int(&ld->d, map, key, min, max, sec, out, err);
}

static int rd_int(struct loader *ld, yaml_node_t *map, const char *sec, const char *key, int min,
                  int max, int *out, struct sw_err *err)
{
    return ydoc_opt_i32(&ld->d, map, key, min, max, sec, out, err);
}

static int rd_u64(struct loader *ld, yaml_node_t *map, const char *sec, const char *key,
                  uint64_t *out, struct sw_err *err)
{
    int64_t v = (int64_t)(*out > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : *out);
    int rc = ydoc_opt_int(&ld->d, map, key, 0, INT64_MAX, sec, &v, err);
    if (rc == 0)
        *out = (uint64_t)v;
    return rc;
}

/* A number in an interval whose ends may be open: "expected a number in (0, 1]". */
static int rd_dbl(struct loader *ld, yaml_node_t *map, const char *sec, const char *key, double lo,
                  bool lo_open, double hi, bool hi_open, double *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(&ld->d, map, key);
    if (!n)
        return 0;
    char what[96];
    snprintf(what, sizeof(what), "%s.%s", sec, key);
    double v = 0;
    int rc = ydoc_double(&ld->d, n, -DBL_MAX, DBL_MAX, what, &v, err);
    if (rc < 0)
        return rc;
    if ((lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi))
        return ydoc_err(&ld->d, n, SW_ERANGE, err,
                        "'%s': %s is out of range; expected a number in %c%g, %g%c", what,
                        (const char *)n->data.scalar.value, lo_open ? '(' : '[', lo, hi,
                        hi_open ? ')' : ']');
    *out = v;
    return 0;
}

static int rd_bool(struct loader *ld, yaml_node_t *map, const char *sec, const char *key, bool *out,
                   struct sw_err *err)
{
    return ydoc_opt_bool(&ld->d, map, key, sec, out, err);
}

static int rd_str(struct loader *ld, yaml_node_t *map, const char *sec, const char *key, char *buf,
                  size_t n, struct sw_err *err)
{
    return ydoc_opt_str(&ld->d, map, key, sec, buf, n, err);
}

static int rd_word(struct loader *ld, yaml_node_t *map, const char *sec, const char *key,
                   const char *const *words, int *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(&ld->d, map, key);
    if (!n)
        return 0;
    char what[96];
    snprintf(what, sizeof(what), "%s.%s", sec, key);
    return ydoc_word(&ld->d, n, words, what, out, err);
}

/* A non-empty string value for `key` (profile names, files). */
static int rd_name(struct loader *ld, yaml_node_t *map, const char *sec, const char *key, char *buf,
                   size_t n, struct sw_err *err)
{
    int rc = rd_str(ld, map, sec, key, buf, n, err);
    if (rc == 0 && ydoc_get(&ld->d, map, key) && !buf[0])
        return ydoc_err(&ld->d, ydoc_get(&ld->d, map, key), SW_EINVAL, err,
                        "'%s.%s' must not be empty", sec, key);
    return rc;
}

/* hardware: {profile | file | probe: true, nodes, gpus_per_node} */
static int load_hardware(struct loader *ld, struct plan *p, struct sw_err *err)
{
    struct ydoc *d = &ld->d;
    yaml_node_t *map = ld->hw;
    struct plan_hardware_ref *r = &p->hw_ref;
    int rc;
    if (!map) {
        yaml_node_t *k = ydoc_get_key(d, ld->root, "hardware");
        return ydoc_err(d, k ? k : ld->root, SW_EINVAL, err,
                        k ? "section 'hardware' is empty; expected profile, file or probe: true"
                          : "missing section 'hardware'; expected hardware: {profile: NAME}, "
                            "{file: REPORT.yaml} or {probe: true}");
    }
    if ((rc = ydoc_check_keys(d, map, hw_keys, "hardware", err)) < 0 ||
        (rc = rd_name(ld, map, "hardware", "profile", r->profile, sizeof(r->profile), err)) < 0 ||
        (rc = rd_name(ld, map, "hardware", "file", r->file, sizeof(r->file), err)) < 0 ||
        (rc = rd_bool(ld, map, "hardware", "probe", &r->probe, err)) < 0 ||
        (rc = rd_int(ld, map, "hardware", "nodes", 1, LIM_NODES, &r->nodes, err)) < 0 ||
        (rc = rd_int(ld, map, "hardware", "gpus_per_node", 0, HW_MAX_GPUS, &r->gpus_per_node,
                     err)) < 0)
        return rc;

    /* Exactly one source. */
    const char *srcs[] = {"profile", "file", "probe"};
    bool given[] = {r->profile[0] != 0, r->file[0] != 0, r->probe};
    int n_given = 0;
    for (int i = 0; i < 3; i++) {
        if (!given[i])
            continue;
        if (++n_given > 1)
            return ydoc_err(d, ydoc_get_key(d, map, srcs[i]), SW_EINVAL, err,
                            "'hardware' names its hardware twice; expected only one of "
                            "profile, file or probe: true");
    }
    if (n_given == 0)
        return ydoc_err(d, map, SW_EINVAL, err,
                        "'hardware' names no hardware; expected profile: NAME, file: "
                        "REPORT.yaml or probe: true");

    if (r->profile[0]) {
        rc = profile_load_hardware(r->profile, &p->hardware, err);
        if (rc < 0)
            return place(ld, ydoc_get(d, map, "profile"), rc, err);
    } else if (r->file[0]) {
        char path[PLAN_PATH_MAX * 2];
        if ((rc = join_path(ld->base_dir, r->file, path, sizeof(path), err)) < 0 ||
            (rc = hw_load_file(path, &p->hardware, err)) < 0)
            return place(ld, ydoc_get(d, map, "file"), rc, err);
    } else {
        rc = hw_probe(&p->hardware, false, err);
        if (rc < 0)
            return place(ld, ydoc_get(d, map, "probe"), rc, err);
    }

    struct hardware *hw = &p->hardware;
    if (r->nodes > 0)
        hw->nodes = r->nodes;
    if (hw->nodes < 1)
        hw->nodes = 1;
    if (r->gpus_per_node >= 0 && r->gpus_per_node != hw->n_gpus) {
        yaml_node_t *at = ydoc_get(d, map, "gpus_per_node");
        if (r->gpus_per_node > hw->n_gpus) {
            /* A probed machine has what it has; a profile or report describes one GPU model,
             * so more of them are copies of the first (same links as its first pair). */
            if (r->probe || hw->n_gpus == 0)
                return ydoc_err(d, at, SW_EINVAL, err,
                                "gpus_per_node %d exceeds the %d GPU%s %s has; expected at most "
                                "%d",
                                r->gpus_per_node, hw->n_gpus, hw->n_gpus == 1 ? "" : "s",
                                r->probe ? "the probe found" : "the hardware", hw->n_gpus);
            enum hw_link l = hw->n_gpus > 1 ? hw->link[0][1] : HW_LINK_UNKNOWN;
            int nl = hw->n_gpus > 1 ? hw->link_nvlinks[0][1] : 0;
            for (int i = hw->n_gpus; i < r->gpus_per_node; i++)
                hw->gpus[i] = hw->gpus[0];
            for (int i = 0; i < r->gpus_per_node; i++)
                for (int j = 0; j < r->gpus_per_node; j++) {
                    if (i < hw->n_gpus && j < hw->n_gpus)
                        continue;
                    hw->link[i][j] = i == j ? HW_LINK_SELF : l;
                    hw->link_nvlinks[i][j] = i == j ? 0 : nl;
                }
        }
        hw->n_gpus = r->gpus_per_node;
    }
    return 0;
}

/* The model a plan's `profile:` or `config_json:` names (filled), or false when it names none. */
static int load_model_base(const struct plan_model_ref *r, const char *base_dir,
                           struct model_desc *m, bool *has_base, struct sw_err *err)
{
    int rc = 0;
    memset(m, 0, sizeof(*m));
    *has_base = false;
    if (r->profile[0]) {
        rc = profile_load_model(r->profile, m, err);
    } else if (r->config_json[0]) {
        char path[PLAN_PATH_MAX * 2];
        rc = join_path(base_dir, r->config_json, path, sizeof(path), err);
        if (rc == 0)
            rc = model_load_hf_config(path, m, err);
    } else {
        return 0;
    }
    if (rc < 0)
        return rc;
    bool flags[4] = {m->tied_head, m->bias, m->rms_norm, m->swiglu};
    model_fill_defaults(m); /* sizes left at 0; it resets the flags, which the base decides */
    m->tied_head = flags[0];
    m->bias = flags[1];
    m->rms_norm = flags[2];
    m->swiglu = flags[3];
    *has_base = true;
    return 0;
}

/* The first quoted word of a message ("'kv_heads' (3) must divide ...") if it is a key of map. */
static yaml_node_t *quoted_key_node(struct loader *ld, yaml_node_t *map, const char *msg)
{
    if (!map || msg[0] != '\'')
        return NULL;
    const char *end = strchr(msg + 1, '\'');
    if (!end || end - msg > 40)
        return NULL;
    char key[48];
    memcpy(key, msg + 1, (size_t)(end - msg - 1));
    key[end - msg - 1] = '\0';
    return ydoc_get(&ld->d, map, key);
}

/* model: {profile | config_json, inline keys}: the base, then the inline keys on top. */
static int load_model(struct loader *ld, struct plan *p, struct sw_err *err)
{
    struct ydoc *d = &ld->d;
    yaml_node_t *map = ld->model;
    struct plan_model_ref *r = &p->model_ref;
    struct model_desc *m = &p->model;
    int rc;
    if (!map) {
        yaml_node_t *k = ydoc_get_key(d, ld->root, "model");
        return ydoc_err(d, k ? k : ld->root, SW_EINVAL, err,
                        k ? "section 'model' is empty; expected profile, config_json or inline "
                            "sizes"
                          : "missing section 'model'; expected model: {profile: NAME}, "
                            "{config_json: PATH} or inline sizes");
    }
    if ((rc = ydoc_check_keys(d, map, model_keys, "model", err)) < 0 ||
        (rc = rd_name(ld, map, "model", "profile", r->profile, sizeof(r->profile), err)) < 0 ||
        (rc = rd_name(ld, map, "model", "config_json", r->config_json, sizeof(r->config_json),
                      err)) < 0)
        return rc;
    if (r->profile[0] && r->config_json[0])
        return ydoc_err(d, ydoc_get_key(d, map, "config_json"), SW_EINVAL, err,
                        "'model' names its model twice; expected profile or config_json, not "
                        "both");

    bool has_base = false;
    rc = load_model_base(r, ld->base_dir, m, &has_base, err);
    if (rc < 0)
        return place(ld, ydoc_get(d, map, r->profile[0] ? "profile" : "config_json"), rc, err);
    if (!has_base) {
        /* Inline only: the sizes that cannot be derived are required. */
        static const char *const required[] = {"layers", "hidden", "heads", "vocab", NULL};
        for (int i = 0; required[i]; i++)
            if (!ydoc_get(d, map, required[i]))
                return ydoc_err(d, ydoc_get_key(d, ld->root, "model"), SW_EINVAL, err,
                                "missing key '%s' in 'model'; a model without profile or "
                                "config_json needs layers, hidden, heads and vocab",
                                required[i]);
        sw_strlcpy(m->name, "custom", sizeof(m->name));
    }

    int arch = (int)m->arch;
    if ((rc = rd_word(ld, map, "model", "arch", arch_words, &arch, err)) < 0)
        return rc;
    bool arch_changed = !has_base || arch != (int)m->arch;
    m->arch = (enum model_arch)arch;
    if ((rc = rd_str(ld, map, "model", "name", m->name, sizeof(m->name), err)) < 0 ||
        (rc = rd_int(ld, map, "model", "layers", 1, LIM_LAYERS, &m->n_layers, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "hidden", 1, LIM_HIDDEN, &m->hidden, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "heads", 1, LIM_HEADS, &m->n_heads, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "kv_heads", 1, LIM_HEADS, &m->n_kv_heads, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "head_dim", 1, LIM_HEAD_DIM, &m->head_dim, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "ffn", 1, LIM_FFN, &m->ffn, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "vocab", 2, LIM_VOCAB, &m->vocab, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "max_pos", 1, LIM_POS, &m->max_pos, err)) < 0 ||
        (rc = rd_int(ld, map, "model", "sliding_window", 0, LIM_POS, &m->sliding_window, err)) <
            0 ||
        (rc = rd_dbl(ld, map, "model", "rope_theta", 0, false, LIM_ROPE_THETA, false,
                     &m->rope_theta, err)) < 0 ||
        (rc = rd_dbl(ld, map, "model", "norm_eps", LIM_NORM_EPS_MIN, false, LIM_NORM_EPS_MAX, false,
                     &m->norm_eps, err)) < 0)
        return rc;
    if (ydoc_get(d, map, "name") && !m->name[0])
        return ydoc_err(d, ydoc_get(d, map, "name"), SW_EINVAL, err,
                        "'model.name' must not be empty");

    /* Flags: the base's, or the architecture's when there is no base or arch changed; then
     * the inline keys. model_fill_defaults sets the architecture's flags unconditionally. */
    bool flags[4] = {m->tied_head, m->bias, m->rms_norm, m->swiglu};
    model_fill_defaults(m);
    if (!arch_changed) {
        m->tied_head = flags[0];
        m->bias = flags[1];
        m->rms_norm = flags[2];
        m->swiglu = flags[3];
    }
    int norm = m->rms_norm ? 1 : 0, act = m->swiglu ? 1 : 0, dt = -1;
    if ((rc = rd_bool(ld, map, "model", "tied_head", &m->tied_head, err)) < 0 ||
        (rc = rd_bool(ld, map, "model", "bias", &m->bias, err)) < 0 ||
        (rc = rd_word(ld, map, "model", "norm", norm_words, &norm, err)) < 0 ||
        (rc = rd_word(ld, map, "model", "activation", act_words, &act, err)) < 0 ||
        (rc = rd_word(ld, map, "model", "dtype", mdtype_words, &dt, err)) < 0)
        return rc;
    m->rms_norm = norm == 1;
    m->swiglu = act == 1;
    if (dt >= 0)
        m->stored_bytes_per_param = mdtype_bytes[dt];

    if ((rc = model_validate(m, err)) < 0) {
        yaml_node_t *at = quoted_key_node(ld, map, err ? err->msg : "");
        return place(ld, at ? at : ydoc_get_key(d, ld->root, "model"), rc, err);
    }
    return 0;
}

static int load_data(struct loader *ld, struct plan *p, struct sw_err *err)
{
    yaml_node_t *map = ld->data;
    struct plan_data *dd = &p->data;
    int rc;
    if (!map)
        return 0;
    int tok = strcmp(dd->tokenizer, "gpt2") ? 0 : 1;
    if ((rc = ydoc_check_keys(&ld->d, map, data_keys, "data", err)) < 0 ||
        (rc = rd_str(ld, map, "data", "path", dd->path, sizeof(dd->path), err)) < 0 ||
        (rc = rd_word(ld, map, "data", "tokenizer", tokenizer_words, &tok, err)) < 0 ||
        (rc = rd_str(ld, map, "data", "vocab", dd->vocab_path, sizeof(dd->vocab_path), err)) < 0 ||
        (rc = rd_str(ld, map, "data", "merges", dd->merges_path, sizeof(dd->merges_path), err)) <
            0 ||
        (rc = rd_dbl(ld, map, "data", "val_fraction", 0, false, 1, true, &dd->val_fraction, err)) <
            0)
        return rc;
    sw_strlcpy(dd->tokenizer, tokenizer_words[tok], sizeof(dd->tokenizer));
    return 0;
}

static int load_train(struct loader *ld, struct plan *p, struct sw_err *err)
{
    yaml_node_t *map = ld->train;
    struct plan_train *t = &p->train;
    struct workload *w = &p->workload;
    int rc, sched = (int)t->schedule;
    if (map &&
        ((rc = ydoc_check_keys(&ld->d, map, train_keys, "train", err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "steps", 1, LIM_STEPS, &t->steps, err)) < 0 ||
         (rc = rd_int(ld, map, "train", "seq", 1, LIM_POS, &w->seq, err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "global_batch", 0, LIM_GLOBAL_BATCH, &w->global_batch,
                      err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "tokens", 0, LIM_TOKENS, &w->tokens_total, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "lr", 0, true, 10, false, &t->lr, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "min_lr", 0, false, 10, false, &t->min_lr, err)) < 0 ||
         (rc = rd_word(ld, map, "train", "schedule",
                       (const char *const[]){"constant", "cosine", "linear", NULL}, &sched, err)) <
             0 ||
         (rc = rd_i64(ld, map, "train", "warmup_steps", 0, LIM_STEPS, &t->warmup_steps, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "weight_decay", 0, false, 10, false, &t->weight_decay,
                      err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "grad_clip", 0, false, 1e6, false, &t->grad_clip, err)) <
             0 ||
         (rc = rd_dbl(ld, map, "train", "beta1", 0, false, 1, true, &t->beta1, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "beta2", 0, false, 1, true, &t->beta2, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "eps", 0, true, 1, false, &t->eps, err)) < 0 ||
         (rc = rd_u64(ld, map, "train", "seed", &t->seed, err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "eval_every", 0, LIM_STEPS, &t->eval_every, err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "eval_batches", 1, 1000000000, &t->eval_batches, err)) <
             0 ||
         (rc = rd_i64(ld, map, "train", "checkpoint_every", 0, LIM_STEPS, &t->checkpoint_every,
                      err)) < 0 ||
         (rc = rd_name(ld, map, "train", "out_dir", t->out_dir, sizeof(t->out_dir), err)) < 0 ||
         (rc = rd_str(ld, map, "train", "resume", t->resume, sizeof(t->resume), err)) < 0 ||
         (rc = rd_str(ld, map, "train", "lora_targets", t->lora_targets, sizeof(t->lora_targets),
                      err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "log_every", 1, LIM_STEPS, &t->log_every, err)) < 0 ||
         (rc = rd_dbl(ld, map, "train", "loss_scale_init", 0, true, 1e30, false,
                      &t->loss_scale_init, err)) < 0 ||
         (rc = rd_i64(ld, map, "train", "loss_scale_window", 1, LIM_STEPS, &t->loss_scale_window,
                      err)) < 0))
        return rc;
    /* loss_scale: the word dynamic, or a static scale. */
    yaml_node_t *ls = ydoc_get(&ld->d, map, "loss_scale");
    if (ls && !(ls->type == YAML_SCALAR_NODE &&
                !strcmp((const char *)ls->data.scalar.value, "dynamic")) &&
        (rc = rd_dbl(ld, map, "train", "loss_scale", 0, true, 1e30, false, &t->loss_scale, err)) <
            0) {
        if (ls->type == YAML_SCALAR_NODE)
            return ydoc_err(&ld->d, ls, SW_EINVAL, err,
                            "'train.loss_scale': expected dynamic or a positive number, got '%s'",
                            (const char *)ls->data.scalar.value);
        return rc;
    }
    t->loss_scale_given = ls || ydoc_get(&ld->d, map, "loss_scale_init") ||
                          ydoc_get(&ld->d, map, "loss_scale_window");
    t->schedule = (enum lr_schedule)sched;
    /* Only a warmup the file asks for is checked: the default (10) may exceed the steps of a
     * short plan exported by `scalewise plan`, where the ramp simply never completes. */
    yaml_node_t *warm = ydoc_get(&ld->d, map, "warmup_steps");
    if (warm && t->warmup_steps > t->steps)
        return ydoc_err(&ld->d, warm, SW_EINVAL, err, "warmup_steps %lld exceeds steps %lld",
                        (long long)t->warmup_steps, (long long)t->steps);
    /* Defaults that follow from other values. */
    if (!ydoc_get(&ld->d, map, "min_lr"))
        t->min_lr = t->lr / 10;
    if (!ydoc_get(&ld->d, map, "out_dir")) {
        const char *stem = p->name[0] ? p->name : (p->model.name[0] ? p->model.name : "plan");
        snprintf(t->out_dir, sizeof(t->out_dir), "runs/%s", stem);
    }
    return 0;
}

static int load_infer(struct loader *ld, struct plan *p, struct sw_err *err)
{
    yaml_node_t *map = ld->infer;
    struct plan_infer *in = &p->infer;
    struct workload *w = &p->workload;
    int rc;
    if (!map)
        return 0;
    if ((rc = ydoc_check_keys(&ld->d, map, infer_keys, "infer", err)) < 0 ||
        (rc = rd_str(ld, map, "infer", "checkpoint", in->checkpoint, sizeof(in->checkpoint), err)) <
            0 ||
        (rc = rd_str(ld, map, "infer", "prompt", in->prompt, sizeof(in->prompt), err)) < 0 ||
        (rc = rd_int(ld, map, "infer", "batch", 1, LIM_BATCH, &w->batch, err)) < 0 ||
        (rc = rd_int(ld, map, "infer", "prompt_len", 1, LIM_POS, &w->prompt_len, err)) < 0 ||
        (rc = rd_int(ld, map, "infer", "gen_len", 1, LIM_POS, &w->gen_len, err)) < 0 ||
        (rc = rd_dbl(ld, map, "infer", "temperature", 0, false, 100, false, &in->temperature,
                     err)) < 0 ||
        (rc = rd_int(ld, map, "infer", "top_k", 0, LIM_TOP_K, &in->top_k, err)) < 0 ||
        (rc = rd_dbl(ld, map, "infer", "top_p", 0, true, 1, false, &in->top_p, err)) < 0 ||
        (rc = rd_u64(ld, map, "infer", "seed", &in->seed, err)) < 0)
        return rc;
    return 0;
}

static int load_strategy(struct loader *ld, struct plan *p, struct sw_err *err)
{
    struct ydoc *d = &ld->d;
    yaml_node_t *map = ld->strategy;
    struct strategy *s = &p->strategy;
    const struct hardware *hw = &p->hardware;
    int rc;
    if (map && (rc = ydoc_check_keys(d, map, strategy_keys, "strategy", err)) < 0)
        return rc;

    /* Defaults that follow from the hardware (docs/plan-format.md): the GPU when there is one;
     * bf16-mixed where the GPU has bf16, else fp16-mixed, fp16 weights and naive attention
     * (section 9.1: T4 and V100); fp32 on the CPU. */
    bool no_bf16 = first_gpu_without_bf16(hw) >= 0;
    s->device = hw->n_gpus > 0 ? DEVICE_CUDA : DEVICE_CPU;
    int device = (int)s->device;
    if ((rc = rd_word(ld, map, "strategy", "device", (const char *const[]){"cpu", "cuda", NULL},
                      &device, err)) < 0)
        return rc;
    s->device = (enum sw_device)device;
    if (s->device == DEVICE_CPU)
        s->precision = PREC_FP32;
    else if (no_bf16) {
        /* Before CC 8.0 there is no bf16 and no flash-class attention kernel (section 10). */
        s->precision = PREC_FP16_MIXED;
        s->weights = WFMT_FP16;
        s->kv_dtype = WFMT_FP16;
        s->attention = ATTN_NAIVE;
    }

    const char *const prec_words[] = {
        precision_name(PREC_FP32),       precision_name(PREC_TF32), precision_name(PREC_FP16_MIXED),
        precision_name(PREC_BF16_MIXED), precision_name(PREC_BF16), NULL};
    const char *const opt_words[] = {optimizer_name(OPT_ADAMW),
                                     optimizer_name(OPT_ADAMW8BIT),
                                     optimizer_name(OPT_ADAFACTOR),
                                     optimizer_name(OPT_SGD),
                                     optimizer_name(OPT_SGD_MOMENTUM),
                                     optimizer_name(OPT_LION),
                                     NULL};
    const char *const rec_words[] = {recompute_name(RECOMPUTE_NONE),
                                     recompute_name(RECOMPUTE_SELECTIVE),
                                     recompute_name(RECOMPUTE_FULL), NULL};
    const char *const attn_words[] = {attention_name(ATTN_FLASH), attention_name(ATTN_NAIVE), NULL};
    const char *const wf_words[] = {wformat_name(WFMT_FP32), wformat_name(WFMT_FP16),
                                    wformat_name(WFMT_BF16), wformat_name(WFMT_INT8),
                                    wformat_name(WFMT_INT4), NULL};
    int prec = (int)s->precision, opt = (int)s->optimizer, rec = (int)s->recompute,
        attn = (int)s->attention, wts = (int)s->weights, kv = (int)s->kv_dtype;
    if ((rc = rd_word(ld, map, "strategy", "precision", prec_words, &prec, err)) < 0 ||
        (rc = rd_word(ld, map, "strategy", "optimizer", opt_words, &opt, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "micro_batch", 1, LIM_BATCH, &s->micro_batch, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "grad_accum", 1, LIM_BATCH, &s->grad_accum, err)) < 0 ||
        (rc = rd_word(ld, map, "strategy", "recompute", rec_words, &rec, err)) < 0 ||
        (rc = rd_word(ld, map, "strategy", "attention", attn_words, &attn, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "dp", 1, LIM_DP, &s->dp, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "tp", 1, LIM_DEGREE, &s->tp, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "pp", 1, LIM_PP, &s->pp, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "pp_interleave", 1, LIM_PP, &s->pp_interleave, err)) <
            0 ||
        (rc = rd_int(ld, map, "strategy", "zero", 0, 3, &s->zero, err)) < 0 ||
        (rc = rd_bool(ld, map, "strategy", "sequence_parallel", &s->sequence_parallel, err)) < 0 ||
        (rc = rd_bool(ld, map, "strategy", "offload_optimizer", &s->offload_optimizer, err)) < 0 ||
        (rc = rd_bool(ld, map, "strategy", "offload_params", &s->offload_params, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "lora_rank", 0, LIM_LORA_RANK, &s->lora_rank, err)) < 0 ||
        (rc = rd_word(ld, map, "strategy", "weights", wf_words, &wts, err)) < 0 ||
        (rc = rd_word(ld, map, "strategy", "kv_dtype", wf_words, &kv, err)) < 0 ||
        (rc = rd_int(ld, map, "strategy", "threads", 0, LIM_THREADS, &s->threads, err)) < 0)
        return rc;
    s->precision = (enum sw_precision)prec;
    s->optimizer = (enum sw_optimizer)opt;
    s->recompute = (enum sw_recompute)rec;
    s->attention = (enum sw_attention)attn;
    s->weights = (enum sw_wformat)wts;
    s->kv_dtype = (enum sw_wformat)kv;
    return 0;
}

/* ------------------------------------------------------------------ launch commands */

/* launch: {processes, nodes, per_node, mpirun, srun, torchrun, nproc}. Kept as written (the
 * commands are for people: host names may have been filled in); only the keys and types are
 * checked. A section that disagrees with the strategy is reported by `scalewise explain`. */
static int load_launch(struct loader *ld, struct plan *p, struct sw_err *err)
{
    yaml_node_t *map = ld->launch;
    struct plan_launch *l = &p->launch;
    memset(l, 0, sizeof(*l));
    if (!map)
        return 0;
    int rc;
    if ((rc = ydoc_check_keys(&ld->d, map, launch_keys, "launch", err)) < 0 ||
        (rc = rd_int(ld, map, "launch", "processes", 1, INT32_MAX, &l->processes, err)) < 0 ||
        (rc = rd_int(ld, map, "launch", "nodes", 1, LIM_NODES, &l->nodes, err)) < 0 ||
        (rc = rd_int(ld, map, "launch", "per_node", 1, INT32_MAX, &l->per_node, err)) < 0 ||
        (rc = rd_str(ld, map, "launch", "mpirun", l->mpirun, sizeof(l->mpirun), err)) < 0 ||
        (rc = rd_str(ld, map, "launch", "srun", l->srun, sizeof(l->srun), err)) < 0 ||
        (rc = rd_str(ld, map, "launch", "torchrun", l->torchrun, sizeof(l->torchrun), err)) < 0 ||
        (rc = rd_str(ld, map, "launch", "nproc", l->nproc, sizeof(l->nproc), err)) < 0)
        return rc;
    l->present = true;
    return 0;
}

/* `path` as one shell word: unchanged when it holds only safe characters, else single-quoted
 * (a ' inside becomes '\''). */
static void shell_word(const char *path, char *out, size_t n)
{
    bool safe = path[0] != '\0';
    for (const char *c = path; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/+=,@%", *c))
            safe = false;
    if (safe) {
        sw_strlcpy(out, path, n);
        return;
    }
    size_t k = 0;
    if (n < 3) {
        if (n)
            out[0] = '\0';
        return;
    }
    out[k++] = '\'';
    for (const char *c = path; *c && k + 6 < n; c++) {
        if (*c == '\'') {
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            out[k++] = *c;
        }
    }
    out[k++] = '\'';
    out[k] = '\0';
}

/* Placeholder host names for mpirun -H: "<host1>:G,<host2>:G" for up to 8 nodes; beyond that a
 * host file ("one line per node: <host> slots=G"). The last node may run fewer ranks. */
#define LAUNCH_LIST_HOSTS_MAX 8

static void mpirun_hosts(int nodes, int per_node, int world, char *out, size_t n)
{
    out[0] = '\0';
    if (nodes <= 1)
        return;
    if (nodes > LAUNCH_LIST_HOSTS_MAX) {
        snprintf(out, n, " --hostfile <hostfile> --map-by ppr:%d:node", per_node);
        return;
    }
    size_t k = (size_t)snprintf(out, n, " -H ");
    for (int i = 0; i < nodes && k < n; i++) {
        int slots = i < nodes - 1 ? per_node : world - per_node * (nodes - 1);
        k += (size_t)snprintf(out + k, n - k, "%s<host%d>:%d", i ? "," : "", i + 1, slots);
    }
}

/* One command into out[PLAN_LAUNCH_CMD_MAX]; a command that does not fit (a very long plan
 * path) is left out rather than cut short. */
static void cmd_printf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_printf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PLAN_LAUNCH_CMD_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PLAN_LAUNCH_CMD_MAX)
        out[0] = '\0';
}

void plan_launch_build(const struct strategy *s, const struct hardware *hw, const char *plan_file,
                       struct plan_launch *out)
{
    memset(out, 0, sizeof(*out));
    int64_t world64 =
        (int64_t)(s->dp > 0 ? s->dp : 1) * (s->tp > 0 ? s->tp : 1) * (s->pp > 0 ? s->pp : 1);
    if (world64 <= 1 || world64 > INT32_MAX)
        return;
    int world = (int)world64;
    bool gpu = s->device == DEVICE_CUDA;
    int nodes, per_node;
    if (gpu) {
        /* One process per GPU, filling nodes of gpus_per_node. */
        int g = hw->n_gpus > 0 ? hw->n_gpus : 1;
        per_node = world < g ? world : g;
    } else {
        /* CPU: the ranks spread evenly over the plan's nodes. */
        int hn = hw->nodes >= 1 ? hw->nodes : 1;
        if (hn > world)
            hn = world;
        per_node = (world + hn - 1) / hn;
    }
    nodes = (world + per_node - 1) / per_node;
    bool even = world % per_node == 0;
    out->present = true;
    out->processes = world;
    out->nodes = nodes;
    out->per_node = per_node;

    char file[PLAN_PATH_MAX + 16], hosts[512];
    shell_word(plan_file && plan_file[0] ? plan_file : "plan.yaml", file, sizeof(file));
    mpirun_hosts(nodes, per_node, world, hosts, sizeof(hosts));
    /* Open MPI binds a rank to one core by default; a CPU rank runs its own OpenMP threads. */
    cmd_printf(out->mpirun, "mpirun -np %d%s%s scalewise run %s", world, hosts,
               gpu ? "" : " --bind-to none", file);
    /* srun starts MPI ranks through PMIx (docs/distributed.md); MASTER_ADDR/PORT serve the TCP
     * rendezvous of the NCCL bootstrap and are harmless elsewhere. */
    char tasks[64], gpus[48] = "";
    if (even)
        snprintf(tasks, sizeof(tasks), "--ntasks-per-node=%d", per_node);
    else
        snprintf(tasks, sizeof(tasks), "--ntasks=%d", world);
    if (gpu)
        snprintf(gpus, sizeof(gpus), " --gpus-per-node=%d", per_node);
    cmd_printf(out->srun,
               "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) "
               "MASTER_PORT=29500; srun --mpi=pmix --nodes=%d %s%s scalewise run %s",
               nodes, tasks, gpus, file);
    if (gpu && even) {
        if (nodes == 1)
            cmd_printf(out->torchrun,
                       "torchrun --standalone --nnodes=1 --nproc-per-node=%d --no-python scalewise "
                       "run %s",
                       per_node, file);
        else
            cmd_printf(out->torchrun,
                       "torchrun --nnodes=%d --nproc-per-node=%d --rdzv-backend=c10d "
                       "--rdzv-endpoint=<host1>:29500 --no-python scalewise run %s",
                       nodes, per_node, file);
    }
    if (!gpu && nodes == 1)
        cmd_printf(out->nproc, "scalewise run --nproc %d %s", world, file);
}

/* ------------------------------------------------------------------ the estimate, loosely */

enum est_type { EK_DBL, EK_I64, EK_INT, EK_BOOL, EK_STR };
struct est_key {
    const char *section; /* NULL: top level of `estimate` */
    const char *key;
    enum est_type type;
    size_t off;
    size_t size; /* EK_STR */
};
#define EK(sec, key, type, field)                                                                  \
    {                                                                                              \
        sec, key, type, offsetof(struct estimate, field), sizeof(((struct estimate *)0)->field)    \
    }

/* The keys estimate_emit writes that carry a field of struct estimate. Keys not listed (derived
 * figures) are ignored: they are written again from the fields they derive from. */
static const struct est_key est_keys[] = {
    EK(NULL, "params_total", EK_I64, params_total),
    EK(NULL, "params_trainable", EK_I64, params_trainable),
    EK("per_device_bytes", "weights", EK_DBL, dev.weights),
    EK("per_device_bytes", "gradients", EK_DBL, dev.gradients),
    EK("per_device_bytes", "optimizer", EK_DBL, dev.optimizer),
    EK("per_device_bytes", "activations", EK_DBL, dev.activations),
    EK("per_device_bytes", "kv_cache", EK_DBL, dev.kv_cache),
    EK("per_device_bytes", "workspace", EK_DBL, dev.workspace),
    EK("per_device_bytes", "overhead", EK_DBL, dev.overhead),
    EK("per_device_bytes", "total", EK_DBL, dev.total),
    EK("per_device_bytes", "logits", EK_DBL, logits_bytes),
    EK("per_device_bytes", "capacity", EK_DBL, capacity_bytes),
    EK(NULL, "logits_bytes", EK_DBL, logits_bytes),
    EK(NULL, "capacity_bytes", EK_DBL, capacity_bytes),
    EK("host_bytes", "total", EK_DBL, host_total_bytes),
    EK("host_bytes", "offload", EK_DBL, host_offload_bytes),
    EK("host_bytes", "capacity", EK_DBL, host_capacity_bytes),
    EK(NULL, "host_capacity_bytes", EK_DBL, host_capacity_bytes),
    EK(NULL, "fits", EK_BOOL, fits),
    EK(NULL, "host_fits", EK_BOOL, host_fits),
    EK(NULL, "gpus", EK_INT, gpus),
    EK(NULL, "flops_per_token", EK_DBL, flops_per_token),
    EK(NULL, "flops_per_step", EK_DBL, flops_per_step),
    EK(NULL, "hw_flops_per_step", EK_DBL, hw_flops_per_step),
    EK(NULL, "step_time_s", EK_DBL, step_time_s),
    EK("step_time", "compute_s", EK_DBL, compute_s),
    EK("step_time", "comm_exposed_s", EK_DBL, comm_exposed_s),
    EK("step_time", "bubble_s", EK_DBL, bubble_s),
    EK("step_time", "optimizer_s", EK_DBL, optimizer_s),
    EK("step_time", "offload_s", EK_DBL, offload_s),
    EK(NULL, "compute_s", EK_DBL, compute_s),
    EK(NULL, "comm_exposed_s", EK_DBL, comm_exposed_s),
    EK(NULL, "bubble_s", EK_DBL, bubble_s),
    EK(NULL, "optimizer_s", EK_DBL, optimizer_s),
    EK(NULL, "offload_s", EK_DBL, offload_s),
    EK(NULL, "tokens_per_s", EK_DBL, tokens_per_s),
    EK(NULL, "mfu", EK_DBL, mfu),
    EK(NULL, "hfu", EK_DBL, hfu),
    EK(NULL, "peak_flops_used", EK_DBL, peak_flops_used),
    EK(NULL, "peak_flops", EK_DBL, peak_flops_used),
    EK(NULL, "time_to_train_s", EK_DBL, time_to_train_s),
    EK(NULL, "gpu_hours", EK_DBL, gpu_hours),
    EK(NULL, "ttft_s", EK_DBL, ttft_s),
    EK(NULL, "decode_s_per_token", EK_DBL, decode_s_per_token),
    EK(NULL, "infer_tokens_per_s", EK_DBL, infer_tokens_per_s),
    EK(NULL, "tokens_per_s_infer", EK_DBL, infer_tokens_per_s),
    EK(NULL, "link_class", EK_STR, link_class),
    /* calibration: {<name>: {value, source}}: the value part */
    EK("calibration", "eta_flops_train", EK_DBL, calib.eta_flops_train),
    EK("calibration", "eta_flops_prefill", EK_DBL, calib.eta_flops_prefill),
    EK("calibration", "eta_mem", EK_DBL, calib.eta_mem),
    EK("calibration", "eta_mem_decode", EK_DBL, calib.eta_mem_decode),
    EK("calibration", "eta_comm_intra", EK_DBL, calib.eta_comm_intra),
    EK("calibration", "eta_comm_inter", EK_DBL, calib.eta_comm_inter),
    EK("calibration", "comm_latency_s", EK_DBL, calib.comm_latency_s),
    EK("calibration", "runtime_overhead_bytes", EK_DBL, calib.runtime_overhead_bytes),
    EK("calibration", "frag_margin", EK_DBL, calib.frag_margin),
    EK("calibration", "pin_factor", EK_DBL, calib.pin_factor),
    EK("calibration", "host_reserve_frac", EK_DBL, calib.host_reserve_frac),
    EK("calibration", "launch_overhead_s", EK_DBL, calib.launch_overhead_s),
    EK("calibration", "call_matmul_s", EK_DBL, calib.call_matmul_s),
    EK("calibration", "call_kernel_s", EK_DBL, calib.call_kernel_s),
    EK("calibration", "attn_flops_per_s", EK_DBL, calib.attn_flops_per_s),
    EK("calibration", "achieved_flops", EK_DBL, calib.achieved_flops),
};

/* A number as sw_emit writes it, including YAML's .nan and .inf (an estimate says "unknown"
 * with NaN). False for anything else, null included. */
static bool est_number(struct ydoc *d, yaml_node_t *v, double *out)
{
    const char *s = (const char *)v->data.scalar.value;
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
        *out = NAN;
        return true;
    }
    if (!strcmp(s, ".inf") || !strcmp(s, "+.inf") || !strcmp(s, "-.inf")) {
        *out = s[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    struct sw_err ignored;
    return ydoc_double(d, v, -DBL_MAX, DBL_MAX, "estimate", out, &ignored) == 0;
}

static void est_set(struct ydoc *d, struct estimate *e, const char *section, const char *key,
                    yaml_node_t *v)
{
    if (!v || v->type != YAML_SCALAR_NODE)
        return;
    const char *s = (const char *)v->data.scalar.value;
    for (size_t i = 0; i < sizeof(est_keys) / sizeof(est_keys[0]); i++) {
        const struct est_key *k = &est_keys[i];
        if ((section == NULL) != (k->section == NULL) || (section && strcmp(section, k->section)) ||
            strcmp(key, k->key))
            continue;
        char *field = (char *)e + k->off;
        struct sw_err ignored;
        double dv;
        int64_t iv;
        bool bv;
        switch (k->type) {
        case EK_DBL:
            if (est_number(d, v, &dv))
                memcpy(field, &dv, sizeof(dv));
            break;
        case EK_I64:
            if (ydoc_int(d, v, INT64_MIN, INT64_MAX, key, &iv, &ignored) == 0)
                memcpy(field, &iv, sizeof(iv));
            break;
        case EK_INT:
            if (ydoc_int(d, v, INT32_MIN, INT32_MAX, key, &iv, &ignored) == 0) {
                int x = (int)iv;
                memcpy(field, &x, sizeof(x));
            }
            break;
        case EK_BOOL:
            if (ydoc_bool(d, v, key, &bv, &ignored) == 0)
                memcpy(field, &bv, sizeof(bv));
            break;
        case EK_STR:
            sw_strlcpy(field, s, k->size);
            break;
        }
    }
    if (!section && !strcmp(key, "peak_dtype")) {
        for (int dt = 0; dt < HW_DT_COUNT; dt++)
            if (!strcmp(s, hw_dtype_name((enum hw_dtype)dt)))
                e->peak_dtype = (enum hw_dtype)dt;
    }
}

/* Read back what estimate_emit wrote: only checked to be a mapping; values that do not parse
 * are skipped (the advisor recomputes the estimate; this copy is for comparison). */
static int load_estimate(struct loader *ld, struct plan *p, struct sw_err *err)
{
    struct ydoc *d = &ld->d;
    yaml_node_t *map = ld->estimate;
    if (!map)
        return 0;
    struct estimate *e = &p->estimate;
    estimate_init(e);
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&d->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&d->doc, pr->value);
        if (!k || k->type != YAML_SCALAR_NODE || !v)
            continue;
        const char *key = (const char *)k->data.scalar.value;
        bool calib = !strcmp(key, "calibration");
        if (v->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *k2 = yaml_document_get_node(&d->doc, q->key);
                yaml_node_t *v2 = yaml_document_get_node(&d->doc, q->value);
                if (!k2 || k2->type != YAML_SCALAR_NODE || !v2)
                    continue;
                const char *key2 = (const char *)k2->data.scalar.value;
                if (calib && v2->type == YAML_MAPPING_NODE) {
                    /* {value, source}: "calibrated" marks the set loaded from calibration */
                    yaml_node_t *src = ydoc_get(d, v2, "source");
                    est_set(d, e, key, key2, ydoc_get(d, v2, "value"));
                    if (src && src->type == YAML_SCALAR_NODE && strcmp(key2, "achieved_flops") &&
                        !strcmp((const char *)src->data.scalar.value, "calibrated"))
                        e->calib.calibrated = true;
                } else {
                    est_set(d, e, key, key2, v2);
                }
            }
        } else if (v->type == YAML_SEQUENCE_NODE && !strcmp(key, "reasons")) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top && e->n_reasons < ADVISOR_MAX_REASONS; it++) {
                yaml_node_t *r = yaml_document_get_node(&d->doc, *it);
                if (r && r->type == YAML_SCALAR_NODE)
                    sw_strlcpy(e->reasons[e->n_reasons++], (const char *)r->data.scalar.value,
                               ADVISOR_REASON_MAX);
            }
        } else {
            est_set(d, e, NULL, key, v);
        }
    }
    e->valid = true;
    p->has_estimate = true;
    (void)err;
    return 0;
}

/* ------------------------------------------------------------------ the document */

static int load_doc(struct loader *ld, struct plan *p, struct sw_err *err)
{
    struct ydoc *d = &ld->d;
    int rc;
    ld->root = ydoc_root(d);
    if ((rc = ydoc_expect_map(d, ld->root, "a plan", err)) < 0)
        return rc;

    /* The version first: a newer plan's new keys are not "unknown keys". */
    yaml_node_t *n = ydoc_get(d, ld->root, "scalewise_plan");
    if (!n)
        return ydoc_err(d, ld->root, SW_EINVAL, err,
                        "missing key 'scalewise_plan': not a scalewise plan? expected "
                        "'scalewise_plan: %d' on the first line",
                        PLAN_VERSION);
    int64_t version = 0;
    if ((rc = ydoc_int(d, n, INT32_MIN, INT32_MAX, "scalewise_plan", &version, err)) < 0)
        return rc;
    if (version != PLAN_VERSION)
        return ydoc_err(d, n, SW_EINVAL, err,
                        "unsupported plan version %lld; this scalewise reads version %d "
                        "(scalewise_plan: %d)",
                        (long long)version, PLAN_VERSION, PLAN_VERSION);
    p->version = (int)version;

    if ((rc = ydoc_check_keys(d, ld->root, top_keys, "plan", err)) < 0 ||
        (rc = ydoc_opt_str(d, ld->root, "name", "", p->name, sizeof(p->name), err)) < 0)
        return rc;
    yaml_node_t *task = ydoc_get(d, ld->root, "task");
    if (!task)
        return ydoc_err(d, ld->root, SW_EINVAL, err,
                        "missing key 'task'; expected task: train or task: infer");
    int t = 0;
    if ((rc = ydoc_word(d, task, (const char *const[]){"train", "infer", NULL}, "task", &t, err)) <
        0)
        return rc;
    p->workload.task = (enum sw_task)t;

    if ((rc = get_section(ld, "hardware", &ld->hw, err)) < 0 ||
        (rc = get_section(ld, "model", &ld->model, err)) < 0 ||
        (rc = get_section(ld, "data", &ld->data, err)) < 0 ||
        (rc = get_section(ld, "train", &ld->train, err)) < 0 ||
        (rc = get_section(ld, "infer", &ld->infer, err)) < 0 ||
        (rc = get_section(ld, "strategy", &ld->strategy, err)) < 0 ||
        (rc = get_section(ld, "launch", &ld->launch, err)) < 0 ||
        (rc = get_section(ld, "estimate", &ld->estimate, err)) < 0)
        return rc;
    const char *other = p->workload.task == TASK_TRAIN ? "infer" : "train";
    yaml_node_t *wrong = ydoc_get_key(d, ld->root, other);
    if (wrong)
        return ydoc_err(d, wrong, SW_EINVAL, err,
                        "section '%s' is only for task: %s (this plan has task: %s)", other, other,
                        task_name(p->workload.task));

    /* Syntax of every section first, then what it names (profiles, files, the probe). */
    if ((rc = load_hardware(ld, p, err)) < 0 || (rc = load_model(ld, p, err)) < 0 ||
        (rc = load_data(ld, p, err)) < 0 || (rc = load_train(ld, p, err)) < 0 ||
        (rc = load_infer(ld, p, err)) < 0 || (rc = load_strategy(ld, p, err)) < 0 ||
        (rc = load_launch(ld, p, err)) < 0 || (rc = load_estimate(ld, p, err)) < 0)
        return rc;

    const char *culprit = NULL;
    if ((rc = plan_check(p, &culprit, err)) < 0)
        return place(ld, node_for(ld, culprit), rc, err);
    if ((rc = advisor_check(&p->model, &p->hardware, &p->workload, &p->strategy, err)) < 0) {
        yaml_node_t *at = ydoc_get_key(d, ld->root, "strategy");
        return place(ld, at ? at : task, rc, err);
    }
    return 0;
}

int plan_load_string(const char *yaml, size_t len, const char *name_for_errors, struct plan *p,
                     struct sw_err *err)
{
    struct sw_err local;
    if (!err)
        err = &local; /* place() reads err->msg */
    sw_err_init(err);
    plan_init(p);
    struct loader ld;
    memset(&ld, 0, sizeof(ld));
    const char *file = name_for_errors ? name_for_errors : "<plan>";
    dir_of(file, ld.base_dir, sizeof(ld.base_dir));
    int rc = ydoc_load(&ld.d, yaml, len, file, err);
    if (rc < 0)
        return rc;
    rc = load_doc(&ld, p, err);
    ydoc_release(&ld.d);
    /* The name stands for the file: relative paths were resolved against its directory, and
     * plan_to_yaml resolves them the same way. */
    if (rc == 0 && name_for_errors)
        sw_strlcpy(p->source_path, name_for_errors, sizeof(p->source_path));
    return rc;
}

int plan_load(const char *path, struct plan *p, struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(path, PLAN_FILE_MAX_BYTES, &text, &len, err);
    if (rc < 0) {
        plan_init(p);
        return rc;
    }
    rc = plan_load_string(text, len, path, p, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ writing */

static void emit_hardware(struct sw_emit *e, const struct plan *p)
{
    const struct plan_hardware_ref *r = &p->hw_ref;
    const struct hardware *hw = &p->hardware;
    int nodes = hw->nodes >= 1 ? hw->nodes : (r->nodes >= 1 ? r->nodes : 1);
    sw_emit_map_begin(e, "hardware");
    bool probe = r->probe || (!r->profile[0] && !r->file[0] && hw->source == HW_SRC_PROBE);
    if (r->profile[0])
        sw_emit_str(e, "profile", r->profile);
    else if (r->file[0])
        sw_emit_str(e, "file", r->file);
    else if (probe)
        sw_emit_bool(e, "probe", true);
    else
        sw_emit_str(e, "profile", hw->name); /* built in memory from a profile */
    sw_emit_i64(e, "nodes", nodes);
    if (!probe)
        sw_emit_i64(e, "gpus_per_node", hw->n_gpus);
    else if (r->gpus_per_node >= 0)
        sw_emit_i64(e, "gpus_per_node", r->gpus_per_node);
    sw_emit_map_end(e);
}

static const char *mdtype_name(int bytes)
{
    return bytes == 4 ? "fp32" : "bf16";
}

/* The model: its reference, then only the keys that differ from what the reference gives (all
 * of them for an inline model), so the reload applies the same overrides. */
static void emit_model(struct sw_emit *e, const struct plan *p, const struct model_desc *base)
{
    const struct model_desc *m = &p->model;
    bool all = base == NULL;
    sw_emit_map_begin(e, "model");
    if (p->model_ref.profile[0])
        sw_emit_str(e, "profile", p->model_ref.profile);
    else if (p->model_ref.config_json[0])
        sw_emit_str(e, "config_json", p->model_ref.config_json);
    if (all || strcmp(m->name, base->name))
        sw_emit_str(e, "name", m->name);
    bool arch_changed = all || m->arch != base->arch;
    if (arch_changed)
        sw_emit_str(e, "arch", model_arch_name(m->arch));
#define MODEL_INT(key, field)                                                                      \
    if (all || m->field != base->field)                                                            \
    sw_emit_i64(e, key, m->field)
    MODEL_INT("layers", n_layers);
    MODEL_INT("hidden", hidden);
    MODEL_INT("heads", n_heads);
    MODEL_INT("kv_heads", n_kv_heads);
    MODEL_INT("head_dim", head_dim);
    MODEL_INT("ffn", ffn);
    MODEL_INT("vocab", vocab);
    MODEL_INT("max_pos", max_pos);
#undef MODEL_INT
    /* Flags follow the architecture when it changed, so then they are all written. */
    bool flags_all = all || arch_changed;
    if (flags_all || m->tied_head != base->tied_head)
        sw_emit_bool(e, "tied_head", m->tied_head);
    if (flags_all || m->bias != base->bias)
        sw_emit_bool(e, "bias", m->bias);
    if (flags_all || m->rms_norm != base->rms_norm)
        sw_emit_str(e, "norm", m->rms_norm ? "rmsnorm" : "layernorm");
    if (flags_all || m->swiglu != base->swiglu)
        sw_emit_str(e, "activation", m->swiglu ? "swiglu" : "gelu");
    if ((all && m->sliding_window) || (!all && m->sliding_window != base->sliding_window))
        sw_emit_i64(e, "sliding_window", m->sliding_window);
    if ((all && m->rope_theta != 0) || (!all && m->rope_theta != base->rope_theta))
        sw_emit_num(e, "rope_theta", m->rope_theta);
    if ((all && m->norm_eps != 0) || (!all && m->norm_eps != base->norm_eps))
        sw_emit_num(e, "norm_eps", m->norm_eps);
    if (m->stored_bytes_per_param &&
        (all || m->stored_bytes_per_param != base->stored_bytes_per_param))
        sw_emit_str(e, "dtype", mdtype_name(m->stored_bytes_per_param));
    sw_emit_map_end(e);
}

static void emit_data(struct sw_emit *e, const struct plan *p)
{
    const struct plan_data *d = &p->data;
    bool train = p->workload.task == TASK_TRAIN;
    sw_emit_map_begin(e, "data");
    if (d->path[0])
        sw_emit_str(e, "path", d->path);
    sw_emit_str(e, "tokenizer", d->tokenizer);
    if (d->vocab_path[0])
        sw_emit_str(e, "vocab", d->vocab_path);
    if (d->merges_path[0])
        sw_emit_str(e, "merges", d->merges_path);
    if (train) /* inference reads no corpus: only the tokenizer matters */
        sw_emit_num(e, "val_fraction", d->val_fraction);
    sw_emit_map_end(e);
}

static void emit_train(struct sw_emit *e, const struct plan *p)
{
    const struct plan_train *t = &p->train;
    const struct workload *w = &p->workload;
    sw_emit_map_begin(e, "train");
    sw_emit_i64(e, "steps", t->steps);
    sw_emit_i64(e, "seq", w->seq);
    sw_emit_i64(e, "global_batch", w->global_batch);
    sw_emit_i64(e, "tokens", w->tokens_total);
    sw_emit_num(e, "lr", t->lr);
    sw_emit_num(e, "min_lr", t->min_lr);
    sw_emit_str(e, "schedule", lr_schedule_name(t->schedule));
    sw_emit_i64(e, "warmup_steps", t->warmup_steps);
    sw_emit_num(e, "weight_decay", t->weight_decay);
    sw_emit_num(e, "grad_clip", t->grad_clip);
    sw_emit_num(e, "beta1", t->beta1);
    sw_emit_num(e, "beta2", t->beta2);
    sw_emit_num(e, "eps", t->eps);
    sw_emit_u64(e, "seed", t->seed);
    sw_emit_i64(e, "eval_every", t->eval_every);
    sw_emit_i64(e, "eval_batches", t->eval_batches);
    sw_emit_i64(e, "checkpoint_every", t->checkpoint_every);
    sw_emit_str(e, "out_dir", t->out_dir);
    if (t->resume[0])
        sw_emit_str(e, "resume", t->resume);
    sw_emit_str(e, "lora_targets", t->lora_targets);
    sw_emit_i64(e, "log_every", t->log_every);
    if (p->strategy.precision == PREC_FP16_MIXED) {
        if (t->loss_scale > 0)
            sw_emit_num(e, "loss_scale", t->loss_scale);
        else
            sw_emit_str(e, "loss_scale", "dynamic");
        sw_emit_num(e, "loss_scale_init", t->loss_scale_init);
        sw_emit_i64(e, "loss_scale_window", t->loss_scale_window);
    }
    sw_emit_map_end(e);
}

static void emit_infer(struct sw_emit *e, const struct plan *p)
{
    const struct plan_infer *in = &p->infer;
    const struct workload *w = &p->workload;
    sw_emit_map_begin(e, "infer");
    if (in->checkpoint[0])
        sw_emit_str(e, "checkpoint", in->checkpoint);
    if (in->prompt[0])
        sw_emit_str(e, "prompt", in->prompt);
    sw_emit_i64(e, "batch", w->batch);
    sw_emit_i64(e, "prompt_len", w->prompt_len);
    sw_emit_i64(e, "gen_len", w->gen_len);
    sw_emit_num(e, "temperature", in->temperature);
    sw_emit_i64(e, "top_k", in->top_k);
    sw_emit_num(e, "top_p", in->top_p);
    sw_emit_u64(e, "seed", in->seed);
    sw_emit_map_end(e);
}

/* Every knob that matters for the task, always written, so the plan reads like the command. */
static void emit_strategy(struct sw_emit *e, const struct plan *p)
{
    const struct strategy *s = &p->strategy;
    bool train = p->workload.task == TASK_TRAIN;
    sw_emit_map_begin(e, "strategy");
    sw_emit_str(e, "device", device_name(s->device));
    sw_emit_str(e, "precision", precision_name(s->precision));
    if (train) {
        sw_emit_str(e, "optimizer", optimizer_name(s->optimizer));
        sw_emit_i64(e, "micro_batch", s->micro_batch);
        sw_emit_i64(e, "grad_accum", s->grad_accum);
        sw_emit_str(e, "recompute", recompute_name(s->recompute));
    }
    sw_emit_str(e, "attention", attention_name(s->attention));
    sw_emit_i64(e, "dp", s->dp);
    sw_emit_i64(e, "tp", s->tp);
    sw_emit_i64(e, "pp", s->pp);
    sw_emit_i64(e, "pp_interleave", s->pp_interleave);
    sw_emit_i64(e, "zero", s->zero);
    sw_emit_bool(e, "sequence_parallel", s->sequence_parallel);
    if (train) { /* offload and adapters are training-only (advisor_check) */
        sw_emit_bool(e, "offload_optimizer", s->offload_optimizer);
        sw_emit_bool(e, "offload_params", s->offload_params);
        sw_emit_i64(e, "lora_rank", s->lora_rank);
    }
    if (!train || s->lora_rank > 0)
        sw_emit_str(e, "weights", wformat_name(s->weights));
    if (!train)
        sw_emit_str(e, "kv_dtype", wformat_name(s->kv_dtype));
    sw_emit_i64(e, "threads", s->threads);
    sw_emit_map_end(e);
}

/* Only the keys a section has: a hand-written one round-trips as written. */
static void emit_launch(struct sw_emit *e, const struct plan_launch *l)
{
    sw_emit_map_begin(e, "launch");
    if (l->processes > 0)
        sw_emit_i64(e, "processes", l->processes);
    if (l->nodes > 0)
        sw_emit_i64(e, "nodes", l->nodes);
    if (l->per_node > 0)
        sw_emit_i64(e, "per_node", l->per_node);
    if (l->mpirun[0])
        sw_emit_str(e, "mpirun", l->mpirun);
    if (l->srun[0])
        sw_emit_str(e, "srun", l->srun);
    if (l->torchrun[0])
        sw_emit_str(e, "torchrun", l->torchrun);
    if (l->nproc[0])
        sw_emit_str(e, "nproc", l->nproc);
    sw_emit_map_end(e);
}

/* plan_to_yaml with the launch section `launch` (NULL: none). */
static int to_yaml(const struct plan *p, const struct plan_launch *launch, struct sw_buf *out,
                   struct sw_err *err)
{
    /* The base model the inline keys are measured against (read again: a plan keeps only its
     * reference). Relative config_json paths start at the plan's own directory. */
    struct model_desc base;
    bool has_base = false;
    char base_dir[PLAN_PATH_MAX];
    dir_of(p->source_path, base_dir, sizeof(base_dir));
    struct sw_err base_err;
    sw_err_init(&base_err);
    if (load_model_base(&p->model_ref, base_dir, &base, &has_base, &base_err) < 0)
        has_base = false; /* write every key: the plan still says what the model is */

    struct sw_buf text;
    sw_buf_init(&text, PLAN_TEXT_MAX_BYTES);
    struct sw_emit e;
    sw_emit_init_buf(&e, &text, SW_FMT_YAML);
    int rc = sw_buf_printf(&text, err, "# scalewise plan; the format is in docs/plan-format.md\n");
    if (rc < 0)
        goto out;
    sw_emit_map_begin(&e, NULL);
    sw_emit_i64(&e, "scalewise_plan", p->version);
    if (p->name[0])
        sw_emit_str(&e, "name", p->name);
    sw_emit_str(&e, "task", task_name(p->workload.task));
    emit_hardware(&e, p);
    emit_model(&e, p, has_base ? &base : NULL);
    emit_data(&e, p);
    if (p->workload.task == TASK_TRAIN)
        emit_train(&e, p);
    else
        emit_infer(&e, p);
    emit_strategy(&e, p);
    if (launch && launch->present)
        emit_launch(&e, launch);
    if (p->has_estimate)
        estimate_emit(&e, "estimate", &p->estimate);
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    /* The emitter drops what does not fit; a full buffer means the text is cut short. */
    if (text.len + 1 >= PLAN_TEXT_MAX_BYTES) {
        rc = sw_errf(err, SW_ERANGE, "the plan's text exceeds %u bytes", PLAN_TEXT_MAX_BYTES);
        goto out;
    }
    rc = sw_buf_append(out, text.data, text.len, err);
out:
    sw_buf_release(&text);
    return rc;
}

int plan_to_yaml(const struct plan *p, struct sw_buf *out, struct sw_err *err)
{
    return to_yaml(p, &p->launch, out, err);
}

int plan_save(const char *path, const struct plan *p, struct sw_err *err)
{
    struct sw_buf b;
    sw_buf_init(&b, PLAN_TEXT_MAX_BYTES);
    /* A plan the advisor wrote (it has an estimate) says how to start its processes: the
     * commands name the file as it is saved here. A loaded section is kept as it is. */
    struct plan_launch *built = NULL;
    const struct plan_launch *launch = &p->launch;
    if (!p->launch.present && p->has_estimate) {
        built = sw_xmalloc(sizeof(*built));
        plan_launch_build(&p->strategy, &p->hardware, path, built);
        launch = built;
    }
    int rc = to_yaml(p, launch, &b, err);
    free(built);
    if (rc == 0)
        rc = sw_write_file_atomic(path, b.data, b.len, err);
    sw_buf_release(&b);
    return rc;
}
