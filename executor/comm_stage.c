/* Collectives between buffers that live in a backend's memory and a communication engine that
 * may not reach that memory. An engine on device memory (NCCL) takes host and device pointers
 * alike (it stages host buffers itself, kernels/cuda/comm_nccl.cu), and an engine on host memory
 * (single, MPI) takes the CPU backend's buffers: both are called directly. The one pairing left
 * — a host engine with a backend whose memory the host cannot reach (a GPU over MPI, the device
 * simulator over MPI) — goes through a host staging buffer of EXEC_STAGE_BYTES, chunk by chunk,
 * so the bytes still move only through the engine (comm.h: nothing here is a transport). The
 * staging buffer is allocated once per struct exec_comm_stage, never per call. Host buffers
 * (control values) go to the engine's own entries. */
#include "executor/executor.h"

#include <stdlib.h>
#include <string.h>

#include "executor/comm.h"

void exec_comm_stage_init(struct exec_comm_stage *s, struct comm *c, const struct backend *be)
{
    memset(s, 0, sizeof(*s));
    s->comm = c;
    s->be = be;
    s->direct = c->device_buffers || be->host_memory;
}

void exec_comm_stage_release(struct exec_comm_stage *s)
{
    free(s->host);
    memset(s, 0, sizeof(*s));
}

/* The host staging buffer, allocated on first need. */
static int need_stage(struct exec_comm_stage *s, void **stage, struct sw_err *err)
{
    if (!s->host && !(s->host = sw_try_malloc(EXEC_STAGE_BYTES, "communication staging", err)))
        return SW_ENOMEM;
    *stage = s->host;
    return 0;
}

/* Chunked copies between the backend's buffer and the host staging buffer. */
static void to_engine(struct exec_comm_stage *s, void *stage, const void *src, size_t bytes)
{
    s->be->memcpy(stage, src, bytes, BACKEND_D2H);
}

static void from_engine(struct exec_comm_stage *s, void *dst, const void *stage, size_t bytes)
{
    s->be->memcpy(dst, stage, bytes, BACKEND_H2D);
}

int exec_stage_allreduce(struct exec_comm_stage *s, float *buf, size_t n, struct sw_err *err)
{
    struct comm *c = s->comm;
    if (s->direct)
        return c->allreduce_sum(c, buf, n, err);
    void *st;
    int rc = need_stage(s, &st, err);
    size_t per = EXEC_STAGE_BYTES / sizeof(float);
    for (size_t a = 0; a < n && rc == 0; a += per) {
        size_t k = n - a < per ? n - a : per;
        to_engine(s, st, buf + a, k * sizeof(float));
        if ((rc = c->allreduce_sum(c, st, k, err)) == 0)
            from_engine(s, buf + a, st, k * sizeof(float));
    }
    return rc;
}

int exec_stage_reduce_scatter(struct exec_comm_stage *s, const float *send, float *recv,
                              size_t n, struct sw_err *err)
{
    struct comm *c = s->comm;
    if (s->direct)
        return c->reduce_scatter_sum(c, send, recv, n, err);
    void *st;
    int rc = need_stage(s, &st, err);
    size_t W = (size_t)c->world;
    /* Each round: k elements of every rank's slot, then k results. */
    size_t per = EXEC_STAGE_BYTES / sizeof(float) / (W + 1);
    SW_ASSERT(per > 0);
    float *sst = st, *rst = (float *)st + W * per;
    for (size_t a = 0; a < n && rc == 0; a += per) {
        size_t k = n - a < per ? n - a : per;
        for (size_t q = 0; q < W; q++)
            to_engine(s, sst + q * k, send + q * n + a, k * sizeof(float));
        if ((rc = c->reduce_scatter_sum(c, sst, rst, k, err)) == 0)
            from_engine(s, recv + a, rst, k * sizeof(float));
    }
    return rc;
}

/* Staged: each chunk of send goes into the staging buffer and is reduced there in place (the
 * engine's in-place form on the root; off the root the engine only reads it), and the root
 * copies the chunk's sum out to recv. The engine would only see the staging buffer, so the
 * checks it makes on the caller's pointers (root, a NULL recv on the root, overlap) are made
 * here first. */
int exec_stage_reduce(struct exec_comm_stage *s, const float *send, float *recv, size_t n, int root,
                      struct sw_err *err)
{
    struct comm *c = s->comm;
    if (s->direct)
        return c->reduce_sum(c, send, recv, n, root, err);
    int rc = comm_reduce_args(c, send, recv, n, root, err);
    if (rc < 0)
        return rc;
    bool is_root = c->rank == root;
    void *st;
    rc = need_stage(s, &st, err);
    size_t per = EXEC_STAGE_BYTES / sizeof(float);
    for (size_t a = 0; a < n && rc == 0; a += per) {
        size_t k = n - a < per ? n - a : per;
        to_engine(s, st, send + a, k * sizeof(float));
        if ((rc = c->reduce_sum(c, st, st, k, root, err)) == 0 && is_root)
            from_engine(s, recv + a, st, k * sizeof(float));
    }
    return rc;
}

int exec_stage_allgather(struct exec_comm_stage *s, const float *send, float *recv, size_t n,
                         struct sw_err *err)
{
    struct comm *c = s->comm;
    if (s->direct)
        return c->allgather(c, send, recv, n, err);
    void *st;
    int rc = need_stage(s, &st, err);
    size_t W = (size_t)c->world;
    size_t per = EXEC_STAGE_BYTES / sizeof(float) / (W + 1);
    SW_ASSERT(per > 0);
    float *sst = st, *rst = (float *)st + per;
    for (size_t a = 0; a < n && rc == 0; a += per) {
        size_t k = n - a < per ? n - a : per;
        to_engine(s, sst, send + a, k * sizeof(float));
        if ((rc = c->allgather(c, sst, rst, k, err)) < 0)
            break;
        for (size_t q = 0; q < W; q++)
            from_engine(s, recv + q * n + a, rst + q * k, k * sizeof(float));
    }
    return rc;
}

int exec_stage_broadcast(struct exec_comm_stage *s, void *buf, size_t bytes, int root,
                         struct sw_err *err)
{
    struct comm *c = s->comm;
    if (s->direct)
        return c->broadcast(c, buf, bytes, root, err);
    void *st;
    int rc = need_stage(s, &st, err);
    for (size_t a = 0; a < bytes && rc == 0; a += EXEC_STAGE_BYTES) {
        size_t k = bytes - a < EXEC_STAGE_BYTES ? bytes - a : EXEC_STAGE_BYTES;
        if (c->rank == root)
            to_engine(s, st, (char *)buf + a, k);
        if ((rc = c->broadcast(c, st, k, root, err)) == 0 && c->rank != root)
            from_engine(s, (char *)buf + a, st, k);
    }
    return rc;
}
