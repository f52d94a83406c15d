/* CUDA kernels for the norm ops: argument handling on the host (sizes checked again at run time
 * for symbolic shapes, as backend/cpu/norm.c does); the device code is in kernels/norm.cu.
 * Scratch slots: 0 and 1 layer norm weight and bias as f32 when their dtype differs from the
 * input's; 2 batch norm scale and shift. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/norm.h"
#include "backend/cuda/kernels/reduce.h"
#include "core/dtype.h"

#include <string.h>

/* Launcher messages go through tc_cuda_fail so that they name the node. */
static tc_status relabel(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK || !c->err) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

static bool is_float16_32(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

static tc_status check_input(const tc_cuda_call *c, const tc_cuda_tensor *x) {
    if (!is_float16_32(x->dtype))
        return tc_cuda_fail(c, TC_ERR_DTYPE, "%s input is not supported by the cuda normalization kernels (f32, f16, "
                            "bf16)", tc_dtype_name(x->dtype));
    return TC_OK;
}

static tc_status param_of(const tc_cuda_call *c, int argi, const char *name, int64_t count, tc_cuda_norm_param *p) {
    const tc_cuda_tensor *t = tc_cuda_in(c, argi);
    p->data = NULL;
    p->dtype = TC_F32;
    if (!t) return TC_OK;
    if (!is_float16_32(t->dtype))
        return tc_cuda_fail(c, TC_ERR_DTYPE, "%s must be f32, f16 or bf16, got %s", name, tc_dtype_name(t->dtype));
    if (t->numel != count)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "%s has %lld values, expected %lld", name, (long long)t->numel,
                            (long long)count);
    p->data = t->data;
    p->dtype = t->dtype;
    return TC_OK;
}

/* --- batch norm with running statistics ---------------------------------------------------- */

static tc_status cuda_batch_norm(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    TC_TRY(check_input(c, x));
    if (x->rank < 2) return tc_cuda_fail(c, TC_ERR_SHAPE, "batch norm needs an input of rank >= 2");
    int64_t N = x->dims[0], C = x->dims[1], inner = 1;
    for (int i = 2; i < x->rank; i++) inner *= x->dims[i];
    tc_cuda_norm_param w, b, rm, rv;
    TC_TRY(param_of(c, 1, "weight", C, &w));
    TC_TRY(param_of(c, 2, "bias", C, &b));
    TC_TRY(param_of(c, 3, "running_mean", C, &rm));
    TC_TRY(param_of(c, 4, "running_var", C, &rv));
    if (!rm.data || !rv.data)
        return tc_cuda_fail(c, TC_ERR_INVALID_ARGUMENT, "running_mean and running_var are required");
    if (c->out[1]->dtype != TC_F32 || c->out[2]->dtype != TC_F32)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "the saved statistics must be f32");
    if (C == 0) return TC_OK;
    size_t bytes = sizeof(float) * 2 * (size_t)C;
    float *scale_shift = tc_cuda_scratch(c, 2, bytes);
    if (!scale_shift) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of device scratch memory (%zu bytes)", bytes);
    float eps = (float)tc_node_float(c->node, 6);
    return relabel(c, tc_cuda_batch_norm(x->data, c->out[0]->data, x->dtype, N, C, inner, w, b, rm, rv, eps,
                                         c->out[1]->data, c->out[2]->data, scale_shift, c->stream, c->err));
}

/* --- layer norm ------------------------------------------------------------------------------ */

/* Weight and bias in one dtype the kernel reads: the input's when both (present ones) have it,
 * else f32, converting through scratch. */
static tc_status ln_params(const tc_cuda_call *c, tc_dtype xt, const tc_cuda_norm_param *in, const void **out,
                           tc_dtype *wt, int64_t n) {
    bool same = true;
    for (int i = 0; i < 2; i++)
        if (in[i].data && in[i].dtype != xt) same = false;
    *wt = same ? xt : TC_F32;
    for (int i = 0; i < 2; i++) {
        out[i] = in[i].data;
        if (!in[i].data || in[i].dtype == *wt) continue;
        size_t bytes = sizeof(float) * (size_t)(n ? n : 1);
        void *buf = tc_cuda_scratch(c, i, bytes);
        if (!buf) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of device scratch memory (%zu bytes)", bytes);
        TC_TRY(relabel(c, tc_cuda_convert(in[i].data, in[i].dtype, buf, TC_F32, n, c->stream, c->err)));
        out[i] = buf;
    }
    return TC_OK;
}

static tc_status cuda_layer_norm(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    TC_TRY(check_input(c, x));
    int64_t rows, n;
    tc_error why = {0};
    tc_status ls = tc_layer_norm_rows(c->g, c->node, c->symvals, x->rank, x->dims, &rows, &n, &why);
    if (ls != TC_OK) return tc_cuda_fail(c, ls, "%s", why.msg);
    tc_cuda_norm_param p[2];
    TC_TRY(param_of(c, 2, "weight", n, &p[0]));
    TC_TRY(param_of(c, 3, "bias", n, &p[1]));
    if (c->out[1]->dtype != TC_F32 || c->out[2]->dtype != TC_F32)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "mean and rstd must be f32 for a %s input", tc_dtype_name(x->dtype));
    if (rows == 0) return TC_OK;
    const void *wb[2];
    tc_dtype wt;
    TC_TRY(ln_params(c, x->dtype, p, wb, &wt, n));
    float eps = (float)tc_node_float(c->node, 4);
    return relabel(c, tc_cuda_layer_norm(x->data, c->out[0]->data, x->dtype, rows, n, wb[0], wb[1], wt, eps,
                                         c->out[1]->data, c->out[2]->data, c->stream, c->err));
}

/* --- group norm ------------------------------------------------------------------------------ */

static tc_status cuda_group_norm(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    TC_TRY(check_input(c, x));
    if (x->rank < 2) return tc_cuda_fail(c, TC_ERR_SHAPE, "group norm needs an input of rank >= 2");
    int64_t N = tc_cuda_int(c, 3), C = tc_cuda_int(c, 4), HxW = tc_cuda_int(c, 5), G = tc_cuda_int(c, 6);
    int64_t hw = 1;
    for (int i = 2; i < x->rank; i++) hw *= x->dims[i];
    if (N != x->dims[0] || C != x->dims[1] || HxW != hw)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "N, C, HxW = %lld, %lld, %lld do not match the input (%lld, %lld, %lld)",
                            (long long)N, (long long)C, (long long)HxW, (long long)x->dims[0], (long long)x->dims[1],
                            (long long)hw);
    if (G <= 0 || C % G != 0)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "the %lld channels are not divisible into %lld groups", (long long)C,
                            (long long)G);
    tc_cuda_norm_param w, b;
    TC_TRY(param_of(c, 1, "weight", C, &w));
    TC_TRY(param_of(c, 2, "bias", C, &b));
    if (c->out[1]->dtype != x->dtype || c->out[2]->dtype != x->dtype)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "mean and rstd must have the input's dtype");
    float eps = (float)tc_node_float(c->node, 7);
    return relabel(c, tc_cuda_group_norm(x->data, c->out[0]->data, x->dtype, N, C, hw, G, w, b, eps, c->out[1]->data,
                                         c->out[2]->data, c->stream, c->err));
}

void tc_cuda_register_norm(tc_cuda_kernel *t) {
    t[TC_OP_BATCH_NORM_NO_TRAINING] = cuda_batch_norm;
    t[TC_OP_LAYER_NORM] = cuda_layer_norm;
    t[TC_OP_GROUP_NORM] = cuda_group_norm;
}
