/* fake_gpu.h — the canned machines behind the fake NVML (fake_nvml.c) and fake CUDA driver
 * (fake_cuda.c) libraries. The environment variable SW_FAKE_GPU_MACHINE picks one when the
 * library is initialised: "h100" (8x H100 SXM5 on NVSwitch), "a100" (8x A100 SXM4 80GB on
 * NVSwitch), "l40s" (4x L40S on PCIe, two per socket, no P2P across sockets); unset or "none"
 * makes init fail as on a machine without the driver. The figures are data-sheet values as
 * NVML and the CUDA driver report them (max clocks, bus width, MiB totals). Static data only:
 * each fake includes this header once. */
#ifndef SW_FAKE_GPU_H
#define SW_FAKE_GPU_H

#include <stdlib.h>
#include <string.h>

#define FAKE_MAX_GPUS 8

struct fake_machine {
    const char *key;
    int n_gpus;
    const char *name;
    int cc_major, cc_minor;
    int sms;
    int cores; /* CUDA cores: SMs x FP32 lanes per SM */
    unsigned sm_clock_mhz, mem_clock_mhz, bus_width_bits;
    unsigned long long mem_total_mib;
    unsigned pcie_gen, pcie_width;
    int nvlinks;             /* per GPU; 0 = no NVLink (NOT_SUPPORTED) */
    unsigned nvlink_version; /* nvmlNvlinkVersion_t: 4 = NVLink 3.0, 6 = NVLink 4.0 */
    unsigned power_limit_mw;
    const char *bus[FAKE_MAX_GPUS]; /* PCI bus number (hex) of each GPU, NVML order */
    int socket[FAKE_MAX_GPUS];      /* for the topology levels */
};

/* One machine per paragraph reads better than one field per line. */
/* clang-format off */
static const struct fake_machine fake_machines[] = {
    {.key = "h100", .n_gpus = 8, .name = "NVIDIA H100 80GB HBM3", .cc_major = 9, .cc_minor = 0,
     .sms = 132, .cores = 132 * 128, .sm_clock_mhz = 1980, .mem_clock_mhz = 2619,
     .bus_width_bits = 5120, .mem_total_mib = 81559, .pcie_gen = 5, .pcie_width = 16,
     .nvlinks = 18, .nvlink_version = 6, .power_limit_mw = 700000,
     .bus = {"18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"}, .socket = {0, 0, 0, 0, 1, 1, 1, 1}},
    {.key = "a100", .n_gpus = 8, .name = "NVIDIA A100-SXM4-80GB", .cc_major = 8, .cc_minor = 0,
     .sms = 108, .cores = 108 * 64, .sm_clock_mhz = 1410, .mem_clock_mhz = 1593,
     .bus_width_bits = 5120, .mem_total_mib = 81920, .pcie_gen = 4, .pcie_width = 16,
     .nvlinks = 12, .nvlink_version = 4, .power_limit_mw = 400000,
     .bus = {"07", "0F", "47", "4E", "87", "90", "B7", "BD"}, .socket = {0, 0, 0, 0, 1, 1, 1, 1}},
    {.key = "l40s", .n_gpus = 4, .name = "NVIDIA L40S", .cc_major = 8, .cc_minor = 9, .sms = 142,
     .cores = 142 * 128, .sm_clock_mhz = 2520, .mem_clock_mhz = 9001, .bus_width_bits = 384,
     .mem_total_mib = 46068, .pcie_gen = 4, .pcie_width = 16, .nvlinks = 0,
     .nvlink_version = 0, .power_limit_mw = 350000, .bus = {"17", "31", "B1", "CA"},
     .socket = {0, 0, 1, 1}},
};
/* clang-format on */

/* The machine SW_FAKE_GPU_MACHINE names, or NULL ("none", unset, unknown). */
static const struct fake_machine *fake_machine_from_env(void)
{
    const char *key = getenv("SW_FAKE_GPU_MACHINE");
    if (!key)
        return NULL;
    for (size_t i = 0; i < sizeof(fake_machines) / sizeof(fake_machines[0]); i++)
        if (strcmp(key, fake_machines[i].key) == 0)
            return &fake_machines[i];
    return NULL;
}

#endif
