/* Tests of the probe (advisor/probe*.c): the live machine checked against the compiler's own
 * cpuid reading and sanity ranges; the /proc + /sys fixture trees of tests/data/probe/ with
 * exact expectations (topology, caches, NUMA, cgroup v1 and v2 limits, table peaks); the
 * FLOP/cycle table; and the GPU path through the real dlopen code against the fake NVML and
 * CUDA driver libraries of tests/fake_gpu/ (H100 and A100 on NVSwitch, L40S on PCIe, missing
 * libraries, no driver). The fake-GPU tests skip with a message when SW_FAKE_GPU_DIR is unset
 * (tests/run.sh sets it). */
#include "harness.h"

#include <dlfcn.h>
#include <stdlib.h>

#include "advisor/advisor.h"
#include "advisor/advisor_int.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

static char fake_nvml[1024], fake_cuda[1024];
static bool have_fakes;

/* Point the probe at the real machine (no fixture roots, no fake libraries). */
static void env_live(void)
{
    unsetenv("SCALEWISE_PROCFS_ROOT");
    unsetenv("SCALEWISE_SYSFS_ROOT");
    unsetenv("SCALEWISE_NVML_LIBRARY");
    unsetenv("SCALEWISE_CUDA_LIBRARY");
    unsetenv("SW_FAKE_GPU_MACHINE");
}

/* The repository root, from the build's absolute profiles path ("<root>/profiles"), so the
 * fixtures are found whatever the working directory. */
static const char *repo_root(void)
{
    static char root[1024];
    if (!root[0]) {
        sw_strlcpy(root, SW_PROFILES_DIR, sizeof(root));
        char *slash = strrchr(root, '/');
        if (slash)
            *slash = '\0';
    }
    return root;
}

static void env_fixture(const char *name)
{
    char p[1200];
    snprintf(p, sizeof(p), "%s/tests/data/probe/%s/proc", repo_root(), name);
    setenv("SCALEWISE_PROCFS_ROOT", p, 1);
    snprintf(p, sizeof(p), "%s/tests/data/probe/%s/sys", repo_root(), name);
    setenv("SCALEWISE_SYSFS_ROOT", p, 1);
}

/* The fake GPU machine `machine` through the fake libraries (CPU from the spr-2s fixture so
 * these tests do not depend on the host). */
static void env_fake(const char *machine)
{
    env_live();
    env_fixture("spr-2s");
    setenv("SCALEWISE_NVML_LIBRARY", fake_nvml, 1);
    setenv("SCALEWISE_CUDA_LIBRARY", fake_cuda, 1);
    setenv("SW_FAKE_GPU_MACHINE", machine, 1);
}

static bool skip_without_fakes(const char *what)
{
    if (have_fakes)
        return false;
    printf("skip %s: SW_FAKE_GPU_DIR is not set (tests/run.sh sets it; build the fakes with "
           "make build/fake_gpu/libfake_nvml.so build/fake_gpu/libfake_cuda.so)\n",
           what);
    return true;
}

/* ---------------------------------------------------------------- live machine */

static void test_live(void)
{
    env_live();
    struct hardware hw;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, false, &err), &err);
    CHECK(hw.source == HW_SRC_PROBE);
    CHECK_STR(hw.name, "probed");
    CHECK_INT(hw.nodes, 1);
    const struct hw_cpu *c = &hw.cpu;
    CHECK(c->logical_cpus >= 1);
    CHECK(c->usable_cpus >= 1 && c->usable_cpus <= c->logical_cpus);
    if (c->known & HW_CPU_TOPOLOGY) {
        CHECK(c->sockets >= 1 && c->cores_per_socket >= 1 && c->threads_per_core >= 1);
        CHECK(c->sockets * c->cores_per_socket * c->threads_per_core >= c->logical_cpus);
    }
    CHECK(hw.mem.known & HW_MEM_TOTAL);
    CHECK(hw.mem.total_bytes > 0);
    CHECK(hw.mem.usable_bytes > 0 && hw.mem.usable_bytes <= hw.mem.total_bytes);
    CHECK(!(c->known & HW_CPU_MEASURED));
#if defined(__x86_64__) || defined(__i386__)
    /* The ISA must agree with the compiler's own cpuid + xgetbv reading, bit by bit. */
    CHECK(c->known & HW_CPU_ISA);
    __builtin_cpu_init();
    CHECK_INT(!!(c->isa & HW_ISA_SSE42), !!__builtin_cpu_supports("sse4.2"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX), !!__builtin_cpu_supports("avx"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX2), !!__builtin_cpu_supports("avx2"));
    CHECK_INT(!!(c->isa & HW_ISA_FMA), !!__builtin_cpu_supports("fma"));
    CHECK_INT(!!(c->isa & HW_ISA_F16C), !!__builtin_cpu_supports("f16c"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX512F), !!__builtin_cpu_supports("avx512f"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX512_BF16), !!__builtin_cpu_supports("avx512bf16"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX512_VNNI), !!__builtin_cpu_supports("avx512vnni"));
    CHECK_INT(!!(c->isa & HW_ISA_AVX_VNNI), !!__builtin_cpu_supports("avxvnni"));
    CHECK_INT(!!(c->isa & HW_ISA_AMX_TILE), !!__builtin_cpu_supports("amx-tile"));
    CHECK_INT(!!(c->isa & HW_ISA_AMX_BF16), !!__builtin_cpu_supports("amx-bf16"));
    CHECK_INT(!!(c->isa & HW_ISA_AMX_INT8), !!__builtin_cpu_supports("amx-int8"));
    CHECK(c->fp32_flop_per_cycle >= 8);
    CHECK(c->vendor[0] != '\0');
#endif
    if ((c->known & HW_CPU_PEAK)) {
        CHECK(c->peak_fp32_flops >= c->peak_fp32_flops_per_core);
        CHECK(c->peak_bf16_flops >= c->peak_fp32_flops);
    }
    /* A GPU machine reports GPUs; any other gives the normal "no GPU" answer. */
    CHECK_MSG(hw.n_gpus > 0 || !strncmp(hw.gpu_status, "no NVIDIA GPU: ", 15), "status '%s'",
              hw.gpu_status);
    if (hw.nccl_available)
        CHECK(hw.nccl_version[0] >= '1' && hw.nccl_version[0] <= '9');
}

static void test_live_measure(void)
{
    env_live();
    struct hardware hw;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, true, &err), &err);
    const struct hw_cpu *c = &hw.cpu;
    CHECK(c->known & HW_CPU_MEASURED);
    /* Sanity ranges only: shared VMs are noisy (hardware-and-distributed 2.4). */
    CHECK_MSG(c->measured_fp32_flops_1core > 1e8, "1 core %.3g FLOP/s",
              c->measured_fp32_flops_1core);
    /* All threads: positive, and not more than the threads could do even if the 1-thread run
     * was slowed 4x by other load on the machine (a FLOP count scaled by the thread count
     * twice would fail this). */
    CHECK_MSG(c->measured_fp32_flops > 0 &&
                  c->measured_fp32_flops <= 4.0 * c->usable_cpus * c->measured_fp32_flops_1core,
              "all threads %.3g, one %.3g", c->measured_fp32_flops, c->measured_fp32_flops_1core);
    if (c->fp32_flop_per_cycle > 0) {
        /* The effective clock follows the FMA loop: 0.1 to 10 GHz is a real CPU. */
        CHECK(c->known & HW_CPU_CLOCK);
        CHECK_MSG(c->clock_hz > 1e8 && c->clock_hz < 1e10, "clock %.3g Hz", c->clock_hz);
        CHECK_REL(c->peak_fp32_flops_per_core, c->measured_fp32_flops_1core, 1e-9);
    }
    CHECK(c->known & HW_CPU_TRIAD);
    CHECK_MSG(c->triad_bytes_per_s > 1e8 && c->triad_bytes_per_s < 1e13, "triad %.3g B/s",
              c->triad_bytes_per_s);
    CHECK_NEAR(hw.host_mem_bytes_per_s, c->triad_bytes_per_s, 0);
}

/* ---------------------------------------------------------------- fixtures */

static void test_fixture_spr_2s(void)
{
    env_live();
    env_fixture("spr-2s");
    struct hardware hw;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, true, &err), &err); /* measure is ignored on fixtures */
    const struct hw_cpu *c = &hw.cpu;
    CHECK_STR(c->model, "Intel(R) Xeon(R) Platinum 8480+");
    CHECK_STR(c->vendor, "GenuineIntel");
    CHECK_INT(c->family, 6);
    CHECK_INT(c->model_id, 143);
    CHECK_INT(c->sockets, 2);
    CHECK_INT(c->cores_per_socket, 4);
    CHECK_INT(c->threads_per_core, 2);
    CHECK_INT(c->logical_cpus, 16);
    CHECK_INT(c->usable_cpus, 8); /* cpu.max 800000/100000 */
    CHECK_INT(c->numa_nodes, 2);
    CHECK_INT(c->l1d_bytes, 48 * 1024);
    CHECK_INT(c->l2_bytes, 2048 * 1024);
    CHECK_INT(c->l3_bytes, 107520LL * 1024); /* one L3 per socket */
    unsigned want_isa = HW_ISA_SSE42 | HW_ISA_AVX | HW_ISA_AVX2 | HW_ISA_FMA | HW_ISA_F16C |
                        HW_ISA_AVX512F | HW_ISA_AVX512_BF16 | HW_ISA_AVX512_VNNI | HW_ISA_AVX_VNNI |
                        HW_ISA_AMX_TILE | HW_ISA_AMX_BF16 | HW_ISA_AMX_INT8;
    CHECK_INT(c->isa, want_isa);
    unsigned want_known = HW_CPU_MODEL | HW_CPU_TOPOLOGY | HW_CPU_ISA | HW_CPU_CACHES |
                          HW_CPU_NUMA | HW_CPU_CLOCK | HW_CPU_PEAK;
    CHECK_INT(c->known, want_known);   /* nothing measured against a fixture */
    CHECK_NEAR(c->clock_hz, 3.8e9, 1); /* cpufreq max, not "cpu MHz" */
    CHECK_NEAR(c->fp32_flop_per_cycle, 64, 0);
    /* 9.4: 8 usable cores (quota) x 64 FLOP/cycle x 3.8 GHz; AMX BF16 1024 FLOP/cycle. */
    CHECK_REL(c->peak_fp32_flops_per_core, 64 * 3.8e9, 1e-12);
    CHECK_REL(c->peak_fp32_flops, 8 * 64 * 3.8e9, 1e-12);
    CHECK_REL(c->peak_bf16_flops, 8 * 1024 * 3.8e9, 1e-12);
    /* cgroup v2: memory.max 64 GiB with 4 GiB in use; the parent's "max" is no limit. */
    CHECK_INT(hw.mem.total_bytes, 1056766444ULL * 1024);
    CHECK_INT(hw.mem.available_bytes, 1020000000ULL * 1024);
    CHECK(hw.mem.known & HW_MEM_CGROUP);
    CHECK_INT(hw.mem.cgroup_limit_bytes, 64ULL << 30);
    CHECK_INT(hw.mem.usable_bytes, 60ULL << 30);
    CHECK(strstr(hw.description, "Platinum 8480+, 2 x 4 cores") != NULL);
}

static void test_fixture_zen3_v1(void)
{
    env_live();
    env_fixture("zen3-v1");
    struct hardware hw;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, false, &err), &err);
    const struct hw_cpu *c = &hw.cpu;
    CHECK_STR(c->model, "AMD EPYC 7763 64-Core Processor");
    CHECK_INT(c->family, 25);
    CHECK_INT(c->logical_cpus, 3); /* cpu3/online is 0 */
    CHECK_INT(c->sockets, 1);
    CHECK_INT(c->cores_per_socket, 3);
    CHECK_INT(c->threads_per_core, 1);
    CHECK_INT(c->usable_cpus, 2); /* cfs quota 150000/100000 rounds up to 2 */
    CHECK_INT(c->numa_nodes, 1);
    CHECK_INT(c->l3_bytes, 32LL << 20);
    CHECK(c->isa & HW_ISA_AVX2);
    CHECK(!(c->isa & HW_ISA_AVX512F));
    CHECK_NEAR(c->clock_hz, 2445.406e6, 1); /* no cpufreq: "cpu MHz" */
    CHECK_NEAR(c->fp32_flop_per_cycle, 32, 0);
    CHECK_REL(c->peak_fp32_flops, 2 * 32 * 2445.406e6, 1e-12);
    CHECK_REL(c->peak_bf16_flops, c->peak_fp32_flops, 1e-12); /* no native BF16 */
    /* cgroup v1: 8 GiB limit, 1 GiB used; the root's huge value means no limit. */
    CHECK_INT(hw.mem.cgroup_limit_bytes, 8ULL << 30);
    CHECK_INT(hw.mem.usable_bytes, 7ULL << 30);
}

static void test_fixture_missing(void)
{
    env_live();
    setenv("SCALEWISE_PROCFS_ROOT", "/nonexistent/scalewise-probe-fixture/proc", 1);
    struct hardware hw;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_INT(hw_probe(&hw, false, &err), SW_ENOENT);
    CHECK(strstr(err.msg, "SCALEWISE_PROCFS_ROOT") != NULL);
    env_live();
}

static void test_flop_table(void)
{
    unsigned avx2 = HW_ISA_SSE42 | HW_ISA_AVX | HW_ISA_AVX2 | HW_ISA_FMA;
    unsigned avx512 = avx2 | HW_ISA_AVX512F;
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("GenuineIntel", 6, 143, avx512), 64, 0); /* SPR */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("GenuineIntel", 6, 60, avx2), 32, 0);    /* HSW */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("GenuineIntel", 6, 42, HW_ISA_SSE42 | HW_ISA_AVX), 16,
               0); /* Sandy Bridge */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("AuthenticAMD", 0x17, 0x01, avx2), 16, 0);   /* Zen 1 */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("AuthenticAMD", 0x17, 0x31, avx2), 32, 0);   /* Zen 2 */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("AuthenticAMD", 0x19, 0x01, avx2), 32, 0);   /* Zen 3 */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("AuthenticAMD", 0x19, 0x11, avx512), 32, 0); /* Zen4 */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("AuthenticAMD", 0x1a, 0x02, avx512), 64, 0); /* Zen5 */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("GenuineIntel", 6, 15, 0), 8, 0); /* SSE only */
    CHECK_NEAR(hw_cpu_fp32_flop_per_cycle("", 0, 0, HW_ISA_NEON), 0, 0);    /* no table: measure */
}

/* ---------------------------------------------------------------- fake GPUs */

/* A counter of the fake NVML (the same loaded object the probe uses: dlopen of the same path
 * returns the same handle). */
static int fake_counter(const char *name)
{
    void *h = dlopen(fake_nvml, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -100;
    int (*fn)(const char *) = (int (*)(const char *))dlsym(h, "fake_nvml_counter");
    int v = fn ? fn(name) : -101;
    dlclose(h); /* drops only this reference; the probe's own one keeps it loaded */
    return v;
}

static void probe_fake(const char *machine, struct hardware *hw)
{
    env_fake(machine);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(hw, false, &err), &err);
}

static void check_nvswitch_matrix(const struct hardware *hw, int links)
{
    int bad = 0;
    for (int i = 0; i < hw->n_gpus; i++)
        for (int j = 0; j < hw->n_gpus; j++) {
            enum hw_link want = i == j ? HW_LINK_SELF : HW_LINK_NVSWITCH;
            if (hw->link[i][j] != want || (i != j && hw->link_nvlinks[i][j] != links))
                bad++;
        }
    CHECK_INT(bad, 0);
}

static void test_fake_h100(void)
{
    if (skip_without_fakes("fake H100"))
        return;
    static struct hardware hw;
    env_fake("h100");
    int v2_before = fake_counter("memory_v2_ok"), v1_before = fake_counter("memory_v1");
    probe_fake("h100", &hw);
    /* The v2 memory struct carried the right version (0x02000028) for all 8 GPUs, v1 was not
     * needed, and NVML was shut down again. */
    CHECK_INT(fake_counter("memory_v2_ok") - v2_before, 8);
    CHECK_INT(fake_counter("memory_v2_mismatch"), 0);
    CHECK_INT(fake_counter("memory_v1") - v1_before, 0);
    CHECK_INT(fake_counter("init_count"), 0);
    CHECK_INT(hw.n_gpus, 8);
    CHECK_STR(hw.gpu_status, "");
    CHECK_STR(hw.driver_version, "550.54.15");
    for (int i = 0; i < hw.n_gpus; i++) {
        const struct hw_gpu *g = &hw.gpus[i];
        CHECK_STR(g->name, "NVIDIA H100 80GB HBM3");
        CHECK_INT(g->cc_major, 9);
        CHECK_INT(g->cc_minor, 0);
        CHECK_INT(g->sm_count, 132); /* from the CUDA driver, matched by PCI bus id */
        CHECK_INT(g->sm_clock_mhz, 1980);
        CHECK_INT(g->mem_clock_mhz, 2619);
        CHECK_INT(g->bus_width_bits, 5120);
        CHECK_INT(g->mem_total_bytes, 81559ULL << 20);
        /* NVML's v2 memory struct (version 0x02000028): GPU i has 512 MiB + i GiB used. */
        CHECK_INT(g->mem_free_bytes, (81559ULL << 20) - (512ULL << 20) - ((uint64_t)i << 30));
        CHECK_INT((int)g->temperature_c, 30 + i); /* NVML order kept */
        CHECK_REL(g->mem_bw_bytes_per_s, 3.35e12, 0.01);
        CHECK_INT(g->pcie_gen, 5);
        CHECK_INT(g->pcie_width, 16);
        CHECK_INT(g->nvlinks, 18);
        CHECK_REL(g->nvlink_bytes_per_s, 18 * 25e9, 1e-12);
        CHECK_NEAR(g->power_limit_w, 700, 1e-9);
        CHECK(!g->geforce);
        CHECK_REL(g->peak_flops[HW_DT_BF16], 989e12, 0.01);
        unsigned want = HW_GPU_NAME | HW_GPU_MEM_TOTAL | HW_GPU_MEM_FREE | HW_GPU_CC | HW_GPU_SMS |
                        HW_GPU_SM_CLOCK | HW_GPU_MEM_CLOCK | HW_GPU_MEM_BW | HW_GPU_PCIE |
                        HW_GPU_NVLINK | HW_GPU_PEAK | HW_GPU_BUS_ID | HW_GPU_POWER | HW_GPU_TEMP;
        CHECK_INT(g->known, want);
    }
    CHECK_STR(hw.gpus[0].bus_id, "00000000:18:00.0");
    CHECK_STR(hw.gpus[7].bus_id, "00000000:DB:00.0");
    check_nvswitch_matrix(&hw, 18);
    CHECK_REL(hw.intra_bytes_per_s, 450e9, 1e-12); /* NVSwitch: full per-GPU NVLink rate */
    CHECK_REL(hw.pcie_bytes_per_s, 16 * 3.94e9, 1e-12);
    CHECK(strstr(hw.description, "8 x NVIDIA H100 80GB HBM3") != NULL);
    CHECK(strstr(hw.description, "no P2P") == NULL);
}

static void test_fake_a100(void)
{
    if (skip_without_fakes("fake A100"))
        return;
    static struct hardware hw;
    probe_fake("a100", &hw);
    CHECK_INT(hw.n_gpus, 8);
    const struct hw_gpu *g = &hw.gpus[5];
    CHECK_STR(g->name, "NVIDIA A100-SXM4-80GB");
    CHECK_INT(g->cc_major, 8);
    CHECK_INT(g->cc_minor, 0);
    CHECK_INT(g->sm_count, 108);
    CHECK_INT(g->sm_clock_mhz, 1410);
    CHECK_INT(g->mem_total_bytes, 81920ULL << 20);
    CHECK_REL(g->mem_bw_bytes_per_s, 2 * 1593e6 * 5120 / 8, 1e-12); /* 2.04 TB/s */
    CHECK_INT(g->nvlinks, 12);
    CHECK_REL(g->nvlink_bytes_per_s, 300e9, 1e-12);
    CHECK_INT(g->pcie_gen, 4);
    CHECK_REL(g->peak_flops[HW_DT_BF16], 312e12, 0.01);
    check_nvswitch_matrix(&hw, 12);
    CHECK_REL(hw.intra_bytes_per_s, 300e9, 1e-12);
    CHECK_REL(hw.pcie_bytes_per_s, 16 * 1.97e9, 1e-12);
}

static void test_fake_l40s_pcie(void)
{
    if (skip_without_fakes("fake L40S"))
        return;
    static struct hardware hw;
    probe_fake("l40s", &hw);
    CHECK_INT(hw.n_gpus, 4);
    CHECK_INT(hw.gpus[0].nvlinks, 0);
    CHECK(hw.gpus[0].known & HW_GPU_NVLINK); /* NOT_SUPPORTED: known to have none */
    CHECK_INT(hw.link[0][1], HW_LINK_PIX);
    CHECK_INT(hw.link[2][3], HW_LINK_PIX);
    CHECK_INT(hw.link[0][2], HW_LINK_SYS);
    CHECK_INT(hw.link[3][1], HW_LINK_SYS);
    CHECK_INT(hw.link[1][1], HW_LINK_SELF);
    CHECK_REL(hw.gpus[0].mem_bw_bytes_per_s, 864e9, 0.01);
    CHECK_REL(hw.intra_bytes_per_s, 16 * 1.97e9, 1e-12); /* slow classes: the PCIe rate */
    CHECK(strstr(hw.description, "no P2P on 4 GPU pairs") != NULL);
}

/* An older driver rejects the v2 memory struct: the probe falls back to v1. */
static void test_fake_old_driver(void)
{
    if (skip_without_fakes("fake old NVML"))
        return;
    static struct hardware hw;
    env_fake("a100");
    setenv("SW_FAKE_NVML_OLD", "1", 1);
    int v1_before = fake_counter("memory_v1");
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, false, &err), &err);
    unsetenv("SW_FAKE_NVML_OLD");
    CHECK_INT(fake_counter("memory_v1") - v1_before, 8);
    CHECK_INT(hw.n_gpus, 8);
    CHECK_INT(hw.gpus[3].mem_total_bytes, 81920ULL << 20);
    CHECK_INT(hw.gpus[3].mem_free_bytes, (81920ULL << 20) - (512ULL << 20) - (3ULL << 30));
}

static void test_fake_no_cuda(void)
{
    if (skip_without_fakes("fake H100 without libcuda"))
        return;
    static struct hardware hw;
    env_fake("h100");
    setenv("SCALEWISE_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, false, &err), &err);
    CHECK_INT(hw.n_gpus, 8);
    CHECK_INT(hw.gpus[2].sm_count, 132); /* NVML cores / 128 lanes per SM on CC 9.0 */
    CHECK_REL(hw.gpus[2].peak_flops[HW_DT_BF16], 989e12, 0.01);
}

static void test_fake_no_nvml(void)
{
    if (skip_without_fakes("fake H100 without NVML"))
        return;
    static struct hardware hw;
    env_fake("h100");
    setenv("SCALEWISE_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw, false, &err), &err);
    CHECK_INT(hw.n_gpus, 8); /* the CUDA driver alone */
    CHECK(strstr(hw.gpu_status, "NVML unavailable") != NULL);
    CHECK_INT(hw.gpus[0].sm_count, 132);
    CHECK_REL(hw.gpus[0].mem_bw_bytes_per_s, 3.35e12, 0.01);
    CHECK(!(hw.gpus[0].known & HW_GPU_MEM_FREE));
    CHECK_INT(hw.link[0][1], HW_LINK_UNKNOWN);
    CHECK_STR(hw.driver_version, "CUDA 12.4");
}

static void test_no_driver(void)
{
    if (!skip_without_fakes("fake driver that is not loaded")) {
        static struct hardware hw;
        probe_fake("none", &hw);
        CHECK_INT(hw.n_gpus, 0);
        CHECK_STR(hw.gpu_status, "no NVIDIA GPU: Driver Not Loaded");
    }
    /* No library at all: the normal answer on a machine without the driver. */
    static struct hardware hw2;
    env_live();
    env_fixture("spr-2s");
    setenv("SCALEWISE_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    setenv("SCALEWISE_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(hw_probe(&hw2, false, &err), &err);
    CHECK_INT(hw2.n_gpus, 0);
    CHECK_STR(hw2.gpu_status, "no NVIDIA GPU: driver library not found");
    CHECK(hw_is_cpu_only(&hw2));
}

int main(void)
{
    const char *dir = getenv("SW_FAKE_GPU_DIR");
    if (dir && *dir) {
        snprintf(fake_nvml, sizeof(fake_nvml), "%s/libfake_nvml.so", dir);
        snprintf(fake_cuda, sizeof(fake_cuda), "%s/libfake_cuda.so", dir);
        have_fakes = true;
    }
    RUN(test_flop_table);
    RUN(test_live);
    RUN(test_live_measure);
    RUN(test_fixture_spr_2s);
    RUN(test_fixture_zen3_v1);
    RUN(test_fixture_missing);
    RUN(test_fake_h100);
    RUN(test_fake_a100);
    RUN(test_fake_l40s_pcie);
    RUN(test_fake_old_driver);
    RUN(test_fake_no_cuda);
    RUN(test_fake_no_nvml);
    RUN(test_no_driver);
    env_live();
    return harness_finish("test_probe");
}
