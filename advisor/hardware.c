/* The hardware description shared by the probe, the profiles and saved probe reports:
 * initialisation, link-class names, GPU peak rates from compute capability, SM count and clock
 * (strategy reference 9.2) with a name-keyed table of data-sheet figures (9.1), and the
 * hardware YAML format (docs/hardware-format.md): load with file:line:col errors, emit as a
 * tree for --format yaml|json, and atomic save. Save -> load -> save is byte-identical.
 * Probing lives in probe*.c and the "which device do we plan for" questions in hw_device.c. */
#include "advisor/advisor_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HW_FORMAT_VERSION 1
#define GIB 1073741824.0 /* 2^30 B */
#define KIB 1024.0
#define MIB 1048576.0
#define GB 1e9 /* decimal, as data sheets and bandwidths */
#define TFLOPS 1e12
#define GFLOPS 1e9
/* Decimal-scaled doubles are written with this many significant digits so that the text read
 * back and scaled again prints the same text (save -> load -> save is byte-identical). */
#define HW_DEC_DIGITS 12

void hw_init(struct hardware *hw)
{
    memset(hw, 0, sizeof(*hw));
    hw->nodes = 1;
    for (int i = 0; i < HW_MAX_GPUS; i++)
        hw->link[i][i] = HW_LINK_SELF; /* a GPU's link to itself is known */
}

const char *hw_link_name(enum hw_link l)
{
    switch (l) {
    case HW_LINK_SELF:
        return "X";
    case HW_LINK_NVSWITCH:
        return "NVSwitch";
    case HW_LINK_NVLINK:
        return "NV"; /* callers append link_nvlinks: "NV12" */
    case HW_LINK_PIX:
        return "PIX";
    case HW_LINK_PXB:
        return "PXB";
    case HW_LINK_PHB:
        return "PHB";
    case HW_LINK_NODE:
        return "NODE";
    case HW_LINK_SYS:
        return "SYS";
    case HW_LINK_UNKNOWN:
        break;
    }
    return "n/a";
}

/* 9.3: NVLink and NVSwitch are fast; every PCIe path is slow until measured. */
bool hw_link_is_fast(enum hw_link l)
{
    return l == HW_LINK_NVSWITCH || l == HW_LINK_NVLINK;
}

/* ======================================================================== peaks */

/* Dense tensor FLOP per clock per SM (FP32 accumulate, data-centre/professional parts) and
 * CUDA-core FP32 lanes per SM, per compute capability: strategy reference 9.2 and
 * hardware-and-distributed.md 1.6. `tensor_clock_scale` turns NVML's max SM clock into the
 * data sheet's lower tensor boost clock: 0.924 on Hopper (1830/1980 MHz, as XLA), 0.934 on
 * Blackwell data centre (XLA); 1 where the max clock is the boost clock (A100 1410, T4 1590,
 * L40S 2520, L4 2040). */
struct arch_rate {
    int cc_major, cc_minor;
    double tensor_flop_per_clk_sm[HW_DT_COUNT]; /* index HW_DT_FP32 unused (CUDA cores) */
    int fp32_lanes;
    double tensor_clock_scale;
};

/*                                          fp32 tf32  bf16  fp16   fp8    int8 */
static const struct arch_rate arch_rates[] = {
    {7, 0, {0, 0, 0, 1024, 0, 0}, 64, 1.0},                   /* Volta */
    {7, 2, {0, 0, 0, 1024, 0, 0}, 64, 1.0},                   /* Volta (Xavier) */
    {7, 5, {0, 0, 0, 1024, 0, 2048}, 64, 1.0},                /* Turing */
    {8, 0, {0, 1024, 2048, 2048, 0, 4096}, 64, 1.0},          /* Ampere GA100 */
    {8, 6, {0, 512, 1024, 1024, 0, 2048}, 128, 1.0},          /* Ampere GA10x */
    {8, 7, {0, 512, 1024, 1024, 0, 2048}, 128, 1.0},          /* Ampere (Orin) */
    {8, 9, {0, 512, 1024, 1024, 2048, 2048}, 128, 1.0},       /* Ada */
    {9, 0, {0, 2048, 4096, 4096, 8192, 8192}, 128, 0.924},    /* Hopper */
    {10, 0, {0, 4096, 8192, 8192, 16384, 16384}, 128, 0.934}, /* Blackwell DC */
    {10, 3, {0, 4096, 8192, 8192, 16384, 16384}, 128, 0.934}, /* Blackwell DC (B300) */
    {12, 0, {0, 512, 1024, 1024, 2048, 2048}, 128, 1.0},      /* Blackwell GeForce/RTX */
    {12, 1, {0, 512, 1024, 1024, 2048, 2048}, 128, 1.0},
};

/* GeForce boards report a max SM clock far above the data sheet's boost clock (RTX 4090:
 * 3105 MHz vs 2520, 0.812; RTX 3090: 2100-2130 MHz vs 1695, 0.80). Scale the probed clock by
 * this before the formulas; an assumption derived from those two parts, not a published
 * constant. The known boards are in the name table below anyway. */
#define GEFORCE_CLOCK_SCALE 0.81

/* Data-sheet dense peaks in TFLOP/s (TOPS for int8), table 9.1, keyed by the exact NVML name
 * (compared without a leading "NVIDIA "). These win over the formulas: export variants and
 * parts whose probed clock is not the data sheet's are only right here. */
struct named_peaks {
    const char *nvml_name;
    double tflops[HW_DT_COUNT]; /* fp32 tf32 bf16 fp16 fp8 int8 */
    bool geforce;
};

static const struct named_peaks named_peaks[] = {
    {"NVIDIA A100-SXM4-40GB", {19.5, 156, 312, 312, 0, 624}, false},
    {"NVIDIA A100-SXM4-80GB", {19.5, 156, 312, 312, 0, 624}, false},
    {"NVIDIA A100-PCIE-40GB", {19.5, 156, 312, 312, 0, 624}, false},
    {"NVIDIA A100 80GB PCIe", {19.5, 156, 312, 312, 0, 624}, false},
    {"NVIDIA H100 80GB HBM3", {67, 494.7, 989.4, 989.4, 1979, 1979}, false},
    {"NVIDIA H100 PCIe", {51, 378, 756, 756, 1513, 1513}, false},
    {"NVIDIA H100 NVL", {60, 417.5, 835, 835, 1671, 1671}, false},
    {"NVIDIA H200", {67, 494.7, 989.4, 989.4, 1979, 1979}, false},
    {"NVIDIA B200", {75, 1100, 2250, 2250, 4500, 4500}, false},
    {"NVIDIA L4", {30.3, 60, 121, 121, 242.5, 242.5}, false},
    {"NVIDIA L40S", {91.6, 183, 362, 362, 733, 733}, false},
    /* A10G has no data sheet: A10 figures (9.1 marks them) */
    {"NVIDIA A10G", {31.2, 62.5, 125, 125, 0, 250}, false},
    {"NVIDIA A10", {31.2, 62.5, 125, 125, 0, 250}, false},
    {"Tesla T4", {8.1, 0, 0, 65, 0, 130}, false},
    {"Tesla V100-SXM2-16GB", {15.7, 0, 0, 125, 0, 0}, false},
    {"Tesla V100-SXM2-32GB", {15.7, 0, 0, 125, 0, 0}, false},
    {"Tesla V100-PCIE-16GB", {14, 0, 0, 112, 0, 0}, false},
    {"Tesla V100-PCIE-32GB", {14, 0, 0, 112, 0, 0}, false},
    /* GeForce: FP32-accumulate rates (half the FP16-accumulate ones), 9.1 notes */
    {"NVIDIA GeForce RTX 3090", {35.6, 35.6, 71, 71, 0, 284}, true},
    {"NVIDIA GeForce RTX 4090", {82.6, 82.6, 165.2, 165.2, 330.3, 660.6}, true},
};

static const char *strip_vendor(const char *name)
{
    return strncmp(name, "NVIDIA ", 7) == 0 ? name + 7 : name;
}

static const struct named_peaks *find_named_peaks(const char *name)
{
    if (!name || !*name)
        return NULL;
    for (size_t i = 0; i < sizeof(named_peaks) / sizeof(named_peaks[0]); i++)
        if (!strcmp(strip_vendor(name), strip_vendor(named_peaks[i].nvml_name)))
            return &named_peaks[i];
    return NULL;
}

/* Consumer boards: "GeForce" in the name, or "RTX <d>0<5-9>0" (RTX 2080, 3090, 4090, 5090),
 * which leaves the professional "RTX 4000 Ada", "RTX A6000" and "RTX 6000" out. */
static bool name_is_geforce(const char *name)
{
    if (strstr(name, "GeForce"))
        return true;
    for (const char *p = strstr(name, "RTX "); p; p = strstr(p + 1, "RTX ")) {
        const char *d = p + 4;
        if (d[0] >= '2' && d[0] <= '5' && d[1] == '0' && d[2] >= '5' && d[2] <= '9' &&
            d[3] == '0' && (d[4] == '\0' || d[4] == ' '))
            return true;
    }
    return false;
}

void hw_gpu_fill_peaks(struct hw_gpu *gpu)
{
    for (int i = 0; i < HW_DT_COUNT; i++)
        gpu->peak_flops[i] = 0;
    gpu->known &= ~(unsigned)HW_GPU_PEAK;
    if (name_is_geforce(gpu->name))
        gpu->geforce = true;

    const struct named_peaks *np = find_named_peaks(gpu->name);
    if (np) {
        for (int i = 0; i < HW_DT_COUNT; i++)
            gpu->peak_flops[i] = np->tflops[i] * TFLOPS;
        gpu->geforce = gpu->geforce || np->geforce;
        gpu->known |= HW_GPU_PEAK;
        return;
    }

    const unsigned need = HW_GPU_CC | HW_GPU_SMS | HW_GPU_SM_CLOCK;
    if ((gpu->known & need) != need || gpu->sm_count <= 0 || gpu->sm_clock_mhz <= 0)
        return;
    const struct arch_rate *ar = NULL;
    for (size_t i = 0; i < sizeof(arch_rates) / sizeof(arch_rates[0]); i++)
        if (arch_rates[i].cc_major == gpu->cc_major && arch_rates[i].cc_minor == gpu->cc_minor)
            ar = &arch_rates[i];
    if (!ar)
        return; /* unknown architecture: unknown, never another GPU's row (9.1 notes) */

    double clock_hz = gpu->sm_clock_mhz * 1e6;
    if (gpu->geforce)
        clock_hz *= GEFORCE_CLOCK_SCALE;
    /* 9.2: CUDA-core FP32 = SMs x 2 (FMA) x lanes x clock */
    gpu->peak_flops[HW_DT_FP32] = gpu->sm_count * 2.0 * ar->fp32_lanes * clock_hz;
    /* 9.2: tensor = SMs x FLOP/clk/SM x clock x tensor clock scale */
    for (int dt = HW_DT_TF32; dt < HW_DT_COUNT; dt++) {
        double flops =
            gpu->sm_count * ar->tensor_flop_per_clk_sm[dt] * clock_hz * ar->tensor_clock_scale;
        /* GeForce: FP32 accumulate at half rate for the float types; int8 is full rate */
        if (gpu->geforce && dt != HW_DT_INT8)
            flops *= 0.5;
        gpu->peak_flops[dt] = flops;
    }
    gpu->known |= HW_GPU_PEAK;
}

/* ======================================================================== YAML: words */

static const char *const isa_words[] = {
    "sse4.2",      "avx",      "avx2",     "fma",      "f16c",     "avx512f", "avx512_bf16",
    "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "neon",    NULL};
static const char *const kind_words[] = {"profile", "report", NULL};
/* links.class, in enum hw_link order from HW_LINK_NVSWITCH */
static const char *const class_words[] = {"nvswitch", "nvlink", "pix", "pxb",
                                          "phb",      "node",   "sys", NULL};

static const char *const top_keys[] = {"scalewise_hardware",
                                       "name",
                                       "description",
                                       "kind",
                                       "gpu_status",
                                       "cpu",
                                       "memory",
                                       "gpu",
                                       "gpus",
                                       "links",
                                       "node",
                                       "cluster",
                                       "software",
                                       NULL};
static const char *const cpu_keys[] = {"model",
                                       "vendor",
                                       "family",
                                       "model_id",
                                       "sockets",
                                       "cores_per_socket",
                                       "threads_per_core",
                                       "logical_cpus",
                                       "usable_cpus",
                                       "isa",
                                       "l1d_kib",
                                       "l2_kib",
                                       "l3_mib",
                                       "numa_nodes",
                                       "clock_ghz",
                                       "fp32_flop_per_cycle",
                                       "peak_fp32_gflops_per_core",
                                       "peak_fp32_tflops",
                                       "peak_bf16_tflops",
                                       "measured_fp32_gflops",
                                       "measured_fp32_gflops_1core",
                                       "triad_gbps",
                                       NULL};
static const char *const mem_keys[] = {"total_gib",  "available_gib",  "cgroup_limit_gib",
                                       "usable_gib", "bandwidth_gbps", NULL};
/* per-GPU keys; the `gpu` form adds "count" (first entry) */
static const char *const gpu_keys[] = {"count",
                                       "name",
                                       "bus_id",
                                       "uuid",
                                       "compute_capability",
                                       "sm_count",
                                       "sm_clock_mhz",
                                       "memory_nominal_gb",
                                       "memory_gib",
                                       "memory_free_gib",
                                       "mem_clock_mhz",
                                       "bus_width_bits",
                                       "memory_bandwidth_gbps",
                                       "pcie_gen",
                                       "pcie_width",
                                       "nvlinks",
                                       "nvlink_gbps",
                                       "geforce",
                                       "integrated",
                                       "peak_tflops",
                                       "power_limit_w",
                                       "temperature_c",
                                       NULL};
static const char *const link_keys[] = {"class", "nvlinks", "matrix", NULL};
static const char *const node_keys[] = {"gpus_per_node", "intra_gbps", "pcie_gbps", "nvme_gbps",
                                        NULL};
static const char *const cluster_keys[] = {"nodes", "inter_node_gbps", "nic_gbps_per_gpu", NULL};
static const char *const software_keys[] = {"driver_version", "nccl_available", "nccl_version",
                                            "mpi_available",  "mpi_version",    NULL};

/* ======================================================================== YAML: load helpers */

/* Optional number scaled into a double (`*out = value * scale`); sets `bit` when present. */
static int opt_scaled(struct ydoc *d, yaml_node_t *map, const char *key, double min, double max,
                      double scale, const char *sec, double *out, unsigned *known, unsigned bit,
                      struct sw_err *err)
{
    if (!ydoc_get(d, map, key))
        return 0;
    double v = 0;
    int rc = ydoc_opt_double(d, map, key, min, max, sec, &v, err);
    if (rc < 0)
        return rc;
    *out = v * scale;
    if (known)
        *known |= bit;
    return 0;
}

/* Optional size in `unit` bytes (GiB, KiB, decimal GB) into a byte count. */
static int opt_bytes(struct ydoc *d, yaml_node_t *map, const char *key, double min, double max,
                     double unit, const char *sec, uint64_t *out, unsigned *known, unsigned bit,
                     struct sw_err *err)
{
    double v = 0;
    bool present = ydoc_get(d, map, key) != NULL;
    int rc = opt_scaled(d, map, key, min, max, unit, sec, &v, known, bit, err);
    if (rc == 0 && present)
        *out = (uint64_t)llround(v);
    return rc;
}

static int opt_i32(struct ydoc *d, yaml_node_t *map, const char *key, int min, int max,
                   const char *sec, int *out, unsigned *known, unsigned bit, struct sw_err *err)
{
    if (!ydoc_get(d, map, key))
        return 0;
    int rc = ydoc_opt_i32(d, map, key, min, max, sec, out, err);
    if (rc == 0 && known)
        *known |= bit;
    return rc;
}

/* A section that must be a mapping with only the allowed keys. */
static int section_map(struct ydoc *d, yaml_node_t *n, const char *const *keys, const char *sec,
                       struct sw_err *err)
{
    char what[96];
    snprintf(what, sizeof(what), "section '%s'", sec);
    int rc = ydoc_expect_map(d, n, what, err);
    if (rc < 0)
        return rc;
    return ydoc_check_keys(d, n, keys, sec, err);
}

/* "9.0" -> 9, 0 (plain or quoted scalar). */
static int parse_cc(struct ydoc *d, yaml_node_t *n, const char *what, int *major, int *minor,
                    struct sw_err *err)
{
    const char *s = (n && n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value : "";
    char *end = NULL;
    long ma = strtol(s, &end, 10);
    bool ok = end != s && *end == '.' && end[1] >= '0' && end[1] <= '9' && end[2] == '\0';
    if (!ok || !n || n->type != YAML_SCALAR_NODE)
        return ydoc_err(d, n, SW_EINVAL, err,
                        "'%s': expected a compute capability such as \"9.0\", got '%s'", what, s);
    if (ma < 1 || ma > 99)
        return ydoc_err(d, n, SW_ERANGE, err,
                        "'%s': major version %ld is out of range; expected 1 to 99", what, ma);
    *major = (int)ma;
    *minor = end[1] - '0';
    return 0;
}

/* ======================================================================== YAML: load sections */

static int load_cpu(struct ydoc *d, yaml_node_t *m, struct hw_cpu *c, struct sw_err *err)
{
    const char *s = "cpu";
    int rc = section_map(d, m, cpu_keys, s, err);
    if (rc < 0)
        return rc;
    if (ydoc_get(d, m, "model")) {
        if ((rc = ydoc_opt_str(d, m, "model", s, c->model, sizeof(c->model), err)) < 0)
            return rc;
        c->known |= HW_CPU_MODEL;
    }
    if ((rc = ydoc_opt_str(d, m, "vendor", s, c->vendor, sizeof(c->vendor), err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "family", 0, 4095, s, &c->family, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "model_id", 0, 4095, s, &c->model_id, err)) < 0)
        return rc;

    /* topology: sockets and cores_per_socket together; the rest derived when absent */
    bool has_sockets = ydoc_get(d, m, "sockets") != NULL;
    bool has_cores = ydoc_get(d, m, "cores_per_socket") != NULL;
    if (has_sockets != has_cores)
        return ydoc_err(d, ydoc_get_key(d, m, has_sockets ? "sockets" : "cores_per_socket"),
                        SW_EINVAL, err,
                        "missing key '%s' in 'cpu' (sockets and cores_per_socket go together)",
                        has_sockets ? "cores_per_socket" : "sockets");
    c->threads_per_core = 1;
    if ((rc = ydoc_opt_i32(d, m, "sockets", 1, 64, s, &c->sockets, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "cores_per_socket", 1, 4096, s, &c->cores_per_socket, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "threads_per_core", 1, 8, s, &c->threads_per_core, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "logical_cpus", 1, 1 << 20, s, &c->logical_cpus, err)) < 0 ||
        (rc = ydoc_opt_i32(d, m, "usable_cpus", 1, 1 << 20, s, &c->usable_cpus, err)) < 0)
        return rc;
    if (has_sockets) {
        c->known |= HW_CPU_TOPOLOGY;
        if (!c->logical_cpus)
            c->logical_cpus = c->sockets * c->cores_per_socket * c->threads_per_core;
        if (!c->usable_cpus)
            c->usable_cpus = c->logical_cpus;
    } else {
        c->threads_per_core = 0;
    }

    yaml_node_t *isa = ydoc_get(d, m, "isa");
    if (isa) {
        if ((rc = ydoc_expect_seq(d, isa, "'cpu.isa'", err)) < 0)
            return rc;
        for (yaml_node_item_t *it = isa->data.sequence.items.start;
             it < isa->data.sequence.items.top; it++) {
            int w = 0;
            rc = ydoc_word(d, yaml_document_get_node(&d->doc, *it), isa_words, "cpu.isa", &w, err);
            if (rc < 0)
                return rc;
            c->isa |= 1u << w;
        }
        c->known |= HW_CPU_ISA;
    }

    if ((rc = opt_bytes(d, m, "l1d_kib", 0, 1 << 20, KIB, s, &c->l1d_bytes, &c->known,
                        HW_CPU_CACHES, err)) < 0 ||
        (rc = opt_bytes(d, m, "l2_kib", 0, 1 << 24, KIB, s, &c->l2_bytes, &c->known, HW_CPU_CACHES,
                        err)) < 0 ||
        (rc = opt_bytes(d, m, "l3_mib", 0, 1 << 20, MIB, s, &c->l3_bytes, &c->known, HW_CPU_CACHES,
                        err)) < 0 ||
        (rc = opt_i32(d, m, "numa_nodes", 1, 4096, s, &c->numa_nodes, &c->known, HW_CPU_NUMA,
                      err)) < 0 ||
        (rc = opt_scaled(d, m, "clock_ghz", 0.01, 20, 1e9, s, &c->clock_hz, &c->known, HW_CPU_CLOCK,
                         err)) < 0 ||
        (rc = opt_scaled(d, m, "fp32_flop_per_cycle", 0, 8192, 1, s, &c->fp32_flop_per_cycle,
                         &c->known, HW_CPU_PEAK, err)) < 0 ||
        (rc = opt_scaled(d, m, "peak_fp32_gflops_per_core", 0, 1e6, GFLOPS, s,
                         &c->peak_fp32_flops_per_core, &c->known, HW_CPU_PEAK, err)) < 0 ||
        (rc = opt_scaled(d, m, "peak_fp32_tflops", 0, 1e6, TFLOPS, s, &c->peak_fp32_flops,
                         &c->known, HW_CPU_PEAK, err)) < 0 ||
        (rc = opt_scaled(d, m, "peak_bf16_tflops", 0, 1e6, TFLOPS, s, &c->peak_bf16_flops,
                         &c->known, HW_CPU_PEAK, err)) < 0 ||
        (rc = opt_scaled(d, m, "measured_fp32_gflops", 0, 1e7, GFLOPS, s, &c->measured_fp32_flops,
                         &c->known, HW_CPU_MEASURED, err)) < 0 ||
        (rc = opt_scaled(d, m, "measured_fp32_gflops_1core", 0, 1e6, GFLOPS, s,
                         &c->measured_fp32_flops_1core, &c->known, HW_CPU_MEASURED, err)) < 0 ||
        (rc = opt_scaled(d, m, "triad_gbps", 0, 1e5, GB, s, &c->triad_bytes_per_s, &c->known,
                         HW_CPU_TRIAD, err)) < 0)
        return rc;
    return 0;
}

static int load_memory(struct ydoc *d, yaml_node_t *m, struct hardware *hw, struct sw_err *err)
{
    const char *s = "memory";
    struct hw_memory *mem = &hw->mem;
    int rc = section_map(d, m, mem_keys, s, err);
    if (rc < 0)
        return rc;
    const double max_gib = 1048576; /* 1 PiB */
    bool has_usable = ydoc_get(d, m, "usable_gib") != NULL;
    if ((rc = opt_bytes(d, m, "total_gib", 0.001, max_gib, GIB, s, &mem->total_bytes, &mem->known,
                        HW_MEM_TOTAL, err)) < 0 ||
        (rc = opt_bytes(d, m, "available_gib", 0, max_gib, GIB, s, &mem->available_bytes,
                        &mem->known, HW_MEM_AVAILABLE, err)) < 0 ||
        (rc = opt_bytes(d, m, "cgroup_limit_gib", 0.001, max_gib, GIB, s, &mem->cgroup_limit_bytes,
                        &mem->known, HW_MEM_CGROUP, err)) < 0 ||
        (rc = opt_bytes(d, m, "usable_gib", 0, max_gib, GIB, s, &mem->usable_bytes, NULL, 0, err)) <
            0 ||
        (rc = opt_scaled(d, m, "bandwidth_gbps", 0, 1e5, GB, s, &hw->host_mem_bytes_per_s, NULL, 0,
                         err)) < 0)
        return rc;
    if (!has_usable) {
        /* usable = available (else total), capped by the cgroup limit: what the probe does */
        mem->usable_bytes =
            (mem->known & HW_MEM_AVAILABLE) ? mem->available_bytes : mem->total_bytes;
        if ((mem->known & HW_MEM_CGROUP) && mem->cgroup_limit_bytes < mem->usable_bytes)
            mem->usable_bytes = mem->cgroup_limit_bytes;
    }
    return 0;
}

static int load_peaks(struct ydoc *d, yaml_node_t *m, const char *sec, struct hw_gpu *g,
                      struct sw_err *err)
{
    const char *keys[HW_DT_COUNT + 1];
    for (int i = 0; i < HW_DT_COUNT; i++)
        keys[i] = hw_dtype_name((enum hw_dtype)i);
    keys[HW_DT_COUNT] = NULL;
    char s[64];
    snprintf(s, sizeof(s), "%s.peak_tflops", sec);
    int rc = section_map(d, m, keys, s, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < HW_DT_COUNT; i++)
        if ((rc = opt_scaled(d, m, keys[i], 0, 1e6, TFLOPS, s, &g->peak_flops[i], NULL, 0, err)) <
            0)
            return rc;
    g->known |= HW_GPU_PEAK;
    return 0;
}

/* One GPU's keys (both the `gpu` form and the items of `gpus`). `require_name`: the `gpu`
 * form describes a type and must name it. */
static int load_gpu(struct ydoc *d, yaml_node_t *m, const char *s, bool require_name,
                    struct hw_gpu *g, struct sw_err *err)
{
    int rc;
    if (require_name && !ydoc_require(d, m, "name", s, err))
        return SW_EINVAL;
    if (ydoc_get(d, m, "name")) {
        if ((rc = ydoc_opt_str(d, m, "name", s, g->name, sizeof(g->name), err)) < 0)
            return rc;
        g->known |= HW_GPU_NAME;
    }
    if (ydoc_get(d, m, "bus_id")) {
        if ((rc = ydoc_opt_str(d, m, "bus_id", s, g->bus_id, sizeof(g->bus_id), err)) < 0)
            return rc;
        g->known |= HW_GPU_BUS_ID;
    }
    if ((rc = ydoc_opt_str(d, m, "uuid", s, g->uuid, sizeof(g->uuid), err)) < 0)
        return rc;
    yaml_node_t *cc = ydoc_get(d, m, "compute_capability");
    if (cc) {
        char what[96];
        snprintf(what, sizeof(what), "%s.compute_capability", s);
        if ((rc = parse_cc(d, cc, what, &g->cc_major, &g->cc_minor, err)) < 0)
            return rc;
        g->known |= HW_GPU_CC;
    }
    const double max_gib = 65536;
    if ((rc = opt_i32(d, m, "sm_count", 1, 100000, s, &g->sm_count, &g->known, HW_GPU_SMS, err)) <
            0 ||
        (rc = opt_i32(d, m, "sm_clock_mhz", 1, 100000, s, &g->sm_clock_mhz, &g->known,
                      HW_GPU_SM_CLOCK, err)) < 0 ||
        (rc = opt_bytes(d, m, "memory_nominal_gb", 0.001, max_gib, GB, s, &g->mem_nominal_bytes,
                        NULL, 0, err)) < 0 ||
        (rc = opt_bytes(d, m, "memory_gib", 0.001, max_gib, GIB, s, &g->mem_total_bytes, &g->known,
                        HW_GPU_MEM_TOTAL, err)) < 0 ||
        (rc = opt_bytes(d, m, "memory_free_gib", 0, max_gib, GIB, s, &g->mem_free_bytes, &g->known,
                        HW_GPU_MEM_FREE, err)) < 0 ||
        (rc = opt_i32(d, m, "mem_clock_mhz", 1, 1000000, s, &g->mem_clock_mhz, &g->known,
                      HW_GPU_MEM_CLOCK, err)) < 0 ||
        (rc = opt_i32(d, m, "bus_width_bits", 1, 1 << 20, s, &g->bus_width_bits, NULL, 0, err)) <
            0 ||
        (rc = opt_scaled(d, m, "memory_bandwidth_gbps", 0.001, 1e6, GB, s, &g->mem_bw_bytes_per_s,
                         &g->known, HW_GPU_MEM_BW, err)) < 0 ||
        (rc = opt_i32(d, m, "pcie_gen", 1, 9, s, &g->pcie_gen, &g->known, HW_GPU_PCIE, err)) < 0 ||
        (rc = opt_i32(d, m, "pcie_width", 1, 64, s, &g->pcie_width, &g->known, HW_GPU_PCIE, err)) <
            0 ||
        (rc = opt_i32(d, m, "nvlinks", 0, 256, s, &g->nvlinks, &g->known, HW_GPU_NVLINK, err)) <
            0 ||
        (rc = opt_scaled(d, m, "nvlink_gbps", 0, 1e5, GB, s, &g->nvlink_bytes_per_s, &g->known,
                         HW_GPU_NVLINK, err)) < 0 ||
        (rc = opt_scaled(d, m, "power_limit_w", 0, 1e5, 1, s, &g->power_limit_w, &g->known,
                         HW_GPU_POWER, err)) < 0 ||
        (rc = opt_scaled(d, m, "temperature_c", -100, 300, 1, s, &g->temperature_c, &g->known,
                         HW_GPU_TEMP, err)) < 0)
        return rc;
    if (g->mem_free_bytes > g->mem_total_bytes && (g->known & HW_GPU_MEM_TOTAL))
        return ydoc_err(d, ydoc_get(d, m, "memory_free_gib"), SW_ERANGE, err,
                        "'%s.memory_free_gib' is larger than '%s.memory_gib'", s, s);
    g->geforce = name_is_geforce(g->name); /* default when the key is absent */
    if ((rc = ydoc_opt_bool(d, m, "geforce", s, &g->geforce, err)) < 0 ||
        (rc = ydoc_opt_bool(d, m, "integrated", s, &g->integrated, err)) < 0)
        return rc;
    yaml_node_t *pk = ydoc_get(d, m, "peak_tflops");
    if (pk) {
        if ((rc = load_peaks(d, pk, s, g, err)) < 0)
            return rc;
    } else {
        bool geforce = g->geforce;
        hw_gpu_fill_peaks(g); /* derived from CC, SMs and clock, or the name table */
        g->geforce = geforce; /* the file's word stands */
    }
    return 0;
}

static int load_gpu_section(struct ydoc *d, yaml_node_t *root, struct hardware *hw,
                            struct sw_err *err)
{
    yaml_node_t *one = ydoc_get(d, root, "gpu");
    yaml_node_t *list = ydoc_get(d, root, "gpus");
    int rc;
    if (one && list)
        return ydoc_err(d, ydoc_get_key(d, root, "gpus"), SW_EINVAL, err,
                        "give either 'gpu' (one GPU type and a count) or 'gpus' (a list), "
                        "not both");
    if (one) {
        if ((rc = section_map(d, one, gpu_keys, "gpu", err)) < 0)
            return rc;
        if (!ydoc_require(d, one, "count", "gpu", err))
            return SW_EINVAL;
        if ((rc = ydoc_opt_i32(d, one, "count", 1, HW_MAX_GPUS, "gpu", &hw->n_gpus, err)) < 0)
            return rc;
        if ((rc = load_gpu(d, one, "gpu", true, &hw->gpus[0], err)) < 0)
            return rc;
        for (int i = 1; i < hw->n_gpus; i++)
            hw->gpus[i] = hw->gpus[0];
    } else if (list) {
        if ((rc = ydoc_expect_seq(d, list, "'gpus'", err)) < 0)
            return rc;
        int n = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
        if (n < 1 || n > HW_MAX_GPUS)
            return ydoc_err(d, list, SW_ERANGE, err, "'gpus': %d GPUs listed; expected 1 to %d", n,
                            HW_MAX_GPUS);
        for (int i = 0; i < n; i++) {
            yaml_node_t *item = yaml_document_get_node(&d->doc, list->data.sequence.items.start[i]);
            char s[32];
            snprintf(s, sizeof(s), "gpus[%d]", i);
            if ((rc = section_map(d, item, gpu_keys + 1, s, err)) < 0 ||
                (rc = load_gpu(d, item, s, false, &hw->gpus[i], err)) < 0)
                return rc;
        }
        hw->n_gpus = n;
    }
    for (int i = 0; i < hw->n_gpus; i++)
        hw->link[i][i] = HW_LINK_SELF;
    return 0;
}

/* A matrix cell as hw_link_name spells it: X, NVSwitch, NV<n>, PIX, PXB, PHB, NODE, SYS, n/a. */
static bool parse_link_cell(const char *s, enum hw_link *l, int *nvlinks)
{
    static const struct {
        const char *word;
        enum hw_link link;
    } cells[] = {{"X", HW_LINK_SELF},  {"NVSwitch", HW_LINK_NVSWITCH}, {"PIX", HW_LINK_PIX},
                 {"PXB", HW_LINK_PXB}, {"PHB", HW_LINK_PHB},           {"NODE", HW_LINK_NODE},
                 {"SYS", HW_LINK_SYS}, {"n/a", HW_LINK_UNKNOWN}};
    *nvlinks = 0;
    for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++)
        if (!strcmp(s, cells[i].word)) {
            *l = cells[i].link;
            return true;
        }
    if (s[0] == 'N' && s[1] == 'V' && s[2] >= '1' && s[2] <= '9') {
        char *end = NULL;
        long n = strtol(s + 2, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 256) {
            *l = HW_LINK_NVLINK;
            *nvlinks = (int)n;
            return true;
        }
    }
    return false;
}

static int load_links(struct ydoc *d, yaml_node_t *m, struct hardware *hw, struct sw_err *err)
{
    int rc = section_map(d, m, link_keys, "links", err);
    if (rc < 0)
        return rc;
    yaml_node_t *cls = ydoc_get(d, m, "class");
    yaml_node_t *mat = ydoc_get(d, m, "matrix");
    if ((cls != NULL) == (mat != NULL))
        return ydoc_err(d, m, SW_EINVAL, err,
                        "'links': give either 'class' (every pair alike) or 'matrix'");
    int n = hw->n_gpus;
    if (cls) {
        int w = 0;
        if ((rc = ydoc_word(d, cls, class_words, "links.class", &w, err)) < 0)
            return rc;
        enum hw_link l = (enum hw_link)(HW_LINK_NVSWITCH + w);
        int nvl = 0;
        if (l == HW_LINK_NVLINK) {
            if (!ydoc_require(d, m, "nvlinks", "links", err))
                return SW_EINVAL;
        } else if (ydoc_get(d, m, "nvlinks")) {
            return ydoc_err(d, ydoc_get_key(d, m, "nvlinks"), SW_EINVAL, err,
                            "'links.nvlinks' only goes with class 'nvlink'");
        }
        if ((rc = ydoc_opt_i32(d, m, "nvlinks", 1, 256, "links", &nvl, err)) < 0)
            return rc;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (i != j) {
                    hw->link[i][j] = l;
                    hw->link_nvlinks[i][j] = nvl;
                }
        return 0;
    }
    if (ydoc_get(d, m, "nvlinks"))
        return ydoc_err(d, ydoc_get_key(d, m, "nvlinks"), SW_EINVAL, err,
                        "'links.nvlinks' only goes with class 'nvlink' (a matrix says NV<n>)");
    if ((rc = ydoc_expect_seq(d, mat, "'links.matrix'", err)) < 0)
        return rc;
    int rows = (int)(mat->data.sequence.items.top - mat->data.sequence.items.start);
    if (rows != n)
        return ydoc_err(d, mat, SW_EINVAL, err,
                        "'links.matrix': %d rows; expected %d (one per GPU)", rows, n);
    /* Where each cell is, for errors: a row is one string ("X NV12 SYS", as nvidia-smi topo
     * -m prints it) or a list of cells. */
    struct cell_pos {
        int line, col;
    } pos[HW_MAX_GPUS][HW_MAX_GPUS];
    for (int i = 0; i < n; i++) {
        yaml_node_t *row = yaml_document_get_node(&d->doc, mat->data.sequence.items.start[i]);
        char cells[HW_MAX_GPUS][16];
        int cols = 0;
        if (row->type == YAML_SCALAR_NODE) {
            const char *t = (const char *)row->data.scalar.value;
            bool quoted = row->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                          row->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
            for (const char *q = t; *q;) {
                while (*q == ' ')
                    q++;
                if (!*q)
                    break;
                size_t k = strcspn(q, " ");
                if (cols == HW_MAX_GPUS) {
                    cols++;
                    break;
                }
                snprintf(cells[cols], sizeof(cells[cols]), "%.*s", (int)(k < 15 ? k : 15), q);
                pos[i][cols].line = (int)row->start_mark.line + 1;
                pos[i][cols].col = (int)row->start_mark.column + 1 + (int)(q - t) + quoted;
                cols++;
                q += k;
            }
        } else if (row->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = row->data.sequence.items.start;
                 it < row->data.sequence.items.top; it++) {
                yaml_node_t *c = yaml_document_get_node(&d->doc, *it);
                if (cols == HW_MAX_GPUS) {
                    cols++;
                    break;
                }
                snprintf(cells[cols], sizeof(cells[cols]), "%s",
                         c->type == YAML_SCALAR_NODE ? (const char *)c->data.scalar.value : "?");
                pos[i][cols].line = (int)c->start_mark.line + 1;
                pos[i][cols].col = (int)c->start_mark.column + 1;
                cols++;
            }
        } else {
            return ydoc_err(d, row, SW_EINVAL, err,
                            "'links.matrix[%d]': expected a row such as \"X NV12 SYS\"", i);
        }
        if (cols != n)
            return ydoc_err(d, row, SW_EINVAL, err,
                            "'links.matrix[%d]': %d entries; expected %d (one per GPU)", i, cols,
                            n);
        for (int j = 0; j < n; j++) {
            enum hw_link l = HW_LINK_UNKNOWN;
            int nvl = 0;
            if (!parse_link_cell(cells[j], &l, &nvl))
                return sw_err_at(err, SW_EINVAL, d->file, pos[i][j].line, pos[i][j].col,
                                 "'links.matrix[%d][%d]': unknown link '%s'; expected X, "
                                 "NVSwitch, NV<links>, PIX, PXB, PHB, NODE, SYS or n/a",
                                 i, j, cells[j]);
            if ((i == j) != (l == HW_LINK_SELF))
                return sw_err_at(err, SW_EINVAL, d->file, pos[i][j].line, pos[i][j].col,
                                 "'links.matrix[%d][%d]': 'X' belongs on the diagonal and only "
                                 "there, got '%s'",
                                 i, j, cells[j]);
            hw->link[i][j] = l;
            hw->link_nvlinks[i][j] = nvl;
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (hw->link[i][j] != hw->link[j][i] ||
                hw->link_nvlinks[i][j] != hw->link_nvlinks[j][i])
                return sw_err_at(err, SW_EINVAL, d->file, pos[i][j].line, pos[i][j].col,
                                 "'links.matrix[%d][%d]' differs from [%d][%d]; the matrix "
                                 "must be symmetric",
                                 i, j, j, i);
    return 0;
}

static int load_node(struct ydoc *d, yaml_node_t *m, struct hardware *hw, struct sw_err *err)
{
    const char *s = "node";
    int rc = section_map(d, m, node_keys, s, err);
    if (rc < 0)
        return rc;
    yaml_node_t *gpn = ydoc_get(d, m, "gpus_per_node");
    if (gpn) {
        int v = 0;
        if ((rc = ydoc_opt_i32(d, m, "gpus_per_node", 0, HW_MAX_GPUS, s, &v, err)) < 0)
            return rc;
        if (v != hw->n_gpus)
            return ydoc_err(d, gpn, SW_EINVAL, err,
                            "'node.gpus_per_node' is %d, but the %s %d GPU%s", v,
                            hw->n_gpus ? "gpu section describes" : "file describes", hw->n_gpus,
                            hw->n_gpus == 1 ? "" : "s");
    }
    if ((rc = opt_scaled(d, m, "intra_gbps", 0, 1e5, GB, s, &hw->intra_bytes_per_s, NULL, 0, err)) <
            0 ||
        (rc = opt_scaled(d, m, "pcie_gbps", 0, 1e5, GB, s, &hw->pcie_bytes_per_s, NULL, 0, err)) <
            0 ||
        (rc = opt_scaled(d, m, "nvme_gbps", 0, 1e5, GB, s, &hw->nvme_bytes_per_s, NULL, 0, err)) <
            0)
        return rc;
    return 0;
}

static int load_cluster(struct ydoc *d, yaml_node_t *m, struct hardware *hw, struct sw_err *err)
{
    const char *s = "cluster";
    int rc = section_map(d, m, cluster_keys, s, err);
    if (rc < 0)
        return rc;
    if ((rc = ydoc_opt_i32(d, m, "nodes", 1, 1000000, s, &hw->nodes, err)) < 0)
        return rc;
    yaml_node_t *per_gpu = ydoc_get(d, m, "nic_gbps_per_gpu");
    if (per_gpu && ydoc_get(d, m, "inter_node_gbps"))
        return ydoc_err(d, ydoc_get_key(d, m, "nic_gbps_per_gpu"), SW_EINVAL, err,
                        "give either 'cluster.inter_node_gbps' (per node) or "
                        "'cluster.nic_gbps_per_gpu', not both");
    if (per_gpu) {
        if (hw->n_gpus == 0)
            return ydoc_err(d, ydoc_get_key(d, m, "nic_gbps_per_gpu"), SW_EINVAL, err,
                            "'cluster.nic_gbps_per_gpu' needs GPUs; use 'inter_node_gbps'");
        double v = 0;
        if ((rc = ydoc_opt_double(d, m, "nic_gbps_per_gpu", 0, 1e5, s, &v, err)) < 0)
            return rc;
        hw->inter_bytes_per_s = v * GB * hw->n_gpus; /* one NIC per GPU (9.3) */
        return 0;
    }
    return opt_scaled(d, m, "inter_node_gbps", 0, 1e6, GB, s, &hw->inter_bytes_per_s, NULL, 0, err);
}

static int load_software(struct ydoc *d, yaml_node_t *m, struct hardware *hw, struct sw_err *err)
{
    const char *s = "software";
    int rc = section_map(d, m, software_keys, s, err);
    if (rc < 0)
        return rc;
    if ((rc = ydoc_opt_str(d, m, "driver_version", s, hw->driver_version,
                           sizeof(hw->driver_version), err)) < 0 ||
        (rc = ydoc_opt_bool(d, m, "nccl_available", s, &hw->nccl_available, err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "nccl_version", s, hw->nccl_version, sizeof(hw->nccl_version),
                           err)) < 0 ||
        (rc = ydoc_opt_bool(d, m, "mpi_available", s, &hw->mpi_available, err)) < 0 ||
        (rc = ydoc_opt_str(d, m, "mpi_version", s, hw->mpi_version, sizeof(hw->mpi_version), err)) <
            0)
        return rc;
    return 0;
}

static int load_doc(struct ydoc *d, struct hardware *hw, struct sw_err *err)
{
    yaml_node_t *root = ydoc_root(d);
    int rc = ydoc_expect_map(d, root, "hardware file", err);
    if (rc < 0)
        return rc;
    if ((rc = ydoc_check_keys(d, root, top_keys, "hardware", err)) < 0)
        return rc;
    yaml_node_t *ver = ydoc_require(d, root, "scalewise_hardware", "", err);
    if (!ver)
        return SW_EINVAL;
    int64_t v = 0;
    if ((rc = ydoc_int(d, ver, 0, INT32_MAX, "scalewise_hardware", &v, err)) < 0)
        return rc;
    if (v != HW_FORMAT_VERSION)
        return ydoc_err(d, ver, SW_EINVAL, err,
                        "unsupported hardware format version %lld; this build reads version %d",
                        (long long)v, HW_FORMAT_VERSION);
    if (!ydoc_require(d, root, "name", "", err))
        return SW_EINVAL;
    if ((rc = ydoc_opt_str(d, root, "name", "", hw->name, sizeof(hw->name), err)) < 0 ||
        (rc = ydoc_opt_str(d, root, "description", "", hw->description, sizeof(hw->description),
                           err)) < 0 ||
        (rc = ydoc_opt_str(d, root, "gpu_status", "", hw->gpu_status, sizeof(hw->gpu_status),
                           err)) < 0)
        return rc;
    hw->source = HW_SRC_PROFILE;
    yaml_node_t *kind = ydoc_get(d, root, "kind");
    if (kind) {
        int k = 0;
        if ((rc = ydoc_word(d, kind, kind_words, "kind", &k, err)) < 0)
            return rc;
        hw->source = k == 0 ? HW_SRC_PROFILE : HW_SRC_REPORT;
    }
    yaml_node_t *n;
    if ((n = ydoc_get(d, root, "cpu")) && (rc = load_cpu(d, n, &hw->cpu, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "memory")) && (rc = load_memory(d, n, hw, err)) < 0)
        return rc;
    if ((rc = load_gpu_section(d, root, hw, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "links"))) {
        if (hw->n_gpus == 0)
            return ydoc_err(d, ydoc_get_key(d, root, "links"), SW_EINVAL, err,
                            "'links' given, but the node has no GPUs");
        if ((rc = load_links(d, n, hw, err)) < 0)
            return rc;
    }
    if ((n = ydoc_get(d, root, "node")) && (rc = load_node(d, n, hw, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "cluster")) && (rc = load_cluster(d, n, hw, err)) < 0)
        return rc;
    if ((n = ydoc_get(d, root, "software")) && (rc = load_software(d, n, hw, err)) < 0)
        return rc;
    return 0;
}

int hw_load_string(const char *yaml, size_t len, const char *name_for_errors, struct hardware *hw,
                   struct sw_err *err)
{
    struct ydoc d;
    int rc = ydoc_load(&d, yaml, len, name_for_errors, err);
    if (rc < 0)
        return rc;
    /* Load into a scratch struct so that a failure leaves the caller's untouched. */
    struct hardware *tmp = sw_xmalloc(sizeof(*tmp));
    hw_init(tmp);
    rc = load_doc(&d, tmp, err);
    if (rc == 0)
        *hw = *tmp;
    free(tmp);
    ydoc_release(&d);
    return rc;
}

int hw_load_file(const char *path, struct hardware *hw, struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(path, 4u << 20, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = hw_load_string(text, len, path, hw, err);
    free(text);
    return rc;
}

/* ======================================================================== YAML: emit */

static void emit_dec(struct sw_emit *e, const char *key, double v)
{
    sw_emit_num_prec(e, key, v, HW_DEC_DIGITS);
}

static void emit_cpu(struct sw_emit *e, const struct hw_cpu *c)
{
    if (!c->known)
        return;
    sw_emit_map_begin(e, "cpu");
    if (c->known & HW_CPU_MODEL)
        sw_emit_str(e, "model", c->model);
    if (c->vendor[0])
        sw_emit_str(e, "vendor", c->vendor);
    if (c->family)
        sw_emit_i64(e, "family", c->family);
    if (c->model_id)
        sw_emit_i64(e, "model_id", c->model_id);
    if (c->known & HW_CPU_TOPOLOGY) {
        sw_emit_i64(e, "sockets", c->sockets);
        sw_emit_i64(e, "cores_per_socket", c->cores_per_socket);
        sw_emit_i64(e, "threads_per_core", c->threads_per_core);
        sw_emit_i64(e, "logical_cpus", c->logical_cpus);
        sw_emit_i64(e, "usable_cpus", c->usable_cpus);
    }
    if (c->known & HW_CPU_ISA) {
        sw_emit_list_begin(e, "isa");
        for (int i = 0; isa_words[i]; i++)
            if (c->isa & (1u << i))
                sw_emit_str(e, NULL, isa_words[i]);
        sw_emit_list_end(e);
    }
    if (c->known & HW_CPU_CACHES) {
        if (c->l1d_bytes)
            sw_emit_num(e, "l1d_kib", (double)c->l1d_bytes / KIB);
        if (c->l2_bytes)
            sw_emit_num(e, "l2_kib", (double)c->l2_bytes / KIB);
        if (c->l3_bytes)
            sw_emit_num(e, "l3_mib", (double)c->l3_bytes / MIB);
    }
    if (c->known & HW_CPU_NUMA)
        sw_emit_i64(e, "numa_nodes", c->numa_nodes);
    if (c->known & HW_CPU_CLOCK)
        emit_dec(e, "clock_ghz", c->clock_hz / 1e9);
    if (c->known & HW_CPU_PEAK) {
        emit_dec(e, "fp32_flop_per_cycle", c->fp32_flop_per_cycle);
        emit_dec(e, "peak_fp32_gflops_per_core", c->peak_fp32_flops_per_core / GFLOPS);
        emit_dec(e, "peak_fp32_tflops", c->peak_fp32_flops / TFLOPS);
        emit_dec(e, "peak_bf16_tflops", c->peak_bf16_flops / TFLOPS);
    }
    if (c->known & HW_CPU_MEASURED) {
        emit_dec(e, "measured_fp32_gflops", c->measured_fp32_flops / GFLOPS);
        emit_dec(e, "measured_fp32_gflops_1core", c->measured_fp32_flops_1core / GFLOPS);
    }
    if (c->known & HW_CPU_TRIAD)
        emit_dec(e, "triad_gbps", c->triad_bytes_per_s / GB);
    sw_emit_map_end(e);
}

static void emit_memory(struct sw_emit *e, const struct hardware *hw)
{
    const struct hw_memory *m = &hw->mem;
    if (!m->known && !m->usable_bytes && hw->host_mem_bytes_per_s <= 0)
        return;
    sw_emit_map_begin(e, "memory");
    if (m->known & HW_MEM_TOTAL)
        sw_emit_num(e, "total_gib", (double)m->total_bytes / GIB);
    if (m->known & HW_MEM_AVAILABLE)
        sw_emit_num(e, "available_gib", (double)m->available_bytes / GIB);
    if (m->known & HW_MEM_CGROUP)
        sw_emit_num(e, "cgroup_limit_gib", (double)m->cgroup_limit_bytes / GIB);
    sw_emit_num(e, "usable_gib", (double)m->usable_bytes / GIB);
    if (hw->host_mem_bytes_per_s > 0)
        emit_dec(e, "bandwidth_gbps", hw->host_mem_bytes_per_s / GB);
    sw_emit_map_end(e);
}

static void emit_gpu_fields(struct sw_emit *e, const struct hw_gpu *g, int count)
{
    if (g->known & HW_GPU_NAME)
        sw_emit_str(e, "name", g->name);
    if (count > 0)
        sw_emit_i64(e, "count", count);
    if (g->known & HW_GPU_BUS_ID)
        sw_emit_str(e, "bus_id", g->bus_id);
    if (g->uuid[0])
        sw_emit_str(e, "uuid", g->uuid);
    if (g->known & HW_GPU_CC) {
        char cc[16];
        snprintf(cc, sizeof(cc), "%d.%d", g->cc_major, g->cc_minor);
        sw_emit_str(e, "compute_capability", cc);
    }
    if (g->known & HW_GPU_SMS)
        sw_emit_i64(e, "sm_count", g->sm_count);
    if (g->known & HW_GPU_SM_CLOCK)
        sw_emit_i64(e, "sm_clock_mhz", g->sm_clock_mhz);
    if (g->mem_nominal_bytes)
        emit_dec(e, "memory_nominal_gb", (double)g->mem_nominal_bytes / GB);
    if (g->known & HW_GPU_MEM_TOTAL)
        sw_emit_num(e, "memory_gib", (double)g->mem_total_bytes / GIB);
    if (g->known & HW_GPU_MEM_FREE)
        sw_emit_num(e, "memory_free_gib", (double)g->mem_free_bytes / GIB);
    if (g->known & HW_GPU_MEM_CLOCK)
        sw_emit_i64(e, "mem_clock_mhz", g->mem_clock_mhz);
    if (g->bus_width_bits > 0)
        sw_emit_i64(e, "bus_width_bits", g->bus_width_bits);
    if (g->known & HW_GPU_MEM_BW)
        emit_dec(e, "memory_bandwidth_gbps", g->mem_bw_bytes_per_s / GB);
    if (g->known & HW_GPU_PCIE) {
        if (g->pcie_gen > 0)
            sw_emit_i64(e, "pcie_gen", g->pcie_gen);
        if (g->pcie_width > 0)
            sw_emit_i64(e, "pcie_width", g->pcie_width);
    }
    if (g->known & HW_GPU_NVLINK) {
        sw_emit_i64(e, "nvlinks", g->nvlinks);
        emit_dec(e, "nvlink_gbps", g->nvlink_bytes_per_s / GB);
    }
    sw_emit_bool(e, "geforce", g->geforce);
    if (g->integrated)
        sw_emit_bool(e, "integrated", true);
    if (g->known & HW_GPU_PEAK) {
        sw_emit_map_begin(e, "peak_tflops");
        for (int i = 0; i < HW_DT_COUNT; i++)
            emit_dec(e, hw_dtype_name((enum hw_dtype)i), g->peak_flops[i] / TFLOPS);
        sw_emit_map_end(e);
    }
    if (g->known & HW_GPU_POWER)
        emit_dec(e, "power_limit_w", g->power_limit_w);
    if (g->known & HW_GPU_TEMP)
        emit_dec(e, "temperature_c", g->temperature_c);
}

static bool gpu_same(const struct hw_gpu *a, const struct hw_gpu *b)
{
    if (a->known != b->known || strcmp(a->name, b->name) || strcmp(a->bus_id, b->bus_id) ||
        strcmp(a->uuid, b->uuid) || a->cc_major != b->cc_major || a->cc_minor != b->cc_minor ||
        a->sm_count != b->sm_count || a->sm_clock_mhz != b->sm_clock_mhz ||
        a->mem_clock_mhz != b->mem_clock_mhz || a->bus_width_bits != b->bus_width_bits ||
        a->mem_total_bytes != b->mem_total_bytes || a->mem_free_bytes != b->mem_free_bytes ||
        a->mem_nominal_bytes != b->mem_nominal_bytes ||
        a->mem_bw_bytes_per_s != b->mem_bw_bytes_per_s || a->pcie_gen != b->pcie_gen ||
        a->pcie_width != b->pcie_width || a->nvlinks != b->nvlinks ||
        a->nvlink_bytes_per_s != b->nvlink_bytes_per_s || a->geforce != b->geforce ||
        a->integrated != b->integrated || a->power_limit_w != b->power_limit_w ||
        a->temperature_c != b->temperature_c)
        return false;
    for (int i = 0; i < HW_DT_COUNT; i++)
        if (a->peak_flops[i] != b->peak_flops[i])
            return false;
    return true;
}

static void emit_gpus(struct sw_emit *e, const struct hardware *hw)
{
    int n = hw->n_gpus;
    if (n <= 0)
        return;
    bool same = true;
    for (int i = 1; i < n && same; i++)
        same = gpu_same(&hw->gpus[0], &hw->gpus[i]);
    /* One type with a count when every GPU is alike (and has a name), else the list. */
    if (same && (hw->gpus[0].known & HW_GPU_NAME)) {
        sw_emit_map_begin(e, "gpu");
        emit_gpu_fields(e, &hw->gpus[0], n);
        sw_emit_map_end(e);
        return;
    }
    sw_emit_list_begin(e, "gpus");
    for (int i = 0; i < n; i++) {
        sw_emit_map_begin(e, NULL);
        emit_gpu_fields(e, &hw->gpus[i], 0);
        sw_emit_map_end(e);
    }
    sw_emit_list_end(e);
}

static void link_cell(const struct hardware *hw, int i, int j, char *buf, size_t n)
{
    if (i == j)
        snprintf(buf, n, "X");
    else if (hw->link[i][j] == HW_LINK_NVLINK)
        snprintf(buf, n, "NV%d", hw->link_nvlinks[i][j]);
    else
        snprintf(buf, n, "%s", hw_link_name(hw->link[i][j]));
}

static void emit_links(struct sw_emit *e, const struct hardware *hw)
{
    int n = hw->n_gpus;
    if (n < 2)
        return;
    enum hw_link l0 = hw->link[0][1];
    int nv0 = hw->link_nvlinks[0][1];
    bool uniform = true, any_known = false;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j)
                continue;
            if (hw->link[i][j] != HW_LINK_UNKNOWN)
                any_known = true;
            if (hw->link[i][j] != l0 || (l0 == HW_LINK_NVLINK && hw->link_nvlinks[i][j] != nv0))
                uniform = false;
        }
    if (!any_known)
        return;
    sw_emit_map_begin(e, "links");
    if (uniform && l0 >= HW_LINK_NVSWITCH && l0 <= HW_LINK_SYS) {
        sw_emit_str(e, "class", class_words[l0 - HW_LINK_NVSWITCH]);
        if (l0 == HW_LINK_NVLINK)
            sw_emit_i64(e, "nvlinks", nv0);
    } else {
        sw_emit_list_begin(e, "matrix");
        for (int i = 0; i < n; i++) {
            char row[HW_MAX_GPUS * 16] = "";
            size_t used = 0;
            for (int j = 0; j < n; j++) {
                char cell[16];
                link_cell(hw, i, j, cell, sizeof(cell));
                used +=
                    (size_t)snprintf(row + used, sizeof(row) - used, "%s%s", j ? " " : "", cell);
            }
            sw_emit_str(e, NULL, row);
        }
        sw_emit_list_end(e);
    }
    sw_emit_map_end(e);
}

static void emit_node_cluster_software(struct sw_emit *e, const struct hardware *hw)
{
    sw_emit_map_begin(e, "node");
    sw_emit_i64(e, "gpus_per_node", hw->n_gpus);
    if (hw->intra_bytes_per_s > 0)
        emit_dec(e, "intra_gbps", hw->intra_bytes_per_s / GB);
    if (hw->pcie_bytes_per_s > 0)
        emit_dec(e, "pcie_gbps", hw->pcie_bytes_per_s / GB);
    if (hw->nvme_bytes_per_s > 0)
        emit_dec(e, "nvme_gbps", hw->nvme_bytes_per_s / GB);
    sw_emit_map_end(e);

    sw_emit_map_begin(e, "cluster");
    sw_emit_i64(e, "nodes", hw->nodes);
    if (hw->inter_bytes_per_s > 0)
        emit_dec(e, "inter_node_gbps", hw->inter_bytes_per_s / GB);
    sw_emit_map_end(e);

    if (!hw->driver_version[0] && !hw->nccl_available && !hw->nccl_version[0] &&
        !hw->mpi_available && !hw->mpi_version[0])
        return;
    sw_emit_map_begin(e, "software");
    if (hw->driver_version[0])
        sw_emit_str(e, "driver_version", hw->driver_version);
    sw_emit_bool(e, "nccl_available", hw->nccl_available);
    if (hw->nccl_version[0])
        sw_emit_str(e, "nccl_version", hw->nccl_version);
    sw_emit_bool(e, "mpi_available", hw->mpi_available);
    if (hw->mpi_version[0])
        sw_emit_str(e, "mpi_version", hw->mpi_version);
    sw_emit_map_end(e);
}

void hw_emit(struct sw_emit *e, const char *key, const struct hardware *hw)
{
    sw_emit_map_begin(e, key);
    sw_emit_i64(e, "scalewise_hardware", HW_FORMAT_VERSION);
    sw_emit_str(e, "name", hw->name);
    if (hw->description[0])
        sw_emit_str(e, "description", hw->description);
    sw_emit_str(e, "kind", hw->source == HW_SRC_PROFILE ? "profile" : "report");
    if (hw->gpu_status[0])
        sw_emit_str(e, "gpu_status", hw->gpu_status);
    emit_cpu(e, &hw->cpu);
    emit_memory(e, hw);
    emit_gpus(e, hw);
    emit_links(e, hw);
    emit_node_cluster_software(e, hw);
    sw_emit_map_end(e);
}

int hw_save_file(const char *path, const struct hardware *hw, struct sw_err *err)
{
    struct sw_buf buf;
    sw_buf_init(&buf, 4u << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &buf, SW_FMT_YAML);
    hw_emit(&e, NULL, hw);
    sw_emit_finish(&e);
    int rc = sw_write_file_atomic(path, buf.data ? buf.data : "", buf.len, err);
    sw_buf_release(&buf);
    return rc;
}
