/* Tests of the memory model (counts.c, memory.c) and of advisor_check (check.c): every formula
 * of strategy reference sections 2-4 against a hand-worked case (the reference's worked
 * examples where it has one), ordering properties (QLoRA < LoRA < full, recompute and ZeRO
 * monotone, flash <= naive), and each hard error of advisor_check. Models and hardware are
 * built in the test, so nothing depends on profile files. */
#include "harness.h"

#include "advisor/advisor.h"
#include "advisor/advisor_int.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static void llama(struct model_desc *m, int L, int h, int a, int g, int f, int V)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "test-llama");
    m->arch = MODEL_ARCH_LLAMA;
    m->n_layers = L, m->hidden = h, m->n_heads = a, m->n_kv_heads = g, m->head_dim = h / a;
    m->ffn = f, m->vocab = V, m->max_pos = 4096;
    m->rms_norm = m->swiglu = true;
}

static void gpt2(struct model_desc *m, int L, int h, int a, int V)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "test-gpt2");
    m->arch = MODEL_ARCH_GPT2;
    m->n_layers = L, m->hidden = h, m->n_heads = a, m->n_kv_heads = a, m->head_dim = h / a;
    m->ffn = 4 * h, m->vocab = V, m->max_pos = 2048;
    m->tied_head = m->bias = true;
}

/* A node of `n` GPUs of 80 GB, CC `cc10`, with NVSwitch, and 2 TiB of host memory. */
static void gpu_node(struct hardware *hw, int n, int nodes, int cc10)
{
    memset(hw, 0, sizeof(*hw));
    snprintf(hw->name, sizeof(hw->name), "test-node");
    hw->source = HW_SRC_PROFILE;
    hw->n_gpus = n, hw->nodes = nodes;
    for (int i = 0; i < n; i++) {
        struct hw_gpu *g = &hw->gpus[i];
        snprintf(g->name, sizeof(g->name), "Test GPU");
        g->known = HW_GPU_CC | HW_GPU_MEM_TOTAL | HW_GPU_MEM_BW | HW_GPU_PEAK;
        g->cc_major = cc10 / 10, g->cc_minor = cc10 % 10;
        g->mem_total_bytes = 80000000000ull;
        g->mem_bw_bytes_per_s = 2e12;
        g->peak_flops[HW_DT_BF16] = cc10 >= 80 ? 1e15 : 0;
        g->peak_flops[HW_DT_FP16] = 1e15;
        g->peak_flops[HW_DT_FP32] = 6e13;
        for (int j = 0; j < n; j++)
            hw->link[i][j] = i == j ? HW_LINK_SELF : HW_LINK_NVSWITCH;
    }
    hw->intra_bytes_per_s = 200e9, hw->inter_bytes_per_s = 400e9, hw->pcie_bytes_per_s = 25e9;
    hw->host_mem_bytes_per_s = 100e9;
    hw->mem.total_bytes = hw->mem.usable_bytes = 2048ull << 30;
}

static void cpu_node(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    snprintf(hw->name, sizeof(hw->name), "test-cpu");
    hw->nodes = 1;
    hw->cpu.sockets = 1, hw->cpu.cores_per_socket = 2, hw->cpu.usable_cpus = 2;
    hw->cpu.peak_fp32_flops = hw->cpu.peak_bf16_flops = 157e9;
    hw->host_mem_bytes_per_s = 20e9;
    hw->mem.total_bytes = hw->mem.usable_bytes = 24ull << 30;
}

static int est(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
               const struct strategy *s, struct estimate *e)
{
    struct sw_err err;
    sw_err_init(&err);
    int rc = advisor_estimate(m, hw, w, s, NULL, e, &err);
    CHECK_OK(rc, &err);
    return rc;
}

static double state_bytes(const struct estimate *e)
{
    return e->dev.weights + e->dev.gradients + e->dev.optimizer;
}

static bool has_reason(const struct estimate *e, const char *needle)
{
    for (int i = 0; i < e->n_reasons; i++)
        if (strstr(e->reasons[i], needle))
            return true;
    return false;
}

/* 2.2 worked example: P_layer = 44,306,432, P = 1,268,156,416 (unpadded); padding and P_max. */
static void test_counts_worked_example(void)
{
    struct model_desc m;
    struct model_counts c;
    llama(&m, 24, 2048, 16, 4, 5504, 50000);
    model_count(&m, 1, &c);
    CHECK_INT(c.params_layer, 44306432);
    CHECK_INT(c.params_total, 1268156416LL);
    CHECK_INT(c.params_split_layer, 44306432 - 2 * 2048);
    model_count(&m, 128, &c);
    CHECK_INT(c.vocab_padded, 50048);
    CHECK_INT(c.params_total, 24LL * 44306432 + 2LL * 50048 * 2048 + 2048);
    CHECK_INT(c.params_max_unit, 50048LL * 2048);
    CHECK_INT(c.params_matmul,
              24LL * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3LL * 2048 * 5504) + 50048LL * 2048);
    model_count(&m, 128 * 3, &c); /* vocabulary split over t = 3 */
    CHECK_INT(c.vocab_padded, 50304);
    /* GPT-2 style (2.1): P_layer = 12h^2 + 13h with f = 4h. */
    gpt2(&m, 12, 768, 12, 50257);
    model_count(&m, 1, &c);
    CHECK_INT(c.params_layer, 12LL * 768 * 768 + 13 * 768);
    CHECK_INT(c.params_head, 0);
    CHECK_INT(c.params_embed, 50257LL * 768 + 2048LL * 768);
}

/* 3.2.1: one TP rank's layer; K/V replicated when t > g (ceil(g/t) heads). */
static void test_layer_params_rank(void)
{
    struct model_desc m;
    struct layer_params lp;
    llama(&m, 24, 2048, 16, 4, 5504, 50000);
    model_layer_params_rank(&m, 4, &lp);
    CHECK_NEAR(lp.matrix, (2048.0 * 2048 * 2 + 3.0 * 2048 * 5504) / 4 + 2.0 * 2048 * 128, 0);
    CHECK_NEAR(lp.vector, 2 * 2048, 0);
    CHECK_INT(model_kv_heads_rank(&m, 8), 1);
    model_layer_params_rank(&m, 8, &lp);
    CHECK_NEAR(lp.matrix, (2048.0 * 2048 * 2 + 3.0 * 2048 * 5504) / 8 + 2.0 * 2048 * 128, 0);
    /* GPT-2 biases: column-parallel split, row-parallel (O, down) replicated. */
    gpt2(&m, 12, 768, 12, 50257);
    model_layer_params_rank(&m, 2, &lp);
    CHECK_NEAR(lp.vector, (3 * 768 + 4 * 768) / 2.0 + 2 * 768 + 4 * 768, 1e-9);
    CHECK_NEAR(lp.matrix + lp.vector, (12.0 * 768 * 768 + 7 * 768) / 2 + 6 * 768, 1e-9);
}

/* 3.1/3.2 worked example: P = 2e9, bf16-mixed AdamW 18 B/param: 33.5 GiB replicated, ZeRO-1
 * N = 4 (6 + 12/4) = 16.8 GiB, ZeRO-3 N = 8 18/8 = 4.2 GiB (+ W_g). Checked as bytes per
 * parameter of a model whose V is a multiple of 128 (no padding), scaled to 2e9. */
static void test_zero_worked_examples(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 24, 2048, 16, 4, 5504, 50048);
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    w.seq = 512;
    strategy_init(&s);
    est(&m, &hw, &w, &s, &e);
    double P = (double)e.params_total;
    CHECK_REL(state_bytes(&e) / P, 18.0, 1e-12);
    CHECK_NEAR(state_bytes(&e) / P * 2e9 / GIB, 33.5, 0.05);
    s.dp = 4, s.zero = 1;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(state_bytes(&e) / P, 6.0 + 12.0 / 4, 1e-12); /* Megatron 6 + 12/N */
    CHECK_NEAR(state_bytes(&e) / P * 2e9 / GIB, 16.8, 0.05);
    s.dp = 8, s.zero = 3;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(state_bytes(&e) / P, 18.0 / 8, 1e-12);
    CHECK_NEAR(state_bytes(&e) / P * 2e9 / GIB, 4.2, 0.05);
    s.zero = 2;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(state_bytes(&e) / P, 2.0 + 16.0 / 8, 1e-12);
    /* fp32 row: Megatron 8 + 8/N. */
    s.zero = 1, s.precision = PREC_FP32, s.attention = ATTN_NAIVE;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(state_bytes(&e) / P, 8.0 + 8.0 / 8, 1e-12);
    /* Pure bf16 row: 2 + 2 + 8 = 12; optimizer table with the default row (3.1 totals). */
    strategy_init(&s);
    s.precision = PREC_BF16;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(state_bytes(&e) / P, 12.0, 1e-12);
    static const struct {
        enum sw_optimizer o;
        double total;
    } rows[] = {{OPT_ADAMW8BIT, 12.0 + 8.0 / 2048},
                {OPT_SGD, 10.0},
                {OPT_SGD_MOMENTUM, 14.0},
                {OPT_LION, 14.0}};
    strategy_init(&s);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        s.optimizer = rows[i].o;
        est(&m, &hw, &w, &s, &e);
        CHECK_REL(state_bytes(&e) / P, rows[i].total, 1e-12);
    }
    s.optimizer = OPT_ADAFACTOR; /* factored: about 10 with the mixed row */
    est(&m, &hw, &w, &s, &e);
    CHECK(state_bytes(&e) / P > 10.0 && state_bytes(&e) / P < 10.01);
}

/* 3.2: ZeRO-3 working set W_g = (B_w (1 + k_pf) + e_g) P_unit = 6 P_max for bf16. */
static void test_zero3_working_set(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e0, e3;
    llama(&m, 24, 2048, 16, 4, 5504, 50048);
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    strategy_init(&s);
    s.dp = 8;
    est(&m, &hw, &w, &s, &e0);
    s.zero = 3;
    est(&m, &hw, &w, &s, &e3);
    CHECK_NEAR(e3.dev.workspace - e0.dev.workspace, 6.0 * 50048 * 2048, 1e-3);
    CHECK(has_reason(&e3, "W_g"));
}

/* 3.5 worked example (dropout on, 16-bit): 1.11 GiB per layer, 33.4 GiB for 30 layers, 9.96
 * GiB flash, 0.92 GiB full recompute with flash. */
static void test_activation_worked_example(void)
{
    struct act_shape x = {.h = 2560,
                          .q = 2560,
                          .h_kv = 2560,
                          .f = 4 * 2560,
                          .a = 20,
                          .s = 2048,
                          .e = 2,
                          .e_n = 2,
                          .dropout = 1,
                          .k_f = 2,
                          .t = 1};
    double bs = 2048.0 * 2;
    double layer = bs * est_act_tok_bytes(&x);
    CHECK_NEAR(layer, 2048.0 * 2 * 2560 * 114, 0);
    CHECK_NEAR(layer / GIB, 1.11, 0.005);
    CHECK_NEAR(30 * layer / GIB, 33.4, 0.05);
    x.flash = true;
    double flash = bs * est_act_tok_bytes(&x);
    CHECK_NEAR(30 * flash / GIB, 9.96, 0.02); /* the 4a fp32 row statistics add 0.01 GiB */
    double full = 30 * 2.0 * bs * 2560 + flash;
    CHECK_NEAR(full / GIB, 0.92, 0.005);
}

/* 3.5 per-layer table (Korthikanti et al. 2022), t = 4, dropout on. */
static void test_activation_tp_rows(void)
{
    double s = 2048, b = 1, h = 4096, a = 32, t = 4;
    struct act_shape x = {.h = h,
                          .q = h,
                          .h_kv = h,
                          .f = 4 * h,
                          .a = a,
                          .s = s,
                          .e = 2,
                          .e_n = 2,
                          .dropout = 1,
                          .k_f = 2,
                          .t = 4};
    double sbh = s * b * h;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (10 + 24 / t + 5 * a * s / (h * t)), 1e-12);
    x.sp = true;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (34 / t + 5 * a * s / (h * t)), 1e-12);
    x.selective = true;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * 34 / t, 1e-12);
    x.sp = false;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (10 + 24 / t), 1e-12);
}

/* 3.5/3.6 through the public estimate (dropout off: A_tok = 32h + 2as for this shape), with
 * embedding output, final-norm input and fp32 logits (c_V = 4). */
static void test_activation_estimate(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    gpt2(&m, 30, 2560, 20, 50304);
    gpu_node(&hw, 1, 1, 90);
    workload_init(&w);
    w.seq = 2048;
    strategy_init(&s);
    s.micro_batch = 2;
    s.attention = ATTN_NAIVE;
    double bs = 2.0 * 2048, h = 2560, a = 20, sq = 2048;
    double logits = bs * 50304 * 4.0;
    double extras = 2 * 2.0 * bs * h + logits;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.logits_bytes, logits, 0);
    CHECK_REL(e.dev.activations, 30 * bs * (32 * h + 2 * a * sq) + extras, 1e-12);
    CHECK_REL(e.dev.workspace, bs * (32 * h + 2 * a * sq), 1e-12); /* one A_layer */
    double naive = e.dev.activations;
    s.attention = ATTN_FLASH;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, 30 * bs * (32 * h + 4 * a) + extras, 1e-12);
    CHECK(e.dev.activations <= naive);
    double flash = e.dev.activations;
    s.recompute = RECOMPUTE_SELECTIVE;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, 30 * bs * 32 * h + extras, 1e-12);
    double sel = e.dev.activations;
    s.recompute = RECOMPUTE_FULL;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, 30 * 2.0 * bs * h + bs * (32 * h + 4 * a) + 2.0 * bs * h + logits,
              1e-12);
    CHECK(e.dev.activations < sel && sel < flash);
    /* Tensor + sequence parallel divide everything by t (logits by vocabulary split). */
    gpu_node(&hw, 4, 1, 90);
    s.recompute = RECOMPUTE_NONE, s.tp = 4, s.sequence_parallel = true;
    est(&m, &hw, &w, &s, &e);
    double logits4 = bs * 50688 * 4.0 / 4; /* V padded to 128 t = 512, split by t */
    CHECK_REL(e.dev.activations, (30 * bs * (32 * h + 4 * a) + 2 * 2.0 * bs * h) / 4 + logits4,
              1e-12);
}

/* 3.5 pipeline: first stage holds min(p, m) micro-batches of its L/p layers; interleaving
 * multiplies by 1 + (p-1)/(p v). */
static void test_pipeline_activations(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    w.seq = 2048;
    strategy_init(&s);
    est(&m, &hw, &w, &s, &e);
    double bs = 2048;
    double a_tok =
        2 * 2.0 * 4096 + 2.0 * (4096 + 4096 + 2048 + 4096) + 2.0 * (4096 + 3 * 14336) + 4 * 32;
    double emb = 2.0 * bs * 4096;
    s.pp = 4, s.grad_accum = 8;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, 8 * 4 * bs * a_tok + 4 * emb, 1e-12);
    CHECK(e.logits_bytes == 0); /* first stage reported: no head */
    CHECK(has_reason(&e, "first stage"));
    s.pp_interleave = 2;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, (8 * 4 * bs * a_tok + 4 * emb) * (1 + 3.0 / 8), 1e-12);
    s.pp_interleave = 1, s.grad_accum = 2; /* fewer micro-batches than stages */
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.activations, 8 * 2 * bs * a_tok + 2 * emb, 1e-12);
    /* One micro-batch (m = 1): the last stage, with the head and the logits, is heavier. */
    s.grad_accum = 1;
    est(&m, &hw, &w, &s, &e);
    CHECK(has_reason(&e, "last stage"));
    CHECK_NEAR(e.logits_bytes, bs * 32000 * 4.0, 0);
    CHECK_REL(e.dev.activations, 8 * bs * a_tok + 2.0 * bs * 4096 + e.logits_bytes, 1e-12);
    s.grad_accum = 2;
    est(&m, &hw, &w, &s, &e);
    /* Heaviest stage for model state: first = 8 layers + embedding. */
    struct layer_params lp;
    model_layer_params_rank(&m, 1, &lp);
    CHECK_REL(e.dev.weights, 2.0 * (8 * (lp.matrix + lp.vector) + 32000.0 * 4096), 1e-12);
}

/* 3.2.1 tensor parallel weights and 3.3 offload. */
static void test_tp_and_offload(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    strategy_init(&s);
    s.tp = 2;
    est(&m, &hw, &w, &s, &e);
    struct layer_params lp;
    model_layer_params_rank(&m, 2, &lp);
    double P_rank = 32 * (lp.matrix + lp.vector) + 2 * 32000.0 * 4096 / 2 + 4096;
    CHECK_REL(e.dev.weights, 2.0 * P_rank, 1e-12);
    CHECK_REL(e.dev.gradients, 4.0 * P_rank, 1e-12);
    /* Optimizer offload on one GPU (ZeRO-Offload): 16-bit grads, no optimizer on the GPU;
     * host (4 + 8 + 4) P k_pin. */
    strategy_init(&s);
    struct model_counts c;
    model_count(&m, 128, &c);
    double P = (double)c.params_total;
    s.offload_optimizer = true;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.optimizer, 0, 0);
    CHECK_REL(e.dev.gradients, 2.0 * P, 1e-12);
    CHECK_REL(e.host_offload_bytes, 16.0 * P * 1.5, 1e-12);
    CHECK(e.host_total_bytes > e.host_offload_bytes);
    /* ZeRO-3 + parameter offload on one rank: weights on the host too. */
    s.zero = 3, s.offload_params = true;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.weights, 0, 0);
    CHECK_REL(e.host_offload_bytes, 18.0 * P * 1.5, 1e-12);
}

/* 3.4 LoRA/QLoRA and the ordering QLoRA < LoRA < full. */
static void test_lora(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate full, lora, qlora;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 1, 1, 90);
    workload_init(&w);
    strategy_init(&s);
    est(&m, &hw, &w, &s, &full);
    s.lora_rank = 16;
    est(&m, &hw, &w, &s, &lora);
    double h = 4096, q = 4096, hkv = 1024, f = 14336;
    double P_A = 32 * 16 * (7 * h + 2 * q + 2 * hkv + 3 * f);
    CHECK_INT(lora.params_trainable, (int64_t)P_A);
    struct model_counts c;
    model_count(&m, 128, &c);
    CHECK_REL(lora.dev.weights, 2.0 * c.params_total + 4.0 * P_A, 1e-12);
    CHECK_REL(lora.dev.gradients, 4.0 * P_A, 1e-12);
    CHECK_REL(lora.dev.optimizer, 8.0 * P_A, 1e-12);
    s.weights = WFMT_INT4;
    est(&m, &hw, &w, &s, &qlora);
    struct layer_params lp;
    model_layer_params_rank(&m, 1, &lp);
    double mat = 32 * lp.matrix;
    CHECK_REL(qlora.dev.weights, 0.53125 * mat + 2.0 * (c.params_total - mat) + 4.0 * P_A, 1e-12);
    CHECK_REL(qlora.dev.workspace - lora.dev.workspace, 2.0 * lp.matrix, 1e-9);
    CHECK(qlora.dev.total < lora.dev.total && lora.dev.total < full.dev.total);
    /* Adapter bottleneck outputs add e b s r per adapted matrix per layer. */
    CHECK_REL(lora.dev.activations - full.dev.activations, 32 * 7 * 2.0 * 1024 * 16, 1e-9);
}

/* Ordering: ZeRO stages monotone; recompute lowers activations; flash <= naive. */
static void test_ordering(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    strategy_init(&s);
    s.dp = 8;
    double prev = 1e300, prev_total = 1e300;
    for (int z = 0; z <= 3; z++) {
        s.zero = z;
        est(&m, &hw, &w, &s, &e);
        CHECK_MSG(state_bytes(&e) < prev, "zero %d state %.4g >= %.4g", z, state_bytes(&e), prev);
        CHECK(e.dev.total < prev_total);
        prev = state_bytes(&e), prev_total = e.dev.total;
    }
    strategy_init(&s);
    double prev_act = 1e300;
    for (int r = RECOMPUTE_NONE; r <= RECOMPUTE_FULL; r++) {
        s.recompute = (enum sw_recompute)r;
        est(&m, &hw, &w, &s, &e);
        CHECK(e.dev.activations < prev_act);
        prev_act = e.dev.activations;
    }
    for (int sq = 256; sq <= 4096; sq *= 4) {
        struct estimate fl, nv;
        w.seq = sq;
        s.recompute = RECOMPUTE_NONE, s.attention = ATTN_FLASH;
        est(&m, &hw, &w, &s, &fl);
        s.attention = ATTN_NAIVE;
        est(&m, &hw, &w, &s, &nv);
        CHECK(fl.dev.activations <= nv.dev.activations);
    }
}

/* 4.2 worked example: L = 40, g = 8, d = 128, T = 8192, b = 4, bf16: 5.0 GiB; TP and int8. */
static void test_kv_cache(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 40, 5120, 40, 8, 13824, 32000);
    m.max_pos = 16384;
    gpu_node(&hw, 8, 1, 90);
    workload_init(&w);
    w.task = TASK_INFER, w.batch = 4, w.prompt_len = 4096, w.gen_len = 4096;
    strategy_init(&s);
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.kv_cache, 5368709120.0, 0);
    CHECK_NEAR(e.dev.kv_cache / GIB, 5.0, 1e-12);
    s.tp = 2;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.kv_cache, 5368709120.0 / 2, 0);
    s.tp = 8;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.kv_cache, 5368709120.0 / 8, 0);
    m.n_kv_heads = 4; /* t > g: ceil(4/8) = 1 head per rank, replicated */
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.kv_cache, 5368709120.0 / 8, 0);
    CHECK(has_reason(&e, "replicated"));
    m.n_kv_heads = 8, s.tp = 1, s.kv_dtype = WFMT_INT8;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.kv_cache, 5368709120.0 / 2 * (1 + 2.0 / 128), 1e-12);
    s.kv_dtype = WFMT_BF16, m.sliding_window = 4096; /* windowed layers keep min(T, W) */
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.kv_cache, 5368709120.0 / 2, 0);
}

/* 4.1 weights by format, embedding/head/norms kept 16-bit; 4.3 activations and logits. */
static void test_inference_weights(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 1, 1, 90);
    workload_init(&w);
    w.task = TASK_INFER, w.batch = 2, w.prompt_len = 512, w.gen_len = 64;
    strategy_init(&s);
    struct model_counts c;
    struct layer_params lp;
    model_count(&m, 128, &c);
    model_layer_params_rank(&m, 1, &lp);
    double P = (double)c.params_total, mat = 32 * lp.matrix;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.weights, 2.0 * P, 0);
    CHECK_NEAR(e.logits_bytes, 2 * 32000 * 4.0, 0);
    CHECK_REL(e.dev.activations, 2 * 512 * 2.0 * (2 * 4096 + 3 * 14336) + e.logits_bytes, 1e-12);
    s.weights = WFMT_INT8;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.weights, 1.015625 * mat + 2.0 * (P - mat), 1e-12);
    s.weights = WFMT_INT4;
    est(&m, &hw, &w, &s, &e);
    CHECK_REL(e.dev.weights, 0.53125 * mat + 2.0 * (P - mat), 1e-12);
    s.weights = WFMT_FP32, s.precision = PREC_FP32, s.attention = ATTN_NAIVE;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.weights, 4.0 * P, 0);
    CHECK_NEAR(e.dev.gradients + e.dev.optimizer, 0, 0);
}

/* CPU device: device memory is host memory, shared by the node's processes (3.8, 5). */
static void test_cpu_device(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    gpt2(&m, 12, 768, 12, 50257);
    cpu_node(&hw);
    workload_init(&w);
    w.seq = 1024;
    strategy_init(&s);
    s.device = DEVICE_CPU, s.precision = PREC_FP32, s.dp = 2;
    est(&m, &hw, &w, &s, &e);
    CHECK_NEAR(e.dev.overhead, 64.0 * 1024 * 1024, 0);
    CHECK_NEAR(e.capacity_bytes, 0.9 * 24 * GIB / 2, 1);
    CHECK_NEAR(e.host_total_bytes, 2 * e.dev.total, 1);
    CHECK(e.fits && e.host_fits);
    /* GPT-2 124M with 2048 positions and V padded to 50304: fp32 AdamW 16 B/param. */
    CHECK_REL(state_bytes(&e), 16.0 * (124439808.0 + (2048 - 1024 + 50304 - 50257) * 768.0), 1e-12);
    s.micro_batch = 64; /* 64 x 1024 tokens of fp32 activations: far beyond 24 GiB */
    est(&m, &hw, &w, &s, &e);
    CHECK(!e.fits);
    CHECK(has_reason(&e, "does not fit"));
}

/* 3.8 fit test on a GPU: total includes the runtime and the 5% margin. */
static void test_fit(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate e;
    llama(&m, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&hw, 1, 1, 90);
    workload_init(&w);
    strategy_init(&s);
    est(&m, &hw, &w, &s, &e); /* 8B params x 18 B: about 130 GB */
    CHECK(!e.fits);
    CHECK(has_reason(&e, "does not fit"));
    CHECK_NEAR(e.dev.overhead, GIB + 0.05 * 80e9, 1);
    double sum = e.dev.weights + e.dev.gradients + e.dev.optimizer + e.dev.activations +
                 e.dev.kv_cache + e.dev.workspace + e.dev.overhead;
    CHECK_NEAR(e.dev.total, sum, 1e-3);
    CHECK(has_reason(&e, "dominate"));
    llama(&m, 4, 1024, 8, 8, 2816, 32000);
    est(&m, &hw, &w, &s, &e);
    CHECK(e.fits);
}

/* Every hard error of advisor_check, with a word of its message. */
static void test_check_errors(void)
{
    struct model_desc m0;
    struct hardware gpu, big, v100, t4, cpu;
    struct workload w0;
    struct strategy s0;
    llama(&m0, 32, 4096, 32, 8, 14336, 32000);
    gpu_node(&gpu, 8, 2, 90);
    gpu_node(&big, 8, 8, 90);
    gpu_node(&v100, 8, 1, 70);
    gpu_node(&t4, 1, 1, 75);
    cpu_node(&cpu);
    workload_init(&w0);
    strategy_init(&s0);
    struct sw_err err;
    CHECK_INT(advisor_check(&m0, &gpu, &w0, &s0, &err), 0);

    struct {
        const char *want;
        struct model_desc m;
        const struct hardware *hw;
        struct workload w;
        struct strategy s;
    } cases[40];
    int n = 0;
#define CASE(hw_, want_, ...)                                                                      \
    do {                                                                                           \
        cases[n].want = want_, cases[n].m = m0, cases[n].hw = hw_, cases[n].w = w0;                \
        cases[n].s = s0;                                                                           \
        struct model_desc *m = &cases[n].m;                                                        \
        struct workload *w = &cases[n].w;                                                          \
        struct strategy *s = &cases[n].s;                                                          \
        (void)m, (void)w, (void)s;                                                                 \
        __VA_ARGS__;                                                                               \
        n++;                                                                                       \
    } while (0)
    CASE(&gpu, "micro_batch must be >= 1", s->micro_batch = 0);
    CASE(&gpu, "zero must be", s->zero = 4);
    CASE(&gpu, "plan uses 32 GPUs", s->dp = 32);
    CASE(&gpu, "never crosses nodes", s->tp = 16, m->n_heads = 32);
    CASE(&gpu, "divide the 32 attention heads", s->tp = 3);
    CASE(&gpu, "KV heads", m->n_heads = 48, m->head_dim = 128, s->tp = 3, m->ffn = 14337 * 3);
    CASE(&gpu, "MLP size", s->tp = 8, m->ffn = 11004);
    CASE(&gpu, "sequence_parallel needs", s->sequence_parallel = true);
    CASE(&big, "pp 40 exceeds the 32 layers", s->pp = 40);
    CASE(&gpu, "divisible by pp x pp_interleave", s->pp = 4, s->pp_interleave = 3,
         s->grad_accum = 8);
    CASE(&gpu, "multiple of pp", s->pp = 4, s->pp_interleave = 2, s->grad_accum = 6);
    CASE(&gpu, "needs dp >= 2", s->zero = 1);
    CASE(&gpu, "offload_params needs zero 3", s->dp = 2, s->zero = 2, s->offload_params = true);
    CASE(&gpu, "needs zero >= 1", s->dp = 2, s->offload_optimizer = true);
    CASE(&gpu, "adafactor has none", s->offload_optimizer = true, s->optimizer = OPT_ADAFACTOR);
    CASE(&gpu, "training only", w->task = TASK_INFER, s->offload_optimizer = true);
    CASE(&v100, "bf16 needs compute capability", s->attention = ATTN_NAIVE);
    CASE(&v100, "tf32 needs", s->precision = PREC_TF32, s->attention = ATTN_NAIVE);
    CASE(&t4, "flash attention needs", s->precision = PREC_FP16_MIXED);
    CASE(&t4, "bf16 needs", w->task = TASK_INFER, s->attention = ATTN_NAIVE,
         s->weights = WFMT_FP16);
    CASE(&gpu, "head dim <= 256", m->hidden = 8192, m->n_heads = 16, m->head_dim = 512);
    CASE(&cpu, "has no GPU", (void)0);
    CASE(&cpu, "tf32 matmuls need", s->device = DEVICE_CPU, s->precision = PREC_TF32);
    CASE(&cpu, "tensor parallelism needs GPUs", s->device = DEVICE_CPU, s->tp = 2);
    CASE(&cpu, "cpu processes", s->device = DEVICE_CPU, s->dp = 3);
    CASE(&cpu, "already keeps everything", s->device = DEVICE_CPU, s->offload_optimizer = true);
    CASE(&gpu, "frozen LoRA base", s->weights = WFMT_INT4);
    CASE(&gpu, "fine-tuning) only", w->task = TASK_INFER, s->lora_rank = 8);
    CASE(&gpu, "learned positions", gpt2(m, 12, 768, 12, 50257), w->seq = 4096);
    CASE(&gpu, "global batch 64 != micro_batch", w->global_batch = 64, s->dp = 4);
    CASE(&gpu, "inference needs batch", w->task = TASK_INFER, w->batch = 0);
#undef CASE
    for (int i = 0; i < n; i++) {
        sw_err_init(&err);
        int rc = advisor_check(&cases[i].m, cases[i].hw, &cases[i].w, &cases[i].s, &err);
        CHECK_MSG(rc == SW_EINVAL && strstr(err.msg, cases[i].want),
                  "case %d: rc %d, message '%s', expected '%s'", i, rc, err.msg, cases[i].want);
    }

    /* Allowed: ZeRO-3 with parameter offload on one rank; tp a multiple of the KV heads; Llama
     * beyond max_pos (a reason, not an error); QLoRA; offload with zero on several ranks. */
    struct strategy s = s0;
    struct workload w = w0;
    struct estimate e;
    s.zero = 3, s.offload_params = true;
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
    s = s0, s.tp = 16, m0.n_kv_heads = 8;
    gpu_node(&gpu, 16, 1, 90);
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
    s = s0, w.seq = 8192;
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
    est(&m0, &gpu, &w, &s, &e);
    CHECK(has_reason(&e, "RoPE"));
    s = s0, w = w0, s.lora_rank = 16, s.weights = WFMT_INT4;
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
    s = s0, s.dp = 4, s.zero = 2, s.offload_optimizer = true;
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
    w.global_batch = 4;
    CHECK_INT(advisor_check(&m0, &gpu, &w, &s, &err), 0);
}

/* hw_device.c: the device figures the models plan with. */
static void test_hw_device(void)
{
    struct hardware hw;
    gpu_node(&hw, 2, 1, 90);
    hw.gpus[1].mem_total_bytes = 40000000000ull; /* mixed node: plan for the smaller GPU */
    hw.gpus[1].peak_flops[HW_DT_BF16] = 3e14;
    hw.gpus[1].mem_bw_bytes_per_s = 1.5e12;
    hw.gpus[0].mem_free_bytes = 70000000000ull, hw.gpus[1].mem_free_bytes = 30000000000ull;
    hw.gpus[0].known |= HW_GPU_MEM_FREE, hw.gpus[1].known |= HW_GPU_MEM_FREE;
    CHECK(!hw_is_cpu_only(&hw));
    CHECK_INT(hw_device_capacity_bytes(&hw), 40000000000LL); /* profile: total */
    hw.source = HW_SRC_PROBE;
    CHECK_INT(hw_device_capacity_bytes(&hw), 30000000000LL); /* probe: free now */
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_BF16), 3e14, 0);
    CHECK_NEAR(hw_device_mem_bw(&hw), 1.5e12, 0);
    hw.gpus[1].peak_flops[HW_DT_FP8] = 0; /* unsupported or unknown on one GPU: 0 */
    hw.gpus[0].peak_flops[HW_DT_FP8] = 2e15;
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_FP8), 0, 0);

    cpu_node(&hw);
    CHECK(hw_is_cpu_only(&hw));
    CHECK_INT(hw_device_capacity_bytes(&hw), 24LL << 30);
    hw.mem.usable_bytes = 0; /* profile without a usable figure: the total */
    CHECK_INT(hw_device_capacity_bytes(&hw), 24LL << 30);
    hw.mem.usable_bytes = 20ull << 30;
    CHECK_INT(hw_device_capacity_bytes(&hw), 20LL << 30);
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_FP32), 157e9, 0);
    CHECK_NEAR(hw_device_mem_bw(&hw), 20e9, 0);
    hw.cpu.peak_bf16_flops = 2 * 157e9; /* native bf16: twice the fp32 rate */
    hw.cpu.known |= HW_CPU_MEASURED | HW_CPU_TRIAD;
    hw.cpu.measured_fp32_flops = 100e9, hw.cpu.triad_bytes_per_s = 30e9;
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_FP32), 100e9, 0);
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_BF16), 200e9, 1e-3);
    CHECK_NEAR(hw_device_peak_flops(&hw, HW_DT_INT8), 0, 0);
    CHECK_NEAR(hw_device_mem_bw(&hw), 30e9, 0);
    /* A cpu device on a GPU node plans with the CPU's figures. */
    struct strategy s;
    strategy_init(&s);
    gpu_node(&hw, 2, 1, 90);
    hw.cpu.peak_fp32_flops = 1e12;
    s.device = DEVICE_CPU;
    CHECK(advisor_dev_is_cpu(&hw, &s));
    CHECK_NEAR(advisor_dev_peak_flops(&hw, &s, HW_DT_FP32), 1e12, 0);
    CHECK_NEAR(advisor_dev_capacity_bytes(&hw, &s), 2048.0 * GIB, 0);
}

/* advisor_estimate_builtin: a GPU plan the built-in executor runs gets its CUDA backend's
 * layout (fp32 master + bf16 copy as weights, bf16 activations, the plugin's 33,816,576 bytes
 * of workspace; test_exec_vs_advisor checks it byte for byte); a plan it cannot run (tp 2,
 * pure bf16) and a CPU plan are estimated as advisor_estimate does. */
static void test_builtin_cuda(void)
{
    struct model_desc m;
    struct hardware hw;
    struct workload w;
    struct strategy s;
    struct estimate gen, bi;
    struct sw_err err;
    sw_err_init(&err);
    gpt2(&m, 12, 768, 12, 50257);
    gpu_node(&hw, 2, 1, 90);
    workload_init(&w);
    w.seq = 1024;
    strategy_init(&s);
    s.device = DEVICE_CUDA;
    s.micro_batch = 4;
    est(&m, &hw, &w, &s, &gen);
    CHECK_OK(advisor_estimate_builtin(&m, &hw, &w, &s, NULL, &bi, &err), &err);
    struct model_counts c;
    model_count(&m, 128, &c);
    double P = (double)c.params_total;
    /* Generic bf16-mixed: 2 B weights, fp32 master in the optimizer; executor: 4 + 2 B weights,
     * AdamW 8 B. Same model state in total (3.1), different categories. */
    CHECK_REL(gen.dev.weights, 2.0 * P, 1e-12);
    CHECK(bi.dev.weights >= 6.0 * P && bi.dev.weights < 6.0 * P + 128);
    CHECK_REL(bi.dev.optimizer, 8.0 * P, 1e-12);
    /* bf16 activations and logits (docs/cuda.md): fewer bytes than the same plan in fp32, but
     * more than half of them (the residual stream and the statistics stay fp32). */
    struct estimate bi32;
    s.precision = PREC_FP32;
    CHECK_OK(advisor_estimate_builtin(&m, &hw, &w, &s, NULL, &bi32, &err), &err);
    s.precision = PREC_BF16_MIXED;
    CHECK(bi.dev.activations < bi32.dev.activations &&
          bi.dev.activations > 0.5 * bi32.dev.activations);
    CHECK(has_reason(&bi, "activations and logits kept in bf16"));
    CHECK(!has_reason(&bi32, "kept in bf16"));
    CHECK(bi.dev.workspace > 33816576.0);
    /* The generic overhead: 1 GiB of CUDA context + 5% of the GPU for fragmentation; the
     * executor's: its measured runtime, nothing to fragment (every buffer allocated once). */
    CHECK_REL(gen.dev.overhead, 1024.0 * 1024 * 1024 + 0.05 * gen.capacity_bytes, 1e-12);
    CHECK_REL(bi.dev.overhead, EST_CUDA_EXEC_RUNTIME_BYTES, 1e-12);
    CHECK(has_reason(&bi, "no fragmentation margin"));
    CHECK(has_reason(&bi, "CUDA plugin: workspace includes its 32.25 MiB"));
    CHECK(has_reason(&bi, "built-in CUDA executor"));
    /* Plans the executor does not run keep the generic formulas. */
    s.tp = 2;
    est(&m, &hw, &w, &s, &gen);
    CHECK_OK(advisor_estimate_builtin(&m, &hw, &w, &s, NULL, &bi, &err), &err);
    CHECK(gen.dev.total == bi.dev.total && gen.dev.weights == bi.dev.weights);
    s.tp = 1;
    s.precision = PREC_BF16;
    est(&m, &hw, &w, &s, &gen);
    CHECK_OK(advisor_estimate_builtin(&m, &hw, &w, &s, NULL, &bi, &err), &err);
    CHECK(gen.dev.total == bi.dev.total);
    /* A CPU plan: the executor's layout either way. */
    cpu_node(&hw);
    strategy_init(&s);
    s.device = DEVICE_CPU;
    s.precision = PREC_FP32;
    w.seq = 256;
    est(&m, &hw, &w, &s, &gen);
    CHECK_OK(advisor_estimate_builtin(&m, &hw, &w, &s, NULL, &bi, &err), &err);
    CHECK(gen.dev.total == bi.dev.total && gen.dev.workspace == bi.dev.workspace);
}

int main(void)
{
    RUN(test_hw_device);
    RUN(test_counts_worked_example);
    RUN(test_layer_params_rank);
    RUN(test_zero_worked_examples);
    RUN(test_zero3_working_set);
    RUN(test_activation_worked_example);
    RUN(test_activation_tp_rows);
    RUN(test_activation_estimate);
    RUN(test_pipeline_activations);
    RUN(test_tp_and_offload);
    RUN(test_lora);
    RUN(test_ordering);
    RUN(test_kv_cache);
    RUN(test_inference_weights);
    RUN(test_cpu_device);
    RUN(test_fit);
    RUN(test_check_errors);
    RUN(test_builtin_cuda);
    return harness_finish("test_memory");
}
