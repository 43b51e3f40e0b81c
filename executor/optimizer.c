/* The optimizers of the training loop over the model's one contiguous trainable region
 * (m->train_params / m->train_grads), the learning-rate schedules and global gradient
 * clipping. The update arithmetic is the backend's (kcpu_*_step in kernels/cpu/optim.c and
 * adam8bit.c); this file decides what state exists, where it lives and which parts of the
 * region each call covers.
 *
 * Weight decay applies to tensors of two or more dimensions only (linear weights, embeddings,
 * LoRA matrices), never to biases and norm weights (the GPT-2 / nanoGPT / llm.c rule). The
 * region is therefore split into "segments": maximal runs of the region, in address order,
 * whose tensors share one decay setting; the element-wise optimizers make one backend call
 * per segment with that segment's decay. Parts of the region outside every tensor (alignment
 * gaps, padded vocabulary rows) join the segment they sit in; their gradient is always zero,
 * so every optimizer leaves them at zero.
 *
 * State (one backend allocation, category optimizer, zeroed at init):
 *   AdamW        m, v: fp32 over the whole region (8 bytes/param, strategy reference 3.1)
 *   SGD          none;  SGD-momentum: one fp32 buffer (4 bytes/param; momentum = beta1)
 *   Lion         m: fp32 (4 bytes/param)
 *   8-bit AdamW  one kcpu_adamw8bit_state_bytes(n) block per segment (≈ 2 bytes/param)
 *   Adafactor    per trainable tensor: factored row/column statistics for a matrix,
 *                4·(rows + cols) bytes; a vector keeps its full second moment, 4 bytes per
 *                element; no first moment (HF's default beta1=None, which the advisor counts)
 * Each buffer gets a name for checkpoints (struct exec_optim_buf). Nothing is allocated per
 * step.
 *
 * ZeRO (docs/distributed.md): a sharded optimizer covers only [lo, hi) of the region, the cuts
 * of exec_optimizer_shard_cuts (advisor_zero_cut_adam8 for 8-bit AdamW, so every 8-bit piece
 * starts on a block boundary of its run and keeps the run's 8-bit mode: the update is exactly
 * the unsharded one). Its segments are the full segments cut to [lo, hi); its state exists for
 * those elements only. Each state buffer also says where its bytes sit in the FULL layout's
 * buffers (struct exec_optim_extent; 8-bit pieces map to four extents: m codes, v codes, m
 * absmax, v absmax), which is how checkpoint.c consolidates the ranks' shards into one normal
 * checkpoint and loads a normal checkpoint into any shard. Adafactor's state is per tensor and
 * under 1% of the weights: it is not sharded (exec_optimizer_shard_cuts refuses it). */
#include "executor/executor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct exec_optim_seg {
    size_t off, n;      /* floats into the trainable region */
    bool decay;         /* weight decay applies */
    size_t state_off;   /* 8-bit AdamW: bytes into the state */
    size_t state_bytes; /* 8-bit AdamW: this segment's block */
    int full;           /* index of the unsharded segment it is part of */
    size_t rel;         /* off - that segment's off */
};

struct exec_optim_factor {
    int tensor;         /* index into model->tensors */
    size_t off;         /* floats into the trainable region */
    int rows, cols;     /* a vector is rows = numel, cols = 1 */
    bool decay;
    size_t row_off;     /* floats into the state */
    size_t col_off;     /* floats into the state (unused when unfactored) */
    size_t row_n, col_n;
};

/* Adafactor constants (HF transformers' defaults, kernels_cpu.h). */
#define ADAFACTOR_DECAY_RATE (-0.8f)
#define ADAFACTOR_EPS1 1e-30f
#define ADAFACTOR_CLIP 1.0f

void exec_optim_config_init(struct exec_optim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = OPT_ADAMW;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->weight_decay = 0.1;
}

/* ---------------------------------------------------------------- layout */

/* Trainable tensors sorted by their offset in the region. */
struct tref {
    int index;
    size_t off, n;
    bool decay;
};

static int cmp_tref(const void *a, const void *b)
{
    const struct tref *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : 0;
}

/* The trainable tensors of m in region order (caller frees). */
static struct tref *trainable_tensors(const struct exec_model *m, int *count)
{
    struct tref *r = sw_xcalloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), sizeof(*r));
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct exec_tensor *t = &m->tensors[i];
        if (!t->trainable)
            continue;
        /* region_off is into the trainable region: the base, or the adapters under LoRA. */
        SW_ASSERT(t->region_off + t->numel <= m->n_train);
        r[n].index = i;
        r[n].off = t->region_off;
        r[n].n = t->numel;
        r[n].decay = t->ndim >= 2;
        n++;
    }
    qsort(r, (size_t)n, sizeof(*r), cmp_tref);
    *count = n;
    return r;
}

/* Segments: runs of one decay setting covering [0, n_train). Returns the count; fills seg
 * when not NULL (call once with NULL to size it). */
static int build_segments(const struct exec_model *m, const struct tref *tr, int n_tr,
                          struct exec_optim_seg *seg)
{
    int n = 0;
    size_t start = 0;
    bool decay = n_tr > 0 ? tr[0].decay : false;
    for (int i = 1; i < n_tr; i++) {
        if (tr[i].decay == decay)
            continue;
        if (seg) {
            memset(&seg[n], 0, sizeof(seg[n]));
            seg[n].off = start;
            seg[n].n = tr[i].off - start;
            seg[n].decay = decay;
            seg[n].full = n;
        }
        n++;
        start = tr[i].off;
        decay = tr[i].decay;
    }
    if (seg) {
        memset(&seg[n], 0, sizeof(seg[n]));
        seg[n].off = start;
        seg[n].n = m->n_train - start;
        seg[n].decay = decay;
        seg[n].full = n;
    }
    return n + 1;
}

/* The full segments of the whole region (caller frees). */
static struct exec_optim_seg *full_segments(const struct exec_model *m, int *count)
{
    int n_tr;
    struct tref *tr = trainable_tensors(m, &n_tr);
    int n = build_segments(m, tr, n_tr, NULL);
    struct exec_optim_seg *seg = sw_xcalloc((size_t)n, sizeof(*seg));
    build_segments(m, tr, n_tr, seg);
    free(tr);
    *count = n;
    return seg;
}

/* The full segments cut to [lo, hi) into seg (when not NULL); returns the count. */
static int cut_segments(const struct exec_optim_seg *full, int n_full, size_t lo, size_t hi,
                        struct exec_optim_seg *seg)
{
    int n = 0;
    for (int i = 0; i < n_full; i++) {
        size_t a = full[i].off > lo ? full[i].off : lo;
        size_t end = full[i].off + full[i].n;
        size_t b = end < hi ? end : hi;
        if (a >= b)
            continue;
        if (seg) {
            seg[n] = full[i];
            seg[n].off = a;
            seg[n].n = b - a;
            seg[n].full = i;
            seg[n].rel = a - full[i].off;
            seg[n].state_off = seg[n].state_bytes = 0;
        }
        n++;
    }
    return n;
}

/* Bytes of state for kind over `n` elements of the region in segments/tensors; fills state
 * offsets when seg/fac are given. */
static uint64_t layout_state(const struct exec_model *m, enum sw_optimizer kind, size_t n,
                             const struct tref *tr, int n_tr, struct exec_optim_seg *seg,
                             int n_seg, struct exec_optim_factor *fac)
{
    const struct backend *be = m->be;
    uint64_t bytes = 0;
    switch (kind) {
    case OPT_ADAMW:
        return 8ull * n;
    case OPT_SGD:
        return 0;
    case OPT_SGD_MOMENTUM:
    case OPT_LION:
        return 4ull * n;
    case OPT_ADAMW8BIT:
        for (int i = 0; i < n_seg; i++) {
            size_t b = be->adamw8bit_state_bytes(seg[i].n);
            b = (b + 63u) & ~(size_t)63u; /* each block 64-byte aligned (4-byte is required) */
            seg[i].state_off = (size_t)bytes;
            seg[i].state_bytes = b;
            bytes += b;
        }
        return bytes;
    case OPT_ADAFACTOR: {
        size_t floats = 0;
        for (int i = 0; i < n_tr; i++) {
            const struct exec_tensor *t = &m->tensors[tr[i].index];
            int rows = t->ndim >= 2 ? (int)t->shape[0] : (int)t->numel;
            int cols = t->ndim >= 2 ? (int)t->shape[1] : 1;
            size_t rn = be->adafactor_row_floats(rows, cols);
            size_t cn = be->adafactor_col_floats(rows, cols);
            if (fac) {
                fac[i].tensor = tr[i].index;
                fac[i].off = tr[i].off;
                fac[i].rows = rows;
                fac[i].cols = cols;
                fac[i].decay = tr[i].decay;
                fac[i].row_off = floats;
                fac[i].row_n = rn;
                fac[i].col_off = floats + rn;
                fac[i].col_n = cn;
            }
            floats += rn + cn;
        }
        return 4ull * floats;
    }
    }
    return 0;
}

int exec_optimizer_plan_bytes(const struct exec_model *m, enum sw_optimizer kind, uint64_t *out,
                              struct sw_err *err)
{
    if (!m->opts.training || m->n_train == 0)
        return sw_errf(err, SW_EINVAL, "the model has no trainable parameters (built for "
                                       "inference?)");
    int n_tr;
    struct tref *tr = trainable_tensors(m, &n_tr);
    int n_seg;
    struct exec_optim_seg *seg = full_segments(m, &n_seg);
    *out = layout_state(m, kind, m->n_train, tr, n_tr, seg, n_seg, NULL);
    free(seg);
    free(tr);
    return 0;
}

int exec_optimizer_shard_cuts(const struct exec_model *m, enum sw_optimizer kind, int world,
                              size_t *cuts, struct sw_err *err)
{
    if (world < 1)
        return sw_errf(err, SW_EINVAL, "world size %d must be at least 1", world);
    if (!m->opts.training || m->n_train == 0)
        return sw_errf(err, SW_EINVAL, "the model has no trainable parameters (built for "
                                       "inference?)");
    if (kind == OPT_ADAFACTOR && world > 1)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "ZeRO does not shard adafactor: its factored state is per tensor and "
                       "under 1%% of the weights; use zero 0 (plain data parallelism) or "
                       "another optimizer");
    size_t n = m->n_train, slot = (n + (size_t)world - 1) / (size_t)world;
    int n_seg = 0;
    struct exec_optim_seg *seg = kind == OPT_ADAMW8BIT ? full_segments(m, &n_seg) : NULL;
    cuts[0] = 0;
    int k = 0;
    for (int r = 1; r < world; r++) {
        size_t t = (size_t)r * slot < n ? (size_t)r * slot : n;
        if (seg && t < n) {
            while (k + 1 < n_seg && seg[k].off + seg[k].n <= t)
                k++;
            t = (size_t)advisor_zero_cut_adam8(t, seg[k].off, seg[k].n, slot);
        }
        cuts[r] = t;
    }
    cuts[world] = n;
    free(seg);
    return 0;
}

/* ---------------------------------------------------------------- init / release */

static void add_buf(struct exec_optimizer *o, int *cap, const char *name, enum sft_dtype dt,
                    uint64_t n, void *data)
{
    if (o->n_bufs == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        o->bufs = sw_xrealloc(o->bufs, (size_t)*cap * sizeof(*o->bufs));
    }
    struct exec_optim_buf *b = &o->bufs[o->n_bufs++];
    memset(b, 0, sizeof(*b));
    sw_strlcpy(b->name, name, sizeof(b->name));
    b->dtype = dt;
    b->n_elems = n;
    b->data = data;
}

static void add_ext(struct exec_optimizer *o, int *cap, int buf, uint64_t off_bytes,
                    uint64_t bytes, void *data)
{
    if (o->n_ext == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        o->ext = sw_xrealloc(o->ext, (size_t)*cap * sizeof(*o->ext));
    }
    o->ext[o->n_ext++] = (struct exec_optim_extent){buf, off_bytes, bytes, data};
}

/* base + bytes, or NULL for a dry layout (no state). */
static void *at(void *base, size_t bytes)
{
    return base ? (char *)base + bytes : NULL;
}

static int check_config(const struct exec_optim_config *c, struct sw_err *err)
{
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return sw_errf(err, SW_EINVAL, "optimizer betas %g, %g must be in [0, 1)", c->beta1,
                       c->beta2);
    if (!(c->eps > 0))
        return sw_errf(err, SW_EINVAL, "optimizer eps %g must be positive", c->eps);
    if (!(c->weight_decay >= 0))
        return sw_errf(err, SW_EINVAL, "weight decay %g must be >= 0", c->weight_decay);
    switch (c->kind) {
    case OPT_ADAMW:
    case OPT_ADAMW8BIT:
    case OPT_ADAFACTOR:
    case OPT_SGD:
    case OPT_SGD_MOMENTUM:
    case OPT_LION:
        return 0;
    }
    return sw_errf(err, SW_EINVAL, "unknown optimizer %d", (int)c->kind);
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* The extents of one 8-bit piece (kcpu_adamw8bit layout: m codes, v codes, padding to 4
 * bytes, m absmax, v absmax; fp32 m then v under ADVISOR_ADAM8_MIN_N elements) inside the
 * state of its whole segment of `full_n` elements. */
static void adam8_extents(struct exec_optimizer *o, int *cap, const struct exec_optim_seg *s,
                          size_t full_n, void *data)
{
    const struct backend *be = o->model->be;
    if (s->rel == 0 && s->n == full_n) {
        add_ext(o, cap, s->full, 0, be->adamw8bit_state_bytes(s->n), data);
        return;
    }
    const size_t B = ADVISOR_ADAM8_BLOCK;
    size_t len = s->n, nb = (len + B - 1) / B, nb_full = (full_n + B - 1) / B;
    /* The cut rule keeps every partial piece block-aligned and in 8-bit mode. */
    SW_ASSERT(s->rel % B == 0 && len >= ADVISOR_ADAM8_MIN_N);
    SW_ASSERT(be->adamw8bit_state_bytes(len) == pad4(2 * len) + 8 * nb);
    size_t cf = pad4(2 * full_n), cp = pad4(2 * len), blk = s->rel / B;
    add_ext(o, cap, s->full, s->rel, len, data);
    add_ext(o, cap, s->full, full_n + s->rel, len, at(data, len));
    add_ext(o, cap, s->full, cf + 4 * blk, 4 * nb, at(data, cp));
    add_ext(o, cap, s->full, cf + 4 * nb_full + 4 * blk, 4 * nb, at(data, cp + 4 * nb));
}

/* Build an optimizer over [lo, hi) of m's region (sharded: one rank's part of a ZeRO run, even
 * when [lo, hi) happens to be the whole region or empty). dry:
 * layout, buffers and extents only (data pointers NULL), nothing allocated through m->be.
 * param_be (not dry, may be NULL): keep an own copy of the shard's parameters allocated there
 * (category weights). */
static int build(struct exec_optimizer *o, struct exec_model *m, const struct exec_optim_config *c,
                 size_t lo, size_t hi, bool sharded, bool dry, const struct backend *param_be,
                 struct sw_err *err)
{
    memset(o, 0, sizeof(*o));
    int rc = check_config(c, err);
    if (rc < 0)
        return rc;
    if (!m->opts.training || m->n_train == 0)
        return sw_errf(err, SW_EINVAL, "the model has no trainable parameters (built for "
                                       "inference?)");
    if (lo > hi || hi > m->n_train)
        return sw_errf(err, SW_EINVAL, "shard [%zu, %zu) is outside the %zu trainable elements",
                       lo, hi, m->n_train);
    if (sharded && c->kind == OPT_ADAFACTOR)
        return sw_errf(err, SW_EUNSUPPORTED, "adafactor state is per tensor and is not sharded");
    o->cfg = *c;
    o->model = m;
    o->lo = lo;
    o->hi = hi;
    o->sharded = sharded;
    size_t len = hi - lo;
    int n_tr, n_full;
    struct tref *tr = trainable_tensors(m, &n_tr);
    struct exec_optim_seg *full = full_segments(m, &n_full);
    o->n_seg = cut_segments(full, n_full, lo, hi, NULL);
    o->seg = sw_xcalloc((size_t)(o->n_seg > 0 ? o->n_seg : 1), sizeof(*o->seg));
    cut_segments(full, n_full, lo, hi, o->seg);
    if (c->kind == OPT_ADAFACTOR) {
        o->n_factor = n_tr;
        o->factor = sw_xcalloc((size_t)(n_tr > 0 ? n_tr : 1), sizeof(*o->factor));
    }
    o->state_bytes = layout_state(m, c->kind, len, tr, n_tr, o->seg, o->n_seg, o->factor);
    free(tr);
    if (!dry && c->kind != OPT_ADAFACTOR && m->be->optim_step_segments && o->n_seg > 0) {
        o->bseg = sw_xcalloc((size_t)o->n_seg, sizeof(*o->bseg));
        for (int i = 0; i < o->n_seg; i++) {
            const struct exec_optim_seg *s = &o->seg[i];
            o->bseg[i].off = s->off - lo;
            o->bseg[i].n = s->n;
            o->bseg[i].state_off = s->state_off;
            o->bseg[i].weight_decay = s->decay ? (float)c->weight_decay : 0.0f;
        }
    }
    if (!dry && o->state_bytes > 0) {
        o->state = m->be->alloc((size_t)o->state_bytes, BACKEND_MEM_OPTIMIZER, err);
        if (!o->state) {
            free(full);
            exec_optimizer_release(o);
            return SW_ENOMEM;
        }
        m->be->memset(o->state, 0, (size_t)o->state_bytes);
    }
    /* A layer-gathered model (ZeRO-3) has no region of every weight: the shard is the
     * optimizer's own, and the model writes into it (exec_model_set_weight_shard). */
    o->params = m->train_params ? m->train_params + lo : NULL;
    o->grads = m->train_grads ? m->train_grads + lo : NULL;
    /* Sharded gradients (ZeRO-2/3): the shard's gradients are the optimizer's own buffer,
     * where the training loop adds each micro-batch's reduced gradients. */
    if (!dry && exec_model_grads_sharded(m)) {
        if (!sharded) {
            free(full);
            exec_optimizer_release(o);
            return sw_errf(err, SW_EINVAL, "a model with sharded gradients needs a sharded "
                                           "optimizer (ZeRO-2/3)");
        }
        o->grads = m->be->alloc(len * sizeof(float), BACKEND_MEM_GRADIENTS, err);
        if (!o->grads) {
            free(full);
            exec_optimizer_release(o);
            return SW_ENOMEM;
        }
        o->own_grads = true;
        m->be->memset(o->grads, 0, len * sizeof(float));
    }
    if (!dry && !param_be && !m->train_params) {
        free(full);
        exec_optimizer_release(o);
        return sw_errf(err, SW_EINVAL, "a layer-gathered model needs an optimizer that owns its "
                                       "parameter shard (ZeRO-3)");
    }
    if (!dry && param_be) {
        o->params = param_be->alloc(len * sizeof(float), BACKEND_MEM_WEIGHTS, err);
        if (!o->params) {
            free(full);
            exec_optimizer_release(o);
            return SW_ENOMEM;
        }
        o->param_be = param_be;
        if (m->train_params)
            param_be->memcpy(o->params, m->train_params + lo, len * sizeof(float), BACKEND_D2D);
        else
            param_be->memset(o->params, 0, len * sizeof(float));
        if (exec_model_layer_gather(m))
            exec_model_set_weight_shard(m, o->params, lo, hi);
    }

    int cap = 0, ecap = 0;
    void *st = o->state;
    char nm[112];
    switch (c->kind) {
    case OPT_ADAMW:
        add_buf(o, &cap, "m", SFT_F32, len, st);
        add_buf(o, &cap, "v", SFT_F32, len, at(st, 4 * len));
        add_ext(o, &ecap, 0, 4 * lo, 4 * len, st);
        add_ext(o, &ecap, 1, 4 * lo, 4 * len, at(st, 4 * len));
        break;
    case OPT_SGD_MOMENTUM:
        add_buf(o, &cap, "momentum", SFT_F32, len, st);
        add_ext(o, &ecap, 0, 4 * lo, 4 * len, st);
        break;
    case OPT_LION:
        add_buf(o, &cap, "m", SFT_F32, len, st);
        add_ext(o, &ecap, 0, 4 * lo, 4 * len, st);
        break;
    case OPT_ADAMW8BIT:
        for (int i = 0; i < o->n_seg; i++) {
            const struct exec_optim_seg *sg = &o->seg[i];
            snprintf(nm, sizeof(nm), "adam8.%d", sg->full);
            void *d = at(st, sg->state_off);
            add_buf(o, &cap, nm, SFT_U8, sg->state_bytes, d);
            adam8_extents(o, &ecap, sg, full[sg->full].n, d);
        }
        break;
    case OPT_ADAFACTOR:
        for (int i = 0; i < o->n_factor; i++) {
            const struct exec_optim_factor *f = &o->factor[i];
            const char *tn = m->tensors[f->tensor].name;
            snprintf(nm, sizeof(nm), "%s.row", tn);
            add_buf(o, &cap, nm, SFT_F32, f->row_n, at(st, 4 * f->row_off));
            if (f->col_n) {
                snprintf(nm, sizeof(nm), "%s.col", tn);
                add_buf(o, &cap, nm, SFT_F32, f->col_n, at(st, 4 * f->col_off));
            }
        }
        for (int i = 0; i < o->n_bufs; i++)
            add_ext(o, &ecap, i, 0, o->bufs[i].n_elems * 4, o->bufs[i].data);
        break;
    case OPT_SGD:
        break;
    }
    free(full);
    return 0;
}

int exec_optimizer_init(struct exec_optimizer *o, struct exec_model *m,
                        const struct exec_optim_config *c, struct sw_err *err)
{
    return build(o, m, c, 0, m->n_train, false, false, NULL, err);
}

int exec_optimizer_init_shard(struct exec_optimizer *o, struct exec_model *m,
                              const struct exec_optim_config *c, size_t lo, size_t hi,
                              const struct backend *param_be, struct sw_err *err)
{
    return build(o, m, c, lo, hi, true, false, param_be, err);
}

int exec_optimizer_full_layout(struct exec_model *m, const struct exec_optim_config *c,
                               struct exec_optim_buf **bufs, int *n_bufs, struct sw_err *err)
{
    struct exec_optimizer o;
    *bufs = NULL;
    *n_bufs = 0;
    int rc = build(&o, m, c, 0, m->n_train, false, true, NULL, err);
    if (rc < 0)
        return rc;
    *bufs = o.bufs;
    *n_bufs = o.n_bufs;
    o.bufs = NULL;
    exec_optimizer_release(&o);
    return 0;
}

void exec_optimizer_release(struct exec_optimizer *o)
{
    if (o->state && o->model)
        o->model->be->free(o->state);
    if (o->param_be && o->model && exec_model_layer_gather(o->model))
        exec_model_set_weight_shard(o->model, NULL, 0, 0);
    if (o->param_be)
        o->param_be->free(o->params);
    if (o->own_grads && o->model)
        o->model->be->free(o->grads);
    free(o->seg);
    free(o->bseg);
    free(o->factor);
    free(o->bufs);
    free(o->ext);
    memset(o, 0, sizeof(*o));
}

void exec_optimizer_reset(struct exec_optimizer *o)
{
    if (o->state)
        o->model->be->memset(o->state, 0, (size_t)o->state_bytes);
    o->step = 0;
}

void exec_optimizer_sync_params(struct exec_optimizer *o)
{
    /* A layer-gathered model wrote its loads into the shard already. */
    if (o->param_be && o->hi > o->lo && o->model->train_params)
        o->param_be->memcpy(o->params, o->model->train_params + o->lo,
                            (o->hi - o->lo) * sizeof(float), BACKEND_D2D);
}

/* ---------------------------------------------------------------- step */

double exec_optimizer_clip(struct exec_optimizer *o, double max_norm)
{
    const struct exec_model *m = o->model;
    return m->be->clip_grad_norm(m->train_grads, m->n_train, max_norm);
}

void exec_optimizer_step(struct exec_optimizer *o, double lr_d)
{
    struct exec_model *m = o->model;
    const struct backend *be = m->be;
    const struct exec_optim_config *c = &o->cfg;
    float lr = (float)lr_d, b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float wd = (float)c->weight_decay;
    int step = (int)(o->step + 1); /* the kernels' 1-based step (bias correction) */
    /* Element i of the region is P[i - lo], G[i - lo]; element-wise state likewise. */
    float *P = o->params, *G = o->grads, *S = o->state;
    size_t n = o->hi - o->lo, lo = o->lo;

    if (c->kind == OPT_ADAFACTOR) {
        for (int i = 0; i < o->n_factor; i++) {
            const struct exec_optim_factor *f = &o->factor[i];
            be->adafactor_step(P + (f->off - lo), G + (f->off - lo), S + f->row_off,
                               f->col_n ? S + f->col_off : NULL, NULL, f->rows, f->cols, step, lr,
                               b1, ADAFACTOR_DECAY_RATE, ADAFACTOR_EPS1, ADAFACTOR_CLIP,
                               f->decay ? wd : 0.0f);
        }
    } else if (o->bseg) {
        /* One launch over the whole region (a GPU: 98 segments for GPT-2 were 98 launches). */
        static const enum backend_optim kinds[] = {
            [OPT_ADAMW] = BACKEND_OPTIM_ADAMW, [OPT_SGD] = BACKEND_OPTIM_SGD,
            [OPT_SGD_MOMENTUM] = BACKEND_OPTIM_SGD_MOMENTUM, [OPT_LION] = BACKEND_OPTIM_LION,
            [OPT_ADAMW8BIT] = BACKEND_OPTIM_ADAMW8BIT};
        be->optim_step_segments(kinds[c->kind], P, G, o->state, n, o->bseg, o->n_seg, step, lr,
                                b1, b2, eps);
    } else {
        for (int i = 0; i < o->n_seg; i++) {
            const struct exec_optim_seg *s = &o->seg[i];
            float swd = s->decay ? wd : 0.0f;
            size_t k = s->off - lo;
            float *p = P + k;
            const float *g = G + k;
            switch (c->kind) {
            case OPT_ADAMW:
                be->adamw_step(p, g, S + k, S + n + k, s->n, step, lr, b1, b2, eps, swd);
                break;
            case OPT_SGD:
                be->sgd_step(p, g, s->n, lr, swd);
                break;
            case OPT_SGD_MOMENTUM:
                be->sgd_momentum_step(p, g, S + k, s->n, lr, b1, swd, false);
                break;
            case OPT_LION:
                be->lion_step(p, g, S + k, s->n, lr, b1, b2, swd);
                break;
            case OPT_ADAMW8BIT:
                be->adamw8bit_step(p, g, (char *)o->state + s->state_off, s->n, step, lr, b1, b2,
                                   eps, swd);
                break;
            case OPT_ADAFACTOR:
                break;
            }
        }
    }
    o->step++;
    exec_model_weights_changed(m);
}

/* ---------------------------------------------------------------- schedule */

double exec_lr_at(const struct exec_lr *s, int64_t step)
{
    if (step < 0)
        step = 0;
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return s->lr * (double)(step + 1) / (double)s->warmup_steps;
    int64_t span = s->total_steps - s->warmup_steps;
    double r = (double)(step - s->warmup_steps) / (double)(span > 1 ? span : 1);
    if (r < 0)
        r = 0;
    if (r > 1)
        r = 1;
    switch (s->schedule) {
    case LR_COSINE:
        return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * r));
    case LR_LINEAR:
        return s->lr - (s->lr - s->min_lr) * r;
    case LR_CONSTANT:
        break;
    }
    return s->lr;
}
