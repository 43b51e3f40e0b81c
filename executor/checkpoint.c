/* Checkpoints as safetensors files, and loading plain Hugging Face weights.
 *
 * A checkpoint holds every model tensor under its Hugging Face name as F32 (GPT-2 Conv1D
 * weights transposed to HF's (in, out) layout, so the file loads into transformers; the
 * metadata says "format": "pt" as transformers requires), the optimizer's named state buffers
 * as "optim.<name>" (1-D, F32 or U8 — 8-bit AdamW blocks are stored byte for byte so a resume
 * is exact), and metadata (strings): scalewise_checkpoint (format version), step, optim_step,
 * seed and data_offset (the batch sampler's whole state), optimizer, model.* (the shape),
 * plan_hash and plan_numerics (the plan settings the hash covers, so a mismatch can be named
 * key by key), under fp16-mixed the loss scaler's state (loss_scale, loss_scale_good,
 * skipped_steps), and checksum: the sum over tensors of FNV-1a 64 of (name, bytes), which does
 * not depend on the order the writer lays tensors out in.
 *
 * Saving goes through sft_writer_save (temporary file, fsync, rename, directory fsync): a kill
 * during a save leaves any previous file intact. Loading checks everything (version, shape,
 * plan hash, every tensor, the checksum) before writing a byte into the model, so a refused
 * file changes nothing. Memory beyond the model and optimizer stays bounded: at save, Conv1D
 * weights are transposed CKPT_CHUNK_BYTES at a time (once for the checksum, once more as the
 * writer pulls them through sft_writer_add_fill); at load, the checksum is computed over
 * CKPT_CHUNK_BYTES reads and sharded optimizer state is read range by range straight into the
 * shard, so only a transposed weight (the largest one) goes through a whole-tensor temporary.
 * No buffer outlives the call.
 * Which files to keep and the latest.txt pointer are run.c's business. */
#include "executor/executor.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "executor/comm.h"

void exec_ckpt_meta_init(struct exec_ckpt_meta *m)
{
    memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------- plan numerics */

static void kv_append(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void kv_append(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    if (*len >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len += (size_t)k;
    if (*len >= n)
        *len = n - 1;
}

/* The shortest "%.Ng" (N = 6..17) that reads back as exactly x, so 3e-4 prints "0.0003". */
static const char *num(double x, char *buf, size_t n)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

void exec_plan_numerics(const struct plan *p, struct exec_ckpt_meta *meta)
{
    char n1[32], n2[32], n3[32];
    const struct model_desc *d = &p->model;
    const struct strategy *s = &p->strategy;
    const struct plan_train *t = &p->train;
    char *b = meta->numerics;
    size_t n = sizeof(meta->numerics), len = 0;
    b[0] = '\0';
    kv_append(b, n, &len, "model.arch=%s;model.layers=%d;model.hidden=%d;model.heads=%d;",
              model_arch_name(d->arch), d->n_layers, d->hidden, d->n_heads);
    kv_append(b, n, &len, "model.kv_heads=%d;model.head_dim=%d;model.ffn=%d;model.vocab=%d;",
              d->n_kv_heads, d->head_dim, d->ffn, d->vocab);
    kv_append(b, n, &len, "model.max_pos=%d;model.tied_head=%d;model.bias=%d;model.rms_norm=%d;",
              d->max_pos, d->tied_head, d->bias, d->rms_norm);
    kv_append(b, n, &len, "model.swiglu=%d;model.sliding_window=%d;model.rope_theta=%s;",
              d->swiglu, d->sliding_window, num(d->rope_theta, n1, sizeof(n1)));
    kv_append(b, n, &len, "model.norm_eps=%s;", num(d->norm_eps, n1, sizeof(n1)));
    kv_append(b, n, &len, "strategy.precision=%s;strategy.optimizer=%s;", precision_name(s->precision),
              optimizer_name(s->optimizer));
    /* The global batch, not its split into accumulation and data-parallel ranks: a run saved
     * on N ranks resumes on M (docs/distributed.md). */
    kv_append(b, n, &len, "strategy.micro_batch=%d;train.global_batch=%lld;strategy.attention=%s;",
              s->micro_batch, (long long)s->grad_accum * (s->dp > 1 ? s->dp : 1),
              attention_name(s->attention));
    kv_append(b, n, &len, "strategy.lora_rank=%d;train.lora_targets=%s;", s->lora_rank,
              s->lora_rank > 0 ? t->lora_targets : "");
    kv_append(b, n, &len, "train.seq=%d;train.lr=%s;train.min_lr=%s;train.schedule=%s;",
              p->workload.seq, num(t->lr, n1, sizeof(n1)), num(t->min_lr, n2, sizeof(n2)),
              lr_schedule_name(t->schedule));
    kv_append(b, n, &len, "train.warmup_steps=%" PRId64 ";train.weight_decay=%s;",
              t->warmup_steps, num(t->weight_decay, n1, sizeof(n1)));
    kv_append(b, n, &len, "train.grad_clip=%s;train.beta1=%s;train.beta2=%s;",
              num(t->grad_clip, n1, sizeof(n1)), num(t->beta1, n2, sizeof(n2)),
              num(t->beta2, n3, sizeof(n3)));
    kv_append(b, n, &len, "train.eps=%s;train.seed=%" PRIu64, num(t->eps, n1, sizeof(n1)),
              t->seed);
    if (s->precision == PREC_FP16_MIXED) /* only fp16 runs scale (other hashes unchanged) */
        kv_append(b, n, &len, ";train.loss_scale=%s",
                  t->loss_scale > 0 ? num(t->loss_scale, n1, sizeof(n1)) : "dynamic");
    uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, b, strlen(b));
    snprintf(meta->plan_hash, sizeof(meta->plan_hash), "%016" PRIx64, h);
}

/* The keys whose values differ between two "k=v;..." strings, as "k a (checkpoint) vs b
 * (this plan)" items joined by ", " into out. */
static void numerics_diff(const char *ckpt, const char *plan, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    const char *a = ckpt;
    int shown = 0;
    while (*a) {
        const char *eq = strchr(a, '='), *end = strchr(a, ';');
        if (!end)
            end = a + strlen(a);
        if (!eq || eq > end)
            break;
        size_t klen = (size_t)(eq - a);
        /* Find the same key in plan. */
        const char *b = plan;
        const char *bval = NULL, *bend = NULL;
        while (*b) {
            const char *beq = strchr(b, '='), *be2 = strchr(b, ';');
            if (!be2)
                be2 = b + strlen(b);
            if (beq && beq < be2 && (size_t)(beq - b) == klen && !strncmp(a, b, klen)) {
                bval = beq + 1;
                bend = be2;
                break;
            }
            b = *be2 ? be2 + 1 : be2;
        }
        const char *aval = eq + 1;
        size_t alen = (size_t)(end - aval);
        size_t blen = bval ? (size_t)(bend - bval) : 0;
        if (!bval || alen != blen || strncmp(aval, bval, alen) != 0) {
            if (shown < 6)
                kv_append(out, n, &len, "%s%.*s %.*s (checkpoint) vs %.*s (this plan)",
                          shown ? ", " : "", (int)klen, a, (int)alen, aval, (int)blen,
                          bval ? bval : "");
            shown++;
        }
        a = *end ? end + 1 : end;
    }
    if (shown > 6)
        kv_append(out, n, &len, " and %d more", shown - 6);
    if (!shown)
        kv_append(out, n, &len, "settings outside the recorded list");
}

/* ---------------------------------------------------------------- model shape */

#define N_SHAPE_KEYS 13

/* The model's shape as metadata pairs (keys "model.*"). */
static void shape_pairs(const struct exec_model *m, char keys[N_SHAPE_KEYS][32],
                        char vals[N_SHAPE_KEYS][32])
{
    const struct model_desc *d = &m->desc;
    int i = 0;
#define PAIR(k, ...)                                                                             \
    do {                                                                                         \
        snprintf(keys[i], 32, "model.%s", k);                                                    \
        snprintf(vals[i], 32, __VA_ARGS__);                                                      \
        i++;                                                                                     \
    } while (0)
    PAIR("arch", "%s", model_arch_name(d->arch));
    PAIR("layers", "%d", m->L);
    PAIR("hidden", "%d", m->C);
    PAIR("heads", "%d", m->NH);
    PAIR("kv_heads", "%d", m->NKV);
    PAIR("head_dim", "%d", m->HS);
    PAIR("ffn", "%d", m->F);
    PAIR("vocab", "%d", m->V);
    PAIR("max_pos", "%d", d->max_pos);
    PAIR("tied_head", "%s", d->tied_head ? "true" : "false");
    PAIR("bias", "%s", d->bias ? "true" : "false");
    PAIR("lora_rank", "%d", m->opts.lora_rank);
    PAIR("lora_targets", "%u", m->opts.lora_rank > 0 ? m->opts.lora_targets : 0u);
#undef PAIR
    SW_ASSERT(i == N_SHAPE_KEYS);
}

/* ---------------------------------------------------------------- checksum */

static uint64_t tensor_hash(const char *name, const void *data, size_t bytes)
{
    uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, name, strlen(name));
    return data_fnv1a64(h, data, bytes);
}

/* Bytes per step through the save's and the checksum's scratch buffers: bounds the memory a
 * save or load adds (a GPT-2 124M save used to transpose every weight at once, ~340 MB). */
#define CKPT_CHUNK_BYTES SFT_FILL_CHUNK_BYTES

/* ---------------------------------------------------------------- backend memory
 * Model and optimizer buffers live in their backend's memory. On a backend without host
 * memory (CUDA, the device simulator) the host reaches them only through be->memcpy, so every
 * read or write below goes through one of these helpers; be NULL means a plain host buffer
 * (the consolidated copies a data-parallel save gathers). */

static bool on_device(const struct backend *be)
{
    return be && !be->host_memory;
}

/* host dst[0..n) = bytes [0, n) of buffer src. */
static void read_buf(const struct backend *be, void *dst, const void *src, size_t n)
{
    if (!n)
        return;
    if (on_device(be))
        be->memcpy(dst, src, n, BACKEND_D2H);
    else
        memcpy(dst, src, n);
}

/* buffer dst[0..n) = host src[0..n). */
static void write_buf(const struct backend *be, void *dst, const void *src, size_t n)
{
    if (!n)
        return;
    if (on_device(be))
        be->memcpy(dst, src, n, BACKEND_H2D);
    else
        memcpy(dst, src, n);
}

/* Bytes [off, off + n) of file tensor ft into dst in be's memory: straight in when the host
 * can write it, else through `chunk` (CKPT_CHUNK_BYTES host bytes) a piece at a time. */
static int read_raw_to(const struct sft_file *f, const struct sft_tensor *ft, uint64_t off,
                       const struct backend *be, void *dst, size_t n, void *chunk,
                       struct sw_err *err)
{
    if (!on_device(be))
        return sft_read_raw_range(f, ft, off, dst, n, err);
    for (size_t a = 0; a < n; a += CKPT_CHUNK_BYTES) {
        size_t k = n - a < CKPT_CHUNK_BYTES ? n - a : CKPT_CHUNK_BYTES;
        int rc = sft_read_raw_range(f, ft, off + a, chunk, k, err);
        if (rc < 0)
            return rc;
        write_buf(be, (char *)dst + a, chunk, k);
    }
    return 0;
}

/* A host chunk for read_raw_to when be's memory is not the host's (else NULL, not needed). */
static int device_chunk(const struct backend *be, void **chunk, struct sw_err *err)
{
    *chunk = NULL;
    if (on_device(be) && !(*chunk = sw_try_malloc(CKPT_CHUNK_BYTES, "checkpoint staging buffer",
                                                  err)))
        return SW_ENOMEM;
    return 0;
}

/* tensor_hash over a buffer the host may not reach: CKPT_CHUNK_BYTES at a time through
 * scratch (CKPT_CHUNK_BYTES bytes). */
static uint64_t buf_hash(const struct backend *be, const char *name, const void *data,
                         size_t bytes, void *scratch)
{
    if (!on_device(be))
        return tensor_hash(name, data, bytes);
    uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, name, strlen(name));
    for (size_t at = 0; at < bytes; at += CKPT_CHUNK_BYTES) {
        size_t n = bytes - at < CKPT_CHUNK_BYTES ? bytes - at : CKPT_CHUNK_BYTES;
        read_buf(be, scratch, (const char *)data + at, n);
        h = data_fnv1a64(h, scratch, n);
    }
    return h;
}

/* sft_fill_fn of a buffer in device memory: the writer pulls it chunk by chunk. */
struct device_src {
    const struct backend *be;
    const char *data;
};

static int device_fill(void *ctx, uint64_t off_bytes, void *dst, size_t n_bytes,
                       struct sw_err *err)
{
    (void)err;
    const struct device_src *d = ctx;
    read_buf(d->be, dst, d->data + off_bytes, n_bytes);
    return 0;
}

/* Add a 1-D or 2-D buffer to the writer: by pointer when the host can read it, else as a
 * device_fill (src lives until the writer saves). Adds its hash to *sum. */
static int add_buf(struct sft_writer *w, const char *name, enum sft_dtype dtype, int nd,
                   const int64_t *shape, const struct backend *be, const void *data,
                   size_t bytes, struct device_src *src, void *scratch, uint64_t *sum,
                   struct sw_err *err)
{
    int rc;
    if (on_device(be)) {
        *src = (struct device_src){be, data};
        rc = sft_writer_add_fill(w, name, dtype, nd, shape, device_fill, src, err);
    } else {
        rc = sft_writer_add(w, name, dtype, nd, shape, data, err);
    }
    *sum += buf_hash(be, name, data, bytes, scratch);
    return rc;
}

/* The optimizer state buffers bufs[0..n) as "optim.<name>" tensors (add_buf each; src holds n
 * fill contexts). */
static int add_optim_bufs(struct sft_writer *w, const struct exec_optim_buf *bufs, int n,
                          const struct backend *be, struct device_src *src, void *scratch,
                          uint64_t *sum, struct sw_err *err)
{
    char nm[160];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const struct exec_optim_buf *b = &bufs[i];
        snprintf(nm, sizeof(nm), "optim.%s", b->name);
        int64_t shape[1] = {(int64_t)b->n_elems};
        rc = add_buf(w, nm, b->dtype, 1, shape, be, b->data,
                     (size_t)b->n_elems * sft_dtype_bytes(b->dtype), &src[i], scratch, sum, err);
    }
    return rc;
}

/* dst(cols, rows) = src(rows, cols)ᵀ. */
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            dst[c * rows + r] = src[r * cols + c];
}

/* dst[0..n) = elements [k0, k0 + n) of src(rows, cols)ᵀ in row-major order: element k is
 * src[k % rows][k / rows]. Reads each source row contiguously over the columns the range
 * covers. */
static void transpose_range(float *dst, const float *src, int64_t rows, int64_t cols, int64_t k0,
                            int64_t n)
{
    int64_t k1 = k0 + n, c_lo = k0 / rows, c_hi = (k1 - 1) / rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *s = src + r * cols;
        for (int64_t c = c_lo; c <= c_hi; c++) {
            int64_t k = c * rows + r;
            if (k >= k0 && k < k1)
                dst[k - k0] = s[c];
        }
    }
}

/* A whole tensor copied to the host, for transposing a weight the host cannot read in place:
 * one buffer (the largest transposed weight) shared by every tensor of a save. The writer
 * pulls tensors one after another, so each is staged once more when it is written. */
struct stage {
    const struct backend *be;
    const float *src; /* the tensor whose values host holds; NULL = none */
    float *host;
};

static const float *stage_tensor(struct stage *st, const struct exec_tensor *t)
{
    if (!on_device(st->be))
        return t->data;
    if (st->src != t->data) {
        read_buf(st->be, st->host, t->data, t->numel * sizeof(float));
        st->src = t->data;
    }
    return st->host;
}

/* sft_fill_fn of a Conv1D weight in HF's (in, out) layout. */
struct transposed_src {
    const struct exec_tensor *t;
    struct stage *st;
};

static int transposed_fill(void *ctx, uint64_t off_bytes, void *dst, size_t n_bytes,
                           struct sw_err *err)
{
    (void)err;
    const struct transposed_src *ts = ctx;
    const struct exec_tensor *t = ts->t;
    SW_ASSERT(off_bytes % sizeof(float) == 0 && n_bytes % sizeof(float) == 0);
    if (n_bytes)
        transpose_range(dst, stage_tensor(ts->st, t), t->shape[0], t->shape[1],
                        (int64_t)(off_bytes / sizeof(float)), (int64_t)(n_bytes / sizeof(float)));
    return 0;
}

/* The shape a tensor has in HF files. */
static int hf_shape(const struct exec_tensor *t, int64_t shape[2])
{
    if (t->ndim == 2 && t->hf_transposed) {
        shape[0] = t->shape[1];
        shape[1] = t->shape[0];
    } else {
        shape[0] = t->shape[0];
        shape[1] = t->shape[1];
    }
    return t->ndim;
}

/* ---------------------------------------------------------------- save */

/* Write the model and the optimizer state buffers bufs[0..n_bufs) (the unsharded layout)
 * with metadata. The tensors' data live in tensor_be's memory and the buffers' in buf_be's
 * (NULL: host buffers). */
static int save_bufs(const char *path, const struct exec_model *m, const struct backend *tensor_be,
                     const struct exec_optim_buf *bufs, int n_bufs, const struct backend *buf_be,
                     const char *optim_name, int64_t optim_step, const struct exec_ckpt_meta *meta,
                     struct sw_err *err)
{
    size_t t_bytes = 0, t_whole = 0; /* the largest transposed weight: capped, and whole */
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].hf_transposed && m->tensors[i].ndim == 2 &&
            m->tensors[i].numel * sizeof(float) > t_whole)
            t_whole = m->tensors[i].numel * sizeof(float);
    t_bytes = t_whole < CKPT_CHUNK_BYTES ? t_whole : CKPT_CHUNK_BYTES;
    bool dev = on_device(tensor_be) || on_device(buf_be);
    struct stage st = {tensor_be, NULL, NULL};
    float *tbuf = NULL;
    void *scratch = NULL;
    if (t_bytes && !(tbuf = sw_try_malloc(t_bytes, "checkpoint transpose buffer", err)))
        return SW_ENOMEM;
    if ((dev && !(scratch = sw_try_malloc(CKPT_CHUNK_BYTES, "checkpoint staging buffer", err))) ||
        (t_whole && on_device(tensor_be) &&
         !(st.host = sw_try_malloc(t_whole, "checkpoint staging buffer", err)))) {
        free(tbuf);
        free(scratch);
        return SW_ENOMEM;
    }
    /* Fill contexts live until the writer has saved. */
    struct device_src *dsrc = sw_xcalloc((size_t)(m->n_tensors + n_bufs + 1), sizeof(*dsrc));
    struct transposed_src *tsrc = sw_xcalloc((size_t)(m->n_tensors + 1), sizeof(*tsrc));
    struct sft_writer *w = sft_writer_new();
    uint64_t sum = 0;
    int rc = 0;
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const struct exec_tensor *t = &m->tensors[i];
        int64_t shape[2];
        int nd = hf_shape(t, shape);
        size_t nb = t->numel * sizeof(float);
        if (!(t->hf_transposed && t->ndim == 2)) {
            rc = add_buf(w, t->name, SFT_F32, nd, shape, tensor_be, t->data, nb, &dsrc[i],
                         scratch, &sum, err);
            continue;
        }
        /* The checksum covers the bytes as written: hash the transposed copy chunk by chunk
         * now (the header, checksum included, precedes the data), and let the writer
         * regenerate the same bytes. */
        tsrc[i] = (struct transposed_src){t, &st};
        rc = sft_writer_add_fill(w, t->name, SFT_F32, nd, shape, transposed_fill, &tsrc[i], err);
        uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, t->name, strlen(t->name));
        for (size_t at = 0; at < nb && rc == 0; at += t_bytes) {
            size_t n = nb - at < t_bytes ? nb - at : t_bytes;
            rc = transposed_fill(&tsrc[i], at, tbuf, n, err);
            h = data_fnv1a64(h, tbuf, n);
        }
        sum += h;
    }
    free(tbuf); /* the writer brings its own chunk buffer */
    tbuf = NULL;
    if (rc == 0)
        rc = add_optim_bufs(w, bufs, n_bufs, buf_be, &dsrc[m->n_tensors], scratch, &sum, err);
    char keys[N_SHAPE_KEYS][32], vals[N_SHAPE_KEYS][32], v[64];
    shape_pairs(m, keys, vals);
    for (int i = 0; i < N_SHAPE_KEYS && rc == 0; i++)
        rc = sft_writer_add_meta(w, keys[i], vals[i], err);
#define META(k, ...)                                                                             \
    do {                                                                                         \
        if (rc == 0) {                                                                           \
            snprintf(v, sizeof(v), __VA_ARGS__);                                                 \
            rc = sft_writer_add_meta(w, k, v, err);                                              \
        }                                                                                        \
    } while (0)
    META("format", "pt");
    META("scalewise_checkpoint", "%d", EXEC_CKPT_VERSION);
    META("step", "%" PRId64, meta->step);
    META("optim_step", "%" PRId64, optim_step);
    META("optimizer", "%s", optim_name);
    META("seed", "%" PRIu64, meta->seed);
    META("data_offset", "%" PRIu64, meta->data_offset);
    META("plan_hash", "%s", meta->plan_hash);
    if (meta->loss_scale > 0) {
        META("loss_scale", "%.17g", meta->loss_scale);
        META("loss_scale_good", "%" PRId64, meta->loss_scale_good);
        META("skipped_steps", "%" PRId64, meta->skipped_steps);
    }
    META("checksum", "%016" PRIx64, sum);
#undef META
    if (rc == 0)
        rc = sft_writer_add_meta(w, "plan_numerics", meta->numerics, err);
    if (rc == 0)
        rc = sft_writer_save(w, path, err);
    sft_writer_free(w);
    free(dsrc);
    free(tsrc);
    free(scratch);
    free(st.host);
    return rc;
}

int exec_checkpoint_save(const char *path, const struct exec_model *m,
                         const struct exec_optimizer *o, const struct exec_ckpt_meta *meta,
                         struct sw_err *err)
{
    if (o && o->sharded)
        return sw_errf(err, SW_EINVAL, "a sharded optimizer is saved with "
                                       "exec_checkpoint_save_dp");
    if (exec_model_layer_gather(m))
        return sw_errf(err, SW_EINVAL, "a layer-gathered model (ZeRO-3) is saved with "
                                       "exec_checkpoint_save_dp");
    return save_bufs(path, m, m->be, o ? o->bufs : NULL, o ? o->n_bufs : 0, m->be,
                     o ? optimizer_name(o->cfg.kind) : "none", o ? o->step : 0, meta, err);
}

/* ---------------------------------------------------------------- data-parallel saves */

/* Bytes moved per broadcast while gathering shards (bounds every rank's scratch). */
#define GATHER_CHUNK_BYTES ((size_t)4 << 20)

/* One extent as it travels between ranks. */
struct ext_wire {
    int64_t buf;
    uint64_t off_bytes, bytes;
};

/* Rank 0 receives every rank's extents (in be's memory) into the host buffers full[] (rank 0's
 * own by copy). Collective; the bytes travel in host chunks (every engine takes host buffers). */
static int gather_extents(struct comm *c, const struct backend *be,
                          const struct exec_optimizer *o, void **full,
                          const uint64_t *full_bytes, int n_full, struct sw_err *err)
{
    int rc = 0;
    char *scratch = NULL;
    if (c->rank == 0) {
        for (int i = 0; i < o->n_ext; i++) {
            const struct exec_optim_extent *e = &o->ext[i];
            SW_ASSERT(e->buf >= 0 && e->buf < n_full &&
                      e->off_bytes + e->bytes <= full_bytes[e->buf]);
            if (e->bytes && full[e->buf])
                read_buf(be, (char *)full[e->buf] + e->off_bytes, e->data, (size_t)e->bytes);
        }
    }
    scratch = sw_xmalloc(GATHER_CHUNK_BYTES);
    for (int q = 1; q < c->world && rc == 0; q++) {
        int64_t count = c->rank == q ? o->n_ext : 0;
        if ((rc = c->broadcast(c, &count, sizeof(count), q, err)) < 0)
            break;
        if (count < 0 || count > 1000000) {
            rc = sw_errf(err, SW_EPARSE, "rank %d announced %lld optimizer extents", q,
                         (long long)count);
            break;
        }
        struct ext_wire *w = sw_xcalloc((size_t)(count > 0 ? count : 1), sizeof(*w));
        if (c->rank == q)
            for (int64_t i = 0; i < count; i++)
                w[i] = (struct ext_wire){o->ext[i].buf, o->ext[i].off_bytes, o->ext[i].bytes};
        if (count > 0)
            rc = c->broadcast(c, w, (size_t)count * sizeof(*w), q, err);
        for (int64_t i = 0; i < count && rc == 0; i++) {
            if (w[i].buf < 0 || w[i].buf >= n_full ||
                w[i].off_bytes + w[i].bytes > full_bytes[w[i].buf]) {
                rc = sw_errf(err, SW_EINVAL,
                             "rank %d's optimizer state does not fit rank 0's layout (buffer "
                             "%lld, bytes %llu at %llu): the ranks run different plans",
                             q, (long long)w[i].buf, (unsigned long long)w[i].bytes,
                             (unsigned long long)w[i].off_bytes);
                break;
            }
            for (uint64_t pos = 0; pos < w[i].bytes && rc == 0; pos += GATHER_CHUNK_BYTES) {
                size_t n = (size_t)(w[i].bytes - pos < GATHER_CHUNK_BYTES ? w[i].bytes - pos
                                                                          : GATHER_CHUNK_BYTES);
                char *buf = scratch;
                if (c->rank == q)
                    read_buf(be, scratch, (char *)o->ext[i].data + pos, n);
                else if (c->rank == 0 && full[w[i].buf])
                    buf = (char *)full[w[i].buf] + w[i].off_bytes + pos;
                rc = c->broadcast(c, buf, n, q, err);
            }
        }
        free(w);
    }
    free(scratch);
    return rc;
}

int exec_checkpoint_save_dp(const char *path, struct exec_model *m, const struct exec_optimizer *o,
                            const struct exec_ckpt_meta *meta, struct comm *c, struct sw_err *err)
{
    if (!c || c->world == 1) /* one process: a plain save */
        return exec_checkpoint_save(path, m, o, meta, err);
    if (!o || !o->sharded) { /* DDP: every replica is the same; rank 0 writes its own */
        if (c->rank != 0)
            return 0;
        return save_bufs(path, m, m->be, o ? o->bufs : NULL, o ? o->n_bufs : 0, m->be,
                         o ? optimizer_name(o->cfg.kind) : "none", o ? o->step : 0, meta, err);
    }
    struct exec_optim_buf *full = NULL;
    int n_full = 0;
    int rc = exec_optimizer_full_layout(m, &o->cfg, &full, &n_full, err);
    if (rc < 0)
        return rc;
    void **data = sw_xcalloc((size_t)(n_full > 0 ? n_full : 1), sizeof(*data));
    uint64_t *bytes = sw_xcalloc((size_t)(n_full > 0 ? n_full : 1), sizeof(*bytes));
    for (int i = 0; i < n_full && rc == 0; i++) {
        bytes[i] = full[i].n_elems * sft_dtype_bytes(full[i].dtype);
        if (c->rank != 0)
            continue;
        /* Rank 0 holds the whole state during the save (freed at once): a normal checkpoint
         * needs every byte in one file. */
        data[i] = sw_try_malloc(bytes[i] ? (size_t)bytes[i] : 1, "consolidated optimizer state",
                                err);
        if (!data[i])
            rc = SW_ENOMEM;
        else
            memset(data[i], 0, (size_t)bytes[i]);
        full[i].data = data[i];
    }
    /* A rank that failed to allocate still joins the collectives, then reports. */
    struct sw_err e2;
    sw_err_init(&e2);
    int grc = gather_extents(c, m->be, o, data, bytes, n_full, rc < 0 ? &e2 : err);
    if (rc == 0)
        rc = grc;
    /* ZeRO-3 with a layer-gathered model: no rank holds every weight, so rank 0 gathers the
     * ranks' parameter shards into one full copy (held during the save, as the optimizer
     * state) and writes the tensors from it. */
    float *wfull = NULL;
    struct exec_tensor *view = NULL;
    struct exec_model mv = *m;
    if (exec_model_layer_gather(m)) {
        uint64_t wbytes = (uint64_t)m->n_train * sizeof(float);
        if (rc == 0 && c->rank == 0) {
            wfull = sw_try_malloc((size_t)wbytes, "consolidated weights", err);
            if (!wfull)
                rc = SW_ENOMEM;
        }
        struct exec_optim_extent e = {0, (uint64_t)o->lo * sizeof(float),
                                      (uint64_t)(o->hi - o->lo) * sizeof(float), o->params};
        struct exec_optimizer wo;
        memset(&wo, 0, sizeof(wo));
        wo.n_ext = 1;
        wo.ext = &e;
        void *wd[1] = {wfull};
        grc = gather_extents(c, o->param_be ? o->param_be : m->be, &wo, wd, &wbytes, 1,
                             rc < 0 ? &e2 : err);
        if (rc == 0)
            rc = grc;
        if (rc == 0 && c->rank == 0) {
            view = sw_xcalloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), sizeof(*view));
            for (int i = 0; i < m->n_tensors; i++) {
                view[i] = m->tensors[i];
                view[i].data = wfull + view[i].region_off;
            }
            mv.tensors = view;
        }
    }
    if (rc == 0 && c->rank == 0)
        rc = save_bufs(path, &mv, wfull ? NULL : m->be, full, n_full, NULL,
                       optimizer_name(o->cfg.kind), o->step, meta, err);
    free(view);
    free(wfull);
    for (int i = 0; i < n_full; i++)
        free(data[i]);
    free(data);
    free(bytes);
    free(full);
    return rc;
}

int exec_checkpoint_save_shard(const char *path, const struct exec_optimizer *o,
                               const struct exec_ckpt_meta *meta, int rank, int world,
                               struct sw_err *err)
{
    const struct backend *be = o->model->be;
    void *scratch = NULL;
    if (on_device(be) &&
        !(scratch = sw_try_malloc(CKPT_CHUNK_BYTES, "checkpoint staging buffer", err)))
        return SW_ENOMEM;
    struct device_src *dsrc = sw_xcalloc((size_t)(o->n_bufs + 1), sizeof(*dsrc));
    struct sft_writer *w = sft_writer_new();
    uint64_t sum = 0;
    char v[64];
    int rc = add_optim_bufs(w, o->bufs, o->n_bufs, be, dsrc, scratch, &sum, err);
#define META(k, ...)                                                                             \
    do {                                                                                         \
        if (rc == 0) {                                                                           \
            snprintf(v, sizeof(v), __VA_ARGS__);                                                 \
            rc = sft_writer_add_meta(w, k, v, err);                                              \
        }                                                                                        \
    } while (0)
    META("scalewise_optim_shard", "%d", EXEC_CKPT_VERSION);
    META("rank", "%d", rank);
    META("world", "%d", world);
    META("lo", "%zu", o->lo);
    META("hi", "%zu", o->hi);
    META("step", "%" PRId64, meta->step);
    META("optim_step", "%" PRId64, o->step);
    META("optimizer", "%s", optimizer_name(o->cfg.kind));
    META("plan_hash", "%s", meta->plan_hash);
    META("checksum", "%016" PRIx64, sum);
#undef META
    if (rc == 0)
        rc = sft_writer_save(w, path, err);
    sft_writer_free(w);
    free(dsrc);
    free(scratch);
    return rc;
}

/* ---------------------------------------------------------------- load */

static int meta_u64(const struct sft_file *f, const char *key, uint64_t *out, struct sw_err *err)
{
    const char *v = sft_meta_get(f, key);
    if (!v)
        return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0, "metadata '%s' is missing", key);
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || v[0] == '-')
        return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0, "metadata '%s' is not a number: '%s'",
                         key, v);
    *out = x;
    return 0;
}

/* The loss scaler's state (fp16-mixed checkpoints): a positive finite scale and two counts. */
static int meta_loss_scale(const struct sft_file *f, struct exec_ckpt_meta *got,
                           struct sw_err *err)
{
    const char *v = sft_meta_get(f, "loss_scale");
    char *end = NULL;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || !*v || *end || !isfinite(x) || x <= 0)
        return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0,
                         "metadata 'loss_scale' is not a positive number: '%s'", v ? v : "");
    uint64_t good = 0, skipped = 0;
    int rc = meta_u64(f, "loss_scale_good", &good, err);
    if (rc == 0)
        rc = meta_u64(f, "skipped_steps", &skipped, err);
    if (rc < 0)
        return rc;
    got->loss_scale = x;
    got->loss_scale_good = (int64_t)(good > INT64_MAX ? INT64_MAX : good);
    got->skipped_steps = (int64_t)(skipped > INT64_MAX ? INT64_MAX : skipped);
    return 0;
}

/* The model tensor's entry in the file (also "transformer." + name for GPT-2); NULL if absent. */
static const struct sft_tensor *find_for(const struct sft_file *f, const struct exec_model *m,
                                         const char *name)
{
    const struct sft_tensor *t = sft_find(f, name);
    if (!t && m->desc.arch == MODEL_ARCH_GPT2) {
        char nm[128];
        snprintf(nm, sizeof(nm), "transformer.%s", name);
        t = sft_find(f, nm);
    }
    return t;
}

static bool same_shape(const struct sft_tensor *ft, int nd, const int64_t *shape)
{
    if (ft->ndim != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (ft->shape[i] != shape[i])
            return false;
    return true;
}

static int shape_error(const struct sft_file *f, const struct sft_tensor *ft, int nd,
                       const int64_t *shape, struct sw_err *err)
{
    char a[96] = "(", b[96] = "(";
    size_t la = 1, lb = 1;
    for (int i = 0; i < ft->ndim; i++)
        kv_append(a, sizeof(a), &la, "%s%" PRId64, i ? ", " : "", ft->shape[i]);
    kv_append(a, sizeof(a), &la, ")");
    for (int i = 0; i < nd; i++)
        kv_append(b, sizeof(b), &lb, "%s%" PRId64, i ? ", " : "", shape[i]);
    kv_append(b, sizeof(b), &lb, ")");
    return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                     "tensor '%s' has shape %s; this model's is %s", ft->name, a, b);
}

/* Copy tensor t of the model from file entry ft (already validated), through tmp when it is
 * transposed or not F32. A layer-gathered model (ZeRO-3) takes every tensor through tmp and
 * tmp2 (each as large as the largest tensor) and keeps its resident part and this rank's
 * shard of it (exec_model_write_weights). On a backend without host memory every tensor goes
 * through tmp (the largest tensor) and a transposed one through tmp2 as well, then is copied
 * to the device. */
static int load_tensor(const struct sft_file *f, const struct sft_tensor *ft,
                       struct exec_model *m, const struct exec_tensor *t, float *tmp,
                       float *tmp2, struct sw_err *err)
{
    bool tr = t->hf_transposed && t->ndim == 2;
    if (exec_model_layer_gather(m) && !t->is_lora) {
        int rc = sft_read_f32(f, ft, tr ? tmp : tmp2, t->numel, err);
        if (rc < 0)
            return rc;
        if (tr)
            transpose(tmp2, tmp, t->shape[1], t->shape[0]);
        exec_model_write_weights(m, t->region_off, tmp2, t->numel);
        return 0;
    }
    bool dev = on_device(m->be);
    size_t nb = t->numel * sizeof(float);
    if (tr) {
        int rc = sft_read_f32(f, ft, tmp, t->numel, err);
        if (rc < 0)
            return rc;
        transpose(dev ? tmp2 : t->data, tmp, t->shape[1], t->shape[0]);
        if (dev)
            write_buf(m->be, t->data, tmp2, nb);
        return 0;
    }
    if (!dev)
        return sft_read_f32(f, ft, t->data, t->numel, err);
    if (ft->dtype == SFT_F32 && sft_tensor_bytes(ft) == nb)
        return read_raw_to(f, ft, 0, m->be, t->data, nb, tmp, err);
    int rc = sft_read_f32(f, ft, tmp, t->numel, err);
    if (rc == 0)
        write_buf(m->be, t->data, tmp, nb);
    return rc;
}

/* load_tensor's buffers (floats): tmp for transposed tensors, for every tensor in gather mode
 * or on a device; tmp2 in gather mode (every tensor) or on a device (transposed ones).
 * SW_ENOMEM. */
static int load_bufs(const struct exec_model *m, float **tmp, float **tmp2, struct sw_err *err)
{
    size_t mx_all = 0, mx_tr = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        size_t n = m->tensors[i].numel;
        mx_all = n > mx_all ? n : mx_all;
        if (m->tensors[i].hf_transposed && n > mx_tr)
            mx_tr = n;
    }
    bool gather = exec_model_layer_gather(m), dev = on_device(m->be);
    size_t n1 = gather || dev ? mx_all : mx_tr, n2 = gather ? mx_all : dev ? mx_tr : 0;
    if (dev && n1 * sizeof(float) < CKPT_CHUNK_BYTES)
        n1 = CKPT_CHUNK_BYTES / sizeof(float); /* tmp is read_raw_to's chunk too */
    *tmp = *tmp2 = NULL;
    if (n1 && !(*tmp = sw_try_malloc(n1 * sizeof(float), "weight load buffer", err)))
        return SW_ENOMEM;
    if (n2 && !(*tmp2 = sw_try_malloc(n2 * sizeof(float), "weight load buffer", err))) {
        free(*tmp);
        *tmp = NULL;
        return SW_ENOMEM;
    }
    return 0;
}

static int hf_load_open(const struct sft_file *f, struct exec_model *m, struct sw_err *err)
{
    /* Pass 1: every base tensor present, float, with its HF shape. */
    for (int i = 0; i < m->n_tensors; i++) {
        const struct exec_tensor *t = &m->tensors[i];
        const struct sft_tensor *ft = find_for(f, m, t->name);
        if (!ft) {
            if (t->is_lora)
                continue;
            return sw_err_at(err, SW_ENOENT, sft_path(f), 0, 0,
                             "tensor '%s' is missing (a %s model with %d layers needs it)",
                             t->name, model_arch_name(m->desc.arch), m->L);
        }
        if (!sft_dtype_is_float(ft->dtype))
            return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                             "tensor '%s' has dtype %s; expected a float type", ft->name,
                             sft_dtype_name(ft->dtype));
        int64_t shape[2];
        int nd = hf_shape(t, shape);
        if (!same_shape(ft, nd, shape))
            return shape_error(f, ft, nd, shape, err);
    }
    /* Pass 2: read. */
    float *tmp = NULL, *tmp2 = NULL;
    int rc = load_bufs(m, &tmp, &tmp2, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const struct exec_tensor *t = &m->tensors[i];
        const struct sft_tensor *ft = find_for(f, m, t->name);
        if (ft)
            rc = load_tensor(f, ft, m, t, tmp, tmp2, err);
    }
    free(tmp);
    free(tmp2);
    exec_model_weights_changed(m);
    return rc;
}

int exec_hf_load_weights(const char *path, struct exec_model *m, struct sw_err *err)
{
    struct sft_file *f = NULL;
    int rc = sft_open(path, &f, err);
    if (rc < 0)
        return rc;
    rc = hf_load_open(f, m, err);
    sft_close(f);
    return rc;
}

/* Refuse a checkpoint of another model shape, naming every difference. */
static int check_shape(const struct sft_file *f, const struct exec_model *m, struct sw_err *err)
{
    char keys[N_SHAPE_KEYS][32], vals[N_SHAPE_KEYS][32];
    shape_pairs(m, keys, vals);
    char diff[400];
    size_t len = 0;
    diff[0] = '\0';
    int nd = 0;
    for (int i = 0; i < N_SHAPE_KEYS; i++) {
        const char *v = sft_meta_get(f, keys[i]);
        if (v && strcmp(v, vals[i]) == 0)
            continue;
        kv_append(diff, sizeof(diff), &len, "%s%s %s (checkpoint) vs %s (this model)",
                  nd ? ", " : "", keys[i] + 6, v ? v : "missing", vals[i]);
        nd++;
    }
    if (nd)
        return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                         "checkpoint holds a different model: %s", diff);
    return 0;
}

/* Pass 1 of a scalewise checkpoint: everything but the data. */
static int check_ckpt(const struct sft_file *f, const struct exec_model *m,
                      const struct exec_optimizer *o, const struct exec_optim_buf *bufs,
                      int n_bufs, const struct exec_ckpt_meta *expect, bool *with_optim,
                      struct sw_err *err)
{
    int64_t ver = 0;
    int rc = sft_meta_i64(f, "scalewise_checkpoint", 1, INT32_MAX, &ver, err);
    if (rc < 0)
        return rc;
    if (ver != EXEC_CKPT_VERSION)
        return sw_err_at(err, SW_EUNSUPPORTED, sft_path(f), 0, 0,
                         "checkpoint format version %" PRId64 "; this scalewise reads version %d",
                         ver, EXEC_CKPT_VERSION);
    if ((rc = check_shape(f, m, err)) < 0)
        return rc;
    const char *hash = sft_meta_get(f, "plan_hash");
    if (expect && expect->plan_hash[0] && hash && hash[0] && strcmp(hash, expect->plan_hash)) {
        const char *num = sft_meta_get(f, "plan_numerics");
        char diff[900];
        numerics_diff(num ? num : "", expect->numerics, diff, sizeof(diff));
        return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                         "checkpoint was written by a plan with other settings (plan hash %s, "
                         "this plan %s): %s",
                         hash, expect->plan_hash, diff);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const struct exec_tensor *t = &m->tensors[i];
        const struct sft_tensor *ft = sft_find(f, t->name);
        if (!ft)
            return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0, "tensor '%s' is missing",
                             t->name);
        int64_t shape[2];
        int nd = hf_shape(t, shape);
        if (ft->dtype != SFT_F32)
            return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0, "tensor '%s' is %s, not F32",
                             t->name, sft_dtype_name(ft->dtype));
        if (!same_shape(ft, nd, shape))
            return shape_error(f, ft, nd, shape, err);
    }
    const char *oname = sft_meta_get(f, "optimizer");
    *with_optim = false;
    if (o && oname && strcmp(oname, "none") != 0) {
        if (strcmp(oname, optimizer_name(o->cfg.kind)) != 0)
            return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                             "checkpoint holds '%s' optimizer state; this run uses '%s'", oname,
                             optimizer_name(o->cfg.kind));
        char nm[160];
        for (int i = 0; i < n_bufs; i++) {
            const struct exec_optim_buf *b = &bufs[i];
            snprintf(nm, sizeof(nm), "optim.%s", b->name);
            const struct sft_tensor *ft = sft_find(f, nm);
            if (!ft)
                return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0,
                                 "optimizer state '%s' is missing", nm);
            if (ft->dtype != b->dtype || ft->n_elems != b->n_elems)
                return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                                 "optimizer state '%s' is %s x %llu; this run's is %s x %llu", nm,
                                 sft_dtype_name(ft->dtype), (unsigned long long)ft->n_elems,
                                 sft_dtype_name(b->dtype), (unsigned long long)b->n_elems);
        }
        *with_optim = true;
    }
    return 0;
}

/* The checksum over every tensor of the file, as written. */
static int verify_checksum(const struct sft_file *f, struct sw_err *err)
{
    const char *want = sft_meta_get(f, "checksum");
    if (!want)
        return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0, "metadata 'checksum' is missing");
    /* Read CKPT_CHUNK_BYTES at a time (less for a small file): FNV-1a streams, so the
     * hash is the same as over each tensor whole. */
    uint64_t mx = 0;
    for (size_t i = 0; i < sft_count(f); i++)
        if (sft_tensor_bytes(sft_at(f, i)) > mx)
            mx = sft_tensor_bytes(sft_at(f, i));
    size_t chunk = mx < CKPT_CHUNK_BYTES ? (size_t)mx : CKPT_CHUNK_BYTES;
    void *buf = sw_try_malloc(chunk ? chunk : 1, "checkpoint checksum buffer", err);
    if (!buf)
        return SW_ENOMEM;
    uint64_t sum = 0;
    int rc = 0;
    for (size_t i = 0; i < sft_count(f) && rc == 0; i++) {
        const struct sft_tensor *t = sft_at(f, i);
        uint64_t nb = sft_tensor_bytes(t);
        uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, t->name, strlen(t->name));
        for (uint64_t at = 0; at < nb && rc == 0; at += chunk) {
            size_t n = nb - at < chunk ? (size_t)(nb - at) : chunk;
            rc = sft_read_raw_range(f, t, at, buf, n, err);
            h = data_fnv1a64(h, buf, n);
        }
        sum += h;
    }
    free(buf);
    if (rc < 0)
        return rc;
    char got[24];
    snprintf(got, sizeof(got), "%016" PRIx64, sum);
    if (strcmp(got, want) != 0)
        return sw_err_at(err, SW_EPARSE, sft_path(f), 0, 0,
                         "checkpoint is corrupt: checksum %s, expected %s", got, want);
    return 0;
}

static int load_extents(const struct sft_file *f, struct exec_optimizer *o,
                        const struct exec_optim_buf *full, int n_full, void *chunk,
                        struct sw_err *err);

int exec_checkpoint_load(const char *path, struct exec_model *m, struct exec_optimizer *o,
                         const struct exec_ckpt_meta *expect, struct exec_ckpt_meta *out,
                         enum exec_ckpt_kind *kind, struct sw_err *err)
{
    struct sft_file *f = NULL;
    int rc = sft_open(path, &f, err);
    if (rc < 0)
        return rc;
    struct exec_ckpt_meta got;
    exec_ckpt_meta_init(&got);
    if (!sft_meta_get(f, "scalewise_checkpoint")) {
        if (kind)
            *kind = EXEC_CKPT_HF;
        rc = hf_load_open(f, m, err);
        if (rc == 0 && out)
            *out = got;
        sft_close(f);
        return rc;
    }
    if (kind)
        *kind = EXEC_CKPT_SCALEWISE;
    bool with_optim = false;
    int64_t step = 0, ostep = 0;
    /* A sharded optimizer is checked against the unsharded layout the file holds. */
    struct exec_optim_buf *full = NULL;
    int n_full = 0;
    if (o && o->sharded && (rc = exec_optimizer_full_layout(m, &o->cfg, &full, &n_full, err)) < 0)
        goto out;
    const struct exec_optim_buf *bufs = full ? full : o ? o->bufs : NULL;
    int n_bufs = full ? n_full : o ? o->n_bufs : 0;
    rc = check_ckpt(f, m, o, bufs, n_bufs, expect, &with_optim, err);
    if (rc == 0)
        rc = sft_meta_i64(f, "step", 0, INT64_MAX, &step, err);
    if (rc == 0)
        rc = sft_meta_i64(f, "optim_step", 0, INT64_MAX, &ostep, err);
    if (rc == 0)
        rc = meta_u64(f, "seed", &got.seed, err);
    if (rc == 0)
        rc = meta_u64(f, "data_offset", &got.data_offset, err);
    if (rc == 0 && sft_meta_get(f, "loss_scale"))
        rc = meta_loss_scale(f, &got, err);
    if (rc == 0)
        rc = verify_checksum(f, err);
    if (rc < 0)
        goto out;
    got.step = step;
    const char *h = sft_meta_get(f, "plan_hash");
    const char *num = sft_meta_get(f, "plan_numerics");
    sw_strlcpy(got.plan_hash, h ? h : "", sizeof(got.plan_hash));
    sw_strlcpy(got.numerics, num ? num : "", sizeof(got.numerics));

    /* Pass 2: data. */
    float *tmp = NULL, *tmp2 = NULL;
    if ((rc = load_bufs(m, &tmp, &tmp2, err)) < 0)
        goto out;
    for (int i = 0; i < m->n_tensors && rc == 0; i++)
        rc = load_tensor(f, sft_find(f, m->tensors[i].name), m, &m->tensors[i], tmp, tmp2, err);
    free(tmp);
    free(tmp2);
    char nm[160];
    void *chunk = NULL;
    if (with_optim && rc == 0)
        rc = device_chunk(m->be, &chunk, err);
    if (with_optim && rc == 0 && full)
        rc = load_extents(f, o, full, n_full, chunk, err);
    for (int i = 0; with_optim && !full && i < o->n_bufs && rc == 0; i++) {
        const struct exec_optim_buf *b = &o->bufs[i];
        snprintf(nm, sizeof(nm), "optim.%s", b->name);
        const struct sft_tensor *ft = sft_find(f, nm);
        rc = read_raw_to(f, ft, 0, m->be, b->data, (size_t)sft_tensor_bytes(ft), chunk, err);
    }
    free(chunk);
    if (with_optim && rc == 0)
        o->step = ostep;
    exec_model_weights_changed(m);
    if (o)
        exec_optimizer_sync_params(o);
    if (rc == 0 && out)
        *out = got;
out:
    free(full);
    sft_close(f);
    return rc;
}

/* ---------------------------------------------------------------- optimizer shards */

/* A sharded optimizer's bytes out of a checkpoint's unsharded buffers: each extent is read
 * straight from its range of the file (check_ckpt checked every buffer's size, and extents lie
 * inside their buffer by construction), so no temporary is needed. */
static int load_extents(const struct sft_file *f, struct exec_optimizer *o,
                        const struct exec_optim_buf *full, int n_full, void *chunk,
                        struct sw_err *err)
{
    char nm[160];
    int rc = 0;
    for (int i = 0; i < o->n_ext && rc == 0; i++) {
        const struct exec_optim_extent *e = &o->ext[i];
        if (e->bytes == 0)
            continue;
        SW_ASSERT(e->buf >= 0 && e->buf < n_full);
        snprintf(nm, sizeof(nm), "optim.%s", full[e->buf].name);
        const struct sft_tensor *ft = sft_find(f, nm);
        SW_ASSERT(ft != NULL);
        rc = read_raw_to(f, ft, e->off_bytes, o->model->be, e->data, (size_t)e->bytes, chunk,
                         err);
    }
    return rc;
}

int exec_checkpoint_load_shard(const char *path, struct exec_optimizer *o,
                               const struct exec_ckpt_meta *expect, int rank, int world,
                               struct sw_err *err)
{
    struct sft_file *f = NULL;
    int rc = sft_open(path, &f, err);
    if (rc < 0)
        return rc;
    int64_t ver = 0, r = 0, wsz = 0, lo = 0, hi = 0, step = 0, ostep = 0;
    if ((rc = sft_meta_i64(f, "scalewise_optim_shard", 1, INT32_MAX, &ver, err)) < 0 ||
        (rc = sft_meta_i64(f, "rank", 0, INT32_MAX, &r, err)) < 0 ||
        (rc = sft_meta_i64(f, "world", 1, INT32_MAX, &wsz, err)) < 0 ||
        (rc = sft_meta_i64(f, "lo", 0, INT64_MAX, &lo, err)) < 0 ||
        (rc = sft_meta_i64(f, "hi", 0, INT64_MAX, &hi, err)) < 0 ||
        (rc = sft_meta_i64(f, "step", 0, INT64_MAX, &step, err)) < 0 ||
        (rc = sft_meta_i64(f, "optim_step", 0, INT64_MAX, &ostep, err)) < 0)
        goto out;
    const char *oname = sft_meta_get(f, "optimizer"), *hash = sft_meta_get(f, "plan_hash");
    if (ver != EXEC_CKPT_VERSION || r != rank || wsz != world || (uint64_t)lo != o->lo ||
        (uint64_t)hi != o->hi || step != expect->step || !oname ||
        strcmp(oname, optimizer_name(o->cfg.kind)) != 0 ||
        (expect->plan_hash[0] && (!hash || strcmp(hash, expect->plan_hash) != 0))) {
        rc = sw_err_at(err, SW_EINVAL, path, 0, 0,
                       "optimizer shard is rank %" PRId64 " of %" PRId64 ", elements [%" PRId64
                       ", %" PRId64 ") at step %" PRId64 " (%s); this rank needs rank %d of %d, "
                       "[%zu, %zu) at step %" PRId64 " (%s)",
                       r, wsz, lo, hi, step, oname ? oname : "?", rank, world, o->lo, o->hi,
                       expect->step, optimizer_name(o->cfg.kind));
        goto out;
    }
    char nm[160];
    for (int i = 0; i < o->n_bufs && rc == 0; i++) {
        const struct exec_optim_buf *b = &o->bufs[i];
        snprintf(nm, sizeof(nm), "optim.%s", b->name);
        const struct sft_tensor *ft = sft_find(f, nm);
        if (!ft || ft->dtype != b->dtype || ft->n_elems != b->n_elems)
            rc = sw_err_at(err, SW_EINVAL, path, 0, 0, "optimizer shard '%s' is %s", nm,
                           ft ? "of another size" : "missing");
    }
    if (rc == 0)
        rc = verify_checksum(f, err);
    void *chunk = NULL;
    if (rc == 0)
        rc = device_chunk(o->model->be, &chunk, err);
    for (int i = 0; i < o->n_bufs && rc == 0; i++) {
        const struct exec_optim_buf *b = &o->bufs[i];
        snprintf(nm, sizeof(nm), "optim.%s", b->name);
        const struct sft_tensor *ft = sft_find(f, nm);
        rc = read_raw_to(f, ft, 0, o->model->be, b->data, (size_t)sft_tensor_bytes(ft), chunk,
                         err);
    }
    free(chunk);
    if (rc == 0)
        o->step = ostep;
out:
    sft_close(f);
    return rc;
}
