/* Tokenizers for the executor's data layer. Implements: the byte tokenizer (vocab 256, id = byte
 * value) and GPT-2's byte-level BPE: the byte-to-unicode alphabet of GPT-2's encoder.py, loading
 * encoder.json / vocab.json (json-c) and merges.txt into hash tables keyed by raw bytes, a
 * hand-written pre-tokenizer standing in for GPT-2's regex (ASCII classes exactly, every
 * non-ASCII byte counted as a letter; docs/data.md states the approximation), rank-ordered
 * merges with a bounded cache, exact decode, and the FNV-1a 64 hash shared with the shard code.
 * Reading files into shards and batches is left to shard.c and data.c. */
#include "executor/executor.h"

#include <string.h>

#include <json-c/json.h>

#include "common/common.h"

/* Tokenizer files are a few MB at most (GPT-2: encoder.json 1.0 MB, merges.txt 0.5 MB). */
#define TOK_FILE_MAX_BYTES ((size_t)64 << 20)
/* Ids above this are refused: they would only make the per-id table huge. */
#define TOK_MAX_ID (1u << 24)
/* The merge cache: pieces up to this many bytes, this many entries, then it starts over. */
#define TOK_CACHE_PIECE_MAX 64
#define TOK_CACHE_ENTRIES 65536

struct tok_str {
    uint32_t off, len; /* raw bytes in tokenizer.arena; len 0 = id unused */
};

struct merge_slot {
    uint64_t key; /* (left id << 32) | right id */
    uint32_t rank;
    uint32_t id; /* the merged token */
    bool used;
};

struct cache_slot {
    uint32_t *ids;   /* NULL = empty; owns one allocation: the ids, then the key bytes */
    const char *key; /* inside that allocation */
    uint32_t key_len;
    uint32_t n_ids;
};

struct tokenizer {
    enum tok_kind kind;
    uint32_t vocab_size;
    int64_t eos_id;
    /* GPT-2 only below. */
    char *arena;
    size_t arena_len, arena_cap;
    struct tok_str *strs; /* [vocab_size] */
    uint32_t byte_id[256];
    uint32_t *vocab_slots; /* id + 1, 0 = empty; open addressing over raw bytes */
    size_t vocab_cap;
    struct merge_slot *merges;
    size_t merges_cap;
    struct cache_slot *cache;
    size_t cache_count;
    uint32_t *work; /* scratch for one piece's ids */
    size_t work_cap;
};

/* ---------------------------------------------------------------- small helpers */

uint64_t data_fnv1a64(uint64_t h, const void *data, size_t n)
{
    /* FNV-1a, 64-bit parameters (Fowler, Noll, Vo; prime 2^40 + 2^8 + 0xb3). */
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: spreads pair keys over the table. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

int tok_kind_parse(const char *s, enum tok_kind *out, struct sw_err *err)
{
    static const char *const names[] = {"byte", "gpt2", NULL};
    if (!strcmp(s, "byte")) {
        *out = TOK_BYTE;
        return 0;
    }
    if (!strcmp(s, "gpt2")) {
        *out = TOK_GPT2;
        return 0;
    }
    const char *near = sw_suggest(s, names);
    if (near)
        return sw_errf(err, SW_EINVAL, "unknown tokenizer '%s'; did you mean '%s'?", s, near);
    return sw_errf(err, SW_EINVAL, "unknown tokenizer '%s'; expected 'byte' or 'gpt2'", s);
}

const char *tok_kind_name(enum tok_kind k)
{
    switch (k) {
    case TOK_BYTE:
        return "byte";
    case TOK_GPT2:
        return "gpt2";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- GPT-2 byte alphabet */

/* GPT-2 encoder.py bytes_to_unicode(): printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF map
 * to the same code point; the other 68 bytes map, in byte order, to U+0100, U+0101, ... */
static void byte_to_cp_table(uint32_t cp[256])
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp[b] = printable ? b : 256 + n++;
    }
}

/* Decode one UTF-8 code point at s[0..len); returns bytes used, 0 if malformed. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t need;
    uint32_t c;
    if ((s[0] & 0xE0) == 0xC0) {
        need = 2;
        c = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        need = 3;
        c = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        need = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    return need;
}

/* Map a token written in GPT-2's alphabet (UTF-8) to its raw bytes, appended to the arena.
 * Returns 0, or -1 with *bad_cp set to the first code point outside the alphabet (or
 * 0xFFFFFFFF for malformed UTF-8). */
static int alphabet_to_bytes(struct tokenizer *t, const int16_t *cp_to_byte, const char *s,
                             size_t len, uint32_t *off, uint32_t *out_len, uint32_t *bad_cp)
{
    if (t->arena_len + len + 1 > t->arena_cap) {
        size_t cap = pow2_at_least(t->arena_len + len + 1);
        t->arena = sw_xrealloc(t->arena, cap);
        t->arena_cap = cap;
    }
    *off = (uint32_t)t->arena_len;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t used = utf8_decode(p + i, len - i, &cp);
        if (used == 0) {
            *bad_cp = 0xFFFFFFFFu;
            return -1;
        }
        if (cp >= 512 || cp_to_byte[cp] < 0) {
            *bad_cp = cp;
            return -1;
        }
        t->arena[t->arena_len + n++] = (char)cp_to_byte[cp];
        i += used;
    }
    t->arena_len += n;
    *out_len = (uint32_t)n;
    return 0;
}

/* ---------------------------------------------------------------- hash tables */

static uint64_t bytes_hash(const char *s, size_t n)
{
    return data_fnv1a64(DATA_FNV1A64_INIT, s, n);
}

/* The id whose raw bytes are s[0..n), or -1. */
static int64_t vocab_find(const struct tokenizer *t, const char *s, size_t n)
{
    size_t mask = t->vocab_cap - 1;
    for (size_t i = bytes_hash(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = t->vocab_slots[i];
        if (v == 0)
            return -1;
        const struct tok_str *ts = &t->strs[v - 1];
        if (ts->len == n && memcmp(t->arena + ts->off, s, n) == 0)
            return v - 1;
    }
}

static void vocab_insert(struct tokenizer *t, uint32_t id)
{
    const struct tok_str *ts = &t->strs[id];
    size_t mask = t->vocab_cap - 1;
    size_t i = bytes_hash(t->arena + ts->off, ts->len) & mask;
    while (t->vocab_slots[i] != 0)
        i = (i + 1) & mask;
    t->vocab_slots[i] = id + 1;
}

static const struct merge_slot *merge_find(const struct tokenizer *t, uint32_t a, uint32_t b)
{
    uint64_t key = ((uint64_t)a << 32) | b;
    size_t mask = t->merges_cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        const struct merge_slot *m = &t->merges[i];
        if (!m->used)
            return NULL;
        if (m->key == key)
            return m;
    }
}

/* Inserts unless the pair is already present; returns false then. A duplicated pair keeps its
 * first rank (GPT-2's dict would keep the last); released merge files have no duplicates. */
static bool merge_insert(struct tokenizer *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
    uint64_t key = ((uint64_t)a << 32) | b;
    size_t mask = t->merges_cap - 1;
    size_t i = mix64(key) & mask;
    while (t->merges[i].used) {
        if (t->merges[i].key == key)
            return false;
        i = (i + 1) & mask;
    }
    t->merges[i] = (struct merge_slot){.key = key, .rank = rank, .id = id, .used = true};
    return true;
}

static void cache_clear(struct tokenizer *t)
{
    if (!t->cache)
        return;
    for (size_t i = 0; i < TOK_CACHE_ENTRIES; i++) {
        free(t->cache[i].ids);
        t->cache[i].ids = NULL;
    }
    t->cache_count = 0;
}

static const struct cache_slot *cache_find(const struct tokenizer *t, const char *s, size_t n)
{
    size_t mask = TOK_CACHE_ENTRIES - 1;
    for (size_t i = bytes_hash(s, n) & mask;; i = (i + 1) & mask) {
        const struct cache_slot *c = &t->cache[i];
        if (!c->ids)
            return NULL;
        if (c->key_len == n && memcmp(c->key, s, n) == 0)
            return c;
    }
}

static void cache_put(struct tokenizer *t, const char *s, size_t n, const uint32_t *ids,
                      size_t n_ids)
{
    /* Bounded: at half full, start over (keeps probes short and memory fixed). */
    if (t->cache_count >= TOK_CACHE_ENTRIES / 2)
        cache_clear(t);
    size_t mask = TOK_CACHE_ENTRIES - 1;
    size_t i = bytes_hash(s, n) & mask;
    while (t->cache[i].ids)
        i = (i + 1) & mask;
    struct cache_slot *c = &t->cache[i];
    char *mem = sw_xmalloc(n_ids * sizeof(uint32_t) + n);
    c->ids = (uint32_t *)(void *)mem;
    memcpy(c->ids, ids, n_ids * sizeof(uint32_t));
    memcpy(mem + n_ids * sizeof(uint32_t), s, n);
    c->key = mem + n_ids * sizeof(uint32_t);
    c->key_len = (uint32_t)n;
    c->n_ids = (uint32_t)n_ids;
    t->cache_count++;
}

/* ---------------------------------------------------------------- construction */

struct tokenizer *tok_new_byte(void)
{
    struct tokenizer *t = sw_xcalloc(1, sizeof(*t));
    t->kind = TOK_BYTE;
    t->vocab_size = 256;
    t->eos_id = -1;
    return t;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    cache_clear(t);
    free(t->cache);
    free(t->arena);
    free(t->strs);
    free(t->vocab_slots);
    free(t->merges);
    free(t->work);
    free(t);
}

/* Line and column (1-based) of byte offset `off` in text. */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int load_vocab(struct tokenizer *t, const char *path, const int16_t *cp_to_byte,
                      struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct json_tokener *tk = NULL;
    struct json_object *root = NULL;
    int rc = sw_read_file(path, TOK_FILE_MAX_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    tk = json_tokener_new();
    if (!tk) {
        rc = sw_err_at(err, SW_EINTERNAL, path, 0, 0, "json-c: cannot create a parser");
        goto out;
    }
    if (len > (size_t)INT32_MAX) {
        rc = sw_err_at(err, SW_ERANGE, path, 0, 0, "vocabulary file is too large");
        goto out;
    }
    root = json_tokener_parse_ex(tk, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    if (!root || jerr != json_tokener_success) {
        int line, col;
        line_col(text, json_tokener_get_parse_end(tk), &line, &col);
        rc = sw_err_at(err, SW_EPARSE, path, line, col, "not valid JSON: %s",
                       !root && jerr == json_tokener_success
                           ? "empty document"
                           : json_tokener_error_desc(jerr == json_tokener_continue
                                                         ? json_tokener_error_parse_eof
                                                         : jerr));
        goto out;
    }
    if (!json_object_is_type(root, json_type_object)) {
        rc = sw_err_at(err, SW_EPARSE, path, 1, 1,
                       "expected a JSON object mapping token -> id (encoder.json / vocab.json)");
        goto out;
    }
    /* First pass: ids and the vocabulary size. */
    int64_t max_id = -1;
    size_t n_tokens = 0;
    json_object_object_foreach(root, key0, val0)
    {
        if (!json_object_is_type(val0, json_type_int)) {
            rc = sw_err_at(err, SW_EPARSE, path, 0, 0, "token '%s': id is not an integer", key0);
            goto out;
        }
        int64_t id = json_object_get_int64(val0);
        if (id < 0 || id >= (int64_t)TOK_MAX_ID) {
            rc = sw_err_at(err, SW_ERANGE, path, 0, 0, "token '%s': id %lld is outside [0, %u)",
                           key0, (long long)id, TOK_MAX_ID);
            goto out;
        }
        if (id > max_id)
            max_id = id;
        n_tokens++;
    }
    if (n_tokens == 0) {
        rc = sw_err_at(err, SW_EPARSE, path, 1, 1, "the vocabulary is empty");
        goto out;
    }
    t->vocab_size = (uint32_t)(max_id + 1);
    t->strs = sw_xcalloc(t->vocab_size, sizeof(*t->strs));
    t->vocab_cap = pow2_at_least(n_tokens * 2);
    t->vocab_slots = sw_xcalloc(t->vocab_cap, sizeof(*t->vocab_slots));
    bool *seen = sw_xcalloc(t->vocab_size, sizeof(bool));
    json_object_object_foreach(root, key, val)
    {
        uint32_t id = (uint32_t)json_object_get_int64(val);
        if (seen[id]) {
            rc = sw_err_at(err, SW_EPARSE, path, 0, 0, "token '%s': id %u is used twice", key, id);
            break;
        }
        seen[id] = true;
        uint32_t off = 0, blen = 0, bad = 0;
        if (alphabet_to_bytes(t, cp_to_byte, key, strlen(key), &off, &blen, &bad) < 0) {
            if (bad == 0xFFFFFFFFu)
                rc = sw_err_at(err, SW_EPARSE, path, 0, 0, "token %u is not valid UTF-8", id);
            else
                rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                               "token '%s' (id %u): character U+%04X is not in GPT-2's byte "
                               "alphabet",
                               key, id, bad);
            break;
        }
        if (blen == 0) {
            rc = sw_err_at(err, SW_EPARSE, path, 0, 0, "id %u: the empty token", id);
            break;
        }
        if (vocab_find(t, t->arena + off, blen) >= 0) {
            rc = sw_err_at(err, SW_EPARSE, path, 0, 0, "token '%s' is listed twice", key);
            break;
        }
        t->strs[id] = (struct tok_str){.off = off, .len = blen};
        vocab_insert(t, id);
    }
    free(seen);
    if (rc < 0)
        goto out;
    /* Every byte must have its own token, or some text could not be encoded. */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int64_t id = vocab_find(t, &c, 1);
        if (id < 0) {
            rc = sw_err_at(err, SW_EPARSE, path, 0, 0,
                           "no token for byte 0x%02x: a GPT-2 vocabulary has all 256 byte tokens",
                           b);
            goto out;
        }
        t->byte_id[b] = (uint32_t)id;
    }
    t->eos_id = vocab_find(t, TOK_GPT2_EOS_TEXT, strlen(TOK_GPT2_EOS_TEXT));
out:
    if (root)
        json_object_put(root);
    if (tk)
        json_tokener_free(tk);
    free(text);
    return rc;
}

static int load_merges(struct tokenizer *t, const char *path, const int16_t *cp_to_byte,
                       struct sw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = sw_read_file(path, TOK_FILE_MAX_BYTES, &text, &len, err);
    if (rc < 0)
        return rc;
    /* Size the table from the line count (at most one merge per line). */
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    t->merges_cap = pow2_at_least(n_lines * 2);
    t->merges = sw_xcalloc(t->merges_cap, sizeof(*t->merges));
    uint32_t rank = 0;
    int line = 0;
    size_t pos = 0;
    char buf[1024];
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t llen = end - pos;
        const char *s = text + pos;
        pos = end + 1;
        if (llen > 0 && s[llen - 1] == '\r')
            llen--;
        if (line == 1 && llen >= 8 && memcmp(s, "#version", 8) == 0)
            continue;
        if (llen == 0)
            continue; /* a trailing newline or blank line carries no merge */
        const char *sp = memchr(s, ' ', llen);
        if (!sp || sp == s || sp == s + llen - 1 ||
            memchr(sp + 1, ' ', llen - (size_t)(sp - s) - 1)) {
            rc = sw_err_at(err, SW_EPARSE, path, line, 1,
                           "expected two tokens separated by one space, got '%.*s'",
                           (int)(llen < 60 ? llen : 60), s);
            goto out;
        }
        size_t la = (size_t)(sp - s), lb = llen - la - 1;
        uint32_t ids[2];
        const char *part[2] = {s, sp + 1};
        size_t plen[2] = {la, lb};
        for (int k = 0; k < 2; k++) {
            size_t save = t->arena_len;
            uint32_t off = 0, blen = 0, bad = 0;
            if (alphabet_to_bytes(t, cp_to_byte, part[k], plen[k], &off, &blen, &bad) < 0) {
                rc = sw_err_at(err, SW_EPARSE, path, line, k == 0 ? 1 : (int)la + 2,
                               "'%.*s' is not a token in GPT-2's byte alphabet", (int)plen[k],
                               part[k]);
                goto out;
            }
            int64_t id = vocab_find(t, t->arena + off, blen);
            t->arena_len = save; /* the scratch bytes are not kept */
            if (id < 0) {
                rc = sw_err_at(err, SW_EPARSE, path, line, k == 0 ? 1 : (int)la + 2,
                               "'%.*s' is not in the vocabulary", (int)plen[k], part[k]);
                goto out;
            }
            ids[k] = (uint32_t)id;
        }
        const struct tok_str *a = &t->strs[ids[0]], *b = &t->strs[ids[1]];
        if ((size_t)a->len + b->len > sizeof(buf)) {
            rc = sw_err_at(err, SW_EPARSE, path, line, 1, "merged token is too long");
            goto out;
        }
        memcpy(buf, t->arena + a->off, a->len);
        memcpy(buf + a->len, t->arena + b->off, b->len);
        int64_t mid = vocab_find(t, buf, (size_t)a->len + b->len);
        if (mid < 0) {
            rc = sw_err_at(err, SW_EPARSE, path, line, 1,
                           "the merge of '%.*s' is not in the vocabulary", (int)llen, s);
            goto out;
        }
        if (merge_insert(t, ids[0], ids[1], rank, (uint32_t)mid))
            rank++;
    }
out:
    free(text);
    return rc;
}

int tok_new_gpt2(const char *vocab_path, const char *merges_path, struct tokenizer **out,
                 struct sw_err *err)
{
    *out = NULL;
    uint32_t cp[256];
    int16_t cp_to_byte[512];
    byte_to_cp_table(cp);
    for (int i = 0; i < 512; i++)
        cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++)
        cp_to_byte[cp[b]] = (int16_t)b;
    struct tokenizer *t = sw_xcalloc(1, sizeof(*t));
    t->kind = TOK_GPT2;
    int rc = load_vocab(t, vocab_path, cp_to_byte, err);
    if (rc == 0)
        rc = load_merges(t, merges_path, cp_to_byte, err);
    if (rc < 0) {
        tok_free(t);
        return rc;
    }
    t->cache = sw_xcalloc(TOK_CACHE_ENTRIES, sizeof(*t->cache));
    *out = t;
    return 0;
}

enum tok_kind tok_get_kind(const struct tokenizer *t)
{
    return t->kind;
}

uint32_t tok_vocab_size(const struct tokenizer *t)
{
    return t->vocab_size;
}

int64_t tok_eos_id(const struct tokenizer *t)
{
    return t->eos_id;
}

/* ---------------------------------------------------------------- pre-tokenizer */

enum char_class { CC_SPACE, CC_LETTER, CC_DIGIT, CC_OTHER };

/* GPT-2's \s, \p{L}, \p{N} restricted to ASCII; every byte >= 0x80 counts as a letter, so a
 * UTF-8 sequence is never split and non-ASCII text groups like words. */
static enum char_class char_class(unsigned char c)
{
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return CC_LETTER;
    if (c >= '0' && c <= '9')
        return CC_DIGIT;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
        return CC_SPACE;
    return CC_OTHER;
}

/* End of the piece that starts at s[i] (i < n), following GPT-2's pattern
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * alternative by alternative. */
static size_t next_piece(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd')
            return i + 2;
        if (i + 2 < n && ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e') ||
                          (c == 'l' && s[i + 2] == 'l')))
            return i + 3;
    }
    /* " ?X+" for X in letters, digits, others: the optional space only counts if X follows. */
    size_t j = i;
    if (s[j] == ' ' && j + 1 < n && char_class(s[j + 1]) != CC_SPACE)
        j++;
    enum char_class c = char_class(s[j]);
    if (c != CC_SPACE) {
        while (j < n && char_class(s[j]) == c)
            j++;
        return j;
    }
    /* Whitespace run s[i..e). \s+(?!\S): the whole run at the end of the text, else the run
     * minus its last character (which then leads the next piece); \s+ if that leaves nothing. */
    size_t e = i;
    while (e < n && char_class(s[e]) == CC_SPACE)
        e++;
    if (e == n || e - i == 1)
        return e;
    return e - 1;
}

/* ---------------------------------------------------------------- BPE */

static void work_reserve(struct tokenizer *t, size_t n)
{
    if (n > t->work_cap) {
        size_t cap = pow2_at_least(n);
        t->work = sw_xrealloc(t->work, cap * sizeof(uint32_t));
        t->work_cap = cap;
    }
}

/* Merge one piece into t->work[0..return). GPT-2 encoder.py bpe(): repeatedly take the adjacent
 * pair of lowest rank and merge every occurrence of it, left to right, until no pair merges. */
static size_t bpe_piece(struct tokenizer *t, const unsigned char *s, size_t n)
{
    work_reserve(t, n);
    uint32_t *w = t->work;
    for (size_t i = 0; i < n; i++)
        w[i] = t->byte_id[s[i]];
    size_t len = n;
    while (len > 1) {
        uint32_t best_rank = UINT32_MAX, best_a = 0, best_b = 0, best_id = 0;
        for (size_t i = 0; i + 1 < len; i++) {
            const struct merge_slot *m = merge_find(t, w[i], w[i + 1]);
            if (m && m->rank < best_rank) {
                best_rank = m->rank;
                best_a = w[i];
                best_b = w[i + 1];
                best_id = m->id;
            }
        }
        if (best_rank == UINT32_MAX)
            break;
        size_t o = 0;
        for (size_t i = 0; i < len;) {
            if (i + 1 < len && w[i] == best_a && w[i + 1] == best_b) {
                w[o++] = best_id;
                i += 2;
            } else {
                w[o++] = w[i++];
            }
        }
        len = o;
    }
    return len;
}

/* First occurrence of needle[0..m) in h[0..n), or NULL (memmem is a GNU extension). */
static const unsigned char *find_bytes(const unsigned char *h, size_t n, const char *needle,
                                       size_t m)
{
    while (n >= m) {
        const unsigned char *p = memchr(h, needle[0], n - m + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, m) == 0)
            return p;
        n -= (size_t)(p - h) + 1;
        h = p + 1;
    }
    return NULL;
}

static void encode_segment(struct tokenizer *t, const unsigned char *s, size_t n, uint32_t *ids,
                           size_t *k)
{
    size_t i = 0;
    while (i < n) {
        size_t e = next_piece(s, n, i);
        size_t plen = e - i;
        const struct cache_slot *c =
            plen <= TOK_CACHE_PIECE_MAX ? cache_find(t, (const char *)s + i, plen) : NULL;
        if (c) {
            memcpy(ids + *k, c->ids, c->n_ids * sizeof(uint32_t));
            *k += c->n_ids;
        } else {
            size_t m = bpe_piece(t, s + i, plen);
            memcpy(ids + *k, t->work, m * sizeof(uint32_t));
            *k += m;
            if (plen <= TOK_CACHE_PIECE_MAX)
                cache_put(t, (const char *)s + i, plen, t->work, m);
        }
        i = e;
    }
}

int tok_encode(struct tokenizer *t, const char *text, size_t len, uint32_t *ids, size_t cap,
               size_t *n_out, struct sw_err *err)
{
    *n_out = 0;
    if (cap < len)
        return sw_errf(err, SW_ERANGE,
                       "token buffer of %zu ids is smaller than the %zu bytes "
                       "of text",
                       cap, len);
    const unsigned char *s = (const unsigned char *)text;
    if (t->kind == TOK_BYTE) {
        for (size_t i = 0; i < len; i++)
            ids[i] = s[i];
        *n_out = len;
        return 0;
    }
    /* The special token is split out first (as tiktoken does with allowed specials), so the
     * pieces around it never absorb its characters. */
    static const char eos[] = TOK_GPT2_EOS_TEXT;
    const size_t eos_len = sizeof(eos) - 1;
    size_t k = 0, i = 0;
    while (i < len) {
        const unsigned char *hit = t->eos_id >= 0 ? find_bytes(s + i, len - i, eos, eos_len) : NULL;
        size_t seg_end = hit ? (size_t)(hit - s) : len;
        encode_segment(t, s + i, seg_end - i, ids, &k);
        i = seg_end;
        if (hit) {
            ids[k++] = (uint32_t)t->eos_id;
            i += eos_len;
        }
    }
    *n_out = k;
    return 0;
}

int tok_decode(const struct tokenizer *t, const uint32_t *ids, size_t n, struct sw_buf *out,
               struct sw_err *err)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->vocab_size || (t->kind == TOK_GPT2 && t->strs[id].len == 0))
            return sw_errf(err, SW_EINVAL, "token %zu: id %u is not in the vocabulary (size %u)", i,
                           id, t->vocab_size);
        if (t->kind == TOK_BYTE) {
            char c = (char)id;
            rc = sw_buf_append(out, &c, 1, err);
        } else {
            rc = sw_buf_append(out, t->arena + t->strs[id].off, t->strs[id].len, err);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}
