/* Row-major batched GEMM through cuBLASLt. cuBLASLt is column-major, and a row-major matrix is
 * its transpose in column-major order, so D = op(A) op(B) runs as D^T = op(B)^T op(A)^T: the
 * operands swap places and keep their own transpose flags. Plans are cached per node and shape. */
#include "backend/cuda/cublaslt.h"
#include "backend/cuda/kernels/activation.h"
#include "backend/cuda/kernels/matmul.h"
#include "core/dtype.h"
#include "engine/serialize.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a plan depends on, as one array: compared on a cache hit so that a hash collision
 * rebuilds instead of running the wrong plan. */
enum { KEY_LEN = 24 };
/* Word 0 of every key: a family tag and the key layout's version, so that a stored choice (engine
 * file, timing cache) never meets a key of another layout. Bump the version with any key change. */
#define GEMM_KEY_TAG ((int64_t)0x67656d6d << 8 | 1) /* "gemm", version 1 */

struct tc_gemm_plan {
    int64_t key[KEY_LEN];
    tc_gemm_desc d;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld; /* cuBLASLt's A (our B), B (our A), C = D */
    cublasLtMatmulAlgo_t algo;
    size_t workspace_bytes;
    bool epilogue_bias;
    /* the heuristic's valid algorithms, in its order, until tc_gemm_plan_tune picks one */
    int ncands;
    cublasLtMatmulAlgo_t cands[8];
};

static tc_status lt_fail(cublasStatus_t s, const char *what, tc_error *err) {
    tc_status code = s == CUBLAS_STATUS_NOT_SUPPORTED ? TC_ERR_UNSUPPORTED
                     : s == CUBLAS_STATUS_ALLOC_FAILED ? TC_ERR_OUT_OF_MEMORY
                                                       : TC_ERR_CUDA;
    return tc_errorf(err, code, "cuBLASLt %s failed: %s (%s)", what, cublasLtGetStatusName(s),
                     cublasLtGetStatusString(s));
}

#define LT_TRY(call, what)                                      \
    do {                                                        \
        cublasStatus_t lt_s_ = (call);                          \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS) {                   \
            tc_status st_ = lt_fail(lt_s_, what, err);          \
            tc_gemm_plan_free(p);                               \
            return st_;                                         \
        }                                                       \
    } while (0)

unsigned tc_gemm_alignment(const void *p) {
    uintptr_t v = (uintptr_t)p;
    unsigned a = 1;
    while (a < 16 && v % (2u * a) == 0) a *= 2;
    return a;
}

static bool lt_types(tc_dtype t, bool tf32, cudaDataType_t *data, cublasComputeType_t *comp, cudaDataType_t *scale) {
    switch (t) {
    case TC_F32: *data = CUDA_R_32F, *comp = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F; break;
    case TC_F16: *data = CUDA_R_16F, *comp = CUBLAS_COMPUTE_32F; break;
    case TC_BF16: *data = CUDA_R_16BF, *comp = CUBLAS_COMPUTE_32F; break;
    case TC_F64: *data = CUDA_R_64F, *comp = CUBLAS_COMPUTE_64F, *scale = CUDA_R_64F; return true;
    default: return false;
    }
    *scale = CUDA_R_32F;
    return true;
}

/* Fills in packed leading dims and checks the descriptor; *out is d with lda/ldb/ldd set. */
static tc_status normalize(const tc_gemm_desc *d, tc_gemm_desc *out, tc_error *err) {
    *out = *d;
    if (d->batch < 0 || d->M < 0 || d->N < 0 || d->K < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "gemm: negative size (batch %lld, M %lld, N %lld, K %lld)",
                         (long long)d->batch, (long long)d->M, (long long)d->N, (long long)d->K);
    int64_t arow = d->trans_a ? d->M : d->K, brow = d->trans_b ? d->K : d->N;
    if (!out->lda) out->lda = arow;
    if (!out->ldb) out->ldb = brow;
    if (!out->ldd) out->ldd = d->N;
    if (out->lda < arow || out->ldb < brow || out->ldd < d->N)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "gemm: leading dimensions (%lld, %lld, %lld) are shorter than the rows (%lld, %lld, %lld)",
                         (long long)out->lda, (long long)out->ldb, (long long)out->ldd, (long long)arow,
                         (long long)brow, (long long)d->N);
    if (d->batch > INT32_MAX)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "gemm: batch %lld is larger than cuBLASLt allows",
                         (long long)d->batch);
    if (d->batch > 1 && d->stride_d < (d->M - 1) * out->ldd + d->N)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "gemm: output batch stride %lld makes batches overlap",
                         (long long)d->stride_d);
    if (d->stride_a < 0 || d->stride_b < 0 || d->bias_stride < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "gemm: negative batch stride");
    if (d->act != TC_CUDA_EPI_NONE && d->act != TC_CUDA_EPI_RELU && d->act != TC_CUDA_EPI_GELU_TANH)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "gemm: unknown activation %d", (int)d->act);
    if (d->act != TC_CUDA_EPI_NONE && (d->beta != 0 || d->dtype == TC_F64))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "gemm: an activation epilogue needs beta = 0 and f32, f16 or bf16 (got beta %g, %s)",
                         d->beta, tc_dtype_name(d->dtype));
    return TC_OK;
}

static void make_key(const tc_gemm_desc *d, unsigned aa, unsigned ab, unsigned ad, unsigned abias, size_t ws,
                     int64_t *k) {
    int64_t alpha, beta;
    memcpy(&alpha, &d->alpha, 8);
    memcpy(&beta, &d->beta, 8);
    int64_t v[KEY_LEN] = {GEMM_KEY_TAG, d->dtype,     d->batch,    d->M,        d->N,      d->K,
                          d->trans_a,   d->trans_b,  d->lda,      d->ldb,    d->ldd,
                          d->stride_a,  d->stride_b, d->stride_d, alpha,     beta,
                          d->bias,      d->bias_stride, d->allow_tf32, aa,   ab,
                          ad,           (int64_t)abias ^ ((int64_t)ws << 16), d->act};
    memcpy(k, v, sizeof v);
}

static uint64_t key_hash(const int64_t *k) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)k;
    for (size_t i = 0; i < KEY_LEN * sizeof(int64_t); i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static cublasStatus_t set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
    int32_t n = (int32_t)batch;
    cublasStatus_t s = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
}

void tc_gemm_plan_free(void *ptr) {
    tc_gemm_plan *p = ptr;
    if (!p) return;
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld) cublasLtMatrixLayoutDestroy(p->ld);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    free(p);
}

/* Whether an alternative to the heuristic's first algorithm sums as precisely: no split-K, or
 * split-K partial sums reduced in the compute type (in-place and output-type reductions add in
 * f16/bf16 or with atomics, which the first choice may do but tuning must not introduce). */
static bool same_numerics(const cublasLtMatmulAlgo_t *a) {
    int32_t splitk = 1;
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
    size_t n = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &n) !=
        CUBLAS_STATUS_SUCCESS)
        return false;
    if (splitk <= 1) return true;
    if (cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme, &n) !=
        CUBLAS_STATUS_SUCCESS)
        return false;
    return scheme == CUBLASLT_REDUCTION_SCHEME_NONE || scheme == CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
}

tc_status tc_gemm_plan_create(void *lt, const tc_gemm_desc *desc, unsigned align_a, unsigned align_b,
                              unsigned align_d, unsigned align_bias, size_t workspace_bytes, tc_gemm_plan **out,
                              tc_error *err) {
    *out = NULL;
    tc_gemm_plan *p = NULL;
    tc_gemm_desc d;
    TC_TRY(normalize(desc, &d, err));
    if (d.batch == 0 || d.M == 0 || d.N == 0 || d.K == 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "gemm: a plan needs batch, M, N and K > 0 (got %lld, %lld, %lld, %lld)", (long long)d.batch,
                         (long long)d.M, (long long)d.N, (long long)d.K);
    cudaDataType_t data, scale;
    cublasComputeType_t comp;
    if (!lt_types(d.dtype, d.allow_tf32, &data, &comp, &scale))
        return tc_errorf(err, TC_ERR_DTYPE, "gemm: dtype %s is not supported (f32, f16, bf16, f64)",
                         tc_dtype_name(d.dtype));
    if (!lt) return tc_errorf(err, TC_ERR_CUDA, "gemm: no cuBLASLt handle");
    p = calloc(1, sizeof *p);
    if (!p) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "gemm: out of memory");
    make_key(&d, align_a, align_b, align_d, align_bias, workspace_bytes, p->key);
    p->d = d;
    p->workspace_bytes = workspace_bytes;
    p->epilogue_bias = d.bias && d.dtype != TC_F64;

    LT_TRY(cublasLtMatmulDescCreate(&p->op, comp, scale), "matmul descriptor creation");
    int32_t opa = d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opb = d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "TRANSA");
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "TRANSB");
    uint32_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (d.act == TC_CUDA_EPI_RELU) epi = p->epilogue_bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    else if (d.act == TC_CUDA_EPI_GELU_TANH)
        epi = p->epilogue_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    else if (p->epilogue_bias) epi = CUBLASLT_EPILOGUE_BIAS;
    if (epi != CUBLASLT_EPILOGUE_DEFAULT)
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "EPILOGUE");
    if (p->epilogue_bias) {
        /* The heuristic reads the bias pointer's alignment only; a stand-in with the promised
         * alignment lets it choose before the real pointer is known. */
        const void *fake = (const void *)(uintptr_t)(align_bias ? align_bias : 16);
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &fake, sizeof fake),
               "BIAS_POINTER");
        if (d.batch > 1) {
            int64_t bs = d.bias_stride;
            LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &bs, sizeof bs),
                   "BIAS_BATCH_STRIDE");
        }
    }
    /* cuBLASLt's A is our B seen column-major: [N, K] (ld ldb) when B is stored [K, N] row-major. */
    LT_TRY(cublasLtMatrixLayoutCreate(&p->la, data, d.trans_b ? (uint64_t)d.K : (uint64_t)d.N,
                                      d.trans_b ? (uint64_t)d.N : (uint64_t)d.K, d.ldb),
           "layout of B");
    LT_TRY(cublasLtMatrixLayoutCreate(&p->lb, data, d.trans_a ? (uint64_t)d.M : (uint64_t)d.K,
                                      d.trans_a ? (uint64_t)d.K : (uint64_t)d.M, d.lda),
           "layout of A");
    LT_TRY(cublasLtMatrixLayoutCreate(&p->ld, data, (uint64_t)d.N, (uint64_t)d.M, d.ldd), "layout of D");
    if (d.batch > 1) {
        LT_TRY(set_batch(p->la, d.batch, d.stride_b), "batch of B");
        LT_TRY(set_batch(p->lb, d.batch, d.stride_a), "batch of A");
        LT_TRY(set_batch(p->ld, d.batch, d.stride_d), "batch of D");
    }

    cublasLtMatmulPreference_t pref = NULL;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref), "preference creation");
    uint64_t ws = workspace_bytes;
    uint32_t al[4] = {align_b, align_a, align_d, align_d};
    cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws);
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &al[i], sizeof al[i]);
    cublasLtMatmulHeuristicResult_t res[8];
    int got = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)lt, p->op, p->la, p->lb, p->ld, p->ld, pref, 8, res,
                                           &got);
    cublasLtMatmulPreferenceDestroy(pref);
    LT_TRY(s, "heuristic query");
    int pick = -1, want = tc_tactic_candidates();
    for (int i = 0; i < got && p->ncands < want && p->ncands < 8; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > workspace_bytes) continue;
        if (pick >= 0 && !same_numerics(&res[i].algo)) continue;
        if (pick < 0) pick = i;
        p->cands[p->ncands++] = res[i].algo;
    }
    if (pick < 0) {
        tc_gemm_plan_free(p);
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "cuBLASLt has no algorithm for %s gemm batch %lld, M %lld, N %lld, K %lld (trans %d%d, "
                         "alignments %u/%u/%u bytes)",
                         tc_dtype_name(d.dtype), (long long)d.batch, (long long)d.M, (long long)d.N, (long long)d.K,
                         d.trans_a, d.trans_b, align_a, align_b, align_d);
    }
    p->algo = res[pick].algo;
    *out = p;
    return TC_OK;
}

tc_status tc_gemm_plan_run(const tc_gemm_plan *p, void *lt, const void *A, const void *B, const void *C, void *D,
                           const void *bias, void *workspace, void *stream, tc_error *err) {
    if (!p || !lt || !A || !B || !D || (p->d.bias && !bias) || (p->workspace_bytes && !workspace))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "gemm: NULL plan, handle or buffer");
    const tc_gemm_desc *d = &p->d;
    if (p->epilogue_bias) {
        cublasStatus_t s =
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
        if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(s, "setting the bias pointer", err);
    }
    float af = (float)d->alpha, bf = (float)d->beta;
    const void *alpha = &af, *beta = &bf;
    if (d->dtype == TC_F64) alpha = &d->alpha, beta = &d->beta;
    /* Operands swap: cuBLASLt's A is our B. C has D's layout; without one it aliases D, which
     * cuBLASLt allows. */
    cublasStatus_t s = cublasLtMatmul((cublasLtHandle_t)lt, p->op, alpha, B, p->la, A, p->lb, beta, C ? C : D, p->ld,
                                      D, p->ld, &p->algo, workspace, p->workspace_bytes, (cudaStream_t)stream);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_fail(s, "matmul", err);
    if (d->bias && !p->epilogue_bias) {
        if (d->ldd != d->N || (d->batch > 1 && (d->stride_d != d->M * d->N || d->bias_stride != 0)))
            return tc_errorf(err, TC_ERR_UNSUPPORTED, "gemm: a %s bias needs a packed output and one bias vector",
                             tc_dtype_name(d->dtype));
        TC_TRY(tc_cuda_rows_scale_bias(D, bias, d->dtype, d->batch * d->M, d->N, 1.0, stream, err));
    }
    return TC_OK;
}

/* Without TENSORC_AUTOTUNE, runs choose without timing (the first valid candidate), except on a
 * thread inside tc_tactic_set_thread_default: the run that prepares an engine file times its
 * candidates, and the file stores what it chose, so that every process loading it runs the same. */
static _Thread_local int tl_default_candidates = 1;

int tc_tactic_set_thread_default(int n) {
    int old = tl_default_candidates;
    tl_default_candidates = n < 1 ? 1 : n > TC_TACTIC_MAX ? TC_TACTIC_MAX : n;
    return old;
}

int tc_tactic_candidates(void) {
    const char *v = getenv("TENSORC_AUTOTUNE");
    if (!v || !*v) return tl_default_candidates;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end) return tl_default_candidates;
    if (n <= 0) return 1;
    if (n == 1) return 8;
    return n > TC_TACTIC_MAX ? TC_TACTIC_MAX : (int)n;
}

bool tc_tactic_log(void) {
    const char *v = getenv("TENSORC_LOG_TACTICS");
    return v && *v && strcmp(v, "0") != 0;
}

bool tc_tactic_can_time(void *stream) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing((cudaStream_t)stream, &cs) != cudaSuccess) {
        (void)cudaGetLastError(); /* the query's own error; not sticky */
        return false;
    }
    return cs == cudaStreamCaptureStatusNone;
}

tc_status tc_tactic_time(void *stream, tc_status (*fn)(void *arg, tc_error *err), void *arg, int reps, float *ms,
                         tc_error *err) {
    *ms = -1.0f;
    if (reps < 1) reps = 1;
    if (reps > 8) reps = 8;
    cudaStream_t st = (cudaStream_t)stream;
    cudaEvent_t ev[9] = {0};
    int made = 0;
    cudaError_t ce = cudaSuccess;
    for (; made <= reps && ce == cudaSuccess; made++) ce = cudaEventCreate(&ev[made]);
    if (ce != cudaSuccess) made--; /* the failed one holds no event */
    tc_status s = TC_OK;
    if (ce != cudaSuccess) s = tc_errorf(err, TC_ERR_CUDA, "tactic timing: event creation failed: %s",
                                         cudaGetErrorString(ce));
    if (s == TC_OK) s = fn(arg, err); /* warm-up: first-launch costs stay out of the times */
    if (s == TC_OK) {
        ce = cudaEventRecord(ev[0], st);
        for (int r = 0; r < reps && ce == cudaSuccess && s == TC_OK; r++) {
            s = fn(arg, err);
            if (s == TC_OK) ce = cudaEventRecord(ev[r + 1], st);
        }
        if (s == TC_OK && ce == cudaSuccess) ce = cudaEventSynchronize(ev[reps]);
        for (int r = 0; r < reps && s == TC_OK && ce == cudaSuccess; r++) {
            float t = 0;
            ce = cudaEventElapsedTime(&t, ev[r], ev[r + 1]);
            if (ce == cudaSuccess && (*ms < 0 || t < *ms)) *ms = t;
        }
        if (s == TC_OK && ce != cudaSuccess)
            s = tc_errorf(err, TC_ERR_CUDA, "tactic timing failed: %s", cudaGetErrorString(ce));
    }
    for (int i = 0; i < made; i++) (void)cudaEventDestroy(ev[i]);
    if (s != TC_OK) *ms = -1.0f;
    return s;
}

typedef struct gemm_trial {
    tc_gemm_plan *p;
    void *lt;
    const void *A, *B, *C, *bias;
    void *D, *workspace, *stream;
} gemm_trial;

static tc_status gemm_trial_run(void *arg, tc_error *err) {
    gemm_trial *t = arg;
    return tc_gemm_plan_run(t->p, t->lt, t->A, t->B, t->C, t->D, t->bias, t->workspace, t->stream, err);
}

/* Elements from D's first to one past its last element. */
static int64_t d_extent(const tc_gemm_desc *d) { return (d->batch - 1) * d->stride_d + (d->M - 1) * d->ldd + d->N; }

tc_status tc_gemm_plan_tune(tc_gemm_plan *p, void *lt, const void *A, const void *B, const void *C, void *D,
                            const void *bias, void *workspace, void *stream, tc_tactic_info *info, tc_error *err) {
    info->tried = 0, info->chosen = 0, info->ms = info->first_ms = -1.0f;
    if (!p || p->ncands <= 1 || !tc_tactic_can_time(stream)) {
        if (p) p->ncands = 0;
        return TC_OK;
    }
    /* beta != 0 without C reads D: each trial would add into the last one's result, so time into a copy */
    void *scratch_d = NULL;
    if (p->d.beta != 0 && !C) {
        size_t bytes = (size_t)d_extent(&p->d) * tc_dtype_size(p->d.dtype);
        if (cudaMalloc(&scratch_d, bytes) != cudaSuccess) {
            (void)cudaGetLastError(); /* out of memory is not sticky: keep the first algorithm */
            p->ncands = 0;
            return TC_OK;
        }
        if (cudaMemsetAsync(scratch_d, 0, bytes, (cudaStream_t)stream) != cudaSuccess) {
            (void)cudaFree(scratch_d);
            return tc_errorf(err, TC_ERR_CUDA, "gemm tuning: clearing a scratch output failed");
        }
    }
    gemm_trial t = {p, lt, A, B, C, bias, scratch_d ? scratch_d : D, workspace, stream};
    cublasLtMatmulAlgo_t first = p->cands[0];
    int best = -1;
    float best_ms = 0;
    tc_status s = TC_OK;
    char first_msg[sizeof err->msg] = "";
    for (int i = 0; i < p->ncands; i++) {
        p->algo = p->cands[i];
        float ms = -1.0f;
        s = tc_tactic_time(stream, gemm_trial_run, &t, 3, &ms, err);
        if (s != TC_OK) {
            /* an algorithm the library refuses at launch is skipped; a device fault shows below */
            if (!first_msg[0]) snprintf(first_msg, sizeof first_msg, "%s", err->msg);
            s = TC_OK;
            continue;
        }
        info->tried++;
        if (i == 0) info->first_ms = ms;
        if (best < 0 || ms < best_ms) best = i, best_ms = ms;
    }
    cudaError_t ce = cudaStreamSynchronize((cudaStream_t)stream);
    if (ce != cudaSuccess)
        s = tc_errorf(err, TC_ERR_CUDA, "gemm tuning: the stream failed: %s", cudaGetErrorString(ce));
    if (scratch_d) {
        ce = cudaFree(scratch_d);
        if (ce != cudaSuccess && s == TC_OK)
            s = tc_errorf(err, TC_ERR_CUDA, "gemm tuning: freeing a scratch output failed: %s", cudaGetErrorString(ce));
    }
    if (s != TC_OK) {
        p->algo = first;
        p->ncands = 0;
        return s;
    }
    if (best < 0) {
        p->algo = first;
        p->ncands = 0;
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "gemm: no algorithm of the heuristic ran: %s", first_msg);
    }
    p->algo = p->cands[best];
    info->chosen = best, info->ms = best_ms;
    p->ncands = 0;
    return TC_OK;
}

bool tc_gemm_plan_use(tc_gemm_plan *p, void *lt, const void *algo, size_t len) {
    if (!p || !lt || len != sizeof(cublasLtMatmulAlgo_t)) return false;
    cublasLtMatmulAlgo_t a;
    memcpy(&a, algo, sizeof a);
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    if (cublasLtMatmulAlgoCheck((cublasLtHandle_t)lt, p->op, p->la, p->lb, p->ld, p->ld, &a, &res) !=
            CUBLAS_STATUS_SUCCESS ||
        res.state != CUBLAS_STATUS_SUCCESS || res.workspaceSize > p->workspace_bytes)
        return false;
    p->algo = a;
    p->ncands = 0;
    return true;
}

void tc_gemm_plan_algo(const tc_gemm_plan *p, const void **algo, size_t *len) {
    *algo = &p->algo;
    *len = sizeof p->algo;
}

void tc_gemm_plan_describe(const tc_gemm_plan *p, char *buf, size_t size) {
    int32_t id = -1, splitk = 1;
    uint32_t tile = 0;
    size_t n = 0;
    (void)cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &n);
    (void)cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &n);
    (void)cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &n);
    snprintf(buf, size, "algo %d tile %u splitk %d", (int)id, (unsigned)tile, (int)splitk);
}

/* Moves the message of a helper's failure into one that names the node. */
static tc_status relay(const tc_cuda_call *c, tc_status s) {
    char msg[sizeof c->err->msg];
    snprintf(msg, sizeof msg, "%s", c->err->msg);
    return tc_cuda_fail(c, s, "%s", msg);
}

tc_status tc_cuda_gemm(const tc_cuda_call *c, const tc_gemm_desc *desc, const void *A, const void *B, void *D,
                       const void *bias, int ws_slot) {
    return tc_cuda_gemm_c(c, desc, A, B, NULL, D, bias, ws_slot);
}

tc_status tc_cuda_gemm_c(const tc_cuda_call *c, const tc_gemm_desc *desc, const void *A, const void *B, const void *C,
                         void *D, const void *bias, int ws_slot) {
    tc_gemm_desc d;
    tc_status s = normalize(desc, &d, c->err);
    if (s != TC_OK) return relay(c, s);
    if (d.batch == 0 || d.M == 0 || d.N == 0) return TC_OK;
    if (d.K == 0) {
        /* an empty sum: D = beta*D + bias (D = C first when C is separate), which cuBLASLt does not take */
        if (d.ldd != d.N || (d.batch > 1 && (d.stride_d != d.M * d.N || (d.bias && d.bias_stride != 0))))
            return tc_cuda_fail(c, TC_ERR_UNSUPPORTED, "gemm with K = 0 needs a packed output and one bias vector");
        if (C && C != D && d.beta != 0) {
            size_t bytes = (size_t)(d.batch * d.M * d.N) * tc_dtype_size(d.dtype);
            if (cudaMemcpyAsync(D, C, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)c->stream) != cudaSuccess) {
                (void)cudaGetLastError();
                return tc_cuda_fail(c, TC_ERR_CUDA, "gemm with K = 0: copying C into D failed");
            }
        }
        s = tc_cuda_rows_scale_bias(D, d.bias ? bias : NULL, d.dtype, d.batch * d.M, d.N, d.beta, c->stream, c->err);
        if (s == TC_OK && d.act != TC_CUDA_EPI_NONE) {
            static const double no_params[3] = {0, 0, 0};
            s = tc_cuda_activation(d.act == TC_CUDA_EPI_RELU ? TC_CUDA_A_RELU : TC_CUDA_A_GELU_TANH, D, d.dtype, D,
                                   d.dtype, d.batch * d.M * d.N, no_params, 0, 0, c->stream, c->err);
        }
        return s == TC_OK ? TC_OK : relay(c, s);
    }
    unsigned aa = tc_gemm_alignment(A), ab = tc_gemm_alignment(B), ad = tc_gemm_alignment(D);
    if (C && tc_gemm_alignment(C) < ad) ad = tc_gemm_alignment(C); /* one alignment for C and D */
    unsigned abias = d.bias ? tc_gemm_alignment(bias) : 0;
    size_t wsb = TC_GEMM_WORKSPACE_BYTES, limit = tc_cuda_workspace_limit(c);
    if (limit < wsb) wsb = limit;
    int64_t key[KEY_LEN];
    make_key(&d, aa, ab, ad, abias, wsb, key);
    void **slot = tc_cuda_node_cache(c, key_hash(key) ^ 0x6765ull /* "ge" */, tc_gemm_plan_free);
    if (!slot) return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "out of memory for the gemm plan cache");
    tc_gemm_plan *p = *slot;
    if (p && memcmp(p->key, key, sizeof key) != 0) {
        tc_gemm_plan_free(p);
        *slot = p = NULL;
    }
    bool fresh = false, stored = false, unusable = false;
    if (!p) {
        s = tc_gemm_plan_create(tc_cuda_cublaslt(c), &d, aa, ab, ad, abias, wsb, &p, c->err);
        if (s != TC_OK) return relay(c, s);
        *slot = p;
        fresh = true;
        /* the algorithm the engine chose before, in this process or the one that built its file */
        size_t len = 0;
        void *rec = tc_cuda_choice_find(c, TC_RECORD_CUBLASLT_ALGO, key, sizeof key, &len);
        if (rec) {
            stored = tc_gemm_plan_use(p, tc_cuda_cublaslt(c), rec, len);
            unusable = !stored;
            free(rec);
            if (stored) tc_cuda_choice_used(c);
            else tc_cuda_choice_drop(c, TC_RECORD_CUBLASLT_ALGO, key, sizeof key);
        }
    }
    void *ws = wsb ? tc_cuda_scratch(c, ws_slot, wsb) : NULL;
    if (wsb && !ws)
        return tc_cuda_fail(c, TC_ERR_OUT_OF_MEMORY, "no %zu bytes of scratch memory for the gemm workspace", wsb);
    if (fresh && !stored && p->ncands > 1 && !tc_cuda_capturing(c)) {
        /* the plan is in the cache already: a failed tuning leaves its first algorithm in place */
        tc_tactic_info info;
        s = tc_gemm_plan_tune(p, tc_cuda_cublaslt(c), A, B, C, D, bias, ws, c->stream, &info, c->err);
        if (s != TC_OK) return relay(c, s);
        if (tc_tactic_log()) {
            char label[256], what[96];
            tc_gemm_plan_describe(p, what, sizeof what);
            fprintf(stderr,
                    "tensorc tactic: %s: gemm %s b%lld m%lld n%lld k%lld: %d candidates timed, chosen #%d (%s) "
                    "%.4f ms, first %.4f ms\n",
                    tc_node_label(c->node, label, sizeof label), tc_dtype_name(d.dtype), (long long)d.batch,
                    (long long)d.M, (long long)d.N, (long long)d.K, info.tried, info.chosen, what, (double)info.ms,
                    (double)info.first_ms);
        }
    }
    p->ncands = 0;
    if (fresh && !stored) {
        char desc[96], what[80];
        const void *algo;
        size_t len;
        tc_gemm_plan_describe(p, what, sizeof what);
        snprintf(desc, sizeof desc, "cublaslt %s", what);
        tc_gemm_plan_algo(p, &algo, &len);
        tc_cuda_choice_store(c, TC_RECORD_CUBLASLT_ALGO, key, sizeof key, desc, algo, len, unusable);
    }
    s = tc_gemm_plan_run(p, tc_cuda_cublaslt(c), A, B, C, D, bias, ws, c->stream, c->err);
    return s == TC_OK ? TC_OK : relay(c, s);
}
