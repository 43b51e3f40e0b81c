/* The CUDA header library_types.h, emulated on the CPU (tests/cuda_emu): the data types the
 * cuBLASLt fake (tests/cuda_emu/include/cublasLt.h) accepts, with the toolkit's values. */
#ifndef SW_CUDA_EMU_LIBRARY_TYPES_H
#define SW_CUDA_EMU_LIBRARY_TYPES_H

typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_8I = 3,
    CUDA_R_32I = 10,
    CUDA_R_16BF = 14,
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;

#endif
