/* executor/backend.h — the backend interface: the one table of function pointers through which
 * the executor reaches memory and kernels, so a CUDA backend can slot in beside the CPU one
 * (style guide 1: vendor differences sit behind one table).
 *
 * Memory: every model-sized buffer is allocated with a category (weights, gradients,
 * optimizer, activations, kv_cache, workspace — the names of struct mem_split in
 * advisor/advisor.h) so a run can report measured bytes by category beside the advisor's
 * estimate. The backend counts the bytes REQUESTED per category (current and peak), not the
 * allocator's overhead, so an exact prediction of what a model allocates can be checked
 * against the counters. Allocation is fallible: NULL plus SW_ENOMEM naming the bytes and the
 * category (it goes through sw_try_malloc, so SW_FAIL_ALLOC_AT fault injection reaches it).
 * The counters are process-wide and not thread-safe: allocate and free from one thread.
 *
 * Kernels: each entry mirrors the kcpu_* function of the same name in kernels/cpu/kernels_cpu.h
 * (same arguments, same semantics, same "backward accumulates" convention); pointers are
 * device pointers returned by alloc. Two extra strided helpers (copy_2d, axpy_2d) serve LoRA
 * adapters on column ranges of fused projections and row gathers.
 *
 * Ownership: backend_cpu() returns a static table, never freed. */
#ifndef SW_BACKEND_H
#define SW_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* Memory categories; names as struct mem_split (advisor/advisor.h). */
enum backend_mem {
    BACKEND_MEM_WEIGHTS,
    BACKEND_MEM_GRADIENTS,
    BACKEND_MEM_OPTIMIZER,
    BACKEND_MEM_ACTIVATIONS,
    BACKEND_MEM_KV_CACHE,
    BACKEND_MEM_WORKSPACE,
    BACKEND_MEM_COUNT
};

/* "weights" | "gradients" | "optimizer" | "activations" | "kv_cache" | "workspace"; never NULL
 * ("unknown" out of range). */
const char *backend_mem_name(enum backend_mem c);

/* Requested bytes currently allocated and the peak since the last reset, per category and in
 * total (the total's peak is the peak of the sum, not the sum of peaks). */
/* The element-wise optimizers optim_step_segments covers, and one segment of a trainable region:
 * elements [off, off + n) of param, grad and the element-wise state, with its own weight decay
 * (8-bit AdamW: its adamw8bit_state_bytes(n) state block at state_off bytes, 4-byte aligned).
 * The CUDA plugin's one-launch kernels read the same struct from device memory. */
enum backend_optim {
    BACKEND_OPTIM_ADAMW,
    BACKEND_OPTIM_SGD,
    BACKEND_OPTIM_SGD_MOMENTUM,
    BACKEND_OPTIM_LION,
    BACKEND_OPTIM_ADAMW8BIT,
};
struct backend_opt_seg {
    size_t off, n;
    size_t state_off;
    float weight_decay;
};

struct backend_mem_stats {
    uint64_t current_bytes[BACKEND_MEM_COUNT];
    uint64_t peak_bytes[BACKEND_MEM_COUNT];
    uint64_t current_total_bytes;
    uint64_t peak_total_bytes;
    uint64_t device_total_bytes; /* the device's own memory (a GPU's total); 0 on the CPU */
    /* In use on the whole device when asked (a GPU's total minus free: beyond the counters,
     * the CUDA context, the libraries' code and handles, the allocator's rounding, and any
     * other process on it); 0 on the CPU. */
    uint64_t device_used_bytes;
};

enum backend_copy { BACKEND_H2D, BACKEND_D2H, BACKEND_D2D };

struct backend {
    const char *name; /* "cpu" */
    int flash_max_hs; /* largest head size flash_attention_* accept */
    /* true when the pointers alloc returns are ordinary host memory (the CPU backend): the
     * executor may then read them and hand them to host-side code (MPI, file I/O) directly.
     * false (CUDA, the device simulator): the host reaches them only through memcpy. */
    bool host_memory;

    /* ---- memory */
    /* A new buffer of `bytes` (64-byte aligned, contents undefined) counted under `cat`; the
     * caller frees it with free(). NULL with SW_ENOMEM in err ("cannot allocate 1.5 GiB for
     * activations (...)") on failure. bytes == 0 still returns a unique pointer. */
    void *(*alloc)(size_t bytes, enum backend_mem cat, struct sw_err *err);
    void (*free)(void *p); /* NULL is a no-op */
    void (*memcpy)(void *dst, const void *src, size_t bytes, enum backend_copy kind);
    void (*memset)(void *dst, int value, size_t bytes);
    void (*mem_stats)(struct backend_mem_stats *out);
    void (*mem_reset_peak)(void); /* peaks := current */
    /* Wait for queued work (no-op on the CPU: every call returns when done). */
    void (*synchronize)(void);

    /* ---- strided helpers (row-major 2-D views with leading dimensions in floats)
     * copy_2d: dst[r, c] = alpha · src[r, c];  axpy_2d: dst[r, c] += alpha · src[r, c]. */
    void (*copy_2d)(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                    float alpha);
    void (*axpy_2d)(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                    float alpha);

    /* ---- kernels (kernels/cpu/kernels_cpu.h has the contracts) */
    bool (*matmul_uses_blas)(void);
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
    void (*embedding_forward)(float *out, const int *tokens, const float *wte, const float *wpe,
                              int B, int T, int C, int V, int maxT, int pos_offset);
    void (*embedding_backward)(float *dwte, float *dwpe, const float *dout, const int *tokens,
                               int B, int T, int C, int V, int maxT, int pos_offset);
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
    void (*residual_backward)(float *da, float *db, const float *dout, size_t n);
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, float eps);
    void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int N, int C);
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, float eps);
    void (*rmsnorm_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C);
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*swiglu_forward)(float *out, const float *gate_up, int N, int H);
    void (*swiglu_backward)(float *dgate_up, const float *dout, const float *gate_up, int N, int H);
    void (*rope_tables)(float *cos_tab, float *sin_tab, int maxT, int HS, double theta);
    void (*rope_forward)(float *x, const float *cos_tab, const float *sin_tab, int B, int T,
                         int row_stride, int n_heads, int HS, int maxT, int pos_offset);
    void (*rope_backward)(float *dx, const float *cos_tab, const float *sin_tab, int B, int T,
                          int row_stride, int n_heads, int HS, int maxT, int pos_offset);
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int NH,
                              int NKV, int HS);
    size_t (*attention_backward_scratch_bytes)(int B, int T, int NH);
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *att,
                               void *scratch, int B, int T, int NH, int NKV, int HS);
    /* lse may be NULL (a prefill, which keeps no statistics for a backward). */
    void (*flash_attention_forward)(float *out, float *lse, const float *qkv, int B, int T, int NH,
                                    int NKV, int HS);
    void (*flash_attention_backward)(float *dqkv, const float *dout, const float *qkv,
                                     const float *out, const float *lse, int B, int T, int NH,
                                     int NKV, int HS);
    void (*kv_cache_append)(float *k_cache, float *v_cache, const float *qkv, int B, int T_new,
                            int pos, int NH, int NKV, int HS, int cache_T);
    void (*attention_decode)(float *out, const float *qkv, const float *k_cache,
                             const float *v_cache, int B, int T_new, int pos, int NH, int NKV,
                             int HS, int cache_T);
    /* A bf16 KV cache (generation with bf16 weights on the CUDA plugin; NULL elsewhere: the model
     * then keeps an fp32 cache): kv_cache_append and attention_decode with the cache in bf16,
     * rounded to nearest even as it is written and widened as it is read; qkv, out and the
     * arithmetic stay fp32. Half the cache's bytes, as PyTorch keeps it with bf16 weights. */
    void (*kv_cache_append_c16)(uint16_t *k_cache, uint16_t *v_cache, const float *qkv, int B,
                                int T_new, int pos, int NH, int NKV, int HS, int cache_T);
    void (*attention_decode_c16)(float *out, const float *qkv, const uint16_t *k_cache,
                                 const uint16_t *v_cache, int B, int T_new, int pos, int NH,
                                 int NKV, int HS, int cache_T);
    /* kcpu_argmax_rows: x device memory, out HOST memory (rows ints). */
    void (*argmax_rows)(int *out, const float *x, int rows, int V, int ld);
    float (*softmax_ce)(float *logits, float *losses, int *n_valid, const int *targets, int N,
                        int V, int Vp, bool want_grad, float grad_scale);

    /* ---- optimizers and gradient utilities */
    void (*adamw_step)(float *param, const float *grad, float *m, float *v, size_t n, int step,
                       float lr, float beta1, float beta2, float eps, float weight_decay);
    void (*sgd_step)(float *param, const float *grad, size_t n, float lr, float weight_decay);
    void (*sgd_momentum_step)(float *param, const float *grad, float *buf, size_t n, float lr,
                              float momentum, float weight_decay, bool nesterov);
    void (*lion_step)(float *param, const float *grad, float *m, size_t n, float lr, float beta1,
                      float beta2, float weight_decay);
    size_t (*adafactor_row_floats)(int rows, int cols);
    size_t (*adafactor_col_floats)(int rows, int cols);
    void (*adafactor_step)(float *param, const float *grad, float *row_state, float *col_state,
                           float *m, int rows, int cols, int step, float lr, float beta1,
                           float decay_rate, float eps1, float clip_threshold, float weight_decay);
    size_t (*adamw8bit_state_bytes)(size_t n);
    void (*adamw8bit_step)(float *param, const float *grad, void *state, size_t n, int step,
                           float lr, float beta1, float beta2, float eps, float weight_decay);
    void (*adamw8bit_read_state)(float *out, const void *state, size_t n, int which);
    /* adamw_step / sgd_step / sgd_momentum_step (no Nesterov, momentum = beta1) / lion_step /
     * adamw8bit_step over every segment of a region of n elements in ONE launch, each segment
     * with its own weight decay: the same numbers as one call per segment. `segs` is host
     * memory. State: AdamW m = state, v = state + n; SGD momentum's buffer and Lion's m =
     * state; 8-bit AdamW the segments' blocks at their state_off. NULL where not provided (the
     * CPU: the model calls the per-segment entries). */
    void (*optim_step_segments)(enum backend_optim kind, float *param, const float *grad,
                                void *state, size_t n, const struct backend_opt_seg *segs,
                                int nseg, int step, float lr, float beta1, float beta2, float eps);
    double (*grad_norm)(const float *grad, size_t n);
    double (*clip_grad_norm)(float *grad, size_t n, double max_norm);
    void (*scale)(float *x, size_t n, float s);

    /* ---- reduced precision */
    void (*f32_to_bf16)(uint16_t *dst, const float *src, size_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, size_t n);
    bool (*has_native_bf16)(void);
    /* bf16-weight matmuls with fp32 accumulation (native AVX512-BF16 where has_native_bf16();
     * elsewhere a slow scalar fallback the executor does not use): the forward, and the input
     * gradient dinp += dout·W. scratch: matmul_bf16_scratch_bytes(N) bytes, 64-byte aligned. */
    size_t (*matmul_bf16_scratch_bytes)(int N);
    void (*matmul_bf16_forward)(float *out, const float *inp, const uint16_t *weight,
                                const float *bias, int N, int C, int OC, void *scratch);
    void (*matmul_bf16_backward_input)(float *dinp, const float *dout, const uint16_t *weight,
                                       int N, int C, int OC, void *scratch);
    /* The weight (and bias) gradient with bf16 operands: dweight(OC, C) += dout(N, OC)ᵀ·inp(N, C)
     * with both rounded to bf16 (nearest even), fp32 accumulation; dbias += column sums of
     * dout in fp32 (either output may be NULL). Same scratch as the entries above. NULL on
     * backends that keep weight gradients in fp32; the model then uses matmul_backward. */
    void (*matmul_bf16_backward_weight)(float *dweight, float *dbias, const float *dout,
                                        const float *inp, int N, int C, int OC, void *scratch);
    /* IEEE fp16 (fp16-mixed): fp32 -> binary16 rounded to nearest even (subnormals kept,
     * |x| >= 65520 -> infinity, NaN stays NaN), binary16 -> fp32 exactly, and both at once
     * (each fp32 value replaced by the nearest fp16 value: the operands of an emulated fp16
     * matmul). dst may equal src in round_f16. */
    void (*f32_to_f16)(uint16_t *dst, const float *src, size_t n);
    void (*f16_to_f32)(float *dst, const uint16_t *src, size_t n);
    void (*round_f16)(float *dst, const float *src, size_t n);
    /* fp16-mixed matmuls on fp16 tensor cores: the three bf16 entries' contracts with IEEE fp16
     * in place of bf16 — the weight is the fp16 mirror; activations and dout are rounded to
     * fp16 (nearest even; beyond ±65504 to infinity, which is what loss scaling watches for);
     * products accumulate in fp32 into fp32 outputs; the bias gradient sums fp32 dout. Scratch:
     * matmul_bf16_scratch_bytes(N) bytes. NULL where fp16 matmuls are emulated (the CPU): the
     * model then rounds the operands with round_f16 and runs the fp32 matmuls, the same
     * numbers up to the order of the fp32 sums. */
    void (*matmul_f16_forward)(float *out, const float *inp, const uint16_t *weight,
                               const float *bias, int N, int C, int OC, void *scratch);
    void (*matmul_f16_backward_input)(float *dinp, const float *dout, const uint16_t *weight,
                                      int N, int C, int OC, void *scratch);
    void (*matmul_f16_backward_weight)(float *dweight, float *dbias, const float *dout,
                                       const float *inp, int N, int C, int OC, void *scratch);
    /* The GELU MLP's first matmul with GELU fused into its epilogue (cuBLASLt GELU_AUX_BIAS):
     * pre = inp·Wᵀ + bias (kept for the backward) and out = gelu(pre) (gelu_forward's tanh
     * form) in one GEMM, the same numbers as matmul_*_forward then gelu_forward up to the
     * order of the sums. `weight` is fp32 (weight_fmt BACKEND_WFMT_FP32, as matmul_forward),
     * or the bf16 / fp16 mirror with the activations rounded to that format (as
     * matmul_bf16_forward / matmul_f16_forward; scratch matmul_bf16_scratch_bytes(N)). NULL
     * where nothing is fused (the CPU): the model runs the matmul and gelu_forward. */
    void (*matmul_gelu_forward)(float *out, float *pre, const float *inp, const void *weight,
                                int weight_fmt, const float *bias, int N, int C, int OC,
                                void *scratch);
    /* Its backward partner (cuBLASLt's DGELU epilogue), for the MLP's second matmul:
     * dpre(N,C) = (dout(N,OC)·W(OC,C)) ⊙ gelu'(pre(N,C)), written, not accumulated — the
     * input gradient into a zeroed buffer followed by gelu_backward, in one GEMM. W and
     * weight_fmt as matmul_gelu_forward (dout rounded to the 16-bit format as in the matching
     * backward-input entries). NULL where not fused. */
    void (*matmul_backward_input_dgelu)(float *dpre, const float *dout, const void *weight,
                                        int weight_fmt, const float *pre, int N, int C, int OC,
                                        void *scratch);
    /* A 16-bit matmul's whole backward, rounding each chunk of dout once for both gradients
     * (the separate entries round it once each): dinp += r(dout)·W — with pre, dinp =
     * (r(dout)·W) ⊙ gelu'(pre), written, as matmul_backward_input_dgelu — dweight +=
     * r(dout)ᵀ·r(inp), dbias += Σ dout in fp32; r() the weight's format (weight_fmt
     * BACKEND_WFMT_BF16 or BACKEND_WFMT_FP16); any of dinp, dweight, dbias may be NULL. The same
     * numbers as the separate entries. Scratch: matmul_bf16_scratch_bytes(N). NULL where the
     * 16-bit weight gradient is not provided (the CPU). */
    void (*matmul_16_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const uint16_t *weight, int weight_fmt,
                               const float *pre, int N, int C, int OC, void *scratch);
    /* flash_attention_forward / _backward for plans whose matmuls take 16-bit operands
     * (bf16-mixed, fp16-mixed): the same contract, except that q, k, v, dO and the
     * probabilities may be rounded to bf16 for tensor-core products (fp32 softmax, accumulators
     * and outputs). NULL where the backend has no such variant (the CPU): the model calls the
     * fp32 entries. */
    void (*flash_attention_forward_16)(float *out, float *lse, const float *qkv, int B, int T,
                                       int NH, int NKV, int HS);
    void (*flash_attention_backward_16)(float *dqkv, const float *dout, const float *qkv,
                                        const float *out, const float *lse, int B, int T, int NH,
                                        int NKV, int HS);
    void (*quantize_int8_rows)(int8_t *wq, float *scale, const float *w, int OC, int C);
    void (*matmul_int8_forward)(float *out, const float *inp, const int8_t *wq, const float *scale,
                                const float *bias, int N, int C, int OC);

    /* ---- bf16 activations (bf16-mixed training on a device, docs/cuda.md): the activations a
     * layer keeps for its backward — norm outputs, qkv, the attention output, the MLP's
     * pre-activation and activation — are stored as bf16 (rounded to nearest even), which
     * halves their memory, and the matmuls read them without a rounding pass of their own.
     * Arithmetic stays fp32; the residual stream, norm statistics, lse, logits and every
     * gradient stay fp32. The model uses the group only when every entry but
     * matmul_gelu_forward_a16 is set (NULL everywhere on the CPU); each mirrors the fp32 entry
     * of the same name with the named operands in bf16. */
    void (*layernorm_forward_a16)(uint16_t *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int N, int C, float eps);
    void (*rmsnorm_forward_a16)(uint16_t *out, float *rstd, const float *inp, const float *weight,
                                int N, int C, float eps);
    /* out(N,OC) = inp(N,C)·W(OC,C)ᵀ + bias (+ res) with bf16 inp and W, fp32 accumulation: out
     * and bias fp32 when out_bf16 is false, both bf16 when it is true (cuBLASLt's bias takes the
     * output's type; the model passes the bias's bf16 mirror); bias may be NULL. res (N,OC),
     * fp32 out only, may be NULL: a residual added to the product (the residual stream's sum
     * without a pass of its own); it must not overlap out. */
    void (*matmul_a16_forward)(void *out, bool out_bf16, const uint16_t *inp,
                               const uint16_t *weight, const void *bias, const float *res, int N,
                               int C, int OC);
    /* pre = inp·Wᵀ + bias and out = gelu(pre) (gelu_forward's tanh form), all bf16 (bias the
     * bf16 mirror, may be NULL), in one GEMM where the epilogue allows. NULL: the model runs
     * matmul_a16_forward into pre, then gelu_forward_a16. */
    void (*matmul_gelu_forward_a16)(uint16_t *out, uint16_t *pre, const uint16_t *inp,
                                    const uint16_t *weight, const uint16_t *bias, int N, int C,
                                    int OC);
    /* matmul_16_backward (bf16 weight) with bf16 inp and pre, except that dinp is WRITTEN, not
     * accumulated (the model adds a LoRA adapter's share afterwards):
     * dinp = r(g)·W, or with pre dinp = (r(g)·W) ⊙ gelu'(pre); dweight += r(g)ᵀ·inp;
     * dbias += Σ g in fp32, where g = dout, or with dout_pre (bf16, dout's shape: the
     * pre-activation of a GELU whose output gradient dout is) g = gelu'(dout_pre) ⊙ dout in
     * fp32: the GELU's backward folded into the pass that rounds dout. dinp, dweight, dbias,
     * dout_pre, pre may be NULL. Scratch: matmul_bf16_scratch_bytes(N). */
    void (*matmul_16_backward_a16)(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const uint16_t *dout_pre, const uint16_t *inp,
                                   const uint16_t *weight, const uint16_t *pre, int N, int C,
                                   int OC, void *scratch);
    void (*gelu_forward_a16)(uint16_t *out, const uint16_t *inp, size_t n);
    void (*gelu_backward_a16)(float *dinp, const uint16_t *inp, const float *dout, size_t n);
    void (*swiglu_forward_a16)(uint16_t *out, const uint16_t *gate_up, int N, int H);
    void (*swiglu_backward_a16)(float *dgate_up, const float *dout, const uint16_t *gate_up, int N,
                                int H);
    /* In place on bf16 rows: each value widened, rotated in fp32, rounded back. */
    void (*rope_forward_a16)(uint16_t *x, const float *cos_tab, const float *sin_tab, int B, int T,
                             int row_stride, int n_heads, int HS, int maxT, int pos_offset);
    /* flash_attention_forward_16 / _backward_16 reading bf16 q, k, v (and the bf16 output O in
     * the backward's rowsum(dO ⊙ O)), writing a bf16 O; lse, dO and dqkv fp32. The backward
     * WRITES dqkv (the fp32 entries add into it): no memset before. It may use `scratch` (scratch_bytes, any contents, clobbered; NULL for none): the CUDA
     * plugin's fastest kernels need B·T·NH·HS·2 + B·NH·T·4 bytes, 16-byte aligned, for dO in
     * bf16 and rowsum(dO ⊙ O), and use slower ones without. */
    void (*flash_attention_forward_a16)(uint16_t *out, float *lse, const uint16_t *qkv, int B,
                                        int T, int NH, int NKV, int HS);
    void (*flash_attention_backward_a16)(float *dqkv, const float *dout, const uint16_t *qkv,
                                         const uint16_t *out, const float *lse, void *scratch,
                                         size_t scratch_bytes, int B, int T, int NH, int NKV,
                                         int HS);
    /* The logits in bf16 too (the head writes them with matmul_a16_forward's bf16 output):
     * softmax_ce on bf16 logits (widened; the loss in fp32 as softmax_ce's; with want_grad the
     * gradient written in place rounded to bf16), and the head's backward from that bf16
     * gradient: dinp = dout·W WRITTEN, dweight += doutᵀ·inp, either may be NULL, no bias, no
     * rounding pass. Optional within the group: NULL keeps fp32 logits. */
    float (*softmax_ce_a16)(uint16_t *logits, float *losses, int *n_valid, const int *targets,
                            int N, int V, int Vp, bool want_grad, float grad_scale);
    void (*matmul_a16_backward_d16)(float *dinp, float *dweight, const uint16_t *dout,
                                    const uint16_t *inp, const uint16_t *weight, int N, int C,
                                    int OC);
    /* Generation with bf16 activations (the bf16 cache's entries with bf16 qkv and out):
     * kv_cache_append_c16 copying bf16 K and V from bf16 qkv (exact), and attention_decode_c16
     * reading a bf16 q and writing a bf16 out (the fp32 result rounded to nearest even), the
     * arithmetic fp32 as there. Optional: NULL keeps fp32 activations in generation. */
    void (*kv_cache_append_a16)(uint16_t *k_cache, uint16_t *v_cache, const uint16_t *qkv, int B,
                                int T_new, int pos, int NH, int NKV, int HS, int cache_T);
    void (*attention_decode_a16)(uint16_t *out, const uint16_t *qkv, const uint16_t *k_cache,
                                 const uint16_t *v_cache, int B, int T_new, int pos, int NH,
                                 int NKV, int HS, int cache_T);
    /* Page-locked host memory (cudaMallocHost) for device-to-host copies the host reads at once
     * (generation's logits, for the sampler): the copy engine writes it directly, where a copy
     * into pageable memory goes through a staging buffer. Not device memory, not counted.
     * NULL on host-memory backends; the allocation may fail (NULL: the caller uses malloc). */
    void *(*host_alloc_pinned)(size_t bytes);
    void (*host_free_pinned)(void *p);
};

/* The CPU backend (kernels/cpu). Static, never freed. */
const struct backend *backend_cpu(void);

/* The device-simulating backend (executor/backend_devsim.c): the CPU kernels behind pointers
 * the host cannot dereference (a host access faults), and an abort naming the entry when a
 * host pointer reaches a kernel or a memcpy goes the wrong way. Tests the executor's
 * device-readiness without a GPU; bitwise identical numerics to backend_cpu(). Static. */
const struct backend *backend_devsim(void);

/* ---- the profiling wrapper (executor/backend_profile.c; SCALEWISE_PROFILE=1, docs/run.md) */

#define BACKEND_PROFILE_MAX_ENTRIES 96
#define BACKEND_PROFILE_N_CLASSES 9

/* A table whose every non-NULL kernel, copy, conversion and optimizer entry calls `inner`'s and
 * adds its wall time to a per-entry accumulator; NULL entries stay NULL, and memory management,
 * queries (scratch sizes, has_native_bf16, matmul_uses_blas), synchronize, name and flags pass
 * through untimed, so the model takes the same paths and computes the same bits. Each timed
 * call synchronizes `inner` before its start clock and before its end clock: on a GPU that
 * serialises the device, so a profiled run is slower than an unprofiled one — read the
 * breakdown, not the total. Static storage: one profiled backend per process at a time (a new
 * call re-targets the one table and clears the counters; wrapping the table itself returns it);
 * single-threaded like the backends' counters. Never freed. */
const struct backend *backend_profiled(const struct backend *inner);
/* True when the environment asks for a profile (SCALEWISE_PROFILE=1). */
bool backend_profile_requested(void);
/* Clear the counters and restart the wall clock (e.g. once setup is done). */
void backend_profile_reset(void);
/* Stop (true) or resume (false) timing: while paused, entries call through untimed and the
 * wall clock stops, so evaluation or checkpoint writes can be left out of a step profile. */
void backend_profile_pause(bool paused);

/* One entry (name "matmul_forward", cls its class) or one class (name "matmul", cls NULL).
 * Names are static strings. */
struct backend_profile_row {
    const char *name;
    const char *cls;
    int order; /* table position: the tie-break of the sort */
    uint64_t calls;
    double seconds;
    double percent; /* of total_s (0 when nothing was timed) */
    double mean_us; /* seconds per call, in microseconds (0 without calls) */
};

/* The counters since backend_profiled()/backend_profile_reset(). Classes: matmul, attention
 * (rope included), norm, activation, embedding_loss (embeddings and softmax_ce),
 * optimizer (grad_norm, clip_grad_norm and scale included), conversion, copy_memset (memcpy,
 * memset, copy_2d), other (residual adds, axpy_2d). */
struct backend_profile_report {
    char backend[32];  /* the inner backend's name */
    int n_entries;     /* entries called at least once, by seconds, largest first */
    struct backend_profile_row entries[BACKEND_PROFILE_MAX_ENTRIES];
    int n_classes;     /* every class (BACKEND_PROFILE_N_CLASSES), by seconds, largest first */
    struct backend_profile_row classes[BACKEND_PROFILE_N_CLASSES];
    uint64_t calls;    /* all timed calls */
    double total_s;    /* the sum of the entries' seconds */
    double wall_s;     /* wall time covered: since the reset, less paused intervals */
    int64_t steps;     /* the caller's: steps covered, for per-step figures (0: none) */
};

/* Fill `out` from the counters (steps 0: the caller sets it). */
void backend_profile_report(struct backend_profile_report *out);
/* The report as one map (profile.yaml's layout) through an emitter. */
void backend_profile_emit(struct sw_emit *e, const struct backend_profile_report *r);
/* profile.yaml at `path`, written atomically; SW_EIO and the like from sw_write_file_atomic. */
int backend_profile_write(const char *path, const struct backend_profile_report *r,
                          struct sw_err *err);

/* The backend a plan's strategy.device asks for: the CPU backend for cpu (the device simulator
 * instead when SCALEWISE_DEVSIM=1), the CUDA plugin for cuda (backend_cuda_load, its errors). */
const struct backend *backend_for_device(bool cuda, struct sw_err *err);

/* Layout version of struct backend, checked by the CUDA plugin (with sizeof(struct backend)):
 * bump it when an entry is added, removed or changes its signature. */
#define BACKEND_API_VERSION 13

/* matmul_gelu_forward's weight formats. */
enum backend_wfmt { BACKEND_WFMT_FP32, BACKEND_WFMT_BF16, BACKEND_WFMT_FP16 };

/* The CUDA backend (kernels/cuda, built by nvcc into libscalewise-cuda.so): dlopens the plugin
 * ($SCALEWISE_CUDA_PLUGIN, the executable's directory, build/ under it, its parent, then the
 * path compiled in), checks its API version and lets it pick and initialise a GPU. Returns a
 * static table (device pointers; never freed, the plugin stays loaded), or NULL with
 * SW_EUNSUPPORTED and the reason: no plugin in this build, a plugin from another build, no
 * driver, no GPU ("no NVIDIA GPU: cudaGetDeviceCount returned 35 (...)"). Entries the plugin
 * does not implement yet are NULL: callers check what they need. */
const struct backend *backend_cuda_load(struct sw_err *err);
/* Another exported entry of the loaded CUDA plugin (e.g. the NCCL engine's), by name; NULL
 * before a successful backend_cuda_load() or when the plugin lacks it. */
void *backend_cuda_symbol(const char *name);
/* The loaded plugin's attention tuning lines (scalewise_cuda_attention_tuning) into buf
 * (NUL-terminated; "" when no plugin is loaded, it has no such entry, or nothing was tuned). */
void backend_cuda_attention_tuning(char *buf, size_t n);

#endif
