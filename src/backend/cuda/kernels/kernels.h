/* C-callable launchers for tensorc's own CUDA kernels (the kernels themselves are static inside
 * the .cu files). Pointers are device pointers; `stream` is a cudaStream_t passed as void* (NULL
 * is the legacy default stream) so that C callers need no CUDA header. Launches are asynchronous:
 * TC_OK means the kernel was queued; a fault inside it shows at the next synchronizing call. */
#ifndef TC_BACKEND_CUDA_KERNELS_H
#define TC_BACKEND_CUDA_KERNELS_H

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

/* out[i] = (out_t)in[i] for i < n, among TC_F32, TC_F16 and TC_BF16, rounding to nearest even
 * (NaN stays NaN, overflow goes to infinity). in == out is allowed only for a same-size cast;
 * other overlap is rejected. */
tc_status tc_cuda_cast(const void *in, tc_dtype in_t, void *out, tc_dtype out_t, int64_t n,
                       void *stream, tc_error *err);

/* Same-shape (no broadcasting) elementwise ops on contiguous buffers of one dtype (TC_F32,
 * TC_F16 or TC_BF16), computed in f32 and rounded once to the dtype. out may be an input exactly;
 * partial overlap is rejected. */
tc_status tc_cuda_add(const void *a, const void *b, void *out, tc_dtype dtype, int64_t n,
                      void *stream, tc_error *err);
tc_status tc_cuda_mul(const void *a, const void *b, void *out, tc_dtype dtype, int64_t n,
                      void *stream, tc_error *err);
/* max(x, 0) with NaN propagated, as torch.relu. */
tc_status tc_cuda_relu(const void *x, void *out, tc_dtype dtype, int64_t n, void *stream,
                       tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
