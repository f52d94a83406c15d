/* CPU kernels for mm, bmm, addmm and linear. f32/f16/bf16 run through the blocked f32 GEMM
 * (operands widened to f32 once, the result rounded once), f64 through tc_dgemm, and integer
 * types through exact int64 loops (rare in models, so kept simple). */
#include "backend/cpu/cpu.h"
#include "backend/cpu/gemm.h"
#include "core/dtype.h"

/* The dtype products are computed in. */
static tc_dtype work_dtype(tc_dtype t) {
    if (t == TC_F64) return TC_F64;
    if (tc_dtype_is_int(t)) return TC_I64;
    return TC_F32;
}

static const void *as_work(const tc_cpu_call *c, const tc_cpu_tensor *t, tc_dtype wt, int slot) {
    static const int64_t none[1];
    if (t->numel == 0) return none; /* empty inputs may have no buffer; nothing is read from them */
    if (t->dtype == wt) return t->data;
    if (wt == TC_F32) return tc_cpu_as_f32(c, t, slot);
    void *p = tc_cpu_scratch(c, slot, (size_t)(t->numel ? t->numel : 1) * tc_dtype_size(wt));
    if (p) tc_convert(t->data, t->dtype, p, wt, t->numel);
    return p;
}

static void *out_work(const tc_cpu_call *c, tc_cpu_tensor *t, tc_dtype wt, int slot) {
    if (t->dtype == wt) return t->data;
    return tc_cpu_scratch(c, slot, (size_t)(t->numel ? t->numel : 1) * tc_dtype_size(wt));
}

static void store_work(tc_cpu_tensor *t, const void *p, tc_dtype wt) {
    if (p != t->data) tc_convert(p, wt, t->data, t->dtype, t->numel);
}

static void igemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t alpha, const int64_t *A,
                  int64_t lda, const int64_t *B, int64_t ldb, int64_t beta, int64_t *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t acc = 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t a = ta ? A[k * lda + i] : A[i * lda + k];
                int64_t b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
            }
            C[i * ldc + j] = beta == 0 ? alpha * acc : alpha * acc + beta * C[i * ldc + j];
        }
}

/* One C = alpha * op(A) @ op(B) + beta * C in the work dtype. */
static void gemm_work(tc_dtype wt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                      int64_t ialpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                      int64_t ibeta, void *C, int64_t ldc) {
    if (wt == TC_F32)
        tc_sgemm(ta, tb, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
    else if (wt == TC_F64)
        tc_dgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        igemm(ta, tb, M, N, K, ialpha, A, lda, B, ldb, ibeta, C, ldc);
}

static tc_status oom(const tc_cpu_call *c) { return tc_cpu_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory"); }

static tc_status cpu_mm(const tc_cpu_call *c) {
    const tc_cpu_tensor *a = tc_cpu_in(c, 0), *b = tc_cpu_in(c, 1);
    tc_cpu_tensor *y = c->out[0];
    if (a->dims[1] != b->dims[0])
        return tc_cpu_fail(c, TC_ERR_SHAPE, "inner dimensions differ at run time: %lld vs %lld",
                           (long long)a->dims[1], (long long)b->dims[0]);
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    tc_dtype wt = work_dtype(y->dtype);
    const void *A = as_work(c, a, wt, 0), *B = as_work(c, b, wt, 1);
    void *C = out_work(c, y, wt, 2);
    if (!A || !B || !C) return oom(c);
    gemm_work(wt, false, false, M, N, K, 1.0, 1, A, K, B, N, 0.0, 0, C, N);
    store_work(y, C, wt);
    return TC_OK;
}

static tc_status cpu_bmm(const tc_cpu_call *c) {
    const tc_cpu_tensor *a = tc_cpu_in(c, 0), *b = tc_cpu_in(c, 1);
    tc_cpu_tensor *y = c->out[0];
    if (a->dims[0] != b->dims[0] || a->dims[2] != b->dims[1])
        return tc_cpu_fail(c, TC_ERR_SHAPE, "operand shapes differ at run time: [%lld, %lld, %lld] @ [%lld, %lld, %lld]",
                           (long long)a->dims[0], (long long)a->dims[1], (long long)a->dims[2],
                           (long long)b->dims[0], (long long)b->dims[1], (long long)b->dims[2]);
    int64_t Bn = a->dims[0], M = a->dims[1], K = a->dims[2], N = b->dims[2];
    tc_dtype wt = work_dtype(y->dtype);
    const void *A = as_work(c, a, wt, 0), *B = as_work(c, b, wt, 1);
    void *C = out_work(c, y, wt, 2);
    if (!A || !B || !C) return oom(c);
    if (wt == TC_F32) {
        tc_sgemm_batched(Bn, false, false, M, N, K, 1.0f, A, K, M * K, B, N, K * N, 0.0f, C, N, M * N);
    } else {
        size_t es = tc_dtype_size(wt);
        for (int64_t i = 0; i < Bn; i++)
            gemm_work(wt, false, false, M, N, K, 1.0, 1, (const char *)A + (size_t)(i * M * K) * es, K,
                      (const char *)B + (size_t)(i * K * N) * es, N, 0.0, 0, (char *)C + (size_t)(i * M * N) * es, N);
    }
    store_work(y, C, wt);
    return TC_OK;
}

/* C[M, N] = s broadcast (s of rank <= 2, already in the work dtype), scaled by beta. */
static void fill_broadcast(tc_dtype wt, const tc_cpu_tensor *s, const void *S, double beta, int64_t ibeta,
                           int64_t M, int64_t N, void *C) {
    int64_t d0 = s->rank >= 2 ? s->dims[s->rank - 2] : 1, d1 = s->rank >= 1 ? s->dims[s->rank - 1] : 1;
    int64_t s1 = d1 == 1 ? 0 : 1, s0 = d0 == 1 ? 0 : d1;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t k = i * s0 + j * s1;
            if (wt == TC_F32) ((float *)C)[i * N + j] = (float)beta * ((const float *)S)[k];
            else if (wt == TC_F64) ((double *)C)[i * N + j] = beta * ((const double *)S)[k];
            else ((int64_t *)C)[i * N + j] = ibeta * ((const int64_t *)S)[k];
        }
}

static bool broadcasts_to(const tc_cpu_tensor *s, int64_t M, int64_t N) {
    int64_t d0 = s->rank >= 2 ? s->dims[s->rank - 2] : 1, d1 = s->rank >= 1 ? s->dims[s->rank - 1] : 1;
    return s->rank <= 2 && (d0 == 1 || d0 == M) && (d1 == 1 || d1 == N);
}

static tc_status cpu_addmm(const tc_cpu_call *c) {
    const tc_cpu_tensor *s = tc_cpu_in(c, 0), *a = tc_cpu_in(c, 1), *b = tc_cpu_in(c, 2);
    tc_cpu_tensor *y = c->out[0];
    int64_t M = a->dims[0], K = a->dims[1], N = b->dims[1];
    if (K != b->dims[0] || !broadcasts_to(s, M, N))
        return tc_cpu_fail(c, TC_ERR_SHAPE, "operand shapes differ at run time");
    double beta = tc_node_float(c->node, 3), alpha = tc_node_float(c->node, 4);
    int64_t ibeta = (int64_t)beta, ialpha = (int64_t)alpha;
    tc_dtype wt = work_dtype(y->dtype);
    const void *A = as_work(c, a, wt, 0), *B = as_work(c, b, wt, 1);
    void *C = out_work(c, y, wt, 2);
    if (!A || !B || !C) return oom(c);
    bool use_self = wt == TC_I64 ? ibeta != 0 : beta != 0;
    if (use_self) {
        const void *S = as_work(c, s, wt, 3);
        if (!S) return oom(c);
        fill_broadcast(wt, s, S, beta, ibeta, M, N, C);
    }
    gemm_work(wt, false, false, M, N, K, alpha, ialpha, A, K, B, N, use_self ? 1.0 : 0.0, use_self ? 1 : 0, C, N);
    store_work(y, C, wt);
    return TC_OK;
}

static tc_status cpu_linear(const tc_cpu_call *c) {
    const tc_cpu_tensor *x = tc_cpu_in(c, 0), *w = tc_cpu_in(c, 1), *bias = tc_cpu_in(c, 2);
    tc_cpu_tensor *y = c->out[0];
    int64_t K = x->dims[x->rank - 1];
    int64_t N = w->rank == 2 ? w->dims[0] : 1;
    if (w->dims[w->rank - 1] != K)
        return tc_cpu_fail(c, TC_ERR_SHAPE, "in_features differ at run time: input has %lld, weight %lld",
                           (long long)K, (long long)w->dims[w->rank - 1]);
    if (bias && !(bias->numel == 1 || (bias->rank == 1 && bias->dims[0] == N)))
        return tc_cpu_fail(c, TC_ERR_SHAPE, "bias size differs from out_features %lld at run time", (long long)N);
    int64_t P = y->numel / (N ? N : 1);
    if (N == 0) return TC_OK;
    tc_dtype wt = work_dtype(y->dtype);
    const void *X = as_work(c, x, wt, 0), *W = as_work(c, w, wt, 1);
    void *C = out_work(c, y, wt, 2);
    if (!X || !W || !C) return oom(c);
    if (bias) {
        const void *Bv = as_work(c, bias, wt, 3);
        if (!Bv) return oom(c);
        tc_cpu_tensor row = *bias;
        if (bias->numel == 1) row.rank = 0;
        fill_broadcast(wt, &row, Bv, 1.0, 1, P, N, C);
    }
    gemm_work(wt, false, true, P, N, K, 1.0, 1, X, K, W, K, bias ? 1.0 : 0.0, bias ? 1 : 0, C, N);
    store_work(y, C, wt);
    return TC_OK;
}

void tc_cpu_register_matmul(tc_cpu_kernel *t) {
    t[TC_OP_MM] = cpu_mm;
    t[TC_OP_BMM] = cpu_bmm;
    t[TC_OP_ADDMM] = cpu_addmm;
    t[TC_OP_LINEAR] = cpu_linear;
}
