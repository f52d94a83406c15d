/* C-callable launchers of the shape/copy family: one strided gather (permute, expand, slice,
 * select, repeat, transpose, split) and a converting 2-D copy (cat, _to_copy) with the CPU
 * backend's casting rules. Glue in backend/cuda/shape.c. */
#ifndef TC_BACKEND_CUDA_KERNELS_SHAPE_H
#define TC_BACKEND_CUDA_KERNELS_SHAPE_H

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

/* repeat views each dim as (repeat, size): up to twice the tensor rank */
#define TC_CUDA_COPY_MAX_RANK (2 * TC_MAX_RANK)

/* dst (contiguous, C order over dims[0..rank)) gets src[base + sum_k i_k * strides[k]] for every
 * index (i_0, ...), elements of esize bytes (1, 2, 4 or 8). Strides and base are in elements and
 * must not be negative; dst must not overlap src. Size-1 dims are dropped and contiguous dims
 * merged first, and contiguous rows move in 16-byte units where alignment allows. */
tc_status tc_cuda_gather_copy(const void *src, void *dst, size_t esize, int rank, const int64_t *dims,
                               const int64_t *strides, int64_t base, void *stream, tc_error *err);

/* dst[r * dst_ld + c] = src[r * src_ld + c] converted from st to dt (tc_convert's rules: float to
 * int truncates toward zero with NaN and overflow as core/dtype.c handles them, anything to bool
 * is != 0, f8e4m3 rounds to nearest even and saturates) for r < rows, c < cols. Leading
 * dimensions are in elements. st == dt is a plain copy. */
tc_status tc_cuda_convert_2d(const void *src, tc_dtype st, int64_t src_ld, void *dst, tc_dtype dt, int64_t dst_ld,
                             int64_t rows, int64_t cols, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
