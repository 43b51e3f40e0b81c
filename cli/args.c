/* The shared command-line parser of estimate, plan (and the commands that later take the same
 * setup): model flags (--model, --model-config, or --layers/--hidden/--heads...), hardware
 * flags (--gpu, --hardware probe|FILE, --nodes, --gpus-per-node), workload flags and every
 * strategy knob. It accepts "--flag value" and "--flag=value", names the flag in every error,
 * suggests the closest flag for a typo, and resolves the result: loads the model and the
 * hardware, and fills the strategy defaults the user did not give (device, precision and
 * attention from what the device supports, dp from the device count, grad_accum from the
 * global batch). Printing the results is left to the commands. */
#include "cli/cli_int.h"

#include <stdarg.h>
#include <string.h>

enum flag_id {
    F_MODEL,
    F_MODEL_CONFIG,
    F_LAYERS,
    F_HIDDEN,
    F_HEADS,
    F_KV_HEADS,
    F_FFN,
    F_VOCAB,
    F_ARCH,
    F_TASK,
    F_GPU,
    F_HARDWARE,
    F_NODES,
    F_GPN,
    F_PRECISION,
    F_OPTIMIZER,
    F_SEQ,
    F_MICRO_BATCH,
    F_GLOBAL_BATCH,
    F_GRAD_ACCUM,
    F_DP,
    F_TP,
    F_PP,
    F_INTERLEAVE,
    F_ZERO,
    F_SP,
    F_RECOMPUTE,
    F_ATTENTION,
    F_OFFLOAD_OPT,
    F_OFFLOAD_PARAMS,
    F_LORA,
    F_WEIGHTS,
    F_KV,
    F_BATCH,
    F_PROMPT,
    F_GEN,
    F_ACHIEVED,
    F_FORMAT,
    F_DEVICE,
    F_THREADS,
    F_CALIBRATION,
    F_COUNT
};

/* One table of the shared flags, in enum order: name and whether it takes a value. */
static const struct cli_flag shared_flags[F_COUNT] = {
    {"--model", true},
    {"--model-config", true},
    {"--layers", true},
    {"--hidden", true},
    {"--heads", true},
    {"--kv-heads", true},
    {"--ffn", true},
    {"--vocab", true},
    {"--arch", true},
    {"--task", true},
    {"--gpu", true},
    {"--hardware", true},
    {"--nodes", true},
    {"--gpus-per-node", true},
    {"--precision", true},
    {"--optimizer", true},
    {"--seq", true},
    {"--micro-batch", true},
    {"--global-batch", true},
    {"--grad-accum", true},
    {"--dp", true},
    {"--tp", true},
    {"--pp", true},
    {"--pp-interleave", true},
    {"--zero", true},
    {"--sequence-parallel", false},
    {"--recompute", true},
    {"--attention", true},
    {"--offload-optimizer", false},
    {"--offload-params", false},
    {"--lora-rank", true},
    {"--weights", true},
    {"--kv-dtype", true},
    {"--batch", true},
    {"--prompt-len", true},
    {"--gen-len", true},
    {"--achieved-tflops", true},
    {"--format", true},
    {"--device", true},
    {"--threads", true},
    {"--calibration", true},
};

static const char *const arch_words[] = {"gpt2", "llama", NULL};

void cli_setup_init(struct cli_setup *s)
{
    memset(s, 0, sizeof(*s));
    workload_init(&s->wl);
    strategy_init(&s->st);
    s->arch = MODEL_ARCH_LLAMA;
    s->fmt = SW_FMT_TEXT;
    advisor_calib_default(&s->cal);
    hw_init(&s->hw);
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* Wrap a value error so it names the flag: "--precision: unknown precision 'fp13'; ...". */
static int flag_err(struct sw_err *err, const char *flag, int rc)
{
    char msg[SW_ERR_MSG_MAX];
    sw_strlcpy(msg, err->msg, sizeof(msg));
    return sw_errf(err, rc, "%s: %s", flag, msg);
}

static int parse_int_flag(const char *flag, const char *v, int min, int max, int *out,
                          struct sw_err *err)
{
    int rc = sw_parse_int(v, min, max, "value", out, err);
    return rc < 0 ? flag_err(err, flag, rc) : 0;
}

static int parse_word(const char *flag, const char *v, const char *const *words, int *out,
                      struct sw_err *err)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(v, words[i])) {
            *out = i;
            return 0;
        }
    const char *near = sw_suggest(v, words);
    if (near)
        return sw_errf(err, SW_EINVAL, "%s: unknown value '%s'; did you mean '%s'?", flag, v, near);
    return sw_errf(err, SW_EINVAL, "%s: unknown value '%s'", flag, v);
}

/* Apply one shared flag with its value (NULL for switches). */
static int apply_flag(struct cli_setup *s, enum flag_id id, const char *v, struct sw_err *err)
{
    const char *name = shared_flags[id].name;
    int rc = 0, i = 0;
    int64_t i64 = 0;
    switch (id) {
    case F_MODEL:
        if (sw_strlcpy(s->model_profile, v, sizeof(s->model_profile)) >= sizeof(s->model_profile))
            return sw_errf(err, SW_EINVAL, "%s: name too long", name);
        return 0;
    case F_MODEL_CONFIG:
        if (sw_strlcpy(s->model_config, v, sizeof(s->model_config)) >= sizeof(s->model_config))
            return sw_errf(err, SW_EINVAL, "%s: path too long", name);
        return 0;
    case F_LAYERS:
        return parse_int_flag(name, v, 1, 100000, &s->layers, err);
    case F_HIDDEN:
        return parse_int_flag(name, v, 1, 1 << 20, &s->hidden, err);
    case F_HEADS:
        return parse_int_flag(name, v, 1, 1 << 16, &s->heads, err);
    case F_KV_HEADS:
        return parse_int_flag(name, v, 1, 1 << 16, &s->kv_heads, err);
    case F_FFN:
        return parse_int_flag(name, v, 1, 1 << 22, &s->ffn, err);
    case F_VOCAB:
        return parse_int_flag(name, v, 1, 1 << 24, &s->vocab, err);
    case F_ARCH:
        if ((rc = parse_word(name, v, arch_words, &i, err)) < 0)
            return rc;
        s->arch = (enum model_arch)i;
        s->arch_given = true;
        return 0;
    case F_TASK:
        rc = task_parse(v, &s->wl.task, err);
        break;
    case F_GPU:
        if (sw_strlcpy(s->hw_profile, v, sizeof(s->hw_profile)) >= sizeof(s->hw_profile))
            return sw_errf(err, SW_EINVAL, "%s: name too long", name);
        s->hw_file[0] = '\0';
        s->hw_probe = false;
        return 0;
    case F_HARDWARE:
        s->hw_profile[0] = '\0';
        s->hw_probe = !strcmp(v, "probe");
        s->hw_file[0] = '\0';
        if (!s->hw_probe && sw_strlcpy(s->hw_file, v, sizeof(s->hw_file)) >= sizeof(s->hw_file))
            return sw_errf(err, SW_EINVAL, "%s: path too long", name);
        return 0;
    case F_NODES:
        return parse_int_flag(name, v, 1, 1 << 20, &s->nodes, err);
    case F_GPN:
        return parse_int_flag(name, v, 1, HW_MAX_GPUS, &s->gpus_per_node, err);
    case F_PRECISION:
        rc = precision_parse(v, &s->st.precision, err);
        break;
    case F_OPTIMIZER:
        rc = optimizer_parse(v, &s->st.optimizer, err);
        break;
    case F_SEQ:
        return parse_int_flag(name, v, 1, 1 << 24, &s->wl.seq, err);
    case F_MICRO_BATCH:
        return parse_int_flag(name, v, 1, 1 << 20, &s->st.micro_batch, err);
    case F_GLOBAL_BATCH:
        rc = sw_parse_i64(v, 1, (int64_t)1 << 40, "value", &i64, err);
        if (rc == 0)
            s->global_batch = i64;
        break;
    case F_GRAD_ACCUM:
        return parse_int_flag(name, v, 1, 1 << 24, &s->st.grad_accum, err);
    case F_DP:
        return parse_int_flag(name, v, 1, 1 << 24, &s->st.dp, err);
    case F_TP:
        return parse_int_flag(name, v, 1, 1024, &s->st.tp, err);
    case F_PP:
        return parse_int_flag(name, v, 1, 100000, &s->st.pp, err);
    case F_INTERLEAVE:
        return parse_int_flag(name, v, 1, 1024, &s->st.pp_interleave, err);
    case F_ZERO:
        return parse_int_flag(name, v, 0, 3, &s->st.zero, err);
    case F_SP:
        s->st.sequence_parallel = true;
        return 0;
    case F_RECOMPUTE:
        rc = recompute_parse(v, &s->st.recompute, err);
        break;
    case F_ATTENTION:
        rc = attention_parse(v, &s->st.attention, err);
        break;
    case F_OFFLOAD_OPT:
        s->st.offload_optimizer = true;
        return 0;
    case F_OFFLOAD_PARAMS:
        s->st.offload_params = true;
        return 0;
    case F_LORA:
        return parse_int_flag(name, v, 0, 1 << 16, &s->st.lora_rank, err);
    case F_WEIGHTS:
        rc = wformat_parse(v, &s->st.weights, err);
        break;
    case F_KV:
        rc = wformat_parse(v, &s->st.kv_dtype, err);
        break;
    case F_BATCH:
        return parse_int_flag(name, v, 1, 1 << 20, &s->wl.batch, err);
    case F_PROMPT:
        return parse_int_flag(name, v, 1, 1 << 24, &s->wl.prompt_len, err);
    case F_GEN:
        return parse_int_flag(name, v, 0, 1 << 24, &s->wl.gen_len, err);
    case F_ACHIEVED:
        rc = sw_parse_double(v, 1e-6, 1e9, "value", &s->achieved_tflops, err);
        break;
    case F_FORMAT:
        rc = sw_fmt_parse(v, &s->fmt, err);
        break;
    case F_DEVICE:
        rc = device_parse(v, &s->st.device, err);
        break;
    case F_THREADS:
        return parse_int_flag(name, v, 0, 1 << 16, &s->st.threads, err);
    case F_CALIBRATION:
        if (!*v)
            return sw_errf(err, SW_EINVAL, "%s needs a file name", name);
        if (sw_strlcpy(s->calib.path, v, sizeof(s->calib.path)) >= sizeof(s->calib.path))
            return sw_errf(err, SW_EINVAL, "%s: path too long", name);
        return 0;
    case F_COUNT:
        SW_ASSERT(0);
    }
    return rc < 0 ? flag_err(err, name, rc) : 0;
}

/* Which bit of cli_setup.given a flag sets (0 for those with their own field). */
static unsigned given_bit(enum flag_id id)
{
    switch (id) {
    case F_TASK:
        return CLI_G_TASK;
    case F_PRECISION:
        return CLI_G_PRECISION;
    case F_OPTIMIZER:
        return CLI_G_OPTIMIZER;
    case F_MICRO_BATCH:
        return CLI_G_MICRO_BATCH;
    case F_GLOBAL_BATCH:
        return CLI_G_GLOBAL_BATCH;
    case F_GRAD_ACCUM:
        return CLI_G_GRAD_ACCUM;
    case F_DP:
        return CLI_G_DP;
    case F_TP:
        return CLI_G_TP;
    case F_PP:
        return CLI_G_PP;
    case F_INTERLEAVE:
        return CLI_G_INTERLEAVE;
    case F_ZERO:
        return CLI_G_ZERO;
    case F_SP:
        return CLI_G_SP;
    case F_RECOMPUTE:
        return CLI_G_RECOMPUTE;
    case F_ATTENTION:
        return CLI_G_ATTENTION;
    case F_OFFLOAD_OPT:
        return CLI_G_OFFLOAD_OPT;
    case F_OFFLOAD_PARAMS:
        return CLI_G_OFFLOAD_PARAMS;
    case F_LORA:
        return CLI_G_LORA;
    case F_WEIGHTS:
        return CLI_G_WEIGHTS;
    case F_KV:
        return CLI_G_KV;
    case F_DEVICE:
        return CLI_G_DEVICE;
    case F_THREADS:
        return CLI_G_THREADS;
    case F_SEQ:
        return CLI_G_SEQ;
    case F_BATCH:
        return CLI_G_BATCH;
    case F_PROMPT:
        return CLI_G_PROMPT;
    case F_GEN:
        return CLI_G_GEN;
    case F_ACHIEVED:
        return CLI_G_ACHIEVED;
    case F_FORMAT:
        return CLI_G_FORMAT;
    default:
        return 0;
    }
}

static int unknown_flag(const char *arg, const struct cli_flag *extra, struct sw_err *err)
{
    const char *words[F_COUNT + 64];
    int n = 0;
    for (int i = 0; i < F_COUNT; i++)
        words[n++] = shared_flags[i].name;
    for (int i = 0; extra && extra[i].name && n < F_COUNT + 62; i++)
        words[n++] = extra[i].name;
    words[n++] = "--help";
    words[n] = NULL;
    const char *near = sw_suggest(arg, words);
    if (near)
        return sw_errf(err, SW_EINVAL, "unknown flag '%s'; did you mean '%s'?", arg, near);
    return sw_errf(err, SW_EINVAL, "unknown flag '%s'", arg);
}

int cli_parse(int argc, char **argv, struct cli_setup *s, const struct cli_flag *extra,
              cli_extra_fn fn, void *ctx, struct sw_err *err)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || !strcmp(arg, "-")) {
            if (!fn)
                return sw_errf(err, SW_EINVAL, "unexpected argument '%s'", arg);
            int rc = fn(ctx, NULL, arg, err);
            if (rc < 0)
                return rc;
            continue;
        }
        /* Split "--flag=value". */
        char name[64];
        const char *eq = strchr(arg, '=');
        const char *inline_val = NULL;
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof(name))
            return unknown_flag(arg, extra, err);
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (eq)
            inline_val = eq + 1;

        int id = -1;
        const struct cli_flag *xf = NULL;
        for (int k = 0; k < F_COUNT; k++)
            if (!strcmp(name, shared_flags[k].name)) {
                id = k;
                break;
            }
        if (id < 0 && extra)
            for (int k = 0; extra[k].name; k++)
                if (!strcmp(name, extra[k].name)) {
                    xf = &extra[k];
                    break;
                }
        if (id < 0 && !xf)
            return unknown_flag(name, extra, err);
        bool has_value = id >= 0 ? shared_flags[id].has_value : xf->has_value;
        const char *val = NULL;
        if (has_value) {
            if (inline_val) {
                val = inline_val;
            } else {
                if (i + 1 >= argc)
                    return sw_errf(err, SW_EINVAL, "%s needs a value", name);
                val = argv[++i];
            }
        } else if (inline_val) {
            return sw_errf(err, SW_EINVAL, "%s takes no value (got '%s')", name, inline_val);
        }
        int rc;
        if (id >= 0) {
            rc = apply_flag(s, (enum flag_id)id, val, err);
            s->given |= given_bit((enum flag_id)id);
        } else {
            rc = fn ? fn(ctx, xf->name, val, err) : sw_errf(err, SW_EINVAL, "%s", name);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cli_devices(const struct hardware *hw)
{
    return hw_devices(hw);
}

/* Resize the node to `g` GPUs: extra GPUs copy the first one and its link class. */
static int set_gpus_per_node(struct hardware *hw, int g, struct sw_err *err)
{
    if (hw->n_gpus == 0)
        return sw_errf(err, SW_EINVAL,
                       "--gpus-per-node: hardware '%s' has no GPUs (it is CPU-only)", hw->name);
    hw_set_gpus_per_node(hw, g);
    return 0;
}

static int load_model(struct cli_setup *s, struct sw_err *err)
{
    struct model_desc *m = &s->model;
    bool sizes = s->layers || s->hidden || s->heads || s->kv_heads || s->ffn || s->vocab;
    int rc = 0;
    if (s->model_profile[0] && s->model_config[0])
        return sw_errf(err, SW_EINVAL, "give either --model or --model-config, not both");
    if (s->model_profile[0]) {
        /* A path (has a '/' or ends in .yaml) is a model file of the profile format. */
        size_t n = strlen(s->model_profile);
        if (strchr(s->model_profile, '/') ||
            (n > 5 && !strcmp(s->model_profile + n - 5, ".yaml")))
            rc = model_load_file(s->model_profile, m, err);
        else
            rc = profile_load_model(s->model_profile, m, err);
    } else if (s->model_config[0]) {
        rc = model_load_hf_config(s->model_config, m, err);
    } else if (sizes) {
        if (!s->layers || !s->hidden || !s->heads)
            return sw_errf(err, SW_EINVAL,
                           "a model given by sizes needs --layers, --hidden and --heads");
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "custom");
        m->arch = s->arch;
        m->vocab = 50257;
        m->rope_theta = 10000.0;
        m->norm_eps = 1e-5;
    } else {
        return sw_errf(err, SW_EINVAL,
                       "no model: give --model NAME, --model-config FILE or "
                       "--layers L --hidden H --heads A");
    }
    if (rc < 0)
        return rc;
    /* Size flags override what the profile or config says. */
    bool shape_changed = false, arch_changed = false;
    if (s->arch_given && m->arch != s->arch) {
        m->arch = s->arch;
        shape_changed = arch_changed = true;
    }
    if (s->layers)
        m->n_layers = s->layers;
    if (s->hidden) {
        m->hidden = s->hidden;
        shape_changed = true;
    }
    if (s->heads) {
        m->n_heads = s->heads;
        shape_changed = true;
    }
    if (s->kv_heads)
        m->n_kv_heads = s->kv_heads;
    if (s->ffn)
        m->ffn = s->ffn;
    if (s->vocab)
        m->vocab = s->vocab;
    if (shape_changed || sizes) {
        m->head_dim = 0;
        if (!s->ffn && shape_changed)
            m->ffn = 0;
        if (!s->kv_heads && shape_changed)
            m->n_kv_heads = 0;
    }
    if (shape_changed || sizes || !s->model_profile[0]) {
        /* model_fill_defaults resets the architecture flags; a profile or config.json decided
         * them (Qwen2.5-0.5B ties its head), so keep them unless the architecture changed. */
        bool keep = (s->model_profile[0] || s->model_config[0]) && !arch_changed;
        bool tied = m->tied_head, bias = m->bias, rms = m->rms_norm, swiglu = m->swiglu;
        model_fill_defaults(m);
        if (keep) {
            m->tied_head = tied;
            m->bias = bias;
            m->rms_norm = rms;
            m->swiglu = swiglu;
        }
    }
    /* A model given by sizes has no position table of its own: size it to the workload. */
    if (!s->model_profile[0] && !s->model_config[0]) {
        int need = s->wl.task == TASK_TRAIN ? s->wl.seq : s->wl.prompt_len + s->wl.gen_len;
        if (m->max_pos < need)
            m->max_pos = need;
        if (m->max_pos < 1024)
            m->max_pos = 1024;
    }
    return model_validate(m, err);
}

static int load_hardware(struct cli_setup *s, struct sw_err *err)
{
    int rc;
    if (s->hw_profile[0])
        rc = profile_load_hardware(s->hw_profile, &s->hw, err);
    else if (s->hw_file[0])
        rc = hw_load_file(s->hw_file, &s->hw, err);
    else {
        s->hw_probe = true; /* the default hardware is this machine */
        rc = hw_probe(&s->hw, true, err);
    }
    if (rc < 0)
        return rc;
    if (s->nodes)
        s->hw.nodes = s->nodes;
    if (s->hw.nodes < 1)
        s->hw.nodes = 1;
    if (s->gpus_per_node && (rc = set_gpus_per_node(&s->hw, s->gpus_per_node, err)) < 0)
        return rc;
    return 0;
}

static bool cpu_has_bf16(const struct hardware *hw)
{
    return (hw->cpu.isa & (HW_ISA_AVX512_BF16 | HW_ISA_AMX_BF16)) != 0;
}

static int fill_strategy(struct cli_setup *s, struct sw_err *err)
{
    struct strategy *st = &s->st;
    bool cpu_only = hw_is_cpu_only(&s->hw);
    if (cpu_only) {
        if ((s->given & CLI_G_DEVICE) && st->device == DEVICE_CUDA)
            return sw_errf(err, SW_EINVAL, "--device cuda: hardware '%s' has no GPUs", s->hw.name);
        st->device = DEVICE_CPU;
    } else if (!(s->given & CLI_G_DEVICE)) {
        st->device = DEVICE_CUDA;
    }
    bool on_cpu = st->device == DEVICE_CPU;
    int cc = hw_min_cc(&s->hw); /* the advisor plans for the slowest GPU */
    bool bf16_ok = on_cpu ? cpu_has_bf16(&s->hw) : cc >= 80;
    if (!(s->given & CLI_G_PRECISION))
        st->precision = bf16_ok ? PREC_BF16_MIXED : (on_cpu ? PREC_FP32 : PREC_FP16_MIXED);
    bool half = st->precision == PREC_BF16_MIXED || st->precision == PREC_FP16_MIXED ||
                st->precision == PREC_BF16;
    if (!(s->given & CLI_G_ATTENTION))
        st->attention = (half && (on_cpu || cc >= 80)) ? ATTN_FLASH : ATTN_NAIVE;
    enum sw_wformat w16 = bf16_ok ? WFMT_BF16 : (on_cpu ? WFMT_FP32 : WFMT_FP16);
    if (!(s->given & CLI_G_WEIGHTS))
        st->weights = st->lora_rank > 0 ? (bf16_ok ? WFMT_BF16 : WFMT_FP16) : w16;
    if (!(s->given & CLI_G_KV))
        st->kv_dtype = w16;

    int devices = on_cpu && !cpu_only ? s->hw.nodes : cli_devices(&s->hw);
    if (!(s->given & CLI_G_DP)) {
        int mp = st->tp * st->pp;
        if (devices % mp != 0)
            return sw_errf(err, SW_EINVAL,
                           "--tp %d x --pp %d = %d does not divide the %d devices; give --dp",
                           st->tp, st->pp, mp, devices);
        st->dp = devices / mp;
    }
    if (s->wl.task == TASK_TRAIN) {
        if ((s->given & CLI_G_GLOBAL_BATCH) && (s->given & CLI_G_GRAD_ACCUM))
            return sw_errf(err, SW_EINVAL, "give --global-batch or --grad-accum, not both");
        if ((s->given & CLI_G_GLOBAL_BATCH) && !(s->given & CLI_G_DP)) {
            /* A global batch too small (or not divisible) for every device: the largest dp
             * that it feeds exactly, leaving devices idle rather than failing (the estimate's
             * reasons say so). An explicit --dp is never changed. */
            int dp = st->dp;
            while (dp > 1 && s->global_batch % ((int64_t)st->micro_batch * dp) != 0)
                dp--;
            if (dp != st->dp)
                s->dp_reduced_from = st->dp;
            st->dp = dp;
        }
        if (s->given & CLI_G_GLOBAL_BATCH) {
            int64_t per_step = (int64_t)st->micro_batch * st->dp;
            if (s->global_batch % per_step != 0)
                return sw_errf(err, SW_EINVAL,
                               "--global-batch %lld is not a multiple of micro-batch %d x dp %d "
                               "= %lld",
                               (long long)s->global_batch, st->micro_batch, st->dp,
                               (long long)per_step);
            st->grad_accum = (int)(s->global_batch / per_step);
        }
        s->wl.global_batch = (int64_t)st->micro_batch * st->grad_accum * st->dp;
    }
    return 0;
}

int cli_setup_resolve(struct cli_setup *s, bool with_strategy, struct sw_err *err)
{
    int rc;
    if ((rc = load_model(s, err)) < 0)
        return rc;
    if ((rc = load_hardware(s, err)) < 0)
        return rc;
    if ((rc = cli_calib_load(&s->calib, &s->hw, &s->cal, err)) < 0)
        return rc;
    if (s->achieved_tflops > 0)
        s->cal.achieved_flops = s->achieved_tflops * 1e12;
    if (with_strategy && (rc = fill_strategy(s, err)) < 0)
        return rc;
    return 0;
}

static void calib_note(struct cli_calib *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void calib_note(struct cli_calib *c, const char *fmt, ...)
{
    if (c->n_notes >= CLI_CALIB_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->notes[c->n_notes++], ADVISOR_REASON_MAX, fmt, ap);
    va_end(ap);
}

int cli_calib_load(struct cli_calib *c, const struct hardware *hw, struct advisor_calib *cal,
                   struct sw_err *err)
{
    c->n_notes = 0;
    if (!c->path[0])
        return 0;
    struct calib_file *f = sw_xmalloc(sizeof(*f));
    int rc = calib_load_file(c->path, f, err);
    if (rc < 0)
        goto out;
    char why[2 * HW_NAME_MAX + 96];
    if (!calib_apply(f, hw, cal)) {
        calib_note(c, "calibration %s has no %s section: default efficiencies kept for '%s'",
                   c->path, hw_is_cpu_only(hw) ? "cpu" : "gpu", hw->name);
        goto out;
    }
    bool cpu = hw_is_cpu_only(hw);
    calib_note(c,
               "efficiencies eta_f train %.3g, prefill %.3g, eta_mem %.3g, decode %.3g from "
               "calibration %s (%s %s, %s)",
               cal->eta_flops_train, cal->eta_flops_prefill, cal->eta_mem, cal->eta_mem_decode,
               c->path,
               cpu ? "cpu" : "gpu", cpu ? hw_dtype_name(f->cpu.dtype) : f->gpu.name,
               f->date[0] ? f->date : "undated");
    if (calib_other_machine(f, hw, why, sizeof(why)))
        calib_note(c,
                   "warning: calibration %s was measured on another machine (%s): its "
                   "efficiencies may not carry over",
                   c->path, why);
out:
    free(f);
    return rc;
}

void cli_calib_add_reasons(const struct cli_calib *c, struct estimate *e)
{
    for (int i = 0; i < c->n_notes; i++)
        estimate_add_reason(e, "%s", c->notes[i]);
}

const char *cli_model_label(const struct cli_setup *s, char *buf, size_t n)
{
    if (s->model_profile[0])
        snprintf(buf, n, "%s", s->model_profile);
    else if (s->model_config[0])
        snprintf(buf, n, "%s", s->model_config);
    else
        snprintf(buf, n, "custom (L=%d, h=%d, a=%d, %s)", s->model.n_layers, s->model.hidden,
                 s->model.n_heads, model_arch_name(s->model.arch));
    return buf;
}

const char *cli_hw_label(const struct hardware *hw, char *buf, size_t n)
{
    if (hw->n_gpus > 0)
        snprintf(buf, n, "%s, %d node%s x %d GPU%s (%s)", hw->name, hw->nodes,
                 hw->nodes == 1 ? "" : "s", hw->n_gpus, hw->n_gpus == 1 ? "" : "s",
                 hw->gpus[0].name);
    else
        snprintf(buf, n, "%s, %d node%s, CPU only (%s)", hw->name, hw->nodes,
                 hw->nodes == 1 ? "" : "s", hw->cpu.model[0] ? hw->cpu.model : "unknown CPU");
    return buf;
}

int cli_report(const char *cmd, const struct sw_err *err)
{
    char buf[SW_ERR_MSG_MAX + SW_ERR_FILE_MAX + 32];
    fprintf(stderr, "scalewise %s: %s\n", cmd, sw_err_format(err, buf, sizeof(buf)));
    switch (err->code) {
    case SW_EINVAL:
    case SW_ENOENT:
    case SW_EPARSE:
    case SW_ERANGE:
    case SW_EUNSUPPORTED: /* an input this build cannot take (a model type, a dtype) */
        return CLI_EXIT_USAGE;
    default:
        return CLI_EXIT_FAIL;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "scalewise %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'scalewise %s --help')\n", cmd);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

const char *cli_flag_value(int argc, char **argv, int *i, const char *eq)
{
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int cli_flag_find(const char *cmd, const char *arg, const char *const *names, char *name,
                  size_t name_n, const char **eq)
{
    *eq = strchr(arg, '=');
    size_t len = *eq ? (size_t)(*eq - arg) : strlen(arg);
    if (len >= name_n)
        len = name_n - 1;
    memcpy(name, arg, len);
    name[len] = '\0';
    for (int k = 0; names[k]; k++)
        if (!strcmp(name, names[k]))
            return k;
    const char *near = sw_suggest(name, names);
    if (near)
        cli_usage_error(cmd, "unknown flag '%s'; did you mean '%s'?", name, near);
    else
        cli_usage_error(cmd, "unknown flag '%s'", name);
    return -1;
}
