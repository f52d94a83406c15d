/* C-callable launchers of the index family: rows picked by index (embedding, index_select),
 * gather along a dim, advanced indexing (index.Tensor), and the creation ops (fill, arange).
 * Glue in backend/cuda/index.c.
 * Index values are checked inside the kernels: one outside its dim never causes a read out of
 * bounds; the element or row it would have produced is written as zeros and, when err_flag is
 * not NULL, 1 is ORed into that device word so that a later check can report it. */
#ifndef TC_BACKEND_CUDA_KERNELS_INDEX_H
#define TC_BACKEND_CUDA_KERNELS_INDEX_H

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

/* For o < outer and k < n_idx: dst row (o * n_idx + k) = src row (o * src_rows + idx[k]), rows of
 * row_bytes bytes; idx is TC_I32 or TC_I64 and must lie in [0, src_rows). */
tc_status tc_cuda_index_rows(const void *src, void *dst, size_t row_bytes, const void *idx, tc_dtype idx_t,
                             int64_t n_idx, int64_t outer, int64_t src_rows, unsigned int *err_flag, void *stream,
                             tc_error *err);

/* torch.gather: y has the index's shape (ydims, contiguous); y[c] = x[c with c[dim] = idx[c]]
 * where x has element strides xstrides and size size_d along dim. rank 0 reads x[0]. */
typedef struct tc_cuda_gather_args {
    int rank;
    int dim;
    int64_t ydims[TC_MAX_RANK];
    int64_t xstrides[TC_MAX_RANK];
    int64_t size_d;
    int64_t numel;
} tc_cuda_gather_args;
tc_status tc_cuda_gather_dim(const void *x, void *y, size_t esize, const void *idx, tc_dtype idx_t,
                             const tc_cuda_gather_args *a, unsigned int *err_flag, void *stream, tc_error *err);

/* index.Tensor, laid out as backend/cpu/index.c plans it: output row r (of inner_bytes bytes)
 * has coordinates over rowdims; rowsrc[k] >= 0 names the x dim that row dim k walks, rowsrc[k] < 0
 * names dim -1 - rowsrc[k] of the broadcast index shape. Index tensor t (i32/i64, contiguous)
 * indexes x dim idx_dim[t] of size idx_size[t], with strides istr[t] over the broadcast shape;
 * negative values count from the end. */
typedef struct tc_cuda_index_args {
    int n_rowdims;
    int64_t rowdims[TC_MAX_RANK];
    int rowsrc[TC_MAX_RANK];
    int64_t xs[TC_MAX_RANK];             /* element strides of x */
    int n_idx;
    int brank;
    int idx_dim[TC_MAX_RANK];
    const void *idx[TC_MAX_RANK];
    tc_dtype idx_t[TC_MAX_RANK];
    int64_t idx_size[TC_MAX_RANK];
    int64_t istr[TC_MAX_RANK][TC_MAX_RANK];
    int64_t rows;
    size_t inner_bytes;
} tc_cuda_index_args;
tc_status tc_cuda_index_tensor(const void *x, void *y, size_t esize, const tc_cuda_index_args *a,
                               unsigned int *err_flag, void *stream, tc_error *err);

/* n elements of esize (1, 2, 4 or 8) bytes, each the first esize bytes of *elem. */
tc_status tc_cuda_fill(void *dst, size_t esize, const void *elem, int64_t n, void *stream, tc_error *err);

/* dst[i] = start + step * i as the CPU computes it: int64 from istart/istep for integer dtypes,
 * f32 arithmetic for f16/bf16, f64 arithmetic for f32/f64; rounded once to dt. */
tc_status tc_cuda_arange(void *dst, tc_dtype dt, int64_t n, double start, double step, int64_t istart,
                         int64_t istep, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
