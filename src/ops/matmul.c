/* Shape and dtype inference for the matrix products: mm, bmm, addmm and linear. Operands must
 * share one dtype (PyTorch does not promote here); contraction sizes must agree where known. */
#include "ops/op.h"
#include "core/dtype.h"

static const char *type_str(tc_infer_ctx *c, const tc_value *v, char *buf, size_t n) {
    return tc_value_type_string(c->g, v, buf, n);
}

/* Fails unless a and b can be the same size (symbolic dims are checked when the graph runs). */
static bool same_dim(tc_infer_ctx *c, tc_dim a, tc_dim b, const char *what, const tc_value *x,
                     const tc_value *y) {
    if (a == b || TC_DIM_IS_SYM(a) || TC_DIM_IS_SYM(b)) return true;
    char b1[128], b2[128];
    tc_infer_fail(c, TC_ERR_SHAPE, "%s do not match: %s and %s", what, type_str(c, x, b1, sizeof b1),
                  type_str(c, y, b2, sizeof b2));
    return false;
}

static bool check_dtypes(tc_infer_ctx *c, const tc_value *a, const tc_value *b) {
    if (a->dtype != b->dtype) {
        tc_infer_fail(c, TC_ERR_DTYPE, "operands must have the same dtype, got %s and %s",
                      tc_dtype_name(a->dtype), tc_dtype_name(b->dtype));
        return false;
    }
    if (a->dtype == TC_BOOL || a->dtype == TC_F8E4M3) {
        tc_infer_fail(c, TC_ERR_DTYPE, "not defined for %s tensors", tc_dtype_name(a->dtype));
        return false;
    }
    return true;
}

static bool check_rank(tc_infer_ctx *c, const tc_value *v, int rank, const char *name) {
    if (v->rank == rank) return true;
    char b[128];
    tc_infer_fail(c, TC_ERR_SHAPE, "%s must be a %d-D tensor, got %s", name, rank, type_str(c, v, b, sizeof b));
    return false;
}

tc_status tc_infer_mm(tc_infer_ctx *c) {
    const tc_value *a = tc_node_tensor(c->node, 0), *b = tc_node_tensor(c->node, 1);
    if (!check_rank(c, a, 2, "self") || !check_rank(c, b, 2, "mat2") || !check_dtypes(c, a, b) ||
        !same_dim(c, a->dims[1], b->dims[0], "inner dimensions", a, b))
        return c->status;
    tc_dim out[2] = {a->dims[0], b->dims[1]};
    tc_infer_set(c, 0, a->dtype, 2, out);
    return TC_OK;
}

tc_status tc_infer_bmm(tc_infer_ctx *c) {
    const tc_value *a = tc_node_tensor(c->node, 0), *b = tc_node_tensor(c->node, 1);
    if (!check_rank(c, a, 3, "self") || !check_rank(c, b, 3, "mat2") || !check_dtypes(c, a, b) ||
        !same_dim(c, a->dims[0], b->dims[0], "batch sizes", a, b) ||
        !same_dim(c, a->dims[2], b->dims[1], "inner dimensions", a, b))
        return c->status;
    tc_dim out[3] = {a->dims[0], a->dims[1], b->dims[2]};
    tc_infer_set(c, 0, a->dtype, 3, out);
    return TC_OK;
}

tc_status tc_infer_addmm(tc_infer_ctx *c) {
    const tc_value *s = tc_node_tensor(c->node, 0), *a = tc_node_tensor(c->node, 1),
                   *b = tc_node_tensor(c->node, 2);
    if (!check_rank(c, a, 2, "mat1") || !check_rank(c, b, 2, "mat2") || !check_dtypes(c, a, b) ||
        !check_dtypes(c, s, a) || !same_dim(c, a->dims[1], b->dims[0], "inner dimensions", a, b))
        return c->status;
    tc_dim out[2] = {a->dims[0], b->dims[1]};
    if (s->rank > 2) {
        char buf[128];
        return tc_infer_fail(c, TC_ERR_SHAPE, "self %s cannot be broadcast to the product's 2 dims",
                             type_str(c, s, buf, sizeof buf));
    }
    /* self must broadcast to [M, N] without growing it */
    for (int i = 0; i < s->rank; i++) {
        tc_dim d = s->dims[i], want = out[2 - s->rank + i];
        if (d != 1 && d != want && !TC_DIM_IS_SYM(d) && !TC_DIM_IS_SYM(want)) {
            char buf[128];
            return tc_infer_fail(c, TC_ERR_SHAPE, "self %s cannot be broadcast to [%lld, %lld]",
                                 type_str(c, s, buf, sizeof buf), (long long)out[0], (long long)out[1]);
        }
    }
    tc_infer_set(c, 0, a->dtype, 2, out);
    return TC_OK;
}

tc_status tc_infer_linear(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0), *w = tc_node_tensor(c->node, 1),
                   *bias = tc_node_tensor(c->node, 2);
    if (x->rank < 1) return tc_infer_fail(c, TC_ERR_SHAPE, "input must have at least 1 dim, got a scalar");
    if (w->rank != 2) {
        char b[128];
        return tc_infer_fail(c, TC_ERR_SHAPE, "weight must be 2-D [out_features, in_features], got %s",
                             type_str(c, w, b, sizeof b));
    }
    if (!check_dtypes(c, x, w) || (bias && !check_dtypes(c, x, bias)) ||
        !same_dim(c, x->dims[x->rank - 1], w->dims[w->rank - 1], "in_features of input and weight", x, w))
        return c->status;
    tc_dim out[TC_MAX_RANK];
    int rank = x->rank - 1;
    for (int i = 0; i < rank; i++) out[i] = x->dims[i];
    out[rank++] = w->dims[0];
    if (bias) {
        /* bias is added along the last output dim: [N], [1] or a scalar */
        tc_dim n = w->dims[0];
        bool ok = bias->rank == 0 ||
                  (bias->rank == 1 && (bias->dims[0] == 1 || bias->dims[0] == n || TC_DIM_IS_SYM(bias->dims[0]) ||
                                       TC_DIM_IS_SYM(n)));
        if (!ok) {
            char b[128];
            return tc_infer_fail(c, TC_ERR_SHAPE, "bias %s must be [out_features] (%lld), [1] or a scalar",
                                 type_str(c, bias, b, sizeof b), (long long)n);
        }
    }
    tc_infer_set(c, 0, x->dtype, rank, out);
    return TC_OK;
}
