/* A small graph built through the C API and run on the CPU: a two-layer perceptron with a
 * softmax, y = softmax(relu(x @ W1^T + b1) @ W2^T + b2). Prints the input and the result. */
#include "tensorc.h"

#include <stdio.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        tc_status s_ = (call);                                                         \
        if (s_ != TC_OK) {                                                             \
            fprintf(stderr, "%s failed: %s\n  %s\n", #call, tc_status_string(s_), msg()); \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

static tc_graph_t *graph;
static tc_engine_t *engine;
static tc_context_t *ctx;
static char build_err[1024];

static const char *msg(void) {
    if (ctx && *tc_context_last_error(ctx)) return tc_context_last_error(ctx);
    if (build_err[0]) return build_err;
    return graph ? tc_graph_last_error(graph) : "";
}

static tc_value_t *node1(const char *op, const char *name, int n, const tc_arg *args) {
    tc_value_t *out = NULL;
    int n_out = 0;
    if (tc_graph_add_node(graph, op, name, n, args, 1, &out, &n_out) != TC_OK) return NULL;
    return out;
}

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }
static tc_arg I(const char *name, int64_t i) { return (tc_arg){.name = name, .kind = TC_ARG_INT, .u.i = i}; }
static tc_arg B(const char *name, bool b) { return (tc_arg){.name = name, .kind = TC_ARG_BOOL, .u.b = b}; }

int main(void) {
    const float w1[4 * 3] = {0.5f, -0.2f, 0.1f, 0.3f, 0.8f, -0.5f, -0.7f, 0.2f, 0.4f, 0.1f, 0.1f, 0.1f};
    const float b1[4] = {0.1f, 0.0f, -0.1f, 0.2f};
    const float w2[2 * 4] = {1.0f, -1.0f, 0.5f, 0.25f, -0.5f, 0.75f, 1.0f, -0.25f};
    const float b2[2] = {0.0f, 0.1f};
    const float x[2 * 3] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 0.25f};

    CHECK(tc_graph_create(&graph));
    tc_dim batch;
    CHECK(tc_graph_add_symbol(graph, "batch", 1, 2, 64, &batch));
    tc_value_t *in, *W1, *B1, *W2, *B2;
    tc_dim in_dims[2] = {batch, 3};
    CHECK(tc_graph_add_input(graph, "x", TC_F32, 2, in_dims, &in));
    CHECK(tc_graph_add_constant(graph, "fc1.weight", TC_F32, 2, (int64_t[]){4, 3}, w1, TC_CONSTANT_BORROW, &W1));
    CHECK(tc_graph_add_constant(graph, "fc1.bias", TC_F32, 1, (int64_t[]){4}, b1, TC_CONSTANT_BORROW, &B1));
    CHECK(tc_graph_add_constant(graph, "fc2.weight", TC_F32, 2, (int64_t[]){2, 4}, w2, TC_CONSTANT_BORROW, &W2));
    CHECK(tc_graph_add_constant(graph, "fc2.bias", TC_F32, 1, (int64_t[]){2}, b2, TC_CONSTANT_BORROW, &B2));

    tc_value_t *h = node1("linear", "fc1", 3, (tc_arg[]){T(in), T(W1), T(B1)});
    if (h) h = node1("relu", "act", 1, (tc_arg[]){T(h)});
    if (h) h = node1("linear", "fc2", 3, (tc_arg[]){T(h), T(W2), T(B2)});
    if (h) h = node1("_softmax", "probs", 3, (tc_arg[]){T(h), I("dim", -1), B("half_to_float", false)});
    CHECK(h ? TC_OK : TC_ERR_INVALID_GRAPH);
    CHECK(tc_graph_mark_output(graph, h, "probs"));
    CHECK(tc_graph_verify(graph));
    printf("graph:\n");
    tc_graph_print(graph, TC_PRINT_TEXT, stdout);

    CHECK(tc_engine_build(graph, NULL, &engine, build_err, sizeof build_err));
    CHECK(tc_context_create(engine, &ctx));
    tc_tensor t = {.dtype = TC_F32, .rank = 2, .dims = {2, 3}, .data = (void *)x};
    CHECK(tc_context_set_input(ctx, 0, &t));
    CHECK(tc_context_execute(ctx));
    tc_tensor y;
    CHECK(tc_context_get_output(ctx, 0, &y));
    printf("\nx = [[1, 2, 3], [-1, 0.5, 0.25]]\nprobs (cpu) =\n");
    const float *p = y.data;
    for (int64_t i = 0; i < y.dims[0]; i++) printf("  [%.6f, %.6f]\n", p[i * 2], p[i * 2 + 1]);
    tc_context_free(ctx);
    tc_engine_free(engine);
    tc_graph_free(graph);
    return 0;
}
