/* Device-side helpers shared by the elementwise, activation, shape and index kernels: reading and
 * writing any tensorc dtype with the CPU backend's conversion rules (core/dtype.c), launch sizing
 * and the launch check. Included only by .cu files; everything is static to each translation unit. */
#ifndef TC_BACKEND_CUDA_KERNELS_EW_DEVICE_CUH
#define TC_BACKEND_CUDA_KERNELS_EW_DEVICE_CUH

#include "backend/cuda/kernels/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace tcd {

constexpr int kThreads = 256;
/* Enough blocks to fill an H100 many times over; grid-stride loops cover the rest. */
constexpr int64_t kMaxBlocks = 8192;

static inline int blocks_for(int64_t work)
{
    int64_t b = (work + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    return (int)(b < kMaxBlocks ? b : kMaxBlocks);
}

static inline bool aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

static inline const char *dname(tc_dtype t)
{
    const char *s = tc_dtype_name(t);
    return s ? s : "?";
}

static inline tc_status launched(const char *what, tc_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "%s: kernel launch failed: %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

template <typename T, int V> struct alignas(sizeof(T) * V) pack {
    T v[V];
};

/* Whole bytes moved per thread in the byte-copy kernels. */
struct alignas(16) u128 {
    uint4 v;
};

/* --- element conversions, matching core/dtype.c ---------------------------------------------- */

/* float_to_int of dtype.c: NaN gives INT64_MIN, out-of-range values saturate, else truncation. */
static __device__ __forceinline__ int64_t f2i(double v)
{
    if (v != v) return INT64_MIN;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

static __host__ __device__ __forceinline__ float f8_to_f32(uint8_t v)
{
    const uint32_t sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
    if (exp == 15 && man == 7) return nanf("");
    const float r = exp == 0 ? ldexpf((float)man, -9) : ldexpf((float)(8 + man), (int)exp - 10);
    return sign ? -r : r;
}

/* Nearest float8_e4m3fn code, ties to the even code, saturating at 448 (no infinities), as
 * tc_f32_to_f8e4m3 does by search. */
static __host__ __device__ __forceinline__ uint8_t f32_to_f8(float f)
{
    if (f != f) return 0x7f;
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    if (a >= 464.0f) return sign | 0x7e;
    if (a < 0.015625f) /* subnormal grid 2^-9; 8 lands on the smallest normal's code */
        return sign | (uint8_t)rintf(a * 512.0f);
    int e;
    frexpf(a, &e);
    e -= 1; /* a in [2^e, 2^(e+1)) */
    int q = (int)rintf(ldexpf(a, 3 - e)); /* 8..16 */
    if (q == 16) q = 8, e += 1;
    return sign | (uint8_t)(((e + 7) << 3) | (q - 8));
}

static __device__ __forceinline__ double load_f64(const void *p, int t, int64_t i)
{
    switch (t) {
    case TC_F32: return ((const float *)p)[i];
    case TC_F16: return __half2float(((const __half *)p)[i]);
    case TC_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case TC_F8E4M3: return f8_to_f32(((const uint8_t *)p)[i]);
    case TC_I64: return (double)((const int64_t *)p)[i];
    case TC_I32: return ((const int32_t *)p)[i];
    case TC_I8: return ((const int8_t *)p)[i];
    case TC_U8: return ((const uint8_t *)p)[i];
    case TC_BOOL: return ((const uint8_t *)p)[i] != 0;
    case TC_F64: return ((const double *)p)[i];
    default: return 0;
    }
}

/* As the CPU's load_f32: integers convert directly to float, f64 through (float). */
static __device__ __forceinline__ float load_f32(const void *p, int t, int64_t i)
{
    switch (t) {
    case TC_F32: return ((const float *)p)[i];
    case TC_F16: return __half2float(((const __half *)p)[i]);
    case TC_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case TC_I64: return (float)((const int64_t *)p)[i];
    case TC_I32: return (float)((const int32_t *)p)[i];
    default: return (float)load_f64(p, t, i);
    }
}

static __device__ __forceinline__ int64_t load_i64(const void *p, int t, int64_t i)
{
    switch (t) {
    case TC_I64: return ((const int64_t *)p)[i];
    case TC_I32: return ((const int32_t *)p)[i];
    case TC_I8: return ((const int8_t *)p)[i];
    case TC_U8: return ((const uint8_t *)p)[i];
    case TC_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return f2i(load_f64(p, t, i));
    }
}

/* The value an int64 takes after a cast to dtype t (wrapping to its width, bool is != 0). */
static __device__ __forceinline__ int64_t wrap_to(int64_t v, int t)
{
    switch (t) {
    case TC_I32: return (int32_t)v;
    case TC_I8: return (int8_t)v;
    case TC_U8: return (uint8_t)v;
    case TC_BOOL: return v != 0;
    default: return v;
    }
}

static __device__ __forceinline__ float round_to(float v, int t)
{
    if (t == TC_F16) return __half2float(__float2half_rn(v));
    if (t == TC_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

static __device__ __forceinline__ void store_f64(void *p, int t, int64_t i, double v)
{
    switch (t) {
    case TC_F32: ((float *)p)[i] = (float)v; return;
    case TC_F16: ((__half *)p)[i] = __float2half_rn((float)v); return;
    case TC_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v); return;
    case TC_F8E4M3: ((uint8_t *)p)[i] = f32_to_f8((float)v); return;
    case TC_I64: ((int64_t *)p)[i] = f2i(v); return;
    case TC_I32: ((int32_t *)p)[i] = (int32_t)f2i(v); return;
    case TC_I8: ((int8_t *)p)[i] = (int8_t)f2i(v); return;
    case TC_U8: ((uint8_t *)p)[i] = (uint8_t)f2i(v); return;
    case TC_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case TC_F64: ((double *)p)[i] = v; return;
    default: return;
    }
}

static __device__ __forceinline__ void store_f32(void *p, int t, int64_t i, float v)
{
    switch (t) {
    case TC_F32: ((float *)p)[i] = v; return;
    case TC_F16: ((__half *)p)[i] = __float2half_rn(v); return;
    case TC_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); return;
    default: store_f64(p, t, i, (double)v); return;
    }
}

static __device__ __forceinline__ void store_i64(void *p, int t, int64_t i, int64_t v)
{
    switch (t) {
    case TC_I64: ((int64_t *)p)[i] = v; return;
    case TC_I32: ((int32_t *)p)[i] = (int32_t)v; return;
    case TC_I8: ((int8_t *)p)[i] = (int8_t)v; return;
    case TC_U8: ((uint8_t *)p)[i] = (uint8_t)v; return;
    case TC_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    default: store_f64(p, t, i, (double)v); return;
    }
}

/* tc_convert for one element: exact between integer types, via double otherwise. */
static __device__ __forceinline__ void convert_one(const void *src, int st, int64_t si, void *dst, int dt, int64_t di)
{
    const bool sint = st == TC_I64 || st == TC_I32 || st == TC_I8 || st == TC_U8 || st == TC_BOOL;
    const bool dint = dt == TC_I64 || dt == TC_I32 || dt == TC_I8 || dt == TC_U8 || dt == TC_BOOL;
    if (sint && dint) store_i64(dst, dt, di, load_i64(src, st, si));
    else if (sint) store_f64(dst, dt, di, (double)load_i64(src, st, si));
    else if (dt == TC_F32 && st != TC_F64) ((float *)dst)[di] = load_f32(src, st, si);
    else store_f64(dst, dt, di, load_f64(src, st, si));
}

/* Typed element access for the fast paths. */
static __device__ __forceinline__ float to_f(float x) { return x; }
static __device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ double to_f(double x) { return x; }

template <typename T> static __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ uint8_t from_f<uint8_t>(float x) { return x != 0.0f; }

} // namespace tcd

#endif
