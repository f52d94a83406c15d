/* Adding nodes: binds the caller's arguments to the op's schema (positional, named, defaults,
 * conversions PyTorch allows), runs shape inference, and creates the output values. */
#include "ops/op.h"
#include "core/dtype.h"

#include <stdlib.h>
#include <string.h>

static const char *arg_kind_name(tc_arg_kind k) {
    static const char *names[] = {"None", "Tensor", "Tensor list", "int", "int list", "float",
                                  "float list", "bool", "bool list", "str", "dtype"};
    return (unsigned)k < TC_ARG_KIND_COUNT ? names[k] : "?";
}

static const char *argtype_name(tc_argtype t) {
    switch (t) {
    case TC_AT_TENSOR: return "Tensor";
    case TC_AT_TENSOR_LIST: return "Tensor[]";
    case TC_AT_OPT_TENSOR_LIST: return "Tensor?[]";
    case TC_AT_INT: return "int";
    case TC_AT_INT_LIST: return "int[]";
    case TC_AT_FLOAT: return "float";
    case TC_AT_FLOAT_LIST: return "float[]";
    case TC_AT_BOOL: return "bool";
    case TC_AT_BOOL_LIST: return "bool[]";
    case TC_AT_SCALAR: return "Scalar";
    case TC_AT_STR: return "str";
    case TC_AT_DTYPE: return "ScalarType";
    case TC_AT_IGNORED: return "ignored";
    }
    return "?";
}

static bool is_graph_value(const tc_graph *g, const tc_value *v) {
    return v && v->id >= 0 && v->id < g->values.n && g->values.items[v->id] == v;
}

/* An int argument is a symbolic dim of this graph, a constant within [-2^40, 2^40] (so that shape
 * arithmetic on it cannot overflow), or INT64_MAX / INT64_MIN, which PyTorch uses for "to the end"
 * in slices. */
static tc_status check_int(tc_graph *g, const char *label, const char *name, int64_t v) {
    if (TC_DIM_IS_SYM(v)) {
        if (TC_DIM_SYM_BASE - v >= g->syms.exprs.n)
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s: argument '%s' holds a symbolic size that is not of this graph",
                             label, name);
        return TC_OK;
    }
    if (v == INT64_MAX || v == INT64_MIN || (v >= -TC_MAX_DIM_VALUE && v <= TC_MAX_DIM_VALUE)) return TC_OK;
    return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s: argument '%s' is out of range (%lld)", label, name,
                     (long long)v);
}

/* Converts a caller argument to the schema type and copies lists into the arena. */
static tc_status bind_one(tc_graph *g, const char *label, const tc_op_argdef *d, const tc_arg *in,
                          tc_arg *out) {
    tc_error *err = &g->err;
    *out = *in;
    out->name = d->name;
    if (in->kind == TC_ARG_NONE) {
        if (d->optional || d->type == TC_AT_IGNORED) return TC_OK;
        return tc_errorf(err, TC_ERR_SCHEMA, "%s: argument '%s' (%s) may not be None", label, d->name,
                         argtype_name(d->type));
    }
    bool ok = false;
    switch (d->type) {
    case TC_AT_TENSOR:
        ok = in->kind == TC_ARG_TENSOR;
        if (ok && !is_graph_value(g, in->u.tensor))
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: argument '%s' is not a value of this graph",
                             label, d->name);
        break;
    case TC_AT_TENSOR_LIST:
    case TC_AT_OPT_TENSOR_LIST:
        ok = in->kind == TC_ARG_TENSORS;
        if (ok) {
            if (in->count < 0 || (in->count > 0 && !in->u.tensors))
                return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: argument '%s': bad tensor list", label, d->name);
            for (int64_t i = 0; i < in->count; i++) {
                tc_value *v = in->u.tensors[i];
                if (!v && d->type == TC_AT_OPT_TENSOR_LIST) continue;
                if (!is_graph_value(g, v))
                    return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                                     "%s: argument '%s'[%lld] is not a value of this graph", label, d->name,
                                     (long long)i);
            }
            out->u.tensors = tc_arena_memdup(&g->arena, in->u.tensors, sizeof(tc_value *) * (size_t)in->count);
        }
        break;
    case TC_AT_INT:
        ok = in->kind == TC_ARG_INT || in->kind == TC_ARG_BOOL;
        if (in->kind == TC_ARG_BOOL) out->kind = TC_ARG_INT, out->u.i = in->u.b;
        if (in->kind == TC_ARG_INT) TC_TRY(check_int(g, label, d->name, in->u.i));
        break;
    case TC_AT_INT_LIST:
    case TC_AT_BOOL_LIST:
        if (in->kind == TC_ARG_INT && d->type == TC_AT_INT_LIST) {
            TC_TRY(check_int(g, label, d->name, in->u.i));
            int n = d->fixed_len ? d->fixed_len : 1;
            int64_t *v = tc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)n);
            for (int i = 0; i < n; i++) v[i] = in->u.i;
            out->kind = TC_ARG_INTS, out->count = n, out->u.ints = v;
            return TC_OK;
        }
        if (in->kind == TC_ARG_BOOLS && d->type == TC_AT_BOOL_LIST) {
            int64_t *v = tc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(in->count ? in->count : 1));
            for (int64_t i = 0; i < in->count; i++) v[i] = in->u.bools[i];
            out->kind = TC_ARG_INTS, out->u.ints = v;
            return TC_OK;
        }
        ok = in->kind == TC_ARG_INTS;
        if (ok) {
            if (in->count < 0 || (in->count > 0 && !in->u.ints))
                return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: argument '%s': bad int list", label, d->name);
            int64_t n = in->count;
            if (d->type == TC_AT_INT_LIST)
                for (int64_t i = 0; i < n; i++) TC_TRY(check_int(g, label, d->name, in->u.ints[i]));
            /* a one-element list stands for N equal values in int[N] */
            int64_t want = d->fixed_len && n == 1 ? d->fixed_len : n;
            int64_t *v = tc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(want ? want : 1));
            for (int64_t i = 0; i < want; i++) v[i] = in->u.ints[n == want ? i : 0];
            out->count = want;
            out->u.ints = v;
        }
        break;
    case TC_AT_FLOAT:
        ok = in->kind == TC_ARG_FLOAT || in->kind == TC_ARG_INT;
        if (in->kind == TC_ARG_INT) out->kind = TC_ARG_FLOAT, out->u.f = (double)in->u.i;
        break;
    case TC_AT_FLOAT_LIST:
        ok = in->kind == TC_ARG_FLOATS || in->kind == TC_ARG_INTS;
        if (ok) {
            double *v = tc_arena_alloc(&g->arena, sizeof(double) * (size_t)(in->count ? in->count : 1));
            for (int64_t i = 0; i < in->count; i++)
                v[i] = in->kind == TC_ARG_INTS ? (double)in->u.ints[i] : in->u.floats[i];
            out->kind = TC_ARG_FLOATS, out->u.floats = v;
        }
        break;
    case TC_AT_BOOL:
        ok = in->kind == TC_ARG_BOOL || (in->kind == TC_ARG_INT && (in->u.i == 0 || in->u.i == 1));
        if (in->kind == TC_ARG_INT) out->kind = TC_ARG_BOOL, out->u.b = in->u.i != 0;
        break;
    case TC_AT_SCALAR:
        ok = in->kind == TC_ARG_INT || in->kind == TC_ARG_FLOAT || in->kind == TC_ARG_BOOL;
        /* any int value is a valid Scalar, but a symbolic one must belong to this graph */
        if (in->kind == TC_ARG_INT && TC_DIM_IS_SYM(in->u.i)) TC_TRY(check_int(g, label, d->name, in->u.i));
        break;
    case TC_AT_STR:
        ok = in->kind == TC_ARG_STRING && in->u.s;
        if (ok) out->u.s = tc_arena_strdup(&g->arena, in->u.s);
        break;
    case TC_AT_DTYPE:
        ok = in->kind == TC_ARG_DTYPE && (unsigned)in->u.dtype < TC_DTYPE_COUNT;
        break;
    case TC_AT_IGNORED:
        out->kind = TC_ARG_NONE;
        return TC_OK;
    }
    if (!ok)
        return tc_errorf(err, TC_ERR_SCHEMA, "%s: argument '%s' expects %s%s, got %s", label, d->name,
                         argtype_name(d->type), d->optional ? "?" : "", arg_kind_name(in->kind));
    return TC_OK;
}

tc_status tc_graph_add_node(tc_graph_t *g, const char *op, const char *node_name, int n_args,
                            const tc_arg *args, int max_outputs, tc_value_t **outputs, int *n_outputs) {
    if (n_outputs) *n_outputs = 0;
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    char label[300];
    snprintf(label, sizeof label, "node '%s' (%s)", node_name ? node_name : "?", op ? op : "?");
    if (!op) return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s: op name is NULL", label);
    if (n_args < 0 || (n_args > 0 && !args))
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "%s: bad argument array", label);
    int id = tc_op_find(op);
    if (id < 0)
        return tc_errorf(&g->err, TC_ERR_UNKNOWN_OP, "%s: unknown op '%s' (not in the op table; see `tensorc ops`)",
                         label, op);
    const tc_op_def *def = tc_op_get(id);
    snprintf(label, sizeof label, "node '%s' (%s)", node_name ? node_name : "?", def->name);

    tc_arg bound[TC_OP_MAX_ARGS];
    bool given[TC_OP_MAX_ARGS] = {0};
    int next_pos = 0;
    for (int i = 0; i < n_args; i++) {
        int k;
        if (args[i].name) {
            for (k = 0; k < def->n_args; k++)
                if (strcmp(def->args[k].name, args[i].name) == 0) break;
            if (k == def->n_args)
                return tc_errorf(&g->err, TC_ERR_SCHEMA, "%s: no argument named '%s' in schema %s", label,
                                 args[i].name, def->schema);
        } else {
            k = next_pos++;
            if (k >= def->n_args)
                return tc_errorf(&g->err, TC_ERR_SCHEMA, "%s: too many arguments (%d) for schema %s", label,
                                 n_args, def->schema);
        }
        if (given[k])
            return tc_errorf(&g->err, TC_ERR_SCHEMA, "%s: argument '%s' given twice", label, def->args[k].name);
        given[k] = true;
        TC_TRY(bind_one(g, label, &def->args[k], &args[i], &bound[k]));
    }
    for (int k = 0; k < def->n_args; k++) {
        if (given[k]) continue;
        const tc_op_argdef *d = &def->args[k];
        if (d->has_default) {
            bound[k] = d->def;
            bound[k].name = d->name;
            if (d->type == TC_AT_IGNORED) bound[k].kind = TC_ARG_NONE;
            if (d->type == TC_AT_FLOAT && bound[k].kind == TC_ARG_INT)
                bound[k].kind = TC_ARG_FLOAT, bound[k].u.f = (double)d->def.u.i;
        } else if (d->optional || d->type == TC_AT_IGNORED) {
            bound[k] = (tc_arg){.name = d->name, .kind = TC_ARG_NONE};
        } else {
            return tc_errorf(&g->err, TC_ERR_SCHEMA, "%s: missing argument '%s' (%s)", label, d->name,
                             argtype_name(d->type));
        }
    }

    tc_node *n = tc_arena_alloc(&g->arena, sizeof *n);
    tc_node_arg *nargs = tc_arena_alloc(&g->arena, sizeof *nargs * (size_t)(def->n_args ? def->n_args : 1));
    if (!n || !nargs) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    n->id = g->nodes.n;
    n->op = id;
    n->op_name = def->name;
    char tmp[32];
    if (!node_name) {
        snprintf(tmp, sizeof tmp, "n%d", n->id);
        node_name = tmp;
    }
    n->name = tc_arena_strdup(&g->arena, node_name);
    n->n_args = def->n_args;
    n->args = nargs;
    int n_in = 0;
    for (int k = 0; k < def->n_args; k++) {
        nargs[k].a = bound[k];
        nargs[k].slot = -1;
        if (bound[k].kind == TC_ARG_TENSOR) n_in++;
        if (bound[k].kind == TC_ARG_TENSORS) n_in += (int)bound[k].count;
    }
    n->inputs = tc_arena_alloc(&g->arena, sizeof(tc_value *) * (size_t)(n_in ? n_in : 1));
    if (!n->inputs) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < def->n_args; k++) {
        if (bound[k].kind == TC_ARG_TENSOR) {
            nargs[k].slot = n->n_inputs;
            n->inputs[n->n_inputs++] = bound[k].u.tensor;
        } else if (bound[k].kind == TC_ARG_TENSORS) {
            nargs[k].slot = n->n_inputs;
            for (int64_t i = 0; i < bound[k].count; i++) n->inputs[n->n_inputs++] = bound[k].u.tensors[i];
        }
    }

    tc_infer_ctx *c = calloc(1, sizeof *c);
    if (!c) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    c->g = g;
    c->node = n;
    c->def = def;
    c->err = &g->err;
    tc_status st = def->infer(c);
    if (st == TC_OK) st = c->status;
    if (st == TC_OK && def->n_outputs >= 0 && c->n_out != def->n_outputs)
        st = tc_errorf(&g->err, TC_ERR_INTERNAL, "%s: shape inference produced %d outputs, schema says %d",
                       label, c->n_out, def->n_outputs);
    if (st != TC_OK) {
        if (g->err.status == TC_OK) tc_errorf(&g->err, st, "%s: shape inference failed", label);
        free(c);
        return st;
    }
    n->n_outputs = c->n_out;
    n->outputs = tc_arena_alloc(&g->arena, sizeof(tc_value *) * (size_t)(c->n_out ? c->n_out : 1));
    for (int i = 0; i < c->n_out && n->outputs; i++) {
        char vname[300];
        if (c->n_out == 1) snprintf(vname, sizeof vname, "%s", n->name);
        else snprintf(vname, sizeof vname, "%s.%d", n->name, i);
        tc_value *v = tc_graph_new_value(g, TC_VALUE_NODE, vname, c->out[i].dtype, c->out[i].rank, c->out[i].dims);
        if (!v) break;
        v->producer = n;
        v->output_index = i;
        n->outputs[i] = v;
    }
    free(c);
    if (!n->outputs || (n->n_outputs && !n->outputs[n->n_outputs - 1]) || tc_ptrvec_push(&g->nodes, n))
        return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < n->n_outputs && i < max_outputs && outputs; i++) outputs[i] = n->outputs[i];
    if (n_outputs) *n_outputs = n->n_outputs;
    return TC_OK;
}

tc_status tc_graph_add_opaque_node(tc_graph_t *g, const char *op, const char *node_name, int n_inputs,
                                   tc_value_t *const *inputs, int n_outputs, const tc_dtype *out_dtypes,
                                   const int *out_ranks, const tc_dim *const *out_dims, tc_value_t **outputs) {
    if (!g) return TC_ERR_INVALID_ARGUMENT;
    tc_error_clear(&g->err);
    if (!op || n_inputs < 0 || n_outputs < 0 || (n_inputs && !inputs) ||
        (n_outputs && (!out_dtypes || !out_ranks || !out_dims)))
        return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "opaque node '%s': bad arguments", node_name ? node_name : "?");
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && !is_graph_value(g, inputs[i]))
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "opaque node '%s' (%s): input %d is not a value of this graph",
                             node_name ? node_name : "?", op, i);
    for (int i = 0; i < n_outputs; i++) {
        if ((unsigned)out_dtypes[i] >= TC_DTYPE_COUNT || out_ranks[i] < 0 || out_ranks[i] > TC_MAX_RANK ||
            (out_ranks[i] && !out_dims[i]))
            return tc_errorf(&g->err, TC_ERR_INVALID_ARGUMENT, "opaque node '%s' (%s): bad output %d type",
                             node_name ? node_name : "?", op, i);
    }
    tc_node *n = tc_arena_alloc(&g->arena, sizeof *n);
    if (!n) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    n->id = g->nodes.n;
    n->op = -1;
    n->op_name = tc_arena_strdup(&g->arena, op);
    n->name = tc_arena_strdup(&g->arena, node_name ? node_name : op);
    n->n_inputs = n_inputs;
    n->inputs = tc_arena_memdup(&g->arena, inputs, sizeof(tc_value *) * (size_t)(n_inputs ? n_inputs : 1));
    n->n_outputs = n_outputs;
    n->outputs = tc_arena_alloc(&g->arena, sizeof(tc_value *) * (size_t)(n_outputs ? n_outputs : 1));
    for (int i = 0; i < n_outputs; i++) {
        char vname[300];
        if (n_outputs == 1) snprintf(vname, sizeof vname, "%s", n->name);
        else snprintf(vname, sizeof vname, "%s.%d", n->name, i);
        tc_value *v = tc_graph_new_value(g, TC_VALUE_NODE, vname, out_dtypes[i], out_ranks[i], out_dims[i]);
        if (!v) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        v->producer = n;
        v->output_index = i;
        n->outputs[i] = v;
        if (outputs) outputs[i] = v;
    }
    if (tc_ptrvec_push(&g->nodes, n)) return tc_errorf(&g->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}
