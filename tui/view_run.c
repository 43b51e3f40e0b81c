/* The Run screen: the run's state (process, directory, step and ETA, losses, tokens/s and
 * memory measured beside the advisor's prediction) on the left, and a loss chart of the metrics
 * ring buffer on the right (training loss as points, validation loss as diamonds, one column
 * per bucket of steps). The run itself is a `scalewise run` child process; these numbers come
 * from its metrics.jsonl. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <math.h>
#include <stdio.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

static void draw_chart(WINDOW *win, const struct tui_rect *p, const struct tui_run *run)
{
    int ch = p->h - 4, cw = p->w - 12;
    int x0 = p->x + 10, y0 = p->y + 2;
    if (ch < 3 || cw < 10)
        return;
    int n = run->ring_count;
    if (n == 0) {
        tv_text(win, y0, x0, cw, ROLE_DIM, "no metrics yet");
        return;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        const struct tui_metric *m = tui_run_metric(run, i);
        if (isfinite(m->loss)) {
            lo = fmin(lo, m->loss);
            hi = fmax(hi, m->loss);
        }
        if (m->has_val && isfinite(m->val_loss)) {
            lo = fmin(lo, m->val_loss);
            hi = fmax(hi, m->val_loss);
        }
    }
    if (!isfinite(lo))
        return;
    if (hi - lo < 1e-6)
        hi = lo + 1e-6;
    tv_textf(win, y0, p->x + 1, 9, ROLE_DIM, "%8.3f", hi);
    tv_textf(win, y0 + ch - 1, p->x + 1, 9, ROLE_DIM, "%8.3f", lo);
    const struct tui_glyphs *g = tui_glyphs();
    for (int x = 0; x < cw; x++)
        tv_text(win, y0 + ch, x0 + x, 1, ROLE_DIM, g->hline);
    int64_t first = tui_run_metric(run, 0)->step, last = tui_run_last(run)->step;
    tv_textf(win, y0 + ch + 1, x0, cw, ROLE_DIM, "step %lld", (long long)first);
    char lab[32];
    int ll = snprintf(lab, sizeof(lab), "step %lld", (long long)last);
    tv_text(win, y0 + ch + 1, x0 + cw - ll, ll, ROLE_DIM, lab);
    /* one column per bucket of consecutive metrics: the bucket's mean loss */
    for (int col = 0; col < cw; col++) {
        int a = (int)((int64_t)col * n / cw), b = (int)((int64_t)(col + 1) * n / cw);
        if (n < cw) {
            a = col < n ? col : n;
            b = a + 1 <= n ? a + 1 : a;
        }
        if (b <= a)
            continue;
        double sum = 0, vsum = 0;
        int k = 0, vk = 0;
        for (int i = a; i < b; i++) {
            const struct tui_metric *m = tui_run_metric(run, i);
            sum += m->loss;
            k++;
            if (m->has_val) {
                vsum += m->val_loss;
                vk++;
            }
        }
        int row = (int)lround((hi - sum / k) / (hi - lo) * (ch - 1));
        tv_text(win, y0 + row, x0 + col, 1, ROLE_CHART, g->point);
        if (vk) {
            int vrow = (int)lround((hi - vsum / vk) / (hi - lo) * (ch - 1));
            tv_text(win, y0 + vrow, x0 + col, 1, ROLE_WARN, g->val);
        }
    }
}

void view_run_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    const struct tui_rect *l = &r->left, *p = &r->right;
    const struct tui_run *run = &s->run;
    tv_pane_title(win, l, "Run", s->focus == 0);
    tv_pane_title(win, p, "Loss", s->focus == 1);
    int x = l->x + 1, w = l->w - 2, y = l->y + 1, end = l->y + l->h;
    char a[48], b[48];
#define LINE(role, ...)                                                                            \
    do {                                                                                           \
        if (y < end)                                                                               \
            tv_textf(win, y, x, w, role, __VA_ARGS__);                                             \
        y++;                                                                                       \
    } while (0)
    enum tui_role st_role = run->status == TUI_RUN_FAILED ? ROLE_OVER_BUDGET
                            : run->status == TUI_RUN_RUNNING ? ROLE_OK
                                                             : ROLE_NORMAL;
    if (run->status == TUI_RUN_NONE) {
        LINE(ROLE_NORMAL, "no run yet");
        LINE(ROLE_DIM, "g starts the edited plan in");
        LINE(ROLE_DIM, "  %s", s->out_dir);
        LINE(ROLE_DIM, "A attaches to a run directory");
    } else {
        LINE(st_role, "%s%s%s", run->status == TUI_RUN_FAILED ? "! " : "",
             tui_run_status_name(run->status),
             run->status == TUI_RUN_FAILED || run->status == TUI_RUN_STOPPED ? "" : "");
        if (run->pid > 0)
            LINE(ROLE_NORMAL, "pid %d%s", run->pid, run->own_child ? "" : " (attached)");
        if (run->exit_code >= 0)
            LINE(ROLE_NORMAL, "exit status %d", run->exit_code);
        LINE(ROLE_NORMAL, "dir %s", run->out_dir);
        const struct tui_metric *m = tui_run_last(run);
        if (m) {
            LINE(ROLE_NORMAL, "step %lld / %lld", (long long)m->step, (long long)run->steps_total);
            double eta = tui_run_eta_s(run);
            LINE(ROLE_NORMAL, "ETA %s", eta >= 0 ? tv_fmt_seconds(eta, a, sizeof(a)) : "n/a");
            LINE(ROLE_TITLE, "loss %.4f", m->loss);
            if (run->has_last_val)
                LINE(ROLE_NORMAL, "val loss %.4f", run->last_val_loss);
            LINE(ROLE_NORMAL, "tokens/s %s (predicted %s)",
                 tv_fmt_count(m->tokens_per_s, a, sizeof(a)),
                 run->predicted_tokens_per_s > 0
                     ? tv_fmt_count(run->predicted_tokens_per_s, b, sizeof(b))
                     : "n/a");
            LINE(ROLE_NORMAL, "memory %.3f GiB RSS", m->peak_rss_bytes / GIB);
            if (run->predicted_bytes > 0)
                LINE(ROLE_NORMAL, "  predicted %.3f GiB", run->predicted_bytes / GIB);
            if (m->has_mfu)
                LINE(ROLE_NORMAL, "MFU %.1f%%", m->mfu * 100);
            if (m->has_grad_norm)
                LINE(ROLE_DIM, "lr %.3g  grad norm %.3g", m->lr, m->grad_norm);
            else
                LINE(ROLE_DIM, "lr %.3g  grad norm n/a", m->lr);
            if (m->loss_scale > 0)
                LINE(m->skipped ? ROLE_WARN : ROLE_DIM, "loss scale %g%s", m->loss_scale,
                     m->skipped ? "  (step skipped: gradients not finite)" : "");
        } else {
            LINE(ROLE_DIM, "waiting for metrics.jsonl");
        }
        if (run->note[0])
            LINE(ROLE_WARN, "! %s", run->note);
        if (run->status == TUI_RUN_RUNNING)
            LINE(ROLE_DIM, "S stops with a checkpoint");
        else if (run->status == TUI_RUN_STOPPED)
            LINE(ROLE_DIM, "U resumes from the checkpoint");
    }
#undef LINE
    draw_chart(win, p, run);
}

#endif /* SW_HAVE_NCURSES */
