/* CUDA kernels for the reduce ops: argument handling on the host (which dims a node reduces, the
 * [outer, R, inner] form, conversions into the f32 or int64 domain through scratch), mirroring
 * backend/cpu/reduce.c; the device code is in kernels/reduce.cu.
 * Scratch slots: 0 the input in its domain dtype, 1 the input permuted, 2 split partials, 3 means. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/reduce.h"
#include "core/dtype.h"
#include "ops/reduce_params.h"

#include <string.h>

/* Launcher messages go through tc_cuda_fail so that they name the node. */
static tc_status relabel(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK || !c->err) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

static tc_status oom(const tc_cuda_call *c, size_t bytes) {
    return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of device scratch memory (%zu bytes)", bytes);
}

static bool is_float16_32(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

/* The input's kept and reduced dim groups (ops/reduce_params.h). */
typedef tc_reduce_layout layout;

static void make_layout(const tc_cuda_tensor *x, const bool *red, layout *L) {
    tc_reduce_layout_make(x->rank, x->dims, red, L);
}


static tc_cuda_red_op op_of(int op) {
    switch (op) {
    case TC_OP_AMAX: return TC_CUDA_RED_MAX;
    case TC_OP_AMIN: return TC_CUDA_RED_MIN;
    case TC_OP_ARGMAX:
    case TC_OP_MAX_DIM: return TC_CUDA_RED_ARGMAX;
    case TC_OP_ARGMIN:
    case TC_OP_MIN_DIM: return TC_CUDA_RED_ARGMIN;
    case TC_OP_PROD_DIM: return TC_CUDA_RED_PROD;
    case TC_OP_ANY_DIM:
    case TC_OP_ANY_DIMS: return TC_CUDA_RED_ANY;
    case TC_OP_ALL_DIM:
    case TC_OP_ALL_DIMS: return TC_CUDA_RED_ALL;
    default: return TC_CUDA_RED_SUM;
    }
}

/* x's data in a dtype the kernels reduce in the wanted domain: floats stay f32/f16/bf16 (other
 * inputs become f32), integers stay (floats become int64 by truncation, or bool for any/all). */
static tc_status to_domain(const tc_cuda_call *c, const tc_cuda_tensor *x, bool float_dom, bool logical,
                           const void **data, tc_dtype *dt) {
    *data = x->data;
    *dt = x->dtype;
    tc_dtype want;
    if (float_dom) {
        if (is_float16_32(x->dtype)) return TC_OK;
        want = TC_F32;
    } else {
        if (!tc_dtype_is_float(x->dtype)) return TC_OK;
        want = logical ? TC_BOOL : TC_I64;
    }
    if (x->numel == 0) {
        *dt = want;
        return TC_OK;
    }
    size_t bytes = (size_t)x->numel * tc_dtype_size(want);
    void *buf = tc_cuda_scratch(c, 0, bytes);
    if (!buf) return oom(c, bytes);
    TC_TRY(relabel(c, tc_cuda_convert(x->data, x->dtype, buf, want, x->numel, c->stream, c->err)));
    *data = buf;
    *dt = want;
    return TC_OK;
}

/* The [outer, R, inner] form of the layout: one reduced group is read in place; several are
 * first gathered behind the kept dims (scratch slot 1) so that each output's elements are one
 * contiguous row, in the row-major order of the reduced dims (which arg indices count in). */
static tc_status arrange(const tc_cuda_call *c, const layout *L, const void **data, tc_dtype dt, int64_t *outer,
                         int64_t *R, int64_t *inner) {
    *outer = L->n_out, *R = L->n_red, *inner = 1;
    if (L->n_red == 0 || L->n_out == 0) return TC_OK;
    if (L->nr == 1) {
        *R = L->rd[0], *inner = L->rs[0];
        *outer = L->n_out / *inner;
        return TC_OK;
    }
    int64_t dims[TC_MAX_RANK], strides[TC_MAX_RANK];
    int rank = 0;
    for (int g = 0; g < L->nk; g++) dims[rank] = L->kd[g], strides[rank++] = L->ks[g];
    for (int g = 0; g < L->nr; g++) dims[rank] = L->rd[g], strides[rank++] = L->rs[g];
    TC_ASSERT(rank <= TC_MAX_RANK);
    size_t bytes = (size_t)(L->n_out * L->n_red) * tc_dtype_size(dt);
    void *buf = tc_cuda_scratch(c, 1, bytes);
    if (!buf) return oom(c, bytes);
    TC_TRY(relabel(c, tc_cuda_strided_copy(*data, buf, tc_dtype_size(dt), rank, dims, strides, c->stream, c->err)));
    *data = buf;
    return TC_OK;
}

static tc_status run_reduce(const tc_cuda_call *c, tc_cuda_reduce_args *a) {
    size_t bytes = tc_cuda_reduce_scratch_bytes(a);
    a->partial = NULL;
    if (bytes) {
        a->partial = tc_cuda_scratch(c, 2, bytes);
        if (!a->partial) return oom(c, bytes);
    }
    return relabel(c, tc_cuda_reduce(a, c->stream, c->err));
}

static tc_status reject_f64(const tc_cuda_call *c, tc_dtype a, tc_dtype b) {
    if (a == TC_F64 || b == TC_F64)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cuda reduction kernels");
    if (a == TC_F8E4M3 || b == TC_F8E4M3)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "f8e4m3 is storage only; cast it before reducing");
    return TC_OK;
}

/* Every reduction op but var: the domain follows the result dtype (floats, or exact integers;
 * any/all of anything run on x != 0). */
static tc_status cuda_reduce(const tc_cuda_call *c) {
    int op = c->node->op;
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(reject_f64(c, x->dtype, y->dtype));
    bool red[TC_MAX_RANK];
    tc_reduce_dims(c->node, x->rank, red);
    layout L;
    make_layout(x, red, &L);
    tc_cuda_reduce_args a;
    memset(&a, 0, sizeof a);
    a.op = op_of(op);
    a.fin = TC_CUDA_FIN_VALUE;
    bool has_identity = a.op == TC_CUDA_RED_SUM || a.op == TC_CUDA_RED_PROD || a.op == TC_CUDA_RED_ANY ||
                        a.op == TC_CUDA_RED_ALL;
    if (L.n_red == 0 && !has_identity) {
        for (int i = 0; i < x->rank; i++)
            if (red[i] && x->dims[i] == 0)
                return tc_cuda_fail(c, TC_ERR_SHAPE, "reducing over dim %d of size 0 has no result (the dim must be "
                                    "non-empty)", i);
        return tc_cuda_fail(c, TC_ERR_SHAPE, "reducing an empty tensor has no result");
    }
    if (op == TC_OP_ARGMAX || op == TC_OP_ARGMIN) a.fin = TC_CUDA_FIN_INDEX, a.idx = y->data;
    if (op == TC_OP_MAX_DIM || op == TC_OP_MIN_DIM) a.fin = TC_CUDA_FIN_VALUE_INDEX, a.idx = c->out[1]->data;
    if (op == TC_OP_MEAN_DIM) a.fin = TC_CUDA_FIN_MEAN;
    if ((a.fin == TC_CUDA_FIN_INDEX || a.fin == TC_CUDA_FIN_VALUE_INDEX) &&
        (a.fin == TC_CUDA_FIN_INDEX ? y : c->out[1])->dtype != TC_I64)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "indices must be i64");

    tc_dtype vt = a.fin == TC_CUDA_FIN_INDEX ? x->dtype : y->dtype;
    bool logical = a.op == TC_CUDA_RED_ANY || a.op == TC_CUDA_RED_ALL;
    bool float_dom = tc_dtype_is_float(vt) && !logical;
    if (a.fin != TC_CUDA_FIN_INDEX && float_dom && !is_float16_32(y->dtype))
        return tc_cuda_fail(c, TC_ERR_DTYPE, "result dtype %s is not supported", tc_dtype_name(y->dtype));
    const void *data;
    tc_dtype dt;
    TC_TRY(to_domain(c, x, float_dom, logical, &data, &dt));
    if (x->nhwc) {
        /* channels-last [N, H, W, C], reduced over H and W (the only reduction the executor lets
         * read one): rows of C, H * W of them per image */
        if (x->rank != 4 || red[0] || red[1] || !red[2] || !red[3])
            return tc_cuda_fail(c, TC_ERR_INTERNAL, "a channels-last input reduced over other dims than H and W");
        a.outer = x->dims[0], a.R = x->dims[2] * x->dims[3], a.inner = x->dims[1];
    } else {
        TC_TRY(arrange(c, &L, &data, dt, &a.outer, &a.R, &a.inner));
    }
    a.x = data;
    a.x_dtype = dt;
    if (a.fin != TC_CUDA_FIN_INDEX) a.y = y->data, a.y_dtype = y->dtype;
    return run_reduce(c, &a);
}

/* Two passes, as on the CPU: every output's mean (scratch slot 3), then the sum of squared
 * deviations from it divided by max(R - correction, 0). */
static tc_status cuda_var(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(reject_f64(c, x->dtype, y->dtype));
    if (!is_float16_32(x->dtype) || !is_float16_32(y->dtype))
        return tc_cuda_fail(c, TC_ERR_DTYPE, "var needs a floating input, got %s", tc_dtype_name(x->dtype));
    bool red[TC_MAX_RANK];
    tc_reduce_dims(c->node, x->rank, red);
    layout L;
    make_layout(x, red, &L);
    double corr = tc_node_float_or(c->node, 2, 1.0);
    double dof = (double)L.n_red - corr;
    tc_cuda_reduce_args a;
    memset(&a, 0, sizeof a);
    const void *data = x->data;
    TC_TRY(arrange(c, &L, &data, x->dtype, &a.outer, &a.R, &a.inner));
    size_t bytes = sizeof(float) * (size_t)(y->numel ? y->numel : 1);
    float *mean = tc_cuda_scratch(c, 3, bytes);
    if (!mean) return oom(c, bytes);
    a.op = TC_CUDA_RED_SUM;
    a.fin = TC_CUDA_FIN_MEAN;
    a.x = data;
    a.x_dtype = x->dtype;
    a.y = mean;
    a.y_dtype = TC_F32;
    TC_TRY(run_reduce(c, &a));
    a.op = TC_CUDA_RED_SQDEV;
    a.fin = TC_CUDA_FIN_VAR;
    a.mean = mean;
    a.divisor = dof > 0 ? dof : 0;
    a.y = y->data;
    a.y_dtype = y->dtype;
    return run_reduce(c, &a);
}

/* [outer, n, inner] around dim of x. */
static void scan_geometry(const tc_cuda_tensor *x, int64_t dim, int64_t *outer, int64_t *n, int64_t *inner) {
    int rank = x->rank;
    int d = rank == 0 ? 0 : (int)(dim < 0 ? dim + rank : dim);
    *outer = *n = *inner = 1;
    for (int i = 0; i < rank; i++) {
        if (i < d) *outer *= x->dims[i];
        else if (i == d) *n = x->dims[i];
        else *inner *= x->dims[i];
    }
}

static tc_status cuda_cumsum(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(reject_f64(c, x->dtype, y->dtype));
    int64_t outer, n, inner;
    scan_geometry(x, tc_node_int(c->node, 1), &outer, &n, &inner);
    bool float_dom = tc_dtype_is_float(y->dtype);
    if (float_dom ? !is_float16_32(y->dtype) : y->dtype == TC_BOOL)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "cumsum into %s is not supported", tc_dtype_name(y->dtype));
    const void *data;
    tc_dtype dt;
    TC_TRY(to_domain(c, x, float_dom, false, &data, &dt));
    return relabel(c, tc_cuda_cumsum(data, dt, y->data, y->dtype, outer, n, inner, c->stream, c->err));
}

static tc_status cuda_softmax(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(reject_f64(c, x->dtype, y->dtype));
    int64_t outer, n, inner;
    scan_geometry(x, tc_node_int(c->node, 1), &outer, &n, &inner);
    return relabel(c, tc_cuda_softmax(x->data, x->dtype, y->data, y->dtype, outer, n, inner,
                                      c->node->op == TC_OP_LOG_SOFTMAX, c->stream, c->err));
}

void tc_cuda_register_reduce(tc_cuda_kernel *t) {
    static const int reduce_ops[] = {TC_OP_SUM_DIM, TC_OP_SUM_ALL,  TC_OP_MEAN_DIM, TC_OP_AMAX,    TC_OP_AMIN,
                                     TC_OP_ARGMAX,  TC_OP_ARGMIN,   TC_OP_MAX_DIM,  TC_OP_MIN_DIM, TC_OP_ANY_DIM,
                                     TC_OP_ALL_DIM, TC_OP_ANY_DIMS, TC_OP_ALL_DIMS, TC_OP_PROD_DIM};
    for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++) t[reduce_ops[i]] = cuda_reduce;
    t[TC_OP_VAR_CORRECTION] = cuda_var;
    t[TC_OP_CUMSUM] = cuda_cumsum;
    t[TC_OP_SOFTMAX] = cuda_softmax;
    t[TC_OP_LOG_SOFTMAX] = cuda_softmax;
}
