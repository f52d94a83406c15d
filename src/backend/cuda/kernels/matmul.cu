/* Small CUDA kernels around the matrix products (the products themselves run in cuBLASLt): the
 * exact integer GEMM, the broadcast copy that seeds addmm/linear outputs with self or a bias, and
 * the row update D = beta*D + bias used when K is 0 or the epilogue cannot take the bias. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/matmul.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

template <typename T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T, typename A> __device__ __forceinline__ T from_acc(A x);
template <> __device__ __forceinline__ float from_acc<float, float>(float x) { return x; }
template <> __device__ __forceinline__ double from_acc<double, double>(double x) { return x; }
template <> __device__ __forceinline__ __half from_acc<__half, float>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float x)
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

template <typename T>
__global__ void rows_scale_bias_kernel(T *d, const T *bias, int64_t rows, int64_t cols, double beta)
{
    using A = typename acc_of<T>::type;
    const int64_t n = rows * cols;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const A b = (A)beta;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        A v = beta == 0.0 ? (A)0 : b * to_acc(d[i]);
        if (bias) v += to_acc(bias[i % cols]);
        d[i] = from_acc<T, A>(v);
    }
}

template <typename T>
tc_status launch_rows(void *d, const void *bias, int64_t rows, int64_t cols, double beta, cudaStream_t s,
                      tc_error *err)
{
    rows_scale_bias_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s>>>(
        static_cast<T *>(d), static_cast<const T *>(bias), rows, cols, beta);
    return launched("tc_cuda_rows_scale_bias", err);
}

template <typename U>
__global__ void broadcast_2d_kernel(const U *s, int64_t s0, int64_t s1, U *d, int64_t M, int64_t N)
{
    const int64_t n = M * N;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        d[i] = s[(i / N) * s0 + (i % N) * s1];
}

template <typename U>
tc_status launch_broadcast(const void *s, int64_t s0, int64_t s1, void *d, int64_t M, int64_t N, cudaStream_t st,
                           tc_error *err)
{
    broadcast_2d_kernel<U><<<blocks_for(M * N), kThreads, 0, st>>>(static_cast<const U *>(s), s0, s1,
                                                                    static_cast<U *>(d), M, N);
    return launched("tc_cuda_broadcast_2d", err);
}

/* One output element per thread: integer products are rare in models, so exactness and
 * simplicity matter more than speed. Unsigned arithmetic gives the CPU's wrapping int64 results
 * without signed-overflow undefined behaviour. */
constexpr int kTile = 16;

template <typename T>
__global__ void int_gemm_kernel(tc_cuda_int_gemm_args a, const T *A, const T *B, T *out)
{
    const int64_t j = (int64_t)blockIdx.x * kTile + threadIdx.x;
    if (j >= a.N) return;
    const T *self = static_cast<const T *>(a.self);
    for (int64_t b = blockIdx.z; b < a.batch; b += gridDim.z) {
        const T *Bb = B + b * a.stride_b;
        for (int64_t i = (int64_t)blockIdx.y * kTile + threadIdx.y; i < a.M; i += (int64_t)gridDim.y * kTile) {
            const T *Ab = A + b * a.stride_a + i * a.K;
            uint64_t acc = 0;
            for (int64_t k = 0; k < a.K; k++) {
                const int64_t bv = a.trans_b ? (int64_t)Bb[j * a.K + k] : (int64_t)Bb[k * a.N + j];
                acc += (uint64_t)(int64_t)Ab[k] * (uint64_t)bv;
            }
            uint64_t v = (uint64_t)a.alpha * acc;
            if (self) v += (uint64_t)a.beta * (uint64_t)(int64_t)self[i * a.s0 + j * a.s1];
            out[(b * a.M + i) * a.N + j] = (T)(int64_t)v;
        }
    }
}

template <typename T>
tc_status launch_int_gemm(const tc_cuda_int_gemm_args *a, const void *A, const void *B, void *out, cudaStream_t s,
                          tc_error *err)
{
    const int64_t gx = (a->N + kTile - 1) / kTile, gy = (a->M + kTile - 1) / kTile;
    if (gx > 0x7fffffff)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_int_gemm: %lld output columns are too many",
                         (long long)a->N);
    const unsigned gz = (unsigned)(a->batch < 65535 ? a->batch : 65535);
    dim3 grid((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535), gz), block(kTile, kTile);
    int_gemm_kernel<T><<<grid, block, 0, s>>>(*a, static_cast<const T *>(A), static_cast<const T *>(B),
                                              static_cast<T *>(out));
    return launched("tc_cuda_int_gemm", err);
}

} // namespace

extern "C" tc_status tc_cuda_rows_scale_bias(void *d, const void *bias, tc_dtype dtype, int64_t rows, int64_t cols,
                                             double beta, void *stream, tc_error *err)
{
    if (rows < 0 || cols < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_rows_scale_bias: negative size %lld x %lld",
                         (long long)rows, (long long)cols);
    if (rows == 0 || cols == 0) return TC_OK;
    if (!d) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_rows_scale_bias: NULL output");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case TC_F32: return launch_rows<float>(d, bias, rows, cols, beta, s, err);
    case TC_F16: return launch_rows<__half>(d, bias, rows, cols, beta, s, err);
    case TC_BF16: return launch_rows<__nv_bfloat16>(d, bias, rows, cols, beta, s, err);
    case TC_F64: return launch_rows<double>(d, bias, rows, cols, beta, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_rows_scale_bias: dtype %s is not supported (f32, f16, bf16, f64)",
                     name_of(dtype));
}

extern "C" tc_status tc_cuda_broadcast_2d(const void *s, int64_t s0, int64_t s1, void *d, tc_dtype dtype, int64_t M,
                                          int64_t N, void *stream, tc_error *err)
{
    if (M < 0 || N < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast_2d: negative size %lld x %lld",
                         (long long)M, (long long)N);
    if (M == 0 || N == 0) return TC_OK;
    if (!s || !d) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_broadcast_2d: NULL buffer");
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    switch (tc_dtype_size(dtype)) {
    case 1: return launch_broadcast<uint8_t>(s, s0, s1, d, M, N, st, err);
    case 2: return launch_broadcast<uint16_t>(s, s0, s1, d, M, N, st, err);
    case 4: return launch_broadcast<uint32_t>(s, s0, s1, d, M, N, st, err);
    case 8: return launch_broadcast<uint64_t>(s, s0, s1, d, M, N, st, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_broadcast_2d: dtype %s is not supported", name_of(dtype));
}

extern "C" tc_status tc_cuda_int_gemm(const tc_cuda_int_gemm_args *a, const void *A, const void *B, void *out,
                                      void *stream, tc_error *err)
{
    if (!a) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_int_gemm: NULL arguments");
    if (a->batch < 0 || a->M < 0 || a->N < 0 || a->K < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_int_gemm: negative size");
    if (a->batch == 0 || a->M == 0 || a->N == 0) return TC_OK;
    if (!out || (a->K > 0 && (!A || !B)))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_int_gemm: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (a->dtype) {
    case TC_I64: return launch_int_gemm<int64_t>(a, A, B, out, s, err);
    case TC_I32: return launch_int_gemm<int32_t>(a, A, B, out, s, err);
    case TC_I8: return launch_int_gemm<int8_t>(a, A, B, out, s, err);
    case TC_U8: return launch_int_gemm<uint8_t>(a, A, B, out, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_int_gemm: dtype %s is not an integer dtype (i64, i32, i8, u8)",
                     name_of(a->dtype));
}
