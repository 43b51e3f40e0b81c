/* The Plans screen: the advisor's ranked plans (advisor_search), each with a stacked memory bar
 * against the device capacity and its speed (tokens/s and MFU, or TTFT and decode rate), on the
 * left; the selected plan's strategy, full memory split, speed, time to train and reasons on
 * the right. A plan that does not fit is marked "!" with the word, not by color alone. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

void view_plans_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    const struct tui_rect *l = &r->left, *p = &r->right;
    tv_pane_title(win, l, "Plans", s->focus == 0);
    tv_pane_title(win, p, "Plan detail", s->focus == 1);
    const struct search_result *res = &s->search;
    char a[48], b[48];
    if (res->n_plans == 0) {
        if (s->search_error[0])
            tv_textf(win, l->y + 1, l->x + 1, l->w - 2, ROLE_WARN, "! %s", s->search_error);
        else
            tv_textf(win, l->y + 1, l->x + 1, l->w - 2, ROLE_OVER_BUDGET,
                     "! NO PLAN: %lld candidates, none usable",
                     (long long)res->candidates_evaluated);
        for (int i = 0; i < res->n_reasons && i + 1 < p->h; i++)
            tv_textf(win, p->y + 1 + i, p->x + 2, p->w - 3, ROLE_NORMAL, "- %s", res->reasons[i]);
        return;
    }
    bool train = res->plans[0].workload.task == TASK_TRAIN;
    tv_textf(win, l->y + 1, l->x + 1, l->w - 2, ROLE_DIM, "#  %-9s %-5s memory", train ? "tok/s" : "TTFT",
             train ? "MFU" : "");
    int sel = s->sel[TUI_SCR_PLANS];
    int avail = l->h - 3;
    int top = sel >= avail ? sel - avail + 1 : 0;
    for (int i = top; i < res->n_plans && i - top < avail; i++) {
        const struct estimate *e = &res->plans[i].estimate;
        int y = l->y + 2 + (i - top);
        bool on = i == sel;
        if (train)
            snprintf(a, sizeof(a), "%-9s %4.1f%%", tv_fmt_count(e->tokens_per_s, b, sizeof(b)),
                     e->mfu * 100);
        else
            snprintf(a, sizeof(a), "%-9s %5s", tv_fmt_seconds(e->ttft_s, b, sizeof(b)), "");
        tv_textf(win, y, l->x, l->w - 1, on ? ROLE_SELECTED : ROLE_NORMAL, "%c%-2d%s%s ",
                 on ? '>' : ' ', i + 1, e->fits ? " " : "!", a);
        int bx = l->x + 20, bw = l->w - 21;
        tv_mem_bar(win, y, bx, bw, &e->dev, e->capacity_bytes);
    }
    if (!res->any_fits)
        tv_text(win, l->y + l->h - 1, l->x + 1, l->w - 2, ROLE_OVER_BUDGET,
                "! NOTHING FITS: closest candidates");

    const struct search_plan *sp = &res->plans[sel < res->n_plans ? sel : 0];
    const struct estimate *e = &sp->estimate;
    const struct strategy *st = &sp->strategy;
    struct tv_column col;
    tv_column_init(&col, win, p, s->scroll[TUI_SCR_PLANS]);
    tv_line(&col, ROLE_TITLE, "plan %d of %d  (Enter: open in the editor)", sel + 1, res->n_plans);
    tv_line(&col, ROLE_NORMAL, "%s dp=%d tp=%d pp=%d zero=%d %s %s", device_name(st->device),
            st->dp, st->tp, st->pp, st->zero, precision_name(st->precision),
            optimizer_name(st->optimizer));
    tv_line(&col, ROLE_NORMAL, "micro-batch %d x accum %d, recompute %s, %s%s%s", st->micro_batch,
            st->grad_accum, recompute_name(st->recompute), attention_name(st->attention),
            st->offload_optimizer ? ", offload opt" : "", st->lora_rank ? ", LoRA" : "");
    if (e->fits)
        tv_line(&col, ROLE_OK, "fits: %.2f of %.2f GiB per device", e->dev.total / GIB,
                e->capacity_bytes / GIB);
    else
        tv_line(&col, ROLE_OVER_BUDGET, "! OVER BUDGET: %.2f of %.2f GiB per device",
                e->dev.total / GIB, e->capacity_bytes / GIB);
    if (tv_column_visible(&col))
        tv_mem_bar(win, col.y, col.x, col.w, &e->dev, e->capacity_bytes);
    col.y++;
    if (tv_column_visible(&col))
        tv_mem_legend(win, col.y, col.x, col.w);
    col.y++;
    if (train) {
        tv_line(&col, ROLE_NORMAL, "%s tokens/s  MFU %.1f%%  step %s",
                tv_fmt_count(e->tokens_per_s, a, sizeof(a)), e->mfu * 100,
                tv_fmt_seconds(e->step_time_s, b, sizeof(b)));
        if (e->time_to_train_s > 0)
            tv_line(&col, ROLE_NORMAL, "time to train %s (%.0f GPU-hours)",
                    tv_fmt_seconds(e->time_to_train_s, a, sizeof(a)), e->gpu_hours);
        else
            tv_line(&col, ROLE_DIM, "time to train: set 'tokens to train' on the Workload screen");
    } else {
        tv_line(&col, ROLE_NORMAL, "TTFT %s  decode %s/token  %.1f tokens/s",
                tv_fmt_seconds(e->ttft_s, a, sizeof(a)),
                tv_fmt_seconds(e->decode_s_per_token, b, sizeof(b)), e->infer_tokens_per_s);
    }
    tv_line(&col, ROLE_HEADING, "why");
    for (int i = 0; i < e->n_reasons; i++)
        tv_line(&col, ROLE_NORMAL, "- %s", e->reasons[i]);
}

#endif /* SW_HAVE_NCURSES */
