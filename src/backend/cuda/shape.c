/* CUDA kernels for the shape/copy ops: argument handling on the host; the device code is in
 * kernels/shape.cu. As on the CPU (backend/cpu/shape.c), every view-like op is one strided gather
 * from the contiguous input, order-keeping views are a device-to-device copy, cat converts rows
 * when its inputs' dtypes differ, and sizes that were symbolic at build time are checked here. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/shape.h"
#include "core/dtype.h"
#include "ops/shape_views.h"

#include <string.h>

static size_t esize_of(const tc_cuda_tensor *t) { return tc_dtype_size(t->dtype); }

/* Puts the node and op in front of a launcher's message. */
static tc_status relabel(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return TC_OK;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err ? c->err->msg : "launch failed");
    return tc_cuda_fail(c, s, "%s", msg);
}

static tc_status gather(const tc_cuda_call *c, const tc_cuda_tensor *x, tc_cuda_tensor *y, int rank,
                        const int64_t *dims, const int64_t *strides, int64_t base) {
    if (x->dtype != y->dtype)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "input is %s but the output is %s", tc_dtype_name(x->dtype),
                            tc_dtype_name(y->dtype));
    return relabel(c, tc_cuda_gather_copy(x->data, y->data, esize_of(y), rank, dims, strides, base, c->stream,
                                           c->err));
}

static const char *shape_str(const int64_t *d, int rank, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static tc_status copy_all(const tc_cuda_call *c, const tc_cuda_tensor *x, tc_cuda_tensor *y) {
    if (!y->numel || y->data == x->data) return TC_OK;
    /* same dtype and contiguous: one device-to-device memcpy, which graph capture records */
    return relabel(c, tc_cuda_convert_2d(x->data, x->dtype, y->numel, y->data, y->dtype, y->numel, 1, y->numel,
                                         c->stream, c->err));
}

/* view, _unsafe_view, reshape, flatten, squeeze, unsqueeze, clone, alias and the other no-ops */
static tc_status cuda_same_order(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    if (x->numel != y->numel) {
        char b1[200], b2[200];
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input %s has %lld elements but the output shape %s has %lld",
                            shape_str(x->dims, x->rank, b1, sizeof b1), (long long)x->numel,
                            shape_str(y->dims, y->rank, b2, sizeof b2), (long long)y->numel);
    }
    if (x->dtype != y->dtype)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "input is %s but the output is %s", tc_dtype_name(x->dtype),
                            tc_dtype_name(y->dtype));
    return copy_all(c, x, y);
}

static tc_status cuda_to_copy(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    if (x->numel != y->numel)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input has %lld elements, output %lld", (long long)x->numel,
                            (long long)y->numel);
    if (x->dtype == y->dtype) return copy_all(c, x, y);
    return relabel(c, tc_cuda_convert_2d(x->data, x->dtype, x->numel, y->data, y->dtype, y->numel, 1, x->numel,
                                         c->stream, c->err));
}

/* permute, t, transpose.int, expand, repeat, slice.Tensor, select.int: one strided gather */
static tc_status cuda_view(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    tc_gather_view v;
    tc_error why = {0};
    tc_status st = tc_shape_gather_view(c->g, c->node, c->symvals, x->rank, x->dims, y->rank, y->dims, &v, &why);
    if (st != TC_OK) return tc_cuda_fail(c, st, "%s", why.msg);
    if (v.rank > TC_CUDA_COPY_MAX_RANK) return tc_cuda_fail(c, TC_ERR_SHAPE, "a view of rank %d", v.rank);
    return gather(c, x, y, v.rank, v.dims, v.strides, v.base);
}

static tc_status cuda_split(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    int d = (int)tc_cuda_int(c, 2);
    d = d < 0 ? d + x->rank : d;
    if (d < 0 || d >= x->rank) return tc_cuda_fail(c, TC_ERR_SHAPE, "split dim %d is out of range for rank %d", d, x->rank);
    int64_t outer, inner, D = x->dims[d], off = 0;
    tc_shape_outer_inner(x->rank, x->dims, d, &outer, &inner);
    int n = c->node->n_outputs;
    for (int k = 0; k < n; k++) {
        if (c->out[k]->rank != x->rank) return tc_cuda_fail(c, TC_ERR_SHAPE, "output %d has rank %d", k, c->out[k]->rank);
        off += c->out[k]->dims[d];
    }
    if (off != D)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "the pieces add up to %lld but dim %d has size %lld", (long long)off, d,
                            (long long)D);
    off = 0;
    for (int k = 0; k < n; k++) {
        tc_cuda_tensor *y = c->out[k];
        int64_t len = y->dims[d];
        int64_t dims[2] = {outer, len * inner}, st[2] = {D * inner, 1};
        if (y->numel) TC_TRY(gather(c, x, y, 2, dims, st, off * inner));
        off += len;
    }
    return TC_OK;
}

static tc_status cuda_cat(const tc_cuda_call *c) {
    tc_cuda_tensor *y = c->out[0];
    int64_t n = c->node->args[0].a.count;
    int d = (int)tc_cuda_int(c, 1);
    d = d < 0 ? d + y->rank : d;
    if (d < 0 || d >= y->rank) return tc_cuda_fail(c, TC_ERR_SHAPE, "cat dim %d is out of range for rank %d", d, y->rank);
    int64_t outer, inner, total = 0;
    tc_shape_outer_inner(y->rank, y->dims, d, &outer, &inner);
    for (int64_t k = 0; k < n; k++) {
        const tc_cuda_tensor *x = tc_cuda_in_list(c, 0, k);
        if (!x || x->numel == 0) continue; /* empty pieces add nothing, whatever their shape */
        bool ok = x->rank == y->rank;
        for (int i = 0; ok && i < y->rank; i++) ok = i == d || x->dims[i] == y->dims[i];
        if (!ok) {
            char b1[200], b2[200];
            return tc_cuda_fail(c, TC_ERR_SHAPE,
                                "tensor %lld has shape %s, which does not fit the output %s along dim %d", (long long)k,
                                shape_str(x->dims, x->rank, b1, sizeof b1), shape_str(y->dims, y->rank, b2, sizeof b2),
                                d);
        }
        total += x->dims[d];
    }
    if (total != y->dims[d])
        return tc_cuda_fail(c, TC_ERR_SHAPE, "the inputs add up to %lld along dim %d but the output has %lld",
                            (long long)total, d, (long long)y->dims[d]);
    const int64_t out_cols = y->dims[d] * inner;
    int64_t col = 0;
    for (int64_t k = 0; k < n; k++) {
        const tc_cuda_tensor *x = tc_cuda_in_list(c, 0, k);
        if (!x || x->numel == 0) continue;
        int64_t w = x->dims[d] * inner;
        char *dst = (char *)y->data + (size_t)col * esize_of(y);
        TC_TRY(relabel(c, tc_cuda_convert_2d(x->data, x->dtype, w, dst, y->dtype, out_cols, outer, w, c->stream,
                                             c->err)));
        col += w;
    }
    return TC_OK;
}

void tc_cuda_register_shape(tc_cuda_kernel *t) {
    static const int same_order[] = {TC_OP_VIEW,        TC_OP_UNSAFE_VIEW, TC_OP_RESHAPE, TC_OP_SQUEEZE_DIMS,
                                     TC_OP_SQUEEZE_DIM, TC_OP_SQUEEZE,     TC_OP_UNSQUEEZE, TC_OP_CLONE,
                                     TC_OP_ALIAS,       TC_OP_DETACH,      TC_OP_CONTIGUOUS, TC_OP_LIFT_FRESH_COPY,
                                     TC_OP_FLATTEN_USING_INTS};
    for (size_t i = 0; i < sizeof same_order / sizeof same_order[0]; i++) t[same_order[i]] = cuda_same_order;
    t[TC_OP_TO_COPY] = cuda_to_copy;
    t[TC_OP_PERMUTE] = cuda_view;
    t[TC_OP_T] = cuda_view;
    t[TC_OP_TRANSPOSE_INT] = cuda_view;
    t[TC_OP_EXPAND] = cuda_view;
    t[TC_OP_REPEAT] = cuda_view;
    t[TC_OP_SLICE_TENSOR] = cuda_view;
    t[TC_OP_SELECT_INT] = cuda_view;
    t[TC_OP_SPLIT_WITH_SIZES] = cuda_split;
    t[TC_OP_SPLIT_TENSOR] = cuda_split;
    t[TC_OP_CAT] = cuda_cat;
}
