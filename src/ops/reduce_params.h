/* What a reduce node asks for, read the same way by every backend: the dims it reduces, and the
 * input regrouped into kept and reduced dim groups for a kernel's loops. */
#ifndef TC_OPS_REDUCE_PARAMS_H
#define TC_OPS_REDUCE_PARAMS_H

#include "ops/op.h"

/* red[d] for d < rank: whether node n (a reduce-family op, validated by shape inference) reduces
 * dim d of its input: dim lists, a single dim, None or an empty list for all (but not for
 * any.dims / all.dims, whose empty list reduces nothing). */
void tc_reduce_dims(const tc_node *n, int rank, bool *red);

/* The input as kept and reduced dim groups (outer to inner), adjacent dims of one kind merged and
 * size-1 dims dropped, with their sizes and C-order strides. With one reduced group the input is
 * [outer, R, inner], inner = rs[0]. A reduction over nothing has one reduced group of size 1. */
typedef struct tc_reduce_layout {
    int nk, nr;
    int64_t kd[TC_MAX_RANK], ks[TC_MAX_RANK];
    int64_t rd[TC_MAX_RANK], rs[TC_MAX_RANK];
    int64_t n_out, n_red;
} tc_reduce_layout;

void tc_reduce_layout_make(int rank, const int64_t *dims, const bool *red, tc_reduce_layout *L);

#endif
