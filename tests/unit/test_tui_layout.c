/* Properties of the TUI layout (tui_layout), at every size from 80x24 to 300x100: the tiled
 * panes lie inside the screen, have a usable size, never overlap and together cover every cell;
 * the dialog box lies inside the screen; below 80x24 the answer is TUI_TOO_SMALL. */
#include "harness.h"

#include "tui/tui.h"

static bool inside(const struct tui_rect *r, int rows, int cols)
{
    return r->y >= 0 && r->x >= 0 && r->h > 0 && r->w > 0 && r->y + r->h <= rows &&
           r->x + r->w <= cols;
}

static bool overlap(const struct tui_rect *a, const struct tui_rect *b)
{
    return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

static void test_all_sizes(void)
{
    int bad = 0;
    for (int rows = TUI_MIN_ROWS; rows <= 100; rows++)
        for (int cols = TUI_MIN_COLS; cols <= 300; cols++) {
            struct tui_rects r;
            if (tui_layout(rows, cols, &r) != 0) {
                bad++;
                continue;
            }
            long area = 0;
            for (int i = 0; i < TUI_N_PANES; i++) {
                const struct tui_rect *a = tui_rects_pane(&r, i);
                if (!inside(a, rows, cols))
                    bad++;
                area += (long)a->w * a->h;
                for (int j = i + 1; j < TUI_N_PANES; j++)
                    if (overlap(a, tui_rects_pane(&r, j)))
                        bad++;
            }
            if (area != (long)rows * cols) /* no overlap + same area = every cell covered */
                bad++;
            if (!inside(&r.dialog, rows, cols) || r.left.w < 34 || r.right.w < 40 ||
                r.left.h < 20)
                bad++;
            if (bad && bad < 5)
                fprintf(stderr, "layout problem at %dx%d\n", cols, rows);
        }
    CHECK_INT(bad, 0);
}

static void test_too_small(void)
{
    struct tui_rects r;
    CHECK_INT(tui_layout(23, 80, &r), TUI_TOO_SMALL);
    CHECK_INT(tui_layout(24, 79, &r), TUI_TOO_SMALL);
    CHECK_INT(tui_layout(1, 1, &r), TUI_TOO_SMALL);
    CHECK_INT(r.left.w, 0);
    CHECK_INT(tui_layout(24, 80, &r), 0);
    CHECK(tui_rects_pane(&r, TUI_N_PANES) == NULL);
}

int main(void)
{
    RUN(test_all_sizes);
    RUN(test_too_small);
    return harness_finish("test_tui_layout");
}
