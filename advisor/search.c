/* Strategy search (strategy reference sections 11 and 12): enumerates the ways to run one model
 * on one hardware description, keeps what fits with the requested headroom, ranks by tokens/s
 * (training) or per-token latency then throughput (inference), and attaches to every plan the
 * reasons for each choice. It leaves the numbers to advisor_check, advisor_estimate_memory and
 * advisor_estimate_speed (check.c, memory.c, speed.c); it only decides what to evaluate.
 *
 * Shape of the search (training). One precision (the best the device supports) and one attention
 * kernel. For every tensor-parallel degree t (divides the GPUs per node and the heads) and
 * pipeline degree p (p <= L, divides the remaining devices), data parallelism takes the rest (or
 * fewer ranks when the global batch cannot feed them). Memory savers are a ladder walked only
 * while nothing fits (section 12): ZeRO 0 -> 3 (0 -> 1 with a pipeline), then recompute none ->
 * selective -> full, sequence parallel off/on with TP; each ladder stops one rung after the first
 * that fits (the extra rung frees memory for a larger micro-batch, 11.2.2). Before walking a
 * ladder the most frugal rung is tried at b = 1: if even that overflows, memory monotonicity
 * says no rung fits and the ladder is skipped. The micro-batch is solved, not searched: memory
 * is linear in b (3.8), so two memory evaluations give b_max and only powers of two up to it are
 * estimated. Passes widen the space only when the previous one found nothing: AdamW without
 * offload; then 8-bit AdamW and Adafactor; then LoRA/QLoRA (when allowed); then optimizer and
 * parameter offload. Inference walks weights bf16/fp16 -> int8 -> int4 (then an int8 KV cache),
 * tensor parallel only when one GPU is not enough (11.7), and a smaller batch as a last resort.
 * When nothing fits, the candidates with the smallest overflow are returned with reasons that
 * say what would make them fit. */
#include "advisor/advisor.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

void search_result_init(struct search_result *r)
{
    memset(r, 0, sizeof(*r));
}

void search_result_release(struct search_result *r)
{
    free(r->plans);
    search_result_init(r);
}

static void result_add_reason(struct search_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void result_add_reason(struct search_result *r, const char *fmt, ...)
{
    if (r->n_reasons >= ADVISOR_MAX_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reasons[r->n_reasons], ADVISOR_REASON_MAX, fmt, ap);
    va_end(ap);
    r->n_reasons++;
}

/* A ranked candidate and what the reasons need to know about how it was found. */
struct cand {
    struct search_plan p;
    int b_max;       /* largest micro-batch (train) / batch (infer) that fits, from 3.8 */
    double overflow; /* bytes over the headroom limit (closest list only) */
};

enum pass { PASS_BASE, PASS_LIGHT_OPT, PASS_LORA, PASS_OFFLOAD, PASS_COUNT };

struct ctx {
    const struct model_desc *m;
    const struct hardware *hw;
    const struct workload *w;
    const struct search_opts *o;
    const struct advisor_calib *cal;
    double headroom;
    bool cpu;
    int gpn;            /* GPUs per node (1 for a CPU: one process per node) */
    int devices;        /* devices the plan may use */
    int cc;             /* lowest compute capability x10 (0 on a CPU) */
    int64_t target_seq; /* wanted global batch in sequences, 0 = none */
    enum sw_precision prec;
    enum sw_attention attn;
    enum sw_wformat w16;
    enum pass pass;
    /* ranked plans that fit (best first) and the closest that do not (smallest overflow) */
    struct cand *top;
    int n_top, k;
    struct cand *close;
    int n_close;
    int64_t evaluated;
    int64_t fitting_configs;
    struct estimate scratch;
    struct estimate best_e; /* best micro-batch of the configuration being tried */
    struct sw_err err;
    char first_reject[ADVISOR_REASON_MAX]; /* the first rule advisor_check applied, for reasons */
};

/* ------------------------------------------------------------------ evaluation */

static bool fits_headroom(const struct ctx *c, const struct estimate *e)
{
    return e->fits && e->host_fits && e->capacity_bytes > 0 &&
           e->dev.total <= (1.0 - c->headroom) * e->capacity_bytes;
}

static double overflow_bytes(const struct ctx *c, const struct estimate *e)
{
    double dev = e->dev.total - (1.0 - c->headroom) * e->capacity_bytes;
    double host = e->host_total_bytes - e->host_capacity_bytes;
    if (dev > 0)
        return dev;
    return host > 0 ? host : 0;
}

/* Micro-steps per optimizer step for a micro-batch b: reach the target global batch, or without
 * a target one micro-step (4p with a pipeline, to keep the bubble (p-1)/m small, 7.3). 0 when b
 * cannot fit the target. */
static int accum_for(const struct ctx *c, const struct strategy *st, int b)
{
    if (c->w->task != TASK_TRAIN)
        return 1;
    if (c->target_seq <= 0)
        return st->pp > 1 ? 4 * st->pp : 1;
    int64_t per = (int64_t)b * st->dp;
    if (per > c->target_seq)
        return 0;
    int64_t m = (c->target_seq + per / 2) / per;
    if (m < 1)
        m = 1;
    if (m > (1 << 24))
        return 0;
    if (st->pp > 1 && st->pp_interleave > 1 && m % st->pp != 0)
        m = ((m + st->pp - 1) / st->pp) * st->pp;
    return (int)m;
}

/* Fill b, m and the global batch, check and estimate memory (full: speed too). Returns 0, or
 * -1 when the advisor rejects the combination. */
static int evaluate(struct ctx *c, struct strategy *st, struct workload *wl, int b, bool full,
                    struct estimate *e)
{
    *wl = *c->w;
    if (c->w->task == TASK_TRAIN) {
        int m = accum_for(c, st, b);
        if (m < 1)
            return -1;
        st->micro_batch = b;
        st->grad_accum = m;
        wl->global_batch = (int64_t)b * m * st->dp;
    } else {
        st->micro_batch = 1;
        st->grad_accum = 1;
        wl->batch = b;
    }
    c->evaluated++;
    estimate_init(e);
    if (advisor_check(c->m, c->hw, wl, st, &c->err) < 0) {
        if (!c->first_reject[0])
            sw_strlcpy(c->first_reject, c->err.msg, sizeof(c->first_reject));
        return -1;
    }
    if (advisor_estimate_memory(c->m, c->hw, wl, st, c->cal, e, &c->err) < 0)
        return -1;
    if (full && advisor_estimate_speed(c->m, c->hw, wl, st, c->cal, e, &c->err) < 0)
        return -1;
    return 0;
}

static double score_of(const struct ctx *c, const struct estimate *e)
{
    if (c->w->task == TASK_TRAIN)
        return e->tokens_per_s;
    return e->decode_s_per_token > 0 ? 1.0 / e->decode_s_per_token : 0.0;
}

/* Better-than for ranking: score, then (inference) throughput, then fewer devices, then less
 * memory. */
static bool better(const struct search_plan *a, const struct search_plan *b)
{
    const double rel = 1e-9;
    if (fabs(a->score - b->score) > rel * fmax(fabs(a->score), fabs(b->score)))
        return a->score > b->score;
    if (a->estimate.infer_tokens_per_s != b->estimate.infer_tokens_per_s)
        return a->estimate.infer_tokens_per_s > b->estimate.infer_tokens_per_s;
    if (a->estimate.gpus != b->estimate.gpus)
        return a->estimate.gpus < b->estimate.gpus;
    return a->estimate.dev.total < b->estimate.dev.total;
}

/* Open a slot at `pos` in a list of at most k entries kept in order (n of them now): the entries
 * from pos on move down one, and when the list is full its last entry drops off. Returns the
 * slot to fill, or NULL when pos is past the end (the candidate does not make the list). */
static struct cand *insert_slot(struct cand *list, int *n, int k, int pos)
{
    if (pos >= k)
        return NULL;
    int last = *n < k ? *n : k - 1;
    memmove(&list[pos + 1], &list[pos], (size_t)(last - pos) * sizeof(list[0]));
    if (*n < k)
        (*n)++;
    return &list[pos];
}

static void offer_top(struct ctx *c, const struct strategy *st, const struct workload *wl,
                      const struct estimate *e, int b_max)
{
    struct search_plan cand_p;
    cand_p.score = score_of(c, e);
    cand_p.estimate.gpus = e->gpus;
    cand_p.estimate.infer_tokens_per_s = e->infer_tokens_per_s;
    cand_p.estimate.dev.total = e->dev.total;
    int pos = c->n_top;
    while (pos > 0 && better(&cand_p, &c->top[pos - 1].p))
        pos--;
    struct cand *slot = insert_slot(c->top, &c->n_top, c->k, pos);
    if (!slot)
        return;
    slot->p.strategy = *st;
    slot->p.workload = *wl;
    slot->p.estimate = *e;
    slot->p.score = cand_p.score;
    slot->b_max = b_max;
    slot->overflow = 0;
}

static void offer_close(struct ctx *c, const struct strategy *st, const struct workload *wl,
                        const struct estimate *e)
{
    double over = overflow_bytes(c, e);
    int pos = c->n_close;
    while (pos > 0 && over < c->close[pos - 1].overflow)
        pos--;
    struct cand *slot = insert_slot(c->close, &c->n_close, c->k, pos);
    if (!slot)
        return;
    slot->p.strategy = *st;
    slot->p.workload = *wl;
    slot->p.estimate = *e;
    slot->p.score = 0;
    slot->b_max = 0;
    slot->overflow = over;
}

/* Training: one configuration (everything but b and m). Solves b_max from two memory estimates
 * (3.8: only activations, logits and workspace grow with b, linearly), estimates the powers of
 * two up to it and offers the best to the ranking. Returns whether b = 1 fits. */
static bool try_train_config(struct ctx *c, struct strategy st)
{
    struct workload wl;
    struct estimate *e = &c->scratch;
    if (evaluate(c, &st, &wl, 1, false, e) < 0)
        return false;
    if (!fits_headroom(c, e)) {
        offer_close(c, &st, &wl, e);
        return false;
    }
    double limit = (1.0 - c->headroom) * e->capacity_bytes;
    double m1 = e->dev.total;
    int b_cap = 1 << 12;
    if (c->target_seq > 0 && c->target_seq / st.dp < b_cap)
        b_cap = (int)(c->target_seq / st.dp);
    int b_max = 1;
    if (b_cap >= 2 && evaluate(c, &st, &wl, 2, false, e) == 0) {
        double per_seq = e->dev.total - m1;
        if (per_seq <= 0)
            b_max = b_cap;
        else {
            double bm = floor((limit - (m1 - per_seq)) / per_seq);
            b_max = bm > b_cap ? b_cap : (bm < 1 ? 1 : (int)bm);
        }
    }
    struct strategy best_st = st;
    struct workload best_wl = wl;
    bool have_best = false;
    double best_score = -1;
    for (int b = 1; b <= b_max; b *= 2) {
        if (evaluate(c, &st, &wl, b, true, e) < 0)
            continue;
        if (!fits_headroom(c, e))
            break; /* the linear solve was optimistic (pipeline in-flight count): stop here */
        /* Without a batch target a larger micro-batch grows the global batch, so it must buy
         * at least 1% more. With a target, the global batch is fixed: take the largest b that
         * is within 1% of the best (11.1 step 3: never shrink b more than needed). */
        double sc = score_of(c, e);
        bool better = c->target_seq > 0 ? sc >= best_score * 0.99 : sc > best_score * 1.01;
        if (better) {
            if (sc > best_score)
                best_score = sc;
            c->best_e = *e;
            have_best = true;
            best_st = st;
            best_wl = wl;
        }
    }
    if (have_best) {
        c->fitting_configs++;
        offer_top(c, &best_st, &best_wl, &c->best_e, b_max);
    }
    return true;
}

/* ------------------------------------------------------------------ training enumeration */

static int zero_max_for(const struct strategy *st)
{
    if (st->dp < 2)
        return st->offload_params ? 3 : 0; /* one rank: ZeRO-3 only as parameter offload (11.1) */
    return st->pp > 1 ? 1 : 3;             /* ZeRO-2/3 with a pipeline: avoid (section 12) */
}

/* Memory only, b = 1: does this configuration fit at all? */
static bool fits_at_b1(struct ctx *c, struct strategy st)
{
    struct workload wl;
    if (evaluate(c, &st, &wl, 1, false, &c->scratch) < 0)
        return false;
    if (fits_headroom(c, &c->scratch))
        return true;
    offer_close(c, &st, &wl, &c->scratch);
    return false;
}

/* The savers ladder of one (t, p, v) layout: ZeRO stages, then recompute levels (selective
 * only with naive attention: flash already drops the score term, 3.5), each with sequence
 * parallel off and on under TP. Each ladder stops one rung after the first that fits. */
static void walk_ladder(struct ctx *c, struct strategy base)
{
    int zmax = zero_max_for(&base);
    int zmin = base.offload_params ? 3 : 0;
    /* Monotonicity pre-check: if the most frugal rung overflows at b = 1, every rung does. */
    struct strategy fr = base;
    fr.zero = zmax;
    fr.recompute = RECOMPUTE_FULL;
    fr.sequence_parallel = base.tp > 1;
    if (!fits_at_b1(c, fr))
        return;
    enum sw_recompute levels[3];
    int n_levels = 0;
    levels[n_levels++] = RECOMPUTE_NONE;
    if (base.attention == ATTN_NAIVE)
        levels[n_levels++] = RECOMPUTE_SELECTIVE;
    levels[n_levels++] = RECOMPUTE_FULL;
    int zero_fit = -1;
    for (int z = zmin; z <= zmax; z++) {
        if (zero_fit >= 0 && z > zero_fit + 1)
            break;
        int level_fit = -1;
        for (int li = 0; li < n_levels; li++) {
            if (level_fit >= 0 && li > level_fit + 1)
                break;
            bool fit = false;
            for (int spv = 0; spv <= (base.tp > 1 ? 1 : 0); spv++) {
                struct strategy st = base;
                st.zero = z;
                st.recompute = levels[li];
                st.sequence_parallel = spv == 1;
                if (try_train_config(c, st))
                    fit = true;
            }
            if (fit && level_fit < 0)
                level_fit = li;
        }
        if (level_fit >= 0 && zero_fit < 0)
            zero_fit = z;
    }
}

static bool divides(int64_t a, int64_t b)
{
    return b != 0 && a % b == 0;
}

/* TP degrees: divide the GPUs per node and the heads (the advisor checks the rest). */
static int tp_list(const struct ctx *c, int *out)
{
    int n = 0;
    for (int t = 1; t <= c->gpn && n < 16; t++)
        if (divides(c->gpn, t) && divides(c->m->n_heads, t))
            out[n++] = t;
    return n;
}

static void search_train_pass(struct ctx *c, const struct strategy *proto)
{
    int tps[16];
    int ntp = tp_list(c, tps);
    for (int i = 0; i < ntp; i++) {
        int t = tps[i];
        if (c->devices % t != 0)
            continue;
        int rest = c->devices / t;
        for (int p = 1; p <= rest && p <= c->m->n_layers; p++) {
            if (rest % p != 0)
                continue;
            int dp = rest / p;
            if (c->target_seq > 0 && dp > c->target_seq) {
                /* The global batch cannot feed every rank: use fewer (a power of two). */
                int d = 1;
                while ((int64_t)d * 2 <= c->target_seq)
                    d *= 2;
                dp = d;
            }
            for (int v = 1; v <= (p > 1 ? 2 : 1); v++) {
                if (v > 1 && c->m->n_layers % (p * v) != 0)
                    continue;
                struct strategy st = *proto;
                st.tp = t;
                st.pp = p;
                st.dp = dp;
                st.pp_interleave = v;
                walk_ladder(c, st);
            }
        }
    }
}

static void search_train(struct ctx *c, struct search_result *out)
{
    struct strategy proto;
    strategy_init(&proto);
    proto.device = c->cpu ? DEVICE_CPU : DEVICE_CUDA;
    proto.precision = c->prec;
    proto.attention = c->attn;
    proto.weights = c->w16;
    proto.kv_dtype = c->w16;

    static const enum sw_optimizer light[] = {OPT_ADAMW8BIT, OPT_ADAFACTOR};
    c->pass = PASS_BASE;
    search_train_pass(c, &proto);
    if (c->n_top > 0)
        return;
    if (c->devices > 1) {
        /* Several GPUs (11.2 step 5): the ZeRO ladder goes on with optimizer offload before
         * any change of optimizer, which would trade convergence for memory. */
        result_add_reason(out, "AdamW fits nowhere in device memory: trying optimizer offload to "
                               "host RAM before lighter optimizers (11.2)");
        c->pass = PASS_OFFLOAD;
        struct strategy st = proto;
        st.offload_optimizer = true;
        search_train_pass(c, &st);
        if (c->n_top > 0)
            return;
    }
    result_add_reason(out, "AdamW without offload fits nowhere: trying 8-bit AdamW and "
                           "Adafactor (they trade convergence for memory)");
    c->pass = PASS_LIGHT_OPT;
    for (size_t i = 0; i < sizeof(light) / sizeof(light[0]); i++) {
        struct strategy st = proto;
        st.optimizer = light[i];
        search_train_pass(c, &st);
    }
    if (c->n_top > 0)
        return;
    if (c->o->allow_lora) {
        result_add_reason(out, "full training fits nowhere: trying LoRA (rank 16) with a "
                               "16-bit base, then QLoRA with an int8 and an int4 base");
        c->pass = PASS_LORA;
        static const enum sw_wformat bases[] = {WFMT_BF16, WFMT_INT8, WFMT_INT4};
        for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]) && c->n_top == 0; i++) {
            struct strategy st = proto;
            st.lora_rank = 16;
            st.weights = bases[i] == WFMT_BF16 ? c->w16 : bases[i];
            search_train_pass(c, &st);
        }
        if (c->n_top > 0)
            return;
    }
    result_add_reason(out, "nothing fits in device memory: trying optimizer offload, then "
                           "parameter offload (ZeRO-3) to host RAM");
    c->pass = PASS_OFFLOAD;
    struct strategy st = proto;
    st.offload_optimizer = true;
    search_train_pass(c, &st);
    if (c->n_top > 0)
        return;
    st.offload_params = true;
    search_train_pass(c, &st);
}

/* ------------------------------------------------------------------ inference */

/* One inference layout: the requested batch, or the largest power of two below it that fits.
 * Returns whether anything fits. */
static bool try_infer_config(struct ctx *c, struct strategy st)
{
    struct workload wl;
    struct estimate *e = &c->scratch;
    int b = c->w->batch;
    while (b >= 1) {
        if (evaluate(c, &st, &wl, b, true, e) < 0)
            return false;
        if (fits_headroom(c, e)) {
            c->fitting_configs++;
            offer_top(c, &st, &wl, e, b);
            return true;
        }
        if (b == c->w->batch)
            offer_close(c, &st, &wl, e);
        /* Next: the largest power of two below b. */
        int next = 1;
        while (next * 2 < b)
            next *= 2;
        b = b > 1 ? next : 0;
    }
    return false;
}

static void search_infer(struct ctx *c, struct search_result *out)
{
    struct strategy proto;
    strategy_init(&proto);
    proto.device = c->cpu ? DEVICE_CPU : DEVICE_CUDA;
    proto.precision = c->prec;
    proto.attention = c->attn;
    struct {
        enum sw_wformat w, kv;
    } steps[] = {
        {c->w16, c->w16}, {WFMT_INT8, c->w16}, {WFMT_INT4, c->w16}, {WFMT_INT4, WFMT_INT8}};
    int tps[16];
    int ntp = tp_list(c, tps);
    for (size_t si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
        if (si > 0)
            result_add_reason(out,
                              "nothing fits with %s weights and a %s KV cache: trying %s "
                              "weights, %s KV cache",
                              wformat_name(steps[si - 1].w), wformat_name(steps[si - 1].kv),
                              wformat_name(steps[si].w), wformat_name(steps[si].kv));
        /* 11.7: fits on one device -> replicate, never shard. */
        for (int i = 0; i < ntp; i++) {
            int t = tps[i];
            for (int p = 1; p <= c->m->n_layers && (int64_t)t * p <= c->devices; p++) {
                if (c->devices % (t * p) != 0)
                    continue;
                if (p > 1 && t < c->gpn && c->n_top == 0 && i + 1 < ntp)
                    continue; /* layer split only once TP inside the node is exhausted */
                struct strategy st = proto;
                st.weights = steps[si].w;
                st.kv_dtype = steps[si].kv;
                st.tp = t;
                st.pp = p;
                st.dp = c->devices / (t * p);
                bool ok = try_infer_config(c, st);
                if (ok && t == 1 && p == 1)
                    return; /* one device is enough: replicas */
            }
        }
        if (c->n_top > 0)
            return;
    }
}

/* ------------------------------------------------------------------ reasons */

static const char *state_name(enum sw_optimizer o)
{
    switch (o) {
    case OPT_ADAMW:
        return "AdamW (fp32 moments, 8 B/param)";
    case OPT_ADAMW8BIT:
        return "8-bit AdamW (about 2 B/param)";
    case OPT_ADAFACTOR:
        return "Adafactor (factored second moment)";
    case OPT_SGD:
        return "SGD (no state)";
    case OPT_SGD_MOMENTUM:
        return "SGD with momentum (4 B/param)";
    case OPT_LION:
        return "Lion (4 B/param)";
    }
    return "?";
}

/* Memory of a variant of `st` at micro-batch b (memory only). Returns false if invalid. */
static bool variant_mem(struct ctx *c, struct strategy st, int b, struct estimate *e)
{
    struct workload wl;
    return evaluate(c, &st, &wl, b, false, e) == 0;
}

static void add_train_reasons(struct ctx *c, struct cand *cd)
{
    struct search_plan *sp = &cd->p;
    struct strategy *st = &sp->strategy;
    struct estimate *e = &sp->estimate;
    struct estimate *v = &c->scratch;
    double limit = (1.0 - c->headroom) * e->capacity_bytes;
    const char *dev = c->cpu ? "the CPU" : "GPU";

    if (c->cpu)
        estimate_add_reason(e, "%s: %s", precision_name(st->precision),
                            st->precision == PREC_FP32
                                ? "this CPU has no native bf16 matmul (AVX512_BF16), so fp32 (11.4)"
                                : "the CPU has native AVX512-BF16 matmuls (11.4)");
    else if (st->precision == PREC_BF16_MIXED)
        estimate_add_reason(e, "bf16-mixed: CC %d.%d supports bf16 (no loss scaling)", c->cc / 10,
                            c->cc % 10);
    else
        estimate_add_reason(e, "%s: CC %d.%d has no bf16, so fp16 with loss scaling (11.1)",
                            precision_name(st->precision), c->cc / 10, c->cc % 10);
    if (st->attention == ATTN_FLASH)
        estimate_add_reason(e, "flash attention: %s",
                            c->cpu ? "tiled kernel keeps only row "
                                     "statistics (3.5)"
                                   : "CC >= 8.0 and 16-bit inputs");
    else
        estimate_add_reason(e, "naive attention: flash needs CC >= 8.0 and 16-bit inputs");

    if (st->tp > 1) {
        const char *link = c->hw->n_gpus > 1 ? hw_link_name(c->hw->link[0][1]) : "?";
        estimate_add_reason(e, "TP=%d inside one node over %s: heads %d divide by %d", st->tp, link,
                            c->m->n_heads, st->tp);
    }
    if (st->pp > 1) {
        double bubble = (double)(st->pp - 1) / ((double)st->pp_interleave * st->grad_accum);
        estimate_add_reason(e,
                            "PP=%d%s: %d layers in %d stages, bubble (p-1)/(v*m) = %.1f%% "
                            "(7.3)",
                            st->pp, st->pp_interleave > 1 ? " interleaved (v=2)" : "",
                            c->m->n_layers, st->pp, bubble * 100.0);
    }
    int used = st->dp * st->tp * st->pp;
    if (used < c->devices)
        estimate_add_reason(e,
                            "uses %d of %d devices: a global batch of %lld sequences feeds at "
                            "most %d data-parallel ranks",
                            used, c->devices, (long long)c->target_seq, st->dp);
    else if (st->dp > 1)
        estimate_add_reason(e, "DP=%d over %d devices", st->dp, used);

    /* ZeRO: why this stage and not the one below. */
    if (st->zero > 0 && !(st->offload_params && st->zero == 3 && st->dp == 1)) {
        struct strategy lower = *st;
        lower.zero = st->zero - 1;
        if (variant_mem(c, lower, 1, v)) {
            double state = v->dev.weights + v->dev.gradients + v->dev.optimizer;
            if (!fits_headroom(c, v))
                estimate_add_reason(e,
                                    "ZeRO-%d: with ZeRO-%d weights+gradients+optimizer need "
                                    "%.1f GiB and b=1 needs %.1f GiB > %.1f GiB per %s",
                                    st->zero, lower.zero, state / GIB, v->dev.total / GIB,
                                    limit / GIB, dev);
            else
                estimate_add_reason(e,
                                    "ZeRO-%d: shards state over %d ranks (%.1f -> %.1f GiB), "
                                    "making room for micro-batch %d",
                                    st->zero, st->dp, state / GIB,
                                    (e->dev.weights + e->dev.gradients + e->dev.optimizer) / GIB,
                                    st->micro_batch);
        }
    } else if (st->dp > 1 && st->zero == 0) {
        estimate_add_reason(e,
                            "no ZeRO sharding: weights+gradients+optimizer (%.1f GiB) fit on "
                            "every %s",
                            (e->dev.weights + e->dev.gradients + e->dev.optimizer) / GIB, dev);
    }
    if (st->sequence_parallel)
        estimate_add_reason(e,
                            "sequence parallel: divides the norm and dropout activations by "
                            "TP=%d at the same traffic",
                            st->tp);
    if (st->recompute == RECOMPUTE_NONE) {
        estimate_add_reason(e, "no recompute: activations fit (%.1f GiB at b=%d)",
                            e->dev.activations / GIB, st->micro_batch);
    } else {
        struct strategy lower = *st;
        lower.recompute = st->recompute == RECOMPUTE_FULL ? RECOMPUTE_SELECTIVE : RECOMPUTE_NONE;
        if (lower.recompute == RECOMPUTE_SELECTIVE && st->attention == ATTN_FLASH)
            lower.recompute = RECOMPUTE_NONE;
        if (variant_mem(c, lower, 1, v) && !fits_headroom(c, v))
            estimate_add_reason(e, "%s recompute: with %s, b=1 needs %.1f GiB > %.1f GiB",
                                recompute_name(st->recompute), recompute_name(lower.recompute),
                                v->dev.total / GIB, limit / GIB);
        else
            estimate_add_reason(e,
                                "%s recompute: frees activation memory for micro-batch %d "
                                "(costs +%.0f%% FLOPs)",
                                recompute_name(st->recompute), st->micro_batch,
                                e->flops_per_step > 0
                                    ? 100.0 * (e->hw_flops_per_step / e->flops_per_step - 1.0)
                                    : 0.0);
    }
    estimate_add_reason(e,
                        "micro-batch %d (at most %d fit: memory is linear in b, 3.8); grad "
                        "accumulation %d -> global batch %lld sequences (%lld tokens)",
                        st->micro_batch, cd->b_max, st->grad_accum,
                        (long long)sp->workload.global_batch,
                        (long long)(sp->workload.global_batch * sp->workload.seq));
    if (st->optimizer == OPT_ADAMW)
        estimate_add_reason(e, "optimizer: %s", state_name(st->optimizer));
    else
        estimate_add_reason(e,
                            "optimizer: %s because AdamW fits nowhere; warning: it trades "
                            "convergence for memory (section 12)",
                            state_name(st->optimizer));
    if (st->lora_rank > 0)
        estimate_add_reason(e,
                            "%s rank %d (base %s): full training fits nowhere, so only "
                            "adapters train",
                            st->weights == WFMT_INT8 || st->weights == WFMT_INT4 ? "QLoRA" : "LoRA",
                            st->lora_rank, wformat_name(st->weights));
    if (st->offload_optimizer)
        estimate_add_reason(e,
                            "optimizer offload: nothing fits on the %ss without it; the "
                            "optimizer step runs on the CPU (host needs %.1f GiB)",
                            c->cpu ? "device" : "GPU", e->host_total_bytes / GIB);
    if (st->offload_params)
        estimate_add_reason(e, "parameter offload: optimizer offload alone does not fit; "
                               "16-bit weights stream from host RAM");
}

static void add_infer_reasons(struct ctx *c, struct cand *cd)
{
    struct search_plan *sp = &cd->p;
    struct strategy *st = &sp->strategy;
    struct estimate *e = &sp->estimate;
    if (st->weights == c->w16)
        estimate_add_reason(e,
                            "weights %s: fit without quantisation (11.6: do not quantise "
                            "for its own sake)",
                            wformat_name(st->weights));
    else
        estimate_add_reason(e, "weights %s: 16-bit weights do not fit with %.0f%% headroom",
                            wformat_name(st->weights), c->headroom * 100.0);
    if (st->kv_dtype != c->w16)
        estimate_add_reason(e, "KV cache %s: the 16-bit cache does not fit",
                            wformat_name(st->kv_dtype));
    if (st->tp > 1) {
        const char *link = c->hw->n_gpus > 1 ? hw_link_name(c->hw->link[0][1]) : "?";
        estimate_add_reason(e,
                            "TP=%d inside one node over %s: the model does not fit one "
                            "device; weights and KV cache split %d ways (11.7)",
                            st->tp, link, st->tp);
    }
    if (st->pp > 1)
        estimate_add_reason(e,
                            "layer split over %d devices: tensor parallel inside one node is "
                            "not enough (11.7)",
                            st->pp);
    if (st->dp > 1)
        estimate_add_reason(e, "%d replicas (dp=%d): each serves its own requests", st->dp, st->dp);
    if (sp->workload.batch < c->w->batch)
        estimate_add_reason(e,
                            "batch reduced from %d to %d: the KV cache of %d sequences does "
                            "not fit",
                            c->w->batch, sp->workload.batch, c->w->batch);
}

/* When nothing fits: how many devices would (ZeRO-3/TP/full recompute at b=1), what
 * quantisation or LoRA would give. */
static void add_nofit_reasons(struct ctx *c, struct search_result *out)
{
    if (c->n_close == 0) {
        result_add_reason(out, "no valid configuration for this model on this hardware%s%s",
                          c->first_reject[0] ? ": " : "", c->first_reject);
        return;
    }
    struct cand *best = &c->close[0];
    result_add_reason(out,
                      "nothing fits with %.0f%% headroom; the closest plan needs %.1f GiB "
                      "more per device",
                      c->headroom * 100.0, best->overflow / GIB);
    /* More devices: grow the node count until the frugal layout fits. */
    struct hardware *big = sw_xmalloc(sizeof(*big));
    *big = *c->hw;
    struct strategy st = best->p.strategy;
    int tps[16];
    int ntp = tp_list(c, tps);
    st.tp = tps[ntp - 1];
    st.pp = 1;
    st.pp_interleave = 1;
    st.recompute = RECOMPUTE_FULL;
    st.sequence_parallel = st.tp > 1;
    const struct hardware *saved = c->hw;
    int64_t saved_target = c->target_seq;
    c->hw = big;
    c->target_seq = 0;
    for (int nodes = big->nodes * 2; nodes <= (1 << 16); nodes *= 2) {
        big->nodes = nodes;
        int devs = big->n_gpus > 0 ? nodes * big->n_gpus : nodes;
        if (c->w->task == TASK_TRAIN) {
            st.dp = devs / st.tp;
            st.zero = st.dp > 1 ? 3 : 0;
        } else {
            /* Inference: TP inside a node, layers split across nodes (11.7). */
            st.dp = 1;
            st.zero = 0;
            st.pp = devs / st.tp;
            if (st.pp > c->m->n_layers)
                break;
        }
        struct workload wl;
        if (evaluate(c, &st, &wl, 1, false, &c->scratch) == 0 && fits_headroom(c, &c->scratch)) {
            result_add_reason(
                out,
                "more devices: it would fit on %d %s (%d node%s of this "
                "hardware) with %s, TP=%d",
                devs, big->n_gpus > 0 ? "GPUs" : "CPU nodes", nodes, nodes == 1 ? "" : "s",
                c->w->task == TASK_TRAIN ? "ZeRO-3, full recompute" : "layers split across nodes",
                st.tp);
            break;
        }
    }
    c->hw = saved;
    c->target_seq = saved_target;
    free(big);
    if (c->w->task == TASK_INFER) {
        result_add_reason(out, "smaller weights: int4 and an int8 KV cache were tried; a "
                               "shorter context or batch 1 reduces the KV cache");
    } else {
        result_add_reason(out,
                          "offload: optimizer and parameter offload to host RAM were "
                          "tried%s",
                          best->p.estimate.host_fits ? "" : " (host RAM is too small for them)");
        if (!c->o->allow_lora) {
            struct strategy q = best->p.strategy;
            q.lora_rank = 16;
            q.weights = WFMT_INT4;
            q.offload_optimizer = q.offload_params = false;
            q.optimizer = OPT_ADAMW;
            if (q.dp < 2)
                q.zero = 0; /* ZeRO needs two ranks without parameter offload */
            struct workload wl;
            if (evaluate(c, &q, &wl, 1, false, &c->scratch) == 0 && fits_headroom(c, &c->scratch))
                result_add_reason(out, "LoRA: QLoRA (int4 base, rank 16) would fit; allow it "
                                       "with --allow-lora (fine-tuning only)");
            else
                result_add_reason(out, "LoRA: even QLoRA (int4 base, rank 16) does not fit "
                                       "the closest layout");
        }
    }
}

/* ------------------------------------------------------------------ entry */

int advisor_search(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
                   const struct search_opts *o, const struct advisor_calib *cal,
                   struct search_result *out, struct sw_err *err)
{
    double t0 = sw_now_s();
    search_result_init(out);
    if (o->top_k < 1 || o->top_k > 1000)
        return sw_errf(err, SW_EINVAL, "top_k %d outside [1, 1000]", o->top_k);
    if (!(o->headroom >= 0 && o->headroom < 1))
        return sw_errf(err, SW_EINVAL, "headroom %g outside [0, 1)", o->headroom);
    int rc = model_validate(m, err);
    if (rc < 0)
        return rc;

    struct ctx *c = sw_xcalloc(1, sizeof(*c));
    c->m = m;
    c->hw = hw;
    c->w = w;
    c->o = o;
    c->cal = cal;
    c->headroom = o->headroom;
    c->k = o->top_k;
    c->cpu = hw_is_cpu_only(hw);
    c->gpn = c->cpu ? 1 : hw->n_gpus;
    c->devices = hw_devices(hw);
    if (o->max_devices > 0 && o->max_devices < c->devices)
        c->devices = o->max_devices;
    c->cc = hw_min_cc(hw);
    /* The built-in CPU executor runs bf16-mixed with native AVX512-BF16 matmuls where the CPU
     * has them (11.4 step 1); elsewhere bf16 would only add a weight copy, so fp32. */
    bool bf16 = c->cpu ? (hw->cpu.isa & HW_ISA_AVX512_BF16) != 0 : c->cc >= 80;
    c->prec = bf16 ? PREC_BF16_MIXED : (c->cpu ? PREC_FP32 : PREC_FP16_MIXED);
    bool half = c->prec != PREC_FP32;
    /* The CPU has a tiled fp32 kernel with the flash memory profile; GPUs need 16-bit inputs
     * and CC >= 8.0 (section 10). */
    c->attn = c->cpu || (half && c->cc >= 80) ? ATTN_FLASH : ATTN_NAIVE;
    c->w16 = bf16 ? WFMT_BF16 : (c->cpu ? WFMT_FP32 : WFMT_FP16);
    c->top = sw_xcalloc((size_t)c->k, sizeof(*c->top));
    c->close = sw_xcalloc((size_t)c->k, sizeof(*c->close));

    if (w->task == TASK_TRAIN) {
        int s = w->seq > 0 ? w->seq : 1;
        if (w->global_batch > 0)
            c->target_seq = w->global_batch;
        else if (o->global_batch_tokens > 0)
            c->target_seq = (o->global_batch_tokens + s / 2) / s;
        else if (!c->cpu) {
            /* GPUs: about 0.5M tokens per step (GPT-3 used 0.5M for its 125M model and more for
             * larger ones), more when every device needs a sequence. CPU runs are small
             * experiments: one micro-batch per rank unless a target is given. */
            int64_t tok = (int64_t)1 << 19;
            if ((int64_t)c->devices * s > tok)
                tok = (int64_t)c->devices * s;
            c->target_seq = tok / s;
        }
        if (c->target_seq < 1 && (w->global_batch > 0 || o->global_batch_tokens > 0))
            c->target_seq = 1;
        if (c->target_seq > 0)
            result_add_reason(out,
                              "global batch target: %lld sequences of %d tokens (%lld "
                              "tokens per step)",
                              (long long)c->target_seq, s, (long long)c->target_seq * s);
        else
            result_add_reason(out, "no global batch target: one micro-batch per data-parallel "
                                   "rank per step (4p with a pipeline)");
    }
    if (c->cpu)
        result_add_reason(out, "CPU only: %s, one process per node", precision_name(c->prec));
    else
        result_add_reason(out, "%s: CC %d.%d %s", precision_name(c->prec), c->cc / 10, c->cc % 10,
                          bf16 ? "supports bf16" : "has no bf16 (fp16 with loss scaling)");

    if (w->task == TASK_TRAIN)
        search_train(c, out);
    else
        search_infer(c, out);

    out->any_fits = c->n_top > 0;
    struct cand *src = out->any_fits ? c->top : c->close;
    int n = out->any_fits ? c->n_top : c->n_close;
    out->plans = sw_xcalloc((size_t)(n > 0 ? n : 1), sizeof(*out->plans));
    /* Final estimates: the full advisor_estimate (with its own reasons), then the search's. */
    for (int i = 0; i < n; i++) {
        struct cand *cd = &src[i];
        struct estimate fresh;
        estimate_init(&fresh);
        if (advisor_estimate(m, hw, &cd->p.workload, &cd->p.strategy, cal, &fresh, &c->err) == 0)
            cd->p.estimate = fresh;
        if (out->any_fits) {
            cd->p.score = score_of(c, &cd->p.estimate);
            if (w->task == TASK_TRAIN)
                add_train_reasons(c, cd);
            else
                add_infer_reasons(c, cd);
        } else {
            estimate_add_reason(&cd->p.estimate,
                                "does not fit: %.1f GiB over the limit of "
                                "%.0f%% of %.1f GiB",
                                cd->overflow / GIB, (1.0 - c->headroom) * 100.0,
                                cd->p.estimate.capacity_bytes / GIB);
        }
        out->plans[i] = cd->p;
    }
    out->n_plans = n;
    if (out->any_fits)
        result_add_reason(out, "%lld configurations fit; ranked by %s",
                          (long long)c->fitting_configs,
                          w->task == TASK_TRAIN ? "tokens/s"
                                                : "per-token latency, then "
                                                  "throughput");
    else
        add_nofit_reasons(c, out);
    out->candidates_evaluated = c->evaluated;
    free(c->top);
    free(c->close);
    free(c);
    out->elapsed_s = sw_now_s() - t0;
    return 0;
}
