/* executor — the public surface of the executor module: it turns a plan into a real run (model,
 * data, training loop, generation, checkpoints, metrics) on a backend. Sections are added as the
 * module grows; each section below is delimited and owned by the files it names. */
#ifndef SW_EXECUTOR_H
#define SW_EXECUTOR_H

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
/* Set a metadata string (a repeated key replaces the value). SW_EINVAL for NULL. */
int sft_writer_add_meta(struct sft_writer *w, const char *key, const char *value,
                        struct sw_err *err);
/* Write the file. On failure (SW_EIO naming the file, SW_ERANGE for a header past
 * SFT_MAX_HEADER_BYTES) the temporary is removed and any old file at `path` is untouched. */
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

struct exec_model_opts {
    /* PREC_FP32, or PREC_BF16_MIXED: a bf16 copy of the weights is what matmuls use (converted
     * to fp32 per matmul into workspace; always emulated through fp32 on the CPU — the kernels
     * have no native bf16 GEMM, kcpu_has_native_bf16() only says whether the CPU could), fp32
     * master weights, fp32 gradients and activations. Others: SW_EUNSUPPORTED. */
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
    float *data;         /* fp32 (master) values, numel contiguous floats */
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

/* (B·T, Vp) logits of the last forward, row-major; columns >= V are meaningless. Borrowed. */
const float *exec_model_logits(const struct exec_model *m);

/* Gradients of grad_scale · (mean loss of the last forward) ADDED to the gradients (use
 * grad_scale = 1/accum for accumulation). Needs a training model and a forward with targets
 * since the last backward (else SW_EINVAL). Overwrites the logits with their gradient. */
int exec_model_backward(struct exec_model *m, float grad_scale, struct sw_err *err);

/* Zero every gradient (no-op at inference). */
void exec_model_zero_grad(struct exec_model *m);

/* KV-cache generation (needs opts.kv_batch > 0). prefill resets the cache and runs B prompts
 * of the same length T (B <= kv_batch, T <= kv_seq, T <= opts.seq is NOT required); decode
 * appends one token per sequence at position kv_len. Both give the (B, Vp) logits of the last
 * position in *logits (borrowed, valid until the next call). SW_EINVAL for bad ids or sizes,
 * SW_ERANGE when the cache is full. */
int exec_model_prefill(struct exec_model *m, const int *tokens, int B, int T,
                       const float **logits, struct sw_err *err);
int exec_model_decode(struct exec_model *m, const int *tokens, int B, const float **logits,
                      struct sw_err *err);

/* ================================================================ end of model */

#endif
