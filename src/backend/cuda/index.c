/* CUDA kernels for the index ops: argument handling on the host; the device code is in
 * kernels/index.cu. Layouts and values follow backend/cpu/index.c. The CPU checks every index
 * before copying and fails the run; the GPU cannot read indices without a sync, so its kernels
 * check each one in place, never read out of bounds, write zeros for a bad one and raise the node's
 * device error word, which the executor turns into a failure of the run naming the node. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/index.h"
#include "core/dtype.h"
#include "ops/index_params.h"

#include <stdio.h>
#include <string.h>

static size_t esize_of(const tc_cuda_tensor *t) { return tc_dtype_size(t->dtype); }

/* Puts the node and op in front of a launcher's message. */
static tc_status relabel(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return TC_OK;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err ? c->err->msg : "launch failed");
    return tc_cuda_fail(c, s, "%s", msg);
}

static void strides_of(const tc_cuda_tensor *t, int64_t *st) {
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= t->dims[i];
    }
}

static tc_status check_index_dtype(const tc_cuda_call *c, const tc_cuda_tensor *t) {
    if (t->dtype == TC_I32 || t->dtype == TC_I64) return TC_OK;
    return tc_cuda_fail(c, TC_ERR_DTYPE, "indices must be int64 or int32, got %s", tc_dtype_name(t->dtype));
}

static tc_status cuda_embedding(const tc_cuda_call *c) {
    const tc_cuda_tensor *w = tc_cuda_in(c, 0), *ix = tc_cuda_in(c, 1);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(check_index_dtype(c, ix));
    if (w->rank != 2) return tc_cuda_fail(c, TC_ERR_SHAPE, "weight must be 2-D, got rank %d", w->rank);
    if (y->numel != ix->numel * w->dims[1])
        return tc_cuda_fail(c, TC_ERR_SHAPE, "output has %lld elements, expected %lld", (long long)y->numel,
                            (long long)(ix->numel * w->dims[1]));
    unsigned int *flag = tc_cuda_error_flag(c, "an index is out of range for dimension 0 of size %lld (the weight's "
                                               "rows)", (long long)w->dims[0]);
    if (!flag) return tc_cuda_fail(c, TC_ERR_INTERNAL, "no device error word for the index check");
    return relabel(c, tc_cuda_index_rows(w->data, y->data, (size_t)w->dims[1] * esize_of(w), ix->data, ix->dtype,
                                         ix->numel, 1, w->dims[0], flag, c->stream, c->err));
}

static tc_status cuda_index_select(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0), *ix = tc_cuda_in(c, 2);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(check_index_dtype(c, ix));
    int d = (int)tc_cuda_int(c, 1);
    d = x->rank == 0 ? 0 : d < 0 ? d + x->rank : d;
    if (x->rank > 0 && (d < 0 || d >= x->rank))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "dim %d is out of range for rank %d", d, x->rank);
    int64_t outer = 1, inner = 1, D = x->rank ? x->dims[d] : 1;
    for (int i = 0; i < d; i++) outer *= x->dims[i];
    for (int i = d + 1; i < x->rank; i++) inner *= x->dims[i];
    if (y->numel != outer * ix->numel * inner)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "output has %lld elements, expected %lld", (long long)y->numel,
                            (long long)(outer * ix->numel * inner));
    unsigned int *flag =
        tc_cuda_error_flag(c, "an index is out of range for dimension %d of size %lld", d, (long long)D);
    if (!flag) return tc_cuda_fail(c, TC_ERR_INTERNAL, "no device error word for the index check");
    return relabel(c, tc_cuda_index_rows(x->data, y->data, (size_t)inner * esize_of(x), ix->data, ix->dtype,
                                         ix->numel, outer, D, flag, c->stream, c->err));
}

static tc_status cuda_gather(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0), *ix = tc_cuda_in(c, 2);
    tc_cuda_tensor *y = c->out[0];
    TC_TRY(check_index_dtype(c, ix));
    int d = (int)tc_cuda_int(c, 1);
    d = x->rank == 0 ? 0 : d < 0 ? d + x->rank : d;
    if (x->rank > 0 && (d < 0 || d >= x->rank))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "dim %d is out of range for rank %d", d, x->rank);
    for (int k = 0; k < ix->rank && k < x->rank; k++)
        if (k != d && ix->dims[k] > x->dims[k])
            return tc_cuda_fail(c, TC_ERR_SHAPE, "index has size %lld at dim %d, larger than the input's %lld",
                                (long long)ix->dims[k], k, (long long)x->dims[k]);
    if (y->numel != ix->numel || (x->rank > 0 && (y->rank != x->rank || ix->rank != x->rank)))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "index and output shapes disagree with the input rank %d", x->rank);
    tc_cuda_gather_args a;
    memset(&a, 0, sizeof a);
    a.rank = x->rank == 0 ? 0 : y->rank; /* a single element: offset 0 */
    a.dim = d;
    a.size_d = x->rank ? x->dims[d] : 1;
    a.numel = y->numel;
    memcpy(a.ydims, y->dims, sizeof a.ydims);
    strides_of(x, a.xstrides);
    unsigned int *flag =
        tc_cuda_error_flag(c, "an index is out of range for dimension %d of size %lld", d, (long long)a.size_d);
    if (!flag) return tc_cuda_fail(c, TC_ERR_INTERNAL, "no device error word for the index check");
    return relabel(c, tc_cuda_gather_dim(x->data, y->data, esize_of(x), ix->data, ix->dtype, &a, flag, c->stream,
                                         c->err));
}

static tc_status cuda_index_tensor(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    int64_t n = c->node->args[1].a.count;
    tc_cuda_index_args j;
    memset(&j, 0, sizeof j);
    int64_t xs[TC_MAX_RANK];
    strides_of(x, xs);
    memcpy(j.xs, xs, sizeof j.xs);
    if (n > x->rank) return tc_cuda_fail(c, TC_ERR_SHAPE, "%lld indices for a rank-%d input", (long long)n, x->rank);
    tc_shape_ref refs[TC_MAX_RANK];
    const tc_cuda_tensor *its[TC_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        its[i] = tc_cuda_in_list(c, 1, i);
        if (its[i]) TC_TRY(check_index_dtype(c, its[i]));
        refs[i] = its[i] ? (tc_shape_ref){its[i]->rank, its[i]->dims} : (tc_shape_ref){-1, NULL};
    }
    tc_index_geom geo;
    tc_error why = {0};
    tc_status gs = tc_index_geometry((tc_shape_ref){x->rank, x->dims}, refs, (int)n, (tc_shape_ref){y->rank, y->dims},
                                     &geo, &why);
    if (gs != TC_OK) return tc_cuda_fail(c, gs, "%s", why.msg);
    j.n_idx = geo.n_idx, j.brank = geo.brank, j.n_rowdims = geo.n_rowdims;
    memcpy(j.idx_dim, geo.idx_dim, sizeof j.idx_dim);
    memcpy(j.istr, geo.istr, sizeof j.istr);
    memcpy(j.rowsrc, geo.rowsrc, sizeof j.rowsrc);
    memcpy(j.rowdims, geo.rowdims, sizeof j.rowdims);
    for (int t = 0; t < j.n_idx; t++) {
        const tc_cuda_tensor *it = its[geo.src[t]];
        j.idx[t] = it->data;
        j.idx_t[t] = it->dtype;
        j.idx_size[t] = x->dims[j.idx_dim[t]];
    }
    int64_t inner = geo.inner;
    j.inner_bytes = (size_t)inner * esize_of(x);
    j.rows = inner ? y->numel / inner : 0;
    if (y->numel == 0) return TC_OK;
    /* a zero-size row dim gives no rows; the kernel rejects size-0 dims it would divide by */
    for (int k = 0; k < j.n_rowdims; k++)
        if (j.rowdims[k] == 0) return TC_OK;
    char sizes[96];
    size_t len = 0;
    sizes[0] = 0;
    for (int t = 0; t < j.n_idx && len < sizeof sizes; t++)
        len += (size_t)snprintf(sizes + len, sizeof sizes - len, "%s%d of size %lld", t ? ", " : "", j.idx_dim[t],
                                (long long)j.idx_size[t]);
    unsigned int *flag =
        tc_cuda_error_flag(c, "an index is out of range for the dimension it indexes (dimension %s)", sizes);
    if (!flag) return tc_cuda_fail(c, TC_ERR_INTERNAL, "no device error word for the index check");
    return relabel(c, tc_cuda_index_tensor(x->data, y->data, esize_of(x), &j, flag, c->stream, c->err));
}

/* --- creation -------------------------------------------------------------------------------- */

static tc_status cuda_fill(const tc_cuda_call *c) {
    tc_cuda_tensor *y = c->out[0];
    int pos = c->node->op == TC_OP_SCALAR_TENSOR ? 0 : 1;
    uint64_t elem[2] = {0, 0};
    /* empty_permuted gives zeros, as the CPU does: deterministic, and a memset */
    if (c->node->op != TC_OP_EMPTY_PERMUTED) tc_scalar_to_elem(tc_node_arg_at(c->node, pos), y->dtype, elem);
    return relabel(c, tc_cuda_fill(y->data, esize_of(y), elem, y->numel, c->stream, c->err));
}

static tc_status cuda_arange(const tc_cuda_call *c) {
    tc_cuda_tensor *y = c->out[0];
    int op = c->node->op;
    int ps = op == TC_OP_ARANGE ? -1 : 0, pst = op == TC_OP_ARANGE_START_STEP ? 2 : -1;
    bool s_int, st_int;
    int64_t s_i, st_i;
    double s = tc_arange_arg(c->g, c->node, c->symvals, ps, 0, &s_int, &s_i),
           st = tc_arange_arg(c->g, c->node, c->symvals, pst, 1, &st_int, &st_i);
    if (!tc_dtype_is_int(y->dtype) && y->dtype != TC_F16 && y->dtype != TC_BF16 && y->dtype != TC_F32 &&
        y->dtype != TC_F64)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "arange does not produce %s tensors", tc_dtype_name(y->dtype));
    /* integer results accumulate in int64 from truncated arguments */
    int64_t a = s_int ? s_i : (int64_t)s, b = st_int ? st_i : (int64_t)st;
    return relabel(c, tc_cuda_arange(y->data, y->dtype, y->numel, s, st, a, b, c->stream, c->err));
}

void tc_cuda_register_index(tc_cuda_kernel *t) {
    t[TC_OP_EMBEDDING] = cuda_embedding;
    t[TC_OP_INDEX_SELECT] = cuda_index_select;
    t[TC_OP_GATHER] = cuda_gather;
    t[TC_OP_INDEX_TENSOR] = cuda_index_tensor;
    t[TC_OP_FULL] = cuda_fill;
    t[TC_OP_FULL_LIKE] = cuda_fill;
    t[TC_OP_EMPTY_PERMUTED] = cuda_fill;
    t[TC_OP_SCALAR_TENSOR] = cuda_fill;
    t[TC_OP_ARANGE] = cuda_arange;
    t[TC_OP_ARANGE_START] = cuda_arange;
    t[TC_OP_ARANGE_START_STEP] = cuda_arange;
}
