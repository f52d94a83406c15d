/* Error messages and status names. */
#include "core/error.h"

#include <stdarg.h>
#include <string.h>

tc_status tc_errorf(tc_error *err, tc_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void tc_error_clear(tc_error *err) {
    if (err) {
        err->status = TC_OK;
        err->msg[0] = '\0';
    }
}

const char *tc_status_string(tc_status status) {
    switch (status) {
    case TC_OK: return "TC_OK: success";
    case TC_ERR_INVALID_ARGUMENT: return "TC_ERR_INVALID_ARGUMENT: invalid argument";
    case TC_ERR_UNKNOWN_OP: return "TC_ERR_UNKNOWN_OP: unknown op";
    case TC_ERR_SCHEMA: return "TC_ERR_SCHEMA: arguments do not match the op schema";
    case TC_ERR_DTYPE: return "TC_ERR_DTYPE: unsupported or mismatched data type";
    case TC_ERR_SHAPE: return "TC_ERR_SHAPE: shape mismatch";
    case TC_ERR_UNSUPPORTED: return "TC_ERR_UNSUPPORTED: not supported";
    case TC_ERR_INVALID_GRAPH: return "TC_ERR_INVALID_GRAPH: invalid graph";
    case TC_ERR_OUT_OF_MEMORY: return "TC_ERR_OUT_OF_MEMORY: out of memory";
    case TC_ERR_IO: return "TC_ERR_IO: input/output error";
    case TC_ERR_FORMAT: return "TC_ERR_FORMAT: malformed file";
    case TC_ERR_VERSION: return "TC_ERR_VERSION: unsupported file version";
    case TC_ERR_NOT_FOUND: return "TC_ERR_NOT_FOUND: not found";
    case TC_ERR_CUDA: return "TC_ERR_CUDA: CUDA error";
    case TC_ERR_INTERNAL: return "TC_ERR_INTERNAL: internal error";
    case TC_STATUS_COUNT: break;
    }
    return "TC_ERR_?: unknown status";
}
