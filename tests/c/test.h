/* A minimal harness for the C tests: CHECK records a failure with file:line and goes on;
 * TEST_MAIN_END prints "N passed, N failed" and returns the exit code. */
#ifndef TC_TEST_H
#define TC_TEST_H

#include <stdio.h>
#include <string.h>

static int tc_test_passed __attribute__((unused)), tc_test_failed __attribute__((unused));

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            tc_test_passed++;                                                    \
        } else {                                                                 \
            tc_test_failed++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (cond) {                                                              \
            tc_test_passed++;                                                    \
        } else {                                                                 \
            tc_test_failed++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

#define TEST_MAIN_END()                                                          \
    do {                                                                         \
        printf("%d passed, %d failed\n", tc_test_passed, tc_test_failed);        \
        return tc_test_failed ? 1 : 0;                                           \
    } while (0)

#endif
