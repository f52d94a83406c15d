/* C-callable launchers for the reduction kernels (sum, prod, extrema and their indices, variance
 * passes, any/all), cumsum and softmax, and the strided copy and dtype conversion that bring an
 * input into the [outer, R, inner] form they read. Pointers are device pointers; `stream` is a
 * cudaStream_t as void*. Launch configurations depend on the shapes alone, and no kernel uses
 * atomics, so a result is the same on every run. */
#ifndef TC_BACKEND_CUDA_KERNELS_REDUCE_H
#define TC_BACKEND_CUDA_KERNELS_REDUCE_H

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

/* What each output folds its reduced elements into. */
typedef enum {
    TC_CUDA_RED_SUM,
    TC_CUDA_RED_PROD,
    TC_CUDA_RED_MAX,    /* NaN wins, as torch.amax */
    TC_CUDA_RED_MIN,
    TC_CUDA_RED_ARGMAX, /* first index of the largest (a NaN counts as largest) */
    TC_CUDA_RED_ARGMIN,
    TC_CUDA_RED_SQDEV,  /* sum of (x - mean[o])^2, float domain only */
    TC_CUDA_RED_ANY,    /* integer domain only: x != 0 */
    TC_CUDA_RED_ALL
} tc_cuda_red_op;

/* What an output receives from its folded state. */
typedef enum {
    TC_CUDA_FIN_VALUE,       /* y[o] = value */
    TC_CUDA_FIN_MEAN,        /* y[o] = value / R */
    TC_CUDA_FIN_VAR,         /* y[o] = value / divisor (in double) */
    TC_CUDA_FIN_INDEX,       /* idx[o] = index */
    TC_CUDA_FIN_VALUE_INDEX  /* both */
} tc_cuda_red_fin;

/* One reduction of a contiguous input viewed as [outer, R, inner] into outer * inner outputs
 * (output o = oo * inner + i). The domain follows x_dtype: f32/f16/bf16 reduce in f32, and
 * i64/i32/i8/u8/bool exactly in int64 (sums and products wrap). y_dtype is f32/f16/bf16 for the
 * float domain and i64/i32/i8/u8/bool for the integer domain. */
typedef struct tc_cuda_reduce_args {
    tc_cuda_red_op op;
    tc_cuda_red_fin fin;
    int64_t outer, R, inner;
    const void *x;
    tc_dtype x_dtype;
    void *y; /* values (unused for FIN_INDEX) */
    tc_dtype y_dtype;
    int64_t *idx;      /* FIN_INDEX, FIN_VALUE_INDEX */
    const float *mean; /* SQDEV: one per output */
    double divisor;    /* FIN_VAR */
    void *partial;     /* tc_cuda_reduce_scratch_bytes() bytes, when that is not 0 */
} tc_cuda_reduce_args;

/* Scratch the reduction needs for splitting long reductions over several blocks (0 when none). */
size_t tc_cuda_reduce_scratch_bytes(const tc_cuda_reduce_args *a);
tc_status tc_cuda_reduce(const tc_cuda_reduce_args *a, void *stream, tc_error *err);

/* Inclusive prefix sums along the middle dim of [outer, n, inner]: f32 accumulation for
 * x in f32/f16/bf16 (y f32/f16/bf16), wrapping int64 for x in i64/i32/i8/u8/bool (y
 * i64/i32/i8/u8). */
tc_status tc_cuda_cumsum(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t outer, int64_t n,
                         int64_t inner, void *stream, tc_error *err);

/* Softmax (or log-softmax) along the middle dim of [outer, n, inner], in f32 with max
 * subtraction. x f32/f16/bf16; y the same dtype, or f32 (half_to_float). */
tc_status tc_cuda_softmax(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t outer, int64_t n,
                          int64_t inner, bool log_form, void *stream, tc_error *err);

/* y[j] = x[sum_d j_d * strides[d]] over the row-major positions j of dims (rank <= TC_MAX_RANK),
 * for elements of elem_size 1, 2, 4 or 8 bytes. Strides are in elements. */
tc_status tc_cuda_strided_copy(const void *x, void *y, size_t elem_size, int rank, const int64_t *dims,
                               const int64_t *strides, void *stream, tc_error *err);

/* n elements converted with PyTorch's casting (float to integer truncates toward zero, NaN
 * gives INT64_MIN, anything to bool is != 0). x_dtype: any but f64/f8e4m3; y_dtype: f32, i64
 * or bool. */
tc_status tc_cuda_convert(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t n, void *stream,
                          tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
