/* fake_nvml.c — a stand-in for libnvidia-ml.so.1 that reports the canned machines of
 * fake_gpu.h, so the probe's real dlopen/dlsym code runs on machines without a GPU. It
 * exports the NVML entry points advisor/probe_gpu.c resolves, with NVML's ABI (types declared
 * here independently of advisor/gpu_driver_int.h, so a layout mistake on either side shows up
 * as a wrong figure in the tests). It is strict where a real driver is: calls before
 * nvmlInit fail with UNINITIALIZED, the v2 memory query rejects a wrong struct version, and
 * NVLink queries past the last link fail with INVALID_ARGUMENT. SW_FAKE_NVML_OLD=1 plays an
 * older driver whose v2 memory query answers ARGUMENT_VERSION_MISMATCH. fake_nvml_counter()
 * (not an NVML symbol) lets a test see which calls the probe made. */
#include <stdio.h>
#include <string.h>

#include "fake_gpu.h"

typedef int nvmlReturn_t;

#define OK 0
#define ERR_UNINITIALIZED 1
#define ERR_INVALID_ARGUMENT 2
#define ERR_NOT_SUPPORTED 3
#define ERR_INSUFFICIENT_SIZE 7
#define ERR_DRIVER_NOT_LOADED 9
#define ERR_VERSION_MISMATCH 25

typedef struct fake_dev {
    int index;
} * nvmlDevice_t;

typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

static const struct fake_machine *machine;
static int init_count;
static struct fake_dev devs[FAKE_MAX_GPUS];
static int n_memory_v2_ok, n_memory_v2_mismatch, n_memory_v1;

/* Test hook: "init_count" (inits not yet shut down), "memory_v2_ok", "memory_v2_mismatch",
 * "memory_v1"; -1 for an unknown name. */
int fake_nvml_counter(const char *name)
{
    if (!strcmp(name, "init_count"))
        return init_count;
    if (!strcmp(name, "memory_v2_ok"))
        return n_memory_v2_ok;
    if (!strcmp(name, "memory_v2_mismatch"))
        return n_memory_v2_mismatch;
    if (!strcmp(name, "memory_v1"))
        return n_memory_v1;
    return -1;
}

static int dev_index(nvmlDevice_t d)
{
    if (!machine || init_count <= 0 || !d)
        return -1;
    for (int i = 0; i < machine->n_gpus; i++)
        if (d == &devs[i])
            return i;
    return -1;
}

/* A device argument check that every device call starts with. */
#define DEV_OR_FAIL(d, idx)                                                                        \
    int idx = dev_index(d);                                                                        \
    if (idx < 0)                                                                                   \
        return init_count > 0 ? ERR_INVALID_ARGUMENT : ERR_UNINITIALIZED;

static unsigned bus_number(int i)
{
    unsigned b = 0;
    sscanf(machine->bus[i], "%x", &b);
    return b;
}

nvmlReturn_t nvmlInit_v2(void)
{
    const struct fake_machine *m = fake_machine_from_env();
    if (!m)
        return ERR_DRIVER_NOT_LOADED;
    machine = m;
    for (int i = 0; i < FAKE_MAX_GPUS; i++)
        devs[i].index = i;
    init_count++;
    return OK;
}

nvmlReturn_t nvmlInit(void)
{
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void)
{
    if (init_count <= 0)
        return ERR_UNINITIALIZED;
    init_count--;
    return OK;
}

const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case OK:
        return "Success";
    case ERR_UNINITIALIZED:
        return "Uninitialized";
    case ERR_INVALID_ARGUMENT:
        return "Invalid Argument";
    case ERR_NOT_SUPPORTED:
        return "Not Supported";
    case ERR_DRIVER_NOT_LOADED:
        return "Driver Not Loaded";
    case ERR_VERSION_MISMATCH:
        return "Argument Version Mismatch";
    default:
        return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned len)
{
    if (init_count <= 0)
        return ERR_UNINITIALIZED;
    if (len < 10)
        return ERR_INSUFFICIENT_SIZE;
    snprintf(buf, len, "550.54.15");
    return OK;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count)
{
    if (init_count <= 0)
        return ERR_UNINITIALIZED;
    *count = (unsigned)machine->n_gpus;
    return OK;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *d)
{
    if (init_count <= 0)
        return ERR_UNINITIALIZED;
    if (index >= (unsigned)machine->n_gpus)
        return ERR_INVALID_ARGUMENT;
    *d = &devs[index];
    return OK;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned len)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    if (len < strlen(machine->name) + 1)
        return ERR_INSUFFICIENT_SIZE;
    snprintf(buf, len, "%s", machine->name);
    return OK;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned len)
{
    DEV_OR_FAIL(d, i);
    snprintf(buf, len, "GPU-fa4e0000-0000-4000-8000-%012x", 0x100 * (unsigned)i + bus_number(i));
    return OK;
}

/* v3: "00000000:18:00.0" in busId, the 4-digit-domain form in busIdLegacy. */
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p)
{
    DEV_OR_FAIL(d, i);
    memset(p, 0, sizeof(*p));
    p->bus = bus_number(i);
    p->pciDeviceId = 0x233010de;
    snprintf(p->busId, sizeof(p->busId), "00000000:%s:00.0", machine->bus[i]);
    snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "0000:%s:00.0", machine->bus[i]);
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
    DEV_OR_FAIL(d, i);
    const char *old = getenv("SW_FAKE_NVML_OLD");
    if (m->version != (unsigned)(sizeof(nvmlMemory_v2_t) | (2u << 24)) || (old && *old == '1')) {
        n_memory_v2_mismatch++;
        return ERR_VERSION_MISMATCH;
    }
    n_memory_v2_ok++;
    m->total = machine->mem_total_mib << 20;
    m->reserved = 512ull << 20;
    m->used = m->reserved + ((unsigned long long)i << 30); /* GPU i has i GiB in use */
    m->free = m->total - m->used;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
    DEV_OR_FAIL(d, i);
    n_memory_v1++;
    m->total = machine->mem_total_mib << 20;
    m->used = (512ull << 20) + ((unsigned long long)i << 30);
    m->free = m->total - m->used;
    return OK;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *major = machine->cc_major;
    *minor = machine->cc_minor;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t d, int type, unsigned *mhz)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    if (type == 0 || type == 1) /* graphics, SM */
        *mhz = machine->sm_clock_mhz;
    else if (type == 2) /* memory */
        *mhz = machine->mem_clock_mhz;
    else
        return ERR_INVALID_ARGUMENT;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryBusWidth(nvmlDevice_t d, unsigned *bits)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *bits = machine->bus_width_bits;
    return OK;
}

nvmlReturn_t nvmlDeviceGetNumGpuCores(nvmlDevice_t d, unsigned *cores)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *cores = (unsigned)machine->cores;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t d, unsigned *gen)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *gen = machine->pcie_gen;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t d, unsigned *width)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *width = machine->pcie_width;
    return OK;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned *mw)
{
    DEV_OR_FAIL(d, i);
    (void)i;
    *mw = machine->power_limit_mw;
    return OK;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned *c)
{
    DEV_OR_FAIL(d, i);
    if (sensor != 0)
        return ERR_INVALID_ARGUMENT;
    *c = 30u + (unsigned)i; /* GPU i reads 30+i degrees: lets tests check the index order */
    return OK;
}

/* ---- NVLink: every link of these machines goes to an NVSwitch */

static nvmlReturn_t link_check(nvmlDevice_t d, unsigned link)
{
    if (dev_index(d) < 0)
        return init_count > 0 ? ERR_INVALID_ARGUMENT : ERR_UNINITIALIZED;
    if (machine->nvlinks == 0)
        return ERR_NOT_SUPPORTED;
    if (link >= (unsigned)machine->nvlinks)
        return ERR_INVALID_ARGUMENT;
    return OK;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned link, unsigned *active)
{
    nvmlReturn_t r = link_check(d, link);
    if (r == OK)
        *active = 1; /* NVML_FEATURE_ENABLED */
    return r;
}

nvmlReturn_t nvmlDeviceGetNvLinkVersion(nvmlDevice_t d, unsigned link, unsigned *version)
{
    nvmlReturn_t r = link_check(d, link);
    if (r == OK)
        *version = machine->nvlink_version;
    return r;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t d, unsigned link, unsigned *type)
{
    nvmlReturn_t r = link_check(d, link);
    if (r == OK)
        *type = 2; /* NVML_NVLINK_DEVICE_TYPE_SWITCH */
    return r;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t d, unsigned link, nvmlPciInfo_t *p)
{
    nvmlReturn_t r = link_check(d, link);
    if (r != OK)
        return r;
    memset(p, 0, sizeof(*p));
    /* Four NVSwitch chips on buses C0..C3, links spread over them. */
    snprintf(p->busId, sizeof(p->busId), "00000000:C%u:00.0", link % 4);
    snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "0000:C%u:00.0", link % 4);
    return OK;
}

/* ---- pairs */

nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t a, nvmlDevice_t b, int *level)
{
    int i = dev_index(a), j = dev_index(b);
    if (i < 0 || j < 0)
        return init_count > 0 ? ERR_INVALID_ARGUMENT : ERR_UNINITIALIZED;
    if (machine->socket[i] != machine->socket[j])
        *level = 50; /* SYSTEM */
    else if (i / 2 == j / 2)
        *level = 10; /* SINGLE: GPU pairs 0-1, 2-3, ... share a PCIe switch */
    else
        *level = 40; /* NODE */
    return OK;
}

nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t a, nvmlDevice_t b, int caps, int *status)
{
    int i = dev_index(a), j = dev_index(b);
    if (i < 0 || j < 0)
        return init_count > 0 ? ERR_INVALID_ARGUMENT : ERR_UNINITIALIZED;
    (void)caps;
    /* PCIe-only machine: no P2P across sockets (NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED). */
    *status = (machine->nvlinks == 0 && machine->socket[i] != machine->socket[j]) ? 1 : 0;
    return OK;
}
