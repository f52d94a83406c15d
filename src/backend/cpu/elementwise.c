/* CPU kernels for elementwise ops: unary math, and binary/ternary ops with broadcasting and type
 * promotion. Floating inputs are computed in f32 (f64 for f64) and rounded once to the output type,
 * as PyTorch does for f16 and bf16; integer inputs stay exact and wrap on overflow. */
#include "backend/cpu/cpu.h"
#include "core/dtype.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

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

/* --- broadcasting binary and ternary ops ------------------------------------------------------
 * Every operand is first brought into one compute domain (f32, f64 or i64) after the cast to the
 * common dtype PyTorch performs; the loops then walk the output with one stride per operand, the
 * shape collapsed to as few dims as the operands' layouts allow. */

typedef enum { DOM_F32, DOM_F64, DOM_I64 } domain;

typedef enum {
    BK_ADD, BK_SUB, BK_MUL, BK_DIV, BK_DIV_TRUNC, BK_DIV_FLOOR, BK_POW, BK_MAX, BK_MIN, BK_REM,
    BK_EQ, BK_NE, BK_LT, BK_LE, BK_GT, BK_GE, BK_LAND, BK_LOR, BK_LXOR, BK_BAND, BK_BOR, BK_BXOR,
    BK_WHERE, BK_CLAMP,
} bkind;

#define MAX_OPERANDS 3

typedef struct {
    int rank; /* >= 1 */
    int64_t dims[TC_MAX_RANK];
    int64_t st[MAX_OPERANDS][TC_MAX_RANK];
} bplan;

typedef union {
    float f;
    double d;
    int64_t i;
    uint8_t b;
} scalar_val;

typedef struct {
    bkind kind;
    domain dom;
    int nin;
    const void *in[MAX_OPERANDS];
    void *out;
    bplan pl;
    float alpha_f;
    double alpha_d;
    int64_t alpha_i;
    tc_dtype qround; /* div trunc in f16/bf16: PyTorch rounds the quotient before truncating */
    scalar_val sv[MAX_OPERANDS];
} bjob;

static bool bk_is_pred(bkind k) { return k >= BK_EQ && k <= BK_LXOR; }

/* Output strides of each operand over the output shape (0 where broadcast), then size-1 dims
 * dropped and dims merged where every operand is contiguous across them. */
static void plan_broadcast(bplan *p, const tc_cpu_tensor *out, int nin, const int *ranks,
                           const int64_t (*dims)[TC_MAX_RANK]) {
    int r = out->rank;
    int64_t st[MAX_OPERANDS][TC_MAX_RANK];
    for (int k = 0; k < nin; k++) {
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int kd = ranks[k] - r + d;
            int64_t n = kd >= 0 ? dims[k][kd] : 1;
            st[k][d] = n == 1 ? 0 : s;
            s *= n;
        }
    }
    p->rank = 0;
    for (int d = 0; d < r; d++) {
        if (out->dims[d] == 1) continue;
        int q = p->rank;
        bool merge = q > 0;
        for (int k = 0; k < nin && merge; k++) merge = p->st[k][q - 1] == st[k][d] * out->dims[d];
        if (merge) {
            p->dims[q - 1] *= out->dims[d];
            for (int k = 0; k < nin; k++) p->st[k][q - 1] = st[k][d];
        } else {
            p->dims[q] = out->dims[d];
            for (int k = 0; k < nin; k++) p->st[k][q] = st[k][d];
            p->rank++;
        }
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->dims[0] = 1;
        for (int k = 0; k < nin; k++) p->st[k][0] = 0;
    }
}

/* x, y: the two operands of this element; the four variants let the compiler vectorize the
 * contiguous and scalar cases. */
#define BLOOP(T, TO, EXPR)                                                                           \
    do {                                                                                             \
        const T *A_ = (const T *)j->in[0] + off[0], *B_ = (const T *)j->in[1] + off[1];              \
        TO *O_ = (TO *)j->out + o;                                                                   \
        const int64_t sa_ = st[0], sb_ = st[1];                                                      \
        if (sa_ == 1 && sb_ == 1) {                                                                  \
            for (int64_t i_ = 0; i_ < n; i_++) { const T x = A_[i_], y = B_[i_]; O_[i_] = (TO)(EXPR); } \
        } else if (sa_ == 1 && sb_ == 0) {                                                           \
            const T y = B_[0];                                                                       \
            for (int64_t i_ = 0; i_ < n; i_++) { const T x = A_[i_]; O_[i_] = (TO)(EXPR); }         \
        } else if (sa_ == 0 && sb_ == 1) {                                                           \
            const T x = A_[0];                                                                       \
            for (int64_t i_ = 0; i_ < n; i_++) { const T y = B_[i_]; O_[i_] = (TO)(EXPR); }         \
        } else {                                                                                     \
            for (int64_t i_ = 0; i_ < n; i_++) {                                                     \
                const T x = A_[i_ * sa_], y = B_[i_ * sb_];                                          \
                O_[i_] = (TO)(EXPR);                                                                 \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* p, x, y: the three operands (condition or value, then two values). */
#define TLOOP(TP, T, TO, EXPR)                                                                       \
    do {                                                                                             \
        const TP *P_ = (const TP *)j->in[0] + off[0];                                                \
        const T *A_ = (const T *)j->in[1] + off[1], *B_ = (const T *)j->in[2] + off[2];              \
        TO *O_ = (TO *)j->out + o;                                                                   \
        const int64_t sp_ = st[0], sa_ = st[1], sb_ = st[2];                                         \
        if (sp_ == 1 && sa_ == 1 && sb_ == 1) {                                                      \
            for (int64_t i_ = 0; i_ < n; i_++) {                                                     \
                const TP p = P_[i_];                                                                 \
                const T x = A_[i_], y = B_[i_];                                                      \
                O_[i_] = (TO)(EXPR);                                                                 \
            }                                                                                        \
        } else {                                                                                     \
            for (int64_t i_ = 0; i_ < n; i_++) {                                                     \
                const TP p = P_[i_ * sp_];                                                           \
                const T x = A_[i_ * sa_], y = B_[i_ * sb_];                                          \
                O_[i_] = (TO)(EXPR);                                                                 \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* Float helpers for T = float (suffix f) and double (suffix d). Floor division follows Python:
 * the remainder decides the correction and the result is rounded to the nearest integer. */
#define FLOAT_HELPERS(T, S, FMOD, FLOOR, COPYSIGN)                                                   \
    static inline T fmaxn_##S(T a, T b) { return (a != a || a > b) ? a : b; }                        \
    static inline T fminn_##S(T a, T b) { return (a != a || a < b) ? a : b; }                        \
    static inline T frem_##S(T a, T b) {                                                             \
        T m = FMOD(a, b);                                                                            \
        if (m != 0 && ((b < 0) != (m < 0))) m += b;                                                  \
        return m;                                                                                    \
    }                                                                                                \
    static inline T ffloordiv_##S(T a, T b) {                                                        \
        if (b == 0) return a / b;                                                                    \
        T m = FMOD(a, b);                                                                            \
        T q = (a - m) / b;                                                                           \
        if (m != 0 && ((b < 0) != (m < 0))) q -= 1;                                                  \
        if (q == 0) return COPYSIGN((T)0, a / b);                                                    \
        T f = FLOOR(q);                                                                              \
        if (q - f > (T)0.5) f += 1;                                                                  \
        return f;                                                                                    \
    }
FLOAT_HELPERS(float, f, fmodf, floorf, copysignf)
FLOAT_HELPERS(double, d, fmod, floor, copysign)

static inline float round_to(float v, tc_dtype t) {
    return t == TC_F16 ? tc_f16_to_f32(tc_f32_to_f16(v)) : t == TC_BF16 ? tc_bf16_to_f32(tc_f32_to_bf16(v)) : v;
}

static void run_f32(const bjob *j, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
    const float al = j->alpha_f;
    const tc_dtype qr = j->qround;
    switch (j->kind) {
    case BK_ADD: BLOOP(float, float, x + al * y); break;
    case BK_SUB: BLOOP(float, float, x - al * y); break;
    case BK_MUL: BLOOP(float, float, x * y); break;
    case BK_DIV: BLOOP(float, float, x / y); break;
    case BK_DIV_TRUNC: BLOOP(float, float, truncf(round_to(x / y, qr))); break;
    case BK_DIV_FLOOR: BLOOP(float, float, ffloordiv_f(x, y)); break;
    case BK_POW: BLOOP(float, float, powf(x, y)); break;
    case BK_MAX: BLOOP(float, float, fmaxn_f(x, y)); break;
    case BK_MIN: BLOOP(float, float, fminn_f(x, y)); break;
    case BK_REM: BLOOP(float, float, frem_f(x, y)); break;
    case BK_EQ: BLOOP(float, uint8_t, x == y); break;
    case BK_NE: BLOOP(float, uint8_t, x != y); break;
    case BK_LT: BLOOP(float, uint8_t, x < y); break;
    case BK_LE: BLOOP(float, uint8_t, x <= y); break;
    case BK_GT: BLOOP(float, uint8_t, x > y); break;
    case BK_GE: BLOOP(float, uint8_t, x >= y); break;
    case BK_WHERE: TLOOP(uint8_t, float, float, p ? x : y); break;
    case BK_CLAMP: TLOOP(float, float, float, fminn_f(fmaxn_f(p, x), y)); break;
    default: TC_ASSERT(0 && "not a float binary op");
    }
}

static void run_f64(const bjob *j, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
    const double al = j->alpha_d;
    switch (j->kind) {
    case BK_ADD: BLOOP(double, double, x + al * y); break;
    case BK_SUB: BLOOP(double, double, x - al * y); break;
    case BK_MUL: BLOOP(double, double, x * y); break;
    case BK_DIV: BLOOP(double, double, x / y); break;
    case BK_DIV_TRUNC: BLOOP(double, double, trunc(x / y)); break;
    case BK_DIV_FLOOR: BLOOP(double, double, ffloordiv_d(x, y)); break;
    case BK_POW: BLOOP(double, double, pow(x, y)); break;
    case BK_MAX: BLOOP(double, double, fmaxn_d(x, y)); break;
    case BK_MIN: BLOOP(double, double, fminn_d(x, y)); break;
    case BK_REM: BLOOP(double, double, frem_d(x, y)); break;
    case BK_EQ: BLOOP(double, uint8_t, x == y); break;
    case BK_NE: BLOOP(double, uint8_t, x != y); break;
    case BK_LT: BLOOP(double, uint8_t, x < y); break;
    case BK_LE: BLOOP(double, uint8_t, x <= y); break;
    case BK_GT: BLOOP(double, uint8_t, x > y); break;
    case BK_GE: BLOOP(double, uint8_t, x >= y); break;
    case BK_WHERE: TLOOP(uint8_t, double, double, p ? x : y); break;
    case BK_CLAMP: TLOOP(double, double, double, fminn_d(fmaxn_d(p, x), y)); break;
    default: TC_ASSERT(0 && "not a float binary op");
    }
}

/* Integer arithmetic wraps like PyTorch's (two's complement) instead of overflowing. */
#define WRAP(e) ((int64_t)(e))
static inline int64_t idiv_trunc(int64_t a, int64_t b) { return b == -1 ? WRAP(0u - (uint64_t)a) : a / b; }
static inline int64_t idiv_floor(int64_t a, int64_t b) {
    if (b == -1) return WRAP(0u - (uint64_t)a);
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}
static inline int64_t irem(int64_t a, int64_t b) {
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
static inline int64_t ipow(int64_t a, int64_t e) {
    if (e < 0) return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)a;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return WRAP(r);
}

static void run_i64(const bjob *j, int64_t o, const int64_t *off, const int64_t *st, int64_t n) {
    const uint64_t al = (uint64_t)j->alpha_i;
    switch (j->kind) {
    case BK_ADD: BLOOP(int64_t, int64_t, WRAP((uint64_t)x + al * (uint64_t)y)); break;
    case BK_SUB: BLOOP(int64_t, int64_t, WRAP((uint64_t)x - al * (uint64_t)y)); break;
    case BK_MUL: BLOOP(int64_t, int64_t, WRAP((uint64_t)x * (uint64_t)y)); break;
    case BK_DIV_TRUNC: BLOOP(int64_t, int64_t, idiv_trunc(x, y)); break;
    case BK_DIV_FLOOR: BLOOP(int64_t, int64_t, idiv_floor(x, y)); break;
    case BK_POW: BLOOP(int64_t, int64_t, ipow(x, y)); break;
    case BK_MAX: BLOOP(int64_t, int64_t, x > y ? x : y); break;
    case BK_MIN: BLOOP(int64_t, int64_t, x < y ? x : y); break;
    case BK_REM: BLOOP(int64_t, int64_t, irem(x, y)); break;
    case BK_EQ: BLOOP(int64_t, uint8_t, x == y); break;
    case BK_NE: BLOOP(int64_t, uint8_t, x != y); break;
    case BK_LT: BLOOP(int64_t, uint8_t, x < y); break;
    case BK_LE: BLOOP(int64_t, uint8_t, x <= y); break;
    case BK_GT: BLOOP(int64_t, uint8_t, x > y); break;
    case BK_GE: BLOOP(int64_t, uint8_t, x >= y); break;
    case BK_LAND: BLOOP(int64_t, uint8_t, (x != 0) & (y != 0)); break;
    case BK_LOR: BLOOP(int64_t, uint8_t, (x != 0) | (y != 0)); break;
    case BK_LXOR: BLOOP(int64_t, uint8_t, (x != 0) ^ (y != 0)); break;
    case BK_BAND: BLOOP(int64_t, int64_t, x & y); break;
    case BK_BOR: BLOOP(int64_t, int64_t, x | y); break;
    case BK_BXOR: BLOOP(int64_t, int64_t, x ^ y); break;
    case BK_WHERE: TLOOP(uint8_t, int64_t, int64_t, p ? x : y); break;
    case BK_CLAMP: TLOOP(int64_t, int64_t, int64_t, p < x ? (x < y ? x : y) : (p < y ? p : y)); break;
    case BK_DIV: TC_ASSERT(0 && "true division runs in a float domain"); break;
    }
}

static void bchunk(void *ctx, int64_t b, int64_t e) {
    const bjob *j = ctx;
    const bplan *p = &j->pl;
    const int r = p->rank;
    int64_t idx[TC_MAX_RANK], off[MAX_OPERANDS] = {0}, st[MAX_OPERANDS] = {0};
    int64_t rem = b;
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = rem % p->dims[d];
        rem /= p->dims[d];
    }
    for (int k = 0; k < j->nin; k++) {
        for (int d = 0; d < r; d++) off[k] += idx[d] * p->st[k][d];
        st[k] = p->st[k][r - 1];
    }
    const int64_t inner = p->dims[r - 1];
    for (int64_t pos = b; pos < e;) {
        int64_t n = inner - idx[r - 1];
        if (n > e - pos) n = e - pos;
        if (j->dom == DOM_F32) run_f32(j, pos, off, st, n);
        else if (j->dom == DOM_F64) run_f64(j, pos, off, st, n);
        else run_i64(j, pos, off, st, n);
        pos += n;
        idx[r - 1] += n;
        for (int k = 0; k < j->nin; k++) off[k] += n * st[k];
        for (int d = r - 1; d > 0 && idx[d] == p->dims[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
            for (int k = 0; k < j->nin; k++) off[k] += p->st[k][d - 1] - p->dims[d] * p->st[k][d];
        }
    }
}

/* Reads n elements of src (dtype st) as int64 after the cast to `cast` (wrapping to its width;
 * for bool, any nonzero value, NaN included, is true). */
static void load_i64(const void *src, tc_dtype st, tc_dtype cast, int64_t *dst, int64_t n) {
    if (tc_dtype_is_float(st)) {
        for (int64_t i = 0; i < n; i++) {
            double v = tc_load_f64(src, st, i);
            dst[i] = cast == TC_BOOL ? v != 0 : tc_load_i64(src, st, i);
        }
    } else if (st == TC_I64) {
        memcpy(dst, src, (size_t)n * sizeof(int64_t));
    } else if (st == TC_I32) {
        for (int64_t i = 0; i < n; i++) dst[i] = ((const int32_t *)src)[i];
    } else if (st == TC_BOOL || st == TC_U8) {
        for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = tc_load_i64(src, st, i);
    }
    switch (cast) {
    case TC_I32: for (int64_t i = 0; i < n; i++) dst[i] = (int32_t)dst[i]; break;
    case TC_I8: for (int64_t i = 0; i < n; i++) dst[i] = (int8_t)dst[i]; break;
    case TC_U8: for (int64_t i = 0; i < n; i++) dst[i] = (uint8_t)dst[i]; break;
    case TC_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = dst[i] != 0; break;
    default: break;
    }
}

static void load_f32(const void *src, tc_dtype st, float *dst, int64_t n) {
    switch (st) {
    case TC_I64: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i]; break;
    case TC_I32: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case TC_BOOL:
    case TC_U8: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i]; break;
    default: tc_to_f32(src, st, dst, n); break;
    }
}

/* Operand k as a compute-domain buffer: a converted copy in scratch slot k unless the tensor
 * already has the domain's type. `round` casts through the common dtype first (f16/bf16). */
static const void *load_operand(const tc_cpu_call *c, const tc_cpu_tensor *t, domain dom, tc_dtype cast, bool round,
                                int slot) {
    size_t n = (size_t)(t->numel ? t->numel : 1);
    if (dom == DOM_F32) {
        bool rnd = round && t->dtype != cast && (cast == TC_F16 || cast == TC_BF16);
        if (t->dtype == TC_F32 && !rnd) return t->data;
        float *p = tc_cpu_scratch(c, slot, n * sizeof(float));
        if (!p) return NULL;
        load_f32(t->data, t->dtype, p, t->numel);
        if (rnd)
            for (int64_t i = 0; i < t->numel; i++) p[i] = round_to(p[i], cast);
        return p;
    }
    if (dom == DOM_F64) {
        if (t->dtype == TC_F64) return t->data;
        double *p = tc_cpu_scratch(c, slot, n * sizeof(double));
        if (p) tc_convert(t->data, t->dtype, p, TC_F64, t->numel);
        return p;
    }
    if (t->dtype == TC_I64 && cast == TC_I64) return t->data;
    int64_t *p = tc_cpu_scratch(c, slot, n * sizeof(int64_t));
    if (p) load_i64(t->data, t->dtype, cast, p, t->numel);
    return p;
}

static void scalar_operand(const tc_arg *a, domain dom, tc_dtype cast, bool round, scalar_val *v) {
    double d = a->kind == TC_ARG_FLOAT ? a->u.f : a->kind == TC_ARG_BOOL ? (double)a->u.b : (double)a->u.i;
    /* a float Scalar never reaches the integer domain: promotion makes the op float */
    int64_t i = a->kind == TC_ARG_INT ? a->u.i : a->kind == TC_ARG_BOOL ? (int64_t)a->u.b : 0;
    if (dom == DOM_F32) v->f = round ? round_to((float)d, cast) : (float)d;
    else if (dom == DOM_F64) v->d = d;
    else load_i64(&i, TC_I64, cast, &v->i, 1);
}

/* Common dtype over the operands at the given schema positions, as shape inference computed it. */
static tc_dtype common_dtype(const tc_node *n, int nin, const int *pos) {
    tc_promote p;
    tc_promote_init(&p);
    for (int k = 0; k < nin; k++) {
        const tc_arg *a = tc_node_arg_at(n, pos[k]);
        if (a->kind == TC_ARG_TENSOR) tc_promote_tensor(&p, a->u.tensor);
        else if (a->kind != TC_ARG_NONE) tc_promote_scalar(&p, a);
    }
    return tc_promote_result(&p);
}

static bkind kind_of(int op, const char *mode) {
    switch (op) {
    case TC_OP_ADD_TENSOR:
    case TC_OP_ADD_SCALAR: return BK_ADD;
    case TC_OP_SUB_TENSOR:
    case TC_OP_SUB_SCALAR: return BK_SUB;
    case TC_OP_MUL_TENSOR:
    case TC_OP_MUL_SCALAR: return BK_MUL;
    case TC_OP_DIV_TENSOR:
    case TC_OP_DIV_SCALAR:
    case TC_OP_DIV_TENSOR_MODE:
    case TC_OP_DIV_SCALAR_MODE:
        if (!mode) return BK_DIV;
        return strcmp(mode, "trunc") == 0 ? BK_DIV_TRUNC : BK_DIV_FLOOR;
    case TC_OP_POW_TENSOR_SCALAR:
    case TC_OP_POW_TENSOR_TENSOR:
    case TC_OP_POW_SCALAR: return BK_POW;
    case TC_OP_MAXIMUM: return BK_MAX;
    case TC_OP_MINIMUM: return BK_MIN;
    case TC_OP_REMAINDER_TENSOR:
    case TC_OP_REMAINDER_SCALAR: return BK_REM;
    case TC_OP_EQ_TENSOR:
    case TC_OP_EQ_SCALAR: return BK_EQ;
    case TC_OP_NE_TENSOR:
    case TC_OP_NE_SCALAR: return BK_NE;
    case TC_OP_LT_TENSOR:
    case TC_OP_LT_SCALAR: return BK_LT;
    case TC_OP_LE_TENSOR:
    case TC_OP_LE_SCALAR: return BK_LE;
    case TC_OP_GT_TENSOR:
    case TC_OP_GT_SCALAR: return BK_GT;
    case TC_OP_GE_TENSOR:
    case TC_OP_GE_SCALAR: return BK_GE;
    case TC_OP_LOGICAL_AND: return BK_LAND;
    case TC_OP_LOGICAL_OR: return BK_LOR;
    case TC_OP_LOGICAL_XOR: return BK_LXOR;
    case TC_OP_BITWISE_AND_TENSOR:
    case TC_OP_BITWISE_AND_SCALAR: return BK_BAND;
    case TC_OP_BITWISE_OR_TENSOR:
    case TC_OP_BITWISE_OR_SCALAR: return BK_BOR;
    case TC_OP_BITWISE_XOR_TENSOR:
    case TC_OP_BITWISE_XOR_SCALAR: return BK_BXOR;
    case TC_OP_WHERE_SELF: return BK_WHERE;
    default: return BK_CLAMP;
    }
}

static void store_i64(const int64_t *src, tc_cpu_tensor *t) {
    switch (t->dtype) {
    case TC_I32: for (int64_t i = 0; i < t->numel; i++) ((int32_t *)t->data)[i] = (int32_t)src[i]; break;
    case TC_BOOL: for (int64_t i = 0; i < t->numel; i++) ((uint8_t *)t->data)[i] = src[i] != 0; break;
    default: tc_convert(src, TC_I64, t->data, t->dtype, t->numel); break;
    }
}

static tc_status cpu_broadcast(const tc_cpu_call *c) {
    const tc_node *node = c->node;
    tc_cpu_tensor *y = c->out[0];
    const char *mode = NULL;
    if (node->op == TC_OP_DIV_TENSOR_MODE || node->op == TC_OP_DIV_SCALAR_MODE) mode = tc_node_str(node, 2);
    bjob j = {.kind = kind_of(node->op, mode), .alpha_f = 1, .alpha_d = 1, .alpha_i = 1, .qround = TC_F32};
    static const int pos[MAX_OPERANDS] = {0, 1, 2};
    j.nin = j.kind == BK_WHERE || j.kind == BK_CLAMP ? 3 : 2;
    int npromote = j.nin;
    if (node->op == TC_OP_CLAMP_MIN || node->op == TC_OP_CLAMP_MAX) npromote = 2;
    tc_dtype cast;
    if (j.kind == BK_WHERE) cast = y->dtype;
    else if (j.kind >= BK_LAND && j.kind <= BK_LXOR) cast = TC_BOOL;
    else cast = common_dtype(node, npromote, pos);
    if (j.kind == BK_DIV && !tc_dtype_is_float(cast)) cast = TC_F32;
    if (cast == TC_F8E4M3) return tc_cpu_fail(c, TC_ERR_DTYPE, "f8e4m3 is not supported");
    j.dom = cast == TC_F64 ? DOM_F64 : tc_dtype_is_float(cast) ? DOM_F32 : DOM_I64;
    if (j.kind == BK_DIV_TRUNC && (cast == TC_F16 || cast == TC_BF16)) j.qround = cast;

    /* schema position of each operand in loop order; clamp_min/clamp_max lack one bound */
    int apos[MAX_OPERANDS] = {0, 1, 2};
    if (node->op == TC_OP_CLAMP_MIN) apos[2] = -1;
    if (node->op == TC_OP_CLAMP_MAX) apos[1] = -1, apos[2] = 1;
    int ranks[MAX_OPERANDS] = {0, 0, 0};
    int64_t dims[MAX_OPERANDS][TC_MAX_RANK];
    for (int k = 0; k < j.nin; k++) {
        const tc_arg *a = apos[k] >= 0 ? tc_node_arg_at(node, apos[k]) : NULL;
        if (a && a->kind == TC_ARG_TENSOR) {
            const tc_cpu_tensor *t = tc_cpu_in(c, apos[k]);
            /* PyTorch keeps a one-element multiplier or divisor of f16/bf16 at full precision */
            bool round = !((j.kind == BK_MUL || j.kind == BK_DIV) && k == 1 && t->numel == 1);
            ranks[k] = t->rank;
            memcpy(dims[k], t->dims, sizeof dims[k]);
            if (j.kind == BK_WHERE && k == 0) {
                j.in[k] = t->data; /* bool or u8: nonzero is true */
            } else {
                j.in[k] = load_operand(c, t, j.dom, cast, round, k);
                if (!j.in[k]) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
            }
        } else if (a && a->kind != TC_ARG_NONE) {
            bool round = !((j.kind == BK_MUL || j.kind == BK_DIV) && k == 1);
            scalar_operand(a, j.dom, cast, round, &j.sv[k]);
            j.in[k] = &j.sv[k];
        } else {
            /* an absent clamp bound: the identity of max or min */
            TC_ASSERT(j.kind == BK_CLAMP);
            if (j.dom == DOM_F32) j.sv[k].f = k == 1 ? -INFINITY : INFINITY;
            else if (j.dom == DOM_F64) j.sv[k].d = k == 1 ? -INFINITY : INFINITY;
            else j.sv[k].i = k == 1 ? INT64_MIN : INT64_MAX;
            j.in[k] = &j.sv[k];
        }
    }
    if (j.kind == BK_ADD || j.kind == BK_SUB) {
        /* f16/bf16 round alpha like the other operand, as PyTorch does */
        const tc_arg *al = tc_node_arg_at(node, 2);
        double a = tc_node_float(node, 2);
        j.alpha_f = round_to((float)a, cast);
        j.alpha_d = a;
        j.alpha_i = al->kind == TC_ARG_INT ? al->u.i : al->kind == TC_ARG_BOOL ? (int64_t)al->u.b : 0;
    }
    if (j.dom == DOM_I64 && (j.kind == BK_DIV_TRUNC || j.kind == BK_DIV_FLOOR || j.kind == BK_REM)) {
        const int64_t *d = j.in[1];
        bool is_t = tc_node_arg_at(node, 1)->kind == TC_ARG_TENSOR;
        int64_t cnt = is_t ? tc_cpu_in(c, 1)->numel : 1;
        for (int64_t i = 0; i < cnt; i++)
            if (d[i] == 0)
                return tc_cpu_fail(c, TC_ERR_INVALID_ARGUMENT,
                                   "integer division by zero (PyTorch raises ZeroDivisionError): %s element %lld is 0",
                                   is_t ? "the divisor" : "the scalar divisor", (long long)i);
    }
    plan_broadcast(&j.pl, y, j.nin, ranks, (const int64_t(*)[TC_MAX_RANK])dims);

    bool pred = bk_is_pred(j.kind);
    void *tmp = NULL;
    if (pred) {
        j.out = y->data;
    } else if (j.dom == DOM_F32) {
        j.out = tmp = tc_cpu_out_f32(c, y, 7);
    } else if (j.dom == DOM_F64 || y->dtype == TC_I64) {
        j.out = y->data;
    } else {
        j.out = tmp = tc_cpu_scratch(c, 7, (size_t)y->numel * sizeof(int64_t));
    }
    if (!j.out) return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory");
    tc_parallel_for(y->numel, 1 << 14, bchunk, &j);
    if (tmp && j.dom == DOM_F32) tc_cpu_store_f32(y, tmp);
    else if (tmp) store_i64(tmp, y);
    return TC_OK;
}

static tc_status cpu_bitwise_not(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0);
    tc_cpu_tensor *y = c->out[0];
    if (x->dtype == TC_BOOL) {
        for (int64_t i = 0; i < x->numel; i++) ((uint8_t *)y->data)[i] = !((const uint8_t *)x->data)[i];
    } else {
        for (int64_t i = 0; i < x->numel; i++) tc_store_i64(y->data, y->dtype, i, ~tc_load_i64(x->data, x->dtype, i));
    }
    return TC_OK;
}

void tc_cpu_register_elementwise(tc_cpu_kernel *t) {
    static const int unary_ops[] = {TC_OP_ABS, TC_OP_NEG, TC_OP_EXP, TC_OP_LOG, TC_OP_SQRT, TC_OP_RSQRT,
                                    TC_OP_RECIPROCAL, TC_OP_SIN, TC_OP_COS, TC_OP_TANH, TC_OP_ERF, TC_OP_FLOOR,
                                    TC_OP_CEIL, TC_OP_ROUND, TC_OP_SIGN, TC_OP_LOGICAL_NOT, TC_OP_ISNAN};
    for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++) t[unary_ops[i]] = cpu_unary;
    for (int i = 0; i < tc_n_broadcast_ops; i++) t[tc_broadcast_ops[i]] = cpu_broadcast;
    t[TC_OP_BITWISE_NOT] = cpu_bitwise_not;
}
