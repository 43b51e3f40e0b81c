/* `scalewise plan` and `scalewise explain`. plan runs the strategy search (advisor_search) for
 * the model, hardware and workload of the shared flags and prints the ranked plans (a table and
 * the best plan's reasons, or the tree as YAML/JSON); -o writes the best plan as a plan file.
 * explain loads a plan file, re-estimates it with the current advisor, prints the breakdown and
 * the reasons, and sets the stored estimate beside the current one when the file carries one.
 * Both print how to start a multi-process plan (plan_launch_build: mpirun, srun, torchrun,
 * --nproc). The search, estimates and plan I/O live in the advisor. */
#include "cli/cli_int.h"

#include <math.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

struct plan_args {
    int64_t global_batch_tokens;
    int64_t tokens_total;
    int top_k;
    double headroom;
    bool allow_lora;
    const char *out_path;
};

static const struct cli_flag plan_flags[] = {
    {"--global-batch-tokens", true}, {"--tokens", true}, {"--top", true},    {"--headroom", true},
    {"--allow-lora", false},         {"-o", true},       {"--output", true}, {NULL, false},
};

static int plan_flag(void *ctx, const char *flag, const char *value, struct sw_err *err)
{
    struct plan_args *a = ctx;
    int rc = 0;
    if (!flag)
        return sw_errf(err, SW_EINVAL, "unexpected argument '%s'", value);
    if (!strcmp(flag, "--global-batch-tokens"))
        rc = sw_parse_i64(value, 1, (int64_t)1 << 50, "value", &a->global_batch_tokens, err);
    else if (!strcmp(flag, "--tokens"))
        rc = sw_parse_i64(value, 1, (int64_t)1 << 62, "value", &a->tokens_total, err);
    else if (!strcmp(flag, "--top"))
        rc = sw_parse_int(value, 1, 100, "value", &a->top_k, err);
    else if (!strcmp(flag, "--headroom"))
        rc = sw_parse_double(value, 0.0, 0.9, "value", &a->headroom, err);
    else if (!strcmp(flag, "--allow-lora"))
        a->allow_lora = true;
    else if (!strcmp(flag, "-o") || !strcmp(flag, "--output"))
        a->out_path = value;
    if (rc < 0) {
        char msg[SW_ERR_MSG_MAX];
        sw_strlcpy(msg, err->msg, sizeof(msg));
        return sw_errf(err, rc, "%s: %s", flag, msg);
    }
    return 0;
}

static const char *fmt_duration(double s, char *buf, size_t n)
{
    if (!(s > 0))
        snprintf(buf, n, "-");
    else if (s < 3600)
        snprintf(buf, n, "%.1f min", s / 60.0);
    else if (s < 86400 * 2)
        snprintf(buf, n, "%.1f h", s / 3600.0);
    else
        snprintf(buf, n, "%.1f d", s / 86400.0);
    return buf;
}

static void emit_workload(struct sw_emit *e, const struct workload *w)
{
    sw_emit_map_begin(e, "workload");
    sw_emit_str(e, "task", task_name(w->task));
    if (w->task == TASK_TRAIN) {
        sw_emit_i64(e, "seq", w->seq);
        sw_emit_i64(e, "global_batch", w->global_batch);
        sw_emit_i64(e, "global_batch_tokens", w->global_batch * w->seq);
        sw_emit_i64(e, "tokens_total", w->tokens_total);
    } else {
        sw_emit_i64(e, "batch", w->batch);
        sw_emit_i64(e, "prompt_len", w->prompt_len);
        sw_emit_i64(e, "gen_len", w->gen_len);
    }
    sw_emit_map_end(e);
}

static void print_plans_text(const struct cli_setup *s, const struct search_result *r,
                             const struct plan_args *a)
{
    char ml[160], hl[256], sl[256], b1[32], b2[32];
    printf("model: %s\nhardware: %s\n", cli_model_label(s, ml, sizeof(ml)),
           cli_hw_label(&s->hw, hl, sizeof(hl)));
    if (s->wl.task == TASK_TRAIN)
        printf("task: train, seq %d\n", s->wl.seq);
    else
        printf("task: infer, batch %d, prompt %d, generate %d\n", s->wl.batch, s->wl.prompt_len,
               s->wl.gen_len);
    printf("searched %lld candidates in %.1f ms: %s\n\n", (long long)r->candidates_evaluated,
           r->elapsed_s * 1e3,
           r->any_fits ? "ranked plans that fit" : "NOTHING FITS ! closest candidates");
    bool ttt = s->wl.task == TASK_TRAIN && a->tokens_total > 0;
    if (s->wl.task == TASK_TRAIN)
        printf("%-4s %-8s %-21s %12s %6s%s  %s\n", "rank", "devices", "memory/device GiB",
               "tokens/s", "MFU", ttt ? "    to train   GPU-hours" : "", "strategy");
    else
        printf("%-4s %-8s %-21s %10s %10s %12s  %s\n", "rank", "devices", "memory/device GiB",
               "TTFT", "ms/token", "tokens/s", "strategy");
    for (int i = 0; i < r->n_plans; i++) {
        const struct search_plan *p = &r->plans[i];
        const struct estimate *e = &p->estimate;
        char mem[40];
        snprintf(mem, sizeof(mem), "%.1f / %.1f%s", e->dev.total / GIB, e->capacity_bytes / GIB,
                 e->fits ? "" : " !");
        cli_strategy_summary(&p->strategy, s->wl.task, sl, sizeof(sl));
        if (s->wl.task == TASK_TRAIN) {
            printf("%-4d %-8d %-21s %12.0f %5.1f%%", i + 1, e->gpus, mem, e->tokens_per_s,
                   e->mfu * 100.0);
            if (ttt)
                printf(" %10s %11.0f", fmt_duration(e->time_to_train_s, b1, sizeof(b1)),
                       e->gpu_hours);
            printf("  %s\n", sl);
        } else {
            snprintf(b1, sizeof(b1), "%.1f ms", e->ttft_s * 1e3);
            snprintf(b2, sizeof(b2), "%.2f", e->decode_s_per_token * 1e3);
            printf("%-4d %-8d %-21s %10s %10s %12.1f  %s\n", i + 1, e->gpus, mem, b1, b2,
                   e->infer_tokens_per_s, sl);
        }
    }
    if (r->n_plans > 0) {
        const struct estimate *e = &r->plans[0].estimate;
        printf("\nreasons for plan 1:\n");
        for (int i = 0; i < e->n_reasons; i++)
            printf("  - %s\n", e->reasons[i]);
    }
    if (r->n_reasons > 0) {
        printf("\nsearch:\n");
        for (int i = 0; i < r->n_reasons; i++)
            printf("  - %s\n", r->reasons[i]);
    }
}

/* The launch commands, one per line, for a text listing. */
static void print_launch(const struct plan_launch *l, const char *title)
{
    printf("\n%s: %d processes", title, l->processes);
    if (l->nodes > 0 && l->per_node > 0)
        printf(" (%d node%s x %d)", l->nodes, l->nodes == 1 ? "" : "s", l->per_node);
    printf("\n");
    const struct {
        const char *name, *cmd;
    } rows[] = {
        {"nproc", l->nproc}, {"mpirun", l->mpirun}, {"srun", l->srun}, {"torchrun", l->torchrun}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (rows[i].cmd[0])
            printf("  %-9s %s\n", rows[i].name, rows[i].cmd);
}

static void emit_launch(struct sw_emit *e, const char *key, const struct plan_launch *l)
{
    if (!l->present) {
        sw_emit_null(e, key);
        return;
    }
    sw_emit_map_begin(e, key);
    sw_emit_i64(e, "processes", l->processes);
    sw_emit_i64(e, "nodes", l->nodes);
    sw_emit_i64(e, "per_node", l->per_node);
    const char *cmds[][2] = {
        {"mpirun", l->mpirun}, {"srun", l->srun}, {"torchrun", l->torchrun}, {"nproc", l->nproc}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i][1][0])
            sw_emit_str(e, cmds[i][0], cmds[i][1]);
    sw_emit_map_end(e);
}

static void emit_plans(enum sw_fmt fmt, const struct search_result *r, const struct hardware *hw,
                       const char *out_path)
{
    struct plan_launch *l = sw_xmalloc(sizeof(*l));
    struct sw_emit e;
    sw_emit_init(&e, stdout, fmt);
    sw_emit_map_begin(&e, NULL);
    sw_emit_list_begin(&e, "plans");
    for (int i = 0; i < r->n_plans; i++) {
        const struct search_plan *p = &r->plans[i];
        sw_emit_map_begin(&e, NULL);
        sw_emit_i64(&e, "rank", i + 1);
        sw_emit_num(&e, "score", p->score);
        cli_emit_strategy(&e, "strategy", &p->strategy);
        emit_workload(&e, &p->workload);
        estimate_emit(&e, "estimate", &p->estimate);
        plan_launch_build(&p->strategy, hw, out_path, l);
        emit_launch(&e, "launch", l);
        sw_emit_map_end(&e);
    }
    free(l);
    sw_emit_list_end(&e);
    sw_emit_bool(&e, "any_fits", r->any_fits);
    sw_emit_i64(&e, "candidates_evaluated", r->candidates_evaluated);
    sw_emit_num_prec(&e, "elapsed_s", r->elapsed_s, 6);
    sw_emit_list_begin(&e, "reasons");
    for (int i = 0; i < r->n_reasons; i++)
        sw_emit_str(&e, NULL, r->reasons[i]);
    sw_emit_list_end(&e);
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
}

/* The best plan as a plan file: the search's strategy and estimate with the model and hardware
 * named as the user named them. */
static int write_plan(const char *path, const struct cli_setup *s, const struct search_plan *best,
                      const struct plan_args *a, struct sw_err *err)
{
    struct plan *p = sw_xmalloc(sizeof(*p));
    plan_init(p);
    sw_strlcpy(p->hw_ref.profile, s->hw_profile, sizeof(p->hw_ref.profile));
    sw_strlcpy(p->hw_ref.file, s->hw_file, sizeof(p->hw_ref.file));
    p->hw_ref.probe = s->hw_probe;
    p->hw_ref.nodes = s->hw.nodes;
    p->hw_ref.gpus_per_node = s->hw.n_gpus;
    p->hardware = s->hw;
    sw_strlcpy(p->model_ref.profile, s->model_profile, sizeof(p->model_ref.profile));
    sw_strlcpy(p->model_ref.config_json, s->model_config, sizeof(p->model_ref.config_json));
    p->model = s->model;
    p->workload = best->workload;
    p->workload.tokens_total = a->tokens_total;
    p->strategy = best->strategy;
    p->estimate = best->estimate;
    p->has_estimate = true;
    if (p->workload.task == TASK_TRAIN) {
        int64_t per_step = p->workload.global_batch * p->workload.seq;
        if (a->tokens_total > 0 && per_step > 0)
            p->train.steps = (a->tokens_total + per_step - 1) / per_step;
        else
            p->train.steps = 1000;
    }
    int rc = plan_save(path, p, err);
    free(p);
    return rc;
}

int cli_plan(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_usage("plan");
        return CLI_EXIT_OK;
    }
    struct sw_err err;
    sw_err_init(&err);
    struct plan_args a = {0, 0, 5, 0.10, false, NULL};
    struct cli_setup *s = sw_xmalloc(sizeof(*s));
    struct search_result r;
    search_result_init(&r);
    int code = CLI_EXIT_OK;
    cli_setup_init(s);
    if (cli_parse(argc, argv, s, plan_flags, plan_flag, &a, &err) < 0) {
        code = cli_report("plan", &err);
        goto out;
    }
    if (s->given & CLI_G_STRATEGY_FLAGS) {
        sw_errf(&err, SW_EINVAL,
                "strategy flags (--tp, --zero, --micro-batch, ...) are what "
                "plan searches; use 'scalewise estimate' to evaluate one "
                "strategy");
        code = cli_report("plan", &err);
        goto out;
    }
    if (cli_setup_resolve(s, false, &err) < 0) {
        code = cli_report("plan", &err);
        goto out;
    }
    struct search_opts o;
    search_opts_init(&o);
    o.top_k = a.top_k;
    o.headroom = a.headroom;
    o.global_batch_tokens = a.global_batch_tokens;
    o.allow_lora = a.allow_lora;
    struct workload wl = s->wl;
    wl.global_batch = s->global_batch;
    wl.tokens_total = a.tokens_total;
    s->wl = wl;
    if (advisor_search(&s->model, &s->hw, &wl, &o, &s->cal, &r, &err) < 0) {
        code = cli_report("plan", &err);
        goto out;
    }
    for (int i = 0; i < r.n_plans; i++)
        cli_calib_add_reasons(&s->calib, &r.plans[i].estimate);
    if (s->fmt == SW_FMT_TEXT) {
        print_plans_text(s, &r, &a);
        if (r.n_plans > 0 && r.any_fits) {
            /* Plan 1 as -o writes it (the file named as given, else plan.yaml). */
            struct plan_launch *l = sw_xmalloc(sizeof(*l));
            plan_launch_build(&r.plans[0].strategy, &s->hw, a.out_path, l);
            if (l->present)
                print_launch(l, "launch plan 1");
            free(l);
        }
    } else {
        emit_plans(s->fmt, &r, &s->hw, a.out_path);
    }
    if (a.out_path) {
        if (!r.any_fits || r.n_plans == 0) {
            fprintf(stderr, "scalewise plan: nothing fits; no plan written to %s\n", a.out_path);
            code = CLI_EXIT_FAIL;
        } else if (write_plan(a.out_path, s, &r.plans[0], &a, &err) < 0) {
            code = cli_report("plan", &err);
        } else {
            fprintf(s->fmt == SW_FMT_TEXT ? stdout : stderr, "%swrote plan 1 to %s\n",
                    s->fmt == SW_FMT_TEXT ? "\n" : "", a.out_path);
        }
    }
out:
    search_result_release(&r);
    free(s);
    return code;
}

/* ------------------------------------------------------------------ explain */

static void compare_row(const char *name, double stored, double cur, double scale, const char *unit)
{
    char d[32] = "";
    if (stored != 0 && isfinite(stored) && isfinite(cur) && fabs(cur - stored) > 1e-12)
        snprintf(d, sizeof(d), "%+.1f%%", 100.0 * (cur - stored) / fabs(stored));
    printf("  %-20s %14.4g %14.4g %-6s %s\n", name, stored / scale, cur / scale, unit, d);
}

static void print_compare(const struct estimate *st, const struct estimate *cur)
{
    printf("\nstored estimate vs current:\n  %-20s %14s %14s\n", "", "stored", "current");
    compare_row("weights", st->dev.weights, cur->dev.weights, GIB, "GiB");
    compare_row("gradients", st->dev.gradients, cur->dev.gradients, GIB, "GiB");
    compare_row("optimizer", st->dev.optimizer, cur->dev.optimizer, GIB, "GiB");
    compare_row("activations", st->dev.activations, cur->dev.activations, GIB, "GiB");
    compare_row("kv cache", st->dev.kv_cache, cur->dev.kv_cache, GIB, "GiB");
    compare_row("workspace", st->dev.workspace, cur->dev.workspace, GIB, "GiB");
    compare_row("overhead", st->dev.overhead, cur->dev.overhead, GIB, "GiB");
    compare_row("total", st->dev.total, cur->dev.total, GIB, "GiB");
    printf("  %-20s %14s %14s\n", "fits", st->fits ? "yes" : "no", cur->fits ? "yes" : "no");
    compare_row("step time", st->step_time_s, cur->step_time_s, 1.0, "s");
    compare_row("tokens/s", st->tokens_per_s, cur->tokens_per_s, 1.0, "");
    compare_row("MFU", st->mfu, cur->mfu, 0.01, "%");
    compare_row("TTFT", st->ttft_s, cur->ttft_s, 1.0, "s");
    compare_row("decode per token", st->decode_s_per_token, cur->decode_s_per_token, 1.0, "s");
}

struct explain_args {
    const char *path;
    enum sw_fmt fmt;
    double achieved_tflops;
    const char *calibration; /* --calibration FILE, or NULL */
};

static int explain_parse(int argc, char **argv, struct explain_args *a, struct sw_err *err)
{
    static const char *const names[] = {"--format", "--achieved-tflops", "--help",
                                        "--calibration", NULL};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (a->path)
                return sw_errf(err, SW_EINVAL, "unexpected argument '%s' (one plan file)", arg);
            a->path = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        int which = -1;
        for (int k = 0; names[k]; k++)
            if (strlen(names[k]) == len && !strncmp(arg, names[k], len))
                which = k;
        if (which < 0 || which == 2) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)len, arg);
            const char *near = sw_suggest(name, names);
            return near ? sw_errf(err, SW_EINVAL, "unknown flag '%s'; did you mean '%s'?", name,
                                  near)
                        : sw_errf(err, SW_EINVAL, "unknown flag '%s'", name);
        }
        if (!val)
            return sw_errf(err, SW_EINVAL, "%s needs a value", names[which]);
        if (!eq)
            i++;
        if (which == 3) {
            a->calibration = val;
            continue;
        }
        int rc = which == 0 ? sw_fmt_parse(val, &a->fmt, err)
                            : sw_parse_double(val, 1e-6, 1e9, "value", &a->achieved_tflops, err);
        if (rc < 0) {
            char msg[SW_ERR_MSG_MAX];
            sw_strlcpy(msg, err->msg, sizeof(msg));
            return sw_errf(err, rc, "%s: %s", names[which], msg);
        }
    }
    if (!a->path)
        return sw_errf(err, SW_EINVAL, "no plan file: scalewise explain PLAN.yaml");
    return 0;
}

int cli_explain(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_usage("explain");
        return CLI_EXIT_OK;
    }
    struct sw_err err;
    sw_err_init(&err);
    struct explain_args a = {NULL, SW_FMT_TEXT, 0, NULL};
    struct cli_calib *calib = sw_xcalloc(1, sizeof(*calib));
    struct plan *p = sw_xmalloc(sizeof(*p));
    struct estimate *cur = sw_xmalloc(sizeof(*cur));
    struct plan_launch *launch = sw_xcalloc(1, sizeof(*launch));
    int code = CLI_EXIT_OK;
    plan_init(p);
    estimate_init(cur);
    if (explain_parse(argc, argv, &a, &err) < 0 || plan_load(a.path, p, &err) < 0) {
        code = cli_report("explain", &err);
        goto out;
    }
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    if (a.calibration &&
        (sw_strlcpy(calib->path, a.calibration, sizeof(calib->path)) >= sizeof(calib->path) ||
         cli_calib_load(calib, &p->hardware, &cal, &err) < 0)) {
        if (!err.code)
            sw_errf(&err, SW_EINVAL, "--calibration: path too long");
        code = cli_report("explain", &err);
        goto out;
    }
    if (a.achieved_tflops > 0)
        cal.achieved_flops = a.achieved_tflops * 1e12;
    if (advisor_estimate(&p->model, &p->hardware, &p->workload, &p->strategy, &cal, cur, &err) <
        0) {
        code = cli_report("explain", &err);
        goto out;
    }
    cli_calib_add_reasons(calib, cur);
    /* What the advisor would write for this plan, named as the user named the file. */
    plan_launch_build(&p->strategy, &p->hardware, a.path, launch);
    if (a.fmt == SW_FMT_TEXT) {
        char hl[256], sl[256];
        printf("plan: %s\nmodel: %s (%s)\nhardware: %s\n", a.path,
               p->model_ref.profile[0]       ? p->model_ref.profile
               : p->model_ref.config_json[0] ? p->model_ref.config_json
                                             : "inline sizes",
               model_arch_name(p->model.arch), cli_hw_label(&p->hardware, hl, sizeof(hl)));
        printf("task: %s", task_name(p->workload.task));
        if (p->workload.task == TASK_TRAIN)
            printf(", seq %d, global batch %lld sequences, %lld steps\n", p->workload.seq,
                   (long long)p->workload.global_batch, (long long)p->train.steps);
        else
            printf(", batch %d, prompt %d, generate %d\n", p->workload.batch,
                   p->workload.prompt_len, p->workload.gen_len);
        printf("strategy: %s\n\n",
               cli_strategy_summary(&p->strategy, p->workload.task, sl, sizeof(sl)));
        cli_print_estimate_text(stdout, cur, p->workload.task, true);
        if (p->has_estimate)
            print_compare(&p->estimate, cur);
        if (p->launch.present) {
            print_launch(&p->launch, "launch (from the plan)");
            if (p->launch.processes > 0 && p->launch.processes != launch->processes)
                printf("  ! the plan's launch section is for %d processes; its strategy runs "
                       "%d\n",
                       p->launch.processes, launch->processes > 0 ? launch->processes : 1);
        } else if (launch->present) {
            print_launch(launch, "launch");
        }
    } else {
        struct sw_emit e;
        sw_emit_init(&e, stdout, a.fmt);
        sw_emit_map_begin(&e, NULL);
        sw_emit_str(&e, "plan", a.path);
        cli_emit_strategy(&e, "strategy", &p->strategy);
        emit_workload(&e, &p->workload);
        estimate_emit(&e, "estimate", cur);
        if (p->has_estimate)
            estimate_emit(&e, "stored_estimate", &p->estimate);
        else
            sw_emit_null(&e, "stored_estimate");
        emit_launch(&e, "launch", p->launch.present ? &p->launch : launch);
        sw_emit_map_end(&e);
        sw_emit_finish(&e);
    }
out:
    free(calib);
    free(launch);
    free(cur);
    free(p);
    return code;
}
