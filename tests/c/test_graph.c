/* Unit tests of the IR, the symbolic sizes, the op table's argument binding and the CPU engine:
 * hand-worked values, and errors that name the node and the op without aborting. */
#include "tensorc.h"
#include "core/dtype.h"
#include "core/sym.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }

static void test_dtype_conversions(void) {
    /* hand-worked encodings */
    CHECK(tc_f32_to_f16(1.0f) == 0x3c00);
    CHECK(tc_f32_to_f16(-2.0f) == 0xc000);
    CHECK(tc_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(tc_f32_to_f16(65520.0f) == 0x7c00);           /* rounds to inf */
    CHECK(tc_f32_to_f16(5.9604645e-08f) == 0x0001);     /* smallest subnormal */
    CHECK(tc_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even */
    CHECK(tc_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(tc_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(tc_f16_to_f32(0x0001) == 5.9604645e-08f);
    CHECK(isnan(tc_f16_to_f32(0x7e00)));
    CHECK(tc_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(tc_f32_to_bf16(3.140625f) == 0x4049);
    CHECK(tc_bf16_to_f32(0xc0a0) == -5.0f);
    CHECK(tc_f8e4m3_to_f32(0x7e) == 448.0f);
    CHECK(tc_f8e4m3_to_f32(0x38) == 1.0f);
    CHECK(tc_f32_to_f8e4m3(1000.0f) == 0x7e);
    CHECK(tc_f32_to_f8e4m3(-1.0f) == 0xb8);
    /* every f16 value survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tc_f16_to_f32((uint16_t)h);
        if (!isnan(f) && tc_f32_to_f16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d f16 values do not round-trip", bad);
    tc_dtype t;
    CHECK(tc_dtype_from_name("bfloat16", &t) && t == TC_BF16);
    CHECK(tc_dtype_from_name("torch.float16", &t) && t == TC_F16);
    CHECK(!tc_dtype_from_name("complex64", &t));
    CHECK(tc_dtype_size(TC_I64) == 8 && tc_dtype_size(TC_BOOL) == 1 && tc_dtype_size((tc_dtype)99) == 0);
}

static void test_symbolic_dims(void) {
    tc_graph_t *g;
    CHECK(tc_graph_create(&g) == TC_OK);
    tc_dim s0, s1, e, f, h;
    char buf[128];
    CHECK(tc_graph_add_symbol(g, "s0", 1, 8, 64, &s0) == TC_OK);
    CHECK(tc_graph_add_symbol(g, "s1", 2, 4, 16, &s1) == TC_OK);
    CHECK(TC_DIM_IS_SYM(s0) && TC_DIM_IS_SYM(s1) && s0 != s1);
    CHECK(tc_graph_add_symbol(g, "s0", 1, 1, 1, &e) == TC_ERR_INVALID_ARGUMENT); /* duplicate name */
    CHECK(tc_graph_add_symbol(g, "bad", 5, 2, 9, &e) == TC_ERR_INVALID_ARGUMENT); /* opt < min */
    /* (s0 * 12) // 12 == s0, hash-consed */
    CHECK(tc_graph_sym_expr(g, TC_SYM_MUL, s0, 12, &e) == TC_OK);
    CHECK(tc_graph_sym_expr(g, TC_SYM_FLOORDIV, e, 12, &f) == TC_OK);
    CHECK(f == s0);
    CHECK(strcmp(tc_graph_dim_string(g, e, buf, sizeof buf), "12*s0") == 0);
    /* s0 + s1 - s0 == s1; 2*s0 + 1 prints canonically */
    CHECK(tc_graph_sym_expr(g, TC_SYM_ADD, s0, s1, &e) == TC_OK);
    CHECK(tc_graph_sym_expr(g, TC_SYM_SUB, e, s0, &f) == TC_OK);
    CHECK(f == s1);
    CHECK(tc_graph_sym_expr(g, TC_SYM_MUL, s0, 2, &e) == TC_OK);
    CHECK(tc_graph_sym_expr(g, TC_SYM_ADD, e, 1, &f) == TC_OK);
    CHECK(strcmp(tc_graph_dim_string(g, f, buf, sizeof buf), "2*s0 + 1") == 0);
    /* (2*s0 + 1) // 2 stays an opaque floor division; its range comes from s0's range */
    CHECK(tc_graph_sym_expr(g, TC_SYM_FLOORDIV, f, 2, &h) == TC_OK);
    int64_t lo, opt, hi;
    CHECK(tc_graph_dim_range(g, h, &lo, &opt, &hi) == TC_OK);
    CHECK(lo == 1 && opt == 8 && hi == 64);
    CHECK(tc_graph_sym_expr(g, TC_SYM_MOD, e, 2, &h) == TC_OK && h == 0);  /* (2*s0) % 2 */
    CHECK(tc_graph_sym_expr(g, TC_SYM_FLOORDIV, s0, 0, &h) == TC_ERR_SHAPE); /* division by zero */
    CHECK(tc_graph_sym_expr(g, TC_SYM_MUL, 6, 7, &h) == TC_OK && h == 42);
    CHECK(tc_graph_sym_expr(g, TC_SYM_FLOORDIV, -7, 2, &h) == TC_OK && h == -4); /* floor semantics */
    CHECK(tc_graph_sym_expr(g, TC_SYM_MOD, -7, 2, &h) == TC_OK && h == 1);
    tc_graph_free(g);
}

static void test_graph_errors(void) {
    tc_graph_t *g;
    tc_value_t *x, *y, *out;
    CHECK(tc_graph_create(&g) == TC_OK);
    CHECK(tc_graph_add_input(g, "x", TC_F32, 2, (tc_dim[]){2, 3}, &x) == TC_OK);
    CHECK(tc_graph_add_input(g, "y", TC_F32, 1, (tc_dim[]){-4}, &y) == TC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tc_graph_last_error(g), "negative") != NULL);
    CHECK(tc_graph_add_input(g, "y", TC_F32, 9, (tc_dim[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, &y) == TC_ERR_INVALID_ARGUMENT);
    CHECK(tc_graph_add_input(g, "y", (tc_dtype)77, 1, (tc_dim[]){3}, &y) == TC_ERR_DTYPE);
    CHECK(y == NULL);

    /* unknown op: named with the node */
    CHECK(tc_graph_add_node(g, "frobnicate", "f1", 1, (tc_arg[]){T(x)}, 1, &out, NULL) == TC_ERR_UNKNOWN_OP);
    CHECK(strstr(tc_graph_last_error(g), "node 'f1'") && strstr(tc_graph_last_error(g), "frobnicate"));
    /* wrong arity */
    CHECK(tc_graph_add_node(g, "exp", "e1", 2, (tc_arg[]){T(x), T(x)}, 1, &out, NULL) == TC_ERR_SCHEMA);
    CHECK(strstr(tc_graph_last_error(g), "node 'e1' (exp)") && strstr(tc_graph_last_error(g), "too many"));
    CHECK(tc_graph_add_node(g, "exp", "e2", 0, NULL, 1, &out, NULL) == TC_ERR_SCHEMA);
    CHECK(strstr(tc_graph_last_error(g), "missing argument 'self'"));
    /* wrong kind of argument */
    CHECK(tc_graph_add_node(g, "exp", "e3", 1, (tc_arg[]){{.kind = TC_ARG_INT, .u.i = 3}}, 1, &out, NULL) ==
          TC_ERR_SCHEMA);
    CHECK(strstr(tc_graph_last_error(g), "expects Tensor"));
    /* unknown keyword */
    CHECK(tc_graph_add_node(g, "exp", "e4", 2, (tc_arg[]){T(x), {.name = "bogus", .kind = TC_ARG_INT}}, 1, &out,
                            NULL) == TC_ERR_SCHEMA);
    CHECK(strstr(tc_graph_last_error(g), "no argument named 'bogus'"));
    /* a value of another graph */
    tc_graph_t *g2;
    tc_value_t *z;
    CHECK(tc_graph_create(&g2) == TC_OK);
    CHECK(tc_graph_add_input(g2, "z", TC_F32, 1, (tc_dim[]){3}, &z) == TC_OK);
    CHECK(tc_graph_add_node(g, "exp", "e5", 1, (tc_arg[]){T(z)}, 1, &out, NULL) != TC_OK);
    tc_graph_free(g2);
    /* a dilated kernel beyond the size limit: rejected, not an overflow (fuzzer find) */
    {
        tc_value_t *x4, *outs[2];
        CHECK(tc_graph_add_input(g, "x4", TC_F32, 4, (tc_dim[]){1, 1, 8, 8}, &x4) == TC_OK);
        int64_t big[2] = {(int64_t)1 << 32, 2}, one[2] = {1, 1}, zero[2] = {0, 0}, dil[2] = {(int64_t)1 << 39, 1};
        tc_arg a[5] = {T(x4),
                       {.kind = TC_ARG_INTS, .count = 2, .u.ints = big},
                       {.kind = TC_ARG_INTS, .count = 2, .u.ints = one},
                       {.kind = TC_ARG_INTS, .count = 2, .u.ints = zero},
                       {.kind = TC_ARG_INTS, .count = 2, .u.ints = dil}};
        CHECK(tc_graph_add_node(g, "max_pool2d_with_indices", "mp", 5, a, 2, outs, NULL) == TC_ERR_SHAPE);
        CHECK(strstr(tc_graph_last_error(g), "node 'mp'") && strstr(tc_graph_last_error(g), "too large"));
        tc_value_t *w4, *cv;
        CHECK(tc_graph_add_input(g, "w4", TC_F32, 4, (tc_dim[]){1, 1, (int64_t)1 << 20, 1}, &w4) == TC_OK);
        int64_t cdil[2] = {(int64_t)1 << 39, 1};
        tc_arg ca[9] = {T(x4),
                        T(w4),
                        {.kind = TC_ARG_NONE},
                        {.kind = TC_ARG_INTS, .count = 2, .u.ints = one},
                        {.kind = TC_ARG_INTS, .count = 2, .u.ints = zero},
                        {.kind = TC_ARG_INTS, .count = 2, .u.ints = cdil},
                        {.kind = TC_ARG_BOOL, .u.b = false},
                        {.kind = TC_ARG_INTS, .count = 2, .u.ints = zero},
                        {.kind = TC_ARG_INT, .u.i = 1}};
        CHECK(tc_graph_add_node(g, "convolution", "cv", 9, ca, 1, &cv, NULL) == TC_ERR_SHAPE);
        CHECK(strstr(tc_graph_last_error(g), "node 'cv'") && strstr(tc_graph_last_error(g), "too large"));
    }
    /* accepted with the aten prefix and .default */
    CHECK(tc_graph_add_node(g, "torch.ops.aten.exp.default", "e6", 1, (tc_arg[]){T(x)}, 1, &out, NULL) == TC_OK);
    CHECK(tc_value_dtype(out) == TC_F32 && tc_value_rank(out) == 2 && tc_value_dims(out)[1] == 3);
    /* no outputs: verify fails */
    CHECK(tc_graph_verify(g) == TC_ERR_INVALID_GRAPH);
    CHECK(strstr(tc_graph_last_error(g), "no outputs"));
    CHECK(tc_graph_mark_output(g, out, "y") == TC_OK);
    CHECK(tc_graph_verify(g) == TC_OK);
    /* an opaque node can be printed but not built */
    tc_value_t *o;
    const tc_dim *dims = (tc_dim[]){2, 3};
    CHECK(tc_graph_add_opaque_node(g, "aten.weird_op.default", "w1", 1, &x, 1, (tc_dtype[]){TC_F32}, (int[]){2},
                                   &dims, &o) == TC_OK);
    CHECK(tc_graph_mark_output(g, o, NULL) == TC_OK);
    CHECK(tc_graph_verify(g) == TC_OK);
    tc_engine_t *e = NULL;
    char err[512];
    CHECK(tc_engine_build(g, NULL, &e, err, sizeof err) == TC_ERR_UNSUPPORTED);
    CHECK(e == NULL && strstr(err, "'w1' (aten.weird_op.default)"));
    tc_graph_free(g);
    tc_graph_free(NULL);
    tc_engine_free(NULL);
    tc_context_free(NULL);
}

static void test_print(void) {
    tc_graph_t *g;
    tc_value_t *x, *y;
    tc_dim s;
    CHECK(tc_graph_create(&g) == TC_OK);
    CHECK(tc_graph_add_symbol(g, "batch", 1, 4, 32, &s) == TC_OK);
    CHECK(tc_graph_add_input(g, "x", TC_F16, 2, (tc_dim[]){s, 5}, &x) == TC_OK);
    CHECK(tc_graph_add_node(g, "tanh", "t", 1, (tc_arg[]){T(x)}, 1, &y, NULL) == TC_OK);
    CHECK(tc_graph_mark_output(g, y, "out") == TC_OK);
    FILE *f = tmpfile();
    CHECK(f && tc_graph_print(g, TC_PRINT_TEXT, f) == TC_OK);
    char buf[4096] = {0};
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    CHECK(strstr(buf, "graph(%x: f16[batch, 5])"));
    CHECK(strstr(buf, "symbol batch in [1, 32], opt 4"));
    CHECK(strstr(buf, "%t = tanh(self=%x) : f16[batch, 5]"));
    CHECK(strstr(buf, "return %t as out"));
    fclose(f);
    f = tmpfile();
    CHECK(f && tc_graph_print(g, TC_PRINT_DOT, f) == TC_OK);
    rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    CHECK(strncmp(buf, "digraph tensorc {", 17) == 0 && strstr(buf, "v0 -> n0;") && strstr(buf, "n0 -> out0;"));
    fclose(f);
    tc_graph_free(g);
}

static void test_engine_run_and_input_checks(void) {
    tc_graph_t *g;
    tc_value_t *x, *w, *y;
    tc_dim s;
    CHECK(tc_graph_create(&g) == TC_OK);
    CHECK(tc_graph_add_symbol(g, "n", 1, 2, 4, &s) == TC_OK);
    CHECK(tc_graph_add_input(g, "x", TC_F32, 1, (tc_dim[]){s}, &x) == TC_OK);
    float c[3] = {4.0f, 9.0f, 16.0f};
    CHECK(tc_graph_add_constant(g, "c", TC_F32, 1, (int64_t[]){3}, c, TC_CONSTANT_COPY, &w) == TC_OK);
    c[0] = -1.0f; /* the graph owns a copy */
    CHECK(tc_graph_add_node(g, "sqrt", "r", 1, (tc_arg[]){T(w)}, 1, &y, NULL) == TC_OK);
    tc_value_t *ax;
    CHECK(tc_graph_add_node(g, "abs", "a", 1, (tc_arg[]){T(x)}, 1, &ax, NULL) == TC_OK);
    CHECK(tc_graph_mark_output(g, y, "r") == TC_OK);
    CHECK(tc_graph_mark_output(g, ax, "a") == TC_OK);
    CHECK(tc_graph_mark_output(g, x, "x_again") == TC_OK);
    tc_engine_t *e;
    tc_context_t *ctx;
    char err[512];
    CHECK(tc_engine_build(g, NULL, &e, err, sizeof err) == TC_OK);
    tc_graph_free(g); /* the engine keeps what it needs */
    CHECK(tc_context_create(e, &ctx) == TC_OK);
    CHECK(tc_engine_num_inputs(e) == 1 && tc_engine_num_outputs(e) == 3);
    CHECK(strcmp(tc_engine_output_name(e, 1), "a") == 0);
    float xin[5] = {-1, 2, -3, 4, -5};
    tc_tensor t = {.dtype = TC_F32, .rank = 1, .dims = {3}, .data = xin};
    CHECK(tc_context_execute(ctx) == TC_ERR_INVALID_ARGUMENT); /* input not set */
    CHECK(tc_context_set_input(ctx, 0, &t) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_OK);
    tc_tensor o;
    CHECK(tc_context_get_output(ctx, 0, &o) == TC_OK);
    CHECK(o.rank == 1 && o.dims[0] == 3 && ((float *)o.data)[0] == 2.0f && ((float *)o.data)[2] == 4.0f);
    CHECK(tc_context_get_output(ctx, 1, &o) == TC_OK);
    CHECK(o.dims[0] == 3 && ((float *)o.data)[2] == 3.0f);
    CHECK(tc_context_get_output(ctx, 2, &o) == TC_OK && ((float *)o.data)[1] == 2.0f);
    CHECK(tc_context_get_output(ctx, 3, &o) == TC_ERR_NOT_FOUND);
    /* outside the symbol's range */
    t.dims[0] = 5;
    CHECK(tc_context_set_input(ctx, 0, &t) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_ERR_SHAPE);
    CHECK(strstr(tc_context_last_error(ctx), "outside the range [1, 4]"));
    /* wrong dtype and rank */
    t.dims[0] = 2;
    t.dtype = TC_F16;
    CHECK(tc_context_set_input(ctx, 0, &t) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_ERR_DTYPE);
    CHECK(strstr(tc_context_last_error(ctx), "input 'x' must be f32, got f16"));
    t.dtype = TC_F32;
    t.rank = 2;
    CHECK(tc_context_set_input(ctx, 0, &t) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_ERR_SHAPE);
    t.rank = 1;
    t.dims[0] = 4;
    CHECK(tc_context_set_input(ctx, 0, &t) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_OK);
    CHECK(tc_context_get_output(ctx, 1, &o) == TC_OK && o.dims[0] == 4 && ((float *)o.data)[3] == 4.0f);
    /* a bound output buffer is written in place and returned as the output, with no copy */
    float bound_a[4] = {0};
    tc_tensor ba = {.dtype = TC_F32, .rank = 1, .dims = {4}, .data = bound_a};
    CHECK(tc_context_set_output(ctx, 1, &ba) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_OK);
    CHECK(tc_context_get_output(ctx, 1, &o) == TC_OK && o.data == (void *)bound_a);
    CHECK(bound_a[0] == 1.0f && bound_a[1] == 2.0f && bound_a[2] == 3.0f && bound_a[3] == 4.0f);
    ba.dims[0] = 3; /* wrong shape for the result */
    CHECK(tc_context_set_output(ctx, 1, &ba) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_ERR_SHAPE);
    CHECK(tc_context_set_output(ctx, 1, NULL) == TC_OK);
    CHECK(tc_context_execute(ctx) == TC_OK);
    tc_context_free(ctx);
    tc_engine_free(e);
}

static void test_ops_table(void) {
    int n = tc_op_count();
    CHECK(n > 0);
    CHECK(tc_op_name(n) == NULL && tc_op_name(-1) == NULL);
    for (int i = 0; i < n; i++) CHECK(tc_op_name(i) && tc_op_schema(i) && strchr(tc_op_schema(i), '('));
    CHECK(strcmp(tc_status_string(TC_ERR_SHAPE), "TC_ERR_SHAPE: shape mismatch") == 0);
    CHECK(tc_status_string((tc_status)1234) != NULL);
}

int main(void) {
    test_dtype_conversions();
    test_symbolic_dims();
    test_graph_errors();
    test_print();
    test_engine_run_and_input_checks();
    test_ops_table();
    TEST_MAIN_END();
}
