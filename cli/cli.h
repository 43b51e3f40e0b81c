/* cli — the sub-commands behind `scalewise <command>`. Each takes the arguments after the
 * command name, prints its own output and errors (the only layer besides main and the TUI that
 * prints), and returns the process exit code: 0 success, 1 the operation failed (I/O, a run
 * that did not complete), 2 bad input (flags, files, plans). */
#ifndef SW_CLI_H
#define SW_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cli_probe(int argc, char **argv);
int cli_profiles(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_calibrate(int argc, char **argv);

/* Usage text of one command (or the overview when cmd is NULL) to stdout. */
void cli_print_usage(const char *cmd);

#endif
