/* Run control for the TUI, and the default table of what the state machine calls: starts
 * `scalewise run PLAN --out DIR --quiet` (the binary itself through /proc/self/exe) as a
 * detached child in its own session with stdout/stderr in DIR/run.log and its pid in
 * DIR/run.pid, so the run keeps going when the TUI closes; stops it with SIGINT (the executor
 * finishes the step, checkpoints and exits 130, docs/run.md); re-attaches to a run directory by
 * its run.pid and metrics.jsonl; and parses metrics.jsonl incrementally (json-c) into the ring
 * buffer of struct tui_run. No ncurses here; the executor's internals are never included: the
 * metrics file is the interface. */
#include "tui/tui.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

/* ---------------------------------------------------------------- metrics (pure) */

void tui_run_init(struct tui_run *r)
{
    memset(r, 0, sizeof(*r));
    r->status = TUI_RUN_NONE;
    r->exit_code = -1;
}

void tui_run_clear_metrics(struct tui_run *r)
{
    r->ring_start = r->ring_count = 0;
    r->lines_total = r->lines_bad = 0;
    r->has_last_val = false;
    r->metrics_offset = 0;
    r->partial_len = 0;
}

const struct tui_metric *tui_run_metric(const struct tui_run *r, int i)
{
    if (i < 0 || i >= r->ring_count)
        return NULL;
    return &r->ring[(r->ring_start + i) % TUI_METRICS_CAP];
}

const struct tui_metric *tui_run_last(const struct tui_run *r)
{
    return r->ring_count ? tui_run_metric(r, r->ring_count - 1) : NULL;
}

static bool get_num(struct json_object *o, const char *key, double *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return false;
    enum json_type t = json_object_get_type(v);
    if (t != json_type_double && t != json_type_int)
        return false;
    *out = json_object_get_double(v);
    return true;
}

static void parse_line(struct tui_run *r, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    r->lines_total++;
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object);
    struct tui_metric m;
    memset(&m, 0, sizeof(m));
    double step = 0, rss = 0;
    if (ok && get_num(o, "step", &step) && get_num(o, "loss", &m.loss)) {
        m.step = (int64_t)step;
        m.has_val = get_num(o, "val_loss", &m.val_loss);
        get_num(o, "lr", &m.lr);
        m.has_grad_norm = get_num(o, "grad_norm", &m.grad_norm);
        get_num(o, "loss_scale", &m.loss_scale);
        struct json_object *sk;
        m.skipped = json_object_object_get_ex(o, "skipped", &sk) && sk &&
                    json_object_get_type(sk) == json_type_boolean && json_object_get_boolean(sk);
        get_num(o, "tokens_per_s", &m.tokens_per_s);
        get_num(o, "ms_per_step", &m.ms_per_step);
        m.has_mfu = get_num(o, "mfu", &m.mfu);
        if (get_num(o, "peak_rss_bytes", &rss) && rss > 0)
            m.peak_rss_bytes = (uint64_t)rss;
        /* A resumed run drops lines after its checkpoint and appends again from there: a step
         * not after the newest one replaces the tail (docs/run.md). */
        while (r->ring_count > 0 && tui_run_last(r)->step >= m.step)
            r->ring_count--;
        if (r->ring_count == TUI_METRICS_CAP) {
            r->ring_start = (r->ring_start + 1) % TUI_METRICS_CAP;
            r->ring_count--;
        }
        r->ring[(r->ring_start + r->ring_count) % TUI_METRICS_CAP] = m;
        r->ring_count++;
        if (m.has_val) {
            r->last_val_loss = m.val_loss;
            r->has_last_val = true;
        }
    } else {
        r->lines_bad++;
    }
    if (o)
        json_object_put(o);
    json_tokener_free(tok);
}

void tui_run_feed(struct tui_run *r, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = bytes[i];
        if (c == '\n') {
            parse_line(r, r->partial, r->partial_len);
            r->partial_len = 0;
        } else if (r->partial_len + 1 < sizeof(r->partial)) {
            r->partial[r->partial_len++] = c;
        } else {
            r->partial_len = 0; /* an over-long line is not a metrics line */
            r->lines_bad++;
        }
    }
}

double tui_run_eta_s(const struct tui_run *r)
{
    const struct tui_metric *last = tui_run_last(r);
    if (!last || r->steps_total <= 0 || last->ms_per_step <= 0)
        return -1;
    /* mean of the last (up to) 10 steps: one slow evaluation step does not swing the ETA */
    double sum = 0;
    int k = 0;
    for (int i = r->ring_count - 1; i >= 0 && k < 10; i--, k++)
        sum += tui_run_metric(r, i)->ms_per_step;
    double left = (double)(r->steps_total - last->step);
    return left > 0 ? left * (sum / k) / 1e3 : 0;
}

/* ---------------------------------------------------------------- process control */

static char g_exe[PLAN_PATH_MAX];

void tui_runctl_set_exe(const char *path)
{
    sw_strlcpy(g_exe, path ? path : "", sizeof(g_exe));
}

static int join(char *out, size_t n, const char *dir, const char *file, struct sw_err *err)
{
    int len = snprintf(out, n, "%s/%s", dir, file);
    if (len < 0 || (size_t)len >= n)
        return sw_errf(err, SW_ERANGE, "path '%s/%s' is too long", dir, file);
    return 0;
}

static int mkdir_p(const char *dir, struct sw_err *err)
{
    char tmp[PLAN_PATH_MAX];
    if (sw_strlcpy(tmp, dir, sizeof(tmp)) >= sizeof(tmp))
        return sw_errf(err, SW_ERANGE, "path '%s' is too long", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return sw_errf(err, SW_EIO, "cannot create '%s': %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return sw_errf(err, SW_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    return 0;
}

int tui_runctl_start(struct tui_run *r, const struct plan *p, const char *resume_ckpt,
                     struct sw_err *err)
{
    int rc;
    const char *dir = p->train.out_dir;
    char plan_path[PLAN_PATH_MAX], log_path[PLAN_PATH_MAX], pid_path[PLAN_PATH_MAX];
    if ((rc = mkdir_p(dir, err)) < 0 || (rc = join(plan_path, sizeof(plan_path), dir,
                                                   "plan.yaml", err)) < 0 ||
        (rc = join(log_path, sizeof(log_path), dir, "run.log", err)) < 0 ||
        (rc = join(pid_path, sizeof(pid_path), dir, "run.pid", err)) < 0)
        return rc;
    if ((rc = plan_save(plan_path, p, err)) < 0)
        return rc;
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        return sw_errf(err, SW_EIO, "cannot open '%s': %s", log_path, strerror(errno));
    const char *exe = g_exe[0] ? g_exe : "/proc/self/exe";
    char *argv[12];
    int n = 0;
    argv[n++] = (char *)"scalewise";
    argv[n++] = (char *)"run";
    argv[n++] = plan_path;
    argv[n++] = (char *)"--out";
    argv[n++] = (char *)dir;
    argv[n++] = (char *)"--quiet";
    if (resume_ckpt) {
        argv[n++] = (char *)"--resume";
        argv[n++] = (char *)resume_ckpt;
    }
    argv[n] = NULL;
    bool resumed = resume_ckpt != NULL;
    /* Read metrics.jsonl from its start: a fresh run starts a fresh file, a resumed one trims
     * the lines after its checkpoint itself. */
    tui_run_clear_metrics(r);
    if (!resumed) {
        char mpath[PLAN_PATH_MAX];
        if (join(mpath, sizeof(mpath), dir, "metrics.jsonl", err) == 0)
            unlink(mpath);
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        return sw_errf(err, SW_EIO, "fork failed: %s", strerror(errno));
    }
    if (pid == 0) {
        /* child: own session (no SIGHUP/SIGINT from the TUI's terminal), output to run.log */
        setsid();
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0) {
            dup2(null_fd, 0);
            close(null_fd);
        }
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(exe, argv);
        dprintf(2, "scalewise tui: cannot start %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(log_fd);
    char pid_text[32];
    int len = snprintf(pid_text, sizeof(pid_text), "%d\n", (int)pid);
    if (sw_write_file_atomic(pid_path, pid_text, (size_t)len, err) < 0) {
        kill(pid, SIGTERM);
        return err->code;
    }
    r->pid = (int)pid;
    r->own_child = true;
    r->status = TUI_RUN_RUNNING;
    r->exit_code = -1;
    sw_strlcpy(r->out_dir, dir, sizeof(r->out_dir));
    sw_strlcpy(r->plan_path, plan_path, sizeof(r->plan_path));
    r->steps_total = p->train.steps;
    r->note[0] = '\0';
    return 0;
}

int tui_runctl_stop(struct tui_run *r, struct sw_err *err)
{
    if (r->pid <= 0 || r->status != TUI_RUN_RUNNING)
        return sw_errf(err, SW_EINVAL, "no run is active");
    if (kill((pid_t)r->pid, SIGINT) < 0)
        return sw_errf(err, SW_EIO, "cannot signal pid %d: %s", r->pid, strerror(errno));
    r->status = TUI_RUN_STOPPING;
    return 0;
}

int tui_runctl_latest_ckpt(const char *out_dir, char *out, size_t n, struct sw_err *err)
{
    out[0] = '\0';
    char path[PLAN_PATH_MAX];
    int rc;
    if ((rc = join(path, sizeof(path), out_dir, "latest.txt", err)) < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    if ((rc = sw_read_file(path, 4096, &text, &len, err)) < 0)
        return rc;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    if (len == 0) {
        free(text);
        return sw_errf(err, SW_ENOENT, "%s is empty", path);
    }
    int w = text[0] == '/' ? snprintf(out, n, "%s", text) : snprintf(out, n, "%s/%s", out_dir, text);
    free(text);
    if (w < 0 || (size_t)w >= n)
        return sw_errf(err, SW_ERANGE, "checkpoint path in %s is too long", path);
    return 0;
}

/* Last non-empty line of DIR/run.log (why a run failed). */
static void last_log_line(const char *dir, char *out, size_t n)
{
    char path[PLAN_PATH_MAX];
    struct sw_err err;
    sw_err_init(&err);
    out[0] = '\0';
    if (join(path, sizeof(path), dir, "run.log", &err) < 0)
        return;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (l > 0)
            sw_strlcpy(out, line, n);
    }
    fclose(f);
}

static bool read_metrics(struct tui_run *r)
{
    char path[PLAN_PATH_MAX];
    struct sw_err err;
    sw_err_init(&err);
    if (join(path, sizeof(path), r->out_dir, "metrics.jsonl", &err) < 0)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool changed = false;
    if (fstat(fd, &st) == 0 && st.st_size < r->metrics_offset) {
        /* truncated (a resumed run trims the lines after its checkpoint): read again */
        tui_run_clear_metrics(r);
        changed = true;
    }
    if (lseek(fd, r->metrics_offset, SEEK_SET) >= 0) {
        char buf[16384];
        ssize_t got;
        while ((got = read(fd, buf, sizeof(buf))) > 0) {
            tui_run_feed(r, buf, (size_t)got);
            r->metrics_offset += got;
            changed = true;
        }
    }
    close(fd);
    return changed;
}

bool tui_runctl_poll(struct tui_run *r)
{
    if (r->status == TUI_RUN_NONE || !r->out_dir[0])
        return false;
    bool changed = read_metrics(r);
    if (r->pid > 0 && (r->status == TUI_RUN_RUNNING || r->status == TUI_RUN_STOPPING)) {
        bool gone = false;
        int code = -1;
        if (r->own_child) {
            int wst;
            pid_t w = waitpid((pid_t)r->pid, &wst, WNOHANG);
            if (w == (pid_t)r->pid) {
                gone = true;
                code = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
            } else if (w < 0) {
                gone = true;
            }
        } else if (kill((pid_t)r->pid, 0) < 0 && errno == ESRCH) {
            gone = true;
        }
        if (gone) {
            read_metrics(r);
            r->exit_code = code;
            bool stopping = r->status == TUI_RUN_STOPPING;
            if (code == 0)
                r->status = TUI_RUN_DONE;
            else if (code == 130 || (code < 0 && stopping))
                r->status = TUI_RUN_STOPPED;
            else if (code < 0)
                r->status = TUI_RUN_EXITED;
            else
                r->status = TUI_RUN_FAILED;
            if (r->status == TUI_RUN_FAILED)
                last_log_line(r->out_dir, r->note, sizeof(r->note));
            changed = true;
        }
    }
    return changed;
}

int tui_runctl_attach(struct tui_run *r, const char *out_dir, struct sw_err *err)
{
    char path[PLAN_PATH_MAX];
    int rc;
    struct stat st;
    if (stat(out_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return sw_errf(err, SW_ENOENT, "'%s' is not a directory", out_dir);
    if ((rc = join(path, sizeof(path), out_dir, "metrics.jsonl", err)) < 0)
        return rc;
    char pid_path[PLAN_PATH_MAX];
    if ((rc = join(pid_path, sizeof(pid_path), out_dir, "run.pid", err)) < 0)
        return rc;
    bool has_metrics = access(path, R_OK) == 0;
    char *text = NULL;
    size_t len = 0;
    int pid = 0;
    struct sw_err e2;
    sw_err_init(&e2);
    if (sw_read_file(pid_path, 64, &text, &len, &e2) == 0) {
        int64_t v;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            text[--len] = '\0';
        if (sw_parse_i64(text, 1, (int64_t)1 << 30, "pid", &v, &e2) == 0)
            pid = (int)v;
        free(text);
    }
    if (!has_metrics && !pid)
        return sw_errf(err, SW_ENOENT, "no metrics.jsonl or run.pid in '%s'", out_dir);
    tui_run_init(r);
    sw_strlcpy(r->out_dir, out_dir, sizeof(r->out_dir));
    if ((rc = join(r->plan_path, sizeof(r->plan_path), out_dir, "plan.yaml", err)) < 0)
        return rc;
    /* steps of the run from its plan, for the ETA (best effort) */
    struct plan *p = sw_xmalloc(sizeof(*p));
    plan_init(p);
    if (plan_load(r->plan_path, p, &e2) == 0) {
        r->steps_total = p->train.steps;
        r->predicted_bytes = p->has_estimate ? p->estimate.dev.total : 0;
        r->predicted_tokens_per_s = p->has_estimate ? p->estimate.tokens_per_s : 0;
    }
    free(p);
    r->pid = pid;
    r->own_child = false;
    bool alive = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    r->status = alive ? TUI_RUN_RUNNING : TUI_RUN_EXITED;
    read_metrics(r);
    return 0;
}

/* ---------------------------------------------------------------- the default table */

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

const struct tui_ops tui_ops_default = {
    .probe = hw_probe,
    .load_hw_profile = profile_load_hardware,
    .load_model_profile = profile_load_model,
    .load_model_config = model_load_hf_config,
    .list_profiles = profiles_list,
    .estimate = advisor_estimate,
    .search = advisor_search,
    .plan_load = plan_load,
    .plan_save = plan_save,
    .file_exists = file_exists,
    .run_start = tui_runctl_start,
    .run_stop = tui_runctl_stop,
    .run_attach = tui_runctl_attach,
    .run_latest_ckpt = tui_runctl_latest_ckpt,
};
