/* CUDA kernel for scaled_dot_product_attention: argument handling on the host (batch broadcast
 * strides, grouped-query heads, mask broadcast, checks of sizes that were symbolic at inference),
 * mirroring backend/cpu/attention.c; the fused kernel is in kernels/attention.cu. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/attention.h"
#include "core/dtype.h"

#include <math.h>
#include <string.h>

static void strides_of(const tc_cuda_tensor *t, int64_t *s) {
    int64_t acc = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= t->dims[i];
    }
}

/* Per-batch-dim strides of a contiguous tensor whose leading rank-2 dims align right with the
 * output batch dims; a size-1 (broadcast) dim gets stride 0. */
static void batch_strides(const tc_cuda_tensor *t, int rb, int tail, int64_t *st) {
    int64_t s[TC_MAX_RANK];
    strides_of(t, s);
    int tb = t->rank - tail;
    for (int i = 0; i < rb; i++) {
        int ti = tb - rb + i;
        st[i] = ti >= 0 && t->dims[ti] != 1 ? s[ti] : 0;
    }
}

static tc_status cuda_sdpa(const tc_cuda_call *c) {
    const tc_cuda_tensor *q = tc_cuda_in(c, 0), *k = tc_cuda_in(c, 1), *v = tc_cuda_in(c, 2);
    const tc_cuda_tensor *mask = tc_cuda_in(c, 3);
    tc_cuda_tensor *y = c->out[0];
    if (q->dtype != TC_F32 && q->dtype != TC_F16 && q->dtype != TC_BF16)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "%s is not supported by the cuda attention kernel (f32, f16, bf16)",
                            tc_dtype_name(q->dtype));
    if (k->dtype != q->dtype || v->dtype != q->dtype || y->dtype != q->dtype)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "query, key, value and output must have one dtype");
    if (q->rank < 2 || k->rank < 2 || v->rank < 2 || y->rank < 2)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "query, key and value need rank >= 2");
    tc_cuda_sdpa_args a;
    memset(&a, 0, sizeof a);
    a.q = q->data, a.k = k->data, a.v = v->data, a.o = y->data;
    a.dtype = q->dtype;
    a.L = q->dims[q->rank - 2], a.E = q->dims[q->rank - 1];
    a.S = k->dims[k->rank - 2], a.Ev = v->dims[v->rank - 1];
    if (k->dims[k->rank - 1] != a.E || v->dims[v->rank - 2] != a.S)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "query/key embedding (%lld vs %lld) or key/value length (%lld vs %lld) "
                            "differ",
                            (long long)a.E, (long long)k->dims[k->rank - 1], (long long)a.S,
                            (long long)v->dims[v->rank - 2]);
    if (y->dims[y->rank - 2] != a.L || y->dims[y->rank - 1] != a.Ev)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "the output is not [..., L, Ev]");
    a.rb = y->rank - 2;
    for (int d = 0; d < a.rb; d++) a.ob[d] = y->dims[d];
    batch_strides(q, a.rb, 2, a.qs);
    batch_strides(k, a.rb, 2, a.ks);
    batch_strides(v, a.rb, 2, a.vs);
    a.k_rep = a.v_rep = 1;
    if (tc_node_bool(c->node, 7) && a.rb >= 1 && q->rank >= 3 && k->rank >= 3 && v->rank >= 3) {
        int64_t hq = q->dims[q->rank - 3], hk = k->dims[k->rank - 3], hv = v->dims[v->rank - 3];
        if (hk == 0 || hv == 0 || hq % hk || hq % hv)
            return tc_cuda_fail(c, TC_ERR_SHAPE, "enable_gqa: %lld query heads are not a multiple of %lld key / %lld "
                                "value heads",
                                (long long)hq, (long long)hk, (long long)hv);
        int64_t s[TC_MAX_RANK];
        strides_of(k, s);
        a.k_rep = hq / hk, a.ks[a.rb - 1] = s[k->rank - 3];
        strides_of(v, s);
        a.v_rep = hq / hv, a.vs[a.rb - 1] = s[v->rank - 3];
    }
    /* every batch dim of each operand must be 1 or the output's (checked at inference unless symbolic) */
    const tc_cuda_tensor *ops[3] = {q, k, v};
    for (int t = 0; t < 3; t++)
        for (int d = 0; d < a.rb && d < ops[t]->rank - 2; d++) {
            int64_t td = ops[t]->dims[ops[t]->rank - 3 - d], od = a.ob[a.rb - 1 - d];
            bool gqa_head = d == 0 && t > 0 && (t == 1 ? a.k_rep : a.v_rep) > 1;
            if (td != 1 && td != od && !gqa_head)
                return tc_cuda_fail(c, TC_ERR_SHAPE, "batch dim %d of %s is %lld, the output's is %lld", a.rb - 1 - d,
                                    t == 0 ? "query" : t == 1 ? "key" : "value", (long long)td, (long long)od);
        }
    /* with GQA the head dim must not exceed the operand's rank (checked by the rank condition above) */
    if (a.k_rep > 1 && a.ob[a.rb - 1] != q->dims[q->rank - 3])
        return tc_cuda_fail(c, TC_ERR_SHAPE, "enable_gqa: the output has %lld heads, the query %lld",
                            (long long)a.ob[a.rb - 1], (long long)q->dims[q->rank - 3]);
    a.causal = tc_node_bool(c->node, 5);
    a.scale = tc_node_is_none(c->node, 6) ? 1.0f / sqrtf((float)a.E) : (float)tc_node_float(c->node, 6);
    if (mask) {
        if (mask->dtype != TC_BOOL && mask->dtype != TC_F32 && mask->dtype != TC_F16 && mask->dtype != TC_BF16)
            return tc_cuda_fail(c, TC_ERR_DTYPE, "attn_mask dtype %s is not supported (bool, f32, f16, bf16)",
                                tc_dtype_name(mask->dtype));
        if (mask->rank > a.rb + 2)
            return tc_cuda_fail(c, TC_ERR_SHAPE, "attn_mask has rank %d, the scores %d", mask->rank, a.rb + 2);
        int64_t s[TC_MAX_RANK];
        strides_of(mask, s);
        int mr = mask->rank;
        int64_t full[TC_MAX_RANK];
        for (int d = 0; d < a.rb; d++) full[d] = a.ob[d];
        full[a.rb] = a.L, full[a.rb + 1] = a.S;
        int64_t ms[TC_MAX_RANK] = {0};
        for (int i = 0; i < mr; i++) {
            int fi = a.rb + 2 - mr + i;
            if (mask->dims[i] != 1 && mask->dims[i] != full[fi])
                return tc_cuda_fail(c, TC_ERR_SHAPE, "attn_mask dim %d is %lld, the scores' is %lld", i,
                                    (long long)mask->dims[i], (long long)full[fi]);
            ms[fi] = mask->dims[i] != 1 ? s[i] : 0;
        }
        for (int d = 0; d < a.rb; d++) a.ms[d] = ms[d];
        a.mask_ls = ms[a.rb], a.mask_ss = ms[a.rb + 1];
        a.mask = mask->numel ? mask->data : NULL;
        a.mask_dtype = mask->dtype;
        if (!a.mask && y->numel && a.S)
            return tc_cuda_fail(c, TC_ERR_SHAPE, "attn_mask is empty but the scores are not");
    }
    tc_status s = tc_cuda_sdpa(&a, c->stream, c->err);
    if (s == TC_OK || !c->err) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

void tc_cuda_register_attention(tc_cuda_kernel *t) { t[TC_OP_SDPA] = cuda_sdpa; }
