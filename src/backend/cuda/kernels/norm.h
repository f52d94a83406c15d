/* C-callable launchers for the normalization kernels (batch norm with running statistics, layer
 * norm, group norm). Statistics are computed in f32 (two passes: the mean, then the mean squared
 * deviation) and every output is rounded once. Pointers are device pointers; `stream` is a
 * cudaStream_t as void*. */
#ifndef TC_BACKEND_CUDA_KERNELS_NORM_H
#define TC_BACKEND_CUDA_KERNELS_NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/error.h"
#include "tensorc.h"

/* An optional per-channel parameter vector in f32, f16 or bf16; data NULL when absent. */
typedef struct tc_cuda_norm_param {
    const void *data;
    tc_dtype dtype;
} tc_cuda_norm_param;

/* x, y: [N, C, inner] in dtype (f32/f16/bf16). y = x * s[c] + t[c] with invstd = 1/sqrt(rv + eps),
 * s = w * invstd, t = b - rm * s. save_mean = rm and save_invstd = invstd (f32, C each).
 * scale_shift: 2 * C floats of device scratch. running_mean and running_var are required. */
tc_status tc_cuda_batch_norm(const void *x, void *y, tc_dtype dtype, int64_t N, int64_t C, int64_t inner,
                             tc_cuda_norm_param w, tc_cuda_norm_param b, tc_cuda_norm_param running_mean,
                             tc_cuda_norm_param running_var, float eps, float *save_mean, float *save_invstd,
                             float *scale_shift, void *stream, tc_error *err);

/* x, y: [rows, n] in dtype; w and b (each optional) hold n values in w_dtype, which is dtype or
 * f32. mean and rstd: rows f32 values each. An empty row gives mean 0 and rstd NaN. */
tc_status tc_cuda_layer_norm(const void *x, void *y, tc_dtype dtype, int64_t rows, int64_t n, const void *w,
                             const void *b, tc_dtype w_dtype, float eps, float *mean, float *rstd, void *stream,
                             tc_error *err);

/* x, y: [N, C, hw] in dtype, C divisible by G. mean and rstd: [N, G] in dtype. */
tc_status tc_cuda_group_norm(const void *x, void *y, tc_dtype dtype, int64_t N, int64_t C, int64_t hw, int64_t G,
                             tc_cuda_norm_param w, tc_cuda_norm_param b, float eps, void *mean, void *rstd,
                             void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
