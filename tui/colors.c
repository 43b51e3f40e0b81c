/* Colors and glyphs of the TUI: one table of semantic roles with a color column and a
 * monochrome column (attributes only), after ncdu. Colors are off with --no-color, with
 * NO_COLOR set (no-color.org), or when the terminal has none; the terminal's default background
 * is kept (use_default_colors). Glyphs fall back to ASCII when the locale is not UTF-8. Color is
 * never the only signal: bars carry letters and over-budget lines carry "!" and the word. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <string.h>

struct role_def {
    short fg, bg;      /* -1 = the terminal's default */
    attr_t color_attr; /* added to the pair in color mode */
    attr_t mono_attr;  /* the whole look in monochrome */
};

static const struct role_def roles[ROLE_COUNT] = {
    [ROLE_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [ROLE_TITLE] = {COLOR_CYAN, -1, A_BOLD, A_BOLD},
    [ROLE_TAB] = {-1, -1, A_NORMAL, A_NORMAL},
    [ROLE_TAB_ACTIVE] = {COLOR_BLACK, COLOR_CYAN, A_BOLD, A_REVERSE | A_BOLD},
    [ROLE_SELECTED] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
    [ROLE_DIM] = {COLOR_BLUE, -1, A_NORMAL, A_DIM},
    [ROLE_OK] = {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    [ROLE_WARN] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [ROLE_OVER_BUDGET] = {COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    [ROLE_KEY] = {COLOR_CYAN, -1, A_BOLD, A_BOLD},
    [ROLE_HEADING] = {-1, -1, A_BOLD | A_UNDERLINE, A_BOLD | A_UNDERLINE},
    [ROLE_SEG_WEIGHTS] = {COLOR_BLACK, COLOR_BLUE, A_NORMAL, A_NORMAL},
    [ROLE_SEG_GRADIENTS] = {COLOR_BLACK, COLOR_MAGENTA, A_NORMAL, A_NORMAL},
    [ROLE_SEG_OPTIMIZER] = {COLOR_BLACK, COLOR_YELLOW, A_NORMAL, A_NORMAL},
    [ROLE_SEG_ACTIVATIONS] = {COLOR_BLACK, COLOR_GREEN, A_NORMAL, A_NORMAL},
    [ROLE_SEG_KV] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_NORMAL},
    [ROLE_SEG_WORKSPACE] = {COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_NORMAL},
    [ROLE_SEG_OVERHEAD] = {COLOR_WHITE, COLOR_BLACK, A_NORMAL, A_DIM},
    [ROLE_CHART] = {COLOR_GREEN, -1, A_BOLD, A_BOLD},
};

static bool g_color;
static bool g_utf8 = true;

static const struct tui_glyphs utf8_glyphs = {
    "\xe2\x94\x82", "\xc2\xb7",        "\xe2\x94\x82", "\xe2\x80\xa2", "\xe2\x97\x86",
    "\xe2\x94\x80", {"\xe2\x94\x8c", "\xe2\x94\x90", "\xe2\x94\x94", "\xe2\x94\x98"}};
static const struct tui_glyphs ascii_glyphs = {"|", ".", "|", "*", "o", "-", {"+", "+", "+", "+"}};

void tui_colors_setup(const struct tui_draw_opts *o)
{
    g_utf8 = o->utf8;
    g_color = o->color && has_colors();
    if (!g_color)
        return;
    start_color();
    use_default_colors();
    for (int r = 1; r < ROLE_COUNT; r++)
        init_pair((short)r, roles[r].fg, roles[r].bg);
}

attr_t tui_role_attr(enum tui_role r)
{
    if ((unsigned)r >= ROLE_COUNT)
        return A_NORMAL;
    if (!g_color)
        return roles[r].mono_attr;
    return (r == ROLE_NORMAL ? A_NORMAL : COLOR_PAIR(r)) | roles[r].color_attr;
}

const struct tui_glyphs *tui_glyphs(void)
{
    return g_utf8 ? &utf8_glyphs : &ascii_glyphs;
}

bool tui_utf8(void)
{
    return g_utf8;
}

#endif /* SW_HAVE_NCURSES */
