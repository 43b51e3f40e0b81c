/* Tests of executor/safetensors.c: a write/read round trip over every dtype (bytes, shapes,
 * metadata, the 8-byte aligned data section and per-dtype alignment, F16/BF16/F64 -> F32
 * conversion of known bit patterns), writer argument errors, atomic save (a failed write leaves
 * the old file and no temporary), every corruption case giving its own error that names the
 * file and the tensor, a file laid out byte for byte as the reference implementation writes it,
 * and the committed PyTorch fixtures in tests/data/reference/ (names, shapes, metadata, and
 * internal consistency: the stored loss is the cross-entropy of the stored logits). Run from
 * the repository root. */
#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "executor/executor.h"

#define FIX_GPT2 "tests/data/reference/tiny_gpt2.safetensors"
#define FIX_LLAMA "tests/data/reference/tiny_llama.safetensors"
#define FIX_REGEN "/usr/bin/python3 tests/reference/make_fixtures.py"

static char g_dir[64];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const void *data, size_t len)
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

/* Number of directory entries whose name contains `sub`. */
static int count_entries(const char *dir, const char *sub)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, sub))
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- round trip */

static void test_dtype_names(void)
{
    enum sft_dtype d;
    const char *names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    const size_t bytes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < 10; i++) {
        CHECK_INT(sft_dtype_parse(names[i], &d), 0);
        CHECK_INT(d, i);
        CHECK_STR(sft_dtype_name(d), names[i]);
        CHECK_INT(sft_dtype_bytes(d), bytes[i]);
    }
    CHECK_INT(sft_dtype_parse("f32", &d), SW_EINVAL);
    CHECK_INT(sft_dtype_parse("F8_E4M3", &d), SW_EINVAL);
    CHECK(sft_dtype_is_float(SFT_BF16) && !sft_dtype_is_float(SFT_I32));
}

static void test_round_trip(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char path[128];
    tmp_path(path, sizeof(path), "rt.safetensors");

    /* Mixed widths added narrow-first: the writer must reorder for alignment. */
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t bools[2] = {1, 0};
    int16_t i16[3] = {-32768, 7, 32767};
    int32_t i32[2][3] = {{-1, 0, 1}, {INT32_MIN, 42, INT32_MAX}};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    float f32[2][2][2] = {{{1.5f, -2.0f}, {0.0f, 3.25f}}, {{1e-30f, -1e30f}, {7.0f, -0.5f}}};
    double f64[3] = {0.1, -1e300, 2.5};
    /* F16: 1.0, -2.0, 0.5, smallest subnormal 2^-24, largest normal 65504, -inf. */
    uint16_t f16[6] = {0x3C00, 0xC000, 0x3800, 0x0001, 0x7BFF, 0xFC00};
    /* BF16: 1.0, -1.0, 3.0, 0.5. */
    uint16_t bf16[4] = {0x3F80, 0xBF80, 0x4040, 0x3F00};
    float scalar = 9.0f;

    struct sft_writer *w = sft_writer_new();
    int64_t s5[] = {5}, s3[] = {3}, s2[] = {2}, s23[] = {2, 3}, s222[] = {2, 2, 2}, s6[] = {6},
            s4[] = {4}, s0[] = {0};
    CHECK_OK(sft_writer_add(w, "u8", SFT_U8, 1, s5, u8, &err), &err);
    CHECK_OK(sft_writer_add(w, "i8", SFT_I8, 1, s3, i8, &err), &err);
    CHECK_OK(sft_writer_add(w, "bool", SFT_BOOL, 1, s2, bools, &err), &err);
    CHECK_OK(sft_writer_add(w, "i16", SFT_I16, 1, s3, i16, &err), &err);
    CHECK_OK(sft_writer_add(w, "f16", SFT_F16, 1, s6, f16, &err), &err);
    CHECK_OK(sft_writer_add(w, "bf16", SFT_BF16, 1, s4, bf16, &err), &err);
    CHECK_OK(sft_writer_add(w, "i32", SFT_I32, 2, s23, i32, &err), &err);
    CHECK_OK(sft_writer_add(w, "layer/0.f32", SFT_F32, 3, s222, f32, &err), &err);
    CHECK_OK(sft_writer_add(w, "f64", SFT_F64, 1, s3, f64, &err), &err);
    CHECK_OK(sft_writer_add(w, "i64", SFT_I64, 1, s2, i64, &err), &err);
    CHECK_OK(sft_writer_add(w, "scalar", SFT_F32, 0, NULL, &scalar, &err), &err);
    CHECK_OK(sft_writer_add(w, "empty", SFT_F32, 1, s0, NULL, &err), &err);
    CHECK_OK(sft_writer_add_meta(w, "format", "pt", &err), &err);
    CHECK_OK(sft_writer_add_meta(w, "note", "quote \" slash / newline \n tab \t é", &err), &err);
    CHECK_OK(sft_writer_add_meta(w, "step", "1", &err), &err);
    CHECK_OK(sft_writer_add_meta(w, "step", "12", &err), &err); /* replaces */
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);
    CHECK_INT(count_entries(g_dir, ".tmp."), 0);

    /* Raw layout: header length prefix, '{"__metadata__"' first, space padding, 8-aligned. */
    char *raw = NULL;
    size_t raw_len = 0;
    CHECK_OK(sw_read_file(path, 1 << 20, &raw, &raw_len, &err), &err);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)raw[i];
    CHECK_INT((8 + hlen) % 8, 0);
    CHECK(raw_len > 8 + hlen);
    CHECK(strncmp(raw + 8, "{\"__metadata__\":{", 17) == 0);
    CHECK(raw[8 + hlen - 1] == '}' || raw[8 + hlen - 1] == ' ');
    free(raw);

    struct sft_file *f = NULL;
    CHECK_OK(sft_open(path, &f, &err), &err);
    if (!f)
        return;
    CHECK_STR(sft_path(f), path);
    CHECK_INT(sft_count(f), 12);
    CHECK(sft_at(f, 12) == NULL);
    /* Header order is data order, widest first, stable within a width. */
    const char *order[] = {"f64", "i64", "i32",  "layer/0.f32", "scalar", "empty",
                           "i16", "f16", "bf16", "u8",          "i8",     "bool"};
    uint64_t at = 0;
    for (size_t i = 0; i < 12; i++) {
        const struct sft_tensor *t = sft_at(f, i);
        CHECK_STR(t->name, order[i]);
        CHECK_INT(t->begin_bytes, at);
        CHECK_INT(t->begin_bytes % sft_dtype_bytes(t->dtype), 0);
        at = t->end_bytes;
    }
    const struct sft_tensor *t = sft_find(f, "layer/0.f32");
    CHECK(t && t->dtype == SFT_F32 && t->ndim == 3 && t->shape[0] == 2 && t->shape[2] == 2 &&
          t->n_elems == 8 && sft_tensor_bytes(t) == 32);
    CHECK(sft_find(f, "layer/0.f3") == NULL && sft_find(f, "zzz") == NULL &&
          sft_find(f, "") == NULL);

    /* Raw bytes for every integer dtype. */
    struct {
        const char *name;
        const void *data;
        size_t n;
    } raws[] = {{"u8", u8, sizeof(u8)},    {"i8", i8, sizeof(i8)},
                {"bool", bools, 2},        {"i16", i16, sizeof(i16)},
                {"i32", i32, sizeof(i32)}, {"i64", i64, sizeof(i64)},
                {"f16", f16, sizeof(f16)}, {"bf16", bf16, sizeof(bf16)},
                {"f64", f64, sizeof(f64)}, {"layer/0.f32", f32, sizeof(f32)}};
    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        unsigned char buf[64];
        t = sft_find(f, raws[i].name);
        CHECK_MSG(t != NULL, "%s missing", raws[i].name);
        if (!t)
            continue;
        CHECK_OK(sft_read_raw(f, t, buf, raws[i].n, &err), &err);
        CHECK_MSG(memcmp(buf, raws[i].data, raws[i].n) == 0, "bytes of %s differ", raws[i].name);
    }
    unsigned char small[4];
    CHECK_INT(sft_read_raw(f, sft_find(f, "i64"), small, 4, &err), SW_EINVAL);

    /* Conversions to F32. */
    float out[8];
    CHECK_OK(sft_read_f32(f, sft_find(f, "f16"), out, 6, &err), &err);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f);
    CHECK(out[3] == ldexpf(1.0f, -24) && out[4] == 65504.0f && isinf(out[5]) && out[5] < 0);
    CHECK_OK(sft_read_f32(f, sft_find(f, "bf16"), out, 4, &err), &err);
    CHECK(out[0] == 1.0f && out[1] == -1.0f && out[2] == 3.0f && out[3] == 0.5f);
    CHECK_OK(sft_read_f32(f, sft_find(f, "f64"), out, 3, &err), &err);
    CHECK(out[0] == 0.1f && isinf(out[1]) && out[2] == 2.5f);
    CHECK_OK(sft_read_f32(f, sft_find(f, "layer/0.f32"), out, 8, &err), &err);
    CHECK(memcmp(out, f32, sizeof(f32)) == 0);
    CHECK_OK(sft_read_f32(f, sft_find(f, "scalar"), out, 1, &err), &err);
    CHECK(out[0] == 9.0f && sft_find(f, "scalar")->ndim == 0);
    CHECK_OK(sft_read_f32(f, sft_find(f, "empty"), out, 0, &err), &err);
    CHECK_INT(sft_read_f32(f, sft_find(f, "i32"), out, 6, &err), SW_EINVAL);
    CHECK(contains(err.msg, "'i32'") && contains(err.msg, "dtype I32"));
    CHECK_INT(sft_read_f32(f, sft_find(f, "f16"), out, 5, &err), SW_EINVAL);

    /* sft_load_f32: shape check and missing names. */
    int64_t good[] = {2, 2, 2}, bad[] = {2, 4};
    CHECK_OK(sft_load_f32(f, "layer/0.f32", 3, good, out, &err), &err);
    CHECK_INT(sft_load_f32(f, "layer/0.f32", 2, bad, out, &err), SW_EINVAL);
    CHECK(contains(err.msg, "[2, 2, 2]") && contains(err.msg, "expected [2, 4]"));
    CHECK_INT(sft_load_f32(f, "nope", 1, s2, out, &err), SW_ENOENT);
    CHECK(contains(err.msg, "'nope' is missing") && strcmp(err.file, path) == 0);

    /* Metadata. */
    CHECK_INT(sft_meta_count(f), 3);
    const char *k, *v;
    sft_meta_at(f, 0, &k, &v);
    CHECK_STR(k, "format");
    CHECK_STR(v, "pt");
    CHECK_STR(sft_meta_get(f, "note"), "quote \" slash / newline \n tab \t é");
    CHECK(sft_meta_get(f, "missing") == NULL);
    int64_t step = 0;
    CHECK_OK(sft_meta_i64(f, "step", 0, 100, &step, &err), &err);
    CHECK_INT(step, 12);
    CHECK_INT(sft_meta_i64(f, "step", 0, 10, &step, &err), SW_ERANGE);
    CHECK_INT(sft_meta_i64(f, "format", 0, 10, &step, &err), SW_EINVAL);
    CHECK(contains(err.msg, "'format'") && strcmp(err.file, path) == 0);
    double d = 0;
    CHECK_INT(sft_meta_f64(f, "absent", &d, &err), SW_ENOENT);
    sft_close(f);

    /* A file with no tensors and no metadata is valid: "{}" padded. */
    w = sft_writer_new();
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);
    CHECK_OK(sft_open(path, &f, &err), &err);
    if (f) {
        CHECK_INT(sft_count(f), 0);
        CHECK_INT(sft_meta_count(f), 0);
        sft_close(f);
    }
}

/* Conversions of tensors larger than one 64 KiB read chunk, at odd sizes. */
static void test_chunked_conversion(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char path[128];
    tmp_path(path, sizeof(path), "big.safetensors");
    size_t n = 100003;
    uint16_t *bf = sw_xmalloc(n * 2), *hf = sw_xmalloc(n * 2);
    double *dd = sw_xmalloc(n * 8);
    for (size_t i = 0; i < n; i++) {
        /* k/4 for |k| <= 255: at most 8 significant bits, exact in bf16 and f16. */
        float v = (float)((int)(i % 511) - 255) / 4.0f;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bf[i] = (uint16_t)(bits >> 16);
        dd[i] = (double)v;
    }
    for (size_t i = 0; i < n; i++) { /* f16 of small integers k/4, built from the exponent */
        float v = (float)dd[i];
        uint16_t sign = v < 0 ? 0x8000 : 0;
        float a = fabsf(v);
        if (a == 0) {
            hf[i] = sign;
            continue;
        }
        int e;
        float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
        hf[i] = (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) |
                           (uint16_t)((m * 2.0f - 1.0f) * 1024.0f));
    }
    int64_t sn[] = {(int64_t)n};
    struct sft_writer *w = sft_writer_new();
    CHECK_OK(sft_writer_add(w, "bf", SFT_BF16, 1, sn, bf, &err), &err);
    CHECK_OK(sft_writer_add(w, "hf", SFT_F16, 1, sn, hf, &err), &err);
    CHECK_OK(sft_writer_add(w, "dd", SFT_F64, 1, sn, dd, &err), &err);
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);
    struct sft_file *f = NULL;
    CHECK_OK(sft_open(path, &f, &err), &err);
    float *out = sw_xmalloc(n * 4);
    const char *names[] = {"bf", "hf", "dd"};
    for (int k = 0; f && k < 3; k++) {
        CHECK_OK(sft_load_f32(f, names[k], 1, sn, out, &err), &err);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += out[i] != (float)dd[i];
        CHECK_MSG(bad == 0, "%s: %zu elements differ", names[k], bad);
    }
    sft_close(f);
    free(out);
    free(bf);
    free(hf);
    free(dd);
}

static void test_writer_errors(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct sft_writer *w = sft_writer_new();
    float x[2] = {1, 2};
    int64_t s2[] = {2}, sneg[] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_OK(sft_writer_add(w, "x", SFT_F32, 1, s2, x, &err), &err);
    CHECK_INT(sft_writer_add(w, "x", SFT_F32, 1, s2, x, &err), SW_EINVAL);
    CHECK(contains(err.msg, "'x' is added twice"));
    CHECK_INT(sft_writer_add(w, "__metadata__", SFT_F32, 1, s2, x, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add(w, "", SFT_F32, 1, s2, x, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add(w, "n", SFT_F32, 1, sneg, x, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add(w, "d", SFT_F32, 9, s9, x, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add(w, "z", SFT_F32, 1, s2, NULL, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add(w, "t", (enum sft_dtype)99, 1, s2, x, &err), SW_EINVAL);
    CHECK_INT(sft_writer_add_meta(w, "k", NULL, &err), SW_EINVAL);

    /* A directory that does not exist: SW_EIO naming the path, nothing created. */
    char path[128];
    tmp_path(path, sizeof(path), "no/such/dir/x.safetensors");
    CHECK_INT(sft_writer_save(w, path, &err), SW_EIO);
    CHECK_STR(err.file, path);
    sft_writer_free(w);
}

/* A write that fails midway (the file-size limit makes write() fail with EFBIG) leaves the
 * previous file intact and removes the temporary. */
static void test_atomic_failure(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char path[128];
    tmp_path(path, sizeof(path), "atomic.safetensors");
    float small[4] = {1, 2, 3, 4};
    int64_t s4[] = {4};
    struct sft_writer *w = sft_writer_new();
    CHECK_OK(sft_writer_add(w, "old", SFT_F32, 1, s4, small, &err), &err);
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);

    size_t n = 1 << 16; /* 256 KiB: past the limit below */
    float *big = sw_xcalloc(n, sizeof(float));
    int64_t sn[] = {(int64_t)n};
    w = sft_writer_new();
    CHECK_OK(sft_writer_add(w, "new", SFT_F32, 1, sn, big, &err), &err);
    struct rlimit old_lim, lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    lim = old_lim;
    lim.rlim_cur = 64 << 10;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        int rc = sft_writer_save(w, path, &err);
        setrlimit(RLIMIT_FSIZE, &old_lim);
        CHECK_INT(rc, SW_EIO);
        CHECK(contains(err.msg, "write failed"));
        CHECK_INT(count_entries(g_dir, "atomic.safetensors.tmp"), 0);
        struct sft_file *f = NULL;
        CHECK_OK(sft_open(path, &f, &err), &err);
        if (f) {
            CHECK(sft_find(f, "old") != NULL && sft_find(f, "new") == NULL);
            sft_close(f);
        }
    } else {
        printf("test_atomic_failure: setrlimit unavailable, skipped\n");
    }
    signal(SIGXFSZ, old_sig);
    sft_writer_free(w);
    free(big);
}

/* ---------------------------------------------------------------- corrupt files */

/* Write a file: 8-byte length (the JSON's length unless `len_override` >= 0), the JSON
 * itself, then `data_bytes` zero bytes. */
static void make_file(const char *path, const char *json, int64_t len_override, size_t data_bytes)
{
    size_t jl = strlen(json);
    uint64_t hl = len_override >= 0 ? (uint64_t)len_override : jl;
    size_t total = 8 + jl + data_bytes;
    unsigned char *buf = sw_xcalloc(total, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    write_bytes(path, buf, total);
    free(buf);
}

struct bad_case {
    const char *json;
    int64_t len_override;
    size_t data_bytes;
    const char *expect[2]; /* substrings of the message */
};

static void test_corrupt_files(void)
{
    struct sw_err err;
    char path[128];
    tmp_path(path, sizeof(path), "bad.safetensors");
#define T1(name, dt, shape, b, e)                                                                  \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"
    const struct bad_case cases[] = {
        /* header length larger than the file */
        {"{}", 4096, 0, {"header length 4096 is larger than the rest of the file", NULL}},
        /* header length past the 100 MiB bound */
        {"{}", (int64_t)1 << 40, 0, {"exceeds the limit", NULL}},
        /* bad JSON: cut off, a syntax error, junk after the object, not an object */
        {"{\"a\":{\"dtype\":\"F32\",", -1, 0, {"header JSON", "unexpected end"}},
        {"{\"a\":{\"dtype\" \"F32\"}}", -1, 0, {"header JSON", NULL}},
        {"{} x", -1, 0, {"unexpected byte 0x78", NULL}},
        {"[1, 2]", -1, 0, {"must start with '{'", NULL}},
        {"{\"a\":[1]}", -1, 0, {"tensor 'a'", "expected an object"}},
        /* unknown dtype */
        {"{" T1("w", "Q4", "[2]", 0, 8) "}", -1, 8, {"tensor 'w'", "unknown dtype 'Q4'"}},
        /* shape x size != span */
        {"{" T1("w", "F32", "[3]", 0, 8) "}",
         -1,
         8,
         {"tensor 'w': shape [3] of F32 is 12 bytes", "span 8"}},
        /* overlapping offsets */
        {"{" T1("a", "F32", "[2]", 0, 8) "," T1("b", "F32", "[2]", 4, 12) "}",
         -1,
         12,
         {"tensor 'b'", "overlap tensor 'a'"}},
        /* a gap between tensors */
        {"{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 8, 12) "}",
         -1,
         12,
         {"tensor 'b'", "gap"}},
        /* data shorter than the offsets: truncated */
        {"{" T1("a", "F32", "[4]", 0, 16) "}", -1, 10, {"truncated", "tensor 'a'"}},
        /* bytes past the last tensor */
        {"{" T1("a", "F32", "[1]", 0, 4) "}", -1, 8, {"trailing bytes", NULL}},
        /* malformed entries */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}",
         -1,
         0,
         {"tensor 'a'", "missing 'data_offsets'"}},
        {"{" T1("a", "F32", "[-1]", 0, 4) "}", -1, 4, {"tensor 'a'", "shape entry 0"}},
        {"{" T1("a", "F32", "[1.5]", 0, 4) "}", -1, 4, {"tensor 'a'", "shape entry 0"}},
        {"{" T1("a", "F32", "[1]", 4, 0) "}", -1, 4, {"tensor 'a'", "begin <= end"}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
         -1,
         4,
         {"tensor 'a'", "unknown key 'x'"}},
        {"{" T1("", "F32", "[1]", 0, 4) "}", -1, 4, {"empty name", NULL}},
        /* metadata values must be strings */
        {"{\"__metadata__\":{\"step\":3}}", -1, 0, {"metadata 'step'", "not a string"}},
        {"{\"__metadata__\":[]}", -1, 0, {"object of strings", NULL}},
        /* shape overflow */
        {"{" T1("a", "F32", "[4294967296,4294967296]", 0, 4) "}", -1, 4, {"overflows", NULL}},
    };
#undef T1
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        make_file(path, c->json, c->len_override, c->data_bytes);
        sw_err_init(&err);
        struct sft_file *f = NULL;
        int rc = sft_open(path, &f, &err);
        CHECK_MSG(rc == SW_EPARSE && f == NULL, "case %zu (%s): rc %d", i, c->json, rc);
        CHECK_MSG(strcmp(err.file, path) == 0, "case %zu: error names '%s'", i, err.file);
        for (int j = 0; j < 2; j++)
            if (c->expect[j])
                CHECK_MSG(contains(err.msg, c->expect[j]), "case %zu: '%s' not in '%s'", i,
                          c->expect[j], err.msg);
        sft_close(f);
    }

    /* Too short for the length prefix; missing file. */
    write_bytes(path, "\x02\x00\x00", 3);
    sw_err_init(&err);
    struct sft_file *f = NULL;
    CHECK_INT(sft_open(path, &f, &err), SW_EPARSE);
    CHECK(contains(err.msg, "truncated: 3 bytes"));
    tmp_path(path, sizeof(path), "absent.safetensors");
    CHECK_INT(sft_open(path, &f, &err), SW_ENOENT);
    CHECK_STR(err.file, path);

    /* A real file cut short by one byte. */
    tmp_path(path, sizeof(path), "cut.safetensors");
    float x[3] = {1, 2, 3};
    int64_t s3[] = {3};
    struct sft_writer *w = sft_writer_new();
    CHECK_OK(sft_writer_add(w, "x", SFT_F32, 1, s3, x, &err), &err);
    CHECK_OK(sft_writer_save(w, path, &err), &err);
    sft_writer_free(w);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size - 1) == 0);
    CHECK_INT(sft_open(path, &f, &err), SW_EPARSE);
    CHECK(contains(err.msg, "truncated") && contains(err.msg, "tensor 'x'"));
}

/* ---------------------------------------------------------------- reference layout */

/* The bytes the reference implementation writes for
 *   safetensors.torch.save_file({"a": torch.tensor([1.0, -2.5]),
 *                                "b": torch.tensor([[1.0, -1.0], [3.0, 0.5]], dtype=bfloat16)},
 *                               path, metadata={"format": "pt"})
 * : a 142-byte compact JSON header padded with 2 spaces to 144 (0x90), then a's 8 bytes and
 * b's 8 bytes, little-endian. */
static const char REF_HEADER[] =
    "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
    "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}"
    "  ";

static void test_reference_layout(void)
{
    struct sw_err err;
    sw_err_init(&err);
    unsigned char file[8 + 144 + 16];
    const unsigned char len_prefix[8] = {0x90, 0, 0, 0, 0, 0, 0, 0};
    const unsigned char data[16] = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0,  /* a */
                                    0x80, 0x3F, 0x80, 0xBF, 0x40, 0x40, 0x00, 0x3F}; /* b */
    CHECK_INT(strlen(REF_HEADER), 144);
    memcpy(file, len_prefix, 8);
    memcpy(file + 8, REF_HEADER, 144);
    memcpy(file + 152, data, 16);
    char path[128];
    tmp_path(path, sizeof(path), "ref.safetensors");
    write_bytes(path, file, sizeof(file));
    struct sft_file *f = NULL;
    CHECK_OK(sft_open(path, &f, &err), &err);
    if (!f)
        return;
    CHECK_INT(sft_count(f), 2);
    CHECK_STR(sft_meta_get(f, "format"), "pt");
    float a[2], b[4];
    int64_t sa[] = {2}, sb[] = {2, 2};
    CHECK_OK(sft_load_f32(f, "a", 1, sa, a, &err), &err);
    CHECK_OK(sft_load_f32(f, "b", 2, sb, b, &err), &err);
    CHECK(a[0] == 1.0f && a[1] == -2.5f);
    CHECK(b[0] == 1.0f && b[1] == -1.0f && b[2] == 3.0f && b[3] == 0.5f);
    sft_close(f);

    /* Our writer produces the same bytes for the same input. */
    struct sft_writer *w = sft_writer_new();
    float av[2] = {1.0f, -2.5f};
    uint16_t bv[4] = {0x3F80, 0xBF80, 0x4040, 0x3F00};
    CHECK_OK(sft_writer_add(w, "a", SFT_F32, 1, sa, av, &err), &err);
    CHECK_OK(sft_writer_add(w, "b", SFT_BF16, 2, sb, bv, &err), &err);
    CHECK_OK(sft_writer_add_meta(w, "format", "pt", &err), &err);
    char path2[128];
    tmp_path(path2, sizeof(path2), "ours.safetensors");
    CHECK_OK(sft_writer_save(w, path2, &err), &err);
    sft_writer_free(w);
    char *ours = NULL;
    size_t ours_len = 0;
    CHECK_OK(sw_read_file(path2, 4096, &ours, &ours_len, &err), &err);
    CHECK_INT(ours_len, sizeof(file));
    CHECK(ours && ours_len == sizeof(file) && memcmp(ours, file, sizeof(file)) == 0);
    free(ours);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

struct expect_tensor {
    const char *name;
    int ndim;
    int64_t shape[3];
};

/* Check name, F32 dtype and shape of a weight and of its "grad." twin. */
static void check_weight(const struct sft_file *f, const char *name, int ndim, int64_t d0,
                         int64_t d1)
{
    char gname[160];
    snprintf(gname, sizeof(gname), "grad.%s", name);
    const char *names[2] = {name, gname};
    for (int k = 0; k < 2; k++) {
        const struct sft_tensor *t = sft_find(f, names[k]);
        CHECK_MSG(t != NULL, "%s: '%s' missing (regenerate: %s)", sft_path(f), names[k], FIX_REGEN);
        if (!t)
            continue;
        CHECK_MSG(t->dtype == SFT_F32 && t->ndim == ndim && t->shape[0] == d0 &&
                      (ndim < 2 || t->shape[1] == d1),
                  "%s: '%s' has dtype %s, %d dims [%lld, %lld]", sft_path(f), names[k],
                  sft_dtype_name(t->dtype), t->ndim, (long long)t->shape[0],
                  (long long)(ndim > 1 ? t->shape[1] : 0));
    }
}

/* Inputs, outputs and metadata shared by both fixtures; also checks that the stored loss is the
 * mean cross-entropy of the stored logits over the targets that are not -1, so the fixture is
 * self-consistent before any model is compared with it. */
static void check_io(const struct sft_file *f, int64_t V)
{
    struct sw_err err;
    sw_err_init(&err);
    int64_t B = 0, T = 0;
    CHECK_OK(sft_meta_i64(f, "batch", 1, 64, &B, &err), &err);
    CHECK_OK(sft_meta_i64(f, "seq_len", 1, 4096, &T, &err), &err);
    CHECK(B == 2 && T == 16);
    CHECK(sft_meta_get(f, "torch_version") != NULL);
    const struct sft_tensor *tok = sft_find(f, "inputs.tokens");
    const struct sft_tensor *tgt = sft_find(f, "inputs.targets");
    const struct sft_tensor *lg = sft_find(f, "out.logits");
    const struct sft_tensor *ls = sft_find(f, "out.loss");
    CHECK(tok && tok->dtype == SFT_I32 && tok->ndim == 2 && tok->shape[0] == B &&
          tok->shape[1] == T);
    CHECK(tgt && tgt->dtype == SFT_I32 && tgt->ndim == 2 && tgt->n_elems == (uint64_t)(B * T));
    CHECK(lg && lg->dtype == SFT_F32 && lg->ndim == 3 && lg->shape[0] == B && lg->shape[1] == T &&
          lg->shape[2] == V);
    CHECK(ls && ls->dtype == SFT_F32 && ls->ndim == 1 && ls->shape[0] == 1);
    if (!tok || !tgt || !lg || !ls || B != 2 || T != 16 || V != 256)
        return;
    int32_t tokens[32], targets[32];
    CHECK_OK(sft_read_raw(f, tok, tokens, sizeof(tokens), &err), &err);
    CHECK_OK(sft_read_raw(f, tgt, targets, sizeof(targets), &err), &err);
    int n_ignored = 0;
    for (int i = 0; i < 32; i++) {
        CHECK(tokens[i] >= 0 && tokens[i] < V);
        CHECK(targets[i] == -1 || (targets[i] >= 0 && targets[i] < V));
        n_ignored += targets[i] == -1;
    }
    CHECK_INT(n_ignored, 1);
    /* Next-token targets: target[t] is the input token at t + 1 (where not ignored). */
    for (int b = 0; b < 2; b++)
        for (int t = 0; t + 1 < 16; t++)
            if (targets[b * 16 + t] != -1)
                CHECK_INT(targets[b * 16 + t], tokens[b * 16 + t + 1]);
    float *logits = sw_xmalloc(32 * 256 * sizeof(float));
    float loss = 0;
    CHECK_OK(sft_read_f32(f, lg, logits, 32 * 256, &err), &err);
    CHECK_OK(sft_read_f32(f, ls, &loss, 1, &err), &err);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < 32; i++) {
        if (targets[i] < 0)
            continue;
        const float *row = logits + (size_t)i * 256;
        double mx = row[0], z = 0;
        for (int v = 1; v < 256; v++)
            mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < 256; v++)
            z += exp(row[v] - mx);
        sum += mx + log(z) - row[targets[i]];
        n++;
    }
    CHECK_NEAR(sum / n, loss, 1e-5);
    /* Random init at std 0.02: the loss is near ln V. */
    CHECK_NEAR(loss, log(256.0), 0.3);

    /* The comparison helper a model test uses: exact against itself, one planted error. */
    struct sft_diff d;
    CHECK_OK(sft_compare_f32(f, "out.logits", logits, 32 * 256, 1e-6, 1e-5, &d, &err), &err);
    CHECK(d.n_bad == 0 && d.max_abs == 0.0 && d.max_ref > 0.0);
    logits[777] += 0.5f;
    CHECK_OK(sft_compare_f32(f, "out.logits", logits, 32 * 256, 1e-6, 1e-5, &d, &err), &err);
    CHECK_INT(d.n_bad, 1);
    CHECK_INT(d.worst_index, 777);
    CHECK_NEAR(d.max_abs, 0.5, 1e-6);
    CHECK_NEAR(d.worst_got - d.worst_want, 0.5, 1e-6);
    logits[100] = NAN;
    logits[2000] += 1.0f;
    CHECK_OK(sft_compare_f32(f, "out.logits", logits, 32 * 256, 1e-6, 1e-5, &d, &err), &err);
    CHECK_INT(d.n_bad, 3);
    CHECK_INT(d.worst_index, 100);
    CHECK(isnan(d.max_abs) && isnan(d.worst_got));
    CHECK_INT(sft_compare_f32(f, "out.logits", logits, 10, 1e-6, 1e-5, &d, &err), SW_EINVAL);
    CHECK_INT(sft_compare_f32(f, "out.nope", logits, 10, 1e-6, 1e-5, &d, &err), SW_ENOENT);
    free(logits);
}

/* Rows of a (rows, C) gradient that are entirely zero. */
static int zero_rows(const struct sft_file *f, const char *name, int64_t rows, int64_t C,
                     bool *is_zero)
{
    struct sw_err err;
    sw_err_init(&err);
    float *g = sw_xmalloc((size_t)(rows * C) * sizeof(float));
    int64_t shape[] = {rows, C};
    int n = -1;
    if (sft_load_f32(f, name, 2, shape, g, &err) == 0) {
        n = 0;
        for (int64_t r = 0; r < rows; r++) {
            bool z = true;
            for (int64_t c = 0; c < C && z; c++)
                z = g[r * C + c] == 0.0f;
            is_zero[r] = z;
            n += z;
        }
    }
    free(g);
    return n;
}

static void test_fixture_gpt2(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct sft_file *f = NULL;
    CHECK_OK(sft_open(FIX_GPT2, &f, &err), &err);
    if (!f) {
        fprintf(stderr, "regenerate with: %s\n", FIX_REGEN);
        return;
    }
    CHECK_STR(sft_meta_get(f, "arch"), "gpt2");
    int64_t L = 0, C = 0, NH = 0, V = 0, P = 0, F = 0;
    CHECK_OK(sft_meta_i64(f, "layers", 1, 64, &L, &err), &err);
    CHECK_OK(sft_meta_i64(f, "hidden", 1, 1 << 16, &C, &err), &err);
    CHECK_OK(sft_meta_i64(f, "heads", 1, 1024, &NH, &err), &err);
    CHECK_OK(sft_meta_i64(f, "vocab", 1, 1 << 20, &V, &err), &err);
    CHECK_OK(sft_meta_i64(f, "max_pos", 1, 1 << 20, &P, &err), &err);
    CHECK_OK(sft_meta_i64(f, "ffn", 1, 1 << 20, &F, &err), &err);
    CHECK(L == 2 && C == 64 && NH == 4 && V == 256 && P == 64 && F == 256);
    double eps = 0;
    CHECK_OK(sft_meta_f64(f, "eps", &eps, &err), &err);
    CHECK_NEAR(eps, 1e-5, 1e-12);

    /* Weights (HF names; Conv1D weights are (in, out)) and their gradients. */
    check_weight(f, "wte.weight", 2, V, C);
    check_weight(f, "wpe.weight", 2, P, C);
    for (int i = 0; i < L; i++) {
        char n[96];
#define W(suffix, nd, a, b)                                                                        \
    do {                                                                                           \
        snprintf(n, sizeof(n), "h.%d.%s", i, suffix);                                              \
        check_weight(f, n, nd, a, b);                                                              \
    } while (0)
        W("ln_1.weight", 1, C, 0);
        W("ln_1.bias", 1, C, 0);
        W("attn.c_attn.weight", 2, C, 3 * C);
        W("attn.c_attn.bias", 1, 3 * C, 0);
        W("attn.c_proj.weight", 2, C, C);
        W("attn.c_proj.bias", 1, C, 0);
        W("ln_2.weight", 1, C, 0);
        W("ln_2.bias", 1, C, 0);
        W("mlp.c_fc.weight", 2, C, F);
        W("mlp.c_fc.bias", 1, F, 0);
        W("mlp.c_proj.weight", 2, F, C);
        W("mlp.c_proj.bias", 1, C, 0);
#undef W
    }
    check_weight(f, "ln_f.weight", 1, C, 0);
    check_weight(f, "ln_f.bias", 1, C, 0);
    CHECK(sft_find(f, "lm_head.weight") == NULL); /* tied */
    /* 16 weights per layer + 4 others, twice (weights, grads), + 4 inputs/outputs. */
    CHECK_INT(sft_count(f), 2 * (12 * L + 4) + 4);
    check_io(f, V);

    /* Positions past T get no gradient; positions < T do. */
    bool zero[64];
    CHECK_INT(zero_rows(f, "grad.wpe.weight", P, C, zero), P - 16);
    CHECK(!zero[0] && !zero[15] && zero[16] && zero[63]);
    sft_close(f);
}

static void test_fixture_llama(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct sft_file *f = NULL;
    CHECK_OK(sft_open(FIX_LLAMA, &f, &err), &err);
    if (!f) {
        fprintf(stderr, "regenerate with: %s\n", FIX_REGEN);
        return;
    }
    CHECK_STR(sft_meta_get(f, "arch"), "llama");
    int64_t L = 0, C = 0, NH = 0, NKV = 0, HS = 0, V = 0, F = 0;
    CHECK_OK(sft_meta_i64(f, "layers", 1, 64, &L, &err), &err);
    CHECK_OK(sft_meta_i64(f, "hidden", 1, 1 << 16, &C, &err), &err);
    CHECK_OK(sft_meta_i64(f, "heads", 1, 1024, &NH, &err), &err);
    CHECK_OK(sft_meta_i64(f, "kv_heads", 1, 1024, &NKV, &err), &err);
    CHECK_OK(sft_meta_i64(f, "head_dim", 1, 1024, &HS, &err), &err);
    CHECK_OK(sft_meta_i64(f, "vocab", 1, 1 << 20, &V, &err), &err);
    CHECK_OK(sft_meta_i64(f, "ffn", 1, 1 << 20, &F, &err), &err);
    CHECK(L == 2 && C == 64 && NH == 4 && NKV == 2 && HS == 16 && V == 256 && F == 176);
    double theta = 0, eps = 0;
    CHECK_OK(sft_meta_f64(f, "rope_theta", &theta, &err), &err);
    CHECK_OK(sft_meta_f64(f, "eps", &eps, &err), &err);
    CHECK(theta == 10000.0 && eps == 1e-5);

    check_weight(f, "model.embed_tokens.weight", 2, V, C);
    for (int i = 0; i < L; i++) {
        char n[96];
#define W(suffix, nd, a, b)                                                                        \
    do {                                                                                           \
        snprintf(n, sizeof(n), "model.layers.%d.%s", i, suffix);                                   \
        check_weight(f, n, nd, a, b);                                                              \
    } while (0)
        W("input_layernorm.weight", 1, C, 0);
        W("self_attn.q_proj.weight", 2, NH * HS, C); /* nn.Linear: (out, in) */
        W("self_attn.k_proj.weight", 2, NKV * HS, C);
        W("self_attn.v_proj.weight", 2, NKV * HS, C);
        W("self_attn.o_proj.weight", 2, C, NH * HS);
        W("post_attention_layernorm.weight", 1, C, 0);
        W("mlp.gate_proj.weight", 2, F, C);
        W("mlp.up_proj.weight", 2, F, C);
        W("mlp.down_proj.weight", 2, C, F);
#undef W
    }
    check_weight(f, "model.norm.weight", 1, C, 0);
    check_weight(f, "lm_head.weight", 2, V, C);
    CHECK_INT(sft_count(f), 2 * (9 * L + 3) + 4);
    check_io(f, V);

    /* Untied: an embedding row gets gradient exactly when its token is in the input. */
    int32_t tokens[32];
    CHECK_OK(sft_read_raw(f, sft_find(f, "inputs.tokens"), tokens, sizeof(tokens), &err), &err);
    bool used[256] = {false}, zero[256];
    for (int i = 0; i < 32; i++)
        if (tokens[i] >= 0 && tokens[i] < 256)
            used[tokens[i]] = true;
    CHECK(zero_rows(f, "grad.model.embed_tokens.weight", V, C, zero) > 0);
    int mismatch = 0;
    for (int v = 0; v < 256; v++)
        mismatch += used[v] == zero[v];
    CHECK_INT(mismatch, 0);
    CHECK_INT(zero_rows(f, "grad.lm_head.weight", V, C, zero), 0);
    sft_close(f);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/sw_test_sft_%ld", (long)getpid());
    mkdir(g_dir, 0755);
    RUN(test_dtype_names);
    RUN(test_round_trip);
    RUN(test_chunked_conversion);
    RUN(test_writer_errors);
    RUN(test_atomic_failure);
    RUN(test_corrupt_files);
    RUN(test_reference_layout);
    RUN(test_fixture_gpt2);
    RUN(test_fixture_llama);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return harness_finish("test_safetensors");
}
