/* A small builder over cuDNN's backend (graph) API for any CUDA kernel that runs cuDNN (conv,
 * attention, ...): declare tensors by UID with dims and strides, add operations (convolution
 * forward / data-gradient, pointwise, matmul, or any finalized operation descriptor), build an
 * execution plan from the engine heuristics, and execute it with a variant pack. Plain C. */
#ifndef TC_BACKEND_CUDA_CUDNN_H
#define TC_BACKEND_CUDA_CUDNN_H

#include "backend/cuda/cublaslt.h"
#include "backend/cuda/cuda.h"

#include <cudnn_graph.h>

/* Turns a cuDNN status into a tc_status (TC_OK for success) whose message names `what`, the
 * status, and cudnnGetLastErrorString's explanation. NOT_SUPPORTED* -> TC_ERR_UNSUPPORTED,
 * allocation failures -> TC_ERR_OUT_OF_MEMORY, the rest -> TC_ERR_CUDA. */
tc_status tc_cudnn_check(cudnnStatus_t s, const char *what, tc_error *err);

/* The cuDNN data type of a tensorc dtype; false when there is none. */
bool tc_cudnn_data_type(tc_dtype t, cudnnDataType_t *out);

typedef struct tc_cudnn_graph tc_cudnn_graph;

/* One graph edge. dims are in logical order (N, C, spatial... for convolutions; K, C, spatial...
 * for filters); the memory layout is only in strides (in elements; all 0 = packed C order). */
typedef struct tc_cudnn_tensor {
    int64_t uid;            /* unique in the graph, > 0 */
    tc_dtype dtype;         /* data type; virtual intermediates are usually TC_F32 */
    int rank;               /* 1..8 */
    int64_t dims[8], strides[8];
    int64_t alignment;      /* bytes the data pointer is aligned to (a power of two); 0 = 16 */
    bool is_virtual;        /* an intermediate that is never materialized */
    bool by_value;          /* a host scalar: the variant-pack pointer is a host pointer */
} tc_cudnn_tensor;

tc_status tc_cudnn_graph_create(tc_cudnn_graph **out, tc_error *err);
/* Destroys every descriptor of the graph and its plan; NULL is a no-op. Fits tc_cuda_node_cache. */
void tc_cudnn_graph_free(void *g);

tc_status tc_cudnn_graph_tensor(tc_cudnn_graph *g, const tc_cudnn_tensor *t, tc_error *err);
/* The finalized tensor descriptor of uid (NULL when unknown), for operations added by hand. */
cudnnBackendDescriptor_t tc_cudnn_graph_tensor_desc(const tc_cudnn_graph *g, int64_t uid);

typedef enum tc_cudnn_conv_kind {
    TC_CUDNN_CONV_FPROP, /* y = conv(x, w) */
    TC_CUDNN_CONV_DGRAD  /* x = conv_data_gradient(y, w): the transposed convolution of y */
} tc_cudnn_conv_kind;

typedef struct tc_cudnn_conv_params {
    int nsp; /* spatial dims, 1..3 */
    int64_t pre_pad[3], post_pad[3], stride[3], dilation[3];
} tc_cudnn_conv_params;

/* Adds a cross-correlation (PyTorch's convolution) with f32 compute, alpha 1, beta 0. Tensors
 * must be declared first: x [N, G*C, ...], w [G*K, C, ...], y [N, G*K, ...] (groups come from the
 * shapes). For DGRAD, y is the input and x the output. */
tc_status tc_cudnn_graph_conv(tc_cudnn_graph *g, tc_cudnn_conv_kind kind, int64_t x_uid, int64_t w_uid,
                              int64_t y_uid, const tc_cudnn_conv_params *p, tc_error *err);
/* Adds y = mode(x) or y = mode(x, b) (b_uid <= 0: unary), computed in f32; b broadcasts over
 * its size-1 dims. */
tc_status tc_cudnn_graph_pointwise(tc_cudnn_graph *g, cudnnPointwiseMode_t mode, int64_t x_uid, int64_t b_uid,
                                   int64_t y_uid, tc_error *err);
/* Adds c = a @ b over the last two dims (batched over the leading ones), f32 compute. */
tc_status tc_cudnn_graph_matmul(tc_cudnn_graph *g, int64_t a_uid, int64_t b_uid, int64_t c_uid, tc_error *err);
/* Adds an operation the caller created and finalized; the graph owns it from then on (also on failure). */
tc_status tc_cudnn_graph_add_op(tc_cudnn_graph *g, cudnnBackendDescriptor_t op, tc_error *err);

typedef struct tc_cudnn_plan_options {
    bool forbid_tensor_cores; /* skip engines with the TENSOR_CORE note (f32 data without TF32) */
    bool allow_down_convert;  /* accept DOWN_CONVERT_INPUTS / REDUCED_PRECISION_REDUCTION engines */
    int64_t max_workspace;    /* bytes; engines needing more are skipped; 0 = 256 MiB */
    int candidates;           /* finalized plans to keep for tc_cudnn_graph_tune (<= 1: the first only) */
} tc_cudnn_plan_options;

/* Finalizes the operation graph and picks the first engine configuration, in the order of
 * heuristic mode A and then the fallback list, that passes the options and whose plan finalizes;
 * with opt->candidates > 1 it keeps up to that many such plans (after the first, only
 * deterministic ones without FFT or Winograd arithmetic, and no engine twice from the fallback
 * list), the first being the plan until tc_cudnn_graph_tune chooses.
 * handle is a cudnnHandle_t. TC_ERR_UNSUPPORTED (with cuDNN's last explanation) when none does. */
tc_status tc_cudnn_graph_build(tc_cudnn_graph *g, void *handle, const tc_cudnn_plan_options *opt, tc_error *err);

/* Plans saved in engine files: the built plan of g as cuDNN's JSON text (malloc'd, NUL-terminated,
 * *len without the terminator), and a graph holding only a plan made again from such text (no
 * operation graph: execute it with the UIDs of the graph it came from). from_json fails with
 * cuDNN's explanation when this cuDNN or GPU cannot make the plan, or TC_ERR_UNSUPPORTED when it
 * needs more than max_workspace bytes (<= 0: 256 MiB). */
#define TC_CUDNN_MAX_PLAN_JSON ((int64_t)64 << 20) /* runtime-compiled engines may carry their code */
tc_status tc_cudnn_graph_plan_json(const tc_cudnn_graph *g, char **json, size_t *len, tc_error *err);
tc_status tc_cudnn_graph_from_json(void *handle, const char *json, size_t len, int64_t max_workspace,
                                   tc_cudnn_graph **out, tc_error *err);
/* Workspace bytes the built plan needs. */
int64_t tc_cudnn_graph_workspace(const tc_cudnn_graph *g);
/* The plans kept for tuning (1 after tc_cudnn_graph_tune), and the most workspace any needs. */
int tc_cudnn_graph_candidates(const tc_cudnn_graph *g);
int64_t tc_cudnn_graph_max_workspace(const tc_cudnn_graph *g);
/* Times every kept plan (one warm-up and three timed executions on the handle's stream) on these
 * tensors, which must be real buffers of this graph's shapes: outputs are overwritten, inputs only
 * read. Plans needing more than workspace_bytes are skipped. Keeps the fastest (ties: the earlier
 * in heuristic order) and releases the others; keeps the first without timing while the stream is
 * capturing. Synchronizes the stream. TC_ERR_UNSUPPORTED when no plan runs. */
tc_status tc_cudnn_graph_tune(tc_cudnn_graph *g, void *handle, int n, const int64_t *uids, void *const *ptrs,
                              void *workspace, int64_t workspace_bytes, tc_tactic_info *info, tc_error *err);
/* A short description of the chosen engine ("engine 10 (mode A #0)") for logs and messages. */
const char *tc_cudnn_graph_engine(const tc_cudnn_graph *g);
/* Enqueues the plan on the handle's stream with the n non-virtual tensors' pointers; workspace
 * holds tc_cudnn_graph_workspace bytes (NULL when 0). Never synchronizes. */
tc_status tc_cudnn_graph_execute(const tc_cudnn_graph *g, void *handle, int n, const int64_t *uids,
                                 void *const *ptrs, void *workspace, tc_error *err);

#endif
