/* tests/cuda_emu/cuda_emu.h — a CPU execution model for the subset of CUDA that the plugin's
 * kernel files (kernels/cuda/k_*.cu) use, so that g++ can compile those files unchanged and
 * tests/cuda_emu/test_cuda_emu.cpp can run the real kernels against kernels/cpu on a machine
 * without a GPU. docs/cuda.md ("Kernel logic without a GPU") says what this proves and what it
 * does not.
 *
 * Execution model (emu.cpp implements it):
 *  - A launch runs at once, on the calling thread; its blocks run one after another.
 *  - The threads of a block are cooperative fibers (one stack each, switched with
 *    _setjmp/_longjmp): a thread runs until it reaches a barrier or exits. __syncthreads is a
 *    block barrier, __syncwarp, the shuffles, __ballot_sync and the WMMA calls are barriers of
 *    the warp (32 consecutive linear thread ids), so a warp's lanes exchange values in lockstep.
 *    Exited threads count as arrived (as on the hardware). When no thread can run but some have
 *    not exited, the launch reports a deadlock (a barrier in divergent code) and aborts.
 *    Fibers rather than OS threads: a barrier costs two user-space jumps instead of a trip
 *    through the kernel scheduler, and the interleaving is deterministic. Threads of even
 *    blocks run in increasing thread order, those of odd blocks in decreasing order, and the
 *    last thread to reach a barrier waits for its turn like the others, so a read of shared or
 *    global memory that lacks its barrier sees the stale value in at least one of the two
 *    directions (when the stale value differs enough to matter: this is not a race detector).
 *    Blocks 1 and 2 of every 4 are also warp-serial: the scheduler resumes one warp's lanes at
 *    a time, so a warp runs ahead to its next __syncthreads while the others wait where they
 *    are; elsewhere all warps advance together between warp barriers, which would hide a warp
 *    that overwrites (say with cp.async) a buffer that another warp has yet to read.
 *  - Shared memory: `__shared__` variables are function statics placed in one linker section
 *    (emu_shared); dynamic `extern __shared__` arrays are rewritten by cu2cpp.pl into a pointer
 *    to a per-launch buffer. Both are filled with 0xff bytes (NaN floats, -1 integers) before
 *    every block, so a read of shared memory that no thread of the block wrote shows up.
 *  - Device memory is host memory; copies are memcpy after checking that each pointer is on the
 *    side the copy's kind says; streams only have to exist and events record wall time (every
 *    launch has finished when it returns). cudaMalloc records its allocations and enforces the
 *    device's memory size (cudaFree of anything else is cudaErrorInvalidValue;
 *    emu_device_span asks whether a range is inside one).
 *  - A launch checks the limits the hardware checks (at most 1024 threads per block, grid y and
 *    z <= 65535, more than 48 KiB of dynamic shared memory only after cudaFuncSetAttribute
 *    opted in, at most the device's opt-in limit); a bad launch sets the error that
 *    cudaGetLastError returns, as on a GPU.
 *  - The emulated device is an sm_80 part with 2 SMs (cuda_props()), so the kernels' grid-stride
 *    loops take several strides at test sizes.
 *  - WMMA (nvcuda::wmma, bf16 16×16×16 with fp32 accumulators): fragments are per-lane arrays;
 *    each lane owns 8 accumulator elements (row lane/2, columns 8·(lane%2)..+7), computes only
 *    those in mma_sync (fp32, sequential k) and stores only those, so a missing __syncwarp
 *    between a store and other lanes' reads is visible.
 * Launch syntax: kernel<<<grid, block, smem, stream>>>(args) is not C++; tests/cuda_emu/cu2cpp.pl
 * rewrites it into emu_launch(emu_cfg(grid, block, smem, stream), kernel, args) in a build copy
 * of each .cu file. */
#ifndef SW_CUDA_EMU_H
#define SW_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

/* ---------------------------------------------------------------- qualifiers */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
/* Static shared memory: one copy (blocks run one at a time), in a section emu.cpp poisons before
 * every block. */
#define __shared__ static __attribute__((section("emu_shared")))

/* ---------------------------------------------------------------- vector types, indices */

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float2 make_float2(float x, float y)
{
    return float2{x, y};
}
static inline float4 make_float4(float x, float y, float z, float w)
{
    return float4{x, y, z, w};
}

/* The running fiber's indices (set by the scheduler before it resumes a fiber). */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

/* ---------------------------------------------------------------- runtime API (host) */

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};
enum cudaMemoryType {
    cudaMemoryTypeUnregistered = 0,
    cudaMemoryTypeHost = 1,
    cudaMemoryTypeDevice = 2,
    cudaMemoryTypeManaged = 3,
};
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int warpSize;
    int maxThreadsPerBlock;
    int multiProcessorCount;
    int major, minor;
};
struct cudaPointerAttributes {
    cudaMemoryType type;
    int device;
    void *devicePointer;
    void *hostPointer;
};
/* The version both the emulated driver and runtime report (cudaDriverGetVersion,
 * cudaRuntimeGetVersion): 1000 x major + 10 x minor, as CUDA encodes it. */
#define CUDART_VERSION 12080

/* The emulated devices (emu.cpp): SCALEWISE_EMU_CUDA_DEVICES of them (default 1; 0 makes
 * cudaGetDeviceCount fail with cudaErrorNoDevice, as on a machine without a GPU), each an sm_80
 * part with 2 SMs and SCALEWISE_EMU_CUDA_MEM_BYTES of memory (default 16 GiB), which cudaMalloc
 * enforces and cudaMemGetInfo reports. Every failing runtime call also becomes the error
 * cudaGetLastError returns, as in the CUDA runtime. */
const cudaDeviceProp *emu_device_props(void);

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes)
{
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
/* Page-locked host memory: host memory here (the copies take it as a host side), tracked so
 * that cudaFreeHost of anything else is cudaErrorInvalidValue, as cudaFree's. */
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
/* True when [p, p + bytes) lies inside one live cudaMalloc allocation (the cuBLASLt fake checks
 * its operands with it: on a GPU an access outside is an illegal address or a silent read of a
 * neighbour). */
bool emu_device_span(const void *p, size_t bytes);
/* Device memory is host memory, so the copies check what the hardware would make of their
 * pointers: each side of a copy must be what its kind says (inside one cudaMalloc allocation
 * for a device side, outside every one for a host side; cudaMemcpyDefault takes either), and a
 * memset's range must be device memory. Anything else is cudaErrorInvalidValue with the reason
 * on stderr (the CUDA documentation calls a kind that does not match the pointers undefined;
 * on a GPU it is a fault or silently wrong data). */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *p);
/* Streams: work runs when it is issued, so a stream only has to exist (a destroyed or unknown
 * one is cudaErrorInvalidResourceHandle) and is always complete. */
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
template <typename T>
static inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t bytes,
                                             size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyHostToDevice)
{
    (void)kind;
    if (offset + bytes > sizeof(T))
        return cudaErrorInvalidValue;
    memcpy(reinterpret_cast<char *>(&symbol) + offset, src, bytes);
    return cudaSuccess;
}
/* Records the kernel's opt-in dynamic shared memory (checked at launch). */
cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value);
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F *kernel, cudaFuncAttribute attr, int value)
{
    return emu_func_set_attribute(reinterpret_cast<const void *>(kernel), attr, value);
}

/* ---------------------------------------------------------------- barriers, warp exchange */

void __syncthreads(void);
void emu_syncwarp(unsigned mask);
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    emu_syncwarp(mask);
}

enum emu_shfl_kind { EMU_SHFL_IDX, EMU_SHFL_XOR, EMU_SHFL_UP, EMU_SHFL_DOWN };
/* Every lane deposits `bits`, the warp meets, each lane gets the bits of its source lane. */
uint64_t emu_shfl(unsigned mask, uint64_t bits, emu_shfl_kind kind, int arg, int width);
/* Every lane deposits pred != 0; returns the mask of lanes that did. */
unsigned __ballot_sync(unsigned mask, int pred);
static inline int __any_sync(unsigned mask, int pred)
{
    return __ballot_sync(mask, pred) != 0;
}
static inline int __all_sync(unsigned mask, int pred)
{
    return __ballot_sync(mask, !pred) == 0;
}

template <typename T> static inline T emu_shfl_t(unsigned mask, T v, emu_shfl_kind k, int a, int w)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of <= 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl(mask, b, k, a, w);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    return emu_shfl_t(mask, v, EMU_SHFL_IDX, src, width);
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    return emu_shfl_t(mask, v, EMU_SHFL_XOR, lane_mask, width);
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return emu_shfl_t(mask, v, EMU_SHFL_UP, (int)delta, width);
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return emu_shfl_t(mask, v, EMU_SHFL_DOWN, (int)delta, width);
}

/* Atomics: fibers never interleave inside a function call, so a plain read-modify-write is
 * atomic here. */
template <typename T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T *p, T v)
{
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> static inline T atomicExch(T *p, T v)
{
    T old = *p;
    *p = v;
    return old;
}

/* ---------------------------------------------------------------- math intrinsics */

static inline float rsqrtf(float x)
{
    return 1.0f / sqrtf(x);
}
/* __expf and __logf: glibc declares both (as expf and logf). */
static inline float __fdividef(float a, float b)
{
    return a / b;
}
/* Round-to-nearest operations that the compiler must not contract into an FMA (the kernel files
 * are compiled with -ffp-contract=off, so a plain operation is exactly one rounding). */
static inline float __fmul_rn(float a, float b)
{
    return a * b;
}
static inline float __fadd_rn(float a, float b)
{
    return a + b;
}
static inline float __fsub_rn(float a, float b)
{
    return a - b;
}
static inline float __fmaf_rn(float a, float b, float c)
{
    return fmaf(a, b, c);
}
static inline unsigned __float_as_uint(float x)
{
    unsigned u;
    memcpy(&u, &x, 4);
    return u;
}
static inline float __uint_as_float(unsigned u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}
static inline int __float_as_int(float x)
{
    int i;
    memcpy(&i, &x, 4);
    return i;
}
static inline float __int_as_float(int i)
{
    float x;
    memcpy(&x, &i, 4);
    return x;
}
static inline int __ffs(int x)
{
    return __builtin_ffs(x);
}
static inline int __popc(unsigned x)
{
    return __builtin_popcount(x);
}

/* ---------------------------------------------------------------- bf16 */

struct __nv_bfloat16 {
    unsigned short __x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
/* Round to nearest even, NaN kept quiet (kernels/cpu/quant.c's recipe; the hardware converts
 * the same way except for the NaN payload). */
static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u = __float_as_uint(f);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        b.__x = (unsigned short)((u >> 16) | 0x40u);
    else
        b.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return b;
}
static inline __nv_bfloat16 __float2bfloat16(float f)
{
    return __float2bfloat16_rn(f);
}
static inline float __bfloat162float(__nv_bfloat16 b)
{
    return __uint_as_float((uint32_t)b.__x << 16);
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b)
{
    __nv_bfloat162 r;
    r.x = __float2bfloat16_rn(a);
    r.y = __float2bfloat16_rn(b);
    return r;
}

/* ---------------------------------------------------------------- fp16 */

struct __half {
    unsigned short __x;
};
/* Round to nearest even by a route independent of kernels/cpu/quant.c's integer recipe (the
 * CPU reference the tests compare with): the significand scaled to 11 bits in double and
 * rounded by nearbyint (ties to even in the default rounding mode); a carry out of the 11 bits
 * bumps the exponent, and past exponent 30 the result is infinity (so |x| >= 65520 overflows).
 * Below 2^-14 the value is a multiple of 2^-24 (subnormal; 2^-14 itself comes out as the
 * smallest normal). NaN becomes the canonical 0x7fff, as the hardware's cvt.rn.f16.f32 does:
 * sign and payload are lost, so a kernel that wants the CPU's NaN bits must handle NaN itself. */
static inline __half __float2half_rn(float f)
{
    __half h;
    unsigned short sign = (unsigned short)((__float_as_uint(f) >> 16) & 0x8000u);
    double a = fabs((double)f);
    if (a != a) {
        h.__x = 0x7fffu;
        return h;
    }
    unsigned bits;
    if (a < 0x1p-14) {
        bits = (unsigned)nearbyint(a * 0x1p24);
    } else if (a > 0x1p17) {
        bits = 0x7c00u;
    } else {
        int e;
        double m = frexp(a, &e); /* a = m·2^e, m in [0.5, 1) */
        bits = (unsigned)((e + 14) << 10) + ((unsigned)nearbyint(m * 2048.0) - 1024u);
        if (bits > 0x7c00u)
            bits = 0x7c00u;
    }
    h.__x = (unsigned short)(sign | bits);
    return h;
}
static inline __half __float2half(float f)
{
    return __float2half_rn(f);
}
/* Exact; NaN becomes the canonical quiet NaN (0x7fffffff), payload and sign lost. */
static inline float __half2float(__half h)
{
    unsigned e = (h.__x >> 10) & 0x1fu, m = h.__x & 0x3ffu;
    float v;
    if (e == 31 && m != 0)
        return __uint_as_float(0x7fffffffu);
    if (e == 31)
        v = INFINITY;
    else if (e == 0)
        v = ldexpf((float)m, -24);
    else
        v = ldexpf((float)(m | 0x400u), (int)e - 25);
    return (h.__x & 0x8000u) ? -v : v;
}
static inline unsigned short __half_as_ushort(__half h)
{
    return h.__x;
}
static inline __half __ushort_as_half(unsigned short u)
{
    __half h;
    h.__x = u;
    return h;
}

/* ---------------------------------------------------------------- WMMA */

/* The running fiber's lane; aborts unless p is 32-byte aligned and ldm a multiple of 16 bytes
 * (the WMMA requirements). */
int emu_lane(void);
void emu_wmma_check(const void *p, unsigned ldm, size_t elem_bytes, const char *what);

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/* Logical (row, col) elements: A is m×k, B k×n, C m×n. A lane fills only what its 8
 * accumulator elements need: row lane/2 of A, columns 8·(lane%2)..+7 of B and C. */
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "only 16x16x16 fragments are emulated");
    float v[16][16];
};

template <typename Use, typename L>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, L> &f,
                                    const __nv_bfloat16 *p, unsigned ldm)
{
    static_assert(std::is_same<Use, matrix_a>::value || std::is_same<Use, matrix_b>::value,
                  "bf16 fragments are matrix_a or matrix_b");
    __syncwarp(); /* warp-synchronous: every lane arrives */
    emu_wmma_check(p, ldm, 2, "load_matrix_sync");
    const bool rm = std::is_same<L, row_major>::value;
    int lane = emu_lane();
    if (std::is_same<Use, matrix_a>::value) {
        int i = lane >> 1;
        for (int k = 0; k < 16; k++)
            f.v[i][k] = __bfloat162float(rm ? p[i * ldm + k] : p[k * ldm + i]);
    } else {
        int j0 = (lane & 1) * 8;
        for (int k = 0; k < 16; k++)
            for (int j = j0; j < j0 + 8; j++)
                f.v[k][j] = __bfloat162float(rm ? p[k * ldm + j] : p[j * ldm + k]);
    }
}

template <typename T>
static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, T, void> &f, const float *p,
                                    unsigned ldm, layout_t layout)
{
    __syncwarp();
    emu_wmma_check(p, ldm, 4, "load_matrix_sync");
    int lane = emu_lane(), i = lane >> 1, j0 = (lane & 1) * 8;
    for (int j = j0; j < j0 + 8; j++)
        f.v[i][j] = layout == mem_row_major ? p[i * ldm + j] : p[j * ldm + i];
}

template <typename T>
static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, T, void> &f,
                                     unsigned ldm, layout_t layout)
{
    __syncwarp();
    emu_wmma_check(p, ldm, 4, "store_matrix_sync");
    int lane = emu_lane(), i = lane >> 1, j0 = (lane & 1) * 8;
    for (int j = j0; j < j0 + 8; j++) {
        if (layout == mem_row_major)
            p[i * ldm + j] = f.v[i][j];
        else
            p[j * ldm + i] = f.v[i][j];
    }
}

template <typename Use, typename T, typename L>
static inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, float x)
{
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            f.v[i][j] = x;
}

/* d = a·b + c on this lane's 8 elements, fp32 products summed in k order. */
template <typename T, typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, T, void> &d,
                            const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                            const fragment<accumulator, 16, 16, 16, T, void> &c)
{
    __syncwarp();
    int lane = emu_lane(), i = lane >> 1, j0 = (lane & 1) * 8;
    float r[8];
    for (int j = 0; j < 8; j++) {
        float s = c.v[i][j0 + j];
        for (int k = 0; k < 16; k++)
            s += a.v[i][k] * b.v[k][j0 + j];
        r[j] = s;
    }
    for (int j = 0; j < 8; j++)
        d.v[i][j0 + j] = r[j];
}
} // namespace wmma
} // namespace nvcuda

/* ---------------------------------------------------------------- cp.async and ldmatrix */

/* What the kernels' PTX helpers (kernels/cuda/k_attention_tc.cu) call where there is no PTX.
 *  - cp.async (16 bytes, global to shared): the copy is queued by the issuing thread and carried
 *    out only when its cp.async.wait_group lets it complete (a group of copies is closed by
 *    commit_group; wait_group n completes all but the n newest closed groups). The destination
 *    is filled with 0xff bytes at the issue (in flight it holds nothing defined), so a read of
 *    it before that wait, by another thread before the barrier after it, or by a warp that was
 *    still using the previous contents (a barrier missing before the issue) sees the poison.
 *    The source must be device memory and the destination shared memory, both 16-byte
 *    aligned; copies still queued when the thread exits abort the launch (the kernel forgot a
 *    wait).
 *  - ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane l names row l%8 of 8×8 matrix l/8
 *    (16-byte aligned shared memory); register m of lane l gets matrix m's elements (l/4,
 *    2·(l%4)) and (l/4, 2·(l%4)+1), or with .trans (2·(l%4), l/4) and (2·(l%4)+1, l/4), the
 *    first in the low 16 bits (PTX ISA, "Warp-level matrix load instruction: ldmatrix"). The
 *    row addresses travel between lanes through shuffles, a warp barrier as on the hardware. */
void emu_cp_async16(void *dst, const void *src);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int newest_pending);
void emu_ldmatrix_check(const void *row);

static inline void emu_ldmatrix_x4(uint32_t (&r)[4], const void *row, bool trans)
{
    emu_ldmatrix_check(row);
    const unsigned char *mine = static_cast<const unsigned char *>(row);
    int lane = emu_lane(), i = lane >> 2, j = lane & 3;
    for (int m = 0; m < 4; m++) {
        if (!trans) {
            const unsigned char *p = __shfl_sync(0xffffffffu, mine, 8 * m + i);
            memcpy(&r[m], p + 4 * j, 4);
        } else {
            const unsigned char *p0 = __shfl_sync(0xffffffffu, mine, 8 * m + 2 * j);
            const unsigned char *p1 = __shfl_sync(0xffffffffu, mine, 8 * m + 2 * j + 1);
            uint16_t lo, hi;
            memcpy(&lo, p0 + 2 * i, 2);
            memcpy(&hi, p1 + 2 * i, 2);
            r[m] = (uint32_t)lo | (uint32_t)hi << 16;
        }
    }
}

/* ---------------------------------------------------------------- launches */

/* The dynamic shared memory of the running launch (cu2cpp.pl rewrites `extern __shared__`). */
void *emu_dyn_smem(void);

struct emu_cfg {
    dim3 grid, block;
    size_t smem;
    emu_cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s)
    {
        (void)st;
    }
};

/* Runs body(arg) as every thread of every block of the grid (see the file comment). kernel
 * identifies the kernel for its cudaFuncSetAttribute opt-in. */
void emu_run_grid(const emu_cfg &cfg, const void *kernel, void (*body)(void *), void *arg);

/* kernel<<<cfg>>>(args...): the arguments are converted to the kernel's parameter types once,
 * on the host, as a launch does; every thread calls the kernel with its own copy. */
template <typename... P, typename... A>
static inline void emu_launch(const emu_cfg &cfg, void (*kernel)(P...), A &&...args)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong argument count");
    struct call {
        void (*k)(P...);
        std::tuple<P...> a;
    } c{kernel, std::tuple<P...>(std::forward<A>(args)...)};
    emu_run_grid(
        cfg, reinterpret_cast<const void *>(kernel),
        [](void *p) {
            call *cp = static_cast<call *>(p);
            std::tuple<P...> mine = cp->a;
            std::apply(cp->k, mine);
        },
        &c);
}

/* The same for a template kernel launched without template arguments (cu2cpp.pl emits this
 * for them: a launch deduces them from the arguments as a call does). The kernel's parameter
 * types are the decayed argument types, which picks the specialization. */
template <typename... A>
static inline void emu_launch_deduced(const emu_cfg &cfg,
                                      void (*kernel)(typename std::decay<A>::type...),
                                      A &&...args)
{
    emu_launch(cfg, kernel, std::forward<A>(args)...);
}

#endif
