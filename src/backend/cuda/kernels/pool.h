/* C-callable launchers for pooling (max with indices, average, adaptive average), nearest and
 * bilinear resizing and constant padding. Tensors are contiguous; 2-D ops see them as `planes`
 * planes of H x W (everything before the last two dims). Float ops take TC_F32, TC_F16, TC_BF16
 * or TC_F64 and compute in f32 like the CPU kernels, rounding once. stream is a cudaStream_t. */
#ifndef TC_BACKEND_CUDA_KERNELS_POOL_H
#define TC_BACKEND_CUDA_KERNELS_POOL_H

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

typedef struct tc_cuda_pool2d_args {
    int64_t planes, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw; /* dilation: max pooling only */
    bool count_include_pad;                 /* average pooling only */
    int64_t divisor;                        /* average pooling: divisor_override, 0 for none */
} tc_cuda_pool2d_args;

/* Values and int64 indices (h * W + w inside the plane) of windowed maxima, with PyTorch's rules:
 * a NaN wins (the last NaN of the window), ties keep the first maximum. */
tc_status tc_cuda_max_pool2d(const tc_cuda_pool2d_args *a, const void *x, void *y, int64_t *idx, tc_dtype dtype,
                             void *stream, tc_error *err);
/* Windowed means with PyTorch's divisor rules (count_include_pad, divisor_override, ceil-mode
 * windows clipped to the padded input). */
tc_status tc_cuda_avg_pool2d(const tc_cuda_pool2d_args *a, const void *x, void *y, tc_dtype dtype, void *stream,
                             tc_error *err);
/* Means over the windows [floor(o*in/out), ceil((o+1)*in/out)). Needs H, W > 0. */
tc_status tc_cuda_adaptive_avg_pool2d(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const void *x,
                                      void *y, tc_dtype dtype, void *stream, tc_error *err);

typedef struct tc_cuda_resize_args {
    int64_t planes, H, W, OH, OW;
    /* The source-index scales the CPU kernels use, computed on the host the same way: 1/scale_factor
     * when one was given, else in/out (nearest, and bilinear without align_corners);
     * (in-1)/(out-1) or 0 with align_corners. */
    float scale_h, scale_w;
    bool align_corners;
} tc_cuda_resize_args;

/* Nearest-neighbour resize of elements of elem_size bytes (1, 2, 4 or 8: any dtype). */
tc_status tc_cuda_upsample_nearest2d(const tc_cuda_resize_args *a, const void *x, void *y, size_t elem_size,
                                     void *stream, tc_error *err);
/* Bilinear resize with PyTorch's source-index and weight arithmetic. */
tc_status tc_cuda_upsample_bilinear2d(const tc_cuda_resize_args *a, const void *x, void *y, tc_dtype dtype,
                                      void *stream, tc_error *err);

/* y = x padded (or cropped, for negative amounts) by left[d] elements before dim d; positions
 * outside x take the elem_size-byte pattern `value` (little-endian in the low bytes). rank <= 8
 * (0 copies one element); out_dims are y's dims. */
typedef struct tc_cuda_pad_args {
    int rank;
    int64_t in_dims[8], out_dims[8], left[8];
    uint64_t value;
} tc_cuda_pad_args;
tc_status tc_cuda_constant_pad(const tc_cuda_pad_args *a, const void *x, void *y, size_t elem_size, void *stream,
                               tc_error *err);

#ifdef __cplusplus
}
#endif
#endif
