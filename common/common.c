/* Implements common.h: errors, checked and fallible allocation, buffers, whole-file reads,
 * atomic writes, strict number parsing and suggestions. The YAML/JSON writer is in emit.c. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void sw_err_init(struct sw_err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

static int err_vset(struct sw_err *err, int code, const char *file, int line, int col,
                    const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    if (file)
        sw_strlcpy(err->file, file, sizeof(err->file));
    else
        err->file[0] = '\0';
    err->line = line;
    err->col = col;
    return code;
}

int sw_errf(struct sw_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, NULL, 0, 0, fmt, ap);
    va_end(ap);
    return code;
}

int sw_err_at(struct sw_err *err, int code, const char *file, int line, int col, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, file, line, col, fmt, ap);
    va_end(ap);
    return code;
}

const char *sw_err_format(const struct sw_err *err, char *buf, size_t n)
{
    if (!err || n == 0)
        return buf;
    if (err->file[0] && err->line > 0 && err->col > 0)
        snprintf(buf, n, "%s:%d:%d: %s", err->file, err->line, err->col, err->msg);
    else if (err->file[0] && err->line > 0)
        snprintf(buf, n, "%s:%d: %s", err->file, err->line, err->msg);
    else if (err->file[0])
        snprintf(buf, n, "%s: %s", err->file, err->msg);
    else
        snprintf(buf, n, "%s", err->msg[0] ? err->msg : sw_strerror(err->code));
    return buf;
}

const char *sw_strerror(int code)
{
    switch (code) {
    case SW_OK: return "success";
    case SW_EINVAL: return "invalid input";
    case SW_ENOMEM: return "out of memory";
    case SW_EIO: return "input/output error";
    case SW_ENOENT: return "not found";
    case SW_EPARSE: return "parse error";
    case SW_EUNSUPPORTED: return "not supported";
    case SW_ERANGE: return "out of range";
    case SW_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}

void sw_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

/* ---------------------------------------------------------------- memory */

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sw_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *sw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *sw_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sw_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* Fault injection: SW_FAIL_ALLOC_AT=N fails the Nth fallible allocation. Read once. */
static long fail_alloc_at = -1;
static long fallible_calls;

static bool should_fail_alloc(void)
{
    if (fail_alloc_at == -1) {
        const char *s = getenv("SW_FAIL_ALLOC_AT");
        char *end = NULL;
        long v = s ? strtol(s, &end, 10) : 0;
        fail_alloc_at = (s && end && *end == '\0' && v > 0) ? v : 0;
    }
    fallible_calls++;
    return fail_alloc_at > 0 && fallible_calls == fail_alloc_at;
}

void *sw_try_malloc(size_t n, const char *what, struct sw_err *err)
{
    char sz[32];
    void *p = should_fail_alloc() ? NULL : malloc(n ? n : 1);
    if (!p)
        sw_errf(err, SW_ENOMEM, "cannot allocate %s for %s (%zu bytes)",
                sw_fmt_bytes((double)n, sz, sizeof(sz)), what, n);
    return p;
}

void *sw_try_calloc(size_t count, size_t size, const char *what, struct sw_err *err)
{
    char sz[32];
    if (size && count > SIZE_MAX / size) {
        sw_errf(err, SW_ENOMEM, "cannot allocate %s: %zu x %zu bytes overflows", what, count,
                size);
        return NULL;
    }
    void *p = should_fail_alloc() ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p)
        sw_errf(err, SW_ENOMEM, "cannot allocate %s for %s (%zu bytes)",
                sw_fmt_bytes((double)count * (double)size, sz, sizeof(sz)), what, count * size);
    return p;
}

size_t sw_strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return len;
}

/* ---------------------------------------------------------------- buffers */

void sw_buf_init(struct sw_buf *b, size_t max_bytes)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
}

void sw_buf_release(struct sw_buf *b)
{
    free(b->data);
    sw_buf_init(b, b->max_bytes);
}

static int buf_reserve(struct sw_buf *b, size_t extra, struct sw_err *err)
{
    if (b->len + extra > b->max_bytes)
        return sw_errf(err, SW_ERANGE, "buffer would exceed its limit of %zu bytes",
                       b->max_bytes);
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
            cap *= 2;
        b->data = sw_xrealloc(b->data, cap);
        b->cap = cap;
    }
    return 0;
}

int sw_buf_append(struct sw_buf *b, const void *data, size_t n, struct sw_err *err)
{
    int rc = buf_reserve(b, n, err);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sw_buf_printf(struct sw_buf *b, struct sw_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return sw_errf(err, SW_EINTERNAL, "formatting failed");
    int rc = buf_reserve(b, (size_t)n, err);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* ---------------------------------------------------------------- files */

int sw_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                 struct sw_err *err)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sw_err_at(err, errno == ENOENT ? SW_ENOENT : SW_EIO, path, 0, 0,
                         "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        fclose(f);
        return sw_err_at(err, SW_EINVAL, path, 0, 0, "not a regular file (a directory?); "
                         "expected a file");
    }
    struct sw_buf b;
    sw_buf_init(&b, max_bytes);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((rc = sw_buf_append(&b, chunk, n, err)) < 0) {
            sw_err_at(err, SW_ERANGE, path, 0, 0, "file is larger than the limit of %zu bytes",
                      max_bytes);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "read failed: %s", strerror(errno));
        goto out;
    }
    if (!b.data)
        b.data = sw_xcalloc(1, 1);
    *out = b.data;
    if (out_len)
        *out_len = b.len;
    b.data = NULL;
out:
    sw_buf_release(&b);
    fclose(f);
    return rc;
}

int sw_write_file_atomic(const char *path, const void *data, size_t len, struct sw_err *err)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return sw_err_at(err, SW_EINVAL, path, 0, 0, "path is too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sw_err_at(err, SW_EIO, path, 0, 0, "cannot create '%s': %s", tmp,
                         strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return sw_err_at(err, SW_EIO, path, 0, 0, "write failed: %s", strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return sw_err_at(err, SW_EIO, path, 0, 0, "fsync failed: %s", strerror(e));
    }
    if (close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return sw_err_at(err, SW_EIO, path, 0, 0, "close failed: %s", strerror(e));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return sw_err_at(err, SW_EIO, path, 0, 0, "cannot rename into place: %s", strerror(e));
    }
    sw_fsync_dir_of(path);
    return 0;
}

void sw_fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    sw_strlcpy(dir, path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        sw_strlcpy(dir, ".", sizeof(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

void sw_exe_dir(char *dir, size_t n)
{
    dir[0] = '\0';
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0)
        return;
    path[len] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(dir, n, "%s", path);
}

void sw_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void sw_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t sw_get_le32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

uint64_t sw_get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---------------------------------------------------------------- numbers */

int sw_parse_i64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out,
                 struct sw_err *err)
{
    if (!s || !*s)
        return sw_errf(err, SW_EINVAL, "%s: expected an integer, got an empty value", what);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return sw_errf(err, SW_EINVAL, "%s: expected an integer, got '%s'", what, s);
    if (errno == ERANGE || v < min || v > max)
        return sw_errf(err, SW_ERANGE, "%s: %s is out of range [%lld, %lld]", what, s,
                       (long long)min, (long long)max);
    *out = v;
    return 0;
}

int sw_parse_int(const char *s, int min, int max, const char *what, int *out, struct sw_err *err)
{
    int64_t v;
    int rc = sw_parse_i64(s, min, max, what, &v, err);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

int sw_parse_double(const char *s, double min, double max, const char *what, double *out,
                    struct sw_err *err)
{
    if (!s || !*s)
        return sw_errf(err, SW_EINVAL, "%s: expected a number, got an empty value", what);
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return sw_errf(err, SW_EINVAL, "%s: expected a number, got '%s'", what, s);
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        return sw_errf(err, SW_ERANGE, "%s: %s is out of range [%g, %g]", what, s, min, max);
    *out = v;
    return 0;
}

int sw_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (int)(la > lb ? la : lb);
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

const char *sw_suggest(const char *s, const char *const *words)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (; words && *words; words++) {
        int d = sw_edit_distance(s, *words);
        if (d < best_d) {
            best_d = d;
            best = *words;
        }
    }
    size_t len = strlen(s);
    int limit = len <= 4 ? 1 : (len <= 8 ? 2 : 3);
    return best_d <= limit ? best : NULL;
}

const char *sw_fmt_bytes(double bytes, char *buf, size_t n)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double v = bytes;
    while (fabs(v) >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f B", v);
    else
        snprintf(buf, n, "%.2f %s", v, units[u]);
    return buf;
}

double sw_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sw_fmt_parse(const char *s, enum sw_fmt *out, struct sw_err *err)
{
    if (!strcmp(s, "text"))
        *out = SW_FMT_TEXT;
    else if (!strcmp(s, "yaml"))
        *out = SW_FMT_YAML;
    else if (!strcmp(s, "json"))
        *out = SW_FMT_JSON;
    else
        return sw_errf(err, SW_EINVAL, "unknown format '%s'; expected text, yaml or json", s);
    return 0;
}
