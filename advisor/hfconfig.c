/* Hugging Face config.json into a model description: the GPT-2 fields (model_type "gpt2") and
 * the Llama-family fields shared by "llama", "mistral" and "qwen2", read with json-c. Missing
 * optional fields take the value the transformers config class would use. Errors name the
 * file; syntax errors also carry the line and column where json-c stopped. The struct and its
 * defaults and validation are model.c's. */
#include "advisor/advisor.h"

#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* A config.json is a few KiB; anything this large is not one. */
#define HF_CONFIG_MAX_BYTES (4u << 20)

/* Limits for reading integers; model_validate applies the model's own limits afterwards. */
#define HF_INT_MAX (1 << 30)

static const char *const supported_types = "gpt2, llama, mistral, qwen2";

struct hf_reader {
    const char *path;
    json_object *root;
    struct sw_err *err;
};

static const char *type_word(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    default: return "something else";
    }
}

/* The value of `key`, or NULL when absent or JSON null (both mean "use the default"). */
static json_object *field(struct hf_reader *r, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(r->root, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

/* An integer field in [min, max]. Absent: SW_EINVAL naming it when required, else *out is left
 * alone. A number with a fraction, a string or a boolean is a type error. */
static int get_int(struct hf_reader *r, const char *key, bool required, int64_t min, int64_t max,
                   int *out)
{
    json_object *v = field(r, key);
    if (!v) {
        if (required)
            return sw_err_at(r->err, SW_EINVAL, r->path, 0, 0, "missing '%s'", key);
        return 0;
    }
    int64_t i;
    if (json_object_is_type(v, json_type_int)) {
        i = json_object_get_int64(v); /* saturates at INT64_MAX, so huge values fail below */
    } else if (json_object_is_type(v, json_type_double)) {
        double x = json_object_get_double(v);
        if (!isfinite(x) || fabs(x) > 9e15)
            return sw_err_at(r->err, SW_ERANGE, r->path, 0, 0,
                             "'%s' is %g; expected an integer from %lld to %lld", key, x,
                             (long long)min, (long long)max);
        if (x != floor(x))
            return sw_err_at(r->err, SW_EINVAL, r->path, 0, 0,
                             "'%s' must be an integer, got %g", key, x);
        i = (int64_t)x;
    } else {
        return sw_err_at(r->err, SW_EINVAL, r->path, 0, 0, "'%s' must be an integer, got %s",
                         key, type_word(v));
    }
    if (i == INT64_MAX) /* json-c saturates integers that do not fit */
        return sw_err_at(r->err, SW_ERANGE, r->path, 0, 0,
                         "'%s' is too large; expected an integer from %lld to %lld", key,
                         (long long)min, (long long)max);
    if (i < min || i > max)
        return sw_err_at(r->err, SW_ERANGE, r->path, 0, 0,
                         "'%s' is %s; expected an integer from %lld to %lld", key,
                         json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                         (long long)min, (long long)max);
    *out = (int)i;
    return 0;
}

static int get_double(struct hf_reader *r, const char *key, double min, double max, double *out)
{
    json_object *v = field(r, key);
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return sw_err_at(r->err, SW_EINVAL, r->path, 0, 0, "'%s' must be a number, got %s", key,
                         type_word(v));
    double x = json_object_get_double(v);
    if (!isfinite(x) || x < min || x > max)
        return sw_err_at(r->err, SW_ERANGE, r->path, 0, 0, "'%s' is %g; expected %g to %g", key,
                         x, min, max);
    *out = x;
    return 0;
}

static int get_bool(struct hf_reader *r, const char *key, bool *out)
{
    json_object *v = field(r, key);
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return sw_err_at(r->err, SW_EINVAL, r->path, 0, 0, "'%s' must be true or false, got %s",
                         key, type_word(v));
    *out = json_object_get_boolean(v);
    return 0;
}

/* A string field or NULL when absent; a non-string is a type error (*rc < 0). */
static const char *get_str(struct hf_reader *r, const char *key, int *rc)
{
    *rc = 0;
    json_object *v = field(r, key);
    if (!v)
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *rc = sw_err_at(r->err, SW_EINVAL, r->path, 0, 0, "'%s' must be a string, got %s", key,
                        type_word(v));
        return NULL;
    }
    return json_object_get_string(v);
}

/* 1-based line and column of byte `off` of `text`. */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i < off; i++)
        if (text[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = (int)(off - start) + 1;
}

static bool all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i]))
            return false;
    return true;
}

/* Parse the whole text as one JSON object. */
static int parse_json(const char *path, const char *text, size_t len, json_object **out,
                      struct sw_err *err)
{
    *out = NULL;
    if (all_space(text, len))
        return sw_err_at(err, SW_EPARSE, path, 1, 1, "empty file: expected a JSON object");
    if (len > INT_MAX)
        return sw_err_at(err, SW_ERANGE, path, 0, 0, "file is too large");
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return sw_err_at(err, SW_EINTERNAL, path, 0, 0, "cannot create a JSON parser");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int line, col, rc = 0;
    if (!obj) {
        bool eof = jerr == json_tokener_continue;
        line_col(text, eof ? len : end, &line, &col);
        rc = sw_err_at(err, SW_EPARSE, path, line, col, "JSON syntax error: %s",
                       eof ? "unexpected end of file (truncated?)" : json_tokener_error_desc(jerr));
        return rc;
    }
    if (end < len && !all_space(text + end, len - end)) {
        line_col(text, end, &line, &col);
        json_object_put(obj);
        return sw_err_at(err, SW_EPARSE, path, line, col,
                         "JSON syntax error: unexpected text after the top-level object");
    }
    if (!json_object_is_type(obj, json_type_object)) {
        rc = sw_err_at(err, SW_EINVAL, path, 1, 1,
                       "expected a JSON object at the top level, got %s", type_word(obj));
        json_object_put(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

/* A name for the description: "_name_or_path" when the config has one, else the folder of a
 * ".../<model>/config.json", else the file's stem. */
static void name_from(struct hf_reader *r, char *out, size_t n)
{
    int rc;
    const char *s = get_str(r, "_name_or_path", &rc);
    if (s && *s) {
        /* A hub id ("meta-llama/Llama-2-7b-hf") is kept whole; a local path gives its last part. */
        const char *slash = strrchr(s, '/');
        if ((s[0] == '/' || s[0] == '.') && slash && slash[1])
            s = slash + 1;
        sw_strlcpy(out, s, n);
        return;
    }
    char buf[PLAN_PATH_MAX];
    sw_strlcpy(buf, r->path, sizeof(buf));
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    if (!strcmp(base, "config.json") && slash) {
        *slash = '\0';
        slash = strrchr(buf, '/');
        base = slash ? slash + 1 : buf;
        if (*base && strcmp(base, ".") && strcmp(base, "..")) {
            sw_strlcpy(out, base, n);
            return;
        }
        base = "config.json";
    }
    sw_strlcpy(out, base, n);
    char *dot = strrchr(out, '.');
    if (dot && dot != out && !strcmp(dot, ".json"))
        *dot = '\0';
}

/* torch_dtype (transformers < 4.56) or dtype (newer): the width of the stored checkpoint. An
 * unknown dtype (fp8 variants, ...) is left unknown rather than guessed. */
static int read_dtype(struct hf_reader *r, struct model_desc *m)
{
    int rc;
    const char *s = get_str(r, "torch_dtype", &rc);
    if (rc < 0)
        return rc;
    if (!s && !(s = get_str(r, "dtype", &rc)) && rc < 0)
        return rc;
    m->stored_bytes_per_param = 0;
    if (!s)
        return 0;
    if (!strcmp(s, "float32"))
        m->stored_bytes_per_param = 4;
    else if (!strcmp(s, "bfloat16") || !strcmp(s, "float16"))
        m->stored_bytes_per_param = 2;
    return 0;
}

/* GPT2Config: n_layer, n_embd, n_head, n_inner (null: 4h), vocab_size, n_positions. */
static int read_gpt2(struct hf_reader *r, struct model_desc *m)
{
    int rc;
    m->arch = MODEL_ARCH_GPT2;
    if ((rc = get_int(r, "n_layer", true, 1, HF_INT_MAX, &m->n_layers)) < 0 ||
        (rc = get_int(r, "n_embd", true, 1, HF_INT_MAX, &m->hidden)) < 0 ||
        (rc = get_int(r, "n_head", true, 1, HF_INT_MAX, &m->n_heads)) < 0 ||
        (rc = get_int(r, "n_inner", false, 1, HF_INT_MAX, &m->ffn)) < 0 ||
        (rc = get_int(r, "vocab_size", true, 1, HF_INT_MAX, &m->vocab)) < 0)
        return rc;
    /* Early configs name the context n_ctx only; n_positions sizes the position table. */
    if ((rc = get_int(r, "n_ctx", false, 1, HF_INT_MAX, &m->max_pos)) < 0 ||
        (rc = get_int(r, "n_positions", false, 1, HF_INT_MAX, &m->max_pos)) < 0)
        return rc;
    m->norm_eps = 1e-5; /* GPT2Config default */
    if ((rc = get_double(r, "layer_norm_epsilon", 1e-12, 0.1, &m->norm_eps)) < 0)
        return rc;
    model_fill_defaults(m);
    m->tied_head = true; /* PretrainedConfig default */
    return get_bool(r, "tie_word_embeddings", &m->tied_head);
}

/* LlamaConfig, MistralConfig, Qwen2Config. Absent fields take the defaults of those classes
 * (transformers 4.4x): max positions 2048 / 131072 / 32768, rms_norm_eps 1e-6, rope_theta 1e4,
 * tie_word_embeddings false. hidden_act is "silu" in all published configs; another gated
 * activation has the same shapes, so it is not read. Qwen2 puts biases on the q, k and v
 * projections only: for a Llama-style model `bias: true` means exactly those (counts.c counts
 * them, giving Hugging Face's parameter totals). Llama's attention_bias and mlp_bias (false in
 * every published config) are not read. */
static int read_llama(struct hf_reader *r, const char *type, struct model_desc *m)
{
    int rc;
    bool mistral = !strcmp(type, "mistral"), qwen2 = !strcmp(type, "qwen2");
    m->arch = MODEL_ARCH_LLAMA;
    if ((rc = get_int(r, "num_hidden_layers", true, 1, HF_INT_MAX, &m->n_layers)) < 0 ||
        (rc = get_int(r, "hidden_size", true, 1, HF_INT_MAX, &m->hidden)) < 0 ||
        (rc = get_int(r, "num_attention_heads", true, 1, HF_INT_MAX, &m->n_heads)) < 0 ||
        (rc = get_int(r, "num_key_value_heads", false, 1, HF_INT_MAX, &m->n_kv_heads)) < 0 ||
        (rc = get_int(r, "head_dim", false, 1, HF_INT_MAX, &m->head_dim)) < 0 ||
        (rc = get_int(r, "intermediate_size", true, 1, HF_INT_MAX, &m->ffn)) < 0 ||
        (rc = get_int(r, "vocab_size", true, 1, HF_INT_MAX, &m->vocab)) < 0)
        return rc;
    m->max_pos = mistral ? 4096 * 32 : qwen2 ? 32768 : 2048;
    if ((rc = get_int(r, "max_position_embeddings", false, 1, HF_INT_MAX, &m->max_pos)) < 0)
        return rc;
    m->norm_eps = 1e-6;
    m->rope_theta = 10000.0;
    if ((rc = get_double(r, "rms_norm_eps", 1e-12, 0.1, &m->norm_eps)) < 0 ||
        (rc = get_double(r, "rope_theta", 1e-3, 1e12, &m->rope_theta)) < 0)
        return rc;
    if (mistral || qwen2) {
        /* Qwen2 configs carry a sliding_window that only applies with use_sliding_window. */
        bool use_sw = mistral;
        if (qwen2 && (rc = get_bool(r, "use_sliding_window", &use_sw)) < 0)
            return rc;
        int window = 0;
        if ((rc = get_int(r, "sliding_window", false, 1, HF_INT_MAX, &window)) < 0)
            return rc;
        m->sliding_window = use_sw ? window : 0;
    }
    model_fill_defaults(m);
    m->bias = qwen2; /* after the defaults, which set the architecture's flags */
    m->tied_head = false;
    return get_bool(r, "tie_word_embeddings", &m->tied_head);
}

int model_load_hf_config(const char *path, struct model_desc *m, struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    json_object *root = NULL;
    int rc = sw_read_file(path, HF_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    if ((rc = parse_json(path, text, len, &root, err)) < 0)
        goto out;

    struct hf_reader r = {.path = path, .root = root, .err = err};
    const char *type = get_str(&r, "model_type", &rc);
    if (rc < 0)
        goto out;
    if (!type) {
        rc = sw_err_at(err, SW_EINVAL, path, 0, 0, "missing 'model_type' (supported: %s)",
                       supported_types);
        goto out;
    }
    struct model_desc tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (!strcmp(type, "gpt2")) {
        rc = read_gpt2(&r, &tmp);
    } else if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2")) {
        rc = read_llama(&r, type, &tmp);
    } else {
        rc = sw_err_at(err, SW_EUNSUPPORTED, path, 0, 0,
                       "unsupported model_type '%s'; supported: %s", type, supported_types);
    }
    if (rc < 0 || (rc = read_dtype(&r, &tmp)) < 0)
        goto out;
    name_from(&r, tmp.name, sizeof(tmp.name));
    if ((rc = model_validate(&tmp, err)) < 0) {
        char msg[SW_ERR_MSG_MAX];
        sw_strlcpy(msg, err ? err->msg : "", sizeof(msg));
        rc = sw_err_at(err, rc, path, 0, 0, "not a valid model: %s", msg);
        goto out;
    }
    *m = tmp;
out:
    if (root)
        json_object_put(root);
    free(text);
    return rc;
}
