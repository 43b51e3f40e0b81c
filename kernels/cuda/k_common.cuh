/* kernels/cuda/k_common.cuh — device-side helpers shared by the k_*.cu kernel files: loads and
 * stores that widen bf16 to fp32 (every kernel accumulates in fp32), warp and block reductions
 * in a fixed order (so results do not depend on scheduling), and the grid-stride loop bounds.
 * Host-side launch helpers and the entry prototypes are in cuda_int.cuh (the plugin's). */
#ifndef SW_K_COMMON_CUH
#define SW_K_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#define KC_FULL_MASK 0xffffffffu

/* fp32 view of an activation element, and the store back (bf16: round to nearest even). */
static __device__ __forceinline__ float kc_ld(const float *p)
{
    return *p;
}
static __device__ __forceinline__ float kc_ld(const __nv_bfloat16 *p)
{
    return __bfloat162float(*p);
}
static __device__ __forceinline__ void kc_st(float *p, float x)
{
    *p = x;
}
static __device__ __forceinline__ void kc_st(__nv_bfloat16 *p, float x)
{
    *p = __float2bfloat16_rn(x);
}

/* Butterfly reductions: every lane ends with the same value, the same on every run. */
static __device__ __forceinline__ float kc_warp_sum(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(KC_FULL_MASK, x, o);
    return x;
}
static __device__ __forceinline__ double kc_warp_sum_d(double x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(KC_FULL_MASK, x, o);
    return x;
}
static __device__ __forceinline__ float kc_warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(KC_FULL_MASK, x, o));
    return x;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
 * sh: 32 floats of shared memory, reusable after the call returns. */
static __device__ __forceinline__ float kc_block_sum(float x, float *sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = kc_warp_sum(x);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0)
        sh[warp] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0f;
    return kc_warp_sum(x);
}
static __device__ __forceinline__ double kc_block_sum_d(double x, double *sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = kc_warp_sum_d(x);
    __syncthreads();
    if (lane == 0)
        sh[warp] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0;
    return kc_warp_sum_d(x);
}
static __device__ __forceinline__ float kc_block_max(float x, float *sh)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = kc_warp_max(x);
    __syncthreads();
    if (lane == 0)
        sh[warp] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : -INFINITY;
    return kc_warp_max(x);
}

/* Grid-stride loop helpers over size_t ranges. */
static __device__ __forceinline__ size_t kc_gtid(void)
{
    return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}
static __device__ __forceinline__ size_t kc_gstride(void)
{
    return (size_t)gridDim.x * blockDim.x;
}

/* True when every pointer is 16-byte aligned (float4 loads are legal). */
static inline bool kc_aligned16(const void *a, const void *b = nullptr, const void *c = nullptr)
{
    return (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15u) == 0;
}

/* The bf16 view of a uint16_t buffer (the entries' bf16 bit patterns), so that the templated
 * kernels pick the kc_ld / kc_st overloads that widen and round. */
static inline __nv_bfloat16 *kc_bf16(uint16_t *p)
{
    return reinterpret_cast<__nv_bfloat16 *>(p);
}
static inline const __nv_bfloat16 *kc_bf16(const uint16_t *p)
{
    return reinterpret_cast<const __nv_bfloat16 *>(p);
}

/* ---------------------------------------------------------------- extra entries
 * C-linkage entries of the k_*.cu files beyond the backend table (declared here so the files
 * and tests/gpu agree on them): one-launch optimizer updates over many parameter segments, and
 * bf16 variants of the attention kernels. Pointers are device pointers. */

/* The segments are executor/backend.h's struct backend_opt_seg, the array in device memory. */

/* The update of kcuda_adamw_step (etc.) over every segment in ONE launch; max_n is the largest
 * segment's n (it sizes the grid). Same formulas, bit for bit, as the per-segment entries. */
extern "C" void kcuda_adamw_step_multi(float *param, const float *grad, float *m, float *v,
                                       const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                       int step, float lr, float beta1, float beta2, float eps);
extern "C" void kcuda_sgd_step_multi(float *param, const float *grad,
                                     const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                     float lr);
extern "C" void kcuda_sgd_momentum_step_multi(float *param, const float *grad, float *buf,
                                              const struct backend_opt_seg *segs, int nseg,
                                              size_t max_n, float lr, float momentum,
                                              bool nesterov);
extern "C" void kcuda_lion_step_multi(float *param, const float *grad, float *m,
                                      const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                      float lr, float beta1, float beta2);
extern "C" void kcuda_adamw8bit_step_multi(float *param, const float *grad, void *state,
                                           const struct backend_opt_seg *segs, int nseg,
                                           size_t max_n, int step, float lr, float beta1,
                                           float beta2, float eps);

/* bf16 activations (fp32 accumulation, fp32 lse); layouts as the fp32 entries. */
extern "C" void kcuda_flash_attention_forward_bf16(__nv_bfloat16 *out, float *lse,
                                                   const __nv_bfloat16 *qkv, int B, int T, int NH,
                                                   int NKV, int HS);
extern "C" void kcuda_flash_attention_backward_bf16(__nv_bfloat16 *dqkv,
                                                    const __nv_bfloat16 *dout,
                                                    const __nv_bfloat16 *qkv,
                                                    const __nv_bfloat16 *out, const float *lse,
                                                    int B, int T, int NH, int NKV, int HS);
extern "C" void kcuda_kv_cache_append_bf16(__nv_bfloat16 *k_cache, __nv_bfloat16 *v_cache,
                                           const __nv_bfloat16 *qkv, int B, int T_new, int pos,
                                           int NH, int NKV, int HS, int cache_T);
extern "C" void kcuda_attention_decode_bf16(__nv_bfloat16 *out, const __nv_bfloat16 *qkv,
                                            const __nv_bfloat16 *k_cache,
                                            const __nv_bfloat16 *v_cache, int B, int T_new,
                                            int pos, int NH, int NKV, int HS, int cache_T);

/* GPT-2's tanh GELU and its derivative, kernels/cpu/activation.c's float operations:
 * gelu(x) = 0.5·x·(1 + tanh u), d/dx = 0.5·(1 + tanh u) + 0.5·x·sech²u·k(1 + 3a·x²), with
 * u = k(x + a·x³), k = sqrt(2/π), a = 0.044715. */
#define KC_GELU_K 0.7978845608028654f
#define KC_GELU_A 0.044715f
static __device__ __forceinline__ float kc_gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(KC_GELU_K * (x + KC_GELU_A * x * x * x)));
}
static __device__ __forceinline__ float kc_gelu_grad(float x)
{
    float th = tanhf(KC_GELU_K * (x + KC_GELU_A * x * x * x));
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * KC_GELU_K * (1.0f + 3.0f * KC_GELU_A * x * x);
}

#endif
