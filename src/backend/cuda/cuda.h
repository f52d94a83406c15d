/* The CUDA backend's kernel interface and executor. Mirrors backend/cpu/cpu.h: every op family
 * registers one kernel per op; the executor plans device memory, runs the kernels on the
 * context's stream and captures the whole run into one CUDA graph.
 * Host-side C only: CUDA types cross as void* (cudaStream_t, cublasLtHandle_t, cudnnHandle_t). */
#ifndef TC_BACKEND_CUDA_H
#define TC_BACKEND_CUDA_H

#include "ops/op.h"
#include "backend/cuda/cuda_backend.h"

typedef struct tc_cuda_tensor {
    tc_dtype dtype;
    int rank;
    int64_t dims[TC_MAX_RANK];
    int64_t numel;
    void *data; /* device pointer, contiguous C order (but see nhwc) */
    /* A rank-4 value stored channels-last: dims stay logical [N, C, H, W] (a weight's [K, C, R, S])
     * and memory is [N, H, W, C] ([K, R, S, C]). Unless TENSORC_CUDA_NHWC=0, and only for values
     * whose every reader knows (see docs/cuda-backend.md, "NHWC"): convolutions, and elementwise
     * ops whose tensor operands all have the output's dims. Everything else sees false. The
     * channels-last weight [K, 1, R, S] of a depthwise convolution that runs on our kernel
     * (tc_cuda_conv_runs_depthwise) is stored [R, S, K], its channels adjacent. */
    bool nhwc;
    /* NULL: contiguous. Else the element at index i is data[sum i_d strides[d]] (in elements, none
     * negative): a strided view that the executor hands only to readers that take one (the query,
     * key and value of scaled_dot_product_attention; see views.c). */
    const int64_t *strides;
} tc_cuda_tensor;

typedef struct tc_cuda_exec tc_cuda_exec;
typedef struct tc_cuda_engine tc_cuda_engine;

/* What a fused step adds to its first node's kernel (the executor groups nodes into steps when the
 * engine is built; see docs/cuda-backend.md). Only convolution and the matrix-product kernels
 * (mm, addmm, linear) are ever handed one; for every other node tc_cuda_call.epi is NULL. The
 * step's result is written to c->out[0], which has the head node's output shape and dtype:
 *   y = act2(act1(op(x, weight) + bias) + residual)
 * computed in f32 and rounded once where the library fuses it, or one rounding per stage (as
 * the unfused nodes would round) where the kernel applies a stage itself. */
typedef enum tc_cuda_epi_act {
    TC_CUDA_EPI_NONE,
    TC_CUDA_EPI_RELU,
    TC_CUDA_EPI_GELU_TANH, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), cuBLASLt's GELU */
    TC_CUDA_EPI_HARDSWISH  /* x * min(max(x + 3, 0), 6) / 6: act1 of a depthwise convolution only */
} tc_cuda_epi_act;

typedef struct tc_cuda_epilogue {
    /* convolution only: the weight and the per-output-channel bias to use instead of the node's own
     * (batch norms and per-channel adds folded in at build time); NULL: the node's own. */
    const tc_cuda_tensor *weight, *bias;
    tc_cuda_epi_act act1;
    /* convolution only: NULL, or a tensor of the output's dims and dtype added after act1 */
    const tc_cuda_tensor *residual;
    tc_cuda_epi_act act2; /* after the residual; NONE without one */
} tc_cuda_epilogue;

typedef struct tc_cuda_call {
    const tc_graph *g;
    const tc_node *node;
    tc_cuda_tensor *const *in;  /* one per node->inputs (NULL for absent optional list elements) */
    tc_cuda_tensor *const *out; /* one per node->outputs, already allocated in the arena */
    const int64_t *symvals;     /* symbol values of this execution, per atom id */
    tc_cuda_exec *exec;
    void *stream;               /* cudaStream_t */
    tc_error *err;
    const tc_cuda_epilogue *epi; /* NULL unless this call runs a fused step (see above) */
} tc_cuda_call;

typedef tc_status (*tc_cuda_kernel)(const tc_cuda_call *c);

/* One per family file (src/backend/cuda/<family>.c); fills table[op] for the ops it runs. */
void tc_cuda_register_elementwise(tc_cuda_kernel *table);
void tc_cuda_register_activation(tc_cuda_kernel *table);
void tc_cuda_register_matmul(tc_cuda_kernel *table);
void tc_cuda_register_conv(tc_cuda_kernel *table);
void tc_cuda_register_pool(tc_cuda_kernel *table);
void tc_cuda_register_norm(tc_cuda_kernel *table);
void tc_cuda_register_reduce(tc_cuda_kernel *table);
void tc_cuda_register_shape(tc_cuda_kernel *table);
void tc_cuda_register_index(tc_cuda_kernel *table);
void tc_cuda_register_attention(tc_cuda_kernel *table);

tc_cuda_kernel tc_cuda_kernel_for(int op);

/* Argument access, as in cpu.h. */
tc_cuda_tensor *tc_cuda_in(const tc_cuda_call *c, int argi);
tc_cuda_tensor *tc_cuda_in_list(const tc_cuda_call *c, int argi, int64_t k);
int64_t tc_cuda_int(const tc_cuda_call *c, int argi);
int64_t tc_cuda_ints(const tc_cuda_call *c, int argi, int64_t *out, int64_t cap);
tc_status tc_cuda_fail(const tc_cuda_call *c, tc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Device scratch memory of at least bytes (256-byte aligned) for the duration of this kernel
 * call; slots are independent. Planned ahead when possible: a kernel that asks during CUDA graph
 * capture for more than it asked in the warm-up run fails, so ask for the same sizes each run. */
#define TC_CUDA_SCRATCH_SLOTS 4
void *tc_cuda_scratch(const tc_cuda_call *c, int slot, size_t bytes);
/* Library handles owned by the execution context (created once, bound to its stream). */
void *tc_cuda_cublaslt(const tc_cuda_call *c); /* cublasLtHandle_t */
void *tc_cuda_cudnn(const tc_cuda_call *c);    /* cudnnHandle_t, stream already set */
/* Build options the kernels honour. */
bool tc_cuda_allow_tf32(const tc_cuda_call *c);
/* An on/off environment switch: unset or empty gives dflt; "0", "off", "false" and "no" are off,
 * anything else on. */
bool tc_cuda_env_flag(const char *name, bool dflt);
/* Whether a convolution of these groups and channels runs on our depthwise kernel (conv.c) rather
 * than cuDNN: groups = input = output channels, not transposed, and on: the engine's decision
 * (TENSORC_CUDA_DEPTHWISE, read once when the engine is made, so that the weights it stored for
 * the kernel and the kernel that runs agree; tc_cuda_depthwise_on for a kernel call). */
bool tc_cuda_conv_runs_depthwise(bool on, int64_t groups, int64_t in_channels, int64_t out_channels, bool transposed);
bool tc_cuda_depthwise_on(const tc_cuda_call *c);
/* A per-node cache (for cuDNN plans, cuBLASLt algorithms) owned by the execution context and
 * freed with it through the destructor given on first use; keyed by node id and a caller key. */
void **tc_cuda_node_cache(const tc_cuda_call *c, uint64_t key, void (*destroy)(void *));
/* The same, shared by every node of the context: for plans that depend only on the key (which
 * must then hold everything the plan depends on, tagged so that families never collide). */
void **tc_cuda_shared_cache(const tc_cuda_call *c, uint64_t key, void (*destroy)(void *));

/* Plan choices the engine keeps and writes into its file as step records: kind is a
 * TC_RECORD_* value (engine/serialize.h), key the kernel's whole plan key (shapes, dtypes,
 * alignments, options), desc a short text for `tensorc inspect`, data what makes the same plan
 * again (a cuDNN plan's JSON, a cuBLASLt algorithm's bytes). The table belongs to the engine, so
 * every node and context with one key runs one choice, and an engine loaded from a file runs the
 * choices of the process that built it. find returns a malloc'd copy of the data (NUL-terminated
 * one byte past *len; free it) or NULL; store keeps the first data given for a key unless replace
 * (for a stored choice that this process could not use). Both are thread-safe and do nothing when
 * TENSORC_PLAN_RECORDS=0. */
typedef struct tc_cuda_choice tc_cuda_choice;
void *tc_cuda_choice_find(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len, size_t *len);
void tc_cuda_choice_store(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len, const char *desc,
                          const void *data, size_t len, bool replace);
/* A kernel that made its plan from a stored choice says so (used); one that could not use the
 * stored choice drops it before choosing again (drop), so that nothing keeps a dead record. Both
 * are counted (tc_cuda_engine_plan_counts in records.h). */
void tc_cuda_choice_used(const tc_cuda_call *c);
void tc_cuda_choice_drop(const tc_cuda_call *c, uint32_t kind, const void *key, size_t key_len);

/* The executor (per engine and per context). */
tc_status tc_cuda_check_graph(const tc_graph *g, tc_error *err);
tc_status tc_cuda_engine_create(const tc_graph *g, const tc_build_options *opt, tc_cuda_engine **out, tc_error *err);
void tc_cuda_engine_free(tc_cuda_engine *e);
tc_status tc_cuda_exec_create(tc_cuda_engine *e, tc_cuda_exec **out, tc_error *err);
void tc_cuda_exec_free(tc_cuda_exec *x);
/* With TENSORC_CUDA_PROFILE=1 (read when the engine is built or loaded; CUDA graphs are then off):
 * the GPU time of every step, from events around it, averaged over the context's runs except
 * each shape set's first (which builds the plans); printed to f as a table, largest first, and by
 * tc_cuda_exec_free to stderr. Nothing without the switch or before a profiled run. */
void tc_cuda_exec_profile_report(const tc_cuda_exec *x, FILE *f);
/* Enqueues a run on stream (a cudaStream_t; NULL = the context's own stream) with one device
 * tensor per graph input; outputs[i].data may be caller device buffers, or NULL to use buffers
 * the context owns. */
tc_status tc_cuda_exec_run(tc_cuda_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, void *stream,
                           tc_error *err);
/* Waits for the run enqueued on stream (NULL = the context's own stream) to finish. */
tc_status tc_cuda_exec_sync(tc_cuda_exec *x, void *stream, tc_error *err);
void tc_cuda_exec_output(const tc_cuda_exec *x, int i, tc_tensor *out);

/* ---- Additions for kernels and tests (appended; the declarations above are unchanged). ---- */

/* The engine's GPU (name, compute capability, SM count, shared memory limits) for launch sizing. */
const tc_cuda_device_props *tc_cuda_device_props_of(const tc_cuda_call *c);
/* The most library workspace (cuBLASLt, cuDNN) a kernel should ask tc_cuda_scratch for:
 * tc_build_options.workspace_bytes, or TC_CUDA_DEFAULT_WORKSPACE when that is 0. */
#define TC_CUDA_DEFAULT_WORKSPACE ((size_t)64 << 20)
size_t tc_cuda_workspace_limit(const tc_cuda_call *c);
/* True while the executor records the kernel calls into a CUDA graph (its own capture, or a
 * capture of the caller's stream that this run joined): plans must already exist then, and
 * nothing may be allocated, freed or synchronized. */
bool tc_cuda_capturing(const tc_cuda_call *c);

/* A device word for kernels that find an error they cannot report without a sync (an index out
 * of range, an integer division by zero): the kernel ORs a nonzero value into it and carries on
 * without reading out of bounds. The executor clears the words at the start of every run (inside
 * the captured graph), copies them back at its end, and tc_cuda_exec_sync (also the end of a
 * shape set's first run) fails with the node, its op and the message given here, which describes
 * the failure for this call's shapes ("an index is out of range for dimension 0 of size 10").
 * Only nodes the executor reserved a word for may ask (embedding, index_select, gather,
 * index.Tensor, and div.Tensor_mode / remainder.Tensor with an integer result); for any other node
 * the call fails, naming it, and NULL is returned. */
unsigned int *tc_cuda_error_flag(const tc_cuda_call *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The steps the executor lowers graph g to (TENSORC_CUDA_FUSE=0 turns fusion off), one line per
 * step naming its nodes and how they run, e.g. "conv1 + bn1 + relu1: convolution, bias, relu";
 * needs no GPU. *n_steps and *n_fused (nodes that run inside another node's step) may be NULL.
 * TC_ERR_INVALID_ARGUMENT when the text does not fit in n bytes (it is cut, NUL-terminated). */
tc_status tc_cuda_describe_steps(const tc_graph *g, char *buf, size_t n, int *n_steps, int *n_fused);
/* What the executor does with each view-like step of graph g (views.c, "Zero-copy views" in
 * docs/cuda-backend.md), with every symbol at its opt size, one line per such step: "name: alias",
 * "strided view", "gather", "writes the permute after it" (an attention) or "written by the step
 * before" (its permute); steps whose kernel runs are not listed. *n_skipped and *n_gathers (may be
 * NULL) count the steps that run nothing and those that gather. Needs no GPU. TC_ERR_SHAPE for a
 * size that is negative at the opt values, TC_ERR_INVALID_ARGUMENT when the text does not fit. */
tc_status tc_cuda_describe_views(const tc_graph *g, char *buf, size_t n, int *n_skipped, int *n_gathers);

/* What an execution context has done so far, for tests and `tensorc bench`. */
typedef struct tc_cuda_exec_stats {
    uint64_t runs;              /* tc_cuda_exec_run calls that got as far as launching work */
    uint64_t eager_runs;        /* runs that launched kernel by kernel (warm-ups, graphs off) */
    uint64_t warmups;           /* first runs of a new shape set */
    uint64_t shape_set_hits;    /* runs whose input shapes were already planned */
    uint64_t captures;          /* CUDA graph captures */
    uint64_t instantiations;    /* cudaGraphInstantiate calls */
    uint64_t updates;           /* captures applied to an existing executable graph */
    uint64_t graph_launches;    /* runs that replayed a captured graph */
    uint64_t reallocations;     /* device buffers (arena, scratch, outputs) grown; each drops the graphs */
    int shape_sets;             /* shape sets cached now (at most TC_CUDA_MAX_SHAPE_SETS) */
    size_t arena_bytes, scratch_bytes, output_bytes, weight_bytes; /* device memory held */
    bool graphs_enabled;        /* false when TENSORC_CUDA_GRAPHS=0 or TENSORC_CUDA_SYNC=1 */
    int steps;                  /* kernel calls per run after fusion (the engine's step count) */
    int fused_nodes;            /* graph nodes that run inside another node's step */
    int error_flags;            /* device error words (nodes that can fail on the device) */
} tc_cuda_exec_stats;
#define TC_CUDA_MAX_SHAPE_SETS 8
#define TC_CUDA_GRAPHS_PER_SHAPE_SET 4
void tc_cuda_exec_get_stats(const tc_cuda_exec *x, tc_cuda_exec_stats *out);
/* y += r elementwise (same dims, dtype and layout), computed in f32 and rounded once, as
 * add.Tensor: a fused step's residual that its library call could not take (elementwise.c). */
tc_status tc_cuda_add_into(const tc_cuda_call *c, tc_cuda_tensor *y, const tc_cuda_tensor *r);
/* The engine's device ordinal. */
int tc_cuda_engine_device(const tc_cuda_engine *e);
/* Whether the engine runs depthwise convolutions on our kernel (TENSORC_CUDA_DEPTHWISE when it was made). */
bool tc_cuda_engine_depthwise(const tc_cuda_engine *e);

#endif
