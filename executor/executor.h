/* executor — the public surface of the executor module: it turns a plan into a real run (model,
 * data, training loop, generation, checkpoints, metrics) on a backend. Sections are added as the
 * module grows; each section below is delimited and owned by the files it names. */
#ifndef SW_EXECUTOR_H
#define SW_EXECUTOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "advisor/advisor.h"
#include "common/common.h"
#include "executor/backend.h"

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

/* ================================================================ safetensors
 * executor/safetensors.c (docs/internals/safetensors.md): read and write safetensors files, the
 * format of Hugging Face weights, of our checkpoints and of the PyTorch reference fixtures in
 * tests/data/reference/. Layout: 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then
 * the data; offsets are relative to the data section, whose tensors are contiguous. */

enum sft_dtype {
    SFT_F64,
    SFT_F32,
    SFT_F16,
    SFT_BF16,
    SFT_I64,
    SFT_I32,
    SFT_I16,
    SFT_I8,
    SFT_U8,
    SFT_BOOL,
};
#define SFT_MAX_DIMS 8
/* Largest JSON header read or written: bounds the memory of an open (a 400B-parameter HF
 * checkpoint shard has headers of a few hundred KiB). */
#define SFT_MAX_HEADER_BYTES ((uint64_t)100 << 20)

/* "F32", "BF16", ... ("unknown" for a bad value). Never NULL. */
const char *sft_dtype_name(enum sft_dtype d);
/* Bytes per element (0 for a bad value). */
size_t sft_dtype_bytes(enum sft_dtype d);
/* The format's dtype string into *out; SW_EINVAL (no message) if unknown. */
int sft_dtype_parse(const char *s, enum sft_dtype *out);
/* F64, F32, F16 or BF16: the dtypes sft_read_f32 converts. */
bool sft_dtype_is_float(enum sft_dtype d);

/* One tensor of an open file; borrowed from the file (valid until sft_close). */
struct sft_tensor {
    const char *name;
    enum sft_dtype dtype;
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
    uint64_t n_elems;
    uint64_t begin_bytes, end_bytes; /* data_offsets: relative to the data section */
};

struct sft_file; /* opaque: an open, fully validated file */

/* Open and validate a file: header length within SFT_MAX_HEADER_BYTES and the file size,
 * strict JSON (only spaces may pad it), every entry {dtype, shape, data_offsets} with a known
 * dtype and shape x element size == end - begin, offsets that tile the data section exactly (no
 * overlap, no gap, nothing past or short of the file's end), "__metadata__" (optional) mapping
 * strings to strings. Only the header is read into memory; tensors are read on demand with
 * pread. Errors name the file (and the tensor): SW_ENOENT, SW_EIO, SW_EPARSE (every malformed
 * file), SW_ENOMEM. On success the caller closes *out with sft_close(). */
int sft_open(const char *path, struct sft_file **out, struct sw_err *err);
void sft_close(struct sft_file *f);

/* Borrowed from the file. */
const char *sft_path(const struct sft_file *f);
/* Tensors in header order: sft_at(f, i) for i < sft_count(f) (NULL past the end). */
size_t sft_count(const struct sft_file *f);
const struct sft_tensor *sft_at(const struct sft_file *f, size_t i);
/* Look a tensor up by exact name (binary search); NULL if absent. */
const struct sft_tensor *sft_find(const struct sft_file *f, const char *name);
/* end_bytes - begin_bytes. */
uint64_t sft_tensor_bytes(const struct sft_tensor *t);

/* Metadata pairs in header order (strings borrowed from the file). */
size_t sft_meta_count(const struct sft_file *f);
void sft_meta_at(const struct sft_file *f, size_t i, const char **key, const char **value);
/* The value of `key`, or NULL. */
const char *sft_meta_get(const struct sft_file *f, const char *key);
/* A metadata value parsed strictly as a number: SW_ENOENT if missing, SW_EINVAL/SW_ERANGE if
 * not a number in range; errors name the file and key. */
int sft_meta_i64(const struct sft_file *f, const char *key, int64_t min, int64_t max, int64_t *out,
                 struct sw_err *err);
int sft_meta_f64(const struct sft_file *f, const char *key, double *out, struct sw_err *err);

/* Copy a tensor's bytes as stored (any dtype, little-endian) into dst, which must hold exactly
 * sft_tensor_bytes(t) (SW_EINVAL otherwise). SW_EIO / SW_EPARSE if the file changed under us. */
int sft_read_raw(const struct sft_file *f, const struct sft_tensor *t, void *dst, size_t dst_bytes,
                 struct sw_err *err);
/* Bytes [off_bytes, off_bytes + n_bytes) of a tensor as stored, so a large tensor can be
 * streamed through a bounded buffer; SW_EINVAL for a range outside the tensor. */
int sft_read_raw_range(const struct sft_file *f, const struct sft_tensor *t, uint64_t off_bytes,
                       void *dst, size_t n_bytes, struct sw_err *err);
/* Read a floating-point tensor into n_elems floats (must equal t->n_elems), converting F64,
 * F16 and BF16 to F32 (F16/BF16 exactly, F64 rounded) in 64 KiB chunks. SW_EINVAL for an
 * integer dtype or a wrong count. */
int sft_read_f32(const struct sft_file *f, const struct sft_tensor *t, float *dst, size_t n_elems,
                 struct sw_err *err);
/* Find `name`, check its shape is exactly shape[0..ndim) and read it as F32 into dst (a model
 * loader's one call per weight). SW_ENOENT "tensor '...' is missing", SW_EINVAL naming both
 * shapes, or sft_read_f32's errors. */
int sft_load_f32(const struct sft_file *f, const char *name, int ndim, const int64_t *shape,
                 float *dst, struct sw_err *err);

/* How a computed tensor compares with a reference one (sft_compare_f32). */
struct sft_diff {
    double max_abs;     /* max |got - want| (NaN if any element is NaN) */
    double max_ref;     /* max |want|: the scale, to judge max_abs against */
    size_t n_bad;       /* elements with |got - want| > atol + rtol * |want| (or NaN) */
    size_t worst_index; /* the element furthest past its tolerance */
    double worst_got, worst_want;
};
/* Compare got[0..n) with the reference tensor `name` of f (read as F32), for tests against
 * the PyTorch fixtures: the caller asserts out->n_bad == 0 and prints the rest. SW_ENOENT if
 * the tensor is missing, SW_EINVAL if its element count is not n, SW_ENOMEM (it reads the
 * reference into a temporary buffer of 4n bytes). */
int sft_compare_f32(const struct sft_file *f, const char *name, const float *got, size_t n,
                    double atol, double rtol, struct sft_diff *out, struct sw_err *err);

/* A streaming writer: tensors are added by pointer (borrowed: each must stay valid and
 * unchanged until sft_writer_save returns), metadata is copied, and save writes the file
 * atomically (temporary file beside `path`, fsync, rename, fsync of the directory) without
 * copying tensor data. The header lists "__metadata__" first (when there is any), then the
 * tensors in data order: widest element first, otherwise in the order added, so with the
 * header padded by spaces to a multiple of 8 bytes every tensor is aligned to its element size.
 * Data is written as given (little-endian host). */
struct sft_writer; /* opaque */
/* Never fails; the caller frees with sft_writer_free(). */
struct sft_writer *sft_writer_new(void);
void sft_writer_free(struct sft_writer *w);
/* SW_EINVAL for an empty, reserved ("__metadata__") or repeated name, a bad dtype, more than
 * SFT_MAX_DIMS dimensions, a negative or overflowing shape, or NULL data for a non-empty
 * tensor. */
int sft_writer_add(struct sft_writer *w, const char *name, enum sft_dtype dtype, int ndim,
                   const int64_t *shape, const void *data, struct sw_err *err);
/* A tensor whose bytes are generated at save time (a transposed copy, say) instead of held:
 * fill(ctx, off_bytes, dst, n_bytes, err) writes bytes [off_bytes, off_bytes + n_bytes) of the
 * tensor into dst and returns 0 or a negative SW_* code (which aborts the save). It is called
 * in order, in chunks of at most SFT_FILL_CHUNK_BYTES (a multiple of 8, so chunks hold whole
 * elements), into one scratch buffer of that size that the save allocates. ctx is borrowed
 * until sft_writer_save returns. Errors as sft_writer_add. */
#define SFT_FILL_CHUNK_BYTES ((size_t)4 << 20)
typedef int (*sft_fill_fn)(void *ctx, uint64_t off_bytes, void *dst, size_t n_bytes,
                           struct sw_err *err);
int sft_writer_add_fill(struct sft_writer *w, const char *name, enum sft_dtype dtype, int ndim,
                        const int64_t *shape, sft_fill_fn fill, void *ctx, struct sw_err *err);
/* Set a metadata string (a repeated key replaces the value). SW_EINVAL for NULL. */
int sft_writer_add_meta(struct sft_writer *w, const char *key, const char *value,
                        struct sw_err *err);
/* Write the file. On failure (SW_EIO naming the file, SW_ERANGE for a header past
 * SFT_MAX_HEADER_BYTES, SW_ENOMEM for the fill scratch, or a fill callback's error) the temporary is removed and any old file at `path` is untouched. */
int sft_writer_save(const struct sft_writer *w, const char *path, struct sw_err *err);

/* ================================================================ end of safetensors */

/* ================================================================ model
 * executor/model.c: the decoder-only transformer (GPT-2 and Llama families) on a backend —
 * weights, gradients, activations, forward, backward, recompute, LoRA, bf16 storage, int8
 * weight-only generation and a KV cache. The design notes are at the top of model.c.
 *
 * Lifecycle: exec_model_opts_init(&o); set o; exec_model_plan_bytes() tells what init WILL
 * allocate per category (refuse a plan up front); exec_model_init(); exec_model_init_weights()
 * or load tensors through exec_model_tensor(); then per micro-step exec_model_forward() and
 * exec_model_backward(), exec_model_zero_grad() once per optimizer step, and
 * exec_model_weights_changed() after every write to the weights (optimizer step, load);
 * exec_model_release() at the end.
 *
 * Storage: one backend allocation per family (weights, gradients, activations, kv_cache,
 * workspace) with every tensor carved out of it. Linear weights are (out, in) row-major
 * (PyTorch nn.Linear). The Q, K, V projections are one fused (NH+2·NKV)·HS × C matrix (q rows,
 * then k rows, then v rows) and the SwiGLU gate/up projections one stacked 2F × C matrix (gate
 * rows, then up rows); the enumeration exposes HF's separate tensors as views into them. The
 * vocabulary is padded to Vp = a multiple of 128; padded embedding/head rows are zero at init
 * and their logits are ignored by the loss. */

/* LoRA targets (bit mask). GPT-2: any of Q, K, V adapts the fused c_attn as ONE adapter (as
 * PEFT's target "c_attn"); O is attn.c_proj; MLP is mlp.c_fc and mlp.c_proj. Llama: separate
 * q/k/v/o_proj adapters; MLP is gate_proj, up_proj and down_proj. */
enum exec_lora_target {
    EXEC_LORA_Q = 1u << 0,
    EXEC_LORA_K = 1u << 1,
    EXEC_LORA_V = 1u << 2,
    EXEC_LORA_O = 1u << 3,
    EXEC_LORA_MLP = 1u << 4,
    EXEC_LORA_ALL = 0x1fu,
};

/* "q,k,v,o,mlp" (comma-separated; also "qkv" and "all") into a mask. SW_EINVAL naming the
 * unknown word; an empty string is SW_EINVAL. */
int exec_lora_targets_parse(const char *s, unsigned *out, struct sw_err *err);

/* Rows per emulated fp16 matmul call: its rounded-operand buffer holds this many rows of the
 * widest matmul input and output (advisor/memory.c counts the same bytes). */
#define EXEC_F16_EMU_ROWS 64

struct exec_model_opts {
    /* PREC_FP32, or PREC_BF16_MIXED: a bf16 copy of the weights is what matmuls use (where
     * be->has_native_bf16(), the forward and input-gradient matmuls run the native bf16
     * kernel with fp32 accumulation; elsewhere the copy is widened to fp32 per matmul into
     * workspace and the fp32 matmul runs: emulated), fp32 master weights, fp32 gradients and
     * activations; PREC_FP16_MIXED: the same with an IEEE fp16 copy, and every base matmul's
     * operands (activations, dout) rounded to fp16 too, as fp16 tensor cores take them (the
     * backend's matmul_f16_*, else emulated EXEC_F16_EMU_ROWS rows at a time: the training
     * loop scales the loss). Others: SW_EUNSUPPORTED. */
    enum sw_precision precision;
    /* NONE keeps every layer's activations. SELECTIVE keeps QKV but not the attention core
     * outputs (naive: the B·NH·T² probabilities; flash: the log-sum-exp; both: the attention
     * output before the O projection) and recomputes the core from QKV during backward into a
     * one-layer buffer. FULL keeps only each layer's input and re-runs the layer's forward into
     * one-layer buffers during backward. All three give bit-identical gradients. */
    enum sw_recompute recompute;
    enum sw_attention attention; /* ATTN_FLASH (streaming) or ATTN_NAIVE (materialised T×T) */
    int lora_rank;               /* 0 = full training; > 0: frozen base, adapters trainable */
    unsigned lora_targets;       /* enum exec_lora_target bits; 0 with rank > 0 = Q|V */
    float lora_alpha;            /* scale = alpha/rank; 0 = rank (scale 1) */
    int batch;                   /* B: largest micro-batch forward() accepts */
    int seq;                     /* T: longest sequence forward() accepts (<= max_pos) */
    bool training;               /* false: no gradients, activations for one layer only */
    bool int8_weights;           /* inference only: per-row int8 weight-only matmuls */
    int kv_batch;                /* > 0: allocate a KV cache for this many sequences */
    int kv_seq;                  /* its length in tokens (prompt + generated), <= max_pos */
    /* ZeRO-3 (docs/distributed.md): 0 keeps every weight resident; 2 keeps only the non-layer
     * weights (embeddings, final norm, an untied head) plus two layer-sized buffers, into which
     * the layer hook (exec_model_set_layer_hook) gathers a layer's weights before it runs in
     * forward or backward. The weights themselves live in the rank's shard
     * (exec_model_set_weight_shard); m->train_params is NULL. Training, fp32, no LoRA. */
    int layer_gather_bufs;
    /* ZeRO-2/3 (docs/distributed.md): gradients are kept only for the non-layer weights plus
     * one layer buffer (under LoRA: one layer's adapters); after each layer's backward the
     * gradient hook (exec_model_set_grad_take) must take that layer's gradients, and after the
     * embedding's the non-layer ones (none under LoRA). m->train_grads is NULL. Training. */
    bool shard_grads;
};
/* fp32, no recompute, flash, no LoRA, B = 1, T = 64, training, no int8, no KV cache. */
void exec_model_opts_init(struct exec_model_opts *o);

/* Bytes per category (index enum backend_mem) and their sum. */
struct exec_mem {
    uint64_t bytes[BACKEND_MEM_COUNT];
    uint64_t total_bytes;
};

/* One named tensor, for checkpoints and the optimizer. Borrowed from the model. Views: HF's
 * q/k/v_proj and gate/up_proj are row blocks of the fused matrices; the embedding and an
 * untied head cover the V real rows only (the padded rows stay zero, with zero gradient). */
struct exec_tensor {
    /* HF layout: "h.0.attn.c_attn.weight", "model.layers.0.self_attn.q_proj.weight",
     * adapters "<module>.lora_A.weight" / "<module>.lora_B.weight" as PEFT names them. */
    char name[96];
    int ndim;            /* 1 or 2 */
    int64_t shape[2];    /* as stored here: linear weights (out, in) */
    size_t numel;
    float *data;         /* fp32 (master) values, numel contiguous floats; NULL for a layer's
                          * weight of a layer-gathered model (opts.layer_gather_bufs) */
    size_t region_off;   /* element offset of the tensor in the base (or adapter) region */
    float *grad;         /* same shape, NULL when not trainable */
    bool trainable;      /* false for a LoRA-frozen base */
    bool hf_transposed;  /* HF stores it (in, out): GPT-2 Conv1D weights; transpose on load/save */
    bool is_lora;
    enum backend_mem category;
};

struct exec_model_impl; /* internal to model.c */

/* A model. Fields are read-only to callers; model.c owns everything it points to. */
struct exec_model {
    struct model_desc desc;
    struct exec_model_opts opts;
    const struct backend *be;
    int L, C, NH, NKV, HS, F, V, Vp;
    size_t n_params;      /* base parameters (incl. padded vocabulary rows) */
    size_t n_lora_params; /* adapter parameters (0 without LoRA) */
    /* The trainable parameters and their gradients as ONE contiguous region each (the base
     * parameters when training fully, the adapters under LoRA; NULL/0 at inference), so an
     * element-wise optimizer can update them in one call. */
    float *train_params;
    float *train_grads;
    size_t n_train;
    int n_tensors;
    struct exec_tensor *tensors;
    struct exec_mem planned; /* exec_model_plan_bytes() for these options */
    struct exec_mem held;    /* what init allocated (equal to planned) */
    int kv_len;              /* tokens held in the KV cache */
    size_t layer0_off;       /* base-region offset of layer 0's first weight */
    size_t layer_n;          /* weights per layer: layer l is [layer0_off + l·layer_n, +layer_n) */
    /* bf16-mixed training on a backend with the bf16-activation entries (backend.h, the CUDA
     * plugin): the activations kept for the backward (norm outputs, qkv, attention output, MLP
     * pre-activation and activation) are stored as bf16, and on the CUDA plugin the logits too
     * (exec_model_logits_bf16); the residual stream, statistics and gradients stay fp32. */
    bool act_bf16;
    struct exec_model_impl *impl;
};

/* Exactly the bytes exec_model_init() will allocate on backend `be` per category for this
 * model and options, without allocating anything; validates like init (SW_EINVAL or
 * SW_EUNSUPPORTED with the reason). */
int exec_model_plan_bytes(const struct model_desc *d, const struct exec_model_opts *o,
                          const struct backend *be, struct exec_mem *out, struct sw_err *err);

/* Build the model on backend `be`: validates, allocates every family (weights zeroed; call
 * exec_model_init_weights() or load). On failure (SW_EINVAL, SW_EUNSUPPORTED, SW_ENOMEM naming
 * bytes and category) nothing is held; exec_model_release() is still safe. */
int exec_model_init(struct exec_model *m, const struct model_desc *d,
                    const struct exec_model_opts *o, const struct backend *be,
                    struct sw_err *err);
void exec_model_release(struct exec_model *m);

/* Deterministic initialisation from a seed, independent of threads. GPT-2 (as HF/llm.c):
 * linear and embedding weights N(0, 0.02), the residual projections (attn.c_proj, mlp.c_proj)
 * N(0, 0.02/sqrt(2L)), biases 0, norm weights 1. Llama: the same rule (o_proj and down_proj
 * scaled by 1/sqrt(2L) — a GPT-2/Megatron choice; HF Llama uses plain 0.02), RMSNorm
 * weights 1. Padded vocabulary rows 0. LoRA: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
 * kaiming_uniform(a=sqrt(5))), B = 0, so the adapted model starts equal to the base. Each tensor
 * draws from its own stream seeded by (seed, tensor index). */
void exec_model_init_weights(struct exec_model *m, uint64_t seed);

/* Call after changing weights (optimizer step, checkpoint load): the bf16 or int8 copies are
 * refreshed from the fp32 master at the next forward. */
void exec_model_weights_changed(struct exec_model *m);
/* Refresh those copies now if they are stale, instead of in the next forward (generation does
 * it before its timer starts: a one-time load cost, 20 ms for GPT-2 124M on a 2-core CPU, is no
 * part of the first token's latency). */
void exec_model_refresh_derived(struct exec_model *m);

/* Index of the tensor named `name` (the "transformer." prefix of GPT-2 names is accepted),
 * or -1. */
int exec_model_find_tensor(const struct exec_model *m, const char *name);

/* Forward over tokens (B,T) (ids in [0,V)) with B <= opts.batch, T <= opts.seq. With targets
 * (B,T) (a class in [0,V) or -1 to ignore), *loss (may be NULL) is the mean cross-entropy over
 * the valid targets (0 when none); targets NULL computes logits only. Afterwards
 * exec_model_logits() holds the (B·T, Vp) logits until backward. SW_EINVAL for a bad size or
 * token id (nothing computed). */
int exec_model_forward(struct exec_model *m, const int *tokens, const int *targets, int B, int T,
                       float *loss, struct sw_err *err);

/* (B·T, Vp) logits of the last forward, row-major; columns >= V are meaningless. Borrowed, in
 * the backend's memory (read it with be->memcpy(..., BACKEND_D2H) unless be->host_memory). */
const float *exec_model_logits(const struct exec_model *m);
/* The same logits where the model keeps them in bf16 (m->act_bf16 on a backend with bf16
 * logits, the CUDA plugin: exec_model_logits is then NULL); NULL otherwise. */
const uint16_t *exec_model_logits_bf16(const struct exec_model *m);

/* Gradients of grad_scale · (mean loss of the last forward) ADDED to the gradients (use
 * grad_scale = 1/accum for accumulation). Needs a training model and a forward with targets
 * since the last backward (else SW_EINVAL). Overwrites the logits with their gradient. */
int exec_model_backward(struct exec_model *m, float grad_scale, struct sw_err *err);

/* Zero every gradient (no-op at inference). */
void exec_model_zero_grad(struct exec_model *m);

/* Gradient-ready hook: during exec_model_backward, after each layer (L-1 first, down to 0)
 * fn(ctx, ready_from, err) is called with train_grads[ready_from, n_train) final for this
 * backward (they will not change again until the next backward), and once more with 0 after
 * the embedding. A negative return stops the backward, which returns it. fn NULL removes the
 * hook. The hook may read and write that final range (e.g. reduce it in place). */
typedef int (*exec_grad_ready_fn)(void *ctx, size_t ready_from, struct sw_err *err);
void exec_model_set_grad_ready(struct exec_model *m, exec_grad_ready_fn fn, void *ctx);

/* Sharded gradients (opts.shard_grads; ZeRO-2/3): during exec_model_backward, after each layer
 * (L-1 first) fn(ctx, src, off, n, err) gets this backward's gradients of trainable-region
 * elements [off, off + n) (the base region, or the adapters under LoRA) in src (the model's buffer, in its backend's memory; overwritten after the
 * call), then the non-layer ones in one or two more calls after the embedding. Each range
 * comes exactly once per backward; the hook must add it where it keeps gradients. A negative
 * return stops the backward. Required before a backward of such a model. */
typedef int (*exec_grad_take_fn)(void *ctx, const float *src, size_t off, size_t n,
                                 struct sw_err *err);
void exec_model_set_grad_take(struct exec_model *m, exec_grad_take_fn fn, void *ctx);
bool exec_model_grads_sharded(const struct exec_model *m);

/* Layer-gathered models (opts.layer_gather_bufs > 0; docs/distributed.md, ZeRO-3). */
bool exec_model_layer_gather(const struct exec_model *m);
/* Layer hook: before layer l runs in forward or backward (recompute included) and its weights
 * are not in its buffer (l % 2) already, fn(ctx, l, dst, off, n, err) must fill dst[0..n) with
 * elements [off, off + n) of the base region. Every rank runs the same layers in the same
 * order, so the hook may be collective. A negative return stops the forward or backward, which
 * returns it. Setting it (fn NULL removes it) forgets the buffers' contents, as does
 * exec_model_weights_changed. */
typedef int (*exec_layer_fill_fn)(void *ctx, int layer, float *dst, size_t off, size_t n,
                                  struct sw_err *err);
void exec_model_set_layer_hook(struct exec_model *m, exec_layer_fill_fn fn, void *ctx);
/* Where this rank's shard [lo, hi) of the base region lives (borrowed; e.g. the ZeRO-3
 * optimizer's own parameters): exec_model_init_weights and exec_model_write_weights write the
 * shard's part of what they write there. */
void exec_model_set_weight_shard(struct exec_model *m, float *shard, size_t lo, size_t hi);
/* Write elements [off, off + n) of the base region from HOST memory src: all into the model, or in gather
 * mode the resident part into the model and the part inside the weight shard into the shard
 * (the rest is dropped). Call exec_model_weights_changed afterwards. */
void exec_model_write_weights(struct exec_model *m, size_t off, const float *src, size_t n);
/* The resident copy of base-region element off, or NULL for a layer's weight in gather mode. */
float *exec_model_resident(struct exec_model *m, size_t off);

/* KV-cache generation (needs opts.kv_batch > 0). prefill resets the cache and runs B prompts
 * of the same length T (B <= kv_batch, T <= kv_seq, T <= opts.seq is NOT required); decode
 * appends one token per sequence at position kv_len. Both give the (B, Vp) logits of the last
 * position in *logits (borrowed, host memory on every backend, valid until the next call);
 * logits NULL skips that copy, for a caller that reads only exec_model_argmax.
 * SW_EINVAL for bad ids or sizes, SW_ERANGE when the cache is full. */
int exec_model_prefill(struct exec_model *m, const int *tokens, int B, int T,
                       const float **logits, struct sw_err *err);
int exec_model_decode(struct exec_model *m, const int *tokens, int B, const float **logits,
                      struct sw_err *err);
/* Greedy decoding where the logits are: out[b] (host, B ints) = the argmax of row b of the
 * last prefill or decode's logits (gen_argmax's rule, through the backend's argmax_rows), so a
 * device backend copies B ints instead of B·Vp logits. SW_EINVAL before any prefill. */
int exec_model_argmax(struct exec_model *m, int *out, struct sw_err *err);

/* ================================================================ end of model */

/* ================================================================ train
 * executor/optimizer.c (the optimizers over the model's trainable region, LR schedules,
 * gradient clipping), executor/train.c (one process's training loop), executor/metrics.c
 * (metrics.jsonl, report.yaml, progress text, peak RSS) and executor/run.c (`scalewise run`:
 * a plan checked, its data prepared, a model trained, checkpoints written). The user guide is
 * docs/run.md. */

/* ---------------------------------------------------------------- optimizer
 * One optimizer over m->train_params / m->train_grads (m->n_train floats). Weight decay is
 * decoupled (AdamW, Lion, Adafactor) or L2 (SGD, as torch) and applies ONLY to tensors of two
 * or more dimensions (linear weights, embeddings, LoRA matrices), never to biases and norm
 * weights: the GPT-2 / nanoGPT / llm.c rule. Elements of the region that belong to no tensor
 * (alignment gaps, padded vocabulary rows) have zero gradient and stay zero. */

struct exec_optim_config {
    enum sw_optimizer kind;
    double beta1;        /* Adam/Lion first moment; SGD-momentum: the momentum */
    double beta2;        /* Adam/Lion second moment (unused by SGD and Adafactor) */
    double eps;          /* Adam epsilon */
    double weight_decay; /* >= 2-D tensors only */
};
/* AdamW, beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1 (the plan's train defaults). */
void exec_optim_config_init(struct exec_optim_config *c);

/* One named state buffer, for checkpoints ("optim.<name>" there). Borrowed from the optimizer. */
struct exec_optim_buf {
    char name[112]; /* "m", "v", "momentum", "adam8.3", "h.0.attn.c_attn.weight.row", ... */
    enum sft_dtype dtype; /* SFT_F32, or SFT_U8 for 8-bit AdamW's packed blocks */
    uint64_t n_elems;
    void *data;
};

/* Where some bytes of a (possibly sharded) optimizer's state sit in the unsharded layout
 * (exec_optimizer_full_layout): `bytes` bytes at `off_bytes` into full buffer `buf`. */
struct exec_optim_extent {
    int buf;
    uint64_t off_bytes;
    uint64_t bytes;
    void *data; /* this optimizer's copy; borrowed from its state */
};

struct exec_optim_seg;    /* internal to optimizer.c */
struct exec_optim_factor; /* internal to optimizer.c */

/* Fields are read-only to callers. */
struct exec_optimizer {
    struct exec_optim_config cfg;
    struct exec_model *model; /* borrowed */
    int64_t step;             /* updates applied so far (the kernels' 1-based step is step+1) */
    uint64_t state_bytes;     /* what init allocated (== exec_optimizer_plan_bytes unsharded) */
    void *state;              /* one backend allocation, category optimizer (NULL for SGD) */
    int n_seg;
    struct exec_optim_seg *seg; /* runs of the region with one weight-decay setting */
    /* seg as the backend's one-launch table (optim_step_segments), built at init; NULL where
     * the backend has no such entry or the optimizer is Adafactor */
    struct backend_opt_seg *bseg;
    int n_factor;
    struct exec_optim_factor *factor; /* Adafactor: one per trainable tensor */
    int n_bufs;
    struct exec_optim_buf *bufs;
    /* ZeRO (docs/distributed.md): the elements [lo, hi) of the region this optimizer updates
     * (the whole region unless built by exec_optimizer_init_shard). params and grads point at
     * element lo: into the model's region, or params is the optimizer's own copy of the shard
     * (ZeRO-3, allocated through param_be). */
    size_t lo, hi;
    bool sharded; /* built by exec_optimizer_init_shard (one rank's part of a ZeRO run) */
    float *params;
    float *grads;
    const struct backend *param_be; /* non-NULL: params is owned */
    /* Sharded gradients (the model's opts.shard_grads, ZeRO-2/3): grads is the optimizer's own
     * (hi - lo) floats, category gradients, where the training loop accumulates the reduced
     * gradients of the shard. */
    bool own_grads;
    int n_ext;
    struct exec_optim_extent *ext; /* every state byte's place in the full layout */
};

/* Exactly the bytes exec_optimizer_init() will allocate (category optimizer) for this model
 * (built, with training on) and optimizer, without allocating: AdamW 8 per trainable
 * parameter, SGD 0, SGD-momentum and Lion 4, Adafactor 4·(rows + cols) per matrix and 4 per
 * vector element, 8-bit AdamW kcpu_adamw8bit_state_bytes() per run of tensors sharing a
 * weight-decay setting. SW_EINVAL for a model without trainable parameters. */
int exec_optimizer_plan_bytes(const struct exec_model *m, enum sw_optimizer kind, uint64_t *out,
                              struct sw_err *err);

/* Build the optimizer for model `m` (borrowed: must outlive it) and allocate its zeroed state
 * through m->be. SW_EINVAL (bad config, no trainable parameters), SW_ENOMEM naming the bytes.
 * On failure nothing is held; exec_optimizer_release() is still safe. */
int exec_optimizer_init(struct exec_optimizer *o, struct exec_model *m,
                        const struct exec_optim_config *c, struct sw_err *err);
void exec_optimizer_release(struct exec_optimizer *o);

/* ZeRO shard boundaries of m's trainable region for `world` ranks: rank r updates
 * [cuts[r], cuts[r+1]) (cuts has world + 1 entries): even slots of ceil(n/world), the 8-bit
 * AdamW cuts moved by advisor_zero_cut_adam8 so every piece updates exactly as unsharded.
 * SW_EUNSUPPORTED for adafactor with world > 1 (per-tensor factored state, not sharded),
 * SW_EINVAL for world < 1 or a model without trainable parameters. */
int exec_optimizer_shard_cuts(const struct exec_model *m, enum sw_optimizer kind, int world,
                              size_t *cuts, struct sw_err *err);

/* An optimizer for the elements [lo, hi) of m's region only: state for those elements, the
 * update of exactly those elements. param_be non-NULL (ZeRO-3): the optimizer keeps its own
 * fp32 copy of the shard's parameters, allocated through param_be under category weights and
 * copied from the model now (exec_optimizer_sync_params copies again after a load); the
 * caller gathers the updated shards back into the model. A layer-gathered model has no full
 * copy: the shard starts zeroed and becomes the model's weight shard
 * (exec_model_set_weight_shard), which exec_model_init_weights and loads then fill. The result is `sharded` whatever the
 * range (it is one rank's part of a ZeRO run). Errors as exec_optimizer_init, SW_EINVAL for a
 * range outside the region, SW_EUNSUPPORTED for adafactor. */
int exec_optimizer_init_shard(struct exec_optimizer *o, struct exec_model *m,
                              const struct exec_optim_config *c, size_t lo, size_t hi,
                              const struct backend *param_be, struct sw_err *err);

/* The buffers an unsharded optimizer of this config has on m (names, dtypes, sizes; data
 * NULL): the layout checkpoints hold and extents refer to. On success the caller frees *bufs
 * with free(). Errors as exec_optimizer_init. */
int exec_optimizer_full_layout(struct exec_model *m, const struct exec_optim_config *c,
                               struct exec_optim_buf **bufs, int *n_bufs, struct sw_err *err);

/* ZeRO-3: copy the model's [lo, hi) into the optimizer's own parameter shard (after weights
 * were loaded into the model). No-op when the optimizer does not own its parameters, or for a
 * layer-gathered model (whose loads write the shard directly). */
void exec_optimizer_sync_params(struct exec_optimizer *o);

/* Global L2 norm of the gradients and, when max_norm > 0, clipping as
 * torch.nn.utils.clip_grad_norm_. Returns the norm before clipping. */
double exec_optimizer_clip(struct exec_optimizer *o, double max_norm);

/* One update of every trainable parameter with learning rate lr, then
 * exec_model_weights_changed(). Increments o->step. */
void exec_optimizer_step(struct exec_optimizer *o, double lr);

/* Zero the state and the step counter (a fresh optimizer on the same model). */
void exec_optimizer_reset(struct exec_optimizer *o);

/* ---------------------------------------------------------------- learning-rate schedule
 * Warmup (llm.c): lr·(step+1)/warmup for step < warmup. After it, with
 * r = (step - warmup)/max(1, total - warmup) clamped to [0, 1]:
 *   constant: lr;  cosine: min + (lr - min)·(1 + cos(π·r))/2;  linear: lr - (lr - min)·r. */
struct exec_lr {
    enum lr_schedule schedule;
    double lr, min_lr;
    int64_t warmup_steps, total_steps;
};
/* The learning rate of optimizer step `step` (0-based). */
double exec_lr_at(const struct exec_lr *s, int64_t step);

/* ---------------------------------------------------------------- training loop (train.c) */

struct exec_train_config {
    int micro_batch; /* sequences per forward/backward */
    int grad_accum;  /* micro-batches per optimizer step: global batch = micro_batch·grad_accum */
    int seq;         /* T */
    struct exec_lr lr;
    double grad_clip;     /* 0 = measure only */
    uint64_t seed;        /* the batch sampler's seed (the loader's offset) */
    int64_t eval_batches; /* micro-batches of the validation shard per evaluation */
    /* Loss scaling (fp16-mixed; docs/run.md, "fp16-mixed and loss scaling"): loss_scale > 0 multiplies the
     * loss's gradient and the gradients are unscaled before clipping; a step whose gradients
     * are not all finite is skipped (no update; the data step and the schedule still
     * advance). loss_scale_window > 0 makes it dynamic: the scale halves on a skipped step and
     * doubles after that many finite steps in a row (PyTorch GradScaler's rule). 0: no
     * scaling. */
    double loss_scale;
    int64_t loss_scale_window;
};

/* The dynamic loss scale's bounds: below the floor the forward itself overflows fp16 (the
 * step fails with SW_ERANGE rather than skip forever); the ceiling keeps a model whose
 * gradients are all zero from growing the scale to infinity. */
#define EXEC_LOSS_SCALE_MIN (1.0 / 16777216.0) /* 2^-24 */
#define EXEC_LOSS_SCALE_MAX 281474976710656.0  /* 2^48 */

/* What one optimizer step did. */
struct exec_step_stats {
    int64_t step;     /* the step just done, 0-based (its data step) */
    double loss;      /* mean training loss over the step's micro-batches (every rank's) */
    double lr;
    double grad_norm; /* before clipping */
    double step_s;    /* wall time of the step */
    int64_t tokens;   /* tokens trained on in the step (the global batch, every rank) */
    double comm_s;    /* of step_s, seconds inside collectives (0 in one process) */
    double loss_scale; /* the scale this step ran with (0: no scaling) */
    bool skipped;      /* loss scaling found non-finite gradients: no update was made */
};

/* Gradient buckets of data parallelism: collectives move at most this many bytes at once
 * (PyTorch DDP's default bucket, strategy reference 3.7). */
#define EXEC_DP_BUCKET_BYTES ((size_t)25 << 20)

struct comm; /* executor/comm.h */

/* The loop's state: (model, optimizer) borrowed, loaders over borrowed shards, batch buffers
 * allocated once (no per-step allocation). t->step is the next optimizer step and also the
 * next data step, so a restored step resumes the data exactly. */
/* ---------------------------------------------------------------- staged collectives
 * (executor/comm_stage.c) The comm engine's collectives on buffers in a backend's memory:
 * direct when the engine reaches that memory (CPU + MPI, anything + NCCL), else chunk by chunk
 * through a host staging buffer (a GPU over MPI, the device simulator over MPI). Host buffers
 * go to the struct comm entries themselves, on any engine. Arguments and results as the
 * struct comm entries of executor/comm.h. */
#define EXEC_STAGE_BYTES ((size_t)4 << 20)
struct comm;
struct exec_comm_stage {
    struct comm *comm;       /* borrowed */
    const struct backend *be; /* borrowed */
    bool direct;
    void *host; /* EXEC_STAGE_BYTES host bytes, allocated on first need */
};
void exec_comm_stage_init(struct exec_comm_stage *s, struct comm *c, const struct backend *be);
void exec_comm_stage_release(struct exec_comm_stage *s);
int exec_stage_allreduce(struct exec_comm_stage *s, float *buf, size_t n, struct sw_err *err);
int exec_stage_reduce_scatter(struct exec_comm_stage *s, const float *send, float *recv,
                              size_t n, struct sw_err *err);
/* comm.h reduce_sum: recv (root only; NULL elsewhere is fine) = the ranks' sum of send[0..n). */
int exec_stage_reduce(struct exec_comm_stage *s, const float *send, float *recv, size_t n,
                      int root, struct sw_err *err);
int exec_stage_allgather(struct exec_comm_stage *s, const float *send, float *recv, size_t n,
                         struct sw_err *err);
int exec_stage_broadcast(struct exec_comm_stage *s, void *buf, size_t bytes, int root,
                         struct sw_err *err);

struct exec_trainer {
    struct exec_model *model;
    struct exec_optimizer *opt;
    struct exec_train_config cfg;
    struct loader train;
    struct loader val;
    bool has_val;
    int64_t step;
    uint32_t *batch_in, *batch_tgt; /* this rank's batch (micro_batch·grad_accum, T) */
    int *tokens, *targets;          /* one micro-batch as the model takes it */
    /* Data parallelism (exec_trainer_init_dp; docs/distributed.md). comm NULL: one process. */
    struct comm *comm; /* borrowed */
    int rank, world;
    int zero;          /* 0 DDP, 1-3 ZeRO stage */
    bool gather;       /* ZeRO-3: the model's layer hook gathers each layer from the shards */
    size_t *cuts;      /* world + 1 shard boundaries of the region (ZeRO), owned */
    size_t slot;       /* largest shard: each rank's slot in a collective */
    size_t chunk;      /* floats per rank per collective round */
    float *stage;      /* (world + 1)·chunk floats, category workspace (ZeRO); NULL for DDP */
    /* DDP: reduce each gradient bucket during the last backward as soon as its layers are done
     * (true after init) or all after the backward; the gradients are bitwise the same. Init
     * reads SCALEWISE_DDP_OVERLAP (0/1) and SCALEWISE_DDP_BUCKET_BYTES to override both. */
    bool ddp_overlap;
    size_t bucket;       /* DDP bucket in elements: EXEC_DP_BUCKET_BYTES / 4 after init */
    size_t buckets_left; /* DDP buckets [0, buckets_left) not yet reduced in this step */
    struct exec_comm_stage cs; /* the collectives on the model's memory (comm non-NULL) */
    int64_t grad_reduce_calls; /* ZeRO-2/3: gradient reduces issued in the last step */
    /* Loss scaling (cfg.loss_scale > 0): the current scale, the finite steps in a row since
     * it last changed, and the steps skipped so far. A checkpoint carries all three. */
    double loss_scale;
    int64_t loss_scale_good;
    int64_t skipped_steps;
};

/* SW_EINVAL when the model cannot take a micro-batch (opts.batch < micro_batch, opts.seq <
 * seq), the shard's vocabulary exceeds the model's, or the loader refuses the shard (too
 * short). val may be NULL (no evaluation). */
int exec_trainer_init(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                      const struct exec_train_config *c, const struct shard *train,
                      const struct shard *val, struct sw_err *err);
void exec_trainer_release(struct exec_trainer *t);

/* exec_trainer_init for one rank of a data-parallel run over `comm` (NULL or world 1: one
 * process, as exec_trainer_init). The global batch of a step is micro_batch·grad_accum·world
 * sequences, the same as one process with grad_accum·world micro-batches; this rank trains on
 * its rows (the loader's rank slice). zero 0 (DDP): every rank holds the whole optimizer; the
 * gradients are all-reduced in EXEC_DP_BUCKET_BYTES buckets, each during the last micro-batch's
 * backward once its layers are done (t->ddp_overlap, the default; false: all after it). zero 1: o must be the shard
 * [cuts[rank], cuts[rank+1]) of exec_optimizer_shard_cuts; gradients are reduce-scattered once
 * per step, the rank clips and updates its shard, the parameters are all-gathered. zero 2:
 * reduce-scatter after every micro-batch into the rank's slice of the gradient region, which
 * accumulates (the rest is zeroed before the next backward). zero 3: as 2, and o owns its
 * parameter shard (exec_optimizer_init_shard with param_be) and m is layer-gathered
 * (opts.layer_gather_bufs): the trainer sets the model's layer hook, which gathers each
 * layer's weights from the ranks' shards before it runs; the non-layer weights are broadcast
 * from their owners after each update. SW_EINVAL for a
 * zero stage without a matching sharded optimizer, or as exec_trainer_init; SW_ENOMEM. */
int exec_trainer_init_dp(struct exec_trainer *t, struct exec_model *m, struct exec_optimizer *o,
                         const struct exec_train_config *c, const struct shard *train,
                         const struct shard *val, struct comm *comm, int zero,
                         struct sw_err *err);

/* One optimizer step: zero the gradients; grad_accum micro-batches of forward and backward
 * (grad_scale 1/(grad_accum·world)) over this rank's rows of the global batch of data step
 * t->step; the gradient collectives of the zero stage; clip by the global norm; the LR of that
 * step; the optimizer update (and the parameter all-gather under ZeRO). Deterministic for a
 * given seed, world and thread count. Collective: every rank calls it. */
int exec_trainer_step(struct exec_trainer *t, struct exec_step_stats *out, struct sw_err *err);

/* Mean loss over the first eval_batches micro-batches of the validation shard (the same
 * batches at every evaluation, so values are comparable; with world > 1 rank r evaluates
 * batches r, r + world, ... and the sum is gathered: a collective). Gradients are untouched.
 * SW_EINVAL without a validation shard. */
int exec_trainer_eval(struct exec_trainer *t, double *val_loss, struct sw_err *err);

/* ---------------------------------------------------------------- metrics (metrics.c) */

/* One line of metrics.jsonl: a JSON object with keys step, loss, val_loss (only when
 * evaluated), lr, grad_norm, tokens_per_s, ms_per_step, mfu (null when the peak is unknown),
 * peak_rss_bytes. */
struct exec_metrics_row {
    int64_t step; /* 1-based: optimizer steps done */
    double loss;
    bool has_val;
    double val_loss;
    double lr, grad_norm, tokens_per_s, ms_per_step;
    double mfu; /* NaN: unknown */
    uint64_t peak_rss_bytes;
    bool has_comm;  /* a data-parallel run: add comm_ms */
    double comm_ms; /* of ms_per_step, time inside collectives (rank 0's) */
    double loss_scale; /* > 0 (fp16-mixed): add loss_scale and skipped */
    bool skipped;
};

struct exec_metrics {
    FILE *f;
    char path[PLAN_PATH_MAX];
};

/* Open `path` for appending lines. With keep_through_step >= 0 (a resumed run) lines whose
 * step is above it are dropped first (rewritten atomically), so a resumed run does not repeat
 * steps; -1 starts a new file. SW_EIO naming the file. */
int exec_metrics_open(struct exec_metrics *mt, const char *path, int64_t keep_through_step,
                      struct sw_err *err);
/* Append one line and flush it (a TUI tails the file). SW_EIO. */
int exec_metrics_append(struct exec_metrics *mt, const struct exec_metrics_row *r,
                        struct sw_err *err);
void exec_metrics_close(struct exec_metrics *mt);

/* Peak resident set size of this process (VmHWM, else getrusage), bytes; 0 if unknown. */
uint64_t exec_peak_rss_bytes(void);

/* What a run measured, for report.yaml. */
struct exec_report {
    struct backend_mem_stats mem; /* the backend's counters at the end of the run */
    char backend[16];             /* the backend's name: "cpu", "cuda", "devsim" */
    uint64_t peak_rss_bytes;
    int64_t steps_done;  /* in this process */
    int64_t final_step;  /* optimizer steps done in total */
    double wall_s;
    double tokens_per_s; /* over this process's steps, evaluation excluded */
    double step_s;       /* mean wall time per step */
    double mfu;          /* NaN: unknown */
    double final_loss;
    double final_val_loss; /* NaN: never evaluated */
    int threads;
    bool interrupted;
    char checkpoint[PLAN_PATH_MAX]; /* last checkpoint written, "" = none */
    /* Data parallelism (world > 1 adds a `distributed` section): this rank, the strategy,
     * measured seconds inside collectives per step and the advisor's link model for the same
     * collectives (NaN: unknown), and the link it assumed. */
    int rank, world, zero;
    double comm_s_per_step, predicted_comm_s_per_step;
    char link[32];
    /* Loss scaling (fp16-mixed adds a `loss_scaling` section): the scale at the end and the
     * steps skipped in the whole run (a resumed run counts the earlier ones too). */
    double loss_scale;
    bool dynamic_loss_scale;
    int64_t skipped_steps;
    /* The CUDA plugin's tuned attention choices (scalewise_cuda_attention_tuning: one line
     * per shape and direction), listed as measured.attention_tuning; "" elsewhere. */
    char attention_tuning[1024];
};

/* Write report.yaml atomically: the plan's name and model, `measured` (per_device_bytes with
 * the advisor's key names — weights, gradients, optimizer, activations, kv_cache, workspace,
 * total — peak_rss_bytes, tokens_per_s, step_time_s, mfu, losses) and `predicted` (the
 * advisor's estimate of the same plan: per_device_bytes, tokens_per_s, step_time_s, mfu),
 * with their ratios. est may be NULL (predicted: null, with est_error as the reason). */
int exec_report_write(const char *path, const struct plan *p, const struct exec_report *r,
                      const struct estimate *est, const char *est_error, struct sw_err *err);

/* Progress of a run, for the caller's display (the CLI draws it; the library never prints). */
struct exec_progress {
    int64_t step, steps; /* steps done, target */
    double loss;
    bool has_val;
    double val_loss;
    double lr, tokens_per_s, elapsed_s, eta_s; /* eta_s < 0: unknown */
    double loss_scale; /* fp16-mixed: the step's loss scale ("scale 65536"); 0: none */
    bool skipped;      /* the step was skipped (non-finite gradients): " skipped" */
};
/* "[#####.....] 120/300  loss 2.3412  val 2.41  lr 6.0e-04  12.3k tok/s  ETA 0:42" within
 * `width` columns into buf (bar = true), or the same fields as a plain log line
 * "step 120/300 loss 2.3412 ..." (bar = false). Returns buf. */
const char *exec_progress_format(const struct exec_progress *p, bool bar, int width, char *buf,
                                 size_t n);

/* ---------------------------------------------------------------- run (run.c) */

/* What the CPU executor cannot do with this plan, refused up front: a CUDA device, tp/pp > 1,
 * ZeRO without dp >= 2, ZeRO with adafactor, ZeRO-3 with LoRA, offload, precisions other than
 * fp32 and bf16-mixed, quantised training weights, sizes the model refuses. SW_EUNSUPPORTED /
 * SW_EINVAL with the reason. Inference plans are refused here too (they are run by the
 * generation code). dp > 1 is checked against the processes in exec_run_train. */
int exec_run_check(const struct plan *p, struct sw_err *err);

struct exec_run_opts {
    int64_t steps;           /* > 0 replaces train.steps */
    const char *resume;      /* replaces train.resume: a checkpoint, a run directory (its
                              * latest.txt) or a Hugging Face safetensors file (weights only) */
    const char *out_dir;     /* replaces train.out_dir */
    int threads;             /* > 0 replaces strategy.threads */
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop after the current step */
    /* The processes of a data-parallel run (executor/comm.h; borrowed). NULL: one process.
     * Its world must equal the plan's dp. Only rank 0 calls on_progress/on_note. */
    struct comm *comm;
    /* Called after each optimizer step and evaluation, and with notes ("prepared data ...");
     * either may be NULL. */
    void (*on_progress)(void *ctx, const struct exec_progress *p, const struct exec_step_stats *s);
    void (*on_note)(void *ctx, const char *line);
    void *ctx;
};
void exec_run_opts_init(struct exec_run_opts *o);

struct exec_run_result {
    char out_dir[PLAN_PATH_MAX];
    char checkpoint[PLAN_PATH_MAX]; /* last checkpoint written ("" = none) */
    int64_t start_step, final_step;
    bool interrupted; /* stopped by *stop: a checkpoint was saved first */
    double final_loss, final_val_loss; /* NaN when none */
    double wall_s, tokens_per_s;
    int threads;
};

/* Train a plan on this machine (on each rank of o->comm: docs/distributed.md; rank 0 writes
 * metrics.jsonl, the consolidated checkpoints, latest.txt and report.yaml, every rank its
 * report.rank<R>.yaml and, under ZeRO, its optimizer shard ckpt_<step>.rank<R>.safetensors):
 * check it, set the OpenMP threads (strategy.threads, else
 * OpenMP's default: all cores), prepare the data when data.path is a text file (into
 * <out_dir>/data, reused when meta.yaml records the same source hash and settings) or use a
 * directory with train.bin/val.bin, build the model and optimizer, resume if asked, train with
 * evaluation and checkpoints (<out_dir>/ckpt_<step>.safetensors, latest.txt), append
 * <out_dir>/metrics.jsonl and write <out_dir>/report.yaml. Returns 0 when the run completed
 * or stopped cleanly on *stop (r->interrupted); errors as the parts it calls. */
int exec_run_train(const struct plan *p, const struct exec_run_opts *o, struct exec_run_result *r,
                   struct sw_err *err);

/* ================================================================ end of train */

/* ================================================================ checkpoint
 * executor/checkpoint.c: checkpoints as safetensors (docs/run.md, "Checkpoints"). A
 * checkpoint holds every model tensor under its Hugging Face name (GPT-2 Conv1D weights
 * transposed to HF's (in, out), so the file loads into transformers), the optimizer state as
 * "optim.<name>", and metadata: format and version, step, the sampler's seed and offset, the
 * optimizer, the model's shape, the plan hash and the plan settings it covers, and a checksum
 * of every tensor's bytes. Written atomically (sft_writer_save: temporary, fsync, rename), so a
 * kill during a save leaves the previous file intact. */

#define EXEC_CKPT_FORMAT "scalewise-checkpoint"
#define EXEC_CKPT_VERSION 1
#define EXEC_NUMERICS_MAX 2048

struct exec_ckpt_meta {
    int64_t step;         /* optimizer steps done */
    uint64_t seed;        /* the batch sampler's seed ... */
    uint64_t data_offset; /* ... and its state (struct loader.offset) */
    char plan_hash[24];   /* 16 hex digits; "" = none */
    char numerics[EXEC_NUMERICS_MAX]; /* "key=value;..." the hash covers */
    /* Loss scaling state (fp16-mixed; 0 = none): written when loss_scale > 0, read back when
     * present. */
    double loss_scale;
    int64_t loss_scale_good;
    int64_t skipped_steps;
};
void exec_ckpt_meta_init(struct exec_ckpt_meta *m);

/* The settings of a plan that change a run's numbers (model shape; precision, optimizer,
 * batch, attention, LoRA; sequence, learning rate and schedule, decay, clipping, betas, eps,
 * seed — not steps, threads, recompute, paths or logging) as "key=value;..." into
 * meta->numerics, and their FNV-1a 64 hash into meta->plan_hash. */
void exec_plan_numerics(const struct plan *p, struct exec_ckpt_meta *meta);

/* Write a checkpoint of m (and o, when not NULL) atomically. SW_EIO / SW_ERANGE; SW_EINVAL for
 * a sharded optimizer (exec_checkpoint_save_dp consolidates one). */
int exec_checkpoint_save(const char *path, const struct exec_model *m,
                         const struct exec_optimizer *o, const struct exec_ckpt_meta *meta,
                         struct sw_err *err);

/* Data-parallel save (docs/distributed.md), collective: every rank of c calls it. Rank 0
 * writes `path`, a normal checkpoint as exec_checkpoint_save writes it: with a sharded (ZeRO)
 * optimizer, rank 0 gathers every rank's state extents (broadcasts of at most 4 MiB from each
 * rank in turn) into the unsharded layout, holding the whole optimizer state while it writes.
 * Unsharded (DDP) replicas are identical: rank 0 writes its own. c NULL or world 1: a plain
 * exec_checkpoint_save. Errors as exec_checkpoint_save, SW_EINVAL when a rank's layout does not
 * fit rank 0's. */
int exec_checkpoint_save_dp(const char *path, struct exec_model *m, const struct exec_optimizer *o,
                            const struct exec_ckpt_meta *meta, struct comm *c, struct sw_err *err);

/* One rank's optimizer shard on its own (the "sharded optimizer state saved per rank"): the
 * state buffers of o as "optim.<name>" with metadata rank, world, lo, hi, step, optim_step,
 * optimizer, plan_hash and a checksum. exec_checkpoint_load_shard reads it back into an
 * optimizer of the same rank, world, shard, step and plan (else SW_EINVAL naming both), after
 * the weights came from the consolidated checkpoint: no rank then reads the whole state. */
int exec_checkpoint_save_shard(const char *path, const struct exec_optimizer *o,
                               const struct exec_ckpt_meta *meta, int rank, int world,
                               struct sw_err *err);
int exec_checkpoint_load_shard(const char *path, struct exec_optimizer *o,
                               const struct exec_ckpt_meta *expect, int rank, int world,
                               struct sw_err *err);

/* What a load found. */
enum exec_ckpt_kind { EXEC_CKPT_SCALEWISE, EXEC_CKPT_HF };

/* Load `path` into m (and o when not NULL; a sharded optimizer takes its extents of the
 * unsharded state, and one owning its parameters copies its shard of the loaded weights). A
 * scalewise checkpoint is checked completely
 * before anything is written: format version, the model's shape (message naming the first
 * difference), the plan hash against expect->plan_hash when expect is not NULL and both are
 * set (message naming the settings that differ), every tensor's name, dtype and shape, the
 * optimizer kind and state, and the checksum (a corrupt file is refused). A file without our
 * metadata is read as Hugging Face weights (exec_hf_load_weights; the optimizer is left as
 * is, out->step = 0). *out (may be NULL) receives the metadata. On failure m and o are
 * unchanged. */
int exec_checkpoint_load(const char *path, struct exec_model *m, struct exec_optimizer *o,
                         const struct exec_ckpt_meta *expect, struct exec_ckpt_meta *out,
                         enum exec_ckpt_kind *kind, struct sw_err *err);

/* Weights only, from HF-layout safetensors (F32/F16/BF16/F64): GPT-2 names with or without
 * "transformer." ("wte.weight", "transformer.h.0.attn.c_attn.weight", Conv1D weights (in, out)),
 * Llama names ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", ...).
 * Every base tensor of the model must be present with its HF shape; a tied model ignores
 * lm_head.weight; LoRA adapters are loaded when present and otherwise keep their values; other
 * tensors are ignored (padded vocabulary rows keep their zeros). When a tensor is missing or
 * has another shape, m is unchanged. */
int exec_hf_load_weights(const char *path, struct exec_model *m, struct sw_err *err);

/* ================================================================ end of checkpoint */

/* ================================================================ generate
 * executor/generate.c (docs/generate.md): sampling (temperature, top-k, top-p with a seeded
 * xoshiro256** generator), batched generation with the KV cache (prompts of different lengths),
 * the model shape from a checkpoint's metadata, and the `task: infer` runner.
 * cli/cmd_generate.c is its command-line face. */

/* xoshiro256** (Blackman & Vigna, 2018), seeded through splitmix64: deterministic per seed on
 * every machine. `stream` selects an independent sequence for the same seed (one per batch
 * row, so a row's samples do not depend on the other rows). */
struct gen_rng {
    uint64_t s[4];
};
void gen_rng_seed(struct gen_rng *r, uint64_t seed, uint64_t stream);
uint64_t gen_rng_next(struct gen_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double gen_rng_uniform(struct gen_rng *r);

/* How the next token is chosen, applied in this order (as Hugging Face's logits processors):
 * temperature, top-k, top-p, then a draw from what is left, renormalised. */
struct gen_sampling {
    double temperature; /* 0 = greedy (argmax, lowest id on ties) */
    int top_k;          /* keep the k most probable ids; 0 = off */
    double top_p;       /* keep the smallest most-probable set whose mass reaches p; 1 = off */
    uint64_t seed;
};
/* The plan defaults: temperature 1, top-k off, top-p 1 (off), seed 1337. */
void gen_sampling_init(struct gen_sampling *s);
/* SW_EINVAL naming the field: temperature in [0, 100], top_k >= 0, top_p in (0, 1]. */
int gen_sampling_check(const struct gen_sampling *s, struct sw_err *err);

/* Sampling kernels over the V real vocabulary entries (never the padded Vp columns).
 * gen_argmax: index of the largest value (lowest index on ties; NaN never chosen, a row of NaN
 * gives 0: kcpu_argmax_rows, the rule every backend's argmax_rows follows).
 * gen_softmax: probs = softmax(logits / temperature) (temperature > 0), max-subtracted, sum in
 * double.
 * gen_top_k: the indices of the min(k, V) largest probs (k <= 0: all V) into idx, sorted by
 * descending probability (ties: lower index first); returns their count. O(V log k).
 * gen_top_p: idx[0..n) sorted by descending probability; returns the smallest m >= 1 with
 * sum(probs[idx[0..m))) >= p · total (n when none). */
int gen_argmax(const float *x, int V);
void gen_softmax(float *probs, const float *logits, int V, double temperature);
int gen_top_k(const float *probs, int V, int k, int *idx);
int gen_top_p(const float *probs, const int *idx, int n, double total, double p);

/* A sampler: the settings plus scratch for one vocabulary (V floats and V ints, owned). */
struct gen_sampler {
    struct gen_sampling cfg;
    int V;
    float *probs;
    int *idx;
};
/* SW_EINVAL for bad settings or V < 1, SW_ENOMEM. Release with gen_sampler_release(). */
int gen_sampler_init(struct gen_sampler *s, const struct gen_sampling *cfg, int V,
                     struct sw_err *err);
void gen_sampler_release(struct gen_sampler *s);
/* The next token id in [0, V) from one row of logits, drawing from `rng` (unused when greedy). */
int gen_sample(struct gen_sampler *s, const float *logits, struct gen_rng *rng);

struct gen_opts {
    struct gen_sampling sampling;
    int max_new_tokens; /* >= 1 per sequence */
    int64_t eos_id;     /* a sequence stops after generating this id (kept in its tokens); -1 */
};
/* gen_sampling_init, 64 new tokens, no EOS. */
void gen_opts_init(struct gen_opts *o);

/* What exec_generate produced and how long it took (wall clock, seconds). */
struct gen_result {
    int B, max_new;
    int *tokens;       /* (B, max_new) generated ids, row-major; row b holds n_new[b] */
    int *n_new;        /* [B] */
    bool *stopped_eos; /* [B]: ended on eos_id rather than on max_new_tokens */
    int64_t prefill_tokens;  /* B x the shortest prompt: the one batched prefill call */
    int64_t forced_tokens;   /* the rest of the longer prompts, fed through decode steps */
    int64_t decode_tokens;   /* tokens sampled after a decode step */
    int decode_steps;
    double prefill_s; /* the prefill call and the first samples it gives */
    double decode_s;  /* every decode step with its sampling */
    double ttft_s;    /* start until every sequence has its first new token */
    double total_s;
    double warmup_s; /* a device backend's untimed warm-up prefill and decode step (else 0) */
    double prefill_tokens_per_s; /* prefill_tokens / prefill_s */
    double decode_tokens_per_s;  /* decode_tokens / decode_s (NaN without decode steps) */
    double decode_s_per_step;    /* decode_s / decode_steps (NaN without decode steps) */
};
void gen_result_init(struct gen_result *r);
void gen_result_release(struct gen_result *r);

/* Cache length a generation needs: longest prompt + max_new_tokens - 1 (the last new token
 * is never fed back). */
int gen_kv_tokens_needed(const int *prompt_lens, int B, int max_new_tokens);

/* Generate for B prompts (prompts[b][0..prompt_lens[b]), ids in [0, V)) on a model built with
 * kv_batch >= B and kv_seq >= gen_kv_tokens_needed(). The shortest common length is prefilled
 * for all rows at once; then one token per row per decode step: a longer prompt's remaining
 * ids (forced) until it is consumed, then sampled ids. Row b draws from its own stream
 * gen_rng_seed(seed, b), so its tokens depend only on its prompt, the settings and b. A row
 * stops on eos_id or max_new_tokens; generation ends when every row has stopped. On success
 * *r owns its arrays (gen_result_release). SW_EINVAL for bad sizes, ids or settings (nothing
 * run), SW_ENOMEM, or a model error. */
int exec_generate(struct exec_model *m, const int *const *prompts, const int *prompt_lens, int B,
                  const struct gen_opts *o, struct gen_result *r, struct sw_err *err);

/* "prefill: X tok/s, decode: Y tok/s, TTFT Z ms" ("n/a" for a missing figure) into buf. */
const char *gen_timing_line(const struct gen_result *r, char *buf, size_t n);

/* Decode ids[0..n) and append them printable: valid UTF-8, tab and newline kept; other control
 * bytes and bytes of invalid UTF-8 as the four characters "\xNN". SW_EINVAL for an id outside
 * the tokenizer, SW_ERANGE at the buffer's ceiling. */
int gen_append_text(struct sw_buf *out, const struct tokenizer *t, const int *ids, int n,
                    struct sw_err *err);

/* The model a safetensors file describes in its metadata: a scalewise checkpoint's "model.*"
 * keys (with norm_eps, rope_theta, rms_norm, swiglu, sliding_window from its plan_numerics),
 * or the bare keys of the reference fixtures (arch, layers, hidden, heads, kv_heads, head_dim,
 * ffn, vocab, max_pos, eps|norm_eps, rope_theta, tied_head, bias); arch, layers, hidden, heads
 * and vocab are required. When opts is not NULL its lora_rank and lora_targets are set from
 * the file (0 when absent), so the model built matches a LoRA checkpoint. The weights are
 * loaded with exec_checkpoint_load (checkpoint section). SW_ENOENT when the file has no model
 * metadata ("give --model ..."), SW_EINVAL/SW_ERANGE for bad values; errors name the file. */
int gen_model_desc_from_checkpoint(const char *path, struct model_desc *out,
                                   struct exec_model_opts *opts, struct sw_err *err);

/* The plan's hardware for the advisor's estimate beside a run: as loaded, or for a plan on this
 * machine (hardware probe: true) re-probed WITH the FMA loop and triad, in a forked child so
 * the triad's arrays never count in this process's peak RSS. Call it before any OpenMP thread
 * exists. On any failure, the plan's hardware. (executor/run.c) */
void exec_hardware_measured(const struct plan *p, struct hardware *out);

/* What exec_run_infer measured. */
struct exec_infer_result {
    struct gen_result gen;
    int batch, prompt_tokens;
    struct backend_mem_stats mem; /* peak bytes by category over the run */
    uint64_t peak_rss_bytes;      /* 0 when unknown */
    bool have_estimate;
    struct estimate estimate;     /* the advisor's for the same plan */
    char report_path[PLAN_PATH_MAX + 16];
};
void exec_infer_result_init(struct exec_infer_result *r);
void exec_infer_result_release(struct exec_infer_result *r);

/* Run a `task: infer` plan on the CPU: the model of the plan (shape from plan.model) with the
 * weights of infer.checkpoint, the tokenizer of plan.data (byte, or gpt2 with vocab/merges),
 * workload.batch copies of infer.prompt (or of workload.prompt_len random ids, seeded by
 * infer.seed, when the prompt is empty: a benchmark), workload.gen_len new tokens each with the
 * plan's sampling; strategy.weights fp32 | bf16 (native or emulated bf16 matmuls, as in
 * training) | int8 (weight-only); strategy.threads > 0 sets the OpenMP threads. Writes the
 * generated text (or ids, for random prompts) and the timing line to `out` (NULL: nothing),
 * and out_dir/report.yaml (out_dir created; NULL: runs/<plan name, else model name>, as
 * train.out_dir's default) with the measured figures beside the advisor's estimate.
 * SW_EUNSUPPORTED for what the CPU executor cannot do (cuda, dp/tp/pp > 1, fp16/int4 weights),
 * SW_EINVAL for a plan that is not an inference plan or lacks a checkpoint, and the errors of
 * loading and generation. */
int exec_run_infer(const struct plan *p, const char *out_dir, FILE *out,
                   struct exec_infer_result *res, struct sw_err *err);

/* ================================================================ end of generate */

#endif
