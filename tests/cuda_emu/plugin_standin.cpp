/* Stand-ins for the few kernels/cuda/plugin.cu functions that the kernel files and matmul.cu
 * call (cuda_stream, cuda_props, cuda_reduce_buf, cuda_fill_blocks, and cuda_alloc / cuda_free
 * without plugin.cu's per-category accounting), so build/tests/test_cuda_emu links the kernels
 * without plugin.cu; the error helpers are the real ones (kernels/cuda/cuda_err.cu). The
 * emulated plugin (build/cuda_emu/libscalewise-cuda-emu.so) links the real plugin.cu instead of
 * this file. */
#include "cuda_emu.h"

#include "kernels/cuda/cuda_int.cuh"

/* ---------------------------------------------------------------- plugin.cu's helpers */

cudaStream_t cuda_stream(void)
{
    return nullptr;
}

const cudaDeviceProp *cuda_props(void)
{
    return emu_device_props();
}

float *cuda_reduce_buf(void)
{
    static float *buf;
    if (!buf && cudaMalloc(&buf, CUDA_REDUCE_FLOATS * sizeof(float)) != cudaSuccess)
        abort();
    return buf;
}

/* cudaMalloc (256-byte aligned host memory, exactly the bytes asked for, so ASan sees overruns);
 * the category is checked, not counted. */
void *cuda_alloc(size_t bytes, enum backend_mem cat, struct sw_err *err)
{
    if ((int)cat < 0 || (int)cat >= BACKEND_MEM_COUNT) {
        cuda_set_err(err, SW_EINVAL, "cuda_alloc: memory category %d out of range", (int)cat);
        return nullptr;
    }
    void *p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cuda_set_err(err, SW_ENOMEM, "cannot allocate %zu bytes (CUDA emulation)", bytes);
        return nullptr;
    }
    return p;
}

void cuda_free(void *p)
{
    cudaFree(p);
}

unsigned cuda_fill_blocks(unsigned threads, unsigned per_sm)
{
    (void)threads;
    return (unsigned)emu_device_props()->multiProcessorCount * (per_sm ? per_sm : 1);
}
