/* executor — the public surface of the executor module: it turns a plan into a real run (model,
 * data, training loop, generation, checkpoints, metrics) on a backend. Sections are added as the
 * module grows; each section below is delimited and owned by the files it names. */
#ifndef SW_EXECUTOR_H
#define SW_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ================================================================ data and tokenizers
 * executor/tokenizer.c (byte and GPT-2 BPE tokenizers), executor/shard.c (the token shard file
 * format, docs/data-format.md), executor/data.c (`data prepare` and the batch loader). */

/* Tokenizer kinds; the numbers are stored in shard headers and must not change. */
enum tok_kind {
    TOK_BYTE = 0, /* vocab 256, token = byte value */
    TOK_GPT2 = 1, /* GPT-2 byte-level BPE from encoder.json/vocab.json + merges.txt */
};

/* "byte" | "gpt2"; SW_EINVAL (with a suggestion) otherwise. */
int tok_kind_parse(const char *s, enum tok_kind *out, struct sw_err *err);
/* "byte" | "gpt2" | "unknown". Never NULL. */
const char *tok_kind_name(enum tok_kind k);

/* GPT-2's end-of-text token and its id in the released vocabulary. */
#define TOK_GPT2_EOS_TEXT "<|endoftext|>"
#define TOK_GPT2_EOS_ID 50256

struct tokenizer; /* opaque */

/* A new byte tokenizer (vocab 256). Never fails; the caller frees it with tok_free(). */
struct tokenizer *tok_new_byte(void);

/* A new GPT-2 byte-level BPE tokenizer from a vocabulary (JSON object token -> id, tokens in
 * GPT-2's byte-to-unicode form) and a merges file (one "a b" pair per line by rank, optional
 * first line "#version..."). Every one of the 256 byte tokens must be in the vocabulary, and
 * every merge's parts and result. Errors name the file (and line for merges.txt): SW_ENOENT,
 * SW_EIO, SW_EPARSE, SW_EINVAL. On success the caller frees *out with tok_free(). */
int tok_new_gpt2(const char *vocab_path, const char *merges_path, struct tokenizer **out,
                 struct sw_err *err);

void tok_free(struct tokenizer *t);

enum tok_kind tok_get_kind(const struct tokenizer *t);
/* Number of ids (max id + 1). */
uint32_t tok_vocab_size(const struct tokenizer *t);
/* The id of <|endoftext|>, or -1 when the tokenizer has none (byte tokenizer). */
int64_t tok_eos_id(const struct tokenizer *t);

/* Encode `len` bytes of text into ids[0..*n_out). Every token covers at least one byte, so
 * `cap` >= len is always enough; SW_ERANGE if cap is too small. GPT-2: the text is split by the
 * pre-tokenizer (docs/data.md names its approximation of GPT-2's regex) and each piece is
 * merged by rank (with a bounded cache, hence the non-const tokenizer); the literal text
 * "<|endoftext|>" becomes the EOS id. Byte tokenizer: never fails. */
int tok_encode(struct tokenizer *t, const char *text, size_t len, uint32_t *ids, size_t cap,
               size_t *n_out, struct sw_err *err);

/* Append the bytes of ids[0..n) to `out` (decode is exact: decode(encode(x)) == x). SW_EINVAL
 * for an id outside the vocabulary (naming the index), SW_ERANGE if `out` hits its ceiling. */
int tok_decode(const struct tokenizer *t, const uint32_t *ids, size_t n, struct sw_buf *out,
               struct sw_err *err);

/* FNV-1a 64-bit hash of `n` bytes, continuing from `h` (start with DATA_FNV1A64_INIT). Used for
 * shard checksums and the source hash in meta.yaml. */
#define DATA_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t data_fnv1a64(uint64_t h, const void *data, size_t n);

/* ---------------------------------------------------------------- token shards
 * The binary format is documented in docs/data-format.md: a 64-byte little-endian header
 * (magic "SWTOKENS", version, token width, count, vocab size, tokenizer kind, FNV-1a 64
 * checksum of the token bytes), then the tokens. */
#define SHARD_MAGIC "SWTOKENS"
#define SHARD_VERSION 1u
#define SHARD_HEADER_BYTES 64u
/* Largest shard file read or written: bounds the memory of a load (4 bytes per token). */
#define SHARD_MAX_BYTES ((uint64_t)2 << 30)

struct shard_header {
    uint32_t version;
    uint32_t token_bytes; /* width of one stored token: 2 or 4 */
    uint64_t n_tokens;
    uint32_t vocab_size;
    uint32_t kind;     /* enum tok_kind */
    uint64_t checksum; /* FNV-1a 64 of the stored token bytes */
};

/* A loaded shard: tokens widened to uint32 in one allocation owned by the shard. */
struct shard {
    struct shard_header hdr;
    uint32_t *tokens;
    char path[SW_ERR_FILE_MAX];
};

/* Width used for a vocabulary: 2 bytes when every id fits (vocab <= 65536), else 4. */
uint32_t shard_token_bytes_for(uint32_t vocab_size);

/* Write ids[0..n) atomically (temporary file, fsync, rename) as a shard. SW_EINVAL if an id is
 * >= vocab_size or vocab_size is 0; SW_ERANGE past SHARD_MAX_BYTES; SW_ENOMEM; SW_EIO. */
int shard_write(const char *path, const uint32_t *ids, uint64_t n, uint32_t vocab_size,
                enum tok_kind kind, struct sw_err *err);

/* Read and validate only the header against the file's size (no checksum). Errors name the
 * file: SW_ENOENT, SW_EIO, SW_EPARSE (bad magic, version, width, reserved bytes, truncated,
 * size/count mismatch). */
int shard_read_header(const char *path, struct shard_header *out, struct sw_err *err);

/* Load a whole shard with full validation (everything shard_read_header checks, plus the
 * checksum and every token < vocab size). Memory: 4 bytes per token, fallible (SW_ENOMEM).
 * On success release with shard_release(); on failure *s holds nothing. */
void shard_init(struct shard *s);
int shard_load(const char *path, struct shard *s, struct sw_err *err);
void shard_release(struct shard *s);

/* ---------------------------------------------------------------- data prepare */

struct data_prepare_opts {
    const char *input_path; /* UTF-8 (or any bytes) text */
    const char *out_dir;    /* created if missing */
    enum tok_kind kind;
    const char *vocab_path;  /* TOK_GPT2 only */
    const char *merges_path; /* TOK_GPT2 only */
    double val_fraction;     /* in [0, 0.5]; default 0.1 */
    int64_t seq_len;         /* val gets at least seq_len + 1 tokens when possible; default 1024 */
};
void data_prepare_opts_init(struct data_prepare_opts *o);

struct data_prepare_result {
    uint64_t source_bytes;
    uint64_t source_fnv1a64;
    uint32_t vocab_size;
    uint64_t n_train_tokens, n_val_tokens;
    char train_path[SW_ERR_FILE_MAX], val_path[SW_ERR_FILE_MAX], meta_path[SW_ERR_FILE_MAX];
};

/* Tokenize a text file and write <out_dir>/train.bin, <out_dir>/val.bin (the last
 * val_fraction of the tokens) and <out_dir>/meta.yaml, each atomically. The input is read whole
 * (at most DATA_MAX_INPUT_BYTES). Errors name the file: SW_ENOENT / SW_EINVAL / SW_EPARSE for
 * bad input (missing, empty, too few tokens, bad tokenizer files), SW_EIO, SW_ENOMEM. */
#define DATA_MAX_INPUT_BYTES ((size_t)256 << 20)
int data_prepare(const struct data_prepare_opts *o, struct data_prepare_result *r,
                 struct sw_err *err);

/* Token counts of a split: val = max(ceil(val_fraction * n), seq_len + 1) when that still
 * leaves train at least seq_len + 1 tokens, else ceil(val_fraction * n); val_fraction 0 gives
 * no val tokens. Pure; exposed for tests. */
uint64_t data_val_tokens(uint64_t n, double val_fraction, int64_t seq_len);

/* ---------------------------------------------------------------- batch loader
 * Deterministic, stateless sampling (docs/data-format.md, "Batches"): the global batch of step
 * k holds sequences s = k*B + b for b in [0, B); sequence s reads the T + 1 tokens starting at
 * (offset + s*T) mod n, wrapping around the end of the shard; offset = splitmix64(seed) mod n.
 * Inputs are the first T tokens, targets the last T (shifted by one). With world > 1, rank r
 * gets rows [r*B/world, (r+1)*B/world) of that same global batch, so the ranks' slices
 * concatenate to the single-process batch. The state is (step) alone: resume is exact. */
struct loader {
    const uint32_t *tokens; /* borrowed from the shard */
    uint64_t n_tokens;
    int64_t batch;   /* B: global sequences per step */
    int64_t seq_len; /* T */
    int rank, world;
    uint64_t offset; /* first window start of step 0, from the seed */
};

/* Borrows s->tokens (the shard must outlive the loader). SW_EINVAL if B or T < 1, world < 1,
 * rank outside [0, world), B not divisible by world, or the shard has fewer than T + 1 tokens. */
int loader_init(struct loader *l, const struct shard *s, int64_t batch, int64_t seq_len,
                uint64_t seed, int rank, int world, struct sw_err *err);

/* Rows of this rank per step: B / world. */
int64_t loader_local_batch(const struct loader *l);

/* Fill inputs and targets (each loader_local_batch x T, row-major) for step `step` >= 0. */
void loader_batch(const struct loader *l, int64_t step, uint32_t *inputs, uint32_t *targets);

/* ================================================================ end of data and tokenizers */

#endif
