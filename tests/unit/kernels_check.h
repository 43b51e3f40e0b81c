/* Shared by the tests of kernels/cpu (test_kernels_*.c): a deterministic random generator,
 * float/double buffer helpers, a closeness check that prints the maximum absolute and relative
 * difference of every comparison, and a central finite-difference gradient of a scalar loss
 * written in double. Test-only; static functions, one copy per test program. */
#ifndef SW_TESTS_KERNELS_CHECK_H
#define SW_TESTS_KERNELS_CHECK_H

#include "harness.h"

#include <stdint.h>

/* Not every test program uses every helper. */
#define KC_FN static __attribute__((unused))

static uint64_t kc_rng_state = 0x9E3779B97F4A7C15ull;

KC_FN void kc_seed(uint64_t s)
{
    kc_rng_state = s ? s : 1;
}

static uint32_t kc_u32(void)
{
    /* xorshift64*: fast, deterministic across platforms. */
    kc_rng_state ^= kc_rng_state >> 12;
    kc_rng_state ^= kc_rng_state << 25;
    kc_rng_state ^= kc_rng_state >> 27;
    return (uint32_t)((kc_rng_state * 2685821657736338717ull) >> 32);
}

/* Uniform in [lo, hi). */
KC_FN double kc_uniform(double lo, double hi)
{
    return lo + (hi - lo) * (kc_u32() / 4294967296.0);
}

static float *kc_floats(size_t n, double lo, double hi)
{
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)kc_uniform(lo, hi);
    return p;
}

static float *kc_zeros(size_t n)
{
    return calloc(n + 1, sizeof(float));
}

static float *kc_copyf(const float *src, size_t n)
{
    float *p = malloc(n * sizeof(float) + 1);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static double *kc_to_double(const float *src, size_t n)
{
    double *p = malloc(n * sizeof(double) + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = src[i];
    return p;
}

/* One check: every |got - ref| <= atol + rtol·|ref|. Prints the maxima either way, so a
 * passing run still shows how close it was. */
#define KC_CLOSE(what, got, ref, n, atol, rtol) \
    kc_close_at(__FILE__, __LINE__, what, got, ref, n, atol, rtol)

KC_FN void kc_close_at(const char *file, int line, const char *what, const float *got,
                        const double *ref, size_t n, double atol, double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t worst = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double rel = d / (fabs(ref[i]) > 1e-30 ? fabs(ref[i]) : 1e-30);
        if (d > max_abs) {
            max_abs = d;
            worst = i;
        }
        if (d > 1e-30 && rel > max_rel)
            max_rel = rel;
        if (!(d <= atol + rtol * fabs(ref[i])))
            bad = 1;
    }
    printf("  %-44s max abs %.3g  max rel %.3g  (atol %.1g, rtol %.1g)\n", what, max_abs,
           max_rel, atol, rtol);
    if (bad) {
        harness_failed++;
        fprintf(stderr, "%s:%d: [%s] %s: element %zu = %.9g, expected %.9g\n", file, line,
                harness_current, what, worst, (double)got[worst], ref[worst]);
    } else {
        harness_passed++;
    }
}

/* (got - pre) against ref: checks that a backward ACCUMULATED into a non-zero buffer. */
KC_FN void kc_close_delta_at(const char *file, int line, const char *what, const float *got,
                              const float *pre, const double *ref, size_t n, double atol,
                              double rtol)
{
    float *d = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        d[i] = got[i] - pre[i];
    kc_close_at(file, line, what, d, ref, n, atol, rtol);
    free(d);
}
#define KC_CLOSE_DELTA(what, got, pre, ref, n, atol, rtol) \
    kc_close_delta_at(__FILE__, __LINE__, what, got, pre, ref, n, atol, rtol)

/* Central differences of loss(ctx, theta) for every element of theta(n), step h (double). */
typedef double (*kc_loss_fn)(const void *ctx, const double *theta);

KC_FN void kc_fd_grad(kc_loss_fn loss, const void *ctx, double *theta, size_t n, double h,
                       double *grad)
{
    for (size_t i = 0; i < n; i++) {
        double keep = theta[i];
        theta[i] = keep + h;
        double lp = loss(ctx, theta);
        theta[i] = keep - h;
        double lm = loss(ctx, theta);
        theta[i] = keep;
        grad[i] = (lp - lm) / (2 * h);
    }
}

KC_FN double kc_dot(const double *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#endif
