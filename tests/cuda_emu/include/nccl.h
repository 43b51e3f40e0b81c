/* The NCCL header nccl.h, reduced to what kernels/cuda/comm_nccl.cu checks its own declarations
 * against (it includes nccl.h when __has_include finds one): the unique id and the result,
 * data-type and reduction enums of NCCL 2.x, with NCCL 2.28's values. This header stands in for
 * the toolkit's, which would pull in the real CUDA headers the emulation replaces; NCCL itself
 * is still dlopen'ed at run time by comm_nccl.cu (and is absent under the emulation). */
#ifndef SW_CUDA_EMU_NCCL_H
#define SW_CUDA_EMU_NCCL_H

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef enum {
    ncclInt8 = 0,
    ncclUint8 = 1,
    ncclInt32 = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6,
    ncclFloat32 = 7,
    ncclFloat64 = 8,
    ncclBfloat16 = 9
} ncclDataType_t;

#endif
