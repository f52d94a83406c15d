/* The graph rewriter: copies a graph's symbols, inputs and outputs into a new graph and re-emits
 * its nodes through the builder, letting a pass replace any node on the way. */
#include "passes/rewrite.h"
#include "ops/shape_views.h"

#include <stdlib.h>
#include <string.h>

static void release_graph(void *p) { tc_graph_free(p); }

/* Copies the symbol table entry by entry, so that every tc_dim of src means the same in dst. */
static tc_status copy_syms(tc_graph *dst, const tc_graph *src, tc_error *err) {
    TC_ASSERT(dst->syms.atoms.n == 0 && dst->syms.exprs.n == 0);
    for (int i = 0; i < src->syms.atoms.n; i++) {
        const tc_sym_atom *a = src->syms.atoms.items[i];
        tc_sym_atom *c = tc_arena_memdup(&dst->arena, a, sizeof *a);
        if (!c) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory copying symbols");
        if (a->name && !(c->name = tc_arena_strdup(&dst->arena, a->name)))
            return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory copying symbols");
        if (tc_ptrvec_push(&dst->syms.atoms, c)) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < src->syms.exprs.n; i++) {
        const tc_sym_poly *p = src->syms.exprs.items[i];
        tc_sym_poly *c = tc_arena_memdup(&dst->arena, p, sizeof *p);
        if (!c) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory copying symbols");
        if (p->n && !(c->terms = tc_arena_memdup(&dst->arena, p->terms, sizeof *p->terms * (size_t)p->n)))
            return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory copying symbols");
        if (tc_ptrvec_push(&dst->syms.exprs, c)) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    return TC_OK;
}

tc_status tc_rw_map(tc_rewriter *rw, const tc_value *v, tc_value **out) {
    *out = NULL;
    if (!v) return TC_OK;
    TC_ASSERT(v->id >= 0 && v->id < rw->src->values.n && rw->src->values.items[v->id] == v);
    if (!rw->map[v->id] && v->kind == TC_VALUE_CONSTANT) {
        tc_value *c;
        tc_status st = tc_graph_add_constant(rw->g, v->name, v->dtype, v->rank, v->dims, v->data,
                                             TC_CONSTANT_BORROW, &c);
        if (st != TC_OK) return tc_errorf(rw->err, st, "%s", rw->g->err.msg);
        rw->map[v->id] = c;
    }
    *out = rw->map[v->id];
    return TC_OK;
}

const tc_value *tc_rw_peek(const tc_rewriter *rw, const tc_value *v) {
    if (!v) return NULL;
    if (rw->map[v->id]) return rw->map[v->id];
    return v->kind == TC_VALUE_CONSTANT ? v : NULL;
}

tc_value *tc_rw_get(tc_rewriter *rw, const tc_value *v) {
    tc_value *nv;
    if (tc_rw_map(rw, v, &nv) != TC_OK) return NULL;
    /* a pass that skipped a node whose output is still read */
    if (v && !nv) tc_errorf(rw->err, TC_ERR_INTERNAL, "rewrite: value '%s' is read but was never emitted", v->name);
    return nv;
}

tc_status tc_rw_args(tc_rewriter *rw, const tc_node *n, tc_value *const *inputs, tc_arg *args, int *n_args) {
    TC_ASSERT(n->op >= 0 && n->n_args <= TC_OP_MAX_ARGS);
    for (int k = 0; k < n->n_args; k++) {
        const tc_node_arg *na = &n->args[k];
        tc_arg a = na->a;
        if (a.kind == TC_ARG_TENSOR) {
            a.u.tensor = inputs ? inputs[na->slot] : tc_rw_get(rw, n->inputs[na->slot]);
            if (!a.u.tensor) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
        } else if (a.kind == TC_ARG_TENSORS) {
            tc_value **list = tc_arena_alloc(&rw->g->arena, sizeof *list * (size_t)(a.count ? a.count : 1));
            if (!list) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
            for (int64_t i = 0; i < a.count; i++) {
                const tc_value *old = n->inputs[na->slot + i];
                list[i] = inputs ? inputs[na->slot + i] : old ? tc_rw_get(rw, old) : NULL;
                if (old && !list[i]) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
            }
            a.u.tensors = list;
        }
        args[k] = a;
    }
    *n_args = n->n_args;
    return TC_OK;
}

tc_status tc_rw_add_node(tc_rewriter *rw, const char *op, const char *name, int n_args, const tc_arg *args,
                         int max_outputs, tc_value **outputs, int *n_outputs) {
    tc_status st = tc_graph_add_node(rw->g, op, name, n_args, args, max_outputs, outputs, n_outputs);
    if (st != TC_OK) return tc_errorf(rw->err, st, "%s", rw->g->err.msg);
    return TC_OK;
}

static tc_status emit_opaque(tc_rewriter *rw, const tc_node *n, tc_value *const *inputs, tc_value **outs) {
    int no = n->n_outputs;
    tc_value **in = calloc((size_t)n->n_inputs + 1, sizeof *in);
    tc_dtype *dt = calloc((size_t)no + 1, sizeof *dt);
    int *rk = calloc((size_t)no + 1, sizeof *rk);
    const tc_dim **dims = calloc((size_t)no + 1, sizeof *dims);
    tc_status st = TC_OK;
    if (!in || !dt || !rk || !dims) st = tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; st == TC_OK && k < n->n_inputs; k++) {
        in[k] = inputs ? inputs[k] : n->inputs[k] ? tc_rw_get(rw, n->inputs[k]) : NULL;
        if (n->inputs[k] && !in[k]) st = rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    }
    for (int k = 0; k < no; k++) {
        dt[k] = n->outputs[k]->dtype;
        rk[k] = n->outputs[k]->rank;
        dims[k] = n->outputs[k]->dims;
    }
    if (st == TC_OK) {
        st = tc_graph_add_opaque_node(rw->g, n->op_name, n->name, n->n_inputs, in, no, dt, rk, dims, outs);
        if (st != TC_OK) tc_errorf(rw->err, st, "%s", rw->g->err.msg);
    }
    free(in), free(dt), free(rk), free(dims);
    return st;
}

tc_status tc_rw_emit_node(tc_rewriter *rw, const tc_node *n, tc_value *const *inputs, tc_value **outputs) {
    tc_value **outs = calloc((size_t)n->n_outputs + 1, sizeof *outs);
    if (!outs) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_status st;
    if (n->op < 0) {
        st = emit_opaque(rw, n, inputs, outs);
    } else {
        tc_arg args[TC_OP_MAX_ARGS];
        int na = 0, nout = 0;
        st = tc_rw_args(rw, n, inputs, args, &na);
        if (st == TC_OK) st = tc_rw_add_node(rw, n->op_name, n->name, na, args, n->n_outputs, outs, &nout);
        if (st == TC_OK && nout != n->n_outputs)
            st = tc_errorf(rw->err, TC_ERR_INTERNAL, "node '%s' (%s): re-added with %d outputs instead of %d",
                           n->name, n->op_name, nout, n->n_outputs);
    }
    if (st == TC_OK) {
        for (int k = 0; k < n->n_outputs; k++) {
            rw->map[n->outputs[k]->id] = outs[k];
            if (outputs) outputs[k] = outs[k];
        }
    }
    free(outs);
    return st;
}

tc_status tc_rw_copy_node(tc_rewriter *rw, const tc_node *n) { return tc_rw_emit_node(rw, n, NULL, NULL); }

tc_status tc_rw_add_owned_constant(tc_rewriter *rw, const char *name, tc_dtype dtype, int rank,
                                   const int64_t *dims, void *data, tc_value **out) {
    *out = NULL;
    tc_value *c;
    /* borrowed, then owned: the graph frees owned data with free(), so no second copy is made */
    tc_status st = tc_graph_add_constant(rw->g, name, dtype, rank, dims, data, TC_CONSTANT_BORROW, &c);
    if (st != TC_OK) {
        free(data);
        return tc_errorf(rw->err, st, "%s", rw->g->err.msg);
    }
    c->owned = true;
    *out = c;
    return TC_OK;
}

tc_status tc_rw_cast(tc_rewriter *rw, tc_value *x, tc_dtype dtype, const char *name, tc_value **out) {
    *out = x;
    if (x->dtype == dtype) return TC_OK;
    tc_arg args[2] = {{.kind = TC_ARG_TENSOR, .u.tensor = x},
                      {.name = "dtype", .kind = TC_ARG_DTYPE, .u.dtype = dtype}};
    return tc_rw_add_node(rw, "_to_copy", name, 2, args, 1, out, NULL);
}

const tc_node *tc_rw_single_user(const tc_rewriter *rw, const tc_value *v) {
    return rw->uses[v->id] == 1 ? rw->reader[v->id] : NULL;
}

static tc_status rewrite_body(tc_rewriter *rw, const tc_rewrite_hooks *hooks) {
    tc_graph *src = rw->src, *g = rw->g;
    TC_TRY(copy_syms(g, src, rw->err));
    for (int i = 0; i < src->inputs.n; i++) {
        const tc_value *v = src->inputs.items[i];
        tc_value *nv;
        tc_status st = tc_graph_add_input(g, v->name, v->dtype, v->rank, v->dims, &nv);
        if (st != TC_OK) return tc_errorf(rw->err, st, "%s", g->err.msg);
        rw->map[v->id] = nv;
    }
    for (int i = 0; i < src->nodes.n; i++) {
        const tc_node *n = src->nodes.items[i];
        TC_TRY(hooks && hooks->node ? hooks->node(rw, n, hooks->user) : tc_rw_copy_node(rw, n));
    }
    for (int i = 0; i < src->outputs.n; i++) {
        const tc_value *v = src->outputs.items[i];
        tc_value *nv = NULL;
        if (hooks && hooks->output) TC_TRY(hooks->output(rw, i, v, &nv, hooks->user));
        else if (!(nv = tc_rw_get(rw, v))) return rw->err->status;
        tc_status st = tc_graph_mark_output(g, nv, src->output_names.items[i]);
        if (st != TC_OK) return tc_errorf(rw->err, st, "%s", g->err.msg);
    }
    return TC_OK;
}

tc_status tc_rewrite(tc_graph *src, const tc_rewrite_hooks *hooks, tc_graph **out, int *changed, tc_error *err) {
    *out = NULL;
    if (changed) *changed = 0;
    tc_rewriter rw = {.src = src, .err = err};
    if (tc_graph_create(&rw.g) != TC_OK) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_graph_retain(src);
    if (tc_graph_keep(rw.g, src, release_graph) != TC_OK) {
        tc_graph_free(src);
        tc_graph_free(rw.g);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    int nv = src->values.n;
    rw.map = calloc((size_t)nv + 1, sizeof *rw.map);
    rw.uses = calloc((size_t)nv + 1, sizeof *rw.uses);
    rw.reader = calloc((size_t)nv + 1, sizeof *rw.reader);
    tc_status st = TC_OK;
    if (!rw.map || !rw.uses || !rw.reader) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == TC_OK && i < src->nodes.n; i++) {
        const tc_node *n = src->nodes.items[i];
        for (int k = 0; k < n->n_inputs; k++) {
            if (!n->inputs[k]) continue;
            rw.uses[n->inputs[k]->id]++;
            rw.reader[n->inputs[k]->id] = n;
        }
    }
    for (int i = 0; st == TC_OK && i < src->outputs.n; i++) rw.uses[((tc_value *)src->outputs.items[i])->id]++;
    if (st == TC_OK) st = rewrite_body(&rw, hooks);
    free(rw.map), free(rw.uses), free(rw.reader);
    if (st != TC_OK) {
        tc_graph_free(rw.g);
        return st;
    }
    /* constants are added on first use: fewer of them is a change the pass did not count */
    int n_src = 0, n_new = 0;
    for (int i = 0; i < src->values.n; i++) n_src += ((tc_value *)src->values.items[i])->kind == TC_VALUE_CONSTANT;
    for (int i = 0; i < rw.g->values.n; i++) n_new += ((tc_value *)rw.g->values.items[i])->kind == TC_VALUE_CONSTANT;
    if (n_new < n_src && !rw.changed) rw.changed = n_src - n_new;
    if (changed) *changed = rw.changed;
    *out = rw.g;
    return TC_OK;
}

bool *tc_view_readers(const tc_graph *g, tc_error *err) {
    bool *only = calloc((size_t)g->values.n + 1, sizeof(bool)), *seen = calloc((size_t)g->values.n + 1, sizeof(bool));
    if (!only || !seen) {
        free(only);
        free(seen);
        tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        for (int k = 0; k < n->n_inputs; k++) {
            const tc_value *v = n->inputs[k];
            if (!v) continue;
            bool view = tc_shape_is_view_op(n->op) && n->op != TC_OP_TO_COPY && k == 0;
            only[v->id] = (seen[v->id] ? only[v->id] : true) && view;
            seen[v->id] = true;
        }
    }
    for (int i = 0; i < g->outputs.n; i++) only[((tc_value *)g->outputs.items[i])->id] = false;
    free(seen);
    return only;
}
