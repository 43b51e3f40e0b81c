/* The CPU execution model of tests/cuda_emu/cuda_emu.h: cooperative fibers for the threads of a
 * block (one block at a time), block and warp barriers, warp exchanges (shuffles, ballot),
 * shared-memory poisoning, launch-limit checks, and the host runtime calls that the kernel
 * files and plugin.cu make: devices and their properties, versions, memory (host memory with
 * the device's size enforced, copies whose pointers must match their kind), streams and events
 * (work is finished when issued). The plugin.cu functions that test_cuda_emu needs without
 * plugin.cu are in plugin_standin.cpp; the emulated plugin links plugin.cu itself instead.
 *
 * Fibers: each thread of a block is a fiber with its own mmap'ed stack. On x86-64 a switch is
 * emu_swap (below: callee-saved registers and the stack pointer, a few ns); elsewhere a fiber
 * is entered the first time with makecontext/setcontext and afterwards switched with
 * _setjmp/_longjmp (no signal-mask system call, ~20 ns a switch instead of ~400 ns for
 * swapcontext). A fiber runs the kernel,
 * parks at its end, and is reused by the next block and the next launch. Only the scheduler
 * (emu_run_grid, on the caller's stack) resumes fibers; a fiber only jumps back to it. */
#undef _FORTIFY_SOURCE /* __longjmp_chk rejects jumps between stacks */
#include "cuda_emu.h"

#include <setjmp.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#include <map>
#include <vector>

#include "kernels/cuda/cuda_int.cuh"

/* Under AddressSanitizer (a manual build with -fsanitize=address, to catch out-of-bounds
 * accesses of the kernels) every stack switch is announced, or ASan takes a fiber's stack for a
 * corrupted one. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_SWITCH_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define EMU_SWITCH_DONE(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define EMU_SWITCH_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define EMU_SWITCH_DONE(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---------------------------------------------------------------- the emulated devices */

static cudaError_t g_last_error = cudaSuccess;

/* Every failing runtime call is also the last error (not sticky: cudaGetLastError clears it). */
static cudaError_t fail(cudaError_t e)
{
    g_last_error = e;
    return e;
}

/* A non-negative size from the environment, or dflt when unset; a malformed value aborts (a
 * test configuration error, not something to emulate). */
static unsigned long long env_size(const char *name, unsigned long long dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end = nullptr;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || v[0] == '-') {
        fprintf(stderr, "cuda emulation: %s='%s' is not a non-negative integer\n", name, v);
        abort();
    }
    return x;
}

static int device_count(void)
{
    static int n = -1;
    if (n < 0)
        n = (int)env_size("SCALEWISE_EMU_CUDA_DEVICES", 1);
    return n;
}

const cudaDeviceProp *emu_device_props(void)
{
    static cudaDeviceProp p;
    if (!p.major) {
        snprintf(p.name, sizeof p.name, "CUDA emulation on the CPU (tests/cuda_emu)");
        p.totalGlobalMem = (size_t)env_size("SCALEWISE_EMU_CUDA_MEM_BYTES", 16ull << 30);
        p.sharedMemPerBlock = 48 * 1024;
        p.warpSize = 32;
        p.maxThreadsPerBlock = 1024;
        p.multiProcessorCount = 2; /* small: grid-stride loops stride at test sizes */
        /* SCALEWISE_EMU_CUDA_CC: the compute capability as major*10+minor (default 80, an
         * A100 with 163 KiB of opt-in shared memory; 75 is a T4 with 64 KiB). */
        unsigned cc = (unsigned)env_size("SCALEWISE_EMU_CUDA_CC", 80);
        p.major = (int)(cc / 10);
        p.minor = (int)(cc % 10);
        p.sharedMemPerBlockOptin = cc >= 80 ? 163 * 1024 : 64 * 1024;
    }
    return &p;
}

static const cudaDeviceProp *emu_props(void)
{
    return emu_device_props();
}

static int g_cur_device; /* cudaSetDevice's choice; device 0 until then, as in CUDA */

/* ---------------------------------------------------------------- runtime calls */

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return g_last_error;
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
        return "cudaErrorInvalidDevicePointer";
    case cudaErrorInsufficientDriver:
        return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
        return "cudaErrorNotReady";
    case cudaErrorLaunchFailure:
        return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

/* The CUDA runtime's wording. */
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
        return "invalid device pointer";
    case cudaErrorInsufficientDriver:
        return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorNotReady:
        return "device not ready";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    }
    return "unrecognized error code";
}

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count)
        return fail(cudaErrorInvalidValue);
    *count = device_count();
    return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    if (device < 0 || device >= device_count())
        return fail(cudaErrorInvalidDevice);
    g_cur_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    if (!device)
        return fail(cudaErrorInvalidValue);
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    *device = g_cur_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (!prop)
        return fail(cudaErrorInvalidValue);
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    if (device < 0 || device >= device_count())
        return fail(cudaErrorInvalidDevice);
    *prop = *emu_props();
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

/* Live cudaMalloc allocations (start -> bytes and device), for emu_device_span and the
 * per-device memory in use. */
struct emu_alloc {
    size_t bytes;
    int device;
};
static std::map<uintptr_t, emu_alloc> &g_allocs = *new std::map<uintptr_t, emu_alloc>;
static std::vector<size_t> g_used_bytes; /* per device */

static size_t &used_bytes(int device)
{
    if (g_used_bytes.size() <= (size_t)device)
        g_used_bytes.resize((size_t)device + 1, 0);
    return g_used_bytes[(size_t)device];
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    if (!free_bytes || !total_bytes)
        return fail(cudaErrorInvalidValue);
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    size_t total = emu_props()->totalGlobalMem, used = used_bytes(g_cur_device);
    *total_bytes = total;
    *free_bytes = used < total ? total - used : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (!p)
        return fail(cudaErrorInvalidValue);
    *p = nullptr;
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    /* The device's memory is a limit (what cudaMemGetInfo reports free), so out of memory can
     * be tested; a real cudaMalloc also rounds up, which this one does not count. */
    size_t &used = used_bytes(g_cur_device), total = emu_props()->totalGlobalMem;
    if (bytes > total - (used < total ? used : total))
        return fail(cudaErrorMemoryAllocation);
    /* 256-byte aligned like cudaMalloc, and no larger than asked (ASan sees overruns). */
    if (posix_memalign(p, 256, bytes ? bytes : 1) != 0) {
        *p = nullptr;
        return fail(cudaErrorMemoryAllocation);
    }
    g_allocs[(uintptr_t)*p] = emu_alloc{bytes, g_cur_device};
    used += bytes;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end())
        return fail(cudaErrorInvalidValue); /* not from cudaMalloc, or freed twice */
    used_bytes(it->second.device) -= it->second.bytes;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}

static std::map<uintptr_t, size_t> &g_host_allocs = *new std::map<uintptr_t, size_t>;

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    if (!p)
        return fail(cudaErrorInvalidValue);
    *p = malloc(bytes ? bytes : 1);
    if (!*p)
        return fail(cudaErrorMemoryAllocation);
    g_host_allocs[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p)
        return cudaSuccess;
    if (!g_host_allocs.erase((uintptr_t)p))
        return fail(cudaErrorInvalidValue); /* not from cudaMallocHost, or freed twice */
    free(p);
    return cudaSuccess;
}

/* The live allocation holding address q, or end(). */
static std::map<uintptr_t, emu_alloc>::iterator alloc_of(uintptr_t q)
{
    auto it = g_allocs.upper_bound(q);
    if (it == g_allocs.begin())
        return g_allocs.end();
    --it;
    /* One past a zero-byte allocation still belongs to it (its unique pointer). */
    return q - it->first < (it->second.bytes ? it->second.bytes : 1) ? it : g_allocs.end();
}

bool emu_device_span(const void *p, size_t bytes)
{
    if (bytes == 0)
        return true;
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin())
        return false;
    --it;
    uintptr_t lo = it->first, q = (uintptr_t)p;
    return q >= lo && q - lo <= it->second.bytes && bytes <= it->second.bytes - (q - lo);
}

/* True when [p, p + bytes) overlaps no live allocation: host memory. */
static bool host_span(const void *p, size_t bytes)
{
    uintptr_t q = (uintptr_t)p;
    if (alloc_of(q) != g_allocs.end())
        return false;
    auto it = g_allocs.upper_bound(q); /* the first allocation after p */
    return it == g_allocs.end() || it->first - q >= bytes;
}

static const char *const kind_names[] = {"HostToHost", "HostToDevice", "DeviceToHost",
                                         "DeviceToDevice", "Default"};

/* One side of a copy against what its kind says; prints the mismatch. */
static bool side_ok(const char *call, int kind, const char *side, const void *p, size_t bytes,
                    bool device)
{
    if (!p) {
        fprintf(stderr, "cuda emulation: %s(%s): the %s pointer is NULL (%zu bytes)\n", call,
                kind_names[kind], side, bytes);
        return false;
    }
    if (device ? emu_device_span(p, bytes) : host_span(p, bytes))
        return true;
    fprintf(stderr, "cuda emulation: %s(%s): the %s %p..+%zu is %s\n", call, kind_names[kind],
            side, p, bytes,
            device ? "not inside one device allocation" : "device memory, not host memory");
    return false;
}

static cudaError_t copy(const char *call, void *dst, const void *src, size_t bytes,
                        cudaMemcpyKind kind)
{
    if ((int)kind < 0 || (int)kind > (int)cudaMemcpyDefault)
        return fail(cudaErrorInvalidValue);
    if (!bytes)
        return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) { /* either side may be either (unified addressing) */
        dst_dev = emu_device_span(dst, bytes);
        src_dev = emu_device_span(src, bytes);
    }
    if (!side_ok(call, kind, "destination", dst, bytes, dst_dev) ||
        !side_ok(call, kind, "source", src, bytes, src_dev))
        return fail(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

/* A stream handle must be the legacy default (0) or a live stream of cudaStreamCreate. */
struct emu_stream {
    int device;
};
static std::map<const emu_stream *, bool> &g_streams = *new std::map<const emu_stream *, bool>;

static bool stream_ok(cudaStream_t s)
{
    return !s || g_streams.count(s);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    return copy("cudaMemcpy", dst, src, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s)
{
    if (!stream_ok(s))
        return fail(cudaErrorInvalidResourceHandle);
    return copy("cudaMemcpyAsync", dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes)
{
    if (!bytes)
        return cudaSuccess;
    if (!dst || !emu_device_span(dst, bytes)) {
        fprintf(stderr, "cuda emulation: cudaMemset: %p..+%zu is not inside one device "
                "allocation\n", dst, bytes);
        return fail(cudaErrorInvalidValue);
    }
    memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s)
{
    if (!stream_ok(s))
        return fail(cudaErrorInvalidResourceHandle);
    return cudaMemset(dst, value, bytes);
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *p)
{
    if (!attr)
        return fail(cudaErrorInvalidValue);
    auto it = alloc_of((uintptr_t)p);
    if (it == g_allocs.end()) { /* CUDA 11+: unknown host memory is "unregistered", no error */
        *attr = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, nullptr};
    } else {
        *attr = cudaPointerAttributes{cudaMemoryTypeDevice, it->second.device,
                                      const_cast<void *>(p), nullptr};
    }
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    if (!s)
        return fail(cudaErrorInvalidValue);
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    *s = new emu_stream{g_cur_device};
    g_streams[*s] = true;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s || !g_streams.erase(s))
        return fail(cudaErrorInvalidResourceHandle);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t s)
{
    /* Every launch and copy finished when it returned: a valid stream is always idle. */
    return stream_ok(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaDeviceSynchronize(void)
{
    return device_count() > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    return stream_ok(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

/* Events hold the wall-clock time of their record (launches are synchronous). */
struct emu_event {
    double ms;
};

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = new emu_event{0.0};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    e->ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

static std::map<const void *, int> g_optin; /* kernel -> opted-in dynamic shared bytes */

cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > emu_props()->sharedMemPerBlockOptin)
        return cudaErrorInvalidValue;
    g_optin[kernel] = value;
    return cudaSuccess;
}

/* ---------------------------------------------------------------- fibers */

enum { F_READY, F_BLOCKED, F_DONE };
enum { W_NONE, W_BLOCK, W_WARP };

#define EMU_STACK_BYTES ((size_t)256 * 1024)

/* x86-64 (System V): a switch pushes the callee-saved registers on the running stack, stores
 * its stack pointer, loads the other's and pops its registers: about 2 ns, against ~40 ns for
 * glibc's _setjmp/_longjmp pair (pointer mangling, cleanup-handler unwinding), which matters
 * because every barrier and warp exchange is two switches per thread. The floating-point
 * control words belong to the host thread and no kernel changes them, so they are not saved.
 * Other machines use _setjmp/_longjmp. */
#if defined(__x86_64__) && !defined(EMU_PORTABLE_SWITCH)
#define EMU_FAST_SWITCH 1
extern "C" void emu_swap(void **save_sp, void *load_sp);
__asm__(".text\n"
        ".p2align 4\n"
        ".type emu_swap, @function\n"
        "emu_swap:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size emu_swap, .-emu_swap\n");
#endif

struct fiber {
#ifdef EMU_FAST_SWITCH
    void *sp; /* saved stack pointer while switched out */
#else
    jmp_buf jb;
    ucontext_t uc;
#endif
    char *stack; /* EMU_STACK_BYTES above a guard page */
    bool started;
    int state, wait;
    uint3 tid;
    int lane, warp;
    unsigned exchanges; /* warp exchanges so far: their parity picks the slot buffer */
    /* cp.async copies not carried out yet: group -1 until a commit closes it */
    struct copy {
        void *dst;
        const void *src;
        long group;
    };
    std::vector<copy> copies;
    long groups; /* groups closed so far */
    void *asan_fake;    /* ASan's fake-stack handle while the fiber is switched out */
};

struct barrier {
    int arrived, live;
};

struct warp_state {
    barrier bar;
    int size;               /* lanes that exist (the last warp of a block may be partial) */
    uint64_t slot[2][32];   /* exchange buffers, alternating (see exchange()) */
    unsigned seq[2][32];    /* the exchange number each slot was written by */
};

/* Reused by every block and launch, and kept for the life of the process (reachable, so a leak
 * checker does not count them). */
static std::vector<fiber *> &g_fibers = *new std::vector<fiber *>;
static std::vector<warp_state> g_warps;
static barrier g_block;
static int g_nthreads, g_done;
static int g_cur = -1; /* running fiber, -1 on the host */
#ifdef EMU_FAST_SWITCH
static void *g_sched_sp;
#else
static jmp_buf g_sched;
#endif
static void (*g_body)(void *);
static void *g_arg;
static unsigned char *g_dyn_smem;
static size_t g_dyn_bytes;
static void *g_sched_fake;           /* the scheduler's ASan handle while a fiber runs */
static const void *g_sched_bottom;  /* the scheduler's stack, for switches back to it */
static size_t g_sched_size;

extern "C" {
/* Bounds of the static __shared__ variables (GNU ld defines these for a section whose name is
 * a C identifier); weak so that a program without any links. */
extern unsigned char __start_emu_shared[] __attribute__((weak, visibility("hidden")));
extern unsigned char __stop_emu_shared[] __attribute__((weak, visibility("hidden")));
}

[[noreturn]] static void emu_die(const char *what)
{
    fprintf(stderr, "cuda emulation: %s (block (%u,%u,%u), thread (%u,%u,%u))\n", what,
            blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    abort();
}

static fiber &cur(const char *what)
{
    if (g_cur < 0) {
        fprintf(stderr, "cuda emulation: %s called outside a kernel\n", what);
        abort();
    }
    return *g_fibers[(size_t)g_cur];
}

int emu_lane(void)
{
    return cur("a warp operation").lane;
}

void *emu_dyn_smem(void)
{
    return g_dyn_smem;
}

/* Whether [p, p+bytes) lies in the block's shared memory (dynamic or static). */
static bool shared_span(const void *p, size_t bytes)
{
    const unsigned char *c = static_cast<const unsigned char *>(p);
    unsigned char *s0 = __start_emu_shared, *s1 = __stop_emu_shared;
    if (g_dyn_smem && c >= g_dyn_smem && c + bytes <= g_dyn_smem + g_dyn_bytes)
        return true;
    return s0 && c >= s0 && c + bytes <= s1;
}

void emu_cp_async16(void *dst, const void *src)
{
    fiber &f = cur("cp.async");
    if (((uintptr_t)dst & 15) || ((uintptr_t)src & 15) || !shared_span(dst, 16) ||
        !emu_device_span(src, 16))
        emu_die("cp.async: the source must be 16-byte aligned device memory and the "
                "destination 16-byte aligned shared memory");
    /* On the hardware the destination holds nothing defined while the copy is in flight, so
     * it is poisoned now rather than left as it was: a read that should have waited for the
     * copy, or (with the warp-serial blocks of run_block) another warp's read of data that this
     * copy overwrites before a missing barrier, sees the poison instead of valid bytes. */
    memset(dst, 0xff, 16);
    f.copies.push_back({dst, src, -1});
}

void emu_cp_async_commit(void)
{
    fiber &f = cur("cp.async.commit_group");
    for (fiber::copy &c : f.copies)
        if (c.group < 0)
            c.group = f.groups;
    f.groups++;
}

void emu_cp_async_wait(int newest_pending)
{
    fiber &f = cur("cp.async.wait_group");
    long done_below = f.groups - newest_pending; /* groups older than this complete */
    std::vector<fiber::copy> keep;
    for (const fiber::copy &c : f.copies) {
        if (c.group >= 0 && c.group < done_below)
            memcpy(c.dst, c.src, 16);
        else
            keep.push_back(c);
    }
    f.copies.swap(keep);
}

void emu_ldmatrix_check(const void *row)
{
    (void)cur("ldmatrix");
    if (((uintptr_t)row & 15) || !shared_span(row, 16))
        emu_die("ldmatrix: a row address is not 16-byte aligned shared memory");
}

/* Back to the scheduler; returns when the scheduler resumes this fiber. */
static void yield(fiber &f)
{
#ifdef EMU_FAST_SWITCH
    EMU_SWITCH_START(&f.asan_fake, g_sched_bottom, g_sched_size);
    emu_swap(&f.sp, g_sched_sp);
    EMU_SWITCH_DONE(f.asan_fake, &g_sched_bottom, &g_sched_size);
    return;
#else
    if (!_setjmp(f.jb)) {
        EMU_SWITCH_START(&f.asan_fake, g_sched_bottom, g_sched_size);
        _longjmp(g_sched, 1);
    }
    EMU_SWITCH_DONE(f.asan_fake, &g_sched_bottom, &g_sched_size);
#endif
}

static void release_block(void)
{
    g_block.arrived = 0;
    for (int i = 0; i < g_nthreads; i++) {
        fiber *f = g_fibers[(size_t)i];
        if (f->state == F_BLOCKED && f->wait == W_BLOCK) {
            f->state = F_READY;
            f->wait = W_NONE;
        }
    }
}

static void release_warp(int w)
{
    g_warps[(size_t)w].bar.arrived = 0;
    for (int i = w * 32; i < w * 32 + g_warps[(size_t)w].size; i++) {
        fiber *f = g_fibers[(size_t)i];
        if (f->state == F_BLOCKED && f->wait == W_WARP) {
            f->state = F_READY;
            f->wait = W_NONE;
        }
    }
}

void __syncthreads(void)
{
    fiber &f = cur("__syncthreads");
    if (++g_block.arrived == g_block.live) {
        release_block(); /* the last to arrive also waits for its turn: see the file comment */
    } else {
        f.state = F_BLOCKED;
        f.wait = W_BLOCK;
    }
    yield(f);
}

static void warp_barrier(fiber &f)
{
    warp_state &w = g_warps[(size_t)f.warp];
    if (++w.bar.arrived == w.bar.live) {
        release_warp(f.warp);
    } else {
        f.state = F_BLOCKED;
        f.wait = W_WARP;
    }
    yield(f);
}

void emu_syncwarp(unsigned mask)
{
    fiber &f = cur("__syncwarp");
    if (mask != 0xffffffffu)
        emu_die("__syncwarp with a partial mask is not emulated");
    warp_barrier(f);
}

/* Deposit bits in this lane's slot, meet the warp, return the slot buffer and (*seq) this
 * exchange's number. Two buffers alternate: a lane that runs ahead into its next exchange
 * writes the other buffer, and cannot come back to this one before every lane has met it again
 * (so has read this one). A slot whose number differs was not written by this exchange: its
 * lane had exited (or never existed). */
static const uint64_t *exchange(fiber &f, unsigned mask, uint64_t bits, unsigned *seq)
{
    if (mask != 0xffffffffu)
        emu_die("a warp exchange with a partial mask is not emulated");
    warp_state &w = g_warps[(size_t)f.warp];
    unsigned k = ++f.exchanges;
    w.slot[k & 1][f.lane] = bits;
    w.seq[k & 1][f.lane] = k;
    warp_barrier(f);
    *seq = k;
    return w.slot[k & 1];
}

static bool slot_valid(const fiber &f, int lane, unsigned k)
{
    const warp_state &w = g_warps[(size_t)f.warp];
    return lane >= 0 && lane < w.size && w.seq[k & 1][lane] == k;
}

uint64_t emu_shfl(unsigned mask, uint64_t bits, emu_shfl_kind kind, int arg, int width)
{
    fiber &f = cur("a shuffle");
    if (width <= 0 || width > 32 || (width & (width - 1)))
        emu_die("shuffle width is not a power of 2 <= 32");
    unsigned k;
    const uint64_t *buf = exchange(f, mask, bits, &k);
    int lane = f.lane, seg = lane & ~(width - 1), src = lane;
    switch (kind) {
    case EMU_SHFL_IDX:
        src = seg + (arg & (width - 1));
        break;
    case EMU_SHFL_XOR:
        src = lane ^ arg;
        if ((src & ~(width - 1)) != seg)
            src = lane;
        break;
    case EMU_SHFL_UP:
        src = lane - arg >= seg ? lane - arg : lane;
        break;
    case EMU_SHFL_DOWN:
        src = lane + arg < seg + width ? lane + arg : lane;
        break;
    }
    if (!slot_valid(f, src, k))
        emu_die("a shuffle reads a lane that does not exist or has exited");
    return buf[src];
}

unsigned __ballot_sync(unsigned mask, int pred)
{
    fiber &f = cur("__ballot_sync");
    unsigned k;
    const uint64_t *buf = exchange(f, mask, pred != 0, &k);
    unsigned r = 0;
    for (int l = 0; l < 32; l++)
        if (slot_valid(f, l, k) && buf[l])
            r |= 1u << l;
    return r;
}

void emu_wmma_check(const void *p, unsigned ldm, size_t elem_bytes, const char *what)
{
    if (((uintptr_t)p & 31) || (ldm * elem_bytes) % 16) {
        char msg[160];
        snprintf(msg, sizeof msg, "wmma::%s: pointer %p not 32-byte aligned or ldm %u not a "
                 "multiple of 16 bytes", what, p, ldm);
        emu_die(msg);
    }
}

/* A fiber's life: run the kernel for the current block, park, and run it again when the
 * scheduler re-arms it for another block or launch. */
static void fiber_exit(fiber &f)
{
    if (!f.copies.empty())
        emu_die("cp.async copies still pending at thread exit (no cp.async.wait_group for them)");
    f.state = F_DONE;
    g_done++;
    warp_state &w = g_warps[(size_t)f.warp];
    /* Exited threads no longer hold a barrier back (as on the hardware). */
    if (--g_block.live > 0 && g_block.arrived > 0 && g_block.arrived == g_block.live)
        release_block();
    if (--w.bar.live > 0 && w.bar.arrived > 0 && w.bar.arrived == w.bar.live)
        release_warp(f.warp);
    yield(f);
}

static void fiber_main(void)
{
    EMU_SWITCH_DONE(nullptr, &g_sched_bottom, &g_sched_size);
    for (;;) {
        fiber &f = *g_fibers[(size_t)g_cur];
        g_body(g_arg);
        fiber_exit(f);
    }
}

static fiber *fiber_new(void)
{
    fiber *f = new fiber();
    size_t page = 4096;
    void *m = mmap(nullptr, EMU_STACK_BYTES + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED || mprotect(m, page, PROT_NONE) != 0) {
        perror("cuda emulation: fiber stack");
        abort();
    }
    f->stack = (char *)m + page;
    return f;
}

static void resume(int i)
{
    fiber &f = *g_fibers[(size_t)i];
    g_cur = i;
    threadIdx = f.tid;
#ifdef EMU_FAST_SWITCH
    if (!f.started) {
        /* A stack whose emu_swap "returns" into fiber_main as if called (16-byte aligned
         * before the call, so 8 mod 16 at entry); fiber_main never returns. */
        f.started = true;
        uintptr_t *sp = (uintptr_t *)(void *)(f.stack + EMU_STACK_BYTES);
        *--sp = 0;                        /* fiber_main's return address: none */
        *--sp = (uintptr_t)&fiber_main;   /* where emu_swap's ret goes */
        for (int r = 0; r < 6; r++)
            *--sp = 0;                    /* rbp, rbx, r12-r15 */
        f.sp = sp;
    }
    EMU_SWITCH_START(&g_sched_fake, f.stack, EMU_STACK_BYTES);
    emu_swap(&g_sched_sp, f.sp);
    EMU_SWITCH_DONE(g_sched_fake, nullptr, nullptr);
#else
    if (!_setjmp(g_sched)) {
        EMU_SWITCH_START(&g_sched_fake, f.stack, EMU_STACK_BYTES);
        if (f.started)
            _longjmp(f.jb, 1);
        f.started = true;
        if (getcontext(&f.uc) != 0)
            abort();
        f.uc.uc_stack.ss_sp = f.stack;
        f.uc.uc_stack.ss_size = EMU_STACK_BYTES;
        f.uc.uc_link = nullptr;
        makecontext(&f.uc, fiber_main, 0);
        setcontext(&f.uc);
        abort(); /* not reached */
    }
    EMU_SWITCH_DONE(g_sched_fake, nullptr, nullptr);
#endif
    g_cur = -1;
}

[[noreturn]] static void deadlock(void)
{
    fprintf(stderr, "cuda emulation: deadlock in block (%u,%u,%u): no thread can run; "
            "a barrier is reached by only part of the block or warp\n",
            blockIdx.x, blockIdx.y, blockIdx.z);
    for (size_t w = 0; w < g_warps.size(); w++) {
        int at_block = 0, at_warp = 0, done = 0;
        for (int l = 0; l < g_warps[w].size; l++) {
            fiber *f = g_fibers[w * 32 + (size_t)l];
            at_block += f->state == F_BLOCKED && f->wait == W_BLOCK;
            at_warp += f->state == F_BLOCKED && f->wait == W_WARP;
            done += f->state == F_DONE;
        }
        fprintf(stderr, "  warp %zu: %d at __syncthreads, %d at a warp barrier, %d exited\n", w,
                at_block, at_warp, done);
    }
    abort();
}

/* One block. reverse: threads (and warps) in decreasing order. serial: each scheduling round
 * resumes only the ready threads of the first warp that has any, so a warp runs on through its
 * warp barriers (its lanes still meet at each) to its next __syncthreads or its end before the
 * next warp starts; otherwise a round resumes every ready thread, which keeps the warps in
 * step between warp barriers. A race between warps that the barrier-to-barrier order hides
 * (a warp's writes, or its cp.async issues, into a buffer another warp has yet to read,
 * separated from the reads by a shuffle or an ldmatrix instead of a __syncthreads) shows in
 * the serial order. */
static void run_block(bool reverse, bool serial)
{
    /* Poison the block's shared memory. */
    unsigned char *s0 = __start_emu_shared, *s1 = __stop_emu_shared;
    if (s0 && s1 > s0)
        memset(s0, 0xff, (size_t)(s1 - s0));
    if (g_dyn_bytes)
        memset(g_dyn_smem, 0xff, g_dyn_bytes);
    g_block.arrived = 0;
    g_block.live = g_nthreads;
    g_done = 0;
    for (size_t w = 0; w < g_warps.size(); w++) {
        warp_state &ws = g_warps[w];
        ws.size = g_nthreads - (int)w * 32 < 32 ? g_nthreads - (int)w * 32 : 32;
        ws.bar.arrived = 0;
        ws.bar.live = ws.size;
        memset(ws.seq, 0, sizeof ws.seq);
    }
    for (int i = 0; i < g_nthreads; i++) {
        fiber &f = *g_fibers[(size_t)i];
        f.state = F_READY;
        f.wait = W_NONE;
        f.exchanges = 0;
        f.copies.clear();
        f.groups = 0;
    }
    while (g_done < g_nthreads) {
        int warp = -1; /* the warp of the first thread resumed this round, -1 before it */
        for (int k = 0; k < g_nthreads; k++) {
            int i = reverse ? g_nthreads - 1 - k : k;
            const fiber *f = g_fibers[(size_t)i];
            if (serial && warp >= 0 && f->warp != warp)
                break; /* a warp's threads are consecutive in either order */
            if (f->state != F_READY)
                continue;
            warp = f->warp;
            resume(i);
        }
        if (warp < 0)
            deadlock();
    }
}

/* The hardware's launch checks; false (and the error cudaGetLastError reports) when one fails. */
static bool launch_ok(const emu_cfg &c, const void *kernel)
{
    const char *why = nullptr;
    unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
    auto it = g_optin.find(kernel);
    size_t smem_max = it != g_optin.end() && (size_t)it->second > emu_props()->sharedMemPerBlock
                          ? (size_t)it->second
                          : emu_props()->sharedMemPerBlock;
    if (threads == 0 || threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
        why = "block size";
    else if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 0x7fffffffu ||
             c.grid.y > 65535 || c.grid.z > 65535)
        why = "grid size";
    else if (c.smem > smem_max)
        why = "dynamic shared memory above the limit (or not opted in with cudaFuncSetAttribute)";
    if (!why)
        return true;
    fprintf(stderr, "cuda emulation: launch rejected: %s (grid %u,%u,%u block %u,%u,%u, %zu bytes "
            "of dynamic shared memory, %zu allowed)\n", why, c.grid.x, c.grid.y, c.grid.z,
            c.block.x, c.block.y, c.block.z, c.smem, smem_max);
    g_last_error = cudaErrorInvalidConfiguration;
    return false;
}

void emu_run_grid(const emu_cfg &cfg, const void *kernel, void (*body)(void *), void *arg)
{
    if (g_cur >= 0)
        emu_die("a kernel launched from a kernel is not emulated");
    if (!launch_ok(cfg, kernel))
        return;
    gridDim = cfg.grid;
    blockDim = cfg.block;
    g_nthreads = (int)(cfg.block.x * cfg.block.y * cfg.block.z);
    while (g_fibers.size() < (size_t)g_nthreads)
        g_fibers.push_back(fiber_new());
    g_warps.assign((size_t)(g_nthreads + 31) / 32, warp_state());
    for (int i = 0; i < g_nthreads; i++) {
        fiber &f = *g_fibers[(size_t)i];
        f.lane = i & 31;
        f.warp = i >> 5;
        f.tid.x = (unsigned)i % cfg.block.x;
        f.tid.y = (unsigned)i / cfg.block.x % cfg.block.y;
        f.tid.z = (unsigned)i / (cfg.block.x * cfg.block.y);
    }
    /* Exactly the launch's dynamic shared memory (ASan sees overruns), 256-byte aligned. */
    free(g_dyn_smem);
    void *dyn = nullptr;
    if (posix_memalign(&dyn, 256, cfg.smem ? cfg.smem : 1) != 0)
        abort();
    g_dyn_smem = (unsigned char *)dyn;
    g_dyn_bytes = cfg.smem;
    g_body = body;
    g_arg = arg;
    unsigned long long n = 0;
    for (unsigned z = 0; z < cfg.grid.z; z++)
        for (unsigned y = 0; y < cfg.grid.y; y++)
            for (unsigned x = 0; x < cfg.grid.x; x++, n++) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                /* Blocks 0-3 of every 4: forward, reverse serial, forward serial, reverse
                 * (each pair of order and scheduling, and a serial block in a grid of 2). */
                run_block(n & 1, ((n + 1) & 2) != 0);
            }
    threadIdx = uint3{0, 0, 0};
}
