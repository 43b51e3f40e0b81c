/* Golden screens of the TUI: each screen is rendered at 100x30 into an off-screen terminal
 * (newterm() on /dev/null) by the same tui_draw the loop uses, after an action script replayed
 * through tui_state_key as the loop does; every row is read back with mvwinnstr and the
 * attributes of every cell with mvwin_wch, and the dump is compared with
 * tests/tui/golden/<screen>.<variant>.txt. Each screen is rendered twice: colors with UTF-8
 * glyphs, and monochrome with ASCII glyphs (the NO_COLOR / non-UTF-8 fallbacks). The hardware is
 * a fixed profile, so the files do not depend on the machine. On a mismatch the test prints the
 * first differing line and the command that regenerates the files. */
#include "harness.h"

#include <curses.h>
#include <locale.h>
#include <sys/stat.h>

#include "tui/tui.h"

#define GOLDEN_DIR "tests/tui/golden"
#define REGEN "SW_UPDATE_GOLDEN=1 build/tests/test_tui_golden"

static int stub_probe(struct hardware *hw, bool measure, struct sw_err *err)
{
    (void)measure;
    return profile_load_hardware("cpu-avx2-2c", hw, err);
}

static int stub_run_start(struct tui_run *r, const struct plan *p, const char *resume,
                          struct sw_err *err)
{
    (void)resume;
    (void)err;
    r->status = TUI_RUN_RUNNING;
    r->pid = 4242;
    r->own_child = true;
    sw_strlcpy(r->out_dir, p->train.out_dir, sizeof(r->out_dir));
    r->steps_total = p->train.steps;
    return 0;
}

static struct tui_ops ops;
static bool update;

static void keys(struct tui_state *s, const char *k)
{
    for (; *k; k++) {
        int key = *k == '\n' ? TK_ENTER : *k == '\033' ? TK_ESC : *k == '\t' ? TK_TAB
                  : *k == '\b'                          ? TK_BACKSPACE
                                                        : *k;
        tui_state_key(s, key);
    }
}

static struct tui_state *state_for(const char *script)
{
    struct tui_state *s = sw_xmalloc(sizeof(*s));
    tui_state_init(s, &ops);
    struct sw_err err;
    sw_err_init(&err);
    CHECK_OK(tui_state_start(s, NULL, &err), &err);
    keys(s, script);
    return s;
}

/* One cell's attributes as a hex digit: bold 1, reverse 2, dim 4, underline 8. */
static char attr_code(attr_t a)
{
    int v = ((a & A_BOLD) ? 1 : 0) | ((a & A_REVERSE) ? 2 : 0) | ((a & A_DIM) ? 4 : 0) |
            ((a & A_UNDERLINE) ? 8 : 0);
    return "0123456789abcdef"[v];
}

static void dump_screen(struct sw_buf *out, int rows, int cols, bool color)
{
    struct sw_err err;
    char line[2048];
    for (int y = 0; y < rows; y++) {
        int n = mvwinnstr(stdscr, y, 0, line, (int)sizeof(line) - 1);
        if (n < 0)
            n = 0;
        line[n] = '\0';
        sw_buf_printf(out, &err, "%s|\n", line);
    }
    sw_buf_printf(out, &err, "-- attributes (bold 1, reverse 2, dim 4, underline 8)%s --\n",
                  color ? " and color pairs" : "");
    for (int y = 0; y < rows; y++) {
        char attrs[512], pairs[512];
        for (int x = 0; x < cols && x < 511; x++) {
            cchar_t cc;
            wchar_t wch[CCHARW_MAX + 1];
            attr_t a = 0;
            short pair = 0;
            mvwin_wch(stdscr, y, x, &cc);
            getcchar(&cc, wch, &a, &pair, NULL);
            attrs[x] = attr_code(a);
            pairs[x] = pair == 0 ? '.' : (char)('a' + pair - 1);
        }
        attrs[cols] = pairs[cols] = '\0';
        sw_buf_printf(out, &err, "%s\n", attrs);
        if (color)
            sw_buf_printf(out, &err, "%s\n", pairs);
    }
}

static void compare(const char *path, const struct sw_buf *got)
{
    struct sw_err err;
    sw_err_init(&err);
    if (update) {
        CHECK_OK(sw_write_file_atomic(path, got->data, got->len, &err), &err);
        return;
    }
    char *want = NULL;
    size_t len = 0;
    if (sw_read_file(path, 1 << 20, &want, &len, &err) < 0) {
        CHECK_MSG(0, "%s: %s; regenerate with: %s", path, err.msg, REGEN);
        return;
    }
    if (len == got->len && !memcmp(want, got->data, len)) {
        CHECK(1);
    } else {
        int line = 1;
        size_t i = 0;
        while (i < len && i < got->len && want[i] == got->data[i]) {
            if (want[i] == '\n')
                line++;
            i++;
        }
        size_t ls = i;
        while (ls > 0 && got->data[ls - 1] != '\n')
            ls--;
        size_t le = ls;
        while (le < got->len && got->data[le] != '\n')
            le++;
        CHECK_MSG(0, "%s differs at line %d: got \"%.*s\"\n  if the change is intended, "
                     "regenerate with: %s",
                  path, line, (int)(le - ls), got->data + ls, REGEN);
    }
    free(want);
}

/* Render the state in both variants and compare. */
static void golden(const char *name, const struct tui_state *s, int rows, int cols)
{
    for (int variant = 0; variant < 2; variant++) {
        bool color = variant == 0;
        setlocale(LC_ALL, color ? "C.UTF-8" : "C");
        FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
        char num[16];
        snprintf(num, sizeof(num), "%d", rows);
        setenv("LINES", num, 1);
        snprintf(num, sizeof(num), "%d", cols);
        setenv("COLUMNS", num, 1);
        SCREEN *scr = newterm("xterm-256color", out, in);
        CHECK(scr != NULL);
        if (!scr)
            return;
        set_term(scr);
        struct tui_draw_opts o = {color, color};
        tui_colors_setup(&o);
        tui_draw(s, &o, TUI_DIRTY_ALL);
        struct sw_buf got;
        sw_buf_init(&got, 1 << 20);
        dump_screen(&got, rows, cols, color);
        endwin();
        delscreen(scr);
        fclose(out);
        fclose(in);
        char path[256];
        snprintf(path, sizeof(path), "%s/%s.%s.txt", GOLDEN_DIR, name,
                 color ? "color-utf8" : "mono-ascii");
        compare(path, &got);
        sw_buf_release(&got);
    }
}

static void screen(const char *name, const char *script)
{
    struct tui_state *s = state_for(script);
    golden(name, s, 30, 100);
    tui_state_release(s);
    free(s);
}

static void test_screens(void)
{
    screen("hardware", "");
    screen("workload", "w/tiny-gpt2\n");
    screen("model_search", "w/gpt");
    screen("plans", "w/tiny-gpt2\np");
    screen("plans_gpu", "w/gpt2-124m\nd/h100-sxm\np");
    screen("hardware_gpu", "d/h100-sxm\n");
    screen("editor", "w/tiny-gpt2\np\njjj");
    screen("editor_over_budget", "w/tiny-gpt2\np\njjj\n\b\b\b\b\b\b1048576\n");
    screen("editor_rule", "w/tiny-gpt2\np\njjjjjjjj\n\b3\n");
    screen("explain", "w/tiny-gpt2\np\njjjx");
    screen("help", "w/tiny-gpt2\np\n?");
    screen("export", "w/tiny-gpt2\np\ns");
    screen("quit_confirm", "w/tiny-gpt2\np\nq");
}

static void test_run_screen(void)
{
    struct tui_state *s = state_for("w/tiny-gpt2\np\n");
    keys(s, "g");
    char line[256];
    for (int i = 1; i <= 60; i++) {
        double loss = 5.5 - 3.0 * (1.0 - 1.0 / (1.0 + i / 10.0));
        int n = i % 20 == 0
                    ? snprintf(line, sizeof(line),
                               "{\"step\":%d,\"loss\":%.4f,\"val_loss\":%.4f,\"lr\":6e-4,"
                               "\"grad_norm\":0.8,\"ms_per_step\":50,\"tokens_per_s\":20480,"
                               "\"mfu\":0.12,\"peak_rss_bytes\":73400320}\n",
                               i, loss, loss + 0.1)
                    : snprintf(line, sizeof(line),
                               "{\"step\":%d,\"loss\":%.4f,\"lr\":6e-4,\"grad_norm\":0.8,"
                               "\"ms_per_step\":50,\"tokens_per_s\":20480,\"mfu\":0.12,"
                               "\"peak_rss_bytes\":73400320}\n",
                               i, loss);
        tui_run_feed(&s->run, line, (size_t)n);
    }
    golden("run", s, 30, 100);
    tui_state_release(s);
    free(s);
}

static void test_too_small(void)
{
    struct tui_state *s = state_for("");
    golden("too_small", s, 20, 60);
    tui_state_release(s);
    free(s);
}

int main(void)
{
    update = getenv("SW_UPDATE_GOLDEN") && getenv("SW_UPDATE_GOLDEN")[0] == '1';
    ops = tui_ops_default;
    ops.probe = stub_probe;
    ops.run_start = stub_run_start;
    mkdir(GOLDEN_DIR, 0755);
    RUN(test_screens);
    RUN(test_run_screen);
    RUN(test_too_small);
    if (update)
        printf("golden files written to %s\n", GOLDEN_DIR);
    return harness_finish("test_tui_golden");
}
