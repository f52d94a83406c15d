/* Batched, strided GEMM on row-major tensors through cuBLASLt, for any CUDA kernel that needs a
 * matrix product (matmul ops, attention, ...): a descriptor of the product, a plan (cuBLASLt
 * descriptors + the heuristic's algorithm) built once per shape, and a runner that caches plans per
 * node and takes its workspace from the call's scratch memory. Plain C; no cuBLAS header needed. */
#ifndef TC_BACKEND_CUDA_CUBLASLT_H
#define TC_BACKEND_CUDA_CUBLASLT_H

#include "backend/cuda/cuda.h"

/* D = alpha * op(A) @ op(B) + beta * D (+ bias), for every batch b:
 *   D_b = D + b*stride_d is M x N with row stride ldd,
 *   op(A_b) is M x K: A_b = A + b*stride_a stored [M, K] (lda >= K), or [K, M] (lda >= M) when trans_a,
 *   op(B_b) is K x N: B_b = B + b*stride_b stored [K, N] (ldb >= N), or [N, K] (ldb >= K) when trans_b.
 * All operands share dtype: TC_F32 (TF32 tensor cores when allow_tf32), TC_F16 or TC_BF16 (f32
 * accumulation, one rounding), TC_F64. Strides and leading dims are in elements; a batch stride of
 * 0 repeats one matrix for every batch (not allowed for D when batch > 1). beta != 0 reads D, so
 * the caller fills it first; beta == 0 never reads it. bias, when set, is a length-N vector of the
 * same dtype added to every row of D (bias_stride apart per batch; 0 = the same vector): the BIAS
 * epilogue for f32/f16/bf16, a separate pass for f64. act (TC_CUDA_EPI_RELU or GELU_TANH, f32/f16/bf16
 * and beta == 0 only) is applied last, after the bias, as cuBLASLt's RELU / GELU epilogue. */
typedef struct tc_gemm_desc {
    tc_dtype dtype;
    int64_t batch, M, N, K;
    bool trans_a, trans_b;
    int64_t lda, ldb, ldd;                /* 0: packed (the row length of the stored matrix) */
    int64_t stride_a, stride_b, stride_d; /* elements between batches */
    double alpha, beta;
    bool bias;
    int64_t bias_stride;
    bool allow_tf32;
    tc_cuda_epi_act act;
} tc_gemm_desc;

typedef struct tc_gemm_plan tc_gemm_plan;

/* The workspace a plan is allowed (32 MiB: what cuBLAS recommends on Hopper; tc_cuda_gemm lowers it
 * to tc_cuda_workspace_limit). The same size for every call so that scratch memory planned in the
 * warm-up run holds during graph capture. */
#define TC_GEMM_WORKSPACE_BYTES ((size_t)32 << 20)

/* Builds a plan for d. align_* are the byte alignments the data pointers will have (the largest
 * power of two, up to 16, that divides each; 0 for an absent bias): the heuristic picks an
 * algorithm valid for them, so run the plan only on pointers at least that aligned.
 * lt is a cublasLtHandle_t. Errors: TC_ERR_INVALID_ARGUMENT for an inconsistent descriptor,
 * TC_ERR_DTYPE, TC_ERR_UNSUPPORTED when cuBLASLt has no algorithm, TC_ERR_CUDA for library errors. */
tc_status tc_gemm_plan_create(void *lt, const tc_gemm_desc *d, unsigned align_a, unsigned align_b, unsigned align_d,
                              unsigned align_bias, size_t workspace_bytes, tc_gemm_plan **out, tc_error *err);
/* Enqueues the product on stream. workspace must hold the workspace_bytes given at creation (may
 * be NULL when that was 0). C, when not NULL, is what beta scales instead of D's own contents (a
 * matrix of D's layout, at least as aligned as D was at creation; D is then only written). Never
 * synchronizes or allocates: safe inside CUDA graph capture. */
tc_status tc_gemm_plan_run(const tc_gemm_plan *p, void *lt, const void *A, const void *B, const void *C, void *D,
                           const void *bias, void *workspace, void *stream, tc_error *err);
/* Frees a plan (NULL is a no-op); the signature fits tc_cuda_node_cache's destructor. */
void tc_gemm_plan_free(void *p);

/* The byte alignment of p used for plans: the largest power of two up to 16 dividing it (16 is all
 * cuBLASLt asks for, and the cap keeps one plan for every usual pointer, so that new I/O pointers
 * never need a new plan during graph capture). */
unsigned tc_gemm_alignment(const void *p);

/* Runs d for the node of c on its stream: the plan comes from the node cache (built on first use
 * for this shape and pointer alignment), the workspace from scratch slot ws_slot. K == 0 gives
 * D = beta*D (+ bias) without cuBLASLt. Empty outputs (batch, M or N of 0) return at once.
 * Failures name the node. */
tc_status tc_cuda_gemm(const tc_cuda_call *c, const tc_gemm_desc *d, const void *A, const void *B, void *D,
                       const void *bias, int ws_slot);
/* The same with C (D's layout and dtype) in place of D's contents as what beta scales. */
tc_status tc_cuda_gemm_c(const tc_cuda_call *c, const tc_gemm_desc *d, const void *A, const void *B, const void *C,
                         void *D, const void *bias, int ws_slot);

/* Tactic selection, shared by the cuBLASLt and cuDNN kernels. When a plan is first built in an
 * eager run, up to tc_tactic_candidates() implementations are timed on the call's own buffers and
 * the fastest kept in the node cache (so graph capture and later runs reuse it) and in the engine's
 * plan table (so engine files store it). TENSORC_AUTOTUNE: 0 -> 1 (the first valid one, no timing);
 * 1 -> 8 candidates; n >= 2 -> n (at most TC_TACTIC_MAX); unset -> this thread's default, which is
 * 1 except inside the run that prepares an engine file (8, see records.c).
 * TENSORC_LOG_TACTICS=1 prints one line per tuned plan on stderr. */
#define TC_TACTIC_MAX 16
int tc_tactic_candidates(void);
/* Sets this thread's default candidate count (clamped to 1..TC_TACTIC_MAX); returns the old one. */
int tc_tactic_set_thread_default(int n);
bool tc_tactic_log(void);
/* Whether stream may be timed now: false while it (or the legacy stream it syncs with) captures. */
bool tc_tactic_can_time(void *stream);
/* Times fn(arg) on stream: one warm-up call, then reps (1..8) calls each between two events;
 * *ms is the fastest of them. Synchronizes the stream, so never during capture. A failure of fn
 * is returned as is (the events are released). */
tc_status tc_tactic_time(void *stream, tc_status (*fn)(void *arg, tc_error *err), void *arg, int reps, float *ms,
                         tc_error *err);
/* What a tuning step did, for logs: candidates that ran, the chosen index, its time and the time
 * of candidate 0 (the heuristic's first choice); ms < 0 when nothing was timed. */
typedef struct tc_tactic_info {
    int tried, chosen;
    float ms, first_ms;
} tc_tactic_info;
/* Times the plan's heuristic candidates on these buffers and keeps the fastest (ties: the lower
 * index). beta != 0 products without a C time into a temporary copy of D, so D keeps its
 * contents. Keeps the first candidate when only one is valid or the stream is capturing. */
tc_status tc_gemm_plan_tune(tc_gemm_plan *p, void *lt, const void *A, const void *B, const void *C, void *D,
                            const void *bias, void *workspace, void *stream, tc_tactic_info *info, tc_error *err);
/* The chosen algorithm's id and tile, for logs. */
void tc_gemm_plan_describe(const tc_gemm_plan *p, char *buf, size_t size);
/* Stored algorithms (engine-file records): the chosen algorithm's bytes, and taking such bytes
 * as the plan's algorithm (no tuning after) when cuBLASLt confirms they run this plan within its
 * workspace; false, leaving the plan as it was, otherwise. */
void tc_gemm_plan_algo(const tc_gemm_plan *p, const void **algo, size_t *len);
bool tc_gemm_plan_use(tc_gemm_plan *p, void *lt, const void *algo, size_t len);

#endif
