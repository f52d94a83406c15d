/* Shape and dtype inference for scaled_dot_product_attention: query [..., L, E], key [..., S, E],
 * value [..., S, Ev] give [..., L, Ev]; batch dims broadcast, and with enable_gqa the key/value
 * heads (dim -3) are shared by groups of query heads. Inference only: dropout must be 0. */
#include "ops/op.h"
#include "core/dtype.h"

#include <stdio.h>

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
