/* The NCCL engine of the communication layer (executor/comm.h), inside the CUDA plugin: two
 * exported entries, scalewise_nccl_unique_id (ncclGetUniqueId, on rank 0) and
 * scalewise_nccl_init (ncclCommInitRank on the device the backend selected, then a struct
 * comm_engine_ops whose collectives are ncclAllReduce, ncclReduceScatter, ncclReduce,
 * ncclAllGather and ncclBroadcast on the plugin's stream, cuda_stream()). Each collective waits
 * for its stream before returning, polling ncclCommGetAsyncError meanwhile, so the core's timing
 * and watchdog (executor/comm.c) mean the same as for MPI, and a NCCL failure is an error, not a
 * hang.
 * Buffers are device pointers used in place; a host pointer (a small control message such as
 * the start-up hash check) is staged through a device buffer this file owns.
 * NCCL is dlopen'ed ("libnccl.so.2", or $SCALEWISE_NCCL_LIBRARY) on first use, so the plugin
 * loads, and the CPU paths run, where NCCL is not installed; the few NCCL types are declared
 * here (checked against nccl.h when it is present). How the unique id reaches the other ranks
 * (MPI_Bcast, or the TCP rendezvous) is the core's business (executor/comm.c). Like the rest of
 * the plugin this file cannot call libsw functions: errors fill struct sw_err directly. */
#include "kernels/cuda/cuda_int.cuh"

#include <dlfcn.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/comm.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

/* ---------------------------------------------------------------- NCCL types (nccl.h 2.x) */

typedef int nccl_result;               /* ncclResult_t */
typedef struct nccl_comm *nccl_comm_t; /* ncclComm_t: opaque */
struct nccl_unique_id {
    char internal[COMM_NCCL_ID_BYTES];
};
enum { NCCL_OK = 0, NCCL_IN_PROGRESS = 7 }; /* ncclSuccess, ncclInProgress */
enum { NCCL_UINT8 = 1, NCCL_FLOAT32 = 7 };  /* ncclUint8, ncclFloat32 */
enum { NCCL_SUM = 0 };                      /* ncclSum */

#if __has_include(<nccl.h>)
#include <nccl.h>
static_assert(sizeof(ncclUniqueId) == sizeof(nccl_unique_id), "ncclUniqueId size");
static_assert((int)ncclSuccess == (int)NCCL_OK && (int)ncclInProgress == (int)NCCL_IN_PROGRESS,
              "ncclResult_t");
static_assert((int)ncclUint8 == (int)NCCL_UINT8 && (int)ncclFloat32 == (int)NCCL_FLOAT32,
              "ncclDataType_t");
static_assert((int)ncclSum == (int)NCCL_SUM, "ncclRedOp_t");
static_assert(sizeof(ncclResult_t) == sizeof(nccl_result), "enum size");
#endif

struct nccl_api {
    void *dl;
    nccl_result (*get_unique_id)(nccl_unique_id *id);
    nccl_result (*comm_init_rank)(nccl_comm_t *comm, int nranks, nccl_unique_id id, int rank);
    nccl_result (*comm_destroy)(nccl_comm_t comm);
    nccl_result (*comm_abort)(nccl_comm_t comm);
    nccl_result (*get_async_error)(nccl_comm_t comm, nccl_result *async_error);
    const char *(*error_string)(nccl_result r);
    const char *(*last_error)(nccl_comm_t comm); /* NCCL >= 2.13; may be NULL */
    nccl_result (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op,
                              nccl_comm_t comm, cudaStream_t stream);
    nccl_result (*reduce_scatter)(const void *send, void *recv, size_t recv_count, int dtype,
                                  int op, nccl_comm_t comm, cudaStream_t stream);
    nccl_result (*reduce)(const void *send, void *recv, size_t count, int dtype, int op, int root,
                          nccl_comm_t comm, cudaStream_t stream);
    nccl_result (*all_gather)(const void *send, void *recv, size_t send_count, int dtype,
                              nccl_comm_t comm, cudaStream_t stream);
    nccl_result (*broadcast)(const void *send, void *recv, size_t count, int dtype, int root,
                             nccl_comm_t comm, cudaStream_t stream);
};

static nccl_api g_nccl;

static int check_api(int api_version, struct sw_err *err)
{
    if (api_version != COMM_PLUGIN_API_VERSION)
        return cuda_set_err(err, SW_EUNSUPPORTED,
                    "the CUDA plugin's NCCL engine speaks API %d but scalewise expects %d: "
                    "rebuild both with make",
                    COMM_PLUGIN_API_VERSION, api_version);
    return 0;
}

/* dlsym into a function pointer of the member's type. */
template <typename F> static bool sym(void *dl, const char *name, F *out)
{
    void *p = dlsym(dl, name);
    memcpy(out, &p, sizeof(*out));
    return p != NULL;
}

/* Loads NCCL once; SW_EUNSUPPORTED naming the library when it is missing or too old. */
static int nccl_load(struct sw_err *err)
{
    if (g_nccl.dl)
        return 0;
    const char *env = getenv("SCALEWISE_NCCL_LIBRARY");
    const char *lib = env && *env ? env : "libnccl.so.2";
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return cuda_set_err(err, SW_EUNSUPPORTED,
                    "the GPU engine needs NCCL, but it does not load: %s; install NCCL "
                    "(libnccl2) or set SCALEWISE_NCCL_LIBRARY",
                    e ? e : lib);
    }
    nccl_api a;
    memset(&a, 0, sizeof(a));
    a.dl = dl;
    bool ok =
        sym(dl, "ncclGetUniqueId", &a.get_unique_id) &&
        sym(dl, "ncclCommInitRank", &a.comm_init_rank) &&
        sym(dl, "ncclCommDestroy", &a.comm_destroy) && sym(dl, "ncclCommAbort", &a.comm_abort) &&
        sym(dl, "ncclCommGetAsyncError", &a.get_async_error) &&
        sym(dl, "ncclGetErrorString", &a.error_string) && sym(dl, "ncclAllReduce", &a.all_reduce) &&
        sym(dl, "ncclReduceScatter", &a.reduce_scatter) && sym(dl, "ncclReduce", &a.reduce) &&
        sym(dl, "ncclAllGather", &a.all_gather) && sym(dl, "ncclBroadcast", &a.broadcast);
    if (!ok) {
        dlclose(dl);
        return cuda_set_err(err, SW_EUNSUPPORTED,
                    "%s lacks an entry the GPU engine needs (NCCL older than 2.4?)", lib);
    }
    sym(dl, "ncclGetLastError", &a.last_error);
    g_nccl = a;
    return 0;
}

/* "ncclAllReduce failed: unhandled system error (NCCL's last message)" into err. */
static int nccl_fail(struct sw_err *err, const char *what, nccl_result r, nccl_comm_t comm)
{
    const char *s = g_nccl.error_string ? g_nccl.error_string(r) : NULL;
    const char *last = g_nccl.last_error && comm ? g_nccl.last_error(comm) : NULL;
    return cuda_set_err(err, SW_EIO, "%s failed: %s (NCCL %d)%s%s", what, s ? s : "unknown error", r,
                last && *last ? ": " : "", last && *last ? last : "");
}

/* ---------------------------------------------------------------- state */

struct nccl_state {
    nccl_comm_t comm; /* NULL once aborted */
    int rank, world;
    float *one;  /* a device float for the barrier */
    char *stage; /* device staging for host buffers */
    size_t stage_bytes;
};

static bool on_device(const void *p)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError(); /* an unknown pointer is a host pointer; clear the error */
        return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static int stage_reserve(nccl_state *s, size_t bytes, struct sw_err *err)
{
    if (bytes <= s->stage_bytes)
        return 0;
    if (s->stage)
        cudaFree(s->stage);
    s->stage = NULL;
    s->stage_bytes = 0;
    cudaError_t e = cudaMalloc((void **)&s->stage, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_set_err(err, SW_ENOMEM,
                    "cannot allocate %zu bytes of device memory to stage a host buffer for NCCL "
                    "(%s)",
                    bytes, cudaGetErrorString(e));
    }
    s->stage_bytes = bytes;
    return 0;
}

/* Waits for the stream; meanwhile a NCCL error (a peer gone, a network failure) aborts the
 * communicator and becomes an error instead of an endless wait. */
static int wait_done(nccl_state *s, const char *what, struct sw_err *err)
{
    for (;;) {
        cudaError_t q = cudaStreamQuery(cuda_stream());
        if (q == cudaSuccess)
            return 0;
        if (q != cudaErrorNotReady) {
            (void)cudaGetLastError();
            return cuda_set_err(err, SW_EIO, "%s: the CUDA stream failed: %s", what, cudaGetErrorString(q));
        }
        nccl_result ae = NCCL_OK;
        if (s->comm && g_nccl.get_async_error(s->comm, &ae) == NCCL_OK && ae != NCCL_OK &&
            ae != NCCL_IN_PROGRESS) {
            int rc = nccl_fail(err, what, ae, s->comm);
            g_nccl.comm_abort(s->comm);
            s->comm = NULL;
            return rc;
        }
        sched_yield();
    }
}

enum coll { COLL_ALLREDUCE, COLL_REDUCE_SCATTER, COLL_REDUCE, COLL_ALLGATHER, COLL_BROADCAST };

static bool overlaps(const void *a, size_t an, const void *b, size_t bn)
{
    const char *pa = (const char *)a, *pb = (const char *)b;
    return pa < pb + bn && pb < pa + an;
}

/* One collective. send_bytes/recv_bytes are the buffers' sizes; count and elem as NCCL wants
 * them (per-rank shard count for reduce-scatter and all-gather). In-place collectives
 * (all-reduce, broadcast) pass send == recv. A reduce off the root has no receive buffer (recv
 * NULL): nothing is staged or copied back for it, and NCCL gets NULL, which it allows there. */
static int collective(nccl_state *s, coll op, const char *what, const void *send, void *recv,
                      size_t send_bytes, size_t recv_bytes, size_t count, int dtype, int root,
                      struct sw_err *err)
{
    if (!s->comm)
        return cuda_set_err(err, SW_EIO, "%s: the NCCL communicator was aborted after an earlier error",
                    what);
    if (recv_bytes == 0)
        return 0;
    bool no_recv = op == COLL_REDUCE && s->rank != root;
    bool in_place = !no_recv && send == recv;
    bool send_dev = on_device(send);
    bool recv_dev = no_recv || (in_place ? send_dev : on_device(recv));
    if (send_dev && recv_dev && !in_place && !no_recv &&
        overlaps(send, send_bytes, recv, recv_bytes)) {
        /* NCCL's in-place forms: send is this rank's slot of recv (all-gather) or recv is this
         * rank's slot of send (reduce-scatter). */
        bool nccl_in_place =
            (op == COLL_ALLGATHER && send == (const char *)recv + (size_t)s->rank * send_bytes) ||
            (op == COLL_REDUCE_SCATTER &&
             recv == (const char *)send + (size_t)s->rank * recv_bytes);
        if (!nccl_in_place)
            return cuda_set_err(err, SW_EINVAL,
                        "%s: send and receive buffers overlap other than in this rank's slot",
                        what);
    }
    cudaStream_t st = cuda_stream();
    const void *dsend = send;
    void *drecv = no_recv ? NULL : recv;
    if (!send_dev || !recv_dev) {
        size_t need = (send_dev ? 0 : send_bytes) + (recv_dev || in_place ? 0 : recv_bytes);
        int rc = stage_reserve(s, need, err);
        if (rc < 0)
            return rc;
        char *p = s->stage;
        if (!send_dev) {
            if (cudaMemcpyAsync(p, send, send_bytes, cudaMemcpyHostToDevice, st) != cudaSuccess)
                return cuda_set_err(err, SW_EIO, "%s: staging the host buffer failed: %s", what,
                            cudaGetErrorString(cudaGetLastError()));
            dsend = p;
            p += send_bytes;
        }
        if (in_place)
            drecv = (void *)dsend;
        else if (!recv_dev)
            drecv = p;
    }
    nccl_result r;
    switch (op) {
    case COLL_ALLREDUCE:
        r = g_nccl.all_reduce(dsend, drecv, count, dtype, NCCL_SUM, s->comm, st);
        break;
    case COLL_REDUCE_SCATTER:
        r = g_nccl.reduce_scatter(dsend, drecv, count, dtype, NCCL_SUM, s->comm, st);
        break;
    case COLL_REDUCE:
        r = g_nccl.reduce(dsend, drecv, count, dtype, NCCL_SUM, root, s->comm, st);
        break;
    case COLL_ALLGATHER:
        r = g_nccl.all_gather(dsend, drecv, count, dtype, s->comm, st);
        break;
    default:
        r = g_nccl.broadcast(dsend, drecv, count, dtype, root, s->comm, st);
        break;
    }
    if (r != NCCL_OK && r != NCCL_IN_PROGRESS)
        return nccl_fail(err, what, r, s->comm);
    if (!recv_dev &&
        cudaMemcpyAsync(recv, drecv, recv_bytes, cudaMemcpyDeviceToHost, st) != cudaSuccess)
        return cuda_set_err(err, SW_EIO, "%s: copying the result to the host failed: %s", what,
                    cudaGetErrorString(cudaGetLastError()));
    return wait_done(s, what, err);
}

/* ---------------------------------------------------------------- the engine's table */

static int n_allreduce(void *state, float *buf, size_t n, struct sw_err *err)
{
    size_t b = n * sizeof(float);
    return collective((nccl_state *)state, COLL_ALLREDUCE, "ncclAllReduce", buf, buf, b, b, n,
                      NCCL_FLOAT32, 0, err);
}

static int n_reduce_scatter(void *state, const float *send, float *recv, size_t n,
                            struct sw_err *err)
{
    nccl_state *s = (nccl_state *)state;
    return collective(s, COLL_REDUCE_SCATTER, "ncclReduceScatter", send, recv,
                      n * (size_t)s->world * sizeof(float), n * sizeof(float), n, NCCL_FLOAT32, 0,
                      err);
}

/* recv is NULL off the root (comm.c); in place on the root when send == recv. */
static int n_reduce(void *state, const float *send, float *recv, size_t n, int root,
                    struct sw_err *err)
{
    size_t b = n * sizeof(float);
    return collective((nccl_state *)state, COLL_REDUCE, "ncclReduce", send, recv, b, b, n,
                      NCCL_FLOAT32, root, err);
}

static int n_allgather(void *state, const float *send, float *recv, size_t n, struct sw_err *err)
{
    nccl_state *s = (nccl_state *)state;
    return collective(s, COLL_ALLGATHER, "ncclAllGather", send, recv, n * sizeof(float),
                      n * (size_t)s->world * sizeof(float), n, NCCL_FLOAT32, 0, err);
}

static int n_broadcast(void *state, void *buf, size_t bytes, int root, struct sw_err *err)
{
    return collective((nccl_state *)state, COLL_BROADCAST, "ncclBroadcast", buf, buf, bytes, bytes,
                      bytes, NCCL_UINT8, root, err);
}

static int n_allgather_bytes(void *state, const void *send, void *recv, size_t bytes,
                             struct sw_err *err)
{
    nccl_state *s = (nccl_state *)state;
    return collective(s, COLL_ALLGATHER, "ncclAllGather", send, recv, bytes,
                      bytes * (size_t)s->world, bytes, NCCL_UINT8, 0, err);
}

/* NCCL has no barrier: a one-float all-reduce that every rank must join does the same. */
static int n_barrier(void *state, struct sw_err *err)
{
    nccl_state *s = (nccl_state *)state;
    return collective(s, COLL_ALLREDUCE, "barrier (ncclAllReduce)", s->one, s->one, sizeof(float),
                      sizeof(float), 1, NCCL_FLOAT32, 0, err);
}

static void n_finalize(void *state)
{
    nccl_state *s = (nccl_state *)state;
    if (!s)
        return;
    if (s->comm)
        g_nccl.comm_destroy(s->comm);
    if (s->stage)
        cudaFree(s->stage);
    if (s->one)
        cudaFree(s->one);
    free(s);
}

/* ---------------------------------------------------------------- exported entries */

EXPORT int scalewise_nccl_unique_id(int api_version, unsigned char *id, struct sw_err *err)
{
    int rc = check_api(api_version, err);
    if (rc == 0)
        rc = nccl_load(err);
    if (rc < 0)
        return rc;
    nccl_unique_id uid;
    memset(&uid, 0, sizeof(uid));
    nccl_result r = g_nccl.get_unique_id(&uid);
    if (r != NCCL_OK)
        return nccl_fail(err, "ncclGetUniqueId", r, NULL);
    memcpy(id, uid.internal, COMM_NCCL_ID_BYTES);
    return 0;
}

EXPORT int scalewise_nccl_init(int api_version, int rank, int world, const unsigned char *id,
                               struct comm_engine_ops *ops, struct sw_err *err)
{
    int rc = check_api(api_version, err);
    if (rc < 0)
        return rc;
    if (world < 1 || rank < 0 || rank >= world)
        return cuda_set_err(err, SW_EINVAL, "NCCL: rank %d is not in a world of %d", rank, world);
    if (!cuda_stream())
        return cuda_set_err(err, SW_EUNSUPPORTED,
                    "NCCL: the CUDA backend is not initialised (load it first: it selects the "
                    "device NCCL binds to)");
    if ((rc = nccl_load(err)) < 0)
        return rc;
    nccl_state *s = (nccl_state *)calloc(1, sizeof(*s));
    if (!s)
        return cuda_set_err(err, SW_ENOMEM, "NCCL: out of memory");
    s->rank = rank;
    s->world = world;
    cudaError_t e = cudaMalloc((void **)&s->one, sizeof(float));
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        free(s);
        return cuda_set_err(err, SW_ENOMEM, "NCCL: cannot allocate 4 bytes of device memory (%s)",
                    cudaGetErrorString(e));
    }
    cudaMemset(s->one, 0, sizeof(float));
    nccl_unique_id uid;
    memcpy(uid.internal, id, COMM_NCCL_ID_BYTES);
    nccl_result r = g_nccl.comm_init_rank(&s->comm, world, uid, rank);
    if (r != NCCL_OK) {
        char what[64];
        snprintf(what, sizeof(what), "ncclCommInitRank (rank %d of %d)", rank, world);
        rc = nccl_fail(err, what, r, NULL);
        s->comm = NULL;
        n_finalize(s);
        return rc;
    }
    memset(ops, 0, sizeof(*ops));
    ops->allreduce_sum = n_allreduce;
    ops->reduce_scatter_sum = n_reduce_scatter;
    ops->reduce_sum = n_reduce;
    ops->allgather = n_allgather;
    ops->broadcast = n_broadcast;
    ops->allgather_bytes = n_allgather_bytes;
    ops->barrier = n_barrier;
    ops->finalize = n_finalize;
    ops->state = s;
    ops->rank = rank;
    ops->world = world;
    ops->local_world = 1;
    ops->n_nodes = 1;
    return 0;
}
