/* Writing an IR graph into bytes and reading it back: symbols with their ranges, inputs, constants
 * (into a separate 64-byte aligned weight blob), nodes with their bound arguments by op and argument
 * NAME (so files survive a reordered op table), and outputs. Reading re-adds every node through
 * tc_graph_add_node, so this build's schemas and shape inference check what the file says. */
#include "engine/serialize.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

#define NO_VALUE 0xffffffffu
/* Bounds that keep every size expression evaluable in int64 without overflow. */
#define SYM_MAX_VALUE ((int64_t)1 << 40)
#define SYM_MAX_BOUND ((int64_t)1 << 62)

/* ---- writing -------------------------------------------------------------------------------- */

static void write_dims(tc_wbuf *w, int rank, const tc_dim *dims) {
    tc_wbuf_u32(w, (uint32_t)rank);
    for (int i = 0; i < rank; i++) tc_wbuf_i64(w, dims[i]);
}

static void write_arg(tc_wbuf *w, const tc_arg *a) {
    tc_wbuf_str(w, a->name);
    tc_wbuf_u8(w, (uint8_t)a->kind);
    switch (a->kind) {
    case TC_ARG_NONE: break;
    case TC_ARG_TENSOR: tc_wbuf_u32(w, a->u.tensor ? (uint32_t)a->u.tensor->id : NO_VALUE); break;
    case TC_ARG_TENSORS:
        tc_wbuf_u64(w, (uint64_t)a->count);
        for (int64_t i = 0; i < a->count; i++) tc_wbuf_u32(w, a->u.tensors[i] ? (uint32_t)a->u.tensors[i]->id : NO_VALUE);
        break;
    case TC_ARG_INT: tc_wbuf_i64(w, a->u.i); break;
    case TC_ARG_INTS:
        tc_wbuf_u64(w, (uint64_t)a->count);
        for (int64_t i = 0; i < a->count; i++) tc_wbuf_i64(w, a->u.ints[i]);
        break;
    case TC_ARG_FLOAT: tc_wbuf_f64(w, a->u.f); break;
    case TC_ARG_FLOATS:
        tc_wbuf_u64(w, (uint64_t)a->count);
        for (int64_t i = 0; i < a->count; i++) tc_wbuf_f64(w, a->u.floats[i]);
        break;
    case TC_ARG_BOOL: tc_wbuf_u8(w, a->u.b ? 1 : 0); break;
    case TC_ARG_BOOLS:
        tc_wbuf_u64(w, (uint64_t)a->count);
        for (int64_t i = 0; i < a->count; i++) tc_wbuf_u8(w, a->u.bools[i] ? 1 : 0);
        break;
    case TC_ARG_STRING: tc_wbuf_str(w, a->u.s); break;
    case TC_ARG_DTYPE: tc_wbuf_u32(w, (uint32_t)a->u.dtype); break;
    case TC_ARG_KIND_COUNT: TC_ASSERT(!"bad argument kind"); break;
    }
}

tc_status tc_graph_write(const tc_graph *g, tc_wbuf *w, tc_wbuf *blob, tc_error *err) {
    const tc_symtab *t = &g->syms;
    tc_wbuf_u32(w, (uint32_t)t->atoms.n);
    for (int i = 0; i < t->atoms.n; i++) {
        const tc_sym_atom *a = t->atoms.items[i];
        tc_wbuf_u8(w, (uint8_t)a->kind);
        if (a->kind == TC_ATOM_SYMBOL) {
            tc_wbuf_str(w, a->name);
            tc_wbuf_i64(w, a->min);
            tc_wbuf_i64(w, a->opt);
            tc_wbuf_i64(w, a->max);
        } else {
            tc_wbuf_i64(w, a->a);
            tc_wbuf_i64(w, a->b);
        }
    }
    tc_wbuf_u32(w, (uint32_t)t->exprs.n);
    for (int i = 0; i < t->exprs.n; i++) {
        const tc_sym_poly *p = t->exprs.items[i];
        tc_wbuf_u32(w, (uint32_t)p->n);
        for (int k = 0; k < p->n; k++) {
            tc_wbuf_i64(w, p->terms[k].coef);
            tc_wbuf_u32(w, (uint32_t)p->terms[k].n);
            for (int j = 0; j < p->terms[k].n; j++) tc_wbuf_u32(w, (uint32_t)p->terms[k].atoms[j]);
        }
    }
    tc_wbuf_u32(w, (uint32_t)g->values.n);

    tc_wbuf_u32(w, (uint32_t)g->inputs.n);
    for (int i = 0; i < g->inputs.n; i++) {
        const tc_value *v = g->inputs.items[i];
        tc_wbuf_u32(w, (uint32_t)v->id);
        tc_wbuf_str(w, v->name);
        tc_wbuf_u32(w, (uint32_t)v->dtype);
        write_dims(w, v->rank, v->dims);
    }

    int n_const = 0;
    for (int i = 0; i < g->values.n; i++) n_const += ((tc_value *)g->values.items[i])->kind == TC_VALUE_CONSTANT;
    tc_wbuf_u32(w, (uint32_t)n_const);
    for (int i = 0; i < g->values.n; i++) {
        const tc_value *v = g->values.items[i];
        if (v->kind != TC_VALUE_CONSTANT) continue;
        tc_wbuf_pad(blob, 64);
        uint64_t off = blob->size;
        tc_wbuf_bytes(blob, v->data, v->nbytes);
        tc_wbuf_u32(w, (uint32_t)v->id);
        tc_wbuf_str(w, v->name);
        tc_wbuf_u32(w, (uint32_t)v->dtype);
        write_dims(w, v->rank, v->dims);
        tc_wbuf_u64(w, off);
        tc_wbuf_u64(w, (uint64_t)v->nbytes);
    }
    tc_wbuf_pad(blob, 64);

    tc_wbuf_u32(w, (uint32_t)g->nodes.n);
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        if (n->op < 0)
            return tc_errorf(err, TC_ERR_UNSUPPORTED,
                             "node '%s' (%s) is an op this build does not know; an engine cannot contain it",
                             n->name, n->op_name);
        tc_wbuf_str(w, n->op_name);
        tc_wbuf_str(w, n->name);
        tc_wbuf_u32(w, (uint32_t)n->n_args);
        for (int k = 0; k < n->n_args; k++) write_arg(w, &n->args[k].a);
        tc_wbuf_u32(w, (uint32_t)n->n_outputs);
        for (int k = 0; k < n->n_outputs; k++) {
            const tc_value *v = n->outputs[k];
            tc_wbuf_u32(w, (uint32_t)v->id);
            tc_wbuf_str(w, v->name);
            tc_wbuf_u32(w, (uint32_t)v->dtype);
            write_dims(w, v->rank, v->dims);
        }
    }

    tc_wbuf_u32(w, (uint32_t)g->outputs.n);
    for (int i = 0; i < g->outputs.n; i++) {
        tc_wbuf_u32(w, (uint32_t)((tc_value *)g->outputs.items[i])->id);
        tc_wbuf_str(w, g->output_names.items[i]);
    }
    if (w->oom || blob->oom) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory writing the graph");
    return TC_OK;
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct reader {
    tc_rbuf r;
    tc_graph *g;
    tc_error *err;
    uint32_t n_values;
    tc_value **map;          /* file value id -> value of the new graph */
    unsigned char *blob;     /* 64-byte aligned copy of the weights */
    size_t blob_size;
    bool blob_owned;         /* a constant of g now frees blob */
    int64_t *atom_bound;     /* max |value| of each atom over the symbol ranges */
} reader;

static tc_status bad(reader *rd, const char *what) {
    return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s%s", what,
                     rd->r.bad ? " (the section ends early)" : "");
}

/* A terminated copy of the next string, in the graph's arena. */
static const char *rd_str(reader *rd) {
    const char *s;
    uint32_t n = tc_rbuf_str(&rd->r, &s);
    if (rd->r.bad) return NULL;
    char *c = tc_arena_alloc(&rd->g->arena, (size_t)n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

/* Constant dims are bounded like symbols: no real tensor comes near, and size arithmetic on them
 * then cannot overflow. */
static bool dim_ok(const tc_graph *g, tc_dim d) {
    if (TC_DIM_IS_SYM(d)) return TC_DIM_SYM_BASE - d < g->syms.exprs.n;
    return d >= 0 && d <= SYM_MAX_VALUE;
}

/* An int argument may be negative (dim=-1) but a symbolic one must exist. */
static bool int_ok(const tc_graph *g, int64_t v) {
    return !TC_DIM_IS_SYM(v) || TC_DIM_SYM_BASE - v < g->syms.exprs.n;
}

static tc_status rd_dims(reader *rd, const char *what, const char *name, int *rank, tc_dim *dims) {
    uint32_t r = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || r > TC_MAX_RANK)
        return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s '%s' has a bad rank", what, name ? name : "?");
    for (uint32_t i = 0; i < r; i++) {
        dims[i] = tc_rbuf_i64(&rd->r);
        if (!rd->r.bad && !dim_ok(rd->g, dims[i]))
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s '%s' dim %u is invalid", what,
                             name ? name : "?", i);
    }
    if (rd->r.bad) return bad(rd, "a shape is cut off");
    *rank = (int)r;
    return TC_OK;
}

static int64_t bound_of_dim(const reader *rd, tc_dim d);

/* |x| bound of term coef*atoms; -1 on overflow past SYM_MAX_BOUND. */
static int64_t term_bound(const reader *rd, const tc_sym_term *x) {
    int64_t b = x->coef < 0 ? -x->coef : x->coef;
    for (int j = 0; j < x->n; j++) {
        int64_t a = rd->atom_bound[x->atoms[j]], m;
        if (a < 0 || __builtin_mul_overflow(b, a, &m) || m > SYM_MAX_BOUND) return -1;
        b = m;
    }
    return b;
}

static int64_t bound_of_dim(const reader *rd, tc_dim d) {
    if (!TC_DIM_IS_SYM(d)) return d < 0 ? (d < -SYM_MAX_BOUND ? -1 : -d) : (d > SYM_MAX_BOUND ? -1 : d);
    const tc_sym_poly *p = rd->g->syms.exprs.items[TC_DIM_SYM_BASE - d];
    int64_t sum = 0;
    for (int k = 0; k < p->n; k++) {
        int64_t b = term_bound(rd, &p->terms[k]);
        if (b < 0 || sum > SYM_MAX_BOUND - b) return -1;
        sum += b;
    }
    return sum;
}

static int term_cmp(const tc_sym_term *x, const tc_sym_term *y) {
    if (x->n != y->n) return x->n - y->n;
    for (int i = 0; i < x->n; i++)
        if (x->atoms[i] != y->atoms[i]) return x->atoms[i] - y->atoms[i];
    return 0;
}

/* Highest atom id an expression uses, -1 for a constant. */
static int max_atom(const tc_graph *g, tc_dim d) {
    if (!TC_DIM_IS_SYM(d)) return -1;
    const tc_sym_poly *p = g->syms.exprs.items[TC_DIM_SYM_BASE - d];
    int m = -1;
    for (int k = 0; k < p->n; k++)
        for (int j = 0; j < p->terms[k].n; j++)
            if (p->terms[k].atoms[j] > m) m = p->terms[k].atoms[j];
    return m;
}

static tc_status read_symbols(reader *rd, const tc_sym_override *ov, int n_ov) {
    tc_graph *g = rd->g;
    tc_symtab *t = &g->syms;
    uint32_t n_atoms = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n_atoms > tc_rbuf_room(&rd->r, 17)) return bad(rd, "bad symbol count");
    for (uint32_t i = 0; i < n_atoms; i++) {
        tc_sym_atom a = {0};
        uint8_t kind = tc_rbuf_u8(&rd->r);
        if (kind == TC_ATOM_SYMBOL) {
            a.kind = TC_ATOM_SYMBOL;
            a.name = rd_str(rd);
            a.min = tc_rbuf_i64(&rd->r);
            a.opt = tc_rbuf_i64(&rd->r);
            a.max = tc_rbuf_i64(&rd->r);
            if (rd->r.bad || !a.name) return bad(rd, "a symbol is cut off");
            if (!a.name[0] || tc_sym_find(t, a.name) >= 0)
                return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: symbol %u has an empty or repeated name", i);
        } else if (kind == TC_ATOM_FLOORDIV || kind == TC_ATOM_MOD) {
            a.kind = (tc_atom_kind)kind;
            a.a = tc_rbuf_i64(&rd->r);
            a.b = tc_rbuf_i64(&rd->r);
            if (rd->r.bad) return bad(rd, "a size expression is cut off");
        } else {
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: symbol %u has an unknown kind %u", i, kind);
        }
        tc_sym_atom *p = tc_arena_memdup(&g->arena, &a, sizeof a);
        if (!p || tc_ptrvec_push(&t->atoms, p)) return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int k = 0; k < n_ov; k++) {
        int id = tc_sym_find(t, ov[k].name);
        if (id < 0) {
            char names[512];
            size_t len = 0;
            names[0] = '\0';
            for (int i = 0; i < t->atoms.n && len < sizeof names; i++) {
                const tc_sym_atom *a = t->atoms.items[i];
                if (a->kind == TC_ATOM_SYMBOL)
                    len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", a->name);
            }
            return tc_errorf(rd->err, TC_ERR_NOT_FOUND, "the model has no symbolic size named '%s' (it has: %s)",
                             ov[k].name, len ? names : "none");
        }
        tc_sym_atom *a = t->atoms.items[id];
        a->min = ov[k].min, a->opt = ov[k].opt, a->max = ov[k].max;
    }
    for (int i = 0; i < t->atoms.n; i++) {
        const tc_sym_atom *a = t->atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL && (a->min < 0 || a->min > a->opt || a->opt > a->max || a->max > SYM_MAX_VALUE))
            return tc_errorf(rd->err, TC_ERR_FORMAT,
                             "engine graph: symbol '%s' has the range (%lld, %lld, %lld); need 0 <= min <= opt <= max <= 2^40",
                             a->name, (long long)a->min, (long long)a->opt, (long long)a->max);
    }

    uint32_t n_exprs = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n_exprs > tc_rbuf_room(&rd->r, 4)) return bad(rd, "bad size expression count");
    for (uint32_t i = 0; i < n_exprs; i++) {
        uint32_t nt = tc_rbuf_u32(&rd->r);
        if (rd->r.bad || nt == 0 || nt > tc_rbuf_room(&rd->r, 12)) return bad(rd, "bad size expression");
        tc_sym_poly *p = tc_arena_alloc(&g->arena, sizeof *p);
        tc_sym_term *terms = tc_arena_alloc(&g->arena, sizeof *terms * nt);
        if (!p || !terms || tc_ptrvec_push(&t->exprs, p))
            return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        p->n = (int)nt;
        p->terms = terms;
        for (uint32_t k = 0; k < nt; k++) {
            tc_sym_term *x = &terms[k];
            x->coef = tc_rbuf_i64(&rd->r);
            uint32_t na = tc_rbuf_u32(&rd->r);
            if (rd->r.bad || na > TC_SYM_MAX_ATOMS || x->coef == 0 || x->coef > SYM_MAX_VALUE || x->coef < -SYM_MAX_VALUE)
                return bad(rd, "bad term in a size expression");
            x->n = (int)na;
            for (uint32_t j = 0; j < na; j++) {
                uint32_t id = tc_rbuf_u32(&rd->r);
                if (rd->r.bad || id >= n_atoms || (j > 0 && (int)id < x->atoms[j - 1]))
                    return bad(rd, "bad symbol in a size expression");
                x->atoms[j] = (int)id;
            }
            if (k > 0 && term_cmp(&terms[k - 1], x) >= 0) return bad(rd, "size expression is not in canonical order");
        }
        if (nt == 1 && terms[0].n == 0) return bad(rd, "a constant stored as a size expression");
    }
    /* floor-division and remainder atoms may only use earlier atoms, so evaluation terminates */
    rd->atom_bound = calloc((size_t)n_atoms + 1, sizeof *rd->atom_bound);
    if (!rd->atom_bound) return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (uint32_t i = 0; i < n_atoms; i++) {
        const tc_sym_atom *a = t->atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL) {
            rd->atom_bound[i] = a->max;
            continue;
        }
        if (!int_ok(g, a->a) || !int_ok(g, a->b) || max_atom(g, a->a) >= (int)i || max_atom(g, a->b) >= (int)i)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: size expression atom %u refers to itself or later ones", i);
        int64_t ba = bound_of_dim(rd, a->a), bb = bound_of_dim(rd, a->b);
        if (ba < 0 || bb < 0) return bad(rd, "a size expression can overflow");
        rd->atom_bound[i] = a->kind == TC_ATOM_FLOORDIV ? ba : bb;
    }
    for (uint32_t i = 0; i < n_exprs; i++)
        if (bound_of_dim(rd, TC_DIM_SYM_BASE - (int64_t)i) < 0) return bad(rd, "a size expression can overflow");
    return TC_OK;
}

static tc_value *lookup(reader *rd, uint32_t id) { return id < rd->n_values ? rd->map[id] : NULL; }

static tc_status define(reader *rd, uint32_t id, tc_value *v, const char *what) {
    if (id >= rd->n_values || rd->map[id])
        return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s '%s' has a bad or repeated value id %u", what,
                         v->name, id);
    rd->map[id] = v;
    return TC_OK;
}

static tc_status read_inputs(reader *rd) {
    uint32_t n = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n > tc_rbuf_room(&rd->r, 12)) return bad(rd, "bad input count");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = tc_rbuf_u32(&rd->r);
        const char *name = rd_str(rd);
        uint32_t dtype = tc_rbuf_u32(&rd->r);
        if (rd->r.bad || !name) return bad(rd, "an input is cut off");
        int rank;
        tc_dim dims[TC_MAX_RANK];
        TC_TRY(rd_dims(rd, "input", name, &rank, dims));
        if (dtype >= TC_DTYPE_COUNT) return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: input '%s' has a bad dtype", name);
        tc_value *v;
        if (tc_graph_add_input(rd->g, name, (tc_dtype)dtype, rank, dims, &v) != TC_OK)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s", rd->g->err.msg);
        TC_TRY(define(rd, id, v, "input"));
    }
    return TC_OK;
}

static tc_status read_constants(reader *rd, const void *blob, size_t blob_size) {
    uint32_t n = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n > tc_rbuf_room(&rd->r, 28)) return bad(rd, "bad constant count");
    if (blob_size) {
        size_t cap = (blob_size + 63) & ~(size_t)63;
        rd->blob = aligned_alloc(64, cap);
        if (!rd->blob)
            return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory for the %zu bytes of weights", blob_size);
        memcpy(rd->blob, blob, blob_size);
        rd->blob_size = blob_size;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = tc_rbuf_u32(&rd->r);
        const char *name = rd_str(rd);
        uint32_t dtype = tc_rbuf_u32(&rd->r);
        if (rd->r.bad || !name) return bad(rd, "a constant is cut off");
        int rank;
        tc_dim dims[TC_MAX_RANK];
        TC_TRY(rd_dims(rd, "constant", name, &rank, dims));
        uint64_t off = tc_rbuf_u64(&rd->r), nbytes = tc_rbuf_u64(&rd->r);
        if (rd->r.bad) return bad(rd, "a constant is cut off");
        if (dtype >= TC_DTYPE_COUNT) return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: constant '%s' has a bad dtype", name);
        uint64_t want = tc_dtype_size((tc_dtype)dtype);
        for (int d = 0; d < rank; d++) {
            if (TC_DIM_IS_SYM(dims[d]) || __builtin_mul_overflow(want, (uint64_t)dims[d], &want))
                return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: constant '%s' has a bad shape", name);
        }
        if (want != nbytes || off % 64 != 0 || off > rd->blob_size || nbytes > rd->blob_size - off)
            return tc_errorf(rd->err, TC_ERR_FORMAT,
                             "engine graph: constant '%s' (%llu bytes at %llu) does not fit its shape or the %zu-byte weight blob",
                             name, (unsigned long long)nbytes, (unsigned long long)off, rd->blob_size);
        tc_value *v;
        const void *data = rd->blob ? rd->blob + off : NULL;
        if (tc_graph_add_constant(rd->g, name, (tc_dtype)dtype, rank, dims, data, TC_CONSTANT_BORROW, &v) != TC_OK)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s", rd->g->err.msg);
        /* the constant at offset 0 points at the blob's start; making it the owner lets
         * tc_graph_free release the whole blob with no new field in the graph */
        if (off == 0 && rd->blob && !rd->blob_owned) {
            v->owned = true;
            rd->blob_owned = true;
        }
        TC_TRY(define(rd, id, v, "constant"));
    }
    if (rd->blob && !rd->blob_owned) return bad(rd, "the weight blob has no constant at offset 0");
    return TC_OK;
}

/* Reads one argument into a (lists in malloc'ed memory recorded in *to_free). */
static tc_status read_arg(reader *rd, const char *label, tc_arg *a, void **to_free) {
    *to_free = NULL;
    memset(a, 0, sizeof *a);
    a->name = rd_str(rd);
    uint8_t kind = tc_rbuf_u8(&rd->r);
    if (rd->r.bad || !a->name) return bad(rd, "an argument is cut off");
    if (kind >= TC_ARG_KIND_COUNT)
        return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s: argument '%s' has an unknown kind %u", label, a->name, kind);
    a->kind = (tc_arg_kind)kind;
    uint64_t count = 0;
    size_t elem = kind == TC_ARG_TENSORS ? 4 : kind == TC_ARG_BOOLS ? 1 : 8;
    if (kind == TC_ARG_TENSORS || kind == TC_ARG_INTS || kind == TC_ARG_FLOATS || kind == TC_ARG_BOOLS) {
        count = tc_rbuf_u64(&rd->r);
        if (rd->r.bad || count > tc_rbuf_room(&rd->r, elem)) return bad(rd, "a list argument is cut off");
        a->count = (int64_t)count;
        *to_free = malloc((size_t)(count ? count : 1) * 8);
        if (!*to_free) return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    switch (a->kind) {
    case TC_ARG_NONE: break;
    case TC_ARG_TENSOR: {
        uint32_t id = tc_rbuf_u32(&rd->r);
        a->u.tensor = lookup(rd, id);
        if (!rd->r.bad && !a->u.tensor)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s: argument '%s' uses value %u before it is defined",
                             label, a->name, id);
        break;
    }
    case TC_ARG_TENSORS: {
        tc_value **vs = *to_free;
        for (uint64_t i = 0; i < count; i++) {
            uint32_t id = tc_rbuf_u32(&rd->r);
            vs[i] = id == NO_VALUE ? NULL : lookup(rd, id);
            if (!rd->r.bad && id != NO_VALUE && !vs[i])
                return tc_errorf(rd->err, TC_ERR_FORMAT,
                                 "engine graph: %s: argument '%s' uses value %u before it is defined", label, a->name, id);
        }
        a->u.tensors = vs;
        break;
    }
    case TC_ARG_INT:
        a->u.i = tc_rbuf_i64(&rd->r);
        if (!rd->r.bad && !int_ok(rd->g, a->u.i))
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s: argument '%s' is a bad size", label, a->name);
        break;
    case TC_ARG_INTS: {
        int64_t *v = *to_free;
        for (uint64_t i = 0; i < count; i++) {
            v[i] = tc_rbuf_i64(&rd->r);
            if (!rd->r.bad && !int_ok(rd->g, v[i]))
                return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s: argument '%s' has a bad size", label, a->name);
        }
        a->u.ints = v;
        break;
    }
    case TC_ARG_FLOAT: a->u.f = tc_rbuf_f64(&rd->r); break;
    case TC_ARG_FLOATS: {
        double *v = *to_free;
        for (uint64_t i = 0; i < count; i++) v[i] = tc_rbuf_f64(&rd->r);
        a->u.floats = v;
        break;
    }
    case TC_ARG_BOOL: a->u.b = tc_rbuf_u8(&rd->r) != 0; break;
    case TC_ARG_BOOLS: {
        bool *v = *to_free;
        for (uint64_t i = 0; i < count; i++) v[i] = tc_rbuf_u8(&rd->r) != 0;
        a->u.bools = v;
        break;
    }
    case TC_ARG_STRING:
        a->u.s = rd_str(rd);
        if (!rd->r.bad && !a->u.s) return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        break;
    case TC_ARG_DTYPE: {
        uint32_t d = tc_rbuf_u32(&rd->r);
        if (!rd->r.bad && d >= TC_DTYPE_COUNT)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s: argument '%s' has a bad dtype", label, a->name);
        a->u.dtype = (tc_dtype)d;
        break;
    }
    case TC_ARG_KIND_COUNT: break;
    }
    if (rd->r.bad) return bad(rd, "an argument is cut off");
    return TC_OK;
}

static tc_status read_node(reader *rd, int index) {
    tc_graph *g = rd->g;
    const char *op = rd_str(rd), *name = rd_str(rd);
    uint32_t n_args = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || !op || !name) return bad(rd, "a node is cut off");
    char label[300];
    snprintf(label, sizeof label, "node '%s' (%s)", name, op);
    if (n_args > TC_OP_MAX_ARGS)
        return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s has %u arguments", label, n_args);
    if (tc_op_find(op) < 0)
        return tc_errorf(rd->err, TC_ERR_UNKNOWN_OP,
                         "engine graph: %s uses op '%s', which this build's op table does not have", label, op);
    tc_arg args[TC_OP_MAX_ARGS];
    void *lists[TC_OP_MAX_ARGS] = {0};
    tc_status st = TC_OK;
    uint32_t got = 0;
    for (; got < n_args && st == TC_OK; got++) st = read_arg(rd, label, &args[got], &lists[got]);
    tc_value *outs[TC_OP_MAX_OUTPUTS];
    int n_out = 0;
    if (st == TC_OK) {
        /* an explicit None for a non-optional argument came from a None default: leave it out */
        int n_pass = 0;
        const tc_op_def *def = tc_op_get(tc_op_find(op));
        for (uint32_t k = 0; k < n_args; k++) {
            if (args[k].kind == TC_ARG_NONE) {
                int j;
                for (j = 0; j < def->n_args; j++)
                    if (strcmp(def->args[j].name, args[k].name) == 0) break;
                if (j < def->n_args && !def->args[j].optional && def->args[j].type != TC_AT_IGNORED) continue;
            }
            args[n_pass++] = args[k];
        }
        st = tc_graph_add_node(g, op, name, n_pass, args, TC_OP_MAX_OUTPUTS, outs, &n_out);
        if (st != TC_OK)
            st = tc_errorf(rd->err, st, "engine graph: this build's op table does not accept the engine's node %d: %s",
                           index, g->err.msg);
    }
    for (uint32_t k = 0; k < got; k++) free(lists[k]);
    TC_TRY(st);

    uint32_t n_rec = tc_rbuf_u32(&rd->r);
    if (rd->r.bad) return bad(rd, "a node is cut off");
    if ((int)n_rec != n_out || n_rec > TC_OP_MAX_OUTPUTS)
        return tc_errorf(rd->err, TC_ERR_INVALID_GRAPH, "engine graph: %s has %u outputs in the engine, this build infers %d",
                         label, n_rec, n_out);
    for (uint32_t k = 0; k < n_rec; k++) {
        uint32_t id = tc_rbuf_u32(&rd->r);
        const char *vname = rd_str(rd);
        uint32_t dtype = tc_rbuf_u32(&rd->r);
        if (rd->r.bad || !vname) return bad(rd, "a node output is cut off");
        int rank;
        tc_dim dims[TC_MAX_RANK];
        TC_TRY(rd_dims(rd, "output of", name, &rank, dims));
        tc_value *v = outs[k];
        bool same = v->dtype == (tc_dtype)dtype && v->rank == rank;
        for (int d = 0; same && d < rank; d++) same = v->dims[d] == dims[d];
        if (!same) {
            char t1[256], t2[256];
            tc_value tmp = *v;
            tmp.dtype = dtype < TC_DTYPE_COUNT ? (tc_dtype)dtype : TC_F32;
            tmp.rank = rank;
            memcpy(tmp.dims, dims, sizeof(tc_dim) * (size_t)rank);
            return tc_errorf(rd->err, TC_ERR_INVALID_GRAPH,
                             "engine graph: %s: output %u is %s in the engine but this build infers %s", label, k,
                             tc_value_type_string(g, &tmp, t1, sizeof t1), tc_value_type_string(g, v, t2, sizeof t2));
        }
        if (strcmp(v->name, vname) != 0) v->name = vname;
        TC_TRY(define(rd, id, v, "node output"));
    }
    return TC_OK;
}

static tc_status read_graph(reader *rd, const void *blob, size_t blob_size, const tc_sym_override *ov, int n_ov) {
    TC_TRY(read_symbols(rd, ov, n_ov));
    rd->n_values = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || rd->n_values > tc_rbuf_room(&rd->r, 4) + 1) return bad(rd, "bad value count");
    rd->map = calloc((size_t)rd->n_values + 1, sizeof *rd->map);
    if (!rd->map) return tc_errorf(rd->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    TC_TRY(read_inputs(rd));
    TC_TRY(read_constants(rd, blob, blob_size));
    uint32_t n_nodes = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n_nodes > tc_rbuf_room(&rd->r, 12)) return bad(rd, "bad node count");
    for (uint32_t i = 0; i < n_nodes; i++) TC_TRY(read_node(rd, (int)i));
    uint32_t n_out = tc_rbuf_u32(&rd->r);
    if (rd->r.bad || n_out > tc_rbuf_room(&rd->r, 8)) return bad(rd, "bad output count");
    for (uint32_t i = 0; i < n_out; i++) {
        uint32_t id = tc_rbuf_u32(&rd->r);
        const char *name = rd_str(rd);
        if (rd->r.bad || !name) return bad(rd, "an output is cut off");
        tc_value *v = lookup(rd, id);
        if (!v) return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: output '%s' names an undefined value %u", name, id);
        if (tc_graph_mark_output(rd->g, v, name) != TC_OK)
            return tc_errorf(rd->err, TC_ERR_FORMAT, "engine graph: %s", rd->g->err.msg);
    }
    if (rd->r.pos != rd->r.size) return bad(rd, "bytes left over after the outputs");
    return TC_OK;
}

tc_status tc_graph_read(const void *data, size_t size, const void *blob, size_t blob_size,
                        const tc_sym_override *overrides, int n_overrides, tc_graph **out, tc_error *err) {
    *out = NULL;
    tc_graph *g;
    if (tc_graph_create(&g) != TC_OK) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    reader rd = {.r = {.p = data, .size = size}, .g = g, .err = err};
    tc_status st = read_graph(&rd, blob, blob_size, overrides, n_overrides);
    if (st == TC_OK) {
        st = tc_graph_verify(g);
        if (st != TC_OK) st = tc_errorf(err, st, "engine graph: %s", g->err.msg);
    }
    if (!rd.blob_owned) free(rd.blob);
    free(rd.map);
    free(rd.atom_bound);
    if (st != TC_OK) {
        tc_graph_free(g);
        return st;
    }
    *out = g;
    return TC_OK;
}

tc_status tc_graph_copy(const tc_graph *g, const tc_sym_override *overrides, int n_overrides, tc_graph **out,
                        tc_error *err) {
    *out = NULL;
    tc_wbuf w = {0}, blob = {0};
    tc_status st = tc_graph_write(g, &w, &blob, err);
    if (st == TC_OK) st = tc_graph_read(w.data, w.size, blob.data, blob.size, overrides, n_overrides, out, err);
    tc_wbuf_free(&w);
    tc_wbuf_free(&blob);
    return st;
}
