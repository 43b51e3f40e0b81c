/* What a run tells the outside world while and after it runs: metrics.jsonl (one JSON object
 * per logged step, appended and flushed at once so `tail -f` or the TUI sees it), report.yaml
 * at the end (the measured peak memory by category from the backend's counters and the peak
 * RSS, beside the advisor's estimate of the same plan under the same key names, plus measured
 * and predicted speed), the progress line a terminal shows, and the peak RSS of the process.
 * Formatting only: this file never prints; the CLI decides where the progress text goes. */
#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---------------------------------------------------------------- metrics.jsonl */

/* A JSON number, or null when not finite. */
static void json_num(char *buf, size_t n, double x, int prec)
{
    if (isfinite(x))
        snprintf(buf, n, "%.*g", prec, x);
    else
        snprintf(buf, n, "null");
}

/* The step of a metrics line ("{\"step\": N, ..."), or -1. */
static int64_t line_step(const char *line)
{
    const char *p = strstr(line, "\"step\":");
    if (!p)
        return -1;
    p += 7;
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    return end == p ? -1 : (int64_t)v;
}

int exec_metrics_open(struct exec_metrics *mt, const char *path, int64_t keep_through_step,
                      struct sw_err *err)
{
    memset(mt, 0, sizeof(*mt));
    sw_strlcpy(mt->path, path, sizeof(mt->path));
    if (keep_through_step >= 0) {
        char *text = NULL;
        size_t len = 0;
        int rc = sw_read_file(path, (size_t)1 << 30, &text, &len, err);
        if (rc == 0) {
            struct sw_buf kept;
            sw_buf_init(&kept, len + 1);
            char *line = text;
            while (line && *line && rc == 0) {
                char *nl = strchr(line, '\n');
                size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
                int64_t s = line_step(line);
                if (s >= 0 && s <= keep_through_step && nl)
                    rc = sw_buf_append(&kept, line, ll, err);
                line = nl ? nl + 1 : NULL;
            }
            if (rc == 0)
                rc = sw_write_file_atomic(path, kept.data ? kept.data : "", kept.len, err);
            sw_buf_release(&kept);
            free(text);
            if (rc < 0)
                return rc;
        } else if (rc != SW_ENOENT) {
            return rc;
        }
    }
    mt->f = fopen(path, keep_through_step >= 0 ? "a" : "w");
    if (!mt->f)
        return sw_errf(err, SW_EIO, "cannot open '%s' for writing: %s", path, strerror(errno));
    return 0;
}

int exec_metrics_append(struct exec_metrics *mt, const struct exec_metrics_row *r,
                        struct sw_err *err)
{
    char loss[32], val[48] = "", lr[32], gn[32], tps[32], ms[32], mfu[32];
    json_num(loss, sizeof(loss), r->loss, 7);
    if (r->has_val) {
        char v[32];
        json_num(v, sizeof(v), r->val_loss, 7);
        snprintf(val, sizeof(val), ", \"val_loss\": %s", v);
    }
    json_num(lr, sizeof(lr), r->lr, 6);
    json_num(gn, sizeof(gn), r->grad_norm, 6);
    json_num(tps, sizeof(tps), r->tokens_per_s, 6);
    json_num(ms, sizeof(ms), r->ms_per_step, 6);
    json_num(mfu, sizeof(mfu), r->mfu, 4);
    char comm[48] = "", ls[80] = "";
    if (r->loss_scale > 0) {
        char v[32];
        json_num(v, sizeof(v), r->loss_scale, 17); /* exact: a power of two, or the plan's */
        snprintf(ls, sizeof(ls), ", \"loss_scale\": %s, \"skipped\": %s", v,
                 r->skipped ? "true" : "false");
    }
    if (r->has_comm) {
        char v[32];
        json_num(v, sizeof(v), r->comm_ms, 6);
        snprintf(comm, sizeof(comm), ", \"comm_ms\": %s", v);
    }
    int k = fprintf(mt->f,
                    "{\"step\": %" PRId64 ", \"loss\": %s%s, \"lr\": %s, \"grad_norm\": %s, "
                    "\"tokens_per_s\": %s, \"ms_per_step\": %s%s, \"mfu\": %s, "
                    "\"peak_rss_bytes\": %" PRIu64 "%s}\n",
                    r->step, loss, val, lr, gn, tps, ms, comm, mfu, r->peak_rss_bytes, ls);
    if (k < 0 || fflush(mt->f) != 0)
        return sw_errf(err, SW_EIO, "cannot write '%s': %s", mt->path, strerror(errno));
    return 0;
}

void exec_metrics_close(struct exec_metrics *mt)
{
    if (mt->f)
        fclose(mt->f);
    mt->f = NULL;
}

uint64_t exec_peak_rss_bytes(void)
{
    /* read(2) into a stack buffer: called every logged step, so no FILE (no allocation). */
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd >= 0) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            const char *p = strstr(buf, "VmHWM:");
            if (p) {
                char *end = NULL;
                unsigned long long kb = strtoull(p + 6, &end, 10);
                if (end != p + 6)
                    return (uint64_t)kb * 1024u;
            }
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0)
        return (uint64_t)ru.ru_maxrss * 1024u; /* Linux: kilobytes */
    return 0;
}

/* ---------------------------------------------------------------- report.yaml */

static void emit_ratio(struct sw_emit *e, const char *key, double measured, double predicted)
{
    if (isfinite(measured) && isfinite(predicted) && predicted > 0)
        sw_emit_num_prec(e, key, measured / predicted, 4);
    else
        sw_emit_null(e, key);
}

static void emit_num_or_null(struct sw_emit *e, const char *key, double x, int prec)
{
    if (isfinite(x))
        sw_emit_num_prec(e, key, x, prec);
    else
        sw_emit_null(e, key);
}

int exec_report_write(const char *path, const struct plan *p, const struct exec_report *r,
                      const struct estimate *est, const char *est_error, struct sw_err *err)
{
    struct sw_buf b;
    sw_buf_init(&b, (size_t)1 << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &b, SW_FMT_YAML);
    sw_emit_map_begin(&e, NULL);
    sw_emit_i64(&e, "scalewise_report", 1);
    sw_emit_str(&e, "plan", p->source_path[0] ? p->source_path : NULL);
    sw_emit_str(&e, "name", p->name[0] ? p->name : NULL);
    sw_emit_str(&e, "model", p->model.name);
    sw_emit_str(&e, "task", task_name(p->workload.task));
    sw_emit_str(&e, "device", device_name(p->strategy.device));
    sw_emit_str(&e, "backend", r->backend[0] ? r->backend : NULL);
    sw_emit_i64(&e, "threads", r->threads);
    sw_emit_i64(&e, "steps_done", r->steps_done);
    sw_emit_i64(&e, "final_step", r->final_step);
    sw_emit_bool(&e, "interrupted", r->interrupted);
    sw_emit_str(&e, "checkpoint", r->checkpoint[0] ? r->checkpoint : NULL);

    static const enum backend_mem cats[] = {BACKEND_MEM_WEIGHTS,     BACKEND_MEM_GRADIENTS,
                                            BACKEND_MEM_OPTIMIZER,   BACKEND_MEM_ACTIVATIONS,
                                            BACKEND_MEM_KV_CACHE,    BACKEND_MEM_WORKSPACE};
    sw_emit_map_begin(&e, "measured");
    sw_emit_map_begin(&e, "per_device_bytes");
    for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++)
        sw_emit_u64(&e, backend_mem_name(cats[i]), r->mem.peak_bytes[cats[i]]);
    sw_emit_u64(&e, "total", r->mem.peak_total_bytes);
    sw_emit_map_end(&e);
    sw_emit_u64(&e, "peak_rss_bytes", r->peak_rss_bytes);
    if (r->mem.device_used_bytes) /* a GPU: everything in use on it at the end of the run */
        sw_emit_u64(&e, "device_used_bytes", r->mem.device_used_bytes);
    emit_num_or_null(&e, "tokens_per_s", r->tokens_per_s, 6);
    emit_num_or_null(&e, "step_time_s", r->step_s, 6);
    emit_num_or_null(&e, "mfu", r->mfu, 4);
    emit_num_or_null(&e, "wall_s", r->wall_s, 5);
    emit_num_or_null(&e, "final_loss", r->final_loss, 6);
    emit_num_or_null(&e, "final_val_loss", r->final_val_loss, 6);
    if (r->attention_tuning[0]) { /* a GPU's tuned attention kernels, one line each */
        sw_emit_list_begin(&e, "attention_tuning");
        char lines[sizeof r->attention_tuning];
        sw_strlcpy(lines, r->attention_tuning, sizeof lines);
        for (char *l = lines, *end; *l; l = end + 1) {
            end = strchr(l, '\n');
            if (end)
                *end = '\0';
            sw_emit_str(&e, NULL, l);
            if (!end)
                break;
        }
        sw_emit_list_end(&e);
    }
    sw_emit_map_end(&e);
    if (r->world > 1) {
        sw_emit_map_begin(&e, "distributed");
        sw_emit_i64(&e, "rank", r->rank);
        sw_emit_i64(&e, "world", r->world);
        sw_emit_str(&e, "strategy", r->zero > 0 ? (r->zero == 1   ? "zero1"
                                                   : r->zero == 2 ? "zero2"
                                                                  : "zero3")
                                                : "ddp");
        emit_num_or_null(&e, "comm_s_per_step", r->comm_s_per_step, 5);
        emit_num_or_null(&e, "predicted_comm_s_per_step", r->predicted_comm_s_per_step, 5);
        sw_emit_str(&e, "link", r->link[0] ? r->link : NULL);
        sw_emit_map_end(&e);
    }
    if (r->loss_scale > 0) {
        sw_emit_map_begin(&e, "loss_scaling");
        sw_emit_str(&e, "mode", r->dynamic_loss_scale ? "dynamic" : "static");
        sw_emit_num(&e, "final_scale", r->loss_scale);
        sw_emit_i64(&e, "skipped_steps", r->skipped_steps);
        sw_emit_map_end(&e);
    }

    if (est && est->valid) {
        const struct mem_split *d = &est->dev;
        sw_emit_map_begin(&e, "predicted");
        sw_emit_map_begin(&e, "per_device_bytes");
        sw_emit_num_prec(&e, "weights", d->weights, 8);
        sw_emit_num_prec(&e, "gradients", d->gradients, 8);
        sw_emit_num_prec(&e, "optimizer", d->optimizer, 8);
        sw_emit_num_prec(&e, "activations", d->activations, 8);
        sw_emit_num_prec(&e, "kv_cache", d->kv_cache, 8);
        sw_emit_num_prec(&e, "workspace", d->workspace, 8);
        sw_emit_num_prec(&e, "overhead", d->overhead, 8);
        sw_emit_num_prec(&e, "total", d->total, 8);
        sw_emit_map_end(&e);
        emit_num_or_null(&e, "tokens_per_s", est->tokens_per_s, 6);
        emit_num_or_null(&e, "step_time_s", est->step_time_s, 6);
        emit_num_or_null(&e, "mfu", est->mfu, 4);
        emit_num_or_null(&e, "flops_per_token", est->flops_per_token, 6);
        sw_emit_map_end(&e);
        /* Measured ÷ predicted. The total compares like with like: the executor's counted
         * buffers against the estimate's total less its runtime overhead term. */
        sw_emit_map_begin(&e, "measured_over_predicted");
        emit_ratio(&e, "weights", (double)r->mem.peak_bytes[BACKEND_MEM_WEIGHTS], d->weights);
        emit_ratio(&e, "gradients", (double)r->mem.peak_bytes[BACKEND_MEM_GRADIENTS],
                   d->gradients);
        emit_ratio(&e, "optimizer", (double)r->mem.peak_bytes[BACKEND_MEM_OPTIMIZER],
                   d->optimizer);
        emit_ratio(&e, "activations", (double)r->mem.peak_bytes[BACKEND_MEM_ACTIVATIONS],
                   d->activations);
        emit_ratio(&e, "total_without_overhead", (double)r->mem.peak_total_bytes,
                   d->total - d->overhead);
        emit_ratio(&e, "tokens_per_s", r->tokens_per_s, est->tokens_per_s);
        emit_ratio(&e, "step_time_s", r->step_s, est->step_time_s);
        sw_emit_map_end(&e);
    } else {
        sw_emit_null(&e, "predicted");
        sw_emit_str(&e, "predicted_error", est_error ? est_error : "no estimate");
    }
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    int rc = sw_write_file_atomic(path, b.data ? b.data : "", b.len, err);
    sw_buf_release(&b);
    return rc;
}

/* ---------------------------------------------------------------- progress */

static const char *fmt_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || !isfinite(s)) {
        snprintf(buf, n, "?");
        return buf;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%lld:%02lld", t / 60, t % 60);
    return buf;
}

static const char *fmt_rate(double x, char *buf, size_t n)
{
    if (!isfinite(x))
        snprintf(buf, n, "?");
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.1fk", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
    return buf;
}

const char *exec_progress_format(const struct exec_progress *p, bool bar, int width, char *buf,
                                 size_t n)
{
    char val[64] = "", rate[16], eta[24], el[24];
    int k = 0;
    if (p->has_val)
        k = snprintf(val, sizeof(val), "  val %.4f", p->val_loss);
    if (p->loss_scale > 0 && k >= 0 && (size_t)k < sizeof(val))
        snprintf(val + k, sizeof(val) - (size_t)k, "  scale %g%s", p->loss_scale,
                 p->skipped ? " skipped" : "");
    fmt_rate(p->tokens_per_s, rate, sizeof(rate));
    fmt_duration(p->eta_s, eta, sizeof(eta));
    fmt_duration(p->elapsed_s, el, sizeof(el));
    char tail[224];
    snprintf(tail, sizeof(tail), "%" PRId64 "/%" PRId64 "  loss %.4f%s  lr %.2e  %s tok/s  %s %s",
             p->step, p->steps, p->loss, val, p->lr, rate, bar ? "ETA" : "elapsed",
             bar ? eta : el);
    if (!bar) {
        snprintf(buf, n, "step %s", tail);
        return buf;
    }
    int bw = width - (int)strlen(tail) - 3;
    if (bw > 40)
        bw = 40;
    if (bw < 5) {
        snprintf(buf, n, "%s", tail);
        return buf;
    }
    char bars[48];
    int filled = p->steps > 0 ? (int)((double)bw * (double)p->step / (double)p->steps) : 0;
    if (filled > bw)
        filled = bw;
    for (int i = 0; i < bw; i++)
        bars[i] = i < filled ? '#' : '.';
    bars[bw] = '\0';
    snprintf(buf, n, "[%s] %s", bars, tail);
    return buf;
}
