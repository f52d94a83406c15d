/* The IR: a graph owns its values, nodes, constants and symbolic sizes in one arena. */
#ifndef TC_IR_GRAPH_H
#define TC_IR_GRAPH_H

#include "core/arena.h"
#include "core/error.h"
#include "core/sym.h"

/* The largest constant size a dim or a size-like argument may have: big enough for any model,
 * small enough that products of a few of them cannot overflow int64 in shape arithmetic. */
#define TC_MAX_DIM_VALUE ((int64_t)1 << 40)

typedef struct tc_node tc_node;
typedef struct tc_value tc_value;
typedef struct tc_graph tc_graph;

typedef enum tc_value_kind { TC_VALUE_INPUT, TC_VALUE_CONSTANT, TC_VALUE_NODE } tc_value_kind;

struct tc_value {
    int id;
    tc_value_kind kind;
    const char *name;
    tc_dtype dtype;
    int rank;
    tc_dim dims[TC_MAX_RANK];
    tc_node *producer; /* TC_VALUE_NODE */
    int output_index;  /* which output of producer */
    int input_index;   /* TC_VALUE_INPUT: position among graph inputs */
    const void *data;  /* TC_VALUE_CONSTANT: contiguous C-order data */
    size_t nbytes;
    bool owned;        /* data was copied into the graph */
};

/* A bound argument: the schema's argument with the caller's value or the default. */
typedef struct tc_node_arg {
    tc_arg a;  /* a.name is the schema name; tensor lists and int lists point into the arena */
    int slot;  /* first position in node->inputs of this argument's tensors, -1 if none */
} tc_node_arg;

struct tc_node {
    int id;
    int op;              /* tc_op_id, or -1 for an opaque node */
    const char *op_name; /* overload name, "add.Tensor" */
    const char *name;    /* source name */
    int n_args;
    tc_node_arg *args;
    int n_inputs;
    tc_value **inputs;   /* tensor inputs, flattened in argument order; NULL entries for absent optional list elements */
    int n_outputs;
    tc_value **outputs;
};

struct tc_graph {
    int refcount;
    tc_arena arena;
    tc_error err;
    tc_symtab syms;
    tc_ptrvec values;  /* tc_value* */
    tc_ptrvec nodes;   /* tc_node*, in insertion (topological) order */
    tc_ptrvec inputs;  /* tc_value* */
    tc_ptrvec outputs; /* tc_value* */
    tc_ptrvec output_names; /* const char* */
    tc_ptrvec keep;    /* tc_graph_keep entries, released when the graph is freed */
};

/* Ties a resource (a file mapping, a buffer) to the graph's lifetime: release(ptr) is called
 * when the graph is freed, after engines built from it are gone. */
tc_status tc_graph_keep(tc_graph *g, void *ptr, void (*release)(void *ptr));

tc_value *tc_graph_new_value(tc_graph *g, tc_value_kind kind, const char *name, tc_dtype dtype,
                             int rank, const tc_dim *dims);
void tc_graph_retain(tc_graph *g);
/* Number of elements of a value with all dims constant; -1 when a dim is symbolic. */
int64_t tc_value_numel_static(const tc_value *v);
/* "f32[2, s0, 3]" */
const char *tc_value_type_string(const tc_graph *g, const tc_value *v, char *buf, size_t size);
/* "node 'conv1' (convolution)" for messages */
const char *tc_node_label(const tc_node *n, char *buf, size_t size);

#endif
