/* CPU kernel for scaled_dot_product_attention, kept composite: for each batch-head and each tile
 * of query rows, scores = scale * Q @ K^T (tc_sgemm), mask, softmax in f32 with max subtraction,
 * then P @ V (tc_sgemm). Tiles are fixed by the shapes alone, so results do not depend on the
 * thread count. A row whose every key is masked out gives zeros, as PyTorch's CPU kernel does. */
#include "backend/cpu/cpu.h"
#include "backend/cpu/vecmath.h"
#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "ops/attention_params.h"
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
    tc_sdpa_geom geo;
    tc_error why = {0};
    tc_shape_ref mref = mask ? (tc_shape_ref){mask->rank, mask->dims} : (tc_shape_ref){0, NULL};
    tc_status st = tc_sdpa_geometry(c->node, (tc_shape_ref){q->rank, q->dims}, (tc_shape_ref){k->rank, k->dims},
                                    (tc_shape_ref){v->rank, v->dims}, (tc_shape_ref){y->rank, y->dims},
                                    mask ? &mref : NULL, &geo, &why);
    if (st != TC_OK) return tc_cpu_fail(c, st, "%s", why.msg);
    j.L = geo.L, j.S = geo.S, j.E = geo.E, j.Ev = geo.Ev, j.rb = geo.rb;
    memcpy(j.ob, geo.ob, sizeof j.ob);
    memcpy(j.qs, geo.qs, sizeof j.qs);
    memcpy(j.ks, geo.ks, sizeof j.ks);
    memcpy(j.vs, geo.vs, sizeof j.vs);
    memcpy(j.ms, geo.ms, sizeof j.ms);
    j.k_rep = geo.k_rep, j.v_rep = geo.v_rep, j.mask_ls = geo.mask_ls, j.mask_ss = geo.mask_ss;
    j.causal = geo.causal, j.scale = geo.scale;
    if (mask) {
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
