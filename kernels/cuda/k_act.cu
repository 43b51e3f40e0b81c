/* Element-wise activations of the CUDA backend, kernels/cpu/activation.c's functions: GELU with
 * the tanh approximation (GPT-2) and SwiGLU over a fused gate|up row (Llama), forward and
 * backward (backward accumulates). Grid-stride loops, one element per thread per step; they are
 * memory-bound, so tanhf/expf cost nothing extra (GELU is written with tanhf here, as cuBLASLt's
 * epilogue computes it; the CPU uses the equal 1/(1 + e^(-2u)), faster there). Each kernel is templated on its activation
 * element types: float (the fp32 entries) or __nv_bfloat16 (the _a16 entries), widened to fp32
 * by kc_ld and rounded once by kc_st, so an _a16 result is the fp32 entry's on the widened
 * inputs, rounded where the output is bf16. Gradients are fp32 either way. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

/* The formulas are kc_gelu / kc_gelu_grad (k_common.cuh), shared with matmul.cu's epilogue
 * fallbacks. */
template <typename TO, typename TI>
__global__ void gelu_forward_kernel(TO *out, const TI *inp, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        kc_st(out + i, kc_gelu(kc_ld(inp + i)));
}

template <typename TI>
__global__ void gelu_backward_kernel(float *dinp, const TI *inp, const float *dout, size_t n)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        dinp[i] += kc_gelu_grad(kc_ld(inp + i)) * dout[i];
}

/* out(N,H) = silu(gate)·up; gate_up(N,2H) rows hold H gate values then H up values. */
template <typename TO, typename TI>
__global__ void swiglu_forward_kernel(TO *out, const TI *gate_up, size_t N, int H)
{
    size_t n = N * H;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        size_t r = i / H, j = i % H;
        const TI *g = gate_up + r * 2 * H;
        float x = kc_ld(g + j);
        kc_st(out + i, x / (1.0f + expf(-x)) * kc_ld(g + H + j));
    }
}

/* du += silu(g)·dy;  dg += u·σ(g)·(1 + g·(1 - σ(g)))·dy. */
template <typename TI>
__global__ void swiglu_backward_kernel(float *dgate_up, const float *dout, const TI *gate_up,
                                       size_t N, int H)
{
    size_t n = N * H;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        size_t r = i / H, j = i % H;
        const TI *g = gate_up + r * 2 * H;
        float *dg = dgate_up + r * 2 * H;
        float x = kc_ld(g + j), u = kc_ld(g + H + j), dy = dout[i];
        float sig = 1.0f / (1.0f + expf(-x));
        dg[H + j] += x * sig * dy;
        dg[j] += u * sig * (1.0f + x * (1.0f - sig)) * dy;
    }
}

static unsigned ew_blocks(size_t n)
{
    unsigned fill = cuda_fill_blocks(256, 8), need = cuda_blocks(n, 256);
    return need < fill ? need : fill;
}

template <typename TO, typename TI> static void gelu_forward(TO *out, const TI *inp, size_t n)
{
    if (n == 0)
        return;
    gelu_forward_kernel<TO, TI><<<ew_blocks(n), 256, 0, cuda_stream()>>>(out, inp, n);
    CUDA_LAUNCH_CHECK();
}

template <typename TI>
static void gelu_backward(float *dinp, const TI *inp, const float *dout, size_t n)
{
    if (n == 0)
        return;
    gelu_backward_kernel<TI><<<ew_blocks(n), 256, 0, cuda_stream()>>>(dinp, inp, dout, n);
    CUDA_LAUNCH_CHECK();
}

template <typename TO, typename TI>
static void swiglu_forward(TO *out, const TI *gate_up, int N, int H)
{
    if (N <= 0 || H <= 0)
        return;
    swiglu_forward_kernel<TO, TI><<<ew_blocks((size_t)N * H), 256, 0, cuda_stream()>>>(
        out, gate_up, (size_t)N, H);
    CUDA_LAUNCH_CHECK();
}

template <typename TI>
static void swiglu_backward(float *dgate_up, const float *dout, const TI *gate_up, int N, int H)
{
    if (N <= 0 || H <= 0)
        return;
    swiglu_backward_kernel<TI><<<ew_blocks((size_t)N * H), 256, 0, cuda_stream()>>>(
        dgate_up, dout, gate_up, (size_t)N, H);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API void kcuda_gelu_forward(float *out, const float *inp, size_t n)
{
    gelu_forward(out, inp, n);
}

KCUDA_API void kcuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    gelu_backward(dinp, inp, dout, n);
}

KCUDA_API void kcuda_swiglu_forward(float *out, const float *gate_up, int N, int H)
{
    swiglu_forward(out, gate_up, N, H);
}

KCUDA_API void kcuda_swiglu_backward(float *dgate_up, const float *dout, const float *gate_up,
                                     int N, int H)
{
    swiglu_backward(dgate_up, dout, gate_up, N, H);
}

KCUDA_API void kcuda_gelu_forward_a16(uint16_t *out, const uint16_t *inp, size_t n)
{
    gelu_forward(kc_bf16(out), kc_bf16(inp), n);
}

KCUDA_API void kcuda_gelu_backward_a16(float *dinp, const uint16_t *inp, const float *dout,
                                       size_t n)
{
    gelu_backward(dinp, kc_bf16(inp), dout, n);
}

KCUDA_API void kcuda_swiglu_forward_a16(uint16_t *out, const uint16_t *gate_up, int N, int H)
{
    swiglu_forward(kc_bf16(out), kc_bf16(gate_up), N, H);
}

KCUDA_API void kcuda_swiglu_backward_a16(float *dgate_up, const float *dout,
                                         const uint16_t *gate_up, int N, int H)
{
    swiglu_backward(dgate_up, dout, kc_bf16(gate_up), N, H);
}
