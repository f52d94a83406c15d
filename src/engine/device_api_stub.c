/* The "Device memory" API of tensorc.h in a build without the CUDA backend: every call fails with
 * TC_ERR_UNSUPPORTED and says how to get a CUDA build. The CUDA build uses
 * src/backend/cuda/device_api.c instead, so this file is empty there. */
#include "core/error.h"

#include <string.h>

#ifndef TC_HAVE_CUDA

#define NO_CUDA                                                                                             \
    "this build of tensorc has no CUDA backend: rebuild it with -DTENSORC_CUDA=ON on a machine with the CUDA " \
    "toolkit and cuDNN"

static _Thread_local tc_error last_err;

const char *tc_device_last_error(void) { return last_err.msg; }

static tc_status no_cuda(void) { return tc_errorf(&last_err, TC_ERR_UNSUPPORTED, NO_CUDA); }

tc_status tc_device_count(int *n) {
    if (n) *n = 0;
    return no_cuda();
}

tc_status tc_device_get_info(int device, tc_device_info *info) {
    (void)device;
    if (info) memset(info, 0, sizeof *info);
    return no_cuda();
}

tc_status tc_device_alloc(int device, size_t bytes, void **ptr) {
    (void)device, (void)bytes;
    if (ptr) *ptr = NULL;
    return no_cuda();
}

void tc_device_free(void *ptr) { (void)ptr; }

tc_status tc_device_copy(void *dst, const void *src, size_t bytes, tc_copy_kind kind, void *stream) {
    (void)dst, (void)src, (void)bytes, (void)kind, (void)stream;
    return no_cuda();
}

tc_status tc_device_synchronize(void *stream) {
    (void)stream;
    return no_cuda();
}

tc_status tc_stream_create(int device, void **stream) {
    (void)device;
    if (stream) *stream = NULL;
    return no_cuda();
}

void tc_stream_destroy(void *stream) { (void)stream; }

tc_status tc_event_create(int device, void **event) {
    (void)device;
    if (event) *event = NULL;
    return no_cuda();
}

void tc_event_destroy(void *event) { (void)event; }

tc_status tc_event_record(void *event, void *stream) {
    (void)event, (void)stream;
    return no_cuda();
}

tc_status tc_event_elapsed_ms(void *start, void *end, float *ms) {
    (void)start, (void)end;
    if (ms) *ms = 0;
    return no_cuda();
}

#else
typedef int tc_device_api_stub_unused; /* ISO C wants a translation unit to declare something */
#endif
