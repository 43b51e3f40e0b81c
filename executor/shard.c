/* Token shards: the binary file that holds a tokenized corpus (docs/data-format.md). Implements
 * writing a shard atomically (the header and tokens are built in one fallible buffer, then
 * sw_write_file_atomic: temporary file, fsync, rename), reading and validating the 64-byte
 * little-endian header against the file size, and loading the tokens (streamed in chunks,
 * widened to uint32, checksummed with FNV-1a 64 and range-checked against the vocabulary).
 * Every malformed file is an error that names the file; nothing here trusts a header field
 * before checking it. Tokenizing and batching are left to tokenizer.c and data.c. */
#include "executor/executor.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

/* Field offsets in the header (docs/data-format.md). */
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_WIDTH 12
#define OFF_COUNT 16
#define OFF_VOCAB 24
#define OFF_KIND 28
#define OFF_CHECKSUM 32
#define OFF_RESERVED 40

uint32_t shard_token_bytes_for(uint32_t vocab_size)
{
    return vocab_size <= 65536u ? 2u : 4u;
}

/* Store n tokens at `width` bytes each, little-endian. */
static void pack_tokens(unsigned char *dst, const uint32_t *ids, uint64_t n, uint32_t width)
{
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *p = dst + i * width;
        p[0] = (unsigned char)ids[i];
        p[1] = (unsigned char)(ids[i] >> 8);
        if (width == 4) {
            p[2] = (unsigned char)(ids[i] >> 16);
            p[3] = (unsigned char)(ids[i] >> 24);
        }
    }
}

int shard_write(const char *path, const uint32_t *ids, uint64_t n, uint32_t vocab_size,
                enum tok_kind kind, struct sw_err *err)
{
    if (vocab_size == 0)
        return sw_err_at(err, SW_EINVAL, path, 0, 0, "vocabulary size 0");
    uint32_t width = shard_token_bytes_for(vocab_size);
    if (n > (SHARD_MAX_BYTES - SHARD_HEADER_BYTES) / width)
        return sw_err_at(err, SW_ERANGE, path, 0, 0,
                         "%llu tokens exceed the shard limit of %llu bytes", (unsigned long long)n,
                         (unsigned long long)SHARD_MAX_BYTES);
    for (uint64_t i = 0; i < n; i++)
        if (ids[i] >= vocab_size)
            return sw_err_at(err, SW_EINVAL, path, 0, 0,
                             "token %u at index %llu is outside the vocabulary (size %u)", ids[i],
                             (unsigned long long)i, vocab_size);
    size_t total = SHARD_HEADER_BYTES + (size_t)n * width;
    unsigned char *buf = sw_try_malloc(total, "token shard", err);
    if (!buf)
        return SW_ENOMEM;
    memset(buf, 0, SHARD_HEADER_BYTES);
    unsigned char *body = buf + SHARD_HEADER_BYTES;
    pack_tokens(body, ids, n, width);
    memcpy(buf + OFF_MAGIC, SHARD_MAGIC, 8);
    sw_put_le32(buf + OFF_VERSION, SHARD_VERSION);
    sw_put_le32(buf + OFF_WIDTH, width);
    sw_put_le64(buf + OFF_COUNT, n);
    sw_put_le32(buf + OFF_VOCAB, vocab_size);
    sw_put_le32(buf + OFF_KIND, (uint32_t)kind);
    sw_put_le64(buf + OFF_CHECKSUM, data_fnv1a64(DATA_FNV1A64_INIT, body, (size_t)n * width));
    int rc = sw_write_file_atomic(path, buf, total, err);
    free(buf);
    return rc;
}

/* Decode and check a header read from a file of `file_bytes` bytes. */
static int parse_header(const char *path, const unsigned char *h, uint64_t file_bytes,
                        struct shard_header *out, struct sw_err *err)
{
    if (memcmp(h + OFF_MAGIC, SHARD_MAGIC, 8) != 0)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "bad magic: not a scalewise token shard (expected '%s' in the first 8 "
                         "bytes)",
                         SHARD_MAGIC);
    struct shard_header hd = {
        .version = sw_get_le32(h + OFF_VERSION),
        .token_bytes = sw_get_le32(h + OFF_WIDTH),
        .n_tokens = sw_get_le64(h + OFF_COUNT),
        .vocab_size = sw_get_le32(h + OFF_VOCAB),
        .kind = sw_get_le32(h + OFF_KIND),
        .checksum = sw_get_le64(h + OFF_CHECKSUM),
    };
    if (hd.version != SHARD_VERSION)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "unsupported shard version %u (this build reads version %u)", hd.version,
                         SHARD_VERSION);
    if (hd.token_bytes != 2 && hd.token_bytes != 4)
        return sw_err_at(err, SW_EPARSE, path, 0, 0, "bad token width %u (expected 2 or 4 bytes)",
                         hd.token_bytes);
    for (unsigned i = OFF_RESERVED; i < SHARD_HEADER_BYTES; i++)
        if (h[i] != 0)
            return sw_err_at(err, SW_EPARSE, path, 0, 0,
                             "reserved header byte at offset %u is not zero", i);
    if (hd.kind != TOK_BYTE && hd.kind != TOK_GPT2)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "unknown tokenizer kind %u (expected 0 byte or 1 gpt2)", hd.kind);
    if (hd.vocab_size == 0 || (hd.kind == TOK_BYTE && hd.vocab_size != 256))
        return sw_err_at(err, SW_EPARSE, path, 0, 0, "bad vocabulary size %u for tokenizer '%s'",
                         hd.vocab_size, tok_kind_name((enum tok_kind)hd.kind));
    if (hd.token_bytes != shard_token_bytes_for(hd.vocab_size))
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "token width %u does not match vocabulary size %u (expected %u)",
                         hd.token_bytes, hd.vocab_size, shard_token_bytes_for(hd.vocab_size));
    if (hd.n_tokens > (SHARD_MAX_BYTES - SHARD_HEADER_BYTES) / hd.token_bytes)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "header says %llu tokens, more than the shard limit of %llu bytes",
                         (unsigned long long)hd.n_tokens, (unsigned long long)SHARD_MAX_BYTES);
    uint64_t want_bytes = SHARD_HEADER_BYTES + hd.n_tokens * hd.token_bytes;
    if (file_bytes < want_bytes)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "truncated: header says %llu tokens (%llu bytes) but the file has %llu "
                         "bytes",
                         (unsigned long long)hd.n_tokens, (unsigned long long)want_bytes,
                         (unsigned long long)file_bytes);
    if (file_bytes > want_bytes)
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "token count mismatch: header says %llu tokens (%llu bytes) but the file "
                         "has %llu bytes",
                         (unsigned long long)hd.n_tokens, (unsigned long long)want_bytes,
                         (unsigned long long)file_bytes);
    *out = hd;
    return 0;
}

/* Read exactly n bytes; returns bytes read (< n at end of file) or -1 with errno. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Open the file and validate its header; on success *fd_out is open at the first token. */
static int open_shard(const char *path, int *fd_out, struct shard_header *out, struct sw_err *err)
{
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sw_err_at(err, errno == ENOENT ? SW_ENOENT : SW_EIO, path, 0, 0, "cannot open: %s",
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return sw_err_at(err, SW_EIO, path, 0, 0, "not a readable regular file%s%s", e ? ": " : "",
                         e ? strerror(e) : "");
    }
    unsigned char h[SHARD_HEADER_BYTES];
    ssize_t got = read_full(fd, h, sizeof(h));
    if (got < 0) {
        int e = errno;
        close(fd);
        return sw_err_at(err, SW_EIO, path, 0, 0, "read failed: %s", strerror(e));
    }
    if ((size_t)got < sizeof(h)) {
        close(fd);
        return sw_err_at(err, SW_EPARSE, path, 0, 0,
                         "truncated: %zd bytes, shorter than the %u-byte shard header", got,
                         SHARD_HEADER_BYTES);
    }
    int rc = parse_header(path, h, (uint64_t)st.st_size, out, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int shard_read_header(const char *path, struct shard_header *out, struct sw_err *err)
{
    int fd;
    int rc = open_shard(path, &fd, out, err);
    if (rc == 0)
        close(fd);
    return rc;
}

void shard_init(struct shard *s)
{
    memset(s, 0, sizeof(*s));
}

void shard_release(struct shard *s)
{
    free(s->tokens);
    shard_init(s);
}

int shard_load(const char *path, struct shard *s, struct sw_err *err)
{
    shard_init(s);
    struct shard_header hd;
    int fd;
    int rc = open_shard(path, &fd, &hd, err);
    if (rc < 0)
        return rc;
    uint64_t n = hd.n_tokens;
    uint32_t *tokens = sw_try_malloc((size_t)(n ? n : 1) * sizeof(uint32_t), "shard tokens", err);
    if (!tokens) {
        close(fd);
        return SW_ENOMEM;
    }
    /* Stream the body: checksum the stored bytes, widen, and remember the first bad id (the
     * checksum is reported first, since a corrupted file explains an out-of-range id). */
    unsigned char chunk[1 << 16];
    const size_t per_chunk = sizeof(chunk) / hd.token_bytes;
    uint64_t h = DATA_FNV1A64_INIT, bad_index = UINT64_MAX;
    uint32_t bad_id = 0;
    for (uint64_t i = 0; i < n;) {
        size_t m = (size_t)(n - i < per_chunk ? n - i : per_chunk);
        size_t want = m * hd.token_bytes;
        ssize_t got = read_full(fd, chunk, want);
        if (got < 0 || (size_t)got < want) {
            rc = got < 0 ? sw_err_at(err, SW_EIO, path, 0, 0, "read failed: %s", strerror(errno))
                         : sw_err_at(err, SW_EPARSE, path, 0, 0,
                                     "truncated while reading tokens (the file changed?)");
            goto fail;
        }
        h = data_fnv1a64(h, chunk, want);
        for (size_t k = 0; k < m; k++) {
            const unsigned char *p = chunk + k * hd.token_bytes;
            uint32_t v = hd.token_bytes == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : sw_get_le32(p);
            if (v >= hd.vocab_size && bad_index == UINT64_MAX) {
                bad_index = i + k;
                bad_id = v;
            }
            tokens[i + k] = v;
        }
        i += m;
    }
    if (h != hd.checksum) {
        rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                       "checksum mismatch: header says 0x%016llx, tokens hash to 0x%016llx "
                       "(the file is corrupted)",
                       (unsigned long long)hd.checksum, (unsigned long long)h);
        goto fail;
    }
    if (bad_index != UINT64_MAX) {
        rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                       "token %u at index %llu is outside the vocabulary (size %u)", bad_id,
                       (unsigned long long)bad_index, hd.vocab_size);
        goto fail;
    }
    close(fd);
    s->hdr = hd;
    s->tokens = tokens;
    sw_strlcpy(s->path, path, sizeof(s->path));
    return 0;
fail:
    close(fd);
    free(tokens);
    return rc;
}
