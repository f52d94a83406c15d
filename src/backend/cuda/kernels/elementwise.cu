/* Elementwise CUDA kernels: dtype casts among f32/f16/bf16 and same-shape add, mul and relu, all
 * computed in f32. Memory-bound, so each thread moves 16-byte packs when the pointers allow it and
 * walks the buffer with a grid-stride loop; a scalar loop finishes the tail. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

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
