/* The op table: one entry per ATen overload (schema with defaults, shape inference) and the
 * accessors that shape inference and kernels use to read a node's bound arguments. */
#ifndef TC_OPS_OP_H
#define TC_OPS_OP_H

#include "ir/graph.h"

#include <stdarg.h>

#define TC_OP_MAX_ARGS 16
#define TC_OP_MAX_OUTPUTS 1024

typedef struct tc_infer_ctx tc_infer_ctx;
typedef tc_status (*tc_infer_fn)(tc_infer_ctx *c);

typedef enum tc_op_id {
#define TC_OP(id, schema, infer) TC_OP_##id,
#include "ops/ops.def"
#undef TC_OP
    TC_OP_COUNT
} tc_op_id;

#define TC_OP(id, schema, infer) tc_status infer(tc_infer_ctx *c);
#include "ops/ops.def"
#undef TC_OP

typedef enum tc_argtype {
    TC_AT_TENSOR,
    TC_AT_TENSOR_LIST,
    TC_AT_OPT_TENSOR_LIST,
    TC_AT_INT,
    TC_AT_INT_LIST,
    TC_AT_FLOAT,
    TC_AT_FLOAT_LIST,
    TC_AT_BOOL,
    TC_AT_BOOL_LIST,
    TC_AT_SCALAR,
    TC_AT_STR,
    TC_AT_DTYPE,
    TC_AT_IGNORED, /* Layout, Device, MemoryFormat: accepted and not used */
} tc_argtype;

typedef struct tc_op_argdef {
    const char *name;
    tc_argtype type;
    bool optional;
    bool kwonly;
    bool has_default;
    int fixed_len; /* N of int[N], 0 when any length */
    tc_arg def;    /* the default, with .kind TC_ARG_NONE for None */
} tc_op_argdef;

typedef struct tc_op_def {
    const char *schema;
    tc_infer_fn infer;
    const char *name; /* "add.Tensor" (".default" is dropped) */
    int n_args;
    tc_op_argdef args[TC_OP_MAX_ARGS];
    int n_outputs;    /* fixed count, or -1 for Tensor[] returns (inference decides) */
} tc_op_def;

/* Parses every schema once (thread-safe). A malformed schema is a bug and aborts. */
const tc_op_def *tc_op_get(int op);
/* Looks up "add.Tensor", "aten.add.Tensor", "torch.ops.aten.add.Tensor", "relu", "relu.default". */
int tc_op_find(const char *name);

struct tc_infer_ctx {
    tc_graph *g;
    const tc_node *node;
    const tc_op_def *def;
    tc_status status; /* sticky: the first failure */
    tc_error *err;
    int n_out;        /* set by list-returning ops */
    struct {
        tc_dtype dtype;
        int rank;
        tc_dim dims[TC_MAX_RANK];
    } out[TC_OP_MAX_OUTPUTS];
};

/* Records a failure (first one wins) with the node and op in front of the message; returns it. */
tc_status tc_infer_fail(tc_infer_ctx *c, tc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Sets output i's type. */
void tc_infer_set(tc_infer_ctx *c, int i, tc_dtype dtype, int rank, const tc_dim *dims);
/* Symbolic arithmetic that records failures in c (and returns 0 then). */
tc_dim tc_dim_add(tc_infer_ctx *c, tc_dim a, tc_dim b);
tc_dim tc_dim_sub(tc_infer_ctx *c, tc_dim a, tc_dim b);
tc_dim tc_dim_mul(tc_infer_ctx *c, tc_dim a, tc_dim b);
tc_dim tc_dim_floordiv(tc_infer_ctx *c, tc_dim a, tc_dim b);
/* Normalizes a dim index (negative counts from the end) against rank; fails on out of range. */
int tc_infer_dim_index(tc_infer_ctx *c, int64_t dim, int rank, const char *what);
/* Broadcasts two shapes as PyTorch does; fails on incompatible constant dims. */
bool tc_infer_broadcast(tc_infer_ctx *c, int ra, const tc_dim *a, int rb, const tc_dim *b, int *rank,
                        tc_dim *out);
/* Lower and upper bound of a dim; constant dims give themselves. */
void tc_infer_range(tc_infer_ctx *c, tc_dim d, int64_t *min, int64_t *max);

/* The broadcasting elementwise ops (binary and ternary, PyTorch's broadcasting and promotion;
 * ops/elementwise.c): every backend runs them on one broadcasting kernel. */
extern const int tc_broadcast_ops[];
extern const int tc_n_broadcast_ops;
bool tc_op_is_broadcast(int op);

/* PyTorch type promotion over tensors (dim>0 and 0-dim) and wrapped scalars. */
typedef struct tc_promote {
    tc_dtype dim_result, zero_result, wrapped_result;
    bool has_dim, has_zero, has_wrapped;
} tc_promote;
void tc_promote_init(tc_promote *p);
void tc_promote_tensor(tc_promote *p, const tc_value *v);
void tc_promote_scalar(tc_promote *p, const tc_arg *scalar); /* INT -> i64, FLOAT -> f32, BOOL -> bool */
tc_dtype tc_promote_result(const tc_promote *p);
tc_dtype tc_promote_types(tc_dtype a, tc_dtype b);

/* Argument accessors by schema position (asserting the kind the schema guarantees). */
static inline const tc_arg *tc_node_arg_at(const tc_node *n, int i) { return &n->args[i].a; }
static inline bool tc_node_is_none(const tc_node *n, int i) { return n->args[i].a.kind == TC_ARG_NONE; }
tc_value *tc_node_tensor(const tc_node *n, int i); /* NULL when None */
int64_t tc_node_int(const tc_node *n, int i);
int64_t tc_node_int_or(const tc_node *n, int i, int64_t dflt);
double tc_node_float(const tc_node *n, int i);       /* also for Scalar and int args */
double tc_node_float_or(const tc_node *n, int i, double dflt);
bool tc_node_bool(const tc_node *n, int i);
const int64_t *tc_node_ints(const tc_node *n, int i, int64_t *count); /* NULL, 0 when None */
const char *tc_node_str(const tc_node *n, int i);    /* NULL when None */
const double *tc_node_floats(const tc_node *n, int i, int64_t *count); /* NULL, 0 when None */
tc_dtype tc_node_dtype_or(const tc_node *n, int i, tc_dtype dflt);
/* For Scalar args: whether the value is integral (INT or BOOL kind). */
bool tc_node_scalar_is_int(const tc_node *n, int i);

/* At run time, for every backend's kernel glue: the slot of a tensor argument in the node's input
 * list (-1 for None), of element k of a tensor-list argument, and int / int[] arguments with their
 * symbolic sizes evaluated for this run's symbol values (ints: the count, -1 for None; at most
 * cap values). A failure message that names the node, its op and the backend:
 * "node 'x' (op) on cuda: ...". */
int tc_node_tensor_slot(const tc_node *n, int argi);
int tc_node_list_slot(const tc_node *n, int argi, int64_t k);
int64_t tc_node_int_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals);
int64_t tc_node_ints_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals, int64_t *out,
                          int64_t cap);
tc_status tc_node_failv(tc_error *err, const tc_node *n, const char *backend, tc_status s, const char *fmt, va_list ap);
/* An int[2] argument (kernel_size, stride, padding, dilation) evaluated for this run: [] or None
 * gives dflt (zeros when NULL), one element stands for both. */
void tc_node_pair_eval(const tc_graph *g, const tc_node *n, int argi, const int64_t *symvals, const int64_t *dflt,
                       int64_t *out);
/* native_layer_norm at run time: the input of rank/dims as rows x n, where n is the product of the
 * normalized_shape dims (argument 1, evaluated for this run), which must match the input's trailing
 * dims; TC_ERR_SHAPE with a message otherwise (the caller prefixes the node). */
tc_status tc_layer_norm_rows(const tc_graph *g, const tc_node *node, const int64_t *symvals, int rank,
                             const int64_t *dims, int64_t *rows, int64_t *n, tc_error *err);

#endif
