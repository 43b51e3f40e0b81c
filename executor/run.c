/* `scalewise run` for training plans: from a loaded plan to a finished (or cleanly stopped)
 * run on the CPU. Implements the refusals of what the CPU executor cannot do (checked before
 * anything is allocated), the OpenMP thread count, data preparation (a text file is tokenized
 * into <out_dir>/data once and reused while its meta.yaml records the same source hash and
 * settings; a directory of shards is used as is), building the model and optimizer from the
 * plan, resuming (a scalewise checkpoint, a run directory's latest.txt, or Hugging Face
 * weights), the step loop with evaluation, metrics, checkpoints and the stop flag, and the
 * final report. The loop itself is train.c, the files are checkpoint.c and metrics.c; the CLI
 * (cli/cmd_run.c) installs the signal handlers and draws the progress. */
#include "executor/executor.h"

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "advisor/advisor_int.h"
#include "executor/comm.h"

void exec_run_opts_init(struct exec_run_opts *o)
{
    memset(o, 0, sizeof(*o));
}

/* ---------------------------------------------------------------- refusals */

static void model_opts_from_plan(const struct plan *p, struct exec_model_opts *mo)
{
    exec_model_opts_init(mo);
    mo->precision = p->strategy.precision;
    mo->recompute = p->strategy.recompute;
    mo->attention = p->strategy.attention;
    mo->lora_rank = p->strategy.lora_rank;
    mo->batch = p->strategy.micro_batch;
    mo->seq = p->workload.seq;
    mo->training = true;
}

int exec_run_check(const struct plan *p, struct sw_err *err)
{
    const struct strategy *s = &p->strategy;
    if (p->workload.task != TASK_TRAIN)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "this is an inference plan; the training executor runs task: train");
    if (s->device == DEVICE_CUDA) {
        /* The GPU and the plugin first, so a machine without either says so. TODO: a parent
         * that forks local workers (--nproc) must not initialise CUDA here
         * (hardware-and-distributed.md 1.4): probe in the worker. */
        struct sw_err cerr;
        sw_err_init(&cerr);
        if (!backend_cuda_load(&cerr))
            return sw_errf(err, SW_EUNSUPPORTED,
                           "strategy.device is cuda, but the CUDA backend is unavailable: %s; "
                           "set strategy.device: cpu to run this plan on the CPU",
                           cerr.msg);
    }
    if (s->tp > 1)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "tensor parallelism (tp %d) splits layers over several devices; the "
                       "executor does not split layers: use tp 1", s->tp);
    if (s->pp > 1)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "pipeline parallelism (pp %d) splits layers over several devices; the "
                       "executor does not split layers: use pp 1", s->pp);
    if (s->zero < 0 || s->zero > 3)
        return sw_errf(err, SW_EINVAL, "zero must be 0, 1, 2 or 3, got %d", s->zero);
    if (s->zero > 0 && s->dp < 2)
        return sw_errf(err, SW_EINVAL,
                       "zero %d shards over data-parallel processes and needs dp >= 2 (this "
                       "plan has dp %d)", s->zero, s->dp);
    if (s->zero > 0 && s->optimizer == OPT_ADAFACTOR)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "ZeRO does not shard adafactor on the CPU executor: its factored state is "
                       "per tensor and under 1%% of the weights; use zero 0 (dp alone) or "
                       "another optimizer");
    if (s->zero == 3 && s->lora_rank > 0)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "zero 3 with LoRA would shard only the small adapters while every rank "
                       "keeps the frozen base; use zero 1 or 2 with LoRA");
    if (s->offload_optimizer || s->offload_params)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "offload moves state to host memory, where the CPU executor keeps "
                       "everything already; set offload_optimizer and offload_params to false");
    if (s->precision != PREC_FP32 && s->precision != PREC_BF16_MIXED &&
        s->precision != PREC_FP16_MIXED)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "precision '%s' is not supported by the executor; use fp32, bf16-mixed "
                       "or fp16-mixed", precision_name(s->precision));
    if (s->lora_rank > 0 && (s->weights == WFMT_INT8 || s->weights == WFMT_INT4))
        return sw_errf(err, SW_EUNSUPPORTED,
                       "a quantised (%s) LoRA base is not supported for training by the CPU "
                       "executor; use weights: fp32 or bf16", wformat_name(s->weights));
    if (s->micro_batch < 1 || s->grad_accum < 1)
        return sw_errf(err, SW_EINVAL, "micro_batch and grad_accum must be at least 1");
    struct exec_model_opts mo;
    model_opts_from_plan(p, &mo);
    if (s->lora_rank > 0 && p->train.lora_targets[0]) {
        int rc = exec_lora_targets_parse(p->train.lora_targets, &mo.lora_targets, err);
        if (rc < 0)
            return rc;
    }
    struct exec_mem mem;
    return exec_model_plan_bytes(&p->model, &mo, backend_cpu(), &mem, err);
}

/* ---------------------------------------------------------------- files */

static int mkdir_p(const char *path, struct sw_err *err)
{
    char buf[PLAN_PATH_MAX];
    if (sw_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return sw_errf(err, SW_ERANGE, "path too long: '%s'", path);
    for (char *q = buf + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(buf, 0777) < 0 && errno != EEXIST)
            return sw_errf(err, SW_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
        *q = '/';
    }
    if (mkdir(buf, 0777) < 0 && errno != EEXIST)
        return sw_errf(err, SW_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
    return 0;
}

static int join(char *out, size_t n, const char *dir, const char *name, struct sw_err *err)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        return sw_errf(err, SW_ERANGE, "path too long: '%s/%s'", dir, name);
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void note(const struct exec_run_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(const struct exec_run_opts *o, const char *fmt, ...)
{
    if (!o->on_note)
        return;
    char line[PLAN_PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    o->on_note(o->ctx, line);
}

/* True when dir/meta.yaml records this source hash, tokenizer, split and sequence length. */
static bool prepared_matches(const char *meta_path, const char *hex, const char *tokenizer,
                             double val_fraction, int64_t seq_len)
{
    char *text = NULL;
    size_t len = 0;
    struct sw_err e;
    sw_err_init(&e);
    if (sw_read_file(meta_path, (size_t)1 << 20, &text, &len, &e) < 0)
        return false;
    struct ydoc d;
    bool ok = false;
    if (ydoc_load(&d, text, len, meta_path, &e) == 0) {
        yaml_node_t *root = ydoc_root(&d);
        yaml_node_t *src = root ? ydoc_get(&d, root, "source") : NULL;
        char h[40] = "", tok[16] = "";
        double vf = -1;
        int64_t sl = -1;
        ok = root && src && ydoc_opt_str(&d, src, "fnv1a64", "source", h, sizeof(h), &e) == 0 &&
             ydoc_opt_str(&d, root, "tokenizer", "data", tok, sizeof(tok), &e) == 0 &&
             ydoc_opt_double(&d, root, "val_fraction", 0, 1, "data", &vf, &e) == 0 &&
             ydoc_opt_int(&d, root, "seq_len", 0, INT64_MAX, "data", &sl, &e) == 0 &&
             strcmp(h, hex) == 0 && strcmp(tok, tokenizer) == 0 &&
             fabs(vf - val_fraction) < 1e-6 && sl == seq_len;
        ydoc_release(&d);
    }
    free(text);
    return ok;
}

/* The train and val shard paths of the plan's data, preparing a text file when needed. */
static int resolve_data(const struct plan *p, const char *out_dir, const struct exec_run_opts *o,
                        char *train_path, char *val_path, size_t n, struct sw_err *err)
{
    const struct plan_data *pd = &p->data;
    if (!pd->path[0])
        return sw_errf(err, SW_EINVAL, "the plan has no data.path: name a text file or a "
                                       "directory with train.bin and val.bin");
    if (is_dir(pd->path)) {
        int rc = join(train_path, n, pd->path, "train.bin", err);
        if (rc == 0)
            rc = join(val_path, n, pd->path, "val.bin", err);
        if (rc == 0 && !exists(train_path))
            return sw_errf(err, SW_ENOENT, "data directory '%s' has no train.bin (prepare one "
                                           "with scalewise data prepare)", pd->path);
        return rc;
    }
    if (!exists(pd->path))
        return sw_errf(err, SW_ENOENT, "data.path '%s' does not exist", pd->path);
    /* A text file: hash it and reuse <out_dir>/data when it was prepared from the same bytes. */
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(pd->path, DATA_MAX_INPUT_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    char hex[40];
    snprintf(hex, sizeof(hex), "0x%016" PRIx64, data_fnv1a64(DATA_FNV1A64_INIT, text, len));
    free(text);
    char dir[PLAN_PATH_MAX], meta[PLAN_PATH_MAX];
    const char *tokname = pd->tokenizer[0] ? pd->tokenizer : "byte";
    if ((rc = join(dir, sizeof(dir), out_dir, "data", err)) < 0 ||
        (rc = join(meta, sizeof(meta), dir, "meta.yaml", err)) < 0 ||
        (rc = join(train_path, n, dir, "train.bin", err)) < 0 ||
        (rc = join(val_path, n, dir, "val.bin", err)) < 0)
        return rc;
    if (prepared_matches(meta, hex, tokname, pd->val_fraction, p->workload.seq) &&
        exists(train_path)) {
        note(o, "data: using %s (prepared from %s)", dir, pd->path);
        return 0;
    }
    struct data_prepare_opts dp;
    data_prepare_opts_init(&dp);
    dp.input_path = pd->path;
    dp.out_dir = dir;
    if ((rc = tok_kind_parse(tokname, &dp.kind, err)) < 0)
        return rc;
    dp.vocab_path = pd->vocab_path[0] ? pd->vocab_path : NULL;
    dp.merges_path = pd->merges_path[0] ? pd->merges_path : NULL;
    dp.val_fraction = pd->val_fraction;
    dp.seq_len = p->workload.seq;
    struct data_prepare_result r;
    if ((rc = data_prepare(&dp, &r, err)) < 0)
        return rc;
    note(o, "data: prepared %s into %s (%s tokenizer): %" PRIu64 " train, %" PRIu64
            " val tokens", pd->path, dir, tokname, r.n_train_tokens, r.n_val_tokens);
    return 0;
}

/* A checkpoint path from --resume: a file, or a run directory's latest.txt. */
static int resolve_resume(const char *arg, char *out, size_t n, struct sw_err *err)
{
    if (!is_dir(arg)) {
        if (!exists(arg))
            return sw_errf(err, SW_ENOENT, "checkpoint '%s' does not exist", arg);
        sw_strlcpy(out, arg, n);
        return 0;
    }
    char lp[PLAN_PATH_MAX];
    int rc = join(lp, sizeof(lp), arg, "latest.txt", err);
    if (rc < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    if (sw_read_file(lp, 4096, &text, &len, err) < 0)
        return sw_errf(err, SW_ENOENT, "'%s' is a directory without latest.txt: name a "
                                       "checkpoint file", arg);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    rc = join(out, n, arg, text, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- the run */

struct run_state {
    const struct plan *p;
    const struct exec_run_opts *o;
    struct comm *comm; /* NULL: one process */
    int rank, world, zero;
    const struct backend *be; /* the plan's device (backend_for_device) */
    bool profiled;            /* be is backend_profiled()'s wrapper (SCALEWISE_PROFILE=1) */
    struct exec_model model;
    struct exec_optimizer opt;
    struct exec_trainer tr;
    struct shard train, val;
    struct exec_metrics metrics;
    struct exec_ckpt_meta meta;
    char out_dir[PLAN_PATH_MAX];
    char ckpt_prev[2][PLAN_PATH_MAX];  /* the two newest checkpoints of this process */
    char shard_prev[2][PLAN_PATH_MAX]; /* ZeRO: the two newest optimizer shards of this rank */
};

/* The optimizer shard file of a checkpoint: "<dir>/ckpt_<step>.rank<R>.safetensors". */
static int shard_path(char *out, size_t n, const char *ckpt, int rank, struct sw_err *err)
{
    const char *ext = ".safetensors";
    size_t len = strlen(ckpt), el = strlen(ext);
    if (len >= el && strcmp(ckpt + len - el, ext) == 0)
        len -= el;
    if ((size_t)snprintf(out, n, "%.*s.rank%d%s", (int)len, ckpt, rank, ext) >= n)
        return sw_errf(err, SW_ERANGE, "path too long: '%s'", ckpt);
    return 0;
}

/* Keep the two newest of a series of files: drop the oldest when `path` is new. */
static void rotate(char prev[2][PLAN_PATH_MAX], const char *path)
{
    if (prev[0][0] && strcmp(prev[0], path) != 0)
        (void)unlink(prev[0]);
    sw_strlcpy(prev[0], prev[1], PLAN_PATH_MAX);
    sw_strlcpy(prev[1], path, PLAN_PATH_MAX);
}

/* Save ckpt_<step>.safetensors (rank 0; consolidated from every rank's optimizer shard under
 * ZeRO), each rank's optimizer shard beside it under ZeRO, point latest.txt at the checkpoint,
 * and delete the files before the previous ones (two are kept, so a bad latest still has a
 * fallback). Collective in a data-parallel run. */
static int save_checkpoint(struct run_state *s, struct exec_run_result *r, struct sw_err *err)
{
    char name[64], path[PLAN_PATH_MAX], latest[PLAN_PATH_MAX];
    snprintf(name, sizeof(name), "ckpt_%" PRId64 ".safetensors", s->tr.step);
    int rc = join(path, sizeof(path), s->out_dir, name, err);
    if (rc == 0)
        rc = join(latest, sizeof(latest), s->out_dir, "latest.txt", err);
    if (rc < 0)
        return rc;
    if (strcmp(path, s->ckpt_prev[1]) == 0)
        return 0; /* this step is saved already (every rank decides alike) */
    s->meta.step = s->tr.step;
    s->meta.data_offset = s->tr.train.offset;
    s->meta.loss_scale = s->tr.loss_scale;
    s->meta.loss_scale_good = s->tr.loss_scale_good;
    s->meta.skipped_steps = s->tr.skipped_steps;
    if ((rc = exec_checkpoint_save_dp(path, &s->model, &s->opt, &s->meta, s->comm, err)) < 0)
        return rc;
    if (s->zero > 0) {
        char sp[PLAN_PATH_MAX];
        if ((rc = shard_path(sp, sizeof(sp), path, s->rank, err)) < 0 ||
            (rc = exec_checkpoint_save_shard(sp, &s->opt, &s->meta, s->rank, s->world, err)) < 0)
            return rc;
        rotate(s->shard_prev, sp);
    }
    if (s->rank == 0) {
        char line[80];
        int k = snprintf(line, sizeof(line), "%s\n", name);
        if ((rc = sw_write_file_atomic(latest, line, (size_t)k, err)) < 0)
            return rc;
        rotate(s->ckpt_prev, path);
    } else {
        sw_strlcpy(s->ckpt_prev[1], path, sizeof(s->ckpt_prev[1]));
    }
    sw_strlcpy(r->checkpoint, path, sizeof(r->checkpoint));
    return 0;
}

static void run_release(struct run_state *s)
{
    exec_metrics_close(&s->metrics);
    exec_trainer_release(&s->tr);
    exec_optimizer_release(&s->opt);
    exec_model_release(&s->model);
    shard_release(&s->train);
    shard_release(&s->val);
}

/* Peak FLOP/s of the threads this run uses (at most the physical cores). With the advisor's
 * whole-CPU peak for the plan's matmul dtype (est_peak > 0: bf16 where the CPU has native bf16,
 * from the FMA loop where the probe timed one), its share for those cores, so that the measured
 * MFU has the predicted one's denominator (a bf16-mixed run against the fp32 peak read above
 * 100%); else the per-core fp32 peak times the cores used, else the whole CPU's fp32 peak; NaN
 * when unknown. */
static double cpu_peak_flops(const struct hardware *hw, int threads, double est_peak)
{
    const struct hw_cpu *c = &hw->cpu;
    int cores = c->sockets * c->cores_per_socket;
    int used = threads;
    if (cores > 0 && used > cores)
        used = cores;
    if (used < 1)
        used = 1;
    if (est_peak > 0 && cores > 0)
        return est_peak * used / cores;
    if (c->peak_fp32_flops_per_core > 0)
        return c->peak_fp32_flops_per_core * used;
    return c->peak_fp32_flops > 0 ? c->peak_fp32_flops : NAN;
}

/* The data's shard paths: rank 0 resolves (and prepares) first and tells the others how it
 * went, so two ranks never tokenize into the same directory at once. Collective. */
static int resolve_data_dp(struct run_state *s, char *train_path, char *val_path, size_t n,
                           struct sw_err *err)
{
    const struct exec_run_opts *o = s->o;
    if (!s->comm)
        return resolve_data(s->p, s->out_dir, o, train_path, val_path, n, err);
    int32_t status = 0;
    int rc = 0;
    if (s->rank == 0)
        status = rc = resolve_data(s->p, s->out_dir, o, train_path, val_path, n, err);
    int brc = s->comm->broadcast(s->comm, &status, sizeof(status), 0, s->rank == 0 ? NULL : err);
    if (s->rank == 0)
        return rc < 0 ? rc : brc;
    if (brc < 0)
        return brc;
    if (status < 0)
        return sw_errf(err, SW_EINVAL, "rank 0 could not prepare the data (see its message)");
    struct exec_run_opts quiet = *o;
    quiet.on_note = NULL;
    return resolve_data(s->p, s->out_dir, &quiet, train_path, val_path, n, err);
}

/* Resume from `path`: weights (and the step) from the checkpoint; the optimizer state from
 * this rank's shard file when it matches (same world, shard and step), else from the
 * consolidated state of the checkpoint itself (any number of ranks saved it). */
static int resume_from(struct run_state *s, const char *path, struct exec_run_result *r,
                       struct sw_err *err)
{
    const struct exec_run_opts *o = s->o;
    struct exec_ckpt_meta got;
    enum exec_ckpt_kind kind;
    int rc;
    bool from_shard = false;
    if (s->zero > 0) {
        char sp[PLAN_PATH_MAX];
        struct sw_err e2;
        sw_err_init(&e2);
        if ((rc = exec_checkpoint_load(path, &s->model, NULL, &s->meta, &got, &kind, err)) < 0)
            return rc;
        struct exec_ckpt_meta want = s->meta;
        want.step = got.step;
        from_shard = kind == EXEC_CKPT_SCALEWISE &&
                     shard_path(sp, sizeof(sp), path, s->rank, &e2) == 0 && exists(sp) &&
                     exec_checkpoint_load_shard(sp, &s->opt, &want, s->rank, s->world, &e2) == 0;
    }
    if (!from_shard &&
        (rc = exec_checkpoint_load(path, &s->model, &s->opt, &s->meta, &got, &kind, err)) < 0)
        return rc;
    exec_optimizer_sync_params(&s->opt);
    if (kind == EXEC_CKPT_HF) {
        note(o, "loaded Hugging Face weights from %s; training starts at step 0", path);
        return 0;
    }
    if (got.data_offset != s->tr.train.offset)
        return sw_errf(err, SW_EINVAL,
                       "checkpoint '%s' was trained on other data (sampler offset %" PRIu64
                       ", this data gives %" PRIu64 "): the training shard changed",
                       path, got.data_offset, s->tr.train.offset);
    s->tr.step = got.step;
    r->start_step = got.step;
    /* The loss scaler carries on where it was (a checkpoint without it: from the plan's). */
    if (s->tr.loss_scale > 0 && got.loss_scale > 0) {
        if (s->tr.cfg.loss_scale_window > 0)
            s->tr.loss_scale = got.loss_scale;
        s->tr.loss_scale_good = got.loss_scale_good;
        s->tr.skipped_steps = got.skipped_steps;
    }
    note(o, "resumed from %s at step %" PRId64 "%s", path, got.step,
         s->zero > 0 ? (from_shard ? " (optimizer from this rank's shard file)"
                                   : " (optimizer from the consolidated state)")
                     : "");
    return 0;
}

/* A run killed (kill -9) while writing a checkpoint leaves "<name>.tmp.<pid>" beside it; the
 * previous checkpoint is intact (the rename never happened). Remove such leftovers of processes
 * that no longer exist, so a resumed run directory holds only complete files. */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *t = strstr(de->d_name, ".tmp.");
        if (!t || strncmp(de->d_name, "ckpt_", 5) != 0)
            continue;
        char *end = NULL;
        long pid = strtol(t + 5, &end, 10);
        if (!end || *end != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* that writer may still be alive */
        char path[PLAN_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        (void)unlink(path);
    }
    closedir(d);
}

static int setup(struct run_state *s, struct exec_run_result *r, struct sw_err *err)
{
    const struct plan *p = s->p;
    const struct exec_run_opts *o = s->o;
    const struct backend *be = backend_for_device(p->strategy.device == DEVICE_CUDA, err);
    if (!be)
        return err->code;
    if (backend_profile_requested()) { /* SCALEWISE_PROFILE=1: time every entry */
        be = backend_profiled(be);
        s->profiled = true;
    }
    s->be = be;
    char train_path[PLAN_PATH_MAX], val_path[PLAN_PATH_MAX];
    int rc = resolve_data_dp(s, train_path, val_path, sizeof(train_path), err);
    if (rc < 0)
        return rc;
    if ((rc = shard_load(train_path, &s->train, err)) < 0)
        return rc;
    bool have_val = exists(val_path);
    if (have_val && (rc = shard_load(val_path, &s->val, err)) < 0)
        return rc;

    struct exec_model_opts mo;
    model_opts_from_plan(p, &mo);
    if (p->strategy.lora_rank > 0 && p->train.lora_targets[0] &&
        (rc = exec_lora_targets_parse(p->train.lora_targets, &mo.lora_targets, err)) < 0)
        return rc;
    /* ZeRO-3 (docs/distributed.md): the model keeps the non-layer weights and two layer
     * buffers; each layer is gathered from the ranks' shards when it runs. */
    if (s->zero == 3)
        mo.layer_gather_bufs = 2;
    /* ZeRO-2/3: gradients kept for the non-layer weights and one layer; each layer's are
     * reduced to their owners as soon as they are done. */
    mo.shard_grads = s->zero >= 2;
    if ((rc = exec_model_init(&s->model, &p->model, &mo, be, err)) < 0)
        return rc;
    /* The GPU runs every product of a 16-bit plan (both gradients and attention included)
     * on bf16 tensor cores where it has them; the CPU every matmul (attention in fp32). */
    const char *bf16_how =
        be->host_memory
            ? (be->has_native_bf16() ? "native AVX512-BF16 matmuls (forward and both "
                                       "gradients)"
                                     : "bf16 matmuls are emulated through fp32 on this CPU (it "
                                       "has no native bf16)")
            : (be->has_native_bf16() ? "bf16 tensor-core matmuls (forward and both gradients)"
                                     : "bf16 matmuls are emulated through fp32 on this GPU (it "
                                       "has no bf16 tensor cores)");
    if (p->strategy.precision == PREC_BF16_MIXED)
        note(o, "precision: bf16-mixed: bf16 weight copies with fp32 master weights, "
                "gradients and accumulation; %s; activations kept for the backward in %s",
             bf16_how, s->model.act_bf16 ? "bf16" : "fp32");
    if (p->strategy.precision == PREC_FP16_MIXED)
        note(o, "precision: fp16-mixed: fp16 weight copies and fp16 matmul operands with fp32 "
                "master weights, gradients and accumulation; %s loss scaling%s",
             p->train.loss_scale > 0 ? "static" : "dynamic",
             be->matmul_f16_forward ? ""
                                    : "; fp16 matmuls are emulated on this backend (slower "
                                      "than fp32)");
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    oc.kind = p->strategy.optimizer;
    oc.beta1 = p->train.beta1;
    oc.beta2 = p->train.beta2;
    oc.eps = p->train.eps;
    oc.weight_decay = p->train.weight_decay;
    if (s->zero > 0) {
        size_t *cuts = sw_xcalloc((size_t)s->world + 1, sizeof(*cuts));
        rc = exec_optimizer_shard_cuts(&s->model, oc.kind, s->world, cuts, err);
        if (rc == 0)
            rc = exec_optimizer_init_shard(&s->opt, &s->model, &oc, cuts[s->rank],
                                           cuts[s->rank + 1],
                                           s->zero == 3 ? be : NULL, err);
        free(cuts);
    } else {
        rc = exec_optimizer_init(&s->opt, &s->model, &oc, err);
    }
    if (rc < 0)
        return rc;
    /* After the optimizer: under ZeRO-3 its own shard is where the model writes the weights.
     * The values are the same on every rank (and as one process). */
    exec_model_init_weights(&s->model, p->train.seed);

    struct exec_train_config tc;
    memset(&tc, 0, sizeof(tc));
    tc.micro_batch = p->strategy.micro_batch;
    tc.grad_accum = p->strategy.grad_accum;
    tc.seq = p->workload.seq;
    tc.lr.schedule = p->train.schedule;
    tc.lr.lr = p->train.lr;
    tc.lr.min_lr = p->train.min_lr;
    tc.lr.warmup_steps = p->train.warmup_steps;
    tc.lr.total_steps = o->steps > 0 ? o->steps : p->train.steps;
    tc.grad_clip = p->train.grad_clip;
    tc.seed = p->train.seed;
    tc.eval_batches = p->train.eval_every > 0 ? p->train.eval_batches : 0;
    if (p->strategy.precision == PREC_FP16_MIXED) {
        bool fixed = p->train.loss_scale > 0;
        tc.loss_scale = fixed ? p->train.loss_scale : p->train.loss_scale_init;
        tc.loss_scale_window = fixed ? 0 : p->train.loss_scale_window;
    }
    if ((rc = exec_trainer_init_dp(&s->tr, &s->model, &s->opt, &tc, &s->train,
                                   have_val ? &s->val : NULL, s->comm, s->zero, err)) < 0)
        return rc;
    if (p->train.eval_every > 0 && !s->tr.has_val)
        note(o, "evaluation is off: no validation tokens (%s)", val_path);
    if (s->world > 1)
        note(o, "data parallel: %d processes (%s, %s), %s; global batch %d x %d sequences per "
                "step",
             s->world, s->comm->engine_name, s->comm->launcher,
             s->zero ? (s->zero == 1 ? "ZeRO-1" : s->zero == 2 ? "ZeRO-2" : "ZeRO-3") : "DDP",
             p->strategy.micro_batch * p->strategy.grad_accum, s->world);

    const char *resume = o->resume ? o->resume : (p->train.resume[0] ? p->train.resume : NULL);
    if (resume) {
        char path[PLAN_PATH_MAX];
        if ((rc = resolve_resume(resume, path, sizeof(path), err)) < 0 ||
            (rc = resume_from(s, path, r, err)) < 0)
            return rc;
    }
    if (s->rank != 0)
        return 0;
    char mpath[PLAN_PATH_MAX];
    if ((rc = join(mpath, sizeof(mpath), s->out_dir, "metrics.jsonl", err)) < 0)
        return rc;
    return exec_metrics_open(&s->metrics, mpath, resume ? r->start_step : -1, err);
}

/* Seconds the collectives of one step take by the advisor's link model (strategy reference
 * 7.1 ring formulas, est_allreduce_s / est_gather_s, the [cal] latency; processes of one CPU
 * node exchange through shared memory at est_cpu_shm_link_bytes_per_s: the rule of
 * advisor/speed.c, section 7.5 of docs/strategy-reference.md), for exactly the collectives
 * exec_trainer_step issues: DDP one all-reduce per 25 MiB bucket; ZeRO-1 one reduce-scatter
 * per staging round;
 * ZeRO-2/3 per micro-batch a reduce of each owner's part of each range the model hands over
 * (every layer, then the non-layer gradients: take_grads in train.c), a reduce-scatter of the
 * region in all; ZeRO-1/2 one all-gather
 * per round after the update (ZeRO-3: instead, one gather per layer the model's two buffers do
 * not hold already, and one of the non-layer weights); plus the two 8-byte gathers of the
 * loss and the norm. Nothing is overlapped with compute on the CPU. NaN when the bandwidth is
 * unknown. */
static double predicted_comm_s(const struct run_state *s, const struct hardware *hw,
                               char *link, size_t link_n)
{
    const struct plan *p = s->p;
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    int W = s->world;
    double bw = est_cpu_shm_link_bytes_per_s(advisor_dev_mem_bw(hw, &p->strategy), W);
    double eta = 1.0, lat = cal.comm_latency_s;
    snprintf(link, link_n, "%s", hw->nodes > 1 ? "MPI inter-node" : "shared memory");
    if (!(bw > 0))
        return NAN;
    double t = 2.0 * est_gather_s(8.0 * W, W, bw, eta, lat); /* loss and norm */
    if (s->zero == 0) {
        size_t bucket = EXEC_DP_BUCKET_BYTES / sizeof(float), n = s->model.n_train;
        for (size_t off = 0; off < n; off += bucket) {
            size_t k = n - off < bucket ? n - off : bucket;
            t += est_allreduce_s(4.0 * (double)k, W, bw, eta, lat);
        }
        return t;
    }
    const struct exec_trainer *tr = &s->tr;
    double rounds = ceil((double)tr->slot / (double)tr->chunk);
    double per_round = est_gather_s(4.0 * (double)tr->chunk * W, W, bw, eta, lat);
    double rs = rounds * per_round;
    if (s->zero >= 2) {
        /* Per micro-batch, each owner's part of every range the model hands over is reduced to
         * it, a chunk at a time (the trainer counts the calls of its last step): over all
         * ranges and owners that is a reduce-scatter of the whole region's bytes, plus one
         * latency per call. */
        rs = (double)tr->grad_reduce_calls * lat +
             p->strategy.grad_accum *
                 est_gather_s(4.0 * (double)s->model.n_train, W, bw, eta, 0.0);
    }
    if (s->zero == 3) {
        /* Layers gathered per step: the first forward all L; every backward reuses the last
         * two layers of its forward, every later forward the first two of the backward. */
        const struct exec_model *m = &s->model;
        double L = m->L, A = p->strategy.grad_accum;
        double gathers = L >= 2 ? L + (L - 2) + (A - 1) * 2 * (L - 2) : 1;
        double rest = (double)(m->n_train - (size_t)m->L * m->layer_n);
        return t + rs + gathers * est_gather_s(4.0 * (double)m->layer_n, W, bw, eta, lat) +
               est_gather_s(4.0 * rest, W, bw, eta, lat);
    }
    return t + rs + rounds * per_round;
}

/* Out of memory: what the advisor would run instead on the same hardware, model and global
 * batch (advisor_search, the fastest plan that fits, with its estimate per device), appended
 * to the error so the user sees the next thing to try; or why nothing fits. When the GPU the
 * backend runs on has another capacity than the plan's hardware says (a profile for another
 * card), the search plans for the GPU that is here. */
static void append_advice(const struct plan *p, const struct hardware *plan_hw,
                          const struct backend *be, struct sw_err *err)
{
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    *hw = *plan_hw;
    char resized[128] = "";
    struct backend_mem_stats ms;
    memset(&ms, 0, sizeof(ms));
    if (be)
        be->mem_stats(&ms);
    if (ms.device_total_bytes > 0 && hw->n_gpus > 0 &&
        hw->gpus[0].mem_total_bytes != ms.device_total_bytes) {
        snprintf(resized, sizeof(resized), " (sized to this GPU's %.2f GiB; the plan's hardware "
                 "says %.2f GiB)", ms.device_total_bytes / 1073741824.0,
                 hw->gpus[0].mem_total_bytes / 1073741824.0);
        for (int i = 0; i < hw->n_gpus; i++)
            hw->gpus[i].mem_total_bytes = hw->gpus[i].mem_free_bytes = ms.device_total_bytes;
    }
    struct search_opts so;
    search_opts_init(&so);
    so.top_k = 1;
    so.allow_lora = false;
    so.max_devices = p->strategy.dp > 1 ? p->strategy.dp : 1;
    so.global_batch_tokens = (int64_t)p->strategy.micro_batch * p->strategy.grad_accum *
                             (p->strategy.dp > 1 ? p->strategy.dp : 1) * p->workload.seq;
    struct workload w = p->workload;
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result res;
    search_result_init(&res);
    struct sw_err serr;
    sw_err_init(&serr);
    char advice[1024] = "";
    if (advisor_search(&p->model, hw, &w, &so, &cal, &res, &serr) < 0) {
        snprintf(advice, sizeof(advice), "the advisor could not search: %s", serr.msg);
    } else if (res.any_fits && res.n_plans > 0) {
        const struct strategy *t = &res.plans[0].strategy;
        const struct estimate *e = &res.plans[0].estimate;
        snprintf(advice, sizeof(advice),
                 "the advisor suggests micro_batch %d, grad_accum %d, recompute %s, precision %s, "
                 "optimizer %s, zero %d, dp %d (estimated %.2f GiB per device of %.2f GiB%s)",
                 t->micro_batch, t->grad_accum, recompute_name(t->recompute),
                 precision_name(t->precision), optimizer_name(t->optimizer), t->zero, t->dp,
                 e->dev.total / 1073741824.0,
                 (e->capacity_bytes > 0 ? e->capacity_bytes : e->host_capacity_bytes) /
                     1073741824.0,
                 resized);
    } else {
        snprintf(advice, sizeof(advice), "the advisor finds no setup that fits this machine%s%s%s",
                 resized, res.n_reasons ? ": " : "", res.n_reasons ? res.reasons[0] : "");
    }
    search_result_release(&res);
    free(hw);
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof(err->msg) - len, "; %s", advice);
}

/* A hash of what every rank must agree on: the plan's numerics, dp, zero and steps. */
static uint64_t plan_hash_dp(const struct plan *p, const struct exec_run_opts *o)
{
    struct exec_ckpt_meta *m = sw_xmalloc(sizeof(*m));
    exec_plan_numerics(p, m);
    char extra[96];
    int k = snprintf(extra, sizeof(extra), ";dp=%d;zero=%d;steps=%lld", p->strategy.dp,
                     p->strategy.zero, (long long)(o->steps > 0 ? o->steps : p->train.steps));
    uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, m->numerics, strlen(m->numerics));
    h = data_fnv1a64(h, extra, (size_t)k);
    free(m);
    return h;
}

/* A plan on this machine ("probe: true") was resolved without the FMA loop and triad, and the
 * speed model needs measured rates for a CPU. Measure in a child process (about 0.3 s) so the
 * triad's arrays never count in this process's peak RSS, which report.yaml compares; done before
 * any OpenMP thread exists here. On any failure the plan's hardware stands. */
void exec_hardware_measured(const struct plan *p, struct hardware *out)
{
    *out = p->hardware;
    if (!p->hw_ref.probe)
        return;
    int fds[2];
    if (pipe(fds) < 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        struct hardware *h = sw_xmalloc(sizeof(*h));
        struct sw_err e;
        sw_err_init(&e);
        int ok = hw_probe(h, true, &e) == 0;
        const char *q = (const char *)h;
        size_t left = ok ? sizeof(*h) : 0;
        while (left > 0) {
            ssize_t w = write(fds[1], q, left);
            if (w <= 0)
                break;
            q += w;
            left -= (size_t)w;
        }
        _exit(ok && left == 0 ? 0 : 1);
    }
    close(fds[1]);
    struct hardware *h = sw_xmalloc(sizeof(*h));
    char *q = (char *)h;
    size_t got = 0;
    while (got < sizeof(*h)) {
        ssize_t n = read(fds[0], q + got, sizeof(*h) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got == sizeof(*h) && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        *out = *h;
        out->nodes = p->hardware.nodes;
    }
    free(h);
}

/* The stop flag as all ranks see it: set when any rank's is (a signal may reach one rank a
 * step before another). Collective in a data-parallel run. */
static int agree_stop(struct run_state *s, bool *stop, struct sw_err *err)
{
    if (!s->comm)
        return 0;
    float f = *stop ? 1.0f : 0.0f;
    int rc = s->comm->allreduce_sum(s->comm, &f, 1, err);
    *stop = f > 0.0f;
    return rc;
}

/* ---------------------------------------------------------------- SCALEWISE_PROFILE */

/* The profile covers training steps only: setup is behind the reset before the first step,
 * and evaluation and checkpoint writes are paused out. */
static void profile_pause(const struct run_state *s, bool paused)
{
    if (s->profiled)
        backend_profile_pause(paused);
}

/* profile.yaml beside report.yaml, under the same names (each rank's profile.rank<R>.yaml in a
 * data-parallel run, rank 0's also as profile.yaml), and the note saying where it is. */
static int write_profile(struct run_state *s, int64_t steps, struct sw_err *err)
{
    if (!s->profiled)
        return 0;
    struct backend_profile_report *pr = sw_xmalloc(sizeof(*pr));
    backend_profile_report(pr);
    pr->steps = steps;
    char path[PLAN_PATH_MAX], name[48];
    int rc = 0;
    if (s->world > 1) {
        snprintf(name, sizeof(name), "profile.rank%d.yaml", s->rank);
        if ((rc = join(path, sizeof(path), s->out_dir, name, err)) == 0)
            rc = backend_profile_write(path, pr, err);
    }
    if (rc == 0 && s->rank == 0 && (rc = join(path, sizeof(path), s->out_dir, "profile.yaml",
                                              err)) == 0)
        rc = backend_profile_write(path, pr, err);
    if (rc == 0 && pr->n_classes >= 3)
        note(s->o, "profile: %s (%s %.0f%%, %s %.0f%%, %s %.0f%% of %.3g s in the backend; "
                   "each timed call waits for the device, so a GPU run is slower profiled)",
             path, pr->classes[0].name, pr->classes[0].percent, pr->classes[1].name,
             pr->classes[1].percent, pr->classes[2].name, pr->classes[2].percent, pr->total_s);
    free(pr);
    return rc;
}

int exec_run_train(const struct plan *p, const struct exec_run_opts *o_in,
                   struct exec_run_result *r, struct sw_err *err)
{
    memset(r, 0, sizeof(*r));
    r->final_loss = r->final_val_loss = NAN;
    int rc = exec_run_check(p, err);
    if (rc < 0)
        return rc;
    struct comm *comm = o_in->comm && o_in->comm->world > 1 ? o_in->comm : NULL;
    int world = comm ? comm->world : 1, rank = comm ? comm->rank : 0;
    int dp = p->strategy.dp > 1 ? p->strategy.dp : 1;
    if (world != dp)
        return sw_errf(err, SW_EINVAL,
                       "the plan has dp %d but %d process%s run%s it: start %d with "
                       "'scalewise run --nproc %d PLAN' or 'mpirun -np %d scalewise run PLAN'",
                       dp, world, world == 1 ? "" : "es", world == 1 ? "s" : "", dp, dp, dp);
    if (comm && (rc = comm_check_consistent(comm, plan_hash_dp(p, o_in), err)) < 0)
        return rc;
    /* Only rank 0 talks to the caller. */
    struct exec_run_opts o_local = *o_in;
    if (rank != 0) {
        o_local.on_note = NULL;
        o_local.on_progress = NULL;
    }
    const struct exec_run_opts *o = &o_local;

    struct hardware *hw_est = sw_xmalloc(sizeof(*hw_est));
    if (rank == 0)
        exec_hardware_measured(p, hw_est);
    else
        *hw_est = p->hardware;
    if (comm && p->hw_ref.probe &&
        (rc = comm->broadcast(comm, hw_est, sizeof(*hw_est), 0, err)) < 0) {
        free(hw_est);
        return rc;
    }
    double t_start = sw_now_s();
    int threads = o->threads > 0 ? o->threads : p->strategy.threads;
    if (threads > 0)
        omp_set_num_threads(threads);
    r->threads = omp_get_max_threads();

    struct run_state *s = sw_xcalloc(1, sizeof(*s));
    s->p = p;
    s->o = o;
    s->comm = comm;
    s->rank = rank;
    s->world = world;
    s->zero = world > 1 ? p->strategy.zero : 0;
    shard_init(&s->train);
    shard_init(&s->val);
    exec_plan_numerics(p, &s->meta);
    s->meta.seed = p->train.seed;
    const char *od = o->out_dir ? o->out_dir : p->train.out_dir;
    if (!od[0])
        od = "runs/run";
    sw_strlcpy(s->out_dir, od, sizeof(s->out_dir));
    sw_strlcpy(r->out_dir, od, sizeof(r->out_dir));
    if ((rc = mkdir_p(s->out_dir, err)) == 0)
        remove_stale_temps(s->out_dir);
    if (rc < 0 || (rc = setup(s, r, err)) < 0) {
        if (rc == SW_ENOMEM)
            append_advice(p, hw_est, s->be, err);
        goto out;
    }

    /* The advisor's estimate of the same plan: FLOPs per token for MFU, and the report (per
     * device: the heaviest rank's bytes under ZeRO). */
    struct estimate est;
    estimate_init(&est);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct sw_err est_err;
    sw_err_init(&est_err);
    bool have_est = advisor_estimate_builtin(&p->model, hw_est, &p->workload, &p->strategy, &cal,
                                             &est, &est_err) == 0 && est.valid;
    /* MFU against the device's dense peak for the plan's precision (the advisor's choice of
     * dtype), on the CPU the share of it of the cores the threads use. */
    double est_peak = have_est ? est.peak_flops_used : 0;
    double peak = p->strategy.device == DEVICE_CUDA ? (est_peak > 0 ? est_peak : NAN)
                                                    : cpu_peak_flops(hw_est, r->threads, est_peak);
    peak *= world;

    int64_t steps = o->steps > 0 ? o->steps : p->train.steps;
    int64_t log_every = p->train.log_every > 0 ? p->train.log_every : 1;
    double train_s = 0.0, tokens = 0.0, comm_s = 0.0;
    int64_t done_here = 0;
    bool has_val = false;
    double last_val = NAN;
    if (s->profiled)
        backend_profile_reset();
    /* On a GPU the profile leaves out the first step when more follow: it carries one-time
     * work (module loading, cuBLASLt's algorithm choice, the attention kernels' tuning). */
    int64_t unprofiled = 0;
    while (s->tr.step < steps) {
        struct exec_step_stats st;
        if ((rc = exec_trainer_step(&s->tr, &st, err)) < 0)
            goto out;
        done_here++;
        if (s->profiled && done_here == 1 && p->strategy.device == DEVICE_CUDA &&
            s->tr.step < steps) {
            backend_profile_reset();
            unprofiled = 1;
        }
        train_s += st.step_s;
        comm_s += st.comm_s;
        tokens += (double)st.tokens;
        int64_t done = s->tr.step;
        r->final_loss = st.loss;
        has_val = false;
        if (s->tr.has_val && p->train.eval_every > 0 &&
            (done % p->train.eval_every == 0 || done == steps)) {
            profile_pause(s, true);
            rc = exec_trainer_eval(&s->tr, &last_val, err);
            profile_pause(s, false);
            if (rc < 0)
                goto out;
            has_val = true;
            r->final_val_loss = last_val;
        }
        double tps = st.step_s > 0 ? (double)st.tokens / st.step_s : NAN;
        if (rank == 0 && (done % log_every == 0 || done == steps || has_val)) {
            struct exec_metrics_row row = {
                .step = done,
                .loss = st.loss,
                .has_val = has_val,
                .val_loss = last_val,
                .lr = st.lr,
                .grad_norm = st.grad_norm,
                .tokens_per_s = tps,
                .ms_per_step = st.step_s * 1e3,
                .mfu = have_est ? est.flops_per_token * tps / peak : NAN,
                .peak_rss_bytes = exec_peak_rss_bytes(),
                .has_comm = world > 1,
                .comm_ms = st.comm_s * 1e3,
                .loss_scale = st.loss_scale,
                .skipped = st.skipped,
            };
            if ((rc = exec_metrics_append(&s->metrics, &row, err)) < 0)
                goto out;
        }
        if (o->on_progress) {
            double mean_tps = train_s > 0 ? tokens / train_s : NAN;
            struct exec_progress pr = {
                .step = done,
                .steps = steps,
                .loss = st.loss,
                .has_val = has_val,
                .val_loss = last_val,
                .lr = st.lr,
                .tokens_per_s = mean_tps,
                .elapsed_s = sw_now_s() - t_start,
                .eta_s = done_here > 0 ? train_s / (double)done_here * (double)(steps - done)
                                       : -1.0,
                .loss_scale = st.loss_scale,
                .skipped = st.skipped,
            };
            o->on_progress(o->ctx, &pr, &st);
        }
        bool stop = o->stop && *o->stop;
        if ((rc = agree_stop(s, &stop, err)) < 0)
            goto out;
        if (stop || (p->train.checkpoint_every > 0 && done % p->train.checkpoint_every == 0)) {
            profile_pause(s, true);
            rc = save_checkpoint(s, r, err);
            profile_pause(s, false);
            if (rc < 0)
                goto out;
        }
        if (stop) {
            r->interrupted = true;
            break;
        }
    }
    profile_pause(s, true);
    if (!r->interrupted && (rc = save_checkpoint(s, r, err)) < 0)
        goto out;
    r->final_step = s->tr.step;
    r->wall_s = sw_now_s() - t_start;
    r->tokens_per_s = train_s > 0 ? tokens / train_s : NAN;

    struct exec_report rep;
    memset(&rep, 0, sizeof(rep));
    s->be->mem_stats(&rep.mem);
    sw_strlcpy(rep.backend, s->be->name, sizeof(rep.backend));
    if (p->strategy.device == DEVICE_CUDA)
        backend_cuda_attention_tuning(rep.attention_tuning, sizeof(rep.attention_tuning));
    rep.peak_rss_bytes = exec_peak_rss_bytes();
    rep.steps_done = done_here;
    rep.final_step = r->final_step;
    rep.wall_s = r->wall_s;
    rep.tokens_per_s = r->tokens_per_s;
    rep.step_s = done_here > 0 ? train_s / (double)done_here : NAN;
    rep.mfu = have_est ? est.flops_per_token * r->tokens_per_s / peak : NAN;
    rep.final_loss = r->final_loss;
    rep.final_val_loss = r->final_val_loss;
    rep.threads = r->threads;
    rep.interrupted = r->interrupted;
    rep.rank = rank;
    rep.world = world;
    rep.zero = s->zero;
    rep.comm_s_per_step = done_here > 0 ? comm_s / (double)done_here : NAN;
    rep.predicted_comm_s_per_step =
        world > 1 ? predicted_comm_s(s, hw_est, rep.link, sizeof(rep.link)) : NAN;
    sw_strlcpy(rep.checkpoint, r->checkpoint, sizeof(rep.checkpoint));
    rep.loss_scale = s->tr.loss_scale;
    rep.dynamic_loss_scale = s->tr.cfg.loss_scale_window > 0;
    rep.skipped_steps = s->tr.skipped_steps;
    char rpath[PLAN_PATH_MAX], rname[48];
    if (world > 1) {
        snprintf(rname, sizeof(rname), "report.rank%d.yaml", rank);
        if ((rc = join(rpath, sizeof(rpath), s->out_dir, rname, err)) < 0 ||
            (rc = exec_report_write(rpath, p, &rep, have_est ? &est : NULL, est_err.msg, err)) <
                0)
            goto out;
    }
    if (rank == 0) {
        if ((rc = join(rpath, sizeof(rpath), s->out_dir, "report.yaml", err)) < 0)
            goto out;
        rc = exec_report_write(rpath, p, &rep, have_est ? &est : NULL, est_err.msg, err);
    }
    if (rc == 0)
        rc = write_profile(s, done_here - unprofiled, err);
out:
    run_release(s);
    free(s);
    free(hw_est);
    return rc;
}
