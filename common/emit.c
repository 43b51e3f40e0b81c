/* Implements the structured writer of common.h: one tree of maps, lists and scalars printed as
 * block YAML or pretty JSON. Container headers are written lazily so that empty maps and lists
 * print as {} and []. Numbers print in the shortest form that reads back to the same double. */
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void out(struct sw_emit *e, const char *s, size_t n)
{
    if (e->f)
        fwrite(s, 1, n, e->f);
    else if (e->buf)
        (void)sw_buf_append(e->buf, s, n, NULL);
}

static void outs(struct sw_emit *e, const char *s) { out(e, s, strlen(s)); }

static void spaces(struct sw_emit *e, int n)
{
    static const char sp[] = "                                                                ";
    while (n > 0) {
        int k = n > 64 ? 64 : n;
        out(e, sp, (size_t)k);
        n -= k;
    }
}

static void init_common(struct sw_emit *e, enum sw_fmt fmt)
{
    e->fmt = fmt;
    e->depth = 0;
    memset(e->fr, 0, sizeof(e->fr));
}

void sw_emit_init(struct sw_emit *e, FILE *f, enum sw_fmt fmt)
{
    e->f = f;
    e->buf = NULL;
    init_common(e, fmt);
}

void sw_emit_init_buf(struct sw_emit *e, struct sw_buf *buf, enum sw_fmt fmt)
{
    e->f = NULL;
    e->buf = buf;
    init_common(e, fmt);
}

/* ------------------------------------------------------------ string quoting */

static bool yaml_needs_quotes(const char *s)
{
    static const char *const plain_words[] = {"true", "false", "yes", "no", "on", "off",
                                              "null", "~", "True", "False", "Yes", "No",
                                              "On", "Off", "Null", "NULL", "TRUE", "FALSE",
                                              "y", "n", "Y", "N", NULL};
    if (!*s)
        return true;
    for (const char *const *w = plain_words; *w; w++)
        if (!strcmp(s, *w))
            return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]))
        return true;
    size_t n = strlen(s);
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return true;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return true;
        if (c == ':' && (p[1] == ' ' || p[1] == '\0'))
            return true;
        if (c == '#' && p > s && p[-1] == ' ')
            return true;
        if (strchr("{}[],", c))
            return true;
    }
    /* Anything that would read back as a number. */
    char *end = NULL;
    (void)strtod(s, &end);
    if (end && *end == '\0')
        return true;
    if (!strcmp(s, ".nan") || !strcmp(s, ".inf") || !strcmp(s, "-.inf"))
        return true;
    return false;
}

static void quoted(struct sw_emit *e, const char *s)
{
    outs(e, "\"");
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        switch (c) {
        case '"': outs(e, "\\\""); break;
        case '\\': outs(e, "\\\\"); break;
        case '\n': outs(e, "\\n"); break;
        case '\t': outs(e, "\\t"); break;
        case '\r': outs(e, "\\r"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                outs(e, esc);
            } else {
                out(e, (const char *)p, 1);
            }
        }
    }
    outs(e, "\"");
}

/* ------------------------------------------------------------ YAML */

static void yaml_prefix(struct sw_emit *e, struct sw_emit_frame *parent)
{
    if (parent->dash_pending) {
        spaces(e, parent->indent - 2);
        outs(e, "- ");
        parent->dash_pending = false;
    } else {
        spaces(e, parent->indent);
    }
    if (parent->is_list)
        outs(e, "- ");
}

/* Write the headers of every container not yet written, outermost first. */
static void yaml_open_pending(struct sw_emit *e)
{
    for (int d = 1; d <= e->depth; d++) {
        struct sw_emit_frame *f = &e->fr[d];
        if (f->written)
            continue;
        f->written = true;
        if (d == 1) {
            f->indent = 0;
            continue;
        }
        struct sw_emit_frame *parent = &e->fr[d - 1];
        if (parent->is_list && !f->is_list) {
            /* a map item of a list: its first key goes after "- " */
            f->indent = parent->indent + 2;
            f->dash_pending = true;
            continue;
        }
        yaml_prefix(e, parent);
        if (!parent->is_list) {
            outs(e, f->key);
            outs(e, ":\n");
        } else {
            outs(e, "\n");
        }
        f->indent = parent->indent + 2;
    }
}

static void yaml_scalar_line(struct sw_emit *e, const char *key, const char *val, bool quote)
{
    if (e->depth == 0) {
        if (quote)
            quoted(e, val);
        else
            outs(e, val);
        outs(e, "\n");
        return;
    }
    yaml_open_pending(e);
    struct sw_emit_frame *parent = &e->fr[e->depth];
    yaml_prefix(e, parent);
    if (!parent->is_list && key) {
        outs(e, key);
        outs(e, ": ");
    }
    if (quote)
        quoted(e, val);
    else
        outs(e, val);
    outs(e, "\n");
}

/* ------------------------------------------------------------ JSON */

static void json_item_start(struct sw_emit *e, const char *key)
{
    if (e->depth == 0)
        return;
    if (e->fr[e->depth].count > 0)
        outs(e, ",");
    outs(e, "\n");
    spaces(e, 2 * e->depth);
    if (!e->fr[e->depth].is_list && key) {
        quoted(e, key);
        outs(e, ": ");
    }
}

/* ------------------------------------------------------------ public */

static void scalar(struct sw_emit *e, const char *key, const char *val, bool is_string)
{
    if (e->fmt == SW_FMT_JSON) {
        json_item_start(e, key);
        if (is_string)
            quoted(e, val);
        else
            outs(e, val);
        if (e->depth == 0)
            outs(e, "\n");
    } else {
        yaml_scalar_line(e, key, val, is_string && yaml_needs_quotes(val));
    }
    if (e->depth > 0)
        e->fr[e->depth].count++;
}

static void push(struct sw_emit *e, const char *key, bool is_list)
{
    SW_ASSERT(e->depth + 1 < SW_EMIT_MAX_DEPTH);
    if (e->fmt == SW_FMT_JSON) {
        json_item_start(e, key);
        outs(e, is_list ? "[" : "{");
    }
    if (e->depth > 0)
        e->fr[e->depth].count++;
    e->depth++;
    struct sw_emit_frame *f = &e->fr[e->depth];
    memset(f, 0, sizeof(*f));
    f->is_list = is_list;
    if (key)
        sw_strlcpy(f->key, key, sizeof(f->key));
}

static void pop(struct sw_emit *e, bool is_list)
{
    SW_ASSERT(e->depth > 0 && e->fr[e->depth].is_list == is_list);
    if (e->fmt == SW_FMT_JSON) {
        if (e->fr[e->depth].count > 0) {
            outs(e, "\n");
            spaces(e, 2 * (e->depth - 1));
        }
        outs(e, is_list ? "]" : "}");
        e->depth--;
        if (e->depth == 0)
            outs(e, "\n");
        return;
    }
    struct sw_emit_frame *f = &e->fr[e->depth];
    if (e->fr[e->depth].count == 0) {
        /* empty container: print it inline */
        if (e->depth == 1) {
            outs(e, is_list ? "[]\n" : "{}\n");
        } else {
            e->depth--;
            yaml_open_pending(e);
            struct sw_emit_frame *parent = &e->fr[e->depth];
            yaml_prefix(e, parent);
            if (!parent->is_list) {
                outs(e, f->key);
                outs(e, ": ");
            }
            outs(e, is_list ? "[]\n" : "{}\n");
            return;
        }
    }
    e->depth--;
}

void sw_emit_map_begin(struct sw_emit *e, const char *key) { push(e, key, false); }
void sw_emit_map_end(struct sw_emit *e) { pop(e, false); }
void sw_emit_list_begin(struct sw_emit *e, const char *key) { push(e, key, true); }
void sw_emit_list_end(struct sw_emit *e) { pop(e, true); }

void sw_emit_str(struct sw_emit *e, const char *key, const char *val)
{
    if (!val)
        sw_emit_null(e, key);
    else
        scalar(e, key, val, true);
}

void sw_emit_i64(struct sw_emit *e, const char *key, int64_t val)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", (long long)val);
    scalar(e, key, b, false);
}

void sw_emit_u64(struct sw_emit *e, const char *key, uint64_t val)
{
    char b[32];
    snprintf(b, sizeof(b), "%llu", (unsigned long long)val);
    scalar(e, key, b, false);
}

static void fmt_double(double v, int prec, char *b, size_t n)
{
    if (prec > 0) {
        snprintf(b, n, "%.*g", prec, v);
        return;
    }
    for (int p = 6; p <= 17; p++) {
        snprintf(b, n, "%.*g", p, v);
        if (strtod(b, NULL) == v)
            return;
    }
}

static void num(struct sw_emit *e, const char *key, double val, int prec)
{
    char b[40];
    if (!isfinite(val)) {
        if (e->fmt == SW_FMT_JSON)
            snprintf(b, sizeof(b), "null");
        else
            snprintf(b, sizeof(b), "%s", isnan(val) ? ".nan" : (val > 0 ? ".inf" : "-.inf"));
    } else {
        fmt_double(val, prec, b, sizeof(b));
        /* keep a float looking like a float in YAML/JSON readers that care */
        char *ex = strpbrk(b, "eE");
        if (!strpbrk(b, ".n") && !ex) {
            strncat(b, ".0", sizeof(b) - strlen(b) - 1);
        } else if (ex && !memchr(b, '.', (size_t)(ex - b)) && strlen(b) + 2 < sizeof(b)) {
            /* "1e-05" is a string to YAML 1.1 readers (PyYAML): its floats need a '.' */
            memmove(ex + 2, ex, strlen(ex) + 1);
            ex[0] = '.';
            ex[1] = '0';
        }
    }
    scalar(e, key, b, false);
}

void sw_emit_num(struct sw_emit *e, const char *key, double val) { num(e, key, val, 0); }

void sw_emit_num_prec(struct sw_emit *e, const char *key, double val, int sig_digits)
{
    num(e, key, val, sig_digits);
}

void sw_emit_bool(struct sw_emit *e, const char *key, bool val)
{
    scalar(e, key, val ? "true" : "false", false);
}

void sw_emit_null(struct sw_emit *e, const char *key) { scalar(e, key, "null", false); }

void sw_emit_finish(struct sw_emit *e)
{
    if (e->f)
        fflush(e->f);
}
