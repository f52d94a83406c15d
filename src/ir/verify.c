/* The verifier: every value defined before use, every node's types match what its op infers,
 * at least one output. Messages name the node and the op. */
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

tc_status tc_graph_verify(tc_graph_t *g) {
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    char label[300], t1[256], t2[256];
    /* a value is available once its producer has been visited */
    char *ready = calloc((size_t)g->values.n + 1, 1);
    if (!ready) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_status st = TC_OK;
    for (int i = 0; i < g->values.n; i++) {
        tc_value *v = g->values.items[i];
        if (v->kind != TC_VALUE_NODE) ready[i] = 1;
    }
    tc_infer_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        free(ready);
        return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int ni = 0; ni < g->nodes.n && st == TC_OK; ni++) {
        tc_node *n = g->nodes.items[ni];
        tc_node_label(n, label, sizeof label);
        for (int k = 0; k < n->n_inputs; k++) {
            tc_value *v = n->inputs[k];
            if (v && !ready[v->id]) {
                st = tc_errorf(&g->err, TC_ERR_INVALID_GRAPH, "%s: input '%s' is used before it is defined",
                               label, v->name);
                break;
            }
        }
        if (st != TC_OK) break;
        if (n->op >= 0) {
            memset(c, 0, sizeof *c);
            c->g = g;
            c->node = n;
            c->def = tc_op_get(n->op);
            c->err = &g->err;
            st = c->def->infer(c);
            if (st == TC_OK) st = c->status;
            if (st == TC_OK && c->n_out != n->n_outputs)
                st = tc_errorf(&g->err, TC_ERR_INVALID_GRAPH, "%s: has %d outputs, its op infers %d", label,
                               n->n_outputs, c->n_out);
            for (int k = 0; st == TC_OK && k < n->n_outputs; k++) {
                tc_value *v = n->outputs[k];
                bool same = v->dtype == c->out[k].dtype && v->rank == c->out[k].rank;
                for (int d = 0; same && d < v->rank; d++) same = v->dims[d] == c->out[k].dims[d];
                if (!same) {
                    tc_value tmp = *v;
                    tmp.dtype = c->out[k].dtype, tmp.rank = c->out[k].rank;
                    for (int d = 0; d < tmp.rank; d++) tmp.dims[d] = c->out[k].dims[d];
                    st = tc_errorf(&g->err, TC_ERR_INVALID_GRAPH, "%s: output %d is %s but the op infers %s", label,
                                   k, tc_value_type_string(g, v, t1, sizeof t1), tc_value_type_string(g, &tmp, t2, sizeof t2));
                }
            }
        }
        for (int k = 0; k < n->n_outputs; k++) ready[n->outputs[k]->id] = 1;
    }
    if (st == TC_OK && g->outputs.n == 0)
        st = tc_errorf(&g->err, TC_ERR_INVALID_GRAPH, "the graph has no outputs (use tc_graph_mark_output)");
    for (int i = 0; st == TC_OK && i < g->outputs.n; i++) {
        tc_value *v = g->outputs.items[i];
        if (!ready[v->id]) st = tc_errorf(&g->err, TC_ERR_INVALID_GRAPH, "output '%s' is never computed", v->name);
    }
    free(c);
    free(ready);
    return st;
}
