/* The public "Device memory" API of tensorc.h on the CUDA runtime: device facts, allocation,
 * copies, streams and events, so that C programs and the CLI move data for CUDA engines without
 * CUDA headers. Errors leave their message in a per-thread buffer (tc_device_last_error). */
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <stdarg.h>
#include <string.h>

static _Thread_local tc_error last_err;

const char *tc_device_last_error(void) { return last_err.msg; }

/* Starts a call: clears the previous message so that a success leaves "". */
static tc_error *begin(void) {
    tc_error_clear(&last_err);
    return &last_err;
}

/* Makes `dev` current for one call and restores the caller's device afterwards, so that a host
 * program (PyTorch) keeps its own current device. */
typedef struct dev_guard {
    int prev;
    bool changed;
} dev_guard;

static tc_status enter(int dev, dev_guard *g, tc_error *err) {
    g->changed = false;
    int count = 0;
    TC_TRY(tc_cuda_device_count(&count, err));
    if (dev < 0 || dev >= count)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "CUDA device %d does not exist (this machine has %d device%s)",
                         dev, count, count == 1 ? "" : "s");
    TC_CUDA_TRY(cudaGetDevice(&g->prev), err);
    if (g->prev != dev) {
        TC_CUDA_TRY(cudaSetDevice(dev), err);
        g->changed = true;
    }
    return TC_OK;
}

static void leave(const dev_guard *g) {
    if (g->changed) (void)cudaSetDevice(g->prev);
}

tc_status tc_device_count(int *n) {
    tc_error *err = begin();
    if (!n) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_device_count: n is NULL");
    return tc_cuda_device_count(n, err);
}

tc_status tc_device_get_info(int device, tc_device_info *info) {
    tc_error *err = begin();
    if (!info) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_device_get_info: info is NULL");
    memset(info, 0, sizeof *info);
    tc_cuda_device_props p;
    TC_TRY(tc_cuda_device_info(device, &p, err));
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.cc_major;
    info->cc_minor = p.cc_minor;
    info->sm_count = p.sm_count;
    info->total_memory = p.total_memory;
    return TC_OK;
}

tc_status tc_device_alloc(int device, size_t bytes, void **ptr) {
    tc_error *err = begin();
    if (!ptr) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_device_alloc: ptr is NULL");
    *ptr = NULL;
    dev_guard g;
    TC_TRY(enter(device, &g, err));
    void *p = NULL;
    cudaError_t ce = cudaMalloc(&p, bytes ? bytes : 1);
    tc_status st = TC_OK;
    if (ce != cudaSuccess) {
        size_t fr = 0, tot = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        st = tc_errorf(err, ce == cudaErrorMemoryAllocation ? TC_ERR_OUT_OF_MEMORY : TC_ERR_CUDA,
                       "cannot allocate %zu bytes on CUDA device %d: %s (%zu of %zu bytes free)", bytes, device,
                       cudaGetErrorString(ce), fr, tot);
        p = NULL;
    }
    leave(&g);
    *ptr = p;
    return st;
}

void tc_device_free(void *ptr) {
    if (!ptr) return;
    /* cudaFree needs the allocation's device to be current when several GPUs are in use */
    struct cudaPointerAttributes a;
    dev_guard g = {0, false};
    if (cudaPointerGetAttributes(&a, ptr) == cudaSuccess && a.type == cudaMemoryTypeDevice &&
        enter(a.device, &g, NULL) != TC_OK)
        g.changed = false;
    (void)cudaFree(ptr);
    (void)cudaGetLastError();
    leave(&g);
}

tc_status tc_device_copy(void *dst, const void *src, size_t bytes, tc_copy_kind kind, void *stream) {
    tc_error *err = begin();
    if (bytes == 0) return TC_OK;
    if (!dst || !src) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_device_copy: %s is NULL", dst ? "src" : "dst");
    enum cudaMemcpyKind k;
    switch (kind) {
    case TC_COPY_HOST_TO_DEVICE: k = cudaMemcpyHostToDevice; break;
    case TC_COPY_DEVICE_TO_HOST: k = cudaMemcpyDeviceToHost; break;
    case TC_COPY_DEVICE_TO_DEVICE: k = cudaMemcpyDeviceToDevice; break;
    default: return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_device_copy: unknown copy kind %d", (int)kind);
    }
    if (!stream) return TC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, k), err);
    return TC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, (cudaStream_t)stream), err);
}

tc_status tc_device_synchronize(void *stream) {
    tc_error *err = begin();
    if (!stream) return TC_CUDA_CHECK(cudaDeviceSynchronize(), err);
    return TC_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream), err);
}

tc_status tc_stream_create(int device, void **stream) {
    tc_error *err = begin();
    if (!stream) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_stream_create: stream is NULL");
    *stream = NULL;
    dev_guard g;
    TC_TRY(enter(device, &g, err));
    cudaStream_t s = NULL;
    tc_status st = TC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), err);
    leave(&g);
    if (st == TC_OK) *stream = s;
    return st;
}

void tc_stream_destroy(void *stream) {
    if (!stream) return;
    (void)cudaStreamDestroy((cudaStream_t)stream);
    (void)cudaGetLastError();
}

tc_status tc_event_create(int device, void **event) {
    tc_error *err = begin();
    if (!event) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_event_create: event is NULL");
    *event = NULL;
    dev_guard g;
    TC_TRY(enter(device, &g, err));
    cudaEvent_t ev = NULL;
    tc_status st = TC_CUDA_CHECK(cudaEventCreate(&ev), err);
    leave(&g);
    if (st == TC_OK) *event = ev;
    return st;
}

void tc_event_destroy(void *event) {
    if (!event) return;
    (void)cudaEventDestroy((cudaEvent_t)event);
    (void)cudaGetLastError();
}

tc_status tc_event_record(void *event, void *stream) {
    tc_error *err = begin();
    if (!event) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_event_record: event is NULL");
    return TC_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, stream ? (cudaStream_t)stream : cudaStreamLegacy), err);
}

tc_status tc_event_elapsed_ms(void *start, void *end, float *ms) {
    tc_error *err = begin();
    if (!start || !end || !ms) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_event_elapsed_ms: NULL argument");
    *ms = 0;
    TC_CUDA_TRY(cudaEventSynchronize((cudaEvent_t)end), err);
    return TC_CUDA_CHECK(cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end), err);
}
