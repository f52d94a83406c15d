/* CUDA kernels for the elementwise ops: argument handling on the host; the device code is in
 * kernels/elementwise.cu. Types are decided exactly as backend/cpu/elementwise.c decides them
 * (common dtype, f16/bf16 operand rounding, alpha, scalar handling); the kernels then compute in
 * one domain (f32, f64 or i64) and round once into the output. */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/elementwise.h"
#include "core/dtype.h"

#include <math.h>
#include <string.h>

/* Puts the node and op in front of a launcher's message. */
static tc_status relabel(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return TC_OK;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err ? c->err->msg : "launch failed");
    return tc_cuda_fail(c, s, "%s", msg);
}

static tc_cuda_uop uop_of(int op) {
    switch (op) {
    case TC_OP_ABS: return TC_CUDA_U_ABS;
    case TC_OP_NEG: return TC_CUDA_U_NEG;
    case TC_OP_EXP: return TC_CUDA_U_EXP;
    case TC_OP_LOG: return TC_CUDA_U_LOG;
    case TC_OP_SQRT: return TC_CUDA_U_SQRT;
    case TC_OP_RSQRT: return TC_CUDA_U_RSQRT;
    case TC_OP_RECIPROCAL: return TC_CUDA_U_RECIPROCAL;
    case TC_OP_SIN: return TC_CUDA_U_SIN;
    case TC_OP_COS: return TC_CUDA_U_COS;
    case TC_OP_TANH: return TC_CUDA_U_TANH;
    case TC_OP_ERF: return TC_CUDA_U_ERF;
    case TC_OP_FLOOR: return TC_CUDA_U_FLOOR;
    case TC_OP_CEIL: return TC_CUDA_U_CEIL;
    case TC_OP_ROUND: return TC_CUDA_U_ROUND;
    case TC_OP_SIGN: return TC_CUDA_U_SIGN;
    case TC_OP_LOGICAL_NOT: return TC_CUDA_U_LOGICAL_NOT;
    case TC_OP_ISNAN: return TC_CUDA_U_ISNAN;
    case TC_OP_BITWISE_NOT: return TC_CUDA_U_BITWISE_NOT;
    default: return TC_CUDA_U_COUNT;
    }
}

static tc_status cuda_unary(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    tc_cuda_uop op = uop_of(c->node->op);
    if (op == TC_CUDA_U_COUNT) return tc_cuda_fail(c, TC_ERR_UNSUPPORTED, "not a unary elementwise op");
    bool pred = op == TC_CUDA_U_LOGICAL_NOT || op == TC_CUDA_U_ISNAN;
    if (!pred && op != TC_CUDA_U_BITWISE_NOT && y->dtype == TC_BOOL)
        return tc_cuda_fail(c, TC_ERR_DTYPE, "not defined for bool tensors");
    if (x->numel != y->numel)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input has %lld elements, output %lld", (long long)x->numel,
                            (long long)y->numel);
    return relabel(c, tc_cuda_unary(op, x->data, x->dtype, y->data, y->dtype, y->numel, c->stream, c->err));
}

/* --- broadcasting binary and ternary ops ----------------------------------------------------- */

static tc_cuda_bop bop_of(int op, const char *mode) {
    switch (op) {
    case TC_OP_ADD_TENSOR:
    case TC_OP_ADD_SCALAR: return TC_CUDA_B_ADD;
    case TC_OP_SUB_TENSOR:
    case TC_OP_SUB_SCALAR: return TC_CUDA_B_SUB;
    case TC_OP_MUL_TENSOR:
    case TC_OP_MUL_SCALAR: return TC_CUDA_B_MUL;
    case TC_OP_DIV_TENSOR:
    case TC_OP_DIV_SCALAR:
    case TC_OP_DIV_TENSOR_MODE:
    case TC_OP_DIV_SCALAR_MODE:
        if (!mode) return TC_CUDA_B_DIV;
        return strcmp(mode, "trunc") == 0 ? TC_CUDA_B_DIV_TRUNC : TC_CUDA_B_DIV_FLOOR;
    case TC_OP_POW_TENSOR_SCALAR:
    case TC_OP_POW_TENSOR_TENSOR:
    case TC_OP_POW_SCALAR: return TC_CUDA_B_POW;
    case TC_OP_MAXIMUM: return TC_CUDA_B_MAX;
    case TC_OP_MINIMUM: return TC_CUDA_B_MIN;
    case TC_OP_REMAINDER_TENSOR:
    case TC_OP_REMAINDER_SCALAR: return TC_CUDA_B_REM;
    case TC_OP_EQ_TENSOR:
    case TC_OP_EQ_SCALAR: return TC_CUDA_B_EQ;
    case TC_OP_NE_TENSOR:
    case TC_OP_NE_SCALAR: return TC_CUDA_B_NE;
    case TC_OP_LT_TENSOR:
    case TC_OP_LT_SCALAR: return TC_CUDA_B_LT;
    case TC_OP_LE_TENSOR:
    case TC_OP_LE_SCALAR: return TC_CUDA_B_LE;
    case TC_OP_GT_TENSOR:
    case TC_OP_GT_SCALAR: return TC_CUDA_B_GT;
    case TC_OP_GE_TENSOR:
    case TC_OP_GE_SCALAR: return TC_CUDA_B_GE;
    case TC_OP_LOGICAL_AND: return TC_CUDA_B_LAND;
    case TC_OP_LOGICAL_OR: return TC_CUDA_B_LOR;
    case TC_OP_LOGICAL_XOR: return TC_CUDA_B_LXOR;
    case TC_OP_BITWISE_AND_TENSOR:
    case TC_OP_BITWISE_AND_SCALAR: return TC_CUDA_B_BAND;
    case TC_OP_BITWISE_OR_TENSOR:
    case TC_OP_BITWISE_OR_SCALAR: return TC_CUDA_B_BOR;
    case TC_OP_BITWISE_XOR_TENSOR:
    case TC_OP_BITWISE_XOR_SCALAR: return TC_CUDA_B_BXOR;
    case TC_OP_WHERE_SELF: return TC_CUDA_B_WHERE;
    case TC_OP_CLAMP:
    case TC_OP_CLAMP_TENSOR:
    case TC_OP_CLAMP_MIN:
    case TC_OP_CLAMP_MAX: return TC_CUDA_B_CLAMP;
    default: return TC_CUDA_B_COUNT;
    }
}

static float round_host(float v, tc_dtype t) {
    return t == TC_F16 ? tc_f16_to_f32(tc_f32_to_f16(v)) : t == TC_BF16 ? tc_bf16_to_f32(tc_f32_to_bf16(v)) : v;
}

/* The CPU's load_i64 of one int64 after the cast to `cast`. */
static int64_t wrap_host(int64_t v, tc_dtype cast) {
    switch (cast) {
    case TC_I32: return (int32_t)v;
    case TC_I8: return (int8_t)v;
    case TC_U8: return (uint8_t)v;
    case TC_BOOL: return v != 0;
    default: return v;
    }
}

/* Common dtype over the operands at schema positions 0..nin-1, as shape inference computed it. */
static tc_dtype common_dtype(const tc_node *n, int nin) {
    tc_promote p;
    tc_promote_init(&p);
    for (int k = 0; k < nin; k++) {
        const tc_arg *a = tc_node_arg_at(n, k);
        if (a->kind == TC_ARG_TENSOR) tc_promote_tensor(&p, a->u.tensor);
        else if (a->kind != TC_ARG_NONE) tc_promote_scalar(&p, a);
    }
    return tc_promote_result(&p);
}

/* Strides of each tensor operand over the output shape (0 where broadcast), then size-1 dims
 * dropped and dims merged where every operand is contiguous across them (the CPU's plan). A
 * channels-last output is walked in its memory order (N, H, W, C); its operands with its dims are
 * channels-last too (nhwc[k]), the others (broadcast over H and W: a squeeze-excite gate) NCHW.
 * An operand that is a strided view (views.c) is read through its strides (xst[k], else NULL). */
static void plan_broadcast(tc_cuda_bcast *b, const tc_cuda_tensor *out, const int *ranks,
                           const int64_t (*dims)[TC_MAX_RANK], const bool *is_tensor, const bool *nhwc,
                           const int64_t *const *xst) {
    int r = out->rank;
    int64_t st[3][TC_MAX_RANK];
    for (int k = 0; k < b->nin; k++) {
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int kd = ranks[k] - r + d;
            int64_t n = is_tensor[k] && kd >= 0 ? dims[k][kd] : 1;
            st[k][d] = n == 1 ? 0 : xst[k] ? xst[k][kd] : s;
            s *= n;
        }
        if (nhwc[k]) { /* [N, C, H, W] stored [N, H, W, C] */
            const int64_t *d4 = dims[k];
            st[k][1] = d4[1] == 1 ? 0 : 1;
            st[k][3] = d4[3] == 1 ? 0 : d4[1];
            st[k][2] = d4[2] == 1 ? 0 : d4[3] * d4[1];
            st[k][0] = d4[0] == 1 ? 0 : d4[2] * d4[3] * d4[1];
        }
    }
    static const int nhwc_order[4] = {0, 2, 3, 1};
    const bool perm = out->nhwc && r == 4;
    b->rank = 0;
    for (int di = 0; di < r; di++) {
        int d = perm ? nhwc_order[di] : di;
        if (out->dims[d] == 1) continue;
        int q = b->rank;
        bool merge = q > 0;
        for (int k = 0; k < b->nin && merge; k++) merge = b->in[k].strides[q - 1] == st[k][d] * out->dims[d];
        if (merge) {
            b->dims[q - 1] *= out->dims[d];
            for (int k = 0; k < b->nin; k++) b->in[k].strides[q - 1] = st[k][d];
        } else {
            b->dims[q] = out->dims[d];
            for (int k = 0; k < b->nin; k++) b->in[k].strides[q] = st[k][d];
            b->rank++;
        }
    }
    if (b->rank == 0) {
        b->rank = 1;
        b->dims[0] = 1;
        for (int k = 0; k < b->nin; k++) b->in[k].strides[0] = 0;
    }
}

static tc_status cuda_broadcast(const tc_cuda_call *c) {
    const tc_node *node = c->node;
    tc_cuda_tensor *y = c->out[0];
    const char *mode = NULL;
    if (node->op == TC_OP_DIV_TENSOR_MODE || node->op == TC_OP_DIV_SCALAR_MODE) mode = tc_node_str(node, 2);
    tc_cuda_bcast b;
    memset(&b, 0, sizeof b);
    b.op = bop_of(node->op, mode);
    if (b.op == TC_CUDA_B_COUNT) return tc_cuda_fail(c, TC_ERR_UNSUPPORTED, "not a broadcasting elementwise op");
    b.nin = b.op == TC_CUDA_B_WHERE || b.op == TC_CUDA_B_CLAMP ? 3 : 2;
    b.alpha = 1;
    b.alpha_i = 1;
    b.qround = TC_F32;
    int npromote = node->op == TC_OP_CLAMP_MIN || node->op == TC_OP_CLAMP_MAX ? 2 : b.nin;
    tc_dtype cast;
    if (b.op == TC_CUDA_B_WHERE) cast = y->dtype;
    else if (b.op >= TC_CUDA_B_LAND && b.op <= TC_CUDA_B_LXOR) cast = TC_BOOL;
    else cast = common_dtype(node, npromote);
    if (b.op == TC_CUDA_B_DIV && !tc_dtype_is_float(cast)) cast = TC_F32;
    if (cast == TC_F8E4M3) return tc_cuda_fail(c, TC_ERR_DTYPE, "f8e4m3 is not supported");
    b.dom = cast == TC_F64 ? TC_CUDA_DOM_F64 : tc_dtype_is_float(cast) ? TC_CUDA_DOM_F32 : TC_CUDA_DOM_I64;
    if (b.op == TC_CUDA_B_DIV_TRUNC && (cast == TC_F16 || cast == TC_BF16)) b.qround = cast;

    /* schema position of each operand in kernel order; clamp_min/clamp_max lack one bound */
    int apos[3] = {0, 1, 2};
    if (node->op == TC_OP_CLAMP_MIN) apos[2] = -1;
    if (node->op == TC_OP_CLAMP_MAX) apos[1] = -1, apos[2] = 1;
    int ranks[3] = {0, 0, 0};
    int64_t dims[3][TC_MAX_RANK];
    bool is_tensor[3] = {false, false, false}, nhwc[3] = {false, false, false};
    const int64_t *xst[3] = {NULL, NULL, NULL};
    bool mul_or_div = b.op == TC_CUDA_B_MUL || b.op == TC_CUDA_B_DIV;
    for (int k = 0; k < b.nin; k++) {
        tc_cuda_operand *o = &b.in[k];
        const tc_arg *a = apos[k] >= 0 ? tc_node_arg_at(node, apos[k]) : NULL;
        o->cast = TC_F32;
        if (a && a->kind == TC_ARG_TENSOR) {
            const tc_cuda_tensor *t = tc_cuda_in(c, apos[k]);
            /* PyTorch keeps a one-element multiplier or divisor of f16/bf16 at full precision */
            bool round = !(mul_or_div && k == 1 && t->numel == 1);
            is_tensor[k] = true;
            ranks[k] = t->rank;
            memcpy(dims[k], t->dims, sizeof dims[k]);
            nhwc[k] = t->nhwc && t->rank == 4;
            xst[k] = t->strides;
            o->data = t->data;
            o->dtype = t->dtype;
            if (b.op == TC_CUDA_B_WHERE && k == 0) continue; /* bool or u8 bytes: nonzero is true */
            if (b.dom == TC_CUDA_DOM_I64) o->cast = cast;
            else if (b.dom == TC_CUDA_DOM_F32 && round && t->dtype != cast) o->cast = cast;
        } else if (a && a->kind != TC_ARG_NONE) {
            bool round = !(mul_or_div && k == 1);
            double d = a->kind == TC_ARG_FLOAT ? a->u.f : a->kind == TC_ARG_BOOL ? (double)a->u.b : (double)a->u.i;
            int64_t i = a->kind == TC_ARG_INT ? a->u.i : a->kind == TC_ARG_BOOL ? (int64_t)a->u.b : 0;
            o->dtype = TC_F64;
            if (b.dom == TC_CUDA_DOM_F32) o->f = round ? round_host((float)d, cast) : (float)d;
            else if (b.dom == TC_CUDA_DOM_F64) o->f = d;
            else o->i = wrap_host(i, cast);
        } else {
            /* an absent clamp bound: the identity of max or min */
            o->dtype = TC_F64;
            if (b.dom == TC_CUDA_DOM_I64) o->i = k == 1 ? INT64_MIN : INT64_MAX;
            else o->f = k == 1 ? -INFINITY : INFINITY;
        }
    }
    if (b.op == TC_CUDA_B_ADD || b.op == TC_CUDA_B_SUB) {
        /* f16/bf16 round alpha like the other operand, as PyTorch does */
        const tc_arg *al = tc_node_arg_at(node, 2);
        double a = tc_node_float(node, 2);
        b.alpha = b.dom == TC_CUDA_DOM_F32 ? round_host((float)a, cast) : a;
        b.alpha_i = al->kind == TC_ARG_INT ? al->u.i : al->kind == TC_ARG_BOOL ? (int64_t)al->u.b : 0;
    }
    if (b.dom == TC_CUDA_DOM_I64 && !is_tensor[1] &&
        (b.op == TC_CUDA_B_DIV_TRUNC || b.op == TC_CUDA_B_DIV_FLOOR || b.op == TC_CUDA_B_REM) && b.in[1].i == 0)
        return tc_cuda_fail(c, TC_ERR_INVALID_ARGUMENT,
                            "integer division by zero (PyTorch raises ZeroDivisionError): the scalar divisor "
                            "element 0 is 0");
    if (b.dom == TC_CUDA_DOM_I64 && is_tensor[1] &&
        (b.op == TC_CUDA_B_DIV_TRUNC || b.op == TC_CUDA_B_DIV_FLOOR || b.op == TC_CUDA_B_REM)) {
        b.err_flag = tc_cuda_error_flag(c, "integer division by zero (PyTorch raises ZeroDivisionError): an element "
                                           "of the divisor tensor is 0");
        if (!b.err_flag) return tc_cuda_fail(c, TC_ERR_INTERNAL, "no device error word for the division check");
    }
    plan_broadcast(&b, y, ranks, (const int64_t(*)[TC_MAX_RANK])dims, is_tensor, nhwc, xst);
    b.numel = y->numel;
    b.out = y->data;
    b.out_dtype = y->dtype;
    return relabel(c, tc_cuda_broadcast(&b, c->stream, c->err));
}

/* y += r elementwise (same dims and dtype), computed in f32 and rounded once, as add.Tensor. */
tc_status tc_cuda_add_into(const tc_cuda_call *c, tc_cuda_tensor *y, const tc_cuda_tensor *r) {
    tc_cuda_bcast a;
    memset(&a, 0, sizeof a);
    a.op = TC_CUDA_B_ADD, a.dom = TC_CUDA_DOM_F32, a.nin = 2, a.rank = 1;
    a.dims[0] = a.numel = y->numel;
    for (int k = 0; k < 2; k++) {
        a.in[k].data = k ? r->data : y->data;
        a.in[k].dtype = y->dtype;
        a.in[k].cast = TC_F32; /* no extra rounding: both operands already have y's dtype */
        a.in[k].strides[0] = 1;
    }
    a.out = y->data, a.out_dtype = y->dtype;
    a.alpha = 1.0, a.alpha_i = 1, a.qround = TC_F32;
    return relabel(c, tc_cuda_broadcast(&a, c->stream, c->err));
}

void tc_cuda_register_elementwise(tc_cuda_kernel *t) {
    static const int unary_ops[] = {TC_OP_ABS,   TC_OP_NEG,   TC_OP_EXP,         TC_OP_LOG,   TC_OP_SQRT,
                                    TC_OP_RSQRT, TC_OP_RECIPROCAL, TC_OP_SIN,    TC_OP_COS,   TC_OP_TANH,
                                    TC_OP_ERF,   TC_OP_FLOOR, TC_OP_CEIL,        TC_OP_ROUND, TC_OP_SIGN,
                                    TC_OP_LOGICAL_NOT, TC_OP_ISNAN, TC_OP_BITWISE_NOT};
    for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++) t[unary_ops[i]] = cuda_unary;
    for (int i = 0; i < tc_n_broadcast_ops; i++) t[tc_broadcast_ops[i]] = cuda_broadcast;
}
