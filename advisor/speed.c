/* The speed model (strategy reference sections 6, 7 and 8): model FLOPs per token and per step
 * (6.1, full attention count), hardware FLOPs with recompute (HFU), a per-layer roofline for
 * compute (6.4), tensor-parallel, pipeline and data-parallel/ZeRO collectives on ring algorithms
 * (7.1, 7.2), the pipeline bubble (7.3), optimizer step and offload traffic (7.4), assembled
 * into step time, tokens/s and MFU (8); for inference, prefill time to first token (6.2, 6.4)
 * and bandwidth-bound decode (6.5). Memory is memory.c's; this file reads the same plan
 * geometry (est_geom_init).
 *
 * Modelling choices ([cal] unless said otherwise):
 *  - FLOP convention: the full s x s score matrix (PaLM, torchtitan), 12*L*q*s per token.
 *  - eta_f falls for small GEMMs as eta_max*min(1, M/M_sat) in the token dimension M: M_sat =
 *    2048 tokens per micro-batch on a GPU (below that, kernel launches and small tiles keep
 *    GPT-2-sized layers far from their plateau; decode-sized M is bandwidth-bound anyway), 64
 *    on a CPU; a calibration file's fitted M_sat replaces them. A measured --achieved-tflops
 *    replaces
 *    peak*eta_f outright.
 *  - Bytes per layer for the roofline: training reads the weights twice (forward, backward),
 *    reads and writes the gradient, and moves 3 x the layer's activations; prefill reads the
 *    weights once and writes the KV slice; decode reads all weights and the cache once.
 *  - Overlap: DP gradient reduction (DDP, ZeRO-1/2 reduce-scatter) overlaps the backward of the
 *    last micro-batch, exposing max(0, t_DP - t_backward) plus one 25 MiB bucket; ZeRO-3
 *    gathers overlap the micro-batch's compute with one unit exposed; the ZeRO-1/2 weight
 *    all-gather after the step, TP collectives and pipeline sends are exposed. Offload traffic
 *    and the CPU optimizer step are not overlapped. Gradients travel in fp32 (B_g) for DDP and
 *    ZeRO-1, in the compute dtype for ZeRO-2/3's per-micro-batch reduce-scatter.
 *  - Ranks are laid out TP innermost, then DP, then PP: DP crosses nodes when tp*dp exceeds
 *    the GPUs of a node, PP when all ranks do. Across nodes a GPU gets its share of the node's
 *    NIC; an unknown NIC or PCIe rate takes a flagged low default (12.5 GB/s, 15.75 GB/s).
 *  - CPU processes of one node exchange through shared memory (MPI over a shared segment):
 *    every byte a ring step moves is copied in and out of the segment, and a reduce-scatter
 *    step also reads two inputs and writes the sum, so the node's memory bandwidth, shared by
 *    all its ranks, bounds the collective: a ring link of mem_bw / (k_shm * ranks per node)
 *    with k_shm = EST_CPU_SHM_TRAFFIC, no eta_c (est_cpu_shm_link_bytes_per_s).
 *    Reduce-scatters are ring figures too (the MPI engine calls MPI_Reduce_scatter, which
 *    Open MPI runs as a ring or recursive halving). The cores that would progress a
 *    collective also run the compute, so nothing overlaps on a CPU: DP and ZeRO collectives
 *    are exposed in full. */
#include "advisor/advisor.h"

#include <math.h>
#include <string.h>

#include "advisor/advisor_int.h"

#define MIB (1024.0 * 1024.0)

static const double k_bucket_bytes = 25.0 * MIB;
static const double k_default_nic_bytes_per_s = 12.5e9;   /* 100 Gb/s, flagged */
static const double k_default_pcie_bytes_per_s = 15.75e9; /* Gen3 x16, flagged */

double est_allreduce_s(double bytes, int n, double bw, double eta, double lat_s)
{
    if (n < 2 || bytes <= 0)
        return 0.0;
    if (bw <= 0 || eta <= 0)
        return NAN;
    return lat_s + 2.0 * (n - 1) / n * bytes / (bw * eta); /* 7.1 ring */
}

double est_gather_s(double bytes, int n, double bw, double eta, double lat_s)
{
    if (n < 2 || bytes <= 0)
        return 0.0;
    if (bw <= 0 || eta <= 0)
        return NAN;
    return lat_s + (double)(n - 1) / n * bytes / (bw * eta);
}

double est_cpu_shm_link_bytes_per_s(double mem_bw, int ranks_per_node)
{
    int n = ranks_per_node > 1 ? ranks_per_node : 1;
    return mem_bw > 0 ? mem_bw / (EST_CPU_SHM_TRAFFIC * n) : 0.0;
}

double est_bubble_ratio(int p, int m, int v)
{
    if (p <= 1 || m < 1)
        return 0.0;
    return (p - 1.0) / ((v > 1 ? v : 1) * (double)m); /* 7.3 */
}

double est_eta_flops(double eta_max, double tokens, double m_sat)
{
    if (m_sat <= 0 || tokens >= m_sat)
        return eta_max;
    return eta_max * (tokens > 0 ? tokens : 0) / m_sat;
}

/* A compute rate and a memory rate for the roofline (6.4). */
struct rates {
    double flops_per_s; /* 0: unknown peak */
    double bytes_per_s; /* 0: unknown bandwidth */
};

static double roof(double flops, double bytes, const struct rates *r)
{
    double tc = r->flops_per_s > 0 ? flops / r->flops_per_s : 0.0;
    double tm = r->bytes_per_s > 0 ? bytes / r->bytes_per_s : 0.0;
    if (r->flops_per_s <= 0 && r->bytes_per_s <= 0)
        return NAN;
    return tc > tm ? tc : tm;
}

/* Worst link class among the first n GPUs of a node (the slowest hop of a ring, 7.1). */
static enum hw_link worst_link(const struct hardware *hw, int n, int *nvlinks)
{
    enum hw_link worst = HW_LINK_UNKNOWN;
    *nvlinks = 0;
    if (n > HW_MAX_GPUS)
        n = HW_MAX_GPUS;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            enum hw_link l = hw->link[i][j];
            if (l == HW_LINK_UNKNOWN)
                continue;
            if (worst == HW_LINK_UNKNOWN || l > worst ||
                (l == worst && l == HW_LINK_NVLINK && hw->link_nvlinks[i][j] < *nvlinks)) {
                worst = l;
                *nvlinks = hw->link_nvlinks[i][j];
            }
        }
    return worst;
}

/* Bandwidths the collectives of a plan see (per direction, before eta_c). */
struct links {
    double intra_bw, inter_bw; /* inter: one rank's share of the node's NIC */
    bool dp_inter, pp_inter;
    enum hw_link worst;
    bool slow_intra;
    bool guessed_nic;
};

static void links_init(struct links *k, const struct est_geom *g, const struct hardware *hw,
                       const struct strategy *s, double mem_bw, struct estimate *out)
{
    memset(k, 0, sizeof(*k));
    int nvl = 0;
    int per_node = g->cpu ? g->ranks_per_node : hw->n_gpus;
    k->dp_inter = (hw->nodes > 1) && g->t * g->n_dp > per_node;
    k->pp_inter = (hw->nodes > 1) && g->devices > per_node;
    double nic = hw->inter_bytes_per_s;
    if (nic <= 0 && (k->dp_inter || k->pp_inter)) {
        nic = k_default_nic_bytes_per_s;
        k->guessed_nic = true;
    }
    k->inter_bw = nic / (g->ranks_per_node > 0 ? g->ranks_per_node : 1);
    if (g->cpu) {
        k->intra_bw = est_cpu_shm_link_bytes_per_s(mem_bw, g->ranks_per_node);
        sw_strlcpy(out->link_class,
                   g->devices < 2                 ? "none"
                   : (k->dp_inter || k->pp_inter) ? "MPI inter-node"
                                                  : "shared memory",
                   sizeof(out->link_class));
        return;
    }
    k->intra_bw = hw->intra_bytes_per_s > 0 ? hw->intra_bytes_per_s : hw->pcie_bytes_per_s;
    int used = g->ranks_per_node;
    k->worst = worst_link(hw, used, &nvl);
    k->slow_intra = used > 1 && k->worst != HW_LINK_UNKNOWN && !hw_link_is_fast(k->worst);
    char intra[16];
    if (k->worst == HW_LINK_NVLINK)
        snprintf(intra, sizeof(intra), "NV%d", nvl);
    else if (k->worst == HW_LINK_UNKNOWN)
        snprintf(intra, sizeof(intra), "intra-node");
    else
        snprintf(intra, sizeof(intra), "%s", hw_link_name(k->worst));
    if (g->devices < 2)
        snprintf(out->link_class, sizeof(out->link_class), "none");
    else if ((k->dp_inter || k->pp_inter) && used > 1)
        snprintf(out->link_class, sizeof(out->link_class), "%.12s + inter-node NIC", intra);
    else if (k->dp_inter || k->pp_inter)
        snprintf(out->link_class, sizeof(out->link_class), "inter-node NIC");
    else
        snprintf(out->link_class, sizeof(out->link_class), "%s", intra);
}

/* Matmul-peak dtype rate, with eta_f and its falloff, or the measured override. */
static void rates_init(struct rates *r, const struct est_geom *g, const struct hardware *hw,
                       const struct strategy *s, const struct advisor_calib *cal, double eta_max,
                       double tokens, double mem_bw)
{
    double peak = advisor_dev_peak_flops(hw, s, g->peak_dtype);
    double msat = cal->m_sat_tokens > 0 ? cal->m_sat_tokens : g->cpu ? EST_M_SAT_CPU : EST_M_SAT_GPU;
    if (cal->achieved_flops > 0)
        r->flops_per_s = cal->achieved_flops;
    else
        r->flops_per_s = peak * est_eta_flops(eta_max, tokens, msat);
    r->bytes_per_s = mem_bw * cal->eta_mem;
}

/* The executor's calibrated flash-attention rate where it applies (a flash plan), else 0. */
static double calibrated_attn_rate(const struct advisor_calib *cal, const struct strategy *s)
{
    return s->attention == ATTN_FLASH && cal->attn_flops_per_s > 0 ? cal->attn_flops_per_s : 0.0;
}

static double nan_to_zero(double x)
{
    return isnan(x) ? 0.0 : x;
}

/* Training (section 8). */
static int speed_train(const struct est_geom *g, const struct model_desc *m,
                       const struct hardware *hw, const struct workload *w,
                       const struct strategy *s, const struct advisor_calib *cal,
                       struct estimate *out)
{
    int d = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    double h = m->hidden, L = m->n_layers, q = (double)m->n_heads * d, sq = g->s;
    double N_mm = (double)g->c.params_matmul, V = (double)g->c.vocab_padded;
    double M = (double)g->b * g->s; /* tokens per GEMM per micro-batch */
    double B = (double)g->b * g->m * g->n_dp;
    double P_A = g->lora ? L * model_lora_params_layer(m, s->lora_rank, 1) : 0.0;
    bool full = s->recompute == RECOMPUTE_FULL, sel = s->recompute == RECOMPUTE_SELECTIVE;

    /* 6.1 model FLOPs per token (MFU convention) and 6.3 hardware FLOPs with recompute. */
    double attn_tok = 12.0 * L * q * sq;
    double f_tok = g->lora ? 4.0 * N_mm + 6.0 * P_A + attn_tok : 6.0 * N_mm + attn_tok;
    double f_extra = 0.0;
    if (full)
        f_extra = 2.0 * (N_mm - h * V) + 4.0 * L * q * sq + 2.0 * P_A;
    else if (sel)
        f_extra = 4.0 * L * q * sq;
    out->flops_per_token = f_tok;
    out->flops_per_step = f_tok * B * sq;
    out->hw_flops_per_step = (f_tok + f_extra) * B * sq;

    /* 6.4 roofline per layer on one rank, one micro-batch. */
    double mem_bw = advisor_dev_mem_bw(hw, s);
    struct rates r;
    rates_init(&r, g, hw, s, cal, cal->eta_flops_train, M, mem_bw);
    double mm_r = g->layer.matrix, t = g->t;
    double base_fwd = 2.0 * M * mm_r, attn_fwd = 4.0 * M * sq * q / t;
    double lora_fwd = 2.0 * M * g->lora_layer;
    double layer_fl =
        g->lora ? 2.0 * base_fwd + 3.0 * lora_fwd + 3.0 * attn_fwd : 3.0 * (base_fwd + attn_fwd);
    if (full)
        layer_fl += base_fwd + attn_fwd + lora_fwd;
    else if (sel)
        layer_fl += attn_fwd;
    struct act_shape x = {0};
    x.h = h, x.q = q, x.h_kv = (double)g->kv_heads_rank * d * t;
    x.f = m->ffn > 0 ? m->ffn : 4.0 * h, x.a = m->n_heads, x.s = sq;
    x.e = x.e_n = g->e_act, x.k_f = m->swiglu ? 3.0 : 2.0, x.t = g->t;
    x.sp = s->sequence_parallel && g->t > 1, x.flash = s->attention == ATTN_FLASH;
    double a_layer = M * est_act_tok_bytes(&x);
    double layer_params = g->layer.matrix + g->layer.vector;
    double w_bytes = g->lora ? 2.0 * (g->layer.matrix * g->e_mat + g->layer.vector * g->e_kept)
                             : (2.0 * g->bw + 2.0 * g->bg) * layer_params;
    double layer_bytes = w_bytes + 3.0 * a_layer;
    /* A calibrated attention rate (the executor's flash kernels, forward + backward) times the
     * attention FLOPs of a flash plan apart from the matmuls' roofline. */
    double attn_fl = (3.0 + (full || sel ? 1.0 : 0.0)) * attn_fwd;
    double attn_rate = calibrated_attn_rate(cal, s);
    double t_attn = attn_rate > 0 ? attn_fl / attn_rate : 0.0;
    double t_layer = t_attn > 0 ? roof(layer_fl - attn_fl, layer_bytes, &r) + t_attn
                                : roof(layer_fl, layer_bytes, &r);
    double head_fl = (g->lora ? 4.0 : 6.0) * M * h * V / t;
    double head_bytes =
        3.0 * g->vocab_rank * (g->lora ? g->e_kept : g->bw) + 2.0 * M * (V / t) * 4.0;
    double t_head = roof(head_fl, head_bytes, &r);
    double t_first = g->L_first * t_layer + (g->p == 1 ? t_head : 0.0);
    double t_last = g->L_last * t_layer + t_head;
    double t_stage = t_first > t_last ? t_first : t_last;

    /* 7.2 tensor-parallel all-reduces (exposed) and pipeline sends, per micro-batch. */
    struct links k;
    links_init(&k, g, hw, s, mem_bw, out);
    /* CPU shared memory: the copy count in k_shm replaces eta_c (est_cpu_shm_link_bytes_per_s). */
    double eta_in = g->cpu ? 1.0 : cal->eta_comm_intra, eta_x = cal->eta_comm_inter;
    double lat = cal->comm_latency_s;
    double n_ar = (full ? 6.0 : 4.0) * g->L_first;
    double t_tp = n_ar * est_allreduce_s(M * h * g->e_act, g->t, k.intra_bw, eta_in, lat);
    double t_pp = 0.0;
    if (g->p > 1) {
        double bytes = M * h * g->e_act / t;
        double bw = k.pp_inter ? k.inter_bw : k.intra_bw;
        double eta = k.pp_inter ? eta_x : eta_in;
        t_pp = 2.0 * g->v * (lat + (bw > 0 ? bytes / (bw * eta) : NAN));
    }
    double t_micro = t_stage + nan_to_zero(t_tp) + nan_to_zero(t_pp);
    double bubble = est_bubble_ratio(g->p, g->m, g->v);
    out->compute_s = g->m * t_stage;
    if (t_attn > 0)
        estimate_add_reason(out,
                            "attention timed at the executor's calibrated flash-attention rate, "
                            "%.3g TFLOP/s (forward + backward, full-score count): %.3g ms of each "
                            "layer's %.3g ms",
                            attn_rate / 1e12, 1e3 * t_attn, 1e3 * t_layer);
    out->bubble_s = bubble * g->m * t_micro;

    /* 7.2 data parallel / ZeRO, with the overlap rule of 8. */
    double t_dp = 0.0;
    double P_t = est_stage_trainable(g, true), P_t2 = est_stage_trainable(g, false);
    if (P_t2 > P_t)
        P_t = P_t2;
    double P_st = est_stage_params(g, true);
    /* Gradient bytes on the wire: DDP and ZeRO-1 reduce the accumulated buffer once per step
     * (B_g: fp32 in the default row, as Megatron does); ZeRO-2/3 reduce-scatter every
     * micro-batch's gradients as produced, in the compute dtype (B_w). */
    double e_g = s->zero >= 2 ? g->bw : g->bg;
    double w_gather = g->lora ? P_st * g->e_mat + g->bw * P_t : g->bw * P_st;
    if (g->n_dp > 1) {
        double bw = k.dp_inter ? k.inter_bw : k.intra_bw;
        double eta = k.dp_inter ? eta_x : eta_in;
        double t_bwd = 2.0 / 3.0 * t_stage;
        double grads = P_t * e_g;
        double bucket = grads < k_bucket_bytes ? grads : k_bucket_bytes;
        int n = g->n_dp;
        /* CPU processes on one node: no overlap. */
        if (s->zero == 0) {
            double ar = est_allreduce_s(grads, n, bw, eta, lat);
            t_dp = g->cpu ? ar
                          : fmax(0.0, ar - t_bwd) + est_allreduce_s(bucket, n, bw, eta, lat);
        } else if (s->zero == 1 || s->zero == 2) {
            double rs = est_gather_s(grads, n, bw, eta, lat);
            double rs_exposed =
                g->cpu ? rs
                       : fmax(0.0, rs - t_bwd) + est_gather_s(bucket, n, bw, eta, lat);
            double ag = est_gather_s(g->bw * P_t, n, bw, eta, lat);
            t_dp = (s->zero == 2 ? g->m : 1) * rs_exposed + ag;
        } else {
            double gathers = full ? 3.0 : 2.0;
            double z3 = gathers * est_gather_s(w_gather, n, bw, eta, lat) +
                        est_gather_s(grads, n, bw, eta, lat);
            double unit = (layer_params > g->vocab_rank ? layer_params : g->vocab_rank) *
                          (g->lora ? g->e_kept : g->bw);
            t_dp = g->m * (g->cpu ? z3
                                  : fmax(0.0, z3 - t_stage) + est_gather_s(unit, n, bw, eta, lat));
        }
    }
    out->comm_exposed_s = g->m * (nan_to_zero(t_tp) + nan_to_zero(t_pp)) + nan_to_zero(t_dp);

    /* 8 / 7.4 optimizer step and offload. */
    double so = s->zero >= 1 ? 1.0 / g->n_dp : 1.0;
    double opt_bytes_param = 2.0 * g->bm + 2.0 * g->bo + g->bg + (g->bm > 0 ? g->bw : 2.0 * g->bw);
    double pcie = hw->pcie_bytes_per_s;
    bool pcie_guess = false;
    if ((s->offload_optimizer || s->offload_params) && pcie <= 0) {
        pcie = k_default_pcie_bytes_per_s;
        pcie_guess = true;
    }
    out->optimizer_s = 0.0;
    out->offload_s = 0.0;
    if (s->offload_optimizer) {
        double host_bw = hw->host_mem_bytes_per_s;
        if ((hw->cpu.known & HW_CPU_TRIAD) && hw->cpu.triad_bytes_per_s > 0)
            host_bw = hw->cpu.triad_bytes_per_s;
        double bo_host = s->optimizer == OPT_ADAMW8BIT ? 8.0 : g->bo;
        double e_g16 = g->bw >= 4 ? 4.0 : 2.0;
        double pcie_s = P_t * so * (e_g16 + g->bw) / pcie;
        /* Host AdamW touches master r/w 8 + states r/w 2*B_o + gradient 4 + 16-bit weight out. */
        double cpu_bytes = (8.0 + 2.0 * bo_host + 4.0 + g->bw) * P_t * so;
        double cpu_s = host_bw > 0 ? cpu_bytes / (host_bw / g->ranks_per_node) : NAN;
        out->offload_s = pcie_s + cpu_s;
    } else if (r.bytes_per_s > 0) {
        out->optimizer_s = opt_bytes_param * P_t * so / r.bytes_per_s;
    } else {
        /* Bandwidth unknown (a CPU probed without the triad): leave the memory-bound optimizer
         * step out rather than lose the whole estimate, and say so. */
        out->optimizer_s = 0.0;
        estimate_add_reason(out, "memory bandwidth unknown: the optimizer step (%.3g GB touched) "
                                 "is not counted; step time is a lower bound (measure with "
                                 "scalewise probe)",
                            opt_bytes_param * P_t * so / 1e9);
    }
    if (s->offload_params) /* each micro-batch gathers weights over PCIe, forward and backward */
        out->offload_s += g->m * (full ? 3.0 : 2.0) * w_gather / g->n_dp / pcie;

    out->step_time_s =
        out->compute_s + out->comm_exposed_s + out->bubble_s + out->optimizer_s + out->offload_s;
    out->tokens_per_s = B * sq / out->step_time_s;
    double peak = advisor_dev_peak_flops(hw, s, g->peak_dtype);
    out->peak_flops_used = peak;
    out->peak_dtype = g->peak_dtype;
    if (peak > 0) {
        out->mfu = out->flops_per_step / out->step_time_s / (g->devices * peak);
        out->hfu = out->hw_flops_per_step / out->step_time_s / (g->devices * peak);
    } else {
        out->mfu = out->hfu = NAN;
    }
    out->time_to_train_s = 0.0;
    out->gpu_hours = 0.0;
    if (w->tokens_total > 0 && out->tokens_per_s > 0) {
        out->time_to_train_s = (double)w->tokens_total / out->tokens_per_s;
        out->gpu_hours = out->time_to_train_s * g->devices / 3600.0;
    }
    out->ttft_s = out->decode_s_per_token = out->infer_tokens_per_s = 0.0;

    /* Reasons. */
    const char *dev = g->cpu ? "process" : "GPU";
    if (isnan(out->step_time_s)) {
        estimate_add_reason(out, "peak FLOP/s and memory bandwidth both unknown: step time n/a");
    } else {
        estimate_add_reason(out,
                            "step %.3g s: compute %.3g, exposed comm %.3g, bubble %.3g, "
                            "optimizer %.3g, offload %.3g",
                            out->step_time_s, out->compute_s, out->comm_exposed_s, out->bubble_s,
                            out->optimizer_s, out->offload_s);
    }
    if (peak > 0)
        estimate_add_reason(out,
                            "MFU %.1f%% of the %s peak %.4g TFLOP/s per %s (full attention "
                            "count, %.3g GFLOP/token%s)",
                            100.0 * out->mfu, hw_dtype_name(g->peak_dtype), peak / 1e12, dev,
                            f_tok / 1e9, cal->achieved_flops > 0 ? ", measured rate" : "");
    else
        estimate_add_reason(out,
                            "%s peak unknown for this device: MFU n/a, compute timed from "
                            "memory bandwidth only",
                            hw_dtype_name(g->peak_dtype));
    double msat = cal->m_sat_tokens > 0 ? cal->m_sat_tokens : g->cpu ? EST_M_SAT_CPU : EST_M_SAT_GPU;
    if (cal->achieved_flops <= 0 && M < msat)
        estimate_add_reason(out,
                            "small micro-batch: %.0f tokens per GEMM, eta_f %.2f of %.2f "
                            "(M_sat %.0f)",
                            M, est_eta_flops(cal->eta_flops_train, M, msat), cal->eta_flops_train,
                            msat);
    if (g->p > 1)
        estimate_add_reason(out, "pipeline bubble %.1f%% of the step (p %d, m %d, v %d)",
                            100.0 * out->bubble_s / out->step_time_s, g->p, g->m, g->v);
    if (g->n_dp > 1)
        estimate_add_reason(out, "data parallel over %s: %.3g s exposed per step (zero %d)",
                            k.dp_inter ? "the inter-node NIC" : out->link_class, t_dp, s->zero);
    if (k.slow_intra && (g->t > 1 || (s->zero == 3 && g->n_dp > 1)))
        estimate_add_reason(out,
                            "%s over a slow link (%s): prefer pp, or ZeRO-2 with offload "
                            "(11.2)",
                            g->t > 1 ? "tensor parallelism" : "ZeRO-3", out->link_class);
    if (k.guessed_nic)
        estimate_add_reason(out, "inter-node bandwidth unknown: assumed 12.5 GB/s per node");
    if (pcie_guess)
        estimate_add_reason(out, "PCIe bandwidth unknown: offload timed at 15.75 GB/s (Gen3 x16)");
    return 0;
}

/* Inference (6.2, 6.4, 6.5, 8). */
/* Backend calls of one forward step of the built-in executor with its KV cache (model.c's
 * layer_forward): per layer the 4 matmuls (QKV, attention output, FC, projection) and the other
 * kernels (2 norms, the cache append, the attention, 2 residual adds, RoPE for Llama, and the
 * activation where it is not fused into the FC matmul: SwiGLU always, GELU on a CPU); per step
 * the token copy, the embedding, the final norm, the head matmul, and the argmax or the logits'
 * copy. */
static void forward_calls(const struct model_desc *m, bool cpu, double *mm, double *other)
{
    double per_layer = 6.0 + (m->arch == MODEL_ARCH_LLAMA ? 1.0 : 0.0) +
                       (m->swiglu || cpu ? 1.0 : 0.0);
    *mm = 4.0 * m->n_layers + 1.0;
    *other = per_layer * m->n_layers + 4.0;
}

/* A step's time given its device time t and the host time of its calls: a GPU runs its kernels
 * while the host issues the next ones (the slower of the two bounds the step), a CPU's calls are
 * the work itself (their overheads add). */
static double with_calls(double t, double t_calls, bool cpu)
{
    if (t_calls <= 0)
        return t;
    return cpu ? t + t_calls : (t > t_calls ? t : t_calls);
}

static int speed_infer(const struct est_geom *g, const struct model_desc *m,
                       const struct hardware *hw, const struct workload *w,
                       const struct strategy *s, const struct advisor_calib *cal,
                       struct estimate *out)
{
    int d = m->head_dim > 0 ? m->head_dim : m->hidden / m->n_heads;
    double h = m->hidden, L = m->n_layers, q = (double)m->n_heads * d, t = g->t;
    /* b: the sequences of one replica (memory.c's g->b); the dp replicas decode in parallel. */
    double b = g->b, sp = w->prompt_len, sn = w->gen_len;
    double V = (double)g->c.vocab_padded, M = b * sp;
    double mem_bw = advisor_dev_mem_bw(hw, s);
    double kappa = s->attention == ATTN_FLASH ? 0.5 : 1.0; /* flash skips masked blocks */
    struct links k;
    links_init(&k, g, hw, s, mem_bw, out);
    double lat = cal->comm_latency_s, eta_in = cal->eta_comm_intra;
    double pp_bw = k.pp_inter ? k.inter_bw : k.intra_bw;
    double pp_eta = k.pp_inter ? cal->eta_comm_inter : eta_in;

    /* Prefill: every layer once (a request passes the pipeline stages in turn). */
    struct rates r;
    rates_init(&r, g, hw, s, cal, cal->eta_flops_prefill, M, mem_bw);
    double layer_w = g->layer.matrix * g->e_mat + g->layer.vector * g->e_kept;
    double kv_tok_layer = 2.0 * g->kv_heads_rank * (double)d * g->e_kv;
    double k_f = m->swiglu ? 3.0 : 2.0, f = m->ffn > 0 ? m->ffn : 4.0 * h;
    double attn_pre = 4.0 * (q / t) * b * sp * sp * kappa;
    double layer_fl = 2.0 * M * g->layer.matrix + attn_pre;
    double layer_bytes = layer_w + kv_tok_layer * M + 2.0 * M * (2.0 * h + k_f * f / t) * g->e_act;
    /* A calibrated attention rate is in the full-score count (4·b·s²·q, kappa 1). */
    double attn_rate = calibrated_attn_rate(cal, s);
    double t_layer_pre = attn_rate > 0 ? roof(layer_fl - attn_pre, layer_bytes, &r) +
                                             4.0 * (q / t) * b * sp * sp / attn_rate
                                       : roof(layer_fl, layer_bytes, &r);
    double t_pre = L * t_layer_pre;
    t_pre += roof(2.0 * b * h * V / t, g->vocab_rank * g->e_kept, &r); /* last position only */
    /* The executor's calls per forward step, at their calibrated host cost (0 until then). */
    double mm_calls, k_calls;
    forward_calls(m, g->cpu, &mm_calls, &k_calls);
    double t_calls = mm_calls * cal->call_matmul_s + k_calls * cal->call_kernel_s;
    t_pre = with_calls(t_pre, t_calls, g->cpu);
    double t_tp_pre = 2.0 * L * est_allreduce_s(M * h * g->e_act, g->t, k.intra_bw, eta_in, lat);
    double t_pp_pre = (g->p - 1) * (lat + (pp_bw > 0 ? M * h * g->e_act / (pp_bw * pp_eta) : 0));
    out->ttft_s = t_pre + nan_to_zero(t_tp_pre) + t_pp_pre;

    /* Decode at the mean cache length T = s_p + s_n/2 (6.5). */
    double T = sp + sn / 2.0;
    if (m->sliding_window > 0 && T > m->sliding_window)
        T = m->sliding_window;
    /* No small-GEMM falloff here: at decode sizes the weight reads bound the GEMM, and the
     * bandwidth term already charges them (the falloff would count them twice). */
    struct rates rd;
    rates_init(&rd, g, hw, s, cal, cal->eta_flops_prefill, HUGE_VAL, mem_bw);
    rd.bytes_per_s = mem_bw * cal->eta_mem_decode; /* a 1-token GEMM's rate (calibrate.c) */
    double w_all = L * layer_w + g->vocab_rank * g->e_kept;
    double kv_all = L * kv_tok_layer * T * b;
    double fl_dec = b * (2.0 * (L * g->layer.matrix + g->vocab_rank) + 4.0 * L * (q / t) * T);
    double t_reads = roof(fl_dec, w_all + kv_all, &rd);
    double t_tok = with_calls(t_reads, t_calls, g->cpu);
    double t_tp_dec = 2.0 * L * est_allreduce_s(b * h * g->e_act, g->t, k.intra_bw, eta_in, lat);
    double t_pp_dec = (g->p - 1) * (lat + (pp_bw > 0 ? b * h * g->e_act / (pp_bw * pp_eta) : 0));
    out->decode_s_per_token = t_tok + nan_to_zero(t_tp_dec) + t_pp_dec + cal->launch_overhead_s;
    out->infer_tokens_per_s = b * g->n_dp / out->decode_s_per_token;
    out->tokens_per_s = out->infer_tokens_per_s;
    out->flops_per_token = 2.0 * (double)g->c.params_matmul + 4.0 * L * q * T;
    out->flops_per_step = out->hw_flops_per_step = 0.0;
    out->step_time_s = 0.0;
    out->compute_s = out->comm_exposed_s = out->bubble_s = out->optimizer_s = out->offload_s = 0;
    double peak = advisor_dev_peak_flops(hw, s, g->peak_dtype);
    out->peak_flops_used = peak;
    out->peak_dtype = g->peak_dtype;
    out->mfu = out->hfu = NAN;

    double t_mem = rd.bytes_per_s > 0 ? (w_all + kv_all) / rd.bytes_per_s : NAN;
    if (isnan(out->decode_s_per_token))
        estimate_add_reason(out, "peak FLOP/s and memory bandwidth both unknown: latency n/a");
    else if (!g->cpu && t_calls > t_reads)
        estimate_add_reason(out,
                            "decode launch-bound: %.0f executor calls per token (%.0f matmuls) "
                            "at %.3g and %.3g us each (calibrated) take %.3g ms, more than the "
                            "%.3g ms of reads and FLOPs",
                            mm_calls + k_calls, mm_calls, 1e6 * cal->call_matmul_s,
                            1e6 * cal->call_kernel_s, 1e3 * t_calls, 1e3 * t_reads);
    else if (!isnan(t_mem) && t_mem >= t_reads * 0.999)
        estimate_add_reason(out,
                            "decode bandwidth-bound: %.3g GB weights + %.3g GB KV per "
                            "token per device at %.3g GB/s x %.2f -> %.3g ms",
                            w_all / 1e9, kv_all / 1e9, mem_bw / 1e9, cal->eta_mem_decode,
                            1e3 * out->decode_s_per_token);
    else
        estimate_add_reason(out, "decode compute-bound at batch %d: %.3g ms per token", w->batch,
                            1e3 * out->decode_s_per_token);
    if (g->cpu && t_calls > 0)
        estimate_add_reason(out,
                            "decode: %.0f executor calls per token (%.0f matmuls) add %.3g ms "
                            "(calibrated: %.3g and %.3g us each)",
                            mm_calls + k_calls, mm_calls, 1e3 * t_calls,
                            1e6 * cal->call_matmul_s, 1e6 * cal->call_kernel_s);
    if (!isnan(out->ttft_s))
        estimate_add_reason(out,
                            "time to first token %.3g ms for %d x %d prompt tokens; "
                            "generation of %d tokens about %.3g s",
                            1e3 * out->ttft_s, w->batch, w->prompt_len, w->gen_len,
                            out->ttft_s + sn * out->decode_s_per_token);
    if (peak <= 0 && cal->achieved_flops <= 0)
        estimate_add_reason(out,
                            "%s peak unknown for this device: prefill timed from memory "
                            "bandwidth only",
                            hw_dtype_name(g->peak_dtype));
    if (k.guessed_nic)
        estimate_add_reason(out, "inter-node bandwidth unknown: assumed 12.5 GB/s per node");
    return 0;
}

int advisor_estimate_speed(const struct model_desc *m, const struct hardware *hw,
                           const struct workload *w, const struct strategy *s,
                           const struct advisor_calib *cal_in, struct estimate *out,
                           struct sw_err *err)
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
    if (g.train)
        return speed_train(&g, m, hw, w, s, cal, out);
    return speed_infer(&g, m, hw, w, s, cal, out);
}
