/* The op table: schema parsing, lookup by name, inference helpers, type promotion and the
 * accessors for bound arguments. */
#include "ops/op.h"
#include "core/dtype.h"
#include "core/sym.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tc_op_def op_defs[TC_OP_COUNT] = {
#define TC_OP(id, schema, infer) {schema, infer, NULL, 0, {{0}}, 0},
#include "ops/ops.def"
#undef TC_OP
};
_Static_assert(sizeof op_defs / sizeof op_defs[0] == TC_OP_COUNT, "op table size");

static tc_arena schema_arena;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

/* --- schema parsing ------------------------------------------------------------------------ */

typedef struct {
    const char *p;
    const char *schema;
} lexer;

static void schema_bug(lexer *lx, const char *what) {
    fprintf(stderr, "tensorc: malformed op schema (%s) at '%s' in: %s\n", what, lx->p, lx->schema);
    abort();
}

static void skip_ws(lexer *lx) {
    while (*lx->p == ' ') lx->p++;
}

static bool accept(lexer *lx, const char *tok) {
    skip_ws(lx);
    size_t n = strlen(tok);
    if (strncmp(lx->p, tok, n) == 0) {
        lx->p += n;
        return true;
    }
    return false;
}

static const char *ident(lexer *lx) {
    skip_ws(lx);
    const char *s = lx->p;
    while (isalnum((unsigned char)*lx->p) || *lx->p == '_' || *lx->p == '.') lx->p++;
    if (s == lx->p) schema_bug(lx, "expected a name");
    char *r = tc_arena_alloc(&schema_arena, (size_t)(lx->p - s) + 1);
    memcpy(r, s, (size_t)(lx->p - s));
    return r;
}

static void skip_alias(lexer *lx) {
    /* Tensor(a), Tensor(a!), Tensor(a -> *) */
    if (*lx->p == '(') {
        while (*lx->p && *lx->p != ')') lx->p++;
        if (*lx->p != ')') schema_bug(lx, "unclosed alias annotation");
        lx->p++;
    }
}

static int64_t parse_int_lit(lexer *lx) {
    skip_ws(lx);
    char *end;
    long long v = strtoll(lx->p, &end, 10);
    if (end == lx->p) schema_bug(lx, "expected an integer");
    lx->p = end;
    return v;
}

static void parse_default(lexer *lx, tc_op_argdef *a) {
    skip_ws(lx);
    tc_arg *d = &a->def;
    a->has_default = true;
    if (accept(lx, "None")) {
        d->kind = TC_ARG_NONE;
    } else if (accept(lx, "True")) {
        d->kind = TC_ARG_BOOL, d->u.b = true;
    } else if (accept(lx, "False")) {
        d->kind = TC_ARG_BOOL, d->u.b = false;
    } else if (*lx->p == '\'' || *lx->p == '"') {
        char q = *lx->p++;
        const char *s = lx->p;
        while (*lx->p && *lx->p != q) lx->p++;
        char *r = tc_arena_alloc(&schema_arena, (size_t)(lx->p - s) + 1);
        memcpy(r, s, (size_t)(lx->p - s));
        lx->p++;
        d->kind = TC_ARG_STRING, d->u.s = r;
    } else if (*lx->p == '[') {
        lx->p++;
        int64_t vals[TC_MAX_RANK];
        int n = 0;
        while (!accept(lx, "]")) {
            if (n == TC_MAX_RANK) schema_bug(lx, "default list too long");
            vals[n++] = parse_int_lit(lx);
            accept(lx, ",");
        }
        if (a->type == TC_AT_FLOAT_LIST) schema_bug(lx, "float list defaults are not supported");
        d->kind = TC_ARG_INTS;
        d->count = n;
        d->u.ints = tc_arena_memdup(&schema_arena, vals, sizeof(int64_t) * (size_t)n);
    } else if (isdigit((unsigned char)*lx->p) || *lx->p == '-') {
        const char *s = lx->p;
        char *end;
        double f = strtod(s, &end);
        bool is_float = false;
        for (const char *q = s; q < end; q++)
            if (*q == '.' || *q == 'e' || *q == 'E') is_float = true;
        lx->p = end;
        if (a->type == TC_AT_FLOAT || is_float) {
            d->kind = TC_ARG_FLOAT, d->u.f = f;
        } else {
            d->kind = TC_ARG_INT, d->u.i = strtoll(s, NULL, 10);
        }
        if ((a->type == TC_AT_INT_LIST || a->type == TC_AT_BOOL_LIST) && d->kind == TC_ARG_INT) {
            int n = a->fixed_len ? a->fixed_len : 1;
            int64_t *v = tc_arena_alloc(&schema_arena, sizeof(int64_t) * (size_t)n);
            for (int i = 0; i < n; i++) v[i] = d->u.i;
            d->kind = TC_ARG_INTS, d->count = n, d->u.ints = v;
        }
    } else {
        /* enum-like defaults such as contiguous_format or long: only for ignored types */
        const char *id = ident(lx);
        if (a->type != TC_AT_IGNORED) schema_bug(lx, "unknown default");
        d->kind = TC_ARG_STRING, d->u.s = id;
    }
}

static void parse_type(lexer *lx, tc_op_argdef *a) {
    const char *t = ident(lx);
    skip_alias(lx);
    bool list = false;
    if (*lx->p == '[') {
        lx->p++;
        list = true;
        if (isdigit((unsigned char)*lx->p)) a->fixed_len = (int)parse_int_lit(lx);
        if (!accept(lx, "]")) schema_bug(lx, "expected ]");
    }
    bool opt_elem = false;
    if (*lx->p == '?') {
        lx->p++;
        if (!list && strcmp(t, "Tensor") == 0 && *lx->p == '[') {
            /* Tensor?[] */
            lx->p++;
            if (!accept(lx, "]")) schema_bug(lx, "expected ]");
            opt_elem = true;
            list = true;
        } else {
            a->optional = true;
        }
    }
    skip_alias(lx);
    if (*lx->p == '?') {
        lx->p++;
        a->optional = true;
    }
    if (strcmp(t, "Tensor") == 0) a->type = list ? (opt_elem ? TC_AT_OPT_TENSOR_LIST : TC_AT_TENSOR_LIST) : TC_AT_TENSOR;
    else if (strcmp(t, "int") == 0 || strcmp(t, "SymInt") == 0) a->type = list ? TC_AT_INT_LIST : TC_AT_INT;
    else if (strcmp(t, "float") == 0) a->type = list ? TC_AT_FLOAT_LIST : TC_AT_FLOAT;
    else if (strcmp(t, "bool") == 0) a->type = list ? TC_AT_BOOL_LIST : TC_AT_BOOL;
    else if (strcmp(t, "Scalar") == 0 && !list) a->type = TC_AT_SCALAR;
    else if (strcmp(t, "str") == 0 && !list) a->type = TC_AT_STR;
    else if (strcmp(t, "ScalarType") == 0 && !list) a->type = TC_AT_DTYPE;
    else if (strcmp(t, "Layout") == 0 || strcmp(t, "Device") == 0 || strcmp(t, "MemoryFormat") == 0)
        a->type = TC_AT_IGNORED;
    else schema_bug(lx, "unknown type");
}

static void parse_schema(tc_op_def *d) {
    lexer lx = {d->schema, d->schema};
    const char *name = ident(&lx);
    size_t n = strlen(name);
    if (n > 8 && strcmp(name + n - 8, ".default") == 0) ((char *)name)[n - 8] = '\0';
    d->name = name;
    if (!accept(&lx, "(")) schema_bug(&lx, "expected (");
    bool kwonly = false;
    while (!accept(&lx, ")")) {
        if (accept(&lx, "*")) {
            kwonly = true;
            accept(&lx, ",");
            continue;
        }
        if (d->n_args == TC_OP_MAX_ARGS) schema_bug(&lx, "too many arguments");
        tc_op_argdef *a = &d->args[d->n_args++];
        parse_type(&lx, a);
        a->name = ident(&lx);
        a->kwonly = kwonly;
        if (accept(&lx, "=")) parse_default(&lx, a);
        accept(&lx, ",");
    }
    if (!accept(&lx, "->")) schema_bug(&lx, "expected ->");
    skip_ws(&lx);
    if (accept(&lx, "(")) {
        d->n_outputs = 0;
        while (!accept(&lx, ")")) {
            tc_op_argdef tmp = {0};
            parse_type(&lx, &tmp);
            skip_ws(&lx);
            if (isalpha((unsigned char)*lx.p)) ident(&lx); /* named return */
            d->n_outputs++;
            accept(&lx, ",");
        }
    } else {
        tc_op_argdef tmp = {0};
        parse_type(&lx, &tmp);
        d->n_outputs = tmp.type == TC_AT_TENSOR_LIST ? -1 : 1;
    }
}

static void parse_all(void) {
    for (int i = 0; i < TC_OP_COUNT; i++) parse_schema(&op_defs[i]);
    for (int i = 0; i < TC_OP_COUNT; i++)
        for (int j = i + 1; j < TC_OP_COUNT; j++)
            if (strcmp(op_defs[i].name, op_defs[j].name) == 0) {
                fprintf(stderr, "tensorc: op '%s' is in the table twice\n", op_defs[i].name);
                abort();
            }
}

const tc_op_def *tc_op_get(int op) {
    pthread_once(&schema_once, parse_all);
    TC_ASSERT(op >= 0 && op < TC_OP_COUNT);
    return &op_defs[op];
}

int tc_op_find(const char *name) {
    pthread_once(&schema_once, parse_all);
    if (!name) return -1;
    if (strncmp(name, "torch.ops.", 10) == 0) name += 10;
    if (strncmp(name, "aten.", 5) == 0) name += 5;
    if (strncmp(name, "aten::", 6) == 0) name += 6;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", name);
    size_t n = strlen(buf);
    if (n > 8 && strcmp(buf + n - 8, ".default") == 0) buf[n - 8] = '\0';
    for (int i = 0; i < TC_OP_COUNT; i++)
        if (strcmp(op_defs[i].name, buf) == 0) return i;
    return -1;
}

int tc_op_count(void) { return TC_OP_COUNT; }

const char *tc_op_name(int i) { return i >= 0 && i < TC_OP_COUNT ? tc_op_get(i)->name : NULL; }

const char *tc_op_schema(int i) { return i >= 0 && i < TC_OP_COUNT ? tc_op_get(i)->schema : NULL; }

/* --- inference helpers --------------------------------------------------------------------- */

tc_status tc_infer_fail(tc_infer_ctx *c, tc_status s, const char *fmt, ...) {
    if (c->status != TC_OK) return c->status;
    char label[256], msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = s;
    return tc_errorf(c->err, s, "%s: %s", tc_node_label(c->node, label, sizeof label), msg);
}

void tc_infer_set(tc_infer_ctx *c, int i, tc_dtype dtype, int rank, const tc_dim *dims) {
    TC_ASSERT(i >= 0 && i < TC_OP_MAX_OUTPUTS && rank >= 0 && rank <= TC_MAX_RANK);
    c->out[i].dtype = dtype;
    c->out[i].rank = rank;
    for (int k = 0; k < rank; k++) c->out[i].dims[k] = dims[k];
    if (i >= c->n_out) c->n_out = i + 1;
}

static tc_dim dim_op(tc_infer_ctx *c, tc_sym_op op, tc_dim a, tc_dim b) {
    tc_dim r = 0;
    tc_error e;
    if (tc_sym_binop(&c->g->syms, op, a, b, &r, &e) != TC_OK) {
        tc_infer_fail(c, e.status, "%s", e.msg);
        return 0;
    }
    return r;
}

tc_dim tc_dim_add(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_op(c, TC_SYM_ADD, a, b); }
tc_dim tc_dim_sub(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_op(c, TC_SYM_SUB, a, b); }
tc_dim tc_dim_mul(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_op(c, TC_SYM_MUL, a, b); }
tc_dim tc_dim_floordiv(tc_infer_ctx *c, tc_dim a, tc_dim b) { return dim_op(c, TC_SYM_FLOORDIV, a, b); }

int tc_infer_dim_index(tc_infer_ctx *c, int64_t dim, int rank, const char *what) {
    int64_t r = rank > 0 ? rank : 1; /* PyTorch allows dim 0 / -1 on scalars */
    if (dim < -r || dim >= r) {
        tc_infer_fail(c, TC_ERR_SHAPE, "%s %lld is out of range for a tensor of rank %d",
                      what ? what : "dim", (long long)dim, rank);
        return 0;
    }
    return (int)(dim < 0 ? dim + r : dim);
}

void tc_infer_range(tc_infer_ctx *c, tc_dim d, int64_t *min, int64_t *max) {
    int64_t opt;
    tc_sym_range(&c->g->syms, d, min, &opt, max);
}

bool tc_infer_broadcast(tc_infer_ctx *c, int ra, const tc_dim *a, int rb, const tc_dim *b, int *rank,
                        tc_dim *out) {
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        int ia = ra - r + i, ib = rb - r + i;
        tc_dim da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        tc_dim o;
        if (da == db || db == 1) o = da;
        else if (da == 1) o = db;
        else if (!TC_DIM_IS_SYM(da) && !TC_DIM_IS_SYM(db)) {
            tc_infer_fail(c, TC_ERR_SHAPE, "shapes cannot be broadcast: size %lld vs %lld at dim %d",
                          (long long)da, (long long)db, i);
            return false;
        } else if (!TC_DIM_IS_SYM(da)) o = da; /* the symbol must be 1 or equal: the constant wins */
        else o = TC_DIM_IS_SYM(db) && TC_DIM_IS_SYM(da) ? da : db;
        out[i] = o;
    }
    *rank = r;
    return true;
}

/* --- type promotion ------------------------------------------------------------------------ */

static int category(tc_dtype t) {
    if (t == TC_BOOL) return 0;
    if (tc_dtype_is_int(t)) return 1;
    return 2;
}

static int float_rank(tc_dtype t) {
    switch (t) {
    case TC_F8E4M3: return 0;
    case TC_F16: return 1;
    case TC_BF16: return 1;
    case TC_F32: return 2;
    case TC_F64: return 3;
    default: return -1;
    }
}

static int int_rank(tc_dtype t) {
    switch (t) {
    case TC_U8: return 0;
    case TC_I8: return 0;
    case TC_I32: return 2;
    case TC_I64: return 3;
    default: return -1;
    }
}

tc_dtype tc_promote_types(tc_dtype a, tc_dtype b) {
    if (a == b) return a;
    int ca = category(a), cb = category(b);
    if (ca != cb) return ca > cb ? a : b;
    if (ca == 2) {
        if ((a == TC_F16 && b == TC_BF16) || (a == TC_BF16 && b == TC_F16)) return TC_F32;
        return float_rank(a) >= float_rank(b) ? a : b;
    }
    /* u8 with i8 is i16 in PyTorch; i32 is the nearest type we have */
    if ((a == TC_U8 && b == TC_I8) || (a == TC_I8 && b == TC_U8)) return TC_I32;
    return int_rank(a) >= int_rank(b) ? a : b;
}

void tc_promote_init(tc_promote *p) { memset(p, 0, sizeof *p); }

static void promote_into(tc_dtype *slot, bool *has, tc_dtype t) {
    *slot = *has ? tc_promote_types(*slot, t) : t;
    *has = true;
}

void tc_promote_tensor(tc_promote *p, const tc_value *v) {
    if (v->rank > 0) promote_into(&p->dim_result, &p->has_dim, v->dtype);
    else promote_into(&p->zero_result, &p->has_zero, v->dtype);
}

void tc_promote_scalar(tc_promote *p, const tc_arg *s) {
    tc_dtype t = s->kind == TC_ARG_FLOAT ? TC_F32 : s->kind == TC_ARG_BOOL ? TC_BOOL : TC_I64;
    promote_into(&p->wrapped_result, &p->has_wrapped, t);
}

/* A lower-priority participant only matters when it is of a higher category. */
static bool combine(tc_dtype higher, bool has_h, tc_dtype lower, bool has_l, tc_dtype *out) {
    if (!has_h) {
        *out = lower;
        return has_l;
    }
    if (!has_l || category(higher) >= category(lower)) {
        *out = higher;
        return true;
    }
    *out = lower;
    if (category(lower) == 2 && category(higher) < 2) *out = lower; /* int tensor * float → float */
    return true;
}

tc_dtype tc_promote_result(const tc_promote *p) {
    tc_dtype zw;
    bool has_zw = combine(p->zero_result, p->has_zero, p->wrapped_result, p->has_wrapped, &zw);
    tc_dtype r;
    if (!combine(p->dim_result, p->has_dim, zw, has_zw, &r)) return TC_F32;
    return r;
}

/* --- argument accessors -------------------------------------------------------------------- */

tc_value *tc_node_tensor(const tc_node *n, int i) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_NONE) return NULL;
    TC_ASSERT(a->kind == TC_ARG_TENSOR);
    return (tc_value *)a->u.tensor;
}

int tc_node_tensor_slot(const tc_node *n, int argi) {
    const tc_node_arg *a = &n->args[argi];
    if (a->a.kind == TC_ARG_NONE) return -1;
    TC_ASSERT(a->a.kind == TC_ARG_TENSOR && a->slot >= 0);
    return a->slot;
}

int tc_node_list_slot(const tc_node *n, int argi, int64_t k) {
    const tc_node_arg *a = &n->args[argi];
    TC_ASSERT(a->a.kind == TC_ARG_TENSORS && k >= 0 && k < a->a.count);
    return a->slot + (int)k;
}

int64_t tc_node_int_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals) {
    int64_t v = tc_node_int(n, argi);
    return TC_DIM_IS_SYM(v) ? tc_sym_eval(&g->syms, v, symvals) : v;
}

int64_t tc_node_ints_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals, int64_t *out,
                          int64_t cap) {
    int64_t count;
    const int64_t *v = tc_node_ints(n, argi, &count);
    if (!v) return -1;
    TC_ASSERT(count <= cap);
    for (int64_t i = 0; i < count; i++) out[i] = TC_DIM_IS_SYM(v[i]) ? tc_sym_eval(&g->syms, v[i], symvals) : v[i];
    return count;
}

void tc_node_pair_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals, const int64_t *dflt,
                       int64_t *out) {
    int64_t v[TC_MAX_RANK * 2];
    int64_t k = tc_node_ints_eval(g, n, argi, symvals, v, TC_MAX_RANK * 2);
    if (k <= 0) {
        out[0] = dflt ? dflt[0] : 0, out[1] = dflt ? dflt[1] : 0;
        return;
    }
    out[0] = v[0], out[1] = v[k - 1];
}

tc_status tc_node_failv(tc_error *err, const tc_node *n, const char *backend, tc_status s, const char *fmt,
                        va_list ap) {
    char label[256], msg[700];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return tc_errorf(err, s, "%s on %s: %s", tc_node_label(n, label, sizeof label), backend, msg);
}

int64_t tc_node_int(const tc_node *n, int i) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_BOOL) return a->u.b;
    if (a->kind == TC_ARG_FLOAT) return (int64_t)a->u.f;
    TC_ASSERT(a->kind == TC_ARG_INT);
    return a->u.i;
}

int64_t tc_node_int_or(const tc_node *n, int i, int64_t dflt) {
    return n->args[i].a.kind == TC_ARG_NONE ? dflt : tc_node_int(n, i);
}

double tc_node_float(const tc_node *n, int i) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_INT) return (double)a->u.i;
    if (a->kind == TC_ARG_BOOL) return a->u.b;
    TC_ASSERT(a->kind == TC_ARG_FLOAT);
    return a->u.f;
}

double tc_node_float_or(const tc_node *n, int i, double dflt) {
    return n->args[i].a.kind == TC_ARG_NONE ? dflt : tc_node_float(n, i);
}

bool tc_node_bool(const tc_node *n, int i) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_INT) return a->u.i != 0;
    TC_ASSERT(a->kind == TC_ARG_BOOL);
    return a->u.b;
}

const int64_t *tc_node_ints(const tc_node *n, int i, int64_t *count) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_NONE) {
        *count = 0;
        return NULL;
    }
    TC_ASSERT(a->kind == TC_ARG_INTS);
    *count = a->count;
    return a->u.ints;
}

const double *tc_node_floats(const tc_node *n, int i, int64_t *count) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_NONE) {
        *count = 0;
        return NULL;
    }
    TC_ASSERT(a->kind == TC_ARG_FLOATS);
    *count = a->count;
    return a->u.floats;
}

const char *tc_node_str(const tc_node *n, int i) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_NONE) return NULL;
    TC_ASSERT(a->kind == TC_ARG_STRING);
    return a->u.s;
}

tc_dtype tc_node_dtype_or(const tc_node *n, int i, tc_dtype dflt) {
    const tc_arg *a = &n->args[i].a;
    if (a->kind == TC_ARG_NONE) return dflt;
    TC_ASSERT(a->kind == TC_ARG_DTYPE);
    return a->u.dtype;
}

bool tc_node_scalar_is_int(const tc_node *n, int i) {
    tc_arg_kind k = n->args[i].a.kind;
    return k == TC_ARG_INT || k == TC_ARG_BOOL;
}
