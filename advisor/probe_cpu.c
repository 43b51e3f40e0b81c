/* probe_cpu.c — the CPU and host-memory half of `scalewise probe`
 * (docs/hardware-and-distributed.md section 2, strategy reference 9.4): the instruction set
 * from cpuid and xgetbv, model, sockets/cores/threads, caches and NUMA nodes from /proc and
 * /sys, the CPUs this process may use (affinity mask and cgroup CPU quota), host memory from
 * /proc/meminfo and cgroup v1/v2 limits, the table peak FP32/BF16 FLOP/s, and when asked a
 * short FMA loop (1 thread and all threads, OpenMP) and a STREAM-style triad. hwloc, when the
 * build found it, only fills topology and NUMA that /sys could not give.
 *
 * Fixture trees: SCALEWISE_PROCFS_ROOT and SCALEWISE_SYSFS_ROOT replace /proc and /sys. With
 * SCALEWISE_PROCFS_ROOT set, the vendor, family, model and ISA come from the fixture's
 * /proc/cpuinfo ("vendor_id", "cpu family", "model", "flags") instead of the live cpuid, so a
 * captured tree describes its own machine; with either root set, the affinity mask of this
 * process and the measurements (which would time this machine) are skipped. The GPU half is
 * probe_gpu.c. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_* macros */
#include "advisor/advisor.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define SW_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif
#ifdef SW_HAVE_HWLOC
#include <hwloc.h>
#endif

#include "advisor/advisor_int.h"

#define PATH_MAX_BYTES 1024
#define MAX_CPUS 8192

/* Where /proc and /sys are (fixture roots in tests). */
struct roots {
    const char *proc;
    const char *sys;
    bool fixture_proc;
    bool fixture_any;
};

static int roots_get(struct roots *r, struct sw_err *err)
{
    const char *p = getenv("SCALEWISE_PROCFS_ROOT");
    const char *s = getenv("SCALEWISE_SYSFS_ROOT");
    r->fixture_proc = p && *p;
    r->fixture_any = r->fixture_proc || (s && *s);
    r->proc = r->fixture_proc ? p : "/proc";
    r->sys = (s && *s) ? s : "/sys";
    struct stat st;
    if (r->fixture_proc && (stat(r->proc, &st) != 0 || !S_ISDIR(st.st_mode)))
        return sw_errf(err, SW_ENOENT, "SCALEWISE_PROCFS_ROOT '%s' is not a directory", r->proc);
    if (s && *s && (stat(r->sys, &st) != 0 || !S_ISDIR(st.st_mode)))
        return sw_errf(err, SW_ENOENT, "SCALEWISE_SYSFS_ROOT '%s' is not a directory", r->sys);
    return 0;
}

/* Read a small file (path built printf-style) into buf, NUL-terminated, trailing whitespace
 * removed. False when it cannot be opened or is empty. */
static bool read_small(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool read_small(char *buf, size_t n, const char *fmt, ...)
{
    char path[PATH_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(path))
        return false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = '\0';
    while (got > 0 && isspace((unsigned char)buf[got - 1]))
        buf[--got] = '\0';
    return got > 0;
}

static bool read_i64(int64_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool read_i64(int64_t *out, const char *fmt, ...)
{
    char path[PATH_MAX_BYTES], buf[64];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(path) || !read_small(buf, sizeof(buf), "%s", path))
        return false;
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    if (end == buf)
        return false;
    *out = v;
    return true;
}

/* "48K", "1024K", "32M" (sysfs cache sizes) -> bytes; 0 when unreadable. */
static uint64_t parse_size(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        return v << 10;
    case 'M':
        return v << 20;
    case 'G':
        return v << 30;
    default:
        return v;
    }
}

/* Parse a cpulist ("0-3,8,10-11") into `set` (MAX_CPUS entries). Returns the count. */
static int parse_cpulist(const char *s, bool *set)
{
    int count = 0;
    while (*s) {
        char *end = NULL;
        long a = strtol(s, &end, 10);
        if (end == s)
            break;
        long b = a;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1)
                break;
            s = end;
        }
        for (long c = a; c <= b && c < MAX_CPUS; c++)
            if (c >= 0 && !set[c]) {
                set[c] = true;
                count++;
            }
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
    }
    return count;
}

/* ---------------------------------------------------------------- /proc/cpuinfo */

struct cpuinfo {
    char vendor[16];
    char model_name[HW_NAME_MAX];
    int family, model;
    bool have_family, have_model;
    double mhz;
    unsigned flags_isa;
    bool have_flags;
};

static unsigned isa_from_flags(const char *flags)
{
    static const struct {
        const char *word;
        unsigned bit;
    } map[] = {
        {"sse4_2", HW_ISA_SSE42},
        {"avx", HW_ISA_AVX},
        {"avx2", HW_ISA_AVX2},
        {"fma", HW_ISA_FMA},
        {"f16c", HW_ISA_F16C},
        {"avx512f", HW_ISA_AVX512F},
        {"avx512_bf16", HW_ISA_AVX512_BF16},
        {"avx512_vnni", HW_ISA_AVX512_VNNI},
        {"avx_vnni", HW_ISA_AVX_VNNI},
        {"amx_tile", HW_ISA_AMX_TILE},
        {"amx_bf16", HW_ISA_AMX_BF16},
        {"amx_int8", HW_ISA_AMX_INT8},
        {"asimd", HW_ISA_NEON},
    };
    unsigned isa = 0;
    const char *p = flags;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strlen(map[i].word) == len && !strncmp(p, map[i].word, len))
                isa |= map[i].bit;
        p += len;
    }
    return isa;
}

/* The first processor block of cpuinfo (all cores of a machine share model and flags). */
static void read_cpuinfo(const struct roots *r, struct cpuinfo *ci)
{
    memset(ci, 0, sizeof(*ci));
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/cpuinfo", r->proc);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    bool seen = false;
    while (getline(&line, &cap, f) >= 0) {
        char *colon = strchr(line, ':');
        if (!colon) {
            if (seen && line[strspn(line, " \t\r\n")] == '\0')
                break; /* blank line: end of the first block */
            continue;
        }
        seen = true;
        char *key_end = colon;
        while (key_end > line && isspace((unsigned char)key_end[-1]))
            key_end--;
        *key_end = '\0';
        char *val = colon + 1;
        val += strspn(val, " \t");
        val[strcspn(val, "\r\n")] = '\0';
        if (!strcmp(line, "vendor_id")) {
            sw_strlcpy(ci->vendor, val, sizeof(ci->vendor));
        } else if (!strcmp(line, "model name") || !strcmp(line, "Model name")) {
            sw_strlcpy(ci->model_name, val, sizeof(ci->model_name));
        } else if (!strcmp(line, "cpu family")) {
            ci->family = (int)strtol(val, NULL, 10);
            ci->have_family = true;
        } else if (!strcmp(line, "model")) {
            ci->model = (int)strtol(val, NULL, 10);
            ci->have_model = true;
        } else if (!strcmp(line, "cpu MHz")) {
            ci->mhz = strtod(val, NULL);
        } else if (!strcmp(line, "flags") || !strcmp(line, "Features")) {
            ci->flags_isa = isa_from_flags(val);
            ci->have_flags = true;
        }
    }
    free(line);
    fclose(f);
}

/* ---------------------------------------------------------------- cpuid */

#ifdef SW_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* ISA bits from cpuid, counted only when the OS saves the register state (XCR0): bits 1-2
 * for AVX, 5-7 for AVX-512, 17-18 for AMX tiles (hardware-and-distributed 2.2). */
static unsigned cpuid_probe(char *vendor, size_t vendor_n, int *family, int *model, char *brand,
                            size_t brand_n)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    unsigned max_leaf = a;
    char v[13];
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    v[12] = '\0';
    sw_strlcpy(vendor, v, vendor_n);

    __get_cpuid(1, &a, &b, &c, &d);
    int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    *family = base_family == 0xf ? base_family + (int)((a >> 20) & 0xff) : base_family;
    *model = (base_family == 0x6 || base_family == 0xf) ? base_model + (int)(((a >> 16) & 0xf) << 4)
                                                        : base_model;
    unsigned isa = 0;
    if (c & (1u << 20))
        isa |= HW_ISA_SSE42;
    bool osxsave = c & (1u << 27);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool avx_os = (xcr0 & 0x6) == 0x6;
    bool avx512_os = avx_os && (xcr0 & 0xe0) == 0xe0;
    bool amx_os = (xcr0 & 0x60000) == 0x60000;
    if (avx_os && (c & (1u << 28)))
        isa |= HW_ISA_AVX;
    if (avx_os && (c & (1u << 12)))
        isa |= HW_ISA_FMA;
    if (avx_os && (c & (1u << 29)))
        isa |= HW_ISA_F16C;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned eax7_max = a;
        if (avx_os && (b & (1u << 5)))
            isa |= HW_ISA_AVX2;
        if (avx512_os && (b & (1u << 16)))
            isa |= HW_ISA_AVX512F;
        if (avx512_os && (c & (1u << 11)))
            isa |= HW_ISA_AVX512_VNNI;
        if (amx_os && (d & (1u << 24)))
            isa |= HW_ISA_AMX_TILE;
        if (amx_os && (d & (1u << 22)))
            isa |= HW_ISA_AMX_BF16;
        if (amx_os && (d & (1u << 25)))
            isa |= HW_ISA_AMX_INT8;
        if (eax7_max >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (avx_os && (a & (1u << 4)))
                isa |= HW_ISA_AVX_VNNI;
            if (avx512_os && (a & (1u << 5)))
                isa |= HW_ISA_AVX512_BF16;
        }
    }
    /* Brand string, leaves 0x80000002..4 (used when cpuinfo has no "model name"). */
    __get_cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000004 && brand_n > 48) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                        &regs[4 * i + 3]);
        char s[49];
        memcpy(s, regs, 48);
        s[48] = '\0';
        const char *t = s + strspn(s, " ");
        sw_strlcpy(brand, t, brand_n);
    }
    return isa;
}
#endif

/* ---------------------------------------------------------------- FLOP table */

double hw_cpu_fp32_flop_per_cycle(const char *vendor, int family, int model, unsigned isa)
{
    /* FMA units x lanes x 2 (strategy reference 9.4). */
    bool amd = vendor && !strcmp(vendor, "AuthenticAMD");
    bool x86 =
        amd || (vendor && (!strcmp(vendor, "GenuineIntel") || !strcmp(vendor, "HygonGenuine")));
    if (isa & HW_ISA_AVX512F) {
        if (amd && family == 0x19)
            return 32; /* Zen 4 runs 512-bit FMAs in two 256-bit halves */
        return 64;     /* two 512-bit FMA units (SKX Gold/Platinum, ICX, SPR, Zen 5) */
    }
    if ((isa & HW_ISA_AVX2) && (isa & HW_ISA_FMA)) {
        if (amd && family == 0x17 && model < 0x30)
            return 16; /* Zen 1/Zen+: two 128-bit FMA pipes */
        return 32;     /* Haswell .. Ice Lake client, Zen 2/3 */
    }
    if (isa & HW_ISA_AVX)
        return 16; /* Sandy/Ivy Bridge: 8-wide add + 8-wide multiply */
    if (x86 || (isa & HW_ISA_SSE42))
        return 8; /* SSE: 4-wide add + 4-wide multiply */
    return 0;     /* no table (ARM NEON/SVE, ...): measure */
}

/* BF16 FLOP per cycle per core: AMX TMUL 1024, AVX512_BF16 twice FP32, else converted to FP32
 * and no faster than it (9.4). */
static double bf16_flop_per_cycle(unsigned isa, double fp32)
{
    if (isa & HW_ISA_AMX_BF16)
        return 1024;
    if (isa & HW_ISA_AVX512_BF16)
        return 2 * fp32;
    return fp32;
}

/* ---------------------------------------------------------------- topology */

struct topo {
    int max_cpu; /* highest cpu id seen + 1 */
    bool *online;
    int *pkg, *core;
    bool have_topology;
};

static void topo_release(struct topo *t)
{
    free(t->online);
    free(t->pkg);
    free(t->core);
}

/* Enumerate /sys/devices/system/cpu/cpuN: online set, package and core ids. */
static void read_topology(const struct roots *r, struct topo *t)
{
    memset(t, 0, sizeof(*t));
    t->online = sw_xcalloc(MAX_CPUS, sizeof(bool));
    t->pkg = sw_xcalloc(MAX_CPUS, sizeof(int));
    t->core = sw_xcalloc(MAX_CPUS, sizeof(int));
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/devices/system/cpu", r->sys);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    bool *present = sw_xcalloc(MAX_CPUS, sizeof(bool));
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, "cpu", 3) || !isdigit((unsigned char)e->d_name[3]))
            continue;
        char *end = NULL;
        long id = strtol(e->d_name + 3, &end, 10);
        if (*end || id < 0 || id >= MAX_CPUS)
            continue;
        present[id] = true;
        if (id + 1 > t->max_cpu)
            t->max_cpu = (int)id + 1;
    }
    closedir(dir);
    char list[4096];
    bool have_list = read_small(list, sizeof(list), "%s/devices/system/cpu/online", r->sys);
    if (have_list)
        parse_cpulist(list, t->online);
    bool all_topo = t->max_cpu > 0;
    for (int c = 0; c < t->max_cpu; c++) {
        if (!present[c]) {
            t->online[c] = false;
            continue;
        }
        if (!have_list) {
            int64_t on = 1; /* cpu0 often has no "online" file: it is always online */
            read_i64(&on, "%s/devices/system/cpu/cpu%d/online", r->sys, c);
            t->online[c] = on != 0;
        }
        if (!t->online[c])
            continue;
        int64_t pkg = 0, core = c;
        bool ok =
            read_i64(&pkg, "%s/devices/system/cpu/cpu%d/topology/physical_package_id", r->sys, c) &&
            read_i64(&core, "%s/devices/system/cpu/cpu%d/topology/core_id", r->sys, c);
        all_topo &= ok;
        t->pkg[c] = pkg < 0 ? 0 : (int)pkg;
        t->core[c] = (int)core;
    }
    free(present);
    t->have_topology = all_topo;
}

/* Distinct packages and (package, core) pairs among the CPUs in `set`. */
static void count_cores(const struct topo *t, const bool *set, int *sockets, int *cores)
{
    *sockets = 0;
    *cores = 0;
    for (int c = 0; c < t->max_cpu; c++) {
        if (!set[c])
            continue;
        bool new_pkg = true, new_core = true;
        for (int p = 0; p < c; p++) {
            if (!set[p])
                continue;
            if (t->pkg[p] == t->pkg[c]) {
                new_pkg = false;
                if (t->core[p] == t->core[c])
                    new_core = false;
            }
        }
        *sockets += new_pkg;
        *cores += new_core;
    }
}

/* ---------------------------------------------------------------- caches, NUMA, clock */

static void read_caches(const struct roots *r, const struct topo *t, int first, struct hw_cpu *cpu)
{
    int l3_index = -1;
    for (int idx = 0; idx < 16; idx++) {
        int64_t level = 0;
        char type[32], size[32];
        if (!read_i64(&level, "%s/devices/system/cpu/cpu%d/cache/index%d/level", r->sys, first,
                      idx))
            continue;
        if (!read_small(type, sizeof(type), "%s/devices/system/cpu/cpu%d/cache/index%d/type",
                        r->sys, first, idx) ||
            !read_small(size, sizeof(size), "%s/devices/system/cpu/cpu%d/cache/index%d/size",
                        r->sys, first, idx))
            continue;
        uint64_t bytes = parse_size(size);
        if (level == 1 && !strcmp(type, "Data"))
            cpu->l1d_bytes = bytes;
        else if (level == 2 && strcmp(type, "Instruction"))
            cpu->l2_bytes = bytes;
        else if (level == 3 && strcmp(type, "Instruction")) {
            cpu->l3_bytes = bytes;
            l3_index = idx;
        }
    }
    /* L3 per socket: an AMD socket has one L3 per CCD, so count the distinct L3 instances
     * (keyed by the first CPU that shares each) among the online CPUs of the first package. */
    if (l3_index >= 0 && cpu->l3_bytes > 0) {
        int instances = 0;
        bool *seen = sw_xcalloc(MAX_CPUS, sizeof(bool));
        for (int c = 0; c < t->max_cpu; c++) {
            if (!t->online[c] || t->pkg[c] != t->pkg[first])
                continue;
            char list[1024];
            if (!read_small(list, sizeof(list),
                            "%s/devices/system/cpu/cpu%d/cache/index%d/shared_cpu_list", r->sys, c,
                            l3_index))
                continue;
            long key = strtol(list, NULL, 10);
            if (key >= 0 && key < MAX_CPUS && !seen[key]) {
                seen[key] = true;
                instances++;
            }
        }
        free(seen);
        if (instances > 1)
            cpu->l3_bytes *= (uint64_t)instances;
    }
    if (cpu->l1d_bytes || cpu->l2_bytes || cpu->l3_bytes)
        cpu->known |= HW_CPU_CACHES;
}

static int count_numa_nodes(const struct roots *r)
{
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/devices/system/node", r->sys);
    DIR *dir = opendir(path);
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (!strncmp(e->d_name, "node", 4) && isdigit((unsigned char)e->d_name[4]))
            n++;
    closedir(dir);
    return n;
}

/* ---------------------------------------------------------------- cgroups */

struct cgroup_paths {
    char v2[PATH_MAX_BYTES];     /* "" when the process has no v2 entry */
    char v1_mem[PATH_MAX_BYTES]; /* path inside the v1 memory hierarchy */
    char v1_cpu[PATH_MAX_BYTES];
    bool has_v2, has_v1_mem, has_v1_cpu;
};

static bool has_controller(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n))
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

/* /proc/self/cgroup lines are "id:controllers:path"; v2 is "0::path". */
static void read_cgroup_paths(const struct roots *r, struct cgroup_paths *cg)
{
    memset(cg, 0, sizeof(*cg));
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/self/cgroup", r->proc);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        line[strcspn(line, "\r\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = '\0';
        *c2 = '\0';
        const char *ctrls = c1 + 1, *p = c2 + 1;
        if (!strcmp(line, "0") && !*ctrls) {
            sw_strlcpy(cg->v2, p, sizeof(cg->v2));
            cg->has_v2 = true;
        }
        if (has_controller(ctrls, "memory")) {
            sw_strlcpy(cg->v1_mem, p, sizeof(cg->v1_mem));
            cg->has_v1_mem = true;
        }
        if (has_controller(ctrls, "cpu")) {
            sw_strlcpy(cg->v1_cpu, p, sizeof(cg->v1_cpu));
            cg->has_v1_cpu = true;
        }
    }
    free(line);
    fclose(f);
}

/* Values at or above this are "no limit" (v1 writes 0x7ffffffffffff000). */
#define CGROUP_UNLIMITED (1ull << 62)

static bool parse_limit(const char *s, uint64_t *out)
{
    if (!strcmp(s, "max"))
        return false;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || v >= CGROUP_UNLIMITED)
        return false;
    *out = v;
    return true;
}

/* The directory of each level from `path` up to the hierarchy root: `fn` is called with
 * "<base><path>", then its parent, ..., then "<base>". */
static void walk_levels(const char *base, const char *path, void (*fn)(const char *dir, void *),
                        void *ctx)
{
    char p[PATH_MAX_BYTES];
    sw_strlcpy(p, path, sizeof(p));
    for (;;) {
        size_t len = strlen(p);
        while (len > 0 && p[len - 1] == '/')
            p[--len] = '\0';
        char dir[2 * PATH_MAX_BYTES];
        snprintf(dir, sizeof(dir), "%s%s", base, p);
        fn(dir, ctx);
        char *slash = strrchr(p, '/');
        if (!slash || len == 0)
            break;
        *slash = '\0';
    }
}

struct mem_walk {
    const char *limit_file, *usage_file;
    bool found;
    uint64_t limit;    /* smallest limit */
    uint64_t headroom; /* smallest limit - usage */
};

static void mem_level(const char *dir, void *ctx)
{
    struct mem_walk *w = ctx;
    char buf[64];
    uint64_t limit = 0;
    if (!read_small(buf, sizeof(buf), "%s/%s", dir, w->limit_file) || !parse_limit(buf, &limit))
        return;
    int64_t usage = 0;
    if (!read_i64(&usage, "%s/%s", dir, w->usage_file) || usage < 0)
        usage = 0;
    uint64_t room = (uint64_t)usage < limit ? limit - (uint64_t)usage : 0;
    if (!w->found || limit < w->limit)
        w->limit = limit;
    if (!w->found || room < w->headroom)
        w->headroom = room;
    w->found = true;
}

struct cpu_walk {
    bool v2;
    bool found;
    double cpus; /* smallest quota / period */
};

static void cpu_level(const char *dir, void *ctx)
{
    struct cpu_walk *w = ctx;
    double quota = 0, period = 0;
    if (w->v2) {
        char buf[64];
        if (!read_small(buf, sizeof(buf), "%s/cpu.max", dir) || !strncmp(buf, "max", 3))
            return;
        if (sscanf(buf, "%lf %lf", &quota, &period) != 2)
            return;
    } else {
        int64_t q = 0, p = 0;
        if (!read_i64(&q, "%s/cpu.cfs_quota_us", dir) || q <= 0 ||
            !read_i64(&p, "%s/cpu.cfs_period_us", dir) || p <= 0)
            return;
        quota = (double)q;
        period = (double)p;
    }
    if (quota <= 0 || period <= 0)
        return;
    double cpus = quota / period;
    if (!w->found || cpus < w->cpus)
        w->cpus = cpus;
    w->found = true;
}

/* Where the v2 hierarchy is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified
 * (hybrid). A fixed layout rather than /proc/self/mountinfo: it is what systemd and container
 * runtimes use. */
static void cgroup_v2_base(const struct roots *r, char *out, size_t n)
{
    struct stat st;
    snprintf(out, n, "%s/fs/cgroup/cgroup.controllers", r->sys);
    if (stat(out, &st) == 0)
        snprintf(out, n, "%s/fs/cgroup", r->sys);
    else
        snprintf(out, n, "%s/fs/cgroup/unified", r->sys);
}

static void cgroup_memory(const struct roots *r, const struct cgroup_paths *cg, struct mem_walk *w)
{
    char base[PATH_MAX_BYTES];
    if (cg->has_v2) {
        cgroup_v2_base(r, base, sizeof(base));
        w->limit_file = "memory.max";
        w->usage_file = "memory.current";
        walk_levels(base, cg->v2, mem_level, w);
    }
    if (cg->has_v1_mem) {
        snprintf(base, sizeof(base), "%s/fs/cgroup/memory", r->sys);
        w->limit_file = "memory.limit_in_bytes";
        w->usage_file = "memory.usage_in_bytes";
        walk_levels(base, cg->v1_mem, mem_level, w);
    }
}

static void cgroup_cpu(const struct roots *r, const struct cgroup_paths *cg, struct cpu_walk *w)
{
    char base[PATH_MAX_BYTES];
    if (cg->has_v2) {
        cgroup_v2_base(r, base, sizeof(base));
        w->v2 = true;
        walk_levels(base, cg->v2, cpu_level, w);
    }
    if (cg->has_v1_cpu) {
        static const char *const dirs[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
        w->v2 = false;
        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
            struct stat st;
            snprintf(base, sizeof(base), "%s/fs/cgroup/%s", r->sys, dirs[i]);
            if (stat(base, &st) == 0) {
                walk_levels(base, cg->v1_cpu, cpu_level, w);
                break;
            }
        }
    }
}

/* ---------------------------------------------------------------- host memory */

static void probe_memory(const struct roots *r, const struct cgroup_paths *cg,
                         struct hw_memory *mem)
{
    memset(mem, 0, sizeof(*mem));
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "%s/meminfo", r->proc);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            unsigned long long kb = 0;
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
                mem->total_bytes = kb * 1024;
                mem->known |= HW_MEM_TOTAL;
            } else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                mem->available_bytes = kb * 1024;
                mem->known |= HW_MEM_AVAILABLE;
            }
        }
        fclose(f);
    }
    mem->usable_bytes = (mem->known & HW_MEM_AVAILABLE) ? mem->available_bytes : mem->total_bytes;
    struct mem_walk w = {0};
    cgroup_memory(r, cg, &w);
    if (w.found) {
        mem->cgroup_limit_bytes = w.limit;
        mem->known |= HW_MEM_CGROUP;
        /* usable = min(available, cgroup limit - usage) at every level (advisor.h). */
        if (!mem->usable_bytes || w.headroom < mem->usable_bytes)
            mem->usable_bytes = w.headroom;
    }
}

/* ---------------------------------------------------------------- FMA loop */

/* Each kernel runs `iters` iterations of independent multiply-add chains (at least FMA
 * latency x ports of them) and returns the FP32 FLOPs done; the sum goes to *sink so the work
 * cannot be optimised away. acc = acc*m + a with m < 1 converges to a/(1-m) = 1: no overflow,
 * no denormals. */
typedef double (*fma_kernel_fn)(long iters, float *sink);
/* The kernels are not instrumented by ASan/UBSan: stack redzones and bounds checks would force
 * the accumulators out of registers and time memory instead of FMAs in sanitizer builds. */

#define FMA_M 0.99999f
#define FMA_A 1e-5f

#ifdef SW_X86
__attribute__((target("avx512f"), no_sanitize("address,undefined"))) static double
fma_avx512(long iters, float *sink)
{
    __m512 m = _mm512_set1_ps(FMA_M), a = _mm512_set1_ps(FMA_A);
    __m512 acc[16];
    for (int k = 0; k < 16; k++)
        acc[k] = _mm512_set1_ps(1.0f + k * 1e-3f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], m, a);
    }
    __m512 s = acc[0];
    for (int k = 1; k < 16; k++)
        s = _mm512_add_ps(s, acc[k]);
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"), no_sanitize("address,undefined"))) static double
fma_avx2(long iters, float *sink)
{
    __m256 m = _mm256_set1_ps(FMA_M), a = _mm256_set1_ps(FMA_A);
    __m256 acc[12];
    for (int k = 0; k < 12; k++)
        acc[k] = _mm256_set1_ps(1.0f + k * 1e-3f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], m, a);
    }
    float out[8];
    __m256 s = acc[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_ps(s, acc[k]);
    _mm256_storeu_ps(out, s);
    *sink = out[0] + out[7];
    return (double)iters * 12 * 8 * 2;
}

__attribute__((target("avx"), no_sanitize("address,undefined"))) static double fma_avx(long iters,
                                                                                       float *sink)
{
    __m256 m = _mm256_set1_ps(FMA_M), a = _mm256_set1_ps(FMA_A);
    __m256 acc[12];
    for (int k = 0; k < 12; k++)
        acc[k] = _mm256_set1_ps(1.0f + k * 1e-3f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm256_add_ps(_mm256_mul_ps(acc[k], m), a);
    }
    float out[8];
    __m256 s = acc[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_ps(s, acc[k]);
    _mm256_storeu_ps(out, s);
    *sink = out[0] + out[7];
    return (double)iters * 12 * 8 * 2;
}

__attribute__((no_sanitize("address,undefined"))) static double fma_sse(long iters, float *sink)
{
    __m128 m = _mm_set1_ps(FMA_M), a = _mm_set1_ps(FMA_A);
    __m128 acc[12];
    for (int k = 0; k < 12; k++)
        acc[k] = _mm_set1_ps(1.0f + k * 1e-3f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm_add_ps(_mm_mul_ps(acc[k], m), a);
    }
    float out[4];
    __m128 s = acc[0];
    for (int k = 1; k < 12; k++)
        s = _mm_add_ps(s, acc[k]);
    _mm_storeu_ps(out, s);
    *sink = out[0] + out[3];
    return (double)iters * 12 * 4 * 2;
}

#else
/* Portable fallback: scalar chains (the compiler may vectorise them). */
static double fma_generic(long iters, float *sink)
{
    float acc[16];
    for (int k = 0; k < 16; k++)
        acc[k] = 1.0f + k * 1e-3f;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 16; k++)
            acc[k] = acc[k] * FMA_M + FMA_A;
    float s = 0;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    *sink = s;
    return (double)iters * 16 * 2;
}
#endif

static fma_kernel_fn pick_kernel(unsigned isa)
{
#ifdef SW_X86
    if (isa & HW_ISA_AVX512F)
        return fma_avx512;
    if ((isa & HW_ISA_AVX2) && (isa & HW_ISA_FMA))
        return fma_avx2;
    if (isa & HW_ISA_AVX)
        return fma_avx;
    return fma_sse;
#else
    (void)isa;
    return fma_generic;
#endif
}

static volatile float fma_sink;

/* One parallel round of `iters` per thread; returns FLOP/s of the round. */
static double fma_round(fma_kernel_fn k, long iters, int threads)
{
    double flops = 0;
    float sink = 0;
    double t0 = sw_now_s();
#pragma omp parallel num_threads(threads) reduction(+ : flops, sink)
    {
        float s = 0;
        flops += k(iters, &s);
        sink += s;
    }
    double dt = sw_now_s() - t0;
    fma_sink = sink;
    return dt > 0 ? flops / dt : 0;
}

/* Best rate over rounds of about 10 ms each, within about `budget_s`. */
static double measure_fma(fma_kernel_fn k, int threads, double budget_s)
{
    long iters = 1024;
    for (;;) { /* size a round on one thread */
        double t0 = sw_now_s();
        float s;
        k(iters, &s);
        fma_sink = s;
        double dt = sw_now_s() - t0;
        if (dt >= 2e-3 || iters > (1L << 40)) {
            iters = (long)(iters * (10e-3 / (dt > 0 ? dt : 1e-3)));
            break;
        }
        iters *= 4;
    }
    if (iters < 1)
        iters = 1;
    double best = 0, start = sw_now_s();
    for (int round = 0; round < 3 || sw_now_s() - start < budget_s; round++) {
        double rate = fma_round(k, iters, threads);
        if (rate > best)
            best = rate;
        if (round > 50)
            break;
    }
    return best;
}

/* ---------------------------------------------------------------- triad */

/* STREAM triad a[i] = b[i] + q*c[i] over doubles, counted as 24 bytes per element (no
 * write-allocate), best of several repetitions within about `budget_s` (2.3). Arrays are
 * touched first by the same static schedule so pages land on the threads' NUMA nodes. Returns
 * 0 when the arrays cannot be allocated. */
static double measure_triad(size_t n, int threads, double budget_s)
{
    struct sw_err err;
    sw_err_init(&err);
    double *a = sw_try_malloc(n * sizeof(double), "triad array a", &err);
    double *b = a ? sw_try_malloc(n * sizeof(double), "triad array b", &err) : NULL;
    double *c = b ? sw_try_malloc(n * sizeof(double), "triad array c", &err) : NULL;
    double best = 0;
    if (c) {
        long len = (long)n;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long i = 0; i < len; i++) {
            a[i] = 0.0;
            b[i] = 1.0;
            c[i] = 2.0;
        }
        const double q = 3.0;
        double start = sw_now_s();
        for (int rep = 0; rep < 10; rep++) {
            double t0 = sw_now_s();
#pragma omp parallel for num_threads(threads) schedule(static)
            for (long i = 0; i < len; i++)
                a[i] = b[i] + q * c[i];
            double dt = sw_now_s() - t0;
            double rate = dt > 0 ? 24.0 * (double)n / dt : 0;
            if (rate > best)
                best = rate;
            if (rep >= 2 && sw_now_s() - start > budget_s)
                break;
        }
        if (a[n / 2] != 7.0) /* b + 3c = 7: the loop really ran */
            best = 0;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Array size: at least 4x the last-level cache (STREAM's rule), 32..256 MiB each, and the
 * three arrays within a quarter of usable memory. 0 = do not run. */
static size_t triad_elements(const struct hw_cpu *cpu, const struct hw_memory *mem)
{
    uint64_t llc = cpu->l3_bytes ? cpu->l3_bytes * (uint64_t)(cpu->sockets > 0 ? cpu->sockets : 1)
                                 : (cpu->l2_bytes ? cpu->l2_bytes : (32u << 20));
    uint64_t bytes = 4 * llc;
    if (bytes < (32u << 20))
        bytes = 32u << 20;
    if (bytes > (256u << 20))
        bytes = 256u << 20;
    if (mem->usable_bytes > 0 && 3 * bytes > mem->usable_bytes / 4)
        bytes = mem->usable_bytes / 12;
    if (bytes < (8u << 20))
        return 0;
    return (size_t)(bytes / sizeof(double));
}

/* ---------------------------------------------------------------- hwloc fallback */

#ifdef SW_HAVE_HWLOC
/* Topology and NUMA from hwloc when /sys did not give them (restricted containers). */
static void hwloc_fill(struct hw_cpu *cpu)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) < 0)
        return;
    if (hwloc_topology_load(topo) == 0) {
        int pkgs = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
        int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        int pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
        int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        if (!(cpu->known & HW_CPU_TOPOLOGY) && pkgs > 0 && cores > 0 && pus > 0) {
            cpu->sockets = pkgs;
            cpu->cores_per_socket = cores / pkgs;
            cpu->threads_per_core = pus / cores;
            cpu->logical_cpus = pus;
            cpu->known |= HW_CPU_TOPOLOGY;
        }
        if (!(cpu->known & HW_CPU_NUMA) && numa > 0) {
            cpu->numa_nodes = numa;
            cpu->known |= HW_CPU_NUMA;
        }
    }
    hwloc_topology_destroy(topo);
}
#endif

/* ---------------------------------------------------------------- the probe */

int hw_probe_cpu(struct hardware *hw, bool measure, struct sw_err *err)
{
    struct roots r;
    int rc = roots_get(&r, err);
    if (rc < 0)
        return rc;
    struct hw_cpu *cpu = &hw->cpu;
    memset(cpu, 0, sizeof(*cpu));

    /* Identity and ISA. */
    struct cpuinfo ci;
    read_cpuinfo(&r, &ci);
    char brand[HW_NAME_MAX] = "";
    bool isa_done = false;
    if (r.fixture_proc) {
        sw_strlcpy(cpu->vendor, ci.vendor, sizeof(cpu->vendor));
        cpu->family = ci.family;
        cpu->model_id = ci.model;
        if (ci.have_flags) {
            cpu->isa = ci.flags_isa;
            isa_done = true;
        }
    } else {
#ifdef SW_X86
        cpu->isa = cpuid_probe(cpu->vendor, sizeof(cpu->vendor), &cpu->family, &cpu->model_id,
                               brand, sizeof(brand));
        isa_done = cpu->vendor[0] != '\0';
#else
        sw_strlcpy(cpu->vendor, ci.vendor, sizeof(cpu->vendor));
        cpu->family = ci.family;
        cpu->model_id = ci.model;
        cpu->isa = ci.flags_isa;
        isa_done = ci.have_flags;
#endif
    }
    if (isa_done)
        cpu->known |= HW_CPU_ISA;
    sw_strlcpy(cpu->model, ci.model_name[0] ? ci.model_name : brand, sizeof(cpu->model));
    if (cpu->model[0])
        cpu->known |= HW_CPU_MODEL;

    /* Topology, and the CPUs this process may run on. */
    struct topo t;
    read_topology(&r, &t);
    bool *usable = sw_xcalloc(MAX_CPUS, sizeof(bool));
    int first = -1, n_online = 0;
    for (int c = 0; c < t.max_cpu; c++)
        if (t.online[c]) {
            n_online++;
            usable[c] = true;
            if (first < 0)
                first = c;
        }
    if (!r.fixture_any && t.max_cpu > 0) {
        cpu_set_t *mask = CPU_ALLOC(MAX_CPUS);
        size_t size = CPU_ALLOC_SIZE(MAX_CPUS);
        if (mask) {
            CPU_ZERO_S(size, mask);
            if (sched_getaffinity(0, size, mask) == 0)
                for (int c = 0; c < t.max_cpu; c++)
                    usable[c] = usable[c] && CPU_ISSET_S(c, size, mask);
            CPU_FREE(mask);
        }
    }
    int usable_cpus = 0;
    for (int c = 0; c < t.max_cpu; c++)
        usable_cpus += usable[c];
    int usable_cores = usable_cpus;
    if (n_online > 0) {
        cpu->logical_cpus = n_online;
        if (t.have_topology) {
            int sockets = 0, cores = 0, u_sockets = 0;
            count_cores(&t, t.online, &sockets, &cores);
            count_cores(&t, usable, &u_sockets, &usable_cores);
            cpu->sockets = sockets;
            cpu->cores_per_socket = cores / sockets;
            cpu->threads_per_core = (n_online + cores - 1) / cores;
            cpu->known |= HW_CPU_TOPOLOGY;
        }
    } else if (!r.fixture_any) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cpu->logical_cpus = n > 0 ? (int)n : 1;
        usable_cpus = usable_cores = cpu->logical_cpus;
    }
    struct cgroup_paths cg;
    read_cgroup_paths(&r, &cg);
    struct cpu_walk cw = {0};
    cgroup_cpu(&r, &cg, &cw);
    if (cw.found) {
        int quota_cpus = (int)ceil(cw.cpus - 1e-9);
        if (quota_cpus < 1)
            quota_cpus = 1;
        if (usable_cpus > quota_cpus)
            usable_cpus = quota_cpus;
        if (usable_cores > quota_cpus)
            usable_cores = quota_cpus;
    }
    cpu->usable_cpus = usable_cpus;

    if (first >= 0)
        read_caches(&r, &t, first, cpu);
    int numa = count_numa_nodes(&r);
    if (numa > 0) {
        cpu->numa_nodes = numa;
        cpu->known |= HW_CPU_NUMA;
    }
#ifdef SW_HAVE_HWLOC
    if (!r.fixture_any &&
        (cpu->known & (HW_CPU_TOPOLOGY | HW_CPU_NUMA)) != (HW_CPU_TOPOLOGY | HW_CPU_NUMA)) {
        hwloc_fill(cpu);
        if (!t.have_topology && (cpu->known & HW_CPU_TOPOLOGY))
            usable_cores = cpu->sockets * cpu->cores_per_socket < usable_cpus
                               ? cpu->sockets * cpu->cores_per_socket
                               : usable_cpus;
    }
#endif

    /* Clock: cpufreq's maximum, else "cpu MHz" (VMs often have no cpufreq). */
    int64_t khz = 0;
    if (first >= 0 &&
        read_i64(&khz, "%s/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", r.sys, first) &&
        khz > 0)
        cpu->clock_hz = khz * 1e3;
    else if (ci.mhz > 0)
        cpu->clock_hz = ci.mhz * 1e6;
    if (cpu->clock_hz > 0)
        cpu->known |= HW_CPU_CLOCK;

    probe_memory(&r, &cg, &hw->mem);

    if (usable_cores < 1)
        usable_cores = 1;
    cpu->fp32_flop_per_cycle =
        isa_done ? hw_cpu_fp32_flop_per_cycle(cpu->vendor, cpu->family, cpu->model_id, cpu->isa)
                 : 0;

    /* Measurements time this machine, so never against a fixture tree. */
    if (measure && !r.fixture_any) {
        fma_kernel_fn k = pick_kernel(cpu->isa);
        cpu->measured_fp32_flops_1core = measure_fma(k, 1, 0.1);
        cpu->measured_fp32_flops = measure_fma(k, usable_cpus > 0 ? usable_cpus : 1, 0.1);
        if (cpu->measured_fp32_flops_1core > 0) {
            cpu->known |= HW_CPU_MEASURED;
            /* The effective clock = measured / table FLOP per cycle (9.4): VMs report a
             * nominal "cpu MHz" and hide turbo, so a measured clock replaces the reported
             * one, and the peak below follows it. */
            if (cpu->fp32_flop_per_cycle > 0) {
                cpu->clock_hz = cpu->measured_fp32_flops_1core / cpu->fp32_flop_per_cycle;
                cpu->known |= HW_CPU_CLOCK;
            }
        }
        size_t n = triad_elements(cpu, &hw->mem);
        if (n > 0) {
            cpu->triad_bytes_per_s = measure_triad(n, usable_cpus > 0 ? usable_cpus : 1, 0.15);
            if (cpu->triad_bytes_per_s > 0) {
                cpu->known |= HW_CPU_TRIAD;
                hw->host_mem_bytes_per_s = cpu->triad_bytes_per_s;
            }
        }
    }

    /* Table peak (9.4): usable physical cores x FLOP/cycle x clock. */
    if (cpu->fp32_flop_per_cycle > 0 && cpu->clock_hz > 0) {
        cpu->peak_fp32_flops_per_core = cpu->fp32_flop_per_cycle * cpu->clock_hz;
        cpu->peak_fp32_flops = usable_cores * cpu->peak_fp32_flops_per_core;
        cpu->peak_bf16_flops =
            usable_cores * cpu->clock_hz * bf16_flop_per_cycle(cpu->isa, cpu->fp32_flop_per_cycle);
        cpu->known |= HW_CPU_PEAK;
    }
    free(usable);
    topo_release(&t);
    return 0;
}
