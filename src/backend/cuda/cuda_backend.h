/* The CUDA backend's device layer: device discovery, device facts for engine headers, library
 * versions, and the conversion of CUDA runtime errors into tc_status with a message.
 * Only compiled when the build has the CUDA backend (TC_HAVE_CUDA); no CUDA header needed here. */
#ifndef TC_BACKEND_CUDA_BACKEND_H
#define TC_BACKEND_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* core/error.h has no C++ guard; its system headers are included above so that only its own
 * declarations land inside the extern "C" block when a .cu file includes this header. */
#ifdef __cplusplus
extern "C" {
#endif

#include "core/error.h"
#include "tensorc.h"

/* What an engine header records about a GPU, and what tactics are keyed on. */
typedef struct tc_cuda_device_props {
    char name[256];               /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor;       /* compute capability, 9.0 for Hopper */
    int sm_count;                 /* streaming multiprocessors */
    size_t total_memory;          /* bytes of device memory */
    size_t l2_cache_bytes;
    size_t shared_memory_per_block_optin; /* the most a block can get after cudaFuncSetAttribute */
    int driver_version;           /* cudaDriverGetVersion: 13000 for CUDA 13.0; 0 without a driver */
    int runtime_version;          /* cudaRuntimeGetVersion of the linked cudart */
} tc_cuda_device_props;

/* Number of usable CUDA devices in *n. With no driver, no device, or a driver older than the
 * runtime, *n is 0 and the result is TC_ERR_CUDA with a message saying which. Never crashes. */
tc_status tc_cuda_device_count(int *n, tc_error *err);

/* Facts about device `dev` (0 <= dev < tc_cuda_device_count). TC_ERR_INVALID_ARGUMENT for a bad
 * index or NULL info, TC_ERR_CUDA when the runtime fails. */
tc_status tc_cuda_device_info(int dev, tc_cuda_device_props *info, tc_error *err);

/* Writes one line naming the versions of the libraries this process actually loaded, e.g.
 * "cudart 13.0, driver 13.0, cuBLASLt 13.1.1, cuDNN 9.24.0, NVRTC 13.0" ("driver none" without a
 * driver). Needs no GPU. TC_ERR_INVALID_ARGUMENT when buf is NULL or n is 0 or the line was cut. */
tc_status tc_cuda_library_versions(char *buf, size_t n);

/* Turns a cudaError_t (passed as int to keep cuda_runtime.h out of this header) into a status:
 * TC_OK for cudaSuccess, else TC_ERR_CUDA with the error's name, text, the failed expression and
 * file:line. It also clears the runtime's last-error slot so that the next launch check does not
 * report this error a second time. */
tc_status tc_cuda_status_from(int cuda_error, const char *expr, const char *file, int line,
                              tc_error *err);

/* TC_CUDA_CHECK(cudaMalloc(&p, n), err) evaluates to a tc_status; TC_CUDA_TRY returns it from
 * the calling function when it is not TC_OK. */
#define TC_CUDA_CHECK(call, err) tc_cuda_status_from((int)(call), #call, __FILE__, __LINE__, (err))
#define TC_CUDA_TRY(call, err) TC_TRY(TC_CUDA_CHECK(call, err))

#ifdef __cplusplus
}
#endif
#endif
