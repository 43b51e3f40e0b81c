/* Benchmark of the bf16-weight matmuls (`make bench` runs it through tests/bench/run.sh; figures
 * are printed, never asserted). For GPT-2 124M's linear layers (C = 768: QKV 2304, attention
 * projection 768, MLP up 3072, MLP down 3072 -> 768, tied head 50304) at N tokens it prints
 * GFLOP/s (2·N·C·OC per product, best of a few runs) of the forward, the input gradient
 * (bwd-input) and the weight gradient (bwd-weight) through:
 *   sgemm     kcpu_matmul_forward / kcpu_matmul_backward on fp32 operands (OpenBLAS when the
 *             build has it): the fp32 baseline
 *   native    kcpu_matmul_bf16_forward / _backward_input / _backward_weight (AVX512-BF16)
 *   emulated  widen the bf16 weight to fp32 (kcpu_bf16_to_f32) and then sgemm: what bf16-mixed
 *             did before the native kernel, and still does on CPUs without AVX512-BF16 (its
 *             weight gradient is the sgemm one: the fp32 weight is not read)
 * Usage: bench_bf16 [N] [reps]   (default N = 1024 tokens, 3 runs per figure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/kernels_cpu.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *xalloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_bf16: cannot allocate %zu bytes\n", bytes);
        exit(2);
    }
    return p;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) * (1.0 / 16777216.0) - 0.5);
    }
}

enum impl { SGEMM, NATIVE, EMULATED };

struct bufs {
    float *x, *y, *w, *wbuf;
    uint16_t *w16;
    void *scratch;
};

enum pass { FWD, BWD_INPUT, BWD_WEIGHT };
static const char *const pass_name[] = {"forward", "bwd-input", "bwd-weight"};

static void run_once(enum impl k, enum pass pass, struct bufs *b, int N, int C, int OC)
{
    if (pass == BWD_WEIGHT) { /* dW(OC,C) += dout(N,OC)ᵀ·inp(N,C) into wbuf */
        if (k == NATIVE)
            kcpu_matmul_bf16_backward_weight(b->wbuf, NULL, b->y, b->x, N, C, OC, b->scratch);
        else
            kcpu_matmul_backward(NULL, b->wbuf, NULL, b->y, b->x, NULL, N, C, OC);
        return;
    }
    if (pass == FWD) {
        if (k == SGEMM)
            kcpu_matmul_forward(b->y, b->x, b->w, NULL, N, C, OC);
        else if (k == NATIVE)
            kcpu_matmul_bf16_forward(b->y, b->x, b->w16, NULL, N, C, OC, b->scratch);
        else {
            kcpu_bf16_to_f32(b->wbuf, b->w16, (size_t)OC * C);
            kcpu_matmul_forward(b->y, b->x, b->wbuf, NULL, N, C, OC);
        }
        return;
    }
    /* dinp(N,C) += dout(N,OC)·W: x is dinp, y is dout */
    if (k == SGEMM)
        kcpu_matmul_backward(b->x, NULL, NULL, b->y, NULL, b->w, N, C, OC);
    else if (k == NATIVE)
        kcpu_matmul_bf16_backward_input(b->x, b->y, b->w16, N, C, OC, b->scratch);
    else {
        kcpu_bf16_to_f32(b->wbuf, b->w16, (size_t)OC * C);
        kcpu_matmul_backward(b->x, NULL, NULL, b->y, NULL, b->wbuf, N, C, OC);
    }
}

static double gflops(enum impl k, enum pass bwd, struct bufs *b, int N, int C, int OC, int reps)
{
    run_once(k, bwd, b, N, C, OC); /* warm up: page faults, thread pool */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        run_once(k, bwd, b, N, C, OC);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * N * C * OC / best * 1e-9;
}

int main(int argc, char **argv)
{
    int N = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1024;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 3;
    if (N < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_bf16 [N >= 1] [reps >= 1]\n");
        return 2;
    }
    bool native = kcpu_has_native_bf16();
    printf("bf16 matmuls, GPT-2 124M shapes, N = %d tokens, GFLOP/s (best of %d); matmul: %s; "
           "native bf16: %s\n",
           N, reps, kcpu_matmul_uses_blas() ? "OpenBLAS sgemm" : "built-in fp32 loop",
           native ? "AVX512-BF16" : "no (the native column runs the scalar reference: skipped)");
    static const struct {
        const char *name;
        int C, OC;
    } sh[] = {{"attn.c_attn  768->2304", 768, 2304},
              {"attn.c_proj  768->768", 768, 768},
              {"mlp.c_fc     768->3072", 768, 3072},
              {"mlp.c_proj  3072->768", 3072, 768},
              {"head         768->50304", 768, 50304}};
    size_t mx_x = 0, mx_y = 0, mx_w = 0;
    for (size_t i = 0; i < sizeof(sh) / sizeof(sh[0]); i++) {
        size_t x = (size_t)N * sh[i].C, y = (size_t)N * sh[i].OC, w = (size_t)sh[i].OC * sh[i].C;
        mx_x = x > mx_x ? x : mx_x;
        mx_y = y > mx_y ? y : mx_y;
        mx_w = w > mx_w ? w : mx_w;
    }
    struct bufs b = {xalloc(mx_x * 4), xalloc(mx_y * 4), xalloc(mx_w * 4),
                     xalloc(mx_w * 4), xalloc(mx_w * 2), xalloc(kcpu_matmul_bf16_scratch_bytes(N))};
    fill(b.x, mx_x, 1);
    fill(b.y, mx_y, 2);
    fill(b.w, mx_w, 3);
    kcpu_f32_to_bf16(b.w16, b.w, mx_w);
    printf("%-26s %-10s %9s %9s %9s %14s\n", "layer", "pass", "sgemm", "native", "emulated",
           "native/emul.");
    for (size_t i = 0; i < sizeof(sh) / sizeof(sh[0]); i++) {
        for (int bwd = FWD; bwd <= BWD_WEIGHT; bwd++) {
            int C = sh[i].C, OC = sh[i].OC;
            double s = gflops(SGEMM, bwd, &b, N, C, OC, reps);
            double e = bwd == BWD_WEIGHT ? s : gflops(EMULATED, bwd, &b, N, C, OC, reps);
            if (native) {
                double n = gflops(NATIVE, bwd, &b, N, C, OC, reps);
                printf("%-26s %-10s %9.1f %9.1f %9.1f %13.2fx\n", sh[i].name, pass_name[bwd],
                       s, n, e, n / e);
            } else {
                printf("%-26s %-10s %9.1f %9s %9.1f %14s\n", sh[i].name, pass_name[bwd], s,
                       "n/a", e, "n/a");
            }
        }
    }
    free(b.x), free(b.y), free(b.w), free(b.wbuf), free(b.w16), free(b.scratch);
    return 0;
}
