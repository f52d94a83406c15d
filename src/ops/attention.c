/* Shape and dtype inference for scaled_dot_product_attention: query [..., L, E], key [..., S, E],
 * value [..., S, Ev] give [..., L, Ev]; batch dims broadcast, and with enable_gqa the key/value
 * heads (dim -3) are shared by groups of query heads. Inference only: dropout must be 0. */
#include "ops/op.h"
#include "ops/attention_params.h"
#include "core/dtype.h"

#include <stdio.h>
#include <string.h>
#include <math.h>

static int dims_agree(tc_dim a, tc_dim b) {
    if (a == b) return 1;
    return TC_DIM_IS_SYM(a) || TC_DIM_IS_SYM(b) ? -1 : 0;
}

static const char *shape_str(tc_infer_ctx *c, const tc_value *v, char *buf, size_t size) {
    return tc_value_type_string(c->g, v, buf, size);
}

tc_status tc_infer_attention_sdpa(tc_infer_ctx *c) {
    const tc_node *n = c->node;
    const tc_value *q = tc_node_tensor(n, 0), *k = tc_node_tensor(n, 1), *v = tc_node_tensor(n, 2);
    const tc_value *mask = tc_node_tensor(n, 3);
    char bq[160], bk[160], bv[160];
    double dropout = tc_node_float(n, 4);
    if (dropout != 0.0)
        return tc_infer_fail(c, TC_ERR_UNSUPPORTED,
                             "dropout_p must be 0 for inference, got %g (export the model in eval mode)", dropout);
    if (!tc_dtype_is_float(q->dtype) || q->dtype == TC_F8E4M3)
        return tc_infer_fail(c, TC_ERR_DTYPE, "query must be f32, f16 or bf16, got %s", tc_dtype_name(q->dtype));
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return tc_infer_fail(c, TC_ERR_DTYPE, "query, key and value must have one dtype, got %s, %s and %s",
                             tc_dtype_name(q->dtype), tc_dtype_name(k->dtype), tc_dtype_name(v->dtype));
    if (q->rank < 2 || k->rank < 2 || v->rank < 2)
        return tc_infer_fail(c, TC_ERR_SHAPE, "query, key and value need rank >= 2 ([..., L, E]), got %s, %s and %s",
                             shape_str(c, q, bq, sizeof bq), shape_str(c, k, bk, sizeof bk),
                             shape_str(c, v, bv, sizeof bv));
    tc_dim L = q->dims[q->rank - 2], E = q->dims[q->rank - 1];
    tc_dim S = k->dims[k->rank - 2], Ev = v->dims[v->rank - 1];
    if (dims_agree(E, k->dims[k->rank - 1]) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "query and key must share the last dim (embedding): query %s, key %s",
                             shape_str(c, q, bq, sizeof bq), shape_str(c, k, bk, sizeof bk));
    if (dims_agree(S, v->dims[v->rank - 2]) == 0)
        return tc_infer_fail(c, TC_ERR_SHAPE, "key and value must have the same sequence length (dim -2): key %s, "
                             "value %s",
                             shape_str(c, k, bk, sizeof bk), shape_str(c, v, bv, sizeof bv));

    /* batch dims; with GQA key/value take the query's head count after the check */
    tc_dim kb[TC_MAX_RANK], vb[TC_MAX_RANK];
    int rq = q->rank - 2, rk = k->rank - 2, rv = v->rank - 2;
    for (int i = 0; i < rk; i++) kb[i] = k->dims[i];
    for (int i = 0; i < rv; i++) vb[i] = v->dims[i];
    if (tc_node_bool(n, 7) && rq >= 1 && rk >= 1 && rv >= 1) {
        tc_dim hq = q->dims[rq - 1];
        tc_dim *slots[2] = {&kb[rk - 1], &vb[rv - 1]};
        for (int t = 0; t < 2; t++) {
            tc_dim h = *slots[t];
            if (!TC_DIM_IS_SYM(hq) && !TC_DIM_IS_SYM(h) && (h == 0 || hq % h != 0))
                return tc_infer_fail(c, TC_ERR_SHAPE,
                                     "enable_gqa: the %lld query heads (dim -3) are not a multiple of the %lld %s heads",
                                     (long long)hq, (long long)h, t ? "value" : "key");
            *slots[t] = hq;
        }
    }
    tc_dim ob[TC_MAX_RANK], tmp[TC_MAX_RANK];
    int rb, rt;
    if (!tc_infer_broadcast(c, rq, q->dims, rk, kb, &rt, tmp) || !tc_infer_broadcast(c, rt, tmp, rv, vb, &rb, ob))
        return c->status;
    if (rb + 2 > TC_MAX_RANK) return tc_infer_fail(c, TC_ERR_SHAPE, "batch dims too many");

    if (mask) {
        if (mask->dtype != TC_BOOL && mask->dtype != TC_F32 && mask->dtype != q->dtype)
            return tc_infer_fail(c, TC_ERR_DTYPE, "attn_mask must be bool, f32 or the query's dtype (%s), got %s",
                                 tc_dtype_name(q->dtype), tc_dtype_name(mask->dtype));
        if (tc_node_bool(n, 5))
            return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "attn_mask and is_causal cannot both be set");
        tc_dim target[TC_MAX_RANK];
        for (int i = 0; i < rb; i++) target[i] = ob[i];
        target[rb] = L, target[rb + 1] = S;
        bool ok = mask->rank <= rb + 2;
        for (int i = 0; ok && i < mask->rank; i++) {
            tc_dim md = mask->dims[mask->rank - 1 - i], td = target[rb + 1 - i];
            ok = md == 1 || dims_agree(md, td) != 0;
        }
        if (!ok) {
            char bm[160];
            return tc_infer_fail(c, TC_ERR_SHAPE, "attn_mask %s does not broadcast to the scores [..., L, S] of query %s "
                                 "and key %s",
                                 shape_str(c, mask, bm, sizeof bm), shape_str(c, q, bq, sizeof bq),
                                 shape_str(c, k, bk, sizeof bk));
        }
    }
    if (!tc_node_is_none(n, 6) && !(tc_node_float(n, 6) == tc_node_float(n, 6)))
        return tc_infer_fail(c, TC_ERR_INVALID_ARGUMENT, "scale is NaN");
    ob[rb] = L, ob[rb + 1] = Ev;
    tc_infer_set(c, 0, q->dtype, rb + 2, ob);
    return TC_OK;
}

/* ---- shared by the backends' attention kernels (attention_params.h) ------------------------- */

static void strides_of(tc_shape_ref t, int64_t *s) {
    int64_t acc = 1;
    for (int i = t.rank - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= t.dims[i];
    }
}

/* Per-batch-dim strides of a contiguous tensor whose leading rank-2 dims align right with the
 * output batch dims; a size-1 (broadcast) dim gets stride 0. */
static void batch_strides(tc_shape_ref t, int rb, int64_t *st) {
    int64_t s[TC_MAX_RANK];
    strides_of(t, s);
    int tb = t.rank - 2;
    for (int i = 0; i < rb; i++) {
        int ti = tb - rb + i;
        st[i] = ti >= 0 && t.dims[ti] != 1 ? s[ti] : 0;
    }
}

tc_status tc_sdpa_geometry(const tc_node *n, tc_shape_ref q, tc_shape_ref k, tc_shape_ref v, tc_shape_ref y,
                           const tc_shape_ref *mask, tc_sdpa_geom *g, tc_error *err) {
    memset(g, 0, sizeof *g);
    if (q.rank < 2 || k.rank < 2 || v.rank < 2 || y.rank < 2)
        return tc_errorf(err, TC_ERR_SHAPE, "query, key and value need rank >= 2");
    g->L = q.dims[q.rank - 2], g->E = q.dims[q.rank - 1];
    g->S = k.dims[k.rank - 2], g->Ev = v.dims[v.rank - 1];
    if (k.dims[k.rank - 1] != g->E || v.dims[v.rank - 2] != g->S)
        return tc_errorf(err, TC_ERR_SHAPE, "query/key embedding (%lld vs %lld) or key/value length (%lld vs %lld) differ",
                         (long long)g->E, (long long)k.dims[k.rank - 1], (long long)g->S, (long long)v.dims[v.rank - 2]);
    if (y.dims[y.rank - 2] != g->L || y.dims[y.rank - 1] != g->Ev)
        return tc_errorf(err, TC_ERR_SHAPE, "the output is not [..., L, Ev]");
    g->rb = y.rank - 2;
    for (int d = 0; d < g->rb; d++) g->ob[d] = y.dims[d];
    batch_strides(q, g->rb, g->qs);
    batch_strides(k, g->rb, g->ks);
    batch_strides(v, g->rb, g->vs);
    g->k_rep = g->v_rep = 1;
    if (tc_node_bool(n, 7) && g->rb >= 1 && q.rank >= 3 && k.rank >= 3 && v.rank >= 3) {
        int64_t hq = q.dims[q.rank - 3], hk = k.dims[k.rank - 3], hv = v.dims[v.rank - 3];
        if (hk == 0 || hv == 0 || hq % hk || hq % hv)
            return tc_errorf(err, TC_ERR_SHAPE, "enable_gqa: %lld query heads are not a multiple of %lld key / %lld "
                             "value heads", (long long)hq, (long long)hk, (long long)hv);
        int64_t s[TC_MAX_RANK];
        strides_of(k, s);
        g->k_rep = hq / hk, g->ks[g->rb - 1] = s[k.rank - 3];
        strides_of(v, s);
        g->v_rep = hq / hv, g->vs[g->rb - 1] = s[v.rank - 3];
        if ((g->k_rep > 1 || g->v_rep > 1) && g->ob[g->rb - 1] != hq)
            return tc_errorf(err, TC_ERR_SHAPE, "enable_gqa: the output has %lld heads, the query %lld",
                             (long long)g->ob[g->rb - 1], (long long)hq);
    }
    /* every batch dim of each operand must be 1 or the output's (checked at inference unless symbolic) */
    const tc_shape_ref ops[3] = {q, k, v};
    for (int t = 0; t < 3; t++)
        for (int d = 0; d < g->rb && d < ops[t].rank - 2; d++) {
            int64_t td = ops[t].dims[ops[t].rank - 3 - d], od = g->ob[g->rb - 1 - d];
            bool gqa_head = d == 0 && t > 0 && (t == 1 ? g->k_rep : g->v_rep) > 1;
            if (td != 1 && td != od && !gqa_head)
                return tc_errorf(err, TC_ERR_SHAPE, "batch dim %d of %s is %lld, the output's is %lld", g->rb - 1 - d,
                                 t == 0 ? "query" : t == 1 ? "key" : "value", (long long)td, (long long)od);
        }
    g->causal = tc_node_bool(n, 5);
    g->scale = tc_node_is_none(n, 6) ? 1.0f / sqrtf((float)g->E) : (float)tc_node_float(n, 6);
    if (mask) {
        if (mask->rank > g->rb + 2)
            return tc_errorf(err, TC_ERR_SHAPE, "attn_mask has rank %d, the scores %d", mask->rank, g->rb + 2);
        int64_t s[TC_MAX_RANK], full[TC_MAX_RANK], ms[TC_MAX_RANK] = {0};
        strides_of(*mask, s);
        int mr = mask->rank;
        for (int d = 0; d < g->rb; d++) full[d] = g->ob[d];
        full[g->rb] = g->L, full[g->rb + 1] = g->S;
        for (int i = 0; i < mr; i++) {
            int fi = g->rb + 2 - mr + i;
            if (mask->dims[i] != 1 && mask->dims[i] != full[fi])
                return tc_errorf(err, TC_ERR_SHAPE, "attn_mask dim %d is %lld, the scores' is %lld", i,
                                 (long long)mask->dims[i], (long long)full[fi]);
            ms[fi] = mask->dims[i] != 1 ? s[i] : 0;
        }
        for (int d = 0; d < g->rb; d++) g->ms[d] = ms[d];
        g->mask_ls = ms[g->rb], g->mask_ss = ms[g->rb + 1];
    }
    return TC_OK;
}
