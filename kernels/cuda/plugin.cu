/* The CUDA plugin's entry and infrastructure: the one exported symbol the core's loader
 * (executor/backend_cuda_loader.c) calls, scalewise_cuda_backend(), which checks the API
 * version, finds a device (cudaGetDeviceCount; none or no driver -> NULL with the reason),
 * selects one (SCALEWISE_CUDA_DEVICE, else the launcher's local rank, else 0), creates the
 * plugin's stream and reduction buffer, and returns the struct backend table (executor/backend.h)
 * filled with device entries. Also implements the device allocator with per-category
 * accounting (requested bytes, current and peak, as the CPU backend counts them), copies,
 * memset, synchronize and memory statistics (the check wrappers of cuda_int.cuh are in
 * cuda_err.cu).
 * The kernels themselves live in matmul.cu (cuBLASLt) and k_*.cu; this file refers to them
 * weakly (SW_CUDA_WEAK_ENTRIES), so an entry not written yet is a NULL pointer in the table
 * rather than a plugin that fails to load. The core never links this file: it is built by nvcc
 * into build/libscalewise-cuda.so and dlopen'ed. */
#define SW_CUDA_WEAK_ENTRIES 1
#include "kernels/cuda/cuda_int.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT extern "C" __attribute__((visibility("default")))

/* ---------------------------------------------------------------- state */

static int g_device = -1;
static cudaDeviceProp g_props;
static cudaStream_t g_stream;
static float *g_reduce;
static struct backend_mem_stats g_stats;

/* Live allocations: the allocator must know each pointer's bytes and category at free time,
 * and cudaMalloc has no header to hide them in. Models hold a handful of large families, so
 * a flat array searched from the newest entry is enough. */
struct live_alloc {
    void *p;
    size_t bytes;
    int cat;
};
static struct live_alloc *g_live;
static size_t g_live_n, g_live_cap;

static const char *const mem_names[BACKEND_MEM_COUNT] = {
    "weights", "gradients", "optimizer", "activations", "kv_cache", "workspace",
};

cudaStream_t cuda_stream(void)
{
    return g_stream;
}

const cudaDeviceProp *cuda_props(void)
{
    return &g_props;
}

float *cuda_reduce_buf(void)
{
    return g_reduce;
}

unsigned cuda_fill_blocks(unsigned threads, unsigned per_sm)
{
    (void)threads;
    unsigned sms = g_props.multiProcessorCount > 0 ? (unsigned)g_props.multiProcessorCount : 1;
    return sms * (per_sm ? per_sm : 1);
}

/* "1.50 GiB", "12.0 MiB", "512 B" */
static void fmt_bytes(double b, char *out, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%.0f B", b);
    else
        snprintf(out, n, "%.*f %s", b < 10 ? 2 : 1, b, units[u]);
}

/* ---------------------------------------------------------------- allocator */

static void stats_add(int cat, size_t bytes)
{
    g_stats.current_bytes[cat] += bytes;
    if (g_stats.current_bytes[cat] > g_stats.peak_bytes[cat])
        g_stats.peak_bytes[cat] = g_stats.current_bytes[cat];
    g_stats.current_total_bytes += bytes;
    if (g_stats.current_total_bytes > g_stats.peak_total_bytes)
        g_stats.peak_total_bytes = g_stats.current_total_bytes;
}

/* Out of memory: name the request, what each category holds, and the device's free/total. */
static void oom_message(struct sw_err *err, size_t bytes, int cat, cudaError_t e)
{
    char req[32], held[384], freeb[32], totalb[32];
    fmt_bytes((double)bytes, req, sizeof req);
    size_t used = 0;
    held[0] = '\0';
    for (int c = 0; c < BACKEND_MEM_COUNT; c++) {
        char b[32];
        fmt_bytes((double)g_stats.current_bytes[c], b, sizeof b);
        int w = snprintf(held + used, sizeof held - used, "%s%s %s", c ? ", " : "", mem_names[c],
                         b);
        if (w < 0 || (size_t)w >= sizeof held - used)
            break;
        used += (size_t)w;
    }
    size_t free_b = 0, total_b = 0;
    cudaError_t ie = cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError(); /* a failed query must not linger as the sticky last error */
    if (ie == cudaSuccess) {
        fmt_bytes((double)free_b, freeb, sizeof freeb);
        fmt_bytes((double)total_b, totalb, sizeof totalb);
    } else {
        snprintf(freeb, sizeof freeb, "n/a");
        snprintf(totalb, sizeof totalb, "n/a");
    }
    cuda_set_err(err, SW_ENOMEM,
            "cannot allocate %s (%zu bytes) for %s on GPU %d (%s: %s); already allocated by "
            "scalewise: %s; device free %s of %s",
            req, bytes, mem_names[cat], g_device, g_props.name, cudaGetErrorString(e), held,
            freeb, totalb);
}

void *cuda_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err)
{
    if ((int)cat < 0 || (int)cat >= BACKEND_MEM_COUNT) {
        cuda_set_err(err, SW_EINVAL, "cuda_alloc: memory category %d out of range", (int)cat);
        return NULL;
    }
    if (g_live_n == g_live_cap) {
        size_t cap = g_live_cap ? 2 * g_live_cap : 64;
        struct live_alloc *nl = (struct live_alloc *)realloc(g_live, cap * sizeof(*nl));
        if (!nl) {
            cuda_set_err(err, SW_ENOMEM, "cannot grow the GPU allocation table to %zu entries", cap);
            return NULL;
        }
        g_live = nl;
        g_live_cap = cap;
    }
    void *p = NULL;
    /* cudaMalloc(0) may hand back NULL; one byte keeps "bytes == 0 is a unique pointer". */
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess || !p) {
        (void)cudaGetLastError(); /* clear: out of memory is not sticky, later work can run */
        oom_message(err, bytes, (int)cat, e != cudaSuccess ? e : cudaErrorMemoryAllocation);
        return NULL;
    }
    g_live[g_live_n].p = p;
    g_live[g_live_n].bytes = bytes;
    g_live[g_live_n].cat = (int)cat;
    g_live_n++;
    stats_add((int)cat, bytes);
    return p;
}

void cuda_free(void *p)
{
    if (!p)
        return;
    size_t i = g_live_n;
    while (i > 0 && g_live[i - 1].p != p)
        i--;
    if (i == 0) {
        fprintf(stderr, "cuda_free: %p was not allocated by cuda_alloc\n", p);
        abort();
    }
    struct live_alloc *a = &g_live[i - 1];
    g_stats.current_bytes[a->cat] -= a->bytes;
    g_stats.current_total_bytes -= a->bytes;
    *a = g_live[--g_live_n];
    /* cudaFree synchronizes the device itself; queued kernels using p finish first. */
    CUDA_CHECK(cudaFree(p));
}

static void *be_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err)
{
    return cuda_alloc(bytes, cat, err);
}

static void be_free(void *p)
{
    cuda_free(p);
}

/* ---------------------------------------------------------------- copies and stats */

static void be_memcpy(void *dst, const void *src, size_t bytes, enum backend_copy kind)
{
    if (!bytes)
        return;
    cudaMemcpyKind k = kind == BACKEND_H2D   ? cudaMemcpyHostToDevice
                       : kind == BACKEND_D2H ? cudaMemcpyDeviceToHost
                                             : cudaMemcpyDeviceToDevice;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, g_stream));
    /* Host memory is the caller's again when memcpy returns (the CPU backend's contract):
     * wait for copies that touch it. Device-to-device copies stay queued. */
    if (kind != BACKEND_D2D)
        CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

/* backend.h's host_alloc_pinned: NULL when the driver refuses (the error is cleared, so the
 * next checked call does not report it); the caller then uses pageable memory. */
static void *be_host_alloc_pinned(size_t bytes)
{
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void be_host_free_pinned(void *p)
{
    if (p)
        CUDA_CHECK(cudaFreeHost(p));
}

static void be_memset(void *dst, int value, size_t bytes)
{
    if (bytes)
        CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, g_stream));
}

static void be_mem_stats(struct backend_mem_stats *out)
{
    *out = g_stats;
    out->device_total_bytes = g_props.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b >= free_b)
        out->device_used_bytes = total_b - free_b;
    else
        (void)cudaGetLastError(); /* a statistic only: clear the sticky-free error state */
}

static void be_mem_reset_peak(void)
{
    for (int c = 0; c < BACKEND_MEM_COUNT; c++)
        g_stats.peak_bytes[c] = g_stats.current_bytes[c];
    g_stats.peak_total_bytes = g_stats.current_total_bytes;
}

static void be_synchronize(void)
{
    CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

/* ---------------------------------------------------------------- the table */

static struct backend g_backend;

static void fill_table(struct backend *b)
{
    memset(b, 0, sizeof(*b));
    b->name = "cuda";
    b->flash_max_hs = KCUDA_FLASH_MAX_HS;
    b->host_memory = false;
    b->alloc = be_alloc;
    b->free = be_free;
    b->memcpy = be_memcpy;
    b->host_alloc_pinned = be_host_alloc_pinned;
    b->host_free_pinned = be_host_free_pinned;
    b->memset = be_memset;
    b->mem_stats = be_mem_stats;
    b->mem_reset_peak = be_mem_reset_peak;
    b->synchronize = be_synchronize;
    /* The kernel entries: weak references, NULL where no .cu defines them yet. */
    b->copy_2d = kcuda_copy_2d;
    b->axpy_2d = kcuda_axpy_2d;
    b->matmul_uses_blas = kcuda_matmul_uses_blas;
    b->matmul_forward = kcuda_matmul_forward;
    b->matmul_backward = kcuda_matmul_backward;
    b->embedding_forward = kcuda_embedding_forward;
    b->embedding_backward = kcuda_embedding_backward;
    b->residual_forward = kcuda_residual_forward;
    b->residual_backward = kcuda_residual_backward;
    b->layernorm_forward = kcuda_layernorm_forward;
    b->layernorm_backward = kcuda_layernorm_backward;
    b->rmsnorm_forward = kcuda_rmsnorm_forward;
    b->rmsnorm_backward = kcuda_rmsnorm_backward;
    b->gelu_forward = kcuda_gelu_forward;
    b->gelu_backward = kcuda_gelu_backward;
    b->swiglu_forward = kcuda_swiglu_forward;
    b->swiglu_backward = kcuda_swiglu_backward;
    b->rope_tables = kcuda_rope_tables;
    b->rope_forward = kcuda_rope_forward;
    b->rope_backward = kcuda_rope_backward;
    b->attention_forward = kcuda_attention_forward;
    b->attention_backward_scratch_bytes = kcuda_attention_backward_scratch_bytes;
    b->attention_backward = kcuda_attention_backward;
    b->flash_attention_forward = kcuda_flash_attention_forward;
    b->flash_attention_backward = kcuda_flash_attention_backward;
    b->kv_cache_append = kcuda_kv_cache_append;
    b->attention_decode = kcuda_attention_decode;
    b->argmax_rows = kcuda_argmax_rows;
    b->kv_cache_append_c16 = kcuda_kv_cache_append_c16;
    b->attention_decode_c16 = kcuda_attention_decode_c16;
    b->softmax_ce = kcuda_softmax_ce;
    b->adamw_step = kcuda_adamw_step;
    b->sgd_step = kcuda_sgd_step;
    b->sgd_momentum_step = kcuda_sgd_momentum_step;
    b->lion_step = kcuda_lion_step;
    b->adafactor_row_floats = kcuda_adafactor_row_floats;
    b->adafactor_col_floats = kcuda_adafactor_col_floats;
    b->adafactor_step = kcuda_adafactor_step;
    b->adamw8bit_state_bytes = kcuda_adamw8bit_state_bytes;
    b->adamw8bit_step = kcuda_adamw8bit_step;
    b->adamw8bit_read_state = kcuda_adamw8bit_read_state;
    b->optim_step_segments = kcuda_optim_step_segments;
    b->grad_norm = kcuda_grad_norm;
    b->clip_grad_norm = kcuda_clip_grad_norm;
    b->scale = kcuda_scale;
    b->f32_to_bf16 = kcuda_f32_to_bf16;
    b->bf16_to_f32 = kcuda_bf16_to_f32;
    b->has_native_bf16 = kcuda_has_native_bf16;
    b->matmul_bf16_scratch_bytes = kcuda_matmul_bf16_scratch_bytes;
    b->matmul_bf16_forward = kcuda_matmul_bf16_forward;
    b->matmul_bf16_backward_input = kcuda_matmul_bf16_backward_input;
    b->matmul_bf16_backward_weight = kcuda_matmul_bf16_backward_weight;
    b->f32_to_f16 = kcuda_f32_to_f16;
    b->f16_to_f32 = kcuda_f16_to_f32;
    b->round_f16 = kcuda_round_f16;
    b->matmul_f16_forward = kcuda_matmul_f16_forward;
    b->matmul_f16_backward_input = kcuda_matmul_f16_backward_input;
    b->matmul_f16_backward_weight = kcuda_matmul_f16_backward_weight;
    b->matmul_16_backward = kcuda_matmul_16_backward;
    /* SCALEWISE_CUDA_FUSED_GELU=0 keeps the matmul and GELU apart (for comparing the two). */
    const char *fg = getenv("SCALEWISE_CUDA_FUSED_GELU");
    bool fuse = !(fg && strcmp(fg, "0") == 0);
    b->matmul_gelu_forward = fuse ? kcuda_matmul_gelu_forward : NULL;
    b->matmul_backward_input_dgelu = fuse ? kcuda_matmul_backward_input_dgelu : NULL;
    /* 16-bit plans' attention: the tensor-core kernels where the head size and device allow
     * (SCALEWISE_CUDA_ATTENTION=fma keeps the FMA kernels), else the fp32 ones. */
    b->flash_attention_forward_16 = kcuda_flash_attention_forward_16;
    b->flash_attention_backward_16 = kcuda_flash_attention_backward_16;
    b->quantize_int8_rows = kcuda_quantize_int8_rows;
    b->matmul_int8_forward = kcuda_matmul_int8_forward;
    /* bf16 activations: the model takes the group only when every entry but the fused GELU is
     * set. SCALEWISE_CUDA_ACT16=0 keeps fp32 activations (for comparing the two). */
    const char *a16 = getenv("SCALEWISE_CUDA_ACT16");
    if (a16 && strcmp(a16, "0") == 0)
        return;
    b->layernorm_forward_a16 = kcuda_layernorm_forward_a16;
    b->rmsnorm_forward_a16 = kcuda_rmsnorm_forward_a16;
    b->matmul_a16_forward = kcuda_matmul_a16_forward;
    b->matmul_gelu_forward_a16 = fuse ? kcuda_matmul_gelu_forward_a16 : NULL;
    b->matmul_16_backward_a16 = kcuda_matmul_16_backward_a16;
    b->gelu_forward_a16 = kcuda_gelu_forward_a16;
    b->gelu_backward_a16 = kcuda_gelu_backward_a16;
    b->swiglu_forward_a16 = kcuda_swiglu_forward_a16;
    b->swiglu_backward_a16 = kcuda_swiglu_backward_a16;
    b->rope_forward_a16 = kcuda_rope_forward_a16;
    b->flash_attention_forward_a16 = kcuda_flash_attention_forward_a16;
    b->flash_attention_backward_a16 = kcuda_flash_attention_backward_a16;
    b->softmax_ce_a16 = kcuda_softmax_ce_a16;
    b->matmul_a16_backward_d16 = kcuda_matmul_a16_backward_d16;
    b->kv_cache_append_a16 = kcuda_kv_cache_append_a16;
    b->attention_decode_a16 = kcuda_attention_decode_a16;
}

/* ---------------------------------------------------------------- device selection */

/* A non-negative integer from the first set variable of `names`, or -1; *which names it. */
static int env_index(const char *const *names, const char **which)
{
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (!v || !*v)
            continue;
        char *end = NULL;
        long x = strtol(v, &end, 10);
        if (*end != '\0' || x < 0 || x > 1000000)
            return -2 - i; /* malformed: reported by the caller */
        *which = names[i];
        return (int)x;
    }
    return -1;
}

static int select_device(int count, char *err, size_t n)
{
    static const char *const explicit_names[] = {"SCALEWISE_CUDA_DEVICE", NULL};
    /* The launchers' local-rank variables (executor/launch_env.c has the same table). */
    static const char *const local_names[] = {"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                              "MPI_LOCALRANKID", "SLURM_LOCALID", NULL};
    const char *which = NULL;
    int d = env_index(explicit_names, &which);
    if (d <= -2) {
        snprintf(err, n, "SCALEWISE_CUDA_DEVICE='%s' is not a device index",
                 getenv("SCALEWISE_CUDA_DEVICE"));
        return -1;
    }
    if (d >= 0) {
        if (d >= count) {
            snprintf(err, n, "SCALEWISE_CUDA_DEVICE=%d but only %d GPU%s visible", d, count,
                     count == 1 ? " is" : "s are");
            return -1;
        }
        return d;
    }
    d = env_index(local_names, &which);
    if (d <= -2) {
        snprintf(err, n, "%s='%s' is not a local rank", local_names[-2 - d],
                 getenv(local_names[-2 - d]));
        return -1;
    }
    if (d < 0)
        return 0;
    /* One visible GPU: the launcher already narrowed CUDA_VISIBLE_DEVICES for this rank. */
    if (count == 1)
        return 0;
    if (d >= count) {
        snprintf(err, n,
                 "%s=%d but only %d GPUs are visible: run at most one process per GPU, or set "
                 "SCALEWISE_CUDA_DEVICE",
                 which, d, count);
        return -1;
    }
    return d;
}

/* ---------------------------------------------------------------- exported entries */

/* What the bf16-activation attention's tuned dispatch chose so far, one line per shape and
 * direction with every candidate's time (kcuda_flash_attention_tuning: NUL-terminated, as
 * much as fits); returns the number of tuned shapes. The executor's report lists them. */
EXPORT int scalewise_cuda_attention_tuning(char *buf, size_t n)
{
    return kcuda_flash_attention_tuning(buf, n);
}

/* kcuda_matmul_algo_select, for bench_matmul's survey of cuBLASLt's algorithms. */
EXPORT int scalewise_cuda_gemm_algo(int index)
{
    return kcuda_matmul_algo_select(index);
}

/* sizeof(struct backend) this plugin was built with: the loader compares it with its own, so
 * a plugin left over from before an entry was added is refused instead of misread. */
EXPORT const size_t scalewise_cuda_backend_table_bytes = sizeof(struct backend);

/* The plugin's switches (docs/cuda.md): false with the reason in err[0..n) when one is set to
 * a value it does not take, so a typo refuses the backend instead of silently running the
 * default. SCALEWISE_CUDA_GEMM_ALGO is checked by kcuda_matmul_init. */
static bool env_ok(char *err, size_t n)
{
    static const struct {
        const char *name, *const values[8];
    } sw[] = {
        {"SCALEWISE_CUDA_ATTENTION", {"auto", "wide", "pipe", "mma", "wmma", "fma", NULL}},
        {"SCALEWISE_CUDA_FUSED_GELU", {"0", "1", NULL}},
        {"SCALEWISE_CUDA_ACT16", {"0", "1", NULL}},
    };
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++) {
        const char *v = getenv(sw[i].name);
        if (!v || !v[0])
            continue;
        bool known = false;
        char list[96] = "";
        size_t used = 0;
        for (int k = 0; sw[i].values[k]; k++) {
            known = known || strcmp(v, sw[i].values[k]) == 0;
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                     sw[i].values[k]);
        }
        if (!known) {
            snprintf(err, n, "%s=%s: expected one of %s", sw[i].name, v, list);
            return false;
        }
    }
    return true;
}

/* The backend table for the selected GPU, or NULL with the reason in err[0..n). Idempotent:
 * a second call returns the same table. Fork safety: call it in the process that will use the
 * GPU, after any fork. */
EXPORT const struct backend *scalewise_cuda_backend(int api_version, char *err, size_t n)
{
    if (n)
        err[0] = '\0';
    if (api_version != BACKEND_API_VERSION) {
        snprintf(err, n,
                 "the CUDA plugin was built for backend API %d, this scalewise uses %d: rebuild "
                 "both with make",
                 BACKEND_API_VERSION, api_version);
        return NULL;
    }
    if (g_device >= 0)
        return &g_backend;
    if (!env_ok(err, n))
        return NULL;
    int count = 0; /* cudaGetDeviceCount leaves it untouched when it fails */
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        int drv = 0;
        (void)cudaDriverGetVersion(&drv);
        (void)cudaGetLastError();
        if (e != cudaSuccess)
            snprintf(err, n, "no NVIDIA GPU: cudaGetDeviceCount returned %d (%s)%s", (int)e,
                     cudaGetErrorString(e), drv == 0 ? "; no CUDA driver is installed" : "");
        else
            snprintf(err, n, "no NVIDIA GPU: cudaGetDeviceCount found 0 devices");
        return NULL;
    }
    int dev = select_device(count, err, n);
    if (dev < 0)
        return NULL;
    if ((e = cudaSetDevice(dev)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&g_props, dev)) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n, "GPU %d: cannot initialise it: %s", dev, cudaGetErrorString(e));
        return NULL;
    }
    /* Built for sm_75 (Turing: fp16 tensor cores, no bf16 or tf32), sm_80 and sm_90 (and PTX
     * for newer); CUDA 13 compiles nothing older. */
    if (g_props.major * 10 + g_props.minor < 75) {
        snprintf(err, n,
                 "GPU %d (%s) has compute capability %d.%d; the CUDA backend is built for 7.5 "
                 "and newer (Turing, Ampere, Ada, Hopper)",
                 dev, g_props.name, g_props.major, g_props.minor);
        return NULL;
    }
    if ((e = cudaStreamCreate(&g_stream)) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n, "GPU %d (%s): cannot create a stream: %s", dev, g_props.name,
                 cudaGetErrorString(e));
        return NULL;
    }
    g_device = dev; /* before cuda_alloc: its messages name the device */
    struct sw_err aerr;
    g_reduce = (float *)cuda_alloc(CUDA_REDUCE_FLOATS * sizeof(float), BACKEND_MEM_WORKSPACE,
                                   &aerr);
    if (!g_reduce) {
        snprintf(err, n, "%s", aerr.msg);
        (void)cudaStreamDestroy(g_stream);
        g_device = -1;
        return NULL;
    }
    if (kcuda_matmul_init(&aerr) < 0) {
        snprintf(err, n, "%s", aerr.msg);
        cuda_free(g_reduce);
        g_reduce = NULL;
        (void)cudaStreamDestroy(g_stream);
        g_device = -1;
        return NULL;
    }
    fill_table(&g_backend);
    return &g_backend;
}
