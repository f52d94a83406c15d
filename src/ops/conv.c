/* Shape and dtype inference for aten.convolution: 1-D, 2-D and 3-D, strided, padded, dilated,
 * grouped and transposed. The weight's shape must be constant; the input's batch
 * and spatial sizes may be symbolic. */
#include "ops/op.h"
#include "core/dtype.h"

/* Reads int-list argument i as nsp constant values (a one-element list stands for all). */
static bool conv_param(tc_infer_ctx *c, int i, int nsp, int64_t min, int64_t *out) {
    const char *name = c->def->args[i].name;
    int64_t n;
    const int64_t *v = tc_node_ints(c->node, i, &n);
    if (n != nsp && n != 1) {
        tc_infer_fail(c, TC_ERR_SCHEMA, "%s must have %d element%s (or 1) for a %d-D convolution, got %lld", name,
                      nsp, nsp > 1 ? "s" : "", nsp, (long long)n);
        return false;
    }
    for (int k = 0; k < nsp; k++) {
        int64_t x = v[n == 1 ? 0 : k];
        if (TC_DIM_IS_SYM(x)) {
            tc_infer_fail(c, TC_ERR_UNSUPPORTED, "symbolic %s is not supported", name);
            return false;
        }
        if (x < min || x > TC_MAX_DIM_VALUE) {
            tc_infer_fail(c, TC_ERR_SHAPE, "%s must be in [%lld, %lld], got %lld", name, (long long)min,
                          (long long)TC_MAX_DIM_VALUE, (long long)x);
            return false;
        }
        out[k] = x;
    }
    return true;
}

tc_status tc_infer_convolution(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *x = tc_node_tensor(n, 0), *w = tc_node_tensor(n, 1), *b = tc_node_tensor(n, 2);
    char bx[128], bw[128];
    tc_value_type_string(c->g, x, bx, sizeof bx);
    tc_value_type_string(c->g, w, bw, sizeof bw);
    if (w->rank < 3 || w->rank > 5)
        return tc_infer_fail(c, TC_ERR_SHAPE, "weight %s must be 3-D, 4-D or 5-D (a 1-D, 2-D or 3-D convolution)", bw);
    int nsp = w->rank - 2;
    /* aten.convolution wants the batch dim (F.conv2d adds it to unbatched input before the call) */
    bool batched = true;
    if (x->rank != w->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "input %s must be %d-D [N, C, ...] for weight %s", bx, w->rank, bw);
    if (!tc_dtype_is_float(x->dtype) || x->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "input must be a floating-point tensor, got %s", tc_dtype_name(x->dtype));
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return tc_infer_fail(c, TC_ERR_DTYPE, "input (%s), weight (%s) and bias (%s) must have the same dtype",
                             tc_dtype_name(x->dtype), tc_dtype_name(w->dtype), b ? tc_dtype_name(b->dtype) : "none");
    for (int i = 0; i < w->rank; i++)
        if (TC_DIM_IS_SYM(w->dims[i]))
            return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "weight %s must have constant dims", bw);
    int64_t groups = tc_node_int(n, 8);
    if (TC_DIM_IS_SYM(groups)) return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "symbolic groups are not supported");
    if (groups < 1 || groups > TC_MAX_DIM_VALUE)
        return tc_infer_fail(c, TC_ERR_SHAPE, "groups must be in [1, %lld], got %lld", (long long)TC_MAX_DIM_VALUE,
                             (long long)groups);
    int64_t stride[3], pad[3], dil[3], opad[3] = {0, 0, 0};
    bool transposed = tc_node_bool(n, 6);
    if (!conv_param(c, 3, nsp, 1, stride) || !conv_param(c, 4, nsp, 0, pad) || !conv_param(c, 5, nsp, 1, dil) ||
        (transposed && !conv_param(c, 7, nsp, 0, opad)))
        return c->status;
    for (int k = 0; transposed && k < nsp; k++)
        if (opad[k] >= stride[k] && opad[k] >= dil[k])
            return tc_infer_fail(c, TC_ERR_SHAPE,
                                 "output_padding %lld must be smaller than either stride %lld or dilation %lld",
                                 (long long)opad[k], (long long)stride[k], (long long)dil[k]);

    int64_t cin, cout;
    if (!transposed) {
        cout = w->dims[0], cin = w->dims[1] * groups;
        if (cout % groups)
            return tc_infer_fail(c, TC_ERR_SHAPE, "weight %s: out_channels %lld is not divisible by groups %lld", bw,
                                 (long long)cout, (long long)groups);
    } else {
        cin = w->dims[0], cout = w->dims[1] * groups;
        if (cin % groups)
            return tc_infer_fail(c, TC_ERR_SHAPE, "weight %s: in_channels %lld is not divisible by groups %lld", bw,
                                 (long long)cin, (long long)groups);
    }
    int cdim = batched ? 1 : 0;
    tc_dim xc = x->dims[cdim];
    if (!TC_DIM_IS_SYM(xc) && xc != cin)
        return tc_infer_fail(c, TC_ERR_SHAPE,
                             "input %s has %lld channels but weight %s with groups=%lld expects %lld", bx,
                             (long long)xc, bw, (long long)groups, (long long)cin);
    if (b && (b->rank != 1 || (!TC_DIM_IS_SYM(b->dims[0]) && b->dims[0] != cout))) {
        char bb[128];
        return tc_infer_fail(c, TC_ERR_SHAPE, "bias %s must be 1-D with %lld elements (out_channels)",
                             tc_value_type_string(c->g, b, bb, sizeof bb), (long long)cout);
    }

    tc_dim out[TC_MAX_RANK];
    int r = 0;
    if (batched) out[r++] = x->dims[0];
    out[r++] = cout;
    for (int k = 0; k < nsp; k++) {
        tc_dim in = x->dims[cdim + 1 + k];
        int64_t kk = w->dims[2 + k];
        if (kk > 1 && kk - 1 > TC_MAX_DIM_VALUE / dil[k])
            return tc_infer_fail(c, TC_ERR_SHAPE, "dilated kernel of spatial dim %d is too large: dilation %lld, kernel %lld",
                                 k, (long long)dil[k], (long long)kk);
        int64_t eff = dil[k] * (kk - 1) + 1;
        tc_dim o;
        if (!transposed) {
            /* (in + 2p - eff) / s + 1 */
            if (!TC_DIM_IS_SYM(in) && in + 2 * pad[k] < eff)
                return tc_infer_fail(c, TC_ERR_SHAPE,
                                     "input %s: padded size %lld of spatial dim %d is smaller than the (dilated) "
                                     "kernel size %lld",
                                     bx, (long long)(in + 2 * pad[k]), k, (long long)eff);
            o = tc_dim_add(c, tc_dim_floordiv(c, tc_dim_add(c, in, 2 * pad[k] - eff), stride[k]), 1);
        } else {
            /* (in - 1) * s - 2p + eff + output_padding */
            o = tc_dim_add(c, tc_dim_mul(c, tc_dim_sub(c, in, 1), stride[k]), eff + opad[k] - 2 * pad[k]);
            if (!TC_DIM_IS_SYM(in) && !TC_DIM_IS_SYM(o) && o < 1)
                return tc_infer_fail(c, TC_ERR_SHAPE, "input %s: output size %lld of spatial dim %d is too small", bx,
                                     (long long)o, k);
        }
        out[r++] = o;
    }
    if (c->status != TC_OK) return c->status;
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}
