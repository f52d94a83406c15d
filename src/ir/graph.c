/* Graph construction: create and free, symbols, inputs, constants, outputs, introspection. */
#include "ir/graph.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

tc_status tc_graph_create(tc_graph_t **out) {
    if (!out) return TC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    tc_graph *g = calloc(1, sizeof *g);
    if (!g) return TC_ERR_OUT_OF_MEMORY;
    g->refcount = 1;
    g->syms.arena = &g->arena;
    *out = g;
    return TC_OK;
}

void tc_graph_retain(tc_graph *g) { __atomic_add_fetch(&g->refcount, 1, __ATOMIC_SEQ_CST); }

void tc_graph_free(tc_graph_t *g) {
    if (!g) return;
    if (__atomic_sub_fetch(&g->refcount, 1, __ATOMIC_SEQ_CST) > 0) return;
    for (int i = 0; i < g->values.n; i++) {
        tc_value *v = g->values.items[i];
        if (v->owned) free((void *)v->data);
    }
    for (int i = 0; i + 1 < g->keep.n; i += 2) {
        void (*release)(void *);
        memcpy(&release, &g->keep.items[i + 1], sizeof release);
        release(g->keep.items[i]);
    }
    tc_ptrvec_free(&g->keep);
    tc_symtab_free(&g->syms);
    tc_ptrvec_free(&g->values);
    tc_ptrvec_free(&g->nodes);
    tc_ptrvec_free(&g->inputs);
    tc_ptrvec_free(&g->outputs);
    tc_ptrvec_free(&g->output_names);
    tc_arena_free(&g->arena);
    free(g);
}

tc_status tc_graph_keep(tc_graph *g, void *ptr, void (*release)(void *ptr)) {
    void *fp;
    _Static_assert(sizeof fp == sizeof release, "function pointers fit a data pointer");
    memcpy(&fp, &release, sizeof fp);
    if (tc_ptrvec_push(&g->keep, ptr) || tc_ptrvec_push(&g->keep, fp)) {
        if (g->keep.n % 2) g->keep.n--;
        return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    return TC_OK;
}

const char *tc_graph_last_error(const tc_graph_t *g) { return g ? g->err.msg : "no graph"; }

tc_value *tc_graph_new_value(tc_graph *g, tc_value_kind kind, const char *name, tc_dtype dtype,
                             int rank, const tc_dim *dims) {
    tc_value *v = tc_arena_alloc(&g->arena, sizeof *v);
    if (!v) return NULL;
    v->id = g->values.n;
    v->kind = kind;
    char tmp[32];
    if (!name) {
        snprintf(tmp, sizeof tmp, "v%d", v->id);
        name = tmp;
    }
    v->name = tc_arena_strdup(&g->arena, name);
    v->dtype = dtype;
    v->rank = rank;
    for (int i = 0; i < rank; i++) v->dims[i] = dims[i];
    if (!v->name || tc_ptrvec_push(&g->values, v)) return NULL;
    return v;
}

static tc_status check_dims(tc_graph *g, const char *what, const char *name, int rank, const tc_dim *dims) {
    if (rank < 0 || rank > TC_MAX_RANK)
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s '%s': rank %d is outside [0, %d]", what,
                         name ? name : "?", rank, TC_MAX_RANK);
    if (rank > 0 && !dims)
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s '%s': dims is NULL", what, name ? name : "?");
    for (int i = 0; i < rank; i++) {
        tc_dim d = dims[i];
        if (TC_DIM_IS_SYM(d)) {
            if (TC_DIM_SYM_BASE - d >= g->syms.exprs.n)
                return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s '%s': dim %d is not a symbol of this graph",
                                 what, name ? name : "?", i);
        } else if (d < 0) {
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s '%s': dim %d is negative (%lld)", what,
                             name ? name : "?", i, (long long)d);
        } else if (d > TC_MAX_DIM_VALUE) {
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s '%s': dim %d is too large (%lld > 2^40)", what,
                             name ? name : "?", i, (long long)d);
        }
    }
    return TC_OK;
}

tc_status tc_graph_add_symbol(tc_graph_t *g, const char *name, int64_t min, int64_t opt, int64_t max,
                              tc_dim *out) {
    if (!g || !out) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    if (max > TC_MAX_DIM_VALUE)
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "symbol '%s': max %lld is too large (> 2^40)",
                         name ? name : "?", (long long)max);
    return tc_sym_new_symbol(&g->syms, name, min, opt, max, out, &g->err);
}

tc_status tc_graph_sym_expr(tc_graph_t *g, tc_sym_op op, tc_dim a, tc_dim b, tc_dim *out) {
    if (!g || !out) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    tc_dim ab[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (TC_DIM_IS_SYM(ab[i]) && TC_DIM_SYM_BASE - ab[i] >= g->syms.exprs.n)
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "not a symbolic dim of this graph");
    if ((unsigned)op > TC_SYM_MOD) return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "unknown symbolic op");
    return tc_sym_binop(&g->syms, op, a, b, out, &g->err);
}

const char *tc_graph_dim_string(const tc_graph_t *g, tc_dim d, char *buf, size_t size) {
    if (!buf || !size) return buf;
    if (TC_DIM_IS_SYM(d) && (!g || TC_DIM_SYM_BASE - d >= g->syms.exprs.n)) {
        snprintf(buf, size, "?");
        return buf;
    }
    return tc_sym_print(&g->syms, d, buf, size);
}

tc_status tc_graph_dim_range(const tc_graph_t *g, tc_dim d, int64_t *min, int64_t *opt, int64_t *max) {
    if (!g || !min || !opt || !max) return TC_ERR_INVALID_ARGUMENT;
    if (TC_DIM_IS_SYM(d) && TC_DIM_SYM_BASE - d >= g->syms.exprs.n) return TC_ERR_INVALID_ARGUMENT;
    tc_sym_range(&g->syms, d, min, opt, max);
    return TC_OK;
}

tc_status tc_graph_add_input(tc_graph_t *g, const char *name, tc_dtype dtype, int rank,
                             const tc_dim *dims, tc_value_t **out) {
    if (out) *out = NULL;
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    if ((unsigned)dtype >= TC_DTYPE_COUNT)
        return tc_errorf(&g->err, TC_ERR_DTYPE, "input '%s': invalid dtype %d", name ? name : "?", (int)dtype);
    TC_TRY(check_dims(g, "input", name, rank, dims));
    tc_value *v = tc_graph_new_value(g, TC_VALUE_INPUT, name, dtype, rank, dims);
    if (!v) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    v->input_index = g->inputs.n;
    if (tc_ptrvec_push(&g->inputs, v)) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    if (out) *out = v;
    return TC_OK;
}

tc_status tc_graph_add_constant(tc_graph_t *g, const char *name, tc_dtype dtype, int rank,
                                const int64_t *dims, const void *data, tc_constant_mode mode,
                                tc_value_t **out) {
    if (out) *out = NULL;
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    if ((unsigned)dtype >= TC_DTYPE_COUNT)
        return tc_errorf(&g->err, TC_ERR_DTYPE, "constant '%s': invalid dtype %d", name ? name : "?", (int)dtype);
    TC_TRY(check_dims(g, "constant", name, rank, dims));
    size_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (TC_DIM_IS_SYM(dims[i]))
            return tc_errorf(&g->err, TC_ERR_SHAPE, "constant '%s' has a symbolic dim", name ? name : "?");
        numel *= (size_t)dims[i];
    }
    size_t nbytes = numel * tc_dtype_size(dtype);
    if (nbytes && !data)
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "constant '%s': data is NULL", name ? name : "?");
    tc_value *v = tc_graph_new_value(g, TC_VALUE_CONSTANT, name, dtype, rank, dims);
    if (!v) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    v->nbytes = nbytes;
    if (mode == TC_CONSTANT_COPY) {
        void *p = malloc(nbytes ? nbytes : 1);
        if (!p) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory copying constant '%s'", v->name);
        if (nbytes) memcpy(p, data, nbytes);
        v->data = p;
        v->owned = true;
    } else {
        v->data = data;
    }
    if (out) *out = v;
    return TC_OK;
}

tc_status tc_graph_mark_output(tc_graph_t *g, tc_value_t *v, const char *name) {
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    if (!v || v->id >= g->values.n || g->values.items[v->id] != v)
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "output is not a value of this graph");
    const char *nm = tc_arena_strdup(&g->arena, name ? name : v->name);
    if (!nm || tc_ptrvec_push(&g->outputs, v) || tc_ptrvec_push(&g->output_names, (void *)nm))
        return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}

int tc_graph_num_inputs(const tc_graph_t *g) { return g ? g->inputs.n : 0; }
int tc_graph_num_outputs(const tc_graph_t *g) { return g ? g->outputs.n : 0; }
int tc_graph_num_nodes(const tc_graph_t *g) { return g ? g->nodes.n : 0; }
tc_value_t *tc_graph_input(const tc_graph_t *g, int i) {
    return g && i >= 0 && i < g->inputs.n ? g->inputs.items[i] : NULL;
}
tc_value_t *tc_graph_output(const tc_graph_t *g, int i) {
    return g && i >= 0 && i < g->outputs.n ? g->outputs.items[i] : NULL;
}
const char *tc_value_name(const tc_value_t *v) { return v ? v->name : NULL; }
tc_dtype tc_value_dtype(const tc_value_t *v) { return v ? v->dtype : TC_DTYPE_COUNT; }
int tc_value_rank(const tc_value_t *v) { return v ? v->rank : -1; }
const tc_dim *tc_value_dims(const tc_value_t *v) { return v ? v->dims : NULL; }

int64_t tc_value_numel_static(const tc_value *v) {
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) {
        if (TC_DIM_IS_SYM(v->dims[i])) return -1;
        n *= v->dims[i];
    }
    return n;
}

const char *tc_value_type_string(const tc_graph *g, const tc_value *v, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "%s[", tc_dtype_name(v->dtype));
    for (int i = 0; i < v->rank && len < size; i++) {
        char d[128];
        tc_sym_print(&g->syms, v->dims[i], d, sizeof d);
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", d);
    }
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

const char *tc_node_label(const tc_node *n, char *buf, size_t size) {
    snprintf(buf, size, "node '%s' (%s)", n->name ? n->name : "?", n->op_name);
    return buf;
}
