/* executor/comm.c — the communication layer's front: comm_init (launcher detection through
 * launch_env.c, then engine selection), the single-process engine (world 1: every collective is a
 * copy), the loader of the MPI plugin (libscalewise-mpi.so, dlopen'ed so the core binary never
 * needs libmpi; ../shared/docs/hardware-and-distributed.md 6), the two bootstraps that are not a
 * plain MPI_Init — a torchrun-style CPU launch (ompi-server started by rank 0, its address
 * handed out by the TCP rendezvous, then the plugin's join) and the NCCL engine of the CUDA
 * plugin (its unique id carried by MPI or by the rendezvous; hardware-and-distributed.md 3.2) —
 * the wrappers that time every collective and count the bytes sent, the start-up consistency
 * check of plan and binary hashes, and the watchdog: a thread that ends the process with a
 * message when a collective does not finish within the timeout (a dead or hung peer must not
 * leave the others waiting forever). The MPI calls themselves are in comm_mpi.c, the NCCL calls
 * in kernels/cuda/comm_nccl.cu; the TCP rendezvous is in rdzv_tcp.c. */
#include "executor/comm.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor/backend.h"

#define COMM_DEFAULT_TIMEOUT_S 60.0
#define COMM_PLUGIN_NAME "libscalewise-mpi.so"

struct comm_impl {
    struct comm_engine_ops ops;
    /* NCCL started under an MPI launcher: the MPI engine that carried the unique id, finalized
     * after NCCL (MPI_Finalize last, as the NCCL examples do). */
    struct comm_engine_ops boot;
    bool has_boot;
    void *dl; /* the MPI plugin's handle; NULL for the single and NCCL-only engines */
    double timeout_s;
    bool finalized;
    struct comm_ompi_server server; /* rank 0 of a torchrun-style CPU launch; pid 0 otherwise */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- watchdog
 * One per process (there is one communicator per process). The main thread marks a collective as
 * in flight with its deadline; the watchdog thread wakes every 100 ms and, past the deadline,
 * prints and calls _exit(1) — exit() could run atexit handlers that wait on the very collective
 * that hangs. */

static struct {
    pthread_mutex_t mu;
    pthread_t thread;
    bool running;
    int rank;
    double timeout_s;
    const char *in_flight; /* name of the collective, NULL when idle */
    double deadline_s;
    bool stop;
} g_wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_wd.mu);
        bool stop = g_wd.stop;
        const char *name = g_wd.in_flight;
        bool late = name && now_s() >= g_wd.deadline_s;
        int rank = g_wd.rank;
        double timeout_s = g_wd.timeout_s;
        pthread_mutex_unlock(&g_wd.mu);
        if (stop)
            return NULL;
        if (late) {
            char msg[256];
            int len = snprintf(msg, sizeof msg,
                               "rank %d: collective %s did not complete in %.0f s (a peer died or "
                               "hung); exiting\n",
                               rank, name, timeout_s);
            if (len > 0) {
                ssize_t w = write(STDERR_FILENO, msg,
                                  (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
                (void)w;
            }
            _exit(1);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int watchdog_start(int rank, double timeout_s, struct sw_err *err)
{
    pthread_mutex_lock(&g_wd.mu);
    g_wd.rank = rank;
    g_wd.timeout_s = timeout_s;
    g_wd.in_flight = NULL;
    g_wd.stop = false;
    bool running = g_wd.running;
    pthread_mutex_unlock(&g_wd.mu);
    if (running)
        return 0;
    int rc = pthread_create(&g_wd.thread, NULL, watchdog_main, NULL);
    if (rc != 0)
        return sw_errf(err, SW_EINTERNAL, "cannot start the communication watchdog: %s",
                       strerror(rc));
    g_wd.running = true;
    return 0;
}

static void watchdog_stop(void)
{
    if (!g_wd.running)
        return;
    pthread_mutex_lock(&g_wd.mu);
    g_wd.stop = true;
    pthread_mutex_unlock(&g_wd.mu);
    pthread_join(g_wd.thread, NULL);
    g_wd.running = false;
}

static void watchdog_enter(const char *name, double timeout_s)
{
    pthread_mutex_lock(&g_wd.mu);
    g_wd.in_flight = name;
    g_wd.timeout_s = timeout_s;
    g_wd.deadline_s = now_s() + timeout_s;
    pthread_mutex_unlock(&g_wd.mu);
}

static void watchdog_leave(void)
{
    pthread_mutex_lock(&g_wd.mu);
    g_wd.in_flight = NULL;
    pthread_mutex_unlock(&g_wd.mu);
}

/* ---------------------------------------------------------------- single engine (world 1) */

static int single_allreduce(void *st, float *buf, size_t n, struct sw_err *err)
{
    (void)st, (void)buf, (void)n, (void)err;
    return 0;
}

static int single_reduce_scatter(void *st, const float *send, float *recv, size_t n,
                                 struct sw_err *err)
{
    (void)st, (void)err;
    if (n && send != recv)
        memmove(recv, send, n * sizeof *recv);
    return 0;
}

/* World 1: the sum over one rank is its own buffer (root 0, checked by the wrapper). */
static int single_reduce(void *st, const float *send, float *recv, size_t n, int root,
                         struct sw_err *err)
{
    (void)st, (void)root, (void)err;
    if (n && send != recv)
        memmove(recv, send, n * sizeof *recv);
    return 0;
}

static int single_allgather(void *st, const float *send, float *recv, size_t n, struct sw_err *err)
{
    (void)st, (void)err;
    if (n && send != recv)
        memmove(recv, send, n * sizeof *recv);
    return 0;
}

static int single_broadcast(void *st, void *buf, size_t bytes, int root, struct sw_err *err)
{
    (void)st, (void)buf, (void)bytes;
    if (root != 0)
        return sw_errf(err, SW_EINVAL, "broadcast root %d is not a rank of a world of 1", root);
    return 0;
}

static int single_allgather_bytes(void *st, const void *send, void *recv, size_t bytes,
                                  struct sw_err *err)
{
    (void)st, (void)err;
    if (bytes && send != recv)
        memmove(recv, send, bytes);
    return 0;
}

static int single_barrier(void *st, struct sw_err *err)
{
    (void)st, (void)err;
    return 0;
}

static void single_finalize(void *st)
{
    (void)st;
}

static const struct comm_engine_ops single_ops = {
    .allreduce_sum = single_allreduce,
    .reduce_scatter_sum = single_reduce_scatter,
    .reduce_sum = single_reduce,
    .allgather = single_allgather,
    .broadcast = single_broadcast,
    .allgather_bytes = single_allgather_bytes,
    .barrier = single_barrier,
    .finalize = single_finalize,
    .world = 1,
    .local_world = 1,
    .n_nodes = 1,
};

/* ---------------------------------------------------------------- timed wrappers
 * Bytes sent per rank follow the ring algorithms (NCCL's "bus bandwidth" convention): an
 * all-reduce of B bytes sends 2 (W-1)/W B, a reduce-scatter or all-gather of W shards of S bytes
 * sends (W-1) S, a broadcast sends B (pipelined chain), a reduce of B bytes sends B from every
 * rank but the root and nothing from the root (chain, ring and binomial tree alike: each non-root
 * passes one partial sum of B bytes on). World 1 sends nothing. */

static struct comm_impl *impl_of(struct comm *c)
{
    return (struct comm_impl *)c->impl;
}

static void account(struct comm *c, double t0, double sent_bytes)
{
    c->comm_s += now_s() - t0;
    if (c->world > 1 && sent_bytes > 0)
        c->comm_bytes += (uint64_t)(sent_bytes + 0.5);
}

static int guard(struct comm *c, struct sw_err *err, const char *what)
{
    if (!c || !c->impl)
        return sw_errf(err, SW_EINVAL, "%s on a communicator that is not initialised", what);
    if (impl_of(c)->finalized)
        return sw_errf(err, SW_EINVAL, "%s after the communicator was finalized", what);
    return 0;
}

static void enter(struct comm *c, const char *name)
{
    if (c->world > 1)
        watchdog_enter(name, impl_of(c)->timeout_s);
}

static void leave(struct comm *c)
{
    if (c->world > 1)
        watchdog_leave();
}

static int w_allreduce(struct comm *c, float *buf, size_t n, struct sw_err *err)
{
    int rc = guard(c, err, "allreduce");
    if (rc < 0)
        return rc;
    double t0 = now_s();
    enter(c, "allreduce");
    rc = impl_of(c)->ops.allreduce_sum(impl_of(c)->ops.state, buf, n, err);
    leave(c);
    account(c, t0, 2.0 * (c->world - 1) / c->world * (double)n * sizeof(float));
    return rc;
}

static int w_reduce_scatter(struct comm *c, const float *send, float *recv, size_t n,
                            struct sw_err *err)
{
    int rc = guard(c, err, "reduce_scatter");
    if (rc < 0)
        return rc;
    double t0 = now_s();
    enter(c, "reduce_scatter");
    rc = impl_of(c)->ops.reduce_scatter_sum(impl_of(c)->ops.state, send, recv, n, err);
    leave(c);
    account(c, t0, (double)(c->world - 1) * (double)n * sizeof(float));
    return rc;
}

int comm_reduce_args(const struct comm *c, const float *send, const float *recv, size_t n,
                       int root, struct sw_err *err)
{
    if (root < 0 || root >= c->world)
        return sw_errf(err, SW_EINVAL, "reduce root %d is not a rank of a world of %d", root,
                       c->world);
    if (c->rank != root || n == 0 || send == recv)
        return 0;
    if (!recv)
        return sw_errf(err, SW_EINVAL,
                       "reduce of %zu floats: the root (rank %d) passed no receive buffer", n,
                       root);
    /* Addresses compared as integers: device pointers are never dereferenced here. */
    uintptr_t s0 = (uintptr_t)send, r0 = (uintptr_t)recv, bytes = n * sizeof(float);
    if (s0 < r0 + bytes && r0 < s0 + bytes)
        return sw_errf(err, SW_EINVAL,
                       "reduce of %zu floats: send and receive buffers overlap (pass the same "
                       "pointer for an in-place reduce)",
                       n);
    return 0;
}

static int w_reduce(struct comm *c, const float *send, float *recv, size_t n, int root,
                    struct sw_err *err)
{
    int rc = guard(c, err, "reduce");
    if (rc < 0)
        return rc;
    if ((rc = comm_reduce_args(c, send, recv, n, root, err)) < 0)
        return rc;
    double t0 = now_s();
    enter(c, "reduce");
    float *root_recv = c->rank == root ? recv : NULL; /* engines see no recv off the root */
    rc = impl_of(c)->ops.reduce_sum(impl_of(c)->ops.state, send, root_recv, n, root, err);
    leave(c);
    account(c, t0, c->rank == root ? 0.0 : (double)n * sizeof(float));
    return rc;
}

static int w_allgather(struct comm *c, const float *send, float *recv, size_t n, struct sw_err *err)
{
    int rc = guard(c, err, "allgather");
    if (rc < 0)
        return rc;
    double t0 = now_s();
    enter(c, "allgather");
    rc = impl_of(c)->ops.allgather(impl_of(c)->ops.state, send, recv, n, err);
    leave(c);
    account(c, t0, (double)(c->world - 1) * (double)n * sizeof(float));
    return rc;
}

static int w_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct sw_err *err)
{
    int rc = guard(c, err, "broadcast");
    if (rc < 0)
        return rc;
    if (root < 0 || root >= c->world)
        return sw_errf(err, SW_EINVAL, "broadcast root %d is not a rank of a world of %d", root,
                       c->world);
    double t0 = now_s();
    enter(c, "broadcast");
    rc = impl_of(c)->ops.broadcast(impl_of(c)->ops.state, buf, bytes, root, err);
    leave(c);
    account(c, t0, (double)bytes);
    return rc;
}

static int w_allgather_bytes(struct comm *c, const void *send, void *recv, size_t bytes,
                             struct sw_err *err)
{
    int rc = guard(c, err, "allgather_bytes");
    if (rc < 0)
        return rc;
    double t0 = now_s();
    enter(c, "allgather_bytes");
    rc = impl_of(c)->ops.allgather_bytes(impl_of(c)->ops.state, send, recv, bytes, err);
    leave(c);
    account(c, t0, (double)(c->world - 1) * (double)bytes);
    return rc;
}

static int w_barrier(struct comm *c, struct sw_err *err)
{
    int rc = guard(c, err, "barrier");
    if (rc < 0)
        return rc;
    double t0 = now_s();
    enter(c, "barrier");
    rc = impl_of(c)->ops.barrier(impl_of(c)->ops.state, err);
    leave(c);
    account(c, t0, 0);
    return rc;
}

/* Ends the engine (MPI_Finalize, itself under the watchdog), stops the watchdog thread, closes
 * the plugin and frees the impl. Safe to call twice. */
static void w_finalize(struct comm *c)
{
    if (!c || !c->impl)
        return;
    struct comm_impl *im = impl_of(c);
    if (!im->finalized) {
        enter(c, "finalize");
        im->ops.finalize(im->ops.state);
        if (im->has_boot)
            im->boot.finalize(im->boot.state);
        leave(c);
        im->finalized = true;
    }
    /* after MPI_Finalize: the singletons' disconnect may still talk to it */
    comm_ompi_server_stop(&im->server);
    watchdog_stop();
    /* The MPI plugin stays loaded: libmpi registers atexit handlers and threads that must not
     * see their code unmapped. */
    free(im);
    c->impl = NULL;
}

/* ---------------------------------------------------------------- plugin loading */

/* Try the search path: $SCALEWISE_MPI_PLUGIN, the executable's directory, build/ under it, its
 * parent (build/tests/x, build/asan/scalewise), then the compile-time path. */
static void *load_plugin(char *tried, size_t tried_n, char *dlmsg, size_t dlmsg_n)
{
    char dir[PATH_MAX];
    sw_exe_dir(dir, sizeof dir);
    char cand[5][PATH_MAX + 64];
    int nc = 0;
    const char *env = getenv("SCALEWISE_MPI_PLUGIN");
    if (env && *env)
        snprintf(cand[nc++], sizeof cand[0], "%s", env);
    if (dir[0]) {
        snprintf(cand[nc++], sizeof cand[0], "%s/" COMM_PLUGIN_NAME, dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/build/" COMM_PLUGIN_NAME, dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/../" COMM_PLUGIN_NAME, dir);
    }
#ifdef SW_MPI_PLUGIN_PATH
    snprintf(cand[nc++], sizeof cand[0], "%s", SW_MPI_PLUGIN_PATH);
#endif
    tried[0] = '\0';
    dlmsg[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < nc; i++) {
        if (access(cand[i], R_OK) != 0) {
            if (used < tried_n) {
                int w = snprintf(tried + used, tried_n - used, "%s%s", used ? ", " : "", cand[i]);
                if (w > 0)
                    used += (size_t)w;
            }
            continue;
        }
        /* RTLD_GLOBAL: Open MPI dlopens its own components, which need libmpi's symbols
         * (mpi4py does the same; verified here, hardware-and-distributed.md 4). */
        void *h = dlopen(cand[i], RTLD_NOW | RTLD_GLOBAL);
        if (h)
            return h;
        const char *e = dlerror();
        /* dlerror names the file already */
        if (snprintf(dlmsg, dlmsg_n, "%s", e ? e : cand[i]) < 0)
            dlmsg[0] = '\0';
    }
    return NULL;
}

/* The plugin into im->dl, or SW_EUNSUPPORTED saying why. */
static int open_mpi_plugin(struct comm_impl *im, const struct comm_launch_env *env,
                           struct sw_err *err)
{
    char tried[1024], dlmsg[512];
    im->dl = load_plugin(tried, sizeof tried, dlmsg, sizeof dlmsg);
    if (im->dl)
        return 0;
    if (dlmsg[0])
        return sw_errf(err, SW_EUNSUPPORTED,
                       "launched by %s with %d ranks, but the MPI plugin failed to load: %s",
                       env->launcher, env->world, dlmsg);
    return sw_errf(err, SW_EUNSUPPORTED,
                   "launched by %s with %d ranks, but the MPI plugin " COMM_PLUGIN_NAME
                   " was not found (tried %s); build scalewise with mpicc installed, or "
                   "set SCALEWISE_MPI_PLUGIN",
                   env->launcher, env->world, tried);
}

static int init_mpi(struct comm *c, struct comm_impl *im, const struct comm_launch_env *env,
                    struct sw_err *err)
{
    int rc = open_mpi_plugin(im, env, err);
    if (rc < 0)
        return rc;
    comm_mpi_plugin_init_fn init;
    void *sym = dlsym(im->dl, "comm_mpi_plugin_init");
    memcpy(&init, &sym, sizeof init); /* object pointer to function pointer, POSIX-style */
    if (!init)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "the MPI plugin has no symbol comm_mpi_plugin_init (a different build?)");
    /* MPI_Init itself waits for every rank: run it under the watchdog. */
    watchdog_enter("MPI_Init", im->timeout_s);
    rc = init(COMM_PLUGIN_API_VERSION, &im->ops, err);
    watchdog_leave();
    if (rc < 0)
        return rc;
    if (im->ops.world != env->world || im->ops.rank != env->rank) {
        struct comm_engine_ops ops = im->ops;
        memset(&im->ops, 0, sizeof im->ops);
        ops.finalize(ops.state);
        return sw_errf(err, SW_EUNSUPPORTED,
                       "%s says rank %d of %d but MPI_Init gave rank %d of %d: this MPI library "
                       "cannot reach the launcher (under srun, Open MPI needs PMIx: try "
                       "srun --mpi=pmix, or mpirun)",
                       env->launcher, env->rank, env->world, ops.rank, ops.world);
    }
    c->engine = COMM_MPI;
    c->engine_name = "mpi";
    return 0;
}

/* ---------------------------------------------------------------- torchrun-style CPU launch
 * No MPI launcher started us, but on the CPU the bytes still move through MPI: the processes
 * start as Open MPI singletons and join one communicator through ompi-server (run by rank 0).
 * Steps: every rank checks that its plugin can join (Open MPI 4.x); rank 0 starts ompi-server;
 * the TCP rendezvous checks binaries and hands out the server's URI (or rank 0's reason for not
 * starting it); every rank points OMPI_MCA_pmix_server_uri at it; the plugin joins, rank 0
 * giving each joiner the MPI port name over its rendezvous socket, one joiner at a time. */

struct join_ctx {
    struct comm_rdzv *r;
    double timeout_s;
};

static int join_send(void *ctx, int to, const char *port, struct sw_err *err)
{
    struct join_ctx *j = ctx;
    return comm_rdzv_send(j->r, to, port, strlen(port) + 1, j->timeout_s, err);
}

static int join_recv(void *ctx, char *port, size_t port_bytes, struct sw_err *err)
{
    struct join_ctx *j = ctx;
    size_t got = 0;
    int rc = comm_rdzv_recv(j->r, port, port_bytes, &got, j->timeout_s, err);
    if (rc < 0)
        return rc;
    if (got == 0 || port[got - 1] != '\0')
        return sw_errf(err, SW_EIO, "rendezvous: garbled MPI port name from rank 0");
    return 0;
}

static void topology_from_rdzv(struct comm_engine_ops *ops, const struct comm_rdzv *r)
{
    ops->local_rank = r->local_rank;
    ops->local_world = r->local_world;
    ops->node_rank = r->node_rank;
    ops->n_nodes = r->n_nodes;
}

/* Torchrun-style bootstrap: rank 0's payload of `kind` (or, when root_rc < 0, its error
 * root_err) reaches every rank through the TCP rendezvous. On success r is open (the caller
 * releases it) and out[0..*n) holds the payload. Rank 0's own failure is reported as the root
 * cause even when the peers did not come either. The plan hash is 0: the plan is compared
 * later, through the engine (comm_check_consistent). */
static int rdzv_share(struct comm_impl *im, const struct comm_launch_env *env, int root_rc,
                      const struct sw_err *root_err, enum comm_boot_kind kind, const void *payload,
                      size_t len, struct comm_rdzv *r, void *out, size_t out_cap, size_t *n,
                      struct sw_err *err)
{
    unsigned char blob[COMM_RDZV_BLOB_BYTES];
    memset(blob, 0, sizeof blob);
    if (env->rank == 0) {
        if (root_rc < 0)
            comm_boot_pack(blob, COMM_BOOT_ERROR, root_err->msg, strlen(root_err->msg));
        else
            comm_boot_pack(blob, kind, payload, len);
    }
    int rc = comm_rdzv_run(r, env->master_addr, env->master_port, env->rank, env->world, 0, blob,
                           im->timeout_s, err);
    if (root_rc < 0) {
        comm_rdzv_release(r);
        *err = *root_err;
        return root_rc;
    }
    if (rc < 0)
        return rc;
    rc = comm_boot_unpack(r->blob, kind, out, out_cap, n, err);
    if (rc < 0)
        comm_rdzv_release(r);
    return rc;
}

static int init_mpi_join(struct comm *c, struct comm_impl *im, const struct comm_launch_env *env,
                         struct sw_err *err)
{
    int rc = open_mpi_plugin(im, env, err);
    if (rc < 0)
        return rc;
    comm_mpi_plugin_join_fn join;
    void *sym = dlsym(im->dl, "comm_mpi_plugin_join");
    memcpy(&join, &sym, sizeof join);
    if (!join)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "the MPI plugin has no symbol comm_mpi_plugin_join (built before "
                       "torchrun-style CPU launches were supported?): rebuild with make");
    /* Every rank has the same plugin: each says the same thing, at once. */
    if ((rc = join(COMM_PLUGIN_API_VERSION, NULL, NULL, err)) < 0)
        return rc;

    struct sw_err serr;
    sw_err_init(&serr);
    int server_rc = env->rank == 0 ? comm_ompi_server_start(&im->server, im->timeout_s, &serr) : 0;
    struct comm_rdzv r;
    char uri[COMM_BOOT_PAYLOAD_MAX + 1];
    size_t n = 0;
    rc = rdzv_share(im, env, server_rc, &serr, COMM_BOOT_OMPI_URI, im->server.uri,
                    env->rank == 0 && server_rc == 0 ? strlen(im->server.uri) : 0, &r, uri,
                    sizeof uri - 1, &n, err);
    if (rc < 0)
        return rc;
    uri[n] = '\0';
    /* Read by MPI_Init (Open MPI 4.1's PMIx client): where the singletons meet. A singleton's
     * MPI_Init also starts a helper daemon whose default launcher component (rsh) fails where
     * there is no ssh, as in many containers; singletons launch nothing, so the isolated one
     * fits (unless the user chose one). */
    setenv("OMPI_MCA_pmix_server_uri", uri, 1);
    setenv("OMPI_MCA_plm", "isolated", 0);
    /* No mpirun watches these processes: when a peer dies, a write to its socket must fail
     * (MPI returns an error, or the watchdog fires, with a message) rather than end this
     * process silently with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    struct join_ctx ctx = {&r, im->timeout_s};
    struct comm_mpi_join j = {env->rank, env->world, join_send, join_recv, &ctx};
    /* world-1 accepts in a row: the watchdog gives the whole join twice the timeout, so a
     * rendezvous socket that times out first reports its own, clearer error */
    watchdog_enter("MPI join", 2.0 * im->timeout_s);
    rc = join(COMM_PLUGIN_API_VERSION, &j, &im->ops, err);
    watchdog_leave();
    if (rc == 0 && (im->ops.world != env->world || im->ops.rank != env->rank)) {
        struct comm_engine_ops ops = im->ops;
        memset(&im->ops, 0, sizeof im->ops);
        ops.finalize(ops.state);
        rc = sw_errf(err, SW_EINTERNAL, "MPI join gave rank %d of %d, expected %d of %d", ops.rank,
                     ops.world, env->rank, env->world);
    }
    /* Processes of different singleton jobs may not see each other as node-local in MPI: the
     * host-name table of the rendezvous says which share a node. */
    if (rc == 0)
        topology_from_rdzv(&im->ops, &r);
    comm_rdzv_release(&r);
    if (rc < 0)
        return rc;
    c->engine = COMM_MPI;
    c->engine_name = "mpi";
    return 0;
}

/* ---------------------------------------------------------------- NCCL engine (CUDA plugin) */

static int nccl_entries(comm_nccl_unique_id_fn *uid, comm_nccl_init_fn *init, struct sw_err *err)
{
    struct sw_err cerr;
    sw_err_init(&cerr);
    /* Loads the plugin and selects this rank's GPU: NCCL binds to the current device. */
    if (!backend_cuda_load(&cerr))
        return sw_errf(err, SW_EUNSUPPORTED, "the GPU engine (NCCL) needs the CUDA backend: %s",
                       cerr.msg);
    void *a = backend_cuda_symbol("scalewise_nccl_unique_id");
    void *b = backend_cuda_symbol("scalewise_nccl_init");
    if (!a || !b)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "the CUDA plugin has no NCCL engine (scalewise_nccl_init; built before "
                       "it existed?): rebuild with make");
    memcpy(uid, &a, sizeof *uid);
    memcpy(init, &b, sizeof *init);
    return 0;
}

/* Under an MPI launcher: every rank says whether it could load NCCL (rank 0 also makes the id),
 * so a rank without a GPU stops everyone with a message instead of leaving them waiting in
 * ncclCommInitRank; then the id goes out by MPI_Bcast (NCCL's own example, nccl-tests). */
static int nccl_id_by_mpi(struct comm_impl *im, int local_rc, unsigned char *id, struct sw_err *err)
{
    struct comm_engine_ops *b = &im->boot;
    int32_t mine = local_rc;
    int32_t *all = sw_xcalloc((size_t)b->world, sizeof *all);
    struct sw_err xerr;
    sw_err_init(&xerr);
    watchdog_enter("allgather_bytes", im->timeout_s);
    int rc = b->allgather_bytes(b->state, &mine, all, sizeof mine, &xerr);
    watchdog_leave();
    int bad = -1;
    for (int i = 0; rc == 0 && i < b->world && bad < 0; i++)
        if (all[i] != 0)
            bad = i;
    free(all);
    if (rc < 0) {
        *err = xerr;
        return rc;
    }
    if (local_rc < 0)
        return local_rc; /* err holds this rank's reason */
    if (bad >= 0)
        return sw_errf(err, SW_EUNSUPPORTED,
                       "rank %d could not start the GPU engine (NCCL); see its message", bad);
    watchdog_enter("broadcast", im->timeout_s);
    rc = b->broadcast(b->state, id, COMM_NCCL_ID_BYTES, 0, err);
    watchdog_leave();
    return rc;
}

static int init_nccl(struct comm *c, struct comm_impl *im, const struct comm_launch_env *env,
                     struct sw_err *err)
{
    comm_nccl_unique_id_fn uid = NULL;
    comm_nccl_init_fn ninit = NULL;
    unsigned char id[COMM_NCCL_ID_BYTES];
    memset(id, 0, sizeof id);
    struct comm_engine_ops topo = {.local_world = 1, .n_nodes = 1};
    int rc;
    if (env->world == 1) {
        rc = nccl_entries(&uid, &ninit, err);
        if (rc == 0)
            rc = uid(COMM_PLUGIN_API_VERSION, id, err);
    } else if (env->under_mpi) {
        if ((rc = init_mpi(c, im, env, err)) < 0)
            return rc;
        im->boot = im->ops;
        im->has_boot = true;
        memset(&im->ops, 0, sizeof im->ops);
        topo = im->boot;
        rc = nccl_entries(&uid, &ninit, err);
        if (rc == 0 && env->rank == 0)
            rc = uid(COMM_PLUGIN_API_VERSION, id, err);
        rc = nccl_id_by_mpi(im, rc, id, err);
    } else {
        /* torchrun-style: the rendezvous carries rank 0's id. A rank that cannot start NCCL
         * stops here; rank 0 then names it as missing when the rendezvous times out. */
        if ((rc = nccl_entries(&uid, &ninit, err)) < 0)
            return rc;
        struct sw_err ierr;
        sw_err_init(&ierr);
        int id_rc = env->rank == 0 ? uid(COMM_PLUGIN_API_VERSION, id, &ierr) : 0;
        struct comm_rdzv r;
        size_t n = 0;
        rc = rdzv_share(im, env, id_rc, &ierr, COMM_BOOT_NCCL_ID, id, sizeof id, &r, id, sizeof id,
                        &n, err);
        if (rc < 0)
            return rc;
        if (n != sizeof id)
            rc = sw_errf(err, SW_EIO, "rendezvous: a %zu-byte NCCL id, expected %zu", n, sizeof id);
        topology_from_rdzv(&topo, &r);
        comm_rdzv_release(&r);
    }
    if (rc < 0)
        return rc;
    /* ncclCommInitRank waits for every rank */
    if (env->world > 1)
        watchdog_enter("NCCL init", im->timeout_s);
    rc = ninit(COMM_PLUGIN_API_VERSION, env->rank, env->world, id, &im->ops, err);
    if (env->world > 1)
        watchdog_leave();
    if (rc < 0) {
        memset(&im->ops, 0, sizeof im->ops);
        return rc;
    }
    im->ops.local_rank = topo.local_rank;
    im->ops.local_world = topo.local_world;
    im->ops.node_rank = topo.node_rank;
    im->ops.n_nodes = topo.n_nodes;
    c->engine = COMM_NCCL;
    c->engine_name = "nccl";
    c->device_buffers = true;
    return 0;
}

/* Ends whatever an engine start left running: its engines, ompi-server, the watchdog. */
static void impl_abandon(struct comm_impl *im)
{
    if (im->ops.finalize && im->ops.state)
        im->ops.finalize(im->ops.state);
    if (im->has_boot)
        im->boot.finalize(im->boot.state);
    comm_ompi_server_stop(&im->server);
    watchdog_stop();
    free(im);
}

/* SCALEWISE_COMM: "" or "auto" (the launcher decides: NCCL for a CUDA plan of several
 * processes), "nccl" (the GPU engine even for one process, to check NCCL on a one-GPU machine)
 * or "mpi" (a CUDA plan's collectives over MPI, through the host staging buffer: where NCCL
 * cannot run, and to test the GPU executor's data parallelism without one). *force: 1 nccl,
 * -1 mpi, 0 auto. */
static int forced_engine(bool cuda, int *force, struct sw_err *err)
{
    *force = 0;
    const char *v = getenv("SCALEWISE_COMM");
    if (!v || !*v || strcmp(v, "auto") == 0)
        return 0;
    bool nccl = strcmp(v, "nccl") == 0;
    if (!nccl && strcmp(v, "mpi") != 0)
        return sw_errf(err, SW_EINVAL, "SCALEWISE_COMM='%s': expected auto, nccl or mpi", v);
    if (nccl && !cuda)
        return sw_errf(err, SW_EINVAL,
                       "SCALEWISE_COMM=nccl needs a CUDA plan (strategy.device: cuda); NCCL "
                       "moves device buffers only");
    *force = nccl ? 1 : -1;
    return 0;
}

/* ---------------------------------------------------------------- public */

void comm_opts_init(struct comm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->rank = -1;
    o->world = -1;
    o->local_rank = -1;
}

double comm_timeout_s(const struct comm_opts *o)
{
    if (o && o->timeout_s > 0)
        return o->timeout_s;
    const char *s = getenv("SCALEWISE_COMM_TIMEOUT");
    if (s && *s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno == 0 && *end == '\0' && v > 0 && v < 1e7)
            return v;
    }
    return COMM_DEFAULT_TIMEOUT_S;
}

static const char *launcher_word(const struct comm_launch_env *env)
{
    if (strcmp(env->launcher, "mpich") == 0)
        return "mpirun";
    if (strcmp(env->launcher, "flags") == 0)
        return "none";
    return env->launcher;
}

int comm_init(struct comm *c, const struct comm_opts *o, struct sw_err *err)
{
    memset(c, 0, sizeof *c);
    struct comm_opts none;
    if (!o) {
        comm_opts_init(&none);
        o = &none;
    }
    struct comm_launch_env env;
    int rc = comm_launch_env_detect(o, &env, err);
    if (rc < 0)
        return rc;
    int force;
    if ((rc = forced_engine(o->cuda, &force, err)) < 0)
        return rc;
    bool nccl = o->cuda && force >= 0 && (env.world > 1 || force > 0);

    struct comm_impl *im = sw_xcalloc(1, sizeof *im);
    im->timeout_s = comm_timeout_s(o);
    c->impl = im;
    c->launcher = launcher_word(&env);
    c->allreduce_sum = w_allreduce;
    c->reduce_scatter_sum = w_reduce_scatter;
    c->reduce_sum = w_reduce;
    c->allgather = w_allgather;
    c->broadcast = w_broadcast;
    c->allgather_bytes = w_allgather_bytes;
    c->barrier = w_barrier;
    c->finalize = w_finalize;

    if (!nccl && env.world <= 1) {
        im->ops = single_ops;
        c->engine = COMM_SINGLE;
        c->engine_name = "single";
    } else {
        rc = env.world > 1 ? watchdog_start(env.rank, im->timeout_s, err) : 0;
        if (rc == 0) {
            if (nccl)
                rc = init_nccl(c, im, &env, err);
            else if (env.under_mpi)
                rc = init_mpi(c, im, &env, err);
            else
                rc = init_mpi_join(c, im, &env, err);
        }
        if (rc < 0) {
            impl_abandon(im);
            memset(c, 0, sizeof *c);
            return rc;
        }
    }
    c->rank = im->ops.rank;
    c->world = im->ops.world;
    c->local_rank = im->ops.local_rank;
    c->local_world = im->ops.local_world;
    c->node_rank = im->ops.node_rank;
    c->n_nodes = im->ops.n_nodes;
    return 0;
}

int comm_from_env_or_single(struct comm *c, struct sw_err *err)
{
    return comm_init(c, NULL, err);
}

/* FNV-1a 64 (Fowler, Noll, Vo) over a buffer, continuing from `h`. */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t comm_binary_hash(void)
{
    static _Atomic uint64_t cached;
    uint64_t h = atomic_load(&cached);
    if (h)
        return h;
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f)
        return 0;
    h = 1469598103934665603ull;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        h = fnv1a(h, buf, got);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad)
        return 0;
    if (h == 0)
        h = 1;
    atomic_store(&cached, h);
    return h;
}

struct consistency_rec {
    uint64_t binary_hash;
    uint64_t plan_hash;
};

/* Appends "r1, r2, ..." of the ranks whose field differs from rank 0's. */
static int list_ranks(const struct consistency_rec *all, int world, bool plan, char *out, size_t n)
{
    int count = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int r = 1; r < world; r++) {
        bool differs =
            plan ? all[r].plan_hash != all[0].plan_hash : all[r].binary_hash != all[0].binary_hash;
        if (!differs)
            continue;
        count++;
        if (used < n) {
            int w = snprintf(out + used, n - used, "%s%d", used ? ", " : "", r);
            if (w > 0)
                used += (size_t)w;
        }
    }
    return count;
}

int comm_check_consistent(struct comm *c, uint64_t plan_hash, struct sw_err *err)
{
    if (!c || !c->impl)
        return sw_errf(err, SW_EINVAL, "consistency check on an uninitialised communicator");
    struct consistency_rec mine = {comm_binary_hash(), plan_hash};
    struct consistency_rec *all = sw_xcalloc((size_t)c->world, sizeof *all);
    int rc = c->allgather_bytes(c, &mine, all, sizeof mine, err);
    if (rc == 0) {
        char plan_ranks[256], bin_ranks[256];
        int np = list_ranks(all, c->world, true, plan_ranks, sizeof plan_ranks);
        int nb = list_ranks(all, c->world, false, bin_ranks, sizeof bin_ranks);
        if (np > 0)
            rc = sw_errf(err, SW_EINVAL,
                         "plan mismatch between ranks: rank%s %s loaded a different plan than "
                         "rank 0 (hash %016llx); every rank must run the same plan",
                         np > 1 ? "s" : "", plan_ranks, (unsigned long long)all[0].plan_hash);
        else if (nb > 0)
            rc = sw_errf(err, SW_EINVAL,
                         "binary mismatch between ranks: rank%s %s run%s a different scalewise "
                         "binary than rank 0; install the same build on every node",
                         nb > 1 ? "s" : "", bin_ranks, nb > 1 ? "" : "s");
    }
    free(all);
    return rc;
}
