/* im2col and col2im over one image. Each column row is filled one output row at a time: the
 * in-bounds span of ow is computed once, so the inner loop has no bounds tests and is a plain
 * copy when the stride is 1. */
#include "backend/cpu/im2col.h"

#include "core/error.h"

#include <string.h>

/* The ow range [lo, hi) whose input column ow*stride + off lies in [0, W). */
static void valid_span(int64_t off, int64_t stride, int64_t W, int64_t OW, int64_t *lo,
                       int64_t *hi)
{
    /* ow*stride + off >= 0  <=>  ow >= ceil(-off / stride) */
    int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    /* ow*stride + off <= W-1  <=>  ow <= floor((W-1-off) / stride) */
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / stride + 1;
    if (l > OW) l = OW;
    if (h > OW) h = OW;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

static void check_geometry(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t pad_h,
                           int64_t pad_w, int64_t stride_h, int64_t stride_w, int64_t dil_h,
                           int64_t dil_w, int64_t OH, int64_t OW)
{
    TC_ASSERT(C >= 0 && H >= 0 && W >= 0 && KH >= 0 && KW >= 0 && OH >= 0 && OW >= 0);
    TC_ASSERT(pad_h >= 0 && pad_w >= 0 && stride_h >= 1 && stride_w >= 1 && dil_h >= 1 &&
              dil_w >= 1);
}

void tc_im2col_f32(const float *img, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w,
                   int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW, float *col)
{
    check_geometry(C, H, W, KH, KW, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, OH, OW);
    for (int64_t c = 0; c < C; c++) {
        const float *plane = img + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                float *row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                int64_t off_w = kw * dil_w - pad_w, lo, hi;
                valid_span(off_w, stride_w, W, OW, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    float *dst = row + oh * OW;
                    int64_t ih = oh * stride_h - pad_h + kh * dil_h;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    /* src[i] for i = ow*stride_w + off_w, which is in [0, W) on [lo, hi) */
                    const float *src = plane + ih * W;
                    for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    if (stride_w == 1) {
                        if (hi > lo)
                            memcpy(dst + lo, src + lo + off_w, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * stride_w + off_w];
                    }
                    for (int64_t ow = hi; ow < OW; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

void tc_col2im_f32(const float *col, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w,
                   int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW, float *img)
{
    check_geometry(C, H, W, KH, KW, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, OH, OW);
    for (int64_t c = 0; c < C; c++) {
        float *plane = img + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                int64_t off_w = kw * dil_w - pad_w, lo, hi;
                valid_span(off_w, stride_w, W, OW, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * stride_h - pad_h + kh * dil_h;
                    if (ih < 0 || ih >= H) continue;
                    const float *src = row + oh * OW;
                    float *dst = plane + ih * W;
                    for (int64_t ow = lo; ow < hi; ow++) dst[ow * stride_w + off_w] += src[ow];
                }
            }
        }
    }
}
