/* Dense matrix multiply for the CPU backend: a packed, cache-blocked f32 GEMM with AVX-512, AVX2
 * and portable micro-kernels chosen at run time, a batched form, and a plain f64 GEMM. */
#ifndef TC_BACKEND_CPU_GEMM_H
#define TC_BACKEND_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, all row-major with leading dimensions
 * (op(X) = X, or X^T when trans_x: then A is stored [K,M] and B is stored [N,K]).
 * beta == 0 means C is not read (it may hold NaN); alpha == 0 or K == 0 gives C = beta * C
 * without reading A or B. Runs on the tc_parallel pool when the problem is large enough; the
 * result is bit-identical for any thread count. Dimensions must be >= 0 and leading dimensions
 * large enough for the stored shapes (a violation is a caller bug and aborts). Thread-safe. */
void tc_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* batch independent tc_sgemm calls; operand i starts at X + i * stride_x (strides in elements).
 * stride_a or stride_b of 0 broadcasts that operand. stride_c of 0 with batch > 1 runs the
 * products one after the other into the same C, in batch order. */
void tc_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                      int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                      int64_t stride_c);

/* The f64 form of tc_sgemm (same contract), computed by straightforward loops. */
void tc_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double *A, int64_t lda, const double *B, int64_t ldb, double beta, double *C,
              int64_t ldc);

/* Micro-kernel families. AUTO picks the best the CPU supports. Different families may round
 * differently, so a test that compares bits must hold the family fixed. */
typedef enum tc_gemm_isa {
    TC_GEMM_ISA_AUTO = 0,
    TC_GEMM_ISA_GENERIC,
    TC_GEMM_ISA_AVX2,   /* AVX2 + FMA */
    TC_GEMM_ISA_AVX512, /* AVX-512F */
    TC_GEMM_ISA_COUNT
} tc_gemm_isa;

/* Forces a micro-kernel family for later calls (for tests and benchmarks). Returns false, and
 * changes nothing, when this CPU cannot run it. Not meant to be called while GEMMs are running. */
bool tc_gemm_set_isa(tc_gemm_isa isa);
/* The family in use now (never AUTO) and its name ("generic", "avx2", "avx512"). */
tc_gemm_isa tc_gemm_get_isa(void);
const char *tc_gemm_isa_name(tc_gemm_isa isa);
bool tc_gemm_isa_supported(tc_gemm_isa isa);

#endif
