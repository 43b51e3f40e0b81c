/* Token and learned-position embeddings (forward and deterministic backward), the residual add
 * and the strided copy/axpy helpers of the CUDA backend, mirroring kernels/cpu/embed.c and
 * backend_cpu.c's copy_2d/axpy_2d.
 *
 * Embedding backward without atomics and without sorting: a warp owns a slice of 32 channels
 * and one "bucket" of the vocabulary (token id modulo the bucket count); it walks every token in
 * order and adds only the rows of its bucket. Every element of dwte therefore has exactly one
 * writer, which adds its contributions in token order: the result is deterministic and
 * bit-identical to kcpu_embedding_backward (the same sequence of fp32 additions). Buckets
 * multiply the parallelism of channel slices alone (C/32 warps) without atomics; the price is
 * that each warp reads the (small) token array once per bucket. An out-of-range token id is a
 * caller bug the CPU asserts on; here the forward writes NaN into its row (so the loss shows it)
 * and the backward skips it. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define EMB_THREADS 256
#define EMB_WARPS (EMB_THREADS / 32)

__global__ void embedding_forward_kernel(float *out, const int *tokens, const float *wte,
                                         const float *wpe, int BT, int T, int C, int V,
                                         int pos_offset)
{
    for (int i = blockIdx.x; i < BT; i += gridDim.x) {
        int tok = tokens[i];
        bool ok = tok >= 0 && tok < V;
        float *o = out + (size_t)i * C;
        const float *e = wte + (size_t)(ok ? tok : 0) * C;
        const float *p = wpe ? wpe + (size_t)(pos_offset + i % T) * C : nullptr;
        for (int c = threadIdx.x; c < C; c += blockDim.x)
            o[c] = ok ? e[c] + (p ? p[c] : 0.0f) : NAN;
    }
}

/* grid (channel groups of EMB_WARPS·32, buckets); see the file comment. */
__global__ void embedding_backward_wte_kernel(float *dwte, const float *dout, const int *tokens,
                                              int BT, int C, int V, int nbucket)
{
    __shared__ int stok[EMB_THREADS];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int c = (blockIdx.x * EMB_WARPS + warp) * 32 + lane;
    int bucket = blockIdx.y;
    for (int i0 = 0; i0 < BT; i0 += EMB_THREADS) {
        int n = BT - i0 < EMB_THREADS ? BT - i0 : EMB_THREADS;
        __syncthreads();
        if ((int)threadIdx.x < n)
            stok[threadIdx.x] = tokens[i0 + threadIdx.x];
        __syncthreads();
        for (int k0 = 0; k0 < n; k0 += 32) {
            int k = k0 + lane;
            int tok = k < n ? stok[k] : -1;
            bool mine = tok >= 0 && tok < V && tok % nbucket == bucket;
            unsigned mask = __ballot_sync(KC_FULL_MASK, mine);
            while (mask) { /* matches in increasing token order */
                int src = __ffs(mask) - 1;
                mask &= mask - 1;
                int t = __shfl_sync(KC_FULL_MASK, tok, src);
                if (c < C)
                    dwte[(size_t)t * C + c] += dout[(size_t)(i0 + k0 + src) * C + c];
            }
        }
    }
}

/* One thread per (t, c): dwpe[pos_offset + t, c] += dout[b, t, c] for b = 0..B-1 in order. */
__global__ void embedding_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C,
                                              int pos_offset)
{
    size_t TC = (size_t)T * C;
    for (size_t i = kc_gtid(); i < TC; i += kc_gstride()) {
        size_t t = i / C, c = i % C;
        float *d = dwpe + ((size_t)pos_offset + t) * C + c;
        float acc = *d;
        for (int b = 0; b < B; b++)
            acc += dout[(size_t)b * TC + i];
        *d = acc;
    }
}

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        out[i] = a[i] + b[i];
}

__global__ void residual_forward4_kernel(float4 *out, const float4 *a, const float4 *b, size_t n4)
{
    for (size_t i = kc_gtid(); i < n4; i += kc_gstride()) {
        float4 x = a[i], y = b[i];
        out[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
    }
}

/* da += dout; db += dout (either may be NULL). */
__global__ void residual_backward_kernel(float *da, float *db, const float *dout, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        float g = dout[i];
        if (da)
            da[i] += g;
        if (db)
            db[i] += g;
    }
}

/* dst[r, c] (=|+=) alpha · src[r, c]; one thread per element of a rows × cols view. */
template <bool ACCUMULATE>
__global__ void strided_kernel(float *dst, int ld_dst, const float *src, int ld_src, int rows,
                               int cols, float alpha)
{
    size_t n = (size_t)rows * cols;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        size_t r = i / cols, c = i % cols;
        float v = alpha * src[r * ld_src + c];
        if (ACCUMULATE)
            dst[r * ld_dst + c] += v;
        else
            dst[r * ld_dst + c] = v;
    }
}

static unsigned ew_blocks(size_t n)
{
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    return need < fill ? need : fill;
}

KCUDA_API void kcuda_embedding_forward(float *out, const int *tokens, const float *wte,
                                       const float *wpe, int B, int T, int C, int V, int maxT,
                                       int pos_offset)
{
    (void)maxT; /* the caller's contract pos_offset + T <= maxT, as on the CPU */
    int BT = B * T;
    if (BT <= 0 || C <= 0)
        return;
    unsigned threads = C >= 256 ? 256 : (unsigned)((C + 31) / 32 * 32);
    unsigned blocks = BT < 65535 ? (unsigned)BT : 65535u;
    embedding_forward_kernel<<<blocks, threads, 0, cuda_stream()>>>(out, tokens, wte, wpe, BT, T,
                                                                     C, V, pos_offset);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_embedding_backward(float *dwte, float *dwpe, const float *dout,
                                        const int *tokens, int B, int T, int C, int V, int maxT,
                                        int pos_offset)
{
    (void)maxT;
    int BT = B * T;
    if (BT <= 0 || C <= 0)
        return;
    cudaStream_t s = cuda_stream();
    unsigned groups = (unsigned)((C + EMB_THREADS - 1) / EMB_THREADS);
    /* About 8 blocks per SM in total, and never more buckets than vocabulary rows. */
    unsigned want = cuda_fill_blocks(EMB_THREADS, 8);
    unsigned nbucket = want / groups > 1 ? want / groups : 1;
    if (nbucket > (unsigned)V)
        nbucket = (unsigned)V;
    if (nbucket > 65535u)
        nbucket = 65535u;
    embedding_backward_wte_kernel<<<dim3(groups, nbucket), EMB_THREADS, 0, s>>>(
        dwte, dout, tokens, BT, C, V, (int)nbucket);
    CUDA_LAUNCH_CHECK();
    if (dwpe) {
        embedding_backward_wpe_kernel<<<ew_blocks((size_t)T * C), 256, 0, s>>>(dwpe, dout, B, T,
                                                                                C, pos_offset);
        CUDA_LAUNCH_CHECK();
    }
}

KCUDA_API void kcuda_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    if (n == 0)
        return;
    cudaStream_t s = cuda_stream();
    if (n % 4 == 0 && kc_aligned16(out, a, b)) {
        residual_forward4_kernel<<<ew_blocks(n / 4), 256, 0, s>>>(
            (float4 *)out, (const float4 *)a, (const float4 *)b, n / 4);
    } else {
        residual_forward_kernel<<<ew_blocks(n), 256, 0, s>>>(out, a, b, n);
    }
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    if (n == 0 || (!da && !db))
        return;
    residual_backward_kernel<<<ew_blocks(n), 256, 0, cuda_stream()>>>(da, db, dout, n);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_copy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows,
                             int cols, float alpha)
{
    if (rows <= 0 || cols <= 0)
        return;
    strided_kernel<false><<<ew_blocks((size_t)rows * cols), 256, 0, cuda_stream()>>>(
        dst, ld_dst, src, ld_src, rows, cols, alpha);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_axpy_2d(float *dst, int ld_dst, const float *src, int ld_src, int rows,
                             int cols, float alpha)
{
    if (rows <= 0 || cols <= 0)
        return;
    strided_kernel<true><<<ew_blocks((size_t)rows * cols), 256, 0, cuda_stream()>>>(
        dst, ld_dst, src, ld_src, rows, cols, alpha);
    CUDA_LAUNCH_CHECK();
}
