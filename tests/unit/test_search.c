/* Tests of the strategy search (advisor/search.c) as properties: every plan returned fits its
 * own estimate with the requested headroom; plans are sorted by score; a model that fits one
 * GPU gets neither offload nor ZeRO-3; 70B training on one 80 GB GPU does not fit and the
 * reasons say how many GPUs would do; 70B inference on 8 H100s picks tensor parallelism; a
 * CPU-only machine gets CPU plans; bad options are errors. The 1024-GPU search is timed (the
 * figure is printed, not asserted). Hardware is built in memory so the test does not depend on
 * the profile files; models come from the bundled profiles. */
#include "harness.h"

#include <string.h>

#include "advisor/advisor.h"

static const double GIB = 1024.0 * 1024.0 * 1024.0;

/* One node of H100 SXM (strategy reference 9.1), NVSwitch inside, 400 Gb/s NIC per GPU. */
static void mk_h100(struct hardware *hw, int nodes, int gpn, double host_gib)
{
    hw_init(hw);
    hw->source = HW_SRC_PROFILE;
    snprintf(hw->name, sizeof(hw->name), "test-h100");
    hw->nodes = nodes;
    hw->n_gpus = gpn;
    for (int i = 0; i < gpn; i++) {
        struct hw_gpu *g = &hw->gpus[i];
        snprintf(g->name, sizeof(g->name), "NVIDIA H100 80GB HBM3");
        g->known = HW_GPU_NAME | HW_GPU_MEM_TOTAL | HW_GPU_CC | HW_GPU_SMS | HW_GPU_MEM_BW |
                   HW_GPU_PEAK | HW_GPU_NVLINK | HW_GPU_PCIE;
        g->cc_major = 9;
        g->cc_minor = 0;
        g->sm_count = 132;
        g->mem_total_bytes = 80ull * 1000 * 1000 * 1000;
        g->mem_free_bytes = g->mem_total_bytes;
        g->mem_bw_bytes_per_s = 3.35e12;
        g->pcie_gen = 5;
        g->pcie_width = 16;
        g->nvlinks = 18;
        g->nvlink_bytes_per_s = 450e9;
        g->peak_flops[HW_DT_FP32] = 67e12;
        g->peak_flops[HW_DT_TF32] = 494.7e12;
        g->peak_flops[HW_DT_BF16] = 989.4e12;
        g->peak_flops[HW_DT_FP16] = 989.4e12;
        g->peak_flops[HW_DT_FP8] = 1979e12;
        g->peak_flops[HW_DT_INT8] = 1979e12;
    }
    for (int i = 0; i < gpn; i++)
        for (int j = 0; j < gpn; j++)
            hw->link[i][j] = i == j ? HW_LINK_SELF : HW_LINK_NVSWITCH;
    hw->intra_bytes_per_s = 450e9;
    hw->inter_bytes_per_s = nodes > 1 ? 50e9 * gpn : 0;
    hw->pcie_bytes_per_s = 63e9;
    hw->host_mem_bytes_per_s = 300e9;
    hw->cpu.known = HW_CPU_TOPOLOGY;
    hw->cpu.sockets = 2;
    hw->cpu.cores_per_socket = 56;
    hw->cpu.threads_per_core = 2;
    hw->cpu.logical_cpus = hw->cpu.usable_cpus = 224;
    hw->mem.known = HW_MEM_TOTAL | HW_MEM_AVAILABLE;
    hw->mem.total_bytes = (uint64_t)(host_gib * GIB);
    hw->mem.available_bytes = hw->mem.total_bytes;
    hw->mem.usable_bytes = hw->mem.total_bytes;
}

/* A small AVX2 VM: 2 cores, 24 GiB. */
static void mk_cpu(struct hardware *hw)
{
    hw_init(hw);
    hw->source = HW_SRC_PROFILE;
    snprintf(hw->name, sizeof(hw->name), "test-cpu");
    hw->nodes = 1;
    hw->n_gpus = 0;
    struct hw_cpu *c = &hw->cpu;
    c->known = HW_CPU_TOPOLOGY | HW_CPU_ISA | HW_CPU_PEAK;
    c->sockets = 1;
    c->cores_per_socket = 2;
    c->threads_per_core = 1;
    c->logical_cpus = c->usable_cpus = 2;
    c->isa = HW_ISA_SSE42 | HW_ISA_AVX | HW_ISA_AVX2 | HW_ISA_FMA | HW_ISA_F16C;
    c->clock_hz = 2.5e9;
    c->fp32_flop_per_cycle = 32;
    c->peak_fp32_flops_per_core = 80e9;
    c->peak_fp32_flops = 160e9;
    c->peak_bf16_flops = 160e9;
    hw->mem.known = HW_MEM_TOTAL | HW_MEM_AVAILABLE;
    hw->mem.total_bytes = 24ull << 30;
    hw->mem.available_bytes = 22ull << 30;
    hw->mem.usable_bytes = 22ull << 30;
    hw->host_mem_bytes_per_s = 20e9;
}

static bool load_model(const char *name, struct model_desc *m)
{
    struct sw_err err;
    sw_err_init(&err);
    int rc = profile_load_model(name, m, &err);
    CHECK_OK(rc, &err);
    return rc == 0;
}

/* The properties every successful search must keep. */
static void check_plans(const struct model_desc *m, const struct hardware *hw,
                        const struct search_opts *o, const struct search_result *r)
{
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    for (int i = 0; i < r->n_plans; i++) {
        const struct search_plan *p = &r->plans[i];
        const struct estimate *e = &p->estimate;
        if (r->any_fits) {
            CHECK_MSG(e->fits, "plan %d does not fit", i + 1);
            CHECK_MSG(e->dev.total <= (1.0 - o->headroom) * e->capacity_bytes,
                      "plan %d: %.2f GiB > %.0f%% of %.2f GiB", i + 1, e->dev.total / GIB,
                      (1.0 - o->headroom) * 100, e->capacity_bytes / GIB);
            /* Its own estimate, recomputed from scratch, agrees. */
            struct estimate again;
            struct sw_err err;
            sw_err_init(&err);
            CHECK_OK(advisor_estimate(m, hw, &p->workload, &p->strategy, &cal, &again, &err), &err);
            CHECK_REL(again.dev.total, e->dev.total, 1e-9);
            CHECK(again.fits);
            CHECK(e->n_reasons > 0);
        }
        if (i > 0)
            CHECK_MSG(r->plans[i - 1].score >= p->score, "plan %d score %g > plan %d score %g",
                      i + 1, p->score, i, r->plans[i - 1].score);
        const struct strategy *st = &p->strategy;
        CHECK(st->dp * st->tp * st->pp <= hw->nodes * (hw->n_gpus ? hw->n_gpus : 1));
    }
}

static void test_fits_and_sorted(void)
{
    struct model_desc m;
    if (!load_model("llama-3-8b", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 1, 8, 2048);
    struct workload w;
    workload_init(&w);
    w.seq = 4096;
    struct search_opts o;
    search_opts_init(&o);
    o.top_k = 8;
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    double headrooms[] = {0.10, 0.35};
    for (int h = 0; h < 2; h++) {
        o.headroom = headrooms[h];
        CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
        CHECK(r.any_fits);
        CHECK(r.n_plans > 1 && r.n_plans <= o.top_k);
        CHECK(r.candidates_evaluated > r.n_plans);
        CHECK(r.n_reasons > 0);
        check_plans(&m, hw, &o, &r);
        search_result_release(&r);
    }
    free(hw);
}

static void test_small_model_no_savers(void)
{
    struct model_desc m;
    if (!load_model("gpt2-124m", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 1, 1, 1024);
    struct workload w;
    workload_init(&w);
    struct search_opts o;
    search_opts_init(&o);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
    CHECK(r.any_fits);
    check_plans(&m, hw, &o, &r);
    for (int i = 0; i < r.n_plans; i++) {
        const struct strategy *st = &r.plans[i].strategy;
        CHECK_MSG(!st->offload_optimizer && !st->offload_params, "plan %d offloads", i + 1);
        CHECK_MSG(st->zero < 3, "plan %d uses ZeRO-3 on one GPU", i + 1);
        CHECK(st->optimizer == OPT_ADAMW);
        CHECK(st->precision == PREC_BF16_MIXED);
        CHECK(st->lora_rank == 0);
    }
    /* The best plan grows the micro-batch rather than stopping at 1. */
    if (r.n_plans > 0)
        CHECK(r.plans[0].strategy.micro_batch > 1);
    search_result_release(&r);
    free(hw);
}

static bool any_reason_has(const struct search_result *r, const char *needle)
{
    for (int i = 0; i < r->n_reasons; i++)
        if (strstr(r->reasons[i], needle))
            return true;
    return false;
}

static void test_70b_one_gpu_does_not_fit(void)
{
    struct model_desc m;
    if (!load_model("llama-3-70b", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 1, 1, 256); /* host RAM too small for offloading 70B */
    struct workload w;
    workload_init(&w);
    struct search_opts o;
    search_opts_init(&o);
    o.top_k = 3;
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
    CHECK(!r.any_fits);
    CHECK(r.n_plans >= 1);
    for (int i = 0; i < r.n_plans; i++)
        CHECK(!r.plans[i].estimate.fits ||
              r.plans[i].estimate.dev.total > 0.9 * r.plans[i].estimate.capacity_bytes ||
              !r.plans[i].estimate.host_fits);
    CHECK_MSG(any_reason_has(&r, "GPUs"), "no reason mentions GPUs");
    CHECK(any_reason_has(&r, "LoRA"));
    search_result_release(&r);
    free(hw);
}

static void test_70b_inference_uses_tp(void)
{
    struct model_desc m;
    if (!load_model("llama-3-70b", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 1, 8, 2048);
    struct workload w;
    workload_init(&w);
    w.task = TASK_INFER;
    w.batch = 4;
    w.prompt_len = 1024;
    w.gen_len = 256;
    struct search_opts o;
    search_opts_init(&o);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
    CHECK(r.any_fits);
    check_plans(&m, hw, &o, &r);
    if (r.n_plans > 0) {
        CHECK_MSG(r.plans[0].strategy.tp > 1, "best plan tp=%d", r.plans[0].strategy.tp);
        CHECK(r.plans[0].strategy.weights == WFMT_BF16); /* fits without quantising */
        CHECK(r.plans[0].estimate.decode_s_per_token > 0);
    }
    search_result_release(&r);

    /* A 7B model fits one GPU: replicas, not sharding (11.7). */
    if (load_model("llama-3-8b", &m)) {
        CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
        CHECK(r.any_fits);
        if (r.n_plans > 0) {
            CHECK_INT(r.plans[0].strategy.tp, 1);
            CHECK_INT(r.plans[0].strategy.dp, 8);
        }
        search_result_release(&r);
    }
    free(hw);
}

static void test_cpu_only(void)
{
    struct model_desc m;
    if (!load_model("tiny-gpt2", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_cpu(hw);
    struct workload w;
    workload_init(&w);
    w.seq = 64; /* tiny-gpt2 has 64 positions */
    struct search_opts o;
    search_opts_init(&o);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
    CHECK(r.any_fits);
    check_plans(&m, hw, &o, &r);
    for (int i = 0; i < r.n_plans; i++) {
        CHECK(r.plans[i].strategy.device == DEVICE_CPU);
        CHECK(r.plans[i].strategy.precision == PREC_FP32); /* no native bf16 on AVX2 */
    }
    search_result_release(&r);
    free(hw);
}

static void test_bad_options(void)
{
    struct model_desc m;
    if (!load_model("tiny-gpt2", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 1, 1, 64);
    struct workload w;
    workload_init(&w);
    struct search_opts o;
    search_opts_init(&o);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    o.top_k = 0;
    CHECK_INT(advisor_search(&m, hw, &w, &o, &cal, &r, &err), SW_EINVAL);
    search_opts_init(&o);
    o.headroom = 1.5;
    CHECK_INT(advisor_search(&m, hw, &w, &o, &cal, &r, &err), SW_EINVAL);
    search_result_release(&r);
    free(hw);
}

static void test_1024_gpus_timed(void)
{
    struct model_desc m;
    if (!load_model("llama-3.1-405b", &m))
        return;
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    mk_h100(hw, 128, 8, 2048);
    struct workload w;
    workload_init(&w);
    w.seq = 4096;
    struct search_opts o;
    search_opts_init(&o);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct search_result r;
    struct sw_err err;
    sw_err_init(&err);
    double t0 = sw_now_s();
    CHECK_OK(advisor_search(&m, hw, &w, &o, &cal, &r, &err), &err);
    double dt = sw_now_s() - t0;
    CHECK(r.any_fits);
    check_plans(&m, hw, &o, &r);
    if (r.n_plans > 0)
        CHECK(r.plans[0].strategy.tp * r.plans[0].strategy.pp > 1); /* 405B needs model parallel */
    printf("search for 1024 GPUs (llama-3.1-405b): %.1f ms, %lld candidates evaluated\n", dt * 1e3,
           (long long)r.candidates_evaluated);
    search_result_release(&r);
    free(hw);
}

int main(void)
{
    RUN(test_fits_and_sorted);
    RUN(test_small_model_no_savers);
    RUN(test_70b_one_gpu_does_not_fit);
    RUN(test_70b_inference_uses_tp);
    RUN(test_cpu_only);
    RUN(test_bad_options);
    RUN(test_1024_gpus_timed);
    return harness_finish("test_search");
}
