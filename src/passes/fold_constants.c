/* Constant folding: a node whose tensor inputs are all constants is run once, now, on the CPU
 * backend (a one-node graph through a CPU executor), and its outputs become constants the new
 * graph owns. Visiting nodes in order folds whole weight-only chains (transposes, casts, reshapes
 * and arithmetic on weights) in one pass. */
#include "passes/passes.h"
#include "backend/cpu/cpu.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

/* Below this size an output may be larger than the inputs it comes from. */
#define SMALL_BYTES ((size_t)64 << 10)
/* How much larger than its inputs a folded output may be (expand and repeat blow constants up). */
#define MAX_GROWTH 4

typedef struct fold_state {
    size_t max_bytes;
} fold_state;

static bool args_static(const tc_node *n) {
    for (int k = 0; k < n->n_args; k++) {
        const tc_arg *a = &n->args[k].a;
        if (a->kind == TC_ARG_INT && TC_DIM_IS_SYM(a->u.i)) return false;
        if (a->kind == TC_ARG_INTS)
            for (int64_t i = 0; i < a->count; i++)
                if (TC_DIM_IS_SYM(a->u.ints[i])) return false;
    }
    return true;
}

static void release_exec_graph(tc_graph *t, tc_cpu_exec *x) {
    tc_cpu_exec_free(x);
    tc_graph_free(t);
}

/* Runs n on constant inputs in[] and maps its used outputs to new owned constants. *done is false
 * when the CPU backend refused (the node is then copied and fails, if at all, at run time). */
static tc_status evaluate(tc_rewriter *rw, const tc_node *n, const tc_value *const *in, bool *done) {
    *done = false;
    tc_graph *t = NULL;
    tc_cpu_exec *x = NULL;
    tc_error e = {0};
    if (tc_graph_create(&t) != TC_OK) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_value **tin = calloc((size_t)n->n_inputs + 1, sizeof *tin);
    tc_value **touts = calloc((size_t)n->n_outputs + 1, sizeof *touts);
    tc_status st = tin && touts ? TC_OK : TC_ERR_OUT_OF_MEMORY;
    for (int k = 0; st == TC_OK && k < n->n_inputs; k++)
        if (in[k])
            st = tc_graph_add_constant(t, in[k]->name, in[k]->dtype, in[k]->rank, in[k]->dims, in[k]->data,
                                       TC_CONSTANT_BORROW, &tin[k]);
    tc_arg args[TC_OP_MAX_ARGS];
    int na = 0, nout = 0;
    if (st == TC_OK) st = tc_rw_args(rw, n, tin, args, &na);
    if (st == TC_OK) st = tc_graph_add_node(t, n->op_name, n->name, na, args, n->n_outputs, touts, &nout);
    for (int k = 0; st == TC_OK && k < nout; k++) st = tc_graph_mark_output(t, touts[k], NULL);
    if (st == TC_OK) st = tc_cpu_exec_create(t, &x, &e);
    if (st == TC_OK) st = tc_cpu_exec_run(x, NULL, NULL, &e);
    free(tin), free(touts);
    if (st == TC_ERR_OUT_OF_MEMORY) {
        release_exec_graph(t, x);
        return tc_errorf(rw->err, st, "folding node '%s' (%s): out of memory", n->name, n->op_name);
    }
    if (st != TC_OK) {
        release_exec_graph(t, x);
        return TC_OK;
    }
    for (int k = 0; st == TC_OK && k < n->n_outputs; k++) {
        if (!rw->uses[n->outputs[k]->id]) continue;
        tc_tensor o;
        tc_cpu_exec_output(x, k, &o);
        size_t bytes = tc_dtype_size(o.dtype);
        for (int d = 0; d < o.rank; d++) bytes *= (size_t)o.dims[d];
        void *data = malloc(bytes ? bytes : 1);
        if (!data) {
            st = tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
            break;
        }
        if (bytes) memcpy(data, o.data, bytes);
        tc_value *c;
        st = tc_rw_add_owned_constant(rw, n->outputs[k]->name, o.dtype, o.rank, o.dims, data, &c);
        if (st == TC_OK) tc_rw_set(rw, n->outputs[k], c);
    }
    release_exec_graph(t, x);
    if (st == TC_OK) *done = true;
    return st;
}

static tc_status fold_node(tc_rewriter *rw, const tc_node *n, void *user) {
    const fold_state *s = user;
    /* empty_permuted is uninitialized memory: nothing to compute, and its bytes mean nothing */
    if (n->op < 0 || n->op == TC_OP_EMPTY_PERMUTED || !tc_cpu_kernel_for(n->op) || !args_static(n))
        return tc_rw_copy_node(rw, n);
    const tc_value **in = calloc((size_t)n->n_inputs + 1, sizeof *in);
    if (!in) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    bool ok = true;
    size_t in_bytes = 0, out_bytes = 0;
    int used = 0;
    for (int k = 0; ok && k < n->n_inputs; k++) {
        if (!n->inputs[k]) continue;
        /* peeked, not mapped: a weight only the folded node reads never enters the new graph */
        in[k] = tc_rw_peek(rw, n->inputs[k]);
        ok = in[k] && in[k]->kind == TC_VALUE_CONSTANT;
        if (ok) in_bytes += in[k]->nbytes;
    }
    for (int k = 0; ok && k < n->n_outputs; k++) {
        const tc_value *v = n->outputs[k];
        if (!rw->uses[v->id]) continue;
        int64_t numel = tc_value_numel_static(v);
        ok = numel >= 0;
        out_bytes += (size_t)(numel > 0 ? numel : 0) * tc_dtype_size(v->dtype);
        used++;
    }
    ok = ok && used > 0 && out_bytes <= s->max_bytes && (out_bytes <= SMALL_BYTES || out_bytes <= MAX_GROWTH * in_bytes);
    bool done = false;
    tc_status st = ok ? evaluate(rw, n, in, &done) : TC_OK;
    free(in);
    if (st != TC_OK) return st;
    if (done) {
        rw->changed++;
        return TC_OK;
    }
    return tc_rw_copy_node(rw, n);
}

tc_status tc_pass_fold_constants(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err) {
    fold_state s = {o && o->fold_max_bytes ? o->fold_max_bytes : TC_FOLD_MAX_BYTES};
    tc_rewrite_hooks hooks = {.node = fold_node, .user = &s};
    tc_graph *folded;
    TC_TRY(tc_rewrite(g, &hooks, &folded, changed, err));
    if (!*changed) {
        *out = folded;
        return TC_OK;
    }
    /* the middle links of a folded chain were added as constants before the next link read them;
     * one more copy drops them (constants are added on first use) */
    int unused = 0;
    tc_status st = tc_pass_dce(folded, o, out, &unused, err);
    tc_graph_free(folded); /* *out keeps its own reference */
    return st;
}
