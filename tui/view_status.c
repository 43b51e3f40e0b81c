/* The header (product name, screen tabs with their keys, run and save state), the status line
 * (the last message; errors start with "!") and the key bar, generated from actions.def: the
 * actions that do something on this screen, each with its first key and label. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>
#include <string.h>

void view_header_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    tv_clear(win, r);
    int x = r->x;
    tv_text(win, r->y, x, r->w, ROLE_TITLE, " scalewise ");
    x += 11;
    for (int i = 0; i < TUI_SCR_COUNT; i++) {
        char tab[32], k[16];
        tui_key_name(tui_actions[TUI_ACT_SCR_HARDWARE + i].keys[0], k, sizeof(k));
        snprintf(tab, sizeof(tab), " %s %s ", k, tui_screen_name((enum tui_screen)i));
        bool on = s->screen == (enum tui_screen)i;
        if (x + (int)strlen(tab) > r->w)
            break;
        tv_text(win, r->y, x, r->w - x, on ? ROLE_TAB_ACTIVE : ROLE_TAB, tab);
        x += (int)strlen(tab);
    }
    char right[64] = "";
    if (s->run.status == TUI_RUN_RUNNING || s->run.status == TUI_RUN_STOPPING) {
        const struct tui_metric *m = tui_run_last(&s->run);
        snprintf(right, sizeof(right), "run: %s %lld/%lld ", tui_run_status_name(s->run.status),
                 (long long)(m ? m->step : 0), (long long)s->run.steps_total);
    } else if (s->unsaved && s->have_plan) {
        snprintf(right, sizeof(right), "[modified] ");
    }
    int rl = (int)strlen(right);
    if (rl && r->w - rl > x)
        tv_text(win, r->y, r->w - rl, rl, ROLE_WARN, right);
}

void view_status_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    tv_clear(win, r);
    if (s->message[0])
        tv_textf(win, r->y, r->x + 1, r->w - 2, s->message_is_error ? ROLE_WARN : ROLE_NORMAL,
                 "%s%s", s->message_is_error ? "! " : "", s->message);
}

void view_keys_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s)
{
    tv_clear(win, r);
    int x = r->x;
    for (int a = 0; a < TUI_ACT_COUNT; a++) {
        /* navigation keys are in the help; the bar shows the commands */
        if (a == TUI_ACT_UP || a == TUI_ACT_DOWN || a == TUI_ACT_REDRAW ||
            a == TUI_ACT_BACKSPACE || a == TUI_ACT_MOUSE ||
            (a >= TUI_ACT_SCR_HARDWARE && a <= TUI_ACT_SCR_RUN))
            continue;
        if (!tui_action_available(s, (enum tui_action)a) && a != TUI_ACT_HELP &&
            a != TUI_ACT_QUIT)
            continue;
        if (s->modal == TUI_MODAL_HELP && a != TUI_ACT_HELP)
            continue;
        char k[16];
        tui_key_name(tui_actions[a].keys[0], k, sizeof(k));
        /* a letter alias reads better than F-keys on a small terminal */
        for (int i = 2; i >= 1; i--)
            if (tui_actions[a].keys[i] > 32 && tui_actions[a].keys[i] < 127 &&
                !(tui_actions[a].keys[i] >= '0' && tui_actions[a].keys[i] <= '9')) {
                tui_key_name(tui_actions[a].keys[i], k, sizeof(k));
                break;
            }
        int need = (int)strlen(k) + (int)strlen(tui_actions[a].label) + 2;
        if (x + need > r->w)
            break;
        tv_text(win, r->y, x, r->w - x, ROLE_KEY, k);
        x += (int)strlen(k);
        tv_textf(win, r->y, x, r->w - x, ROLE_NORMAL, " %s ", tui_actions[a].label);
        x += (int)strlen(tui_actions[a].label) + 2;
    }
}

#endif /* SW_HAVE_NCURSES */
