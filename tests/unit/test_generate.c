/* Tests of generation (executor/generate.c): the random generator, the sampling kernels
 * against naive references (argmax, top-k, top-p), seeded determinism, the frequencies of a
 * seeded sampler against the softmax (10^5 draws, 5-sigma bounds), and generation on a tiny
 * random model: ragged batches equal single prompts, EOS stops a row, the KV-cache path equals
 * re-running the full forward, int8 agrees with fp32; loading HF-layout weights (the PyTorch
 * fixture's logits), and a whole `task: infer` plan with its report. */
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "advisor/advisor.h"
#include "executor/executor.h"

/* A call that must succeed for the test to go on: counted like CHECK_OK, and on failure (as
 * under SW_FAIL_ALLOC_AT fault injection) the test returns instead of using what it lacks. */
#define TRY(call, errp)                                                                            \
    do {                                                                                           \
        int try_rc_ = (call);                                                                      \
        CHECK_OK(try_rc_, errp);                                                                   \
        if (try_rc_ < 0)                                                                           \
            return;                                                                                \
    } while (0)

#define FIXTURE "tests/data/reference/tiny_gpt2.safetensors"
#define FIXTURE_LLAMA "tests/data/reference/tiny_llama.safetensors"

static struct gen_rng test_rng;

static double urand(double lo, double hi)
{
    return lo + (hi - lo) * gen_rng_uniform(&test_rng);
}

/* ---------------------------------------------------------------- rng */

static void test_rng_streams(void)
{
    struct gen_rng a, b, c;
    gen_rng_seed(&a, 42, 0);
    gen_rng_seed(&b, 42, 0);
    gen_rng_seed(&c, 42, 1);
    int same_ab = 0, same_ac = 0;
    double mn = 1, mx = 0, sum = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = gen_rng_next(&a), y = gen_rng_next(&b), z = gen_rng_next(&c);
        same_ab += x == y;
        same_ac += x == z;
        double u = gen_rng_uniform(&a);
        gen_rng_uniform(&b);
        mn = u < mn ? u : mn;
        mx = u > mx ? u : mx;
        sum += u;
    }
    CHECK_INT(same_ab, 1000);
    CHECK_INT(same_ac, 0);
    CHECK(mn >= 0 && mx < 1);
    /* Mean of 1000 U(0,1): sd 0.0091; 5 sd. */
    CHECK_NEAR(sum / 1000, 0.5, 0.046);
}

/* ---------------------------------------------------------------- kernels */

static void test_greedy(void)
{
    enum { V = 50 };
    float logits[V];
    struct gen_sampler greedy, k1, cold;
    struct gen_sampling s;
    struct sw_err err;
    gen_sampling_init(&s);
    s.temperature = 0;
    TRY(gen_sampler_init(&greedy, &s, V, &err), &err);
    gen_sampling_init(&s);
    s.top_k = 1;
    TRY(gen_sampler_init(&k1, &s, V, &err), &err);
    gen_sampling_init(&s);
    s.temperature = 1e-6;
    TRY(gen_sampler_init(&cold, &s, V, &err), &err);
    struct gen_rng rng;
    gen_rng_seed(&rng, 5, 0);
    int agree_greedy = 0, agree_k1 = 0, agree_cold = 0;
    for (int row = 0; row < 200; row++) {
        /* Distinct values at least 0.01 apart (a shuffled ramp plus small noise), so the
         * argmax is unique and T = 1e-6 leaves exp(-1e4) = 0 for every other id. */
        int perm[V];
        for (int i = 0; i < V; i++)
            perm[i] = i;
        for (int i = V - 1; i > 0; i--) {
            int j = (int)(gen_rng_next(&test_rng) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        int want = 0;
        for (int i = 0; i < V; i++) {
            logits[i] = (float)(perm[i] * 0.02 - 0.5 + urand(0, 0.005));
            if (logits[i] > logits[want])
                want = i;
        }
        CHECK_INT(gen_argmax(logits, V), want);
        agree_greedy += gen_sample(&greedy, logits, &rng) == want;
        agree_k1 += gen_sample(&k1, logits, &rng) == want;
        agree_cold += gen_sample(&cold, logits, &rng) == want;
    }
    CHECK_INT(agree_greedy, 200);
    CHECK_INT(agree_k1, 200);
    CHECK_INT(agree_cold, 200);
    /* Ties go to the lowest id. */
    for (int i = 0; i < V; i++)
        logits[i] = (i == 7 || i == 30) ? 2.0f : 0.0f;
    CHECK_INT(gen_argmax(logits, V), 7);
    CHECK_INT(gen_sample(&greedy, logits, &rng), 7);
    /* NaN is never chosen, wherever it stands; a row of NaN gives 0 (kcpu_argmax_rows, the
     * rule the devices' argmax follows). */
    logits[0] = NAN;
    logits[31] = NAN;
    CHECK_INT(gen_argmax(logits, V), 7);
    for (int i = 0; i < V; i++)
        logits[i] = NAN;
    CHECK_INT(gen_argmax(logits, V), 0);
    gen_sampler_release(&greedy);
    gen_sampler_release(&k1);
    gen_sampler_release(&cold);
}

static void test_softmax(void)
{
    float logits[5] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f}, p[5];
    gen_softmax(p, logits, 5, 0.5);
    double z = 0;
    for (int i = 0; i < 5; i++)
        z += exp((logits[i] - 3.0) / 0.5);
    double maxd = 0;
    for (int i = 0; i < 5; i++)
        maxd = fmax(maxd, fabs(p[i] - exp((logits[i] - 3.0) / 0.5) / z));
    printf("  softmax(T=0.5) vs double reference: max |diff| %.3g\n", maxd);
    CHECK(maxd < 1e-6);
}

/* Naive top-k: k passes of "largest not yet taken, lowest id on ties". */
static void naive_top(const float *p, int V, int k, int *out)
{
    char taken[512] = {0};
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < V; i++)
            if (!taken[i] && (best < 0 || p[i] > p[best]))
                best = i;
        taken[best] = 1;
        out[j] = best;
    }
}

static void test_top_k(void)
{
    enum { V = 300 };
    float p[V];
    int idx[V], want[V];
    int bad = 0;
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++)
            p[i] = (float)(floor(urand(0, 40)) / 40.0); /* many ties */
        int k = trial == 0 ? V + 5 : 1 + (int)(gen_rng_next(&test_rng) % 60);
        int n = gen_top_k(p, V, k, idx);
        int kk = k > V ? V : k;
        CHECK_INT(n, kk);
        naive_top(p, V, kk, want);
        for (int j = 0; j < kk; j++)
            bad += idx[j] != want[j];
    }
    CHECK_INT(bad, 0);
    CHECK_INT(gen_top_k(p, V, 0, idx), V);
}

static void test_top_p(void)
{
    float p[4] = {0.15f, 0.5f, 0.05f, 0.3f};
    int idx[4];
    CHECK_INT(gen_top_k(p, 4, 0, idx), 4);
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 0 && idx[3] == 2);
    /* The smallest set whose mass reaches p: {0.5} for p <= 0.5, {0.5, 0.3} up to 0.8, ... */
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.3), 1);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.5), 1);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.51), 2);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.75), 2);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.81), 3);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 0.96), 4);
    CHECK_INT(gen_top_p(p, idx, 4, 1.0, 1.0), 4);
    /* Relative to the given total (after top-k keeps 0.5 and 0.3: 0.6 of 0.8 is the first). */
    CHECK_INT(gen_top_p(p, idx, 2, 0.8, 0.6), 1);
    CHECK_INT(gen_top_p(p, idx, 2, 0.8, 0.7), 2);

    /* Through the sampler: with p = 0.75 only ids 1 and 3 are ever drawn, in ratio 5:3. */
    float logits[4];
    for (int i = 0; i < 4; i++)
        logits[i] = logf(p[i]);
    struct gen_sampling s;
    gen_sampling_init(&s);
    s.top_p = 0.75;
    struct gen_sampler smp;
    struct sw_err err;
    TRY(gen_sampler_init(&smp, &s, 4, &err), &err);
    struct gen_rng rng;
    gen_rng_seed(&rng, 11, 0);
    int cnt[4] = {0};
    for (int i = 0; i < 20000; i++)
        cnt[gen_sample(&smp, logits, &rng)]++;
    CHECK(cnt[0] == 0 && cnt[2] == 0);
    /* 0.625 of 20000: sd 68; 5 sd = 342. */
    CHECK_NEAR(cnt[1], 0.625 * 20000, 342);
    gen_sampler_release(&smp);
}

static void test_seed_determinism(void)
{
    enum { V = 256, N = 32 };
    float flat[V] = {0};
    struct gen_sampling s;
    gen_sampling_init(&s);
    struct gen_sampler smp;
    struct sw_err err;
    TRY(gen_sampler_init(&smp, &s, V, &err), &err);
    int a[N], b[N], c[N];
    struct gen_rng r;
    gen_rng_seed(&r, 7, 0);
    for (int i = 0; i < N; i++)
        a[i] = gen_sample(&smp, flat, &r);
    gen_rng_seed(&r, 7, 0);
    for (int i = 0; i < N; i++)
        b[i] = gen_sample(&smp, flat, &r);
    gen_rng_seed(&r, 8, 0);
    for (int i = 0; i < N; i++)
        c[i] = gen_sample(&smp, flat, &r);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == c[i];
    /* 32 draws from 256 ids: about 0.125 coincidences expected. */
    CHECK_MSG(same < 4, "%d of %d draws equal across seeds", same, N);
    gen_sampler_release(&smp);
}

/* Draw n times and compare each id's frequency with want[] within 5 standard errors
 * (sqrt(p(1-p)/n)) plus 1e-9; ids with want 0 must never be drawn. */
static void check_freqs(const char *what, const float *logits, int V, const struct gen_sampling *s,
                        const double *want, int n)
{
    struct gen_sampler smp;
    struct sw_err err;
    TRY(gen_sampler_init(&smp, s, V, &err), &err);
    struct gen_rng r;
    gen_rng_seed(&r, s->seed, 0);
    int *cnt = calloc((size_t)V, sizeof(int));
    for (int i = 0; i < n; i++)
        cnt[gen_sample(&smp, logits, &r)]++;
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)cnt[i] / n, se = sqrt(want[i] * (1 - want[i]) / n);
        double z = se > 0 ? fabs(f - want[i]) / se : (cnt[i] ? INFINITY : 0);
        worst = fmax(worst, z);
        bad += z > 5;
    }
    printf("  %-26s %d draws: worst |freq - p| = %.2f standard errors\n", what, n, worst);
    CHECK_MSG(bad == 0, "%s: %d ids off by more than 5 standard errors", what, bad);
    free(cnt);
    gen_sampler_release(&smp);
}

static void test_frequencies(void)
{
    enum { V = 6 };
    float logits[V] = {0.3f, -1.2f, 1.5f, 0.9f, -0.4f, 1.1f};
    struct gen_sampling s;
    double want[200];
    /* Plain softmax at T = 0.8. */
    gen_sampling_init(&s);
    s.temperature = 0.8;
    s.seed = 99;
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp(logits[i] / 0.8);
    for (int i = 0; i < V; i++)
        want[i] = exp(logits[i] / 0.8) / z;
    check_freqs("softmax T=0.8", logits, V, &s, want, 100000);
    /* Top-3 at T = 1: ids 2, 5, 3 renormalised. */
    gen_sampling_init(&s);
    s.top_k = 3;
    z = exp(1.5) + exp(1.1) + exp(0.9);
    for (int i = 0; i < V; i++)
        want[i] = (i == 2 || i == 5 || i == 3) ? exp(logits[i]) / z : 0;
    check_freqs("top-k 3", logits, V, &s, want, 100000);
    /* Top-p 0.65 at T = 1: softmax mass of 2 is 0.365, of 5 0.245 (0.61 < 0.65), of 3 0.200:
     * the nucleus is {2, 5, 3}, the same as top-3. */
    gen_sampling_init(&s);
    s.top_p = 0.65;
    check_freqs("top-p 0.65", logits, V, &s, want, 100000);
    /* Nucleus without top-k on a larger, peaked vocabulary (the threshold-halving path):
     * reference from a full sort. */
    enum { V2 = 200 };
    float l2[V2];
    for (int i = 0; i < V2; i++)
        l2[i] = (float)urand(-4, 4);
    gen_sampling_init(&s);
    s.top_p = 0.9;
    s.temperature = 0.7;
    float p2[V2];
    int idx[V2];
    gen_softmax(p2, l2, V2, 0.7);
    naive_top(p2, V2, V2, idx);
    double cum = 0;
    int m = 0;
    while (m < V2 && cum < 0.9)
        cum += p2[idx[m++]];
    for (int i = 0; i < V2; i++)
        want[i] = 0;
    for (int j = 0; j < m; j++)
        want[idx[j]] = p2[idx[j]] / cum;
    check_freqs("top-p 0.9 over 200 ids", l2, V2, &s, want, 20000);
    /* Settings out of range. */
    struct sw_err err;
    gen_sampling_init(&s);
    s.top_p = 0;
    CHECK(gen_sampling_check(&s, &err) == SW_EINVAL);
    s.top_p = 1;
    s.temperature = -1;
    CHECK(gen_sampling_check(&s, &err) == SW_EINVAL);
}

/* ---------------------------------------------------------------- generation */

enum { TV = 97, MAXPOS = 40 };

static struct model_desc tiny(enum model_arch arch)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-%s", model_arch_name(arch));
    d.arch = arch;
    d.n_layers = 2;
    d.hidden = 32;
    d.n_heads = 4;
    d.n_kv_heads = arch == MODEL_ARCH_LLAMA ? 2 : 4;
    d.head_dim = 8;
    d.ffn = arch == MODEL_ARCH_LLAMA ? 64 : 128;
    d.vocab = TV;
    d.max_pos = MAXPOS;
    model_fill_defaults(&d);
    return d;
}

/* A model with deterministic weights moved well away from the N(0, 0.02) init (matrices
 * ± 0.3, norm weights 1 ± 0.2), so logits are spread and greedy choices are not near-ties. */
static int tiny_model(struct exec_model *m, enum model_arch arch, int kv_batch, int seq, bool int8)
{
    struct model_desc d = tiny(arch);
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.training = false;
    o.batch = 1;
    o.seq = seq;
    o.kv_batch = kv_batch;
    o.kv_seq = MAXPOS;
    o.int8_weights = int8;
    struct sw_err err;
    int rc = exec_model_init(m, &d, &o, backend_cpu(), &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return rc;
    exec_model_init_weights(m, 3);
    struct gen_rng r;
    gen_rng_seed(&r, 1234, 9);
    for (int i = 0; i < m->n_tensors; i++) {
        struct exec_tensor *t = &m->tensors[i];
        bool bias = strstr(t->name, ".bias") != NULL;
        for (size_t k = 0; k < t->numel; k++) {
            double u = gen_rng_uniform(&r) * 2 - 1;
            if (t->ndim == 1 && !bias)
                t->data[k] = (float)(1.0 + 0.2 * u);
            else
                t->data[k] += (float)((bias ? 0.1 : 0.3) * u);
        }
    }
    exec_model_weights_changed(m);
    return 0;
}

static void make_prompts(int B, const int *lens, int *buf, const int **ptrs, uint64_t seed)
{
    struct gen_rng r;
    gen_rng_seed(&r, seed, 0);
    int off = 0;
    for (int b = 0; b < B; b++) {
        ptrs[b] = buf + off;
        for (int i = 0; i < lens[b]; i++)
            buf[off + i] = (int)(gen_rng_next(&r) % TV);
        off += lens[b];
    }
}

/* Whether models a and b generate the same tokens for the B prompts under o (false, with the
 * error checked, when either fails). */
static bool same_generation(struct exec_model *a, struct exec_model *b, const int **ptrs,
                            const int *lens, int B, const struct gen_opts *o)
{
    struct gen_result ra, rb;
    struct sw_err err;
    int rc1 = exec_generate(a, ptrs, lens, B, o, &ra, &err);
    CHECK_OK(rc1, &err);
    int rc2 = exec_generate(b, ptrs, lens, B, o, &rb, &err);
    CHECK_OK(rc2, &err);
    bool same = rc1 == 0 && rc2 == 0 && ra.tokens && rb.tokens &&
                memcmp(ra.tokens, rb.tokens, (size_t)B * o->max_new_tokens * sizeof(int)) == 0;
    gen_result_release(&ra);
    gen_result_release(&rb);
    return same;
}

static void test_ragged_batch(void)
{
    for (int a = 0; a < 2; a++) {
        enum model_arch arch = a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2;
        struct exec_model m;
        if (tiny_model(&m, arch, 3, 1, false) < 0)
            return;
        int lens[3] = {3, 9, 5}, buf[32];
        const int *ptrs[3];
        make_prompts(3, lens, buf, ptrs, 17);
        struct gen_opts o;
        gen_opts_init(&o);
        o.sampling.temperature = 0;
        o.max_new_tokens = 12;
        struct gen_result all, one;
        struct sw_err err;
        TRY(exec_generate(&m, ptrs, lens, 3, &o, &all, &err), &err);
        CHECK_INT(all.prefill_tokens, 9);
        CHECK_INT(all.forced_tokens, (9 - 3) + (5 - 3));
        CHECK_INT(all.decode_steps, 9 + 12 - 1 - 3);
        int mismatches = 0;
        for (int b = 0; b < 3; b++) {
            TRY(exec_generate(&m, &ptrs[b], &lens[b], 1, &o, &one, &err), &err);
            CHECK_INT(all.n_new[b], 12);
            CHECK_INT(one.n_new[0], 12);
            for (int i = 0; i < 12; i++)
                mismatches += all.tokens[b * 12 + i] != one.tokens[i];
            gen_result_release(&one);
        }
        printf("  %-6s ragged batch (3, 9, 5) vs one at a time: %d of 36 greedy tokens differ\n",
               model_arch_name(arch), mismatches);
        CHECK_INT(mismatches, 0);
        /* Sampled: the same seed gives the same tokens; rows with the same prompt draw from
         * different streams. */
        o.sampling.temperature = 1.0;
        o.sampling.top_k = 40;
        int lens2[2] = {lens[0], lens[0]};
        const int *same[2] = {ptrs[0], ptrs[0]};
        struct gen_result s1, s2;
        TRY(exec_generate(&m, same, lens2, 2, &o, &s1, &err), &err);
        TRY(exec_generate(&m, same, lens2, 2, &o, &s2, &err), &err);
        CHECK(memcmp(s1.tokens, s2.tokens, 2 * 12 * sizeof(int)) == 0);
        CHECK(memcmp(s1.tokens, s1.tokens + 12, 12 * sizeof(int)) != 0);
        gen_result_release(&s1);
        gen_result_release(&s2);
        gen_result_release(&all);
        exec_model_release(&m);
    }
}

/* Greedy generation on a device backend (the simulator) takes the argmax where the logits are
 * (exec_model_argmax) and copies no logits: the same tokens as on the CPU, a ragged batch. */
static void test_device_greedy(void)
{
    for (int a = 0; a < 2; a++) {
        enum model_arch arch = a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2;
        struct exec_model mc, md;
        if (tiny_model(&mc, arch, 3, 1, false) < 0)
            return;
        struct sw_err err;
        int rc = exec_model_init(&md, &mc.desc, &mc.opts, backend_devsim(), &err);
        CHECK_OK(rc, &err);
        if (rc < 0) {
            exec_model_release(&mc);
            return;
        }
        for (int i = 0; i < mc.n_tensors; i++)
            exec_model_write_weights(&md, mc.tensors[i].region_off, mc.tensors[i].data,
                                     mc.tensors[i].numel);
        exec_model_weights_changed(&md);
        int lens[3] = {4, 7, 4}, buf[32];
        const int *ptrs[3];
        make_prompts(3, lens, buf, ptrs, 29);
        struct gen_opts o;
        gen_opts_init(&o);
        o.sampling.temperature = 0;
        o.max_new_tokens = 10;
        bool same = same_generation(&mc, &md, ptrs, lens, 3, &o);
        CHECK(same);
        /* The model copies logits to the host again afterwards. */
        const float *lg = NULL;
        TRY(exec_model_prefill(&md, ptrs[0], 1, lens[0], &lg, &err), &err);
        CHECK(lg != NULL);
        int am = -1;
        TRY(exec_model_argmax(&md, &am, &err), &err);
        CHECK_INT(am, gen_argmax(lg, md.V));
        printf("  %-6s device greedy (argmax on the simulator) = CPU greedy: %s\n",
               model_arch_name(arch), same ? "yes" : "NO");
        exec_model_release(&md);
        exec_model_release(&mc);
    }
}

static void test_eos(void)
{
    struct exec_model m;
    if (tiny_model(&m, MODEL_ARCH_GPT2, 2, 1, false) < 0)
        return;
    int lens[2] = {4, 6}, buf[16];
    const int *ptrs[2];
    make_prompts(2, lens, buf, ptrs, 23);
    struct gen_opts o;
    gen_opts_init(&o);
    o.sampling.temperature = 0;
    o.max_new_tokens = 10;
    struct gen_result free_run, r;
    struct sw_err err;
    TRY(exec_generate(&m, ptrs, lens, 2, &o, &free_run, &err), &err);
    /* Make row 0's 4th token the EOS id. */
    int eos = free_run.tokens[3];
    o.eos_id = eos;
    TRY(exec_generate(&m, ptrs, lens, 2, &o, &r, &err), &err);
    for (int b = 0; b < 2; b++) {
        int first = 10;
        for (int i = 0; i < 10; i++)
            if (free_run.tokens[b * 10 + i] == eos) {
                first = i;
                break;
            }
        int want_n = first < 10 ? first + 1 : 10;
        CHECK_INT(r.n_new[b], want_n);
        CHECK_INT(r.stopped_eos[b], first < 10);
        CHECK(memcmp(r.tokens + b * 10, free_run.tokens + b * 10, (size_t)want_n * sizeof(int)) ==
              0);
    }
    CHECK(r.n_new[0] <= 4);
    gen_result_release(&free_run);
    gen_result_release(&r);

    /* Errors: a cache too short, a bad id, an empty prompt. Nothing is returned. */
    o.eos_id = -1;
    o.max_new_tokens = MAXPOS;
    CHECK(exec_generate(&m, ptrs, lens, 2, &o, &r, &err) == SW_EINVAL);
    CHECK(strstr(err.msg, "KV cache") != NULL);
    o.max_new_tokens = 4;
    int badp[2] = {5, TV};
    const int *bp = badp;
    int two = 2, zero = 0;
    CHECK(exec_generate(&m, &bp, &two, 1, &o, &r, &err) == SW_EINVAL);
    CHECK(exec_generate(&m, &bp, &zero, 1, &o, &r, &err) == SW_EINVAL);
    CHECK(exec_generate(&m, ptrs, lens, 3, &o, &r, &err) == SW_EINVAL);
    CHECK(r.tokens == NULL);
    exec_model_release(&m);
}

/* Greedy tokens through the KV cache equal greedy tokens from a full forward over the whole
 * sequence at every step (no cache). */
static void test_kv_vs_full(void)
{
    for (int a = 0; a < 2; a++) {
        enum model_arch arch = a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2;
        struct exec_model m;
        if (tiny_model(&m, arch, 1, MAXPOS, false) < 0)
            return;
        enum { P = 6, NEW = 20 };
        int lens[1] = {P}, seq[P + NEW];
        const int *ptrs[1];
        make_prompts(1, lens, seq, ptrs, 31);
        struct gen_opts o;
        gen_opts_init(&o);
        o.sampling.temperature = 0;
        o.max_new_tokens = NEW;
        struct gen_result r;
        struct sw_err err;
        TRY(exec_generate(&m, ptrs, lens, 1, &o, &r, &err), &err);
        int differ = 0;
        for (int t = P; t < P + NEW; t++) {
            CHECK_OK(exec_model_forward(&m, seq, NULL, 1, t, NULL, &err), &err);
            const float *lg = exec_model_logits(&m) + (size_t)(t - 1) * m.Vp;
            seq[t] = gen_argmax(lg, m.V);
            differ += seq[t] != r.tokens[t - P];
        }
        printf("  %-6s KV-cache vs full-forward greedy: %d of %d tokens differ\n",
               model_arch_name(arch), differ, NEW);
        CHECK_INT(differ, 0);
        gen_result_release(&r);
        exec_model_release(&m);
    }
}

/* int8 weight-only generation: it runs to length, and under teacher forcing on the fp32
 * greedy continuation its top-1 prediction agrees with fp32's at >= 90% of positions
 * (measured: see the printed figure). */
static void test_int8(void)
{
    enum { B = 4, P = 5, NEW = 20 };
    struct exec_model m32, m8;
    if (tiny_model(&m32, MODEL_ARCH_GPT2, B, 1, false) < 0)
        return;
    if (tiny_model(&m8, MODEL_ARCH_GPT2, B, P + NEW, true) < 0) {
        exec_model_release(&m32);
        return;
    }
    int lens[B] = {P, P, P, P}, buf[B * P];
    const int *ptrs[B];
    make_prompts(B, lens, buf, ptrs, 41);
    struct gen_opts o;
    gen_opts_init(&o);
    o.sampling.temperature = 0;
    o.max_new_tokens = NEW;
    struct gen_result r32, r8;
    struct sw_err err;
    TRY(exec_generate(&m32, ptrs, lens, B, &o, &r32, &err), &err);
    TRY(exec_generate(&m8, ptrs, lens, B, &o, &r8, &err), &err);
    int agree = 0, total = 0, same_free = 0;
    for (int b = 0; b < B; b++) {
        CHECK_INT(r8.n_new[b], NEW);
        int seq[P + NEW];
        memcpy(seq, ptrs[b], P * sizeof(int));
        memcpy(seq + P, r32.tokens + b * NEW, NEW * sizeof(int));
        CHECK_OK(exec_model_forward(&m8, seq, NULL, 1, P + NEW - 1, NULL, &err), &err);
        const float *lg = exec_model_logits(&m8);
        for (int t = P - 1; t < P + NEW - 1; t++) {
            agree += gen_argmax(lg + (size_t)t * m8.Vp, m8.V) == seq[t + 1];
            total++;
        }
        for (int i = 0; i < NEW; i++)
            same_free += r8.tokens[b * NEW + i] == r32.tokens[b * NEW + i];
    }
    printf("  int8 vs fp32: teacher-forced top-1 agreement %d/%d, free-running same tokens "
           "%d/%d\n",
           agree, total, same_free, B * NEW);
    CHECK_MSG(agree >= 0.9 * total, "int8 top-1 agreement %d of %d", agree, total);
    gen_result_release(&r32);
    gen_result_release(&r8);
    exec_model_release(&m32);
    exec_model_release(&m8);
}

/* ---------------------------------------------------------------- loading */

static void test_load_fixture(void)
{
    static const char *const files[2] = {FIXTURE, FIXTURE_LLAMA};
    for (int f = 0; f < 2; f++) {
        struct model_desc d;
        struct sw_err err;
        CHECK_OK(gen_model_desc_from_checkpoint(files[f], &d, NULL, &err), &err);
        CHECK_INT(d.arch, f ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2);
        struct exec_model_opts o;
        exec_model_opts_init(&o);
        o.training = false;
        o.batch = 2;
        o.seq = 16;
        struct exec_model m;
        int rc = exec_model_init(&m, &d, &o, backend_cpu(), &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            return;
        CHECK_OK(exec_checkpoint_load(files[f], &m, NULL, NULL, NULL, NULL, &err), &err);
        struct sft_file *sf = NULL;
        CHECK_OK(sft_open(files[f], &sf, &err), &err);
        int tokens[32];
        const struct sft_tensor *tt = sft_find(sf, "inputs.tokens");
        CHECK(tt != NULL);
        if (tt)
            CHECK_OK(sft_read_raw(sf, tt, tokens, sizeof(tokens), &err), &err);
        CHECK_OK(exec_model_forward(&m, tokens, NULL, 2, 16, NULL, &err), &err);
        /* Compare the V real columns of each row with the PyTorch logits (2, 16, V). */
        float *got = malloc((size_t)32 * m.V * sizeof(float));
        for (int r = 0; r < 32; r++)
            memcpy(got + (size_t)r * m.V, exec_model_logits(&m) + (size_t)r * m.Vp,
                   (size_t)m.V * sizeof(float));
        struct sft_diff diff;
        CHECK_OK(sft_compare_f32(sf, "out.logits", got, (size_t)32 * m.V, 1e-4, 1e-4, &diff, &err),
                 &err);
        printf("  %-6s fixture logits, shape from metadata: max |diff| %.3g (max |ref| %.3g)\n",
               model_arch_name(d.arch), diff.max_abs, diff.max_ref);
        CHECK_INT(diff.n_bad, 0);
        free(got);
        sft_close(sf);
        exec_model_release(&m);
    }
    struct model_desc d;
    struct sw_err err;
    CHECK(gen_model_desc_from_checkpoint("tests/data/no-such.safetensors", &d, NULL, &err) ==
          SW_ENOENT);
    CHECK(strstr(err.file, "no-such.safetensors") != NULL);
    /* A model whose shape does not match the file: the error names both shapes. */
    struct model_desc wrong = tiny(MODEL_ARCH_GPT2);
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.training = false;
    o.seq = 16;
    struct exec_model m;
    CHECK_OK(exec_model_init(&m, &wrong, &o, backend_cpu(), &err), &err);
    CHECK(exec_checkpoint_load(FIXTURE, &m, NULL, NULL, NULL, NULL, &err) < 0);
    CHECK(strstr(err.msg, "wte.weight") != NULL);
    exec_model_release(&m);
}

/* A scalewise checkpoint written by checkpoint.c gives back the model's shape (LoRA included)
 * and, loaded into a model built from that shape, the same greedy tokens. */
static void test_checkpoint_roundtrip(void)
{
    for (int a = 0; a < 2; a++) {
        enum model_arch arch = a ? MODEL_ARCH_LLAMA : MODEL_ARCH_GPT2;
        struct exec_model m;
        if (tiny_model(&m, arch, 2, 1, false) < 0)
            return;
        char path[96];
        snprintf(path, sizeof(path), "/tmp/sw-test-generate-%d.safetensors", (int)getpid());
        struct exec_ckpt_meta meta;
        exec_ckpt_meta_init(&meta);
        struct sw_err err;
        CHECK_OK(exec_checkpoint_save(path, &m, NULL, &meta, &err), &err);
        struct model_desc d;
        struct exec_model_opts o;
        exec_model_opts_init(&o);
        CHECK_OK(gen_model_desc_from_checkpoint(path, &d, &o, &err), &err);
        CHECK(d.arch == arch && d.n_layers == 2 && d.hidden == 32 && d.n_heads == 4 &&
              d.n_kv_heads == m.NKV && d.head_dim == 8 && d.ffn == m.F && d.vocab == TV &&
              d.max_pos == MAXPOS && d.tied_head == m.desc.tied_head && d.bias == m.desc.bias &&
              d.rms_norm == m.desc.rms_norm && d.swiglu == m.desc.swiglu);
        CHECK_INT(o.lora_rank, 0);
        o.training = false;
        o.kv_batch = 2;
        o.kv_seq = MAXPOS;
        o.seq = 1;
        struct exec_model m2;
        int rc = exec_model_init(&m2, &d, &o, backend_cpu(), &err);
        CHECK_OK(rc, &err);
        if (rc == 0) {
            CHECK_OK(exec_checkpoint_load(path, &m2, NULL, NULL, NULL, NULL, &err), &err);
            int lens[2] = {4, 7}, buf[16];
            const int *ptrs[2];
            make_prompts(2, lens, buf, ptrs, 5);
            struct gen_opts go;
            gen_opts_init(&go);
            go.sampling.top_k = 10;
            go.max_new_tokens = 10;
            CHECK(same_generation(&m, &m2, ptrs, lens, 2, &go));
        }
        exec_model_release(&m2);
        exec_model_release(&m);
        unlink(path);
    }
}

/* ---------------------------------------------------------------- task: infer */

static void test_run_infer(void)
{
    static const char plan_fmt[] = "scalewise_plan: 1\n"
                                   "task: infer\n"
                                   "hardware: {profile: cpu-avx2-2c}\n"
                                   "model: {profile: tiny-gpt2}\n"
                                   "data: {tokenizer: byte}\n"
                                   "infer:\n"
                                   "  checkpoint: " FIXTURE "\n"
                                   "  prompt: %s\n"
                                   "  batch: 2\n"
                                   "  prompt_len: 5\n"
                                   "  gen_len: 8\n"
                                   "  temperature: 0\n"
                                   "strategy: {device: cpu, weights: %s}\n";
    static const char *const weights[3] = {"fp32", "int8", "bf16"};
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/sw-test-generate-%d", (int)getpid());
    for (int w = 0; w < 4; w++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), plan_fmt, w == 3 ? "''" : "Hello", weights[w % 3]);
        struct plan p;
        plan_init(&p);
        struct sw_err err;
        int rc = plan_load_string(yaml, strlen(yaml), "infer.yaml", &p, &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            return;
        struct exec_infer_result res;
        FILE *out = tmpfile();
        rc = exec_run_infer(&p, dir, out, &res, &err);
        CHECK_OK(rc, &err);
        if (rc < 0) {
            fclose(out);
            return;
        }
        char text[4096] = {0};
        rewind(out);
        size_t n = fread(text, 1, sizeof(text) - 1, out);
        text[n] = '\0';
        fclose(out);
        CHECK_INT(res.batch, 2);
        CHECK_INT(res.prompt_tokens, 5);
        CHECK(res.gen.n_new[0] == 8 && res.gen.n_new[1] == 8);
        CHECK(memcmp(res.gen.tokens, res.gen.tokens + 8, 8 * sizeof(int)) == 0); /* greedy */
        CHECK(strstr(text, "prefill: ") != NULL && strstr(text, " tok/s, decode: ") != NULL);
        CHECK(strstr(text, w == 3 ? "prompt: 5 random ids" : "Hello") != NULL);
        CHECK(res.mem.peak_bytes[BACKEND_MEM_KV_CACHE] > 0);
        CHECK(res.mem.peak_bytes[BACKEND_MEM_WEIGHTS] > 0);
        CHECK(res.have_estimate);
        char *rep = NULL;
        size_t len = 0;
        CHECK_OK(sw_read_file(res.report_path, 1 << 20, &rep, &len, &err), &err);
        if (rep) {
            CHECK(strstr(rep, "prefill_tokens_per_s:") != NULL);
            CHECK(strstr(rep, "kv_cache:") != NULL);
            CHECK(strstr(rep, "estimate:\n") != NULL);
            CHECK(strstr(rep, "decode_s_per_token:") != NULL);
            free(rep);
        }
        exec_infer_result_release(&res);
    }
    char path[96];
    snprintf(path, sizeof(path), "%s/report.yaml", dir);
    unlink(path);
    rmdir(dir);

    /* Refusals: cuda, int4 weights, a missing checkpoint. */
    static const char *const bad[3][2] = {
        {"strategy: {device: cuda, weights: fp32}", "CPU"},
        {"strategy: {device: cpu, weights: int4}", "int4"},
        {"strategy: {device: cpu, weights: fp32}", "missing.safetensors"},
    };
    for (int i = 0; i < 3; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 "scalewise_plan: 1\ntask: infer\nhardware: {profile: %s}\n"
                 "model: {profile: tiny-gpt2}\ninfer: {checkpoint: %s, prompt: Hi, prompt_len: 2, "
                 "gen_len: 4}\n"
                 "%s\n",
                 i == 0 ? "h100-sxm" : "cpu-avx2-2c", i == 2 ? "missing.safetensors" : FIXTURE,
                 bad[i][0]);
        struct plan p;
        plan_init(&p);
        struct sw_err err;
        int rc = plan_load_string(yaml, strlen(yaml), "bad.yaml", &p, &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            continue;
        struct exec_infer_result res;
        rc = exec_run_infer(&p, NULL, NULL, &res, &err);
        char full[SW_ERR_MSG_MAX + SW_ERR_FILE_MAX + 32];
        sw_err_format(&err, full, sizeof(full));
        CHECK_MSG(rc < 0 && strstr(full, bad[i][1]), "case %d: rc %d: %s", i, rc, full);
        exec_infer_result_release(&res);
    }
}

static void test_text(void)
{
    struct tokenizer *t = tok_new_byte();
    struct sw_buf b;
    sw_buf_init(&b, 1024);
    struct sw_err err;
    /* "é" (valid 2-byte UTF-8), a tab, a bell, a lone continuation byte, a NUL. */
    int ids[] = {'a', 0xc3, 0xa9, '\t', 7, 0x80, 0, 'z'};
    CHECK_OK(gen_append_text(&b, t, ids, 8, &err), &err);
    CHECK_STR(b.data, "a\xc3\xa9\t\\x07\\x80\\x00z");
    int bad[1] = {300};
    CHECK(gen_append_text(&b, t, bad, 1, &err) == SW_EINVAL);
    sw_buf_release(&b);
    tok_free(t);
    struct gen_result r;
    gen_result_init(&r);
    char line[128];
    CHECK_STR(gen_timing_line(&r, line, sizeof(line)),
              "prefill: n/a tok/s, decode: n/a tok/s, TTFT n/a ms");
}

int main(void)
{
    gen_rng_seed(&test_rng, 2024, 0);
    RUN(test_rng_streams);
    RUN(test_greedy);
    RUN(test_softmax);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_seed_determinism);
    RUN(test_frequencies);
    RUN(test_ragged_batch);
    RUN(test_device_greedy);
    RUN(test_eos);
    RUN(test_kv_vs_full);
    RUN(test_int8);
    RUN(test_load_fixture);
    RUN(test_checkpoint_roundtrip);
    RUN(test_run_infer);
    RUN(test_text);
    return harness_finish("test_generate");
}
