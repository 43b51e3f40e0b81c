/* executor/comm.h — the communication interface: rank, world size and local rank of this
 * process, and the collectives data parallelism needs (all-reduce, reduce-scatter, all-gather,
 * broadcast, barrier) as one table of function pointers, like executor/backend.h (style guide
 * 1: vendor differences sit behind one table). Nothing here implements its own transport:
 *   - "single": world 1, every collective is a copy (executor/comm.c);
 *   - "mpi": a plugin shared object, build/libscalewise-mpi.so, built by mpicc from
 *     executor/comm_mpi.c and dlopen'ed, so the core binary never needs libmpi;
 *   - NCCL (later, in the CUDA plugin) is bootstrapped either by MPI or by the TCP rendezvous
 *     below (executor/rdzv_tcp.c), which only exchanges small start-up records.
 * The launcher is read from flags, then torchrun, OpenMPI, MPICH/PMI and Slurm variables
 * (executor/launch_env.c; ../shared/docs/hardware-and-distributed.md 7.3).
 *
 * Failure: every collective of an engine with world > 1 runs under a watchdog; one that does not
 * finish within opts.timeout_s (default 60 s, env SCALEWISE_COMM_TIMEOUT) prints
 * "rank R: collective X did not complete in N s (a peer died or hung); exiting" to stderr and
 * calls _exit(1) — the one place outside cli/ that prints, because a hung peer leaves nothing to
 * return an error to. */
#ifndef SW_COMM_H
#define SW_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* What the caller knows before detection; -1 / NULL / 0 = "not given, detect it". */
struct comm_opts {
    int rank, world, local_rank;
    const char *master_addr;
    int master_port;
    double timeout_s; /* a collective or rendezvous not done by then: error (0 = default) */
};

enum comm_engine { COMM_SINGLE, COMM_MPI };

struct comm {
    enum comm_engine engine;
    const char *engine_name; /* "single", "mpi" */
    int rank, world, local_rank, local_world, node_rank, n_nodes;
    const char *launcher; /* "none", "mpirun", "srun", "torchrun", "scalewise --nproc" */
    /* collectives on host fp32 buffers; all ranks call them in the same order */
    int (*allreduce_sum)(struct comm *c, float *buf, size_t n, struct sw_err *err);
    int (*reduce_scatter_sum)(struct comm *c, const float *send /* n*world */, float *recv /* n */,
                              size_t n, struct sw_err *err);
    int (*allgather)(struct comm *c, const float *send /* n */, float *recv /* n*world */, size_t n,
                     struct sw_err *err);
    int (*broadcast)(struct comm *c, void *buf, size_t bytes, int root, struct sw_err *err);
    int (*allgather_bytes)(struct comm *c, const void *send, void *recv, size_t bytes,
                           struct sw_err *err);
    int (*barrier)(struct comm *c, struct sw_err *err);
    void (*finalize)(struct comm *c);
    double comm_s;       /* seconds spent inside collectives so far (for metrics) */
    uint64_t comm_bytes; /* bytes sent by this rank so far */
    void *impl;
};

/* Options with nothing given: rank/world/local_rank -1, no address, port 0, timeout 0. */
void comm_opts_init(struct comm_opts *o);

/* Detect the launcher from flags (opts) then torchrun, OpenMPI, MPICH/PMI and Slurm
   variables; world 1 -> COMM_SINGLE; MPI launcher -> load build/libscalewise-mpi.so (dlopen,
   next to the executable or $SCALEWISE_MPI_PLUGIN) and MPI_Init.
   A torchrun-style launch (or flags) with world > 1 and no MPI environment is refused with
   SW_EUNSUPPORTED: on the CPU the bytes move through MPI only (the TCP rendezvous is for the
   NCCL bootstrap of the CUDA backend). `o` may be NULL (detect everything). On success the
   caller owns `c` and ends it with c->finalize(c) (safe to call once). */
int comm_init(struct comm *c, const struct comm_opts *o, struct sw_err *err);

/* comm_init with only the environment (no flags): the helper the training path calls. */
int comm_from_env_or_single(struct comm *c, struct sw_err *err);

/* Start-up check: every rank hashes (binary build id, plan hash) and allgathers it;
   a mismatch is an error naming the ranks. */
int comm_check_consistent(struct comm *c, uint64_t plan_hash, struct sw_err *err);

/* A hash of this executable's bytes (FNV-1a 64 over /proc/self/exe, computed once and cached);
 * 0 if it cannot be read. Ranks running different binaries get different values. */
uint64_t comm_binary_hash(void);

/* The watchdog timeout in seconds: opts value if > 0, else $SCALEWISE_COMM_TIMEOUT, else 60. */
double comm_timeout_s(const struct comm_opts *o);

/* ---------------------------------------------------------------- launcher environment
 * (executor/launch_env.c) */

#define COMM_HOST_MAX 256

/* What a launcher says about this process. */
struct comm_launch_env {
    int rank, world, local_rank, local_world, node_rank, n_nodes; /* -1 = not known */
    const char *launcher; /* static: "none", "flags", "torchrun", "mpirun", "mpich", "srun",
                             "scalewise --nproc" */
    bool under_mpi;       /* an MPI launcher (OpenMPI, MPICH/PMI, or srun) started us */
    char master_addr[COMM_HOST_MAX]; /* "" = not known */
    int master_port;                 /* 0 = not known */
};

/* Fill `env` from the flags in `o` (complete when rank and world are both >= 0), then the first
 * complete table among torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK),
 * OpenMPI (OMPI_COMM_WORLD_*), MPICH/Intel (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID,
 * MPI_LOCALNRANKS) and Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID,
 * SLURM_NNODES); none -> a single process. MASTER_ADDR/MASTER_PORT come from flags, then the
 * environment, then (under Slurm) the first host of SLURM_STEP_NODELIST/SLURM_JOB_NODELIST and
 * comm_slurm_port(SLURM_JOB_ID). SCALEWISE_LAUNCHER=nproc marks children of --nproc.
 * Fails with SW_EINVAL naming the variable when a value is not an integer or out of range. */
int comm_launch_env_detect(const struct comm_opts *o, struct comm_launch_env *env,
                           struct sw_err *err);

/* The first host of a Slurm compressed host list: "gpu[01-04]" -> "gpu01", "a,b" -> "a",
 * "n[1,3-5]" -> "n1", "r1n[7-9],r2n1" -> "r1n7". SW_EINVAL on a malformed list. */
int comm_slurm_first_host(const char *nodelist, char *out, size_t out_n, struct sw_err *err);

/* 15000 + the last four digits of a Slurm job id (the Lightning convention); -1 if `job_id`
 * is not a number. */
int comm_slurm_port(const char *job_id);

/* `scalewise ... --nproc N`: run this same executable (/proc/self/exe) with the arguments
 * argv[0..argc) (those after the program name, e.g. "run", "plan.yaml"; --nproc N and --nproc=N
 * are removed) under `mpirun -np N --oversubscribe` (plus --allow-run-as-root when the effective
 * uid is 0; Open MPI only), so the bytes still move through MPI. The children see
 * SCALEWISE_LAUNCHER=nproc. A first SIGINT/SIGTERM received meanwhile goes to the ranks
 * themselves (mpirun would SIGKILL them 1 s after passing it on, too soon to save a checkpoint);
 * a second one goes to mpirun, which ends the job. Waits for the job and returns its exit status
 * (0..255; 128+signal when it was killed), or a negative SW_E* code with `err` filled when mpirun
 * is not found or cannot be started, or when called inside a job --nproc started. */
int comm_launch_local(int nproc, int argc, char **argv, struct sw_err *err);

/* ---------------------------------------------------------------- TCP rendezvous
 * (executor/rdzv_tcp.c): rank 0 listens at addr:port, the others connect with retry and
 * backoff until the timeout; one allgather of fixed records, then rank 0's blob to everyone. */

#define COMM_RDZV_VERSION 1u
#define COMM_RDZV_BLOB_BYTES 128 /* sizeof(ncclUniqueId) */

struct comm_rdzv_record {
    uint32_t version; /* COMM_RDZV_VERSION */
    int32_t rank;
    uint64_t host_hash; /* FNV-1a 64 of the host name: equal hashes = same node */
    int64_t pid;
    uint64_t plan_hash; /* the caller's plan hash */
    uint64_t binary_hash;
};

struct comm_rdzv {
    int rank, world;
    int local_rank, local_world, node_rank, n_nodes; /* derived from the host hashes */
    struct comm_rdzv_record *records;                /* world records, by rank; owned */
    unsigned char blob[COMM_RDZV_BLOB_BYTES]; /* rank 0's blob, on every rank after the run */
    int *fds; /* rank 0: one socket per peer (index = rank); others: fds[0] to rank 0 */
    int listen_fd;
};

/* Run the rendezvous: every rank sends its record; rank 0 checks versions and plan/binary hashes
 * and sends everyone the table and its `blob` (ignored on other ranks; may be NULL = zeros).
 * On success `r` holds the table and the open sockets (for comm_rdzv_barrier) until
 * comm_rdzv_release. Errors: SW_EIO when a peer does not arrive or answer within timeout_s
 * (never hangs), SW_EINVAL on mismatched plan/binary hashes or versions (naming the ranks; every
 * rank gets the error). */
int comm_rdzv_run(struct comm_rdzv *r, const char *addr, int port, int rank, int world,
                  uint64_t plan_hash, const void *blob, double timeout_s, struct sw_err *err);

/* Every rank waits until all have called it (through rank 0); SW_EIO after timeout_s. */
int comm_rdzv_barrier(struct comm_rdzv *r, double timeout_s, struct sw_err *err);

/* Close the sockets and free the table; `r` may be partly filled or already released. */
void comm_rdzv_release(struct comm_rdzv *r);

/* ---------------------------------------------------------------- MPI plugin ABI
 * (executor/comm_mpi.c, built only into libscalewise-mpi.so). The core fills nothing: the plugin
 * fills `ops` and the topology. It must not call libsw functions (the host may not export
 * them), so it writes struct sw_err fields itself. */

#define COMM_PLUGIN_API_VERSION 1

struct comm_engine_ops {
    int (*allreduce_sum)(void *state, float *buf, size_t n, struct sw_err *err);
    int (*reduce_scatter_sum)(void *state, const float *send, float *recv, size_t n,
                              struct sw_err *err);
    int (*allgather)(void *state, const float *send, float *recv, size_t n, struct sw_err *err);
    int (*broadcast)(void *state, void *buf, size_t bytes, int root, struct sw_err *err);
    int (*allgather_bytes)(void *state, const void *send, void *recv, size_t bytes,
                           struct sw_err *err);
    int (*barrier)(void *state, struct sw_err *err);
    void (*finalize)(void *state);
    void *state;
    int rank, world, local_rank, local_world, node_rank, n_nodes;
};

/* The plugin's one exported symbol, "comm_mpi_plugin_init": checks api_version ==
 * COMM_PLUGIN_API_VERSION, calls MPI_Init (unless already initialised) and fills `ops`. */
typedef int (*comm_mpi_plugin_init_fn)(int api_version, struct comm_engine_ops *ops,
                                       struct sw_err *err);

#endif
