/* Tests of plan files (advisor/plan.c): every example in profiles/plans/ loads, validates and
 * survives save -> load -> save byte for byte; every tests/data/plans/bad_*.yaml fails with the
 * line, column and message its first line names ("# expect: L:C: text"); defaults, overrides,
 * relative paths, in-memory plans, the estimate section, atomic save, and truncated input. */
#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "advisor/advisor.h"

#define PLANS_DIR SW_PROFILES_DIR "/plans"
#define BAD_DIR SW_PROFILES_DIR "/../tests/data/plans"
#define MAX_FILES 128

/* Sorted names in `dir` that start with `prefix` and end in ".yaml"; returns the count. */
static int list_yaml(const char *dir, const char *prefix, char names[][256], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".yaml") ||
            strncmp(de->d_name, prefix, strlen(prefix)))
            continue;
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[256];
            memcpy(t, names[j], 256);
            memcpy(names[j], names[j - 1], 256);
            memcpy(names[j - 1], t, 256);
        }
    return n;
}

static char *to_yaml(const struct plan *p, struct sw_err *err)
{
    struct sw_buf b;
    sw_buf_init(&b, 1 << 22);
    if (plan_to_yaml(p, &b, err) < 0) {
        sw_buf_release(&b);
        return NULL;
    }
    return b.data; /* the caller frees */
}

static void report(const char *what, const struct sw_err *err)
{
    char buf[1024];
    fprintf(stderr, "  %s: %s\n", what, sw_err_format(err, buf, sizeof(buf)));
}

static void test_examples(void)
{
    static char names[MAX_FILES][256];
    int n = list_yaml(PLANS_DIR, "", names, MAX_FILES);
    CHECK_MSG(n >= 6, "only %d example plans in %s", n, PLANS_DIR);
    char dir[] = "/tmp/sw_plan_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%.200s", PLANS_DIR, names[i]);
        struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
        struct sw_err err;
        int rc = plan_load(path, p, &err);
        CHECK_MSG(rc == 0, "%s does not load", names[i]);
        if (rc < 0) {
            report(names[i], &err);
            free(p);
            free(q);
            continue;
        }
        CHECK_STR(p->source_path, path);
        rc = plan_validate(p, &err);
        CHECK_MSG(rc == 0, "%s does not validate: %s", names[i], err.msg);
        char *s1 = to_yaml(p, &err);
        CHECK(s1 != NULL);
        if (!s1) {
            free(p);
            free(q);
            continue;
        }
        /* Reload under the same name, so relative paths resolve the same way. */
        rc = plan_load_string(s1, strlen(s1), path, q, &err);
        CHECK_MSG(rc == 0, "%s: its own output does not load", names[i]);
        if (rc < 0)
            report(names[i], &err);
        char *s2 = rc == 0 ? to_yaml(q, &err) : NULL;
        CHECK_MSG(s2 && !strcmp(s1, s2),
                  "%s: save -> load -> save differs:\n--- first\n%s--- "
                  "second\n%s",
                  names[i], s1, s2 ? s2 : "(none)");
        if (p->workload.task == TASK_TRAIN)
            CHECK_MSG(strstr(s1, "\ntrain:\n  steps: ") != NULL, "%s: no train.steps", names[i]);
        /* plan_save writes the same bytes. */
        char out[600];
        snprintf(out, sizeof(out), "%s/%.200s", dir, names[i]);
        CHECK_OK(plan_save(out, p, &err), &err);
        char *saved = NULL;
        size_t len = 0;
        CHECK_OK(sw_read_file(out, 1 << 22, &saved, &len, &err), &err);
        CHECK_MSG(saved && !strcmp(saved, s1), "%s: plan_save wrote other bytes", names[i]);
        unlink(out);
        free(saved);
        free(s1);
        free(s2);

        /* With the advisor's estimate attached (as `scalewise plan --export` writes it). */
        struct advisor_calib cal;
        advisor_calib_default(&cal);
        rc = advisor_estimate(&p->model, &p->hardware, &p->workload, &p->strategy, &cal,
                              &p->estimate, &err);
        CHECK_MSG(rc == 0, "%s: no estimate: %s", names[i], err.msg);
        p->has_estimate = rc == 0;
        s1 = to_yaml(p, &err);
        rc = s1 ? plan_load_string(s1, strlen(s1), path, q, &err) : -1;
        CHECK_MSG(rc == 0 && q->has_estimate, "%s: output with estimate does not load: %s",
                  names[i], err.msg);
        s2 = rc == 0 ? to_yaml(q, &err) : NULL;
        CHECK_MSG(s1 && s2 && !strcmp(s1, s2), "%s: with estimate, save -> load -> save differs",
                  names[i]);
        free(s1);
        free(s2);
        free(p);
        free(q);
    }
    rmdir(dir);
}

/* Every ```yaml block of docs/plan-format.md that starts with "scalewise_plan:" is a plan that
 * loads, validates and round-trips. */
static void test_doc_examples(void)
{
    char *doc = NULL;
    size_t len = 0;
    struct sw_err err;
    CHECK_OK(sw_read_file(SW_PROFILES_DIR "/../docs/plan-format.md", 1 << 20, &doc, &len, &err),
             &err);
    int found = 0;
    const char *open_tag = "```yaml\nscalewise_plan:";
    for (char *s = doc ? strstr(doc, open_tag) : NULL; s; s = strstr(s, open_tag)) {
        s += strlen("```yaml\n");
        char *end = strstr(s, "\n```");
        if (!end)
            break;
        found++;
        struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
        size_t n = (size_t)(end - s) + 1;
        int rc = plan_load_string(s, n, "docs/plan-format.md", p, &err);
        CHECK_MSG(rc == 0, "docs example %d: %s:%d:%d: %s", found, err.file, err.line, err.col,
                  err.msg);
        if (rc == 0) {
            CHECK_OK(plan_validate(p, &err), &err);
            char *s1 = to_yaml(p, &err);
            CHECK_OK(s1 ? plan_load_string(s1, strlen(s1), "x.yaml", q, &err) : -1, &err);
            char *s2 = to_yaml(q, &err);
            CHECK(s1 && s2 && !strcmp(s1, s2));
            free(s1);
            free(s2);
        }
        free(p);
        free(q);
        s = end;
    }
    CHECK_MSG(found >= 1, "no plan examples found in docs/plan-format.md");
    free(doc);
}

/* "# expect: 12:9: unknown key 'micro_bach'" -> 12, 9, "unknown key 'micro_bach'". */
static bool parse_expect(const char *text, int *line, int *col, char *msg, size_t n)
{
    const char *tag = "# expect: ";
    if (strncmp(text, tag, strlen(tag)))
        return false;
    const char *s = text + strlen(tag);
    char *end;
    long l = strtol(s, &end, 10);
    if (*end != ':')
        return false;
    long c = strtol(end + 1, &end, 10);
    if (*end != ':' || end[1] != ' ')
        return false;
    s = end + 2;
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    if (len == 0 || len >= n)
        return false;
    memcpy(msg, s, len);
    msg[len] = '\0';
    *line = (int)l;
    *col = (int)c;
    return true;
}

static void test_bad_cases(void)
{
    static char names[MAX_FILES][256];
    int n = list_yaml(BAD_DIR, "bad_", names, MAX_FILES);
    CHECK_MSG(n >= 20, "only %d bad cases in %s", n, BAD_DIR);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%.200s", BAD_DIR, names[i]);
        char *text = NULL;
        size_t len = 0;
        struct sw_err err;
        if (sw_read_file(path, 1 << 20, &text, &len, &err) < 0) {
            CHECK_MSG(0, "%s: %s", names[i], err.msg);
            continue;
        }
        int line = 0, col = 0;
        char want[400];
        bool ok = parse_expect(text, &line, &col, want, sizeof(want));
        CHECK_MSG(ok, "%s: the first line is not '# expect: LINE:COL: MESSAGE'", names[i]);
        free(text);
        if (!ok)
            continue;
        struct plan *p = sw_xcalloc(1, sizeof(*p));
        int rc = plan_load(path, p, &err);
        CHECK_MSG(rc < 0, "%s loads, but should fail with '%s'", names[i], want);
        if (rc < 0) {
            char got[1024];
            sw_err_format(&err, got, sizeof(got));
            CHECK_MSG(err.line == line && err.col == col && strstr(err.msg, want) &&
                          !strcmp(err.file, path),
                      "%s: expected %d:%d: ...%s..., got %s", names[i], line, col, want, got);
        }
        free(p);
    }
}

static void test_defaults(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p));
    plan_init(p);
    CHECK_INT(p->version, PLAN_VERSION);
    CHECK_INT(p->train.steps, 100);
    CHECK_NEAR(p->train.lr, 3e-4, 1e-18);
    CHECK_INT(p->train.schedule, LR_COSINE);
    CHECK_INT(p->train.warmup_steps, 10);
    CHECK_NEAR(p->train.beta2, 0.95, 1e-15);
    CHECK_INT(p->train.seed, 1337);
    CHECK_INT(p->train.eval_batches, 8);
    CHECK_STR(p->train.lora_targets, "all");
    CHECK_NEAR(p->infer.top_p, 1.0, 0);
    CHECK_STR(p->data.tokenizer, "byte");
    CHECK_INT(p->strategy.micro_batch, 1);
    CHECK_INT(p->hardware.nodes, 1);
    CHECK(!p->has_estimate);
    free(p);
}

static int load_str(const char *yaml, struct plan *p, struct sw_err *err)
{
    return plan_load_string(yaml, strlen(yaml), "mem.yaml", p, err);
}

/* Inline keys override the profile; only the differences are written back. */
static void test_model_overrides(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p));
    struct sw_err err;
    const char *y = "scalewise_plan: 1\ntask: train\nhardware: {profile: h100-sxm}\n"
                    "model: {profile: gpt2-124m, layers: 6, name: gpt2-6l}\n"
                    "train: {lr: 1.0e-3, seq: 512}\n";
    CHECK_OK(load_str(y, p, &err), &err);
    CHECK_INT(p->model.n_layers, 6);
    CHECK_INT(p->model.hidden, 768);
    CHECK(p->model.tied_head && p->model.bias && !p->model.rms_norm);
    CHECK_STR(p->model.name, "gpt2-6l");
    CHECK_NEAR(p->train.min_lr, 1e-4, 1e-18); /* lr/10 when not given */
    CHECK_STR(p->train.out_dir, "runs/gpt2-6l");
    CHECK_INT(p->strategy.device, DEVICE_CUDA); /* the hardware has GPUs */
    CHECK_INT(p->strategy.precision, PREC_BF16_MIXED);
    CHECK_INT(p->hardware.n_gpus, 8);
    char *s = to_yaml(p, &err);
    CHECK(s && strstr(s, "model:\n  profile: gpt2-124m\n  name: gpt2-6l\n  layers: 6\nd"));
    free(s);

    /* An inline model: the architecture fills what is not given; every key is written. */
    y = "scalewise_plan: 1\ntask: infer\nhardware: {profile: h100-sxm, gpus_per_node: 2}\n"
        "model: {arch: llama, layers: 2, hidden: 256, heads: 8, kv_heads: 2, vocab: 1000,\n"
        "        tied_head: true}\n";
    CHECK_OK(load_str(y, p, &err), &err);
    CHECK(p->model.rms_norm && p->model.swiglu && p->model.tied_head && !p->model.bias);
    CHECK_INT(p->model.head_dim, 32);
    CHECK_STR(p->model.name, "custom");
    CHECK_INT(p->hardware.n_gpus, 2);
    s = to_yaml(p, &err);
    CHECK(s && strstr(s, "  arch: llama\n") && strstr(s, "  tied_head: true\n") &&
          strstr(s, "  kv_dtype: bf16\n") && !strstr(s, "optimizer"));
    free(s);
    free(p);
}

/* Defaults that follow from the hardware: fp16 and naive attention before CC 8.0, the CPU. */
static void test_hardware_defaults(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p));
    struct sw_err err;
    const char *y = "scalewise_plan: 1\ntask: train\nhardware: {profile: v100-16gb, nodes: 2,\n"
                    "  gpus_per_node: 4}\nmodel: {profile: gpt2-124m}\n";
    CHECK_OK(load_str(y, p, &err), &err);
    CHECK_INT(p->strategy.precision, PREC_FP16_MIXED);
    CHECK_INT(p->strategy.attention, ATTN_NAIVE);
    CHECK_INT(p->hardware.nodes, 2);
    CHECK_INT(p->hardware.n_gpus, 4);

    y = "scalewise_plan: 1\ntask: train\nhardware: {profile: cpu-avx2-2c}\n"
        "model: {profile: tiny-gpt2}\ntrain: {seq: 64}\n";
    CHECK_OK(load_str(y, p, &err), &err);
    CHECK_INT(p->strategy.device, DEVICE_CPU);
    CHECK_INT(p->strategy.precision, PREC_FP32);

    /* More GPUs than a profile's node: copies of its GPU. */
    y = "scalewise_plan: 1\ntask: infer\nhardware: {profile: l4, gpus_per_node: 4}\n"
        "model: {profile: tiny-llama}\nstrategy: {tp: 2}\n";
    CHECK_OK(load_str(y, p, &err), &err);
    CHECK_INT(p->hardware.n_gpus, 4);
    CHECK_STR(p->hardware.gpus[3].name, p->hardware.gpus[0].name);
    CHECK_INT(p->hardware.link[3][3], HW_LINK_SELF);
    free(p);
}

/* A plan built in memory (as `scalewise plan --export` does) writes and reads back. */
/* A plan built in memory: GPT-2 124M on an H100 node, micro-batch 8, T = 1024. */
static void gpt2_h100_plan(struct plan *p)
{
    struct sw_err err;
    plan_init(p);
    CHECK_OK(profile_load_hardware("h100-sxm", &p->hardware, &err), &err);
    CHECK_OK(profile_load_model("gpt2-124m", &p->model, &err), &err);
    sw_strlcpy(p->model_ref.profile, "gpt2-124m", sizeof(p->model_ref.profile));
    p->strategy.micro_batch = 8;
    p->workload.seq = 1024;
}

static void test_in_memory(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
    struct sw_err err;
    gpt2_h100_plan(p);
    p->strategy.dp = 4;
    p->train.steps = 42;
    sw_strlcpy(p->name, "mem", sizeof(p->name));
    CHECK_OK(plan_validate(p, &err), &err);
    char *s1 = to_yaml(p, &err);
    CHECK(s1 && strstr(s1, "hardware:\n  profile: h100-sxm\n  nodes: 1\n  gpus_per_node: 8\n"));
    CHECK_OK(load_str(s1, q, &err), &err);
    CHECK_INT(q->strategy.dp, 4);
    CHECK_INT(q->train.steps, 42);
    CHECK_STR(q->name, "mem");
    char *s2 = to_yaml(q, &err);
    CHECK(s1 && s2 && !strcmp(s1, s2));
    free(s1);
    free(s2);

    /* plan_validate catches what a caller set wrong, with the rule in the message. */
    p->strategy.tp = 5;
    CHECK_INT(plan_validate(p, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "tp 5 must divide") != NULL);
    p->strategy.tp = 1;
    p->strategy.offload_params = true;
    CHECK_INT(plan_validate(p, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "offload_params needs ZeRO-3") != NULL);
    free(p);
    free(q);
}

/* fp16-mixed plans carry the loss scale keys (written only for fp16-mixed) through a round
 * trip, static and dynamic (tests/cli/fp16.sh checks their refusal elsewhere). */
static void test_loss_scale_keys(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
    struct sw_err err;
    gpt2_h100_plan(p);
    char *s0 = to_yaml(p, &err);
    CHECK(s0 && !strstr(s0, "loss_scale")); /* bf16-mixed: no keys */
    p->strategy.precision = PREC_FP16_MIXED;
    p->train.loss_scale_window = 500;
    char *s1 = to_yaml(p, &err);
    CHECK(s1 && strstr(s1, "  loss_scale: dynamic\n  loss_scale_init: 65536") &&
          strstr(s1, "  loss_scale_window: 500\n"));
    CHECK_OK(load_str(s1, q, &err), &err);
    CHECK(q->train.loss_scale == 0 && q->train.loss_scale_init == 65536);
    CHECK_INT(q->train.loss_scale_window, 500);
    CHECK(q->train.loss_scale_given);
    p->train.loss_scale = 1024;
    char *s2 = to_yaml(p, &err);
    CHECK(s2 && strstr(s2, "  loss_scale: 1024"));
    CHECK_OK(load_str(s2, q, &err), &err);
    CHECK(q->train.loss_scale == 1024);
    free(s0);
    free(s1);
    free(s2);
    free(p);
    free(q);
}

/* file: and config_json: are relative to the plan's directory, wherever the process runs. */
static void test_relative_paths(void)
{
    char dir[] = "/tmp/sw_plan_rel_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct sw_err err;
    struct hardware *hw = sw_xcalloc(1, sizeof(*hw));
    CHECK_OK(profile_load_hardware("a100-80gb-sxm", hw, &err), &err);
    char path[300], plan_path[300], cfg[300];
    snprintf(path, sizeof(path), "%s/report.yaml", dir);
    CHECK_OK(hw_save_file(path, hw, &err), &err);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    const char *json = "{\"model_type\": \"gpt2\", \"n_layer\": 3, \"n_embd\": 96, \"n_head\": "
                       "4, \"vocab_size\": 300, \"n_positions\": 256}\n";
    CHECK_OK(sw_write_file_atomic(cfg, json, strlen(json), &err), &err);
    const char *y = "scalewise_plan: 1\ntask: train\nhardware: {file: report.yaml}\n"
                    "model: {config_json: config.json, layers: 5}\ntrain: {seq: 128}\n";
    snprintf(plan_path, sizeof(plan_path), "%s/plan.yaml", dir);
    CHECK_OK(sw_write_file_atomic(plan_path, y, strlen(y), &err), &err);
    struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
    CHECK_OK(plan_load(plan_path, p, &err), &err);
    CHECK_INT(p->model.n_layers, 5);
    CHECK_INT(p->model.hidden, 96);
    CHECK_INT(p->hardware.n_gpus, hw->n_gpus);
    char *s1 = to_yaml(p, &err);
    CHECK(s1 && strstr(s1, "  config_json: config.json\n  layers: 5\nd"));
    CHECK_OK(plan_save(plan_path, p, &err), &err);
    CHECK_OK(plan_load(plan_path, q, &err), &err);
    char *s2 = to_yaml(q, &err);
    CHECK(s1 && s2 && !strcmp(s1, s2));
    /* Saving where the directory does not exist fails and names the file. */
    char bad[400];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/plan.yaml", dir);
    CHECK(plan_save(bad, p, &err) < 0);
    CHECK(strstr(err.msg, "plan.yaml") || strstr(err.file, "plan.yaml"));
    free(s1);
    free(s2);
    unlink(path);
    unlink(cfg);
    unlink(plan_path);
    rmdir(dir);
    free(hw);
    free(p);
    free(q);
}

/* Equal, or both NaN (an estimate's "unknown"). */
static bool same_number(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* The estimate section is read back, and written again the same. */
static void test_estimate_section(void)
{
    struct plan *p = sw_xcalloc(1, sizeof(*p)), *q = sw_xcalloc(1, sizeof(*q));
    struct sw_err err;
    CHECK_OK(plan_load(PLANS_DIR "/gpt2-124m-h100.yaml", p, &err), &err);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    CHECK_OK(advisor_estimate(&p->model, &p->hardware, &p->workload, &p->strategy, &cal,
                              &p->estimate, &err),
             &err);
    p->has_estimate = true;
    char *s1 = to_yaml(p, &err);
    CHECK(s1 && strstr(s1, "\nestimate:\n"));
    CHECK_OK(plan_load_string(s1, strlen(s1), p->source_path, q, &err), &err);
    CHECK(q->has_estimate);
    CHECK_INT(q->estimate.fits, p->estimate.fits);
    CHECK(same_number(q->estimate.step_time_s, p->estimate.step_time_s));
    CHECK(same_number(q->estimate.tokens_per_s, p->estimate.tokens_per_s));
    CHECK(same_number(q->estimate.dev.total, p->estimate.dev.total));
    CHECK_INT(q->estimate.n_reasons, p->estimate.n_reasons);
    CHECK(same_number(q->estimate.calib.eta_mem, p->estimate.calib.eta_mem));
    char *s2 = to_yaml(q, &err);
    CHECK_MSG(s1 && s2 && !strcmp(s1, s2), "estimate round trip differs:\n%s---\n%s", s1,
              s2 ? s2 : "");
    free(s1);
    free(s2);

    /* Loosely: values of the wrong type are skipped, but the section must be a mapping. */
    const char *y = "scalewise_plan: 1\ntask: train\nhardware: {profile: h100-sxm}\n"
                    "model: {profile: gpt2-124m}\nestimate: {fits: maybe, step_time_s: 0.5,\n"
                    "  per_device_bytes: {total: 1.0e9}, whatever: [1, 2]}\n";
    CHECK_OK(load_str(y, q, &err), &err);
    CHECK(q->has_estimate && !q->estimate.fits);
    CHECK_NEAR(q->estimate.step_time_s, 0.5, 0);
    CHECK_NEAR(q->estimate.dev.total, 1e9, 0);
    y = "scalewise_plan: 1\ntask: train\nhardware: {profile: h100-sxm}\n"
        "model: {profile: gpt2-124m}\nestimate: [1, 2]\n";
    CHECK_INT(load_str(y, q, &err), SW_EINVAL);
    CHECK_INT(err.line, 5);
    free(p);
    free(q);
}

/* Every prefix of a plan either loads or fails with a message; none crashes (the fuzz target
 * in tests/fuzz/ does this at random). */
static void test_truncated(void)
{
    char *text = NULL;
    size_t len = 0;
    struct sw_err err;
    CHECK_OK(sw_read_file(PLANS_DIR "/llama-3-8b-lora-a100.yaml", 1 << 20, &text, &len, &err),
             &err);
    struct plan *p = sw_xcalloc(1, sizeof(*p));
    int failures = 0, bad = 0;
    for (size_t n = 0; text && n <= len; n += 7) {
        int rc = plan_load_string(text, n, "cut.yaml", p, &err);
        if (rc < 0) {
            failures++;
            if (!err.msg[0] || rc < SW_EINTERNAL)
                bad++;
        }
    }
    CHECK(failures > 0);
    CHECK_INT(bad, 0);
    free(text);
    free(p);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_examples);
    RUN(test_bad_cases);
    RUN(test_doc_examples);
    RUN(test_model_overrides);
    RUN(test_hardware_defaults);
    RUN(test_in_memory);
    RUN(test_loss_scale_keys);
    RUN(test_relative_paths);
    RUN(test_estimate_section);
    RUN(test_truncated);
    return harness_finish("test_plan");
}
