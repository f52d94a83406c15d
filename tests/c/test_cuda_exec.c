/* The CUDA executor, end to end: small graphs built with the C API run on the GPU and on the CPU
 * backend (the reference) and against hand-worked formulas; caller-bound outputs with guard bytes,
 * caller streams, dynamic shapes and the CUDA graph cache, input errors, and device-memory hygiene
 * over 1,000 executions and 100 build/free cycles. Skips visibly without a GPU or a CUDA build. */
#define _POSIX_C_SOURCE 200809L /* setenv, clock_gettime */
#include "tensorc.h"
#include "test.h"

#include <stdio.h>

#ifndef TC_HAVE_CUDA

int main(void) {
    printf("SKIP: no CUDA device (this build has no CUDA backend: configure with -DTENSORC_CUDA=ON)\n");
    printf("0 passed, 0 failed\n");
    return 0;
}

#else

#include "backend/cuda/cuda.h"
#include "core/dtype.h"

#include <cuda_runtime_api.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COLS 8
#define MAX_BATCH 64

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }

static float w_value(int j) { return 0.5f * (float)j - 1.75f; }
static float x_value(int64_t i, int seed) { return (float)((i * 37 + seed * 11) % 23) * 0.25f - 2.5f; }

/* x: [s0, 8] with s0 in [1, 64]; w: constant [8].
 *   t = x + w;  u = t * x;  v = u + t;  outputs (v, t, x).
 * u lives in the arena, t is both an output and read later, x is copied to an output. */
static tc_graph_t *make_graph(tc_dtype dt) {
    tc_graph_t *g = NULL;
    if (tc_graph_create(&g) != TC_OK) return NULL;
    tc_dim s0, dims[2];
    tc_value_t *x, *w, *t, *u, *v;
    float wf[COLS];
    uint16_t wh[COLS];
    for (int j = 0; j < COLS; j++) wf[j] = w_value(j);
    if (dt != TC_F32) tc_from_f32(wf, wh, dt, COLS);
    int64_t wdims[1] = {COLS};
    bool ok = tc_graph_add_symbol(g, "s0", 1, 4, MAX_BATCH, &s0) == TC_OK;
    dims[0] = s0, dims[1] = COLS;
    ok = ok && tc_graph_add_input(g, "x", dt, 2, dims, &x) == TC_OK;
    ok = ok && tc_graph_add_constant(g, "w", dt, 1, wdims, dt == TC_F32 ? (void *)wf : (void *)wh, TC_CONSTANT_COPY,
                                     &w) == TC_OK;
    tc_arg a1[2] = {T(x), T(w)};
    ok = ok && tc_graph_add_node(g, "add.Tensor", "t", 2, a1, 1, &t, NULL) == TC_OK;
    tc_arg a2[2] = {T(ok ? t : NULL), T(x)};
    ok = ok && tc_graph_add_node(g, "mul.Tensor", "u", 2, a2, 1, &u, NULL) == TC_OK;
    tc_arg a3[2] = {T(ok ? u : NULL), T(ok ? t : NULL)};
    ok = ok && tc_graph_add_node(g, "add.Tensor", "v", 2, a3, 1, &v, NULL) == TC_OK;
    ok = ok && tc_graph_mark_output(g, v, "v") == TC_OK && tc_graph_mark_output(g, t, "t") == TC_OK &&
         tc_graph_mark_output(g, x, "x_copy") == TC_OK && tc_graph_verify(g) == TC_OK;
    if (!ok) {
        fprintf(stderr, "make_graph: %s\n", tc_graph_last_error(g));
        tc_graph_free(g);
        return NULL;
    }
    return g;
}

/* Hand formula in f32 (exact for f32: each step is one rounded f32 operation, as in the kernels). */
static void reference(const float *x, int64_t batch, float *v, float *t) {
    for (int64_t i = 0; i < batch; i++)
        for (int j = 0; j < COLS; j++) {
            volatile float tt = x[i * COLS + j] + w_value(j);
            volatile float uu = tt * x[i * COLS + j];
            t[i * COLS + j] = tt;
            v[i * COLS + j] = uu + tt;
        }
}

static void fill_x(float *x, int64_t batch, int seed) {
    for (int64_t i = 0; i < batch * COLS; i++) x[i] = x_value(i, seed);
}

static int64_t first_mismatch(const float *got, const float *want, int64_t n, float rtol, float atol) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= atol + rtol * fabsf(want[i]))) return i;
    return -1;
}

/* Runs the graph on the CPU backend: outputs v, t as f32. */
static bool run_cpu(tc_graph_t *g, tc_dtype dt, const float *x, int64_t batch, float *v, float *t) {
    tc_engine_t *e = NULL;
    tc_context_t *c = NULL;
    char eb[512];
    uint16_t xh[MAX_BATCH * COLS];
    tc_tensor in = {.dtype = dt, .rank = 2, .dims = {batch, COLS}, .data = (void *)x};
    if (dt != TC_F32) {
        tc_from_f32(x, xh, dt, batch * COLS);
        in.data = xh;
    }
    bool ok = tc_engine_build(g, NULL, &e, eb, sizeof eb) == TC_OK && tc_context_create(e, &c) == TC_OK &&
              tc_context_set_input(c, 0, &in) == TC_OK && tc_context_execute(c) == TC_OK;
    tc_tensor o;
    if (ok && tc_context_get_output(c, 0, &o) == TC_OK) tc_to_f32(o.data, dt, v, batch * COLS);
    else ok = false;
    if (ok && tc_context_get_output(c, 1, &o) == TC_OK) tc_to_f32(o.data, dt, t, batch * COLS);
    else ok = false;
    if (!ok) fprintf(stderr, "run_cpu: %s %s\n", eb, c ? tc_context_last_error(c) : "");
    tc_context_free(c);
    tc_engine_free(e);
    return ok;
}

static bool upload(void *dev, const float *x, tc_dtype dt, int64_t n) {
    uint16_t h[MAX_BATCH * COLS];
    const void *src = x;
    if (dt != TC_F32) {
        tc_from_f32(x, h, dt, n);
        src = h;
    }
    return cudaMemcpy(dev, src, (size_t)n * tc_dtype_size(dt), cudaMemcpyHostToDevice) == cudaSuccess;
}

static bool download(float *x, const void *dev, tc_dtype dt, int64_t n) {
    uint16_t h[MAX_BATCH * COLS];
    void *dst = dt == TC_F32 ? (void *)x : (void *)h;
    if (cudaMemcpy(dst, dev, (size_t)n * tc_dtype_size(dt), cudaMemcpyDeviceToHost) != cudaSuccess) return false;
    if (dt != TC_F32) tc_to_f32(h, dt, x, n);
    return true;
}

static tc_build_options cuda_options(void) {
    tc_build_options o;
    tc_build_options_init(&o);
    o.backend = TC_BACKEND_CUDA;
    return o;
}

typedef struct gpu {
    tc_graph_t *g;
    tc_engine_t *e;
    tc_context_t *c;
    void *dx;
} gpu;

static bool gpu_open(gpu *q, tc_dtype dt) {
    memset(q, 0, sizeof *q);
    char eb[1024] = "";
    tc_build_options o = cuda_options();
    q->g = make_graph(dt);
    bool ok = q->g && tc_engine_build(q->g, &o, &q->e, eb, sizeof eb) == TC_OK && tc_context_create(q->e, &q->c) == TC_OK &&
              cudaMalloc(&q->dx, MAX_BATCH * COLS * 4) == cudaSuccess;
    CHECK_MSG(ok, "building a CUDA engine: %s", eb);
    return ok;
}

static void gpu_close(gpu *q) {
    tc_context_free(q->c);
    tc_engine_free(q->e);
    tc_graph_free(q->g);
    if (q->dx) cudaFree(q->dx);
}

static tc_tensor x_tensor(tc_dtype dt, int64_t batch, void *data) {
    return (tc_tensor){.dtype = dt, .rank = 2, .dims = {batch, COLS}, .data = data};
}

/* ---- no GPU needed ------------------------------------------------------------------------ */

static void test_unsupported_nodes_are_named(void) {
    tc_graph_t *g;
    tc_value_t *x, *y;
    tc_dim d[1] = {4};
    tc_dtype dt = TC_F32;
    int rank = 1;
    const tc_dim *od[1] = {d};
    tc_error err;
    tc_error_clear(&err);
    CHECK(tc_graph_create(&g) == TC_OK);
    CHECK(tc_graph_add_input(g, "x", TC_F32, 1, d, &x) == TC_OK);
    CHECK(tc_graph_add_opaque_node(g, "my_custom_op", "weird_node", 1, &x, 1, &dt, &rank, od, &y) == TC_OK);
    CHECK(tc_graph_mark_output(g, y, NULL) == TC_OK);
    tc_status st = tc_cuda_check_graph((const tc_graph *)g, &err);
    CHECK_MSG(st == TC_ERR_UNSUPPORTED && strstr(err.msg, "weird_node") && strstr(err.msg, "cuda backend"),
              "status %d, message \"%s\"", (int)st, err.msg);
    char eb[512] = "";
    tc_engine_t *e = NULL;
    tc_build_options o = cuda_options();
    st = tc_engine_build(g, &o, &e, eb, sizeof eb);
    CHECK_MSG(st == TC_ERR_UNSUPPORTED && e == NULL && strstr(eb, "weird_node"), "status %d, message \"%s\"", (int)st,
              eb);
    tc_graph_free(g);
}

static void test_build_without_device_fails_cleanly(bool have_gpu, bool have_kernels) {
    tc_graph_t *g = make_graph(TC_F32);
    CHECK(g != NULL);
    if (!g) return;
    char eb[512] = "";
    tc_engine_t *e = NULL;
    tc_build_options o = cuda_options();
    o.device = 99;
    tc_status st = tc_engine_build(g, &o, &e, eb, sizeof eb);
    /* without kernels: unsupported ops; without a GPU: no device; with both: device 99 is missing */
    tc_status want = !have_kernels ? TC_ERR_UNSUPPORTED : !have_gpu ? TC_ERR_CUDA : TC_ERR_INVALID_ARGUMENT;
    CHECK_MSG(st == want && e == NULL && eb[0], "device 99: status %d (want %d), message \"%s\"", (int)st, (int)want, eb);
    if (have_kernels && have_gpu) CHECK_MSG(strstr(eb, "device 99 does not exist") != NULL, "message \"%s\"", eb);
    tc_graph_free(g);
}

/* ---- GPU ---------------------------------------------------------------------------------- */

static void test_matches_cpu_and_hand_values(tc_dtype dt) {
    gpu q;
    if (!gpu_open(&q, dt)) {
        gpu_close(&q);
        return;
    }
    const int64_t batch = 5, n = batch * COLS;
    float x[MAX_BATCH * COLS], v[MAX_BATCH * COLS], t[MAX_BATCH * COLS], cv[MAX_BATCH * COLS], ct[MAX_BATCH * COLS];
    float hv[MAX_BATCH * COLS], ht[MAX_BATCH * COLS], xc[MAX_BATCH * COLS];
    const float rtol = dt == TC_F32 ? 1e-6f : 1e-2f, atol = dt == TC_F32 ? 1e-6f : 2e-2f;
    for (int run = 0; run < 3; run++) { /* warm-up, capture, replay */
        fill_x(x, batch, run);
        if (dt != TC_F32) { /* the reference sees the same rounded inputs */
            uint16_t h[MAX_BATCH * COLS];
            tc_from_f32(x, h, dt, n);
            tc_to_f32(h, dt, x, n);
        }
        CHECK(upload(q.dx, x, dt, n));
        tc_tensor in = x_tensor(dt, batch, q.dx);
        CHECK(tc_context_set_input(q.c, 0, &in) == TC_OK);
        tc_status st = tc_context_execute(q.c);
        CHECK_MSG(st == TC_OK, "%s run %d: %s", tc_dtype_name(dt), run, tc_context_last_error(q.c));
        if (st != TC_OK) break;
        tc_tensor o[3];
        for (int i = 0; i < 3; i++) CHECK(tc_context_get_output(q.c, i, &o[i]) == TC_OK);
        CHECK(o[0].dtype == dt && o[0].rank == 2 && o[0].dims[0] == batch && o[0].dims[1] == COLS);
        struct cudaPointerAttributes pa;
        CHECK(cudaPointerGetAttributes(&pa, o[0].data) == cudaSuccess && pa.type == cudaMemoryTypeDevice);
        CHECK(download(v, o[0].data, dt, n) && download(t, o[1].data, dt, n) && download(xc, o[2].data, dt, n));
        CHECK(run_cpu(q.g, dt, x, batch, cv, ct));
        int64_t bad = first_mismatch(v, cv, n, rtol, atol);
        CHECK_MSG(bad < 0, "%s run %d: v[%lld] = %g, cpu backend %g", tc_dtype_name(dt), run, (long long)bad,
                  bad >= 0 ? v[bad] : 0, bad >= 0 ? cv[bad] : 0);
        bad = first_mismatch(t, ct, n, rtol, atol);
        CHECK_MSG(bad < 0, "%s run %d: t[%lld] = %g, cpu backend %g", tc_dtype_name(dt), run, (long long)bad,
                  bad >= 0 ? t[bad] : 0, bad >= 0 ? ct[bad] : 0);
        CHECK_MSG(memcmp(xc, x, (size_t)n * sizeof *x) == 0, "%s run %d: the copied input differs", tc_dtype_name(dt),
                  run);
        if (dt == TC_F32) {
            reference(x, batch, hv, ht);
            bad = first_mismatch(v, hv, n, 0, 0);
            CHECK_MSG(bad < 0, "run %d: v[%lld] = %.9g, hand formula %.9g", run, (long long)bad, bad >= 0 ? v[bad] : 0,
                      bad >= 0 ? hv[bad] : 0);
        }
    }
    gpu_close(&q);
}

/* Outputs bound to caller buffers with guard regions: the results land in the middle, the
 * guards keep their sentinel bytes, and get_output hands back the caller's pointer. */
static void test_bound_outputs_keep_guards(void) {
    gpu q;
    if (!gpu_open(&q, TC_F32)) {
        gpu_close(&q);
        return;
    }
    const int64_t batch = 3, n = batch * COLS, guard = 64;
    const size_t bytes = (size_t)(n + 2 * guard) * 4;
    unsigned char *dv = NULL, *dt = NULL, *host = malloc(bytes);
    CHECK(host && cudaMalloc((void **)&dv, bytes) == cudaSuccess && cudaMalloc((void **)&dt, bytes) == cudaSuccess);
    CHECK(cudaMemset(dv, 0xa5, bytes) == cudaSuccess && cudaMemset(dt, 0xa5, bytes) == cudaSuccess);
    float x[MAX_BATCH * COLS], hv[MAX_BATCH * COLS], ht[MAX_BATCH * COLS];
    for (int run = 0; run < 4 && host && dv && dt; run++) {
        fill_x(x, batch, 10 + run);
        reference(x, batch, hv, ht);
        CHECK(upload(q.dx, x, TC_F32, n));
        tc_tensor in = x_tensor(TC_F32, batch, q.dx);
        tc_tensor ov = x_tensor(TC_F32, batch, dv + guard * 4), ot = x_tensor(TC_F32, batch, dt + guard * 4);
        CHECK(tc_context_set_input(q.c, 0, &in) == TC_OK);
        CHECK(tc_context_set_output(q.c, 0, &ov) == TC_OK && tc_context_set_output(q.c, 1, &ot) == TC_OK);
        tc_status st = tc_context_execute(q.c);
        CHECK_MSG(st == TC_OK, "bound run %d: %s", run, tc_context_last_error(q.c));
        if (st != TC_OK) break;
        tc_tensor o;
        CHECK(tc_context_get_output(q.c, 0, &o) == TC_OK && o.data == dv + guard * 4);
        for (int which = 0; which < 2; which++) {
            CHECK(cudaMemcpy(host, which ? dt : dv, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
            int64_t bad = -1;
            for (int64_t i = 0; i < guard * 4 && bad < 0; i++)
                if (host[i] != 0xa5 || host[bytes - 1 - i] != 0xa5) bad = i;
            CHECK_MSG(bad < 0, "run %d output %d: guard byte %lld was overwritten", run, which, (long long)bad);
            bad = first_mismatch((float *)(host + guard * 4), which ? ht : hv, n, 0, 0);
            CHECK_MSG(bad < 0, "run %d output %d: element %lld differs from the hand formula", run, which,
                      (long long)bad);
        }
    }
    free(host);
    cudaFree(dv);
    cudaFree(dt);
    gpu_close(&q);
}

/* Input upload, run and download all queued on one caller stream, with new data each time and
 * no host synchronization in between: the run must come after the upload and before the
 * download (the third run replays the captured graph). */
static void test_caller_stream_ordering(void) {
    gpu q;
    if (!gpu_open(&q, TC_F32)) {
        gpu_close(&q);
        return;
    }
    cudaStream_t s = NULL;
    float *px = NULL, *pv = NULL;
    const int64_t batch = 16, n = batch * COLS;
    bool ok = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess &&
              cudaMallocHost((void **)&px, n * 4) == cudaSuccess && cudaMallocHost((void **)&pv, n * 4) == cudaSuccess;
    CHECK(ok);
    float hv[MAX_BATCH * COLS], ht[MAX_BATCH * COLS];
    for (int run = 0; ok && run < 4; run++) {
        fill_x(px, batch, 20 + run);
        reference(px, batch, hv, ht);
        memset(pv, 0, n * 4);
        tc_tensor in = x_tensor(TC_F32, batch, q.dx);
        CHECK(tc_context_set_input(q.c, 0, &in) == TC_OK);
        CHECK(cudaMemcpyAsync(q.dx, px, n * 4, cudaMemcpyHostToDevice, s) == cudaSuccess);
        tc_status st = tc_context_enqueue(q.c, s);
        CHECK_MSG(st == TC_OK, "enqueue run %d: %s", run, tc_context_last_error(q.c));
        if (st != TC_OK) break;
        tc_tensor o;
        CHECK(tc_context_get_output(q.c, 0, &o) == TC_OK);
        CHECK(cudaMemcpyAsync(pv, o.data, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
        CHECK(cudaStreamSynchronize(s) == cudaSuccess);
        int64_t bad = first_mismatch(pv, hv, n, 0, 0);
        CHECK_MSG(bad < 0, "caller stream run %d: v[%lld] = %g, want %g", run, (long long)bad, bad >= 0 ? pv[bad] : 0,
                  bad >= 0 ? hv[bad] : 0);
    }
    if (s) cudaStreamDestroy(s);
    cudaFreeHost(px);
    cudaFreeHost(pv);
    gpu_close(&q);
}

/* Executor-level run on the context's own stream; returns false (after a CHECK) on failure. */
static bool exec_run(tc_cuda_exec *x, void *dx, int64_t batch, int seed, const char *what) {
    float in[MAX_BATCH * COLS], v[MAX_BATCH * COLS], hv[MAX_BATCH * COLS], ht[MAX_BATCH * COLS];
    tc_error err;
    tc_error_clear(&err);
    fill_x(in, batch, seed);
    reference(in, batch, hv, ht);
    if (!upload(dx, in, TC_F32, batch * COLS)) return false;
    tc_tensor t = x_tensor(TC_F32, batch, dx), o;
    tc_status st = tc_cuda_exec_run(x, &t, NULL, NULL, &err);
    if (st == TC_OK) st = tc_cuda_exec_sync(x, NULL, &err);
    CHECK_MSG(st == TC_OK, "%s (batch %lld): %s", what, (long long)batch, err.msg);
    if (st != TC_OK) return false;
    tc_cuda_exec_output(x, 0, &o);
    CHECK(o.dims[0] == batch && o.dims[1] == COLS);
    if (!download(v, o.data, TC_F32, batch * COLS)) return false;
    int64_t bad = first_mismatch(v, hv, batch * COLS, 0, 0);
    CHECK_MSG(bad < 0, "%s (batch %lld): v[%lld] = %g, want %g", what, (long long)batch, (long long)bad,
              bad >= 0 ? v[bad] : 0, bad >= 0 ? hv[bad] : 0);
    return bad < 0;
}

/* Two batch sizes back and forth: one warm-up and one capture each, then replays; a new input
 * pointer captures again, the old one replays its own graph; more than 8 shape sets evict. */
static void test_dynamic_shapes_and_graph_cache(void) {
    tc_graph_t *g = make_graph(TC_F32);
    tc_build_options o = cuda_options();
    tc_cuda_engine *ce = NULL;
    tc_cuda_exec *x = NULL;
    void *dx = NULL, *dx2 = NULL;
    tc_error err;
    tc_error_clear(&err);
    bool ok = g && tc_cuda_engine_create((const tc_graph *)g, &o, &ce, &err) == TC_OK &&
              tc_cuda_exec_create(ce, &x, &err) == TC_OK && cudaMalloc(&dx, MAX_BATCH * COLS * 4) == cudaSuccess &&
              cudaMalloc(&dx2, MAX_BATCH * COLS * 4) == cudaSuccess;
    CHECK_MSG(ok, "creating the executor: %s", err.msg);
    const int64_t seq[] = {2, 7, 2, 7, 2, 7};
    for (int i = 0; ok && i < 6; i++) ok = exec_run(x, dx, seq[i], i, "back and forth");
    tc_cuda_exec_stats s;
    tc_cuda_exec_get_stats(x, &s);
    printf("     graphs %s; after 2,7,2,7,2,7: warmups %llu, hits %llu, captures %llu, launches %llu, eager %llu\n",
           s.graphs_enabled ? "on" : "off (TENSORC_CUDA_GRAPHS=0 or TENSORC_CUDA_SYNC=1)", (unsigned long long)s.warmups,
           (unsigned long long)s.shape_set_hits, (unsigned long long)s.captures, (unsigned long long)s.graph_launches,
           (unsigned long long)s.eager_runs);
    if (ok) {
        CHECK(s.warmups == 2 && s.shape_set_hits == 4 && s.shape_sets == 2 && s.runs == 6);
        if (s.graphs_enabled) CHECK_MSG(s.captures == 2 && s.graph_launches == 4 && s.eager_runs == 2,
                                        "captures %llu, launches %llu", (unsigned long long)s.captures,
                                        (unsigned long long)s.graph_launches);
        else CHECK(s.graph_launches == 0 && s.eager_runs == 6);
    }
    /* another input buffer: a new capture; back to the first: its graph replays */
    uint64_t caps = s.captures;
    ok = ok && exec_run(x, dx2, 7, 40, "new input pointer") && exec_run(x, dx, 7, 41, "old input pointer");
    tc_cuda_exec_get_stats(x, &s);
    if (ok && s.graphs_enabled)
        CHECK_MSG(s.captures == caps + 1, "captures %llu, want %llu", (unsigned long long)s.captures,
                  (unsigned long long)caps + 1);
    /* ten sizes: the cache holds the 8 most recent */
    for (int b = 20; ok && b < 30; b++) ok = exec_run(x, dx, b, b, "many sizes");
    for (int b = 29; ok && b >= 20; b--) ok = exec_run(x, dx, b, b + 1, "many sizes again");
    tc_cuda_exec_get_stats(x, &s);
    CHECK(s.shape_sets == TC_CUDA_MAX_SHAPE_SETS);
    ok = ok && exec_run(x, dx, MAX_BATCH, 3, "largest size") && exec_run(x, dx, 1, 4, "smallest size");
    printf("     arena %zu bytes, outputs %zu bytes, scratch %zu bytes, reallocations %llu\n", s.arena_bytes,
           s.output_bytes, s.scratch_bytes, (unsigned long long)s.reallocations);
    tc_cuda_exec_free(x);
    tc_cuda_engine_free(ce);
    tc_graph_free(g);
    cudaFree(dx);
    cudaFree(dx2);
}

static void test_graphs_can_be_disabled(void) {
    const char *old = getenv("TENSORC_CUDA_GRAPHS");
    char saved[64] = "";
    if (old) snprintf(saved, sizeof saved, "%s", old);
    setenv("TENSORC_CUDA_GRAPHS", "0", 1);
    tc_graph_t *g = make_graph(TC_F32);
    tc_build_options o = cuda_options();
    tc_cuda_engine *ce = NULL;
    tc_cuda_exec *x = NULL;
    void *dx = NULL;
    tc_error err;
    tc_error_clear(&err);
    bool ok = g && tc_cuda_engine_create((const tc_graph *)g, &o, &ce, &err) == TC_OK &&
              tc_cuda_exec_create(ce, &x, &err) == TC_OK && cudaMalloc(&dx, MAX_BATCH * COLS * 4) == cudaSuccess;
    if (old) setenv("TENSORC_CUDA_GRAPHS", saved, 1);
    else unsetenv("TENSORC_CUDA_GRAPHS");
    CHECK_MSG(ok, "creating the executor: %s", err.msg);
    for (int i = 0; ok && i < 3; i++) ok = exec_run(x, dx, 9, i, "graphs off");
    tc_cuda_exec_stats s;
    tc_cuda_exec_get_stats(x, &s);
    if (ok) CHECK(!s.graphs_enabled && s.graph_launches == 0 && s.captures == 0 && s.eager_runs == 3);
    tc_cuda_exec_free(x);
    tc_cuda_engine_free(ce);
    tc_graph_free(g);
    cudaFree(dx);
}

static void expect_error(gpu *q, const tc_tensor *in, tc_status want, const char *needle, const char *what) {
    CHECK(tc_context_set_input(q->c, 0, in) == TC_OK);
    tc_status st = tc_context_execute(q->c);
    const char *msg = tc_context_last_error(q->c);
    CHECK_MSG(st == want && strstr(msg, needle) != NULL, "%s: status %d (want %d), message \"%s\" (want \"%s\")", what,
              (int)st, (int)want, msg, needle);
}

static void test_bad_inputs_are_reported(void) {
    gpu q;
    if (!gpu_open(&q, TC_F32)) {
        gpu_close(&q);
        return;
    }
    float host[4 * COLS] = {0};
    tc_tensor in = x_tensor(TC_F16, 4, q.dx);
    expect_error(&q, &in, TC_ERR_DTYPE, "input 'x' must be f32, got f16", "wrong dtype");
    in = x_tensor(TC_F32, 4, host);
    expect_error(&q, &in, TC_ERR_INVALID_ARGUMENT, "host memory", "host pointer");
    in = x_tensor(TC_F32, MAX_BATCH + 1, q.dx);
    expect_error(&q, &in, TC_ERR_SHAPE, "outside the range [1, 64]", "batch out of range");
    in = x_tensor(TC_F32, 4, q.dx);
    in.dims[1] = COLS + 1;
    expect_error(&q, &in, TC_ERR_SHAPE, "dim 1 must be 8", "wrong fixed dim");
    in = x_tensor(TC_F32, 4, q.dx);
    in.rank = 3;
    expect_error(&q, &in, TC_ERR_SHAPE, "must have rank 2", "wrong rank");
    in = x_tensor(TC_F32, 4, NULL);
    expect_error(&q, &in, TC_ERR_INVALID_ARGUMENT, "has no data", "NULL data");
    /* a bound output of the wrong shape */
    in = x_tensor(TC_F32, 4, q.dx);
    tc_tensor bad = x_tensor(TC_F32, 5, q.dx);
    CHECK(tc_context_set_output(q.c, 0, &bad) == TC_OK);
    expect_error(&q, &in, TC_ERR_SHAPE, "the bound buffer is f32[5, 8] but the result is f32[4, 8]", "bound output shape");
    /* a bound output that overlaps the input */
    bad = x_tensor(TC_F32, 4, q.dx);
    CHECK(tc_context_set_output(q.c, 0, &bad) == TC_OK);
    expect_error(&q, &in, TC_ERR_INVALID_ARGUMENT, "overlaps input 'x'", "bound output overlaps input");
    CHECK(tc_context_set_output(q.c, 0, NULL) == TC_OK);
    /* the context still works */
    float x[MAX_BATCH * COLS], v[MAX_BATCH * COLS], hv[MAX_BATCH * COLS], ht[MAX_BATCH * COLS];
    fill_x(x, 4, 99);
    reference(x, 4, hv, ht);
    CHECK(upload(q.dx, x, TC_F32, 4 * COLS));
    CHECK(tc_context_set_input(q.c, 0, &in) == TC_OK);
    tc_status st = tc_context_execute(q.c);
    CHECK_MSG(st == TC_OK, "after errors: %s", tc_context_last_error(q.c));
    tc_tensor o;
    if (st == TC_OK && tc_context_get_output(q.c, 0, &o) == TC_OK && download(v, o.data, TC_F32, 4 * COLS))
        CHECK(first_mismatch(v, hv, 4 * COLS, 0, 0) < 0);
    gpu_close(&q);
}

static size_t free_bytes(void) {
    size_t fr = 0, tot = 0;
    cudaDeviceSynchronize();
    cudaMemGetInfo(&fr, &tot);
    return fr;
}

/* Device memory must not grow over 1,000 executions of one engine and over 100 build/free
 * cycles. cudaMemGetInfo counts in the driver's 2 MiB pages and other processes may allocate
 * meanwhile, so 4 MiB of difference is tolerated; a leak of one arena, output or weight blob per
 * run or cycle would be 1,000 or 100 times larger than that. */
#define HYGIENE_TOLERANCE ((size_t)4 << 20)

static void test_no_device_memory_growth(void) {
    gpu q;
    if (!gpu_open(&q, TC_F32)) {
        gpu_close(&q);
        return;
    }
    float x[MAX_BATCH * COLS];
    fill_x(x, 32, 5);
    CHECK(upload(q.dx, x, TC_F32, 32 * COLS));
    tc_tensor in = x_tensor(TC_F32, 32, q.dx);
    CHECK(tc_context_set_input(q.c, 0, &in) == TC_OK);
    tc_status st = TC_OK;
    for (int i = 0; i < 3 && st == TC_OK; i++) st = tc_context_execute(q.c);
    size_t before = free_bytes();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int done = 0;
    for (; done < 1000 && st == TC_OK; done++) st = tc_context_execute(q.c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t after = free_bytes();
    CHECK_MSG(st == TC_OK, "execution %d: %s", done, tc_context_last_error(q.c));
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / (done ? done : 1);
    printf("     1000 executions: %.1f us each (execute = enqueue + sync); free device memory %zu -> %zu bytes\n", us,
           before, after);
    CHECK_MSG(after + HYGIENE_TOLERANCE >= before, "device memory grew by %zu bytes over 1000 executions",
              before - after);
    gpu_close(&q);

    /* one cycle first: lazily loaded modules and library state stay resident afterwards */
    tc_build_options o = cuda_options();
    tc_graph_t *g = make_graph(TC_F32);
    void *dx = NULL;
    CHECK(g && cudaMalloc(&dx, MAX_BATCH * COLS * 4) == cudaSuccess && upload(dx, x, TC_F32, 32 * COLS));
    in = x_tensor(TC_F32, 32, dx);
    size_t before_cycles = 0;
    int cycle = 0;
    for (; cycle <= 100 && g && dx; cycle++) {
        if (cycle == 1) before_cycles = free_bytes();
        char eb[512] = "";
        tc_engine_t *e = NULL;
        tc_context_t *c = NULL;
        st = tc_engine_build(g, &o, &e, eb, sizeof eb);
        if (st == TC_OK) st = tc_context_create(e, &c);
        if (st == TC_OK) st = tc_context_set_input(c, 0, &in);
        for (int r = 0; r < 3 && st == TC_OK; r++) st = tc_context_execute(c); /* warm-up, capture, replay */
        if (st != TC_OK) CHECK_MSG(0, "cycle %d: %s %s", cycle, eb, c ? tc_context_last_error(c) : "");
        tc_context_free(c);
        tc_engine_free(e);
        if (st != TC_OK) break;
    }
    size_t after_cycles = free_bytes();
    printf("     100 build/run/free cycles: free device memory %zu -> %zu bytes\n", before_cycles, after_cycles);
    if (cycle > 100)
        CHECK_MSG(after_cycles + HYGIENE_TOLERANCE >= before_cycles, "device memory grew by %zu bytes over 100 cycles",
                  before_cycles - after_cycles);
    tc_graph_free(g);
    cudaFree(dx);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const int add = tc_op_find("add.Tensor"), mul = tc_op_find("mul.Tensor");
    const bool have_kernels = tc_cuda_kernel_for(add) && tc_cuda_kernel_for(mul);
    int count = 0;
    tc_error err;
    tc_error_clear(&err);
    const bool have_gpu = tc_cuda_device_count(&count, &err) == TC_OK && count > 0;

    test_unsupported_nodes_are_named();
    test_build_without_device_fails_cleanly(have_gpu, have_kernels);
    if (!have_gpu) {
        printf("SKIP: no CUDA device (%s): only the checks that need no GPU ran\n", err.msg[0] ? err.msg : "0 devices");
        TEST_MAIN_END();
    }
    if (!have_kernels) {
        printf("SKIP: the CUDA backend has no kernel for add.Tensor and mul.Tensor yet: GPU executor tests not run\n");
        TEST_MAIN_END();
    }
    test_matches_cpu_and_hand_values(TC_F32);
    test_matches_cpu_and_hand_values(TC_F16);
    test_matches_cpu_and_hand_values(TC_BF16);
    test_bound_outputs_keep_guards();
    test_caller_stream_ordering();
    test_dynamic_shapes_and_graph_cache();
    test_graphs_can_be_disabled();
    test_bad_inputs_are_reported();
    test_no_device_memory_growth();
    TEST_MAIN_END();
}

#endif
