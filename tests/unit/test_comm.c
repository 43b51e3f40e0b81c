/* Tests of the communication layer that need no MPI job: launcher-environment parsing for each
 * launcher table (variables set and unset in-process), Slurm host lists and port derivation,
 * the single-process engine (reduce_sum's in-place form and argument checks included), the
 * staged reduce (exec_stage_reduce: direct on the CPU backend, chunked through host staging on
 * the device simulator, against a fake three-rank engine), the clear and prompt refusals of a
 * torchrun-style CPU launch (no ompi-server on PATH, no rank 0) with nothing left running, the
 * GPU engine's refusals without a GPU or plugin (and, on a machine with a GPU, world size 1
 * through NCCL, reduce included), the TCP rendezvous with three forked processes on 127.0.0.1
 * (records, blob, plan mismatch, a missing peer timing out with an error) and the bootstrap
 * records it carries (a 128-byte NCCL id, rank 0's error, the second round of port names). The
 * MPI engine is tested by tests/cli/mpi.sh under mpirun (tests/mpi/mpi_collectives.c), the
 * torchrun-style CPU join end to end by tests/cli/dp_torchrun.sh. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor/backend.h"
#include "executor/comm.h"
#include "executor/executor.h"

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
                                 "SCALEWISE_COMM_TIMEOUT",
                                 "SCALEWISE_COMM",
                                 "SCALEWISE_CUDA_PLUGIN"};

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

    /* reduce to the root: world 1 is a copy; in place; the argument checks */
    float r[5] = {0};
    CHECK_OK(c.reduce_sum(&c, a, r, 5, 0, &err), &err);
    CHECK(memcmp(a, r, sizeof a) == 0);
    CHECK_OK(c.reduce_sum(&c, r, r, 5, 0, &err), &err); /* in place */
    CHECK(memcmp(a, r, sizeof a) == 0);
    CHECK_OK(c.reduce_sum(&c, NULL, NULL, 0, 0, &err), &err); /* nothing to move */
    CHECK_INT(c.reduce_sum(&c, a, r, 5, 1, &err), SW_EINVAL);
    CHECK_MSG(strstr(err.msg, "root 1") != NULL, "%s", err.msg);
    CHECK_INT(c.reduce_sum(&c, a, r, 5, -1, &err), SW_EINVAL);
    CHECK_INT(c.reduce_sum(&c, a, NULL, 5, 0, &err), SW_EINVAL); /* the root needs recv */
    CHECK_MSG(strstr(err.msg, "no receive buffer") != NULL, "%s", err.msg);
    memcpy(r, a, sizeof a);
    CHECK_INT(c.reduce_sum(&c, r, r + 1, 3, 0, &err), SW_EINVAL); /* partial overlap */
    CHECK_MSG(strstr(err.msg, "overlap") != NULL, "%s", err.msg);
    CHECK(memcmp(a, r, sizeof a) == 0);                     /* untouched */
    CHECK_OK(c.reduce_sum(&c, r + 2, r, 2, 0, &err), &err); /* adjacent, not overlapping */
    CHECK(r[0] == 3 && r[1] == 4 && r[2] == 3);
    CHECK_INT(c.comm_bytes, 0); /* world 1 sends nothing */
    CHECK(c.comm_s >= 0);
    CHECK(comm_binary_hash() != 0);
    CHECK(comm_binary_hash() == comm_binary_hash());
    c.finalize(&c);
    c.finalize(&c); /* twice is safe */
    CHECK_INT(c.barrier(&c, &err), SW_EINVAL);
    CHECK_INT(c.reduce_sum(&c, a, r, 5, 0, &err), SW_EINVAL);
}

/* ---------------------------------------------------------------- staged reduce
 * A fake engine of `W` ranks in which every rank holds the same data: the root's sum is W times
 * its own send. It records what the staging layer hands it. */

struct fake_reduce {
    int W, calls;
    size_t max_k;
    const float *last_send;
    bool saw_device_ptr, not_in_place;
};

static int fake_reduce_sum(struct comm *c, const float *send, float *recv, size_t n, int root,
                           struct sw_err *err)
{
    struct fake_reduce *f = c->impl;
    f->calls++;
    f->max_k = n > f->max_k ? n : f->max_k;
    f->last_send = send;
    /* devsim device pointers sit at 2^62 and up (backend_devsim.c): a host engine must not get
     * one */
    uintptr_t dev = (uintptr_t)1 << 62;
    if ((uintptr_t)send >= dev || (uintptr_t)recv >= dev)
        f->saw_device_ptr = true;
    if (root < 0 || root >= c->world)
        return sw_errf(err, SW_EINVAL, "fake reduce: root %d", root);
    for (size_t i = 0; c->rank == root && i < n; i++)
        recv[i] = (float)f->W * send[i];
    return 0;
}

static float stage_input(size_t i)
{
    return (float)((int)(i % 97) - 48);
}

/* n floats of stage_input in the devsim backend's memory. */
static float *devsim_input(size_t n, float *host)
{
    const struct backend *be = backend_devsim();
    struct sw_err err;
    float *d = be->alloc(n * sizeof *d, BACKEND_MEM_WORKSPACE, &err);
    for (size_t i = 0; i < n; i++)
        host[i] = stage_input(i);
    if (d)
        be->memcpy(d, host, n * sizeof *d, BACKEND_H2D);
    return d;
}

/* Counts elements of the devsim buffer d that differ from scale · stage_input(i). */
static size_t devsim_wrong(const float *d, size_t n, float scale, float *host)
{
    backend_devsim()->memcpy(host, d, n * sizeof *host, BACKEND_D2H);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += host[i] != scale * stage_input(i);
    return bad;
}

static void test_stage_reduce(void)
{
    struct sw_err err;
    sw_err_init(&err);
    struct fake_reduce f = {.W = 3};
    struct comm c = {.engine = COMM_MPI,
                     .engine_name = "fake",
                     .rank = 1,
                     .world = 3,
                     .local_world = 3,
                     .n_nodes = 1,
                     .launcher = "test",
                     .impl = &f};
    c.reduce_sum = fake_reduce_sum;
    /* three staging chunks, the last short */
    size_t per = EXEC_STAGE_BYTES / sizeof(float), n = 2 * per + 3;
    float *host = malloc(n * sizeof *host);
    const struct backend *be = backend_devsim();
    float *send = devsim_input(n, host);
    float *recv = be->alloc(n * sizeof *recv, BACKEND_MEM_WORKSPACE, &err);
    CHECK(host && send && recv);
    if (!host || !send || !recv)
        goto out;

    struct exec_comm_stage s;
    exec_comm_stage_init(&s, &c, be);
    CHECK(!s.direct); /* a host engine and device memory */
    /* this rank is the root: the sums land in recv, chunk by chunk, send untouched */
    CHECK_OK(exec_stage_reduce(&s, send, recv, n, 1, &err), &err);
    CHECK_INT(f.calls, 3);
    CHECK(f.max_k == per);
    CHECK_MSG(devsim_wrong(recv, n, 3.0f, host) == 0, "staged reduce to the root");
    CHECK_MSG(devsim_wrong(send, n, 1.0f, host) == 0, "send changed");
    /* in place on the root */
    CHECK_OK(exec_stage_reduce(&s, send, send, n, 1, &err), &err);
    CHECK_MSG(devsim_wrong(send, n, 3.0f, host) == 0, "staged reduce in place");
    /* another root: recv may be NULL here, and neither buffer of ours changes (recv still holds
     * the first sums, send the in-place ones: 3 x the input) */
    CHECK_OK(exec_stage_reduce(&s, send, NULL, n, 2, &err), &err);
    CHECK_OK(exec_stage_reduce(&s, send, recv, n, 0, &err), &err);
    CHECK_INT(f.calls, 12);
    CHECK_MSG(devsim_wrong(send, n, 3.0f, host) == 0, "send changed off the root");
    CHECK_MSG(devsim_wrong(recv, n, 3.0f, host) == 0, "recv changed off the root");
    CHECK(!f.saw_device_ptr);
    /* refused before anything moves */
    CHECK_INT(exec_stage_reduce(&s, send, recv, n, 3, &err), SW_EINVAL);
    CHECK_INT(exec_stage_reduce(&s, send, recv, n, -1, &err), SW_EINVAL);
    CHECK_INT(exec_stage_reduce(&s, send, NULL, n, 1, &err), SW_EINVAL);
    CHECK_INT(exec_stage_reduce(&s, send, send + 1, n - 1, 1, &err), SW_EINVAL);
    CHECK_MSG(strstr(err.msg, "overlap") != NULL, "%s", err.msg);
    CHECK_INT(f.calls, 12);
    exec_comm_stage_release(&s);

    /* the CPU backend: direct, the caller's own pointers reach the engine */
    float a[4] = {1, -2, 3, 4}, b[4] = {0};
    exec_comm_stage_init(&s, &c, backend_cpu());
    CHECK(s.direct);
    CHECK_OK(exec_stage_reduce(&s, a, b, 4, 1, &err), &err);
    CHECK(f.last_send == a && b[0] == 3 && b[1] == -6 && b[3] == 12);
    exec_comm_stage_release(&s);

    /* the real single engine, staged through the devsim backend (world 1: a copy) */
    struct comm one;
    clear_env();
    CHECK_OK(comm_from_env_or_single(&one, &err), &err);
    exec_comm_stage_init(&s, &one, be);
    be->free(send);
    send = devsim_input(n, host);
    CHECK_OK(exec_stage_reduce(&s, send, recv, n, 0, &err), &err);
    CHECK_MSG(devsim_wrong(recv, n, 1.0f, host) == 0, "single engine, staged");
    CHECK_INT(exec_stage_reduce(&s, send, recv, n, 1, &err), SW_EINVAL);
    exec_comm_stage_release(&s);
    one.finalize(&one);
out:
    free(host);
    be->free(send);
    be->free(recv);
}

static double mono_s(void);
static int free_port(void);

/* No child of this process may be left running (ompi-server above all). */
static bool no_children_left(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void test_torchrun_cpu(void)
{
    clear_env();
    struct comm c;
    struct sw_err err;
    char port[16];
    snprintf(port, sizeof port, "%d", free_port());
    /* rank 0 without ompi-server on PATH: it tells the peers, and itself says what is missing
     * (before the rendezvous timeout is over for the peers that never come here) */
    char dir[] = "/tmp/test_comm_path_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *old_path = getenv("PATH");
    char *saved = old_path ? strdup(old_path) : NULL;
    setenv("PATH", dir, 1);
    set("RANK", "0");
    set("WORLD_SIZE", "2");
    set("MASTER_ADDR", "127.0.0.1");
    set("MASTER_PORT", port);
    set("SCALEWISE_COMM_TIMEOUT", "0.5");
    double t0 = mono_s();
    int rc = comm_from_env_or_single(&c, &err);
    CHECK_INT(rc, SW_EUNSUPPORTED);
#ifdef SW_HAVE_MPI_BUILD
    CHECK_MSG(strstr(err.msg, "ompi-server") && strstr(err.msg, "not on PATH") &&
                  strstr(err.msg, "mpirun"),
              "%s", err.msg);
#else
    CHECK_MSG(strstr(err.msg, "MPI plugin") != NULL, "%s", err.msg);
#endif
    CHECK(c.impl == NULL);
    CHECK_MSG(mono_s() - t0 < 3.0, "took %.1f s", mono_s() - t0);
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    }
    rmdir(dir);

    /* a peer whose rank 0 never comes: a clear error after the timeout, no hang */
    set("RANK", "1");
    t0 = mono_s();
    rc = comm_from_env_or_single(&c, &err);
#ifdef SW_HAVE_MPI_BUILD
    CHECK_INT(rc, SW_EIO);
    CHECK_MSG(strstr(err.msg, "could not reach rank 0") != NULL, "%s", err.msg);
#else
    CHECK_INT(rc, SW_EUNSUPPORTED);
#endif
    CHECK_MSG(mono_s() - t0 < 3.0, "took %.1f s", mono_s() - t0);
    CHECK(c.impl == NULL);
    CHECK(no_children_left());
    clear_env();

    struct comm_opts o;
    comm_opts_init(&o);
    o.rank = 0;
    o.world = 1;
    CHECK_OK(comm_init(&c, &o, &err), &err); /* flags, world 1: single */
    CHECK_INT(c.engine, COMM_SINGLE);
    CHECK(!c.device_buffers);
    c.finalize(&c);

    set("SCALEWISE_COMM_TIMEOUT", "2.5");
    CHECK_NEAR(comm_timeout_s(NULL), 2.5, 0);
    o.timeout_s = 7;
    CHECK_NEAR(comm_timeout_s(&o), 7, 0);
    set("SCALEWISE_COMM_TIMEOUT", "soon");
    CHECK_NEAR(comm_timeout_s(NULL), 60, 0);
    clear_env();
}

/* The GPU engine: refusals that must be clear and never crash on a machine without a GPU (or
 * without the plugin); on a machine with one, world size 1 through NCCL. */
static void test_nccl_engine(void)
{
    clear_env();
    struct comm c;
    struct sw_err err;
    struct comm_opts o;
    comm_opts_init(&o);
    o.cuda = true;

    /* world 1 without SCALEWISE_COMM=nccl: the single engine, host buffers */
    CHECK_OK(comm_init(&c, &o, &err), &err);
    CHECK_INT(c.engine, COMM_SINGLE);
    CHECK(!c.device_buffers);
    c.finalize(&c);

    set("SCALEWISE_COMM", "gloo");
    CHECK_INT(comm_init(&c, &o, &err), SW_EINVAL);
    CHECK_MSG(strstr(err.msg, "SCALEWISE_COMM='gloo'") != NULL &&
                  strstr(err.msg, "auto, nccl or mpi") != NULL,
              "%s", err.msg);
    /* mpi keeps a CUDA plan off NCCL: world 1 is then the single engine, host buffers */
    set("SCALEWISE_COMM", "mpi");
    CHECK_OK(comm_init(&c, &o, &err), &err);
    CHECK_INT(c.engine, COMM_SINGLE);
    CHECK(!c.device_buffers);
    c.finalize(&c);
    set("SCALEWISE_COMM", "nccl");
    o.cuda = false;
    CHECK_INT(comm_init(&c, &o, &err), SW_EINVAL); /* NCCL for a CPU plan */
    CHECK_MSG(strstr(err.msg, "CUDA plan") != NULL, "%s", err.msg);
    o.cuda = true;

    /* no plugin */
    set("SCALEWISE_CUDA_PLUGIN", "/nonexistent/libscalewise-cuda.so");
    CHECK_INT(comm_init(&c, &o, &err), SW_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "NCCL") && strstr(err.msg, "not built"), "%s", err.msg);
    CHECK(c.impl == NULL);
    /* torchrun-style, world 2: refused at once, before waiting for a rendezvous */
    unsetenv("SCALEWISE_COMM");
    set("RANK", "1");
    set("WORLD_SIZE", "2");
    set("MASTER_ADDR", "127.0.0.1");
    set("MASTER_PORT", "1");
    double t0 = mono_s();
    CHECK_INT(comm_init(&c, &o, &err), SW_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "CUDA backend") != NULL, "%s", err.msg);
    CHECK(mono_s() - t0 < 2.0);
    clear_env();

    /* the plugin this build made, if any: no GPU -> the loader's reason; a GPU -> NCCL */
    set("SCALEWISE_COMM", "nccl");
    int rc = comm_init(&c, &o, &err);
    if (rc < 0) {
        CHECK_INT(rc, SW_EUNSUPPORTED);
        CHECK_MSG(strstr(err.msg, "GPU engine (NCCL) needs the CUDA backend") ||
                      strstr(err.msg, "NCCL"),
                  "%s", err.msg);
        CHECK(c.impl == NULL);
        printf("test_nccl_engine: no NCCL here (%s)\n", err.msg);
    } else {
        printf("test_nccl_engine: world size 1 through NCCL\n");
        CHECK_INT(c.engine, COMM_NCCL);
        CHECK_STR(c.engine_name, "nccl");
        CHECK(c.device_buffers);
        CHECK_INT(c.rank, 0);
        CHECK_INT(c.world, 1);
        /* host buffers are staged through the device */
        float a[4] = {1, 2, 3, 4}, b[4] = {0};
        CHECK_OK(c.allreduce_sum(&c, a, 4, &err), &err);
        CHECK(a[0] == 1 && a[3] == 4);
        CHECK_OK(c.reduce_scatter_sum(&c, a, b, 4, &err), &err);
        CHECK(memcmp(a, b, sizeof a) == 0);
        memset(b, 0, sizeof b);
        CHECK_OK(c.allgather(&c, a, b, 4, &err), &err);
        CHECK(memcmp(a, b, sizeof a) == 0);
        memset(b, 0, sizeof b);
        CHECK_OK(c.reduce_sum(&c, a, b, 4, 0, &err), &err); /* ncclReduce, staged */
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK_OK(c.reduce_sum(&c, b, b, 4, 0, &err), &err); /* in place */
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK_INT(c.reduce_sum(&c, a, b, 4, 1, &err), SW_EINVAL);
        char bytes[3] = "ab", got[3] = "";
        CHECK_OK(c.allgather_bytes(&c, bytes, got, 3, &err), &err);
        CHECK_STR(got, "ab");
        CHECK_OK(c.broadcast(&c, bytes, 3, 0, &err), &err);
        CHECK_OK(c.barrier(&c, &err), &err);
        CHECK_OK(comm_check_consistent(&c, 0x1234, &err), &err);
        c.finalize(&c);
    }
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
    CHILD_BAD_BOOT = 16,
    CHILD_BAD_PORT = 17,
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

/* ---------------------------------------------------------------- bootstrap records */

/* A 128-byte stand-in for an ncclUniqueId, different for each seed. */
static void id_pattern(unsigned seed, unsigned char *id)
{
    uint32_t x = 2463534242u ^ seed;
    for (int i = 0; i < COMM_NCCL_ID_BYTES; i++) {
        x ^= x << 13; /* xorshift32 (Marsaglia 2003) */
        x ^= x >> 17;
        x ^= x << 5;
        id[i] = (unsigned char)x;
    }
}

/* A peer of the bootstrap: mode 0 expects the NCCL id of `seed` and then its port name over the
 * second round; mode 1 expects rank 0's error; mode 2 expects an ompi-server URI (and gets an
 * NCCL id: the ranks disagree about the engine). */
static pid_t spawn_boot_peer(int port, int rank, unsigned seed, int mode)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct comm_rdzv r;
    struct sw_err err;
    int status = CHILD_OK;
    if (comm_rdzv_run(&r, "127.0.0.1", port, rank, 3, 9, NULL, 10, &err) < 0)
        _exit(CHILD_RDZV_FAILED);
    unsigned char id[COMM_NCCL_ID_BYTES], want[COMM_NCCL_ID_BYTES];
    size_t n = 0;
    if (mode == 0) {
        id_pattern(seed, want);
        if (comm_boot_unpack(r.blob, COMM_BOOT_NCCL_ID, id, sizeof id, &n, &err) < 0 ||
            n != sizeof id || memcmp(id, want, sizeof id) != 0)
            status = CHILD_BAD_BOOT;
        char msg[64], expect[64];
        snprintf(expect, sizeof expect, "port for rank %d", rank);
        if (status == CHILD_OK && (comm_rdzv_recv(&r, msg, sizeof msg, &n, 10, &err) < 0 ||
                                   n != strlen(expect) + 1 || strcmp(msg, expect) != 0))
            status = CHILD_BAD_PORT;
    } else if (mode == 1) {
        int rc = comm_boot_unpack(r.blob, COMM_BOOT_NCCL_ID, id, sizeof id, &n, &err);
        if (rc != SW_EUNSUPPORTED || strcmp(err.msg, "rank 0: no NVIDIA GPU") != 0)
            status = CHILD_BAD_BOOT;
    } else {
        char uri[64];
        int rc = comm_boot_unpack(r.blob, COMM_BOOT_OMPI_URI, uri, sizeof uri, &n, &err);
        if (rc != SW_EINVAL || !strstr(err.msg, "NCCL"))
            status = CHILD_BAD_BOOT;
    }
    comm_rdzv_release(&r);
    _exit(status);
}

/* Rank 0 of a three-process bootstrap carrying `blob`; both peers must exit content. */
static void run_boot(const unsigned char *blob, unsigned seed, int mode)
{
    int port = free_port();
    pid_t p1 = spawn_boot_peer(port, 1, seed, mode);
    pid_t p2 = spawn_boot_peer(port, 2, seed, mode);
    struct comm_rdzv r;
    struct sw_err err;
    int rc = comm_rdzv_run(&r, "127.0.0.1", port, 0, 3, 9, blob, 10, &err);
    CHECK_OK(rc, &err);
    if (rc == 0 && mode == 0) {
        /* the second round: each joiner's port name, in rank order */
        for (int to = 1; to < 3; to++) {
            char msg[64];
            snprintf(msg, sizeof msg, "port for rank %d", to);
            CHECK_OK(comm_rdzv_send(&r, to, msg, strlen(msg) + 1, 10, &err), &err);
        }
        CHECK_INT(comm_rdzv_send(&r, 0, "x", 2, 1, &err), SW_EINVAL);
        CHECK_INT(comm_rdzv_send(&r, 1, "x", COMM_RDZV_MSG_MAX + 1, 1, &err), SW_EINVAL);
        char buf[8];
        CHECK_INT(comm_rdzv_recv(&r, buf, sizeof buf, NULL, 1, &err), SW_EINVAL); /* rank 0 */
    }
    CHECK_INT(wait_status(p1), CHILD_OK);
    CHECK_INT(wait_status(p2), CHILD_OK);
    comm_rdzv_release(&r);
}

static void test_boot_records(void)
{
    unsigned char blob[COMM_RDZV_BLOB_BYTES], id[COMM_NCCL_ID_BYTES], got[COMM_NCCL_ID_BYTES];
    struct sw_err err;
    /* the same id reaches both peers, byte for byte, for two different ids */
    for (unsigned seed = 1; seed <= 2; seed++) {
        id_pattern(seed, id);
        comm_boot_pack(blob, COMM_BOOT_NCCL_ID, id, sizeof id);
        run_boot(blob, seed, 0);
    }
    const char *why = "no NVIDIA GPU";
    comm_boot_pack(blob, COMM_BOOT_ERROR, why, strlen(why));
    run_boot(blob, 0, 1);
    id_pattern(3, id);
    comm_boot_pack(blob, COMM_BOOT_NCCL_ID, id, sizeof id);
    run_boot(blob, 0, 2);

    /* in-process: sizes and garbage */
    size_t n = 0;
    CHECK_OK(comm_boot_unpack(blob, COMM_BOOT_NCCL_ID, got, sizeof got, &n, &err), &err);
    CHECK(n == sizeof id && memcmp(got, id, sizeof id) == 0);
    CHECK_INT(comm_boot_unpack(blob, COMM_BOOT_NCCL_ID, got, 100, &n, &err), SW_ERANGE);
    const char *uri = "1586561024.0;tcp://192.0.2.2:47309";
    char text[COMM_BOOT_PAYLOAD_MAX + 1];
    comm_boot_pack(blob, COMM_BOOT_OMPI_URI, uri, strlen(uri));
    CHECK_OK(comm_boot_unpack(blob, COMM_BOOT_OMPI_URI, text, sizeof text - 1, &n, &err), &err);
    text[n] = '\0';
    CHECK_STR(text, uri);
    static char long_text[2 * COMM_RDZV_BLOB_BYTES];
    memset(long_text, 'x', sizeof long_text);
    comm_boot_pack(blob, COMM_BOOT_ERROR, long_text, sizeof long_text); /* truncated */
    CHECK_INT(comm_boot_unpack(blob, COMM_BOOT_NCCL_ID, got, sizeof got, &n, &err),
              SW_EUNSUPPORTED);
    memset(blob, 0, sizeof blob);
    CHECK_INT(comm_boot_unpack(blob, COMM_BOOT_NCCL_ID, got, sizeof got, &n, &err), SW_EIO);
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
    /* SIGINT's disposition before the launch (SIG_IGN when the tests run as a background job) */
    struct sigaction before;
    sigaction(SIGINT, NULL, &before);
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
    /* the handlers are restored: SIGINT is as it was again */
    struct sigaction cur;
    sigaction(SIGINT, NULL, &cur);
    CHECK(cur.sa_handler == before.sa_handler);

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
    RUN(test_stage_reduce);
    RUN(test_torchrun_cpu);
    RUN(test_nccl_engine);
    RUN(test_rdzv_good);
    RUN(test_rdzv_plan_mismatch);
    RUN(test_rdzv_missing_peer);
    RUN(test_boot_records);
    RUN(test_launch_local);
    return harness_finish("test_comm");
}
