/* The vocabulary of plans: names and parsers of tasks, devices, precisions, optimizers,
 * recompute modes, attention kernels and weight formats; defaults for strategies, workloads,
 * calibration constants and estimates. The formulas that use them are in memory.c and speed.c. */
#include "advisor/advisor.h"

#include <stdarg.h>
#include <string.h>

/* Each enum's words in one table, in enum order, NULL-terminated for sw_suggest. */
static const char *const task_words[] = {"train", "infer", NULL};
static const char *const device_words[] = {"cpu", "cuda", NULL};
static const char *const precision_words[] = {"fp32", "tf32", "fp16-mixed", "bf16-mixed", "bf16",
                                              NULL};
static const char *const optimizer_words[] = {"adamw", "adamw8bit",    "adafactor",
                                              "sgd",   "sgd-momentum", "lion",
                                              NULL};
static const char *const recompute_words[] = {"none", "selective", "full", NULL};
static const char *const attention_words[] = {"flash", "naive", NULL};
static const char *const wformat_words[] = {"fp32", "fp16", "bf16", "int8", "int4", NULL};
static const char *const schedule_words[] = {"constant", "cosine", "linear", NULL};
static const char *const dtype_words[] = {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", NULL};

static const char *word_at(const char *const *words, int n_words, int i)
{
    return (i >= 0 && i < n_words) ? words[i] : "?";
}

#define NWORDS(w) ((int)(sizeof(w) / sizeof((w)[0]) - 1))

/* Parse `s` against a word table; on failure list the valid words and suggest the closest. */
static int parse_word(const char *s, const char *const *words, const char *what, int *out,
                      struct sw_err *err)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(s, words[i])) {
            *out = i;
            return 0;
        }
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; words[i]; i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                                 words[i]);
    const char *near = sw_suggest(s, words);
    if (near)
        return sw_errf(err, SW_EINVAL, "unknown %s '%s'; did you mean '%s'? (expected one of: %s)",
                       what, s, near, list);
    return sw_errf(err, SW_EINVAL, "unknown %s '%s'; expected one of: %s", what, s, list);
}

const char *hw_dtype_name(enum hw_dtype d) { return word_at(dtype_words, NWORDS(dtype_words), d); }
const char *task_name(enum sw_task t) { return word_at(task_words, NWORDS(task_words), t); }
const char *device_name(enum sw_device d) { return word_at(device_words, NWORDS(device_words), d); }
const char *precision_name(enum sw_precision p)
{
    return word_at(precision_words, NWORDS(precision_words), p);
}
const char *optimizer_name(enum sw_optimizer o)
{
    return word_at(optimizer_words, NWORDS(optimizer_words), o);
}
const char *recompute_name(enum sw_recompute r)
{
    return word_at(recompute_words, NWORDS(recompute_words), r);
}
const char *attention_name(enum sw_attention a)
{
    return word_at(attention_words, NWORDS(attention_words), a);
}
const char *wformat_name(enum sw_wformat w)
{
    return word_at(wformat_words, NWORDS(wformat_words), w);
}
const char *lr_schedule_name(enum lr_schedule s)
{
    return word_at(schedule_words, NWORDS(schedule_words), s);
}

#define DEFINE_PARSE(fn, type, words, what)                                                      \
    int fn(const char *s, type *out, struct sw_err *err)                                         \
    {                                                                                            \
        int i;                                                                                   \
        int rc = parse_word(s, words, what, &i, err);                                            \
        if (rc == 0)                                                                             \
            *out = (type)i;                                                                      \
        return rc;                                                                               \
    }

DEFINE_PARSE(task_parse, enum sw_task, task_words, "task")
DEFINE_PARSE(device_parse, enum sw_device, device_words, "device")
DEFINE_PARSE(precision_parse, enum sw_precision, precision_words, "precision")
DEFINE_PARSE(optimizer_parse, enum sw_optimizer, optimizer_words, "optimizer")
DEFINE_PARSE(recompute_parse, enum sw_recompute, recompute_words, "recompute mode")
DEFINE_PARSE(attention_parse, enum sw_attention, attention_words, "attention kernel")
DEFINE_PARSE(wformat_parse, enum sw_wformat, wformat_words, "weight format")
DEFINE_PARSE(lr_schedule_parse, enum lr_schedule, schedule_words, "learning-rate schedule")

void strategy_init(struct strategy *s)
{
    memset(s, 0, sizeof(*s));
    s->device = DEVICE_CUDA;
    s->precision = PREC_BF16_MIXED;
    s->optimizer = OPT_ADAMW;
    s->micro_batch = 1;
    s->grad_accum = 1;
    s->recompute = RECOMPUTE_NONE;
    s->attention = ATTN_FLASH;
    s->dp = s->tp = s->pp = 1;
    s->pp_interleave = 1;
    s->weights = WFMT_BF16;
    s->kv_dtype = WFMT_BF16;
}

void workload_init(struct workload *w)
{
    memset(w, 0, sizeof(*w));
    w->task = TASK_TRAIN;
    w->seq = 1024;
    w->batch = 1;
    w->prompt_len = 128;
    w->gen_len = 128;
}

void advisor_calib_default(struct advisor_calib *c)
{
    memset(c, 0, sizeof(*c));
    c->eta_flops_train = 0.5;   /* llm-analysis default (strategy reference 6.4) */
    c->eta_flops_prefill = 0.7; /* llm-analysis default */
    c->eta_mem = 0.9;           /* llm-analysis default */
    c->eta_mem_decode = 0.9;    /* eta_mem's default: decode reads weights as a stream would */
    c->eta_comm_intra = 0.65;   /* Calculon system files (7.1) */
    c->eta_comm_inter = 0.9;
    c->comm_latency_s = 8e-6;   /* llm-analysis all-reduce floor */
    c->runtime_overhead_bytes = 1024.0 * 1024.0 * 1024.0; /* 3.7: 1 GiB per GPU process */
    c->frag_margin = 0.05;      /* 3.7: Megatron's 5 % */
    c->pin_factor = 1.5;        /* 3.3: DeepSpeed's estimator */
    c->host_reserve_frac = 0.10; /* 3.8: keep 10 % of MemAvailable */
    c->launch_overhead_s = 0.0;
    c->achieved_flops = 0.0;
    c->m_sat_tokens = 0.0;
    c->calibrated = false;
}

void estimate_init(struct estimate *e) { memset(e, 0, sizeof(*e)); }

void estimate_add_reason(struct estimate *e, const char *fmt, ...)
{
    if (e->n_reasons >= ADVISOR_MAX_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reasons[e->n_reasons], ADVISOR_REASON_MAX, fmt, ap);
    va_end(ap);
    e->n_reasons++;
}

void search_opts_init(struct search_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->top_k = 5;
    o->headroom = 0.10;
    o->allow_lora = false;
}
