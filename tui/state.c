/* The TUI's state machine: struct tui_state and the one function that changes it,
 * tui_state_apply. Pure C with no ncurses and no I/O of its own: every estimate, search, probe,
 * plan file and run goes through the struct tui_ops table (tests substitute stubs). It holds the
 * action table generated from actions.def, the keymap, the resolution of the plan from what the
 * Hardware and Workload screens say, the lists, prompts and confirmations, runs, which actions
 * work where, and the dispatch of each action. The resolution of defaults mirrors cli/args.c
 * (fill_strategy, --gpus-per-node) so the editor shows what `scalewise estimate` prints. The
 * fields of each screen, the editor's knobs and their steps, and the Explain screen's what-ifs
 * are in state_fields.c; drawing is in view_*.c, the event loop in loop.c, process control in
 * runctl.c. */
#include "tui/tui.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/state_int.h"

/* ---------------------------------------------------------------- the action table */

const struct tui_action_info tui_actions[TUI_ACT_COUNT] = {
#define ACTION(id, k1, k2, k3, label, help) {#id, {k1, k2, k3}, label, help},
#include "tui/actions.def"
#undef ACTION
};

enum tui_action tui_key_action(int key)
{
    if (key == 0)
        return TUI_ACT_COUNT;
    for (int a = 0; a < TUI_ACT_COUNT; a++)
        for (int k = 0; k < 3; k++)
            if (tui_actions[a].keys[k] == key)
                return (enum tui_action)a;
    return TUI_ACT_COUNT;
}

const char *tui_key_name(int key, char *buf, size_t n)
{
    static const char *const names[] = {"Up",  "Down",      "Left",   "Right", "Enter",
                                        "Esc", "Tab",       "S-Tab",  "Bksp",  "Resize",
                                        "^L"};
    if (key >= TK_F1 && key <= TK_F10)
        snprintf(buf, n, "F%d", key - TK_F1 + 1);
    else if (key >= TK_UP && key <= TK_CTRL_L)
        sw_strlcpy(buf, names[key - TK_UP], n);
    else if (key > 32 && key < 127)
        snprintf(buf, n, "%c", key);
    else
        snprintf(buf, n, "#%d", key);
    return buf;
}

const char *tui_screen_name(enum tui_screen s)
{
    static const char *const names[TUI_SCR_COUNT] = {"Hardware", "Workload", "Plans",
                                                     "Editor",   "Explain",  "Run"};
    return (unsigned)s < TUI_SCR_COUNT ? names[s] : "?";
}

const char *tui_run_status_name(enum tui_run_status st)
{
    static const char *const names[] = {"no run",   "running", "stopping", "stopped",
                                        "finished", "failed",  "exited"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* ---------------------------------------------------------------- messages */

static void say(struct tui_state *s, bool is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct tui_state *s, bool is_error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
    s->message_is_error = is_error;
    s->dirty |= TUI_DIRTY_STATUS;
}

/* ---------------------------------------------------------------- resolution */

void ts_apply_shape(struct tui_state *s)
{
    s->hw = s->hw_base;
    if (s->nodes > 0)
        s->hw.nodes = s->nodes;
    if (s->hw.nodes < 1)
        s->hw.nodes = 1;
    if (s->gpus_per_node > 0 && s->hw.n_gpus > 0 && s->gpus_per_node != s->hw.n_gpus)
        hw_set_gpus_per_node(&s->hw, s->gpus_per_node); /* as --gpus-per-node does */
}

/* The defaults `scalewise estimate` fills when no strategy flag is given (cli/args.c,
 * fill_strategy): device from the hardware, precision and attention from what it supports, the
 * 16-bit formats, dp = all devices, global batch = b x m x dp. */
static void fill_default_strategy(const struct tui_state *s, struct strategy *st)
{
    strategy_init(st);
    const struct hardware *hw = &s->hw;
    bool cpu_only = hw_is_cpu_only(hw);
    st->device = cpu_only ? DEVICE_CPU : DEVICE_CUDA;
    bool on_cpu = st->device == DEVICE_CPU;
    int cc = hw_min_cc(hw);
    bool bf16_ok = on_cpu ? (hw->cpu.isa & (HW_ISA_AVX512_BF16 | HW_ISA_AMX_BF16)) != 0 : cc >= 80;
    st->precision = bf16_ok ? PREC_BF16_MIXED : (on_cpu ? PREC_FP32 : PREC_FP16_MIXED);
    bool half = st->precision != PREC_FP32 && st->precision != PREC_TF32;
    st->attention = (half && (on_cpu || cc >= 80)) ? ATTN_FLASH : ATTN_NAIVE;
    enum sw_wformat w16 = bf16_ok ? WFMT_BF16 : (on_cpu ? WFMT_FP32 : WFMT_FP16);
    if (s->task == TUI_TASK_FINETUNE)
        st->lora_rank = 16;
    st->weights = st->lora_rank > 0 ? (bf16_ok ? WFMT_BF16 : WFMT_FP16) : w16;
    st->kv_dtype = w16;
    st->dp = hw_devices(hw);
}

static enum sw_task sw_task_of(enum tui_task t)
{
    return t == TUI_TASK_INFER ? TASK_INFER : TASK_TRAIN;
}

/* The workload of the plan: the screen's settings with the task, and for training the global
 * batch the strategy gives (b x m x dp, as the CLI's estimate computes it). */
static void plan_workload(const struct tui_state *s, struct workload *w)
{
    *w = s->wl;
    w->task = sw_task_of(s->task);
    if (w->task == TASK_TRAIN) {
        const struct strategy *st = &s->plan.strategy;
        w->global_batch = (int64_t)st->micro_batch * st->grad_accum * st->dp;
    }
}

void ts_reestimate(struct tui_state *s)
{
    s->dirty |= TUI_DIRTY_RIGHT | TUI_DIRTY_LEFT | TUI_DIRTY_STATUS;
    s->n_whatif = 0;
    if (!s->have_plan) {
        s->est_ok = false;
        return;
    }
    plan_workload(s, &s->plan.workload);
    struct sw_err err;
    sw_err_init(&err);
    estimate_init(&s->est);
    s->est_ok = s->ops->estimate(&s->plan.model, &s->plan.hardware, &s->plan.workload,
                                 &s->plan.strategy, &s->cal, &s->est, &err) == 0;
    if (!s->est_ok)
        sw_strlcpy(s->est_error, err.msg, sizeof(s->est_error));
    else
        s->est_error[0] = '\0';
}

/* Copy what the Hardware and Workload screens say into the plan (keeping its strategy), as
 * `scalewise plan -o` names them: profiles by name, the probe as probe: true. */
static void sync_plan(struct tui_state *s, bool fresh_strategy)
{
    bool had = s->have_plan;
    s->have_plan = s->hw_ok && s->model_ok;
    if (!s->have_plan) {
        s->est_ok = false;
        return;
    }
    struct plan *p = &s->plan;
    struct strategy keep = p->strategy;
    char source[PLAN_PATH_MAX];
    sw_strlcpy(source, p->source_path, sizeof(source));
    struct plan_train keep_train = p->train;
    struct plan_data keep_data = p->data;
    plan_init(p);
    if (had && !fresh_strategy) {
        p->train = keep_train;
        p->data = keep_data;
        sw_strlcpy(p->source_path, source, sizeof(p->source_path));
    }
    sw_strlcpy(p->name, "tui", sizeof(p->name));
    sw_strlcpy(p->hw_ref.profile, s->hw_profile, sizeof(p->hw_ref.profile));
    p->hw_ref.probe = !s->hw_profile[0];
    p->hw_ref.nodes = s->hw.nodes;
    p->hw_ref.gpus_per_node = s->hw.n_gpus;
    p->hardware = s->hw;
    sw_strlcpy(p->model_ref.profile, s->model_profile, sizeof(p->model_ref.profile));
    sw_strlcpy(p->model_ref.config_json, s->model_config, sizeof(p->model_ref.config_json));
    p->model = s->model;
    sw_strlcpy(p->data.path, s->dataset, sizeof(p->data.path));
    sw_strlcpy(p->data.tokenizer, s->model.vocab <= 256 ? "byte" : "gpt2",
               sizeof(p->data.tokenizer));
    p->train.steps = s->steps;
    sw_strlcpy(p->train.out_dir, s->out_dir, sizeof(p->train.out_dir));
    if (had && !fresh_strategy) {
        p->strategy = keep;
        if (sw_task_of(s->task) == TASK_INFER || s->task == TUI_TASK_FINETUNE) {
            /* keep knobs; the task decides only the LoRA default */
        }
    } else {
        fill_default_strategy(s, &p->strategy);
    }
    if (s->task == TUI_TASK_FINETUNE && p->strategy.lora_rank == 0)
        p->strategy.lora_rank = 16;
    if (s->task != TUI_TASK_FINETUNE && fresh_strategy)
        p->strategy.lora_rank = 0;
    p->train.steps = s->steps;
    sw_strlcpy(p->train.out_dir, s->out_dir, sizeof(p->train.out_dir));
    sw_strlcpy(p->data.path, s->dataset, sizeof(p->data.path));
    ts_reestimate(s);
}

/* Something the search depends on changed. */
void ts_inputs_changed(struct tui_state *s, bool fresh_strategy)
{
    s->plans_stale = true;
    s->unsaved = true;
    sync_plan(s, fresh_strategy);
    s->dirty |= TUI_DIRTY_ALL;
}

static void load_hardware(struct tui_state *s, bool measure)
{
    struct sw_err err;
    sw_err_init(&err);
    struct hardware hw;
    int rc = s->hw_profile[0] ? s->ops->load_hw_profile(s->hw_profile, &hw, &err)
                              : s->ops->probe(&hw, measure, &err);
    if (rc < 0) {
        s->hw_ok = false;
        sw_strlcpy(s->hw_error, err.msg, sizeof(s->hw_error));
        say(s, true, "hardware: %s", err.msg);
        return;
    }
    s->hw_base = hw;
    s->hw_ok = true;
    s->hw_error[0] = '\0';
    s->hw_measured = measure && !s->hw_profile[0];
    if (!measure) { /* a measurement re-reads the same machine: keep the chosen shape */
        s->nodes = hw.nodes > 0 ? hw.nodes : 1;
        s->gpus_per_node = hw.n_gpus;
    }
    ts_apply_shape(s);
}

/* Sequence within the model's positions (a tiny model has 64). */
static void clamp_seq(struct tui_state *s)
{
    if (s->model_ok && s->model.max_pos > 0 && s->wl.seq > s->model.max_pos) {
        say(s, false, "sequence lowered from %d to the model's %d positions", s->wl.seq,
            s->model.max_pos);
        s->wl.seq = s->model.max_pos;
    }
}

static void load_model(struct tui_state *s)
{
    struct sw_err err;
    sw_err_init(&err);
    struct model_desc m;
    int rc = s->model_profile[0] ? s->ops->load_model_profile(s->model_profile, &m, &err)
                                 : s->ops->load_model_config(s->model_config, &m, &err);
    if (rc < 0) {
        s->model_ok = false;
        sw_strlcpy(s->model_error, err.msg, sizeof(s->model_error));
        say(s, true, "model: %s", err.msg);
        return;
    }
    s->model = m;
    s->model_ok = true;
    s->model_error[0] = '\0';
    say(s, false, "model %s: %d layers, hidden %d, %d heads", m.name, m.n_layers, m.hidden,
        m.n_heads);
    clamp_seq(s);
}

static void run_search(struct tui_state *s)
{
    if (!s->plans_stale)
        return;
    s->plans_stale = false;
    search_result_release(&s->search);
    search_result_init(&s->search);
    s->sel[TUI_SCR_PLANS] = 0;
    if (!s->hw_ok || !s->model_ok) {
        s->search_ok = false;
        snprintf(s->search_error, sizeof(s->search_error),
                 "%s", !s->model_ok ? "choose a model on the Workload screen (w)"
                                    : "the hardware could not be read");
        return;
    }
    struct search_opts o;
    search_opts_init(&o);
    o.allow_lora = s->task == TUI_TASK_FINETUNE;
    struct workload w = s->wl;
    w.task = sw_task_of(s->task);
    struct sw_err err;
    sw_err_init(&err);
    s->search_ok = s->ops->search(&s->model, &s->hw, &w, &o, &s->cal, &s->search, &err) == 0;
    if (!s->search_ok)
        sw_strlcpy(s->search_error, err.msg, sizeof(s->search_error));
    else
        s->search_error[0] = '\0';
}

/* ---------------------------------------------------------------- lists */

int tui_list_count(const struct tui_state *s)
{
    int n = 0;
    while (tui_list_name(s, n))
        n++;
    return n;
}

static const char *list_raw(const struct tui_state *s, int i)
{
    if (s->list_kind == TUI_LIST_MODEL)
        return i < s->n_models ? s->model_names[i] : NULL;
    if (i == 0)
        return "probe";
    return i - 1 < s->n_hw ? s->hw_names[i - 1] : NULL;
}

static bool matches(const char *name, const char *filter)
{
    if (!filter[0])
        return true;
    size_t fl = strlen(filter);
    for (const char *p = name; *p; p++) {
        size_t k = 0;
        while (k < fl && p[k] && (p[k] | 0x20) == (filter[k] | 0x20))
            k++;
        if (k == fl)
            return true;
    }
    return false;
}

const char *tui_list_name(const struct tui_state *s, int i)
{
    int seen = 0;
    for (int r = 0;; r++) {
        const char *n = list_raw(s, r);
        if (!n)
            return NULL;
        if (matches(n, s->filter) && seen++ == i)
            return n;
    }
}

static void open_list(struct tui_state *s, enum tui_list_kind kind, bool search)
{
    s->modal = TUI_MODAL_LIST;
    s->list_kind = kind;
    s->filter[0] = '\0';
    s->filter_editing = search;
    s->list_sel = 0;
    const char *cur = kind == TUI_LIST_MODEL ? s->model_profile
                                             : (s->hw_profile[0] ? s->hw_profile : "probe");
    for (int i = 0; tui_list_name(s, i); i++)
        if (!strcmp(tui_list_name(s, i), cur))
            s->list_sel = i;
    s->dirty |= TUI_DIRTY_ALL;
}

static void list_choose(struct tui_state *s)
{
    const char *name = tui_list_name(s, s->list_sel);
    if (!name)
        return;
    char chosen[HW_NAME_MAX];
    sw_strlcpy(chosen, name, sizeof(chosen));
    s->modal = TUI_MODAL_NONE;
    if (s->list_kind == TUI_LIST_MODEL) {
        sw_strlcpy(s->model_profile, chosen, sizeof(s->model_profile));
        s->model_config[0] = '\0';
        load_model(s);
    } else {
        sw_strlcpy(s->hw_profile, strcmp(chosen, "probe") ? chosen : "", sizeof(s->hw_profile));
        load_hardware(s, false);
        if (s->hw_ok)
            say(s, false, "hardware: %s", s->hw_profile[0] ? s->hw_profile : "this machine");
    }
    ts_inputs_changed(s, true);
}

/* ---------------------------------------------------------------- prompts */

static void open_prompt(struct tui_state *s, enum tui_prompt_kind kind, const char *title,
                        const char *initial)
{
    s->modal = TUI_MODAL_PROMPT;
    s->prompt_kind = kind;
    s->prompt_screen = s->screen;
    s->prompt_field = s->sel[s->screen];
    sw_strlcpy(s->prompt_title, title, sizeof(s->prompt_title));
    sw_strlcpy(s->input, initial ? initial : "", sizeof(s->input));
    s->dirty |= TUI_DIRTY_ALL;
}

/* A copy of the plan with its estimate, as a plan file or a run takes it. The caller frees it. */
static struct plan *plan_with_estimate(const struct tui_state *s)
{
    struct plan *p = sw_xmalloc(sizeof(*p));
    *p = s->plan;
    p->estimate = s->est;
    p->has_estimate = s->est_ok;
    return p;
}

/* Write the plan to s->export_path and say where it went, or why it could not. */
static void export_write(struct tui_state *s)
{
    struct sw_err err;
    sw_err_init(&err);
    struct plan *p = plan_with_estimate(s);
    if (s->ops->plan_save(s->export_path, p, &err) < 0) {
        say(s, true, "could not write %s: %s", s->export_path, err.msg);
    } else {
        s->unsaved = false;
        say(s, false, "wrote plan to %s (micro_batch %d)", s->export_path,
            s->plan.strategy.micro_batch);
    }
    free(p);
}

static void prompt_done(struct tui_state *s)
{
    struct sw_err err;
    sw_err_init(&err);
    char input[TUI_INPUT_MAX];
    sw_strlcpy(input, s->input, sizeof(input));
    s->modal = TUI_MODAL_NONE;
    s->dirty |= TUI_DIRTY_ALL;
    switch (s->prompt_kind) {
    case TUI_PROMPT_NUMBER: {
        int64_t lo, hi, v;
        ts_field_range(s->prompt_screen, s->prompt_field, &lo, &hi);
        if (sw_parse_i64(input, lo, hi, "value", &v, &err) < 0) {
            say(s, true, "%s: %s", s->prompt_title, err.msg);
            return;
        }
        ts_set_number(s, s->prompt_screen, s->prompt_field, v);
        return;
    }
    case TUI_PROMPT_CONFIG:
        if (!input[0])
            return;
        sw_strlcpy(s->model_config, input, sizeof(s->model_config));
        s->model_profile[0] = '\0';
        load_model(s);
        ts_inputs_changed(s, true);
        return;
    case TUI_PROMPT_DATASET:
        sw_strlcpy(s->dataset, input, sizeof(s->dataset));
        ts_inputs_changed(s, false);
        return;
    case TUI_PROMPT_OUT_DIR:
        if (!input[0])
            return;
        sw_strlcpy(s->out_dir, input, sizeof(s->out_dir));
        ts_inputs_changed(s, false);
        return;
    case TUI_PROMPT_EXPORT:
        if (!input[0]) {
            say(s, true, "export: no path given; nothing written");
            return;
        }
        sw_strlcpy(s->export_path, input, sizeof(s->export_path));
        if (s->ops->file_exists(input)) {
            s->modal = TUI_MODAL_CONFIRM;
            s->confirm_kind = TUI_CONFIRM_OVERWRITE;
            snprintf(s->confirm_text, sizeof(s->confirm_text), "%s exists. Overwrite it? (y/n)",
                     input);
            return;
        }
        break;
    case TUI_PROMPT_LOAD: {
        struct plan *p = sw_xmalloc(sizeof(*p));
        plan_init(p);
        if (s->ops->plan_load(input, p, &err) < 0) {
            char buf[SW_ERR_MSG_MAX + SW_ERR_FILE_MAX + 32];
            say(s, true, "could not load %s: %s", input, sw_err_format(&err, buf, sizeof(buf)));
            free(p);
            return;
        }
        s->plan = *p;
        free(p);
        sw_strlcpy(s->hw_profile, s->plan.hw_ref.profile, sizeof(s->hw_profile));
        s->hw_base = s->plan.hardware;
        s->hw = s->plan.hardware;
        s->nodes = s->hw.nodes;
        s->gpus_per_node = s->hw.n_gpus;
        s->hw_ok = true;
        sw_strlcpy(s->model_profile, s->plan.model_ref.profile, sizeof(s->model_profile));
        sw_strlcpy(s->model_config, s->plan.model_ref.config_json, sizeof(s->model_config));
        s->model = s->plan.model;
        s->model_ok = true;
        s->wl = s->plan.workload;
        s->task = s->wl.task == TASK_INFER ? TUI_TASK_INFER
                  : s->plan.strategy.lora_rank > 0 ? TUI_TASK_FINETUNE
                                                   : TUI_TASK_TRAIN;
        sw_strlcpy(s->dataset, s->plan.data.path, sizeof(s->dataset));
        s->steps = s->plan.train.steps;
        sw_strlcpy(s->out_dir, s->plan.train.out_dir, sizeof(s->out_dir));
        sw_strlcpy(s->export_path, input, sizeof(s->export_path));
        s->have_plan = true;
        s->plans_stale = true;
        s->unsaved = false;
        s->prev_screen = s->screen;
        s->screen = TUI_SCR_EDITOR;
        ts_reestimate(s);
        say(s, false, "loaded %s", input);
        return;
    }
    case TUI_PROMPT_ATTACH:
        if (s->ops->run_attach(&s->run, input, &err) < 0) {
            say(s, true, "could not attach to %s: %s", input, err.msg);
            return;
        }
        s->prev_screen = s->screen;
        s->screen = TUI_SCR_RUN;
        say(s, false, "attached to %s (%s, %lld metrics lines)", input,
            tui_run_status_name(s->run.status), (long long)s->run.lines_total);
        return;
    }
    /* export without an existing file */
    export_write(s);
}

/* ---------------------------------------------------------------- runs */

static bool run_active(const struct tui_state *s)
{
    return s->run.status == TUI_RUN_RUNNING || s->run.status == TUI_RUN_STOPPING;
}

static void run_start(struct tui_state *s, const char *resume)
{
    struct sw_err err;
    sw_err_init(&err);
    struct plan *p = plan_with_estimate(s);
    p->train.steps = s->steps;
    sw_strlcpy(p->train.out_dir, s->out_dir, sizeof(p->train.out_dir));
    sw_strlcpy(p->data.path, s->dataset, sizeof(p->data.path));
    s->run.predicted_bytes = s->est_ok ? s->est.dev.total : 0;
    s->run.predicted_tokens_per_s = s->est_ok ? s->est.tokens_per_s : 0;
    if (s->ops->run_start(&s->run, p, resume, &err) < 0)
        say(s, true, "could not start the run: %s", err.msg);
    else
        say(s, false, "%s run in %s (pid %d); it keeps running if you quit",
            resume ? "resumed" : "started", s->run.out_dir, s->run.pid);
    free(p);
    s->prev_screen = s->screen;
    s->screen = TUI_SCR_RUN;
    s->dirty |= TUI_DIRTY_ALL;
}

void tui_state_hw_measured(struct tui_state *s, const struct hardware *hw)
{
    if (s->hw_profile[0] || s->hw_measured)
        return; /* the user chose a profile meanwhile, or measured on demand */
    s->hw_base = *hw;
    s->hw_measured = true;
    s->hw_ok = true;
    ts_apply_shape(s);
    say(s, false, "measured this machine: %.1f GFLOP/s fp32, %.1f GB/s triad",
        hw->cpu.measured_fp32_flops / 1e9, hw->cpu.triad_bytes_per_s / 1e9);
    ts_inputs_changed(s, false);
}

void tui_state_run_changed(struct tui_state *s)
{
    s->dirty |= TUI_DIRTY_RIGHT | TUI_DIRTY_LEFT | TUI_DIRTY_STATUS | TUI_DIRTY_HEADER;
}

/* ---------------------------------------------------------------- availability */

static bool text_active(const struct tui_state *s)
{
    if (s->modal == TUI_MODAL_HELP)
        return false;
    return s->modal == TUI_MODAL_PROMPT || (s->modal == TUI_MODAL_LIST && s->filter_editing);
}

bool tui_action_available(const struct tui_state *s, enum tui_action a)
{
    if (s->modal == TUI_MODAL_HELP)
        return true; /* any key closes the help */
    return tui_action_works_here(s, a);
}

bool tui_action_works_here(const struct tui_state *s, enum tui_action a)
{
    enum tui_modal modal = s->modal == TUI_MODAL_HELP ? TUI_MODAL_NONE : s->modal;
    bool list = modal == TUI_MODAL_LIST, prompt = modal == TUI_MODAL_PROMPT,
         confirm = modal == TUI_MODAL_CONFIRM, none = modal == TUI_MODAL_NONE;
    int rows = tui_screen_rows(s, s->screen);
    int sel = s->sel[s->screen];
    switch (a) {
    case TUI_ACT_HELP:
    case TUI_ACT_REDRAW:
    case TUI_ACT_MOUSE:
        return !text_active(s);
    case TUI_ACT_SCR_HARDWARE:
    case TUI_ACT_SCR_WORKLOAD:
    case TUI_ACT_SCR_PLANS:
    case TUI_ACT_SCR_EDITOR:
    case TUI_ACT_SCR_EXPLAIN:
    case TUI_ACT_SCR_RUN:
        return none && s->screen != (enum tui_screen)(a - TUI_ACT_SCR_HARDWARE);
    case TUI_ACT_EXPORT:
        return none && s->have_plan;
    case TUI_ACT_LOAD:
    case TUI_ACT_RUN_ATTACH:
    case TUI_ACT_QUIT:
        return none;
    case TUI_ACT_UP:
        if (list)
            return s->list_sel > 0;
        if (!none)
            return false;
        return s->focus ? s->scroll[s->screen] > 0 : sel > 0;
    case TUI_ACT_DOWN:
        if (list)
            return s->list_sel + 1 < tui_list_count(s);
        if (!none)
            return false;
        return s->focus ? true : sel + 1 < rows;
    case TUI_ACT_LEFT:
    case TUI_ACT_RIGHT:
        return none && s->focus == 0 && ts_field_can_move(s, a == TUI_ACT_RIGHT ? 1 : -1);
    case TUI_ACT_NEXT_PANE:
        return none;
    case TUI_ACT_SELECT:
        if (list)
            return tui_list_count(s) > 0;
        if (prompt || confirm)
            return true;
        if (s->screen == TUI_SCR_HARDWARE)
            return sel == TUI_HWF_SOURCE || (ts_is_numeric_field(s->screen, sel) &&
                                             (ts_field_can_move(s, 1) || ts_field_can_move(s, -1)));
        if (s->screen == TUI_SCR_WORKLOAD)
            return sel != TUI_WLF_TASK;
        if (s->screen == TUI_SCR_PLANS)
            return rows > 0;
        if (s->screen == TUI_SCR_EDITOR)
            return s->have_plan && ts_is_numeric_field(s->screen, sel);
        return false;
    case TUI_ACT_BACK:
        return !none || s->prev_screen != s->screen;
    case TUI_ACT_SEARCH:
        return (list && !s->filter_editing) ||
               (none && ((s->screen == TUI_SCR_WORKLOAD && sel == TUI_WLF_MODEL) ||
                         (s->screen == TUI_SCR_HARDWARE && sel == TUI_HWF_SOURCE)));
    case TUI_ACT_BACKSPACE:
        return (prompt && s->input[0]) || (list && s->filter_editing && s->filter[0]);
    case TUI_ACT_MEASURE:
        return none && !s->hw_profile[0] && !s->hw_measured;
    case TUI_ACT_RUN_START:
        return none && s->have_plan && !run_active(s) && s->task != TUI_TASK_INFER;
    case TUI_ACT_RUN_STOP:
        return none && s->run.status == TUI_RUN_RUNNING;
    case TUI_ACT_RUN_RESUME:
        return none && (s->run.status == TUI_RUN_STOPPED || s->run.status == TUI_RUN_EXITED ||
                        s->run.status == TUI_RUN_FAILED) &&
               s->run.out_dir[0];
    case TUI_ACT_YES:
    case TUI_ACT_NO:
        return confirm;
    case TUI_ACT_COUNT:
        break;
    }
    return false;
}

/* ---------------------------------------------------------------- apply */

static void goto_screen(struct tui_state *s, enum tui_screen scr)
{
    if (scr != s->screen)
        s->prev_screen = s->screen;
    s->screen = scr;
    s->focus = 0;
    s->dirty |= TUI_DIRTY_ALL;
    if (scr == TUI_SCR_PLANS)
        run_search(s);
    if (scr == TUI_SCR_EXPLAIN) {
        s->sel[TUI_SCR_EXPLAIN] = s->sel[TUI_SCR_EDITOR];
        ts_compute_whatifs(s);
    }
}

static void select_item(struct tui_state *s)
{
    int row = s->sel[s->screen];
    char label[64], value[PLAN_PATH_MAX];
    tui_field_text(s, s->screen, row, label, sizeof(label), value, sizeof(value));
    if (s->screen == TUI_SCR_HARDWARE) {
        if (row == TUI_HWF_SOURCE)
            open_list(s, TUI_LIST_HARDWARE, false);
        else
            open_prompt(s, TUI_PROMPT_NUMBER, label, value);
        return;
    }
    if (s->screen == TUI_SCR_WORKLOAD) {
        switch (row) {
        case TUI_WLF_MODEL:
            open_list(s, TUI_LIST_MODEL, false);
            return;
        case TUI_WLF_CONFIG:
            open_prompt(s, TUI_PROMPT_CONFIG, "config.json path", s->model_config);
            return;
        case TUI_WLF_DATASET:
            open_prompt(s, TUI_PROMPT_DATASET, "dataset path", s->dataset);
            return;
        case TUI_WLF_OUT_DIR:
            open_prompt(s, TUI_PROMPT_OUT_DIR, "run directory", s->out_dir);
            return;
        default:
            open_prompt(s, TUI_PROMPT_NUMBER, label,
                        strcmp(value, "auto") && strcmp(value, "unknown") ? value : "0");
            return;
        }
    }
    if (s->screen == TUI_SCR_PLANS) {
        const struct search_plan *sp = &s->search.plans[row];
        s->plan.strategy = sp->strategy;
        s->unsaved = true;
        ts_reestimate(s);
        goto_screen(s, TUI_SCR_EDITOR);
        say(s, false, "plan %d in the editor: change any knob; s saves it", row + 1);
        return;
    }
    if (s->screen == TUI_SCR_EDITOR)
        open_prompt(s, TUI_PROMPT_NUMBER, label, value);
}

static int apply_modal(struct tui_state *s, enum tui_action a)
{
    s->dirty |= TUI_DIRTY_ALL;
    if (s->modal == TUI_MODAL_HELP) {
        s->modal = TUI_MODAL_NONE;
        return 0;
    }
    if (s->modal == TUI_MODAL_LIST) {
        switch (a) {
        case TUI_ACT_UP:
            s->list_sel--;
            return 0;
        case TUI_ACT_DOWN:
            s->list_sel++;
            return 0;
        case TUI_ACT_SELECT:
            if (s->filter_editing) {
                s->filter_editing = false; /* keep the filter, choose with Enter again */
                if (tui_list_count(s) == 1)
                    list_choose(s);
                return 0;
            }
            list_choose(s);
            return 0;
        case TUI_ACT_SEARCH:
            s->filter_editing = true;
            return 0;
        case TUI_ACT_BACKSPACE:
            s->filter[strlen(s->filter) - 1] = '\0';
            s->list_sel = 0;
            return 0;
        case TUI_ACT_BACK:
            if (s->filter_editing || s->filter[0]) {
                s->filter_editing = false;
                s->filter[0] = '\0';
            } else {
                s->modal = TUI_MODAL_NONE;
            }
            return 0;
        default:
            return 1;
        }
    }
    if (s->modal == TUI_MODAL_PROMPT) {
        switch (a) {
        case TUI_ACT_SELECT:
            prompt_done(s);
            return 0;
        case TUI_ACT_BACKSPACE:
            s->input[strlen(s->input) - 1] = '\0';
            return 0;
        case TUI_ACT_BACK:
            s->modal = TUI_MODAL_NONE;
            say(s, false, "cancelled");
            return 0;
        default:
            return 1;
        }
    }
    /* confirm */
    bool yes = a == TUI_ACT_YES || a == TUI_ACT_SELECT;
    if (!yes && a != TUI_ACT_NO && a != TUI_ACT_BACK)
        return 1;
    s->modal = TUI_MODAL_NONE;
    if (s->confirm_kind == TUI_CONFIRM_QUIT) {
        if (yes)
            s->quit = true;
        return 0;
    }
    if (!yes) {
        say(s, false, "not written: %s exists", s->export_path);
        return 0;
    }
    s->prompt_kind = TUI_PROMPT_EXPORT;
    sw_strlcpy(s->input, s->export_path, sizeof(s->input));
    export_write(s); /* "yes" to overwrite the file that exists */
    return 0;
}

int tui_state_apply(struct tui_state *s, enum tui_action a)
{
    if ((unsigned)a >= TUI_ACT_COUNT || !tui_action_available(s, a))
        return 1;
    if (s->modal != TUI_MODAL_NONE && a != TUI_ACT_REDRAW && a != TUI_ACT_MOUSE &&
        !(a == TUI_ACT_HELP && s->modal != TUI_MODAL_HELP))
        return apply_modal(s, a);
    s->dirty |= TUI_DIRTY_ALL;
    struct sw_err err;
    sw_err_init(&err);
    int rows = tui_screen_rows(s, s->screen);
    switch (a) {
    case TUI_ACT_HELP:
        s->modal = TUI_MODAL_HELP;
        return 0;
    case TUI_ACT_SCR_HARDWARE:
    case TUI_ACT_SCR_WORKLOAD:
    case TUI_ACT_SCR_PLANS:
    case TUI_ACT_SCR_EDITOR:
    case TUI_ACT_SCR_EXPLAIN:
    case TUI_ACT_SCR_RUN:
        goto_screen(s, (enum tui_screen)(a - TUI_ACT_SCR_HARDWARE));
        return 0;
    case TUI_ACT_EXPORT:
        open_prompt(s, TUI_PROMPT_EXPORT, "export plan to",
                    s->export_path[0] ? s->export_path : "plan.yaml");
        return 0;
    case TUI_ACT_LOAD:
        open_prompt(s, TUI_PROMPT_LOAD, "load plan file",
                    s->export_path[0] ? s->export_path : "");
        return 0;
    case TUI_ACT_QUIT:
        if (run_active(s) || (s->unsaved && s->have_plan)) {
            s->modal = TUI_MODAL_CONFIRM;
            s->confirm_kind = TUI_CONFIRM_QUIT;
            snprintf(s->confirm_text, sizeof(s->confirm_text), "%s Quit anyway? (y/n)",
                     run_active(s) ? "A run is active (it keeps running and can be re-attached)."
                                   : "The plan is not saved.");
            return 0;
        }
        s->quit = true;
        return 0;
    case TUI_ACT_UP:
    case TUI_ACT_DOWN: {
        int d = a == TUI_ACT_DOWN ? 1 : -1;
        if (s->focus) {
            s->scroll[s->screen] += d;
        } else {
            s->sel[s->screen] += d;
            if (s->sel[s->screen] >= rows)
                s->sel[s->screen] = rows - 1;
            if (s->sel[s->screen] < 0)
                s->sel[s->screen] = 0;
            if (s->screen == TUI_SCR_EXPLAIN)
                s->sel[TUI_SCR_EDITOR] = s->sel[TUI_SCR_EXPLAIN];
        }
        return 0;
    }
    case TUI_ACT_LEFT:
    case TUI_ACT_RIGHT:
        ts_move_field(s, a == TUI_ACT_RIGHT ? 1 : -1);
        return 0;
    case TUI_ACT_NEXT_PANE:
        s->focus = !s->focus;
        return 0;
    case TUI_ACT_SELECT:
        select_item(s);
        return 0;
    case TUI_ACT_BACK:
        goto_screen(s, s->prev_screen);
        return 0;
    case TUI_ACT_SEARCH:
        open_list(s, s->screen == TUI_SCR_WORKLOAD ? TUI_LIST_MODEL : TUI_LIST_HARDWARE, true);
        return 0;
    case TUI_ACT_MEASURE:
        load_hardware(s, true);
        if (s->hw_ok)
            say(s, false, "measured: %.1f GFLOP/s fp32, %.1f GB/s triad",
                s->hw_base.cpu.measured_fp32_flops / 1e9, s->hw_base.cpu.triad_bytes_per_s / 1e9);
        ts_inputs_changed(s, false);
        return 0;
    case TUI_ACT_RUN_START:
        run_start(s, NULL);
        return 0;
    case TUI_ACT_RUN_STOP:
        if (s->ops->run_stop(&s->run, &err) < 0)
            say(s, true, "could not stop the run: %s", err.msg);
        else
            say(s, false, "stopping: the run finishes its step, checkpoints and exits");
        return 0;
    case TUI_ACT_RUN_RESUME: {
        char ckpt[PLAN_PATH_MAX];
        if (s->ops->run_latest_ckpt(s->run.out_dir, ckpt, sizeof(ckpt), &err) < 0 || !ckpt[0]) {
            say(s, true, "cannot resume: %s",
                ckpt[0] ? err.msg : "no checkpoint in the run directory");
            s->run.status = TUI_RUN_FAILED;
            return 0;
        }
        run_start(s, ckpt);
        return 0;
    }
    case TUI_ACT_RUN_ATTACH:
        open_prompt(s, TUI_PROMPT_ATTACH, "attach to run directory",
                    s->run.out_dir[0] ? s->run.out_dir : s->out_dir);
        return 0;
    case TUI_ACT_MOUSE:
        s->mouse = !s->mouse;
        say(s, false, "mouse %s", s->mouse ? "on" : "off");
        return 0;
    case TUI_ACT_REDRAW:
        s->full_redraw = true;
        return 0;
    case TUI_ACT_BACKSPACE:
    case TUI_ACT_YES:
    case TUI_ACT_NO:
    case TUI_ACT_COUNT:
        break;
    }
    return 1;
}

static void append_utf8(char *buf, size_t cap, int ch)
{
    char enc[4];
    int n;
    if (ch < 0x80) {
        enc[0] = (char)ch;
        n = 1;
    } else if (ch < 0x800) {
        enc[0] = (char)(0xc0 | (ch >> 6));
        enc[1] = (char)(0x80 | (ch & 0x3f));
        n = 2;
    } else if (ch < 0x10000) {
        enc[0] = (char)(0xe0 | (ch >> 12));
        enc[1] = (char)(0x80 | ((ch >> 6) & 0x3f));
        enc[2] = (char)(0x80 | (ch & 0x3f));
        n = 3;
    } else {
        enc[0] = (char)(0xf0 | (ch >> 18));
        enc[1] = (char)(0x80 | ((ch >> 12) & 0x3f));
        enc[2] = (char)(0x80 | ((ch >> 6) & 0x3f));
        enc[3] = (char)(0x80 | (ch & 0x3f));
        n = 4;
    }
    size_t len = strlen(buf);
    if (len + (size_t)n + 1 > cap)
        return;
    memcpy(buf + len, enc, (size_t)n);
    buf[len + (size_t)n] = '\0';
}

int tui_state_type(struct tui_state *s, int ch)
{
    if (!text_active(s) || ch < 32 || ch == 127 || ch >= 0x110000)
        return 1;
    if (s->modal == TUI_MODAL_PROMPT) {
        append_utf8(s->input, sizeof(s->input), ch);
    } else {
        append_utf8(s->filter, sizeof(s->filter), ch);
        s->list_sel = 0;
    }
    s->dirty |= TUI_DIRTY_MODAL;
    return 0;
}

int tui_state_key(struct tui_state *s, int key)
{
    if (text_active(s) && key >= 32 && key != 127 && key < 0x110000)
        return tui_state_type(s, key);
    enum tui_action a = tui_key_action(key);
    if (s->modal == TUI_MODAL_HELP) /* any key closes the help */
        a = TUI_ACT_BACK;
    return a == TUI_ACT_COUNT ? 1 : tui_state_apply(s, a);
}

int tui_state_click(struct tui_state *s, int row)
{
    if (s->modal == TUI_MODAL_LIST) {
        if (row < 0 || row >= tui_list_count(s))
            return 1;
        s->list_sel = row;
        s->dirty |= TUI_DIRTY_MODAL;
        return 0;
    }
    if (s->modal != TUI_MODAL_NONE || row < 0 || row >= tui_screen_rows(s, s->screen))
        return 1;
    s->sel[s->screen] = row;
    s->focus = 0;
    s->dirty |= TUI_DIRTY_LEFT | TUI_DIRTY_RIGHT;
    return 0;
}

/* ---------------------------------------------------------------- headless command */

const char *tui_state_cli_command(const struct tui_state *s, char *buf, size_t n)
{
    size_t used = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (used < n)                                                                              \
            used += (size_t)snprintf(buf + used, n - used, __VA_ARGS__);                           \
    } while (0)
    buf[0] = '\0';
    if (!s->have_plan)
        return buf;
    const struct plan *p = &s->plan;
    const struct strategy *st = &p->strategy;
    ADD("scalewise estimate");
    if (s->model_profile[0])
        ADD(" --model %s", s->model_profile);
    else
        ADD(" --model-config %s", s->model_config);
    if (s->hw_profile[0])
        ADD(" --gpu %s", s->hw_profile);
    ADD(" --nodes %d", p->hardware.nodes);
    if (p->hardware.n_gpus > 0)
        ADD(" --gpus-per-node %d", p->hardware.n_gpus);
    ADD(" --task %s", task_name(p->workload.task));
    if (p->workload.task == TASK_TRAIN)
        ADD(" --seq %d", p->workload.seq);
    else
        ADD(" --batch %d --prompt-len %d --gen-len %d", p->workload.batch, p->workload.prompt_len,
            p->workload.gen_len);
    ADD(" --device %s --precision %s --optimizer %s --micro-batch %d --grad-accum %d",
        device_name(st->device), precision_name(st->precision), optimizer_name(st->optimizer),
        st->micro_batch, st->grad_accum);
    ADD(" --dp %d --tp %d --pp %d --zero %d --recompute %s --attention %s", st->dp, st->tp, st->pp,
        st->zero, recompute_name(st->recompute), attention_name(st->attention));
    if (st->pp_interleave > 1)
        ADD(" --pp-interleave %d", st->pp_interleave);
    if (st->sequence_parallel)
        ADD(" --sequence-parallel");
    if (st->offload_optimizer)
        ADD(" --offload-optimizer");
    if (st->offload_params)
        ADD(" --offload-params");
    if (st->lora_rank > 0)
        ADD(" --lora-rank %d", st->lora_rank);
    ADD(" --weights %s --kv-dtype %s --threads %d --format json", wformat_name(st->weights),
        wformat_name(st->kv_dtype), st->threads);
#undef ADD
    return buf;
}

/* ---------------------------------------------------------------- life cycle */

void tui_state_init(struct tui_state *s, const struct tui_ops *ops)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops ? ops : &tui_ops_default;
    s->screen = s->prev_screen = TUI_SCR_HARDWARE;
    hw_init(&s->hw_base);
    hw_init(&s->hw);
    workload_init(&s->wl);
    s->task = TUI_TASK_TRAIN;
    sw_strlcpy(s->dataset, "data/tinyshakespeare.txt", sizeof(s->dataset));
    s->steps = 100;
    sw_strlcpy(s->out_dir, "runs/tui", sizeof(s->out_dir));
    search_result_init(&s->search);
    s->plans_stale = true;
    plan_init(&s->plan);
    estimate_init(&s->est);
    advisor_calib_default(&s->cal);
    tui_run_init(&s->run);
    s->dirty = TUI_DIRTY_ALL;
}

void tui_state_release(struct tui_state *s)
{
    profiles_free_names(s->model_names, s->n_models);
    profiles_free_names(s->hw_names, s->n_hw);
    s->model_names = s->hw_names = NULL;
    s->n_models = s->n_hw = 0;
    search_result_release(&s->search);
}

int tui_state_start(struct tui_state *s, const char *plan_path, struct sw_err *err)
{
    struct sw_err e2;
    sw_err_init(&e2);
    if (s->ops->list_profiles(PROFILE_MODEL, &s->model_names, &s->n_models, &e2) < 0)
        say(s, true, "model profiles: %s", e2.msg);
    if (s->ops->list_profiles(PROFILE_HARDWARE, &s->hw_names, &s->n_hw, &e2) < 0)
        say(s, true, "hardware profiles: %s", e2.msg);
    load_hardware(s, false);
    if (s->hw_ok)
        say(s, false, "probed this machine (press m to measure FLOP/s); w: choose a model");
    if (plan_path) {
        s->prompt_kind = TUI_PROMPT_LOAD;
        s->modal = TUI_MODAL_PROMPT;
        sw_strlcpy(s->input, plan_path, sizeof(s->input));
        prompt_done(s);
        if (!s->have_plan || strcmp(s->export_path, plan_path))
            return sw_errf(err, SW_EINVAL, "%s", s->message);
    }
    return 0;
}
