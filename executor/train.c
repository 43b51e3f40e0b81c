/* The training loop of one process, alone or as one rank of a data-parallel run: per optimizer
 * step, this rank's rows of the global batch of that data step from the batch loader (data.c),
 * split into grad_accum micro-batches of micro_batch sequences, each run forward and backward
 * with grad_scale = 1/(grad_accum·world) so the summed gradients are those of the mean loss
 * over the whole global batch; then the gradient collectives of the data-parallel strategy,
 * the global gradient norm and clipping, the scheduled learning rate and the optimizer update
 * (optimizer.c). Evaluation runs the first eval_batches micro-batches of the validation shard
 * through forward only.
 *
 * Data parallelism (docs/distributed.md; strategy reference 3.2 and 7.2), through the
 * collectives of executor/comm.h on the model's buffers (staged through host memory when the
 * engine and the backend disagree: executor/comm_stage.c):
 *  - DDP (zero 0): the gradient region is all-reduced in place in EXEC_DP_BUCKET_BYTES buckets
 *    (fixed boundaries at multiples of the bucket size from the start of the region); every
 *    rank clips and updates the whole region with its own replica of the optimizer, so the
 *    replicas stay identical. With t->ddp_overlap (the default) each bucket is reduced during
 *    the last micro-batch's backward as soon as the model's gradient-ready hook says its
 *    layers are done, last bucket first (PyTorch DDP's order); without it, after the backward,
 *    first bucket first. Both reduce the same buckets with the same data, so the gradients are
 *    bitwise identical. The collectives of executor/comm.h block, so on the CPU this changes
 *    the schedule, not the step time: the ranks' OpenMP threads already use every core, and
 *    there is no second engine to move bytes meanwhile (docs/distributed.md, "Overlap").
 *  - ZeRO-1: the region is cut into per-rank shards (exec_optimizer_shard_cuts). After the last
 *    micro-batch the gradients are reduce-scattered: each round copies every rank's next chunk
 *    into a staging buffer of world equal slots (zero-padded: this is the region padded to a
 *    multiple of world) and reduce-scatters it, and the rank's summed chunk lands in its own
 *    slice of the gradient region. The rank clips with the global norm (squared shard norms
 *    all-gathered as doubles and summed in rank order, so every rank gets the same value),
 *    updates its shard, and the shards are all-gathered back into every rank's weights.
 *  - ZeRO-2: gradients are sharded too. The model keeps only the non-layer gradients and one
 *    layer buffer (exec_model_opts.shard_grads); during every micro-batch's backward, as soon
 *    as a layer's gradients are done the model hands them to take_grads, which reduces each
 *    owner's part of that range to its owner, who adds the sum into the optimizer's own
 *    gradient shard, the step's accumulator; the non-layer gradients follow after the
 *    embedding. Per-rank gradient memory is the shard plus the non-layer gradients and one
 *    layer.
 *  - ZeRO-3: as ZeRO-2, and the optimizer keeps the rank's fp32 master shard as its own
 *    buffer: the rank's weights. The model is layer-gathered (opts.layer_gather_bufs): it keeps
 *    only the non-layer weights (embeddings, final norm, an untied head) and two layer
 *    buffers, and its layer hook asks this loop for a layer before the layer runs in forward
 *    or backward (evaluation included). The layer's slice of the flat region may span several
 *    ranks' shards: each owner broadcasts its part of the slice. After an update the owners
 *    broadcast the non-layer weights the same way; layers are gathered again when next used.
 * Losses match one process on the same global batch up to the order of float sums.
 *
 * The optimizer step number is also the data step, and the loader is stateless given (seed,
 * step), so restoring the step of a checkpoint resumes the data exactly. The batch and staging
 * buffers are allocated once at init; a step allocates nothing. Checkpoints, metrics and the
 * plan are the business of checkpoint.c, metrics.c and run.c. */
#include "executor/executor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "executor/comm.h"

int exec_trainer_init(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                      const struct exec_train_config *c, const struct shard *train,
                      const struct shard *val, struct sw_err *err)
{
    return exec_trainer_init_dp(t, m, o, c, train, val, NULL, 0, err);
}

/* SCALEWISE_DDP_BUCKET_BYTES (a positive multiple of 4) and SCALEWISE_DDP_OVERLAP (0 or 1)
 * override the DDP schedule, for benchmarks and tests; every rank must see the same values. */
static int ddp_env(struct exec_trainer *t, struct sw_err *err)
{
    const char *v = getenv("SCALEWISE_DDP_BUCKET_BYTES");
    if (v && *v) {
        char *end = NULL;
        long long b = strtoll(v, &end, 10);
        if (*end || b < 4 || b % 4 || b > (1LL << 40))
            return sw_errf(err, SW_EINVAL,
                           "SCALEWISE_DDP_BUCKET_BYTES='%s': expected a positive multiple of 4 "
                           "bytes",
                           v);
        t->bucket = (size_t)b / sizeof(float);
    }
    v = getenv("SCALEWISE_DDP_OVERLAP");
    if (v && *v) {
        if (strcmp(v, "0") && strcmp(v, "1"))
            return sw_errf(err, SW_EINVAL, "SCALEWISE_DDP_OVERLAP='%s': expected 0 or 1", v);
        t->ddp_overlap = v[0] == '1';
    }
    return 0;
}

/* Rank q's part [*a, *b) of the region range [off, off + n) (empty when *a >= *b). */
static void owner_part(const struct exec_trainer *t, int q, size_t off, size_t n, size_t *a,
                       size_t *b)
{
    *a = t->cuts[q] > off ? t->cuts[q] : off;
    *b = t->cuts[q + 1] < off + n ? t->cuts[q + 1] : off + n;
}

/* ZeRO-3: elements [off, off + n) of the flat region into dst: each rank that owns part of
 * the range broadcasts that part from its shard. Collective. */
static int gather_range(struct exec_trainer *t, float *dst, size_t off, size_t n,
                        struct sw_err *err)
{
    const struct exec_optimizer *o = t->opt;
    for (int q = 0; q < t->world; q++) {
        size_t a, b;
        owner_part(t, q, off, n, &a, &b);
        if (a >= b)
            continue;
        if (q == t->rank)
            t->model->be->memcpy(dst + (a - off), o->params + (a - o->lo), (b - a) * sizeof(float),
                                 BACKEND_D2D);
        int rc = exec_stage_broadcast(&t->cs, dst + (a - off), (b - a) * sizeof(float), q, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The model's layer hook (exec_layer_fill_fn) under ZeRO-3. */
static int fill_layer(void *ctx, int layer, float *dst, size_t off, size_t n, struct sw_err *err)
{
    (void)layer;
    return gather_range(ctx, dst, off, n, err);
}

/* ZeRO-3 after an update: the non-layer weights, resident on every rank, from their owners. */
static int refresh_resident(struct exec_trainer *t, struct sw_err *err)
{
    struct exec_model *m = t->model;
    size_t lay_end = m->layer0_off + (size_t)m->L * m->layer_n;
    int rc = 0;
    if (m->layer0_off > 0)
        rc = gather_range(t, exec_model_resident(m, 0), 0, m->layer0_off, err);
    if (rc == 0 && lay_end < m->n_train)
        rc = gather_range(t, exec_model_resident(m, lay_end), lay_end, m->n_train - lay_end, err);
    exec_model_weights_changed(m);
    return rc;
}

/* ZeRO-2/3: the model's gradients of region elements [off, off + n), in src (its buffer):
 * every owner q of a part of the range receives the sum over ranks of that part (a reduce to
 * q, t->chunk elements at a time, into the staging buffer) and adds it to its gradient shard
 * (the optimizer's own buffer). Collective: every rank hands over the same ranges in the same
 * order, and the cuts are the same on every rank. */
static int take_grads(void *ctx, const float *src, size_t off, size_t n, struct sw_err *err)
{
    struct exec_trainer *t = ctx;
    const struct backend *be = t->model->be;
    const struct exec_optimizer *o = t->opt;
    for (int q = 0; q < t->world; q++) {
        size_t a, b;
        owner_part(t, q, off, n, &a, &b);
        for (size_t at = a; at < b; at += t->chunk) {
            size_t k = b - at < t->chunk ? b - at : t->chunk;
            float *recv = q == t->rank ? t->stage : NULL;
            int rc = exec_stage_reduce(&t->cs, src + (at - off), recv, k, q, err);
            t->grad_reduce_calls++;
            if (rc < 0)
                return rc;
            if (q == t->rank)
                be->axpy_2d(o->grads + (at - o->lo), (int)k, t->stage, (int)k, 1, (int)k, 1.0f);
        }
    }
    return 0;
}

/* ZeRO: the cuts, the staging buffer, and checks that o is this rank's shard. */
static int init_zero(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                     struct sw_err *err)
{
    int W = t->world;
    t->cuts = sw_xcalloc((size_t)W + 1, sizeof(*t->cuts));
    int rc = exec_optimizer_shard_cuts(m, o->cfg.kind, W, t->cuts, err);
    if (rc < 0)
        return rc;
    if (o->lo != t->cuts[t->rank] || o->hi != t->cuts[t->rank + 1])
        return sw_errf(err, SW_EINVAL,
                       "zero %d needs the optimizer of rank %d's shard [%zu, %zu); it covers "
                       "[%zu, %zu)",
                       t->zero, t->rank, t->cuts[t->rank], t->cuts[t->rank + 1], o->lo, o->hi);
    if (t->zero == 3 && !o->param_be)
        return sw_errf(err, SW_EINVAL, "zero 3 needs an optimizer that owns its parameter shard");
    if (t->zero == 3 && !exec_model_layer_gather(m))
        return sw_errf(err, SW_EINVAL,
                       "zero 3 needs a layer-gathered model (exec_model_opts.layer_gather_bufs)");
    if ((t->zero >= 2) != exec_model_grads_sharded(m))
        return sw_errf(err, SW_EINVAL,
                       "zero %d needs a model %s sharded gradients (exec_model_opts.shard_grads)",
                       t->zero, t->zero >= 2 ? "with" : "without");
    if (t->zero >= 2 && !o->own_grads)
        return sw_errf(err, SW_EINVAL, "zero %d needs an optimizer that owns its gradient shard",
                       t->zero);
    for (int r = 0; r < W; r++)
        if (t->cuts[r + 1] - t->cuts[r] > t->slot)
            t->slot = t->cuts[r + 1] - t->cuts[r];
    size_t per_rank = EXEC_DP_BUCKET_BYTES / sizeof(float) / (size_t)W;
    t->chunk = t->slot < per_rank ? t->slot : per_rank;
    if (t->chunk < 1)
        t->chunk = 1;
    t->stage = m->be->alloc(((size_t)W + 1) * t->chunk * sizeof(float), BACKEND_MEM_WORKSPACE, err);
    return t->stage ? 0 : SW_ENOMEM;
}

int exec_trainer_init_dp(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                         const struct exec_train_config *c, const struct shard *train,
                         const struct shard *val, struct comm *comm, int zero, struct sw_err *err)
{
    memset(t, 0, sizeof(*t));
    t->rank = comm ? comm->rank : 0;
    t->world = comm ? comm->world : 1;
    if (c->micro_batch < 1 || c->grad_accum < 1 || c->seq < 1)
        return sw_errf(err, SW_EINVAL,
                       "micro-batch %d, accumulation %d and sequence %d must be "
                       "at least 1",
                       c->micro_batch, c->grad_accum, c->seq);
    if (zero < 0 || zero > 3)
        return sw_errf(err, SW_EINVAL, "zero must be 0, 1, 2 or 3, got %d", zero);
    if (!m->opts.training || m->n_train == 0)
        return sw_errf(err, SW_EINVAL, "the model was not built for training");
    if (m->opts.batch < c->micro_batch || m->opts.seq < c->seq)
        return sw_errf(err, SW_EINVAL,
                       "the model takes micro-batches of at most %d x %d tokens; the loop needs "
                       "%d x %d",
                       m->opts.batch, m->opts.seq, c->micro_batch, c->seq);
    if (train->hdr.vocab_size > (uint32_t)m->V)
        return sw_errf(err, SW_EINVAL,
                       "the data's vocabulary (%u ids, %s) is larger than the model's (%d)",
                       train->hdr.vocab_size, train->path, m->V);
    int64_t B = (int64_t)c->micro_batch * c->grad_accum * t->world;
    int rc = loader_init(&t->train, train, B, c->seq, c->seed, t->rank, t->world, err);
    if (rc < 0)
        return rc;
    if (val && val->hdr.n_tokens > 0 && c->eval_batches > 0) {
        if (val->hdr.vocab_size > (uint32_t)m->V)
            return sw_errf(err, SW_EINVAL,
                           "the validation data's vocabulary (%u ids) is larger "
                           "than the model's (%d)",
                           val->hdr.vocab_size, m->V);
        rc = loader_init(&t->val, val, c->micro_batch, c->seq, c->seed, 0, 1, err);
        if (rc < 0)
            return rc;
        t->has_val = true;
    }
    t->model = m;
    t->opt = o;
    t->cfg = *c;
    if (c->loss_scale < 0 || !isfinite(c->loss_scale) || c->loss_scale_window < 0)
        return sw_errf(err, SW_EINVAL, "loss scale %g (window %lld): expected >= 0", c->loss_scale,
                       (long long)c->loss_scale_window);
    t->loss_scale = c->loss_scale;
    t->loss_scale_good = 0;
    t->skipped_steps = 0;
    t->comm = t->world > 1 ? comm : NULL;
    if (t->comm)
        exec_comm_stage_init(&t->cs, t->comm, m->be);
    t->zero = t->world > 1 ? zero : 0;
    t->ddp_overlap = true;
    t->bucket = EXEC_DP_BUCKET_BYTES / sizeof(float);
    if ((rc = ddp_env(t, err)) < 0) {
        exec_trainer_release(t);
        return rc;
    }
    if (t->world == 1 && o->sharded)
        return sw_errf(err, SW_EINVAL, "a sharded optimizer needs a data-parallel run");
    if (t->zero > 0 && (rc = init_zero(t, m, o, err)) < 0) {
        exec_trainer_release(t);
        return rc;
    }
    if (t->zero == 0 && o->sharded)
        return sw_errf(err, SW_EINVAL, "DDP (zero 0) needs an unsharded optimizer on each rank");
    if (exec_model_layer_gather(m) && t->zero != 3) {
        exec_trainer_release(t);
        return sw_errf(err, SW_EINVAL,
                       "a layer-gathered model trains under zero 3 with at least 2 ranks");
    }
    if (t->zero < 2 && exec_model_grads_sharded(m)) {
        exec_trainer_release(t);
        return sw_errf(err, SW_EINVAL,
                       "a model with sharded gradients trains under zero 2 or 3 with at least 2 "
                       "ranks");
    }
    t->gather = t->zero == 3;
    if (t->gather)
        exec_model_set_layer_hook(m, fill_layer, t);
    if (t->zero >= 2)
        exec_model_set_grad_take(m, take_grads, t);
    size_t n_batch = (size_t)c->micro_batch * c->grad_accum * (size_t)c->seq;
    size_t n_micro = (size_t)c->micro_batch * (size_t)c->seq;
    t->batch_in = sw_try_malloc(n_batch * sizeof(uint32_t), "batch tokens", err);
    t->batch_tgt = sw_try_malloc(n_batch * sizeof(uint32_t), "batch targets", err);
    t->tokens = sw_try_malloc(n_micro * sizeof(int), "micro-batch tokens", err);
    t->targets = sw_try_malloc(n_micro * sizeof(int), "micro-batch targets", err);
    if (!t->batch_in || !t->batch_tgt || !t->tokens || !t->targets) {
        exec_trainer_release(t);
        return SW_ENOMEM;
    }
    return 0;
}

void exec_trainer_release(struct exec_trainer *t)
{
    if (t->gather && t->model)
        exec_model_set_layer_hook(t->model, NULL, NULL);
    if (t->zero >= 2 && t->model)
        exec_model_set_grad_take(t->model, NULL, NULL);
    free(t->batch_in);
    free(t->batch_tgt);
    free(t->tokens);
    free(t->targets);
    free(t->cuts);
    if (t->stage && t->model)
        t->model->be->free(t->stage);
    exec_comm_stage_release(&t->cs);
    memset(t, 0, sizeof(*t));
}

/* Rows [row0, row0 + rows) of a (., T) uint32 batch into the int micro-batch buffers. */
static void take_rows(struct exec_trainer *t, const uint32_t *in, const uint32_t *tgt, int row0,
                      int rows)
{
    size_t T = (size_t)t->cfg.seq;
    size_t base = (size_t)row0 * T;
    for (size_t i = 0; i < (size_t)rows * T; i++) {
        t->tokens[i] = (int)in[base + i];
        t->targets[i] = (int)tgt[base + i];
    }
}

/* ---------------------------------------------------------------- collectives */

/* Sum of one double over the ranks, added in rank order so every rank gets the same value. */
static int sum_double(struct exec_trainer *t, double x, double *out, struct sw_err *err)
{
    if (!t->comm) {
        *out = x;
        return 0;
    }
    double small[64], *all = small;
    if ((size_t)t->world > sizeof(small) / sizeof(small[0]))
        all = sw_xmalloc((size_t)t->world * sizeof(double));
    int rc = t->comm->allgather_bytes(t->comm, &x, all, sizeof(double), err);
    double s = 0.0;
    for (int r = 0; rc == 0 && r < t->world; r++)
        s += all[r];
    if (all != small)
        free(all);
    *out = s;
    return rc;
}

/* DDP bucket k of the gradient region: [k·bucket, min((k+1)·bucket, n_train)). */
static int allreduce_bucket(struct exec_trainer *t, size_t k, struct sw_err *err)
{
    struct exec_model *m = t->model;
    size_t bucket = t->bucket, off = k * bucket;
    size_t n = m->n_train - off < bucket ? m->n_train - off : bucket;
    return exec_stage_allreduce(&t->cs, m->train_grads + off, n, err);
}

static size_t n_buckets(const struct exec_trainer *t)
{
    return (t->model->n_train + t->bucket - 1) / t->bucket;
}

/* DDP after the backward: every bucket not reduced yet, first to last. */
static int allreduce_grads(struct exec_trainer *t, struct sw_err *err)
{
    for (size_t k = 0; k < t->buckets_left; k++) {
        int rc = allreduce_bucket(t, k, err);
        if (rc < 0)
            return rc;
    }
    t->buckets_left = 0;
    return 0;
}

/* The model's gradient-ready hook during the last micro-batch (DDP overlap): reduce every
 * bucket that lies wholly inside the final suffix [ready_from, n_train), last bucket first. */
static int on_grads_ready(void *ctx, size_t ready_from, struct sw_err *err)
{
    struct exec_trainer *t = ctx;
    while (t->buckets_left > 0 && (t->buckets_left - 1) * t->bucket >= ready_from) {
        int rc = allreduce_bucket(t, t->buckets_left - 1, err);
        if (rc < 0)
            return rc;
        t->buckets_left--;
    }
    return 0;
}

/* Elements of rank q's shard in collective round j (starting at cuts[q] + j·chunk). */
static size_t round_len(const struct exec_trainer *t, int q, size_t j)
{
    size_t len = t->cuts[q + 1] - t->cuts[q], start = j * t->chunk;
    if (start >= len)
        return 0;
    return len - start < t->chunk ? len - start : t->chunk;
}

/* ZeRO: reduce-scatter the gradient region; rank r's summed shard lands in
 * train_grads[cuts[r], cuts[r+1]). */
static int reduce_scatter_grads(struct exec_trainer *t, struct sw_err *err)
{
    const struct backend *be = t->model->be;
    float *G = t->model->train_grads, *send = t->stage, *recv = t->stage + t->world * t->chunk;
    size_t rounds = (t->slot + t->chunk - 1) / t->chunk;
    for (size_t j = 0; j < rounds; j++) {
        for (int q = 0; q < t->world; q++) {
            size_t n = round_len(t, q, j);
            float *dst = send + (size_t)q * t->chunk;
            if (n)
                be->memcpy(dst, G + t->cuts[q] + j * t->chunk, n * sizeof(float), BACKEND_D2D);
            if (n < t->chunk)
                be->memset(dst + n, 0, (t->chunk - n) * sizeof(float));
        }
        int rc = exec_stage_reduce_scatter(&t->cs, send, recv, t->chunk, err);
        if (rc < 0)
            return rc;
        size_t n = round_len(t, t->rank, j);
        if (n)
            be->memcpy(G + t->cuts[t->rank] + j * t->chunk, recv, n * sizeof(float), BACKEND_D2D);
    }
    return 0;
}

/* ZeRO: all-gather every rank's updated parameter shard into the model's region. */
static int allgather_params(struct exec_trainer *t, struct sw_err *err)
{
    const struct backend *be = t->model->be;
    const struct exec_optimizer *o = t->opt;
    float *P = t->model->train_params, *recv = t->stage, *send = t->stage + t->world * t->chunk;
    size_t rounds = (t->slot + t->chunk - 1) / t->chunk;
    for (size_t j = 0; j < rounds; j++) {
        size_t n = round_len(t, t->rank, j);
        if (n)
            be->memcpy(send, o->params + j * t->chunk, n * sizeof(float), BACKEND_D2D);
        if (n < t->chunk)
            be->memset(send + n, 0, (t->chunk - n) * sizeof(float));
        int rc = exec_stage_allgather(&t->cs, send, recv, t->chunk, err);
        if (rc < 0)
            return rc;
        for (int q = 0; q < t->world; q++) {
            size_t k = round_len(t, q, j);
            if (k)
                be->memcpy(P + t->cuts[q] + j * t->chunk, recv + (size_t)q * t->chunk,
                           k * sizeof(float), BACKEND_D2D);
        }
    }
    exec_model_weights_changed(t->model);
    return 0;
}

/* ZeRO: the global gradient norm from the shards, and clipping of this rank's shard as
 * torch.nn.utils.clip_grad_norm_ (kcpu_clip_grad_norm's rule). */
static int clip_sharded(struct exec_trainer *t, double max_norm, double *norm, struct sw_err *err)
{
    const struct backend *be = t->model->be;
    const struct exec_optimizer *o = t->opt;
    size_t n = o->hi - o->lo;
    double local = n ? be->grad_norm(o->grads, n) : 0.0, sq = 0.0;
    int rc = sum_double(t, local * local, &sq, err);
    if (rc < 0)
        return rc;
    *norm = sqrt(sq);
    double coef = max_norm / (*norm + 1e-6);
    if (max_norm > 0 && coef < 1.0 && n)
        be->scale(o->grads, n, (float)coef);
    return 0;
}

/* Loss scaling, once the gradients are final (all-reduced, or reduced into this rank's
 * shard): the global norm of the scaled gradients; when it is not finite some gradient
 * overflowed (or the loss did) and the step is skipped; otherwise one pass multiplies the
 * gradients by 1/scale and the clipping coefficient of the unscaled norm (kcpu_clip_grad_norm's
 * rule). *norm is the unscaled norm (the scaled one when skipped). */
static int unscale_clip(struct exec_trainer *t, double *norm, bool *skip, struct sw_err *err)
{
    const struct backend *be = t->model->be;
    float *g = t->zero >= 1 ? t->opt->grads : t->model->train_grads;
    size_t n = t->zero >= 1 ? t->opt->hi - t->opt->lo : t->model->n_train;
    double local = n ? be->grad_norm(g, n) : 0.0, sq = local * local;
    int rc = t->zero >= 1 ? sum_double(t, local * local, &sq, err) : 0;
    if (rc < 0)
        return rc;
    double scaled = sqrt(sq);
    *skip = !isfinite(scaled);
    if (*skip) {
        *norm = scaled;
        return 0;
    }
    double S = t->loss_scale, unscaled = scaled / S, coef = 1.0 / S;
    double max_norm = t->cfg.grad_clip;
    if (max_norm > 0 && max_norm / (unscaled + 1e-6) < 1.0)
        coef *= max_norm / (unscaled + 1e-6);
    if (n)
        be->scale(g, n, (float)coef);
    *norm = unscaled;
    return 0;
}

/* The dynamic scale after a step (GradScaler: backoff 0.5 on a skip, growth 2 after `window`
 * finite steps in a row). SW_ERANGE when skipping has pushed it below EXEC_LOSS_SCALE_MIN: the
 * loss or the activations overflow fp16 at any scale. */
static int update_loss_scale(struct exec_trainer *t, bool skipped, struct sw_err *err)
{
    if (skipped)
        t->skipped_steps++;
    if (t->cfg.loss_scale_window <= 0)
        return 0;
    if (skipped) {
        t->loss_scale *= 0.5;
        t->loss_scale_good = 0;
        if (t->loss_scale < EXEC_LOSS_SCALE_MIN)
            return sw_errf(err, SW_ERANGE,
                           "fp16 overflow at step %lld: the gradients stayed non-finite while "
                           "the loss scale fell to %g, so the forward itself overflows fp16 "
                           "(a value beyond 65504); use precision bf16-mixed or fp32",
                           (long long)t->step + 1, t->loss_scale);
    } else if (++t->loss_scale_good >= t->cfg.loss_scale_window) {
        t->loss_scale_good = 0;
        if (t->loss_scale * 2 <= EXEC_LOSS_SCALE_MAX)
            t->loss_scale *= 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- step */

int exec_trainer_step(struct exec_trainer *t, struct exec_step_stats *out, struct sw_err *err)
{
    struct exec_model *m = t->model;
    const struct exec_train_config *c = &t->cfg;
    double t0 = sw_now_s();
    double comm0 = t->comm ? t->comm->comm_s : 0.0;
    int64_t step = t->step;
    loader_batch(&t->train, step, t->batch_in, t->batch_tgt);
    exec_model_zero_grad(m);
    t->grad_reduce_calls = 0;
    if (t->zero >= 2 && t->opt->hi > t->opt->lo)
        m->be->memset(t->opt->grads, 0, (t->opt->hi - t->opt->lo) * sizeof(float));
    bool scaling = t->loss_scale > 0;
    double used_scale = t->loss_scale;
    float scale = (float)((scaling ? t->loss_scale : 1.0) / (double)(c->grad_accum * t->world));
    double loss_sum = 0.0;
    int rc = 0;
    bool ddp = t->comm && t->zero == 0;
    if (ddp && t->bucket < 1)
        return sw_errf(err, SW_EINVAL, "the DDP bucket must hold at least one element");
    t->buckets_left = ddp ? n_buckets(t) : 0;
    for (int k = 0; k < c->grad_accum; k++) {
        /* ZeRO-2/3: every backward hands all its gradients over; start each from zero. */
        if (t->zero >= 2 && k > 0)
            exec_model_zero_grad(m);
        take_rows(t, t->batch_in, t->batch_tgt, k * c->micro_batch, c->micro_batch);
        float loss = 0.0f;
        /* Only the last micro-batch's backward makes the gradients final. */
        bool hook = ddp && t->ddp_overlap && k == c->grad_accum - 1;
        rc = exec_model_forward(m, t->tokens, t->targets, c->micro_batch, c->seq, &loss, err);
        if (rc == 0 && hook)
            exec_model_set_grad_ready(m, on_grads_ready, t);
        if (rc == 0)
            rc = exec_model_backward(m, scale, err);
        if (hook)
            exec_model_set_grad_ready(m, NULL, NULL);
        if (rc < 0)
            return rc;
        loss_sum += loss;
    }
    double norm = 0.0;
    bool skip = false;
    if (t->zero == 1)
        rc = reduce_scatter_grads(t, err);
    if (rc == 0 && t->zero >= 1 && !scaling)
        rc = clip_sharded(t, c->grad_clip, &norm, err);
    if (rc == 0 && ddp)
        rc = allreduce_grads(t, err); /* what the hook did not reduce (all without overlap) */
    if (rc == 0 && scaling)
        rc = unscale_clip(t, &norm, &skip, err);
    if (rc < 0)
        return rc;
    if (t->zero == 0 && !scaling)
        norm = exec_optimizer_clip(t->opt, c->grad_clip);
    double lr = exec_lr_at(&c->lr, step);
    /* A skipped step changes no weight, so there is nothing to gather either. */
    if (!skip) {
        exec_optimizer_step(t->opt, lr);
        if (t->zero >= 1 && t->zero < 3 && (rc = allgather_params(t, err)) < 0)
            return rc;
        if (t->zero == 3 && (rc = refresh_resident(t, err)) < 0)
            return rc;
    }
    if (scaling && (rc = update_loss_scale(t, skip, err)) < 0)
        return rc;
    double total_loss = loss_sum;
    if ((rc = sum_double(t, loss_sum, &total_loss, err)) < 0)
        return rc;
    t->step++;
    if (out) {
        out->step = step;
        out->loss = total_loss / ((double)c->grad_accum * t->world);
        out->lr = lr;
        out->grad_norm = norm;
        out->step_s = sw_now_s() - t0;
        out->tokens = (int64_t)c->micro_batch * c->grad_accum * c->seq * t->world;
        out->comm_s = t->comm ? t->comm->comm_s - comm0 : 0.0;
        out->loss_scale = scaling ? used_scale : 0.0;
        out->skipped = skip;
    }
    return 0;
}

int exec_trainer_eval(struct exec_trainer *t, double *val_loss, struct sw_err *err)
{
    if (!t->has_val)
        return sw_errf(err, SW_EINVAL, "no validation data to evaluate on");
    const struct exec_train_config *c = &t->cfg;
    double sum = 0.0;
    /* ZeRO-3: the forward gathers layers collectively, so every rank runs as many forwards
     * (a rank past the last batch runs batch 0 again and drops its loss). */
    int64_t end = c->eval_batches;
    if (t->gather)
        end = (c->eval_batches + t->world - 1) / t->world * t->world;
    for (int64_t k = t->rank; k < end; k += t->world) {
        /* The micro-batch buffers hold micro_batch rows: read the val batch into them through
         * the (larger) batch buffers. */
        loader_batch(&t->val, k < c->eval_batches ? k : 0, t->batch_in, t->batch_tgt);
        take_rows(t, t->batch_in, t->batch_tgt, 0, c->micro_batch);
        float loss = 0.0f;
        int rc =
            exec_model_forward(t->model, t->tokens, t->targets, c->micro_batch, c->seq, &loss, err);
        if (rc < 0)
            return rc;
        if (k < c->eval_batches)
            sum += loss;
    }
    int rc = sum_double(t, sum, &sum, err);
    if (rc < 0)
        return rc;
    *val_loss = c->eval_batches > 0 ? sum / (double)c->eval_batches : 0.0;
    return 0;
}
