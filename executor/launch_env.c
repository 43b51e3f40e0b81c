/* executor/launch_env.c — who started this process: rank, world size, local rank, node rank and
 * the rendezvous address, read from the command-line flags, then the variables of torchrun,
 * Open MPI, MPICH/Intel MPI (PMI) and Slurm, in that order; the first complete table wins
 * (../shared/docs/hardware-and-distributed.md 3.1 and 7.3; torchrun goes before Slurm because
 * torchrun inside an allocation inherits SLURM_* values that describe its agent). Also the Slurm
 * host-list and port conventions (Lightning's: first host of the node list, port 15000 + the last
 * four digits of the job id), the `--nproc N` one-node launcher, which re-executes the same
 * command under mpirun so that on the CPU the bytes still move through MPI, and Open MPI's
 * ompi-server, which rank 0 of a torchrun-style CPU launch runs as a child so that separately
 * started MPI singletons can join one job. Nothing here talks to peers: that is comm.c
 * (engines) and rdzv_tcp.c (the TCP rendezvous). */
#include "executor/comm.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COMM_WORLD_MAX (1 << 20)

/* An integer variable: 0 if unset (out untouched), 1 if read, SW_EINVAL naming it if not an
 * integer in [min, max]. */
static int env_int(const char *name, int min, int max, int *out, struct sw_err *err)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    int rc = sw_parse_int(s, min, max, name, out, err);
    if (rc < 0)
        return sw_errf(err, SW_EINVAL, "environment variable %s='%s' is not an integer in [%d, %d]",
                       name, s, min, max);
    return 1;
}

static bool env_set(const char *name)
{
    const char *s = getenv(name);
    return s && *s;
}

/* One launcher's variable names; NULL = that launcher does not say. */
struct env_table {
    const char *launcher;
    const char *rank, *world, *local_rank, *local_world, *node_rank, *n_nodes;
    bool under_mpi;
};

/* The documented order (hardware-and-distributed.md 7.3). */
static const struct env_table tables[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", NULL, false},
    /* not OMPI_COMM_WORLD_NODE_RANK: it is the rank among all jobs' processes on this node, not
     * the node's index (the MPI engine derives that from MPI_Comm_split_type) */
    {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE", NULL, NULL, true},
    {"mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", NULL, NULL, true},
    {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL, "SLURM_NODEID", "SLURM_NNODES",
     true},
};

static int read_table(const struct env_table *t, struct comm_launch_env *env, struct sw_err *err)
{
    int rc;
    const char *names[6] = {t->rank,        t->world,     t->local_rank,
                            t->local_world, t->node_rank, t->n_nodes};
    int *outs[6] = {&env->rank,        &env->world,     &env->local_rank,
                    &env->local_world, &env->node_rank, &env->n_nodes};
    int mins[6] = {0, 1, 0, 1, 0, 1};
    for (int i = 0; i < 6; i++) {
        if (!names[i])
            continue;
        int max = (i == 0 || i == 2 || i == 4) ? COMM_WORLD_MAX - 1 : COMM_WORLD_MAX;
        if ((rc = env_int(names[i], mins[i], max, outs[i], err)) < 0)
            return rc;
    }
    env->launcher = t->launcher;
    env->under_mpi = t->under_mpi;
    return 0;
}

/* Consistency of what a launcher said. */
static int check_env(const struct comm_launch_env *env, struct sw_err *err)
{
    if (env->rank >= env->world)
        return sw_errf(err, SW_EINVAL, "%s gives rank %d but world size %d (rank must be below it)",
                       env->launcher, env->rank, env->world);
    if (env->local_rank >= 0 && env->local_world > 0 && env->local_rank >= env->local_world)
        return sw_errf(err, SW_EINVAL, "%s gives local rank %d but %d local ranks", env->launcher,
                       env->local_rank, env->local_world);
    if (env->local_world > env->world)
        return sw_errf(err, SW_EINVAL, "%s gives %d local ranks in a world of %d", env->launcher,
                       env->local_world, env->world);
    if (env->node_rank >= 0 && env->n_nodes > 0 && env->node_rank >= env->n_nodes)
        return sw_errf(err, SW_EINVAL, "%s gives node rank %d of %d nodes", env->launcher,
                       env->node_rank, env->n_nodes);
    return 0;
}

int comm_slurm_port(const char *job_id)
{
    if (!job_id || !*job_id)
        return -1;
    for (const char *p = job_id; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    size_t n = strlen(job_id);
    const char *last4 = n > 4 ? job_id + n - 4 : job_id;
    int v = 0;
    for (const char *p = last4; *p; p++)
        v = v * 10 + (*p - '0');
    return 15000 + v;
}

/* Slurm host lists (scontrol show hostnames): comma-separated hosts at bracket depth 0; each
 * bracket group is a comma list of numbers or zero-padded ranges, e.g. gpu[01-04,07]. The first
 * host takes the first element of every group. */
int comm_slurm_first_host(const char *nodelist, char *out, size_t out_n, struct sw_err *err)
{
    if (!nodelist || !*nodelist)
        return sw_errf(err, SW_EINVAL, "empty Slurm node list");
    size_t o = 0;
    const char *p = nodelist;
    while (*p && *p != ',') {
        if (*p == ']')
            return sw_errf(err, SW_EINVAL, "Slurm node list '%s': ']' without '['", nodelist);
        if (*p != '[') {
            if (isspace((unsigned char)*p))
                return sw_errf(err, SW_EINVAL, "Slurm node list '%s': unexpected space", nodelist);
            if (o + 1 >= out_n)
                return sw_errf(err, SW_ERANGE, "Slurm node list '%s': host name too long",
                               nodelist);
            out[o++] = *p++;
            continue;
        }
        /* a bracket group: copy the first element's digits, then skip to ']' */
        p++;
        const char *start = p;
        while (isdigit((unsigned char)*p)) {
            if (o + 1 >= out_n)
                return sw_errf(err, SW_ERANGE, "Slurm node list '%s': host name too long",
                               nodelist);
            out[o++] = *p++;
        }
        if (p == start || (*p != '-' && *p != ',' && *p != ']'))
            return sw_errf(err, SW_EINVAL,
                           "Slurm node list '%s': expected a number or range inside '[...]'",
                           nodelist);
        while (*p && *p != ']') {
            if (!isdigit((unsigned char)*p) && *p != '-' && *p != ',')
                return sw_errf(err, SW_EINVAL,
                               "Slurm node list '%s': unexpected '%c' inside '[...]'", nodelist,
                               *p);
            p++;
        }
        if (*p != ']')
            return sw_errf(err, SW_EINVAL, "Slurm node list '%s': missing ']'", nodelist);
        p++;
    }
    if (o == 0)
        return sw_errf(err, SW_EINVAL, "Slurm node list '%s': empty first host", nodelist);
    out[o] = '\0';
    return 0;
}

/* MASTER_ADDR / MASTER_PORT: flags, then the environment (under torchrun's agent store the port
 * is taken, so MASTER_PORT+1; 3.1), SCALEWISE_RDZV_PORT overriding, then Slurm's conventions. */
static int detect_master(const struct comm_opts *o, struct comm_launch_env *env, struct sw_err *err)
{
    int rc;
    if (o->master_addr && *o->master_addr)
        snprintf(env->master_addr, sizeof env->master_addr, "%s", o->master_addr);
    else if (env_set("MASTER_ADDR"))
        snprintf(env->master_addr, sizeof env->master_addr, "%s", getenv("MASTER_ADDR"));
    if (o->master_port > 0) {
        env->master_port = o->master_port;
    } else if ((rc = env_int("SCALEWISE_RDZV_PORT", 1, 65535, &env->master_port, err)) != 0) {
        if (rc < 0)
            return rc;
    } else if ((rc = env_int("MASTER_PORT", 1, 65535, &env->master_port, err)) != 0) {
        if (rc < 0)
            return rc;
        const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
        if (agent &&
            (strcmp(agent, "True") == 0 || strcmp(agent, "true") == 0 || strcmp(agent, "1") == 0)) {
            if (env->master_port >= 65535)
                return sw_errf(err, SW_EINVAL,
                               "MASTER_PORT=65535 is taken by torchrun's store and there is no "
                               "port above it; set SCALEWISE_RDZV_PORT");
            env->master_port++;
        }
    }
    if (!env->master_addr[0]) {
        const char *list = getenv("SLURM_STEP_NODELIST");
        if (!list || !*list)
            list = getenv("SLURM_JOB_NODELIST");
        if (list && *list &&
            (rc = comm_slurm_first_host(list, env->master_addr, sizeof env->master_addr, err)) < 0)
            return rc;
    }
    if (env->master_port == 0 && env_set("SLURM_JOB_ID")) {
        int port = comm_slurm_port(getenv("SLURM_JOB_ID"));
        if (port > 0)
            env->master_port = port;
    }
    return 0;
}

int comm_launch_env_detect(const struct comm_opts *o, struct comm_launch_env *env,
                           struct sw_err *err)
{
    struct comm_opts none;
    if (!o) {
        comm_opts_init(&none);
        o = &none;
    }
    memset(env, 0, sizeof *env);
    env->rank = env->world = env->local_rank = env->local_world = -1;
    env->node_rank = env->n_nodes = -1;
    env->launcher = "none";
    int rc;

    if (o->rank >= 0 || o->world >= 0) {
        if (o->rank < 0 || o->world < 1)
            return sw_errf(err, SW_EINVAL,
                           "--rank and --world-size go together (got rank %d, world size %d)",
                           o->rank, o->world);
        env->rank = o->rank;
        env->world = o->world;
        env->local_rank = o->local_rank;
        env->launcher = "flags";
    } else {
        for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
            if (!env_set(tables[i].rank) || !env_set(tables[i].world))
                continue;
            if ((rc = read_table(&tables[i], env, err)) < 0)
                return rc;
            break;
        }
    }
    if (env->world < 0) {
        env->rank = 0;
        env->world = 1;
    }
    /* Flags or torchrun variables inside an mpirun/srun job: MPI is still there to carry the
     * bytes when it agrees on the world size. */
    if (!env->under_mpi && env->world > 1) {
        const char *mpi_sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
        for (int i = 0; i < 2; i++) {
            int w = 0;
            if (env_int(mpi_sizes[i], 1, COMM_WORLD_MAX, &w, NULL) == 1 && w == env->world)
                env->under_mpi = true;
        }
    }
    /* A PMI table under srun (--mpi=pmi2) is srun's. */
    if (strcmp(env->launcher, "mpich") == 0 && env_set("SLURM_PROCID"))
        env->launcher = "srun";
    if (env->under_mpi && strcmp(env->launcher, "mpirun") == 0) {
        const char *l = getenv("SCALEWISE_LAUNCHER");
        if (l && strcmp(l, "nproc") == 0)
            env->launcher = "scalewise --nproc";
    }
    if (env->world == 1) {
        if (env->local_rank < 0)
            env->local_rank = 0;
        if (env->local_world < 0)
            env->local_world = 1;
        if (env->node_rank < 0)
            env->node_rank = 0;
        if (env->n_nodes < 0)
            env->n_nodes = 1;
    }
    if (env->n_nodes < 0 && env->local_world > 0 && env->world % env->local_world == 0)
        env->n_nodes = env->world / env->local_world;
    if ((rc = check_env(env, err)) < 0)
        return rc;
    return detect_master(o, env, err);
}

/* ---------------------------------------------------------------- --nproc N */

/* The first executable `name` on $PATH into `out`; false if none. */
static bool find_on_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0) {
            int w = snprintf(out, n, "%.*s/%s", (int)len, p, name);
            if (w > 0 && (size_t)w < n && access(out, X_OK) == 0)
                return true;
        }
        if (!colon)
            break;
        p = colon + 1;
    }
    return false;
}

/* Open MPI's mpirun is a link to orterun (4.x) or prterun (5.x), named mpirun.openmpi on
 * Debian; the others (MPICH's Hydra) take neither --oversubscribe nor --allow-run-as-root. */
static bool is_open_mpi(const char *mpirun)
{
    char real[PATH_MAX];
    if (!realpath(mpirun, real))
        return false;
    return strstr(real, "openmpi") || strstr(real, "orterun") || strstr(real, "prterun") ||
           strstr(real, "ompi");
}

/* Signals received while the job runs; the wait loop acts on them outside the handler. */
static volatile sig_atomic_t g_signals, g_last_signal;

static void note_signal(int sig)
{
    g_last_signal = sig;
    g_signals++;
}

/* The launchers' own processes, which must not get the ranks' signal. */
static bool is_launcher_process(const char *comm)
{
    static const char *const names[] = {
        "mpirun", "mpiexec",         "orterun",       "orted",          "prterun",
        "prted",  "hydra_pmi_proxy", "mpiexec.hydra", "mpirun.openmpi", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(comm, names[i]) == 0)
            return true;
    return false;
}

/* Sends `sig` to every descendant of `root` that is not a launcher process: the ranks. Open MPI's
 * mpirun turns a SIGINT into SIGTERM and SIGKILLs the ranks one second later (4.1:
 * odls_base_sigkill_timeout), which leaves no time to finish the step and save a checkpoint, so
 * the first Ctrl-C goes to the ranks themselves. Returns how many processes were signalled. */
static int signal_ranks(pid_t root, int sig)
{
    struct proc {
        pid_t pid, ppid;
        bool launcher;
    };
    size_t n = 0, cap = 256;
    struct proc *ps = sw_xcalloc(cap, sizeof *ps);
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%.20s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it
         */
        char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
        if (!open_p || !close_p || close_p < open_p)
            continue;
        *close_p = '\0';
        char state;
        int ppid;
        if (sscanf(close_p + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (n == cap)
            ps = sw_xrealloc(ps, (cap *= 2) * sizeof *ps);
        ps[n].pid = (pid_t)strtol(de->d_name, NULL, 10);
        ps[n].ppid = (pid_t)ppid;
        ps[n].launcher = is_launcher_process(open_p + 1);
        n++;
    }
    if (d)
        closedir(d);
    /* descendants of root: repeat until no new one joins (the tree is shallow) */
    bool *in = sw_xcalloc(n ? n : 1, sizeof *in);
    bool grew = true;
    while (grew) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (in[i])
                continue;
            bool parent_in = ps[i].ppid == root;
            for (size_t j = 0; j < n && !parent_in; j++)
                parent_in = in[j] && ps[j].pid == ps[i].ppid;
            if (parent_in)
                in[i] = grew = true;
        }
    }
    int sent = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] && !ps[i].launcher && kill(ps[i].pid, sig) == 0)
            sent++;
    free(in);
    free(ps);
    return sent;
}

int comm_launch_local(int nproc, int argc, char **argv, struct sw_err *err)
{
    if (nproc < 1 || nproc > 4096)
        return sw_errf(err, SW_EINVAL, "--nproc %d: expected 1 to 4096 processes", nproc);
    if (argc < 1 || !argv || !argv[0])
        return sw_errf(err, SW_EINVAL, "--nproc: no command to run");
    if (getenv("SCALEWISE_LAUNCHER"))
        return sw_errf(err, SW_EINVAL,
                       "--nproc inside a job that --nproc started (SCALEWISE_LAUNCHER is set)");
    char mpirun[PATH_MAX];
    if (!find_on_path("mpirun", mpirun, sizeof mpirun))
        return sw_errf(err, SW_EUNSUPPORTED,
                       "--nproc %d needs mpirun: on the CPU the ranks exchange gradients through "
                       "MPI (install openmpi-bin and libopenmpi-dev, rebuild, and retry)",
                       nproc);
    bool ompi = is_open_mpi(mpirun);

    /* The same binary, by its real path, so mpirun cannot pick another one on $PATH. */
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return sw_errf(err, SW_EINTERNAL, "--nproc: cannot find this executable: %s",
                       strerror(errno));
    self[len] = '\0';

    char np[16];
    snprintf(np, sizeof np, "%d", nproc);
    char **args = sw_xcalloc((size_t)argc + 16, sizeof *args);
    int k = 0;
    args[k++] = mpirun;
    args[k++] = "-np";
    args[k++] = np;
    if (ompi) {
        args[k++] = "--oversubscribe";
        /* Open MPI binds each rank to one core by default; the ranks share this node's cores
         * through their own OpenMP threads and the plan's probe must see them all. */
        args[k++] = "--bind-to";
        args[k++] = "none";
        if (geteuid() == 0)
            args[k++] = "--allow-run-as-root";
    }
    args[k++] = self;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--nproc") == 0) {
            i++; /* and its value */
            continue;
        }
        if (strncmp(argv[i], "--nproc=", 8) == 0)
            continue;
        args[k++] = argv[i];
    }
    args[k] = NULL;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        free(args);
        return sw_errf(err, SW_EINTERNAL, "--nproc: fork failed: %s", strerror(e));
    }
    if (pid == 0) {
        /* Own process group: a Ctrl-C on the terminal reaches the launcher only, which forwards
         * it once (mpirun passes it to the ranks); stdin from /dev/null so mpirun, now in a
         * background group, never stops on a terminal read. */
        setpgid(0, 0);
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, STDIN_FILENO);
            close(fd);
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        setenv("SCALEWISE_LAUNCHER", "nproc", 1);
        execv(mpirun, args);
        _exit(127);
    }
    /* First SIGINT/SIGTERM: to the ranks (they finish the step, checkpoint and exit 130, and
     * mpirun then ends); a second one, or a first one that found no rank: to mpirun, which
     * terminates the job. */
    int status = 0, handled = 0, wait_errno = 0;
    pid_t w;
    for (;;) {
        /* polled, so a signal that lands just before a blocking wait cannot be missed */
        w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) {
            wait_errno = errno;
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        while (handled < g_signals) {
            handled++;
            int sig = g_last_signal;
            if (handled > 1 || signal_ranks(pid, sig) == 0)
                kill(pid, sig);
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(args);
    if (w < 0)
        return sw_errf(err, SW_EINTERNAL, "--nproc: waiting for mpirun failed: %s",
                       strerror(wait_errno));
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 127)
            return sw_errf(err, SW_EINTERNAL, "--nproc: could not execute %s", mpirun);
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

/* ---------------------------------------------------------------- ompi-server */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The file's first line into out (without the newline); false until a whole line is there. */
static bool read_line_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool got = fgets(out, (int)n, f) != NULL;
    fclose(f);
    if (!got)
        return false;
    char *nl = strchr(out, '\n');
    if (!nl)
        return false;
    *nl = '\0';
    return out[0] != '\0';
}

/* The last bytes of ompi-server's log, one line, for an error message. */
static void log_tail(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[2048];
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    for (size_t i = 0; i < got; i++)
        if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
            buf[i] = ' ';
    size_t len = strlen(buf);
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
    const char *start = len + 1 > n ? buf + len + 1 - n : buf;
    snprintf(out, n, "%s", start);
}

static void remove_dir(struct comm_ompi_server *s)
{
    if (!s->dir[0])
        return;
    char path[128];
    snprintf(path, sizeof path, "%s/uri", s->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/log", s->dir);
    unlink(path);
    rmdir(s->dir);
    s->dir[0] = '\0';
}

int comm_ompi_server_start(struct comm_ompi_server *s, double timeout_s, struct sw_err *err)
{
    memset(s, 0, sizeof *s);
    char prog[PATH_MAX];
    if (!find_on_path("ompi-server", prog, sizeof prog))
        return sw_errf(err, SW_EUNSUPPORTED,
                       "a torchrun-style launch on the CPU needs Open MPI's ompi-server (it lets "
                       "the separately started processes join one MPI job), and it is not on "
                       "PATH: install openmpi-bin, or launch with mpirun -np N or scalewise run "
                       "--nproc N");
    snprintf(s->dir, sizeof s->dir, "/tmp/scalewise-ompi-XXXXXX");
    if (!mkdtemp(s->dir)) {
        int e = errno;
        s->dir[0] = '\0';
        return sw_errf(err, SW_EIO, "ompi-server: cannot create a directory in /tmp: %s",
                       strerror(e));
    }
    char uri_path[128], log_path[128];
    snprintf(uri_path, sizeof uri_path, "%s/uri", s->dir);
    snprintf(log_path, sizeof log_path, "%s/log", s->dir);
    /* Its environment, built before the fork (a child of a threaded process must not call
     * setenv): OMPI_MCA_plm=isolated unless the user chose a launcher component, because the
     * server launches no daemons and the default (rsh) refuses to start where there is no ssh,
     * as in many containers. */
    extern char **environ;
    size_t n_env = 0;
    bool has_plm = false;
    for (char **e = environ; e && *e; e++, n_env++)
        if (strncmp(*e, "OMPI_MCA_plm=", 13) == 0)
            has_plm = true;
    char **envp = sw_xcalloc(n_env + 2, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        envp[k++] = environ[i];
    if (!has_plm)
        envp[k++] = "OMPI_MCA_plm=isolated";
    envp[k] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        free(envp);
    if (pid < 0) {
        int e = errno;
        comm_ompi_server_stop(s);
        return sw_errf(err, SW_EINTERNAL, "ompi-server: fork failed: %s", strerror(e));
    }
    if (pid == 0) {
        /* Ends with this process, whatever way it ends (watchdog _exit, a signal); its own
         * process group keeps a terminal Ctrl-C meant for the ranks away from it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        char *argv[] = {"ompi-server", "--no-daemonize", "-r", uri_path, NULL};
        execve(prog, argv, envp);
        _exit(127);
    }
    s->pid = (int)pid;
    if (timeout_s <= 0)
        timeout_s = comm_timeout_s(NULL);
    double deadline_s = mono_s() + timeout_s;
    for (;;) {
        if (read_line_file(uri_path, s->uri, sizeof s->uri)) {
            /* Nothing to leave in /tmp even if this process dies without stopping it: the
             * server keeps writing to its unlinked log. */
            remove_dir(s);
            return 0;
        }
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            char tail[300];
            log_tail(log_path, tail, sizeof tail);
            comm_ompi_server_stop(s);
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return sw_errf(err, SW_EUNSUPPORTED, "ompi-server: cannot execute %s", prog);
            return sw_errf(err, SW_EIO,
                           "ompi-server exited (status %d) before reporting its "
                           "address: %s",
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                           tail[0] ? tail : "no output");
        }
        if (mono_s() >= deadline_s) {
            char tail[300];
            log_tail(log_path, tail, sizeof tail);
            comm_ompi_server_stop(s);
            return sw_errf(err, SW_EIO, "ompi-server did not report its address within %.0f s: %s",
                           timeout_s, tail[0] ? tail : "no output");
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void comm_ompi_server_stop(struct comm_ompi_server *s)
{
    if (s->pid > 0) {
        pid_t pid = (pid_t)s->pid;
        kill(pid, SIGTERM);
        bool gone = false;
        for (int i = 0; i < 200 && !gone; i++) { /* 2 s */
            pid_t w = waitpid(pid, NULL, WNOHANG);
            gone = w == pid || (w < 0 && errno == ECHILD);
            if (!gone) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (!gone) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        s->pid = 0;
    }
    remove_dir(s);
}
