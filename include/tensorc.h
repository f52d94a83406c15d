/* tensorc: an inference compiler for PyTorch models on NVIDIA GPUs.
 *
 * This header is the whole public C API and its manual. Conventions:
 *   - Every fallible function returns a tc_status. Constructors take an out-parameter that is set
 *     to NULL first and filled only on success.
 *   - tc_x_free(NULL) is a no-op. Memory the library allocates, the library frees.
 *   - Each handle keeps the message of its last error (tc_graph_last_error, ...). Messages name the
 *     node and the op where there is one.
 *   - Thread safety: a handle may be used by one thread at a time unless a function says otherwise.
 *     Different handles may be used concurrently.
 */
#ifndef TENSORC_H
#define TENSORC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_VERSION_MAJOR 0
#define TC_VERSION_MINOR 1
#define TC_VERSION_PATCH 0

#define TC_MAX_RANK 8

/* ---------------------------------------------------------------------------------------------
 * Status
 */
typedef enum tc_status {
    TC_OK = 0,
    TC_ERR_INVALID_ARGUMENT, /* a caller passed a bad argument (NULL, out of range, wrong kind) */
    TC_ERR_UNKNOWN_OP,       /* an op name the op table does not know */
    TC_ERR_SCHEMA,           /* node arguments do not match the op's schema */
    TC_ERR_DTYPE,            /* an unsupported or mismatched data type */
    TC_ERR_SHAPE,            /* shapes that do not agree */
    TC_ERR_UNSUPPORTED,      /* valid, but not supported by this backend or build */
    TC_ERR_INVALID_GRAPH,    /* the graph fails verification */
    TC_ERR_OUT_OF_MEMORY,
    TC_ERR_IO,               /* a file could not be opened, read or written */
    TC_ERR_FORMAT,           /* a file is malformed or truncated */
    TC_ERR_VERSION,          /* a file of a version this build does not read */
    TC_ERR_NOT_FOUND,        /* a named item (input, output, file entry) does not exist */
    TC_ERR_CUDA,             /* an error from CUDA, cuBLASLt, cuDNN or NVRTC */
    TC_ERR_INTERNAL,
    TC_STATUS_COUNT
} tc_status;

/* A static, human-readable name for a status ("TC_ERR_SHAPE: shape mismatch"). Never NULL. */
const char *tc_status_string(tc_status status);

/* Library version as "MAJOR.MINOR.PATCH" plus the build configuration (backends compiled in). */
const char *tc_version_string(void);
bool tc_has_cuda(void);

/* ---------------------------------------------------------------------------------------------
 * Data types
 */
typedef enum tc_dtype {
    TC_F32 = 0,
    TC_F16,
    TC_BF16,
    TC_F8E4M3, /* float8_e4m3fn: storage only */
    TC_I64,
    TC_I32,
    TC_I8,
    TC_U8,
    TC_BOOL, /* one byte, 0 or 1 */
    TC_F64,  /* accepted for constants and casts; computed as f64 on the CPU */
    TC_DTYPE_COUNT
} tc_dtype;

const char *tc_dtype_name(tc_dtype dtype); /* "f32", "f16", ... or "?" */
size_t tc_dtype_size(tc_dtype dtype);      /* bytes per element, 0 for an invalid dtype */
/* Parses "f32", "float32", "float", "f16", "half", "bf16", "bfloat16", "i64", "int64", "long", ... */
bool tc_dtype_from_name(const char *name, tc_dtype *out);

/* ---------------------------------------------------------------------------------------------
 * Dims. A dim is an int64_t: a value >= 0 is a constant size; a value <= TC_DIM_SYM_BASE names a
 * symbolic expression owned by a graph (a symbol with a (min, opt, max) range, or sums, products,
 * floor divisions and remainders of them). Symbolic dims are only meaningful with their graph.
 */
typedef int64_t tc_dim;
#define TC_DIM_SYM_BASE (INT64_MIN / 2)
#define TC_DIM_IS_SYM(d) ((d) <= TC_DIM_SYM_BASE)

/* ---------------------------------------------------------------------------------------------
 * Graphs
 */
typedef struct tc_graph tc_graph_t;
typedef struct tc_value tc_value_t;
typedef struct tc_node tc_node_t;

tc_status tc_graph_create(tc_graph_t **out);
void tc_graph_free(tc_graph_t *graph);
/* The message of the last failed call on this graph ("" if none). Valid until the next call. */
const char *tc_graph_last_error(const tc_graph_t *graph);

/* Declares a symbolic size named `name` with range [min, max] and optimization point opt. */
tc_status tc_graph_add_symbol(tc_graph_t *graph, const char *name, int64_t min, int64_t opt,
                              int64_t max, tc_dim *out);
typedef enum tc_sym_op { TC_SYM_ADD, TC_SYM_SUB, TC_SYM_MUL, TC_SYM_FLOORDIV, TC_SYM_MOD } tc_sym_op;
/* out = a op b, simplified. Either operand may be a constant. */
tc_status tc_graph_sym_expr(tc_graph_t *graph, tc_sym_op op, tc_dim a, tc_dim b, tc_dim *out);
/* Writes the dim as text ("3", "s0", "2*s0 + 1") into buf; returns buf. */
const char *tc_graph_dim_string(const tc_graph_t *graph, tc_dim dim, char *buf, size_t size);
/* Range of a dim over its symbols' ranges. */
tc_status tc_graph_dim_range(const tc_graph_t *graph, tc_dim dim, int64_t *min, int64_t *opt,
                             int64_t *max);

/* Adds a graph input. dims may contain symbolic dims of this graph. */
tc_status tc_graph_add_input(tc_graph_t *graph, const char *name, tc_dtype dtype, int rank,
                             const tc_dim *dims, tc_value_t **out);

/* How tc_graph_add_constant treats data. */
typedef enum tc_constant_mode {
    TC_CONSTANT_COPY,   /* the graph copies the data; the caller may free it at once */
    TC_CONSTANT_BORROW, /* the graph points at data, which must outlive the graph and anything built from it */
} tc_constant_mode;
/* Adds a constant (a weight) with constant dims, contiguous in C order. */
tc_status tc_graph_add_constant(tc_graph_t *graph, const char *name, tc_dtype dtype, int rank,
                                const int64_t *dims, const void *data, tc_constant_mode mode,
                                tc_value_t **out);

/* An argument of a node. `name` is the schema name of the argument or NULL for the next
 * positional one. Kinds that a schema does not expect are converted where PyTorch would convert
 * them (an int for a float, a single int for an int[2]), otherwise rejected. */
typedef enum tc_arg_kind {
    TC_ARG_NONE = 0,
    TC_ARG_TENSOR,   /* .tensor */
    TC_ARG_TENSORS,  /* .tensors[.count]; elements may be NULL for Tensor?[] */
    TC_ARG_INT,      /* .i (may be a symbolic dim) */
    TC_ARG_INTS,     /* .ints[.count] (elements may be symbolic dims) */
    TC_ARG_FLOAT,    /* .f */
    TC_ARG_FLOATS,   /* .floats[.count] */
    TC_ARG_BOOL,     /* .b */
    TC_ARG_BOOLS,    /* .bools[.count] */
    TC_ARG_STRING,   /* .s */
    TC_ARG_DTYPE,    /* .dtype */
    TC_ARG_KIND_COUNT
} tc_arg_kind;

typedef struct tc_arg {
    const char *name;
    tc_arg_kind kind;
    int64_t count;
    union {
        tc_value_t *tensor;
        tc_value_t *const *tensors;
        int64_t i;
        const int64_t *ints;
        double f;
        const double *floats;
        bool b;
        const bool *bools;
        const char *s;
        tc_dtype dtype;
    } u;
} tc_arg;

/* Adds a node that applies op `op` (an ATen overload name such as "add.Tensor" or
 * "aten.add.Tensor"; "torch.ops.aten." prefixes are accepted) to args. Omitted arguments take their
 * schema defaults. Output dtypes and shapes are inferred. `node_name` (may be NULL) is the source
 * name shown in messages. Up to max_outputs output values are written to outputs (may be NULL) and
 * their number to *n_outputs (may be NULL). On error nothing is added and the message names the
 * node and the op. */
tc_status tc_graph_add_node(tc_graph_t *graph, const char *op, const char *node_name, int n_args,
                            const tc_arg *args, int max_outputs, tc_value_t **outputs,
                            int *n_outputs);

/* Adds a node for an op this build does not know, with given inputs and output types, so that a
 * partitioner can see it and report it. Such a graph can be checked and printed but not run. */
tc_status tc_graph_add_opaque_node(tc_graph_t *graph, const char *op, const char *node_name,
                                   int n_inputs, tc_value_t *const *inputs, int n_outputs,
                                   const tc_dtype *out_dtypes, const int *out_ranks,
                                   const tc_dim *const *out_dims, tc_value_t **outputs);

/* Marks a value as the next graph output, with an optional name. */
tc_status tc_graph_mark_output(tc_graph_t *graph, tc_value_t *value, const char *name);

/* Checks the whole graph: every node's schema, dtypes and shapes, that values are defined before
 * use, and that there is at least one output. */
tc_status tc_graph_verify(tc_graph_t *graph);

typedef enum tc_print_format { TC_PRINT_TEXT, TC_PRINT_DOT } tc_print_format;
/* Prints the graph to a FILE* (passed as void* to keep stdio out of this header). */
tc_status tc_graph_print(const tc_graph_t *graph, tc_print_format format, void *file);

/* Introspection. */
int tc_graph_num_inputs(const tc_graph_t *graph);
int tc_graph_num_outputs(const tc_graph_t *graph);
int tc_graph_num_nodes(const tc_graph_t *graph);
tc_value_t *tc_graph_input(const tc_graph_t *graph, int index);
tc_value_t *tc_graph_output(const tc_graph_t *graph, int index);
const char *tc_value_name(const tc_value_t *value);
tc_dtype tc_value_dtype(const tc_value_t *value);
int tc_value_rank(const tc_value_t *value);
const tc_dim *tc_value_dims(const tc_value_t *value);

/* ---------------------------------------------------------------------------------------------
 * Op table
 */
typedef enum tc_backend_kind { TC_BACKEND_CPU = 0, TC_BACKEND_CUDA, TC_BACKEND_COUNT } tc_backend_kind;

int tc_op_count(void);
/* The overload name ("add.Tensor") and full schema of op i, or NULL when i is out of range. */
const char *tc_op_name(int index);
const char *tc_op_schema(int index);
/* Whether backend can run op i in principle (compiled in and implemented). */
bool tc_op_supported(int index, tc_backend_kind backend);

/* ---------------------------------------------------------------------------------------------
 * Tensors on the host, for inputs and outputs.
 */
typedef struct tc_tensor {
    tc_dtype dtype;
    int rank;
    int64_t dims[TC_MAX_RANK];
    void *data; /* contiguous, C order */
} tc_tensor;

/* ---------------------------------------------------------------------------------------------
 * Engines and execution contexts.
 */
typedef struct tc_engine tc_engine_t;
typedef struct tc_context tc_context_t;

typedef struct tc_build_options {
    tc_backend_kind backend; /* TC_BACKEND_CPU (default) or TC_BACKEND_CUDA */
    int num_threads;         /* CPU threads; 0 = one per core */
    int device;              /* CUDA device ordinal */
    bool allow_fp16;         /* CUDA: lower f32 parts of the graph to f16 where it is safe */
    bool allow_bf16;         /* CUDA: lower f32 parts of the graph to bf16 where it is safe */
    bool disable_tf32;       /* CUDA: keep f32 matrix products and convolutions in full f32 */
    size_t workspace_bytes;  /* CUDA: cap on library workspace; 0 = a default */
} tc_build_options;

void tc_build_options_init(tc_build_options *options);

/* Builds an engine from a verified graph. The engine keeps a reference to the graph's borrowed
 * constants; the graph itself may be freed afterwards. Errors are written to err_buf if given. */
tc_status tc_engine_build(const tc_graph_t *graph, const tc_build_options *options,
                          tc_engine_t **out, char *err_buf, size_t err_size);
void tc_engine_free(tc_engine_t *engine);
const char *tc_engine_last_error(const tc_engine_t *engine);
int tc_engine_num_inputs(const tc_engine_t *engine);
int tc_engine_num_outputs(const tc_engine_t *engine);
const char *tc_engine_input_name(const tc_engine_t *engine, int index);
const char *tc_engine_output_name(const tc_engine_t *engine, int index);
tc_dtype tc_engine_input_dtype(const tc_engine_t *engine, int index);
/* Where the engine's input and output tensors live: host memory for TC_BACKEND_CPU, device memory
 * of the engine's GPU for TC_BACKEND_CUDA. */
tc_backend_kind tc_engine_backend(const tc_engine_t *engine);

/* An execution context holds the activation memory of one in-flight execution. Several contexts
 * of one engine may run concurrently on different threads. */
tc_status tc_context_create(tc_engine_t *engine, tc_context_t **out);
void tc_context_free(tc_context_t *context);
const char *tc_context_last_error(const tc_context_t *context);
/* Binds input `index` to host tensor `t` (data borrowed until the next execute returns). */
tc_status tc_context_set_input(tc_context_t *context, int index, const tc_tensor *t);
/* Binds output `index` to a caller buffer of the right size (NULL data: let the context own the
 * buffer, the default). Device memory for CUDA engines. */
tc_status tc_context_set_output(tc_context_t *context, int index, const tc_tensor *t);
/* Runs the engine on the bound inputs and returns when the outputs are ready. */
tc_status tc_context_execute(tc_context_t *context);
/* CUDA engines: enqueues the run on `cuda_stream` (a cudaStream_t; NULL = the context's own
 * stream) and returns without waiting. CPU engines run synchronously. */
tc_status tc_context_enqueue(tc_context_t *context, void *cuda_stream);
/* Output `index` of the last execution; data owned by the context, valid until the next execute. */
tc_status tc_context_get_output(tc_context_t *context, int index, tc_tensor *out);

/* ---------------------------------------------------------------------------------------------
 * Importers
 */

/* Imports a torch.export archive (.pt2, written by torch.export.save; schema 8.x, archive version 0,
 * the raw-bytes weight layout of torch >= 2.9) into a new graph. Parameters, buffers and tensor
 * constants become constants; user inputs become graph inputs (symbolic dims become graph symbols
 * with the ranges of range_constraints, unbounded maxima capped at 1<<20, opt = the export-time
 * hint); user outputs become graph outputs named after their tensors. Ops not in the op table become
 * opaque nodes (the graph can then be checked and printed but not run). The file is read once into
 * memory that the graph owns, and weights point into it.
 * Errors (message in err_buf if given): TC_ERR_IO, TC_ERR_FORMAT (damaged or not a .pt2),
 * TC_ERR_VERSION (other schema or archive versions, legacy pickled weights), TC_ERR_UNSUPPORTED,
 * TC_ERR_DTYPE, TC_ERR_SHAPE / TC_ERR_SCHEMA (a node that does not match the op table; the
 * message names the node and op), TC_ERR_OUT_OF_MEMORY. *out is NULL on error. */
tc_status tc_import_pt2(const char *path, tc_graph_t **out, char *err_buf, size_t err_size);
/* Same from a buffer holding the archive, which is borrowed: it must outlive the graph and every
 * engine built from it. */
tc_status tc_import_pt2_memory(const void *data, size_t size, tc_graph_t **out, char *err_buf,
                               size_t err_size);


/* ---------------------------------------------------------------------------------------------
 * Partitioning: which nodes of a graph a backend runs, and why the others fall back (to PyTorch
 * in Python, or are rejected by the pure C runtime). Runs of backend nodes are merged into
 * blocks; each block becomes one engine.
 */
typedef struct tc_partition tc_partition_t;

typedef enum tc_fallback_reason {
    TC_FALLBACK_NONE = 0,    /* the node runs on the backend, in a block */
    TC_FALLBACK_UNKNOWN_OP,  /* an opaque node: the op table does not know the op */
    TC_FALLBACK_REJECTED,    /* an opaque node whose op the table knows: its arguments were rejected */
    TC_FALLBACK_UNSUPPORTED, /* the backend has no kernel for the op */
    TC_FALLBACK_FORCED,      /* the op is in options.forced_ops (torch_executed_ops) */
    TC_FALLBACK_SMALL_BLOCK, /* its block had fewer than options.min_block_size nodes */
    TC_FALLBACK_REASON_COUNT
} tc_fallback_reason;

typedef struct tc_partition_options {
    tc_backend_kind backend;        /* the backend that runs the blocks (default TC_BACKEND_CPU) */
    int min_block_size;             /* blocks with fewer nodes fall back (default 5; <= 1 keeps all) */
    const char *const *forced_ops;  /* ops that must fall back, n_forced_ops of them: an overload */
    int n_forced_ops;               /* ("relu.default", "add.Tensor", "aten.relu.default",
                                       "torch.ops.aten.relu.default") or every overload of an op
                                       ("relu", "aten.add") */
    bool require_full_compilation;  /* fail unless every node runs on the backend; min_block_size
                                       then does not apply */
} tc_partition_options;

void tc_partition_options_init(tc_partition_options *options);

/* Partitions graph (which is only read; it need not verify, so graphs with opaque nodes are
 * fine). Every node gets a block or a fallback reason. A node falls back when it is opaque, its op
 * has no kernel on the backend, or it is forced; the other nodes are merged into the fewest blocks
 * such that no block depends on itself through a fallback node (block b never needs a value that a
 * fallback node computes from block b); blocks below min_block_size fall back and the rest is
 * merged again. Blocks are numbered in an order in which they and the fallback nodes can run:
 * block 0, the fallback nodes that need only block 0 and graph inputs, block 1, ...
 * Errors (message in err_buf if given): TC_ERR_INVALID_ARGUMENT; TC_ERR_UNSUPPORTED when
 * require_full_compilation is set and some node falls back (the message lists each such node's
 * name, op and reason); TC_ERR_OUT_OF_MEMORY. *out is NULL on error. */
tc_status tc_graph_partition(const tc_graph_t *graph, const tc_partition_options *options,
                             tc_partition_t **out, char *err_buf, size_t err_size);
void tc_partition_free(tc_partition_t *partition);
int tc_partition_num_nodes(const tc_partition_t *partition); /* the graph's nodes, in order */
int tc_partition_num_blocks(const tc_partition_t *partition);
/* The block that runs node i (0-based graph order), or -1 when it falls back or i is out of range. */
int tc_partition_node_block(const tc_partition_t *partition, int node);
tc_fallback_reason tc_partition_node_reason(const tc_partition_t *partition, int node);
/* Why node i falls back, as a phrase ("unknown op", "forced to fall back by torch_executed_ops"),
 * "" when it runs on the backend. Node name and op as the graph has them. Strings live as long
 * as the partition; NULL when i is out of range. */
const char *tc_partition_node_message(const tc_partition_t *partition, int node);
const char *tc_partition_node_name(const tc_partition_t *partition, int node);
const char *tc_partition_node_op(const tc_partition_t *partition, int node);
/* Number of nodes in block b (0 when out of range). */
int tc_partition_block_size(const tc_partition_t *partition, int block);
/* Prints the report (one line per node: name, op, block or fallback reason; then a summary) to a
 * FILE* (passed as void*). */
tc_status tc_partition_print(const tc_partition_t *partition, void *file);

/* ---------------------------------------------------------------------------------------------
 * Passes: graph optimizations that keep what a graph computes (see docs/passes.md).
 */
typedef struct tc_optimize_options {
    bool eliminate_dead_code; /* drop nodes and constants no output needs (default true) */
    bool fold_constants;      /* compute nodes that depend only on constants now (default true) */
    bool fold_batchnorm;      /* fold inference batch norm into the convolution before it (default true) */
    bool allow_fp16;          /* run f32 compute in f16, sensitive ops kept f32 (default false) */
    bool allow_bf16;          /* same in bf16; allow_fp16 wins when both are set (default false) */
    size_t fold_max_bytes;    /* largest constant folding creates; 0 = 16 MiB */
    bool verbose;             /* print one line per pass (node counts before and after) to stderr */
} tc_optimize_options;

void tc_optimize_options_init(tc_optimize_options *options);

/* Replaces *graph by an optimized graph with the same inputs and outputs (names, dtypes, shapes,
 * symbols). The call takes over the caller's reference to *graph: afterwards the caller frees the
 * new *graph only (it keeps the original's constants alive). When no pass changes anything *graph
 * stays as it was. On error *graph is unchanged; the message (in err_buf if given) names the pass.
 * Errors: TC_ERR_INVALID_ARGUMENT (NULL graph), the verifier's errors for a graph that does not
 * verify, TC_ERR_OUT_OF_MEMORY, TC_ERR_INTERNAL. options may be NULL (defaults). */
tc_status tc_graph_optimize(tc_graph_t **graph, const tc_optimize_options *options, char *err_buf,
                            size_t err_size);

/* ---------------------------------------------------------------------------------------------
 * Engine files (.tce): an engine written to bytes (target, I/O table, graph, backend step records,
 * 64-byte aligned weights, checksum; see docs/engine-format.md) and loaded back without the model.
 * Thread safety: several threads may serialize one engine at once, also while contexts of it
 * execute (serializing a CUDA engine runs it once at its opt shapes in a context of its own, to
 * choose the plans the file stores; see docs/engine-format.md). Loading creates a new engine and touches no
 * shared state. An engine loaded once may be shared by contexts on any number of threads.
 */
#define TC_ENGINE_FORMAT_VERSION 1

/* Facts recorded in an engine file's header besides the engine itself. Every member may be NULL/0. */
typedef struct tc_engine_save_info {
    const char *model_path;    /* the source model: its bytes are hashed into the header, its base name kept */
    const char *build_command; /* the command that rebuilds the engine; load errors quote it */
    int n_settings;            /* extra build settings (key, value) shown by `tensorc inspect` (at most 32) */
    const char *const *setting_keys;
    const char *const *setting_values;
} tc_engine_save_info;

/* Serializes an engine into a new buffer (*data, *size), freed with tc_free_buffer. */
tc_status tc_engine_serialize(const tc_engine_t *engine, void **data, size_t *size);
/* Same with header facts (info may be NULL) and the error message in err_buf (may be NULL).
 * TC_ERR_IO when info->model_path cannot be read. */
tc_status tc_engine_serialize_ex(const tc_engine_t *engine, const tc_engine_save_info *info, void **data,
                                 size_t *size, char *err_buf, size_t err_size);
void tc_free_buffer(void *data);

/* Writes the engine to a file (TC_ERR_IO when it cannot be written; no partial file is left). */
tc_status tc_engine_save(const tc_engine_t *engine, const char *path);
tc_status tc_engine_save_ex(const tc_engine_t *engine, const tc_engine_save_info *info, const char *path,
                            char *err_buf, size_t err_size);

/* Loads an engine from a buffer (not kept: the weights are copied) and rebuilds it for the backend it
 * was built for, with the build options stored in the file, or with *override_or_null instead (for
 * example to run a CUDA engine's graph on the CPU, or to change num_threads); backend step records
 * are used only when the backend stays the same. Checks everything and never crashes on a damaged
 * buffer: TC_ERR_FORMAT (not an engine, truncated, corrupted: checksum, damaged sections),
 * TC_ERR_VERSION (a newer format), TC_ERR_UNSUPPORTED (a CUDA engine on a build without CUDA, or
 * for another GPU architecture), TC_ERR_UNKNOWN_OP / TC_ERR_SCHEMA / TC_ERR_INVALID_GRAPH (the
 * engine's ops do not match this build's op table), TC_ERR_OUT_OF_MEMORY. The message in err_buf
 * says what to do, usually the command that rebuilds the engine. *out is NULL on error. */
tc_status tc_engine_deserialize(const void *data, size_t size, const tc_build_options *override_or_null,
                                tc_engine_t **out, char *err_buf, size_t err_size);
/* Same from a file; TC_ERR_IO when it cannot be read. The message starts with the path. */
tc_status tc_engine_load(const char *path, const tc_build_options *override_or_null, tc_engine_t **out,
                         char *err_buf, size_t err_size);

/* Timing caches: the plan choices of CUDA engines (cuDNN plans, cuBLASLt algorithms, chosen by
 * the libraries' heuristics or by timing) in a file of their own, so that building the same model
 * again, or another with the same layer shapes, on the same GPU and libraries skips the timing.
 * Import before the engine first runs or is saved: its kernels then take the cached choice for
 * every plan key the cache has. Export writes every choice the engine holds (imported ones
 * included, so one cache grows over many builds), through a temporary file renamed over path.
 * Both do nothing for CPU engines (*n = 0). Import errors: TC_ERR_IO (no such file), TC_ERR_FORMAT
 * (damaged), TC_ERR_VERSION (another GPU model, compute capability or cuDNN/cuBLASLt version: the
 * caller should ignore the cache and overwrite it); the engine is unchanged then. Thread-safe with
 * running contexts. *n (may be NULL) receives the number of choices read / written. */
tc_status tc_engine_import_timing_cache(tc_engine_t *engine, const char *path, int *n, char *err_buf,
                                        size_t err_size);
/* Runs a CUDA engine once at its opt shapes (on pseudo-random inputs, in a context of its own) so
 * that its plans are chosen now, timing the candidates unless TENSORC_AUTOTUNE=0, instead of at
 * the first run of a context; contexts then take the chosen plans. Saving an engine does the same.
 * TC_OK and nothing for CPU engines. Thread-safe with running contexts. */
tc_status tc_engine_prepare(tc_engine_t *engine, char *err_buf, size_t err_size);
tc_status tc_engine_export_timing_cache(const tc_engine_t *engine, const char *path, int *n, char *err_buf,
                                        size_t err_size);

/* ---------------------------------------------------------------------------------------------
 * Device memory: moving data to and from the GPU of a CUDA engine without CUDA headers. Streams
 * and events are a cudaStream_t / cudaEvent_t passed as void*, so a C program that uses CUDA itself
 * may pass its own. In a build without the CUDA backend every function returns TC_ERR_UNSUPPORTED
 * (tc_device_free and the destroy functions do nothing).
 * Errors: the message of the last failed call of this thread is tc_device_last_error().
 * Thread safety: every function may be called from any thread.
 */
typedef enum tc_copy_kind {
    TC_COPY_HOST_TO_DEVICE = 0,
    TC_COPY_DEVICE_TO_HOST,
    TC_COPY_DEVICE_TO_DEVICE,
} tc_copy_kind;

typedef struct tc_device_info {
    char name[256];           /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor;   /* compute capability */
    int sm_count;             /* streaming multiprocessors */
    size_t total_memory;      /* bytes */
} tc_device_info;

/* The message of this thread's last failed tc_device_* / tc_stream_* / tc_event_* call ("" if none). */
const char *tc_device_last_error(void);
/* Number of usable GPUs in *n (0 and TC_ERR_CUDA with the reason when there is no driver or GPU). */
tc_status tc_device_count(int *n);
/* Facts about GPU `device`. TC_ERR_INVALID_ARGUMENT for a device that does not exist. */
tc_status tc_device_get_info(int device, tc_device_info *info);
/* Allocates `bytes` (at least 1) of memory on GPU `device`, 256-byte aligned; *ptr is NULL on error.
 * TC_ERR_OUT_OF_MEMORY when the GPU has too little free memory. Free with tc_device_free. */
tc_status tc_device_alloc(int device, size_t bytes, void **ptr);
/* Frees memory from tc_device_alloc. NULL is a no-op. Waits for nothing: work still using the memory
 * must be complete. */
void tc_device_free(void *ptr);
/* Copies `bytes` between host and device memory (or within device memory). With stream NULL the copy
 * is complete when the call returns; with a stream it is ordered on that stream, and host memory must
 * stay valid (and, for DEVICE_TO_HOST, unread) until the stream is synchronized. */
tc_status tc_device_copy(void *dst, const void *src, size_t bytes, tc_copy_kind kind, void *stream);
/* Waits until all work on `stream` is done; NULL waits for the whole current device. */
tc_status tc_device_synchronize(void *stream);

/* A non-blocking stream on GPU `device` (for tc_context_enqueue), destroyed with tc_stream_destroy. */
tc_status tc_stream_create(int device, void **stream);
void tc_stream_destroy(void *stream);
/* GPU timing: an event on GPU `device`; tc_event_record enqueues it on `stream` (NULL: the legacy
 * default stream); tc_event_elapsed_ms waits for `end` and gives the milliseconds between two recorded
 * events (TC_ERR_CUDA when either was never recorded). */
tc_status tc_event_create(int device, void **event);
void tc_event_destroy(void *event);
tc_status tc_event_record(void *event, void *stream);
tc_status tc_event_elapsed_ms(void *start, void *end, float *ms);

#ifdef __cplusplus
}
#endif
#endif
