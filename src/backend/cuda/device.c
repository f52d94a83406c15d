/* CUDA device layer: device count and properties through the runtime API, the versions of the
 * loaded cudart / driver / cuBLASLt / cuDNN / NVRTC, and cudaError_t -> tc_status conversion.
 * Works, and fails politely, on machines with no driver or no GPU. */
#include "backend/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <nvrtc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool tc_cuda_env_flag(const char *name, bool dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return !(strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0);
}

/* Shortens "/long/path/src/backend/cuda/device.c" to "backend/cuda/device.c" for messages. */
static const char *short_path(const char *file)
{
    const char *p = strstr(file, "src/");
    return p ? p + 4 : file;
}

tc_status tc_cuda_status_from(int cuda_error, const char *expr, const char *file, int line,
                              tc_error *err)
{
    cudaError_t e = (cudaError_t)cuda_error;
    if (e == cudaSuccess) return TC_OK;
    /* Non-sticky errors stay in the last-error slot; clear it so the next launch check sees
     * only its own launch. */
    (void)cudaGetLastError();
    return tc_errorf(err, TC_ERR_CUDA, "CUDA error %s (%d): %s, in %s at %s:%d", cudaGetErrorName(e),
                     (int)e, cudaGetErrorString(e), expr ? expr : "?", short_path(file ? file : "?"),
                     line);
}

/* Writes "13.0" for 13000; "none" for 0 (what cudaDriverGetVersion reports without a driver). */
static void cuda_version_text(int v, char *buf, size_t n)
{
    if (v <= 0)
        snprintf(buf, n, "none");
    else
        snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10);
}

tc_status tc_cuda_device_count(int *n, tc_error *err)
{
    if (!n) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_device_count: n is NULL");
    *n = 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        int driver = 0, runtime = 0;
        (void)cudaDriverGetVersion(&driver);
        (void)cudaRuntimeGetVersion(&runtime);
        (void)cudaGetLastError();
        char dv[32], rv[32];
        cuda_version_text(driver, dv, sizeof dv);
        cuda_version_text(runtime, rv, sizeof rv);
        const char *hint = "";
        if (driver == 0)
            hint = "no NVIDIA driver is loaded (libcuda.so.1 not found); ";
        else if (driver < runtime)
            hint = "the NVIDIA driver is older than the CUDA runtime; update the driver; ";
        else if (e == cudaErrorNoDevice)
            hint = "the driver sees no GPU (check CUDA_VISIBLE_DEVICES); ";
        return tc_errorf(err, TC_ERR_CUDA,
                         "no usable CUDA device: %scudaGetDeviceCount failed with %s (%s) "
                         "[driver %s, runtime %s]",
                         hint, cudaGetErrorName(e), cudaGetErrorString(e), dv, rv);
    }
    if (count <= 0)
        return tc_errorf(err, TC_ERR_CUDA, "no usable CUDA device: the driver reports 0 devices");
    *n = count;
    return TC_OK;
}

tc_status tc_cuda_device_info(int dev, tc_cuda_device_props *info, tc_error *err)
{
    if (!info) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_device_info: info is NULL");
    memset(info, 0, sizeof *info);
    int count = 0;
    TC_TRY(tc_cuda_device_count(&count, err));
    if (dev < 0 || dev >= count)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "tc_cuda_device_info: device %d does not exist (%d device%s)", dev, count,
                         count == 1 ? "" : "s");
    struct cudaDeviceProp p;
    TC_CUDA_TRY(cudaGetDeviceProperties(&p, dev), err);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->total_memory = p.totalGlobalMem;
    info->l2_cache_bytes = p.l2CacheSize > 0 ? (size_t)p.l2CacheSize : 0;
    info->shared_memory_per_block_optin = p.sharedMemPerBlockOptin;
    TC_CUDA_TRY(cudaDriverGetVersion(&info->driver_version), err);
    TC_CUDA_TRY(cudaRuntimeGetVersion(&info->runtime_version), err);
    return TC_OK;
}

tc_status tc_cuda_library_versions(char *buf, size_t n)
{
    if (!buf || n == 0) return TC_ERR_INVALID_ARGUMENT;
    int runtime = 0, driver = 0;
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaDriverGetVersion(&driver);
    (void)cudaGetLastError();
    char rv[32], dv[32];
    cuda_version_text(runtime, rv, sizeof rv);
    cuda_version_text(driver, dv, sizeof dv);

    /* Both encode major*10000 + minor*100 + patch for these major versions (cuBLASLt 13.1.1 is
     * 130101, cuDNN 9.24.0 is 92400). */
    size_t lt = cublasLtGetVersion();
    size_t dnn = cudnnGetVersion();
    int nv_major = 0, nv_minor = 0;
    char nv[32];
    if (nvrtcVersion(&nv_major, &nv_minor) == NVRTC_SUCCESS)
        snprintf(nv, sizeof nv, "%d.%d", nv_major, nv_minor);
    else
        snprintf(nv, sizeof nv, "unknown");

    int w = snprintf(buf, n, "cudart %s, driver %s, cuBLASLt %zu.%zu.%zu, cuDNN %zu.%zu.%zu, NVRTC %s",
                     rv, dv, lt / 10000, (lt / 100) % 100, lt % 100, dnn / 10000, (dnn / 100) % 100,
                     dnn % 100, nv);
    if (w < 0 || (size_t)w >= n) return TC_ERR_INVALID_ARGUMENT;
    return TC_OK;
}
