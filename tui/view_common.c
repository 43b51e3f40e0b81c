/* Drawing helpers every view shares (clipped text, pane titles, a scrolled column of lines, the
 * stacked memory bar, the field list, the estimate block, number formats) and tui_draw, which
 * lays the screen out and draws the dirty regions of the current screen. Used by the loop and,
 * unchanged, by the golden tests on an off-screen terminal. Views read the state; they never
 * change it. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

void tv_clear(WINDOW *win, const struct tui_rect *r)
{
    wattrset(win, tui_role_attr(ROLE_NORMAL));
    for (int y = 0; y < r->h; y++) {
        wmove(win, r->y + y, r->x);
        for (int x = 0; x < r->w; x++)
            waddch(win, ' ');
    }
}

/* Bytes of the first `cols` characters of a UTF-8 string (each counted one column). */
static size_t clip_bytes(const char *t, int cols)
{
    size_t i = 0;
    int c = 0;
    while (t[i] && c < cols) {
        i++;
        while ((t[i] & 0xc0) == 0x80)
            i++;
        c++;
    }
    return i;
}

void tv_text(WINDOW *win, int y, int x, int w, enum tui_role role, const char *text)
{
    if (w <= 0)
        return;
    wattrset(win, tui_role_attr(role));
    mvwaddnstr(win, y, x, text, (int)clip_bytes(text, w));
    wattrset(win, tui_role_attr(ROLE_NORMAL));
}

void tv_textf(WINDOW *win, int y, int x, int w, enum tui_role role, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    tv_text(win, y, x, w, role, buf);
}

void tv_column_init(struct tv_column *c, WINDOW *win, const struct tui_rect *p, int scroll)
{
    c->win = win;
    c->x = p->x + 2;
    c->w = p->w - 3;
    c->top = p->y;
    c->end = p->y + p->h;
    c->y = p->y + 1 - scroll;
}

bool tv_column_visible(const struct tv_column *c)
{
    return c->y > c->top && c->y < c->end;
}

void tv_line(struct tv_column *c, enum tui_role role, const char *fmt, ...)
{
    if (tv_column_visible(c)) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        tv_text(c->win, c->y, c->x, c->w, role, buf);
    }
    c->y++;
}

void tv_separator(WINDOW *win, const struct tui_rect *r)
{
    for (int y = 0; y < r->h; y++)
        tv_text(win, r->y + y, r->x, 1, ROLE_DIM, tui_glyphs()->vline);
}

void tv_box(WINDOW *win, const struct tui_rect *r, const char *title)
{
    const struct tui_glyphs *g = tui_glyphs();
    tv_clear(win, r);
    for (int x = 1; x < r->w - 1; x++) {
        tv_text(win, r->y, r->x + x, 1, ROLE_NORMAL, g->hline);
        tv_text(win, r->y + r->h - 1, r->x + x, 1, ROLE_NORMAL, g->hline);
    }
    for (int y = 1; y < r->h - 1; y++) {
        tv_text(win, r->y + y, r->x, 1, ROLE_NORMAL, g->vline);
        tv_text(win, r->y + y, r->x + r->w - 1, 1, ROLE_NORMAL, g->vline);
    }
    tv_text(win, r->y, r->x, 1, ROLE_NORMAL, g->corner[0]);
    tv_text(win, r->y, r->x + r->w - 1, 1, ROLE_NORMAL, g->corner[1]);
    tv_text(win, r->y + r->h - 1, r->x, 1, ROLE_NORMAL, g->corner[2]);
    tv_text(win, r->y + r->h - 1, r->x + r->w - 1, 1, ROLE_NORMAL, g->corner[3]);
    if (title)
        tv_textf(win, r->y, r->x + 2, r->w - 4, ROLE_TITLE, " %s ", title);
}

void tv_pane_title(WINDOW *win, const struct tui_rect *r, const char *title, bool focused)
{
    int x = r->x + (r->x > 0 ? 2 : 1);
    tv_textf(win, r->y, x, r->w - 3, focused ? ROLE_TAB_ACTIVE : ROLE_HEADING, " %s ", title);
}

const char *tv_fmt_seconds(double s, char *buf, size_t n)
{
    if (!(s > 0))
        snprintf(buf, n, "-");
    else if (s < 1e-3)
        snprintf(buf, n, "%.1f us", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, n, "%.2f ms", s * 1e3);
    else if (s < 120)
        snprintf(buf, n, "%.2f s", s);
    else if (s < 7200)
        snprintf(buf, n, "%.1f min", s / 60);
    else if (s < 86400 * 2)
        snprintf(buf, n, "%.1f h", s / 3600);
    else
        snprintf(buf, n, "%.1f days", s / 86400);
    return buf;
}

const char *tv_fmt_count(double x, char *buf, size_t n)
{
    if (x >= 1e12)
        snprintf(buf, n, "%.2fT", x / 1e12);
    else if (x >= 1e9)
        snprintf(buf, n, "%.2fB", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.1fk", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
    return buf;
}

struct seg {
    char letter;
    enum tui_role role;
    const char *name;
};
static const struct seg segs[7] = {
    {'W', ROLE_SEG_WEIGHTS, "weights"},   {'G', ROLE_SEG_GRADIENTS, "gradients"},
    {'O', ROLE_SEG_OPTIMIZER, "optimizer"}, {'A', ROLE_SEG_ACTIVATIONS, "activations"},
    {'K', ROLE_SEG_KV, "KV cache"},       {'S', ROLE_SEG_WORKSPACE, "workspace"},
    {'R', ROLE_SEG_OVERHEAD, "runtime overhead"},
};

void tv_mem_bar(WINDOW *win, int y, int x, int w, const struct mem_split *m, double capacity)
{
    if (w < 4)
        return;
    double part[7] = {m->weights,  m->gradients, m->optimizer, m->activations,
                      m->kv_cache, m->workspace, m->overhead};
    double scale = m->total > capacity ? m->total : capacity;
    if (!(scale > 0))
        scale = 1;
    /* cells by cumulative rounding, so the segments add up to the total's cells */
    double cum = 0;
    int drawn = 0;
    wmove(win, y, x);
    for (int i = 0; i < 7; i++) {
        cum += part[i] > 0 ? part[i] : 0;
        int upto = (int)lround(cum / scale * w);
        if (part[i] > 0 && upto <= drawn && drawn < w)
            upto = drawn + 1; /* every nonzero part shows at least one cell */
        if (upto > w)
            upto = w;
        wattrset(win, tui_role_attr(segs[i].role));
        for (; drawn < upto; drawn++)
            mvwaddch(win, y, x + drawn, (chtype)segs[i].letter);
    }
    int cap_cell = capacity > 0 ? (int)lround(capacity / scale * w) : w;
    for (; drawn < w; drawn++)
        tv_text(win, y, x + drawn, 1, ROLE_DIM, tui_glyphs()->free);
    if (m->total > capacity && cap_cell > 0 && cap_cell < w)
        tv_text(win, y, x + cap_cell, 1, ROLE_OVER_BUDGET, tui_glyphs()->cap);
    wattrset(win, tui_role_attr(ROLE_NORMAL));
}

void tv_mem_legend(WINDOW *win, int y, int x, int w)
{
    int cx = x;
    for (int i = 0; i < 7 && cx < x + w; i++) {
        char item[32];
        snprintf(item, sizeof(item), "%c", segs[i].letter);
        tv_text(win, y, cx, x + w - cx, segs[i].role, item);
        const char *short_name[7] = {"weights", "grads", "optim", "activ", "KV", "work", "runtime"};
        snprintf(item, sizeof(item), " %s ", short_name[i]);
        tv_text(win, y, cx + 1, x + w - cx - 1, ROLE_DIM, item);
        cx += 2 + (int)strlen(item);
    }
}

void tv_field_list(WINDOW *win, const struct tui_rect *r, const struct tui_state *s,
                   enum tui_screen scr)
{
    int rows = tui_screen_rows(s, scr);
    int sel = s->sel[scr];
    int avail = r->h - 2;
    int top = sel >= avail ? sel - avail + 1 : 0;
    int lw = r->w - 2 < 22 ? r->w - 2 : 20;
    for (int i = top; i < rows && i - top < avail; i++) {
        char label[64], value[PLAN_PATH_MAX];
        tui_field_text(s, scr, i, label, sizeof(label), value, sizeof(value));
        int y = r->y + 1 + (i - top);
        bool on = i == sel;
        enum tui_role role = on ? (s->focus == 0 ? ROLE_SELECTED : ROLE_TAB_ACTIVE) : ROLE_NORMAL;
        char line[PLAN_PATH_MAX + 80];
        snprintf(line, sizeof(line), "%c%-*.*s %s", on ? '>' : ' ', lw, lw, label, value);
        tv_textf(win, y, r->x, r->w - 1, role, "%-*s", r->w - 1, line);
    }
    if (rows == 0)
        tv_text(win, r->y + 1, r->x + 1, r->w - 2, ROLE_DIM, "(nothing here yet)");
}

int tv_estimate(WINDOW *win, const struct tui_rect *r, int y, const struct tui_state *s)
{
    int x = r->x + 2, w = r->w - 3;
    char a[48], b[48], c[48];
    if (!s->have_plan) {
        tv_text(win, y++, x, w, ROLE_DIM, "no plan: choose a model (w) and hardware (d)");
        return y;
    }
    if (!s->est_ok) {
        tv_text(win, y++, x, w, ROLE_OVER_BUDGET, "! INVALID: this setting breaks a rule:");
        /* the reason may be long: wrap it over the next lines */
        const char *msg = s->est_error;
        while (*msg && y < r->y + r->h) {
            size_t n = clip_bytes(msg, w - 2);
            if (msg[n]) /* break at the last space that fits */
                for (size_t k = n; k > n / 2; k--)
                    if (msg[k] == ' ') {
                        n = k + 1;
                        break;
                    }
            char part[512];
            snprintf(part, sizeof(part), "%.*s", (int)n, msg);
            tv_text(win, y++, x + 2, w - 2, ROLE_WARN, part);
            msg += n;
        }
        return y;
    }
    const struct estimate *e = &s->est;
    const struct mem_split *m = &e->dev;
    double use = e->capacity_bytes > 0 ? m->total / e->capacity_bytes : 0;
    if (e->fits)
        tv_textf(win, y++, x, w, ROLE_OK, "fits: %.2f of %.2f GiB per device (%.0f%%)",
                 m->total / GIB, e->capacity_bytes / GIB, use * 100);
    else
        tv_textf(win, y++, x, w, ROLE_OVER_BUDGET,
                 "! OVER BUDGET: %.2f of %.2f GiB per device (%.0f%%)", m->total / GIB,
                 e->capacity_bytes / GIB, use * 100);
    tv_mem_bar(win, y++, x, w, m, e->capacity_bytes);
    tv_mem_legend(win, y++, x, w);
    tv_textf(win, y++, x, w, ROLE_NORMAL, "W %8.3f G %8.3f O %8.3f A %8.3f GiB", m->weights / GIB,
             m->gradients / GIB, m->optimizer / GIB, m->activations / GIB);
    tv_textf(win, y++, x, w, ROLE_NORMAL, "K %8.3f S %8.3f R %8.3f", m->kv_cache / GIB,
             m->workspace / GIB, m->overhead / GIB);
    if (!e->host_fits)
        tv_textf(win, y++, x, w, ROLE_OVER_BUDGET, "! HOST OVER BUDGET: %.2f of %.2f GiB host",
                 e->host_total_bytes / GIB, e->host_capacity_bytes / GIB);
    if (s->plan.workload.task == TASK_TRAIN) {
        tv_textf(win, y++, x, w, ROLE_NORMAL, "step %s   %s tokens/s   MFU %.1f%%",
                 tv_fmt_seconds(e->step_time_s, a, sizeof(a)),
                 tv_fmt_count(e->tokens_per_s, b, sizeof(b)), e->mfu * 100);
        tv_textf(win, y++, x, w, ROLE_DIM, "global batch %lld seq x %d = %s tokens; %d device%s",
                 (long long)s->plan.workload.global_batch, s->plan.workload.seq,
                 tv_fmt_count((double)s->plan.workload.global_batch * s->plan.workload.seq, c,
                              sizeof(c)),
                 e->gpus, e->gpus == 1 ? "" : "s");
        if (e->time_to_train_s > 0)
            tv_textf(win, y++, x, w, ROLE_NORMAL, "time to train %s, %.0f GPU-hours",
                     tv_fmt_seconds(e->time_to_train_s, a, sizeof(a)), e->gpu_hours);
    } else {
        tv_textf(win, y++, x, w, ROLE_NORMAL, "TTFT %s   %s/token   %.1f tokens/s",
                 tv_fmt_seconds(e->ttft_s, a, sizeof(a)),
                 tv_fmt_seconds(e->decode_s_per_token, b, sizeof(b)), e->infer_tokens_per_s);
    }
    return y;
}

void tui_draw(const struct tui_state *s, const struct tui_draw_opts *o, unsigned dirty)
{
    (void)o;
    WINDOW *win = stdscr;
    int rows, cols;
    getmaxyx(win, rows, cols);
    struct tui_rects r;
    if (tui_layout(rows, cols, &r) == TUI_TOO_SMALL) {
        werase(win);
        char msg[128];
        snprintf(msg, sizeof(msg), "terminal %dx%d is too small: scalewise needs %dx%d", cols,
                 rows, TUI_MIN_COLS, TUI_MIN_ROWS);
        tv_text(win, 0, 0, cols, ROLE_WARN, msg);
        wnoutrefresh(win);
        return;
    }
    if (s->modal != TUI_MODAL_NONE)
        dirty = TUI_DIRTY_ALL; /* a dialog sits over several panes */
    if (dirty & TUI_DIRTY_HEADER)
        view_header_draw(win, &r.header, s);
    if (dirty & (TUI_DIRTY_LEFT | TUI_DIRTY_RIGHT)) {
        tv_clear(win, &r.left);
        tv_clear(win, &r.right);
        switch (s->screen) {
        case TUI_SCR_HARDWARE:
            view_hardware_draw(win, &r, s);
            break;
        case TUI_SCR_WORKLOAD:
            view_workload_draw(win, &r, s);
            break;
        case TUI_SCR_PLANS:
            view_plans_draw(win, &r, s);
            break;
        case TUI_SCR_EDITOR:
            view_editor_draw(win, &r, s);
            break;
        case TUI_SCR_EXPLAIN:
            view_explain_draw(win, &r, s);
            break;
        case TUI_SCR_RUN:
            view_run_draw(win, &r, s);
            break;
        case TUI_SCR_COUNT:
            break;
        }
        tv_separator(win, &r.right);
    }
    if (dirty & TUI_DIRTY_STATUS)
        view_status_draw(win, &r.status, s);
    if (dirty & TUI_DIRTY_KEYS)
        view_keys_draw(win, &r.keys, s);
    if (s->modal == TUI_MODAL_HELP)
        view_help_draw(win, &r.dialog, s);
    else if (s->modal != TUI_MODAL_NONE)
        view_dialog_draw(win, &r.dialog, s);
    wnoutrefresh(win);
}

#endif /* SW_HAVE_NCURSES */
