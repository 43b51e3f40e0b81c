/* The CPU backend: fills struct backend (executor/backend.h) with the kcpu_* kernels of
 * kernels/cpu, plus 64-byte aligned, category-counted allocation and two strided helpers.
 * Allocation goes through sw_try_malloc (fault injection with SW_FAIL_ALLOC_AT); a 64-byte
 * header in front of each buffer remembers the malloc'ed pointer, the requested size and the
 * category, so free() can update the counters. The counters are plain process-wide statics
 * (allocation happens on one thread). Numerics are left entirely to the kernels. */
#include "executor/backend.h"

#include <string.h>

#include "kernels/cpu/kernels_cpu.h"

#define ALIGN_BYTES 64u

/* Lives in the 64 bytes just before the pointer handed out. */
struct alloc_header {
    void *raw;
    size_t bytes;
    int cat;
    uint32_t magic;
};
#define ALLOC_MAGIC 0x5357424bu /* "SWBK" */

static struct backend_mem_stats g_stats;

static const char *const mem_names[BACKEND_MEM_COUNT] = {
    "weights", "gradients", "optimizer", "activations", "kv_cache", "workspace",
};

const char *backend_mem_name(enum backend_mem c)
{
    return ((int)c >= 0 && (int)c < BACKEND_MEM_COUNT) ? mem_names[c] : "unknown";
}

static void *cpu_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err)
{
    SW_ASSERT((int)cat >= 0 && (int)cat < BACKEND_MEM_COUNT);
    if (bytes > SIZE_MAX - 2 * ALIGN_BYTES) {
        sw_errf(err, SW_ENOMEM, "cannot allocate %zu bytes for %s: too large", bytes,
                mem_names[cat]);
        return NULL;
    }
    /* Header slot + worst-case alignment shift. */
    void *raw = sw_try_malloc(bytes + 2 * ALIGN_BYTES, mem_names[cat], err);
    if (!raw)
        return NULL;
    uintptr_t p =
        ((uintptr_t)raw + ALIGN_BYTES + (ALIGN_BYTES - 1)) & ~(uintptr_t)(ALIGN_BYTES - 1);
    struct alloc_header *h = (struct alloc_header *)(p - sizeof(struct alloc_header));
    h->raw = raw;
    h->bytes = bytes;
    h->cat = (int)cat;
    h->magic = ALLOC_MAGIC;
    g_stats.current_bytes[cat] += bytes;
    if (g_stats.current_bytes[cat] > g_stats.peak_bytes[cat])
        g_stats.peak_bytes[cat] = g_stats.current_bytes[cat];
    g_stats.current_total_bytes += bytes;
    if (g_stats.current_total_bytes > g_stats.peak_total_bytes)
        g_stats.peak_total_bytes = g_stats.current_total_bytes;
    return (void *)p;
}

static void cpu_free(void *ptr)
{
    if (!ptr)
        return;
    struct alloc_header *h = (struct alloc_header *)((char *)ptr - sizeof(struct alloc_header));
    SW_ASSERT(h->magic == ALLOC_MAGIC);
    h->magic = 0;
    g_stats.current_bytes[h->cat] -= h->bytes;
    g_stats.current_total_bytes -= h->bytes;
    free(h->raw);
}

static void cpu_memcpy(void *dst, const void *src, size_t bytes, enum backend_copy kind)
{
    (void)kind; /* one address space */
    if (bytes)
        memmove(dst, src, bytes);
}

static void cpu_memset(void *dst, int value, size_t bytes)
{
    if (bytes)
        memset(dst, value, bytes);
}

static void cpu_mem_stats(struct backend_mem_stats *out)
{
    *out = g_stats;
}

static void cpu_mem_reset_peak(void)
{
    for (int c = 0; c < BACKEND_MEM_COUNT; c++)
        g_stats.peak_bytes[c] = g_stats.current_bytes[c];
    g_stats.peak_total_bytes = g_stats.current_total_bytes;
}

static void cpu_synchronize(void) {}

static void cpu_copy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                        float alpha)
{
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * ld_dst;
        const float *s = src + (size_t)r * ld_src;
        if (alpha == 1.0f) {
            memcpy(d, s, (size_t)cols * sizeof(float));
            continue;
        }
        for (int c = 0; c < cols; c++)
            d[c] = alpha * s[c];
    }
}

static void cpu_axpy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols,
                        float alpha)
{
#pragma omp parallel for schedule(static) if ((long)rows * cols > 65536)
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * ld_dst;
        const float *s = src + (size_t)r * ld_src;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            d[c] += alpha * s[c];
    }
}

static const struct backend cpu_backend = {
    .name = "cpu",
    .flash_max_hs = KCPU_FLASH_MAX_HS,
    .host_memory = true,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memcpy = cpu_memcpy,
    .memset = cpu_memset,
    .mem_stats = cpu_mem_stats,
    .mem_reset_peak = cpu_mem_reset_peak,
    .synchronize = cpu_synchronize,
    .copy_2d = cpu_copy_2d,
    .axpy_2d = cpu_axpy_2d,
    .matmul_uses_blas = kcpu_matmul_uses_blas,
    .matmul_forward = kcpu_matmul_forward,
    .matmul_backward = kcpu_matmul_backward,
    .embedding_forward = kcpu_embedding_forward,
    .embedding_backward = kcpu_embedding_backward,
    .residual_forward = kcpu_residual_forward,
    .residual_backward = kcpu_residual_backward,
    .layernorm_forward = kcpu_layernorm_forward,
    .layernorm_backward = kcpu_layernorm_backward,
    .rmsnorm_forward = kcpu_rmsnorm_forward,
    .rmsnorm_backward = kcpu_rmsnorm_backward,
    .gelu_forward = kcpu_gelu_forward,
    .gelu_backward = kcpu_gelu_backward,
    .swiglu_forward = kcpu_swiglu_forward,
    .swiglu_backward = kcpu_swiglu_backward,
    .rope_tables = kcpu_rope_tables,
    .rope_forward = kcpu_rope_forward,
    .rope_backward = kcpu_rope_backward,
    .attention_forward = kcpu_attention_forward,
    .attention_backward_scratch_bytes = kcpu_attention_backward_scratch_bytes,
    .attention_backward = kcpu_attention_backward,
    .flash_attention_forward = kcpu_flash_attention_forward,
    .flash_attention_backward = kcpu_flash_attention_backward,
    .kv_cache_append = kcpu_kv_cache_append,
    .attention_decode = kcpu_attention_decode,
    .argmax_rows = kcpu_argmax_rows,
    .softmax_ce = kcpu_softmax_ce,
    .adamw_step = kcpu_adamw_step,
    .sgd_step = kcpu_sgd_step,
    .sgd_momentum_step = kcpu_sgd_momentum_step,
    .lion_step = kcpu_lion_step,
    .adafactor_row_floats = kcpu_adafactor_row_floats,
    .adafactor_col_floats = kcpu_adafactor_col_floats,
    .adafactor_step = kcpu_adafactor_step,
    .adamw8bit_state_bytes = kcpu_adamw8bit_state_bytes,
    .adamw8bit_step = kcpu_adamw8bit_step,
    .adamw8bit_read_state = kcpu_adamw8bit_read_state,
    .grad_norm = kcpu_grad_norm,
    .clip_grad_norm = kcpu_clip_grad_norm,
    .scale = kcpu_scale,
    .f32_to_bf16 = kcpu_f32_to_bf16,
    .bf16_to_f32 = kcpu_bf16_to_f32,
    .f32_to_f16 = kcpu_f32_to_f16,
    .f16_to_f32 = kcpu_f16_to_f32,
    .round_f16 = kcpu_round_f16,
    .has_native_bf16 = kcpu_has_native_bf16,
    .matmul_bf16_scratch_bytes = kcpu_matmul_bf16_scratch_bytes,
    .matmul_bf16_forward = kcpu_matmul_bf16_forward,
    .matmul_bf16_backward_input = kcpu_matmul_bf16_backward_input,
    .matmul_bf16_backward_weight = kcpu_matmul_bf16_backward_weight,
    .quantize_int8_rows = kcpu_quantize_int8_rows,
    .matmul_int8_forward = kcpu_matmul_int8_forward,
};

const struct backend *backend_cpu(void)
{
    return &cpu_backend;
}
