/* Shape and dtype inference for the reduction ops: which dims a node reduces, the output shape
 * with or without kept dims, the result dtype PyTorch gives, and the inputs PyTorch rejects. */
#include "ops/op.h"
#include "ops/reduce_params.h"
#include "core/dtype.h"

#include <string.h>

/* How an op names the dims it reduces. */
typedef enum {
    DIMS_EMPTY_ALL,  /* int[]?: None or [] reduce every dim (sum, mean, var, amax) */
    DIMS_EMPTY_NONE, /* int[]?: None reduces every dim, [] none (any.dims, all.dims) */
    DIMS_ONE,        /* int dim */
    DIMS_ONE_OR_ALL, /* int? dim: None reduces the flattened tensor (argmax) */
    DIMS_ALL,        /* no dim argument (sum.default) */
} dims_kind;

/* Marks red[i] for every reduced dim of x; false after recording a failure. */
static bool reduce_mask(tc_infer_ctx *c, const tc_value *x, int argi, dims_kind kind, bool *red) {
    int rank = x->rank;
    for (int i = 0; i < TC_MAX_RANK; i++) red[i] = kind == DIMS_ALL;
    if (kind == DIMS_ALL) return true;
    const tc_node *n = c->node;
    if (kind == DIMS_ONE || kind == DIMS_ONE_OR_ALL) {
        if (tc_node_is_none(n, argi)) {
            for (int i = 0; i < rank; i++) red[i] = true;
            return true;
        }
        int d = tc_infer_dim_index(c, tc_node_int(n, argi), rank, "dim");
        if (c->status != TC_OK) return false;
        if (rank > 0) red[d] = true;
        return true;
    }
    int64_t count;
    const int64_t *dims = tc_node_ints(n, argi, &count);
    if (!dims || (count == 0 && kind == DIMS_EMPTY_ALL)) {
        for (int i = 0; i < rank; i++) red[i] = true;
        return true;
    }
    bool seen[TC_MAX_RANK] = {0};
    for (int64_t k = 0; k < count; k++) {
        int d = tc_infer_dim_index(c, dims[k], rank, "dim");
        if (c->status != TC_OK) return false;
        if (seen[d]) {
            tc_infer_fail(c, TC_ERR_SHAPE, "dim %d appears more than once in the list of dims", d);
            return false;
        }
        seen[d] = true;
        if (rank > 0) red[d] = true;
    }
    return true;
}

/* Output dims of reducing x over red; returns the rank. */
static int reduced_shape(const tc_value *x, const bool *red, bool keepdim, tc_dim *out) {
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!red[i]) out[r++] = x->dims[i];
        else if (keepdim) out[r++] = 1;
    }
    return r;
}

/* PyTorch rejects max/min-like reductions over an empty dim; sizes known now are checked here,
 * symbolic ones by the kernel. */
static bool check_nonempty(tc_infer_ctx *c, const tc_value *x, const bool *red, const char *what) {
    for (int i = 0; i < x->rank; i++)
        if (red[i] && x->dims[i] == 0) {
            tc_infer_fail(c, TC_ERR_SHAPE, "%s over dim %d of size 0 has no identity (the dim must be non-empty)",
                          what, i);
            return false;
        }
    return true;
}

static int keepdim_arg(int op) { return op == TC_OP_VAR_CORRECTION ? 3 : 2; }

static dims_kind dims_kind_of(int op) {
    switch (op) {
    case TC_OP_SUM_ALL: return DIMS_ALL;
    case TC_OP_ANY_DIMS:
    case TC_OP_ALL_DIMS: return DIMS_EMPTY_NONE;
    case TC_OP_ARGMAX:
    case TC_OP_ARGMIN: return DIMS_ONE_OR_ALL;
    case TC_OP_MAX_DIM:
    case TC_OP_MIN_DIM:
    case TC_OP_ANY_DIM:
    case TC_OP_ALL_DIM:
    case TC_OP_PROD_DIM: return DIMS_ONE;
    default: return DIMS_EMPTY_ALL;
    }
}

/* Reduces x by the node's dims and sets output out_i to dtype; false after a failure. */
static bool set_reduced(tc_infer_ctx *c, int out_i, tc_dtype dtype, bool *red_out) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int op = c->node->op;
    bool red[TC_MAX_RANK];
    if (!reduce_mask(c, x, 1, dims_kind_of(op), red)) return false;
    bool keepdim = op == TC_OP_SUM_ALL ? false : tc_node_bool(c->node, keepdim_arg(op));
    tc_dim dims[TC_MAX_RANK];
    int r = reduced_shape(x, red, keepdim, dims);
    tc_infer_set(c, out_i, dtype, r, dims);
    if (red_out)
        for (int i = 0; i < TC_MAX_RANK; i++) red_out[i] = red[i];
    return true;
}

/* Integer and bool sums and products give int64 unless a dtype is asked for. */
static tc_dtype accumulate_dtype(const tc_node *n, int dtype_arg, tc_dtype in) {
    tc_dtype dflt = tc_dtype_is_float(in) ? in : TC_I64;
    return tc_node_dtype_or(n, dtype_arg, dflt);
}

static bool check_dtype_computable(tc_infer_ctx *c, tc_dtype t, const char *role) {
    if (t == TC_F8E4M3) {
        tc_infer_fail(c, TC_ERR_DTYPE, "%s dtype f8e4m3 is storage only; cast it first", role);
        return false;
    }
    return true;
}

tc_status tc_infer_reduce_sum(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int dtype_arg = c->node->op == TC_OP_SUM_ALL ? 1 : 3;
    tc_dtype t = accumulate_dtype(c->node, dtype_arg, x->dtype);
    if (!check_dtype_computable(c, x->dtype, "input") || !check_dtype_computable(c, t, "result")) return c->status;
    if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "a sum cannot produce bool; ask for an integer dtype");
    set_reduced(c, 0, t, NULL);
    return c->status;
}

tc_status tc_infer_reduce_prod(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_dtype t = accumulate_dtype(c->node, 3, x->dtype);
    if (!check_dtype_computable(c, x->dtype, "input") || !check_dtype_computable(c, t, "result")) return c->status;
    if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "a product cannot produce bool; ask for an integer dtype");
    set_reduced(c, 0, t, NULL);
    return c->status;
}

tc_status tc_infer_reduce_mean(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_dtype t = tc_node_dtype_or(c->node, 3, x->dtype);
    if (!tc_dtype_is_float(t) || t == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE,
                             "mean needs a floating result dtype (f32, f16, bf16), got %s; pass dtype= for "
                             "integer inputs",
                             tc_dtype_name(t));
    if (!check_dtype_computable(c, x->dtype, "input")) return c->status;
    set_reduced(c, 0, t, NULL);
    return c->status;
}

tc_status tc_infer_reduce_var(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!tc_dtype_is_float(x->dtype) || x->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "var needs a floating input (f32, f16, bf16), got %s",
                             tc_dtype_name(x->dtype));
    set_reduced(c, 0, x->dtype, NULL);
    return c->status;
}

tc_status tc_infer_reduce_extreme(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!check_dtype_computable(c, x->dtype, "input")) return c->status;
    bool red[TC_MAX_RANK];
    if (!set_reduced(c, 0, x->dtype, red)) return c->status;
    check_nonempty(c, x, red, c->node->op == TC_OP_AMAX ? "amax" : "amin");
    return c->status;
}

tc_status tc_infer_reduce_arg(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    const char *what = c->node->op == TC_OP_ARGMAX ? "argmax" : "argmin";
    if (x->dtype == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "%s does not support bool input", what);
    if (!check_dtype_computable(c, x->dtype, "input")) return c->status;
    bool red[TC_MAX_RANK];
    if (!set_reduced(c, 0, TC_I64, red)) return c->status;
    if (tc_node_is_none(c->node, 1) && tc_value_numel_static(x) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "%s of an empty tensor needs a dim (the input has no elements)", what);
    check_nonempty(c, x, red, what);
    return c->status;
}

tc_status tc_infer_reduce_extreme_dim(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!check_dtype_computable(c, x->dtype, "input")) return c->status;
    bool red[TC_MAX_RANK];
    if (!set_reduced(c, 0, x->dtype, red)) return c->status;
    set_reduced(c, 1, TC_I64, NULL);
    check_nonempty(c, x, red, c->node->op == TC_OP_MAX_DIM ? "max" : "min");
    return c->status;
}

tc_status tc_infer_reduce_logical(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!check_dtype_computable(c, x->dtype, "input")) return c->status;
    set_reduced(c, 0, x->dtype == TC_U8 ? TC_U8 : TC_BOOL, NULL);
    return c->status;
}

tc_status tc_infer_reduce_cumsum(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_dtype t = accumulate_dtype(c->node, 2, x->dtype);
    if (!check_dtype_computable(c, x->dtype, "input") || !check_dtype_computable(c, t, "result")) return c->status;
    if (t == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "cumsum cannot produce bool; ask for an integer dtype");
    tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status != TC_OK) return c->status;
    tc_infer_set(c, 0, t, x->rank, x->dims);
    return TC_OK;
}

tc_status tc_infer_reduce_softmax(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    const char *what = c->node->op == TC_OP_SOFTMAX ? "softmax" : "log_softmax";
    if (!tc_dtype_is_float(x->dtype) || x->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "%s needs a floating input (f32, f16, bf16), got %s", what,
                             tc_dtype_name(x->dtype));
    tc_dtype t = x->dtype;
    if (tc_node_bool(c->node, 2)) {
        if (x->dtype != TC_F16 && x->dtype != TC_BF16)
            return tc_infer_fail(c, TC_ERR_DTYPE, "%s with half_to_float needs an f16 or bf16 input, got %s", what,
                                 tc_dtype_name(x->dtype));
        t = TC_F32;
    }
    tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status != TC_OK) return c->status;
    tc_infer_set(c, 0, t, x->rank, x->dims);
    return TC_OK;
}

/* ---- shared by the backends' reduce kernels (reduce_params.h) ------------------------------- */

void tc_reduce_dims(const tc_node *n, int rank, bool *red) {
    int op = n->op;
    for (int i = 0; i < TC_MAX_RANK; i++) red[i] = false;
    bool all = false;
    switch (op) {
    case TC_OP_SUM_ALL: all = true; break;
    case TC_OP_ARGMAX:
    case TC_OP_ARGMIN:
    case TC_OP_MAX_DIM:
    case TC_OP_MIN_DIM:
    case TC_OP_ANY_DIM:
    case TC_OP_ALL_DIM:
    case TC_OP_PROD_DIM:
        if (tc_node_is_none(n, 1)) all = true;
        else if (rank > 0) {
            int64_t d = tc_node_int(n, 1);
            red[d < 0 ? d + rank : d] = true;
        }
        break;
    default: {
        int64_t count;
        const int64_t *dims = tc_node_ints(n, 1, &count);
        bool empty_is_all = op != TC_OP_ANY_DIMS && op != TC_OP_ALL_DIMS;
        if (!dims || (count == 0 && empty_is_all)) all = true;
        for (int64_t k = 0; k < count && rank > 0; k++) red[dims[k] < 0 ? dims[k] + rank : dims[k]] = true;
    }
    }
    if (all)
        for (int i = 0; i < rank; i++) red[i] = true;
}

void tc_reduce_layout_make(int rank, const int64_t *dims, const bool *red, tc_reduce_layout *L) {
    memset(L, 0, sizeof *L);
    L->n_out = L->n_red = 1;
    int64_t gd[TC_MAX_RANK], gs[TC_MAX_RANK];
    bool gr[TC_MAX_RANK];
    int ng = 0;
    int64_t stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        int64_t d = dims[i];
        if (red[i]) L->n_red *= d;
        else L->n_out *= d;
        if (d == 1) continue;
        if (ng > 0 && gr[ng - 1] == red[i]) gd[ng - 1] *= d;
        else gd[ng] = d, gs[ng] = stride, gr[ng] = red[i], ng++;
        stride *= d;
    }
    for (int g = ng - 1; g >= 0; g--) {
        if (gr[g]) L->rd[L->nr] = gd[g], L->rs[L->nr++] = gs[g];
        else L->kd[L->nk] = gd[g], L->ks[L->nk++] = gs[g];
    }
    if (L->nr == 0) L->rd[0] = 1, L->rs[0] = 1, L->nr = 1;
}
