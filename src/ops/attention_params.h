/* What a scaled_dot_product_attention node computes, read the same way by every backend from its
 * arguments and this run's concrete shapes: the sizes, the batch broadcast strides of each operand
 * (contiguous tensors; 0 along a broadcast dim), grouped-query heads, the mask's strides, causal
 * masking and the scale. */
#ifndef TC_OPS_ATTENTION_PARAMS_H
#define TC_OPS_ATTENTION_PARAMS_H

#include "ops/op.h"

typedef struct tc_shape_ref {
    int rank;
    const int64_t *dims;
} tc_shape_ref;

typedef struct tc_sdpa_geom {
    int64_t L, S, E, Ev;
    int rb;                  /* batch rank of the output */
    int64_t ob[TC_MAX_RANK]; /* output batch dims */
    int64_t qs[TC_MAX_RANK], ks[TC_MAX_RANK], vs[TC_MAX_RANK], ms[TC_MAX_RANK]; /* per batch dim */
    int64_t k_rep, v_rep;    /* GQA: query heads per key/value head on the last batch dim */
    int64_t mask_ls, mask_ss; /* mask strides along L and S */
    bool causal;
    float scale;
} tc_sdpa_geom;

/* The geometry for query q, key k, value v, output y and the mask (NULL: none); TC_ERR_SHAPE with
 * a message (the caller prefixes the node) when sizes that were symbolic at build time disagree. */
tc_status tc_sdpa_geometry(const tc_node *n, tc_shape_ref q, tc_shape_ref k, tc_shape_ref v, tc_shape_ref y,
                           const tc_shape_ref *mask, tc_sdpa_geom *g, tc_error *err);

#endif
