/* Symbolic size expressions: canonical polynomials with hash-consing. */
#include "core/sym.h"

#include <stdlib.h>
#include <string.h>

void tc_symtab_free(tc_symtab *t) {
    tc_ptrvec_free(&t->atoms);
    tc_ptrvec_free(&t->exprs);
}

static int term_cmp_atoms(const tc_sym_term *x, const tc_sym_term *y) {
    if (x->n != y->n) return x->n - y->n;
    for (int i = 0; i < x->n; i++)
        if (x->atoms[i] != y->atoms[i]) return x->atoms[i] - y->atoms[i];
    return 0;
}

static int term_qsort_cmp(const void *a, const void *b) { return term_cmp_atoms(a, b); }

/* Sorts terms, merges equal monomials, drops zeros. */
static void poly_normalize(tc_sym_poly *p) {
    if (p->n > 1) qsort(p->terms, (size_t)p->n, sizeof *p->terms, term_qsort_cmp);
    int w = 0;
    for (int r = 0; r < p->n; r++) {
        if (w > 0 && term_cmp_atoms(&p->terms[w - 1], &p->terms[r]) == 0) {
            /* wraps rather than traps on absurd sizes; inputs are capped at 2^40 per dim */
            p->terms[w - 1].coef = (int64_t)((uint64_t)p->terms[w - 1].coef + (uint64_t)p->terms[r].coef);
        } else {
            p->terms[w++] = p->terms[r];
        }
        if (p->terms[w - 1].coef == 0) w--;
    }
    p->n = w;
}

static bool poly_equal(const tc_sym_poly *a, const tc_sym_poly *b) {
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->terms[i].coef != b->terms[i].coef || term_cmp_atoms(&a->terms[i], &b->terms[i]) != 0)
            return false;
    return true;
}

/* Working polynomials live in malloc'ed scratch; interned ones in the arena. */
typedef struct {
    int n, cap;
    tc_sym_term *terms;
} scratch_poly;

static int sp_push(scratch_poly *s, tc_sym_term t) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        tc_sym_term *nt = realloc(s->terms, (size_t)cap * sizeof *nt);
        if (!nt) return -1;
        s->terms = nt;
        s->cap = cap;
    }
    s->terms[s->n++] = t;
    return 0;
}

static int dim_to_scratch(const tc_symtab *t, tc_dim d, scratch_poly *s) {
    s->n = 0;
    if (!TC_DIM_IS_SYM(d)) {
        if (d == 0) return 0;
        tc_sym_term c = {.coef = d, .n = 0};
        return sp_push(s, c);
    }
    int64_t id = TC_DIM_SYM_BASE - d;
    TC_ASSERT(id >= 0 && id < t->exprs.n);
    const tc_sym_poly *p = t->exprs.items[id];
    for (int i = 0; i < p->n; i++)
        if (sp_push(s, p->terms[i])) return -1;
    return 0;
}

static tc_status intern(tc_symtab *t, scratch_poly *s, tc_dim *out, tc_error *err) {
    tc_sym_poly tmp = {s->n, s->terms};
    poly_normalize(&tmp);
    s->n = tmp.n;
    if (s->n == 0) {
        *out = 0;
        return TC_OK;
    }
    if (s->n == 1 && s->terms[0].n == 0) {
        *out = s->terms[0].coef;
        return TC_OK;
    }
    for (int i = 0; i < t->exprs.n; i++) {
        if (poly_equal(t->exprs.items[i], &tmp)) {
            *out = TC_DIM_SYM_BASE - i;
            return TC_OK;
        }
    }
    tc_sym_poly *p = tc_arena_alloc(t->arena, sizeof *p);
    if (!p) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory in symbolic shapes");
    p->n = s->n;
    p->terms = tc_arena_memdup(t->arena, s->terms, sizeof *s->terms * (size_t)s->n);
    if (!p->terms || tc_ptrvec_push(&t->exprs, p))
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory in symbolic shapes");
    *out = TC_DIM_SYM_BASE - (t->exprs.n - 1);
    return TC_OK;
}

static tc_status new_atom(tc_symtab *t, tc_sym_atom a, int *id, tc_error *err) {
    if (a.kind != TC_ATOM_SYMBOL) {
        for (int i = 0; i < t->atoms.n; i++) {
            const tc_sym_atom *x = t->atoms.items[i];
            if (x->kind == a.kind && x->a == a.a && x->b == a.b) {
                *id = i;
                return TC_OK;
            }
        }
    }
    tc_sym_atom *p = tc_arena_memdup(t->arena, &a, sizeof a);
    if (!p || tc_ptrvec_push(&t->atoms, p))
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory in symbolic shapes");
    *id = t->atoms.n - 1;
    return TC_OK;
}

static tc_status atom_dim(tc_symtab *t, int id, tc_dim *out, tc_error *err) {
    scratch_poly s = {0};
    tc_sym_term term = {.coef = 1, .n = 1, .atoms = {id}};
    if (sp_push(&s, term)) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_status st = intern(t, &s, out, err);
    free(s.terms);
    return st;
}

tc_status tc_sym_new_symbol(tc_symtab *t, const char *name, int64_t min, int64_t opt, int64_t max,
                            tc_dim *out, tc_error *err) {
    if (!name || !*name) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "a symbol needs a name");
    if (min < 0 || min > opt || opt > max)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "symbol '%s': need 0 <= min <= opt <= max, got (%lld, %lld, %lld)", name,
                         (long long)min, (long long)opt, (long long)max);
    if (tc_sym_find(t, name) >= 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "symbol '%s' already exists", name);
    tc_sym_atom a = {.kind = TC_ATOM_SYMBOL, .name = tc_arena_strdup(t->arena, name),
                     .min = min, .opt = opt, .max = max};
    int id;
    TC_TRY(new_atom(t, a, &id, err));
    return atom_dim(t, id, out, err);
}

int tc_sym_find(const tc_symtab *t, const char *name) {
    for (int i = 0; i < t->atoms.n; i++) {
        const tc_sym_atom *a = t->atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL && strcmp(a->name, name) == 0) return i;
    }
    return -1;
}

int tc_sym_as_symbol(const tc_symtab *t, tc_dim d) {
    if (!TC_DIM_IS_SYM(d)) return -1;
    const tc_sym_poly *p = t->exprs.items[TC_DIM_SYM_BASE - d];
    if (p->n == 1 && p->terms[0].coef == 1 && p->terms[0].n == 1) {
        const tc_sym_atom *a = t->atoms.items[p->terms[0].atoms[0]];
        if (a->kind == TC_ATOM_SYMBOL) return p->terms[0].atoms[0];
    }
    return -1;
}

/* Divides term x by monomial y exactly; false if it does not divide. */
static bool term_div(const tc_sym_term *x, const tc_sym_term *y, tc_sym_term *q) {
    if (y->coef == 0 || x->coef % y->coef != 0) return false;
    q->coef = x->coef / y->coef;
    q->n = 0;
    int j = 0;
    for (int i = 0; i < x->n; i++) {
        if (j < y->n && x->atoms[i] == y->atoms[j]) {
            j++;
        } else {
            q->atoms[q->n++] = x->atoms[i];
        }
    }
    return j == y->n;
}

tc_status tc_sym_binop(tc_symtab *t, tc_sym_op op, tc_dim a, tc_dim b, tc_dim *out, tc_error *err) {
    if (!TC_DIM_IS_SYM(a) && !TC_DIM_IS_SYM(b)) {
        int64_t r = 0;
        bool ovf = false;
        switch (op) {
        case TC_SYM_ADD: ovf = __builtin_add_overflow(a, b, &r); break;
        case TC_SYM_SUB: ovf = __builtin_sub_overflow(a, b, &r); break;
        case TC_SYM_MUL: ovf = __builtin_mul_overflow(a, b, &r); break;
        default: break;
        }
        if (ovf || (op <= TC_SYM_MUL && TC_DIM_IS_SYM(r)))
            return tc_errorf(err, TC_ERR_SHAPE, "size expression overflows (%lld and %lld)", (long long)a, (long long)b);
        switch (op) {
        case TC_SYM_ADD:
        case TC_SYM_SUB:
        case TC_SYM_MUL: *out = r; return TC_OK;
        case TC_SYM_FLOORDIV:
        case TC_SYM_MOD:
            if (b == 0) return tc_errorf(err, TC_ERR_SHAPE, "division by zero in a size expression");
            *out = op == TC_SYM_FLOORDIV ? tc_floordiv64(a, b) : tc_mod64(a, b);
            return TC_OK;
        }
    }
    scratch_poly pa = {0}, pb = {0}, r = {0};
    tc_status st = TC_OK;
    if (dim_to_scratch(t, a, &pa) || dim_to_scratch(t, b, &pb)) {
        st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    switch (op) {
    case TC_SYM_ADD:
    case TC_SYM_SUB:
        for (int i = 0; i < pa.n; i++) sp_push(&r, pa.terms[i]);
        for (int i = 0; i < pb.n; i++) {
            tc_sym_term x = pb.terms[i];
            if (op == TC_SYM_SUB) x.coef = (int64_t)(0 - (uint64_t)x.coef);
            sp_push(&r, x);
        }
        st = intern(t, &r, out, err);
        break;
    case TC_SYM_MUL:
        for (int i = 0; i < pa.n; i++) {
            for (int j = 0; j < pb.n; j++) {
                const tc_sym_term *x = &pa.terms[i], *y = &pb.terms[j];
                if (x->n + y->n > TC_SYM_MAX_ATOMS) {
                    st = tc_errorf(err, TC_ERR_UNSUPPORTED, "size expression too complex (degree > %d)",
                                   TC_SYM_MAX_ATOMS);
                    goto done;
                }
                tc_sym_term z = {.n = 0};
                if (__builtin_mul_overflow(x->coef, y->coef, &z.coef)) {
                    st = tc_errorf(err, TC_ERR_SHAPE, "size expression overflows");
                    goto done;
                }
                int p = 0, q = 0;
                while (p < x->n || q < y->n) {
                    if (q >= y->n || (p < x->n && x->atoms[p] <= y->atoms[q])) z.atoms[z.n++] = x->atoms[p++];
                    else z.atoms[z.n++] = y->atoms[q++];
                }
                sp_push(&r, z);
            }
        }
        st = intern(t, &r, out, err);
        break;
    case TC_SYM_FLOORDIV:
    case TC_SYM_MOD: {
        if (b == 0) {
            st = tc_errorf(err, TC_ERR_SHAPE, "division by zero in a size expression");
            goto done;
        }
        bool exact = pb.n == 1;
        for (int i = 0; exact && i < pa.n; i++) {
            tc_sym_term q;
            if (!term_div(&pa.terms[i], &pb.terms[0], &q)) exact = false;
            else sp_push(&r, q);
        }
        /* exact only when the divisor is positive over the whole range: sizes always are */
        if (exact) {
            if (op == TC_SYM_FLOORDIV) st = intern(t, &r, out, err);
            else *out = 0;
            break;
        }
        if (op == TC_SYM_FLOORDIV && !TC_DIM_IS_SYM(b) && b == 1) {
            *out = a;
            break;
        }
        tc_sym_atom at = {.kind = op == TC_SYM_FLOORDIV ? TC_ATOM_FLOORDIV : TC_ATOM_MOD, .a = a, .b = b};
        int id;
        st = new_atom(t, at, &id, err);
        if (st == TC_OK) st = atom_dim(t, id, out, err);
        break;
    }
    }
done:
    free(pa.terms);
    free(pb.terms);
    free(r.terms);
    return st;
}

static int64_t eval_atom(const tc_symtab *t, int id, const int64_t *values);

int64_t tc_sym_eval(const tc_symtab *t, tc_dim d, const int64_t *values) {
    if (!TC_DIM_IS_SYM(d)) return d;
    const tc_sym_poly *p = t->exprs.items[TC_DIM_SYM_BASE - d];
    int64_t sum = 0;
    for (int i = 0; i < p->n; i++) {
        /* unsigned arithmetic: absurd sizes wrap (and fail later checks) instead of being undefined */
        uint64_t v = (uint64_t)p->terms[i].coef;
        for (int j = 0; j < p->terms[i].n; j++) v *= (uint64_t)eval_atom(t, p->terms[i].atoms[j], values);
        sum = (int64_t)((uint64_t)sum + v);
    }
    return sum;
}

static int64_t eval_atom(const tc_symtab *t, int id, const int64_t *values) {
    const tc_sym_atom *a = t->atoms.items[id];
    switch (a->kind) {
    case TC_ATOM_SYMBOL: return values[id];
    case TC_ATOM_FLOORDIV:
    case TC_ATOM_MOD: {
        int64_t x = tc_sym_eval(t, a->a, values), y = tc_sym_eval(t, a->b, values);
        if (y == 0) return 0;
        return a->kind == TC_ATOM_FLOORDIV ? tc_floordiv64(x, y) : tc_mod64(x, y);
    }
    }
    return 0;
}

typedef struct {
    int64_t lo, hi;
} interval;

static interval interval_of(const tc_symtab *t, tc_dim d);

static interval atom_interval(const tc_symtab *t, int id) {
    const tc_sym_atom *a = t->atoms.items[id];
    if (a->kind == TC_ATOM_SYMBOL) return (interval){a->min, a->max};
    interval x = interval_of(t, a->a), y = interval_of(t, a->b);
    if (y.lo <= 0) return (interval){x.lo < 0 ? x.lo : 0, x.hi > 0 ? x.hi : 0}; /* divisor range unknown */
    if (a->kind == TC_ATOM_MOD) return (interval){0, y.hi - 1};
    int64_t q[4] = {tc_floordiv64(x.lo, y.lo), tc_floordiv64(x.lo, y.hi), tc_floordiv64(x.hi, y.lo),
                    tc_floordiv64(x.hi, y.hi)};
    interval r = {q[0], q[0]};
    for (int i = 1; i < 4; i++) {
        if (q[i] < r.lo) r.lo = q[i];
        if (q[i] > r.hi) r.hi = q[i];
    }
    return r;
}

static int64_t wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

static interval interval_mul(interval a, interval b) {
    int64_t p[4] = {wrap_mul(a.lo, b.lo), wrap_mul(a.lo, b.hi), wrap_mul(a.hi, b.lo), wrap_mul(a.hi, b.hi)};
    interval r = {p[0], p[0]};
    for (int i = 1; i < 4; i++) {
        if (p[i] < r.lo) r.lo = p[i];
        if (p[i] > r.hi) r.hi = p[i];
    }
    return r;
}

/* Bounds by interval arithmetic per term: sound for any signs, exact for sums of distinct
 * symbols with positive coefficients. */
static interval interval_of(const tc_symtab *t, tc_dim d) {
    if (!TC_DIM_IS_SYM(d)) return (interval){d, d};
    const tc_sym_poly *p = t->exprs.items[TC_DIM_SYM_BASE - d];
    interval sum = {0, 0};
    for (int i = 0; i < p->n; i++) {
        interval term = {p->terms[i].coef, p->terms[i].coef};
        for (int j = 0; j < p->terms[i].n; j++) term = interval_mul(term, atom_interval(t, p->terms[i].atoms[j]));
        sum.lo = (int64_t)((uint64_t)sum.lo + (uint64_t)term.lo);
        sum.hi = (int64_t)((uint64_t)sum.hi + (uint64_t)term.hi);
    }
    return sum;
}

void tc_sym_range(const tc_symtab *t, tc_dim d, int64_t *min, int64_t *opt, int64_t *max) {
    if (!TC_DIM_IS_SYM(d)) {
        *min = *opt = *max = d;
        return;
    }
    interval r = interval_of(t, d);
    int n = t->atoms.n;
    int64_t stackv[64] = {0};
    int64_t *v = n <= 64 ? stackv : malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) v[i] = ((const tc_sym_atom *)t->atoms.items[i])->opt;
    *opt = tc_sym_eval(t, d, v);
    *min = r.lo;
    *max = r.hi;
    if (v != stackv) free(v);
}

static void append(char *buf, size_t size, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > size) n = size > *len + 1 ? size - *len - 1 : 0;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

static void print_dim(const tc_symtab *t, tc_dim d, char *buf, size_t size, size_t *len, bool paren);

static void print_atom(const tc_symtab *t, int id, char *buf, size_t size, size_t *len) {
    const tc_sym_atom *a = t->atoms.items[id];
    if (a->kind == TC_ATOM_SYMBOL) {
        append(buf, size, len, a->name);
        return;
    }
    append(buf, size, len, "(");
    print_dim(t, a->a, buf, size, len, true);
    append(buf, size, len, a->kind == TC_ATOM_FLOORDIV ? " // " : " % ");
    print_dim(t, a->b, buf, size, len, true);
    append(buf, size, len, ")");
}

static void print_dim(const tc_symtab *t, tc_dim d, char *buf, size_t size, size_t *len, bool paren) {
    char num[32];
    if (!TC_DIM_IS_SYM(d)) {
        snprintf(num, sizeof num, "%lld", (long long)d);
        append(buf, size, len, num);
        return;
    }
    const tc_sym_poly *p = t->exprs.items[TC_DIM_SYM_BASE - d];
    bool par = paren && p->n > 1;
    if (par) append(buf, size, len, "(");
    /* terms are sorted with the constant first; print it last ("s0 - 1") */
    int first = p->n > 1 && p->terms[0].n == 0 ? 1 : 0;
    for (int k = 0; k < p->n; k++) {
        int i = (first + k) % p->n;
        const tc_sym_term *x = &p->terms[i];
        int64_t c = x->coef;
        if (k > 0) {
            append(buf, size, len, c < 0 ? " - " : " + ");
            if (c < 0) c = -c;
        } else if (c == -1 && x->n > 0) {
            append(buf, size, len, "-");
            c = 1;
        }
        if (x->n == 0 || c != 1) {
            snprintf(num, sizeof num, "%lld", (long long)c);
            append(buf, size, len, num);
            if (x->n) append(buf, size, len, "*");
        }
        for (int j = 0; j < x->n; j++) {
            if (j) append(buf, size, len, "*");
            print_atom(t, x->atoms[j], buf, size, len);
        }
    }
    if (par) append(buf, size, len, ")");
}

const char *tc_sym_print(const tc_symtab *t, tc_dim d, char *buf, size_t size) {
    size_t len = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    print_dim(t, d, buf, size, &len, false);
    return buf;
}
