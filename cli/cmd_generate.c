/* `scalewise generate`: the command-line face of the executor's generation. Parses the flags,
 * finds the model (a profile, a config.json, or the checkpoint's own metadata), builds an
 * inference model with a KV cache sized for the prompts, loads the checkpoint (a scalewise
 * checkpoint or HF-layout safetensors), encodes the prompts (one, or one per line of a file: a
 * batch), generates, and prints the text (or JSON) and the timing line. Sampling, the model,
 * loading and tokenizing live in executor/; this file only parses, calls and prints. Exit
 * codes: 0 ok, 2 bad input (flags, missing or mismatched files), 1 a failure while running. */
#include "cli/cli_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "executor/executor.h"

#define MAX_PROMPTS 1024
#define MAX_PROMPT_FILE_BYTES ((size_t)16 << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scalewise generate --checkpoint FILE [--model NAME|FILE.yaml | "
            "--model-config FILE]\n"
            "                          (--prompt TEXT | --prompt-file FILE) "
            "[--max-new-tokens N]\n"
            "                          [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
            "                          [--tokenizer byte|gpt2 --vocab FILE --merges FILE]\n"
            "                          [--weights fp32|bf16|fp16|int8] [--threads N]\n"
            "                          [--format text|json]\n\n"
            "Generates text from a checkpoint with a KV cache: the prompts are prefilled, then\n"
            "decoded one token at a time, each sequence stopping at the end-of-text token or\n"
            "after N new tokens. Prints the text and \"prefill: X tok/s, decode: Y tok/s,\n"
            "TTFT Z ms\".\n\n"
            "  --checkpoint FILE          a scalewise checkpoint or Hugging Face safetensors\n"
            "                             weights (GPT-2 or Llama names)\n"
            "  --model NAME|FILE.yaml     the model's shape: a profile or a model file; default:\n"
            "  --model-config FILE        the checkpoint's metadata when it has one\n"
            "  --prompt TEXT              one prompt\n"
            "  --prompt-file FILE         one prompt per non-empty line, generated as a batch\n"
            "  --max-new-tokens N         per sequence (default 64)\n"
            "  --temperature T            0 = greedy (default 1.0)\n"
            "  --top-k K                  keep the K most likely tokens (default 0: off)\n"
            "  --top-p P                  nucleus sampling, in (0, 1] (default 1: off)\n"
            "  --seed S                   sampling seed (default 1337)\n"
            "  --tokenizer byte|gpt2      default byte; gpt2 needs --vocab and --merges\n"
            "  --weights W                the matmuls' weights: fp32 (default), bf16 or fp16\n"
            "                             (16-bit copies; fp16 also rounds the activations to\n"
            "                             fp16, as fp16 tensor cores do), int8 (weight-only)\n"
            "  --int8                     the same as --weights int8\n"
            "  --threads N                OpenMP threads (default: all usable cores)\n"
            "  --format text|json         default text\n\n"
            "The guide is docs/generate.md.\n"
            "example:\n"
            "  scalewise generate --checkpoint tests/data/reference/tiny_gpt2.safetensors "
            "--prompt \"Hello\" --max-new-tokens 16\n");
}

struct gen_args {
    const char *checkpoint, *model, *model_config, *prompt, *prompt_file;
    const char *tokenizer, *vocab, *merges;
    struct gen_opts go;
    enum sw_wformat weights; /* fp32, bf16, fp16 or int8 */
    int threads;
    enum sw_fmt fmt;
};

enum {
    F_CHECKPOINT,
    F_MODEL,
    F_MODEL_CONFIG,
    F_PROMPT,
    F_PROMPT_FILE,
    F_MAX_NEW,
    F_TEMPERATURE,
    F_TOP_K,
    F_TOP_P,
    F_SEED,
    F_TOKENIZER,
    F_VOCAB,
    F_MERGES,
    F_INT8,
    F_WEIGHTS,
    F_THREADS,
    F_FORMAT,
    F_COUNT
};

static const char *const flag_names[F_COUNT + 1] = {"--checkpoint",
                                                    "--model",
                                                    "--model-config",
                                                    "--prompt",
                                                    "--prompt-file",
                                                    "--max-new-tokens",
                                                    "--temperature",
                                                    "--top-k",
                                                    "--top-p",
                                                    "--seed",
                                                    "--tokenizer",
                                                    "--vocab",
                                                    "--merges",
                                                    "--int8",
                                                    "--weights",
                                                    "--threads",
                                                    "--format",
                                                    NULL};

static int parse_args(int argc, char **argv, struct gen_args *a)
{
    struct sw_err err;
    sw_err_init(&err);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            return cli_usage_error("generate", "unexpected argument '%s'", arg);
        char name[64];
        const char *eq;
        int which = cli_flag_find("generate", arg, flag_names, name, sizeof(name), &eq);
        if (which < 0)
            return CLI_EXIT_USAGE;
        if (which == F_INT8) {
            if (eq)
                return cli_usage_error("generate", "--int8 takes no value");
            a->weights = WFMT_INT8;
            continue;
        }
        const char *v = cli_flag_value(argc, argv, &i, eq);
        if (!v)
            return cli_usage_error("generate", "%s needs a value", name);
        int64_t i64 = 0;
        int rc = 0;
        switch (which) {
        case F_CHECKPOINT:
            a->checkpoint = v;
            break;
        case F_MODEL:
            a->model = v;
            break;
        case F_MODEL_CONFIG:
            a->model_config = v;
            break;
        case F_PROMPT:
            a->prompt = v;
            break;
        case F_PROMPT_FILE:
            a->prompt_file = v;
            break;
        case F_TOKENIZER:
            a->tokenizer = v;
            break;
        case F_VOCAB:
            a->vocab = v;
            break;
        case F_MERGES:
            a->merges = v;
            break;
        case F_MAX_NEW:
            rc = sw_parse_int(v, 1, 1 << 27, "--max-new-tokens", &a->go.max_new_tokens, &err);
            break;
        case F_TEMPERATURE:
            rc = sw_parse_double(v, 0, 100, "--temperature", &a->go.sampling.temperature, &err);
            break;
        case F_TOP_K:
            rc = sw_parse_int(v, 0, 1 << 24, "--top-k", &a->go.sampling.top_k, &err);
            break;
        case F_TOP_P:
            rc = sw_parse_double(v, 0, 1, "--top-p", &a->go.sampling.top_p, &err);
            if (rc == 0 && a->go.sampling.top_p <= 0)
                rc = sw_errf(&err, SW_ERANGE, "--top-p must be above 0 (1 turns it off)");
            break;
        case F_SEED:
            rc = sw_parse_i64(v, 0, INT64_MAX, "--seed", &i64, &err);
            a->go.sampling.seed = (uint64_t)i64;
            break;
        case F_WEIGHTS:
            rc = wformat_parse(v, &a->weights, &err);
            if (rc == 0 && a->weights == WFMT_INT4)
                rc = sw_errf(&err, SW_EINVAL,
                             "--weights int4 is not run by the executor; expected fp32, bf16, "
                             "fp16 or int8");
            break;
        case F_THREADS:
            rc = sw_parse_int(v, 1, 65536, "--threads", &a->threads, &err);
            break;
        case F_FORMAT:
            rc = sw_fmt_parse(v, &a->fmt, &err);
            if (rc == 0 && a->fmt == SW_FMT_YAML)
                rc = sw_errf(&err, SW_EINVAL, "--format yaml is not offered; use text or json");
            break;
        default:
            break;
        }
        if (rc < 0)
            return cli_usage_error("generate", "%s", err.msg);
    }
    if (!a->checkpoint)
        return cli_usage_error("generate", "--checkpoint FILE is required");
    if (!a->prompt == !a->prompt_file)
        return cli_usage_error("generate",
                               "give exactly one of --prompt TEXT and --prompt-file FILE");
    if (a->model && a->model_config)
        return cli_usage_error("generate", "give either --model or --model-config, not both");
    return 0;
}

/* The model: --model (profile name or model file), --model-config, else the checkpoint's
 * metadata (which also says whether it has LoRA adapters). */
static int resolve_model(const struct gen_args *a, struct model_desc *d, struct exec_model_opts *o,
                         struct sw_err *err)
{
    /* Open the checkpoint first so a missing or malformed file is the error reported. */
    struct sft_file *f = NULL;
    int rc = sft_open(a->checkpoint, &f, err);
    if (rc < 0)
        return rc;
    sft_close(f);
    if (a->model) {
        size_t n = strlen(a->model);
        if (strchr(a->model, '/') || (n > 5 && !strcmp(a->model + n - 5, ".yaml")))
            return model_load_file(a->model, d, err);
        return profile_load_model(a->model, d, err);
    }
    if (a->model_config)
        return model_load_hf_config(a->model_config, d, err);
    return gen_model_desc_from_checkpoint(a->checkpoint, d, o, err);
}

/* Split a prompt file into non-empty lines (a trailing '\r' dropped). */
static int read_prompts(const char *path, char **buf, char **lines, int *n, struct sw_err *err)
{
    size_t len = 0;
    int rc = sw_read_file(path, MAX_PROMPT_FILE_BYTES, buf, &len, err);
    if (rc < 0)
        return rc;
    *n = 0;
    for (char *p = *buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r')
            p[--l] = '\0';
        if (l) {
            if (*n == MAX_PROMPTS)
                return sw_err_at(err, SW_EINVAL, path, 0, 0, "more than %d prompts", MAX_PROMPTS);
            lines[(*n)++] = p;
        }
        p = nl ? nl + 1 : NULL;
    }
    if (*n == 0)
        return sw_err_at(err, SW_EINVAL, path, 0, 0, "no prompt: every line is empty");
    return 0;
}

static int make_tokenizer(const struct gen_args *a, struct tokenizer **t, struct sw_err *err)
{
    enum tok_kind kind = TOK_BYTE;
    int rc;
    if (a->tokenizer && (rc = tok_kind_parse(a->tokenizer, &kind, err)) < 0)
        return rc;
    if (kind == TOK_BYTE) {
        if (a->vocab || a->merges)
            return sw_errf(err, SW_EINVAL, "--vocab and --merges are for --tokenizer gpt2");
        *t = tok_new_byte();
        return 0;
    }
    if (!a->vocab || !a->merges)
        return sw_errf(err, SW_EINVAL, "--tokenizer gpt2 needs --vocab FILE and --merges FILE");
    return tok_new_gpt2(a->vocab, a->merges, t, err);
}

static void emit_num_or_null(struct sw_emit *e, const char *key, double v)
{
    if (isfinite(v))
        sw_emit_num_prec(e, key, v, 6);
    else
        sw_emit_null(e, key);
}

/* Everything the run holds, released in one place. */
struct gen_run {
    struct tokenizer *tok;
    char *file_buf;
    char *lines[MAX_PROMPTS];
    int B;
    int **prompts;
    int *lens;
    struct exec_model model;
    bool have_model;
    struct gen_result res;
};

static void run_release(struct gen_run *r)
{
    if (r->have_model)
        exec_model_release(&r->model);
    tok_free(r->tok);
    free(r->file_buf);
    for (int b = 0; r->prompts && b < r->B; b++)
        free(r->prompts[b]);
    free(r->prompts);
    free(r->lens);
    gen_result_release(&r->res);
}

/* Print one sequence's prompt and continuation (text mode); SW_E* on a decode error. */
static int print_text(const struct gen_run *r, int b, struct sw_err *err)
{
    struct sw_buf txt;
    sw_buf_init(&txt, (size_t)64 << 20);
    const int *gen = r->res.tokens + (size_t)b * r->res.max_new;
    int rc = gen_append_text(&txt, r->tok, r->prompts[b], r->lens[b], err);
    if (rc == 0)
        rc = gen_append_text(&txt, r->tok, gen, r->res.n_new[b], err);
    if (rc == 0) {
        if (r->B > 1)
            printf("--- sequence %d%s\n", b + 1,
                   r->res.stopped_eos[b] ? " (stopped at end of text)" : "");
        printf("%s\n", txt.data ? txt.data : "");
    }
    sw_buf_release(&txt);
    return rc;
}

static int print_json(const struct gen_run *r, const struct gen_args *a, struct sw_err *err)
{
    struct sw_emit e;
    sw_emit_init(&e, stdout, SW_FMT_JSON);
    sw_emit_map_begin(&e, NULL);
    sw_emit_str(&e, "model", r->model.desc.name);
    sw_emit_str(&e, "checkpoint", a->checkpoint);
    sw_emit_str(&e, "weights", wformat_name(a->weights));
    sw_emit_map_begin(&e, "sampling");
    sw_emit_num(&e, "temperature", a->go.sampling.temperature);
    sw_emit_i64(&e, "top_k", a->go.sampling.top_k);
    sw_emit_num(&e, "top_p", a->go.sampling.top_p);
    sw_emit_u64(&e, "seed", a->go.sampling.seed);
    sw_emit_map_end(&e);
    sw_emit_list_begin(&e, "sequences");
    int rc = 0;
    for (int b = 0; b < r->B && rc == 0; b++) {
        const int *gen = r->res.tokens + (size_t)b * r->res.max_new;
        struct sw_buf pt, gt;
        sw_buf_init(&pt, (size_t)64 << 20);
        sw_buf_init(&gt, (size_t)64 << 20);
        rc = gen_append_text(&pt, r->tok, r->prompts[b], r->lens[b], err);
        if (rc == 0)
            rc = gen_append_text(&gt, r->tok, gen, r->res.n_new[b], err);
        if (rc == 0) {
            sw_emit_map_begin(&e, NULL);
            sw_emit_str(&e, "prompt", pt.data ? pt.data : "");
            sw_emit_str(&e, "text", gt.data ? gt.data : "");
            sw_emit_i64(&e, "prompt_tokens", r->lens[b]);
            sw_emit_list_begin(&e, "tokens");
            for (int i = 0; i < r->res.n_new[b]; i++)
                sw_emit_i64(&e, NULL, gen[i]);
            sw_emit_list_end(&e);
            sw_emit_str(&e, "stopped", r->res.stopped_eos[b] ? "eos" : "length");
            sw_emit_map_end(&e);
        }
        sw_buf_release(&pt);
        sw_buf_release(&gt);
    }
    sw_emit_list_end(&e);
    const struct gen_result *g = &r->res;
    sw_emit_i64(&e, "prefill_tokens", g->prefill_tokens);
    sw_emit_i64(&e, "decode_tokens", g->decode_tokens);
    emit_num_or_null(&e, "prefill_tokens_per_s", g->prefill_tokens_per_s);
    emit_num_or_null(&e, "decode_tokens_per_s", g->decode_tokens_per_s);
    emit_num_or_null(&e, "ttft_s", g->ttft_s);
    emit_num_or_null(&e, "decode_s_per_token", g->decode_s_per_step);
#ifdef _OPENMP
    sw_emit_i64(&e, "threads", omp_get_max_threads());
#endif
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    return rc;
}

int cli_generate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    struct gen_args a;
    memset(&a, 0, sizeof(a));
    gen_opts_init(&a.go);
    a.fmt = SW_FMT_TEXT;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
#ifdef _OPENMP
    if (a.threads > 0)
        omp_set_num_threads(a.threads);
#endif
    struct sw_err err;
    sw_err_init(&err);
    struct gen_run r;
    memset(&r, 0, sizeof(r));
    gen_result_init(&r.res);
    struct model_desc d;
    struct exec_model_opts mo;
    exec_model_opts_init(&mo);
    if ((rc = resolve_model(&a, &d, &mo, &err)) < 0 || (rc = make_tokenizer(&a, &r.tok, &err)) < 0)
        goto fail;
    if (tok_vocab_size(r.tok) > (uint32_t)d.vocab) {
        rc = sw_errf(&err, SW_EINVAL,
                     "the %s tokenizer has %u ids but the model's vocabulary is %d; choose the "
                     "tokenizer the model was trained with",
                     tok_kind_name(tok_get_kind(r.tok)), tok_vocab_size(r.tok), d.vocab);
        goto fail;
    }
    const char *one[1] = {a.prompt};
    const char **texts = one;
    r.B = 1;
    if (a.prompt_file) {
        if ((rc = read_prompts(a.prompt_file, &r.file_buf, r.lines, &r.B, &err)) < 0)
            goto fail;
        texts = (const char **)r.lines;
    }
    r.prompts = sw_xcalloc((size_t)r.B, sizeof(int *));
    r.lens = sw_xcalloc((size_t)r.B, sizeof(int));
    for (int b = 0; b < r.B; b++) {
        size_t len = strlen(texts[b]);
        if (len == 0) {
            rc = sw_errf(&err, SW_EINVAL, "the prompt is empty; give at least one character");
            goto fail;
        }
        uint32_t *ids = sw_xcalloc(len, sizeof(uint32_t));
        size_t n = 0;
        rc = tok_encode(r.tok, texts[b], len, ids, len, &n, &err);
        r.prompts[b] = sw_xcalloc(n ? n : 1, sizeof(int));
        for (size_t i = 0; i < n; i++)
            r.prompts[b][i] = (int)ids[i];
        r.lens[b] = (int)n;
        free(ids);
        if (rc < 0)
            goto fail;
    }
    int need = gen_kv_tokens_needed(r.lens, r.B, a.go.max_new_tokens);
    if (need > d.max_pos) {
        int longest = need - a.go.max_new_tokens + 1;
        rc = sw_errf(&err, SW_EINVAL,
                     "a prompt of %d tokens and %d new tokens need %d positions; the model "
                     "'%s' has %d (max_pos): lower --max-new-tokens to at most %d",
                     longest, a.go.max_new_tokens, need, d.name, d.max_pos,
                     d.max_pos - longest + 1 > 0 ? d.max_pos - longest + 1 : 0);
        goto fail;
    }
    a.go.eos_id = tok_eos_id(r.tok);
    mo.training = false;
    mo.batch = 1;
    mo.seq = 1;
    mo.kv_batch = r.B;
    mo.kv_seq = need;
    mo.int8_weights = a.weights == WFMT_INT8;
    if (a.weights == WFMT_BF16)
        mo.precision = PREC_BF16_MIXED;
    else if (a.weights == WFMT_FP16)
        mo.precision = PREC_FP16_MIXED;
    if ((rc = exec_model_init(&r.model, &d, &mo, backend_for_device(false, NULL), &err)) < 0) {
        exec_model_release(&r.model);
        goto fail;
    }
    r.have_model = true;
    if ((rc = exec_checkpoint_load(a.checkpoint, &r.model, NULL, NULL, NULL, NULL, &err)) < 0)
        goto fail;
    if ((rc = exec_generate(&r.model, (const int *const *)r.prompts, r.lens, r.B, &a.go, &r.res,
                            &err)) < 0)
        goto fail;
    if (a.fmt == SW_FMT_JSON) {
        rc = print_json(&r, &a, &err);
    } else {
        for (int b = 0; b < r.B && rc == 0; b++)
            rc = print_text(&r, b, &err);
        char line[160];
        if (rc == 0)
            printf("%s\n", gen_timing_line(&r.res, line, sizeof(line)));
    }
    if (rc < 0)
        goto fail;
    run_release(&r);
    return CLI_EXIT_OK;
fail:
    run_release(&r);
    return cli_report("generate", &err);
}
