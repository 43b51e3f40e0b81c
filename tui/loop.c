/* The TUI's entry point and event loop: the only place that blocks. It parses `scalewise tui`
 * flags, sets up ncurses (wide characters, short ESCDELAY, default background, colors unless
 * NO_COLOR/--no-color, ASCII glyphs when the locale is not UTF-8), then poll()s stdin with a
 * timer: each key becomes an action (tui_state_key), the action is applied, and only the dirty
 * regions are drawn before one doupdate(). While a run is active the timer (250 ms) reads new
 * lines of its metrics.jsonl and reaps the process; a regular file is always "readable" to
 * poll(), so the file itself cannot be polled. KEY_RESIZE re-lays out and redraws everything.
 * Also the hidden `--bench` (start-up to first frame, what-if latency) on an off-screen
 * terminal. */
#include "tui/tui.h"

#ifdef SW_HAVE_NCURSES

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tui/tui_int.h"

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

/* ncurses key -> terminal-independent code of tui.h (0 = ignore). */
static int translate_key(int is_key, wint_t ch)
{
    if (!is_key) {
        switch (ch) {
        case '\n':
        case '\r':
            return TK_ENTER;
        case 27:
            return TK_ESC;
        case '\t':
            return TK_TAB;
        case 127:
        case 8:
            return TK_BACKSPACE;
        case 12:
            return TK_CTRL_L;
        default:
            return ch >= 32 ? (int)ch : 0;
        }
    }
    switch (ch) {
    case KEY_UP:
        return TK_UP;
    case KEY_DOWN:
        return TK_DOWN;
    case KEY_LEFT:
        return TK_LEFT;
    case KEY_RIGHT:
        return TK_RIGHT;
    case KEY_ENTER:
        return TK_ENTER;
    case KEY_BTAB:
        return TK_BTAB;
    case KEY_BACKSPACE:
    case KEY_DC:
        return TK_BACKSPACE;
    case KEY_RESIZE:
        return TK_RESIZE;
    default:
        if (ch >= KEY_F(1) && ch <= KEY_F(10))
            return TK_F1 + (int)(ch - KEY_F(1));
        return 0;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: scalewise tui [--no-color] [--plan FILE]\n\n"
               "The terminal interface: hardware, workload, ranked plans with memory bars, the\n"
               "what-if editor, explanations, export, and runs with a live loss chart. Also what\n"
               "`scalewise` alone opens on a terminal. Press ? inside for the keys; the guide is\n"
               "docs/tui.md.\n\n"
               "  --no-color    attributes only (also when NO_COLOR is set)\n"
               "  --plan FILE   open a plan file in the editor\n");
}

struct tui_args {
    bool no_color;
    bool bench;
    const char *plan;
};

static int parse_args(int argc, char **argv, struct tui_args *a)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--no-color")) {
            a->no_color = true;
        } else if (!strcmp(argv[i], "--bench")) {
            a->bench = true;
        } else if (!strcmp(argv[i], "--plan") && i + 1 < argc) {
            a->plan = argv[++i];
        } else if (!strncmp(argv[i], "--plan=", 7)) {
            a->plan = argv[i] + 7;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "scalewise tui: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

static bool locale_is_utf8(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

static void set_mouse(bool on)
{
    mousemask(on ? (BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED) : 0, NULL);
}

/* A mouse event as an action: the wheel scrolls, a click selects a row of the list. */
static void handle_mouse(struct tui_state *s)
{
    MEVENT ev;
    if (getmouse(&ev) != OK)
        return;
    if (ev.bstate & BUTTON4_PRESSED) {
        tui_state_apply(s, TUI_ACT_UP);
        return;
    }
    if (ev.bstate & BUTTON5_PRESSED) {
        tui_state_apply(s, TUI_ACT_DOWN);
        return;
    }
    struct tui_rects r;
    if (tui_layout(LINES, COLS, &r) != 0)
        return;
    if (s->modal == TUI_MODAL_LIST) {
        int top = s->list_sel >= r.dialog.h - 4 ? s->list_sel - (r.dialog.h - 4) + 1 : 0;
        tui_state_click(s, ev.y - r.dialog.y - 2 + top);
    } else if (ev.x < r.left.x + r.left.w) {
        int rows = r.left.h - 2, sel = s->sel[s->screen];
        int top = sel >= rows ? sel - rows + 1 : 0;
        int off = s->screen == TUI_SCR_PLANS ? 2 : 1;
        tui_state_click(s, ev.y - r.left.y - off + top);
    }
}

/* The probe's measurement (FMA loop and triad, about 0.3 s) runs in a thread after the first
 * frame, so start-up is not held up by it; the thread writes one byte to a pipe the loop polls. */
struct measure_job {
    pthread_t thread;
    int pipe_fd[2];
    bool started;
    struct hardware hw;
    int rc;
};

static void *measure_thread(void *arg)
{
    struct measure_job *j = arg;
    struct sw_err err;
    sw_err_init(&err);
    j->rc = hw_probe(&j->hw, true, &err);
    char c = 'm';
    ssize_t w = write(j->pipe_fd[1], &c, 1);
    (void)w;
    return NULL;
}

static void measure_start(struct measure_job *j)
{
    j->started = false;
    if (pipe(j->pipe_fd) < 0)
        return;
    hw_init(&j->hw);
    if (pthread_create(&j->thread, NULL, measure_thread, j) != 0) {
        close(j->pipe_fd[0]);
        close(j->pipe_fd[1]);
        return;
    }
    j->started = true;
}

static void measure_finish(struct measure_job *j)
{
    if (!j->started)
        return;
    pthread_join(j->thread, NULL);
    close(j->pipe_fd[0]);
    close(j->pipe_fd[1]);
    j->started = false;
}

static void run_loop(struct tui_state *s, const struct tui_draw_opts *o)
{
    bool mouse_on = false;
    struct measure_job *job = sw_xcalloc(1, sizeof(*job));
    bool first = true;
    while (!s->quit) {
        if (s->full_redraw) {
            clearok(curscr, TRUE);
            s->full_redraw = false;
            s->dirty = TUI_DIRTY_ALL;
        }
        if (s->dirty) {
            tui_draw(s, o, s->dirty);
            s->dirty = 0;
            doupdate();
        }
        if (first) {
            first = false;
            if (!s->hw_profile[0] && s->hw_ok && !s->hw_measured)
                measure_start(job);
        }
        if (s->mouse != mouse_on) {
            mouse_on = s->mouse;
            set_mouse(mouse_on);
        }
        bool active = s->run.status == TUI_RUN_RUNNING || s->run.status == TUI_RUN_STOPPING;
        struct pollfd pfd[2] = {{STDIN_FILENO, POLLIN, 0}, {-1, POLLIN, 0}};
        if (job->started)
            pfd[1].fd = job->pipe_fd[0];
        int n = poll(pfd, 2, active ? 250 : 1000);
        if (n > 0 && job->started && (pfd[1].revents & POLLIN)) {
            measure_finish(job);
            if (job->rc == 0)
                tui_state_hw_measured(s, &job->hw);
            n -= 1;
        }
        if (g_signal) {
            int sig = g_signal;
            g_signal = 0;
            if (sig == SIGINT)
                tui_state_apply(s, TUI_ACT_QUIT); /* asks when a run or an unsaved plan */
            else
                s->quit = true; /* SIGTERM/SIGHUP: the terminal is going away */
            continue;
        }
        if (n < 0 && errno != EINTR)
            break;
        int poll_errno = n < 0 ? errno : 0;
        if (tui_runctl_poll(&s->run))
            tui_state_run_changed(s);
        if (n > 0 && (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL))) {
            s->quit = true; /* the terminal went away */
            break;
        }
        /* a signal (SIGWINCH: ncurses queues KEY_RESIZE) interrupts poll: read keys then too */
        bool readable = (n > 0 && (pfd[0].revents & POLLIN)) || (n < 0 && poll_errno == EINTR);
        if (!readable)
            continue;
        wint_t ch;
        int rc;
        while ((rc = wget_wch(stdscr, &ch)) != ERR) {
            if (rc == KEY_CODE_YES && ch == KEY_MOUSE) {
                handle_mouse(s);
                continue;
            }
            int key = translate_key(rc == KEY_CODE_YES, ch);
            if (key == TK_RESIZE)
                s->full_redraw = true;
            if (key)
                tui_state_key(s, key);
            if (s->quit)
                break;
        }
    }
    measure_finish(job);
    free(job);
}

/* Hidden benchmark: start-up to the first full frame, and the what-if update (apply + estimate
 * + redraw of the dirty regions + doupdate) on a 100x30 off-screen terminal. */
static int bench(const struct tui_args *a)
{
    double t0 = sw_now_s();
    struct tui_state *s = sw_xmalloc(sizeof(*s));
    tui_state_init(s, NULL);
    struct sw_err err;
    sw_err_init(&err);
    (void)tui_state_start(s, NULL, &err);
    FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
    if (!out || !in) {
        fprintf(stderr, "scalewise tui --bench: cannot open /dev/null\n");
        return 1;
    }
    setenv("LINES", "30", 1);
    setenv("COLUMNS", "100", 1);
    SCREEN *scr = newterm("xterm-256color", out, in);
    if (!scr) {
        fprintf(stderr, "scalewise tui --bench: no terminfo for xterm-256color\n");
        return 1;
    }
    struct tui_draw_opts o = {!a->no_color, true};
    tui_colors_setup(&o);
    tui_draw(s, &o, TUI_DIRTY_ALL);
    doupdate();
    double startup_s = sw_now_s() - t0;

    /* a real plan: llama-3-8b on one node of 8 H100s, the search's plan 1 in the editor */
    static const char *const script[] = {"w", "/", "llama-3-8b", "\n", "d", "/", "h100-sxm", "\n",
                                         "p", "\n", NULL};
    for (int i = 0; script[i]; i++) {
        const char *k = script[i];
        if (!strcmp(k, "\n"))
            tui_state_key(s, TK_ENTER);
        else
            for (const char *c = k; *c; c++)
                tui_state_key(s, *c);
    }
    for (int i = 0; i < TUI_KNOB_MICRO_BATCH; i++)
        tui_state_key(s, TK_DOWN);
    int iters = 200;
    double worst = 0, sum = 0;
    for (int i = 0; i < iters; i++) {
        double t = sw_now_s();
        tui_state_key(s, i % 2 ? TK_LEFT : TK_RIGHT);
        tui_draw(s, &o, s->dirty);
        s->dirty = 0;
        doupdate();
        double dt = sw_now_s() - t;
        sum += dt;
        if (dt > worst)
            worst = dt;
    }
    endwin();
    delscreen(scr);
    fclose(out);
    fclose(in);
    printf("tui start-up to first frame: %.1f ms (target < 200 ms)\n", startup_s * 1e3);
    printf("tui what-if update (%s, %d keys): mean %.2f ms, worst %.2f ms (target < 16 ms)\n",
           s->have_plan ? "llama-3-8b on 8x h100-sxm" : "no plan", iters, sum / iters * 1e3,
           worst * 1e3);
    tui_state_release(s);
    free(s);
    return 0;
}

int tui_main(int argc, char **argv)
{
    struct tui_args a = {false, false, NULL};
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : 2;
    setlocale(LC_ALL, "");
    const char *nc = getenv("NO_COLOR");
    if (nc && nc[0])
        a.no_color = true;
    if (a.bench)
        return bench(&a);
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "scalewise tui: needs a terminal (stdin and stdout)\n");
        return 1;
    }
    struct tui_state *s = sw_xmalloc(sizeof(*s));
    tui_state_init(s, NULL);
    struct sw_err err;
    sw_err_init(&err);
    if (tui_state_start(s, a.plan, &err) < 0) {
        fprintf(stderr, "scalewise tui: %s\n", err.msg);
        tui_state_release(s);
        free(s);
        return 2;
    }
    set_escdelay(25);
    if (!initscr()) {
        fprintf(stderr, "scalewise tui: cannot initialise the terminal\n");
        tui_state_release(s);
        free(s);
        return 1;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    struct tui_draw_opts o = {!a.no_color, locale_is_utf8()};
    tui_colors_setup(&o);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    run_loop(s, &o);
    endwin();
    if (s->run.status == TUI_RUN_RUNNING || s->run.status == TUI_RUN_STOPPING)
        printf("scalewise tui: the run in %s (pid %d) keeps going; re-attach with "
               "'scalewise tui' then A %s\n",
               s->run.out_dir, s->run.pid, s->run.out_dir);
    tui_state_release(s);
    free(s);
    return 0;
}

#else /* no ncursesw */

#include <stdio.h>

int tui_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "scalewise tui: this build has no ncursesw; install libncurses-dev and "
                    "rebuild (the CLI commands work without it)\n");
    return 1;
}

#endif
