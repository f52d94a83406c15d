/* CPU kernels for elementwise ops. Floating inputs are computed in f32 (f64 for f64) and rounded
 * once to the output type, as PyTorch does for f16 and bf16; integer inputs stay exact. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>

typedef struct {
    int op;
    const tc_cpu_tensor *x;
    tc_cpu_tensor *y;
    const float *xf;
    float *yf;
} unary_job;

static float unary_f32(int op, float v) {
    switch (op) {
    case TC_OP_ABS: return fabsf(v);
    case TC_OP_NEG: return -v;
    case TC_OP_EXP: return expf(v);
    case TC_OP_LOG: return logf(v);
    case TC_OP_SQRT: return sqrtf(v);
    case TC_OP_RSQRT: return 1.0f / sqrtf(v);
    case TC_OP_RECIPROCAL: return 1.0f / v;
    case TC_OP_SIN: return sinf(v);
    case TC_OP_COS: return cosf(v);
    case TC_OP_TANH: return tanhf(v);
    case TC_OP_ERF: return erff(v);
    case TC_OP_FLOOR: return floorf(v);
    case TC_OP_CEIL: return ceilf(v);
    case TC_OP_ROUND: return nearbyintf(v); /* half to even under the default rounding mode */
    case TC_OP_SIGN: return (float)((v > 0) - (v < 0)); /* NaN and -0 give 0, as in PyTorch */
    default: TC_ASSERT(0 && "not a float unary op");
    }
    return 0;
}

static double unary_f64(int op, double v) {
    switch (op) {
    case TC_OP_ABS: return fabs(v);
    case TC_OP_NEG: return -v;
    case TC_OP_EXP: return exp(v);
    case TC_OP_LOG: return log(v);
    case TC_OP_SQRT: return sqrt(v);
    case TC_OP_RSQRT: return 1.0 / sqrt(v);
    case TC_OP_RECIPROCAL: return 1.0 / v;
    case TC_OP_SIN: return sin(v);
    case TC_OP_COS: return cos(v);
    case TC_OP_TANH: return tanh(v);
    case TC_OP_ERF: return erf(v);
    case TC_OP_FLOOR: return floor(v);
    case TC_OP_CEIL: return ceil(v);
    case TC_OP_ROUND: return nearbyint(v);
    case TC_OP_SIGN: return (double)((v > 0) - (v < 0));
    default: TC_ASSERT(0 && "not a float unary op");
    }
    return 0;
}

static int64_t unary_i64(int op, int64_t v) {
    switch (op) {
    case TC_OP_ABS: return v < 0 ? -v : v;
    case TC_OP_NEG: return -v;
    case TC_OP_FLOOR:
    case TC_OP_CEIL:
    case TC_OP_ROUND: return v;
    case TC_OP_SIGN: return (v > 0) - (v < 0);
    default: TC_ASSERT(0 && "not an integer unary op");
    }
    return 0;
}

static void unary_chunk(void *ctx, int64_t b, int64_t e) {
    unary_job *j = ctx;
    const tc_cpu_tensor *x = j->x;
    tc_cpu_tensor *y = j->y;
    if (j->op == TC_OP_LOGICAL_NOT) {
        for (int64_t i = b; i < e; i++) ((uint8_t *)y->data)[i] = tc_load_f64(x->data, x->dtype, i) == 0;
    } else if (j->op == TC_OP_ISNAN) {
        for (int64_t i = b; i < e; i++) ((uint8_t *)y->data)[i] = isnan(tc_load_f64(x->data, x->dtype, i));
    } else if (y->dtype == TC_F64) {
        for (int64_t i = b; i < e; i++) ((double *)y->data)[i] = unary_f64(j->op, tc_load_f64(x->data, x->dtype, i));
    } else if (j->xf) {
        for (int64_t i = b; i < e; i++) j->yf[i] = unary_f32(j->op, j->xf[i]);
    } else {
        for (int64_t i = b; i < e; i++) tc_store_i64(y->data, y->dtype, i, unary_i64(j->op, tc_load_i64(x->data, x->dtype, i)));
    }
}

static tc_status cpu_unary(const tc_cpu_call *c) {
    unary_job j = {c->node->op, tc_cpu_in(c, 0), c->out[0], NULL, NULL};
    bool is_pred = j.op == TC_OP_LOGICAL_NOT || j.op == TC_OP_ISNAN;
    if (!is_pred && j.y->dtype != TC_F64 && tc_dtype_is_float(j.y->dtype)) {
        j.xf = tc_cpu_as_f32(c, j.x, 0);
        j.yf = tc_cpu_out_f32(c, j.y, 1);
        if (!j.xf || !j.yf) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
    } else if (!is_pred && j.y->dtype == TC_BOOL) {
        return tc_cpu_fail(c, TC_ERR_DTYPE, "not defined for bool tensors");
    }
    tc_parallel_for(j.x->numel, 1 << 15, unary_chunk, &j);
    if (j.yf) tc_cpu_store_f32(j.y, j.yf);
    return TC_OK;
}

void tc_cpu_register_elementwise(tc_cpu_kernel *t) {
    static const int unary_ops[] = {TC_OP_ABS, TC_OP_NEG, TC_OP_EXP, TC_OP_LOG, TC_OP_SQRT, TC_OP_RSQRT,
                                    TC_OP_RECIPROCAL, TC_OP_SIN, TC_OP_COS, TC_OP_TANH, TC_OP_ERF, TC_OP_FLOOR,
                                    TC_OP_CEIL, TC_OP_ROUND, TC_OP_SIGN, TC_OP_LOGICAL_NOT, TC_OP_ISNAN};
    for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++) t[unary_ops[i]] = cpu_unary;
}
