/* `scalewise probe`: inspects this machine with hw_probe() (or shows a saved report with
 * --hardware FILE) and prints it as a readable report (text) or as the hardware tree of
 * hw_emit() (yaml, json); --save writes the report atomically as a hardware file that
 * --hardware (and plans) can use later. Probing, loading and saving are the advisor's; this
 * file parses flags and prints. Unknown fields print "n/a". */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "advisor/advisor.h"
#include "common/common.h"

static const char *const flag_words[] = {"--format",   "--no-measure", "--save",
                                         "--hardware", "--help",       NULL};

struct probe_opts {
    enum sw_fmt fmt;
    bool measure;
    const char *save;
    const char *hardware;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("scalewise probe: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see 'scalewise probe --help')\n", stderr);
    return CLI_EXIT_USAGE;
}

/* Returns 0, or the exit code of a usage error (already printed). */
static int parse_flags(int argc, char **argv, struct probe_opts *o)
{
    o->fmt = SW_FMT_TEXT;
    o->measure = true;
    o->save = NULL;
    o->hardware = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        if (!strncmp(arg, "--", 2) && eq) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
        }
        bool takes_value =
            !strcmp(name, "--format") || !strcmp(name, "--save") || !strcmp(name, "--hardware");
        if (takes_value && !value) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", name);
            value = argv[++i];
        } else if (!takes_value && value) {
            return usage_error("%s takes no value (got '%s')", name, value);
        }
        if (!strcmp(name, "--format")) {
            struct sw_err err;
            sw_err_init(&err);
            if (sw_fmt_parse(value, &o->fmt, &err) < 0)
                return usage_error("--format: %s", err.msg);
        } else if (!strcmp(name, "--no-measure")) {
            o->measure = false;
        } else if (!strcmp(name, "--save")) {
            if (!*value)
                return usage_error("--save needs a file name");
            o->save = value;
        } else if (!strcmp(name, "--hardware")) {
            if (!*value)
                return usage_error("--hardware needs a file name");
            o->hardware = value;
        } else if (!strncmp(name, "-", 1)) {
            const char *s = sw_suggest(name, flag_words);
            if (s)
                return usage_error("unknown flag '%s'; did you mean '%s'?", name, s);
            return usage_error("unknown flag '%s'", name);
        } else {
            return usage_error("unexpected argument '%s'", name);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- text report */

/* "12.3 GFLOP/s", "989.4 TFLOP/s" (decimal), or "n/a". */
static const char *fmt_flops(double f, bool known, char *buf, size_t n)
{
    if (!known || f <= 0)
        snprintf(buf, n, "n/a");
    else if (f >= 1e12)
        snprintf(buf, n, "%.1f TFLOP/s", f / 1e12);
    else
        snprintf(buf, n, "%.1f GFLOP/s", f / 1e9);
    return buf;
}

/* "3.35 TB/s", "32.8 GB/s" (decimal, as bandwidths are quoted), or "n/a". */
static const char *fmt_bw(double b, char *buf, size_t n)
{
    if (b <= 0)
        snprintf(buf, n, "n/a");
    else if (b >= 1e12)
        snprintf(buf, n, "%.2f TB/s", b / 1e12);
    else
        snprintf(buf, n, "%.1f GB/s", b / 1e9);
    return buf;
}

static const char *fmt_mem(uint64_t bytes, bool known, char *buf, size_t n)
{
    if (!known)
        snprintf(buf, n, "n/a");
    else
        sw_fmt_bytes((double)bytes, buf, n);
    return buf;
}

static void print_isa(unsigned isa)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {HW_ISA_SSE42, "SSE4.2"},
        {HW_ISA_AVX, "AVX"},
        {HW_ISA_AVX2, "AVX2"},
        {HW_ISA_FMA, "FMA"},
        {HW_ISA_F16C, "F16C"},
        {HW_ISA_AVX512F, "AVX-512F"},
        {HW_ISA_AVX512_BF16, "AVX512-BF16"},
        {HW_ISA_AVX512_VNNI, "AVX512-VNNI"},
        {HW_ISA_AVX_VNNI, "AVX-VNNI"},
        {HW_ISA_AMX_TILE, "AMX-TILE"},
        {HW_ISA_AMX_BF16, "AMX-BF16"},
        {HW_ISA_AMX_INT8, "AMX-INT8"},
        {HW_ISA_NEON, "NEON"},
    };
    int shown = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (isa & names[i].bit)
            printf("%s%s", shown++ ? " " : "", names[i].name);
    if (!shown)
        printf("none of the tracked extensions");
    printf("\n");
}

static void print_cpu(const struct hardware *hw)
{
    const struct hw_cpu *c = &hw->cpu;
    char a[48], b[48], d[48];
    printf("CPU          %s", c->known & HW_CPU_MODEL ? c->model : "n/a");
    if (c->vendor[0])
        printf(" (%s family %d model %d)", c->vendor, c->family, c->model_id);
    printf("\n");
    if (c->known & HW_CPU_TOPOLOGY)
        printf("Topology     %d socket%s x %d cores x %d thread%s = %d logical CPUs, %d usable\n",
               c->sockets, c->sockets == 1 ? "" : "s", c->cores_per_socket, c->threads_per_core,
               c->threads_per_core == 1 ? "" : "s", c->logical_cpus, c->usable_cpus);
    else
        printf("Topology     n/a (%d logical CPUs, %d usable)\n", c->logical_cpus, c->usable_cpus);
    printf("ISA          ");
    if (c->known & HW_CPU_ISA)
        print_isa(c->isa);
    else
        printf("n/a\n");
    if (c->known & HW_CPU_CACHES)
        printf("Caches       L1d %s/core, L2 %s/core, L3 %s/socket\n",
               fmt_mem(c->l1d_bytes, c->l1d_bytes > 0, a, sizeof(a)),
               fmt_mem(c->l2_bytes, c->l2_bytes > 0, b, sizeof(b)),
               fmt_mem(c->l3_bytes, c->l3_bytes > 0, d, sizeof(d)));
    else
        printf("Caches       n/a\n");
    if (c->known & HW_CPU_NUMA)
        printf("NUMA         %d node%s\n", c->numa_nodes, c->numa_nodes == 1 ? "" : "s");
    else
        printf("NUMA         n/a\n");
    if (c->known & HW_CPU_CLOCK)
        printf("Clock        %.2f GHz%s\n", c->clock_hz / 1e9,
               c->known & HW_CPU_MEASURED ? " (effective, from the FMA loop)" : "");
    else
        printf("Clock        n/a\n");
    if (c->known & HW_CPU_PEAK) {
        double cores =
            c->peak_fp32_flops_per_core > 0 ? c->peak_fp32_flops / c->peak_fp32_flops_per_core : 0;
        printf("Peak fp32    %s per core (%.0f FLOP/cycle), %s on %.0f core%s\n",
               fmt_flops(c->peak_fp32_flops_per_core, true, a, sizeof(a)), c->fp32_flop_per_cycle,
               fmt_flops(c->peak_fp32_flops, true, b, sizeof(b)), cores, cores == 1 ? "" : "s");
        printf("Peak bf16    %s%s\n", fmt_flops(c->peak_bf16_flops, true, a, sizeof(a)),
               c->isa & HW_ISA_AMX_BF16      ? " (AMX)"
               : c->isa & HW_ISA_AVX512_BF16 ? " (AVX512-BF16)"
                                             : " (converted to fp32: no native bf16)");
    } else {
        printf("Peak fp32    n/a\nPeak bf16    n/a\n");
    }
    if (c->known & HW_CPU_MEASURED)
        printf("FMA loop     %s on 1 thread, %s on %d threads\n",
               fmt_flops(c->measured_fp32_flops_1core, true, a, sizeof(a)),
               fmt_flops(c->measured_fp32_flops, true, b, sizeof(b)), c->usable_cpus);
    else
        printf("FMA loop     n/a\n");
    printf("Triad        %s\n",
           c->known & HW_CPU_TRIAD ? fmt_bw(c->triad_bytes_per_s, a, sizeof(a)) : "n/a");
}

static void print_memory(const struct hardware *hw)
{
    const struct hw_memory *m = &hw->mem;
    char a[48], b[48], c[48], d[48];
    printf("Memory       total %s, available %s, cgroup limit %s, usable %s\n",
           fmt_mem(m->total_bytes, m->known & HW_MEM_TOTAL, a, sizeof(a)),
           fmt_mem(m->available_bytes, m->known & HW_MEM_AVAILABLE, b, sizeof(b)),
           m->known & HW_MEM_CGROUP ? fmt_mem(m->cgroup_limit_bytes, true, c, sizeof(c)) : "none",
           fmt_mem(m->usable_bytes, m->usable_bytes > 0, d, sizeof(d)));
}

static const char *gpu_int(int v, bool known, char *buf, size_t n)
{
    if (known)
        snprintf(buf, n, "%d", v);
    else
        snprintf(buf, n, "n/a");
    return buf;
}

static void print_gpus(const struct hardware *hw)
{
    char a[48], b[48], c[48], d[48], e[48], f[48], g[48], h[48];
    if (hw->n_gpus == 0) {
        printf("GPUs         none: %s\n", hw->gpu_status[0] ? hw->gpu_status : "n/a");
        return;
    }
    printf("GPUs         %d%s%s\n", hw->n_gpus, hw->gpu_status[0] ? " - " : "", hw->gpu_status);
    printf("  %-3s %-26s %-10s %-10s %-4s %-4s %-8s %-8s %-10s %-8s %s\n", "#", "name", "memory",
           "free", "CC", "SMs", "SM MHz", "mem MHz", "mem BW", "PCIe", "NVLink");
    for (int i = 0; i < hw->n_gpus; i++) {
        const struct hw_gpu *x = &hw->gpus[i];
        char cc[16], pcie[16], nvl[48];
        if (x->known & HW_GPU_CC)
            snprintf(cc, sizeof(cc), "%d.%d", x->cc_major, x->cc_minor);
        else
            snprintf(cc, sizeof(cc), "n/a");
        if (x->known & HW_GPU_PCIE)
            snprintf(pcie, sizeof(pcie), "Gen%d x%d", x->pcie_gen, x->pcie_width);
        else
            snprintf(pcie, sizeof(pcie), "n/a");
        if (!(x->known & HW_GPU_NVLINK))
            snprintf(nvl, sizeof(nvl), "n/a");
        else if (x->nvlinks == 0)
            snprintf(nvl, sizeof(nvl), "none");
        else
            snprintf(nvl, sizeof(nvl), "%d links, %s", x->nvlinks,
                     fmt_bw(x->nvlink_bytes_per_s, h, sizeof(h)));
        printf("  %-3d %-26.26s %-10s %-10s %-4s %-4s %-8s %-8s %-10s %-8s %s\n", i,
               x->known & HW_GPU_NAME ? x->name : "n/a",
               fmt_mem(x->mem_total_bytes, x->known & HW_GPU_MEM_TOTAL, a, sizeof(a)),
               fmt_mem(x->mem_free_bytes, x->known & HW_GPU_MEM_FREE, b, sizeof(b)), cc,
               gpu_int(x->sm_count, x->known & HW_GPU_SMS, c, sizeof(c)),
               gpu_int(x->sm_clock_mhz, x->known & HW_GPU_SM_CLOCK, d, sizeof(d)),
               gpu_int(x->mem_clock_mhz, x->known & HW_GPU_MEM_CLOCK, e, sizeof(e)),
               x->known & HW_GPU_MEM_BW ? fmt_bw(x->mem_bw_bytes_per_s, f, sizeof(f)) : "n/a", pcie,
               nvl);
    }
    printf("  Dense peak TFLOP/s:\n  %-3s", "#");
    for (int t = 0; t < HW_DT_COUNT; t++)
        printf(" %8s", hw_dtype_name((enum hw_dtype)t));
    printf("\n");
    for (int i = 0; i < hw->n_gpus; i++) {
        const struct hw_gpu *x = &hw->gpus[i];
        printf("  %-3d", i);
        for (int t = 0; t < HW_DT_COUNT; t++) {
            if ((x->known & HW_GPU_PEAK) && x->peak_flops[t] > 0)
                snprintf(g, sizeof(g), "%.1f", x->peak_flops[t] / 1e12);
            else
                snprintf(g, sizeof(g), "n/a");
            printf(" %8s", g);
        }
        printf("\n");
    }
}

/* The pairwise link matrix, laid out like `nvidia-smi topo -m`. */
static void print_links(const struct hardware *hw)
{
    char a[48], b[48];
    if (hw->n_gpus >= 2) {
        printf("Links        X self, NV# NVLinks, NVSwitch, PIX one PCIe switch, PXB several,\n"
               "             PHB host bridge, NODE same NUMA node, SYS across sockets\n        ");
        for (int j = 0; j < hw->n_gpus; j++) {
            char col[16];
            snprintf(col, sizeof(col), "GPU%d", j);
            printf(j + 1 < hw->n_gpus ? " %-9s" : " %s", col);
        }
        printf("\n");
        for (int i = 0; i < hw->n_gpus; i++) {
            printf("  GPU%-3d", i);
            for (int j = 0; j < hw->n_gpus; j++) {
                char cell[16];
                if (i == j)
                    snprintf(cell, sizeof(cell), "X");
                else if (hw->link[i][j] == HW_LINK_NVLINK)
                    snprintf(cell, sizeof(cell), "NV%d", hw->link_nvlinks[i][j]);
                else
                    snprintf(cell, sizeof(cell), "%s", hw_link_name(hw->link[i][j]));
                printf(j + 1 < hw->n_gpus ? " %-9s" : " %s", cell);
            }
            printf("\n");
        }
    }
    if (hw->n_gpus > 0)
        printf("Bandwidth    GPU<->GPU %s per direction (slowest pair), host<->GPU %s\n",
               fmt_bw(hw->intra_bytes_per_s, a, sizeof(a)),
               fmt_bw(hw->pcie_bytes_per_s, b, sizeof(b)));
}

static void print_text(const struct hardware *hw, const char *from_file)
{
    if (from_file)
        printf("Report       %s (%s)\n", from_file, hw->name);
    printf("Machine      %s\n", hw->description[0] ? hw->description : hw->name);
    print_cpu(hw);
    print_memory(hw);
    print_gpus(hw);
    print_links(hw);
    if (hw->driver_version[0])
        printf("Driver       %s\n", hw->driver_version);
    printf("NCCL         %s%s%s\n", hw->nccl_available ? "available" : "not found",
           hw->nccl_version[0] ? ", " : "", hw->nccl_version);
    printf("MPI          %s%s%s\n", hw->mpi_available ? "available" : "not found",
           hw->mpi_version[0] ? ", " : "", hw->mpi_version);
}

int cli_probe(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cli_print_usage("probe");
            return CLI_EXIT_OK;
        }
    struct probe_opts o;
    int rc = parse_flags(argc, argv, &o);
    if (rc)
        return rc;
    static struct hardware hw; /* about 10 KiB: kept off the stack */
    struct sw_err err;
    sw_err_init(&err);
    char msg[SW_ERR_MSG_MAX + SW_ERR_FILE_MAX + 32];
    if (o.hardware) {
        if (hw_load_file(o.hardware, &hw, &err) < 0) {
            fprintf(stderr, "scalewise probe: --hardware: %s\n",
                    sw_err_format(&err, msg, sizeof(msg)));
            return err.code == SW_EIO ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
        }
    } else if (hw_probe(&hw, o.measure, &err) < 0) {
        fprintf(stderr, "scalewise probe: %s\n", sw_err_format(&err, msg, sizeof(msg)));
        return err.code == SW_ENOENT || err.code == SW_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    if (o.save) {
        if (hw_save_file(o.save, &hw, &err) < 0) {
            fprintf(stderr, "scalewise probe: --save: %s\n", sw_err_format(&err, msg, sizeof(msg)));
            return CLI_EXIT_FAIL;
        }
        fprintf(stderr, "scalewise probe: report written to %s\n", o.save);
    }
    if (o.fmt == SW_FMT_TEXT) {
        print_text(&hw, o.hardware);
    } else {
        struct sw_emit e;
        sw_emit_init(&e, stdout, o.fmt);
        hw_emit(&e, NULL, &hw);
        sw_emit_finish(&e);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "scalewise probe: writing the report failed\n");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
