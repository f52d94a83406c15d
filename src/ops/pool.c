/* Shape and dtype inference for pooling (max with indices, average, adaptive average), nearest
 * and bilinear resizing, and constant padding. Output sizes follow PyTorch's formulas; batch and
 * channel dims may be symbolic, spatial ones too where the formula stays affine. */
#include "ops/op.h"
#include "core/dtype.h"

#include <math.h>

static bool float_input(tc_infer_ctx *c, const tc_value *x) {
    if (tc_dtype_is_float(x->dtype) && x->dtype != TC_F8E4M3) return true;
    tc_infer_fail(c, TC_ERR_DTYPE, "input must be a floating-point tensor, got %s", tc_dtype_name(x->dtype));
    return false;
}

static bool rank_3_or_4(tc_infer_ctx *c, const tc_value *x) {
    if (x->rank == 3 || x->rank == 4) return true;
    char b[128];
    tc_infer_fail(c, TC_ERR_SHAPE, "input %s must be 3-D [C, H, W] or 4-D [N, C, H, W]",
                  tc_value_type_string(c->g, x, b, sizeof b));
    return false;
}

/* Reads int[2] argument i; stride [] means the kernel size. */
static bool pair(tc_infer_ctx *c, int i, const int64_t *dflt, int64_t *out) {
    int64_t n;
    const int64_t *v = tc_node_ints(c->node, i, &n);
    if (n == 0 && dflt) {
        out[0] = dflt[0], out[1] = dflt[1];
        return true;
    }
    if (n != 1 && n != 2) {
        tc_infer_fail(c, TC_ERR_SCHEMA, "%s must have 1 or 2 elements, got %lld", c->def->args[i].name, (long long)n);
        return false;
    }
    out[0] = v[0], out[1] = v[n - 1];
    for (int k = 0; k < 2; k++) {
        if (TC_DIM_IS_SYM(out[k]) || out[k] < -TC_MAX_DIM_VALUE || out[k] > TC_MAX_DIM_VALUE) {
            tc_infer_fail(c, TC_ERR_SHAPE, "%s must be a constant in [-2^40, 2^40]", c->def->args[i].name);
            return false;
        }
    }
    return true;
}

/* PyTorch's pooling_output_shape for one spatial dim. */
static tc_dim pool_out(tc_infer_ctx *c, const tc_value *x, tc_dim in, int64_t k, int64_t s, int64_t p, int64_t d,
                       bool ceil_mode, int dim) {
    int64_t span = d * (k - 1) + 1;
    if (!TC_DIM_IS_SYM(in)) {
        int64_t num = in + 2 * p - span + (ceil_mode ? s - 1 : 0);
        int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
        if (ceil_mode && (o - 1) * s >= in + p) o--;
        if (o < 1) {
            char b[128];
            tc_infer_fail(c, TC_ERR_SHAPE,
                          "input %s: spatial dim %d of size %lld (padding %lld) gives output size %lld: the "
                          "kernel (%lld, dilated %lld) is larger than the padded input",
                          tc_value_type_string(c->g, x, b, sizeof b), dim, (long long)in, (long long)p,
                          (long long)o, (long long)k, (long long)span);
            return 0;
        }
        return o;
    }
    if (!ceil_mode) return tc_dim_add(c, tc_dim_floordiv(c, tc_dim_add(c, in, 2 * p - span), s), 1);
    /* ceil mode drops a last window that would start in the right padding; with a symbolic size
     * that depends on in mod s except when the window can never start there */
    int64_t slack = p - span + s - 1; /* the last window is dropped iff (in + 2p - span + s - 1) mod s <= slack */
    if (slack < 0) return tc_dim_add(c, tc_dim_floordiv(c, tc_dim_add(c, in, 2 * p - span + s - 1), s), 1);
    tc_infer_fail(c, TC_ERR_UNSUPPORTED, "ceil_mode with a symbolic spatial size is not supported for this "
                  "kernel/stride/padding");
    return 0;
}

static void pool_shape(const tc_value *x, const tc_dim *hw, tc_dim *out) {
    for (int i = 0; i < x->rank - 2; i++) out[i] = x->dims[i];
    out[x->rank - 2] = hw[0];
    out[x->rank - 1] = hw[1];
}

/* Shared by max and average pooling: kernel, stride, padding checks and the output shape. */
static bool pool_common(tc_infer_ctx *c, const tc_value *x, const int64_t *k, const int64_t *s, const int64_t *p,
                        const int64_t *d, bool ceil_mode, bool is_max, tc_dim *out) {
    if (!float_input(c, x) || !rank_3_or_4(c, x)) return false;
    for (int i = 0; i < 2; i++) {
        if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0) {
            tc_infer_fail(c, TC_ERR_SHAPE,
                          "kernel_size, stride and dilation must be positive and padding non-negative, got "
                          "kernel_size (%lld, %lld), stride (%lld, %lld), padding (%lld, %lld), dilation (%lld, %lld)",
                          (long long)k[0], (long long)k[1], (long long)s[0], (long long)s[1], (long long)p[0],
                          (long long)p[1], (long long)d[0], (long long)d[1]);
            return false;
        }
        if (k[i] - 1 > TC_MAX_DIM_VALUE / d[i]) {
            tc_infer_fail(c, TC_ERR_SHAPE, "dilated kernel is too large: kernel_size %lld, dilation %lld", (long long)k[i],
                          (long long)d[i]);
            return false;
        }
        int64_t half = is_max ? (d[i] * (k[i] - 1) + 1) / 2 : k[i] / 2;
        if (p[i] > half) {
            tc_infer_fail(c, TC_ERR_SHAPE, "padding %lld should be at most half of the kernel size %lld", (long long)p[i],
                          (long long)(is_max ? d[i] * (k[i] - 1) + 1 : k[i]));
            return false;
        }
    }
    tc_dim hw[2];
    for (int i = 0; i < 2; i++) {
        hw[i] = pool_out(c, x, x->dims[x->rank - 2 + i], k[i], s[i], p[i], d[i], ceil_mode, i);
        if (c->status != TC_OK) return false;
    }
    pool_shape(x, hw, out);
    return true;
}

tc_status tc_infer_max_pool2d_with_indices(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t k[2], s[2], p[2], d[2];
    tc_dim out[4];
    if (!pair(c, 1, NULL, k) || !pair(c, 2, k, s) || !pair(c, 3, NULL, p) || !pair(c, 4, NULL, d) ||
        !pool_common(c, x, k, s, p, d, tc_node_bool(c->node, 5), true, out))
        return c->status;
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    tc_infer_set(c, 1, TC_I64, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_avg_pool2d(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t k[2], s[2], p[2], d[2] = {1, 1};
    tc_dim out[4];
    if (!pair(c, 1, NULL, k) || !pair(c, 2, k, s) || !pair(c, 3, NULL, p) ||
        !pool_common(c, x, k, s, p, d, tc_node_bool(c->node, 4), false, out))
        return c->status;
    if (!tc_node_is_none(c->node, 6) && tc_node_int(c->node, 6) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "divisor_override must not be zero");
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_adaptive_avg_pool2d(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (!float_input(c, x) || !rank_3_or_4(c, x)) return c->status;
    int64_t n;
    const int64_t *v = tc_node_ints(c->node, 1, &n);
    if (n != 2) return tc_infer_fail(c, TC_ERR_SCHEMA, "output_size must have 2 elements, got %lld", (long long)n);
    for (int i = 0; i < 2; i++) {
        if (!TC_DIM_IS_SYM(v[i]) && v[i] < 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "output_size must be non-negative, got %lld", (long long)v[i]);
        tc_dim in = x->dims[x->rank - 2 + i];
        if (!TC_DIM_IS_SYM(in) && in == 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "input spatial dims must be non-empty");
    }
    for (int i = 1; i < x->rank - 2; i++)
        if (!TC_DIM_IS_SYM(x->dims[i]) && x->dims[i] == 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "input must have non-zero size for non-batch dims");
    tc_dim out[4];
    pool_shape(x, v, out);
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

/* Both .vec resizes: exactly one of output_size and scale_factors; out = floor(in * scale). */
tc_status tc_infer_upsample2d(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *x = tc_node_tensor(n, 0);
    bool bilinear = n->op == TC_OP_UPSAMPLE_BILINEAR2D_VEC;
    int scale_arg = bilinear ? 3 : 2;
    char b[128];
    if (x->rank != 4)
        return tc_infer_fail(c, TC_ERR_SHAPE, "input %s must be 4-D [N, C, H, W]",
                             tc_value_type_string(c->g, x, b, sizeof b));
    if (bilinear && !float_input(c, x)) return c->status;
    if (x->dtype == TC_F8E4M3) return tc_infer_fail(c, TC_ERR_DTYPE, "f8e4m3 is not supported");
    bool has_size = !tc_node_is_none(n, 1), has_scale = !tc_node_is_none(n, scale_arg);
    if (has_size == has_scale)
        return tc_infer_fail(c, TC_ERR_SCHEMA, "exactly one of output_size and scale_factors must be given");
    tc_dim out[4] = {x->dims[0], x->dims[1], 0, 0};
    if (has_size) {
        int64_t cnt;
        const int64_t *v = tc_node_ints(n, 1, &cnt);
        if (cnt != 2) return tc_infer_fail(c, TC_ERR_SCHEMA, "output_size must have 2 elements, got %lld", (long long)cnt);
        out[2] = v[0], out[3] = v[1];
    } else {
        const tc_arg *a = tc_node_arg_at(n, scale_arg);
        if (a->count != 2)
            return tc_infer_fail(c, TC_ERR_SCHEMA, "scale_factors must have 2 elements, got %lld", (long long)a->count);
        for (int i = 0; i < 2; i++) {
            double sc = a->u.floats[i];
            tc_dim in = x->dims[2 + i];
            if (!(sc > 0)) return tc_infer_fail(c, TC_ERR_SHAPE, "scale factors must be positive, got %g", sc);
            if (!TC_DIM_IS_SYM(in)) out[2 + i] = (int64_t)floor((double)in * sc);
            else if (sc == floor(sc)) out[2 + i] = tc_dim_mul(c, in, (int64_t)sc);
            else
                return tc_infer_fail(c, TC_ERR_UNSUPPORTED,
                                     "a non-integer scale factor (%g) on a symbolic size is not supported", sc);
        }
    }
    for (int i = 2; i < 4; i++) {
        if ((!TC_DIM_IS_SYM(out[i]) && out[i] <= 0) || (!TC_DIM_IS_SYM(x->dims[i]) && x->dims[i] <= 0))
            return tc_infer_fail(c, TC_ERR_SHAPE, "input %s and output sizes should be greater than 0",
                                 tc_value_type_string(c->g, x, b, sizeof b));
    }
    if (c->status != TC_OK) return c->status;
    tc_infer_set(c, 0, x->dtype, 4, out);
    return TC_OK;
}

tc_status tc_infer_constant_pad_nd(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *pad = tc_node_ints(c->node, 1, &n);
    char b[128];
    if (n % 2 || n / 2 > x->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "pad has %lld elements: it must be even and at most twice the rank of %s",
                             (long long)n, tc_value_type_string(c->g, x, b, sizeof b));
    tc_dim out[TC_MAX_RANK];
    for (int i = 0; i < x->rank; i++) out[i] = x->dims[i];
    for (int64_t k = 0; k < n / 2; k++) {
        int d = x->rank - 1 - (int)k;
        tc_dim o = tc_dim_add(c, tc_dim_add(c, x->dims[d], pad[2 * k]), pad[2 * k + 1]);
        if (!TC_DIM_IS_SYM(o) && o < 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "input %s padded by (%lld, %lld) at dim %d has negative size %lld",
                                 tc_value_type_string(c->g, x, b, sizeof b), (long long)pad[2 * k],
                                 (long long)pad[2 * k + 1], d, (long long)o);
        out[d] = o;
    }
    if (c->status != TC_OK) return c->status;
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}
