/* executor/comm_mpi.c — the MPI engine of executor/comm.h, compiled ONLY into the plugin
 * build/libscalewise-mpi.so by mpicc (-shared -fPIC), so the core binary never needs libmpi; the
 * core dlopens it (comm.c) and calls one of its two exported symbols: comm_mpi_plugin_init
 * (under an MPI launcher) checks the API version, initialises MPI and fills a struct
 * comm_engine_ops; comm_mpi_plugin_join (a torchrun-style launch: separately started Open MPI
 * singletons, ompi-server's address already in OMPI_MCA_pmix_server_uri) builds the
 * communicator one rank at a time with MPI_Comm_accept / MPI_Comm_connect /
 * MPI_Intercomm_merge and orders it by the launcher's rank (MPI-3.1 10.4 "Establishing
 * Communication"). The collective calls follow
 * ../shared/docs/hardware-and-distributed.md 4: all-reduce in place (MPI_IN_PLACE),
 * MPI_Reduce_scatter (equal counts) and MPI_Allgather for ZeRO shards, MPI_Reduce to one rank
 * (MPI_IN_PLACE on the root when send == recv), MPI_Bcast, and
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) for the local rank and size. Open MPI 4.1 has no
 * large-count (_c) calls, so counts are chunked below 2^31; a collective whose total count does
 * not fit in an int goes through per-root MPI_Reduce / MPI_Bcast in chunks instead.
 * SCALEWISE_MPI_CHUNK_ELEMS lowers the chunk so tests reach those paths with small buffers.
 * Timing, byte counts and the watchdog are the core's (comm.c). This file cannot call libsw
 * functions (the host need not export them), so it fills struct sw_err itself. */
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/comm.h"

#define EXPORT __attribute__((visibility("default")))

struct mpi_state {
    MPI_Comm comm; /* a duplicate of MPI_COMM_WORLD: our traffic never meets others' */
    int rank, size;
    size_t chunk;        /* largest count per MPI call (elements or bytes) */
    bool we_initialised; /* MPI_Finalize only if MPI_Init was ours */
};

static int fail(struct sw_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct sw_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    memset(err, 0, sizeof *err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* An MPI return code into err (errors return, they do not abort: MPI_ERRORS_RETURN). */
static int check(int mrc, const char *what, struct sw_err *err)
{
    if (mrc == MPI_SUCCESS)
        return 0;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "error %d", mrc);
    return fail(err, SW_EIO, "%s failed: %s", what, s);
}

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static bool overlaps(const void *a, size_t an, const void *b, size_t bn)
{
    const char *pa = a, *pb = b;
    return pa < pb + bn && pb < pa + an;
}

/* ---------------------------------------------------------------- collectives */

static int mpi_allreduce(void *state, float *buf, size_t n, struct sw_err *err)
{
    struct mpi_state *s = state;
    for (size_t off = 0; off < n; off += s->chunk) {
        int k = (int)min_sz(s->chunk, n - off);
        int rc = check(MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, s->comm),
                       "MPI_Allreduce", err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Each rank r's shard is the sum over ranks of send[r*n .. r*n+n). */
static int mpi_reduce_scatter(void *state, const float *send, float *recv, size_t n,
                              struct sw_err *err)
{
    struct mpi_state *s = state;
    size_t W = (size_t)s->size;
    if (n == 0)
        return 0;
    float *out = recv;
    float *tmp = NULL;
    if (overlaps(send, n * W * sizeof *send, recv, n * sizeof *recv)) {
        tmp = malloc(n * sizeof *tmp);
        if (!tmp)
            return fail(err, SW_ENOMEM, "reduce_scatter: %zu bytes for a bounce buffer",
                        n * sizeof *tmp);
        out = tmp;
    }
    int rc = 0;
    if (n * W <= s->chunk) {
        /* MPI_Reduce_scatter with equal counts rather than MPI_Reduce_scatter_block: Open MPI
         * 4.1's tuned component runs the _block form as a reduce of the whole buffer to rank 0
         * plus a scatter, and this one as recursive halving or a ring (measured on GPT-2 124M,
         * 2 ranks: about 0.5 s against 1.3 s per step). */
        int *counts = malloc(W * sizeof *counts);
        if (!counts) {
            free(tmp);
            return fail(err, SW_ENOMEM, "reduce_scatter: %zu counts", W);
        }
        for (size_t r = 0; r < W; r++)
            counts[r] = (int)n;
        rc = check(MPI_Reduce_scatter(send, out, counts, MPI_FLOAT, MPI_SUM, s->comm),
                   "MPI_Reduce_scatter", err);
        free(counts);
    } else {
        /* Too large for one int count: each shard reduced to its owner, in chunks. */
        for (size_t r = 0; r < W && rc == 0; r++)
            for (size_t off = 0; off < n && rc == 0; off += s->chunk) {
                int k = (int)min_sz(s->chunk, n - off);
                rc = check(MPI_Reduce(send + r * n + off, out + off, k, MPI_FLOAT, MPI_SUM, (int)r,
                                      s->comm),
                           "MPI_Reduce", err);
            }
    }
    if (rc == 0 && tmp)
        memcpy(recv, tmp, n * sizeof *recv);
    free(tmp);
    return rc;
}

/* On the root recv = the sum of every rank's send (in place when send == recv); recv is NULL on
 * the other ranks (comm.c passes no receive buffer there), where MPI ignores it. */
static int mpi_reduce(void *state, const float *send, float *recv, size_t n, int root,
                      struct sw_err *err)
{
    struct mpi_state *s = state;
    bool is_root = s->rank == root;
    bool in_place = is_root && send == recv;
    for (size_t off = 0; off < n; off += s->chunk) {
        int k = (int)min_sz(s->chunk, n - off);
        /* MPI_IN_PLACE only on the root (erroneous elsewhere); no offset from a NULL recv */
        const void *sb = in_place ? MPI_IN_PLACE : (const void *)(send + off);
        void *rb = is_root ? (void *)(recv + off) : NULL;
        int rc = check(MPI_Reduce(sb, rb, k, MPI_FLOAT, MPI_SUM, root, s->comm), "MPI_Reduce", err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int gather_bytes(struct mpi_state *s, const void *send, void *recv, size_t bytes,
                        struct sw_err *err)
{
    size_t W = (size_t)s->size;
    char *out = recv;
    if (bytes == 0)
        return 0;
    /* In place when our shard already sits in its slot (ZeRO gathers parameters that way). */
    bool in_place = send == out + (size_t)s->rank * bytes;
    if (!in_place && overlaps(send, bytes, recv, bytes * W))
        return fail(err, SW_EINVAL, "allgather: send overlaps recv other than in this rank's slot");
    if (bytes * W <= s->chunk)
        return check(MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)bytes, MPI_BYTE, out,
                                   (int)bytes, MPI_BYTE, s->comm),
                     "MPI_Allgather", err);
    if (!in_place)
        memcpy(out + (size_t)s->rank * bytes, send, bytes);
    for (size_t r = 0; r < W; r++)
        for (size_t off = 0; off < bytes; off += s->chunk) {
            int k = (int)min_sz(s->chunk, bytes - off);
            int rc = check(MPI_Bcast(out + r * bytes + off, k, MPI_BYTE, (int)r, s->comm),
                           "MPI_Bcast", err);
            if (rc < 0)
                return rc;
        }
    return 0;
}

/* fp32 shards move as bytes: a gather does no arithmetic, and MPI_BYTE keeps one code path. The
 * chunk limit is in elements for floats, so scale it for the byte count. */
static int mpi_allgather(void *state, const float *send, float *recv, size_t n, struct sw_err *err)
{
    struct mpi_state *s = state;
    struct mpi_state bytes_view = *s;
    bytes_view.chunk =
        s->chunk * sizeof(float) > (size_t)INT_MAX ? (size_t)INT_MAX : s->chunk * sizeof(float);
    return gather_bytes(&bytes_view, send, recv, n * sizeof(float), err);
}

static int mpi_allgather_bytes(void *state, const void *send, void *recv, size_t bytes,
                               struct sw_err *err)
{
    return gather_bytes(state, send, recv, bytes, err);
}

static int mpi_broadcast(void *state, void *buf, size_t bytes, int root, struct sw_err *err)
{
    struct mpi_state *s = state;
    for (size_t off = 0; off < bytes; off += s->chunk) {
        int k = (int)min_sz(s->chunk, bytes - off);
        int rc = check(MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, s->comm), "MPI_Bcast", err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int mpi_barrier(void *state, struct sw_err *err)
{
    struct mpi_state *s = state;
    return check(MPI_Barrier(s->comm), "MPI_Barrier", err);
}

static void mpi_finalize(void *state)
{
    struct mpi_state *s = state;
    if (!s)
        return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        if (s->comm != MPI_COMM_NULL)
            MPI_Comm_free(&s->comm);
        if (s->we_initialised)
            MPI_Finalize();
    }
    free(s);
}

/* ---------------------------------------------------------------- init */

/* Local rank/size from the shared-memory split; node rank and count from the local leaders. */
static int topology(struct mpi_state *s, struct comm_engine_ops *ops, struct sw_err *err)
{
    MPI_Comm local, leaders = MPI_COMM_NULL;
    int rc =
        check(MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, s->rank, MPI_INFO_NULL, &local),
              "MPI_Comm_split_type", err);
    if (rc < 0)
        return rc;
    MPI_Comm_rank(local, &ops->local_rank);
    MPI_Comm_size(local, &ops->local_world);
    rc = check(MPI_Comm_split(s->comm, ops->local_rank == 0 ? 0 : MPI_UNDEFINED, s->rank, &leaders),
               "MPI_Comm_split", err);
    int node[2] = {0, 1};
    if (rc == 0 && leaders != MPI_COMM_NULL) {
        MPI_Comm_rank(leaders, &node[0]);
        MPI_Comm_size(leaders, &node[1]);
        MPI_Comm_free(&leaders);
    }
    if (rc == 0)
        rc = check(MPI_Bcast(node, 2, MPI_INT, 0, local), "MPI_Bcast", err);
    MPI_Comm_free(&local);
    ops->node_rank = node[0];
    ops->n_nodes = node[1];
    return rc;
}

/* MPI_Init (unless already initialised) and a state with errors returned, not fatal. */
static int mpi_start(struct mpi_state **out, struct sw_err *err)
{
    *out = NULL;
    struct mpi_state *s = calloc(1, sizeof *s);
    if (!s)
        return fail(err, SW_ENOMEM, "MPI plugin: out of memory");
    s->comm = MPI_COMM_NULL;
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        /* FUNNELED: only the main thread calls MPI; the watchdog and OpenMP threads do not. */
        int provided = 0;
        int rc = check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided),
                       "MPI_Init_thread", err);
        if (rc < 0) {
            free(s);
            return rc;
        }
        s->we_initialised = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    s->chunk = (size_t)1 << 30; /* below INT_MAX, and a round number of floats */
    const char *env = getenv("SCALEWISE_MPI_CHUNK_ELEMS");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (*end == '\0' && v >= 1 && v <= INT_MAX)
            s->chunk = (size_t)v;
    }
    *out = s;
    return 0;
}

/* s->comm is ours: rank, size, topology and the table. Finalizes s on failure. */
static int mpi_fill(struct mpi_state *s, struct comm_engine_ops *ops, struct sw_err *err)
{
    MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(s->comm, &s->rank);
    MPI_Comm_size(s->comm, &s->size);
    ops->rank = s->rank;
    ops->world = s->size;
    int rc = topology(s, ops, err);
    if (rc < 0) {
        mpi_finalize(s);
        return rc;
    }
    ops->allreduce_sum = mpi_allreduce;
    ops->reduce_scatter_sum = mpi_reduce_scatter;
    ops->reduce_sum = mpi_reduce;
    ops->allgather = mpi_allgather;
    ops->broadcast = mpi_broadcast;
    ops->allgather_bytes = mpi_allgather_bytes;
    ops->barrier = mpi_barrier;
    ops->finalize = mpi_finalize;
    ops->state = s;
    return 0;
}

EXPORT int comm_mpi_plugin_init(int api_version, struct comm_engine_ops *ops, struct sw_err *err);

EXPORT int comm_mpi_plugin_init(int api_version, struct comm_engine_ops *ops, struct sw_err *err)
{
    if (api_version != COMM_PLUGIN_API_VERSION)
        return fail(err, SW_EUNSUPPORTED,
                    "the MPI plugin speaks API %d but scalewise expects %d: rebuild both together",
                    COMM_PLUGIN_API_VERSION, api_version);
    memset(ops, 0, sizeof *ops);
    struct mpi_state *s;
    int rc = mpi_start(&s, err);
    if (rc < 0)
        return rc;
    rc = check(MPI_Comm_dup(MPI_COMM_WORLD, &s->comm), "MPI_Comm_dup", err);
    if (rc < 0) {
        mpi_finalize(s);
        return rc;
    }
    return mpi_fill(s, ops, err);
}

/* ---------------------------------------------------------------- join (torchrun-style) */

/* Separately started singletons reach each other through ompi-server, which Open MPI 5 removed
 * (its replacement is a PRRTE DVM) and MPICH never had. */
#if defined(OPEN_MPI) && OMPI_MAJOR_VERSION == 4
#define SW_MPI_CAN_JOIN 1
#endif

#ifndef SW_MPI_CAN_JOIN
/* The first line of MPI_Get_library_version ("MPICH Version: 4.0", "Open MPI v5.0.3"). */
static void library_name(char *out, size_t n)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) != MPI_SUCCESS)
        snprintf(v, sizeof v, "an unknown MPI library");
    size_t k = strcspn(v, ",\n");
    if (k > n - 1)
        k = n - 1;
    memcpy(out, v, k);
    out[k] = '\0';
}
#else
/* One more member: the group accepts (collectively) or this rank connects; then the merge puts
 * the newcomer last. Frees the old group and the intercommunicator. */
static int grow(MPI_Comm *group, const char *port, bool joining, struct sw_err *err)
{
    MPI_Comm inter = MPI_COMM_NULL, merged = MPI_COMM_NULL;
    int rc = joining ? check(MPI_Comm_connect(port, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter),
                             "MPI_Comm_connect", err)
                     : check(MPI_Comm_accept(port, MPI_INFO_NULL, 0, *group, &inter),
                             "MPI_Comm_accept", err);
    if (rc < 0)
        return rc;
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    rc = check(MPI_Intercomm_merge(inter, joining ? 1 : 0, &merged), "MPI_Intercomm_merge", err);
    MPI_Comm_free(&inter);
    if (rc < 0)
        return rc;
    MPI_Comm_set_errhandler(merged, MPI_ERRORS_RETURN);
    if (*group != MPI_COMM_NULL)
        MPI_Comm_free(group);
    *group = merged;
    return 0;
}
#endif

EXPORT int comm_mpi_plugin_join(int api_version, const struct comm_mpi_join *j,
                                struct comm_engine_ops *ops, struct sw_err *err);

EXPORT int comm_mpi_plugin_join(int api_version, const struct comm_mpi_join *j,
                                struct comm_engine_ops *ops, struct sw_err *err)
{
    if (api_version != COMM_PLUGIN_API_VERSION)
        return fail(err, SW_EUNSUPPORTED,
                    "the MPI plugin speaks API %d but scalewise expects %d: rebuild both together",
                    COMM_PLUGIN_API_VERSION, api_version);
#ifndef SW_MPI_CAN_JOIN
    char lib[128];
    library_name(lib, sizeof lib);
    (void)j, (void)ops;
    return fail(err, SW_EUNSUPPORTED,
                "a torchrun-style launch on the CPU needs an MPI plugin built with Open MPI 4.x "
                "(its ompi-server joins the separately started processes), but this one was built "
                "with %s: launch with mpirun -np N, srun, or scalewise run --nproc N",
                lib);
#else
    if (!j)
        return 0;
    if (j->world < 2 || j->rank < 0 || j->rank >= j->world)
        return fail(err, SW_EINVAL, "MPI join: rank %d is not in a world of %d", j->rank, j->world);
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised)
        return fail(err, SW_EINTERNAL, "MPI join: MPI is already initialised in this process");
    memset(ops, 0, sizeof *ops);
    struct mpi_state *s;
    int rc = mpi_start(&s, err);
    if (rc < 0)
        return rc;
    char port[MPI_MAX_PORT_NAME];
    memset(port, 0, sizeof port);
    MPI_Comm group = MPI_COMM_NULL;
    int next;
    if (j->rank == 0) {
        rc = check(MPI_Open_port(MPI_INFO_NULL, port), "MPI_Open_port", err);
        if (rc == 0)
            rc = check(MPI_Comm_dup(MPI_COMM_SELF, &group), "MPI_Comm_dup", err);
        next = 1;
    } else {
        rc = j->recv_port(j->ctx, port, sizeof port - 1, err);
        if (rc == 0)
            rc = grow(&group, port, true, err);
        next = j->rank + 1;
    }
    /* Ranks join in order, one at a time: rank 0 hands out the port only when the group is
     * about to accept that rank, so no two connects race and the merged order is the rank
     * order already (the split below makes it certain). */
    for (; rc == 0 && next < j->world; next++) {
        if (j->rank == 0)
            rc = j->send_port(j->ctx, next, port, err);
        if (rc == 0)
            rc = grow(&group, port, false, err);
    }
    if (j->rank == 0 && port[0])
        MPI_Close_port(port);
    int size = 0;
    if (rc == 0) {
        MPI_Comm_size(group, &size);
        if (size != j->world)
            rc = fail(err, SW_EINTERNAL, "MPI join: the communicator has %d ranks, expected %d",
                      size, j->world);
    }
    if (rc == 0)
        rc = check(MPI_Comm_split(group, 0, j->rank, &s->comm), "MPI_Comm_split", err);
    if (group != MPI_COMM_NULL)
        MPI_Comm_free(&group);
    if (rc < 0) {
        mpi_finalize(s);
        return rc;
    }
    return mpi_fill(s, ops, err);
#endif
}
