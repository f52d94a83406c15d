/* CPU kernels for the shape/copy ops. Every view-like op (permute, expand, slice, select, repeat,
 * split) becomes one strided gather from the contiguous input; views that keep the element order
 * are a memcpy; cat copies rows, converting dtypes when its inputs differ. Sizes that shape
 * inference could not check (symbolic ones) are checked here with the real values. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "ops/shape_views.h"
#include "core/parallel.h"

#include <string.h>

/* repeat views each dim as (repeat, size): up to twice the tensor rank */
#define SC_MAX_RANK (2 * TC_MAX_RANK)

typedef struct {
    int rank;
    int64_t dims[SC_MAX_RANK];    /* of the output, C order */
    int64_t strides[SC_MAX_RANK]; /* input elements to step per output index */
    int64_t base;                 /* input element of output index 0 */
    size_t esize;
    const char *src;
    char *dst;
    int64_t row;                  /* elements of the innermost dim */
} gather_job;

static void copy_row(char *dst, const char *src, int64_t n, int64_t stride, size_t esize) {
    if (stride == 1) {
        memcpy(dst, src, (size_t)n * esize);
        return;
    }
    switch (esize) {
    case 1:
        for (int64_t i = 0; i < n; i++) dst[i] = src[i * stride];
        break;
    case 2:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = ((const uint16_t *)src)[i * stride];
        break;
    case 4:
        for (int64_t i = 0; i < n; i++) ((uint32_t *)dst)[i] = ((const uint32_t *)src)[i * stride];
        break;
    case 8:
        for (int64_t i = 0; i < n; i++) ((uint64_t *)dst)[i] = ((const uint64_t *)src)[i * stride];
        break;
    default:
        for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * esize, src + (size_t)(i * stride) * esize, esize);
    }
}

static void gather_chunk(void *ctx, int64_t b, int64_t e) {
    const gather_job *j = ctx;
    int outer = j->rank - 1;
    int64_t idx[SC_MAX_RANK];
    int64_t rem = b, off = j->base;
    for (int k = outer - 1; k >= 0; k--) {
        idx[k] = rem % j->dims[k];
        rem /= j->dims[k];
        off += idx[k] * j->strides[k];
    }
    int64_t inner_stride = j->strides[outer];
    for (int64_t r = b; r < e; r++) {
        copy_row(j->dst + (size_t)(r * j->row) * j->esize, j->src + (size_t)off * j->esize, j->row, inner_stride,
                 j->esize);
        for (int k = outer - 1; k >= 0; k--) {
            off += j->strides[k];
            if (++idx[k] < j->dims[k]) break;
            off -= j->strides[k] * j->dims[k];
            idx[k] = 0;
        }
    }
}

/* out[i0..] = src[base + sum ik * strides[k]] for the output dims given; dst is contiguous. */
static void gather_copy(const void *src, void *dst, size_t esize, int rank, const int64_t *dims,
                        const int64_t *strides, int64_t base) {
    gather_job j = {.esize = esize, .src = src, .dst = dst, .base = base};
    int64_t numel = 1;
    for (int k = 0; k < rank; k++) numel *= dims[k];
    if (numel == 0) return;
    /* drop size-1 dims and merge dims that are contiguous with their inner neighbour */
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 1) continue;
        if (j.rank > 0 && j.strides[j.rank - 1] == strides[k] * dims[k]) {
            j.dims[j.rank - 1] *= dims[k];
            j.strides[j.rank - 1] = strides[k];
            continue;
        }
        j.dims[j.rank] = dims[k];
        j.strides[j.rank] = strides[k];
        j.rank++;
    }
    if (j.rank == 0) {
        j.dims[0] = 1, j.strides[0] = 1, j.rank = 1;
    }
    j.row = j.dims[j.rank - 1];
    int64_t rows = numel / j.row;
    int64_t grain = (1 << 16) / (j.row * (int64_t)esize) + 1;
    tc_parallel_for(rows, grain, gather_chunk, &j);
}

static size_t esize_of(const tc_cpu_tensor *t) { return tc_dtype_size(t->dtype); }

static void copy_all(const tc_cpu_tensor *x, tc_cpu_tensor *y) {
    if (y->numel && y->data != x->data) memcpy(y->data, x->data, (size_t)y->numel * esize_of(y));
}

static const char *shape_str(const int64_t *d, int rank, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

/* view, _unsafe_view, reshape, flatten, squeeze, unsqueeze, clone, alias and the other no-ops */
static tc_status cpu_same_order(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->numel != y->numel) {
        char b1[200], b2[200];
        return tc_cpu_fail(c, TC_ERR_SHAPE, "input %s has %lld elements but the output shape %s has %lld",
                           shape_str(x->dims, x->rank, b1, sizeof b1), (long long)x->numel,
                           shape_str(y->dims, y->rank, b2, sizeof b2), (long long)y->numel);
    }
    copy_all(x, y);
    return TC_OK;
}

typedef struct {
    const tc_cpu_tensor *x;
    tc_cpu_tensor *y;
    size_t esize;
} convert_job;

static void convert_chunk(void *ctx, int64_t b, int64_t e) {
    const convert_job *j = ctx;
    tc_convert((const char *)j->x->data + (size_t)b * esize_of(j->x), j->x->dtype,
               (char *)j->y->data + (size_t)b * j->esize, j->y->dtype, e - b);
}

static tc_status cpu_to_copy(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == y->dtype) {
        copy_all(x, y);
        return TC_OK;
    }
    convert_job j = {x, y, esize_of(y)};
    tc_parallel_for(x->numel, 1 << 14, convert_chunk, &j);
    return TC_OK;
}

/* permute, t, transpose.int, expand, repeat, slice.Tensor, select.int: one strided gather */
static tc_status cpu_view(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    tc_gather_view v;
    tc_error why = {0};
    tc_status st = tc_shape_gather_view(c->g, c->node, c->symvals, x->rank, x->dims, y->rank, y->dims, &v, &why);
    if (st != TC_OK) return tc_cpu_fail(c, st, "%s", why.msg);
    gather_copy(x->data, y->data, esize_of(y), v.rank, v.dims, v.strides, v.base);
    return TC_OK;
}

static tc_status cpu_split(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    int d = (int)tc_cpu_int(c, 2);
    d = d < 0 ? d + x->rank : d;
    int64_t outer, inner, D = x->dims[d], off = 0;
    tc_shape_outer_inner(x->rank, x->dims, d, &outer, &inner);
    int n = c->node->n_outputs;
    for (int k = 0; k < n; k++) off += c->out[k]->dims[d];
    if (off != D)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "the pieces add up to %lld but dim %d has size %lld", (long long)off, d,
                           (long long)D);
    off = 0;
    for (int k = 0; k < n; k++) {
        tc_cpu_tensor *y = c->out[k];
        int64_t len = y->dims[d];
        int64_t dims[2] = {outer, len * inner}, st[2] = {D * inner, 1};
        gather_copy(x->data, y->data, esize_of(y), 2, dims, st, off * inner);
        off += len;
    }
    return TC_OK;
}

typedef struct {
    const tc_cpu_call *c;
    tc_cpu_tensor *y;
    int d;
    int64_t inner, out_cols;
} cat_job;

static void cat_chunk(void *ctx, int64_t b, int64_t e) {
    const cat_job *j = ctx;
    int64_t n = j->c->node->args[0].a.count;
    size_t es = esize_of(j->y);
    int64_t col = 0;
    for (int64_t k = 0; k < n; k++) {
        const tc_cpu_tensor *x = tc_cpu_in_list(j->c, 0, k);
        if (x->numel == 0) continue;
        int64_t w = x->dims[j->d] * j->inner;
        for (int64_t r = b; r < e; r++) {
            const char *src = (const char *)x->data + (size_t)(r * w) * esize_of(x);
            char *dst = (char *)j->y->data + (size_t)(r * j->out_cols + col) * es;
            tc_convert(src, x->dtype, dst, j->y->dtype, w);
        }
        col += w;
    }
}

static tc_status cpu_cat(const tc_cpu_call *c) {
    tc_cpu_tensor *y = c->out[0];
    int64_t n = c->node->args[0].a.count;
    int d = (int)tc_cpu_int(c, 1);
    d = d < 0 ? d + y->rank : d;
    int64_t outer, inner, total = 0;
    tc_shape_outer_inner(y->rank, y->dims, d, &outer, &inner);
    for (int64_t k = 0; k < n; k++) {
        const tc_cpu_tensor *x = tc_cpu_in_list(c, 0, k);
        if (x->numel == 0) continue; /* empty pieces add nothing, whatever their shape */
        bool ok = x->rank == y->rank;
        for (int i = 0; ok && i < y->rank; i++) ok = i == d || x->dims[i] == y->dims[i];
        if (!ok) {
            char b1[200], b2[200];
            return tc_cpu_fail(c, TC_ERR_SHAPE, "tensor %lld has shape %s, which does not fit the output %s along dim %d",
                               (long long)k, shape_str(x->dims, x->rank, b1, sizeof b1),
                               shape_str(y->dims, y->rank, b2, sizeof b2), d);
        }
        total += x->dims[d];
    }
    if (total != y->dims[d])
        return tc_cpu_fail(c, TC_ERR_SHAPE, "the inputs add up to %lld along dim %d but the output has %lld",
                           (long long)total, d, (long long)y->dims[d]);
    cat_job j = {c, y, d, inner, y->dims[d] * inner};
    int64_t grain = (1 << 16) / (j.out_cols * (int64_t)esize_of(y) + 1) + 1;
    tc_parallel_for(outer, grain, cat_chunk, &j);
    return TC_OK;
}

void tc_cpu_register_shape(tc_cpu_kernel *t) {
    static const int same_order[] = {TC_OP_VIEW, TC_OP_UNSAFE_VIEW, TC_OP_RESHAPE, TC_OP_SQUEEZE_DIMS,
                                     TC_OP_SQUEEZE_DIM, TC_OP_SQUEEZE, TC_OP_UNSQUEEZE, TC_OP_CLONE,
                                     TC_OP_ALIAS, TC_OP_DETACH, TC_OP_CONTIGUOUS, TC_OP_LIFT_FRESH_COPY,
                                     TC_OP_FLATTEN_USING_INTS};
    for (size_t i = 0; i < sizeof same_order / sizeof same_order[0]; i++) t[same_order[i]] = cpu_same_order;
    t[TC_OP_TO_COPY] = cpu_to_copy;
    t[TC_OP_PERMUTE] = cpu_view;
    t[TC_OP_T] = cpu_view;
    t[TC_OP_TRANSPOSE_INT] = cpu_view;
    t[TC_OP_EXPAND] = cpu_view;
    t[TC_OP_REPEAT] = cpu_view;
    t[TC_OP_SLICE_TENSOR] = cpu_view;
    t[TC_OP_SELECT_INT] = cpu_view;
    t[TC_OP_SPLIT_WITH_SIZES] = cpu_split;
    t[TC_OP_SPLIT_TENSOR] = cpu_split;
    t[TC_OP_CAT] = cpu_cat;
}
