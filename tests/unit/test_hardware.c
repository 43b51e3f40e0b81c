/* Tests of advisor/hardware.c: every profile in profiles/hardware loads, has sane values and
 * the data-sheet figures of strategy reference 9.1; save -> load -> save is byte-identical;
 * hw_gpu_fill_peaks reproduces the "Check" column of 9.2 from SM count and clock; link names;
 * the YAML example in docs/hardware-format.md loads; and every tests/data/hw/bad_*.yaml fails
 * at the line, column and message its first line announces ("# expect: L:C: text"). */
#include "expect_file.h"
#include "harness.h"

#include <dirent.h>
#include <unistd.h>

#include <json-c/json.h>

#include "advisor/advisor.h"

#define GIB_D 1073741824.0

static const char *profiles_root(void)
{
    const char *env = getenv("SCALEWISE_PROFILES");
    return (env && *env) ? env : SW_PROFILES_DIR;
}

/* The repository root: the folder above SW_PROFILES_DIR (compile-time, so cwd does not matter). */
static void repo_path(char *out, size_t n, const char *rel)
{
    char root[512];
    snprintf(root, sizeof(root), "%s", SW_PROFILES_DIR);
    char *slash = strrchr(root, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, n, "%s/%s", root, rel);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the files in `dir` that start with `prefix` and end in ".yaml"; the caller
 * frees each name and the array. Returns the count, or -1 when the folder cannot be read. */
static int list_yaml(const char *dir, const char *prefix, char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".yaml") ||
            strncmp(de->d_name, prefix, strlen(prefix)))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            names = sw_xrealloc(names, (size_t)cap * sizeof(*names));
        }
        names[n++] = sw_xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    *out = names;
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void emit_yaml(const struct hardware *hw, struct sw_buf *b)
{
    sw_buf_init(b, 1 << 22);
    struct sw_emit e;
    sw_emit_init_buf(&e, b, SW_FMT_YAML);
    hw_emit(&e, NULL, hw);
    sw_emit_finish(&e);
}

static int load_profile(const char *name, struct hardware *hw, struct sw_err *err)
{
    char path[768];
    snprintf(path, sizeof(path), "%s/hardware/%s.yaml", profiles_root(), name);
    return hw_load_file(path, hw, err);
}

/* ------------------------------------------------------------------------ every profile */

static void check_sane(const char *stem, const struct hardware *hw)
{
    CHECK_MSG(!strcmp(hw->name, stem), "%s: name '%s' differs from the file name", stem, hw->name);
    CHECK_MSG(hw->source == HW_SRC_PROFILE, "%s: not a profile", stem);
    CHECK_MSG(hw->description[0] != '\0', "%s: no description", stem);
    CHECK_MSG(hw->nodes >= 1, "%s: nodes %d", stem, hw->nodes);
    const unsigned cpu_need =
        HW_CPU_MODEL | HW_CPU_TOPOLOGY | HW_CPU_ISA | HW_CPU_CLOCK | HW_CPU_PEAK;
    CHECK_MSG((hw->cpu.known & cpu_need) == cpu_need, "%s: cpu known bits 0x%x", stem,
              hw->cpu.known);
    int cores = hw->cpu.sockets * hw->cpu.cores_per_socket;
    /* 9.4: peak = physical cores x FLOP/cycle x clock */
    CHECK_MSG(
        fabs(hw->cpu.peak_fp32_flops_per_core - hw->cpu.fp32_flop_per_cycle * hw->cpu.clock_hz) <=
            1e-6 * hw->cpu.peak_fp32_flops_per_core,
        "%s: per-core peak is not FLOP/cycle x clock", stem);
    CHECK_MSG(fabs(hw->cpu.peak_fp32_flops - cores * hw->cpu.peak_fp32_flops_per_core) <=
                  1e-6 * hw->cpu.peak_fp32_flops,
              "%s: peak is not cores x per-core peak", stem);
    CHECK_MSG(hw->cpu.peak_bf16_flops >= hw->cpu.peak_fp32_flops, "%s: bf16 below fp32", stem);
    CHECK_MSG(hw->mem.total_bytes >= 8 * (uint64_t)GIB_D && hw->mem.usable_bytes > 0 &&
                  hw->mem.usable_bytes <= hw->mem.total_bytes,
              "%s: host memory %llu usable %llu", stem, (unsigned long long)hw->mem.total_bytes,
              (unsigned long long)hw->mem.usable_bytes);
    CHECK_MSG(hw->host_mem_bytes_per_s >= 10e9 && hw->host_mem_bytes_per_s <= 2e12,
              "%s: host memory bandwidth %g", stem, hw->host_mem_bytes_per_s);
    if (!strncmp(stem, "cluster-", 8))
        CHECK_MSG(hw->nodes > 1 && hw->inter_bytes_per_s > 0, "%s: a cluster without nodes/NIC",
                  stem);
    if (!strncmp(stem, "cpu-", 4)) {
        CHECK_MSG(hw->n_gpus == 0, "%s: a CPU-only profile with GPUs", stem);
        return;
    }
    CHECK_MSG(hw->n_gpus >= 1 && hw->n_gpus <= 8, "%s: %d GPUs per node", stem, hw->n_gpus);
    if (hw->n_gpus > 1)
        CHECK_MSG(hw->intra_bytes_per_s > 0, "%s: no intra-node bandwidth", stem);
    CHECK_MSG(hw->pcie_bytes_per_s > 0, "%s: no PCIe bandwidth", stem);
    for (int i = 0; i < hw->n_gpus; i++) {
        const struct hw_gpu *g = &hw->gpus[i];
        const unsigned need = HW_GPU_NAME | HW_GPU_MEM_TOTAL | HW_GPU_CC | HW_GPU_SMS |
                              HW_GPU_SM_CLOCK | HW_GPU_MEM_BW | HW_GPU_PCIE | HW_GPU_PEAK;
        CHECK_MSG((g->known & need) == need, "%s: gpu %d known 0x%x", stem, i, g->known);
        CHECK_MSG(g->mem_nominal_bytes > 0, "%s: no nominal memory", stem);
        /* usable (GiB-based, as NVML reports) sits near the nominal decimal figure */
        double ratio = (double)g->mem_total_bytes / (double)g->mem_nominal_bytes;
        CHECK_MSG(ratio > 0.9 && ratio < 1.1, "%s: usable/nominal memory %.3f", stem, ratio);
        CHECK_MSG(g->mem_bw_bytes_per_s >= 200e9 && g->mem_bw_bytes_per_s <= 10e12,
                  "%s: memory bandwidth %g", stem, g->mem_bw_bytes_per_s);
        double p16 = g->peak_flops[HW_DT_FP16];
        CHECK_MSG(p16 > g->peak_flops[HW_DT_FP32] && g->peak_flops[HW_DT_FP32] > 0,
                  "%s: fp16 %g fp32 %g", stem, p16, g->peak_flops[HW_DT_FP32]);
        /* bf16 exactly where CC >= 8.0 (strategy reference 10) */
        CHECK_MSG((g->peak_flops[HW_DT_BF16] > 0) == (g->cc_major >= 8), "%s: bf16 vs CC %d.%d",
                  stem, g->cc_major, g->cc_minor);
        /* the 9.2 formula from the same SMs and clock agrees with the data sheet (A10G: no
         * data sheet, the A10's figures with A10G's 80 SMs) */
        struct hw_gpu f = *g;
        f.name[0] = '\0';
        hw_gpu_fill_peaks(&f);
        if (strcmp(g->name, "NVIDIA A10G") != 0)
            CHECK_MSG(fabs(f.peak_flops[HW_DT_FP16] - p16) <= 0.03 * p16 &&
                          fabs(f.peak_flops[HW_DT_FP32] - g->peak_flops[HW_DT_FP32]) <=
                              0.03 * g->peak_flops[HW_DT_FP32],
                      "%s: formula fp16 %.4g fp32 %.4g vs data sheet %.4g %.4g", stem,
                      f.peak_flops[HW_DT_FP16] / 1e12, f.peak_flops[HW_DT_FP32] / 1e12, p16 / 1e12,
                      g->peak_flops[HW_DT_FP32] / 1e12);
        /* the name table gives exactly the profile's peaks */
        struct hw_gpu t = *g;
        hw_gpu_fill_peaks(&t);
        for (int dt = 0; dt < HW_DT_COUNT; dt++)
            CHECK_MSG(fabs(t.peak_flops[dt] - g->peak_flops[dt]) <= 1e-9 * g->peak_flops[dt],
                      "%s: name table %s %g vs profile %g", stem, hw_dtype_name(dt),
                      t.peak_flops[dt], g->peak_flops[dt]);
        for (int j = 0; j < hw->n_gpus; j++)
            CHECK_MSG((i == j) == (hw->link[i][j] == HW_LINK_SELF), "%s: link[%d][%d]", stem, i, j);
    }
}

static void check_roundtrip(const char *stem, const struct hardware *hw)
{
    char dir[] = "/tmp/sw_hw_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, stem);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_save_file(path, hw, &err), &err);
    struct hardware *back = calloc(1, sizeof(*back));
    CHECK_OK(hw_load_file(path, back, &err), &err);
    struct sw_buf a, b;
    emit_yaml(hw, &a);
    emit_yaml(back, &b);
    CHECK_MSG(a.len == b.len && !memcmp(a.data, b.data, a.len),
              "%s: save -> load -> save differs:\n%s\n---\n%s", stem, a.data, b.data);
    /* and nothing was lost: the struct read back is the struct saved */
    CHECK_MSG(!memcmp(hw, back, sizeof(*hw)), "%s: the reloaded struct differs", stem);
    /* the file on disk is exactly the emitted YAML */
    char *disk = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(path, 1 << 22, &disk, &len, &err), &err);
    CHECK(disk && len == a.len && !memcmp(disk, a.data, len));
    free(disk);
    /* --format json gives valid JSON */
    struct sw_buf j;
    sw_buf_init(&j, 1 << 22);
    struct sw_emit e;
    sw_emit_init_buf(&e, &j, SW_FMT_JSON);
    hw_emit(&e, NULL, hw);
    sw_emit_finish(&e);
    json_object *o = json_tokener_parse(j.data);
    CHECK_MSG(o != NULL, "%s: emitted JSON does not parse", stem);
    if (o) {
        json_object *v = NULL;
        CHECK(json_object_object_get_ex(o, "name", &v) && !strcmp(json_object_get_string(v), stem));
        json_object_put(o);
    }
    sw_buf_release(&j);
    sw_buf_release(&a);
    sw_buf_release(&b);
    free(back);
    unlink(path);
    rmdir(dir);
}

static void test_every_profile(void)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/hardware", profiles_root());
    char **names = NULL;
    int n = list_yaml(dir, "", &names);
    CHECK_MSG(n >= 20, "%d hardware profiles in %s, expected at least 20", n, dir);
    struct hardware *hw = calloc(1, sizeof(*hw));
    for (int i = 0; i < n; i++) {
        char stem[128];
        sw_strlcpy(stem, names[i], sizeof(stem));
        stem[strlen(stem) - 5] = '\0';
        struct sw_err err;
        sw_err_init(&err);
        int rc = load_profile(stem, hw, &err);
        CHECK_OK(rc, &err);
        if (rc < 0)
            continue;
        check_sane(stem, hw);
        check_roundtrip(stem, hw);
    }
    free_names(names, n);
    /* the names common_facts.md promises */
    static const char *const want[] = {"a100-40gb-sxm",
                                       "a100-80gb-sxm",
                                       "a100-40gb-pcie",
                                       "a100-80gb-pcie",
                                       "h100-sxm",
                                       "h100-pcie",
                                       "h200-sxm",
                                       "b200",
                                       "l4",
                                       "l40s",
                                       "a10g",
                                       "t4",
                                       "v100-16gb",
                                       "v100-32gb",
                                       "rtx-3090",
                                       "rtx-4090",
                                       "cpu-avx2-2c",
                                       "cpu-xeon-spr-2s",
                                       "cluster-h100-16x8-ib400",
                                       "cluster-a100-4x8-ib200",
                                       NULL};
    for (int i = 0; want[i]; i++) {
        struct sw_err err;
        sw_err_init(&err);
        CHECK_MSG(load_profile(want[i], hw, &err) == 0, "profile %s: %s", want[i], err.msg);
    }
    free(hw);
}

/* ------------------------------------------------------------------------ data-sheet figures */

static void test_key_figures(void)
{
    struct hardware *hw = calloc(1, sizeof(*hw));
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(load_profile("h100-sxm", hw, &err), &err);
    CHECK_INT(hw->n_gpus, 8);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_BF16], 989.4e12, 1e6);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_FP8], 1979e12, 1e6);
    CHECK_NEAR(hw->gpus[0].mem_bw_bytes_per_s, 3.35e12, 1e3);
    CHECK_INT(hw->gpus[0].mem_total_bytes, 81559ull << 20);
    CHECK_INT(hw->gpus[0].mem_nominal_bytes, 80000000000ull);
    CHECK_NEAR(hw->gpus[0].nvlink_bytes_per_s, 450e9, 1);
    CHECK_INT(hw->link[0][7], HW_LINK_NVSWITCH);
    CHECK_INT(hw->nodes, 1);
    CHECK_INT(hw->cpu.isa & HW_ISA_AMX_BF16, HW_ISA_AMX_BF16);
    CHECK_INT(hw->mem.total_bytes, 2048ull << 30);

    CHECK_OK(load_profile("a100-80gb-sxm", hw, &err), &err);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_BF16], 312e12, 1e6);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_FP8], 0, 0);
    CHECK_NEAR(hw->gpus[0].mem_bw_bytes_per_s, 2039e9, 1e3);

    CHECK_OK(load_profile("rtx-4090", hw, &err), &err);
    CHECK(hw->gpus[0].geforce);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_BF16], 165.2e12, 1e6); /* FP32 accumulate */
    CHECK_INT(hw->n_gpus, 1);
    CHECK_OK(load_profile("rtx-3090", hw, &err), &err);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_BF16], 71e12, 1e6);
    CHECK_INT(hw->link[0][1], HW_LINK_NVLINK);
    CHECK_INT(hw->link_nvlinks[1][0], 4);

    CHECK_OK(load_profile("t4", hw, &err), &err);
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_BF16], 0, 0); /* no BF16 on Turing */
    CHECK_NEAR(hw->gpus[0].peak_flops[HW_DT_FP16], 65e12, 1e6);

    CHECK_OK(load_profile("v100-32gb", hw, &err), &err);
    CHECK_INT(hw->link[0][3], HW_LINK_NVLINK);
    CHECK_INT(hw->link_nvlinks[0][3], 2);
    CHECK_INT(hw->link[0][5], HW_LINK_SYS);

    CHECK_OK(load_profile("cluster-h100-16x8-ib400", hw, &err), &err);
    CHECK_INT(hw->nodes, 16);
    CHECK_NEAR(hw->inter_bytes_per_s, 8 * 50e9, 1); /* 400 Gb/s per GPU NIC */
    CHECK_OK(load_profile("cluster-a100-4x8-ib200", hw, &err), &err);
    CHECK_INT(hw->nodes, 4);
    CHECK_NEAR(hw->inter_bytes_per_s, 8 * 25e9, 1);

    CHECK_OK(load_profile("cpu-avx2-2c", hw, &err), &err);
    CHECK_INT(hw->n_gpus, 0);
    CHECK_INT(hw->cpu.sockets * hw->cpu.cores_per_socket, 2);
    CHECK_INT(hw->cpu.isa & HW_ISA_AVX512F, 0);
    CHECK_NEAR(hw->cpu.peak_fp32_flops, 2 * 32 * 2.45e9, 1);
    CHECK_INT(hw->mem.usable_bytes, 24ull << 30); /* derived from total */
    CHECK_OK(load_profile("cpu-xeon-spr-2s", hw, &err), &err);
    CHECK_INT(hw->cpu.isa & HW_ISA_AMX_TILE, HW_ISA_AMX_TILE);
    CHECK_NEAR(hw->cpu.peak_fp32_flops, 112 * 64 * 2.0e9, 1);
    free(hw);
}

/* ------------------------------------------------------------------------ 9.2 formulas */

static void canned(struct hw_gpu *g, const char *name, int major, int minor, int sms, int mhz)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->cc_major = major;
    g->cc_minor = minor;
    g->sm_count = sms;
    g->sm_clock_mhz = mhz;
    g->known = HW_GPU_NAME | HW_GPU_CC | HW_GPU_SMS | HW_GPU_SM_CLOCK;
}

static void test_fill_peaks_formula(void)
{
    struct hw_gpu g;
    /* Names not in the table, so the formula runs. Clocks are NVML's max SM clocks. */
    canned(&g, "test H100 SXM", 9, 0, 132, 1980);
    hw_gpu_fill_peaks(&g);
    CHECK(g.known & HW_GPU_PEAK);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 989e12, 0.02); /* Check: 132 x 1.83 -> 989 */
    CHECK_REL(g.peak_flops[HW_DT_TF32], 494.7e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP8], 1979e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP32], 67e12, 0.02);
    CHECK(!g.geforce);

    canned(&g, "test H100 PCIe", 9, 0, 114, 1755);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 756e12, 0.02); /* 114 x 1.62 -> 756 */

    canned(&g, "test A100", 8, 0, 108, 1410);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 312e12, 0.02); /* 108 x 1.41 -> 312 */
    CHECK_REL(g.peak_flops[HW_DT_TF32], 156e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_INT8], 624e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP32], 19.5e12, 0.02);
    CHECK_NEAR(g.peak_flops[HW_DT_FP8], 0, 0); /* A100 has no FP8 */

    canned(&g, "test L40S", 8, 9, 142, 2520);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 362e12, 0.02); /* 142 x 2.52 -> 362 */
    CHECK_REL(g.peak_flops[HW_DT_FP8], 733e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP32], 91.6e12, 0.02);

    canned(&g, "test T4", 7, 5, 40, 1590);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_FP16], 65e12, 0.02); /* 40 x 1.59 -> 65 */
    CHECK_REL(g.peak_flops[HW_DT_INT8], 130e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP32], 8.1e12, 0.02);
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 0, 0);
    CHECK_NEAR(g.peak_flops[HW_DT_TF32], 0, 0);

    canned(&g, "test V100", 7, 0, 80, 1530);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_FP16], 125e12, 0.02); /* 80 x 1.53 -> 125 */
    CHECK_NEAR(g.peak_flops[HW_DT_INT8], 0, 0);

    canned(&g, "test B200", 10, 0, 148, 1965);
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 2200e12, 0.02); /* 148 x 1.965 x 0.934 -> 2,200 */

    /* A GeForce Ada (RTX 4090-like) by the struct's flag: NVML max 3105 MHz, data-sheet
     * boost 2520; FP32 accumulate halves the float tensor rates, not int8. */
    canned(&g, "", 8, 9, 128, 3105);
    g.geforce = true;
    hw_gpu_fill_peaks(&g);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 165.2e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP8], 330.3e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_INT8], 660.6e12, 0.02);
    CHECK_REL(g.peak_flops[HW_DT_FP32], 82.6e12, 0.02);
    /* and detected by name */
    canned(&g, "NVIDIA GeForce RTX 4080", 8, 9, 76, 3105);
    hw_gpu_fill_peaks(&g);
    CHECK(g.geforce);
    canned(&g, "NVIDIA RTX 4000 Ada Generation", 8, 9, 48, 2175);
    hw_gpu_fill_peaks(&g);
    CHECK(!g.geforce);
    canned(&g, "NVIDIA RTX A6000", 8, 6, 84, 1800);
    hw_gpu_fill_peaks(&g);
    CHECK(!g.geforce);
    CHECK_REL(g.peak_flops[HW_DT_BF16], 155e12, 0.02); /* A6000: 84 x 1.8 -> 155 */
}

static void test_fill_peaks_table_and_unknown(void)
{
    struct hw_gpu g;
    /* the exact NVML name wins over the formula (4090: the probed 3105 MHz overshoots) */
    canned(&g, "NVIDIA GeForce RTX 4090", 8, 9, 128, 3105);
    hw_gpu_fill_peaks(&g);
    CHECK(g.geforce);
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 165.2e12, 1e6);
    canned(&g, "NVIDIA H100 80GB HBM3", 9, 0, 132, 1980);
    hw_gpu_fill_peaks(&g);
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 989.4e12, 1e6);
    /* an older driver's name without "NVIDIA " */
    canned(&g, "A100-SXM4-40GB", 0, 0, 0, 0);
    g.known = HW_GPU_NAME;
    hw_gpu_fill_peaks(&g);
    CHECK(g.known & HW_GPU_PEAK);
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 312e12, 1e6);
    canned(&g, "NVIDIA H100 NVL", 9, 0, 132, 1785);
    hw_gpu_fill_peaks(&g);
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 835e12, 1e6);

    /* unknown CC: unknown, never another GPU's row */
    canned(&g, "future GPU", 15, 0, 200, 2000);
    hw_gpu_fill_peaks(&g);
    CHECK(!(g.known & HW_GPU_PEAK));
    for (int i = 0; i < HW_DT_COUNT; i++)
        CHECK_NEAR(g.peak_flops[i], 0, 0);
    canned(&g, "Pascal", 6, 1, 28, 1900);
    hw_gpu_fill_peaks(&g);
    CHECK(!(g.known & HW_GPU_PEAK));
    /* SM count not known: nothing */
    canned(&g, "test H100", 9, 0, 132, 1980);
    g.known &= ~(unsigned)HW_GPU_SMS;
    hw_gpu_fill_peaks(&g);
    CHECK(!(g.known & HW_GPU_PEAK));
    CHECK_NEAR(g.peak_flops[HW_DT_BF16], 0, 0);
}

static void test_links_and_init(void)
{
    CHECK_STR(hw_link_name(HW_LINK_SELF), "X");
    CHECK_STR(hw_link_name(HW_LINK_NVSWITCH), "NVSwitch");
    CHECK_STR(hw_link_name(HW_LINK_NVLINK), "NV");
    CHECK_STR(hw_link_name(HW_LINK_PIX), "PIX");
    CHECK_STR(hw_link_name(HW_LINK_PXB), "PXB");
    CHECK_STR(hw_link_name(HW_LINK_PHB), "PHB");
    CHECK_STR(hw_link_name(HW_LINK_NODE), "NODE");
    CHECK_STR(hw_link_name(HW_LINK_SYS), "SYS");
    CHECK_STR(hw_link_name(HW_LINK_UNKNOWN), "n/a");
    CHECK(hw_link_is_fast(HW_LINK_NVSWITCH) && hw_link_is_fast(HW_LINK_NVLINK));
    CHECK(!hw_link_is_fast(HW_LINK_PIX) && !hw_link_is_fast(HW_LINK_SYS) &&
          !hw_link_is_fast(HW_LINK_UNKNOWN));

    struct hardware *hw = malloc(sizeof(*hw));
    memset(hw, 0xab, sizeof(*hw));
    hw_init(hw);
    CHECK_INT(hw->nodes, 1);
    CHECK_INT(hw->n_gpus, 0);
    CHECK_INT(hw->cpu.known, 0);
    CHECK_INT(hw->link[3][3], HW_LINK_SELF);
    CHECK_INT(hw->link[3][4], HW_LINK_UNKNOWN);
    CHECK_NEAR(hw->inter_bytes_per_s, 0, 0);
    free(hw);
}

/* ------------------------------------------------------------------------ reports */

/* A saved probe report: per-GPU list (different bus ids), a matrix, software versions. */
static void test_report_roundtrip(void)
{
    static const char yaml[] =
        "scalewise_hardware: 1\n"
        "name: probed\n"
        "kind: report\n"
        "memory: {total_gib: 31.25, available_gib: 28, cgroup_limit_gib: 16}\n"
        "gpus:\n"
        "  - {name: \"NVIDIA A100-SXM4-80GB\", bus_id: \"00000000:07:00.0\", "
        "compute_capability: \"8.0\", sm_count: 108, sm_clock_mhz: 1410, memory_gib: 80, "
        "memory_free_gib: 79.3, temperature_c: 31}\n"
        "  - {name: \"NVIDIA A100-SXM4-80GB\", bus_id: \"00000000:0F:00.0\", "
        "compute_capability: \"8.0\", sm_count: 108, sm_clock_mhz: 1410, memory_gib: 80}\n"
        "  - {name: \"NVIDIA A100-SXM4-80GB\", bus_id: \"00000000:47:00.0\"}\n"
        "links:\n"
        "  matrix:\n"
        "    - [X, NV12, SYS]\n"
        "    - [NV12, X, n/a]\n"
        "    - [SYS, n/a, X]\n"
        "software: {driver_version: \"550.54.15\", nccl_available: true, nccl_version: 2.21.5}\n";
    struct hardware *hw = calloc(1, sizeof(*hw));
    struct hardware *back = calloc(1, sizeof(*back));
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_load_string(yaml, strlen(yaml), "report.yaml", hw, &err), &err);
    CHECK_INT(hw->source, HW_SRC_REPORT);
    CHECK_INT(hw->n_gpus, 3);
    CHECK_INT(hw->mem.usable_bytes, 16ull << 30); /* min(available, cgroup limit) */
    CHECK_INT(hw->link[0][1], HW_LINK_NVLINK);
    CHECK_INT(hw->link_nvlinks[0][1], 12);
    CHECK_INT(hw->link[1][2], HW_LINK_UNKNOWN);
    CHECK(hw->gpus[0].known & HW_GPU_PEAK); /* derived: the name table */
    CHECK(!(hw->gpus[2].known & HW_GPU_SMS));
    CHECK(!(hw->gpus[1].known & HW_GPU_MEM_FREE));
    CHECK(hw->nccl_available && !hw->mpi_available);
    CHECK_STR(hw->nccl_version, "2.21.5");
    struct sw_buf a, b;
    emit_yaml(hw, &a);
    CHECK_OK(hw_load_string(a.data, a.len, "saved.yaml", back, &err), &err);
    emit_yaml(back, &b);
    CHECK_MSG(a.len == b.len && !memcmp(a.data, b.data, a.len), "report differs:\n%s\n---\n%s",
              a.data, b.data);
    CHECK(strstr(a.data, "gpus:") != NULL && strstr(a.data, "matrix:") != NULL);
    CHECK(!memcmp(hw, back, sizeof(*hw)));
    sw_buf_release(&a);
    sw_buf_release(&b);

    /* a failed load leaves the caller's struct as it was */
    memcpy(back, hw, sizeof(*hw));
    static const char bad[] = "scalewise_hardware: 1\nname: x\ngpu: {name: a, count: 99}\n";
    CHECK(hw_load_string(bad, strlen(bad), "bad.yaml", hw, &err) < 0);
    CHECK(!memcmp(hw, back, sizeof(*hw)));
    free(hw);
    free(back);
}

/* The docs example loads (docs cannot rot): the first ```yaml block of the format page. */
static void test_docs_example(void)
{
    char path[600];
    repo_path(path, sizeof(path), "docs/hardware-format.md");
    char *text = NULL;
    size_t len = 0;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(sw_read_file(path, 1 << 20, &text, &len, &err), &err);
    if (!text)
        return;
    int blocks = 0;
    for (char *p = strstr(text, "```yaml\n"); p; p = strstr(p, "```yaml\n")) {
        p += 8;
        char *end = strstr(p, "```");
        if (!end)
            break;
        struct hardware *hw = calloc(1, sizeof(*hw));
        CHECK_OK(hw_load_string(p, (size_t)(end - p), "docs/hardware-format.md", hw, &err), &err);
        free(hw);
        blocks++;
        p = end + 3;
    }
    CHECK_MSG(blocks >= 2, "%d yaml blocks in docs/hardware-format.md", blocks);
    free(text);
}

/* ------------------------------------------------------------------------ bad files */

static void test_bad_files(void)
{
    char dir[600];
    repo_path(dir, sizeof(dir), "tests/data/hw");
    char **names = NULL;
    int n = list_yaml(dir, "bad_", &names);
    CHECK_MSG(n >= 8, "%d bad_*.yaml files in %s", n, dir);
    struct hardware *hw = calloc(1, sizeof(*hw));
    for (int i = 0; i < n; i++) {
        char path[1200];
        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path))
            continue;
        struct sw_err err;
        sw_err_init(&err);
        int want_line = 0, want_col = 0;
        char want_msg[256] = "", why[600];
        if (expect_file_read(path, &want_line, &want_col, want_msg, sizeof(want_msg), why,
                             sizeof(why)) < 0) {
            CHECK_MSG(0, "%s: %s", names[i], why);
            continue;
        }
        int rc = hw_load_file(path, hw, &err);
        CHECK_MSG(rc < 0, "%s: loaded, expected an error", names[i]);
        if (rc >= 0)
            continue;
        CHECK_MSG(err.line == want_line && err.col == want_col && want_msg[0] &&
                      strstr(err.msg, want_msg),
                  "%s: got %d:%d: %s; expected %d:%d: ...%s...", names[i], err.line, err.col,
                  err.msg, want_line, want_col, want_msg);
        CHECK_MSG(strstr(err.file, names[i]) != NULL, "%s: error names file '%s'", names[i],
                  err.file);
    }
    free_names(names, n);
    free(hw);
    /* a missing file */
    struct sw_err err;
    sw_err_init(&err);
    CHECK_INT(hw_load_file("/nonexistent/hw.yaml", hw = calloc(1, sizeof(*hw)), &err), SW_ENOENT);
    free(hw);
}

int main(void)
{
    RUN(test_links_and_init);
    RUN(test_fill_peaks_formula);
    RUN(test_fill_peaks_table_and_unknown);
    RUN(test_every_profile);
    RUN(test_key_figures);
    RUN(test_report_roundtrip);
    RUN(test_docs_example);
    RUN(test_bad_files);
    return harness_finish("test_hardware");
}
