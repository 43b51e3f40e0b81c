/* The advisor's memory estimate for the built-in CPU executor against what the executor
 * allocates (issue 3: "the advisor's predicted peak memory for the executor is within 10% of
 * what the executor measures"). For each plan the advisor's per-category bytes
 * (advisor_estimate on a cpu device) are compared with the executor's: exec_model_plan_bytes
 * for weights, gradients, activations, KV cache and workspace, plus exec_optimizer_plan_bytes
 * for the optimizer state (from a model actually built). The options are set from the plan the
 * way executor/run.c (training) and executor/generate.c (inference) set them; LoRA adapts every
 * linear layer, the advisor's assumption. Tiny GPT-2 and Llama models are also built for real
 * (exec_model_init, exec_optimizer_init) and the backend's counters must equal the plan, so the
 * comparison is against real allocations; GPT-2 124M- and Llama-shaped plans cost nothing to
 * plan. Bars: total within 5% (the issue asks 10%) and every category within 10% or 1 MiB; the
 * [exact]-tagged categories (weights, gradients, optimizer, KV cache; strategy reference 3.1,
 * 3.4, 4.2) must match byte for byte. The runtime overhead (the process baseline, a [cal]
 * constant) has no executor counter and is printed, not compared. A table goes to stdout.
 *
 * The same plans again with strategy.device cuda on a GPU node through advisor_estimate_builtin
 * (issue 5: the advisor models the CUDA backend): executor/model.c allocates the same buffers
 * on any backend, sized by the backend table's scratch functions, so the executor side is
 * planned (and the tiny models built) with a table that carries the CUDA plugin's sizes --
 * functions below that MIRROR
 * kernels/cuda (matmul.cu kcuda_matmul_bf16_scratch_bytes, k_attention.cu
 * kcuda_attention_backward_scratch_bytes, cuda_int.cuh KCUDA_FLASH_MAX_HS; keep them in step)
 * -- plus the 33,816,576 bytes of workspace the plugin allocates when it loads (docs/cuda.md,
 * "Memory accounting"). There every category must match byte for byte; the advisor's overhead
 * (CUDA context and fragmentation margin) has no executor counter and is printed. */
#include "harness.h"

#include "advisor/advisor.h"
#include "executor/executor.h"

#define MIB (1024.0 * 1024.0)

static struct model_desc tiny(enum model_arch arch)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-%s", model_arch_name(arch));
    d.arch = arch;
    d.n_layers = 2;
    d.hidden = 32;
    d.n_heads = 4;
    d.n_kv_heads = arch == MODEL_ARCH_LLAMA ? 2 : 4;
    d.head_dim = 8;
    d.ffn = arch == MODEL_ARCH_LLAMA ? 64 : 128;
    d.vocab = 97;
    d.max_pos = 64;
    model_fill_defaults(&d);
    return d;
}

/* GPT-2 124M (HF "gpt2"): 12 layers, 768 wide, 12 heads, 50257 ids, 1024 positions. */
static struct model_desc gpt2_124m(void)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "gpt2-124m");
    d.arch = MODEL_ARCH_GPT2;
    d.n_layers = 12;
    d.hidden = 768;
    d.n_heads = 12;
    d.vocab = 50257;
    d.max_pos = 1024;
    model_fill_defaults(&d);
    return d;
}

/* A small Llama-shaped model with GQA, SwiGLU and an untied head (TinyLlama-like widths). */
static struct model_desc llama_small(void)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "llama-small");
    d.arch = MODEL_ARCH_LLAMA;
    d.n_layers = 4;
    d.hidden = 512;
    d.n_heads = 8;
    d.n_kv_heads = 2;
    d.ffn = 1408;
    d.vocab = 32000;
    d.max_pos = 2048;
    model_fill_defaults(&d);
    return d;
}

/* Whether the executor's bf16 matmuls run natively: this CPU's answer, then (second pass of
 * the tiny plans) its opposite, through a copy of the CPU backend whose has_native_bf16 says
 * so; the model takes its bf16 path from that answer, so both workspace layouts are compared
 * on any machine. Where the CPU lacks AVX512-BF16 the "native" kernel entries run their scalar
 * fallback, still correct. */
static bool g_native_bf16;

static bool say_native(void)
{
    return true;
}

static bool say_emulated(void)
{
    return false;
}

/* ---- mirrors of the CUDA plugin's sizes (kernels/cuda; keep in step with it) */
/* The plugin's own buffers, counted under workspace at load: CUDA_REDUCE_FLOATS (64 Ki) floats
 * (plugin.cu, cuda_int.cuh) + LT_WORKSPACE_BYTES, 32 MiB (matmul.cu). */
#define CUDA_PLUGIN_WS_BYTES (64.0 * 1024 * 4 + 32.0 * MIB)
#define CUDA_FLASH_MAX_HS 128 /* KCUDA_FLASH_MAX_HS, cuda_int.cuh */

/* kcuda_matmul_bf16_scratch_bytes (matmul.cu): 2 x N x 64 Ki bytes in [4 MiB, 256 MiB]. */
static size_t cuda_mm16_scratch_bytes(int N)
{
    size_t lo = (size_t)4 << 20, hi = (size_t)256 << 20;
    size_t b = (size_t)(N > 0 ? N : 1) * 65536u * 2u;
    return b < lo ? lo : b > hi ? hi : b;
}

/* kcuda_attention_backward_scratch_bytes (k_attention.cu): the (B, NH, T, T) score gradients. */
static size_t cuda_att_scratch_bytes(int B, int T, int NH)
{
    return (size_t)B * NH * T * T * sizeof(float);
}

static bool g_cuda; /* plan and compare for strategy.device cuda */

/* The plugin's fp16 matmul entries exist (the model then takes its native fp16 path and the
 * shared 16-bit scratch); models here are only built, never run. */
static void no_f16_forward(float *out, const float *inp, const uint16_t *w, const float *b, int N,
                           int C, int OC, void *scratch)
{
    (void)out, (void)inp, (void)w, (void)b, (void)N, (void)C, (void)OC, (void)scratch;
    abort();
}

static void no_f16_backward_input(float *dinp, const float *dout, const uint16_t *w, int N, int C,
                                  int OC, void *scratch)
{
    (void)dinp, (void)dout, (void)w, (void)N, (void)C, (void)OC, (void)scratch;
    abort();
}

static void no_f16_backward_weight(float *dw, float *db, const float *dout, const float *inp,
                                   int N, int C, int OC, void *scratch)
{
    (void)dw, (void)db, (void)dout, (void)inp, (void)N, (void)C, (void)OC, (void)scratch;
    abort();
}

/* The plugin's bf16-activation group (backend.h) exists too: bf16-mixed training then keeps
 * its activations in bf16, which the advisor must model. Never called. */
static void no_ln_a16(uint16_t *o, float *mu, float *rs, const float *x, const float *w,
                      const float *b, int N, int C, float eps)
{
    (void)o, (void)mu, (void)rs, (void)x, (void)w, (void)b, (void)N, (void)C, (void)eps;
    abort();
}
static void no_rms_a16(uint16_t *o, float *rs, const float *x, const float *w, int N, int C,
                       float eps)
{
    (void)o, (void)rs, (void)x, (void)w, (void)N, (void)C, (void)eps;
    abort();
}
static void no_mm_a16(void *o, bool o16, const uint16_t *x, const uint16_t *w, const void *b,
                      const float *r, int N, int C, int OC)
{
    (void)o, (void)o16, (void)x, (void)w, (void)b, (void)r, (void)N, (void)C, (void)OC;
    abort();
}
static void no_mm_bwd_a16(float *dx, float *dw, float *db, const float *dy, const uint16_t *dp,
                          const uint16_t *x, const uint16_t *w, const uint16_t *pre, int N, int C,
                          int OC, void *s)
{
    (void)dx, (void)dw, (void)db, (void)dy, (void)dp, (void)x, (void)w, (void)pre, (void)N,
        (void)C, (void)OC, (void)s;
    abort();
}
static void no_gelu_a16(uint16_t *o, const uint16_t *x, size_t n)
{
    (void)o, (void)x, (void)n;
    abort();
}
static void no_gelu_bwd_a16(float *dx, const uint16_t *x, const float *dy, size_t n)
{
    (void)dx, (void)x, (void)dy, (void)n;
    abort();
}
static void no_swiglu_a16(uint16_t *o, const uint16_t *gu, int N, int H)
{
    (void)o, (void)gu, (void)N, (void)H;
    abort();
}
static void no_swiglu_bwd_a16(float *dgu, const float *dy, const uint16_t *gu, int N, int H)
{
    (void)dgu, (void)dy, (void)gu, (void)N, (void)H;
    abort();
}
static void no_rope_a16(uint16_t *x, const float *c, const float *s, int B, int T, int ld, int nh,
                        int HS, int maxT, int pos)
{
    (void)x, (void)c, (void)s, (void)B, (void)T, (void)ld, (void)nh, (void)HS, (void)maxT,
        (void)pos;
    abort();
}
static void no_flash_a16(uint16_t *o, float *lse, const uint16_t *qkv, int B, int T, int NH,
                         int NKV, int HS)
{
    (void)o, (void)lse, (void)qkv, (void)B, (void)T, (void)NH, (void)NKV, (void)HS;
    abort();
}
static void no_flash_bwd_a16(float *dqkv, const float *dy, const uint16_t *qkv, const uint16_t *o,
                             const float *lse, void *scratch, size_t scratch_bytes, int B, int T,
                             int NH, int NKV, int HS)
{
    (void)dqkv, (void)dy, (void)qkv, (void)o, (void)lse, (void)scratch, (void)scratch_bytes,
        (void)B, (void)T, (void)NH, (void)NKV, (void)HS;
    abort();
}

static void no_kv_append_c16(uint16_t *kc, uint16_t *vc, const float *qkv, int B, int T, int pos,
                             int NH, int NKV, int HS, int cT)
{
    (void)kc, (void)vc, (void)qkv, (void)B, (void)T, (void)pos, (void)NH, (void)NKV, (void)HS,
        (void)cT;
    abort();
}
static void no_decode_c16(float *o, const float *qkv, const uint16_t *kc, const uint16_t *vc,
                          int B, int T, int pos, int NH, int NKV, int HS, int cT)
{
    (void)o, (void)qkv, (void)kc, (void)vc, (void)B, (void)T, (void)pos, (void)NH, (void)NKV,
        (void)HS, (void)cT;
    abort();
}

static void no_kv_append_a16(uint16_t *kc, uint16_t *vc, const uint16_t *qkv, int B, int T,
                             int pos, int NH, int NKV, int HS, int cT)
{
    (void)kc, (void)vc, (void)qkv, (void)B, (void)T, (void)pos, (void)NH, (void)NKV, (void)HS,
        (void)cT;
    abort();
}
static void no_decode_a16(uint16_t *o, const uint16_t *qkv, const uint16_t *kc,
                          const uint16_t *vc, int B, int T, int pos, int NH, int NKV, int HS, int cT)
{
    (void)o, (void)qkv, (void)kc, (void)vc, (void)B, (void)T, (void)pos, (void)NH, (void)NKV,
        (void)HS, (void)cT;
    abort();
}

static float no_ce_a16(uint16_t *lg, float *losses, int *nv, const int *tg, int N, int V, int Vp,
                       bool grad, float scale)
{
    (void)lg, (void)losses, (void)nv, (void)tg, (void)N, (void)V, (void)Vp, (void)grad, (void)scale;
    abort();
}
static void no_mm_bwd_d16(float *dx, float *dw, const uint16_t *dy, const uint16_t *x,
                          const uint16_t *w, int N, int C, int OC)
{
    (void)dx, (void)dw, (void)dy, (void)x, (void)w, (void)N, (void)C, (void)OC;
    abort();
}

static const struct backend *test_backend(void)
{
    static struct backend be;
    be = *backend_cpu();
    be.has_native_bf16 = g_native_bf16 ? say_native : say_emulated;
    if (g_cuda) {
        /* The CPU kernels and allocator, with the CUDA plugin's sizes: allocations are then
         * counted exactly as the plugin counts them (requested bytes per category). */
        be.has_native_bf16 = say_native; /* kcuda_has_native_bf16: sm_80+ only */
        be.matmul_bf16_scratch_bytes = cuda_mm16_scratch_bytes;
        be.attention_backward_scratch_bytes = cuda_att_scratch_bytes;
        be.flash_max_hs = CUDA_FLASH_MAX_HS;
        be.matmul_f16_forward = no_f16_forward;
        be.matmul_f16_backward_input = no_f16_backward_input;
        be.matmul_f16_backward_weight = no_f16_backward_weight;
        be.layernorm_forward_a16 = no_ln_a16;
        be.rmsnorm_forward_a16 = no_rms_a16;
        be.matmul_a16_forward = no_mm_a16;
        be.matmul_16_backward_a16 = no_mm_bwd_a16;
        be.gelu_forward_a16 = no_gelu_a16;
        be.gelu_backward_a16 = no_gelu_bwd_a16;
        be.swiglu_forward_a16 = no_swiglu_a16;
        be.swiglu_backward_a16 = no_swiglu_bwd_a16;
        be.rope_forward_a16 = no_rope_a16;
        be.flash_attention_forward_a16 = no_flash_a16;
        be.flash_attention_backward_a16 = no_flash_bwd_a16;
        be.softmax_ce_a16 = no_ce_a16; /* bf16 logits with bf16 activations */
        be.matmul_a16_backward_d16 = no_mm_bwd_d16;
        be.kv_cache_append_c16 = no_kv_append_c16; /* a bf16 KV cache with bf16 weights */
        be.attention_decode_c16 = no_decode_c16;
        be.kv_cache_append_a16 = no_kv_append_a16; /* generation on bf16 activations */
        be.attention_decode_a16 = no_decode_a16;
    }
    return &be;
}

/* One 80 GB GPU (H100-like) on a node with room for the host side. */
static void gpu_node(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    snprintf(hw->name, sizeof(hw->name), "test-gpu");
    hw->source = HW_SRC_PROFILE; /* capacity: the total, 80 GB */
    hw->nodes = 1;
    hw->n_gpus = 1;
    struct hw_gpu *g = &hw->gpus[0];
    g->known = HW_GPU_CC | HW_GPU_MEM_TOTAL | HW_GPU_MEM_BW | HW_GPU_PEAK;
    g->cc_major = 9;
    g->mem_total_bytes = 80000000000ull;
    g->mem_bw_bytes_per_s = 3.35e12;
    g->peak_flops[HW_DT_BF16] = g->peak_flops[HW_DT_FP16] = 989e12;
    g->peak_flops[HW_DT_TF32] = 494e12;
    g->peak_flops[HW_DT_FP32] = 67e12;
    hw->link[0][0] = HW_LINK_SELF;
    hw->cpu.sockets = 1, hw->cpu.cores_per_socket = 2, hw->cpu.usable_cpus = 2;
    hw->host_mem_bytes_per_s = 20e9;
    hw->mem.total_bytes = hw->mem.usable_bytes = 256ull << 30;
}

/* A CPU-only node with room for everything (the fit is not under test here). */
static void cpu_node(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    snprintf(hw->name, sizeof(hw->name), "test-cpu");
    hw->nodes = 1;
    hw->cpu.sockets = 1, hw->cpu.cores_per_socket = 2, hw->cpu.usable_cpus = 2;
    hw->cpu.peak_fp32_flops = hw->cpu.peak_bf16_flops = 157e9;
    hw->host_mem_bytes_per_s = 20e9;
    hw->mem.total_bytes = hw->mem.usable_bytes = 256ull << 30;
    /* The executor runs bf16 matmuls natively where the CPU has AVX512-BF16 (another
     * workspace); the advisor reads that from the ISA bits, so describe the executor's CPU. */
    if (g_native_bf16)
        hw->cpu.isa |= HW_ISA_AVX512_BF16;
}

struct xplan {
    const char *name;
    struct model_desc d;
    struct workload w;
    struct strategy s;
    bool build; /* tiny: build the model and the optimizer for real */
};

static struct xplan train_plan(const char *name, struct model_desc d, int seq, int b,
                               enum sw_precision prec, enum sw_recompute rc, enum sw_attention at,
                               enum sw_optimizer opt, int lora)
{
    struct xplan p;
    memset(&p, 0, sizeof(p));
    p.name = name;
    p.d = d;
    workload_init(&p.w);
    p.w.task = TASK_TRAIN;
    p.w.seq = seq;
    strategy_init(&p.s);
    p.s.device = DEVICE_CPU;
    p.s.precision = prec;
    p.s.recompute = rc;
    p.s.attention = at;
    p.s.optimizer = opt;
    p.s.micro_batch = b;
    p.s.lora_rank = lora;
    p.s.weights = WFMT_FP32;
    return p;
}

static struct xplan infer_plan(const char *name, struct model_desc d, int batch, int prompt,
                               int gen, enum sw_wformat wf, enum sw_attention at)
{
    struct xplan p;
    memset(&p, 0, sizeof(p));
    p.name = name;
    p.d = d;
    workload_init(&p.w);
    p.w.task = TASK_INFER;
    p.w.batch = batch;
    p.w.prompt_len = prompt;
    p.w.gen_len = gen;
    strategy_init(&p.s);
    p.s.device = DEVICE_CPU;
    p.s.precision = PREC_FP32;
    p.s.attention = at;
    p.s.weights = wf;
    p.s.kv_dtype = WFMT_FP32;
    return p;
}

/* The executor's options for a plan, as executor/run.c (model_opts_from_plan) and
 * executor/generate.c (check_infer_plan and the KV sizing of exec_run_infer) build them. */
static void exec_opts_of(const struct xplan *p, struct exec_model_opts *o)
{
    exec_model_opts_init(o);
    o->attention = p->s.attention;
    if (p->w.task == TASK_TRAIN) {
        o->precision = p->s.precision;
        o->recompute = p->s.recompute;
        o->lora_rank = p->s.lora_rank;
        o->lora_targets = EXEC_LORA_ALL; /* the advisor adapts every linear layer */
        o->batch = p->s.micro_batch;
        o->seq = p->w.seq;
        o->training = true;
        return;
    }
    o->training = false;
    o->precision = p->s.weights == WFMT_BF16   ? PREC_BF16_MIXED
                   : p->s.weights == WFMT_FP16 ? PREC_FP16_MIXED
                                               : PREC_FP32;
    o->int8_weights = p->s.weights == WFMT_INT8;
    o->batch = 1;
    o->seq = 1;
    o->kv_batch = p->w.batch;
    o->kv_seq = p->w.prompt_len + p->w.gen_len - 1; /* gen_kv_tokens_needed */
}

/* Optimizer bytes of a built model for every optimizer kind, and the real allocation of one. */
struct optim_bytes {
    uint64_t bytes[OPT_LION + 1];
};

static void optimizer_bytes_of(struct exec_model *m, struct optim_bytes *ob, bool allocate)
{
    struct sw_err err;
    sw_err_init(&err);
    for (int k = 0; k <= OPT_LION; k++) {
        CHECK_OK(exec_optimizer_plan_bytes(m, (enum sw_optimizer)k, &ob->bytes[k], &err), &err);
        if (!allocate)
            continue;
        /* Allocate it for real: the backend's optimizer counter moves by exactly that. */
        const struct backend *be = m->be;
        struct backend_mem_stats s0, s1;
        be->mem_stats(&s0);
        struct exec_optim_config c;
        exec_optim_config_init(&c);
        c.kind = (enum sw_optimizer)k;
        struct exec_optimizer opt;
        int rc = exec_optimizer_init(&opt, m, &c, &err);
        CHECK_OK(rc, &err);
        if (rc == 0) {
            be->mem_stats(&s1);
            CHECK_INT(opt.state_bytes, ob->bytes[k]);
            CHECK_INT(s1.current_bytes[BACKEND_MEM_OPTIMIZER] -
                          s0.current_bytes[BACKEND_MEM_OPTIMIZER],
                      ob->bytes[k]);
        }
        exec_optimizer_release(&opt);
    }
}

static const char *const cat_names[] = {"weights",     "gradients", "optimizer",
                                        "activations", "kv_cache",  "workspace"};

static double advisor_cat(const struct estimate *e, int c)
{
    const double v[] = {e->dev.weights,     e->dev.gradients, e->dev.optimizer,
                        e->dev.activations, e->dev.kv_cache,  e->dev.workspace};
    return v[c];
}

static int n_plans, n_exact_cats, n_cats, n_cuda_plans;
static int n_act16_built; /* built models that kept bf16 activations */
static double worst_total_pct;

/* Compare one plan; `opt` holds the executor's optimizer bytes for this model (training). */
static void compare(const struct xplan *p, const struct exec_mem *mem,
                    const struct optim_bytes *opt)
{
    struct hardware hw;
    struct strategy st = p->s;
    if (g_cuda) {
        gpu_node(&hw);
        st.device = DEVICE_CUDA;
    } else {
        cpu_node(&hw);
    }
    struct estimate e;
    struct sw_err err;
    sw_err_init(&err);
    int rc = g_cuda ? advisor_estimate_builtin(&p->d, &hw, &p->w, &st, NULL, &e, &err)
                    : advisor_estimate(&p->d, &hw, &p->w, &st, NULL, &e, &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return;
    double ex[6];
    for (int c = 0; c < 6; c++)
        ex[c] = (double)mem->bytes[c];
    ex[BACKEND_MEM_OPTIMIZER] = p->w.task == TASK_TRAIN ? (double)opt->bytes[p->s.optimizer] : 0;
    if (g_cuda) /* the plugin's buffers, allocated at load (counted by the plugin, not the model) */
        ex[BACKEND_MEM_WORKSPACE] += CUDA_PLUGIN_WS_BYTES;
    /* advisor_estimate keeps the generic GPU formulas (the published figures); on a CPU both
     * functions model the executor. */
    struct estimate other;
    rc = g_cuda ? advisor_estimate(&p->d, &hw, &p->w, &st, NULL, &other, &err)
                : advisor_estimate_builtin(&p->d, &hw, &p->w, &st, NULL, &other, &err);
    CHECK_OK(rc, &err);
    if (g_cuda)
        CHECK_MSG(other.dev.workspace != e.dev.workspace, "cuda %s: generic = builtin", p->name);
    else
        CHECK_MSG(other.dev.total == e.dev.total, "%s: builtin differs on a cpu", p->name);
    double ex_total = 0, ad_total = e.dev.total - e.dev.overhead;
    for (int c = 0; c < 6; c++)
        ex_total += ex[c];
    printf("%-40s %-12s %14s %14s %8s\n", p->name, "category", "advisor", "executor", "diff %");
    for (int c = 0; c < 6; c++) {
        double a = advisor_cat(&e, c), x = ex[c];
        double pct = x > 0 ? 100.0 * (a - x) / x : (a > 0 ? 100.0 : 0.0);
        printf("%-40s %-12s %14.0f %14.0f %8.3f%s\n", "", cat_names[c], a, x, pct,
               a == x ? "  exact" : "");
        n_cats++;
        n_exact_cats += a == x;
        CHECK_MSG(fabs(a - x) <= 0.10 * x || fabs(a - x) <= MIB,
                  "%s %s: advisor %.0f, executor %.0f", p->name, cat_names[c], a, x);
        bool exact_tag = c == BACKEND_MEM_WEIGHTS || c == BACKEND_MEM_GRADIENTS ||
                         c == BACKEND_MEM_OPTIMIZER || c == BACKEND_MEM_KV_CACHE;
        if (exact_tag || g_cuda)
            CHECK_MSG(a == x, "%s%s %s [exact]: advisor %.0f, executor %.0f", g_cuda ? "cuda " : "",
                      p->name, cat_names[c], a, x);
    }
    double pct = 100.0 * (ad_total - ex_total) / ex_total;
    printf("%-40s %-12s %14.0f %14.0f %8.3f   (+ overhead %.0f MiB, advisor only)\n", "", "total",
           ad_total, ex_total, pct, e.dev.overhead / MIB);
    if (g_cuda) {
        /* The overhead stays out of the categories: the CUDA runtime as measured on an H200
         * (540 MiB), no fragmentation margin (every buffer is allocated once). */
        CHECK_MSG(fabs(e.dev.overhead - 540.0 * MIB) < 1.0, "cuda %s overhead %.0f", p->name,
                  e.dev.overhead);
        CHECK_MSG(ad_total == ex_total, "cuda %s total: advisor %.0f, executor %.0f", p->name,
                  ad_total, ex_total);
        n_cuda_plans++;
    }
    CHECK_MSG(fabs(pct) <= 5.0, "%s total: advisor %.0f, executor %.0f (%.2f%%)", p->name, ad_total,
              ex_total, pct);
    if (fabs(pct) > worst_total_pct)
        worst_total_pct = fabs(pct);
    n_plans++;
}

/* Plan the executor's bytes for p; for `build` plans also build the model, check the
 * backend's counters against the plan and take the optimizer bytes from the built model. */
static void run_plan(const struct xplan *p, const struct optim_bytes *opt_given)
{
    struct exec_model_opts o;
    exec_opts_of(p, &o);
    const struct backend *be = test_backend();
    struct exec_mem mem;
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_plan_bytes(&p->d, &o, be, &mem, &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return;
    struct optim_bytes ob;
    memset(&ob, 0, sizeof(ob));
    if (opt_given)
        ob = *opt_given;
    if (p->build) {
        struct backend_mem_stats s0, s1;
        be->mem_stats(&s0);
        struct exec_model m;
        rc = exec_model_init(&m, &p->d, &o, be, &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            return;
        be->mem_stats(&s1);
        CHECK_INT(m.held.total_bytes, mem.total_bytes);
        for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
            CHECK_INT(m.held.bytes[c], mem.bytes[c]);
            CHECK_INT(s1.current_bytes[c] - s0.current_bytes[c], mem.bytes[c]);
        }
        if (o.training)
            optimizer_bytes_of(&m, &ob, true);
        /* bf16 activations exactly where the advisor assumes them (advisor/memory.c): bf16
         * training and generation with bf16 weights, flash attention. */
        bool a16 = g_cuda && o.precision == PREC_BF16_MIXED && o.attention == ATTN_FLASH &&
                   (o.training || o.kv_batch > 0);
        CHECK(m.act_bf16 == a16);
        n_act16_built += m.act_bf16;
        exec_model_release(&m);
    }
    compare(p, &mem, &ob);
}

/* Tiny models, built for real: every precision, recompute, attention, optimizer, LoRA, batch
 * and the KV cache. */
static void test_tiny_built(void)
{
    struct model_desc g = tiny(MODEL_ARCH_GPT2), l = tiny(MODEL_ARCH_LLAMA);
    struct xplan plans[] = {
        train_plan("tiny-gpt2 fp32 adamw none flash b2", g, 16, 2, PREC_FP32, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_ADAMW, 0),
        train_plan("tiny-gpt2 bf16 adamw8bit sel naive b4", g, 32, 4, PREC_BF16_MIXED,
                   RECOMPUTE_SELECTIVE, ATTN_NAIVE, OPT_ADAMW8BIT, 0),
        train_plan("tiny-gpt2 fp32 sgd full naive b16", g, 64, 16, PREC_FP32, RECOMPUTE_FULL,
                   ATTN_NAIVE, OPT_SGD, 0),
        train_plan("tiny-gpt2 fp32 adafactor lora8 b1", g, 16, 1, PREC_FP32, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_ADAFACTOR, 8),
        train_plan("tiny-llama fp32 lion full flash b4", l, 32, 4, PREC_FP32, RECOMPUTE_FULL,
                   ATTN_FLASH, OPT_LION, 0),
        train_plan("tiny-llama bf16 adafactor none naive", l, 16, 2, PREC_BF16_MIXED,
                   RECOMPUTE_NONE, ATTN_NAIVE, OPT_ADAFACTOR, 0),
        train_plan("tiny-llama fp32 sgd-mom lora8 sel", l, 16, 2, PREC_FP32, RECOMPUTE_SELECTIVE,
                   ATTN_FLASH, OPT_SGD_MOMENTUM, 8),
        train_plan("tiny-llama bf16 adamw8bit lora4", l, 16, 2, PREC_BF16_MIXED, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_ADAMW8BIT, 4),
        train_plan("tiny-gpt2 bf16 adamw none flash b2", g, 16, 2, PREC_BF16_MIXED,
                   RECOMPUTE_NONE, ATTN_FLASH, OPT_ADAMW, 0),
        train_plan("tiny-llama bf16 sgd sel flash b3", l, 24, 3, PREC_BF16_MIXED,
                   RECOMPUTE_SELECTIVE, ATTN_FLASH, OPT_SGD, 0),
        train_plan("tiny-gpt2 bf16 lion full flash b4", g, 32, 4, PREC_BF16_MIXED,
                   RECOMPUTE_FULL, ATTN_FLASH, OPT_LION, 0),
        train_plan("tiny-gpt2 fp16 adamw sel naive b4", g, 32, 4, PREC_FP16_MIXED,
                   RECOMPUTE_SELECTIVE, ATTN_NAIVE, OPT_ADAMW, 0),
        train_plan("tiny-llama fp16 lion lora4 b2", l, 16, 2, PREC_FP16_MIXED, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_LION, 4),
        train_plan("tiny-gpt2 fp16 sgd full flash b100", g, 32, 100, PREC_FP16_MIXED,
                   RECOMPUTE_FULL, ATTN_FLASH, OPT_SGD, 0),
        infer_plan("tiny-gpt2 infer fp32 b3 kv 20+12", g, 3, 20, 12, WFMT_FP32, ATTN_FLASH),
        infer_plan("tiny-gpt2 infer int8 b1 kv 8+8", g, 1, 8, 8, WFMT_INT8, ATTN_NAIVE),
        infer_plan("tiny-llama infer bf16 b2 kv 16+16", l, 2, 16, 16, WFMT_BF16, ATTN_FLASH),
        infer_plan("tiny-gpt2 infer fp16 b5 kv 20+12", g, 5, 20, 12, WFMT_FP16, ATTN_NAIVE),
    };
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
        plans[i].build = true;
        run_plan(&plans[i], NULL);
    }
}

/* Optimizer bytes of a full-sized model: built once (weights and gradients are zeroed, about
 * 1 GB for GPT-2 124M), asked for each optimizer kind's bytes, released. */
static bool optim_of_model(const struct model_desc *d, int lora, struct optim_bytes *ob)
{
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = 1;
    o.seq = 1;
    o.lora_rank = lora;
    o.lora_targets = EXEC_LORA_ALL;
    struct exec_model m;
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_init(&m, d, &o, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return false;
    optimizer_bytes_of(&m, ob, false);
    exec_model_release(&m);
    return true;
}

/* GPT-2 124M-shaped plans (planned, not built): precision, recompute, attention, every
 * optimizer, LoRA rank 8, micro-batch 1 / 4 / 16, and generation with a KV cache. */
static void test_gpt2_124m(void)
{
    struct model_desc g = gpt2_124m();
    struct optim_bytes full, lora;
    if (!optim_of_model(&g, 0, &full) || !optim_of_model(&g, 8, &lora))
        return;
    struct xplan plans[] = {
        train_plan("gpt2 fp32 adamw none flash b1", g, 1024, 1, PREC_FP32, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_ADAMW, 0),
        train_plan("gpt2 bf16 adamw none flash b4", g, 1024, 4, PREC_BF16_MIXED, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_ADAMW, 0),
        train_plan("gpt2 fp32 sgd selective naive b4", g, 256, 4, PREC_FP32, RECOMPUTE_SELECTIVE,
                   ATTN_NAIVE, OPT_SGD, 0),
        train_plan("gpt2 fp32 sgd-mom full naive b16", g, 256, 16, PREC_FP32, RECOMPUTE_FULL,
                   ATTN_NAIVE, OPT_SGD_MOMENTUM, 0),
        train_plan("gpt2 bf16 lion full flash b16", g, 1024, 16, PREC_BF16_MIXED, RECOMPUTE_FULL,
                   ATTN_FLASH, OPT_LION, 0),
        train_plan("gpt2 fp32 adafactor sel flash b4", g, 512, 4, PREC_FP32, RECOMPUTE_SELECTIVE,
                   ATTN_FLASH, OPT_ADAFACTOR, 0),
        train_plan("gpt2 fp32 adamw8bit none naive b1", g, 1024, 1, PREC_FP32, RECOMPUTE_NONE,
                   ATTN_NAIVE, OPT_ADAMW8BIT, 0),
        train_plan("gpt2 fp32 adamw lora8 b4", g, 512, 4, PREC_FP32, RECOMPUTE_NONE, ATTN_FLASH,
                   OPT_ADAMW, 8),
        train_plan("gpt2 bf16 adafactor lora8 full b16", g, 256, 16, PREC_BF16_MIXED,
                   RECOMPUTE_FULL, ATTN_FLASH, OPT_ADAFACTOR, 8),
        train_plan("gpt2 fp16 adamw sel flash b8", g, 1024, 8, PREC_FP16_MIXED,
                   RECOMPUTE_SELECTIVE, ATTN_FLASH, OPT_ADAMW, 0),
        infer_plan("gpt2 infer fp32 b8 kv 128+64", g, 8, 128, 64, WFMT_FP32, ATTN_FLASH),
        infer_plan("gpt2 infer int8 b1 kv 512+256", g, 1, 512, 256, WFMT_INT8, ATTN_FLASH),
        infer_plan("gpt2 infer bf16 b4 kv 64+64 naive", g, 4, 64, 64, WFMT_BF16, ATTN_NAIVE),
        infer_plan("gpt2 infer fp16 b32 kv 128+128", g, 32, 128, 128, WFMT_FP16, ATTN_FLASH),
        infer_plan("gpt2 infer bf16 b32 kv 128+128", g, 32, 128, 128, WFMT_BF16, ATTN_FLASH),
    };
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
        run_plan(&plans[i], plans[i].s.lora_rank ? &lora : &full);
}

/* A Llama-shaped model: GQA, SwiGLU, RMSNorm, RoPE tables, untied head. */
static void test_llama_shaped(void)
{
    struct model_desc l = llama_small();
    struct optim_bytes full, lora;
    if (!optim_of_model(&l, 0, &full) || !optim_of_model(&l, 8, &lora))
        return;
    struct xplan plans[] = {
        train_plan("llama-small bf16 adamw sel flash b4", l, 512, 4, PREC_BF16_MIXED,
                   RECOMPUTE_SELECTIVE, ATTN_FLASH, OPT_ADAMW, 0),
        train_plan("llama-small fp32 adamw8bit none naive b2", l, 256, 2, PREC_FP32, RECOMPUTE_NONE,
                   ATTN_NAIVE, OPT_ADAMW8BIT, 0),
        train_plan("llama-small fp32 adafactor full b8", l, 1024, 8, PREC_FP32, RECOMPUTE_FULL,
                   ATTN_FLASH, OPT_ADAFACTOR, 0),
        train_plan("llama-small bf16 lion lora8 b4", l, 512, 4, PREC_BF16_MIXED, RECOMPUTE_NONE,
                   ATTN_FLASH, OPT_LION, 8),
        train_plan("llama-small fp16 adamw none naive b2", l, 256, 2, PREC_FP16_MIXED,
                   RECOMPUTE_NONE, ATTN_NAIVE, OPT_ADAMW, 0),
        infer_plan("llama-small infer fp32 b4 kv 256+128", l, 4, 256, 128, WFMT_FP32, ATTN_FLASH),
    };
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
        run_plan(&plans[i], plans[i].s.lora_rank ? &lora : &full);
}

/* The tiny plans again with the other bf16 matmul path (native <-> emulated). */
static void test_tiny_built_other_bf16_path(void)
{
    g_native_bf16 = !g_native_bf16;
    test_tiny_built();
    g_native_bf16 = !g_native_bf16;
}

/* Every plan again for strategy.device cuda: the CUDA plugin's scratch sizes and workspace. */
static void test_cuda_backend(void)
{
    g_cuda = true;
    test_tiny_built();
    test_gpt2_124m();
    test_llama_shaped();
    g_cuda = false;
    CHECK(n_cuda_plans >= 28);
    CHECK(n_act16_built == 5); /* the tiny bf16 flash plans, one with LoRA, one generation */
}

int main(void)
{
    g_native_bf16 = backend_cpu()->has_native_bf16();
    RUN(test_tiny_built);
    RUN(test_tiny_built_other_bf16_path);
    RUN(test_gpt2_124m);
    RUN(test_llama_shaped);
    RUN(test_cuda_backend);
    printf("%d plans compared, %d of %d categories byte-exact, worst total difference %.3f%%\n",
           n_plans, n_exact_cats, n_cats, worst_total_pct);
    CHECK(n_plans >= 8);
    return harness_finish("test_exec_vs_advisor");
}
