/* executor/rdzv_tcp.c — the TCP rendezvous of a torchrun-style launch (MASTER_ADDR:MASTER_PORT):
 * rank 0 listens, the others connect with retry and exponential backoff until the timeout; each
 * sends one fixed record (protocol version, host-name hash, pid, plan and binary hashes); rank 0
 * checks them and answers everyone with the whole table and a 1024-byte blob (a bootstrap record,
 * comm_boot_pack: the ncclUniqueId of the NCCL engine, or the address of the ompi-server that
 * lets CPU ranks join one MPI job), or with the error every rank then reports. A second round of
 * length-prefixed messages from rank 0 (comm_rdzv_send/recv: the MPI port name, one joiner at a
 * time) and a barrier through rank 0 use the same sockets. This is a bootstrap only: it never
 * carries tensors (on the CPU the bytes move through MPI; on GPUs through NCCL). The design follows
 * llm.c's tcp init and NCCL's bootstrap root (../shared/docs/hardware-and-distributed.md 3.1, 7.2).
 * Every wait is bounded by the deadline, so a missing or dead peer is an error, never a hang.
 * Records go over the wire little-endian with explicit widths, so mixed builds still parse. */
#include "executor/comm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RDZV_MAGIC 0x5a525753u /* "SWRZ" */
#define RDZV_REC_BYTES 48      /* magic, version, rank, pad, host, pid, plan, binary */
#define RDZV_MSG_BYTES 256     /* the error text rank 0 sends on failure */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- wire format */

static void rec_encode(const struct comm_rdzv_record *r, unsigned char *p)
{
    memset(p, 0, RDZV_REC_BYTES);
    sw_put_le32(p, RDZV_MAGIC);
    sw_put_le32(p + 4, r->version);
    sw_put_le32(p + 8, (uint32_t)r->rank);
    sw_put_le64(p + 16, r->host_hash);
    sw_put_le64(p + 24, (uint64_t)r->pid);
    sw_put_le64(p + 32, r->plan_hash);
    sw_put_le64(p + 40, r->binary_hash);
}

/* false when the magic is wrong (not a scalewise peer). */
static bool rec_decode(const unsigned char *p, struct comm_rdzv_record *r)
{
    if (sw_get_le32(p) != RDZV_MAGIC)
        return false;
    r->version = sw_get_le32(p + 4);
    r->rank = (int32_t)sw_get_le32(p + 8);
    r->host_hash = sw_get_le64(p + 16);
    r->pid = (int64_t)sw_get_le64(p + 24);
    r->plan_hash = sw_get_le64(p + 32);
    r->binary_hash = sw_get_le64(p + 40);
    return true;
}

/* ---------------------------------------------------------------- bounded I/O */

/* Wait for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline_s)
{
    for (;;) {
        double left_s = deadline_s - now_s();
        if (left_s <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int ms = left_s > 1e6 ? 1000000000 : (int)(left_s * 1000.0) + 1;
        int rc = poll(&pfd, 1, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc > 0)
            return 1;
    }
}

/* 0 done, -1 peer closed or error, -2 timed out. */
static int send_all(int fd, const void *buf, size_t n, double deadline_s)
{
    const unsigned char *p = buf;
    while (n > 0) {
        int w = wait_fd(fd, POLLOUT, deadline_s);
        if (w == 0)
            return -2;
        if (w < 0)
            return -1;
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t n, double deadline_s)
{
    unsigned char *p = buf;
    while (n > 0) {
        int w = wait_fd(fd, POLLIN, deadline_s);
        if (w == 0)
            return -2;
        if (w < 0)
            return -1;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static uint64_t host_hash(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (const char *p = host; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return h;
}

/* ---------------------------------------------------------------- rank 0 */

static int listen_on(int port, struct sw_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sw_errf(err, SW_EIO, "rendezvous: socket failed: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* All interfaces, as torch's TCPStore does: MASTER_ADDR names this host for the others, and
     * a host name may resolve to an address other than the one peers route to. */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    sa.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return sw_errf(err, SW_EIO, "rendezvous: rank 0 cannot listen on port %d: %s", port,
                       strerror(e));
    }
    return fd;
}

/* Rank 0's answer: status, message, the table, the blob. */
static void send_answer(struct comm_rdzv *r, int code, const char *msg, double deadline_s)
{
    size_t n = 8 + RDZV_MSG_BYTES + (size_t)r->world * RDZV_REC_BYTES + COMM_RDZV_BLOB_BYTES;
    unsigned char *buf = sw_xcalloc(1, n);
    sw_put_le32(buf, (uint32_t)code);
    sw_put_le32(buf + 4, (uint32_t)r->world);
    snprintf((char *)buf + 8, RDZV_MSG_BYTES, "%s", msg ? msg : "");
    unsigned char *p = buf + 8 + RDZV_MSG_BYTES;
    for (int i = 0; i < r->world; i++, p += RDZV_REC_BYTES)
        rec_encode(&r->records[i], p);
    memcpy(p, r->blob, COMM_RDZV_BLOB_BYTES);
    for (int i = 1; i < r->world; i++)
        if (r->fds[i] >= 0)
            send_all(r->fds[i], buf, n, deadline_s); /* a peer gone now fails its own wait */
    free(buf);
}

/* Names the ranks whose `field` differs from rank 0's into out; returns how many. */
static int differing(const struct comm_rdzv *r, bool plan, char *out, size_t n)
{
    int count = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 1; i < r->world; i++) {
        bool d = plan ? r->records[i].plan_hash != r->records[0].plan_hash
                      : r->records[i].binary_hash != r->records[0].binary_hash;
        if (!d)
            continue;
        count++;
        int w = used < n ? snprintf(out + used, n - used, "%s%d", used ? ", " : "", i) : 0;
        if (w > 0)
            used += (size_t)w;
    }
    return count;
}

static int run_root(struct comm_rdzv *r, int port, double timeout_s, double deadline_s,
                    struct sw_err *err)
{
    int rc = listen_on(port, err);
    if (rc < 0)
        return rc;
    r->listen_fd = rc;
    int arrived = 1;
    char msg[RDZV_MSG_BYTES] = "";
    int code = 0;
    while (arrived < r->world && code == 0) {
        int w = wait_fd(r->listen_fd, POLLIN, deadline_s);
        if (w <= 0)
            break;
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        unsigned char buf[RDZV_REC_BYTES];
        struct comm_rdzv_record rec;
        /* A connection that says nothing or is not ours is dropped, not fatal: a port scanner
         * or a stale client must not end the job. */
        if (recv_all(fd, buf, sizeof buf, deadline_s) != 0 || !rec_decode(buf, &rec)) {
            close(fd);
            continue;
        }
        if (rec.version != COMM_RDZV_VERSION) {
            code = SW_EINVAL;
            snprintf(msg, sizeof msg,
                     "rendezvous: rank %d speaks protocol %u, rank 0 speaks %u (mixed builds)",
                     (int)rec.rank, rec.version, COMM_RDZV_VERSION);
        } else if (rec.rank < 1 || rec.rank >= r->world) {
            code = SW_EINVAL;
            snprintf(msg, sizeof msg,
                     "rendezvous: a peer says it is rank %d, outside 1..%d of world size %d "
                     "(different WORLD_SIZE on different ranks?)",
                     (int)rec.rank, r->world - 1, r->world);
        } else if (r->fds[rec.rank] >= 0) {
            code = SW_EINVAL;
            snprintf(msg, sizeof msg, "rendezvous: two processes say they are rank %d",
                     (int)rec.rank);
        } else {
            r->fds[rec.rank] = fd;
            r->records[rec.rank] = rec;
            arrived++;
            continue;
        }
        close(fd);
    }
    if (code == 0 && arrived < r->world) {
        char missing[128] = "";
        size_t used = 0;
        for (int i = 1; i < r->world; i++) {
            if (r->fds[i] >= 0)
                continue;
            int w = used < sizeof missing ? snprintf(missing + used, sizeof missing - used, "%s%d",
                                                     used ? ", " : "", i)
                                          : 0;
            if (w > 0)
                used += (size_t)w;
        }
        code = SW_EIO;
        snprintf(msg, sizeof msg,
                 "rendezvous: only %d of %d ranks arrived within %.0f s (missing: %s)", arrived,
                 r->world, timeout_s, missing);
    }
    if (code == 0) {
        char ranks[128];
        int n;
        if ((n = differing(r, true, ranks, sizeof ranks)) > 0) {
            code = SW_EINVAL;
            snprintf(msg, sizeof msg,
                     "plan mismatch between ranks: rank%s %s loaded a different plan than rank "
                     "0; every rank must run the same plan",
                     n > 1 ? "s" : "", ranks);
        } else if ((n = differing(r, false, ranks, sizeof ranks)) > 0) {
            code = SW_EINVAL;
            snprintf(msg, sizeof msg,
                     "binary mismatch between ranks: rank%s %s run%s a different scalewise "
                     "binary than rank 0",
                     n > 1 ? "s" : "", ranks, n > 1 ? "" : "s");
        }
    }
    /* A short grace beyond the deadline so the peers hear why, rather than timing out. */
    send_answer(r, code, msg, code ? now_s() + 2.0 : deadline_s);
    if (code)
        return sw_errf(err, code, "%s", msg);
    return 0;
}

/* ---------------------------------------------------------------- other ranks */

static int connect_root(const char *addr, int port, double timeout_s, double deadline_s,
                        struct sw_err *err)
{
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    double backoff_s = 0.02;
    int last_errno = 0;
    for (;;) {
        int g = getaddrinfo(addr, port_s, &hints, &res);
        if (g == 0) {
            for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                if (fd < 0)
                    continue;
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                    freeaddrinfo(res);
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    return fd;
                }
                last_errno = errno;
                close(fd);
            }
            freeaddrinfo(res);
            res = NULL;
        } else if (g != EAI_AGAIN) {
            return sw_errf(err, SW_EINVAL, "rendezvous: cannot resolve MASTER_ADDR '%s': %s", addr,
                           gai_strerror(g));
        }
        if (now_s() + backoff_s > deadline_s)
            return sw_errf(err, SW_EIO,
                           "rendezvous: could not reach rank 0 at %s:%d within %.0f s (%s); is "
                           "rank 0 running, and MASTER_ADDR/MASTER_PORT the same everywhere?",
                           addr, port, timeout_s, last_errno ? strerror(last_errno) : "no answer");
        struct timespec ts = {(time_t)backoff_s,
                              (long)((backoff_s - (double)(time_t)backoff_s) * 1e9)};
        nanosleep(&ts, NULL);
        backoff_s = backoff_s * 2 > 1.0 ? 1.0 : backoff_s * 2;
    }
}

static int run_peer(struct comm_rdzv *r, const char *addr, int port, double timeout_s,
                    double deadline_s, struct sw_err *err)
{
    int fd = connect_root(addr, port, timeout_s, deadline_s, err);
    if (fd < 0)
        return fd;
    r->fds[0] = fd;
    unsigned char rec[RDZV_REC_BYTES];
    rec_encode(&r->records[r->rank], rec);
    size_t n = 8 + RDZV_MSG_BYTES + (size_t)r->world * RDZV_REC_BYTES + COMM_RDZV_BLOB_BYTES;
    unsigned char *buf = sw_xcalloc(1, n);
    int rc = send_all(fd, rec, sizeof rec, deadline_s);
    if (rc == 0)
        rc = recv_all(fd, buf, 8, deadline_s);
    int root_world = rc == 0 ? (int)sw_get_le32(buf + 4) : r->world;
    if (root_world != r->world) {
        free(buf);
        return sw_errf(err, SW_EINVAL,
                       "rendezvous: rank 0 has world size %d, this rank (%d) has %d", root_world,
                       r->rank, r->world);
    }
    if (rc == 0)
        rc = recv_all(fd, buf + 8, n - 8, deadline_s);
    if (rc != 0) {
        free(buf);
        return sw_errf(err, SW_EIO,
                       "rendezvous: rank 0 at %s:%d %s within %.0f s (not every rank arrived, or "
                       "rank 0 died)",
                       addr, port, rc == -2 ? "did not answer" : "closed the connection",
                       timeout_s);
    }
    int code = (int32_t)sw_get_le32(buf);
    if (code != 0) {
        char msg[RDZV_MSG_BYTES];
        memcpy(msg, buf + 8, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        free(buf);
        return sw_errf(err, code < 0 ? code : SW_EINTERNAL, "%s (reported by rank 0)", msg);
    }
    const unsigned char *p = buf + 8 + RDZV_MSG_BYTES;
    for (int i = 0; i < r->world; i++, p += RDZV_REC_BYTES)
        if (!rec_decode(p, &r->records[i])) {
            free(buf);
            return sw_errf(err, SW_EIO, "rendezvous: garbled table from rank 0");
        }
    memcpy(r->blob, p, COMM_RDZV_BLOB_BYTES);
    free(buf);
    return 0;
}

/* ---------------------------------------------------------------- public */

/* Local rank and node numbering from the host hashes, in rank order. */
static void derive_topology(struct comm_rdzv *r)
{
    uint64_t me = r->records[r->rank].host_hash;
    r->local_rank = 0;
    r->local_world = 0;
    r->n_nodes = 0;
    r->node_rank = 0;
    for (int i = 0; i < r->world; i++) {
        uint64_t h = r->records[i].host_hash;
        bool first = true;
        for (int j = 0; j < i; j++)
            if (r->records[j].host_hash == h)
                first = false;
        if (first) {
            if (h == me)
                r->node_rank = r->n_nodes;
            r->n_nodes++;
        }
        if (h == me) {
            if (i < r->rank)
                r->local_rank++;
            r->local_world++;
        }
    }
}

int comm_rdzv_run(struct comm_rdzv *r, const char *addr, int port, int rank, int world,
                  uint64_t plan_hash, const void *blob, double timeout_s, struct sw_err *err)
{
    memset(r, 0, sizeof *r);
    r->listen_fd = -1;
    if (world < 1 || rank < 0 || rank >= world)
        return sw_errf(err, SW_EINVAL, "rendezvous: rank %d is not in a world of %d", rank, world);
    if (world > 1 && (port < 1 || port > 65535))
        return sw_errf(err, SW_EINVAL,
                       "rendezvous: MASTER_PORT %d is not a TCP port (set MASTER_PORT to 1-65535)",
                       port);
    if (world > 1 && rank > 0 && (!addr || !*addr))
        return sw_errf(err, SW_EINVAL, "rendezvous: MASTER_ADDR is not set");
    if (timeout_s <= 0)
        timeout_s = comm_timeout_s(NULL);
    r->rank = rank;
    r->world = world;
    r->records = sw_xcalloc((size_t)world, sizeof *r->records);
    r->fds = sw_xcalloc((size_t)world, sizeof *r->fds);
    for (int i = 0; i < world; i++)
        r->fds[i] = -1;
    struct comm_rdzv_record *mine = &r->records[rank];
    mine->version = COMM_RDZV_VERSION;
    mine->rank = rank;
    mine->host_hash = host_hash();
    mine->pid = (int64_t)getpid();
    mine->plan_hash = plan_hash;
    mine->binary_hash = comm_binary_hash();
    if (rank == 0 && blob)
        memcpy(r->blob, blob, COMM_RDZV_BLOB_BYTES);

    int rc = 0;
    double deadline_s = now_s() + timeout_s;
    if (world > 1)
        rc = rank == 0 ? run_root(r, port, timeout_s, deadline_s, err)
                       : run_peer(r, addr, port, timeout_s, deadline_s, err);
    if (rc < 0) {
        comm_rdzv_release(r);
        return rc;
    }
    derive_topology(r);
    return 0;
}

int comm_rdzv_barrier(struct comm_rdzv *r, double timeout_s, struct sw_err *err)
{
    if (!r->records)
        return sw_errf(err, SW_EINVAL, "rendezvous barrier before the rendezvous");
    if (r->world == 1)
        return 0;
    if (timeout_s <= 0)
        timeout_s = comm_timeout_s(NULL);
    double deadline_s = now_s() + timeout_s;
    unsigned char b = 'B';
    if (r->rank == 0) {
        for (int i = 1; i < r->world; i++) {
            unsigned char got;
            int rc = recv_all(r->fds[i], &got, 1, deadline_s);
            if (rc != 0 || got != 'B')
                return sw_errf(err, SW_EIO, "barrier: rank %d %s within %.0f s", i,
                               rc == -2 ? "did not arrive" : "is gone", timeout_s);
        }
        for (int i = 1; i < r->world; i++)
            if (send_all(r->fds[i], &b, 1, deadline_s) != 0)
                return sw_errf(err, SW_EIO, "barrier: rank %d is gone", i);
        return 0;
    }
    int rc = send_all(r->fds[0], &b, 1, deadline_s);
    unsigned char got = 0;
    if (rc == 0)
        rc = recv_all(r->fds[0], &got, 1, deadline_s);
    if (rc != 0 || got != 'B')
        return sw_errf(err, SW_EIO, "barrier: rank 0 %s within %.0f s",
                       rc == -2 ? "did not answer" : "is gone", timeout_s);
    return 0;
}

int comm_rdzv_send(struct comm_rdzv *r, int to, const void *buf, size_t bytes, double timeout_s,
                   struct sw_err *err)
{
    if (!r->fds || r->rank != 0 || to < 1 || to >= r->world || r->fds[to] < 0)
        return sw_errf(err, SW_EINVAL, "rendezvous: rank %d cannot send to rank %d", r->rank, to);
    if (bytes > COMM_RDZV_MSG_MAX)
        return sw_errf(err, SW_EINVAL, "rendezvous: a %zu-byte message is over the %d-byte limit",
                       bytes, COMM_RDZV_MSG_MAX);
    if (timeout_s <= 0)
        timeout_s = comm_timeout_s(NULL);
    double deadline_s = now_s() + timeout_s;
    unsigned char len[4];
    sw_put_le32(len, (uint32_t)bytes);
    int rc = send_all(r->fds[to], len, sizeof len, deadline_s);
    if (rc == 0)
        rc = send_all(r->fds[to], buf, bytes, deadline_s);
    if (rc != 0)
        return sw_errf(err, SW_EIO, "rendezvous: rank %d %s", to,
                       rc == -2 ? "stopped reading" : "is gone");
    return 0;
}

int comm_rdzv_recv(struct comm_rdzv *r, void *buf, size_t cap, size_t *bytes, double timeout_s,
                   struct sw_err *err)
{
    if (!r->fds || r->rank == 0 || r->fds[0] < 0)
        return sw_errf(err, SW_EINVAL, "rendezvous: rank %d has no connection to rank 0", r->rank);
    if (timeout_s <= 0)
        timeout_s = comm_timeout_s(NULL);
    double deadline_s = now_s() + timeout_s;
    unsigned char len[4];
    int rc = recv_all(r->fds[0], len, sizeof len, deadline_s);
    uint32_t n = rc == 0 ? sw_get_le32(len) : 0;
    if (rc == 0 && (n > COMM_RDZV_MSG_MAX || n > cap))
        return sw_errf(err, SW_EINVAL,
                       "rendezvous: rank 0 sent a %u-byte message, more than the %zu expected", n,
                       cap);
    if (rc == 0)
        rc = recv_all(r->fds[0], buf, n, deadline_s);
    if (rc != 0)
        return sw_errf(err, SW_EIO, "rendezvous: rank 0 %s within %.0f s",
                       rc == -2 ? "sent nothing" : "closed the connection", timeout_s);
    if (bytes)
        *bytes = n;
    return 0;
}

/* ---------------------------------------------------------------- bootstrap records */

#define BOOT_MAGIC 0x54425753u /* "SWBT" */

static const char *boot_kind_name(uint32_t kind)
{
    switch (kind) {
    case COMM_BOOT_ERROR:
        return "an error";
    case COMM_BOOT_OMPI_URI:
        return "MPI through ompi-server (a CPU plan)";
    case COMM_BOOT_NCCL_ID:
        return "NCCL (a CUDA plan)";
    }
    return "an unknown engine";
}

void comm_boot_pack(unsigned char *blob, enum comm_boot_kind kind, const void *payload,
                    size_t bytes)
{
    memset(blob, 0, COMM_RDZV_BLOB_BYTES);
    if (bytes > COMM_BOOT_PAYLOAD_MAX)
        bytes = COMM_BOOT_PAYLOAD_MAX;
    sw_put_le32(blob, BOOT_MAGIC);
    sw_put_le32(blob + 4, (uint32_t)kind);
    sw_put_le32(blob + 8, (uint32_t)bytes);
    if (bytes)
        memcpy(blob + 12, payload, bytes);
}

int comm_boot_unpack(const unsigned char *blob, enum comm_boot_kind want, void *payload, size_t cap,
                     size_t *bytes, struct sw_err *err)
{
    if (sw_get_le32(blob) != BOOT_MAGIC)
        return sw_errf(err, SW_EIO,
                       "rendezvous: rank 0 sent no bootstrap record (a different scalewise?)");
    uint32_t kind = sw_get_le32(blob + 4);
    uint32_t n = sw_get_le32(blob + 8);
    if (n > COMM_BOOT_PAYLOAD_MAX)
        return sw_errf(err, SW_EIO, "rendezvous: garbled bootstrap record from rank 0");
    if (kind == COMM_BOOT_ERROR) {
        char msg[SW_ERR_MSG_MAX];
        size_t k = n < sizeof msg - 1 ? n : sizeof msg - 1;
        memcpy(msg, blob + 12, k);
        msg[k] = '\0';
        return sw_errf(err, SW_EUNSUPPORTED, "rank 0: %s", msg);
    }
    if (kind != (uint32_t)want)
        return sw_errf(err, SW_EINVAL,
                       "rendezvous: rank 0 starts %s, this rank expects %s; every rank must run "
                       "the same plan",
                       boot_kind_name(kind), boot_kind_name(want));
    if (n > cap)
        return sw_errf(err, SW_ERANGE, "rendezvous: a %u-byte bootstrap record, %zu expected", n,
                       cap);
    memcpy(payload, blob + 12, n);
    if (bytes)
        *bytes = n;
    return 0;
}

void comm_rdzv_release(struct comm_rdzv *r)
{
    if (!r->fds) { /* never run, or released: nothing is open */
        free(r->records);
        memset(r, 0, sizeof *r);
        r->listen_fd = -1;
        return;
    }
    for (int i = 0; i < r->world; i++)
        if (r->fds[i] >= 0)
            close(r->fds[i]);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    free(r->fds);
    free(r->records);
    memset(r, 0, sizeof *r);
    r->listen_fd = -1;
}
