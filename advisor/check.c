/* Whether a strategy can run a model on a hardware: the preconditions of strategy reference
 * section 10 and the conflicts of section 12 that make a plan impossible (advisor_check, hard
 * errors with the rule in the message), and the conflicts that only cost speed, memory or
 * convergence (advisor_check_soft, reasons on the estimate). The memory and speed of a plan that
 * passes are memory.c's and speed.c's.
 *
 * Decisions where the reference leaves a choice:
 *  - ZeRO needs dp >= 2, except ZeRO-3 with parameter offload on one rank (11.1 step 5: "ZeRO-3
 *    semantics on one rank", i.e. ZeRO-Infinity on one GPU). Optimizer offload works on one GPU
 *    with zero 0 (ZeRO-Offload); with dp >= 2 it needs zero >= 1, as in DeepSpeed.
 *  - Sequence length beyond max_pos: an error for GPT-2 (a learned position table has no row for
 *    it), a reason for Llama style (rotary positions extend, with RoPE scaling).
 *  - CPU device: no tensor parallelism (TP is a GPU-link strategy, section 10), no tf32 (it
 *    needs an NVIDIA GPU), no offload (everything is host memory already); dp is the number of
 *    processes, at most one per usable core on each node. fp16-mixed runs there as the
 *    executor's emulation of fp16 tensor cores (slower than fp32, never chosen by the search):
 *    a way to check an fp16 run's loss scaling before taking it to a GPU without bf16.
 *  - Unknown compute capability (profile or probe without it): the CC gates are skipped and a
 *    reason says so, rather than guessing. */
#include "advisor/advisor.h"

#include "advisor/advisor_int.h"

static bool is_int_format(enum sw_wformat f)
{
    return f == WFMT_INT8 || f == WFMT_INT4;
}

/* Lowest compute capability of the node's GPUs as major*10+minor; 0 when any is unknown. */
static int min_cc10(const struct hardware *hw)
{
    int best = 0;
    int n = hw->n_gpus < HW_MAX_GPUS ? hw->n_gpus : HW_MAX_GPUS;
    for (int i = 0; i < n; i++) {
        const struct hw_gpu *g = &hw->gpus[i];
        if (!(g->known & HW_GPU_CC) && g->cc_major == 0)
            return 0;
        int cc = g->cc_major * 10 + g->cc_minor;
        if (i == 0 || cc < best)
            best = cc;
    }
    return best;
}

static const char *gpu_name(const struct hardware *hw)
{
    if (hw->n_gpus > 0 && hw->gpus[0].name[0])
        return hw->gpus[0].name;
    return hw->name[0] ? hw->name : "this GPU";
}

/* The 16-bit compute dtype a plan needs, as enum hw_dtype, or HW_DT_FP32 / HW_DT_TF32.
 * Inference computes in its weight format; integer weights dequantise to the precision's
 * 16-bit type. */
enum hw_dtype advisor_compute_dtype(const struct workload *w, const struct strategy *s)
{
    /* The built-in CPU executor widens 16-bit (and int8) weights to fp32 for every matmul and
     * keeps fp32 activations: its compute is fp32 whatever the storage. */
    if (s->device == DEVICE_CPU)
        return HW_DT_FP32;
    if (w->task == TASK_INFER && !is_int_format(s->weights)) {
        if (s->weights == WFMT_FP32)
            return s->precision == PREC_TF32 ? HW_DT_TF32 : HW_DT_FP32;
        return s->weights == WFMT_FP16 ? HW_DT_FP16 : HW_DT_BF16;
    }
    switch (s->precision) {
    case PREC_FP32:
        return HW_DT_FP32;
    case PREC_TF32:
        return HW_DT_TF32;
    case PREC_FP16_MIXED:
        return HW_DT_FP16;
    default:
        return HW_DT_BF16;
    }
}

static int check_ranges(const struct model_desc *m, const struct workload *w,
                        const struct strategy *s, struct sw_err *err)
{
    if (m->n_layers < 1 || m->hidden < 1 || m->n_heads < 1 || m->vocab < 1)
        return sw_errf(err, SW_EINVAL,
                       "model '%s' is missing sizes (layers %d, hidden %d, heads %d, vocab %d)",
                       m->name, m->n_layers, m->hidden, m->n_heads, m->vocab);
    if (s->micro_batch < 1)
        return sw_errf(err, SW_EINVAL, "micro_batch must be >= 1, got %d", s->micro_batch);
    if (s->grad_accum < 1)
        return sw_errf(err, SW_EINVAL, "grad_accum must be >= 1, got %d", s->grad_accum);
    if (s->dp < 1 || s->tp < 1 || s->pp < 1)
        return sw_errf(err, SW_EINVAL, "dp, tp and pp must be >= 1, got %d, %d, %d", s->dp, s->tp,
                       s->pp);
    if (s->pp_interleave < 1)
        return sw_errf(err, SW_EINVAL, "pp_interleave must be >= 1, got %d", s->pp_interleave);
    if (s->zero < 0 || s->zero > 3)
        return sw_errf(err, SW_EINVAL, "zero must be 0, 1, 2 or 3, got %d", s->zero);
    if (s->lora_rank < 0)
        return sw_errf(err, SW_EINVAL, "lora_rank must be >= 0, got %d", s->lora_rank);
    if (s->threads < 0)
        return sw_errf(err, SW_EINVAL, "threads must be >= 0, got %d", s->threads);
    if (w->task == TASK_TRAIN && w->seq < 1)
        return sw_errf(err, SW_EINVAL, "sequence length must be >= 1, got %d", w->seq);
    if (w->task == TASK_INFER && (w->batch < 1 || w->prompt_len < 1 || w->gen_len < 0))
        return sw_errf(err, SW_EINVAL,
                       "inference needs batch >= 1, prompt_len >= 1 and gen_len >= 0, got %d, "
                       "%d, %d",
                       w->batch, w->prompt_len, w->gen_len);
    return 0;
}

/* Device count and the gates that depend on the device kind (section 10 hardware column). */
static int check_device(const struct hardware *hw, const struct workload *w,
                        const struct strategy *s, struct sw_err *err)
{
    int64_t used = (int64_t)s->dp * s->tp * s->pp;
    int nodes = hw->nodes > 0 ? hw->nodes : 1;
    if (hw_is_cpu_only(hw) && s->device != DEVICE_CPU)
        return sw_errf(err, SW_EINVAL, "hardware '%s' has no GPU; the device must be 'cpu'",
                       hw->name);
    if (advisor_dev_is_cpu(hw, s)) {
        int per_node = hw->cpu.usable_cpus > 0 ? hw->cpu.usable_cpus : hw->cpu.logical_cpus;
        if (per_node < 1)
            per_node = hw->cpu.sockets * hw->cpu.cores_per_socket;
        if (per_node < 1)
            per_node = 1;
        if (s->tp > 1)
            return sw_errf(err, SW_EINVAL,
                           "tensor parallelism needs GPUs (tp %d on a cpu device); use dp "
                           "processes instead",
                           s->tp);
        if (used > (int64_t)nodes * per_node)
            return sw_errf(err, SW_EINVAL,
                           "plan uses %lld cpu processes (dp %d x pp %d) but the hardware has %d "
                           "node(s) x %d usable cores",
                           (long long)used, s->dp, s->pp, nodes, per_node);
        if (s->precision == PREC_TF32)
            return sw_errf(err, SW_EINVAL,
                           "tf32 matmuls need a GPU with compute capability >= 8.0; on a cpu use "
                           "fp32");
        if (s->offload_optimizer || s->offload_params)
            return sw_errf(err, SW_EINVAL,
                           "offload moves state from GPU to host memory; a cpu device already "
                           "keeps everything in host memory");
        return 0;
    }
    if (used > (int64_t)nodes * hw->n_gpus)
        return sw_errf(err, SW_EINVAL,
                       "plan uses %lld GPUs (dp %d x tp %d x pp %d) but the hardware has %d "
                       "(%d node(s) x %d)",
                       (long long)used, s->dp, s->tp, s->pp, nodes * hw->n_gpus, nodes, hw->n_gpus);
    if (s->tp > hw->n_gpus)
        return sw_errf(err, SW_EINVAL,
                       "tp %d exceeds the %d GPUs of one node; tensor parallelism never crosses "
                       "nodes",
                       s->tp, hw->n_gpus);
    int cc = min_cc10(hw);
    if (cc > 0) {
        enum hw_dtype dt = advisor_compute_dtype(w, s);
        bool bf16 = dt == HW_DT_BF16 || (w->task == TASK_INFER && s->kv_dtype == WFMT_BF16);
        if (bf16 && cc < 80)
            return sw_errf(err, SW_EINVAL,
                           "bf16 needs compute capability >= 8.0; '%s' is %d.%d: use fp16 "
                           "(fp16-mixed, fp16 weights and KV cache)",
                           gpu_name(hw), cc / 10, cc % 10);
        if (dt == HW_DT_TF32 && cc < 80)
            return sw_errf(err, SW_EINVAL,
                           "tf32 needs compute capability >= 8.0; '%s' is %d.%d: use fp32",
                           gpu_name(hw), cc / 10, cc % 10);
        if (s->attention == ATTN_FLASH && cc < 80)
            return sw_errf(err, SW_EINVAL,
                           "flash attention needs compute capability >= 8.0; '%s' is %d.%d: use "
                           "attention 'naive'",
                           gpu_name(hw), cc / 10, cc % 10);
    }
    return 0;
}

/* Model-shape and combination rules (section 10 model column, section 12 hard conflicts). */
static int check_shape(const struct model_desc *m, const struct workload *w,
                       const struct strategy *s, struct sw_err *err)
{
    int g = m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads;
    int d = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    int f = m->ffn > 0 ? m->ffn : 4 * m->hidden;
    int t = s->tp;
    bool train = w->task == TASK_TRAIN;

    if (s->attention == ATTN_FLASH && s->device == DEVICE_CUDA && d > 256)
        return sw_errf(err, SW_EINVAL,
                       "flash attention supports head dim <= 256, model has %d; use 'naive'", d);
    if (t > 1) {
        if (m->n_heads % t)
            return sw_errf(err, SW_EINVAL, "tp %d must divide the %d attention heads", t,
                           m->n_heads);
        if (g % t && t % g)
            return sw_errf(err, SW_EINVAL,
                           "tp %d must divide the %d KV heads, or be a multiple of them "
                           "(replicated KV heads)",
                           t, g);
        if (f % t)
            return sw_errf(err, SW_EINVAL, "tp %d must divide the MLP size %d", t, f);
        /* V_pad is padded to a multiple of 128*t (2.3), so it always divides by t. */
    }
    if (s->sequence_parallel && t < 2)
        return sw_errf(err, SW_EINVAL, "sequence_parallel needs tensor parallelism (tp >= 2)");
    if (s->pp > m->n_layers)
        return sw_errf(err, SW_EINVAL, "pp %d exceeds the %d layers", s->pp, m->n_layers);
    if (s->pp_interleave > 1) {
        int pv = s->pp * s->pp_interleave;
        if (s->pp < 2)
            return sw_errf(err, SW_EINVAL, "pp_interleave %d needs pipeline parallelism (pp >= 2)",
                           s->pp_interleave);
        if (m->n_layers % pv)
            return sw_errf(err, SW_EINVAL,
                           "interleaving needs layers (%d) divisible by pp x pp_interleave = %d",
                           m->n_layers, pv);
        if (train && s->grad_accum % s->pp)
            return sw_errf(err, SW_EINVAL,
                           "interleaving needs grad_accum (%d micro-batches) a multiple of pp %d",
                           s->grad_accum, s->pp);
    }
    if (s->zero > 0 && s->dp < 2 && !(s->zero == 3 && s->offload_params))
        return sw_errf(err, SW_EINVAL,
                       "zero %d shards over data-parallel ranks and needs dp >= 2; on one GPU use "
                       "zero 0, or zero 3 with offload_params (ZeRO-3 on one rank)",
                       s->zero);
    if (s->offload_params && s->zero != 3)
        return sw_errf(err, SW_EINVAL,
                       "offload_params needs zero 3 (parameter offload shards "
                       "and gathers weights), got zero %d",
                       s->zero);
    if ((s->offload_optimizer || s->offload_params) && !train)
        return sw_errf(err, SW_EINVAL, "optimizer and parameter offload apply to training only");
    if (s->offload_optimizer && s->dp > 1 && s->zero == 0)
        return sw_errf(err, SW_EINVAL,
                       "optimizer offload with dp %d needs zero >= 1 (ZeRO-Offload)", s->dp);
    if (s->offload_optimizer && s->optimizer == OPT_ADAFACTOR)
        return sw_errf(err, SW_EINVAL,
                       "optimizer offload needs a CPU optimizer (adamw, sgd, lion); adafactor "
                       "has none");
    if (is_int_format(s->weights) && train && s->lora_rank == 0)
        return sw_errf(err, SW_EINVAL,
                       "%s weights are only for inference or as a frozen LoRA base (QLoRA); full "
                       "training needs fp32, bf16 or fp16 weights",
                       wformat_name(s->weights));
    if (s->lora_rank > 0 && !train)
        return sw_errf(err, SW_EINVAL, "lora_rank %d applies to training (fine-tuning) only",
                       s->lora_rank);
    if (s->lora_rank > m->hidden)
        return sw_errf(err, SW_EINVAL, "lora_rank %d exceeds the hidden size %d", s->lora_rank,
                       m->hidden);
    int64_t tokens = train ? w->seq : (int64_t)w->prompt_len + w->gen_len;
    if (m->arch == MODEL_ARCH_GPT2 && m->max_pos > 0 && tokens > m->max_pos)
        return sw_errf(err, SW_EINVAL, "%s length %lld exceeds the %d learned positions of '%s'",
                       train ? "sequence" : "prompt + generated", (long long)tokens, m->max_pos,
                       m->name);
    if (train && w->global_batch > 0) {
        int64_t bmn = (int64_t)s->micro_batch * s->grad_accum * s->dp;
        if (w->global_batch != bmn)
            return sw_errf(err, SW_EINVAL,
                           "global batch %lld != micro_batch %d x grad_accum %d x dp %d = %lld",
                           (long long)w->global_batch, s->micro_batch, s->grad_accum, s->dp,
                           (long long)bmn);
    }
    return 0;
}

int advisor_check(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
                  const struct strategy *s, struct sw_err *err)
{
    int rc;
    if ((rc = check_ranges(m, w, s, err)) < 0 || (rc = check_device(hw, w, s, err)) < 0 ||
        (rc = check_shape(m, w, s, err)) < 0)
        return rc;
    return 0;
}

void advisor_check_soft(const struct model_desc *m, const struct hardware *hw,
                        const struct workload *w, const struct strategy *s, struct estimate *e)
{
    bool train = w->task == TASK_TRAIN, cpu = advisor_dev_is_cpu(hw, s);
    int g = m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads;
    enum hw_dtype dt = advisor_compute_dtype(w, s);

    if (!cpu && min_cc10(hw) == 0)
        estimate_add_reason(e, "compute capability unknown: bf16, tf32 and flash gates not "
                               "checked");
    if (train && s->precision == PREC_FP16_MIXED)
        estimate_add_reason(e, "fp16-mixed: needs dynamic loss scaling (fp16 max 65504)");
    if (train && s->precision == PREC_BF16)
        estimate_add_reason(e, "pure bf16 (no fp32 master): needs stochastic rounding or "
                               "compensated summation to converge");
    if (cpu && train && s->precision == PREC_FP16_MIXED)
        estimate_add_reason(e, "fp16-mixed on the CPU executor: an emulation of fp16 tensor "
                               "cores (operands rounded to fp16, fp32 matmuls), slower than fp32; "
                               "use it to check an fp16 run's loss scaling, bf16-mixed or fp32 "
                               "to train");
    if (cpu && (s->precision == PREC_BF16_MIXED || s->precision == PREC_BF16))
        estimate_add_reason(e, "%s",
                            (hw->cpu.isa & HW_ISA_AVX512_BF16)
                                ? "bf16 on the CPU executor: a bf16 copy of the weights, native "
                                  "AVX512-BF16 matmuls with fp32 accumulation (activations, "
                                  "weight gradients and master weights stay fp32)"
                                : "bf16 on the CPU executor: a bf16 copy of the weights, widened "
                                  "to fp32 for every matmul (compute and activations stay fp32; "
                                  "the CPU has no native bf16)");
    if (!cpu && dt == HW_DT_FP16 && min_cc10(hw) > 0 && min_cc10(hw) < 70)
        estimate_add_reason(e, "no tensor cores below compute capability 7.0: fp16 saves memory, "
                               "not time");
    if (!cpu && s->attention == ATTN_FLASH && (dt == HW_DT_FP32 || dt == HW_DT_TF32))
        estimate_add_reason(e, "flash attention with fp32 inputs: a tiled fp32 kernel (same "
                               "memory, slower than FlashAttention-2)");
    if (s->tp > g)
        estimate_add_reason(e, "tp %d > %d KV heads: KV heads replicated, %d per rank", s->tp, g,
                            model_kv_heads_rank(m, s->tp));
    if (train && s->optimizer == OPT_ADAMW8BIT)
        estimate_add_reason(e, "adamw8bit: convergence risk on some fine-tunes");
    if (train && s->optimizer == OPT_ADAFACTOR)
        estimate_add_reason(e, "adafactor: saves optimizer memory but can be unstable");
    if (train && s->optimizer == OPT_LION)
        estimate_add_reason(e, "lion: usually needs a learning rate several times below AdamW's");
    if (train && s->pp > 1 && s->zero >= 2)
        estimate_add_reason(e,
                            "zero %d with pp %d: a reduce-scatter per micro-batch for little "
                            "saving; prefer zero 1 with pipelines",
                            s->zero, s->pp);
    if (train && s->pp > 1 && s->grad_accum < s->pp)
        estimate_add_reason(e, "grad_accum %d < pp %d: 1F1B leaves stages idle; use m >= p",
                            s->grad_accum, s->pp);
    if (train && s->lora_rank > 0 && (s->zero == 1 || s->zero == 2))
        estimate_add_reason(e,
                            "LoRA with zero %d saves almost nothing: the sharded states are "
                            "the small adapters",
                            s->zero);
    if (!train && (s->zero == 1 || s->zero == 2))
        estimate_add_reason(e, "zero %d does nothing for inference (no optimizer state)", s->zero);
    if (train && s->offload_optimizer && s->optimizer == OPT_ADAMW8BIT)
        estimate_add_reason(e, "8-bit states are not standard on the CPU: host side modelled as "
                               "fp32 AdamW");
    int64_t tokens = train ? w->seq : (int64_t)w->prompt_len + w->gen_len;
    if (m->arch != MODEL_ARCH_GPT2 && m->max_pos > 0 && tokens > m->max_pos)
        estimate_add_reason(e,
                            "%lld tokens > max_pos %d: beyond the trained context; needs RoPE "
                            "scaling",
                            (long long)tokens, m->max_pos);
    if (!train && is_int_format(s->kv_dtype))
        estimate_add_reason(e, "quantised KV cache (%s): costs latency at short contexts",
                            wformat_name(s->kv_dtype));
}
