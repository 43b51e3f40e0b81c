/* `scalewise estimate`: the memory and speed of one fully specified setup (model, hardware,
 * workload and strategy from the shared flags of args.c). Prints a readable breakdown (memory
 * split with GiB and a bar, capacity and fit, FLOPs, step-time split, tokens/s, MFU, inference
 * latencies, reasons) or the estimate tree as YAML/JSON through estimate_emit. A setup that does
 * not fit is a result (exit 0, fits: false); a combination the advisor rejects is bad input
 * (exit 2). Also holds the text and tree printers of strategies and estimates that plan and
 * explain reuse. The numbers themselves come from the advisor. */
#include "cli/cli_int.h"

#include <math.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

const char *cli_strategy_summary(const struct strategy *st, enum sw_task task, char *buf, size_t n)
{
    size_t used = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (used < n)                                                                              \
            used += (size_t)snprintf(buf + used, n - used, __VA_ARGS__);                           \
    } while (0)
    ADD("%s dp=%d tp=%d pp=%d", device_name(st->device), st->dp, st->tp, st->pp);
    if (task == TASK_TRAIN) {
        if (st->pp > 1 && st->pp_interleave > 1)
            ADD(" v=%d", st->pp_interleave);
        ADD(" zero=%d", st->zero);
        if (st->sequence_parallel)
            ADD(" sp");
        ADD(" %s %s b=%d m=%d", precision_name(st->precision), optimizer_name(st->optimizer),
            st->micro_batch, st->grad_accum);
        if (st->recompute != RECOMPUTE_NONE)
            ADD(" recompute=%s", recompute_name(st->recompute));
        ADD(" %s", attention_name(st->attention));
        if (st->offload_optimizer)
            ADD(" offload-opt");
        if (st->offload_params)
            ADD(" offload-params");
        if (st->lora_rank > 0)
            ADD(" lora=%d base=%s", st->lora_rank, wformat_name(st->weights));
    } else {
        ADD(" weights=%s kv=%s %s", wformat_name(st->weights), wformat_name(st->kv_dtype),
            attention_name(st->attention));
    }
#undef ADD
    return buf;
}

void cli_emit_strategy(struct sw_emit *e, const char *key, const struct strategy *st)
{
    sw_emit_map_begin(e, key);
    sw_emit_str(e, "device", device_name(st->device));
    sw_emit_str(e, "precision", precision_name(st->precision));
    sw_emit_str(e, "optimizer", optimizer_name(st->optimizer));
    sw_emit_i64(e, "micro_batch", st->micro_batch);
    sw_emit_i64(e, "grad_accum", st->grad_accum);
    sw_emit_str(e, "recompute", recompute_name(st->recompute));
    sw_emit_str(e, "attention", attention_name(st->attention));
    sw_emit_i64(e, "dp", st->dp);
    sw_emit_i64(e, "tp", st->tp);
    sw_emit_i64(e, "pp", st->pp);
    sw_emit_i64(e, "pp_interleave", st->pp_interleave);
    sw_emit_i64(e, "zero", st->zero);
    sw_emit_bool(e, "sequence_parallel", st->sequence_parallel);
    sw_emit_bool(e, "offload_optimizer", st->offload_optimizer);
    sw_emit_bool(e, "offload_params", st->offload_params);
    sw_emit_i64(e, "lora_rank", st->lora_rank);
    sw_emit_str(e, "weights", wformat_name(st->weights));
    sw_emit_str(e, "kv_dtype", wformat_name(st->kv_dtype));
    sw_emit_i64(e, "threads", st->threads);
    sw_emit_map_end(e);
}

/* A bar of `width` cells for a share in [0, 1]. */
static void bar(char *out, int width, double share)
{
    if (!(share > 0))
        share = 0;
    if (share > 1)
        share = 1;
    int cells = (int)lround(share * width);
    if (cells == 0 && share > 0)
        cells = 1;
    for (int i = 0; i < width; i++)
        out[i] = i < cells ? '#' : '.';
    out[width] = '\0';
}

static void mem_row(FILE *f, const char *name, double bytes, double total)
{
    char b[32];
    double share = total > 0 ? bytes / total : 0;
    bar(b, 20, share);
    fprintf(f, "  %-12s %10.2f GiB %6.1f%%  %s\n", name, bytes / GIB, share * 100.0, b);
}

/* Seconds in a readable unit. */
static const char *fmt_s(double s, char *buf, size_t n)
{
    if (!(s > 0))
        snprintf(buf, n, "0");
    else if (s < 1e-3)
        snprintf(buf, n, "%.1f us", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, n, "%.2f ms", s * 1e3);
    else if (s < 3600.0 * 48)
        snprintf(buf, n, "%.3f s", s);
    else
        snprintf(buf, n, "%.1f days", s / 86400.0);
    return buf;
}

static const char *fmt_count(double x, char *buf, size_t n)
{
    if (x >= 1e12)
        snprintf(buf, n, "%.2f T", x / 1e12);
    else if (x >= 1e9)
        snprintf(buf, n, "%.2f B", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, n, "%.2f M", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.2f K", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
    return buf;
}

void cli_print_estimate_text(FILE *f, const struct estimate *est, enum sw_task task,
                             bool with_reasons)
{
    char a[48], b[48], c[48], d[48], g[48];
    const struct mem_split *m = &est->dev;
    fprintf(f, "parameters: %s total, %s trainable\n",
            fmt_count((double)est->params_total, a, sizeof(a)),
            fmt_count((double)est->params_trainable, b, sizeof(b)));
    fprintf(f, "memory per device (%d device%s):\n", est->gpus, est->gpus == 1 ? "" : "s");
    mem_row(f, "weights", m->weights, m->total);
    mem_row(f, "gradients", m->gradients, m->total);
    mem_row(f, "optimizer", m->optimizer, m->total);
    mem_row(f, "activations", m->activations, m->total);
    if (est->logits_bytes > 0)
        fprintf(f, "  %-12s %10.2f GiB (part of activations)\n", "  logits",
                est->logits_bytes / GIB);
    mem_row(f, "kv cache", m->kv_cache, m->total);
    mem_row(f, "workspace", m->workspace, m->total);
    mem_row(f, "overhead", m->overhead, m->total);
    double use = est->capacity_bytes > 0 ? m->total / est->capacity_bytes : 0;
    char ub[32];
    bar(ub, 20, use);
    fprintf(f, "  %-12s %10.2f GiB of %.2f GiB capacity (%.1f%%)  %s\n", "total", m->total / GIB,
            est->capacity_bytes / GIB, use * 100.0, ub);
    fprintf(f, "host memory per node: %.2f GiB of %.2f GiB (offload %.2f GiB)%s\n",
            est->host_total_bytes / GIB, est->host_capacity_bytes / GIB,
            est->host_offload_bytes / GIB, est->host_fits ? "" : "  ! does not fit");
    if (est->fits)
        fprintf(f, "fits: yes\n");
    else
        fprintf(f, "fits: NO ! over budget by %.2f GiB per device\n",
                m->total > est->capacity_bytes ? (m->total - est->capacity_bytes) / GIB : 0.0);
    if (task == TASK_TRAIN) {
        fprintf(f,
                "compute: %.3g FLOPs per token, %.3g FLOPs per step (model), %.3g with "
                "recompute\n",
                est->flops_per_token, est->flops_per_step, est->hw_flops_per_step);
        fprintf(f,
                "step time: %s = compute %s + exposed comm %s + bubble %s + optimizer %s + "
                "offload %s\n",
                fmt_s(est->step_time_s, a, sizeof(a)), fmt_s(est->compute_s, b, sizeof(b)),
                fmt_s(est->comm_exposed_s, c, sizeof(c)), fmt_s(est->bubble_s, d, sizeof(d)),
                fmt_s(est->optimizer_s, g, sizeof(g)), fmt_s(est->offload_s, ub, sizeof(ub)));
        fprintf(f,
                "throughput: %.0f tokens/s, MFU %.1f%%, HFU %.1f%% (peak %.1f TFLOP/s %s per "
                "device)\n",
                est->tokens_per_s, est->mfu * 100.0, est->hfu * 100.0, est->peak_flops_used / 1e12,
                hw_dtype_name(est->peak_dtype));
        if (est->time_to_train_s > 0)
            fprintf(f, "time to train: %s, %.0f GPU-hours\n",
                    fmt_s(est->time_to_train_s, a, sizeof(a)), est->gpu_hours);
    } else {
        fprintf(f, "time to first token: %s\n", fmt_s(est->ttft_s, a, sizeof(a)));
        fprintf(f, "decode: %s per token, %.1f tokens/s\n",
                fmt_s(est->decode_s_per_token, a, sizeof(a)), est->infer_tokens_per_s);
    }
    if (est->link_class[0])
        fprintf(f, "links: %s\n", est->link_class);
    if (with_reasons && est->n_reasons > 0) {
        fprintf(f, "reasons:\n");
        for (int i = 0; i < est->n_reasons; i++)
            fprintf(f, "  - %s\n", est->reasons[i]);
    }
}

int cli_estimate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_usage("estimate");
        return CLI_EXIT_OK;
    }
    struct sw_err err;
    sw_err_init(&err);
    struct cli_setup *s = sw_xmalloc(sizeof(*s));
    struct estimate *est = sw_xmalloc(sizeof(*est));
    int code = CLI_EXIT_OK;
    cli_setup_init(s);
    estimate_init(est);
    if (cli_parse(argc, argv, s, NULL, NULL, NULL, &err) < 0 ||
        cli_setup_resolve(s, true, &err) < 0) {
        code = cli_report("estimate", &err);
        goto out;
    }
    if (advisor_estimate(&s->model, &s->hw, &s->wl, &s->st, &s->cal, est, &err) < 0) {
        code = cli_report("estimate", &err);
        goto out;
    }
    cli_calib_add_reasons(&s->calib, est);
    if (s->dp_reduced_from > 0)
        estimate_add_reason(est,
                            "dp=%d instead of %d: a global batch of %lld sequences with "
                            "micro-batch %d feeds only %d data-parallel ranks exactly",
                            s->st.dp, s->dp_reduced_from, (long long)s->global_batch,
                            s->st.micro_batch, s->st.dp);
    if (s->fmt == SW_FMT_TEXT) {
        char ml[160], hl[256], sl[256];
        printf("model: %s\nhardware: %s\ntask: %s", cli_model_label(s, ml, sizeof(ml)),
               cli_hw_label(&s->hw, hl, sizeof(hl)), task_name(s->wl.task));
        if (s->wl.task == TASK_TRAIN)
            printf(", seq %d, global batch %lld sequences\n", s->wl.seq,
                   (long long)s->wl.global_batch);
        else
            printf(", batch %d, prompt %d, generate %d\n", s->wl.batch, s->wl.prompt_len,
                   s->wl.gen_len);
        printf("strategy: %s\n\n", cli_strategy_summary(&s->st, s->wl.task, sl, sizeof(sl)));
        cli_print_estimate_text(stdout, est, s->wl.task, true);
    } else {
        struct sw_emit e;
        sw_emit_init(&e, stdout, s->fmt);
        estimate_emit(&e, NULL, est);
        sw_emit_finish(&e);
    }
out:
    free(est);
    free(s);
    return code;
}
