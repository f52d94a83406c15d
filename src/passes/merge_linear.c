/* Sibling linear layers as one product. Linears that read the same input, with constant weights
 * of one dtype and the same input width (and all with constant biases, or none), and whose outputs
 * only view-like nodes read, become one linear over the concatenated weight [N1 + N2 + ..., K]
 * followed by a slice of the last dim per sibling:
 *   q = linear(x, Wq, bq), k = linear(x, Wk, bk), v = linear(x, Wv, bv)
 *   -> qkv = linear(x, [Wq; Wk; Wv], [bq; bk; bv]), q = qkv[..., :Nq], k = qkv[..., Nq:Nq+Nk], ...
 * BERT's attention projections are such siblings: one launch instead of three, and a wider
 * product. The slices stay strided views on CUDA (the attention reads q, k and v through
 * strides); outputs read by computing nodes keep their own linear, where an epilogue may fuse. */
#include "passes/passes.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SIBLINGS 16

typedef struct merge_state {
    bool *view_readers;    /* per value id: read, and only by view-like nodes, and no graph output */
    const tc_node **first; /* per source node id: the first sibling of its group (NULL: not merged) */
    int *group;            /* per source node id: its position in the first sibling's group list */
    const tc_node **groups; /* [n_groups][MAX_SIBLINGS], indexed by the first sibling's group slot */
    int *count;            /* per group slot: its size */
} merge_state;

static bool is_const(const tc_value *v) { return v && v->kind == TC_VALUE_CONSTANT && v->data; }

/* Whether linear n can join a group: constant 2-D weight, static sizes, constant bias or none,
 * output read only by views. */
static bool candidate(const merge_state *s, const tc_node *n) {
    if (n->op != TC_OP_LINEAR || n->n_outputs != 1 || !s->view_readers[n->outputs[0]->id]) return false;
    const tc_value *x = tc_node_tensor(n, 0), *w = tc_node_tensor(n, 1), *b = tc_node_tensor(n, 2);
    if (!x || !is_const(w) || w->rank != 2 || (b && (!is_const(b) || b->rank != 1 || b->dtype != w->dtype)))
        return false;
    if (b && b->dims[0] != w->dims[0]) return false; /* a [1] bias broadcasts; concatenation needs N */
    return !TC_DIM_IS_SYM(w->dims[0]) && !TC_DIM_IS_SYM(w->dims[1]) && w->dims[0] > 0 && tc_dtype_is_float(w->dtype);
}

static bool compatible(const tc_node *a, const tc_node *b) {
    const tc_value *wa = tc_node_tensor(a, 1), *wb = tc_node_tensor(b, 1);
    return tc_node_tensor(a, 0) == tc_node_tensor(b, 0) && wa->dtype == wb->dtype && wa->dims[1] == wb->dims[1] &&
           (tc_node_tensor(a, 2) != NULL) == (tc_node_tensor(b, 2) != NULL) &&
           a->outputs[0]->dtype == b->outputs[0]->dtype;
}


/* Concatenates the rows of the group's weights (which = 1) or biases (which = 2) into a new
 * constant. */
static tc_status concat_const(tc_rewriter *rw, const tc_node *const *sib, int m, int which, const char *name,
                              tc_value **out) {
    const tc_value *v0 = tc_node_tensor(sib[0], which);
    size_t esz = tc_dtype_size(v0->dtype), row = which == 1 ? (size_t)v0->dims[1] * esz : esz, total = 0;
    for (int i = 0; i < m; i++) total += (size_t)tc_node_tensor(sib[i], 1)->dims[0] * row;
    unsigned char *data = malloc(total ? total : 1);
    if (!data)
        return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory merging the weights of '%s'", sib[0]->name);
    size_t off = 0;
    int64_t rows = 0;
    for (int i = 0; i < m; i++) {
        const tc_value *c = tc_node_tensor(sib[i], which);
        int64_t r = tc_node_tensor(sib[i], 1)->dims[0];
        memcpy(data + off, c->data, (size_t)r * row);
        off += (size_t)r * row;
        rows += r;
    }
    int64_t dims[2] = {rows, v0->rank == 2 ? v0->dims[1] : 0};
    return tc_rw_add_owned_constant(rw, name, v0->dtype, which == 1 ? 2 : 1, dims, data, out);
}

static tc_status emit_group(tc_rewriter *rw, const tc_node *const *sib, int m) {
    char name[300];
    tc_value *x = tc_rw_get(rw, tc_node_tensor(sib[0], 0)), *w, *b = NULL, *y;
    if (!x) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    snprintf(name, sizeof name, "%s.merged_weight", sib[0]->name);
    TC_TRY(concat_const(rw, sib, m, 1, name, &w));
    if (tc_node_tensor(sib[0], 2)) {
        snprintf(name, sizeof name, "%s.merged_bias", sib[0]->name);
        TC_TRY(concat_const(rw, sib, m, 2, name, &b));
    }
    snprintf(name, sizeof name, "%s.merged", sib[0]->name);
    tc_arg la[3] = {tc_rw_tensor(x), tc_rw_tensor(w), b ? tc_rw_tensor(b) : tc_rw_none()};
    TC_TRY(tc_rw_add_node(rw, "linear", name, 3, la, 1, &y, NULL));
    int64_t start = 0;
    for (int i = 0; i < m; i++) {
        int64_t n = tc_node_tensor(sib[i], 1)->dims[0];
        tc_value *part;
        tc_arg sa[5] = {tc_rw_tensor(y), tc_rw_int(y->rank - 1), tc_rw_int(start), tc_rw_int(start + n), tc_rw_int(1)};
        TC_TRY(tc_rw_add_node(rw, "slice.Tensor", sib[i]->name, 5, sa, 1, &part, NULL));
        tc_rw_set(rw, sib[i]->outputs[0], part);
        start += n;
    }
    rw->changed++;
    return TC_OK;
}

static tc_status merge_node(tc_rewriter *rw, const tc_node *n, void *user) {
    const merge_state *s = user;
    const tc_node *f = s->first[n->id];
    if (!f) return tc_rw_copy_node(rw, n);
    if (f != n) return TC_OK; /* emitted with the first of its group */
    int slot = s->group[n->id];
    return emit_group(rw, &s->groups[(size_t)slot * MAX_SIBLINGS], s->count[slot]);
}

tc_status tc_pass_merge_linear(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    (void)o;
    size_t nn = (size_t)g->nodes.n + 1;
    merge_state s = {tc_view_readers(g, err), calloc(nn, sizeof(tc_node *)), calloc(nn, sizeof(int)),
                     calloc(nn * MAX_SIBLINGS, sizeof(tc_node *)), calloc(nn, sizeof(int))};
    tc_status st = TC_OK;
    if (!s.view_readers || !s.first || !s.group || !s.groups || !s.count) {
        st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    /* groups: each candidate joins the first earlier open group it is compatible with */
    int n_groups = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        if (!candidate(&s, n)) continue;
        int slot = -1;
        for (int k = 0; k < n_groups && slot < 0; k++) {
            const tc_node *head = s.groups[(size_t)k * MAX_SIBLINGS];
            if (s.count[k] < MAX_SIBLINGS && compatible(head, n)) slot = k;
        }
        if (slot < 0) slot = n_groups++;
        s.groups[(size_t)slot * MAX_SIBLINGS + s.count[slot]++] = n;
    }
    for (int k = 0; k < n_groups; k++) {
        if (s.count[k] < 2) continue;
        const tc_node *head = s.groups[(size_t)k * MAX_SIBLINGS];
        for (int j = 0; j < s.count[k]; j++) s.first[s.groups[(size_t)k * MAX_SIBLINGS + j]->id] = head;
        s.group[head->id] = k;
    }
    tc_rewrite_hooks hooks = {.node = merge_node, .user = &s};
    st = tc_rewrite(g, &hooks, out, changed, err);
done:
    free(s.view_readers);
    free(s.first);
    free(s.group);
    free(s.groups);
    free(s.count);
    return st;
}
