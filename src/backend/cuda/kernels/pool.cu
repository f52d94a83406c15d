/* CUDA kernels for pooling, resizing and constant padding: one thread per output element (the
 * output index runs fastest along W, so stores are coalesced), grid-stride loops, int64 indices.
 * Window bounds, tie/NaN rules, divisors and source-index arithmetic copy the CPU kernels
 * (backend/cpu/pool.c) step for step; float products use _rn intrinsics so that nvcc does not
 * contract them into FMAs the CPU does not use, which would move resized pixels by one ulp. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/pool.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 16384;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(double x) { return (float)x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ double from_f32<double>(float x) { return (double)x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}

int blocks_for(int64_t work)
{
    int64_t b = (work + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    return (int)(b < kMaxBlocks ? b : kMaxBlocks);
}

const char *name_of(tc_dtype t)
{
    const char *s = tc_dtype_name(t);
    return s ? s : "?";
}

tc_status launched(const char *what, tc_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

#define GRID_STRIDE(i, n)                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                     \
         i += (int64_t)gridDim.x * blockDim.x)

/* The first of lo, lo+step, ... that is >= 0 (the CPU's `while (lo < 0) lo += step`). */
__device__ __forceinline__ int64_t first_nonneg(int64_t lo, int64_t step)
{
    return lo >= 0 ? lo : lo + ((-lo + step - 1) / step) * step;
}

template <typename T>
__global__ void max_pool_kernel(tc_cuda_pool2d_args a, const T *x, T *y, int64_t *idx)
{
    const int64_t n = a.planes * a.OH * a.OW;
    GRID_STRIDE(i, n) {
        const int64_t ow = i % a.OW, oh = (i / a.OW) % a.OH, pl = i / (a.OW * a.OH);
        const T *xp = x + pl * a.H * a.W;
        int64_t ih0 = oh * a.sh - a.ph;
        int64_t ih1 = ih0 + (a.kh - 1) * a.dh + 1;
        if (ih1 > a.H) ih1 = a.H;
        ih0 = first_nonneg(ih0, a.dh);
        int64_t iw0 = ow * a.sw - a.pw;
        int64_t iw1 = iw0 + (a.kw - 1) * a.dw + 1;
        if (iw1 > a.W) iw1 = a.W;
        iw0 = first_nonneg(iw0, a.dw);
        int64_t best = ih0 * a.W + iw0;
        float m = -INFINITY;
        for (int64_t ih = ih0; ih < ih1; ih += a.dh)
            for (int64_t iw = iw0; iw < iw1; iw += a.dw) {
                const float v = to_f32(xp[ih * a.W + iw]);
                if (v > m || isnan(v)) m = v, best = ih * a.W + iw;
            }
        y[i] = from_f32<T>(m);
        idx[i] = best;
    }
}

template <typename T>
__global__ void avg_pool_kernel(tc_cuda_pool2d_args a, const T *x, T *y)
{
    const int64_t n = a.planes * a.OH * a.OW;
    GRID_STRIDE(i, n) {
        const int64_t ow = i % a.OW, oh = (i / a.OW) % a.OH, pl = i / (a.OW * a.OH);
        const T *xp = x + pl * a.H * a.W;
        int64_t ih0 = oh * a.sh - a.ph, iw0 = ow * a.sw - a.pw;
        int64_t ih1 = ih0 + a.kh, iw1 = iw0 + a.kw;
        if (ih1 > a.H + a.ph) ih1 = a.H + a.ph;
        if (iw1 > a.W + a.pw) iw1 = a.W + a.pw;
        const int64_t pool_size = (ih1 - ih0) * (iw1 - iw0);
        if (ih0 < 0) ih0 = 0;
        if (iw0 < 0) iw0 = 0;
        if (ih1 > a.H) ih1 = a.H;
        if (iw1 > a.W) iw1 = a.W;
        if (ih0 >= ih1 || iw0 >= iw1) {
            y[i] = from_f32<T>(0.0f);
            continue;
        }
        float sum = 0.0f;
        for (int64_t ih = ih0; ih < ih1; ih++)
            for (int64_t iw = iw0; iw < iw1; iw++) sum = __fadd_rn(sum, to_f32(xp[ih * a.W + iw]));
        const int64_t div = a.divisor ? a.divisor : a.count_include_pad ? pool_size : (ih1 - ih0) * (iw1 - iw0);
        y[i] = from_f32<T>(__fdiv_rn(sum, (float)div));
    }
}

__device__ __forceinline__ int64_t win_start(int64_t o, int64_t out, int64_t in)
{
    return (o / out) * in + ((o % out) * in) / out;
}
__device__ __forceinline__ int64_t win_end(int64_t o, int64_t out, int64_t in) { return 1 + ((o + 1) * in - 1) / out; }

template <typename T>
__global__ void adaptive_kernel(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const T *x, T *y)
{
    const int64_t n = planes * OH * OW;
    GRID_STRIDE(i, n) {
        const int64_t ow = i % OW, oh = (i / OW) % OH, pl = i / (OW * OH);
        const T *xp = x + pl * H * W;
        const int64_t ih0 = win_start(oh, OH, H), ih1 = win_end(oh, OH, H);
        const int64_t iw0 = win_start(ow, OW, W), iw1 = win_end(ow, OW, W);
        float sum = 0.0f;
        for (int64_t ih = ih0; ih < ih1; ih++)
            for (int64_t iw = iw0; iw < iw1; iw++) sum = __fadd_rn(sum, to_f32(xp[ih * W + iw]));
        y[i] = from_f32<T>(__fdiv_rn(sum, (float)((ih1 - ih0) * (iw1 - iw0))));
    }
}

__device__ __forceinline__ int64_t nearest_idx(int64_t o, int64_t in, int64_t out, float scale)
{
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    const int64_t i = (int64_t)floorf(__fmul_rn((float)o, scale));
    return i < in - 1 ? i : in - 1;
}

template <typename U>
__global__ void nearest_kernel(tc_cuda_resize_args a, const U *x, U *y)
{
    const int64_t n = a.planes * a.OH * a.OW;
    GRID_STRIDE(i, n) {
        const int64_t ow = i % a.OW, oh = (i / a.OW) % a.OH, pl = i / (a.OW * a.OH);
        const int64_t ih = nearest_idx(oh, a.H, a.OH, a.scale_h), iw = nearest_idx(ow, a.W, a.OW, a.scale_w);
        y[i] = x[(pl * a.H + ih) * a.W + iw];
    }
}

/* PyTorch's compute_source_index_and_lambda for one output coordinate, as linear_axis on the CPU. */
__device__ __forceinline__ void linear_axis(int64_t o, int64_t in, int64_t out, bool align, float scale, int64_t *i0,
                                            int64_t *i1, float *l0, float *l1)
{
    if (out == in) {
        *i0 = *i1 = o, *l0 = 1.0f, *l1 = 0.0f;
        return;
    }
    float real = align ? __fmul_rn(scale, (float)o) : __fsub_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), 0.5f);
    if (!align && real < 0.0f) real = 0.0f;
    int64_t a = (int64_t)floorf(real);
    if (a > in - 1) a = in - 1;
    float lam = __fsub_rn(real, (float)a);
    lam = lam < 0.0f ? 0.0f : lam > 1.0f ? 1.0f : lam;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    *l1 = lam;
    *l0 = __fsub_rn(1.0f, lam);
}

template <typename T>
__global__ void bilinear_kernel(tc_cuda_resize_args a, const T *x, T *y)
{
    const int64_t n = a.planes * a.OH * a.OW;
    GRID_STRIDE(i, n) {
        const int64_t ow = i % a.OW, oh = (i / a.OW) % a.OH, pl = i / (a.OW * a.OH);
        int64_t h0, h1, w0, w1;
        float a0, a1, b0, b1;
        linear_axis(oh, a.H, a.OH, a.align_corners, a.scale_h, &h0, &h1, &a0, &a1);
        linear_axis(ow, a.W, a.OW, a.align_corners, a.scale_w, &w0, &w1, &b0, &b1);
        const T *x0 = x + (pl * a.H + h0) * a.W, *x1 = x + (pl * a.H + h1) * a.W;
        const float top = __fadd_rn(__fmul_rn(b0, to_f32(x0[w0])), __fmul_rn(b1, to_f32(x0[w1])));
        const float bot = __fadd_rn(__fmul_rn(b0, to_f32(x1[w0])), __fmul_rn(b1, to_f32(x1[w1])));
        y[i] = from_f32<T>(__fadd_rn(__fmul_rn(a0, top), __fmul_rn(a1, bot)));
    }
}

template <typename U>
__global__ void pad_kernel(tc_cuda_pad_args a, const U *x, U *y, int64_t n)
{
    const U fill = (U)a.value;
    GRID_STRIDE(i, n) {
        int64_t rem = i, src = 0, mul = 1;
        bool inside = true;
        for (int d = a.rank - 1; d >= 0; d--) {
            const int64_t od = rem % a.out_dims[d];
            rem /= a.out_dims[d];
            const int64_t id = od - a.left[d];
            if (id < 0 || id >= a.in_dims[d]) {
                inside = false;
                break;
            }
            src += id * mul;
            mul *= a.in_dims[d];
        }
        y[i] = inside ? x[src] : fill;
    }
}

template <typename T>
tc_status max_pool_t(const tc_cuda_pool2d_args *a, const void *x, void *y, int64_t *idx, cudaStream_t s,
                     tc_error *err)
{
    max_pool_kernel<T><<<blocks_for(a->planes * a->OH * a->OW), kThreads, 0, s>>>(
        *a, static_cast<const T *>(x), static_cast<T *>(y), idx);
    return launched("tc_cuda_max_pool2d", err);
}

template <typename T>
tc_status avg_pool_t(const tc_cuda_pool2d_args *a, const void *x, void *y, cudaStream_t s, tc_error *err)
{
    avg_pool_kernel<T><<<blocks_for(a->planes * a->OH * a->OW), kThreads, 0, s>>>(*a, static_cast<const T *>(x),
                                                                                   static_cast<T *>(y));
    return launched("tc_cuda_avg_pool2d", err);
}

template <typename T>
tc_status adaptive_t(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const void *x, void *y,
                     cudaStream_t s, tc_error *err)
{
    adaptive_kernel<T><<<blocks_for(planes * OH * OW), kThreads, 0, s>>>(planes, H, W, OH, OW,
                                                                          static_cast<const T *>(x),
                                                                          static_cast<T *>(y));
    return launched("tc_cuda_adaptive_avg_pool2d", err);
}

template <typename U>
tc_status nearest_t(const tc_cuda_resize_args *a, const void *x, void *y, cudaStream_t s, tc_error *err)
{
    nearest_kernel<U><<<blocks_for(a->planes * a->OH * a->OW), kThreads, 0, s>>>(*a, static_cast<const U *>(x),
                                                                                  static_cast<U *>(y));
    return launched("tc_cuda_upsample_nearest2d", err);
}

template <typename T>
tc_status bilinear_t(const tc_cuda_resize_args *a, const void *x, void *y, cudaStream_t s, tc_error *err)
{
    bilinear_kernel<T><<<blocks_for(a->planes * a->OH * a->OW), kThreads, 0, s>>>(*a, static_cast<const T *>(x),
                                                                                   static_cast<T *>(y));
    return launched("tc_cuda_upsample_bilinear2d", err);
}

template <typename U>
tc_status pad_t(const tc_cuda_pad_args *a, const void *x, void *y, int64_t n, cudaStream_t s, tc_error *err)
{
    pad_kernel<U><<<blocks_for(n), kThreads, 0, s>>>(*a, static_cast<const U *>(x), static_cast<U *>(y), n);
    return launched("tc_cuda_constant_pad", err);
}

bool bad_sizes(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW)
{
    return planes < 0 || H < 0 || W < 0 || OH < 0 || OW < 0;
}

tc_status check_pool(const char *what, const tc_cuda_pool2d_args *a, const void *x, const void *y, tc_error *err)
{
    if (!a) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL arguments", what);
    if (bad_sizes(a->planes, a->H, a->W, a->OH, a->OW))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: negative size", what);
    if (a->kh < 1 || a->kw < 1 || a->sh < 1 || a->sw < 1 || a->ph < 0 || a->pw < 0 || a->dh < 1 || a->dw < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "%s: kernel (%lld, %lld), stride (%lld, %lld) and dilation (%lld, %lld) must be positive, "
                         "padding (%lld, %lld) non-negative",
                         what, (long long)a->kh, (long long)a->kw, (long long)a->sh, (long long)a->sw,
                         (long long)a->dh, (long long)a->dw, (long long)a->ph, (long long)a->pw);
    if (a->planes * a->OH * a->OW > 0 && (!x || !y))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
    return TC_OK;
}

} // namespace

extern "C" tc_status tc_cuda_max_pool2d(const tc_cuda_pool2d_args *a, const void *x, void *y, int64_t *idx,
                                        tc_dtype dtype, void *stream, tc_error *err)
{
    const char *what = "tc_cuda_max_pool2d";
    tc_status st = check_pool(what, a, x, y, err);
    if (st != TC_OK) return st;
    if (a->planes * a->OH * a->OW == 0) return TC_OK;
    if (!idx) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL index buffer", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return max_pool_t<float>(a, x, y, idx, s, err);
    case TC_F16: return max_pool_t<__half>(a, x, y, idx, s, err);
    case TC_BF16: return max_pool_t<__nv_bfloat16>(a, x, y, idx, s, err);
    case TC_F64: return max_pool_t<double>(a, x, y, idx, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported", what, name_of(dtype));
}

extern "C" tc_status tc_cuda_avg_pool2d(const tc_cuda_pool2d_args *a, const void *x, void *y, tc_dtype dtype,
                                        void *stream, tc_error *err)
{
    const char *what = "tc_cuda_avg_pool2d";
    tc_status st = check_pool(what, a, x, y, err);
    if (st != TC_OK) return st;
    if (a->planes * a->OH * a->OW == 0) return TC_OK;
    if (a->divisor < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: negative divisor_override", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return avg_pool_t<float>(a, x, y, s, err);
    case TC_F16: return avg_pool_t<__half>(a, x, y, s, err);
    case TC_BF16: return avg_pool_t<__nv_bfloat16>(a, x, y, s, err);
    case TC_F64: return avg_pool_t<double>(a, x, y, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported", what, name_of(dtype));
}

extern "C" tc_status tc_cuda_adaptive_avg_pool2d(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                                 const void *x, void *y, tc_dtype dtype, void *stream, tc_error *err)
{
    const char *what = "tc_cuda_adaptive_avg_pool2d";
    if (bad_sizes(planes, H, W, OH, OW)) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: negative size", what);
    if (planes * OH * OW == 0) return TC_OK;
    if (H == 0 || W == 0) return tc_errorf(err, TC_ERR_SHAPE, "%s: input spatial dims are empty", what);
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return adaptive_t<float>(planes, H, W, OH, OW, x, y, s, err);
    case TC_F16: return adaptive_t<__half>(planes, H, W, OH, OW, x, y, s, err);
    case TC_BF16: return adaptive_t<__nv_bfloat16>(planes, H, W, OH, OW, x, y, s, err);
    case TC_F64: return adaptive_t<double>(planes, H, W, OH, OW, x, y, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported", what, name_of(dtype));
}

extern "C" tc_status tc_cuda_upsample_nearest2d(const tc_cuda_resize_args *a, const void *x, void *y,
                                                size_t elem_size, void *stream, tc_error *err)
{
    const char *what = "tc_cuda_upsample_nearest2d";
    if (!a || bad_sizes(a->planes, a->H, a->W, a->OH, a->OW))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: bad arguments", what);
    if (a->planes * a->OH * a->OW == 0) return TC_OK;
    if (a->H == 0 || a->W == 0) return tc_errorf(err, TC_ERR_SHAPE, "%s: input spatial dims are empty", what);
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (elem_size) {
    case 1: return nearest_t<uint8_t>(a, x, y, s, err);
    case 2: return nearest_t<uint16_t>(a, x, y, s, err);
    case 4: return nearest_t<uint32_t>(a, x, y, s, err);
    case 8: return nearest_t<uint64_t>(a, x, y, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: element size %zu is not supported", what, elem_size);
}

extern "C" tc_status tc_cuda_upsample_bilinear2d(const tc_cuda_resize_args *a, const void *x, void *y, tc_dtype dtype,
                                                 void *stream, tc_error *err)
{
    const char *what = "tc_cuda_upsample_bilinear2d";
    if (!a || bad_sizes(a->planes, a->H, a->W, a->OH, a->OW))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: bad arguments", what);
    if (a->planes * a->OH * a->OW == 0) return TC_OK;
    if (a->H == 0 || a->W == 0) return tc_errorf(err, TC_ERR_SHAPE, "%s: input spatial dims are empty", what);
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return bilinear_t<float>(a, x, y, s, err);
    case TC_F16: return bilinear_t<__half>(a, x, y, s, err);
    case TC_BF16: return bilinear_t<__nv_bfloat16>(a, x, y, s, err);
    case TC_F64: return bilinear_t<double>(a, x, y, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported", what, name_of(dtype));
}

extern "C" tc_status tc_cuda_constant_pad(const tc_cuda_pad_args *a, const void *x, void *y, size_t elem_size,
                                          void *stream, tc_error *err)
{
    const char *what = "tc_cuda_constant_pad";
    if (!a || a->rank < 0 || a->rank > 8) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: bad rank", what);
    int64_t n = 1, in_n = 1;
    for (int d = 0; d < a->rank; d++) {
        if (a->out_dims[d] < 0 || a->in_dims[d] < 0)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: negative size at dim %d", what, d);
        n *= a->out_dims[d];
        in_n *= a->in_dims[d];
    }
    if (n == 0) return TC_OK;
    if (!y || (in_n > 0 && !x)) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (elem_size) {
    case 1: return pad_t<uint8_t>(a, x, y, n, s, err);
    case 2: return pad_t<uint16_t>(a, x, y, n, s, err);
    case 4: return pad_t<uint32_t>(a, x, y, n, s, err);
    case 8: return pad_t<uint64_t>(a, x, y, n, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: element size %zu is not supported", what, elem_size);
}
