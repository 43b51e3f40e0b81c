/* YAML reading helpers for the advisor's loaders (advisor_int.h): parse one document with
 * libyaml's document API, walk mappings, convert scalars strictly, and report every problem at
 * the node's file:line:column with what was expected. Writing YAML is done with sw_emit. */
#include "advisor/advisor_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ydoc_load(struct ydoc *d, const char *text, size_t len, const char *file,
              struct sw_err *err)
{
    memset(d, 0, sizeof(*d));
    sw_strlcpy(d->file, file ? file : "<input>", sizeof(d->file));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return sw_err_at(err, SW_EINTERNAL, d->file, 0, 0, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, &d->doc)) {
        int line = (int)parser.problem_mark.line + 1;
        int col = (int)parser.problem_mark.column + 1;
        rc = sw_err_at(err, SW_EPARSE, d->file, line, col, "YAML syntax error: %s%s%s",
                       parser.problem ? parser.problem : "unknown problem",
                       parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);
    d->loaded = true;
    if (!yaml_document_get_root_node(&d->doc)) {
        ydoc_release(d);
        return sw_err_at(err, SW_EPARSE, d->file, 1, 1, "empty file: expected a YAML mapping");
    }
    return 0;
}

void ydoc_release(struct ydoc *d)
{
    if (d->loaded)
        yaml_document_delete(&d->doc);
    d->loaded = false;
}

yaml_node_t *ydoc_root(struct ydoc *d)
{
    return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL;
}

int ydoc_err(struct ydoc *d, const yaml_node_t *node, int code, struct sw_err *err,
             const char *fmt, ...)
{
    char msg[SW_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = node ? (int)node->start_mark.line + 1 : 0;
    int col = node ? (int)node->start_mark.column + 1 : 0;
    return sw_err_at(err, code, d->file, line, col, "%s", msg);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

int ydoc_expect_map(struct ydoc *d, yaml_node_t *n, const char *what, struct sw_err *err)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return ydoc_err(d, n, SW_EINVAL, err, "%s: expected a mapping, got %s", what,
                        n ? kind_name(n) : "nothing");
    return 0;
}

int ydoc_expect_seq(struct ydoc *d, yaml_node_t *n, const char *what, struct sw_err *err)
{
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return ydoc_err(d, n, SW_EINVAL, err, "%s: expected a list, got %s", what,
                        n ? kind_name(n) : "nothing");
    return 0;
}

static const char *scalar_of(yaml_node_t *n)
{
    return (n && n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value : NULL;
}

int ydoc_check_keys(struct ydoc *d, yaml_node_t *map, const char *const *allowed,
                    const char *section, struct sw_err *err)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
        const char *key = scalar_of(k);
        if (!key)
            return ydoc_err(d, k, SW_EINVAL, err, "in '%s': keys must be plain words", section);
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(key, *a)) {
                ok = true;
                break;
            }
        if (!ok) {
            const char *near = sw_suggest(key, allowed);
            if (near)
                return ydoc_err(d, k, SW_EINVAL, err,
                                "unknown key '%s' in '%s'; did you mean '%s'?", key, section,
                                near);
            char list[400] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a && used < sizeof(list) - 1; a++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         a == allowed ? "" : ", ", *a);
            return ydoc_err(d, k, SW_EINVAL, err, "unknown key '%s' in '%s'; expected one of: %s",
                            key, section, list);
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *prev = scalar_of(yaml_document_get_node(&d->doc, q->key));
            if (prev && !strcmp(prev, key))
                return ydoc_err(d, k, SW_EINVAL, err, "duplicate key '%s' in '%s'", key,
                                section);
        }
    }
    return 0;
}

static yaml_node_pair_t *find_pair(struct ydoc *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = scalar_of(yaml_document_get_node(&d->doc, p->key));
        if (k && !strcmp(k, key))
            return p;
    }
    return NULL;
}

yaml_node_t *ydoc_get(struct ydoc *d, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p = find_pair(d, map, key);
    return p ? yaml_document_get_node(&d->doc, p->value) : NULL;
}

yaml_node_t *ydoc_get_key(struct ydoc *d, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p = find_pair(d, map, key);
    return p ? yaml_document_get_node(&d->doc, p->key) : NULL;
}

/* A scalar that is a plain (unquoted) YAML null should be treated as missing by callers; we
 * treat "~"/"null" as not-a-number rather than zero. */
static int need_scalar(struct ydoc *d, yaml_node_t *n, const char *what, const char *expected,
                       const char **out, struct sw_err *err)
{
    const char *s = scalar_of(n);
    if (!s)
        return ydoc_err(d, n, SW_EINVAL, err, "'%s': expected %s, got %s", what, expected,
                        n ? kind_name(n) : "nothing");
    *out = s;
    return 0;
}

int ydoc_int(struct ydoc *d, yaml_node_t *n, int64_t min, int64_t max, const char *what,
             int64_t *out, struct sw_err *err)
{
    const char *s;
    int rc = need_scalar(d, n, what, "an integer", &s, err);
    if (rc < 0)
        return rc;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || end == s || *end != '\0' || n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
        n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        return ydoc_err(d, n, SW_EINVAL, err, "'%s': expected an integer, got '%s'", what, s);
    if (errno == ERANGE || v < min || v > max)
        return ydoc_err(d, n, SW_ERANGE, err, "'%s': %s is out of range; expected %lld to %lld",
                        what, s, (long long)min, (long long)max);
    *out = v;
    return 0;
}

int ydoc_double(struct ydoc *d, yaml_node_t *n, double min, double max, const char *what,
                double *out, struct sw_err *err)
{
    const char *s;
    int rc = need_scalar(d, n, what, "a number", &s, err);
    if (rc < 0)
        return rc;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || end == s || *end != '\0' || n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
        n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        return ydoc_err(d, n, SW_EINVAL, err, "'%s': expected a number, got '%s'", what, s);
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        return ydoc_err(d, n, SW_ERANGE, err, "'%s': %s is out of range; expected %g to %g", what,
                        s, min, max);
    *out = v;
    return 0;
}

int ydoc_bool(struct ydoc *d, yaml_node_t *n, const char *what, bool *out, struct sw_err *err)
{
    const char *s;
    int rc = need_scalar(d, n, what, "true or false", &s, err);
    if (rc < 0)
        return rc;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return ydoc_err(d, n, SW_EINVAL, err, "'%s': expected true or false, got '%s'", what, s);
    return 0;
}

int ydoc_str(struct ydoc *d, yaml_node_t *n, const char *what, char *buf, size_t n_buf,
             struct sw_err *err)
{
    const char *s;
    int rc = need_scalar(d, n, what, "a string", &s, err);
    if (rc < 0)
        return rc;
    if (strlen(s) >= n_buf)
        return ydoc_err(d, n, SW_ERANGE, err, "'%s': value is too long (%zu characters, at most %zu)",
                        what, strlen(s), n_buf - 1);
    sw_strlcpy(buf, s, n_buf);
    return 0;
}

int ydoc_word(struct ydoc *d, yaml_node_t *n, const char *const *words, const char *what,
              int *out, struct sw_err *err)
{
    const char *s;
    int rc = need_scalar(d, n, what, "a word", &s, err);
    if (rc < 0)
        return rc;
    for (int i = 0; words[i]; i++)
        if (!strcmp(s, words[i])) {
            *out = i;
            return 0;
        }
    char list[300] = "";
    size_t used = 0;
    for (int i = 0; words[i] && used < sizeof(list) - 1; i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                                 words[i]);
    const char *near = sw_suggest(s, words);
    if (near)
        return ydoc_err(d, n, SW_EINVAL, err, "'%s': unknown value '%s'; did you mean '%s'? (expected one of: %s)",
                        what, s, near, list);
    return ydoc_err(d, n, SW_EINVAL, err, "'%s': unknown value '%s'; expected one of: %s", what,
                    s, list);
}

static void path_of(char *buf, size_t n, const char *section, const char *key)
{
    if (section && *section)
        snprintf(buf, n, "%s.%s", section, key);
    else
        snprintf(buf, n, "%s", key);
}

int ydoc_opt_int(struct ydoc *d, yaml_node_t *map, const char *key, int64_t min, int64_t max,
                 const char *section, int64_t *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    if (!n)
        return 0;
    char what[128];
    path_of(what, sizeof(what), section, key);
    return ydoc_int(d, n, min, max, what, out, err);
}

int ydoc_opt_i32(struct ydoc *d, yaml_node_t *map, const char *key, int min, int max,
                 const char *section, int *out, struct sw_err *err)
{
    int64_t v = *out;
    int rc = ydoc_opt_int(d, map, key, min, max, section, &v, err);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

int ydoc_opt_double(struct ydoc *d, yaml_node_t *map, const char *key, double min, double max,
                    const char *section, double *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    if (!n)
        return 0;
    char what[128];
    path_of(what, sizeof(what), section, key);
    return ydoc_double(d, n, min, max, what, out, err);
}

int ydoc_opt_bool(struct ydoc *d, yaml_node_t *map, const char *key, const char *section,
                  bool *out, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    if (!n)
        return 0;
    char what[128];
    path_of(what, sizeof(what), section, key);
    return ydoc_bool(d, n, what, out, err);
}

int ydoc_opt_str(struct ydoc *d, yaml_node_t *map, const char *key, const char *section,
                 char *buf, size_t n_buf, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    if (!n)
        return 0;
    char what[128];
    path_of(what, sizeof(what), section, key);
    return ydoc_str(d, n, what, buf, n_buf, err);
}

yaml_node_t *ydoc_require(struct ydoc *d, yaml_node_t *map, const char *key,
                          const char *section, struct sw_err *err)
{
    yaml_node_t *n = ydoc_get(d, map, key);
    if (!n)
        ydoc_err(d, map, SW_EINVAL, err, "missing key '%s' in '%s'", key,
                 section && *section ? section : "the top level");
    return n;
}
