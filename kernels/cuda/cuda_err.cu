/* The plugin's error helpers declared in cuda_int.cuh: the CUDA_CHECK / CUBLAS_CHECK failure
 * paths (a failing call inside a kernel entry means a broken device or a programming error:
 * print the call, the error and the place, then abort) and cuda_set_err, which fills a struct
 * sw_err for the errors that are returned (the plugin cannot call the core's sw_errf: the
 * executable does not export its symbols; file/line/col stay 0, the error has no place in an
 * input). Its own file so that tests/cuda_emu links the same code with the kernels without the
 * rest of plugin.cu. */
#include "kernels/cuda/cuda_int.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cuda_fail(cudaError_t e, const char *call, const char *file, int line)
{
    fprintf(stderr, "cuda error at %s:%d: %s: %s (%s)\n", file, line, call, cudaGetErrorName(e),
            cudaGetErrorString(e));
    abort();
}

void cublas_fail(int status, const char *call, const char *file, int line)
{
    fprintf(stderr, "cublas error at %s:%d: %s: status %d\n", file, line, call, status);
    abort();
}

int cuda_set_err(struct sw_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}
