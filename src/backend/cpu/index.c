/* CPU kernels for the indexing ops (embedding, index_select, gather, index.Tensor) and the
 * creation ops (full, full_like, empty_permuted, scalar_tensor, arange). Index values are all
 * checked before anything is copied, so a bad index is an error and never a stray read. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "ops/index_params.h"
#include "core/parallel.h"

#include <string.h>

static size_t esize_of(const tc_cpu_tensor *t) { return tc_dtype_size(t->dtype); }

static int64_t load_index(const tc_cpu_tensor *t, int64_t i) {
    return t->dtype == TC_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

/* Index tensor as int64 (negative values moved up by size when allow_negative), every value
 * checked against [0, size). The result lives in scratch slot `slot` or is t->data itself. */
static const int64_t *checked_indices(const tc_cpu_call *c, const tc_cpu_tensor *t, int64_t size,
                                      bool allow_negative, int slot, const char *what, int dim) {
    bool copy = t->dtype != TC_I64 || allow_negative;
    int64_t *out = copy ? tc_cpu_scratch(c, slot, (size_t)(t->numel ? t->numel : 1) * sizeof(int64_t)) : NULL;
    if (copy && !out) {
        tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v = load_index(t, i), w = allow_negative && v < 0 ? v + size : v;
        if (w < 0 || w >= size) {
            tc_cpu_fail(c, TC_ERR_SHAPE, "%s value %lld (element %lld) is out of range for dim %d of size %lld", what,
                        (long long)v, (long long)i, dim, (long long)size);
            return NULL;
        }
        if (copy) out[i] = w;
    }
    return copy ? out : t->data;
}

/* --- rows copied by index: embedding and index_select ---------------------------------------- */

typedef struct {
    const char *src;
    char *dst;
    const int64_t *idx;
    int64_t n_idx;      /* indices per outer block */
    int64_t src_block;  /* bytes of one outer block of the source */
    size_t row;         /* bytes copied per index */
} rows_job;

static void rows_chunk(void *ctx, int64_t b, int64_t e) {
    const rows_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        int64_t o = r / j->n_idx, k = r % j->n_idx;
        memcpy(j->dst + (size_t)r * j->row, j->src + (size_t)o * (size_t)j->src_block + (size_t)j->idx[k] * j->row,
               j->row);
    }
}

static void copy_rows(const void *src, void *dst, const int64_t *idx, int64_t outer, int64_t n_idx,
                      int64_t src_rows, size_t row) {
    rows_job j = {src, dst, idx, n_idx, (int64_t)((size_t)src_rows * row), row};
    tc_parallel_for(outer * n_idx, (int64_t)((1 << 15) / (row + 1)) + 1, rows_chunk, &j);
}

static tc_status cpu_embedding(const tc_cpu_call *c) {
    const tc_cpu_tensor *w = tc_cpu_in(c, 0), *ix = tc_cpu_in(c, 1);
    tc_cpu_tensor *y = c->out[0];
    const int64_t *idx = checked_indices(c, ix, w->dims[0], false, 0, "index", 0);
    if (!idx) return c->err->status;
    copy_rows(w->data, y->data, idx, 1, ix->numel, w->dims[0], (size_t)w->dims[1] * esize_of(w));
    return TC_OK;
}

static tc_status cpu_index_select(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0), *ix = tc_cpu_in(c, 2);
    tc_cpu_tensor *y = c->out[0];
    int d = (int)tc_cpu_int(c, 1);
    d = x->rank == 0 ? 0 : d < 0 ? d + x->rank : d;
    int64_t outer = 1, inner = 1, D = x->rank ? x->dims[d] : 1;
    for (int i = 0; i < d; i++) outer *= x->dims[i];
    for (int i = d + 1; i < x->rank; i++) inner *= x->dims[i];
    const int64_t *idx = checked_indices(c, ix, D, false, 0, "index", d);
    if (!idx) return c->err->status;
    copy_rows(x->data, y->data, idx, outer, ix->numel, D, (size_t)inner * esize_of(x));
    return TC_OK;
}

/* --- gather ---------------------------------------------------------------------------------- */

typedef struct {
    const tc_cpu_tensor *x;
    tc_cpu_tensor *y;
    const int64_t *idx;
    int d, rank;
    int64_t xs[TC_MAX_RANK];
} gather_job;

static void gather_chunk(void *ctx, int64_t b, int64_t e) {
    const gather_job *j = ctx;
    size_t es = esize_of(j->y);
    int64_t coord[TC_MAX_RANK], rem = b;
    for (int k = j->rank - 1; k >= 0; k--) {
        coord[k] = rem % j->y->dims[k];
        rem /= j->y->dims[k];
    }
    for (int64_t i = b; i < e; i++) {
        int64_t off = 0;
        for (int k = 0; k < j->rank; k++) off += (k == j->d ? j->idx[i] : coord[k]) * j->xs[k];
        memcpy((char *)j->y->data + (size_t)i * es, (const char *)j->x->data + (size_t)off * es, es);
        for (int k = j->rank - 1; k >= 0; k--) {
            if (++coord[k] < j->y->dims[k]) break;
            coord[k] = 0;
        }
    }
}

static tc_status cpu_gather(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0), *ix = tc_cpu_in(c, 2);
    tc_cpu_tensor *y = c->out[0];
    int d = (int)tc_cpu_int(c, 1);
    d = x->rank == 0 ? 0 : d < 0 ? d + x->rank : d;
    for (int k = 0; k < ix->rank && k < x->rank; k++)
        if (k != d && ix->dims[k] > x->dims[k])
            return tc_cpu_fail(c, TC_ERR_SHAPE, "index has size %lld at dim %d, larger than the input's %lld",
                               (long long)ix->dims[k], k, (long long)x->dims[k]);
    gather_job j = {x, y, NULL, d, y->rank, {0}};
    j.idx = checked_indices(c, ix, x->rank ? x->dims[d] : 1, false, 0, "index", d);
    if (!j.idx) return c->err->status;
    tc_cpu_strides(x, j.xs);
    if (x->rank == 0) j.rank = 0; /* a single element: offset 0 */
    tc_parallel_for(y->numel, 1 << 14, gather_chunk, &j);
    return TC_OK;
}

/* --- advanced indexing ----------------------------------------------------------------------- */

#define IX_MAX (TC_MAX_RANK)

typedef struct {
    const tc_cpu_tensor *x;
    tc_cpu_tensor *y;
    int n_rowdims;
    int64_t rowdims[TC_MAX_RANK];
    int rowsrc[TC_MAX_RANK];      /* >= 0: dim of x; < 0: -1 - (dim of the broadcast index shape) */
    int64_t xs[TC_MAX_RANK];
    int n_idx;
    int idx_dim[IX_MAX];          /* the x dim each index tensor indexes */
    const int64_t *idx[IX_MAX];
    int64_t istr[IX_MAX][TC_MAX_RANK]; /* strides of each index tensor over the broadcast shape */
    int brank;
    size_t inner_bytes;
} index_job;

static void index_chunk(void *ctx, int64_t b, int64_t e) {
    const index_job *j = ctx;
    int64_t coord[TC_MAX_RANK], bc[TC_MAX_RANK] = {0}, rem = b;
    for (int k = j->n_rowdims - 1; k >= 0; k--) {
        coord[k] = rem % j->rowdims[k];
        rem /= j->rowdims[k];
    }
    size_t es = esize_of(j->x);
    for (int64_t r = b; r < e; r++) {
        int64_t off = 0;
        for (int k = 0; k < j->n_rowdims; k++) {
            if (j->rowsrc[k] >= 0) off += coord[k] * j->xs[j->rowsrc[k]];
            else bc[-1 - j->rowsrc[k]] = coord[k];
        }
        for (int t = 0; t < j->n_idx; t++) {
            int64_t io = 0;
            for (int m = 0; m < j->brank; m++) io += bc[m] * j->istr[t][m];
            off += j->idx[t][io] * j->xs[j->idx_dim[t]];
        }
        memcpy((char *)j->y->data + (size_t)r * j->inner_bytes, (const char *)j->x->data + (size_t)off * es,
               j->inner_bytes);
        for (int k = j->n_rowdims - 1; k >= 0; k--) {
            if (++coord[k] < j->rowdims[k]) break;
            coord[k] = 0;
        }
    }
}

static tc_status cpu_index_tensor(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    int64_t n = c->node->args[1].a.count;
    index_job j = {.x = x, .y = y};
    tc_cpu_strides(x, j.xs);
    tc_shape_ref refs[TC_MAX_RANK];
    const tc_cpu_tensor *its[TC_MAX_RANK];
    if (n > TC_MAX_RANK) return tc_cpu_fail(c, TC_ERR_SHAPE, "%lld indices", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        its[i] = tc_cpu_in_list(c, 1, i);
        refs[i] = its[i] ? (tc_shape_ref){its[i]->rank, its[i]->dims} : (tc_shape_ref){-1, NULL};
    }
    tc_index_geom geo;
    tc_error why = {0};
    tc_status gs = tc_index_geometry((tc_shape_ref){x->rank, x->dims}, refs, (int)n, (tc_shape_ref){y->rank, y->dims},
                                     &geo, &why);
    if (gs != TC_OK) return tc_cpu_fail(c, gs, "%s", why.msg);
    j.n_idx = geo.n_idx, j.brank = geo.brank, j.n_rowdims = geo.n_rowdims;
    memcpy(j.idx_dim, geo.idx_dim, sizeof j.idx_dim);
    memcpy(j.istr, geo.istr, sizeof j.istr);
    memcpy(j.rowsrc, geo.rowsrc, sizeof j.rowsrc);
    memcpy(j.rowdims, geo.rowdims, sizeof j.rowdims);
    for (int t = 0; t < j.n_idx; t++) {
        j.idx[t] = checked_indices(c, its[geo.src[t]], x->dims[j.idx_dim[t]], true, t, "index", j.idx_dim[t]);
        if (!j.idx[t]) return c->err->status;
    }
    int64_t inner = geo.inner;
    j.inner_bytes = (size_t)inner * esize_of(x);
    int64_t rows = inner ? y->numel / inner : 0;
    tc_parallel_for(rows, (int64_t)((1 << 15) / (j.inner_bytes + 1)) + 1, index_chunk, &j);
    return TC_OK;
}

/* --- creation -------------------------------------------------------------------------------- */

static void fill_bytes(void *dst, const void *elem, size_t esize, int64_t n) {
    if (n <= 0) return;
    size_t total = (size_t)n * esize, done = esize;
    memcpy(dst, elem, esize);
    while (done < total) {
        size_t k = done < total - done ? done : total - done;
        memcpy((char *)dst + done, dst, k);
        done += k;
    }
}

static tc_status cpu_fill(const tc_cpu_call *c) {
    tc_cpu_tensor *y = c->out[0];
    int pos = c->node->op == TC_OP_SCALAR_TENSOR ? 0 : 1;
    uint64_t elem[2] = {0, 0};
    if (c->node->op != TC_OP_EMPTY_PERMUTED) tc_scalar_to_elem(tc_node_arg_at(c->node, pos), y->dtype, elem);
    fill_bytes(y->data, elem, esize_of(y), y->numel);
    return TC_OK;
}

static tc_status cpu_arange(const tc_cpu_call *c) {
    tc_cpu_tensor *y = c->out[0];
    int op = c->node->op;
    int ps = op == TC_OP_ARANGE ? -1 : 0, pst = op == TC_OP_ARANGE_START_STEP ? 2 : -1;
    bool s_int, st_int;
    int64_t s_i, st_i;
    double s = tc_arange_arg(c->g, c->node, c->symvals, ps, 0, &s_int, &s_i),
           st = tc_arange_arg(c->g, c->node, c->symvals, pst, 1, &st_int, &st_i);
    int64_t n = y->numel;
    /* PyTorch accumulates in int64 for integer results (from truncated arguments), in double for
     * f32/f64 and in f32 for f16/bf16 */
    if (tc_dtype_is_int(y->dtype)) {
        int64_t a = s_int ? s_i : (int64_t)s, b = st_int ? st_i : (int64_t)st;
        for (int64_t i = 0; i < n; i++) tc_store_i64(y->data, y->dtype, i, a + b * i);
    } else if (y->dtype == TC_F16 || y->dtype == TC_BF16) {
        float a = (float)s, b = (float)st;
        for (int64_t i = 0; i < n; i++) tc_store_f64(y->data, y->dtype, i, a + b * (float)i);
    } else if (y->dtype == TC_F32 || y->dtype == TC_F64) {
        for (int64_t i = 0; i < n; i++) tc_store_f64(y->data, y->dtype, i, s + st * (double)i);
    } else {
        return tc_cpu_fail(c, TC_ERR_DTYPE, "arange does not produce %s tensors", tc_dtype_name(y->dtype));
    }
    return TC_OK;
}

void tc_cpu_register_index(tc_cpu_kernel *t) {
    t[TC_OP_EMBEDDING] = cpu_embedding;
    t[TC_OP_INDEX_SELECT] = cpu_index_select;
    t[TC_OP_GATHER] = cpu_gather;
    t[TC_OP_INDEX_TENSOR] = cpu_index_tensor;
    t[TC_OP_FULL] = cpu_fill;
    t[TC_OP_FULL_LIKE] = cpu_fill;
    t[TC_OP_EMPTY_PERMUTED] = cpu_fill;
    t[TC_OP_SCALAR_TENSOR] = cpu_fill;
    t[TC_OP_ARANGE] = cpu_arange;
    t[TC_OP_ARANGE_START] = cpu_arange;
    t[TC_OP_ARANGE_START_STEP] = cpu_arange;
}
