/* Shape and dtype inference for the normalization ops. Sizes that are symbolic and cannot be
 * compared now (a symbol against a constant) are checked again by the kernels at run time.
 * The statistics outputs follow what torch.export records (the meta functions, which match CUDA):
 * batch norm gives [C] running mean and inverse std, layer norm [*, 1, ...] mean and rstd in f32
 * for f16/bf16 inputs, group norm [N, group] in the input dtype. */
#include "ops/op.h"
#include "core/dtype.h"

#include <stdio.h>

/* 1 when a and b are the same size, 0 when they are known to differ, -1 when only a run can tell. */
static int dims_agree(tc_dim a, tc_dim b) {
    if (a == b) return 1;
    return TC_DIM_IS_SYM(a) || TC_DIM_IS_SYM(b) ? -1 : 0;
}

static const char *dim_str(tc_infer_ctx *c, tc_dim d, char *buf, size_t size) {
    return tc_sym_print(&c->g->syms, d, buf, size);
}

static const char *shape_str(tc_infer_ctx *c, int rank, const tc_dim *dims, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && len < size; i++) {
        char d[64];
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", dim_str(c, dims[i], d, sizeof d));
    }
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static bool check_float_input(tc_infer_ctx *c, const tc_value *x, const char *what) {
    if (!tc_dtype_is_float(x->dtype) || x->dtype == TC_F8E4M3) {
        tc_infer_fail(c, TC_ERR_DTYPE, "%s needs a floating input (f32, f16, bf16), got %s", what,
                      tc_dtype_name(x->dtype));
        return false;
    }
    return true;
}

/* A per-channel parameter (weight, bias, running stats): absent, or a float vector of size C. */
static bool check_channel_param(tc_infer_ctx *c, const tc_value *p, const char *name, tc_dim C) {
    if (!p) return true;
    char b1[64], b2[64];
    if (!tc_dtype_is_float(p->dtype) || p->dtype == TC_F8E4M3) {
        tc_infer_fail(c, TC_ERR_DTYPE, "%s must be a floating tensor, got %s", name, tc_dtype_name(p->dtype));
        return false;
    }
    if (p->rank != 1 || dims_agree(p->dims[0], C) == 0) {
        tc_infer_fail(c, TC_ERR_SHAPE, "%s must have shape [%s] (one value per channel), got %s", name,
                      dim_str(c, C, b1, sizeof b1), shape_str(c, p->rank, p->dims, b2, sizeof b2));
        return false;
    }
    return true;
}

static tc_dtype stats_dtype(tc_dtype in) { return in == TC_F64 ? TC_F64 : TC_F32; }

tc_status tc_infer_norm_batch(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *x = tc_node_tensor(n, 0);
    if (!check_float_input(c, x, "batch norm")) return c->status;
    if (x->rank < 2)
        return tc_infer_fail(c, TC_ERR_SHAPE, "batch norm needs an input of rank >= 2 ([N, C, ...]), got rank %d",
                             x->rank);
    tc_dim C = x->dims[1];
    if (!check_channel_param(c, tc_node_tensor(n, 1), "weight", C) ||
        !check_channel_param(c, tc_node_tensor(n, 2), "bias", C) ||
        !check_channel_param(c, tc_node_tensor(n, 3), "running_mean", C) ||
        !check_channel_param(c, tc_node_tensor(n, 4), "running_var", C))
        return c->status;
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    tc_infer_set(c, 1, stats_dtype(x->dtype), 1, &C);
    tc_infer_set(c, 2, stats_dtype(x->dtype), 1, &C);
    return TC_OK;
}

tc_status tc_infer_norm_layer(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *x = tc_node_tensor(n, 0);
    if (!check_float_input(c, x, "layer norm")) return c->status;
    int64_t k;
    const int64_t *ns = tc_node_ints(n, 1, &k);
    char b1[256], b2[256];
    if (k < 1) return tc_infer_fail(c, TC_ERR_SHAPE, "normalized_shape must have at least one dim");
    if (k > x->rank || !ns)
        return tc_infer_fail(c, TC_ERR_SHAPE, "normalized_shape %s has more dims than the input %s",
                             shape_str(c, (int)k, ns, b1, sizeof b1), shape_str(c, x->rank, x->dims, b2, sizeof b2));
    int lead = x->rank - (int)k;
    for (int i = 0; i < k; i++)
        if (dims_agree(ns[i], x->dims[lead + i]) == 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "normalized_shape %s does not match the input's trailing dims: "
                                 "input is %s",
                                 shape_str(c, (int)k, ns, b1, sizeof b1), shape_str(c, x->rank, x->dims, b2, sizeof b2));
    for (int a = 2; a <= 3; a++) {
        const tc_value *p = tc_node_tensor(n, a);
        if (!p) continue;
        const char *name = a == 2 ? "weight" : "bias";
        if (!tc_dtype_is_float(p->dtype) || p->dtype == TC_F8E4M3)
            return tc_infer_fail(c, TC_ERR_DTYPE, "%s must be a floating tensor, got %s", name, tc_dtype_name(p->dtype));
        bool ok = p->rank == k;
        for (int i = 0; ok && i < k; i++) ok = dims_agree(p->dims[i], ns[i]) != 0;
        if (!ok)
            return tc_infer_fail(c, TC_ERR_SHAPE, "%s must have the normalized_shape %s, got %s", name,
                                 shape_str(c, (int)k, ns, b1, sizeof b1), shape_str(c, p->rank, p->dims, b2, sizeof b2));
    }
    tc_dim sd[TC_MAX_RANK];
    for (int i = 0; i < x->rank; i++) sd[i] = i < lead ? x->dims[i] : 1;
    tc_dtype st = x->dtype == TC_F16 || x->dtype == TC_BF16 ? TC_F32 : x->dtype;
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    tc_infer_set(c, 1, st, x->rank, sd);
    tc_infer_set(c, 2, st, x->rank, sd);
    return TC_OK;
}

tc_status tc_infer_norm_group(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *x = tc_node_tensor(n, 0);
    if (!check_float_input(c, x, "group norm")) return c->status;
    if (x->rank < 2)
        return tc_infer_fail(c, TC_ERR_SHAPE, "group norm needs an input of rank >= 2 ([N, C, ...]), got rank %d",
                             x->rank);
    tc_dim N = tc_node_int(n, 3), C = tc_node_int(n, 4), HxW = tc_node_int(n, 5);
    int64_t G = tc_node_int(n, 6);
    tc_dim spatial = 1;
    for (int i = 2; i < x->rank; i++) spatial = tc_dim_mul(c, spatial, x->dims[i]);
    if (c->status != TC_OK) return c->status;
    char b1[64], b2[64], b3[256];
    const char *xs = shape_str(c, x->rank, x->dims, b3, sizeof b3);
    if (dims_agree(N, x->dims[0]) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "N = %s does not match the input %s", dim_str(c, N, b1, sizeof b1), xs);
    if (dims_agree(C, x->dims[1]) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "C = %s does not match the input %s", dim_str(c, C, b1, sizeof b1), xs);
    if (dims_agree(HxW, spatial) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "HxW = %s does not match the input %s (spatial size %s)",
                             dim_str(c, HxW, b1, sizeof b1), xs, dim_str(c, spatial, b2, sizeof b2));
    if (G <= 0) return tc_infer_fail(c, TC_ERR_SHAPE, "group must be positive, got %lld", (long long)G);
    if (!TC_DIM_IS_SYM(x->dims[1]) && x->dims[1] % G != 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "the %lld channels of input %s are not divisible into %lld groups",
                             (long long)x->dims[1], xs, (long long)G);
    if (!check_channel_param(c, tc_node_tensor(n, 1), "weight", x->dims[1]) ||
        !check_channel_param(c, tc_node_tensor(n, 2), "bias", x->dims[1]))
        return c->status;
    tc_dim sd[2] = {x->dims[0], G};
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    tc_infer_set(c, 1, x->dtype, 2, sd);
    tc_infer_set(c, 2, x->dtype, 2, sd);
    return TC_OK;
}

tc_status tc_layer_norm_rows(const tc_graph *g, const tc_node *node, const int64_t *symvals, int rank,
                             const int64_t *dims, int64_t *rows, int64_t *n, tc_error *err) {
    int64_t ns[TC_MAX_RANK * 2];
    int64_t k = tc_node_ints_eval(g, node, 1, symvals, ns, TC_MAX_RANK * 2);
    if (k < 1 || k > rank)
        return tc_errorf(err, TC_ERR_SHAPE, "normalized_shape has %lld dims for an input of rank %d", (long long)k, rank);
    int lead = rank - (int)k;
    *rows = 1, *n = 1;
    for (int i = 0; i < rank; i++) {
        if (i < lead) {
            *rows *= dims[i];
            continue;
        }
        if (ns[i - lead] != dims[i])
            return tc_errorf(err, TC_ERR_SHAPE, "normalized_shape[%d] is %lld but the input's dim %d is %lld", i - lead,
                             (long long)ns[i - lead], i, (long long)dims[i]);
        *n *= dims[i];
    }
    return TC_OK;
}
