/* common — the small utilities every module shares: the error struct and codes, checked
 * allocation (with fault injection in test builds), a bounded growable buffer, whole-file
 * reading, atomic file writing, strict number parsing, and a structured writer that prints the
 * same tree as YAML or JSON. Nothing here prints to a terminal on its own. */
#ifndef SW_COMMON_H
#define SW_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h> /* before banned.h: it defines atoi inline */
#include <string.h>

/* ---------------------------------------------------------------- errors */

/* Error codes: every fallible function returns 0 or one of these (negative). */
#define SW_OK 0
#define SW_EINVAL (-1)       /* bad input: a value, a combination, a flag */
#define SW_ENOMEM (-2)       /* a model-sized allocation failed, or does not fit */
#define SW_EIO (-3)          /* read/write/fsync/rename failed */
#define SW_ENOENT (-4)       /* file, profile or key not found */
#define SW_EPARSE (-5)       /* syntax error in YAML/JSON/a number */
#define SW_EUNSUPPORTED (-6) /* valid, but this build/machine cannot do it */
#define SW_ERANGE (-7)       /* a number outside its allowed range */
#define SW_EINTERNAL (-8)    /* a library we call failed unexpectedly */

#define SW_ERR_MSG_MAX 512
#define SW_ERR_FILE_MAX 256

/* The one error record the CLI, the TUI and the tests read. `file`, `line` and `col` are set
 * when the error has a place in an input file (1-based; 0 = unknown). */
struct sw_err {
    int code;
    char msg[SW_ERR_MSG_MAX];
    char file[SW_ERR_FILE_MAX];
    int line;
    int col;
};

void sw_err_init(struct sw_err *err);

/* Fill `err` (if not NULL) with `code` and a printf-style message; returns `code`, so
 * `return sw_errf(err, SW_EINVAL, "...")` both records and propagates. */
int sw_errf(struct sw_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As sw_errf, with the place in an input file. */
int sw_err_at(struct sw_err *err, int code, const char *file, int line, int col, const char *fmt,
              ...) __attribute__((format(printf, 6, 7)));

/* "file:line:col: msg" (or the parts that are known) into buf. Returns buf. */
const char *sw_err_format(const struct sw_err *err, char *buf, size_t n);

/* A short word for a code: "invalid input", "out of memory", ... Never NULL. */
const char *sw_strerror(int code);

/* Programming errors only (never bad input): abort with file:line. */
#define SW_ASSERT(cond)                                                                          \
    do {                                                                                         \
        if (!(cond))                                                                             \
            sw_assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)
void sw_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* ---------------------------------------------------------------- memory */

/* Bookkeeping allocations: abort with a message on failure (never for model-sized buffers). */
void *sw_xmalloc(size_t n);
void *sw_xcalloc(size_t count, size_t size);
void *sw_xrealloc(void *p, size_t n);
char *sw_xstrdup(const char *s);

/* Fallible allocation for model-sized buffers: returns NULL and fills err with SW_ENOMEM naming
 * `what` and the bytes requested. In test builds, SW_FAIL_ALLOC_AT=N makes the Nth call of
 * sw_try_malloc/sw_try_calloc (counted from process start) fail. */
void *sw_try_malloc(size_t n, const char *what, struct sw_err *err);
void *sw_try_calloc(size_t count, size_t size, const char *what, struct sw_err *err);

/* Copy src into dst (size n), always NUL-terminated, truncating. Returns strlen(src) so the
 * caller can detect truncation (>= n). */
size_t sw_strlcpy(char *dst, const char *src, size_t n);

/* ---------------------------------------------------------------- buffers */

/* A growable byte buffer with a ceiling: appends past `max_bytes` fail with SW_ERANGE. The
 * buffer owns `data`, which is always NUL-terminated (len excludes the NUL). */
struct sw_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max_bytes;
};
void sw_buf_init(struct sw_buf *b, size_t max_bytes);
void sw_buf_release(struct sw_buf *b);
int sw_buf_append(struct sw_buf *b, const void *data, size_t n, struct sw_err *err);
int sw_buf_printf(struct sw_buf *b, struct sw_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- files */

/* Read a whole file (at most max_bytes) into a new NUL-terminated buffer owned by the caller
 * (free()). Errors name the file: SW_ENOENT, SW_EIO, SW_ERANGE (too big). */
int sw_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                 struct sw_err *err);

/* Write atomically: a temporary file beside `path`, fsync, rename, fsync of the directory. On
 * failure the old file (if any) is untouched and the temporary is removed. */
int sw_write_file_atomic(const char *path, const void *data, size_t len, struct sw_err *err);

/* fsync the directory holding `path`, so a rename into it survives a crash. Best effort. */
void sw_fsync_dir_of(const char *path);

/* Directory of the running executable (/proc/self/exe) into dir; "" when unknown. */
void sw_exe_dir(char *dir, size_t n);

/* Little-endian integers in byte buffers (file headers, wire records), independent of the host's
 * byte order. */
void sw_put_le32(unsigned char *p, uint32_t v);
void sw_put_le64(unsigned char *p, uint64_t v);
uint32_t sw_get_le32(const unsigned char *p);
uint64_t sw_get_le64(const unsigned char *p);

/* ---------------------------------------------------------------- numbers */

/* Strict parsing: the whole string must be a number (no trailing junk, no empty string), in
 * range. `what` names the value in the error message. */
int sw_parse_i64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out,
                 struct sw_err *err);
int sw_parse_int(const char *s, int min, int max, const char *what, int *out, struct sw_err *err);
int sw_parse_double(const char *s, double min, double max, const char *what, double *out,
                    struct sw_err *err);

/* Levenshtein distance, for "did you mean" suggestions. */
int sw_edit_distance(const char *a, const char *b);

/* The candidate in `words` (NULL-terminated) closest to `s` if close enough to suggest, else
 * NULL. Borrowed from `words`. */
const char *sw_suggest(const char *s, const char *const *words);

/* Human size: "1.50 GiB", "512 MiB", "12 B" into buf. Returns buf. */
const char *sw_fmt_bytes(double bytes, char *buf, size_t n);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double sw_now_s(void);

/* ---------------------------------------------------------------- structured output */

enum sw_fmt { SW_FMT_TEXT, SW_FMT_YAML, SW_FMT_JSON };

/* Parse "text" | "yaml" | "json". */
int sw_fmt_parse(const char *s, enum sw_fmt *out, struct sw_err *err);

#define SW_EMIT_MAX_DEPTH 32

/* One open container of an emitter (internal bookkeeping, read by nobody else). */
struct sw_emit_frame {
    bool is_list;
    bool written;      /* YAML: header line printed */
    bool dash_pending; /* YAML: map item of a list whose first key goes after "- " */
    int indent;        /* YAML: indent of the children lines */
    int count;         /* items written so far */
    char key[64];
};

/* A writer for nested maps and lists that prints the same tree as block YAML or as JSON, so
 * every command's --format yaml|json shares one code path. `key` is NULL for list items and
 * for the top-level value. Keys are printed as given (use [a-z0-9_]). Strings are quoted when
 * needed. Doubles print with %.17g in JSON/YAML unless emit_num_prec is used; non-finite
 * doubles print as null (JSON) / .nan / .inf (YAML). Output goes to a FILE or, when f is NULL,
 * to the sw_buf passed to sw_emit_init_buf. */
struct sw_emit {
    FILE *f;
    struct sw_buf *buf;
    enum sw_fmt fmt;
    int depth;
    struct sw_emit_frame fr[SW_EMIT_MAX_DEPTH]; /* fr[1..depth] are open */
};
void sw_emit_init(struct sw_emit *e, FILE *f, enum sw_fmt fmt);
void sw_emit_init_buf(struct sw_emit *e, struct sw_buf *buf, enum sw_fmt fmt);
void sw_emit_map_begin(struct sw_emit *e, const char *key);
void sw_emit_map_end(struct sw_emit *e);
void sw_emit_list_begin(struct sw_emit *e, const char *key);
void sw_emit_list_end(struct sw_emit *e);
void sw_emit_str(struct sw_emit *e, const char *key, const char *val); /* NULL val: null */
void sw_emit_i64(struct sw_emit *e, const char *key, int64_t val);
void sw_emit_u64(struct sw_emit *e, const char *key, uint64_t val);
void sw_emit_num(struct sw_emit *e, const char *key, double val);
void sw_emit_num_prec(struct sw_emit *e, const char *key, double val, int sig_digits);
void sw_emit_bool(struct sw_emit *e, const char *key, bool val);
void sw_emit_null(struct sw_emit *e, const char *key);
/* Ends the document (JSON: final newline). */
void sw_emit_finish(struct sw_emit *e);

#include "banned.h"

#endif
