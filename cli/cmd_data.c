/* `scalewise data`: the command-line face of the executor's data layer. Implements
 * `data prepare` (flags -> struct data_prepare_opts -> data_prepare, then a summary of the
 * shards written) and `data info FILE.bin` (loads a shard with full validation and prints its
 * header), each as text, YAML or JSON. Tokenizing, the shard format and the split live in
 * executor/; this file only parses, calls and prints. Exit codes: 0 ok, 2 bad input (flags,
 * missing or malformed files), 1 I/O failure. */
#include "cli/cli_int.h"

#include <stdio.h>
#include <string.h>

#include "executor/executor.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: scalewise data prepare --input FILE --out DIR [--tokenizer byte|gpt2]\n"
               "                              [--vocab FILE --merges FILE] [--val-fraction F]\n"
               "                              [--seq-len T] [--format text|yaml|json]\n"
               "       scalewise data info FILE.bin [--format text|yaml|json]\n\n"
               "prepare: tokenize a text file and write DIR/train.bin, DIR/val.bin (the last\n"
               "F of the tokens, default 0.1, at least T + 1 tokens when the corpus allows;\n"
               "T defaults to 1024) and DIR/meta.yaml. --tokenizer byte (default: one token per\n"
               "byte, vocab 256) or gpt2 (byte-level BPE; needs --vocab encoder.json|vocab.json\n"
               "and --merges merges.txt).\n"
               "info: validate a token shard (magic, version, sizes, checksum) and print its\n"
               "header.\n\n"
               "The formats are described in docs/data.md and docs/data-format.md.\n"
               "example:\n"
               "  scalewise data prepare --input data/tinyshakespeare.txt --out "
               "/tmp/scalewise-docs/shakespeare\n");
}

static int cmd_prepare(int argc, char **argv)
{
    static const char *const flags[] = {"--input",   "--out",    "--tokenizer",
                                        "--vocab",   "--merges", "--val-fraction",
                                        "--seq-len", "--format", NULL};
    struct data_prepare_opts o;
    data_prepare_opts_init(&o);
    enum sw_fmt fmt = SW_FMT_TEXT;
    struct sw_err err;
    sw_err_init(&err);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            return cli_usage_error("data", "unexpected argument '%s'", arg);
        char name[64];
        const char *eq;
        int which = cli_flag_find("data", arg, flags, name, sizeof(name), &eq);
        if (which < 0)
            return CLI_EXIT_USAGE;
        const char *v = cli_flag_value(argc, argv, &i, eq);
        if (!v || !*v)
            return cli_usage_error("data", "%s needs a value", name);
        int rc = 0;
        double d;
        int64_t t;
        switch (which) {
        case 0:
            o.input_path = v;
            break;
        case 1:
            o.out_dir = v;
            break;
        case 2:
            rc = tok_kind_parse(v, &o.kind, &err);
            break;
        case 3:
            o.vocab_path = v;
            break;
        case 4:
            o.merges_path = v;
            break;
        case 5:
            if ((rc = sw_parse_double(v, 0.0, 0.5, "--val-fraction", &d, &err)) == 0)
                o.val_fraction = d;
            break;
        case 6:
            if ((rc = sw_parse_i64(v, 1, (int64_t)1 << 24, "--seq-len", &t, &err)) == 0)
                o.seq_len = t;
            break;
        case 7:
            rc = sw_fmt_parse(v, &fmt, &err);
            break;
        }
        if (rc < 0)
            return cli_report("data", &err);
    }
    if (!o.input_path)
        return cli_usage_error("data", "prepare needs --input FILE");
    if (!o.out_dir)
        return cli_usage_error("data", "prepare needs --out DIR");
    if (o.kind == TOK_GPT2 && (!o.vocab_path || !o.merges_path))
        return cli_usage_error(
            "data", "--tokenizer gpt2 needs --vocab FILE (encoder.json or vocab.json) and "
                    "--merges FILE (merges.txt)");
    if (o.kind == TOK_BYTE && (o.vocab_path || o.merges_path))
        return cli_usage_error("data", "--vocab and --merges apply only to --tokenizer gpt2");

    struct data_prepare_result r;
    if (data_prepare(&o, &r, &err) < 0)
        return cli_report("data", &err);

    if (fmt == SW_FMT_TEXT) {
        char sz[32];
        printf("prepared %s (%s) with the %s tokenizer (vocab %u)\n", o.input_path,
               sw_fmt_bytes((double)r.source_bytes, sz, sizeof(sz)), tok_kind_name(o.kind),
               r.vocab_size);
        printf("  train %12llu tokens  %s\n", (unsigned long long)r.n_train_tokens, r.train_path);
        printf("  val   %12llu tokens  %s\n", (unsigned long long)r.n_val_tokens, r.val_path);
        printf("  meta  %19s  %s\n", "", r.meta_path);
        return CLI_EXIT_OK;
    }
    struct sw_emit e;
    sw_emit_init(&e, stdout, fmt);
    sw_emit_map_begin(&e, NULL);
    sw_emit_str(&e, "input", o.input_path);
    sw_emit_u64(&e, "input_bytes", r.source_bytes);
    sw_emit_str(&e, "tokenizer", tok_kind_name(o.kind));
    sw_emit_u64(&e, "vocab_size", r.vocab_size);
    sw_emit_str(&e, "train", r.train_path);
    sw_emit_u64(&e, "train_tokens", r.n_train_tokens);
    sw_emit_str(&e, "val", r.val_path);
    sw_emit_u64(&e, "val_tokens", r.n_val_tokens);
    sw_emit_str(&e, "meta", r.meta_path);
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    return CLI_EXIT_OK;
}

static int cmd_info(int argc, char **argv)
{
    static const char *const flags[] = {"--format", NULL};
    const char *path = NULL;
    enum sw_fmt fmt = SW_FMT_TEXT;
    struct sw_err err;
    sw_err_init(&err);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--format", 8) == 0 && (arg[8] == '\0' || arg[8] == '=')) {
            const char *v = cli_flag_value(argc, argv, &i, arg[8] == '=' ? arg + 8 : NULL);
            if (!v || !*v)
                return cli_usage_error("data", "--format needs a value");
            if (sw_fmt_parse(v, &fmt, &err) < 0)
                return cli_report("data", &err);
        } else if (strncmp(arg, "--", 2) == 0) {
            const char *near = sw_suggest(arg, flags);
            if (near)
                return cli_usage_error("data", "unknown flag '%s'; did you mean '%s'?", arg, near);
            return cli_usage_error("data", "unknown flag '%s'", arg);
        } else if (path) {
            return cli_usage_error("data", "info takes one shard file, got '%s' too", arg);
        } else {
            path = arg;
        }
    }
    if (!path)
        return cli_usage_error("data", "info needs a shard file (FILE.bin)");
    struct shard s;
    if (shard_load(path, &s, &err) < 0)
        return cli_report("data", &err);
    const struct shard_header *h = &s.hdr;
    char sum[32];
    snprintf(sum, sizeof(sum), "0x%016llx", (unsigned long long)h->checksum);
    if (fmt == SW_FMT_TEXT) {
        printf("file         %s\n", path);
        printf("format       %s version %u\n", SHARD_MAGIC, h->version);
        printf("tokenizer    %s (kind %u)\n", tok_kind_name((enum tok_kind)h->kind), h->kind);
        printf("vocab_size   %u\n", h->vocab_size);
        printf("token_bytes  %u\n", h->token_bytes);
        printf("tokens       %llu\n", (unsigned long long)h->n_tokens);
        printf("checksum     %s (fnv1a64, verified)\n", sum);
    } else {
        struct sw_emit e;
        sw_emit_init(&e, stdout, fmt);
        sw_emit_map_begin(&e, NULL);
        sw_emit_str(&e, "file", path);
        sw_emit_str(&e, "magic", SHARD_MAGIC);
        sw_emit_u64(&e, "version", h->version);
        sw_emit_str(&e, "tokenizer", tok_kind_name((enum tok_kind)h->kind));
        sw_emit_u64(&e, "vocab_size", h->vocab_size);
        sw_emit_u64(&e, "token_bytes", h->token_bytes);
        sw_emit_u64(&e, "tokens", h->n_tokens);
        sw_emit_str(&e, "checksum_fnv1a64", sum);
        sw_emit_bool(&e, "checksum_ok", true);
        sw_emit_map_end(&e);
        sw_emit_finish(&e);
    }
    shard_release(&s);
    return CLI_EXIT_OK;
}

int cli_data(int argc, char **argv)
{
    static const char *const subs[] = {"prepare", "info", NULL};
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (cli_wants_help(argc - 1, argv + 1)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "prepare"))
        return cmd_prepare(argc - 1, argv + 1);
    if (!strcmp(argv[0], "info"))
        return cmd_info(argc - 1, argv + 1);
    const char *near = sw_suggest(argv[0], subs);
    if (near)
        return cli_usage_error("data", "unknown sub-command '%s'; did you mean '%s'?", argv[0],
                               near);
    return cli_usage_error("data", "unknown sub-command '%s'; expected 'prepare' or 'info'",
                           argv[0]);
}
