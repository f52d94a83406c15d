/* The CPU backend: the kernel interface every op family implements, and the executor that runs
 * a whole graph with activation memory reused by liveness. */
#ifndef TC_BACKEND_CPU_H
#define TC_BACKEND_CPU_H

#include "ops/op.h"

typedef struct tc_cpu_tensor {
    tc_dtype dtype;
    int rank;
    int64_t dims[TC_MAX_RANK];
    int64_t numel;
    void *data; /* contiguous, C order */
} tc_cpu_tensor;

#define TC_CPU_SCRATCH_SLOTS 8

typedef struct tc_cpu_call {
    const tc_graph *g;
    const tc_node *node;
    tc_cpu_tensor *const *in;  /* one per node->inputs; NULL for absent optional list elements */
    tc_cpu_tensor *const *out; /* one per node->outputs, already allocated */
    const int64_t *symvals;    /* symbol values of this execution, per atom id */
    struct tc_cpu_exec *exec;
    tc_error *err;
} tc_cpu_call;

typedef tc_status (*tc_cpu_kernel)(const tc_cpu_call *c);

/* Each family file defines its register function, which fills table[op] for the ops it runs. */
void tc_cpu_register_elementwise(tc_cpu_kernel *table);
void tc_cpu_register_activation(tc_cpu_kernel *table);
void tc_cpu_register_matmul(tc_cpu_kernel *table);
void tc_cpu_register_conv(tc_cpu_kernel *table);
void tc_cpu_register_pool(tc_cpu_kernel *table);
void tc_cpu_register_norm(tc_cpu_kernel *table);
void tc_cpu_register_reduce(tc_cpu_kernel *table);
void tc_cpu_register_shape(tc_cpu_kernel *table);
void tc_cpu_register_index(tc_cpu_kernel *table);
void tc_cpu_register_attention(tc_cpu_kernel *table);

/* The kernel for op, or NULL when the CPU backend does not run it. */
tc_cpu_kernel tc_cpu_kernel_for(int op);

/* Tensor argument argi (schema position) of the node, NULL when None. */
tc_cpu_tensor *tc_cpu_in(const tc_cpu_call *c, int argi);
/* Element k of tensor-list argument argi (NULL for an absent optional element). */
tc_cpu_tensor *tc_cpu_in_list(const tc_cpu_call *c, int argi, int64_t k);
/* Integer arguments with symbolic sizes evaluated for this execution. */
int64_t tc_cpu_int(const tc_cpu_call *c, int argi);
/* Copies int-list argument argi (evaluated) into out[TC_MAX_RANK*2]; returns its length, -1 for None. */
int64_t tc_cpu_ints(const tc_cpu_call *c, int argi, int64_t *out, int64_t cap);
/* Records a failure naming the node and op; returns s. */
tc_status tc_cpu_fail(const tc_cpu_call *c, tc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Scratch memory of at least bytes (64-byte aligned) valid during this kernel call; slots are
 * independent buffers. Returns NULL when out of memory. */
void *tc_cpu_scratch(const tc_cpu_call *c, int slot, size_t bytes);
/* Input tensor t as f32: t->data itself when it is f32, else a converted copy in scratch slot. */
const float *tc_cpu_as_f32(const tc_cpu_call *c, const tc_cpu_tensor *t, int slot);
/* Output buffer as f32: out->data when f32, else scratch slot; finish with tc_cpu_store_f32. */
float *tc_cpu_out_f32(const tc_cpu_call *c, tc_cpu_tensor *t, int slot);
void tc_cpu_store_f32(tc_cpu_tensor *t, const float *src);

/* Strides (in elements) of a contiguous tensor. */
void tc_cpu_strides(const tc_cpu_tensor *t, int64_t *strides);

/* The executor. */
typedef struct tc_cpu_exec tc_cpu_exec;
/* Fails (TC_ERR_UNSUPPORTED, naming every node and op) when some node has no CPU kernel. */
tc_status tc_cpu_check_graph(const tc_graph *g, tc_error *err);
tc_status tc_cpu_exec_create(const tc_graph *g, tc_cpu_exec **out, tc_error *err);
void tc_cpu_exec_free(tc_cpu_exec *x);
/* Runs with one host tensor per graph input. outputs (may be NULL) holds, per graph output, a
 * caller buffer to compute that output into (data NULL: a buffer the executor owns); a bound
 * buffer must have the result's dtype and shape. */
tc_status tc_cpu_exec_run(tc_cpu_exec *x, const tc_tensor *inputs, const tc_tensor *outputs, tc_error *err);
/* Output i of the last run; data owned by x. */
void tc_cpu_exec_output(const tc_cpu_exec *x, int i, tc_tensor *out);

#endif
