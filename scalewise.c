/* scalewise — entry point. Parses the sub-command and dispatches; everything else lives in the
 * modules (cli/ for the commands, advisor/, executor/, tui/). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"
#include "tui/tui.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"probe", cli_probe, "inspect this machine: CPU, memory, GPUs, links, NCCL/MPI"},
    {"profiles", cli_profiles, "list the hardware and model profiles"},
    {"estimate", cli_estimate, "memory and speed of one fully specified setup"},
    {"plan", cli_plan, "search the strategy space and rank the plans that fit"},
    {"explain", cli_explain, "print a plan's estimate breakdown and the reasons"},
    {"data", cli_data, "prepare a text corpus into token shards; inspect a shard"},
    {"run", cli_run, "run a plan: train (or generate) on this machine"},
    {"generate", cli_generate, "generate text from a checkpoint with a KV cache"},
    {"calibrate", cli_calibrate, "time this machine's GEMMs and memory for the advisor"},
    {"tui", tui_main, "the terminal interface (also `scalewise` alone on a terminal)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: scalewise <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "help", "help on a command: scalewise help <command>");
    fprintf(f, "\nRun 'scalewise <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        /* On a terminal the bare command opens the TUI; piped or redirected it prints usage. */
        if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
            return tui_main(0, argv + 1);
        usage(stdout);
        return 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2) {
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    cli_print_usage(argv[2]);
                    return 0;
                }
            fprintf(stderr, "scalewise: unknown command '%s'\n", argv[2]);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    const char *names[sizeof(commands) / sizeof(commands[0]) + 2];
    size_t n = 0;
    for (; n < sizeof(commands) / sizeof(commands[0]); n++)
        names[n] = commands[n].name;
    names[n++] = "help";
    names[n] = NULL;
    const char *near = sw_suggest(cmd, names);
    if (near)
        fprintf(stderr, "scalewise: unknown command '%s'; did you mean '%s'?\n", cmd, near);
    else
        fprintf(stderr, "scalewise: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
