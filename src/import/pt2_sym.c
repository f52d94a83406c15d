/* Symbolic sizes of .pt2 archives: a small recursive-descent parser for the SymPy srepr strings
 * in TensorMeta sizes ("FloorDiv(Add(Symbol('s0', positive=True, integer=True), Integer(-1)),
 * Integer(2))") and the name -> dim map the importer keeps for symbols and sym-int values. */
#include "import/pt2.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- name -> dim map (open addressing, string keys copied) ------------------------------------ */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

tc_status tc_pt2_symmap_put(tc_pt2_symmap *m, const char *key, tc_dim dim) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct tc_pt2_symslot *s = calloc(cap, sizeof *s);
        if (!s) return TC_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].key) continue;
            size_t j = hash_str(m->slots[i].key) & (cap - 1);
            while (s[j].key) j = (j + 1) & (cap - 1);
            s[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->cap = cap;
    }
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (strcmp(m->slots[j].key, key) == 0) {
            m->slots[j].dim = dim;
            return TC_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    size_t len = strlen(key);
    char *k = malloc(len + 1);
    if (!k) return TC_ERR_OUT_OF_MEMORY;
    memcpy(k, key, len + 1);
    m->slots[j].key = k;
    m->slots[j].dim = dim;
    m->n++;
    return TC_OK;
}

bool tc_pt2_symmap_get(const tc_pt2_symmap *m, const char *key, tc_dim *dim) {
    if (!m->cap) return false;
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (strcmp(m->slots[j].key, key) == 0) {
            *dim = m->slots[j].dim;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void tc_pt2_symmap_free(tc_pt2_symmap *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- srepr parser ------------------------------------------------------------------------------ */

#define MAX_DEPTH 64

typedef struct {
    const char *s, *p; /* whole string, cursor */
    tc_graph *g;
    tc_pt2_symmap *syms;
    const tc_json *ranges;
    bool has_hint;
    int64_t hint;
    tc_error *err;
} parser;

static void skip_ws(parser *ps) {
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n') ps->p++;
}

static tc_status fail(parser *ps, tc_status st, const char *what) {
    return tc_errorf(ps->err, st, "size expression \"%.200s\": %s at offset %d", ps->s, what, (int)(ps->p - ps->s));
}

static tc_status expect(parser *ps, char c) {
    skip_ws(ps);
    if (*ps->p != c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return fail(ps, TC_ERR_FORMAT, msg);
    }
    ps->p++;
    return TC_OK;
}

static size_t ident(parser *ps, char *buf, size_t size) {
    skip_ws(ps);
    size_t n = 0;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 < size) buf[n++] = *ps->p;
        ps->p++;
    }
    buf[n < size ? n : size - 1] = '\0';
    return n;
}

static tc_status parse_int(parser *ps, int64_t *out) {
    skip_ws(ps);
    const char *start = ps->p;
    if (*ps->p == '-' || *ps->p == '+') ps->p++;
    if (!isdigit((unsigned char)*ps->p)) return fail(ps, TC_ERR_FORMAT, "expected an integer");
    while (isdigit((unsigned char)*ps->p)) ps->p++;
    char buf[32];
    size_t len = (size_t)(ps->p - start);
    if (len >= sizeof buf) return fail(ps, TC_ERR_UNSUPPORTED, "integer too large");
    memcpy(buf, start, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    /* sizes beyond this cannot be dims; keeping them small keeps the arithmetic exact */
    if (errno || v > ((int64_t)1 << 62) || v < -((int64_t)1 << 62)) return fail(ps, TC_ERR_UNSUPPORTED, "integer too large");
    *out = v;
    return TC_OK;
}

/* Skips "key=Value" keyword arguments up to (not including) the closing ')'. */
static tc_status skip_kwargs(parser *ps) {
    for (;;) {
        skip_ws(ps);
        if (*ps->p == ')') return TC_OK;
        TC_TRY(expect(ps, ','));
        char key[64];
        if (!ident(ps, key, sizeof key)) return fail(ps, TC_ERR_FORMAT, "expected a keyword argument");
        TC_TRY(expect(ps, '='));
        char val[64];
        if (!ident(ps, val, sizeof val)) return fail(ps, TC_ERR_FORMAT, "expected a keyword value");
    }
}

static bool range_int(const tc_json *v, int64_t *out) { return v && !tc_json_is_null(v) && tc_json_int(v, out); }

static tc_status make_symbol(parser *ps, const char *name, bool top, tc_dim *out) {
    if (tc_pt2_symmap_get(ps->syms, name, out)) return TC_OK;
    const tc_json *r = tc_json_get(ps->ranges, name);
    int64_t min = 0, max = TC_PT2_SYM_MAX_CAP, v;
    if (range_int(tc_json_get(r, "min_val"), &v)) min = v < 0 ? 0 : v;
    if (range_int(tc_json_get(r, "max_val"), &v) && v < max) max = v;
    if (min > max)
        return tc_errorf(ps->err, TC_ERR_UNSUPPORTED,
                         "symbol '%s': range [%lld, %lld] is empty or its min exceeds tensorc's cap of %lld",
                         name, (long long)min, (long long)max, (long long)TC_PT2_SYM_MAX_CAP);
    int64_t opt = top && ps->has_hint ? ps->hint : min;
    if (opt < min) opt = min;
    if (opt > max) opt = max;
    TC_TRY(tc_graph_add_symbol(ps->g, name, min, opt, max, out) == TC_OK
               ? TC_OK
               : tc_errorf(ps->err, ps->g->err.status, "%s", ps->g->err.msg));
    if (tc_pt2_symmap_put(ps->syms, name, *out)) return tc_errorf(ps->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    return TC_OK;
}

static tc_status binop(parser *ps, tc_sym_op op, tc_dim a, tc_dim b, tc_dim *out) {
    if (tc_graph_sym_expr(ps->g, op, a, b, out) != TC_OK)
        return tc_errorf(ps->err, ps->g->err.status, "size expression \"%.200s\": %s", ps->s, ps->g->err.msg);
    return TC_OK;
}

/* mag bounds |value| and every coefficient over the symbols' ranges (as a double, so it cannot
 * overflow); expressions that could leave int64 are rejected before sym.c does any arithmetic. */
static tc_status parse_expr(parser *ps, int depth, bool top, tc_dim *out, double *mag) {
    if (depth > MAX_DEPTH) return fail(ps, TC_ERR_UNSUPPORTED, "nested too deeply");
    char fn[32];
    if (!ident(ps, fn, sizeof fn)) return fail(ps, TC_ERR_FORMAT, "expected a function name");
    TC_TRY(expect(ps, '('));
    if (strcmp(fn, "Integer") == 0) {
        int64_t v = 0;
        TC_TRY(parse_int(ps, &v));
        *out = v;
        *mag = v < 0 ? -(double)v : (double)v;
        return expect(ps, ')');
    }
    if (strcmp(fn, "Symbol") == 0) {
        skip_ws(ps);
        char q = *ps->p;
        if (q != '\'' && q != '"') return fail(ps, TC_ERR_FORMAT, "expected a quoted symbol name");
        ps->p++;
        char name[128];
        size_t n = 0;
        while (*ps->p && *ps->p != q) {
            if (n + 1 >= sizeof name) return fail(ps, TC_ERR_UNSUPPORTED, "symbol name too long");
            name[n++] = *ps->p++;
        }
        name[n] = '\0';
        if (*ps->p != q || n == 0) return fail(ps, TC_ERR_FORMAT, "bad symbol name");
        ps->p++;
        TC_TRY(skip_kwargs(ps));
        TC_TRY(expect(ps, ')'));
        *mag = (double)TC_PT2_SYM_MAX_CAP;
        return make_symbol(ps, name, top, out);
    }
    bool add = strcmp(fn, "Add") == 0, mul = strcmp(fn, "Mul") == 0;
    bool fdiv = strcmp(fn, "FloorDiv") == 0 || strcmp(fn, "CleanDiv") == 0;
    bool mod = strcmp(fn, "Mod") == 0 || strcmp(fn, "PythonMod") == 0;
    if (strcmp(fn, "Max") == 0 || strcmp(fn, "Min") == 0)
        return tc_errorf(ps->err, TC_ERR_UNSUPPORTED,
                         "size expression \"%.200s\" uses %s, which tensorc cannot represent; export with "
                         "dynamic dims that do not need %s (e.g. give the dims a common range)",
                         ps->s, fn, fn);
    if (!add && !mul && !fdiv && !mod) {
        char msg[160];
        snprintf(msg, sizeof msg, "unsupported function '%s' (tensorc reads Symbol, Integer, Add, Mul, FloorDiv, Mod)", fn);
        return fail(ps, TC_ERR_UNSUPPORTED, msg);
    }
    int count = 0;
    tc_dim acc = 0;
    double m = 0;
    for (;;) {
        skip_ws(ps);
        if (*ps->p == ')') break;
        if (count) TC_TRY(expect(ps, ','));
        tc_dim x;
        double mx;
        TC_TRY(parse_expr(ps, depth + 1, false, &x, &mx));
        if (mx < 1) mx = 1;
        m = count == 0 ? mx : add ? m + mx : mul ? m * mx : m;
        if (m > 4.0e18) return fail(ps, TC_ERR_UNSUPPORTED, "values too large for 64-bit sizes");
        if (count == 0) acc = x;
        else TC_TRY(binop(ps, add ? TC_SYM_ADD : mul ? TC_SYM_MUL : fdiv ? TC_SYM_FLOORDIV : TC_SYM_MOD, acc, x, &acc));
        count++;
        if ((fdiv || mod) && count > 2) break;
    }
    if (count < 1 || ((fdiv || mod) && count != 2)) return fail(ps, TC_ERR_FORMAT, "wrong number of operands");
    *out = acc;
    *mag = m;
    return expect(ps, ')');
}

tc_status tc_pt2_parse_sym(tc_graph *g, tc_pt2_symmap *syms, const tc_json *range_constraints,
                           const char *expr, bool has_hint, int64_t hint, tc_dim *out, tc_error *err) {
    parser ps = {.s = expr, .p = expr, .g = g, .syms = syms, .ranges = range_constraints,
                 .has_hint = has_hint, .hint = hint, .err = err};
    double mag;
    TC_TRY(parse_expr(&ps, 0, true, out, &mag));
    skip_ws(&ps);
    if (*ps.p) return fail(&ps, TC_ERR_FORMAT, "unexpected text after the expression");
    return TC_OK;
}
