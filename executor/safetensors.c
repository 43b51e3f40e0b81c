/* safetensors: the file format of Hugging Face model weights and of our checkpoints
 * (docs/internals/safetensors.md). A file is an 8-byte little-endian header length N, N bytes
 * of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
 * the tensor bytes; offsets are relative to the data section. Implements the reader (the header
 * is read and validated in full before any tensor is touched: header length against the file
 * size, strict JSON, known dtypes, shape x dtype size == offset span, offsets that tile the
 * data section with no gap or overlap, string metadata; tensors are then read with pread into
 * the caller's buffer, converting F64/F16/BF16 to F32 on the way, so a file is never read whole)
 * and a streaming writer (the header is built with json-c, padded with spaces so the data starts
 * 8-byte aligned as the reference implementation does, tensors ordered widest dtype first so
 * each is aligned to its element size, then written from the caller's pointers, or generated
 * chunk by chunk through a fill callback into one bounded scratch, into a temporary
 * file that is fsynced and renamed over the target, so a crash leaves the old file intact).
 * Assumes a little-endian host (the format's byte order). What the tensors mean (model weights,
 * optimizer state) is left to the model and checkpoint code. */
#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/common.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this reader copies bytes as they are");

#define META_KEY "__metadata__"

/* Bytes converted per pread when reading into F32: bounds the stack use of a read. */
#define READ_CHUNK_BYTES ((size_t)64 << 10)
/* Largest single write(): Linux transfers at most about 2 GiB per call anyway. */
#define WRITE_CHUNK_BYTES ((size_t)1 << 30)

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    size_t bytes;
} g_dtypes[] = {
    [SFT_F64] = {"F64", 8},   [SFT_F32] = {"F32", 4}, [SFT_F16] = {"F16", 2},
    [SFT_BF16] = {"BF16", 2}, [SFT_I64] = {"I64", 8}, [SFT_I32] = {"I32", 4},
    [SFT_I16] = {"I16", 2},   [SFT_I8] = {"I8", 1},   [SFT_U8] = {"U8", 1},
    [SFT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof(g_dtypes) / sizeof(g_dtypes[0])))

static bool dtype_is_valid(enum sft_dtype d)
{
    return (int)d >= 0 && (int)d < N_DTYPES;
}

const char *sft_dtype_name(enum sft_dtype d)
{
    return dtype_is_valid(d) ? g_dtypes[d].name : "unknown";
}

size_t sft_dtype_bytes(enum sft_dtype d)
{
    return dtype_is_valid(d) ? g_dtypes[d].bytes : 0;
}

int sft_dtype_parse(const char *s, enum sft_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, g_dtypes[i].name) == 0) {
            *out = (enum sft_dtype)i;
            return 0;
        }
    return SW_EINVAL;
}

bool sft_dtype_is_float(enum sft_dtype d)
{
    return d == SFT_F64 || d == SFT_F32 || d == SFT_F16 || d == SFT_BF16;
}

/* IEEE half -> float, exact (every half is a float). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) { /* inf / NaN: keep the payload */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) { /* normal: rebias 15 -> 127 */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) { /* signed zero */
        bits = sign;
    } else { /* subnormal half: normalise into a float */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* Convert n elements of `d` (a float dtype) at src to F32. src may be unaligned. */
static void convert_to_f32(float *dst, const unsigned char *src, size_t n, enum sft_dtype d)
{
    switch (d) {
    case SFT_F32:
        memcpy(dst, src, n * 4);
        break;
    case SFT_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case SFT_F16:
    case SFT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = d == SFT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        break;
    default:
        SW_ASSERT(!"convert_to_f32: not a float dtype");
    }
}

/* "[2, 3, 4]" into buf. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
    return buf;
}

/* Elements of a shape, or false if the product overflows uint64. */
static bool shape_elems(const int64_t *shape, int ndim, uint64_t *out)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return false;
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / d)
            return false;
        n *= d;
    }
    *out = n;
    return true;
}

/* ---------------------------------------------------------------- reader */

struct sft_file {
    char path[SW_ERR_FILE_MAX];
    int fd;
    uint64_t file_bytes;
    uint64_t data_start_bytes;  /* 8 + header length */
    struct sft_tensor *tensors; /* header order */
    size_t n_tensors;
    size_t *by_name; /* indices into tensors, sorted by name, for sft_find */
    char **meta_keys, **meta_vals;
    size_t n_meta;
};

/* Read exactly n bytes at `off`; SW_EIO (or SW_EPARSE on a short file) naming the file. */
static int pread_full(const struct sft_file *f, void *buf, size_t n, uint64_t off,
                      struct sw_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sw_err_at(err, SW_EIO, f->path, 0, 0, "read failed at byte %llu: %s",
                             (unsigned long long)(off + got), strerror(errno));
        }
        if (r == 0)
            return sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                             "truncated: the file ended at byte %llu while reading %zu bytes at "
                             "%llu (was it changed while open?)",
                             (unsigned long long)(off + got), n, (unsigned long long)off);
        got += (size_t)r;
    }
    return 0;
}

/* A non-negative JSON integer below INT64_MAX, or -1. */
static int64_t json_nonneg_int(struct json_object *o)
{
    if (!json_object_is_type(o, json_type_int))
        return -1;
    errno = 0;
    int64_t v = json_object_get_int64(o);
    if (errno != 0 || v < 0 || v == INT64_MAX)
        return -1;
    return v;
}

/* Validate one tensor entry of the header into *t (name borrowed until copied by the caller). */
static int parse_tensor(const struct sft_file *f, const char *name, struct json_object *o,
                        struct sft_tensor *t, struct sw_err *err)
{
    const char *p = f->path;
    if (!json_object_is_type(o, json_type_object))
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': expected an object {dtype, shape, data_offsets}", name);
    if (name[0] == '\0')
        return sw_err_at(err, SW_EPARSE, p, 0, 0, "a tensor has an empty name");
    struct json_object *jd = NULL, *js = NULL, *jo = NULL;
    json_object_object_foreach(o, key, val)
    {
        if (strcmp(key, "dtype") == 0)
            jd = val;
        else if (strcmp(key, "shape") == 0)
            js = val;
        else if (strcmp(key, "data_offsets") == 0)
            jo = val;
        else
            return sw_err_at(err, SW_EPARSE, p, 0, 0,
                             "tensor '%s': unknown key '%s' (expected dtype, shape, data_offsets)",
                             name, key);
    }
    if (!jd || !js || !jo)
        return sw_err_at(err, SW_EPARSE, p, 0, 0, "tensor '%s': missing '%s'", name,
                         !jd   ? "dtype"
                         : !js ? "shape"
                               : "data_offsets");
    if (!json_object_is_type(jd, json_type_string))
        return sw_err_at(err, SW_EPARSE, p, 0, 0, "tensor '%s': dtype is not a string", name);
    const char *ds = json_object_get_string(jd);
    if (sft_dtype_parse(ds, &t->dtype) < 0)
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': unknown dtype '%s' (this reader knows F64, F32, F16, BF16, "
                         "I64, I32, I16, I8, U8, BOOL)",
                         name, ds);
    if (!json_object_is_type(js, json_type_array))
        return sw_err_at(err, SW_EPARSE, p, 0, 0, "tensor '%s': shape is not an array", name);
    size_t nd = json_object_array_length(js);
    if (nd > SFT_MAX_DIMS)
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': %zu dimensions (this reader allows at most %d)", name, nd,
                         SFT_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        int64_t d = json_nonneg_int(json_object_array_get_idx(js, i));
        if (d < 0)
            return sw_err_at(err, SW_EPARSE, p, 0, 0,
                             "tensor '%s': shape entry %zu is not a non-negative integer", name, i);
        t->shape[i] = d;
    }
    if (!json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2)
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': data_offsets must be an array [begin, end]", name);
    int64_t b = json_nonneg_int(json_object_array_get_idx(jo, 0));
    int64_t e = json_nonneg_int(json_object_array_get_idx(jo, 1));
    if (b < 0 || e < 0 || e < b)
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': data_offsets must be integers with 0 <= begin <= end", name);
    t->begin_bytes = (uint64_t)b;
    t->end_bytes = (uint64_t)e;
    char sb[160];
    uint64_t n;
    if (!shape_elems(t->shape, t->ndim, &n) || n > UINT64_MAX / sft_dtype_bytes(t->dtype))
        return sw_err_at(err, SW_EPARSE, p, 0, 0, "tensor '%s': shape %s overflows", name,
                         shape_str(t->shape, t->ndim, sb, sizeof(sb)));
    t->n_elems = n;
    uint64_t want = n * sft_dtype_bytes(t->dtype);
    if (want != t->end_bytes - t->begin_bytes)
        return sw_err_at(err, SW_EPARSE, p, 0, 0,
                         "tensor '%s': shape %s of %s is %llu bytes but data_offsets [%llu, %llu] "
                         "span %llu",
                         name, shape_str(t->shape, t->ndim, sb, sizeof(sb)),
                         sft_dtype_name(t->dtype), (unsigned long long)want,
                         (unsigned long long)t->begin_bytes, (unsigned long long)t->end_bytes,
                         (unsigned long long)(t->end_bytes - t->begin_bytes));
    return 0;
}

static int parse_metadata(struct sft_file *f, struct json_object *o, struct sw_err *err)
{
    if (json_object_is_type(o, json_type_null))
        return 0;
    if (!json_object_is_type(o, json_type_object))
        return sw_err_at(err, SW_EPARSE, f->path, 0, 0, "'%s' must be an object of strings",
                         META_KEY);
    size_t n = (size_t)json_object_object_length(o);
    f->meta_keys = sw_xcalloc(n ? n : 1, sizeof(char *));
    f->meta_vals = sw_xcalloc(n ? n : 1, sizeof(char *));
    json_object_object_foreach(o, key, val)
    {
        if (!json_object_is_type(val, json_type_string))
            return sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                             "metadata '%s': value is not a string (safetensors metadata maps "
                             "strings to strings)",
                             key);
        f->meta_keys[f->n_meta] = sw_xstrdup(key);
        f->meta_vals[f->n_meta] = sw_xstrdup(json_object_get_string(val));
        f->n_meta++;
    }
    return 0;
}

/* qsort contexts: qsort has no user pointer, and opening files is not concurrent-hot, so the
 * comparators read a thread-local table. */
static _Thread_local const struct sft_tensor *g_sort_tensors;

static int cmp_by_offset(const void *a, const void *b)
{
    const struct sft_tensor *x = &g_sort_tensors[*(const size_t *)a];
    const struct sft_tensor *y = &g_sort_tensors[*(const size_t *)b];
    if (x->begin_bytes != y->begin_bytes)
        return x->begin_bytes < y->begin_bytes ? -1 : 1;
    if (x->end_bytes != y->end_bytes)
        return x->end_bytes < y->end_bytes ? -1 : 1;
    return 0;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(g_sort_tensors[*(const size_t *)a].name, g_sort_tensors[*(const size_t *)b].name);
}

/* The tensors must tile [0, data_bytes) exactly: sorted by offset, each begins where the last
 * ended (the reference implementation rejects gaps too), and the last ends at the file's end. */
static int check_layout(struct sft_file *f, struct sw_err *err)
{
    uint64_t data_bytes = f->file_bytes - f->data_start_bytes;
    size_t n = f->n_tensors;
    size_t *order = sw_xcalloc(n ? n : 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    g_sort_tensors = f->tensors;
    qsort(order, n, sizeof(size_t), cmp_by_offset);
    int rc = 0;
    uint64_t at = 0;
    const struct sft_tensor *prev = NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct sft_tensor *t = &f->tensors[order[i]];
        if (t->begin_bytes < at)
            rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                           "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, "
                           "%llu]",
                           t->name, (unsigned long long)t->begin_bytes,
                           (unsigned long long)t->end_bytes, prev->name,
                           (unsigned long long)prev->begin_bytes,
                           (unsigned long long)prev->end_bytes);
        else if (t->begin_bytes > at)
            rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                           "tensor '%s': data_offsets begin at %llu, leaving a gap after byte "
                           "%llu (tensors must be contiguous)",
                           t->name, (unsigned long long)t->begin_bytes, (unsigned long long)at);
        at = t->end_bytes;
        prev = t;
    }
    if (rc == 0 && at > data_bytes)
        rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                       "truncated: tensor '%s' ends at data byte %llu but the data section has "
                       "%llu bytes",
                       prev->name, (unsigned long long)at, (unsigned long long)data_bytes);
    else if (rc == 0 && at < data_bytes)
        rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                       "the data section has %llu bytes but the tensors cover only %llu "
                       "(trailing bytes)",
                       (unsigned long long)data_bytes, (unsigned long long)at);
    free(order);
    if (rc < 0)
        return rc;
    /* Name index; json-c already keeps one value per key, so names are unique here. */
    f->by_name = sw_xcalloc(n ? n : 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        f->by_name[i] = i;
    g_sort_tensors = f->tensors;
    qsort(f->by_name, n, sizeof(size_t), cmp_by_name);
    return 0;
}

/* Parse and validate the N header bytes. */
static int parse_header(struct sft_file *f, const char *hdr, size_t n, struct sw_err *err)
{
    if (n == 0 || hdr[0] != '{')
        return sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                         "header is not a JSON object (it must start with '{')");
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return sw_err_at(err, SW_EINTERNAL, f->path, 0, 0, "json-c: cannot create a tokener");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *root = json_tokener_parse_ex(tok, hdr, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = 0;
    if (!root) {
        rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0, "header JSON: %s at header byte %zu",
                       jerr == json_tokener_continue ? "unexpected end of the header"
                                                     : json_tokener_error_desc(jerr),
                       end);
        goto out;
    }
    /* The reference pads the header with spaces; anything else after the object is junk. */
    for (size_t i = end; i < n; i++)
        if (hdr[i] != ' ' && hdr[i] != '\t' && hdr[i] != '\n' && hdr[i] != '\r') {
            rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0,
                           "header JSON: unexpected byte 0x%02x after the object at header byte "
                           "%zu",
                           (unsigned char)hdr[i], i);
            goto out;
        }
    if (!json_object_is_type(root, json_type_object)) {
        rc = sw_err_at(err, SW_EPARSE, f->path, 0, 0, "header is not a JSON object");
        goto out;
    }
    size_t cap = (size_t)json_object_object_length(root);
    f->tensors = sw_xcalloc(cap ? cap : 1, sizeof(struct sft_tensor));
    json_object_object_foreach(root, key, val)
    {
        if (strcmp(key, META_KEY) == 0) {
            if ((rc = parse_metadata(f, val, err)) < 0)
                goto out;
            continue;
        }
        struct sft_tensor *t = &f->tensors[f->n_tensors];
        if ((rc = parse_tensor(f, key, val, t, err)) < 0)
            goto out;
        t->name = sw_xstrdup(key);
        f->n_tensors++;
    }
    rc = check_layout(f, err);
out:
    json_object_put(root);
    return rc;
}

int sft_open(const char *path, struct sft_file **out, struct sw_err *err)
{
    *out = NULL;
    struct sft_file *f = sw_xcalloc(1, sizeof(*f));
    sw_strlcpy(f->path, path, sizeof(f->path));
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    char *hdr = NULL;
    int rc = 0;
    if (f->fd < 0) {
        rc = sw_err_at(err, errno == ENOENT ? SW_ENOENT : SW_EIO, path, 0, 0, "cannot open: %s",
                       strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "not a readable regular file");
        goto out;
    }
    f->file_bytes = (uint64_t)st.st_size;
    if (f->file_bytes < 8) {
        rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                       "truncated: %llu bytes, too short for the 8-byte header length "
                       "(not a safetensors file?)",
                       (unsigned long long)f->file_bytes);
        goto out;
    }
    unsigned char lenb[8];
    if ((rc = pread_full(f, lenb, 8, 0, err)) < 0)
        goto out;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | lenb[i];
    if (n > SFT_MAX_HEADER_BYTES) {
        rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                       "header length %llu exceeds the limit of %llu bytes (not a safetensors "
                       "file?)",
                       (unsigned long long)n, (unsigned long long)SFT_MAX_HEADER_BYTES);
        goto out;
    }
    if (n > f->file_bytes - 8) {
        rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                       "header length %llu is larger than the rest of the file (%llu bytes): "
                       "truncated or not a safetensors file",
                       (unsigned long long)n, (unsigned long long)(f->file_bytes - 8));
        goto out;
    }
    f->data_start_bytes = 8 + n;
    if (!(hdr = sw_try_malloc((size_t)n + 1, "safetensors header", err))) {
        rc = SW_ENOMEM;
        goto out;
    }
    if ((rc = pread_full(f, hdr, (size_t)n, 8, err)) < 0)
        goto out;
    hdr[n] = '\0';
    rc = parse_header(f, hdr, (size_t)n, err);
out:
    free(hdr);
    if (rc < 0)
        sft_close(f);
    else
        *out = f;
    return rc;
}

void sft_close(struct sft_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (size_t i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f);
}

const char *sft_path(const struct sft_file *f)
{
    return f->path;
}

size_t sft_count(const struct sft_file *f)
{
    return f->n_tensors;
}

const struct sft_tensor *sft_at(const struct sft_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct sft_tensor *sft_find(const struct sft_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct sft_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

uint64_t sft_tensor_bytes(const struct sft_tensor *t)
{
    return t->end_bytes - t->begin_bytes;
}

size_t sft_meta_count(const struct sft_file *f)
{
    return f->n_meta;
}

void sft_meta_at(const struct sft_file *f, size_t i, const char **key, const char **value)
{
    SW_ASSERT(i < f->n_meta);
    *key = f->meta_keys[i];
    *value = f->meta_vals[i];
}

const char *sft_meta_get(const struct sft_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

int sft_meta_i64(const struct sft_file *f, const char *key, int64_t min, int64_t max, int64_t *out,
                 struct sw_err *err)
{
    const char *v = sft_meta_get(f, key);
    if (!v)
        return sw_err_at(err, SW_ENOENT, f->path, 0, 0, "metadata '%s' is missing", key);
    char what[96];
    snprintf(what, sizeof(what), "metadata '%s'", key);
    int rc = sw_parse_i64(v, min, max, what, out, err);
    if (rc < 0)
        sw_strlcpy(err->file, f->path, sizeof(err->file));
    return rc;
}

int sft_meta_f64(const struct sft_file *f, const char *key, double *out, struct sw_err *err)
{
    const char *v = sft_meta_get(f, key);
    if (!v)
        return sw_err_at(err, SW_ENOENT, f->path, 0, 0, "metadata '%s' is missing", key);
    char what[96];
    snprintf(what, sizeof(what), "metadata '%s'", key);
    int rc = sw_parse_double(v, -HUGE_VAL, HUGE_VAL, what, out, err);
    if (rc < 0)
        sw_strlcpy(err->file, f->path, sizeof(err->file));
    return rc;
}

int sft_read_raw(const struct sft_file *f, const struct sft_tensor *t, void *dst, size_t dst_bytes,
                 struct sw_err *err)
{
    if (dst_bytes != sft_tensor_bytes(t))
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0,
                         "tensor '%s' has %llu bytes but the destination holds %zu", t->name,
                         (unsigned long long)sft_tensor_bytes(t), dst_bytes);
    return pread_full(f, dst, dst_bytes, f->data_start_bytes + t->begin_bytes, err);
}

int sft_read_raw_range(const struct sft_file *f, const struct sft_tensor *t, uint64_t off_bytes,
                       void *dst, size_t n_bytes, struct sw_err *err)
{
    uint64_t total = sft_tensor_bytes(t);
    if (off_bytes > total || n_bytes > total - off_bytes)
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0,
                         "bytes [%llu, +%zu) are outside tensor '%s' (%llu bytes)",
                         (unsigned long long)off_bytes, n_bytes, t->name,
                         (unsigned long long)total);
    return pread_full(f, dst, n_bytes, f->data_start_bytes + t->begin_bytes + off_bytes, err);
}

int sft_read_f32(const struct sft_file *f, const struct sft_tensor *t, float *dst, size_t n_elems,
                 struct sw_err *err)
{
    if (!sft_dtype_is_float(t->dtype))
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0,
                         "tensor '%s' has dtype %s; expected a floating-point dtype (F32, F16, "
                         "BF16, F64)",
                         t->name, sft_dtype_name(t->dtype));
    if (n_elems != t->n_elems)
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0,
                         "tensor '%s' has %llu elements but the destination holds %zu", t->name,
                         (unsigned long long)t->n_elems, n_elems);
    uint64_t off = f->data_start_bytes + t->begin_bytes;
    if (t->dtype == SFT_F32)
        return pread_full(f, dst, n_elems * 4, off, err);
    unsigned char buf[READ_CHUNK_BYTES];
    size_t esz = sft_dtype_bytes(t->dtype);
    size_t per = sizeof(buf) / esz;
    for (size_t done = 0; done < n_elems;) {
        size_t k = n_elems - done < per ? n_elems - done : per;
        int rc = pread_full(f, buf, k * esz, off + (uint64_t)done * esz, err);
        if (rc < 0)
            return rc;
        convert_to_f32(dst + done, buf, k, t->dtype);
        done += k;
    }
    return 0;
}

int sft_load_f32(const struct sft_file *f, const char *name, int ndim, const int64_t *shape,
                 float *dst, struct sw_err *err)
{
    const struct sft_tensor *t = sft_find(f, name);
    if (!t)
        return sw_err_at(err, SW_ENOENT, f->path, 0, 0, "tensor '%s' is missing", name);
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[160], b[160];
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0, "tensor '%s' has shape %s, expected %s",
                         name, shape_str(t->shape, t->ndim, a, sizeof(a)),
                         shape_str(shape, ndim, b, sizeof(b)));
    }
    uint64_t n;
    SW_ASSERT(shape_elems(shape, ndim, &n));
    return sft_read_f32(f, t, dst, (size_t)n, err);
}

int sft_compare_f32(const struct sft_file *f, const char *name, const float *got, size_t n,
                    double atol, double rtol, struct sft_diff *out, struct sw_err *err)
{
    memset(out, 0, sizeof(*out));
    const struct sft_tensor *t = sft_find(f, name);
    if (!t)
        return sw_err_at(err, SW_ENOENT, f->path, 0, 0, "reference tensor '%s' is missing", name);
    if (t->n_elems != n)
        return sw_err_at(err, SW_EINVAL, f->path, 0, 0,
                         "reference tensor '%s' has %llu elements, compared with %zu", name,
                         (unsigned long long)t->n_elems, n);
    float *want = sw_try_malloc(n ? n * sizeof(float) : 1, "reference tensor", err);
    if (!want)
        return SW_ENOMEM;
    int rc = sft_read_f32(f, t, want, n, err);
    if (rc == 0) {
        double worst_excess = -1.0;
        for (size_t i = 0; i < n; i++) {
            double w = want[i], g = got[i], d = fabs(g - w);
            if (fabs(w) > out->max_ref)
                out->max_ref = fabs(w);
            /* A NaN on either side is the worst possible element, and stays so. */
            if (isnan(d) || isnan(out->max_abs))
                out->max_abs = NAN;
            else if (d > out->max_abs)
                out->max_abs = d;
            double excess = isnan(d) ? INFINITY : d - (atol + rtol * fabs(w));
            if (excess > 0.0)
                out->n_bad++;
            if (excess > worst_excess) {
                worst_excess = excess;
                out->worst_index = i;
                out->worst_got = g;
                out->worst_want = w;
            }
        }
    }
    free(want);
    return rc;
}

/* ---------------------------------------------------------------- writer */

struct sft_wentry {
    char *name;
    enum sft_dtype dtype;
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
    uint64_t n_bytes;
    const void *data; /* borrowed */
    sft_fill_fn fill; /* or, when data is NULL, the bytes come from fill(ctx, ...) */
    void *fill_ctx;
};

struct sft_writer {
    struct sft_wentry *t;
    size_t n, cap;
    char **meta_keys, **meta_vals;
    size_t n_meta, meta_cap;
};

struct sft_writer *sft_writer_new(void)
{
    return sw_xcalloc(1, sizeof(struct sft_writer));
}

void sft_writer_free(struct sft_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}

/* sft_writer_add and sft_writer_add_fill: exactly one of data and fill describes the bytes. */
static int add_entry(struct sft_writer *w, const char *name, enum sft_dtype dtype, int ndim,
                     const int64_t *shape, const void *data, sft_fill_fn fill, void *fill_ctx,
                     struct sw_err *err)
{
    if (!name || !*name || strcmp(name, META_KEY) == 0)
        return sw_errf(err, SW_EINVAL, "bad tensor name '%s' (empty or reserved)",
                       name ? name : "");
    if (!dtype_is_valid(dtype))
        return sw_errf(err, SW_EINVAL, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > SFT_MAX_DIMS)
        return sw_errf(err, SW_EINVAL, "tensor '%s': %d dimensions (at most %d)", name, ndim,
                       SFT_MAX_DIMS);
    uint64_t n;
    if (!shape_elems(shape, ndim, &n) || n > UINT64_MAX / 16)
        return sw_errf(err, SW_EINVAL, "tensor '%s': negative or overflowing shape", name);
    if (n > 0 && !data && !fill)
        return sw_errf(err, SW_EINVAL, "tensor '%s': no data", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return sw_errf(err, SW_EINVAL, "tensor '%s' is added twice", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = sw_xrealloc(w->t, w->cap * sizeof(*w->t));
    }
    struct sft_wentry *e = &w->t[w->n++];
    memset(e, 0, sizeof(*e));
    e->name = sw_xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->n_bytes = n * sft_dtype_bytes(dtype);
    e->data = data;
    e->fill = data ? NULL : fill;
    e->fill_ctx = fill_ctx;
    return 0;
}

int sft_writer_add(struct sft_writer *w, const char *name, enum sft_dtype dtype, int ndim,
                   const int64_t *shape, const void *data, struct sw_err *err)
{
    return add_entry(w, name, dtype, ndim, shape, data, NULL, NULL, err);
}

int sft_writer_add_fill(struct sft_writer *w, const char *name, enum sft_dtype dtype, int ndim,
                        const int64_t *shape, sft_fill_fn fill, void *ctx, struct sw_err *err)
{
    if (!fill)
        return sw_errf(err, SW_EINVAL, "tensor '%s': no fill function", name ? name : "");
    return add_entry(w, name, dtype, ndim, shape, NULL, fill, ctx, err);
}

int sft_writer_add_meta(struct sft_writer *w, const char *key, const char *value,
                        struct sw_err *err)
{
    if (!key || !value)
        return sw_errf(err, SW_EINVAL, "metadata needs a key and a value");
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = sw_xstrdup(value);
            return 0;
        }
    if (w->n_meta == w->meta_cap) {
        w->meta_cap = w->meta_cap ? 2 * w->meta_cap : 8;
        w->meta_keys = sw_xrealloc(w->meta_keys, w->meta_cap * sizeof(char *));
        w->meta_vals = sw_xrealloc(w->meta_vals, w->meta_cap * sizeof(char *));
    }
    w->meta_keys[w->n_meta] = sw_xstrdup(key);
    w->meta_vals[w->n_meta] = sw_xstrdup(value);
    w->n_meta++;
    return 0;
}

/* Data order: widest element first (stable), so with the data section 8-byte aligned every
 * tensor starts at a multiple of its element size (the reference sorts the same way). */
static _Thread_local const struct sft_wentry *g_sort_entries;

static int cmp_by_width(const void *a, const void *b)
{
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    size_t wa = sft_dtype_bytes(g_sort_entries[ia].dtype);
    size_t wb = sft_dtype_bytes(g_sort_entries[ib].dtype);
    if (wa != wb)
        return wa > wb ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

/* The JSON header, space-padded so 8 + its length is a multiple of 8. Caller frees. */
static char *build_header(const struct sft_writer *w, const size_t *order, size_t *len_out)
{
    struct json_object *root = json_object_new_object();
    if (w->n_meta > 0) {
        struct json_object *m = json_object_new_object();
        for (size_t i = 0; i < w->n_meta; i++)
            json_object_object_add(m, w->meta_keys[i], json_object_new_string(w->meta_vals[i]));
        json_object_object_add(root, META_KEY, m);
    }
    uint64_t at = 0;
    for (size_t k = 0; k < w->n; k++) {
        const struct sft_wentry *e = &w->t[order[k]];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "dtype", json_object_new_string(sft_dtype_name(e->dtype)));
        struct json_object *s = json_object_new_array();
        for (int i = 0; i < e->ndim; i++)
            json_object_array_add(s, json_object_new_int64(e->shape[i]));
        json_object_object_add(o, "shape", s);
        struct json_object *off = json_object_new_array();
        json_object_array_add(off, json_object_new_int64((int64_t)at));
        json_object_array_add(off, json_object_new_int64((int64_t)(at + e->n_bytes)));
        json_object_object_add(o, "data_offsets", off);
        json_object_object_add(root, e->name, o);
        at += e->n_bytes;
    }
    size_t n = 0;
    const char *js = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    size_t padded = n + (8 - n % 8) % 8;
    char *out = sw_xmalloc(padded + 1);
    memcpy(out, js, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    json_object_put(root);
    *len_out = padded;
    return out;
}

static int write_all(int fd, const void *data, uint64_t n, const char *path, struct sw_err *err)
{
    const char *p = data;
    while (n > 0) {
        size_t k = n < WRITE_CHUNK_BYTES ? (size_t)n : WRITE_CHUNK_BYTES;
        ssize_t r = write(fd, p, k);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sw_err_at(err, SW_EIO, path, 0, 0, "write failed: %s", strerror(errno));
        }
        p += r;
        n -= (uint64_t)r;
    }
    return 0;
}

int sft_writer_save(const struct sft_writer *w, const char *path, struct sw_err *err)
{
    size_t *order = sw_xcalloc(w->n ? w->n : 1, sizeof(size_t));
    for (size_t i = 0; i < w->n; i++)
        order[i] = i;
    g_sort_entries = w->t;
    qsort(order, w->n, sizeof(size_t), cmp_by_width);
    size_t hlen = 0;
    char *hdr = build_header(w, order, &hlen);
    char tmp[PATH_MAX];
    tmp[0] = '\0';
    int fd = -1, rc = 0;
    bool created = false;
    void *scratch = NULL;
    if (hlen > SFT_MAX_HEADER_BYTES) {
        rc = sw_err_at(err, SW_ERANGE, path, 0, 0,
                       "header of %zu bytes exceeds the limit of %llu bytes", hlen,
                       (unsigned long long)SFT_MAX_HEADER_BYTES);
        goto out;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        rc = sw_err_at(err, SW_EINVAL, path, 0, 0, "path is too long");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    created = true;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if ((rc = write_all(fd, lenb, 8, path, err)) < 0 ||
        (rc = write_all(fd, hdr, hlen, path, err)) < 0)
        goto out;
    for (size_t k = 0; k < w->n; k++) {
        const struct sft_wentry *e = &w->t[order[k]];
        if (!e->fill) {
            if ((rc = write_all(fd, e->data, e->n_bytes, path, err)) < 0)
                goto out;
            continue;
        }
        /* A generated tensor: one bounded scratch for the whole save, filled chunk by chunk. */
        if (!scratch && !(scratch = sw_try_malloc(SFT_FILL_CHUNK_BYTES, "safetensors write "
                                                                        "buffer", err))) {
            rc = SW_ENOMEM;
            goto out;
        }
        for (uint64_t at = 0; at < e->n_bytes; at += SFT_FILL_CHUNK_BYTES) {
            size_t n = e->n_bytes - at < SFT_FILL_CHUNK_BYTES ? (size_t)(e->n_bytes - at)
                                                               : SFT_FILL_CHUNK_BYTES;
            if ((rc = e->fill(e->fill_ctx, at, scratch, n, err)) < 0 ||
                (rc = write_all(fd, scratch, n, path, err)) < 0)
                goto out;
        }
    }
    if (fsync(fd) < 0) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "fsync failed: %s", strerror(errno));
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) < 0) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "close failed: %s", strerror(errno));
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = sw_err_at(err, SW_EIO, path, 0, 0, "cannot rename into place: %s", strerror(errno));
        goto out;
    }
    sw_fsync_dir_of(path);
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created)
        unlink(tmp); /* the old file, if any, is untouched */
    free(scratch);
    free(hdr);
    free(order);
    return rc;
}
