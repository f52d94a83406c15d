/* The partitioner: gives every node of a graph the block of the backend that runs it or the reason
 * it falls back, merging backend nodes into as few blocks as the fallback nodes between them
 * allow, and dropping blocks below min_block_size back to the fallback. */
#include "partition/partition.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

static const char *backend_name(tc_backend_kind b) { return b == TC_BACKEND_CUDA ? "cuda" : "cpu"; }

void tc_partition_options_init(tc_partition_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->backend = TC_BACKEND_CPU;
    o->min_block_size = 5;
}

static const char *strip_namespace(const char *s) {
    if (strncmp(s, "torch.ops.", 10) == 0) s += 10;
    if (strncmp(s, "aten.", 5) == 0) s += 5;
    else if (strncmp(s, "aten::", 6) == 0) s += 6;
    return s;
}

static size_t len_without_default(const char *s) {
    size_t n = strlen(s);
    return n > 8 && strcmp(s + n - 8, ".default") == 0 ? n - 8 : n;
}

bool tc_partition_op_matches(const char *pattern, const char *op) {
    if (!pattern || !op) return false;
    pattern = strip_namespace(pattern);
    op = strip_namespace(op);
    size_t pl = len_without_default(pattern), ol = len_without_default(op);
    if (pl == 0) return false;
    if (pl == ol && strncmp(pattern, op, pl) == 0) return true;
    /* a pattern without an overload names them all: op is pattern + "." + one more name part */
    return ol > pl + 1 && strncmp(op, pattern, pl) == 0 && op[pl] == '.' &&
           !memchr(op + pl + 1, '.', ol - pl - 1);
}

void tc_partition_free(tc_partition_t *p) {
    if (!p) return;
    tc_arena_free(&p->arena);
    free(p->nodes);
    free(p->block_sizes);
    free(p);
}

/* Level of each node: the number of backend-to-fallback-to-backend crossings on the longest path
 * that reaches it. Backend nodes of one level form one block; a path from block k through a
 * fallback node always lands in a block of a higher level, so blocks never depend on themselves. */
static void compute_levels(const tc_graph *g, const tc_partition_node *pn, int *level) {
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        bool acc = pn[i].reason == TC_FALLBACK_NONE;
        int lv = 0;
        for (int k = 0; k < n->n_inputs; k++) {
            const tc_value *v = n->inputs[k];
            if (!v || v->kind != TC_VALUE_NODE || !v->producer) continue;
            int pid = v->producer->id;
            TC_ASSERT(pid >= 0 && pid < i);
            int cand = level[pid] + (acc && pn[pid].reason != TC_FALLBACK_NONE ? 1 : 0);
            if (cand > lv) lv = cand;
        }
        level[i] = lv;
    }
}

static tc_status set_fallback(tc_partition *p, int i, tc_fallback_reason r, const char *fmt_a, const char *arg,
                              int x, int y, tc_error *err) {
    char msg[512];
    if (arg) snprintf(msg, sizeof msg, fmt_a, arg);
    else snprintf(msg, sizeof msg, fmt_a, x, y);
    p->nodes[i].reason = r;
    p->nodes[i].block = -1;
    p->nodes[i].message = tc_arena_strdup(&p->arena, msg);
    if (!p->nodes[i].message) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}

static tc_status classify(tc_partition *p, const tc_graph *g, const tc_partition_options *o, tc_error *err) {
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        tc_partition_node *pn = &p->nodes[i];
        pn->name = tc_arena_strdup(&p->arena, n->name ? n->name : "");
        pn->op = tc_arena_strdup(&p->arena, n->op_name ? n->op_name : "?");
        pn->message = "";
        pn->reason = TC_FALLBACK_NONE;
        if (!pn->name || !pn->op) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        if (n->op < 0) {
            if (tc_op_find(pn->op) >= 0)
                TC_TRY(set_fallback(p, i, TC_FALLBACK_REJECTED, "the op table rejected its arguments", "", 0, 0, err));
            else
                TC_TRY(set_fallback(p, i, TC_FALLBACK_UNKNOWN_OP, "op '%s' is not in the op table", pn->op, 0, 0, err));
            continue;
        }
        if (!tc_op_supported(n->op, o->backend)) {
            char fmt[96];
            snprintf(fmt, sizeof fmt, "the %s backend has no kernel for '%%s'", backend_name(o->backend));
            TC_TRY(set_fallback(p, i, TC_FALLBACK_UNSUPPORTED, fmt, pn->op, 0, 0, err));
            continue;
        }
        for (int k = 0; k < o->n_forced_ops; k++) {
            if (!tc_partition_op_matches(o->forced_ops[k], pn->op)) continue;
            TC_TRY(set_fallback(p, i, TC_FALLBACK_FORCED, "forced to fall back by torch_executed_ops ('%s')",
                                o->forced_ops[k], 0, 0, err));
            break;
        }
    }
    return TC_OK;
}

/* Assigns blocks by level; with drop_small, demotes blocks below min_block_size. Returns whether
 * something was demoted. */
static tc_status assign_blocks(tc_partition *p, const tc_graph *g, int *level, int *size_at, bool drop_small,
                               bool *changed, tc_error *err) {
    int n = g->nodes.n;
    *changed = false;
    compute_levels(g, p->nodes, level);
    memset(size_at, 0, sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        if (p->nodes[i].reason == TC_FALLBACK_NONE) size_at[level[i]]++;
    if (drop_small) {
        for (int i = 0; i < n; i++) {
            if (p->nodes[i].reason != TC_FALLBACK_NONE || size_at[level[i]] >= p->min_block_size) continue;
            TC_TRY(set_fallback(p, i, TC_FALLBACK_SMALL_BLOCK,
                                "its block has %d node(s), fewer than min_block_size %d", NULL,
                                size_at[level[i]], p->min_block_size, err));
            *changed = true;
        }
    }
    return TC_OK;
}

static tc_status partition(tc_partition *p, const tc_graph *g, const tc_partition_options *o, tc_error *err) {
    int n = g->nodes.n;
    TC_TRY(classify(p, g, o, err));
    int *level = calloc((size_t)n + 1, sizeof *level);
    int *size_at = calloc((size_t)n + 1, sizeof *size_at);
    int *block_of_level = calloc((size_t)n + 1, sizeof *block_of_level);
    tc_status st = TC_OK;
    if (!level || !size_at || !block_of_level) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    bool drop_small = !o->require_full_compilation && o->min_block_size > 1;
    bool changed = true;
    /* demoting only adds fallback nodes, so this ends within n rounds */
    while (st == TC_OK && changed) st = assign_blocks(p, g, level, size_at, drop_small, &changed, err);
    if (st == TC_OK) {
        for (int l = 0; l <= n; l++) {
            block_of_level[l] = -1;
            if (size_at[l] > 0) block_of_level[l] = p->n_blocks++;
        }
        p->block_sizes = calloc((size_t)p->n_blocks + 1, sizeof *p->block_sizes);
        if (!p->block_sizes) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; st == TC_OK && i < n; i++) {
        if (p->nodes[i].reason != TC_FALLBACK_NONE) continue;
        p->nodes[i].block = block_of_level[level[i]];
        p->block_sizes[p->nodes[i].block]++;
    }
    free(level);
    free(size_at);
    free(block_of_level);
    return st;
}

static tc_status full_compilation_error(const tc_partition *p, tc_error *err) {
    char list[900];
    size_t len = 0;
    int bad = 0;
    for (int i = 0; i < p->n_nodes; i++) {
        const tc_partition_node *pn = &p->nodes[i];
        if (pn->reason == TC_FALLBACK_NONE) continue;
        if (bad++ < 8 && len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%snode '%s' (%s): %s", bad > 1 ? "; " : "",
                                    pn->name, pn->op, pn->message);
    }
    if (!bad) return TC_OK;
    return tc_errorf(err, TC_ERR_UNSUPPORTED,
                     "require_full_compilation is set but %d node(s) cannot run on the %s backend: %s%s", bad,
                     backend_name(p->backend), list, bad > 8 ? "; ..." : "");
}

tc_status tc_graph_partition(const tc_graph_t *graph, const tc_partition_options *options, tc_partition_t **out,
                             char *err_buf, size_t err_size) {
    tc_error err = {0};
    tc_status st = TC_OK;
    tc_partition *p = NULL;
    if (err_buf && err_size) err_buf[0] = '\0';
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    tc_partition_options o;
    tc_partition_options_init(&o);
    if (options) o = *options;
    if (!graph) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "partition: graph is NULL");
        goto done;
    }
    if ((unsigned)o.backend >= TC_BACKEND_COUNT) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "partition: unknown backend %d", (int)o.backend);
        goto done;
    }
    if (o.n_forced_ops < 0 || (o.n_forced_ops > 0 && !o.forced_ops)) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "partition: bad forced_ops list");
        goto done;
    }
    for (int k = 0; k < o.n_forced_ops; k++)
        if (!o.forced_ops[k]) {
            st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "partition: forced_ops[%d] is NULL", k);
            goto done;
        }
    p = calloc(1, sizeof *p);
    if (!p || !(p->nodes = calloc((size_t)graph->nodes.n + 1, sizeof *p->nodes))) {
        st = tc_errorf(&err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    p->backend = o.backend;
    p->min_block_size = o.min_block_size;
    p->n_nodes = graph->nodes.n;
    st = partition(p, graph, &o, &err);
    if (st == TC_OK && o.require_full_compilation) st = full_compilation_error(p, &err);
done:
    if (st != TC_OK) {
        tc_partition_free(p);
        if (err_buf && err_size) snprintf(err_buf, err_size, "%s", err.msg);
        return st;
    }
    *out = p;
    return TC_OK;
}

int tc_partition_num_nodes(const tc_partition_t *p) { return p ? p->n_nodes : 0; }
int tc_partition_num_blocks(const tc_partition_t *p) { return p ? p->n_blocks : 0; }

static const tc_partition_node *node_at(const tc_partition_t *p, int i) {
    return p && i >= 0 && i < p->n_nodes ? &p->nodes[i] : NULL;
}

int tc_partition_node_block(const tc_partition_t *p, int i) {
    const tc_partition_node *pn = node_at(p, i);
    return pn ? pn->block : -1;
}

tc_fallback_reason tc_partition_node_reason(const tc_partition_t *p, int i) {
    const tc_partition_node *pn = node_at(p, i);
    return pn ? pn->reason : TC_FALLBACK_REASON_COUNT;
}

const char *tc_partition_node_message(const tc_partition_t *p, int i) {
    const tc_partition_node *pn = node_at(p, i);
    return pn ? pn->message : NULL;
}

const char *tc_partition_node_name(const tc_partition_t *p, int i) {
    const tc_partition_node *pn = node_at(p, i);
    return pn ? pn->name : NULL;
}

const char *tc_partition_node_op(const tc_partition_t *p, int i) {
    const tc_partition_node *pn = node_at(p, i);
    return pn ? pn->op : NULL;
}

int tc_partition_block_size(const tc_partition_t *p, int b) {
    return p && b >= 0 && b < p->n_blocks ? p->block_sizes[b] : 0;
}

tc_status tc_partition_print(const tc_partition_t *p, void *file) {
    FILE *f = file;
    if (!p || !f) return TC_ERR_INVALID_ARGUMENT;
    int fallback = 0;
    for (int i = 0; i < p->n_nodes; i++) fallback += p->nodes[i].block < 0;
    fprintf(f, "partition for the %s backend: %d node(s) in %d block(s), %d node(s) fall back (min_block_size %d)\n",
            backend_name(p->backend), p->n_nodes - fallback, p->n_blocks, fallback, p->min_block_size);
    for (int i = 0; i < p->n_nodes; i++) {
        const tc_partition_node *pn = &p->nodes[i];
        if (pn->block >= 0) fprintf(f, "  %-32s %-28s block %d\n", pn->name, pn->op, pn->block);
        else fprintf(f, "  %-32s %-28s fallback: %s\n", pn->name, pn->op, pn->message);
    }
    for (int b = 0; b < p->n_blocks; b++) fprintf(f, "  block %d: %d node(s)\n", b, p->block_sizes[b]);
    return ferror(f) ? TC_ERR_IO : TC_OK;
}
