/* CUDA kernels for pooling (max with indices, average, adaptive average), nearest and bilinear
 * resizing and constant padding: argument handling on the host, mirroring backend/cpu/pool.c
 * (the same defaults, scales and fill values); the device code is in kernels/pool.cu. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/pool.h"
#include "core/dtype.h"

#include <stdio.h>
#include <string.h>

static tc_status relay(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

static bool float_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F64; }

static tc_status need_float(const tc_cuda_call *c, tc_dtype t) {
    if (float_dtype(t)) return TC_OK;
    return tc_cuda_fail(c, TC_ERR_DTYPE, "dtype %s is not supported on cuda (f32, f16, bf16, f64)", tc_dtype_name(t));
}

static void read_pair(const tc_cuda_call *c, int argi, const int64_t *dflt, int64_t *out) {
    tc_node_pair_eval(c->g, c->node, argi, c->symvals, dflt, out);
}

static int64_t planes_of(const tc_cuda_tensor *t) {
    int64_t p = 1;
    for (int i = 0; i < t->rank - 2; i++) p *= t->dims[i];
    return p;
}

static tc_status spatial(const tc_cuda_call *c, const tc_cuda_tensor *x, const tc_cuda_tensor *y, int64_t *planes,
                         int64_t *H, int64_t *W, int64_t *OH, int64_t *OW) {
    if (x->rank < 2 || y->rank != x->rank)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input rank %d and output rank %d do not fit a 2-D op", x->rank, y->rank);
    *planes = planes_of(x);
    if (planes_of(y) != *planes)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input and output differ outside the last two dims");
    *H = x->dims[x->rank - 2], *W = x->dims[x->rank - 1];
    *OH = y->dims[y->rank - 2], *OW = y->dims[y->rank - 1];
    return TC_OK;
}

static tc_status cuda_max_pool2d_with_indices(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0], *yi = c->out[1];
    TC_TRY(need_float(c, x->dtype));
    if (yi->dtype != TC_I64 || yi->numel != y->numel)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "the indices output must be i64 and the shape of the values");
    tc_cuda_pool2d_args a = {0};
    int64_t k[2], s[2], p[2], d[2];
    read_pair(c, 1, NULL, k);
    read_pair(c, 2, k, s);
    read_pair(c, 3, NULL, p);
    read_pair(c, 4, NULL, d);
    a.kh = k[0], a.kw = k[1], a.sh = s[0], a.sw = s[1], a.ph = p[0], a.pw = p[1], a.dh = d[0], a.dw = d[1];
    TC_TRY(spatial(c, x, y, &a.planes, &a.H, &a.W, &a.OH, &a.OW));
    return relay(c, tc_cuda_max_pool2d(&a, x->data, y->data, yi->data, x->dtype, c->stream, c->err));
}

static tc_status cuda_avg_pool2d(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(need_float(c, x->dtype));
    tc_cuda_pool2d_args a = {0};
    int64_t k[2], s[2], p[2];
    read_pair(c, 1, NULL, k);
    read_pair(c, 2, k, s);
    read_pair(c, 3, NULL, p);
    a.kh = k[0], a.kw = k[1], a.sh = s[0], a.sw = s[1], a.ph = p[0], a.pw = p[1], a.dh = 1, a.dw = 1;
    a.count_include_pad = tc_node_bool(c->node, 5);
    a.divisor = tc_node_is_none(c->node, 6) ? 0 : tc_node_int(c->node, 6);
    TC_TRY(spatial(c, x, y, &a.planes, &a.H, &a.W, &a.OH, &a.OW));
    return relay(c, tc_cuda_avg_pool2d(&a, x->data, y->data, x->dtype, c->stream, c->err));
}

static tc_status cuda_adaptive_avg_pool2d(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(need_float(c, x->dtype));
    int64_t planes = 0, H = 0, W = 0, OH = 0, OW = 0;
    TC_TRY(spatial(c, x, y, &planes, &H, &W, &OH, &OW));
    if (H == 0 || W == 0) return tc_cuda_fail(c, TC_ERR_SHAPE, "input spatial dims are empty at run time");
    return relay(c, tc_cuda_adaptive_avg_pool2d(planes, H, W, OH, OW, x->data, y->data, x->dtype, c->stream, c->err));
}

static void scales_of(const tc_cuda_call *c, int argi, bool *has, double *sf) {
    has[0] = has[1] = !tc_node_is_none(c->node, argi);
    sf[0] = sf[1] = 0;
    if (has[0]) {
        const tc_arg *a = tc_node_arg_at(c->node, argi);
        if (a->count >= 2) sf[0] = a->u.floats[0], sf[1] = a->u.floats[1];
        else has[0] = has[1] = false;
    }
}

/* The scale PyTorch's kernels use: 1/scale_factor when one was given, else in/out, in float. */
static float scale_value(bool has_scale, double sf, int64_t in, int64_t out) {
    return has_scale && sf > 0 ? (float)(1.0 / sf) : (float)in / (float)out;
}

static tc_status resize_args(const tc_cuda_call *c, const tc_cuda_tensor *x, const tc_cuda_tensor *y,
                             tc_cuda_resize_args *a) {
    TC_TRY(spatial(c, x, y, &a->planes, &a->H, &a->W, &a->OH, &a->OW));
    if (a->planes * a->OH * a->OW > 0 && (a->H == 0 || a->W == 0))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input spatial dims are empty at run time");
    return TC_OK;
}

static tc_status cuda_upsample_nearest2d(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    tc_cuda_resize_args a = {0};
    TC_TRY(resize_args(c, x, y, &a));
    bool has[2];
    double sf[2];
    scales_of(c, 2, has, sf);
    a.scale_h = a.OH ? scale_value(has[0], sf[0], a.H, a.OH) : 0.0f;
    a.scale_w = a.OW ? scale_value(has[1], sf[1], a.W, a.OW) : 0.0f;
    return relay(c, tc_cuda_upsample_nearest2d(&a, x->data, y->data, tc_dtype_size(x->dtype), c->stream, c->err));
}

static tc_status cuda_upsample_bilinear2d(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(need_float(c, x->dtype));
    tc_cuda_resize_args a = {0};
    TC_TRY(resize_args(c, x, y, &a));
    bool has[2];
    double sf[2];
    scales_of(c, 3, has, sf);
    a.align_corners = tc_node_bool(c->node, 2);
    if (a.align_corners) {
        a.scale_h = a.OH > 1 ? (float)(a.H - 1) / (float)(a.OH - 1) : 0.0f;
        a.scale_w = a.OW > 1 ? (float)(a.W - 1) / (float)(a.OW - 1) : 0.0f;
    } else {
        a.scale_h = a.OH ? scale_value(has[0], sf[0], a.H, a.OH) : 0.0f;
        a.scale_w = a.OW ? scale_value(has[1], sf[1], a.W, a.OW) : 0.0f;
    }
    return relay(c, tc_cuda_upsample_bilinear2d(&a, x->data, y->data, x->dtype, c->stream, c->err));
}

static tc_status cuda_constant_pad_nd(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    if (x->rank != y->rank || x->dtype != y->dtype)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input and output differ in rank or dtype");
    tc_cuda_pad_args a = {0};
    a.rank = y->rank;
    int64_t pad[TC_MAX_RANK * 2];
    int64_t n = tc_cuda_ints(c, 1, pad, TC_MAX_RANK * 2);
    if (n / 2 > y->rank) return tc_cuda_fail(c, TC_ERR_SHAPE, "pad has %lld elements for rank %d", (long long)n, y->rank);
    for (int64_t k = 0; k < n / 2; k++) a.left[y->rank - 1 - k] = pad[2 * k];
    for (int d = 0; d < y->rank; d++) {
        a.in_dims[d] = x->dims[d], a.out_dims[d] = y->dims[d];
        int64_t right = 0;
        for (int64_t k = 0; k < n / 2; k++)
            if (y->rank - 1 - k == d) right = pad[2 * k + 1];
        if (x->dims[d] + a.left[d] + right != y->dims[d])
            return tc_cuda_fail(c, TC_ERR_SHAPE, "dim %d: input %lld padded by (%lld, %lld) is not the output's %lld",
                                d, (long long)x->dims[d], (long long)a.left[d], (long long)right,
                                (long long)y->dims[d]);
    }
    size_t es = tc_dtype_size(y->dtype);
    if (es == 0 || es > 8) return tc_cuda_fail(c, TC_ERR_DTYPE, "dtype %s is not supported", tc_dtype_name(y->dtype));
    unsigned char fill[8] = {0};
    double v = tc_node_float(c->node, 2);
    if (tc_dtype_is_int(y->dtype) && tc_node_scalar_is_int(c->node, 2))
        tc_store_i64(fill, y->dtype, 0, tc_node_int(c->node, 2));
    else
        tc_convert(&v, TC_F64, fill, y->dtype, 1);
    /* the kernel takes the low es bytes of a.value: little-endian, as on every CUDA host */
    memcpy(&a.value, fill, sizeof fill);
    return relay(c, tc_cuda_constant_pad(&a, x->data, y->data, es, c->stream, c->err));
}

void tc_cuda_register_pool(tc_cuda_kernel *t) {
    t[TC_OP_MAX_POOL2D_WITH_INDICES] = cuda_max_pool2d_with_indices;
    t[TC_OP_AVG_POOL2D] = cuda_avg_pool2d;
    t[TC_OP_ADAPTIVE_AVG_POOL2D] = cuda_adaptive_avg_pool2d;
    t[TC_OP_UPSAMPLE_NEAREST2D_VEC] = cuda_upsample_nearest2d;
    t[TC_OP_UPSAMPLE_BILINEAR2D_VEC] = cuda_upsample_bilinear2d;
    t[TC_OP_CONSTANT_PAD_ND] = cuda_constant_pad_nd;
}
