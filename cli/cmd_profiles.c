/* `scalewise profiles`: lists the bundled hardware profiles (device, count, memory, bf16 peak)
 * and model profiles (architecture, sizes, parameters) as a text table or as one JSON/YAML tree
 * ({"hardware": [...], "models": [...]}). Finding and loading profiles is advisor/profiles.c's;
 * this file only parses flags and prints. */
#include "cli/cli.h"

#include <stdarg.h>
#include <string.h>

#include "advisor/advisor.h"
#include "common/common.h"

enum list_kind { KIND_HARDWARE = 1, KIND_MODEL = 2, KIND_ALL = 3 };

static const char *const kind_words[] = {"hardware", "model", "all", NULL};
static const char *const flag_words[] = {"--format", "--kind", "--help", NULL};

static void usage(FILE *f)
{
    fputs("usage: scalewise profiles [--format text|json|yaml] [--kind hardware|model|all]\n"
          "\n"
          "Lists the hardware and model profiles found in the profile directory\n"
          "($SCALEWISE_PROFILES, else profiles/ beside the binary, else the build's profiles/).\n",
          f);
}

static int fail(int code, const struct sw_err *err)
{
    char buf[SW_ERR_MSG_MAX + SW_ERR_FILE_MAX + 32];
    fprintf(stderr, "scalewise profiles: %s\n", sw_err_format(err, buf, sizeof(buf)));
    return code;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("scalewise profiles: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see 'scalewise profiles --help')\n", stderr);
    return CLI_EXIT_USAGE;
}

/* Exit code for a library error: a missing or broken profile is bad input, I/O is a failure. */
static int exit_code_of(int code)
{
    return code == SW_EIO || code == SW_ENOMEM || code == SW_EINTERNAL ? CLI_EXIT_FAIL
                                                                        : CLI_EXIT_USAGE;
}

/* "124.4M", "6.74B", "405.9B". */
static const char *fmt_count(int64_t n, char *buf, size_t size)
{
    double x = (double)n;
    if (x >= 1e9)
        snprintf(buf, size, "%.*fB", x >= 1e11 ? 1 : 2, x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, size, "%.1fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, size, "%.1fK", x / 1e3);
    else
        snprintf(buf, size, "%lld", (long long)n);
    return buf;
}

static const char *device_label(const struct hardware *hw)
{
    if (hw_is_cpu_only(hw))
        return hw->cpu.model[0] ? hw->cpu.model : "CPU";
    return hw->gpus[0].name[0] ? hw->gpus[0].name : "GPU";
}

static void emit_hardware(struct sw_emit *e, const struct hardware *hw)
{
    bool cpu = hw_is_cpu_only(hw);
    sw_emit_map_begin(e, NULL);
    sw_emit_str(e, "name", hw->name);
    if (cpu)
        sw_emit_null(e, "gpu");
    else
        sw_emit_str(e, "gpu", device_label(hw));
    sw_emit_str(e, "cpu", hw->cpu.model[0] ? hw->cpu.model : NULL);
    sw_emit_i64(e, "gpus_per_node", hw->n_gpus);
    sw_emit_i64(e, "nodes", hw->nodes);
    sw_emit_u64(e, "device_memory_bytes", hw_device_capacity_bytes(hw));
    sw_emit_num(e, "bf16_peak_flops", hw_device_peak_flops(hw, HW_DT_BF16));
    sw_emit_str(e, "description", hw->description);
    sw_emit_map_end(e);
}

static void emit_model(struct sw_emit *e, const struct model_desc *m)
{
    struct model_counts c;
    model_count(m, 1, &c); /* unpadded: the figure Hugging Face reports */
    sw_emit_map_begin(e, NULL);
    sw_emit_str(e, "name", m->name);
    sw_emit_str(e, "arch", model_arch_name(m->arch));
    sw_emit_i64(e, "layers", m->n_layers);
    sw_emit_i64(e, "hidden", m->hidden);
    sw_emit_i64(e, "heads", m->n_heads);
    sw_emit_i64(e, "kv_heads", m->n_kv_heads);
    sw_emit_i64(e, "ffn", m->ffn);
    sw_emit_i64(e, "vocab", m->vocab);
    sw_emit_i64(e, "max_pos", m->max_pos);
    sw_emit_i64(e, "params", c.params_total);
    sw_emit_map_end(e);
}

static void print_hardware_header(int n)
{
    printf("Hardware profiles (%d)\n", n);
    printf("  %-24s %-34s %7s %11s %14s\n", "NAME", "DEVICE", "COUNT", "MEMORY", "BF16 PEAK");
}

static void print_hardware_row(const struct hardware *hw)
{
    char count[32], mem[32], peak[32];
    if (hw_is_cpu_only(hw))
        snprintf(count, sizeof(count), hw->nodes > 1 ? "%dx cpu" : "cpu", hw->nodes);
    else if (hw->nodes > 1)
        snprintf(count, sizeof(count), "%dx%d", hw->nodes, hw->n_gpus);
    else
        snprintf(count, sizeof(count), "%d", hw->n_gpus);
    sw_fmt_bytes((double)hw_device_capacity_bytes(hw), mem, sizeof(mem));
    double flops = hw_device_peak_flops(hw, HW_DT_BF16);
    if (flops > 0)
        snprintf(peak, sizeof(peak), "%.1f TFLOP/s", flops / 1e12);
    else
        snprintf(peak, sizeof(peak), "n/a");
    printf("  %-24s %-34.34s %7s %11s %14s\n", hw->name, device_label(hw), count, mem, peak);
}

static void print_model_header(int n)
{
    printf("Model profiles (%d)\n", n);
    printf("  %-16s %-6s %7s %7s %6s %9s %8s %10s\n", "NAME", "ARCH", "LAYERS", "HIDDEN", "HEADS",
           "KV HEADS", "VOCAB", "PARAMS");
}

static void print_model_row(const struct model_desc *m)
{
    struct model_counts c;
    char params[32];
    model_count(m, 1, &c);
    printf("  %-16s %-6s %7d %7d %6d %9d %8d %10s\n", m->name, model_arch_name(m->arch),
           m->n_layers, m->hidden, m->n_heads, m->n_kv_heads, m->vocab,
           fmt_count(c.params_total, params, sizeof(params)));
}

/* Load every profile of one kind and print or emit it. */
static int list_kind(enum profile_kind kind, enum sw_fmt fmt, struct sw_emit *e)
{
    struct sw_err err;
    sw_err_init(&err);
    char **names = NULL;
    int count = 0;
    int rc = profiles_list(kind, &names, &count, &err);
    if (rc < 0)
        return fail(exit_code_of(rc), &err);
    bool hw_kind = kind == PROFILE_HARDWARE;
    if (fmt == SW_FMT_TEXT) {
        if (hw_kind)
            print_hardware_header(count);
        else
            print_model_header(count);
    } else {
        sw_emit_list_begin(e, hw_kind ? "hardware" : "models");
    }
    /* struct hardware is large (link matrices): keep it off the stack. */
    struct hardware *hw = hw_kind ? sw_xcalloc(1, sizeof(*hw)) : NULL;
    int code = CLI_EXIT_OK;
    for (int i = 0; i < count && code == CLI_EXIT_OK; i++) {
        if (hw_kind) {
            memset(hw, 0, sizeof(*hw));
            if ((rc = profile_load_hardware(names[i], hw, &err)) < 0)
                code = fail(exit_code_of(rc), &err);
            else if (fmt == SW_FMT_TEXT)
                print_hardware_row(hw);
            else
                emit_hardware(e, hw);
        } else {
            struct model_desc m;
            if ((rc = profile_load_model(names[i], &m, &err)) < 0)
                code = fail(exit_code_of(rc), &err);
            else if (fmt == SW_FMT_TEXT)
                print_model_row(&m);
            else
                emit_model(e, &m);
        }
    }
    if (fmt != SW_FMT_TEXT)
        sw_emit_list_end(e);
    free(hw);
    profiles_free_names(names, count);
    return code;
}

/* "--flag value" or "--flag=value": the value, advancing *i past it; NULL if missing. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (a[n] == '=')
        return a + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int cli_profiles(int argc, char **argv)
{
    enum sw_fmt fmt = SW_FMT_TEXT;
    int kind = KIND_ALL;
    struct sw_err err;
    sw_err_init(&err);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!strncmp(a, "--format", 8) && (a[8] == '\0' || a[8] == '=')) {
            const char *v = flag_value(argc, argv, &i, "--format");
            if (!v)
                return usage_error("--format needs a value (text, json or yaml)");
            if (sw_fmt_parse(v, &fmt, &err) < 0)
                return usage_error("--format: %s", err.msg);
        } else if (!strncmp(a, "--kind", 6) && (a[6] == '\0' || a[6] == '=')) {
            const char *v = flag_value(argc, argv, &i, "--kind");
            if (!v)
                return usage_error("--kind needs a value (hardware, model or all)");
            int k = -1;
            for (int w = 0; kind_words[w]; w++)
                if (!strcmp(v, kind_words[w]))
                    k = w;
            if (k < 0) {
                const char *near = sw_suggest(v, kind_words);
                if (near)
                    return usage_error("--kind: unknown kind '%s'; did you mean '%s'?", v, near);
                return usage_error("--kind: unknown kind '%s'; expected hardware, model or all",
                                   v);
            }
            kind = k == 0 ? KIND_HARDWARE : k == 1 ? KIND_MODEL : KIND_ALL;
        } else if (a[0] == '-') {
            const char *near = sw_suggest(a, flag_words);
            if (near)
                return usage_error("unknown flag '%s'; did you mean '%s'?", a, near);
            return usage_error("unknown flag '%s'", a);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }

    /* JSON and YAML are built in memory and printed only when complete, so a profile that
     * fails to load never leaves half a document on stdout. */
    struct sw_buf out;
    sw_buf_init(&out, 16u << 20);
    struct sw_emit e;
    sw_emit_init_buf(&e, &out, fmt);
    if (fmt != SW_FMT_TEXT)
        sw_emit_map_begin(&e, NULL);
    int code = CLI_EXIT_OK;
    if (kind & KIND_HARDWARE)
        code = list_kind(PROFILE_HARDWARE, fmt, &e);
    if (code == CLI_EXIT_OK && (kind & KIND_MODEL)) {
        if (fmt == SW_FMT_TEXT && (kind & KIND_HARDWARE))
            putchar('\n');
        code = list_kind(PROFILE_MODEL, fmt, &e);
    }
    if (code == CLI_EXIT_OK && fmt != SW_FMT_TEXT) {
        sw_emit_map_end(&e);
        sw_emit_finish(&e);
        if (out.len)
            fwrite(out.data, 1, out.len, stdout);
    }
    sw_buf_release(&out);
    if (fflush(stdout) != 0 && code == CLI_EXIT_OK)
        code = CLI_EXIT_FAIL;
    return code;
}
