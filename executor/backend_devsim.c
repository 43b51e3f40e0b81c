/* The device-simulating backend: the CPU kernels behind pointers the host cannot dereference,
 * so the executor's device-readiness — every host access to model memory going through
 * backend->memcpy with the right direction — is tested on a machine without a GPU.
 *
 * A "device" pointer is the CPU backend's pointer plus DEVSIM_SHIFT (2^55): non-canonical on
 * x86-64 (bits 47-63 must agree), and on AArch64 an address of the kernel's half below the
 * top byte (which top-byte-ignore would have let through), so a host load or store through it
 * faults at once (SIGSEGV, or an AddressSanitizer SEGV report) instead of silently working as
 * it would on the CPU backend. User-space pointers stay below 2^48, so the two never meet.
 * Every entry translates its pointer arguments back before calling the kcpu_* kernel and
 * aborts with the entry's name when it is handed a host pointer where a device pointer
 * belongs (or the reverse in memcpy), the mistake a real GPU would turn into a fault or
 * garbage. Numerics are the CPU kernels', so a run on this backend is bitwise identical to one
 * on the CPU backend. Selected with SCALEWISE_DEVSIM=1 (docs/cuda.md, "Testing without a
 * GPU"); the counters are the CPU backend's. */
#include "executor/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kernels_cpu.h"

#define DEVSIM_SHIFT ((uintptr_t)1 << 55)

static const struct backend *cpu(void)
{
    return backend_cpu();
}

static void devsim_misuse(const char *entry, const char *what)
{
    fprintf(stderr, "scalewise: devsim backend: %s: %s\n", entry, what);
    abort();
}

/* Device pointer -> the CPU pointer behind it (NULL stays NULL). */
static void *dv(const void *p, const char *entry)
{
    if (!p)
        return NULL;
    uintptr_t u = (uintptr_t)p;
    if (u < DEVSIM_SHIFT)
        devsim_misuse(entry, "a host pointer was passed where a device pointer belongs");
    return (void *)(u - DEVSIM_SHIFT);
}

/* A host pointer that must not be a device pointer. */
static void *hv(const void *p, const char *entry)
{
    if (p && (uintptr_t)p >= DEVSIM_SHIFT)
        devsim_misuse(entry, "a device pointer was passed where a host pointer belongs");
    return (void *)(uintptr_t)p;
}

#define D(p) dv((p), __func__)

static void *ds_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err)
{
    void *p = cpu()->alloc(bytes, cat, err);
    return p ? (void *)((uintptr_t)p + DEVSIM_SHIFT) : NULL;
}

static void ds_free(void *p)
{
    cpu()->free(D(p));
}

static void ds_memcpy(void *dst, const void *src, size_t bytes, enum backend_copy kind)
{
    void *d = NULL;
    const void *s = NULL;
    switch (kind) {
    case BACKEND_H2D:
        d = D(dst);
        s = hv(src, "memcpy H2D (source)");
        break;
    case BACKEND_D2H:
        d = hv(dst, "memcpy D2H (destination)");
        s = D(src);
        break;
    case BACKEND_D2D:
        d = D(dst);
        s = D(src);
        break;
    }
    if (bytes && (!d || !s))
        devsim_misuse(__func__, "NULL pointer with a non-zero size");
    cpu()->memcpy(d, s, bytes, kind);
}

static void ds_memset(void *dst, int value, size_t bytes)
{
    cpu()->memset(D(dst), value, bytes);
}

/* One set of counters: the CPU backend's. */
static void ds_mem_stats(struct backend_mem_stats *out)
{
    cpu()->mem_stats(out);
}

static void ds_mem_reset_peak(void)
{
    cpu()->mem_reset_peak();
}

static void ds_synchronize(void) {}

static void ds_copy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                       float alpha)
{
    cpu()->copy_2d(D(dst), ld_dst, D(src), ld_src, rows, cols, alpha);
}

static void ds_axpy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                       float alpha)
{
    cpu()->axpy_2d(D(dst), ld_dst, D(src), ld_src, rows, cols, alpha);
}

static void ds_matmul_forward(float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC)
{
    kcpu_matmul_forward(D(out), D(inp), D(weight), D(bias), N, C, OC);
}

static void ds_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC)
{
    kcpu_matmul_backward(D(dinp), D(dweight), D(dbias), D(dout), D(inp), D(weight), N, C, OC);
}

static void ds_embedding_forward(float *out, const int *tokens, const float *wte,
                                 const float *wpe, int B, int T, int C, int V, int maxT,
                                 int pos_offset)
{
    kcpu_embedding_forward(D(out), D(tokens), D(wte), D(wpe), B, T, C, V, maxT, pos_offset);
}

static void ds_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                                  int B, int T, int C, int V, int maxT, int pos_offset)
{
    kcpu_embedding_backward(D(dwte), D(dwpe), D(dout), D(tokens), B, T, C, V, maxT,
                            pos_offset);
}

static void ds_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    kcpu_residual_forward(D(out), D(a), D(b), n);
}

static void ds_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    kcpu_residual_backward(D(da), D(db), D(dout), n);
}

static void ds_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int C, float eps)
{
    kcpu_layernorm_forward(D(out), D(mean), D(rstd), D(inp), D(weight), D(bias), N, C, eps);
}

static void ds_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean,
                                  const float *rstd, int N, int C)
{
    kcpu_layernorm_backward(D(dinp), D(dweight), D(dbias), D(dout), D(inp), D(weight), D(mean),
                            D(rstd), N, C);
}

static void ds_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                               int N, int C, float eps)
{
    kcpu_rmsnorm_forward(D(out), D(rstd), D(inp), D(weight), N, C, eps);
}

static void ds_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                const float *weight, const float *rstd, int N, int C)
{
    kcpu_rmsnorm_backward(D(dinp), D(dweight), D(dout), D(inp), D(weight), D(rstd), N, C);
}

static void ds_gelu_forward(float *out, const float *inp, size_t n)
{
    kcpu_gelu_forward(D(out), D(inp), n);
}

static void ds_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    kcpu_gelu_backward(D(dinp), D(inp), D(dout), n);
}

static void ds_swiglu_forward(float *out, const float *gate_up, int N, int H)
{
    kcpu_swiglu_forward(D(out), D(gate_up), N, H);
}

static void ds_swiglu_backward(float *dgate_up, const float *dout, const float *gate_up, int N,
                               int H)
{
    kcpu_swiglu_backward(D(dgate_up), D(dout), D(gate_up), N, H);
}

static void ds_rope_tables(float *cos_tab, float *sin_tab, int maxT, int HS, double theta)
{
    kcpu_rope_tables(D(cos_tab), D(sin_tab), maxT, HS, theta);
}

static void ds_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int B, int T,
                            int row_stride, int n_heads, int HS, int maxT, int pos_offset)
{
    kcpu_rope_forward(D(x), D(cos_tab), D(sin_tab), B, T, row_stride, n_heads, HS, maxT,
                      pos_offset);
}

static void ds_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int B, int T,
                             int row_stride, int n_heads, int HS, int maxT, int pos_offset)
{
    kcpu_rope_backward(D(dx), D(cos_tab), D(sin_tab), B, T, row_stride, n_heads, HS, maxT,
                       pos_offset);
}

static void ds_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                                 int NKV, int HS)
{
    kcpu_attention_forward(D(out), D(att), D(qkv), B, T, NH, NKV, HS);
}

static void ds_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                  const float *att, void *scratch, int B, int T, int NH, int NKV,
                                  int HS)
{
    kcpu_attention_backward(D(dqkv), D(dout), D(qkv), D(att), D(scratch), B, T, NH, NKV, HS);
}

static void ds_flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T,
                                       int NH, int NKV, int HS)
{
    kcpu_flash_attention_forward(D(out), D(lse), D(qkv), B, T, NH, NKV, HS);
}

static void ds_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                        const float *out, const float *lse, int B, int T, int NH,
                                        int NKV, int HS)
{
    kcpu_flash_attention_backward(D(dqkv), D(dout), D(qkv), D(out), D(lse), B, T, NH, NKV, HS);
}

static void ds_kv_cache_append(float *k_cache, float *v_cache, const float *qkv, int B,
                               int T_new, int pos, int NH, int NKV, int HS, int cache_T)
{
    kcpu_kv_cache_append(D(k_cache), D(v_cache), D(qkv), B, T_new, pos, NH, NKV, HS, cache_T);
}

static void ds_attention_decode(float *out, const float *qkv, const float *k_cache,
                                const float *v_cache, int B, int T_new, int pos, int NH, int NKV,
                                int HS, int cache_T)
{
    kcpu_attention_decode(D(out), D(qkv), D(k_cache), D(v_cache), B, T_new, pos, NH, NKV, HS,
                          cache_T);
}

/* n_valid is a host out-parameter (the count comes back with the loss). */
static void ds_argmax_rows(int *out, const float *x, int rows, int V, int ld)
{
    kcpu_argmax_rows(hv(out, __func__), D(x), rows, V, ld);
}

static float ds_softmax_ce(float *logits, float *losses, int *n_valid, const int *targets, int N,
                           int V, int Vp, bool want_grad, float grad_scale)
{
    return kcpu_softmax_ce(D(logits), D(losses), hv(n_valid, __func__), D(targets), N, V, Vp,
                           want_grad, grad_scale);
}

static void ds_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                          int step, float lr, float beta1, float beta2, float eps,
                          float weight_decay)
{
    kcpu_adamw_step(D(param), D(grad), D(m), D(v), n, step, lr, beta1, beta2, eps, weight_decay);
}

static void ds_sgd_step(float *param, const float *grad, size_t n, float lr, float weight_decay)
{
    kcpu_sgd_step(D(param), D(grad), n, lr, weight_decay);
}

static void ds_sgd_momentum_step(float *param, const float *grad, float *buf, size_t n, float lr,
                                 float momentum, float weight_decay, bool nesterov)
{
    kcpu_sgd_momentum_step(D(param), D(grad), D(buf), n, lr, momentum, weight_decay, nesterov);
}

static void ds_lion_step(float *param, const float *grad, float *m, size_t n, float lr,
                         float beta1, float beta2, float weight_decay)
{
    kcpu_lion_step(D(param), D(grad), D(m), n, lr, beta1, beta2, weight_decay);
}

static void ds_adafactor_step(float *param, const float *grad, float *row_state,
                              float *col_state, float *m, int rows, int cols, int step, float lr,
                              float beta1, float decay_rate, float eps1, float clip_threshold,
                              float weight_decay)
{
    kcpu_adafactor_step(D(param), D(grad), D(row_state), D(col_state), D(m), rows, cols, step,
                        lr, beta1, decay_rate, eps1, clip_threshold, weight_decay);
}

static void ds_adamw8bit_step(float *param, const float *grad, void *state, size_t n, int step,
                              float lr, float beta1, float beta2, float eps, float weight_decay)
{
    kcpu_adamw8bit_step(D(param), D(grad), D(state), n, step, lr, beta1, beta2, eps,
                        weight_decay);
}

/* The one-launch update, as one per-segment call each (through the entries above). */
static void ds_optim_step_segments(enum backend_optim kind, float *param, const float *grad,
                                   void *state, size_t n, const struct backend_opt_seg *segs,
                                   int nseg, int step, float lr, float beta1, float beta2,
                                   float eps)
{
    float *st = state;
    for (int i = 0; i < nseg; i++) {
        size_t o = segs[i].off, k = segs[i].n;
        float wd = segs[i].weight_decay;
        switch (kind) {
        case BACKEND_OPTIM_ADAMW:
            ds_adamw_step(param + o, grad + o, st + o, st + n + o, k, step, lr, beta1, beta2, eps,
                          wd);
            break;
        case BACKEND_OPTIM_SGD:
            ds_sgd_step(param + o, grad + o, k, lr, wd);
            break;
        case BACKEND_OPTIM_SGD_MOMENTUM:
            ds_sgd_momentum_step(param + o, grad + o, st + o, k, lr, beta1, wd, false);
            break;
        case BACKEND_OPTIM_LION:
            ds_lion_step(param + o, grad + o, st + o, k, lr, beta1, beta2, wd);
            break;
        case BACKEND_OPTIM_ADAMW8BIT:
            ds_adamw8bit_step(param + o, grad + o, (char *)state + segs[i].state_off, k, step, lr,
                              beta1, beta2, eps, wd);
            break;
        }
    }
}

/* Device to device, as the CUDA entry. */
static void ds_adamw8bit_read_state(float *out, const void *state, size_t n, int which)
{
    kcpu_adamw8bit_read_state(D(out), D(state), n, which);
}

static double ds_grad_norm(const float *grad, size_t n)
{
    return kcpu_grad_norm(D(grad), n);
}

static double ds_clip_grad_norm(float *grad, size_t n, double max_norm)
{
    return kcpu_clip_grad_norm(D(grad), n, max_norm);
}

static void ds_scale(float *x, size_t n, float s)
{
    kcpu_scale(D(x), n, s);
}

static void ds_f32_to_bf16(uint16_t *dst, const float *src, size_t n)
{
    kcpu_f32_to_bf16(D(dst), D(src), n);
}

static void ds_bf16_to_f32(float *dst, const uint16_t *src, size_t n)
{
    kcpu_bf16_to_f32(D(dst), D(src), n);
}

static void ds_f32_to_f16(uint16_t *dst, const float *src, size_t n)
{
    kcpu_f32_to_f16(D(dst), D(src), n);
}

static void ds_f16_to_f32(float *dst, const uint16_t *src, size_t n)
{
    kcpu_f16_to_f32(D(dst), D(src), n);
}

static void ds_round_f16(float *dst, const float *src, size_t n)
{
    kcpu_round_f16(D(dst), D(src), n);
}

static void ds_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
                                   const float *bias, int N, int C, int OC, void *scratch)
{
    kcpu_matmul_bf16_forward(D(out), D(inp), D(weight), D(bias), N, C, OC, D(scratch));
}

/* The fused MLP matmul as the CPU computes it unfused (the matmul, then GELU), so a run stays
 * bitwise the CPU's while the model's fused branch is exercised. fp16 weights never come here:
 * this backend has no native fp16 matmul, so the model emulates those. */
static void ds_matmul_gelu_forward(float *out, float *pre, const float *inp, const void *weight,
                                   int weight_fmt, const float *bias, int N, int C, int OC,
                                   void *scratch)
{
    if (weight_fmt == BACKEND_WFMT_FP32)
        kcpu_matmul_forward(D(pre), D(inp), D(weight), D(bias), N, C, OC);
    else if (weight_fmt == BACKEND_WFMT_BF16)
        kcpu_matmul_bf16_forward(D(pre), D(inp), D(weight), D(bias), N, C, OC, D(scratch));
    else
        devsim_misuse(__func__, "an fp16 weight: this backend has no native fp16 matmul");
    kcpu_gelu_forward(D(out), D(pre), (size_t)N * OC);
}

/* The DGELU partner, unfused as the CPU computes it: the input gradient into a zeroed buffer
 * (a host temporary here), then gelu_backward into the zeroed output. */
static void ds_matmul_backward_input_dgelu(float *dpre, const float *dout, const void *weight,
                                           int weight_fmt, const float *pre, int N, int C, int OC,
                                           void *scratch)
{
    size_t n = (size_t)N * C;
    float *t = calloc(n ? n : 1, sizeof(float));
    if (!t)
        devsim_misuse(__func__, "no host memory for the product");
    if (weight_fmt == BACKEND_WFMT_FP32)
        kcpu_matmul_backward(t, NULL, NULL, D(dout), NULL, D(weight), N, C, OC);
    else if (weight_fmt == BACKEND_WFMT_BF16)
        kcpu_matmul_bf16_backward_input(t, D(dout), D(weight), N, C, OC, D(scratch));
    else
        devsim_misuse(__func__, "an fp16 weight: this backend has no native fp16 matmul");
    float *dp = D(dpre);
    memset(dp, 0, n * sizeof(float));
    kcpu_gelu_backward(dp, D(pre), t, n);
    free(t);
}

static void ds_matmul_bf16_backward_input(float *dinp, const float *dout, const uint16_t *weight,
                                          int N, int C, int OC, void *scratch)
{
    kcpu_matmul_bf16_backward_input(D(dinp), D(dout), D(weight), N, C, OC, D(scratch));
}

static void ds_matmul_bf16_backward_weight(float *dweight, float *dbias, const float *dout,
                                           const float *inp, int N, int C, int OC, void *scratch)
{
    kcpu_matmul_bf16_backward_weight(D(dweight), D(dbias), D(dout), D(inp), N, C, OC, D(scratch));
}

static void ds_quantize_int8_rows(int8_t *wq, float *scale, const float *w, int OC, int C)
{
    kcpu_quantize_int8_rows(D(wq), D(scale), D(w), OC, C);
}

static void ds_matmul_int8_forward(float *out, const float *inp, const int8_t *wq,
                                   const float *scale, const float *bias, int N, int C, int OC)
{
    kcpu_matmul_int8_forward(D(out), D(inp), D(wq), D(scale), D(bias), N, C, OC);
}

static const struct backend devsim_backend = {
    .name = "devsim",
    .flash_max_hs = KCPU_FLASH_MAX_HS,
    .host_memory = false,
    .alloc = ds_alloc,
    .free = ds_free,
    .memcpy = ds_memcpy,
    .memset = ds_memset,
    .mem_stats = ds_mem_stats,
    .mem_reset_peak = ds_mem_reset_peak,
    .synchronize = ds_synchronize,
    .copy_2d = ds_copy_2d,
    .axpy_2d = ds_axpy_2d,
    .matmul_uses_blas = kcpu_matmul_uses_blas,
    .matmul_forward = ds_matmul_forward,
    .matmul_backward = ds_matmul_backward,
    .embedding_forward = ds_embedding_forward,
    .embedding_backward = ds_embedding_backward,
    .residual_forward = ds_residual_forward,
    .residual_backward = ds_residual_backward,
    .layernorm_forward = ds_layernorm_forward,
    .layernorm_backward = ds_layernorm_backward,
    .rmsnorm_forward = ds_rmsnorm_forward,
    .rmsnorm_backward = ds_rmsnorm_backward,
    .gelu_forward = ds_gelu_forward,
    .gelu_backward = ds_gelu_backward,
    .swiglu_forward = ds_swiglu_forward,
    .swiglu_backward = ds_swiglu_backward,
    .rope_tables = ds_rope_tables,
    .rope_forward = ds_rope_forward,
    .rope_backward = ds_rope_backward,
    .attention_forward = ds_attention_forward,
    .attention_backward_scratch_bytes = kcpu_attention_backward_scratch_bytes,
    .attention_backward = ds_attention_backward,
    .flash_attention_forward = ds_flash_attention_forward,
    .flash_attention_backward = ds_flash_attention_backward,
    .kv_cache_append = ds_kv_cache_append,
    .attention_decode = ds_attention_decode,
    .argmax_rows = ds_argmax_rows,
    .softmax_ce = ds_softmax_ce,
    .adamw_step = ds_adamw_step,
    .sgd_step = ds_sgd_step,
    .sgd_momentum_step = ds_sgd_momentum_step,
    .lion_step = ds_lion_step,
    .adafactor_row_floats = kcpu_adafactor_row_floats,
    .adafactor_col_floats = kcpu_adafactor_col_floats,
    .adafactor_step = ds_adafactor_step,
    .adamw8bit_state_bytes = kcpu_adamw8bit_state_bytes,
    .adamw8bit_step = ds_adamw8bit_step,
    /* computed per segment: the model's one-launch branch runs here with the CPU's numbers */
    .optim_step_segments = ds_optim_step_segments,
    .adamw8bit_read_state = ds_adamw8bit_read_state,
    .grad_norm = ds_grad_norm,
    .clip_grad_norm = ds_clip_grad_norm,
    .scale = ds_scale,
    .f32_to_bf16 = ds_f32_to_bf16,
    .bf16_to_f32 = ds_bf16_to_f32,
    .f32_to_f16 = ds_f32_to_f16,
    .f16_to_f32 = ds_f16_to_f32,
    .round_f16 = ds_round_f16,
    .has_native_bf16 = kcpu_has_native_bf16,
    .matmul_bf16_scratch_bytes = kcpu_matmul_bf16_scratch_bytes,
    .matmul_bf16_forward = ds_matmul_bf16_forward,
    .matmul_gelu_forward = ds_matmul_gelu_forward,
    .matmul_backward_input_dgelu = ds_matmul_backward_input_dgelu,
    .matmul_bf16_backward_input = ds_matmul_bf16_backward_input,
    .matmul_bf16_backward_weight = ds_matmul_bf16_backward_weight,
    /* The 16-bit plans' attention entries, computed as the fp32 ones: the model's branch that
     * calls them runs here, with the CPU's numbers. */
    .flash_attention_forward_16 = ds_flash_attention_forward,
    .flash_attention_backward_16 = ds_flash_attention_backward,
    .quantize_int8_rows = ds_quantize_int8_rows,
    .matmul_int8_forward = ds_matmul_int8_forward,
};

const struct backend *backend_devsim(void)
{
    return &devsim_backend;
}

const struct backend *backend_for_device(bool cuda, struct sw_err *err)
{
    if (cuda)
        return backend_cuda_load(err);
    const char *e = getenv("SCALEWISE_DEVSIM");
    return e && e[0] == '1' ? backend_devsim() : backend_cpu();
}
