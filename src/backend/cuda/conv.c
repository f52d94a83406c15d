/* CUDA kernel for aten.convolution (1-D as 2-D with H = 1, and 2-D; strided, padded, dilated,
 * grouped, transposed) through cuDNN's graph API: forward convolutions are cuDNN fprop with the
 * bias and a fused step's epilogue (relu, residual add, relu) as pointwise ops when an engine takes
 * them, the rest of the epilogue by our kernels; transposed ones cuDNN's data gradient.
 * Data stays NCHW; only when cuDNN has no NCHW engine for a case are input, filter and output
 * moved through scratch memory in NHWC, or, for f16/bf16, when that (transposes included) times
 * faster on the first run. Engines are timed on the first run too; plans are cached per node and
 * shape. */
#include "backend/cuda/cublaslt.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/cudnn.h"
#include "backend/cuda/kernels/activation.h"
#include "backend/cuda/kernels/conv.h"
#include "backend/cuda/kernels/elementwise.h"
#include "backend/cuda/kernels/pool.h"
#include "core/dtype.h"
#include "engine/serialize.h"

#include <stdio.h>
#include <string.h>

enum { SLOT_WS = 0, SLOT_X = 1, SLOT_W = 2, SLOT_Y = 3 };
enum { UID_X = 1, UID_W = 2, UID_Y = 3, UID_B = 4, UID_R = 5, UID_T = 10 /* virtual: UID_T + k */ };
enum { KEY_LEN = 39 };
#define CONV_KEY_TAG ((int64_t)0x636f6e76 << 8 | 1) /* "conv", key layout version 1 (see cublaslt.c) */
/* The stages after the convolution itself, in order: y = ep[n-1](... ep[0](conv(x, w))). */
enum { EP_BIAS = 1, EP_RELU = 2, EP_RESIDUAL = 3, EP_HARDSWISH = 4 }; /* EP_HARDSWISH: depthwise kernel only */
enum { MAX_EP = 4 };

typedef struct conv_shape {
    tc_dtype dtype;
    bool transposed, bias, allow_tf32;
    int64_t N, C, H, W, K, OH, OW, KH, KW, G; /* K: output channels */
    int64_t sh, sw, ph, pw, dh, dw;
    /* transposed: cuDNN writes a [N, K, OH2, OW2] data gradient with post paddings qh, qw; rows
     * and columns past OH2/OW2 (output_padding beyond what cuDNN's shape rule allows) get no
     * contribution and are zero before the bias */
    int64_t OH2, OW2, qh, qw;
    unsigned align_x, align_w, align_y, align_b, align_r;
    int n_ep;
    int ep[MAX_EP];
    /* how x, w, y and the residual are stored: channels-last (tc_cuda_tensor.nhwc) or NCHW */
    bool x_nhwc, w_nhwc, y_nhwc, r_nhwc;
} conv_shape;

typedef struct conv_plan {
    int64_t key[KEY_LEN];
    tc_cudnn_graph *graph;
    bool nhwc;
    int fused; /* how many of the epilogue stages run inside the cuDNN graph */
} conv_plan;

static void conv_plan_free(void *ptr) {
    conv_plan *p = ptr;
    if (!p) return;
    tc_cudnn_graph_free(p->graph);
    free(p);
}

static tc_status relay(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

/* The alignment promised to cuDNN, capped at 16 bytes (what its vectorized kernels want) so that
 * any usual pointer maps to one plan and new I/O pointers need no plan during graph capture. */
static unsigned alignment_of(const void *p) {
    uintptr_t v = (uintptr_t)p;
    unsigned a = 1;
    while (a < 16 && v % (2u * a) == 0) a *= 2;
    return a;
}

static void make_key(const conv_shape *s, int64_t *k) {
    int64_t v[KEY_LEN] = {CONV_KEY_TAG, s->dtype, s->transposed, s->bias, s->allow_tf32, s->N,  s->C,  s->H,  s->W,  s->K,  s->OH,
                          s->OW,    s->KH,         s->KW,   s->G,          s->sh, s->sw, s->ph, s->pw, s->dh, s->dw,
                          s->OH2,   s->OW2,        s->qh,   s->qw,         s->align_x, s->align_w, s->align_y,
                          s->align_b, s->align_r, s->n_ep, s->ep[0], s->ep[1], s->ep[2], s->ep[3],
                          s->x_nhwc,  s->w_nhwc,      s->y_nhwc, s->r_nhwc};
    memcpy(k, v, sizeof v);
}

static uint64_t key_hash(const int64_t *k) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)k;
    for (size_t i = 0; i < KEY_LEN * sizeof(int64_t); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Strides of a 4-D tensor with logical dims d ([N, C, H, W] or [K, C, R, S]) stored NCHW or NHWC. */
static void strides_for(const int64_t *d, bool nhwc, int64_t *s) {
    if (nhwc) {
        s[1] = 1, s[3] = d[1], s[2] = d[3] * d[1], s[0] = d[2] * d[3] * d[1];
    } else {
        s[3] = 1, s[2] = d[3], s[1] = d[2] * d[3], s[0] = d[1] * d[2] * d[3];
    }
}

static tc_status add_tensor(tc_cudnn_graph *g, int64_t uid, tc_dtype t, const int64_t *dims, const int64_t *strides,
                            unsigned align, bool is_virtual, tc_error *err) {
    tc_cudnn_tensor d = {0};
    d.uid = uid, d.dtype = t, d.rank = 4, d.alignment = align, d.is_virtual = is_virtual;
    memcpy(d.dims, dims, 4 * sizeof *dims);
    memcpy(d.strides, strides, 4 * sizeof *strides);
    return tc_cudnn_graph_tensor(g, &d, err);
}

/* One attempt: the graph for layout nhwc with the first `fused` epilogue stages as pointwise ops
 * (f32 virtual intermediates, one rounding into y), with or without the reduced-precision engines. */
static tc_status build_graph(const conv_shape *s, void *handle, bool nhwc, int fused, bool relaxed,
                             int64_t max_workspace, int candidates, tc_cudnn_graph **out, tc_error *err) {
    *out = NULL;
    tc_cudnn_graph *g;
    TC_TRY(tc_cudnn_graph_create(&g, err));
    /* the tensor the op reads (x, or dy for the data gradient), the filter, the one it writes */
    int64_t in_d[4] = {s->N, s->C, s->H, s->W};
    int64_t w_d[4] = {s->transposed ? s->C : s->K, s->transposed ? s->K / s->G : s->C / s->G, s->KH, s->KW};
    int64_t out_d[4] = {s->N, s->K, s->transposed ? s->OH2 : s->OH, s->transposed ? s->OW2 : s->OW};
    int64_t in_s[4], w_s[4], out_s[4];
    strides_for(in_d, nhwc, in_s);
    strides_for(w_d, nhwc, w_s);
    strides_for(out_d, nhwc, out_s);
    /* a tensor stored in the plan's layout is used in place; copies live in scratch memory, which
     * is 256-byte aligned */
    unsigned ax = s->x_nhwc == nhwc ? s->align_x : 16, aw = s->w_nhwc == nhwc || s->KH * s->KW == 1 ? s->align_w : 16;
    unsigned ay = s->y_nhwc == nhwc && !(s->transposed && (s->OH2 != s->OH || s->OW2 != s->OW)) ? s->align_y : 16;
    tc_cudnn_conv_params p = {.nsp = 2,
                              .pre_pad = {s->ph, s->pw},
                              .post_pad = {s->transposed ? s->qh : s->ph, s->transposed ? s->qw : s->pw},
                              .stride = {s->sh, s->sw},
                              .dilation = {s->dh, s->dw}};
    tc_status st = add_tensor(g, UID_X, s->dtype, in_d, in_s, ax, false, err);
    if (st == TC_OK) st = add_tensor(g, UID_W, s->dtype, w_d, w_s, aw, false, err);
    if (st == TC_OK) st = add_tensor(g, UID_Y, s->dtype, out_d, out_s, ay, false, err);
    for (int k = 0; st == TC_OK && k < fused; k++) {
        if (s->ep[k] == EP_BIAS) {
            int64_t b_d[4] = {1, s->K, 1, 1}, b_s[4];
            strides_for(b_d, nhwc, b_s);
            st = add_tensor(g, UID_B, s->dtype, b_d, b_s, s->align_b, false, err);
        } else if (s->ep[k] == EP_RESIDUAL) {
            st = add_tensor(g, UID_R, s->dtype, out_d, out_s, s->align_r, false, err);
        }
        /* the value entering stage k */
        if (st == TC_OK) st = add_tensor(g, UID_T + k, TC_F32, out_d, out_s, 16, true, err);
    }
    if (st == TC_OK) {
        if (s->transposed)
            st = tc_cudnn_graph_conv(g, TC_CUDNN_CONV_DGRAD, UID_Y, UID_W, UID_X, &p, err);
        else
            st = tc_cudnn_graph_conv(g, TC_CUDNN_CONV_FPROP, UID_X, UID_W, fused ? UID_T : UID_Y, &p, err);
    }
    for (int k = 0; st == TC_OK && k < fused; k++) {
        int64_t in = UID_T + k, res = k + 1 == fused ? UID_Y : UID_T + k + 1;
        if (s->ep[k] == EP_BIAS) st = tc_cudnn_graph_pointwise(g, CUDNN_POINTWISE_ADD, in, UID_B, res, err);
        else if (s->ep[k] == EP_RESIDUAL) st = tc_cudnn_graph_pointwise(g, CUDNN_POINTWISE_ADD, in, UID_R, res, err);
        else st = tc_cudnn_graph_pointwise(g, CUDNN_POINTWISE_RELU_FWD, in, 0, res, err);
    }
    if (st == TC_OK) {
        tc_cudnn_plan_options o = {0};
        o.forbid_tensor_cores = s->dtype == TC_F32 && !s->allow_tf32;
        o.allow_down_convert = relaxed;
        o.max_workspace = max_workspace;
        o.candidates = candidates;
        st = tc_cudnn_graph_build(g, handle, &o, err);
    }
    if (st != TC_OK) {
        tc_cudnn_graph_free(g);
        return st;
    }
    *out = g;
    return TC_OK;
}

static void params(const tc_cuda_call *c, int argi, int nsp, int64_t *out) {
    int64_t v[TC_MAX_RANK * 2];
    int64_t n = tc_cuda_ints(c, argi, v, TC_MAX_RANK * 2);
    for (int k = 0; k < nsp; k++) out[k] = n <= 0 ? 0 : v[n == 1 ? 0 : k];
}

/* The data-gradient output size and post padding of one spatial dim of a transposed conv: cuDNN
 * wants (out + pre + post - eff) / stride + 1 == in exactly, while PyTorch's output_padding may add
 * up to max(stride, dilation) - 1 more. Rows past out2 receive nothing from any input. */
static bool dgrad_dim(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d, int64_t *out2,
                      int64_t *post) {
    int64_t base = (in - 1) * s - 2 * p + d * (k - 1) + 1;
    int64_t opad = out - base;
    if (opad < 0) return false;
    int64_t e = opad < p ? opad : p;
    *out2 = base + e;
    *post = e <= s - 1 ? p : p - e;
    return *out2 >= 1;
}

/* The epilogue stages from `from` on, in place on y, by our kernels (one rounding per stage, as the
 * unfused nodes would round). */
static tc_status finish_epilogue(const tc_cuda_call *c, const conv_shape *s, int from, const tc_cuda_tensor *b,
                                 const tc_cuda_tensor *r, tc_cuda_tensor *y) {
    static const double no_params[3] = {0, 0, 0};
    for (int k = from; k < s->n_ep; k++) {
        if (s->ep[k] == EP_BIAS) /* channels-last: [N*H*W, K] rows, the channel varying fastest */
            TC_TRY(relay(c, tc_cuda_conv_channel_bias(y->data, b->data, s->dtype, s->y_nhwc ? s->N * s->OH * s->OW : s->N,
                                                      s->K, s->y_nhwc ? 1 : s->OH * s->OW, true, c->stream, c->err)));
        else if (s->ep[k] == EP_RESIDUAL)
            TC_TRY(tc_cuda_add_into(c, y, r));
        else
            TC_TRY(relay(c, tc_cuda_activation(s->ep[k] == EP_HARDSWISH ? TC_CUDA_A_HARDSWISH : TC_CUDA_A_RELU, y->data,
                                               y->dtype, y->data, y->dtype, y->numel, no_params, 0, 0, c->stream,
                                               c->err)));
    }
    return TC_OK;
}

/* The tensors cuDNN sees for plan p: the node's own buffers in NCHW, scratch copies (inputs
 * transposed here) in NHWC or when a transposed convolution's output is cropped afterwards. */
typedef struct conv_io {
    int n;
    int64_t uids[5];
    void *ptrs[5];
    void *xp, *yp, *ws;
    bool cropped;
    int64_t out_sp;
} conv_io;

static tc_status prepare_io(const tc_cuda_call *c, const conv_shape *s, const conv_plan *p, const tc_cuda_tensor *x,
                            const tc_cuda_tensor *w, const tc_cuda_tensor *b, const tc_cuda_tensor *r,
                            tc_cuda_tensor *y, int64_t wsb, conv_io *io) {
    memset(io, 0, sizeof *io);
    size_t es = tc_dtype_size(s->dtype);
    io->cropped = s->transposed && (s->OH2 != s->OH || s->OW2 != s->OW);
    io->out_sp = s->transposed ? s->OH2 * s->OW2 : s->OH * s->OW;
    int64_t core = s->N * s->K * io->out_sp; /* elements cuDNN writes */
    void *xp = x->data, *wp = w->data, *yp = y->data;
    /* x and w in the plan's layout: a transposed copy when stored in the other one (the scratch
     * for x also holds a cropped NHWC output before its crop) */
    if (s->x_nhwc != p->nhwc || (p->nhwc && io->cropped)) {
        size_t xbytes = (size_t)x->numel * es, cbytes = io->cropped ? (size_t)core * es : 0;
        xp = tc_cuda_scratch(c, SLOT_X, xbytes > cbytes ? xbytes : cbytes);
        if (!xp) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no scratch memory for a transposed input");
        if (s->x_nhwc == p->nhwc)
            TC_CUDA_TRY(cudaMemcpyAsync(xp, x->data, xbytes, cudaMemcpyDeviceToDevice, (cudaStream_t)c->stream),
                        c->err);
        else if (p->nhwc)
            TC_TRY(relay(c, tc_cuda_transpose_batched(x->data, xp, s->N, s->C, s->H * s->W, es, c->stream, c->err)));
        else
            TC_TRY(relay(c, tc_cuda_transpose_batched(x->data, xp, s->N, s->H * s->W, s->C, es, c->stream, c->err)));
    }
    if (s->w_nhwc != p->nhwc && s->KH * s->KW != 1) { /* a 1x1 kernel is the same memory in both */
        wp = tc_cuda_scratch(c, SLOT_W, (size_t)w->numel * es);
        if (!wp) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no scratch memory for a transposed weight");
        if (p->nhwc)
            TC_TRY(relay(c, tc_cuda_transpose_batched(w->data, wp, w->dims[0], w->dims[1], s->KH * s->KW, es,
                                                      c->stream, c->err)));
        else
            TC_TRY(relay(c, tc_cuda_transpose_batched(w->data, wp, w->dims[0], s->KH * s->KW, w->dims[1], es,
                                                      c->stream, c->err)));
    }
    if (s->y_nhwc != p->nhwc || io->cropped) {
        yp = tc_cuda_scratch(c, SLOT_Y, (size_t)core * es);
        if (!yp) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no scratch memory for the convolution output");
    }
    if (wsb > 0) {
        io->ws = tc_cuda_scratch(c, SLOT_WS, (size_t)wsb);
        if (!io->ws)
            return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %lld bytes of scratch memory for the cuDNN workspace",
                                (long long)wsb);
    }
    io->xp = xp, io->yp = yp;
    io->uids[0] = UID_X, io->uids[1] = UID_W, io->uids[2] = UID_Y;
    io->ptrs[0] = xp, io->ptrs[1] = wp, io->ptrs[2] = yp;
    io->n = 3;
    for (int k = 0; k < p->fused; k++) {
        if (s->ep[k] == EP_BIAS) io->uids[io->n] = UID_B, io->ptrs[io->n++] = b->data;
        if (s->ep[k] == EP_RESIDUAL) io->uids[io->n] = UID_R, io->ptrs[io->n++] = r->data;
    }
    return TC_OK;
}

static tc_status run_plan(const tc_cuda_call *c, const conv_shape *s, const conv_plan *p, const tc_cuda_tensor *x,
                          const tc_cuda_tensor *w, const tc_cuda_tensor *b, const tc_cuda_tensor *r,
                          tc_cuda_tensor *y) {
    size_t es = tc_dtype_size(s->dtype);
    conv_io io;
    TC_TRY(prepare_io(c, s, p, x, w, b, r, y, tc_cudnn_graph_workspace(p->graph), &io));
    tc_status st = tc_cudnn_graph_execute(p->graph, tc_cuda_cudnn(c), io.n, io.uids, io.ptrs, io.ws, c->err);
    if (st != TC_OK) {
        char msg[sizeof c->err->msg];
        snprintf(msg, sizeof msg, "%s", c->err->msg);
        return tc_cuda_fail(c, st, "%s (%s)", msg, tc_cudnn_graph_engine(p->graph));
    }
    void *yp = io.yp;
    if (s->y_nhwc != p->nhwc) { /* into y's layout (transposed convolutions: then cropped from xp) */
        void *dst = io.cropped ? io.xp : y->data;
        if (p->nhwc)
            TC_TRY(relay(c, tc_cuda_transpose_batched(yp, dst, s->N, io.out_sp, s->K, es, c->stream, c->err)));
        else
            TC_TRY(relay(c, tc_cuda_transpose_batched(yp, dst, s->N, s->K, io.out_sp, es, c->stream, c->err)));
        yp = dst;
    }
    if (io.cropped) {
        tc_cuda_pad_args a = {.rank = 4, .in_dims = {s->N, s->K, s->OH2, s->OW2}, .out_dims = {s->N, s->K, s->OH, s->OW}};
        TC_TRY(relay(c, tc_cuda_constant_pad(&a, yp, y->data, es, c->stream, c->err)));
    }
    return finish_epilogue(c, s, p->fused, b, r, y);
}

/* The buffers of one call, for timing plans on them. */
typedef struct conv_bufs {
    const tc_cuda_call *c;
    const conv_shape *s;
    const conv_plan *p;
    const tc_cuda_tensor *x, *w, *b, *r;
    tc_cuda_tensor *y;
} conv_bufs;

static tc_status conv_trial_run(void *arg, tc_error *err) {
    (void)err; /* run_plan reports through the call's own error, which is err */
    conv_bufs *t = arg;
    return run_plan(t->c, t->s, t->p, t->x, t->w, t->b, t->r, t->y);
}

/* Times p's candidate engines on the call's buffers (outputs are written again by the real run
 * that follows) and keeps the fastest. */
static tc_status tune_engines(const conv_bufs *t, conv_plan *p, tc_tactic_info *info) {
    const tc_cuda_call *c = t->c;
    info->tried = 0, info->chosen = 0, info->ms = info->first_ms = -1.0f;
    if (tc_cudnn_graph_candidates(p->graph) <= 1) return TC_OK;
    int64_t wsb = tc_cudnn_graph_max_workspace(p->graph);
    conv_io io;
    TC_TRY(prepare_io(c, t->s, p, t->x, t->w, t->b, t->r, t->y, wsb, &io));
    return relay(c, tc_cudnn_graph_tune(p->graph, tc_cuda_cudnn(c), io.n, io.uids, io.ptrs, io.ws, wsb, info, c->err));
}

/* Tries NCHW before NHWC, and in each layout the whole epilogue inside cuDNN first, then fewer
 * stages (the rest run as our kernels); engines that compute in reduced precision only when no
 * other engine runs the case in either layout. In NHWC the residual is not fused: it would need a
 * transposed copy of its own. Any failure moves on to the next variant (engines reject patterns in
 * several ways); the report keeps the message of the plain strict NCHW attempt, the case that
 * should always work. only_layout / only_relaxed (-1: any) restrict the search; want is how many
 * engine candidates each graph keeps for tuning; *relaxed_out tells which precision rule held. */
static tc_status make_plan(const tc_cuda_call *c, const conv_shape *s, conv_plan *p, int want, int only_layout,
                           int only_relaxed, int *relaxed_out) {
    void *handle = tc_cuda_cudnn(c);
    if (!handle) return tc_cuda_fail(c, TC_ERR_CUDA, "no cuDNN handle");
    char first[sizeof c->err->msg] = "";
    tc_status first_status = TC_OK;
    int64_t max_ws = (int64_t)tc_cuda_workspace_limit(c);
    for (int relaxed = 0; relaxed < 2; relaxed++)
        for (int layout = 0; layout < 2; layout++) {
            if ((only_layout >= 0 && layout != only_layout) || (only_relaxed >= 0 && relaxed != only_relaxed))
                continue;
            int most = s->transposed ? 0 : s->n_ep;
            for (int k = 0; k < most; k++) /* a residual in the other layout is added afterwards */
                if (s->ep[k] == EP_RESIDUAL && s->r_nhwc != (layout == 1)) most = k;
            for (int fused = most; fused >= 0; fused--) {
                tc_status st =
                    build_graph(s, handle, layout == 1, fused, relaxed == 1, max_ws, want, &p->graph, c->err);
                if (st == TC_OK) {
                    p->nhwc = layout == 1;
                    p->fused = fused;
                    *relaxed_out = relaxed;
                    return TC_OK;
                }
                if (st == TC_ERR_OUT_OF_MEMORY) return relay(c, st);
                if (first_status == TC_OK && !fused) {
                    first_status = st;
                    snprintf(first, sizeof first, "%s", c->err->msg);
                }
            }
        }
    if (first_status == TC_OK) first_status = TC_ERR_UNSUPPORTED;
    return tc_cuda_fail(c, first_status, "no cuDNN engine runs this %s %s convolution in NCHW or NHWC: %s",
                        tc_dtype_name(s->dtype), s->transposed ? "transposed" : "forward", first);
}

/* The plan for a new shape set. Outside capture (the first, eager run) the engines are timed on
 * this call's buffers, and for f16/bf16 an NHWC plan with its transposes is timed against the
 * NCHW one; whole runs are compared, so unfused epilogue kernels count on both sides. Failures
 * while trying the NHWC alternative only drop it. */
static tc_status choose_plan(conv_bufs *t, conv_plan *p) {
    const tc_cuda_call *c = t->c;
    const conv_shape *s = t->s;
    int want = tc_cuda_capturing(c) || !tc_tactic_can_time(c->stream) ? 1 : tc_tactic_candidates();
    int relaxed = 0;
    if (s->x_nhwc || s->y_nhwc) {
        /* channels-last activations: an NHWC plan, which needs no transposes, unless none exists;
         * reduced-precision engines only when no exact one runs in either layout */
        static const int order[4][2] = {{1, 0}, {0, 0}, {1, 1}, {0, 1}}; /* layout, relaxed */
        tc_status st = TC_ERR_UNSUPPORTED;
        for (int i = 0; i < 4 && st != TC_OK; i++) {
            st = make_plan(c, s, p, want, order[i][0], order[i][1], &relaxed);
            if (st == TC_ERR_OUT_OF_MEMORY) return st;
        }
        if (st != TC_OK) return st;
        if (want <= 1) return TC_OK;
        tc_tactic_info info;
        return tune_engines(t, p, &info);
    }
    TC_TRY(make_plan(c, s, p, want, -1, -1, &relaxed));
    if (want <= 1) return TC_OK;
    tc_tactic_info info;
    TC_TRY(tune_engines(t, p, &info));
    float nchw_ms = -1.0f, nhwc_ms = -1.0f;
    tc_tactic_info qinfo = {0, 0, -1.0f, -1.0f};
    if ((s->dtype == TC_F16 || s->dtype == TC_BF16) && !p->nhwc) {
        conv_plan q;
        memset(&q, 0, sizeof q);
        int rq = 0;
        tc_status st = make_plan(c, s, &q, want, 1, relaxed, &rq);
        if (st == TC_OK) st = tune_engines(t, &q, &qinfo);
        if (st == TC_OK) {
            t->p = p;
            st = tc_tactic_time(c->stream, conv_trial_run, t, 3, &nchw_ms, c->err);
        }
        if (st == TC_OK) {
            t->p = &q;
            st = tc_tactic_time(c->stream, conv_trial_run, t, 3, &nhwc_ms, c->err);
        }
        t->p = p;
        if (st == TC_OK && nhwc_ms < nchw_ms) {
            tc_cudnn_graph_free(p->graph);
            p->graph = q.graph, p->nhwc = true, p->fused = q.fused;
            q.graph = NULL;
            info = qinfo;
        }
        tc_cudnn_graph_free(q.graph);
        if (st == TC_ERR_OUT_OF_MEMORY) return st;
        if (st != TC_OK) nhwc_ms = -1.0f; /* the alternative failed: the NCHW plan stays */
    }
    if (tc_tactic_log()) {
        char label[256];
        fprintf(stderr,
                "tensorc tactic: %s: conv %s n%lld c%lld %lldx%lld -> k%lld %lldx%lld g%lld: %d candidates timed, "
                "chosen %s %s (%d fused) %.4f ms, first %.4f ms; whole step nchw %.4f ms, nhwc %.4f ms\n",
                tc_node_label(c->node, label, sizeof label), tc_dtype_name(s->dtype), (long long)s->N,
                (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->K, (long long)s->OH, (long long)s->OW,
                (long long)s->G, info.tried, tc_cudnn_graph_engine(p->graph), p->nhwc ? "NHWC" : "NCHW", p->fused,
                (double)info.ms, (double)info.first_ms, (double)nchw_ms, (double)nhwc_ms);
    }
    return TC_OK;
}

/* Engine-file records of conv plans: u8 nhwc, u8 fused stages, two zero bytes, cuDNN's plan JSON. */
enum { REC_HEAD = 4 };

/* The plan stored for this key, made again from its JSON; false (p unchanged) when the record
 * does not fit this call or this cuDNN cannot make it. */
static bool plan_from_record(const tc_cuda_call *c, const conv_shape *s, conv_plan *p, const unsigned char *rec,
                             size_t len) {
    if (len <= REC_HEAD || rec[0] > 1 || rec[1] > s->n_ep || rec[2] || rec[3]) return false;
    bool nhwc = rec[0] == 1;
    int fused = rec[1];
    if (s->transposed && fused) return false;
    for (int k = 0; k < fused; k++)
        if (s->ep[k] == EP_RESIDUAL && s->r_nhwc != nhwc) return false; /* never made: see make_plan */
    tc_error why = {0};
    tc_cudnn_graph *g = NULL;
    if (tc_cudnn_graph_from_json(tc_cuda_cudnn(c), (const char *)rec + REC_HEAD, len - REC_HEAD,
                                 (int64_t)tc_cuda_workspace_limit(c), &g, &why) != TC_OK) {
        if (tc_tactic_log()) {
            char label[256];
            fprintf(stderr, "tensorc tactic: %s: the stored cuDNN plan cannot be used here (%s); choosing again\n",
                    tc_node_label(c->node, label, sizeof label), why.msg);
        }
        return false;
    }
    p->graph = g, p->nhwc = nhwc, p->fused = fused;
    return true;
}

/* Keeps the chosen plan in the engine's table (and so in its file). */
static void store_plan(const tc_cuda_call *c, const conv_plan *p, const int64_t *key, size_t key_len, bool replace) {
    char *json = NULL;
    size_t len = 0;
    tc_error why = {0};
    if (tc_cudnn_graph_plan_json(p->graph, &json, &len, &why) != TC_OK) return; /* the plan stays unrecorded */
    unsigned char *rec = malloc(REC_HEAD + len);
    if (rec) {
        rec[0] = p->nhwc ? 1 : 0, rec[1] = (unsigned char)p->fused, rec[2] = rec[3] = 0;
        memcpy(rec + REC_HEAD, json, len);
        char desc[96];
        snprintf(desc, sizeof desc, "cudnn %s, %s, %d stage%s fused", tc_cudnn_graph_engine(p->graph),
                 p->nhwc ? "NHWC" : "NCHW", p->fused, p->fused == 1 ? "" : "s");
        tc_cuda_choice_store(c, TC_RECORD_CUDNN_PLAN, key, key_len, desc, rec, REC_HEAD + len, replace);
        free(rec);
    }
    free(json);
}

/* Depthwise convolutions (one input and one output channel per group) run on our kernel: cuDNN's
 * engines for them are slow in both layouts (mobilenet_v3_large at batch 32 spent two thirds of its
 * time in them on an H100). TENSORC_CUDA_DEPTHWISE=0, read when the engine is made (on), hands them
 * to cuDNN, for comparison. */
bool tc_cuda_conv_runs_depthwise(bool on, int64_t groups, int64_t in_channels, int64_t out_channels, bool transposed) {
    return on && !transposed && groups > 1 && groups == in_channels && out_channels == in_channels;
}

static tc_status run_depthwise(const tc_cuda_call *c, const conv_shape *s, const tc_cuda_tensor *x,
                               const tc_cuda_tensor *w, const tc_cuda_tensor *b, const tc_cuda_tensor *r,
                               tc_cuda_tensor *y) {
    tc_cuda_depthwise_args a = {0};
    a.x = x->data, a.w = w->data, a.bias = b ? b->data : NULL, a.residual = r ? r->data : NULL, a.y = y->data;
    a.dtype = s->dtype;
    a.N = s->N, a.C = s->C, a.H = s->H, a.W = s->W, a.OH = s->OH, a.OW = s->OW, a.KH = s->KH, a.KW = s->KW;
    a.sh = s->sh, a.sw = s->sw, a.ph = s->ph, a.pw = s->pw, a.dh = s->dh, a.dw = s->dw;
    a.x_nhwc = s->x_nhwc, a.y_nhwc = s->y_nhwc, a.w_taps_major = w->nhwc;
    /* the stages in order: bias, then relu before a residual (act1) and after it (act2) */
    for (int k = 0; k < s->n_ep; k++) {
        if (s->ep[k] == EP_HARDSWISH) a.hardswish1 = true;
        if (s->ep[k] == EP_RELU) {
            bool after_residual = false;
            for (int j = 0; j < k; j++) after_residual = after_residual || s->ep[j] == EP_RESIDUAL;
            if (after_residual) a.relu2 = true;
            else a.relu1 = true;
        }
    }
    return relay(c, tc_cuda_depthwise_conv(&a, c->stream, c->err));
}

static tc_status cuda_convolution(const tc_cuda_call *c) {
    const tc_cuda_epilogue *epi = c->epi;
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    const tc_cuda_tensor *w = epi && epi->weight ? epi->weight : tc_cuda_in(c, 1);
    const tc_cuda_tensor *b = epi && epi->bias ? epi->bias : tc_cuda_in(c, 2);
    const tc_cuda_tensor *r = epi ? epi->residual : NULL;
    tc_cuda_tensor *y = c->out[0];
    int nsp = w->rank - 2;
    if (nsp != 1 && nsp != 2)
        return tc_cuda_fail(c, TC_ERR_UNSUPPORTED, "%d-D convolution is not supported on cuda", nsp);
    if (x->dtype == TC_F64) return tc_cuda_fail(c, TC_ERR_DTYPE, "f64 convolution is not supported on cuda");
    if (x->dtype != TC_F32 && x->dtype != TC_F16 && x->dtype != TC_BF16)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "%s convolution is not supported on cuda", tc_dtype_name(x->dtype));
    if (x->rank != w->rank || y->rank != w->rank || w->dtype != x->dtype || y->dtype != x->dtype ||
        (b && b->dtype != x->dtype))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input, weight and output ranks or dtypes disagree at run time");
    conv_shape s = {0};
    s.dtype = x->dtype;
    s.transposed = tc_node_bool(c->node, 6);
    s.bias = b != NULL;
    s.allow_tf32 = tc_cuda_allow_tf32(c);
    s.x_nhwc = x->nhwc, s.w_nhwc = w->nhwc, s.y_nhwc = y->nhwc, s.r_nhwc = r && r->nhwc;
    if (r && r->nhwc != y->nhwc)
        return tc_cuda_fail(c, TC_ERR_INTERNAL, "the fused residual and the output are stored in different layouts");
    if (s.transposed && (s.x_nhwc || s.w_nhwc || s.y_nhwc))
        return tc_cuda_fail(c, TC_ERR_INTERNAL, "a transposed convolution was given channels-last tensors");
    if (b) s.ep[s.n_ep++] = EP_BIAS;
    if (epi) {
        bool dw_hs = epi->act1 == TC_CUDA_EPI_HARDSWISH && !r && !epi->act2 &&
                     tc_cuda_conv_runs_depthwise(tc_cuda_depthwise_on(c), tc_cuda_int(c, 8), x->dims[1], y->dims[1],
                                                 tc_node_bool(c->node, 6));
        if ((epi->act1 != TC_CUDA_EPI_NONE && epi->act1 != TC_CUDA_EPI_RELU && !dw_hs) ||
            (epi->act2 != TC_CUDA_EPI_NONE && epi->act2 != TC_CUDA_EPI_RELU) || (epi->act2 && !r) ||
            tc_node_bool(c->node, 6))
            return tc_cuda_fail(c, TC_ERR_INTERNAL, "the executor gave this convolution an epilogue it cannot run");
        if (epi->act1) s.ep[s.n_ep++] = dw_hs ? EP_HARDSWISH : EP_RELU;
        if (r) s.ep[s.n_ep++] = EP_RESIDUAL;
        if (epi->act2) s.ep[s.n_ep++] = EP_RELU;
    }
    int64_t stride[2], pad[2], dil[2];
    params(c, 3, nsp, stride);
    params(c, 4, nsp, pad);
    params(c, 5, nsp, dil);
    s.N = x->dims[0], s.C = x->dims[1], s.K = y->dims[1];
    s.G = tc_cuda_int(c, 8);
    if (nsp == 2) {
        s.H = x->dims[2], s.W = x->dims[3], s.OH = y->dims[2], s.OW = y->dims[3], s.KH = w->dims[2], s.KW = w->dims[3];
        s.sh = stride[0], s.sw = stride[1], s.ph = pad[0], s.pw = pad[1], s.dh = dil[0], s.dw = dil[1];
    } else {
        s.H = 1, s.W = x->dims[2], s.OH = 1, s.OW = y->dims[2], s.KH = 1, s.KW = w->dims[2];
        s.sh = 1, s.sw = stride[0], s.ph = 0, s.pw = pad[0], s.dh = 1, s.dw = dil[0];
    }
    if (!s.transposed) { /* one pixel per channel is the same memory in both layouts: no transposes */
        if (s.H * s.W == 1) s.x_nhwc = s.y_nhwc;
        if (s.OH * s.OW == 1) s.y_nhwc = s.r_nhwc = s.x_nhwc;
    }
    if (s.G < 1 || s.C % s.G || s.K % s.G)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "groups %lld do not divide %lld input and %lld output channels",
                            (long long)s.G, (long long)s.C, (long long)s.K);
    int64_t cin_w = s.transposed ? w->dims[0] : w->dims[1] * s.G;
    if (s.C != cin_w)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input has %lld channels at run time, the weight expects %lld",
                            (long long)s.C, (long long)cin_w);
    if (b && (b->rank != 1 || b->dims[0] != s.K))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "bias has %lld elements at run time for %lld output channels",
                            (long long)b->numel, (long long)s.K);
    if (s.sh < 1 || s.sw < 1 || s.dh < 1 || s.dw < 1 || s.ph < 0 || s.pw < 0)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "stride and dilation must be positive and padding non-negative");
    int64_t effh = s.dh * (s.KH - 1) + 1, effw = s.dw * (s.KW - 1) + 1;
    if (!s.transposed && (s.H + 2 * s.ph < effh || s.W + 2 * s.pw < effw))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input of size %lldx%lld (padded %lldx%lld) is smaller than the kernel",
                            (long long)s.H, (long long)s.W, (long long)(s.H + 2 * s.ph), (long long)(s.W + 2 * s.pw));
    if (r && (r->dtype != y->dtype || r->numel != y->numel || r->rank != y->rank ||
              memcmp(r->dims, y->dims, sizeof(int64_t) * (size_t)y->rank) != 0))
        return tc_cuda_fail(c, TC_ERR_SHAPE,
                            "the fused residual's shape or dtype differs from the output's at run time");
    if (y->numel == 0) return TC_OK;
    if (x->numel == 0 || w->numel == 0) { /* an empty sum: zeros, then the epilogue */
        TC_TRY(relay(c, tc_cuda_conv_channel_bias(y->data, NULL, s.dtype, s.N, s.K, s.OH * s.OW, false, c->stream,
                                                  c->err)));
        return finish_epilogue(c, &s, 0, b, r, y);
    }
    if (!s.transposed) {
        if (s.OH != (s.H + 2 * s.ph - effh) / s.sh + 1 || s.OW != (s.W + 2 * s.pw - effw) / s.sw + 1)
            return tc_cuda_fail(c, TC_ERR_SHAPE, "output %lldx%lld does not match the input %lldx%lld at run time",
                                (long long)s.OH, (long long)s.OW, (long long)s.H, (long long)s.W);
    } else if (!dgrad_dim(s.H, s.OH, s.KH, s.sh, s.ph, s.dh, &s.OH2, &s.qh) ||
               !dgrad_dim(s.W, s.OW, s.KW, s.sw, s.pw, s.dw, &s.OW2, &s.qw)) {
        return tc_cuda_fail(c, TC_ERR_SHAPE, "output %lldx%lld does not match the input %lldx%lld at run time",
                            (long long)s.OH, (long long)s.OW, (long long)s.H, (long long)s.W);
    }
    if (tc_cuda_conv_runs_depthwise(tc_cuda_depthwise_on(c), s.G, s.C, s.K, s.transposed))
        return run_depthwise(c, &s, x, w, b, r, y);
    s.align_x = alignment_of(x->data), s.align_w = alignment_of(w->data), s.align_y = alignment_of(y->data);
    s.align_b = b ? alignment_of(b->data) : 0;
    s.align_r = r ? alignment_of(r->data) : 0;

    int64_t key[KEY_LEN];
    make_key(&s, key);
    void **slot = tc_cuda_node_cache(c, key_hash(key) ^ 0x636f6e76ull /* "conv" */, conv_plan_free);
    if (!slot) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for the convolution plan cache");
    conv_plan *p = *slot;
    if (p && memcmp(p->key, key, sizeof key) != 0) {
        conv_plan_free(p);
        *slot = p = NULL;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for a convolution plan");
        memcpy(p->key, key, sizeof key);
        size_t len = 0;
        unsigned char *rec = tc_cuda_choice_find(c, TC_RECORD_CUDNN_PLAN, key, sizeof key, &len);
        bool had = rec != NULL, stored = had && plan_from_record(c, &s, p, rec, len);
        free(rec);
        if (stored) tc_cuda_choice_used(c);
        else if (had) tc_cuda_choice_drop(c, TC_RECORD_CUDNN_PLAN, key, sizeof key);
        if (!stored) {
            conv_bufs t = {c, &s, p, x, w, b, r, y};
            tc_status st = choose_plan(&t, p);
            if (st != TC_OK) {
                conv_plan_free(p);
                return st;
            }
            store_plan(c, p, key, sizeof key, had);
        }
        *slot = p;
    }
    return run_plan(c, &s, p, x, w, b, r, y);
}

void tc_cuda_register_conv(tc_cuda_kernel *t) { t[TC_OP_CONVOLUTION] = cuda_convolution; }
