/* libFuzzer target for the plan loader: any bytes given to plan_load_string must give either a
 * plan or an error with a message, never a crash, a leak or undefined behaviour. Relative paths
 * in the input resolve against the working directory. Built by `make fuzz`; seeds are in
 * tests/fuzz/corpus/ (copies of profiles/plans/). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "advisor/advisor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct plan p; /* large: keep it off the fuzzer's stack */
    struct sw_err err;
    int rc = plan_load_string((const char *)data, size, "fuzz.yaml", &p, &err);
    if (rc < 0 && !err.msg[0])
        abort(); /* every failure must say what is wrong */
    if (rc == 0) {
        /* What loads must also write, and what it writes must load again. */
        struct sw_buf b;
        sw_buf_init(&b, 1 << 22);
        if (plan_to_yaml(&p, &b, &err) < 0)
            abort();
        static struct plan q;
        if (plan_load_string(b.data, b.len, "fuzz.yaml", &q, &err) < 0)
            abort();
        sw_buf_release(&b);
    }
    return 0;
}
