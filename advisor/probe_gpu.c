/* probe_gpu.c — the GPU half of `scalewise probe`: NVIDIA GPUs through NVML and the CUDA
 * driver API, both loaded with dlopen and never linked (docs/hardware-and-distributed.md
 * section 1), plus NCCL and MPI availability. NVML gives names, memory, clocks, PCIe, NVLink,
 * the pairwise topology and P2P status; the CUDA driver adds the SM count (NVML has no call for
 * it) and fills gaps; the two are matched by PCI bus id because their device orders may differ.
 * Peak FLOP/s per dtype come from hw_gpu_fill_peaks() (advisor/hardware.c). A machine without
 * a driver is a normal answer recorded in hw->gpu_status, never an error. Tests point
 * SCALEWISE_NVML_LIBRARY / SCALEWISE_CUDA_LIBRARY at fake libraries (tests/fake_gpu/). The CPU
 * half is probe_cpu.c; hw_probe() in probe.c calls both.
 *
 * Fork safety (hardware-and-distributed 1.4): the probe calls cuInit in this process (no
 * context is created) and shuts NVML down before returning; a process that will fork CUDA
 * workers should probe in a short-lived child or rely on NVML's core count, which this file
 * falls back to when the CUDA driver is absent. */
#include "advisor/advisor.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "advisor/advisor_int.h"
#include "advisor/gpu_driver_int.h"

/* A PCI address "domain:bus:device.function", compared numerically because NVML prints an
 * 8-digit domain ("00000000:18:00.0") and CUDA a 4-digit one ("0000:18:00.0"). */
struct pci_addr {
    bool ok;
    unsigned domain, bus, dev, fn;
};

static struct pci_addr pci_parse(const char *s)
{
    struct pci_addr a = {0};
    if (s && sscanf(s, "%x:%x:%x.%x", &a.domain, &a.bus, &a.dev, &a.fn) == 4)
        a.ok = true;
    return a;
}

static bool pci_equal(struct pci_addr a, struct pci_addr b)
{
    return a.ok && b.ok && a.domain == b.domain && a.bus == b.bus && a.dev == b.dev && a.fn == b.fn;
}

/* Append to hw->description (truncating at its size). */
static void desc_append(struct hardware *hw, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void desc_append(struct hardware *hw, const char *fmt, ...)
{
    size_t len = strlen(hw->description);
    if (len + 1 >= sizeof(hw->description))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hw->description + len, sizeof(hw->description) - len, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- loading */

/* The first of `names` that `h` exports, or NULL. */
static void *sym_first(void *h, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        void *p = dlsym(h, names[i]);
        if (p)
            return p;
    }
    return NULL;
}

static void *sym1(void *h, const char *name)
{
    const char *const names[] = {name, NULL};
    return sym_first(h, names);
}

/* dlopen `override` if set (tests), else the first of `sonames` that loads. */
static void *open_lib(const char *override, const char *const *sonames)
{
    if (override && *override)
        return dlopen(override, RTLD_NOW | RTLD_LOCAL);
    for (int i = 0; sonames[i]; i++) {
        void *h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    return NULL;
}

/* Resolve NVML. Returns false (and says why) when the library or a mandatory entry point is
 * missing. The handle is kept open either way: see gpu_driver_int.h. */
static bool load_nvml(struct gpu_api *api, char *why, size_t n)
{
    static const char *const sonames[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};
    void *h = open_lib(getenv("SCALEWISE_NVML_LIBRARY"), sonames);
    if (!h) {
        snprintf(why, n, "driver library not found");
        return false;
    }
    static const char *const init_names[] = {"nvmlInit_v2", "nvmlInit", NULL};
    static const char *const count_names[] = {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount", NULL};
    static const char *const handle_names[] = {"nvmlDeviceGetHandleByIndex_v2",
                                               "nvmlDeviceGetHandleByIndex", NULL};
    api->nvml_init = (nvml_void_fn)sym_first(h, init_names);
    api->nvml_shutdown = (nvml_void_fn)sym1(h, "nvmlShutdown");
    api->device_count = (nvml_count_fn)sym_first(h, count_names);
    api->device_handle = (nvml_handle_fn)sym_first(h, handle_names);
    api->device_name = (nvml_dev_str_fn)sym1(h, "nvmlDeviceGetName");
    if (!api->nvml_init || !api->nvml_shutdown || !api->device_count || !api->device_handle ||
        !api->device_name) {
        snprintf(why, n, "driver library lacks a required NVML entry point");
        return false;
    }
    api->nvml_error_string = (nvml_error_string_fn)sym1(h, "nvmlErrorString");
    api->driver_version = (nvml_str_fn)sym1(h, "nvmlSystemGetDriverVersion");
    api->device_uuid = (nvml_dev_str_fn)sym1(h, "nvmlDeviceGetUUID");
    api->pci_info = (nvml_dev_pci_fn)sym1(h, "nvmlDeviceGetPciInfo_v3");
    api->pci_info_v3 = api->pci_info != NULL;
    if (!api->pci_info) {
        static const char *const pci_old[] = {"nvmlDeviceGetPciInfo_v2", "nvmlDeviceGetPciInfo",
                                              NULL};
        api->pci_info = (nvml_dev_pci_fn)sym_first(h, pci_old);
    }
    api->memory_v2 = (nvml_dev_mem_v2_fn)sym1(h, "nvmlDeviceGetMemoryInfo_v2");
    api->memory_v1 = (nvml_dev_mem_v1_fn)sym1(h, "nvmlDeviceGetMemoryInfo");
    api->compute_capability = (nvml_dev_cc_fn)sym1(h, "nvmlDeviceGetCudaComputeCapability");
    api->max_clock = (nvml_dev_sel_uint_fn)sym1(h, "nvmlDeviceGetMaxClockInfo");
    api->bus_width = (nvml_dev_uint_fn)sym1(h, "nvmlDeviceGetMemoryBusWidth");
    api->num_cores = (nvml_dev_uint_fn)sym1(h, "nvmlDeviceGetNumGpuCores");
    api->pcie_max_gen = (nvml_dev_uint_fn)sym1(h, "nvmlDeviceGetMaxPcieLinkGeneration");
    api->pcie_max_width = (nvml_dev_uint_fn)sym1(h, "nvmlDeviceGetMaxPcieLinkWidth");
    api->nvlink_state = (nvml_dev_link_uint_fn)sym1(h, "nvmlDeviceGetNvLinkState");
    api->nvlink_version = (nvml_dev_link_uint_fn)sym1(h, "nvmlDeviceGetNvLinkVersion");
    api->nvlink_remote_type = (nvml_dev_link_uint_fn)sym1(h, "nvmlDeviceGetNvLinkRemoteDeviceType");
    static const char *const remote_names[] = {"nvmlDeviceGetNvLinkRemotePciInfo_v2",
                                               "nvmlDeviceGetNvLinkRemotePciInfo", NULL};
    api->nvlink_remote_pci = (nvml_dev_link_pci_fn)sym_first(h, remote_names);
    api->topo_common_ancestor = (nvml_pair_int_fn)sym1(h, "nvmlDeviceGetTopologyCommonAncestor");
    api->p2p_status = (nvml_pair_sel_int_fn)sym1(h, "nvmlDeviceGetP2PStatus");
    api->power_limit = (nvml_dev_uint_fn)sym1(h, "nvmlDeviceGetEnforcedPowerLimit");
    api->temperature = (nvml_dev_sel_uint_fn)sym1(h, "nvmlDeviceGetTemperature");
    api->nvml = h;
    return true;
}

/* Resolve the CUDA driver by plain dlsym of the exact (suffixed) names cuda.h maps to. The
 * documented alternative, cuGetProcAddress, matters for per-thread-stream variants that the
 * probe does not use; these calls have had one ABI since CUDA 3.2. */
static bool load_cuda(struct gpu_api *api)
{
    static const char *const sonames[] = {"libcuda.so.1", "libcuda.so", NULL};
    void *h = open_lib(getenv("SCALEWISE_CUDA_LIBRARY"), sonames);
    if (!h)
        return false;
    api->cu_init = (cu_init_fn)sym1(h, "cuInit");
    api->cu_device_count = (cu_int_out_fn)sym1(h, "cuDeviceGetCount");
    api->cu_device_get = (cu_device_get_fn)sym1(h, "cuDeviceGet");
    api->cu_attribute = (cu_attr_fn)sym1(h, "cuDeviceGetAttribute");
    if (!api->cu_init || !api->cu_device_count || !api->cu_device_get || !api->cu_attribute)
        return false;
    api->cu_pci_bus_id = (cu_dev_str_fn)sym1(h, "cuDeviceGetPCIBusId");
    api->cu_name = (cu_dev_str_fn)sym1(h, "cuDeviceGetName");
    api->cu_total_mem = (cu_total_mem_fn)sym1(h, "cuDeviceTotalMem_v2");
    api->cu_driver_version = (cu_int_out_fn)sym1(h, "cuDriverGetVersion");
    api->cu_error_string = (cu_error_string_fn)sym1(h, "cuGetErrorString");
    api->cuda = h;
    return true;
}

/* ---------------------------------------------------------------- CUDA devices */

/* What the CUDA driver says about one device; -1 = the attribute query failed. */
struct cuda_dev {
    struct pci_addr pci;
    char bus_id[32];
    char name[HW_NAME_MAX];
    int sms, clock_khz, mem_clock_khz, bus_width_bits, cc_major, cc_minor, integrated;
    uint64_t total_bytes;
    bool matched;
};

static int cu_attr(const struct gpu_api *api, int attr, cu_device d)
{
    int v = -1;
    if (api->cu_attribute(&v, attr, d) != CUDA_SUCCESS)
        return -1;
    return v;
}

/* List the CUDA devices (at most `max`). cuInit without a GPU returns CUDA_ERROR_NO_DEVICE,
 * and a failed cuDeviceGetCount may leave the count untouched, so it starts at 0. */
static int cuda_list(const struct gpu_api *api, struct cuda_dev *out, int max)
{
    if (!api->cuda || api->cu_init(0) != CUDA_SUCCESS)
        return 0;
    int count = 0;
    if (api->cu_device_count(&count) != CUDA_SUCCESS || count < 0)
        return 0;
    int n = 0;
    for (int i = 0; i < count && n < max; i++) {
        cu_device d = 0;
        if (api->cu_device_get(&d, i) != CUDA_SUCCESS)
            continue;
        struct cuda_dev *c = &out[n++];
        memset(c, 0, sizeof(*c));
        if (api->cu_pci_bus_id &&
            api->cu_pci_bus_id(c->bus_id, (int)sizeof(c->bus_id), d) == CUDA_SUCCESS) {
            c->bus_id[sizeof(c->bus_id) - 1] = '\0';
            c->pci = pci_parse(c->bus_id);
        }
        if (!api->cu_name || api->cu_name(c->name, (int)sizeof(c->name), d) != CUDA_SUCCESS)
            c->name[0] = '\0';
        c->name[sizeof(c->name) - 1] = '\0';
        size_t total = 0;
        if (api->cu_total_mem && api->cu_total_mem(&total, d) == CUDA_SUCCESS)
            c->total_bytes = total;
        c->sms = cu_attr(api, CU_ATTR_MULTIPROCESSOR_COUNT, d);
        c->clock_khz = cu_attr(api, CU_ATTR_CLOCK_RATE, d);
        c->mem_clock_khz = cu_attr(api, CU_ATTR_MEMORY_CLOCK_RATE, d);
        c->bus_width_bits = cu_attr(api, CU_ATTR_GLOBAL_MEMORY_BUS_WIDTH, d);
        c->cc_major = cu_attr(api, CU_ATTR_CC_MAJOR, d);
        c->cc_minor = cu_attr(api, CU_ATTR_CC_MINOR, d);
        c->integrated = cu_attr(api, CU_ATTR_INTEGRATED, d);
    }
    return n;
}

/* Fill what NVML left unknown from the matching CUDA device. */
static void merge_cuda(struct hw_gpu *g, const struct cuda_dev *c)
{
    if (c->sms > 0) {
        g->sm_count = c->sms;
        g->known |= HW_GPU_SMS;
    }
    if (c->integrated >= 0)
        g->integrated = c->integrated > 0;
    if (!(g->known & HW_GPU_NAME) && c->name[0]) {
        sw_strlcpy(g->name, c->name, sizeof(g->name));
        g->known |= HW_GPU_NAME;
    }
    if (!(g->known & HW_GPU_BUS_ID) && c->bus_id[0]) {
        sw_strlcpy(g->bus_id, c->bus_id, sizeof(g->bus_id));
        g->known |= HW_GPU_BUS_ID;
    }
    if (!(g->known & HW_GPU_MEM_TOTAL) && c->total_bytes > 0) {
        g->mem_total_bytes = c->total_bytes;
        g->known |= HW_GPU_MEM_TOTAL;
    }
    if (!(g->known & HW_GPU_CC) && c->cc_major > 0 && c->cc_minor >= 0) {
        g->cc_major = c->cc_major;
        g->cc_minor = c->cc_minor;
        g->known |= HW_GPU_CC;
    }
    if (!(g->known & HW_GPU_SM_CLOCK) && c->clock_khz > 0) {
        g->sm_clock_mhz = c->clock_khz / 1000;
        g->known |= HW_GPU_SM_CLOCK;
    }
    if (!(g->known & HW_GPU_MEM_CLOCK) && c->mem_clock_khz > 0 && c->bus_width_bits > 0) {
        g->mem_clock_mhz = c->mem_clock_khz / 1000;
        g->bus_width_bits = c->bus_width_bits;
        g->known |= HW_GPU_MEM_CLOCK;
    }
}

/* ---------------------------------------------------------------- NVML devices */

/* NVLink facts of one GPU gathered by the link loop. */
struct nvlink_info {
    int active;
    int to_switch;           /* active links whose far end is an NVSwitch */
    double rate_bytes_per_s; /* per link per direction */
    int n_remote;
    struct pci_addr remote[NVML_NVLINK_MAX_LINKS]; /* far ends that are not switches */
};

/* Per-link rate per direction by NVLink version: 20 GB/s for NVLink 1, 25 GB/s for 2.x-4.0
 * (V100, A100, H100), 50 GB/s for 5.0 (B200) (strategy reference 9.2; per direction = half
 * the data-sheet total). Some Hopper drivers report 5.0 for NVLink 4 links, so CC 9.x stays
 * at 25 GB/s. Without a version, fall back to the compute capability. */
static double nvlink_rate(unsigned version, const struct hw_gpu *g)
{
    bool hopper = (g->known & HW_GPU_CC) && g->cc_major == 9;
    if (version == NVML_NVLINK_VERSION_1_0)
        return 20e9;
    if (version > NVML_NVLINK_VERSION_1_0 && version < NVML_NVLINK_VERSION_5_0)
        return 25e9;
    if (version >= NVML_NVLINK_VERSION_5_0)
        return hopper ? 25e9 : 50e9;
    if (!(g->known & HW_GPU_CC))
        return 25e9;
    if (g->cc_major == 6)
        return 20e9;
    return g->cc_major >= 10 ? 50e9 : 25e9;
}

/* Walk links 0.. until the driver answers with an error (no such link / no NVLink). */
static void probe_nvlinks(const struct gpu_api *api, nvml_device d, struct hw_gpu *g,
                          struct nvlink_info *nl)
{
    memset(nl, 0, sizeof(*nl));
    if (!api->nvlink_state)
        return;
    unsigned version = 0;
    for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; link++) {
        unsigned state = 0;
        nvml_return r = api->nvlink_state(d, link, &state);
        if (r != NVML_SUCCESS) {
            /* NOT_SUPPORTED on link 0 is a definite "no NVLink"; other errors end the walk. */
            if (link == 0 && r == NVML_ERROR_NOT_SUPPORTED)
                g->known |= HW_GPU_NVLINK;
            break;
        }
        g->known |= HW_GPU_NVLINK;
        if (state != NVML_FEATURE_ENABLED)
            continue;
        nl->active++;
        unsigned v = 0;
        if (api->nvlink_version && api->nvlink_version(d, link, &v) == NVML_SUCCESS && !version)
            version = v;
        unsigned type = 0xff;
        bool have_type =
            api->nvlink_remote_type && api->nvlink_remote_type(d, link, &type) == NVML_SUCCESS;
        struct nvml_pci_info rp;
        memset(&rp, 0, sizeof(rp));
        struct pci_addr ra = {0};
        if (api->nvlink_remote_pci && api->nvlink_remote_pci(d, link, &rp) == NVML_SUCCESS) {
            rp.bus_id[sizeof(rp.bus_id) - 1] = '\0';
            rp.bus_id_legacy[sizeof(rp.bus_id_legacy) - 1] = '\0';
            ra = pci_parse(rp.bus_id[0] ? rp.bus_id : rp.bus_id_legacy);
        }
        if (have_type && type == NVML_NVLINK_DEVICE_TYPE_SWITCH)
            nl->to_switch++;
        else if (ra.ok)
            nl->remote[nl->n_remote++] = ra; /* a GPU, or a switch when no GPU has this address */
    }
    g->nvlinks = nl->active;
    nl->rate_bytes_per_s = nvlink_rate(version, g);
    g->nvlink_bytes_per_s = nl->active * nl->rate_bytes_per_s;
}

static void nvml_device_fill(const struct gpu_api *api, nvml_device d, struct hw_gpu *g,
                             struct pci_addr *pci)
{
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "";
    if (api->device_name(d, name, sizeof(name)) == NVML_SUCCESS && name[0]) {
        name[sizeof(name) - 1] = '\0';
        sw_strlcpy(g->name, name, sizeof(g->name));
        g->known |= HW_GPU_NAME;
    }
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "";
    if (api->device_uuid && api->device_uuid(d, uuid, sizeof(uuid)) == NVML_SUCCESS) {
        uuid[sizeof(uuid) - 1] = '\0';
        sw_strlcpy(g->uuid, uuid, sizeof(g->uuid));
    }
    struct nvml_pci_info pi;
    memset(&pi, 0, sizeof(pi));
    if (api->pci_info && api->pci_info(d, &pi) == NVML_SUCCESS) {
        pi.bus_id[sizeof(pi.bus_id) - 1] = '\0';
        pi.bus_id_legacy[sizeof(pi.bus_id_legacy) - 1] = '\0';
        const char *id = api->pci_info_v3 && pi.bus_id[0] ? pi.bus_id : pi.bus_id_legacy;
        *pci = pci_parse(id);
        if (id[0]) {
            sw_strlcpy(g->bus_id, id, sizeof(g->bus_id));
            g->known |= HW_GPU_BUS_ID;
        }
    }
    /* Memory: the versioned v2 struct first; a driver that predates it answers
     * ARGUMENT_VERSION_MISMATCH or lacks the symbol, and v1 has the same totals. */
    bool mem_done = false;
    if (api->memory_v2) {
        struct nvml_memory_v2 m2;
        memset(&m2, 0, sizeof(m2));
        m2.version = NVML_MEMORY_V2_VERSION;
        if (api->memory_v2(d, &m2) == NVML_SUCCESS && m2.total > 0) {
            g->mem_total_bytes = m2.total;
            g->mem_free_bytes = m2.free;
            mem_done = true;
        }
    }
    if (!mem_done && api->memory_v1) {
        struct nvml_memory_v1 m1;
        memset(&m1, 0, sizeof(m1));
        if (api->memory_v1(d, &m1) == NVML_SUCCESS && m1.total > 0) {
            g->mem_total_bytes = m1.total;
            g->mem_free_bytes = m1.free;
            mem_done = true;
        }
    }
    /* total == 0 is an integrated GPU sharing host memory (nvtop): leave unknown. */
    if (mem_done)
        g->known |= HW_GPU_MEM_TOTAL | HW_GPU_MEM_FREE;
    int major = 0, minor = 0;
    if (api->compute_capability && api->compute_capability(d, &major, &minor) == NVML_SUCCESS &&
        major > 0) {
        g->cc_major = major;
        g->cc_minor = minor;
        g->known |= HW_GPU_CC;
    }
    unsigned v = 0;
    if (api->max_clock && api->max_clock(d, NVML_CLOCK_SM, &v) == NVML_SUCCESS && v > 0) {
        g->sm_clock_mhz = (int)v;
        g->known |= HW_GPU_SM_CLOCK;
    }
    unsigned mem_mhz = 0, width = 0;
    if (api->max_clock && api->max_clock(d, NVML_CLOCK_MEM, &mem_mhz) == NVML_SUCCESS &&
        api->bus_width && api->bus_width(d, &width) == NVML_SUCCESS && mem_mhz > 0 && width > 0) {
        g->mem_clock_mhz = (int)mem_mhz;
        g->bus_width_bits = (int)width;
        g->known |= HW_GPU_MEM_CLOCK;
    }
    unsigned gen = 0, lanes = 0;
    if (api->pcie_max_gen && api->pcie_max_width && api->pcie_max_gen(d, &gen) == NVML_SUCCESS &&
        api->pcie_max_width(d, &lanes) == NVML_SUCCESS && gen > 0 && lanes > 0) {
        g->pcie_gen = (int)gen;
        g->pcie_width = (int)lanes;
        g->known |= HW_GPU_PCIE;
    }
    if (api->power_limit && api->power_limit(d, &v) == NVML_SUCCESS && v > 0) {
        g->power_limit_w = v / 1000.0; /* mW */
        g->known |= HW_GPU_POWER;
    }
    if (api->temperature && api->temperature(d, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS) {
        g->temperature_c = v;
        g->known |= HW_GPU_TEMP;
    }
}

/* CUDA cores per SM for the NVML core-count fallback (strategy reference 9.2: 64 FP32 lanes
 * on CC 6.0/7.x/8.0, 128 on 8.6+ and later). */
static int lanes_per_sm(const struct hw_gpu *g)
{
    if (!(g->known & HW_GPU_CC))
        return 0;
    if (g->cc_major == 6 && g->cc_minor == 0)
        return 64;
    if (g->cc_major == 7 || (g->cc_major == 8 && g->cc_minor == 0))
        return 64;
    return g->cc_major >= 8 ? 128 : 0;
}

/* PCIe per lane per direction, GB/s, Gen1..Gen6 (hardware-and-distributed 1.6). */
static double pcie_bytes_per_s(const struct hw_gpu *g)
{
    static const double lane_gbps[] = {0, 0.25, 0.5, 0.985, 1.97, 3.94, 7.6};
    if (!(g->known & HW_GPU_PCIE) || g->pcie_gen < 1 || g->pcie_gen > 6)
        return 0;
    return lane_gbps[g->pcie_gen] * 1e9 * g->pcie_width;
}

static enum hw_link link_from_level(int level)
{
    switch (level) {
    case NVML_TOPOLOGY_INTERNAL: /* two GPUs on one board behave like one PCIe switch */
    case NVML_TOPOLOGY_SINGLE:
        return HW_LINK_PIX;
    case NVML_TOPOLOGY_MULTIPLE:
        return HW_LINK_PXB;
    case NVML_TOPOLOGY_HOSTBRIDGE:
        return HW_LINK_PHB;
    case NVML_TOPOLOGY_NODE:
        return HW_LINK_NODE;
    case NVML_TOPOLOGY_SYSTEM:
        return HW_LINK_SYS;
    default:
        return HW_LINK_UNKNOWN;
    }
}

static const char *nvml_error(const struct gpu_api *api, nvml_return r, char *buf, size_t n)
{
    const char *s = api->nvml_error_string ? api->nvml_error_string(r) : NULL;
    if (s && *s)
        return s;
    snprintf(buf, n, "NVML error %d", r);
    return buf;
}

/* Pairwise classes (strategy reference 9.3): NVSwitch when both GPUs' links end at switches,
 * NV# when links join the two directly, else NVML's common PCIe ancestor. */
static void fill_links(struct hardware *hw, const struct gpu_api *api, nvml_device *devs,
                       const struct pci_addr *pci, const struct nvlink_info *nl)
{
    int n = hw->n_gpus, no_p2p = 0, first_a = -1, first_b = -1;
    for (int i = 0; i < n; i++) {
        hw->link[i][i] = HW_LINK_SELF;
        for (int j = 0; j < n; j++) {
            if (i == j)
                continue;
            /* A non-switch far end that is no GPU of ours is a switch too. */
            int direct = 0, via_unknown = 0;
            for (int k = 0; k < nl[i].n_remote; k++) {
                bool is_gpu = false;
                for (int m = 0; m < n; m++)
                    is_gpu |= pci_equal(nl[i].remote[k], pci[m]);
                if (pci_equal(nl[i].remote[k], pci[j]))
                    direct++;
                else if (!is_gpu)
                    via_unknown++;
            }
            int sw_i = nl[i].to_switch + via_unknown;
            int sw_j = nl[j].to_switch;
            for (int k = 0; k < nl[j].n_remote; k++) {
                bool is_gpu = false;
                for (int m = 0; m < n; m++)
                    is_gpu |= pci_equal(nl[j].remote[k], pci[m]);
                sw_j += !is_gpu;
            }
            if (sw_i > 0 && sw_j > 0) {
                hw->link[i][j] = HW_LINK_NVSWITCH;
                hw->link_nvlinks[i][j] = sw_i < sw_j ? sw_i : sw_j;
            } else if (direct > 0) {
                hw->link[i][j] = HW_LINK_NVLINK;
                hw->link_nvlinks[i][j] = direct;
            } else {
                int level = -1;
                if (api->topo_common_ancestor &&
                    api->topo_common_ancestor(devs[i], devs[j], &level) == NVML_SUCCESS)
                    hw->link[i][j] = link_from_level(level);
                else
                    hw->link[i][j] = HW_LINK_UNKNOWN;
            }
            int st = 0;
            if (i < j && api->p2p_status &&
                api->p2p_status(devs[i], devs[j], NVML_P2P_CAPS_INDEX_READ, &st) == NVML_SUCCESS &&
                st != NVML_P2P_STATUS_OK) {
                if (no_p2p++ == 0) {
                    first_a = i;
                    first_b = j;
                }
            }
        }
    }
    if (no_p2p > 0)
        desc_append(hw, "; no P2P on %d GPU pair%s (first %d-%d)", no_p2p, no_p2p == 1 ? "" : "s",
                    first_a, first_b);
}

/* Host<->GPU and slowest GPU<->GPU bandwidths per direction from the link classes. */
static void fill_bandwidths(struct hardware *hw, const struct nvlink_info *nl)
{
    double pcie_min = 0;
    for (int i = 0; i < hw->n_gpus; i++) {
        double p = pcie_bytes_per_s(&hw->gpus[i]);
        if (p > 0 && (pcie_min == 0 || p < pcie_min))
            pcie_min = p;
    }
    hw->pcie_bytes_per_s = pcie_min;
    double intra = 0;
    bool intra_known = hw->n_gpus > 1;
    for (int i = 0; i < hw->n_gpus && intra_known; i++)
        for (int j = i + 1; j < hw->n_gpus; j++) {
            const struct hw_gpu *a = &hw->gpus[i], *b = &hw->gpus[j];
            double bw = 0;
            if (hw->link[i][j] == HW_LINK_NVSWITCH) {
                /* NVSwitch: the full per-GPU NVLink rate to every peer (9.3). */
                bw = a->nvlink_bytes_per_s < b->nvlink_bytes_per_s ? a->nvlink_bytes_per_s
                                                                   : b->nvlink_bytes_per_s;
            } else if (hw->link[i][j] == HW_LINK_NVLINK) {
                double r = nl[i].rate_bytes_per_s < nl[j].rate_bytes_per_s ? nl[i].rate_bytes_per_s
                                                                           : nl[j].rate_bytes_per_s;
                bw = hw->link_nvlinks[i][j] * r;
            } else {
                /* Slow classes get the slower device's PCIe rate until measured (9.3). */
                double pa = pcie_bytes_per_s(a), pb = pcie_bytes_per_s(b);
                bw = pa < pb ? pa : pb;
            }
            if (bw <= 0) {
                intra_known = false;
                break;
            }
            if (intra == 0 || bw < intra)
                intra = bw;
        }
    hw->intra_bytes_per_s = intra_known ? intra : 0;
}

/* Derived figures of one GPU: memory bandwidth, SMs from cores, GeForce, peaks. */
static void finish_gpu(struct hw_gpu *g, const struct gpu_api *api, nvml_device d)
{
    if (!(g->known & HW_GPU_SMS) && api && api->num_cores && lanes_per_sm(g) > 0) {
        unsigned cores = 0;
        if (api->num_cores(d, &cores) == NVML_SUCCESS && cores > 0) {
            g->sm_count = (int)cores / lanes_per_sm(g);
            g->known |= HW_GPU_SMS;
        }
    }
    if (g->known & HW_GPU_MEM_CLOCK) {
        /* 2 (double data rate) x memory clock x bus width / 8 bits (strategy ref. 9.2). */
        g->mem_bw_bytes_per_s = 2.0 * g->mem_clock_mhz * 1e6 * g->bus_width_bits / 8.0;
        g->known |= HW_GPU_MEM_BW;
    }
    g->geforce = strstr(g->name, "GeForce") != NULL || strstr(g->name, "TITAN") != NULL;
    hw_gpu_fill_peaks(g);
    for (int t = 0; t < HW_DT_COUNT; t++)
        if (g->peak_flops[t] > 0)
            g->known |= HW_GPU_PEAK;
}

void hw_probe_gpus(struct hardware *hw)
{
    struct gpu_api api;
    memset(&api, 0, sizeof(api));
    char why[128] = "";
    bool have_nvml = load_nvml(&api, why, sizeof(why));
    load_cuda(&api);
    struct cuda_dev cdev[HW_MAX_GPUS];
    int n_cuda = cuda_list(&api, cdev, HW_MAX_GPUS);
    hw->n_gpus = 0;

    if (have_nvml) {
        nvml_return r = api.nvml_init();
        if (r != NVML_SUCCESS) {
            char buf[48];
            snprintf(why, sizeof(why), "%s", nvml_error(&api, r, buf, sizeof(buf)));
            have_nvml = false;
        }
    }
    if (have_nvml) {
        unsigned count = 0;
        nvml_return r = api.device_count(&count);
        if (r != NVML_SUCCESS) {
            char buf[48];
            snprintf(why, sizeof(why), "%s", nvml_error(&api, r, buf, sizeof(buf)));
            count = 0;
        } else if (count == 0) {
            snprintf(why, sizeof(why), "driver loaded, no device found");
        }
        if (api.driver_version) {
            char ver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = "";
            if (api.driver_version(ver, sizeof(ver)) == NVML_SUCCESS) {
                ver[sizeof(ver) - 1] = '\0';
                sw_strlcpy(hw->driver_version, ver, sizeof(hw->driver_version));
            }
        }
        nvml_device devs[HW_MAX_GPUS];
        struct pci_addr pci[HW_MAX_GPUS];
        struct nvlink_info nl[HW_MAX_GPUS];
        for (unsigned i = 0; i < count && hw->n_gpus < HW_MAX_GPUS; i++) {
            nvml_device d = NULL;
            if (api.device_handle(i, &d) != NVML_SUCCESS)
                continue; /* e.g. a GPU lost or without permission: skip it */
            int k = hw->n_gpus++;
            struct hw_gpu *g = &hw->gpus[k];
            memset(g, 0, sizeof(*g));
            devs[k] = d;
            pci[k] = (struct pci_addr){0};
            nvml_device_fill(&api, d, g, &pci[k]);
            for (int c = 0; c < n_cuda; c++)
                if (!cdev[c].matched && pci_equal(cdev[c].pci, pci[k])) {
                    cdev[c].matched = true;
                    merge_cuda(g, &cdev[c]);
                    break;
                }
            probe_nvlinks(&api, d, g, &nl[k]);
            finish_gpu(g, &api, d);
        }
        if (count > HW_MAX_GPUS)
            snprintf(hw->gpu_status, sizeof(hw->gpu_status),
                     "%u GPUs found; only the first %d are reported", count, HW_MAX_GPUS);
        if (hw->n_gpus > 0)
            desc_append(hw, ", %d x %s", hw->n_gpus, hw->gpus[0].name);
        fill_links(hw, &api, devs, pci, nl);
        fill_bandwidths(hw, nl);
        api.nvml_shutdown();
    } else if (n_cuda > 0) {
        /* No NVML but a working CUDA driver: the CUDA view, without links or free memory. */
        for (int c = 0; c < n_cuda; c++) {
            struct hw_gpu *g = &hw->gpus[hw->n_gpus++];
            memset(g, 0, sizeof(*g));
            merge_cuda(g, &cdev[c]);
            finish_gpu(g, NULL, NULL);
        }
        for (int i = 0; i < hw->n_gpus; i++)
            hw->link[i][i] = HW_LINK_SELF;
        desc_append(hw, ", %d x %s", hw->n_gpus, hw->gpus[0].name);
        snprintf(hw->gpu_status, sizeof(hw->gpu_status),
                 "NVML unavailable (%.80s): links and free memory unknown", why);
    }
    if (hw->n_gpus == 0)
        snprintf(hw->gpu_status, sizeof(hw->gpu_status), "no NVIDIA GPU: %.120s", why);
    if (!hw->driver_version[0] && api.cuda && api.cu_driver_version) {
        int v = 0;
        if (api.cu_driver_version(&v) == CUDA_SUCCESS && v > 0)
            snprintf(hw->driver_version, sizeof(hw->driver_version), "CUDA %d.%d", v / 1000,
                     (v % 1000) / 10);
    }
}

/* ---------------------------------------------------------------- NCCL and MPI */

typedef int (*nccl_version_fn)(int *version);
typedef int (*mpi_library_version_fn)(char *buf, int *len);

/* NCCL: the default search path first, then the CUDA toolkit's library folders. */
static void probe_nccl(struct hardware *hw)
{
    char paths[6][512];
    int n = 0;
    snprintf(paths[n++], sizeof(paths[0]), "libnccl.so.2");
    const char *cuda_home = getenv("CUDA_HOME");
    if (cuda_home && *cuda_home) {
        snprintf(paths[n++], sizeof(paths[0]), "%s/lib64/libnccl.so.2", cuda_home);
        snprintf(paths[n++], sizeof(paths[0]), "%s/targets/x86_64-linux/lib/libnccl.so.2",
                 cuda_home);
    }
    snprintf(paths[n++], sizeof(paths[0]), "/usr/local/cuda/lib64/libnccl.so.2");
    snprintf(paths[n++], sizeof(paths[0]), "/usr/local/cuda/targets/x86_64-linux/lib/libnccl.so.2");
    for (int i = 0; i < n; i++) {
        void *h = dlopen(paths[i], RTLD_LAZY | RTLD_LOCAL);
        if (!h)
            continue;
        nccl_version_fn get = (nccl_version_fn)sym1(h, "ncclGetVersion");
        int v = 0;
        if (!get || get(&v) != 0 || v <= 0)
            continue;
        hw->nccl_available = true;
        /* NCCL_VERSION_CODE: major*10000 + minor*100 + patch since 2.9, major*1000 before. */
        if (v >= 10000)
            snprintf(hw->nccl_version, sizeof(hw->nccl_version), "%d.%d.%d", v / 10000,
                     (v % 10000) / 100, v % 100);
        else
            snprintf(hw->nccl_version, sizeof(hw->nccl_version), "%d.%d.%d", v / 1000,
                     (v % 1000) / 100, v % 100);
        return;
    }
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        char full[1024];
        if (len > 0 && len < sizeof(full) - 64) {
            snprintf(full, sizeof(full), "%.*s/%s", (int)len, path, prog);
            if (access(full, X_OK) == 0)
                return true;
        }
        if (!end)
            break;
        path = end + 1;
    }
    return false;
}

/* MPI: the library's own version string (MPI_Get_library_version may be called before
 * MPI_Init, MPI-3.0 section 8.1.1); failing that, an mpirun on PATH. */
static void probe_mpi(struct hardware *hw)
{
    static const char *const sonames[] = {"libmpi.so.40", "libmpi.so.12", "libmpi.so", NULL};
    for (int i = 0; sonames[i]; i++) {
        void *h = dlopen(sonames[i], RTLD_LAZY | RTLD_LOCAL);
        if (!h)
            continue;
        hw->mpi_available = true;
        mpi_library_version_fn get = (mpi_library_version_fn)sym1(h, "MPI_Get_library_version");
        char buf[8192]; /* MPI_MAX_LIBRARY_VERSION_STRING is 8192 in MPICH */
        int len = 0;
        if (get && get(buf, &len) == 0 && len > 0) {
            buf[len < (int)sizeof(buf) ? len : (int)sizeof(buf) - 1] = '\0';
            /* First line, up to the first comma: "Open MPI v4.1.4", "MPICH Version: 4.0". */
            size_t cut = strcspn(buf, ",\n");
            buf[cut] = '\0';
            for (char *p = buf; *p; p++)
                if (*p == '\t')
                    *p = ' ';
            sw_strlcpy(hw->mpi_version, buf, sizeof(hw->mpi_version));
        }
        return;
    }
    if (on_path("mpirun") || on_path("mpiexec"))
        hw->mpi_available = true;
}

void hw_probe_comm_libs(struct hardware *hw)
{
    hw->nccl_available = false;
    hw->nccl_version[0] = '\0';
    hw->mpi_available = false;
    hw->mpi_version[0] = '\0';
    probe_nccl(hw);
    probe_mpi(hw);
}
