/* tui_int.h — internals shared by the drawing files of tui/ (colors.c, view_*.c, loop.c): the
 * semantic color roles, the glyphs of the UTF-8 and ASCII modes, small drawing helpers and one
 * draw function per region. Nothing outside tui/ includes it; it is the only TUI header that
 * includes ncurses. Views read the state and never change it. */
#ifndef SW_TUI_INT_H
#define SW_TUI_INT_H

#include <curses.h>

#include "tui/tui.h"

/* Semantic roles (ncdu): each has a color pair and a monochrome attribute set in colors.c. */
enum tui_role {
    ROLE_NORMAL,
    ROLE_TITLE,
    ROLE_TAB,
    ROLE_TAB_ACTIVE,
    ROLE_SELECTED,
    ROLE_DIM,
    ROLE_OK,
    ROLE_WARN,
    ROLE_OVER_BUDGET,
    ROLE_KEY,
    ROLE_HEADING,
    ROLE_SEG_WEIGHTS,
    ROLE_SEG_GRADIENTS,
    ROLE_SEG_OPTIMIZER,
    ROLE_SEG_ACTIVATIONS,
    ROLE_SEG_KV,
    ROLE_SEG_WORKSPACE,
    ROLE_SEG_OVERHEAD,
    ROLE_CHART,
    ROLE_COUNT
};

/* Attributes (color pair included when colors are on) of a role. */
attr_t tui_role_attr(enum tui_role r);

/* Glyphs: UTF-8 or ASCII (a locale that is not UTF-8, or tests). */
struct tui_glyphs {
    const char *vline;   /* pane separator */
    const char *free;    /* unused part of a memory bar */
    const char *cap;     /* capacity marker in a bar */
    const char *point;   /* chart point */
    const char *val;     /* validation-loss point */
    const char *hline;   /* chart axis, box edges */
    const char *corner[4]; /* box corners: top-left, top-right, bottom-left, bottom-right */
};
const struct tui_glyphs *tui_glyphs(void);
bool tui_utf8(void);

/* Drawing helpers (view_common.c). Text is clipped to `w` columns. */
void tv_clear(WINDOW *win, const struct tui_rect *r);
void tv_text(WINDOW *win, int y, int x, int w, enum tui_role role, const char *text);
void tv_textf(WINDOW *win, int y, int x, int w, enum tui_role role, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A column of lines in a pane (the right pane of a screen), scrolled by `scroll` rows: a line is
 * drawn only while it falls below the title row and inside the pane, and counted either way so
 * the scroll stays exact. x and w are the text's column and width; y is the next line's row. */
struct tv_column {
    WINDOW *win;
    int x, w;
    int top, end; /* the title row and one past the last row */
    int y;
};
void tv_column_init(struct tv_column *c, WINDOW *win, const struct tui_rect *p, int scroll);
bool tv_column_visible(const struct tv_column *c);
/* Draw one formatted line at c->y (when visible) and move to the next row. */
void tv_line(struct tv_column *c, enum tui_role role, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A pane title on the first row of r; focused panes are highlighted. */
void tv_pane_title(WINDOW *win, const struct tui_rect *r, const char *title, bool focused);
/* A box around r with the title on its top edge; the inside is cleared. */
void tv_box(WINDOW *win, const struct tui_rect *r, const char *title);
/* A vertical separator at the left edge of r. */
void tv_separator(WINDOW *win, const struct tui_rect *r);
/* A stacked memory bar of `w` cells: one letter per category (W G O A K S R, so the split reads
 * without color) against the capacity; the scale is max(total, capacity). */
void tv_mem_bar(WINDOW *win, int y, int x, int w, const struct mem_split *m, double capacity);
/* The legend of the bar letters. */
void tv_mem_legend(WINDOW *win, int y, int x, int w);
/* Rows of the list pane: label and value, the selected one highlighted. Returns rows drawn. */
void tv_field_list(WINDOW *win, const struct tui_rect *r, const struct tui_state *s,
                   enum tui_screen scr);
/* The estimate: fit line, memory split, speed (editor and explain). Returns the next row. */
int tv_estimate(WINDOW *win, const struct tui_rect *r, int y, const struct tui_state *s);
const char *tv_fmt_seconds(double s, char *buf, size_t n);
const char *tv_fmt_count(double x, char *buf, size_t n);

/* Regions. */
void view_header_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s);
void view_status_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s);
void view_keys_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s);
void view_hardware_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_workload_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_plans_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_editor_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_explain_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_run_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s);
void view_help_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s);
/* Prompt, confirmation and list dialogs (export, load, attach, exact values, profiles). */
void view_dialog_draw(WINDOW *win, const struct tui_rect *r, const struct tui_state *s);

#endif
