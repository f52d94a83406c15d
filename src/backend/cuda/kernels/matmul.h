/* C-callable launchers for the small kernels around the matrix products: the integer GEMM, the
 * broadcast copy that seeds addmm/linear outputs, and the row update used when K is 0 or a bias
 * cannot go through a cuBLASLt epilogue. Pointers are device pointers; stream is a cudaStream_t. */
#ifndef TC_BACKEND_CUDA_KERNELS_MATMUL_H
#define TC_BACKEND_CUDA_KERNELS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/error.h"
#include "tensorc.h"

/* d[r * cols + n] = (beta == 0 ? 0 : beta * d[r * cols + n]) + (bias ? bias[n] : 0) for r < rows,
 * n < cols; computed in f32 (f64 for TC_F64) and rounded once. dtype: TC_F32, TC_F16, TC_BF16,
 * TC_F64; bias has the same dtype. beta == 0 never reads d (NaN there does not propagate). */
tc_status tc_cuda_rows_scale_bias(void *d, const void *bias, tc_dtype dtype, int64_t rows, int64_t cols,
                                  double beta, void *stream, tc_error *err);

/* d[i * N + j] = s[i * s0 + j * s1] for i < M, j < N: a broadcast copy (strides 0 repeat), any
 * dtype of 1, 2, 4 or 8 bytes (bit copy). */
tc_status tc_cuda_broadcast_2d(const void *s, int64_t s0, int64_t s1, void *d, tc_dtype dtype, int64_t M,
                               int64_t N, void *stream, tc_error *err);

/* Integer matrix products, exact in int64 (wrapping like the CPU's int64 loops), stored into the
 * dtype by truncation:
 *   out[b][i][j] = alpha * sum_k A[b][i][k] * op(B)[b][k][j] + (self ? beta * self[i*s0 + j*s1] : 0)
 * A is [batch, M, K]; B is [batch, K, N], or [batch, N, K] when trans_b; a batch stride of 0
 * (stride_a / stride_b in elements) repeats one matrix. dtype: TC_I64, TC_I32, TC_I8, TC_U8 for
 * A, B, self and out alike. */
typedef struct tc_cuda_int_gemm_args {
    tc_dtype dtype;
    int64_t batch, M, N, K;
    bool trans_b;
    int64_t stride_a, stride_b;
    int64_t alpha, beta;
    const void *self; /* NULL: none */
    int64_t s0, s1;
} tc_cuda_int_gemm_args;
tc_status tc_cuda_int_gemm(const tc_cuda_int_gemm_args *a, const void *A, const void *B, void *out, void *stream,
                           tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
