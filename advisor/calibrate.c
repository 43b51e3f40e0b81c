/* Calibration files (docs/calibrate.md): the measurement-independent half of `scalewise
 * calibrate`. It derives the [cal] efficiencies the speed model consumes from measured rates
 * (pure arithmetic, so the tests feed it synthetic figures), writes and reads the calibration
 * YAML, applies a loaded file to struct advisor_calib, and says when the file was measured on
 * another machine. Timing kernels is cli/cmd_calibrate.c's job: the advisor never runs them.
 *
 * Derivation rules (strategy reference 6.4: t = max(F / (peak·eta_f), bytes / (BW·eta_m))):
 *  - CPU, in the matmul dtype a default plan uses (bf16 where the CPU has native bf16, else
 *    fp32), with the probe's peak for that dtype (the peak the advisor divides by):
 *      eta_flops_prefill = forward GEMM rate at the largest measured tokens / peak
 *      eta_flops_train   = forward + backward GEMM rate at that size / peak
 *    The ratios may exceed 1 when the probe's FMA-loop peak ran low (a noisy VM): the product
 *    peak·eta then still equals the measured GEMM rate, which is what the speed model needs.
 *  - eta_mem = the executor's fp32 AdamW step over state larger than the last-level cache, in
 *    bytes/s counted as speed.c counts them (28 B/param: master and both moments read and
 *    written, the gradient read) / the probe's triad, the bandwidth the speed model assumes for
 *    a CPU. Again a ratio of two measurements, not capped.
 *  - eta_mem_decode = the executor's 1-token GEMM (decoding: every weight read once per token)
 *    in bytes of weights per second / the same bandwidth. Decode gets its own efficiency
 *    because the two differ several-fold where the 1-token GEMM is bound by the kernel rather
 *    than by memory (the bf16 one on the development VM: 0.12 of the triad, AdamW 0.4): one
 *    figure for both would make either the optimizer step or decode wrong. A file without it
 *    (written before it existed) decodes at eta_mem, as the speed model did then.
 *  - m_sat (6.4's eta_max·min(1, M/M_sat)): with f_i = rate(N_i) / rate(N_max) for the sizes
 *    below the largest, the points with f_i < 0.95 are in the falloff; M_sat is the least-
 *    squares slope through the origin of f = N/M_sat over them, M_sat = sum N_i^2 / sum N_i
 *    f_i, clamped to [N_min, N_max]; N_min when no point falls below 0.95. Applied as the
 *    speed model's CPU M_sat (advisor_calib.m_sat_tokens) in place of EST_M_SAT_CPU.
 *  - GPU: eta_flops_train = eta_flops_prefill = the plugin's large bf16 GEMM / the probe's bf16
 *    peak; eta_mem = device-to-device memcpy (read + write) / the probe's memory bandwidth;
 *    eta_mem_decode = the plugin's 1-token bf16 GEMM (weight bytes/s) / that bandwidth.
 *  - attention (CPU and GPU): the executor's flash attention, forward + backward, at one
 *    shape, in FLOP/s as speed.c counts attention (the full s x s score matrix: 12·b·s²·q for
 *    both), applied as advisor_calib.attn_flops_per_s: the speed model then times attention
 *    at that rate instead of at peak·eta_f, which on the built-in GPU executor is several
 *    times slower than its GEMMs. Absent in older files (then attention runs at eta_f).
 *  - GPU eta_flops_train, when the training GEMMs were timed (train_gemm: the executor's
 *    training path, forward + input and weight gradients, at tokens x 768 x 3072 as on the
 *    CPU): their rate / the bf16 peak, in place of the large GEMM's.
 *  - call_matmul_s, call_kernel_s (CPU and GPU): the time of one tiny backend call of the
 *    executor (a 1 x 64 x 64 matmul in the matmul dtype, a 64-element residual add), issued
 *    back to back and averaged: what a decode step pays per call beyond its reads. Measured,
 *    applied as they are; absent (0) in files written before them.
 * Applying a file keeps every other constant at its default; for a CPU it also keeps the
 * process baseline (memory.c reads runtime_overhead_bytes once a calibration is loaded). */
#include "advisor/advisor.h"

#include <string.h>

#include "advisor/advisor_int.h"

#define FALLOFF_RATIO 0.95
#define ETA_MAX 10.0 /* accepted on load: a ratio above this is a broken measurement */

void calib_init(struct calib_file *c)
{
    memset(c, 0, sizeof(*c));
    c->version = CALIB_FORMAT_VERSION;
    c->cpu.dtype = HW_DT_FP32;
}

/* ======================================================================== derivation */

double calib_fit_m_sat(const struct calib_gemm *g, int n)
{
    if (n < 1)
        return 0.0;
    double n_min = g[0].tokens, n_max = g[n - 1].tokens, r_max = g[n - 1].flops_per_s;
    if (r_max <= 0 || n < 2)
        return n_min;
    double sum_nn = 0, sum_nf = 0;
    for (int i = 0; i < n - 1; i++) {
        double f = g[i].flops_per_s / r_max;
        if (g[i].flops_per_s <= 0 || f >= FALLOFF_RATIO)
            continue;
        sum_nn += (double)g[i].tokens * g[i].tokens;
        sum_nf += (double)g[i].tokens * f;
    }
    if (sum_nf <= 0)
        return n_min;
    double m = sum_nn / sum_nf;
    return m < n_min ? n_min : (m > n_max ? n_max : m);
}

int calib_derive_cpu(struct calib_cpu *c, struct sw_err *err)
{
    bool bf16 = c->dtype == HW_DT_BF16;
    const struct calib_gemm *g = bf16 ? c->bf16 : c->fp32;
    int n = bf16 ? c->n_bf16 : c->n_fp32;
    double peak = bf16 ? c->peak_bf16_flops : c->peak_fp32_flops;
    const char *dt = hw_dtype_name(c->dtype);
    if (c->dtype != HW_DT_FP32 && !bf16)
        return sw_errf(err, SW_EINVAL, "cpu calibration dtype must be fp32 or bf16, got %s", dt);
    if (peak <= 0)
        return sw_errf(err, SW_EINVAL, "cannot derive eta_f: the %s peak is unknown", dt);
    if (n < 1 || g[n - 1].flops_per_s <= 0)
        return sw_errf(err, SW_EINVAL, "cannot derive eta_f: no %s GEMM rate measured", dt);
    if (c->train.flops_per_s <= 0)
        return sw_errf(err, SW_EINVAL, "cannot derive eta_f train: no training GEMM rate");
    if (c->triad_bytes_per_s <= 0 || c->optim_bytes_per_s <= 0)
        return sw_errf(err, SW_EINVAL,
                       "cannot derive eta_mem: the triad or the optimizer-step bandwidth is "
                       "unknown");
    c->eta_flops_prefill = g[n - 1].flops_per_s / peak;
    c->eta_flops_train = c->train.flops_per_s / peak;
    c->eta_mem = c->optim_bytes_per_s / c->triad_bytes_per_s;
    c->eta_mem_decode = c->decode_bytes_per_s > 0 ? c->decode_bytes_per_s / c->triad_bytes_per_s
                                                  : c->eta_mem;
    c->m_sat_tokens = calib_fit_m_sat(g, n);
    return 0;
}

int calib_derive_gpu(struct calib_gpu *g, struct sw_err *err)
{
    if (g->peak_bf16_flops <= 0 || g->gemm.flops_per_s <= 0)
        return sw_errf(err, SW_EINVAL,
                       "cannot derive the GPU eta_f: the bf16 peak or the GEMM rate is unknown");
    if (g->mem_bw_bytes_per_s <= 0 || g->d2d_bytes_per_s <= 0)
        return sw_errf(err, SW_EINVAL,
                       "cannot derive the GPU eta_mem: the memory bandwidth or the copy rate is "
                       "unknown");
    g->eta_flops_train = g->eta_flops_prefill = g->gemm.flops_per_s / g->peak_bf16_flops;
    if (g->train.flops_per_s > 0)
        g->eta_flops_train = g->train.flops_per_s / g->peak_bf16_flops;
    g->eta_mem = g->d2d_bytes_per_s / g->mem_bw_bytes_per_s;
    g->eta_mem_decode = g->decode_bytes_per_s > 0 ? g->decode_bytes_per_s / g->mem_bw_bytes_per_s
                                                  : g->eta_mem;
    return 0;
}

/* ======================================================================== apply */

bool calib_apply(const struct calib_file *c, const struct hardware *hw, struct advisor_calib *cal)
{
    bool cpu = hw_is_cpu_only(hw);
    if (cpu && c->cpu.present) {
        cal->eta_flops_train = c->cpu.eta_flops_train;
        cal->eta_flops_prefill = c->cpu.eta_flops_prefill;
        cal->eta_mem = c->cpu.eta_mem;
        cal->eta_mem_decode = c->cpu.eta_mem_decode > 0 ? c->cpu.eta_mem_decode : c->cpu.eta_mem;
        cal->call_matmul_s = c->cpu.call_matmul_s;
        cal->call_kernel_s = c->cpu.call_kernel_s;
        cal->attn_flops_per_s = c->cpu.attn.flops_per_s;
        if (c->cpu.m_sat_tokens > 0)
            cal->m_sat_tokens = c->cpu.m_sat_tokens;
        /* memory.c reads this once calibrated: keep the default CPU process baseline (3.7). */
        cal->runtime_overhead_bytes = EST_CPU_PROCESS_BYTES;
    } else if (!cpu && c->gpu.present) {
        cal->eta_flops_train = c->gpu.eta_flops_train;
        cal->eta_flops_prefill = c->gpu.eta_flops_prefill;
        cal->eta_mem = c->gpu.eta_mem;
        cal->eta_mem_decode = c->gpu.eta_mem_decode > 0 ? c->gpu.eta_mem_decode : c->gpu.eta_mem;
        cal->call_matmul_s = c->gpu.call_matmul_s;
        cal->call_kernel_s = c->gpu.call_kernel_s;
        cal->attn_flops_per_s = c->gpu.attn.flops_per_s;
    } else {
        return false;
    }
    cal->calibrated = true;
    return true;
}

bool calib_other_machine(const struct calib_file *c, const struct hardware *hw, char *why, size_t n)
{
    if (n)
        why[0] = '\0';
    if (!hw_is_cpu_only(hw)) {
        const char *name = hw->n_gpus > 0 ? hw->gpus[0].name : "";
        if (!c->gpu.present || !name[0] || !strcmp(c->gpu.name, name))
            return false;
        snprintf(why, n, "GPU '%s', not '%s'", c->gpu.name, name);
        return true;
    }
    const struct hw_cpu *p = &hw->cpu;
    bool model_differs = p->model[0] && c->cpu_model[0] && strcmp(p->model, c->cpu_model) != 0;
    bool id_differs = p->family && c->cpu_family &&
                      (p->family != c->cpu_family || p->model_id != c->cpu_model_id);
    if (!model_differs && !id_differs)
        return false;
    snprintf(why, n, "CPU '%s' family %d model %d, not '%s' family %d model %d", c->cpu_model,
             c->cpu_family, c->cpu_model_id, p->model, p->family, p->model_id);
    return true;
}

/* ======================================================================== YAML: emit */

static void emit_gemm(struct sw_emit *e, const char *key, const struct calib_gemm *g)
{
    sw_emit_map_begin(e, key);
    sw_emit_i64(e, "tokens", g->tokens);
    sw_emit_num(e, "flops_per_s", g->flops_per_s);
    sw_emit_num(e, "spread", g->spread);
    sw_emit_i64(e, "reps", g->reps);
    sw_emit_map_end(e);
}

static void emit_gemms(struct sw_emit *e, const char *key, const struct calib_gemm *g, int n)
{
    sw_emit_list_begin(e, key);
    for (int i = 0; i < n; i++)
        emit_gemm(e, NULL, &g[i]);
    sw_emit_list_end(e);
}

static void emit_calls(struct sw_emit *e, double matmul_s, double kernel_s)
{
    sw_emit_map_begin(e, "calls");
    sw_emit_num(e, "matmul_s", matmul_s);
    sw_emit_num(e, "kernel_s", kernel_s);
    sw_emit_map_end(e);
}

static void emit_cpu(struct sw_emit *e, const struct calib_cpu *c)
{
    sw_emit_map_begin(e, "cpu");
    sw_emit_str(e, "dtype", hw_dtype_name(c->dtype));
    sw_emit_i64(e, "gemm_c", c->gemm_c);
    sw_emit_i64(e, "gemm_oc", c->gemm_oc);
    sw_emit_num(e, "peak_fp32_flops", c->peak_fp32_flops);
    sw_emit_num(e, "peak_bf16_flops", c->peak_bf16_flops);
    sw_emit_num(e, "triad_bytes_per_s", c->triad_bytes_per_s);
    emit_gemms(e, "gemm_fp32", c->fp32, c->n_fp32);
    if (c->n_bf16 > 0)
        emit_gemms(e, "gemm_bf16", c->bf16, c->n_bf16);
    emit_gemm(e, "train_gemm", &c->train);
    sw_emit_map_begin(e, "optimizer_step");
    sw_emit_num(e, "state_bytes", c->optim_state_bytes);
    sw_emit_num(e, "bytes_per_s", c->optim_bytes_per_s);
    sw_emit_num(e, "spread", c->optim_spread);
    sw_emit_map_end(e);
    sw_emit_map_begin(e, "decode_gemm");
    sw_emit_num(e, "weight_bytes", c->decode_weight_bytes);
    sw_emit_num(e, "bytes_per_s", c->decode_bytes_per_s);
    sw_emit_num(e, "spread", c->decode_spread);
    sw_emit_map_end(e);
    emit_calls(e, c->call_matmul_s, c->call_kernel_s);
    if (c->attn.flops_per_s > 0)
        emit_gemm(e, "attention", &c->attn);
    sw_emit_num(e, "m_sat_tokens", c->m_sat_tokens);
    sw_emit_num(e, "eta_flops_train", c->eta_flops_train);
    sw_emit_num(e, "eta_flops_prefill", c->eta_flops_prefill);
    sw_emit_num(e, "eta_mem", c->eta_mem);
    sw_emit_num(e, "eta_mem_decode", c->eta_mem_decode);
    sw_emit_map_end(e);
}

static void emit_gpu(struct sw_emit *e, const struct calib_gpu *g)
{
    sw_emit_map_begin(e, "gpu");
    sw_emit_str(e, "name", g->name);
    sw_emit_num(e, "peak_bf16_flops", g->peak_bf16_flops);
    sw_emit_num(e, "mem_bw_bytes_per_s", g->mem_bw_bytes_per_s);
    emit_gemm(e, "gemm_bf16", &g->gemm);
    sw_emit_map_begin(e, "d2d_copy");
    sw_emit_num(e, "bytes", g->d2d_bytes);
    sw_emit_num(e, "bytes_per_s", g->d2d_bytes_per_s);
    sw_emit_num(e, "spread", g->d2d_spread);
    sw_emit_map_end(e);
    sw_emit_map_begin(e, "decode_gemm");
    sw_emit_num(e, "weight_bytes", g->decode_weight_bytes);
    sw_emit_num(e, "bytes_per_s", g->decode_bytes_per_s);
    sw_emit_num(e, "spread", g->decode_spread);
    sw_emit_map_end(e);
    emit_calls(e, g->call_matmul_s, g->call_kernel_s);
    if (g->attn.flops_per_s > 0)
        emit_gemm(e, "attention", &g->attn);
    if (g->train.flops_per_s > 0)
        emit_gemm(e, "train_gemm", &g->train);
    sw_emit_num(e, "eta_flops_train", g->eta_flops_train);
    sw_emit_num(e, "eta_flops_prefill", g->eta_flops_prefill);
    sw_emit_num(e, "eta_mem", g->eta_mem);
    sw_emit_num(e, "eta_mem_decode", g->eta_mem_decode);
    sw_emit_map_end(e);
}

void calib_emit(struct sw_emit *e, const char *key, const struct calib_file *c)
{
    sw_emit_map_begin(e, key);
    sw_emit_i64(e, "scalewise_calibration", c->version);
    sw_emit_map_begin(e, "machine");
    sw_emit_str(e, "host", c->host);
    sw_emit_str(e, "date", c->date);
    sw_emit_str(e, "cpu_model", c->cpu_model);
    sw_emit_str(e, "cpu_vendor", c->cpu_vendor);
    sw_emit_i64(e, "cpu_family", c->cpu_family);
    sw_emit_i64(e, "cpu_model_id", c->cpu_model_id);
    sw_emit_i64(e, "cores", c->cores);
    sw_emit_i64(e, "threads", c->threads);
    sw_emit_bool(e, "quick", c->quick);
    sw_emit_map_end(e);
    if (c->cpu.present)
        emit_cpu(e, &c->cpu);
    if (c->gpu.present)
        emit_gpu(e, &c->gpu);
    sw_emit_map_end(e);
}

int calib_save_file(const char *path, const struct calib_file *c, struct sw_err *err)
{
    static const char header[] =
        "# scalewise calibration: figures measured by `scalewise calibrate` on one machine\n"
        "# and the speed-model efficiencies derived from them (docs/calibrate.md).\n";
    struct sw_buf buf;
    sw_buf_init(&buf, 1u << 20);
    int rc = sw_buf_append(&buf, header, sizeof(header) - 1, err);
    if (rc == 0) {
        struct sw_emit e;
        sw_emit_init_buf(&e, &buf, SW_FMT_YAML);
        calib_emit(&e, NULL, c);
        sw_emit_finish(&e);
        rc = sw_write_file_atomic(path, buf.data, buf.len, err);
    }
    sw_buf_release(&buf);
    return rc;
}

/* ======================================================================== YAML: load */

static const char *const top_keys[] = {"scalewise_calibration", "machine", "cpu", "gpu", NULL};
static const char *const machine_keys[] = {
    "host",         "date",  "cpu_model", "cpu_vendor", "cpu_family",
    "cpu_model_id", "cores", "threads",   "quick",      NULL};
static const char *const cpu_keys[] = {"dtype",           "gemm_c",
                                       "gemm_oc",         "peak_fp32_flops",
                                       "peak_bf16_flops", "triad_bytes_per_s",
                                       "gemm_fp32",       "gemm_bf16",
                                       "train_gemm",      "optimizer_step",
                                       "decode_gemm",     "calls",
                                       "attention",       "m_sat_tokens",
                                       "eta_flops_train", "eta_flops_prefill",
                                       "eta_mem",         "eta_mem_decode",
                                       NULL};
static const char *const gpu_keys[] = {
    "name",     "peak_bf16_flops", "mem_bw_bytes_per_s", "gemm_bf16",      "d2d_copy",
    "decode_gemm", "calls", "attention", "train_gemm", "eta_flops_train", "eta_flops_prefill",
    "eta_mem", "eta_mem_decode", NULL};
static const char *const calls_keys[] = {"matmul_s", "kernel_s", NULL};
static const char *const gemm_keys[] = {"tokens", "flops_per_s", "spread", "reps", NULL};
static const char *const decode_keys[] = {"weight_bytes", "bytes_per_s", "spread", NULL};
static const char *const optim_keys[] = {"state_bytes", "bytes_per_s", "spread", NULL};
static const char *const d2d_keys[] = {"bytes", "bytes_per_s", "spread", NULL};
static const char *const dtype_words[] = {"fp32", "bf16", NULL};

/* A rate or size: >= 0, finite. */
static int opt_rate(struct ydoc *d, yaml_node_t *m, const char *key, const char *sec, double *out,
                    struct sw_err *err)
{
    return ydoc_opt_double(d, m, key, 0.0, 1e30, sec, out, err);
}

/* A derived efficiency the speed model consumes: required, in (0, ETA_MAX]. */
static int req_eta(struct ydoc *d, yaml_node_t *m, const char *key, const char *sec, double *out,
                   struct sw_err *err)
{
    if (!ydoc_require(d, m, key, sec, err))
        return SW_EINVAL;
    return ydoc_opt_double(d, m, key, 1e-6, ETA_MAX, sec, out, err);
}

static int load_gemm(struct ydoc *d, yaml_node_t *n, const char *sec, struct calib_gemm *g,
                     struct sw_err *err)
{
    int rc;
    if ((rc = ydoc_expect_map(d, n, sec, err)) < 0 ||
        (rc = ydoc_check_keys(d, n, gemm_keys, sec, err)) < 0 ||
        (rc = ydoc_opt_i32(d, n, "tokens", 1, 1 << 24, sec, &g->tokens, err)) < 0 ||
        (rc = opt_rate(d, n, "flops_per_s", sec, &g->flops_per_s, err)) < 0 ||
        (rc = ydoc_opt_double(d, n, "spread", 0.0, 1e6, sec, &g->spread, err)) < 0 ||
        (rc = ydoc_opt_i32(d, n, "reps", 0, 1 << 20, sec, &g->reps, err)) < 0)
        return rc;
    return 0;
}

/* load_gemm of map's `key` where present. */
static int opt_gemm(struct ydoc *d, yaml_node_t *map, const char *key, const char *what,
                    struct calib_gemm *g, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    return n ? load_gemm(d, n, what, g, err) : 0;
}

static int load_gemms(struct ydoc *d, yaml_node_t *map, const char *key, const char *what,
                      struct calib_gemm *g, int *n, struct sw_err *err)
{
    yaml_node_t *seq = ydoc_get(d, map, key);
    if (!seq)
        return 0;
    int rc = ydoc_expect_seq(d, seq, what, err);
    if (rc < 0)
        return rc;
    int count = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(&d->doc, *it);
        if (count >= CALIB_MAX_SHAPES)
            return ydoc_err(d, item, SW_ERANGE, err, "more than %d shapes in '%s'",
                            CALIB_MAX_SHAPES, what);
        if ((rc = load_gemm(d, item, what, &g[count], err)) < 0)
            return rc;
        if (count > 0 && g[count].tokens <= g[count - 1].tokens)
            return ydoc_err(d, item, SW_EINVAL, err,
                            "'%s' must list ascending tokens (%d after %d)", what, g[count].tokens,
                            g[count - 1].tokens);
        count++;
    }
    *n = count;
    return 0;
}

static int load_machine(struct ydoc *d, yaml_node_t *m, struct calib_file *c, struct sw_err *err)
{
    const char *s = "machine";
    int rc;
    if ((rc = ydoc_expect_map(d, m, "section 'machine'", err)) < 0 ||
        (rc = ydoc_check_keys(d, m, machine_keys, s, err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "host", s, c->host, sizeof(c->host), err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "date", s, c->date, sizeof(c->date), err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "cpu_model", s, c->cpu_model, sizeof(c->cpu_model), err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "cpu_vendor", s, c->cpu_vendor, sizeof(c->cpu_vendor), err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "cpu_family", 0, 1 << 16, s, &c->cpu_family, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "cpu_model_id", 0, 1 << 16, s, &c->cpu_model_id, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "cores", 0, 1 << 20, s, &c->cores, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "threads", 0, 1 << 20, s, &c->threads, err)) < 0 ||
        (rc = ydoc_opt_bool(d, m, "quick", s, &c->quick, err)) < 0)
        return rc;
    return 0;
}

/* An optional measurement section at n (path its name in messages): the size it was measured
 * at (size_key), the rate and the spread, with only `keys` allowed. */
static int load_rate_section(struct ydoc *d, yaml_node_t *n, const char *path,
                             const char *const *keys, const char *size_key, double *size,
                             double *rate, double *spread, struct sw_err *err)
{
    int rc;
    if ((rc = ydoc_expect_map(d, n, path, err)) < 0 ||
        (rc = ydoc_check_keys(d, n, keys, path, err)) < 0 ||
        (rc = opt_rate(d, n, size_key, path, size, err)) < 0 ||
        (rc = opt_rate(d, n, "bytes_per_s", path, rate, err)) < 0 ||
        (rc = ydoc_opt_double(d, n, "spread", 0.0, 1e6, path, spread, err)) < 0)
        return rc;
    return 0;
}

/* The per-call times (`calls`, optional: 0 when absent), in [0, 1] s. */
static int load_calls(struct ydoc *d, yaml_node_t *m, const char *what, double *matmul_s,
                      double *kernel_s, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, m, "calls");
    int rc;
    *matmul_s = *kernel_s = 0.0;
    if (!n)
        return 0;
    if ((rc = ydoc_expect_map(d, n, what, err)) < 0 ||
        (rc = ydoc_check_keys(d, n, calls_keys, what, err)) < 0 ||
        (rc = ydoc_opt_double(d, n, "matmul_s", 0.0, 1.0, what, matmul_s, err)) < 0 ||
        (rc = ydoc_opt_double(d, n, "kernel_s", 0.0, 1.0, what, kernel_s, err)) < 0)
        return rc;
    return 0;
}

/* The three efficiencies every device section carries, and decode's (optional: a file written
 * before it existed decodes at eta_mem). */
static int load_etas(struct ydoc *d, yaml_node_t *m, const char *s, double *train,
                     double *prefill, double *mem, double *mem_decode, struct sw_err *err)
{
    int rc;
    if ((rc = req_eta(d, m, "eta_flops_train", s, train, err)) < 0 ||
        (rc = req_eta(d, m, "eta_flops_prefill", s, prefill, err)) < 0 ||
        (rc = req_eta(d, m, "eta_mem", s, mem, err)) < 0)
        return rc;
    *mem_decode = *mem;
    if (ydoc_get(d, m, "eta_mem_decode") &&
        (rc = req_eta(d, m, "eta_mem_decode", s, mem_decode, err)) < 0)
        return rc;
    return 0;
}

static int load_cpu(struct ydoc *d, yaml_node_t *m, struct calib_cpu *c, struct sw_err *err)
{
    const char *s = "cpu";
    int rc;
    if ((rc = ydoc_expect_map(d, m, "section 'cpu'", err)) < 0 ||
        (rc = ydoc_check_keys(d, m, cpu_keys, s, err)) < 0)
        return rc;
    yaml_node_t *dt = ydoc_require(d, m, "dtype", s, err);
    int w = 0;
    if (!dt)
        return SW_EINVAL;
    if ((rc = ydoc_word(d, dt, dtype_words, "cpu.dtype", &w, err)) < 0)
        return rc;
    c->dtype = w == 1 ? HW_DT_BF16 : HW_DT_FP32;
    yaml_node_t *n;
    if ((rc = ydoc_opt_i32(d, m, "gemm_c", 0, 1 << 20, s, &c->gemm_c, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "gemm_oc", 0, 1 << 20, s, &c->gemm_oc, err)) < 0 ||
        (rc = opt_rate(d, m, "peak_fp32_flops", s, &c->peak_fp32_flops, err)) < 0 ||
        (rc = opt_rate(d, m, "peak_bf16_flops", s, &c->peak_bf16_flops, err)) < 0 ||
        (rc = opt_rate(d, m, "triad_bytes_per_s", s, &c->triad_bytes_per_s, err)) < 0 ||
        (rc = load_gemms(d, m, "gemm_fp32", "cpu.gemm_fp32", c->fp32, &c->n_fp32, err)) < 0 ||
        (rc = load_gemms(d, m, "gemm_bf16", "cpu.gemm_bf16", c->bf16, &c->n_bf16, err)) < 0 ||
        (rc = opt_rate(d, m, "m_sat_tokens", s, &c->m_sat_tokens, err)) < 0)
        return rc;
    if ((rc = opt_gemm(d, m, "train_gemm", "cpu.train_gemm", &c->train, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, m, "optimizer_step")) &&
        (rc = load_rate_section(d, n, "cpu.optimizer_step", optim_keys, "state_bytes",
                                &c->optim_state_bytes, &c->optim_bytes_per_s, &c->optim_spread,
                                err)) < 0)
        return rc;
    if ((n = ydoc_get(d, m, "decode_gemm")) &&
        (rc = load_rate_section(d, n, "cpu.decode_gemm", decode_keys, "weight_bytes",
                                &c->decode_weight_bytes, &c->decode_bytes_per_s, &c->decode_spread,
                                err)) < 0)
        return rc;
    if ((rc = load_calls(d, m, "cpu.calls", &c->call_matmul_s, &c->call_kernel_s, err)) < 0)
        return rc;
    if ((rc = opt_gemm(d, m, "attention", "cpu.attention", &c->attn, err)) < 0)
        return rc;
    if ((rc = load_etas(d, m, s, &c->eta_flops_train, &c->eta_flops_prefill, &c->eta_mem,
                        &c->eta_mem_decode, err)) < 0)
        return rc;
    c->present = true;
    return 0;
}

static int load_gpu(struct ydoc *d, yaml_node_t *m, struct calib_gpu *g, struct sw_err *err)
{
    const char *s = "gpu";
    int rc;
    yaml_node_t *n;
    if ((rc = ydoc_expect_map(d, m, "section 'gpu'", err)) < 0 ||
        (rc = ydoc_check_keys(d, m, gpu_keys, s, err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "name", s, g->name, sizeof(g->name), err)) < 0 ||
        (rc = opt_rate(d, m, "peak_bf16_flops", s, &g->peak_bf16_flops, err)) < 0 ||
        (rc = opt_rate(d, m, "mem_bw_bytes_per_s", s, &g->mem_bw_bytes_per_s, err)) < 0)
        return rc;
    if ((rc = opt_gemm(d, m, "gemm_bf16", "gpu.gemm_bf16", &g->gemm, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, m, "d2d_copy")) &&
        (rc = load_rate_section(d, n, "gpu.d2d_copy", d2d_keys, "bytes", &g->d2d_bytes,
                                &g->d2d_bytes_per_s, &g->d2d_spread, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, m, "decode_gemm")) &&
        (rc = load_rate_section(d, n, "gpu.decode_gemm", decode_keys, "weight_bytes",
                                &g->decode_weight_bytes, &g->decode_bytes_per_s, &g->decode_spread,
                                err)) < 0)
        return rc;
    if ((rc = load_calls(d, m, "gpu.calls", &g->call_matmul_s, &g->call_kernel_s, err)) < 0)
        return rc;
    if ((rc = opt_gemm(d, m, "attention", "gpu.attention", &g->attn, err)) < 0)
        return rc;
    if ((rc = opt_gemm(d, m, "train_gemm", "gpu.train_gemm", &g->train, err)) < 0)
        return rc;
    if ((rc = load_etas(d, m, s, &g->eta_flops_train, &g->eta_flops_prefill, &g->eta_mem,
                        &g->eta_mem_decode, err)) < 0)
        return rc;
    g->present = true;
    return 0;
}

static int load_doc(struct ydoc *d, struct calib_file *c, struct sw_err *err)
{
    yaml_node_t *root = ydoc_root(d);
    int rc = ydoc_expect_map(d, root, "calibration file", err);
    if (rc < 0)
        return rc;
    if ((rc = ydoc_check_keys(d, root, top_keys, "calibration", err)) < 0)
        return rc;
    yaml_node_t *ver = ydoc_require(d, root, "scalewise_calibration", "", err);
    if (!ver)
        return SW_EINVAL;
    int64_t v = 0;
    if ((rc = ydoc_int(d, ver, 0, INT32_MAX, "scalewise_calibration", &v, err)) < 0)
        return rc;
    if (v != CALIB_FORMAT_VERSION)
        return ydoc_err(d, ver, SW_EINVAL, err,
                        "unsupported calibration format version %lld; this build reads version %d",
                        (long long)v, CALIB_FORMAT_VERSION);
    c->version = (int)v;
    yaml_node_t *n = ydoc_require(d, root, "machine", "", err);
    if (!n)
        return SW_EINVAL;
    if ((rc = load_machine(d, n, c, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "cpu")) && (rc = load_cpu(d, n, &c->cpu, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "gpu")) && (rc = load_gpu(d, n, &c->gpu, err)) < 0)
        return rc;
    if (!c->cpu.present && !c->gpu.present)
        return ydoc_err(d, root, SW_EINVAL, err,
                        "no 'cpu' or 'gpu' section: nothing to calibrate with");
    return 0;
}

int calib_load_string(const char *yaml, size_t len, const char *name_for_errors,
                      struct calib_file *c, struct sw_err *err)
{
    struct ydoc d;
    int rc = ydoc_load(&d, yaml, len, name_for_errors, err);
    if (rc < 0)
        return rc;
    /* A scratch struct, so a failure leaves the caller's untouched. */
    struct calib_file *tmp = sw_xmalloc(sizeof(*tmp));
    calib_init(tmp);
    rc = load_doc(&d, tmp, err);
    if (rc == 0)
        *c = *tmp;
    free(tmp);
    ydoc_release(&d);
    return rc;
}

int calib_load_file(const char *path, struct calib_file *c, struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(path, 1u << 20, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = calib_load_string(text, len, path, c, err);
    free(text);
    return rc;
}
