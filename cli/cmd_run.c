/* `scalewise run plan.yaml`: the command-line face of the executor. Parses the flags, loads
 * the plan, refuses what the CPU executor cannot do (exit 2 with the reason), installs the
 * SIGINT/SIGTERM handlers that ask the run to stop after the current step, draws the progress
 * (a bar with ETA on a terminal, plain log lines otherwise) and prints where the outputs went.
 * Training is executor/run.c; `task: infer` plans go to exec_run_infer (executor/generate.c).
 * Exit codes: 0 done, 1 the run failed, 2 bad input or a refused plan, 130 stopped by a
 * signal after saving a checkpoint. */
#include "cli/cli_int.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "executor/comm.h"
#include "executor/executor.h"

#define CLI_EXIT_INTERRUPTED 130

static volatile sig_atomic_t g_stop;

/* First signal: finish the step, checkpoint, exit 130. A second one kills at once. */
static void on_signal(int sig)
{
    if (g_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scalewise run PLAN.yaml [--steps N] [--resume CKPT|DIR] [--out DIR]\n"
            "                     [--threads N] [--quiet] [--nproc N]\n\n"
            "Runs a plan on this machine's CPU. A training plan trains the plan's model on\n"
            "data.path (a text file is tokenized into OUT/data first; a directory must hold\n"
            "train.bin and val.bin), appends OUT/metrics.jsonl each step, saves\n"
            "OUT/ckpt_<step>.safetensors (every train.checkpoint_every steps and at the end;\n"
            "OUT/latest.txt names the newest) and writes OUT/report.yaml: measured memory and\n"
            "speed beside the advisor's estimate. An inference plan generates text.\n"
            "Ctrl-C finishes the current step, saves a checkpoint and exits with status 130;\n"
            "--resume continues exactly where it stopped.\n\n"
            "  --steps N          train N optimizer steps in total (replaces train.steps)\n"
            "  --resume CKPT|DIR  continue from a checkpoint, or a run directory's latest one;\n"
            "                     a Hugging Face safetensors file starts from its weights\n"
            "  --out DIR          output directory (replaces train.out_dir)\n"
            "  --threads N        CPU threads (replaces strategy.threads; 0 = all cores)\n"
            "  --quiet            no progress output, only the final summary\n"
            "  --nproc N          start N processes on this machine (under mpirun; see\n"
            "                     docs/distributed.md)\n"
            "  --rank R, --world N (or --world-size N), --local-rank L\n"
            "                     this process's place in a multi-process run (else read\n"
            "                     from torchrun, OpenMPI, MPICH/PMI or Slurm variables)\n\n"
            "A plan with dp N (data parallelism, ZeRO 1-3) runs as N processes: 'mpirun -np N\n"
            "scalewise run PLAN', 'scalewise run --nproc N PLAN', or N processes started\n"
            "torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; on the CPU this needs\n"
            "Open MPI's ompi-server). The executor refuses plans it cannot run (tp/pp > 1,\n"
            "offload, precisions other than fp32 and bf16-mixed, device cuda without a\n"
            "GPU), with the reason (exit 2).\n"
            "Details: docs/run.md.\n"
            "example:\n"
            "  scalewise run profiles/plans/quickstart.yaml\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "scalewise run: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'scalewise run --help')\n");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

struct view {
    bool quiet;
    bool tty;
    int width;
    int64_t log_every;
    bool bar_drawn;
};

static void on_note(void *ctx, const char *line)
{
    struct view *v = ctx;
    if (v->quiet)
        return;
    if (v->bar_drawn) {
        fputc('\n', stderr);
        v->bar_drawn = false;
    }
    fprintf(stderr, "%s\n", line);
}

static void on_progress(void *ctx, const struct exec_progress *p, const struct exec_step_stats *s)
{
    struct view *v = ctx;
    (void)s;
    if (v->quiet)
        return;
    char line[256];
    if (v->tty) {
        exec_progress_format(p, true, v->width, line, sizeof(line));
        fprintf(stderr, "\r%-*s", v->width - 1, line);
        v->bar_drawn = true;
        if (p->has_val) { /* keep evaluations on screen */
            fputc('\n', stderr);
            v->bar_drawn = false;
        }
        fflush(stderr);
        return;
    }
    if (p->step % v->log_every == 0 || p->step == p->steps || p->has_val) {
        exec_progress_format(p, false, 0, line, sizeof(line));
        fprintf(stderr, "%s\n", line);
    }
}

int cli_run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    static const char *const flags[] = {"--steps", "--resume", "--out",   "--threads",
                                        "--quiet", "--nproc",  "--rank", "--world",
                                        "--local-rank", "--world-size", NULL};
    int nproc = 0;
    struct comm_opts co;
    comm_opts_init(&co);
    const char *plan_path = NULL;
    struct exec_run_opts ro;
    exec_run_opts_init(&ro);
    bool quiet = false;
    struct sw_err err;
    sw_err_init(&err);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            if (plan_path)
                return usage_error("unexpected argument '%s' (one plan per run)", arg);
            plan_path = arg;
            continue;
        }
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name))
            nlen = sizeof(name) - 1;
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        int which = -1;
        for (int k = 0; flags[k]; k++)
            if (!strcmp(name, flags[k]))
                which = k;
        if (which < 0) {
            const char *near = sw_suggest(name, flags);
            if (near)
                return usage_error("unknown flag '%s'; did you mean '%s'?", name, near);
            return usage_error("unknown flag '%s'", name);
        }
        if (which == 4) {
            if (eq)
                return usage_error("--quiet takes no value");
            quiet = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v || !*v)
            return usage_error("%s needs a value", name);
        int rc = 0;
        int64_t x;
        switch (which) {
        case 0:
            if ((rc = sw_parse_i64(v, 1, (int64_t)1e12, "--steps", &x, &err)) == 0)
                ro.steps = x;
            break;
        case 1:
            ro.resume = v;
            break;
        case 2:
            ro.out_dir = v;
            break;
        case 3:
            rc = sw_parse_int(v, 0, 65536, "--threads", &ro.threads, &err);
            break;
        case 5:
            rc = sw_parse_int(v, 1, 4096, "--nproc", &nproc, &err);
            break;
        case 6:
            rc = sw_parse_int(v, 0, 1 << 20, "--rank", &co.rank, &err);
            break;
        case 7:
        case 9: /* --world-size: torchrun's word */
            rc = sw_parse_int(v, 1, 1 << 20, name, &co.world, &err);
            break;
        case 8:
            rc = sw_parse_int(v, 0, 1 << 20, "--local-rank", &co.local_rank, &err);
            break;
        }
        if (rc < 0)
            return usage_error("%s", err.msg);
    }
    if (!plan_path)
        return usage_error("missing the plan file (scalewise run PLAN.yaml)");
    if (nproc > 1) { /* one-node launcher: the same command under mpirun (executor/comm.h) */
        char **args = sw_xcalloc((size_t)argc + 2, sizeof(*args));
        args[0] = "run";
        memcpy(args + 1, argv, (size_t)argc * sizeof(*args));
        int st = comm_launch_local(nproc, argc + 1, args, &err);
        free(args);
        return st < 0 ? cli_report("run", &err) : st;
    }

    struct plan *p = sw_xcalloc(1, sizeof(*p));
    plan_init(p);
    int rc = plan_load(plan_path, p, &err);
    if (rc < 0) {
        free(p);
        return cli_report("run", &err);
    }
    if (p->workload.task == TASK_INFER) {
        struct exec_infer_result res;
        exec_infer_result_init(&res);
        const char *od = ro.out_dir ? ro.out_dir : NULL;
        rc = exec_run_infer(p, od, stdout, &res, &err);
        exec_infer_result_release(&res);
        free(p);
        return rc < 0 ? cli_report("run", &err) : CLI_EXIT_OK;
    }
    if ((rc = exec_run_check(p, &err)) < 0) {
        free(p);
        fprintf(stderr, "scalewise run: %s: cannot run this plan: %s\n",
                plan_path, err.msg);
        return CLI_EXIT_USAGE;
    }

    /* The processes of this run: flags, then the launcher's variables (executor/comm.h);
     * none -> one process. A CUDA plan asks for the GPU engine (NCCL; comm.device_buffers
     * then says its collectives take device pointers). Only rank 0 draws progress and prints
     * the summary. */
    co.cuda = p->strategy.device == DEVICE_CUDA;
    struct comm comm;
    if ((rc = comm_init(&comm, &co, &err)) < 0) {
        free(p);
        return cli_report("run", &err);
    }
    ro.comm = &comm;
    if (comm.rank != 0)
        quiet = true;
    struct view v = {.quiet = quiet, .tty = isatty(STDERR_FILENO) == 1, .width = 100,
                     .log_every = p->train.log_every > 0 ? p->train.log_every : 1};
    struct winsize ws;
    if (v.tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        v.width = ws.ws_col;
    ro.stop = &g_stop;
    ro.on_progress = on_progress;
    ro.on_note = on_note;
    ro.ctx = &v;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    struct exec_run_result r;
    rc = exec_run_train(p, &ro, &r, &err);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (v.bar_drawn)
        fputc('\n', stderr);
    free(p);
    int rank = comm.rank, world = comm.world;
    comm.finalize(&comm);
    if (rc < 0) {
        if (world > 1)
            fprintf(stderr, "scalewise run: rank %d of %d:\n", rank, world);
        return cli_report("run", &err);
    }
    if (rank != 0)
        return r.interrupted ? CLI_EXIT_INTERRUPTED : CLI_EXIT_OK;
    if (r.interrupted) {
        fprintf(stderr,
                "scalewise run: stopped at step %lld; checkpoint saved: %s\n"
                "resume with: scalewise run %s --resume %s\n",
                (long long)r.final_step, r.checkpoint, plan_path, r.checkpoint);
        return CLI_EXIT_INTERRUPTED;
    }
    printf("trained steps %lld..%lld in %.1f s (%.0f tokens/s, %d threads); final loss %.4f",
           (long long)r.start_step, (long long)r.final_step, r.wall_s, r.tokens_per_s, r.threads,
           r.final_loss);
    if (r.final_val_loss == r.final_val_loss)
        printf(", val loss %.4f", r.final_val_loss);
    printf("\ncheckpoint: %s\nmetrics: %s/metrics.jsonl\nreport: %s/report.yaml\n", r.checkpoint,
           r.out_dir, r.out_dir);
    return CLI_EXIT_OK;
}
