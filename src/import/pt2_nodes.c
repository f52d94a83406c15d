/* The .pt2 importer, node side: maps each serialized node's arguments (by schema name) onto
 * tc_graph_add_node, evaluates symbolic-int nodes (sym_size, _operator arithmetic) into dims,
 * turns ops outside the op table into opaque nodes, and checks inferred output types against the
 * archive's tensor_values. */
#include "import/pt2_internal.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    tc_pt2_ctx *c;
    const char *name;   /* node name */
    const char *op;     /* op name without "torch.ops." / "aten." */
    tc_arena *a;        /* scratch for this node */
} node_ctx;

static tc_status node_fail(node_ctx *n, tc_status st, const char *fmt, const char *detail) {
    return tc_errorf(n->c->err, st, "node '%s' (%s): %s%s", n->name, n->op, fmt, detail ? detail : "");
}

/* The single key of a serialized union ({"as_int": 3}) and its value. */
static const char *union_kind(const tc_json *u, const tc_json **val) {
    *val = NULL;
    if (tc_json_type_of(u) != TC_JSON_OBJECT || tc_json_len(u) < 1) return NULL;
    *val = tc_json_value_at(u, 0);
    return tc_json_key_at(u, 0);
}

/* A SymIntArgument ({"as_name": n} or {"as_int": v}) as an int or dim. */
static tc_status sym_arg(node_ctx *n, const tc_json *sa, int64_t *out) {
    const tc_json *v;
    const char *kind = union_kind(sa, &v);
    if (kind && strcmp(kind, "as_int") == 0 && tc_json_int(v, out)) return TC_OK;
    const char *name = kind && strcmp(kind, "as_name") == 0 ? tc_json_string(v) : NULL;
    if (!name) return node_fail(n, TC_ERR_FORMAT, "a symbolic int argument is neither as_name nor as_int", NULL);
    tc_dim d;
    if (tc_pt2_symmap_get(&n->c->syms, name, &d)) {
        *out = d;
        return TC_OK;
    }
    /* a sym int defined elsewhere: its expression is in sym_int_values */
    const tc_json *si = tc_json_get(n->c->sym_int_values, name);
    if (!si) return node_fail(n, TC_ERR_FORMAT, "unknown symbolic int ", name);
    TC_TRY(tc_pt2_symint(n->c, si, name, &d));
    if (tc_pt2_symmap_put(&n->c->syms, name, d)) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    *out = d;
    return TC_OK;
}

static tc_status tensor_ref(node_ctx *n, const tc_json *t, tc_value **out) {
    const char *name = tc_json_string(tc_json_get(t, "name"));
    *out = tc_pt2_values_get(n->c, name);
    if (!*out) return node_fail(n, TC_ERR_FORMAT, "input tensor is not defined before use: ", name ? name : "?");
    return TC_OK;
}

/* Optional tensor: {"as_tensor": {...}} or {"as_none": true}; *out NULL for None. */
static tc_status opt_tensor_ref(node_ctx *n, const tc_json *u, tc_value **out) {
    const tc_json *v;
    const char *kind = union_kind(u, &v);
    *out = NULL;
    if (kind && strcmp(kind, "as_none") == 0) return TC_OK;
    if (kind && strcmp(kind, "as_tensor") == 0) return tensor_ref(n, v, out);
    return node_fail(n, TC_ERR_FORMAT, "bad optional tensor", NULL);
}

static void *scratch(node_ctx *n, size_t count, size_t size) {
    return tc_arena_alloc(n->a, (count ? count : 1) * size);
}

/* Maps one serialized Argument; *skip for arguments tensorc does not use (device, layout, memory format). */
static tc_status map_arg(node_ctx *n, const char *argname, const tc_json *arg, tc_arg *out, bool *skip) {
    const tc_json *v;
    const char *kind = union_kind(arg, &v);
    *skip = false;
    memset(out, 0, sizeof *out);
    out->name = argname;
    if (!kind) return node_fail(n, TC_ERR_FORMAT, "malformed argument ", argname);
    size_t len = tc_json_len(v);
    if (strcmp(kind, "as_none") == 0) {
        out->kind = TC_ARG_NONE;
    } else if (strcmp(kind, "as_tensor") == 0) {
        out->kind = TC_ARG_TENSOR;
        return tensor_ref(n, v, &out->u.tensor);
    } else if (strcmp(kind, "as_optional_tensor") == 0) {
        TC_TRY(opt_tensor_ref(n, v, &out->u.tensor));
        out->kind = out->u.tensor ? TC_ARG_TENSOR : TC_ARG_NONE;
    } else if (strcmp(kind, "as_tensors") == 0 || strcmp(kind, "as_optional_tensors") == 0) {
        bool opt = kind[3] == 'o';
        tc_value **list = scratch(n, len, sizeof *list);
        if (!list) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < len; i++)
            TC_TRY(opt ? opt_tensor_ref(n, tc_json_at(v, i), &list[i]) : tensor_ref(n, tc_json_at(v, i), &list[i]));
        out->kind = TC_ARG_TENSORS, out->count = (int64_t)len, out->u.tensors = list;
    } else if (strcmp(kind, "as_int") == 0) {
        out->kind = TC_ARG_INT;
        if (!tc_json_int(v, &out->u.i)) return node_fail(n, TC_ERR_FORMAT, "bad int argument ", argname);
    } else if (strcmp(kind, "as_sym_int") == 0) {
        out->kind = TC_ARG_INT;
        return sym_arg(n, v, &out->u.i);
    } else if (strcmp(kind, "as_ints") == 0 || strcmp(kind, "as_sym_ints") == 0) {
        bool sym = kind[3] == 's';
        int64_t *list = scratch(n, len, sizeof *list);
        if (!list) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < len; i++) {
            if (sym) TC_TRY(sym_arg(n, tc_json_at(v, i), &list[i]));
            else if (!tc_json_int(tc_json_at(v, i), &list[i]))
                return node_fail(n, TC_ERR_FORMAT, "bad int list argument ", argname);
        }
        out->kind = TC_ARG_INTS, out->count = (int64_t)len, out->u.ints = list;
    } else if (strcmp(kind, "as_float") == 0) {
        out->kind = TC_ARG_FLOAT;
        if (!tc_json_number(v, &out->u.f)) return node_fail(n, TC_ERR_FORMAT, "bad float argument ", argname);
    } else if (strcmp(kind, "as_floats") == 0) {
        double *list = scratch(n, len, sizeof *list);
        if (!list) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < len; i++)
            if (!tc_json_number(tc_json_at(v, i), &list[i]))
                return node_fail(n, TC_ERR_FORMAT, "bad float list argument ", argname);
        out->kind = TC_ARG_FLOATS, out->count = (int64_t)len, out->u.floats = list;
    } else if (strcmp(kind, "as_bool") == 0) {
        out->kind = TC_ARG_BOOL;
        if (!tc_json_bool(v, &out->u.b)) return node_fail(n, TC_ERR_FORMAT, "bad bool argument ", argname);
    } else if (strcmp(kind, "as_bools") == 0) {
        bool *list = scratch(n, len, sizeof *list);
        if (!list) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < len; i++)
            if (!tc_json_bool(tc_json_at(v, i), &list[i]))
                return node_fail(n, TC_ERR_FORMAT, "bad bool list argument ", argname);
        out->kind = TC_ARG_BOOLS, out->count = (int64_t)len, out->u.bools = list;
    } else if (strcmp(kind, "as_string") == 0) {
        out->kind = TC_ARG_STRING;
        out->u.s = tc_json_string(v);
        if (!out->u.s) return node_fail(n, TC_ERR_FORMAT, "bad string argument ", argname);
    } else if (strcmp(kind, "as_scalar_type") == 0) {
        int64_t st;
        out->kind = TC_ARG_DTYPE;
        if (!tc_json_int(v, &st)) return node_fail(n, TC_ERR_FORMAT, "bad dtype argument ", argname);
        if (!tc_pt2_dtype(st, &out->u.dtype)) {
            char msg[128];
            snprintf(msg, sizeof msg, "'%s' is %s, which tensorc does not support", argname, tc_pt2_scalar_type_name(st));
            return node_fail(n, TC_ERR_DTYPE, "dtype argument ", msg);
        }
    } else if (strcmp(kind, "as_memory_format") == 0 || strcmp(kind, "as_layout") == 0 ||
               strcmp(kind, "as_device") == 0) {
        *skip = true;
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "'%s' has kind %s, which tensorc does not import", argname, kind);
        return node_fail(n, TC_ERR_UNSUPPORTED, "argument ", msg);
    }
    return TC_OK;
}

/* Output names of a node in order: as_tensor, each of as_tensors, NULL for as_none. */
static tc_status output_names(node_ctx *n, const tc_json *outputs, const char ***names, int *count) {
    int total = 0;
    for (size_t i = 0; i < tc_json_len(outputs); i++) {
        const tc_json *v;
        const char *kind = union_kind(tc_json_at(outputs, i), &v);
        total += kind && strcmp(kind, "as_tensors") == 0 ? (int)tc_json_len(v) : 1;
        if (total > TC_OP_MAX_OUTPUTS) return node_fail(n, TC_ERR_UNSUPPORTED, "too many outputs", NULL);
    }
    const char **list = scratch(n, (size_t)total, sizeof *list);
    if (!list) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    int k = 0;
    for (size_t i = 0; i < tc_json_len(outputs); i++) {
        const tc_json *v;
        const char *kind = union_kind(tc_json_at(outputs, i), &v);
        if (kind && strcmp(kind, "as_tensor") == 0) {
            list[k] = tc_json_string(tc_json_get(v, "name"));
            if (!list[k]) return node_fail(n, TC_ERR_FORMAT, "output without a name", NULL);
            k++;
        } else if (kind && strcmp(kind, "as_tensors") == 0) {
            for (size_t j = 0; j < tc_json_len(v); j++) {
                list[k] = tc_json_string(tc_json_get(tc_json_at(v, j), "name"));
                if (!list[k]) return node_fail(n, TC_ERR_FORMAT, "output without a name", NULL);
                k++;
            }
        } else if (kind && strcmp(kind, "as_none") == 0) {
            list[k++] = NULL;
        } else {
            return node_fail(n, TC_ERR_UNSUPPORTED, "an output of kind ",
                             kind ? kind : "?"); /* sym ints are handled before we get here */
        }
    }
    *names = list;
    *count = k;
    return TC_OK;
}

static bool dims_agree(const tc_graph *g, tc_dim a, tc_dim b) {
    if (a == b) return true;
    if (!TC_DIM_IS_SYM(a) && !TC_DIM_IS_SYM(b)) return false;
    /* two spellings of one expression (e.g. floor divisions nested differently) agree over the range */
    int64_t a0, a1, a2, b0, b1, b2;
    if (tc_graph_dim_range(g, a, &a0, &a1, &a2) != TC_OK || tc_graph_dim_range(g, b, &b0, &b1, &b2) != TC_OK)
        return false;
    return a0 == b0 && a1 == b1 && a2 == b2;
}

static void type_string(const tc_graph *g, tc_dtype dt, int rank, const tc_dim *dims, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "%s[", tc_dtype_name(dt));
    for (int i = 0; i < rank && len < size; i++) {
        char d[96];
        tc_graph_dim_string(g, dims[i], d, sizeof d);
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", d);
    }
    if (len < size) snprintf(buf + len, size - len, "]");
}

/* Checks an inferred output against tensor_values and records it under its archive name. Outputs
 * nothing reads are not checked: torch itself is loose there (batch norm's saved mean is [0] on CPU). */
static tc_status bind_output(node_ctx *n, int i, const char *name, tc_value *v) {
    tc_pt2_ctx *c = n->c;
    const tc_json *meta = tc_json_get(c->tensor_values, name);
    tc_dim unused;
    if (meta && tc_pt2_symmap_get(&c->used, name, &unused)) {
        tc_pt2_meta_t m;
        TC_TRY(tc_pt2_meta(c, meta, name, &m));
        bool ok = m.dtype == v->dtype && m.rank == v->rank;
        for (int d = 0; ok && d < m.rank; d++) ok = dims_agree(c->g, m.dims[d], v->dims[d]);
        if (!ok) {
            char want[400], got[400];
            type_string(c->g, m.dtype, m.rank, m.dims, want, sizeof want);
            type_string(c->g, v->dtype, v->rank, v->dims, got, sizeof got);
            return tc_errorf(c->err, TC_ERR_SHAPE,
                             "node '%s' (%s): output %d '%s' is inferred as %s but the archive says %s", n->name,
                             n->op, i, name, got, want);
        }
    }
    return tc_pt2_values_put(c, name, v);
}

/* sym_size.int, sym_numel and _operator arithmetic on sym ints: evaluated now, no IR node. */
static tc_status sym_node(node_ctx *n, const tc_json *inputs, const tc_json *outputs, bool *handled) {
    static const struct {
        const char *op;
        tc_sym_op sop;
    } arith[] = {{"_operator.add", TC_SYM_ADD}, {"_operator.sub", TC_SYM_SUB}, {"_operator.mul", TC_SYM_MUL},
                 {"_operator.floordiv", TC_SYM_FLOORDIV}, {"_operator.mod", TC_SYM_MOD}};
    tc_pt2_ctx *c = n->c;
    *handled = false;
    const tc_json *ov;
    const char *okind = union_kind(tc_json_at(outputs, 0), &ov);
    bool sym_out = okind && strcmp(okind, "as_sym_int") == 0;
    int which = -1;
    for (int i = 0; i < (int)(sizeof arith / sizeof arith[0]); i++)
        if (strcmp(n->op, arith[i].op) == 0) which = i;
    bool is_size = strcmp(n->op, "sym_size.int") == 0, is_numel = strcmp(n->op, "sym_numel") == 0 ||
                                                                  strcmp(n->op, "sym_numel.default") == 0;
    if (!sym_out && which < 0 && !is_size && !is_numel) return TC_OK;
    *handled = true;
    if (!sym_out || tc_json_len(outputs) != 1)
        return node_fail(n, TC_ERR_UNSUPPORTED, "expected one symbolic int output", NULL);
    const tc_json *nv;
    const char *nk = union_kind(ov, &nv);
    const char *out_name = nk && strcmp(nk, "as_name") == 0 ? tc_json_string(nv) : NULL;
    if (!out_name) return node_fail(n, TC_ERR_FORMAT, "symbolic int output without a name", NULL);
    tc_dim result = 0;
    if (is_size || is_numel) {
        const tc_json *self = tc_json_get(tc_json_get(tc_json_at(inputs, 0), "arg"), "as_tensor");
        tc_value *t;
        TC_TRY(tensor_ref(n, self, &t));
        if (is_size) {
            int64_t dim;
            if (!tc_json_int(tc_json_get(tc_json_get(tc_json_at(inputs, 1), "arg"), "as_int"), &dim))
                return node_fail(n, TC_ERR_FORMAT, "sym_size without an int dim", NULL);
            if (dim < -t->rank || dim >= t->rank || t->rank == 0)
                return node_fail(n, TC_ERR_SHAPE, "dim out of range", NULL);
            result = t->dims[dim < 0 ? dim + t->rank : dim];
        } else {
            result = 1;
            for (int d = 0; d < t->rank; d++)
                if (tc_graph_sym_expr(c->g, TC_SYM_MUL, result, t->dims[d], &result) != TC_OK)
                    return node_fail(n, c->g->err.status, c->g->err.msg, NULL);
        }
    } else if (which >= 0) {
        if (tc_json_len(inputs) != 2) return node_fail(n, TC_ERR_FORMAT, "expected two operands", NULL);
        int64_t ab[2];
        for (int k = 0; k < 2; k++) {
            const tc_json *arg = tc_json_get(tc_json_at(inputs, (size_t)k), "arg");
            const tc_json *v;
            const char *kind = union_kind(arg, &v);
            if (kind && strcmp(kind, "as_int") == 0 && tc_json_int(v, &ab[k])) continue;
            if (!kind || strcmp(kind, "as_sym_int") != 0)
                return node_fail(n, TC_ERR_UNSUPPORTED, "operand is not an int or symbolic int", NULL);
            TC_TRY(sym_arg(n, v, &ab[k]));
        }
        if (!TC_DIM_IS_SYM(ab[0]) && !TC_DIM_IS_SYM(ab[1]) &&
            (ab[0] > ((int64_t)1 << 40) || ab[0] < -((int64_t)1 << 40) || ab[1] > ((int64_t)1 << 40) ||
             ab[1] < -((int64_t)1 << 40)))
            return node_fail(n, TC_ERR_UNSUPPORTED, "operand too large", NULL);
        if (tc_graph_sym_expr(c->g, arith[which].sop, ab[0], ab[1], &result) != TC_OK)
            return node_fail(n, c->g->err.status, c->g->err.msg, NULL);
    } else {
        return node_fail(n, TC_ERR_UNSUPPORTED,
                         "produces a symbolic int; tensorc evaluates only sym_size.int, sym_numel and "
                         "_operator add/sub/mul/floordiv/mod", NULL);
    }
    if (tc_pt2_symmap_put(&c->syms, out_name, result)) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}

static tc_status opaque_node(node_ctx *n, const tc_json *inputs, const char **names, int n_names) {
    tc_pt2_ctx *c = n->c;
    int n_in = 0;
    for (size_t i = 0; i < tc_json_len(inputs); i++) {
        const tc_json *v;
        const char *kind = union_kind(tc_json_get(tc_json_at(inputs, i), "arg"), &v);
        if (!kind) continue;
        if (strcmp(kind, "as_tensor") == 0 || strcmp(kind, "as_optional_tensor") == 0) n_in++;
        else if (strcmp(kind, "as_tensors") == 0 || strcmp(kind, "as_optional_tensors") == 0) n_in += (int)tc_json_len(v);
    }
    tc_value **in = scratch(n, (size_t)n_in, sizeof *in);
    tc_dtype *dt = scratch(n, (size_t)n_names, sizeof *dt);
    int *ranks = scratch(n, (size_t)n_names, sizeof *ranks);
    const tc_dim **dims = scratch(n, (size_t)n_names, sizeof *dims);
    tc_value **outs = scratch(n, (size_t)n_names, sizeof *outs);
    const char **kept = scratch(n, (size_t)n_names, sizeof *kept);
    if (!in || !dt || !ranks || !dims || !outs || !kept) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    int k = 0;
    for (size_t i = 0; i < tc_json_len(inputs); i++) {
        const tc_json *v;
        const char *kind = union_kind(tc_json_get(tc_json_at(inputs, i), "arg"), &v);
        if (!kind) continue;
        if (strcmp(kind, "as_tensor") == 0) TC_TRY(tensor_ref(n, v, &in[k++]));
        else if (strcmp(kind, "as_optional_tensor") == 0) TC_TRY(opt_tensor_ref(n, v, &in[k++]));
        else if (strcmp(kind, "as_tensors") == 0)
            for (size_t j = 0; j < tc_json_len(v); j++) TC_TRY(tensor_ref(n, tc_json_at(v, j), &in[k++]));
        else if (strcmp(kind, "as_optional_tensors") == 0)
            for (size_t j = 0; j < tc_json_len(v); j++) TC_TRY(opt_tensor_ref(n, tc_json_at(v, j), &in[k++]));
    }
    int n_out = 0;
    for (int i = 0; i < n_names; i++) {
        if (!names[i]) continue;
        tc_pt2_meta_t m;
        const tc_json *meta = tc_json_get(c->tensor_values, names[i]);
        if (!meta) return node_fail(n, TC_ERR_FORMAT, "no tensor_values entry for output ", names[i]);
        TC_TRY(tc_pt2_meta(c, meta, names[i], &m));
        tc_dim *d = scratch(n, TC_MAX_RANK, sizeof *d);
        if (!d) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        memcpy(d, m.dims, sizeof m.dims);
        dt[n_out] = m.dtype, ranks[n_out] = m.rank, dims[n_out] = d, kept[n_out] = names[i];
        n_out++;
    }
    if (tc_graph_add_opaque_node(c->g, n->op, n->name, n_in, in, n_out, dt, ranks, dims, outs) != TC_OK)
        return tc_errorf(c->err, c->g->err.status, "%s", c->g->err.msg);
    for (int i = 0; i < n_out; i++) TC_TRY(tc_pt2_values_put(c, kept[i], outs[i]));
    return TC_OK;
}

/* A Python number where the schema wants a Tensor (add.Tensor(x, 1), as torch.export writes it):
 * the ".Scalar" overload when the table has one, else a 0-dim constant (what PyTorch wraps). */
static tc_status wrap_scalars(node_ctx *n, const char **op, tc_arg *args, int n_args) {
    const tc_op_def *def = tc_op_get(tc_op_find(*op));
    for (int i = 0; i < n_args; i++) {
        if (args[i].kind != TC_ARG_INT && args[i].kind != TC_ARG_FLOAT && args[i].kind != TC_ARG_BOOL) continue;
        int k;
        for (k = 0; k < def->n_args; k++)
            if (strcmp(def->args[k].name, args[i].name) == 0) break;
        if (k == def->n_args || def->args[k].type != TC_AT_TENSOR) continue;
        size_t len = strlen(*op);
        if (len > 7 && strcmp(*op + len - 7, ".Tensor") == 0) {
            char *alt = scratch(n, len + 1, 1);
            if (!alt) return tc_errorf(n->c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
            memcpy(alt, *op, len - 7);
            strcpy(alt + len - 7, ".Scalar");
            int id = tc_op_find(alt);
            if (id >= 0) {
                const tc_op_def *d2 = tc_op_get(id);
                bool fits = true;
                for (int j = 0; j < n_args && fits; j++) {
                    int m;
                    for (m = 0; m < d2->n_args; m++)
                        if (strcmp(d2->args[m].name, args[j].name) == 0) break;
                    fits = m < d2->n_args;
                }
                if (fits) {
                    *op = alt;
                    return TC_OK;
                }
            }
        }
        tc_value *cst = NULL;
        tc_status st;
        char cname[320];
        snprintf(cname, sizeof cname, "%s.%s", n->name, args[i].name);
        if (args[i].kind == TC_ARG_FLOAT) {
            float f = (float)args[i].u.f;
            st = tc_graph_add_constant(n->c->g, cname, TC_F32, 0, NULL, &f, TC_CONSTANT_COPY, &cst);
        } else if (args[i].kind == TC_ARG_BOOL) {
            uint8_t b = args[i].u.b;
            st = tc_graph_add_constant(n->c->g, cname, TC_BOOL, 0, NULL, &b, TC_CONSTANT_COPY, &cst);
        } else {
            if (TC_DIM_IS_SYM(args[i].u.i))
                return node_fail(n, TC_ERR_UNSUPPORTED, "a symbolic int where the schema wants a Tensor: ", args[i].name);
            int64_t v = args[i].u.i;
            st = tc_graph_add_constant(n->c->g, cname, TC_I64, 0, NULL, &v, TC_CONSTANT_COPY, &cst);
        }
        if (st != TC_OK) return tc_errorf(n->c->err, st, "%s", n->c->g->err.msg);
        args[i].kind = TC_ARG_TENSOR;
        args[i].u.tensor = cst;
    }
    return TC_OK;
}

static bool is_side_effect_only(const char *op) {
    return strncmp(op, "_assert", 7) == 0 || strncmp(op, "sym_constrain_range", 19) == 0 ||
           strncmp(op, "_check", 6) == 0;
}

static tc_status import_node(tc_pt2_ctx *c, const tc_json *node, size_t index, tc_arena *a) {
    char fallback[32];
    const char *name = tc_json_string(tc_json_get(node, "name"));
    if (!name) {
        snprintf(fallback, sizeof fallback, "node%zu", index);
        name = fallback;
    }
    const char *target = tc_json_string(tc_json_get(node, "target"));
    if (!target) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: node '%s' has no target", name);
    const char *op = target;
    if (strncmp(op, "torch.ops.", 10) == 0) op += 10;
    if (strncmp(op, "aten.", 5) == 0) op += 5;
    node_ctx n = {.c = c, .name = name, .op = op, .a = a};
    const tc_json *inputs = tc_json_get(node, "inputs");
    const tc_json *outputs = tc_json_get(node, "outputs");
    if (tc_json_type_of(inputs) != TC_JSON_ARRAY || tc_json_type_of(outputs) != TC_JSON_ARRAY)
        return node_fail(&n, TC_ERR_FORMAT, "inputs or outputs missing", NULL);
    if (tc_json_len(outputs) == 0 && is_side_effect_only(op)) return TC_OK;

    bool handled;
    TC_TRY(sym_node(&n, inputs, outputs, &handled));
    if (handled) return TC_OK;

    const char **names = NULL;
    int n_names = 0;
    TC_TRY(output_names(&n, outputs, &names, &n_names));
    if (tc_op_find(op) < 0) {
        /* named as the op table names ops, so reports group "relu.default" and "relu" together */
        size_t len = strlen(op);
        if (len > 8 && strcmp(op + len - 8, ".default") == 0) {
            char *shortname = scratch(&n, len, 1);
            if (!shortname) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
            memcpy(shortname, op, len - 8);
            n.op = shortname;
        }
        return opaque_node(&n, inputs, names, n_names);
    }

    size_t n_in = tc_json_len(inputs);
    if (n_in > TC_OP_MAX_ARGS) return node_fail(&n, TC_ERR_SCHEMA, "more arguments than any schema has", NULL);
    tc_arg args[TC_OP_MAX_ARGS];
    int n_args = 0;
    for (size_t i = 0; i < n_in; i++) {
        const tc_json *na = tc_json_at(inputs, i);
        const char *argname = tc_json_string(tc_json_get(na, "name"));
        if (!argname) return node_fail(&n, TC_ERR_FORMAT, "an argument without a name", NULL);
        bool skip;
        TC_TRY(map_arg(&n, argname, tc_json_get(na, "arg"), &args[n_args], &skip));
        if (!skip) n_args++;
    }
    TC_TRY(wrap_scalars(&n, &op, args, n_args));
    n.op = tc_op_get(tc_op_find(op))->name; /* the table's spelling, as tc_graph_add_node's messages use */
    tc_value **outs = scratch(&n, TC_OP_MAX_OUTPUTS, sizeof *outs);
    if (!outs) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    int n_outs = 0;
    if (tc_graph_add_node(c->g, op, name, n_args, args, TC_OP_MAX_OUTPUTS, outs, &n_outs) != TC_OK)
        return tc_errorf(c->err, c->g->err.status, "%s", c->g->err.msg);
    if (n_names > n_outs) {
        char msg[96];
        snprintf(msg, sizeof msg, "the archive lists %d outputs, the op table's schema gives %d", n_names, n_outs);
        return node_fail(&n, TC_ERR_SCHEMA, msg, NULL);
    }
    for (int i = 0; i < n_names; i++)
        if (names[i]) TC_TRY(bind_output(&n, i, names[i], outs[i]));
    return TC_OK;
}

static tc_status mark_used(tc_pt2_ctx *c, const tc_json *t) {
    const char *name = tc_json_string(tc_json_get(t, "name"));
    if (name && tc_pt2_symmap_put(&c->used, name, 0)) return tc_errorf(c->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}

tc_status tc_pt2_collect_used(tc_pt2_ctx *c, const tc_json *nodes, const tc_json *output_specs) {
    for (size_t i = 0; i < tc_json_len(nodes); i++) {
        const tc_json *inputs = tc_json_get(tc_json_at(nodes, i), "inputs");
        for (size_t k = 0; k < tc_json_len(inputs); k++) {
            const tc_json *v;
            const char *kind = union_kind(tc_json_get(tc_json_at(inputs, k), "arg"), &v);
            if (!kind) continue;
            if (strcmp(kind, "as_tensor") == 0) TC_TRY(mark_used(c, v));
            else if (strcmp(kind, "as_tensors") == 0)
                for (size_t j = 0; j < tc_json_len(v); j++) TC_TRY(mark_used(c, tc_json_at(v, j)));
            else if (strcmp(kind, "as_optional_tensor") == 0) TC_TRY(mark_used(c, tc_json_get(v, "as_tensor")));
            else if (strcmp(kind, "as_optional_tensors") == 0)
                for (size_t j = 0; j < tc_json_len(v); j++) TC_TRY(mark_used(c, tc_json_get(tc_json_at(v, j), "as_tensor")));
        }
    }
    for (size_t i = 0; i < tc_json_len(output_specs); i++) {
        const tc_json *o = tc_json_get(tc_json_get(tc_json_at(output_specs, i), "user_output"), "arg");
        TC_TRY(mark_used(c, tc_json_get(o, "as_tensor")));
    }
    return TC_OK;
}

tc_status tc_pt2_import_nodes(tc_pt2_ctx *c, const tc_json *nodes) {
    if (tc_json_type_of(nodes) != TC_JSON_ARRAY) return tc_errorf(c->err, TC_ERR_FORMAT, "pt2: the graph has no node list");
    for (size_t i = 0; i < tc_json_len(nodes); i++) {
        tc_arena a = {0};
        tc_status st = import_node(c, tc_json_at(nodes, i), i, &a);
        tc_arena_free(&a);
        if (st != TC_OK) return st;
    }
    return TC_OK;
}
