/* Plan choices of CUDA engines: an f16 attention step runs on cuDNN's fused attention
 * (TENSORC_CUDNN_SDPA=1) and matches
 * the CPU backend; the step descriptions name the stored plans; an engine file carries them as step
 * records (cuDNN plan JSON, cuBLASLt algorithm bytes) and a loaded engine gives bit-identical
 * outputs; TENSORC_PLAN_RECORDS=0 writes none; a linear layer after the attention gets its cuBLASLt
 * record too. Skips visibly without a GPU or a CUDA build. */
#define _POSIX_C_SOURCE 200809L /* setenv */
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
#include "backend/cuda/records.h"
#include "engine/serialize.h"
#include "step_records.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, H = 4, L = 197, E = 64, N_OUT = 24 };
#define QKV_NUMEL ((size_t)B * H * L * E)
#define OUT_NUMEL ((size_t)B * H * L * N_OUT)

static tc_arg T(tc_value_t *v) { return (tc_arg){.kind = TC_ARG_TENSOR, .u.tensor = v}; }

static uint16_t g_q[QKV_NUMEL], g_k[QKV_NUMEL], g_v[QKV_NUMEL], g_w[N_OUT * E];

/* Deterministic values in about [-2, 2], rounded to f16. */
static void fill(uint16_t *p, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = tc_f32_to_f16(((float)(s >> 8) / 16777216.0f) * 4.0f - 2.0f);
    }
}

/* out = linear(sdpa(q, k, v), w): attention on cuDNN, the product on cuBLASLt. */
static tc_graph_t *make_graph(void) {
    tc_graph_t *g;
    if (tc_graph_create(&g) != TC_OK) return NULL;
    tc_value_t *q, *k, *v, *w, *a, *y;
    const tc_dim d[4] = {B, H, L, E};
    bool ok = tc_graph_add_input(g, "q", TC_F16, 4, d, &q) == TC_OK &&
              tc_graph_add_input(g, "k", TC_F16, 4, d, &k) == TC_OK &&
              tc_graph_add_input(g, "v", TC_F16, 4, d, &v) == TC_OK &&
              tc_graph_add_constant(g, "w", TC_F16, 2, (tc_dim[]){N_OUT, E}, g_w, TC_CONSTANT_BORROW, &w) == TC_OK &&
              tc_graph_add_node(g, "scaled_dot_product_attention", "attn", 3, (tc_arg[]){T(q), T(k), T(v)}, 1, &a,
                                NULL) == TC_OK &&
              tc_graph_add_node(g, "linear", "proj", 2, (tc_arg[]){T(a), T(w)}, 1, &y, NULL) == TC_OK &&
              tc_graph_mark_output(g, y, "y") == TC_OK;
    if (!ok) {
        fprintf(stderr, "graph: %s\n", tc_graph_last_error(g));
        tc_graph_free(g);
        return NULL;
    }
    return g;
}

static tc_tensor tensor4(void *data) {
    tc_tensor t = {.dtype = TC_F16, .rank = 4, .dims = {B, H, L, E}, .data = data};
    return t;
}

/* Runs e on the CPU inputs (copied to the device for a CUDA engine); the output's f16 bits. */
static bool run(tc_engine_t *e, bool cuda, uint16_t *out) {
    tc_context_t *c = NULL;
    void *dev[3] = {NULL, NULL, NULL};
    const uint16_t *host[3] = {g_q, g_k, g_v};
    bool ok = tc_context_create(e, &c) == TC_OK;
    for (int i = 0; ok && i < 3; i++) {
        void *p = (void *)host[i];
        if (cuda) {
            ok = tc_device_alloc(0, QKV_NUMEL * 2, &dev[i]) == TC_OK &&
                 tc_device_copy(dev[i], host[i], QKV_NUMEL * 2, TC_COPY_HOST_TO_DEVICE, NULL) == TC_OK;
            p = dev[i];
        }
        tc_tensor t = tensor4(p);
        ok = ok && tc_context_set_input(c, i, &t) == TC_OK;
    }
    tc_tensor o;
    ok = ok && tc_context_execute(c) == TC_OK && tc_context_get_output(c, 0, &o) == TC_OK;
    ok = ok && o.dtype == TC_F16 && o.rank == 4 && o.dims[3] == N_OUT;
    if (ok && cuda) ok = tc_device_copy(out, o.data, OUT_NUMEL * 2, TC_COPY_DEVICE_TO_HOST, NULL) == TC_OK;
    else if (ok) memcpy(out, o.data, OUT_NUMEL * 2);
    if (!ok) fprintf(stderr, "run (%s): %s\n", cuda ? "cuda" : "cpu", c ? tc_context_last_error(c) : "no context");
    tc_context_free(c);
    for (int i = 0; i < 3; i++) tc_device_free(dev[i]);
    return ok;
}

static tc_engine_t *build(tc_graph_t *g, tc_backend_kind backend) {
    tc_build_options o;
    tc_build_options_init(&o);
    o.backend = backend;
    tc_engine_t *e = NULL;
    char err[1024];
    if (tc_engine_build(g, &o, &e, err, sizeof err) != TC_OK) fprintf(stderr, "build: %s\n", err);
    return e;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int count = 0;
    tc_error err;
    tc_error_clear(&err);
    if (tc_cuda_device_count(&count, &err) != TC_OK || count == 0) {
        printf("SKIP: no CUDA device (%s)\n", err.msg[0] ? err.msg : "0 devices");
        TEST_MAIN_END();
    }
    setenv("TENSORC_CUDNN_SDPA", "1", 1); /* the default; set in case the environment turned it off */
    fill(g_q, QKV_NUMEL, 1);
    fill(g_k, QKV_NUMEL, 2);
    fill(g_v, QKV_NUMEL, 3);
    fill(g_w, (size_t)N_OUT * E, 4);
    for (size_t i = 0; i < QKV_NUMEL; i++) /* q/sqrt(E) of about 0.25: attention that is not uniform */
        g_q[i] = tc_f32_to_f16(tc_f16_to_f32(g_q[i]) * 2.0f);
    tc_graph_t *g = make_graph();
    CHECK(g != NULL);
    if (!g) TEST_MAIN_END();

    static uint16_t want[OUT_NUMEL], got[OUT_NUMEL], again[OUT_NUMEL];
    tc_engine_t *cpu = build(g, TC_BACKEND_CPU), *gpu = build(g, TC_BACKEND_CUDA);
    CHECK(cpu && gpu);
    CHECK(cpu && run(cpu, false, want));
    CHECK(gpu && run(gpu, true, got));
    double maxerr = 0, scale = 0;
    for (size_t i = 0; i < OUT_NUMEL; i++) {
        double a = tc_f16_to_f32(got[i]), b = tc_f16_to_f32(want[i]);
        maxerr = fmax(maxerr, fabs(a - b));
        scale = fmax(scale, fabs(b));
    }
    CHECK_MSG(scale > 0 && maxerr <= 1e-2 * scale, "max abs err %g, scale %g", maxerr, scale);

    /* the steps name the plans the first run chose */
    tc_step_desc d0 = {0}, d1 = {0};
    if (gpu) {
        tc_engine_describe_step(gpu, 0, &d0);
        tc_engine_describe_step(gpu, 1, &d1);
    }
    CHECK_MSG(strncmp(d0.implementation, "cuda:cudnn sdpa engine", 22) == 0, "attention step: %s", d0.implementation);
    CHECK_MSG(strncmp(d1.implementation, "cuda:cublaslt algo", 18) == 0, "linear step: %s", d1.implementation);

    /* the file carries them; the loaded engine runs them bit for bit */
    void *data = NULL;
    size_t size = 0;
    CHECK(gpu && tc_engine_serialize(gpu, &data, &size) == TC_OK);
    if (data) {
        CHECK_MSG(count_step_records(data, size, TC_RECORD_CUDNN_PLAN) == 1, "cuDNN records: %d",
                  count_step_records(data, size, TC_RECORD_CUDNN_PLAN));
        CHECK(count_step_records(data, size, TC_RECORD_CUBLASLT_ALGO) == 1);
        tc_engine_t *loaded = NULL;
        char msg[1024];
        CHECK_MSG(tc_engine_deserialize(data, size, NULL, &loaded, msg, sizeof msg) == TC_OK, "%s", msg);
        if (loaded) {
            tc_step_desc l0 = {0};
            tc_engine_describe_step(loaded, 0, &l0);
            CHECK_MSG(strcmp(l0.implementation, d0.implementation) == 0, "loaded: %s", l0.implementation);
            CHECK(run(loaded, true, again) && memcmp(again, got, sizeof got) == 0);
            /* and it made both plans from the file, none afresh */
            uint64_t from = 0, rechosen = 0;
            tc_cuda_engine_plan_counts(tc_engine_cuda(loaded), &from, &rechosen);
            CHECK_MSG(from == 2 && rechosen == 0, "plans from records %llu, chosen again %llu",
                      (unsigned long long)from, (unsigned long long)rechosen);
            tc_engine_free(loaded);
        }
        tc_free_buffer(data);
    }

    /* with the table off, nothing is stored and the file has no records */
    setenv("TENSORC_PLAN_RECORDS", "0", 1);
    tc_engine_t *plain = build(g, TC_BACKEND_CUDA);
    unsetenv("TENSORC_PLAN_RECORDS");
    CHECK(plain && run(plain, true, again) && memcmp(again, got, sizeof got) == 0);
    if (plain && tc_engine_serialize(plain, &data, &size) == TC_OK) {
        tc_engine_info info;
        CHECK(tc_engine_file_info(data, size, &info, &err) == TC_OK && info.n_records == 0);
        tc_free_buffer(data);
    }
    tc_engine_free(plain);

    /* TENSORC_CUDNN_SDPA=0: our own kernel, within the same tolerance */
    setenv("TENSORC_CUDNN_SDPA", "0", 1);
    tc_engine_t *own = build(g, TC_BACKEND_CUDA);
    CHECK(own && run(own, true, again));
    double own_err = 0;
    for (size_t i = 0; i < OUT_NUMEL; i++)
        own_err = fmax(own_err, fabs((double)tc_f16_to_f32(again[i]) - tc_f16_to_f32(want[i])));
    CHECK_MSG(own_err <= 1e-2 * scale, "own kernel: max abs err %g", own_err);
    if (own) {
        tc_step_desc o0 = {0};
        tc_engine_describe_step(own, 0, &o0);
        CHECK_MSG(strncmp(o0.implementation, "cuda:cudnn", 10) != 0, "own kernel step: %s", o0.implementation);
    }
    tc_engine_free(own);

    tc_engine_free(cpu);
    tc_engine_free(gpu);
    tc_graph_free(g);
    TEST_MAIN_END();
}

#endif
