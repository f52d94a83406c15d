/* CUDA kernels for the normalization ops: batch norm with running statistics (a per-channel
 * affine map), layer norm (a warp or a block per row) and group norm (a block per group).
 * Statistics are two-pass in f32, combined in a fixed order, so results do not depend on timing. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/norm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

template <typename T, int V> struct alignas(sizeof(T) * V) pack {
    T v[V];
};

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

__device__ __forceinline__ float load_param(const tc_cuda_norm_param &p, int64_t i)
{
    switch (p.dtype) {
    case TC_F16: return __half2float(static_cast<const __half *>(p.data)[i]);
    case TC_BF16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p.data)[i]);
    default: return static_cast<const float *>(p.data)[i];
    }
}

/* Every thread of the TPR-thread group gets the same sum: butterflies within warps, then the
 * warp totals added in warp order. */
template <int TPR> __device__ __forceinline__ float allreduce_sum(float v, float *sm)
{
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
    if constexpr (TPR == 32) return v;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) sm[w] = v;
    __syncthreads();
    v = sm[0];
    for (int k = 1; k < TPR / 32; k++) v += sm[k];
    return v;
}

/* Sum of p[0..n) (f32 accumulation) or of (p[i] - mean)^2, folded by the TPR threads of a group
 * in runs of V elements TPR * V apart; the run layout does not depend on alignment. */
template <typename T, int TPR, bool SQDEV>
__device__ __forceinline__ float group_sum(const T *p, int64_t n, int t, float mean, float *sm)
{
    constexpr int V = 16 / sizeof(T);
    const bool vec = ((uintptr_t)p % 16) == 0;
    float acc = 0.0f;
    for (int64_t e = (int64_t)t * V; e < n; e += (int64_t)TPR * V) {
        if (vec && e + V <= n) {
            const pack<T, V> q = *reinterpret_cast<const pack<T, V> *>(p + e);
#pragma unroll
            for (int j = 0; j < V; j++) {
                const float v = to_f32(q.v[j]);
                acc += SQDEV ? (v - mean) * (v - mean) : v;
            }
        } else {
            for (int j = 0; j < V && e + j < n; j++) {
                const float v = to_f32(p[e + j]);
                acc += SQDEV ? (v - mean) * (v - mean) : v;
            }
        }
    }
    return allreduce_sum<TPR>(acc, sm);
}

/* --- batch norm ------------------------------------------------------------------------------ */

struct bn_params {
    tc_cuda_norm_param w, b, rm, rv;
};

__global__ void bn_prepare(bn_params p, int64_t C, float eps, float *save_mean, float *save_invstd, float *scale,
                           float *shift)
{
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < C; k += (int64_t)gridDim.x * blockDim.x) {
        const float rm = load_param(p.rm, k);
        const float invstd = 1.0f / sqrtf(__fadd_rn(load_param(p.rv, k), eps));
        const float s = p.w.data ? __fmul_rn(load_param(p.w, k), invstd) : invstd;
        save_mean[k] = rm;
        save_invstd[k] = invstd;
        scale[k] = s;
        shift[k] = __fsub_rn(p.b.data ? load_param(p.b, k) : 0.0f, __fmul_rn(rm, s));
    }
}

/* VEC: inner is a multiple of V and both buffers 16-byte aligned, so a pack never crosses a plane. */
template <typename T, bool VEC>
__global__ void bn_apply(const T *x, T *y, const float *scale, const float *shift, int64_t C, int64_t inner, int64_t n)
{
    constexpr int V = 16 / sizeof(T);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if constexpr (VEC) {
        for (int64_t i = tid; i < n / V; i += stride) {
            const int64_t c = (i * V / inner) % C;
            const float s = scale[c], t = shift[c];
            const pack<T, V> p = reinterpret_cast<const pack<T, V> *>(x)[i];
            pack<T, V> r;
#pragma unroll
            for (int j = 0; j < V; j++) r.v[j] = from_f32<T>(__fadd_rn(__fmul_rn(to_f32(p.v[j]), s), t));
            reinterpret_cast<pack<T, V> *>(y)[i] = r;
        }
    } else {
        for (int64_t i = tid; i < n; i += stride) {
            const int64_t c = (i / inner) % C;
            y[i] = from_f32<T>(__fadd_rn(__fmul_rn(to_f32(x[i]), scale[c]), shift[c]));
        }
    }
}

/* --- layer norm ------------------------------------------------------------------------------ */

template <typename T, typename Tw, int TPR>
__global__ void __launch_bounds__(kThreads) layer_norm_rows(const T *x, T *y, const Tw *w, const Tw *b, float *mean,
                                                            float *rstd, int64_t rows, int64_t n, float eps)
{
    constexpr int V = 16 / sizeof(T);
    __shared__ float sm[kThreads / 32];
    const int t = threadIdx.x % TPR;
    const int64_t row = (int64_t)blockIdx.x * (kThreads / TPR) + threadIdx.x / TPR;
    if (TPR < kThreads && row >= rows) return; /* whole warps leave together */
    const T *xr = x + row * n;
    T *yr = y + row * n;
    const float m = n ? group_sum<T, TPR, false>(xr, n, t, 0.0f, sm) / (float)n : 0.0f;
    const float var = n ? group_sum<T, TPR, true>(xr, n, t, m, sm) / (float)n : NAN;
    const float rs = 1.0f / sqrtf(var + eps);
    if (t == 0) mean[row] = m, rstd[row] = rs;
    const bool vec = ((uintptr_t)xr % 16) == 0 && ((uintptr_t)yr % 16) == 0;
    for (int64_t e = (int64_t)t * V; e < n; e += (int64_t)TPR * V) {
        if (vec && e + V <= n) {
            const pack<T, V> p = *reinterpret_cast<const pack<T, V> *>(xr + e);
            pack<T, V> r;
#pragma unroll
            for (int j = 0; j < V; j++) {
                float v = (to_f32(p.v[j]) - m) * rs;
                if (w) v *= to_f32(w[e + j]);
                if (b) v += to_f32(b[e + j]);
                r.v[j] = from_f32<T>(v);
            }
            *reinterpret_cast<pack<T, V> *>(yr + e) = r;
        } else {
            for (int j = 0; j < V && e + j < n; j++) {
                float v = (to_f32(xr[e + j]) - m) * rs;
                if (w) v *= to_f32(w[e + j]);
                if (b) v += to_f32(b[e + j]);
                yr[e + j] = from_f32<T>(v);
            }
        }
    }
}


/* The same row statistics and result with the row held in registers: a warp per row of
 * at most 32 * V * K elements (K packs of V per lane, every pack whole), loaded once with all
 * K loads in flight, and the weight and bias read as packs too. Each lane folds its packs in the
 * order the warp-per-row layer_norm_rows (TPR 32) does, so the two give the same bits; rows of
 * 1024 < n <= 2048 that the block-per-row variant ran before may differ in the last bits. */
template <typename T, typename Tw, int K>
__global__ void __launch_bounds__(kThreads) layer_norm_regs(const T *x, T *y, const Tw *w, const Tw *b, float *mean,
                                                            float *rstd, int64_t rows, int n, float eps)
{
    constexpr int V = 16 / sizeof(T);
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * (kThreads / 32) + threadIdx.x / 32;
    if (row >= rows) return; /* whole warps leave together */
    const T *xr = x + row * n;
    T *yr = y + row * n;
    pack<T, V> p[K];
#pragma unroll
    for (int k = 0; k < K; k++)
        if ((lane + 32 * k) * V < n) p[k] = *reinterpret_cast<const pack<T, V> *>(xr + (lane + 32 * k) * V);
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++)
        if ((lane + 32 * k) * V < n)
#pragma unroll
            for (int j = 0; j < V; j++) acc += to_f32(p[k].v[j]);
    const float m = allreduce_sum<32>(acc, nullptr) / (float)n;
    acc = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++)
        if ((lane + 32 * k) * V < n)
#pragma unroll
            for (int j = 0; j < V; j++) {
                const float d = to_f32(p[k].v[j]) - m;
                acc += d * d;
            }
    const float rs = 1.0f / sqrtf(allreduce_sum<32>(acc, nullptr) / (float)n + eps);
    if (lane == 0) mean[row] = m, rstd[row] = rs;
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int e = (lane + 32 * k) * V;
        if (e >= n) continue;
        pack<Tw, V> pw, pb;
        if (w) pw = *reinterpret_cast<const pack<Tw, V> *>(w + e);
        if (b) pb = *reinterpret_cast<const pack<Tw, V> *>(b + e);
        pack<T, V> r;
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = (to_f32(p[k].v[j]) - m) * rs;
            if (w) v *= to_f32(pw.v[j]);
            if (b) v += to_f32(pb.v[j]);
            r.v[j] = from_f32<T>(v);
        }
        *reinterpret_cast<pack<T, V> *>(yr + e) = r;
    }
}

/* --- group norm ------------------------------------------------------------------------------ */

/* One block per (n, group); the group's channels are contiguous, cg * hw values. */
template <typename T>
__global__ void __launch_bounds__(kThreads) group_norm_groups(const T *x, T *y, tc_cuda_norm_param w,
                                                              tc_cuda_norm_param b, T *mean, T *rstd, int64_t groups,
                                                              int64_t G, int64_t cg, int64_t hw, float eps)
{
    __shared__ float sm[kThreads / 32];
    const int64_t len = cg * hw;
    for (int64_t grp = blockIdx.x; grp < groups; grp += gridDim.x) {
        const int64_t g = grp % G;
        const T *xg = x + grp * len;
        T *yg = y + grp * len;
        const float m = len ? group_sum<T, kThreads, false>(xg, len, threadIdx.x, 0.0f, sm) / (float)len : 0.0f;
        const float var = len ? group_sum<T, kThreads, true>(xg, len, threadIdx.x, m, sm) / (float)len : NAN;
        const float rs = 1.0f / sqrtf(var + eps);
        if (threadIdx.x == 0) mean[grp] = from_f32<T>(m), rstd[grp] = from_f32<T>(rs);
        for (int64_t e = threadIdx.x; e < len; e += kThreads) {
            const int64_t ch = g * cg + e / hw;
            const float s = w.data ? rs * load_param(w, ch) : rs;
            const float sh = b.data ? load_param(b, ch) : 0.0f;
            yg[e] = from_f32<T>((to_f32(xg[e]) - m) * s + sh);
        }
        __syncthreads(); /* sm is reused by the next group */
    }
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

bool float_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

bool param_ok(const tc_cuda_norm_param &p) { return !p.data || float_dtype(p.dtype); }

tc_status launched(const char *what, tc_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

template <typename T>
void launch_bn(const void *x, void *y, const float *scale, const float *shift, int64_t C, int64_t inner, int64_t n,
               cudaStream_t s)
{
    constexpr int V = 16 / sizeof(T);
    const T *tx = static_cast<const T *>(x);
    T *ty = static_cast<T *>(y);
    if (inner % V == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)y % 16 == 0)
        bn_apply<T, true><<<blocks_for(n / V), kThreads, 0, s>>>(tx, ty, scale, shift, C, inner, n);
    else
        bn_apply<T, false><<<blocks_for(n), kThreads, 0, s>>>(tx, ty, scale, shift, C, inner, n);
}

template <typename T, typename Tw>
tc_status launch_ln(const void *x, void *y, const void *w, const void *b, float *mean, float *rstd, int64_t rows,
                    int64_t n, float eps, cudaStream_t s)
{
    const T *tx = static_cast<const T *>(x);
    T *ty = static_cast<T *>(y);
    const Tw *tw = static_cast<const Tw *>(w), *tb = static_cast<const Tw *>(b);
    constexpr int V = 16 / sizeof(T);
    const int64_t warps_blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
    /* whole packs everywhere: rows of a multiple of V elements on 16-byte aligned buffers, the
     * weight and bias aligned to their packs */
    const bool packs = n > 0 && n % V == 0 && n <= 32 * V * 8 && (uintptr_t)x % 16 == 0 && (uintptr_t)y % 16 == 0 &&
                       (uintptr_t)w % (V * sizeof(Tw)) == 0 && (uintptr_t)b % (V * sizeof(Tw)) == 0;
    if (packs && warps_blocks <= INT32_MAX) {
        const int k = (int)((n + 32 * V - 1) / (32 * V));
        const unsigned g = (unsigned)warps_blocks;
        const int ni = (int)n;
        if (k == 1) layer_norm_regs<T, Tw, 1><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
        else if (k == 2) layer_norm_regs<T, Tw, 2><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
        else if (k == 3) layer_norm_regs<T, Tw, 3><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
        else if (k == 4) layer_norm_regs<T, Tw, 4><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
        else if (k <= 6) layer_norm_regs<T, Tw, 6><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
        else layer_norm_regs<T, Tw, 8><<<g, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, ni, eps);
    } else if (n <= 1024) {
        if (warps_blocks > INT32_MAX) return TC_ERR_UNSUPPORTED;
        layer_norm_rows<T, Tw, 32><<<(unsigned)warps_blocks, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, n,
                                                                               eps);
    } else {
        if (rows > INT32_MAX) return TC_ERR_UNSUPPORTED;
        layer_norm_rows<T, Tw, kThreads><<<(unsigned)rows, kThreads, 0, s>>>(tx, ty, tw, tb, mean, rstd, rows, n,
                                                                             eps);
    }
    return TC_OK;
}

template <typename T>
tc_status launch_ln_w(const void *x, void *y, const void *w, const void *b, tc_dtype wt, float *mean, float *rstd,
                      int64_t rows, int64_t n, float eps, cudaStream_t s)
{
    if (wt == TC_F32) return launch_ln<T, float>(x, y, w, b, mean, rstd, rows, n, eps, s);
    return launch_ln<T, T>(x, y, w, b, mean, rstd, rows, n, eps, s);
}

} // namespace

extern "C" tc_status tc_cuda_batch_norm(const void *x, void *y, tc_dtype dtype, int64_t N, int64_t C, int64_t inner,
                                        tc_cuda_norm_param w, tc_cuda_norm_param b, tc_cuda_norm_param running_mean,
                                        tc_cuda_norm_param running_var, float eps, float *save_mean,
                                        float *save_invstd, float *scale_shift, void *stream, tc_error *err)
{
    if (!float_dtype(dtype))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_batch_norm: dtype %s is not supported (f32, f16, bf16)",
                         name_of(dtype));
    if (!param_ok(w) || !param_ok(b) || !param_ok(running_mean) || !param_ok(running_var))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_batch_norm: parameters must be f32, f16 or bf16");
    if (N < 0 || C < 0 || inner < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_batch_norm: bad geometry");
    if (C == 0) return TC_OK;
    if (!running_mean.data || !running_var.data || !save_mean || !save_invstd || !scale_shift)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "tc_cuda_batch_norm: running statistics, saved statistics and scratch are required");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    bn_params p = {w, b, running_mean, running_var};
    float *scale = scale_shift, *shift = scale_shift + C;
    bn_prepare<<<blocks_for(C), kThreads, 0, s>>>(p, C, eps, save_mean, save_invstd, scale, shift);
    TC_TRY(launched("tc_cuda_batch_norm (parameters)", err));
    const int64_t n = N * C * inner;
    if (n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_batch_norm: NULL buffer");
    switch (dtype) {
    case TC_F32: launch_bn<float>(x, y, scale, shift, C, inner, n, s); break;
    case TC_F16: launch_bn<__half>(x, y, scale, shift, C, inner, n, s); break;
    default: launch_bn<__nv_bfloat16>(x, y, scale, shift, C, inner, n, s); break;
    }
    return launched("tc_cuda_batch_norm", err);
}

extern "C" tc_status tc_cuda_layer_norm(const void *x, void *y, tc_dtype dtype, int64_t rows, int64_t n,
                                        const void *w, const void *b, tc_dtype w_dtype, float eps, float *mean,
                                        float *rstd, void *stream, tc_error *err)
{
    if (!float_dtype(dtype))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_layer_norm: dtype %s is not supported (f32, f16, bf16)",
                         name_of(dtype));
    if ((w || b) && w_dtype != dtype && w_dtype != TC_F32)
        return tc_errorf(err, TC_ERR_DTYPE,
                         "tc_cuda_layer_norm: weight/bias dtype %s must be %s or f32 (convert first)",
                         name_of(w_dtype), name_of(dtype));
    if (rows < 0 || n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_layer_norm: bad geometry");
    if (rows == 0) return TC_OK;
    if (!mean || !rstd || (n > 0 && (!x || !y)))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_layer_norm: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    tc_status st;
    switch (dtype) {
    case TC_F32: st = launch_ln<float, float>(x, y, w, b, mean, rstd, rows, n, eps, s); break;
    case TC_F16: st = launch_ln_w<__half>(x, y, w, b, w_dtype, mean, rstd, rows, n, eps, s); break;
    default: st = launch_ln_w<__nv_bfloat16>(x, y, w, b, w_dtype, mean, rstd, rows, n, eps, s); break;
    }
    if (st != TC_OK)
        return tc_errorf(err, st, "tc_cuda_layer_norm: %lld rows are too many for one launch", (long long)rows);
    return launched("tc_cuda_layer_norm", err);
}

extern "C" tc_status tc_cuda_group_norm(const void *x, void *y, tc_dtype dtype, int64_t N, int64_t C, int64_t hw,
                                        int64_t G, tc_cuda_norm_param w, tc_cuda_norm_param b, float eps, void *mean,
                                        void *rstd, void *stream, tc_error *err)
{
    if (!float_dtype(dtype))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_group_norm: dtype %s is not supported (f32, f16, bf16)",
                         name_of(dtype));
    if (!param_ok(w) || !param_ok(b))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_group_norm: weight and bias must be f32, f16 or bf16");
    if (N < 0 || C < 0 || hw < 0 || G <= 0 || C % G != 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_group_norm: bad geometry N=%lld C=%lld HxW=%lld G=%lld",
                         (long long)N, (long long)C, (long long)hw, (long long)G);
    const int64_t groups = N * G;
    if (groups == 0) return TC_OK;
    if (!mean || !rstd || (N * C * hw > 0 && (!x || !y)))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_group_norm: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = (int)(groups < 65535 * 16 ? groups : 65535 * 16);
    const int64_t cg = C / G;
    switch (dtype) {
    case TC_F32:
        group_norm_groups<float><<<blocks, kThreads, 0, s>>>(static_cast<const float *>(x), static_cast<float *>(y),
                                                             w, b, static_cast<float *>(mean),
                                                             static_cast<float *>(rstd), groups, G, cg, hw, eps);
        break;
    case TC_F16:
        group_norm_groups<__half><<<blocks, kThreads, 0, s>>>(static_cast<const __half *>(x), static_cast<__half *>(y),
                                                              w, b, static_cast<__half *>(mean),
                                                              static_cast<__half *>(rstd), groups, G, cg, hw, eps);
        break;
    default:
        group_norm_groups<__nv_bfloat16><<<blocks, kThreads, 0, s>>>(
            static_cast<const __nv_bfloat16 *>(x), static_cast<__nv_bfloat16 *>(y), w, b,
            static_cast<__nv_bfloat16 *>(mean), static_cast<__nv_bfloat16 *>(rstd), groups, G, cg, hw, eps);
        break;
    }
    return launched("tc_cuda_group_norm", err);
}
