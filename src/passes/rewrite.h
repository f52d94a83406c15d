/* The graph rewriter that every pass is built on. The IR is append-only (values are immutable,
 * nodes are added in topological order), so a pass reads a source graph and emits a new one
 * through the builder: every emitted node is shape-inferred again, which keeps the result verified.
 * A map takes each source value to its value in the new graph. */
#ifndef TC_PASSES_REWRITE_H
#define TC_PASSES_REWRITE_H

#include "ops/op.h"

typedef struct tc_rewriter {
    tc_graph *src;    /* the graph being read; the new graph keeps a reference to it */
    tc_graph *g;      /* the graph being built */
    tc_value **map;   /* per source value id: its value in g, NULL until emitted */
    int *uses;        /* per source value id: reads by nodes, plus one per appearance as a graph output */
    const tc_node **reader; /* per source value id: the last node reading it */
    tc_error *err;
    int changed;      /* passes count their rewrites here; 0 means the result equals the source */
} tc_rewriter;

typedef struct tc_rewrite_hooks {
    /* Emits source node n into rw->g and maps its outputs; NULL copies every node. */
    tc_status (*node)(tc_rewriter *rw, const tc_node *n, void *user);
    /* The value that becomes graph output i (source value v); NULL uses the mapped value. */
    tc_status (*output)(tc_rewriter *rw, int i, const tc_value *v, tc_value **out, void *user);
    void *user;
} tc_rewrite_hooks;

/* Builds a new graph from src: the same symbols (same ids, so dims and int arguments carry over
 * unchanged), the same inputs in order, then hooks->node for every node in order, then the
 * outputs under their names. Constants are added on first use (borrowing src's data), so those
 * no emitted node reads disappear. On success *out holds the new graph, which keeps src alive;
 * *changed (may be NULL) gets rw.changed. */
tc_status tc_rewrite(tc_graph *src, const tc_rewrite_hooks *hooks, tc_graph **out, int *changed, tc_error *err);

/* The new-graph value of source value v: constants are added on demand; NULL (and TC_OK) when v
 * is a node output not emitted yet. */
tc_status tc_rw_map(tc_rewriter *rw, const tc_value *v, tc_value **out);
/* Same, for a value that must already exist (a bug otherwise). NULL only on out-of-memory, with
 * rw->err set. */
tc_value *tc_rw_get(tc_rewriter *rw, const tc_value *v);
/* Source value v as the new graph has it, adding nothing: its mapped value, or for a constant not
 * added yet the source constant itself (same dtype, dims and data); NULL for a node output not
 * emitted yet. For reading only: never hand the result to the builder. */
const tc_value *tc_rw_peek(const tc_rewriter *rw, const tc_value *v);
static inline void tc_rw_set(tc_rewriter *rw, const tc_value *v, tc_value *nv) { rw->map[v->id] = nv; }

/* Source node n's bound arguments for the builder, by schema name, tensors replaced by
 * inputs[slot] (new-graph values, one per n->inputs entry) or, when inputs is NULL, by their
 * mapped values. args needs room for TC_OP_MAX_ARGS. Tensor lists live in rw->g's arena. */
tc_status tc_rw_args(tc_rewriter *rw, const tc_node *n, tc_value *const *inputs, tc_arg *args, int *n_args);

/* Builder arguments: a tensor, an int, an int list (borrowed), None. */
static inline tc_arg tc_rw_tensor(tc_value *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }
static inline tc_arg tc_rw_int(int64_t i) { return (tc_arg){.kind = TC_ARG_INT, .u.i = i}; }
static inline tc_arg tc_rw_ints(const int64_t *v, int n) {
    return (tc_arg){.kind = TC_ARG_INTS, .count = n, .u.ints = v};
}
static inline tc_arg tc_rw_none(void) { return (tc_arg){.kind = TC_ARG_NONE}; }

/* tc_graph_add_node on rw->g with the builder's message moved to rw->err. */
tc_status tc_rw_add_node(tc_rewriter *rw, const char *op, const char *name, int n_args, const tc_arg *args,
                         int max_outputs, tc_value **outputs, int *n_outputs);
/* Emits source node n (op, name and arguments) with inputs[slot] for its tensors (NULL: mapped
 * values) and maps its outputs; the new outputs are also written to outputs (may be NULL). Opaque
 * nodes are re-added as opaque nodes of the same types. */
tc_status tc_rw_emit_node(tc_rewriter *rw, const tc_node *n, tc_value *const *inputs, tc_value **outputs);
/* The default: n as it is, with mapped inputs. */
tc_status tc_rw_copy_node(tc_rewriter *rw, const tc_node *n);

/* Adds a constant that takes ownership of data (malloc'ed; freed with the graph, or at once when
 * this fails). */
tc_status tc_rw_add_owned_constant(tc_rewriter *rw, const char *name, tc_dtype dtype, int rank,
                                   const int64_t *dims, void *data, tc_value **out);
/* A cast of new-graph value x to dtype (a _to_copy node named after name), or x itself when it
 * already has that dtype. */
tc_status tc_rw_cast(tc_rewriter *rw, tc_value *x, tc_dtype dtype, const char *name, tc_value **out);

/* Per value id of g (g->values.n + 1 entries, malloc'ed; the caller frees it): whether the value
 * is read, only as the viewed tensor of view-like nodes (not _to_copy), and is no graph output.
 * NULL, with err set, when out of memory. */
bool *tc_view_readers(const tc_graph *g, tc_error *err);

/* The node of src that reads v when v has exactly one use and that use is a node; else NULL. */
const tc_node *tc_rw_single_user(const tc_rewriter *rw, const tc_value *v);

#endif
