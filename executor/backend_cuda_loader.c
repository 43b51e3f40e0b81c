/* The core's side of the CUDA backend: finds the plugin build/libscalewise-cuda.so (built by
 * nvcc from kernels/cuda, never linked into the core), dlopens it, checks that it was built
 * against this struct backend (API version and table size), and calls its one entry,
 * scalewise_cuda_backend(), which picks and initialises a GPU; backend_cuda_symbol() then finds
 * the plugin's other entries (the NCCL engine of executor/comm.c). Everything about CUDA itself
 * (driver, devices, streams, kernels) stays in the plugin; this file uses no CUDA header, so
 * the core builds and runs where no toolkit is installed (hardware-and-distributed.md 6:
 * llama.cpp's GGML_BACKEND_DL model). A missing plugin, a stale one, a machine without a
 * driver or without a GPU are all SW_EUNSUPPORTED with the reason, never a crash. */
#include "executor/backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define CUDA_PLUGIN_NAME "libscalewise-cuda.so"

typedef const struct backend *(*cuda_entry_fn)(int api_version, char *err, size_t n);

/* The loaded table and the plugin's handle; the plugin stays loaded for the life of the process
 * (its static CUDA runtime registers exit handlers that must not see their code unmapped). */
static const struct backend *g_cuda;
static void *g_handle;

/* Appends ", s" (or "s") to buf, silently truncating. */
static void append(char *buf, size_t n, const char *s)
{
    size_t used = strlen(buf);
    if (used + 1 >= n)
        return;
    /* Truncation is fine here: the list only explains a failure. */
    if (snprintf(buf + used, n - used, "%s%s", used ? ", " : "", s) < 0)
        buf[used] = '\0';
}

/* The first candidate that dlopens: $SCALEWISE_CUDA_PLUGIN (only it, when set), the
 * executable's directory, build/ under it, its parent (build/tests/x, build/asan/scalewise,
 * build/gpu/x), then the compile-time path. */
static void *open_plugin(char *tried, size_t tried_n, char *dlmsg, size_t dlmsg_n)
{
    char cand[5][PATH_MAX + 64];
    int nc = 0;
    tried[0] = '\0';
    dlmsg[0] = '\0';
    const char *env = getenv("SCALEWISE_CUDA_PLUGIN");
    if (env && *env) {
        snprintf(cand[nc++], sizeof cand[0], "%s", env);
    } else {
        char dir[PATH_MAX];
        sw_exe_dir(dir, sizeof dir);
        if (dir[0]) {
            snprintf(cand[nc++], sizeof cand[0], "%s/" CUDA_PLUGIN_NAME, dir);
            snprintf(cand[nc++], sizeof cand[0], "%s/build/" CUDA_PLUGIN_NAME, dir);
            snprintf(cand[nc++], sizeof cand[0], "%s/../" CUDA_PLUGIN_NAME, dir);
        }
#ifdef SW_CUDA_PLUGIN_PATH
        snprintf(cand[nc++], sizeof cand[0], "%s", SW_CUDA_PLUGIN_PATH);
#endif
    }
    for (int i = 0; i < nc; i++) {
        if (access(cand[i], R_OK) != 0) {
            append(tried, tried_n, cand[i]);
            continue;
        }
        void *h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        const char *e = dlerror(); /* names the file already */
        if (snprintf(dlmsg, dlmsg_n, "%s", e ? e : cand[i]) < 0)
            dlmsg[0] = '\0';
    }
    return NULL;
}

const struct backend *backend_cuda_load(struct sw_err *err)
{
    if (g_cuda)
        return g_cuda;
    char tried[1024], dlmsg[512];
    void *h = open_plugin(tried, sizeof tried, dlmsg, sizeof dlmsg);
    if (!h) {
        if (dlmsg[0])
            sw_errf(err, SW_EUNSUPPORTED, "the CUDA plugin failed to load: %s", dlmsg);
        else
            sw_errf(err, SW_EUNSUPPORTED,
                    "the CUDA backend is not built: " CUDA_PLUGIN_NAME
                    " was not found (tried %s); build scalewise where nvcc is installed, or set "
                    "SCALEWISE_CUDA_PLUGIN",
                    tried[0] ? tried : "no path");
        return NULL;
    }
    void *sym = dlsym(h, "scalewise_cuda_backend");
    void *size_sym = dlsym(h, "scalewise_cuda_backend_table_bytes");
    if (!sym || !size_sym) {
        sw_errf(err, SW_EUNSUPPORTED,
                "the CUDA plugin has no scalewise_cuda_backend entry (a different build?)");
        dlclose(h);
        return NULL;
    }
    size_t plugin_bytes = *(const size_t *)size_sym;
    if (plugin_bytes != sizeof(struct backend)) {
        sw_errf(err, SW_EUNSUPPORTED,
                "the CUDA plugin was built with a %zu-byte backend table, this scalewise has "
                "%zu: rebuild both with make",
                plugin_bytes, sizeof(struct backend));
        dlclose(h);
        return NULL;
    }
    cuda_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, POSIX-style */
    char msg[SW_ERR_MSG_MAX];
    msg[0] = '\0';
    const struct backend *be = entry(BACKEND_API_VERSION, msg, sizeof msg);
    if (!be) {
        /* Keep the plugin loaded: the CUDA runtime inside may have registered handlers. */
        sw_errf(err, SW_EUNSUPPORTED, "%s", msg[0] ? msg : "the CUDA plugin found no usable GPU");
        return NULL;
    }
    g_cuda = be;
    g_handle = h;
    return be;
}

void *backend_cuda_symbol(const char *name)
{
    if (!g_cuda || !g_handle || !name)
        return NULL;
    dlerror();
    return dlsym(g_handle, name);
}

void backend_cuda_attention_tuning(char *buf, size_t n)
{
    if (n == 0)
        return;
    buf[0] = '\0';
    int (*tuning)(char *, size_t) = NULL;
    void *sym = backend_cuda_symbol("scalewise_cuda_attention_tuning");
    /* dlsym's object pointer to a function pointer: POSIX guarantees it works */
    memcpy(&tuning, &sym, sizeof tuning);
    if (tuning)
        tuning(buf, n);
}
