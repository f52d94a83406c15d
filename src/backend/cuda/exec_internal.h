/* Private to the CUDA executor (exec.c, exec_run.c): the engine and execution-context structs, the
 * shape-set and CUDA-graph cache entries, and the helpers both files use. Kernels never include
 * this header; they see only backend/cuda/cuda.h. */
#ifndef TC_BACKEND_CUDA_EXEC_INTERNAL_H
#define TC_BACKEND_CUDA_EXEC_INTERNAL_H

#include "backend/cuda/cuda.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <pthread.h>
#include <stdatomic.h>

#define TC_CUDA_ALIGN 256 /* every device buffer and arena offset: enough for any vector access and cuDNN */
#define TC_CUDA_NODE_CACHE_BUCKETS 1024

static inline size_t tc_cuda_round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Makes dev current for this thread for the duration of a call and restores the caller's device
 * afterwards, so that a host program (PyTorch) keeps its own current device. */
typedef struct tc_cuda_dev_guard {
    int prev;
    bool changed;
} tc_cuda_dev_guard;
tc_status tc_cuda_dev_enter(int dev, tc_cuda_dev_guard *gd, tc_error *err);
void tc_cuda_dev_leave(const tc_cuda_dev_guard *gd);

typedef enum tc_cuda_step_kind {
    TC_CUDA_STEP_NODE, /* one node, its own kernel */
    TC_CUDA_STEP_CONV, /* convolution + folded batch norms / per-channel adds + relu / residual add + relu */
    TC_CUDA_STEP_GEMM, /* mm / addmm / linear + relu or gelu, as a cuBLASLt epilogue */
    TC_CUDA_STEP_EW    /* a chain of elementwise nodes as one generated kernel (fuse_ew.c) */
} tc_cuda_step_kind;

/* A chain of elementwise nodes run by one generated kernel (fuse_ew.c; off with TENSORC_CUDA_NVRTC=0). */
#define TC_CUDA_EW_MAX_NODES 8
#define TC_CUDA_EW_MAX_IN 8
typedef struct tc_cuda_ew_operand {
    int value;              /* value id of a tensor read from memory */
    bool full;              /* the output's dims: read at the element's own index */
    int first, last;        /* else the block of output dims it spans (first < 0: one element) */
} tc_cuda_ew_operand;

typedef struct tc_cuda_ew_step {
    tc_dtype dtype;         /* of every operand and result (f32, f16, bf16) */
    int n_nodes;
    int chain[TC_CUDA_EW_MAX_NODES]; /* per node: its output's value id */
    int n_in;
    tc_cuda_ew_operand in[TC_CUDA_EW_MAX_IN];
    cudaKernel_t kernel;    /* once loaded */
} tc_cuda_ew_step;

bool tc_cuda_ew_node_ok(const tc_node *n);
/* How the chain's kernel reads v for an output of out's type; false when it cannot index it. */
bool tc_cuda_ew_classify(const tc_value *v, const tc_value *out, tc_cuda_ew_operand *o);

/* A constant the engine makes at build time (a convolution weight and bias with batch norms and
 * per-channel adds folded in), stored in the weight allocation after the graph's constants. */
typedef struct tc_cuda_derived {
    tc_dtype dtype;
    int rank;
    int64_t dims[TC_MAX_RANK];
    int64_t numel;
    size_t off;             /* in e->weights */
    void *host;             /* the values, until they are uploaded */
    bool nhwc;              /* a convolution weight stored [K, R, S, C] */
} tc_cuda_derived;

/* One kernel call per run: a node, or a fused group whose head node's kernel computes the output
 * of its last node. Steps are in the order of their last nodes, which keeps every input of a
 * group (a residual made by a later branch included) ready before the step runs. */
typedef struct tc_cuda_step {
    tc_cuda_step_kind kind;
    int node;               /* the head node (index in g->nodes): its kernel runs the step */
    int last;               /* the node whose output the step produces */
    int first, count;       /* its nodes: e->step_nodes[first .. first + count), head first */
    int weight, bias;       /* derived constants replacing the head's weight / bias, -1: its own */
    int residual;           /* value id added after act1, -1 */
    tc_cuda_epi_act act1, act2;
    int ew;                 /* TC_CUDA_STEP_EW: index in e->ew */
} tc_cuda_step;

/* Lowers e->g to steps (fills steps, step_nodes, derived with host values, uploaded, flag_slot,
 * and with e->nhwc_mode the per-value layouts in e->nhwc); fuse = false gives one step per node.
 * Needs no device. */
tc_status tc_cuda_lower_steps(tc_cuda_engine *e, bool fuse, tc_error *err);
/* The lowering switches from the environment (TENSORC_CUDA_FUSE, _NVRTC, _NHWC, _VIEWS,
 * _DEPTHWISE), read once per engine; and an engine of g lowered with them and no device, for the
 * describe functions (the lowering's message in buf on failure; tc_cuda_free_steps frees it). */
void tc_cuda_engine_read_switches(tc_cuda_engine *e);
tc_status tc_cuda_lower_for_description(const tc_graph *g, tc_cuda_engine *e, char *buf, size_t n);
void tc_cuda_free_steps(tc_cuda_engine *e);

struct tc_cuda_engine {
    const tc_graph *g;
    tc_build_options opt;
    int device;
    tc_cuda_device_props props;
    unsigned char *weights; /* one allocation: each constant at a 256-byte aligned offset, then 256 spare bytes */
    size_t weight_bytes;
    size_t *const_off;      /* per value id */
    void *empty;            /* a valid device address for tensors without elements (never read or written) */
    bool use_graphs;        /* TENSORC_CUDA_GRAPHS (default on) */
    bool sync_each;         /* TENSORC_CUDA_SYNC=1: synchronize after every node to find faulting kernels */
    bool profile;           /* TENSORC_CUDA_PROFILE=1: time every step with events (no CUDA graphs) */
    bool fuse;              /* TENSORC_CUDA_FUSE (default on): group nodes into fused steps */
    bool nhwc_mode;         /* TENSORC_CUDA_NHWC (default on): keep conv activations channels-last */
    bool views_mode;        /* TENSORC_CUDA_VIEWS (default on): zero-copy views (views.c) */
    bool depthwise_mode;    /* TENSORC_CUDA_DEPTHWISE (default on): depthwise convolutions on our kernel */
    bool *nhwc;             /* per value id: stored channels-last (NULL without nhwc_mode) */
    int n_nhwc;             /* values stored channels-last */
    int n_steps;
    tc_cuda_step *steps;
    int *step_nodes;
    int n_fused;            /* nodes inside another node's step */
    int n_derived;
    tc_cuda_derived *derived;
    bool *uploaded;         /* per value id: a constant some step reads (the others stay on the host) */
    int n_flags;            /* device error words: one per node that can fail on the device */
    int *flag_slot;         /* per node id: its word, or -1 */
    int *flag_node;         /* per word: the node id */
    /* generated elementwise kernels (fuse_ew.c) */
    bool ew_mode;           /* TENSORC_CUDA_NVRTC (default off) */
    int n_ew;
    tc_cuda_ew_step *ew;
    pthread_mutex_t ew_lock;
    _Atomic bool ew_loaded; /* set (release) once ew_lib and every ew[i].kernel are in place, or ew_failed */
    bool ew_failed;         /* NVRTC or the load failed: the chains run node by node (fuse_ew.c) */
    cudaLibrary_t ew_lib;
    /* plan choices (records.c), shared by the contexts */
    bool records;           /* TENSORC_PLAN_RECORDS (default on) */
    pthread_mutex_t choice_lock;
    _Atomic uint64_t plans_from_records, plans_rechosen;
    tc_cuda_choice *choices;
    int n_choices, cap_choices;
};

typedef struct tc_cuda_graph_variant {
    bool valid;             /* a capture of this shape set with ptrs */
    cudaGraphExec_t exec;   /* NULL for a capture without nodes: nothing to launch */
    void **ptrs;            /* the I/O pointers the capture baked in */
    uint64_t gen;           /* memory generation at capture; a different one means stale */
    uint64_t last_use;
} tc_cuda_graph_variant;

/* Per shape set and value (views.c): src < 0, the value has memory of its own and its node's kernel
 * makes it. Else it is elements of value src's memory at base + sum i_d strides[d] (in elements):
 * with own, its step gathers it from there into its own memory; without, it has no memory (an
 * alias when contiguous, else a strided view that only strided readers see). */
typedef struct tc_cuda_view_plan {
    int src;
    int anchor; /* views.c: the nearest non-contiguous clone up a virtual view's chain, or -1 */
    bool own, contiguous;
    int64_t base;
    int64_t strides[TC_MAX_RANK];
} tc_cuda_view_plan;
enum { TC_CUDA_VIEW_RUN, TC_CUDA_VIEW_SKIP, TC_CUDA_VIEW_GATHER }; /* per step: its kernel, nothing, a gather */

typedef struct tc_cuda_shape_set {
    bool used, warmed;
    uint64_t hash, last_use;
    int64_t *in_dims;       /* every input's dims, concatenated */
    size_t *offs;           /* per value id: offset in the arena */
    size_t arena_bytes;
    char *flag_msgs;        /* per error word: what the kernel said a raised word means for these shapes */
    tc_tensor *out_types;   /* per graph output (data unused) */
    size_t *out_bytes;
    tc_cuda_view_plan *views;       /* per value id (views.c) */
    unsigned char *step_mode;       /* per step: TC_CUDA_VIEW_* */
    int *write_to;                  /* per step: the permute step whose output it writes (views.c), or -1 */
    tc_cuda_graph_variant var[TC_CUDA_GRAPHS_PER_SHAPE_SET];
} tc_cuda_shape_set;

typedef struct tc_cuda_node_cache_entry {
    int node;
    uint64_t key;
    void *value;
    void (*destroy)(void *);
    struct tc_cuda_node_cache_entry *next;
} tc_cuda_node_cache_entry;

typedef enum tc_cuda_run_mode { TC_CUDA_MODE_EAGER, TC_CUDA_MODE_CAPTURE, TC_CUDA_MODE_JOINED } tc_cuda_run_mode;

struct tc_cuda_exec {
    tc_cuda_engine *e;
    const tc_graph *g;
    cudaStream_t stream;
    cudaEvent_t ev_in, ev_out;
    cublasLtHandle_t lt; /* created on first use, in a warm-up run */
    cudnnHandle_t dnn;
    tc_cuda_tensor *vals;
    tc_cuda_tensor **in_ptrs, **out_ptrs;
    int max_in, max_out;
    int64_t *symvals;
    bool *bound;
    int *last_use;          /* per value id: last step reading it */
    int *out_first;         /* per value id: first graph output that is this node value, else -1 */
    int n_in, n_out, n_dims;
    int64_t *key_dims;
    void **ptrs;            /* this run's I/O pointers: inputs, then outputs */
    unsigned char *arena;
    size_t arena_cap;
    void **out_buf;         /* owned output buffers */
    size_t *out_cap;
    void *scratch[TC_CUDA_SCRATCH_SLOTS];
    size_t scratch_cap[TC_CUDA_SCRATCH_SLOTS];
    uint64_t gen, clock;
    tc_cuda_shape_set sets[TC_CUDA_MAX_SHAPE_SETS];
    tc_cuda_node_cache_entry *cache[TC_CUDA_NODE_CACHE_BUCKETS];
    tc_cuda_run_mode mode;
    bool side_fail;         /* an accessor failed during the current kernel call */
    tc_status side_status;
    char side_msg[600];
    tc_tensor *out_view;
    tc_cuda_exec_stats stats;
    tc_cuda_tensor *derived_t;      /* per derived constant, as kernels see it */
    tc_cuda_epilogue epi;           /* the current fused step's */
    unsigned int *flags_dev;        /* e->n_flags device error words */
    unsigned int *flags_host;       /* pinned: their copy after the last launched run */
    tc_cuda_shape_set *cur_set;     /* the shape set being run (for error-word messages) */
    tc_cuda_shape_set *flags_set;   /* the shape set of the last launched run, NULL once evicted */
    /* TENSORC_CUDA_PROFILE=1: an event before each step and one after the last; per step, the
     * milliseconds summed over the profiled runs (every run but a shape set's first) */
    cudaEvent_t *prof_ev;
    double *prof_ms;
    int64_t prof_runs;
    bool prof_this;                 /* the current run is profiled */
    /* zero-copy views (views.c), from the graph: per step, a lone view-like node the executor may
     * skip or gather itself; per value, every reader takes a strided tensor */
    bool *step_view;
    bool *strided_ok;
    /* attention steps whose output only a permute reads: the permute's step (write_to) and back
     * (written_by), -1 elsewhere; the shape set's plan decides whether it happens */
    int *write_to, *written_by;
};

#define TC_CUDA_FLAG_MSG 160 /* bytes per error-word message */

/* Generated kernels (fuse_ew.c): the CUDA C source of every TC_CUDA_STEP_EW of e (no device
 * needed), NVRTC's cubin of a source for a compute capability (no device needed either), the
 * run of one such step (compiling or taking the stored cubin, and loading, at the first), and the
 * release of the loaded module. */
tc_status tc_cuda_ew_source(const tc_cuda_engine *e, char **src, size_t *len, tc_error *err);
tc_status tc_cuda_nvrtc_compile(const char *src, int cc_major, int cc_minor, void **cubin, size_t *size,
                                tc_error *err);
tc_status tc_cuda_ew_run(tc_cuda_exec *x, const tc_cuda_step *s, tc_error *err);
void tc_cuda_ew_unload(tc_cuda_engine *e);

/* The plan-choice table by engine (records.c; tc_cuda_choice_find/store are these for a call's
 * engine and node). */
void *tc_cuda_choice_find_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len, size_t *len,
                                 int node);
void tc_cuda_choice_store_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len, const char *desc,
                                 const void *data, size_t len, bool replace, int node);
void tc_cuda_choice_drop_engine(tc_cuda_engine *e, uint32_t kind, const void *key, size_t key_len);

/* Grows a device buffer of x to at least need bytes (draining x's stream before freeing the old
 * one); every reallocation makes the captured graphs stale. Only outside capture. */
tc_status tc_cuda_exec_regrow(tc_cuda_exec *x, void **p, size_t *cap, size_t need, const char *what, tc_error *err);
void tc_cuda_shape_set_free(tc_cuda_shape_set *s);

/* Zero-copy views (views.c): the graph facts at context creation, the plan of a shape set (after
 * its shapes are known, before memory is placed), and the gather a TC_CUDA_VIEW_GATHER step runs. */
tc_status tc_cuda_views_prepare(tc_cuda_exec *x, tc_error *err);
tc_status tc_cuda_views_plan(tc_cuda_exec *x, tc_cuda_shape_set *s, tc_error *err);
tc_status tc_cuda_views_gather(tc_cuda_exec *x, int si, tc_error *err);

#endif
