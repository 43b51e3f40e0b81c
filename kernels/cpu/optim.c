/* Optimizer updates over flat fp32 parameter arrays, one call per step per tensor (or per
 * flat group): AdamW, SGD, SGD with momentum, Lion and Adafactor (factored second moment for
 * matrices), plus the global gradient norm and clipping. Each formula follows the PyTorch or
 * Hugging Face implementation named beside it so that runs are comparable; the state sizes are
 * strategy reference 3.1's B_o. 8-bit AdamW is in adam8bit.c. */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>

#include "common/common.h"
#include "kernels/cpu/simd.h"

#define OPT_PARALLEL_MIN 32768

/* AdamW's element loop is compute-bound, not memory-bound, until it is vectorised: two
 * divisions and a square root an element ran at 9.5 GB/s of state per core here (2-core EPYC
 * VM), where vectorised it reaches the memory's 70 GB/s on both cores. GCC vectorises it only
 * without errno semantics for sqrtf (the Makefile builds this file with -fno-math-errno;
 * nothing here reads errno) and, at -O2, when asked (omp simd); the range function is cloned
 * for AVX-512, AVX2 and the baseline. Division and square root are correctly rounded in every
 * width, and nothing is summed across lanes, so the results are the bits of the scalar loop.
 * Elements [i0, i1) of an AdamW step (bias corrections bc1, bc2 and decay precomputed). */
KC_CLONES static void adamw_range(float *restrict param, const float *restrict grad,
                                   float *restrict m, float *restrict v, size_t i0, size_t i1,
                                   float lr, float beta1, float beta2, float eps, float bc1,
                                   float bc2, float decay)
{
    KC_SIMD
    for (size_t i = i0; i < i1; i++) {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] = param[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

void kcpu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, int step,
                     float lr, float beta1, float beta2, float eps, float weight_decay)
{
    SW_ASSERT(step >= 1);
    /* Bias corrections in double: beta^step underflows gracefully and 1 - beta^step keeps its
     * digits for small step. */
    float bc1 = (float)(1.0 - pow(beta1, step)), bc2 = (float)(1.0 - pow(beta2, step));
    float decay = 1.0f - lr * weight_decay;
    KC_RANGES(n, OPT_PARALLEL_MIN,
              adamw_range(param, grad, m, v, i0, i1, lr, beta1, beta2, eps, bc1, bc2, decay));
}

void kcpu_sgd_step(float *param, const float *grad, size_t n, float lr, float weight_decay)
{
#pragma omp parallel for simd schedule(static) if (n > OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        param[i] -= lr * (grad[i] + weight_decay * param[i]);
}

void kcpu_sgd_momentum_step(float *param, const float *grad, float *buf, size_t n, float lr,
                            float momentum, float weight_decay, bool nesterov)
{
    float nest = nesterov ? 1.0f : 0.0f;
#pragma omp parallel for simd schedule(static) if (n > OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * param[i];
        float b = momentum * buf[i] + g;
        buf[i] = b;
        /* nesterov: g + μ·buf; plain: buf. Written branch-free so the loop vectorises. */
        float d = nest * (g + momentum * b) + (1.0f - nest) * b;
        param[i] -= lr * d;
    }
}

void kcpu_lion_step(float *param, const float *grad, float *m, size_t n, float lr, float beta1,
                    float beta2, float weight_decay)
{
    float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for simd schedule(static) if (n > OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float c = beta1 * m[i] + (1.0f - beta1) * g;
        float sgn = (float)(c > 0.0f) - (float)(c < 0.0f);
        param[i] = param[i] * decay - lr * sgn;
        m[i] = beta2 * m[i] + (1.0f - beta2) * g;
    }
}

static bool adafactor_factored(int rows, int cols)
{
    return rows > 1 && cols > 1;
}

size_t kcpu_adafactor_row_floats(int rows, int cols)
{
    return adafactor_factored(rows, cols) ? (size_t)rows : (size_t)rows * cols;
}

size_t kcpu_adafactor_col_floats(int rows, int cols)
{
    return adafactor_factored(rows, cols) ? (size_t)cols : 0;
}

/* The clipped update u of one element, through the optional first moment m (HF: exp_avg). */
static inline float adafactor_apply(float p, float u, float *m, float beta1, float lr,
                                    float decay)
{
    if (m) {
        *m = beta1 * *m + (1.0f - beta1) * u;
        u = *m;
    }
    return p * decay - lr * u;
}

void kcpu_adafactor_step(float *param, const float *grad, float *row_state, float *col_state,
                         float *m, int rows, int cols, int step, float lr, float beta1,
                         float decay_rate, float eps1, float clip_threshold, float weight_decay)
{
    SW_ASSERT(rows > 0 && cols > 0 && step >= 1 && clip_threshold > 0);
    size_t n = (size_t)rows * cols;
    float b2 = (float)(1.0 - pow((double)step, (double)decay_rate));
    float decay = 1.0f - lr * weight_decay;
    bool par = n > OPT_PARALLEL_MIN;
    double sum_u2 = 0.0;

    if (!adafactor_factored(rows, cols)) {
        float *v = row_state;
#pragma omp parallel for schedule(static) reduction(+ : sum_u2) if (par)
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            float vi = b2 * v[i] + (1.0f - b2) * (g * g + eps1);
            v[i] = vi;
            float u = g / sqrtf(vi);
            sum_u2 += (double)u * u;
        }
        float rms = (float)sqrt(sum_u2 / (double)n);
        float clip = rms / clip_threshold > 1.0f ? rms / clip_threshold : 1.0f;
#pragma omp parallel for schedule(static) if (par)
        for (size_t i = 0; i < n; i++)
            param[i] = adafactor_apply(param[i], grad[i] / sqrtf(v[i]) / clip, m ? m + i : NULL,
                                       beta1, lr, decay);
        return;
    }

    /* Row statistics: mean over columns of g² + eps1, one task per row. */
#pragma omp parallel for schedule(static) if (par)
    for (int r = 0; r < rows; r++) {
        const float *g = grad + (size_t)r * cols;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < cols; c++)
            s += g[c] * g[c] + eps1;
        row_state[r] = b2 * row_state[r] + (1.0f - b2) * (s / (float)cols);
    }
    /* Column statistics: tasks own slices of 64 columns and walk every row (no races). */
    int nslice = (cols + 63) / 64;
#pragma omp parallel for schedule(static) if (par)
    for (int sl = 0; sl < nslice; sl++) {
        int c0 = sl * 64, c1 = c0 + 64 < cols ? c0 + 64 : cols;
        float acc[64] = {0};
        for (int r = 0; r < rows; r++) {
            const float *g = grad + (size_t)r * cols;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                acc[c - c0] += g[c] * g[c] + eps1;
        }
        for (int c = c0; c < c1; c++)
            col_state[c] = b2 * col_state[c] + (1.0f - b2) * (acc[c - c0] / (float)rows);
    }
    double rsum = 0.0;
    for (int r = 0; r < rows; r++)
        rsum += row_state[r];
    float rmean = (float)(rsum / rows);
    /* v̂ = R_i·C_j/mean(R): u = g·rsqrt(R_i/mean(R))·rsqrt(C_j), as HF's _approx_sq_grad. */
#pragma omp parallel for schedule(static) reduction(+ : sum_u2) if (par)
    for (int r = 0; r < rows; r++) {
        const float *g = grad + (size_t)r * cols;
        float rf = 1.0f / sqrtf(row_state[r] / rmean);
        double s = 0.0;
        for (int c = 0; c < cols; c++) {
            float u = g[c] * rf / sqrtf(col_state[c]);
            s += (double)u * u;
        }
        sum_u2 += s;
    }
    float rms = (float)sqrt(sum_u2 / (double)n);
    float clip = rms / clip_threshold > 1.0f ? rms / clip_threshold : 1.0f;
#pragma omp parallel for schedule(static) if (par)
    for (int r = 0; r < rows; r++) {
        const float *g = grad + (size_t)r * cols;
        float *p = param + (size_t)r * cols;
        float *mr = m ? m + (size_t)r * cols : NULL;
        float rf = 1.0f / sqrtf(row_state[r] / rmean);
        for (int c = 0; c < cols; c++)
            p[c] = adafactor_apply(p[c], g[c] * rf / sqrtf(col_state[c]) / clip,
                                   mr ? mr + c : NULL, beta1, lr, decay);
    }
}

double kcpu_grad_norm(const float *grad, size_t n)
{
    double s = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        s += (double)grad[i] * grad[i];
    return sqrt(s);
}

double kcpu_clip_grad_norm(float *grad, size_t n, double max_norm)
{
    double norm = kcpu_grad_norm(grad, n);
    double coef = max_norm / (norm + 1e-6); /* torch clamps this at 1 */
    if (max_norm > 0 && coef < 1.0)
        kcpu_scale(grad, n, (float)coef);
    return norm;
}

void kcpu_scale(float *x, size_t n, float s)
{
#pragma omp parallel for simd schedule(static) if (n > OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}
