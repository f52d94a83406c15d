/* Internal error reporting: every fallible internal function takes a tc_error
 * and returns a tc_status; the message ends up on the public handle. */
#ifndef TC_CORE_ERROR_H
#define TC_CORE_ERROR_H

#include "tensorc.h"
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_error {
    tc_status status;
    char msg[1024];
} tc_error;

/* Records status and a printf-style message in err (err may be NULL) and returns status. */
tc_status tc_errorf(tc_error *err, tc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void tc_error_clear(tc_error *err);

/* Broken internal invariant: a bug in tensorc, never caused by user input. */
#define TC_ASSERT(cond)                                                                     \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "tensorc: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#ifdef __cplusplus
}
#endif

#define TC_TRY(expr)                   \
    do {                                \
        tc_status tc_try_s_ = (expr);   \
        if (tc_try_s_ != TC_OK) return tc_try_s_; \
    } while (0)

#endif
