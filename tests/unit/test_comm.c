/* Tests of the communication layer that need no MPI: launcher-environment parsing for each
 * launcher table (variables set and unset in-process), Slurm host lists and port derivation,
 * the single-process engine, the refusal of a torchrun-style CPU launch without MPI, and the TCP
 * rendezvous with three forked processes on 127.0.0.1 (records, blob, plan mismatch, a missing
 * peer timing out with an error). The MPI engine is tested by tests/cli/mpi.sh under mpirun. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor/comm.h"

static const char *all_vars[] = {"RANK",
                                 "WORLD_SIZE",
                                 "LOCAL_RANK",
                                 "LOCAL_WORLD_SIZE",
                                 "GROUP_RANK",
                                 "OMPI_COMM_WORLD_RANK",
                                 "OMPI_COMM_WORLD_SIZE",
                                 "OMPI_COMM_WORLD_LOCAL_RANK",
                                 "OMPI_COMM_WORLD_LOCAL_SIZE",
                                 "OMPI_COMM_WORLD_NODE_RANK",
                                 "PMI_RANK",
                                 "PMI_SIZE",
                                 "MPI_LOCALRANKID",
                                 "MPI_LOCALNRANKS",
                                 "SLURM_PROCID",
                                 "SLURM_NTASKS",
                                 "SLURM_LOCALID",
                                 "SLURM_NODEID",
                                 "SLURM_NNODES",
                                 "SLURM_STEP_NODELIST",
                                 "SLURM_JOB_NODELIST",
                                 "SLURM_JOB_ID",
                                 "MASTER_ADDR",
                                 "MASTER_PORT",
                                 "TORCHELASTIC_USE_AGENT_STORE",
                                 "SCALEWISE_RDZV_PORT",
                                 "SCALEWISE_LAUNCHER",
                                 "SCALEWISE_COMM_TIMEOUT"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
        unsetenv(all_vars[i]);
}

static void set(const char *k, const char *v)
{
    setenv(k, v, 1);
}

static void test_env_none(void)
{
    clear_env();
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "none");
    CHECK_INT(e.rank, 0);
    CHECK_INT(e.world, 1);
    CHECK_INT(e.local_rank, 0);
    CHECK_INT(e.local_world, 1);
    CHECK_INT(e.n_nodes, 1);
    CHECK(!e.under_mpi);
    CHECK_STR(e.master_addr, "");
    CHECK_INT(e.master_port, 0);
}

static void test_env_torchrun(void)
{
    clear_env();
    set("RANK", "5");
    set("WORLD_SIZE", "8");
    set("LOCAL_RANK", "1");
    set("LOCAL_WORLD_SIZE", "4");
    set("GROUP_RANK", "1");
    set("MASTER_ADDR", "node7");
    set("MASTER_PORT", "29500");
    /* torchrun inside a Slurm allocation inherits the agent's SLURM_*: torchrun must win */
    set("SLURM_PROCID", "0");
    set("SLURM_NTASKS", "2");
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "torchrun");
    CHECK_INT(e.rank, 5);
    CHECK_INT(e.world, 8);
    CHECK_INT(e.local_rank, 1);
    CHECK_INT(e.local_world, 4);
    CHECK_INT(e.node_rank, 1);
    CHECK_INT(e.n_nodes, 2);
    CHECK(!e.under_mpi);
    CHECK_STR(e.master_addr, "node7");
    CHECK_INT(e.master_port, 29500);

    /* the agent's store holds MASTER_PORT: our listener moves one up */
    set("TORCHELASTIC_USE_AGENT_STORE", "True");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_INT(e.master_port, 29501);
    set("SCALEWISE_RDZV_PORT", "31000");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_INT(e.master_port, 31000);

    /* incomplete table (no WORLD_SIZE): falls through to the next complete one (Slurm) */
    unsetenv("WORLD_SIZE");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "srun");
    CHECK_INT(e.world, 2);

    set("WORLD_SIZE", "eight");
    CHECK_INT(comm_launch_env_detect(NULL, &e, &err), SW_EINVAL);
    CHECK(strstr(err.msg, "WORLD_SIZE") != NULL);
    set("WORLD_SIZE", "4");
    CHECK_INT(comm_launch_env_detect(NULL, &e, &err), SW_EINVAL); /* rank 5 of 4 */
    CHECK(strstr(err.msg, "rank 5") != NULL);
    clear_env();
}

static void test_env_openmpi(void)
{
    clear_env();
    set("OMPI_COMM_WORLD_RANK", "2");
    set("OMPI_COMM_WORLD_SIZE", "4");
    set("OMPI_COMM_WORLD_LOCAL_RANK", "0");
    set("OMPI_COMM_WORLD_LOCAL_SIZE", "2");
    set("OMPI_COMM_WORLD_NODE_RANK", "3"); /* across all jobs on the node: not a node index */
    set("PMI_RANK", "3");                  /* a later table: ignored */
    set("PMI_SIZE", "9");
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "mpirun");
    CHECK_INT(e.rank, 2);
    CHECK_INT(e.world, 4);
    CHECK_INT(e.local_rank, 0);
    CHECK_INT(e.local_world, 2);
    CHECK_INT(e.node_rank, -1); /* unknown until MPI says */
    CHECK_INT(e.n_nodes, 2);
    CHECK(e.under_mpi);
    set("SCALEWISE_LAUNCHER", "nproc");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "scalewise --nproc");

    /* torchrun variables inside an mpirun job of the same size: MPI still carries the bytes */
    set("RANK", "2");
    set("WORLD_SIZE", "4");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "torchrun");
    CHECK(e.under_mpi);
    clear_env();
}

static void test_env_mpich(void)
{
    clear_env();
    set("PMI_RANK", "3");
    set("PMI_SIZE", "6");
    set("MPI_LOCALRANKID", "0");
    set("MPI_LOCALNRANKS", "3");
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "mpich");
    CHECK_INT(e.rank, 3);
    CHECK_INT(e.world, 6);
    CHECK_INT(e.local_rank, 0);
    CHECK_INT(e.local_world, 3);
    CHECK_INT(e.n_nodes, 2);
    CHECK(e.under_mpi);
    set("MPI_LOCALRANKID", "3"); /* local rank 3 of 3 */
    CHECK_INT(comm_launch_env_detect(NULL, &e, &err), SW_EINVAL);
    clear_env();
}

static void test_env_slurm(void)
{
    clear_env();
    set("SLURM_PROCID", "9");
    set("SLURM_NTASKS", "16");
    set("SLURM_LOCALID", "1");
    set("SLURM_NODEID", "4");
    set("SLURM_NNODES", "8");
    set("SLURM_JOB_NODELIST", "gpu[01-08]");
    set("SLURM_STEP_NODELIST", "gpu[03-06,08]");
    set("SLURM_JOB_ID", "4812345");
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "srun");
    CHECK_INT(e.rank, 9);
    CHECK_INT(e.world, 16);
    CHECK_INT(e.local_rank, 1);
    CHECK_INT(e.node_rank, 4);
    CHECK_INT(e.n_nodes, 8);
    CHECK(e.under_mpi);
    CHECK_STR(e.master_addr, "gpu03"); /* the step's list before the job's */
    CHECK_INT(e.master_port, 15000 + 2345);
    unsetenv("SLURM_STEP_NODELIST");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.master_addr, "gpu01");
    set("MASTER_ADDR", "login1"); /* explicit beats derived */
    set("MASTER_PORT", "1234");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.master_addr, "login1");
    CHECK_INT(e.master_port, 1234);
    /* a PMI table under srun --mpi=pmi2 is still srun */
    set("PMI_RANK", "9");
    set("PMI_SIZE", "16");
    CHECK_OK(comm_launch_env_detect(NULL, &e, &err), &err);
    CHECK_STR(e.launcher, "srun");
    set("SLURM_NODEID", "8"); /* node 8 of 8 */
    unsetenv("PMI_RANK");
    CHECK_INT(comm_launch_env_detect(NULL, &e, &err), SW_EINVAL);
    clear_env();
}

static void test_env_flags(void)
{
    clear_env();
    set("OMPI_COMM_WORLD_RANK", "1");
    set("OMPI_COMM_WORLD_SIZE", "2");
    set("MASTER_ADDR", "envhost");
    struct comm_opts o;
    comm_opts_init(&o);
    o.rank = 3;
    o.world = 4;
    o.local_rank = 1;
    o.master_addr = "flaghost";
    o.master_port = 4000;
    struct comm_launch_env e;
    struct sw_err err;
    CHECK_OK(comm_launch_env_detect(&o, &e, &err), &err);
    CHECK_STR(e.launcher, "flags");
    CHECK_INT(e.rank, 3);
    CHECK_INT(e.world, 4);
    CHECK_INT(e.local_rank, 1);
    CHECK(!e.under_mpi); /* mpirun's size 2 is not this world of 4 */
    CHECK_STR(e.master_addr, "flaghost");
    CHECK_INT(e.master_port, 4000);
    o.world = -1; /* rank without a world size */
    CHECK_INT(comm_launch_env_detect(&o, &e, &err), SW_EINVAL);
    clear_env();
}

static void test_slurm_nodelist(void)
{
    struct sw_err err;
    char h[64];
    struct {
        const char *in, *want;
    } ok_cases[] = {
        {"gpu[01-04]", "gpu01"},
        {"a,b", "a"},
        {"n[1,3-5]", "n1"},
        {"r1n[7-9],r2n1", "r1n7"},
        {"single", "single"},
        {"n[3-5]-ib", "n3-ib"},
        {"rack[2-3]n[10-11]", "rack2n10"},
        {"node-a.example,x", "node-a.example"},
    };
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        int rc = comm_slurm_first_host(ok_cases[i].in, h, sizeof h, &err);
        CHECK_MSG(rc == 0, "%s: %s", ok_cases[i].in, err.msg);
        if (rc == 0)
            CHECK_STR(h, ok_cases[i].want);
    }
    const char *bad[] = {"", "gpu[01-04", "gpu[]", "gpu[a-b]", "x]", ",a", "gpu[1-2]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(comm_slurm_first_host(bad[i], h, sizeof h, &err) == SW_EINVAL, "'%s'", bad[i]);
    char tiny[4];
    CHECK_INT(comm_slurm_first_host("gpu[01-04]", tiny, sizeof tiny, &err), SW_ERANGE);

    CHECK_INT(comm_slurm_port("4812345"), 17345);
    CHECK_INT(comm_slurm_port("42"), 15042);
    CHECK_INT(comm_slurm_port("10000"), 15000);
    CHECK_INT(comm_slurm_port("12x"), -1);
    CHECK_INT(comm_slurm_port(""), -1);
}

static void test_single_engine(void)
{
    clear_env();
    struct comm c;
    struct sw_err err;
    CHECK_OK(comm_from_env_or_single(&c, &err), &err);
    CHECK_INT(c.engine, COMM_SINGLE);
    CHECK_STR(c.engine_name, "single");
    CHECK_STR(c.launcher, "none");
    CHECK_INT(c.rank, 0);
    CHECK_INT(c.world, 1);
    CHECK_INT(c.local_world, 1);
    CHECK_INT(c.n_nodes, 1);
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0};
    CHECK_OK(c.allreduce_sum(&c, a, 5, &err), &err);
    CHECK(a[0] == 1 && a[4] == 5);
    CHECK_OK(c.reduce_scatter_sum(&c, a, b, 5, &err), &err);
    CHECK(memcmp(a, b, sizeof a) == 0);
    memset(b, 0, sizeof b);
    CHECK_OK(c.allgather(&c, a, b, 5, &err), &err);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(c.allgather(&c, b, b, 5, &err), &err); /* in place */
    CHECK(memcmp(a, b, sizeof a) == 0);
    char bytes[3] = "ab", got[3] = "";
    CHECK_OK(c.allgather_bytes(&c, bytes, got, 3, &err), &err);
    CHECK_STR(got, "ab");
    CHECK_OK(c.broadcast(&c, bytes, 3, 0, &err), &err);
    CHECK_INT(c.broadcast(&c, bytes, 3, 1, &err), SW_EINVAL);
    CHECK_OK(c.barrier(&c, &err), &err);
    CHECK_OK(comm_check_consistent(&c, 0x1234, &err), &err);
    CHECK_INT(c.comm_bytes, 0); /* world 1 sends nothing */
    CHECK(c.comm_s >= 0);
    CHECK(comm_binary_hash() != 0);
    CHECK(comm_binary_hash() == comm_binary_hash());
    c.finalize(&c);
    c.finalize(&c); /* twice is safe */
    CHECK_INT(c.barrier(&c, &err), SW_EINVAL);
}

static void test_refuse_without_mpi(void)
{
    clear_env();
    set("RANK", "0");
    set("WORLD_SIZE", "2");
    set("MASTER_ADDR", "127.0.0.1");
    set("MASTER_PORT", "29500");
    struct comm c;
    struct sw_err err;
    CHECK_INT(comm_from_env_or_single(&c, &err), SW_EUNSUPPORTED);
    CHECK(strstr(err.msg, "MPI") != NULL);
    CHECK(strstr(err.msg, "mpirun") != NULL);
    CHECK(c.impl == NULL);
    clear_env();

    struct comm_opts o;
    comm_opts_init(&o);
    o.rank = 0;
    o.world = 1;
    CHECK_OK(comm_init(&c, &o, &err), &err); /* flags, world 1: single */
    CHECK_INT(c.engine, COMM_SINGLE);
    c.finalize(&c);

    set("SCALEWISE_COMM_TIMEOUT", "2.5");
    CHECK_NEAR(comm_timeout_s(NULL), 2.5, 0);
    o.timeout_s = 7;
    CHECK_NEAR(comm_timeout_s(&o), 7, 0);
    set("SCALEWISE_COMM_TIMEOUT", "soon");
    CHECK_NEAR(comm_timeout_s(NULL), 60, 0);
    clear_env();
}

/* ---------------------------------------------------------------- TCP rendezvous */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What a child reports through its exit status. */
enum {
    CHILD_OK = 0,
    CHILD_BAD_TABLE = 10,
    CHILD_BAD_BLOB = 11,
    CHILD_RDZV_FAILED = 12,
    CHILD_GOT_EINVAL_RANK2 = 13,
    CHILD_GOT_EIO = 14,
    CHILD_BARRIER_FAILED = 15,
};

static const unsigned char *blob_pattern(void)
{
    static unsigned char b[COMM_RDZV_BLOB_BYTES];
    for (int i = 0; i < COMM_RDZV_BLOB_BYTES; i++)
        b[i] = (unsigned char)(i * 7 + 3);
    return b;
}

/* Checks every rank's view of a good rendezvous: the table, the blob, the topology. */
static int check_table(const struct comm_rdzv *r, int world, uint64_t plan)
{
    if (r->world != world || r->local_world != world || r->n_nodes != 1 || r->node_rank != 0 ||
        r->local_rank != r->rank)
        return CHILD_BAD_TABLE;
    for (int i = 0; i < world; i++) {
        if (r->records[i].rank != i || r->records[i].plan_hash != plan ||
            r->records[i].version != COMM_RDZV_VERSION || r->records[i].pid <= 0 ||
            r->records[i].host_hash != r->records[0].host_hash)
            return CHILD_BAD_TABLE;
        for (int j = 0; j < i; j++)
            if (r->records[j].pid == r->records[i].pid)
                return CHILD_BAD_TABLE;
    }
    if (r->rank != 0 && r->records[r->rank].pid != (int64_t)getpid())
        return CHILD_BAD_TABLE;
    if (memcmp(r->blob, blob_pattern(), COMM_RDZV_BLOB_BYTES) != 0)
        return CHILD_BAD_BLOB;
    return CHILD_OK;
}

static pid_t spawn_peer(int port, int rank, int world, uint64_t plan, double timeout_s, int mode)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct comm_rdzv r;
    struct sw_err err;
    int rc = comm_rdzv_run(&r, "127.0.0.1", port, rank, world, plan, NULL, timeout_s, &err);
    int status;
    if (mode == 0) { /* a good rendezvous */
        status = rc < 0 ? CHILD_RDZV_FAILED : check_table(&r, world, plan);
        if (status == CHILD_OK && comm_rdzv_barrier(&r, timeout_s, &err) < 0)
            status = CHILD_BARRIER_FAILED;
    } else if (mode == 1) { /* expects the plan mismatch of rank 2 */
        status = rc == SW_EINVAL && strstr(err.msg, "rank 2") && strstr(err.msg, "plan")
                     ? CHILD_GOT_EINVAL_RANK2
                     : CHILD_RDZV_FAILED;
    } else { /* expects a timeout */
        status = rc == SW_EIO ? CHILD_GOT_EIO : CHILD_RDZV_FAILED;
        if (status != CHILD_GOT_EIO)
            fprintf(stderr, "rank %d: rc %d: %s\n", rank, rc, err.msg);
    }
    comm_rdzv_release(&r);
    _exit(status);
}

static int wait_status(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void test_rdzv_good(void)
{
    int port = free_port();
    CHECK(port > 0);
    uint64_t plan = 0xfeedbeef12345678ull;
    /* the peers start first: they must retry until rank 0 listens */
    pid_t p1 = spawn_peer(port, 1, 3, plan, 10, 0);
    pid_t p2 = spawn_peer(port, 2, 3, plan, 10, 0);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    struct comm_rdzv r;
    struct sw_err err;
    int rc = comm_rdzv_run(&r, "127.0.0.1", port, 0, 3, plan, blob_pattern(), 10, &err);
    CHECK_OK(rc, &err);
    if (rc == 0) {
        CHECK_INT(check_table(&r, 3, plan), CHILD_OK);
        CHECK_INT(r.records[0].pid, getpid());
        CHECK(r.records[1].pid == p1 && r.records[2].pid == p2);
        CHECK_OK(comm_rdzv_barrier(&r, 10, &err), &err);
    }
    comm_rdzv_release(&r);
    comm_rdzv_release(&r); /* twice is safe */
    CHECK_INT(wait_status(p1), CHILD_OK);
    CHECK_INT(wait_status(p2), CHILD_OK);
}

static void test_rdzv_plan_mismatch(void)
{
    int port = free_port();
    uint64_t plan = 42;
    pid_t p1 = spawn_peer(port, 1, 3, plan, 10, 1);
    pid_t p2 = spawn_peer(port, 2, 3, plan + 1, 10, 1);
    struct comm_rdzv r;
    struct sw_err err;
    int rc = comm_rdzv_run(&r, "127.0.0.1", port, 0, 3, plan, blob_pattern(), 10, &err);
    CHECK_INT(rc, SW_EINVAL);
    CHECK_MSG(strstr(err.msg, "rank 2") && strstr(err.msg, "plan mismatch"), "%s", err.msg);
    CHECK(r.records == NULL); /* released on failure */
    CHECK_INT(wait_status(p1), CHILD_GOT_EINVAL_RANK2);
    CHECK_INT(wait_status(p2), CHILD_GOT_EINVAL_RANK2);
}

static void test_rdzv_missing_peer(void)
{
    int port = free_port();
    double t0 = mono_s();
    pid_t p1 = spawn_peer(port, 1, 3, 7, 1.0, 2); /* rank 2 never comes */
    struct comm_rdzv r;
    struct sw_err err;
    int rc = comm_rdzv_run(&r, "127.0.0.1", port, 0, 3, 7, NULL, 1.0, &err);
    CHECK_INT(rc, SW_EIO);
    CHECK_MSG(strstr(err.msg, "missing: 2") != NULL, "%s", err.msg);
    CHECK_INT(wait_status(p1), CHILD_GOT_EIO);
    double took_s = mono_s() - t0;
    CHECK_MSG(took_s < 5.0, "took %.1f s", took_s);

    /* no rank 0 at all: the peer gives up after its timeout with a clear error */
    port = free_port();
    t0 = mono_s();
    rc = comm_rdzv_run(&r, "127.0.0.1", port, 1, 2, 7, NULL, 0.5, &err);
    CHECK_INT(rc, SW_EIO);
    CHECK_MSG(strstr(err.msg, "could not reach rank 0") != NULL, "%s", err.msg);
    took_s = mono_s() - t0;
    CHECK_MSG(took_s >= 0.3 && took_s < 3.0, "took %.1f s", took_s);

    CHECK_INT(comm_rdzv_run(&r, "127.0.0.1", 0, 1, 2, 7, NULL, 0.5, &err), SW_EINVAL);
    CHECK_INT(comm_rdzv_run(&r, "127.0.0.1", port, 2, 2, 7, NULL, 0.5, &err), SW_EINVAL);
    /* world 1 needs no network */
    CHECK_OK(comm_rdzv_run(&r, NULL, 0, 0, 1, 7, blob_pattern(), 0.5, &err), &err);
    CHECK_INT(r.local_world, 1);
    CHECK_OK(comm_rdzv_barrier(&r, 0.5, &err), &err);
    comm_rdzv_release(&r);
}

/* ---------------------------------------------------------------- --nproc launcher
 * A fake mpirun on $PATH (in a directory named openmpi/, so the launcher adds Open MPI's flags)
 * records its arguments and starts one fake rank; the rank sends SIGINT to the launcher (the
 * test process) and exits 42 when the launcher forwards the signal to it (to the rank, not to
 * mpirun: the fake mpirun records it if it gets one). */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_launch_local(void)
{
    clear_env();
    char dir[] = "/tmp/test_comm_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char bindir[256], fake[300], log[300], cmd[700];
    snprintf(bindir, sizeof bindir, "%s/openmpi", dir);
    CHECK(mkdir(bindir, 0755) == 0);
    snprintf(fake, sizeof fake, "%s/mpirun", bindir);
    snprintf(log, sizeof log, "%s/log", dir);
    char script[1500];
    /* set -m: without job control a background job would ignore SIGINT */
    snprintf(script, sizeof script,
             "#!/bin/bash\n"
             "set -m\n"
             "trap 'echo \"mpirun got INT\" >> %s' INT\n"
             "echo \"$*\" > %s\n"
             "bash -c 'trap \"echo rank INT $SCALEWISE_LAUNCHER >> %s; exit 42\" INT;"
             " kill -INT %d; sleep 10 & wait; exit 1' &\n"
             "wait $!\n"
             "exit $?\n",
             log, log, log, (int)getpid());
    write_file(fake, script);
    CHECK(chmod(fake, 0755) == 0);
    const char *old_path = getenv("PATH");
    char *saved = old_path ? strdup(old_path) : NULL;
    char path[400];
    snprintf(path, sizeof path, "%s:/usr/bin:/bin", bindir); /* ours first; bash and sleep */
    setenv("PATH", path, 1);

    char *args[] = {"run", "--nproc", "3", "plan.yaml", "--nproc=3", "--steps", "2"};
    struct sw_err err;
    int st = comm_launch_local(3, 7, args, &err);
    CHECK_MSG(st == 42, "status %d: %s", st, st < 0 ? err.msg : "");
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(sw_read_file(log, 1 << 16, &text, &len, &err), &err);
    if (text) {
        char self[512];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        char want[900];
        snprintf(want, sizeof want,
                 "-np 3 --oversubscribe --bind-to none %s%s run plan.yaml --steps 2\n"
                 "rank INT nproc\n",
                 geteuid() == 0 ? "--allow-run-as-root " : "", self);
        CHECK_STR(text, want);
        free(text);
    }
    /* the handlers are restored: SIGINT is ours again */
    struct sigaction cur;
    sigaction(SIGINT, NULL, &cur);
    CHECK(cur.sa_handler == SIG_DFL);

    setenv("PATH", dir, 1); /* no mpirun there */
    CHECK_INT(comm_launch_local(2, 2, args, &err), SW_EUNSUPPORTED);
    CHECK(strstr(err.msg, "mpirun") && strstr(err.msg, "MPI"));
    CHECK_INT(comm_launch_local(0, 2, args, &err), SW_EINVAL);
    setenv("PATH", path, 1);
    set("SCALEWISE_LAUNCHER", "nproc"); /* no launcher inside a launched job */
    CHECK_INT(comm_launch_local(2, 2, args, &err), SW_EINVAL);
    unsetenv("SCALEWISE_LAUNCHER");

    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_env_none);
    RUN(test_env_torchrun);
    RUN(test_env_openmpi);
    RUN(test_env_mpich);
    RUN(test_env_slurm);
    RUN(test_env_flags);
    RUN(test_slurm_nodelist);
    RUN(test_single_engine);
    RUN(test_refuse_without_mpi);
    RUN(test_rdzv_good);
    RUN(test_rdzv_plan_mismatch);
    RUN(test_rdzv_missing_peer);
    RUN(test_launch_local);
    return harness_finish("test_comm");
}
