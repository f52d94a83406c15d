/* Strided views of the shape ops (shape_views.h). */
#include "ops/shape_views.h"

#include <string.h>

void tc_shape_contiguous_strides(int rank, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= dims[i];
    }
}

/* PyTorch's reading of slice bounds: negative from the end, clamped to [0, size]. */
static int64_t clamp_bound(int64_t v, int64_t size) {
    if (v < 0) v += size;
    if (v < 0) v = 0;
    if (v > size) v = size;
    return v;
}

static tc_status permute_view(const tc_graph *g, const tc_node *n, const int64_t *symvals, int r, const int64_t *xs,
                              int y_rank, tc_gather_view *v, tc_error *err) {
    int64_t perm[TC_VIEW_MAX_RANK];
    if (y_rank != r) return tc_errorf(err, TC_ERR_SHAPE, "output rank %d differs from input rank %d", y_rank, r);
    for (int i = 0; i < r; i++) perm[i] = i;
    if (n->op == TC_OP_PERMUTE) {
        int64_t k = tc_node_ints_eval(g, n, 1, symvals, perm, TC_VIEW_MAX_RANK);
        if (k != r) return tc_errorf(err, TC_ERR_SHAPE, "%lld dims given for a rank-%d input", (long long)k, r);
        for (int i = 0; i < r; i++) {
            perm[i] = perm[i] < 0 ? perm[i] + r : perm[i];
            if (perm[i] < 0 || perm[i] >= r)
                return tc_errorf(err, TC_ERR_SHAPE, "dim %d of the permutation is out of range", i);
        }
    } else if (n->op == TC_OP_T) {
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    } else if (r > 0) {
        int64_t a = tc_node_int_eval(g, n, 1, symvals), b = tc_node_int_eval(g, n, 2, symvals);
        a = a < 0 ? a + r : a, b = b < 0 ? b + r : b;
        if (a < 0 || a >= r || b < 0 || b >= r) return tc_errorf(err, TC_ERR_SHAPE, "transpose dims out of range");
        perm[a] = b, perm[b] = a;
    }
    for (int i = 0; i < r; i++) v->strides[i] = xs[perm[i]];
    return TC_OK;
}

/* The view of n's output over the memory of an input of x_dims laid out with strides xs. */
static tc_status view_over(const tc_graph *g, const tc_node *n, const int64_t *symvals, int x_rank,
                           const int64_t *x_dims, const int64_t *xs, int y_rank, const int64_t *y_dims,
                           tc_gather_view *v, tc_error *err) {
    memset(v, 0, sizeof *v);
    v->rank = y_rank;
    memcpy(v->dims, y_dims, (size_t)y_rank * sizeof *y_dims);
    switch (n->op) {
    case TC_OP_PERMUTE:
    case TC_OP_T:
    case TC_OP_TRANSPOSE_INT: return permute_view(g, n, symvals, x_rank, xs, y_rank, v, err);
    case TC_OP_EXPAND: {
        int lead = y_rank - x_rank;
        if (lead < 0) return tc_errorf(err, TC_ERR_SHAPE, "cannot expand rank %d to rank %d", x_rank, y_rank);
        for (int i = 0; i < y_rank; i++) {
            int64_t xd = i < lead ? 1 : x_dims[i - lead];
            if (i >= lead && xd == y_dims[i]) v->strides[i] = xs[i - lead];
            else if (xd == 1) v->strides[i] = 0;
            else
                return tc_errorf(err, TC_ERR_SHAPE, "cannot expand size %lld to %lld at dim %d", (long long)xd,
                                 (long long)y_dims[i], i);
        }
        return TC_OK;
    }
    case TC_OP_REPEAT: {
        int64_t rep[TC_VIEW_MAX_RANK];
        int64_t k = tc_node_ints_eval(g, n, 1, symvals, rep, TC_VIEW_MAX_RANK);
        int lead = (int)k - x_rank, r = 0;
        if (k < x_rank || k > TC_MAX_RANK || y_rank != k)
            return tc_errorf(err, TC_ERR_SHAPE, "%lld repeats for a rank-%d input", (long long)k, x_rank);
        for (int i = 0; i < k; i++) {
            v->dims[r] = rep[i], v->strides[r++] = 0;
            v->dims[r] = i < lead ? 1 : x_dims[i - lead];
            v->strides[r++] = i < lead ? 0 : xs[i - lead];
            if (rep[i] < 0 || rep[i] * v->dims[r - 1] != y_dims[i])
                return tc_errorf(err, TC_ERR_SHAPE, "repeat %lld of dim %d does not give the output size %lld",
                                 (long long)rep[i], i, (long long)y_dims[i]);
        }
        v->rank = r;
        return TC_OK;
    }
    case TC_OP_SLICE_TENSOR: {
        int d = (int)tc_node_int_eval(g, n, 1, symvals);
        d = d < 0 ? d + x_rank : d;
        if (d < 0 || d >= x_rank || y_rank != x_rank)
            return tc_errorf(err, TC_ERR_SHAPE, "slice dim %d is out of range for rank %d", d, x_rank);
        int64_t D = x_dims[d], step = tc_node_int_eval(g, n, 4, symvals);
        if (step < 1) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "slice step must be positive, got %lld", (long long)step);
        int64_t s = tc_node_is_none(n, 2) ? 0 : clamp_bound(tc_node_int_eval(g, n, 2, symvals), D);
        int64_t e = tc_node_is_none(n, 3) ? D : clamp_bound(tc_node_int_eval(g, n, 3, symvals), D);
        int64_t len = e > s ? (e - s + step - 1) / step : 0;
        if (len != y_dims[d])
            return tc_errorf(err, TC_ERR_SHAPE,
                             "the slice [%lld:%lld:%lld] of dim %d (size %lld) has %lld elements, but shape inference "
                             "assumed %lld for these input sizes",
                             (long long)s, (long long)e, (long long)step, d, (long long)D, (long long)len,
                             (long long)y_dims[d]);
        memcpy(v->strides, xs, (size_t)x_rank * sizeof *xs);
        v->base = s * xs[d];
        v->strides[d] *= step;
        return TC_OK;
    }
    case TC_OP_SELECT_INT: {
        int d = (int)tc_node_int_eval(g, n, 1, symvals);
        d = d < 0 ? d + x_rank : d;
        if (d < 0 || d >= x_rank || y_rank != x_rank - 1)
            return tc_errorf(err, TC_ERR_SHAPE, "select dim %d is out of range for rank %d", d, x_rank);
        int64_t D = x_dims[d], idx = tc_node_int_eval(g, n, 2, symvals);
        if (idx < -D || idx >= D)
            return tc_errorf(err, TC_ERR_SHAPE, "index %lld is out of range for dim %d of size %lld", (long long)idx, d,
                             (long long)D);
        if (idx < 0) idx += D;
        int r = 0;
        for (int i = 0; i < x_rank; i++)
            if (i != d) v->strides[r++] = xs[i];
        v->base = idx * xs[d];
        return TC_OK;
    }
    default: return tc_errorf(err, TC_ERR_INTERNAL, "%s is not read through a strided view", n->op_name);
    }
}

tc_status tc_shape_gather_view(const tc_graph *g, const tc_node *n, const int64_t *symvals, int x_rank,
                               const int64_t *x_dims, int y_rank, const int64_t *y_dims, tc_gather_view *v,
                               tc_error *err) {
    int64_t xs[TC_MAX_RANK];
    tc_shape_contiguous_strides(x_rank, x_dims, xs);
    return view_over(g, n, symvals, x_rank, x_dims, xs, y_rank, y_dims, v, err);
}

bool tc_shape_is_contiguous(int rank, const int64_t *dims, const int64_t *strides) {
    int64_t want = 1;
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 1) continue; /* one index: any stride */
        if (strides[i] != want) return false;
        want *= dims[i];
    }
    return true;
}

/* Walks both shapes in groups of dims with equal products. Within a group the input's dims (size
 * 1 left out) must be laid out one inside the other, stride[i] = stride[i + 1] * dims[i + 1]; the
 * group's output dims then get the strides of a contiguous block ending at the group's innermost
 * input stride. Size-1 output dims take the stride a contiguous layout would give them. */
bool tc_shape_reshape_strides(int x_rank, const int64_t *x_dims, const int64_t *x_strides, int y_rank,
                              const int64_t *y_dims, int64_t *y_strides) {
    int64_t xd[TC_MAX_RANK], xst[TC_MAX_RANK];
    int nx = 0;
    int64_t x_numel = 1, y_numel = 1;
    for (int i = 0; i < x_rank; i++) {
        x_numel *= x_dims[i];
        if (x_dims[i] != 1) xd[nx] = x_dims[i], xst[nx++] = x_strides[i];
    }
    for (int j = 0; j < y_rank; j++) y_numel *= y_dims[j];
    if (x_numel != y_numel || x_numel == 0) return false;
    int i = 0, j = 0;
    while (j < y_rank) {
        if (y_dims[j] == 1) { /* filled in below */
            j++;
            continue;
        }
        if (i >= nx) return false;
        int j0 = j;
        int64_t py = y_dims[j], px = xd[i];
        while (py != px) {
            if (py < px) {
                if (++j >= y_rank) return false;
                py *= y_dims[j];
            } else {
                if (i + 1 >= nx || xst[i] != xst[i + 1] * xd[i + 1]) return false;
                px *= xd[++i];
            }
        }
        int64_t st = xst[i];
        for (int k = j; k >= j0; k--) {
            y_strides[k] = st;
            st *= y_dims[k];
        }
        i++, j++;
    }
    if (i != nx) return false;
    int64_t st = 1;
    for (int k = y_rank - 1; k >= 0; k--) {
        if (y_dims[k] == 1) y_strides[k] = st;
        else st = y_strides[k] * y_dims[k];
    }
    return true;
}

bool tc_shape_is_view_op(int op) {
    switch (op) {
    case TC_OP_VIEW: case TC_OP_UNSAFE_VIEW: case TC_OP_RESHAPE: case TC_OP_SQUEEZE_DIMS: case TC_OP_SQUEEZE_DIM:
    case TC_OP_SQUEEZE: case TC_OP_UNSQUEEZE: case TC_OP_CLONE: case TC_OP_ALIAS: case TC_OP_DETACH:
    case TC_OP_CONTIGUOUS: case TC_OP_LIFT_FRESH_COPY: case TC_OP_FLATTEN_USING_INTS: case TC_OP_TO_COPY:
    case TC_OP_PERMUTE: case TC_OP_T: case TC_OP_TRANSPOSE_INT: case TC_OP_EXPAND: case TC_OP_SLICE_TENSOR:
    case TC_OP_SELECT_INT: return true;
    default: return false;
    }
}

bool tc_shape_strided_view(const tc_graph *g, const tc_node *n, const int64_t *symvals, int x_rank,
                           const int64_t *x_dims, const int64_t *x_strides, int64_t x_base, int y_rank,
                           const int64_t *y_dims, int64_t *y_strides, int64_t *y_base) {
    if (!tc_shape_is_view_op(n->op) || x_rank > TC_MAX_RANK || y_rank > TC_MAX_RANK) return false;
    switch (n->op) {
    case TC_OP_PERMUTE: case TC_OP_T: case TC_OP_TRANSPOSE_INT: case TC_OP_EXPAND: case TC_OP_SLICE_TENSOR:
    case TC_OP_SELECT_INT: {
        tc_gather_view v;
        tc_error why = {0};
        if (view_over(g, n, symvals, x_rank, x_dims, x_strides, y_rank, y_dims, &v, &why) != TC_OK) return false;
        if (v.rank != y_rank) return false;
        memcpy(y_strides, v.strides, (size_t)y_rank * sizeof *y_strides);
        *y_base = x_base + v.base;
        return true;
    }
    default: /* same element order: a reshape of the view */
        *y_base = x_base;
        return tc_shape_reshape_strides(x_rank, x_dims, x_strides, y_rank, y_dims, y_strides);
    }
}

void tc_shape_outer_inner(int rank, const int64_t *dims, int d, int64_t *outer, int64_t *inner) {
    *outer = 1, *inner = 1;
    for (int i = 0; i < d; i++) *outer *= dims[i];
    for (int i = d + 1; i < rank; i++) *inner *= dims[i];
}
