/* Model descriptions: the architecture names, the defaults each architecture implies (GPT-2 and
 * Llama styles of strategy reference sections 1 and 2), validation of sizes, and the model
 * profile YAML format (`scalewise_model: 1`, read with the ydoc helpers so every error carries
 * file:line:column; written with sw_emit so emit -> load gives the same struct back).
 * Parameter counts are in counts.c, Hugging Face config.json in hfconfig.c, and finding
 * profiles by name in profiles.c. */
#include "advisor/advisor.h"

#include <math.h>
#include <string.h>

#include "advisor/advisor_int.h"

/* Sane upper limits: far above any published model (Llama-3.1-405B: 126 layers, h = 16384,
 * f = 53248, V = 128256, 131072 positions) yet small enough that every product of the parameter
 * count formulas stays well inside int64. */
#define MODEL_MAX_LAYERS 4096
#define MODEL_MAX_HIDDEN (1 << 20)
#define MODEL_MAX_HEADS 16384
#define MODEL_MAX_HEAD_DIM 16384
#define MODEL_MAX_FFN (1 << 22)
#define MODEL_MAX_VOCAB (1 << 24)
#define MODEL_MAX_POS (1 << 27)
#define MODEL_MAX_ROPE_THETA 1e12
#define MODEL_MIN_NORM_EPS 1e-12
#define MODEL_MAX_NORM_EPS 0.1

/* A model profile larger than this is not a model profile. */
#define MODEL_FILE_MAX_BYTES (1u << 20)

static const char *const arch_words[] = {"gpt2", "llama", NULL};
static const char *const norm_words[] = {"layernorm", "rmsnorm", NULL};
static const char *const act_words[] = {"gelu", "swiglu", NULL};
static const char *const dtype_words[] = {"fp32", "bf16", "fp16", NULL};
static const int dtype_bytes[] = {4, 2, 2};

static const char *const model_keys[] = {
    "scalewise_model", "name",       "arch",       "layers",         "hidden",
    "heads",           "kv_heads",   "head_dim",   "ffn",            "vocab",
    "max_pos",         "tied_head",  "bias",       "norm",           "activation",
    "sliding_window",  "rope_theta", "norm_eps",   "dtype",          NULL};

const char *model_arch_name(enum model_arch a)
{
    return (a == MODEL_ARCH_GPT2 || a == MODEL_ARCH_LLAMA) ? arch_words[a] : "?";
}

/* The flags an architecture implies (section 2.1 GPT-2 style, 2.2 Llama style). Sets the
 * booleans unconditionally; rope_theta and norm_eps only when unset (0). */
static void fill_flags(struct model_desc *m)
{
    bool gpt2 = m->arch == MODEL_ARCH_GPT2;
    m->tied_head = gpt2;
    m->bias = gpt2;
    m->rms_norm = !gpt2;
    m->swiglu = !gpt2;
    /* Llama (Touvron et al., 2023): rotary base 10000; GPT-2 has learned positions, no rope. */
    if (!gpt2 && m->rope_theta == 0)
        m->rope_theta = 10000.0;
    if (m->norm_eps == 0)
        m->norm_eps = 1e-5;
}

/* The SwiGLU inner size of the Llama reference code: 2/3 of 4h, rounded up to a multiple of
 * 256 (h = 4096 gives 11008). */
static int llama_ffn(int hidden)
{
    int64_t f = (int64_t)(2 * (4 * (int64_t)hidden) / 3);
    f = 256 * ((f + 255) / 256);
    return f > MODEL_MAX_FFN ? MODEL_MAX_FFN : (int)f;
}

/* Sizes left at 0 that follow from the others. Touches no flag except through `swiglu`. */
static void fill_sizes(struct model_desc *m)
{
    if (m->n_kv_heads == 0)
        m->n_kv_heads = m->n_heads;
    /* Left at 0 when heads do not divide hidden, so model_validate reports it. */
    if (m->head_dim == 0 && m->n_heads > 0 && m->hidden % m->n_heads == 0)
        m->head_dim = m->hidden / m->n_heads;
    if (m->ffn == 0 && m->hidden > 0)
        m->ffn = m->swiglu ? llama_ffn(m->hidden) : 4 * m->hidden;
    if (m->max_pos == 0)
        m->max_pos = m->arch == MODEL_ARCH_GPT2 ? 1024 : 2048; /* GPT-2; Llama-1 context */
}

void model_fill_defaults(struct model_desc *m)
{
    fill_flags(m);
    fill_sizes(m);
}

/* One range check with the offending key recorded for the YAML loader's error position. */
static int check_range(const char *key, int64_t v, int64_t lo, int64_t hi, const char **culprit,
                       struct sw_err *err)
{
    if (v >= lo && v <= hi)
        return 0;
    *culprit = key;
    return sw_errf(err, SW_ERANGE, "'%s' must be between %lld and %lld, got %lld", key,
                   (long long)lo, (long long)hi, (long long)v);
}

/* The checks of model_validate; `*culprit` names the key at fault (for error positions). Sizes
 * left at 0 that model_fill_defaults would derive are checked as derived. */
static int validate_impl(const struct model_desc *in, const char **culprit, struct sw_err *err)
{
    int rc;
    struct model_desc m = *in;
    *culprit = "arch";
    if (m.arch != MODEL_ARCH_GPT2 && m.arch != MODEL_ARCH_LLAMA)
        return sw_errf(err, SW_EINVAL, "unknown architecture %d", (int)m.arch);
    if ((rc = check_range("layers", m.n_layers, 1, MODEL_MAX_LAYERS, culprit, err)) < 0 ||
        (rc = check_range("hidden", m.hidden, 1, MODEL_MAX_HIDDEN, culprit, err)) < 0 ||
        (rc = check_range("heads", m.n_heads, 1, MODEL_MAX_HEADS, culprit, err)) < 0 ||
        (rc = check_range("vocab", m.vocab, 2, MODEL_MAX_VOCAB, culprit, err)) < 0)
        return rc;
    if (m.head_dim == 0 && m.hidden % m.n_heads != 0) {
        *culprit = "heads";
        return sw_errf(err, SW_EINVAL,
                       "'heads' (%d) must divide 'hidden' (%d) when 'head_dim' is not set",
                       m.n_heads, m.hidden);
    }
    fill_sizes(&m);
    if ((rc = check_range("kv_heads", m.n_kv_heads, 1, MODEL_MAX_HEADS, culprit, err)) < 0 ||
        (rc = check_range("head_dim", m.head_dim, 1, MODEL_MAX_HEAD_DIM, culprit, err)) < 0 ||
        (rc = check_range("ffn", m.ffn, 1, MODEL_MAX_FFN, culprit, err)) < 0 ||
        (rc = check_range("max_pos", m.max_pos, 1, MODEL_MAX_POS, culprit, err)) < 0 ||
        (rc = check_range("sliding_window", m.sliding_window, 0, MODEL_MAX_POS, culprit, err)) <
            0)
        return rc;
    if (m.n_heads % m.n_kv_heads != 0) {
        *culprit = "kv_heads";
        return sw_errf(err, SW_EINVAL, "'kv_heads' (%d) must divide 'heads' (%d)", m.n_kv_heads,
                       m.n_heads);
    }
    /* q = a*d is the width of the query projection (section 0); keep it in the same range as h. */
    if ((int64_t)m.n_heads * m.head_dim > MODEL_MAX_HIDDEN) {
        *culprit = "head_dim";
        return sw_errf(err, SW_ERANGE, "'heads' x 'head_dim' (%d x %d) exceeds %d", m.n_heads,
                       m.head_dim, MODEL_MAX_HIDDEN);
    }
    *culprit = "rope_theta";
    if (!isfinite(m.rope_theta) || m.rope_theta < 0 || m.rope_theta > MODEL_MAX_ROPE_THETA)
        return sw_errf(err, SW_ERANGE, "'rope_theta' must be between 0 and %g, got %g",
                       MODEL_MAX_ROPE_THETA, m.rope_theta);
    *culprit = "norm_eps";
    if (m.norm_eps != 0 && (!isfinite(m.norm_eps) || m.norm_eps < MODEL_MIN_NORM_EPS ||
                            m.norm_eps > MODEL_MAX_NORM_EPS))
        return sw_errf(err, SW_ERANGE, "'norm_eps' must be between %g and %g, got %g",
                       MODEL_MIN_NORM_EPS, MODEL_MAX_NORM_EPS, m.norm_eps);
    *culprit = "dtype";
    if (m.stored_bytes_per_param != 0 && m.stored_bytes_per_param != 1 &&
        m.stored_bytes_per_param != 2 && m.stored_bytes_per_param != 4)
        return sw_errf(err, SW_EINVAL, "stored bytes per parameter must be 1, 2 or 4, got %d",
                       m.stored_bytes_per_param);
    *culprit = NULL;
    return 0;
}

int model_validate(const struct model_desc *m, struct sw_err *err)
{
    const char *culprit = NULL;
    return validate_impl(m, &culprit, err);
}

/* "dir/llama-3-8b.yaml" -> "llama-3-8b". */
static void stem_of(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".yaml"))
        len -= 5;
    else if (len > 4 && !strcmp(base + len - 4, ".yml"))
        len -= 4;
    if (len >= n)
        len = n - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

/* Optional word key into *out (an index into words); untouched when absent. */
static int opt_word(struct ydoc *d, yaml_node_t *map, const char *key, const char *const *words,
                    int *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    return n ? ydoc_word(d, n, words, key, out, err) : 0;
}

static int read_int_key(struct ydoc *d, yaml_node_t *map, const char *key, bool required,
                        int64_t min, int64_t max, int *out, struct sw_err *err)
{
    yaml_node_t *n =
        required ? ydoc_require(d, map, key, "model profile", err) : ydoc_get(d, map, key);
    if (!n)
        return required ? err->code : 0;
    int64_t v = 0;
    int rc = ydoc_int(d, n, min, max, key, &v, err);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int load_doc(struct ydoc *d, const char *file, struct model_desc *m, struct sw_err *err)
{
    yaml_node_t *root = ydoc_root(d);
    int rc;
    if ((rc = ydoc_expect_map(d, root, "model profile", err)) < 0 ||
        (rc = ydoc_check_keys(d, root, model_keys, "model profile", err)) < 0)
        return rc;
    yaml_node_t *n = ydoc_require(d, root, "scalewise_model", "model profile", err);
    if (!n)
        return err->code;
    int64_t version = 0;
    if ((rc = ydoc_int(d, n, 1, 1, "scalewise_model", &version, err)) < 0)
        return rc;

    memset(m, 0, sizeof(*m));
    int arch = 0;
    if (!(n = ydoc_require(d, root, "arch", "model profile", err)))
        return err->code;
    if ((rc = ydoc_word(d, n, arch_words, "arch", &arch, err)) < 0)
        return rc;
    m->arch = (enum model_arch)arch;

    stem_of(file, m->name, sizeof(m->name));
    if ((rc = ydoc_opt_str(d, root, "name", "", m->name, sizeof(m->name), err)) < 0)
        return rc;
    if (!m->name[0])
        return ydoc_err(d, ydoc_get(d, root, "name"), SW_EINVAL, err, "'name' must not be empty");

    /* Sizes: 0 for kv_heads, head_dim and ffn means "derive it" (model_fill_defaults). */
    if ((rc = read_int_key(d, root, "layers", true, 1, MODEL_MAX_LAYERS, &m->n_layers, err)) < 0 ||
        (rc = read_int_key(d, root, "hidden", true, 1, MODEL_MAX_HIDDEN, &m->hidden, err)) < 0 ||
        (rc = read_int_key(d, root, "heads", true, 1, MODEL_MAX_HEADS, &m->n_heads, err)) < 0 ||
        (rc = read_int_key(d, root, "vocab", true, 2, MODEL_MAX_VOCAB, &m->vocab, err)) < 0 ||
        (rc = read_int_key(d, root, "kv_heads", false, 0, MODEL_MAX_HEADS, &m->n_kv_heads, err)) <
            0 ||
        (rc = read_int_key(d, root, "head_dim", false, 0, MODEL_MAX_HEAD_DIM, &m->head_dim,
                           err)) < 0 ||
        (rc = read_int_key(d, root, "ffn", false, 0, MODEL_MAX_FFN, &m->ffn, err)) < 0 ||
        (rc = read_int_key(d, root, "max_pos", false, 1, MODEL_MAX_POS, &m->max_pos, err)) < 0 ||
        (rc = read_int_key(d, root, "sliding_window", false, 0, MODEL_MAX_POS, &m->sliding_window,
                           err)) < 0)
        return rc;
    if ((rc = ydoc_opt_double(d, root, "rope_theta", 0, MODEL_MAX_ROPE_THETA, "", &m->rope_theta,
                              err)) < 0)
        return rc;
    if ((rc = ydoc_opt_double(d, root, "norm_eps", MODEL_MIN_NORM_EPS, MODEL_MAX_NORM_EPS, "",
                              &m->norm_eps, err)) < 0)
        return rc;

    /* Flags: the architecture's defaults first, then what the file says. */
    fill_flags(m);
    if ((rc = ydoc_opt_bool(d, root, "tied_head", "", &m->tied_head, err)) < 0 ||
        (rc = ydoc_opt_bool(d, root, "bias", "", &m->bias, err)) < 0)
        return rc;
    int norm = m->rms_norm ? 1 : 0, act = m->swiglu ? 1 : 0, dt = -1;
    if ((rc = opt_word(d, root, "norm", norm_words, &norm, err)) < 0 ||
        (rc = opt_word(d, root, "activation", act_words, &act, err)) < 0 ||
        (rc = opt_word(d, root, "dtype", dtype_words, &dt, err)) < 0)
        return rc;
    m->rms_norm = norm == 1;
    m->swiglu = act == 1;
    m->stored_bytes_per_param = dt >= 0 ? dtype_bytes[dt] : 0;
    fill_sizes(m);

    const char *culprit = NULL;
    if ((rc = validate_impl(m, &culprit, err)) < 0) {
        /* Put the message at the value that is wrong (or the top of the file). */
        yaml_node_t *at = culprit ? ydoc_get(d, root, culprit) : NULL;
        char msg[SW_ERR_MSG_MAX];
        sw_strlcpy(msg, err ? err->msg : "", sizeof(msg));
        return ydoc_err(d, at ? at : root, rc, err, "%s", msg);
    }
    return 0;
}

int model_load_string(const char *yaml, size_t len, const char *name_for_errors,
                      struct model_desc *m, struct sw_err *err)
{
    struct sw_err local;
    if (!err)
        err = &local; /* the position lookup below reads err->msg */
    sw_err_init(err);
    struct ydoc d;
    const char *file = name_for_errors ? name_for_errors : "<model>";
    int rc = ydoc_load(&d, yaml, len, file, err);
    if (rc < 0)
        return rc;
    rc = load_doc(&d, file, m, err);
    ydoc_release(&d);
    return rc;
}

int model_load_file(const char *path, struct model_desc *m, struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(path, MODEL_FILE_MAX_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = model_load_string(text, len, path, m, err);
    free(text);
    return rc;
}

void model_emit(struct sw_emit *e, const char *key, const struct model_desc *m)
{
    sw_emit_map_begin(e, key);
    if (!key)
        sw_emit_i64(e, "scalewise_model", 1); /* a whole profile document */
    sw_emit_str(e, "name", m->name);
    sw_emit_str(e, "arch", model_arch_name(m->arch));
    sw_emit_i64(e, "layers", m->n_layers);
    sw_emit_i64(e, "hidden", m->hidden);
    sw_emit_i64(e, "heads", m->n_heads);
    sw_emit_i64(e, "kv_heads", m->n_kv_heads);
    sw_emit_i64(e, "head_dim", m->head_dim);
    sw_emit_i64(e, "ffn", m->ffn);
    sw_emit_i64(e, "vocab", m->vocab);
    sw_emit_i64(e, "max_pos", m->max_pos);
    sw_emit_bool(e, "tied_head", m->tied_head);
    sw_emit_bool(e, "bias", m->bias);
    sw_emit_str(e, "norm", m->rms_norm ? "rmsnorm" : "layernorm");
    sw_emit_str(e, "activation", m->swiglu ? "swiglu" : "gelu");
    if (m->sliding_window)
        sw_emit_i64(e, "sliding_window", m->sliding_window);
    if (m->rope_theta != 0)
        sw_emit_num(e, "rope_theta", m->rope_theta);
    if (m->norm_eps != 0)
        sw_emit_num(e, "norm_eps", m->norm_eps);
    /* 2 bytes reads back as bf16: the struct keeps the width, not the format. */
    if (m->stored_bytes_per_param == 4)
        sw_emit_str(e, "dtype", "fp32");
    else if (m->stored_bytes_per_param == 2)
        sw_emit_str(e, "dtype", "bf16");
    sw_emit_map_end(e);
}
