/* fake_cuda.c — a stand-in for libcuda.so.1 that reports the canned machines of fake_gpu.h
 * through the CUDA driver API entry points advisor/probe_gpu.c resolves. CUDA enumerates the
 * GPUs in the reverse of NVML's order and prints the PCI domain with 4 digits and lowercase
 * hex, so the probe's match by bus id (not by index or string) is what the tests exercise.
 * With no machine selected, cuInit fails with CUDA_ERROR_NO_DEVICE. */
#include <stddef.h>
#include <stdio.h>

#include "fake_gpu.h"

typedef int CUresult;
typedef int CUdevice;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_INVALID_DEVICE 101

static const struct fake_machine *machine;

CUresult cuInit(unsigned flags)
{
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    machine = fake_machine_from_env();
    return machine ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

CUresult cuDriverGetVersion(int *v)
{
    *v = 12040;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count)
{
    if (!machine)
        return CUDA_ERROR_NOT_INITIALIZED;
    *count = machine->n_gpus;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
    if (!machine)
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal < 0 || ordinal >= machine->n_gpus)
        return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}

/* CUDA ordinal k is NVML index n-1-k. */
static int nvml_index(CUdevice d)
{
    return machine->n_gpus - 1 - d;
}

static int valid(CUdevice d)
{
    return machine && d >= 0 && d < machine->n_gpus;
}

CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d)
{
    if (!valid(d))
        return machine ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_NOT_INITIALIZED;
    switch (attr) {
    case 13: /* CLOCK_RATE, kHz */
        *v = (int)machine->sm_clock_mhz * 1000;
        break;
    case 16: /* MULTIPROCESSOR_COUNT */
        *v = machine->sms;
        break;
    case 18: /* INTEGRATED */
        *v = 0;
        break;
    case 36: /* MEMORY_CLOCK_RATE, kHz */
        *v = (int)machine->mem_clock_mhz * 1000;
        break;
    case 37: /* GLOBAL_MEMORY_BUS_WIDTH, bits */
        *v = (int)machine->bus_width_bits;
        break;
    case 75:
        *v = machine->cc_major;
        break;
    case 76:
        *v = machine->cc_minor;
        break;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *buf, int len, CUdevice d)
{
    if (!valid(d))
        return machine ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_NOT_INITIALIZED;
    unsigned bus = 0;
    sscanf(machine->bus[nvml_index(d)], "%x", &bus);
    snprintf(buf, (size_t)len, "0000:%02x:00.0", bus);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *buf, int len, CUdevice d)
{
    if (!valid(d))
        return machine ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_NOT_INITIALIZED;
    snprintf(buf, (size_t)len, "%s", machine->name);
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
    if (!valid(d))
        return machine ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_NOT_INITIALIZED;
    *bytes = (size_t)(machine->mem_total_mib << 20);
    return CUDA_SUCCESS;
}
