/* CUDA kernel for scaled_dot_product_attention: argument handling on the host (batch broadcast
 * strides, grouped-query heads, mask broadcast, checks of sizes that were symbolic at inference),
 * mirroring backend/cpu/attention.c. Unless TENSORC_CUDNN_SDPA=0, f16/bf16 attention without mask,
 * causal masking or broadcast runs on cuDNN's fused attention (the SDPA operation of its graph
 * API, tensor cores); everything else, and any case cuDNN declines, on our fused kernel in
 * kernels/attention.cu. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/cudnn.h"
#include "backend/cuda/kernels/attention.h"
#include "backend/cuda/kernels/shape.h"
#include "core/dtype.h"
#include "ops/attention_params.h"
#include "ops/shape_views.h"
#include "engine/serialize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cuDNN's fused attention ----------------------------------------------------------------- */

#if defined(CUDNN_VERSION) && CUDNN_VERSION >= 91300
#define TC_HAVE_CUDNN_SDPA 1
#endif

enum { SDPA_UID_Q = 1, SDPA_UID_K, SDPA_UID_V, SDPA_UID_O, SDPA_UID_SCALE };
enum { SDPA_KEY_LEN = 29 };
#define SDPA_TAG ((int64_t)0x73647061 << 8 | 2) /* "sdpa", key layout version 2 (see cublaslt.c) */
enum { SDPA_REC_HEAD = 4 };                         /* record: 4 zero bytes (as conv's header), then JSON */

typedef struct sdpa_plan {
    int64_t key[SDPA_KEY_LEN];
    tc_cudnn_graph *graph; /* NULL: cuDNN has no engine for this case, our kernel runs it */
    float scale;           /* the by-value scale tensor's host value */
} sdpa_plan;

static void sdpa_plan_free(void *ptr) {
    sdpa_plan *p = ptr;
    if (!p) return;
    tc_cudnn_graph_free(p->graph);
    free(p);
}

static unsigned align16(const void *p) {
    uintptr_t v = (uintptr_t)p;
    unsigned a = 1;
    while (a < 16 && v % (2u * a) == 0) a *= 2;
    return a;
}

/* The strides of t as a [B, H, rows, E] operand of cuDNN's SDPA, whose batch and heads are the
 * output's ob: its own (a strided view, views.c) or packed; a dim of one element gets the stride
 * past the others. False for another rank, a broadcast batch or head, or elements of a row that
 * are not adjacent. */
static bool sdpa_strides(const tc_cuda_tensor *t, const int64_t *ob, int64_t *st) {
    if (t->rank != 4 || t->dims[0] != ob[0] || t->dims[1] != ob[1]) return false;
    int64_t span = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = t->strides ? t->strides[d] : span;
        span *= t->dims[d];
    }
    int64_t past = 1;
    for (int d = 0; d < 4; d++)
        if (t->dims[d] > 1) {
            if (st[d] < 1) return false;
            if (st[d] * t->dims[d] > past) past = st[d] * t->dims[d];
        }
    for (int d = 0; d < 4; d++)
        if (t->dims[d] == 1) st[d] = past;
    return st[3] == 1;
}

/* Whether cuDNN's SDPA operation may run a: f16 or bf16 [B, H, L, E] operands whose rows are
 * adjacent elements (packed, or strided views with any row, head and batch strides; st: Q, K, V,
 * O), no broadcast batch or head, no grouped-query heads, value width = key width, a head width
 * that is a multiple of 8 up to 128, no mask and no causal masking (cuDNN 9.19's operation has
 * neither). TENSORC_CUDNN_SDPA=0 turns the path off. */
static bool sdpa_fits_cudnn(const tc_cuda_sdpa_args *a, const tc_cuda_tensor *const *t, int64_t (*st)[4]) {
#ifdef TC_HAVE_CUDNN_SDPA
    if (a->dtype != TC_F16 && a->dtype != TC_BF16) return false;
    if (a->mask || a->causal || a->k_rep != 1 || a->v_rep != 1 || a->rb != 2) return false;
    if (a->E != a->Ev || a->E % 8 || a->E < 8 || a->E > 128 || a->L < 1 || a->S < 1) return false;
    for (int i = 0; i < 4; i++)
        if (!sdpa_strides(t[i], a->ob, st[i])) return false;
    static _Atomic int ok = -1; /* the operation needs cuDNN 9.13.1 at run time */
    if (ok < 0) ok = cudnnGetVersion() >= 91301;
    return ok && tc_cuda_env_flag("TENSORC_CUDNN_SDPA", true);
#else
    (void)a, (void)t, (void)st;
    return false;
#endif
}

#ifdef TC_HAVE_CUDNN_SDPA
static tc_status sdpa_graph(void *handle, const tc_cuda_sdpa_args *a, int64_t (*st4)[4], const unsigned *align,
                            bool relaxed, int64_t max_ws, tc_cudnn_graph **out, tc_error *err) {
    *out = NULL;
    tc_cudnn_graph *g;
    TC_TRY(tc_cudnn_graph_create(&g, err));
    int64_t B = a->ob[0], H = a->ob[1];
    const int64_t rows[4] = {a->L, a->S, a->S, a->L};
    tc_status st = TC_OK;
    for (int t = 0; st == TC_OK && t < 4; t++) {
        tc_cudnn_tensor d = {0};
        d.uid = SDPA_UID_Q + t, d.dtype = a->dtype, d.rank = 4, d.alignment = align[t];
        d.dims[0] = B, d.dims[1] = H, d.dims[2] = rows[t], d.dims[3] = a->E;
        memcpy(d.strides, st4[t], sizeof st4[t]);
        st = tc_cudnn_graph_tensor(g, &d, err);
    }
    if (st == TC_OK) {
        tc_cudnn_tensor d = {0};
        d.uid = SDPA_UID_SCALE, d.dtype = TC_F32, d.rank = 4, d.by_value = true;
        for (int i = 0; i < 4; i++) d.dims[i] = 1, d.strides[i] = 1;
        st = tc_cudnn_graph_tensor(g, &d, err);
    }
    cudnnBackendDescriptor_t op = NULL;
    if (st == TC_OK) st = tc_cudnn_check(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, &op),
                                         "SDPA operation creation", err);
    const cudnnBackendAttributeName_t attrs[5] = {
        CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC,
        CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC};
    for (int i = 0; st == TC_OK && i < 5; i++) {
        cudnnBackendDescriptor_t td = tc_cudnn_graph_tensor_desc(g, SDPA_UID_Q + i);
        st = tc_cudnn_check(cudnnBackendSetAttribute(op, attrs[i], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &td),
                            "SDPA operation tensors", err);
    }
    if (st == TC_OK) st = tc_cudnn_check(cudnnBackendFinalize(op), "SDPA operation finalize", err);
    if (st == TC_OK) {
        st = tc_cudnn_graph_add_op(g, op, err); /* the graph owns op from here, also on failure */
        op = NULL;
    }
    if (op) cudnnBackendDestroyDescriptor(op);
    if (st == TC_OK) {
        tc_cudnn_plan_options o = {0};
        o.allow_down_convert = relaxed;
        o.max_workspace = max_ws;
        o.candidates = 1;
        st = tc_cudnn_graph_build(g, handle, &o, err);
    }
    if (st != TC_OK) {
        tc_cudnn_graph_free(g);
        return st;
    }
    *out = g;
    return TC_OK;
}
#endif

/* The plan for a's key: from the engine's table (a stored plan), else built (strict numerics, then
 * the engines that compute in reduced precision, as flash attention in f16 does); p->graph stays
 * NULL when cuDNN has no engine. Out of memory is the only failure. */
static tc_status sdpa_make_plan(const tc_cuda_call *c, const tc_cuda_sdpa_args *a, int64_t (*stv)[4],
                                const unsigned *align, sdpa_plan *p) {
#ifdef TC_HAVE_CUDNN_SDPA
    /* a key first met inside a capture (new pointer alignments) gets no plan: our kernel runs it */
    if (tc_cuda_capturing(c)) return TC_OK;
    void *handle = tc_cuda_cudnn(c);
    if (!handle) return TC_OK;
    int64_t max_ws = (int64_t)tc_cuda_workspace_limit(c);
    size_t len = 0;
    char *rec = tc_cuda_choice_find(c, TC_RECORD_CUDNN_PLAN, p->key, sizeof p->key, &len);
    bool had = rec != NULL;
    tc_error why = {0};
    char label[256];
    tc_node_label(c->node, label, sizeof label);
    if (rec && (len <= SDPA_REC_HEAD || memcmp(rec, "\0\0\0\0", SDPA_REC_HEAD) != 0 ||
                tc_cudnn_graph_from_json(handle, rec + SDPA_REC_HEAD, len - SDPA_REC_HEAD, max_ws, &p->graph,
                                         &why) != TC_OK)) {
        p->graph = NULL;
        if (tc_tactic_log())
            fprintf(stderr, "tensorc tactic: %s: the stored cuDNN attention plan cannot be used here (%s); choosing "
                            "again\n", label, why.msg[0] ? why.msg : "a malformed record");
    }
    free(rec);
    if (p->graph) {
        tc_cuda_choice_used(c);
        return TC_OK;
    }
    if (had) tc_cuda_choice_drop(c, TC_RECORD_CUDNN_PLAN, p->key, sizeof p->key);
    tc_status st = TC_ERR_UNSUPPORTED;
    for (int relaxed = 0; relaxed < 2 && st != TC_OK; relaxed++) {
        st = sdpa_graph(handle, a, stv, align, relaxed == 1, max_ws, &p->graph, &why);
        if (st == TC_ERR_OUT_OF_MEMORY) return tc_cuda_fail(c, st, "%s", why.msg);
    }
    if (tc_tactic_log()) {
        fprintf(stderr, "tensorc tactic: %s: attention %s b%lld h%lld l%lld s%lld e%lld: %s%s\n",
                label, tc_dtype_name(a->dtype), (long long)a->ob[0],
                (long long)a->ob[1], (long long)a->L, (long long)a->S, (long long)a->E,
                p->graph ? "cuDNN " : "our kernel, cuDNN declined: ", p->graph ? tc_cudnn_graph_engine(p->graph) : why.msg);
    }
    if (!p->graph) return TC_OK;
    char *json = NULL;
    unsigned char *body = NULL;
    if (tc_cudnn_graph_plan_json(p->graph, &json, &len, &why) == TC_OK &&
        (body = calloc(SDPA_REC_HEAD + len, 1)) != NULL) {
        char desc[96];
        snprintf(desc, sizeof desc, "cudnn sdpa %s", tc_cudnn_graph_engine(p->graph));
        memcpy(body + SDPA_REC_HEAD, json, len);
        tc_cuda_choice_store(c, TC_RECORD_CUDNN_PLAN, p->key, sizeof p->key, desc, body, SDPA_REC_HEAD + len, had);
    } else if (tc_tactic_log()) {
        fprintf(stderr, "tensorc tactic: %s: the cuDNN attention plan is not stored: %s\n", label,
                why.msg[0] ? why.msg : "out of memory");
    }
    free(body);
    free(json);
#else
    (void)c, (void)a, (void)stv, (void)align, (void)p;
#endif
    return TC_OK;
}

/* Runs a on cuDNN when it fits and cuDNN has an engine; *ran tells whether it did. */
static tc_status sdpa_cudnn(const tc_cuda_call *c, const tc_cuda_sdpa_args *a, const tc_cuda_tensor *const *t,
                            bool *ran) {
    *ran = false;
    int64_t st4[4][4];
    if (!sdpa_fits_cudnn(a, t, st4) || a->L * a->S == 0) return TC_OK;
    unsigned align[4] = {align16(a->q), align16(a->k), align16(a->v), align16(a->o)};
    int64_t scale_bits = 0;
    memcpy(&scale_bits, &a->scale, sizeof a->scale);
    int64_t key[SDPA_KEY_LEN] = {SDPA_TAG, a->dtype, a->ob[0], a->ob[1], a->L,     a->S,    a->E,
                                 scale_bits, align[0], align[1], align[2], align[3], tc_cuda_allow_tf32(c)};
    for (int i = 0; i < 4; i++) memcpy(&key[13 + 4 * i], st4[i], sizeof st4[i]);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < SDPA_KEY_LEN; i++) h = (h ^ (uint64_t)key[i]) * 1099511628211ull;
    void **slot = tc_cuda_shared_cache(c, h, sdpa_plan_free);
    if (!slot) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for the attention plan cache");
    sdpa_plan *p = *slot;
    if (p && memcmp(p->key, key, sizeof key) != 0) {
        sdpa_plan_free(p);
        *slot = p = NULL;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for an attention plan");
        memcpy(p->key, key, sizeof key);
        p->scale = a->scale;
        tc_status st = sdpa_make_plan(c, a, st4, align, p);
        if (st != TC_OK) {
            sdpa_plan_free(p);
            return st;
        }
        *slot = p;
    }
    if (!p->graph) return TC_OK;
    int64_t wsb = tc_cudnn_graph_workspace(p->graph);
    void *ws = wsb > 0 ? tc_cuda_scratch(c, 0, (size_t)wsb) : NULL;
    if (wsb > 0 && !ws)
        return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %lld bytes of scratch memory for the attention workspace",
                            (long long)wsb);
    const int64_t uids[5] = {SDPA_UID_Q, SDPA_UID_K, SDPA_UID_V, SDPA_UID_O, SDPA_UID_SCALE};
    void *const ptrs[5] = {(void *)a->q, (void *)a->k, (void *)a->v, a->o, &p->scale};
    tc_status st = tc_cudnn_graph_execute(p->graph, tc_cuda_cudnn(c), 5, uids, ptrs, ws, c->err);
    if (st != TC_OK && st != TC_ERR_OUT_OF_MEMORY && !tc_cuda_capturing(c)) {
        /* an engine that refuses these buffers at launch: our kernel runs this key from now on */
        if (tc_tactic_log()) {
            char label[256];
            fprintf(stderr, "tensorc tactic: %s: cuDNN attention failed at launch (%s); our kernel runs it\n",
                    tc_node_label(c->node, label, sizeof label), c->err->msg);
        }
        tc_cudnn_graph_free(p->graph);
        p->graph = NULL;
        tc_cuda_choice_drop(c, TC_RECORD_CUDNN_PLAN, p->key, sizeof p->key);
        return TC_OK;
    }
    if (st != TC_OK) {
        char msg[sizeof c->err->msg];
        snprintf(msg, sizeof msg, "%s", c->err->msg);
        return tc_cuda_fail(c, st, "%s (%s)", msg, tc_cudnn_graph_engine(p->graph));
    }
    *ran = true;
    return TC_OK;
}

/* Copies the packed [dims] tensor src into dst, whose strides (none 0) are a permutation of a
 * packed layout of the same elements (an output written through, views.c): a gather in dst's
 * memory order. */
static tc_status unpack_into(const tc_cuda_call *c, const void *src, const tc_cuda_tensor *dst) {
    int r = dst->rank, order[TC_MAX_RANK], n = 0;
    int64_t packed[TC_MAX_RANK], dims[TC_MAX_RANK], st[TC_MAX_RANK];
    tc_shape_contiguous_strides(r, dst->dims, packed);
    for (int d = 0; d < r; d++)
        if (dst->dims[d] > 1) order[n++] = d;
    for (int i = 1; i < n; i++) /* by dst stride, largest first */
        for (int j = i; j > 0 && dst->strides[order[j]] > dst->strides[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    int64_t want = 1;
    for (int i = n - 1; i >= 0; i--) {
        if (dst->strides[order[i]] != want)
            return tc_cuda_fail(c, TC_ERR_INTERNAL, "the output's strides are not a permuted packed layout");
        want *= dst->dims[order[i]];
        dims[i] = dst->dims[order[i]], st[i] = packed[order[i]];
    }
    if (n == 0) dims[0] = 1, st[0] = 0, n = 1;
    tc_status gs = tc_cuda_gather_copy(src, dst->data, tc_dtype_size(dst->dtype), n, dims, st, 0, c->stream, c->err);
    if (gs == TC_OK) return TC_OK;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, gs, "%s", msg);
}

static tc_status cuda_sdpa(const tc_cuda_call *c) {
    const tc_cuda_tensor *q = tc_cuda_in(c, 0), *k = tc_cuda_in(c, 1), *v = tc_cuda_in(c, 2);
    const tc_cuda_tensor *mask = tc_cuda_in(c, 3);
    tc_cuda_tensor *y = c->out[0];
    if (q->dtype != TC_F32 && q->dtype != TC_F16 && q->dtype != TC_BF16)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "%s is not supported by the cuda attention kernel (f32, f16, bf16)",
                            tc_dtype_name(q->dtype));
    if (k->dtype != q->dtype || v->dtype != q->dtype || y->dtype != q->dtype)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "query, key, value and output must have one dtype");
    tc_cuda_sdpa_args a;
    memset(&a, 0, sizeof a);
    tc_sdpa_geom geo;
    tc_error why = {0};
    tc_shape_ref mref = mask ? (tc_shape_ref){mask->rank, mask->dims} : (tc_shape_ref){0, NULL};
    tc_status gs = tc_sdpa_geometry(c->node, (tc_shape_ref){q->rank, q->dims}, (tc_shape_ref){k->rank, k->dims},
                                    (tc_shape_ref){v->rank, v->dims}, (tc_shape_ref){y->rank, y->dims},
                                    mask ? &mref : NULL, &geo, &why);
    if (gs != TC_OK) return tc_cuda_fail(c, gs, "%s", why.msg);
    a.q = q->data, a.k = k->data, a.v = v->data, a.o = y->data;
    a.dtype = q->dtype;
    a.L = geo.L, a.S = geo.S, a.E = geo.E, a.Ev = geo.Ev, a.rb = geo.rb;
    memcpy(a.ob, geo.ob, sizeof a.ob);
    memcpy(a.qs, geo.qs, sizeof a.qs);
    memcpy(a.ks, geo.ks, sizeof a.ks);
    memcpy(a.vs, geo.vs, sizeof a.vs);
    memcpy(a.ms, geo.ms, sizeof a.ms);
    a.k_rep = geo.k_rep, a.v_rep = geo.v_rep, a.mask_ls = geo.mask_ls, a.mask_ss = geo.mask_ss;
    a.causal = geo.causal, a.scale = geo.scale;
    if (mask) {
        if (mask->dtype != TC_BOOL && mask->dtype != TC_F32 && mask->dtype != TC_F16 && mask->dtype != TC_BF16)
            return tc_cuda_fail(c, TC_ERR_DTYPE, "attn_mask dtype %s is not supported (bool, f32, f16, bf16)",
                                tc_dtype_name(mask->dtype));
        a.mask = mask->numel ? mask->data : NULL;
        a.mask_dtype = mask->dtype;
        if (!a.mask && y->numel && a.S)
            return tc_cuda_fail(c, TC_ERR_SHAPE, "attn_mask is empty but the scores are not");
    }
    bool ran = false;
    const tc_cuda_tensor *const t4[4] = {q, k, v, y};
    /* Our kernel reads packed operands and writes a packed output, so strided ones need scratch
     * (slots 1-3, and 0 for the output). A run inside CUDA graph capture cannot grow scratch, and a
     * cuDNN plan key first met there (new pointer alignments) falls back to our kernel: eager runs
     * reserve it whichever implementation they use. */
    for (int i = 0; i < 4 && !tc_cuda_capturing(c); i++) {
        if (!t4[i]->strides || !t4[i]->numel) continue;
        size_t bytes = (size_t)t4[i]->numel * tc_dtype_size(t4[i]->dtype);
        if (!tc_cuda_scratch(c, i == 3 ? 0 : 1 + i, bytes))
            return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %zu bytes of scratch memory for a packed operand", bytes);
    }
    TC_TRY(sdpa_cudnn(c, &a, t4, &ran));
    if (ran) return TC_OK;
    /* our kernel reads packed operands: a strided view (views.c) is gathered into scratch first */
    const void **packed[3] = {&a.q, &a.k, &a.v};
    for (int i = 0; i < 3; i++) {
        const tc_cuda_tensor *x = t4[i];
        if (!x->strides || !x->numel) continue;
        size_t bytes = (size_t)x->numel * tc_dtype_size(x->dtype);
        void *buf = tc_cuda_scratch(c, 1 + i, bytes);
        if (!buf) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %zu bytes of scratch memory for a packed operand", bytes);
        tc_status gs2 = tc_cuda_gather_copy(x->data, buf, tc_dtype_size(x->dtype), x->rank, x->dims, x->strides, 0,
                                            c->stream, c->err);
        if (gs2 != TC_OK) {
            char msg[sizeof c->err->msg];
            snprintf(msg, sizeof msg, "%s", c->err->msg);
            return tc_cuda_fail(c, gs2, "%s", msg);
        }
        *packed[i] = buf;
    }
    if (y->strides && y->numel) { /* our kernel writes packed: into scratch, then into y's layout */
        size_t bytes = (size_t)y->numel * tc_dtype_size(y->dtype);
        a.o = tc_cuda_scratch(c, 0, bytes);
        if (!a.o) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %zu bytes of scratch memory for the output", bytes);
    }
    tc_status s = tc_cuda_sdpa(&a, c->stream, c->err);
    if (s == TC_OK && y->strides && y->numel) return unpack_into(c, a.o, y);
    if (s == TC_OK || !c->err) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

void tc_cuda_register_attention(tc_cuda_kernel *t) { t[TC_OP_SDPA] = cuda_sdpa; }
