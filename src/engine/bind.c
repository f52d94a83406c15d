/* Input binding shared by the executors (bind.h). */
#include "engine/bind.h"
#include "core/dtype.h"
#include "core/sym.h"

#include <string.h>

tc_status tc_bind_inputs(const tc_graph *g, const tc_tensor *inputs, int64_t *symvals, bool *bound, tc_error *err) {
    char buf[128];
    memset(bound, 0, (size_t)g->syms.atoms.n * sizeof *bound);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < g->inputs.n; i++) {
            const tc_value *v = g->inputs.items[i];
            const tc_tensor *t = &inputs[i];
            if (pass == 0) {
                if (t->dtype != v->dtype)
                    return tc_errorf(err, TC_ERR_DTYPE, "input '%s' must be %s, got %s", v->name,
                                     tc_dtype_name(v->dtype), tc_dtype_name(t->dtype));
                if (t->rank != v->rank)
                    return tc_errorf(err, TC_ERR_SHAPE, "input '%s' must have rank %d, got %d", v->name, v->rank,
                                     t->rank);
            }
            for (int d = 0; d < v->rank; d++) {
                tc_dim want = v->dims[d];
                int64_t got = t->dims[d];
                if (got < 0) return tc_errorf(err, TC_ERR_SHAPE, "input '%s' dim %d is negative", v->name, d);
                int sym = tc_sym_as_symbol(&g->syms, want);
                if (pass == 0 && sym >= 0) {
                    const tc_sym_atom *a = g->syms.atoms.items[sym];
                    if (bound[sym] && symvals[sym] != got)
                        return tc_errorf(err, TC_ERR_SHAPE, "input '%s' dim %d is %lld but %s is already %lld", v->name,
                                         d, (long long)got, a->name, (long long)symvals[sym]);
                    if (got < a->min || got > a->max)
                        return tc_errorf(err, TC_ERR_SHAPE,
                                         "input '%s' dim %d (%s) is %lld, outside the range [%lld, %lld]", v->name, d,
                                         a->name, (long long)got, (long long)a->min, (long long)a->max);
                    symvals[sym] = got;
                    bound[sym] = true;
                } else if (pass == 1 && sym < 0) {
                    int64_t e = tc_sym_eval(&g->syms, want, symvals);
                    if (e != got)
                        return tc_errorf(err, TC_ERR_SHAPE, "input '%s' dim %d must be %s = %lld, got %lld", v->name,
                                         d, tc_sym_print(&g->syms, want, buf, sizeof buf), (long long)e,
                                         (long long)got);
                }
            }
            if (pass == 0 && !t->data) {
                int64_t n = 1;
                for (int d = 0; d < t->rank; d++) n *= t->dims[d];
                if (n) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "input '%s' has no data", v->name);
            }
        }
    }
    for (int i = 0; i < g->syms.atoms.n; i++) {
        const tc_sym_atom *a = g->syms.atoms.items[i];
        if (a->kind == TC_ATOM_SYMBOL && !bound[i]) symvals[i] = a->opt; /* not reachable from inputs */
    }
    return TC_OK;
}

tc_status tc_value_dims_now(const tc_graph *g, const tc_value *v, const tc_tensor *inputs, const int64_t *symvals,
                            int64_t *dims, int64_t *numel, tc_error *err) {
    *numel = 1;
    for (int d = 0; d < v->rank; d++) {
        dims[d] = v->kind == TC_VALUE_INPUT ? inputs[v->input_index].dims[d] : tc_sym_eval(&g->syms, v->dims[d], symvals);
        if (dims[d] < 0) {
            char b[128];
            return tc_errorf(err, TC_ERR_SHAPE, "value '%s' dim %d evaluates to %lld (%s) for these input sizes",
                             v->name, d, (long long)dims[d], tc_sym_print(&g->syms, v->dims[d], b, sizeof b));
        }
        *numel *= dims[d];
    }
    return TC_OK;
}
