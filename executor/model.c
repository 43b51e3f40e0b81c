/* The executor's transformer: GPT-2 and Llama-family decoders built from struct model_desc on a
 * backend (executor/backend.h), forward and backward, for training and for generation.
 *
 * Implements (API and options documented in executor/executor.h, "model" section):
 *  - Memory: one backend allocation per family (weights, gradients, activations, kv_cache,
 *    workspace), tensors carved out at 64-byte boundaries (llm.c). The same carving code runs
 *    twice: once "dry" to count bytes (exec_model_plan_bytes, nothing allocated) and once for
 *    real, so predicted bytes equal allocated bytes by construction.
 *    weights  = fp32 base params [+ fp32 LoRA adapters] [+ bf16 mirror of the base (bf16 mode)]
 *               [+ int8 matmul weights and their per-row fp32 scales (int8 mode)]; layer-gather
               mode (ZeRO-3, opts.layer_gather_bufs): only the non-layer base params
               (embeddings, final norm, untied head) and two layer buffers that the layer hook
               fills before a layer runs (docs/distributed.md)
 *    gradients = fp32, one per trainable parameter (base when training fully, adapters under
 *               LoRA), contiguous so one optimizer call covers them
 *    activations = what forward keeps for backward (per recompute mode, below; bf16 where
 *               act16, below), the (N,Vp) logits, the token and target ids
 *    kv_cache = K and V of every layer, (kv_batch, kv_seq, NKV·HS) each; fp32, or bf16 with bf16
 *               weights on a backend with kv_cache_append_c16 (the CUDA plugin)
 *    workspace = the matmul output before a residual add, the backward temporaries (one layer),
 *               the naive attention backward scratch, bf16 mode's matmul buffer (native: the
 *               bf16 kernel's scratch; emulated: the fp32 weight buffer), LoRA temporaries,
 *               the RoPE tables.
 *  - Recompute: NONE keeps, per layer, the input, both norms' outputs and statistics, QKV, the
 *    attention core outputs (naive: probabilities B·NH·T²; flash: log-sum-exp B·NH·T; the
 *    attention output N·NH·HS), the post-attention residual, the MLP pre-activation and
 *    activation. SELECTIVE keeps the same except the attention core outputs, which live in one
 *    shared buffer and are recomputed from the kept QKV at the start of each layer's backward
 *    (Korthikanti et al., 2022, "selective activation recomputation"; with flash attention
 *    there is no T×T tensor to save, so selective saves the output and lse only). FULL keeps
 *    only each layer's input; the layer's whole forward is re-run into the shared buffers
 *    before its backward. The recomputed values are bit-identical, so are the gradients.
 *  - bf16 mode: matmuls read weights rounded to bf16; the master weights, gradients and
 *    activations stay fp32. Where the backend has native bf16 (AVX512-BF16), the forward and the
 *    input gradient run the bf16 kernel (activations rounded to bf16 on the fly, fp32
 *    accumulation), which measured 2.3-6.5x faster per core than the emulation on GPT-2 124M's
 *    shapes at 1024 tokens and about as fast at one token (tests/bench/bench_bf16.c, Zen 5), so
 *    it is always chosen when available; elsewhere each matmul's bf16 weight is widened to fp32
 *    into a workspace buffer and the fp32 matmul runs (emulated). Weight gradients take bf16
 *    operands too (matmul_bf16_backward_weight: dout and the input rounded, fp32 accumulation
 *    into the fp32 gradient, as autocast), on the CPU's native kernel and on CUDA; the emulated
 *    path keeps them fp32. Norm weights, biases and embeddings lookups read the fp32 master.
 *  - bf16 activations (act16_available: bf16-mixed training on a backend with backend.h's a16
 *    group, the CUDA plugin): the activations kept for the backward — both norms' outputs, QKV
 *    (RoPE applied in place), the attention output, the MLP pre-activation and activation, the
 *    final norm's output — are bf16, as under PyTorch's autocast; so are the logits (lg16),
 *    whose gradient the loss writes over them in bf16 for the head's backward to read. The
 *    residual stream, norm statistics, lse and all other gradients stay fp32. The producing
 *    kernels write bf16 directly and the matmuls read it without rounding their input first
 *    (QKV and MLP-up write bf16 outputs, with the bf16 mirror's bias; with a LoRA adapter the
 *    output is formed in fp32 and rounded after the adapter's share); the values are the ones the
 *    fp32-activation path rounds on the fly anyway, except QKV and the pre-activation, which
 *    are rounded once more before RoPE/attention and GELU read them. Generation with bf16
 *    weights on the same backend runs the same forward (its KV cache bf16 from the bf16 QKV,
 *    decode reading a bf16 q and writing a bf16 output), with fp32 logits.
 *  - fp16 mode (fp16-mixed): the 16-bit mirror is IEEE fp16 (11-bit mantissa, range ±65504)
 *    and every base matmul takes fp16 operands, as a GPU's fp16 tensor cores do: the weight
 *    from the mirror, the activations (forward), dout (both gradients) and the input (weight
 *    gradient) rounded to fp16 — a value beyond 65504 becomes infinity and a gradient below
 *    2^-24 becomes zero, which is why the training loop scales the loss (train.c) — with fp32
 *    accumulation and outputs; the bias gradient sums fp32 dout. A backend with
 *    matmul_f16_* (CUDA) runs them on fp16 tensor cores; elsewhere (the CPU) they are
 *    emulated: the weight is widened into the workspace buffer, the operands are rounded
 *    (round_f16) into an operand buffer EXEC_F16_EMU_ROWS rows at a time and the fp32 matmuls
 *    run, the same numbers up to the order of the fp32 sums. LoRA adapters stay fp32.
 *  - GELU fusion: a backend with matmul_gelu_forward (CUDA: cuBLASLt's GELU_AUX_BIAS
 *    epilogue) runs GPT-2's MLP matmul and its GELU as one GEMM that writes both the
 *    pre-activation (kept for the backward) and the activation (gelu_fusable: fp32 or a native
 *    16-bit matmul, and no adapter on the MLP, since LoRA adds to the pre-activation); with
 *    matmul_backward_input_dgelu (cuBLASLt's DGELU epilogue) the backward likewise gets
 *    d(pre-activation) from the second matmul's input-gradient GEMM.
 *  - int8 mode (inference): every matmul weight (QKV, O, MLP, head) is per-row int8.
 *  - LoRA (Hu et al., 2021): y = x·Wᵀ + b + (alpha/r)·(x·Aᵀ)·Bᵀ on a column range of a
 *    (possibly fused) projection's output; the base is frozen (no base gradients exist).
 *  - The loss is computed without gradients in forward (so logits stay readable); backward
 *    runs the fused softmax-CE again to turn the logits into their gradient in place.
 *  - Gradient-ready hook (exec_model_set_grad_ready): the base parameters are laid out
 *    embeddings, layers 0..L-1, final norm, untied head, and the adapters layer by layer, so
 *    after layer l's backward every trainable gradient from layer l's first parameter to the
 *    end of the region is final: backward reports that suffix after each layer (last layer
 *    first) and the whole region after the embedding, so data parallelism can start reducing
 *    a bucket while earlier layers are still being differentiated.
 * Left to others: checkpoints (safetensors.c), the optimizer state and the training loop. */
#include "executor/executor.h"

#include <math.h>
#include <string.h>

#define ALIGN_BYTES 64u
#define OFF_NONE ((size_t)-1)

/* The four matmuls of a layer, and the head. */
enum mm_id { MM_QKV, MM_O, MM_FC, MM_PROJ, MM_PER_LAYER, MM_HEAD = MM_PER_LAYER };

/* Offsets (in floats) of one layer's parameters in the base region; OFF_NONE when absent. */
struct layer_off {
    size_t ln1_w, ln1_b, ln2_w, ln2_b;
    size_t w[MM_PER_LAYER], b[MM_PER_LAYER];
};

/* One matmul's shape and, in int8 mode, where its codes and scales are. */
struct mm_shape {
    int OC, C;
    size_t q8_off, q8_scale_off; /* bytes into the int8 region / floats into the scale region */
};

#define MAX_ADAPTERS 7
struct adapter {
    int mm;         /* enum mm_id it adapts */
    int col0, cols; /* output columns of that matmul it adds into */
    int in;         /* input width (the matmul's C) */
    size_t a_off;   /* (r, in) in the LoRA region, floats */
    size_t b_off;   /* (cols, r) */
    const char *hf; /* HF module name inside the layer ("attn.c_attn", "self_attn.q_proj") */
};

/* Activations of one layer (pointers may be shared between layers, per recompute mode). With
 * bf16 activations (impl act16) the _16 buffers replace ln1, qkv, atty, ln2, fch and fcact,
 * which stay NULL. */
struct layer_act {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *lse, *atty, *res2, *ln2, *ln2_mean, *ln2_rstd,
        *fch, *fcact;
    uint16_t *ln1_16, *qkv_16, *atty_16, *ln2_16, *fch_16, *fcact_16;
};

struct exec_model_impl {
    /* shapes */
    int QKV, Q, KVW, F2, ropeT;
    int rows;       /* N capacity of activations: B·T (or the KV prefill size at inference) */
    int logit_rows; /* rows of the logits buffer */
    bool rope, learned_pos, layernorm, lora, bf16, int8;
    bool bf16_native; /* bf16 mode on the backend's native bf16 kernel (else emulated) */
    bool fp16;        /* fp16-mixed: the 16-bit mirror (w16, "bf16" above) is IEEE fp16 */
    bool f16_native;  /* fp16 mode on the backend's matmul_f16_* (else emulated) */
    bool act16;       /* bf16 activations (act16_available) */
    bool kv16;        /* a bf16 KV cache (kc16/vc16 instead of kc/vc) */
    bool lg16;        /* act16 with bf16 logits (logits16 instead of logits) */
    float *f16x;      /* emulated fp16: the rounded operands of EXEC_F16_EMU_ROWS rows */
    float eps, lora_scale;
    /* parameter layout */
    size_t wte, wpe, lnf_w, lnf_b, head; /* floats into the base region */
    struct layer_off *lo;                /* [L] */
    struct mm_shape mm[MM_PER_LAYER + 1];
    struct adapter ad[MAX_ADAPTERS];
    int n_ad;
    size_t q8_layer_bytes, q8_layer_scales; /* per layer, int8 mode */
    /* families (owned, freed in release) */
    void *fam[BACKEND_MEM_COUNT];
    /* carved pointers */
    float *params, *lora_params, *grads_base, *grads_lora;
    uint16_t *w16; /* bf16 mirror of the base parameters (gather mode: of the resident ones) */
    uint16_t *w16buf[2]; /* gather mode with bf16: the bf16 copies of the two layer buffers */
    int8_t *q8;
    float *q8_scale;
    float **inp;          /* [L+1] layer inputs; inp[L] is the last layer's output */
    struct layer_act *la; /* [L] */
    float *lnf, *lnf_mean, *lnf_rstd, *logits;
    uint16_t *lnf_16;   /* act16: the final norm's output (lnf NULL) */
    uint16_t *logits16; /* lg16: the logits, then their gradient, in bf16 (logits NULL) */
    bool host_logits_pinned; /* host_logits from be->host_alloc_pinned */
    float *host_logits; /* backend without host memory: prefill/decode logits copied here
                         * (kv_batch × Vp floats, host malloc) */
    int *tokens, *targets;
    float *kc, *vc; /* [L] × (kv_batch, kv_seq, KVW) */
    uint16_t *kc16, *vc16; /* kv16: the same in bf16 */
    float *tmp, *dres, *dln, *dfcact, *dfch, *datty, *dqkv, *att_scratch, *wbuf;
    void *mm16_scratch; /* bf16_native: the bf16 matmul's scratch */
    float *lora_u, *lora_t, *lora_du;
    float *rope_cos, *rope_sin;
    /* gradient-ready hook (NULL: none) */
    exec_grad_ready_fn grad_ready;
    void *grad_ready_ctx;
    /* Layer gather mode (opts.layer_gather_bufs, ZeRO-3): params holds the resident weights,
     * base region [0, lay0) then [lay_end, n_params); layer l's weights [lay0 + l·lay_n, +lay_n)
     * live in gbuf[l % 2] while gbuf_layer[l % 2] == l, brought there by the layer hook. The
     * rank's shard [shard_lo, shard_hi) of the region is where init and loads write. */
    bool gather;
    size_t lay0, lay_end, lay_n;
    size_t n_nonlayer; /* base elements outside the layers: a compacted array's length */
    float *gbuf[2];
    int gbuf_layer[2];
    exec_layer_fill_fn fill;
    void *fill_ctx;
    float *shard;
    size_t shard_lo, shard_hi;
    /* Sharded gradients (opts.shard_grads, ZeRO-2/3): grads_base holds the non-layer gradients
     * compacted as params in gather mode; layer l's gradients are computed into glbuf while
     * glayer == l and handed to grad_take after the layer's backward. */
    bool gshard;
    float *glbuf;
    int glayer;
    exec_grad_take_fn grad_take;
    void *grad_take_ctx;
    /* state */
    bool derived_stale;
    bool have_fwd; /* a forward with targets waits for backward */
    int fwd_B, fwd_T;
    int kv_B;
};

/* ---------------------------------------------------------------- options and validation */

void exec_model_opts_init(struct exec_model_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->precision = PREC_FP32;
    o->recompute = RECOMPUTE_NONE;
    o->attention = ATTN_FLASH;
    o->batch = 1;
    o->seq = 64;
    o->training = true;
}

int exec_lora_targets_parse(const char *s, unsigned *out, struct sw_err *err)
{
    static const struct {
        const char *w;
        unsigned bits;
    } words[] = {{"q", EXEC_LORA_Q},     {"k", EXEC_LORA_K},
                 {"v", EXEC_LORA_V},     {"o", EXEC_LORA_O},
                 {"mlp", EXEC_LORA_MLP}, {"qkv", EXEC_LORA_Q | EXEC_LORA_K | EXEC_LORA_V},
                 {"all", EXEC_LORA_ALL}};
    unsigned mask = 0;
    const char *p = s;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
            if (strlen(words[i].w) == n && strncmp(words[i].w, p, n) == 0) {
                mask |= words[i].bits;
                found = true;
            }
        }
        if (!found)
            return sw_errf(err, SW_EINVAL,
                           "unknown LoRA target '%.*s'; expected a list of q, k, v, qkv, o, mlp, "
                           "all",
                           (int)n, p);
        p = e ? e + 1 : NULL;
    }
    if (!mask)
        return sw_errf(err, SW_EINVAL, "empty LoRA target list; expected e.g. 'q,v' or 'all'");
    *out = mask;
    return 0;
}

static int validate(const struct model_desc *d, const struct exec_model_opts *o,
                    const struct backend *be, struct sw_err *err)
{
    int rc = model_validate(d, err);
    if (rc < 0)
        return rc;
    int hs = d->head_dim > 0 ? d->head_dim : d->hidden / d->n_heads;
    int nkv = d->n_kv_heads > 0 ? d->n_kv_heads : d->n_heads;
    if (d->n_heads % nkv)
        return sw_errf(err, SW_EINVAL, "n_kv_heads %d does not divide n_heads %d", nkv, d->n_heads);
    if (o->precision != PREC_FP32 && o->precision != PREC_BF16_MIXED &&
        o->precision != PREC_FP16_MIXED)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "precision '%s' is not supported by the executor; use fp32, bf16-mixed "
                       "or fp16-mixed",
                       precision_name(o->precision));
    if (o->batch < 1 || o->seq < 1)
        return sw_errf(err, SW_EINVAL, "batch and seq must be >= 1, got %d and %d", o->batch,
                       o->seq);
    if (o->seq > d->max_pos)
        return sw_errf(err, SW_EINVAL, "seq %d exceeds the model's max_pos %d", o->seq, d->max_pos);
    if (o->kv_batch < 0 || o->kv_seq < 0 || (o->kv_batch > 0) != (o->kv_seq > 0))
        return sw_errf(err, SW_EINVAL, "kv_batch and kv_seq must both be > 0 or both 0");
    if (o->kv_seq > d->max_pos)
        return sw_errf(err, SW_EINVAL, "kv_seq %d exceeds the model's max_pos %d", o->kv_seq,
                       d->max_pos);
    if (o->kv_batch > 0 && o->training)
        return sw_errf(err, SW_EINVAL,
                       "a KV cache needs an inference model (training = false); build a "
                       "separate model for generation");
    if (o->int8_weights && o->training)
        return sw_errf(err, SW_EINVAL, "int8 weights are for inference only (training = false)");
    if (o->int8_weights && o->precision != PREC_FP32)
        return sw_errf(err, SW_EINVAL, "int8 weights need precision fp32 activations");
    if (o->layer_gather_bufs != 0 && o->layer_gather_bufs != 2)
        return sw_errf(err, SW_EINVAL, "layer_gather_bufs must be 0 or 2, got %d",
                       o->layer_gather_bufs);
    if (o->layer_gather_bufs && (!o->training || o->lora_rank > 0 || o->kv_batch > 0))
        return sw_errf(err, SW_EUNSUPPORTED,
                       "layer-gathered weights (ZeRO-3) need a training model without LoRA or a "
                       "KV cache");
    if (o->shard_grads && (!o->training || o->kv_batch > 0))
        return sw_errf(err, SW_EUNSUPPORTED,
                       "sharded gradients (ZeRO-2/3) need a training model without a KV cache");
    if (o->lora_rank < 0 || o->lora_rank > d->hidden)
        return sw_errf(err, SW_EINVAL, "lora_rank %d outside [0, hidden %d]", o->lora_rank,
                       d->hidden);
    if (o->attention == ATTN_FLASH && hs > be->flash_max_hs)
        return sw_errf(err, SW_EUNSUPPORTED, "head size %d too large for flash attention (max %d)",
                       hs, be->flash_max_hs);
    if (d->arch == MODEL_ARCH_LLAMA && hs % 2)
        return sw_errf(err, SW_EINVAL, "RoPE needs an even head size, got %d", hs);
    int longest = o->seq > o->kv_seq ? o->seq : o->kv_seq;
    if (d->sliding_window > 0 && d->sliding_window < longest)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "sliding-window attention (window %d) is not implemented; use sequences "
                       "of at most %d tokens",
                       d->sliding_window, d->sliding_window);
    return 0;
}

/* ---------------------------------------------------------------- layout */

/* Whether a model stores its activations in bf16 (backend.h's a16 group): bf16-mixed training
 * on native bf16 matmuls, on a backend with every entry of the group but the optional fused
 * GELU; LoRA adapters stay fp32 and read their input widened (mm_forward_a16). Generation with
 * bf16 weights too, where the backend has the group's forward entries and its bf16-cache
 * entries with bf16 qkv (kv_cache_append_a16, attention_decode_a16) and the cache is bf16
 * (kv16), as PyTorch runs a bf16 model: the matmuls then read the norms' and the MLP's bf16
 * outputs as they are instead of rounding fp32 ones first; not with adapters (their fp32
 * temporaries are the backward's), whose generation keeps fp32 activations. Not with naive
 * attention (its probabilities are the fp32 kernel's) or fp16-mixed (whose loss scaling
 * watches fp16 operands for overflow, and fp16 activations would overflow first). */
static bool act16_available(const struct exec_model *m, const struct exec_model_impl *im)
{
    const struct backend *be = m->be;
    if (!im->bf16_native || im->fp16 || im->int8 || m->opts.attention == ATTN_NAIVE)
        return false;
    bool fwd = be->layernorm_forward_a16 && be->rmsnorm_forward_a16 && be->matmul_a16_forward &&
               be->gelu_forward_a16 && be->swiglu_forward_a16 && be->rope_forward_a16 &&
               be->flash_attention_forward_a16;
    if (!m->opts.training)
        return fwd && !im->lora && im->kv16 && be->kv_cache_append_a16 &&
               be->attention_decode_a16;
    return fwd && be->matmul_16_backward_a16 && be->gelu_backward_a16 &&
           be->swiglu_backward_a16 && be->flash_attention_backward_a16;
}

static size_t align_up(size_t n)
{
    return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
}

/* Fill dims and the parameter offsets (no allocation). */
static void layout_params(struct exec_model *m, struct exec_model_impl *im)
{
    const struct model_desc *d = &m->desc;
    struct model_counts cnt;
    model_count(d, 128, &cnt);
    m->L = d->n_layers;
    m->C = d->hidden;
    m->NH = d->n_heads;
    m->NKV = d->n_kv_heads > 0 ? d->n_kv_heads : d->n_heads;
    m->HS = d->head_dim > 0 ? d->head_dim : d->hidden / d->n_heads;
    m->F = d->ffn > 0 ? d->ffn : 4 * d->hidden;
    m->V = d->vocab;
    m->Vp = (int)cnt.vocab_padded;
    im->Q = m->NH * m->HS;
    im->KVW = m->NKV * m->HS;
    im->QKV = im->Q + 2 * im->KVW;
    im->F2 = d->swiglu ? 2 * m->F : m->F;
    im->rope = d->arch == MODEL_ARCH_LLAMA;
    im->learned_pos = d->arch == MODEL_ARCH_GPT2;
    im->layernorm = !d->rms_norm;
    im->eps = d->norm_eps > 0 ? (float)d->norm_eps : 1e-5f;
    /* bf16 names the 16-bit weight mirror of either mixed precision; fp16 says which. */
    im->fp16 = m->opts.precision == PREC_FP16_MIXED;
    im->bf16 = m->opts.precision == PREC_BF16_MIXED || im->fp16;
    im->bf16_native = im->bf16 && !im->fp16 && m->be->has_native_bf16();
    im->f16_native = im->fp16 && m->be->matmul_f16_forward && m->be->matmul_f16_backward_input &&
                     m->be->matmul_f16_backward_weight;
    im->int8 = m->opts.int8_weights;
    im->lora = m->opts.lora_rank > 0;
    /* A bf16 KV cache where the weights are bf16 and the backend has one (the CUDA plugin): half
     * the cache, as PyTorch keeps it; the CPU keeps fp32 (its decode reads fp32 rows). */
    im->kv16 = m->opts.kv_batch > 0 && im->bf16 && !im->fp16 && m->be->kv_cache_append_c16 &&
               m->be->attention_decode_c16;
    im->act16 = act16_available(m, im);
    /* The logits are activations too in training: bf16 where the backend's loss and head
     * backward take them (autocast's lm_head output is bf16; the loss is computed in fp32 from
     * it). Generation keeps them fp32: a few rows, read by argmax and the host's sampler. */
    im->lg16 = im->act16 && m->opts.training && m->be->softmax_ce_a16 &&
               m->be->matmul_a16_backward_d16;
    im->ropeT = m->opts.seq > m->opts.kv_seq ? m->opts.seq : m->opts.kv_seq;

    int C = m->C;
    bool gpt2_bias = d->bias && d->arch == MODEL_ARCH_GPT2;
    bool qkv_bias = d->bias; /* GPT-2: every linear; Llama family (Qwen2): q, k, v only */
    im->mm[MM_QKV] = (struct mm_shape){im->QKV, C, 0, 0};
    im->mm[MM_O] = (struct mm_shape){C, im->Q, 0, 0};
    im->mm[MM_FC] = (struct mm_shape){im->F2, C, 0, 0};
    im->mm[MM_PROJ] = (struct mm_shape){C, m->F, 0, 0};
    im->mm[MM_HEAD] = (struct mm_shape){m->Vp, C, 0, 0};

    size_t off = 0;
    im->wte = off;
    off += (size_t)m->Vp * C;
    im->wpe = OFF_NONE;
    if (im->learned_pos) {
        im->wpe = off;
        off += (size_t)d->max_pos * C;
    }
    for (int l = 0; l < m->L; l++) {
        struct layer_off *lo = &im->lo[l];
        lo->ln1_w = off;
        off += C;
        lo->ln1_b = OFF_NONE;
        if (im->layernorm) {
            lo->ln1_b = off;
            off += C;
        }
        for (int k = 0; k < MM_PER_LAYER; k++) {
            lo->w[k] = off;
            off += (size_t)im->mm[k].OC * im->mm[k].C;
            bool has_b = k == MM_QKV ? qkv_bias : gpt2_bias;
            lo->b[k] = OFF_NONE;
            if (has_b) {
                lo->b[k] = off;
                off += im->mm[k].OC;
            }
            /* HF order: ln_2 sits between the attention and the MLP. */
            if (k == MM_O) {
                lo->ln2_w = off;
                off += C;
                lo->ln2_b = OFF_NONE;
                if (im->layernorm) {
                    lo->ln2_b = off;
                    off += C;
                }
            }
        }
    }
    im->lnf_w = off;
    off += C;
    im->lnf_b = OFF_NONE;
    if (im->layernorm) {
        im->lnf_b = off;
        off += C;
    }
    im->head = im->wte;
    if (!d->tied_head) {
        im->head = off;
        off += (size_t)m->Vp * C;
    }
    m->n_params = off;
    /* The layers are laid out one after another with the same size: [lay0, lay_end). */
    im->gather = m->opts.layer_gather_bufs > 0;
    im->gshard = m->opts.shard_grads;
    im->lay0 = im->lo[0].ln1_w;
    im->lay_end = im->lnf_w;
    im->lay_n = (im->lay_end - im->lay0) / (size_t)m->L;
    SW_ASSERT(im->lay_n * (size_t)m->L == im->lay_end - im->lay0);
    m->layer0_off = im->lay0;
    m->layer_n = im->lay_n;
    m->act_bf16 = im->act16;
    im->n_nonlayer = m->n_params - (im->lay_end - im->lay0);

    /* LoRA adapters: the same set in every layer. */
    im->n_ad = 0;
    size_t loff = 0;
    if (im->lora) {
        unsigned t = m->opts.lora_targets ? m->opts.lora_targets : EXEC_LORA_Q | EXEC_LORA_V;
        int r = m->opts.lora_rank;
        bool llama = d->arch == MODEL_ARCH_LLAMA;
        struct adapter tmpl[MAX_ADAPTERS];
        int n = 0;
        if (!llama) {
            if (t & (EXEC_LORA_Q | EXEC_LORA_K | EXEC_LORA_V))
                tmpl[n++] = (struct adapter){MM_QKV, 0, im->QKV, C, 0, 0, "attn.c_attn"};
            if (t & EXEC_LORA_O)
                tmpl[n++] = (struct adapter){MM_O, 0, C, im->Q, 0, 0, "attn.c_proj"};
            if (t & EXEC_LORA_MLP) {
                tmpl[n++] = (struct adapter){MM_FC, 0, im->F2, C, 0, 0, "mlp.c_fc"};
                tmpl[n++] = (struct adapter){MM_PROJ, 0, C, m->F, 0, 0, "mlp.c_proj"};
            }
        } else {
            if (t & EXEC_LORA_Q)
                tmpl[n++] = (struct adapter){MM_QKV, 0, im->Q, C, 0, 0, "self_attn.q_proj"};
            if (t & EXEC_LORA_K)
                tmpl[n++] = (struct adapter){MM_QKV, im->Q, im->KVW, C, 0, 0, "self_attn.k_proj"};
            if (t & EXEC_LORA_V)
                tmpl[n++] =
                    (struct adapter){MM_QKV, im->Q + im->KVW, im->KVW, C, 0, 0, "self_attn.v_proj"};
            if (t & EXEC_LORA_O)
                tmpl[n++] = (struct adapter){MM_O, 0, C, im->Q, 0, 0, "self_attn.o_proj"};
            if (t & EXEC_LORA_MLP) {
                if (d->swiglu) {
                    tmpl[n++] = (struct adapter){MM_FC, 0, m->F, C, 0, 0, "mlp.gate_proj"};
                    tmpl[n++] = (struct adapter){MM_FC, m->F, m->F, C, 0, 0, "mlp.up_proj"};
                } else {
                    tmpl[n++] = (struct adapter){MM_FC, 0, m->F, C, 0, 0, "mlp.up_proj"};
                }
                tmpl[n++] = (struct adapter){MM_PROJ, 0, C, m->F, 0, 0, "mlp.down_proj"};
            }
        }
        im->n_ad = n;
        for (int i = 0; i < n; i++)
            im->ad[i] = tmpl[i];
        /* Adapter tensors of layer l: per adapter A (r,in) then B (cols,r). */
        size_t per_layer = 0;
        for (int i = 0; i < n; i++)
            per_layer += (size_t)r * im->ad[i].in + (size_t)im->ad[i].cols * r;
        for (int i = 0, o2 = 0; i < n; i++) {
            im->ad[i].a_off = (size_t)o2;
            o2 += r * im->ad[i].in;
            im->ad[i].b_off = (size_t)o2;
            o2 += im->ad[i].cols * r;
        }
        loff = per_layer * (size_t)m->L;
        float alpha = m->opts.lora_alpha > 0 ? m->opts.lora_alpha : (float)r;
        im->lora_scale = alpha / (float)r;
    }
    m->n_lora_params = loff;

    /* int8: per layer the four matmuls' codes, then the head's; scales likewise. */
    size_t qb = 0, qs = 0;
    for (int k = 0; k <= MM_HEAD; k++) {
        im->mm[k].q8_off = k == MM_HEAD ? qb * (size_t)m->L : qb;
        im->mm[k].q8_scale_off = k == MM_HEAD ? qs * (size_t)m->L : qs;
        if (k < MM_PER_LAYER) {
            qb += align_up((size_t)im->mm[k].OC * im->mm[k].C);
            qs += (size_t)im->mm[k].OC;
        }
    }
    im->q8_layer_bytes = qb;
    im->q8_layer_scales = qs;
}

/* Carving: take() hands out 64-byte aligned slices of one family; in a dry run it only counts. */
struct carve {
    bool dry;
    char *base[BACKEND_MEM_COUNT];
    size_t off[BACKEND_MEM_COUNT];
};

static void *take(struct carve *cv, enum backend_mem cat, size_t bytes)
{
    size_t at = cv->off[cat];
    cv->off[cat] += align_up(bytes);
    return cv->dry ? NULL : cv->base[cat] + at;
}

static float *takef(struct carve *cv, enum backend_mem cat, size_t n)
{
    return take(cv, cat, n * sizeof(float));
}

static uint16_t *take16(struct carve *cv, enum backend_mem cat, size_t n)
{
    return take(cv, cat, n * sizeof(uint16_t));
}

/* Everything but the parameters' internal offsets, which layout_params() fixed. */
static void carve_all(struct exec_model *m, struct exec_model_impl *im, struct carve *cv)
{
    const struct exec_model_opts *o = &m->opts;
    int L = m->L, C = m->C, NH = m->NH, B = o->batch, T = o->seq;
    bool train = o->training;
    const enum backend_mem W = BACKEND_MEM_WEIGHTS, G = BACKEND_MEM_GRADIENTS,
                           A = BACKEND_MEM_ACTIVATIONS, K = BACKEND_MEM_KV_CACHE,
                           WS = BACKEND_MEM_WORKSPACE;

    /* weights */
    if (im->gather) {
        /* The resident weights, then two layer buffers (advisor/memory.c cpu_exec_zero). */
        im->params = takef(cv, W, im->n_nonlayer);
        im->gbuf[0] = takef(cv, W, im->lay_n);
        im->gbuf[1] = takef(cv, W, im->lay_n);
    } else {
        im->params = takef(cv, W, m->n_params);
        im->gbuf[0] = im->gbuf[1] = NULL;
    }
    im->gbuf_layer[0] = im->gbuf_layer[1] = -1;
    im->lora_params = im->lora ? takef(cv, W, m->n_lora_params) : NULL;
    im->w16buf[0] = im->w16buf[1] = NULL;
    if (im->bf16 && im->gather) {
        /* The resident weights' mirror, then one per layer buffer (converted at each fill). */
        im->w16 = take(cv, W, im->n_nonlayer * sizeof(uint16_t));
        im->w16buf[0] = take(cv, W, im->lay_n * sizeof(uint16_t));
        im->w16buf[1] = take(cv, W, im->lay_n * sizeof(uint16_t));
    } else {
        im->w16 = im->bf16 ? take(cv, W, m->n_params * sizeof(uint16_t)) : NULL;
    }
    im->q8 = NULL;
    im->q8_scale = NULL;
    if (im->int8) {
        size_t head_bytes = align_up((size_t)m->Vp * C);
        im->q8 = take(cv, W, im->q8_layer_bytes * L + head_bytes);
        im->q8_scale = takef(cv, W, im->q8_layer_scales * L + (size_t)m->Vp);
    }
    /* gradients */
    im->grads_base = NULL;
    im->grads_lora = NULL;
    im->glbuf = NULL;
    im->glayer = -1;
    if (train && !im->lora && im->gshard) {
        /* The non-layer gradients, then one layer buffer (advisor/memory.c cpu_exec_zero). */
        im->grads_base = takef(cv, G, im->n_nonlayer);
        im->glbuf = takef(cv, G, im->lay_n);
    } else if (train && !im->lora) {
        im->grads_base = takef(cv, G, m->n_params);
    }
    if (train && im->lora && im->gshard) {
        /* LoRA: the adapters are laid out layer by layer; one layer's worth of gradients. */
        im->glbuf = takef(cv, G, m->n_lora_params / (size_t)L);
        im->grads_lora = im->glbuf;
    } else if (train && im->lora) {
        im->grads_lora = takef(cv, G, m->n_lora_params);
    }

    /* activations */
    size_t N = (size_t)B * T;
    size_t NKVrows = (size_t)o->kv_batch * o->kv_seq;
    size_t rows = train ? N : (N > NKVrows ? N : NKVrows);
    im->rows = (int)rows;
    size_t lrows = train ? N : (N > (size_t)o->kv_batch ? N : (size_t)o->kv_batch);
    im->logit_rows = (int)lrows;
    size_t att_n = (size_t)B * NH * T * T, lse_n = (size_t)B * NH * T;
    bool naive = o->attention == ATTN_NAIVE;
    enum sw_recompute rc = train ? o->recompute : RECOMPUTE_FULL; /* inference: one layer */

    if (train) {
        for (int l = 0; l <= L; l++)
            im->inp[l] = takef(cv, A, N * C);
    } else {
        float *pp[2] = {takef(cv, A, rows * C), takef(cv, A, rows * C)};
        for (int l = 0; l <= L; l++)
            im->inp[l] = pp[l % 2];
    }
    struct layer_act shared;
    memset(&shared, 0, sizeof(shared));
    for (int l = 0; l < L; l++) {
        struct layer_act *a = &im->la[l];
        bool fresh = rc == RECOMPUTE_NONE || rc == RECOMPUTE_SELECTIVE || l == 0;
        if (fresh) {
            /* act16: the same buffers, in the same order, half the bytes where bf16. */
            bool h = im->act16;
            memset(a, 0, sizeof(*a));
            if (h)
                a->ln1_16 = take16(cv, A, rows * C);
            else
                a->ln1 = takef(cv, A, rows * C);
            a->ln1_mean = im->layernorm ? takef(cv, A, rows) : NULL;
            a->ln1_rstd = takef(cv, A, rows);
            if (h)
                a->qkv_16 = take16(cv, A, rows * im->QKV);
            else
                a->qkv = takef(cv, A, rows * im->QKV);
            a->res2 = takef(cv, A, rows * C);
            if (h)
                a->ln2_16 = take16(cv, A, rows * C);
            else
                a->ln2 = takef(cv, A, rows * C);
            a->ln2_mean = im->layernorm ? takef(cv, A, rows) : NULL;
            a->ln2_rstd = takef(cv, A, rows);
            if (h) {
                a->fch_16 = take16(cv, A, rows * im->F2);
                a->fcact_16 = take16(cv, A, rows * m->F);
            } else {
                a->fch = takef(cv, A, rows * im->F2);
                a->fcact = takef(cv, A, rows * m->F);
            }
        } else {
            *a = im->la[0];
        }
        bool core_fresh = rc == RECOMPUTE_NONE || l == 0;
        if (core_fresh) {
            a->att = naive ? takef(cv, A, att_n) : NULL;
            a->lse = naive ? NULL : takef(cv, A, lse_n);
            if (im->act16)
                a->atty_16 = take16(cv, A, rows * im->Q);
            else
                a->atty = takef(cv, A, rows * im->Q);
            if (l == 0)
                shared = *a;
        } else {
            a->att = shared.att;
            a->lse = shared.lse;
            a->atty = shared.atty;
            a->atty_16 = shared.atty_16;
        }
    }
    im->lnf = im->act16 ? NULL : takef(cv, A, rows * C);
    im->lnf_16 = im->act16 ? take16(cv, A, rows * C) : NULL;
    im->lnf_mean = im->layernorm ? takef(cv, A, rows) : NULL;
    im->lnf_rstd = takef(cv, A, rows);
    im->logits = im->lg16 ? NULL : takef(cv, A, lrows * m->Vp);
    im->logits16 = im->lg16 ? take16(cv, A, lrows * m->Vp) : NULL;
    im->tokens = take(cv, A, rows * sizeof(int));
    im->targets = take(cv, A, N * sizeof(int));

    /* KV cache */
    im->kc = im->vc = NULL;
    im->kc16 = im->vc16 = NULL;
    if (o->kv_batch > 0 && im->kv16) {
        size_t per = NKVrows * im->KVW;
        im->kc16 = take16(cv, K, per * L);
        im->vc16 = take16(cv, K, per * L);
    } else if (o->kv_batch > 0) {
        size_t per = NKVrows * im->KVW;
        im->kc = takef(cv, K, per * L);
        im->vc = takef(cv, K, per * L);
    }

    /* workspace */
    im->tmp = takef(cv, WS, rows * C);
    im->dres = im->dln = im->dfcact = im->dfch = im->datty = im->dqkv = NULL;
    im->att_scratch = NULL;
    if (train) {
        im->dres = takef(cv, WS, N * C);
        im->dln = takef(cv, WS, N * C);
        im->dfcact = takef(cv, WS, N * m->F);
        im->dfch = takef(cv, WS, N * im->F2);
        im->datty = takef(cv, WS, N * im->Q);
        im->dqkv = takef(cv, WS, N * im->QKV);
        if (naive)
            im->att_scratch = take(cv, WS, m->be->attention_backward_scratch_bytes(B, T, NH));
    }
    im->wbuf = NULL;
    im->mm16_scratch = NULL;
    im->f16x = NULL;
    if (im->bf16_native || im->f16_native) {
        /* Sized by rows alone: every matmul's N is at most rows (the head's logit rows too).
         * Generation on bf16 activations needs none: its matmuls read bf16 inputs as they are. */
        if (train || !im->act16)
            im->mm16_scratch = take(cv, WS, m->be->matmul_bf16_scratch_bytes((int)rows));
    } else if (im->bf16) {
        size_t mx = 0;
        for (int k = 0; k <= MM_HEAD; k++) {
            size_t n = (size_t)im->mm[k].OC * im->mm[k].C;
            mx = n > mx ? n : mx;
        }
        im->wbuf = takef(cv, WS, mx);
        if (im->fp16) {
            /* Rounded operands: a chunk of rows of the widest input and the widest output
             * (the weight gradient rounds dout and the input together). */
            int in = 0, outw = 0;
            for (int k = 0; k <= MM_HEAD; k++) {
                in = im->mm[k].C > in ? im->mm[k].C : in;
                outw = im->mm[k].OC > outw ? im->mm[k].OC : outw;
            }
            size_t r = rows < EXEC_F16_EMU_ROWS ? rows : EXEC_F16_EMU_ROWS;
            im->f16x = takef(cv, WS, r * (size_t)(in + outw));
        }
    }
    im->lora_u = im->lora_t = im->lora_du = NULL;
    if (im->lora) {
        int mxc = 0;
        for (int i = 0; i < im->n_ad; i++)
            mxc = im->ad[i].cols > mxc ? im->ad[i].cols : mxc;
        im->lora_u = takef(cv, WS, rows * o->lora_rank);
        im->lora_t = takef(cv, WS, rows * mxc);
        if (train)
            im->lora_du = takef(cv, WS, rows * o->lora_rank);
    }
    im->rope_cos = im->rope_sin = NULL;
    if (im->rope) {
        im->rope_cos = takef(cv, WS, (size_t)im->ropeT * (m->HS / 2));
        im->rope_sin = takef(cv, WS, (size_t)im->ropeT * (m->HS / 2));
    }
}

static void impl_alloc_tables(struct exec_model *m, struct exec_model_impl *im)
{
    size_t L = (size_t)m->desc.n_layers;
    im->lo = sw_xcalloc(L, sizeof(*im->lo));
    im->la = sw_xcalloc(L, sizeof(*im->la));
    im->inp = sw_xcalloc(L + 1, sizeof(*im->inp));
}

/* be: the backend that allocated host_logits when it is pinned. */
static void impl_free(struct exec_model_impl *im, const struct backend *be)
{
    if (!im)
        return;
    free(im->lo);
    free(im->la);
    free(im->inp);
    if (im->host_logits_pinned)
        be->host_free_pinned(im->host_logits);
    else
        free(im->host_logits);
    free(im);
}

int exec_model_plan_bytes(const struct model_desc *d, const struct exec_model_opts *o,
                          const struct backend *be, struct exec_mem *out, struct sw_err *err)
{
    int rc = validate(d, o, be, err);
    if (rc < 0)
        return rc;
    struct exec_model m;
    memset(&m, 0, sizeof(m));
    m.desc = *d;
    m.opts = *o;
    m.be = be;
    struct exec_model_impl *im = sw_xcalloc(1, sizeof(*im));
    impl_alloc_tables(&m, im);
    layout_params(&m, im);
    struct carve cv;
    memset(&cv, 0, sizeof(cv));
    cv.dry = true;
    carve_all(&m, im, &cv);
    memset(out, 0, sizeof(*out));
    for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
        out->bytes[c] = cv.off[c];
        out->total_bytes += cv.off[c];
    }
    impl_free(im, be);
    return 0;
}

/* ---------------------------------------------------------------- tensor enumeration */

/* The resident address of base-region element off: params + off, or in gather mode the
 * compacted resident copy for the non-layer weights and NULL for a layer's. */
/* Where base-region element off sits in an array of the base region: off itself, or in a
 * compacted array (only the non-layer elements: gathered weights, sharded gradients, their bf16
 * copies) the same index less the layers before it, and OFF_NONE for a layer's element. */
static size_t resident_index(const struct exec_model_impl *im, bool compact, size_t off)
{
    if (!compact || off < im->lay0)
        return off;
    if (off >= im->lay_end)
        return off - (im->lay_end - im->lay0);
    return OFF_NONE;
}

/* A layer element's layer (*layer) and index inside a one-layer buffer. */
static size_t layer_index(const struct exec_model_impl *im, size_t off, int *layer)
{
    size_t l = (off - im->lay0) / im->lay_n;
    *layer = (int)l;
    return off - im->lay0 - l * im->lay_n;
}

static float *resident_at(const struct exec_model_impl *im, bool compact, float *base,
                          size_t off)
{
    size_t i = resident_index(im, compact, off);
    return i == OFF_NONE ? NULL : base + i;
}

static float *resident_w(const struct exec_model_impl *im, float *params, size_t off)
{
    return resident_at(im, im->gather, params, off);
}

/* The resident gradient of base-region element off (NULL for a layer's under shard_grads). */
static float *resident_g(const struct exec_model_impl *im, size_t off)
{
    return im->grads_base ? resident_at(im, im->gshard, im->grads_base, off) : NULL;
}

/* Tensor `name` at element off of the base region (or of the adapter region, is_lora). */
static void add_tensor(struct exec_model *m, int *cap, const char *name, int ndim, int64_t d0,
                       int64_t d1, size_t off, bool hf_t, bool is_lora)
{
    struct exec_model_impl *im = m->impl;
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = sw_xrealloc(m->tensors, (size_t)*cap * sizeof(*m->tensors));
    }
    struct exec_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof(*t));
    sw_strlcpy(t->name, name, sizeof(t->name));
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 1;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->region_off = off;
    if (is_lora) {
        t->data = im->lora_params + off;
        t->grad = im->grads_lora && !im->gshard ? im->grads_lora + off : NULL;
        t->trainable = im->grads_lora != NULL;
    } else {
        t->data = resident_w(im, im->params, off);
        t->grad = resident_g(im, off);
        t->trainable = im->grads_base != NULL;
    }
    t->hf_transposed = hf_t;
    t->is_lora = is_lora;
    t->category = BACKEND_MEM_WEIGHTS;
}

static void build_tensors(struct exec_model *m)
{
    struct exec_model_impl *im = m->impl;
    bool llama = m->desc.arch == MODEL_ARCH_LLAMA;
    int cap = 0, C = m->C, Q = im->Q, KVW = im->KVW, F = m->F;
    char nm[96];
    add_tensor(m, &cap, llama ? "model.embed_tokens.weight" : "wte.weight", 2, m->V, C, im->wte,
               false, false);
    if (im->learned_pos)
        add_tensor(m, &cap, "wpe.weight", 2, m->desc.max_pos, C, im->wpe, false, false);
    for (int l = 0; l < m->L; l++) {
        const struct layer_off *lo = &im->lo[l];
        char pre[48];
        snprintf(pre, sizeof(pre), llama ? "model.layers.%d." : "h.%d.", l);
        const char *n1 = llama ? "input_layernorm" : "ln_1";
        const char *n2 = llama ? "post_attention_layernorm" : "ln_2";
        snprintf(nm, sizeof(nm), "%s%s.weight", pre, n1);
        add_tensor(m, &cap, nm, 1, C, 0, lo->ln1_w, false, false);
        if (lo->ln1_b != OFF_NONE) {
            snprintf(nm, sizeof(nm), "%s%s.bias", pre, n1);
            add_tensor(m, &cap, nm, 1, C, 0, lo->ln1_b, false, false);
        }
        if (!llama) {
            static const char *const mmn[MM_PER_LAYER] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                          "mlp.c_proj"};
            for (int k = 0; k < MM_PER_LAYER; k++) {
                snprintf(nm, sizeof(nm), "%s%s.weight", pre, mmn[k]);
                add_tensor(m, &cap, nm, 2, im->mm[k].OC, im->mm[k].C, lo->w[k], true, false);
                if (lo->b[k] != OFF_NONE) {
                    snprintf(nm, sizeof(nm), "%s%s.bias", pre, mmn[k]);
                    add_tensor(m, &cap, nm, 1, im->mm[k].OC, 0, lo->b[k], false, false);
                }
                if (k == MM_O) {
                    snprintf(nm, sizeof(nm), "%s%s.weight", pre, n2);
                    add_tensor(m, &cap, nm, 1, C, 0, lo->ln2_w, false, false);
                    if (lo->ln2_b != OFF_NONE) {
                        snprintf(nm, sizeof(nm), "%s%s.bias", pre, n2);
                        add_tensor(m, &cap, nm, 1, C, 0, lo->ln2_b, false, false);
                    }
                }
            }
        } else {
            /* q, k, v as row blocks of the fused QKV weight (and bias). */
            static const char *const qkvn[3] = {"q_proj", "k_proj", "v_proj"};
            size_t row0[3] = {0, (size_t)Q, (size_t)Q + KVW};
            int rows[3] = {Q, KVW, KVW};
            for (int j = 0; j < 3; j++) {
                size_t wo = lo->w[MM_QKV] + row0[j] * C;
                snprintf(nm, sizeof(nm), "%sself_attn.%s.weight", pre, qkvn[j]);
                add_tensor(m, &cap, nm, 2, rows[j], C, wo, false, false);
                if (lo->b[MM_QKV] != OFF_NONE) {
                    size_t bo = lo->b[MM_QKV] + row0[j];
                    snprintf(nm, sizeof(nm), "%sself_attn.%s.bias", pre, qkvn[j]);
                    add_tensor(m, &cap, nm, 1, rows[j], 0, bo, false, false);
                }
            }
            snprintf(nm, sizeof(nm), "%sself_attn.o_proj.weight", pre);
            add_tensor(m, &cap, nm, 2, C, Q, lo->w[MM_O], false, false);
            snprintf(nm, sizeof(nm), "%s%s.weight", pre, n2);
            add_tensor(m, &cap, nm, 1, C, 0, lo->ln2_w, false, false);
            if (lo->ln2_b != OFF_NONE) {
                snprintf(nm, sizeof(nm), "%s%s.bias", pre, n2);
                add_tensor(m, &cap, nm, 1, C, 0, lo->ln2_b, false, false);
            }
            if (m->desc.swiglu) {
                size_t go = lo->w[MM_FC], uo = lo->w[MM_FC] + (size_t)F * C;
                snprintf(nm, sizeof(nm), "%smlp.gate_proj.weight", pre);
                add_tensor(m, &cap, nm, 2, F, C, go, false, false);
                snprintf(nm, sizeof(nm), "%smlp.up_proj.weight", pre);
                add_tensor(m, &cap, nm, 2, F, C, uo, false, false);
            } else {
                snprintf(nm, sizeof(nm), "%smlp.up_proj.weight", pre);
                add_tensor(m, &cap, nm, 2, F, C, lo->w[MM_FC], false, false);
            }
            snprintf(nm, sizeof(nm), "%smlp.down_proj.weight", pre);
            add_tensor(m, &cap, nm, 2, C, F, lo->w[MM_PROJ], false, false);
        }
    }
    add_tensor(m, &cap, llama ? "model.norm.weight" : "ln_f.weight", 1, C, 0, im->lnf_w, false,
               false);
    if (im->lnf_b != OFF_NONE)
        add_tensor(m, &cap, llama ? "model.norm.bias" : "ln_f.bias", 1, C, 0, im->lnf_b, false,
                   false);
    if (!m->desc.tied_head)
        add_tensor(m, &cap, "lm_head.weight", 2, m->V, C, im->head, false, false);
    /* LoRA adapters, named as PEFT does inside the module: "<module>.lora_A.weight". */
    if (im->lora) {
        int r = m->opts.lora_rank;
        size_t per_layer = m->n_lora_params / (size_t)m->L;
        for (int l = 0; l < m->L; l++) {
            for (int i = 0; i < im->n_ad; i++) {
                const struct adapter *a = &im->ad[i];
                size_t base = per_layer * l;
                snprintf(nm, sizeof(nm),
                         llama ? "model.layers.%d.%s.lora_A.weight" : "h.%d.%s.lora_A.weight", l,
                         a->hf);
                add_tensor(m, &cap, nm, 2, r, a->in, base + a->a_off, false, true);
                snprintf(nm, sizeof(nm),
                         llama ? "model.layers.%d.%s.lora_B.weight" : "h.%d.%s.lora_B.weight", l,
                         a->hf);
                add_tensor(m, &cap, nm, 2, a->cols, r, base + a->b_off, false, true);
            }
        }
    }
}

int exec_model_find_tensor(const struct exec_model *m, const char *name)
{
    if (strncmp(name, "transformer.", 12) == 0 && m->desc.arch == MODEL_ARCH_GPT2)
        name += 12;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- init / release */

int exec_model_init(struct exec_model *m, const struct model_desc *d,
                    const struct exec_model_opts *o, const struct backend *be, struct sw_err *err)
{
    memset(m, 0, sizeof(*m));
    int rc = validate(d, o, be, err);
    if (rc < 0)
        return rc;
    rc = exec_model_plan_bytes(d, o, be, &m->planned, err);
    if (rc < 0)
        return rc;
    m->desc = *d;
    m->opts = *o;
    m->be = be;
    struct exec_model_impl *im = sw_xcalloc(1, sizeof(*im));
    m->impl = im;
    impl_alloc_tables(m, im);
    layout_params(m, im);

    struct carve cv;
    memset(&cv, 0, sizeof(cv));
    for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
        size_t n = (size_t)m->planned.bytes[c];
        if (!n)
            continue;
        im->fam[c] = be->alloc(n, (enum backend_mem)c, err);
        if (!im->fam[c]) {
            exec_model_release(m);
            return SW_ENOMEM;
        }
        cv.base[c] = im->fam[c];
        m->held.bytes[c] = n;
        m->held.total_bytes += n;
    }
    carve_all(m, im, &cv);
    for (int c = 0; c < BACKEND_MEM_COUNT; c++)
        SW_ASSERT(cv.off[c] == m->planned.bytes[c]);
    /* Weights, gradients and the KV cache start at zero (padded rows must stay zero). */
    for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
        if (im->fam[c] &&
            (c == BACKEND_MEM_WEIGHTS || c == BACKEND_MEM_GRADIENTS || c == BACKEND_MEM_KV_CACHE))
            be->memset(im->fam[c], 0, (size_t)m->planned.bytes[c]);
    }
    if (im->rope)
        be->rope_tables(im->rope_cos, im->rope_sin, im->ropeT, m->HS,
                        m->desc.rope_theta > 0 ? m->desc.rope_theta : 10000.0);
    if (o->training) {
        /* Gather mode: no resident region holds every weight (the shard does). */
        m->train_params = im->lora ? im->lora_params : im->gather ? NULL : im->params;
        /* Sharded gradients: no resident region holds every gradient either. */
        m->train_grads = im->gshard ? NULL : im->lora ? im->grads_lora : im->grads_base;
        m->n_train = im->lora ? m->n_lora_params : m->n_params;
    }
    build_tensors(m);
    im->derived_stale = true;
    return 0;
}

void exec_model_release(struct exec_model *m)
{
    struct exec_model_impl *im = m->impl;
    if (im) {
        for (int c = 0; c < BACKEND_MEM_COUNT; c++)
            if (im->fam[c])
                m->be->free(im->fam[c]);
        impl_free(im, m->be);
    }
    free(m->tensors);
    memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------- weight init */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) /* (0, 1) */
{
    return ((double)(splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static void fill_normal(float *x, size_t n, double std, uint64_t *s)
{
    for (size_t i = 0; i < n; i += 2) {
        /* Box-Muller: two normals per pair of uniforms. */
        double u1 = rng_uniform(s), u2 = rng_uniform(s);
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(std * r * cos(2.0 * M_PI * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(std * r * sin(2.0 * M_PI * u2));
    }
}

void exec_model_init_weights(struct exec_model *m, uint64_t seed)
{
    struct exec_model_impl *im = m->impl;
    double std = 0.02, std_res = 0.02 / sqrt(2.0 * m->L);
    /* Zero first: biases, padding rows, LoRA B. */
    size_t n_res = im->gather ? im->n_nonlayer : m->n_params;
    m->be->memset(im->params, 0, n_res * sizeof(float));
    if (im->lora)
        m->be->memset(im->lora_params, 0, m->n_lora_params * sizeof(float));
    /* Values are drawn on the host into a bounded chunk and copied to the backend (whose
     * memory the host may not reach), so they are those of the full model on every rank and
     * every backend. Gather mode keeps only the resident part and this rank's shard. Chunks
     * are even, so Box-Muller pairs never straddle two of them. */
    if (im->gather && im->shard && im->shard_hi > im->shard_lo)
        m->be->memset(im->shard, 0, (im->shard_hi - im->shard_lo) * sizeof(float));
    enum { CHUNK = 1 << 16 };
    float *buf = sw_xmalloc(CHUNK * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++) {
        struct exec_tensor *t = &m->tensors[i];
        uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
        size_t len = strlen(t->name);
        bool is_bias = len > 5 && strcmp(t->name + len - 5, ".bias") == 0;
        bool lora_a = t->is_lora && strstr(t->name, "lora_A");
        if ((t->is_lora && !lora_a) || is_bias)
            continue;
        double bound = lora_a ? 1.0 / sqrt((double)t->shape[1]) : 0.0;
        bool resid = strstr(t->name, "attn.c_proj") || strstr(t->name, "mlp.c_proj") ||
                     strstr(t->name, "o_proj") || strstr(t->name, "down_proj");
        for (size_t off = 0; off < t->numel; off += CHUNK) {
            size_t n = t->numel - off < CHUNK ? t->numel - off : CHUNK;
            if (lora_a) {
                for (size_t k = 0; k < n; k++)
                    buf[k] = (float)(bound * (2.0 * rng_uniform(&s) - 1.0));
            } else if (t->ndim == 1) {
                for (size_t k = 0; k < n; k++)
                    buf[k] = 1.0f;
            } else {
                fill_normal(buf, n, resid ? std_res : std, &s);
            }
            if (t->is_lora || !im->gather)
                m->be->memcpy(t->data + off, buf, n * sizeof(float), BACKEND_H2D);
            else
                exec_model_write_weights(m, t->region_off + off, buf, n);
        }
    }
    free(buf);
    exec_model_weights_changed(m);
}

void exec_model_weights_changed(struct exec_model *m)
{
    m->impl->derived_stale = true;
    m->impl->gbuf_layer[0] = m->impl->gbuf_layer[1] = -1;
}

bool exec_model_layer_gather(const struct exec_model *m)
{
    return m->impl && m->impl->gather;
}

void exec_model_set_weight_shard(struct exec_model *m, float *shard, size_t lo, size_t hi)
{
    m->impl->shard = shard;
    m->impl->shard_lo = lo;
    m->impl->shard_hi = hi;
}

/* dst holds region elements [lo, hi), src holds [s0, s0 + n): copy their intersection. */
static void copy_overlap(const struct backend *be, float *dst, size_t lo, size_t hi,
                         const float *src, size_t s0, size_t n)
{
    size_t a = s0 > lo ? s0 : lo, b = s0 + n < hi ? s0 + n : hi;
    if (a < b)
        be->memcpy(dst + (a - lo), src + (a - s0), (b - a) * sizeof(float), BACKEND_H2D);
}

void exec_model_write_weights(struct exec_model *m, size_t off, const float *src, size_t n)
{
    struct exec_model_impl *im = m->impl;
    SW_ASSERT(off + n <= m->n_params);
    if (!im->gather) {
        m->be->memcpy(im->params + off, src, n * sizeof(float), BACKEND_H2D);
        return;
    }
    copy_overlap(m->be, im->params, 0, im->lay0, src, off, n);
    copy_overlap(m->be, im->params + im->lay0, im->lay_end, m->n_params, src, off, n);
    if (im->shard)
        copy_overlap(m->be, im->shard, im->shard_lo, im->shard_hi, src, off, n);
}

float *exec_model_resident(struct exec_model *m, size_t off)
{
    return resident_w(m->impl, m->impl->params, off);
}

void exec_model_set_layer_hook(struct exec_model *m, exec_layer_fill_fn fn, void *ctx)
{
    m->impl->fill = fn;
    m->impl->fill_ctx = ctx;
    m->impl->gbuf_layer[0] = m->impl->gbuf_layer[1] = -1;
}

/* fp32 -> the 16-bit mirror's format (bf16, or IEEE fp16 under fp16-mixed). */
static void to_16(struct exec_model *m, uint16_t *dst, const float *src, size_t n)
{
    if (m->impl->fp16)
        m->be->f32_to_f16(dst, src, n);
    else
        m->be->f32_to_bf16(dst, src, n);
}

/* Gather mode: layer l's weights into its buffer (l % 2) unless they are there already. All
 * ranks run the same sequence of layers, so the hook's collectives match. */
static int ensure_layer(struct exec_model *m, int l, struct sw_err *err)
{
    struct exec_model_impl *im = m->impl;
    if (!im->gather)
        return 0;
    int b = l % 2;
    if (im->gbuf_layer[b] == l)
        return 0;
    if (!im->fill)
        return sw_errf(err, SW_EINVAL,
                       "layer %d's weights are gathered per layer, and no layer hook is set", l);
    im->gbuf_layer[b] = -1;
    int rc = im->fill(im->fill_ctx, l, im->gbuf[b], im->lay0 + (size_t)l * im->lay_n, im->lay_n,
                      err);
    if (rc < 0)
        return rc;
    if (im->bf16)
        to_16(m, im->w16buf[b], im->gbuf[b], im->lay_n);
    im->gbuf_layer[b] = l;
    return 0;
}

/* The bf16 copy of base-region weight off: the mirror, or in gather mode the compacted
 * resident mirror or the layer buffer's copy (ensure_layer converted it). */
static const uint16_t *w16p(const struct exec_model_impl *im, size_t off)
{
    size_t i = resident_index(im, im->gather, off);
    if (i != OFF_NONE)
        return im->w16 + i;
    int l;
    i = layer_index(im, off, &l);
    SW_ASSERT(im->gbuf_layer[l % 2] == l);
    return im->w16buf[l % 2] + i;
}

/* The weight at base-region element off for compute: resident, or in the gathered buffer of
 * its layer (which ensure_layer brought in). */
static float *wp(const struct exec_model_impl *im, size_t off)
{
    float *r = resident_w(im, im->params, off);
    if (r)
        return r;
    int l;
    size_t i = layer_index(im, off, &l);
    SW_ASSERT(im->gbuf_layer[l % 2] == l);
    return im->gbuf[l % 2] + i;
}

/* Where the gradient of base-region element off is computed: resident, or under shard_grads
 * the layer buffer of the layer being differentiated (exec_model_backward set glayer). NULL
 * when the model has no base gradients (inference, LoRA). */
static float *gp(const struct exec_model_impl *im, size_t off)
{
    if (!im->grads_base)
        return NULL;
    float *r = resident_g(im, off);
    if (r)
        return r;
    int l;
    size_t i = layer_index(im, off, &l);
    SW_ASSERT(im->glayer == l);
    return im->glbuf + i;
}

/* Refresh the bf16 mirror or the int8 codes from the fp32 master. */
static void refresh_derived(struct exec_model *m)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    if (!im->derived_stale)
        return;
    if (im->bf16)
        to_16(m, im->w16, im->params, im->gather ? im->n_nonlayer : m->n_params);
    if (im->int8) {
        /* Every layer's four matmuls, then the head (l == L). */
        for (int l = 0; l <= m->L; l++) {
            bool head = l == m->L;
            for (int k = head ? MM_HEAD : 0; k < (head ? MM_HEAD + 1 : MM_PER_LAYER); k++) {
                const struct mm_shape *s = &im->mm[k];
                size_t w = head ? im->head : im->lo[l].w[k];
                size_t qo = s->q8_off + (head ? 0 : im->q8_layer_bytes * l);
                size_t so = s->q8_scale_off + (head ? 0 : im->q8_layer_scales * l);
                be->quantize_int8_rows(im->q8 + qo, im->q8_scale + so, im->params + w, s->OC, s->C);
            }
        }
    }
    im->derived_stale = false;
}

void exec_model_refresh_derived(struct exec_model *m)
{
    refresh_derived(m);
}

/* ---------------------------------------------------------------- matmuls */

/* The fp32 weight a matmul reads: the master, or in bf16 mode its bf16 copy widened into the
 * workspace buffer. */
static const float *mm_weight(struct exec_model *m, size_t off, size_t n)
{
    struct exec_model_impl *im = m->impl;
    if (!im->bf16)
        return wp(im, off);
    if (im->fp16)
        m->be->f16_to_f32(im->wbuf, w16p(im, off), n);
    else
        m->be->bf16_to_f32(im->wbuf, w16p(im, off), n);
    return im->wbuf;
}

/* Emulated fp16 matmuls (fp16 mode without matmul_f16_*): the fp32 matmuls on operands rounded
 * to fp16, EXEC_F16_EMU_ROWS rows at a time (rows are independent in the forward and the input
 * gradient; the weight gradient sums over them, and the backward accumulates). w is the
 * widened fp16 weight (mm_weight). */
static void f16_forward_emulated(struct exec_model *m, float *out, const float *inp,
                                 const float *w, const float *bias, int N, int C, int OC)
{
    const struct backend *be = m->be;
    float *x = m->impl->f16x;
    for (int r0 = 0; r0 < N; r0 += EXEC_F16_EMU_ROWS) {
        int r = N - r0 < EXEC_F16_EMU_ROWS ? N - r0 : EXEC_F16_EMU_ROWS;
        be->round_f16(x, inp + (size_t)r0 * C, (size_t)r * C);
        be->matmul_forward(out + (size_t)r0 * OC, x, w, bias, r, C, OC);
    }
}

static void f16_backward_emulated(struct exec_model *m, float *dinp, float *dw, float *db,
                                  const float *dout, const float *inp, const float *w, int N,
                                  int C, int OC)
{
    const struct backend *be = m->be;
    float *g = m->impl->f16x, *x = NULL;
    for (int r0 = 0; r0 < N && (dinp || dw); r0 += EXEC_F16_EMU_ROWS) {
        int r = N - r0 < EXEC_F16_EMU_ROWS ? N - r0 : EXEC_F16_EMU_ROWS;
        be->round_f16(g, dout + (size_t)r0 * OC, (size_t)r * OC);
        if (dw) {
            x = g + (size_t)r * OC;
            be->round_f16(x, inp + (size_t)r0 * C, (size_t)r * C);
        }
        be->matmul_backward(dinp ? dinp + (size_t)r0 * C : NULL, dw, NULL, g, x, w, r, C, OC);
    }
    if (db) /* the bias gradient from fp32 dout, as on fp16 tensor cores */
        be->matmul_backward(NULL, NULL, db, dout, inp, w, N, C, OC);
}

static float *lora_p(struct exec_model *m, int l, size_t off)
{
    return m->impl->lora_params + m->n_lora_params / (size_t)m->L * l + off;
}

static float *lora_g(struct exec_model *m, int l, size_t off)
{
    struct exec_model_impl *im = m->impl;
    float *g = im->grads_lora;
    if (g && im->gshard) { /* the layer buffer of the layer being differentiated */
        SW_ASSERT(im->glayer == l);
        return g + off;
    }
    return g ? g + m->n_lora_params / (size_t)m->L * l + off : NULL;
}

/* Whether matmul k of a layer has a LoRA adapter. */
static bool has_adapter(const struct exec_model_impl *im, int k)
{
    for (int i = 0; im->lora && i < im->n_ad; i++)
        if (im->ad[i].mm == k)
            return true;
    return false;
}

/* out(N,OC) += scale · (inp·Aᵀ)·Bᵀ on each adapter's columns of matmul k (inp fp32). */
static void lora_forward(struct exec_model *m, int l, int k, float *out, const float *inp, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    int r = m->opts.lora_rank, OC = im->mm[k].OC;
    for (int i = 0; i < im->n_ad; i++) {
        const struct adapter *a = &im->ad[i];
        if (a->mm != k)
            continue;
        be->matmul_forward(im->lora_u, inp, lora_p(m, l, a->a_off), NULL, N, a->in, r);
        be->matmul_forward(im->lora_t, im->lora_u, lora_p(m, l, a->b_off), NULL, N, r, a->cols);
        be->axpy_2d(out + a->col0, OC, im->lora_t, a->cols, N, a->cols, im->lora_scale);
    }
}

/* The adapters' backward of matmul k: their gradients +=, and dinp += their input gradient
 * (inp fp32, dout the matmul's output gradient). */
static void lora_backward(struct exec_model *m, int l, int k, float *dinp, const float *dout,
                          const float *inp, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    int r = m->opts.lora_rank, OC = im->mm[k].OC;
    for (int i = 0; i < im->n_ad; i++) {
        const struct adapter *a = &im->ad[i];
        if (a->mm != k)
            continue;
        /* Recompute u = x·Aᵀ (N·r·in FLOPs, cheaper than keeping it per layer). */
        be->matmul_forward(im->lora_u, inp, lora_p(m, l, a->a_off), NULL, N, a->in, r);
        /* dt = scale · dout[:, cols] */
        be->copy_2d(im->lora_t, a->cols, dout + a->col0, OC, N, a->cols, im->lora_scale);
        be->memset(im->lora_du, 0, (size_t)N * r * sizeof(float));
        be->matmul_backward(im->lora_du, lora_g(m, l, a->b_off), NULL, im->lora_t, im->lora_u,
                            lora_p(m, l, a->b_off), N, r, a->cols);
        be->matmul_backward(dinp, lora_g(m, l, a->a_off), NULL, im->lora_du, inp,
                            lora_p(m, l, a->a_off), N, a->in, r);
    }
}

/* out(N,OC) = inp · Wᵀ + b (+ LoRA) for matmul k of layer l (l == L: the head). */
static void mm_forward(struct exec_model *m, int l, int k, float *out, const float *inp, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct mm_shape *s = &im->mm[k];
    bool head = k == MM_HEAD;
    size_t woff = head ? im->head : im->lo[l].w[k];
    size_t boff = head ? OFF_NONE : im->lo[l].b[k];
    const float *bias = boff == OFF_NONE ? NULL : wp(im, boff);
    if (im->int8) {
        size_t qo = s->q8_off + (head ? 0 : im->q8_layer_bytes * l);
        size_t so = s->q8_scale_off + (head ? 0 : im->q8_layer_scales * l);
        be->matmul_int8_forward(out, inp, im->q8 + qo, im->q8_scale + so, bias, N, s->C, s->OC);
    } else if (im->bf16_native) {
        SW_ASSERT(N <= im->rows);
        be->matmul_bf16_forward(out, inp, w16p(im, woff), bias, N, s->C, s->OC, im->mm16_scratch);
    } else if (im->f16_native) {
        SW_ASSERT(N <= im->rows);
        be->matmul_f16_forward(out, inp, w16p(im, woff), bias, N, s->C, s->OC, im->mm16_scratch);
    } else if (im->fp16) {
        const float *w = mm_weight(m, woff, (size_t)s->OC * s->C);
        f16_forward_emulated(m, out, inp, w, bias, N, s->C, s->OC);
    } else {
        const float *w = mm_weight(m, woff, (size_t)s->OC * s->C);
        be->matmul_forward(out, inp, w, bias, N, s->C, s->OC);
    }
    if (im->lora && !head)
        lora_forward(m, l, k, out, inp, N);
}

/* Whether the GELU MLP fuses GELU into a GEMM: the backend has the entry (`entry`:
 * matmul_gelu_forward for the first matmul, matmul_backward_input_dgelu for the second), the
 * matmul runs on fp32 or a native 16-bit kernel (the emulated paths widen the weight first),
 * and no adapter on matmul `mm` adds to its output (forward) or input gradient (backward)
 * before the GELU sees it. */
static bool gelu_fusable(const struct exec_model *m, bool entry, enum mm_id mm)
{
    const struct exec_model_impl *im = m->impl;
    if (!entry || m->desc.swiglu || im->int8)
        return false;
    if (im->bf16 && !im->bf16_native && !im->f16_native)
        return false;
    return !has_adapter(im, (int)mm);
}

/* The weight a fused GELU matmul reads at base offset woff: the fp32 master or the 16-bit
 * mirror, and its backend_wfmt. */
static const void *fused_weight(const struct exec_model_impl *im, size_t woff, int *fmt)
{
    *fmt = !im->bf16 ? BACKEND_WFMT_FP32 : im->fp16 ? BACKEND_WFMT_FP16 : BACKEND_WFMT_BF16;
    return im->bf16 ? (const void *)w16p(im, woff) : (const void *)wp(im, woff);
}

/* fch = ln2·W_fcᵀ + b and fcact = gelu(fch) in one GEMM. */
static void mm_forward_gelu(struct exec_model *m, int l, float *fcact, float *fch, const float *inp,
                            int N)
{
    struct exec_model_impl *im = m->impl;
    const struct mm_shape *s = &im->mm[MM_FC];
    size_t boff = im->lo[l].b[MM_FC];
    const float *bias = boff == OFF_NONE ? NULL : wp(im, boff);
    int fmt;
    const void *w = fused_weight(im, im->lo[l].w[MM_FC], &fmt);
    SW_ASSERT(N <= im->rows);
    m->be->matmul_gelu_forward(fcact, fch, inp, w, fmt, bias, N, s->C, s->OC, im->mm16_scratch);
}

/* The whole 16-bit backward of one matmul in one entry (be->matmul_16_backward: each chunk of
 * dout rounded once for both gradients), where the backend has it and the matmul runs on its
 * native 16-bit kernels. */
static bool whole_16_backward(const struct exec_model *m)
{
    const struct exec_model_impl *im = m->impl;
    return m->be->matmul_16_backward &&
           (im->f16_native || (im->bf16_native && m->be->matmul_bf16_backward_weight));
}

/* dfch(N,F) = (dout(N,C)·W_proj) ⊙ gelu'(fch), written (W_proj is (C, F) as stored). With
 * whole_16_backward the projection's weight and bias gradients come in the same call (true
 * returned); otherwise the caller runs them. */
static bool mm_backward_dgelu(struct exec_model *m, int l, float *dfch, const float *dout,
                              const float *fch, const float *fcact, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct mm_shape *s = &im->mm[MM_PROJ];
    size_t woff = im->lo[l].w[MM_PROJ], boff = im->lo[l].b[MM_PROJ];
    int fmt;
    const void *w = fused_weight(im, woff, &fmt);
    SW_ASSERT(N <= im->rows);
    if (whole_16_backward(m)) {
        m->be->matmul_16_backward(dfch, gp(im, woff), boff != OFF_NONE ? gp(im, boff) : NULL, dout,
                                  fcact, w16p(im, woff), fmt, fch, N, s->C, s->OC,
                                  im->mm16_scratch);
        return true;
    }
    m->be->matmul_backward_input_dgelu(dfch, dout, w, fmt, fch, N, s->C, s->OC, im->mm16_scratch);
    return false;
}

/* dinp(N,C) += dout·W (+ LoRA); dW, db += when the base is trainable; adapter grads +=. */
static void mm_backward(struct exec_model *m, int l, int k, float *dinp, const float *dout,
                        const float *inp, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct mm_shape *s = &im->mm[k];
    bool head = k == MM_HEAD;
    size_t woff = head ? im->head : im->lo[l].w[k];
    size_t boff = head ? OFF_NONE : im->lo[l].b[k];
    float *dw = gp(im, woff);
    float *db = boff != OFF_NONE ? gp(im, boff) : NULL;
    if (whole_16_backward(m)) {
        SW_ASSERT(N <= im->rows);
        be->matmul_16_backward(dinp, dw, db, dout, inp, w16p(im, woff),
                               im->fp16 ? BACKEND_WFMT_FP16 : BACKEND_WFMT_BF16, NULL, N, s->C,
                               s->OC, im->mm16_scratch);
    } else if (im->bf16_native) {
        /* The input gradient on the bf16 kernel. */
        SW_ASSERT(N <= im->rows);
        if (dinp)
            be->matmul_bf16_backward_input(dinp, dout, w16p(im, woff), N, s->C, s->OC,
                                           im->mm16_scratch);
        /* Weight and bias gradients: bf16 operands where the backend has them (CUDA), else
         * fp32. */
        if ((dw || db) && be->matmul_bf16_backward_weight)
            be->matmul_bf16_backward_weight(dw, db, dout, inp, N, s->C, s->OC, im->mm16_scratch);
        else if (dw || db)
            be->matmul_backward(NULL, dw, db, dout, inp, NULL, N, s->C, s->OC);
    } else if (im->f16_native) {
        SW_ASSERT(N <= im->rows);
        if (dinp)
            be->matmul_f16_backward_input(dinp, dout, w16p(im, woff), N, s->C, s->OC,
                                          im->mm16_scratch);
        if (dw || db)
            be->matmul_f16_backward_weight(dw, db, dout, inp, N, s->C, s->OC, im->mm16_scratch);
    } else if (im->fp16) {
        const float *w = mm_weight(m, woff, (size_t)s->OC * s->C);
        f16_backward_emulated(m, dinp, dw, db, dout, inp, w, N, s->C, s->OC);
    } else {
        const float *w = mm_weight(m, woff, (size_t)s->OC * s->C);
        be->matmul_backward(dinp, dw, db, dout, inp, w, N, s->C, s->OC);
    }
    if (im->lora && !head)
        lora_backward(m, l, k, dinp, dout, inp, N);
}

/* bf16 activations (act16): out(N,OC) = inp · Wᵀ + b (+ LoRA) for matmul k of layer l
 * (l == L: the head) on bf16 inp, into fp32 out or, with out_bf16, bf16 out (then the bias is
 * read from the bf16 mirror: cuBLASLt adds a bias of the output's type). With adapters on
 * matmul k the sum is formed in fp32 — the adapters read inp widened into x32 (N·C floats) —
 * and, for a bf16 out, in y32 (N·OC floats) before it is rounded into out; the callers lend
 * the backward's temporaries, idle during the forward. res (fp32 out only, may be NULL): the
 * residual stream added to the product by the matmul itself. */
static void mm_forward_a16(struct exec_model *m, int l, int k, void *out, bool out_bf16,
                           const uint16_t *inp, const float *res, int N, float *x32, float *y32)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct mm_shape *s = &im->mm[k];
    bool head = k == MM_HEAD;
    size_t woff = head ? im->head : im->lo[l].w[k];
    size_t boff = head ? OFF_NONE : im->lo[l].b[k];
    bool lora = !head && has_adapter(im, k);
    const void *bias = boff == OFF_NONE    ? NULL
                       : out_bf16 && !lora ? (const void *)w16p(im, boff)
                                           : (const void *)wp(im, boff);
    SW_ASSERT(N <= im->rows);
    if (!lora) {
        be->matmul_a16_forward(out, out_bf16, inp, w16p(im, woff), bias, res, N, s->C, s->OC);
        return;
    }
    SW_ASSERT(x32 && (y32 || !out_bf16) && !(res && out_bf16));
    float *y = out_bf16 ? y32 : (float *)out;
    be->matmul_a16_forward(y, false, inp, w16p(im, woff), bias, res, N, s->C, s->OC);
    be->bf16_to_f32(x32, inp, (size_t)N * s->C);
    lora_forward(m, l, k, y, x32, N);
    if (out_bf16)
        be->f32_to_bf16((uint16_t *)out, y, (size_t)N * s->OC);
}

/* act16: matmul k's backward on bf16 inp: dinp = dout·W, written (with pre: (dout·W) ⊙
 * gelu'(pre)), dW and db +=; then the adapters' (no pre then), from inp widened into x32
 * (N·C floats, lent by the caller), adding their input gradient. */
static void mm_backward_a16(struct exec_model *m, int l, int k, float *dinp, const float *dout,
                            const uint16_t *dout_pre, const uint16_t *inp, const uint16_t *pre,
                            int N, float *x32)
{
    struct exec_model_impl *im = m->impl;
    const struct mm_shape *s = &im->mm[k];
    bool head = k == MM_HEAD;
    size_t woff = head ? im->head : im->lo[l].w[k];
    size_t boff = head ? OFF_NONE : im->lo[l].b[k];
    SW_ASSERT(N <= im->rows);
    m->be->matmul_16_backward_a16(dinp, gp(im, woff), boff != OFF_NONE ? gp(im, boff) : NULL,
                                  dout, dout_pre, inp, w16p(im, woff), pre, N, s->C, s->OC,
                                  im->mm16_scratch);
    if (head || !has_adapter(im, k))
        return;
    SW_ASSERT(x32 && !pre && !dout_pre);
    m->be->bf16_to_f32(x32, inp, (size_t)N * s->C);
    lora_backward(m, l, k, dinp, dout, x32, N);
}

/* ---------------------------------------------------------------- forward */

/* The norm of fp32 inp into fp32 out or, with bf16 activations, into bf16 out16 (the other
 * NULL); the statistics fp32 either way. */
static void norm_forward(struct exec_model *m, float *out, uint16_t *out16, float *mean,
                         float *rstd, const float *inp, size_t w, size_t b, int N)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const float *wt = wp(im, w), *bias = b == OFF_NONE ? NULL : wp(im, b);
    if (im->layernorm && out16)
        be->layernorm_forward_a16(out16, mean, rstd, inp, wt, bias, N, m->C, im->eps);
    else if (im->layernorm)
        be->layernorm_forward(out, mean, rstd, inp, wt, bias, N, m->C, im->eps);
    else if (out16)
        be->rmsnorm_forward_a16(out16, rstd, inp, wt, N, m->C, im->eps);
    else
        be->rmsnorm_forward(out, rstd, inp, wt, N, m->C, im->eps);
}

static void norm_backward(struct exec_model *m, float *dinp, const float *dout, const float *inp,
                          size_t w, size_t b, const float *mean, const float *rstd, int N)
{
    struct exec_model_impl *im = m->impl;
    float *dw = gp(im, w);
    float *db = b != OFF_NONE ? gp(im, b) : NULL;
    if (im->layernorm)
        m->be->layernorm_backward(dinp, dw, db, dout, inp, wp(im, w), mean, rstd, N, m->C);
    else
        m->be->rmsnorm_backward(dinp, dw, dout, inp, wp(im, w), rstd, N, m->C);
}

/* Attention core from a->qkv into a->atty (positions 0..T-1: training, forward, and a prefill,
 * which keeps no lse: lse NULL). */
static void attn_core_forward(struct exec_model *m, struct layer_act *a, float *lse, int B, int T)
{
    if (m->impl->act16)
        m->be->flash_attention_forward_a16(a->atty_16, lse, a->qkv_16, B, T, m->NH, m->NKV, m->HS);
    else if (m->opts.attention == ATTN_NAIVE)
        m->be->attention_forward(a->atty, a->att, a->qkv, B, T, m->NH, m->NKV, m->HS);
    else if (m->impl->bf16 && m->be->flash_attention_forward_16)
        m->be->flash_attention_forward_16(a->atty, lse, a->qkv, B, T, m->NH, m->NKV, m->HS);
    else
        m->be->flash_attention_forward(a->atty, lse, a->qkv, B, T, m->NH, m->NKV, m->HS);
}

/* layer_forward with bf16 activations (act16): the same steps on the _16 buffers; kv, pos as
 * there (generation: the bf16 cache from the bf16 qkv, the attention output bf16). */
static void layer_forward_a16(struct exec_model *m, int l, const float *inp, float *out, int B,
                              int T, bool kv, int pos)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct layer_off *lo = &im->lo[l];
    struct layer_act *a = &im->la[l];
    int N = B * T;

    norm_forward(m, NULL, a->ln1_16, a->ln1_mean, a->ln1_rstd, inp, lo->ln1_w, lo->ln1_b, N);
    /* Adapters' fp32 room: the backward's temporaries, idle now. */
    mm_forward_a16(m, l, MM_QKV, a->qkv_16, true, a->ln1_16, NULL, N, im->dln, im->dqkv);
    if (im->rope)
        be->rope_forward_a16(a->qkv_16, im->rope_cos, im->rope_sin, B, T, im->QKV, m->NH + m->NKV,
                             m->HS, im->ropeT, pos);
    if (kv) {
        size_t per = (size_t)m->opts.kv_batch * m->opts.kv_seq * im->KVW;
        int NH = m->NH, NKV = m->NKV, HS = m->HS, cT = m->opts.kv_seq;
        be->kv_cache_append_a16(im->kc16 + per * l, im->vc16 + per * l, a->qkv_16, B, T, pos, NH,
                                NKV, HS, cT);
        if (pos == 0) /* a prefill: the training forward's causal attention (layer_forward) */
            attn_core_forward(m, a, NULL, B, T);
        else
            be->attention_decode_a16(a->atty_16, a->qkv_16, im->kc16 + per * l,
                                     im->vc16 + per * l, B, T, pos, NH, NKV, HS, cT);
    } else {
        attn_core_forward(m, a, a->lse, B, T);
    }
    /* The residual sums come out of the projections' epilogues (res2 = inp + attention's). */
    mm_forward_a16(m, l, MM_O, a->res2, false, a->atty_16, inp, N, im->datty, NULL);
    norm_forward(m, NULL, a->ln2_16, a->ln2_mean, a->ln2_rstd, a->res2, lo->ln2_w, lo->ln2_b, N);
    if (!m->desc.swiglu && be->matmul_gelu_forward_a16 && !has_adapter(im, MM_FC)) {
        const struct mm_shape *s = &im->mm[MM_FC];
        size_t boff = lo->b[MM_FC];
        be->matmul_gelu_forward_a16(a->fcact_16, a->fch_16, a->ln2_16, w16p(im, lo->w[MM_FC]),
                                    boff == OFF_NONE ? NULL : w16p(im, boff), N, s->C, s->OC);
    } else {
        mm_forward_a16(m, l, MM_FC, a->fch_16, true, a->ln2_16, NULL, N, im->dln, im->dfch);
        if (m->desc.swiglu)
            be->swiglu_forward_a16(a->fcact_16, a->fch_16, N, m->F);
        else
            be->gelu_forward_a16(a->fcact_16, a->fch_16, (size_t)N * m->F);
    }
    mm_forward_a16(m, l, MM_PROJ, out, false, a->fcact_16, a->res2, N, im->dfcact, NULL);
}

/* One layer: inp -> out. kv: use the KV cache at position pos (prefill/decode). */
static void layer_forward(struct exec_model *m, int l, const float *inp, float *out, int B, int T,
                          bool kv, int pos)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct layer_off *lo = &im->lo[l];
    struct layer_act *a = &im->la[l];
    int N = B * T;
    size_t NC = (size_t)N * m->C;
    if (im->act16) {
        layer_forward_a16(m, l, inp, out, B, T, kv, pos);
        return;
    }

    norm_forward(m, a->ln1, NULL, a->ln1_mean, a->ln1_rstd, inp, lo->ln1_w, lo->ln1_b, N);
    mm_forward(m, l, MM_QKV, a->qkv, a->ln1, N);
    if (im->rope)
        be->rope_forward(a->qkv, im->rope_cos, im->rope_sin, B, T, im->QKV, m->NH + m->NKV, m->HS,
                         im->ropeT, pos);
    if (kv) {
        size_t per = (size_t)m->opts.kv_batch * m->opts.kv_seq * im->KVW;
        int NH = m->NH, NKV = m->NKV, HS = m->HS, cT = m->opts.kv_seq;
        if (im->kv16)
            be->kv_cache_append_c16(im->kc16 + per * l, im->vc16 + per * l, a->qkv, B, T, pos, NH,
                                    NKV, HS, cT);
        else
            be->kv_cache_append(im->kc + per * l, im->vc + per * l, a->qkv, B, T, pos, NH, NKV,
                                HS, cT);
        /* A prefill into an empty cache is the training forward's causal attention over the
         * new tokens: the flash kernels tile it (queries share their key tiles), where the
         * decode kernel walks the cache once per query. */
        if (pos == 0 && m->opts.attention == ATTN_FLASH)
            attn_core_forward(m, a, NULL, B, T);
        else if (im->kv16)
            be->attention_decode_c16(a->atty, a->qkv, im->kc16 + per * l, im->vc16 + per * l, B,
                                     T, pos, NH, NKV, HS, cT);
        else
            be->attention_decode(a->atty, a->qkv, im->kc + per * l, im->vc + per * l, B, T, pos,
                                 NH, NKV, HS, cT);
    } else {
        attn_core_forward(m, a, a->lse, B, T);
    }
    mm_forward(m, l, MM_O, im->tmp, a->atty, N);
    be->residual_forward(a->res2, inp, im->tmp, NC);
    norm_forward(m, a->ln2, NULL, a->ln2_mean, a->ln2_rstd, a->res2, lo->ln2_w, lo->ln2_b, N);
    if (gelu_fusable(m, m->be->matmul_gelu_forward != NULL, MM_FC)) {
        mm_forward_gelu(m, l, a->fcact, a->fch, a->ln2, N);
    } else {
        mm_forward(m, l, MM_FC, a->fch, a->ln2, N);
        if (m->desc.swiglu)
            be->swiglu_forward(a->fcact, a->fch, N, m->F);
        else
            be->gelu_forward(a->fcact, a->fch, (size_t)N * m->F);
    }
    mm_forward(m, l, MM_PROJ, im->tmp, a->fcact, N);
    be->residual_forward(out, a->res2, im->tmp, NC);
}

static int check_tokens(const struct exec_model *m, const int *ids, size_t n, bool allow_ignore,
                        const char *what, struct sw_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if ((ids[i] < 0 || ids[i] >= m->V) && !(allow_ignore && ids[i] == -1))
            return sw_errf(err, SW_EINVAL, "%s[%zu] = %d outside [0, %d)%s", what, i, ids[i], m->V,
                           allow_ignore ? " (or -1 to ignore)" : "");
    }
    return 0;
}

int exec_model_forward(struct exec_model *m, const int *tokens, const int *targets, int B, int T,
                       float *loss, struct sw_err *err)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    if (B < 1 || T < 1 || B > m->opts.batch || T > m->opts.seq)
        return sw_errf(err, SW_EINVAL, "forward of B=%d, T=%d exceeds the model's B=%d, T=%d", B, T,
                       m->opts.batch, m->opts.seq);
    size_t N = (size_t)B * T;
    int rc = check_tokens(m, tokens, N, false, "tokens", err);
    if (rc == 0 && targets)
        rc = check_tokens(m, targets, N, true, "targets", err);
    if (rc < 0)
        return rc;
    refresh_derived(m);
    be->memcpy(im->tokens, tokens, N * sizeof(int), BACKEND_H2D);
    be->embedding_forward(im->inp[0], im->tokens, wp(im, im->wte),
                          im->learned_pos ? wp(im, im->wpe) : NULL, B, T, m->C, m->V,
                          m->desc.max_pos, 0);
    for (int l = 0; l < m->L; l++) {
        if ((rc = ensure_layer(m, l, err)) < 0)
            return rc;
        layer_forward(m, l, im->inp[l], im->inp[l + 1], B, T, false, 0);
    }
    if (im->act16) {
        norm_forward(m, NULL, im->lnf_16, im->lnf_mean, im->lnf_rstd, im->inp[m->L], im->lnf_w,
                     im->lnf_b, (int)N);
        if (im->lg16)
            mm_forward_a16(m, m->L, MM_HEAD, im->logits16, true, im->lnf_16, NULL, (int)N, NULL,
                           NULL);
        else
            mm_forward_a16(m, m->L, MM_HEAD, im->logits, false, im->lnf_16, NULL, (int)N, NULL,
                           NULL);
    } else {
        norm_forward(m, im->lnf, NULL, im->lnf_mean, im->lnf_rstd, im->inp[m->L], im->lnf_w,
                     im->lnf_b, (int)N);
        mm_forward(m, m->L, MM_HEAD, im->logits, im->lnf, (int)N);
    }
    im->have_fwd = false;
    im->fwd_B = B;
    im->fwd_T = T;
    float mean_loss = 0.0f;
    if (targets) {
        be->memcpy(im->targets, targets, N * sizeof(int), BACKEND_H2D);
        /* losses go to the workspace's tmp (N <= rows·C floats); logits stay intact. */
        if (im->lg16)
            mean_loss = be->softmax_ce_a16(im->logits16, im->tmp, NULL, im->targets, (int)N, m->V,
                                           m->Vp, false, 1.0f);
        else
            mean_loss = be->softmax_ce(im->logits, im->tmp, NULL, im->targets, (int)N, m->V,
                                       m->Vp, false, 1.0f);
        im->have_fwd = m->opts.training;
    }
    if (loss)
        *loss = mean_loss;
    return 0;
}

const float *exec_model_logits(const struct exec_model *m)
{
    return m->impl->logits;
}

const uint16_t *exec_model_logits_bf16(const struct exec_model *m)
{
    return m->impl->logits16;
}

/* ---------------------------------------------------------------- backward */

/* Index in the trainable region of layer l's first parameter: the base region's layer l under
 * full training (embeddings come first), the adapters of layer l under LoRA. */
static size_t layer_train_start(const struct exec_model *m, int l)
{
    const struct exec_model_impl *im = m->impl;
    if (im->lora)
        return m->n_lora_params / (size_t)m->L * (size_t)l;
    return im->lo[l].ln1_w;
}

/* The backward of one layer from bf16 activations (act16), after any recompute: the steps of
 * layer_backward on the _16 buffers. The GELU MLP's d(fch) is never formed: the FC matmul's
 * backward takes d(fcact) through the GELU as it rounds it. With a LoRA adapter on either MLP
 * matmul (whose adapter needs the fp32 gradients), d(fch) comes out of the projection's
 * backward (its DGELU form) unless the backend runs GELU unfused (matmul_gelu_forward_a16
 * NULL), and SwiGLU's from its own backward. */
static void layer_backward_a16(struct exec_model *m, int l, int B, int T)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct layer_off *lo = &im->lo[l];
    struct layer_act *a = &im->la[l];
    int N = B * T;
    float *dres = im->dres;

    /* The matmuls and the attention backward write their input gradients (no memsets); the
     * GELU/SwiGLU backward entries accumulate into zeroed buffers. */
    /* Adapters' fp32 copies of a matmul's input go to a temporary idle at that point. */
    const uint16_t *fc_dout_pre = NULL; /* set: dfch holds d(fcact), taken through the GELU */
    if (!m->desc.swiglu && !has_adapter(im, MM_PROJ) && !has_adapter(im, MM_FC)) {
        /* d(fcact) into dfch; the FC matmul's backward takes it through the GELU as it rounds
         * it (dout_pre: fch is the pre-activation either way): no GELU pass, no memset. */
        mm_backward_a16(m, l, MM_PROJ, im->dfch, dres, NULL, a->fcact_16, NULL, N, NULL);
        fc_dout_pre = a->fch_16;
    } else if (!m->desc.swiglu && be->matmul_gelu_forward_a16 && !has_adapter(im, MM_PROJ)) {
        mm_backward_a16(m, l, MM_PROJ, im->dfch, dres, NULL, a->fcact_16, a->fch_16, N, NULL);
    } else {
        mm_backward_a16(m, l, MM_PROJ, im->dfcact, dres, NULL, a->fcact_16, NULL, N, im->dfch);
        be->memset(im->dfch, 0, (size_t)N * im->F2 * sizeof(float));
        if (m->desc.swiglu)
            be->swiglu_backward_a16(im->dfch, im->dfcact, a->fch_16, N, m->F);
        else
            be->gelu_backward_a16(im->dfch, a->fch_16, im->dfcact, (size_t)N * m->F);
    }
    mm_backward_a16(m, l, MM_FC, im->dln, im->dfch, fc_dout_pre, a->ln2_16, NULL, N, im->tmp);
    norm_backward(m, dres, im->dln, a->res2, lo->ln2_w, lo->ln2_b, a->ln2_mean, a->ln2_rstd, N);

    mm_backward_a16(m, l, MM_O, im->datty, dres, NULL, a->atty_16, NULL, N, im->dqkv);
    /* The MLP's d(fch) is idle from here to the next layer: the attention backward's scratch.
     * The entry writes dqkv (no memset). */
    be->flash_attention_backward_a16(im->dqkv, im->datty, a->qkv_16, a->atty_16, a->lse, im->dfch,
                                     (size_t)N * im->F2 * sizeof(float), B, T, m->NH, m->NKV,
                                     m->HS);
    if (im->rope)
        be->rope_backward(im->dqkv, im->rope_cos, im->rope_sin, B, T, im->QKV, m->NH + m->NKV,
                          m->HS, im->ropeT, 0);
    mm_backward_a16(m, l, MM_QKV, im->dln, im->dqkv, NULL, a->ln1_16, NULL, N, im->tmp);
    norm_backward(m, dres, im->dln, im->inp[l], lo->ln1_w, lo->ln1_b, a->ln1_mean, a->ln1_rstd,
                  N);
}

static void layer_backward(struct exec_model *m, int l, int B, int T)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    const struct layer_off *lo = &im->lo[l];
    struct layer_act *a = &im->la[l];
    int N = B * T;
    const float *inp = im->inp[l];
    float *dres = im->dres;

    if (m->opts.recompute == RECOMPUTE_FULL)
        layer_forward(m, l, inp, im->inp[l + 1], B, T, false, 0);
    else if (m->opts.recompute == RECOMPUTE_SELECTIVE)
        attn_core_forward(m, a, a->lse, B, T);
    if (im->act16) {
        layer_backward_a16(m, l, B, T);
        return;
    }

    /* MLP: out = res2 + proj(act(fc(ln2(res2)))); dres holds d(out). */
    if (gelu_fusable(m, m->be->matmul_backward_input_dgelu != NULL, MM_PROJ)) {
        /* d(fch) in one GEMM; then proj's weight and bias gradients, unless done with it */
        if (!mm_backward_dgelu(m, l, im->dfch, dres, a->fch, a->fcact, N))
            mm_backward(m, l, MM_PROJ, NULL, dres, a->fcact, N);
    } else {
        be->memset(im->dfcact, 0, (size_t)N * m->F * sizeof(float));
        mm_backward(m, l, MM_PROJ, im->dfcact, dres, a->fcact, N);
        be->memset(im->dfch, 0, (size_t)N * im->F2 * sizeof(float));
        if (m->desc.swiglu)
            be->swiglu_backward(im->dfch, im->dfcact, a->fch, N, m->F);
        else
            be->gelu_backward(im->dfch, a->fch, im->dfcact, (size_t)N * m->F);
    }
    be->memset(im->dln, 0, (size_t)N * m->C * sizeof(float));
    mm_backward(m, l, MM_FC, im->dln, im->dfch, a->ln2, N);
    /* In place: d(res2) = d(out) + LN2ᵀ(...) */
    norm_backward(m, dres, im->dln, a->res2, lo->ln2_w, lo->ln2_b, a->ln2_mean, a->ln2_rstd, N);

    /* Attention: res2 = inp + o(attn(rope(qkv(ln1(inp))))). */
    be->memset(im->datty, 0, (size_t)N * im->Q * sizeof(float));
    mm_backward(m, l, MM_O, im->datty, dres, a->atty, N);
    be->memset(im->dqkv, 0, (size_t)N * im->QKV * sizeof(float));
    if (m->opts.attention == ATTN_NAIVE)
        be->attention_backward(im->dqkv, im->datty, a->qkv, a->att, im->att_scratch, B, T, m->NH,
                               m->NKV, m->HS);
    else if (im->bf16 && be->flash_attention_backward_16)
        be->flash_attention_backward_16(im->dqkv, im->datty, a->qkv, a->atty, a->lse, B, T, m->NH,
                                        m->NKV, m->HS);
    else
        be->flash_attention_backward(im->dqkv, im->datty, a->qkv, a->atty, a->lse, B, T, m->NH,
                                     m->NKV, m->HS);
    if (im->rope)
        be->rope_backward(im->dqkv, im->rope_cos, im->rope_sin, B, T, im->QKV, m->NH + m->NKV,
                          m->HS, im->ropeT, 0);
    be->memset(im->dln, 0, (size_t)N * m->C * sizeof(float));
    mm_backward(m, l, MM_QKV, im->dln, im->dqkv, a->ln1, N);
    norm_backward(m, dres, im->dln, inp, lo->ln1_w, lo->ln1_b, a->ln1_mean, a->ln1_rstd, N);
}

int exec_model_backward(struct exec_model *m, float grad_scale, struct sw_err *err)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    if (!m->opts.training)
        return sw_errf(err, SW_EINVAL, "backward on an inference model");
    if (!im->have_fwd)
        return sw_errf(err, SW_EINVAL,
                       "backward needs a forward with targets since the last backward");
    im->have_fwd = false;
    int B = im->fwd_B, T = im->fwd_T, N = B * T;
    /* logits -> grad_scale · d(mean loss)/d(logits), in place; then the head's backward. With
     * bf16 logits the gradient is bf16 and the head reads it as it is. */
    if (im->lg16) {
        be->softmax_ce_a16(im->logits16, NULL, NULL, im->targets, N, m->V, m->Vp, true,
                           grad_scale);
        be->matmul_a16_backward_d16(im->dln, gp(im, im->head), im->logits16, im->lnf_16,
                                    w16p(im, im->head), N, m->C, m->Vp);
    } else if (im->act16) {
        be->softmax_ce(im->logits, NULL, NULL, im->targets, N, m->V, m->Vp, true, grad_scale);
        mm_backward_a16(m, m->L, MM_HEAD, im->dln, im->logits, NULL, im->lnf_16, NULL, N, NULL);
    } else {
        be->softmax_ce(im->logits, NULL, NULL, im->targets, N, m->V, m->Vp, true, grad_scale);
        be->memset(im->dln, 0, (size_t)N * m->C * sizeof(float));
        mm_backward(m, m->L, MM_HEAD, im->dln, im->logits, im->lnf, N);
    }
    be->memset(im->dres, 0, (size_t)N * m->C * sizeof(float));
    norm_backward(m, im->dres, im->dln, im->inp[m->L], im->lnf_w, im->lnf_b, im->lnf_mean,
                  im->lnf_rstd, N);
    if (im->gshard && !im->grad_take)
        return sw_errf(err, SW_EINVAL,
                       "the model's gradients are sharded, and no gradient hook is set");
    for (int l = m->L - 1; l >= 0; l--) {
        int rc = ensure_layer(m, l, err);
        if (rc < 0)
            return rc;
        /* Sharded gradients: layer l's part of the trainable region (base weights, or the
         * adapters under LoRA) is computed into the layer buffer, then handed over. */
        size_t g_n = im->lora ? m->n_lora_params / (size_t)m->L : im->lay_n;
        size_t g_off = im->lora ? g_n * (size_t)l : im->lay0 + (size_t)l * im->lay_n;
        if (im->gshard) {
            be->memset(im->glbuf, 0, g_n * sizeof(float));
            im->glayer = l;
        }
        layer_backward(m, l, B, T);
        if (im->gshard) {
            im->glayer = -1;
            rc = im->grad_take(im->grad_take_ctx, im->glbuf, g_off, g_n, err);
        } else if (im->grad_ready) {
            rc = im->grad_ready(im->grad_ready_ctx, layer_train_start(m, l), err);
        }
        if (rc < 0)
            return rc;
    }
    if (im->grads_base)
        be->embedding_backward(gp(im, im->wte), im->learned_pos ? gp(im, im->wpe) : NULL,
                               im->dres, im->tokens, B, T, m->C, m->V, m->desc.max_pos, 0);
    if (im->gshard && im->lora)
        return 0; /* every adapter is in a layer */
    if (im->gshard) {
        /* The non-layer gradients are final now: the prefix, then the suffix. */
        int rc = im->grad_take(im->grad_take_ctx, im->grads_base, 0, im->lay0, err);
        if (rc == 0 && im->lay_end < m->n_params)
            rc = im->grad_take(im->grad_take_ctx, im->grads_base + im->lay0, im->lay_end,
                               m->n_params - im->lay_end, err);
        return rc;
    }
    return im->grad_ready ? im->grad_ready(im->grad_ready_ctx, 0, err) : 0;
}

void exec_model_set_grad_take(struct exec_model *m, exec_grad_take_fn fn, void *ctx)
{
    m->impl->grad_take = fn;
    m->impl->grad_take_ctx = ctx;
}

bool exec_model_grads_sharded(const struct exec_model *m)
{
    return m->impl && m->impl->gshard;
}

void exec_model_set_grad_ready(struct exec_model *m, exec_grad_ready_fn fn, void *ctx)
{
    m->impl->grad_ready = fn;
    m->impl->grad_ready_ctx = ctx;
}

void exec_model_zero_grad(struct exec_model *m)
{
    struct exec_model_impl *im = m->impl;
    if (m->train_grads)
        m->be->memset(m->train_grads, 0, m->n_train * sizeof(float));
    else if (im && im->gshard && im->grads_base)
        m->be->memset(im->grads_base, 0, im->n_nonlayer * sizeof(float));
}

/* ---------------------------------------------------------------- generation */

/* Run B×T new tokens at cache position pos; logits of each sequence's last token into
 * im->logits (B, Vp). */
static void kv_forward(struct exec_model *m, const int *tokens, int B, int T, int pos)
{
    struct exec_model_impl *im = m->impl;
    const struct backend *be = m->be;
    int N = B * T;
    refresh_derived(m);
    be->memcpy(im->tokens, tokens, (size_t)N * sizeof(int), BACKEND_H2D);
    be->embedding_forward(im->inp[0], im->tokens, wp(im, im->wte),
                          im->learned_pos ? wp(im, im->wpe) : NULL, B, T, m->C, m->V,
                          m->desc.max_pos, pos);
    for (int l = 0; l < m->L; l++)
        layer_forward(m, l, im->inp[l], im->inp[l + 1], B, T, true, pos);
    /* Only the last position of each sequence needs logits: gather those rows. */
    be->copy_2d(im->tmp, m->C, im->inp[m->L] + (size_t)(T - 1) * m->C, T * m->C, B, m->C, 1.0f);
    if (im->act16) { /* fp32 logits (lg16 is training's) from the bf16 norm output */
        norm_forward(m, NULL, im->lnf_16, im->lnf_mean, im->lnf_rstd, im->tmp, im->lnf_w,
                     im->lnf_b, B);
        mm_forward_a16(m, m->L, MM_HEAD, im->logits, false, im->lnf_16, NULL, B, NULL, NULL);
    } else {
        norm_forward(m, im->lnf, NULL, im->lnf_mean, im->lnf_rstd, im->tmp, im->lnf_w, im->lnf_b,
                     B);
        mm_forward(m, m->L, MM_HEAD, im->logits, im->lnf, B);
    }
}

/* The (B, Vp) logits of kv_forward where the host can read them: the model's own buffer on a
 * host-memory backend, else a copy in host_logits (allocated on first use: kv_batch rows). */
static const float *kv_logits_host(struct exec_model *m, int B)
{
    struct exec_model_impl *im = m->impl;
    if (m->be->host_memory)
        return im->logits;
    if (!im->host_logits) {
        /* Page-locked where the backend has it: a sampled decode step copies B·Vp floats. */
        size_t bytes = (size_t)m->opts.kv_batch * m->Vp * sizeof(float);
        if (m->be->host_alloc_pinned)
            im->host_logits = m->be->host_alloc_pinned(bytes);
        im->host_logits_pinned = im->host_logits != NULL;
        if (!im->host_logits)
            im->host_logits = sw_xmalloc(bytes);
    }
    m->be->memcpy(im->host_logits, im->logits, (size_t)B * m->Vp * sizeof(float), BACKEND_D2H);
    return im->host_logits;
}

int exec_model_prefill(struct exec_model *m, const int *tokens, int B, int T, const float **logits,
                       struct sw_err *err)
{
    struct exec_model_impl *im = m->impl;
    if (m->opts.kv_batch <= 0)
        return sw_errf(err, SW_EINVAL, "prefill needs a model built with a KV cache (kv_batch)");
    if (B < 1 || T < 1 || B > m->opts.kv_batch || T > m->opts.kv_seq)
        return sw_errf(err, SW_EINVAL, "prefill of B=%d, T=%d exceeds the cache's B=%d, T=%d", B, T,
                       m->opts.kv_batch, m->opts.kv_seq);
    int rc = check_tokens(m, tokens, (size_t)B * T, false, "tokens", err);
    if (rc < 0)
        return rc;
    kv_forward(m, tokens, B, T, 0);
    im->kv_B = B;
    m->kv_len = T;
    if (logits) /* NULL: the caller reads only exec_model_argmax */
        *logits = kv_logits_host(m, B);
    return 0;
}

int exec_model_decode(struct exec_model *m, const int *tokens, int B, const float **logits,
                      struct sw_err *err)
{
    struct exec_model_impl *im = m->impl;
    if (m->opts.kv_batch <= 0 || m->kv_len == 0)
        return sw_errf(err, SW_EINVAL, "decode needs a prefilled KV cache");
    if (B != im->kv_B)
        return sw_errf(err, SW_EINVAL, "decode of B=%d after a prefill of B=%d", B, im->kv_B);
    if (m->kv_len >= m->opts.kv_seq)
        return sw_errf(err, SW_ERANGE, "KV cache full (%d tokens)", m->opts.kv_seq);
    int rc = check_tokens(m, tokens, (size_t)B, false, "tokens", err);
    if (rc < 0)
        return rc;
    kv_forward(m, tokens, B, 1, m->kv_len);
    m->kv_len++;
    if (logits) /* NULL: the caller reads only exec_model_argmax */
        *logits = kv_logits_host(m, B);
    return 0;
}

int exec_model_argmax(struct exec_model *m, int *out, struct sw_err *err)
{
    if (m->opts.kv_batch <= 0 || m->kv_len == 0)
        return sw_errf(err, SW_EINVAL, "argmax needs a prefill or decode first");
    m->be->argmax_rows(out, m->impl->logits, m->impl->kv_B, m->V, m->Vp);
    return 0;
}
