/* CPU kernels for pooling (max with indices, average, adaptive average), nearest and bilinear
 * resizing and constant padding. Index and weight arithmetic copies PyTorch's CPU kernels (float
 * source-index math, the same clamping) so that resized pixels pick the same neighbours. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    bool count_include_pad;
    int64_t divisor; /* 0: none */
    const float *x;
    float *y;
    int64_t *idx;
    /* resizing tables */
    const int64_t *h0, *h1, *w0, *w1;
    const float *hl0, *hl1, *wl0, *wl1;
    const void *xb;
    void *yb;
    size_t es;
} pool_job;

static tc_status oom(const tc_cpu_call *c) { return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory"); }

static void read_pair(const tc_cpu_call *c, int argi, const int64_t *dflt, int64_t *out) {
    tc_node_pair_eval(c->g, c->node, argi, c->symvals, dflt, out);
}

static void max_pool_chunk(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t pl = b; pl < e; pl++) {
        const float *x = j->x + pl * j->H * j->W;
        float *y = j->y + pl * j->OH * j->OW;
        int64_t *ix = j->idx + pl * j->OH * j->OW;
        for (int64_t oh = 0; oh < j->OH; oh++) {
            int64_t ih0 = oh * j->sh - j->ph;
            int64_t ih1 = ih0 + (j->kh - 1) * j->dh + 1;
            if (ih1 > j->H) ih1 = j->H;
            while (ih0 < 0) ih0 += j->dh;
            for (int64_t ow = 0; ow < j->OW; ow++) {
                int64_t iw0 = ow * j->sw - j->pw;
                int64_t iw1 = iw0 + (j->kw - 1) * j->dw + 1;
                if (iw1 > j->W) iw1 = j->W;
                while (iw0 < 0) iw0 += j->dw;
                int64_t best = ih0 * j->W + iw0;
                float m = -INFINITY;
                for (int64_t ih = ih0; ih < ih1; ih += j->dh)
                    for (int64_t iw = iw0; iw < iw1; iw += j->dw) {
                        float v = x[ih * j->W + iw];
                        if (v > m || isnan(v)) m = v, best = ih * j->W + iw;
                    }
                y[oh * j->OW + ow] = m;
                ix[oh * j->OW + ow] = best;
            }
        }
    }
}

static int64_t planes_of(const tc_cpu_tensor *t) {
    int64_t p = 1;
    for (int i = 0; i < t->rank - 2; i++) p *= t->dims[i];
    return p;
}

static void set_spatial(pool_job *j, const tc_cpu_tensor *x, const tc_cpu_tensor *y) {
    j->H = x->dims[x->rank - 2], j->W = x->dims[x->rank - 1];
    j->OH = y->dims[y->rank - 2], j->OW = y->dims[y->rank - 1];
}

static int64_t plane_grain(const pool_job *j, int64_t work_per_out) {
    int64_t per = j->OH * j->OW * work_per_out + 1;
    return (1 << 15) / per + 1;
}

static tc_status cpu_max_pool2d_with_indices(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0], *yi = c->out[1];
    pool_job j = {0};
    int64_t k[2], s[2], p[2], d[2];
    read_pair(c, 1, NULL, k);
    read_pair(c, 2, k, s);
    read_pair(c, 3, NULL, p);
    read_pair(c, 4, NULL, d);
    j.kh = k[0], j.kw = k[1], j.sh = s[0], j.sw = s[1], j.ph = p[0], j.pw = p[1], j.dh = d[0], j.dw = d[1];
    set_spatial(&j, x, y);
    j.x = tc_cpu_as_f32(c, x, 0);
    j.y = tc_cpu_out_f32(c, y, 1);
    j.idx = yi->data;
    if (!j.x || !j.y) return oom(c);
    tc_parallel_for(planes_of(x), plane_grain(&j, j.kh * j.kw), max_pool_chunk, &j);
    tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

static void avg_pool_chunk(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t pl = b; pl < e; pl++) {
        const float *x = j->x + pl * j->H * j->W;
        float *y = j->y + pl * j->OH * j->OW;
        for (int64_t oh = 0; oh < j->OH; oh++)
            for (int64_t ow = 0; ow < j->OW; ow++) {
                int64_t ih0 = oh * j->sh - j->ph, iw0 = ow * j->sw - j->pw;
                int64_t ih1 = ih0 + j->kh, iw1 = iw0 + j->kw;
                if (ih1 > j->H + j->ph) ih1 = j->H + j->ph;
                if (iw1 > j->W + j->pw) iw1 = j->W + j->pw;
                int64_t pool_size = (ih1 - ih0) * (iw1 - iw0);
                if (ih0 < 0) ih0 = 0;
                if (iw0 < 0) iw0 = 0;
                if (ih1 > j->H) ih1 = j->H;
                if (iw1 > j->W) iw1 = j->W;
                float *dst = &y[oh * j->OW + ow];
                if (ih0 >= ih1 || iw0 >= iw1) {
                    *dst = 0.0f;
                    continue;
                }
                float sum = 0.0f;
                for (int64_t ih = ih0; ih < ih1; ih++)
                    for (int64_t iw = iw0; iw < iw1; iw++) sum += x[ih * j->W + iw];
                int64_t div = j->divisor ? j->divisor : j->count_include_pad ? pool_size : (ih1 - ih0) * (iw1 - iw0);
                *dst = sum / (float)div;
            }
    }
}

static tc_status cpu_avg_pool2d(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    pool_job j = {0};
    int64_t k[2], s[2], p[2];
    read_pair(c, 1, NULL, k);
    read_pair(c, 2, k, s);
    read_pair(c, 3, NULL, p);
    j.kh = k[0], j.kw = k[1], j.sh = s[0], j.sw = s[1], j.ph = p[0], j.pw = p[1];
    j.count_include_pad = tc_node_bool(c->node, 5);
    j.divisor = tc_node_is_none(c->node, 6) ? 0 : tc_node_int(c->node, 6);
    set_spatial(&j, x, y);
    j.x = tc_cpu_as_f32(c, x, 0);
    j.y = tc_cpu_out_f32(c, y, 1);
    if (!j.x || !j.y) return oom(c);
    tc_parallel_for(planes_of(x), plane_grain(&j, j.kh * j.kw), avg_pool_chunk, &j);
    tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

/* PyTorch's adaptive window bounds: [floor(o*in/out), ceil((o+1)*in/out)). */
static int64_t win_start(int64_t o, int64_t out, int64_t in) { return (o / out) * in + ((o % out) * in) / out; }
static int64_t win_end(int64_t o, int64_t out, int64_t in) { return 1 + ((o + 1) * in - 1) / out; }

static void adaptive_chunk(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t pl = b; pl < e; pl++) {
        const float *x = j->x + pl * j->H * j->W;
        float *y = j->y + pl * j->OH * j->OW;
        for (int64_t oh = 0; oh < j->OH; oh++) {
            int64_t ih0 = win_start(oh, j->OH, j->H), ih1 = win_end(oh, j->OH, j->H);
            for (int64_t ow = 0; ow < j->OW; ow++) {
                int64_t iw0 = win_start(ow, j->OW, j->W), iw1 = win_end(ow, j->OW, j->W);
                float sum = 0.0f;
                for (int64_t ih = ih0; ih < ih1; ih++)
                    for (int64_t iw = iw0; iw < iw1; iw++) sum += x[ih * j->W + iw];
                y[oh * j->OW + ow] = sum / (float)((ih1 - ih0) * (iw1 - iw0));
            }
        }
    }
}

static tc_status cpu_adaptive_avg_pool2d(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    pool_job j = {0};
    set_spatial(&j, x, y);
    if (j.H == 0 || j.W == 0) return tc_cpu_fail(c, TC_ERR_SHAPE, "input spatial dims are empty at run time");
    j.x = tc_cpu_as_f32(c, x, 0);
    j.y = tc_cpu_out_f32(c, y, 1);
    if (!j.x || !j.y) return oom(c);
    tc_parallel_for(planes_of(x), plane_grain(&j, (j.H / (j.OH ? j.OH : 1) + 1) * (j.W / (j.OW ? j.OW : 1) + 1)),
                    adaptive_chunk, &j);
    tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

/* The scale PyTorch's kernels use: 1/scale_factor when one was given, else in/out, in float. */
static float scale_value(bool has_scale, double sf, int64_t in, int64_t out) {
    return has_scale && sf > 0 ? (float)(1.0 / sf) : (float)in / (float)out;
}

static int64_t nearest_idx(int64_t o, int64_t in, int64_t out, bool has_scale, double sf) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    float scale = scale_value(has_scale, sf, in, out);
    int64_t i = (int64_t)floorf((float)o * scale);
    return i < in - 1 ? i : in - 1;
}

static void nearest_chunk(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    size_t es = j->es;
    for (int64_t r = b; r < e; r++) {
        int64_t pl = r / j->OH, oh = r % j->OH;
        const char *src = (const char *)j->xb + ((size_t)(pl * j->H + j->h0[oh]) * (size_t)j->W) * es;
        char *dst = (char *)j->yb + (size_t)r * (size_t)j->OW * es;
        if (es == 4) {
            for (int64_t ow = 0; ow < j->OW; ow++) ((uint32_t *)dst)[ow] = ((const uint32_t *)src)[j->w0[ow]];
        } else if (es == 2) {
            for (int64_t ow = 0; ow < j->OW; ow++) ((uint16_t *)dst)[ow] = ((const uint16_t *)src)[j->w0[ow]];
        } else {
            for (int64_t ow = 0; ow < j->OW; ow++) memcpy(dst + (size_t)ow * es, src + (size_t)j->w0[ow] * es, es);
        }
    }
}

static void scales_of(const tc_cpu_call *c, int argi, bool *has, double *sf) {
    has[0] = has[1] = !tc_node_is_none(c->node, argi);
    sf[0] = sf[1] = 0;
    if (has[0]) {
        const tc_arg *a = tc_node_arg_at(c->node, argi);
        sf[0] = a->u.floats[0], sf[1] = a->u.floats[1];
    }
}

static tc_status cpu_upsample_nearest2d(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    pool_job j = {0};
    set_spatial(&j, x, y);
    bool has[2];
    double sf[2];
    scales_of(c, 2, has, sf);
    int64_t *tab = tc_cpu_scratch(c, 0, (size_t)(j.OH + j.OW) * sizeof(int64_t));
    if (!tab) return oom(c);
    for (int64_t o = 0; o < j.OH; o++) tab[o] = nearest_idx(o, j.H, j.OH, has[0], sf[0]);
    for (int64_t o = 0; o < j.OW; o++) tab[j.OH + o] = nearest_idx(o, j.W, j.OW, has[1], sf[1]);
    j.h0 = tab, j.w0 = tab + j.OH;
    j.xb = x->data, j.yb = y->data, j.es = tc_dtype_size(x->dtype);
    tc_parallel_for(planes_of(x) * j.OH, (1 << 14) / (j.OW + 1) + 1, nearest_chunk, &j);
    return TC_OK;
}

/* Source indices and weights of one axis (PyTorch's compute_source_index_and_lambda). */
static void linear_axis(int64_t in, int64_t out, bool align, bool has_scale, double sf, int64_t *i0, int64_t *i1,
                        float *l0, float *l1) {
    float scale = align ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : scale_value(has_scale, sf, in, out);
    for (int64_t o = 0; o < out; o++) {
        if (out == in) {
            i0[o] = i1[o] = o, l0[o] = 1.0f, l1[o] = 0.0f;
            continue;
        }
        float real = align ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
        if (!align && real < 0.0f) real = 0.0f;
        int64_t a = (int64_t)floorf(real);
        if (a > in - 1) a = in - 1;
        float lam = real - (float)a;
        lam = lam < 0.0f ? 0.0f : lam > 1.0f ? 1.0f : lam;
        i0[o] = a;
        i1[o] = a + (a < in - 1 ? 1 : 0);
        l1[o] = lam;
        l0[o] = 1.0f - lam;
    }
}

static void bilinear_chunk(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        int64_t pl = r / j->OH, oh = r % j->OH;
        const float *x0 = j->x + (pl * j->H + j->h0[oh]) * j->W, *x1 = j->x + (pl * j->H + j->h1[oh]) * j->W;
        float a0 = j->hl0[oh], a1 = j->hl1[oh];
        float *dst = j->y + r * j->OW;
        for (int64_t ow = 0; ow < j->OW; ow++) {
            int64_t w0 = j->w0[ow], w1 = j->w1[ow];
            float b0 = j->wl0[ow], b1 = j->wl1[ow];
            dst[ow] = a0 * (b0 * x0[w0] + b1 * x0[w1]) + a1 * (b0 * x1[w0] + b1 * x1[w1]);
        }
    }
}

static tc_status cpu_upsample_bilinear2d(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    pool_job j = {0};
    set_spatial(&j, x, y);
    bool align = tc_node_bool(c->node, 2), has[2];
    double sf[2];
    scales_of(c, 3, has, sf);
    size_t n = (size_t)(j.OH + j.OW);
    int64_t *it = tc_cpu_scratch(c, 2, 2 * n * sizeof(int64_t));
    float *ft = tc_cpu_scratch(c, 3, 2 * n * sizeof(float));
    if (!it || !ft) return oom(c);
    int64_t *h0 = it, *h1 = it + j.OH, *w0 = it + 2 * j.OH, *w1 = w0 + j.OW;
    float *hl0 = ft, *hl1 = ft + j.OH, *wl0 = ft + 2 * j.OH, *wl1 = wl0 + j.OW;
    linear_axis(j.H, j.OH, align, has[0], sf[0], h0, h1, hl0, hl1);
    linear_axis(j.W, j.OW, align, has[1], sf[1], w0, w1, wl0, wl1);
    j.h0 = h0, j.h1 = h1, j.w0 = w0, j.w1 = w1, j.hl0 = hl0, j.hl1 = hl1, j.wl0 = wl0, j.wl1 = wl1;
    j.x = tc_cpu_as_f32(c, x, 0);
    j.y = tc_cpu_out_f32(c, y, 1);
    if (!j.x || !j.y) return oom(c);
    tc_parallel_for(planes_of(x) * j.OH, (1 << 13) / (j.OW + 1) + 1, bilinear_chunk, &j);
    tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

typedef struct {
    const tc_cpu_tensor *x;
    tc_cpu_tensor *y;
    int64_t left[TC_MAX_RANK];
    const char *fill; /* one output row of the pad value */
    size_t es;
} pad_job;

static void pad_chunk(void *ctx, int64_t b, int64_t e) {
    const pad_job *j = ctx;
    int r = j->y->rank;
    int64_t OL = j->y->dims[r - 1], IL = j->x->dims[r - 1], L = j->left[r - 1];
    int64_t lo = L > 0 ? L : 0, hi = IL + L < OL ? IL + L : OL;
    size_t es = j->es;
    for (int64_t row = b; row < e; row++) {
        char *dst = (char *)j->y->data + (size_t)(row * OL) * es;
        /* the input row this output row reads, or -1 when it lies in the padding */
        int64_t rem = row, in_row = 0, mul = 1;
        bool inside = hi > lo;
        for (int d = r - 2; d >= 0 && inside; d--) {
            int64_t od = rem % j->y->dims[d];
            rem /= j->y->dims[d];
            int64_t id = od - j->left[d];
            if (id < 0 || id >= j->x->dims[d]) inside = false;
            in_row += id * mul;
            mul *= j->x->dims[d];
        }
        if (!inside) {
            memcpy(dst, j->fill, (size_t)OL * es);
            continue;
        }
        const char *src = (const char *)j->x->data + (size_t)(in_row * IL) * es;
        memcpy(dst, j->fill, (size_t)lo * es);
        memcpy(dst + (size_t)lo * es, src + (size_t)(lo - L) * es, (size_t)(hi - lo) * es);
        memcpy(dst + (size_t)hi * es, j->fill, (size_t)(OL - hi) * es);
    }
}

static tc_status cpu_constant_pad_nd(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    pad_job j = {x, y, {0}, NULL, tc_dtype_size(y->dtype)};
    int64_t pad[TC_MAX_RANK * 2];
    int64_t n = tc_cpu_ints(c, 1, pad, TC_MAX_RANK * 2);
    for (int64_t k = 0; k < n / 2; k++) j.left[y->rank - 1 - k] = pad[2 * k];
    if (y->rank == 0) {
        memcpy(y->data, x->data, j.es);
        return TC_OK;
    }
    int64_t OL = y->dims[y->rank - 1];
    char *fill = tc_cpu_scratch(c, 0, (size_t)(OL + 1) * j.es);
    if (!fill) return oom(c);
    double v = tc_node_float(c->node, 2);
    if (tc_dtype_is_int(y->dtype) && tc_node_scalar_is_int(c->node, 2)) {
        int64_t iv = tc_node_int(c->node, 2);
        for (int64_t i = 0; i < OL; i++) tc_store_i64(fill, y->dtype, i, iv);
    } else {
        for (int64_t i = 0; i < OL; i++) tc_convert(&v, TC_F64, fill + (size_t)i * j.es, y->dtype, 1);
    }
    j.fill = fill;
    int64_t rows = y->numel / OL;
    tc_parallel_for(rows, (1 << 15) / (OL + 1) + 1, pad_chunk, &j);
    return TC_OK;
}

void tc_cpu_register_pool(tc_cpu_kernel *t) {
    t[TC_OP_MAX_POOL2D_WITH_INDICES] = cpu_max_pool2d_with_indices;
    t[TC_OP_AVG_POOL2D] = cpu_avg_pool2d;
    t[TC_OP_ADAPTIVE_AVG_POOL2D] = cpu_adaptive_avg_pool2d;
    t[TC_OP_UPSAMPLE_NEAREST2D_VEC] = cpu_upsample_nearest2d;
    t[TC_OP_UPSAMPLE_BILINEAR2D_VEC] = cpu_upsample_bilinear2d;
    t[TC_OP_CONSTANT_PAD_ND] = cpu_constant_pad_nd;
}
