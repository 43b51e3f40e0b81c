/* The dialogs drawn over the panes: the text prompt (export path, plan to load, run directory,
 * config.json, an exact number), the y/n confirmation (quit with a run or unsaved plan,
 * overwrite), and the profile picker with its search filter. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>
#include <string.h>

static void draw_list(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    tv_box(win, r, s->list_kind == TUI_LIST_MODEL ? "Choose a model profile"
                                                  : "Choose hardware (probe = this machine)");
    int x = r->x + 2, w = r->w - 4;
    tv_textf(win, r->y + 1, x, w, s->filter_editing ? ROLE_TAB_ACTIVE : ROLE_DIM, "/%s%s",
             s->filter, s->filter_editing ? "_" : (s->filter[0] ? "" : "  (/ to search)"));
    int n = tui_list_count(s), avail = r->h - 4;
    int top = s->list_sel >= avail ? s->list_sel - avail + 1 : 0;
    for (int i = top; i < n && i - top < avail; i++) {
        bool on = i == s->list_sel;
        tv_textf(win, r->y + 2 + i - top, x, w, on ? ROLE_SELECTED : ROLE_NORMAL, "%c %-*s",
                 on ? '>' : ' ', w - 2, tui_list_name(s, i));
    }
    if (n == 0)
        tv_text(win, r->y + 2, x, w, ROLE_WARN, "! nothing matches");
    tv_textf(win, r->y + r->h - 1, x, w, ROLE_DIM, " %d of %s  Enter chooses, Esc back ", n,
             s->list_kind == TUI_LIST_MODEL ? "the models" : "the hardware");
}

void view_dialog_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    if (s->modal == TUI_MODAL_LIST) {
        draw_list(win, r, s);
        return;
    }
    struct tui_rect box = {r->y + r->h / 2 - 3, r->x, 6, r->w};
    int x = box.x + 2, w = box.w - 4;
    if (s->modal == TUI_MODAL_PROMPT) {
        tv_box(win, &box, s->prompt_title);
        /* show the end of a long input: that is where the cursor is */
        const char *in = s->input;
        size_t len = strlen(in);
        if ((int)len > w - 2)
            in += len - (size_t)(w - 2);
        tv_textf(win, box.y + 2, x, w, ROLE_SELECTED, "%-*s", w, "");
        tv_textf(win, box.y + 2, x, w, ROLE_SELECTED, "%s_", in);
        tv_text(win, box.y + 4, x, w, ROLE_DIM, "Enter accepts, Esc cancels, Backspace deletes");
        return;
    }
    tv_box(win, &box, "Confirm");
    tv_text(win, box.y + 2, x, w, ROLE_WARN, s->confirm_text);
    tv_text(win, box.y + 4, x, w, ROLE_DIM, "y / Enter: yes    n / Esc: no");
}

#endif /* SW_HAVE_NCURSES */
