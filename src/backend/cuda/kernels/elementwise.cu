/* Elementwise CUDA kernels: the f32/f16/bf16 cast, add, mul and relu launchers of kernels.h, and
 * the elementwise op family of elementwise.h (unary math, broadcasting binary/ternary ops) with
 * the CPU backend's type rules. Memory-bound, so contiguous paths move 16-byte packs; broadcasting
 * paths walk the output with one stride per operand; every loop is grid-stride. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/elementwise.h"
#include "backend/cuda/kernels/ew_device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

#include <type_traits>

namespace {

constexpr int kThreads = 256;
/* Enough blocks to fill any current GPU several times over (132 SMs x 2048 threads on an H100
 * is 1056 blocks of 256); the grid-stride loop covers the rest. */
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

enum op_kind { OP_ADD, OP_MUL, OP_RELU };

template <int OP> __device__ __forceinline__ float apply(float a, float b)
{
    if constexpr (OP == OP_ADD) return a + b;
    else if constexpr (OP == OP_MUL) return a * b;
    /* a < 0 is false for NaN, so NaN passes through as in torch.relu. */
    else return a < 0.0f ? 0.0f : a;
}

/* One kernel for unary and binary ops; for unary ones b is never read. out may equal a or b:
 * every element is read before the same thread writes it, and no other thread touches it. */
template <typename T, int OP, bool VEC>
__global__ void elementwise_kernel(const T *a, const T *b, T *out, int64_t n)
{
    constexpr int V = 16 / sizeof(T);
    constexpr bool binary = OP != OP_RELU;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t done = 0;
    if constexpr (VEC) {
        const int64_t nvec = n / V;
        const pack<T, V> *av = reinterpret_cast<const pack<T, V> *>(a);
        const pack<T, V> *bv = reinterpret_cast<const pack<T, V> *>(b);
        pack<T, V> *ov = reinterpret_cast<pack<T, V> *>(out);
        for (int64_t i = tid; i < nvec; i += stride) {
            pack<T, V> x = av[i], y, r;
            if constexpr (binary) y = bv[i];
#pragma unroll
            for (int j = 0; j < V; j++)
                r.v[j] = from_f32<T>(apply<OP>(to_f32(x.v[j]), binary ? to_f32(y.v[j]) : 0.0f));
            ov[i] = r;
        }
        done = nvec * V;
    }
    for (int64_t i = done + tid; i < n; i += stride)
        out[i] = from_f32<T>(apply<OP>(to_f32(a[i]), binary ? to_f32(b[i]) : 0.0f));
}

template <typename In, typename Out, bool VEC>
__global__ void cast_kernel(const In *in, Out *out, int64_t n)
{
    constexpr int V = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t done = 0;
    if constexpr (VEC) {
        const int64_t nvec = n / V;
        const pack<In, V> *iv = reinterpret_cast<const pack<In, V> *>(in);
        pack<Out, V> *ov = reinterpret_cast<pack<Out, V> *>(out);
        for (int64_t i = tid; i < nvec; i += stride) {
            pack<In, V> x = iv[i];
            pack<Out, V> r;
#pragma unroll
            for (int j = 0; j < V; j++) r.v[j] = from_f32<Out>(to_f32(x.v[j]));
            ov[i] = r;
        }
        done = nvec * V;
    }
    for (int64_t i = done + tid; i < n; i += stride) out[i] = from_f32<Out>(to_f32(in[i]));
}

int blocks_for(int64_t work)
{
    int64_t b = (work + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    return (int)(b < kMaxBlocks ? b : kMaxBlocks);
}

bool aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

/* Overlap other than exact aliasing: elements would be read after another thread wrote them. */
bool partial_overlap(const void *x, const void *y, size_t bytes)
{
    const uintptr_t xb = (uintptr_t)x, yb = (uintptr_t)y;
    return x && y && xb != yb && xb < yb + bytes && yb < xb + bytes;
}

bool float_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

size_t float_size(tc_dtype t) { return t == TC_F32 ? 4 : 2; }

const char *name_of(tc_dtype t)
{
    const char *s = tc_dtype_name(t);
    return s ? s : "?";
}

tc_status launched(const char *what, tc_error *err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "%s: kernel launch failed: %s (%s)", what,
                     cudaGetErrorName(e), cudaGetErrorString(e));
}

template <typename T, int OP>
tc_status launch_elementwise(const char *what, const void *a, const void *b, void *out, int64_t n,
                             cudaStream_t s, tc_error *err)
{
    const T *ta = static_cast<const T *>(a);
    const T *tb = static_cast<const T *>(b);
    T *to = static_cast<T *>(out);
    const bool vec = aligned(a, 16) && aligned(out, 16) && (OP == OP_RELU || aligned(b, 16));
    if (vec) {
        const int64_t work = n / (16 / (int64_t)sizeof(T)) + n % (16 / (int64_t)sizeof(T));
        elementwise_kernel<T, OP, true><<<blocks_for(work), kThreads, 0, s>>>(ta, tb, to, n);
    } else {
        elementwise_kernel<T, OP, false><<<blocks_for(n), kThreads, 0, s>>>(ta, tb, to, n);
    }
    return launched(what, err);
}

template <int OP>
tc_status elementwise(const char *what, const void *a, const void *b, void *out, tc_dtype dtype,
                      int64_t n, void *stream, tc_error *err)
{
    if (n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: negative element count %lld", what, (long long)n);
    if (!float_dtype(dtype))
        return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported (f32, f16, bf16)", what,
                         name_of(dtype));
    if (n == 0) return TC_OK;
    if (!a || !out || (OP != OP_RELU && !b))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: NULL buffer for %lld elements", what,
                         (long long)n);
    if ((uint64_t)n > UINT64_MAX / 8)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "%s: element count %lld is too large", what, (long long)n);
    const size_t bytes = (size_t)n * float_size(dtype);
    if (partial_overlap(a, out, bytes) || partial_overlap(b, out, bytes))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "%s: output partially overlaps an input; it may only alias one exactly", what);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return launch_elementwise<float, OP>(what, a, b, out, n, s, err);
    case TC_F16: return launch_elementwise<__half, OP>(what, a, b, out, n, s, err);
    case TC_BF16: return launch_elementwise<__nv_bfloat16, OP>(what, a, b, out, n, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "%s: dtype %s is not supported", what, name_of(dtype));
}

template <typename In, typename Out>
tc_status launch_cast(const void *in, void *out, int64_t n, cudaStream_t s, tc_error *err)
{
    constexpr int V = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
    const In *ti = static_cast<const In *>(in);
    Out *to = static_cast<Out *>(out);
    if (aligned(in, sizeof(In) * V) && aligned(out, sizeof(Out) * V))
        cast_kernel<In, Out, true><<<blocks_for(n / V + n % V), kThreads, 0, s>>>(ti, to, n);
    else
        cast_kernel<In, Out, false><<<blocks_for(n), kThreads, 0, s>>>(ti, to, n);
    return launched("tc_cuda_cast", err);
}

template <typename In>
tc_status cast_from(const void *in, void *out, tc_dtype out_t, int64_t n, cudaStream_t s, tc_error *err)
{
    switch (out_t) {
    case TC_F32: return launch_cast<In, float>(in, out, n, s, err);
    case TC_F16: return launch_cast<In, __half>(in, out, n, s, err);
    case TC_BF16: return launch_cast<In, __nv_bfloat16>(in, out, n, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_cast: output dtype %s is not supported", name_of(out_t));
}

} // namespace

extern "C" tc_status tc_cuda_cast(const void *in, tc_dtype in_t, void *out, tc_dtype out_t,
                                  int64_t n, void *stream, tc_error *err)
{
    if (!float_dtype(in_t) || !float_dtype(out_t))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_cast: %s -> %s is not supported (f32, f16, bf16)",
                         name_of(in_t), name_of(out_t));
    if (n < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_cast: negative element count %lld", (long long)n);
    if (n == 0) return TC_OK;
    if (!in || !out)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_cast: NULL buffer for %lld elements", (long long)n);
    const size_t isz = float_size(in_t), osz = float_size(out_t);
    if ((uint64_t)n > UINT64_MAX / 8)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_cast: element count %lld is too large", (long long)n);
    const uintptr_t ib = (uintptr_t)in, ie = ib + (uintptr_t)n * isz;
    const uintptr_t ob = (uintptr_t)out, oe = ob + (uintptr_t)n * osz;
    /* An in-place cast between different sizes would overwrite input not yet read by another thread. */
    if (ib < oe && ob < ie && !(ib == ob && isz == osz))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                         "tc_cuda_cast: input and output overlap (%s -> %s); only an exact in-place cast of same-size types is allowed",
                         name_of(in_t), name_of(out_t));
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (in_t == out_t) {
        if (in == out) return TC_OK;
        return TC_CUDA_CHECK(cudaMemcpyAsync(out, in, (size_t)n * isz, cudaMemcpyDeviceToDevice, s), err);
    }
    switch (in_t) {
    case TC_F32: return cast_from<float>(in, out, out_t, n, s, err);
    case TC_F16: return cast_from<__half>(in, out, out_t, n, s, err);
    case TC_BF16: return cast_from<__nv_bfloat16>(in, out, out_t, n, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_cast: input dtype %s is not supported", name_of(in_t));
}

extern "C" tc_status tc_cuda_add(const void *a, const void *b, void *out, tc_dtype dtype, int64_t n,
                                 void *stream, tc_error *err)
{
    return elementwise<OP_ADD>("tc_cuda_add", a, b, out, dtype, n, stream, err);
}

extern "C" tc_status tc_cuda_mul(const void *a, const void *b, void *out, tc_dtype dtype, int64_t n,
                                 void *stream, tc_error *err)
{
    return elementwise<OP_MUL>("tc_cuda_mul", a, b, out, dtype, n, stream, err);
}

extern "C" tc_status tc_cuda_relu(const void *x, void *out, tc_dtype dtype, int64_t n, void *stream,
                                  tc_error *err)
{
    return elementwise<OP_RELU>("tc_cuda_relu", x, nullptr, out, dtype, n, stream, err);
}

/* ===== the elementwise op family (elementwise.h) =============================================== */

namespace ewf {

/* --- unary --------------------------------------------------------------------------------------- */

template <typename F> __device__ __forceinline__ F umath(int op, F v)
{
    constexpr bool f32 = sizeof(F) == 4;
    switch (op) {
    case TC_CUDA_U_ABS: return f32 ? fabsf(v) : fabs(v);
    case TC_CUDA_U_NEG: return -v;
    case TC_CUDA_U_EXP: return f32 ? expf(v) : exp(v);
    case TC_CUDA_U_LOG: return f32 ? logf(v) : log(v);
    case TC_CUDA_U_SQRT: return f32 ? sqrtf(v) : sqrt(v);
    case TC_CUDA_U_RSQRT: return (F)1 / (f32 ? sqrtf(v) : sqrt(v));
    case TC_CUDA_U_RECIPROCAL: return (F)1 / v;
    case TC_CUDA_U_SIN: return f32 ? sinf(v) : sin(v);
    case TC_CUDA_U_COS: return f32 ? cosf(v) : cos(v);
    case TC_CUDA_U_TANH: return f32 ? tanhf(v) : tanh(v);
    case TC_CUDA_U_ERF: return f32 ? erff(v) : erf(v);
    case TC_CUDA_U_FLOOR: return f32 ? floorf(v) : floor(v);
    case TC_CUDA_U_CEIL: return f32 ? ceilf(v) : ceil(v);
    case TC_CUDA_U_ROUND: return f32 ? rintf(v) : rint(v); /* half to even */
    case TC_CUDA_U_SIGN: return (F)((v > 0) - (v < 0));    /* NaN and -0 give 0 */
    default: return v;
    }
}

/* Same-dtype float tensors: 16-byte packs where aligned, then a scalar tail. */
template <typename T, int OP>
__global__ void unary_fast(const T *x, T *y, int64_t n, bool vec)
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
            for (int j = 0; j < V; j++) r.v[j] = tcd::from_f<T>(umath<float>(OP, tcd::to_f(a.v[j])));
            yv[i] = r;
        }
        done = nv * V;
    }
    for (int64_t i = done + tid; i < n; i += stride) y[i] = tcd::from_f<T>(umath<float>(OP, tcd::to_f(x[i])));
}

static __device__ __forceinline__ int64_t umath_int(int op, int64_t v)
{
    switch (op) {
    case TC_CUDA_U_ABS: return v < 0 ? (int64_t)(0ull - (uint64_t)v) : v;
    case TC_CUDA_U_NEG: return (int64_t)(0ull - (uint64_t)v);
    case TC_CUDA_U_SIGN: return (v > 0) - (v < 0);
    default: return v; /* floor, ceil, round of an integer */
    }
}

/* Everything else, dtypes read at run time. */
__global__ void unary_generic(int op, const void *x, int xt, void *y, int yt, int64_t n)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const bool yfloat = yt == TC_F32 || yt == TC_F16 || yt == TC_BF16 || yt == TC_F8E4M3;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (op == TC_CUDA_U_LOGICAL_NOT) {
            ((uint8_t *)y)[i] = tcd::load_f64(x, xt, i) == 0;
        } else if (op == TC_CUDA_U_ISNAN) {
            const double v = tcd::load_f64(x, xt, i);
            ((uint8_t *)y)[i] = v != v;
        } else if (op == TC_CUDA_U_BITWISE_NOT) {
            if (xt == TC_BOOL) ((uint8_t *)y)[i] = !((const uint8_t *)x)[i];
            else tcd::store_i64(y, yt, i, ~tcd::load_i64(x, xt, i));
        } else if (yt == TC_F64) {
            ((double *)y)[i] = umath<double>(op, tcd::load_f64(x, xt, i));
        } else if (yfloat) {
            /* tc_cpu_as_f32 reads dtypes other than f32/f16/bf16 through double */
            const float v = xt == TC_F32 || xt == TC_F16 || xt == TC_BF16 ? tcd::load_f32(x, xt, i)
                                                                          : (float)tcd::load_f64(x, xt, i);
            tcd::store_f32(y, yt, i, umath<float>(op, v));
        } else {
            tcd::store_i64(y, yt, i, umath_int(op, tcd::load_i64(x, xt, i)));
        }
    }
}

template <typename T>
tc_status unary_fast_launch(tc_cuda_uop op, const void *x, void *y, int64_t n, cudaStream_t s, tc_error *err)
{
    constexpr int V = 16 / sizeof(T);
    const bool vec = tcd::aligned(x, 16) && tcd::aligned(y, 16);
    const int blocks = tcd::blocks_for(vec ? n / V + n % V : n);
    const T *tx = static_cast<const T *>(x);
    T *ty = static_cast<T *>(y);
    switch (op) {
#define UF(OPC)                                                                                    \
    case OPC: unary_fast<T, OPC><<<blocks, tcd::kThreads, 0, s>>>(tx, ty, n, vec); break;
    UF(TC_CUDA_U_ABS) UF(TC_CUDA_U_NEG) UF(TC_CUDA_U_EXP) UF(TC_CUDA_U_LOG) UF(TC_CUDA_U_SQRT)
    UF(TC_CUDA_U_RSQRT) UF(TC_CUDA_U_RECIPROCAL) UF(TC_CUDA_U_SIN) UF(TC_CUDA_U_COS) UF(TC_CUDA_U_TANH)
    UF(TC_CUDA_U_ERF) UF(TC_CUDA_U_FLOOR) UF(TC_CUDA_U_CEIL) UF(TC_CUDA_U_ROUND) UF(TC_CUDA_U_SIGN)
#undef UF
    default: return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_unary: op %d has no fast path", (int)op);
    }
    return tcd::launched("tc_cuda_unary", err);
}

/* --- broadcasting binary / ternary ------------------------------------------------------------- */

template <typename F> __device__ __forceinline__ F fmaxn(F a, F b) { return (a != a || a > b) ? a : b; }
template <typename F> __device__ __forceinline__ F fminn(F a, F b) { return (a != a || a < b) ? a : b; }
template <typename F> __device__ __forceinline__ F ffmod(F a, F b)
{
    if constexpr (sizeof(F) == 4) return fmodf(a, b);
    else return fmod(a, b);
}
template <typename F> __device__ __forceinline__ F frem(F a, F b)
{
    F m = ffmod(a, b);
    if (m != 0 && ((b < 0) != (m < 0))) m += b;
    return m;
}
/* Python's floor division, as the CPU computes it: the remainder decides the correction and the
 * quotient is rounded to the nearest integer. */
template <typename F> __device__ __forceinline__ F ffloordiv(F a, F b)
{
    if (b == 0) return a / b;
    F m = ffmod(a, b);
    F q = (a - m) / b;
    if (m != 0 && ((b < 0) != (m < 0))) q -= 1;
    if (q == 0) return copysign((F)0, a / b);
    F f = floor(q);
    if (q - f > (F)0.5) f += 1;
    return f;
}

/* x + alpha * y without contraction into an fma, which the CPU does not do either. */
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

/* Float domains. For where, p is the condition (0 or 1). */
template <typename F> __device__ __forceinline__ F fapply(int op, F p, F x, F y, F alpha, int qr)
{
    constexpr bool f32 = sizeof(F) == 4;
    switch (op) {
    case TC_CUDA_B_ADD: return add_rn(p, mul_rn(alpha, x));
    case TC_CUDA_B_SUB: return sub_rn(p, mul_rn(alpha, x));
    case TC_CUDA_B_MUL: return p * x;
    case TC_CUDA_B_DIV: return p / x;
    case TC_CUDA_B_DIV_TRUNC:
        if constexpr (f32) return truncf(tcd::round_to(p / x, qr));
        else return trunc(p / x);
    case TC_CUDA_B_DIV_FLOOR: return ffloordiv(p, x);
    case TC_CUDA_B_POW:
        if constexpr (f32) return powf(p, x);
        else return pow(p, x);
    case TC_CUDA_B_MAX: return fmaxn(p, x);
    case TC_CUDA_B_MIN: return fminn(p, x);
    case TC_CUDA_B_REM: return frem(p, x);
    case TC_CUDA_B_EQ: return p == x;
    case TC_CUDA_B_NE: return p != x;
    case TC_CUDA_B_LT: return p < x;
    case TC_CUDA_B_LE: return p <= x;
    case TC_CUDA_B_GT: return p > x;
    case TC_CUDA_B_GE: return p >= x;
    case TC_CUDA_B_WHERE: return p != 0 ? x : y;
    case TC_CUDA_B_CLAMP: return fminn(fmaxn(p, x), y);
    default: return 0; /* logical and bitwise ops run in the i64 domain */
    }
}

__device__ __forceinline__ int64_t wrapu(uint64_t v) { return (int64_t)v; }

__device__ __forceinline__ int64_t ipow(int64_t a, int64_t e)
{
    if (e < 0) return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, b = (uint64_t)a;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return wrapu(r);
}

/* Integer domain; division and remainder by zero give 0 (see elementwise.h). */
__device__ __forceinline__ int64_t iapply(int op, int64_t p, int64_t x, int64_t y, int64_t alpha)
{
    switch (op) {
    case TC_CUDA_B_ADD: return wrapu((uint64_t)p + (uint64_t)alpha * (uint64_t)x);
    case TC_CUDA_B_SUB: return wrapu((uint64_t)p - (uint64_t)alpha * (uint64_t)x);
    case TC_CUDA_B_MUL: return wrapu((uint64_t)p * (uint64_t)x);
    case TC_CUDA_B_DIV_TRUNC:
        if (x == 0) return 0;
        return x == -1 ? wrapu(0ull - (uint64_t)p) : p / x;
    case TC_CUDA_B_DIV_FLOOR: {
        if (x == 0) return 0;
        if (x == -1) return wrapu(0ull - (uint64_t)p);
        int64_t q = p / x;
        if (p % x != 0 && ((p < 0) != (x < 0))) q--;
        return q;
    }
    case TC_CUDA_B_POW: return ipow(p, x);
    case TC_CUDA_B_MAX: return p > x ? p : x;
    case TC_CUDA_B_MIN: return p < x ? p : x;
    case TC_CUDA_B_REM: {
        if (x == 0 || x == -1) return 0;
        int64_t r = p % x;
        if (r != 0 && ((r < 0) != (x < 0))) r += x;
        return r;
    }
    case TC_CUDA_B_EQ: return p == x;
    case TC_CUDA_B_NE: return p != x;
    case TC_CUDA_B_LT: return p < x;
    case TC_CUDA_B_LE: return p <= x;
    case TC_CUDA_B_GT: return p > x;
    case TC_CUDA_B_GE: return p >= x;
    case TC_CUDA_B_LAND: return (p != 0) & (x != 0);
    case TC_CUDA_B_LOR: return (p != 0) | (x != 0);
    case TC_CUDA_B_LXOR: return (p != 0) ^ (x != 0);
    case TC_CUDA_B_BAND: return p & x;
    case TC_CUDA_B_BOR: return p | x;
    case TC_CUDA_B_BXOR: return p ^ x;
    case TC_CUDA_B_WHERE: return p != 0 ? x : y;
    case TC_CUDA_B_CLAMP: return p < x ? (x < y ? x : y) : (p < y ? p : y);
    default: return 0;
    }
}

__device__ __forceinline__ bool is_float_dtype(int t)
{
    return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F8E4M3 || t == TC_F64;
}

/* Operand k at element offset off, in the compute domain D. */
template <typename D> __device__ __forceinline__ D load_operand(const tc_cuda_operand &o, int64_t off)
{
    if constexpr (sizeof(D) == 4) {
        float v = tcd::load_f32(o.data, o.dtype, off);
        return (o.cast == TC_F16 || o.cast == TC_BF16) ? tcd::round_to(v, o.cast) : v;
    } else if constexpr (std::is_same<D, double>::value) {
        return tcd::load_f64(o.data, o.dtype, off);
    } else {
        int64_t v = is_float_dtype(o.dtype) && o.cast == TC_BOOL ? (int64_t)(tcd::load_f64(o.data, o.dtype, off) != 0)
                                                                 : tcd::load_i64(o.data, o.dtype, off);
        return tcd::wrap_to(v, o.cast);
    }
}

template <typename D> __device__ __forceinline__ D scalar_of(const tc_cuda_operand &o)
{
    if constexpr (std::is_same<D, int64_t>::value) return o.i;
    else return (D)o.f;
}

template <typename D> __device__ __forceinline__ D apply(int op, D p, D x, D y, const tc_cuda_bcast &b)
{
    if constexpr (std::is_same<D, int64_t>::value) return iapply(op, p, x, y, b.alpha_i);
    else return fapply<D>(op, p, x, y, (D)b.alpha, b.qround);
}

template <typename D> __device__ __forceinline__ void store_dom(void *out, int t, int64_t i, D v)
{
    if constexpr (std::is_same<D, int64_t>::value) tcd::store_i64(out, t, i, v);
    else if constexpr (std::is_same<D, double>::value) tcd::store_f64(out, t, i, v);
    else tcd::store_f32(out, t, i, v);
}

/* Any layout and dtypes: per element, the output index is split into coordinates and each operand
 * gets its own offset. OP < 0 reads the op at run time (the rare f64 and integer domains). IDX is
 * 32-bit when every offset fits, which makes the divisions cheaper. */
template <typename D, int OP, typename IDX>
__global__ void bcast_generic(const tc_cuda_bcast b)
{
    const int op = OP >= 0 ? OP : (int)b.op;
    D sv[3] = {0, 0, 0};
    for (int k = 0; k < b.nin; k++)
        if (!b.in[k].data) sv[k] = scalar_of<D>(b.in[k]);
    const IDX n = (IDX)b.numel;
    const IDX stride = (IDX)gridDim.x * blockDim.x;
    for (IDX i = (IDX)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        IDX off[3] = {0, 0, 0}, rem = i;
        for (int d = b.rank - 1; d >= 0; d--) {
            const IDX dim = (IDX)b.dims[d];
            const IDX c = rem % dim;
            rem /= dim;
#pragma unroll
            for (int k = 0; k < 3; k++) off[k] += c * (IDX)b.in[k].strides[d];
        }
        D v[3];
#pragma unroll
        for (int k = 0; k < 3; k++) {
            if (k >= b.nin) v[k] = 0;
            else if (!b.in[k].data) v[k] = sv[k];
            else if (k == 0 && op == TC_CUDA_B_WHERE) v[k] = ((const uint8_t *)b.in[0].data)[off[0]] != 0;
            else v[k] = load_operand<D>(b.in[k], (int64_t)off[k]);
        }
        if constexpr (std::is_same<D, int64_t>::value) {
            if (v[1] == 0 && b.err_flag &&
                (op == TC_CUDA_B_DIV_TRUNC || op == TC_CUDA_B_DIV_FLOOR || op == TC_CUDA_B_REM))
                atomicOr(b.err_flag, 1u);
        }
        store_dom<D>(b.out, b.out_dtype, (int64_t)i, apply<D>(op, v[0], v[1], v[2], b));
    }
}

/* How bcast_fast reads an operand: one value for all, its own element, one value per row of
 * `inner` elements (a per-channel gate [N, C, 1, 1] of [N, C, H, W]), the row's position (a
 * bias [W] of [.., W]), or for a rank-3 op [outer, mid, inner] one row of `inner` per outer
 * index (the same gate of a channels-last [N, H*W, C]). */
enum { OPD_SCALAR = 0, OPD_FULL = 1, OPD_ROW = 2, OPD_COL = 3, OPD_GATE = 4 };

__host__ __device__ inline int operand_kind(const tc_cuda_bcast &b, int k)
{
    const tc_cuda_operand &o = b.in[k];
    if (!o.data) return OPD_SCALAR;
    if (b.rank == 1) return o.strides[0] == 0 ? OPD_SCALAR : o.strides[0] == 1 ? OPD_FULL : -1;
    if (b.rank == 3) {
        const int64_t t0 = o.strides[0], t1 = o.strides[1], t2 = o.strides[2];
        if (t0 == 0 && t1 == 0 && t2 == 0) return OPD_SCALAR;
        if (t0 == b.dims[1] * b.dims[2] && t1 == b.dims[2] && t2 == 1) return OPD_FULL;
        if (t0 == b.dims[2] && t1 == 0 && t2 == 1) return OPD_GATE;
        return -1;
    }
    if (b.rank != 2) return -1;
    const int64_t s0 = o.strides[0], s1 = o.strides[1];
    if (s0 == 0 && s1 == 0) return OPD_SCALAR;
    if (s0 == b.dims[1] && s1 == 1) return OPD_FULL;
    if (s0 == 1 && s1 == 0) return OPD_ROW;
    if (s0 == 0 && s1 == 1) return OPD_COL;
    return -1;
}

/* Operands of one float dtype T (no rounding step needed) that are contiguous with the output's
 * shape, a single element (a Scalar or a one-element tensor, read once per thread), or, for a
 * rank-2 op [outer, inner], one value per row or per column, or for a rank-3 op [outer, mid,
 * inner] one row per outer index (OPD_GATE). TO is T, or uint8_t (bool) for comparisons. vec:
 * 16-byte packs, which needs inner % V == 0 when any operand is per row, per column or a gate. */
template <typename T, typename TO, int OP, int NIN>
__global__ void bcast_fast(const tc_cuda_bcast b, bool vec)
{
    constexpr int V = 16 / sizeof(T);
    const int64_t n = b.numel;
    const int64_t inner = b.rank == 3 ? b.dims[2] : b.rank == 2 ? b.dims[1] : 1;
    const int64_t plane = b.rank == 3 ? b.dims[1] * b.dims[2] : 1;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    float sv[3] = {0, 0, 0};
    int kind[3] = {OPD_SCALAR, OPD_SCALAR, OPD_SCALAR};
    bool sc[3] = {true, true, true};
    const T *src[3] = {nullptr, nullptr, nullptr};
#pragma unroll
    for (int k = 0; k < NIN; k++) {
        kind[k] = operand_kind(b, k);
        sc[k] = kind[k] == OPD_SCALAR;
        if (!sc[k]) src[k] = static_cast<const T *>(b.in[k].data);
        else sv[k] = b.in[k].data ? load_operand<float>(b.in[k], 0) : (float)b.in[k].f;
    }
    const float alpha = (float)b.alpha;
    TO *out = static_cast<TO *>(b.out);
    int64_t done = 0;
    if (vec) {
        const int64_t nv = n / V;
        for (int64_t i = tid; i < nv; i += stride) {
            float x[3][V];
#pragma unroll
            for (int k = 0; k < 3; k++) {
                if (k < NIN && kind[k] == OPD_ROW) {
                    const float r = tcd::to_f(src[k][i * V / inner]); /* V elements of one row */
#pragma unroll
                    for (int j = 0; j < V; j++) x[k][j] = r;
                } else if (k < NIN && !sc[k]) {
                    const int64_t e = i * V; /* V elements of one row */
                    const int64_t at = kind[k] == OPD_COL    ? (e % inner) / V
                                       : kind[k] == OPD_GATE ? ((e / plane) * inner + e % inner) / V
                                                             : i;
                    const tcd::pack<T, V> pk = reinterpret_cast<const tcd::pack<T, V> *>(src[k])[at];
#pragma unroll
                    for (int j = 0; j < V; j++) x[k][j] = tcd::to_f(pk.v[j]);
                } else {
#pragma unroll
                    for (int j = 0; j < V; j++) x[k][j] = sv[k];
                }
            }
            tcd::pack<TO, V> r;
#pragma unroll
            for (int j = 0; j < V; j++) r.v[j] = tcd::from_f<TO>(fapply<float>(OP, x[0][j], x[1][j], x[2][j], alpha, b.qround));
            reinterpret_cast<tcd::pack<TO, V> *>(out)[i] = r;
        }
        done = nv * V;
    }
    for (int64_t i = done + tid; i < n; i += stride) {
        float x[3];
#pragma unroll
        for (int k = 0; k < 3; k++) {
            if (k >= NIN || sc[k]) x[k] = sv[k];
            else x[k] = tcd::to_f(src[k][kind[k] == OPD_ROW    ? i / inner
                                         : kind[k] == OPD_COL  ? i % inner
                                         : kind[k] == OPD_GATE ? (i / plane) * inner + i % inner
                                                               : i]);
        }
        out[i] = tcd::from_f<TO>(fapply<float>(OP, x[0], x[1], x[2], alpha, b.qround));
    }
}

bool is_pred(int op) { return op >= TC_CUDA_B_EQ && op <= TC_CUDA_B_LXOR; }

/* The dtype of the fast path, or -1 when the op needs the general kernel. */
int fast_dtype(const tc_cuda_bcast &b)
{
    if (b.dom != TC_CUDA_DOM_F32 || b.rank > 3 || b.op == TC_CUDA_B_WHERE) return -1;
    if (b.rank >= 2 && b.dims[b.rank - 1] < 1) return -1;
    if (b.rank == 3 && b.dims[1] < 1) return -1;
    if (b.op > TC_CUDA_B_GE && b.op != TC_CUDA_B_CLAMP) return -1;
    int t = -1;
    for (int k = 0; k < b.nin; k++) {
        const tc_cuda_operand &o = b.in[k];
        const int kind = operand_kind(b, k);
        if (kind < 0) return -1;
        if (kind == OPD_SCALAR) continue;
        if (o.dtype != TC_F32 && o.dtype != TC_F16 && o.dtype != TC_BF16) return -1;
        if ((o.cast == TC_F16 || o.cast == TC_BF16) && o.cast != o.dtype) return -1;
        if (t >= 0 && t != (int)o.dtype) return -1;
        t = (int)o.dtype;
    }
    if (t < 0) return -1;
    if (is_pred(b.op) ? b.out_dtype != TC_BOOL : (int)b.out_dtype != t) return -1;
    return t;
}

template <typename T, typename TO, int OP>
void fast_launch(const tc_cuda_bcast &b, cudaStream_t s)
{
    constexpr int V = 16 / sizeof(T);
    bool vec = tcd::aligned(b.out, sizeof(TO) * V);
    for (int k = 0; k < b.nin; k++) {
        const int kind = operand_kind(b, k);
        if (kind == OPD_FULL || kind == OPD_COL || kind == OPD_GATE) vec = vec && tcd::aligned(b.in[k].data, 16);
        if (kind == OPD_ROW || kind == OPD_COL) vec = vec && b.dims[1] % V == 0;
        if (kind == OPD_GATE) vec = vec && b.dims[2] % V == 0;
    }
    const int blocks = tcd::blocks_for(vec ? b.numel / V + b.numel % V : b.numel);
    if (b.nin == 3) bcast_fast<T, TO, OP, 3><<<blocks, tcd::kThreads, 0, s>>>(b, vec);
    else bcast_fast<T, TO, OP, 2><<<blocks, tcd::kThreads, 0, s>>>(b, vec);
}

template <typename T> bool fast_dispatch(const tc_cuda_bcast &b, cudaStream_t s)
{
    switch (b.op) {
#define FA(OPC) case OPC: fast_launch<T, T, OPC>(b, s); return true;
#define FP(OPC) case OPC: fast_launch<T, uint8_t, OPC>(b, s); return true;
    FA(TC_CUDA_B_ADD) FA(TC_CUDA_B_SUB) FA(TC_CUDA_B_MUL) FA(TC_CUDA_B_DIV) FA(TC_CUDA_B_DIV_TRUNC)
    FA(TC_CUDA_B_DIV_FLOOR) FA(TC_CUDA_B_POW) FA(TC_CUDA_B_MAX) FA(TC_CUDA_B_MIN) FA(TC_CUDA_B_REM)
    FA(TC_CUDA_B_CLAMP)
    FP(TC_CUDA_B_EQ) FP(TC_CUDA_B_NE) FP(TC_CUDA_B_LT) FP(TC_CUDA_B_LE) FP(TC_CUDA_B_GT) FP(TC_CUDA_B_GE)
#undef FA
#undef FP
    default: return false;
    }
}

template <typename IDX> void generic_f32(const tc_cuda_bcast &b, int blocks, cudaStream_t s)
{
    switch (b.op) {
#define GA(OPC) case OPC: bcast_generic<float, OPC, IDX><<<blocks, tcd::kThreads, 0, s>>>(b); return;
    GA(TC_CUDA_B_ADD) GA(TC_CUDA_B_SUB) GA(TC_CUDA_B_MUL) GA(TC_CUDA_B_DIV) GA(TC_CUDA_B_WHERE)
    GA(TC_CUDA_B_MAX) GA(TC_CUDA_B_MIN) GA(TC_CUDA_B_EQ) GA(TC_CUDA_B_LT) GA(TC_CUDA_B_GT)
#undef GA
    default: bcast_generic<float, -1, IDX><<<blocks, tcd::kThreads, 0, s>>>(b); return;
    }
}

} // namespace ewf

extern "C" tc_status tc_cuda_unary(tc_cuda_uop op, const void *x, tc_dtype xt, void *y, tc_dtype yt, int64_t n,
                                   void *stream, tc_error *err)
{
    if ((unsigned)op >= TC_CUDA_U_COUNT || (unsigned)xt >= TC_DTYPE_COUNT || (unsigned)yt >= TC_DTYPE_COUNT)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_unary: bad op %d or dtypes %d -> %d", (int)op,
                         (int)xt, (int)yt);
    if (n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_unary: negative element count %lld", (long long)n);
    if (n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_unary: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (op < TC_CUDA_U_LOGICAL_NOT && xt == yt) {
        switch (xt) {
        case TC_F32: return ewf::unary_fast_launch<float>(op, x, y, n, s, err);
        case TC_F16: return ewf::unary_fast_launch<__half>(op, x, y, n, s, err);
        case TC_BF16: return ewf::unary_fast_launch<__nv_bfloat16>(op, x, y, n, s, err);
        default: break;
        }
    }
    ewf::unary_generic<<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>((int)op, x, (int)xt, y, (int)yt, n);
    return tcd::launched("tc_cuda_unary", err);
}

extern "C" tc_status tc_cuda_broadcast(const tc_cuda_bcast *b, void *stream, tc_error *err)
{
    if (!b || (unsigned)b->op >= TC_CUDA_B_COUNT || b->nin < 2 || b->nin > 3 || b->rank < 1 ||
        b->rank > TC_MAX_RANK || (unsigned)b->out_dtype >= TC_DTYPE_COUNT)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: malformed arguments");
    if (b->numel < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: negative element count");
    if (b->numel == 0) return TC_OK;
    if (!b->out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: NULL output");
    int64_t count = 1;
    for (int d = 0; d < b->rank; d++) {
        if (b->dims[d] < 1) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: dim %d is %lld", d, (long long)b->dims[d]);
        count *= b->dims[d];
    }
    if (count != b->numel)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: dims hold %lld elements, numel is %lld",
                         (long long)count, (long long)b->numel);
    for (int k = 0; k < b->nin; k++) {
        if (b->in[k].data) continue;
        for (int d = 0; d < b->rank; d++)
            if (b->in[k].strides[d] != 0)
                return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: scalar operand %d has a stride", k);
    }
    /* unused operand slots are read as scalars with zero strides */
    tc_cuda_bcast p = *b;
    for (int k = p.nin; k < 3; k++) memset(&p.in[k], 0, sizeof p.in[k]);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int ft = ewf::fast_dtype(p);
    bool done = false;
    if (ft == TC_F32) done = ewf::fast_dispatch<float>(p, s);
    else if (ft == TC_F16) done = ewf::fast_dispatch<__half>(p, s);
    else if (ft == TC_BF16) done = ewf::fast_dispatch<__nv_bfloat16>(p, s);
    if (!done) {
        const int blocks = tcd::blocks_for(p.numel);
        /* 32-bit offsets only when the output's and every operand's furthest element fit: a strided
         * view (a row of a large tensor) can reach far past the output's element count */
        bool small = p.numel < ((int64_t)1 << 31);
        for (int k = 0; k < p.nin && small; k++) {
            int64_t far = 0;
            for (int d = 0; d < p.rank; d++) far += (p.dims[d] - 1) * p.in[k].strides[d];
            small = far < ((int64_t)1 << 31);
        }
        switch (p.dom) {
        case TC_CUDA_DOM_F32:
            if (small) ewf::generic_f32<uint32_t>(p, blocks, s);
            else ewf::generic_f32<int64_t>(p, blocks, s);
            break;
        case TC_CUDA_DOM_F64: ewf::bcast_generic<double, -1, int64_t><<<blocks, tcd::kThreads, 0, s>>>(p); break;
        case TC_CUDA_DOM_I64:
            if (small) ewf::bcast_generic<int64_t, -1, uint32_t><<<blocks, tcd::kThreads, 0, s>>>(p);
            else ewf::bcast_generic<int64_t, -1, int64_t><<<blocks, tcd::kThreads, 0, s>>>(p);
            break;
        default: return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast: bad domain %d", (int)p.dom);
        }
    }
    return tcd::launched("tc_cuda_broadcast", err);
}
