/* The Explain screen: for the knob selected on the left, what moving it one step down or up
 * would do (memory per device, fit, tokens/s, or the rule it would break), computed by the state
 * machine with the advisor; then the reasons behind the current estimate, and the
 * `scalewise estimate` command that prints the same numbers without the TUI. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

void view_explain_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    tv_pane_title(win, &r->left, "Knobs", s->focus == 0);
    tv_field_list(win, &r->left, s, TUI_SCR_EXPLAIN);
    const struct tui_rect *p = &r->right;
    tv_pane_title(win, p, "Why, and what if", s->focus == 1);
    struct tv_column col;
    tv_column_init(&col, win, p, s->scroll[TUI_SCR_EXPLAIN]);
    char a[48];
    if (!s->have_plan) {
        tv_line(&col, ROLE_DIM, "no plan: choose a model (w) and hardware (d)");
        return;
    }
    if (s->est_ok)
        tv_line(&col, s->est.fits ? ROLE_OK : ROLE_OVER_BUDGET,
                "%snow: %.2f GiB per device, %s tokens/s", s->est.fits ? "" : "! OVER BUDGET ",
                s->est.dev.total / GIB,
                tv_fmt_count(s->plan.workload.task == TASK_TRAIN ? s->est.tokens_per_s
                                                                 : s->est.infer_tokens_per_s,
                             a, sizeof(a)));
    else
        tv_line(&col, ROLE_OVER_BUDGET, "! INVALID now: %s", s->est_error);
    int knob = s->sel[TUI_SCR_EXPLAIN];
    int shown = 0;
    for (int i = 0; i < s->n_whatif; i++) {
        const struct tui_whatif *wf = &s->whatif[i];
        if (wf->knob != knob)
            continue;
        shown++;
        if (!wf->valid) {
            tv_line(&col, ROLE_WARN, "if %s: ! breaks a rule: %s", wf->change, wf->reason);
            continue;
        }
        double tps =
            s->plan.workload.task == TASK_TRAIN ? wf->tokens_per_s : wf->infer_tokens_per_s;
        tv_line(&col, wf->fits ? ROLE_NORMAL : ROLE_OVER_BUDGET, "if %s: %.2f GiB%s, %s tokens/s",
                wf->change, wf->total_bytes / GIB, wf->fits ? "" : " ! OVER BUDGET",
                tv_fmt_count(tps, a, sizeof(a)));
    }
    if (!shown)
        tv_line(&col, ROLE_DIM, "this knob cannot move from here");
    tv_line(&col, ROLE_HEADING, "reasons");
    if (s->est_ok)
        for (int i = 0; i < s->est.n_reasons; i++)
            tv_line(&col, ROLE_NORMAL, "- %s", s->est.reasons[i]);
    col.y++;
    tv_line(&col, ROLE_HEADING, "same numbers without the TUI");
    char cmd[1024];
    tui_state_cli_command(s, cmd, sizeof(cmd));
    /* wrap the command over the pane's width */
    for (size_t off = 0, len = strlen(cmd); off < len;) {
        size_t n = len - off > (size_t)col.w ? (size_t)col.w : len - off;
        tv_line(&col, ROLE_DIM, "%.*s", (int)n, cmd + off);
        off += n;
    }
}

#endif /* SW_HAVE_NCURSES */
