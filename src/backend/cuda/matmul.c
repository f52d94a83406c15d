/* CUDA kernels for mm, bmm, addmm and linear: floating-point products through cuBLASLt (bias as
 * the BIAS epilogue where it is a row vector added once, otherwise seeded into the output and
 * accumulated with beta; a fused step's relu / gelu as the RELU / GELU epilogue, or a separate pass
 * when beta is not 0), integer products through an exact int64 kernel. Mirrors the CPU's run-time
 * shape checks; device code is in kernels/matmul.cu. */
#include "backend/cuda/cublaslt.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/kernels/activation.h"
#include "backend/cuda/kernels/matmul.h"
#include "core/dtype.h"

#include <stdio.h>

enum { WS_SLOT = 0 };

static bool is_lt_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F64; }

static tc_status relay(const tc_cuda_call *c, tc_status s) {
    if (s == TC_OK) return s;
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

static tc_status bad_dtype(const tc_cuda_call *c, tc_dtype t) {
    return tc_cuda_fail(c, TC_ERR_DTYPE, "dtype %s is not supported on cuda", tc_dtype_name(t));
}

static tc_gemm_desc desc_for(const tc_cuda_call *c, tc_dtype t, int64_t batch, int64_t M, int64_t N, int64_t K) {
    tc_gemm_desc d = {0};
    d.dtype = t;
    d.batch = batch, d.M = M, d.N = N, d.K = K;
    d.stride_a = M * K, d.stride_b = K * N, d.stride_d = M * N;
    d.alpha = 1.0, d.beta = 0.0;
    d.allow_tf32 = tc_cuda_allow_tf32(c);
    return d;
}

/* The fused step's activation or residual (NONE and NULL for a plain node); fails for an epilogue
 * these kernels cannot run. */
static tc_status step_epi(const tc_cuda_call *c, const tc_cuda_tensor *y, tc_cuda_epi_act *act,
                          const tc_cuda_tensor **res) {
    *act = TC_CUDA_EPI_NONE;
    *res = NULL;
    if (!c->epi) return TC_OK;
    const tc_cuda_epilogue *e = c->epi;
    tc_dtype t = y->dtype;
    const tc_cuda_tensor *r = e->residual;
    bool act_ok = (e->act1 == TC_CUDA_EPI_RELU || e->act1 == TC_CUDA_EPI_GELU_TANH) && !r;
    bool res_ok = e->act1 == TC_CUDA_EPI_NONE && r && r->dtype == t && r->numel == y->numel && !r->strides && !r->nhwc;
    if (e->weight || e->bias || e->act2 != TC_CUDA_EPI_NONE || !(act_ok || res_ok) ||
        (t != TC_F32 && t != TC_F16 && t != TC_BF16))
        return tc_cuda_fail(c, TC_ERR_INTERNAL, "the executor gave this %s product an epilogue it cannot run",
                            tc_dtype_name(t));
    *act = e->act1;
    *res = r;
    return TC_OK;
}

/* The product with the step's activation: in the cuBLASLt epilogue when nothing is accumulated
 * into y (beta == 0), else as a pass over y afterwards. A residual is cuBLASLt's C (beta 1) when
 * nothing else is accumulated, else added afterwards. */
static tc_status gemm_act(const tc_cuda_call *c, tc_gemm_desc *d, const void *A, const void *B, tc_cuda_tensor *y,
                          const void *bias, tc_cuda_epi_act act, const tc_cuda_tensor *res) {
    if (res && d->beta == 0) {
        d->beta = 1.0;
        return tc_cuda_gemm_c(c, d, A, B, res->data, y->data, bias, WS_SLOT);
    }
    if (res) {
        TC_TRY(tc_cuda_gemm(c, d, A, B, y->data, bias, WS_SLOT));
        return tc_cuda_add_into(c, y, res);
    }
    if (act == TC_CUDA_EPI_NONE) return tc_cuda_gemm(c, d, A, B, y->data, bias, WS_SLOT);
    if (d->beta == 0) {
        d->act = act;
        return tc_cuda_gemm(c, d, A, B, y->data, bias, WS_SLOT);
    }
    TC_TRY(tc_cuda_gemm(c, d, A, B, y->data, bias, WS_SLOT));
    static const double no_params[3] = {0, 0, 0};
    return relay(c, tc_cuda_activation(act == TC_CUDA_EPI_RELU ? TC_CUDA_A_RELU : TC_CUDA_A_GELU_TANH, y->data,
                                       y->dtype, y->data, y->dtype, y->numel, no_params, 0, 0, c->stream, c->err));
}

static tc_status int_gemm(const tc_cuda_call *c, tc_cuda_int_gemm_args *a, const void *A, const void *B, void *out) {
    if (!tc_dtype_is_int(a->dtype)) return bad_dtype(c, a->dtype);
    return relay(c, tc_cuda_int_gemm(a, A, B, out, c->stream, c->err));
}

static tc_status cuda_mm(const tc_cuda_call *c) {
    const tc_cuda_tensor *a = tc_cuda_in(c, 0), *b = tc_cuda_in(c, 1);
    tc_cuda_tensor *y = c->out[0];
    if (a->dims[1] != b->dims[0])
        return tc_cuda_fail(c, TC_ERR_SHAPE, "inner dimensions differ at run time: %lld vs %lld",
                            (long long)a->dims[1], (long long)b->dims[0]);
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    tc_cuda_epi_act act;
    const tc_cuda_tensor *res;
    TC_TRY(step_epi(c, y, &act, &res));
    if (is_lt_dtype(y->dtype)) {
        tc_gemm_desc d = desc_for(c, y->dtype, 1, M, N, K);
        return gemm_act(c, &d, a->data, b->data, y, NULL, act, res);
    }
    tc_cuda_int_gemm_args ia = {.dtype = y->dtype, .batch = 1, .M = M, .N = N, .K = K, .alpha = 1};
    return int_gemm(c, &ia, a->data, b->data, y->data);
}

static tc_status cuda_bmm(const tc_cuda_call *c) {
    const tc_cuda_tensor *a = tc_cuda_in(c, 0), *b = tc_cuda_in(c, 1);
    tc_cuda_tensor *y = c->out[0];
    if (c->epi) return tc_cuda_fail(c, TC_ERR_INTERNAL, "the executor gave bmm an epilogue, which it cannot run");
    if (a->dims[0] != b->dims[0] || a->dims[2] != b->dims[1])
        return tc_cuda_fail(c, TC_ERR_SHAPE,
                            "operand shapes differ at run time: [%lld, %lld, %lld] @ [%lld, %lld, %lld]",
                            (long long)a->dims[0], (long long)a->dims[1], (long long)a->dims[2],
                            (long long)b->dims[0], (long long)b->dims[1], (long long)b->dims[2]);
    int64_t Bn = a->dims[0], M = a->dims[1], K = a->dims[2], N = b->dims[2];
    if (is_lt_dtype(y->dtype)) {
        tc_gemm_desc d = desc_for(c, y->dtype, Bn, M, N, K);
        return tc_cuda_gemm(c, &d, a->data, b->data, y->data, NULL, WS_SLOT);
    }
    tc_cuda_int_gemm_args ia = {.dtype = y->dtype, .batch = Bn, .M = M, .N = N, .K = K,
                                .stride_a = M * K, .stride_b = K * N, .alpha = 1};
    return int_gemm(c, &ia, a->data, b->data, y->data);
}

/* The strides that broadcast a rank <= 2 tensor s over [M, N], as the CPU's fill_broadcast. */
static void broadcast_strides(const tc_cuda_tensor *s, int64_t *s0, int64_t *s1) {
    int64_t d0 = s->rank >= 2 ? s->dims[s->rank - 2] : 1, d1 = s->rank >= 1 ? s->dims[s->rank - 1] : 1;
    *s1 = d1 == 1 ? 0 : 1;
    *s0 = d0 == 1 ? 0 : d1;
}

static bool broadcasts_to(const tc_cuda_tensor *s, int64_t M, int64_t N) {
    int64_t d0 = s->rank >= 2 ? s->dims[s->rank - 2] : 1, d1 = s->rank >= 1 ? s->dims[s->rank - 1] : 1;
    return s->rank <= 2 && (d0 == 1 || d0 == M) && (d1 == 1 || d1 == N);
}

/* A length-N vector added to every row: the cuBLASLt BIAS epilogue can take it. */
static bool is_row_vector(const tc_cuda_tensor *s, int64_t N) {
    if (s->rank == 1) return s->dims[0] == N;
    return s->rank == 2 && s->dims[0] == 1 && s->dims[1] == N;
}

static tc_status cuda_addmm(const tc_cuda_call *c) {
    const tc_cuda_tensor *s = tc_cuda_in(c, 0), *a = tc_cuda_in(c, 1), *b = tc_cuda_in(c, 2);
    tc_cuda_tensor *y = c->out[0];
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    if (K != b->dims[0] || !broadcasts_to(s, M, N))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "operand shapes differ at run time");
    double beta = tc_node_float(c->node, 3), alpha = tc_node_float(c->node, 4);
    tc_cuda_epi_act act;
    const tc_cuda_tensor *res;
    TC_TRY(step_epi(c, y, &act, &res));
    int64_t s0, s1;
    broadcast_strides(s, &s0, &s1);
    if (!is_lt_dtype(y->dtype)) {
        int64_t ibeta = (int64_t)beta;
        tc_cuda_int_gemm_args ia = {.dtype = y->dtype, .batch = 1, .M = M, .N = N, .K = K,
                                    .alpha = (int64_t)alpha, .beta = ibeta,
                                    .self = ibeta != 0 ? s->data : NULL, .s0 = s0, .s1 = s1};
        return int_gemm(c, &ia, a->data, b->data, y->data);
    }
    tc_gemm_desc d = desc_for(c, y->dtype, 1, M, N, K);
    d.alpha = alpha;
    if (beta == 0) /* self is ignored, NaN included, as in PyTorch */
        return gemm_act(c, &d, a->data, b->data, y, NULL, act, res);
    if (beta == 1 && is_row_vector(s, N)) {
        d.bias = true;
        return gemm_act(c, &d, a->data, b->data, y, s->data, act, res);
    }
    TC_TRY(relay(c, tc_cuda_broadcast_2d(s->data, s0, s1, y->data, y->dtype, M, N, c->stream, c->err)));
    d.beta = beta;
    return gemm_act(c, &d, a->data, b->data, y, NULL, act, res);
}

static tc_status cuda_linear(const tc_cuda_call *c) {
    const tc_cuda_tensor *x = tc_cuda_in(c, 0), *w = tc_cuda_in(c, 1), *bias = tc_cuda_in(c, 2);
    tc_cuda_tensor *y = c->out[0];
    int64_t K = x->dims[x->rank - 1];
    int64_t N = w->rank == 2 ? w->dims[0] : 1;
    if (w->dims[w->rank - 1] != K)
        return tc_cuda_fail(c, TC_ERR_SHAPE, "in_features differ at run time: input has %lld, weight %lld",
                            (long long)K, (long long)w->dims[w->rank - 1]);
    if (bias && !(bias->numel == 1 || (bias->rank == 1 && bias->dims[0] == N)))
        return tc_cuda_fail(c, TC_ERR_SHAPE, "bias size differs from out_features %lld at run time", (long long)N);
    if (N == 0) return TC_OK;
    tc_cuda_epi_act act;
    const tc_cuda_tensor *res;
    TC_TRY(step_epi(c, y, &act, &res));
    int64_t P = y->numel / N;
    /* a one-element bias broadcasts over every output; a length-N one is a row vector */
    bool scalar_bias = bias && !(bias->rank == 1 && bias->dims[0] == N);
    if (!is_lt_dtype(y->dtype)) {
        tc_cuda_int_gemm_args ia = {.dtype = y->dtype, .batch = 1, .M = P, .N = N, .K = K, .trans_b = true,
                                    .alpha = 1, .beta = 1, .self = bias ? bias->data : NULL,
                                    .s0 = 0, .s1 = scalar_bias ? 0 : 1};
        return int_gemm(c, &ia, x->data, w->data, y->data);
    }
    tc_gemm_desc d = desc_for(c, y->dtype, 1, P, N, K);
    d.trans_b = true;
    if (!bias) return gemm_act(c, &d, x->data, w->data, y, NULL, act, res);
    if (!scalar_bias) {
        d.bias = true;
        return gemm_act(c, &d, x->data, w->data, y, bias->data, act, res);
    }
    TC_TRY(relay(c, tc_cuda_broadcast_2d(bias->data, 0, 0, y->data, y->dtype, P, N, c->stream, c->err)));
    d.beta = 1.0;
    return gemm_act(c, &d, x->data, w->data, y, NULL, act, res);
}

void tc_cuda_register_matmul(tc_cuda_kernel *t) {
    t[TC_OP_MM] = cuda_mm;
    t[TC_OP_BMM] = cuda_bmm;
    t[TC_OP_ADDMM] = cuda_addmm;
    t[TC_OP_LINEAR] = cuda_linear;
}
