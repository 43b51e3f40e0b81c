/* Text generation on the executor's model: the sampling kernels, batched generation with a KV
 * cache, loading inference weights from a safetensors file, and the `task: infer` runner.
 *
 * Implements (API in executor/executor.h, "generate" section; user guide docs/generate.md):
 *  - A seeded xoshiro256** generator (Blackman & Vigna, 2018) expanded from the seed by
 *    splitmix64, one stream per batch row.
 *  - Sampling as Hugging Face's logits processors order it: temperature (softmax of
 *    logits / T over the V real ids, never the padded Vp columns), top-k by a bounded min-heap
 *    (O(V log k)), top-p (Holtzman et al., 2020) on the probabilities sorted in descending
 *    order, then one draw from the renormalised rest. Without top-k, top-p first gathers the
 *    ids whose probability is at least t = p_max / 2^j for growing j until their mass reaches
 *    p (such a set is a prefix of the sorted order, so the nucleus is inside it) and sorts only
 *    those, instead of sorting the whole vocabulary for every token.
 *  - exec_generate: one prefill of the shortest common prompt length for every row, then
 *    decode steps of one token per row (a longer prompt's remaining ids forced, then sampled
 *    ids), stopping each row on EOS or length; wall-clock timings of both phases.
 *  - gen_model_desc_from_checkpoint: the model shape from a file's metadata (scalewise
 *    checkpoints' "model.*" keys, or the bare keys of the reference fixtures); the weights
 *    themselves are loaded by checkpoint.c (exec_checkpoint_load).
 *  - exec_run_infer: a `task: infer` plan end to end, with report.yaml.
 * Left to others: the model and its KV cache (model.c), tokenizers (tokenizer.c), safetensors
 * parsing (safetensors.c), checkpoints and HF weights (checkpoint.c), the advisor's estimate
 * (advisor/), printing to a terminal (cli/). */
#include "executor/executor.h"

#include "kernels/cpu/kernels_cpu.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- random numbers */

/* splitmix64 (Steele, Lea & Flood, 2014): the recommended seeder for xoshiro. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gen_rng_seed(struct gen_rng *r, uint64_t seed, uint64_t stream)
{
    /* Mix the stream number through splitmix64 first so streams start far apart (seed + k
     * for nearby k would give overlapping splitmix sequences). */
    uint64_t t = stream ^ 0xd1b54a32d192ed03ULL;
    uint64_t x = seed ^ splitmix64(&t);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the one state xoshiro cannot leave */
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gen_rng_next(struct gen_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double gen_rng_uniform(struct gen_rng *r)
{
    return (double)(gen_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- sampling kernels */

void gen_sampling_init(struct gen_sampling *s)
{
    s->temperature = 1.0;
    s->top_k = 0;
    s->top_p = 1.0;
    s->seed = 1337;
}

int gen_sampling_check(const struct gen_sampling *s, struct sw_err *err)
{
    if (!(s->temperature >= 0 && s->temperature <= 100))
        return sw_errf(err, SW_EINVAL, "temperature %g is out of range; expected 0 to 100",
                       s->temperature);
    if (s->top_k < 0)
        return sw_errf(err, SW_EINVAL, "top_k %d is negative; expected 0 (off) or more", s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1))
        return sw_errf(err, SW_EINVAL, "top_p %g is out of range; expected (0, 1]", s->top_p);
    return 0;
}

int gen_argmax(const float *x, int V)
{
    int best;
    kcpu_argmax_rows(&best, x, 1, V, V); /* the device's greedy choice, the same rule */
    return best;
}

void gen_softmax(float *probs, const float *logits, int V, double temperature)
{
    float mx = logits[gen_argmax(logits, V)];
    double sum = 0;
    /* Divide (never multiply by 1/T): for a tiny T, 0 · inf would be NaN at the maximum. */
    for (int i = 0; i < V; i++) {
        float e = (float)exp((double)(logits[i] - mx) / temperature);
        probs[i] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++)
        probs[i] *= inv;
}

/* a ranks below b: smaller probability, or equal and a larger id. */
static bool ranks_below(const float *probs, int a, int b)
{
    return probs[a] < probs[b] || (probs[a] == probs[b] && a > b);
}

/* Min-heap on "ranks below": the root is the worst id held. */
static void sift_down(const float *probs, int *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ranks_below(probs, h[l], h[w]))
            w = l;
        if (r < n && ranks_below(probs, h[r], h[w]))
            w = r;
        if (w == i)
            return;
        int t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Sort idx[0..n) by descending probability (ties: lower id first) with a heap sort: repeatedly
 * move the worst remaining id to the end. No qsort: its comparator cannot see `probs`. */
static void sort_desc(const float *probs, int *idx, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(probs, idx, n, i);
    for (int end = n - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift_down(probs, idx, end, 0);
    }
}

int gen_top_k(const float *probs, int V, int k, int *idx)
{
    if (k <= 0 || k > V)
        k = V;
    for (int i = 0; i < k; i++)
        idx[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(probs, idx, k, i);
    for (int i = k; i < V; i++) {
        if (ranks_below(probs, idx[0], i)) {
            idx[0] = i;
            sift_down(probs, idx, k, 0);
        }
    }
    sort_desc(probs, idx, k);
    return k;
}

int gen_top_p(const float *probs, const int *idx, int n, double total, double p)
{
    double cum = 0, need = p * total;
    for (int i = 0; i < n; i++) {
        cum += probs[idx[i]];
        if (cum >= need)
            return i + 1;
    }
    return n;
}

/* The ids that can be in the nucleus, sorted: those with probability >= p_max / 2^j for the
 * first j whose set holds at least p of the total mass (every id when none of 60 does). Returns
 * their count and the total mass of all V probabilities in *total. */
static int nucleus_candidates(const float *probs, int V, double p, int *idx, double *total)
{
    float mx = probs[gen_argmax(probs, V)];
    double all = 0;
    for (int i = 0; i < V; i++)
        all += probs[i];
    *total = all;
    for (int j = 1; j <= 60; j++) {
        float t = ldexpf(mx, -j);
        double mass = 0;
        int n = 0;
        for (int i = 0; i < V; i++)
            if (probs[i] >= t) {
                idx[n++] = i;
                mass += probs[i];
            }
        if (mass >= p * all) {
            sort_desc(probs, idx, n);
            return n;
        }
    }
    for (int i = 0; i < V; i++)
        idx[i] = i;
    sort_desc(probs, idx, V);
    return V;
}

void gen_opts_init(struct gen_opts *o)
{
    gen_sampling_init(&o->sampling);
    o->max_new_tokens = 64;
    o->eos_id = -1;
}

int gen_sampler_init(struct gen_sampler *s, const struct gen_sampling *cfg, int V,
                     struct sw_err *err)
{
    memset(s, 0, sizeof(*s));
    int rc = gen_sampling_check(cfg, err);
    if (rc < 0)
        return rc;
    if (V < 1)
        return sw_errf(err, SW_EINVAL, "vocabulary size %d; expected at least 1", V);
    s->cfg = *cfg;
    s->V = V;
    s->probs = sw_try_malloc((size_t)V * sizeof(float), "sampler probabilities", err);
    s->idx = s->probs ? sw_try_malloc((size_t)V * sizeof(int), "sampler indices", err) : NULL;
    if (!s->idx) {
        gen_sampler_release(s);
        return SW_ENOMEM;
    }
    return 0;
}

void gen_sampler_release(struct gen_sampler *s)
{
    free(s->probs);
    free(s->idx);
    s->probs = NULL;
    s->idx = NULL;
}

int gen_sample(struct gen_sampler *s, const float *logits, struct gen_rng *rng)
{
    const struct gen_sampling *c = &s->cfg;
    int V = s->V;
    if (c->temperature == 0 || c->top_k == 1)
        return gen_argmax(logits, V);
    float *probs = s->probs;
    int *idx = s->idx;
    gen_softmax(probs, logits, V, c->temperature);
    int n;
    bool sorted = true;
    double all = 1.0;
    if (c->top_k > 0 && c->top_k < V) {
        n = gen_top_k(probs, V, c->top_k, idx);
    } else if (c->top_p < 1) {
        n = nucleus_candidates(probs, V, c->top_p, idx, &all);
    } else {
        for (int i = 0; i < V; i++)
            idx[i] = i;
        n = V;
        sorted = false; /* a plain draw needs no order */
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += probs[idx[i]];
    if (sorted && c->top_p < 1) {
        /* Top-p is relative to the mass left by top-k (renormalised), or to the whole
         * distribution (the softmax sums to 1). */
        double ref = (c->top_k > 0 && c->top_k < V) ? total : all;
        n = gen_top_p(probs, idx, n, ref, c->top_p);
        total = 0;
        for (int i = 0; i < n; i++)
            total += probs[idx[i]];
    }
    double u = gen_rng_uniform(rng) * total, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += probs[idx[i]];
        if (u < cum)
            return idx[i];
    }
    return idx[n - 1]; /* u within rounding of the total */
}

/* ---------------------------------------------------------------- generation */

void gen_result_init(struct gen_result *r)
{
    memset(r, 0, sizeof(*r));
    r->decode_tokens_per_s = NAN;
    r->decode_s_per_step = NAN;
    r->prefill_tokens_per_s = NAN;
}

void gen_result_release(struct gen_result *r)
{
    free(r->tokens);
    free(r->n_new);
    free(r->stopped_eos);
    gen_result_init(r);
}

int gen_kv_tokens_needed(const int *prompt_lens, int B, int max_new_tokens)
{
    int mx = 0;
    for (int b = 0; b < B; b++)
        if (prompt_lens[b] > mx)
            mx = prompt_lens[b];
    return mx + max_new_tokens - 1;
}

/* Record a sampled token for row b; returns true when the row is done. */
static bool take_token(struct gen_result *r, int b, int tok, int64_t eos_id)
{
    r->tokens[(size_t)b * r->max_new + r->n_new[b]++] = tok;
    if (eos_id >= 0 && tok == eos_id) {
        r->stopped_eos[b] = true;
        return true;
    }
    return r->n_new[b] >= r->max_new;
}

int exec_generate(struct exec_model *m, const int *const *prompts, const int *prompt_lens, int B,
                  const struct gen_opts *o, struct gen_result *r, struct sw_err *err)
{
    gen_result_init(r);
    int rc = gen_sampling_check(&o->sampling, err);
    if (rc < 0)
        return rc;
    if (B < 1 || B > m->opts.kv_batch)
        return sw_errf(err, SW_EINVAL, "batch of %d prompts; the model's KV cache holds 1 to %d", B,
                       m->opts.kv_batch);
    if (o->max_new_tokens < 1)
        return sw_errf(err, SW_EINVAL, "max_new_tokens %d; expected at least 1", o->max_new_tokens);
    int T0 = prompt_lens[0];
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1)
            return sw_errf(err, SW_EINVAL, "prompt %d is empty; every prompt needs a token", b);
        if (prompt_lens[b] < T0)
            T0 = prompt_lens[b];
        for (int i = 0; i < prompt_lens[b]; i++)
            if (prompts[b][i] < 0 || prompts[b][i] >= m->V)
                return sw_errf(err, SW_EINVAL,
                               "prompt %d token %d is id %d, outside the vocabulary [0, %d)", b, i,
                               prompts[b][i], m->V);
    }
    int need = gen_kv_tokens_needed(prompt_lens, B, o->max_new_tokens);
    if (need > m->opts.kv_seq)
        return sw_errf(err, SW_EINVAL,
                       "the longest prompt plus %d new tokens needs a KV cache of %d tokens; "
                       "the model's holds %d",
                       o->max_new_tokens, need, m->opts.kv_seq);

    struct gen_sampler smp;
    rc = gen_sampler_init(&smp, &o->sampling, m->V, err);
    if (rc < 0)
        return rc;
    /* Greedy on a device: the argmax is taken where the logits are and only B ids come back
     * (a batch of 32 GPT-2 rows is 6.4 MB of logits a step otherwise); the same rule as
     * gen_argmax, so the same tokens. */
    const struct gen_sampling *sc = &o->sampling;
    bool dev_greedy = !m->be->host_memory && (sc->temperature == 0 || sc->top_k == 1);
    int *greedy = dev_greedy ? sw_xcalloc((size_t)B, sizeof(int)) : NULL;
    r->B = B;
    r->max_new = o->max_new_tokens;
    r->n_new = sw_xcalloc((size_t)B, sizeof(int));
    r->stopped_eos = sw_xcalloc((size_t)B, sizeof(bool));
    struct gen_rng *rng = sw_xcalloc((size_t)B, sizeof(*rng));
    bool *done = sw_xcalloc((size_t)B, sizeof(bool));
    int *step = sw_xcalloc((size_t)B * (size_t)(T0 > 1 ? T0 : 1), sizeof(int));
    r->tokens = sw_try_calloc((size_t)B * (size_t)r->max_new, sizeof(int), "generated tokens", err);
    if (!r->tokens) {
        rc = SW_ENOMEM;
        goto out;
    }
    for (int b = 0; b < B; b++)
        gen_rng_seed(&rng[b], o->sampling.seed, (uint64_t)b);

    for (int b = 0; b < B; b++)
        memcpy(step + (size_t)b * T0, prompts[b], (size_t)T0 * sizeof(int));
    const float *logits = NULL;
    const float **host_logits = dev_greedy ? NULL : &logits; /* NULL: no copy to the host */
    exec_model_refresh_derived(m); /* the bf16 mirror or int8 codes: load work, not TTFT */
    if (backend_profile_requested())
        backend_profile_reset(); /* SCALEWISE_PROFILE=1: the generation, not that */
    /* A device backend's first calls load its kernels and pick its GEMM algorithms: about
     * 0.1 s on an H200, more than the whole prefill of GPT-2 124M. One untimed prefill and
     * decode step of the same shapes first, so that the figures are the steady state's (the
     * prefill below starts the cache afresh); its time is reported as warmup_s. */
    if (!m->be->host_memory) {
        double w0 = sw_now_s();
        if ((rc = exec_model_prefill(m, step, B, T0, host_logits, err)) < 0 ||
            (rc = exec_model_decode(m, step, B, host_logits, err)) < 0 ||
            (dev_greedy && (rc = exec_model_argmax(m, greedy, err)) < 0))
            goto out;
        r->warmup_s = sw_now_s() - w0;
        if (backend_profile_requested())
            backend_profile_reset(); /* SCALEWISE_PROFILE=1: the timed generation only */
    }
    double t0 = sw_now_s();
    int n_started = 0, n_done = 0;
    if ((rc = exec_model_prefill(m, step, B, T0, host_logits, err)) < 0 ||
        (dev_greedy && (rc = exec_model_argmax(m, greedy, err)) < 0))
        goto out;
    r->prefill_tokens = (int64_t)B * T0;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] != T0)
            continue;
        int tok = dev_greedy ? greedy[b] : gen_sample(&smp, logits + (size_t)b * m->Vp, &rng[b]);
        n_started++;
        if (take_token(r, b, tok, o->eos_id)) {
            done[b] = true;
            n_done++;
        }
    }
    double t1 = sw_now_s();
    r->prefill_s = t1 - t0;
    if (n_started == B)
        r->ttft_s = t1 - t0;

    /* Decode: the cache holds `pos` tokens of every row; feed each row's token at `pos`. */
    for (int pos = T0; n_done < B; pos++) {
        for (int b = 0; b < B; b++) {
            if (pos < prompt_lens[b]) {
                step[b] = prompts[b][pos];
                r->forced_tokens++;
            } else {
                /* The row's last sampled token; a finished row repeats it (ignored). */
                step[b] = r->tokens[(size_t)b * r->max_new + r->n_new[b] - 1];
            }
        }
        if ((rc = exec_model_decode(m, step, B, host_logits, err)) < 0 ||
            (dev_greedy && (rc = exec_model_argmax(m, greedy, err)) < 0))
            goto out;
        r->decode_steps++;
        for (int b = 0; b < B; b++) {
            if (done[b] || pos + 1 < prompt_lens[b])
                continue;
            int tok =
                dev_greedy ? greedy[b] : gen_sample(&smp, logits + (size_t)b * m->Vp, &rng[b]);
            r->decode_tokens++;
            if (r->n_new[b] == 0 && ++n_started == B)
                r->ttft_s = sw_now_s() - t0;
            if (take_token(r, b, tok, o->eos_id)) {
                done[b] = true;
                n_done++;
            }
        }
    }
    double t2 = sw_now_s();
    r->decode_s = t2 - t1;
    r->total_s = t2 - t0;
    r->prefill_tokens_per_s = r->prefill_s > 0 ? (double)r->prefill_tokens / r->prefill_s : NAN;
    if (r->decode_steps > 0 && r->decode_s > 0) {
        r->decode_tokens_per_s = (double)r->decode_tokens / r->decode_s;
        r->decode_s_per_step = r->decode_s / r->decode_steps;
    }
    rc = 0;
out:
    free(greedy);
    free(rng);
    free(done);
    free(step);
    gen_sampler_release(&smp);
    if (rc < 0)
        gen_result_release(r);
    return rc;
}

const char *gen_timing_line(const struct gen_result *r, char *buf, size_t n)
{
    char pre[32] = "n/a", dec[32] = "n/a", ttft[32] = "n/a";
    if (isfinite(r->prefill_tokens_per_s))
        snprintf(pre, sizeof(pre), "%.1f", r->prefill_tokens_per_s);
    if (isfinite(r->decode_tokens_per_s))
        snprintf(dec, sizeof(dec), "%.1f", r->decode_tokens_per_s);
    if (r->ttft_s > 0)
        snprintf(ttft, sizeof(ttft), "%.2f", r->ttft_s * 1e3);
    snprintf(buf, n, "prefill: %s tok/s, decode: %s tok/s, TTFT %s ms", pre, dec, ttft);
    return buf;
}

/* Length of the valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

int gen_append_text(struct sw_buf *out, const struct tokenizer *t, const int *ids, int n,
                    struct sw_err *err)
{
    uint32_t vocab = tok_vocab_size(t);
    uint32_t *u = sw_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(uint32_t));
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= vocab) {
            free(u);
            return sw_errf(err, SW_EINVAL, "token %d is id %d, outside the tokenizer's %u ids", i,
                           ids[i], vocab);
        }
        u[i] = (uint32_t)ids[i];
    }
    struct sw_buf raw;
    sw_buf_init(&raw, out->max_bytes);
    int rc = tok_decode(t, u, (size_t)n, &raw, err);
    free(u);
    const unsigned char *s = (const unsigned char *)raw.data;
    for (size_t i = 0; rc == 0 && i < raw.len;) {
        size_t len = utf8_len(s + i, raw.len - i);
        unsigned c = s[i];
        if (len == 0 || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            rc = sw_buf_printf(out, err, "\\x%02x", c);
            i++;
        } else {
            rc = sw_buf_append(out, s + i, len, err);
            i += len;
        }
    }
    sw_buf_release(&raw);
    return rc;
}

/* ---------------------------------------------------------------- weights */

/* The value of a model key: "model.<key>" (scalewise checkpoints) or "<key>" (the reference
 * fixtures); NULL when neither. *used receives the key found. */
static const char *meta_model(const struct sft_file *f, const char *key, char *used, size_t n)
{
    snprintf(used, n, "model.%s", key);
    const char *v = sft_meta_get(f, used);
    if (!v) {
        snprintf(used, n, "%s", key);
        v = sft_meta_get(f, used);
    }
    return v;
}

/* A metadata integer (absent: keep *out, unless required). */
static int meta_int(const struct sft_file *f, const char *key, bool required, int min, int max,
                    int *out, struct sw_err *err)
{
    char used[64];
    int64_t v;
    if (!meta_model(f, key, used, sizeof(used))) {
        if (required)
            return sw_err_at(err, SW_ENOENT, sft_path(f), 0, 0, "model metadata lacks '%s'", key);
        return 0;
    }
    int rc = sft_meta_i64(f, used, min, max, &v, err);
    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

static int parse_bool(const struct sft_file *f, const char *key, const char *v, bool *out,
                      struct sw_err *err)
{
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0"))
        *out = false;
    else
        return sw_err_at(err, SW_EINVAL, sft_path(f), 0, 0,
                         "metadata '%s' is '%s'; expected true or false", key, v);
    return 0;
}

static int meta_bool(const struct sft_file *f, const char *key, bool *out, struct sw_err *err)
{
    char used[64];
    const char *v = meta_model(f, key, used, sizeof(used));
    return v ? parse_bool(f, used, v, out, err) : 0;
}

/* "model.<key>=<value>;" inside a scalewise checkpoint's plan_numerics, copied into val. */
static bool numerics_get(const struct sft_file *f, const char *key, char *val, size_t n)
{
    const char *num = sft_meta_get(f, "plan_numerics");
    char pat[64];
    snprintf(pat, sizeof(pat), "model.%s=", key);
    for (const char *p = num; p && (p = strstr(p, pat)) != NULL; p++) {
        if (p != num && p[-1] != ';')
            continue;
        p += strlen(pat);
        size_t len = strcspn(p, ";");
        if (len >= n)
            return false;
        memcpy(val, p, len);
        val[len] = '\0';
        return true;
    }
    return false;
}

/* A floating-point model value: "norm_eps"/"eps"-style keys first, then plan_numerics. */
static int meta_real(const struct sft_file *f, const char *key, const char *alt, double *out,
                     struct sw_err *err)
{
    char used[64], val[64];
    if (meta_model(f, key, used, sizeof(used)) || (alt && meta_model(f, alt, used, sizeof(used))))
        return sft_meta_f64(f, used, out, err);
    if (numerics_get(f, key, val, sizeof(val)))
        return sw_parse_double(val, 0, 1e300, key, out, err);
    return 0;
}

int gen_model_desc_from_checkpoint(const char *path, struct model_desc *out,
                                   struct exec_model_opts *opts, struct sw_err *err)
{
    struct sft_file *f = NULL;
    int rc = sft_open(path, &f, err);
    if (rc < 0)
        return rc;
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    char used[64], val[64];
    const char *arch = meta_model(f, "arch", used, sizeof(used));
    if (!arch) {
        rc = sw_err_at(err, SW_ENOENT, path, 0, 0,
                       "no model description in the file's metadata; give --model or "
                       "--model-config");
        goto out;
    }
    if (!strcmp(arch, "gpt2"))
        d.arch = MODEL_ARCH_GPT2;
    else if (!strcmp(arch, "llama"))
        d.arch = MODEL_ARCH_LLAMA;
    else {
        rc = sw_err_at(err, SW_EINVAL, path, 0, 0, "metadata arch '%s'; expected gpt2 or llama",
                       arch);
        goto out;
    }
    /* The name: metadata, else the file name without directory and extension. */
    const char *name = meta_model(f, "name", used, sizeof(used));
    if (name) {
        snprintf(d.name, sizeof(d.name), "%s", name);
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strcspn(base, ".");
        snprintf(d.name, sizeof(d.name), "%.*s", (int)(n ? n : strlen(base)), base);
    }
    static const int big = 1 << 27;
    int lora_rank = 0, lora_targets = 0;
    if ((rc = meta_int(f, "layers", true, 1, big, &d.n_layers, err)) < 0 ||
        (rc = meta_int(f, "hidden", true, 1, big, &d.hidden, err)) < 0 ||
        (rc = meta_int(f, "heads", true, 1, big, &d.n_heads, err)) < 0 ||
        (rc = meta_int(f, "vocab", true, 2, big, &d.vocab, err)) < 0 ||
        (rc = meta_int(f, "kv_heads", false, 1, big, &d.n_kv_heads, err)) < 0 ||
        (rc = meta_int(f, "head_dim", false, 1, big, &d.head_dim, err)) < 0 ||
        (rc = meta_int(f, "ffn", false, 1, big, &d.ffn, err)) < 0 ||
        (rc = meta_int(f, "max_pos", false, 1, big, &d.max_pos, err)) < 0 ||
        (rc = meta_int(f, "lora_rank", false, 0, big, &lora_rank, err)) < 0 ||
        (rc = meta_int(f, "lora_targets", false, 0, EXEC_LORA_ALL, &lora_targets, err)) < 0)
        goto out;
    if ((rc = meta_real(f, "norm_eps", "eps", &d.norm_eps, err)) < 0)
        goto out;
    if (d.arch == MODEL_ARCH_LLAMA &&
        (rc = meta_real(f, "rope_theta", NULL, &d.rope_theta, err)) < 0)
        goto out;
    if (numerics_get(f, "sliding_window", val, sizeof(val)) &&
        (rc = sw_parse_int(val, 0, big, "sliding_window", &d.sliding_window, err)) < 0)
        goto out;
    model_fill_defaults(&d); /* flags by arch; the file may override them */
    if ((rc = meta_bool(f, "tied_head", &d.tied_head, err)) < 0 ||
        (rc = meta_bool(f, "bias", &d.bias, err)) < 0)
        goto out;
    if (numerics_get(f, "rms_norm", val, sizeof(val)) &&
        (rc = parse_bool(f, "model.rms_norm", val, &d.rms_norm, err)) < 0)
        goto out;
    if (numerics_get(f, "swiglu", val, sizeof(val)) &&
        (rc = parse_bool(f, "model.swiglu", val, &d.swiglu, err)) < 0)
        goto out;
    if ((rc = model_validate(&d, err)) < 0) {
        char msg[SW_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
        rc = sw_err_at(err, rc, path, 0, 0, "model metadata: %s", msg);
        goto out;
    }
    *out = d;
    if (opts) {
        opts->lora_rank = lora_rank;
        opts->lora_targets = (unsigned)lora_targets;
    }
    rc = 0;
out:
    sft_close(f);
    return rc;
}

/* ---------------------------------------------------------------- task: infer */

void exec_infer_result_init(struct exec_infer_result *r)
{
    memset(r, 0, sizeof(*r));
    gen_result_init(&r->gen);
    estimate_init(&r->estimate);
}

void exec_infer_result_release(struct exec_infer_result *r)
{
    gen_result_release(&r->gen);
}

/* mkdir -p. */
static int make_dirs(const char *path, struct sw_err *err)
{
    char buf[PLAN_PATH_MAX];
    if (sw_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return sw_errf(err, SW_EINVAL, "output directory path too long: '%s'", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) < 0 && errno != EEXIST)
                return sw_errf(err, SW_EIO, "cannot create directory '%s': %s", buf,
                               strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

static void emit_num_or_null(struct sw_emit *e, const char *key, double v)
{
    if (isfinite(v))
        sw_emit_num_prec(e, key, v, 6);
    else
        sw_emit_null(e, key);
}

static int write_report(const struct plan *p, const char *out_dir, struct exec_infer_result *res,
                        const char *weights_word, const char *estimate_error, struct sw_err *err)
{
    const struct gen_result *g = &res->gen;
    struct sw_buf b;
    sw_buf_init(&b, 1 << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &b, SW_FMT_YAML);
    sw_emit_map_begin(&e, NULL);
    sw_emit_str(&e, "task", "infer");
    sw_emit_str(&e, "plan", p->source_path[0] ? p->source_path : NULL);
    sw_emit_str(&e, "model", p->model.name);
    sw_emit_str(&e, "checkpoint", p->infer.checkpoint);
    sw_emit_str(&e, "device", device_name(p->strategy.device));
    sw_emit_str(&e, "weights", weights_word);
#ifdef _OPENMP
    sw_emit_i64(&e, "threads", omp_get_max_threads());
#else
    sw_emit_i64(&e, "threads", 1);
#endif
    sw_emit_i64(&e, "batch", res->batch);
    sw_emit_i64(&e, "prompt_tokens", res->prompt_tokens);
    sw_emit_i64(&e, "max_new_tokens", g->max_new);
    int64_t gen_total = 0;
    for (int i = 0; i < g->B; i++)
        gen_total += g->n_new[i];
    sw_emit_i64(&e, "generated_tokens", gen_total);
    sw_emit_map_begin(&e, "measured");
    emit_num_or_null(&e, "prefill_tokens_per_s", g->prefill_tokens_per_s);
    emit_num_or_null(&e, "decode_tokens_per_s", g->decode_tokens_per_s);
    emit_num_or_null(&e, "ttft_s", g->ttft_s);
    emit_num_or_null(&e, "decode_s_per_token", g->decode_s_per_step);
    emit_num_or_null(&e, "prefill_s", g->prefill_s);
    emit_num_or_null(&e, "decode_s", g->decode_s);
    if (g->warmup_s > 0)
        emit_num_or_null(&e, "warmup_s", g->warmup_s);
    sw_emit_map_begin(&e, "per_device_bytes");
    for (int c = 0; c < BACKEND_MEM_COUNT; c++)
        sw_emit_u64(&e, backend_mem_name((enum backend_mem)c), res->mem.peak_bytes[c]);
    sw_emit_u64(&e, "total", res->mem.peak_total_bytes);
    sw_emit_map_end(&e);
    if (res->peak_rss_bytes)
        sw_emit_u64(&e, "peak_rss_bytes", res->peak_rss_bytes);
    else
        sw_emit_null(&e, "peak_rss_bytes");
    if (res->mem.device_used_bytes) /* a GPU: everything in use on it after the generation */
        sw_emit_u64(&e, "device_used_bytes", res->mem.device_used_bytes);
    sw_emit_map_end(&e);
    if (res->have_estimate) {
        const struct estimate *est = &res->estimate;
        sw_emit_map_begin(&e, "estimate");
        emit_num_or_null(&e, "ttft_s", est->ttft_s);
        emit_num_or_null(&e, "decode_s_per_token", est->decode_s_per_token);
        emit_num_or_null(&e, "infer_tokens_per_s", est->infer_tokens_per_s);
        sw_emit_map_begin(&e, "per_device_bytes");
        sw_emit_num(&e, "weights", est->dev.weights);
        sw_emit_num(&e, "gradients", est->dev.gradients);
        sw_emit_num(&e, "optimizer", est->dev.optimizer);
        sw_emit_num(&e, "activations", est->dev.activations);
        sw_emit_num(&e, "kv_cache", est->dev.kv_cache);
        sw_emit_num(&e, "workspace", est->dev.workspace);
        sw_emit_num(&e, "overhead", est->dev.overhead);
        sw_emit_num(&e, "total", est->dev.total);
        sw_emit_map_end(&e);
        sw_emit_map_end(&e);
    } else {
        sw_emit_null(&e, "estimate");
        sw_emit_str(&e, "estimate_error", estimate_error);
    }
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    int rc = make_dirs(out_dir, err);
    if (rc == 0) {
        snprintf(res->report_path, sizeof(res->report_path), "%s/report.yaml", out_dir);
        rc = sw_write_file_atomic(res->report_path, b.data, b.len, err);
    }
    sw_buf_release(&b);
    return rc;
}

/* The CPU executor's limits for an inference plan (refused at load, with the reason). */
static int check_infer_plan(const struct plan *p, struct exec_model_opts *mo, struct sw_err *err)
{
    const struct strategy *s = &p->strategy;
    if (p->workload.task != TASK_INFER)
        return sw_errf(err, SW_EINVAL, "plan has task: %s; exec_run_infer runs task: infer",
                       task_name(p->workload.task));
    if (s->device == DEVICE_CUDA) {
        /* The GPU and the plugin first, so a machine without either says so. */
        struct sw_err cerr;
        sw_err_init(&cerr);
        if (!backend_cuda_load(&cerr))
            return sw_errf(err, SW_EUNSUPPORTED,
                           "strategy.device is cuda, but the CUDA backend is unavailable: %s; "
                           "set strategy.device: cpu to run this plan on the CPU",
                           cerr.msg);
    }
    if (s->device != DEVICE_CPU && s->device != DEVICE_CUDA)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "strategy.device is %s; this executor runs on cpu or cuda",
                       device_name(s->device));
    if (s->dp != 1 || s->tp != 1 || s->pp != 1)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "dp=%d tp=%d pp=%d: generation on the CPU runs in one process; expected "
                       "dp, tp and pp of 1",
                       s->dp, s->tp, s->pp);
    if (!p->infer.checkpoint[0])
        return sw_errf(err, SW_EINVAL, "infer.checkpoint is required to run an inference plan");
    exec_model_opts_init(mo);
    mo->training = false;
    mo->attention = s->attention;
    switch (s->weights) {
    case WFMT_FP32:
        break;
    case WFMT_BF16:
        mo->precision = PREC_BF16_MIXED;
        break;
    case WFMT_FP16: /* an fp16 weight copy, activations rounded to fp16 at every matmul */
        mo->precision = PREC_FP16_MIXED;
        break;
    case WFMT_INT8:
        mo->int8_weights = true;
        break;
    default:
        return sw_errf(err, SW_EUNSUPPORTED,
                       "strategy.weights %s is not supported by the executor; expected fp32, "
                       "bf16, fp16 or int8",
                       wformat_name(s->weights));
    }
    return 0;
}

static int make_tokenizer(const struct plan_data *d, struct tokenizer **out, struct sw_err *err)
{
    enum tok_kind kind = TOK_BYTE;
    if (d->tokenizer[0]) {
        int rc = tok_kind_parse(d->tokenizer, &kind, err);
        if (rc < 0)
            return rc;
    }
    if (kind == TOK_BYTE) {
        *out = tok_new_byte();
        return 0;
    }
    if (!d->vocab_path[0] || !d->merges_path[0])
        return sw_errf(err, SW_EINVAL, "the gpt2 tokenizer needs data.vocab and data.merges");
    return tok_new_gpt2(d->vocab_path, d->merges_path, out, err);
}

int exec_run_infer(const struct plan *p, const char *out_dir, FILE *out,
                   struct exec_infer_result *res, struct sw_err *err)
{
    exec_infer_result_init(res);
    struct exec_model_opts mo;
    int rc = check_infer_plan(p, &mo, err);
    if (rc < 0)
        return rc;
    /* The estimate's hardware, measured now: before any OpenMP thread exists. */
    struct hardware *hw_est = sw_xmalloc(sizeof(*hw_est));
    exec_hardware_measured(p, hw_est);
    struct tokenizer *tok = NULL;
    struct exec_model model;
    bool have_model = false;
    uint32_t *ids = NULL;
    int *prompt = NULL;
    const int **prompts = NULL;
    int *lens = NULL;
    struct sw_buf text;
    sw_buf_init(&text, (size_t)64 << 20);
    char estimate_error[SW_ERR_MSG_MAX] = "";
    const struct model_desc *d = &p->model;
    const char *weights_word = wformat_name(p->strategy.weights);

    if ((rc = make_tokenizer(&p->data, &tok, err)) < 0)
        goto out;
    if (tok_vocab_size(tok) > (uint32_t)d->vocab) {
        rc = sw_errf(err, SW_EINVAL, "the %s tokenizer has %u ids but the model's vocab is %d",
                     tok_kind_name(tok_get_kind(tok)), tok_vocab_size(tok), d->vocab);
        goto out;
    }
    int B = p->workload.batch > 0 ? p->workload.batch : 1;
    int n = 0;
    bool random_prompt = p->infer.prompt[0] == '\0';
    size_t plen = strlen(p->infer.prompt);
    if (random_prompt) {
        n = p->workload.prompt_len;
        prompt = sw_xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
        struct gen_rng rng;
        gen_rng_seed(&rng, p->infer.seed, UINT64_C(0xbe9c4));
        uint32_t nv = tok_vocab_size(tok);
        for (int i = 0; i < n; i++)
            prompt[i] = (int)(gen_rng_next(&rng) % nv);
    } else {
        ids = sw_xcalloc(plen + 1, sizeof(uint32_t));
        size_t got = 0;
        if ((rc = tok_encode(tok, p->infer.prompt, plen, ids, plen + 1, &got, err)) < 0)
            goto out;
        n = (int)got;
        prompt = sw_xcalloc((size_t)(n > 0 ? n : 1), sizeof(int));
        for (int i = 0; i < n; i++)
            prompt[i] = (int)ids[i];
    }
    if (n < 1) {
        rc = sw_errf(err, SW_EINVAL, "the prompt has no tokens");
        goto out;
    }
    prompts = sw_xcalloc((size_t)B, sizeof(*prompts));
    lens = sw_xcalloc((size_t)B, sizeof(int));
    for (int b = 0; b < B; b++) {
        prompts[b] = prompt;
        lens[b] = n;
    }
    struct gen_opts go;
    gen_opts_init(&go);
    go.sampling.temperature = p->infer.temperature;
    go.sampling.top_k = p->infer.top_k;
    go.sampling.top_p = p->infer.top_p;
    go.sampling.seed = p->infer.seed;
    go.max_new_tokens = p->workload.gen_len;
    go.eos_id = tok_eos_id(tok);
    if ((rc = gen_sampling_check(&go.sampling, err)) < 0)
        goto out;
    int need = gen_kv_tokens_needed(lens, B, go.max_new_tokens);
    if (go.max_new_tokens < 1 || need > d->max_pos) {
        rc = sw_errf(err, SW_EINVAL,
                     "%d prompt tokens and %d new tokens need %d positions; the model has "
                     "max_pos %d",
                     n, go.max_new_tokens, need, d->max_pos);
        goto out;
    }
#ifdef _OPENMP
    if (p->strategy.threads > 0)
        omp_set_num_threads(p->strategy.threads);
#endif
    mo.batch = 1;
    mo.seq = 1;
    mo.kv_batch = B;
    mo.kv_seq = need;
    const struct backend *be = backend_for_device(p->strategy.device == DEVICE_CUDA, err);
    if (!be) {
        rc = err->code;
        goto out;
    }
    /* SCALEWISE_PROFILE=1 (docs/run.md): time every entry of the generation itself. */
    bool profiled = backend_profile_requested();
    if (profiled)
        be = backend_profiled(be);
    be->mem_reset_peak();
    if ((rc = exec_model_init(&model, d, &mo, be, err)) < 0) {
        exec_model_release(&model);
        goto out;
    }
    have_model = true;
    if ((rc = exec_checkpoint_load(p->infer.checkpoint, &model, NULL, NULL, NULL, NULL, err)) < 0)
        goto out;
    if (profiled)
        backend_profile_reset();
    rc = exec_generate(&model, prompts, lens, B, &go, &res->gen, err);
    if (profiled)
        backend_profile_pause(true);
    if (rc < 0)
        goto out;
    be->mem_stats(&res->mem);
    res->peak_rss_bytes = peak_rss_bytes();
    res->batch = B;
    res->prompt_tokens = n;

    if (out) {
        for (int b = 0; b < B; b++) {
            const int *gen = res->gen.tokens + (size_t)b * res->gen.max_new;
            int ng = res->gen.n_new[b];
            if (B > 1)
                fprintf(out, "--- sequence %d%s\n", b + 1,
                        res->gen.stopped_eos[b] ? " (stopped at end of text)" : "");
            if (random_prompt) {
                fprintf(out, "prompt: %d random ids\ntokens:", n);
                for (int i = 0; i < ng; i++)
                    fprintf(out, " %d", gen[i]);
                fputc('\n', out);
                continue;
            }
            sw_buf_release(&text);
            sw_buf_init(&text, (size_t)64 << 20);
            if ((rc = gen_append_text(&text, tok, prompt, n, err)) < 0 ||
                (rc = gen_append_text(&text, tok, gen, ng, err)) < 0)
                goto out;
            fprintf(out, "%s\n", text.data);
        }
        char line[160];
        fprintf(out, "%s\n", gen_timing_line(&res->gen, line, sizeof(line)));
    }

    struct advisor_calib cal;
    advisor_calib_default(&cal);
    struct sw_err eerr;
    sw_err_init(&eerr);
    if (advisor_estimate_builtin(&p->model, hw_est, &p->workload, &p->strategy, &cal,
                                 &res->estimate, &eerr) == 0)
        res->have_estimate = true;
    else
        snprintf(estimate_error, sizeof(estimate_error), "%s", eerr.msg);
    /* The training default (docs/plan-format.md, train.out_dir): runs/<name> else
     * runs/<model name>. */
    char def_dir[PLAN_PATH_MAX];
    if (!out_dir) {
        snprintf(def_dir, sizeof(def_dir), "runs/%s", p->name[0] ? p->name : p->model.name);
        out_dir = def_dir;
    }
    rc = write_report(p, out_dir, res, weights_word, estimate_error, err);
    if (rc == 0 && profiled) { /* profile.yaml beside report.yaml */
        struct backend_profile_report *pr = sw_xmalloc(sizeof(*pr));
        backend_profile_report(pr);
        char ppath[PLAN_PATH_MAX + 16];
        snprintf(ppath, sizeof(ppath), "%s/profile.yaml", out_dir);
        rc = backend_profile_write(ppath, pr, err);
        if (rc == 0 && out)
            fprintf(out, "profile: %s\n", ppath);
        free(pr);
    }
out:
    free(hw_est);
    if (have_model)
        exec_model_release(&model);
    tok_free(tok);
    free(ids);
    free(prompt);
    free(prompts);
    free(lens);
    sw_buf_release(&text);
    if (rc < 0)
        gen_result_release(&res->gen);
    return rc;
}
