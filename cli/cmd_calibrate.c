/* `scalewise calibrate`: measures this machine with the executor's own kernels and writes the
 * speed model's efficiencies (docs/calibrate.md). It probes the machine (hw_probe: the FMA-loop
 * peak and the triad, which the advisor divides by), times backend_cpu()'s fp32 GEMM at
 * tokens x 768 x 3072 for tokens 16..1024 (2 warm-ups, best of 5, time-bounded; --quick: 16..256,
 * 1 warm-up, best of 3), the bf16 GEMM where the CPU has native bf16, forward + backward at the
 * largest size, a 1-token GEMM over weights larger than the last-level cache (decode), and the
 * cost of one tiny call issued back to back (a 1 x 64 x 64 matmul, a 64-element add), and
 * flash attention forward + backward.
 * With a GPU and the CUDA plugin it also times the plugin's bf16 GEMM, a device-to-device
 * copy, the plugin's 1-token bf16 GEMM over 128 MiB of weights, the same calls, the training
 * path's attention and its GEMMs at tokens x 768 x 3072. The derivation and the file format are the advisor's (advisor/calibrate.c); this file
 * runs the kernels, prints, and saves. */
#include "cli/cli_int.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/backend.h"

#define GEMM_C 768
#define GEMM_OC 3072
#define DECODE_C 4096
#define MIB (1024.0 * 1024.0)

static const int k_tokens_full[] = {16, 64, 256, 1024};
static const int k_tokens_quick[] = {16, 64, 256};

struct cal_opts {
    enum sw_fmt fmt;
    const char *save;
    bool quick;
    int threads; /* 0 = OpenMP's default (all usable cores) */
};

/* Repetition policy: `warmups` untimed calls, then at least `min_reps` and at most `reps` timed
 * ones, stopping early once `budget_s` has passed (the VM is noisy: best of k, with the spread;
 * on a contended machine one call can take half a second, hence the budget). */
struct rep_policy {
    int warmups, min_reps, reps;
    double budget_s;
};

enum bench_op {
    OP_FWD_FP32,
    OP_FWD_BF16,
    OP_TRAIN_FP32,
    OP_TRAIN_BF16,
    OP_ADAMW,
    OP_DECODE,
    OP_D2D,
    OP_CALLS_MM, /* `calls` 1 x 64 x 64 matmuls back to back (decode_bf16: the bf16 entry) */
    OP_CALLS_K,  /* `calls` 64-element residual adds back to back */
    OP_ATTN,     /* flash attention forward + backward (struct attn_bufs) */
    OP_TRAIN_A16 /* bf16-activation training GEMMs: forward, input and weight gradients */
};

/* Flash attention's buffers and shape (B, T, NH heads of HS, MHA): kind 2 the bf16-activation
 * entries (q16, o16, with scratch), 1 the 16-bit plans' (fp32 qkv, bf16 products), 0 fp32. */
struct attn_bufs {
    int kind, B, T, NH, HS;
    float *qkv, *out, *lse, *dout, *dqkv;
    uint16_t *q16, *o16;
    void *scratch;
    size_t scratch_bytes;
};

/* Buffers of one backend and the shape of the call to time. */
struct bench {
    const struct backend *b;
    enum bench_op op;
    int n, c, oc;
    float *in, *out, *dinp, *w, *dw;
    uint16_t *wb;
    void *scratch;
    void *src, *dst;             /* OP_D2D */
    float *param, *grad, *m, *v; /* OP_ADAMW: n_elems each */
    size_t n_elems;
    size_t copy_bytes;
    bool decode_bf16;
    int calls;              /* OP_CALLS_* */
    struct attn_bufs *attn; /* OP_ATTN */
    uint16_t *in16;         /* OP_TRAIN_A16: the bf16 input */
};

#define CALL_DIM 64

static void bench_call(const struct bench *x)
{
    const struct backend *b = x->b;
    switch (x->op) {
    case OP_FWD_FP32:
        b->matmul_forward(x->out, x->in, x->w, NULL, x->n, x->c, x->oc);
        break;
    case OP_FWD_BF16:
        b->matmul_bf16_forward(x->out, x->in, x->wb, NULL, x->n, x->c, x->oc, x->scratch);
        break;
    case OP_TRAIN_FP32: /* forward, then input and weight gradients (executor fp32 path) */
        b->matmul_forward(x->out, x->in, x->w, NULL, x->n, x->c, x->oc);
        b->matmul_backward(x->dinp, x->dw, NULL, x->out, x->in, x->w, x->n, x->c, x->oc);
        break;
    case OP_TRAIN_BF16: /* bf16-mixed: bf16 forward and gradients (the executor's mm_backward:
                           the weight gradient in fp32 where the backend has no bf16 one) */
        b->matmul_bf16_forward(x->out, x->in, x->wb, NULL, x->n, x->c, x->oc, x->scratch);
        b->matmul_bf16_backward_input(x->dinp, x->out, x->wb, x->n, x->c, x->oc, x->scratch);
        if (b->matmul_bf16_backward_weight)
            b->matmul_bf16_backward_weight(x->dw, NULL, x->out, x->in, x->n, x->c, x->oc,
                                           x->scratch);
        else
            b->matmul_backward(NULL, x->dw, NULL, x->out, x->in, x->w, x->n, x->c, x->oc);
        break;
    case OP_ADAMW: /* the executor's fp32 AdamW (lr 1e-3, betas 0.9/0.95, wd 0.1) */
        b->adamw_step(x->param, x->grad, x->m, x->v, x->n_elems, 1, 1e-3f, 0.9f, 0.95f, 1e-8f,
                      0.1f);
        break;
    case OP_DECODE:
        if (x->decode_bf16)
            b->matmul_bf16_forward(x->out, x->in, x->wb, NULL, 1, x->c, x->oc, x->scratch);
        else
            b->matmul_forward(x->out, x->in, x->w, NULL, 1, x->c, x->oc);
        break;
    case OP_D2D:
        b->memcpy(x->dst, x->src, x->copy_bytes, BACKEND_D2D);
        break;
    case OP_CALLS_MM:
        for (int i = 0; i < x->calls; i++) {
            if (x->decode_bf16)
                b->matmul_bf16_forward(x->out, x->in, x->wb, NULL, 1, CALL_DIM, CALL_DIM,
                                       x->scratch);
            else
                b->matmul_forward(x->out, x->in, x->w, NULL, 1, CALL_DIM, CALL_DIM);
        }
        break;
    case OP_CALLS_K:
        for (int i = 0; i < x->calls; i++)
            b->residual_forward(x->out, x->in, x->in, CALL_DIM);
        break;
    case OP_ATTN: {
        const struct attn_bufs *a = x->attn;
        int B = a->B, T = a->T, NH = a->NH, HS = a->HS;
        if (a->kind == 2) {
            b->flash_attention_forward_a16(a->o16, a->lse, a->q16, B, T, NH, NH, HS);
            b->flash_attention_backward_a16(a->dqkv, a->dout, a->q16, a->o16, a->lse, a->scratch,
                                            a->scratch_bytes, B, T, NH, NH, HS);
        } else if (a->kind == 1) {
            b->flash_attention_forward_16(a->out, a->lse, a->qkv, B, T, NH, NH, HS);
            b->flash_attention_backward_16(a->dqkv, a->dout, a->qkv, a->out, a->lse, B, T, NH, NH,
                                           HS);
        } else {
            b->flash_attention_forward(a->out, a->lse, a->qkv, B, T, NH, NH, HS);
            b->flash_attention_backward(a->dqkv, a->dout, a->qkv, a->out, a->lse, B, T, NH, NH,
                                        HS);
        }
        break;
    }
    case OP_TRAIN_A16:
        b->matmul_a16_forward(x->out, false, x->in16, x->wb, NULL, NULL, x->n, x->c, x->oc);
        b->matmul_16_backward_a16(x->dinp, x->dw, NULL, x->out, NULL, x->in16, x->wb, NULL, x->n,
                                  x->c, x->oc, x->scratch);
        break;
    }
}

/* Fastest and slowest time of the timed calls (synchronised after each). */
static struct calib_gemm time_op(const struct bench *x, const struct rep_policy *p, double work)
{
    for (int i = 0; i < p->warmups; i++)
        bench_call(x);
    x->b->synchronize();
    double best = 0, worst = 0, start = sw_now_s();
    int reps = 0;
    while (reps < p->reps) {
        double t0 = sw_now_s();
        bench_call(x);
        x->b->synchronize();
        double dt = sw_now_s() - t0;
        if (reps == 0 || dt < best)
            best = dt;
        if (dt > worst)
            worst = dt;
        reps++;
        if (reps >= p->min_reps && sw_now_s() - start > p->budget_s)
            break;
    }
    struct calib_gemm g = {x->n, 0.0, 0.0, reps};
    if (best > 0) {
        g.flops_per_s = work / best;
        g.spread = (worst - best) / best;
    }
    return g;
}

/* The time of one tiny backend call issued back to back (a matmul and another kernel: see
 * OP_CALLS_*), from x's buffers (in, out: >= CALL_DIM floats; w or wb: >= CALL_DIM^2; scratch):
 * the fastest batch of `calls` over the policy's repetitions, divided by `calls`. */
static void time_calls(const struct bench *x, const struct rep_policy *p, int calls,
                       double *matmul_s, double *kernel_s)
{
    struct bench c = *x;
    c.calls = calls;
    c.op = OP_CALLS_MM;
    struct calib_gemm m = time_op(&c, p, (double)calls); /* "flops_per_s": calls per second */
    c.op = OP_CALLS_K;
    struct calib_gemm k = time_op(&c, p, (double)calls);
    *matmul_s = m.flops_per_s > 0 ? 1.0 / m.flops_per_s : 0.0;
    *kernel_s = k.flops_per_s > 0 ? 1.0 / k.flops_per_s : 0.0;
}

static void fill_pattern(float *p, size_t n, int salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((int)((i * 7 + (size_t)salt) % 13) - 6) * 0.01f;
}

/* ------------------------------------------------------------------ CPU */

/* Weights for the 1-token GEMM: 4x the last-level cache (STREAM's rule, so the read comes from
 * memory), 64..256 MiB; --quick 2x, 32..64 MiB; within a quarter of usable memory. */
static size_t decode_bytes(const struct hardware *hw, bool quick)
{
    const struct hw_cpu *c = &hw->cpu;
    double llc = c->l3_bytes ? (double)c->l3_bytes * (c->sockets > 0 ? c->sockets : 1)
                             : (c->l2_bytes ? (double)c->l2_bytes : 32.0 * MIB);
    double lo = quick ? 32.0 * MIB : 64.0 * MIB, hi = quick ? 64.0 * MIB : 256.0 * MIB;
    double bytes = (quick ? 2.0 : 4.0) * llc;
    bytes = bytes < lo ? lo : (bytes > hi ? hi : bytes);
    if (hw->mem.usable_bytes > 0 && bytes > hw->mem.usable_bytes / 4.0)
        bytes = hw->mem.usable_bytes / 4.0;
    return (size_t)bytes;
}

static void *take(const struct backend *b, size_t bytes, enum backend_mem cat, int *rc,
                  struct sw_err *err)
{
    if (*rc < 0)
        return NULL;
    void *p = b->alloc(bytes, cat, err);
    if (!p)
        *rc = err->code ? err->code : SW_ENOMEM;
    return p;
}

/* The backend's flash attention, forward + backward, at B x T with NH heads of 64 (kind: see
 * struct attn_bufs), in FLOP/s counted as the speed model counts attention: 4·B·T²·NH·64
 * forward (the full score matrix) and twice that backward. Inputs are the 0x3c byte pattern
 * (about 0.0115 in fp32 and bf16: finite, uniform softmax). A zero rate when a buffer could not
 * be allocated (err says why). */
static struct calib_gemm time_attention(const struct backend *b, int kind, int B, int T, int NH,
                                        const struct rep_policy *p, struct sw_err *err)
{
    struct attn_bufs a = {.kind = kind, .B = B, .T = T, .NH = NH, .HS = 64};
    size_t nq = (size_t)B * T * 3 * NH * 64, no = (size_t)B * T * NH * 64, nl = (size_t)B * NH * T;
    int rc = 0;
    struct calib_gemm g = {T, 0.0, 0.0, 0};
    if (kind == 2) {
        a.q16 = take(b, nq * 2, BACKEND_MEM_ACTIVATIONS, &rc, err);
        a.o16 = take(b, no * 2, BACKEND_MEM_ACTIVATIONS, &rc, err);
        a.scratch_bytes = no * 2 + nl * 4; /* dO in bf16 and D (backend.h) */
        a.scratch = take(b, a.scratch_bytes, BACKEND_MEM_WORKSPACE, &rc, err);
    } else {
        a.qkv = take(b, nq * 4, BACKEND_MEM_ACTIVATIONS, &rc, err);
        a.out = take(b, no * 4, BACKEND_MEM_ACTIVATIONS, &rc, err);
    }
    a.lse = take(b, nl * 4, BACKEND_MEM_ACTIVATIONS, &rc, err);
    a.dout = take(b, no * 4, BACKEND_MEM_ACTIVATIONS, &rc, err);
    a.dqkv = take(b, nq * 4, BACKEND_MEM_GRADIENTS, &rc, err);
    if (rc == 0) {
        if (kind == 2)
            b->memset(a.q16, 0x3c, nq * 2);
        else
            b->memset(a.qkv, 0x3c, nq * 4);
        b->memset(a.dout, 0x3c, no * 4);
        b->memset(a.dqkv, 0, nq * 4);
        struct bench x = {.b = b, .op = OP_ATTN, .attn = &a};
        g = time_op(&x, p, 12.0 * B * (double)T * T * NH * 64);
        g.tokens = T;
    }
    b->free(a.q16);
    b->free(a.o16);
    b->free(a.scratch);
    b->free(a.qkv);
    b->free(a.out);
    b->free(a.lse);
    b->free(a.dout);
    b->free(a.dqkv);
    return g;
}

static int measure_cpu(const struct hardware *hw, const struct cal_opts *o, struct calib_cpu *c,
                       struct sw_err *err)
{
    const struct backend *b = backend_cpu();
    const int *tokens = o->quick ? k_tokens_quick : k_tokens_full;
    int n_shapes = o->quick ? 3 : 4;
    int n_max = tokens[n_shapes - 1];
    struct rep_policy pol =
        o->quick ? (struct rep_policy){1, 2, 3, 0.08} : (struct rep_policy){2, 3, 5, 0.6};
    bool bf16 = b->has_native_bf16();
    size_t wn = (size_t)GEMM_C * GEMM_OC;
    int rc = 0;

    struct bench x = {.b = b, .c = GEMM_C, .oc = GEMM_OC};
    x.w = take(b, wn * sizeof(float), BACKEND_MEM_WEIGHTS, &rc, err);
    x.dw = take(b, wn * sizeof(float), BACKEND_MEM_GRADIENTS, &rc, err);
    x.wb = take(b, wn * sizeof(uint16_t), BACKEND_MEM_WEIGHTS, &rc, err);
    x.in = take(b, (size_t)n_max * GEMM_C * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, err);
    x.dinp = take(b, (size_t)n_max * GEMM_C * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, err);
    x.out = take(b, (size_t)n_max * GEMM_OC * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, err);
    x.scratch = take(b, b->matmul_bf16_scratch_bytes(n_max), BACKEND_MEM_WORKSPACE, &rc, err);
    struct bench d = {.b = b, .op = OP_DECODE, .n = 1, .c = DECODE_C, .decode_bf16 = bf16};
    size_t dbytes = decode_bytes(hw, o->quick);
    size_t esz = bf16 ? sizeof(uint16_t) : sizeof(float);
    d.oc = (int)(dbytes / ((size_t)DECODE_C * esz));
    if (d.oc < 1)
        d.oc = 1;
    size_t dn = (size_t)DECODE_C * d.oc;
    if (bf16)
        d.wb = take(b, dn * esz, BACKEND_MEM_WEIGHTS, &rc, err);
    else
        d.w = take(b, dn * esz, BACKEND_MEM_WEIGHTS, &rc, err);
    d.in = take(b, DECODE_C * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, err);
    d.out = take(b, (size_t)d.oc * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, err);
    d.scratch = take(b, b->matmul_bf16_scratch_bytes(1), BACKEND_MEM_WORKSPACE, &rc, err);
    /* AdamW state of the same total size as the decode weights: 4 fp32 arrays. */
    struct bench a = {.b = b, .op = OP_ADAMW, .n_elems = dbytes / (4 * sizeof(float))};
    a.param = take(b, a.n_elems * sizeof(float), BACKEND_MEM_WEIGHTS, &rc, err);
    a.grad = take(b, a.n_elems * sizeof(float), BACKEND_MEM_GRADIENTS, &rc, err);
    a.m = take(b, a.n_elems * sizeof(float), BACKEND_MEM_OPTIMIZER, &rc, err);
    a.v = take(b, a.n_elems * sizeof(float), BACKEND_MEM_OPTIMIZER, &rc, err);
    if (rc < 0)
        goto out;
    fill_pattern(a.param, a.n_elems, 5);
    fill_pattern(a.grad, a.n_elems, 6);
    memset(a.m, 0, a.n_elems * sizeof(float));
    memset(a.v, 0, a.n_elems * sizeof(float));

    fill_pattern(x.w, wn, 1);
    fill_pattern(x.in, (size_t)n_max * GEMM_C, 2);
    memset(x.dw, 0, wn * sizeof(float));
    memset(x.dinp, 0, (size_t)n_max * GEMM_C * sizeof(float));
    b->f32_to_bf16(x.wb, x.w, wn);
    fill_pattern(d.in, DECODE_C, 3);
    /* Decode weights: a pattern written through the same page-touching path a model load takes. */
    if (bf16) {
        for (size_t i = 0; i < dn; i++)
            d.wb[i] = (uint16_t)(0x3c00u + (i % 97)); /* about 0.008..0.015 */
    } else {
        fill_pattern(d.w, dn, 4);
    }

    c->dtype = bf16 ? HW_DT_BF16 : HW_DT_FP32;
    c->gemm_c = GEMM_C;
    c->gemm_oc = GEMM_OC;
    for (int i = 0; i < n_shapes; i++) {
        x.n = tokens[i];
        double work = 2.0 * x.n * GEMM_C * GEMM_OC; /* FLOP of one forward GEMM */
        x.op = OP_FWD_FP32;
        c->fp32[c->n_fp32++] = time_op(&x, &pol, work);
        if (bf16) {
            x.op = OP_FWD_BF16;
            c->bf16[c->n_bf16++] = time_op(&x, &pol, work);
        }
    }
    x.n = n_max;
    x.op = bf16 ? OP_TRAIN_BF16 : OP_TRAIN_FP32;
    c->train = time_op(&x, &pol, 6.0 * n_max * GEMM_C * GEMM_OC);
    struct rep_policy dpol = pol;
    dpol.reps = o->quick ? 4 : 8;
    double wbytes = (double)dn * esz;
    struct calib_gemm dg = time_op(&d, &dpol, wbytes);
    /* 28 B per parameter, as speed.c counts an fp32 AdamW step: master and both moments read
     * and written (8 + 16), the gradient read (4). */
    struct calib_gemm ag = time_op(&a, &dpol, 28.0 * (double)a.n_elems);
    c->optim_state_bytes = 16.0 * (double)a.n_elems;
    c->optim_bytes_per_s = ag.flops_per_s;
    c->optim_spread = ag.spread;
    c->decode_weight_bytes = wbytes;
    c->decode_bytes_per_s = dg.flops_per_s; /* `work` was bytes: a rate in bytes/s */
    c->decode_spread = dg.spread;
    x.decode_bf16 = bf16;
    time_calls(&x, &pol, o->quick ? 100 : 400, &c->call_matmul_s, &c->call_kernel_s);
    /* Training attention: the executor's fp32 flash kernels (the CPU computes attention in
     * fp32 under every precision). */
    c->attn = time_attention(b, 0, 1, o->quick ? 128 : 256, 4, &pol, err);
    if (c->attn.flops_per_s <= 0)
        rc = err->code ? err->code : SW_ENOMEM;
out:
    b->free(x.w);
    b->free(x.dw);
    b->free(x.wb);
    b->free(x.in);
    b->free(x.dinp);
    b->free(x.out);
    b->free(x.scratch);
    b->free(d.w);
    b->free(d.wb);
    b->free(d.in);
    b->free(d.out);
    b->free(d.scratch);
    b->free(a.param);
    b->free(a.grad);
    b->free(a.m);
    b->free(a.v);
    return rc;
}

/* ------------------------------------------------------------------ GPU */

/* The plugin's bf16 GEMM (N x N x N) and a device-to-device copy; fills `note` with why it was
 * skipped, or leaves g->present false with the reason when the peak is unknown.
 * SW_CALIBRATE_GPU_TINY=1 (tests only: tests/cli/cuda_emu_e2e.sh runs this path on the CPU
 * emulation of the plugin) shrinks every size to a few KiB; the figures then mean nothing. */
static void measure_gpu(const struct hardware *hw, const struct cal_opts *o, struct calib_gpu *g,
                        char *note, size_t note_n)
{
    const char *tiny_env = getenv("SW_CALIBRATE_GPU_TINY");
    const bool tiny = tiny_env && strcmp(tiny_env, "1") == 0;
    struct sw_err err;
    sw_err_init(&err);
    const struct backend *b = backend_cuda_load(&err);
    if (!b) {
        snprintf(note, note_n, "gpu: skipped: %.400s", err.msg[0] ? err.msg : "no CUDA plugin");
        return;
    }
    if (!b->matmul_bf16_forward || !b->memcpy || !b->memset || !b->synchronize) {
        snprintf(note, note_n, "gpu: skipped: the CUDA plugin lacks the bf16 GEMM or memcpy");
        return;
    }
    int n = tiny ? 256 : o->quick ? 4096 : 8192;
    size_t nn = (size_t)n * n;
    size_t copy = tiny ? (size_t)1 << 20 : o->quick ? (size_t)256 << 20 : (size_t)1 << 30;
    int rc = 0;
    struct bench x = {.b = b, .op = OP_FWD_BF16, .n = n, .c = n, .oc = n};
    x.in = take(b, nn * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, &err);
    x.out = take(b, nn * sizeof(float), BACKEND_MEM_ACTIVATIONS, &rc, &err);
    x.wb = take(b, nn * sizeof(uint16_t), BACKEND_MEM_WEIGHTS, &rc, &err);
    size_t sb = b->matmul_bf16_scratch_bytes ? b->matmul_bf16_scratch_bytes(n) : 0;
    if (sb)
        x.scratch = take(b, sb, BACKEND_MEM_WORKSPACE, &rc, &err);
    struct bench y = {.b = b, .op = OP_D2D, .n = 0, .copy_bytes = copy};
    y.src = take(b, copy, BACKEND_MEM_WORKSPACE, &rc, &err);
    y.dst = take(b, copy, BACKEND_MEM_WORKSPACE, &rc, &err);
    /* Decode: the 1-token bf16 GEMM over 128 MiB of weights (8192 x 8192, above any GPU's L2),
     * reading the GEMM's input and output buffers (n >= 4096: n^2 floats >= 8192). */
    const int dn = tiny ? 256 : 8192;
    const size_t dnn = (size_t)dn * dn;
    struct bench z = {.b = b, .op = OP_DECODE, .n = 1, .c = dn, .oc = dn, .decode_bf16 = true};
    z.in = x.in;
    z.out = x.out;
    z.scratch = x.scratch;
    z.wb = take(b, dnn * sizeof(uint16_t), BACKEND_MEM_WEIGHTS, &rc, &err);
    if (rc < 0) {
        snprintf(note, note_n, "gpu: skipped: %.400s", err.msg);
        goto out;
    }
    /* 0x3c bytes: fp32 about 0.0115, bf16 0x3c3c about 0.0115: finite, no denormals. */
    b->memset(x.in, 0x3c, nn * sizeof(float));
    b->memset(x.wb, 0x3c, nn * sizeof(uint16_t));
    b->memset(y.src, 0x3c, copy);
    b->memset(z.wb, 0x3c, dnn * sizeof(uint16_t));
    struct rep_policy pol =
        o->quick ? (struct rep_policy){1, 2, 3, 0.2} : (struct rep_policy){3, 3, 10, 1.0};
    g->gemm = time_op(&x, &pol, 2.0 * (double)n * n * n);
    struct calib_gemm cg = time_op(&y, &pol, 2.0 * (double)copy); /* read + write */
    g->d2d_bytes = (double)copy;
    g->d2d_bytes_per_s = cg.flops_per_s;
    g->d2d_spread = cg.spread;
    struct calib_gemm dg = time_op(&z, &pol, 2.0 * (double)dnn); /* bytes of weights */
    g->decode_weight_bytes = 2.0 * (double)dnn;
    g->decode_bytes_per_s = dg.flops_per_s;
    g->decode_spread = dg.spread;
    x.decode_bf16 = true;
    time_calls(&x, &pol, 256, &g->call_matmul_s, &g->call_kernel_s);
    /* The training path's attention (bf16 activations where the plugin has them) at GPT-2's
     * shape, and its GEMMs at tokens x 768 x 3072 (the CPU's shape). */
    int akind = b->flash_attention_forward_a16 && b->flash_attention_backward_a16 ? 2
                : b->flash_attention_forward_16 && b->flash_attention_backward_16   ? 1
                                                                                    : 0;
    g->attn = tiny ? time_attention(b, akind, 1, 128, 2, &pol, &err)
                   : time_attention(b, akind, 4, 1024, 12, &pol, &err);
    if (b->matmul_a16_forward && b->matmul_16_backward_a16) {
        const int tn = tiny ? 64 : o->quick ? 4096 : 8192, tc = tiny ? 64 : 768;
        const int toc = tiny ? 256 : 3072;
        struct bench t = {.b = b, .op = OP_TRAIN_A16, .n = tn, .c = tc, .oc = toc, .wb = x.wb,
                          .out = x.out, .scratch = NULL};
        int trc = 0;
        t.in16 = take(b, (size_t)tn * tc * 2, BACKEND_MEM_ACTIVATIONS, &trc, &err);
        t.dinp = take(b, (size_t)tn * tc * 4, BACKEND_MEM_GRADIENTS, &trc, &err);
        t.dw = take(b, (size_t)toc * tc * 4, BACKEND_MEM_GRADIENTS, &trc, &err);
        t.scratch = take(b, b->matmul_bf16_scratch_bytes(tn), BACKEND_MEM_WORKSPACE, &trc, &err);
        if (trc == 0) { /* out (n^2 >= tn x toc floats) and wb (>= toc x tc) are x's */
            b->memset(t.in16, 0x3c, (size_t)tn * tc * 2);
            b->memset(t.dw, 0, (size_t)toc * tc * 4);
            g->train = time_op(&t, &pol, 6.0 * tn * (double)tc * toc);
        }
        b->free(t.in16);
        b->free(t.dinp);
        b->free(t.dw);
        b->free(t.scratch);
    }
    if (hw->n_gpus > 0) {
        sw_strlcpy(g->name, hw->gpus[0].name, sizeof(g->name));
        g->peak_bf16_flops = hw->gpus[0].peak_flops[HW_DT_BF16];
        g->mem_bw_bytes_per_s = hw->gpus[0].mem_bw_bytes_per_s;
    }
    if (calib_derive_gpu(g, &err) < 0)
        snprintf(note, note_n, "gpu: measured, but no efficiencies: %.400s", err.msg);
    else
        g->present = true;
out:
    b->free(x.in);
    b->free(x.out);
    b->free(x.wb);
    b->free(x.scratch);
    b->free(y.src);
    b->free(y.dst);
    b->free(z.wb);
}

/* ------------------------------------------------------------------ output */

static void print_text(const struct calib_file *f, const struct hardware *hw, const char *note)
{
    const struct calib_cpu *c = &f->cpu;
    printf("machine: %s (%s family %d model %d), %d cores, %d threads, host %s%s\n",
           f->cpu_model[0] ? f->cpu_model : "unknown CPU", f->cpu_vendor, f->cpu_family,
           f->cpu_model_id, f->cores, f->threads, f->host, f->quick ? " (quick)" : "");
    printf("probe: FMA-loop peak %.1f GFLOP/s fp32, %.1f GFLOP/s bf16; triad %.1f GB/s\n",
           c->peak_fp32_flops / 1e9, c->peak_bf16_flops / 1e9, c->triad_bytes_per_s / 1e9);
    printf("\nexecutor GEMMs (tokens x %d x %d, fastest of %s; spread = (slowest - fastest) / "
           "fastest):\n",
           c->gemm_c, c->gemm_oc, f->quick ? "2-3 after 1 warm-up" : "3-5 after 2 warm-ups");
    printf("  %8s  %14s %7s", "tokens", "fp32 GFLOP/s", "spread");
    if (c->n_bf16 > 0)
        printf("  %14s %7s", "bf16 GFLOP/s", "spread");
    printf("\n");
    for (int i = 0; i < c->n_fp32; i++) {
        printf("  %8d  %14.1f %6.0f%%", c->fp32[i].tokens, c->fp32[i].flops_per_s / 1e9,
               100.0 * c->fp32[i].spread);
        if (i < c->n_bf16)
            printf("  %14.1f %6.0f%%", c->bf16[i].flops_per_s / 1e9, 100.0 * c->bf16[i].spread);
        printf("\n");
    }
    if (c->n_bf16 == 0)
        printf("  (no bf16 column: this CPU has no native bf16)\n");
    printf("  train (forward + backward, %s, %d tokens): %.1f GFLOP/s, spread %.0f%%\n",
           hw_dtype_name(c->dtype), c->train.tokens, c->train.flops_per_s / 1e9,
           100.0 * c->train.spread);
    printf("  optimizer (fp32 AdamW step, %.0f MiB of state, 28 B/param): %.2f GB/s, spread "
           "%.0f%%\n",
           c->optim_state_bytes / MIB, c->optim_bytes_per_s / 1e9, 100.0 * c->optim_spread);
    printf("  decode (1 token, %s weights %.0f MiB): %.2f GB/s, spread %.0f%%\n",
           hw_dtype_name(c->dtype), c->decode_weight_bytes / MIB, c->decode_bytes_per_s / 1e9,
           100.0 * c->decode_spread);
    printf("  calls (back to back): 1 x %d x %d matmul %.2f us, residual add %.2f us\n", CALL_DIM,
           CALL_DIM, 1e6 * c->call_matmul_s, 1e6 * c->call_kernel_s);
    printf("  attention (flash, fp32, forward + backward, 1 x %d tokens, 4 heads of 64): %.1f "
           "GFLOP/s (full-score count), spread %.0f%%\n",
           c->attn.tokens, c->attn.flops_per_s / 1e9, 100.0 * c->attn.spread);
    double peak = c->dtype == HW_DT_BF16 ? c->peak_bf16_flops : c->peak_fp32_flops;
    const struct calib_gemm *top =
        c->dtype == HW_DT_BF16 ? &c->bf16[c->n_bf16 - 1] : &c->fp32[c->n_fp32 - 1];
    printf("\ncpu efficiencies (%s matmuls; the speed model's [cal] constants):\n",
           hw_dtype_name(c->dtype));
    printf("  eta_flops_train    %.3f  = train %.1f / %s peak %.1f GFLOP/s\n", c->eta_flops_train,
           c->train.flops_per_s / 1e9, hw_dtype_name(c->dtype), peak / 1e9);
    printf("  eta_flops_prefill  %.3f  = forward at %d tokens %.1f / %.1f GFLOP/s\n",
           c->eta_flops_prefill, top->tokens, top->flops_per_s / 1e9, peak / 1e9);
    printf("  eta_mem            %.3f  = AdamW step %.2f / triad %.2f GB/s\n", c->eta_mem,
           c->optim_bytes_per_s / 1e9, c->triad_bytes_per_s / 1e9);
    printf("  eta_mem_decode     %.3f  = 1-token GEMM %.2f / triad %.2f GB/s (decode's weight "
           "reads)\n",
           c->eta_mem_decode, c->decode_bytes_per_s / 1e9, c->triad_bytes_per_s / 1e9);
    printf("  m_sat_tokens       %.0f  (falloff fit: the speed model's small-GEMM M_sat, in place "
           "of its built-in 64)\n",
           c->m_sat_tokens);
    if (f->gpu.present) {
        const struct calib_gpu *g = &f->gpu;
        printf("\ngpu %s: bf16 GEMM %d^3 %.1f TFLOP/s (spread %.0f%%), d2d copy %.0f GB/s "
               "(spread %.0f%%)\n",
               g->name, g->gemm.tokens, g->gemm.flops_per_s / 1e12, 100.0 * g->gemm.spread,
               g->d2d_bytes_per_s / 1e9, 100.0 * g->d2d_spread);
        printf("  decode (1 token, bf16 weights %.0f MiB): %.0f GB/s (spread %.0f%%); calls back to "
               "back: 1 x %d x %d matmul %.2f us, residual add %.2f us\n",
               g->decode_weight_bytes / MIB, g->decode_bytes_per_s / 1e9,
               100.0 * g->decode_spread, CALL_DIM, CALL_DIM, 1e6 * g->call_matmul_s,
               1e6 * g->call_kernel_s);
        printf("  attention (flash, forward + backward, 4 x %d tokens, 12 heads of 64): %.1f "
               "TFLOP/s (full-score count); training GEMMs (%d x 768 x 3072, bf16 activations): "
               "%.1f TFLOP/s\n",
               g->attn.tokens, g->attn.flops_per_s / 1e12, g->train.tokens,
               g->train.flops_per_s / 1e12);
        printf("  eta_flops_train = eta_flops_prefill %.3f (of %.1f TFLOP/s), eta_mem %.3f, "
               "eta_mem_decode %.3f (of %.0f GB/s)\n",
               g->eta_flops_train, g->peak_bf16_flops / 1e12, g->eta_mem, g->eta_mem_decode,
               g->mem_bw_bytes_per_s / 1e9);
    }
    if (note[0])
        printf("%s\n", note);
    (void)hw;
}

/* ------------------------------------------------------------------ flags, main */

static int parse_flags(int argc, char **argv, struct cal_opts *o)
{
    static const char *const names[] = {"--save",    "--format", "--quick",
                                        "--threads", "--help",   NULL};
    for (int i = 0; i < argc; i++) {
        char name[32];
        const char *eq;
        if (argv[i][0] != '-')
            return cli_usage_error("calibrate", "unexpected argument '%s'", argv[i]);
        int k = cli_flag_find("calibrate", argv[i], names, name, sizeof(name), &eq);
        if (k < 0)
            return CLI_EXIT_USAGE;
        if (k == 2) {
            if (eq)
                return cli_usage_error("calibrate", "--quick takes no value");
            o->quick = true;
            continue;
        }
        const char *v = cli_flag_value(argc, argv, &i, eq);
        if (!v || !*v)
            return cli_usage_error("calibrate", "%s needs a value", name);
        struct sw_err err;
        sw_err_init(&err);
        if (k == 0)
            o->save = v;
        else if (k == 1 && sw_fmt_parse(v, &o->fmt, &err) < 0)
            return cli_usage_error("calibrate", "--format: %s", err.msg);
        else if (k == 3 && sw_parse_int(v, 0, 1 << 16, "value", &o->threads, &err) < 0)
            return cli_usage_error("calibrate", "--threads: %s", err.msg);
    }
    return 0;
}

/* Refuse an unwritable --save before measuring, not after (exit 1, as a failed write). */
static int check_save_dir(const char *path)
{
    char dir[PLAN_PATH_MAX];
    if (sw_strlcpy(dir, path, sizeof(dir)) >= sizeof(dir))
        return cli_usage_error("calibrate", "--save: path too long");
    char *slash = strrchr(dir, '/');
    if (!slash)
        sw_strlcpy(dir, ".", sizeof(dir));
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK) != 0) {
        fprintf(stderr,
                "scalewise calibrate: cannot write '%s': folder '%s' is missing or "
                "not writable\n",
                path, dir);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* The probe's FMA loop on all threads against one thread: well under linear scaling means the
 * cores are shared (a busy machine, or vCPUs on one host core), and every rate measured now
 * understates the machine (hardware-and-distributed.md 2.4). */
static void contention_warning(const struct hardware *hw, int threads, char *buf, size_t n)
{
    const struct hw_cpu *c = &hw->cpu;
    int t = threads < c->usable_cpus ? threads : c->usable_cpus;
    if (!(c->known & HW_CPU_MEASURED) || t < 2 || c->measured_fp32_flops_1core <= 0)
        return;
    double scale = c->measured_fp32_flops / c->measured_fp32_flops_1core;
    if (scale < 0.75 * t)
        snprintf(buf, n,
                 "warning: the cores look contended (FMA loop %.0f GFLOP/s on all %d threads, "
                 "%.0f on one): the figures understate this machine; rerun when it is idle",
                 c->measured_fp32_flops / 1e9, c->usable_cpus, c->measured_fp32_flops_1core / 1e9);
}

static void fill_identity(struct calib_file *f, const struct hardware *hw, bool quick)
{
    const struct hw_cpu *c = &hw->cpu;
    if (gethostname(f->host, sizeof(f->host)) != 0)
        f->host[0] = '\0';
    f->host[sizeof(f->host) - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(f->date, sizeof(f->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    sw_strlcpy(f->cpu_model, c->model, sizeof(f->cpu_model));
    sw_strlcpy(f->cpu_vendor, c->vendor, sizeof(f->cpu_vendor));
    f->cpu_family = c->family;
    f->cpu_model_id = c->model_id;
    f->cores = (c->known & HW_CPU_TOPOLOGY) ? c->sockets * c->cores_per_socket : c->usable_cpus;
    f->threads = omp_get_max_threads();
    f->quick = quick;
}

int cli_calibrate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_usage("calibrate");
        return CLI_EXIT_OK;
    }
    struct cal_opts o = {SW_FMT_TEXT, NULL, false, 0};
    int code = parse_flags(argc, argv, &o);
    if (code)
        return code;
    if (o.threads > 0)
        omp_set_num_threads(o.threads);
    if (o.save && (code = check_save_dir(o.save)) != 0)
        return code;
    struct sw_err err;
    sw_err_init(&err);
    struct hardware *hw = sw_xmalloc(sizeof(*hw));
    struct hardware *cpu_hw = sw_xmalloc(sizeof(*cpu_hw));
    struct calib_file *f = sw_xmalloc(sizeof(*f));
    char note[SW_ERR_MSG_MAX + 32] = "", warn[256] = "";
    calib_init(f);
    if (hw_probe(hw, true, &err) < 0) {
        code = cli_report("calibrate", &err);
        goto out;
    }
    /* The CPU as the advisor sees a CPU-only node: its peak and bandwidth (hw_device_*). */
    *cpu_hw = *hw;
    cpu_hw->n_gpus = 0;
    fill_identity(f, hw, o.quick);
    struct calib_cpu *c = &f->cpu;
    c->peak_fp32_flops = hw_device_peak_flops(cpu_hw, HW_DT_FP32);
    c->peak_bf16_flops = hw_device_peak_flops(cpu_hw, HW_DT_BF16);
    c->triad_bytes_per_s = hw_device_mem_bw(cpu_hw);
    if (measure_cpu(hw, &o, c, &err) < 0) {
        code = cli_report("calibrate", &err);
        goto out;
    }
    if (calib_derive_cpu(c, &err) < 0) {
        fprintf(stderr, "scalewise calibrate: %s\n", err.msg);
        code = CLI_EXIT_FAIL;
        goto out;
    }
    c->present = true;
    contention_warning(hw, f->threads, warn, sizeof(warn));
    measure_gpu(hw, &o, &f->gpu, note, sizeof(note));
    if (o.fmt == SW_FMT_TEXT) {
        print_text(f, hw, note);
        if (warn[0])
            printf("%s\n", warn);
    } else {
        struct sw_emit e;
        sw_emit_init(&e, stdout, o.fmt);
        calib_emit(&e, NULL, f);
        sw_emit_finish(&e);
        if (note[0])
            fprintf(stderr, "%s\n", note);
        if (warn[0])
            fprintf(stderr, "%s\n", warn);
    }
    if (o.save) {
        if (calib_save_file(o.save, f, &err) < 0) {
            code = cli_report("calibrate", &err);
            goto out;
        }
        fprintf(o.fmt == SW_FMT_TEXT ? stdout : stderr,
                "%swrote %s (use it with --calibration %s)\n", o.fmt == SW_FMT_TEXT ? "\n" : "",
                o.save, o.save);
    }
out:
    free(f);
    free(cpu_hw);
    free(hw);
    return code;
}
