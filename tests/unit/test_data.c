/* Tests of the executor's data layer: the byte tokenizer, GPT-2 BPE against the hand-built
 * fixture in tests/data/bpe/ (expected ids from GPT-2's reference algorithm, printed by
 * tests/data/bpe/gen.py), exact round trips on arbitrary bytes, tokenizer file errors, shard
 * write/read and every corruption case, the val split, `data prepare`, and the batch loader's
 * contract (formula, shifted targets, rank slices, exact resume). Run from the repository root. */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "executor/executor.h"

#define FIX_VOCAB "tests/data/bpe/vocab.json"
#define FIX_MERGES "tests/data/bpe/merges.txt"

static char g_dir[64];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_text(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static bool contains(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

/* ---------------------------------------------------------------- tokenizers */

static void test_byte_tokenizer(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct tokenizer *t = tok_new_byte();
    CHECK_INT(tok_vocab_size(t), 256);
    CHECK_INT(tok_eos_id(t), -1);
    CHECK_INT(tok_get_kind(t), TOK_BYTE);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    uint32_t ids[256];
    size_t n = 0;
    CHECK_OK(tok_encode(t, (const char *)all, 256, ids, 256, &n, &err), &err);
    CHECK_INT(n, 256);
    CHECK_INT(ids[0], 255);
    CHECK_INT(ids[255], 0);
    struct sw_buf b;
    sw_buf_init(&b, 1 << 16);
    CHECK_OK(tok_decode(t, ids, n, &b, &err), &err);
    CHECK(b.len == 256 && memcmp(b.data, all, 256) == 0);
    uint32_t bad = 256;
    CHECK_INT(tok_decode(t, &bad, 1, &b, &err), SW_EINVAL);
    CHECK_INT(tok_encode(t, "abc", 3, ids, 2, &n, &err), SW_ERANGE);
    sw_buf_release(&b);
    tok_free(t);

    enum tok_kind k;
    CHECK_INT(tok_kind_parse("gpt2", &k, &err), 0);
    CHECK_INT(k, TOK_GPT2);
    CHECK_INT(tok_kind_parse("gpt", &k, &err), SW_EINVAL);
    CHECK(contains(err.msg, "did you mean 'gpt2'"));
}

struct bpe_case {
    const char *text;
    uint32_t ids[64];
    size_t n;
};

/* Expected ids: GPT-2's reference encoder over the fixture (tests/data/bpe/gen.py). */
static const struct bpe_case bpe_cases[] = {
    {"the", {83, 257}, 2},
    {" the", {258}, 1},
    {"Hello, world!", {39, 68, 270, 78, 11, 265, 266, 75, 67, 0}, 10},
    {"First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
     {37,  72,  81,  82,  83,  297, 286, 72,  89, 268, 25, 198, 33,  68, 69, 266,
      68,  310, 290, 81,  78,  66,  68,  68,  67, 260, 77, 88,  278, 84, 81, 83,
      257, 81,  11,  220, 257, 64,  81,  267, 68, 263, 79, 292, 74,  13, 296},
     47},
    {"I'll say it's   not\tyou 123 45678",
     {40, 301, 263, 64,  88, 220, 286, 300, 294, 289, 197,
      88, 262, 220, 306, 18, 220, 19,  20,  21,  22,  23},
     22},
    {" caf\xc3\xa9 ca f\xc3\xa9", {308, 309, 308, 278, 307}, 5},
    {"<|endoftext|>the end<|endoftext|>", {311, 83, 257, 220, 268, 67, 311}, 7},
    {"   trailing   ", {294, 256, 81, 64, 72, 75, 264, 294, 220}, 9},
    {"We love thee, and you love me.\n\n\nAll:",
     {54, 68, 305, 258, 68, 11, 272, 277, 305, 267, 68, 13, 296, 198, 32, 270, 25},
     17},
};

static void test_bpe_fixture(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct tokenizer *t = NULL;
    CHECK_OK(tok_new_gpt2(FIX_VOCAB, FIX_MERGES, &t, &err), &err);
    if (!t)
        return;
    CHECK_INT(tok_get_kind(t), TOK_GPT2);
    CHECK_INT(tok_vocab_size(t), 312);
    CHECK_INT(tok_eos_id(t), 311);
    struct sw_buf b;
    sw_buf_init(&b, 1 << 16);
    /* Twice: the second pass is served from the merge cache. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t c = 0; c < sizeof(bpe_cases) / sizeof(bpe_cases[0]); c++) {
            const struct bpe_case *bc = &bpe_cases[c];
            size_t len = strlen(bc->text), n = 0;
            uint32_t ids[128];
            CHECK_OK(tok_encode(t, bc->text, len, ids, 128, &n, &err), &err);
            size_t d = 0;
            while (d < n && d < bc->n && ids[d] == bc->ids[d])
                d++;
            CHECK_MSG(n == bc->n && d == n,
                      "case %zu: got %zu ids, expected %zu; first diff at %zu", c, n, bc->n, d);
            b.len = 0;
            CHECK_OK(tok_decode(t, ids, n, &b, &err), &err);
            CHECK(b.len == len && memcmp(b.data, bc->text, len) == 0);
        }
    uint32_t bad = 312;
    CHECK_INT(tok_decode(t, &bad, 1, &b, &err), SW_EINVAL);
    CHECK(contains(err.msg, "312"));
    sw_buf_release(&b);
    tok_free(t);
}

static void test_bpe_roundtrip(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct tokenizer *t = NULL;
    CHECK_OK(tok_new_gpt2(FIX_VOCAB, FIX_MERGES, &t, &err), &err);
    if (!t)
        return;
    static const char *const texts[] = {
        "",
        "Il \xc3\xa9tait une fois, un caf\xc3\xa9 \xc3\xa0 Paris.",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0 and emoji "
        "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d!",
        "bad utf-8: \xff\xfe \xc3 \x80\x80 end",
        "tabs\t\tand\r\nCRLF\r\n  \n\n   x  y'S 'll'LL '' '",
        "<|endoftext|><|endoftext|> <|endoftext <|endoftext|>",
        "no-break\xc2\xa0space and em\xe2\x80\x94"
        "dash 3.14159e10 x=y+z;",
    };
    struct sw_buf b;
    sw_buf_init(&b, 1 << 16);
    uint32_t ids[512];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t len = strlen(texts[i]), n = 0;
        CHECK_OK(tok_encode(t, texts[i], len, ids, 512, &n, &err), &err);
        CHECK(n <= len);
        b.len = 0;
        CHECK_OK(tok_decode(t, ids, n, &b, &err), &err);
        CHECK_MSG(b.len == len && (len == 0 || memcmp(b.data, texts[i], len) == 0), "text %zu", i);
    }
    /* Every byte value, including NUL, in a pseudo-random order. */
    unsigned char all[512];
    uint32_t x = 12345;
    for (int i = 0; i < 512; i++) {
        x = x * 1103515245u + 12345u;
        all[i] = (unsigned char)(i < 256 ? (uint32_t)i : (x >> 16));
    }
    size_t n = 0;
    CHECK_OK(tok_encode(t, (const char *)all, 512, ids, 512, &n, &err), &err);
    b.len = 0;
    CHECK_OK(tok_decode(t, ids, n, &b, &err), &err);
    CHECK(b.len == 512 && memcmp(b.data, all, 512) == 0);
    sw_buf_release(&b);
    tok_free(t);
}

/* A tokenizer load that must fail with `code`, naming `file` (and `line` when > 0), with
 * `needle` in the message. */
static void expect_tok_error(const char *vocab, const char *merges, int code, const char *file,
                             int line, const char *needle)
{
    struct sw_err err;
    sw_err_init(&err);
    struct tokenizer *t = NULL;
    int rc = tok_new_gpt2(vocab, merges, &t, &err);
    CHECK_MSG(rc == code, "rc %d, expected %d (%s)", rc, code, err.msg);
    CHECK(t == NULL);
    CHECK_STR(err.file, file);
    if (line > 0)
        CHECK_INT(err.line, line);
    CHECK_MSG(contains(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
    tok_free(t);
}

static void test_bpe_errors(void)
{
    char v[128], m[128], missing[128];
    tmp_path(v, sizeof(v), "v.json");
    tmp_path(m, sizeof(m), "m.txt");
    tmp_path(missing, sizeof(missing), "missing.json");
    expect_tok_error(missing, FIX_MERGES, SW_ENOENT, missing, 0, "cannot open");
    expect_tok_error(FIX_VOCAB, missing, SW_ENOENT, missing, 0, "cannot open");

    /* Corrupt JSON: the error carries a line. */
    write_text(v, "{\"a\": 1,\n \"b\": }\n", 17);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 2, "not valid JSON");
    write_text(v, "[1, 2]", 6);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 0, "JSON object");
    write_text(v, "{\"a\": \"x\"}", 10);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 0, "not an integer");
    write_text(v, "", 0);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 0, "");
    /* A vocabulary without all 256 byte tokens. */
    write_text(v, "{\"a\": 0, \"b\": 1}", 16);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 0, "no token for byte");
    /* A character outside GPT-2's byte alphabet (U+4E00). */
    write_text(v, "{\"\xe4\xb8\x80\": 0}", 10);
    expect_tok_error(v, FIX_MERGES, SW_EPARSE, v, 0, "byte alphabet");

    /* merges.txt: errors name the line (the "#version" line is line 1). */
    const char *bad1 = "#version: 0.2\n\xc4\xa0 t\nh e e\n";
    write_text(m, bad1, strlen(bad1));
    expect_tok_error(FIX_VOCAB, m, SW_EPARSE, m, 3, "two tokens");
    const char *bad2 = "\xc4\xa0 t\nh e\nzz q\n";
    write_text(m, bad2, strlen(bad2));
    expect_tok_error(FIX_VOCAB, m, SW_EPARSE, m, 3, "not in the vocabulary");
    const char *bad3 = "#version: 0.2\nx y\n";
    write_text(m, bad3, strlen(bad3));
    expect_tok_error(FIX_VOCAB, m, SW_EPARSE, m, 2, "merge of 'x y'");
    const char *bad4 = "h \n";
    write_text(m, bad4, strlen(bad4));
    expect_tok_error(FIX_VOCAB, m, SW_EPARSE, m, 1, "two tokens");
    /* CRLF line ends and no version line are accepted. */
    const char *ok = "\xc4\xa0 t\r\nh e\r\n";
    write_text(m, ok, strlen(ok));
    struct sw_err err;
    struct tokenizer *t = NULL;
    CHECK_OK(tok_new_gpt2(FIX_VOCAB, m, &t, &err), &err);
    if (t) {
        uint32_t ids[8];
        size_t n = 0;
        CHECK_OK(tok_encode(t, " the", 4, ids, 8, &n, &err), &err);
        CHECK_INT(n, 2); /* "Ġt" + "he": rank-3 merge "Ġt he" is not in this file */
        CHECK_INT(ids[0], 256);
        CHECK_INT(ids[1], 257);
    }
    tok_free(t);
    unlink(v);
    unlink(m);
}

static unsigned char *slurp(const char *path, size_t *len);

/* Randomly damaged tokenizer files load or fail cleanly (ASan watches), never crash, and a
 * failure always names a file: the damaged one, or merges.txt when a damaged vocabulary lost a
 * token that a merge needs. */
static void test_bpe_mutations(void)
{
    char v[128], m[128];
    tmp_path(v, sizeof(v), "mv.json");
    tmp_path(m, sizeof(m), "mm.txt");
    size_t vlen = 0, mlen = 0;
    unsigned char *vo = slurp(FIX_VOCAB, &vlen), *mo = slurp(FIX_MERGES, &mlen);
    CHECK(vo && mo);
    if (!vo || !mo) {
        free(vo);
        free(mo);
        return;
    }
    unsigned char *buf = malloc(vlen > mlen ? vlen : mlen);
    uint32_t x = 7;
    int loaded = 0, named = 0, failed = 0;
    for (int it = 0; it < 120; it++) {
        bool which = it % 2; /* 0: damage vocab.json, 1: damage merges.txt */
        const unsigned char *orig = which ? mo : vo;
        size_t len = which ? mlen : vlen;
        memcpy(buf, orig, len);
        for (int k = 0; k < 1 + it % 4; k++) {
            x = x * 1664525u + 1013904223u;
            buf[(x >> 8) % len] = (unsigned char)(x >> 24);
        }
        x = x * 1664525u + 1013904223u;
        size_t cut = it % 5 == 0 ? (x >> 8) % len : len; /* sometimes truncated too */
        write_text(which ? m : v, buf, cut);
        struct sw_err err;
        sw_err_init(&err);
        struct tokenizer *t = NULL;
        int rc = tok_new_gpt2(which ? FIX_VOCAB : v, which ? m : FIX_MERGES, &t, &err);
        if (rc == 0) {
            loaded++;
            uint32_t ids[64];
            size_t n = 0;
            tok_encode(t, " the end, we love thee", 22, ids, 64, &n, &err);
            tok_free(t);
        } else {
            failed++;
            /* Damaged merges can only be blamed on merges.txt; a damaged vocabulary may
             * surface while reading the (intact) merges, which then names that file. */
            named += strcmp(err.file, which ? m : v) == 0 ||
                     (!which && strcmp(err.file, FIX_MERGES) == 0);
        }
    }
    CHECK(failed > 0);
    CHECK_INT(named, failed);
    CHECK(loaded + failed == 120);
    free(buf);
    free(vo);
    free(mo);
    unlink(v);
    unlink(m);
}

/* ---------------------------------------------------------------- shards */

static void test_shard_roundtrip(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char p[128];
    tmp_path(p, sizeof(p), "s.bin");
    /* Width 2 (vocab 256) and width 4 (vocab 70000). */
    uint32_t vocabs[2] = {256, 70000};
    for (int k = 0; k < 2; k++) {
        uint32_t ids[1000];
        for (uint32_t i = 0; i < 1000; i++)
            ids[i] = (i * 7919u) % vocabs[k];
        enum tok_kind kind = k == 0 ? TOK_BYTE : TOK_GPT2;
        CHECK_OK(shard_write(p, ids, 1000, vocabs[k], kind, &err), &err);
        struct stat st;
        CHECK(stat(p, &st) == 0 && st.st_size == 64 + 1000 * (k == 0 ? 2 : 4));
        struct shard_header h;
        CHECK_OK(shard_read_header(p, &h, &err), &err);
        CHECK_INT(h.version, 1);
        CHECK_INT(h.token_bytes, k == 0 ? 2 : 4);
        CHECK_INT(h.n_tokens, 1000);
        CHECK_INT(h.vocab_size, vocabs[k]);
        CHECK_INT(h.kind, kind);
        struct shard s;
        CHECK_OK(shard_load(p, &s, &err), &err);
        CHECK(s.tokens && memcmp(s.tokens, ids, sizeof(ids)) == 0);
        CHECK_STR(s.path, p);
        CHECK(s.hdr.checksum == h.checksum);
        shard_release(&s);
    }
    CHECK_INT(shard_token_bytes_for(65536), 2);
    CHECK_INT(shard_token_bytes_for(65537), 4);
    /* An empty shard is valid; an id outside the vocabulary is refused on write. */
    CHECK_OK(shard_write(p, NULL, 0, 256, TOK_BYTE, &err), &err);
    struct shard s;
    CHECK_OK(shard_load(p, &s, &err), &err);
    CHECK_INT(s.hdr.n_tokens, 0);
    shard_release(&s);
    uint32_t big = 256;
    CHECK_INT(shard_write(p, &big, 1, 256, TOK_BYTE, &err), SW_EINVAL);
    unlink(p);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    struct sw_err err;
    if (sw_read_file(path, 1 << 20, &data, len, &err) < 0)
        return NULL;
    return (unsigned char *)data;
}

/* Load `path` after writing `data`; it must fail with SW_EPARSE naming the file, with `needle`
 * in the message. */
static void expect_shard_error(const char *path, const unsigned char *data, size_t len,
                               const char *needle, const char *what)
{
    write_text(path, data, len);
    struct sw_err err;
    sw_err_init(&err);
    struct shard s;
    int rc = shard_load(path, &s, &err);
    CHECK_MSG(rc == SW_EPARSE, "%s: rc %d (%s)", what, rc, err.msg);
    CHECK_MSG(strcmp(err.file, path) == 0, "%s: error names '%s'", what, err.file);
    CHECK_MSG(contains(err.msg, needle), "%s: '%s' not in '%s'", what, needle, err.msg);
    CHECK(s.tokens == NULL);
}

static void test_shard_corruption(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char good[128], bad[128];
    tmp_path(good, sizeof(good), "good.bin");
    tmp_path(bad, sizeof(bad), "bad.bin");
    uint32_t ids[300];
    for (uint32_t i = 0; i < 300; i++)
        ids[i] = (i * 31u) % 256u;
    CHECK_OK(shard_write(good, ids, 300, 256, TOK_BYTE, &err), &err);
    size_t len = 0;
    unsigned char *orig = slurp(good, &len);
    CHECK(orig && len == 64 + 600);
    if (!orig)
        return;
    unsigned char *buf = malloc(len + 1);

    struct {
        size_t off;
        unsigned char x;
        const char *needle;
    } flips[] = {
        {0, 0x01, "bad magic"},       {8, 0x02, "version"},         {12, 0x01, "token width"},
        {16, 0x01, "truncated"},      {16, 0x04, "count mismatch"}, {24, 0x01, "vocabulary size"},
        {28, 0x05, "tokenizer kind"}, {32, 0x01, "checksum"},       {63, 0x10, "reserved"},
        {64 + 10, 0x01, "checksum"},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(buf, orig, len);
        buf[flips[i].off] ^= flips[i].x;
        char what[64];
        snprintf(what, sizeof(what), "flip at byte %zu", flips[i].off);
        expect_shard_error(bad, buf, len, flips[i].needle, what);
    }
    /* Every header byte matters: flipping its top bit never yields a loadable shard. */
    for (size_t off = 0; off < 64; off++) {
        memcpy(buf, orig, len);
        buf[off] ^= 0x80;
        write_text(bad, buf, len);
        struct shard s;
        int rc = shard_load(bad, &s, &err);
        CHECK_MSG(rc == SW_EPARSE, "header byte %zu flipped: rc %d", off, rc);
        if (rc == 0)
            shard_release(&s);
    }
    expect_shard_error(bad, orig, 30, "shorter than the 64-byte", "truncated header");
    expect_shard_error(bad, orig, 0, "shorter than the 64-byte", "empty file");
    expect_shard_error(bad, orig, len - 1, "truncated", "truncated body");
    memcpy(buf, orig, len);
    buf[len] = 0;
    expect_shard_error(bad, buf, len + 1, "count mismatch", "trailing byte");
    /* A token beyond the vocabulary, with a checksum that matches it. */
    memcpy(buf, orig, len);
    buf[64 + 1] = 0x01; /* token 0 becomes 256 + ... */
    uint64_t h = data_fnv1a64(DATA_FNV1A64_INIT, buf + 64, 600);
    for (int i = 0; i < 8; i++)
        buf[32 + i] = (unsigned char)(h >> (8 * i));
    expect_shard_error(bad, buf, len, "outside the vocabulary", "token out of range");
    /* read_header alone catches header problems but not the checksum. */
    memcpy(buf, orig, len);
    buf[100] ^= 1;
    write_text(bad, buf, len);
    struct shard_header hd;
    CHECK_OK(shard_read_header(bad, &hd, &err), &err);
    struct shard s;
    CHECK_INT(shard_load(bad, &s, &err), SW_EPARSE);
    CHECK_INT(shard_load("/nonexistent/x.bin", &s, &err), SW_ENOENT);
    CHECK_STR(err.file, "/nonexistent/x.bin");
    CHECK_INT(shard_load(g_dir, &s, &err), SW_EIO); /* a directory */
    free(buf);
    free(orig);
    unlink(good);
    unlink(bad);
}

/* ---------------------------------------------------------------- prepare */

static void test_val_split(void)
{
    CHECK_INT(data_val_tokens(1000, 0.1, 10), 100);
    CHECK_INT(data_val_tokens(1000, 0.1, 200), 201); /* at least one sequence of 200 + 1 */
    CHECK_INT(data_val_tokens(300, 0.1, 200), 30);   /* train could not keep one: fraction only */
    CHECK_INT(data_val_tokens(1001, 0.1, 10), 101);  /* ceil */
    CHECK_INT(data_val_tokens(1000, 0.0, 10), 0);
    CHECK_INT(data_val_tokens(2, 0.5, 1024), 1);
    CHECK_INT(data_val_tokens(1, 0.5, 1024), 0);
}

static void test_prepare(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char in[128], out[128], p[160];
    tmp_path(in, sizeof(in), "corpus.txt");
    tmp_path(out, sizeof(out), "prep/a/b");
    const char *text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
                       "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to "
                       "die than to famish?\n";
    size_t len = strlen(text);
    write_text(in, text, len);

    for (int k = 0; k < 2; k++) {
        struct data_prepare_opts o;
        data_prepare_opts_init(&o);
        o.input_path = in;
        o.out_dir = out;
        o.seq_len = 8;
        o.val_fraction = 0.25;
        if (k == 1) {
            o.kind = TOK_GPT2;
            o.vocab_path = FIX_VOCAB;
            o.merges_path = FIX_MERGES;
        }
        struct data_prepare_result r;
        CHECK_OK(data_prepare(&o, &r, &err), &err);
        CHECK_INT(r.source_bytes, len);
        CHECK(r.source_fnv1a64 == data_fnv1a64(DATA_FNV1A64_INIT, text, len));
        CHECK_INT(r.vocab_size, k == 0 ? 256 : 312);
        uint64_t n = r.n_train_tokens + r.n_val_tokens;
        if (k == 0)
            CHECK_INT(n, len);
        else
            CHECK(n < len);
        CHECK_INT(r.n_val_tokens, data_val_tokens(n, 0.25, 8));
        /* train ++ val decodes to the input. */
        struct shard tr, va;
        CHECK_OK(shard_load(r.train_path, &tr, &err), &err);
        CHECK_OK(shard_load(r.val_path, &va, &err), &err);
        CHECK_INT(tr.hdr.n_tokens, r.n_train_tokens);
        CHECK_INT(va.hdr.n_tokens, r.n_val_tokens);
        CHECK_INT(tr.hdr.kind, o.kind);
        struct tokenizer *t = NULL;
        if (k == 0)
            t = tok_new_byte();
        else
            CHECK_OK(tok_new_gpt2(FIX_VOCAB, FIX_MERGES, &t, &err), &err);
        struct sw_buf b;
        sw_buf_init(&b, 1 << 16);
        if (t && tr.tokens && va.tokens) {
            CHECK_OK(tok_decode(t, tr.tokens, tr.hdr.n_tokens, &b, &err), &err);
            CHECK_OK(tok_decode(t, va.tokens, va.hdr.n_tokens, &b, &err), &err);
            CHECK(b.len == len && memcmp(b.data, text, len) == 0);
        }
        sw_buf_release(&b);
        tok_free(t);
        shard_release(&tr);
        shard_release(&va);
        size_t mlen = 0;
        unsigned char *meta = slurp(r.meta_path, &mlen);
        CHECK(meta != NULL);
        if (meta) {
            CHECK(contains((char *)meta, k == 0 ? "tokenizer: byte" : "tokenizer: gpt2"));
            CHECK(contains((char *)meta, k == 0 ? "eos_id: null" : "eos_id: 311"));
            char want[64];
            snprintf(want, sizeof(want), "size_bytes: %zu", len);
            CHECK(contains((char *)meta, want));
        }
        free(meta);
    }

    /* Errors name the file. */
    struct data_prepare_opts o;
    data_prepare_opts_init(&o);
    struct data_prepare_result r;
    tmp_path(p, sizeof(p), "nope.txt");
    o.input_path = p;
    o.out_dir = out;
    CHECK_INT(data_prepare(&o, &r, &err), SW_ENOENT);
    CHECK_STR(err.file, p);
    tmp_path(p, sizeof(p), "empty.txt");
    write_text(p, "", 0);
    CHECK_INT(data_prepare(&o, &r, &err), SW_EINVAL);
    CHECK(contains(err.msg, "empty"));
    o.input_path = in;
    o.kind = TOK_GPT2;
    CHECK_INT(data_prepare(&o, &r, &err), SW_EINVAL);
    o.vocab_path = "tests/data/bpe/none.json";
    o.merges_path = FIX_MERGES;
    CHECK_INT(data_prepare(&o, &r, &err), SW_ENOENT);
    CHECK_STR(err.file, "tests/data/bpe/none.json");
    o.kind = TOK_BYTE;
    o.val_fraction = 0.9;
    CHECK_INT(data_prepare(&o, &r, &err), SW_ERANGE);
    /* The output "directory" is a file. */
    o.val_fraction = 0.1;
    o.out_dir = in;
    CHECK_INT(data_prepare(&o, &r, &err), SW_EIO);
}

/* ---------------------------------------------------------------- loader */

static void test_loader(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char p[128];
    tmp_path(p, sizeof(p), "l.bin");
    /* Token i = i, so every window can be checked against the documented formula. */
    enum { N = 1003, B = 4, T = 16 };
    static uint32_t ids[N];
    for (uint32_t i = 0; i < N; i++)
        ids[i] = i;
    CHECK_OK(shard_write(p, ids, N, 65536, TOK_GPT2, &err), &err);
    struct shard s;
    CHECK_OK(shard_load(p, &s, &err), &err);
    if (!s.tokens)
        return;

    struct loader l1, l2, r0, r1;
    CHECK_OK(loader_init(&l1, &s, B, T, 42, 0, 1, &err), &err);
    CHECK_OK(loader_init(&l2, &s, B, T, 42, 0, 1, &err), &err);
    CHECK_OK(loader_init(&r0, &s, B, T, 42, 0, 2, &err), &err);
    CHECK_OK(loader_init(&r1, &s, B, T, 42, 1, 2, &err), &err);
    CHECK_INT(loader_local_batch(&l1), B);
    CHECK_INT(loader_local_batch(&r0), B / 2);
    CHECK(l1.offset < N);

    static uint32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T], rin[B * T], rtg[B * T];
    /* Record a run of 200 steps (the shard wraps around several times). */
    enum { STEPS = 200 };
    static uint32_t rec_in[STEPS][B * T];
    bool formula_ok = true, shift_ok = true, ranks_ok = true, det_ok = true;
    for (int64_t k = 0; k < STEPS; k++) {
        loader_batch(&l1, k, in, tg);
        memcpy(rec_in[k], in, sizeof(in));
        loader_batch(&l1, k, in2, tg2);
        det_ok &= memcmp(in, in2, sizeof(in)) == 0 && memcmp(tg, tg2, sizeof(tg)) == 0;
        for (int b = 0; b < B; b++) {
            uint64_t start = (l1.offset + (uint64_t)(k * B + b) * T) % N;
            for (int i = 0; i < T; i++) {
                formula_ok &= in[b * T + i] == (start + (uint64_t)i) % N;
                shift_ok &= tg[b * T + i] == (start + (uint64_t)i + 1) % N;
                if (i + 1 < T)
                    shift_ok &= tg[b * T + i] == in[b * T + i + 1];
            }
        }
        /* World of 2: rank 0's rows then rank 1's rows are the single-process batch. */
        loader_batch(&r0, k, rin, rtg);
        loader_batch(&r1, k, rin + (B / 2) * T, rtg + (B / 2) * T);
        ranks_ok &= memcmp(rin, in, sizeof(in)) == 0 && memcmp(rtg, tg, sizeof(tg)) == 0;
    }
    CHECK(det_ok);
    CHECK(formula_ok);
    CHECK(shift_ok);
    CHECK(ranks_ok);
    /* Resume: a fresh loader started at step 137 continues exactly. */
    struct loader res;
    CHECK_OK(loader_init(&res, &s, B, T, 42, 0, 1, &err), &err);
    bool resume_ok = true;
    for (int64_t k = 137; k < STEPS; k++) {
        loader_batch(&res, k, in, tg);
        resume_ok &= memcmp(in, rec_in[k], sizeof(in)) == 0;
    }
    CHECK(resume_ok);
    /* Non-overlapping: within one pass over the shard no input window starts twice. */
    static bool seen[N];
    bool overlap = false;
    for (int64_t q = 0; q < N / T; q++) {
        uint32_t st = rec_in[q / B][(q % B) * T];
        overlap |= seen[st];
        seen[st] = true;
    }
    CHECK(!overlap);
    /* The seed moves the start; a huge step does not overflow. */
    struct loader other;
    CHECK_OK(loader_init(&other, &s, B, T, 43, 0, 1, &err), &err);
    CHECK(other.offset != l1.offset);
    int64_t huge = (int64_t)1 << 60;
    loader_batch(&l1, huge, in, tg);
    unsigned __int128 seq = (unsigned __int128)huge * B;
    uint64_t start = (uint64_t)((l1.offset + (seq % N) * T) % N);
    CHECK_INT(in[0], start);
    /* Bad configurations. */
    CHECK_INT(loader_init(&other, &s, 3, T, 1, 0, 2, &err), SW_EINVAL);
    CHECK_INT(loader_init(&other, &s, B, T, 1, 2, 2, &err), SW_EINVAL);
    CHECK_INT(loader_init(&other, &s, B, N, 1, 0, 1, &err), SW_EINVAL);
    CHECK(contains(err.msg, "fewer than one sequence"));
    CHECK_STR(err.file, p);
    CHECK_OK(loader_init(&other, &s, B, N - 1, 1, 0, 1, &err), &err);
    CHECK_INT(loader_init(&other, &s, 0, T, 1, 0, 1, &err), SW_EINVAL);
    shard_release(&s);
    unlink(p);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/sw_test_data_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_byte_tokenizer);
    RUN(test_bpe_fixture);
    RUN(test_bpe_roundtrip);
    RUN(test_bpe_errors);
    RUN(test_bpe_mutations);
    RUN(test_shard_roundtrip);
    RUN(test_shard_corruption);
    RUN(test_val_split);
    RUN(test_prepare);
    RUN(test_loader);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return harness_finish("test_data");
}
