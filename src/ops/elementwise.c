/* Shape and dtype inference for elementwise ops. */
#include "ops/op.h"
#include "core/dtype.h"

#include <string.h>

const int tc_broadcast_ops[] = {
    TC_OP_ADD_TENSOR, TC_OP_ADD_SCALAR, TC_OP_SUB_TENSOR, TC_OP_SUB_SCALAR, TC_OP_MUL_TENSOR, TC_OP_MUL_SCALAR,
    TC_OP_DIV_TENSOR, TC_OP_DIV_SCALAR, TC_OP_DIV_TENSOR_MODE, TC_OP_DIV_SCALAR_MODE, TC_OP_POW_TENSOR_SCALAR,
    TC_OP_POW_TENSOR_TENSOR, TC_OP_POW_SCALAR, TC_OP_MAXIMUM, TC_OP_MINIMUM, TC_OP_REMAINDER_TENSOR,
    TC_OP_REMAINDER_SCALAR, TC_OP_EQ_TENSOR, TC_OP_EQ_SCALAR, TC_OP_NE_TENSOR, TC_OP_NE_SCALAR, TC_OP_LT_TENSOR,
    TC_OP_LT_SCALAR, TC_OP_LE_TENSOR, TC_OP_LE_SCALAR, TC_OP_GT_TENSOR, TC_OP_GT_SCALAR, TC_OP_GE_TENSOR,
    TC_OP_GE_SCALAR, TC_OP_LOGICAL_AND, TC_OP_LOGICAL_OR, TC_OP_LOGICAL_XOR, TC_OP_BITWISE_AND_TENSOR,
    TC_OP_BITWISE_AND_SCALAR, TC_OP_BITWISE_OR_TENSOR, TC_OP_BITWISE_OR_SCALAR, TC_OP_BITWISE_XOR_TENSOR,
    TC_OP_BITWISE_XOR_SCALAR, TC_OP_WHERE_SELF, TC_OP_CLAMP, TC_OP_CLAMP_TENSOR, TC_OP_CLAMP_MIN,
    TC_OP_CLAMP_MAX};
const int tc_n_broadcast_ops = (int)(sizeof tc_broadcast_ops / sizeof tc_broadcast_ops[0]);

bool tc_op_is_broadcast(int op) {
    for (int i = 0; i < tc_n_broadcast_ops; i++)
        if (tc_broadcast_ops[i] == op) return true;
    return false;
}

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

/* --- binary and ternary ops ------------------------------------------------------------------ */

/* Feeds the tensor and Scalar arguments at the given schema positions into type promotion and
 * broadcasting (absent optional arguments are skipped). Returns false after recording a failure. */
static bool gather_operands(tc_infer_ctx *c, int n, const int *pos, tc_promote *p, int *rank, tc_dim *dims) {
    tc_promote_init(p);
    *rank = 0;
    for (int k = 0; k < n; k++) {
        const tc_arg *a = tc_node_arg_at(c->node, pos[k]);
        if (a->kind == TC_ARG_NONE) continue;
        if (a->kind != TC_ARG_TENSOR) {
            tc_promote_scalar(p, a);
            continue;
        }
        const tc_value *v = a->u.tensor;
        if (v->dtype == TC_F8E4M3) {
            tc_infer_fail(c, TC_ERR_DTYPE, "f8e4m3 operands are not supported (argument '%s')", a->name);
            return false;
        }
        tc_promote_tensor(p, v);
        tc_dim tmp[TC_MAX_RANK];
        int r;
        if (!tc_infer_broadcast(c, *rank, dims, v->rank, v->dims, &r, tmp)) return false;
        for (int d = 0; d < r; d++) dims[d] = tmp[d];
        *rank = r;
    }
    return true;
}

static bool is_bool_operand(const tc_node *n, int i) {
    const tc_arg *a = tc_node_arg_at(n, i);
    if (a->kind == TC_ARG_TENSOR) return ((const tc_value *)a->u.tensor)->dtype == TC_BOOL;
    return a->kind == TC_ARG_BOOL;
}

/* add, sub, mul, maximum, minimum, remainder and the bitwise ops: the promoted type. */
tc_status tc_infer_binary_arith(tc_infer_ctx *c) {
    static const int pos[] = {0, 1};
    const tc_node *n = c->node;
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, 2, pos, &p, &rank, dims)) return c->status;
    tc_dtype t = tc_promote_result(&p);
    switch (n->op) {
    case TC_OP_SUB_TENSOR:
    case TC_OP_SUB_SCALAR:
        if (is_bool_operand(n, 0) || is_bool_operand(n, 1))
            return tc_infer_fail(c, TC_ERR_DTYPE, "subtraction with a bool operand is not supported "
                                                  "(use logical_xor or logical_not)");
        /* fall through */
    case TC_OP_ADD_TENSOR:
    case TC_OP_ADD_SCALAR: {
        const tc_arg *alpha = tc_node_arg_at(n, 2);
        if (alpha->kind == TC_ARG_FLOAT && !tc_dtype_is_float(t))
            return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "alpha must not be a floating-point number for %s "
                                 "operands", tc_dtype_name(t));
        if (alpha->kind == TC_ARG_BOOL && t != TC_BOOL)
            return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "a bool alpha is only supported for bool results");
        break;
    }
    case TC_OP_REMAINDER_TENSOR:
    case TC_OP_REMAINDER_SCALAR:
        if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "not defined for bool operands");
        break;
    case TC_OP_BITWISE_AND_TENSOR:
    case TC_OP_BITWISE_AND_SCALAR:
    case TC_OP_BITWISE_OR_TENSOR:
    case TC_OP_BITWISE_OR_SCALAR:
    case TC_OP_BITWISE_XOR_TENSOR:
    case TC_OP_BITWISE_XOR_SCALAR:
        if (tc_dtype_is_float(t))
            return tc_infer_fail(c, TC_ERR_DTYPE, "expects integer or bool operands, got %s", tc_dtype_name(t));
        break;
    default: break;
    }
    tc_infer_set(c, 0, t, rank, dims);
    return TC_OK;
}

/* True division gives the default float type for integer operands; rounding modes keep the type. */
tc_status tc_infer_binary_div(tc_infer_ctx *c) {
    static const int pos[] = {0, 1};
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, 2, pos, &p, &rank, dims)) return c->status;
    tc_dtype t = tc_promote_result(&p);
    const char *mode = NULL;
    if (c->node->op == TC_OP_DIV_TENSOR_MODE || c->node->op == TC_OP_DIV_SCALAR_MODE) {
        mode = tc_node_str(c->node, 2);
        if (mode && strcmp(mode, "trunc") != 0 && strcmp(mode, "floor") != 0)
            return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT,
                                 "rounding_mode must be None, 'trunc' or 'floor', got '%s'", mode);
    }
    if (!mode) t = tc_dtype_is_float(t) ? t : TC_F32;
    else if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "rounding division is not defined for bool operands");
    tc_infer_set(c, 0, t, rank, dims);
    return TC_OK;
}

tc_status tc_infer_binary_pow(tc_infer_ctx *c) {
    static const int pos[] = {0, 1};
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, 2, pos, &p, &rank, dims)) return c->status;
    tc_dtype t = tc_promote_result(&p);
    /* PyTorch takes a bool tensor to a bool power (x**True is x, x**False is 1) but not a bool tensor */
    if (t == TC_BOOL && c->node->op != TC_OP_POW_TENSOR_SCALAR)
        return tc_infer_fail(c, TC_ERR_DTYPE, "not defined for bool operands");
    if (c->node->op == TC_OP_POW_TENSOR_SCALAR && !tc_dtype_is_float(t) && tc_node_scalar_is_int(c->node, 1) &&
        tc_node_int(c->node, 1) < 0)
        return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "integers to negative integer powers are not allowed");
    tc_infer_set(c, 0, t, rank, dims);
    return TC_OK;
}

/* Comparisons and logical ops: bool results. */
tc_status tc_infer_binary_bool(tc_infer_ctx *c) {
    static const int pos[] = {0, 1};
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, 2, pos, &p, &rank, dims)) return c->status;
    tc_infer_set(c, 0, TC_BOOL, rank, dims);
    return TC_OK;
}

tc_status tc_infer_bitwise_not(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!tc_dtype_is_int(x->dtype) && x->dtype != TC_BOOL)
        return tc_infer_fail(c, TC_ERR_DTYPE, "expects an integer or bool input, got %s", tc_dtype_name(x->dtype));
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    return TC_OK;
}

tc_status tc_infer_where(tc_infer_ctx *c) {
    static const int pos[] = {0, 1, 2};
    const tc_value *cond = tc_node_tensor(c->node, 0);
    if (cond->dtype != TC_BOOL && cond->dtype != TC_U8)
        return tc_infer_fail(c, TC_ERR_DTYPE, "condition must be a bool tensor, got %s", tc_dtype_name(cond->dtype));
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, 3, pos, &p, &rank, dims)) return c->status;
    /* the condition takes part in broadcasting but not in type promotion */
    tc_promote_init(&p);
    tc_promote_tensor(&p, tc_node_tensor(c->node, 1));
    tc_promote_tensor(&p, tc_node_tensor(c->node, 2));
    tc_infer_set(c, 0, tc_promote_result(&p), rank, dims);
    return TC_OK;
}

/* clamp, clamp.Tensor, clamp_min, clamp_max: bounds take part in promotion and broadcasting. */
tc_status tc_infer_clamp(tc_infer_ctx *c) {
    int pos[] = {0, 1, 2};
    int n = c->node->op == TC_OP_CLAMP_MIN || c->node->op == TC_OP_CLAMP_MAX ? 2 : 3;
    if (n == 3 && tc_node_is_none(c->node, 1) && tc_node_is_none(c->node, 2))
        return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "at least one of 'min' or 'max' must not be None");
    tc_promote p;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    if (!gather_operands(c, n, pos, &p, &rank, dims)) return c->status;
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (c->node->op != TC_OP_CLAMP_TENSOR) {
        /* scalar bounds never change the rank */
        rank = x->rank;
        for (int d = 0; d < rank; d++) dims[d] = x->dims[d];
    }
    tc_dtype t = tc_promote_result(&p);
    if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "not defined for bool results");
    tc_infer_set(c, 0, t, rank, dims);
    return TC_OK;
}
