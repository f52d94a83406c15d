/* Patch embeddings as matrix products: a 2-D convolution whose stride equals its kernel (no
 * padding, no dilation, one group, a kernel larger than 1x1 that tiles the input exactly) cuts the
 * input into disjoint patches, so it is
 *   patches = x.view(N, C, OH, KH, OW, KW).permute(0, 2, 4, 1, 3, 5).reshape(N, OH, OW, C*KH*KW)
 *   y = linear(patches, W.reshape(K, C*KH*KW), b).permute(0, 3, 1, 2)
 * ViT's 16x16 stride-16 stem is one. Applied only where every reader of the output is a view-like
 * node (ViT flattens and transposes it at once): there the final permute cancels against them,
 * while a convolution read by other convolutions keeps its channels-last engines. */
#include "passes/passes.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

typedef struct patch_state {
    bool *view_readers; /* per source value id: read only by view-like nodes, and no graph output */
} patch_state;

static bool is_const(const tc_value *v) { return v && v->kind == TC_VALUE_CONSTANT && v->data; }

static bool all_static(const tc_value *v, int from) {
    for (int d = from; d < v->rank; d++)
        if (TC_DIM_IS_SYM(v->dims[d]) || v->dims[d] <= 0) return false;
    return true;
}

/* Whether n is such a convolution; its kernel size in kh, kw. */
static bool patchify(const tc_rewriter *rw, const patch_state *s, const tc_node *n, int64_t *kh, int64_t *kw) {
    if (n->op != TC_OP_CONVOLUTION || n->n_outputs != 1 || !s->view_readers[n->outputs[0]->id]) return false;
    const tc_value *x = tc_node_tensor(n, 0), *w = tc_rw_peek(rw, tc_node_tensor(n, 1));
    const tc_value *b = tc_node_tensor(n, 2);
    if (!x || !is_const(w) || x->rank != 4 || w->rank != 4 || !all_static(x, 1) || !all_static(w, 0)) return false;
    if (!tc_dtype_is_float(x->dtype) || w->dtype != x->dtype || (b && b->dtype != x->dtype)) return false;
    if (tc_node_bool(n, 6) || tc_node_int(n, 8) != 1) return false;
    int64_t ns = 0, np = 0, nd = 0;
    const int64_t *st = tc_node_ints(n, 3, &ns), *pad = tc_node_ints(n, 4, &np), *dil = tc_node_ints(n, 5, &nd);
    if (ns != 2 || np != 2 || nd != 2) return false;
    for (int i = 0; i < 2; i++)
        if (TC_DIM_IS_SYM(st[i]) || TC_DIM_IS_SYM(pad[i]) || TC_DIM_IS_SYM(dil[i])) return false;
    *kh = w->dims[2], *kw = w->dims[3];
    if (*kh * *kw <= 1 || st[0] != *kh || st[1] != *kw || pad[0] || pad[1] || dil[0] != 1 || dil[1] != 1) return false;
    return w->dims[1] == x->dims[1] && x->dims[2] % *kh == 0 && x->dims[3] % *kw == 0;
}


static tc_status rewrite(tc_rewriter *rw, const tc_node *n, int64_t kh, int64_t kw) {
    const tc_value *xs = tc_node_tensor(n, 0), *ws = tc_rw_peek(rw, tc_node_tensor(n, 1));
    const tc_value *bs = tc_node_tensor(n, 2);
    tc_value *x = tc_rw_get(rw, xs), *b = bs ? tc_rw_get(rw, bs) : NULL;
    if (!x || (bs && !b)) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    int64_t N = x->dims[0], C = x->dims[1], OH = x->dims[2] / kh, OW = x->dims[3] / kw, K = ws->dims[0];
    int64_t P = C * kh * kw;
    char name[300];
    /* the weight [K, C, KH, KW] is [K, C*KH*KW] as it is stored */
    size_t bytes = (size_t)(K * P) * tc_dtype_size(ws->dtype);
    void *wd = malloc(bytes ? bytes : 1);
    if (!wd) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory reshaping the weight of '%s'", n->name);
    memcpy(wd, ws->data, bytes);
    tc_value *w2;
    int64_t wdims[2] = {K, P};
    snprintf(name, sizeof name, "%s.weight_2d", n->name);
    TC_TRY(tc_rw_add_owned_constant(rw, name, ws->dtype, 2, wdims, wd, &w2));
    const int64_t split[6] = {N, C, OH, kh, OW, kw}, order[6] = {0, 2, 4, 1, 3, 5}, rows[4] = {N, OH, OW, P};
    const int64_t back[4] = {0, 3, 1, 2};
    tc_value *v, *p, *r, *y, *out;
    snprintf(name, sizeof name, "%s.tiles", n->name);
    TC_TRY(tc_rw_add_node(rw, "view", name, 2, (tc_arg[]){tc_rw_tensor(x), tc_rw_ints(split, 6)}, 1, &v, NULL));
    snprintf(name, sizeof name, "%s.patches", n->name);
    TC_TRY(tc_rw_add_node(rw, "permute", name, 2, (tc_arg[]){tc_rw_tensor(v), tc_rw_ints(order, 6)}, 1, &p, NULL));
    snprintf(name, sizeof name, "%s.rows", n->name);
    TC_TRY(tc_rw_add_node(rw, "reshape", name, 2, (tc_arg[]){tc_rw_tensor(p), tc_rw_ints(rows, 4)}, 1, &r, NULL));
    tc_arg la[3] = {tc_rw_tensor(r), tc_rw_tensor(w2), b ? tc_rw_tensor(b) : tc_rw_none()};
    snprintf(name, sizeof name, "%s.matmul", n->name);
    TC_TRY(tc_rw_add_node(rw, "linear", name, 3, la, 1, &y, NULL));
    TC_TRY(tc_rw_add_node(rw, "permute", n->name, 2, (tc_arg[]){tc_rw_tensor(y), tc_rw_ints(back, 4)}, 1, &out, NULL));
    tc_rw_set(rw, n->outputs[0], out);
    rw->changed++;
    return TC_OK;
}

static tc_status patch_node(tc_rewriter *rw, const tc_node *n, void *user) {
    int64_t kh, kw;
    if (!patchify(rw, user, n, &kh, &kw)) return tc_rw_copy_node(rw, n);
    return rewrite(rw, n, kh, kw);
}

tc_status tc_pass_patch_conv(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    (void)o;
    patch_state s = {tc_view_readers(g, err)};
    if (!s.view_readers) return err->status;
    tc_rewrite_hooks hooks = {.node = patch_node, .user = &s};
    tc_status st = tc_rewrite(g, &hooks, out, changed, err);
    free(s.view_readers);
    return st;
}
