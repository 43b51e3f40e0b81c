/* The profiling backend: a struct backend whose every kernel, copy and optimizer entry calls the
 * same entry of an inner backend and adds its wall time to that entry's accumulator (calls,
 * seconds), so a run can say where its step time goes — matmuls, attention, norms, activations,
 * embedding and loss, optimizer, conversions, copies — instead of only tokens/s
 * (SCALEWISE_PROFILE=1; docs/run.md, "Where the time goes"). Timing a GPU means waiting for it:
 * each timed call synchronizes the inner backend before reading the start clock (so work queued
 * earlier, a collective for instance, is not charged to it) and again before the end clock. That
 * serialises the device (no overlap of one kernel's launch with the previous one's execution),
 * so a profiled run is slower than an unprofiled one: its breakdown, not its total, is the
 * product. The numbers computed are the inner backend's, untouched: the wrapper only times.
 * Entries the inner backend leaves NULL stay NULL (the model chooses its paths by them); memory
 * management, queries and synchronize itself pass through untimed. One table and one set of
 * counters in static storage: one profiled backend per process at a time (a second
 * backend_profiled() call re-targets the table and clears the counters), driven from one
 * thread, like the backends' own counters. Formatting of the report (profile.yaml) is here too;
 * the decision to profile and where the file goes are executor/run.c's and generate.c's. */
#include "executor/backend.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the entry tables */

enum prof_class {
    PC_MATMUL,
    PC_ATTENTION,
    PC_NORM,
    PC_ACTIVATION,
    PC_EMBED_LOSS,
    PC_OPTIMIZER,
    PC_CONVERSION,
    PC_COPY,
    PC_OTHER,
    PC_COUNT
};

/* Class names as profile.yaml prints them. rope_* count as attention (they rotate q and k
 * inside the attention block); residual adds and axpy_2d (LoRA, gradient staging) as other;
 * grad_norm, clip_grad_norm and scale (gradient clipping and averaging) as optimizer. */
static const char *const class_names[PC_COUNT] = {
    "matmul",    "attention",  "norm",        "activation", "embedding_loss",
    "optimizer", "conversion", "copy_memset", "other",
};

/* clang-format off */ /* the tables keep one entry per group of lines */
/* The timed entries returning nothing: X(entry, class, parameters, arguments). */
#define PROF_VOID_ENTRIES(X)                                                                       \
    X(memcpy, PC_COPY, (void *dst, const void *src, size_t bytes, enum backend_copy kind),         \
      (dst, src, bytes, kind))                                                                     \
    X(memset, PC_COPY, (void *dst, int value, size_t bytes), (dst, value, bytes))                  \
    X(copy_2d, PC_COPY,                                                                            \
      (float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols, float alpha),     \
      (dst, ld_dst, src, ld_src, rows, cols, alpha))                                               \
    X(axpy_2d, PC_OTHER,                                                                           \
      (float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols, float alpha),     \
      (dst, ld_dst, src, ld_src, rows, cols, alpha))                                               \
    X(matmul_forward, PC_MATMUL,                                                                   \
      (float *out, const float *inp, const float *weight, const float *bias, int N, int C,         \
       int OC),                                                                                    \
      (out, inp, weight, bias, N, C, OC))                                                          \
    X(matmul_backward, PC_MATMUL,                                                                  \
      (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,             \
       const float *weight, int N, int C, int OC),                                                 \
      (dinp, dweight, dbias, dout, inp, weight, N, C, OC))                                         \
    X(embedding_forward, PC_EMBED_LOSS,                                                            \
      (float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C,     \
       int V, int maxT, int pos_offset),                                                           \
      (out, tokens, wte, wpe, B, T, C, V, maxT, pos_offset))                                       \
    X(embedding_backward, PC_EMBED_LOSS,                                                           \
      (float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C, int V, \
       int maxT, int pos_offset),                                                                  \
      (dwte, dwpe, dout, tokens, B, T, C, V, maxT, pos_offset))                                    \
    X(residual_forward, PC_OTHER, (float *out, const float *a, const float *b, size_t n),          \
      (out, a, b, n))                                                                              \
    X(residual_backward, PC_OTHER, (float *da, float *db, const float *dout, size_t n),            \
      (da, db, dout, n))                                                                           \
    X(layernorm_forward, PC_NORM,                                                                  \
      (float *out, float *mean, float *rstd, const float *inp, const float *weight,                \
       const float *bias, int N, int C, float eps),                                                \
      (out, mean, rstd, inp, weight, bias, N, C, eps))                                             \
    X(layernorm_backward, PC_NORM,                                                                 \
      (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,             \
       const float *weight, const float *mean, const float *rstd, int N, int C),                   \
      (dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C))                                 \
    X(rmsnorm_forward, PC_NORM,                                                                    \
      (float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps),   \
      (out, rstd, inp, weight, N, C, eps))                                                         \
    X(rmsnorm_backward, PC_NORM,                                                                   \
      (float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,      \
       const float *rstd, int N, int C),                                                           \
      (dinp, dweight, dout, inp, weight, rstd, N, C))                                              \
    X(gelu_forward, PC_ACTIVATION, (float *out, const float *inp, size_t n), (out, inp, n))        \
    X(gelu_backward, PC_ACTIVATION, (float *dinp, const float *inp, const float *dout, size_t n),  \
      (dinp, inp, dout, n))                                                                        \
    X(swiglu_forward, PC_ACTIVATION, (float *out, const float *gate_up, int N, int H),             \
      (out, gate_up, N, H))                                                                        \
    X(swiglu_backward, PC_ACTIVATION,                                                              \
      (float *dgate_up, const float *dout, const float *gate_up, int N, int H),                    \
      (dgate_up, dout, gate_up, N, H))                                                             \
    X(rope_tables, PC_ATTENTION, (float *cos_tab, float *sin_tab, int maxT, int HS, double theta), \
      (cos_tab, sin_tab, maxT, HS, theta))                                                         \
    X(rope_forward, PC_ATTENTION,                                                                  \
      (float *x, const float *cos_tab, const float *sin_tab, int B, int T, int row_stride,         \
       int n_heads, int HS, int maxT, int pos_offset),                                             \
      (x, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, maxT, pos_offset))                      \
    X(rope_backward, PC_ATTENTION,                                                                 \
      (float *dx, const float *cos_tab, const float *sin_tab, int B, int T, int row_stride,        \
       int n_heads, int HS, int maxT, int pos_offset),                                             \
      (dx, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, maxT, pos_offset))                     \
    X(attention_forward, PC_ATTENTION,                                                             \
      (float *out, float *att, const float *qkv, int B, int T, int NH, int NKV, int HS),           \
      (out, att, qkv, B, T, NH, NKV, HS))                                                          \
    X(attention_backward, PC_ATTENTION,                                                            \
      (float *dqkv, const float *dout, const float *qkv, const float *att, void *scratch, int B,   \
       int T, int NH, int NKV, int HS),                                                            \
      (dqkv, dout, qkv, att, scratch, B, T, NH, NKV, HS))                                          \
    X(flash_attention_forward, PC_ATTENTION,                                                       \
      (float *out, float *lse, const float *qkv, int B, int T, int NH, int NKV, int HS),           \
      (out, lse, qkv, B, T, NH, NKV, HS))                                                          \
    X(flash_attention_backward, PC_ATTENTION,                                                      \
      (float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,       \
       int B, int T, int NH, int NKV, int HS),                                                     \
      (dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS))                                              \
    X(kv_cache_append, PC_ATTENTION,                                                               \
      (float *k_cache, float *v_cache, const float *qkv, int B, int T_new, int pos, int NH,        \
       int NKV, int HS, int cache_T),                                                              \
      (k_cache, v_cache, qkv, B, T_new, pos, NH, NKV, HS, cache_T))                                \
    X(attention_decode, PC_ATTENTION,                                                              \
      (float *out, const float *qkv, const float *k_cache, const float *v_cache, int B, int T_new, \
       int pos, int NH, int NKV, int HS, int cache_T),                                             \
      (out, qkv, k_cache, v_cache, B, T_new, pos, NH, NKV, HS, cache_T))                           \
    X(adamw_step, PC_OPTIMIZER,                                                                    \
      (float *param, const float *grad, float *m, float *v, size_t n, int step, float lr,          \
       float beta1, float beta2, float eps, float weight_decay),                                   \
      (param, grad, m, v, n, step, lr, beta1, beta2, eps, weight_decay))                           \
    X(sgd_step, PC_OPTIMIZER,                                                                      \
      (float *param, const float *grad, size_t n, float lr, float weight_decay),                   \
      (param, grad, n, lr, weight_decay))                                                          \
    X(sgd_momentum_step, PC_OPTIMIZER,                                                             \
      (float *param, const float *grad, float *buf, size_t n, float lr, float momentum,            \
       float weight_decay, bool nesterov),                                                         \
      (param, grad, buf, n, lr, momentum, weight_decay, nesterov))                                 \
    X(lion_step, PC_OPTIMIZER,                                                                     \
      (float *param, const float *grad, float *m, size_t n, float lr, float beta1, float beta2,    \
       float weight_decay),                                                                        \
      (param, grad, m, n, lr, beta1, beta2, weight_decay))                                         \
    X(adafactor_step, PC_OPTIMIZER,                                                                \
      (float *param, const float *grad, float *row_state, float *col_state, float *m, int rows,    \
       int cols, int step, float lr, float beta1, float decay_rate, float eps1,                    \
       float clip_threshold, float weight_decay),                                                  \
      (param, grad, row_state, col_state, m, rows, cols, step, lr, beta1, decay_rate, eps1,        \
       clip_threshold, weight_decay))                                                              \
    X(adamw8bit_step, PC_OPTIMIZER,                                                                \
      (float *param, const float *grad, void *state, size_t n, int step, float lr, float beta1,    \
       float beta2, float eps, float weight_decay),                                                \
      (param, grad, state, n, step, lr, beta1, beta2, eps, weight_decay))                          \
    X(adamw8bit_read_state, PC_OPTIMIZER, (float *out, const void *state, size_t n, int which),    \
      (out, state, n, which))                                                                      \
    X(optim_step_segments, PC_OPTIMIZER,                                                           \
      (enum backend_optim kind, float *param, const float *grad, void *state, size_t n,           \
       const struct backend_opt_seg *segs, int nseg, int step, float lr, float beta1,             \
       float beta2, float eps),                                                                    \
      (kind, param, grad, state, n, segs, nseg, step, lr, beta1, beta2, eps))                      \
    X(scale, PC_OPTIMIZER, (float *x, size_t n, float s), (x, n, s))                               \
    X(f32_to_bf16, PC_CONVERSION, (uint16_t * dst, const float *src, size_t n), (dst, src, n))     \
    X(bf16_to_f32, PC_CONVERSION, (float *dst, const uint16_t *src, size_t n), (dst, src, n))      \
    X(matmul_bf16_forward, PC_MATMUL,                                                              \
      (float *out, const float *inp, const uint16_t *weight, const float *bias, int N, int C,      \
       int OC, void *scratch),                                                                     \
      (out, inp, weight, bias, N, C, OC, scratch))                                                 \
    X(matmul_bf16_backward_input, PC_MATMUL,                                                       \
      (float *dinp, const float *dout, const uint16_t *weight, int N, int C, int OC,               \
       void *scratch),                                                                             \
      (dinp, dout, weight, N, C, OC, scratch))                                                     \
    X(matmul_bf16_backward_weight, PC_MATMUL,                                                      \
      (float *dweight, float *dbias, const float *dout, const float *inp, int N, int C, int OC,    \
       void *scratch),                                                                             \
      (dweight, dbias, dout, inp, N, C, OC, scratch))                                              \
    X(f32_to_f16, PC_CONVERSION, (uint16_t * dst, const float *src, size_t n), (dst, src, n))      \
    X(f16_to_f32, PC_CONVERSION, (float *dst, const uint16_t *src, size_t n), (dst, src, n))       \
    X(round_f16, PC_CONVERSION, (float *dst, const float *src, size_t n), (dst, src, n))           \
    X(matmul_f16_forward, PC_MATMUL,                                                               \
      (float *out, const float *inp, const uint16_t *weight, const float *bias, int N, int C,      \
       int OC, void *scratch),                                                                     \
      (out, inp, weight, bias, N, C, OC, scratch))                                                 \
    X(matmul_f16_backward_input, PC_MATMUL,                                                        \
      (float *dinp, const float *dout, const uint16_t *weight, int N, int C, int OC,               \
       void *scratch),                                                                             \
      (dinp, dout, weight, N, C, OC, scratch))                                                     \
    X(matmul_f16_backward_weight, PC_MATMUL,                                                       \
      (float *dweight, float *dbias, const float *dout, const float *inp, int N, int C, int OC,    \
       void *scratch),                                                                             \
      (dweight, dbias, dout, inp, N, C, OC, scratch))                                              \
    X(matmul_gelu_forward, PC_MATMUL,                                                              \
      (float *out, float *pre, const float *inp, const void *weight, int weight_fmt,               \
       const float *bias, int N, int C, int OC, void *scratch),                                    \
      (out, pre, inp, weight, weight_fmt, bias, N, C, OC, scratch))                                \
    X(matmul_backward_input_dgelu, PC_MATMUL,                                                      \
      (float *dpre, const float *dout, const void *weight, int weight_fmt, const float *pre,      \
       int N, int C, int OC, void *scratch),                                                       \
      (dpre, dout, weight, weight_fmt, pre, N, C, OC, scratch))                                    \
    X(matmul_16_backward, PC_MATMUL,                                                               \
      (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,            \
       const uint16_t *weight, int weight_fmt, const float *pre, int N, int C, int OC,             \
       void *scratch),                                                                             \
      (dinp, dweight, dbias, dout, inp, weight, weight_fmt, pre, N, C, OC, scratch))               \
    X(flash_attention_forward_16, PC_ATTENTION,                                                    \
      (float *out, float *lse, const float *qkv, int B, int T, int NH, int NKV, int HS),           \
      (out, lse, qkv, B, T, NH, NKV, HS))                                                          \
    X(flash_attention_backward_16, PC_ATTENTION,                                                   \
      (float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,      \
       int B, int T, int NH, int NKV, int HS),                                                     \
      (dqkv, dout, qkv, out, lse, B, T, NH, NKV, HS))                                              \
    X(quantize_int8_rows, PC_CONVERSION,                                                           \
      (int8_t *wq, float *scale, const float *w, int OC, int C), (wq, scale, w, OC, C))           \
    X(matmul_int8_forward, PC_MATMUL,                                                              \
      (float *out, const float *inp, const int8_t *wq, const float *scale, const float *bias,      \
       int N, int C, int OC),                                                                      \
      (out, inp, wq, scale, bias, N, C, OC))                                                     \
    X(layernorm_forward_a16, PC_NORM,                                                              \
      (uint16_t * out, float *mean, float *rstd, const float *inp, const float *weight,           \
       const float *bias, int N, int C, float eps),                                                \
      (out, mean, rstd, inp, weight, bias, N, C, eps))                                             \
    X(rmsnorm_forward_a16, PC_NORM,                                                                \
      (uint16_t * out, float *rstd, const float *inp, const float *weight, int N, int C,          \
       float eps),                                                                                 \
      (out, rstd, inp, weight, N, C, eps))                                                         \
    X(matmul_a16_forward, PC_MATMUL,                                                               \
      (void *out, bool out_bf16, const uint16_t *inp, const uint16_t *weight, const void *bias,   \
       const float *res, int N, int C, int OC),                                                    \
      (out, out_bf16, inp, weight, bias, res, N, C, OC))                                           \
    X(matmul_gelu_forward_a16, PC_MATMUL,                                                          \
      (uint16_t * out, uint16_t *pre, const uint16_t *inp, const uint16_t *weight,                \
       const uint16_t *bias, int N, int C, int OC),                                                \
      (out, pre, inp, weight, bias, N, C, OC))                                                     \
    X(matmul_16_backward_a16, PC_MATMUL,                                                           \
      (float *dinp, float *dweight, float *dbias, const float *dout, const uint16_t *dout_pre,   \
       const uint16_t *inp, const uint16_t *weight, const uint16_t *pre, int N, int C, int OC,    \
       void *scratch),                                                                             \
      (dinp, dweight, dbias, dout, dout_pre, inp, weight, pre, N, C, OC, scratch))                 \
    X(gelu_forward_a16, PC_ACTIVATION, (uint16_t * out, const uint16_t *inp, size_t n),           \
      (out, inp, n))                                                                               \
    X(gelu_backward_a16, PC_ACTIVATION,                                                            \
      (float *dinp, const uint16_t *inp, const float *dout, size_t n), (dinp, inp, dout, n))      \
    X(swiglu_forward_a16, PC_ACTIVATION, (uint16_t * out, const uint16_t *gate_up, int N, int H), \
      (out, gate_up, N, H))                                                                        \
    X(swiglu_backward_a16, PC_ACTIVATION,                                                          \
      (float *dgate_up, const float *dout, const uint16_t *gate_up, int N, int H),               \
      (dgate_up, dout, gate_up, N, H))                                                             \
    X(rope_forward_a16, PC_ATTENTION,                                                              \
      (uint16_t * x, const float *cos_tab, const float *sin_tab, int B, int T, int row_stride,    \
       int n_heads, int HS, int maxT, int pos_offset),                                             \
      (x, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, maxT, pos_offset))                      \
    X(flash_attention_forward_a16, PC_ATTENTION,                                                   \
      (uint16_t * out, float *lse, const uint16_t *qkv, int B, int T, int NH, int NKV, int HS),   \
      (out, lse, qkv, B, T, NH, NKV, HS))                                                          \
    X(flash_attention_backward_a16, PC_ATTENTION,                                                  \
      (float *dqkv, const float *dout, const uint16_t *qkv, const uint16_t *out,                  \
       const float *lse, void *scratch, size_t scratch_bytes, int B, int T, int NH, int NKV,      \
       int HS),                                                                                    \
      (dqkv, dout, qkv, out, lse, scratch, scratch_bytes, B, T, NH, NKV, HS))                      \
    X(argmax_rows, PC_EMBED_LOSS, (int *out, const float *x, int rows, int V, int ld),            \
      (out, x, rows, V, ld))                                                                       \
    X(matmul_a16_backward_d16, PC_MATMUL,                                                          \
      (float *dinp, float *dweight, const uint16_t *dout, const uint16_t *inp,                    \
       const uint16_t *weight, int N, int C, int OC),                                              \
      (dinp, dweight, dout, inp, weight, N, C, OC))                                                \
    X(kv_cache_append_c16, PC_ATTENTION,                                                           \
      (uint16_t * k_cache, uint16_t *v_cache, const float *qkv, int B, int T_new, int pos,        \
       int NH, int NKV, int HS, int cache_T),                                                      \
      (k_cache, v_cache, qkv, B, T_new, pos, NH, NKV, HS, cache_T))                                \
    X(attention_decode_c16, PC_ATTENTION,                                                          \
      (float *out, const float *qkv, const uint16_t *k_cache, const uint16_t *v_cache, int B,     \
       int T_new, int pos, int NH, int NKV, int HS, int cache_T),                                  \
      (out, qkv, k_cache, v_cache, B, T_new, pos, NH, NKV, HS, cache_T))                           \
    X(kv_cache_append_a16, PC_ATTENTION,                                                           \
      (uint16_t * k_cache, uint16_t *v_cache, const uint16_t *qkv, int B, int T_new, int pos,     \
       int NH, int NKV, int HS, int cache_T),                                                      \
      (k_cache, v_cache, qkv, B, T_new, pos, NH, NKV, HS, cache_T))                                \
    X(attention_decode_a16, PC_ATTENTION,                                                          \
      (uint16_t * out, const uint16_t *qkv, const uint16_t *k_cache, const uint16_t *v_cache,     \
       int B, int T_new, int pos, int NH, int NKV, int HS, int cache_T),                           \
      (out, qkv, k_cache, v_cache, B, T_new, pos, NH, NKV, HS, cache_T))

/* The timed entries returning a value: R(type, entry, class, parameters, arguments). */
#define PROF_VALUE_ENTRIES(R)                                                                      \
    R(float, softmax_ce, PC_EMBED_LOSS,                                                            \
      (float *logits, float *losses, int *n_valid, const int *targets, int N, int V, int Vp,       \
       bool want_grad, float grad_scale),                                                          \
      (logits, losses, n_valid, targets, N, V, Vp, want_grad, grad_scale))                         \
    R(float, softmax_ce_a16, PC_EMBED_LOSS,                                                        \
      (uint16_t * logits, float *losses, int *n_valid, const int *targets, int N, int V, int Vp,   \
       bool want_grad, float grad_scale),                                                          \
      (logits, losses, n_valid, targets, N, V, Vp, want_grad, grad_scale))                         \
    R(double, grad_norm, PC_OPTIMIZER, (const float *grad, size_t n), (grad, n))                   \
    R(double, clip_grad_norm, PC_OPTIMIZER, (float *grad, size_t n, double max_norm),              \
      (grad, n, max_norm))

/* The entries passed through untimed: memory management, queries and synchronize. */
#define PROF_UNTIMED_ENTRIES(U)                                                                    \
    U(alloc) U(free) U(mem_stats) U(mem_reset_peak) U(synchronize) U(matmul_uses_blas)             \
    U(attention_backward_scratch_bytes) U(adafactor_row_floats) U(adafactor_col_floats)            \
    U(adamw8bit_state_bytes) U(has_native_bf16) U(matmul_bf16_scratch_bytes)                   \
    U(host_alloc_pinned) U(host_free_pinned)

/* clang-format on */

#define PROF_ID_V(entry, cls, params, args) PE_##entry,
#define PROF_ID_R(type, entry, cls, params, args) PE_##entry,
enum prof_entry { PROF_VOID_ENTRIES(PROF_ID_V) PROF_VALUE_ENTRIES(PROF_ID_R) PE_COUNT };

#define PROF_COUNT_U(entry) +1
enum { PROF_N_UNTIMED = 0 PROF_UNTIMED_ENTRIES(PROF_COUNT_U) };

/* Every function pointer of struct backend (those after name, flash_max_hs and host_memory) is
 * in exactly one of the tables above; a new entry fails the build here until it is placed. */
_Static_assert((sizeof(struct backend) - offsetof(struct backend, alloc)) /
                       sizeof(void (*)(void)) ==
                   PE_COUNT + PROF_N_UNTIMED,
               "a struct backend entry is missing from backend_profile.c's tables");
_Static_assert(PE_COUNT <= BACKEND_PROFILE_MAX_ENTRIES, "raise BACKEND_PROFILE_MAX_ENTRIES");
_Static_assert(PC_COUNT == BACKEND_PROFILE_N_CLASSES, "BACKEND_PROFILE_N_CLASSES is stale");

struct prof_info {
    const char *name;
    enum prof_class cls;
};

#define PROF_INFO_V(entry, cls, params, args) [PE_##entry] = {#entry, cls},
#define PROF_INFO_R(type, entry, cls, params, args) [PE_##entry] = {#entry, cls},
static const struct prof_info entry_info[PE_COUNT] = {PROF_VOID_ENTRIES(PROF_INFO_V)
                                                          PROF_VALUE_ENTRIES(PROF_INFO_R)};

/* ---------------------------------------------------------------- timing */

struct prof_acc {
    uint64_t calls;
    double seconds;
};

static const struct backend *g_inner;
static struct backend g_table;
static struct prof_acc g_acc[PE_COUNT];
static bool g_paused;
static double g_wall_s;  /* covered wall time before g_since_s */
static double g_since_s; /* when the current unpaused interval began */

static void prof_sync(void)
{
    if (g_inner->synchronize)
        g_inner->synchronize();
}

/* The start clock after the device has drained, or NaN while paused (nothing is timed). */
static double prof_begin(void)
{
    if (g_paused)
        return NAN;
    prof_sync();
    return sw_now_s();
}

static void prof_end(enum prof_entry id, double t0_s)
{
    if (isnan(t0_s))
        return;
    prof_sync();
    double dt_s = sw_now_s() - t0_s;
    g_acc[id].calls++;
    g_acc[id].seconds += dt_s > 0 ? dt_s : 0.0;
}

#define PROF_WRAP_V(entry, cls, params, args)                                                      \
    static void prof_##entry params                                                                \
    {                                                                                              \
        double t0_s = prof_begin();                                                                \
        g_inner->entry args;                                                                       \
        prof_end(PE_##entry, t0_s);                                                                \
    }
#define PROF_WRAP_R(type, entry, cls, params, args)                                                \
    static type prof_##entry params                                                                \
    {                                                                                              \
        double t0_s = prof_begin();                                                                \
        type ret = g_inner->entry args;                                                            \
        prof_end(PE_##entry, t0_s);                                                                \
        return ret;                                                                                \
    }
PROF_VOID_ENTRIES(PROF_WRAP_V)
PROF_VALUE_ENTRIES(PROF_WRAP_R)

void backend_profile_reset(void)
{
    memset(g_acc, 0, sizeof(g_acc));
    g_wall_s = 0.0;
    g_since_s = sw_now_s();
}

void backend_profile_pause(bool paused)
{
    if (paused == g_paused)
        return;
    double now_s = sw_now_s();
    if (paused)
        g_wall_s += now_s - g_since_s;
    else
        g_since_s = now_s;
    g_paused = paused;
}

#define PROF_SET_V(entry, cls, params, args)                                                       \
    if (inner->entry)                                                                              \
        g_table.entry = prof_##entry;
#define PROF_SET_R(type, entry, cls, params, args) PROF_SET_V(entry, cls, params, args)

const struct backend *backend_profiled(const struct backend *inner)
{
    SW_ASSERT(inner);
    if (inner == &g_table)
        return &g_table; /* already profiled: wrapping twice would call itself */
    g_inner = inner;
    g_table = *inner; /* untimed entries, NULL entries, name and flags as they are */
    PROF_VOID_ENTRIES(PROF_SET_V)
    PROF_VALUE_ENTRIES(PROF_SET_R)
    g_paused = false;
    backend_profile_reset();
    return &g_table;
}

bool backend_profile_requested(void)
{
    const char *e = getenv("SCALEWISE_PROFILE");
    return e && e[0] == '1' && e[1] == '\0';
}

/* ---------------------------------------------------------------- the report */

/* Largest seconds first; ties (entries never called) in table order. */
static int row_cmp(const void *a, const void *b)
{
    const struct backend_profile_row *x = a, *y = b;
    if (x->seconds != y->seconds)
        return x->seconds < y->seconds ? 1 : -1;
    return x->order - y->order;
}

static void row_finish(struct backend_profile_row *r, double total_s)
{
    r->percent = total_s > 0 ? 100.0 * r->seconds / total_s : 0.0;
    r->mean_us = r->calls ? 1e6 * r->seconds / (double)r->calls : 0.0;
}

void backend_profile_report(struct backend_profile_report *out)
{
    memset(out, 0, sizeof(*out));
    if (g_inner)
        sw_strlcpy(out->backend, g_inner->name, sizeof(out->backend));
    out->wall_s = g_wall_s + (g_paused ? 0.0 : sw_now_s() - g_since_s);
    for (int c = 0; c < PC_COUNT; c++) {
        out->classes[c].name = class_names[c];
        out->classes[c].order = c;
    }
    out->n_classes = PC_COUNT;
    for (int i = 0; i < PE_COUNT; i++) {
        const struct prof_acc *a = &g_acc[i];
        struct backend_profile_row *k = &out->classes[entry_info[i].cls];
        k->calls += a->calls;
        k->seconds += a->seconds;
        out->calls += a->calls;
        out->total_s += a->seconds;
        if (a->calls == 0)
            continue;
        struct backend_profile_row *r = &out->entries[out->n_entries++];
        r->name = entry_info[i].name;
        r->cls = class_names[entry_info[i].cls];
        r->order = i;
        r->calls = a->calls;
        r->seconds = a->seconds;
    }
    for (int i = 0; i < out->n_entries; i++)
        row_finish(&out->entries[i], out->total_s);
    for (int c = 0; c < out->n_classes; c++)
        row_finish(&out->classes[c], out->total_s);
    qsort(out->entries, (size_t)out->n_entries, sizeof(out->entries[0]), row_cmp);
    qsort(out->classes, (size_t)out->n_classes, sizeof(out->classes[0]), row_cmp);
}

/* One row as a map: name (and class), calls, seconds, percent, mean_us, and seconds_per_step
 * when the report knows its steps. */
static void emit_row(struct sw_emit *e, const struct backend_profile_row *r, int64_t steps)
{
    sw_emit_map_begin(e, NULL);
    sw_emit_str(e, "name", r->name);
    if (r->cls)
        sw_emit_str(e, "class", r->cls);
    sw_emit_u64(e, "calls", r->calls);
    sw_emit_num_prec(e, "seconds", r->seconds, 6);
    sw_emit_num_prec(e, "percent", r->percent, 4);
    sw_emit_num_prec(e, "mean_us", r->mean_us, 5);
    if (steps > 0)
        sw_emit_num_prec(e, "seconds_per_step", r->seconds / (double)steps, 6);
    sw_emit_map_end(e);
}

void backend_profile_emit(struct sw_emit *e, const struct backend_profile_report *r)
{
    sw_emit_map_begin(e, NULL);
    sw_emit_i64(e, "scalewise_profile", 1);
    sw_emit_str(e, "backend", r->backend[0] ? r->backend : NULL);
    sw_emit_str(e, "timing",
                "every timed entry synchronizes the device before and after the "
                "call: the breakdown is the product, the profiled run is slower "
                "than an unprofiled one");
    if (r->steps > 0)
        sw_emit_i64(e, "steps", r->steps);
    else
        sw_emit_null(e, "steps");
    sw_emit_num_prec(e, "wall_s", r->wall_s, 6);
    sw_emit_num_prec(e, "in_backend_s", r->total_s, 6);
    sw_emit_num_prec(e, "outside_backend_s", r->wall_s > r->total_s ? r->wall_s - r->total_s : 0.0,
                     6);
    if (r->steps > 0)
        sw_emit_num_prec(e, "wall_s_per_step", r->wall_s / (double)r->steps, 6);
    sw_emit_u64(e, "calls", r->calls);
    sw_emit_list_begin(e, "classes");
    for (int i = 0; i < r->n_classes; i++)
        emit_row(e, &r->classes[i], r->steps);
    sw_emit_list_end(e);
    sw_emit_list_begin(e, "entries");
    for (int i = 0; i < r->n_entries; i++)
        emit_row(e, &r->entries[i], r->steps);
    sw_emit_list_end(e);
    sw_emit_map_end(e);
}

int backend_profile_write(const char *path, const struct backend_profile_report *r,
                          struct sw_err *err)
{
    struct sw_buf b;
    sw_buf_init(&b, (size_t)1 << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &b, SW_FMT_YAML);
    backend_profile_emit(&e, r);
    sw_emit_finish(&e);
    int rc = sw_write_file_atomic(path, b.data ? b.data : "", b.len, err);
    sw_buf_release(&b);
    return rc;
}
