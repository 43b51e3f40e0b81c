/* Tests of the TUI's state machine without a terminal: the action table and keymap; every
 * action, in every screen and dialog, either changes the state or is reported unavailable
 * (what the help marks "-") and then changes nothing; the what-if editor re-estimates on each
 * key with exactly the advisor's numbers (the JSON `scalewise estimate` prints); a setting that
 * breaks a rule shows the advisor's reason; export writes a plan that plan_load reads back
 * equal, with overwrite confirmation; quit asks first; the metrics parser and the real process
 * control (a fake executor script that logs metrics and exits 130 on SIGINT). */
#include "harness.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tui/tui.h"

/* ---------------------------------------------------------------- stubs */

static int stub_probe(struct hardware *hw, bool measure, struct sw_err *err)
{
    (void)measure;
    return profile_load_hardware("cpu-avx2-2c", hw, err);
}

static int stub_run_start(struct tui_run *r, const struct plan *p, const char *resume,
                          struct sw_err *err)
{
    (void)err;
    r->status = TUI_RUN_RUNNING;
    r->pid = resume ? 4243 : 4242;
    r->own_child = true;
    sw_strlcpy(r->out_dir, p->train.out_dir, sizeof(r->out_dir));
    r->steps_total = p->train.steps;
    return 0;
}

static int stub_run_stop(struct tui_run *r, struct sw_err *err)
{
    (void)err;
    r->status = TUI_RUN_STOPPING;
    return 0;
}

static int stub_attach(struct tui_run *r, const char *dir, struct sw_err *err)
{
    (void)err;
    tui_run_init(r);
    sw_strlcpy(r->out_dir, dir, sizeof(r->out_dir));
    r->status = TUI_RUN_EXITED;
    return 0;
}

static int stub_latest(const char *dir, char *out, size_t n, struct sw_err *err)
{
    (void)err;
    snprintf(out, n, "%s/ckpt_5.safetensors", dir);
    return 0;
}

static struct tui_ops stub_ops;

static void ops_init(void)
{
    stub_ops = tui_ops_default;
    stub_ops.probe = stub_probe;
    stub_ops.run_start = stub_run_start;
    stub_ops.run_stop = stub_run_stop;
    stub_ops.run_attach = stub_attach;
    stub_ops.run_latest_ckpt = stub_latest;
}

static char g_tmp[256];

/* Keys as a string: '\n' Enter, '\033' Esc, '\t' Tab, '\b' Backspace; others as themselves. */
static void keys(struct tui_state *s, const char *k)
{
    for (; *k; k++) {
        int key = *k == '\n' ? TK_ENTER : *k == '\033' ? TK_ESC : *k == '\t' ? TK_TAB
                  : *k == '\b'                          ? TK_BACKSPACE
                                                        : *k;
        tui_state_key(s, key);
    }
}

static struct tui_state *new_state(void)
{
    struct tui_state *s = sw_xmalloc(sizeof(*s));
    tui_state_init(s, &stub_ops);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(tui_state_start(s, NULL, &err), &err);
    return s;
}

static void free_state(struct tui_state *s)
{
    tui_state_release(s);
    free(s);
}

/* A state with a model, the search run and plan 1 in the editor. */
static struct tui_state *planned_state(const char *model, const char *hw)
{
    struct tui_state *s = new_state();
    char k[128];
    snprintf(k, sizeof(k), "w/%s\n", model);
    keys(s, k);
    if (hw) {
        snprintf(k, sizeof(k), "d/%s\n", hw);
        keys(s, k);
    }
    keys(s, "p\n");
    return s;
}

/* ---------------------------------------------------------------- fingerprint */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

#define HV(h, v) (h = fnv(h, &(v), sizeof(v)))
#define HS(h, str) (h = fnv(h, (str), strlen(str)))

/* Everything a user can see change (the message line excluded: it is not a state change). */
static uint64_t fingerprint(const struct tui_state *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    int v;
    v = s->screen, HV(h, v);
    v = s->prev_screen, HV(h, v);
    v = s->modal, HV(h, v);
    HV(h, s->focus);
    for (int i = 0; i < TUI_SCR_COUNT; i++) {
        HV(h, s->sel[i]);
        HV(h, s->scroll[i]);
    }
    v = s->mouse, HV(h, v);
    v = s->quit, HV(h, v);
    v = s->full_redraw, HV(h, v);
    v = s->list_kind, HV(h, v);
    HS(h, s->filter);
    v = s->filter_editing, HV(h, v);
    HV(h, s->list_sel);
    v = s->prompt_kind, HV(h, v);
    HS(h, s->input);
    v = s->confirm_kind, HV(h, v);
    v = s->hw_measured, HV(h, v);
    v = s->unsaved, HV(h, v);
    v = s->run.status, HV(h, v);
    HV(h, s->run.pid);
    for (int scr = 0; scr < TUI_SCR_COUNT; scr++)
        for (int r = 0; r < tui_screen_rows(s, (enum tui_screen)scr); r++) {
            char label[64], value[PLAN_PATH_MAX];
            tui_field_text(s, (enum tui_screen)scr, r, label, sizeof(label), value, sizeof(value));
            HS(h, label);
            HS(h, value);
        }
    return h;
}

/* ---------------------------------------------------------------- tests */

static void test_action_table(void)
{
    int seen[64];
    int n_seen = 0;
    for (int a = 0; a < TUI_ACT_COUNT; a++) {
        const struct tui_action_info *ai = &tui_actions[a];
        CHECK_MSG(ai->keys[0] != 0, "%s has no key", ai->name);
        CHECK(ai->label[0] && ai->help[0]);
        for (int k = 0; k < 3; k++) {
            if (!ai->keys[k])
                continue;
            CHECK_MSG(tui_key_action(ai->keys[k]) == (enum tui_action)a, "key of %s maps elsewhere",
                      ai->name);
            for (int j = 0; j < n_seen; j++)
                CHECK_MSG(seen[j] != ai->keys[k], "key %d bound twice", ai->keys[k]);
            if (n_seen < 64)
                seen[n_seen++] = ai->keys[k];
        }
    }
    /* screens and the main commands: an F-key, a digit and a letter (nconf) */
    for (int a = TUI_ACT_SCR_HARDWARE; a <= TUI_ACT_QUIT; a++) {
        const int *k = tui_actions[a].keys;
        CHECK_MSG(k[0] >= TK_F1 && k[0] <= TK_F10, "%s: no F-key", tui_actions[a].name);
        CHECK_MSG(k[1] >= '0' && k[1] <= '9', "%s: no digit alias", tui_actions[a].name);
        CHECK_MSG(k[2] >= 'a' && k[2] <= 'z', "%s: no letter alias", tui_actions[a].name);
    }
    char buf[16];
    CHECK_STR(tui_key_name(TK_F5, buf, sizeof(buf)), "F5");
    CHECK_STR(tui_key_name('/', buf, sizeof(buf)), "/");
    CHECK_STR(tui_key_name(TK_ESC, buf, sizeof(buf)), "Esc");
    CHECK(tui_key_action('Z') == TUI_ACT_COUNT);
}

/* Each context: how to build it from a planned state. */
static void ctx_screen(struct tui_state *s, int scr)
{
    static const char *const go[] = {"d", "w", "p", "e", "x", "r"};
    keys(s, go[scr]);
    /* a middle row, so Up and Down both have somewhere to go */
    if (tui_screen_rows(s, s->screen) > 2)
        keys(s, "jj");
    else if (tui_screen_rows(s, s->screen) == 2)
        keys(s, "j");
}

static void test_every_action(void)
{
    int covered[TUI_ACT_COUNT] = {0};
    /* contexts: six screens (two focus states each), the run screen with a run, and dialogs */
    for (int ctx = 0; ctx < 18; ctx++) {
        for (int a = 0; a < TUI_ACT_COUNT; a++) {
            struct tui_state *s = planned_state("tiny-gpt2", NULL);
            if (ctx < 12) {
                ctx_screen(s, ctx % 6);
                if (ctx >= 6)
                    keys(s, "\tj");
            } else if (ctx == 12) {
                keys(s, "rg"); /* a (stub) run in progress */
            } else if (ctx == 13) {
                keys(s, "rgS"); /* stopping */
                s->run.status = TUI_RUN_STOPPED;
            } else if (ctx == 14) {
                keys(s, "w\nj"); /* model list, second entry */
            } else if (ctx == 15) {
                keys(s, "w/gpt"); /* list with the search being typed */
            } else if (ctx == 16) {
                /* export prompt; what it writes must not land in the working directory */
                snprintf(s->export_path, sizeof(s->export_path), "/tmp/sw_test_tui_%ld.yaml",
                         (long)getpid());
                keys(s, "s");
            } else {
                keys(s, "?"); /* help */
            }
            bool avail = tui_action_available(s, (enum tui_action)a);
            uint64_t before = fingerprint(s);
            int rc = tui_state_apply(s, (enum tui_action)a);
            uint64_t after = fingerprint(s);
            if (avail) {
                covered[a]++;
                CHECK_MSG(rc == 0, "ctx %d: %s available but apply returned %d", ctx,
                          tui_actions[a].name, rc);
                CHECK_MSG(after != before, "ctx %d (screen %s): %s is available but changed nothing",
                          ctx, tui_screen_name(s->screen), tui_actions[a].name);
            } else {
                CHECK_MSG(rc == 1, "ctx %d: %s unavailable but apply returned %d", ctx,
                          tui_actions[a].name, rc);
                CHECK_MSG(after == before, "ctx %d: %s unavailable but changed the state", ctx,
                          tui_actions[a].name);
            }
            free_state(s);
        }
    }
    for (int a = 0; a < TUI_ACT_COUNT; a++)
        CHECK_MSG(covered[a] > 0, "%s never does anything in any context", tui_actions[a].name);
    /* confirm dialog: y and n (and only they, Enter and Esc) act */
    struct tui_state *s = planned_state("tiny-gpt2", NULL);
    keys(s, "q");
    CHECK_INT(s->modal, TUI_MODAL_CONFIRM);
    CHECK(tui_action_available(s, TUI_ACT_YES) && tui_action_available(s, TUI_ACT_NO));
    CHECK(!tui_action_available(s, TUI_ACT_RUN_START));
    free_state(s);
}

static void emit_json(const struct estimate *e, struct sw_buf *b)
{
    struct sw_emit em;
    sw_buf_init(b, 1 << 20);
    sw_emit_init_buf(&em, b, SW_FMT_JSON);
    estimate_emit(&em, NULL, e);
    sw_emit_finish(&em);
}

/* The editor's estimate is the advisor's, byte for byte in the JSON `estimate` prints. */
static void check_same_as_advisor(struct tui_state *s)
{
    struct estimate *e = sw_xmalloc(sizeof(*e));
    struct sw_err err;
    sw_err_init(&err);
    estimate_init(e);
    struct advisor_calib cal;
    advisor_calib_default(&cal);
    int rc = advisor_estimate(&s->plan.model, &s->plan.hardware, &s->plan.workload,
                              &s->plan.strategy, &cal, e, &err);
    CHECK_INT(rc, 0);
    CHECK(s->est_ok);
    struct sw_buf a, b;
    emit_json(&s->est, &a);
    emit_json(e, &b);
    CHECK_MSG(!strcmp(a.data, b.data), "TUI estimate differs from advisor_estimate");
    CHECK(s->est.dev.total == e->dev.total && s->est.tokens_per_s == e->tokens_per_s);
    sw_buf_release(&a);
    sw_buf_release(&b);
    free(e);
}

static void test_whatif(void)
{
    struct tui_state *s = planned_state("gpt2-124m", "h100-sxm");
    CHECK_INT(s->screen, TUI_SCR_EDITOR);
    CHECK(s->have_plan);
    CHECK_STR(s->plan.hardware.name, "h100-sxm");
    check_same_as_advisor(s);
    /* go to the micro-batch knob and move it both ways */
    s->sel[TUI_SCR_EDITOR] = TUI_KNOB_MICRO_BATCH;
    int b0 = s->plan.strategy.micro_batch;
    double total0 = s->est.dev.total;
    keys(s, "l");
    CHECK_INT(s->plan.strategy.micro_batch, b0 * 2);
    CHECK(s->est.dev.total > total0);
    CHECK_INT(s->plan.workload.global_batch, (int64_t)s->plan.strategy.micro_batch *
                                                 s->plan.strategy.grad_accum *
                                                 s->plan.strategy.dp);
    check_same_as_advisor(s);
    keys(s, "h");
    CHECK_INT(s->plan.strategy.micro_batch, b0);
    CHECK_NEAR(s->est.dev.total, total0, 0);
    /* an exact value through the prompt */
    keys(s, "\n\b\b\b\b\b\b3\n");
    CHECK_INT(s->plan.strategy.micro_batch, 3);
    check_same_as_advisor(s);
    /* over budget: far too many sequences per device */
    keys(s, "\n\b\b\b\b\b\b65536\n");
    CHECK(s->est_ok && !s->est.fits);
    /* a rule: tensor parallelism must divide the 12 heads */
    keys(s, "\n\b\b\b\b\b\b1\n");
    s->sel[TUI_SCR_EDITOR] = TUI_KNOB_TP;
    keys(s, "\n\b5\n");
    CHECK_INT(s->plan.strategy.tp, 5);
    CHECK(!s->est_ok);
    struct sw_err err;
    sw_err_init(&err);
    CHECK(advisor_check(&s->plan.model, &s->plan.hardware, &s->plan.workload, &s->plan.strategy,
                        &err) < 0);
    CHECK_STR(s->est_error, err.msg);
    /* explain: the what-ifs of this knob, each equal to an estimate of the moved strategy */
    keys(s, "\n\b1\nx");
    CHECK_INT(s->screen, TUI_SCR_EXPLAIN);
    CHECK(s->n_whatif > 0);
    for (int i = 0; i < s->n_whatif; i++)
        CHECK(s->whatif[i].change[0]);
    char cmd[1024];
    tui_state_cli_command(s, cmd, sizeof(cmd));
    CHECK(strstr(cmd, "--model gpt2-124m --gpu h100-sxm") != NULL);
    CHECK(strstr(cmd, "--micro-batch 1 ") != NULL);
    free_state(s);
}

static void test_export_roundtrip(void)
{
    struct tui_state *s = planned_state("tiny-gpt2", NULL);
    s->sel[TUI_SCR_EDITOR] = TUI_KNOB_MICRO_BATCH;
    keys(s, "\n\b\b\b\b\b\b4\n");
    CHECK_INT(s->plan.strategy.micro_batch, 4);
    CHECK(s->unsaved);
    char path[512], k[600];
    snprintf(path, sizeof(path), "%s/exp.yaml", g_tmp);
    /* clear the default path, type ours */
    snprintf(k, sizeof(k), "s\b\b\b\b\b\b\b\b\b%s\n", path);
    keys(s, k);
    CHECK(!s->unsaved);
    CHECK_MSG(strstr(s->message, "wrote plan to") != NULL, "%s", s->message);
    struct plan *p = sw_xmalloc(sizeof(*p));
    plan_init(p);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(plan_load(path, p, &err), &err);
    CHECK(!memcmp(&p->strategy, &s->plan.strategy, sizeof(p->strategy)) ||
          (p->strategy.micro_batch == 4 && p->strategy.dp == s->plan.strategy.dp));
    CHECK_INT(p->strategy.micro_batch, 4);
    CHECK_INT(p->strategy.grad_accum, s->plan.strategy.grad_accum);
    CHECK_INT(p->strategy.precision, s->plan.strategy.precision);
    CHECK_INT(p->workload.seq, s->plan.workload.seq);
    CHECK_INT(p->workload.global_batch, s->plan.workload.global_batch);
    CHECK_STR(p->model.name, "tiny-gpt2");
    CHECK_INT(p->train.steps, s->steps);
    CHECK(p->has_estimate);
    /* export again: the file exists, so it asks; n keeps it, y writes */
    s->sel[TUI_SCR_EDITOR] = TUI_KNOB_MICRO_BATCH;
    keys(s, "l");
    keys(s, "s\n");
    CHECK_INT(s->modal, TUI_MODAL_CONFIRM);
    keys(s, "n");
    CHECK(strstr(s->message, "not written") != NULL);
    CHECK(s->unsaved);
    keys(s, "s\ny");
    CHECK(!s->unsaved);
    plan_init(p);
    CHECK_OK(plan_load(path, p, &err), &err);
    CHECK_INT(p->strategy.micro_batch, 8);
    /* a directory that does not exist: says why */
    keys(s, "l");
    snprintf(k, sizeof(k), "s\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b"
                           "\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b"
                           "/nonexistent-dir/x.yaml\n");
    keys(s, k);
    CHECK_MSG(s->message_is_error && strstr(s->message, "could not write"), "%s", s->message);
    CHECK(s->unsaved);
    /* load the plan back into a fresh state */
    struct tui_state *t = new_state();
    snprintf(k, sizeof(k), "o%s\n", path);
    keys(t, k);
    CHECK_INT(t->screen, TUI_SCR_EDITOR);
    CHECK_INT(t->plan.strategy.micro_batch, 8);
    CHECK_STR(t->model_profile, "tiny-gpt2");
    CHECK(t->est_ok);
    free_state(t);
    free(p);
    free_state(s);
}

static void test_quit_and_run(void)
{
    struct tui_state *s = new_state();
    keys(s, "q");
    CHECK(s->quit); /* nothing to lose */
    free_state(s);
    s = planned_state("tiny-gpt2", NULL);
    keys(s, "q");
    CHECK_INT(s->modal, TUI_MODAL_CONFIRM);
    CHECK(strstr(s->confirm_text, "not saved") != NULL);
    keys(s, "n");
    CHECK(!s->quit && s->modal == TUI_MODAL_NONE);
    keys(s, "g");
    CHECK_INT(s->run.status, TUI_RUN_RUNNING);
    CHECK_INT(s->screen, TUI_SCR_RUN);
    CHECK(!tui_action_available(s, TUI_ACT_RUN_START));
    keys(s, "S");
    CHECK_INT(s->run.status, TUI_RUN_STOPPING);
    keys(s, "q");
    CHECK(strstr(s->confirm_text, "run is active") != NULL);
    keys(s, "\033");
    s->run.status = TUI_RUN_STOPPED;
    keys(s, "U");
    CHECK_INT(s->run.pid, 4243); /* resumed */
    keys(s, "A\n");
    CHECK_INT(s->run.status, TUI_RUN_EXITED);
    keys(s, "q");
    keys(s, "y");
    CHECK(s->quit);
    free_state(s);
}

static void test_metrics_feed(void)
{
    struct tui_run *r = sw_xmalloc(sizeof(*r));
    tui_run_init(r);
    r->steps_total = 10;
    const char *lines = "{\"step\":1,\"loss\":5.5,\"lr\":1e-4,\"grad_norm\":2.0,\"tokens_per_s\":"
                        "1000,\"ms_per_step\":100,\"mfu\":null,\"peak_rss_bytes\":1048576}\n"
                        "not json\n{\"step\":2,\"loss\":5.0,\"val_loss\":5.1,\"ms_per_step\":100,"
                        "\"mfu\":0.25}\n{\"step\":3,\"lo";
    tui_run_feed(r, lines, strlen(lines));
    CHECK_INT(r->ring_count, 2);
    CHECK_INT(r->lines_bad, 1);
    CHECK_NEAR(tui_run_last(r)->loss, 5.0, 0);
    CHECK(tui_run_metric(r, 0)->peak_rss_bytes == 1048576);
    CHECK(!tui_run_metric(r, 0)->has_mfu && tui_run_metric(r, 1)->has_mfu);
    CHECK(r->has_last_val);
    CHECK_NEAR(r->last_val_loss, 5.1, 0);
    const char *rest = "ss\":4.5,\"ms_per_step\":100}\n";
    tui_run_feed(r, rest, strlen(rest));
    CHECK_INT(r->ring_count, 3);
    CHECK_NEAR(tui_run_last(r)->loss, 4.5, 0);
    CHECK_NEAR(tui_run_eta_s(r), 0.7, 1e-9); /* 7 steps x 100 ms */
    CHECK(!tui_run_last(r)->has_grad_norm && tui_run_last(r)->loss_scale == 0);
    /* fp16-mixed lines: the loss scale, a skipped step's null norm */
    const char *f16 = "{\"step\":4,\"loss\":4.4,\"grad_norm\":null,\"loss_scale\":65536,"
                      "\"skipped\":true}\n{\"step\":5,\"loss\":4.3,\"grad_norm\":0.5,"
                      "\"loss_scale\":32768,\"skipped\":false}\n";
    tui_run_feed(r, f16, strlen(f16));
    CHECK_INT(r->ring_count, 5);
    const struct tui_metric *sk = tui_run_metric(r, 3), *ok5 = tui_run_metric(r, 4);
    CHECK(sk->skipped && !sk->has_grad_norm && sk->loss_scale == 65536);
    CHECK(!ok5->skipped && ok5->has_grad_norm && ok5->loss_scale == 32768);
    /* a resumed run appends from its checkpoint's step: the tail is replaced */
    const char *again = "{\"step\":2,\"loss\":4.9}\n";
    tui_run_feed(r, again, strlen(again));
    CHECK_INT(r->ring_count, 2);
    CHECK_NEAR(tui_run_last(r)->loss, 4.9, 0);
    /* the ring keeps the newest TUI_METRICS_CAP */
    tui_run_clear_metrics(r);
    char line[96];
    for (int i = 1; i <= TUI_METRICS_CAP + 10; i++) {
        int n = snprintf(line, sizeof(line), "{\"step\":%d,\"loss\":%d}\n", i, i);
        tui_run_feed(r, line, (size_t)n);
    }
    CHECK_INT(r->ring_count, TUI_METRICS_CAP);
    CHECK_INT(tui_run_metric(r, 0)->step, 11);
    CHECK_INT(tui_run_last(r)->step, TUI_METRICS_CAP + 10);
    free(r);
}

/* Real process control against a fake executor: a script that appends metrics lines and exits
 * 130 on SIGINT, as `scalewise run` does. */
static void test_runctl_process(void)
{
    char exe[512], dir[512];
    snprintf(exe, sizeof(exe), "%s/fake-run.sh", g_tmp);
    snprintf(dir, sizeof(dir), "%s/run1", g_tmp);
    FILE *f = fopen(exe, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "#!/bin/sh\n"
               "# $1=run $2=plan $3=--out $4=dir\n"
               "trap 'echo stopped; exit 130' INT\n"
               "i=0\n"
               "while [ $i -lt 200 ]; do i=$((i+1));\n"
               "  echo \"{\\\"step\\\":$i,\\\"loss\\\":5.0,\\\"ms_per_step\\\":20}\" >> \"$4/metrics.jsonl\"\n"
               "  sleep 0.02\n"
               "done\n");
    fclose(f);
    chmod(exe, 0755);
    tui_runctl_set_exe(exe);
    struct plan *p = sw_xmalloc(sizeof(*p));
    plan_init(p);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(profile_load_model("tiny-gpt2", &p->model, &err), &err);
    sw_strlcpy(p->model_ref.profile, "tiny-gpt2", sizeof(p->model_ref.profile));
    CHECK_OK(profile_load_hardware("cpu-avx2-2c", &p->hardware, &err), &err);
    sw_strlcpy(p->hw_ref.profile, "cpu-avx2-2c", sizeof(p->hw_ref.profile));
    p->workload.seq = 64;
    p->strategy.device = DEVICE_CPU;
    p->strategy.precision = PREC_FP32;
    sw_strlcpy(p->train.out_dir, dir, sizeof(p->train.out_dir));
    struct tui_run *r = sw_xmalloc(sizeof(*r));
    tui_run_init(r);
    CHECK_OK(tui_runctl_start(r, p, NULL, &err), &err);
    CHECK_INT(r->status, TUI_RUN_RUNNING);
    char pidfile[600];
    snprintf(pidfile, sizeof(pidfile), "%s/run.pid", dir);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(pidfile, 64, &text, &len, &err), &err);
    CHECK(text && atol(text) == r->pid);
    free(text);
    double t0 = sw_now_s();
    while (r->ring_count < 3 && sw_now_s() - t0 < 5) {
        tui_runctl_poll(r);
        usleep(10000);
    }
    CHECK_MSG(r->ring_count >= 3, "metrics lines seen: %d", r->ring_count);
    CHECK_OK(tui_runctl_stop(r, &err), &err);
    CHECK_INT(r->status, TUI_RUN_STOPPING);
    t0 = sw_now_s();
    while (r->status == TUI_RUN_STOPPING && sw_now_s() - t0 < 5) {
        tui_runctl_poll(r);
        usleep(10000);
    }
    CHECK_INT(r->status, TUI_RUN_STOPPED);
    CHECK_INT(r->exit_code, 130);
    int seen = r->ring_count;
    /* re-attach as a new TUI would: the process is gone, the metrics are replayed */
    struct tui_run *r2 = sw_xmalloc(sizeof(*r2));
    CHECK_OK(tui_runctl_attach(r2, dir, &err), &err);
    CHECK_INT(r2->status, TUI_RUN_EXITED);
    CHECK_INT(r2->ring_count, seen);
    CHECK(tui_runctl_attach(r2, "/nonexistent-run-dir", &err) < 0);
    tui_runctl_set_exe(NULL);
    free(r2);
    free(r);
    free(p);
}

/* The key table of docs/tui.md is the action table: one row per action, in order. */
static void doc_row(int a, char *out, size_t n)
{
    char keys_text[64] = "";
    size_t used = 0;
    for (int k = 0; k < 3; k++) {
        char kn[16];
        if (!tui_actions[a].keys[k])
            continue;
        tui_key_name(tui_actions[a].keys[k], kn, sizeof(kn));
        used += (size_t)snprintf(keys_text + used, sizeof(keys_text) - used, "%s`%s`",
                                 used ? " " : "", kn);
    }
    snprintf(out, n, "| %s | %s | %s |", keys_text, tui_actions[a].label, tui_actions[a].help);
}

static void test_docs_keys(void)
{
    if (getenv("SW_PRINT_KEY_TABLE"))
        for (int a = 0; a < TUI_ACT_COUNT; a++) {
            char row[512];
            doc_row(a, row, sizeof(row));
            printf("%s\n", row);
        }
    char *doc = NULL;
    size_t len = 0;
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(sw_read_file("docs/tui.md", 1 << 20, &doc, &len, &err), &err);
    if (!doc)
        return;
    const char *from = doc;
    for (int a = 0; a < TUI_ACT_COUNT; a++) {
        char row[512];
        doc_row(a, row, sizeof(row));
        const char *at = strstr(from, row);
        CHECK_MSG(at != NULL, "docs/tui.md lacks (in order) the row\n%s", row);
        if (at)
            from = at + strlen(row);
    }
    free(doc);
}

int main(void)
{
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/sw-test-tui-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    ops_init();
    RUN(test_action_table);
    RUN(test_every_action);
    RUN(test_whatif);
    RUN(test_export_roundtrip);
    RUN(test_quit_and_run);
    RUN(test_metrics_feed);
    RUN(test_runctl_process);
    RUN(test_docs_keys);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
    {
        char tmp_plan[64];
        snprintf(tmp_plan, sizeof(tmp_plan), "/tmp/sw_test_tui_%ld.yaml", (long)getpid());
        unlink(tmp_plan);
    }
    return harness_finish("test_tui_state");
}
