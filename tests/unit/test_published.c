/* Figures published by papers and tools, reproduced by the advisor's formulas. Each check names
 * its source and tolerance. Model shapes are written out here (the published configs), so the
 * test does not depend on profile files. Parameter counts use the unpadded vocabulary
 * (model_count(..., 1, ...)), which is what Hugging Face reports. */
#include "harness.h"

#include "advisor/advisor.h"
#include "advisor/advisor_int.h"

static void gpt2(struct model_desc *m, int L, int h, int a)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "gpt2");
    m->arch = MODEL_ARCH_GPT2;
    m->n_layers = L, m->hidden = h, m->n_heads = a, m->n_kv_heads = a, m->head_dim = h / a;
    m->ffn = 4 * h, m->vocab = 50257, m->max_pos = 1024;
    m->tied_head = m->bias = true;
}

static void llama(struct model_desc *m, int L, int h, int a, int g, int f, int V, bool tied)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "llama");
    m->arch = MODEL_ARCH_LLAMA;
    m->n_layers = L, m->hidden = h, m->n_heads = a, m->n_kv_heads = g, m->head_dim = h / a;
    m->ffn = f, m->vocab = V, m->max_pos = 4096, m->tied_head = tied;
    m->rms_norm = m->swiglu = true;
}

static int64_t count(const struct model_desc *m)
{
    struct model_counts c;
    model_count(m, 1, &c);
    return c.params_total;
}

static void one_gpu(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    hw->n_gpus = 1, hw->nodes = 1;
    hw->gpus[0].cc_major = 9, hw->gpus[0].known = HW_GPU_CC;
    hw->gpus[0].mem_total_bytes = 80000000000ull;
    hw->gpus[0].mem_bw_bytes_per_s = 3.35e12;
    hw->gpus[0].peak_flops[HW_DT_BF16] = 989.4e12;
    hw->mem.total_bytes = hw->mem.usable_bytes = 1ull << 40;
}

/* Parameter counts, exact (tolerance 0). Source: Hugging Face model cards / num_parameters() of
 * the published checkpoints. */
static void test_param_counts(void)
{
    struct model_desc m;
    gpt2(&m, 12, 768, 12); /* gpt2 (124M) */
    CHECK_INT(count(&m), 124439808LL);
    gpt2(&m, 24, 1024, 16); /* gpt2-medium */
    CHECK_INT(count(&m), 354823168LL);
    gpt2(&m, 36, 1280, 20); /* gpt2-large */
    CHECK_INT(count(&m), 774030080LL);
    gpt2(&m, 48, 1600, 25); /* gpt2-xl */
    CHECK_INT(count(&m), 1557611200LL);
    llama(&m, 32, 4096, 32, 32, 11008, 32000, false); /* meta-llama/Llama-2-7b-hf */
    CHECK_INT(count(&m), 6738415616LL);
    llama(&m, 40, 5120, 40, 40, 13824, 32000, false); /* meta-llama/Llama-2-13b-hf */
    CHECK_INT(count(&m), 13015864320LL);
    llama(&m, 80, 8192, 64, 8, 28672, 32000, false); /* meta-llama/Llama-2-70b-hf */
    CHECK_INT(count(&m), 68976648192LL);
    llama(&m, 32, 4096, 32, 8, 14336, 128256, false); /* meta-llama/Meta-Llama-3-8B */
    CHECK_INT(count(&m), 8030261248LL);
    llama(&m, 80, 8192, 64, 8, 28672, 128256, false); /* meta-llama/Meta-Llama-3-70B */
    CHECK_INT(count(&m), 70553706496LL);
    llama(&m, 32, 4096, 32, 8, 14336, 32000, false); /* mistralai/Mistral-7B-v0.1 */
    CHECK_INT(count(&m), 7241732096LL);
    /* Qwen/Qwen2.5-7B: untied, biases on q/k/v (the Qwen2 layout of `bias` on Llama style). */
    llama(&m, 28, 3584, 28, 4, 18944, 152064, false);
    m.bias = true;
    CHECK_INT(count(&m), 7615616512LL);
    llama(&m, 16, 2048, 32, 8, 8192, 128256, true); /* meta-llama/Llama-3.2-1B (tied) */
    CHECK_INT(count(&m), 1235814400LL);
    llama(&m, 22, 2048, 32, 4, 5632, 32000, false); /* TinyLlama/TinyLlama-1.1B */
    CHECK_INT(count(&m), 1100048384LL);
    /* Qwen/Qwen2.5-0.5B: tied embeddings, head dim 64, 2 KV heads. */
    llama(&m, 24, 896, 14, 2, 4864, 151936, true);
    m.bias = true;
    CHECK_INT(count(&m), 494032768LL);
}

/* Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
 * Table 2: bytes per layer s b h (34 + 5 a s / h) (no parallelism), s b h (10 + 24/t +
 * 5 a s/(h t)) (TP), s b h (34/t + 5 a s / (h t)) (TP + SP), s b h 34/t (TP + SP + selective).
 * GPT-3 175B shape (h = 12288, a = 96, s = 2048). Tolerance: relative 1e-12 (exact). */
static void test_korthikanti(void)
{
    double s = 2048, b = 1, h = 12288, a = 96, t = 8, sbh = s * b * h;
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
                          .t = 1};
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (34 + 5 * a * s / h), 1e-12);
    x.t = 8;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (10 + 24 / t + 5 * a * s / (h * t)), 1e-12);
    x.sp = true;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * (34 / t + 5 * a * s / (h * t)), 1e-12);
    x.selective = true;
    CHECK_REL(s * b * est_act_tok_bytes(&x), sbh * 34 / t, 1e-12);
}

/* Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
 * Megatron-LM", section 5.1: 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) model FLOPs per step and
 * 96 B s L h^2 (1 + s/(6h) + V/(16 L h)) with full recompute. GPT-3 175B shape (L = 96,
 * h = 12288, V = 51200, s = 2048). Tolerance: relative 1e-12. */
static void test_narayanan(void)
{
    struct model_desc m;
    gpt2(&m, 96, 12288, 96);
    m.vocab = 51200, m.max_pos = 2048;
    struct hardware hw;
    one_gpu(&hw);
    struct workload w;
    workload_init(&w);
    w.seq = 2048;
    struct strategy s;
    strategy_init(&s);
    struct estimate e;
    struct sw_err err;
    s.recompute = RECOMPUTE_FULL;
    CHECK_OK(advisor_estimate_speed(&m, &hw, &w, &s, NULL, &e, &err), &err);
    double B = 1, sq = 2048, L = 96, h = 12288, V = 51200;
    CHECK_REL(e.flops_per_step, 72 * B * sq * L * h * h * (1 + sq / (6 * h) + V / (12 * L * h)),
              1e-12);
    CHECK_REL(e.hw_flops_per_step, 96 * B * sq * L * h * h * (1 + sq / (6 * h) + V / (16 * L * h)),
              1e-12);
    /* Kaplan et al. 2020, "Scaling Laws for Neural Language Models", C ~= 6N per token: the full
     * count is within 5% above 6 P for this model (attention adds s/(6h) = 2.8%). */
    double six_n = 6.0 * (double)count(&m);
    CHECK(e.flops_per_token > six_n && e.flops_per_token < 1.05 * six_n);
}

/* Chowdhery et al. 2022, "PaLM", Appendix B: MFU = (6N + 12 L H Q T) x tokens/s / peak; PaLM
 * 540B (L = 118, d = 18432, 48 heads of 256, multi-query, SwiGLU f = 4d, V = 256k, tied) at
 * 238.3K tokens/s on 6144 TPU v4 (275 TFLOP/s bf16) gives 46.2 %. The advisor's F_tok (same
 * convention) with those figures: tolerance 0.1 percentage point. */
static void test_palm_mfu(void)
{
    struct model_desc m;
    llama(&m, 118, 18432, 48, 1, 73728, 256000, true);
    m.head_dim = 256;
    struct hardware hw;
    one_gpu(&hw);
    struct workload w;
    workload_init(&w);
    w.seq = 2048;
    struct strategy s;
    strategy_init(&s);
    struct estimate e;
    struct sw_err err;
    CHECK_OK(advisor_estimate_speed(&m, &hw, &w, &s, NULL, &e, &err), &err);
    struct model_counts c;
    model_count(&m, 1, &c);
    CHECK_NEAR((double)c.params_total / 1e9, 540.35, 0.01); /* PaLM Table 1: 540.35B */
    double mfu = e.flops_per_token * 238.3e3 / (6144 * 275e12);
    CHECK_NEAR(100 * mfu, 46.2, 0.1);
}

/* Rajbhandari et al. 2020, "ZeRO", Figure 1: 7.5B parameters, Nd = 64, Adam: 120 GB baseline
 * (2 + 2 + 12 B/param), 31.4 GB P_os, 16.6 GB P_os+g, 1.9 GB P_os+g+p. The paper keeps fp16
 * gradients (2 B); the advisor's default row keeps fp32 gradients (4 B), so the gradient term
 * is scaled by 2/4 here; weights, optimizer and all sharding factors are the advisor's.
 * Tolerance: 0.1 GB (the paper rounds to 0.1). */
static void test_zero_paper(void)
{
    struct model_desc m;
    llama(&m, 24, 2048, 16, 16, 5504, 50048, false);
    struct hardware hw;
    one_gpu(&hw);
    hw.n_gpus = 8, hw.nodes = 8;
    for (int i = 1; i < 8; i++)
        hw.gpus[i] = hw.gpus[0];
    struct workload w;
    workload_init(&w);
    struct strategy s;
    strategy_init(&s);
    struct estimate e;
    struct sw_err err;
    static const double want_gb[] = {120.0, 31.4, 16.6, 1.9};
    for (int z = 0; z <= 3; z++) {
        s.dp = 64, s.zero = z;
        CHECK_OK(advisor_estimate_memory(&m, &hw, &w, &s, NULL, &e, &err), &err);
        double per_param =
            (e.dev.weights + e.dev.gradients / 2 + e.dev.optimizer) / (double)count(&m);
        CHECK_NEAR(per_param * 7.5, want_gb[z], 0.1);
    }
}

/* Megatron-LM docs (distributed optimizer): bytes per parameter 6 + 12/N (bf16 params, fp32
 * grads), 8 + 8/N (fp32), with N = 8. Tolerance: relative 1e-12. */
static void test_megatron_dist_opt(void)
{
    struct model_desc m;
    llama(&m, 24, 2048, 16, 16, 5504, 50048, false);
    struct hardware hw;
    one_gpu(&hw);
    hw.n_gpus = 8;
    for (int i = 1; i < 8; i++)
        hw.gpus[i] = hw.gpus[0];
    struct workload w;
    workload_init(&w);
    struct strategy s;
    strategy_init(&s);
    s.dp = 8, s.zero = 1;
    struct estimate e;
    struct sw_err err;
    CHECK_OK(advisor_estimate_memory(&m, &hw, &w, &s, NULL, &e, &err), &err);
    double P = (double)count(&m);
    CHECK_REL((e.dev.weights + e.dev.gradients + e.dev.optimizer) / P, 6 + 12.0 / 8, 1e-12);
    s.precision = PREC_FP32;
    CHECK_OK(advisor_estimate_memory(&m, &hw, &w, &s, NULL, &e, &err), &err);
    CHECK_REL((e.dev.weights + e.dev.gradients + e.dev.optimizer) / P, 8 + 8.0 / 8, 1e-12);
}

/* KV cache per token. Kwon et al. 2023 ("PagedAttention", vLLM), section 3: OPT-13B needs
 * 800 KB per token = 2 x 5120 x 40 x 2 B. Llama-2-70B (GQA, 8 KV heads of 128): 2 x 80 x 8 x
 * 128 x 2 B = 320 KiB per token in bf16. Tolerance: exact. */
static void test_kv_per_token(void)
{
    struct model_desc m;
    gpt2(&m, 40, 5120, 40); /* OPT-13B's attention shape */
    m.max_pos = 2048;
    struct hardware hw;
    one_gpu(&hw);
    struct workload w;
    workload_init(&w);
    w.task = TASK_INFER, w.batch = 1, w.prompt_len = 1, w.gen_len = 0;
    struct strategy s;
    strategy_init(&s);
    struct estimate e;
    struct sw_err err;
    CHECK_OK(advisor_estimate_memory(&m, &hw, &w, &s, NULL, &e, &err), &err);
    CHECK_NEAR(e.dev.kv_cache, 819200, 0);
    llama(&m, 80, 8192, 64, 8, 28672, 32000, false);
    CHECK_OK(advisor_estimate_memory(&m, &hw, &w, &s, NULL, &e, &err), &err);
    CHECK_NEAR(e.dev.kv_cache, 320 * 1024, 0);
}

int main(void)
{
    RUN(test_param_counts);
    RUN(test_korthikanti);
    RUN(test_narayanan);
    RUN(test_palm_mfu);
    RUN(test_zero_paper);
    RUN(test_megatron_dist_opt);
    RUN(test_kv_per_token);
    return harness_finish("test_published");
}
