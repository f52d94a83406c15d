/* Tests of the graph passes on the CPU backend: each optimized graph computes what hand-worked
 * loops (or the unoptimized graph of a real model) compute, with the node counts each pass
 * promises, and bad input gives a status and a message. */
#define _POSIX_C_SOURCE 200809L
#include "tensorc.h"
#include "core/dtype.h"
#include "passes/passes.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }
static tc_arg I(int64_t i) { return (tc_arg){.kind = TC_ARG_INT, .u.i = i}; }
static tc_arg F(double f) { return (tc_arg){.kind = TC_ARG_FLOAT, .u.f = f}; }
static tc_arg B(bool b) { return (tc_arg){.kind = TC_ARG_BOOL, .u.b = b}; }
static tc_arg IS(const int64_t *v, int n) { return (tc_arg){.kind = TC_ARG_INTS, .count = n, .u.ints = v}; }

static tc_value_t *node1(tc_graph_t *g, const char *op, const char *name, int n, const tc_arg *a) {
    tc_value_t *out = NULL;
    tc_status st = tc_graph_add_node(g, op, name, n, a, 1, &out, NULL);
    if (st != TC_OK) fprintf(stderr, "add %s: %s\n", op, tc_graph_last_error(g));
    return out;
}

static int count_op(const tc_graph *g, const char *op_name) {
    int n = 0;
    for (int i = 0; i < g->nodes.n; i++) n += strcmp(((tc_node *)g->nodes.items[i])->op_name, op_name) == 0;
    return n;
}

static int count_constants(const tc_graph *g) {
    int n = 0;
    for (int i = 0; i < g->values.n; i++) n += ((tc_value *)g->values.items[i])->kind == TC_VALUE_CONSTANT;
    return n;
}

/* Runs g on the CPU with the given inputs; copies output `which` (as f32) into out[cap]. */
static int run_f32(tc_graph_t *g, int n_in, const tc_tensor *in, int which, float *out, int64_t cap) {
    tc_engine_t *e = NULL;
    tc_context_t *c = NULL;
    char err[512];
    int64_t n = -1;
    if (tc_engine_build(g, NULL, &e, err, sizeof err) != TC_OK) {
        fprintf(stderr, "build: %s\n", err);
        return -1;
    }
    if (tc_context_create(e, &c) == TC_OK) {
        bool ok = true;
        for (int i = 0; i < n_in; i++) ok = ok && tc_context_set_input(c, i, &in[i]) == TC_OK;
        tc_tensor o;
        if (ok && tc_context_execute(c) == TC_OK && tc_context_get_output(c, which, &o) == TC_OK) {
            n = 1;
            for (int d = 0; d < o.rank; d++) n *= o.dims[d];
            if (n <= cap) tc_to_f32(o.data, o.dtype, out, n);
            else n = -1;
        } else {
            fprintf(stderr, "run: %s\n", tc_context_last_error(c));
        }
    }
    tc_context_free(c);
    tc_engine_free(e);
    return (int)n;
}

static tc_graph_t *optimize(tc_graph_t *g, const tc_pass_options *o) {
    tc_error err = {0};
    if (tc_passes_run(&g, o, &err) != TC_OK) {
        fprintf(stderr, "passes: %s\n", err.msg);
        tc_graph_free(g);
        return NULL;
    }
    return g;
}

static tc_pass_options only(bool dce, bool fold, bool bn) {
    tc_pass_options o;
    tc_pass_options_init(&o);
    o.dce = dce, o.fold_constants = fold, o.fold_batchnorm = bn;
    return o;
}

static void test_dce_removes_unused_nodes_and_constants(void) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t d[1] = {4};
    float w[4] = {1, 2, 3, 4};
    tc_value_t *x, *k;
    tc_graph_add_input(g, "x", TC_F32, 1, d, &x);
    tc_graph_add_constant(g, "unused_w", TC_F32, 1, d, w, TC_CONSTANT_COPY, &k);
    tc_value_t *dead = node1(g, "relu", "dead_relu", 1, (tc_arg[]){T(x)});
    node1(g, "add.Tensor", "dead_add", 2, (tc_arg[]){T(dead), T(k)}); /* dead too, reads a dead value */
    tc_value_t *y = node1(g, "neg", "neg", 1, (tc_arg[]){T(x)});
    tc_graph_mark_output(g, y, "y");
    CHECK(tc_graph_num_nodes(g) == 3 && count_constants(g) == 1);
    tc_pass_options o = only(true, false, false);
    tc_graph_t *og = optimize(g, &o);
    CHECK(og != NULL);
    if (!og) return;
    CHECK_MSG(tc_graph_num_nodes(og) == 1, "%d nodes", tc_graph_num_nodes(og));
    CHECK(count_op(og, "neg") == 1 && count_constants(og) == 0);
    CHECK(tc_graph_num_inputs(og) == 1 && strcmp(tc_value_name(tc_graph_input(og, 0)), "x") == 0);
    CHECK(strcmp(og->output_names.items[0], "y") == 0);
    float xin[4] = {1, -2, 3, -4}, out[4];
    tc_tensor in = {TC_F32, 1, {4}, xin};
    CHECK(run_f32(og, 1, &in, 0, out, 4) == 4);
    CHECK(out[0] == -1 && out[1] == 2 && out[2] == -3 && out[3] == 4);
    tc_graph_free(og);
}

static void test_fold_constants_folds_weight_only_chains(void) {
    /* y = x @ t(W) + 2 * b: t(W) and 2 * b depend only on weights */
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t xd[2] = {2, 3}, wd[2] = {4, 3}, bd[1] = {4};
    float W[12], b[4] = {0.5f, -1, 2, 0};
    for (int i = 0; i < 12; i++) W[i] = (float)(i % 5) - 1.5f;
    tc_value_t *x, *cw, *cb;
    tc_graph_add_input(g, "x", TC_F32, 2, xd, &x);
    tc_graph_add_constant(g, "W", TC_F32, 2, wd, W, TC_CONSTANT_COPY, &cw);
    tc_graph_add_constant(g, "b", TC_F32, 1, bd, b, TC_CONSTANT_COPY, &cb);
    tc_value_t *wt = node1(g, "t", "wt", 1, (tc_arg[]){T(cw)});
    tc_value_t *b2 = node1(g, "mul.Scalar", "b2", 2, (tc_arg[]){T(cb), F(2.0)});
    tc_value_t *mm = node1(g, "mm", "mm", 2, (tc_arg[]){T(x), T(wt)});
    tc_value_t *y = node1(g, "add.Tensor", "y", 2, (tc_arg[]){T(mm), T(b2)});
    tc_graph_mark_output(g, y, "y");
    tc_pass_options o = only(true, true, false);
    tc_graph_t *og = optimize(g, &o);
    CHECK(og != NULL);
    if (!og) return;
    CHECK_MSG(tc_graph_num_nodes(og) == 2, "%d nodes", tc_graph_num_nodes(og));
    CHECK(count_op(og, "t") == 0 && count_op(og, "mul.Scalar") == 0 && count_op(og, "mm") == 1);
    CHECK_MSG(count_constants(og) == 2, "%d constants (the original W and b must be gone)", count_constants(og));
    float xin[6] = {1, 2, 3, -1, 0.5f, 0}, out[8];
    tc_tensor in = {TC_F32, 2, {2, 3}, xin};
    CHECK(run_f32(og, 1, &in, 0, out, 8) == 8);
    int bad = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            float want = 2 * b[j];
            for (int k = 0; k < 3; k++) want += xin[i * 3 + k] * W[j * 3 + k];
            bad += fabsf(out[i * 4 + j] - want) > 1e-5f * (1 + fabsf(want));
        }
    CHECK_MSG(bad == 0, "%d wrong values", bad);
    tc_graph_free(og);
}

static void test_fold_constants_leaves_big_expansions(void) {
    /* expand of a [1] constant to [1024, 1024] (4 MiB out of 4 bytes) stays a node */
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t one[1] = {1}, big[2] = {1024, 1024};
    float v = 3;
    tc_value_t *c, *x;
    tc_graph_add_input(g, "x", TC_F32, 2, big, &x);
    tc_graph_add_constant(g, "c", TC_F32, 1, one, &v, TC_CONSTANT_COPY, &c);
    tc_value_t *e = node1(g, "expand", "e", 2, (tc_arg[]){T(c), IS(big, 2)});
    tc_value_t *y = node1(g, "add.Tensor", "y", 2, (tc_arg[]){T(x), T(e)});
    tc_graph_mark_output(g, y, NULL);
    tc_pass_options o = only(true, true, false);
    tc_graph_t *og = optimize(g, &o);
    CHECK(og && count_op(og, "expand") == 1);
    tc_graph_free(og);
}

/* conv2d (stride 1, padding 1) then batch norm, by hand */
static void conv_bn_ref(const float *x, const float *w, const float *b, const float *gamma, const float *beta,
                        const float *mean, const float *var, double eps, int cin, int cout, int h, int wd,
                        float *out) {
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < wd; j++) {
                double acc = b[o];
                for (int c = 0; c < cin; c++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int ii = i + ki - 1, jj = j + kj - 1;
                            if (ii < 0 || jj < 0 || ii >= h || jj >= wd) continue;
                            acc += (double)x[(c * h + ii) * wd + jj] * w[((o * cin + c) * 3 + ki) * 3 + kj];
                        }
                double yv = (acc - mean[o]) / sqrt(var[o] + eps) * gamma[o] + beta[o];
                out[(o * h + i) * wd + j] = (float)(yv > 0 ? yv : 0); /* relu */
            }
}

static tc_graph_t *conv_bn_graph(const float *w, const float *b, const float *gamma, const float *beta,
                                 const float *mean, const float *var, double eps, bool conv_out_also_output) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t xd[4] = {1, 2, 5, 4}, wd[4] = {3, 2, 3, 3}, cd[1] = {3}, one[2] = {1, 1}, zero[2] = {0, 0};
    tc_value_t *x, *cw, *cb, *cg, *cbeta, *cm, *cv;
    tc_graph_add_input(g, "x", TC_F32, 4, xd, &x);
    tc_graph_add_constant(g, "w", TC_F32, 4, wd, w, TC_CONSTANT_COPY, &cw);
    tc_graph_add_constant(g, "b", TC_F32, 1, cd, b, TC_CONSTANT_COPY, &cb);
    tc_graph_add_constant(g, "gamma", TC_F32, 1, cd, gamma, TC_CONSTANT_COPY, &cg);
    tc_graph_add_constant(g, "beta", TC_F32, 1, cd, beta, TC_CONSTANT_COPY, &cbeta);
    tc_graph_add_constant(g, "mean", TC_F32, 1, cd, mean, TC_CONSTANT_COPY, &cm);
    tc_graph_add_constant(g, "var", TC_F32, 1, cd, var, TC_CONSTANT_COPY, &cv);
    tc_value_t *c = node1(g, "convolution", "conv", 9,
                          (tc_arg[]){T(x), T(cw), T(cb), IS(one, 2), IS(one, 2), IS(one, 2), B(false), IS(zero, 2), I(1)});
    tc_value_t *bn[3];
    tc_graph_add_node(g, "_native_batch_norm_legit_no_training", "bn", 7,
                      (tc_arg[]){T(c), T(cg), T(cbeta), T(cm), T(cv), F(0.1), F(eps)}, 3, bn, NULL);
    tc_value_t *y = node1(g, "relu", "relu", 1, (tc_arg[]){T(bn[0])});
    tc_graph_mark_output(g, y, "y");
    if (conv_out_also_output) tc_graph_mark_output(g, c, "conv");
    return g;
}

static void test_fold_batchnorm_into_conv(void) {
    float w[54], b[3] = {0.1f, -0.2f, 0.3f}, gamma[3] = {1.5f, 0.5f, -1}, beta[3] = {0.2f, 0, -0.4f},
          mean[3] = {0.3f, -0.1f, 0.05f}, var[3] = {0.5f, 2, 1.2f}, x[40], ref[60], out[60];
    for (int i = 0; i < 54; i++) w[i] = (float)((i * 7) % 11) / 10 - 0.5f;
    for (int i = 0; i < 40; i++) x[i] = (float)((i * 5) % 13) / 6 - 1;
    double eps = 1e-5;
    conv_bn_ref(x, w, b, gamma, beta, mean, var, eps, 2, 3, 5, 4, ref);
    tc_tensor in = {TC_F32, 4, {1, 2, 5, 4}, x};

    tc_pass_options o = only(true, true, true);
    tc_graph_t *og = optimize(conv_bn_graph(w, b, gamma, beta, mean, var, eps, false), &o);
    CHECK(og != NULL);
    if (!og) return;
    CHECK(count_op(og, "_native_batch_norm_legit_no_training") == 0 && count_op(og, "convolution") == 1);
    CHECK_MSG(count_constants(og) == 2, "%d constants: only the folded weight and bias remain", count_constants(og));
    CHECK(run_f32(og, 1, &in, 0, out, 60) == 60);
    double worst = 0;
    for (int i = 0; i < 60; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / (1 + fabs(ref[i])));
    CHECK_MSG(worst < 1e-5, "worst relative error %g", worst);
    tc_graph_free(og);

    /* the conv output is also a graph output: the batch norm must stay */
    og = optimize(conv_bn_graph(w, b, gamma, beta, mean, var, eps, true), &o);
    CHECK(og && count_op(og, "_native_batch_norm_legit_no_training") == 1);
    if (og) {
        CHECK(run_f32(og, 1, &in, 0, out, 60) == 60);
        worst = 0;
        for (int i = 0; i < 60; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / (1 + fabs(ref[i])));
        CHECK_MSG(worst < 1e-5, "worst relative error %g", worst);
    }
    tc_graph_free(og);
}

static void test_precision_keeps_io_types_and_sensitive_ops_f32(void) {
    /* softmax(x @ W) * 3 */
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t xd[2] = {2, 8}, wd[2] = {8, 5};
    float W[40], xin[16];
    for (int i = 0; i < 40; i++) W[i] = (float)((i * 3) % 7) / 7 - 0.4f;
    for (int i = 0; i < 16; i++) xin[i] = (float)((i * 5) % 9) / 4 - 1;
    tc_value_t *x, *cw;
    tc_graph_add_input(g, "x", TC_F32, 2, xd, &x);
    tc_graph_add_constant(g, "W", TC_F32, 2, wd, W, TC_CONSTANT_COPY, &cw);
    tc_value_t *mm = node1(g, "mm", "mm", 2, (tc_arg[]){T(x), T(cw)});
    tc_value_t *sm = node1(g, "_softmax", "sm", 3, (tc_arg[]){T(mm), I(-1), B(false)});
    tc_value_t *y = node1(g, "mul.Scalar", "y", 2, (tc_arg[]){T(sm), F(3.0)});
    tc_graph_mark_output(g, y, "y");
    float ref[10];
    for (int i = 0; i < 2; i++) {
        double l[5], m = -1e30, s = 0;
        for (int j = 0; j < 5; j++) {
            l[j] = 0;
            for (int k = 0; k < 8; k++) l[j] += (double)xin[i * 8 + k] * W[k * 5 + j];
            m = fmax(m, l[j]);
        }
        for (int j = 0; j < 5; j++) s += exp(l[j] - m);
        for (int j = 0; j < 5; j++) ref[i * 5 + j] = (float)(3 * exp(l[j] - m) / s);
    }
    for (int lowi = 0; lowi < 2; lowi++) {
        tc_dtype low = lowi ? TC_BF16 : TC_F16;
        tc_pass_options o;
        tc_pass_options_init(&o);
        o.precision = low;
        tc_graph_retain(g);
        tc_graph_t *og = optimize(g, &o);
        CHECK(og != NULL);
        if (!og) continue;
        CHECK(tc_value_dtype(tc_graph_input(og, 0)) == TC_F32 && tc_value_dtype(tc_graph_output(og, 0)) == TC_F32);
        const tc_node *mmn = NULL, *smn = NULL;
        for (int i = 0; i < og->nodes.n; i++) {
            const tc_node *n = og->nodes.items[i];
            if (n->op == TC_OP_MM) mmn = n;
            if (n->op == TC_OP_SOFTMAX) smn = n;
        }
        CHECK(mmn && mmn->outputs[0]->dtype == low && mmn->inputs[1]->kind == TC_VALUE_CONSTANT &&
              mmn->inputs[1]->dtype == low);
        /* softmax reads and writes the low type (computed in f32 inside): no casts around it */
        CHECK(smn && smn->inputs[0]->dtype == low && smn->outputs[0]->dtype == low);
        float out[10];
        tc_tensor in = {TC_F32, 2, {2, 8}, xin};
        CHECK(run_f32(og, 1, &in, 0, out, 10) == 10);
        double worst = 0;
        for (int i = 0; i < 10; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
        CHECK_MSG(worst < (low == TC_F16 ? 1e-2 : 4e-2), "%s: worst abs error %g", tc_dtype_name(low), worst);
        tc_graph_free(og);
    }
    tc_graph_free(g);
}

static void test_rewrite_keeps_symbolic_dims(void) {
    tc_graph_t *g;
    tc_graph_create(&g);
    tc_dim s0;
    tc_graph_add_symbol(g, "batch", 1, 4, 16, &s0);
    tc_dim xd[2] = {s0, 3}, flat;
    tc_graph_sym_expr(g, TC_SYM_MUL, s0, 3, &flat);
    tc_value_t *x;
    tc_graph_add_input(g, "x", TC_F32, 2, xd, &x);
    tc_value_t *v = node1(g, "view", "flat", 2, (tc_arg[]){T(x), IS(&flat, 1)});
    node1(g, "relu", "dead", 1, (tc_arg[]){T(v)});
    tc_value_t *y = node1(g, "mul.Scalar", "y", 2, (tc_arg[]){T(v), F(2.0)});
    tc_graph_mark_output(g, y, NULL);
    tc_pass_options o;
    tc_pass_options_init(&o);
    o.precision = TC_F16;
    tc_graph_t *og = optimize(g, &o);
    CHECK(og != NULL);
    if (!og) return;
    char buf[64];
    const tc_value *out = tc_graph_output(og, 0);
    CHECK(out->rank == 1 && strcmp(tc_graph_dim_string(og, out->dims[0], buf, sizeof buf), "3*batch") == 0);
    CHECK(count_op(og, "relu") == 0);
    for (int n = 1; n <= 5; n += 4) {
        float xin[15], res[15];
        for (int i = 0; i < 3 * n; i++) xin[i] = (float)i - 4;
        tc_tensor in = {TC_F32, 2, {n, 3}, xin};
        CHECK(run_f32(og, 1, &in, 0, res, 15) == 3 * n);
        int bad = 0;
        for (int i = 0; i < 3 * n; i++) bad += res[i] != 2 * xin[i];
        CHECK_MSG(bad == 0, "batch %d: %d wrong", n, bad);
    }
    tc_graph_free(og);
}

static void test_opaque_nodes_survive(void) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t d[1] = {4};
    tc_value_t *x, *o;
    tc_graph_add_input(g, "x", TC_F32, 1, d, &x);
    tc_value_t *r = node1(g, "relu", "r", 1, (tc_arg[]){T(x)});
    tc_dtype dt = TC_F32;
    int rk = 1;
    const tc_dim *dims[1] = {d};
    CHECK(tc_graph_add_opaque_node(g, "my.custom_op", "custom", 1, &r, 1, &dt, &rk, dims, &o) == TC_OK);
    tc_graph_mark_output(g, o, NULL);
    tc_pass_options po;
    tc_pass_options_init(&po);
    po.precision = TC_F16;
    tc_graph_t *og = optimize(g, &po);
    CHECK(og && count_op(og, "my.custom_op") == 1 && count_op(og, "relu") == 1);
    /* the opaque node still gets its input in the model's dtype */
    for (int i = 0; og && i < og->nodes.n; i++) {
        const tc_node *n = og->nodes.items[i];
        if (n->op < 0) CHECK(n->inputs[0]->dtype == TC_F32);
    }
    tc_graph_free(og);
}

static void test_optimize_api_errors(void) {
    char err[256];
    CHECK(tc_graph_optimize(NULL, NULL, err, sizeof err) == TC_ERR_INVALID_ARGUMENT);
    tc_graph_t *g = NULL;
    CHECK(tc_graph_optimize(&g, NULL, err, sizeof err) == TC_ERR_INVALID_ARGUMENT && strstr(err, "NULL"));
    tc_graph_create(&g);
    int64_t d[1] = {2};
    tc_value_t *x;
    tc_graph_add_input(g, "x", TC_F32, 1, d, &x);
    node1(g, "relu", "r", 1, (tc_arg[]){T(x)});
    tc_graph_t *before = g;
    CHECK(tc_graph_optimize(&g, NULL, err, sizeof err) == TC_ERR_INVALID_GRAPH); /* no outputs */
    CHECK(g == before && strstr(err, "no outputs"));
    tc_error e = {0};
    tc_pass_options o;
    tc_pass_options_init(&o);
    o.precision = TC_I8;
    CHECK(tc_passes_run(&g, &o, &e) == TC_ERR_INVALID_ARGUMENT && strstr(e.msg, "precision") && g == before);
    tc_graph_free(g);
}

/* resnet18 from tests/python/export_models.py: BN folding removes every batch norm (each follows a
 * conv), and the optimized graph computes what the original computes. */
static void test_resnet18_model(void) {
    const char *dir = getenv("TENSORC_MODEL_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/resnet18/model.pt2", dir && *dir ? dir : "build/models");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP resnet18 model test: %s not found (run python tests/python/export_models.py resnet18)\n", path);
        return;
    }
    fclose(f);
    char err[1024];
    tc_graph_t *g = NULL;
    CHECK_MSG(tc_import_pt2(path, &g, err, sizeof err) == TC_OK, "%s", err);
    if (!g) return;
    int bn = count_op(g, "_native_batch_norm_legit_no_training"), conv = count_op(g, "convolution");
    CHECK(bn == 20 && conv == 20);
    tc_graph_retain(g);
    tc_graph_t *og = g;
    tc_optimize_options oo;
    tc_optimize_options_init(&oo);
    CHECK_MSG(tc_graph_optimize(&og, &oo, err, sizeof err) == TC_OK, "%s", err);
    CHECK(count_op(og, "_native_batch_norm_legit_no_training") == 0 && count_op(og, "convolution") == conv);
    CHECK(tc_graph_num_nodes(og) == tc_graph_num_nodes(g) - bn);
    int64_t n = 3 * 64 * 64;
    float *x = malloc(sizeof *x * (size_t)n), a[10], b[10];
    for (int64_t i = 0; i < n; i++) x[i] = (float)sin((double)i * 0.37);
    tc_tensor in = {TC_F32, 4, {1, 3, 64, 64}, x};
    CHECK(run_f32(g, 1, &in, 0, a, 10) == 10 && run_f32(og, 1, &in, 0, b, 10) == 10);
    double scale = 0, diff = 0;
    for (int i = 0; i < 10; i++) scale = fmax(scale, fabs(a[i])), diff = fmax(diff, fabs(a[i] - b[i]));
    CHECK_MSG(scale > 0 && diff <= 1e-5 * scale, "max diff %g, scale %g", diff, scale);
    free(x);
    tc_graph_free(og);
    tc_graph_free(g);
}

/* q, k, v [1, 2, 3, 4] inputs; attention with mask m (NULL: none) as the output. */
static tc_graph_t *sdpa_graph(tc_value_t *(*make_mask)(tc_graph_t *g)) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t d[4] = {1, 2, 3, 4};
    tc_value_t *q, *k, *v;
    tc_graph_add_input(g, "q", TC_F32, 4, d, &q);
    tc_graph_add_input(g, "k", TC_F32, 4, d, &k);
    tc_graph_add_input(g, "v", TC_F32, 4, d, &v);
    tc_value_t *m = make_mask ? make_mask(g) : NULL;
    tc_arg mask = m ? T(m) : (tc_arg){.kind = TC_ARG_NONE};
    tc_graph_mark_output(g, node1(g, "scaled_dot_product_attention", "attn", 4, (tc_arg[]){T(q), T(k), T(v), mask}), "y");
    return g;
}

/* arange(0, 3) >= 0, made from shapes alone as BERT makes it: [3] all true, broadcast over rows */
static tc_value_t *mask_from_arange(tc_graph_t *g) {
    tc_value_t *r = node1(g, "arange.start_step", "arange", 2, (tc_arg[]){I(0), I(3)});
    return node1(g, "ge.Scalar", "ge", 2, (tc_arg[]){T(r), I(0)});
}

/* a [3] all-true constant broadcast to [1, 2, 3, 3] through unsqueeze and expand, as a large batch
 * keeps it (too large to fold) */
static tc_value_t *mask_expanded(tc_graph_t *g) {
    static const bool b[3] = {true, true, true};
    static const int64_t to[4] = {1, 2, 3, 3};
    int64_t d[1] = {3};
    tc_value_t *c;
    tc_graph_add_constant(g, "ones", TC_BOOL, 1, d, b, TC_CONSTANT_COPY, &c);
    tc_value_t *u = node1(g, "unsqueeze", "unsq", 2, (tc_arg[]){T(c), I(0)});
    return node1(g, "expand", "expand", 2, (tc_arg[]){T(u), IS(to, 4)});
}

static tc_value_t *mask_zeros(tc_graph_t *g) {
    static const float z[9] = {0, -0.0f, 0, 0, 0, 0, 0, 0, 0};
    int64_t d[2] = {3, 3};
    tc_value_t *c;
    tc_graph_add_constant(g, "zeros", TC_F32, 2, d, z, TC_CONSTANT_COPY, &c);
    return c;
}

static tc_value_t *mask_one_false(tc_graph_t *g) {
    static const bool b[9] = {true, true, true, true, false, true, true, true, true};
    int64_t d[2] = {3, 3};
    tc_value_t *c;
    tc_graph_add_constant(g, "mask", TC_BOOL, 2, d, b, TC_CONSTANT_COPY, &c);
    return c;
}

static const tc_node *find_op(const tc_graph *g, const char *op_name) {
    for (int i = 0; i < g->nodes.n; i++) {
        const tc_node *n = g->nodes.items[i];
        if (strcmp(n->op_name, op_name) == 0) return n;
    }
    return NULL;
}

static void test_attention_masks_that_mask_nothing_are_dropped(void) {
    float qkv[3][24], want[24], got[24];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 24; i++) qkv[t][i] = (float)(((i + 5 * t) * 7) % 13) / 6 - 1;
    tc_tensor in[3];
    for (int t = 0; t < 3; t++) in[t] = (tc_tensor){TC_F32, 4, {1, 2, 3, 4}, qkv[t]};
    tc_graph_t *plain = sdpa_graph(NULL);
    CHECK(run_f32(plain, 3, in, 0, want, 24) == 24);
    tc_graph_free(plain);

    tc_value_t *(*const makers[4])(tc_graph_t *) = {mask_from_arange, mask_zeros, mask_one_false, mask_expanded};
    for (int m = 0; m < 4; m++) {
        tc_pass_options o;
        tc_pass_options_init(&o);
        o.fold_constants = m != 3; /* the expanded mask stays a node */
        tc_graph_t *og = optimize(sdpa_graph(makers[m]), &o);
        CHECK(og != NULL);
        if (!og) continue;
        const tc_node *attn = find_op(og, "scaled_dot_product_attention");
        CHECK(attn != NULL);
        bool kept = attn && tc_node_tensor(attn, 3) != NULL;
        CHECK_MSG(kept == (m == 2), "mask %d: kept %d", m, (int)kept);
        CHECK_MSG(m == 2 || count_constants(og) == 0, "mask %d: %d constants left", m, count_constants(og));
        CHECK(run_f32(og, 3, in, 0, got, 24) == 24);
        double diff = 0;
        for (int i = 0; i < 24; i++) diff = fmax(diff, fabs(got[i] - want[i]));
        /* the mask that hides one key must change that row; the others must not change anything */
        if (m == 2) CHECK_MSG(diff > 1e-3, "a real mask changed nothing (%g)", diff);
        else CHECK_MSG(diff == 0, "mask %d: max diff %g from no mask", m, diff);
        tc_graph_free(og);
    }
}

/* conv(x [N, 3, 8, 12], w [5, 3, 4, 4], stride s) -> view [N, 5, P] -> permute [N, P, 5] (ViT's
 * stem at small size), optionally also read by a relu; batch symbolic when sym. */
static tc_graph_t *patch_graph(const float *w, const float *b, int64_t stride, bool relu_reader, bool sym) {
    tc_graph_t *g;
    tc_graph_create(&g);
    tc_dim n = 2;
    if (sym) tc_graph_add_symbol(g, "n", 1, 2, 8, &n);
    int64_t xd[4] = {n, 3, 8, 12}, wd[4] = {5, 3, 4, 4}, cd[1] = {5}, st[2] = {stride, stride}, zero[2] = {0, 0},
            one[2] = {1, 1};
    tc_value_t *x, *cw, *cb;
    tc_graph_add_input(g, "x", TC_F32, 4, xd, &x);
    tc_graph_add_constant(g, "w", TC_F32, 4, wd, w, TC_CONSTANT_COPY, &cw);
    tc_graph_add_constant(g, "b", TC_F32, 1, cd, b, TC_CONSTANT_COPY, &cb);
    tc_value_t *c = node1(g, "convolution", "stem", 9,
                          (tc_arg[]){T(x), T(cw), T(cb), IS(st, 2), IS(zero, 2), IS(one, 2), B(false), IS(zero, 2), I(1)});
    int64_t oh = (8 - 4) / stride + 1, ow = (12 - 4) / stride + 1, vd[3] = {n, 5, oh * ow}, perm[3] = {0, 2, 1};
    tc_value_t *v = node1(g, "view", "flat", 2, (tc_arg[]){T(c), IS(vd, 3)});
    tc_graph_mark_output(g, node1(g, "permute", "tokens", 2, (tc_arg[]){T(v), IS(perm, 3)}), "y");
    if (relu_reader) tc_graph_mark_output(g, node1(g, "relu", "act", 1, (tc_arg[]){T(c)}), "r");
    return g;
}

static void test_patch_conv_becomes_a_matrix_product(void) {
    float w[240], b[5] = {0.5f, -0.25f, 0, 1, -1}, x[576], ref[120], out[120];
    for (int i = 0; i < 240; i++) w[i] = (float)((i * 7) % 13) / 8 - 0.7f;
    for (int i = 0; i < 576; i++) x[i] = (float)((i * 5) % 17) / 9 - 0.9f;
    /* by hand: y[n, p, k] = b[k] + sum_{c, i, j} x[n, c, 4 oh + i, 4 ow + j] w[k, c, i, j], p = oh * 3 + ow */
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 6; p++)
            for (int k = 0; k < 5; k++) {
                double s = b[k];
                int oh = p / 3, ow = p % 3;
                for (int c = 0; c < 3; c++)
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            s += (double)x[((n * 3 + c) * 8 + 4 * oh + i) * 12 + 4 * ow + j] * w[((k * 3 + c) * 4 + i) * 4 + j];
                ref[(n * 6 + p) * 5 + k] = (float)s;
            }
    tc_tensor in = {TC_F32, 4, {2, 3, 8, 12}, x};
    tc_pass_options o;
    tc_pass_options_init(&o);
    for (int sym = 0; sym < 2; sym++) {
        tc_graph_t *og = optimize(patch_graph(w, b, 4, false, sym), &o);
        CHECK(og != NULL);
        if (!og) continue;
        CHECK_MSG(count_op(og, "convolution") == 0 && count_op(og, "linear") == 1, "sym %d: the stem is a product", sym);
        CHECK(run_f32(og, 1, &in, 0, out, 120) == 60);
        double worst = 0;
        for (int i = 0; i < 60; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / (1 + fabs(ref[i])));
        CHECK_MSG(worst < 1e-5, "sym %d: worst relative error %g", sym, worst);
        tc_graph_free(og);
    }
    /* kept: another reader than views, and a stride that is not the kernel */
    tc_graph_t *og = optimize(patch_graph(w, b, 4, true, false), &o);
    CHECK(og && count_op(og, "convolution") == 1 && count_op(og, "linear") == 0);
    if (og) {
        CHECK(run_f32(og, 1, &in, 0, out, 120) == 60);
        double worst = 0;
        for (int i = 0; i < 60; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / (1 + fabs(ref[i])));
        CHECK_MSG(worst < 1e-5, "kept conv: worst relative error %g", worst);
    }
    tc_graph_free(og);
    og = optimize(patch_graph(w, b, 2, false, false), &o);
    CHECK(og && count_op(og, "convolution") == 1);
    tc_graph_free(og);
    o.patch_conv = false;
    og = optimize(patch_graph(w, b, 4, false, false), &o);
    CHECK(og && count_op(og, "convolution") == 1);
    tc_graph_free(og);
}

/* Batch-first attention's projections at small size (B 2, S 3, E 4, two heads of 2):
 *   qkv = view(linear(permute(x, [1, 0, 2]), Wi, bi), [S, B, 3, E]), then a reader (clone or relu)
 *   y   = permute(view(linear(view(permute(o, [2, 0, 1, 3]), [S*B, E]), Wo, bo), [S, B, E]), [1, 0, 2]) + x */
static tc_graph_t *mha_proj_graph(const float *wi, const float *bi, const float *wo, const float *bo, bool relu,
                                  bool sym) {
    tc_graph_t *g;
    tc_graph_create(&g);
    tc_dim nb = 2;
    if (sym) tc_graph_add_symbol(g, "b", 1, 2, 8, &nb);
    int64_t xd[3] = {nb, 3, 4}, od[4] = {nb, 2, 3, 2}, wid[2] = {12, 4}, bid[1] = {12}, wod[2] = {4, 4}, bod[1] = {4};
    tc_value_t *x, *o, *Wi, *Bi, *Wo, *Bo;
    tc_graph_add_input(g, "x", TC_F32, 3, xd, &x);
    tc_graph_add_input(g, "o", TC_F32, 4, od, &o);
    tc_graph_add_constant(g, "wi", TC_F32, 2, wid, wi, TC_CONSTANT_COPY, &Wi);
    tc_graph_add_constant(g, "bi", TC_F32, 1, bid, bi, TC_CONSTANT_COPY, &Bi);
    tc_graph_add_constant(g, "wo", TC_F32, 2, wod, wo, TC_CONSTANT_COPY, &Wo);
    tc_graph_add_constant(g, "bo", TC_F32, 1, bod, bo, TC_CONSTANT_COPY, &Bo);
    int64_t sbe[3] = {1, 0, 2}, split[4] = {3, nb, 3, 4}, p6[4] = {2, 0, 1, 3}, rows[2] = {3 * 2, 4},
            back[3] = {3, nb, 4};
    if (sym) rows[0] = -1; /* S*B is not a single symbol: let view infer it */
    tc_value_t *p = node1(g, "permute", "permute_1", 2, (tc_arg[]){T(x), IS(sbe, 3)});
    tc_value_t *l = node1(g, "linear", "in_proj", 3, (tc_arg[]){T(p), T(Wi), T(Bi)});
    tc_value_t *v = node1(g, "view", "split", 2, (tc_arg[]){T(l), IS(split, 4)});
    tc_graph_mark_output(g, node1(g, relu ? "relu" : "clone", "qkv", 1, (tc_arg[]){T(relu ? l : v)}), "qkv");
    tc_value_t *a = node1(g, "permute", "permute_6", 2, (tc_arg[]){T(o), IS(p6, 4)});
    tc_value_t *f = node1(g, "view", "view_8", 2, (tc_arg[]){T(a), IS(rows, 2)});
    tc_value_t *m = node1(g, "linear", "out_proj", 3, (tc_arg[]){T(f), T(Wo), T(Bo)});
    tc_value_t *u = node1(g, "view", "view_9", 2, (tc_arg[]){T(m), IS(back, 3)});
    tc_value_t *t = node1(g, "permute", "permute_7", 2, (tc_arg[]){T(u), IS(sbe, 3)});
    tc_graph_mark_output(g, node1(g, "add.Tensor", "add_1", 2, (tc_arg[]){T(t), T(x)}), "y");
    return g;
}

static void test_permute_linear_moves_row_permutations(void) {
    float wi[48], bi[12], wo[16], bo[4], x[24], o[24];
    for (int i = 0; i < 48; i++) wi[i] = (float)((i * 7) % 11) / 8 - 0.6f;
    for (int i = 0; i < 12; i++) bi[i] = (float)(i % 5) / 4 - 0.5f;
    for (int i = 0; i < 16; i++) wo[i] = (float)((i * 5) % 9) / 6 - 0.7f;
    for (int i = 0; i < 4; i++) bo[i] = (float)i / 3 - 0.5f;
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 3) % 13) / 7 - 0.8f, o[i] = (float)((i * 11) % 17) / 9 - 0.9f;
    /* by hand: qkv[s, b, j] = bi[j] + sum_e x[b, s, e] wi[j, e];
     * y[b, s, k] = x[b, s, k] + bo[k] + sum_{h, d} o[b, h, s, d] wo[k, h*2 + d] */
    float want_qkv[72], want_y[24], got[72];
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 12; j++) {
                double acc = bi[j];
                for (int e = 0; e < 4; e++) acc += (double)x[(b * 3 + s) * 4 + e] * wi[j * 4 + e];
                want_qkv[(s * 2 + b) * 12 + j] = (float)acc;
            }
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < 4; k++) {
                double acc = (double)x[(b * 3 + s) * 4 + k] + bo[k];
                for (int h = 0; h < 2; h++)
                    for (int d = 0; d < 2; d++) acc += (double)o[((b * 2 + h) * 3 + s) * 2 + d] * wo[k * 4 + h * 2 + d];
                want_y[(b * 3 + s) * 4 + k] = (float)acc;
            }
    tc_tensor in[2] = {{TC_F32, 3, {2, 3, 4}, x}, {TC_F32, 4, {2, 2, 3, 2}, o}};
    for (int variant = 0; variant < 4; variant++) {
        bool on = variant != 3, relu = variant == 2, sym = variant == 1;
        tc_pass_options opt;
        tc_pass_options_init(&opt);
        opt.permute_linear = on;
        tc_graph_t *og = optimize(mha_proj_graph(wi, bi, wo, bo, relu, sym), &opt);
        CHECK_MSG(og != NULL, "variant %d", variant);
        if (!og) continue;
        /* on: the output side's two permutes are one, and the input side's permute comes after the
         * in-projection (not with a relu reading the product, which is not a view) */
        int permutes = count_op(og, "permute");
        CHECK_MSG(permutes == (on ? 2 : 3), "variant %d: %d permutes", variant, permutes);
        const tc_node *first = NULL;
        for (int i = 0; i < og->nodes.n && !first; i++)
            if (strcmp(((tc_node *)og->nodes.items[i])->op_name, "linear") == 0) first = og->nodes.items[i];
        bool moved = first && first->inputs[0]->kind == TC_VALUE_INPUT;
        CHECK_MSG(moved == (on && !relu), "variant %d: the in-projection reads the input: %d", variant, (int)moved);
        CHECK_MSG(run_f32(og, 2, in, 1, got, 72) == 24, "variant %d", variant);
        double worst = 0;
        for (int i = 0; i < 24; i++) worst = fmax(worst, fabs(got[i] - want_y[i]));
        CHECK_MSG(worst < 1e-5, "variant %d: y off by %g", variant, worst);
        CHECK_MSG(run_f32(og, 2, in, 0, got, 72) == 72, "variant %d", variant);
        worst = 0;
        for (int i = 0; i < 72; i++) {
            float w = relu ? fmaxf(want_qkv[i], 0) : want_qkv[i];
            worst = fmax(worst, fabs(got[i] - w));
        }
        CHECK_MSG(worst < 1e-5, "variant %d: qkv off by %g", variant, worst);
        tc_graph_free(og);
    }
}

/* x [2, 3, 4] read by five linears: q, k (4 wide) and v (6 wide) with biases, each read by a view;
 * one without a bias (read by a view: no partner); one read by a relu (not merged). */
static void test_merge_linear_joins_sibling_products(void) {
    float wq[16], wk[16], wv[24], wn[12], wr[8], bq[4], bk[4], bv[6], x[24];
    for (int i = 0; i < 16; i++) wq[i] = (float)((i * 7) % 11) / 8 - 0.6f, wk[i] = (float)((i * 3) % 7) / 5 - 0.5f;
    for (int i = 0; i < 24; i++) wv[i] = (float)((i * 5) % 13) / 9 - 0.7f;
    for (int i = 0; i < 12; i++) wn[i] = (float)(i % 4) / 3 - 0.4f;
    for (int i = 0; i < 8; i++) wr[i] = (float)(i % 3) - 1;
    for (int i = 0; i < 4; i++) bq[i] = (float)i / 4, bk[i] = -(float)i / 5;
    for (int i = 0; i < 6; i++) bv[i] = (float)(i % 3) / 2 - 0.5f;
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 3) % 13) / 7 - 0.8f;
    const float *ws[5] = {wq, wk, wv, wn, wr}, *bs[5] = {bq, bk, bv, NULL, NULL};
    const int64_t N[5] = {4, 4, 6, 3, 2};
    for (int on = 0; on < 2; on++) {
        tc_graph_t *g;
        tc_graph_create(&g);
        int64_t xd[3] = {2, 3, 4};
        tc_value_t *xv;
        tc_graph_add_input(g, "x", TC_F32, 3, xd, &xv);
        for (int j = 0; j < 5; j++) {
            char nm[16];
            int64_t wd[2] = {N[j], 4}, bd[1] = {N[j]}, vd[4] = {2, 3, N[j], 1};
            tc_value_t *w, *b = NULL;
            snprintf(nm, sizeof nm, "w%d", j);
            tc_graph_add_constant(g, nm, TC_F32, 2, wd, ws[j], TC_CONSTANT_COPY, &w);
            if (bs[j]) {
                snprintf(nm, sizeof nm, "b%d", j);
                tc_graph_add_constant(g, nm, TC_F32, 1, bd, bs[j], TC_CONSTANT_COPY, &b);
            }
            snprintf(nm, sizeof nm, "lin%d", j);
            tc_value_t *y = node1(g, "linear", nm, 3, (tc_arg[]){T(xv), T(w), b ? T(b) : (tc_arg){.kind = TC_ARG_NONE}});
            tc_value_t *r = j == 4 ? node1(g, "relu", "act", 1, (tc_arg[]){T(y)})
                                   : node1(g, "view", "split", 2, (tc_arg[]){T(y), IS(vd, 4)});
            snprintf(nm, sizeof nm, "y%d", j);
            tc_graph_mark_output(g, r, nm);
        }
        tc_pass_options opt;
        tc_pass_options_init(&opt);
        opt.merge_linear = on;
        tc_graph_t *og = optimize(g, &opt);
        CHECK(og != NULL);
        if (!og) continue;
        CHECK_MSG(count_op(og, "linear") == (on ? 3 : 5) && count_op(og, "slice.Tensor") == (on ? 3 : 0),
                  "merge %d: %d linears, %d slices", on, count_op(og, "linear"), count_op(og, "slice.Tensor"));
        tc_tensor in = {TC_F32, 3, {2, 3, 4}, x};
        for (int j = 0; j < 5; j++) {
            float got[36];
            CHECK(run_f32(og, 1, &in, j, got, 36) == 6 * N[j]);
            double worst = 0;
            for (int r = 0; r < 6; r++)
                for (int c = 0; c < N[j]; c++) {
                    double acc = bs[j] ? bs[j][c] : 0;
                    for (int k = 0; k < 4; k++) acc += (double)x[r * 4 + k] * ws[j][c * 4 + k];
                    if (j == 4) acc = fmax(acc, 0);
                    worst = fmax(worst, fabs(got[r * N[j] + c] - acc));
                }
            CHECK_MSG(worst < 1e-5, "merge %d, output %d: off by %g", on, j, worst);
        }
        tc_graph_free(og);
    }
}

/* MultiheadAttention's path to q, k and v at small size (B 2, S 3, E 4, H 2, hd 2), from a packed
 * projection p [B, S, 3E] (a graph input times one, so that it is computed):
 *   permute (1, 0, 2) -> view [S, B, 3, E] -> unsqueeze 0 -> transpose (0, -2) -> squeeze -2 -> clone
 *   -> select (0, i) -> view [S, B*H, hd] -> transpose (0, 1) -> view [B, H, S, hd] -> attention */
static tc_graph_t *mha_views_graph(void) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t pd[3] = {2, 3, 12}, sbe[3] = {1, 0, 2}, split[4] = {3, 2, 3, 4}, heads[3] = {3, 4, 2},
            bhsd[4] = {2, 2, 3, 2}, sq[1] = {-2};
    tc_value_t *p;
    tc_graph_add_input(g, "p", TC_F32, 3, pd, &p);
    tc_value_t *pc = node1(g, "mul.Scalar", "proj", 2, (tc_arg[]){T(p), F(1.0)});
    tc_value_t *t = node1(g, "permute", "sbe", 2, (tc_arg[]){T(pc), IS(sbe, 3)});
    t = node1(g, "view", "view_1", 2, (tc_arg[]){T(t), IS(split, 4)});
    t = node1(g, "unsqueeze", "unsqueeze", 2, (tc_arg[]){T(t), I(0)});
    t = node1(g, "transpose.int", "transpose", 3, (tc_arg[]){T(t), I(0), I(-2)});
    t = node1(g, "squeeze.dims", "squeeze", 2, (tc_arg[]){T(t), IS(sq, 1)});
    t = node1(g, "clone", "clone", 1, (tc_arg[]){T(t)});
    tc_value_t *qkv[3];
    for (int i = 0; i < 3; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "select_%d", i);
        tc_value_t *u = node1(g, "select.int", nm, 3, (tc_arg[]){T(t), I(0), I(i)});
        snprintf(nm, sizeof nm, "view_%d", 2 + i);
        u = node1(g, "view", nm, 2, (tc_arg[]){T(u), IS(heads, 3)});
        snprintf(nm, sizeof nm, "transpose_%d", i);
        u = node1(g, "transpose.int", nm, 3, (tc_arg[]){T(u), I(0), I(1)});
        snprintf(nm, sizeof nm, "view_%d", 5 + i);
        qkv[i] = node1(g, "view", nm, 2, (tc_arg[]){T(u), IS(bhsd, 4)});
    }
    tc_graph_mark_output(g, node1(g, "scaled_dot_product_attention", "attn", 3, (tc_arg[]){T(qkv[0]), T(qkv[1]), T(qkv[2])}),
                         "o");
    tc_graph_mark_output(g, qkv[1], "k");
    return g;
}

static void test_view_chains_make_attention_inputs_one_view(void) {
    float p[72], want_o[24], want_k[24], got[24];
    for (int i = 0; i < 72; i++) p[i] = (float)((i * 7) % 19) / 6 - 1.5f;
    /* k by hand: k[b, h, s, d] = p[b, s, E + h*hd + d] */
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 3; s++)
                for (int d = 0; d < 2; d++) want_k[((b * 2 + h) * 3 + s) * 2 + d] = p[(b * 3 + s) * 12 + 4 + h * 2 + d];
    tc_tensor in = {TC_F32, 3, {2, 3, 12}, p};
    /* each graph runs as it is (engines would run the default passes again) */
    setenv("TENSORC_PASSES", "0", 1);
    tc_pass_options opt;
    tc_pass_options_init(&opt);
    opt.view_chains = false;
    tc_graph_t *og = optimize(mha_views_graph(), &opt);
    CHECK(og && count_op(og, "clone") == 1);
    CHECK(og && run_f32(og, 1, &in, 0, want_o, 24) == 24);
    tc_graph_free(og);
    opt.view_chains = true;
    og = optimize(mha_views_graph(), &opt);
    CHECK(og != NULL);
    if (!og) {
        unsetenv("TENSORC_PASSES");
        return;
    }
    /* the chain to k is also a graph output, so its clone stays for that reader; q and v no
     * longer read it, and each input is view, select, permute (the last view changes nothing) */
    CHECK_MSG(count_op(og, "select.int") == 3 + 1 && count_op(og, "permute") == 3 + 1,
              "%d selects, %d permutes", count_op(og, "select.int"), count_op(og, "permute"));
    CHECK(run_f32(og, 1, &in, 0, got, 24) == 24);
    bool same = true;
    for (int i = 0; i < 24; i++) same = same && got[i] == want_o[i];
    CHECK_MSG(same, "attention over the rewritten views differs");
    CHECK(run_f32(og, 1, &in, 1, got, 24) == 24);
    same = true;
    for (int i = 0; i < 24; i++) same = same && got[i] == want_k[i];
    CHECK_MSG(same, "k differs from the hand-worked positions");
    tc_graph_free(og);
    unsetenv("TENSORC_PASSES");
}

/* Cases the new passes must leave alone: a [1] bias (it broadcasts, so sibling biases cannot be
 * concatenated), a chain that needs more atoms than a view may have dims, and an empty linear whose
 * views regroup rows freely. Each graph still optimizes and keeps its output shape. */
static void test_new_passes_leave_edge_cases(void) {
    /* x [2, 4] -> two linears with W [4, 4] and b [1], each read by a view */
    float w[16], b1[1] = {0.5f}, x[8], got[8];
    for (int i = 0; i < 16; i++) w[i] = (float)(i % 5) - 2;
    for (int i = 0; i < 8; i++) x[i] = (float)i / 4;
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t xd[2] = {2, 4}, wd[2] = {4, 4}, bd[1] = {1}, vd[3] = {2, 2, 2};
    tc_value_t *xv, *W, *B;
    tc_graph_add_input(g, "x", TC_F32, 2, xd, &xv);
    tc_graph_add_constant(g, "w", TC_F32, 2, wd, w, TC_CONSTANT_COPY, &W);
    tc_graph_add_constant(g, "b", TC_F32, 1, bd, b1, TC_CONSTANT_COPY, &B);
    for (int j = 0; j < 2; j++) {
        tc_value_t *y = node1(g, "linear", j ? "l1" : "l0", 3, (tc_arg[]){T(xv), T(W), T(B)});
        tc_graph_mark_output(g, node1(g, "view", j ? "v1" : "v0", 2, (tc_arg[]){T(y), IS(vd, 3)}), j ? "y1" : "y0");
    }
    tc_pass_options opt;
    tc_pass_options_init(&opt);
    tc_graph_t *og = optimize(g, &opt);
    CHECK(og && count_op(og, "linear") == 2);
    tc_tensor in = {TC_F32, 2, {2, 4}, x};
    if (og) {
        CHECK(run_f32(og, 1, &in, 1, got, 8) == 8);
        bool ok = true;
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 4; c++) {
                float acc = 0.5f;
                for (int k = 0; k < 4; k++) acc += x[r * 4 + k] * w[c * 4 + k];
                ok = ok && fabsf(got[r * 4 + c] - acc) < 1e-5f;
            }
        CHECK_MSG(ok, "a [1] bias broadcasts");
    }
    tc_graph_free(og);

    /* q = k = v = view(permute(clone(view(a * 1, [256, 2]))), [2, 16, 16]) with a [2, ..., 2, 4] of
     * rank 8: the view splits a's last dim, nine atoms */
    tc_graph_create(&g);
    int64_t ad[8] = {2, 2, 2, 2, 2, 2, 2, 4}, fine[2] = {256, 2}, swap[2] = {1, 0}, coarse[3] = {2, 16, 16};
    tc_value_t *a;
    tc_graph_add_input(g, "a", TC_F32, 8, ad, &a);
    tc_value_t *t = node1(g, "mul.Scalar", "scale", 2, (tc_arg[]){T(a), F(1.0)});
    t = node1(g, "view", "fine", 2, (tc_arg[]){T(t), IS(fine, 2)});
    t = node1(g, "clone", "copy", 1, (tc_arg[]){T(t)});
    t = node1(g, "permute", "swap", 2, (tc_arg[]){T(t), IS(swap, 2)});
    t = node1(g, "view", "coarse", 2, (tc_arg[]){T(t), IS(coarse, 3)});
    tc_graph_mark_output(g, node1(g, "scaled_dot_product_attention", "attn", 3, (tc_arg[]){T(t), T(t), T(t)}), "o");
    og = optimize(g, &opt);
    CHECK_MSG(og != NULL, "a chain of nine atoms stays as it is");
    tc_graph_free(og);

    /* o [3, 2, 0] -> permute (1, 0, 2) -> view [5, 7, 0] -> linear W [6, 0] -> view [2, 3, 35] -> permute */
    tc_graph_create(&g);
    int64_t od[3] = {3, 2, 0}, p[3] = {1, 0, 2}, v1[3] = {5, 7, 0}, w0[2] = {6, 0}, v2[3] = {2, 3, 35};
    tc_value_t *o, *W0;
    float none[1] = {0};
    tc_graph_add_input(g, "o", TC_F32, 3, od, &o);
    tc_graph_add_constant(g, "w0", TC_F32, 2, w0, none, TC_CONSTANT_COPY, &W0);
    t = node1(g, "permute", "p1", 2, (tc_arg[]){T(o), IS(p, 3)});
    t = node1(g, "view", "v1", 2, (tc_arg[]){T(t), IS(v1, 3)});
    t = node1(g, "linear", "empty", 3, (tc_arg[]){T(t), T(W0), (tc_arg){.kind = TC_ARG_NONE}});
    t = node1(g, "view", "v2", 2, (tc_arg[]){T(t), IS(v2, 3)});
    tc_graph_mark_output(g, node1(g, "permute", "p2", 2, (tc_arg[]){T(t), IS(p, 3)}), "y");
    og = optimize(g, &opt);
    CHECK(og != NULL);
    if (og) {
        const tc_value *y = og->outputs.items[0];
        CHECK_MSG(y->rank == 3 && y->dims[0] == 3 && y->dims[1] == 2 && y->dims[2] == 35,
                  "the empty linear's output keeps its shape");
    }
    tc_graph_free(og);
}

/* x -> mm -> clone -> add(r) -> alias -> view (same shape) -> output, and x -> t -> clone -> output:
 * the first chain's identities go, the clone that makes the transpose contiguous stays. */
static void test_identity_nodes_are_dropped(void) {
    tc_graph_t *g;
    tc_graph_create(&g);
    int64_t xd[2] = {3, 4}, wd[2] = {4, 4}, rd[2] = {3, 4};
    float W[16], xin[12], rin[12];
    for (int i = 0; i < 16; i++) W[i] = (float)(i % 5) - 2;
    for (int i = 0; i < 12; i++) xin[i] = (float)i / 4, rin[i] = (float)(i % 3);
    tc_value_t *x, *r, *cw;
    tc_graph_add_input(g, "x", TC_F32, 2, xd, &x);
    tc_graph_add_input(g, "r", TC_F32, 2, rd, &r);
    tc_graph_add_constant(g, "W", TC_F32, 2, wd, W, TC_CONSTANT_COPY, &cw);
    tc_value_t *mm = node1(g, "mm", "mm", 2, (tc_arg[]){T(x), T(cw)});
    tc_value_t *drop = node1(g, "clone", "dropout", 1, (tc_arg[]){T(mm)});
    tc_value_t *add = node1(g, "add.Tensor", "add", 2, (tc_arg[]){T(drop), T(r)});
    tc_value_t *al = node1(g, "alias", "alias", 1, (tc_arg[]){T(add)});
    tc_value_t *v = node1(g, "view", "same", 2, (tc_arg[]){T(al), IS(rd, 2)});
    tc_graph_mark_output(g, v, "y");
    tc_value_t *tt = node1(g, "t", "t", 1, (tc_arg[]){T(x)});
    tc_graph_mark_output(g, node1(g, "clone", "contig", 1, (tc_arg[]){T(tt)}), "xt");
    tc_pass_options o;
    tc_pass_options_init(&o);
    tc_graph_t *og = optimize(g, &o);
    CHECK(og != NULL);
    if (!og) return;
    CHECK_MSG(count_op(og, "clone") == 1 && count_op(og, "alias") == 0 && count_op(og, "view") == 0,
              "%d clones, %d aliases, %d views", count_op(og, "clone"), count_op(og, "alias"), count_op(og, "view"));
    tc_tensor in[2] = {{TC_F32, 2, {3, 4}, xin}, {TC_F32, 2, {3, 4}, rin}};
    float out[12];
    CHECK(run_f32(og, 2, in, 0, out, 12) == 12);
    bool same = true;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            float s = rin[i * 4 + j];
            for (int k = 0; k < 4; k++) s += xin[i * 4 + k] * W[k * 4 + j];
            same = same && fabsf(out[i * 4 + j] - s) < 1e-5f;
        }
    CHECK(same);
    CHECK(run_f32(og, 2, in, 1, out, 12) == 12);
    same = true;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) same = same && out[i * 3 + j] == xin[j * 4 + i];
    CHECK(same);
    tc_graph_free(og);
}

int main(void) {
    test_dce_removes_unused_nodes_and_constants();
    test_fold_constants_folds_weight_only_chains();
    test_fold_constants_leaves_big_expansions();
    test_fold_batchnorm_into_conv();
    test_attention_masks_that_mask_nothing_are_dropped();
    test_patch_conv_becomes_a_matrix_product();
    test_identity_nodes_are_dropped();
    test_permute_linear_moves_row_permutations();
    test_merge_linear_joins_sibling_products();
    test_view_chains_make_attention_inputs_one_view();
    test_new_passes_leave_edge_cases();
    test_precision_keeps_io_types_and_sensitive_ops_f32();
    test_rewrite_keeps_symbolic_dims();
    test_opaque_nodes_survive();
    test_optimize_api_errors();
    test_resnet18_model();
    TEST_MAIN_END();
}
