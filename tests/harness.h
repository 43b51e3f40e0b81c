/* A tiny test harness: checks print file:line and the values involved, a test program ends
 * with "<name>: N passed, N failed" and exits non-zero on any failure. tests/run.sh adds the
 * counts of every program and script together. */
#ifndef SW_TEST_HARNESS_H
#define SW_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_passed, harness_failed;
static const char *harness_current = "";

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (cond) {                                                                              \
            harness_passed++;                                                                    \
        } else {                                                                                 \
            harness_failed++;                                                                    \
            fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__,               \
                    harness_current, #cond);                                                     \
        }                                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                     \
    do {                                                                                         \
        if (cond) {                                                                              \
            harness_passed++;                                                                    \
        } else {                                                                                 \
            harness_failed++;                                                                    \
            fprintf(stderr, "%s:%d: [%s] check failed: %s: ", __FILE__, __LINE__,               \
                    harness_current, #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
        }                                                                                        \
    } while (0)

#define CHECK_INT(a, b)                                                                          \
    do {                                                                                         \
        long long ha_ = (long long)(a), hb_ = (long long)(b);                                   \
        CHECK_MSG(ha_ == hb_, "%s = %lld, expected %lld", #a, ha_, hb_);                         \
    } while (0)

#define CHECK_STR(a, b)                                                                          \
    do {                                                                                         \
        const char *ha_ = (a), *hb_ = (b);                                                       \
        CHECK_MSG(ha_ && hb_ && strcmp(ha_, hb_) == 0, "%s = \"%s\", expected \"%s\"", #a,       \
                  ha_ ? ha_ : "(null)", hb_ ? hb_ : "(null)");                                  \
    } while (0)

/* |a - b| <= tol (absolute). */
#define CHECK_NEAR(a, b, tol)                                                                    \
    do {                                                                                         \
        double ha_ = (double)(a), hb_ = (double)(b), ht_ = (double)(tol);                        \
        CHECK_MSG(fabs(ha_ - hb_) <= ht_, "%s = %.9g, expected %.9g (tol %.3g, diff %.3g)", #a,   \
                  ha_, hb_, ht_, fabs(ha_ - hb_));                                              \
    } while (0)

/* |a - b| <= rel * |b| (relative). */
#define CHECK_REL(a, b, rel)                                                                     \
    do {                                                                                         \
        double ha_ = (double)(a), hb_ = (double)(b), hr_ = (double)(rel);                        \
        CHECK_MSG(fabs(ha_ - hb_) <= hr_ * fabs(hb_),                                            \
                  "%s = %.9g, expected %.9g (rel tol %.3g, rel diff %.3g)", #a, ha_, hb_, hr_,   \
                  hb_ != 0 ? fabs(ha_ - hb_) / fabs(hb_) : fabs(ha_));                           \
    } while (0)

/* rc must be 0; prints the error record otherwise. */
#define CHECK_OK(rc, errp)                                                                       \
    do {                                                                                         \
        int hrc_ = (rc);                                                                         \
        CHECK_MSG(hrc_ == 0, "rc %d: %s:%d:%d: %s", hrc_, (errp)->file, (errp)->line,          \
                  (errp)->col, (errp)->msg);                                                     \
    } while (0)

#define RUN(fn)                                                                                  \
    do {                                                                                         \
        harness_current = #fn;                                                                   \
        fn();                                                                                    \
    } while (0)

static int harness_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

#endif
