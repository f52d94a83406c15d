/* CPU kernel for scaled_dot_product_attention, kept composite: for each batch-head and each tile
 * of query rows, scores = scale * Q @ K^T (tc_sgemm), mask, softmax in f32 with max subtraction,
 * then P @ V (tc_sgemm). Tiles are fixed by the shapes alone, so results do not depend on the
 * thread count. A row whose every key is masked out gives zeros, as PyTorch's CPU kernel does. */
#include "backend/cpu/cpu.h"
#include "backend/cpu/vecmath.h"
#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define Q_TILE 64

typedef struct {
    const float *q, *k, *v;
    float *o;
    const uint8_t *mask_b; /* bool mask, or */
    const float *mask_f;   /* additive float mask */
    int64_t L, S, E, Ev;
    int rb;                         /* batch rank of the output */
    int64_t ob[TC_MAX_RANK];        /* output batch dims */
    int64_t qs[TC_MAX_RANK], ks[TC_MAX_RANK], vs[TC_MAX_RANK], ms[TC_MAX_RANK]; /* per batch dim, 0 = broadcast */
    int64_t k_rep, v_rep;           /* GQA: query heads per key/value head on the last batch dim */
    int64_t mask_ls, mask_ss;       /* mask strides along L and S */
    bool causal;
    float scale;
    int64_t ntiles;
    atomic_int failed;
} sdpa_job;

/* Per-batch-dim strides of a contiguous tensor whose leading rank-2 dims align right with the
 * output batch dims; a size-1 (broadcast) dim gets stride 0. */
static void batch_strides(const tc_cpu_tensor *t, int rb, int tail, int64_t *st) {
    int64_t s[TC_MAX_RANK];
    tc_cpu_strides(t, s);
    int tb = t->rank - tail;
    for (int i = 0; i < rb; i++) {
        int ti = tb - rb + i;
        st[i] = ti >= 0 && t->dims[ti] != 1 ? s[ti] : 0;
    }
}

static void sdpa_chunk(void *ctx, int64_t b, int64_t e) {
    sdpa_job *j = ctx;
    int64_t L = j->L, S = j->S, E = j->E, Ev = j->Ev;
    float *sc = malloc(sizeof(float) * (size_t)(Q_TILE * (S ? S : 1)));
    if (!sc) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t t = b; t < e; t++) {
        int64_t bi = t / j->ntiles, l0 = (t % j->ntiles) * Q_TILE;
        int64_t lt = L - l0 < Q_TILE ? L - l0 : Q_TILE;
        int64_t qo = 0, ko = 0, vo = 0, mo = 0, rem = bi;
        for (int d = j->rb - 1; d >= 0; d--) {
            int64_t i = rem % j->ob[d];
            rem /= j->ob[d];
            bool head = d == j->rb - 1;
            qo += i * j->qs[d];
            ko += (head ? i / j->k_rep : i) * j->ks[d];
            vo += (head ? i / j->v_rep : i) * j->vs[d];
            mo += i * j->ms[d];
        }
        tc_sgemm(false, true, lt, S, E, j->scale, j->q + qo + l0 * E, E, j->k + ko, E, 0.0f, sc, S);
        for (int64_t r = 0; r < lt; r++) {
            float *row = sc + r * S;
            int64_t l = l0 + r;
            if (j->mask_b) {
                const uint8_t *m = j->mask_b + mo + l * j->mask_ls;
                for (int64_t s = 0; s < S; s++)
                    if (!m[s * j->mask_ss]) row[s] = -INFINITY;
            } else if (j->mask_f) {
                const float *m = j->mask_f + mo + l * j->mask_ls;
                for (int64_t s = 0; s < S; s++) row[s] += m[s * j->mask_ss];
            } else if (j->causal) {
                for (int64_t s = l + 1; s < S; s++) row[s] = -INFINITY;
            }
            float mx = row_max(row, S);
            if (mx == -INFINITY) {
                for (int64_t s = 0; s < S; s++) row[s] = row[s] == row[s] ? 0.0f : row[s];
                continue;
            }
            float inv = 1.0f / exp_shifted(row, row, S, mx);
            for (int64_t s = 0; s < S; s++) row[s] *= inv;
        }
        tc_sgemm(false, false, lt, Ev, S, 1.0f, sc, S, j->v + vo, Ev, 0.0f, j->o + bi * L * Ev + l0 * Ev, Ev);
    }
    free(sc);
}

static tc_status cpu_sdpa(const tc_cpu_call *c) {
    const tc_cpu_tensor *q = tc_cpu_in(c, 0), *k = tc_cpu_in(c, 1), *v = tc_cpu_in(c, 2), *mask = tc_cpu_in(c, 3);
    tc_cpu_tensor *y = c->out[0];
    if (q->dtype == TC_F64) return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu attention kernel");
    sdpa_job j = {0};
    j.L = q->dims[q->rank - 2], j.E = q->dims[q->rank - 1];
    j.S = k->dims[k->rank - 2], j.Ev = v->dims[v->rank - 1];
    if (k->dims[k->rank - 1] != j.E || v->dims[v->rank - 2] != j.S)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "query/key embedding (%lld vs %lld) or key/value length (%lld vs %lld) differ",
                           (long long)j.E, (long long)k->dims[k->rank - 1], (long long)j.S,
                           (long long)v->dims[v->rank - 2]);
    j.rb = y->rank - 2;
    for (int d = 0; d < j.rb; d++) j.ob[d] = y->dims[d];
    batch_strides(q, j.rb, 2, j.qs);
    batch_strides(k, j.rb, 2, j.ks);
    batch_strides(v, j.rb, 2, j.vs);
    j.k_rep = j.v_rep = 1;
    if (tc_node_bool(c->node, 7) && j.rb >= 1 && q->rank >= 3 && k->rank >= 3 && v->rank >= 3) {
        int64_t hq = q->dims[q->rank - 3], hk = k->dims[k->rank - 3], hv = v->dims[v->rank - 3];
        if (hk == 0 || hv == 0 || hq % hk || hq % hv)
            return tc_cpu_fail(c, TC_ERR_SHAPE, "enable_gqa: %lld query heads are not a multiple of %lld key / %lld "
                               "value heads",
                               (long long)hq, (long long)hk, (long long)hv);
        int64_t s[TC_MAX_RANK];
        tc_cpu_strides(k, s);
        j.k_rep = hq / hk, j.ks[j.rb - 1] = s[k->rank - 3];
        tc_cpu_strides(v, s);
        j.v_rep = hq / hv, j.vs[j.rb - 1] = s[v->rank - 3];
    }
    /* every batch dim of each operand must be 1 or the output's (checked at inference unless symbolic) */
    const tc_cpu_tensor *ops[3] = {q, k, v};
    for (int t = 0; t < 3; t++)
        for (int d = 0; d < j.rb && d < ops[t]->rank - 2; d++) {
            int64_t td = ops[t]->dims[ops[t]->rank - 3 - d], od = j.ob[j.rb - 1 - d];
            bool gqa_head = d == 0 && t > 0 && (t == 1 ? j.k_rep : j.v_rep) > 1;
            if (td != 1 && td != od && !gqa_head)
                return tc_cpu_fail(c, TC_ERR_SHAPE, "batch dim %d of %s is %lld, the output's is %lld", j.rb - 1 - d,
                                   t == 0 ? "query" : t == 1 ? "key" : "value", (long long)td, (long long)od);
        }
    j.causal = tc_node_bool(c->node, 5);
    j.scale = tc_node_is_none(c->node, 6) ? 1.0f / sqrtf((float)j.E) : (float)tc_node_float(c->node, 6);
    if (mask) {
        int64_t s[TC_MAX_RANK];
        tc_cpu_strides(mask, s);
        int mr = mask->rank;
        int64_t full[TC_MAX_RANK];
        for (int d = 0; d < j.rb; d++) full[d] = j.ob[d];
        full[j.rb] = j.L, full[j.rb + 1] = j.S;
        int64_t ms[TC_MAX_RANK] = {0};
        for (int i = 0; i < mr; i++) {
            int fi = j.rb + 2 - mr + i;
            if (mask->dims[i] != 1 && mask->dims[i] != full[fi])
                return tc_cpu_fail(c, TC_ERR_SHAPE, "attn_mask dim %d is %lld, the scores' is %lld", i,
                                   (long long)mask->dims[i], (long long)full[fi]);
            ms[fi] = mask->dims[i] != 1 ? s[i] : 0;
        }
        for (int d = 0; d < j.rb; d++) j.ms[d] = ms[d];
        j.mask_ls = ms[j.rb], j.mask_ss = ms[j.rb + 1];
        if (mask->dtype == TC_BOOL) j.mask_b = mask->data;
        else if (!(j.mask_f = tc_cpu_as_f32(c, mask, 3))) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    j.q = tc_cpu_as_f32(c, q, 0);
    j.k = tc_cpu_as_f32(c, k, 1);
    j.v = tc_cpu_as_f32(c, v, 2);
    j.o = tc_cpu_out_f32(c, y, 4);
    if (!j.q || !j.k || !j.v || !j.o) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
    int64_t nb = 1;
    for (int d = 0; d < j.rb; d++) nb *= j.ob[d];
    j.ntiles = (j.L + Q_TILE - 1) / Q_TILE;
    atomic_init(&j.failed, 0);
    tc_parallel_for(nb * j.ntiles, 1, sdpa_chunk, &j);
    if (atomic_load(&j.failed)) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for attention scores");
    tc_cpu_store_f32(y, j.o);
    return TC_OK;
}

void tc_cpu_register_attention(tc_cpu_kernel *t) { t[TC_OP_SDPA] = cpu_sdpa; }
