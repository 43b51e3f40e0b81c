/* The TUI's layout: a pure function from the terminal size to the rectangles of the panes
 * (header, list, detail, status line, key bar) and of the dialog box drawn over them. The
 * tiled panes cover the screen without overlapping (tests check every size from 80x24 to
 * 300x100); below 80x24 it answers TUI_TOO_SMALL and the loop shows one line asking for a
 * bigger terminal. */
#include "tui/tui.h"

#include <string.h>

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static struct tui_rect rect(int y, int x, int h, int w)
{
    struct tui_rect r = {y, x, h, w};
    return r;
}

int tui_layout(int rows, int cols, struct tui_rects *out)
{
    memset(out, 0, sizeof(*out));
    if (rows < TUI_MIN_ROWS || cols < TUI_MIN_COLS)
        return TUI_TOO_SMALL;
    int body_h = rows - 3;
    /* The list pane holds "label  value" rows: 34 columns at 80, growing to 56 on wide
     * terminals; the rest is for bars, tables and the chart. */
    int left_w = clamp(cols * 2 / 5, 34, 56);
    out->header = rect(0, 0, 1, cols);
    out->left = rect(1, 0, body_h, left_w);
    out->right = rect(1, left_w, body_h, cols - left_w);
    out->status = rect(rows - 2, 0, 1, cols);
    out->keys = rect(rows - 1, 0, 1, cols);
    int dw = clamp(cols - 8, 40, 96), dh = clamp(rows - 6, 10, 40);
    out->dialog = rect((rows - dh) / 2, (cols - dw) / 2, dh, dw);
    return 0;
}

const struct tui_rect *tui_rects_pane(const struct tui_rects *r, int i)
{
    switch (i) {
    case 0:
        return &r->header;
    case 1:
        return &r->left;
    case 2:
        return &r->right;
    case 3:
        return &r->status;
    case 4:
        return &r->keys;
    default:
        return NULL;
    }
}
