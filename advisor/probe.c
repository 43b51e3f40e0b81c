/* probe.c — hw_probe(): the machine this process runs on as a `struct hardware`, by calling
 * the CPU and host-memory probe (probe_cpu.c), the GPU probe through NVML and the CUDA driver
 * (probe_gpu.c) and the NCCL/MPI check. A probed hardware is one node; the inter-node
 * bandwidth stays 0 (single node) and NVMe is not probed. Saving, loading and printing the
 * result are hw_save_file / hw_load_file / hw_emit in hardware.c. */
#include "advisor/advisor.h"

#include <stdio.h>
#include <string.h>

#include "advisor/advisor_int.h"

int hw_probe(struct hardware *hw, bool measure, struct sw_err *err)
{
    hw_init(hw);
    hw->source = HW_SRC_PROBE;
    sw_strlcpy(hw->name, "probed", sizeof(hw->name));
    hw->nodes = 1;
    hw->inter_bytes_per_s = 0;
    int rc = hw_probe_cpu(hw, measure, err);
    if (rc < 0)
        return rc;
    const struct hw_cpu *cpu = &hw->cpu;
    if (cpu->known & HW_CPU_TOPOLOGY)
        snprintf(hw->description, sizeof(hw->description), "probed: %.60s, %d x %d cores",
                 cpu->known & HW_CPU_MODEL ? cpu->model : "unknown CPU", cpu->sockets,
                 cpu->cores_per_socket);
    else
        snprintf(hw->description, sizeof(hw->description), "probed: %.60s",
                 cpu->known & HW_CPU_MODEL ? cpu->model : "unknown CPU");
    hw_probe_gpus(hw);
    hw_probe_comm_libs(hw);
    return 0;
}
