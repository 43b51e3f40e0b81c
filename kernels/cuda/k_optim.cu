/* Optimizer updates and gradient utilities of the CUDA backend, with kernels/cpu/optim.c's
 * formulas (torch.optim.AdamW, SGD ± momentum, Lion, HF Adafactor): each element-wise update is
 * one functor applied either over one flat buffer (the backend entry: one launch) or over every
 * segment of a parameter region in ONE launch (the *_multi entries, grid (chunks, segments),
 * each segment with its own weight decay). Adafactor (one matrix per backend call) runs its row
 * and column reductions, then the per-matrix statistics (mean of the row state, RMS of the
 * update), then the update. The global gradient norm is a two-pass block reduction in double
 * with a grid fixed by n alone (not by the device), so it is deterministic and the same on
 * every GPU; clipping scales on the device after the norm came back. Partial sums live in the
 * plugin's reduction buffer (cuda_reduce_buf). 8-bit AdamW is in k_adam8bit.cu. */
#include "kernels/cuda/cuda_int.cuh"
#include "kernels/cuda/k_common.cuh"

#define OPT_THREADS 256
#define NORM_BLOCKS 1024 /* grid of the norm's first pass, fixed: see the file comment */

/* ---------------------------------------------------------------- element-wise functors */

struct adamw_op {
    float *param, *m, *v;
    const float *grad;
    float lr, beta1, beta2, eps, bc1, bc2;
    __device__ void operator()(size_t i, float wd) const
    {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] = param[i] * (1.0f - lr * wd) - lr * mhat / (sqrtf(vhat) + eps);
    }
};

struct sgd_op {
    float *param;
    const float *grad;
    float lr;
    __device__ void operator()(size_t i, float wd) const
    {
        param[i] -= lr * (grad[i] + wd * param[i]);
    }
};

struct sgd_momentum_op {
    float *param, *buf;
    const float *grad;
    float lr, momentum;
    bool nesterov;
    __device__ void operator()(size_t i, float wd) const
    {
        float g = grad[i] + wd * param[i];
        float b = momentum * buf[i] + g;
        buf[i] = b;
        param[i] -= lr * (nesterov ? g + momentum * b : b);
    }
};

struct lion_op {
    float *param, *m;
    const float *grad;
    float lr, beta1, beta2;
    __device__ void operator()(size_t i, float wd) const
    {
        float g = grad[i];
        float c = beta1 * m[i] + (1.0f - beta1) * g;
        float sgn = (float)(c > 0.0f) - (float)(c < 0.0f);
        param[i] = param[i] * (1.0f - lr * wd) - lr * sgn;
        m[i] = beta2 * m[i] + (1.0f - beta2) * g;
    }
};

struct scale_op {
    float *x;
    float s;
    __device__ void operator()(size_t i, float) const
    {
        x[i] *= s;
    }
};

template <class Op> __global__ void flat_kernel(Op op, size_t n, float wd)
{
    for (size_t i = kc_gtid(); i < n; i += kc_gstride())
        op(i, wd);
}

/* grid (chunks, segments): block (x, y) strides over segment y. */
template <class Op> __global__ void multi_kernel(Op op, const struct backend_opt_seg *segs)
{
    struct backend_opt_seg s = segs[blockIdx.y];
    for (size_t i = kc_gtid(); i < s.n; i += kc_gstride())
        op(s.off + i, s.weight_decay);
}

template <class Op> static void launch_flat(const Op &op, size_t n, float wd)
{
    if (n == 0)
        return;
    unsigned fill = cuda_fill_blocks(OPT_THREADS, 8), need = cuda_blocks(n, OPT_THREADS);
    flat_kernel<Op><<<need < fill ? need : fill, OPT_THREADS, 0, cuda_stream()>>>(op, n, wd);
    CUDA_LAUNCH_CHECK();
}

template <class Op>
static void launch_multi(const Op &op, const struct backend_opt_seg *segs, int nseg, size_t max_n)
{
    if (nseg <= 0 || max_n == 0)
        return;
    if (nseg > 65535)
        cuda_fail(cudaErrorInvalidValue, "more than 65535 optimizer segments", __FILE__,
                  __LINE__);
    unsigned fill = cuda_fill_blocks(OPT_THREADS, 8);
    unsigned per_seg = fill / (unsigned)nseg > 1 ? fill / (unsigned)nseg : 1;
    unsigned need = cuda_blocks(max_n, OPT_THREADS);
    dim3 grid(need < per_seg ? need : per_seg, (unsigned)nseg);
    multi_kernel<Op><<<grid, OPT_THREADS, 0, cuda_stream()>>>(op, segs);
    CUDA_LAUNCH_CHECK();
}

static adamw_op make_adamw(float *param, const float *grad, float *m, float *v, int step, float lr,
                           float beta1, float beta2, float eps)
{
    /* Bias corrections in double on the host, as optim.c. */
    adamw_op op;
    op.param = param;
    op.grad = grad;
    op.m = m;
    op.v = v;
    op.lr = lr;
    op.beta1 = beta1;
    op.beta2 = beta2;
    op.eps = eps;
    op.bc1 = (float)(1.0 - pow(beta1, step));
    op.bc2 = (float)(1.0 - pow(beta2, step));
    return op;
}

KCUDA_API void kcuda_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                                int step, float lr, float beta1, float beta2, float eps,
                                float weight_decay)
{
    launch_flat(make_adamw(param, grad, m, v, step, lr, beta1, beta2, eps), n, weight_decay);
}

extern "C" void kcuda_adamw_step_multi(float *param, const float *grad, float *m, float *v,
                                       const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                       int step, float lr, float beta1, float beta2, float eps)
{
    launch_multi(make_adamw(param, grad, m, v, step, lr, beta1, beta2, eps), segs, nseg, max_n);
}

KCUDA_API void kcuda_sgd_step(float *param, const float *grad, size_t n, float lr,
                              float weight_decay)
{
    launch_flat(sgd_op{param, grad, lr}, n, weight_decay);
}

extern "C" void kcuda_sgd_step_multi(float *param, const float *grad,
                                     const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                     float lr)
{
    launch_multi(sgd_op{param, grad, lr}, segs, nseg, max_n);
}

KCUDA_API void kcuda_sgd_momentum_step(float *param, const float *grad, float *buf, size_t n,
                                       float lr, float momentum, float weight_decay,
                                       bool nesterov)
{
    launch_flat(sgd_momentum_op{param, buf, grad, lr, momentum, nesterov}, n, weight_decay);
}

extern "C" void kcuda_sgd_momentum_step_multi(float *param, const float *grad, float *buf,
                                              const struct backend_opt_seg *segs, int nseg,
                                              size_t max_n, float lr, float momentum,
                                              bool nesterov)
{
    launch_multi(sgd_momentum_op{param, buf, grad, lr, momentum, nesterov}, segs, nseg, max_n);
}

KCUDA_API void kcuda_lion_step(float *param, const float *grad, float *m, size_t n, float lr,
                               float beta1, float beta2, float weight_decay)
{
    launch_flat(lion_op{param, m, grad, lr, beta1, beta2}, n, weight_decay);
}

extern "C" void kcuda_lion_step_multi(float *param, const float *grad, float *m,
                                      const struct backend_opt_seg *segs, int nseg, size_t max_n,
                                      float lr, float beta1, float beta2)
{
    launch_multi(lion_op{param, m, grad, lr, beta1, beta2}, segs, nseg, max_n);
}

/* One segment through the per-segment entries (the table too large for the reduction buffer). */
static void step_one_segment(enum backend_optim kind, float *param, const float *grad,
                             void *state, size_t n, const struct backend_opt_seg *s, int step,
                             float lr, float beta1, float beta2, float eps)
{
    float *st = (float *)state, wd = s->weight_decay;
    size_t o = s->off;
    switch (kind) {
    case BACKEND_OPTIM_ADAMW:
        kcuda_adamw_step(param + o, grad + o, st + o, st + n + o, s->n, step, lr, beta1, beta2,
                         eps, wd);
        break;
    case BACKEND_OPTIM_SGD:
        kcuda_sgd_step(param + o, grad + o, s->n, lr, wd);
        break;
    case BACKEND_OPTIM_SGD_MOMENTUM:
        kcuda_sgd_momentum_step(param + o, grad + o, st + o, s->n, lr, beta1, wd, false);
        break;
    case BACKEND_OPTIM_LION:
        kcuda_lion_step(param + o, grad + o, st + o, s->n, lr, beta1, beta2, wd);
        break;
    case BACKEND_OPTIM_ADAMW8BIT:
        kcuda_adamw8bit_step(param + o, grad + o, (char *)state + s->state_off, s->n, step, lr,
                             beta1, beta2, eps, wd);
        break;
    }
}

/* struct backend optim_step_segments: the segment table (host memory) copied as it is into the
 * plugin's reduction buffer, then the *_multi update in one launch. A pageable host-to-device
 * copy is staged before cudaMemcpyAsync returns, so the caller may change its table at once;
 * the copy and the update are ordered on the stream after whatever used the buffer before. */
KCUDA_API void kcuda_optim_step_segments(enum backend_optim kind, float *param, const float *grad,
                                         void *state, size_t n, const struct backend_opt_seg *segs,
                                         int nseg, int step, float lr, float beta1, float beta2,
                                         float eps)
{
    if (nseg <= 0)
        return;
    size_t cap = CUDA_REDUCE_FLOATS * sizeof(float) / sizeof(struct backend_opt_seg);
    if ((size_t)nseg > cap) { /* more segments than the buffer holds: one launch each */
        for (int i = 0; i < nseg; i++)
            step_one_segment(kind, param, grad, state, n, &segs[i], step, lr, beta1, beta2, eps);
        return;
    }
    size_t max_n = 0;
    for (int i = 0; i < nseg; i++)
        max_n = segs[i].n > max_n ? segs[i].n : max_n;
    struct backend_opt_seg *d = (struct backend_opt_seg *)cuda_reduce_buf();
    CUDA_CHECK(cudaMemcpyAsync(d, segs, (size_t)nseg * sizeof(*segs), cudaMemcpyHostToDevice,
                               cuda_stream()));
    float *st = (float *)state;
    switch (kind) {
    case BACKEND_OPTIM_ADAMW:
        kcuda_adamw_step_multi(param, grad, st, st + n, d, nseg, max_n, step, lr, beta1, beta2,
                               eps);
        break;
    case BACKEND_OPTIM_SGD:
        kcuda_sgd_step_multi(param, grad, d, nseg, max_n, lr);
        break;
    case BACKEND_OPTIM_SGD_MOMENTUM:
        kcuda_sgd_momentum_step_multi(param, grad, st, d, nseg, max_n, lr, beta1, false);
        break;
    case BACKEND_OPTIM_LION:
        kcuda_lion_step_multi(param, grad, st, d, nseg, max_n, lr, beta1, beta2);
        break;
    case BACKEND_OPTIM_ADAMW8BIT:
        kcuda_adamw8bit_step_multi(param, grad, state, d, nseg, max_n, step, lr, beta1, beta2,
                                   eps);
        break;
    }
}

KCUDA_API void kcuda_scale(float *x, size_t n, float s)
{
    launch_flat(scale_op{x, s}, n, 0.0f);
}

/* ---------------------------------------------------------------- gradient norm */

/* Pass 1: block b sums grad² over i = b·blockDim + tid + k·gridDim·blockDim in double. */
__global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n)
{
    __shared__ double red[32];
    double s = 0.0;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        double v = x[i];
        s += v * v;
    }
    s = kc_block_sum_d(s, red);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

/* Pass 2 (one block): out[0] = Σ partial in a fixed tree. */
__global__ void sum_partials_kernel(double *out, const double *partial, int n)
{
    __shared__ double red[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += partial[i];
    s = kc_block_sum_d(s, red);
    if (threadIdx.x == 0)
        out[0] = s;
}

/* Σ x² into dev[0] (double) with partials at dev + 1; returns the number of partials. */
static void sumsq_device(double *dev, const float *x, size_t n, unsigned threads)
{
    unsigned blocks = cuda_blocks(n, threads);
    if (blocks > NORM_BLOCKS)
        blocks = NORM_BLOCKS;
    cudaStream_t s = cuda_stream();
    sumsq_partial_kernel<<<blocks, threads, 0, s>>>(dev + 1, x, n);
    CUDA_LAUNCH_CHECK();
    sum_partials_kernel<<<1, 1024, 0, s>>>(dev, dev + 1, (int)blocks);
    CUDA_LAUNCH_CHECK();
}

KCUDA_API double kcuda_grad_norm(const float *grad, size_t n)
{
    if (n == 0)
        return 0.0;
    double *dev = (double *)cuda_reduce_buf();
    sumsq_device(dev, grad, n, OPT_THREADS);
    double h;
    cudaStream_t s = cuda_stream();
    CUDA_CHECK(cudaMemcpyAsync(&h, dev, sizeof h, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return sqrt(h);
}

KCUDA_API double kcuda_clip_grad_norm(float *grad, size_t n, double max_norm)
{
    double norm = kcuda_grad_norm(grad, n);
    double coef = max_norm / (norm + 1e-6); /* torch clamps this at 1 */
    if (max_norm > 0 && coef < 1.0)
        kcuda_scale(grad, n, (float)coef);
    return norm;
}

/* ---------------------------------------------------------------- Adafactor */

#define AF_COLS 32
#define AF_ROWG 32
#define AF_BLOCKS 1024 /* grid of the RMS(u) partial pass, fixed */

static bool adafactor_factored(int rows, int cols)
{
    return rows > 1 && cols > 1;
}

KCUDA_API size_t kcuda_adafactor_row_floats(int rows, int cols)
{
    return adafactor_factored(rows, cols) ? (size_t)rows : (size_t)rows * cols;
}

KCUDA_API size_t kcuda_adafactor_col_floats(int rows, int cols)
{
    return adafactor_factored(rows, cols) ? (size_t)cols : 0;
}

/* Per-matrix scalars kept in the reduction buffer between kernels. */
struct af_stats {
    double rmean;   /* mean of the updated row state */
    double sum_u2;  /* Σ u² before clipping */
};

/* One block per row: R[r] = b2·R[r] + (1-b2)·mean_c(g² + eps1). */
__global__ void af_row_kernel(float *R, const float *grad, int cols, float b2, float eps1)
{
    __shared__ float red[32];
    const float *g = grad + (size_t)blockIdx.x * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        s += g[c] * g[c] + eps1;
    s = kc_block_sum(s, red);
    if (threadIdx.x == 0)
        R[blockIdx.x] = b2 * R[blockIdx.x] + (1.0f - b2) * (s / (float)cols);
}

/* Block (AF_COLS, AF_ROWG) per 32 columns: C[c] = b2·C[c] + (1-b2)·mean_r(g² + eps1), the row
 * partials added in a fixed tree. */
__global__ void af_col_kernel(float *Cs, const float *grad, int rows, int cols, float b2,
                              float eps1)
{
    __shared__ float sh[AF_ROWG][AF_COLS + 1];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * AF_COLS + tx;
    float s = 0.0f;
    if (c < cols)
        for (int r = ty; r < rows; r += AF_ROWG) {
            float g = grad[(size_t)r * cols + c];
            s += g * g + eps1;
        }
    sh[ty][tx] = s;
    __syncthreads();
    for (int half = AF_ROWG / 2; half > 0; half >>= 1) {
        if (ty < half)
            sh[ty][tx] += sh[ty + half][tx];
        __syncthreads();
    }
    if (ty == 0 && c < cols)
        Cs[c] = b2 * Cs[c] + (1.0f - b2) * (sh[0][tx] / (float)rows);
}

/* One block: st->rmean = mean(R). */
__global__ void af_rmean_kernel(struct af_stats *st, const float *R, int rows)
{
    __shared__ double red[32];
    double s = 0.0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x)
        s += R[r];
    s = kc_block_sum_d(s, red);
    if (threadIdx.x == 0)
        st->rmean = s / rows;
}

/* The unclipped update of element i: u = g·rsqrt(R_r/mean(R))·rsqrt(C_c) (factored, HF's
 * _approx_sq_grad) or g/sqrt(v) (unfactored). */
static __device__ __forceinline__ float af_u(const float *grad, const float *R, const float *Cs,
                                             float rmean, size_t i, int cols, bool factored)
{
    if (!factored)
        return grad[i] / sqrtf(R[i]);
    size_t r = i / cols, c = i % cols;
    float rf = 1.0f / sqrtf(R[r] / rmean);
    return grad[i] * rf / sqrtf(Cs[c]);
}

/* Unfactored: v = b2·v + (1-b2)·(g² + eps1) first, then the u² partial of the block. */
__global__ void af_u2_partial_kernel(double *partial, float *R, const float *Cs,
                                     const struct af_stats *st, const float *grad, size_t n,
                                     int cols, bool factored, float b2, float eps1)
{
    __shared__ double red[32];
    float rmean = factored ? (float)st->rmean : 1.0f;
    double s = 0.0;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        if (!factored) {
            float g = grad[i];
            R[i] = b2 * R[i] + (1.0f - b2) * (g * g + eps1);
        }
        float u = af_u(grad, R, Cs, rmean, i, cols, factored);
        s += (double)u * u;
    }
    s = kc_block_sum_d(s, red);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

/* p = p·(1 - lr·wd) - lr·u', u' = u/clip, through the optional first moment m. */
__global__ void af_update_kernel(float *param, float *m, const float *R, const float *Cs,
                                 const struct af_stats *st, const float *grad, size_t n, int cols,
                                 bool factored, float lr, float beta1, float decay,
                                 float clip_threshold)
{
    float rmean = factored ? (float)st->rmean : 1.0f;
    float rms = (float)sqrt(st->sum_u2 / (double)n);
    float clip = rms / clip_threshold > 1.0f ? rms / clip_threshold : 1.0f;
    for (size_t i = kc_gtid(); i < n; i += kc_gstride()) {
        float u = af_u(grad, R, Cs, rmean, i, cols, factored) / clip;
        if (m) {
            m[i] = beta1 * m[i] + (1.0f - beta1) * u;
            u = m[i];
        }
        param[i] = param[i] * decay - lr * u;
    }
}

KCUDA_API void kcuda_adafactor_step(float *param, const float *grad, float *row_state,
                                    float *col_state, float *m, int rows, int cols, int step,
                                    float lr, float beta1, float decay_rate, float eps1,
                                    float clip_threshold, float weight_decay)
{
    if (rows <= 0 || cols <= 0)
        return;
    cudaStream_t s = cuda_stream();
    size_t n = (size_t)rows * cols;
    bool fac = adafactor_factored(rows, cols);
    float b2 = (float)(1.0 - pow((double)step, (double)decay_rate));
    float decay = 1.0f - lr * weight_decay;
    struct af_stats *st = (struct af_stats *)cuda_reduce_buf();
    double *partial = (double *)(st + 1);
    if (fac) {
        af_row_kernel<<<(unsigned)rows, 256, 0, s>>>(row_state, grad, cols, b2, eps1);
        CUDA_LAUNCH_CHECK();
        af_col_kernel<<<(unsigned)((cols + AF_COLS - 1) / AF_COLS), dim3(AF_COLS, AF_ROWG), 0,
                        s>>>(col_state, grad, rows, cols, b2, eps1);
        CUDA_LAUNCH_CHECK();
        af_rmean_kernel<<<1, 1024, 0, s>>>(st, row_state, rows);
        CUDA_LAUNCH_CHECK();
    }
    unsigned blocks = cuda_blocks(n, OPT_THREADS);
    if (blocks > AF_BLOCKS)
        blocks = AF_BLOCKS;
    af_u2_partial_kernel<<<blocks, OPT_THREADS, 0, s>>>(partial, row_state, col_state, st, grad,
                                                         n, cols, fac, b2, eps1);
    CUDA_LAUNCH_CHECK();
    sum_partials_kernel<<<1, 1024, 0, s>>>(&st->sum_u2, partial, (int)blocks);
    CUDA_LAUNCH_CHECK();
    unsigned fill = cuda_fill_blocks(OPT_THREADS, 8), need = cuda_blocks(n, OPT_THREADS);
    af_update_kernel<<<need < fill ? need : fill, OPT_THREADS, 0, s>>>(
        param, m, row_state, col_state, st, grad, n, cols, fac, lr, beta1, decay, clip_threshold);
    CUDA_LAUNCH_CHECK();
}
