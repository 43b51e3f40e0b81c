/* The bf16-activation matmuls of GPT-2 124M's training step, timed one shape at a time through
 * the CUDA plugin's entries exactly as executor/model.c calls them (micro-batch 16, T = 1024:
 * 16,384 rows):
 *  - QKV (768 -> 2304): bf16 out with the bias's bf16 mirror; its backward;
 *  - attention output (768 -> 768) and MLP projection (3072 -> 768): fp32 out with the fp32
 *    bias and the residual stream added by the epilogue; their backward;
 *  - MLP FC (768 -> 3072): GELU fused (bf16 pre and out); its backward from d(out) taken
 *    through the GELU (dout_pre);
 *  - the head (768 -> 50304, no bias): bf16 logits; its backward from the bf16 logit gradient.
 * Each is timed as the average of 5 calls after a warm-up, between synchronizations, and
 * printed with its rate ("matmul <name> ..." lines, which tests/gpu/check.sh puts in its
 * summary), then the totals of a step (12 layers and the head). A benchmark, not a test of
 * values (test_cuda_backend checks those): its checks only say that every output is finite.
 * Then, per shape, a survey of cuBLASLt's algorithms: the same calls with each of the
 * heuristic's first 8 algorithms in turn (the plugin's scalewise_cuda_gemm_algo; the executor
 * always takes the first), one "matmul <name> algorithms ..." line each, so a slow shape shows
 * whether another algorithm would be faster (SW_BENCH_MATMUL_SURVEY=0 leaves it out).
 * Without a GPU it prints "skipped: no GPU (<reason>)". SW_BENCH_MATMUL_ROWS replaces the
 * 16,384 rows (tests/cli/cuda_emu_e2e.sh runs 4 on the emulated plugin: the code path only). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "executor/backend.h"
#include "harness.h"

#define REPS 5

static const struct backend *be;
static int ROWS = 16384; /* micro-batch 16 x T 1024 */
/* The plugin's scalewise_cuda_gemm_algo (kcuda_matmul_algo_select); NULL: no survey. */
static int (*gemm_algo)(int index);

static void *dev(size_t bytes, enum backend_mem cat)
{
    struct sw_err err;
    sw_err_init(&err);
    void *p = be->alloc(bytes, cat, &err);
    if (!p) {
        fprintf(stderr, "bench_matmul: %s\n", err.msg);
        exit(1);
    }
    be->memset(p, 0x3c, bytes); /* about 0.0115 in fp32 and bf16: finite, no denormals */
    return p;
}

/* All of n fp32 values at p finite (a copy to the host). */
static bool finite_f32(const float *p, size_t n)
{
    float *h = malloc(n * sizeof(float));
    be->memcpy(h, p, n * sizeof(float), BACKEND_D2H);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = isfinite(h[i]);
    free(h);
    return ok;
}

enum mm_kind { MM_BF16_OUT, MM_RESIDUAL, MM_GELU, MM_HEAD };

struct shape {
    const char *name;
    int C, OC;
    enum mm_kind kind;
    int per_step; /* calls per step: 12 layers, or 1 (the head) */
};

struct bufs {
    uint16_t *in16, *w16, *b16, *out16, *pre16;
    float *b32, *out32, *res, *dout, *dinp, *dw, *db;
    void *scratch;
};

static void forward(const struct shape *s, const struct bufs *b)
{
    switch (s->kind) {
    case MM_BF16_OUT:
        be->matmul_a16_forward(b->out16, true, b->in16, b->w16, b->b16, NULL, ROWS, s->C, s->OC);
        break;
    case MM_RESIDUAL:
        be->matmul_a16_forward(b->out32, false, b->in16, b->w16, b->b32, b->res, ROWS, s->C,
                               s->OC);
        break;
    case MM_GELU:
        be->matmul_gelu_forward_a16(b->out16, b->pre16, b->in16, b->w16, b->b16, ROWS, s->C,
                                    s->OC);
        break;
    case MM_HEAD:
        be->matmul_a16_forward(b->out16, true, b->in16, b->w16, NULL, NULL, ROWS, s->C, s->OC);
        break;
    }
}

static void backward(const struct shape *s, const struct bufs *b)
{
    if (s->kind == MM_HEAD)
        be->matmul_a16_backward_d16(b->dinp, b->dw, b->out16, b->in16, b->w16, ROWS, s->C, s->OC);
    else
        be->matmul_16_backward_a16(b->dinp, b->dw, b->db, b->dout,
                                   s->kind == MM_GELU ? b->pre16 : NULL, b->in16, b->w16, NULL,
                                   ROWS, s->C, s->OC, b->scratch);
}

/* Mean seconds of one call of f after a warm-up. */
static double timed(void (*f)(const struct shape *, const struct bufs *), const struct shape *s,
                    const struct bufs *b)
{
    f(s, b);
    be->synchronize();
    double t0 = sw_now_s();
    for (int i = 0; i < REPS; i++)
        f(s, b);
    be->synchronize();
    return (sw_now_s() - t0) / REPS;
}

/* The survey's step totals: per algorithm index, Σ per_step · (forward + backward) seconds over
 * the shapes surveyed, and the fewest algorithms any shape was offered (indices past it fall
 * back to the last offered, as SCALEWISE_CUDA_GEMM_ALGO does). */
#define SURVEY_MAX 8
static double survey_step[SURVEY_MAX];
static int survey_offered = SURVEY_MAX;

/* Shape s's forward and backward with the heuristic's algorithm #0, #1, ... (as many as every
 * plan involved was offered, at most 8), then the default again. */
static void survey(const struct shape *s, const struct bufs *b)
{
    char fwd[256] = "", bwd[256] = "";
    size_t nf = 0, nb = 0;
    int offered = 0;
    for (int i = 0; i < 8 && (i == 0 || i < offered); i++) {
        gemm_algo(i);
        double tf = timed(forward, s, b), tb = timed(backward, s, b);
        offered = gemm_algo(i); /* the fewest algorithms the plans just built were offered */
        nf += (size_t)snprintf(fwd + nf, sizeof fwd - nf, "%s#%d %.3f", i ? ", " : "", i,
                               1e3 * tf);
        nb += (size_t)snprintf(bwd + nb, sizeof bwd - nb, "%s#%d %.3f", i ? ", " : "", i,
                               1e3 * tb);
        survey_step[i] += s->per_step * (tf + tb);
    }
    if (offered < survey_offered)
        survey_offered = offered > 0 ? offered : 1;
    gemm_algo(-1);
    printf("matmul %-8s algorithms (heuristic order, %d offered): forward ms %s; backward ms "
           "%s\n",
           s->name, offered, fwd, bwd);
}

static void bench(void)
{
    const struct shape shapes[] = {
        {"qkv", 768, 2304, MM_BF16_OUT, 12},  {"attn-out", 768, 768, MM_RESIDUAL, 12},
        {"mlp-fc", 768, 3072, MM_GELU, 12},   {"mlp-proj", 3072, 768, MM_RESIDUAL, 12},
        {"head", 768, 50304, MM_HEAD, 1},
    };
    double step_f = 0.0, step_b = 0.0, step_flop = 0.0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const struct shape *s = &shapes[i];
        size_t nx = (size_t)ROWS * s->C, no = (size_t)ROWS * s->OC, nw = (size_t)s->OC * s->C;
        struct bufs b;
        memset(&b, 0, sizeof b);
        b.in16 = dev(nx * 2, BACKEND_MEM_ACTIVATIONS);
        b.w16 = dev(nw * 2, BACKEND_MEM_WEIGHTS);
        b.b16 = dev((size_t)s->OC * 2, BACKEND_MEM_WEIGHTS);
        b.b32 = dev((size_t)s->OC * 4, BACKEND_MEM_WEIGHTS);
        b.out16 = dev(no * 2, BACKEND_MEM_ACTIVATIONS);
        b.pre16 = dev(no * 2, BACKEND_MEM_ACTIVATIONS);
        b.out32 = dev(no * 4, BACKEND_MEM_ACTIVATIONS);
        b.res = dev(no * 4, BACKEND_MEM_ACTIVATIONS);
        b.dout = dev(no * 4, BACKEND_MEM_GRADIENTS);
        b.dinp = dev(nx * 4, BACKEND_MEM_GRADIENTS);
        b.dw = dev(nw * 4, BACKEND_MEM_GRADIENTS);
        b.db = dev((size_t)s->OC * 4, BACKEND_MEM_GRADIENTS);
        b.scratch = dev(be->matmul_bf16_scratch_bytes(ROWS), BACKEND_MEM_WORKSPACE);
        be->memset(b.dw, 0, nw * 4);
        be->memset(b.db, 0, (size_t)s->OC * 4);
        double tf = timed(forward, s, &b);
        be->memset(b.out16, 0x3c, no * 2); /* the head's backward reads its logit gradient */
        double tb = timed(backward, s, &b);
        double fl = 2.0 * ROWS * (double)s->C * s->OC;
        printf("matmul %-8s %dx%dx%d: forward %.3f ms (%.0f TFLOP/s), backward %.3f ms (%.0f "
               "TFLOP/s)\n",
               s->name, ROWS, s->C, s->OC, 1e3 * tf, fl / tf / 1e12, 1e3 * tb,
               2.0 * fl / tb / 1e12);
        char what[64];
        snprintf(what, sizeof what, "%s outputs finite", s->name);
        CHECK_MSG(finite_f32(b.dinp, nx) && finite_f32(b.dw, nw) &&
                      (s->kind != MM_RESIDUAL || finite_f32(b.out32, no)),
                  "%s", what);
        if (gemm_algo)
            survey(s, &b);
        step_f += s->per_step * tf;
        step_b += s->per_step * tb;
        step_flop += s->per_step * 3.0 * fl;
        void *all[] = {b.in16, b.w16, b.b16, b.b32, b.out16, b.pre16, b.out32,
                       b.res,  b.dout, b.dinp, b.dw, b.db, b.scratch};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            be->free(all[k]);
    }
    printf("matmul per step (12 layers + head, %d rows): forward %.2f ms, backward %.2f ms, "
           "%.0f TFLOP/s overall\n",
           ROWS, 1e3 * step_f, 1e3 * step_b, step_flop / (step_f + step_b) / 1e12);
    if (!gemm_algo)
        return;
    /* What SCALEWISE_CUDA_GEMM_ALGO=k would make of a step's matmuls: every GEMM at index k. */
    char line[256] = "";
    size_t n = 0;
    int best = 0;
    for (int i = 0; i < survey_offered; i++) {
        n += (size_t)snprintf(line + n, sizeof line - n, "%s#%d %.2f", i ? ", " : "", i,
                              1e3 * survey_step[i]);
        if (survey_step[i] < survey_step[best])
            best = i;
    }
    printf("matmul algorithm per step (every GEMM at index k, forward + backward ms): %s; best "
           "#%d (%.2fx #0)\n",
           line, best, survey_step[0] > 0 ? survey_step[best] / survey_step[0] : 1.0);
}

int main(void)
{
    struct sw_err err;
    sw_err_init(&err);
    const char *rows = getenv("SW_BENCH_MATMUL_ROWS");
    if (rows && sw_parse_int(rows, 1, 1 << 20, "SW_BENCH_MATMUL_ROWS", &ROWS, &err) < 0) {
        fprintf(stderr, "bench_matmul: %s\n", err.msg);
        return 2;
    }
    be = backend_cuda_load(&err);
    if (!be) {
        CHECK_INT(err.code, SW_EUNSUPPORTED); /* a plugin that does not load is a failure */
        printf("bench_matmul: skipped: no GPU (%s)\n", err.msg);
        printf("bench_matmul: %d passed, %d failed, 1 skipped\n", harness_passed,
               harness_failed);
        return harness_failed ? 1 : 0;
    }
    if (!be->matmul_a16_forward || !be->matmul_16_backward_a16 || !be->matmul_gelu_forward_a16 ||
        !be->matmul_a16_backward_d16) {
        printf("bench_matmul: skipped: the plugin has no bf16-activation matmuls "
               "(SCALEWISE_CUDA_ACT16=0 or SCALEWISE_CUDA_FUSED_GELU=0)\n");
        printf("bench_matmul: %d passed, %d failed, 1 skipped\n", harness_passed,
               harness_failed);
        return 0;
    }
    const char *sv = getenv("SW_BENCH_MATMUL_SURVEY");
    if (!sv || strcmp(sv, "0") != 0) {
        void *sym = backend_cuda_symbol("scalewise_cuda_gemm_algo");
        memcpy(&gemm_algo, &sym, sizeof gemm_algo); /* object pointer to function, POSIX */
    }
    RUN(bench);
    return harness_finish("bench_matmul");
}
