/* The whole estimate of a plan: the hard checks (check.c), memory (memory.c) and speed
 * (speed.c) in one call, the soft conflicts as reasons, and the estimate as a tree with the
 * contract's keys (params_total, per_device_bytes{...}, host_bytes{total, offload}, fits,
 * flops_per_step, step_time_s, tokens_per_s, mfu, ttft_s, decode_s_per_token, reasons) plus the
 * step-time split, peaks and the [cal] constants with their source. Keys of the other task
 * (ttft_s in training, step_time_s in inference, ...) are present and null.
 * advisor_estimate_builtin is the same with the built-in executor's CUDA memory layout for the
 * GPU plans it runs (memory.c). */
#include "advisor/advisor.h"

#include <math.h>

#include "advisor/advisor_int.h"

static int estimate_all(const struct model_desc *m, const struct hardware *hw,
                        const struct workload *w, const struct strategy *s,
                        const struct advisor_calib *cal_in, bool builtin_gpu,
                        struct estimate *out, struct sw_err *err)
{
    struct advisor_calib cal_def;
    const struct advisor_calib *cal = cal_in;
    int rc;
    if (!cal) {
        advisor_calib_default(&cal_def);
        cal = &cal_def;
    }
    estimate_init(out);
    if ((rc = advisor_check(m, hw, w, s, err)) < 0)
        return rc;
    if ((rc = est_memory(m, hw, w, s, cal, builtin_gpu, out, err)) < 0 ||
        (rc = advisor_estimate_speed(m, hw, w, s, cal, out, err)) < 0)
        return rc;
    advisor_check_soft(m, hw, w, s, out);
    out->valid = true;
    return 0;
}

int advisor_estimate(const struct model_desc *m, const struct hardware *hw,
                     const struct workload *w, const struct strategy *s,
                     const struct advisor_calib *cal, struct estimate *out, struct sw_err *err)
{
    return estimate_all(m, hw, w, s, cal, false, out, err);
}

int advisor_estimate_builtin(const struct model_desc *m, const struct hardware *hw,
                             const struct workload *w, const struct strategy *s,
                             const struct advisor_calib *cal, struct estimate *out,
                             struct sw_err *err)
{
    return estimate_all(m, hw, w, s, cal, true, out, err);
}

/* A number, or null where it does not apply to this task. */
static void emit_opt(struct sw_emit *e, const char *key, double v, bool applies)
{
    if (applies)
        sw_emit_num(e, key, v);
    else
        sw_emit_null(e, key);
}

static void emit_cal(struct sw_emit *e, const char *key, double v, bool calibrated)
{
    sw_emit_map_begin(e, key);
    sw_emit_num(e, "value", v);
    sw_emit_str(e, "source", calibrated ? "calibrated" : "default");
    sw_emit_map_end(e);
}

void estimate_emit(struct sw_emit *e, const char *key, const struct estimate *est)
{
    /* Inference estimates carry a time to first token; training ones leave it 0. */
    bool infer = est->ttft_s != 0.0;
    bool train = !infer;
    const struct mem_split *d = &est->dev;
    const struct advisor_calib *c = &est->calib;

    sw_emit_map_begin(e, key);
    sw_emit_i64(e, "params_total", est->params_total);
    sw_emit_i64(e, "params_trainable", est->params_trainable);
    sw_emit_map_begin(e, "per_device_bytes");
    sw_emit_num(e, "weights", d->weights);
    sw_emit_num(e, "gradients", d->gradients);
    sw_emit_num(e, "optimizer", d->optimizer);
    sw_emit_num(e, "activations", d->activations);
    sw_emit_num(e, "kv_cache", d->kv_cache);
    sw_emit_num(e, "workspace", d->workspace);
    sw_emit_num(e, "overhead", d->overhead);
    sw_emit_num(e, "total", d->total);
    sw_emit_map_end(e);
    sw_emit_num(e, "logits_bytes", est->logits_bytes);
    sw_emit_num(e, "capacity_bytes", est->capacity_bytes);
    sw_emit_map_begin(e, "host_bytes");
    sw_emit_num(e, "total", est->host_total_bytes);
    sw_emit_num(e, "offload", est->host_offload_bytes);
    sw_emit_map_end(e);
    sw_emit_num(e, "host_capacity_bytes", est->host_capacity_bytes);
    sw_emit_bool(e, "fits", est->fits);
    sw_emit_bool(e, "host_fits", est->host_fits);
    sw_emit_i64(e, "gpus", est->gpus);

    sw_emit_num(e, "flops_per_token", est->flops_per_token);
    emit_opt(e, "flops_per_step", est->flops_per_step, train);
    emit_opt(e, "hw_flops_per_step", est->hw_flops_per_step, train);
    emit_opt(e, "step_time_s", est->step_time_s, train);
    emit_opt(e, "compute_s", est->compute_s, train);
    emit_opt(e, "comm_exposed_s", est->comm_exposed_s, train);
    emit_opt(e, "bubble_s", est->bubble_s, train);
    emit_opt(e, "optimizer_s", est->optimizer_s, train);
    emit_opt(e, "offload_s", est->offload_s, train);
    sw_emit_num(e, "tokens_per_s", est->tokens_per_s);
    emit_opt(e, "mfu", est->mfu, train);
    emit_opt(e, "hfu", est->hfu, train);
    sw_emit_num(e, "peak_flops", est->peak_flops_used);
    sw_emit_str(e, "peak_dtype", hw_dtype_name(est->peak_dtype));
    sw_emit_str(e, "flop_convention", "full attention (12*L*q*s per token)");
    emit_opt(e, "time_to_train_s", est->time_to_train_s, train && est->time_to_train_s > 0);
    emit_opt(e, "gpu_hours", est->gpu_hours, train && est->gpu_hours > 0);
    emit_opt(e, "ttft_s", est->ttft_s, infer);
    emit_opt(e, "decode_s_per_token", est->decode_s_per_token, infer);
    emit_opt(e, "tokens_per_s_infer", est->infer_tokens_per_s, infer);
    sw_emit_str(e, "link_class", est->link_class);

    sw_emit_map_begin(e, "calibration");
    bool k = c->calibrated;
    emit_cal(e, "eta_flops_train", c->eta_flops_train, k);
    emit_cal(e, "eta_flops_prefill", c->eta_flops_prefill, k);
    emit_cal(e, "eta_mem", c->eta_mem, k);
    emit_cal(e, "eta_mem_decode", c->eta_mem_decode, k);
    emit_cal(e, "eta_comm_intra", c->eta_comm_intra, k);
    emit_cal(e, "eta_comm_inter", c->eta_comm_inter, k);
    emit_cal(e, "comm_latency_s", c->comm_latency_s, k);
    emit_cal(e, "runtime_overhead_bytes", c->runtime_overhead_bytes, k);
    emit_cal(e, "frag_margin", c->frag_margin, k);
    emit_cal(e, "pin_factor", c->pin_factor, k);
    emit_cal(e, "host_reserve_frac", c->host_reserve_frac, k);
    emit_cal(e, "launch_overhead_s", c->launch_overhead_s, k);
    emit_cal(e, "call_matmul_s", c->call_matmul_s, k);
    emit_cal(e, "call_kernel_s", c->call_kernel_s, k);
    emit_cal(e, "attn_flops_per_s", c->attn_flops_per_s, k);
    if (c->achieved_flops > 0)
        emit_cal(e, "achieved_flops", c->achieved_flops, true);
    /* Model constants that no calibration replaces yet (memory.c, speed.c). */
    emit_cal(e, "logit_bytes_c_v", EST_LOGIT_BYTES, false);
    emit_cal(e, "dropout", EST_DROPOUT, false);
    emit_cal(e, "zero3_prefetch_units", EST_PREFETCH_UNITS, false);
    emit_cal(e, "gemm_m_sat_tokens_gpu", EST_M_SAT_GPU, false);
    emit_cal(e, "gemm_m_sat_tokens_cpu", EST_M_SAT_CPU, false);
    emit_cal(e, "cpu_process_bytes", EST_CPU_PROCESS_BYTES, false);
    sw_emit_map_end(e);

    sw_emit_list_begin(e, "reasons");
    for (int i = 0; i < est->n_reasons && i < ADVISOR_MAX_REASONS; i++)
        sw_emit_str(e, NULL, est->reasons[i]);
    sw_emit_list_end(e);
    sw_emit_map_end(e);
}
