/* Shape and dtype inference for the activation ops: the output has the input's shape; which
 * dtypes each op accepts follows PyTorch's CPU kernels. */
#include "ops/op.h"
#include "core/dtype.h"

#include <string.h>

/* relu and hardtanh run on integers too (not on bool). */
tc_status tc_infer_act_int_or_float(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->dtype == TC_BOOL || x->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "%s inputs are not supported", tc_dtype_name(x->dtype));
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    return TC_OK;
}

/* sigmoid of an integer or bool tensor gives the default float type. */
tc_status tc_infer_act_to_float(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->dtype == TC_F8E4M3) return tc_infer_fail(c, TC_ERR_DTYPE, "f8e4m3 inputs are not supported");
    tc_infer_set(c, 0, tc_dtype_is_float(x->dtype) ? x->dtype : TC_F32, x->rank, x->dims);
    return TC_OK;
}

tc_status tc_infer_act_float(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!tc_dtype_is_float(x->dtype) || x->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "expects a floating-point input (f32, f16, bf16, f64), got %s",
                             tc_dtype_name(x->dtype));
    if (c->node->op == TC_OP_GELU) {
        const char *a = tc_node_str(c->node, 1);
        if (!a || (strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0))
            return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "approximate must be 'none' or 'tanh', got '%s'",
                                 a ? a : "None");
    }
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    return TC_OK;
}
