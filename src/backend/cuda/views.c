/* Zero-copy views (TENSORC_CUDA_VIEWS, default on). For each shape set the executor works out
 * which outputs of view-like nodes (view, reshape, squeeze, unsqueeze, clone, permute, select,
 * slice, expand, ...; ops/shape_views.h) need memory of their own:
 *   - a view whose elements lie in C order in its source's memory is an alias: no memory, no step;
 *   - a strided view that only other views and strided readers (SDPA's query, key and value, the
 *     broadcasting elementwise ops) read stays virtual: the readers get the source's memory and
 *     the strides;
 *   - any other view is gathered once from the memory at the start of its chain (the root), so a
 *     chain of permutes and reshapes costs one copy, not one per node.
 * A view whose own kernel must run (an op or a case the stride rules do not cover) needs its input
 * in memory; when that input was virtual it is gathered instead, at the nearest clone or
 * contiguous of the model up its chain when there is one (MultiheadAttention's packed projection:
 * one copy rather than one per head group), and the plan is made again. A clone that nothing
 * needs in memory stays a view (eval-mode dropout after a transpose).
 * The other way round, attention whose output only a permute reads writes that permute's result
 * directly (its output is a strided view of the permute's memory), as exported multi-head
 * attention transposes the heads back ([B, H, L, D] -> [B, L, H, D] or [L, B, H, D]). */
#include "backend/cuda/exec_internal.h"
#include "backend/cuda/kernels/shape.h"
#include "core/dtype.h"
#include "ops/shape_views.h"

#include <stdlib.h>
#include <string.h>

/* Readers that take a strided tensor: attention's query, key and value (not its mask), and every
 * tensor operand of the broadcasting elementwise ops. */
static bool strided_reader(const tc_node *n, const tc_value *v) {
    if (tc_op_is_broadcast(n->op)) return true; /* elementwise.c reads any operand through strides */
    if (n->op != TC_OP_SDPA) return false;
    bool any = false;
    for (int k = 0; k < n->n_inputs; k++) {
        if (n->inputs[k] != v) continue;
        if (k > 2) return false; /* the mask is read densely */
        any = true;
    }
    return any;
}

tc_status tc_cuda_views_prepare(tc_cuda_exec *x, tc_error *err) {
    const tc_cuda_engine *e = x->e;
    const tc_graph *g = x->g;
    int nn = g->nodes.n, nv = g->values.n;
    x->step_view = calloc((size_t)e->n_steps + 1, sizeof *x->step_view);
    x->strided_ok = calloc((size_t)nv + 1, sizeof *x->strided_ok);
    x->write_to = calloc((size_t)e->n_steps + 1, sizeof *x->write_to);
    x->written_by = calloc((size_t)e->n_steps + 1, sizeof *x->written_by);
    int *step_of = malloc(((size_t)nn + 1) * sizeof *step_of);
    int *readers = calloc((size_t)nv + 1, sizeof *readers);
    if (!x->step_view || !x->strided_ok || !x->write_to || !x->written_by || !step_of || !readers) {
        free(step_of), free(readers);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int si = 0; si < e->n_steps; si++) x->write_to[si] = x->written_by[si] = -1;
    for (int i = 0; i < nn; i++) step_of[i] = -1;
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *s = &e->steps[si];
        if (s->count != 1 || s->kind != TC_CUDA_STEP_NODE) continue;
        step_of[s->node] = si;
        const tc_node *n = g->nodes.items[s->node];
        x->step_view[si] = e->views_mode && tc_shape_is_view_op(n->op) && n->n_outputs == 1 && n->n_inputs >= 1 &&
                           n->inputs[0];
    }
    /* strided_ok: every reader takes a strided tensor, and no graph output is the value */
    for (int i = 0; i < nv; i++) x->strided_ok[i] = e->views_mode;
    for (int i = 0; i < g->outputs.n; i++) x->strided_ok[((tc_value *)g->outputs.items[i])->id] = false;
    for (int i = 0; i < nn; i++) {
        const tc_node *n = g->nodes.items[i];
        int si = step_of[i];
        bool view_reader = si >= 0 && x->step_view[si];
        for (int k = 0; k < n->n_inputs; k++) {
            const tc_value *v = n->inputs[k];
            if (!v) continue;
            bool ok = si >= 0 && ((view_reader && k == 0) || strided_reader(n, v));
            if (!ok) x->strided_ok[v->id] = false;
            readers[v->id]++;
        }
    }
    /* attention whose output only one permute reads, and neither is a graph output */
    for (int i = 0; i < nn && e->views_mode; i++) {
        const tc_node *p = g->nodes.items[i];
        int sp = step_of[i];
        if (p->op != TC_OP_PERMUTE || sp < 0 || !x->step_view[sp] || p->n_inputs < 1) continue;
        const tc_value *o = p->inputs[0];
        if (o->kind != TC_VALUE_NODE || readers[o->id] != 1) continue;
        const tc_node *a = o->producer;
        int sa = a ? step_of[a->id] : -1;
        bool outs_ok = true;
        for (int k = 0; k < g->outputs.n; k++) {
            const tc_value *v = g->outputs.items[k];
            outs_ok = outs_ok && v != o && v != p->outputs[0];
        }
        if (sa < 0 || a->op != TC_OP_SDPA || a->n_outputs != 1 || !outs_ok) continue;
        x->write_to[sa] = sp;
        x->written_by[sp] = sa;
    }
    free(step_of);
    free(readers);
    return TC_OK;
}

/* Step sa (attention) writing the permute of step x->write_to[sa] through: when the permute's
 * arguments hold for these sizes, the attention output o becomes a strided view of the permute's
 * output p, o[i] at sum i_d S[d] with S[perm[k]] = p's contiguous stride k. */
static void write_through(tc_cuda_exec *x, tc_cuda_shape_set *s, int sa) {
    const tc_graph *g = x->g;
    int sp = x->write_to[sa];
    const tc_node *pn = g->nodes.items[x->e->steps[sp].node];
    const tc_value *o = pn->inputs[0], *p = pn->outputs[0];
    const tc_cuda_tensor *to = &x->vals[o->id], *tp = &x->vals[p->id];
    int r = to->rank;
    if (r != tp->rank || r > TC_MAX_RANK || to->numel == 0 || to->dtype != tp->dtype) return;
    int64_t perm[TC_MAX_RANK];
    if (tc_node_ints_eval(g, pn, 1, x->symvals, perm, TC_MAX_RANK) != r) return;
    bool seen[TC_MAX_RANK] = {false};
    for (int k = 0; k < r; k++) {
        if (perm[k] < 0) perm[k] += r;
        if (perm[k] < 0 || perm[k] >= r || seen[perm[k]] || tp->dims[k] != to->dims[perm[k]]) return;
        seen[perm[k]] = true;
    }
    int64_t ps[TC_MAX_RANK];
    tc_shape_contiguous_strides(r, tp->dims, ps);
    tc_cuda_view_plan *vo = &s->views[o->id];
    for (int k = 0; k < r; k++) vo->strides[perm[k]] = ps[k];
    vo->src = p->id;
    vo->own = false;
    vo->base = 0;
    vo->contiguous = tc_shape_is_contiguous(r, to->dims, vo->strides);
    s->write_to[sa] = sp;
}

/* One pass over the steps; true when it found a virtual value that must be gathered after all. */
static bool plan_pass(tc_cuda_exec *x, tc_cuda_shape_set *s, bool *force) {
    const tc_cuda_engine *e = x->e;
    const tc_graph *g = x->g;
    bool again = false;
    for (int i = 0; i < g->values.n; i++) s->views[i].src = s->views[i].anchor = -1;
    for (int si = 0; si < e->n_steps; si++) s->write_to[si] = -1;
    for (int si = 0; si < e->n_steps; si++) {
        s->step_mode[si] = TC_CUDA_VIEW_RUN;
        if (x->write_to[si] >= 0) write_through(x, s, si);
        if (x->written_by[si] >= 0 && s->write_to[x->written_by[si]] == si) {
            s->step_mode[si] = TC_CUDA_VIEW_SKIP; /* its input wrote its memory: the value has it */
            continue;
        }
        if (!x->step_view[si]) continue;
        const tc_node *n = g->nodes.items[e->steps[si].node];
        const tc_value *u = n->inputs[0], *y = n->outputs[0];
        const tc_cuda_tensor *tu = &x->vals[u->id], *ty = &x->vals[y->id];
        tc_cuda_view_plan *vu = &s->views[u->id], *vy = &s->views[y->id];
        bool u_virtual = vu->src >= 0 && !vu->own; /* an alias or a strided view: no memory of its own */
        int64_t xs[TC_MAX_RANK], base = 0;
        int root = u->id;
        bool ok = tu->dtype == ty->dtype && !tu->nhwc && !ty->nhwc && tu->numel > 0 && ty->numel > 0 &&
                  ty->rank >= 1 && tu->rank <= TC_MAX_RANK && ty->rank <= TC_MAX_RANK;
        if (ok && u_virtual) {
            root = vu->src, base = vu->base;
            memcpy(xs, vu->strides, sizeof xs);
        } else if (ok) {
            tc_shape_contiguous_strides(tu->rank, tu->dims, xs);
        }
        int64_t ys[TC_MAX_RANK], ybase = 0;
        ok = ok && tc_shape_strided_view(g, n, x->symvals, tu->rank, tu->dims, xs, base, ty->rank, ty->dims, ys, &ybase);
        if (!ok) {
            /* the node's kernel runs: its input must be in memory, gathered at the model's own
             * clone (or contiguous) up the chain if there is one, else where it is */
            if (u_virtual && !vu->contiguous) {
                int at = vu->anchor >= 0 ? vu->anchor : u->id;
                if (!force[at]) force[at] = again = true;
            }
            continue;
        }
        vy->src = root;
        vy->base = ybase;
        memcpy(vy->strides, ys, sizeof ys);
        vy->contiguous = tc_shape_is_contiguous(ty->rank, ty->dims, ys);
        bool clone = n->op == TC_OP_CLONE || n->op == TC_OP_CONTIGUOUS;
        vy->anchor = clone && !vy->contiguous ? y->id : u_virtual ? vu->anchor : -1;
        bool is_out = x->out_first[y->id] >= 0;
        bool keep_virtual = !vy->contiguous && !force[y->id] && x->strided_ok[y->id];
        if (!is_out && (vy->contiguous || keep_virtual)) {
            vy->own = false;
            s->step_mode[si] = TC_CUDA_VIEW_SKIP;
        } else {
            vy->own = true; /* gathered into memory of its own: the root of the views that read it */
            s->step_mode[si] = TC_CUDA_VIEW_GATHER;
        }
    }
    return again;
}

tc_status tc_cuda_views_plan(tc_cuda_exec *x, tc_cuda_shape_set *s, tc_error *err) {
    int nv = x->g->values.n;
    s->views = calloc((size_t)nv + 1, sizeof *s->views);
    s->step_mode = calloc((size_t)x->e->n_steps + 1, sizeof *s->step_mode);
    s->write_to = calloc((size_t)x->e->n_steps + 1, sizeof *s->write_to);
    bool *force = calloc((size_t)nv + 1, sizeof *force);
    if (!s->views || !s->step_mode || !s->write_to || !force) {
        free(force);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* each pass that asks for another forces one more value into memory: at most nv + 1 passes */
    for (int pass = 0; pass <= nv && plan_pass(x, s, force); pass++) {
    }
    free(force);
    return TC_OK;
}

tc_status tc_cuda_views_gather(tc_cuda_exec *x, int si, tc_error *err) {
    const tc_node *n = x->g->nodes.items[x->e->steps[si].node];
    const tc_value *y = n->outputs[0];
    const tc_cuda_view_plan *vy = &x->cur_set->views[y->id];
    const tc_cuda_tensor *src = &x->vals[vy->src], *ty = &x->vals[y->id];
    tc_status st = tc_cuda_gather_copy(src->data, ty->data, tc_dtype_size(ty->dtype), ty->rank, ty->dims,
                                       vy->strides, vy->base, x->stream, err);
    if (st == TC_OK) return TC_OK;
    char label[256], msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return tc_errorf(err, st, "%s on cuda: %s", tc_node_label(n, label, sizeof label), msg);
}

/* ---- description (no GPU) ------------------------------------------------------------------ */

static const char *mode_text(const tc_cuda_shape_set *s, int si, const tc_cuda_view_plan *vy) {
    if (s->write_to[si] >= 0) return "writes the permute after it";
    switch (s->step_mode[si]) {
    case TC_CUDA_VIEW_SKIP:
        if (vy->src < 0) return "written by the step before";
        return vy->contiguous ? "alias" : "strided view";
    case TC_CUDA_VIEW_GATHER: return "gather";
    default: return NULL;
    }
}

tc_status tc_cuda_describe_views(const tc_graph *g, char *buf, size_t n, int *n_skipped, int *n_gathers) {
    if (n_skipped) *n_skipped = 0;
    if (n_gathers) *n_gathers = 0;
    if (!g || !buf || !n) return TC_ERR_INVALID_ARGUMENT;
    buf[0] = 0;
    tc_cuda_engine e;
    tc_status st = tc_cuda_lower_for_description(g, &e, buf, n);
    if (st != TC_OK) return st;
    tc_error err;
    tc_error_clear(&err);
    /* a context without device state: the value sizes, liveness and output slots views.c reads */
    tc_cuda_exec x;
    memset(&x, 0, sizeof x);
    tc_cuda_shape_set s;
    memset(&s, 0, sizeof s);
    int nv = g->values.n;
    x.e = &e, x.g = g;
    x.vals = calloc((size_t)nv + 1, sizeof *x.vals);
    x.out_first = calloc((size_t)nv + 1, sizeof *x.out_first);
    x.symvals = calloc((size_t)g->syms.atoms.n + 1, sizeof *x.symvals);
    if (!x.vals || !x.out_first || !x.symvals) st = TC_ERR_OUT_OF_MEMORY;
    for (int i = 0; st == TC_OK && i < g->syms.atoms.n; i++) { /* every symbol at its opt size */
        const tc_sym_atom *a = g->syms.atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL) x.symvals[i] = a->opt;
    }
    for (int i = 0; st == TC_OK && i < nv; i++) {
        const tc_value *v = g->values.items[i];
        tc_cuda_tensor *t = &x.vals[i];
        t->dtype = v->dtype, t->rank = v->rank, t->numel = 1;
        for (int d = 0; d < v->rank; d++) {
            t->dims[d] = tc_sym_eval(&g->syms, v->dims[d], x.symvals);
            if (t->dims[d] < 0) {
                st = tc_errorf(&err, TC_ERR_SHAPE, "value '%s' has a negative size at the symbols' opt values", v->name);
                break;
            }
            t->numel *= t->dims[d];
        }
        t->nhwc = e.nhwc && e.nhwc[i];
        x.out_first[i] = -1;
    }
    for (int i = g->outputs.n - 1; st == TC_OK && i >= 0; i--) {
        const tc_value *v = g->outputs.items[i];
        if (v->kind == TC_VALUE_NODE) x.out_first[v->id] = i;
    }
    if (st == TC_OK) st = tc_cuda_views_prepare(&x, &err);
    if (st == TC_OK) st = tc_cuda_views_plan(&x, &s, &err);
    size_t len = 0;
    int skipped = 0, gathers = 0;
    for (int si = 0; st == TC_OK && si < e.n_steps && len < n; si++) {
        const tc_node *nd = g->nodes.items[e.steps[si].node];
        const tc_value *y = ((const tc_node *)g->nodes.items[e.steps[si].last])->outputs[0];
        const char *what = mode_text(&s, si, &s.views[y->id]);
        if (!what) continue;
        skipped += s.step_mode[si] == TC_CUDA_VIEW_SKIP;
        gathers += s.step_mode[si] == TC_CUDA_VIEW_GATHER;
        len += (size_t)snprintf(buf + len, n - len, "%s: %s\n", nd->name, what);
    }
    if (st != TC_OK) snprintf(buf, n, "%s", st == TC_ERR_OUT_OF_MEMORY && !err.msg[0] ? "out of memory" : err.msg);
    if (n_skipped) *n_skipped = skipped;
    if (n_gathers) *n_gathers = gathers;
    free(s.views), free(s.step_mode), free(s.write_to);
    free(x.vals), free(x.out_first), free(x.symvals);
    free(x.step_view), free(x.strided_ok), free(x.write_to), free(x.written_by);
    tc_cuda_free_steps(&e);
    if (st == TC_OK && len >= n) return TC_ERR_INVALID_ARGUMENT;
    return st;
}
