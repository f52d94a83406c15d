/* Row permutations moved across linear layers. A linear maps each row (the last dim) on its own,
 * so permuting the leading dims before it or after it gives the same result:
 *   linear(permute(x, p)) == permute(linear(x), p)          when p keeps the last dim last.
 * PyTorch's batch-first MultiheadAttention (ViT's encoder) wraps its projections in such
 * permutes: the input goes [B, S, E] -> [S, B, E] before the in-projection, and the attention
 * output comes back as
 *   permute(view(linear(view(permute(o, p1), [S*B, E])), [S, B, E]), [1, 0, 2])
 * Two rewrites:
 *  - output side: the permute after the linear becomes part of the permute before it, so the
 *    linear reads rows in the final order and writes [B, S, E] directly. The attention writes the
 *    one permute; the residual add after it reads a plain tensor and fuses into the product.
 *  - input side: a linear whose input is such a permute and whose output only view-like nodes
 *    read runs on the unpermuted rows; the permute moves after it, where it joins the view chain
 *    that is made contiguous once anyway (MultiheadAttention's split into q, k and v). */
#include "passes/passes.h"

#include <stdlib.h>

#define MAX_RANK 8

static bool is_view(const tc_node *n) {
    return n && (n->op == TC_OP_VIEW || n->op == TC_OP_RESHAPE || n->op == TC_OP_UNSAFE_VIEW);
}

static const tc_node *producer(const tc_value *v) { return v && v->kind == TC_VALUE_NODE ? v->producer : NULL; }

/* The permutation of a permute node, normalized; false when it is not one of rank r. */
static bool perm_of(const tc_node *n, int r, int64_t *p) {
    int64_t cnt = 0;
    const int64_t *d = tc_node_ints(n, 1, &cnt);
    if (!d || cnt != r || r > MAX_RANK) return false;
    bool seen[MAX_RANK] = {0};
    for (int i = 0; i < r; i++) {
        int64_t k = d[i] < 0 ? d[i] + r : d[i];
        if (k < 0 || k >= r || seen[k]) return false;
        seen[k] = true;
        p[i] = k;
    }
    return true;
}

static bool single_use(const tc_rewriter *rw, const tc_value *v) { return v && rw->uses[v->id] == 1; }


/* linear(input, W, b) emitted under name with input replaced. */
static tc_status emit_linear(tc_rewriter *rw, const tc_node *lin, tc_value *input, const char *name, tc_value **out) {
    tc_value *w = tc_rw_get(rw, tc_node_tensor(lin, 1));
    const tc_value *bs = tc_node_tensor(lin, 2);
    tc_value *b = bs ? tc_rw_get(rw, bs) : NULL;
    if (!w || (bs && !b)) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    tc_arg a[3] = {tc_rw_tensor(input), tc_rw_tensor(w), b ? tc_rw_tensor(b) : tc_rw_none()};
    return tc_rw_add_node(rw, "linear", name, 3, a, 1, out, NULL);
}

/* Output side, anchored at the final permute n:
 *   n = permute(Y, q), Y = view(L, rows + [N]), L = linear(V), V = view(X, ... + [C]),
 *   X = permute(o, p1) of shape rows + cols with prod(cols) = C, q keeping the last dim last,
 * each intermediate read only by the next. Becomes linear(view(permute(o, p1 . q'), rows_q + [C])). */
static tc_status output_side(tc_rewriter *rw, const tc_node *n, bool *done) {
    *done = false;
    const tc_value *Y = tc_node_tensor(n, 0);
    const tc_node *vy = producer(Y);
    if (!Y || !single_use(rw, Y) || !is_view(vy)) return TC_OK;
    const tc_value *L = tc_node_tensor(vy, 0);
    const tc_node *lin = producer(L);
    if (!single_use(rw, L) || !lin || lin->op != TC_OP_LINEAR) return TC_OK;
    const tc_value *V = tc_node_tensor(lin, 0);
    const tc_node *vv = producer(V);
    if (!single_use(rw, V) || !is_view(vv)) return TC_OK;
    const tc_value *X = tc_node_tensor(vv, 0);
    const tc_node *px = producer(X);
    if (!single_use(rw, X) || !px || px->op != TC_OP_PERMUTE) return TC_OK;
    const tc_value *o = tc_node_tensor(px, 0);
    const int r = Y->rank - 1, rx = X->rank;
    if (r < 1 || rx <= r || rx > MAX_RANK || V->rank < 1) return TC_OK;
    int64_t q[MAX_RANK], p1[MAX_RANK];
    if (!perm_of(n, Y->rank, q) || q[r] != r || !perm_of(px, rx, p1)) return TC_OK;
    /* X's leading dims are Y's rows; its trailing dims are static and flatten to V's last dim */
    for (int d = 0; d < r; d++)
        if (X->dims[d] != Y->dims[d]) return TC_OK;
    int64_t C = 1;
    for (int d = r; d < rx; d++) {
        if (TC_DIM_IS_SYM(X->dims[d])) return TC_OK;
        C *= X->dims[d];
    }
    if (TC_DIM_IS_SYM(V->dims[V->rank - 1]) || V->dims[V->rank - 1] != C || C == 0) return TC_OK;
    /* the rows keep their width (with no elements a view could regroup anything) */
    if (Y->dims[r] != L->dims[L->rank - 1]) return TC_OK;
    bool identity = true;
    for (int d = 0; d < r; d++) identity = identity && q[d] == d;
    if (identity) return TC_OK;

    tc_value *src = tc_rw_get(rw, o);
    if (!src) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    int64_t c[MAX_RANK], rows[MAX_RANK + 1];
    for (int i = 0; i < rx; i++) c[i] = p1[i < r ? q[i] : i];
    for (int i = 0; i < r; i++) rows[i] = Y->dims[q[i]];
    rows[r] = C;
    char name[300];
    tc_value *xp, *vp, *out;
    snprintf(name, sizeof name, "%s.rows", px->name);
    TC_TRY(tc_rw_add_node(rw, "permute", name, 2, (tc_arg[]){tc_rw_tensor(src), tc_rw_ints(c, rx)}, 1, &xp, NULL));
    vp = xp;
    if (rx != r + 1) {
        snprintf(name, sizeof name, "%s.rows", vv->name);
        tc_arg va[2] = {tc_rw_tensor(xp), tc_rw_ints(rows, r + 1)};
        TC_TRY(tc_rw_add_node(rw, "view", name, 2, va, 1, &vp, NULL));
    }
    snprintf(name, sizeof name, "%s.rows", lin->name);
    TC_TRY(emit_linear(rw, lin, vp, name, &out));
    tc_rw_set(rw, n->outputs[0], out);
    rw->changed++;
    *done = true;
    return TC_OK;
}

/* Input side, anchored at the linear n: n = linear(permute(x, p)) with p keeping the last dim last,
 * the permute read only by n, and n's output read only by view-like nodes. Becomes
 * permute(linear(x), p). */
static tc_status input_side(tc_rewriter *rw, const tc_node *n, const bool *view_readers, bool *done) {
    *done = false;
    const tc_value *P = tc_node_tensor(n, 0);
    const tc_node *pp = producer(P);
    if (!single_use(rw, P) || !pp || pp->op != TC_OP_PERMUTE || !view_readers[n->outputs[0]->id]) return TC_OK;
    const int r = P->rank;
    int64_t p[MAX_RANK];
    if (r < 2 || !perm_of(pp, r, p) || p[r - 1] != r - 1) return TC_OK;
    tc_value *x = tc_rw_get(rw, tc_node_tensor(pp, 0));
    if (!x) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    char name[300];
    tc_value *y, *out;
    snprintf(name, sizeof name, "%s.rows", n->name);
    TC_TRY(emit_linear(rw, n, x, name, &y));
    TC_TRY(tc_rw_add_node(rw, "permute", n->name, 2, (tc_arg[]){tc_rw_tensor(y), tc_rw_ints(p, r)}, 1, &out, NULL));
    tc_rw_set(rw, n->outputs[0], out);
    rw->changed++;
    *done = true;
    return TC_OK;
}

static tc_status permute_linear_node(tc_rewriter *rw, const tc_node *n, void *user) {
    bool done = false;
    if (n->op == TC_OP_PERMUTE && n->n_outputs == 1) TC_TRY(output_side(rw, n, &done));
    else if (n->op == TC_OP_LINEAR && n->n_outputs == 1) TC_TRY(input_side(rw, n, user, &done));
    return done ? TC_OK : tc_rw_copy_node(rw, n);
}

tc_status tc_pass_permute_linear(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err) {
    (void)o;
    bool *view_readers = tc_view_readers(g, err);
    if (!view_readers) return err->status;
    tc_rewrite_hooks hooks = {.node = permute_linear_node, .user = view_readers};
    tc_status st = tc_rewrite(g, &hooks, out, changed, err);
    free(view_readers);
    return st;
}
