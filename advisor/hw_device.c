/* The device the advisor plans for, reduced to the four figures the memory and speed models
 * need: is it a CPU, how many bytes it can hold, its dense peak FLOP/s for a dtype, and its
 * memory bandwidth. A GPU node is planned for its weakest GPU (minimum over the node's GPUs, so
 * a mixed node is planned for the slowest part, 11.8). A CPU-only node (n_gpus == 0) plans with
 * host memory and the CPU's peak (9.4). It also counts the devices, finds the lowest compute
 * capability, and resizes a node for --gpus-per-node (shared by the CLI and the TUI so both plan
 * for the same machine). Probing and profile loading, which fill struct hardware, are elsewhere
 * (probe*.c, hw.c).
 *
 * Choices, stated once:
 *  - Capacity. Probe: free memory now (NVML free; min over GPUs), since other processes hold the
 *    rest. Profile or saved report: the total (the free figure of a report is stale). CPU: host
 *    usable memory (MemAvailable and cgroup limit), else MemAvailable, else MemTotal.
 *  - CPU peak: the measured FMA-loop rate when the probe measured it (HW_CPU_MEASURED; VMs hide
 *    the clock, 9.4), else the table peak. bf16/fp16 scale the fp32 figure by the table's
 *    bf16/fp32 ratio (2 with AVX512_BF16, 1 when bf16 is converted to fp32). fp8 and int8 are
 *    not modelled on a CPU (0: unknown).
 *  - CPU bandwidth: the measured triad when known (HW_CPU_TRIAD), else the profile's
 *    host_mem_bytes_per_s. */
#include "advisor/advisor.h"

#include "advisor/advisor_int.h"

bool hw_is_cpu_only(const struct hardware *hw)
{
    return hw->n_gpus <= 0;
}

int hw_devices(const struct hardware *hw)
{
    int nodes = hw->nodes > 0 ? hw->nodes : 1;
    return hw->n_gpus > 0 ? nodes * hw->n_gpus : nodes;
}

int hw_min_cc(const struct hardware *hw)
{
    int cc = 1000;
    for (int i = 0; i < hw->n_gpus; i++) {
        int c = hw->gpus[i].cc_major * 10 + hw->gpus[i].cc_minor;
        if (c < cc)
            cc = c;
    }
    return hw->n_gpus > 0 ? cc : 0;
}

void hw_set_gpus_per_node(struct hardware *hw, int g)
{
    int old = hw->n_gpus;
    enum hw_link lk = old > 1 ? hw->link[0][1] : HW_LINK_UNKNOWN;
    int nvl = old > 1 ? hw->link_nvlinks[0][1] : 0;
    for (int i = old; i < g; i++)
        hw->gpus[i] = hw->gpus[0];
    for (int i = 0; i < g; i++)
        for (int j = 0; j < g; j++)
            if (i >= old || j >= old) {
                hw->link[i][j] = i == j ? HW_LINK_SELF : lk;
                hw->link_nvlinks[i][j] = i == j ? 0 : nvl;
            }
    hw->n_gpus = g;
}

static int n_gpus_of(const struct hardware *hw)
{
    return hw->n_gpus < HW_MAX_GPUS ? hw->n_gpus : HW_MAX_GPUS;
}

static uint64_t cpu_capacity_bytes(const struct hardware *hw)
{
    if (hw->mem.usable_bytes > 0)
        return hw->mem.usable_bytes;
    if ((hw->mem.known & HW_MEM_AVAILABLE) && hw->mem.available_bytes > 0)
        return hw->mem.available_bytes;
    return hw->mem.total_bytes;
}

uint64_t hw_device_capacity_bytes(const struct hardware *hw)
{
    if (hw_is_cpu_only(hw))
        return cpu_capacity_bytes(hw);
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < n_gpus_of(hw); i++) {
        const struct hw_gpu *g = &hw->gpus[i];
        uint64_t b = g->mem_total_bytes;
        if (hw->source == HW_SRC_PROBE && (g->known & HW_GPU_MEM_FREE))
            b = g->mem_free_bytes;
        if (b < best)
            best = b;
    }
    return best == UINT64_MAX ? 0 : best;
}

static double cpu_peak_flops(const struct hardware *hw, enum hw_dtype dt)
{
    const struct hw_cpu *c = &hw->cpu;
    double fp32 = c->peak_fp32_flops;
    if ((c->known & HW_CPU_MEASURED) && c->measured_fp32_flops > 0)
        fp32 = c->measured_fp32_flops;
    switch (dt) {
    case HW_DT_FP32:
    case HW_DT_TF32: /* no tf32 on a CPU: fp32 matmuls */
        return fp32;
    case HW_DT_BF16:
    case HW_DT_FP16: {
        double ratio = 1.0; /* converted to fp32: at most the fp32 rate (9.4) */
        if (c->peak_fp32_flops > 0 && c->peak_bf16_flops > 0)
            ratio = c->peak_bf16_flops / c->peak_fp32_flops;
        return fp32 * ratio;
    }
    default:
        return 0.0;
    }
}

double hw_device_peak_flops(const struct hardware *hw, enum hw_dtype dt)
{
    if ((int)dt < 0 || (int)dt >= HW_DT_COUNT)
        return 0.0;
    if (hw_is_cpu_only(hw))
        return cpu_peak_flops(hw, dt);
    double best = -1.0;
    for (int i = 0; i < n_gpus_of(hw); i++) {
        double p = hw->gpus[i].peak_flops[dt]; /* GeForce halving already applied (9.1) */
        if (best < 0 || p < best)
            best = p;
    }
    return best < 0 ? 0.0 : best;
}

static double cpu_mem_bw(const struct hardware *hw)
{
    if ((hw->cpu.known & HW_CPU_TRIAD) && hw->cpu.triad_bytes_per_s > 0)
        return hw->cpu.triad_bytes_per_s;
    return hw->host_mem_bytes_per_s;
}

double hw_device_mem_bw(const struct hardware *hw)
{
    if (hw_is_cpu_only(hw))
        return cpu_mem_bw(hw);
    double best = -1.0;
    for (int i = 0; i < n_gpus_of(hw); i++) {
        double b = hw->gpus[i].mem_bw_bytes_per_s;
        if (best < 0 || b < best)
            best = b;
    }
    return best < 0 ? 0.0 : best;
}

bool advisor_dev_is_cpu(const struct hardware *hw, const struct strategy *s)
{
    return hw_is_cpu_only(hw) || s->device == DEVICE_CPU;
}

double advisor_dev_capacity_bytes(const struct hardware *hw, const struct strategy *s)
{
    if (advisor_dev_is_cpu(hw, s))
        return (double)cpu_capacity_bytes(hw);
    return (double)hw_device_capacity_bytes(hw);
}

double advisor_dev_peak_flops(const struct hardware *hw, const struct strategy *s, enum hw_dtype dt)
{
    if (advisor_dev_is_cpu(hw, s))
        return ((int)dt >= 0 && (int)dt < HW_DT_COUNT) ? cpu_peak_flops(hw, dt) : 0.0;
    return hw_device_peak_flops(hw, dt);
}

double advisor_dev_mem_bw(const struct hardware *hw, const struct strategy *s)
{
    if (advisor_dev_is_cpu(hw, s))
        return cpu_mem_bw(hw);
    return hw_device_mem_bw(hw);
}
