/* Tests of advisor/calibrate.c: the derivations of `scalewise calibrate` from fixed (synthetic)
 * measurements are exact (eta_f = rate / peak, eta_mem = AdamW / triad, eta_mem_decode = the
 * 1-token GEMM / triad (eta_mem where it was not measured or a file predates it), the M_sat
 * least-squares
 * rule with its clamps); derivation refuses missing measurements; save -> load gives the same
 * struct and save -> load -> save the same bytes; applying a file sets the efficiencies for the
 * matching device only and leaves memory estimates unchanged; a file from another CPU is
 * recognised; and every tests/data/calib/bad_*.yaml fails at the line, column and message its
 * first line announces ("# expect: L:C: text"). */
#include "expect_file.h"
#include "harness.h"

#include <dirent.h>
#include <unistd.h>

#include "advisor/advisor.h"
#include "advisor/advisor_int.h"

static void repo_path(char *out, size_t n, const char *rel)
{
    char root[512];
    snprintf(root, sizeof(root), "%s", SW_PROFILES_DIR);
    char *slash = strrchr(root, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, n, "%s/%s", root, rel);
}

static struct calib_gemm gemm(int tokens, double rate)
{
    struct calib_gemm g = {tokens, rate, 0.125, 5};
    return g;
}

/* fp32 CPU: peak 200 GFLOP/s; forward rates follow 100 GFLOP/s * min(1, N/100) exactly. */
static void synthetic_cpu(struct calib_cpu *c)
{
    memset(c, 0, sizeof(*c));
    c->dtype = HW_DT_FP32;
    c->gemm_c = 768;
    c->gemm_oc = 3072;
    c->peak_fp32_flops = 200e9;
    c->peak_bf16_flops = 400e9;
    c->triad_bytes_per_s = 20e9;
    c->n_fp32 = 4;
    c->fp32[0] = gemm(16, 16e9);
    c->fp32[1] = gemm(64, 64e9);
    c->fp32[2] = gemm(256, 100e9);
    c->fp32[3] = gemm(1024, 100e9);
    c->n_bf16 = 4;
    c->bf16[0] = gemm(16, 40e9);
    c->bf16[1] = gemm(64, 160e9);
    c->bf16[2] = gemm(256, 300e9);
    c->bf16[3] = gemm(1024, 300e9);
    c->train = gemm(1024, 50e9);
    c->optim_state_bytes = 64.0 * 1024 * 1024;
    c->optim_bytes_per_s = 10e9;
    c->optim_spread = 0.5;
    c->decode_weight_bytes = 64.0 * 1024 * 1024;
    c->decode_bytes_per_s = 3e9; /* decode's own efficiency, eta_mem_decode */
    c->decode_spread = 0.25;
    c->call_matmul_s = 2e-6; /* applied as measured */
    c->call_kernel_s = 5e-7;
    c->attn = gemm(256, 3e10); /* applied as measured: attn_flops_per_s */
}

static void test_derive_cpu(void)
{
    struct calib_cpu c;
    struct sw_err err;
    sw_err_init(&err);
    synthetic_cpu(&c);
    CHECK_OK(calib_derive_cpu(&c, &err), &err);
    CHECK(c.eta_flops_prefill == 0.5); /* 100 / 200 */
    CHECK(c.eta_flops_train == 0.25);  /* 50 / 200 */
    CHECK(c.eta_mem == 0.5);           /* AdamW 10 / triad 20 */
    CHECK(c.eta_mem_decode == 0.15);   /* the 1-token GEMM 3 / triad 20 */
    /* f = 0.16 at 16 and 0.64 at 64: (16^2 + 64^2) / (16*0.16 + 64*0.64) = 100 */
    CHECK_NEAR(c.m_sat_tokens, 100.0, 1e-9);

    /* bf16: the bf16 series against the bf16 peak. */
    synthetic_cpu(&c);
    c.dtype = HW_DT_BF16;
    c.train = gemm(1024, 100e9);
    CHECK_OK(calib_derive_cpu(&c, &err), &err);
    CHECK(c.eta_flops_prefill == 0.75); /* 300 / 400 */
    CHECK(c.eta_flops_train == 0.25);   /* 100 / 400 */
    CHECK_NEAR(c.m_sat_tokens, 4352.0 / (16 * (40.0 / 300) + 64 * (160.0 / 300)), 1e-9);

    /* Missing measurements are refused, naming what is missing. */
    synthetic_cpu(&c);
    c.peak_fp32_flops = 0;
    CHECK_INT(calib_derive_cpu(&c, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "peak") != NULL);
    synthetic_cpu(&c);
    c.optim_bytes_per_s = 0;
    CHECK_INT(calib_derive_cpu(&c, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "eta_mem") != NULL);
    synthetic_cpu(&c);
    c.decode_bytes_per_s = 0; /* not measured: decode falls back to eta_mem */
    CHECK_OK(calib_derive_cpu(&c, &err), &err);
    CHECK(c.eta_mem_decode == c.eta_mem);
    synthetic_cpu(&c);
    c.n_fp32 = 0;
    CHECK_INT(calib_derive_cpu(&c, &err), SW_EINVAL);
    synthetic_cpu(&c);
    c.train.flops_per_s = 0;
    CHECK_INT(calib_derive_cpu(&c, &err), SW_EINVAL);
    synthetic_cpu(&c);
    c.dtype = HW_DT_FP16;
    CHECK_INT(calib_derive_cpu(&c, &err), SW_EINVAL);
}

static void test_fit_m_sat(void)
{
    struct calib_gemm g[4] = {gemm(16, 1e9), gemm(64, 4e9), gemm(256, 16e9), gemm(1024, 16e9)};
    /* f = 1/16 and 1/4 at 16 and 64 (256 is on the plateau): (256 + 4096) / (1 + 16) = 256 */
    CHECK_NEAR(calib_fit_m_sat(g, 4), 256.0, 1e-9);
    /* No point below 0.95 of the largest: no falloff seen, N_min. */
    struct calib_gemm flat[3] = {gemm(16, 9.6e9), gemm(64, 10e9), gemm(256, 10e9)};
    CHECK(calib_fit_m_sat(flat, 3) == 16.0);
    /* A noisy small size faster than the largest is ignored, not fitted. */
    struct calib_gemm noisy[3] = {gemm(16, 2e9), gemm(64, 30e9), gemm(256, 10e9)};
    CHECK(calib_fit_m_sat(noisy, 3) == 80.0); /* 16^2 / (16 * 0.2) */
    /* Clamped to the largest size when the falloff continues past it. */
    struct calib_gemm steep[2] = {gemm(16, 0.01e9), gemm(64, 10e9)};
    CHECK(calib_fit_m_sat(steep, 2) == 64.0);
    /* Degenerate inputs. */
    CHECK(calib_fit_m_sat(g, 1) == 16.0);
    CHECK(calib_fit_m_sat(g, 0) == 0.0);
}

static void test_derive_gpu(void)
{
    struct calib_gpu g;
    struct sw_err err;
    sw_err_init(&err);
    memset(&g, 0, sizeof(g));
    g.peak_bf16_flops = 1000e12;
    g.mem_bw_bytes_per_s = 4e12;
    g.gemm = gemm(8192, 750e12);
    g.d2d_bytes_per_s = 3e12;
    CHECK_OK(calib_derive_gpu(&g, &err), &err);
    CHECK(g.eta_flops_train == 0.75);
    CHECK(g.eta_flops_prefill == 0.75);
    CHECK(g.eta_mem == 0.75);
    CHECK(g.eta_mem_decode == 0.75); /* no 1-token GEMM measured: eta_mem */
    g.decode_bytes_per_s = 2e12;
    CHECK_OK(calib_derive_gpu(&g, &err), &err);
    CHECK(g.eta_mem_decode == 0.5);
    /* The training path's GEMMs, when timed, set eta_flops_train (prefill keeps the large one). */
    g.train = gemm(8192, 250e12);
    CHECK_OK(calib_derive_gpu(&g, &err), &err);
    CHECK(g.eta_flops_train == 0.25 && g.eta_flops_prefill == 0.75);
    g.peak_bf16_flops = 0; /* a GPU the probe has no peak for */
    CHECK_INT(calib_derive_gpu(&g, &err), SW_EINVAL);
}

static void sample_file(struct calib_file *f, bool with_gpu)
{
    struct sw_err err;
    calib_init(f);
    snprintf(f->host, sizeof(f->host), "node-7");
    snprintf(f->date, sizeof(f->date), "2025-01-02T03:04:05Z");
    snprintf(f->cpu_model, sizeof(f->cpu_model), "AMD EPYC");
    snprintf(f->cpu_vendor, sizeof(f->cpu_vendor), "AuthenticAMD");
    f->cpu_family = 26;
    f->cpu_model_id = 2;
    f->cores = 2;
    f->threads = 2;
    f->quick = true;
    synthetic_cpu(&f->cpu);
    f->cpu.train.spread = 1.0 / 3.0; /* not exact in decimal: %.17g must round-trip it */
    sw_err_init(&err);
    calib_derive_cpu(&f->cpu, &err);
    f->cpu.present = true;
    if (with_gpu) {
        snprintf(f->gpu.name, sizeof(f->gpu.name), "NVIDIA H100 80GB HBM3");
        f->gpu.peak_bf16_flops = 989.4e12;
        f->gpu.mem_bw_bytes_per_s = 3.35e12;
        f->gpu.gemm = gemm(8192, 701.3e12);
        f->gpu.d2d_bytes = 1073741824.0;
        f->gpu.d2d_bytes_per_s = 2.71e12;
        f->gpu.d2d_spread = 0.02;
        f->gpu.decode_weight_bytes = 134217728.0;
        f->gpu.decode_bytes_per_s = 1.9e12;
        f->gpu.decode_spread = 0.03;
        f->gpu.call_matmul_s = 1.5e-5;
        f->gpu.call_kernel_s = 4e-6;
        f->gpu.attn = gemm(1024, 9.5e13);
        f->gpu.train = gemm(8192, 3.1e14);
        calib_derive_gpu(&f->gpu, &err);
        f->gpu.present = true;
    }
}

static bool same_gemm(const struct calib_gemm *a, const struct calib_gemm *b)
{
    return a->tokens == b->tokens && a->flops_per_s == b->flops_per_s &&
           a->spread == b->spread && a->reps == b->reps;
}

static void check_same(const struct calib_file *a, const struct calib_file *b)
{
    CHECK_STR(a->host, b->host);
    CHECK_STR(a->date, b->date);
    CHECK_STR(a->cpu_model, b->cpu_model);
    CHECK_STR(a->cpu_vendor, b->cpu_vendor);
    CHECK_INT(a->cpu_family, b->cpu_family);
    CHECK_INT(a->cpu_model_id, b->cpu_model_id);
    CHECK_INT(a->cores, b->cores);
    CHECK_INT(a->threads, b->threads);
    CHECK(a->quick == b->quick);
    const struct calib_cpu *x = &a->cpu, *y = &b->cpu;
    CHECK(x->present == y->present);
    CHECK_INT(x->dtype, y->dtype);
    CHECK_INT(x->gemm_c, y->gemm_c);
    CHECK_INT(x->gemm_oc, y->gemm_oc);
    CHECK(x->peak_fp32_flops == y->peak_fp32_flops && x->peak_bf16_flops == y->peak_bf16_flops);
    CHECK(x->triad_bytes_per_s == y->triad_bytes_per_s);
    CHECK_INT(x->n_fp32, y->n_fp32);
    CHECK_INT(x->n_bf16, y->n_bf16);
    for (int i = 0; i < x->n_fp32 && i < y->n_fp32; i++)
        CHECK(same_gemm(&x->fp32[i], &y->fp32[i]));
    for (int i = 0; i < x->n_bf16 && i < y->n_bf16; i++)
        CHECK(same_gemm(&x->bf16[i], &y->bf16[i]));
    CHECK(same_gemm(&x->train, &y->train));
    CHECK(x->optim_state_bytes == y->optim_state_bytes);
    CHECK(x->optim_bytes_per_s == y->optim_bytes_per_s && x->optim_spread == y->optim_spread);
    CHECK(x->decode_weight_bytes == y->decode_weight_bytes);
    CHECK(x->decode_bytes_per_s == y->decode_bytes_per_s);
    CHECK(x->decode_spread == y->decode_spread);
    CHECK(x->m_sat_tokens == y->m_sat_tokens);
    CHECK(x->eta_flops_train == y->eta_flops_train);
    CHECK(x->eta_flops_prefill == y->eta_flops_prefill);
    CHECK(x->eta_mem == y->eta_mem);
    CHECK(x->eta_mem_decode == y->eta_mem_decode);
    CHECK(x->call_matmul_s == y->call_matmul_s && x->call_kernel_s == y->call_kernel_s);
    CHECK(same_gemm(&x->attn, &y->attn));
    const struct calib_gpu *g = &a->gpu, *h = &b->gpu;
    CHECK(g->present == h->present);
    if (g->present && h->present) {
        CHECK_STR(g->name, h->name);
        CHECK(g->peak_bf16_flops == h->peak_bf16_flops);
        CHECK(g->mem_bw_bytes_per_s == h->mem_bw_bytes_per_s);
        CHECK(same_gemm(&g->gemm, &h->gemm));
        CHECK(g->d2d_bytes == h->d2d_bytes && g->d2d_bytes_per_s == h->d2d_bytes_per_s);
        CHECK(g->d2d_spread == h->d2d_spread);
        CHECK(g->eta_flops_train == h->eta_flops_train && g->eta_mem == h->eta_mem);
        CHECK(g->decode_weight_bytes == h->decode_weight_bytes);
        CHECK(g->decode_bytes_per_s == h->decode_bytes_per_s);
        CHECK(g->decode_spread == h->decode_spread && g->eta_mem_decode == h->eta_mem_decode);
        CHECK(g->call_matmul_s == h->call_matmul_s && g->call_kernel_s == h->call_kernel_s);
        CHECK(same_gemm(&g->attn, &h->attn) && same_gemm(&g->train, &h->train));
    }
}

static void test_round_trip(void)
{
    char dir[] = "/tmp/sw_test_calib_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p1[128], p2[128];
    snprintf(p1, sizeof(p1), "%s/a.yaml", dir);
    snprintf(p2, sizeof(p2), "%s/b.yaml", dir);
    struct calib_file *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    struct sw_err err;
    sw_err_init(&err);
    for (int gpu = 0; gpu < 2; gpu++) {
        sample_file(a, gpu == 1);
        CHECK_OK(calib_save_file(p1, a, &err), &err);
        calib_init(b);
        CHECK_OK(calib_load_file(p1, b, &err), &err);
        check_same(a, b);
        CHECK_OK(calib_save_file(p2, b, &err), &err);
        char *t1 = NULL, *t2 = NULL;
        size_t n1 = 0, n2 = 0;
        CHECK_OK(sw_read_file(p1, 1 << 20, &t1, &n1, &err), &err);
        CHECK_OK(sw_read_file(p2, 1 << 20, &t2, &n2, &err), &err);
        CHECK(t1 && t2 && n1 == n2 && memcmp(t1, t2, n1) == 0);
        CHECK(t1 && strstr(t1, "scalewise_calibration: 1\n") != NULL);
        free(t1);
        free(t2);
    }
    /* A failed load leaves the caller's struct untouched. */
    sample_file(a, false);
    *b = *a;
    static const char bad[] = "scalewise_calibration: 1\nmachine: {}\ncpu: {dtype: fp32}\n";
    CHECK(calib_load_string(bad, sizeof(bad) - 1, "inline", b, &err) < 0);
    CHECK(memcmp(a, b, sizeof(*a)) == 0);
    CHECK_INT(calib_load_file("/nonexistent/cal.yaml", b, &err), SW_ENOENT);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    free(a);
    free(b);
}

static void test_apply(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct calib_file *f = malloc(sizeof(*f));
    struct hardware *cpu = malloc(sizeof(*cpu)), *gpu = malloc(sizeof(*gpu));
    struct model_desc m;
    sample_file(f, false);
    CHECK_OK(profile_load_hardware("cpu-avx2-2c", cpu, &err), &err);
    CHECK_OK(profile_load_hardware("h100-sxm", gpu, &err), &err);
    CHECK_OK(profile_load_model("gpt2-124m", &m, &err), &err);

    struct advisor_calib def, cal;
    advisor_calib_default(&def);
    cal = def;
    CHECK(calib_apply(f, cpu, &cal));
    CHECK(cal.calibrated);
    CHECK(cal.eta_flops_train == 0.25 && cal.eta_flops_prefill == 0.5 && cal.eta_mem == 0.5);
    CHECK(cal.eta_mem_decode == 0.15);
    CHECK(cal.call_matmul_s == 2e-6 && cal.call_kernel_s == 5e-7 && def.call_matmul_s == 0.0);
    CHECK(cal.attn_flops_per_s == 3e10 && def.attn_flops_per_s == 0.0);
    CHECK(cal.eta_comm_intra == def.eta_comm_intra && cal.frag_margin == def.frag_margin);
    /* The fitted M_sat becomes the speed model's CPU falloff. */
    CHECK(f->cpu.m_sat_tokens > 0 && cal.m_sat_tokens == f->cpu.m_sat_tokens);
    CHECK(def.m_sat_tokens == 0.0);

    /* The efficiencies change the speed, never the memory (the CPU process baseline stays). */
    struct workload w;
    struct strategy s;
    workload_init(&w);
    strategy_init(&s);
    w.seq = 256;
    s.device = DEVICE_CPU;
    s.precision = PREC_FP32;
    s.attention = ATTN_NAIVE;
    s.micro_batch = 4;
    struct estimate *e0 = malloc(sizeof(*e0)), *e1 = malloc(sizeof(*e1));
    CHECK_OK(advisor_estimate(&m, cpu, &w, &s, &def, e0, &err), &err);
    CHECK_OK(advisor_estimate(&m, cpu, &w, &s, &cal, e1, &err), &err);
    CHECK(e0->dev.total == e1->dev.total && e0->host_total_bytes == e1->host_total_bytes);
    /* Compute-bound CPU training: eta_f 0.5 -> 0.25 doubles the compute time. */
    CHECK_REL(e1->compute_s, 2.0 * e0->compute_s, 1e-9);
    free(e0);
    free(e1);

    /* A CPU-only file does not touch a GPU node's constants. */
    cal = def;
    CHECK(!calib_apply(f, gpu, &cal));
    CHECK(memcmp(&cal, &def, sizeof(cal)) == 0);
    sample_file(f, true);
    CHECK(calib_apply(f, gpu, &cal));
    CHECK(cal.eta_flops_train == f->gpu.eta_flops_train && cal.eta_mem == f->gpu.eta_mem);
    CHECK(cal.eta_mem_decode == f->gpu.eta_mem_decode && f->gpu.eta_mem_decode < f->gpu.eta_mem);
    CHECK(cal.call_matmul_s == 1.5e-5 && cal.call_kernel_s == 4e-6);
    CHECK(cal.attn_flops_per_s == 9.5e13);
    CHECK(f->gpu.eta_flops_train == 3.1e14 / 989.4e12); /* the training GEMMs' rate */
    CHECK(cal.runtime_overhead_bytes == def.runtime_overhead_bytes);

    /* Another machine: the profile's Zen 3 (family 25) against the file's family 26. */
    char why[256];
    CHECK(calib_other_machine(f, cpu, why, sizeof(why)));
    CHECK(strstr(why, "family 26") != NULL && strstr(why, "family 25") != NULL);
    f->cpu_family = cpu->cpu.family;
    f->cpu_model_id = cpu->cpu.model_id;
    snprintf(f->cpu_model, sizeof(f->cpu_model), "%s", cpu->cpu.model);
    CHECK(!calib_other_machine(f, cpu, why, sizeof(why)));
    CHECK(!calib_other_machine(f, gpu, why, sizeof(why)) ==
          !strcmp(f->gpu.name, gpu->gpus[0].name));
    free(f);
    free(cpu);
    free(gpu);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_bad_files(void)
{
    char dir[600];
    repo_path(dir, sizeof(dir), "tests/data/calib");
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open %s", dir);
    if (!dp)
        return;
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && n < 64)
        if (!strncmp(de->d_name, "bad_", 4) && strstr(de->d_name, ".yaml"))
            names[n++] = strdup(de->d_name);
    closedir(dp);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    CHECK_MSG(n >= 8, "%d bad_*.yaml files in %s", n, dir);
    struct calib_file *c = malloc(sizeof(*c));
    for (int i = 0; i < n; i++) {
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct sw_err err;
        sw_err_init(&err);
        int want_line = 0, want_col = 0;
        char want_msg[256] = "", why[600];
        if (expect_file_read(path, &want_line, &want_col, want_msg, sizeof(want_msg), why,
                             sizeof(why)) < 0) {
            CHECK_MSG(0, "%s: %s", names[i], why);
            continue;
        }
        int rc = calib_load_file(path, c, &err);
        CHECK_MSG(rc < 0, "%s: loaded, expected an error", names[i]);
        if (rc < 0)
            CHECK_MSG(err.line == want_line && err.col == want_col && want_msg[0] &&
                          strstr(err.msg, want_msg) && strstr(err.file, names[i]),
                      "%s: got %s:%d:%d: %s; expected %d:%d: ...%s...", names[i], err.file,
                      err.line, err.col, err.msg, want_line, want_col, want_msg);
        free(names[i]);
    }
    /* The hand-written example beside them loads. */
    char good[700];
    struct sw_err err;
    sw_err_init(&err);
    repo_path(good, sizeof(good), "tests/data/calib/good_cpu.yaml");
    CHECK_OK(calib_load_file(good, c, &err), &err);
    CHECK(c->cpu.present && !c->gpu.present && c->cpu.eta_mem == 0.5);
    /* It predates eta_mem_decode: decode then reads at eta_mem, as before. */
    CHECK(c->cpu.eta_mem_decode == 0.5);
    CHECK(c->cpu.call_matmul_s == 0.0 && c->cpu.call_kernel_s == 0.0); /* and no per-call costs */
    CHECK(c->cpu.attn.flops_per_s == 0.0); /* nor an attention rate */
    free(c);
}

int main(void)
{
    RUN(test_derive_cpu);
    RUN(test_fit_m_sat);
    RUN(test_derive_gpu);
    RUN(test_round_trip);
    RUN(test_apply);
    RUN(test_bad_files);
    return harness_finish("test_calibrate");
}
