/* cli_int.h — internals shared by the files of cli/: the one parser of the model, hardware,
 * workload and strategy flags that estimate, plan (and later run/export) share, the resolved
 * setup it produces, and small printing helpers. Nothing outside cli/ includes it. */
#ifndef SW_CLI_INT_H
#define SW_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "advisor/advisor.h"
#include "cli/cli.h"
#include "common/common.h"

/* Which flags were given (bits of cli_setup.given), so defaults apply only where the user was
 * silent and `plan` can refuse strategy flags (the search chooses those). */
enum cli_given {
    CLI_G_TASK = 1u << 0,
    CLI_G_PRECISION = 1u << 1,
    CLI_G_OPTIMIZER = 1u << 2,
    CLI_G_MICRO_BATCH = 1u << 3,
    CLI_G_GLOBAL_BATCH = 1u << 4,
    CLI_G_GRAD_ACCUM = 1u << 5,
    CLI_G_DP = 1u << 6,
    CLI_G_TP = 1u << 7,
    CLI_G_PP = 1u << 8,
    CLI_G_INTERLEAVE = 1u << 9,
    CLI_G_ZERO = 1u << 10,
    CLI_G_SP = 1u << 11,
    CLI_G_RECOMPUTE = 1u << 12,
    CLI_G_ATTENTION = 1u << 13,
    CLI_G_OFFLOAD_OPT = 1u << 14,
    CLI_G_OFFLOAD_PARAMS = 1u << 15,
    CLI_G_LORA = 1u << 16,
    CLI_G_WEIGHTS = 1u << 17,
    CLI_G_KV = 1u << 18,
    CLI_G_DEVICE = 1u << 19,
    CLI_G_THREADS = 1u << 20,
    CLI_G_SEQ = 1u << 21,
    CLI_G_BATCH = 1u << 22,
    CLI_G_PROMPT = 1u << 23,
    CLI_G_GEN = 1u << 24,
    CLI_G_ACHIEVED = 1u << 25,
    CLI_G_FORMAT = 1u << 26,
};

/* The flags that fix a strategy knob (what `plan` searches over). */
#define CLI_G_STRATEGY_FLAGS                                                                       \
    (CLI_G_PRECISION | CLI_G_OPTIMIZER | CLI_G_MICRO_BATCH | CLI_G_GRAD_ACCUM | CLI_G_DP |         \
     CLI_G_TP | CLI_G_PP | CLI_G_INTERLEAVE | CLI_G_ZERO | CLI_G_SP | CLI_G_RECOMPUTE |            \
     CLI_G_ATTENTION | CLI_G_OFFLOAD_OPT | CLI_G_OFFLOAD_PARAMS | CLI_G_LORA | CLI_G_WEIGHTS |     \
     CLI_G_KV | CLI_G_DEVICE | CLI_G_THREADS)

/* --calibration FILE (docs/calibrate.md): the file and the reason lines it adds to estimates. */
#define CLI_CALIB_NOTES 2
struct cli_calib {
    char path[PLAN_PATH_MAX]; /* "" = not given */
    int n_notes;
    char notes[CLI_CALIB_NOTES][ADVISOR_REASON_MAX];
};
/* Load c->path (nothing when ""), apply it to `cal` for hardware `hw` (calib_apply) and note
 * where the efficiencies came from, or why they were not applied, and whether the file was
 * measured on another machine. Errors: the loader's (file:line:col; exit 2). */
int cli_calib_load(struct cli_calib *c, const struct hardware *hw, struct advisor_calib *cal,
                   struct sw_err *err);
/* Append the notes to an estimate's reasons. */
void cli_calib_add_reasons(const struct cli_calib *c, struct estimate *e);

/* Everything the shared flags describe, first as given, then resolved by cli_setup_resolve. */
struct cli_setup {
    unsigned given; /* enum cli_given bits */
    /* model: a profile, a config.json, or sizes (sizes also override a profile/config) */
    char model_profile[HW_NAME_MAX];
    char model_config[PLAN_PATH_MAX];
    int layers, hidden, heads, kv_heads, ffn, vocab; /* 0 = not given */
    bool arch_given;
    enum model_arch arch;
    /* hardware: a profile, a saved report/profile file, or the probe (the default) */
    char hw_profile[HW_NAME_MAX];
    char hw_file[PLAN_PATH_MAX];
    bool hw_probe;
    int nodes;         /* 0 = as the hardware says */
    int gpus_per_node; /* 0 = as the hardware says */
    /* workload and strategy as given (strategy defaults filled by resolve) */
    struct workload wl;
    struct strategy st;
    int64_t global_batch; /* --global-batch (sequences), 0 = not given */
    double achieved_tflops;
    enum sw_fmt fmt;
    /* resolved */
    int dp_reduced_from; /* default dp lowered to fit --global-batch (0 = not lowered) */
    struct model_desc model;
    struct hardware hw;
    struct advisor_calib cal;
    struct cli_calib calib; /* --calibration, applied to cal by cli_setup_resolve */
};

/* A command-specific flag: its name ("--top") and whether it takes a value. */
struct cli_flag {
    const char *name;
    bool has_value;
};

/* Called for a command-specific flag (flag = its name, value = its value or NULL) or for a
 * positional argument (flag = NULL, value = the argument). Returns 0 or a negative SW_E* code
 * with err filled (the message should name the flag). */
typedef int (*cli_extra_fn)(void *ctx, const char *flag, const char *value, struct sw_err *err);

void cli_setup_init(struct cli_setup *s);

/* Parse argv (the arguments after the command name). Both "--flag value" and "--flag=value".
 * The shared flags fill `s`; those in `extra` (NULL-terminated by name) and positionals go to
 * `fn` (positionals are an error when fn is NULL). An unknown flag is SW_EINVAL with "did you
 * mean" over the shared and extra names; a bad value names the flag. */
int cli_parse(int argc, char **argv, struct cli_setup *s, const struct cli_flag *extra,
              cli_extra_fn fn, void *ctx, struct sw_err *err);

/* True when argv holds --help or -h (checked before parsing so help always works). */
bool cli_wants_help(int argc, char **argv);

/* Load the model and the hardware, apply --nodes/--gpus-per-node, and (when with_strategy)
 * fill the strategy defaults the user left out: device from the hardware, precision and
 * attention from what the device supports, dp = devices / (tp*pp), grad_accum from
 * --global-batch (which must divide exactly). Errors: SW_EINVAL/SW_ENOENT/SW_EPARSE (exit 2),
 * a failed probe passes its code through. */
int cli_setup_resolve(struct cli_setup *s, bool with_strategy, struct sw_err *err);

/* Devices a plan can use: nodes x GPUs per node, or nodes for CPU-only hardware. */
int cli_devices(const struct hardware *hw);

/* "llama-3-8b" / "config.json" / "custom (L=4, h=256, a=8)" into buf. Returns buf. */
const char *cli_model_label(const struct cli_setup *s, char *buf, size_t n);
/* "h100-sxm, 2 nodes x 8 GPUs" / "probed: 2-core CPU" into buf. Returns buf. */
const char *cli_hw_label(const struct hardware *hw, char *buf, size_t n);

/* Print "scalewise <cmd>: <formatted error>" to stderr and return the exit code for `code`
 * (2 for bad input, 1 for an operation that failed). */
int cli_report(const char *cmd, const struct sw_err *err);

/* A flag or argument problem: print "scalewise <cmd>: <message>" and a pointer to
 * "scalewise <cmd> --help" to stderr; returns CLI_EXIT_USAGE (2). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value of the flag at argv[*i], given as "--flag=value" (eq points at its '=') or as
 * "--flag value" (eq is NULL: the next argument, and *i moves past it). NULL when the value is
 * missing. Borrowed from argv. */
const char *cli_flag_value(int argc, char **argv, int *i, const char *eq);

/* For a command with its own flag table: split arg ("--name" or "--name=value") into name (cut
 * to name_n - 1 bytes) and *eq (its '=' or NULL), and find name in names (NULL-terminated).
 * Returns its index, or -1 after printing an "unknown flag" usage error for cmd that suggests the
 * nearest name (the caller then returns CLI_EXIT_USAGE). */
int cli_flag_find(const char *cmd, const char *arg, const char *const *names, char *name,
                  size_t name_n, const char **eq);

/* One-line summary of a strategy ("dp=8 tp=1 pp=1 zero=1 bf16-mixed adamw b=4 m=2 ...") and
 * the strategy as a tree with the plan-file key names. */
const char *cli_strategy_summary(const struct strategy *st, enum sw_task task, char *buf, size_t n);
void cli_emit_strategy(struct sw_emit *e, const char *key, const struct strategy *st);

/* Text breakdown of an estimate (memory table with bars, capacity, fit, FLOPs, step time,
 * tokens/s, MFU, inference latencies) to f; reasons too when with_reasons. */
void cli_print_estimate_text(FILE *f, const struct estimate *est, enum sw_task task,
                             bool with_reasons);

#endif
