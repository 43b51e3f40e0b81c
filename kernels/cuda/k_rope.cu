/* Rotary position embeddings (Su et al., 2021) for the CUDA backend in HF Llama's rotate-half
 * layout, as kernels/cpu/rope.c: the tables are computed on the device in double and rounded
 * once (so they match the CPU's to the last bit in practice), and the rotation is applied in
 * place to the first n_heads heads of every (B,T,row_stride) row; backward applies the inverse
 * rotation (overwrites, like kcpu_rope_backward). One thread per rotated pair. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

__global__ void rope_tables_kernel(float *cos_tab, float *sin_tab, int maxT, int HS, double theta)
{
    int half = HS / 2;
    size_t n = (size_t)maxT * half;
    for (size_t k = kc_gtid(); k < n; k += kc_gstride()) {
        int p = (int)(k / half), i = (int)(k % half);
        double inv_freq = pow(theta, -2.0 * i / (double)HS);
        double ang = (double)p * inv_freq;
        cos_tab[k] = (float)cos(ang);
        sin_tab[k] = (float)sin(ang);
    }
}

/* sign +1: forward rotation; -1: its transpose (backward). TX: float, or __nv_bfloat16 (the _a16
 * entry: each value widened, rotated in fp32 as the fp32 entry does, rounded once). */
template <typename TX>
__global__ void rope_apply_kernel(TX *x, const float *cos_tab, const float *sin_tab, int BT,
                                  int T, int row_stride, int n_heads, int HS, int pos_offset,
                                  float sign)
{
    int half = HS / 2;
    size_t n = (size_t)BT * n_heads * half;
    for (size_t k = kc_gtid(); k < n; k += kc_gstride()) {
        int j = (int)(k % half);
        size_t rh = k / half;
        int h = (int)(rh % n_heads);
        size_t i = rh / n_heads;
        int p = pos_offset + (int)(i % T);
        float cs = cos_tab[(size_t)p * half + j], sn = sign * sin_tab[(size_t)p * half + j];
        TX *a = x + i * row_stride + (size_t)h * HS;
        float x1 = kc_ld(a + j), x2 = kc_ld(a + j + half);
        kc_st(a + j, x1 * cs - x2 * sn);
        kc_st(a + j + half, x2 * cs + x1 * sn);
    }
}

static unsigned ew_blocks(size_t n)
{
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    return need < fill ? need : fill;
}

KCUDA_API void kcuda_rope_tables(float *cos_tab, float *sin_tab, int maxT, int HS, double theta)
{
    if (maxT <= 0 || HS < 2)
        return;
    rope_tables_kernel<<<ew_blocks((size_t)maxT * (HS / 2)), 256, 0, cuda_stream()>>>(
        cos_tab, sin_tab, maxT, HS, theta);
    CUDA_LAUNCH_CHECK();
}

template <typename TX>
static void rope_apply(TX *x, const float *cos_tab, const float *sin_tab, int B, int T,
                       int row_stride, int n_heads, int HS, int pos_offset, float sign)
{
    int BT = B * T;
    if (BT <= 0 || n_heads <= 0 || HS < 2)
        return;
    rope_apply_kernel<TX><<<ew_blocks((size_t)BT * n_heads * (HS / 2)), 256, 0, cuda_stream()>>>(
        x, cos_tab, sin_tab, BT, T, row_stride, n_heads, HS, pos_offset, sign);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int B,
                                  int T, int row_stride, int n_heads, int HS, int maxT,
                                  int pos_offset)
{
    (void)maxT; /* the caller's contract pos_offset + T <= maxT, as on the CPU */
    rope_apply(x, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, pos_offset, 1.0f);
}

KCUDA_API void kcuda_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int B,
                                   int T, int row_stride, int n_heads, int HS, int maxT,
                                   int pos_offset)
{
    (void)maxT;
    rope_apply(dx, cos_tab, sin_tab, B, T, row_stride, n_heads, HS, pos_offset, -1.0f);
}

KCUDA_API void kcuda_rope_forward_a16(uint16_t *x, const float *cos_tab, const float *sin_tab,
                                      int B, int T, int row_stride, int n_heads, int HS, int maxT,
                                      int pos_offset)
{
    (void)maxT;
    rope_apply(kc_bf16(x), cos_tab, sin_tab, B, T, row_stride, n_heads, HS, pos_offset, 1.0f);
}
