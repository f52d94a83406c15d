/* CPU kernels for aten.convolution (1-D and 2-D; a 1-D convolution is the 2-D one with H = 1).
 * Ordinary convolutions are im2col + GEMM per image and group, 1x1 stride-1 unpadded ones a plain
 * GEMM, depthwise ones a direct loop, transposed ones GEMM + col2im. f16/bf16 are widened to f32
 * once and rounded once. */
#include "backend/cpu/cpu.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/im2col.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <stdatomic.h>
#include <string.h>

typedef struct {
    int64_t N, C, H, W;       /* input */
    int64_t Cout, OH, OW;     /* output */
    int64_t KH, KW, G;
    int64_t sh, sw, ph, pw, dh, dw;
    const float *x, *w, *b;
    float *y;
    float *col;               /* per-worker column buffers, col_size floats each */
    int64_t col_size;
    atomic_int next_buf;
} conv_job;

static void fill_bias(const conv_job *j, float *y, int64_t oc0, int64_t count, int64_t plane) {
    for (int64_t k = 0; k < count; k++) {
        float v = j->b ? j->b[oc0 + k] : 0.0f;
        float *p = y + k * plane;
        for (int64_t i = 0; i < plane; i++) p[i] = v;
    }
}

/* One (image, group) of an ordinary convolution. col is this worker's column buffer. */
static void conv_task(const conv_job *j, int64_t n, int64_t g, float *col) {
    int64_t Cg = j->C / j->G, Coutg = j->Cout / j->G, P = j->OH * j->OW, Kd = Cg * j->KH * j->KW;
    const float *xg = j->x + (n * j->C + g * Cg) * j->H * j->W;
    const float *wg = j->w + g * Coutg * Kd;
    float *yg = j->y + (n * j->Cout + g * Coutg) * P;
    if (j->b) fill_bias(j, yg, g * Coutg, Coutg, P);
    float beta = j->b ? 1.0f : 0.0f;
    bool pointwise = j->KH == 1 && j->KW == 1 && j->sh == 1 && j->sw == 1 && j->ph == 0 && j->pw == 0;
    if (pointwise) {
        tc_sgemm(false, false, Coutg, P, Cg, 1.0f, wg, Cg, xg, P, beta, yg, P);
        return;
    }
    tc_im2col_f32(xg, Cg, j->H, j->W, j->KH, j->KW, j->ph, j->pw, j->sh, j->sw, j->dh, j->dw, j->OH, j->OW, col);
    tc_sgemm(false, false, Coutg, P, Kd, 1.0f, wg, Kd, col, P, beta, yg, P);
}

/* One (image, group) of a transposed convolution: col = W_g^T x_g, then scattered by col2im. */
static void convt_task(const conv_job *j, int64_t n, int64_t g, float *col) {
    int64_t Cing = j->C / j->G, Coutg = j->Cout / j->G, HW = j->H * j->W, Kd = Coutg * j->KH * j->KW;
    const float *xg = j->x + (n * j->C + g * Cing) * HW;
    const float *wg = j->w + g * Cing * Kd;
    float *yg = j->y + (n * j->Cout + g * Coutg) * j->OH * j->OW;
    fill_bias(j, yg, g * Coutg, Coutg, j->OH * j->OW);
    tc_sgemm(true, false, Kd, HW, Cing, 1.0f, wg, Kd, xg, HW, 0.0f, col, HW);
    tc_col2im_f32(col, Coutg, j->OH, j->OW, j->KH, j->KW, j->ph, j->pw, j->sh, j->sw, j->dh, j->dw, j->H, j->W, yg);
}

typedef struct {
    conv_job *j;
    bool transposed;
} task_ctx;

static void tasks_chunk(void *ctx, int64_t b, int64_t e) {
    task_ctx *t = ctx;
    conv_job *j = t->j;
    float *col = j->col + (int64_t)atomic_fetch_add(&j->next_buf, 1) * j->col_size;
    for (int64_t i = b; i < e; i++) {
        if (t->transposed) convt_task(j, i / j->G, i % j->G, col);
        else conv_task(j, i / j->G, i % j->G, col);
    }
}

/* The ow range [lo, hi) with ow*stride + off inside [0, W). */
static void span(int64_t off, int64_t stride, int64_t W, int64_t OW, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / stride + 1;
    *lo = l < OW ? l : OW;
    *hi = h < OW ? h : OW;
    if (*hi < *lo) *hi = *lo;
}

/* Depthwise (groups == in_channels, one input channel per group): each output plane is a sum of
 * shifted, scaled input rows, with no column matrix. */
static void depthwise_chunk(void *ctx, int64_t b, int64_t e) {
    const conv_job *j = ctx;
    int64_t mult = j->Cout / j->G, P = j->OH * j->OW;
    int64_t H = j->H, W = j->W, OH = j->OH, OW = j->OW, sh = j->sh, sw = j->sw;
    for (int64_t t = b; t < e; t++) {
        int64_t n = t / j->Cout, oc = t % j->Cout, ic = oc / mult;
        const float *xp = j->x + (n * j->C + ic) * H * W;
        const float *wp = j->w + oc * j->KH * j->KW;
        float *yp = j->y + t * P;
        float bv = j->b ? j->b[oc] : 0.0f;
        for (int64_t i = 0; i < P; i++) yp[i] = bv;
        /* one tap at a time over the whole plane: the plane stays in cache and the inner loop is
         * a contiguous axpy when the stride is 1 */
        for (int64_t kh = 0; kh < j->KH; kh++) {
            for (int64_t kw = 0; kw < j->KW; kw++) {
                float wv = wp[kh * j->KW + kw];
                int64_t off = kw * j->dw - j->pw, lo, hi;
                span(off, sw, W, OW, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * sh - j->ph + kh * j->dh;
                    if (ih < 0 || ih >= H) continue;
                    float *restrict dst = yp + oh * OW;
                    const float *restrict src = xp + ih * W;
                    if (sw == 1) {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] += wv * src[ow + off];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] += wv * src[ow * sw + off];
                    }
                }
            }
        }
    }
}

static void params(const tc_cpu_call *c, int argi, int nsp, int64_t *out) {
    int64_t v[TC_MAX_RANK * 2];
    int64_t n = tc_cpu_ints(c, argi, v, TC_MAX_RANK * 2);
    for (int k = 0; k < nsp; k++) out[k] = n <= 0 ? 0 : v[n == 1 ? 0 : k];
}

static tc_status cpu_convolution(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0), *w = tc_cpu_in(c, 1), *b = tc_cpu_in(c, 2);
    tc_cpu_tensor *y = c->out[0];
    int nsp = w->rank - 2;
    if (nsp != 1 && nsp != 2)
        return tc_cpu_fail(c, TC_ERR_UNSUPPORTED, "%d-D convolution is not supported on cpu", nsp);
    if (x->dtype == TC_F64) return tc_cpu_fail(c, TC_ERR_DTYPE, "f64 convolution is not supported on cpu");
    bool batched = x->rank == w->rank, transposed = tc_node_bool(c->node, 6);
    int64_t stride[2], pad[2], dil[2];
    params(c, 3, nsp, stride);
    params(c, 4, nsp, pad);
    params(c, 5, nsp, dil);
    conv_job j = {0};
    j.N = batched ? x->dims[0] : 1;
    j.C = x->dims[batched ? 1 : 0];
    j.Cout = y->dims[batched ? 1 : 0];
    j.G = tc_cpu_int(c, 8);
    const int64_t *xs = x->dims + (batched ? 2 : 1), *ys = y->dims + (batched ? 2 : 1);
    if (nsp == 2) {
        j.H = xs[0], j.W = xs[1], j.OH = ys[0], j.OW = ys[1], j.KH = w->dims[2], j.KW = w->dims[3];
        j.sh = stride[0], j.sw = stride[1], j.ph = pad[0], j.pw = pad[1], j.dh = dil[0], j.dw = dil[1];
    } else {
        j.H = 1, j.W = xs[0], j.OH = 1, j.OW = ys[0], j.KH = 1, j.KW = w->dims[2];
        j.sh = 1, j.sw = stride[0], j.ph = 0, j.pw = pad[0], j.dh = 1, j.dw = dil[0];
    }
    int64_t cin_w = transposed ? w->dims[0] : w->dims[1] * j.G;
    if (j.C != cin_w)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "input has %lld channels at run time, the weight expects %lld",
                           (long long)j.C, (long long)cin_w);
    if (!transposed && (j.H + 2 * j.ph < j.dh * (j.KH - 1) + 1 || j.W + 2 * j.pw < j.dw * (j.KW - 1) + 1))
        return tc_cpu_fail(c, TC_ERR_SHAPE, "input of size %lldx%lld (padded %lldx%lld) is smaller than the kernel",
                           (long long)j.H, (long long)j.W, (long long)(j.H + 2 * j.ph), (long long)(j.W + 2 * j.pw));
    j.x = x->numel ? tc_cpu_as_f32(c, x, 0) : NULL;
    j.w = w->numel ? tc_cpu_as_f32(c, w, 1) : NULL;
    j.b = b ? tc_cpu_as_f32(c, b, 2) : NULL;
    j.y = tc_cpu_out_f32(c, y, 3);
    if ((x->numel && !j.x) || (w->numel && !j.w) || (b && !j.b) || !j.y)
        return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");

    bool depthwise = !transposed && j.G == j.C && j.G > 1 && w->dims[1] == 1;
    if (depthwise) {
        int64_t P = j.OH * j.OW;
        tc_parallel_for(j.N * j.Cout, (1 << 14) / (P * j.KH * j.KW + 1) + 1, depthwise_chunk, &j);
    } else {
        int64_t tasks = j.N * j.G;
        int threads = tc_parallel_threads();
        /* many small (image, group) products run side by side; few large ones let the GEMM split */
        int workers = tasks >= 2 * (int64_t)threads ? threads : 1;
        j.col_size = transposed ? (j.Cout / j.G) * j.KH * j.KW * j.H * j.W : (j.C / j.G) * j.KH * j.KW * j.OH * j.OW;
        j.col = tc_cpu_scratch(c, 4, (size_t)(j.col_size * workers + 1) * sizeof(float));
        if (!j.col) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for a %lld-element column buffer",
                                       (long long)j.col_size * workers);
        atomic_init(&j.next_buf, 0);
        task_ctx t = {&j, transposed};
        if (workers > 1) {
            tc_parallel_for(tasks, (tasks + workers - 1) / workers, tasks_chunk, &t);
        } else {
            for (int64_t i = 0; i < tasks; i++) {
                if (transposed) convt_task(&j, i / j.G, i % j.G, j.col);
                else conv_task(&j, i / j.G, i % j.G, j.col);
            }
        }
    }
    tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

void tc_cpu_register_conv(tc_cpu_kernel *t) { t[TC_OP_CONVOLUTION] = cpu_convolution; }
