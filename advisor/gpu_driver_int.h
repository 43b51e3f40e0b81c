/* gpu_driver_int.h — our own minimal declarations of the NVIDIA Management Library (NVML) and
 * CUDA driver API entry points the probe uses, and the table of function pointers the probe
 * fills with dlsym. No NVIDIA header is included (nvml.h is not shipped with the toolkit here,
 * and the core must build without any toolkit): the types, constants and signatures below were
 * checked against NVML 13.3's nvml.h (as copied in NVIDIA/go-nvml gen/nvml/nvml.h) and CUDA 13's
 * cuda.h; see docs/hardware-and-distributed.md section 1. Only advisor/probe_gpu.c includes it.
 *
 * Conventions kept from nvtop/NCCL: nvmlReturn_t and CUresult are plain ints, handles are opaque
 * pointers, each entry point is resolved newest version first with fallbacks, a missing
 * optional symbol stays NULL and is checked at use, and the libraries are never dlclose'd. */
#ifndef SW_GPU_DRIVER_INT_H
#define SW_GPU_DRIVER_INT_H

#include <stdbool.h>
#include <stddef.h>

/* ---------------------------------------------------------------- NVML */

typedef int nvml_return;                    /* nvmlReturn_t */
typedef struct nvml_device_st *nvml_device; /* nvmlDevice_t (opaque) */

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16
/* NVML_NVLINK_MAX_LINKS in NVML 13 headers; the loop also stops at the first error. */
#define NVML_NVLINK_MAX_LINKS 36

/* nvmlPciInfo_t (v3 layout). The v1/v2 calls fill the same first 16 bytes with the legacy
 * bus id and leave `bus_id` alone, so one struct serves all three versions. */
struct nvml_pci_info {
    char bus_id_legacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned domain;
    unsigned bus;
    unsigned device;
    unsigned pci_device_id;
    unsigned pci_subsystem_id;
    char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
};

/* nvmlMemory_t (v1). */
struct nvml_memory_v1 {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
};

/* nvmlMemory_v2_t: `version` must be NVML_STRUCT_VERSION(Memory, 2) =
 * sizeof(nvmlMemory_v2_t) | 2 << 24 = 0x02000028 (not 2, as nvtop passes). */
struct nvml_memory_v2 {
    unsigned version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
};
#define NVML_MEMORY_V2_VERSION 0x02000028u

/* nvmlClockType_t */
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
/* nvmlTemperatureSensors_t */
#define NVML_TEMPERATURE_GPU 0
/* nvmlEnableState_t */
#define NVML_FEATURE_ENABLED 1
/* nvmlIntNvLinkDeviceType_t */
#define NVML_NVLINK_DEVICE_TYPE_GPU 0
#define NVML_NVLINK_DEVICE_TYPE_SWITCH 2
/* nvmlNvlinkVersion_t: 1 = NVLink 1.0, 2 = 2.0, 3 = 2.2, 4 = 3.0, 5 = 3.1, 6 = 4.0, 7 = 5.0 */
#define NVML_NVLINK_VERSION_1_0 1
#define NVML_NVLINK_VERSION_5_0 7
/* nvmlGpuTopologyLevel_t (the levels of `nvidia-smi topo -m` and NCCL_P2P_LEVEL) */
#define NVML_TOPOLOGY_INTERNAL 0
#define NVML_TOPOLOGY_SINGLE 10
#define NVML_TOPOLOGY_MULTIPLE 20
#define NVML_TOPOLOGY_HOSTBRIDGE 30
#define NVML_TOPOLOGY_NODE 40
#define NVML_TOPOLOGY_SYSTEM 50
/* nvmlGpuP2PCapsIndex_t / nvmlGpuP2PStatus_t */
#define NVML_P2P_CAPS_INDEX_READ 0
#define NVML_P2P_STATUS_OK 0

typedef nvml_return (*nvml_void_fn)(void);
typedef const char *(*nvml_error_string_fn)(nvml_return);
typedef nvml_return (*nvml_str_fn)(char *buf, unsigned len);
typedef nvml_return (*nvml_int_out_fn)(int *out);
typedef nvml_return (*nvml_count_fn)(unsigned *count);
typedef nvml_return (*nvml_handle_fn)(unsigned index, nvml_device *dev);
typedef nvml_return (*nvml_dev_str_fn)(nvml_device dev, char *buf, unsigned len);
typedef nvml_return (*nvml_dev_pci_fn)(nvml_device dev, struct nvml_pci_info *pci);
typedef nvml_return (*nvml_dev_mem_v1_fn)(nvml_device dev, struct nvml_memory_v1 *mem);
typedef nvml_return (*nvml_dev_mem_v2_fn)(nvml_device dev, struct nvml_memory_v2 *mem);
typedef nvml_return (*nvml_dev_cc_fn)(nvml_device dev, int *major, int *minor);
typedef nvml_return (*nvml_dev_uint_fn)(nvml_device dev, unsigned *out);
typedef nvml_return (*nvml_dev_sel_uint_fn)(nvml_device dev, int which, unsigned *out);
typedef nvml_return (*nvml_dev_link_uint_fn)(nvml_device dev, unsigned link, unsigned *out);
typedef nvml_return (*nvml_dev_link_pci_fn)(nvml_device dev, unsigned link,
                                            struct nvml_pci_info *pci);
typedef nvml_return (*nvml_pair_int_fn)(nvml_device a, nvml_device b, int *out);
typedef nvml_return (*nvml_pair_sel_int_fn)(nvml_device a, nvml_device b, int which, int *out);

/* ---------------------------------------------------------------- CUDA driver */

typedef int cu_result; /* CUresult */
typedef int cu_device; /* CUdevice */

#define CUDA_SUCCESS 0
#define CUDA_ERROR_NO_DEVICE 100

/* CUdevice_attribute ids (CUDA 13 cuda.h) */
#define CU_ATTR_CLOCK_RATE 13 /* kHz */
#define CU_ATTR_MULTIPROCESSOR_COUNT 16
#define CU_ATTR_INTEGRATED 18
#define CU_ATTR_MEMORY_CLOCK_RATE 36       /* kHz */
#define CU_ATTR_GLOBAL_MEMORY_BUS_WIDTH 37 /* bits */
#define CU_ATTR_CC_MAJOR 75
#define CU_ATTR_CC_MINOR 76

typedef cu_result (*cu_init_fn)(unsigned flags);
typedef cu_result (*cu_int_out_fn)(int *out);
typedef cu_result (*cu_device_get_fn)(cu_device *dev, int ordinal);
typedef cu_result (*cu_attr_fn)(int *out, int attr, cu_device dev);
typedef cu_result (*cu_dev_str_fn)(char *buf, int len, cu_device dev);
typedef cu_result (*cu_total_mem_fn)(size_t *bytes, cu_device dev);
typedef cu_result (*cu_error_string_fn)(cu_result r, const char **s);

/* ---------------------------------------------------------------- the table */

/* What the probe resolved. `nvml` / `cuda` are the dlopen handles (NULL when that library is
 * absent); they are never dlclose'd (NCCL does the same: NVML has had unload bugs, and a
 * handle may still be referenced). Mandatory entry points are non-NULL whenever the handle
 * is; optional ones may be NULL. */
struct gpu_api {
    void *nvml;
    nvml_void_fn nvml_init; /* nvmlInit_v2 -> nvmlInit */
    nvml_void_fn nvml_shutdown;
    nvml_error_string_fn nvml_error_string; /* optional */
    nvml_str_fn driver_version;             /* optional: nvmlSystemGetDriverVersion */
    nvml_count_fn device_count;             /* nvmlDeviceGetCount_v2 -> nvmlDeviceGetCount */
    nvml_handle_fn device_handle;           /* nvmlDeviceGetHandleByIndex_v2 -> ...ByIndex */
    nvml_dev_str_fn device_name;
    nvml_dev_str_fn device_uuid;          /* optional */
    nvml_dev_pci_fn pci_info;             /* optional: _v3 -> _v2 -> plain */
    bool pci_info_v3;                     /* whether pci_info fills bus_id (else bus_id_legacy) */
    nvml_dev_mem_v2_fn memory_v2;         /* optional */
    nvml_dev_mem_v1_fn memory_v1;         /* optional */
    nvml_dev_cc_fn compute_capability;    /* optional */
    nvml_dev_sel_uint_fn max_clock;       /* optional: nvmlDeviceGetMaxClockInfo (MHz) */
    nvml_dev_uint_fn bus_width;           /* optional: nvmlDeviceGetMemoryBusWidth (bits) */
    nvml_dev_uint_fn num_cores;           /* optional: nvmlDeviceGetNumGpuCores */
    nvml_dev_uint_fn pcie_max_gen;        /* optional: nvmlDeviceGetMaxPcieLinkGeneration */
    nvml_dev_uint_fn pcie_max_width;      /* optional: nvmlDeviceGetMaxPcieLinkWidth */
    nvml_dev_link_uint_fn nvlink_state;   /* optional */
    nvml_dev_link_uint_fn nvlink_version; /* optional */
    nvml_dev_link_uint_fn nvlink_remote_type; /* optional */
    nvml_dev_link_pci_fn nvlink_remote_pci;   /* optional: _v2 */
    nvml_pair_int_fn topo_common_ancestor;    /* optional */
    nvml_pair_sel_int_fn p2p_status;          /* optional */
    nvml_dev_uint_fn power_limit;             /* optional: nvmlDeviceGetEnforcedPowerLimit (mW) */
    nvml_dev_sel_uint_fn temperature;         /* optional: nvmlDeviceGetTemperature (deg C) */

    void *cuda;
    cu_init_fn cu_init;
    cu_int_out_fn cu_device_count;
    cu_device_get_fn cu_device_get;
    cu_attr_fn cu_attribute;
    cu_dev_str_fn cu_pci_bus_id;        /* optional */
    cu_dev_str_fn cu_name;              /* optional */
    cu_total_mem_fn cu_total_mem;       /* optional: cuDeviceTotalMem_v2 */
    cu_int_out_fn cu_driver_version;    /* optional */
    cu_error_string_fn cu_error_string; /* optional */
};

#endif
