/* Arguments of the fill and arange ops read the same way by every backend. */
#ifndef TC_OPS_INDEX_PARAMS_H
#define TC_OPS_INDEX_PARAMS_H

#include "ops/attention_params.h" /* tc_shape_ref */
#include "ops/op.h"

/* A Scalar argument as one element of dtype dt (elem must hold 8 bytes). */
void tc_scalar_to_elem(const tc_arg *s, tc_dtype dt, void *elem);

/* Argument pos of arange (a Scalar; pos < 0: absent, dflt), with symbolic ints evaluated for this
 * run: its value, whether it is integral, and then its int64 value. */
double tc_arange_arg(const tc_graph *g, const tc_node *n, const int64_t *symvals, int pos, double dflt, bool *is_int,
                     int64_t *iv);

/* index.Tensor: x[i0, ..., idx_a[...], ..., idx_b[...], ...] with some dims indexed by tensors that
 * broadcast together. The output's leading "row" dims (before the trailing dims copied whole) come
 * from x's dims (rowsrc >= 0) or from the broadcast index shape (rowsrc = -1 - m for its dim m):
 * x's dims before the indexed ones then the index shape when the indexed dims are adjacent, else
 * the index shape first (PyTorch's rule). Per index tensor: the dim of x it indexes and its strides
 * over the broadcast index shape (0 along broadcast dims). */
typedef struct tc_index_geom {
    int n_idx, brank, n_rowdims;
    int idx_dim[TC_MAX_RANK];
    int src[TC_MAX_RANK];                    /* per index: its position in the node's index list */
    int64_t bdims[TC_MAX_RANK];
    int64_t istr[TC_MAX_RANK][TC_MAX_RANK];
    int rowsrc[TC_MAX_RANK];
    int64_t rowdims[TC_MAX_RANK];
    int64_t inner;                           /* elements of x copied whole per row */
} tc_index_geom;

/* idx[k] is the shape of entry k of the index list (rank < 0: None), n entries; y the output.
 * TC_ERR_SHAPE with a message (the caller prefixes the node) when the index shapes do not broadcast
 * or do not give y's shape. */
tc_status tc_index_geometry(tc_shape_ref x, const tc_shape_ref *idx, int n, tc_shape_ref y, tc_index_geom *g,
                            tc_error *err);

#endif
