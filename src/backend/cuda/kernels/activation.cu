/* Activation CUDA kernels. Same-dtype float tensors take a vectorized path (16-byte packs)
 * templated on the op; integer inputs, f64 and mixed dtypes take one generic kernel that reads
 * the op and dtypes at run time. Formulas are the CPU backend's (backend/cpu/activation.c). */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/activation.h"
#include "backend/cuda/kernels/ew_device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace {

template <typename F> __device__ __forceinline__ F act(int op, F v, F p0, F p1, F p2)
{
    constexpr bool f32 = sizeof(F) == 4;
    switch (op) {
    case TC_CUDA_A_RELU: return v < 0 ? (F)0 : v; /* NaN passes */
    case TC_CUDA_A_HARDTANH: return v != v ? v : v < p0 ? p0 : v > p1 ? p1 : v;
    case TC_CUDA_A_SIGMOID: return (F)1 / ((F)1 + (f32 ? expf(-v) : exp(-v)));
    case TC_CUDA_A_GELU: return (F)0.5 * v * ((F)1 + (f32 ? erff(v * (F)0.70710678118654752440) : erf(v * (F)0.70710678118654752440)));
    case TC_CUDA_A_GELU_TANH: {
        const F k = (F)0.7978845608028654, c3 = (F)0.044715;
        const F u = k * (v + c3 * v * v * v);
        return (F)0.5 * v * ((F)1 + (f32 ? tanhf(u) : tanh(u)));
    }
    case TC_CUDA_A_LEAKY_RELU: return v > 0 ? v : v * p0;
    case TC_CUDA_A_ELU: return v <= 0 ? (f32 ? expm1f(v * p2) : expm1(v * p2)) * p0 * p1 : v * p1;
    case TC_CUDA_A_SILU: return v / ((F)1 + (f32 ? expf(-v) : exp(-v)));
    case TC_CUDA_A_HARDSWISH:
    case TC_CUDA_A_HARDSIGMOID: {
        F r = v + 3;
        r = r < 0 ? (F)0 : r > 6 ? (F)6 : r;
        if (v != v) return v;
        return op == TC_CUDA_A_HARDSWISH ? v * r / 6 : r / 6;
    }
    default: return v;
    }
}

template <typename T, int OP>
__global__ void act_fast(const T *x, T *y, int64_t n, float p0, float p1, float p2, bool vec)
{
    constexpr int V = 16 / sizeof(T);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t done = 0;
    if (vec) {
        const int64_t nv = n / V;
        const tcd::pack<T, V> *xv = reinterpret_cast<const tcd::pack<T, V> *>(x);
        tcd::pack<T, V> *yv = reinterpret_cast<tcd::pack<T, V> *>(y);
        for (int64_t i = tid; i < nv; i += stride) {
            tcd::pack<T, V> a = xv[i], r;
#pragma unroll
            for (int j = 0; j < V; j++) r.v[j] = tcd::from_f<T>(act<float>(OP, tcd::to_f(a.v[j]), p0, p1, p2));
            yv[i] = r;
        }
        done = nv * V;
    }
    for (int64_t i = done + tid; i < n; i += stride) y[i] = tcd::from_f<T>(act<float>(OP, tcd::to_f(x[i]), p0, p1, p2));
}

__global__ void act_generic(int op, const void *x, int xt, void *y, int yt, int64_t n, double p0, double p1,
                            double p2, int64_t lo, int64_t hi)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const bool yint = yt == TC_I64 || yt == TC_I32 || yt == TC_I8 || yt == TC_U8 || yt == TC_BOOL;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (yint) {
            int64_t v = tcd::load_i64(x, xt, i);
            tcd::store_i64(y, yt, i, v < lo ? lo : v > hi ? hi : v);
        } else if (yt == TC_F64) {
            ((double *)y)[i] = act<double>(op, tcd::load_f64(x, xt, i), p0, p1, p2);
        } else {
            /* tc_cpu_as_f32 reads other dtypes through double */
            const float v = xt == TC_F32 || xt == TC_F16 || xt == TC_BF16 ? tcd::load_f32(x, xt, i)
                                                                          : (float)tcd::load_f64(x, xt, i);
            tcd::store_f32(y, yt, i, act<float>(op, v, (float)p0, (float)p1, (float)p2));
        }
    }
}

template <typename T>
tc_status fast(tc_cuda_act op, const void *x, void *y, int64_t n, const double *p, cudaStream_t s, tc_error *err)
{
    constexpr int V = 16 / sizeof(T);
    const bool vec = tcd::aligned(x, 16) && tcd::aligned(y, 16);
    const int blocks = tcd::blocks_for(vec ? n / V + n % V : n);
    const T *tx = static_cast<const T *>(x);
    T *ty = static_cast<T *>(y);
    const float p0 = (float)p[0], p1 = (float)p[1], p2 = (float)p[2];
    switch (op) {
#define AF(OPC) case OPC: act_fast<T, OPC><<<blocks, tcd::kThreads, 0, s>>>(tx, ty, n, p0, p1, p2, vec); break;
    AF(TC_CUDA_A_RELU) AF(TC_CUDA_A_HARDTANH) AF(TC_CUDA_A_SIGMOID) AF(TC_CUDA_A_GELU) AF(TC_CUDA_A_GELU_TANH)
    AF(TC_CUDA_A_LEAKY_RELU) AF(TC_CUDA_A_ELU) AF(TC_CUDA_A_SILU) AF(TC_CUDA_A_HARDSWISH) AF(TC_CUDA_A_HARDSIGMOID)
#undef AF
    default: return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_activation: bad op %d", (int)op);
    }
    return tcd::launched("tc_cuda_activation", err);
}

} // namespace

extern "C" tc_status tc_cuda_activation(tc_cuda_act op, const void *x, tc_dtype xt, void *y, tc_dtype yt, int64_t n,
                                        const double p[3], int64_t lo, int64_t hi, void *stream, tc_error *err)
{
    if ((unsigned)op >= TC_CUDA_A_COUNT || (unsigned)xt >= TC_DTYPE_COUNT || (unsigned)yt >= TC_DTYPE_COUNT || !p)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_activation: bad op %d, dtypes %d -> %d or parameters",
                         (int)op, (int)xt, (int)yt);
    if (n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_activation: negative element count");
    if (n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_activation: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (xt == yt) {
        switch (xt) {
        case TC_F32: return fast<float>(op, x, y, n, p, s, err);
        case TC_F16: return fast<__half>(op, x, y, n, p, s, err);
        case TC_BF16: return fast<__nv_bfloat16>(op, x, y, n, p, s, err);
        default: break;
        }
    }
    act_generic<<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>((int)op, x, (int)xt, y, (int)yt, n, p[0], p[1], p[2], lo, hi);
    return tcd::launched("tc_cuda_activation", err);
}
