/* CUDA kernels around the cuDNN convolutions: the per-channel bias add for NCHW outputs (a
 * grid-stride loop, f32 math, one rounding) and a shared-memory tiled batched transpose for the
 * NCHW <-> NHWC moves (32x32 tiles, padded to avoid bank conflicts, both sides coalesced). */
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

template <typename U>
tc_status transpose_t(const void *in, void *out, int64_t batch, int64_t rows, int64_t cols, cudaStream_t s,
                      tc_error *err)
{
    const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile;
    dim3 grid((unsigned)(tc < 65535 ? tc : 65535), (unsigned)(tr < 65535 ? tr : 65535),
              (unsigned)(batch < 65535 ? batch : 65535));
    dim3 block(kTile, kRowsPerPass);
    transpose_kernel<U><<<grid, block, 0, s>>>(static_cast<const U *>(in), static_cast<U *>(out), batch, rows, cols);
    return launched("tc_cuda_transpose_batched", err);
}

} // namespace

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
