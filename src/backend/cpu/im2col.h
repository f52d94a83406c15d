/* im2col / col2im for convolution as GEMM on the CPU backend: one NCHW image [C,H,W] to a
 * [C*KH*KW, OH*OW] column matrix and back. A 1-D convolution is the 2-D case with H = KH = 1. */
#ifndef TC_BACKEND_CPU_IM2COL_H
#define TC_BACKEND_CPU_IM2COL_H

#include <stdint.h>

/* col[(c*KH + kh)*KW + kw, oh*OW + ow] = img[c, oh*stride_h - pad_h + kh*dil_h,
 *                                            ow*stride_w - pad_w + kw*dil_w], or 0 outside.
 * Every element of col is written. Strides and dilations must be >= 1, pads >= 0 (asserted);
 * OH and OW are the caller's (usually (H + 2*pad - dil*(K-1) - 1) / stride + 1). */
void tc_im2col_f32(const float *img, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w,
                   int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW, float *col);

/* The adjoint of tc_im2col_f32: adds every col element into the img position it came from
 * (padding positions are dropped). img is accumulated into, not cleared. Used for transposed
 * convolution. */
void tc_col2im_f32(const float *col, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w,
                   int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW, float *img);

#endif
