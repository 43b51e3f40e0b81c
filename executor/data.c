/* Data preparation and the batch loader. Implements `data prepare` as a library call (read a text
 * file, tokenize it, split off the last val_fraction of the tokens, write train.bin / val.bin
 * with shard.c and a meta.yaml describing them through sw_emit), and the deterministic,
 * stateless batch loader the training loop reads (docs/data-format.md, "Batches"): a batch is a
 * pure function of (shard, B, T, seed, rank, world, step), so resuming at step k is exact and
 * the ranks of a data-parallel run read disjoint slices of the single-process batch. Argument
 * parsing and printing are left to cli/cmd_data.c. */
#include "executor/executor.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#include "common/common.h"

__extension__ typedef unsigned __int128 u128;

void data_prepare_opts_init(struct data_prepare_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = TOK_BYTE;
    o->val_fraction = 0.1;
    o->seq_len = 1024;
}

uint64_t data_val_tokens(uint64_t n, double val_fraction, int64_t seq_len)
{
    if (n < 2 || !(val_fraction > 0))
        return 0;
    uint64_t v = (uint64_t)ceil(val_fraction * (double)n);
    uint64_t one_seq = seq_len > 0 ? (uint64_t)seq_len + 1 : 1;
    /* At least one sequence (T inputs + the shifted target) when train keeps one too. */
    if (v < one_seq && n >= 2 * one_seq)
        v = one_seq;
    if (v >= n)
        v = n - 1; /* train keeps at least one token */
    if (v < 1)
        v = 1;
    return v;
}

/* mkdir -p: create each missing component of `dir`. */
static int make_dirs(const char *dir, struct sw_err *err)
{
    char path[SW_ERR_FILE_MAX];
    if (sw_strlcpy(path, dir, sizeof(path)) >= sizeof(path))
        return sw_err_at(err, SW_EINVAL, dir, 0, 0, "output directory path is too long");
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char save = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return sw_err_at(err, SW_EIO, dir, 0, 0, "cannot create directory '%s': %s", path,
                             strerror(errno));
        path[i] = save;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return sw_err_at(err, SW_EIO, dir, 0, 0, "output path exists and is not a directory");
    return 0;
}

static int join_path(char *out, size_t n, const char *dir, const char *name, struct sw_err *err)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        return sw_err_at(err, SW_EINVAL, dir, 0, 0, "output path is too long");
    return 0;
}

static int write_meta(const struct data_prepare_opts *o, const struct data_prepare_result *r,
                      int64_t eos_id, struct sw_err *err)
{
    struct sw_buf b;
    sw_buf_init(&b, 1 << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &b, SW_FMT_YAML);
    char hex[32];
    snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)r->source_fnv1a64);
    sw_emit_map_begin(&e, NULL);
    sw_emit_i64(&e, "scalewise_data", 1);
    sw_emit_str(&e, "tokenizer", tok_kind_name(o->kind));
    sw_emit_u64(&e, "vocab_size", r->vocab_size);
    if (eos_id >= 0)
        sw_emit_i64(&e, "eos_id", eos_id);
    else
        sw_emit_null(&e, "eos_id");
    if (o->kind == TOK_GPT2) {
        sw_emit_str(&e, "vocab_file", o->vocab_path);
        sw_emit_str(&e, "merges_file", o->merges_path);
    }
    sw_emit_map_begin(&e, "source");
    sw_emit_str(&e, "path", o->input_path);
    sw_emit_u64(&e, "size_bytes", r->source_bytes);
    sw_emit_str(&e, "fnv1a64", hex);
    sw_emit_map_end(&e);
    sw_emit_num_prec(&e, "val_fraction", o->val_fraction, 6);
    sw_emit_i64(&e, "seq_len", o->seq_len);
    sw_emit_u64(&e, "token_bytes", shard_token_bytes_for(r->vocab_size));
    sw_emit_map_begin(&e, "train");
    sw_emit_str(&e, "file", "train.bin");
    sw_emit_u64(&e, "tokens", r->n_train_tokens);
    sw_emit_map_end(&e);
    sw_emit_map_begin(&e, "val");
    sw_emit_str(&e, "file", "val.bin");
    sw_emit_u64(&e, "tokens", r->n_val_tokens);
    sw_emit_map_end(&e);
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    int rc = sw_write_file_atomic(r->meta_path, b.data ? b.data : "", b.len, err);
    sw_buf_release(&b);
    return rc;
}

int data_prepare(const struct data_prepare_opts *o, struct data_prepare_result *r,
                 struct sw_err *err)
{
    memset(r, 0, sizeof(*r));
    if (!o->input_path || !*o->input_path)
        return sw_errf(err, SW_EINVAL, "no input file");
    if (!o->out_dir || !*o->out_dir)
        return sw_errf(err, SW_EINVAL, "no output directory");
    if (!(o->val_fraction >= 0 && o->val_fraction <= 0.5))
        return sw_errf(err, SW_ERANGE, "val fraction %g is outside [0, 0.5]", o->val_fraction);
    if (o->seq_len < 1)
        return sw_errf(err, SW_ERANGE, "sequence length %lld is below 1", (long long)o->seq_len);
    if (o->kind == TOK_GPT2 && (!o->vocab_path || !o->merges_path))
        return sw_errf(err, SW_EINVAL,
                       "the gpt2 tokenizer needs a vocabulary file (encoder.json / vocab.json) "
                       "and a merges file (merges.txt)");

    char *text = NULL;
    size_t len = 0;
    uint32_t *ids = NULL;
    struct tokenizer *tok = NULL;
    int rc = sw_read_file(o->input_path, DATA_MAX_INPUT_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    if (len == 0) {
        rc = sw_err_at(err, SW_EINVAL, o->input_path, 0, 0, "the input file is empty");
        goto out;
    }
    if (o->kind == TOK_GPT2) {
        if ((rc = tok_new_gpt2(o->vocab_path, o->merges_path, &tok, err)) < 0)
            goto out;
    } else {
        tok = tok_new_byte();
    }
    /* Every token covers at least one byte: len ids always suffice. */
    ids = sw_try_malloc(len * sizeof(uint32_t), "token ids", err);
    if (!ids) {
        rc = SW_ENOMEM;
        goto out;
    }
    size_t n = 0;
    if ((rc = tok_encode(tok, text, len, ids, len, &n, err)) < 0)
        goto out;
    if (n < 2) {
        rc = sw_err_at(err, SW_EINVAL, o->input_path, 0, 0,
                       "the input gives %zu token; at least 2 are needed (train and val)", n);
        goto out;
    }
    r->source_bytes = len;
    r->source_fnv1a64 = data_fnv1a64(DATA_FNV1A64_INIT, text, len);
    r->vocab_size = tok_vocab_size(tok);
    r->n_val_tokens = data_val_tokens(n, o->val_fraction, o->seq_len);
    r->n_train_tokens = n - r->n_val_tokens;
    if ((rc = join_path(r->train_path, sizeof(r->train_path), o->out_dir, "train.bin", err)) < 0 ||
        (rc = join_path(r->val_path, sizeof(r->val_path), o->out_dir, "val.bin", err)) < 0 ||
        (rc = join_path(r->meta_path, sizeof(r->meta_path), o->out_dir, "meta.yaml", err)) < 0)
        goto out;
    if ((rc = make_dirs(o->out_dir, err)) < 0)
        goto out;
    if ((rc = shard_write(r->train_path, ids, r->n_train_tokens, r->vocab_size, o->kind, err)) < 0)
        goto out;
    if ((rc = shard_write(r->val_path, ids + r->n_train_tokens, r->n_val_tokens, r->vocab_size,
                          o->kind, err)) < 0)
        goto out;
    rc = write_meta(o, r, tok_eos_id(tok), err);
out:
    tok_free(tok);
    free(ids);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- batch loader */

static uint64_t splitmix64(uint64_t x)
{
    /* Steele, Lea, Flood (2014), SplitMix64: one step from state x. */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int loader_init(struct loader *l, const struct shard *s, int64_t batch, int64_t seq_len,
                uint64_t seed, int rank, int world, struct sw_err *err)
{
    memset(l, 0, sizeof(*l));
    if (batch < 1 || seq_len < 1)
        return sw_errf(err, SW_EINVAL, "batch %lld and sequence length %lld must be >= 1",
                       (long long)batch, (long long)seq_len);
    if (world < 1 || rank < 0 || rank >= world)
        return sw_errf(err, SW_EINVAL, "rank %d is outside a world of %d", rank, world);
    if (batch % world != 0)
        return sw_errf(err, SW_EINVAL,
                       "global batch %lld is not divisible by the %d data-parallel ranks",
                       (long long)batch, world);
    if (!s->tokens || s->hdr.n_tokens < (uint64_t)seq_len + 1)
        return sw_err_at(err, SW_EINVAL, s->path, 0, 0,
                         "the shard has %llu tokens, fewer than one sequence of %lld + 1",
                         (unsigned long long)s->hdr.n_tokens, (long long)seq_len);
    l->tokens = s->tokens;
    l->n_tokens = s->hdr.n_tokens;
    l->batch = batch;
    l->seq_len = seq_len;
    l->rank = rank;
    l->world = world;
    l->offset = splitmix64(seed) % l->n_tokens;
    return 0;
}

int64_t loader_local_batch(const struct loader *l)
{
    return l->batch / l->world;
}

void loader_batch(const struct loader *l, int64_t step, uint32_t *inputs, uint32_t *targets)
{
    SW_ASSERT(step >= 0 && l->tokens);
    const uint64_t n = l->n_tokens, t_len = (uint64_t)l->seq_len;
    const int64_t local = loader_local_batch(l);
    for (int64_t r = 0; r < local; r++) {
        /* Global sequence index, then its window start (offset + s*T) mod n; 128-bit so that
         * no step count can overflow. */
        u128 seq = (u128)(uint64_t)step * (uint64_t)l->batch + (uint64_t)(l->rank * local + r);
        uint64_t start = (uint64_t)(((u128)l->offset + (seq % n) * (u128)(t_len % n)) % n);
        uint32_t *in = inputs + r * (int64_t)t_len, *tg = targets + r * (int64_t)t_len;
        uint64_t idx = start;
        uint32_t prev = l->tokens[idx];
        for (uint64_t i = 0; i < t_len; i++) {
            idx = idx + 1 == n ? 0 : idx + 1;
            uint32_t next = l->tokens[idx];
            in[i] = prev;
            tg[i] = next;
            prev = next;
        }
    }
}
