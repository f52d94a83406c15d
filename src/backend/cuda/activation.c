/* CUDA kernels for the activation ops: argument handling on the host; the device code is in
 * kernels/activation.cu. Parameters are read as the CPU kernel reads them (backend/cpu/activation.c). */
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/activation.h"
#include "core/dtype.h"

#include <string.h>

static int64_t bound_to_int(double v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

static tc_status cuda_activation(const tc_cuda_call *c) {
    const tc_node *n = c->node;
    const tc_cuda_tensor *x = tc_cuda_in(c, 0);
    tc_cuda_tensor *y = c->out[0];
    double p[3] = {0, 0, 0};
    tc_cuda_act op;
    switch (n->op) {
    case TC_OP_RELU: op = TC_CUDA_A_RELU; break;
    case TC_OP_HARDTANH: op = TC_CUDA_A_HARDTANH, p[0] = tc_node_float(n, 1), p[1] = tc_node_float(n, 2); break;
    case TC_OP_SIGMOID: op = TC_CUDA_A_SIGMOID; break;
    case TC_OP_GELU: {
        const char *a = tc_node_str(n, 1);
        op = a && strcmp(a, "tanh") == 0 ? TC_CUDA_A_GELU_TANH : TC_CUDA_A_GELU;
        break;
    }
    case TC_OP_LEAKY_RELU: op = TC_CUDA_A_LEAKY_RELU, p[0] = tc_node_float(n, 1); break;
    case TC_OP_ELU:
        op = TC_CUDA_A_ELU, p[0] = tc_node_float(n, 1), p[1] = tc_node_float(n, 2), p[2] = tc_node_float(n, 3);
        break;
    case TC_OP_SILU: op = TC_CUDA_A_SILU; break;
    case TC_OP_HARDSWISH: op = TC_CUDA_A_HARDSWISH; break;
    case TC_OP_HARDSIGMOID: op = TC_CUDA_A_HARDSIGMOID; break;
    default: return tc_cuda_fail(c, TC_ERR_UNSUPPORTED, "not an activation op");
    }
    if (x->numel != y->numel)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "input has %lld elements, output %lld", (long long)x->numel,
                            (long long)y->numel);
    int64_t lo = 0, hi = INT64_MAX;
    if (!tc_dtype_is_float(y->dtype)) {
        /* integers: relu and hardtanh only, bounds truncated toward zero as PyTorch casts them */
        if (op != TC_CUDA_A_RELU && op != TC_CUDA_A_HARDTANH)
            return tc_cuda_fail(c, TC_ERR_DTYPE, "%s outputs are not supported", tc_dtype_name(y->dtype));
        if (op == TC_CUDA_A_HARDTANH) lo = bound_to_int(p[0]), hi = bound_to_int(p[1]);
    } else if (y->dtype == TC_F8E4M3 || x->dtype == TC_F8E4M3) {
        return tc_cuda_fail(c, TC_ERR_DTYPE, "f8e4m3 is not supported");
    }
    tc_status s = tc_cuda_activation(op, x->data, x->dtype, y->data, y->dtype, y->numel, p, lo, hi, c->stream, c->err);
    if (s == TC_OK) return TC_OK;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err ? c->err->msg : "launch failed");
    return tc_cuda_fail(c, s, "%s", msg);
}

void tc_cuda_register_activation(tc_cuda_kernel *t) {
    static const int ops[] = {TC_OP_RELU, TC_OP_HARDTANH, TC_OP_SIGMOID,  TC_OP_GELU,       TC_OP_LEAKY_RELU,
                              TC_OP_ELU,  TC_OP_SILU,     TC_OP_HARDSWISH, TC_OP_HARDSIGMOID};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) t[ops[i]] = cuda_activation;
}
