/* The MPI engine under mpirun (run by tests/cli/mpi.sh; built only when mpicc exists). It
 * reaches the engine exactly as scalewise does: comm_from_env_or_single() detects the Open MPI
 * variables and dlopens build/libscalewise-mpi.so. Modes:
 *   collectives  all-reduce, reduce-scatter and all-gather shards (also in place), reduce to
 *                the first and the last rank (also in place on the root, with and without a
 *                receive buffer elsewhere, and the bytes each rank counts), broadcast, byte
 *                all-gather and barrier against a serial reference computed on every rank
 *                from the same deterministic inputs (exact: the sums are of small integers);
 *   consistent   comm_check_consistent with equal hashes (passes) and with the last rank's plan
 *                hash changed (every rank gets the error naming that rank);
 *   spin         all-reduces in a loop until killed, after writing this rank's pid to
 *                $MPI_TEST_PIDDIR/rank<R>.pid (the script kills one rank and times the others);
 *   stop         rank 1 stops itself (SIGSTOP) after a few all-reduces: a hung peer, which the
 *                others' watchdog must turn into a message and exit 1.
 * Each rank prints "mpi_collectives[rank R]: N passed, N failed" and exits 1 on any failure. */
#include "harness.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "executor/comm.h"

/* Rank r's input element i: small integers, so fp32 sums are exact in any order. */
static float input(int r, size_t i)
{
    return (float)((int)((i * 31 + (size_t)r * 17) % 97) - 48);
}

static void check_collectives(struct comm *c)
{
    struct sw_err err;
    int W = c->world, R = c->rank;
    CHECK(W >= 2);
    CHECK_STR(c->engine_name, "mpi");
    CHECK(c->local_world == W && c->n_nodes == 1 && c->node_rank == 0);
    CHECK(c->local_rank == R);
    const size_t sizes[] = {1, 5, 1000, 12345};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si]; /* shard size; full buffers are n * W */
        size_t N = n * (size_t)W;
        float *buf = malloc(N * sizeof *buf), *ref = malloc(N * sizeof *ref);
        float *shard = malloc(n * sizeof *shard), *gath = malloc(N * sizeof *gath);
        for (size_t i = 0; i < N; i++) {
            buf[i] = input(R, i);
            ref[i] = 0;
            for (int r = 0; r < W; r++)
                ref[i] += input(r, i);
        }
        /* reduce-scatter first (it reads buf), then all-reduce in place */
        CHECK_OK(c->reduce_scatter_sum(c, buf, shard, n, &err), &err);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += shard[i] != ref[(size_t)R * n + i];
        CHECK_MSG(bad == 0, "reduce_scatter n=%zu: %zu wrong", n, bad);

        /* reduce to a root (first and last rank): the sums on the root only; then in place */
        float *out = malloc(N * sizeof *out), *cp = malloc(N * sizeof *cp);
        for (int root = 0; root < W; root += W - 1) {
            for (size_t i = 0; i < N; i++)
                out[i] = -7777.0f;
            uint64_t b0 = c->comm_bytes;
            /* off the root, recv may be NULL (root 0) or a buffer left alone (root W-1) */
            float *rb = R == root || root != 0 ? out : NULL;
            CHECK_OK(c->reduce_sum(c, buf, rb, N, root, &err), &err);
            CHECK_MSG(c->comm_bytes - b0 == (R == root ? 0 : N * sizeof(float)),
                      "reduce n=%zu root %d: %llu bytes counted", N, root,
                      (unsigned long long)(c->comm_bytes - b0));
            bad = 0;
            for (size_t i = 0; i < N; i++)
                bad += out[i] != (R == root ? ref[i] : -7777.0f);
            CHECK_MSG(bad == 0, "reduce n=%zu root %d: %zu wrong", N, root, bad);
            memcpy(cp, buf, N * sizeof *cp);
            CHECK_OK(c->reduce_sum(c, cp, cp, N, root, &err), &err);
            bad = 0;
            for (size_t i = 0; i < N; i++)
                bad += cp[i] != (R == root ? ref[i] : buf[i]);
            CHECK_MSG(bad == 0, "reduce in place n=%zu root %d: %zu wrong", N, root, bad);
        }
        /* a root outside the world: every rank refuses before communicating */
        CHECK_INT(c->reduce_sum(c, buf, out, N, W, &err), SW_EINVAL);
        free(out);
        free(cp);

        /* all-gather of the shards gives the full reduced vector; then in place */
        CHECK_OK(c->allgather(c, shard, gath, n, &err), &err);
        bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += gath[i] != ref[i];
        CHECK_MSG(bad == 0, "allgather n=%zu: %zu wrong", n, bad);
        memset(gath, 0, N * sizeof *gath);
        memcpy(gath + (size_t)R * n, shard, n * sizeof *shard);
        CHECK_OK(c->allgather(c, gath + (size_t)R * n, gath, n, &err), &err);
        bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += gath[i] != ref[i];
        CHECK_MSG(bad == 0, "allgather in place n=%zu: %zu wrong", n, bad);

        CHECK_OK(c->allreduce_sum(c, buf, N, &err), &err);
        bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += buf[i] != ref[i];
        CHECK_MSG(bad == 0, "allreduce n=%zu: %zu wrong", N, bad);
        free(buf);
        free(ref);
        free(shard);
        free(gath);
    }
    /* broadcast from the last rank, bytes */
    char msg[100];
    memset(msg, 0, sizeof msg);
    if (R == W - 1)
        snprintf(msg, sizeof msg, "hello from rank %d", R);
    CHECK_OK(c->broadcast(c, msg, sizeof msg, W - 1, &err), &err);
    char want[100];
    memset(want, 0, sizeof want);
    snprintf(want, sizeof want, "hello from rank %d", W - 1);
    CHECK_STR(msg, want);
    CHECK_INT(c->broadcast(c, msg, sizeof msg, W, &err), SW_EINVAL);

    int pid = (int)getpid(), *pids = calloc((size_t)W, sizeof *pids);
    CHECK_OK(c->allgather_bytes(c, &pid, pids, sizeof pid, &err), &err);
    CHECK_INT(pids[R], pid);
    for (int r = 0; r < W; r++)
        CHECK(pids[r] > 0 && (r == R || pids[r] != pid));
    free(pids);
    CHECK_OK(c->barrier(c, &err), &err);
    CHECK(c->comm_bytes > 0);
    CHECK(c->comm_s > 0);
}

static void check_consistent(struct comm *c)
{
    struct sw_err err;
    CHECK_OK(comm_check_consistent(c, 0xabcdef, &err), &err);
    uint64_t plan = c->rank == c->world - 1 ? 0xabcdee : 0xabcdef;
    int rc = comm_check_consistent(c, plan, &err);
    CHECK_INT(rc, SW_EINVAL);
    char want[32];
    snprintf(want, sizeof want, "rank %d ", c->world - 1);
    CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "plan mismatch"), "%s", err.msg);
}

static void spin(struct comm *c, bool stop_rank1)
{
    struct sw_err err;
    const char *dir = getenv("MPI_TEST_PIDDIR");
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/rank%d.pid", dir, c->rank);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    float x[256] = {0};
    for (long it = 0;; it++) {
        if (stop_rank1 && c->rank == 1 && it == 20)
            raise(SIGSTOP);
        if (c->allreduce_sum(c, x, 256, &err) < 0) {
            fprintf(stderr, "rank %d: %s\n", c->rank, err.msg);
            exit(3);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "collectives";
    struct comm c;
    struct sw_err err;
    if (comm_from_env_or_single(&c, &err) < 0) {
        fprintf(stderr, "mpi_collectives: %s\n", err.msg);
        return 2;
    }
    if (strcmp(mode, "spin") == 0 || strcmp(mode, "stop") == 0)
        spin(&c, strcmp(mode, "stop") == 0);
    if (strcmp(mode, "consistent") == 0)
        check_consistent(&c);
    else
        check_collectives(&c);
    char name[64];
    snprintf(name, sizeof name, "mpi_collectives[rank %d]", c.rank);
    c.finalize(&c);
    return harness_finish(name);
}
