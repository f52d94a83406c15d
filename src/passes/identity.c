/* Identity nodes: alias, detach and lift_fresh_copy; view, reshape, _unsafe_view and flatten to
 * the input's own shape; _to_copy to the input's own dtype; and clone or contiguous of a tensor
 * that a computing node, an input or a constant gives (eval-mode dropout exports as such a clone).
 * Their readers read the input instead, so that fusion sees the product and the add, the
 * convolution and the relu, next to each other. A clone or contiguous of a view-like node's output
 * stays: there it is where the view is made contiguous, once, and backends keep it as that. */
#include "passes/passes.h"
#include "ops/shape_views.h"

static bool same_dims(const tc_value *a, const tc_value *b) {
    if (a->rank != b->rank || a->dtype != b->dtype) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

static bool identity(const tc_node *n) {
    if (n->n_outputs != 1 || n->n_inputs < 1 || !n->inputs[0]) return false;
    const tc_value *x = n->inputs[0], *y = n->outputs[0];
    if (!same_dims(x, y)) return false;
    switch (n->op) {
    case TC_OP_ALIAS:
    case TC_OP_DETACH:
    case TC_OP_LIFT_FRESH_COPY:
    case TC_OP_VIEW:
    case TC_OP_UNSAFE_VIEW:
    case TC_OP_RESHAPE:
    case TC_OP_FLATTEN_USING_INTS: return true;
    case TC_OP_CLONE:
    case TC_OP_CONTIGUOUS:
    case TC_OP_TO_COPY: return x->kind != TC_VALUE_NODE || !tc_shape_is_view_op(x->producer->op);
    default: return false;
    }
}

static tc_status identity_node(tc_rewriter *rw, const tc_node *n, void *user) {
    (void)user;
    if (!identity(n)) return tc_rw_copy_node(rw, n);
    tc_value *x = tc_rw_get(rw, n->inputs[0]);
    if (!x) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    tc_rw_set(rw, n->outputs[0], x);
    rw->changed++;
    return TC_OK;
}

tc_status tc_pass_identity(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    (void)o;
    tc_rewrite_hooks hooks = {.node = identity_node};
    return tc_rewrite(g, &hooks, out, changed, err);
}
