/* Batch-norm folding: y = (conv(x, W) + b - mean) * gamma / sqrt(var + eps) + beta is one
 * convolution with W' = W * s and b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps) per
 * output channel. Applies to _native_batch_norm_legit_no_training (what torch.export keeps) on a
 * convolution whose output nothing else reads, with every parameter constant. */
#include "passes/passes.h"
#include "core/dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bn_state {
    bool *folded; /* per source node id: a batch norm already folded into its convolution */
} bn_state;

static bool is_const(const tc_value *v) { return v && v->kind == TC_VALUE_CONSTANT && v->data; }

static bool float_storage(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F64; }

/* Reads a [n] float constant (or fills `dflt` when absent) as f64. */
static bool load_vec(const tc_value *v, int64_t n, double dflt, double *out) {
    if (!v) {
        for (int64_t i = 0; i < n; i++) out[i] = dflt;
        return true;
    }
    if (!float_storage(v->dtype) || v->rank != 1 || v->dims[0] != n) return false;
    for (int64_t i = 0; i < n; i++) out[i] = tc_load_f64(v->data, v->dtype, i);
    return true;
}

/* The batch norm that conv n feeds and that can be folded into it, or NULL, with the conv weight
 * and bias and the batch norm's weight, bias, running_mean and running_var (p, NULL when absent)
 * as the new graph has them. Peeked: weights that folding replaces never enter the new graph. */
static const tc_node *match(const tc_rewriter *rw, const tc_node *n, const tc_value **w, const tc_value **b,
                            const tc_value *p[4]) {
    const tc_node *bn = tc_rw_single_user(rw, n->outputs[0]);
    if (!bn || bn->op != TC_OP_BATCH_NORM_NO_TRAINING || tc_node_tensor(bn, 0) != n->outputs[0]) return NULL;
    if (rw->uses[bn->outputs[1]->id] || rw->uses[bn->outputs[2]->id]) return NULL;
    *w = tc_rw_peek(rw, tc_node_tensor(n, 1));
    *b = tc_rw_peek(rw, tc_node_tensor(n, 2));
    if (!is_const(*w) || (tc_node_tensor(n, 2) && !is_const(*b))) return NULL;
    if ((*w)->dtype != TC_F32 && (*w)->dtype != TC_F16 && (*w)->dtype != TC_BF16) return NULL;
    if ((*w)->rank < 3 || tc_value_numel_static(*w) <= 0) return NULL;
    for (int i = 0; i < 4; i++) {
        const tc_value *old = tc_node_tensor(bn, 1 + i);
        /* a parameter computed after the conv is not available yet: not foldable here */
        p[i] = tc_rw_peek(rw, old);
        if (old ? !is_const(p[i]) : i >= 2) return NULL;
    }
    return bn;
}

static tc_status fold(tc_rewriter *rw, const tc_node *n, const tc_node *bn, const tc_value *w, const tc_value *b,
                      const tc_value *const p[4], bool *done) {
    *done = false;
    bool transposed = tc_node_bool(n, 6);
    int64_t groups = tc_node_int(n, 8);
    if (TC_DIM_IS_SYM(groups) || groups < 1) return TC_OK;
    int64_t cout = transposed ? w->dims[1] * groups : w->dims[0];
    int64_t wn = tc_value_numel_static(w);
    if (wn < 0 || cout <= 0) return TC_OK;
    double eps = tc_node_float(bn, 6);
    double *s = malloc(sizeof *s * (size_t)cout * 6);
    float *wf = malloc(sizeof *wf * (size_t)(wn ? wn : 1));
    void *wdata = malloc(tc_dtype_size(w->dtype) * (size_t)(wn ? wn : 1));
    void *bdata = malloc(tc_dtype_size(w->dtype) * (size_t)cout);
    tc_status st = TC_OK;
    if (!s || !wf || !wdata || !bdata) {
        st = tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory folding batch norm '%s'", bn->name);
        goto out;
    }
    double *gamma = s + cout, *beta = s + 2 * cout, *mean = s + 3 * cout, *var = s + 4 * cout, *bias = s + 5 * cout;
    if (!load_vec(p[0], cout, 1.0, gamma) || !load_vec(p[1], cout, 0.0, beta) || !load_vec(p[2], cout, 0.0, mean) ||
        !load_vec(p[3], cout, 1.0, var) || !load_vec(b, cout, 0.0, bias))
        goto out;
    for (int64_t o = 0; o < cout; o++) {
        s[o] = gamma[o] / sqrt(var[o] + eps);
        bias[o] = (bias[o] - mean[o]) * s[o] + beta[o];
    }
    /* The scale goes to the output channel each weight element feeds: weight [Cout, Cin/g, k...]
     * normally, [Cin, Cout/g, k...] transposed, where input channel ci belongs to group ci / (Cin/g). */
    tc_to_f32(w->data, w->dtype, wf, wn);
    int64_t d0 = w->dims[0], d1 = w->dims[1], inner = wn / (d0 * d1); /* wn > 0: d0, d1 > 0 */
    for (int64_t i = 0; i < d0; i++) {
        for (int64_t j = 0; j < d1; j++) {
            int64_t o = transposed ? (i / (d0 / groups)) * d1 + j : i;
            float *row = wf + (i * d1 + j) * inner;
            for (int64_t k = 0; k < inner; k++) row[k] = (float)(row[k] * s[o]);
        }
    }
    tc_from_f32(wf, wdata, w->dtype, wn);
    for (int64_t o = 0; o < cout; o++) tc_store_f64(bdata, w->dtype, o, bias[o]);
    char name[300];
    tc_value *nw, *nb;
    snprintf(name, sizeof name, "%s.weight_bn", n->name);
    st = tc_rw_add_owned_constant(rw, name, w->dtype, w->rank, w->dims, wdata, &nw);
    wdata = NULL;
    if (st != TC_OK) goto out;
    snprintf(name, sizeof name, "%s.bias_bn", n->name);
    st = tc_rw_add_owned_constant(rw, name, w->dtype, 1, &cout, bdata, &nb);
    bdata = NULL;
    if (st != TC_OK) goto out;
    tc_arg args[TC_OP_MAX_ARGS];
    int na;
    tc_value *y;
    st = tc_rw_args(rw, n, NULL, args, &na);
    if (st != TC_OK) goto out;
    args[1].u.tensor = nw;
    args[2].kind = TC_ARG_TENSOR;
    args[2].u.tensor = nb;
    st = tc_rw_add_node(rw, n->op_name, n->name, na, args, 1, &y, NULL);
    if (st != TC_OK) goto out;
    tc_rw_set(rw, n->outputs[0], y);
    tc_rw_set(rw, bn->outputs[0], y);
    *done = true;
out:
    free(s), free(wf), free(wdata), free(bdata);
    return st;
}

static tc_status bn_node(tc_rewriter *rw, const tc_node *n, void *user) {
    bn_state *st = user;
    if (st->folded[n->id]) return TC_OK;
    if (n->op != TC_OP_CONVOLUTION) return tc_rw_copy_node(rw, n);
    const tc_value *w, *b, *p[4];
    const tc_node *bn = match(rw, n, &w, &b, p);
    if (!bn) return tc_rw_copy_node(rw, n);
    bool done;
    TC_TRY(fold(rw, n, bn, w, b, p, &done));
    if (!done) return tc_rw_copy_node(rw, n);
    st->folded[bn->id] = true;
    rw->changed++;
    return TC_OK;
}

tc_status tc_pass_fold_batchnorm(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed,
                                 tc_error *err) {
    (void)o;
    bn_state s = {calloc((size_t)g->nodes.n + 1, sizeof(bool))};
    if (!s.folded) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_rewrite_hooks hooks = {.node = bn_node, .user = &s};
    tc_status st = tc_rewrite(g, &hooks, out, changed, err);
    free(s.folded);
    return st;
}
