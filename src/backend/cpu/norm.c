/* CPU kernels for the normalization ops. Statistics are computed in f32 whatever the storage type
 * (two passes: the mean, then the mean squared deviation from it) and each output is rounded once.
 * Every row or group is owned by one chunk, so results do not depend on the thread count. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>

static float row_sum(const float *p, int64_t n) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += p[k + j];
    float t = 0;
    for (; k < n; k++) t += p[k];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

static float row_sqdev(const float *p, int64_t n, float mean) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) {
            float d = p[k + j] - mean;
            a[j] += d * d;
        }
    float t = 0;
    for (; k < n; k++) t += (p[k] - mean) * (p[k] - mean);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

/* Mean and 1/sqrt(biased variance + eps) of n values; an empty set gives mean 0 and rstd NaN, as
 * PyTorch's layer norm does. */
static void moments(const float *p, int64_t n, float eps, float *mean, float *rstd) {
    float m = n ? row_sum(p, n) / (float)n : 0.0f;
    float var = n ? row_sqdev(p, n, m) / (float)n : NAN;
    *mean = m;
    *rstd = 1.0f / sqrtf(var + eps);
}

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

static tc_status oom(const tc_cpu_call *c) { return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory"); }

static tc_status reject_f64(const tc_cpu_call *c, const tc_cpu_tensor *x) {
    return x->dtype == TC_F64 ? tc_cpu_fail(c, TC_ERR_DTYPE, "f64 is not supported by the cpu normalization kernels")
                              : TC_OK;
}

/* An optional parameter as f32, NULL when absent or out of memory (*bad set then). */
static const float *param_f32(const tc_cpu_call *c, int argi, int slot, bool *bad) {
    const tc_cpu_tensor *t = tc_cpu_in(c, argi);
    if (!t) return NULL;
    const float *p = input_f32(c, t, slot);
    if (!p) *bad = true;
    return p;
}

/* --- batch norm with running statistics ---------------------------------------------------- */

typedef struct {
    const float *x, *scale, *shift;
    float *y;
    int64_t C, inner;
} bn_job;

static void bn_chunk(void *ctx, int64_t b, int64_t e) {
    const bn_job *j = ctx;
    for (int64_t p = b; p < e; p++) {
        float s = j->scale[p % j->C], t = j->shift[p % j->C];
        const float *x = j->x + p * j->inner;
        float *y = j->y + p * j->inner;
        for (int64_t k = 0; k < j->inner; k++) y[k] = x[k] * s + t;
    }
}

static tc_status cpu_batch_norm(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    TC_TRY(reject_f64(c, x));
    int64_t C = x->dims[1], inner = 1;
    for (int i = 2; i < x->rank; i++) inner *= x->dims[i];
    static const char *names[] = {"input", "weight", "bias", "running_mean", "running_var"};
    for (int a = 1; a <= 4; a++) {
        const tc_cpu_tensor *p = tc_cpu_in(c, a);
        if (p && p->numel != C)
            return tc_cpu_fail(c, TC_ERR_SHAPE, "%s has %lld values for %lld channels", names[a], (long long)p->numel,
                               (long long)C);
    }
    bool bad = false;
    const float *w = param_f32(c, 1, 2, &bad), *bias = param_f32(c, 2, 3, &bad);
    const float *rm = param_f32(c, 3, 4, &bad), *rv = param_f32(c, 4, 5, &bad);
    float *scale = tc_cpu_scratch(c, 6, sizeof(float) * (size_t)(2 * C + 1));
    bn_job j = {input_f32(c, x, 0), scale, scale + C, output_f32(c, c->out[0], 1), C, inner};
    if (bad || !scale || !j.x || !j.y) return oom(c);
    float eps = (float)tc_node_float(c->node, 6);
    float *save_mean = c->out[1]->data, *save_invstd = c->out[2]->data; /* f32 by shape inference */
    for (int64_t k = 0; k < C; k++) {
        float invstd = 1.0f / sqrtf(rv[k] + eps);
        float s = w ? w[k] * invstd : invstd;
        save_mean[k] = rm[k];
        save_invstd[k] = invstd;
        scale[k] = s;
        scale[C + k] = (bias ? bias[k] : 0.0f) - rm[k] * s;
    }
    tc_parallel_for(x->numel ? x->dims[0] * C : 0, 16384 / (inner + 1) + 1, bn_chunk, &j);
    store_f32(c->out[0], j.y);
    return TC_OK;
}

/* --- layer norm ------------------------------------------------------------------------------ */

typedef struct {
    const float *x, *w, *b;
    float *y, *mean, *rstd;
    int64_t n;
    float eps;
} ln_job;

static void ln_chunk(void *ctx, int64_t b, int64_t e) {
    const ln_job *j = ctx;
    int64_t n = j->n;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * n;
        float *y = j->y + r * n;
        float m, rs;
        moments(x, n, j->eps, &m, &rs);
        j->mean[r] = m;
        j->rstd[r] = rs;
        if (j->w && j->b)
            for (int64_t k = 0; k < n; k++) y[k] = (x[k] - m) * rs * j->w[k] + j->b[k];
        else if (j->w)
            for (int64_t k = 0; k < n; k++) y[k] = (x[k] - m) * rs * j->w[k];
        else if (j->b)
            for (int64_t k = 0; k < n; k++) y[k] = (x[k] - m) * rs + j->b[k];
        else
            for (int64_t k = 0; k < n; k++) y[k] = (x[k] - m) * rs;
    }
}

static tc_status cpu_layer_norm(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    TC_TRY(reject_f64(c, x));
    int64_t rows, n;
    tc_error why = {0};
    tc_status ls = tc_layer_norm_rows(c->g, c->node, c->symvals, x->rank, x->dims, &rows, &n, &why);
    if (ls != TC_OK) return tc_cpu_fail(c, ls, "%s", why.msg);
    for (int a = 2; a <= 3; a++) {
        const tc_cpu_tensor *p = tc_cpu_in(c, a);
        if (p && p->numel != n)
            return tc_cpu_fail(c, TC_ERR_SHAPE, "%s has %lld values, normalized_shape holds %lld",
                               a == 2 ? "weight" : "bias", (long long)p->numel, (long long)n);
    }
    bool bad = false;
    ln_job j = {input_f32(c, x, 0), param_f32(c, 2, 2, &bad), param_f32(c, 3, 3, &bad),
                output_f32(c, c->out[0], 1), output_f32(c, c->out[1], 4), output_f32(c, c->out[2], 5),
                n, (float)tc_node_float(c->node, 4)};
    if (bad || !j.x || !j.y || !j.mean || !j.rstd) return oom(c);
    tc_parallel_for(rows, 16384 / (n + 1) + 1, ln_chunk, &j);
    store_f32(c->out[0], j.y);
    store_f32(c->out[1], j.mean);
    store_f32(c->out[2], j.rstd);
    return TC_OK;
}

/* --- group norm ------------------------------------------------------------------------------ */

typedef struct {
    const float *x, *w, *b;
    float *y, *mean, *rstd;
    int64_t C, G, hw;
    float eps;
} gn_job;

static void gn_chunk(void *ctx, int64_t b, int64_t e) {
    const gn_job *j = ctx;
    int64_t cg = j->C / j->G, hw = j->hw;
    for (int64_t t = b; t < e; t++) {
        int64_t g = t % j->G;
        const float *x = j->x + t * cg * hw;
        float *y = j->y + t * cg * hw;
        float m, rs;
        moments(x, cg * hw, j->eps, &m, &rs);
        j->mean[t] = m;
        j->rstd[t] = rs;
        for (int64_t ci = 0; ci < cg; ci++) {
            int64_t ch = g * cg + ci;
            float s = j->w ? rs * j->w[ch] : rs;
            float sh = j->b ? j->b[ch] : 0.0f;
            for (int64_t k = 0; k < hw; k++) y[ci * hw + k] = (x[ci * hw + k] - m) * s + sh;
        }
    }
}

static tc_status cpu_group_norm(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    TC_TRY(reject_f64(c, x));
    int64_t N = tc_cpu_int(c, 3), C = tc_cpu_int(c, 4), HxW = tc_cpu_int(c, 5), G = tc_cpu_int(c, 6);
    int64_t hw = 1;
    for (int i = 2; i < x->rank; i++) hw *= x->dims[i];
    if (N != x->dims[0] || C != x->dims[1] || HxW != hw)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "N, C, HxW = %lld, %lld, %lld do not match the input (%lld, %lld, %lld)",
                           (long long)N, (long long)C, (long long)HxW, (long long)x->dims[0], (long long)x->dims[1],
                           (long long)hw);
    if (C % G != 0)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "the %lld channels are not divisible into %lld groups", (long long)C,
                           (long long)G);
    for (int a = 1; a <= 2; a++) {
        const tc_cpu_tensor *p = tc_cpu_in(c, a);
        if (p && p->numel != C)
            return tc_cpu_fail(c, TC_ERR_SHAPE, "%s has %lld values for %lld channels", a == 1 ? "weight" : "bias",
                               (long long)p->numel, (long long)C);
    }
    bool bad = false;
    gn_job j = {input_f32(c, x, 0), param_f32(c, 1, 2, &bad), param_f32(c, 2, 3, &bad),
                output_f32(c, c->out[0], 1), output_f32(c, c->out[1], 4), output_f32(c, c->out[2], 5),
                C, G, hw, (float)tc_node_float(c->node, 7)};
    if (bad || !j.x || !j.y || !j.mean || !j.rstd) return oom(c);
    tc_parallel_for(N * G, 16384 / (C / G * hw + 1) + 1, gn_chunk, &j);
    store_f32(c->out[0], j.y);
    store_f32(c->out[1], j.mean);
    store_f32(c->out[2], j.rstd);
    return TC_OK;
}

void tc_cpu_register_norm(tc_cpu_kernel *t) {
    t[TC_OP_BATCH_NORM_NO_TRAINING] = cpu_batch_norm;
    t[TC_OP_LAYER_NORM] = cpu_layer_norm;
    t[TC_OP_GROUP_NORM] = cpu_group_norm;
}
