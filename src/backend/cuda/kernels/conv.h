/* C-callable launchers for the convolution kernels of our own: the per-channel bias of NCHW
 * outputs, the batched transpose that moves data between NCHW and NHWC (and filters between KCRS
 * and KRSC) when cuDNN has no engine for a layout, and depthwise convolutions, which cuDNN runs
 * slowly. stream is a cudaStream_t. */
#ifndef TC_BACKEND_CUDA_KERNELS_CONV_H
#define TC_BACKEND_CUDA_KERNELS_CONV_H

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

/* y[n][c][p] = (accumulate ? y[n][c][p] : 0) + (bias ? bias[c] : 0) for y of [N, C, P], computed in
 * f32 and rounded once. dtype: TC_F32, TC_F16, TC_BF16 (bias alike). */
tc_status tc_cuda_conv_channel_bias(void *y, const void *bias, tc_dtype dtype, int64_t N, int64_t C, int64_t P,
                                    bool accumulate, void *stream, tc_error *err);

/* out[b][c][r] = in[b][r][c] for in of [batch, rows, cols]: NCHW -> NHWC is (N, C, H*W), NHWC ->
 * NCHW is (N, H*W, C). Elements of elem_size bytes (1, 2, 4 or 8); in and out must not overlap. */
tc_status tc_cuda_transpose_batched(const void *in, void *out, int64_t batch, int64_t rows, int64_t cols,
                                    size_t elem_size, void *stream, tc_error *err);

/* A depthwise convolution (groups = input channels = output channels) with its epilogue:
 * y = relu2?(relu1?(conv(x, w) + bias) + residual), in f32 from the first product to one rounding.
 * x [N, C, H, W] and y [N, C, OH, OW] are stored NCHW or channels-last (x_nhwc, y_nhwc); w holds
 * C filters of KH x KW (KCRS and KRSC are the same bytes when each filter has one input channel);
 * bias [C] and residual (y's dims and layout) may be NULL. 1-D convolutions pass H = OH = KH = 1. */
typedef struct tc_cuda_depthwise_args {
    const void *x, *w, *bias, *residual;
    void *y;
    tc_dtype dtype; /* TC_F32, TC_F16, TC_BF16: every tensor */
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
    bool x_nhwc, y_nhwc, relu1, relu2;
    bool w_taps_major; /* w is [KH, KW, C] (else [C, 1, KH, KW]) */
    bool hardswish1;   /* x * min(max(x + 3, 0), 6) / 6 after the bias (then no residual, no relu2) */
} tc_cuda_depthwise_args;
tc_status tc_cuda_depthwise_conv(const tc_cuda_depthwise_args *a, void *stream, tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
