/* CPU kernels for the reduction ops, cumsum and softmax. Floating inputs are reduced in f32
 * whatever their storage type and rounded once to the output; integer and bool inputs are reduced
 * exactly in int64. Work is split over output elements (and over fixed-size blocks of very long
 * rows), each accumulated in a fixed order, so results do not depend on the thread count. */
#include "backend/cpu/cpu.h"
#include "backend/cpu/vecmath.h"
#include "core/dtype.h"
#include "ops/reduce_params.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

typedef enum { R_SUM, R_PROD, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN, R_SQDEV, R_ANY, R_ALL } rop;

/* What an output element receives from its final state. */
typedef enum { FIN_VALUE, FIN_MEAN, FIN_VAR, FIN_INDEX, FIN_VALUE_INDEX } rfin;

/* The input's kept and reduced dim groups (ops/reduce_params.h). */
typedef tc_reduce_layout layout;

typedef struct {
    float v;
    int64_t iv;
    int64_t i; /* index of the chosen element for arg ops, -1 before the first */
} rstate;

typedef struct {
    rop op;
    rfin fin;
    const layout *L;
    const float *xf;   /* float domain input, or NULL */
    const int64_t *xi; /* integer domain input */
    float *yf;
    int64_t *yi;
    int64_t *idx;
    const float *mean; /* per output, for R_SQDEV */
    double divisor;    /* for FIN_VAR */
    rstate *partial;   /* blocked rows: n_out * nblocks states */
    int64_t nblocks;
} red_job;

#define COL_TILE 64
#define ROW_BLOCK 16384

static void make_layout(const tc_cpu_tensor *x, const bool *red, layout *L) {
    tc_reduce_layout_make(x->rank, x->dims, red, L);
}

static rstate state_init(rop op) {
    rstate s = {0, 0, -1};
    switch (op) {
    case R_PROD:
    case R_ALL: s.v = 1, s.iv = 1; break;
    case R_MAX:
    case R_ARGMAX: s.v = -INFINITY, s.iv = INT64_MIN; break;
    case R_MIN:
    case R_ARGMIN: s.v = INFINITY, s.iv = INT64_MAX; break;
    case R_SUM:
    case R_SQDEV:
    case R_ANY: break;
    }
    return s;
}

/* NaN wins over everything and stays once there, as in PyTorch's max/min. */
static inline bool f_better(rop op, float e, float cur) {
    if (e != e) return cur == cur;
    return op == R_MAX || op == R_ARGMAX ? e > cur : e < cur;
}

static float sum_f32(const float *p, int64_t n, int64_t s) {
    if (s != 1) {
        float a = 0;
        for (int64_t k = 0; k < n; k++) a += p[k * s];
        return a;
    }
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += p[k + j];
    float t = 0;
    for (; k < n; k++) t += p[k];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

static float sqdev_f32(const float *p, int64_t n, int64_t s, float mean) {
    float a[8] = {0};
    int64_t k = 0;
    if (s == 1)
        for (; k + 8 <= n; k += 8)
            for (int j = 0; j < 8; j++) {
                float d = p[k + j] - mean;
                a[j] += d * d;
            }
    float t = 0;
    for (; k < n; k++) {
        float d = p[k * s] - mean;
        t += d * d;
    }
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

/* Folds n elements p[0], p[s], ... (at reduced positions pos, pos+1, ...) into st. */
static void seg_f32(rop op, const float *p, int64_t n, int64_t s, int64_t pos, float mean, rstate *st) {
    switch (op) {
    case R_SUM: st->v += sum_f32(p, n, s); return;
    case R_SQDEV: st->v += sqdev_f32(p, n, s, mean); return;
    case R_PROD:
        for (int64_t k = 0; k < n; k++) st->v *= p[k * s];
        return;
    case R_MAX:
    case R_MIN:
        for (int64_t k = 0; k < n; k++)
            if (f_better(op, p[k * s], st->v)) st->v = p[k * s];
        return;
    case R_ARGMAX:
    case R_ARGMIN:
        for (int64_t k = 0; k < n; k++) {
            float e = p[k * s];
            if (st->i < 0 || f_better(op, e, st->v)) st->v = e, st->i = pos + k;
        }
        return;
    case R_ANY:
    case R_ALL: TC_ASSERT(0 && "logical reductions run in the integer domain");
    }
}

static void seg_i64(rop op, const int64_t *p, int64_t n, int64_t s, int64_t pos, rstate *st) {
    uint64_t u = (uint64_t)st->iv; /* wraps on overflow like PyTorch, without undefined behaviour */
    switch (op) {
    case R_SUM:
        for (int64_t k = 0; k < n; k++) u += (uint64_t)p[k * s];
        break;
    case R_PROD:
        for (int64_t k = 0; k < n; k++) u *= (uint64_t)p[k * s];
        break;
    case R_MAX:
        for (int64_t k = 0; k < n; k++)
            if (p[k * s] > (int64_t)u) u = (uint64_t)p[k * s];
        break;
    case R_MIN:
        for (int64_t k = 0; k < n; k++)
            if (p[k * s] < (int64_t)u) u = (uint64_t)p[k * s];
        break;
    case R_ARGMAX:
    case R_ARGMIN:
        for (int64_t k = 0; k < n; k++) {
            int64_t e = p[k * s];
            if (st->i < 0 || (op == R_ARGMAX ? e > st->iv : e < st->iv)) st->iv = e, st->i = pos + k;
        }
        return;
    case R_ANY:
        for (int64_t k = 0; k < n && !u; k++) u = p[k * s] != 0;
        break;
    case R_ALL:
        for (int64_t k = 0; k < n && u; k++) u = p[k * s] != 0;
        break;
    case R_SQDEV: TC_ASSERT(0 && "variance runs in the float domain");
    }
    st->iv = (int64_t)u;
}

/* Combines b, a later stretch of the same output's reduction, into a. */
static void state_merge(rop op, bool is_float, rstate *a, const rstate *b) {
    switch (op) {
    case R_SUM:
    case R_SQDEV:
        a->v += b->v;
        a->iv = (int64_t)((uint64_t)a->iv + (uint64_t)b->iv);
        return;
    case R_PROD:
        a->v *= b->v;
        a->iv = (int64_t)((uint64_t)a->iv * (uint64_t)b->iv);
        return;
    case R_MAX:
    case R_MIN:
        if (is_float && f_better(op, b->v, a->v)) a->v = b->v;
        if (!is_float && (op == R_MAX ? b->iv > a->iv : b->iv < a->iv)) a->iv = b->iv;
        return;
    case R_ARGMAX:
    case R_ARGMIN:
        if (b->i < 0) return;
        if (a->i < 0 || (is_float ? f_better(op, b->v, a->v) : (op == R_ARGMAX ? b->iv > a->iv : b->iv < a->iv)))
            *a = *b;
        return;
    case R_ANY: a->iv = a->iv || b->iv; return;
    case R_ALL: a->iv = a->iv && b->iv; return;
    }
}

static int64_t kept_offset(const layout *L, int64_t o) {
    int64_t off = 0;
    for (int g = L->nk - 1; g >= 0; g--) {
        off += (o % L->kd[g]) * L->ks[g];
        o /= L->kd[g];
    }
    return off;
}

/* Folds reduced positions [r0, r1) of output o (row-major over the reduced dims) into st. */
static void red_range(const red_job *j, int64_t o, int64_t r0, int64_t r1, rstate *st) {
    const layout *L = j->L;
    int64_t base = kept_offset(L, o);
    int64_t in_n = L->rd[L->nr - 1], in_s = L->rs[L->nr - 1];
    float mean = j->mean ? j->mean[o] : 0;
    for (int64_t r = r0; r < r1;) {
        int64_t q = r / in_n, k = r % in_n;
        int64_t off = base + k * in_s;
        for (int g = L->nr - 2; g >= 0; g--) {
            off += (q % L->rd[g]) * L->rs[g];
            q /= L->rd[g];
        }
        int64_t len = in_n - k < r1 - r ? in_n - k : r1 - r;
        if (j->xf) seg_f32(j->op, j->xf + off, len, in_s, r, mean, st);
        else seg_i64(j->op, j->xi + off, len, in_s, r, st);
        r += len;
    }
}

static void finish(const red_job *j, int64_t o, const rstate *st) {
    bool f = j->xf != NULL;
    switch (j->fin) {
    case FIN_VALUE_INDEX: j->idx[o] = st->i; /* fall through */
    case FIN_VALUE:
        if (f) j->yf[o] = st->v;
        else j->yi[o] = st->iv;
        return;
    case FIN_MEAN: j->yf[o] = st->v / (float)j->L->n_red; return;
    case FIN_VAR: j->yf[o] = (float)((double)st->v / j->divisor); return;
    case FIN_INDEX: j->idx[o] = st->i; return;
    }
}

static void rows_chunk(void *ctx, int64_t b, int64_t e) {
    const red_job *j = ctx;
    for (int64_t o = b; o < e; o++) {
        rstate st = state_init(j->op);
        red_range(j, o, 0, j->L->n_red, &st);
        finish(j, o, &st);
    }
}

static void blocks_chunk(void *ctx, int64_t b, int64_t e) {
    const red_job *j = ctx;
    for (int64_t t = b; t < e; t++) {
        int64_t o = t / j->nblocks, k = t % j->nblocks;
        int64_t r0 = k * ROW_BLOCK, r1 = r0 + ROW_BLOCK < j->L->n_red ? r0 + ROW_BLOCK : j->L->n_red;
        rstate st = state_init(j->op);
        red_range(j, o, r0, r1, &st);
        j->partial[t] = st;
    }
}

/* Float reduction of the outer x R x inner form over COL_TILE adjacent inner columns at a time,
 * reading the input row by row. */
static void cols_chunk(void *ctx, int64_t b, int64_t e) {
    const red_job *j = ctx;
    const layout *L = j->L;
    int64_t R = L->rd[0], inner = L->rs[0];
    int64_t ntiles = (inner + COL_TILE - 1) / COL_TILE;
    rop op = j->op;
    for (int64_t t = b; t < e; t++) {
        int64_t oo = t / ntiles, i0 = (t % ntiles) * COL_TILE;
        int64_t w = inner - i0 < COL_TILE ? inner - i0 : COL_TILE;
        const float *x = j->xf + oo * R * inner + i0;
        const float *mean = j->mean ? j->mean + oo * inner + i0 : NULL;
        float v[COL_TILE];
        int64_t ix[COL_TILE] = {0};
        rstate s0 = state_init(op);
        for (int64_t k = 0; k < w; k++) v[k] = s0.v;
        switch (op) {
        case R_SUM:
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < w; k++) v[k] += x[r * inner + k];
            break;
        case R_SQDEV:
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < w; k++) {
                    float d = x[r * inner + k] - mean[k];
                    v[k] += d * d;
                }
            break;
        case R_PROD:
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < w; k++) v[k] *= x[r * inner + k];
            break;
        case R_MAX:
        case R_MIN:
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < w; k++)
                    if (f_better(op, x[r * inner + k], v[k])) v[k] = x[r * inner + k];
            break;
        case R_ARGMAX:
        case R_ARGMIN:
            for (int64_t k = 0; k < w; k++) v[k] = x[k];
            for (int64_t r = 1; r < R; r++)
                for (int64_t k = 0; k < w; k++)
                    if (f_better(op, x[r * inner + k], v[k])) v[k] = x[r * inner + k], ix[k] = r;
            break;
        case R_ANY:
        case R_ALL: TC_ASSERT(0 && "logical reductions run in the integer domain");
        }
        for (int64_t k = 0; k < w; k++) {
            rstate st = {v[k], 0, ix[k]};
            finish(j, oo * inner + i0 + k, &st);
        }
    }
}

static void run_job(red_job *j, const tc_cpu_call *c, bool *oom) {
    const layout *L = j->L;
    int64_t R = L->n_red;
    bool is_float = j->xf != NULL;
    if (R > 0 && L->nr == 1 && L->rs[0] == 1 && R >= 4 * ROW_BLOCK && L->n_out <= 64) {
        /* few long rows: fixed blocks in parallel, then each row's blocks merged in order */
        j->nblocks = (R + ROW_BLOCK - 1) / ROW_BLOCK;
        j->partial = tc_cpu_scratch(c, 3, sizeof(rstate) * (size_t)(L->n_out * j->nblocks));
        if (!j->partial) {
            *oom = true;
            return;
        }
        tc_parallel_for(L->n_out * j->nblocks, 1, blocks_chunk, j);
        for (int64_t o = 0; o < L->n_out; o++) {
            rstate st = j->partial[o * j->nblocks];
            for (int64_t k = 1; k < j->nblocks; k++) state_merge(j->op, is_float, &st, &j->partial[o * j->nblocks + k]);
            finish(j, o, &st);
        }
        return;
    }
    if (R > 0 && is_float && L->nr == 1 && L->rs[0] > 1) {
        int64_t inner = L->rs[0], ntiles = (inner + COL_TILE - 1) / COL_TILE;
        int64_t tasks = L->n_out / inner * ntiles;
        int64_t grain = 16384 / (R * COL_TILE) + 1;
        tc_parallel_for(tasks, grain, cols_chunk, j);
        return;
    }
    tc_parallel_for(L->n_out, 16384 / (R + 1) + 1, rows_chunk, j);
}

/* --- which dims an op reduces (validated by shape inference) --------------------------------- */


static rop op_of(int op) {
    switch (op) {
    case TC_OP_AMAX: return R_MAX;
    case TC_OP_AMIN: return R_MIN;
    case TC_OP_ARGMAX:
    case TC_OP_MAX_DIM: return R_ARGMAX;
    case TC_OP_ARGMIN:
    case TC_OP_MIN_DIM: return R_ARGMIN;
    case TC_OP_PROD_DIM: return R_PROD;
    case TC_OP_ANY_DIM:
    case TC_OP_ANY_DIMS: return R_ANY;
    case TC_OP_ALL_DIM:
    case TC_OP_ALL_DIMS: return R_ALL;
    default: return R_SUM;
    }
}

static tc_status oom(const tc_cpu_call *c) { return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory"); }

/* tc_cpu_as_f32, with a valid (never read) pointer for an empty tensor, whose data may be NULL. */
static const float *input_f32(const tc_cpu_call *c, const tc_cpu_tensor *t, int slot) {
    static const float none[1];
    return t->numel ? tc_cpu_as_f32(c, t, slot) : none;
}

/* tc_cpu_out_f32 and tc_cpu_store_f32 that also accept an empty output. */
static float *output_f32(const tc_cpu_call *c, tc_cpu_tensor *t, int slot) {
    static float sink[1];
    return t->numel ? tc_cpu_out_f32(c, t, slot) : sink;
}

static void store_f32(tc_cpu_tensor *t, const float *src) {
    if (t->numel) tc_cpu_store_f32(t, src);
}

/* Every reduction op: picks the domain (f32 or int64) from the result type, converts the input once,
 * reduces, and stores the result in the output's dtype. */
static tc_status cpu_reduce(const tc_cpu_call *c) {
    int op = c->node->op;
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == TC_F64 || y->dtype == TC_F64)
        return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu reduction kernels");
    bool red[TC_MAX_RANK];
    tc_reduce_dims(c->node, x->rank, red);
    layout L;
    make_layout(x, red, &L);
    red_job j = {.op = op_of(op), .fin = FIN_VALUE, .L = &L};
    bool has_identity = j.op == R_SUM || j.op == R_PROD || j.op == R_ANY || j.op == R_ALL;
    if (L.n_red == 0 && !has_identity) {
        for (int i = 0; i < x->rank; i++)
            if (red[i] && x->dims[i] == 0)
                return tc_cpu_fail(c, TC_ERR_SHAPE, "reducing over dim %d of size 0 has no result (the dim must be "
                                   "non-empty)", i);
        return tc_cpu_fail(c, TC_ERR_SHAPE, "reducing an empty tensor has no result");
    }
    if (op == TC_OP_ARGMAX || op == TC_OP_ARGMIN) j.fin = FIN_INDEX, j.idx = y->data;
    if (op == TC_OP_MAX_DIM || op == TC_OP_MIN_DIM) j.fin = FIN_VALUE_INDEX, j.idx = c->out[1]->data;
    if (op == TC_OP_MEAN_DIM) j.fin = FIN_MEAN;

    /* the domain follows the result: floats (and any/all of floats, via != 0) or exact integers */
    tc_dtype vt = j.fin == FIN_INDEX ? x->dtype : y->dtype;
    bool logical = j.op == R_ANY || j.op == R_ALL;
    bool is_float = tc_dtype_is_float(vt) && !logical;
    if (is_float) {
        j.xf = input_f32(c, x, 0);
        if (!j.xf) return oom(c);
        if (j.fin != FIN_INDEX) {
            j.yf = output_f32(c, y, 1);
            if (!j.yf) return oom(c);
        }
    } else {
        int64_t *xi = (int64_t *)x->data;
        if (logical && x->dtype != TC_BOOL) {
            uint8_t *b = tc_cpu_scratch(c, 2, (size_t)x->numel + 1);
            xi = tc_cpu_scratch(c, 0, sizeof(int64_t) * (size_t)(x->numel + 1));
            if (!b || !xi) return oom(c);
            tc_convert(x->data, x->dtype, b, TC_BOOL, x->numel);
            tc_convert(b, TC_BOOL, xi, TC_I64, x->numel);
        } else if (x->dtype != TC_I64) {
            xi = tc_cpu_scratch(c, 0, sizeof(int64_t) * (size_t)(x->numel + 1));
            if (!xi) return oom(c);
            tc_convert(x->data, x->dtype, xi, TC_I64, x->numel);
        }
        j.xi = xi;
        if (j.fin != FIN_INDEX) {
            j.yi = y->dtype == TC_I64 ? y->data : tc_cpu_scratch(c, 1, sizeof(int64_t) * (size_t)(y->numel + 1));
            if (!j.yi) return oom(c);
        }
    }
    bool no_mem = false;
    run_job(&j, c, &no_mem);
    if (no_mem) return oom(c);
    if (is_float && j.yf) store_f32(y, j.yf);
    if (!is_float && j.yi && (void *)j.yi != y->data) tc_convert(j.yi, TC_I64, y->data, y->dtype, y->numel);
    return TC_OK;
}

/* Two passes: the mean of every output, then the sum of squared deviations from it. */
static tc_status cpu_var(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == TC_F64) return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu reduction kernels");
    bool red[TC_MAX_RANK];
    tc_reduce_dims(c->node, x->rank, red);
    layout L;
    make_layout(x, red, &L);
    double corr = tc_node_float_or(c->node, 2, 1.0);
    double dof = (double)L.n_red - corr;
    red_job j = {.op = R_SUM, .fin = FIN_MEAN, .L = &L, .divisor = dof > 0 ? dof : 0};
    j.xf = input_f32(c, x, 0);
    float *mean = tc_cpu_scratch(c, 2, sizeof(float) * (size_t)(y->numel + 1));
    if (!j.xf || !mean) return oom(c);
    j.yf = mean;
    bool no_mem = false;
    run_job(&j, c, &no_mem);
    j.op = R_SQDEV, j.fin = FIN_VAR, j.mean = mean;
    j.yf = output_f32(c, y, 1);
    if (no_mem || !j.yf) return oom(c);
    run_job(&j, c, &no_mem);
    if (no_mem) return oom(c);
    store_f32(y, j.yf);
    return TC_OK;
}

/* --- along one dim: cumsum and softmax over [outer, n, inner] ------------------------------- */

typedef struct {
    int op;
    int64_t n, inner;
    const float *xf;
    float *yf;
    const int64_t *xi;
    int64_t *yi;
} scan_job;

static void scan_geometry(const tc_cpu_tensor *x, int64_t dim, int64_t *outer, int64_t *n, int64_t *inner) {
    int rank = x->rank;
    int d = rank == 0 ? 0 : (int)(dim < 0 ? dim + rank : dim);
    *outer = *n = *inner = 1;
    for (int i = 0; i < rank; i++) {
        if (i < d) *outer *= x->dims[i];
        else if (i == d) *n = x->dims[i];
        else *inner *= x->dims[i];
    }
}

static void cumsum_chunk(void *ctx, int64_t b, int64_t e) {
    const scan_job *j = ctx;
    int64_t n = j->n, inner = j->inner, ntiles = (inner + COL_TILE - 1) / COL_TILE;
    for (int64_t t = b; t < e; t++) {
        int64_t oo = t / ntiles, i0 = (t % ntiles) * COL_TILE;
        int64_t w = inner - i0 < COL_TILE ? inner - i0 : COL_TILE;
        int64_t base = oo * n * inner + i0;
        if (j->xf) {
            float acc[COL_TILE] = {0};
            for (int64_t r = 0; r < n; r++)
                for (int64_t k = 0; k < w; k++) j->yf[base + r * inner + k] = acc[k] += j->xf[base + r * inner + k];
        } else {
            uint64_t acc[COL_TILE] = {0};
            for (int64_t r = 0; r < n; r++)
                for (int64_t k = 0; k < w; k++)
                    j->yi[base + r * inner + k] = (int64_t)(acc[k] += (uint64_t)j->xi[base + r * inner + k]);
        }
    }
}

static tc_status cpu_cumsum(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == TC_F64 || y->dtype == TC_F64)
        return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu reduction kernels");
    int64_t outer, n, inner;
    scan_geometry(x, tc_node_int(c->node, 1), &outer, &n, &inner);
    scan_job j = {c->node->op, n, inner, NULL, NULL, NULL, NULL};
    bool is_float = tc_dtype_is_float(y->dtype);
    if (is_float) {
        j.xf = input_f32(c, x, 0);
        j.yf = output_f32(c, y, 1);
        if (!j.xf || !j.yf) return oom(c);
    } else {
        int64_t *xi = x->data;
        if (x->dtype != TC_I64) {
            xi = tc_cpu_scratch(c, 0, sizeof(int64_t) * (size_t)(x->numel + 1));
            if (!xi) return oom(c);
            tc_convert(x->data, x->dtype, xi, TC_I64, x->numel);
        }
        j.xi = xi;
        j.yi = y->dtype == TC_I64 ? y->data : tc_cpu_scratch(c, 1, sizeof(int64_t) * (size_t)(y->numel + 1));
        if (!j.yi) return oom(c);
    }
    int64_t tasks = outer * ((inner + COL_TILE - 1) / COL_TILE);
    tc_parallel_for(tasks, 16384 / (n * (inner < COL_TILE ? inner : COL_TILE) + 1) + 1, cumsum_chunk, &j);
    if (is_float) store_f32(y, j.yf);
    else if ((void *)j.yi != y->data) tc_convert(j.yi, TC_I64, y->data, y->dtype, y->numel);
    return TC_OK;
}

/* Max subtraction keeps exp in range; a row that is all -inf gives NaN, as in PyTorch. */
static void softmax_chunk(void *ctx, int64_t b, int64_t e) {
    const scan_job *j = ctx;
    int64_t n = j->n, inner = j->inner, ntiles = (inner + COL_TILE - 1) / COL_TILE;
    bool log_form = j->op == TC_OP_LOG_SOFTMAX;
    for (int64_t t = b; t < e; t++) {
        int64_t oo = t / ntiles, i0 = (t % ntiles) * COL_TILE;
        int64_t w = inner - i0 < COL_TILE ? inner - i0 : COL_TILE;
        const float *x = j->xf + oo * n * inner + i0;
        float *y = j->yf + oo * n * inner + i0;
        if (inner == 1) {
            /* a contiguous row; a NaN anywhere reaches every output through the sum */
            float mx = row_max(x, n);
            if (mx == -INFINITY) mx = x[0] == x[0] ? NAN : x[0]; /* all -inf: NaN, as in PyTorch */
            float s = exp_shifted(x, y, n, mx);
            if (log_form) {
                float ls = mx + logf(s);
                for (int64_t r = 0; r < n; r++) y[r] = x[r] - ls;
            } else {
                float inv = 1.0f / s;
                for (int64_t r = 0; r < n; r++) y[r] *= inv;
            }
            continue;
        }
        float m[COL_TILE], s[COL_TILE];
        for (int64_t k = 0; k < w; k++) m[k] = -INFINITY, s[k] = 0;
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < w; k++)
                if (f_better(R_MAX, x[r * inner + k], m[k])) m[k] = x[r * inner + k];
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < w; k++) {
                float ex = exp_f32(x[r * inner + k] - m[k]);
                s[k] += ex;
                if (!log_form) y[r * inner + k] = ex;
            }
        if (log_form) {
            for (int64_t k = 0; k < w; k++) s[k] = m[k] + logf(s[k]);
            for (int64_t r = 0; r < n; r++)
                for (int64_t k = 0; k < w; k++) y[r * inner + k] = x[r * inner + k] - s[k];
        } else {
            for (int64_t k = 0; k < w; k++) s[k] = 1.0f / s[k];
            for (int64_t r = 0; r < n; r++)
                for (int64_t k = 0; k < w; k++) y[r * inner + k] *= s[k];
        }
    }
}

static tc_status cpu_softmax(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == TC_F64) return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu softmax kernel");
    int64_t outer, n, inner;
    scan_geometry(x, tc_node_int(c->node, 1), &outer, &n, &inner);
    scan_job j = {c->node->op, n, inner, input_f32(c, x, 0), output_f32(c, y, 1), NULL, NULL};
    if (!j.xf || !j.yf) return oom(c);
    int64_t tasks = outer * ((inner + COL_TILE - 1) / COL_TILE);
    tc_parallel_for(tasks, 8192 / (n * (inner < COL_TILE ? inner : COL_TILE) + 1) + 1, softmax_chunk, &j);
    store_f32(y, j.yf);
    return TC_OK;
}

void tc_cpu_register_reduce(tc_cpu_kernel *t) {
    static const int reduce_ops[] = {TC_OP_SUM_DIM, TC_OP_SUM_ALL, TC_OP_MEAN_DIM, TC_OP_AMAX,    TC_OP_AMIN,
                                     TC_OP_ARGMAX,  TC_OP_ARGMIN,  TC_OP_MAX_DIM,  TC_OP_MIN_DIM, TC_OP_ANY_DIM,
                                     TC_OP_ALL_DIM, TC_OP_ANY_DIMS, TC_OP_ALL_DIMS, TC_OP_PROD_DIM};
    for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++) t[reduce_ops[i]] = cpu_reduce;
    t[TC_OP_VAR_CORRECTION] = cpu_var;
    t[TC_OP_CUMSUM] = cpu_cumsum;
    t[TC_OP_SOFTMAX] = cpu_softmax;
    t[TC_OP_LOG_SOFTMAX] = cpu_softmax;
}
