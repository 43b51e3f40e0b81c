/* 8-bit AdamW (Dettmers et al., 2022, "8-bit Optimizers via Block-wise Quantization"): m and v
 * are kept as one byte per element in blocks of KCPU_ADAM8_BLOCK elements, each block with one
 * fp32 absmax. The byte is an index into bitsandbytes' dynamic-exponent code
 * (create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)): 256 sorted values in [-1,1]
 * (signed, for m) or [0,1] (unsigned, for v) whose spacing shrinks towards zero over seven
 * decades, so small second moments keep relative precision where a linear code would round
 * them to zero. Encoding picks the nearest code of x/absmax. Tensors under KCPU_ADAM8_MIN_N
 * elements keep fp32 states, as bitsandbytes does (min_8bit_size = 4096).
 * State buffer layout (n >= KCPU_ADAM8_MIN_N): m codes (n bytes), v codes (n bytes), padding to
 * 4 bytes, m absmax (nblocks floats), v absmax (nblocks floats). Otherwise m (n floats) then
 * v (n floats). */
#include "kernels/cpu/kernels_cpu.h"

#include <math.h>
#include <string.h>

#include "common/common.h"

struct q8_maps {
    float sgn[256]; /* signed code, ascending */
    float uns[256]; /* unsigned code, ascending */
};

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* bitsandbytes create_dynamic_map: for exponent i = 0..6, the midpoints of an even split of
 * [0.1, 1] into 2^i (signed) or 2^(i+1) (unsigned) parts, times 10^(i-6); signed adds the
 * negatives; then 0 and 1. 254 + 2 = 256 values. Built in double, rounded once. */
static void q8_build(float *code, bool is_signed)
{
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int parts = is_signed ? 1 << i : 1 << (i + 1);
        double scale = pow(10.0, (double)(i - 6));
        for (int j = 0; j < parts; j++) {
            double lo = 0.1 + 0.9 * j / parts, hi = 0.1 + 0.9 * (j + 1) / parts;
            double mid = 0.5 * (lo + hi) * scale;
            code[k++] = (float)mid;
            if (is_signed)
                code[k++] = (float)-mid;
        }
    }
    code[k++] = 0.0f;
    code[k++] = 1.0f;
    SW_ASSERT(k == 256);
    qsort(code, 256, sizeof(float), cmp_float);
}

static void q8_maps_init(struct q8_maps *q)
{
    q8_build(q->sgn, true);
    q8_build(q->uns, false);
}

/* Index of the code nearest to x (x already divided by the block's absmax). */
static inline uint8_t q8_encode(const float *code, float x)
{
    int lo = 0, hi = 255; /* first index with code >= x, by bisection */
    if (x >= code[255])
        return 255;
    if (x <= code[0])
        return 0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (code[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint8_t)(x - code[lo - 1] <= code[lo] - x ? lo - 1 : lo);
}

static size_t nblocks_of(size_t n)
{
    return (n + KCPU_ADAM8_BLOCK - 1) / KCPU_ADAM8_BLOCK;
}

static size_t codes_bytes_padded(size_t n)
{
    return (2 * n + 3) & ~(size_t)3;
}

size_t kcpu_adamw8bit_state_bytes(size_t n)
{
    if (n < KCPU_ADAM8_MIN_N)
        return 2 * n * sizeof(float);
    return codes_bytes_padded(n) + 2 * nblocks_of(n) * sizeof(float);
}

void kcpu_adamw8bit_step(float *param, const float *grad, void *state, size_t n, int step,
                         float lr, float beta1, float beta2, float eps, float weight_decay)
{
    SW_ASSERT(step >= 1 && ((uintptr_t)state & 3) == 0);
    if (n < KCPU_ADAM8_MIN_N) {
        float *m = state;
        kcpu_adamw_step(param, grad, m, m + n, n, step, lr, beta1, beta2, eps, weight_decay);
        return;
    }
    struct q8_maps maps;
    q8_maps_init(&maps);
    uint8_t *mq = state, *vq = mq + n;
    float *mabs = (float *)((char *)state + codes_bytes_padded(n));
    float *vabs = mabs + nblocks_of(n);
    float bc1 = (float)(1.0 - pow(beta1, step)), bc2 = (float)(1.0 - pow(beta2, step));
    float decay = 1.0f - lr * weight_decay;
    long nb = (long)nblocks_of(n);
#pragma omp parallel for schedule(static) if (n > 2 * KCPU_ADAM8_BLOCK)
    for (long blk = 0; blk < nb; blk++) {
        size_t i0 = (size_t)blk * KCPU_ADAM8_BLOCK;
        size_t len = n - i0 < KCPU_ADAM8_BLOCK ? n - i0 : KCPU_ADAM8_BLOCK;
        float mloc[KCPU_ADAM8_BLOCK], vloc[KCPU_ADAM8_BLOCK];
        float ma = mabs[blk], va = vabs[blk], mmax = 0.0f, vmax = 0.0f;
        for (size_t j = 0; j < len; j++) {
            size_t i = i0 + j;
            float g = grad[i];
            float mi = beta1 * (maps.sgn[mq[i]] * ma) + (1.0f - beta1) * g;
            float vi = beta2 * (maps.uns[vq[i]] * va) + (1.0f - beta2) * g * g;
            mloc[j] = mi;
            vloc[j] = vi;
            mmax = fabsf(mi) > mmax ? fabsf(mi) : mmax;
            vmax = vi > vmax ? vi : vmax;
            /* The update uses the fp32 values before requantisation, as bitsandbytes. */
            param[i] = param[i] * decay - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        }
        float minv = mmax > 0.0f ? 1.0f / mmax : 0.0f, vinv = vmax > 0.0f ? 1.0f / vmax : 0.0f;
        for (size_t j = 0; j < len; j++) {
            mq[i0 + j] = q8_encode(maps.sgn, mloc[j] * minv);
            vq[i0 + j] = q8_encode(maps.uns, vloc[j] * vinv);
        }
        mabs[blk] = mmax;
        vabs[blk] = vmax;
    }
}

void kcpu_adamw8bit_read_state(float *out, const void *state, size_t n, int which)
{
    SW_ASSERT(which == 0 || which == 1);
    if (n < KCPU_ADAM8_MIN_N) {
        memcpy(out, (const float *)state + (size_t)which * n, n * sizeof(float));
        return;
    }
    struct q8_maps maps;
    q8_maps_init(&maps);
    const uint8_t *q = (const uint8_t *)state + (size_t)which * n;
    const float *absmax =
        (const float *)((const char *)state + codes_bytes_padded(n)) + (size_t)which * nblocks_of(n);
    const float *code = which == 0 ? maps.sgn : maps.uns;
    for (size_t i = 0; i < n; i++)
        out[i] = code[q[i]] * absmax[i / KCPU_ADAM8_BLOCK];
}
