/* Bad-input fixtures whose first line says what loading them must report:
 *   # expect: LINE:COL: text the error message contains
 * expect_file_read reads that line of `path`. Shared by the tests of the YAML loaders
 * (test_hardware.c, test_calibrate.c). */
#ifndef SW_TEST_EXPECT_FILE_H
#define SW_TEST_EXPECT_FILE_H

#include <stdio.h>
#include <string.h>

#include "common/common.h"

/* 0 with *line, *col and msg (at most msg_n - 1 bytes) filled; -1 with why[] filled when the
 * file cannot be read or its first line is not an expect line. */
static inline int expect_file_read(const char *path, int *line, int *col, char *msg, size_t msg_n,
                                   char *why, size_t why_n)
{
    char *text = NULL;
    size_t len = 0;
    struct sw_err err;
    sw_err_init(&err);
    if (sw_read_file(path, 1 << 20, &text, &len, &err) < 0) {
        snprintf(why, why_n, "%s", err.msg);
        return -1;
    }
    int used = 0;
    int got = sscanf(text, "# expect: %d:%d: %n", line, col, &used);
    if (got != 2 || used <= 0) {
        free(text);
        snprintf(why, why_n, "first line must be '# expect: L:C: text'");
        return -1;
    }
    const char *nl = strchr(text + used, '\n');
    size_t k = nl ? (size_t)(nl - (text + used)) : strlen(text + used);
    if (k >= msg_n)
        k = msg_n - 1;
    memcpy(msg, text + used, k);
    msg[k] = '\0';
    free(text);
    return 0;
}

#endif
