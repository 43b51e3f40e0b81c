/* tui — the public surface of the terminal interface (issue 4): the entry point, the action
 * table, the pure state machine (struct tui_state and tui_state_apply), the pure layout, the run
 * control (start/stop/attach a `scalewise run` child and parse its metrics.jsonl), and the frame
 * drawer the loop and the golden tests share. Only the drawer and the loop use ncurses; this
 * header does not include it, so state and layout are tested without a terminal.
 *
 * The TUI computes nothing itself: every number comes from the advisor through struct tui_ops
 * (tests substitute stubs), and runs are `scalewise run PLAN.yaml` child processes. */
#ifndef SW_TUI_H
#define SW_TUI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "advisor/advisor.h"
#include "common/common.h"

struct tui_state;

/* `scalewise tui [--no-color] [--plan FILE]` and `scalewise` alone on a terminal. Returns the
 * process exit code (0, or 2 for bad flags, 1 when the terminal cannot be used). A hidden
 * `--bench` measures start-up and what-if latency on an off-screen terminal. */
int tui_main(int argc, char **argv);

/* ---------------------------------------------------------------- keys and actions */

/* Terminal-independent key codes above Unicode (the loop translates ncurses' KEY_* into these,
 * so the state machine needs no ncurses). Printable characters are their own code. */
enum tui_key {
    TK_UP = 0x110001,
    TK_DOWN,
    TK_LEFT,
    TK_RIGHT,
    TK_ENTER,
    TK_ESC,
    TK_TAB,
    TK_BTAB,
    TK_BACKSPACE,
    TK_RESIZE,
    TK_CTRL_L,
    TK_F1,
    TK_F2,
    TK_F3,
    TK_F4,
    TK_F5,
    TK_F6,
    TK_F7,
    TK_F8,
    TK_F9,
    TK_F10,
};

enum tui_action {
#define ACTION(id, k1, k2, k3, label, help) TUI_ACT_##id,
#include "tui/actions.def"
#undef ACTION
    TUI_ACT_COUNT
};

struct tui_action_info {
    const char *name;  /* "SCR_PLANS" */
    int keys[3];       /* 0 = unused */
    const char *label; /* key bar word */
    const char *help;  /* help screen line */
};
extern const struct tui_action_info tui_actions[TUI_ACT_COUNT];

/* The action bound to a key, or TUI_ACT_COUNT when none. */
enum tui_action tui_key_action(int key);
/* "F2", "Up", "Tab", "Enter", "Esc", "^L", "k", "/" into buf. Returns buf. */
const char *tui_key_name(int key, char *buf, size_t n);

/* ---------------------------------------------------------------- screens and fields */

enum tui_screen {
    TUI_SCR_HARDWARE,
    TUI_SCR_WORKLOAD,
    TUI_SCR_PLANS,
    TUI_SCR_EDITOR,
    TUI_SCR_EXPLAIN,
    TUI_SCR_RUN,
    TUI_SCR_COUNT
};
const char *tui_screen_name(enum tui_screen s); /* "Hardware", ... */

enum tui_modal {
    TUI_MODAL_NONE,
    TUI_MODAL_HELP,
    TUI_MODAL_LIST,    /* profile picker with search */
    TUI_MODAL_PROMPT,  /* one line of text: a path or an exact number */
    TUI_MODAL_CONFIRM, /* y/n question */
};

/* Rows of the Hardware screen. */
enum tui_hw_field { TUI_HWF_SOURCE, TUI_HWF_NODES, TUI_HWF_GPUS, TUI_HWF_COUNT };

/* Rows of the Workload screen. */
enum tui_wl_field {
    TUI_WLF_MODEL,
    TUI_WLF_CONFIG,
    TUI_WLF_TASK,
    TUI_WLF_SEQ,
    TUI_WLF_GLOBAL_BATCH,
    TUI_WLF_TOKENS,
    TUI_WLF_BATCH,
    TUI_WLF_PROMPT,
    TUI_WLF_GEN,
    TUI_WLF_DATASET,
    TUI_WLF_STEPS,
    TUI_WLF_OUT_DIR,
    TUI_WLF_COUNT
};

/* Rows of the editor: every strategy knob. */
enum tui_knob {
    TUI_KNOB_DEVICE,
    TUI_KNOB_PRECISION,
    TUI_KNOB_OPTIMIZER,
    TUI_KNOB_MICRO_BATCH,
    TUI_KNOB_GRAD_ACCUM,
    TUI_KNOB_RECOMPUTE,
    TUI_KNOB_ATTENTION,
    TUI_KNOB_DP,
    TUI_KNOB_TP,
    TUI_KNOB_PP,
    TUI_KNOB_INTERLEAVE,
    TUI_KNOB_ZERO,
    TUI_KNOB_SP,
    TUI_KNOB_OFFLOAD_OPT,
    TUI_KNOB_OFFLOAD_PARAMS,
    TUI_KNOB_LORA_RANK,
    TUI_KNOB_WEIGHTS,
    TUI_KNOB_KV_DTYPE,
    TUI_KNOB_THREADS,
    TUI_KNOB_COUNT
};

/* The task as the Workload screen offers it: fine-tune is training with LoRA adapters. */
enum tui_task { TUI_TASK_TRAIN, TUI_TASK_FINETUNE, TUI_TASK_INFER };

enum tui_list_kind { TUI_LIST_MODEL, TUI_LIST_HARDWARE };

enum tui_prompt_kind {
    TUI_PROMPT_NUMBER, /* exact value of prompt_screen/prompt_field */
    TUI_PROMPT_CONFIG,
    TUI_PROMPT_DATASET,
    TUI_PROMPT_OUT_DIR,
    TUI_PROMPT_EXPORT,
    TUI_PROMPT_LOAD,
    TUI_PROMPT_ATTACH,
};

enum tui_confirm_kind { TUI_CONFIRM_QUIT, TUI_CONFIRM_OVERWRITE };

/* Rows per screen (the selectable items of its left pane). */
int tui_screen_rows(const struct tui_state *s, enum tui_screen scr);

/* ---------------------------------------------------------------- runs */

enum tui_run_status {
    TUI_RUN_NONE,     /* nothing started or attached */
    TUI_RUN_RUNNING,  /* the process is alive */
    TUI_RUN_STOPPING, /* SIGINT sent; it finishes the step and checkpoints */
    TUI_RUN_STOPPED,  /* exited 130 (or gone after a stop): resumable */
    TUI_RUN_DONE,     /* exited 0 */
    TUI_RUN_FAILED,   /* exited with another status, or could not start */
    TUI_RUN_EXITED,   /* attached run whose process is gone (status unknown) */
};
const char *tui_run_status_name(enum tui_run_status st);

/* One metrics.jsonl line (docs/run.md). */
struct tui_metric {
    int64_t step;
    double loss;
    double val_loss; /* has_val */
    double lr;
    double grad_norm;
    double tokens_per_s;
    double ms_per_step;
    double mfu; /* has_mfu */
    uint64_t peak_rss_bytes;
    bool has_val, has_mfu;
    bool has_grad_norm; /* false on a step skipped by loss scaling (grad_norm null) */
    double loss_scale;  /* fp16-mixed: the step's loss scale; 0 when the run has none */
    bool skipped;       /* fp16-mixed: the step was skipped (gradients not finite) */
};

#define TUI_METRICS_CAP 1024
#define TUI_RUN_LINE_MAX 2048

/* A run the TUI started or attached to, and its metrics ring buffer. */
struct tui_run {
    enum tui_run_status status;
    int pid;            /* 0 = none */
    bool own_child;     /* started by this process (waitpid works) */
    int exit_code;      /* when known */
    char out_dir[PLAN_PATH_MAX];
    char plan_path[PLAN_PATH_MAX];
    int64_t steps_total; /* train.steps of the plan */
    double predicted_bytes;  /* the estimate's per-device total, for "used vs predicted" */
    double predicted_tokens_per_s;
    /* metrics: the last TUI_METRICS_CAP lines, oldest first from ring_start */
    struct tui_metric ring[TUI_METRICS_CAP];
    int ring_start, ring_count;
    int64_t lines_total;   /* lines parsed so far */
    int64_t lines_bad;     /* lines that were not a metrics object */
    double last_val_loss;  /* newest val_loss seen; has_last_val */
    bool has_last_val;
    long metrics_offset;   /* bytes of metrics.jsonl consumed */
    char partial[TUI_RUN_LINE_MAX];
    size_t partial_len;
    char note[256];        /* last line of run.log when it failed, or what happened */
};

void tui_run_init(struct tui_run *r);
/* The i-th metric, oldest first (0 <= i < ring_count). */
const struct tui_metric *tui_run_metric(const struct tui_run *r, int i);
/* The newest metric or NULL. */
const struct tui_metric *tui_run_last(const struct tui_run *r);
/* Feed bytes of metrics.jsonl: complete lines are parsed into the ring buffer, an incomplete
 * tail is kept for the next call. A line that is not a JSON object with "step" and "loss" is
 * counted in lines_bad and skipped. Pure: no I/O. */
void tui_run_feed(struct tui_run *r, const char *bytes, size_t n);
/* Forget the metrics (a new run, or a resumed run that rewrites the file). */
void tui_run_clear_metrics(struct tui_run *r);
/* Seconds left at the recent step rate, or -1 when unknown. */
double tui_run_eta_s(const struct tui_run *r);

/* Process control (runctl.c). Start `<exe> run PLAN --out DIR --quiet [--resume CKPT]` as a
 * detached child (its own session, stdout/stderr to DIR/run.log, its pid in DIR/run.pid), so
 * it keeps running when the TUI closes; `exe` NULL means /proc/self/exe. The plan is written to
 * DIR/plan.yaml first. */
int tui_runctl_start(struct tui_run *r, const struct plan *p, const char *resume_ckpt,
                     struct sw_err *err);
/* SIGINT: the executor finishes the step, checkpoints and exits 130. */
int tui_runctl_stop(struct tui_run *r, struct sw_err *err);
/* Re-attach to DIR: reads DIR/run.pid (alive or not) and replays DIR/metrics.jsonl. */
int tui_runctl_attach(struct tui_run *r, const char *out_dir, struct sw_err *err);
/* Reap or check the process and read new metrics lines. Returns true when anything changed. */
bool tui_runctl_poll(struct tui_run *r);
/* The checkpoint named by DIR/latest.txt into out ("" when none). */
int tui_runctl_latest_ckpt(const char *out_dir, char *out, size_t n, struct sw_err *err);
/* The executable runs are started with ("" = /proc/self/exe); tests point it elsewhere. */
void tui_runctl_set_exe(const char *path);

/* ---------------------------------------------------------------- the advisor table */

/* Everything the state machine calls that is not pure: the advisor, plan files, the run. The
 * loop uses tui_ops_default; tests substitute stubs (a fixed hardware for the probe, a run
 * that never starts a process). */
struct tui_ops {
    int (*probe)(struct hardware *hw, bool measure, struct sw_err *err);
    int (*load_hw_profile)(const char *name, struct hardware *hw, struct sw_err *err);
    int (*load_model_profile)(const char *name, struct model_desc *m, struct sw_err *err);
    int (*load_model_config)(const char *path, struct model_desc *m, struct sw_err *err);
    int (*list_profiles)(enum profile_kind kind, char ***names, int *count, struct sw_err *err);
    int (*estimate)(const struct model_desc *m, const struct hardware *hw,
                    const struct workload *w, const struct strategy *s,
                    const struct advisor_calib *cal, struct estimate *out, struct sw_err *err);
    int (*search)(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
                  const struct search_opts *o, const struct advisor_calib *cal,
                  struct search_result *out, struct sw_err *err);
    int (*plan_load)(const char *path, struct plan *p, struct sw_err *err);
    int (*plan_save)(const char *path, const struct plan *p, struct sw_err *err);
    bool (*file_exists)(const char *path);
    int (*run_start)(struct tui_run *r, const struct plan *p, const char *resume_ckpt,
                     struct sw_err *err);
    int (*run_stop)(struct tui_run *r, struct sw_err *err);
    int (*run_attach)(struct tui_run *r, const char *out_dir, struct sw_err *err);
    int (*run_latest_ckpt)(const char *out_dir, char *out, size_t n, struct sw_err *err);
};
extern const struct tui_ops tui_ops_default;

/* ---------------------------------------------------------------- state */

/* What a one-knob move would change (Explain screen). */
struct tui_whatif {
    int knob;          /* enum tui_knob */
    char change[96];   /* "micro-batch 4 -> 8" */
    bool valid;        /* advisor_check accepted it */
    char reason[160];  /* why not (valid false) */
    double total_bytes, capacity_bytes, tokens_per_s, infer_tokens_per_s;
    bool fits;
};
#define TUI_MAX_WHATIF (2 * TUI_KNOB_COUNT)

/* Regions the loop redraws (dirty bits). */
enum tui_dirty {
    TUI_DIRTY_HEADER = 1u << 0,
    TUI_DIRTY_LEFT = 1u << 1,
    TUI_DIRTY_RIGHT = 1u << 2,
    TUI_DIRTY_STATUS = 1u << 3,
    TUI_DIRTY_KEYS = 1u << 4,
    TUI_DIRTY_MODAL = 1u << 5,
    TUI_DIRTY_ALL = 0x3f,
};

#define TUI_FILTER_MAX 64
#define TUI_INPUT_MAX PLAN_PATH_MAX

struct tui_state {
    const struct tui_ops *ops;
    enum tui_screen screen, prev_screen;
    enum tui_modal modal;
    int focus;                     /* 0 = list pane, 1 = detail pane */
    int sel[TUI_SCR_COUNT];        /* selected row of each screen's list */
    int scroll[TUI_SCR_COUNT];     /* detail pane scroll of each screen */
    bool mouse;
    bool quit;                     /* the loop ends */
    bool full_redraw;              /* clear and redraw everything (^L, resize) */
    unsigned dirty;                /* enum tui_dirty bits */

    /* profile names (owned; profiles_free_names) */
    char **model_names, **hw_names;
    int n_models, n_hw;

    /* list modal */
    enum tui_list_kind list_kind;
    char filter[TUI_FILTER_MAX];
    bool filter_editing;
    int list_sel; /* index among the entries that match the filter */

    /* prompt and confirm modals */
    enum tui_prompt_kind prompt_kind;
    enum tui_screen prompt_screen;
    int prompt_field;
    char prompt_title[96];
    char input[TUI_INPUT_MAX];
    enum tui_confirm_kind confirm_kind;
    char confirm_text[PLAN_PATH_MAX + 64];

    /* hardware */
    char hw_profile[HW_NAME_MAX]; /* "" = the probe */
    int nodes, gpus_per_node;     /* 0 = as the hardware says */
    struct hardware hw_base;      /* as probed or loaded */
    struct hardware hw;           /* with the cluster shape applied */
    bool hw_ok, hw_measured;
    char hw_error[SW_ERR_MSG_MAX];

    /* model and workload */
    char model_profile[HW_NAME_MAX];
    char model_config[PLAN_PATH_MAX];
    bool model_ok;
    struct model_desc model;
    char model_error[SW_ERR_MSG_MAX];
    enum tui_task task;
    struct workload wl; /* global_batch 0 = let the search choose */
    char dataset[PLAN_PATH_MAX];
    int64_t steps;
    char out_dir[PLAN_PATH_MAX];

    /* plans */
    struct search_result search;
    bool plans_stale, search_ok;
    char search_error[SW_ERR_MSG_MAX];

    /* the plan being edited and its estimate */
    struct plan plan;
    bool have_plan; /* plan has a model and hardware */
    bool unsaved;
    struct estimate est;
    bool est_ok;
    char est_error[SW_ERR_MSG_MAX];
    struct advisor_calib cal;
    struct tui_whatif whatif[TUI_MAX_WHATIF];
    int n_whatif;

    char export_path[PLAN_PATH_MAX];
    char message[SW_ERR_MSG_MAX + 64];
    bool message_is_error;

    struct tui_run run;
};

/* Set up a state (no I/O): defaults only. `ops` NULL means tui_ops_default. */
void tui_state_init(struct tui_state *s, const struct tui_ops *ops);
/* Free what it owns. */
void tui_state_release(struct tui_state *s);
/* Start-up: the probe (without measuring), the profile lists, and a plan file when plan_path is
 * not NULL. A failed probe is shown on the Hardware screen, not returned; a plan that cannot be
 * loaded is returned (SW_E*) with err filled. */
int tui_state_start(struct tui_state *s, const char *plan_path, struct sw_err *err);

/* The one entry point that changes the state. Returns 0, or 1 when the action does nothing on
 * this screen (tui_action_available is false); failures of what it calls (a plan that cannot be
 * written, an invalid knob) are shown in s->message / s->est_error, never returned. */
int tui_state_apply(struct tui_state *s, enum tui_action a);
/* Type a character into the active text field (prompt or list search). Returns 1 when no text
 * field is active. */
int tui_state_type(struct tui_state *s, int ch);
/* A key: text when a text field is active and the key is printable, else its action. */
int tui_state_key(struct tui_state *s, int key);
/* Select row `row` of the list pane (mouse click). */
int tui_state_click(struct tui_state *s, int row);
/* Whether the action changes anything here and now (the help marks the others "-"). */
bool tui_action_available(const struct tui_state *s, enum tui_action a);
/* As tui_action_available, for the screen under the help (what the help marks "-"). */
bool tui_action_works_here(const struct tui_state *s, enum tui_action a);
/* The background measurement of this machine finished (ignored when a profile was chosen). */
void tui_state_hw_measured(struct tui_state *s, const struct hardware *hw);
/* The run's process or metrics changed (called by the loop after tui_runctl_poll). */
void tui_state_run_changed(struct tui_state *s);

/* Label and value of row `row` of a screen's list, as the views print them. */
void tui_field_text(const struct tui_state *s, enum tui_screen scr, int row, char *label,
                    size_t label_n, char *value, size_t value_n);
/* The plan field / CLI flag behind an editor knob or workload row (the headless equivalent). */
const char *tui_field_headless(enum tui_screen scr, int row);
/* Entries of the list modal that match the filter: count, and the name of the i-th. */
int tui_list_count(const struct tui_state *s);
const char *tui_list_name(const struct tui_state *s, int i);
/* The `scalewise estimate` command that prints the same numbers as the editor. */
const char *tui_state_cli_command(const struct tui_state *s, char *buf, size_t n);

/* ---------------------------------------------------------------- layout */

#define TUI_MIN_ROWS 24
#define TUI_MIN_COLS 80
#define TUI_TOO_SMALL 1

struct tui_rect {
    int y, x, h, w;
};

/* The tiled panes (they never overlap) and the dialog box (drawn over them). */
struct tui_rects {
    struct tui_rect header; /* title and screen tabs */
    struct tui_rect left;   /* the list of the screen */
    struct tui_rect right;  /* details, bars, chart */
    struct tui_rect status; /* message line */
    struct tui_rect keys;   /* key bar */
    struct tui_rect dialog; /* modal box, inside the screen */
};
#define TUI_N_PANES 5

/* Rectangles for a terminal of rows x cols. Returns 0, or TUI_TOO_SMALL below 80x24 (out is
 * then zeroed). Pure. */
int tui_layout(int rows, int cols, struct tui_rects *out);
/* The i-th tiled pane (0..TUI_N_PANES-1). */
const struct tui_rect *tui_rects_pane(const struct tui_rects *r, int i);

/* ---------------------------------------------------------------- drawing (ncurses) */

struct tui_draw_opts {
    bool color; /* colors by role (false: attributes only) */
    bool utf8;  /* box and bar glyphs (false: ASCII) */
};

/* Set up colors for the current ncurses screen (after initscr/newterm). */
void tui_colors_setup(const struct tui_draw_opts *o);
/* Draw every region of the current ncurses screen (stdscr) from the state, at its current size
 * (the one-line message below the minimum size), then wnoutrefresh. Used by the loop and by the
 * golden tests. `dirty` limits what is redrawn (TUI_DIRTY_ALL for a full frame). */
void tui_draw(const struct tui_state *s, const struct tui_draw_opts *o, unsigned dirty);

#endif
