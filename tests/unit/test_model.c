/* Tests of the model description (advisor/model.c), Hugging Face config.json reading
 * (advisor/hfconfig.c) and profile lookup (advisor/profiles.c): every bundled model profile
 * loads, validates and carries the published sizes; each tests/data/hf/<profile>.json gives
 * the same description as profiles/models/<profile>.yaml; every tests/data/models/bad_*.yaml
 * and tests/data/hf/bad_*.json fails with the message and position its "expect" line names;
 * emit -> load is the identity; names are listed sorted and near misses get a suggestion. */
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "advisor/advisor.h"
#include "common/common.h"

#define DATA_DIR SW_PROFILES_DIR "/../tests/data"

/* The model profiles every helper relies on (notes/common_facts.md). */
static const char *const expected_models[] = {
    "gpt2-124m",     "gpt2-350m",     "gpt2-774m",      "gpt2-1.5b",  "llama-2-7b",
    "llama-2-13b",   "llama-2-70b",   "llama-3-8b",     "llama-3-70b", "llama-3.1-8b",
    "llama-3.1-70b", "llama-3.1-405b", "mistral-7b",    "qwen2.5-0.5b", "qwen2.5-7b",
    "tiny-gpt2",     "tiny-llama",    NULL};

/* Field-by-field equality; prints the first difference. `cmp_name`/`cmp_dtype` off skip the
 * fields a config.json may not carry. */
static bool same_model(const struct model_desc *a, const struct model_desc *b, bool cmp_name,
                       bool cmp_dtype, const char *what)
{
#define SAME(f)                                                                                  \
    if (a->f != b->f) {                                                                          \
        fprintf(stderr, "%s: %s differs: %g vs %g\n", what, #f, (double)a->f, (double)b->f);     \
        return false;                                                                            \
    }
    if (cmp_name && strcmp(a->name, b->name) != 0) {
        fprintf(stderr, "%s: name differs: '%s' vs '%s'\n", what, a->name, b->name);
        return false;
    }
    SAME(arch) SAME(n_layers) SAME(hidden) SAME(n_heads) SAME(n_kv_heads) SAME(head_dim)
    SAME(ffn) SAME(vocab) SAME(max_pos) SAME(tied_head) SAME(bias) SAME(rms_norm) SAME(swiglu)
    SAME(sliding_window) SAME(rope_theta) SAME(norm_eps)
    if (cmp_dtype) {
        SAME(stored_bytes_per_param)
    }
#undef SAME
    return true;
}

/* Sorted file names in `dir` that start with `prefix` and end with `suffix`. */
static int list_files(const char *dir, const char *prefix, const char *suffix, char ***out)
{
    DIR *dp = opendir(dir);
    *out = NULL;
    if (!dp)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t len = strlen(de->d_name), sl = strlen(suffix);
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || len <= sl ||
            strcmp(de->d_name + len - sl, suffix) != 0)
            continue;
        *out = sw_xrealloc(*out, (size_t)(n + 1) * sizeof(char *));
        (*out)[n++] = sw_xstrdup(de->d_name);
    }
    closedir(dp);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp((*out)[j - 1], (*out)[j]) > 0; j--) {
            char *t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return n;
}

static void free_files(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void test_list_and_load_all(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char **names = NULL;
    int n = 0;
    CHECK_OK(profiles_list(PROFILE_MODEL, &names, &n, &err), &err);
    for (int i = 1; i < n; i++)
        CHECK_MSG(strcmp(names[i - 1], names[i]) < 0, "not sorted: %s, %s", names[i - 1],
                  names[i]);
    for (const char *const *e = expected_models; *e; e++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            found = found || !strcmp(names[i], *e);
        CHECK_MSG(found, "profile '%s' is missing", *e);
    }
    for (int i = 0; i < n; i++) {
        struct model_desc m;
        int rc = profile_load_model(names[i], &m, &err);
        CHECK_MSG(rc == 0, "%s: %s:%d:%d: %s", names[i], err.file, err.line, err.col, err.msg);
        if (rc < 0)
            continue;
        CHECK_STR(m.name, names[i]);
        CHECK_OK(model_validate(&m, &err), &err);
        CHECK_MSG(m.stored_bytes_per_param > 0, "%s: no dtype", names[i]);
    }
    profiles_free_names(names, n);
}

/* A few published figures, so a typo in a profile cannot pass. */
static void test_published_values(void)
{
    struct sw_err err;
    struct model_desc m;
    CHECK_OK(profile_load_model("llama-3.1-405b", &m, &err), &err);
    CHECK_INT(m.n_layers, 126);
    CHECK_INT(m.hidden, 16384);
    CHECK_INT(m.n_heads, 128);
    CHECK_INT(m.n_kv_heads, 8);
    CHECK_INT(m.ffn, 53248);
    CHECK_INT(m.vocab, 128256);
    CHECK_INT(m.max_pos, 131072);
    CHECK_NEAR(m.rope_theta, 500000.0, 0);

    CHECK_OK(profile_load_model("gpt2-1.5b", &m, &err), &err);
    CHECK_INT(m.n_layers, 48);
    CHECK_INT(m.hidden, 1600);
    CHECK_INT(m.n_heads, 25);
    CHECK_INT(m.head_dim, 64);
    CHECK_INT(m.ffn, 6400);
    CHECK(m.tied_head && m.bias && !m.rms_norm && !m.swiglu);

    CHECK_OK(profile_load_model("qwen2.5-0.5b", &m, &err), &err);
    CHECK(m.tied_head);
    CHECK_INT(m.n_kv_heads, 2);
    CHECK_INT(m.vocab, 151936);
    CHECK_NEAR(m.norm_eps, 1e-6, 0);
    CHECK_INT(m.sliding_window, 0);

    CHECK_OK(profile_load_model("mistral-7b", &m, &err), &err);
    CHECK_INT(m.sliding_window, 4096);
    CHECK_INT(m.ffn, 14336);

    CHECK_OK(profile_load_model("llama-2-7b", &m, &err), &err);
    CHECK_INT(m.ffn, 11008);
    CHECK_INT(m.stored_bytes_per_param, 2);

    CHECK_OK(profile_load_model("tiny-llama", &m, &err), &err);
    CHECK_INT(m.n_kv_heads, 2);
    CHECK_INT(m.ffn, 176);
    CHECK_INT(m.vocab, 256);
}

static void test_defaults(void)
{
    struct model_desc m;
    memset(&m, 0, sizeof(m));
    m.arch = MODEL_ARCH_GPT2;
    m.n_layers = 12, m.hidden = 768, m.n_heads = 12, m.vocab = 50257;
    model_fill_defaults(&m);
    CHECK(m.tied_head && m.bias && !m.rms_norm && !m.swiglu);
    CHECK_INT(m.ffn, 3072);
    CHECK_INT(m.head_dim, 64);
    CHECK_INT(m.n_kv_heads, 12);
    CHECK_INT(m.max_pos, 1024);
    CHECK_NEAR(m.norm_eps, 1e-5, 0);
    CHECK_NEAR(m.rope_theta, 0, 0);

    memset(&m, 0, sizeof(m));
    m.arch = MODEL_ARCH_LLAMA;
    m.n_layers = 32, m.hidden = 4096, m.n_heads = 32, m.vocab = 32000;
    model_fill_defaults(&m);
    CHECK(!m.tied_head && !m.bias && m.rms_norm && m.swiglu);
    CHECK_INT(m.ffn, 11008); /* the Llama rule reproduces Llama-2-7B's published size */
    CHECK_INT(m.head_dim, 128);
    CHECK_INT(m.n_kv_heads, 32);
    CHECK_NEAR(m.rope_theta, 10000.0, 0);
    CHECK_NEAR(m.norm_eps, 1e-5, 0);

    m.hidden = 5120; /* Llama-2-13B */
    m.ffn = 0;
    model_fill_defaults(&m);
    CHECK_INT(m.ffn, 13824);
    CHECK_STR(model_arch_name(MODEL_ARCH_GPT2), "gpt2");
    CHECK_STR(model_arch_name(MODEL_ARCH_LLAMA), "llama");
}

static void test_validate(void)
{
    struct sw_err err;
    struct model_desc base, m;
    memset(&base, 0, sizeof(base));
    base.arch = MODEL_ARCH_LLAMA;
    base.n_layers = 2, base.hidden = 64, base.n_heads = 4, base.vocab = 256;
    model_fill_defaults(&base);
    CHECK_OK(model_validate(&base, &err), &err);

    m = base;
    m.n_heads = 3, m.head_dim = 0;
    CHECK_INT(model_validate(&m, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "'heads' (3) must divide 'hidden' (64)") != NULL);
    m.head_dim = 16; /* an explicit head size frees heads from dividing hidden */
    m.n_kv_heads = 3;
    CHECK_OK(model_validate(&m, &err), &err);

    m = base;
    m.n_kv_heads = 3;
    CHECK_INT(model_validate(&m, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "'kv_heads' (3) must divide 'heads' (4)") != NULL);

    m = base;
    m.vocab = 1;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    CHECK(strstr(err.msg, "'vocab'") != NULL);
    m = base;
    m.n_layers = 0;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    m = base;
    m.hidden = 1 << 21;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    m = base;
    m.ffn = -5;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    m = base;
    m.norm_eps = 0.5;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    m = base;
    m.rope_theta = -1;
    CHECK_INT(model_validate(&m, &err), SW_ERANGE);
    m = base;
    m.stored_bytes_per_param = 3;
    CHECK_INT(model_validate(&m, &err), SW_EINVAL);
}

static void test_hf_matches_profiles(void)
{
    char **files = NULL;
    int n = list_files(DATA_DIR "/hf", "", ".json", &files);
    int compared = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(files[i], "bad_", 4))
            continue;
        char path[512], stem[128];
        snprintf(path, sizeof(path), "%s/%s", DATA_DIR "/hf", files[i]);
        snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(files[i]) - 5), files[i]);
        struct sw_err err;
        struct model_desc hf, prof;
        int rc = model_load_hf_config(path, &hf, &err);
        CHECK_MSG(rc == 0, "%s: %s: %s", files[i], err.file, err.msg);
        int rc2 = profile_load_model(stem, &prof, &err);
        CHECK_MSG(rc2 == 0, "no profile for %s: %s", files[i], err.msg);
        if (rc < 0 || rc2 < 0)
            continue;
        /* A config without torch_dtype (GPT-2's) leaves the width unknown, not guessed. */
        CHECK_MSG(same_model(&hf, &prof, false, hf.stored_bytes_per_param != 0, files[i]),
                  "%s differs from profile %s", files[i], stem);
        compared++;
    }
    free_files(files, n);
    CHECK_MSG(compared >= 4, "only %d configs compared", compared);

    /* Names: _name_or_path when present, else the file stem; no dtype in GPT-2's config. */
    struct sw_err err;
    struct model_desc m;
    CHECK_OK(model_load_hf_config(DATA_DIR "/hf/llama-2-7b.json", &m, &err), &err);
    CHECK_STR(m.name, "meta-llama/Llama-2-7b-hf");
    CHECK_OK(model_load_hf_config(DATA_DIR "/hf/gpt2-124m.json", &m, &err), &err);
    CHECK_STR(m.name, "gpt2-124m");
    CHECK_INT(m.stored_bytes_per_param, 0);
    CHECK(m.tied_head);
    CHECK(m.tied_head);
}

/* Write `text` to dir/name; returns the path in buf. */
static const char *write_tmp(const char *dir, const char *name, const char *text, char *buf,
                             size_t n)
{
    snprintf(buf, n, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return buf;
}

static void test_hf_variants(void)
{
    char dir[] = "/tmp/sw_test_model_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512], sub[512];
    struct sw_err err;
    struct model_desc m;

    /* Qwen2 with the window switched on; head_dim given explicitly; dtype under "dtype". */
    write_tmp(dir, "q.json",
              "{\"model_type\": \"qwen2\", \"num_hidden_layers\": 2, \"hidden_size\": 64,\n"
              " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 32,\n"
              " \"intermediate_size\": 176, \"vocab_size\": 256, \"use_sliding_window\": true,\n"
              " \"sliding_window\": 32, \"dtype\": \"float32\"}\n",
              path, sizeof(path));
    CHECK_OK(model_load_hf_config(path, &m, &err), &err);
    CHECK_INT(m.sliding_window, 32);
    CHECK_INT(m.head_dim, 32);
    CHECK_INT(m.stored_bytes_per_param, 4);
    CHECK_INT(m.max_pos, 32768); /* Qwen2Config default */
    CHECK_NEAR(m.norm_eps, 1e-6, 0);
    CHECK(!m.tied_head);

    /* A model folder: the name is the folder's. Minimal GPT-2 with n_inner null, n_ctx only. */
    snprintf(sub, sizeof(sub), "%s/my-gpt", dir);
    CHECK(mkdir(sub, 0700) == 0);
    write_tmp(sub, "config.json",
              "{\"model_type\": \"gpt2\", \"n_layer\": 2, \"n_embd\": 64, \"n_head\": 4,\n"
              " \"n_inner\": null, \"vocab_size\": 256, \"n_ctx\": 64,\n"
              " \"tie_word_embeddings\": false}",
              path, sizeof(path));
    CHECK_OK(model_load_hf_config(path, &m, &err), &err);
    CHECK_STR(m.name, "my-gpt");
    CHECK_INT(m.ffn, 256);
    CHECK_INT(m.max_pos, 64);
    CHECK(!m.tied_head);
    CHECK(m.bias && !m.rms_norm);
    remove(path);
    rmdir(sub);

    /* A local _name_or_path gives its last part; a hub id is kept whole (llama-2-7b above). */
    write_tmp(dir, "local.json",
              "{\"_name_or_path\": \"/data/ckpt/my-llama\", \"model_type\": \"llama\",\n"
              " \"num_hidden_layers\": 2, \"hidden_size\": 64, \"num_attention_heads\": 4,\n"
              " \"intermediate_size\": 176, \"vocab_size\": 256, \"tie_word_embeddings\": true}",
              path, sizeof(path));
    CHECK_OK(model_load_hf_config(path, &m, &err), &err);
    CHECK_STR(m.name, "my-llama");
    CHECK(m.tied_head);
    CHECK_INT(m.n_kv_heads, 4);
    CHECK_INT(m.max_pos, 2048); /* LlamaConfig default */
    remove(path);

    /* Larger than 4 MiB: refused before parsing. */
    snprintf(path, sizeof(path), "%s/big.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputc('{', f);
        for (int i = 0; i < (5 << 20) / 16; i++)
            fputs("\"aaaaaaaaaa\":1, ", f);
        fputs("\"z\":1}", f);
        fclose(f);
    }
    CHECK_INT(model_load_hf_config(path, &m, &err), SW_ERANGE);
    remove(path);

    CHECK_INT(model_load_hf_config(DATA_DIR "/hf/no_such_file.json", &m, &err), SW_ENOENT);
    remove(write_tmp(dir, "q.json", "", path, sizeof(path)));
    rmdir(dir);
}

/* Each bad case names its expected error: "<line>:<col>: <message substring>" (0:0 when the
 * error has no position), in the file's first line (YAML) or in a .expect file beside it. */
static void check_expectation(const char *path, const char *expect, int rc,
                              const struct sw_err *err)
{
    int line = -1, col = -1, used = 0;
    if (sscanf(expect, "%d:%d: %n", &line, &col, &used) != 2 || used == 0) {
        CHECK_MSG(0, "%s: malformed expectation '%s'", path, expect);
        return;
    }
    const char *want = expect + used;
    CHECK_MSG(rc < 0, "%s: loaded, expected an error", path);
    CHECK_MSG(err->line == line && err->col == col, "%s: error at %d:%d, expected %d:%d (%s)",
              path, err->line, err->col, line, col, err->msg);
    CHECK_MSG(strstr(err->msg, want) != NULL, "%s: message '%s' lacks '%s'", path, err->msg,
              want);
    CHECK_MSG(!strcmp(err->file, path), "%s: error names file '%s'", path, err->file);
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static void test_bad_yaml(void)
{
    char **files = NULL;
    int n = list_files(DATA_DIR "/models", "bad_", ".yaml", &files);
    CHECK_MSG(n >= 10, "only %d bad model cases", n);
    for (int i = 0; i < n; i++) {
        char path[512], first[512] = "";
        snprintf(path, sizeof(path), "%s/%s", DATA_DIR "/models", files[i]);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(first, sizeof(first), f)) {
            CHECK_MSG(0, "%s: unreadable", path);
            if (f)
                fclose(f);
            continue;
        }
        fclose(f);
        chomp(first);
        const char *tag = "# expect: ";
        if (strncmp(first, tag, strlen(tag)) != 0) {
            CHECK_MSG(0, "%s: first line is not '# expect: ...'", path);
            continue;
        }
        struct sw_err err;
        sw_err_init(&err);
        struct model_desc m;
        int rc = model_load_file(path, &m, &err);
        check_expectation(path, first + strlen(tag), rc, &err);
    }
    free_files(files, n);
}

static void test_bad_hf(void)
{
    char **files = NULL;
    int n = list_files(DATA_DIR "/hf", "bad_", ".json", &files);
    CHECK_MSG(n >= 8, "only %d bad config cases", n);
    for (int i = 0; i < n; i++) {
        char path[512], epath[512], expect[512] = "";
        snprintf(path, sizeof(path), "%s/%s", DATA_DIR "/hf", files[i]);
        snprintf(epath, sizeof(epath), "%.*s.expect", (int)(strlen(path) - 5), path);
        FILE *f = fopen(epath, "r");
        if (!f || !fgets(expect, sizeof(expect), f)) {
            CHECK_MSG(0, "%s: missing or empty", epath);
            if (f)
                fclose(f);
            continue;
        }
        fclose(f);
        chomp(expect);
        struct sw_err err;
        sw_err_init(&err);
        struct model_desc m;
        int rc = model_load_hf_config(path, &m, &err);
        check_expectation(path, expect, rc, &err);
    }
    free_files(files, n);
}

static void test_roundtrip(void)
{
    char **names = NULL;
    int n = 0;
    struct sw_err err;
    CHECK_OK(profiles_list(PROFILE_MODEL, &names, &n, &err), &err);
    for (int i = 0; i < n; i++) {
        struct model_desc a, b;
        if (profile_load_model(names[i], &a, &err) < 0)
            continue; /* reported by test_list_and_load_all */
        struct sw_buf buf;
        sw_buf_init(&buf, 1 << 16);
        struct sw_emit e;
        sw_emit_init_buf(&e, &buf, SW_FMT_YAML);
        model_emit(&e, NULL, &a);
        sw_emit_finish(&e);
        int rc = model_load_string(buf.data, buf.len, "emitted.yaml", &b, &err);
        CHECK_MSG(rc == 0, "%s: %s:%d:%d: %s\n%s", names[i], err.file, err.line, err.col,
                  err.msg, buf.data);
        if (rc == 0)
            CHECK_MSG(same_model(&a, &b, true, true, names[i]), "%s: round trip differs\n%s",
                      names[i], buf.data);
        sw_buf_release(&buf);
    }
    profiles_free_names(names, n);

    /* A name that needs quoting, fp16 (read back as the same 2 bytes), a nested model map. */
    struct model_desc a, b;
    CHECK_OK(model_load_hf_config(DATA_DIR "/hf/llama-2-7b.json", &a, &err), &err);
    struct sw_buf buf;
    sw_buf_init(&buf, 1 << 16);
    struct sw_emit e;
    sw_emit_init_buf(&e, &buf, SW_FMT_YAML);
    model_emit(&e, NULL, &a);
    CHECK_OK(model_load_string(buf.data, buf.len, "x.yaml", &b, &err), &err);
    CHECK(same_model(&a, &b, true, true, "llama-2-7b.json"));
    sw_buf_release(&buf);

    sw_buf_init(&buf, 1 << 16);
    sw_emit_init_buf(&e, &buf, SW_FMT_JSON);
    sw_emit_map_begin(&e, NULL);
    model_emit(&e, "model", &a);
    sw_emit_map_end(&e);
    sw_emit_finish(&e);
    CHECK(strstr(buf.data, "\"model\": {") != NULL);
    CHECK(strstr(buf.data, "\"kv_heads\": 32") != NULL);
    CHECK(strstr(buf.data, "scalewise_model") == NULL); /* only whole documents carry it */
    sw_buf_release(&buf);
}

static void test_unknown_names(void)
{
    struct sw_err err;
    struct model_desc m;
    CHECK_INT(profile_load_model("llama3-8b", &m, &err), SW_ENOENT);
    CHECK_STR(err.msg, "unknown model profile 'llama3-8b'; did you mean 'llama-3-8b'?");
    CHECK_INT(profile_load_model("qwen2.5-05b", &m, &err), SW_ENOENT);
    CHECK(strstr(err.msg, "did you mean 'qwen2.5-0.5b'?") != NULL);
    CHECK_INT(profile_load_model("zzzzzzzzzzzzzzzz", &m, &err), SW_ENOENT);
    CHECK(strstr(err.msg, "unknown model profile 'zzzzzzzzzzzzzzzz'") != NULL);
    CHECK(strstr(err.msg, "did you mean") == NULL);
    /* Names are file stems, never paths. */
    CHECK_INT(profile_load_model("../models/tiny-gpt2", &m, &err), SW_ENOENT);
    CHECK_INT(profile_load_model("", &m, &err), SW_ENOENT);

    struct hardware *hw = sw_xcalloc(1, sizeof(*hw));
    CHECK_INT(profile_load_hardware("llama-3-8b", hw, &err), SW_ENOENT);
    CHECK(strstr(err.msg, "unknown hardware profile 'llama-3-8b'") != NULL);
    free(hw);
}

static void test_profiles_dir(void)
{
    char dir[512];
    struct sw_err err;
    CHECK_OK(profiles_dir(dir, sizeof(dir), &err), &err);
    CHECK_STR(dir, SW_PROFILES_DIR);

    char tmp[] = "/tmp/sw_test_profiles_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char models[600], path[700];
    snprintf(models, sizeof(models), "%s/models", tmp);
    CHECK(mkdir(models, 0700) == 0);
    write_tmp(models, "zeta.yaml",
              "scalewise_model: 1\narch: llama\nlayers: 2\nhidden: 64\nheads: 4\nvocab: 256\n",
              path, sizeof(path));
    write_tmp(models, "alpha.yaml",
              "scalewise_model: 1\narch: gpt2\nlayers: 2\nhidden: 64\nheads: 4\nvocab: 256\n",
              path, sizeof(path));
    write_tmp(models, "notes.txt", "not a profile", path, sizeof(path));

    setenv("SCALEWISE_PROFILES", tmp, 1);
    CHECK_OK(profiles_dir(dir, sizeof(dir), &err), &err);
    CHECK_STR(dir, tmp);
    char **names = NULL;
    int n = 0;
    CHECK_OK(profiles_list(PROFILE_MODEL, &names, &n, &err), &err);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(names[0], "alpha");
        CHECK_STR(names[1], "zeta");
    }
    profiles_free_names(names, n);
    struct model_desc m;
    CHECK_OK(profile_load_model("zeta", &m, &err), &err);
    CHECK_STR(m.name, "zeta"); /* no name key: the file stem */
    CHECK_INT(m.ffn, 256);     /* Llama rule for h = 64 */
    CHECK_INT(profiles_list(PROFILE_HARDWARE, &names, &n, &err), SW_ENOENT);

    setenv("SCALEWISE_PROFILES", "/nonexistent/sw-profiles", 1);
    CHECK_INT(profiles_dir(dir, sizeof(dir), &err), SW_ENOENT);
    CHECK(strstr(err.msg, "SCALEWISE_PROFILES") != NULL);
    setenv("SCALEWISE_PROFILES", SW_PROFILES_DIR, 1);

    remove(path);
    snprintf(path, sizeof(path), "%s/zeta.yaml", models);
    remove(path);
    snprintf(path, sizeof(path), "%s/alpha.yaml", models);
    remove(path);
    rmdir(models);
    rmdir(tmp);
}

int main(void)
{
    /* Read the repository's profiles whatever the environment says. */
    setenv("SCALEWISE_PROFILES", SW_PROFILES_DIR, 1);
    RUN(test_list_and_load_all);
    RUN(test_published_values);
    RUN(test_defaults);
    RUN(test_validate);
    RUN(test_hf_matches_profiles);
    RUN(test_hf_variants);
    RUN(test_bad_yaml);
    RUN(test_bad_hf);
    RUN(test_roundtrip);
    RUN(test_unknown_names);
    RUN(test_profiles_dir);
    return harness_finish("test_model");
}
