/* The fields of the TUI's screens and the editor's knobs: the tables that name each row and its
 * headless equivalent (the plan field or CLI flag), the text of each value, the steps of each
 * knob (powers of two, 1-2-5 decades, cycles through enums), the Explain screen's one-knob
 * what-ifs, and the numeric fields' ranges, setters and Left/Right moves. Pure C with no
 * ncurses and no I/O: estimates go through s->ops, and re-estimating after a change is left to
 * state.c (ts_reestimate, ts_inputs_changed), which also holds the dispatch, tui_state_apply. */
#include "tui/tui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/state_int.h"

/* ---------------------------------------------------------------- fields and knobs */

struct field_info {
    const char *label;
    const char *headless; /* plan field / CLI flag */
};

static const struct field_info hw_fields[TUI_HWF_COUNT] = {
    {"hardware", "--gpu PROFILE | --hardware probe  (plan: hardware.profile / probe)"},
    {"nodes", "--nodes N  (plan: hardware.nodes)"},
    {"GPUs per node", "--gpus-per-node G  (plan: hardware.gpus_per_node)"},
};

static const struct field_info wl_fields[TUI_WLF_COUNT] = {
    {"model", "--model NAME  (plan: model.profile)"},
    {"config.json", "--model-config FILE  (plan: model.config_json)"},
    {"task", "--task train|infer, --lora-rank R for fine-tune  (plan: task)"},
    {"sequence", "--seq S  (plan: train.seq)"},
    {"global batch", "--global-batch B, 0 = the search chooses  (plan: train.global_batch)"},
    {"tokens to train", "plan --tokens N  (time to train; plan: train.tokens)"},
    {"infer batch", "--batch B  (plan: infer.batch)"},
    {"prompt length", "--prompt-len N  (plan: infer.prompt_len)"},
    {"generate length", "--gen-len N  (plan: infer.gen_len)"},
    {"dataset", "plan: data.path"},
    {"run steps", "run --steps N  (plan: train.steps)"},
    {"run directory", "run --out DIR  (plan: train.out_dir)"},
};

static const struct field_info knob_fields[TUI_KNOB_COUNT] = {
    {"device", "--device  (strategy.device)"},
    {"precision", "--precision  (strategy.precision)"},
    {"optimizer", "--optimizer  (strategy.optimizer)"},
    {"micro-batch", "--micro-batch  (strategy.micro_batch)"},
    {"grad accumulation", "--grad-accum  (strategy.grad_accum)"},
    {"recompute", "--recompute  (strategy.recompute)"},
    {"attention", "--attention  (strategy.attention)"},
    {"data parallel", "--dp  (strategy.dp)"},
    {"tensor parallel", "--tp  (strategy.tp)"},
    {"pipeline parallel", "--pp  (strategy.pp)"},
    {"pipeline interleave", "--pp-interleave  (strategy.pp_interleave)"},
    {"ZeRO stage", "--zero  (strategy.zero)"},
    {"sequence parallel", "--sequence-parallel  (strategy.sequence_parallel)"},
    {"offload optimizer", "--offload-optimizer  (strategy.offload_optimizer)"},
    {"offload params", "--offload-params  (strategy.offload_params)"},
    {"LoRA rank", "--lora-rank  (strategy.lora_rank)"},
    {"weights format", "--weights  (strategy.weights)"},
    {"KV cache format", "--kv-dtype  (strategy.kv_dtype)"},
    {"CPU threads", "--threads  (strategy.threads)"},
};

static const char *const task_labels[] = {"train", "fine-tune (LoRA)", "infer"};

const char *tui_field_headless(enum tui_screen scr, int row)
{
    if (scr == TUI_SCR_HARDWARE && row >= 0 && row < TUI_HWF_COUNT)
        return hw_fields[row].headless;
    if (scr == TUI_SCR_WORKLOAD && row >= 0 && row < TUI_WLF_COUNT)
        return wl_fields[row].headless;
    if ((scr == TUI_SCR_EDITOR || scr == TUI_SCR_EXPLAIN) && row >= 0 && row < TUI_KNOB_COUNT)
        return knob_fields[row].headless;
    return "";
}

int tui_screen_rows(const struct tui_state *s, enum tui_screen scr)
{
    switch (scr) {
    case TUI_SCR_HARDWARE:
        return TUI_HWF_COUNT;
    case TUI_SCR_WORKLOAD:
        return TUI_WLF_COUNT;
    case TUI_SCR_PLANS:
        return s->search.n_plans;
    case TUI_SCR_EDITOR:
    case TUI_SCR_EXPLAIN:
        return s->have_plan ? TUI_KNOB_COUNT : 0;
    default:
        return 0;
    }
}

static void i64_text(int64_t v, const char *zero_word, char *out, size_t n)
{
    if (v == 0 && zero_word)
        sw_strlcpy(out, zero_word, n);
    else
        snprintf(out, n, "%lld", (long long)v);
}

static void knob_value(const struct strategy *st, int k, char *out, size_t n)
{
    switch ((enum tui_knob)k) {
    case TUI_KNOB_DEVICE:
        sw_strlcpy(out, device_name(st->device), n);
        break;
    case TUI_KNOB_PRECISION:
        sw_strlcpy(out, precision_name(st->precision), n);
        break;
    case TUI_KNOB_OPTIMIZER:
        sw_strlcpy(out, optimizer_name(st->optimizer), n);
        break;
    case TUI_KNOB_MICRO_BATCH:
        snprintf(out, n, "%d", st->micro_batch);
        break;
    case TUI_KNOB_GRAD_ACCUM:
        snprintf(out, n, "%d", st->grad_accum);
        break;
    case TUI_KNOB_RECOMPUTE:
        sw_strlcpy(out, recompute_name(st->recompute), n);
        break;
    case TUI_KNOB_ATTENTION:
        sw_strlcpy(out, attention_name(st->attention), n);
        break;
    case TUI_KNOB_DP:
        snprintf(out, n, "%d", st->dp);
        break;
    case TUI_KNOB_TP:
        snprintf(out, n, "%d", st->tp);
        break;
    case TUI_KNOB_PP:
        snprintf(out, n, "%d", st->pp);
        break;
    case TUI_KNOB_INTERLEAVE:
        snprintf(out, n, "%d", st->pp_interleave);
        break;
    case TUI_KNOB_ZERO:
        snprintf(out, n, "%d", st->zero);
        break;
    case TUI_KNOB_SP:
        sw_strlcpy(out, st->sequence_parallel ? "on" : "off", n);
        break;
    case TUI_KNOB_OFFLOAD_OPT:
        sw_strlcpy(out, st->offload_optimizer ? "on" : "off", n);
        break;
    case TUI_KNOB_OFFLOAD_PARAMS:
        sw_strlcpy(out, st->offload_params ? "on" : "off", n);
        break;
    case TUI_KNOB_LORA_RANK:
        i64_text(st->lora_rank, "off", out, n);
        break;
    case TUI_KNOB_WEIGHTS:
        sw_strlcpy(out, wformat_name(st->weights), n);
        break;
    case TUI_KNOB_KV_DTYPE:
        sw_strlcpy(out, wformat_name(st->kv_dtype), n);
        break;
    case TUI_KNOB_THREADS:
        i64_text(st->threads, "all", out, n);
        break;
    case TUI_KNOB_COUNT:
        out[0] = '\0';
        break;
    }
}

void tui_field_text(const struct tui_state *s, enum tui_screen scr, int row, char *label,
                    size_t label_n, char *value, size_t value_n)
{
    label[0] = value[0] = '\0';
    if (scr == TUI_SCR_HARDWARE && row >= 0 && row < TUI_HWF_COUNT) {
        sw_strlcpy(label, hw_fields[row].label, label_n);
        if (row == TUI_HWF_SOURCE)
            sw_strlcpy(value, s->hw_profile[0] ? s->hw_profile : "this machine", value_n);
        else if (row == TUI_HWF_NODES)
            snprintf(value, value_n, "%d", s->hw.nodes);
        else if (s->hw.n_gpus > 0)
            snprintf(value, value_n, "%d", s->hw.n_gpus);
        else
            snprintf(value, value_n, "none (CPU only)");
    } else if (scr == TUI_SCR_WORKLOAD && row >= 0 && row < TUI_WLF_COUNT) {
        sw_strlcpy(label, wl_fields[row].label, label_n);
        const struct workload *w = &s->wl;
        switch ((enum tui_wl_field)row) {
        case TUI_WLF_MODEL:
            sw_strlcpy(value, s->model_profile[0] ? s->model_profile : "(choose)", value_n);
            break;
        case TUI_WLF_CONFIG:
            sw_strlcpy(value, s->model_config[0] ? s->model_config : "-", value_n);
            break;
        case TUI_WLF_TASK:
            sw_strlcpy(value, task_labels[s->task], value_n);
            break;
        case TUI_WLF_SEQ:
            snprintf(value, value_n, "%d", w->seq);
            break;
        case TUI_WLF_GLOBAL_BATCH:
            i64_text(w->global_batch, "auto", value, value_n);
            break;
        case TUI_WLF_TOKENS:
            i64_text(w->tokens_total, "unknown", value, value_n);
            break;
        case TUI_WLF_BATCH:
            snprintf(value, value_n, "%d", w->batch);
            break;
        case TUI_WLF_PROMPT:
            snprintf(value, value_n, "%d", w->prompt_len);
            break;
        case TUI_WLF_GEN:
            snprintf(value, value_n, "%d", w->gen_len);
            break;
        case TUI_WLF_DATASET:
            sw_strlcpy(value, s->dataset, value_n);
            break;
        case TUI_WLF_STEPS:
            snprintf(value, value_n, "%lld", (long long)s->steps);
            break;
        case TUI_WLF_OUT_DIR:
            sw_strlcpy(value, s->out_dir, value_n);
            break;
        case TUI_WLF_COUNT:
            break;
        }
    } else if ((scr == TUI_SCR_EDITOR || scr == TUI_SCR_EXPLAIN) && row >= 0 &&
               row < TUI_KNOB_COUNT) {
        sw_strlcpy(label, knob_fields[row].label, label_n);
        knob_value(&s->plan.strategy, row, value, value_n);
    } else if (scr == TUI_SCR_PLANS && row >= 0 && row < s->search.n_plans) {
        snprintf(label, label_n, "plan %d", row + 1);
        const struct strategy *st = &s->search.plans[row].strategy;
        snprintf(value, value_n, "dp%d tp%d pp%d b%d m%d z%d", st->dp, st->tp, st->pp,
                 st->micro_batch, st->grad_accum, st->zero);
    }
}

/* ---------------------------------------------------------------- what-if (Explain) */

/* Next value of a power-of-two knob: doubling up, halving down, never below lo. */
static int step_pow2(int v, int dir, int lo, int hi)
{
    if (dir > 0) {
        int n = 1;
        while (n <= v && n < hi)
            n *= 2;
        if (v < 1)
            n = 1;
        return n > hi ? hi : n;
    }
    int n = 1;
    while (n * 2 < v)
        n *= 2;
    if (v <= 1)
        return lo;
    return n < lo ? lo : n;
}

/* 1-2-5 steps for counts that span decades (run steps, tokens). */
static int64_t step_125(int64_t v, int dir, int64_t lo, int64_t hi)
{
    int64_t best = dir > 0 ? hi : lo;
    for (int64_t dec = 1; dec <= hi && dec > 0; dec *= 10)
        for (int k = 0; k < 3; k++) {
            int64_t c = dec * (k == 0 ? 1 : k == 1 ? 2 : 5);
            if (c < lo || c > hi)
                continue;
            if (dir > 0 && c > v && c < best)
                best = c;
            if (dir < 0 && c < v && c > best)
                best = c;
        }
    if (dir < 0 && v <= lo)
        return lo;
    return best;
}

static int cycle(int v, int dir, int n)
{
    return ((v + dir) % n + n) % n;
}

/* Move one knob of `st` by dir (+1/-1). Returns false when it cannot move (at its limit). */
static bool knob_move(struct strategy *st, int k, int dir, int max_devices)
{
    int old;
    switch ((enum tui_knob)k) {
    case TUI_KNOB_DEVICE:
        st->device = (enum sw_device)cycle(st->device, dir, 2);
        return true;
    case TUI_KNOB_PRECISION:
        st->precision = (enum sw_precision)cycle(st->precision, dir, 5);
        return true;
    case TUI_KNOB_OPTIMIZER:
        st->optimizer = (enum sw_optimizer)cycle(st->optimizer, dir, 6);
        return true;
    case TUI_KNOB_MICRO_BATCH:
        old = st->micro_batch;
        st->micro_batch = step_pow2(old, dir, 1, 1 << 20);
        return st->micro_batch != old;
    case TUI_KNOB_GRAD_ACCUM:
        old = st->grad_accum;
        st->grad_accum = step_pow2(old, dir, 1, 1 << 20);
        return st->grad_accum != old;
    case TUI_KNOB_RECOMPUTE:
        st->recompute = (enum sw_recompute)cycle(st->recompute, dir, 3);
        return true;
    case TUI_KNOB_ATTENTION:
        st->attention = (enum sw_attention)cycle(st->attention, dir, 2);
        return true;
    case TUI_KNOB_DP:
        old = st->dp;
        st->dp = step_pow2(old, dir, 1, max_devices > 0 ? max_devices : 1);
        return st->dp != old;
    case TUI_KNOB_TP:
        old = st->tp;
        st->tp = step_pow2(old, dir, 1, 1024);
        return st->tp != old;
    case TUI_KNOB_PP:
        old = st->pp;
        st->pp = step_pow2(old, dir, 1, 1024);
        return st->pp != old;
    case TUI_KNOB_INTERLEAVE:
        old = st->pp_interleave;
        st->pp_interleave = old + dir < 1 ? 1 : (old + dir > 64 ? 64 : old + dir);
        return st->pp_interleave != old;
    case TUI_KNOB_ZERO:
        old = st->zero;
        st->zero = old + dir < 0 ? 0 : (old + dir > 3 ? 3 : old + dir);
        return st->zero != old;
    case TUI_KNOB_SP:
        st->sequence_parallel = !st->sequence_parallel;
        return true;
    case TUI_KNOB_OFFLOAD_OPT:
        st->offload_optimizer = !st->offload_optimizer;
        return true;
    case TUI_KNOB_OFFLOAD_PARAMS:
        st->offload_params = !st->offload_params;
        return true;
    case TUI_KNOB_LORA_RANK:
        old = st->lora_rank;
        st->lora_rank = (old == 1 && dir < 0) ? 0 : step_pow2(old, dir, 0, 1 << 12);
        if (old == 0 && dir < 0)
            st->lora_rank = 0;
        return st->lora_rank != old;
    case TUI_KNOB_WEIGHTS:
        st->weights = (enum sw_wformat)cycle(st->weights, dir, 5);
        return true;
    case TUI_KNOB_KV_DTYPE:
        st->kv_dtype = (enum sw_wformat)cycle(st->kv_dtype, dir, 5);
        return true;
    case TUI_KNOB_THREADS:
        old = st->threads;
        st->threads = old == 1 && dir < 0 ? 0 : step_pow2(old, dir, 0, 1 << 12);
        if (old == 0 && dir < 0)
            st->threads = 0;
        return st->threads != old;
    case TUI_KNOB_COUNT:
        break;
    }
    return false;
}

void ts_compute_whatifs(struct tui_state *s)
{
    s->n_whatif = 0;
    if (!s->have_plan)
        return;
    for (int k = 0; k < TUI_KNOB_COUNT; k++)
        for (int dir = -1; dir <= 1; dir += 2) {
            struct strategy st = s->plan.strategy;
            if (!knob_move(&st, k, dir, hw_devices(&s->plan.hardware)))
                continue;
            if (s->n_whatif >= TUI_MAX_WHATIF)
                return;
            struct tui_whatif *w = &s->whatif[s->n_whatif++];
            memset(w, 0, sizeof(*w));
            w->knob = k;
            char a[32], b[32];
            knob_value(&s->plan.strategy, k, a, sizeof(a));
            knob_value(&st, k, b, sizeof(b));
            snprintf(w->change, sizeof(w->change), "%.40s %.20s -> %.20s", knob_fields[k].label, a,
                     b);
            struct workload wl = s->plan.workload;
            if (wl.task == TASK_TRAIN)
                wl.global_batch = (int64_t)st.micro_batch * st.grad_accum * st.dp;
            struct estimate *e = sw_xmalloc(sizeof(*e));
            struct sw_err err;
            sw_err_init(&err);
            estimate_init(e);
            w->valid = s->ops->estimate(&s->plan.model, &s->plan.hardware, &wl, &st, &s->cal, e,
                                        &err) == 0;
            if (w->valid) {
                w->total_bytes = e->dev.total;
                w->capacity_bytes = e->capacity_bytes;
                w->tokens_per_s = e->tokens_per_s;
                w->infer_tokens_per_s = e->infer_tokens_per_s;
                w->fits = e->fits;
            } else {
                sw_strlcpy(w->reason, err.msg, sizeof(w->reason));
            }
            free(e);
        }
}

/* ---------------------------------------------------------------- numeric fields */

/* Whether a row takes a number (Enter opens the exact-value prompt for it). */
bool ts_is_numeric_field(enum tui_screen scr, int row)
{
    if (scr == TUI_SCR_HARDWARE)
        return row == TUI_HWF_NODES || row == TUI_HWF_GPUS;
    if (scr == TUI_SCR_WORKLOAD)
        return row == TUI_WLF_SEQ || row == TUI_WLF_GLOBAL_BATCH || row == TUI_WLF_TOKENS ||
               row == TUI_WLF_BATCH || row == TUI_WLF_PROMPT || row == TUI_WLF_GEN ||
               row == TUI_WLF_STEPS;
    if (scr == TUI_SCR_EDITOR)
        return row == TUI_KNOB_MICRO_BATCH || row == TUI_KNOB_GRAD_ACCUM || row == TUI_KNOB_DP ||
               row == TUI_KNOB_TP || row == TUI_KNOB_PP || row == TUI_KNOB_INTERLEAVE ||
               row == TUI_KNOB_ZERO || row == TUI_KNOB_LORA_RANK || row == TUI_KNOB_THREADS;
    return false;
}

int ts_set_number(struct tui_state *s, enum tui_screen scr, int row, int64_t v)
{
    struct strategy *st = &s->plan.strategy;
    struct workload *w = &s->wl;
    if (scr == TUI_SCR_HARDWARE) {
        if (row == TUI_HWF_NODES)
            s->nodes = (int)v;
        else
            s->gpus_per_node = (int)v;
        ts_apply_shape(s);
        ts_inputs_changed(s, true);
        return 0;
    }
    if (scr == TUI_SCR_WORKLOAD) {
        switch (row) {
        case TUI_WLF_SEQ:
            w->seq = (int)v;
            break;
        case TUI_WLF_GLOBAL_BATCH:
            w->global_batch = v;
            break;
        case TUI_WLF_TOKENS:
            w->tokens_total = v;
            break;
        case TUI_WLF_BATCH:
            w->batch = (int)v;
            break;
        case TUI_WLF_PROMPT:
            w->prompt_len = (int)v;
            break;
        case TUI_WLF_GEN:
            w->gen_len = (int)v;
            break;
        case TUI_WLF_STEPS:
            s->steps = v;
            break;
        }
        ts_inputs_changed(s, false);
        return 0;
    }
    switch (row) {
    case TUI_KNOB_MICRO_BATCH:
        st->micro_batch = (int)v;
        break;
    case TUI_KNOB_GRAD_ACCUM:
        st->grad_accum = (int)v;
        break;
    case TUI_KNOB_DP:
        st->dp = (int)v;
        break;
    case TUI_KNOB_TP:
        st->tp = (int)v;
        break;
    case TUI_KNOB_PP:
        st->pp = (int)v;
        break;
    case TUI_KNOB_INTERLEAVE:
        st->pp_interleave = (int)v;
        break;
    case TUI_KNOB_ZERO:
        st->zero = (int)v;
        break;
    case TUI_KNOB_LORA_RANK:
        st->lora_rank = (int)v;
        break;
    case TUI_KNOB_THREADS:
        st->threads = (int)v;
        break;
    }
    s->unsaved = true;
    ts_reestimate(s);
    return 0;
}

/* Range of a numeric field. */
void ts_field_range(enum tui_screen scr, int row, int64_t *lo, int64_t *hi)
{
    *lo = 1;
    *hi = 1 << 24;
    if (scr == TUI_SCR_HARDWARE && row == TUI_HWF_GPUS)
        *hi = HW_MAX_GPUS;
    if (scr == TUI_SCR_WORKLOAD) {
        if (row == TUI_WLF_GLOBAL_BATCH || row == TUI_WLF_TOKENS || row == TUI_WLF_GEN)
            *lo = 0;
        if (row == TUI_WLF_TOKENS || row == TUI_WLF_GLOBAL_BATCH)
            *hi = (int64_t)1 << 50;
        if (row == TUI_WLF_STEPS)
            *hi = (int64_t)1 << 40;
    }
    if (scr == TUI_SCR_EDITOR) {
        if (row == TUI_KNOB_ZERO) {
            *lo = 0;
            *hi = 3;
        }
        if (row == TUI_KNOB_LORA_RANK || row == TUI_KNOB_THREADS)
            *lo = 0;
    }
}

static bool plan_knob_can_move(const struct tui_state *s, int dir)
{
    struct strategy st = s->plan.strategy;
    return knob_move(&st, s->sel[TUI_SCR_EDITOR], dir, hw_devices(&s->plan.hardware));
}

/* The value of a numeric Hardware or Workload field: the resolved shape, or the workload as the
 * screen says. Returns false (leaving *v alone) where the row is not a number. */
static bool field_number(const struct tui_state *s, enum tui_screen scr, int row, int64_t *v)
{
    if (scr == TUI_SCR_HARDWARE) {
        *v = row == TUI_HWF_NODES ? s->hw.nodes : s->hw.n_gpus;
        return row != TUI_HWF_SOURCE;
    }
    if (scr != TUI_SCR_WORKLOAD)
        return false;
    const struct workload *w = &s->wl;
    switch (row) {
    case TUI_WLF_SEQ:
        *v = w->seq;
        return true;
    case TUI_WLF_GLOBAL_BATCH:
        *v = w->global_batch;
        return true;
    case TUI_WLF_TOKENS:
        *v = w->tokens_total;
        return true;
    case TUI_WLF_BATCH:
        *v = w->batch;
        return true;
    case TUI_WLF_PROMPT:
        *v = w->prompt_len;
        return true;
    case TUI_WLF_GEN:
        *v = w->gen_len;
        return true;
    case TUI_WLF_STEPS:
        *v = s->steps;
        return true;
    default:
        return false;
    }
}

bool ts_field_can_move(const struct tui_state *s, int dir)
{
    int row = s->sel[s->screen];
    int64_t lo, hi, v;
    ts_field_range(s->screen, row, &lo, &hi);
    if (s->screen == TUI_SCR_HARDWARE) {
        if (row == TUI_HWF_SOURCE || !s->hw_ok)
            return false;
        if (row == TUI_HWF_GPUS && s->hw.n_gpus == 0)
            return false;
    }
    if (s->screen == TUI_SCR_WORKLOAD && row == TUI_WLF_TASK)
        return true;
    if (s->screen == TUI_SCR_EDITOR)
        return s->have_plan && plan_knob_can_move(s, dir);
    if (!field_number(s, s->screen, row, &v))
        return false;
    return dir > 0 ? v < hi : v > lo;
}

void ts_move_field(struct tui_state *s, int dir)
{
    int row = s->sel[s->screen];
    if (s->screen == TUI_SCR_EDITOR) {
        knob_move(&s->plan.strategy, row, dir, hw_devices(&s->plan.hardware));
        s->unsaved = true;
        ts_reestimate(s);
        return;
    }
    if (s->screen == TUI_SCR_WORKLOAD && row == TUI_WLF_TASK) {
        s->task = (enum tui_task)cycle(s->task, dir, 3);
        ts_inputs_changed(s, true);
        return;
    }
    int64_t lo, hi, v = 0;
    ts_field_range(s->screen, row, &lo, &hi);
    field_number(s, s->screen, row, &v);
    bool decades = s->screen == TUI_SCR_WORKLOAD && (row == TUI_WLF_TOKENS || row == TUI_WLF_STEPS);
    int64_t nv;
    if (decades)
        nv = (row == TUI_WLF_TOKENS && v == 0 && dir > 0)       ? 1000000
             : (row == TUI_WLF_TOKENS && v <= 1000000 && dir < 0) ? 0
                                                                 : step_125(v, dir, lo, hi);
    else if (s->screen == TUI_SCR_HARDWARE && row == TUI_HWF_GPUS)
        nv = v + dir;
    else
        nv = step_pow2((int)(v > (1 << 30) ? (1 << 30) : v), dir, (int)lo,
                       (int)(hi > (1 << 30) ? (1 << 30) : hi));
    if (nv < lo)
        nv = lo;
    if (nv > hi)
        nv = hi;
    ts_set_number(s, s->screen, row, nv);
}
