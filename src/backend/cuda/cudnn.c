/* cuDNN backend-API graph builder: tensor, convolution, pointwise and matmul descriptors, the
 * operation graph, engine heuristics (mode A, then the fallback list) filtered by numerical notes,
 * the execution plan, and execution through a variant pack. Every descriptor the graph creates is
 * kept until tc_cudnn_graph_free, because plans may refer to them. */
#include "backend/cuda/cudnn.h"
#include "backend/cuda/cublaslt.h"
#include "core/dtype.h"

#include <stdio.h>
#include <string.h>

enum { MAX_TENSORS = 32, MAX_OPS = 16, MAX_AUX = 48, MAX_CFGS = 256 };

struct tc_cudnn_graph {
    int ntensors;
    int64_t uids[MAX_TENSORS];
    cudnnBackendDescriptor_t tensors[MAX_TENSORS];
    int nops;
    cudnnBackendDescriptor_t ops[MAX_OPS];
    int naux; /* op sub-descriptors (convolution, pointwise, matmul settings) */
    cudnnBackendDescriptor_t aux[MAX_AUX];
    cudnnBackendDescriptor_t opgraph;
    cudnnBackendDescriptor_t heur[2];
    int ncfgs;
    cudnnBackendDescriptor_t cfgs[MAX_CFGS];
    /* finalized plans that passed the options, in heuristic order; plan is one of them */
    int ncands;
    cudnnBackendDescriptor_t cands[TC_TACTIC_MAX];
    int64_t cand_ws[TC_TACTIC_MAX], cand_id[TC_TACTIC_MAX];
    char cand_engine[TC_TACTIC_MAX][64];
    cudnnBackendDescriptor_t plan;
    int64_t workspace;
    char engine[64];
};

tc_status tc_cudnn_check(cudnnStatus_t s, const char *what, tc_error *err) {
    if (s == CUDNN_STATUS_SUCCESS) return TC_OK;
    char last[512] = "";
    cudnnGetLastErrorString(last, sizeof last);
    tc_status code = TC_ERR_CUDA;
    if ((int)s / 1000 == 3) code = TC_ERR_UNSUPPORTED;
    if (s == CUDNN_STATUS_ALLOC_FAILED || s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        code = TC_ERR_OUT_OF_MEMORY;
    return tc_errorf(err, code, "cuDNN %s failed: %s (%d)%s%s", what, cudnnGetErrorString(s), (int)s,
                     last[0] ? ": " : "", last);
}

#define DNN_TRY(call, what) TC_TRY(tc_cudnn_check((call), (what), err))

bool tc_cudnn_data_type(tc_dtype t, cudnnDataType_t *out) {
    switch (t) {
    case TC_F32: *out = CUDNN_DATA_FLOAT; return true;
    case TC_F16: *out = CUDNN_DATA_HALF; return true;
    case TC_BF16: *out = CUDNN_DATA_BFLOAT16; return true;
    case TC_F64: *out = CUDNN_DATA_DOUBLE; return true;
    case TC_F8E4M3: *out = CUDNN_DATA_FP8_E4M3; return true;
    case TC_I64: *out = CUDNN_DATA_INT64; return true;
    case TC_I32: *out = CUDNN_DATA_INT32; return true;
    case TC_I8: *out = CUDNN_DATA_INT8; return true;
    case TC_U8: *out = CUDNN_DATA_UINT8; return true;
    case TC_BOOL: *out = CUDNN_DATA_BOOLEAN; return true;
    case TC_DTYPE_COUNT: break;
    }
    return false;
}

tc_status tc_cudnn_graph_create(tc_cudnn_graph **out, tc_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "cuDNN graph: out of memory");
    return TC_OK;
}

static void destroy(cudnnBackendDescriptor_t d) {
    if (d) cudnnBackendDestroyDescriptor(d);
}

void tc_cudnn_graph_free(void *ptr) {
    tc_cudnn_graph *g = ptr;
    if (!g) return;
    for (int i = 0; i < g->ncands; i++) destroy(g->cands[i]);
    for (int i = 0; i < g->ncfgs; i++) destroy(g->cfgs[i]);
    for (int i = 0; i < 2; i++) destroy(g->heur[i]);
    destroy(g->opgraph);
    for (int i = 0; i < g->nops; i++) destroy(g->ops[i]);
    for (int i = 0; i < g->naux; i++) destroy(g->aux[i]);
    for (int i = 0; i < g->ntensors; i++) destroy(g->tensors[i]);
    free(g);
}

/* Creates a descriptor of type t kept in the graph's aux list. */
static tc_status new_aux(tc_cudnn_graph *g, cudnnBackendDescriptorType_t t, cudnnBackendDescriptor_t *out,
                         tc_error *err) {
    *out = NULL;
    if (g->naux >= MAX_AUX) return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN graph: too many descriptors");
    DNN_TRY(cudnnBackendCreateDescriptor(t, out), "descriptor creation");
    g->aux[g->naux++] = *out;
    return TC_OK;
}

static tc_status new_op(tc_cudnn_graph *g, cudnnBackendDescriptorType_t t, cudnnBackendDescriptor_t *out,
                        tc_error *err) {
    *out = NULL;
    if (g->nops >= MAX_OPS) return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN graph: too many operations");
    if (g->opgraph) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: already built");
    DNN_TRY(cudnnBackendCreateDescriptor(t, out), "operation creation");
    g->ops[g->nops++] = *out;
    return TC_OK;
}

tc_status tc_cudnn_graph_add_op(tc_cudnn_graph *g, cudnnBackendDescriptor_t op, tc_error *err) {
    if (g->nops >= MAX_OPS || g->opgraph) {
        destroy(op);
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN graph: too many operations, or already built");
    }
    g->ops[g->nops++] = op;
    return TC_OK;
}

cudnnBackendDescriptor_t tc_cudnn_graph_tensor_desc(const tc_cudnn_graph *g, int64_t uid) {
    for (int i = 0; i < g->ntensors; i++)
        if (g->uids[i] == uid) return g->tensors[i];
    return NULL;
}

static tc_status tensor_of(const tc_cudnn_graph *g, int64_t uid, cudnnBackendDescriptor_t *out, tc_error *err) {
    *out = tc_cudnn_graph_tensor_desc(g, uid);
    if (!*out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: tensor uid %lld is not declared", (long long)uid);
    return TC_OK;
}

tc_status tc_cudnn_graph_tensor(tc_cudnn_graph *g, const tc_cudnn_tensor *t, tc_error *err) {
    if (t->uid <= 0 || tc_cudnn_graph_tensor_desc(g, t->uid))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: tensor uid %lld is invalid or repeated",
                         (long long)t->uid);
    if (t->rank < 1 || t->rank > 8)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: tensor rank %d is outside 1..8", t->rank);
    if (g->ntensors >= MAX_TENSORS) return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN graph: too many tensors");
    cudnnDataType_t dt;
    if (!tc_cudnn_data_type(t->dtype, &dt))
        return tc_errorf(err, TC_ERR_DTYPE, "cuDNN graph: dtype %s has no cuDNN type", tc_dtype_name(t->dtype));
    int64_t strides[8];
    bool packed = true;
    for (int i = 0; i < t->rank; i++) packed = packed && t->strides[i] == 0;
    int64_t run = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        strides[i] = packed ? run : t->strides[i];
        run *= t->dims[i] > 0 ? t->dims[i] : 1;
    }
    int64_t align = t->alignment > 0 ? t->alignment : 16;
    cudnnBackendDescriptor_t d = NULL;
    DNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &d), "tensor descriptor creation");
    g->uids[g->ntensors] = t->uid;
    g->tensors[g->ntensors++] = d;
    bool virt = t->is_virtual, byval = t->by_value;
    DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt), "tensor data type");
    DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, t->rank, t->dims),
            "tensor dimensions");
    DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, t->rank, strides),
            "tensor strides");
    DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &t->uid), "tensor uid");
    DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align),
            "tensor alignment");
    if (virt)
        DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt),
                "tensor virtual flag");
    if (byval)
        DNN_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byval),
                "tensor by-value flag");
    char what[64];
    snprintf(what, sizeof what, "finalize of tensor %lld", (long long)t->uid);
    DNN_TRY(cudnnBackendFinalize(d), what);
    return TC_OK;
}

tc_status tc_cudnn_graph_conv(tc_cudnn_graph *g, tc_cudnn_conv_kind kind, int64_t x_uid, int64_t w_uid,
                              int64_t y_uid, const tc_cudnn_conv_params *p, tc_error *err) {
    if (p->nsp < 1 || p->nsp > 3)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: %d spatial dims", p->nsp);
    cudnnBackendDescriptor_t x, w, y, conv, op;
    TC_TRY(tensor_of(g, x_uid, &x, err));
    TC_TRY(tensor_of(g, w_uid, &w, err));
    TC_TRY(tensor_of(g, y_uid, &y, err));
    TC_TRY(new_aux(g, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv, err));
    int64_t nsp = p->nsp;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nsp),
            "convolution spatial dims");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp),
            "convolution compute type");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode),
            "convolution mode");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, nsp, p->pre_pad),
            "convolution pre-paddings");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, nsp, p->post_pad),
            "convolution post-paddings");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, nsp, p->dilation),
            "convolution dilations");
    DNN_TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, nsp, p->stride),
            "convolution strides");
    DNN_TRY(cudnnBackendFinalize(conv), "convolution descriptor finalize");
    float alpha = 1.0f, beta = 0.0f;
    if (kind == TC_CUDNN_CONV_FPROP) {
        TC_TRY(new_op(g, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op, err));
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         1, &x), "conv forward X");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         1, &w), "conv forward W");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         1, &y), "conv forward Y");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv), "conv forward descriptor");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1,
                                         &alpha), "conv forward alpha");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1,
                                         &beta), "conv forward beta");
        DNN_TRY(cudnnBackendFinalize(op), "conv forward operation finalize");
    } else {
        TC_TRY(new_op(g, CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, &op, err));
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x), "conv data-gradient DX");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w), "conv data-gradient W");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y), "conv data-gradient DY");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv), "conv data-gradient descriptor");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1,
                                         &alpha), "conv data-gradient alpha");
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1,
                                         &beta), "conv data-gradient beta");
        DNN_TRY(cudnnBackendFinalize(op), "conv data-gradient operation finalize");
    }
    return TC_OK;
}

tc_status tc_cudnn_graph_pointwise(tc_cudnn_graph *g, cudnnPointwiseMode_t mode, int64_t x_uid, int64_t b_uid,
                                   int64_t y_uid, tc_error *err) {
    cudnnBackendDescriptor_t x, b = NULL, y, pw, op;
    TC_TRY(tensor_of(g, x_uid, &x, err));
    if (b_uid > 0) TC_TRY(tensor_of(g, b_uid, &b, err));
    TC_TRY(tensor_of(g, y_uid, &y, err));
    TC_TRY(new_aux(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw, err));
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    DNN_TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode),
            "pointwise mode");
    DNN_TRY(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec),
            "pointwise precision");
    DNN_TRY(cudnnBackendFinalize(pw), "pointwise descriptor finalize");
    TC_TRY(new_op(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &op, err));
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                     &pw), "pointwise operation descriptor");
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x),
            "pointwise X");
    if (b)
        DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &b), "pointwise B");
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y),
            "pointwise Y");
    DNN_TRY(cudnnBackendFinalize(op), "pointwise operation finalize");
    return TC_OK;
}

tc_status tc_cudnn_graph_matmul(tc_cudnn_graph *g, int64_t a_uid, int64_t b_uid, int64_t c_uid, tc_error *err) {
    cudnnBackendDescriptor_t a, b, c, mm, op;
    TC_TRY(tensor_of(g, a_uid, &a, err));
    TC_TRY(tensor_of(g, b_uid, &b, err));
    TC_TRY(tensor_of(g, c_uid, &c, err));
    TC_TRY(new_aux(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, &mm, err));
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    DNN_TRY(cudnnBackendSetAttribute(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp),
            "matmul compute type");
    DNN_TRY(cudnnBackendFinalize(mm), "matmul descriptor finalize");
    TC_TRY(new_op(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, &op, err));
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a),
            "matmul A");
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b),
            "matmul B");
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c),
            "matmul C");
    DNN_TRY(cudnnBackendSetAttribute(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm),
            "matmul descriptor");
    DNN_TRY(cudnnBackendFinalize(op), "matmul operation finalize");
    return TC_OK;
}

/* The operation graph, with the handle set: without it the heuristics do not know the device
 * (seen on 9.19 on an H100: engines failing with CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH and a
 * SIGFPE inside the runtime-compiled engines). The attribute is deprecated, hence the pragma; a
 * release that refuses it gets a second try without. */
static tc_status finalize_opgraph(tc_cudnn_graph *g, cudnnHandle_t h, tc_error *err) {
    for (int attempt = 0; attempt < 2; attempt++) {
        destroy(g->opgraph);
        g->opgraph = NULL;
        DNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &g->opgraph),
                "operation graph creation");
        DNN_TRY(cudnnBackendSetAttribute(g->opgraph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         g->nops, g->ops), "operation graph ops");
        if (attempt == 0) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            if (cudnnBackendSetAttribute(g->opgraph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) !=
                CUDNN_STATUS_SUCCESS)
                continue;
#pragma GCC diagnostic pop
        }
        cudnnStatus_t s = cudnnBackendFinalize(g->opgraph);
        if (s == CUDNN_STATUS_SUCCESS) return TC_OK;
        if (attempt == 1) return tc_cudnn_check(s, "operation graph finalize", err);
    }
    return TC_OK;
}

static bool has_note(const cudnnBackendNumericalNote_t *notes, int64_t n, cudnnBackendNumericalNote_t which) {
    for (int64_t i = 0; i < n; i++)
        if (notes[i] == which) return true;
    return false;
}

/* Whether cfg's engine passes the options; *why says what excluded it. An alternative to the
 * first valid engine (extra) must also be deterministic and not transform the arithmetic (FFT,
 * Winograd): tuning picks between equally exact engines and never trades precision for speed. */
static bool cfg_allowed(cudnnBackendDescriptor_t cfg, const tc_cudnn_plan_options *o, bool extra, int64_t *engine_id,
                        const char **why) {
    *engine_id = -1;
    *why = NULL;
    cudnnBackendDescriptor_t eng = NULL;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return true;
    int64_t n = 0;
    cudnnBackendNumericalNote_t notes[32];
    int64_t nn = 0;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
        CUDNN_STATUS_SUCCESS) {
        (void)cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, engine_id);
        if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, 32, &nn,
                                     notes) != CUDNN_STATUS_SUCCESS)
            nn = 0;
    }
    cudnnBackendDestroyDescriptor(eng);
    if (nn > 32) nn = 32;
    if (o->forbid_tensor_cores && has_note(notes, nn, CUDNN_NUMERICAL_NOTE_TENSOR_CORE))
        *why = "uses tensor cores (TF32) while TF32 is off";
    else if (!o->allow_down_convert && (has_note(notes, nn, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS) ||
                                        has_note(notes, nn, CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION)))
        *why = "computes in reduced precision";
    else if (extra && (has_note(notes, nn, CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) ||
                       has_note(notes, nn, CUDNN_NUMERICAL_NOTE_FFT) || has_note(notes, nn, CUDNN_NUMERICAL_NOTE_WINOGRAD) ||
                       has_note(notes, nn, CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4) ||
                       has_note(notes, nn, CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6) ||
                       has_note(notes, nn, CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13)))
        *why = "is nondeterministic or transforms the arithmetic";
    return *why == NULL;
}

tc_status tc_cudnn_graph_build(tc_cudnn_graph *g, void *handle, const tc_cudnn_plan_options *opt, tc_error *err) {
    if (g->plan) return TC_OK;
    if (g->nops == 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: no operations");
    tc_cudnn_plan_options o = {0};
    if (opt) o = *opt;
    if (o.max_workspace <= 0) o.max_workspace = (int64_t)256 << 20;
    int want = o.candidates < 1 ? 1 : o.candidates > TC_TACTIC_MAX ? TC_TACTIC_MAX : o.candidates;
    cudnnHandle_t h = handle;
    TC_TRY(finalize_opgraph(g, h, err));

    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    const char *mode_names[2] = {"A", "fallback"};
    char last[512] = "";
    int tried = 0, excluded = 0;
    for (int m = 0; m < 2 && g->ncands < want; m++) {
        DNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &g->heur[m]), "heuristics creation");
        DNN_TRY(cudnnBackendSetAttribute(g->heur[m], CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g->opgraph), "heuristics graph");
        DNN_TRY(cudnnBackendSetAttribute(g->heur[m], CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m]),
                "heuristics mode");
        cudnnStatus_t s = cudnnBackendFinalize(g->heur[m]);
        if (s != CUDNN_STATUS_SUCCESS) {
            cudnnGetLastErrorString(last, sizeof last);
            continue;
        }
        int64_t count = 0;
        s = cudnnBackendGetAttribute(g->heur[m], CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &count, NULL);
        if (s != CUDNN_STATUS_SUCCESS || count <= 0) continue;
        if (count > MAX_CFGS - g->ncfgs) count = MAX_CFGS - g->ncfgs;
        /* a descriptor-valued Get fills descriptors the caller created */
        cudnnBackendDescriptor_t *cfgs = g->cfgs + g->ncfgs;
        int64_t made = 0;
        for (; made < count; made++)
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[made]) != CUDNN_STATUS_SUCCESS)
                break;
        g->ncfgs += (int)made;
        int64_t got = 0;
        s = cudnnBackendGetAttribute(g->heur[m], CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, made,
                                     &got, cfgs);
        if (s != CUDNN_STATUS_SUCCESS) {
            cudnnGetLastErrorString(last, sizeof last);
            continue;
        }
        if (got > made) got = made;
        for (int64_t i = 0; i < got && g->ncands < want; i++) {
            int64_t engine_id;
            const char *why;
            if (!cfg_allowed(cfgs[i], &o, g->ncands > 0, &engine_id, &why)) {
                excluded++;
                continue;
            }
            /* the fallback list repeats engines mode A already gave */
            bool seen = false;
            for (int k = 0; m == 1 && k < g->ncands; k++) seen = seen || g->cand_id[k] == engine_id;
            if (seen) continue;
            tried++;
            cudnnBackendDescriptor_t plan = NULL;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS)
                continue;
            int64_t ws = 0, n = 0;
            s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                         &cfgs[i]);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            /* the device again, as for the operation graph; ignored where the release refuses it */
            if (s == CUDNN_STATUS_SUCCESS)
                (void)cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
#pragma GCC diagnostic pop
            if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(plan);
            if (s == CUDNN_STATUS_SUCCESS)
                s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                             &ws);
            if (s != CUDNN_STATUS_SUCCESS || ws < 0 || ws > o.max_workspace) {
                if (s != CUDNN_STATUS_SUCCESS) cudnnGetLastErrorString(last, sizeof last);
                else snprintf(last, sizeof last, "engine %lld needs %lld bytes of workspace", (long long)engine_id,
                              (long long)ws);
                cudnnBackendDestroyDescriptor(plan);
                continue;
            }
            int k = g->ncands++;
            g->cands[k] = plan;
            g->cand_ws[k] = ws;
            g->cand_id[k] = engine_id;
            snprintf(g->cand_engine[k], sizeof g->cand_engine[k], "engine %lld (mode %s #%lld)", (long long)engine_id,
                     mode_names[m], (long long)i);
        }
    }
    if (g->ncands > 0) {
        g->plan = g->cands[0];
        g->workspace = g->cand_ws[0];
        snprintf(g->engine, sizeof g->engine, "%s", g->cand_engine[0]);
    }
    if (!g->plan)
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "cuDNN has no engine for this graph (%d configurations tried, %d excluded by precision "
                         "rules)%s%s",
                         tried, excluded, last[0] ? "; last cuDNN message: " : "", last);
    return TC_OK;
}

/* The global index of the engine a finalized plan runs, or -1. */
static int64_t plan_engine_id(cudnnBackendDescriptor_t plan) {
    int64_t id = -1, n = 0;
    cudnnBackendDescriptor_t cfg = NULL, eng = NULL;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg) != CUDNN_STATUS_SUCCESS) return -1;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                 &cfg) == CUDNN_STATUS_SUCCESS &&
        cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
            CUDNN_STATUS_SUCCESS)
        (void)cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &id);
    destroy(eng);
    destroy(cfg);
    return id;
}

tc_status tc_cudnn_graph_plan_json(const tc_cudnn_graph *g, char **json, size_t *len, tc_error *err) {
    *json = NULL;
    *len = 0;
    if (!g->plan) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: not built");
    int64_t n = 0;
    DNN_TRY(cudnnBackendGetAttribute(g->plan, CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, 0, &n,
                                     NULL),
            "plan serialization size");
    if (n <= 0 || n > TC_CUDNN_MAX_PLAN_JSON)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN plan serialization: unusable size %lld", (long long)n);
    char *buf = malloc((size_t)n + 1);
    if (!buf) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "cuDNN plan serialization: out of memory");
    int64_t got = 0;
    cudnnStatus_t s =
        cudnnBackendGetAttribute(g->plan, CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, n, &got, buf);
    if (s != CUDNN_STATUS_SUCCESS) {
        free(buf);
        return tc_cudnn_check(s, "plan serialization", err);
    }
    if (got < 0 || got > n) got = n;
    buf[got] = '\0';
    *len = strlen(buf); /* the count may include the terminator */
    if (*len == 0) {
        free(buf);
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN plan serialization gave no text");
    }
    *json = buf;
    return TC_OK;
}

tc_status tc_cudnn_graph_from_json(void *handle, const char *json, size_t len, int64_t max_workspace,
                                   tc_cudnn_graph **out, tc_error *err) {
    *out = NULL;
    if (!handle || !json || len == 0 || len > TC_CUDNN_MAX_PLAN_JSON)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN plan from JSON: no handle or no text");
    if (max_workspace <= 0) max_workspace = (int64_t)256 << 20;
    tc_cudnn_graph *g;
    TC_TRY(tc_cudnn_graph_create(&g, err));
    cudnnBackendDescriptor_t plan = NULL;
    cudnnHandle_t h = handle;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
    const char *what = "plan descriptor creation";
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "plan JSON";
        s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)len,
                                     json);
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    /* deserialization is the one use cuDNN still documents for the plan's handle */
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "plan handle";
        s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    }
#pragma GCC diagnostic pop
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "finalizing a stored plan";
        s = cudnnBackendFinalize(plan);
    }
    int64_t ws = 0, n = 0;
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "stored plan workspace";
        s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws);
    }
    tc_status st = TC_OK;
    if (s != CUDNN_STATUS_SUCCESS) st = tc_cudnn_check(s, what, err);
    else if (ws < 0 || ws > max_workspace)
        st = tc_errorf(err, TC_ERR_UNSUPPORTED, "the stored cuDNN plan needs %lld bytes of workspace, more than %lld",
                       (long long)ws, (long long)max_workspace);
    if (st != TC_OK) {
        destroy(plan);
        tc_cudnn_graph_free(g);
        return st;
    }
    g->cands[0] = plan;
    g->cand_ws[0] = ws;
    g->cand_id[0] = plan_engine_id(plan);
    snprintf(g->cand_engine[0], sizeof g->cand_engine[0], "engine %lld (stored)", (long long)g->cand_id[0]);
    g->ncands = 1;
    g->plan = plan;
    g->workspace = ws;
    snprintf(g->engine, sizeof g->engine, "%s", g->cand_engine[0]);
    *out = g;
    return TC_OK;
}

int64_t tc_cudnn_graph_workspace(const tc_cudnn_graph *g) { return g->workspace; }

const char *tc_cudnn_graph_engine(const tc_cudnn_graph *g) { return g->plan ? g->engine : "none"; }

/* Checks the pointers and makes a finalized variant pack; *vp is NULL on failure. */
static tc_status make_variant_pack(int64_t workspace_bytes, int n, const int64_t *uids, void *const *ptrs,
                                   void *workspace, cudnnBackendDescriptor_t *vp, tc_error *err) {
    *vp = NULL;
    if (workspace_bytes > 0 && !workspace)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: missing %lld-byte workspace",
                         (long long)workspace_bytes);
    for (int i = 0; i < n; i++)
        if (!ptrs[i])
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: NULL pointer for tensor %lld",
                             (long long)uids[i]);
    DNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, vp), "variant pack creation");
    cudnnStatus_t s = cudnnBackendSetAttribute(*vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    const char *what = "variant pack uids";
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "variant pack pointers";
        s = cudnnBackendSetAttribute(*vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    }
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "variant pack workspace";
        s = cudnnBackendSetAttribute(*vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    }
    if (s == CUDNN_STATUS_SUCCESS) {
        what = "variant pack finalize";
        s = cudnnBackendFinalize(*vp);
    }
    if (s != CUDNN_STATUS_SUCCESS) {
        tc_status st = tc_cudnn_check(s, what, err);
        cudnnBackendDestroyDescriptor(*vp);
        *vp = NULL;
        return st;
    }
    return TC_OK;
}

tc_status tc_cudnn_graph_execute(const tc_cudnn_graph *g, void *handle, int n, const int64_t *uids,
                                 void *const *ptrs, void *workspace, tc_error *err) {
    if (!g->plan) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: not built");
    cudnnBackendDescriptor_t vp = NULL;
    TC_TRY(make_variant_pack(g->workspace, n, uids, ptrs, workspace, &vp, err));
    tc_status st = tc_cudnn_check(cudnnBackendExecute((cudnnHandle_t)handle, g->plan, vp), "execute", err);
    cudnnBackendDestroyDescriptor(vp);
    return st;
}

int tc_cudnn_graph_candidates(const tc_cudnn_graph *g) { return g->ncands; }

int64_t tc_cudnn_graph_max_workspace(const tc_cudnn_graph *g) {
    int64_t m = g->workspace;
    for (int i = 0; i < g->ncands; i++)
        if (g->cand_ws[i] > m) m = g->cand_ws[i];
    return m;
}

/* Keeps candidate k as the plan and releases the others (their compiled kernels hold memory). */
static void keep_candidate(tc_cudnn_graph *g, int k) {
    for (int i = 0; i < g->ncands; i++)
        if (i != k) destroy(g->cands[i]);
    g->cands[0] = g->cands[k];
    g->cand_ws[0] = g->cand_ws[k];
    g->cand_id[0] = g->cand_id[k];
    if (k != 0) memcpy(g->cand_engine[0], g->cand_engine[k], sizeof g->cand_engine[0]);
    g->ncands = 1;
    g->plan = g->cands[0];
    g->workspace = g->cand_ws[0];
    snprintf(g->engine, sizeof g->engine, "%s", g->cand_engine[0]);
}

typedef struct dnn_trial {
    cudnnHandle_t h;
    cudnnBackendDescriptor_t plan, vp;
} dnn_trial;

static tc_status dnn_trial_run(void *arg, tc_error *err) {
    dnn_trial *t = arg;
    return tc_cudnn_check(cudnnBackendExecute(t->h, t->plan, t->vp), "execute", err);
}

tc_status tc_cudnn_graph_tune(tc_cudnn_graph *g, void *handle, int n, const int64_t *uids, void *const *ptrs,
                              void *workspace, int64_t workspace_bytes, tc_tactic_info *info, tc_error *err) {
    info->tried = 0, info->chosen = 0, info->ms = info->first_ms = -1.0f;
    if (!g->plan) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "cuDNN graph: not built");
    if (g->ncands <= 1) return TC_OK;
    cudaStream_t stream = NULL;
    DNN_TRY(cudnnGetStream((cudnnHandle_t)handle, &stream), "getting the stream");
    if (!tc_tactic_can_time(stream)) {
        keep_candidate(g, 0);
        return TC_OK;
    }
    int best = -1;
    float best_ms = 0;
    char first_msg[sizeof err->msg + 80] = "";
    for (int i = 0; i < g->ncands; i++) {
        if (g->cand_ws[i] > workspace_bytes) continue;
        dnn_trial t = {(cudnnHandle_t)handle, g->cands[i], NULL};
        float ms = -1.0f;
        tc_status s = make_variant_pack(g->cand_ws[i], n, uids, ptrs, workspace, &t.vp, err);
        if (s == TC_OK) s = tc_tactic_time(stream, dnn_trial_run, &t, 3, &ms, err);
        if (t.vp) cudnnBackendDestroyDescriptor(t.vp);
        if (s == TC_ERR_OUT_OF_MEMORY) return s;
        if (s != TC_OK) {
            /* an engine that refuses these buffers at launch is passed over; a device fault shows below */
            if (!first_msg[0]) snprintf(first_msg, sizeof first_msg, "%s: %s", g->cand_engine[i], err->msg);
            continue;
        }
        info->tried++;
        if (i == 0) info->first_ms = ms;
        if (best < 0 || ms < best_ms) best = i, best_ms = ms;
    }
    cudaError_t ce = cudaStreamSynchronize(stream);
    if (ce != cudaSuccess)
        return tc_errorf(err, TC_ERR_CUDA, "cuDNN tuning: the stream failed: %s", cudaGetErrorString(ce));
    if (best < 0)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "cuDNN tuning: no candidate engine ran (%s)",
                         first_msg[0] ? first_msg : "none fits the workspace");
    keep_candidate(g, best);
    info->chosen = best, info->ms = best_ms;
    return TC_OK;
}
