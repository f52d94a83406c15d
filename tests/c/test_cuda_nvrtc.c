/* Generated elementwise kernels (TENSORC_CUDA_NVRTC=1): a graph whose chains use every op the
 * generator knows, in f32, f16 and bf16, with full, per-channel, last-dim and one-element operands,
 * is lowered to chain steps, and the generated program compiles with NVRTC for sm_90 (no GPU
 * needed: NVRTC runs on the host). With a GPU, the chains run and match the CPU backend. Skips
 * visibly in a build without the CUDA backend. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "tensorc.h"
#include "test.h"

#include <stdio.h>

#ifndef TC_HAVE_CUDA

int main(void) {
    printf("SKIP: this build has no CUDA backend (configure with -DTENSORC_CUDA=ON)\n");
    printf("0 passed, 0 failed\n");
    return 0;
}

#else

#include "backend/cuda/exec_internal.h"
#include "core/dtype.h"
#include "engine/serialize.h"
#include "step_records.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }
static tc_arg F(double f) { return (tc_arg){.kind = TC_ARG_FLOAT, .u.f = f}; }
static tc_arg S(const char *s) { return (tc_arg){.kind = TC_ARG_STRING, .u.s = s}; }

enum { N = 2, C = 3, H = 4, W = 5 };
static float g_bch[C], g_blast[W], g_one[1], g_x[N * C * H * W];
static uint16_t h_bch[C], h_blast[W], h_one[1], h_x[N * C * H * W];

/* Adds node op(args) named name with one output; NULL (and a failed check) on error. */
static tc_value_t *node(tc_graph_t *g, const char *op, const char *name, int n, const tc_arg *args) {
    tc_value_t *out = NULL;
    tc_status st = tc_graph_add_node(g, op, name, n, args, 1, &out, NULL);
    CHECK_MSG(st == TC_OK, "%s: %s", name, tc_graph_last_error(g));
    return out;
}

/* Three chains over x [2, 3, 4, 5] of dtype t, together using every op of fuse_ew.c:
 *   a: add(x, per-channel) relu mul(last-dim) hardswish sub.Scalar sigmoid div(one-element) gelu(tanh)
 *   b: abs, add.Scalar (alpha 2), sqrt, rsqrt, reciprocal, mul.Scalar, exp, log1p-free log of it, tanh
 *   c: maximum(x, a) minimum(., b) hardtanh leaky_relu elu silu hardsigmoid erf, then sin, cos, neg, gelu
 * and the outputs a, b, c. */
static tc_graph_t *make_graph(tc_dtype t) {
    tc_graph_t *g;
    if (tc_graph_create(&g) != TC_OK) return NULL;
    const bool f32 = t == TC_F32;
    tc_value_t *x, *bch, *blast, *one;
    CHECK(tc_graph_add_input(g, "x", t, 4, (tc_dim[]){N, C, H, W}, &x) == TC_OK);
    const void *pb = f32 ? (const void *)g_bch : h_bch, *pl = f32 ? (const void *)g_blast : h_blast;
    const void *po = f32 ? (const void *)g_one : h_one;
    CHECK(tc_graph_add_constant(g, "bch", t, 3, (tc_dim[]){C, 1, 1}, pb, TC_CONSTANT_COPY, &bch) == TC_OK);
    CHECK(tc_graph_add_constant(g, "blast", t, 1, (tc_dim[]){W}, pl, TC_CONSTANT_COPY, &blast) == TC_OK);
    CHECK(tc_graph_add_constant(g, "one", t, 1, (tc_dim[]){1}, po, TC_CONSTANT_COPY, &one) == TC_OK);
    tc_value_t *v;
    v = node(g, "add.Tensor", "a1", 2, (tc_arg[]){T(x), T(bch)});
    v = node(g, "relu", "a2", 1, (tc_arg[]){T(v)});
    v = node(g, "mul.Tensor", "a3", 2, (tc_arg[]){T(v), T(blast)});
    v = node(g, "hardswish", "a4", 1, (tc_arg[]){T(v)});
    v = node(g, "sub.Scalar", "a5", 2, (tc_arg[]){T(v), F(0.3)});
    v = node(g, "sigmoid", "a6", 1, (tc_arg[]){T(v)});
    v = node(g, "div.Tensor", "a7", 2, (tc_arg[]){T(v), T(one)});
    tc_value_t *a = node(g, "gelu", "a8", 2, (tc_arg[]){T(v), S("tanh")});
    v = node(g, "abs", "b1", 1, (tc_arg[]){T(x)});
    v = node(g, "add.Scalar", "b2", 3, (tc_arg[]){T(v), F(0.5), F(2.0)});
    v = node(g, "sqrt", "b3", 1, (tc_arg[]){T(v)});
    v = node(g, "rsqrt", "b4", 1, (tc_arg[]){T(v)});
    v = node(g, "reciprocal", "b5", 1, (tc_arg[]){T(v)});
    v = node(g, "mul.Scalar", "b6", 2, (tc_arg[]){T(v), F(0.25)});
    v = node(g, "exp", "b7", 1, (tc_arg[]){T(v)});
    v = node(g, "log", "b8", 1, (tc_arg[]){T(v)});
    tc_value_t *b = node(g, "tanh", "b9", 1, (tc_arg[]){T(v)}); /* a chain stops at 8: b9 starts another */
    v = node(g, "maximum", "c1", 2, (tc_arg[]){T(x), T(bch)});
    v = node(g, "minimum", "c2", 2, (tc_arg[]){T(v), T(blast)});
    v = node(g, "hardtanh", "c3", 3, (tc_arg[]){T(v), F(-0.5), F(0.75)});
    v = node(g, "leaky_relu", "c4", 2, (tc_arg[]){T(v), F(0.1)});
    v = node(g, "elu", "c5", 4, (tc_arg[]){T(v), F(1.5), F(1.0), F(0.5)});
    v = node(g, "silu", "c6", 1, (tc_arg[]){T(v)});
    v = node(g, "hardsigmoid", "c7", 1, (tc_arg[]){T(v)});
    v = node(g, "erf", "c8", 1, (tc_arg[]){T(v)});
    v = node(g, "sin", "c9", 1, (tc_arg[]){T(v)});
    v = node(g, "cos", "c10", 1, (tc_arg[]){T(v)});
    v = node(g, "neg", "c11", 1, (tc_arg[]){T(v)});
    v = node(g, "sub.Tensor", "c12", 3, (tc_arg[]){T(v), T(x), F(1.0)});
    tc_value_t *c = node(g, "gelu", "c13", 1, (tc_arg[]){T(v)});
    CHECK(tc_graph_mark_output(g, a, "a") == TC_OK && tc_graph_mark_output(g, b, "b") == TC_OK &&
          tc_graph_mark_output(g, c, "c") == TC_OK);
    return g;
}

static void test_lowering_and_nvrtc(tc_dtype t) {
    tc_graph_t *g = make_graph(t);
    if (!g) return;
    tc_cuda_engine e;
    memset(&e, 0, sizeof e);
    e.g = g;
    e.ew_mode = true;
    tc_error err;
    tc_error_clear(&err);
    CHECK_MSG(tc_cuda_lower_steps(&e, true, &err) == TC_OK, "%s", err.msg);
    /* a: 8 nodes; b: 8 + b9 alone; c: 8 + 5 */
    CHECK_MSG(e.n_ew == 4, "%d chains", e.n_ew);
    int in_chains = 0;
    for (int i = 0; i < e.n_steps; i++)
        if (e.steps[i].kind == TC_CUDA_STEP_EW) in_chains += e.steps[i].count;
    CHECK_MSG(in_chains == 29, "%d nodes in chains", in_chains);
    if (e.n_ew >= 1) { /* chain a: x full, bch per channel, blast last dim, one single */
        const tc_cuda_ew_step *es = &e.ew[0];
        CHECK(es->n_in == 4 && es->in[0].full && !es->in[1].full && es->in[1].first == 1 && es->in[1].last == 1 &&
              es->in[2].first == 3 && es->in[2].last == 3 && es->in[3].first < 0);
    }
    char *src = NULL;
    size_t len = 0;
    CHECK_MSG(tc_cuda_ew_source(&e, &src, &len, &err) == TC_OK, "%s", err.msg);
    CHECK(src && strstr(src, "tc_ew_3") && !strstr(src, "missing operand"));
    void *cubin = NULL;
    size_t size = 0;
    tc_status st = src ? tc_cuda_nvrtc_compile(src, 9, 0, &cubin, &size, &err) : TC_ERR_INTERNAL;
    CHECK_MSG(st == TC_OK && cubin && size > 1000, "%s\n--- source ---\n%s", err.msg, src ? src : "");
    free(cubin);
    free(src);
    tc_cuda_free_steps(&e);
    tc_graph_free(g);
}

/* Runs engine e (or, when e is NULL, one built from g for backend) on g_x; with keep, the built
 * engine is handed back in *keep instead of freed. */
static bool run_engine(tc_graph_t *g, tc_engine_t *given, tc_engine_t **keep, tc_backend_kind backend, tc_dtype t,
                       float out[3][N * C * H * W]) {
    tc_build_options o;
    tc_build_options_init(&o);
    o.backend = backend;
    tc_engine_t *e = given;
    tc_context_t *c = NULL;
    char err[1024];
    size_t es = tc_dtype_size(t), bytes = (size_t)N * C * H * W * es;
    void *dx = NULL;
    bool ok = (e || tc_engine_build(g, &o, &e, err, sizeof err) == TC_OK) && tc_context_create(e, &c) == TC_OK;
    if (!ok) fprintf(stderr, "build: %s\n", err);
    const void *hx = t == TC_F32 ? (const void *)g_x : h_x;
    if (ok && backend == TC_BACKEND_CUDA)
        ok = tc_device_alloc(0, bytes, &dx) == TC_OK && tc_device_copy(dx, hx, bytes, TC_COPY_HOST_TO_DEVICE, NULL) == TC_OK;
    tc_tensor tx = {.dtype = t, .rank = 4, .dims = {N, C, H, W}, .data = dx ? dx : (void *)hx};
    ok = ok && tc_context_set_input(c, 0, &tx) == TC_OK && tc_context_execute(c) == TC_OK;
    if (!ok && c) fprintf(stderr, "run: %s\n", tc_context_last_error(c));
    static unsigned char host[N * C * H * W * 4];
    for (int i = 0; ok && i < 3; i++) {
        tc_tensor y;
        ok = tc_context_get_output(c, i, &y) == TC_OK;
        const void *p = y.data;
        if (ok && backend == TC_BACKEND_CUDA) {
            ok = tc_device_copy(host, y.data, bytes, TC_COPY_DEVICE_TO_HOST, NULL) == TC_OK;
            p = host;
        }
        for (int k = 0; ok && k < N * C * H * W; k++) out[i][k] = (float)tc_load_f64(p, t, k);
    }
    tc_device_free(dx);
    tc_context_free(c);
    if (keep) *keep = e;
    else if (!given) tc_engine_free(e);
    return ok;
}

static bool run(tc_graph_t *g, tc_backend_kind backend, tc_dtype t, float out[3][N * C * H * W]) {
    return run_engine(g, NULL, NULL, backend, t, out);
}

static void test_gpu_matches_cpu(tc_dtype t) {
    tc_graph_t *g = make_graph(t);
    static float want[3][N * C * H * W], got[3][N * C * H * W], again[3][N * C * H * W], plain[3][N * C * H * W];
    CHECK(g && run(g, TC_BACKEND_CPU, t, want));
    setenv("TENSORC_CUDA_NVRTC", "1", 1);
    tc_engine_t *e = NULL;
    CHECK(g && run_engine(g, NULL, &e, TC_BACKEND_CUDA, t, got));
    /* the engine file carries the cubin; the loaded engine runs it, bit for bit */
    void *data = NULL;
    size_t size = 0;
    CHECK(e && tc_engine_serialize(e, &data, &size) == TC_OK);
    if (data) {
        CHECK_MSG(count_step_records(data, size, TC_RECORD_NVRTC_CUBIN) == 1, "%d cubin records",
                  count_step_records(data, size, TC_RECORD_NVRTC_CUBIN));
        tc_engine_t *loaded = NULL;
        char msg[1024];
        CHECK_MSG(tc_engine_deserialize(data, size, NULL, &loaded, msg, sizeof msg) == TC_OK, "%s", msg);
        CHECK(loaded && run_engine(g, loaded, NULL, TC_BACKEND_CUDA, t, again) && memcmp(again, got, sizeof got) == 0);
        tc_engine_free(loaded);
        tc_free_buffer(data);
    }
    tc_engine_free(e);
    setenv("TENSORC_CUDA_NVRTC", "0", 1); /* node by node */
    /* NVRTC refusing the program: the chains run node by node, as without generated kernels */
    static float fallback[3][N * C * H * W];
    setenv("TENSORC_CUDA_NVRTC", "1", 1);
    setenv("TENSORC_CUDA_NVRTC_OPTIONS", "--no-such-option", 1);
    CHECK(g && run(g, TC_BACKEND_CUDA, t, fallback));
    unsetenv("TENSORC_CUDA_NVRTC_OPTIONS");
    setenv("TENSORC_CUDA_NVRTC", "0", 1); /* node by node */
    /* one node at a time (each op rounds as in the chain): the same values, up to one ulp of the
     * dtype where NVRTC's math library and nvcc's round an f32 result differently */
    CHECK(g && run(g, TC_BACKEND_CUDA, t, plain));
    double ulp = t == TC_F32 ? 1.2e-7 : t == TC_F16 ? 9.8e-4 : 7.9e-3;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < N * C * H * W; k++)
            if (fabs((double)plain[i][k] - got[i][k]) > ulp * fmax(1.0, fabs(plain[i][k]))) {
                CHECK_MSG(false, "%s output %d element %d: chain %g, node by node %g", tc_dtype_name(t), i, k,
                          got[i][k], plain[i][k]);
                break;
            }
    CHECK_MSG(memcmp(fallback, plain, sizeof plain) == 0, "%s: the fallback differs from node-by-node kernels",
              tc_dtype_name(t));
    double tol = t == TC_F32 ? 1e-5 : t == TC_F16 ? 2e-3 : 1.6e-2;
    for (int i = 0; i < 3; i++) {
        double worst = 0;
        int at = 0;
        for (int k = 0; k < N * C * H * W; k++) {
            double d = fabs((double)got[i][k] - want[i][k]) / fmax(1.0, fabs(want[i][k]));
            if (!(d <= worst)) worst = d, at = k;
        }
        CHECK_MSG(worst <= tol, "%s output %d: element %d is %g, the CPU backend gives %g", tc_dtype_name(t), i, at,
                  got[i][at], want[i][at]);
    }
    tc_graph_free(g);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < C; i++) g_bch[i] = 0.25f * (float)i - 0.3f;
    for (int i = 0; i < W; i++) g_blast[i] = 0.5f + 0.125f * (float)i;
    g_one[0] = 0.8f;
    for (int i = 0; i < N * C * H * W; i++) g_x[i] = (float)((i * 37) % 41) / 10.0f - 2.0f;
    /* the f16 and bf16 graphs hold the f32 values rounded (f16 here; bf16 rounds them again) */
    for (int i = 0; i < C; i++) h_bch[i] = tc_f32_to_f16(g_bch[i]);
    for (int i = 0; i < W; i++) h_blast[i] = tc_f32_to_f16(g_blast[i]);
    h_one[0] = tc_f32_to_f16(g_one[0]);
    for (int i = 0; i < N * C * H * W; i++) h_x[i] = tc_f32_to_f16(g_x[i]);
    test_lowering_and_nvrtc(TC_F32);
    test_lowering_and_nvrtc(TC_F16);
    /* bf16 reads the same 16-bit words as bf16: other values, the same code paths */
    test_lowering_and_nvrtc(TC_BF16);
    int count = 0;
    tc_error err;
    tc_error_clear(&err);
    if (tc_cuda_device_count(&count, &err) != TC_OK || count == 0) {
        printf("SKIP: no CUDA device (%s): the generated kernels were compiled but not run\n",
               err.msg[0] ? err.msg : "0 devices");
        TEST_MAIN_END();
    }
    test_gpu_matches_cpu(TC_F32);
    test_gpu_matches_cpu(TC_F16);
    test_gpu_matches_cpu(TC_BF16);
    TEST_MAIN_END();
}

#endif
