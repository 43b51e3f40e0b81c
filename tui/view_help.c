/* The help screen, generated from actions.def like the keymap and the key bar: every action
 * with all its keys, its label and its help line. Actions that do nothing on the screen under
 * the help are marked "-" (so every key listed either works here or says it does not). */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>
#include <string.h>

void view_help_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    char title[64];
    snprintf(title, sizeof(title), "Keys: %s screen (- = nothing to do here)",
             tui_screen_name(s->screen));
    tv_box(win, r, title);
    int y = r->y + 1, x = r->x + 2, w = r->w - 4;
    int rows = r->h - 2;
    int per_col = TUI_ACT_COUNT;
    /* two columns of actions when the box is too short for one */
    int cols = per_col > rows ? 2 : 1;
    if (cols == 2)
        per_col = (TUI_ACT_COUNT + 1) / 2;
    int cw = w / cols;
    for (int a = 0; a < TUI_ACT_COUNT; a++) {
        int c = a / per_col, row = a % per_col;
        if (row >= rows)
            continue;
        char keys[48] = "";
        size_t used = 0;
        for (int k = 0; k < 3; k++) {
            char kn[16];
            if (!tui_actions[a].keys[k] || tui_actions[a].keys[k] == TK_RESIZE)
                continue;
            tui_key_name(tui_actions[a].keys[k], kn, sizeof(kn));
            used += (size_t)snprintf(keys + used, sizeof(keys) - used, "%s%s", used ? " " : "", kn);
        }
        bool works = tui_action_works_here(s, (enum tui_action)a);
        int cx = x + c * cw;
        tv_textf(win, y + row, cx, cw - 1, works ? ROLE_KEY : ROLE_DIM, "%c%-12s", works ? ' ' : '-',
                 keys);
        tv_textf(win, y + row, cx + 13, cw - 14, works ? ROLE_NORMAL : ROLE_DIM, "%-8s %s",
                 tui_actions[a].label, cols == 2 ? "" : tui_actions[a].help);
    }
    if (cols == 2 || rows > TUI_ACT_COUNT)
        tv_textf(win, r->y + r->h - 1, x, w, ROLE_DIM, " mouse %s; docs/tui.md lists every key ",
                 s->mouse ? "on" : "off (M)");
}

#endif /* SW_HAVE_NCURSES */
