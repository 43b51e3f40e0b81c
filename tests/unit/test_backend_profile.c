/* The profiling backend (executor/backend_profile.c): its table has exactly the inner
 * backend's non-NULL entries (the CPU backend's and the device simulator's), the untimed ones
 * are the inner's own pointers, a tiny GPT-2 trained through it (forward, backward, clipping,
 * AdamW) gives the unprofiled model's bits, the calls of entries whose count the architecture
 * fixes are counted exactly, times are non-negative and add up to the totals, pausing stops
 * the counting, and profile.yaml carries its keys (read back with the advisor's YAML reader). */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "advisor/advisor_int.h"
#include "executor/backend.h"
#include "executor/executor.h"

#include "harness.h"

#define BATCH 2
#define SEQ 16
#define NL 2

static int tokens[BATCH * SEQ], targets[BATCH * SEQ];

static float *copyf(const float *src, size_t n)
{
    float *p = sw_xmalloc(n * sizeof(float) + 1);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static struct model_desc tiny_gpt2(void)
{
    struct model_desc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "tiny-gpt2");
    d.arch = MODEL_ARCH_GPT2;
    d.n_layers = NL;
    d.hidden = 32;
    d.n_heads = 4;
    d.n_kv_heads = 4;
    d.head_dim = 8;
    d.ffn = 128;
    d.vocab = 97;
    d.max_pos = 32;
    model_fill_defaults(&d);
    return d;
}

/* The function pointers of a table, in order (after name, flash_max_hs and host_memory). */
#define N_FN ((sizeof(struct backend) - offsetof(struct backend, alloc)) / sizeof(void (*)(void)))
static void fn_ptrs(const struct backend *b, void (*out[])(void))
{
    memcpy(out, (const char *)b + offsetof(struct backend, alloc), N_FN * sizeof(out[0]));
}

static void check_table(const struct backend *inner)
{
    const struct backend *p = backend_profiled(inner);
    CHECK(p != inner);
    CHECK_STR(p->name, inner->name);
    CHECK_INT(p->flash_max_hs, inner->flash_max_hs);
    CHECK(p->host_memory == inner->host_memory);
    void (*a[N_FN])(void), (*b[N_FN])(void);
    fn_ptrs(inner, a);
    fn_ptrs(p, b);
    size_t null_diff = 0, wrapped = 0;
    for (size_t i = 0; i < N_FN; i++) {
        if ((a[i] == NULL) != (b[i] == NULL))
            null_diff++;
        if (a[i] && a[i] != b[i])
            wrapped++;
    }
    CHECK_INT(null_diff, 0);
    CHECK(wrapped > 40); /* the kernels, copies and optimizer entries */
    /* Untimed: the inner's own pointers. */
    CHECK(p->alloc == inner->alloc && p->free == inner->free);
    CHECK(p->mem_stats == inner->mem_stats && p->synchronize == inner->synchronize);
    CHECK(p->has_native_bf16 == inner->has_native_bf16);
    CHECK(p->attention_backward_scratch_bytes == inner->attention_backward_scratch_bytes);
    CHECK(p->matmul_bf16_scratch_bytes == inner->matmul_bf16_scratch_bytes);
    /* Timed: wrappers. */
    CHECK(p->matmul_forward != inner->matmul_forward && p->memcpy != inner->memcpy);
    CHECK(p->softmax_ce != inner->softmax_ce && p->grad_norm != inner->grad_norm);
    /* Wrapping the table itself does not wrap twice. */
    CHECK(backend_profiled(p) == p);
}

static void test_table(void)
{
    check_table(backend_cpu());
    check_table(backend_devsim());
    /* The simulator's fused MLP matmul exists there only: the wrapper keeps the difference. */
    CHECK(backend_profiled(backend_cpu())->matmul_gelu_forward == NULL);
    CHECK(backend_profiled(backend_devsim())->matmul_gelu_forward != NULL);
}

static const struct backend_profile_row *entry(const struct backend_profile_report *r,
                                               const char *name)
{
    for (int i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i].name, name) == 0)
            return &r->entries[i];
    return NULL;
}

static uint64_t calls_of(const struct backend_profile_report *r, const char *name)
{
    const struct backend_profile_row *e = entry(r, name);
    return e ? e->calls : 0;
}

/* Sorted, non-negative, and the rows add up to the totals. */
static void check_sums(const struct backend_profile_report *r)
{
    double es = 0, cs = 0, ep = 0;
    uint64_t ec = 0, cc = 0;
    int bad = 0;
    for (int i = 0; i < r->n_entries; i++) {
        const struct backend_profile_row *e = &r->entries[i];
        bad += !(e->seconds >= 0) || e->calls == 0 || !e->cls;
        bad += i > 0 && e->seconds > r->entries[i - 1].seconds;
        es += e->seconds;
        ec += e->calls;
        ep += e->percent;
    }
    for (int i = 0; i < r->n_classes; i++) {
        bad += !(r->classes[i].seconds >= 0) || r->classes[i].cls != NULL;
        bad += i > 0 && r->classes[i].seconds > r->classes[i - 1].seconds;
        cs += r->classes[i].seconds;
        cc += r->classes[i].calls;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(r->n_classes, BACKEND_PROFILE_N_CLASSES);
    CHECK_INT(ec, r->calls);
    CHECK_INT(cc, r->calls);
    CHECK_NEAR(es, r->total_s, 1e-9);
    CHECK_NEAR(cs, r->total_s, 1e-9);
    CHECK(r->total_s > 0);
    CHECK_NEAR(ep, 100.0, 1e-6);
    CHECK(r->wall_s >= r->total_s - 1e-9);
}

struct trained {
    float loss[2];
    double norm[2];
    float *params, *grads;
    size_t n;
};

/* Two steps of forward, backward, clipping and AdamW on backend `be`; with `rep` (profiled),
 * the report after the first forward, after the first backward and at the end. */
static void train_two(const struct backend *be, struct trained *t,
                      struct backend_profile_report *rep)
{
    struct model_desc d = tiny_gpt2();
    struct exec_model_opts o;
    exec_model_opts_init(&o);
    o.batch = BATCH;
    o.seq = SEQ;
    struct exec_model m;
    struct exec_optimizer opt;
    struct exec_optim_config oc;
    exec_optim_config_init(&oc);
    struct sw_err err;
    sw_err_init(&err);
    int rc = exec_model_init(&m, &d, &o, be, &err);
    CHECK_OK(rc, &err);
    if (rc < 0)
        return;
    exec_model_init_weights(&m, 1234);
    CHECK_OK(exec_optimizer_init(&opt, &m, &oc, &err), &err);
    if (rep)
        backend_profile_reset();
    for (int s = 0; s < 2; s++) {
        exec_model_zero_grad(&m);
        CHECK_OK(exec_model_forward(&m, tokens, targets, BATCH, SEQ, &t->loss[s], &err), &err);
        if (rep && s == 0)
            backend_profile_report(&rep[0]);
        CHECK_OK(exec_model_backward(&m, 1.0f, &err), &err);
        if (rep && s == 0)
            backend_profile_report(&rep[1]);
        t->norm[s] = exec_optimizer_clip(&opt, 1.0);
        exec_optimizer_step(&opt, 1e-3);
    }
    if (rep)
        backend_profile_report(&rep[2]);
    t->n = m.n_train;
    t->params = copyf(m.train_params, m.n_train);
    t->grads = copyf(m.train_grads, m.n_train);
    exec_optimizer_release(&opt);
    exec_model_release(&m);
}

static void test_model_bitwise_and_counts(void)
{
    uint64_t x = 7;
    for (int i = 0; i < BATCH * SEQ; i++) { /* a 64-bit LCG (Knuth's MMIX constants) */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((x >> 33) % 97);
        targets[i] = (int)((x >> 13) % 97);
    }
    struct trained plain, prof;
    memset(&plain, 0, sizeof(plain));
    memset(&prof, 0, sizeof(prof));
    struct backend_profile_report *rep = calloc(3, sizeof(*rep));
    train_two(backend_cpu(), &plain, NULL);
    train_two(backend_profiled(backend_cpu()), &prof, rep);
    if (!plain.params || !prof.params) {
        CHECK(!"a model could not be built");
        goto out;
    }
    /* Bit for bit: losses, norms, gradients, parameters after two AdamW steps. */
    CHECK(memcmp(plain.loss, prof.loss, sizeof(plain.loss)) == 0);
    CHECK(memcmp(plain.norm, prof.norm, sizeof(plain.norm)) == 0);
    CHECK_INT(plain.n, prof.n);
    CHECK(memcmp(plain.grads, prof.grads, plain.n * sizeof(float)) == 0);
    CHECK(memcmp(plain.params, prof.params, plain.n * sizeof(float)) == 0);
    CHECK(plain.loss[1] < plain.loss[0]); /* the steps did something */

    /* One GPT-2 forward: one embedding, 2L+1 layer norms, 2L residual adds, L attention cores
     * (flash by default), L GELUs, one loss; nothing of the backward yet. */
    const struct backend_profile_report *f = &rep[0], *b = &rep[1], *e = &rep[2];
    CHECK_INT(calls_of(f, "embedding_forward"), 1);
    CHECK_INT(calls_of(f, "layernorm_forward"), 2 * NL + 1);
    CHECK_INT(calls_of(f, "residual_forward"), 2 * NL);
    CHECK_INT(calls_of(f, "flash_attention_forward"), NL);
    CHECK_INT(calls_of(f, "gelu_forward"), NL);
    CHECK_INT(calls_of(f, "softmax_ce"), 1);
    CHECK_INT(calls_of(f, "layernorm_backward") + calls_of(f, "embedding_backward"), 0);
    CHECK(calls_of(f, "matmul_forward") >= 4 * NL);
    /* The backward mirrors it. */
    CHECK_INT(calls_of(b, "embedding_backward"), 1);
    CHECK_INT(calls_of(b, "layernorm_backward"), 2 * NL + 1);
    CHECK_INT(calls_of(b, "flash_attention_backward"), NL);
    CHECK_INT(calls_of(b, "gelu_backward"), NL);
    CHECK_INT(calls_of(b, "matmul_backward"), calls_of(f, "matmul_forward"));
    /* Two steps: twice the forward's counts, one clip each. */
    CHECK_INT(calls_of(e, "layernorm_forward"), 2 * (2 * NL + 1));
    CHECK_INT(calls_of(e, "embedding_backward"), 2);
    CHECK_INT(calls_of(e, "clip_grad_norm"), 2);
    CHECK(calls_of(e, "adamw_step") >= 2);
    CHECK_STR(e->backend, "cpu");
    for (int i = 0; i < e->n_entries; i++)
        if (strcmp(e->entries[i].name, "adamw_step") == 0)
            CHECK_STR(e->entries[i].cls, "optimizer");
    check_sums(f);
    check_sums(e);
    double matmul_s = 0;
    for (int i = 0; i < e->n_classes; i++)
        if (strcmp(e->classes[i].name, "matmul") == 0)
            matmul_s = e->classes[i].seconds;
    CHECK(matmul_s > 0);
    printf("profiled tiny GPT-2, 2 steps: %llu calls, %.3g ms in the backend of %.3g ms; top %s "
           "%.0f%%\n",
           (unsigned long long)e->calls, 1e3 * e->total_s, 1e3 * e->wall_s,
           e->n_entries ? e->entries[0].name : "-", e->n_entries ? e->entries[0].percent : 0.0);
out:
    free(plain.params);
    free(plain.grads);
    free(prof.params);
    free(prof.grads);
    free(rep);
}

static void test_pause_and_reset(void)
{
    const struct backend *p = backend_profiled(backend_cpu());
    struct backend_profile_report *r = calloc(1, sizeof(*r));
    float x[64] = {0}, y[64];
    p->memset(x, 0, sizeof(x));
    p->memcpy(y, x, sizeof(x), BACKEND_D2D);
    backend_profile_pause(true);
    p->memcpy(y, x, sizeof(x), BACKEND_D2D);
    p->scale(y, 64, 2.0f);
    backend_profile_report(r);
    CHECK_INT(r->calls, 2);
    CHECK_INT(calls_of(r, "memcpy"), 1);
    CHECK_INT(calls_of(r, "scale"), 0);
    double wall_paused = r->wall_s;
    usleep(2000);
    backend_profile_report(r);
    CHECK(r->wall_s == wall_paused); /* the clock stops while paused */
    backend_profile_pause(false);
    p->scale(y, 64, 2.0f);
    CHECK(p->grad_norm(y, 64) == 0.0); /* results pass through */
    backend_profile_report(r);
    CHECK_INT(calls_of(r, "scale"), 1);
    CHECK_INT(calls_of(r, "grad_norm"), 1);
    CHECK_INT(r->calls, 4);
    check_sums(r);
    backend_profile_reset();
    backend_profile_report(r);
    CHECK_INT(r->calls, 0);
    CHECK_INT(r->n_entries, 0);
    CHECK(r->total_s == 0.0);
    CHECK(r->classes[0].percent == 0.0);
    free(r);
}

static void test_yaml(void)
{
    const struct backend *p = backend_profiled(backend_cpu());
    float x[256] = {0}, y[256];
    for (int i = 0; i < 3; i++)
        p->memcpy(y, x, sizeof(x), BACKEND_D2D);
    p->gelu_forward(y, x, 256);
    struct backend_profile_report *r = calloc(1, sizeof(*r));
    backend_profile_report(r);
    r->steps = 3;
    char path[] = "/tmp/sw_test_profile_XXXXXX";
    int fd = mkstemp(path);
    SW_ASSERT(fd >= 0);
    close(fd);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(backend_profile_write(path, r, &err), &err);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(path, 1 << 20, &text, &len, &err), &err);
    unlink(path);
    struct ydoc d;
    memset(&d, 0, sizeof(d));
    int rc = text ? ydoc_load(&d, text, len, "profile.yaml", &err) : -1;
    CHECK_OK(rc, &err);
    if (rc == 0) {
        yaml_node_t *root = ydoc_root(&d);
        static const char *const top[] = {
            "scalewise_profile", "backend",         "timing", "steps",   "wall_s",  "in_backend_s",
            "outside_backend_s", "wall_s_per_step", "calls",  "classes", "entries", NULL};
        CHECK_OK(ydoc_check_keys(&d, root, top, "profile", &err), &err);
        for (int i = 0; top[i]; i++)
            CHECK_MSG(ydoc_get(&d, root, top[i]) != NULL, "key %s missing", top[i]);
        int64_t calls = 0, steps = 0;
        CHECK_OK(ydoc_int(&d, ydoc_get(&d, root, "calls"), 0, 1000, "calls", &calls, &err), &err);
        CHECK_OK(ydoc_int(&d, ydoc_get(&d, root, "steps"), 0, 1000, "steps", &steps, &err), &err);
        CHECK_INT(calls, 4);
        CHECK_INT(steps, 3);
        yaml_node_t *cl = ydoc_get(&d, root, "classes"), *en = ydoc_get(&d, root, "entries");
        CHECK(cl && cl->type == YAML_SEQUENCE_NODE && en && en->type == YAML_SEQUENCE_NODE);
        if (cl && en && cl->type == YAML_SEQUENCE_NODE && en->type == YAML_SEQUENCE_NODE) {
            CHECK_INT(cl->data.sequence.items.top - cl->data.sequence.items.start,
                      BACKEND_PROFILE_N_CLASSES);
            CHECK_INT(en->data.sequence.items.top - en->data.sequence.items.start, 2);
            static const char *const ekeys[] = {
                "name", "class", "calls", "seconds", "percent", "mean_us", "seconds_per_step",
                NULL};
            yaml_node_item_t *it = en->data.sequence.items.start;
            yaml_node_t *e0 = yaml_document_get_node(&d.doc, *it);
            CHECK_OK(ydoc_check_keys(&d, e0, ekeys, "entries", &err), &err);
            char name[64] = "";
            for (; it < en->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(&d.doc, *it);
                int64_t c = 0;
                CHECK_OK(ydoc_str(&d, ydoc_get(&d, e, "name"), "name", name, sizeof(name), &err),
                         &err);
                CHECK_OK(ydoc_int(&d, ydoc_get(&d, e, "calls"), 0, 10, "calls", &c, &err), &err);
                CHECK_INT(c, strcmp(name, "memcpy") == 0 ? 3 : 1);
            }
        }
        ydoc_release(&d);
    }
    free(text);
    /* An unwritable place fails with the reason. */
    sw_err_init(&err);
    CHECK(backend_profile_write("/nonexistent-dir/x/profile.yaml", r, &err) < 0);
    CHECK(err.msg[0] != '\0');
    free(r);
}

static void test_requested(void)
{
    unsetenv("SCALEWISE_PROFILE");
    CHECK(!backend_profile_requested());
    setenv("SCALEWISE_PROFILE", "0", 1);
    CHECK(!backend_profile_requested());
    setenv("SCALEWISE_PROFILE", "1", 1);
    CHECK(backend_profile_requested());
    unsetenv("SCALEWISE_PROFILE");
}

int main(void)
{
    RUN(test_table);
    RUN(test_model_bitwise_and_counts);
    RUN(test_pause_and_reset);
    RUN(test_yaml);
    RUN(test_requested);
    return harness_finish("test_backend_profile");
}
