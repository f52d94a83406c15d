/* Attention's inputs as one view of their source. PyTorch's MultiheadAttention reaches q, k and v
 * through a long chain of data movement: the packed projection [B, S, 3E] is permuted, viewed as
 * [S, B, 3, E], unsqueezed, transposed, squeezed, cloned (one copy of all of it), selected,
 * viewed as [S, B*H, hd], transposed and viewed as [B, H, S, hd]. Every element of q is still
 * one element of the projection, at a position that is a fixed linear function of its index: the
 * chain is a view, only not one that each step alone can express (the [S, B*H, hd] step merges
 * dims that are not adjacent in memory). This pass follows the chain in terms of "atoms", the
 * source's dims split as finely as the chain needs, and rewrites it as
 *   view(source, atoms in source order) -> select (atoms fixed to an index) -> permute -> view
 * leaving out each step that changes nothing. For ViT: view [B, S, 3, H, hd], select the 3,
 * permute (0, 2, 1, 3): q, k and v are strided views of the projection, which cuDNN's attention
 * reads directly, and the clone's copy is gone.
 * Applied to the query, key and value of scaled_dot_product_attention where the chain has at
 * least two steps and includes a copy (clone, contiguous) or gets shorter;
 * every size in it must be static. */
#include "passes/passes.h"
#include "ops/shape_views.h"

#include <string.h>

#define MAX_ATOMS 32
#define MAX_DIMS 16
#define MAX_CHAIN 64

typedef struct atoms {
    int n;                  /* atoms so far */
    int64_t size[MAX_ATOMS];
    int64_t fixed[MAX_ATOMS]; /* the index a select fixed it to; -1: free */
    int order[MAX_ATOMS];   /* atom ids in source order, major to minor */
    int rank;               /* logical dims */
    int len[MAX_DIMS];      /* atoms of each logical dim, major to minor */
    int dim[MAX_DIMS][MAX_ATOMS];
} atoms;

static int64_t dim_size(const atoms *a, int d) {
    int64_t s = 1;
    for (int k = 0; k < a->len[d]; k++) s *= a->size[a->dim[d][k]];
    return s;
}

/* Splits atom id into a major part of size f (keeping id) and a new minor atom, returned. */
static int split_atom(atoms *a, int id, int64_t f) {
    if (a->n >= MAX_ATOMS || f <= 0 || a->size[id] % f) return -1;
    int m = a->n++;
    a->size[m] = a->size[id] / f;
    a->size[id] = f;
    a->fixed[m] = -1;
    for (int i = 0; i < a->n - 1; i++)
        if (a->order[i] == id) {
            memmove(&a->order[i + 2], &a->order[i + 1], (size_t)(a->n - 2 - i) * sizeof(int));
            a->order[i + 1] = m;
            break;
        }
    return m;
}

static bool remove_dim(atoms *a, int d) {
    if (d < 0 || d >= a->rank) return false;
    for (int i = d; i < a->rank - 1; i++) {
        a->len[i] = a->len[i + 1];
        memcpy(a->dim[i], a->dim[i + 1], sizeof a->dim[i]);
    }
    a->rank--;
    return true;
}

static bool do_permute(atoms *a, const int64_t *p, int r) {
    if (r != a->rank) return false;
    atoms b = *a;
    bool seen[MAX_DIMS] = {0};
    for (int i = 0; i < r; i++) {
        int64_t k = p[i] < 0 ? p[i] + r : p[i];
        if (k < 0 || k >= r || seen[k]) return false;
        seen[k] = true;
        a->len[i] = b.len[k];
        memcpy(a->dim[i], b.dim[k], sizeof a->dim[i]);
    }
    return true;
}

/* The logical dims become the shape dims[rank]: consecutive atoms in logical order, split where a
 * new dim ends inside one. */
static bool do_view(atoms *a, int rank, const int64_t *dims) {
    if (rank > MAX_DIMS) return false;
    int seq[MAX_ATOMS], n = 0;
    for (int d = 0; d < a->rank; d++)
        for (int k = 0; k < a->len[d]; k++)
            if (a->size[a->dim[d][k]] != 1) seq[n++] = a->dim[d][k];
    int at = 0;
    for (int d = 0; d < rank; d++) {
        int64_t want = dims[d], got = 1;
        a->len[d] = 0;
        while (got < want) {
            if (at >= n) return false;
            int id = seq[at];
            if (got * a->size[id] <= want) {
                a->dim[d][a->len[d]++] = id;
                got *= a->size[id];
                at++;
            } else {
                if (want % got) return false;
                int minor = split_atom(a, id, want / got);
                if (minor < 0) return false;
                a->dim[d][a->len[d]++] = id;
                got = want;
                seq[at] = minor;
            }
        }
        if (got != want) return false;
    }
    a->rank = rank;
    return at == n;
}

static bool do_select(atoms *a, int d, int64_t index) {
    if (d < 0 || d >= a->rank) return false;
    int64_t size = dim_size(a, d);
    if (index < 0) index += size;
    if (index < 0 || index >= size) return false;
    /* the index in the mixed radix of the dim's atoms, minor first */
    for (int k = a->len[d] - 1; k >= 0; k--) {
        int id = a->dim[d][k];
        a->fixed[id] = index % a->size[id];
        index /= a->size[id];
    }
    return remove_dim(a, d);
}

static bool static_dims(const tc_value *v) {
    if (v->rank > MAX_DIMS) return false;
    for (int d = 0; d < v->rank; d++)
        if (TC_DIM_IS_SYM(v->dims[d])) return false;
    return true;
}

/* One step of the chain; false where it is not a view this pass follows. */
static bool step(atoms *a, const tc_node *n) {
    const tc_value *y = n->outputs[0];
    if (!static_dims(y)) return false;
    int64_t cnt = 0;
    const int64_t *ints;
    switch (n->op) {
    case TC_OP_CLONE:
    case TC_OP_CONTIGUOUS:
    case TC_OP_ALIAS:
    case TC_OP_DETACH: return true;
    case TC_OP_VIEW:
    case TC_OP_RESHAPE:
    case TC_OP_UNSAFE_VIEW:
    case TC_OP_SQUEEZE:
    case TC_OP_SQUEEZE_DIM:
    case TC_OP_SQUEEZE_DIMS:
    case TC_OP_UNSQUEEZE:
    case TC_OP_FLATTEN_USING_INTS: return do_view(a, y->rank, y->dims); /* same element order */
    case TC_OP_PERMUTE:
        ints = tc_node_ints(n, 1, &cnt);
        return ints && do_permute(a, ints, (int)cnt);
    case TC_OP_TRANSPOSE_INT:
    case TC_OP_T: {
        int r = a->rank;
        int64_t p[MAX_DIMS], i = 0, j = 1;
        if (r > MAX_DIMS) return false;
        if (n->op == TC_OP_TRANSPOSE_INT) {
            i = tc_node_int(n, 1), j = tc_node_int(n, 2);
            if (TC_DIM_IS_SYM(i) || TC_DIM_IS_SYM(j)) return false;
            i = i < 0 ? i + r : i, j = j < 0 ? j + r : j;
        }
        if (r < 2 && n->op == TC_OP_T) return true;
        if (i < 0 || i >= r || j < 0 || j >= r) return false;
        for (int k = 0; k < r; k++) p[k] = k;
        p[i] = j, p[j] = i;
        return do_permute(a, p, r);
    }
    case TC_OP_SELECT_INT: {
        int64_t d = tc_node_int(n, 1), idx = tc_node_int(n, 2);
        if (TC_DIM_IS_SYM(d) || TC_DIM_IS_SYM(idx)) return false;
        return do_select(a, (int)(d < 0 ? d + a->rank : d), idx);
    }
    default: return false;
    }
}


static bool same_dims(int ra, const int64_t *a, int rb, const int64_t *b) {
    if (ra != rb) return false;
    for (int i = 0; i < ra; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* The chain ending at v, rewritten when worth it; *out is NULL when v stays. */
static tc_status rewrite_chain(tc_rewriter *rw, const tc_value *v, const char *name, tc_value **out) {
    *out = NULL;
    const tc_node *chain[MAX_CHAIN];
    int len = 0;
    bool copy = false;
    const tc_value *src = v;
    while (src->kind == TC_VALUE_NODE && tc_shape_is_view_op(src->producer->op) && src->producer->n_outputs == 1) {
        const tc_node *p = src->producer;
        if (len == MAX_CHAIN || !tc_node_tensor(p, 0)) return TC_OK;
        if (p->op == TC_OP_EXPAND || p->op == TC_OP_SLICE_TENSOR || p->op == TC_OP_TO_COPY) break;
        copy = copy || p->op == TC_OP_CLONE || p->op == TC_OP_CONTIGUOUS;
        chain[len++] = p;
        src = tc_node_tensor(p, 0);
    }
    if (len < 2 || !static_dims(src) || src->rank > MAX_ATOMS) return TC_OK;
    atoms a = {.n = src->rank, .rank = src->rank};
    for (int d = 0; d < src->rank; d++) {
        a.size[d] = src->dims[d], a.fixed[d] = -1, a.order[d] = d;
        a.len[d] = 1, a.dim[d][0] = d;
    }
    for (int i = len - 1; i >= 0; i--)
        if (!step(&a, chain[i])) return TC_OK;
    if (a.n > TC_MAX_RANK) return TC_OK; /* the view to the atoms would have too many dims */

    /* the new chain: view to the atoms, selects, permute, view to v's shape */
    int64_t sizes[MAX_ATOMS], perm[MAX_ATOMS];
    int free_ids[MAX_ATOMS], nfree = 0, ops = 0;
    for (int i = 0; i < a.n; i++) sizes[i] = a.size[a.order[i]];
    for (int i = 0; i < a.n; i++)
        if (a.fixed[a.order[i]] < 0) free_ids[nfree++] = a.order[i];
    int target[MAX_ATOMS], nt = 0;
    bool placed[MAX_ATOMS] = {0};
    for (int d = 0; d < a.rank; d++)
        for (int k = 0; k < a.len[d]; k++) target[nt++] = a.dim[d][k], placed[a.dim[d][k]] = true;
    for (int i = 0; i < nfree; i++)
        if (!placed[free_ids[i]]) target[nt++] = free_ids[i]; /* size-1 atoms no dim holds */
    if (nt != nfree) return TC_OK;
    bool identity = true;
    for (int i = 0; i < nt; i++) {
        int pos = 0;
        while (free_ids[pos] != target[i]) pos++;
        perm[i] = pos;
        identity = identity && pos == i;
    }
    int64_t permuted[MAX_ATOMS];
    for (int i = 0; i < nt; i++) permuted[i] = a.size[target[i]];
    bool view1 = !same_dims(src->rank, src->dims, a.n, sizes);
    bool view2 = !same_dims(nt, permuted, v->rank, v->dims);
    ops = view1 + (a.n - nfree) + !identity + view2;
    if (!copy && ops >= len) return TC_OK;

    tc_value *x = tc_rw_get(rw, src);
    if (!x) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    char nm[300];
    if (view1) {
        snprintf(nm, sizeof nm, "%s.atoms", name);
        TC_TRY(tc_rw_add_node(rw, "view", nm, 2, (tc_arg[]){tc_rw_tensor(x), tc_rw_ints(sizes, a.n)}, 1, &x, NULL));
    }
    for (int i = a.n - 1; i >= 0; i--) { /* from the minor end, so the positions before stay */
        int id = a.order[i];
        if (a.fixed[id] < 0) continue;
        snprintf(nm, sizeof nm, "%s.select%d", name, i);
        tc_arg sa[3] = {tc_rw_tensor(x), tc_rw_int(i), tc_rw_int(a.fixed[id])};
        TC_TRY(tc_rw_add_node(rw, "select.int", nm, 3, sa, 1, &x, NULL));
    }
    if (!identity) {
        snprintf(nm, sizeof nm, "%s.order", name);
        TC_TRY(tc_rw_add_node(rw, "permute", nm, 2, (tc_arg[]){tc_rw_tensor(x), tc_rw_ints(perm, nt)}, 1, &x, NULL));
    }
    if (view2) {
        snprintf(nm, sizeof nm, "%s.shape", name);
        tc_arg va[2] = {tc_rw_tensor(x), tc_rw_ints(v->dims, v->rank)};
        TC_TRY(tc_rw_add_node(rw, "view", nm, 2, va, 1, &x, NULL));
    }
    *out = x;
    return TC_OK;
}

static tc_status view_chains_node(tc_rewriter *rw, const tc_node *n, void *user) {
    (void)user;
    if (n->op != TC_OP_SDPA) return tc_rw_copy_node(rw, n);
    tc_value *ins[TC_OP_MAX_ARGS] = {0};
    if (n->n_inputs > TC_OP_MAX_ARGS) return tc_rw_copy_node(rw, n);
    bool any = false;
    for (int k = 0; k < n->n_inputs; k++) {
        const tc_value *v = n->inputs[k];
        if (!v) continue;
        tc_value *nv = NULL;
        bool qkv = v == tc_node_tensor(n, 0) || v == tc_node_tensor(n, 1) || v == tc_node_tensor(n, 2);
        if (qkv) {
            /* the new steps are named after the chain's last step */
            const char *last = v->kind == TC_VALUE_NODE && v->producer->name ? v->producer->name : n->name;
            TC_TRY(rewrite_chain(rw, v, last, &nv));
        }
        any = any || nv;
        ins[k] = nv ? nv : tc_rw_get(rw, v);
        if (!ins[k]) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    }
    if (!any) return tc_rw_copy_node(rw, n);
    rw->changed++;
    return tc_rw_emit_node(rw, n, ins, NULL);
}

tc_status tc_pass_view_chains(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    (void)o;
    tc_rewrite_hooks hooks = {.node = view_chains_node};
    return tc_rewrite(g, &hooks, out, changed, err);
}
