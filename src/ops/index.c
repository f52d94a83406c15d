/* Shape and dtype inference for the indexing ops (embedding, index_select, gather, index.Tensor)
 * and the creation ops (full, full_like, empty_permuted, scalar_tensor, arange). */
#include "ops/op.h"
#include "ops/index_params.h"
#include "core/dtype.h"

#include <math.h>
#include <string.h>

static const char *dim_str(tc_infer_ctx *c, tc_dim d, char *buf, size_t size) {
    return tc_sym_print(&c->g->syms, d, buf, size);
}

/* a > b for every value of the symbols, where that can be shown from the symbols' ranges */
static bool dim_gt(tc_infer_ctx *c, tc_dim a, tc_dim b) {
    if (!TC_DIM_IS_SYM(a) && !TC_DIM_IS_SYM(b)) return a > b;
    if (a == b) return false;
    tc_dim diff;
    tc_error e;
    if (tc_sym_binop(&c->g->syms, TC_SYM_SUB, a, b, &diff, &e) != TC_OK) return false;
    if (!TC_DIM_IS_SYM(diff)) return diff > 0;
    /* a symbolic difference: only decide when every term is a non-negative multiple of sizes */
    const tc_sym_poly *p = c->g->syms.exprs.items[TC_DIM_SYM_BASE - diff];
    int64_t constant = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->terms[i].n == 0) constant = p->terms[i].coef;
        else if (p->terms[i].coef < 0) return false;
    }
    int64_t lo, hi;
    tc_infer_range(c, diff, &lo, &hi);
    return constant > 0 || lo > 0;
}

static bool is_index_dtype(tc_dtype t) { return t == TC_I64 || t == TC_I32; }

static tc_status check_index_dtype(tc_infer_ctx *c, const tc_value *v, const char *what) {
    if (is_index_dtype(v->dtype)) return TC_OK;
    return tc_infer_fail(c, TC_ERR_DTYPE, "%s must be int64 or int32, got %s", what, tc_dtype_name(v->dtype));
}

/* --- indexing -------------------------------------------------------------------------------- */

tc_status tc_infer_embedding(tc_infer_ctx *c) {
    const tc_value *w = tc_node_tensor(c->node, 0), *idx = tc_node_tensor(c->node, 1);
    if (w->rank != 2) return tc_infer_fail(c, TC_ERR_SHAPE, "weight must be 2-d, got rank %d", w->rank);
    TC_TRY(check_index_dtype(c, idx, "indices"));
    if (idx->rank + 1 > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "the result would have more than %d dims", TC_MAX_RANK);
    tc_dim out[TC_MAX_RANK];
    memcpy(out, idx->dims, sizeof(tc_dim) * (size_t)idx->rank);
    out[idx->rank] = w->dims[1];
    tc_infer_set(c, 0, w->dtype, idx->rank + 1, out);
    return TC_OK;
}

tc_status tc_infer_index_select(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0), *idx = tc_node_tensor(c->node, 2);
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status) return c->status;
    TC_TRY(check_index_dtype(c, idx, "index"));
    if (idx->rank > 1) return tc_infer_fail(c, TC_ERR_SHAPE, "index must be 0-d or 1-d, got rank %d", idx->rank);
    tc_dim n = idx->rank == 0 ? 1 : idx->dims[0];
    tc_dim out[TC_MAX_RANK];
    memcpy(out, x->dims, sizeof(tc_dim) * (size_t)x->rank);
    if (x->rank == 0) {
        if (n != 1 && !TC_DIM_IS_SYM(n))
            return tc_infer_fail(c, TC_ERR_SHAPE, "a 0-d input needs exactly one index, got %lld", (long long)n);
    } else {
        out[d] = n;
    }
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_gather(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0), *idx = tc_node_tensor(c->node, 2);
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status) return c->status;
    TC_TRY(check_index_dtype(c, idx, "index"));
    int xr = x->rank > 0 ? x->rank : 1, ir = idx->rank > 0 ? idx->rank : 1;
    if (xr != ir)
        return tc_infer_fail(c, TC_ERR_SHAPE, "index has rank %d but the input has rank %d (they must match)",
                             idx->rank, x->rank);
    char b1[96], b2[96];
    for (int k = 0; k < idx->rank && x->rank > 0; k++) {
        if (k == d || !dim_gt(c, idx->dims[k], x->dims[k])) continue;
        return tc_infer_fail(c, TC_ERR_SHAPE, "index has size %s at dim %d, larger than the input's %s", 
                             dim_str(c, idx->dims[k], b1, sizeof b1), k, dim_str(c, x->dims[k], b2, sizeof b2));
    }
    tc_infer_set(c, 0, x->dtype, idx->rank, idx->dims);
    return TC_OK;
}

/* Advanced indexing. The index tensors broadcast together; their result dims replace the indexed
 * dims where those are adjacent, and go first otherwise (PyTorch's rule). */
tc_status tc_infer_index_tensor(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    const tc_arg *a = tc_node_arg_at(c->node, 1);
    int64_t n = a->count;
    if (n > x->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "too many indices (%lld) for a tensor of rank %d", (long long)n, x->rank);
    int brank = 0, first = -1, last = -1, used = 0;
    tc_dim bdims[TC_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        const tc_value *v = a->u.tensors[i];
        if (!v) continue;
        if (v->dtype == TC_BOOL || v->dtype == TC_U8)
            return tc_infer_fail(c, TC_ERR_UNSUPPORTED,
                                 "indices[%lld] is a boolean mask: its result shape depends on the data, which "
                                 "inference cannot handle (use where() or masked_fill instead)", (long long)i);
        if (!is_index_dtype(v->dtype))
            return tc_infer_fail(c, TC_ERR_DTYPE, "indices[%lld] must be int64 or int32, got %s", (long long)i,
                                 tc_dtype_name(v->dtype));
        if (first < 0) {
            memcpy(bdims, v->dims, sizeof(tc_dim) * (size_t)v->rank);
            brank = v->rank;
            first = (int)i;
        } else {
            tc_dim tmp[TC_MAX_RANK];
            int r;
            if (!tc_infer_broadcast(c, brank, bdims, v->rank, v->dims, &r, tmp)) return c->status;
            memcpy(bdims, tmp, sizeof(tc_dim) * (size_t)r);
            brank = r;
        }
        last = (int)i;
        used++;
    }
    if (used == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "at least one index tensor must be given");
    bool adjacent = last - first + 1 == used;
    int rank = x->rank - used + brank;
    if (rank > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "the result would have %d dims; at most %d are supported", rank,
                             TC_MAX_RANK);
    tc_dim out[TC_MAX_RANK];
    int r = 0;
    if (!adjacent)
        for (int k = 0; k < brank; k++) out[r++] = bdims[k];
    for (int i = 0; i < x->rank; i++) {
        bool indexed = i < n && a->u.tensors[i];
        if (indexed && adjacent && i == first)
            for (int k = 0; k < brank; k++) out[r++] = bdims[k];
        if (!indexed) out[r++] = x->dims[i];
    }
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}

/* --- creation -------------------------------------------------------------------------------- */

/* The dtype PyTorch gives a tensor made from a Python scalar: f32 (the default float type) for a
 * float, i64 for an int, bool for a bool. */
static tc_dtype scalar_dtype(const tc_arg *s) {
    return s->kind == TC_ARG_FLOAT ? TC_F32 : s->kind == TC_ARG_BOOL ? TC_BOOL : TC_I64;
}

static bool scalar_is_sym(const tc_arg *s) { return s->kind == TC_ARG_INT && TC_DIM_IS_SYM(s->u.i); }

static tc_status check_fill(tc_infer_ctx *c, int argi) {
    if (scalar_is_sym(tc_node_arg_at(c->node, argi)))
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "a symbolic fill value is not supported");
    return TC_OK;
}

/* PyTorch refuses a fill value that overflows the result dtype (infinities and NaN pass; uint8
 * wraps negative values down to -255). */
static tc_status check_fill_fits(tc_infer_ctx *c, int argi, tc_dtype dt) {
    const tc_arg *s = tc_node_arg_at(c->node, argi);
    if (s->kind == TC_ARG_BOOL) return TC_OK;
    double v = s->kind == TC_ARG_FLOAT ? s->u.f : (double)s->u.i;
    if (isnan(v) || (isinf(v) && tc_dtype_is_float(dt))) return TC_OK;
    double lo, hi;
    switch (dt) {
    case TC_F16: lo = -65504.0, hi = 65504.0; break;
    case TC_BF16: lo = -3.3895313892515355e38, hi = 3.3895313892515355e38; break;
    case TC_F32: lo = -3.4028234663852886e38, hi = 3.4028234663852886e38; break;
    case TC_I64: lo = -9223372036854775808.0, hi = 9223372036854775807.0; break;
    case TC_I32: lo = -2147483648.0, hi = 2147483647.0; break;
    case TC_I8: lo = -128, hi = 127; break;
    case TC_U8: lo = -255, hi = 255; break;
    default: return TC_OK;
    }
    bool over = s->kind == TC_ARG_FLOAT && dt == TC_I64 ? (v >= hi || v < lo) : (v > hi || v < lo);
    if (over)
        return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "fill value %g cannot be converted to %s without overflow", v,
                             tc_dtype_name(dt));
    return TC_OK;
}

static tc_status sizes_arg(tc_infer_ctx *c, int argi, int *rank, tc_dim *dims) {
    int64_t n;
    const int64_t *size = tc_node_ints(c->node, argi, &n);
    if (n > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "size has %lld dims; at most %d are supported", (long long)n,
                             TC_MAX_RANK);
    for (int i = 0; i < n; i++) {
        if (!TC_DIM_IS_SYM(size[i]) && size[i] < 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "size[%d] is %lld; sizes must be >= 0", i, (long long)size[i]);
        dims[i] = size[i];
    }
    *rank = (int)n;
    return TC_OK;
}

tc_status tc_infer_full(tc_infer_ctx *c) {
    tc_dim dims[TC_MAX_RANK];
    int rank = 0;
    TC_TRY(sizes_arg(c, 0, &rank, dims));
    TC_TRY(check_fill(c, 1));
    tc_dtype dt = tc_node_dtype_or(c->node, 2, scalar_dtype(tc_node_arg_at(c->node, 1)));
    TC_TRY(check_fill_fits(c, 1, dt));
    tc_infer_set(c, 0, dt, rank, dims);
    return TC_OK;
}

tc_status tc_infer_full_like(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    TC_TRY(check_fill(c, 1));
    tc_dtype dt = tc_node_dtype_or(c->node, 2, x->dtype);
    TC_TRY(check_fill_fits(c, 1, dt));
    tc_infer_set(c, 0, dt, x->rank, x->dims);
    return TC_OK;
}

/* Memory is always dense in C order here, so the physical layout only has to be a permutation. */
tc_status tc_infer_empty_permuted(tc_infer_ctx *c) {
    tc_dim dims[TC_MAX_RANK];
    int rank = 0;
    TC_TRY(sizes_arg(c, 0, &rank, dims));
    int64_t n;
    const int64_t *perm = tc_node_ints(c->node, 1, &n);
    if (n != rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "physical_layout has %lld entries for %d dims", (long long)n, rank);
    bool seen[TC_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= rank || seen[perm[i]])
            return tc_infer_fail(c, TC_ERR_SHAPE, "physical_layout is not a permutation of 0..%d", rank - 1);
        seen[perm[i]] = true;
    }
    tc_infer_set(c, 0, tc_node_dtype_or(c->node, 2, TC_F32), rank, dims);
    return TC_OK;
}

tc_status tc_infer_scalar_tensor(tc_infer_ctx *c) {
    TC_TRY(check_fill(c, 0));
    tc_infer_set(c, 0, tc_node_dtype_or(c->node, 1, TC_F32), 0, NULL);
    return TC_OK;
}

/* Positions of start, end, step (-1 when absent) and dtype in the three arange overloads. */
typedef struct {
    int start, end, step, dtype;
} arange_args;

static arange_args arange_positions(int op) {
    if (op == TC_OP_ARANGE) return (arange_args){-1, 0, -1, 1};
    if (op == TC_OP_ARANGE_START) return (arange_args){0, 1, -1, 2};
    return (arange_args){0, 1, 2, 3};
}

static const tc_arg *arange_scalar(const tc_node *n, int pos, tc_arg *dflt, int64_t v) {
    if (pos >= 0) return tc_node_arg_at(n, pos);
    *dflt = (tc_arg){.kind = TC_ARG_INT, .u.i = v};
    return dflt;
}

static double scalar_f64(const tc_arg *s) {
    return s->kind == TC_ARG_FLOAT ? s->u.f : s->kind == TC_ARG_BOOL ? (double)s->u.b : (double)s->u.i;
}

/* The number of elements of arange with constant arguments, as PyTorch computes it: ceil((end -
 * start) / step) from the arguments as given, whatever the result dtype. -1 on bad arguments. */
static int64_t arange_length(double start, double end, double step, bool all_int, const char **why) {
    *why = NULL;
    if (isnan(start) || isnan(end) || isnan(step) || isinf(start) || isinf(end)) {
        *why = "start and end must be finite";
        return -1;
    }
    if (all_int) {
        /* exact where doubles are not (beyond 2^53) */
        int64_t s = (int64_t)start, e = (int64_t)end, st = (int64_t)step;
        if (st == 0) return *why = "step must be nonzero", -1;
        if ((st > 0 && e < s) || (st < 0 && e > s)) return *why = "upper bound and lower bound inconsistent with step sign", -1;
        int64_t sgn = st > 0 ? 1 : -1;
        return (e - s + st - sgn) / st;
    }
    if (step == 0) return *why = "step must be nonzero", -1;
    if ((step > 0 && end < start) || (step < 0 && end > start))
        return *why = "upper bound and lower bound inconsistent with step sign", -1;
    double n = ceil((end - start) / step);
    if (n > (double)INT64_MAX / 2) return *why = "the result would be too large", -1;
    return (int64_t)n;
}

tc_status tc_infer_arange(tc_infer_ctx *c) {
    arange_args p = arange_positions(c->node->op);
    tc_arg d0, d1;
    const tc_arg *start = arange_scalar(c->node, p.start, &d0, 0);
    const tc_arg *end = tc_node_arg_at(c->node, p.end);
    const tc_arg *step = arange_scalar(c->node, p.step, &d1, 1);
    bool any_float = start->kind == TC_ARG_FLOAT || end->kind == TC_ARG_FLOAT || step->kind == TC_ARG_FLOAT;
    tc_dtype dt = tc_node_dtype_or(c->node, p.dtype, any_float ? TC_F32 : TC_I64);
    if (dt == TC_BOOL) return tc_infer_fail(c, TC_ERR_DTYPE, "arange does not produce bool tensors");
    tc_dim len;
    if (scalar_is_sym(start) || scalar_is_sym(end) || scalar_is_sym(step)) {
        /* symbolic bounds: only integer start/end with a constant positive step */
        if (any_float || start->kind != TC_ARG_INT || end->kind != TC_ARG_INT || scalar_is_sym(step) ||
            step->u.i <= 0)
            return tc_infer_fail(c, TC_ERR_UNSUPPORTED,
                                 "arange with symbolic bounds needs integer start and end and a constant positive step");
        tc_dim span = tc_dim_sub(c, end->u.i, start->u.i);
        if (!TC_DIM_IS_SYM(span) && span < 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "end is before start by %lld", (long long)-span);
        len = step->u.i == 1 ? span : tc_dim_floordiv(c, tc_dim_add(c, span, step->u.i - 1), step->u.i);
        if (c->status) return c->status;
    } else {
        const char *why;
        len = arange_length(scalar_f64(start), scalar_f64(end), scalar_f64(step), !any_float, &why);
        if (len < 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "%s (start %g, end %g, step %g)", why, scalar_f64(start),
                                 scalar_f64(end), scalar_f64(step));
    }
    tc_infer_set(c, 0, dt, 1, &len);
    return TC_OK;
}

/* ---- shared by the backends' fill and arange kernels (index_params.h) ----------------------- */

void tc_scalar_to_elem(const tc_arg *s, tc_dtype dt, void *elem) {
    if (s->kind == TC_ARG_FLOAT) tc_store_f64(elem, dt, 0, s->u.f);
    else tc_store_i64(elem, dt, 0, s->kind == TC_ARG_BOOL ? (int64_t)s->u.b : s->u.i);
}

double tc_arange_arg(const tc_graph *g, const tc_node *n, const int64_t *symvals, int pos, double dflt, bool *is_int,
                     int64_t *iv) {
    if (pos < 0) {
        *iv = (int64_t)dflt, *is_int = true;
        return dflt;
    }
    const tc_arg *s = tc_node_arg_at(n, pos);
    if (s->kind == TC_ARG_FLOAT) {
        *is_int = false;
        *iv = 0;
        return s->u.f;
    }
    *is_int = true;
    *iv = s->kind == TC_ARG_BOOL ? (int64_t)s->u.b : tc_node_int_eval(g, n, pos, symvals);
    return (double)*iv;
}

tc_status tc_index_geometry(tc_shape_ref x, const tc_shape_ref *idx, int n, tc_shape_ref y, tc_index_geom *g,
                            tc_error *err) {
    memset(g, 0, sizeof *g);
    if (n > x.rank) return tc_errorf(err, TC_ERR_SHAPE, "%d indices for a rank-%d input", n, x.rank);
    int first = -1, last = -1;
    for (int i = 0; i < n; i++) {
        const tc_shape_ref *t = &idx[i];
        if (t->rank < 0) continue;
        if (first < 0) first = i;
        last = i;
        /* broadcast the runtime index shapes */
        int r = t->rank > g->brank ? t->rank : g->brank;
        int64_t nb[TC_MAX_RANK];
        for (int k = 0; k < r; k++) {
            int ka = k - (r - g->brank), kb = k - (r - t->rank);
            int64_t da = ka >= 0 ? g->bdims[ka] : 1, db = kb >= 0 ? t->dims[kb] : 1;
            if (g->n_idx > 0 && da != db && da != 1 && db != 1)
                return tc_errorf(err, TC_ERR_SHAPE, "index tensors cannot be broadcast together (%lld vs %lld)",
                                 (long long)da, (long long)db);
            nb[k] = g->n_idx == 0 ? db : (da == 1 ? db : da);
        }
        memcpy(g->bdims, nb, sizeof(int64_t) * (size_t)r);
        g->brank = r;
        g->src[g->n_idx] = i;
        g->idx_dim[g->n_idx++] = i;
    }
    if (g->n_idx == 0) return tc_errorf(err, TC_ERR_SHAPE, "no index tensor given");
    for (int t = 0; t < g->n_idx; t++) {
        const tc_shape_ref *it = &idx[g->src[t]];
        int64_t st[TC_MAX_RANK], acc = 1;
        for (int k = it->rank - 1; k >= 0; k--) st[k] = acc, acc *= it->dims[k];
        for (int m = 0; m < g->brank; m++) {
            int k = m - (g->brank - it->rank);
            g->istr[t][m] = k >= 0 && it->dims[k] != 1 ? st[k] : 0;
        }
    }
    if (last - first + 1 == g->n_idx) { /* adjacent */
        for (int i = 0; i < first; i++) g->rowsrc[g->n_rowdims] = i, g->rowdims[g->n_rowdims++] = x.dims[i];
        for (int m = 0; m < g->brank; m++) g->rowsrc[g->n_rowdims] = -1 - m, g->rowdims[g->n_rowdims++] = g->bdims[m];
    } else {
        for (int m = 0; m < g->brank; m++) g->rowsrc[g->n_rowdims] = -1 - m, g->rowdims[g->n_rowdims++] = g->bdims[m];
        for (int i = 0; i < last; i++) {
            if (i < n && idx[i].rank >= 0) continue;
            if (g->n_rowdims >= TC_MAX_RANK) return tc_errorf(err, TC_ERR_SHAPE, "the output rank is too large");
            g->rowsrc[g->n_rowdims] = i, g->rowdims[g->n_rowdims++] = x.dims[i];
        }
    }
    g->inner = 1;
    for (int i = last + 1; i < x.rank; i++) g->inner *= x.dims[i];
    bool ok = g->n_rowdims + (x.rank - last - 1) == y.rank;
    for (int k = 0; ok && k < g->n_rowdims; k++) ok = g->rowdims[k] == y.dims[k];
    if (!ok) return tc_errorf(err, TC_ERR_SHAPE, "the index shapes do not give the output shape inferred at build time");
    return TC_OK;
}
