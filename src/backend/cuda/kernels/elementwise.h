/* C-callable launchers of the elementwise family: unary math and the broadcasting binary and
 * ternary ops (arithmetic, comparisons, logical and bitwise ops, where, clamp). The host glue in
 * backend/cuda/elementwise.c decides types exactly as the CPU kernel does; these run it. */
#ifndef TC_BACKEND_CUDA_KERNELS_ELEMENTWISE_H
#define TC_BACKEND_CUDA_KERNELS_ELEMENTWISE_H

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

typedef enum tc_cuda_uop {
    TC_CUDA_U_ABS, TC_CUDA_U_NEG, TC_CUDA_U_EXP, TC_CUDA_U_LOG, TC_CUDA_U_SQRT, TC_CUDA_U_RSQRT,
    TC_CUDA_U_RECIPROCAL, TC_CUDA_U_SIN, TC_CUDA_U_COS, TC_CUDA_U_TANH, TC_CUDA_U_ERF, TC_CUDA_U_FLOOR,
    TC_CUDA_U_CEIL, TC_CUDA_U_ROUND, TC_CUDA_U_SIGN,
    TC_CUDA_U_LOGICAL_NOT, /* any dtype -> bool: x == 0 */
    TC_CUDA_U_ISNAN,       /* any dtype -> bool */
    TC_CUDA_U_BITWISE_NOT, /* integer or bool, same dtype out */
    TC_CUDA_U_COUNT
} tc_cuda_uop;

/* y[i] = op(x[i]) over n contiguous elements. Float results are computed in f32 (f64 for an f64
 * result) from x converted as the CPU does and rounded once to yt; integer results (abs, neg,
 * sign, floor, ceil, round of an integer tensor) are exact in int64 and wrap to yt. */
tc_status tc_cuda_unary(tc_cuda_uop op, const void *x, tc_dtype xt, void *y, tc_dtype yt, int64_t n,
                        void *stream, tc_error *err);

typedef enum tc_cuda_bop {
    TC_CUDA_B_ADD, TC_CUDA_B_SUB, TC_CUDA_B_MUL, TC_CUDA_B_DIV, TC_CUDA_B_DIV_TRUNC, TC_CUDA_B_DIV_FLOOR,
    TC_CUDA_B_POW, TC_CUDA_B_MAX, TC_CUDA_B_MIN, TC_CUDA_B_REM,
    TC_CUDA_B_EQ, TC_CUDA_B_NE, TC_CUDA_B_LT, TC_CUDA_B_LE, TC_CUDA_B_GT, TC_CUDA_B_GE,
    TC_CUDA_B_LAND, TC_CUDA_B_LOR, TC_CUDA_B_LXOR,
    TC_CUDA_B_BAND, TC_CUDA_B_BOR, TC_CUDA_B_BXOR,
    TC_CUDA_B_WHERE, /* in[0] ? in[1] : in[2]; in[0] is read as bytes, nonzero is true */
    TC_CUDA_B_CLAMP, /* min(max(in[0], in[1]), in[2]) with NaN propagated */
    TC_CUDA_B_COUNT
} tc_cuda_bop;

/* The type every operand is brought to before the op runs. */
typedef enum tc_cuda_domain { TC_CUDA_DOM_F32, TC_CUDA_DOM_F64, TC_CUDA_DOM_I64 } tc_cuda_domain;

typedef struct tc_cuda_operand {
    const void *data;             /* device tensor; NULL: the operand is the scalar below */
    tc_dtype dtype;               /* storage dtype of data */
    /* Applied after loading: in the f32 domain TC_F16/TC_BF16 round the value through that type
     * (any other value: none); in the i64 domain TC_I32/TC_I8/TC_U8/TC_BOOL wrap to that type
     * (float storage read with cast TC_BOOL is x != 0, NaN included). */
    tc_dtype cast;
    int64_t strides[TC_MAX_RANK]; /* elements per step of each output dim; 0 where broadcast */
    double f;                     /* scalar value for the f32/f64 domains, already rounded */
    int64_t i;                    /* scalar value for the i64 domain, already wrapped */
} tc_cuda_operand;

typedef struct tc_cuda_bcast {
    tc_cuda_bop op;
    tc_cuda_domain dom;
    int nin;                      /* 2, or 3 for where and clamp */
    int rank;                     /* 1..TC_MAX_RANK, dims collapsed as far as the layouts allow */
    int64_t dims[TC_MAX_RANK];
    int64_t numel;
    tc_cuda_operand in[3];
    void *out;                    /* contiguous, numel elements of out_dtype */
    tc_dtype out_dtype;           /* bool for comparisons and logical ops */
    double alpha;                 /* add/sub multiplier of in[1], already rounded (float domains) */
    int64_t alpha_i;              /* the same for the i64 domain */
    tc_dtype qround;              /* div trunc: round the quotient to this f16/bf16 first */
    /* Optional device word (NULL: none): an integer division or remainder meeting a zero element
     * of a tensor divisor ORs 1 into it, so that a later check can report what the kernel could
     * not. */
    unsigned int *err_flag;
} tc_cuda_bcast;

/* Runs one broadcasting op. Integer division or remainder by a zero element of a tensor divisor
 * gives 0 and sets *err_flag when given (the host glue checks Scalar divisors and reports them
 * as the CPU does; a device tensor cannot be inspected without a sync). */
tc_status tc_cuda_broadcast(const tc_cuda_bcast *b, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
