/* The memory model (strategy reference sections 3, 4 and 5): per-device bytes of weights,
 * gradients, optimizer state, activations (with logits), KV cache, workspace and runtime
 * overhead, the host memory of a node, and the fit test of 3.8. Training follows 3.1 (bytes per
 * parameter by precision row and optimizer), 3.2 (ZeRO sharding, ZeRO-3 working set), 3.2.1 (TP
 * and PP splitting, heaviest stage), 3.3 (offload), 3.4 (LoRA/QLoRA), 3.5 (activations, general
 * per-token form), 3.6 (logits) and 3.7 (workspace, overhead); inference follows 4.1-4.4. Also
 * est_geom_init, the plan geometry speed.c shares. Time is speed.c's; the rules a plan must obey
 * are check.c's. Never allocates, never does I/O.
 *
 * Modelling choices ([cal] unless said otherwise), stated once here and in the reasons:
 *  - Precision rows (3.1): bf16-mixed and fp16-mixed use "mixed, fp32 grads" (2+4+4), `bf16` the
 *    pure 16-bit row (2+0+2), fp32 and tf32 the fp32 row (4+0+4). LoRA adapters are fp32
 *    (4+0+4). Adafactor's factored state is counted exactly per matrix, 4*(rows+cols).
 *  - Activations (3.5): dropout off (delta = 0; the executor trains without dropout), saved
 *    norm inputs in the compute dtype (e_n = e), norm statistics recomputed, not saved.
 *  - Logits (3.6): c_V = 4, fp32 logits overwritten in place by their gradient; the whole
 *    micro-batch at once (no loss chunking).
 *  - Workspace (3.7): one A_layer; plus the ZeRO-3 gather working set W_g with one prefetched
 *    unit, two 25 MiB gradient buckets for ZeRO-2, and one dequantised layer for int weights.
 *  - Overhead: GPU: the calibration's runtime overhead (1 GiB default) plus the fragmentation
 *    margin m_frag of capacity, so `fits` is simply total <= capacity. CPU device: a 64 MiB
 *    process baseline (EST_CPU_PROCESS_BYTES, until calibrated); host memory is the device,
 *    shared by the node's processes, and the host reserve (10%) is the margin.
 *  - CPU device running the built-in executor (fp32 or bf16-mixed training with dp processes
 *    and ZeRO 1-3 as cpu_exec_zero describes, fp32/bf16/int8 generation, no TP/PP): the
 *    formulas above are replaced by the executor's own layout
 *    (cpu_exec_stage below: fp32 master weights plus a bf16 copy, fp32 gradients, the
 *    optimizer state exactly as executor/optimizer.c lays it out, fp32 activations per
 *    recompute mode, an fp32 KV cache, the executor's workspace), byte for byte. The formulas
 *    above still describe a generic GPU executor. LoRA adapts every linear layer in both.
 *  - GPU plans the same executor runs on its CUDA backend (strategy.device cuda, the same
 *    conditions), when asked for (advisor_estimate_builtin; advisor_estimate keeps the generic
 *    formulas, which the published figures test): the same layout with the CUDA plugin's
 *    scratch sizes and its own 33,816,576 bytes of workspace, bf16-mixed training's activations
 *    and logits kept in bf16 and generation's bf16 KV cache where the executor keeps them so
 *    (exec_act16, exec_kv16). The overhead, outside the categories the executor counts, is its
 *    measured runtime (EST_CUDA_EXEC_RUNTIME_BYTES) with no fragmentation margin: it allocates
 *    every buffer once, with plain cudaMalloc.
 *  - Pipeline: the first and last stages are both computed and the heavier one is reported
 *    (normally the first: the most micro-batches in flight).
 *  - Host: ZeRO-Offload terms of 3.3 with k_pin, plus per rank a 64 MiB process baseline and
 *    the loading path of section 5: training builds each rank's shard directly (4*P_max),
 *    inference memory-maps safetensors (the largest tensor in the checkpoint dtype). */
#include "advisor/advisor.h"

#include <math.h>
#include <string.h>

#include "advisor/advisor_int.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

static const double k_bucket_bytes = 25.0 * MIB; /* PyTorch's default bucket (3.7) */
static const int k_vocab_pad = 128;              /* Megatron's padding multiple (2.3) */

static bool is_int_format(enum sw_wformat f)
{
    return f == WFMT_INT8 || f == WFMT_INT4;
}

/* 4.1: bytes per parameter of a weight format (int8: groups of 128 with a 16-bit scale; int4:
 * groups of 128 with 16-bit scale and zero point). */
static double wformat_bytes(enum sw_wformat f)
{
    switch (f) {
    case WFMT_FP32:
        return 4.0;
    case WFMT_INT8:
        return 1.0 + 2.0 / 128.0; /* 1.0156 */
    case WFMT_INT4:
        return 0.5 + 4.0 / 128.0; /* 0.5313 */
    default:
        return 2.0;
    }
}

/* 4.2: KV bytes per element; quantised caches carry one 16-bit scale per 128 elements. */
static double kv_bytes(enum sw_wformat f)
{
    switch (f) {
    case WFMT_FP32:
        return 4.0;
    case WFMT_INT8:
        return 1.0 + 2.0 / 128.0;
    case WFMT_INT4:
        return 0.5 + 2.0 / 128.0;
    default:
        return 2.0;
    }
}

/* 3.1 optimizer table: B_o per trainable parameter (adafactor: see est_geom_init). */
static double optimizer_bytes(enum sw_optimizer o)
{
    switch (o) {
    case OPT_ADAMW:
        return 8.0;
    case OPT_ADAMW8BIT:
        return 2.0 + 8.0 / 2048.0; /* block-wise int8 m, v + fp32 scale per 2048 */
    case OPT_SGD:
        return 0.0;
    case OPT_SGD_MOMENTUM:
    case OPT_LION:
        return 4.0;
    default:
        return 0.0;
    }
}

/* Adafactor, factored, no first moment (3.1): 4*(r + c) per matrix, 4 per vector element, for
 * the whole model, as bytes per parameter on average. */
static double adafactor_bytes(const struct model_desc *m, const struct model_counts *c)
{
    double h = m->hidden;
    double per_layer = 4.0 * model_lora_params_layer(m, 1, 1); /* sum of (d_in + d_out) */
    struct layer_params lp;
    model_layer_params_rank(m, 1, &lp);
    per_layer += 4.0 * lp.vector;
    double total = m->n_layers * per_layer + 4.0 * ((double)c->vocab_padded + h) +
                   4.0 * (double)c->params_final_norm;
    if (m->arch == MODEL_ARCH_GPT2)
        total += 4.0 * ((double)m->max_pos + h);
    if (!m->tied_head)
        total += 4.0 * ((double)c->vocab_padded + h);
    return c->params_total > 0 ? total / (double)c->params_total : 0.0;
}

void est_geom_init(struct est_geom *g, const struct model_desc *m, const struct hardware *hw,
                   const struct workload *w, const struct strategy *s)
{
    memset(g, 0, sizeof(*g));
    g->cpu = advisor_dev_is_cpu(hw, s);
    g->train = w->task == TASK_TRAIN;
    g->t = s->tp > 1 ? s->tp : 1;
    g->p = s->pp > 1 ? s->pp : 1;
    g->v = (g->p > 1 && s->pp_interleave > 1) ? s->pp_interleave : 1;
    g->n_dp = s->dp > 1 ? s->dp : 1;
    g->m = (g->train && s->grad_accum > 1) ? s->grad_accum : 1;
    /* Inference: `batch` is all sequences served at once; each of the dp replicas holds its
     * share (ceil). */
    g->b = g->train ? s->micro_batch : (w->batch + g->n_dp - 1) / g->n_dp;
    if (g->b < 1)
        g->b = 1;
    g->s = g->train ? w->seq : w->prompt_len;
    g->lora = g->train && s->lora_rank > 0;
    g->quant = is_int_format(s->weights) && (!g->train || g->lora);
    g->tied = m->tied_head;
    model_count(m, k_vocab_pad * g->t, &g->c);
    int L = m->n_layers;
    g->L_first = (L + g->p - 1) / g->p; /* uneven splits: the first stages take the extra */
    g->L_last = g->p > 1 ? L / g->p : L;
    g->kv_heads_rank = model_kv_heads_rank(m, g->t);
    g->devices = g->n_dp * g->t * g->p;
    int nodes = hw->nodes > 0 ? hw->nodes : 1;
    if (g->cpu)
        g->ranks_per_node = (g->devices + nodes - 1) / nodes;
    else
        g->ranks_per_node = g->devices < hw->n_gpus ? g->devices : hw->n_gpus;
    if (g->ranks_per_node < 1)
        g->ranks_per_node = 1;
    model_layer_params_rank(m, g->t, &g->layer);
    g->vocab_rank = (double)g->c.vocab_padded * m->hidden / g->t;
    g->embed_rank = g->vocab_rank + (double)(g->c.params_embed - g->c.vocab_padded * m->hidden);
    g->head_rank = m->tied_head ? 0.0 : g->vocab_rank;
    g->fnorm = (double)g->c.params_final_norm;
    g->lora_layer = g->lora ? model_lora_params_layer(m, s->lora_rank, g->t) : 0.0;

    /* 3.1 precision rows. */
    switch (s->precision) {
    case PREC_FP32:
    case PREC_TF32:
        g->bw = 4, g->bm = 0, g->bg = 4;
        break;
    case PREC_BF16:
        g->bw = 2, g->bm = 0, g->bg = 2;
        break;
    default: /* mixed 16-bit, fp32 gradient accumulation (the default row) */
        g->bw = 2, g->bm = 4, g->bg = 4;
        break;
    }
    if (g->lora) /* 3.4: adapters held in fp32 */
        g->bw = 4, g->bm = 0, g->bg = 4;
    g->bo =
        s->optimizer == OPT_ADAFACTOR ? adafactor_bytes(m, &g->c) : optimizer_bytes(s->optimizer);
    if (g->lora && s->optimizer == OPT_ADAFACTOR) /* adapters are small matrices: near zero */
        g->bo = 4.0 * (s->lora_rank + m->hidden) / ((double)s->lora_rank * m->hidden);

    g->peak_dtype = advisor_compute_dtype(w, s);
    g->e_act = (g->peak_dtype == HW_DT_FP32 || g->peak_dtype == HW_DT_TF32) ? 4.0 : 2.0;
    /* The CPU executor's bf16 weight copy feeds native AVX512-BF16 matmuls where the CPU has
     * them: the matmul rate is the bf16 one, while activations stay fp32 (e_act above). */
    if (g->cpu && (s->precision == PREC_BF16_MIXED || s->precision == PREC_BF16) &&
        (hw->cpu.isa & HW_ISA_AVX512_BF16))
        g->peak_dtype = HW_DT_BF16;
    /* fp16-mixed on the CPU executor is an emulation on fp32 matmuls (operands rounded to fp16
     * first): the fp32 rate. */
    if (g->cpu && (g->train ? s->precision == PREC_FP16_MIXED : s->weights == WFMT_FP16))
        g->peak_dtype = HW_DT_FP32;
    if (g->train && !g->lora) {
        g->e_mat = g->e_kept = g->bw;
    } else {
        g->e_mat = wformat_bytes(s->weights);
        g->e_kept = s->weights == WFMT_FP32 ? 4.0 : 2.0; /* embedding, head, norms: 16-bit */
    }
    g->e_kv = kv_bytes(s->kv_dtype);
}

double est_stage_params(const struct est_geom *g, bool first)
{
    double layer = g->layer.matrix + g->layer.vector;
    if (g->p == 1)
        return g->L_first * layer + g->embed_rank + g->head_rank + g->fnorm;
    if (first)
        return g->L_first * layer + g->embed_rank;
    /* Last stage: final norm and head; a tied head keeps its own copy of the embedding (3.2.1). */
    return g->L_last * layer + g->fnorm + (g->tied ? g->vocab_rank : g->head_rank);
}

double est_stage_trainable(const struct est_geom *g, bool first)
{
    if (!g->lora)
        return est_stage_params(g, first);
    return (first ? g->L_first : g->L_last) * g->lora_layer;
}

/* Frozen (or inference) weight bytes of a stage on one rank: quantisable matrices at e_mat,
 * the rest (embedding, head, norms, biases) at e_kept (3.4, 4.1). */
static double stage_weight_bytes(const struct est_geom *g, bool first)
{
    int L_st = first ? g->L_first : g->L_last;
    double mat = L_st * g->layer.matrix;
    return mat * g->e_mat + (est_stage_params(g, first) - mat) * g->e_kept;
}

double est_act_tok_bytes(const struct act_shape *x)
{
    double t = x->t > 1 ? x->t : 1;
    double s_att = 0.0;
    if (!x->selective) /* selective recompute rebuilds the attention core (3.5) */
        s_att = x->flash ? 4.0 * x->a : x->a * x->s * (x->e + x->dropout * (1.0 + x->e));
    /* Divided by t under TP: Q, K, V, output-projection input, MLP intermediates, scores. */
    double split = x->e * (x->q + 2.0 * x->h_kv + x->q) + x->e * x->k_f * x->f + s_att;
    /* Kept whole under TP without SP: norm inputs, QKV input, MLP input, dropout masks. */
    double whole = 2.0 * x->e_n * x->h + x->e * x->h + x->e * x->h + x->dropout * 2.0 * x->h;
    if (t == 1)
        return whole + split;
    if (x->sp)
        return (whole + split) / t;
    return whole + split / t;
}

/* The act_shape of this plan (dropout off, e_n = e). */
static void act_shape_of(const struct est_geom *g, const struct model_desc *m,
                         const struct strategy *s, bool selective, struct act_shape *x)
{
    int d = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    x->h = m->hidden;
    x->q = (double)m->n_heads * d;
    x->h_kv = (double)g->kv_heads_rank * d * g->t; /* /t inside gives the rank's heads */
    x->f = m->ffn > 0 ? m->ffn : 4.0 * m->hidden;
    x->a = m->n_heads;
    x->s = g->s;
    x->e = g->e_act;
    x->e_n = g->e_act;
    x->dropout = EST_DROPOUT;
    x->k_f = m->swiglu ? 3.0 : 2.0;
    x->t = g->t;
    x->sp = s->sequence_parallel && g->t > 1;
    x->flash = s->attention == ATTN_FLASH;
    x->selective = selective;
}

/* One stage's split, before overhead. */
struct stage_mem {
    double weights, gradients, optimizer, activations, logits, kv, workspace;
    double host_offload; /* per rank */
    double layer_act;    /* one layer's saved activations (for reasons) */
    double w_gather;     /* ZeRO-3 W_g */
};

static double stage_total(const struct stage_mem *x)
{
    return x->weights + x->gradients + x->optimizer + x->activations + x->kv + x->workspace;
}

static void train_stage(const struct est_geom *g, const struct model_desc *m,
                        const struct strategy *s, const struct advisor_calib *cal, bool first,
                        struct stage_mem *o)
{
    memset(o, 0, sizeof(*o));
    bool last = g->p == 1 || !first;
    bool first_st = g->p == 1 || first;
    int L_st = first ? g->L_first : g->L_last;
    double N = g->n_dp;
    double sw = 1, sg = 1, so = 1;
    if (s->zero >= 1)
        so = 1.0 / N;
    if (s->zero >= 2)
        sg = 1.0 / N;
    if (s->zero >= 3)
        sw = 1.0 / N;

    /* 3.2 / 3.4: model state. P_t trainable (full: all; LoRA: adapters); frozen base bytes. */
    double P_t = est_stage_trainable(g, first);
    double frozen = g->lora ? stage_weight_bytes(g, first) : 0.0;
    o->weights = (frozen + g->bw * P_t) * sw;
    o->gradients = g->bg * P_t * sg;
    o->optimizer = (g->bm + g->bo) * P_t * so;
    if (s->offload_optimizer) {
        /* 3.3 ZeRO-Offload: fp32 weights, state and fp32 gradient shard on the host; the GPU
         * keeps 16-bit gradients (fp32 when training in fp32). 8-bit states modelled fp32. */
        double bo_host = s->optimizer == OPT_ADAMW8BIT ? 8.0 : g->bo;
        o->host_offload += (4.0 + bo_host + 4.0) * P_t * so * cal->pin_factor;
        o->gradients = (g->bw >= 4 ? 4.0 : 2.0) * P_t * sg;
        o->optimizer = 0.0;
    }
    if (s->offload_params) { /* 3.3: weights on the host, the GPU keeps only W_g */
        o->host_offload += (frozen + g->bw * P_t) / N * cal->pin_factor;
        o->weights = 0.0;
    }

    /* 3.5 activations of one micro-batch per layer. */
    struct act_shape x;
    act_shape_of(g, m, s, s->recompute == RECOMPUTE_SELECTIVE, &x);
    double bs = (double)g->b * g->s;
    double a_saved = bs * est_act_tok_bytes(&x);
    x.selective = false;
    double a_full = bs * est_act_tok_bytes(&x);
    double sp_div = x.sp ? g->t : 1.0;
    double in_flight = g->p > 1 ? (first ? (g->p < g->m ? g->p : g->m) : 1) : 1;
    double ifac = (first && g->v > 1) ? 1.0 + (g->p - 1.0) / (g->p * (double)g->v) : 1.0;
    if (s->recompute == RECOMPUTE_FULL) {
        /* Each layer's input, plus one layer rebuilt in full during its backward. */
        o->activations = L_st * in_flight * ifac * g->e_act * bs * m->hidden / sp_div + a_full;
        o->layer_act = g->e_act * bs * m->hidden / sp_div;
    } else {
        double lora_extra = g->lora ? g->e_act * bs * s->lora_rank * model_lora_matrices(m) : 0;
        o->layer_act = a_saved + lora_extra;
        o->activations = L_st * in_flight * ifac * o->layer_act;
        if (first_st) /* embedding output, per micro-batch in flight */
            o->activations += in_flight * ifac * g->e_act * bs * m->hidden / sp_div;
    }
    if (last) { /* final-norm input and the logits buffer (3.6) */
        o->activations += g->e_act * bs * m->hidden / sp_div;
        o->logits = bs * ((double)g->c.vocab_padded / g->t) * EST_LOGIT_BYTES;
        o->activations += o->logits;
    }

    /* 3.7 workspace. */
    o->workspace = a_full;
    if (s->zero == 3) {
        /* W_g = (B_w (1 + k_pf) + e_g) P_unit; lower bound 4 P_max (DeepSpeed). */
        double unit = g->layer.matrix + g->layer.vector;
        if (g->vocab_rank > unit)
            unit = g->vocab_rank;
        double e_w = g->lora ? g->e_kept : g->bw;
        double wg = (e_w * (1.0 + EST_PREFETCH_UNITS) + (g->lora ? 0.0 : g->bw)) * unit;
        if (!g->lora && wg < 4.0 * unit)
            wg = 4.0 * unit;
        o->w_gather = wg;
        o->workspace += wg;
    }
    if (s->zero == 2) {
        double grad_bytes = g->bg * P_t;
        o->workspace += 2.0 * (grad_bytes < k_bucket_bytes ? grad_bytes : k_bucket_bytes);
    }
    if (g->quant) /* QLoRA: one layer dequantised to 16-bit */
        o->workspace += 2.0 * g->layer.matrix;
}

static void infer_stage(const struct est_geom *g, const struct model_desc *m,
                        const struct workload *w, const struct strategy *s, bool first,
                        struct stage_mem *o)
{
    memset(o, 0, sizeof(*o));
    bool last = g->p == 1 || !first;
    int L_st = first ? g->L_first : g->L_last;
    int d = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    double f = m->ffn > 0 ? m->ffn : 4.0 * m->hidden;
    double k_f = m->swiglu ? 3.0 : 2.0;
    double b = g->b, sp = w->prompt_len;
    double T = (double)w->prompt_len + w->gen_len;
    if (m->sliding_window > 0 && T > m->sliding_window)
        T = m->sliding_window;

    o->weights = stage_weight_bytes(g, first); /* 4.1, 4.4 */
    /* 4.2: 2 L g d T b e_kv, ceil(g/t) heads per rank. */
    o->kv = 2.0 * L_st * g->kv_heads_rank * (double)d * T * b * g->e_kv;
    /* 4.3: one layer's live set; prefill of the whole prompt vs one decode step. */
    double heads_rank = (double)m->n_heads / g->t;
    double prefill = b * sp * g->e_act * (2.0 * m->hidden + k_f * f / g->t);
    double decode = b * g->e_act * (2.0 * m->hidden + k_f * f / g->t);
    if (s->attention == ATTN_NAIVE) {
        prefill += b * heads_rank * sp * sp * 4.0; /* fp32 scores */
        decode += b * heads_rank * T * 4.0;
    }
    o->layer_act = prefill > decode ? prefill : decode;
    o->activations = o->layer_act;
    if (last) { /* only the last position is projected: b k V 4 */
        o->logits = b * ((double)g->c.vocab_padded / g->t) * 4.0;
        o->activations += o->logits;
    }
    if (g->quant)
        o->workspace = 2.0 * g->layer.matrix; /* one layer dequantised */
}

/* ---------------------------------------------------------------- the built-in CPU executor
 * On a cpu device the estimate follows what the built-in executor allocates (executor/model.c
 * and executor/optimizer.c; the strategy reference tags this [exact]: "the built-in executor
 * must allocate exactly this"). The advisor never includes executor headers, so the layout is
 * restated here as formulas; tests/unit/test_exec_vs_advisor.c compares the two byte for byte.
 * Units: bytes. a64() is the executor's carving rule: every tensor block starts on a 64-byte
 * boundary. The executor's options follow from the plan as executor/run.c (training) and
 * executor/generate.c (inference) set them: training builds opts.batch = micro_batch,
 * opts.seq = seq; generation builds batch = seq = 1 with a KV cache of kv_batch = the batch and
 * kv_seq = prompt + generated - 1 tokens. */

static double a64(double bytes)
{
    return ceil(bytes / 64.0) * 64.0;
}

/* One LoRA adapter: input width and output columns of the matrix it adapts. */
struct cpu_adapter {
    double in, cols;
};

/* The executor's adapters when every linear layer is adapted (the advisor's LoRA assumption,
 * 3.4; the plan's train.lora_targets may choose fewer). GPT-2: fused c_attn, attn.c_proj,
 * mlp.c_fc, mlp.c_proj; Llama: q, k, v, o, gate, up, down. Returns the count. */
static int cpu_adapters(const struct model_desc *m, struct cpu_adapter *ad)
{
    double C = m->hidden, HS = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    double Q = m->n_heads * HS, KVW = (m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads) * HS;
    double F = m->ffn > 0 ? m->ffn : 4.0 * m->hidden, F2 = m->swiglu ? 2.0 * F : F;
    int n = 0;
    if (m->arch == MODEL_ARCH_GPT2) {
        ad[n++] = (struct cpu_adapter){C, Q + 2.0 * KVW};
        ad[n++] = (struct cpu_adapter){Q, C};
        ad[n++] = (struct cpu_adapter){C, F2};
        ad[n++] = (struct cpu_adapter){F, C};
        return n;
    }
    ad[n++] = (struct cpu_adapter){C, Q};
    ad[n++] = (struct cpu_adapter){C, KVW};
    ad[n++] = (struct cpu_adapter){C, KVW};
    ad[n++] = (struct cpu_adapter){Q, C};
    ad[n++] = (struct cpu_adapter){C, F};
    if (m->swiglu)
        ad[n++] = (struct cpu_adapter){C, F};
    ad[n++] = (struct cpu_adapter){F, C};
    return n;
}

/* Adafactor state of one (rows, cols) tensor in floats: factored row and column statistics
 * when both sides exceed 1, else the full second moment (kcpu_adafactor_row/col_floats). */
static double adafactor_floats(double rows, double cols)
{
    return rows > 1 && cols > 1 ? rows + cols : rows * cols;
}

/* 8-bit AdamW state of one run of n parameters (kcpu_adamw8bit_state_bytes): m and v codes, one
 * byte each, padded to 4 bytes, plus one fp32 absmax per 2048-element block for each; runs
 * under 4096 elements keep fp32 m and v (bitsandbytes' min_8bit_size). 64-byte aligned. */
static double adam8_run_bytes(double n)
{
    if (n <= 0)
        return 0;
    if (n < 4096)
        return a64(8.0 * n);
    return a64(4.0 * ceil(2.0 * n / 4.0) + 2.0 * 4.0 * ceil(n / 2048.0));
}

/* The optimizer's walk over the trainable parameters in region order: for 8-bit AdamW, runs of
 * tensors that share a weight-decay setting (decay on tensors of 2+ dims only) each get one
 * state block; for Adafactor, each tensor (the executor's HF views: Llama q/k/v and gate/up
 * separately; the embedding and head as their V real rows) gets its factored state. */
struct optim_walk {
    bool adam8;
    double run_n; /* parameters in the current decay run */
    bool run_decay;
    bool started;
    double bytes; /* 8-bit: closed runs; Adafactor: all tensors so far */
    /* 8-bit AdamW under ZeRO (world > 1): runs are cut into per-rank pieces as the executor
     * cuts them (advisor_zero_cut_adam8), streamed without storing the cuts. */
    int world;
    double n_total, slot; /* region size and ceil(n_total / world) */
    double run_off;       /* region offset of the current run */
    int rank;             /* the rank collecting pieces now */
    double rank_bytes, rank_n, pos;
    double max_bytes, max_n; /* heaviest rank so far: state bytes, elements */
};

static void shard_finish_rank(struct optim_walk *w)
{
    if (w->rank_bytes > w->max_bytes)
        w->max_bytes = w->rank_bytes;
    if (w->rank_n > w->max_n)
        w->max_n = w->rank_n;
    w->rank_bytes = w->rank_n = 0;
    w->rank++;
}

static double adam8_run_bytes(double n);

/* Close the run [off, off + n): hand its pieces to the ranks whose cuts fall inside it. */
static void shard_close_run(struct optim_walk *w, double off, double n)
{
    for (;;) {
        double t = (double)(w->rank + 1) * w->slot;
        double cut;
        if (w->rank + 1 >= w->world || t >= w->n_total)
            cut = w->n_total;
        else if (t < off + n)
            cut = (double)advisor_zero_cut_adam8((uint64_t)t, (uint64_t)off, (uint64_t)n,
                                                 (uint64_t)w->slot);
        else
            cut = off + n + 1; /* beyond this run */
        if (cut > off + n) {
            w->rank_bytes += adam8_run_bytes(off + n - w->pos);
            w->rank_n += off + n - w->pos;
            w->pos = off + n;
            return;
        }
        w->rank_bytes += adam8_run_bytes(cut - w->pos);
        w->rank_n += cut - w->pos;
        w->pos = cut;
        if (w->rank + 1 >= w->world)
            return; /* the last rank takes the rest */
        shard_finish_rank(w);
    }
}

static void walk_close_run(struct optim_walk *w)
{
    if (w->world > 1)
        shard_close_run(w, w->run_off, w->run_n);
    else
        w->bytes += adam8_run_bytes(w->run_n);
    w->run_off += w->run_n;
    w->run_n = 0;
}

/* One tensor: `rows` x `cols` as the optimizer sees it (cols = 0: a vector of `rows`), taking
 * `stored` parameters of the region (padded vocabulary rows belong to the run they sit in). */
static void walk_tensor(struct optim_walk *w, double rows, double cols, double stored)
{
    bool decay = cols > 0;
    if (!w->adam8) {
        w->bytes += 4.0 * (cols > 0 ? adafactor_floats(rows, cols) : rows);
        return;
    }
    if (w->started && decay != w->run_decay)
        walk_close_run(w);
    w->started = true;
    w->run_decay = decay;
    w->run_n += stored;
}

uint64_t advisor_zero_cut_adam8(uint64_t t, uint64_t run_off, uint64_t run_n, uint64_t slot)
{
    if (t <= run_off)
        return run_off;
    if (t >= run_off + run_n)
        return run_off + run_n;
    uint64_t rel = t - run_off, B = ADVISOR_ADAM8_BLOCK, MIN = ADVISOR_ADAM8_MIN_N;
    if (slot >= 4 * MIN && run_n >= 2 * MIN) {
        uint64_t lo = (MIN + B - 1) / B * B, hi = (run_n - MIN) / B * B;
        if (lo <= hi) {
            uint64_t k = (rel + B / 2) / B * B;
            k = k < lo ? lo : k > hi ? hi : k;
            return run_off + k;
        }
    }
    return rel <= run_n - rel ? run_off : run_off + run_n;
}

/* The executor's shard of a region of n elements over `world` ranks: elements of the heaviest
 * rank (element-wise optimizers: rank 0's min(slot, n)). */
static double shard_len(double n, int world)
{
    double slot = ceil(n / (world > 0 ? world : 1));
    return slot < n ? slot : n;
}

/* Optimizer bytes of the executor for a full model (lora false) or for the adapters, on the
 * heaviest of `world` ZeRO ranks (world 1: unsharded); *max_n (may be NULL) receives that
 * rank's elements of the region. */
static double cpu_optimizer_bytes(const struct model_desc *m, const struct model_counts *c,
                                  enum sw_optimizer o, int lora_rank, int world, double *max_n)
{
    double n_train = (double)c->params_total;
    if (lora_rank > 0)
        n_train = m->n_layers * model_lora_params_layer(m, lora_rank, 1);
    double n_rank = shard_len(n_train, world);
    if (max_n)
        *max_n = n_rank;
    switch (o) {
    case OPT_ADAMW:
        return 8.0 * n_rank; /* m, v fp32 over the rank's part of the region (3.1, 3.2) */
    case OPT_SGD:
        return 0.0;
    case OPT_SGD_MOMENTUM:
    case OPT_LION:
        return 4.0 * n_rank; /* one fp32 buffer */
    default:
        break;
    }
    struct optim_walk w = {.adam8 = o == OPT_ADAMW8BIT};
    if (w.adam8 && world > 1) {
        w.world = world;
        w.n_total = n_train;
        w.slot = ceil(n_train / world);
    }
    struct cpu_adapter ad[8];
    int n_ad = cpu_adapters(m, ad);
    double r = lora_rank;
    if (lora_rank > 0) {
        /* Adapters: per layer A (r, in) then B (cols, r); all matrices, one decay run. */
        for (int l = 0; l < m->n_layers; l++)
            for (int i = 0; i < n_ad; i++) {
                walk_tensor(&w, r, ad[i].in, r * ad[i].in);
                walk_tensor(&w, ad[i].cols, r, ad[i].cols * r);
            }
    } else {
        /* Full model in executor/model.c's layout order (HF order inside a layer). */
        double C = m->hidden, HS = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
        double Q = m->n_heads * HS, KVW = (m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads) * HS;
        double F = m->ffn > 0 ? m->ffn : 4.0 * m->hidden;
        double V = m->vocab, Vp = (double)c->vocab_padded;
        bool gpt2 = m->arch == MODEL_ARCH_GPT2, ln = !m->rms_norm;
        bool mm_bias = m->bias && gpt2; /* GPT-2: every linear; Qwen2-style: q, k, v only */
        walk_tensor(&w, V, C, Vp * C);
        if (gpt2)
            walk_tensor(&w, m->max_pos, C, m->max_pos * C);
        for (int l = 0; l < m->n_layers; l++) {
            walk_tensor(&w, C, 0, C);
            if (ln)
                walk_tensor(&w, C, 0, C);
            if (gpt2) {
                walk_tensor(&w, Q + 2 * KVW, C, (Q + 2 * KVW) * C);
            } else {
                walk_tensor(&w, Q, C, Q * C);
                walk_tensor(&w, KVW, C, KVW * C);
                walk_tensor(&w, KVW, C, KVW * C);
            }
            if (m->bias) {
                if (gpt2) {
                    walk_tensor(&w, Q + 2 * KVW, 0, Q + 2 * KVW);
                } else { /* HF's q/k/v bias views sit after all three weights */
                    walk_tensor(&w, Q, 0, Q);
                    walk_tensor(&w, KVW, 0, KVW);
                    walk_tensor(&w, KVW, 0, KVW);
                }
            }
            walk_tensor(&w, C, Q, C * Q);
            if (mm_bias)
                walk_tensor(&w, C, 0, C);
            walk_tensor(&w, C, 0, C);
            if (ln)
                walk_tensor(&w, C, 0, C);
            if (gpt2) {
                double F2 = m->swiglu ? 2 * F : F;
                walk_tensor(&w, F2, C, F2 * C);
                if (mm_bias)
                    walk_tensor(&w, F2, 0, F2);
                walk_tensor(&w, C, F, C * F);
                if (mm_bias)
                    walk_tensor(&w, C, 0, C);
            } else {
                walk_tensor(&w, F, C, F * C);
                if (m->swiglu)
                    walk_tensor(&w, F, C, F * C);
                walk_tensor(&w, C, F, C * F);
            }
        }
        walk_tensor(&w, C, 0, C);
        if (ln)
            walk_tensor(&w, C, 0, C);
        if (!m->tied_head)
            walk_tensor(&w, V, C, Vp * C);
    }
    if (w.adam8)
        walk_close_run(&w);
    if (w.world > 1) {
        while (w.rank < w.world)
            shard_finish_rank(&w);
        if (max_n)
            *max_n = w.max_n;
        return w.max_bytes;
    }
    return w.bytes;
}

/* Which backend of the built-in executor runs this plan: the CPU backend on a cpu device, the
 * CUDA plugin (kernels/cuda) for strategy.device cuda on a GPU node. Both build the same model
 * (executor/model.c allocates the same buffers on any backend); they differ in the scratch
 * sizes the backend table reports and in the CUDA plugin's own workspace. */
enum exec_backend {
    EXEC_BE_NONE,         /* not an executor plan: the generic formulas */
    EXEC_BE_CPU_EMULATED, /* CPU without AVX512-BF16: fp32 widening buffer for bf16 matmuls */
    EXEC_BE_CPU_NATIVE,   /* CPU with AVX512-BF16: the packed bf16 matmul's scratch */
    EXEC_BE_CUDA,         /* the CUDA plugin: cuBLASLt, bf16 activation-chunk scratch */
};

/* Whether the built-in executor runs this plan (one process per dp rank, no pipeline;
 * training in fp32 or bf16-mixed with an fp32 or 16-bit LoRA base, ZeRO 1-3 except with
 * Adafactor and ZeRO-3 except with LoRA; generation with fp32, bf16 or int8 weights) and on
 * which backend. Other plans keep the generic formulas. */
static enum exec_backend exec_backend_of(const struct est_geom *g, const struct hardware *hw,
                                         const struct strategy *s, bool builtin_gpu)
{
    bool cuda = builtin_gpu && !g->cpu && s->device == DEVICE_CUDA;
    if (!g->cpu && !cuda)
        return EXEC_BE_NONE;
    if (g->t > 1 || g->p > 1 || s->offload_optimizer || s->offload_params)
        return EXEC_BE_NONE;
    if (s->zero > 0 && (!g->train || s->optimizer == OPT_ADAFACTOR || (g->lora && s->zero == 3)))
        return EXEC_BE_NONE; /* the executor refuses these */
    bool runs = g->train ? (s->precision == PREC_FP32 || s->precision == PREC_BF16_MIXED ||
                            s->precision == PREC_FP16_MIXED) &&
                               !(g->lora && is_int_format(s->weights))
                         : s->weights == WFMT_FP32 || s->weights == WFMT_BF16 ||
                               s->weights == WFMT_FP16 || s->weights == WFMT_INT8;
    if (!runs)
        return EXEC_BE_NONE;
    if (cuda)
        return EXEC_BE_CUDA;
    return (hw->cpu.isa & HW_ISA_AVX512_BF16) ? EXEC_BE_CPU_NATIVE : EXEC_BE_CPU_EMULATED;
}

/* Where the executor on the CUDA backend keeps 16-bit buffers (executor/model.c): bf16
 * activations and logits for bf16-mixed training without naive attention, LoRA or not (act16;
 * the adapters' fp32 inputs are widened into the backward's temporaries), bf16 activations
 * (fp32 logits) for generation with bf16 weights without naive attention (act16, with its bf16
 * cache), a bf16 KV cache for generation with bf16 weights (kv16). A checkpoint with LoRA
 * adapters, which the plan does not show, keeps fp32 activations in generation. */
static bool exec_act16(enum exec_backend be, const struct est_geom *g, const struct strategy *s)
{
    if (be != EXEC_BE_CUDA || s->attention == ATTN_NAIVE)
        return false;
    return g->train ? s->precision == PREC_BF16_MIXED : s->weights == WFMT_BF16;
}

static bool exec_kv16(enum exec_backend be, const struct est_geom *g, const struct strategy *s)
{
    return be == EXEC_BE_CUDA && !g->train && s->weights == WFMT_BF16;
}

/* ZeRO on the executor (executor/train.c, docs/distributed.md), on the heaviest rank: the
 * optimizer state of the rank's shard only; gradients a full fp32 region under ZeRO-1, and
 * under ZeRO-2/3 (exec_model_opts.shard_grads) only the non-layer gradients and one layer
 * buffer in the model, each layer's handed to its owners after its backward, plus the
 * optimizer's fp32 gradients of the rank's shard (unaligned: their own allocation, requested
 * bytes); reduce-scatter and all-gather go through a
 * staging buffer of (world + 1) chunks, a chunk being min(the largest shard, 25 MiB / world of
 * fp32), at least one element; ZeRO-3 keeps the rank's fp32 master shard as its weights plus
 * the model's weight family, which holds only the non-layer weights (embeddings, final norm,
 * an untied head) and two buffers of one layer each, into which each layer is gathered before
 * it runs (executor/model.c carve_all, in that order, each 64-byte aligned); with bf16-mixed
 * the bf16 copy follows the same shape: the resident weights' copy and one per layer buffer
 * (converted as each layer is gathered). */
static void cpu_exec_zero(const struct est_geom *g, const struct model_desc *m,
                          const struct strategy *s, struct stage_mem *o)
{
    int world = g->n_dp;
    if (s->zero < 1 || world < 2)
        return;
    double max_n = 0;
    o->optimizer = cpu_optimizer_bytes(m, &g->c, s->optimizer, g->lora ? s->lora_rank : 0,
                                       world, &max_n);
    double chunk = floor(k_bucket_bytes / 4.0 / world);
    if (chunk > max_n)
        chunk = max_n;
    if (chunk < 1)
        chunk = 1;
    o->workspace += 4.0 * (world + 1) * chunk;
    double P = (double)g->c.params_total, Pl = (double)g->c.params_layer;
    if (s->zero >= 2 && g->lora) /* one layer's adapters, the shard's own */
        o->gradients = a64(4 * model_lora_params_layer(m, s->lora_rank, 1)) + 4.0 * max_n;
    else if (s->zero >= 2) /* the non-layer gradients, one layer buffer, the shard's own */
        o->gradients = a64(4 * (P - m->n_layers * Pl)) + a64(4 * Pl) + 4.0 * max_n;
    if (s->zero == 3) {
        double resident = P - m->n_layers * Pl;
        o->weights = 4.0 * max_n + a64(4 * resident) + 2 * a64(4 * Pl);
        if (s->precision == PREC_BF16_MIXED || s->precision == PREC_FP16_MIXED)
            o->weights += a64(2 * resident) + 2 * a64(2 * Pl);
    }
}

/* The CUDA plugin's own buffers, allocated when it loads and counted under workspace: the
 * 256 KiB reduction buffer (CUDA_REDUCE_FLOATS = 64 Ki floats, kernels/cuda/cuda_int.cuh) and
 * the 32 MiB cuBLASLt workspace (LT_WORKSPACE_BYTES, kernels/cuda/matmul.cu); 33,816,576 bytes
 * in all (docs/cuda.md, "Memory accounting"). */
static const double k_cuda_plugin_ws_bytes = 64.0 * 1024 * 4 + 32.0 * MIB;

/* kcuda_matmul_bf16_scratch_bytes (kernels/cuda/matmul.cu): the bf16 copy of a chunk of
 * activation rows, 2 B x N x 64 Ki elements, clamped to [4 MiB, 256 MiB]. */
static double cuda_matmul_bf16_scratch_bytes(double N)
{
    double b = 2.0 * (N > 0 ? N : 1) * 65536.0;
    return b < 4.0 * MIB ? 4.0 * MIB : b > 256.0 * MIB ? 256.0 * MIB : b;
}

/* The executor's bytes by category for one process (executor/model.c carve_all, in its order;
 * executor/optimizer.c layout_state) on backend `be` (not EXEC_BE_NONE). */
static void cpu_exec_stage(const struct est_geom *g, const struct model_desc *m,
                           const struct workload *w, const struct strategy *s,
                           enum exec_backend be, struct stage_mem *o)
{
    memset(o, 0, sizeof(*o));
    double L = m->n_layers, C = m->hidden;
    double HS = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    double NH = m->n_heads, Q = NH * HS;
    double KVW = (m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads) * HS, QKV = Q + 2 * KVW;
    double F = m->ffn > 0 ? m->ffn : 4.0 * m->hidden, F2 = m->swiglu ? 2 * F : F;
    double Vp = (double)g->c.vocab_padded, P = (double)g->c.params_total;
    bool ln = !m->rms_norm, rope = m->arch == MODEL_ARCH_LLAMA, train = g->train;
    bool naive = s->attention == ATTN_NAIVE;
    /* bf16: a 16-bit weight mirror (bf16, or IEEE fp16 under fp16-mixed: same bytes). */
    bool fp16 = train ? s->precision == PREC_FP16_MIXED : s->weights == WFMT_FP16;
    bool bf16 = (train ? s->precision == PREC_BF16_MIXED : s->weights == WFMT_BF16) || fp16;
    bool int8 = !train && s->weights == WFMT_INT8;
    double r = g->lora ? s->lora_rank : 0;
    struct cpu_adapter ad[8];
    int n_ad = cpu_adapters(m, ad);
    double P_lora = g->lora ? L * model_lora_params_layer(m, s->lora_rank, 1) : 0;

    /* Options as the executor is built: training B x T; generation 1 x 1 plus the cache. */
    double B = train ? g->b : 1, T = train ? g->s : 1;
    double kvB = train ? 0 : g->b;
    double kvT = train ? 0 : (double)w->prompt_len + (w->gen_len > 0 ? w->gen_len : 1) - 1;
    double N = B * T;
    double rows = train ? N : (N > kvB * kvT ? N : kvB * kvT);
    double lrows = train ? N : (N > kvB ? N : kvB);
    enum sw_recompute rc = train ? s->recompute : RECOMPUTE_FULL; /* generation: one layer */

    /* weights: fp32 master (V padded to 128), fp32 adapters, bf16 copy of the base (2 B/param),
     * int8 matmul codes (each matrix 64-byte aligned, the head after the layers) and fp32
     * per-row scales. */
    o->weights = a64(4 * P);
    if (g->lora)
        o->weights += a64(4 * P_lora);
    if (bf16)
        o->weights += a64(2 * P);
    if (int8) {
        double codes = a64(QKV * C) + a64(C * Q) + a64(F2 * C) + a64(C * F);
        o->weights += a64(codes * L + a64(Vp * C)) + a64(4 * ((QKV + C + F2 + C) * L + Vp));
    }
    /* gradients: fp32 for what is trained, one region. */
    if (train)
        o->gradients = a64(4 * (g->lora ? P_lora : P));
    if (train)
        o->optimizer =
            cpu_optimizer_bytes(m, &g->c, s->optimizer, g->lora ? s->lora_rank : 0, 1, NULL);

    /* activations (3.5, 3.6, fp32): layer inputs (training: all L+1; generation: two
     * ping-pong buffers), then per layer the norm outputs and statistics (LayerNorm keeps mean
     * and rstd, RMSNorm rstd), QKV, the residual after attention, the MLP pre-activation and
     * activation, and the attention core (naive: B*NH*T*T probabilities; flash: B*NH*T
     * log-sum-exp) with its output. Recompute: none keeps all L; selective keeps L norm/QKV/MLP
     * sets but one shared core; full (and generation) one shared set. Then the final norm, the
     * logits (gradient written in place) and the token and target ids (int32). */
    /* bf16 activations (executor/model.c act16_available): bf16-mixed training on the CUDA
     * backend without naive attention (LoRA or not) stores the norm outputs, QKV, the attention
     * output, the MLP pre-activation and activation and the logits in bf16 (e = 2); the
     * residual after attention, the statistics and lse stay fp32. Generation with bf16 weights
     * the same, but for the logits (fp32: e_lg). */
    double e = exec_act16(be, g, s) ? 2 : 4, e_lg = train ? e : 4;
    double stat = a64(4 * rows) * (ln ? 2 : 1);
    double fresh = a64(e * rows * C) * 2 + a64(4 * rows * C) + 2 * stat + a64(e * rows * QKV) +
                   a64(e * rows * F2) + a64(e * rows * F);
    double core = (naive ? a64(4 * B * NH * T * T) : a64(4 * B * NH * T)) + a64(e * rows * Q);
    double n_fresh = rc == RECOMPUTE_FULL ? 1 : L, n_core = rc == RECOMPUTE_NONE ? L : 1;
    double inputs = (train ? L + 1 : 2) * a64(4 * rows * C);
    o->logits = a64(e_lg * lrows * Vp); /* bf16 in training (model.c lg16) */
    o->activations = inputs + n_fresh * fresh + n_core * core + a64(e * rows * C) + stat +
                     o->logits + a64(4 * rows) + a64(4 * N);
    o->layer_act = fresh + core;

    /* KV cache: K and V of every layer, kv_batch x kv_seq x NKV*HS each (4.2): fp32 (e_kv = 4),
     * bf16 with bf16 weights on the CUDA backend (e_kv = 2; executor/model.c kv16). */
    if (kvB > 0)
        o->kv = 2 * a64((exec_kv16(be, g, s) ? 2 : 4) * kvB * kvT * KVW * L);

    /* workspace: the matmul output before a residual add; training adds one layer's backward
     * temporaries (two C-wide, MLP, attention output, QKV) and the naive attention's score
     * gradients (B*NH*T*T, the same on the CPU and in kcuda_attention_backward_scratch_bytes);
     * bf16 adds, on a CPU with AVX512-BF16 (the executor then runs its native bf16 matmul),
     * that kernel's scratch: 2*KC*roundup(rows, MR) + 2*KC*NC bytes with MR = 8, KC = NC = 768
     * (kcpu_matmul_bf16_scratch_bytes, kernels/cpu/kernels_cpu.h), on CUDA (native bf16
     * always) the plugin's activation-chunk scratch (cuda_matmul_bf16_scratch_bytes; none in
     * generation on bf16 activations, which rounds nothing), and
     * elsewhere the fp32 widening buffer of the largest matmul weight (the head when the
     * vocabulary is large); fp16-mixed on the CPU (always emulated) that buffer and the
     * rounded operands of EXEC_F16_EMU_ROWS (64) rows of the widest matmul input and output
     * (executor/model.c f16_forward_emulated), on CUDA the same scratch as bf16; LoRA the
     * bottleneck and column temporaries; Llama the RoPE cos/sin tables; CUDA the plugin's own
     * buffers. */
    o->workspace = a64(4 * rows * C);
    if (train) {
        o->workspace += 2 * a64(4 * N * C) + a64(4 * N * F) + a64(4 * N * F2) + a64(4 * N * Q) +
                        a64(4 * N * QKV);
        if (naive)
            o->workspace += a64(4 * B * NH * T * T);
    }
    if (bf16 && be == EXEC_BE_CUDA) {
        /* generation on bf16 activations rounds nothing: no scratch */
        if (train || !exec_act16(be, g, s))
            o->workspace += a64(cuda_matmul_bf16_scratch_bytes(rows));
    } else if (bf16 && !fp16 && be == EXEC_BE_CPU_NATIVE) {
        const double mr = 8, kc = 768, nc = 768;
        o->workspace += a64(2 * kc * ceil(rows / mr) * mr + 2 * kc * nc);
    } else if (bf16) {
        double mx = Vp * C;
        double mm[4] = {QKV * C, C * Q, F2 * C, C * F};
        for (int i = 0; i < 4; i++)
            mx = mm[i] > mx ? mm[i] : mx;
        o->workspace += a64(4 * mx);
        if (fp16) {
            double in = fmax(C, fmax(Q, F)), out = fmax(fmax(QKV, C), fmax(F2, Vp));
            o->workspace += a64(4 * fmin(rows, 64) * (in + out));
        }
    }
    if (g->lora) {
        double mxc = 0;
        for (int i = 0; i < n_ad; i++)
            mxc = ad[i].cols > mxc ? ad[i].cols : mxc;
        o->workspace += a64(4 * rows * r) * (train ? 2 : 1) + a64(4 * rows * mxc);
    }
    if (rope) {
        double ropeT = T > kvT ? T : kvT;
        o->workspace += 2 * a64(4 * ropeT * floor(HS / 2));
    }
    if (train)
        cpu_exec_zero(g, m, s, o);
    if (be == EXEC_BE_CUDA)
        o->workspace += k_cuda_plugin_ws_bytes;
}

static const char *stage_word(const struct est_geom *g, bool first)
{
    return g->p == 1 ? "single stage" : first ? "first stage" : "last stage";
}

/* Name and size of the biggest component, for "activations dominate: 34.2 GiB of 61 GiB". */
static void reason_dominant(struct estimate *out)
{
    const struct mem_split *d = &out->dev;
    const char *names[] = {"weights",  "gradients", "optimizer state", "activations",
                           "KV cache", "workspace", "runtime overhead"};
    double vals[] = {d->weights,  d->gradients, d->optimizer, d->activations,
                     d->kv_cache, d->workspace, d->overhead};
    int best = 0;
    for (int i = 1; i < 7; i++)
        if (vals[i] > vals[best])
            best = i;
    if (d->total <= 0)
        return;
    estimate_add_reason(out, "%s dominate%s: %.1f GiB of %.1f GiB per device (%.0f%%)", names[best],
                        (best == 0 || best == 1 || best == 3) ? "" : "s", vals[best] / GIB,
                        d->total / GIB, 100.0 * vals[best] / d->total);
}

int advisor_estimate_memory(const struct model_desc *m, const struct hardware *hw,
                            const struct workload *w, const struct strategy *s,
                            const struct advisor_calib *cal, struct estimate *out,
                            struct sw_err *err)
{
    return est_memory(m, hw, w, s, cal, false, out, err);
}

int est_memory(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
               const struct strategy *s, const struct advisor_calib *cal_in, bool builtin_gpu,
               struct estimate *out, struct sw_err *err)
{
    struct advisor_calib cal_def;
    const struct advisor_calib *cal = cal_in;
    if (!cal) {
        advisor_calib_default(&cal_def);
        cal = &cal_def;
    }
    if (m->n_layers < 1 || m->hidden < 1 || m->n_heads < 1)
        return sw_errf(err, SW_EINVAL, "model '%s' is missing sizes", m->name);
    struct est_geom g;
    est_geom_init(&g, m, hw, w, s);
    out->calib = *cal;
    out->gpus = g.devices;

    /* Parameter counts as reported: unpadded vocabulary (what the checkpoint holds). */
    struct model_counts hf;
    model_count(m, 1, &hf);
    out->params_total = hf.params_total;
    if (g.lora)
        out->params_trainable =
            (int64_t)llround(m->n_layers * model_lora_params_layer(m, s->lora_rank, 1));
    else
        out->params_trainable = g.train ? hf.params_total : 0;

    struct stage_mem st[2];
    enum exec_backend exec_be = exec_backend_of(&g, hw, s, builtin_gpu);
    bool exec_builtin = exec_be != EXEC_BE_NONE; /* the built-in executor, CPU or CUDA */
    for (int i = 0; i < (g.p > 1 ? 2 : 1); i++) {
        if (exec_builtin)
            cpu_exec_stage(&g, m, w, s, exec_be, &st[i]);
        else if (g.train)
            train_stage(&g, m, s, cal, i == 0, &st[i]);
        else
            infer_stage(&g, m, w, s, i == 0, &st[i]);
    }
    bool first = g.p == 1 || stage_total(&st[0]) >= stage_total(&st[1]);
    const struct stage_mem *x = first ? &st[0] : &st[1];

    double cap_dev = advisor_dev_capacity_bytes(hw, s);
    double host_cap = hw_is_cpu_only(hw) ? cap_dev : (double)hw->mem.usable_bytes;
    if (host_cap <= 0)
        host_cap =
            (double)(hw->mem.available_bytes ? hw->mem.available_bytes : hw->mem.total_bytes);
    double reserve = cal->host_reserve_frac;
    /* The built-in CUDA executor allocates every buffer once, before its first step, with plain
     * cudaMalloc, and frees nothing until the end: no caching allocator, nothing to fragment.
     * Its overhead is its measured runtime, without the generic fragmentation margin. */
    bool cuda_exec = exec_be == EXEC_BE_CUDA;
    double runtime = cuda_exec ? EST_CUDA_EXEC_RUNTIME_BYTES
                     : g.cpu   ? (cal->calibrated ? cal->runtime_overhead_bytes
                                                  : EST_CPU_PROCESS_BYTES)
                               : cal->runtime_overhead_bytes;
    double frag_margin = cuda_exec ? 0.0 : cal->frag_margin;

    struct mem_split *d = &out->dev;
    d->weights = x->weights;
    d->gradients = x->gradients;
    d->optimizer = x->optimizer;
    d->activations = x->activations;
    d->kv_cache = x->kv;
    d->workspace = x->workspace;
    out->logits_bytes = x->logits;

    /* Loading path per rank (section 5) and the process baseline. */
    double stored = m->stored_bytes_per_param > 0 ? m->stored_bytes_per_param : 2.0;
    double loading =
        g.train ? 4.0 * (double)g.c.params_max_unit : stored * (double)g.c.params_max_unit;
    int ranks = g.ranks_per_node;

    if (g.cpu) {
        /* Device = host: every process of a node shares host memory. */
        d->overhead = runtime;
        d->total = stage_total(x) + d->overhead;
        out->capacity_bytes = (1.0 - reserve) * host_cap / ranks;
        out->host_offload_bytes = 0;
        out->host_total_bytes = ranks * d->total;
        out->host_capacity_bytes = host_cap;
        out->host_fits = host_cap > 0 && out->host_total_bytes <= (1.0 - reserve) * host_cap;
        out->fits = out->host_fits;
    } else {
        d->overhead = runtime + frag_margin * cap_dev;
        d->total = stage_total(x) + d->overhead;
        out->capacity_bytes = cap_dev;
        out->host_offload_bytes = ranks * x->host_offload;
        out->host_total_bytes = out->host_offload_bytes + ranks * (EST_CPU_PROCESS_BYTES + loading);
        out->host_capacity_bytes = host_cap;
        out->host_fits = host_cap <= 0 || out->host_total_bytes <= (1.0 - reserve) * host_cap;
        out->fits = cap_dev > 0 && d->total <= cap_dev && out->host_fits;
    }

    /* Reasons: what drove the numbers. */
    reason_dominant(out);
    if (g.cpu)
        estimate_add_reason(out,
                            "%s: %.1f GiB per process x %d on %.1f GiB host (%.0f%% "
                            "reserve)",
                            out->fits ? "fits" : "does not fit", d->total / GIB, ranks,
                            host_cap / GIB, 100.0 * reserve);
    else if (cap_dev <= 0)
        estimate_add_reason(out, "device memory unknown: fit not tested");
    else
        estimate_add_reason(out,
                            "%s: %.1f GiB of %.1f GiB usable per device (incl. %.0f%% "
                            "fragmentation margin, %.2f GiB runtime)",
                            d->total <= cap_dev ? "fits" : "does not fit", d->total / GIB,
                            cap_dev / GIB, 100.0 * frag_margin, runtime / GIB);
    if (!g.cpu && !out->host_fits)
        estimate_add_reason(out,
                            "host memory short: needs %.1f GiB of %.1f GiB (%.0f%% "
                            "reserve)",
                            out->host_total_bytes / GIB, host_cap / GIB, 100.0 * reserve);
    if (exec_builtin) {
        const char *be_name = exec_be == EXEC_BE_CUDA ? "CUDA" : "CPU";
        double n_train = g.train ? est_stage_trainable(&g, true) : 0;
        double bo = n_train > 0 ? x->optimizer / n_train : 0;
        if (g.train && g.lora)
            estimate_add_reason(out,
                                "built-in %s executor: frozen base fp32 4%s B/param; adapters "
                                "fp32 4 + gradients 4 + %s %.3g B per adapter param (every "
                                "linear layer adapted)",
                                be_name, s->precision == PREC_BF16_MIXED ? " + bf16 copy 2" : "",
                                optimizer_name(s->optimizer), bo);
        else if (g.train)
            estimate_add_reason(out,
                                "built-in %s executor: fp32 master 4%s + fp32 gradients 4 + "
                                "%s %.3g = %.3g B per param",
                                be_name,
                                s->precision == PREC_BF16_MIXED   ? " + bf16 copy 2"
                                : s->precision == PREC_FP16_MIXED ? " + fp16 copy 2"
                                                                  : "",
                                optimizer_name(s->optimizer), bo,
                                (s->precision == PREC_FP32 ? 8.0 : 10.0) + bo);
        else
            estimate_add_reason(out,
                                "built-in %s executor: fp32 master weights%s, %s KV cache "
                                "%.2f GiB for batch %d x %.0f tokens",
                                be_name, s->weights == WFMT_BF16   ? " + bf16 copy"
                                : s->weights == WFMT_FP16 ? " + fp16 copy"
                                : s->weights == WFMT_INT8 ? " + int8 copy"
                                                          : "",
                                exec_kv16(exec_be, &g, s) ? "bf16" : "fp32", x->kv / GIB, g.b,
                                (double)w->prompt_len + w->gen_len - 1);
        if (exec_act16(exec_be, &g, s))
            estimate_add_reason(out,
                                "built-in CUDA executor: activations%s kept in bf16 "
                                "(%.1f GiB; the residual stream and statistics%s fp32)",
                                g.train ? " and logits" : "", x->activations / GIB,
                                g.train ? "" : " and the logits");
        if (g.train && s->zero > 0 && g.n_dp > 1)
            estimate_add_reason(out,
                                "ZeRO-%d on the %s executor, %d processes: optimizer state of "
                                "the heaviest rank's shard%s; %s%s",
                                s->zero, be_name, g.n_dp,
                                s->zero == 3 ? ", fp32 master shard as weights" : "",
                                s->zero >= 2 ? "fp32 gradients of the shard, the non-layer "
                                               "weights and one layer"
                                             : "gradients one full fp32 region",
                                s->zero == 3 ? "; the model keeps the embeddings, final norm and "
                                               "head plus two buffers of one layer, each layer "
                                               "gathered from the shards when it runs"
                                             : "");
        estimate_add_reason(
            out,
            "activations fp32: %.2f GiB per layer%s (%s attention, recompute "
            "%s), logits %.2f GiB",
            x->layer_act / GIB, g.train ? "" : " (one layer reused)", attention_name(s->attention),
            recompute_name(g.train ? s->recompute : RECOMPUTE_FULL), x->logits / GIB);
        if (exec_be == EXEC_BE_CUDA)
            estimate_add_reason(out,
                                "CUDA plugin: workspace includes its %.2f MiB (cuBLASLt 32 MiB + "
                                "256 KiB reduction buffer); the overhead (CUDA context, "
                                "libraries and allocator rounding: %.2f GiB, as measured on an "
                                "H200; no fragmentation margin: every buffer is allocated once) "
                                "is not in the executor's counters",
                                k_cuda_plugin_ws_bytes / MIB, runtime / GIB);
    } else if (g.train) {
        double per_param = g.bw + g.bm + g.bg + g.bo;
        estimate_add_reason(out,
                            "%s state: %s row %g+%g+%g B/param + %s %.3g = %.3g B per "
                            "trainable param%s",
                            g.lora ? "adapter" : "model",
                            g.lora ? "fp32 adapter" : precision_name(s->precision), g.bw, g.bm,
                            g.bg, optimizer_name(s->optimizer), g.bo, per_param,
                            s->zero ? ", ZeRO-sharded" : "");
        char logits[48] = "";
        if (x->logits > 0)
            snprintf(logits, sizeof(logits), ", logits %.2f GiB fp32", x->logits / GIB);
        estimate_add_reason(out,
                            "activations: %.2f GiB per layer per micro-batch (%s "
                            "attention, recompute %s, dropout off%s)",
                            x->layer_act / GIB, attention_name(s->attention),
                            recompute_name(s->recompute), logits);
        if (x->logits > x->layer_act && x->logits > 0)
            estimate_add_reason(out,
                                "logits buffer %.2f GiB exceeds one layer's activations "
                                "(vocab %lld)",
                                x->logits / GIB, (long long)g.c.vocab_padded);
        if (s->zero == 3)
            estimate_add_reason(out,
                                "ZeRO-3 gather working set W_g %.2f GiB (%g prefetched "
                                "unit)",
                                x->w_gather / GIB, EST_PREFETCH_UNITS);
        if (s->offload_optimizer || s->offload_params)
            estimate_add_reason(out,
                                "offload: %.1f GiB pinned host memory per rank (k_pin "
                                "%.2g)",
                                x->host_offload / GIB, cal->pin_factor);
    } else {
        double T = (double)w->prompt_len + w->gen_len;
        estimate_add_reason(out,
                            "KV cache %.2f GiB for batch %d x %.0f tokens per replica (%s, %d "
                            "KV heads per device)",
                            x->kv / GIB, g.b, T, wformat_name(s->kv_dtype), g.kv_heads_rank);
        estimate_add_reason(out,
                            "weights %.2f GiB per device (%s, embedding and head "
                            "%s)",
                            x->weights / GIB, wformat_name(s->weights),
                            g.e_kept >= 4 ? "fp32" : "16-bit");
    }
    if (g.p > 1)
        estimate_add_reason(out, "pp %d: %s reported (%d layers%s)", g.p, stage_word(&g, first),
                            first ? g.L_first : g.L_last,
                            (g.train && first) ? ", 1F1B micro-batches in flight" : "");
    return 0;
}
