/* The device-simulating backend (executor/backend_devsim.c): its pointers are not host
 * memory (a host dereference faults), copies work in each direction, every kernel entry gives
 * the CPU kernel's bytes, the counters are the CPU backend's, and the misuses a GPU would punish
 * — a host pointer handed to a kernel, a memcpy with the wrong direction — abort with the
 * entry's name (checked in forked children). backend_for_device picks it with
 * SCALEWISE_DEVSIM=1. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor/backend.h"
#include <stddef.h>

#include "harness.h"

static const struct backend *ds;

static void *dev_copy(const void *host, size_t bytes, enum backend_mem cat)
{
    struct sw_err err;
    void *d = ds->alloc(bytes, cat, &err);
    SW_ASSERT(d);
    ds->memcpy(d, host, bytes, BACKEND_H2D);
    return d;
}

static void test_table(void)
{
    CHECK_STR(ds->name, "devsim");
    CHECK(!ds->host_memory);
    CHECK(backend_cpu()->host_memory);
    /* Every entry the CPU backend has, the simulator has; the ones it adds are the fused MLP
     * matmuls (computed unfused, so the model's fused branch runs on a machine without a GPU),
     * the 16-bit plans' attention (computed as the fp32 one) and the one-launch optimizer
     * update (computed per segment). */
    const void *const *a = (const void *const *)(const void *)backend_cpu();
    const void *const *b = (const void *const *)(const void *)ds;
    size_t n = sizeof(struct backend) / sizeof(void *), missing = 0;
    size_t fused = offsetof(struct backend, matmul_gelu_forward) / sizeof(void *);
    size_t dfused = offsetof(struct backend, matmul_backward_input_dgelu) / sizeof(void *);
    size_t att16 = offsetof(struct backend, flash_attention_forward_16) / sizeof(void *);
    size_t datt16 = offsetof(struct backend, flash_attention_backward_16) / sizeof(void *);
    size_t segs = offsetof(struct backend, optim_step_segments) / sizeof(void *);
    for (size_t i = 0; i < n; i++)
        if (i != fused && i != dfused && i != att16 && i != datt16 && i != segs &&
            (a[i] == NULL) != (b[i] == NULL))
            missing++;
    CHECK_INT(missing, 0);
    CHECK(!backend_cpu()->matmul_gelu_forward && ds->matmul_gelu_forward);
    CHECK(!backend_cpu()->matmul_backward_input_dgelu && ds->matmul_backward_input_dgelu);
    CHECK(!backend_cpu()->flash_attention_forward_16 && ds->flash_attention_forward_16);
    CHECK(!backend_cpu()->flash_attention_backward_16 && ds->flash_attention_backward_16);
    CHECK(!backend_cpu()->optim_step_segments && ds->optim_step_segments);
}

static void test_memory(void)
{
    struct backend_mem_stats s0, s1;
    ds->mem_stats(&s0);
    struct sw_err err;
    float host[100], back[100];
    for (int i = 0; i < 100; i++)
        host[i] = (float)i * 0.5f;
    float *d = ds->alloc(sizeof(host), BACKEND_MEM_ACTIVATIONS, &err);
    CHECK(d != NULL);
    /* Not a host address: well above any user-space pointer. */
    CHECK((uintptr_t)d >= ((uintptr_t)1 << 55));
    ds->mem_stats(&s1);
    CHECK_INT(s1.current_bytes[BACKEND_MEM_ACTIVATIONS] - s0.current_bytes[BACKEND_MEM_ACTIVATIONS],
              sizeof(host));
    ds->memcpy(d, host, sizeof(host), BACKEND_H2D);
    float *d2 = ds->alloc(sizeof(host), BACKEND_MEM_WORKSPACE, &err);
    ds->memcpy(d2, d, sizeof(host), BACKEND_D2D);
    ds->memset(d2, 0, 10 * sizeof(float));
    ds->memcpy(back, d2, sizeof(back), BACKEND_D2H);
    CHECK(back[0] == 0.0f && back[9] == 0.0f && back[10] == 5.0f && back[99] == 49.5f);
    /* Interior pointers translate too. */
    ds->memcpy(back, d + 50, 4 * sizeof(float), BACKEND_D2H);
    CHECK(back[0] == 25.0f && back[3] == 26.5f);
    ds->free(d);
    ds->free(d2);
    ds->mem_stats(&s1);
    CHECK_INT(s1.current_total_bytes, s0.current_total_bytes);
    ds->free(NULL);
}

/* A few kernels through the simulator give the CPU backend's bytes. */
static void test_kernels_equal_cpu(void)
{
    const struct backend *cpu = backend_cpu();
    enum { N = 8, C = 16, OC = 24 };
    float inp[N * C], w[OC * C], bias[OC], out_c[N * OC], out_d[N * OC];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof(inp) / sizeof(inp[0]); i++)
        inp[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < OC; i++)
        bias[i] = 0.01f * (float)i;
    cpu->matmul_forward(out_c, inp, w, bias, N, C, OC);
    cpu->gelu_forward(out_c, out_c, N * OC);
    float *di = dev_copy(inp, sizeof(inp), BACKEND_MEM_ACTIVATIONS);
    float *dw = dev_copy(w, sizeof(w), BACKEND_MEM_WEIGHTS);
    float *db = dev_copy(bias, sizeof(bias), BACKEND_MEM_WEIGHTS);
    struct sw_err err;
    float *dout = ds->alloc(sizeof(out_d), BACKEND_MEM_ACTIVATIONS, &err);
    ds->matmul_forward(dout, di, dw, db, N, C, OC);
    ds->gelu_forward(dout, dout, N * OC);
    ds->memcpy(out_d, dout, sizeof(out_d), BACKEND_D2H);
    CHECK(memcmp(out_c, out_d, sizeof(out_c)) == 0);
    /* A reduction returns its value to the host. */
    CHECK(ds->grad_norm(dout, N * OC) == cpu->grad_norm(out_c, N * OC));
    int targets[N], nv_c = 0, nv_d = 0;
    for (int i = 0; i < N; i++)
        targets[i] = i % 3 == 0 ? -1 : i;
    int *dt = dev_copy(targets, sizeof(targets), BACKEND_MEM_ACTIVATIONS);
    float lc = cpu->softmax_ce(out_c, NULL, &nv_c, targets, N, OC - 2, OC, false, 1.0f);
    float ld = ds->softmax_ce(dout, NULL, &nv_d, dt, N, OC - 2, OC, false, 1.0f);
    CHECK(lc == ld && nv_c == nv_d && nv_c == 5);
    ds->free(di);
    ds->free(dw);
    ds->free(db);
    ds->free(dout);
    ds->free(dt);
}

/* Run fn in a child; true when it died abnormally (a signal, or ASan's non-zero exit). The
 * child's stderr goes to a pipe; its first bytes land in msg. */
static bool dies(void (*fn)(void), char *msg, size_t msg_n)
{
    int fd[2];
    SW_ASSERT(pipe(fd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    SW_ASSERT(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < msg_n && (r = read(fd[0], msg + got, msg_n - 1 - got)) > 0)
        got += (size_t)r;
    msg[got] = '\0';
    char sink[4096];
    while (read(fd[0], sink, sizeof(sink)) > 0) {
    }
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

static void host_pointer_to_kernel(void)
{
    float x[4] = {1, 2, 3, 4};
    ds->scale(x, 4, 2.0f); /* x is host memory: must abort */
}

static void wrong_direction(void)
{
    struct sw_err err;
    float *d = ds->alloc(16, BACKEND_MEM_WORKSPACE, &err), h[4];
    ds->memcpy(d, h, 16, BACKEND_D2H); /* dst is device, src host: H2D was meant */
}

static void host_dereference(void)
{
    struct sw_err err;
    volatile float *d = ds->alloc(16, BACKEND_MEM_WORKSPACE, &err);
    d[0] = 1.0f; /* faults */
}

static void test_misuse_aborts(void)
{
    char msg[512];
    CHECK(dies(host_pointer_to_kernel, msg, sizeof(msg)));
    CHECK_MSG(strstr(msg, "ds_scale") && strstr(msg, "host pointer"), "%s", msg);
    CHECK(dies(wrong_direction, msg, sizeof(msg)));
    CHECK_MSG(strstr(msg, "memcpy D2H") && strstr(msg, "device pointer"), "%s", msg);
    CHECK(dies(host_dereference, msg, sizeof(msg)));
}

static void test_for_device(void)
{
    unsetenv("SCALEWISE_DEVSIM");
    CHECK(backend_for_device(false, NULL) == backend_cpu());
    setenv("SCALEWISE_DEVSIM", "1", 1);
    CHECK(backend_for_device(false, NULL) == ds);
    setenv("SCALEWISE_DEVSIM", "0", 1);
    CHECK(backend_for_device(false, NULL) == backend_cpu());
    unsetenv("SCALEWISE_DEVSIM");
}

int main(void)
{
    ds = backend_devsim();
    RUN(test_table);
    RUN(test_memory);
    RUN(test_kernels_equal_cpu);
    RUN(test_misuse_aborts);
    RUN(test_for_device);
    return harness_finish("test_backend_devsim");
}
