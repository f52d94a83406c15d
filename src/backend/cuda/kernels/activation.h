/* C-callable launcher of the activation family (relu, hardtanh, sigmoid, gelu, leaky_relu, elu,
 * silu, hardswish, hardsigmoid) with the CPU backend's formulas; glue in backend/cuda/activation.c. */
#ifndef TC_BACKEND_CUDA_KERNELS_ACTIVATION_H
#define TC_BACKEND_CUDA_KERNELS_ACTIVATION_H

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

typedef enum tc_cuda_act {
    TC_CUDA_A_RELU, TC_CUDA_A_HARDTANH, TC_CUDA_A_SIGMOID, TC_CUDA_A_GELU, TC_CUDA_A_GELU_TANH,
    TC_CUDA_A_LEAKY_RELU, TC_CUDA_A_ELU, TC_CUDA_A_SILU, TC_CUDA_A_HARDSWISH, TC_CUDA_A_HARDSIGMOID,
    TC_CUDA_A_COUNT
} tc_cuda_act;

/* y[i] = op(x[i]) over n contiguous elements. A float yt is computed in f32 (f64 when yt is f64)
 * from x converted as the CPU converts it, with the op's parameters p[0..2] (hardtanh: min, max;
 * leaky_relu: slope; elu: alpha, scale, input_scale) cast to that type, and rounded once to yt.
 * An integer yt (relu and hardtanh only) is the exact clamp of x to [lo, hi]. */
tc_status tc_cuda_activation(tc_cuda_act op, const void *x, tc_dtype xt, void *y, tc_dtype yt, int64_t n,
                             const double p[3], int64_t lo, int64_t hi, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
