/* CUDA kernels around the cuDNN convolutions: the per-channel bias add for NCHW outputs (a
 * grid-stride loop, f32 math, one rounding), a shared-memory tiled batched transpose for the
 * NCHW <-> NHWC moves (32x32 tiles, padded to avoid bank conflicts, both sides coalesced), and the
 * depthwise convolution with its epilogue (one thread per output element in the output's memory
 * order, so writes and, along the fastest dim, reads are coalesced; f32 accumulation). */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/conv.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 16384;
constexpr int kTile = 32, kRowsPerPass = 8;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
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

tc_status launched(const char *what, tc_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

template <typename T>
__global__ void channel_bias_kernel(T *y, const T *bias, int64_t N, int64_t C, int64_t P, bool accumulate)
{
    const int64_t n = N * C * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = accumulate ? to_f32(y[i]) : 0.0f;
        if (bias) v += to_f32(bias[(i / P) % C]);
        y[i] = from_f32<T>(v);
    }
}

template <typename T>
tc_status channel_bias_t(void *y, const void *bias, int64_t N, int64_t C, int64_t P, bool accumulate,
                         cudaStream_t s, tc_error *err)
{
    channel_bias_kernel<T><<<blocks_for(N * C * P), kThreads, 0, s>>>(static_cast<T *>(y),
                                                                       static_cast<const T *>(bias), N, C, P,
                                                                       accumulate);
    return launched("tc_cuda_conv_channel_bias", err);
}

/* Every loop bound depends on blockIdx only, so all threads of a block reach each barrier. */
template <typename U>
__global__ void transpose_kernel(const U *in, U *out, int64_t batch, int64_t rows, int64_t cols)
{
    __shared__ U tile[kTile][kTile + 1];
    const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
    const int64_t plane = rows * cols;
    for (int64_t b = blockIdx.z; b < batch; b += gridDim.z)
        for (int64_t tr = blockIdx.y; tr < tiles_r; tr += gridDim.y)
            for (int64_t tc = blockIdx.x; tc < tiles_c; tc += gridDim.x) {
                const U *ib = in + b * plane;
                U *ob = out + b * plane;
                const int64_t c = tc * kTile + threadIdx.x;
                for (int j = threadIdx.y; j < kTile; j += kRowsPerPass) {
                    const int64_t r = tr * kTile + j;
                    if (r < rows && c < cols) tile[j][threadIdx.x] = ib[r * cols + c];
                }
                __syncthreads();
                const int64_t r = tr * kTile + threadIdx.x;
                for (int j = threadIdx.y; j < kTile; j += kRowsPerPass) {
                    const int64_t cc = tc * kTile + j;
                    if (cc < cols && r < rows) ob[cc * rows + r] = tile[threadIdx.x][j];
                }
                __syncthreads();
            }
}

/* One side of at most kThin elements (an RGB image's channels): a thread moves one whole line
 * across the thin side, so reads (THIN_ROWS: the thin side is the rows) or writes are coalesced
 * and no thread idles, where a 32x32 tile would leave most of its threads without work. */
constexpr int64_t kThin = 8;

template <typename U, bool THIN_ROWS>
__global__ void transpose_thin_kernel(const U *__restrict__ in, U *__restrict__ out, int64_t batch, int64_t rows,
                                      int64_t cols)
{
    const int64_t wide = THIN_ROWS ? cols : rows, thin = THIN_ROWS ? rows : cols, plane = rows * cols;
    const int64_t n = batch * wide;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / wide, w = i - b * wide;
        const U *ib = in + b * plane;
        U *ob = out + b * plane;
        for (int64_t t = 0; t < thin; t++) {
            if (THIN_ROWS) ob[w * thin + t] = ib[t * wide + w]; /* in [thin, wide] -> out [wide, thin] */
            else ob[t * wide + w] = ib[w * thin + t];           /* in [wide, thin] -> out [thin, wide] */
        }
    }
}

template <typename U>
tc_status transpose_t(const void *in, void *out, int64_t batch, int64_t rows, int64_t cols, cudaStream_t s,
                      tc_error *err)
{
    if (rows <= kThin || cols <= kThin) {
        const int64_t wide = rows <= kThin ? cols : rows;
        if (rows <= kThin)
            transpose_thin_kernel<U, true><<<blocks_for(batch * wide), kThreads, 0, s>>>(
                static_cast<const U *>(in), static_cast<U *>(out), batch, rows, cols);
        else
            transpose_thin_kernel<U, false><<<blocks_for(batch * wide), kThreads, 0, s>>>(
                static_cast<const U *>(in), static_cast<U *>(out), batch, rows, cols);
        return launched("tc_cuda_transpose_batched", err);
    }
    const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile;
    dim3 grid((unsigned)(tc < 65535 ? tc : 65535), (unsigned)(tr < 65535 ? tr : 65535),
              (unsigned)(batch < 65535 ? batch : 65535));
    dim3 block(kTile, kRowsPerPass);
    transpose_kernel<U><<<grid, block, 0, s>>>(static_cast<const U *>(in), static_cast<U *>(out), batch, rows, cols);
    return launched("tc_cuda_transpose_batched", err);
}

struct dw_geom {
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
    int64_t xs_n, xs_c, xs_h, xs_w; /* x's strides in elements */
    bool y_nhwc, relu1, relu2, w_taps_major, hardswish1;
};

__device__ __forceinline__ float relu_keep_nan(float v) { return v < 0.0f ? 0.0f : v; }
/* PyTorch's hardswish: x * relu6(x + 3) / 6, NaN kept */
__device__ __forceinline__ float hardswish_f(float v) { return v * fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) / 6.0f; }

/* Any layouts: threads take output elements channel fastest when CH_FAST (x channels-last: the
 * KH x KW loads of neighbouring threads are then neighbours), else width fastest; y and the
 * residual are addressed in y's layout. Index arithmetic in I (32-bit when every index fits:
 * 64-bit division is slow). */
template <typename T, bool CH_FAST, typename I>
__global__ void depthwise_kernel(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias,
                                 const T *__restrict__ res, T *__restrict__ y, dw_geom g64)
{
    const I N = (I)g64.N, C = (I)g64.C, OH = (I)g64.OH, OW = (I)g64.OW, KH = (I)g64.KH, KW = (I)g64.KW;
    const int64_t H = g64.H, W = g64.W;
    const I total = N * C * OH * OW;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)gridDim.x * blockDim.x) {
        I n, c, oh, ow, t;
        if (CH_FAST) {
            c = i % C, t = i / C, ow = t % OW, t /= OW, oh = t % OH, n = t / OH;
        } else {
            ow = i % OW, t = i / OW, oh = t % OH, t /= OH, c = t % C, n = t / C;
        }
        const T *xb = x + (size_t)n * (size_t)g64.xs_n + (size_t)c * (size_t)g64.xs_c;
        const T *wc = g64.w_taps_major ? w + c : w + (size_t)c * (size_t)(KH * KW);
        const I wstep = g64.w_taps_major ? C : 1; /* between taps */
        const int64_t ih0 = (int64_t)oh * g64.sh - g64.ph, iw0 = (int64_t)ow * g64.sw - g64.pw;
        float acc = 0.0f;
        for (I kh = 0; kh < KH; kh++) {
            const int64_t ih = ih0 + (int64_t)kh * g64.dh;
            if (ih < 0 || ih >= H) continue;
            for (I kw = 0; kw < KW; kw++) {
                const int64_t iw = iw0 + (int64_t)kw * g64.dw;
                if (iw < 0 || iw >= W) continue;
                acc = fmaf(to_f32(xb[ih * g64.xs_h + iw * g64.xs_w]), to_f32(wc[(kh * KW + kw) * wstep]), acc);
            }
        }
        if (bias) acc += to_f32(bias[c]);
        if (g64.relu1) acc = relu_keep_nan(acc);
        if (g64.hardswish1) acc = hardswish_f(acc);
        const I yi = g64.y_nhwc ? ((n * OH + oh) * OW + ow) * C + c : ((n * C + c) * OH + oh) * OW + ow;
        if (res) acc += to_f32(res[yi]);
        if (g64.relu2) acc = relu_keep_nan(acc);
        y[yi] = from_f32<T>(acc);
    }
}

/* x channels-last, C a multiple of V = 16 / sizeof(T) and x 16-byte aligned (y and the residual
 * too when channels-last): a thread computes V neighbouring channels of one output pixel with one
 * 16-byte load per tap (32-bit index arithmetic), and with TAPS_MAJOR ([KH, KW, C] weights, 16-byte
 * aligned) one more for the weights; an NCHW y is written element by element. */
template <typename T, bool TAPS_MAJOR>
__global__ void depthwise_nhwc_vec_kernel(const T *__restrict__ x, const T *__restrict__ w,
                                          const T *__restrict__ bias, const T *__restrict__ res, T *__restrict__ y,
                                          dw_geom g64)
{
    constexpr int V = 16 / sizeof(T);
    const int H = (int)g64.H, W = (int)g64.W, OH = (int)g64.OH, OW = (int)g64.OW, KH = (int)g64.KH, KW = (int)g64.KW;
    const int sh = (int)g64.sh, sw = (int)g64.sw, ph = (int)g64.ph, pw = (int)g64.pw, dh = (int)g64.dh, dw = (int)g64.dw;
    const unsigned C = (unsigned)g64.C, CV = C / V;
    const unsigned total = (unsigned)g64.N * (unsigned)OH * (unsigned)OW * CV;
    const int taps = KH * KW;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const unsigned cv = i % CV, p = i / CV, ow = p % (unsigned)OW, q = p / (unsigned)OW;
        const unsigned oh = q % (unsigned)OH, n = q / (unsigned)OH;
        const unsigned c0 = cv * V;
        float acc[V];
#pragma unroll
        for (int j = 0; j < V; j++) acc[j] = 0.0f;
        const T *xn = x + (size_t)n * H * W * C + c0;
        const T *wc = w + (size_t)c0 * taps;
        const int ih0 = (int)oh * sh - ph, iw0 = (int)ow * sw - pw;
        for (int kh = 0; kh < KH; kh++) {
            const int ih = ih0 + kh * dh;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < KW; kw++) {
                const int iw = iw0 + kw * dw;
                if (iw < 0 || iw >= W) continue;
                const uint4 raw = *reinterpret_cast<const uint4 *>(xn + ((size_t)ih * W + iw) * C);
                const T *xv = reinterpret_cast<const T *>(&raw);
                const int tap = kh * KW + kw;
                if (TAPS_MAJOR) {
                    const uint4 wraw = *reinterpret_cast<const uint4 *>(w + (size_t)tap * C + c0);
                    const T *wv = reinterpret_cast<const T *>(&wraw);
#pragma unroll
                    for (int j = 0; j < V; j++) acc[j] = fmaf(to_f32(xv[j]), to_f32(wv[j]), acc[j]);
                } else {
#pragma unroll
                    for (int j = 0; j < V; j++) acc[j] = fmaf(to_f32(xv[j]), to_f32(wc[j * taps + tap]), acc[j]);
                }
            }
        }
        uint4 out_raw, res_raw = make_uint4(0, 0, 0, 0);
        T *ov = reinterpret_cast<T *>(&out_raw);
        const T *rv = reinterpret_cast<const T *>(&res_raw);
        const size_t plane = (size_t)OH * OW, pix = (size_t)oh * OW + ow; /* NCHW y */
        if (res && g64.y_nhwc) res_raw = *reinterpret_cast<const uint4 *>(res + (size_t)p * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = acc[j];
            if (bias) v += to_f32(bias[c0 + j]);
            if (g64.relu1) v = relu_keep_nan(v);
            if (g64.hardswish1) v = hardswish_f(v);
            if (res) v += to_f32(g64.y_nhwc ? rv[j] : res[((size_t)n * C + c0 + j) * plane + pix]);
            if (g64.relu2) v = relu_keep_nan(v);
            ov[j] = from_f32<T>(v);
        }
        if (g64.y_nhwc) {
            *reinterpret_cast<uint4 *>(y + (size_t)p * C + c0) = out_raw;
        } else {
#pragma unroll
            for (int j = 0; j < V; j++) y[((size_t)n * C + c0 + j) * plane + pix] = ov[j];
        }
    }
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <typename T>
tc_status depthwise_t(const tc_cuda_depthwise_args *a, const dw_geom &g, cudaStream_t s, tc_error *err)
{
    const T *x = static_cast<const T *>(a->x), *w = static_cast<const T *>(a->w);
    const T *b = static_cast<const T *>(a->bias), *r = static_cast<const T *>(a->residual);
    T *y = static_cast<T *>(a->y);
    const int64_t total = g.N * g.C * g.OH * g.OW, xn = g.N * g.C * g.H * g.W;
    const int64_t wn = g.C * g.KH * g.KW, limit = (int64_t)1 << 30;
    /* 32-bit arithmetic when every index and coordinate stays far below 2^31 */
    const bool small = total < limit && xn < limit && wn < limit && g.sh * g.OH < limit && g.sw * g.OW < limit &&
                       g.dh * g.KH < limit && g.dw * g.KW < limit && g.ph < limit && g.pw < limit;
    constexpr int V = 16 / sizeof(T);
    if (small && a->x_nhwc && g.C % V == 0 && aligned16(x) && (!a->y_nhwc || (aligned16(y) && (!r || aligned16(r))))) {
        if (a->w_taps_major && aligned16(w))
            depthwise_nhwc_vec_kernel<T, true><<<blocks_for(total / V), kThreads, 0, s>>>(x, w, b, r, y, g);
        else
            depthwise_nhwc_vec_kernel<T, false><<<blocks_for(total / V), kThreads, 0, s>>>(x, w, b, r, y, g);
    }
    else if (small && a->x_nhwc)
        depthwise_kernel<T, true, unsigned><<<blocks_for(total), kThreads, 0, s>>>(x, w, b, r, y, g);
    else if (small)
        depthwise_kernel<T, false, unsigned><<<blocks_for(total), kThreads, 0, s>>>(x, w, b, r, y, g);
    else if (a->x_nhwc)
        depthwise_kernel<T, true, int64_t><<<blocks_for(total), kThreads, 0, s>>>(x, w, b, r, y, g);
    else
        depthwise_kernel<T, false, int64_t><<<blocks_for(total), kThreads, 0, s>>>(x, w, b, r, y, g);
    return launched("tc_cuda_depthwise_conv", err);
}

} // namespace

extern "C" tc_status tc_cuda_depthwise_conv(const tc_cuda_depthwise_args *a, void *stream, tc_error *err)
{
    if (!a) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_depthwise_conv: NULL arguments");
    const int64_t sizes[] = {a->N, a->C, a->H, a->W, a->OH, a->OW, a->KH, a->KW, a->ph, a->pw};
    for (int64_t v : sizes)
        if (v < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_depthwise_conv: negative size");
    if (a->sh < 1 || a->sw < 1 || a->dh < 1 || a->dw < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_depthwise_conv: stride and dilation must be positive");
    if (a->N * a->C * a->OH * a->OW == 0) return TC_OK;
    if (!a->x || !a->w || !a->y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_depthwise_conv: NULL buffer");
    dw_geom g;
    g.N = a->N, g.C = a->C, g.H = a->H, g.W = a->W, g.OH = a->OH, g.OW = a->OW, g.KH = a->KH, g.KW = a->KW;
    g.sh = a->sh, g.sw = a->sw, g.ph = a->ph, g.pw = a->pw, g.dh = a->dh, g.dw = a->dw;
    g.xs_n = a->C * a->H * a->W;
    if (a->x_nhwc) g.xs_c = 1, g.xs_w = a->C, g.xs_h = a->W * a->C;
    else g.xs_w = 1, g.xs_h = a->W, g.xs_c = a->H * a->W;
    g.y_nhwc = a->y_nhwc, g.relu1 = a->relu1, g.relu2 = a->relu2, g.w_taps_major = a->w_taps_major,
    g.hardswish1 = a->hardswish1;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (a->dtype) {
    case TC_F32: return depthwise_t<float>(a, g, s, err);
    case TC_F16: return depthwise_t<__half>(a, g, s, err);
    case TC_BF16: return depthwise_t<__nv_bfloat16>(a, g, s, err);
    default: break;
    }
    const char *name = tc_dtype_name(a->dtype);
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_depthwise_conv: dtype %s is not supported (f32, f16, bf16)",
                     name ? name : "?");
}

extern "C" tc_status tc_cuda_conv_channel_bias(void *y, const void *bias, tc_dtype dtype, int64_t N, int64_t C,
                                               int64_t P, bool accumulate, void *stream, tc_error *err)
{
    if (N < 0 || C < 0 || P < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_conv_channel_bias: negative size");
    if (N * C * P == 0) return TC_OK;
    if (!y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_conv_channel_bias: NULL output");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return channel_bias_t<float>(y, bias, N, C, P, accumulate, s, err);
    case TC_F16: return channel_bias_t<__half>(y, bias, N, C, P, accumulate, s, err);
    case TC_BF16: return channel_bias_t<__nv_bfloat16>(y, bias, N, C, P, accumulate, s, err);
    default: break;
    }
    const char *name = tc_dtype_name(dtype);
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_conv_channel_bias: dtype %s is not supported (f32, f16, bf16)",
                     name ? name : "?");
}

extern "C" tc_status tc_cuda_transpose_batched(const void *in, void *out, int64_t batch, int64_t rows, int64_t cols,
                                               size_t elem_size, void *stream, tc_error *err)
{
    if (batch < 0 || rows < 0 || cols < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_transpose_batched: negative size");
    if (batch * rows * cols == 0) return TC_OK;
    if (!in || !out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_transpose_batched: NULL buffer");
    const uintptr_t ib = (uintptr_t)in, ob = (uintptr_t)out, bytes = (uintptr_t)(batch * rows * cols) * elem_size;
    if (ib < ob + bytes && ob < ib + bytes)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_transpose_batched: input and output overlap");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (elem_size) {
    case 1: return transpose_t<uint8_t>(in, out, batch, rows, cols, s, err);
    case 2: return transpose_t<uint16_t>(in, out, batch, rows, cols, s, err);
    case 4: return transpose_t<uint32_t>(in, out, batch, rows, cols, s, err);
    case 8: return transpose_t<uint64_t>(in, out, batch, rows, cols, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_transpose_batched: element size %zu is not supported", elem_size);
}
