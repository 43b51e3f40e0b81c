/* Tests of common/: errors, buffers, atomic writes, strict parsing, suggestions, and the
 * YAML/JSON writer (checked by reading the output back with exact expectations). */
#include "harness.h"

#include <unistd.h>

#include "common/common.h"

static void test_errors(void)
{
    struct sw_err err;
    sw_err_init(&err);
    char buf[600];
    CHECK_INT(sw_err_at(&err, SW_EINVAL, "plan.yaml", 14, 9, "unknown key '%s'", "micro_bach"),
              SW_EINVAL);
    CHECK_STR(sw_err_format(&err, buf, sizeof(buf)), "plan.yaml:14:9: unknown key 'micro_bach'");
    sw_errf(&err, SW_ENOENT, "no such profile");
    CHECK_STR(sw_err_format(&err, buf, sizeof(buf)), "no such profile");
    CHECK_STR(sw_strerror(SW_ENOMEM), "out of memory");
}

static void test_parse(void)
{
    struct sw_err err;
    int64_t v = 0;
    int i = 0;
    double d = 0;
    CHECK_INT(sw_parse_i64("42", 0, 100, "x", &v, &err), 0);
    CHECK_INT(v, 42);
    CHECK_INT(sw_parse_i64("42x", 0, 100, "x", &v, &err), SW_EINVAL);
    CHECK_INT(sw_parse_i64("", 0, 100, "x", &v, &err), SW_EINVAL);
    CHECK_INT(sw_parse_i64("101", 0, 100, "x", &v, &err), SW_ERANGE);
    CHECK_INT(sw_parse_i64("99999999999999999999999", 0, 100, "x", &v, &err), SW_ERANGE);
    CHECK_INT(sw_parse_int("-3", -5, 5, "x", &i, &err), 0);
    CHECK_INT(i, -3);
    CHECK_INT(sw_parse_double("1e-3", 0, 1, "lr", &d, &err), 0);
    CHECK_NEAR(d, 1e-3, 1e-15);
    CHECK_INT(sw_parse_double("nan", 0, 1, "lr", &d, &err), SW_ERANGE);
    CHECK_INT(sw_parse_double("1.5.2", 0, 10, "lr", &d, &err), SW_EINVAL);
}

static void test_suggest(void)
{
    static const char *const words[] = {"micro_batch", "grad_accum", "precision", NULL};
    CHECK_STR(sw_suggest("micro_bach", words), "micro_batch");
    CHECK(sw_suggest("zzzzzz", words) == NULL);
    CHECK_INT(sw_edit_distance("kitten", "sitting"), 3);
}

static void test_buf(void)
{
    struct sw_buf b;
    struct sw_err err;
    sw_buf_init(&b, 16);
    CHECK_INT(sw_buf_printf(&b, &err, "%d-%s", 12, "ab"), 0);
    CHECK_STR(b.data, "12-ab");
    CHECK_INT(sw_buf_append(&b, "0123456789abc", 13, &err), SW_ERANGE);
    CHECK_INT((int)b.len, 5);
    sw_buf_release(&b);
}

static void test_atomic_write(void)
{
    struct sw_err err;
    char dir[] = "/tmp/sw_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/f.txt", dir);
    CHECK_OK(sw_write_file_atomic(path, "hello\n", 6, &err), &err);
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(path, 1 << 20, &data, &len, &err), &err);
    CHECK_INT((int)len, 6);
    CHECK_STR(data, "hello\n");
    free(data);
    CHECK_INT(sw_read_file(path, 3, &data, &len, &err), SW_ERANGE);
    unlink(path);
    CHECK_INT(sw_read_file(path, 1 << 20, &data, &len, &err), SW_ENOENT);
    /* writing into a missing directory fails and names the file */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/f.txt", dir);
    CHECK_INT(sw_write_file_atomic(bad, "x", 1, &err), SW_EIO);
    CHECK_STR(err.file, bad);
    rmdir(dir);
}

static void emit_sample(struct sw_emit *e)
{
    sw_emit_map_begin(e, NULL);
    sw_emit_str(e, "name", "gpt2: small");
    sw_emit_i64(e, "layers", 12);
    sw_emit_num(e, "lr", 0.1);
    sw_emit_num(e, "ratio", 2.0);
    sw_emit_bool(e, "fits", true);
    sw_emit_map_begin(e, "mem");
    sw_emit_u64(e, "weights", 1024);
    sw_emit_map_end(e);
    sw_emit_list_begin(e, "reasons");
    sw_emit_str(e, NULL, "a");
    sw_emit_str(e, NULL, "true");
    sw_emit_list_end(e);
    sw_emit_list_begin(e, "gpus");
    sw_emit_map_begin(e, NULL);
    sw_emit_str(e, "name", "h100");
    sw_emit_i64(e, "sms", 132);
    sw_emit_map_end(e);
    sw_emit_list_end(e);
    sw_emit_list_begin(e, "empty");
    sw_emit_list_end(e);
    sw_emit_map_begin(e, "none");
    sw_emit_map_end(e);
    sw_emit_map_end(e);
    sw_emit_finish(e);
}

static void test_emit(void)
{
    struct sw_buf b;
    struct sw_emit e;
    sw_buf_init(&b, 1 << 16);
    sw_emit_init_buf(&e, &b, SW_FMT_YAML);
    emit_sample(&e);
    CHECK_STR(b.data, "name: \"gpt2: small\"\n"
                      "layers: 12\n"
                      "lr: 0.1\n"
                      "ratio: 2.0\n"
                      "fits: true\n"
                      "mem:\n"
                      "  weights: 1024\n"
                      "reasons:\n"
                      "  - a\n"
                      "  - \"true\"\n"
                      "gpus:\n"
                      "  - name: h100\n"
                      "    sms: 132\n"
                      "empty: []\n"
                      "none: {}\n");
    sw_buf_release(&b);
    sw_buf_init(&b, 1 << 16);
    sw_emit_init_buf(&e, &b, SW_FMT_JSON);
    emit_sample(&e);
    CHECK_STR(b.data, "{\n"
                      "  \"name\": \"gpt2: small\",\n"
                      "  \"layers\": 12,\n"
                      "  \"lr\": 0.1,\n"
                      "  \"ratio\": 2.0,\n"
                      "  \"fits\": true,\n"
                      "  \"mem\": {\n"
                      "    \"weights\": 1024\n"
                      "  },\n"
                      "  \"reasons\": [\n"
                      "    \"a\",\n"
                      "    \"true\"\n"
                      "  ],\n"
                      "  \"gpus\": [\n"
                      "    {\n"
                      "      \"name\": \"h100\",\n"
                      "      \"sms\": 132\n"
                      "    }\n"
                      "  ],\n"
                      "  \"empty\": [],\n"
                      "  \"none\": {}\n"
                      "}\n");
    sw_buf_release(&b);
}

static void test_fail_alloc(void)
{
    struct sw_err err;
    void *p = sw_try_malloc((size_t)1 << 62, "activations", &err);
    CHECK(p == NULL);
    CHECK_INT(err.code, SW_ENOMEM);
    CHECK(strstr(err.msg, "activations") != NULL);
}

int main(void)
{
    RUN(test_errors);
    RUN(test_parse);
    RUN(test_suggest);
    RUN(test_buf);
    RUN(test_atomic_write);
    RUN(test_emit);
    RUN(test_fail_alloc);
    return harness_finish("test_common");
}
