/* The cuBLASLt header, emulated on the CPU (tests/cuda_emu): exactly the part of the API that
 * kernels/cuda/matmul.cu uses, with the toolkit's names, signatures and enum values, so that file
 * compiles unchanged under g++. tests/cuda_emu/cublaslt_emu.cpp implements it: a plain
 * column-major GEMM D = alpha·op(A)·op(B) + beta·C with the epilogues DEFAULT, BIAS, GELU_AUX
 * and GELU_AUX_BIAS, fp32 / bf16 / fp16 operands converted exactly (TF32 compute rounds each fp32
 * operand to 10 mantissa bits, nearest, ties away from zero, as cvt.rna.tf32.f32), products
 * summed in double, written as fp32 or, with 16-bit operands, in their type (rounded to
 * nearest even; the bias and the GELU aux then take that type too). It checks the arguments
 * real cuBLASLt checks where that is cheap (attribute sizes, leading dimensions, shapes, types, alignment the algorithm was chosen for,
 * workspace, in-place C == D, overlapping output) and reports each refusal on stderr; docs/cuda.md
 * ("Kernel logic without a GPU") says what it does not model.
 * The emu_cublaslt_* functions at the end are test hooks, not cuBLASLt API. */
#ifndef SW_CUDA_EMU_CUBLASLT_H
#define SW_CUDA_EMU_CUBLASLT_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_emu.h"
#include "library_types.h"

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_32I = 72,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77
} cublasComputeType_t;

typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_t *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_t *cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque_t *cublasLtMatmulPreference_t;

/* Semi-opaque, as in the toolkit (the fake keeps its fingerprint of the problem in data[]). */
typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

/* Attribute value types as documented: TRANSA/TRANSB int32_t, EPILOGUE uint32_t, pointers
 * void *, AUX_LD int64_t, the *_DATA_TYPE int32_t, COMPUTE_TYPE int32_t, SCALE_TYPE int32_t. */
typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_TRANSC = 5,
    CUBLASLT_MATMUL_DESC_FILL_MODE = 6,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
    CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE = 13,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26
} cublasLtMatmulDescAttributes_t;

typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_RELU = 2,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_RELU_BIAS = 6,
    CUBLASLT_EPILOGUE_DRELU = 8 | 128,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_BIAS = 36,
    CUBLASLT_EPILOGUE_RELU_AUX = 2 | 128,
    CUBLASLT_EPILOGUE_RELU_AUX_BIAS = 6 | 128,
    CUBLASLT_EPILOGUE_GELU_AUX = 32 | 128,
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 36 | 128,
    CUBLASLT_EPILOGUE_DGELU = 64 | 128,
    CUBLASLT_EPILOGUE_DGELU_BGRAD = 64 | 128 | 16,
    CUBLASLT_EPILOGUE_BGRADA = 256,
    CUBLASLT_EPILOGUE_BGRADB = 512
} cublasLtEpilogue_t;

/* MAX_WORKSPACE_BYTES uint64_t, MIN_ALIGNMENT_* uint32_t. */
typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle);
const char *cublasLtGetStatusString(cublasStatus_t status);

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size_bytes);

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout);

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size_bytes);

cublasStatus_t
cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                               cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                               cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                               cublasLtMatmulPreference_t pref, int requested,
                               cublasLtMatmulHeuristicResult_t results[], int *returned);

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream);

/* ---------------------------------------------------------------- test hooks (not cuBLASLt) */

/* What cublasLtMatmulAlgoGetHeuristic refuses (CUBLAS_STATUS_NOT_SUPPORTED, 0 results), to run
 * the callers' fallbacks: EMU_LT_REFUSE_ENV (the default) reads the environment variable
 * SCALEWISE_EMU_CUBLASLT_NO_ALGO at every call ("epilogue": every epilogue but DEFAULT, "all":
 * everything, unset or anything else: nothing). */
enum emu_lt_refuse {
    EMU_LT_REFUSE_ENV,
    EMU_LT_REFUSE_NONE,
    EMU_LT_REFUSE_EPILOGUE,
    EMU_LT_REFUSE_ALL
};
void emu_cublaslt_set_refuse(enum emu_lt_refuse mode);

/* Counters since the start (the tests take differences) and live objects. */
struct emu_lt_stats {
    long heuristic_calls, heuristic_refused; /* refused: no algorithm returned, any reason */
    long matmuls;                            /* successful cublasLtMatmul calls */
    long matmuls_bias, matmuls_gelu_aux;     /* ... with BIAS / GELU_AUX or GELU_AUX_BIAS */
    long matmuls_dgelu;                      /* ... with DGELU */
    long failures;                           /* calls that returned an error status */
    int live_handles, live_descs, live_layouts, live_prefs;
};
void emu_cublaslt_stats(struct emu_lt_stats *out);

/* The reason of the last refusal or failure ("" if none yet); quiet: refusals are not printed
 * (the negative tests check the reason instead). */
const char *emu_cublaslt_last_error(void);
void emu_cublaslt_set_quiet(bool quiet);

/* The operand rounding of CUBLAS_COMPUTE_32F_FAST_TF32 (exported for the fake's self-test). */
float emu_cublaslt_round_tf32(float x);

#endif
