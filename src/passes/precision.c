/* Mixed precision: f32 compute runs in f16 or bf16. Graph inputs are cast at their first
 * low-precision reader, f32 constants are converted once (saturating, as TensorRT clamps weights),
 * and the numerically sensitive ops (from PyTorch autocast's f32 list: log_softmax, sums, variance,
 * cumsum, prod, exp/log/pow/reciprocal/rsqrt) keep f32 with casts around them. Softmax, the norms
 * and mean read and write the low type: every backend computes them in f32 inside and rounds the
 * result once, which is what the f32 op followed by a cast gives, without the two casts. Graph
 * outputs are cast back, so callers see the same I/O types. Explicit dtypes in the model are kept. */
#include "passes/passes.h"
#include "core/dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct prec_state {
    tc_dtype low;
    tc_value **alt; /* per source value id: its value in the other dtype, once one was made */
} prec_state;

/* Not an exhaustive switch over the op table on purpose: every op not named here runs in the low
 * type, which is the right default for the ops families keep adding. */
bool tc_precision_keeps_f32(int op) {
    switch (op) {
    case TC_OP_LOG_SOFTMAX:
    case TC_OP_SUM_DIM:
    case TC_OP_SUM_ALL:
    case TC_OP_VAR_CORRECTION:
    case TC_OP_CUMSUM:
    case TC_OP_PROD_DIM:
    case TC_OP_EXP:
    case TC_OP_LOG:
    case TC_OP_POW_TENSOR_SCALAR:
    case TC_OP_POW_TENSOR_TENSOR:
    case TC_OP_POW_SCALAR:
    case TC_OP_RECIPROCAL:
    case TC_OP_RSQRT:
        return true;
    default:
        return false;
    }
}

/* f32 data to the low type; finite values beyond its range become its largest finite value rather
 * than infinity (a -3.4e38 mask constant stays a large negative number, so 0 * mask is not NaN). */
static void convert_saturating(const float *src, uint16_t *dst, tc_dtype low, int64_t n) {
    tc_from_f32(src, dst, low, n);
    uint16_t maxfin = low == TC_F16 ? 0x7bff : 0x7f7f;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(src[i]) && (dst[i] & 0x7fff) == (maxfin + 1)) dst[i] = (uint16_t)((dst[i] & 0x8000) | maxfin);
}

static tc_status low_constant(tc_rewriter *rw, prec_state *s, const tc_value *v, tc_value **out) {
    int64_t n = tc_value_numel_static(v);
    TC_ASSERT(n >= 0);
    float *f = malloc(sizeof *f * (size_t)(n ? n : 1));
    uint16_t *d = malloc(sizeof *d * (size_t)(n ? n : 1));
    if (!f || !d) {
        free(f), free(d);
        return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory converting constant '%s'", v->name);
    }
    memcpy(f, v->data, sizeof *f * (size_t)n);
    convert_saturating(f, d, s->low, n);
    free(f);
    char name[300];
    snprintf(name, sizeof name, "%s.%s", v->name, tc_dtype_name(s->low));
    return tc_rw_add_owned_constant(rw, name, s->low, v->rank, v->dims, d, out);
}

/* Source value v in the new graph with dtype want: the mapped value, a converted constant or a
 * cast, made once and reused. */
static tc_status get_as(tc_rewriter *rw, prec_state *s, const tc_value *v, tc_dtype want, tc_value **out) {
    *out = NULL;
    if (!v) return TC_OK;
    tc_value *alt = s->alt[v->id];
    if (alt && alt->dtype == want) {
        *out = alt;
        return TC_OK;
    }
    /* a weight only low-precision ops read is converted without its f32 copy entering the graph */
    if (v->kind == TC_VALUE_CONSTANT && v->dtype == TC_F32 && want == s->low && v->data) {
        TC_TRY(low_constant(rw, s, v, out));
        if (!alt) s->alt[v->id] = *out;
        return TC_OK;
    }
    tc_value *nv = tc_rw_get(rw, v);
    if (!nv) return rw->err->status ? rw->err->status : TC_ERR_INTERNAL;
    if (nv->dtype == want) {
        *out = nv;
        return TC_OK;
    }
    char name[300];
    snprintf(name, sizeof name, "%s.to_%s", v->name, tc_dtype_name(want));
    TC_TRY(tc_rw_cast(rw, nv, want, name, out));
    if (!alt) s->alt[v->id] = *out;
    return TC_OK;
}

static tc_status prec_node(tc_rewriter *rw, const tc_node *n, void *user) {
    prec_state *s = user;
    /* low only where the model computes an f32 result; integer and bool results (comparisons,
     * casts to int, argmax) and explicit other dtypes see exactly the inputs the model gave them */
    bool low = n->op >= 0 && !tc_precision_keeps_f32(n->op);
    if (low) {
        bool f32_out = false;
        for (int k = 0; k < n->n_outputs; k++) f32_out = f32_out || n->outputs[k]->dtype == TC_F32;
        low = f32_out;
    }
    tc_value **in = calloc((size_t)n->n_inputs + 1, sizeof *in);
    if (!in) return tc_errorf(rw->err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_status st = TC_OK;
    bool lowered = false;
    for (int k = 0; st == TC_OK && k < n->n_inputs; k++) {
        const tc_value *v = n->inputs[k];
        if (!v) continue;
        tc_dtype want = low && v->dtype == TC_F32 ? s->low : v->dtype;
        lowered = lowered || want != v->dtype;
        st = get_as(rw, s, v, want, &in[k]);
    }
    if (st == TC_OK) st = tc_rw_emit_node(rw, n, in, NULL);
    free(in);
    if (st == TC_OK && lowered) rw->changed++;
    return st;
}

static tc_status prec_output(tc_rewriter *rw, int i, const tc_value *v, tc_value **out, void *user) {
    (void)i;
    return get_as(rw, user, v, v->dtype, out);
}

tc_status tc_pass_precision(tc_graph *g, const tc_pass_options *o, tc_graph **out, int *changed, tc_error *err) {
    if (!o || (o->precision != TC_F16 && o->precision != TC_BF16))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "precision pass: the low type must be f16 or bf16");
    prec_state s = {o->precision, calloc((size_t)g->values.n + 1, sizeof(tc_value *))};
    if (!s.alt) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_rewrite_hooks hooks = {.node = prec_node, .output = prec_output, .user = &s};
    tc_status st = tc_rewrite(g, &hooks, out, changed, err);
    free(s.alt);
    return st;
}
