/* Dead-code elimination: a node stays when one of its outputs reaches a graph output. Constants
 * nothing reads disappear on their own, because the rewriter adds constants on first use. */
#include "passes/passes.h"

#include <stdlib.h>

typedef struct dce_state {
    const bool *live_node; /* per node id of the source graph */
} dce_state;

static tc_status dce_node(tc_rewriter *rw, const tc_node *n, void *user) {
    const dce_state *s = user;
    if (!s->live_node[n->id]) {
        rw->changed++;
        return TC_OK;
    }
    return tc_rw_copy_node(rw, n);
}

tc_status tc_pass_dce(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    (void)o;
    bool *live_value = calloc((size_t)g->values.n + 1, sizeof *live_value);
    bool *live_node = calloc((size_t)g->nodes.n + 1, sizeof *live_node);
    if (!live_value || !live_node) {
        free(live_value), free(live_node);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < g->outputs.n; i++) live_value[((tc_value *)g->outputs.items[i])->id] = true;
    for (int i = g->nodes.n - 1; i >= 0; i--) {
        const tc_node *n = g->nodes.items[i];
        bool live = false;
        for (int k = 0; k < n->n_outputs && !live; k++) live = live_value[n->outputs[k]->id];
        if (!live) continue;
        live_node[n->id] = true;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k]) live_value[n->inputs[k]->id] = true;
    }
    dce_state s = {live_node};
    tc_rewrite_hooks hooks = {.node = dce_node, .user = &s};
    tc_status st = tc_rewrite(g, &hooks, out, changed, err);
    free(live_value), free(live_node);
    return st;
}
