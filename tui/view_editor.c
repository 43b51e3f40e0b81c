/* The plan editor (what-if): every strategy knob on the left, changed with Left/Right (or an
 * exact value with Enter); on the right the estimate of the edited plan, recomputed on each
 * key by the state machine: the fit line (with "!" and the word when over budget, or the rule a
 * setting breaks), the stacked memory bar, the split in GiB, and the speed. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>

void view_editor_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    tv_pane_title(win, &r->left, "Strategy knobs", s->focus == 0);
    tv_field_list(win, &r->left, s, TUI_SCR_EDITOR);
    const struct tui_rect *p = &r->right;
    tv_pane_title(win, p, "Estimate (what-if)", s->focus == 1);
    int y = tv_estimate(win, p, p->y + 1, s);
    int x = p->x + 2, w = p->w - 3;
    if (!s->have_plan || y + 2 >= p->y + p->h)
        return;
    y++;
    tv_textf(win, y++, x, w, ROLE_DIM, "headless: %s",
             tui_field_headless(TUI_SCR_EDITOR, s->sel[TUI_SCR_EDITOR]));
    if (y < p->y + p->h)
        tv_text(win, y++, x, w, ROLE_DIM, "Left/Right change the knob, Enter types a value");
}

#endif /* SW_HAVE_NCURSES */
