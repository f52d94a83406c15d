/* The CUDA executor's lowering of a graph to steps: one kernel call per node, except for the
 * groups it fuses (a convolution with its folded batch norms and per-channel adds, relu, a residual
 * add and relu, as one cuDNN graph; mm / addmm / linear with relu or gelu as a cuBLASLt epilogue),
 * the constants it derives for them, and the nodes that get a device error word. */
#include "backend/cuda/exec_internal.h"
#include "core/dtype.h"
#include "ops/reduce_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUP 8 /* conv, two adds, two batch norms, relu, residual add, relu */

typedef struct lower_ctx {
    const tc_graph *g;
    int *users;    /* per value id: reads by nodes */
    int *consumer; /* per value id: the last node reading it (the only one when users == 1) */
    bool *is_out;  /* per value id: a graph output */
    bool *taken;   /* per node: already in a step */
    bool depthwise; /* the engine runs depthwise convolutions on our kernel */
} lower_ctx;

static bool static_dims(const tc_value *v) {
    for (int d = 0; d < v->rank; d++)
        if (TC_DIM_IS_SYM(v->dims[d])) return false;
    return true;
}

static bool same_type(const tc_value *a, const tc_value *b) {
    if (!a || !b || a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

static bool is_lib_float(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

/* A constant whose values the host can read. */
static bool host_const(const tc_value *v) {
    return v && v->kind == TC_VALUE_CONSTANT && static_dims(v) && (v->data || tc_value_numel_static(v) == 0);
}

/* The single node that reads v, when nothing else (no other node, no graph output) does. */
static const tc_node *sole_consumer(const lower_ctx *L, const tc_value *v) {
    if (L->users[v->id] != 1 || L->is_out[v->id] || L->consumer[v->id] < 0) return NULL;
    const tc_node *m = L->g->nodes.items[L->consumer[v->id]];
    return L->taken[m->id] ? NULL : m;
}

static double dtype_max(tc_dtype t) { return t == TC_F16 ? 65504.0 : 3.0e38; }

/* ---- convolution groups ------------------------------------------------------------------- */

typedef struct conv_group {
    int nodes[MAX_GROUP];
    int count;
    bool fold;             /* the weight (and bias) are host constants: affine ops fold into them */
    bool any_bn;           /* the weight is scaled */
    int64_t K;             /* output channels */
    double *scale, *shift; /* per output channel: y = scale * conv(x, w) + shift */
    double *wmax;          /* per output channel: max |w| (to keep the scaled weight finite) */
    int residual;
    tc_cuda_epi_act act1, act2;
} conv_group;

static bool conv_head_ok(const tc_node *n) {
    if (n->op != TC_OP_CONVOLUTION || n->n_outputs != 1 || tc_node_bool(n, 6)) return false;
    const tc_value *x = tc_node_tensor(n, 0), *w = tc_node_tensor(n, 1), *b = tc_node_tensor(n, 2);
    const tc_value *y = n->outputs[0];
    if (!x || !w || !is_lib_float(y->dtype) || x->dtype != y->dtype || w->dtype != y->dtype) return false;
    if ((w->rank != 3 && w->rank != 4) || y->rank != w->rank || TC_DIM_IS_SYM(w->dims[0]) || w->dims[0] <= 0)
        return false;
    if (TC_DIM_IS_SYM(y->dims[1]) || y->dims[1] != w->dims[0]) return false;
    return !b || (b->dtype == y->dtype && b->rank == 1);
}

/* A constant broadcast over every dim of out except the channel dim (1), where it has 1 or K values. */
static bool per_channel_const(const tc_value *c, const tc_value *out, int64_t K) {
    if (!host_const(c) || c->dtype != out->dtype || c->rank > out->rank || out->rank < 2) return false;
    for (int d = 0; d < out->rank; d++) {
        int cd = d - (out->rank - c->rank);
        int64_t n = cd >= 0 ? c->dims[cd] : 1;
        if (n != 1 && !(d == 1 && n == K)) return false;
    }
    return true;
}

static bool fold_add(conv_group *cg, const tc_value *c) {
    int64_t n = tc_value_numel_static(c);
    double lim = dtype_max(c->dtype);
    for (int64_t k = 0; k < cg->K; k++) {
        double s = cg->shift[k] + tc_load_f64(c->data, c->dtype, n == 1 ? 0 : k);
        if (!isfinite(s) || fabs(s) > lim) return false;
    }
    for (int64_t k = 0; k < cg->K; k++) cg->shift[k] += tc_load_f64(c->data, c->dtype, n == 1 ? 0 : k);
    return true;
}

/* Batch norm with running statistics as the CPU computes its per-channel scale and shift (in f32),
 * composed into the group's affine map; false (nothing changed) when a parameter is not a host
 * constant of K values or the scaled weight or shift would not fit the dtype. */
static bool fold_bn(const lower_ctx *L, conv_group *cg, const tc_node *m) {
    for (int k = 1; k < m->n_outputs; k++)
        if (L->users[m->outputs[k]->id] || L->is_out[m->outputs[k]->id]) return false;
    const tc_value *p[5];
    for (int a = 1; a <= 4; a++) {
        p[a] = tc_node_tensor(m, a);
        if (!p[a]) {
            if (a >= 3) return false;
            continue;
        }
        if (!host_const(p[a]) || !tc_dtype_is_float(p[a]->dtype) || tc_value_numel_static(p[a]) != cg->K)
            return false;
    }
    float eps = (float)tc_node_float(m, 6);
    double lim = dtype_max(m->outputs[0]->dtype);
    double *ns = malloc(2 * (size_t)cg->K * sizeof *ns);
    if (!ns) return false;
    double *nt = ns + cg->K;
    bool ok = true;
    for (int64_t k = 0; k < cg->K && ok; k++) {
        float rm = (float)tc_load_f64(p[3]->data, p[3]->dtype, k), rv = (float)tc_load_f64(p[4]->data, p[4]->dtype, k);
        float invstd = 1.0f / sqrtf(rv + eps);
        float s = p[1] ? (float)tc_load_f64(p[1]->data, p[1]->dtype, k) * invstd : invstd;
        float t = (p[2] ? (float)tc_load_f64(p[2]->data, p[2]->dtype, k) : 0.0f) - rm * s;
        ns[k] = cg->scale[k] * s;
        nt[k] = cg->shift[k] * s + t;
        ok = isfinite(ns[k]) && isfinite(nt[k]) && fabs(nt[k]) <= lim && cg->wmax[k] * fabs(ns[k]) <= lim;
    }
    if (ok) {
        memcpy(cg->scale, ns, (size_t)cg->K * sizeof *ns);
        memcpy(cg->shift, nt, (size_t)cg->K * sizeof *nt);
        cg->any_bn = true;
    }
    free(ns);
    return ok;
}

/* Grows the group from convolution n along single-use values: stage 0 takes per-channel adds and
 * batch norms (folded), then relu, a residual add of a same-typed tensor, relu; or, for a
 * depthwise convolution on our kernel, hardswish in place of the first relu and nothing after. */
static tc_status grow_conv(const lower_ctx *L, const tc_node *n, conv_group *cg, tc_error *err) {
    const tc_value *w = tc_node_tensor(n, 1), *b = tc_node_tensor(n, 2);
    memset(cg, 0, sizeof *cg);
    cg->residual = -1;
    cg->nodes[cg->count++] = n->id;
    cg->K = w->dims[0];
    cg->fold = host_const(w) && (!b || host_const(b));
    if (cg->fold) {
        cg->scale = calloc(3 * (size_t)cg->K, sizeof *cg->scale);
        if (!cg->scale) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        cg->shift = cg->scale + cg->K;
        cg->wmax = cg->shift + cg->K;
        int64_t per = tc_value_numel_static(w) / cg->K;
        for (int64_t k = 0; k < cg->K; k++) {
            cg->scale[k] = 1.0;
            cg->shift[k] = b ? tc_load_f64(b->data, b->dtype, k) : 0.0;
            for (int64_t i = 0; i < per; i++) {
                double a = fabs(tc_load_f64(w->data, w->dtype, k * per + i));
                if (a > cg->wmax[k]) cg->wmax[k] = a;
            }
        }
    }
    const tc_value *cur = n->outputs[0];
    /* a depthwise convolution that runs on our kernel also takes hardswish */
    const bool dw = w->rank == 4 && w->dims[1] == 1 && tc_cuda_conv_runs_depthwise(L->depthwise, tc_node_int(n, 8), cg->K, cg->K,
                                                                                   false);
    int stage = cg->fold ? 0 : 1; /* 0: affine ops, 1: relu or residual, 2: residual, 3: relu, 4: done */
    while (stage < 4 && cg->count < MAX_GROUP) {
        const tc_node *m = sole_consumer(L, cur);
        if (!m || m->n_outputs < 1 || !same_type(m->outputs[0], cur)) break;
        bool take = false;
        if (m->op == TC_OP_ADD_TENSOR && m->n_inputs == 2 && tc_node_float(m, 2) == 1.0) {
            const tc_value *other = m->inputs[0] == cur ? m->inputs[1] : m->inputs[0];
            if (stage == 0 && per_channel_const(other, cur, cg->K) && fold_add(cg, other)) {
                take = true;
            } else if (stage <= 2 && other != cur && same_type(other, cur)) {
                cg->residual = other->id;
                stage = 3;
                take = true;
            }
        } else if (m->op == TC_OP_BATCH_NORM_NO_TRAINING && stage == 0 && tc_node_tensor(m, 0) == cur) {
            take = fold_bn(L, cg, m);
        } else if (m->op == TC_OP_HARDSWISH && m->n_outputs == 1 && stage <= 1 && dw) {
            cg->act1 = TC_CUDA_EPI_HARDSWISH; /* our depthwise kernel's epilogue; nothing after it */
            stage = 4;
            take = true;
        } else if (m->op == TC_OP_RELU && m->n_outputs == 1) {
            if (stage <= 1) {
                cg->act1 = TC_CUDA_EPI_RELU;
                stage = 2;
                take = true;
            } else if (stage == 3) {
                cg->act2 = TC_CUDA_EPI_RELU;
                stage = 4;
                take = true;
            }
        }
        if (!take) break;
        cg->nodes[cg->count++] = m->id;
        cur = m->outputs[0];
    }
    return TC_OK;
}

/* ---- matrix-product groups ---------------------------------------------------------------- */

static bool gemm_head_ok(const tc_node *n) {
    if ((n->op != TC_OP_MM && n->op != TC_OP_ADDMM && n->op != TC_OP_LINEAR) || n->n_outputs != 1) return false;
    if (!is_lib_float(n->outputs[0]->dtype)) return false;
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] && n->inputs[k]->dtype != n->outputs[0]->dtype) return false;
    return true;
}

/* The activation that follows a matrix product as a cuBLASLt epilogue, or NONE. cuBLASLt's GELU is
 * the tanh form; the erf form differs from it by at most 4.8e-4, below f16 and bf16 resolution
 * but not f32's, so an f32 erf GELU stays a separate step. */
static tc_cuda_epi_act gemm_act(const lower_ctx *L, const tc_node *n, const tc_node **out) {
    const tc_value *cur = n->outputs[0];
    const tc_node *m = sole_consumer(L, cur);
    *out = NULL;
    if (!m || m->n_outputs != 1 || !same_type(m->outputs[0], cur)) return TC_CUDA_EPI_NONE;
    if (m->op == TC_OP_RELU) {
        *out = m;
        return TC_CUDA_EPI_RELU;
    }
    if (m->op == TC_OP_GELU) {
        const char *a = tc_node_str(m, 1);
        bool tanh_form = a && strcmp(a, "tanh") == 0;
        if (tanh_form || ((!a || strcmp(a, "none") == 0) && cur->dtype != TC_F32)) {
            *out = m;
            return TC_CUDA_EPI_GELU_TANH;
        }
    }
    return TC_CUDA_EPI_NONE;
}

/* A residual added to the product (add.Tensor with alpha 1 of a tensor of the product's type):
 * cuBLASLt's C with beta 1 (matmul.c). Its value id, or -1. */
static int gemm_residual(const lower_ctx *L, const tc_node *n, const tc_node **out) {
    const tc_value *cur = n->outputs[0];
    const tc_node *m = sole_consumer(L, cur);
    *out = NULL;
    if (!m || m->op != TC_OP_ADD_TENSOR || m->n_inputs != 2 || m->n_outputs != 1 || tc_node_float(m, 2) != 1.0 ||
        !same_type(m->outputs[0], cur))
        return -1;
    const tc_value *other = m->inputs[0] == cur ? m->inputs[1] : m->inputs[0];
    if (other == cur || !same_type(other, cur)) return -1;
    *out = m;
    return other->id;
}

/* ---- elementwise chains (off with NVRTC=0) --------------------------------------------- */

/* Adds the operands of node m (other than the chain's previous value) to es; false when one
 * cannot be indexed or there are too many. */
static bool ew_take_operands(tc_cuda_ew_step *es, const tc_node *m, int prev, const tc_value *out) {
    for (int k = 0; k < m->n_inputs; k++) {
        const tc_value *v = m->inputs[k];
        if (!v || v->id == prev) continue;
        bool seen = false;
        for (int j = 0; j < es->n_in; j++) seen = seen || es->in[j].value == v->id;
        if (seen) continue;
        if (es->n_in == TC_CUDA_EW_MAX_IN || !tc_cuda_ew_classify(v, out, &es->in[es->n_in])) return false;
        es->n_in++;
    }
    return true;
}

/* The chain of elementwise nodes from n along values that only the next one reads, all with n's
 * output type; at least two nodes, else es->n_nodes < 2. */
static void grow_ew(const lower_ctx *L, const tc_node *n, tc_cuda_ew_step *es, int *nodes) {
    memset(es, 0, sizeof *es);
    const tc_value *out = n->outputs[0];
    es->dtype = out->dtype;
    if (!tc_cuda_ew_node_ok(n) || !ew_take_operands(es, n, -1, out)) return;
    nodes[0] = n->id;
    es->chain[0] = out->id;
    es->n_nodes = 1;
    const tc_value *cur = out;
    while (es->n_nodes < TC_CUDA_EW_MAX_NODES) {
        const tc_node *m = sole_consumer(L, cur);
        if (!m || !tc_cuda_ew_node_ok(m) || !same_type(m->outputs[0], cur)) break;
        tc_cuda_ew_step saved = *es;
        if (!ew_take_operands(es, m, cur->id, cur)) {
            *es = saved;
            break;
        }
        nodes[es->n_nodes] = m->id;
        es->chain[es->n_nodes++] = m->outputs[0]->id;
        cur = m->outputs[0];
    }
}

/* ---- lowering ------------------------------------------------------------------------------ */

static bool can_fail_on_device(const tc_node *n) {
    switch (n->op) {
    case TC_OP_EMBEDDING:
    case TC_OP_INDEX_SELECT:
    case TC_OP_GATHER:
    case TC_OP_INDEX_TENSOR: return true;
    case TC_OP_DIV_TENSOR_MODE:
    case TC_OP_REMAINDER_TENSOR: return n->n_outputs == 1 && !tc_dtype_is_float(n->outputs[0]->dtype);
    default: return false;
    }
}

void tc_cuda_free_steps(tc_cuda_engine *e) {
    for (int i = 0; e->derived && i < e->n_derived; i++) free(e->derived[i].host);
    free(e->derived);
    free(e->steps);
    free(e->step_nodes);
    free(e->uploaded);
    free(e->flag_slot);
    free(e->flag_node);
    free(e->nhwc);
    free(e->ew);
    e->ew = NULL, e->n_ew = 0;
    e->derived = NULL, e->steps = NULL, e->step_nodes = NULL, e->uploaded = NULL;
    e->flag_slot = NULL, e->flag_node = NULL, e->nhwc = NULL;
    e->n_derived = e->n_steps = e->n_fused = e->n_flags = e->n_nhwc = 0;
}

/* A new derived constant of dtype t and dims; its host values are filled by the caller. */
static int add_derived(tc_cuda_engine *e, tc_dtype t, int rank, const tc_dim *dims) {
    tc_cuda_derived *d = &e->derived[e->n_derived];
    memset(d, 0, sizeof *d);
    d->dtype = t;
    d->rank = rank;
    d->numel = 1;
    for (int i = 0; i < rank; i++) d->dims[i] = dims[i], d->numel *= dims[i];
    d->host = malloc((size_t)(d->numel ? d->numel : 1) * tc_dtype_size(t));
    if (!d->host) return -1;
    return e->n_derived++;
}

/* The derived weight (when a batch norm scaled it) and bias of a convolution group. */
static tc_status derive_conv(tc_cuda_engine *e, const tc_node *n, const conv_group *cg, tc_cuda_step *s,
                             tc_error *err) {
    const tc_value *w = tc_node_tensor(n, 1), *b = tc_node_tensor(n, 2);
    tc_dtype t = n->outputs[0]->dtype;
    s->weight = s->bias = -1;
    if (cg->fold && cg->any_bn) {
        s->weight = add_derived(e, t, w->rank, w->dims);
        if (s->weight < 0) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        tc_cuda_derived *d = &e->derived[s->weight];
        int64_t per = d->numel / cg->K;
        for (int64_t k = 0; k < cg->K; k++)
            for (int64_t i = 0; i < per; i++)
                tc_store_f64(d->host, t, k * per + i, tc_load_f64(w->data, w->dtype, k * per + i) * cg->scale[k]);
    }
    if (cg->fold || !b) {
        tc_dim kd = cg->K;
        s->bias = add_derived(e, t, 1, &kd);
        if (s->bias < 0) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t k = 0; k < cg->K; k++) tc_store_f64(e->derived[s->bias].host, t, k, cg->fold ? cg->shift[k] : 0.0);
    }
    return TC_OK;
}

static void mark_inputs(tc_cuda_engine *e, const tc_node *n, int skip_a, int skip_b) {
    for (int k = 0; k < n->n_inputs; k++) {
        const tc_value *v = n->inputs[k];
        if (!v || v->kind != TC_VALUE_CONSTANT) continue;
        if ((skip_a >= 0 && v == tc_node_tensor(n, skip_a)) || (skip_b >= 0 && v == tc_node_tensor(n, skip_b)))
            continue;
        e->uploaded[v->id] = true;
    }
}

/* ---- channels-last layout (off with NHWC=0) -------------------------------------------- */

/* Elementwise ops whose kernels compute position by position when every tensor operand has the
 * output's dims, so that they run unchanged on channels-last memory. */
static bool layout_free_op(int op) {
    switch (op) {
    case TC_OP_RELU: case TC_OP_HARDTANH: case TC_OP_SIGMOID: case TC_OP_GELU: case TC_OP_LEAKY_RELU:
    case TC_OP_ELU: case TC_OP_SILU: case TC_OP_HARDSWISH: case TC_OP_HARDSIGMOID: case TC_OP_ABS:
    case TC_OP_NEG: case TC_OP_EXP: case TC_OP_TANH: case TC_OP_ADD_TENSOR: case TC_OP_ADD_SCALAR:
    case TC_OP_SUB_TENSOR: case TC_OP_SUB_SCALAR: case TC_OP_MUL_TENSOR: case TC_OP_MUL_SCALAR:
    case TC_OP_DIV_TENSOR: case TC_OP_DIV_SCALAR: case TC_OP_MAXIMUM: case TC_OP_MINIMUM: case TC_OP_CLAMP:
    case TC_OP_CLAMP_MIN: case TC_OP_CLAMP_MAX: return true;
    default: return false;
    }
}

static bool chlast_dtype(tc_dtype t) { return t == TC_F16 || t == TC_BF16; }

/* A one-node step of a layout-free op with a rank-4 output (its operands of the output's dims
 * share its layout; the others, broadcast over some dims, stay NCHW and the kernel reads them so:
 * elementwise.c), or a generated chain whose operands all have the output's dims. */
static bool layout_free_step(const tc_cuda_engine *e, const tc_cuda_step *s) {
    const tc_graph *g = e->g;
    if (s->kind == TC_CUDA_STEP_EW) {
        const tc_cuda_ew_step *es = &e->ew[s->ew];
        const tc_value *y = g->nodes.items[s->last] ? ((const tc_node *)g->nodes.items[s->last])->outputs[0] : NULL;
        if (!y || y->rank != 4 || !chlast_dtype(es->dtype)) return false;
        for (int j = 0; j < es->n_in; j++)
            if (!es->in[j].full) return false;
        return true;
    }
    if (s->count != 1) return false;
    const tc_node *n = g->nodes.items[s->node];
    if (!layout_free_op(n->op) || n->n_outputs != 1) return false;
    const tc_value *y = n->outputs[0];
    return y->rank == 4 && chlast_dtype(y->dtype);
}

/* mean over H and W of a rank-4 value: reduce.c reads it in either layout. */
static bool hw_mean_step(const tc_graph *g, const tc_cuda_step *s) {
    if (s->count != 1) return false;
    const tc_node *n = g->nodes.items[s->node];
    if (n->op != TC_OP_MEAN_DIM || !n->inputs[0] || n->inputs[0]->rank != 4) return false;
    bool red[TC_MAX_RANK];
    tc_reduce_dims(n, 4, red);
    return !red[0] && !red[1] && red[2] && red[3];
}

/* A 2-D, non-transposed convolution step in f16/bf16: its kernel reads and writes channels-last. */
static bool chlast_conv_step(const tc_graph *g, const tc_cuda_step *s) {
    const tc_node *n = g->nodes.items[s->node];
    if (n->op != TC_OP_CONVOLUTION || tc_node_bool(n, 6)) return false;
    const tc_value *x = tc_node_tensor(n, 0), *w = tc_node_tensor(n, 1);
    return x && w && w->rank == 4 && x->rank == 4 && chlast_dtype(n->outputs[0]->dtype);
}

static int uf_find(int *parent, int v) {
    while (parent[v] != v) v = parent[v] = parent[parent[v]];
    return v;
}

static void uf_join(int *parent, int a, int b) {
    a = uf_find(parent, a), b = uf_find(parent, b);
    if (a != b) parent[a] = b;
}

/* A channels-last copy [K, R, S, C] of a convolution weight whose values the host has (from a
 * derived constant when the step has one); the step then reads it instead. For a depthwise
 * convolution that runs on our kernel, channels-last means [R, S, K] (cuda.h, tc_cuda_tensor). */
static tc_status derive_chlast_weight(tc_cuda_engine *e, const lower_ctx *L, tc_cuda_step *s, tc_error *err) {
    const tc_node *n = e->g->nodes.items[s->node];
    const tc_value *w = tc_node_tensor(n, 1);
    const void *src;
    tc_dtype t;
    int64_t dims[4];
    if (s->weight >= 0) {
        const tc_cuda_derived *d = &e->derived[s->weight];
        src = d->host, t = d->dtype;
        memcpy(dims, d->dims, sizeof dims);
    } else {
        if (!host_const(w)) return TC_OK; /* a computed weight: transposed at each run */
        src = w->data, t = w->dtype;
        memcpy(dims, w->dims, sizeof dims);
    }
    int k = add_derived(e, t, 4, dims);
    if (k < 0) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_cuda_derived *d = &e->derived[k];
    size_t es = tc_dtype_size(t);
    int64_t K = dims[0], C = dims[1], RS = dims[2] * dims[3];
    /* a depthwise weight [K, 1, R, S] for our kernel goes [R, S, K]: a thread's channels are adjacent */
    bool taps_major = C == 1 && tc_cuda_conv_runs_depthwise(e->depthwise_mode, tc_node_int(n, 8), K, K, false);
    for (int64_t a = 0; a < K; a++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t r = 0; r < RS; r++) {
                int64_t to = taps_major ? r * K + a : (a * RS + r) * C + c;
                memcpy((char *)d->host + to * es, (const char *)src + ((a * C + c) * RS + r) * es, es);
            }
    d->nhwc = true;
    if (s->weight >= 0) { /* the scaled weight is only needed in its new layout */
        tc_cuda_derived *old = &e->derived[s->weight];
        free(old->host);
        old->host = NULL;
        old->numel = 0;
    } else if (L->users[w->id] == 1 && !L->is_out[w->id]) {
        e->uploaded[w->id] = false; /* nothing else reads the original */
    }
    s->weight = k;
    return TC_OK;
}

/* Chooses the values stored channels-last: groups of values that layout-free steps tie together
 * (operand and result share one layout), where every value is an f16/bf16 rank-4 intermediate
 * (no graph input, output or constant) written by a convolution or a layout-free step and read
 * only by convolutions (as input or fused residual) and layout-free steps, and where some
 * convolution reads or writes one of them. A convolution's fused residual shares its output's
 * layout. Elsewhere values stay NCHW, and a convolution between the two layouts transposes. */
static tc_status assign_layouts(tc_cuda_engine *e, const lower_ctx *L, tc_error *err) {
    const tc_graph *g = e->g;
    int nv = g->values.n;
    int *parent = malloc(((size_t)nv + 1) * sizeof *parent);
    bool *bad = calloc((size_t)nv + 1, sizeof *bad), *conv_io = calloc((size_t)nv + 1, sizeof *conv_io);
    bool *inside = calloc((size_t)nv + 1, sizeof *inside);
    e->nhwc = calloc((size_t)nv + 1, sizeof *e->nhwc);
    if (!parent || !bad || !conv_io || !inside || !e->nhwc) {
        free(parent), free(bad), free(conv_io), free(inside);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nv; i++) {
        const tc_value *v = g->values.items[i];
        parent[i] = i;
        bad[i] = v->kind != TC_VALUE_NODE || v->rank != 4 || !chlast_dtype(v->dtype) || L->is_out[i];
    }
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *s = &e->steps[si];
        const tc_node *head = g->nodes.items[s->node], *last = g->nodes.items[s->last];
        bool conv = chlast_conv_step(g, s), free_op = layout_free_step(e, s), hw_mean = hw_mean_step(g, s);
        /* what the step writes: its last node's output (fused) or its node's outputs */
        int n_made = s->count > 1 ? 1 : head->n_outputs;
        for (int k = 0; k < s->count; k++) { /* values made and read inside the step */
            const tc_node *m = g->nodes.items[e->step_nodes[s->first + k]];
            for (int o = 0; o < m->n_outputs; o++) inside[m->outputs[o]->id] = true;
        }
        for (int o = 0; o < n_made; o++) {
            const tc_value *y = last->outputs[o];
            inside[y->id] = false;
            if (conv) conv_io[y->id] = true;
            else if (!free_op) bad[y->id] = true;
        }
        const tc_value *y = last->outputs[0];
        for (int k = 0; k < s->count; k++) {
            const tc_node *m = g->nodes.items[e->step_nodes[s->first + k]];
            for (int a = 0; a < m->n_inputs; a++) {
                const tc_value *v = m->inputs[a];
                if (!v || inside[v->id]) continue;
                if (conv && ((m == head && a == 0) || v->id == s->residual)) {
                    conv_io[v->id] = true;
                    if (v->id == s->residual) uf_join(parent, v->id, y->id);
                } else if (free_op && same_type(v, y)) {
                    uf_join(parent, v->id, y->id);
                } else if (hw_mean && a == 0) {
                    /* read in either layout */
                } else {
                    bad[v->id] = true;
                }
            }
        }
        for (int k = 0; k < s->count; k++) {
            const tc_node *m = g->nodes.items[e->step_nodes[s->first + k]];
            for (int o = 0; o < m->n_outputs; o++) inside[m->outputs[o]->id] = false;
        }
    }
    /* a group is channels-last when nothing in it is bad and a convolution touches it */
    bool *gbad = inside, *gconv = calloc((size_t)nv + 1, sizeof *gconv); /* inside is all false again */
    if (!gconv) {
        free(parent), free(bad), free(conv_io), free(inside);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nv; i++) {
        int r = uf_find(parent, i);
        gbad[r] = gbad[r] || bad[i];
        gconv[r] = gconv[r] || conv_io[i];
    }
    for (int i = 0; i < nv; i++) {
        int r = uf_find(parent, i);
        e->nhwc[i] = !gbad[r] && gconv[r];
        e->n_nhwc += e->nhwc[i];
    }
    free(parent), free(bad), free(conv_io), free(inside), free(gconv);
    /* convolutions that run channels-last read a weight stored so */
    tc_status st = TC_OK;
    for (int si = 0; st == TC_OK && si < e->n_steps; si++) {
        tc_cuda_step *s = &e->steps[si];
        if (!chlast_conv_step(g, s)) continue;
        const tc_node *head = g->nodes.items[s->node], *last = g->nodes.items[s->last];
        if (e->nhwc[tc_node_tensor(head, 0)->id] || e->nhwc[last->outputs[0]->id]) st = derive_chlast_weight(e, L, s, err);
    }
    return st;
}

static int cmp_last(const void *a, const void *b) {
    const tc_cuda_step *x = a, *y = b;
    return (x->last > y->last) - (x->last < y->last);
}

tc_status tc_cuda_lower_steps(tc_cuda_engine *e, bool fuse, tc_error *err) {
    const tc_graph *g = e->g;
    int nn = g->nodes.n, nv = g->values.n;
    lower_ctx L = {g, calloc((size_t)nv + 1, sizeof(int)), calloc((size_t)nv + 1, sizeof(int)),
                   calloc((size_t)nv + 1, sizeof(bool)), calloc((size_t)nn + 1, sizeof(bool)), e->depthwise_mode};
    e->steps = calloc((size_t)nn + 1, sizeof *e->steps);
    e->step_nodes = calloc((size_t)nn + 1, sizeof *e->step_nodes);
    e->derived = calloc(3 * (size_t)nn + 1, sizeof *e->derived); /* weight, bias, channels-last weight */
    e->uploaded = calloc((size_t)nv + 1, sizeof *e->uploaded);
    e->flag_slot = calloc((size_t)nn + 1, sizeof *e->flag_slot);
    e->flag_node = calloc((size_t)nn + 1, sizeof *e->flag_node);
    tc_status st = TC_OK;
    if (!L.users || !L.consumer || !L.is_out || !L.taken || !e->steps || !e->step_nodes || !e->derived ||
        !e->uploaded || !e->flag_slot || !e->flag_node)
        st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == TC_OK && i < nv; i++) L.consumer[i] = -1;
    for (int i = 0; st == TC_OK && i < nn; i++) {
        const tc_node *n = g->nodes.items[i];
        TC_ASSERT(n->id == i);
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k]) L.users[n->inputs[k]->id]++, L.consumer[n->inputs[k]->id] = i;
    }
    for (int i = 0; st == TC_OK && i < g->outputs.n; i++) {
        const tc_value *v = g->outputs.items[i];
        L.is_out[v->id] = true;
        if (v->kind == TC_VALUE_CONSTANT) e->uploaded[v->id] = true;
    }
    int used = 0;
    for (int i = 0; st == TC_OK && i < nn; i++) {
        const tc_node *n = g->nodes.items[i];
        e->flag_slot[i] = -1;
        if (can_fail_on_device(n)) {
            e->flag_node[e->n_flags] = i;
            e->flag_slot[i] = e->n_flags++;
        }
        if (L.taken[i]) continue;
        tc_cuda_step *s = &e->steps[e->n_steps++];
        memset(s, 0, sizeof *s);
        s->kind = TC_CUDA_STEP_NODE;
        s->node = s->last = i;
        s->first = used;
        s->weight = s->bias = s->residual = -1;
        e->step_nodes[used++] = i;
        L.taken[i] = true;
        if (fuse && conv_head_ok(n)) {
            conv_group cg;
            st = grow_conv(&L, n, &cg, err);
            if (st == TC_OK && cg.count > 1) {
                s->kind = TC_CUDA_STEP_CONV;
                s->residual = cg.residual;
                s->act1 = cg.act1;
                s->act2 = cg.act2;
                st = derive_conv(e, n, &cg, s, err);
                for (int k = 1; k < cg.count; k++) {
                    e->step_nodes[used++] = cg.nodes[k];
                    L.taken[cg.nodes[k]] = true;
                }
                s->last = cg.nodes[cg.count - 1];
            }
            free(cg.scale);
        } else if (fuse && e->ew_mode && tc_cuda_ew_node_ok(n)) {
            tc_cuda_ew_step es;
            int nodes[TC_CUDA_EW_MAX_NODES];
            grow_ew(&L, n, &es, nodes);
            if (es.n_nodes >= 2) {
                if (!e->ew) e->ew = calloc((size_t)nn / 2 + 1, sizeof *e->ew);
                if (!e->ew) {
                    st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory");
                } else {
                    s->kind = TC_CUDA_STEP_EW;
                    s->ew = e->n_ew;
                    e->ew[e->n_ew++] = es;
                    for (int k = 1; k < es.n_nodes; k++) {
                        e->step_nodes[used++] = nodes[k];
                        L.taken[nodes[k]] = true;
                    }
                    s->last = nodes[es.n_nodes - 1];
                }
            }
        } else if (fuse && gemm_head_ok(n)) {
            const tc_node *m;
            tc_cuda_epi_act act = gemm_act(&L, n, &m);
            int res = act == TC_CUDA_EPI_NONE ? gemm_residual(&L, n, &m) : -1;
            if (act != TC_CUDA_EPI_NONE || res >= 0) {
                s->kind = TC_CUDA_STEP_GEMM;
                s->act1 = act;
                s->residual = res;
                e->step_nodes[used++] = m->id;
                L.taken[m->id] = true;
                s->last = m->id;
            }
        }
        s->count = used - s->first;
        e->n_fused += s->count - 1;
        if (s->kind == TC_CUDA_STEP_CONV) {
            mark_inputs(e, n, s->weight >= 0 ? 1 : -1, s->bias >= 0 ? 2 : -1);
            if (s->residual >= 0 && ((tc_value *)g->values.items[s->residual])->kind == TC_VALUE_CONSTANT)
                e->uploaded[s->residual] = true;
        } else {
            for (int k = 0; k < s->count; k++) mark_inputs(e, g->nodes.items[e->step_nodes[s->first + k]], -1, -1);
        }
    }
    if (st == TC_OK && e->nhwc_mode) st = assign_layouts(e, &L, err);
    free(L.users);
    free(L.consumer);
    free(L.is_out);
    free(L.taken);
    if (st != TC_OK) {
        tc_cuda_free_steps(e);
        return st;
    }
    TC_ASSERT(used == nn);
    qsort(e->steps, (size_t)e->n_steps, sizeof *e->steps, cmp_last);
    return TC_OK;
}

/* ---- description --------------------------------------------------------------------------- */

static const char *act_text(tc_cuda_epi_act a) {
    return a == TC_CUDA_EPI_RELU ? "relu" : a == TC_CUDA_EPI_GELU_TANH ? "gelu (tanh form)"
                                          : a == TC_CUDA_EPI_HARDSWISH ? "hardswish" : "";
}

void tc_cuda_engine_read_switches(tc_cuda_engine *e) {
    e->fuse = tc_cuda_env_flag("TENSORC_CUDA_FUSE", true);
    e->ew_mode = tc_cuda_env_flag("TENSORC_CUDA_NVRTC", true);
    e->nhwc_mode = tc_cuda_env_flag("TENSORC_CUDA_NHWC", true);
    e->views_mode = tc_cuda_env_flag("TENSORC_CUDA_VIEWS", true);
    e->depthwise_mode = tc_cuda_env_flag("TENSORC_CUDA_DEPTHWISE", true);
}

tc_status tc_cuda_lower_for_description(const tc_graph *g, tc_cuda_engine *e, char *buf, size_t n) {
    memset(e, 0, sizeof *e);
    e->g = g;
    tc_cuda_engine_read_switches(e);
    tc_error err;
    tc_error_clear(&err);
    tc_status st = tc_cuda_lower_steps(e, e->fuse, &err);
    if (st != TC_OK) snprintf(buf, n, "%s", err.msg);
    return st;
}

tc_status tc_cuda_describe_steps(const tc_graph *g, char *buf, size_t n, int *n_steps, int *n_fused) {
    if (n_steps) *n_steps = 0;
    if (n_fused) *n_fused = 0;
    if (!g || !buf || !n) return TC_ERR_INVALID_ARGUMENT;
    buf[0] = 0;
    tc_cuda_engine e;
    tc_status st = tc_cuda_lower_for_description(g, &e, buf, n);
    if (st != TC_OK) return st;
    size_t len = 0;
    for (int i = 0; i < e.n_steps && len < n; i++) {
        const tc_cuda_step *s = &e.steps[i];
        for (int k = 0; k < s->count && len < n; k++) {
            const tc_node *m = g->nodes.items[e.step_nodes[s->first + k]];
            len += (size_t)snprintf(buf + len, n - len, "%s%s", k ? " + " : "", m->name);
        }
        const tc_node *h = g->nodes.items[s->node];
        if (s->kind == TC_CUDA_STEP_EW && len < n)
            len += (size_t)snprintf(buf + len, n - len, ": generated kernel (%d ops, %d inputs)", s->count,
                                    e.ew[s->ew].n_in);
        else if (len < n) len += (size_t)snprintf(buf + len, n - len, ": %s", h->op_name);
        if (s->kind == TC_CUDA_STEP_CONV && len < n)
            len += (size_t)snprintf(buf + len, n - len, "%s%s%s%s%s%s%s", s->weight >= 0 ? ", folded scale" : "",
                                    s->bias >= 0 ? ", bias" : "", s->act1 ? ", " : "", act_text(s->act1),
                                    s->residual >= 0 ? ", residual add" : "", s->act2 ? ", " : "",
                                    act_text(s->act2));
        if (s->kind == TC_CUDA_STEP_GEMM && len < n)
            len += (size_t)snprintf(buf + len, n - len, ", %s epilogue",
                                    s->residual >= 0 ? "residual add" : act_text(s->act1));
        if (e.nhwc && len < n) {
            const tc_node *last = g->nodes.items[s->last];
            const tc_value *x0 = h->n_inputs ? h->inputs[0] : NULL;
            bool in = x0 && e.nhwc[x0->id], out = e.nhwc[last->outputs[0]->id];
            if (in || out)
                len += (size_t)snprintf(buf + len, n - len, " [channels-last %s]", in && out ? "in, out" : in ? "in" : "out");
        }
        if (len < n) len += (size_t)snprintf(buf + len, n - len, "\n");
    }
    if (n_steps) *n_steps = e.n_steps;
    if (n_fused) *n_fused = e.n_fused;
    tc_cuda_free_steps(&e);
    return len < n ? TC_OK : TC_ERR_INVALID_ARGUMENT;
}
