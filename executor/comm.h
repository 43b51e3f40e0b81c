/* executor/comm.h — the communication interface: rank, world size and local rank of this
 * process, and the collectives data parallelism needs (all-reduce, reduce-scatter, all-gather,
 * reduce to one rank, broadcast, barrier) as one table of function pointers, like
 * executor/backend.h (style guide 1: vendor differences sit behind one table). Nothing here
 * implements its own transport:
 *   - "single": world 1, every collective is a copy (executor/comm.c);
 *   - "mpi": a plugin shared object, build/libscalewise-mpi.so, built by mpicc from
 *     executor/comm_mpi.c and dlopen'ed, so the core binary never needs libmpi. Under mpirun,
 *     srun or MPICH it is one MPI job; a torchrun-style launch (RANK/WORLD_SIZE/MASTER_ADDR/
 *     MASTER_PORT, no MPI launcher) on the CPU starts as separate MPI singletons that join one
 *     communicator through Open MPI's ompi-server (rank 0 starts it; its address travels by the
 *     TCP rendezvous below);
 *   - "nccl": the NCCL engine in the CUDA plugin (kernels/cuda/comm_nccl.cu, NCCL dlopen'ed
 *     there), bootstrapped by MPI (under an MPI launcher) or by the TCP rendezvous
 *     (executor/rdzv_tcp.c), which only exchanges small start-up records.
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
    /* A CUDA plan: use the GPU engine (NCCL in the CUDA plugin) when world > 1, or with world 1
     * when SCALEWISE_COMM=nccl. The CUDA backend is loaded (backend_cuda_load) and its device
     * selected first, so NCCL binds to the device the executor uses. */
    bool cuda;
};

enum comm_engine { COMM_SINGLE, COMM_MPI, COMM_NCCL };

struct comm {
    enum comm_engine engine;
    const char *engine_name; /* "single", "mpi", "nccl" */
    int rank, world, local_rank, local_world, node_rank, n_nodes;
    const char *launcher; /* "none", "mpirun", "srun", "torchrun", "scalewise --nproc" */
    /* Where the collectives' buffers live. false (single, mpi): host pointers. true (nccl):
     * device pointers of the CUDA backend (backend.h alloc), used in place on the plugin's
     * stream; each call returns when the result is in the buffer. The NCCL engine also accepts
     * host pointers (cudaPointerGetAttributes tells them apart) and stages them through a
     * device buffer it owns (not counted in the backend's memory statistics): meant for small
     * control messages such as comm_check_consistent's hashes or a status flag, not tensors. */
    bool device_buffers;
    /* collectives; all ranks call them in the same order */
    int (*allreduce_sum)(struct comm *c, float *buf, size_t n, struct sw_err *err);
    int (*reduce_scatter_sum)(struct comm *c, const float *send /* n*world */, float *recv /* n */,
                              size_t n, struct sw_err *err);
    /* Reduce to one rank: on `root`, recv[0..n) = the sum over all ranks of their send[0..n);
     * elsewhere recv is neither read nor written and may be NULL (send is never written). On
     * the root send == recv is the in-place form (MPI_IN_PLACE, NCCL's in-place ncclReduce);
     * otherwise recv must not overlap send. Every rank passes the same n and root. SW_EINVAL
     * (before any communication, so every rank fails alike when the arguments are the same
     * everywhere) when root is not a rank of the world, or on the root when n > 0 and recv is
     * NULL or partly overlaps send. Bytes sent: n·4 on every rank but the root, 0 on the root
     * (exact for chain, ring and binomial-tree reduces). ZeRO-2/3 send each gradient owner its
     * part this way instead of a padded reduce-scatter. */
    int (*reduce_sum)(struct comm *c, const float *send, float *recv, size_t n, int root,
                      struct sw_err *err);
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
   A torchrun-style launch (or flags) with world > 1 and no MPI launcher: on the CPU the bytes
   still move through MPI only. Rank 0 starts Open MPI's ompi-server as a child process (killed
   and reaped at finalize or on any error; PR_SET_PDEATHSIG ends it if rank 0 dies), the TCP
   rendezvous at MASTER_ADDR:MASTER_PORT checks every rank's binary and hands out the server's
   address, every rank sets OMPI_MCA_pmix_server_uri and initialises MPI as a singleton, and
   the plugin grows one communicator a rank at a time (MPI_Comm_accept / MPI_Comm_connect /
   MPI_Intercomm_merge; rank 0's port name goes to each joiner over its rendezvous socket), then
   orders it by RANK. SW_EUNSUPPORTED when ompi-server is not on PATH or the plugin was not
   built with Open MPI 4.x (saying what is missing); SW_EIO when a peer does not arrive within
   the timeout. With o->cuda: the NCCL engine (see struct comm_opts). SCALEWISE_COMM=nccl forces
   it with world 1 (only with o->cuda); another value than "", "auto" or "nccl" is SW_EINVAL.
   `o` may be NULL (detect everything). On success the caller owns `c` and ends it with
   c->finalize(c) (safe to call once). */
int comm_init(struct comm *c, const struct comm_opts *o, struct sw_err *err);

/* comm_init with only the environment (no flags): the helper the training path calls. */
int comm_from_env_or_single(struct comm *c, struct sw_err *err);

/* reduce_sum's argument checks, which every rank can make alike before any communication: the
 * root is a rank; on the root with n > 0, recv is given and either is send (in place) or does
 * not overlap it. SW_EINVAL naming the problem. (Used by staging layers that hand the engine
 * other buffers than the caller's.) */
int comm_reduce_args(const struct comm *c, const float *send, const float *recv, size_t n,
                     int root, struct sw_err *err);

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

#define COMM_RDZV_VERSION 2u
/* The blob holds a bootstrap record (comm_boot_pack): an ncclUniqueId, or ompi-server's URI. */
#define COMM_RDZV_BLOB_BYTES 1024
#define COMM_NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) */

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

/* A second round over the open sockets: rank 0 sends `bytes` (at most COMM_RDZV_MSG_MAX) to
 * rank `to`; another rank receives the next such message from rank 0 into buf (cap bytes; its
 * length into *bytes). SW_EIO when the peer is gone or silent past timeout_s, SW_EINVAL on a
 * wrong rank or an oversized message. */
#define COMM_RDZV_MSG_MAX 4096
int comm_rdzv_send(struct comm_rdzv *r, int to, const void *buf, size_t bytes, double timeout_s,
                   struct sw_err *err);
int comm_rdzv_recv(struct comm_rdzv *r, void *buf, size_t cap, size_t *bytes, double timeout_s,
                   struct sw_err *err);

/* Close the sockets and free the table; `r` may be partly filled or already released. */
void comm_rdzv_release(struct comm_rdzv *r);

/* The bootstrap record rank 0 puts in the rendezvous blob: a magic, the kind, the length and the
 * payload (an ncclUniqueId, ompi-server's URI, or why rank 0 could not start, so every rank
 * reports rank 0's reason instead of timing out). */
enum comm_boot_kind { COMM_BOOT_ERROR = 1, COMM_BOOT_OMPI_URI = 2, COMM_BOOT_NCCL_ID = 3 };
#define COMM_BOOT_PAYLOAD_MAX (COMM_RDZV_BLOB_BYTES - 12)

/* Fill blob (COMM_RDZV_BLOB_BYTES) with one record; a payload longer than
 * COMM_BOOT_PAYLOAD_MAX is truncated (an error text) — callers size ids and URIs below it. */
void comm_boot_pack(unsigned char *blob, enum comm_boot_kind kind, const void *payload,
                    size_t bytes);

/* Read a record of kind `want` into payload (cap bytes; its length into *bytes, which may be
 * NULL). Errors: a COMM_BOOT_ERROR record -> SW_EUNSUPPORTED "rank 0: <its text>"; no record
 * (magic) -> SW_EIO; another kind -> SW_EINVAL (ranks disagree about the engine); a payload
 * larger than cap -> SW_ERANGE. */
int comm_boot_unpack(const unsigned char *blob, enum comm_boot_kind want, void *payload, size_t cap,
                     size_t *bytes, struct sw_err *err);

/* ---------------------------------------------------------------- Open MPI's ompi-server
 * (executor/launch_env.c): rank 0 of a torchrun-style CPU launch runs it as a child so that the
 * MPI singletons can connect to each other. */

struct comm_ompi_server {
    int pid;                         /* 0: not running */
    char dir[64];                    /* its URI and log until it has started */
    char uri[COMM_BOOT_PAYLOAD_MAX]; /* "1586561024.0;tcp://192.0.2.2:47309;..." */
};

/* Start `ompi-server --no-daemonize -r DIR/uri` (found on PATH) in its own process group, with
 * PR_SET_PDEATHSIG so it cannot outlive this process, and wait until it reports its URI.
 * SW_EUNSUPPORTED when it is not on PATH (saying to install openmpi-bin or use mpirun), SW_EIO
 * when it exits or says nothing within timeout_s (its output in the message). On failure
 * nothing is left running. */
int comm_ompi_server_start(struct comm_ompi_server *s, double timeout_s, struct sw_err *err);

/* SIGTERM, up to 2 s to exit, then SIGKILL; reaps it and removes its directory. Safe on a
 * server that never started or was already stopped. */
void comm_ompi_server_stop(struct comm_ompi_server *s);

/* ---------------------------------------------------------------- plugin ABI
 * (executor/comm_mpi.c, built only into libscalewise-mpi.so; kernels/cuda/comm_nccl.cu in
 * libscalewise-cuda.so). The core fills nothing: the plugin fills `ops` and the topology. It
 * must not call libsw functions (the host may not export them), so it writes struct sw_err
 * fields itself. */

/* 3: reduce_sum added to struct comm_engine_ops (a plugin built before it is refused). */
#define COMM_PLUGIN_API_VERSION 3

struct comm_engine_ops {
    int (*allreduce_sum)(void *state, float *buf, size_t n, struct sw_err *err);
    int (*reduce_scatter_sum)(void *state, const float *send, float *recv, size_t n,
                              struct sw_err *err);
    /* As struct comm's reduce_sum; the core has already checked root, a NULL recv on the root
     * and overlaps, so the engine only moves the data. recv is NULL off the root. */
    int (*reduce_sum)(void *state, const float *send, float *recv, size_t n, int root,
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

/* How the processes of a torchrun-style CPU launch join: their RANK and WORLD_SIZE (the MPI
 * ranks end up equal to them) and the core's callbacks over the rendezvous sockets. */
struct comm_mpi_join {
    int rank, world;
    /* rank 0: give rank `to` the port name; called for to = 1, 2, ... world-1 in order, each
     * just before the group accepts that rank. 0, or a negative SW_E* code with err filled. */
    int (*send_port)(void *ctx, int to, const char *port, struct sw_err *err);
    /* ranks > 0: wait for the port name (a NUL-terminated string of at most port_bytes). */
    int (*recv_port)(void *ctx, char *port, size_t port_bytes, struct sw_err *err);
    void *ctx;
};

/* The plugin's second exported symbol, "comm_mpi_plugin_join": with j == NULL only says whether
 * this plugin can join (0; SW_EUNSUPPORTED naming its MPI library when it is not Open MPI 4.x,
 * whose ompi-server the join needs), without initialising MPI. Otherwise MPI_Init as a singleton
 * (OMPI_MCA_pmix_server_uri already set by the caller), then rank 0 opens a port and the
 * communicator grows one rank at a time: every member calls MPI_Comm_accept, the next rank
 * MPI_Comm_connect, all MPI_Intercomm_merge; finally MPI_Comm_split orders it by j->rank. Fills
 * ops as comm_mpi_plugin_init does (the topology from MPI; the core may override it). A peer
 * that never connects blocks: the caller runs this under its watchdog. */
typedef int (*comm_mpi_plugin_join_fn)(int api_version, const struct comm_mpi_join *j,
                                       struct comm_engine_ops *ops, struct sw_err *err);

/* The NCCL engine's entries in the CUDA plugin (kernels/cuda/comm_nccl.cu), found with
 * backend_cuda_symbol() after backend_cuda_load() selected the device:
 *  "scalewise_nccl_unique_id": ncclGetUniqueId into id (COMM_NCCL_ID_BYTES);
 *  "scalewise_nccl_init": ncclCommInitRank on the current device with rank 0's id, then fills
 *    ops (rank, world; the collectives run ncclAllReduce / ncclReduceScatter / ncclReduce /
 *    ncclAllGather / ncclBroadcast on the plugin's stream and synchronize before returning, so
 *    timing and the watchdog mean what they mean for MPI; barrier is a one-float all-reduce;
 *    finalize is ncclCommDestroy). ncclCommInitRank waits for every rank: run it under the
 *    watchdog.
 * libnccl.so.2 is dlopen'ed on first use: without it both return SW_EUNSUPPORTED naming it. */
typedef int (*comm_nccl_unique_id_fn)(int api_version, unsigned char *id, struct sw_err *err);
typedef int (*comm_nccl_init_fn)(int api_version, int rank, int world, const unsigned char *id,
                                 struct comm_engine_ops *ops, struct sw_err *err);

#endif
