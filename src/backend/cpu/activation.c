/* CPU kernels for the activation ops. Floating inputs are computed in f32 (f64 for f64) and
 * rounded once to the output type; relu and hardtanh also run exactly on integers. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

typedef struct {
    int op;
    const float *x;
    float *y;
    const double *xd;
    double *yd;
    double p0, p1, p2; /* the op's Scalar parameters */
    bool tanh_approx;
} act_job;

/* One macro body serves f32 and f64; T names the type and the math functions are type-suffixed
 * through the F() wrapper. */
#define ACT_LOOP(T, X, Y, F)                                                                                 \
    do {                                                                                                     \
        const T p0 = (T)j->p0, p1 = (T)j->p1, p2 = (T)j->p2;                                                 \
        switch (j->op) {                                                                                     \
        case TC_OP_RELU:                                                                                     \
            for (int64_t i = b; i < e; i++) Y[i] = X[i] < 0 ? (T)0 : X[i];                                   \
            break;                                                                                           \
        case TC_OP_HARDTANH:                                                                                 \
            for (int64_t i = b; i < e; i++) {                                                                \
                T v = X[i];                                                                                  \
                Y[i] = v != v ? v : v < p0 ? p0 : v > p1 ? p1 : v;                                           \
            }                                                                                                \
            break;                                                                                           \
        case TC_OP_SIGMOID:                                                                                  \
            for (int64_t i = b; i < e; i++) Y[i] = (T)1 / ((T)1 + F(exp)(-X[i]));                            \
            break;                                                                                           \
        case TC_OP_GELU:                                                                                     \
            if (j->tanh_approx) {                                                                            \
                const T k = (T)0.7978845608028654, c3 = (T)0.044715;                                         \
                for (int64_t i = b; i < e; i++) {                                                            \
                    T v = X[i];                                                                              \
                    Y[i] = (T)0.5 * v * ((T)1 + F(tanh)(k * (v + c3 * v * v * v)));                         \
                }                                                                                            \
            } else {                                                                                         \
                for (int64_t i = b; i < e; i++) Y[i] = (T)0.5 * X[i] * ((T)1 + F(erf)(X[i] * (T)0.70710678118654752440)); \
            }                                                                                                \
            break;                                                                                           \
        case TC_OP_LEAKY_RELU:                                                                               \
            for (int64_t i = b; i < e; i++) Y[i] = X[i] > 0 ? X[i] : X[i] * p0;                              \
            break;                                                                                           \
        case TC_OP_ELU:                                                                                      \
            for (int64_t i = b; i < e; i++) {                                                                \
                T v = X[i];                                                                                  \
                Y[i] = v <= 0 ? (F(expm1)(v * p2)) * p0 * p1 : v * p1;                                      \
            }                                                                                                \
            break;                                                                                           \
        case TC_OP_SILU:                                                                                     \
            for (int64_t i = b; i < e; i++) Y[i] = X[i] / ((T)1 + F(exp)(-X[i]));                            \
            break;                                                                                           \
        case TC_OP_HARDSWISH:                                                                                \
            for (int64_t i = b; i < e; i++) {                                                                \
                T v = X[i], r = v + 3;                                                                       \
                r = r < 0 ? 0 : r > 6 ? 6 : r;                                                               \
                Y[i] = v != v ? v : v * r / 6;                                                               \
            }                                                                                                \
            break;                                                                                           \
        case TC_OP_HARDSIGMOID:                                                                              \
            for (int64_t i = b; i < e; i++) {                                                                \
                T v = X[i], r = v + 3;                                                                       \
                r = r < 0 ? 0 : r > 6 ? 6 : r;                                                               \
                Y[i] = v != v ? v : r / 6;                                                                   \
            }                                                                                                \
            break;                                                                                           \
        default: TC_ASSERT(0 && "not an activation op");                                                     \
        }                                                                                                    \
    } while (0)

#define F32FN(name) name##f
#define F64FN(name) name

static void act_chunk(void *ctx, int64_t b, int64_t e) {
    const act_job *j = ctx;
    if (j->y) ACT_LOOP(float, j->x, j->y, F32FN);
    else ACT_LOOP(double, j->xd, j->yd, F64FN);
}

static int64_t bound_to_int(double v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

/* relu and hardtanh on integer tensors: exact, bounds truncated toward zero as PyTorch casts them. */
static void act_int(const act_job *j, const tc_cpu_tensor *x, tc_cpu_tensor *y) {
    int64_t lo = j->op == TC_OP_RELU ? 0 : bound_to_int(j->p0);
    int64_t hi = j->op == TC_OP_RELU ? INT64_MAX : bound_to_int(j->p1);
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t v = tc_load_i64(x->data, x->dtype, i);
        v = v < lo ? lo : v > hi ? hi : v;
        tc_store_i64(y->data, y->dtype, i, v);
    }
}

static tc_status cpu_activation(const tc_cpu_call *c) {
    const tc_node *n = c->node;
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    act_job j = {.op = n->op};
    switch (n->op) {
    case TC_OP_HARDTANH:
    case TC_OP_ELU:
        j.p0 = tc_node_float(n, 1), j.p1 = tc_node_float(n, 2);
        if (n->op == TC_OP_ELU) j.p2 = tc_node_float(n, 3);
        break;
    case TC_OP_LEAKY_RELU: j.p0 = tc_node_float(n, 1); break;
    case TC_OP_GELU: j.tanh_approx = strcmp(tc_node_str(n, 1), "tanh") == 0; break;
    default: break;
    }
    if (!tc_dtype_is_float(y->dtype)) {
        act_int(&j, x, y);
        return TC_OK;
    }
    if (y->dtype == TC_F64) {
        double *tmp = NULL;
        if (x->dtype != TC_F64) {
            tmp = tc_cpu_scratch(c, 0, (size_t)x->numel * sizeof(double));
            if (!tmp) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
            tc_convert(x->data, x->dtype, tmp, TC_F64, x->numel);
        }
        j.xd = tmp ? tmp : x->data;
        j.yd = y->data;
    } else {
        j.x = tc_cpu_as_f32(c, x, 0);
        j.y = tc_cpu_out_f32(c, y, 1);
        if (!j.x || !j.y) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
    }
    tc_parallel_for(y->numel, 1 << 14, act_chunk, &j);
    if (j.y) tc_cpu_store_f32(y, j.y);
    return TC_OK;
}

void tc_cpu_register_activation(tc_cpu_kernel *t) {
    static const int ops[] = {TC_OP_RELU, TC_OP_HARDTANH, TC_OP_SIGMOID, TC_OP_GELU,        TC_OP_LEAKY_RELU,
                              TC_OP_ELU,  TC_OP_SILU,     TC_OP_HARDSWISH, TC_OP_HARDSIGMOID};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) t[ops[i]] = cpu_activation;
}
