/* kernels/cuda/cuda_int.cuh — internals shared by the files of the CUDA plugin
 * (build/libscalewise-cuda.so): error checks, the device allocator, the one stream, launch
 * helpers, and the C-linkage prototypes of every kernel entry the backend table points at.
 * Nothing outside kernels/cuda/ includes this header; the core sees only struct backend
 * (executor/backend.h) through the loader (executor/backend_cuda_loader.c).
 *
 * Ownership of the entries:
 *  - plugin.cu: the exported scalewise_cuda_backend(), device selection, cuda_alloc/cuda_free
 *    (per-category accounting), copies, memset, synchronize, memory statistics, the stream,
 *    the reduction buffer.
 *  - matmul.cu: kcuda_matmul_* (cuBLASLt), kcuda_has_native_bf16, kcuda_matmul_uses_blas.
 *  - k_*.cu: every other kcuda_* entry (element-wise, norms, attention, loss, optimizers).
 * Every kcuda_* function has the signature and the semantics of the kcpu_* function of the same
 * name in kernels/cpu/kernels_cpu.h (and of the struct backend entry); pointers are device
 * pointers from cuda_alloc. Kernels launch on cuda_stream() and return without waiting; only an
 * entry that returns a value computed on the device (softmax_ce's loss, grad_norm,
 * clip_grad_norm) synchronizes, by copying that value back.
 *
 * Errors: a failing CUDA or cuBLAS call inside a kernel entry is a broken device or a
 * programming error (the only expected failure, out of memory, happens in cuda_alloc, which is
 * fallible): CUDA_CHECK / CUBLAS_CHECK print the call, the error and file:line to stderr and
 * abort (llm.c's cudaCheck; style guide 3 allows check wrappers where no error channel
 * exists — the backend's kernel entries return void). */
#ifndef SW_CUDA_INT_CUH
#define SW_CUDA_INT_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor/backend.h"

/* ---------------------------------------------------------------- checks */

/* Print "cuda error at file:line: <call>: <name> (<string>)" and abort. */
[[noreturn]] void cuda_fail(cudaError_t e, const char *call, const char *file, int line);
/* The same for a cuBLAS / cuBLASLt status (an int, so this header needs no cuBLAS include). */
[[noreturn]] void cublas_fail(int status, const char *call, const char *file, int line);

#define CUDA_CHECK(call)                                                                         \
    do {                                                                                         \
        cudaError_t cuda_check_e_ = (call);                                                      \
        if (cuda_check_e_ != cudaSuccess)                                                        \
            cuda_fail(cuda_check_e_, #call, __FILE__, __LINE__);                                 \
    } while (0)

#define CUBLAS_CHECK(call)                                                                       \
    do {                                                                                         \
        int cublas_check_s_ = (int)(call);                                                       \
        if (cublas_check_s_ != 0)                                                                \
            cublas_fail(cublas_check_s_, #call, __FILE__, __LINE__);                             \
    } while (0)

/* After every <<<...>>> launch: a bad configuration is reported here, at its launch site. */
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* ---------------------------------------------------------------- device, stream, memory */

/* The stream every kernel, copy and cuBLASLt call of the plugin runs on (created blocking,
 * so work queued on the legacy default stream by mistake is still ordered). Valid after
 * scalewise_cuda_backend() succeeded. */
cudaStream_t cuda_stream(void);

/* Properties of the selected device (filled once at start). Borrowed. */
const cudaDeviceProp *cuda_props(void);

/* Device allocation counted under `cat` (the backend's alloc entry): requested bytes are
 * counted, current and peak, per category and in total. bytes == 0 still gives a unique
 * pointer. On failure: NULL and err filled with SW_ENOMEM naming the bytes, the category and
 * what each category already holds (and the device's free/total from cudaMemGetInfo). The
 * caller frees with cuda_free. Not thread-safe (one host thread drives the device). */
void *cuda_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err);
void cuda_free(void *p); /* NULL is a no-op; waits for queued work first */

/* A device buffer of CUDA_REDUCE_FLOATS floats (counted as workspace, allocated at start) for
 * reductions that return a scalar to the host (loss sums, gradient norms, valid counts): a
 * kernel writes partial results here, one small cudaMemcpy brings them back. Entries use it
 * one at a time (no entry calls another while holding it). */
#define CUDA_REDUCE_FLOATS (64 * 1024)
float *cuda_reduce_buf(void);

/* matmul.cu: the cuBLASLt handle and its 32 MiB workspace (category workspace), made once by
 * scalewise_cuda_backend(). 0, or SW_ENOMEM / SW_EUNSUPPORTED with err filled. */
int kcuda_matmul_init(struct sw_err *err);

/* ---------------------------------------------------------------- launch helpers */

/* Blocks of `threads` covering n items, at least 1, at most 2^31-1 (grid-stride loops cover
 * the rest). */
static inline unsigned cuda_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    if (b > 0x7fffffffu)
        b = 0x7fffffffu;
    return (unsigned)b;
}

/* Enough blocks of `threads` to fill every SM `per_sm` times (grid-stride element-wise
 * kernels and one-launch optimizers over all parameters). */
unsigned cuda_fill_blocks(unsigned threads, unsigned per_sm);
/* struct sw_err filled inside the plugin, which cannot call the core's sw_errf (the executable
 * does not export its symbols); file/line/col stay 0. Returns code; err may be NULL. */
int cuda_set_err(struct sw_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The largest head size the flash attention kernels (k_attention.cu) accept: struct
 * backend.flash_max_hs. */
#ifndef KCUDA_FLASH_MAX_HS
#define KCUDA_FLASH_MAX_HS 128
#endif

/* ---------------------------------------------------------------- kernel entries
 * Signatures exactly as struct backend (executor/backend.h) and kcpu_* (kernels_cpu.h).
 * plugin.cu refers to them weakly: an entry no .cu defines yet is a NULL pointer in the table
 * (the executor refuses a plan that needs a NULL entry), never a load failure. */
#ifdef SW_CUDA_WEAK_ENTRIES
#define KCUDA_API extern "C" __attribute__((weak, visibility("hidden")))
#else
#define KCUDA_API extern "C"
#endif

/* matmul.cu (cuBLASLt) */
KCUDA_API bool kcuda_matmul_uses_blas(void);
/* An algorithm survey for benchmarks (tests/gpu/bench_matmul.c, through plugin.cu's
 * scalewise_cuda_gemm_algo): drops every cached plan; index >= 0 makes the plans built from now
 * on take the heuristic's index-th algorithm of up to 8 (its last when it offers fewer), -1
 * restores the default (its first). Returns the fewest algorithms any plan built since the
 * previous call was offered (0: none built, or no survey then). Results may differ in the last
 * bits from algorithm to algorithm; the executor never calls it. */
KCUDA_API int kcuda_matmul_algo_select(int index);
KCUDA_API void kcuda_matmul_forward(float *out, const float *inp, const float *weight,
                                    const float *bias, int N, int C, int OC);
KCUDA_API void kcuda_matmul_backward(float *dinp, float *dweight, float *dbias,
                                     const float *dout, const float *inp, const float *weight,
                                     int N, int C, int OC);
KCUDA_API bool kcuda_has_native_bf16(void);
KCUDA_API size_t kcuda_matmul_bf16_scratch_bytes(int N);
KCUDA_API void kcuda_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
                                         const float *bias, int N, int C, int OC, void *scratch);
KCUDA_API void kcuda_matmul_bf16_backward_input(float *dinp, const float *dout,
                                                const uint16_t *weight, int N, int C, int OC,
                                                void *scratch);
KCUDA_API void kcuda_matmul_bf16_backward_weight(float *dweight, float *dbias, const float *dout,
                                                 const float *inp, int N, int C, int OC,
                                                 void *scratch);
/* The fp16-mixed entries: kcuda_matmul_bf16_*'s contracts with IEEE fp16 operands
 * (CUDA_R_16F; the weight is the fp16 mirror) and kcuda_matmul_bf16_scratch_bytes(N) of scratch. */
KCUDA_API void kcuda_matmul_f16_forward(float *out, const float *inp, const uint16_t *weight,
                                        const float *bias, int N, int C, int OC, void *scratch);
KCUDA_API void kcuda_matmul_f16_backward_input(float *dinp, const float *dout,
                                               const uint16_t *weight, int N, int C, int OC,
                                               void *scratch);
KCUDA_API void kcuda_matmul_f16_backward_weight(float *dweight, float *dbias, const float *dout,
                                                const float *inp, int N, int C, int OC,
                                                void *scratch);
/* The MLP matmul with GELU fused into cuBLASLt's epilogue (struct backend matmul_gelu_forward;
 * weight_fmt a backend_wfmt). */
KCUDA_API void kcuda_matmul_gelu_forward(float *out, float *pre, const float *inp,
                                         const void *weight, int weight_fmt, const float *bias,
                                         int N, int C, int OC, void *scratch);
KCUDA_API void kcuda_matmul_backward_input_dgelu(float *dpre, const float *dout,
                                                 const void *weight, int weight_fmt,
                                                 const float *pre, int N, int C, int OC,
                                                 void *scratch);
KCUDA_API void kcuda_matmul_16_backward(float *dinp, float *dweight, float *dbias,
                                        const float *dout, const float *inp,
                                        const uint16_t *weight, int weight_fmt,
                                        const float *pre, int N, int C, int OC, void *scratch);
KCUDA_API void kcuda_matmul_int8_forward(float *out, const float *inp, const int8_t *wq,
                                         const float *scale, const float *bias, int N, int C,
                                         int OC);

/* k_*.cu: strided helpers */
KCUDA_API void kcuda_copy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows,
                             int cols, float alpha);
KCUDA_API void kcuda_axpy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows,
                             int cols, float alpha);

/* k_*.cu: embedding, residual, norms, activations, RoPE */
KCUDA_API void kcuda_embedding_forward(float *out, const int *tokens, const float *wte,
                                       const float *wpe, int B, int T, int C, int V, int maxT,
                                       int pos_offset);
KCUDA_API void kcuda_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                        const int *tokens, int B, int T, int C, int V, int maxT,
                                        int pos_offset);
KCUDA_API void kcuda_residual_forward(float *out, const float *a, const float *b, size_t n);
KCUDA_API void kcuda_residual_backward(float *da, float *db, const float *dout, size_t n);
KCUDA_API void kcuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                       const float *weight, const float *bias, int N, int C,
                                       float eps);
KCUDA_API void kcuda_layernorm_backward(float *dinp, float *dweight, float *dbias,
                                        const float *dout, const float *inp,
                                        const float *weight, const float *mean,
                                        const float *rstd, int N, int C);
KCUDA_API void kcuda_rmsnorm_forward(float *out, float *rstd, const float *inp,
                                     const float *weight, int N, int C, float eps);
KCUDA_API void kcuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout,
                                      const float *inp, const float *weight, const float *rstd,
                                      int N, int C);
KCUDA_API void kcuda_gelu_forward(float *out, const float *inp, size_t n);
KCUDA_API void kcuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
KCUDA_API void kcuda_swiglu_forward(float *out, const float *gate_up, int N, int H);
KCUDA_API void kcuda_swiglu_backward(float *dgate_up, const float *dout, const float *gate_up,
                                     int N, int H);
KCUDA_API void kcuda_rope_tables(float *cos_tab, float *sin_tab, int maxT, int HS, double theta);
KCUDA_API void kcuda_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int B,
                                  int T, int row_stride, int n_heads, int HS, int maxT,
                                  int pos_offset);
KCUDA_API void kcuda_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int B,
                                   int T, int row_stride, int n_heads, int HS, int maxT,
                                   int pos_offset);

/* k_*.cu: attention and KV cache */
KCUDA_API void kcuda_attention_forward(float *out, float *att, const float *qkv, int B, int T,
                                       int NH, int NKV, int HS);
KCUDA_API size_t kcuda_attention_backward_scratch_bytes(int B, int T, int NH);
KCUDA_API void kcuda_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                        const float *att, void *scratch, int B, int T, int NH,
                                        int NKV, int HS);
KCUDA_API void kcuda_flash_attention_forward(float *out, float *lse, const float *qkv, int B,
                                             int T, int NH, int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                              const float *out, const float *lse, int B, int T,
                                              int NH, int NKV, int HS);
/* The 16-bit plans' flash entries (struct backend flash_attention_forward_16 / _backward_16):
 * the _mma kernels below when _enabled (the default), else the _tc ones when _enabled, else
 * the fp32 ones above. */
KCUDA_API void kcuda_flash_attention_forward_16(float *out, float *lse, const float *qkv, int B,
                                                int T, int NH, int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_16(float *dqkv, const float *dout, const float *qkv,
                                                 const float *out, const float *lse, int B, int T,
                                                 int NH, int NKV, int HS);
/* k_attention_tc.cu: the same two flash entries on tensor cores (WMMA bf16 products, fp32
 * softmax, accumulators and outputs), for HS 64 and 128 on sm_80+ with enough opt-in shared
 * memory (_supported says so; calling the _tc entries otherwise aborts). _enabled: _supported(HS)
 * and SCALEWISE_CUDA_ATTENTION=wmma, or the default where the _mma kernels are unsupported. */
KCUDA_API bool kcuda_flash_attention_tc_supported(int HS);
KCUDA_API bool kcuda_flash_attention_tc_enabled(int HS);
/* The same entries written with PTX mma.sync (k_attention_tc.cu, FlashAttention-2's register
 * softmax), same numerics; _enabled (the default) unless SCALEWISE_CUDA_ATTENTION is wmma or
 * fma, where _supported(HS) (HS 64, 128 on sm_80+ with enough opt-in shared memory; otherwise
 * calling them aborts). */
KCUDA_API bool kcuda_flash_attention_mma_supported(int HS);
KCUDA_API bool kcuda_flash_attention_mma_enabled(int HS);
KCUDA_API void kcuda_flash_attention_forward_mma(float *out, float *lse, const float *qkv, int B,
                                                 int T, int NH, int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_mma(float *dqkv, const float *dout,
                                                  const float *qkv, const float *out,
                                                  const float *lse, int B, int T, int NH,
                                                  int NKV, int HS);
KCUDA_API void kcuda_flash_attention_forward_tc(float *out, float *lse, const float *qkv, int B,
                                                int T, int NH, int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_tc(float *dqkv, const float *dout,
                                                 const float *qkv, const float *out,
                                                 const float *lse, int B, int T, int NH, int NKV,
                                                 int HS);
/* The four above with bf16 q, k, v and O (kcuda_flash_attention_*_a16's tensor-core paths). */
KCUDA_API void kcuda_flash_attention_forward_mma_a16(uint16_t *out, float *lse,
                                                     const uint16_t *qkv, int B, int T, int NH,
                                                     int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_mma_a16(float *dqkv, const float *dout,
                                                      const uint16_t *qkv, const uint16_t *out,
                                                      const float *lse, int B, int T, int NH,
                                                      int NKV, int HS);
KCUDA_API void kcuda_flash_attention_forward_tc_a16(uint16_t *out, float *lse,
                                                    const uint16_t *qkv, int B, int T, int NH,
                                                    int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_tc_a16(float *dqkv, const float *dout,
                                                     const uint16_t *qkv, const uint16_t *out,
                                                     const float *lse, int B, int T, int NH,
                                                     int NKV, int HS);
/* The pipelined mma.sync kernels (k_attention_tc.cu: cp.async double buffering, ldmatrix,
 * a preparation pass for the backward), bf16 activations only, the mma.sync kernels' results
 * bit for bit, except that the backward WRITES dqkv (as the backend's _a16 entry does) where
 * the others add. _supported: HS 64 or 128 on sm_80+ with enough opt-in shared memory (whether
 * they run is the tuned dispatch's choice, below). They need 16-byte aligned qkv
 * (_aligned), and the backward scratch of _scratch_bytes (dO in bf16 and D), 16-byte aligned;
 * calling them otherwise aborts. */
KCUDA_API bool kcuda_flash_attention_pipe_supported(int HS);
KCUDA_API bool kcuda_flash_attention_pipe_aligned(const void *p);
KCUDA_API size_t kcuda_flash_attention_pipe_scratch_bytes(int B, int T, int NH, int HS);
KCUDA_API void kcuda_flash_attention_forward_pipe_a16(uint16_t *out, float *lse,
                                                      const uint16_t *qkv, int B, int T, int NH,
                                                      int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_pipe_a16(float *dqkv, const float *dout,
                                                       const uint16_t *qkv, const uint16_t *out,
                                                       const float *lse, void *scratch,
                                                       size_t scratch_bytes, int B, int T, int NH,
                                                       int NKV, int HS);
/* The wide pipelined kernels (128-row forward blocks; the backward's A fragments held in
 * registers): the pipelined kernels' bits, HS 64 only (_supported), the same requirements. */
KCUDA_API bool kcuda_flash_attention_wide_supported(int HS);
KCUDA_API void kcuda_flash_attention_forward_wide_a16(uint16_t *out, float *lse,
                                                      const uint16_t *qkv, int B, int T, int NH,
                                                      int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_wide_a16(float *dqkv, const float *dout,
                                                       const uint16_t *qkv, const uint16_t *out,
                                                       const float *lse, void *scratch,
                                                       size_t scratch_bytes, int B, int T, int NH,
                                                       int NKV, int HS);
/* The pipelined backward with each kernel's register-held variant chosen apart (ra_dq, ra_dkv;
 * either needs HS 64): both is the wide backward, neither the pipelined one. */
KCUDA_API void kcuda_flash_attention_backward_pp_a16(bool ra_dq, bool ra_dkv, float *dqkv,
                                                     const float *dout, const uint16_t *qkv,
                                                     const uint16_t *out, const float *lse,
                                                     void *scratch, size_t scratch_bytes, int B,
                                                     int T, int NH, int NKV, int HS);
/* The _a16 entries' dispatch among the bit-identical mma.sync family (wide, pipe, mma; for the
 * backward also wide-dq and wide-dkv, one of its two kernels register-held): the one
 * SCALEWISE_CUDA_ATTENTION pins, or by default the fastest for the shape, every applicable one
 * timed on the first call of each shape (B, T, NH, NKV, HS, direction) and remembered. false
 * (nothing run) when none applies (the variable names wmma or fma, or the head size or device
 * rules them out). The backward writes dqkv. */
KCUDA_API bool kcuda_flash_attention_forward_tuned_a16(uint16_t *out, float *lse,
                                                       const uint16_t *qkv, int B, int T, int NH,
                                                       int NKV, int HS);
KCUDA_API bool kcuda_flash_attention_backward_tuned_a16(float *dqkv, const float *dout,
                                                        const uint16_t *qkv, const uint16_t *out,
                                                        const float *lse, void *scratch,
                                                        size_t scratch_bytes, int B, int T,
                                                        int NH, int NKV, int HS);
/* The tuned shapes so far, one line each ("forward B16 T1024 NH12 NKV12 HS64: wide (wide
 * 0.412 ms, pipe 0.533 ms, mma 0.901 ms)"), as much as fits in buf (NUL-terminated when size
 * > 0); returns the number of shapes. _reset forgets them (the next call of each tunes again). */
KCUDA_API int kcuda_flash_attention_tuning(char *buf, size_t size);
KCUDA_API void kcuda_flash_attention_tuning_reset(void);
KCUDA_API void kcuda_kv_cache_append(float *k_cache, float *v_cache, const float *qkv, int B,
                                     int T_new, int pos, int NH, int NKV, int HS, int cache_T);
KCUDA_API void kcuda_attention_decode(float *out, const float *qkv, const float *k_cache,
                                      const float *v_cache, int B, int T_new, int pos, int NH,
                                      int NKV, int HS, int cache_T);
/* The two above with a bf16 cache (K, V rounded on append, widened on read; q, out fp32). */
KCUDA_API void kcuda_kv_cache_append_c16(uint16_t *k_cache, uint16_t *v_cache, const float *qkv,
                                         int B, int T_new, int pos, int NH, int NKV, int HS,
                                         int cache_T);
KCUDA_API void kcuda_attention_decode_c16(float *out, const float *qkv, const uint16_t *k_cache,
                                          const uint16_t *v_cache, int B, int T_new, int pos,
                                          int NH, int NKV, int HS, int cache_T);
/* The bf16 cache with bf16 qkv and out (backend.h's kv_cache_append_a16, attention_decode_a16). */
KCUDA_API void kcuda_kv_cache_append_a16(uint16_t *k_cache, uint16_t *v_cache,
                                         const uint16_t *qkv, int B, int T_new, int pos, int NH,
                                         int NKV, int HS, int cache_T);
KCUDA_API void kcuda_attention_decode_a16(uint16_t *out, const uint16_t *qkv,
                                          const uint16_t *k_cache, const uint16_t *v_cache, int B,
                                          int T_new, int pos, int NH, int NKV, int HS, int cache_T);

/* bf16 activations (struct backend's _a16 group; the contracts are backend.h's). matmul.cu: */
KCUDA_API void kcuda_matmul_a16_forward(void *out, bool out_bf16, const uint16_t *inp,
                                        const uint16_t *weight, const void *bias,
                                        const float *res, int N, int C, int OC);
KCUDA_API void kcuda_matmul_gelu_forward_a16(uint16_t *out, uint16_t *pre, const uint16_t *inp,
                                             const uint16_t *weight, const uint16_t *bias, int N,
                                             int C, int OC);
KCUDA_API void kcuda_matmul_16_backward_a16(float *dinp, float *dweight, float *dbias,
                                            const float *dout, const uint16_t *dout_pre,
                                            const uint16_t *inp, const uint16_t *weight,
                                            const uint16_t *pre, int N, int C, int OC,
                                            void *scratch);
/* The head's backward from a bf16 dout (the bf16 logits' gradient): dinp = dout·W, WRITTEN;
 * dweight += doutᵀ·inp; either may be NULL; bf16 operands, fp32 accumulation and outputs. */
KCUDA_API void kcuda_matmul_a16_backward_d16(float *dinp, float *dweight, const uint16_t *dout,
                                             const uint16_t *inp, const uint16_t *weight, int N,
                                             int C, int OC);
/* k_norm.cu, k_act.cu, k_rope.cu: */
KCUDA_API void kcuda_layernorm_forward_a16(uint16_t *out, float *mean, float *rstd,
                                           const float *inp, const float *weight,
                                           const float *bias, int N, int C, float eps);
KCUDA_API void kcuda_rmsnorm_forward_a16(uint16_t *out, float *rstd, const float *inp,
                                         const float *weight, int N, int C, float eps);
KCUDA_API void kcuda_gelu_forward_a16(uint16_t *out, const uint16_t *inp, size_t n);
KCUDA_API void kcuda_gelu_backward_a16(float *dinp, const uint16_t *inp, const float *dout,
                                       size_t n);
KCUDA_API void kcuda_swiglu_forward_a16(uint16_t *out, const uint16_t *gate_up, int N, int H);
KCUDA_API void kcuda_swiglu_backward_a16(float *dgate_up, const float *dout,
                                         const uint16_t *gate_up, int N, int H);
KCUDA_API void kcuda_rope_forward_a16(uint16_t *x, const float *cos_tab, const float *sin_tab,
                                      int B, int T, int row_stride, int n_heads, int HS, int maxT,
                                      int pos_offset);
/* k_attention*.cu: */
KCUDA_API void kcuda_flash_attention_forward_a16(uint16_t *out, float *lse, const uint16_t *qkv,
                                                 int B, int T, int NH, int NKV, int HS);
KCUDA_API void kcuda_flash_attention_backward_a16(float *dqkv, const float *dout,
                                                  const uint16_t *qkv, const uint16_t *out,
                                                  const float *lse, void *scratch,
                                                  size_t scratch_bytes, int B, int T, int NH,
                                                  int NKV, int HS);

/* k_*.cu: fused classifier */
KCUDA_API float kcuda_softmax_ce(float *logits, float *losses, int *n_valid, const int *targets,
                                 int N, int V, int Vp, bool want_grad, float grad_scale);
/* kcuda_softmax_ce on bf16 logits (widened to fp32); the gradient is rounded to bf16 in place. */
KCUDA_API float kcuda_softmax_ce_a16(uint16_t *logits, float *losses, int *n_valid,
                                     const int *targets, int N, int V, int Vp, bool want_grad,
                                     float grad_scale);
/* Greedy decoding's argmax per row (kcpu_argmax_rows' rule); out is HOST memory. */
KCUDA_API void kcuda_argmax_rows(int *out, const float *x, int rows, int V, int ld);

/* k_*.cu: optimizers and gradient utilities */
KCUDA_API void kcuda_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                                int step, float lr, float beta1, float beta2, float eps,
                                float weight_decay);
KCUDA_API void kcuda_sgd_step(float *param, const float *grad, size_t n, float lr,
                              float weight_decay);
KCUDA_API void kcuda_sgd_momentum_step(float *param, const float *grad, float *buf, size_t n,
                                       float lr, float momentum, float weight_decay,
                                       bool nesterov);
KCUDA_API void kcuda_lion_step(float *param, const float *grad, float *m, size_t n, float lr,
                               float beta1, float beta2, float weight_decay);
KCUDA_API size_t kcuda_adafactor_row_floats(int rows, int cols);
KCUDA_API size_t kcuda_adafactor_col_floats(int rows, int cols);
KCUDA_API void kcuda_adafactor_step(float *param, const float *grad, float *row_state,
                                    float *col_state, float *m, int rows, int cols, int step,
                                    float lr, float beta1, float decay_rate, float eps1,
                                    float clip_threshold, float weight_decay);
KCUDA_API size_t kcuda_adamw8bit_state_bytes(size_t n);
KCUDA_API void kcuda_adamw8bit_step(float *param, const float *grad, void *state, size_t n,
                                    int step, float lr, float beta1, float beta2, float eps,
                                    float weight_decay);
/* struct backend optim_step_segments (k_optim.cu): the table into the reduction buffer, then
 * one *_multi launch (k_common.cuh). */
KCUDA_API void kcuda_optim_step_segments(enum backend_optim kind, float *param, const float *grad,
                                         void *state, size_t n, const struct backend_opt_seg *segs,
                                         int nseg, int step, float lr, float beta1, float beta2,
                                         float eps);
KCUDA_API void kcuda_adamw8bit_read_state(float *out, const void *state, size_t n, int which);
KCUDA_API double kcuda_grad_norm(const float *grad, size_t n);
KCUDA_API double kcuda_clip_grad_norm(float *grad, size_t n, double max_norm);
KCUDA_API void kcuda_scale(float *x, size_t n, float s);

/* k_*.cu: reduced precision */
KCUDA_API void kcuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
KCUDA_API void kcuda_bf16_to_f32(float *dst, const uint16_t *src, size_t n);
KCUDA_API void kcuda_quantize_int8_rows(int8_t *wq, float *scale, const float *w, int OC, int C);

/* k_fp16.cu: IEEE fp16 (fp16-mixed), bit for bit as kernels/cpu/quant.c */
KCUDA_API void kcuda_f32_to_f16(uint16_t *dst, const float *src, size_t n);
KCUDA_API void kcuda_f16_to_f32(float *dst, const uint16_t *src, size_t n);
KCUDA_API void kcuda_round_f16(float *dst, const float *src, size_t n);

#endif
