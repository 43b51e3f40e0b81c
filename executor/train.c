/* The training loop of one process: per optimizer step, the global batch of that data step
 * from the batch loader (data.c), split into grad_accum micro-batches of micro_batch
 * sequences, each run forward and backward with grad_scale = 1/grad_accum so the summed
 * gradients are those of the mean loss over the whole batch; then the global gradient norm and
 * clipping, the scheduled learning rate and the optimizer update (optimizer.c). Evaluation runs
 * the first eval_batches micro-batches of the validation shard through forward only.
 *
 * The optimizer step number is also the data step, and the loader is stateless given (seed,
 * step), so restoring the step of a checkpoint resumes the data exactly. The batch buffers are
 * allocated once at init; a step allocates nothing. Checkpoints, metrics and the plan are the
 * business of checkpoint.c, metrics.c and run.c. */
#include "executor/executor.h"

#include <stdlib.h>
#include <string.h>

int exec_trainer_init(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                      const struct exec_train_config *c, const struct shard *train,
                      const struct shard *val, struct sw_err *err)
{
    memset(t, 0, sizeof(*t));
    if (c->micro_batch < 1 || c->grad_accum < 1 || c->seq < 1)
        return sw_errf(err, SW_EINVAL, "micro-batch %d, accumulation %d and sequence %d must be "
                                       "at least 1", c->micro_batch, c->grad_accum, c->seq);
    if (!m->opts.training || !m->train_params)
        return sw_errf(err, SW_EINVAL, "the model was not built for training");
    if (m->opts.batch < c->micro_batch || m->opts.seq < c->seq)
        return sw_errf(err, SW_EINVAL,
                       "the model takes micro-batches of at most %d x %d tokens; the loop needs "
                       "%d x %d", m->opts.batch, m->opts.seq, c->micro_batch, c->seq);
    if (train->hdr.vocab_size > (uint32_t)m->V)
        return sw_errf(err, SW_EINVAL,
                       "the data's vocabulary (%u ids, %s) is larger than the model's (%d)",
                       train->hdr.vocab_size, train->path, m->V);
    int64_t B = (int64_t)c->micro_batch * c->grad_accum;
    int rc = loader_init(&t->train, train, B, c->seq, c->seed, 0, 1, err);
    if (rc < 0)
        return rc;
    if (val && val->hdr.n_tokens > 0 && c->eval_batches > 0) {
        if (val->hdr.vocab_size > (uint32_t)m->V)
            return sw_errf(err, SW_EINVAL, "the validation data's vocabulary (%u ids) is larger "
                                           "than the model's (%d)", val->hdr.vocab_size, m->V);
        rc = loader_init(&t->val, val, c->micro_batch, c->seq, c->seed, 0, 1, err);
        if (rc < 0)
            return rc;
        t->has_val = true;
    }
    t->model = m;
    t->opt = o;
    t->cfg = *c;
    size_t n_batch = (size_t)B * (size_t)c->seq;
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
    free(t->batch_in);
    free(t->batch_tgt);
    free(t->tokens);
    free(t->targets);
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

int exec_trainer_step(struct exec_trainer *t, struct exec_step_stats *out, struct sw_err *err)
{
    struct exec_model *m = t->model;
    const struct exec_train_config *c = &t->cfg;
    double t0 = sw_now_s();
    int64_t step = t->step;
    loader_batch(&t->train, step, t->batch_in, t->batch_tgt);
    exec_model_zero_grad(m);
    float scale = 1.0f / (float)c->grad_accum;
    double loss_sum = 0.0;
    for (int k = 0; k < c->grad_accum; k++) {
        take_rows(t, t->batch_in, t->batch_tgt, k * c->micro_batch, c->micro_batch);
        float loss = 0.0f;
        int rc = exec_model_forward(m, t->tokens, t->targets, c->micro_batch, c->seq, &loss, err);
        if (rc == 0)
            rc = exec_model_backward(m, scale, err);
        if (rc < 0)
            return rc;
        loss_sum += loss;
    }
    double norm = exec_optimizer_clip(t->opt, c->grad_clip);
    double lr = exec_lr_at(&c->lr, step);
    exec_optimizer_step(t->opt, lr);
    t->step++;
    if (out) {
        out->step = step;
        out->loss = loss_sum / c->grad_accum;
        out->lr = lr;
        out->grad_norm = norm;
        out->step_s = sw_now_s() - t0;
        out->tokens = (int64_t)c->micro_batch * c->grad_accum * c->seq;
    }
    return 0;
}

int exec_trainer_eval(struct exec_trainer *t, double *val_loss, struct sw_err *err)
{
    if (!t->has_val)
        return sw_errf(err, SW_EINVAL, "no validation data to evaluate on");
    const struct exec_train_config *c = &t->cfg;
    double sum = 0.0;
    for (int64_t k = 0; k < c->eval_batches; k++) {
        /* The micro-batch buffers hold micro_batch rows: read the val batch into them through
         * the (larger) global-batch buffers. */
        loader_batch(&t->val, k, t->batch_in, t->batch_tgt);
        take_rows(t, t->batch_in, t->batch_tgt, 0, c->micro_batch);
        float loss = 0.0f;
        int rc = exec_model_forward(t->model, t->tokens, t->targets, c->micro_batch, c->seq,
                                    &loss, err);
        if (rc < 0)
            return rc;
        sum += loss;
    }
    *val_loss = c->eval_batches > 0 ? sum / (double)c->eval_batches : 0.0;
    return 0;
}
