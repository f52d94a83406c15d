/* Symbolic sizes: polynomials over symbols (and opaque floor-division / remainder atoms), kept in
 * a canonical, hash-consed form so that equal expressions get equal tc_dim handles. */
#ifndef TC_CORE_SYM_H
#define TC_CORE_SYM_H

#include "core/arena.h"
#include "core/error.h"

#define TC_SYM_MAX_ATOMS 4 /* atoms in one monomial */

typedef enum tc_atom_kind { TC_ATOM_SYMBOL, TC_ATOM_FLOORDIV, TC_ATOM_MOD } tc_atom_kind;

typedef struct tc_sym_atom {
    tc_atom_kind kind;
    const char *name;          /* symbols */
    int64_t min, opt, max;     /* symbols */
    tc_dim a, b;               /* floordiv / mod operands */
} tc_sym_atom;

typedef struct tc_sym_term {
    int64_t coef;
    int n;
    int atoms[TC_SYM_MAX_ATOMS]; /* sorted atom ids */
} tc_sym_term;

typedef struct tc_sym_poly {
    int n;
    tc_sym_term *terms; /* sorted, no zero coefficients, at most one constant term */
} tc_sym_poly;

typedef struct tc_symtab {
    tc_arena *arena;
    tc_ptrvec atoms; /* tc_sym_atom* */
    tc_ptrvec exprs; /* tc_sym_poly* ; expression id = index */
} tc_symtab;

void tc_symtab_free(tc_symtab *t);
tc_status tc_sym_new_symbol(tc_symtab *t, const char *name, int64_t min, int64_t opt, int64_t max,
                            tc_dim *out, tc_error *err);
tc_status tc_sym_binop(tc_symtab *t, tc_sym_op op, tc_dim a, tc_dim b, tc_dim *out, tc_error *err);
/* Atom id of a dim that is exactly one symbol, else -1. */
int tc_sym_as_symbol(const tc_symtab *t, tc_dim d);
/* Finds a symbol by name; -1 if none. */
int tc_sym_find(const tc_symtab *t, const char *name);
/* Evaluates d with symbol values given per atom id (entries for non-symbol atoms are ignored). */
int64_t tc_sym_eval(const tc_symtab *t, tc_dim d, const int64_t *values);
void tc_sym_range(const tc_symtab *t, tc_dim d, int64_t *min, int64_t *opt, int64_t *max);
const char *tc_sym_print(const tc_symtab *t, tc_dim d, char *buf, size_t size);
static inline int tc_sym_num_atoms(const tc_symtab *t) { return t->atoms.n; }

static inline int64_t tc_floordiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}
static inline int64_t tc_mod64(int64_t a, int64_t b) { return a - tc_floordiv64(a, b) * b; }

#endif
