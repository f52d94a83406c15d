/* Shape and dtype inference for the shape/copy ops (view, permute, expand, cat, slice, select,
 * squeeze, split, repeat, dtype conversion). Sizes may be symbolic: everything is computed with the
 * canonical size expressions of core/sym.h, and where a check cannot be decided at build time it is
 * left to the CPU kernel, which re-checks with the real sizes. */
#include "ops/op.h"
#include "core/dtype.h"

#include <string.h>

/* --- symbolic size helpers ------------------------------------------------------------------- */

static bool dim_bounds_in(const tc_symtab *t, tc_dim d, double *lo, double *hi, int depth);

/* Interval of one atom; false when it cannot be bounded. */
static bool atom_bounds(const tc_symtab *t, int id, double *lo, double *hi, int depth) {
    const tc_sym_atom *a = t->atoms.items[id];
    if (a->kind == TC_ATOM_SYMBOL) {
        *lo = (double)a->min, *hi = (double)a->max;
        return true;
    }
    double al, ah, bl, bh;
    if (!dim_bounds_in(t, a->a, &al, &ah, depth + 1) || !dim_bounds_in(t, a->b, &bl, &bh, depth + 1)) return false;
    if (al < 0 || bl <= 0) return false;
    if (a->kind == TC_ATOM_MOD) {
        *lo = 0, *hi = bh - 1;
    } else {
        *lo = (double)(int64_t)(al / bh), *hi = (double)(int64_t)(ah / bl);
    }
    return true;
}

/* Interval of a size expression over its symbols' ranges. Atoms are sizes (never negative), so
 * each monomial grows with every atom and its extremes sit at the atoms' extremes. */
static bool dim_bounds_in(const tc_symtab *t, tc_dim d, double *lo, double *hi, int depth) {
    if (!TC_DIM_IS_SYM(d)) {
        *lo = *hi = (double)d;
        return true;
    }
    if (depth > 8) return false;
    const tc_sym_poly *p = t->exprs.items[TC_DIM_SYM_BASE - d];
    double L = 0, H = 0;
    for (int i = 0; i < p->n; i++) {
        double ml = 1, mh = 1;
        for (int k = 0; k < p->terms[i].n; k++) {
            double al, ah;
            if (!atom_bounds(t, p->terms[i].atoms[k], &al, &ah, depth) || al < 0) return false;
            ml *= al, mh *= ah;
        }
        double cf = (double)p->terms[i].coef;
        if (cf >= 0) L += cf * ml, H += cf * mh;
        else L += cf * mh, H += cf * ml;
    }
    *lo = L, *hi = H;
    return true;
}

/* b - a >= lo_margin for every value of the symbols (a <= b when margin 0, a < b when 1). */
static bool dim_diff_at_least(tc_infer_ctx *c, tc_dim a, tc_dim b, double margin) {
    if (a == b) return margin <= 0;
    if (!TC_DIM_IS_SYM(a) && !TC_DIM_IS_SYM(b)) return (double)b - (double)a >= margin;
    tc_dim diff;
    tc_error e;
    if (tc_sym_binop(&c->g->syms, TC_SYM_SUB, b, a, &diff, &e) != TC_OK) return false;
    double lo, hi;
    return dim_bounds_in(&c->g->syms, diff, &lo, &hi, 0) && lo >= margin;
}
static bool dim_le(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_diff_at_least(c, a, b, 0); }
static bool dim_lt(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_diff_at_least(c, a, b, 1); }
/* a != b for every value of the symbols. */
static bool dim_ne(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_lt(c, a, b) || dim_lt(c, b, a); }

static const char *dim_str(tc_infer_ctx *c, tc_dim d, char *buf, size_t size) {
    return tc_sym_print(&c->g->syms, d, buf, size);
}

static const char *dims_str(tc_infer_ctx *c, int rank, const tc_dim *d, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && len < size; i++) {
        char one[96];
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", dim_str(c, d[i], one, sizeof one));
    }
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static tc_dim numel_of(tc_infer_ctx *c, int rank, const tc_dim *d) {
    tc_dim n = 1;
    for (int i = 0; i < rank; i++) n = tc_dim_mul(c, n, d[i]);
    return n;
}

/* A size argument: a constant >= 0 or a symbolic size. */
static bool check_size(tc_infer_ctx *c, tc_dim s, const char *what, int i) {
    if (!TC_DIM_IS_SYM(s) && s < 0) {
        tc_infer_fail(c, TC_ERR_SHAPE, "%s[%d] is %lld; sizes must be >= 0", what, i, (long long)s);
        return false;
    }
    return true;
}

/* --- identity-like ops ----------------------------------------------------------------------- */

tc_status tc_infer_same_type(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_infer_set(c, 0, x->dtype, x->rank, x->dims);
    return TC_OK;
}

tc_status tc_infer_to_copy(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_infer_set(c, 0, tc_node_dtype_or(c->node, 1, x->dtype), x->rank, x->dims);
    return TC_OK;
}

/* --- view / reshape -------------------------------------------------------------------------- */

tc_status tc_infer_view(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *size = tc_node_ints(c->node, 1, &n);
    if (n > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "target shape has %lld dims; at most %d are supported",
                             (long long)n, TC_MAX_RANK);
    tc_dim out[TC_MAX_RANK];
    int infer = -1;
    tc_dim known = 1;
    for (int i = 0; i < n; i++) {
        out[i] = size[i];
        if (size[i] == -1) {
            if (infer >= 0) return tc_infer_fail(c, TC_ERR_SHAPE, "only one dimension can be -1 (dims %d and %d are)", infer, i);
            infer = i;
            continue;
        }
        if (!check_size(c, size[i], "size", i)) return c->status;
        known = tc_dim_mul(c, known, size[i]);
    }
    tc_dim numel = numel_of(c, x->rank, x->dims);
    if (c->status) return c->status;
    char b1[300], b2[96];
    if (infer >= 0) {
        if (known == 0)
            return tc_infer_fail(c, TC_ERR_SHAPE,
                                 "cannot infer the -1 in shape %s: the other dims have zero elements",
                                 dims_str(c, (int)n, out, b1, sizeof b1));
        tc_dim rem;
        tc_error e;
        if (tc_sym_binop(&c->g->syms, TC_SYM_MOD, numel, known, &rem, &e) != TC_OK)
            return tc_infer_fail(c, e.status, "%s", e.msg);
        if (!TC_DIM_IS_SYM(rem) && rem != 0)
            return tc_infer_fail(c, TC_ERR_SHAPE, "shape %s is invalid for an input of %s elements (%s)",
                                 dims_str(c, (int)n, out, b1, sizeof b1), dim_str(c, numel, b2, sizeof b2),
                                 tc_value_type_string(c->g, x, (char[160]){0}, 160));
        out[infer] = tc_dim_floordiv(c, numel, known);
    } else if (dim_ne(c, numel, known)) {
        return tc_infer_fail(c, TC_ERR_SHAPE, "shape %s is invalid for an input of %s elements (%s)",
                             dims_str(c, (int)n, out, b1, sizeof b1), dim_str(c, numel, b2, sizeof b2),
                             tc_value_type_string(c->g, x, (char[160]){0}, 160));
    }
    if (c->status) return c->status;
    tc_infer_set(c, 0, x->dtype, (int)n, out);
    return TC_OK;
}

tc_status tc_infer_flatten(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->rank == 0) {
        tc_dim one = 1;
        tc_infer_dim_index(c, tc_node_int(c->node, 1), 0, "start_dim");
        tc_infer_dim_index(c, tc_node_int(c->node, 2), 0, "end_dim");
        if (c->status) return c->status;
        tc_infer_set(c, 0, x->dtype, 1, &one);
        return TC_OK;
    }
    int s = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "start_dim");
    int e = tc_infer_dim_index(c, tc_node_int(c->node, 2), x->rank, "end_dim");
    if (c->status) return c->status;
    if (s > e) return tc_infer_fail(c, TC_ERR_SHAPE, "start_dim (%d) comes after end_dim (%d)", s, e);
    tc_dim out[TC_MAX_RANK];
    int r = 0;
    for (int i = 0; i < s; i++) out[r++] = x->dims[i];
    out[r++] = numel_of(c, e - s + 1, x->dims + s);
    for (int i = e + 1; i < x->rank; i++) out[r++] = x->dims[i];
    if (c->status) return c->status;
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}

/* --- permutations ---------------------------------------------------------------------------- */

tc_status tc_infer_permute(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *dims = tc_node_ints(c->node, 1, &n);
    if (n != x->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "dims has %lld entries for a tensor of rank %d", (long long)n, x->rank);
    tc_dim out[TC_MAX_RANK];
    bool seen[TC_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int d = tc_infer_dim_index(c, dims[i], x->rank, "dim");
        if (c->status) return c->status;
        if (seen[d]) return tc_infer_fail(c, TC_ERR_SHAPE, "dim %d appears more than once in the permutation", d);
        seen[d] = true;
        out[i] = x->dims[d];
    }
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_t(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->rank > 2) return tc_infer_fail(c, TC_ERR_SHAPE, "t() expects a tensor of rank <= 2, got rank %d", x->rank);
    tc_dim out[2] = {0};
    for (int i = 0; i < x->rank; i++) out[i] = x->dims[x->rank - 1 - i];
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_transpose(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int a = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim0");
    int b = tc_infer_dim_index(c, tc_node_int(c->node, 2), x->rank, "dim1");
    if (c->status) return c->status;
    tc_dim out[TC_MAX_RANK];
    memcpy(out, x->dims, sizeof(tc_dim) * (size_t)x->rank);
    if (x->rank > 0) {
        out[a] = x->dims[b];
        out[b] = x->dims[a];
    }
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

/* --- broadcasting copies --------------------------------------------------------------------- */

tc_status tc_infer_expand(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *size = tc_node_ints(c->node, 1, &n);
    if (n > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "expanded shape has %lld dims; at most %d are supported",
                             (long long)n, TC_MAX_RANK);
    if (n < x->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "the expanded shape has %lld dims, fewer than the tensor's %d",
                             (long long)n, x->rank);
    tc_dim out[TC_MAX_RANK];
    char b1[96], b2[96];
    int lead = (int)n - x->rank;
    for (int i = 0; i < n; i++) {
        tc_dim s = size[i];
        if (i < lead) {
            if (s == -1) return tc_infer_fail(c, TC_ERR_SHAPE, "-1 is not allowed for the new leading dim %d", i);
            if (!check_size(c, s, "size", i)) return c->status;
            out[i] = s;
            continue;
        }
        tc_dim xd = x->dims[i - lead];
        if (s == -1 || s == xd) {
            out[i] = xd;
        } else if (!check_size(c, s, "size", i)) {
            return c->status;
        } else if (xd == 1) {
            out[i] = s;
        } else if (!TC_DIM_IS_SYM(xd) || dim_ne(c, xd, s)) {
            return tc_infer_fail(c, TC_ERR_SHAPE,
                                 "cannot expand size %s to %s at dim %d (only size-1 dims can be expanded)",
                                 dim_str(c, xd, b1, sizeof b1), dim_str(c, s, b2, sizeof b2), i);
        } else {
            out[i] = s; /* a symbolic size that must be 1 or s: the kernel checks which */
        }
    }
    tc_infer_set(c, 0, x->dtype, (int)n, out);
    return TC_OK;
}

tc_status tc_infer_repeat(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *rep = tc_node_ints(c->node, 1, &n);
    if (n < x->rank)
        return tc_infer_fail(c, TC_ERR_SHAPE, "repeats has %lld entries, fewer than the tensor's %d dims",
                             (long long)n, x->rank);
    if (n > TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "repeats has %lld entries; at most %d dims are supported",
                             (long long)n, TC_MAX_RANK);
    tc_dim out[TC_MAX_RANK];
    int lead = (int)n - x->rank;
    for (int i = 0; i < n; i++) {
        if (!check_size(c, rep[i], "repeats", i)) return c->status;
        out[i] = i < lead ? rep[i] : tc_dim_mul(c, rep[i], x->dims[i - lead]);
    }
    if (c->status) return c->status;
    tc_infer_set(c, 0, x->dtype, (int)n, out);
    return TC_OK;
}

/* --- concatenation and splitting ------------------------------------------------------------- */

/* PyTorch still accepts 1-d tensors of size 0 in any cat and skips them. */
static bool cat_skipped(const tc_value *v) { return v->rank == 1 && v->dims[0] == 0; }

tc_status tc_infer_cat(tc_infer_ctx *c) {
    const tc_arg *a = tc_node_arg_at(c->node, 0);
    int64_t count = a->count;
    if (count == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "expects a non-empty list of tensors");
    /* all operands take part in type promotion, as in PyTorch, even the skipped ones */
    tc_dtype dt = a->u.tensors[0]->dtype;
    int ref = -1;
    for (int64_t i = 0; i < count; i++) {
        const tc_value *v = a->u.tensors[i];
        dt = tc_promote_types(dt, v->dtype);
        if (ref < 0 && !cat_skipped(v)) ref = (int)i;
    }
    if (ref < 0) {
        tc_dim zero = 0;
        tc_infer_set(c, 0, dt, 1, &zero);
        return TC_OK;
    }
    const tc_value *r = a->u.tensors[ref];
    if (r->rank == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "tensor %d is zero-dimensional and cannot be concatenated", ref);
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), r->rank, "dim");
    if (c->status) return c->status;
    tc_dim out[TC_MAX_RANK];
    memcpy(out, r->dims, sizeof(tc_dim) * (size_t)r->rank);
    out[d] = 0;
    char b1[96], b2[96];
    for (int64_t i = 0; i < count; i++) {
        const tc_value *v = a->u.tensors[i];
        if (cat_skipped(v)) continue;
        if (v->rank != r->rank)
            return tc_infer_fail(c, TC_ERR_SHAPE, "tensor %lld has rank %d but tensor %d has rank %d", (long long)i,
                                 v->rank, ref, r->rank);
        for (int k = 0; k < r->rank; k++) {
            if (k == d || !dim_ne(c, v->dims[k], r->dims[k])) continue;
            return tc_infer_fail(c, TC_ERR_SHAPE,
                                 "tensor %lld has size %s at dim %d but tensor %d has %s (only dim %d may differ)",
                                 (long long)i, dim_str(c, v->dims[k], b1, sizeof b1), k, ref,
                                 dim_str(c, r->dims[k], b2, sizeof b2), d);
        }
        out[d] = tc_dim_add(c, out[d], v->dims[d]);
    }
    if (c->status) return c->status;
    tc_infer_set(c, 0, dt, r->rank, out);
    return TC_OK;
}

tc_status tc_infer_split_with_sizes(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    int64_t n;
    const int64_t *sizes = tc_node_ints(c->node, 1, &n);
    if (x->rank == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "cannot split a zero-dimensional tensor");
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 2), x->rank, "dim");
    if (c->status) return c->status;
    if (n == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "split_sizes is empty");
    if (n > TC_OP_MAX_OUTPUTS)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "%lld pieces; at most %d are supported", (long long)n,
                             TC_OP_MAX_OUTPUTS);
    tc_dim total = 0;
    tc_dim out[TC_MAX_RANK];
    memcpy(out, x->dims, sizeof(tc_dim) * (size_t)x->rank);
    for (int i = 0; i < n; i++) {
        if (!check_size(c, sizes[i], "split_sizes", i)) return c->status;
        total = tc_dim_add(c, total, sizes[i]);
        out[d] = sizes[i];
        tc_infer_set(c, i, x->dtype, x->rank, out);
    }
    char b1[96], b2[96];
    if (!c->status && dim_ne(c, total, x->dims[d]))
        return tc_infer_fail(c, TC_ERR_SHAPE, "split_sizes add up to %s but dim %d has size %s",
                             dim_str(c, total, b1, sizeof b1), d, dim_str(c, x->dims[d], b2, sizeof b2));
    return c->status;
}

tc_status tc_infer_split(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    tc_dim ss = tc_node_int(c->node, 1);
    if (x->rank == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "cannot split a zero-dimensional tensor");
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 2), x->rank, "dim");
    if (c->status) return c->status;
    tc_dim D = x->dims[d];
    tc_dim out[TC_MAX_RANK];
    memcpy(out, x->dims, sizeof(tc_dim) * (size_t)x->rank);
    if (ss == D) {
        tc_infer_set(c, 0, x->dtype, x->rank, out);
        return TC_OK;
    }
    char b1[96];
    if (TC_DIM_IS_SYM(ss) || TC_DIM_IS_SYM(D))
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED,
                             "splitting dim %d of size %s into pieces of %s: the number of outputs would depend on "
                             "the input size (split_with_sizes with explicit sizes is supported)",
                             d, dim_str(c, D, b1, sizeof b1), dim_str(c, ss, (char[96]){0}, 96));
    if (ss < 0) return tc_infer_fail(c, TC_ERR_SHAPE, "split_size must be >= 0, got %lld", (long long)ss);
    if (ss == 0 && D != 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "split_size can only be 0 if dim %d has size 0, but it has %lld", d,
                             (long long)D);
    int64_t pieces = D == 0 ? 1 : (D + ss - 1) / ss;
    if (pieces > TC_OP_MAX_OUTPUTS)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "%lld pieces; at most %d are supported", (long long)pieces,
                             TC_OP_MAX_OUTPUTS);
    for (int64_t i = 0; i < pieces; i++) {
        out[d] = D == 0 ? 0 : (i == pieces - 1 ? D - ss * (pieces - 1) : ss);
        tc_infer_set(c, (int)i, x->dtype, x->rank, out);
    }
    return TC_OK;
}

/* --- slicing and selecting ------------------------------------------------------------------- */

/* Clamps v into [lo, hi] where the order is provable; otherwise keeps v and leaves the check to
 * the kernel (torch.export has already guarded such slices to be in range). */
static tc_dim clamp_dim(tc_infer_ctx *c, tc_dim v, tc_dim lo, tc_dim hi) {
    if (dim_lt(c, v, lo)) return lo;
    if (dim_lt(c, hi, v)) return hi;
    return v;
}

/* A slice bound as PyTorch reads it: negative counts from the end, then clamped to [0, D]. */
static tc_dim slice_bound(tc_infer_ctx *c, tc_dim v, tc_dim D) {
    if (!TC_DIM_IS_SYM(v) && v >= INT64_MAX / 4) return D; /* "to the end", as torch.export writes it */
    if (!TC_DIM_IS_SYM(v) && v <= -(INT64_MAX / 4)) return 0;
    if (!TC_DIM_IS_SYM(v) && v < 0) v = tc_dim_add(c, D, v);
    return clamp_dim(c, v, 0, D);
}

tc_status tc_infer_slice(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->rank == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "cannot slice a zero-dimensional tensor");
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status) return c->status;
    tc_dim step = tc_node_int(c->node, 4);
    if (TC_DIM_IS_SYM(step)) return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "a symbolic slice step is not supported");
    if (step <= 0) return tc_infer_fail(c, TC_ERR_SHAPE, "slice step must be positive, got %lld", (long long)step);
    tc_dim D = x->dims[d];
    tc_dim s = slice_bound(c, tc_node_int_or(c->node, 2, 0), D);
    tc_dim e = slice_bound(c, tc_node_int_or(c->node, 3, INT64_MAX), D);
    if (c->status) return c->status;
    tc_dim len;
    if (dim_le(c, e, s)) len = 0;
    else len = tc_dim_floordiv(c, tc_dim_add(c, tc_dim_sub(c, e, s), step - 1), step);
    if (c->status) return c->status;
    tc_dim out[TC_MAX_RANK];
    memcpy(out, x->dims, sizeof(tc_dim) * (size_t)x->rank);
    out[d] = len;
    tc_infer_set(c, 0, x->dtype, x->rank, out);
    return TC_OK;
}

tc_status tc_infer_select(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->rank == 0) return tc_infer_fail(c, TC_ERR_SHAPE, "select() cannot be applied to a zero-dimensional tensor");
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank, "dim");
    if (c->status) return c->status;
    tc_dim D = x->dims[d];
    tc_dim idx = tc_node_int(c->node, 2);
    char b1[96];
    if (!TC_DIM_IS_SYM(idx)) {
        bool out_of_range = idx >= 0 ? dim_le(c, D, idx) : dim_lt(c, D, -idx);
        if (out_of_range)
            return tc_infer_fail(c, TC_ERR_SHAPE, "index %lld is out of range for dim %d of size %s",
                                 (long long)idx, d, dim_str(c, D, b1, sizeof b1));
    }
    tc_dim out[TC_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != d) out[r++] = x->dims[i];
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}

/* --- squeeze / unsqueeze --------------------------------------------------------------------- */

/* Only dims of constant size 1 are removed: torch.export treats symbolic sizes as never 1. */
tc_status tc_infer_squeeze(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    bool pick[TC_MAX_RANK] = {0};
    int op = c->node->op;
    if (op == TC_OP_SQUEEZE) {
        for (int i = 0; i < x->rank; i++) pick[i] = true;
    } else {
        int64_t n = 1;
        int64_t one = op == TC_OP_SQUEEZE_DIM ? tc_node_int(c->node, 1) : 0;
        const int64_t *dims = op == TC_OP_SQUEEZE_DIM ? &one : tc_node_ints(c->node, 1, &n);
        for (int64_t i = 0; i < n; i++) {
            int d = tc_infer_dim_index(c, dims[i], x->rank, "dim");
            if (c->status) return c->status;
            if (x->rank == 0) continue;
            if (pick[d]) return tc_infer_fail(c, TC_ERR_SHAPE, "dim %d appears more than once", d);
            pick[d] = true;
        }
    }
    tc_dim out[TC_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(pick[i] && x->dims[i] == 1)) out[r++] = x->dims[i];
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}

tc_status tc_infer_unsqueeze(tc_infer_ctx *c) {
    const tc_value *x = tc_node_tensor(c->node, 0);
    if (x->rank == TC_MAX_RANK)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED, "the result would have more than %d dims", TC_MAX_RANK);
    int d = tc_infer_dim_index(c, tc_node_int(c->node, 1), x->rank + 1, "dim");
    if (c->status) return c->status;
    tc_dim out[TC_MAX_RANK];
    int r = 0;
    for (int i = 0; i <= x->rank; i++) {
        if (i == d) out[r++] = 1;
        if (i < x->rank) out[r++] = x->dims[i];
    }
    tc_infer_set(c, 0, x->dtype, r, out);
    return TC_OK;
}
