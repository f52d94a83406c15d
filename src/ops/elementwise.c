/* Shape and dtype inference for elementwise ops. */
#include "ops/op.h"
#include "core/dtype.h"

tc_status tc_infer_unary(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    return TC_OK;
}

/* Math functions of integers give the default float type, as in PyTorch. */
tc_status tc_infer_unary_float(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_dtype t = tc_dtype_is_float(x->dtype) ? x->dtype : TC_F32;
    tc_infer_set(c, 0, t, x->rank, x->dims);
    return TC_OK;
}

tc_status tc_infer_unary_bool(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_infer_set(c, 0, TC_BOOL, x->rank, x->dims);
    return TC_OK;
}
