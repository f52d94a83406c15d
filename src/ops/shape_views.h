/* The shape ops that read their input through a strided view (permute, t, transpose.int, expand,
 * repeat, slice.Tensor, select.int), computed the same way for every backend from the node's
 * arguments and this run's concrete sizes: the backend then gathers
 *   y[i0, ..., i(r-1)] = x[base + i0 * strides[0] + ... + i(r-1) * strides[r-1]]
 * from the contiguous input into the contiguous output (repeat's view has two dims per output dim). */
#ifndef TC_OPS_SHAPE_VIEWS_H
#define TC_OPS_SHAPE_VIEWS_H

#include "ops/op.h"

#define TC_VIEW_MAX_RANK (2 * TC_MAX_RANK)

typedef struct tc_gather_view {
    int rank;
    int64_t dims[TC_VIEW_MAX_RANK];
    int64_t strides[TC_VIEW_MAX_RANK];
    int64_t base;
} tc_gather_view;

/* The view of node n (one of the ops above) for an input of x_rank / x_dims and an output of
 * y_rank / y_dims. Sizes that were symbolic at build time are checked against the arguments here:
 * TC_ERR_SHAPE (or TC_ERR_INVALID_ARGUMENT for a slice step below 1) with a message that the
 * caller prefixes with the node. */
tc_status tc_shape_gather_view(const tc_graph *g, const tc_node *n, const int64_t *symvals, int x_rank,
                               const int64_t *x_dims, int y_rank, const int64_t *y_dims, tc_gather_view *v,
                               tc_error *err);

/* Zero-copy views (the CUDA executor's). tc_shape_is_view_op: the ops whose output is a strided
 * view of their input's memory: the ops above but repeat, and the ops that keep the element order
 * (view, _unsafe_view, reshape, flatten, squeeze, unsqueeze, clone, alias, detach, contiguous,
 * lift_fresh_copy, and _to_copy when it keeps the dtype, which the caller checks).
 * tc_shape_strided_view: for an input that is itself the view mem[x_base + sum i_d x_strides[d]],
 * the output's strides and base over the same memory; false when the output is not one strided
 * view of it (a reshape that splits or merges dims across a stride jump), for an error in the
 * arguments (which the op's own kernel then reports) and for a tensor without elements.
 * tc_shape_reshape_strides: the strides of a reshape to y_dims of the view (x_dims, x_strides),
 * false when there are none. tc_shape_is_contiguous: whether strides are C order for dims (dims
 * of size 1 may have any stride). */
bool tc_shape_is_view_op(int op);
bool tc_shape_strided_view(const tc_graph *g, const tc_node *n, const int64_t *symvals, int x_rank,
                           const int64_t *x_dims, const int64_t *x_strides, int64_t x_base, int y_rank,
                           const int64_t *y_dims, int64_t *y_strides, int64_t *y_base);
bool tc_shape_reshape_strides(int x_rank, const int64_t *x_dims, const int64_t *x_strides, int y_rank,
                              const int64_t *y_dims, int64_t *y_strides);
bool tc_shape_is_contiguous(int rank, const int64_t *dims, const int64_t *strides);
/* The strides of a C-order tensor of dims. */
void tc_shape_contiguous_strides(int rank, const int64_t *dims, int64_t *st);

/* split_with_sizes / split.Tensor / cat along dim d of a contiguous tensor: the product of the
 * dims before d and after d. */
void tc_shape_outer_inner(int rank, const int64_t *dims, int d, int64_t *outer, int64_t *inner);

#endif
