/* Index-family CUDA kernels: row copies by index, gather, advanced indexing, fill and arange.
 * Copies move whole units of up to 16 bytes where rows and pointers are aligned; every index is
 * bounds-checked in the kernel (a bad one writes zeros and raises the optional error flag). */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/index.h"
#include "backend/cuda/kernels/ew_device.cuh"

#include <cuda_runtime.h>

#include <stdint.h>
#include <string.h>

namespace {

__device__ __forceinline__ int64_t load_idx(const void *p, int t, int64_t i)
{
    return t == TC_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

__device__ __forceinline__ void flag(unsigned int *f)
{
    if (f) atomicOr(f, 1u);
}

template <typename U> __device__ __forceinline__ U zero_unit() { return U{}; }

template <typename U>
__global__ void rows_kernel(const U *src, U *dst, int64_t upr, const void *idx, int idx_t, int64_t n_idx,
                            int64_t src_rows, int64_t total, unsigned int *err_flag)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / upr, u = i - r * upr;
        const int64_t o = r / n_idx, k = r - o * n_idx;
        const int64_t v = load_idx(idx, idx_t, k);
        if (v < 0 || v >= src_rows) {
            dst[i] = zero_unit<U>();
            flag(err_flag);
        } else {
            dst[i] = src[(o * src_rows + v) * upr + u];
        }
    }
}

template <typename E>
__global__ void gather_dim_kernel(const E *x, E *y, const void *idx, int idx_t, const tc_cuda_gather_args a,
                                  unsigned int *err_flag)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.numel; i += stride) {
        const int64_t v = load_idx(idx, idx_t, i);
        if (v < 0 || v >= a.size_d) {
            y[i] = E{};
            flag(err_flag);
            continue;
        }
        int64_t rem = i, off = 0;
        for (int k = a.rank - 1; k >= 0; k--) {
            const int64_t q = rem / a.ydims[k], c = rem - q * a.ydims[k];
            rem = q;
            off += (k == a.dim ? v : c) * a.xstrides[k];
        }
        y[i] = x[off];
    }
}

template <typename U>
__global__ void index_tensor_kernel(const char *x, U *y, int64_t upr, const tc_cuda_index_args a, int64_t esize,
                                    unsigned int *err_flag)
{
    const int64_t total = a.rows * upr;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / upr, u = i - r * upr;
        int64_t bc[TC_MAX_RANK] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t rem = r, off = 0;
        for (int k = a.n_rowdims - 1; k >= 0; k--) {
            const int64_t q = rem / a.rowdims[k], c = rem - q * a.rowdims[k];
            rem = q;
            if (a.rowsrc[k] >= 0) off += c * a.xs[a.rowsrc[k]];
            else bc[-1 - a.rowsrc[k]] = c;
        }
        bool bad = false;
        for (int t = 0; t < a.n_idx; t++) {
            int64_t io = 0;
            for (int m = 0; m < a.brank; m++) io += bc[m] * a.istr[t][m];
            int64_t v = load_idx(a.idx[t], a.idx_t[t], io);
            if (v < 0) v += a.idx_size[t];
            if (v < 0 || v >= a.idx_size[t]) bad = true;
            off += v * a.xs[a.idx_dim[t]];
        }
        if (bad) {
            y[i] = zero_unit<U>();
            flag(err_flag);
        } else {
            y[i] = *reinterpret_cast<const U *>(x + off * esize + u * (int64_t)sizeof(U));
        }
    }
}

template <typename E> __global__ void fill_kernel(E *dst, E v, int64_t n)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = v;
}

__global__ void arange_kernel(void *dst, int dt, int64_t n, double s, double st, int64_t is, int64_t ist)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const bool is_int = dt == TC_I64 || dt == TC_I32 || dt == TC_I8 || dt == TC_U8;
    const float fs = (float)s, fst = (float)st;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (is_int) tcd::store_i64(dst, dt, i, (int64_t)((uint64_t)is + (uint64_t)ist * (uint64_t)i));
        else if (dt == TC_F16 || dt == TC_BF16) tcd::store_f32(dst, dt, i, __fadd_rn(fs, __fmul_rn(fst, (float)i)));
        else tcd::store_f64(dst, dt, i, __dadd_rn(s, __dmul_rn(st, (double)i)));
    }
}

/* The widest unit (up to 16 bytes) dividing every value. */
size_t unit_for(size_t min, const uint64_t *v, int n)
{
    size_t w = 16;
    while (w > min) {
        bool ok = true;
        for (int k = 0; k < n && ok; k++) ok = v[k] % w == 0;
        if (ok) break;
        w /= 2;
    }
    return w;
}

bool esize_ok(size_t e) { return e == 1 || e == 2 || e == 4 || e == 8; }

} // namespace

extern "C" tc_status tc_cuda_index_rows(const void *src, void *dst, size_t row_bytes, const void *idx, tc_dtype idx_t,
                                        int64_t n_idx, int64_t outer, int64_t src_rows, unsigned int *err_flag,
                                        void *stream, tc_error *err)
{
    if ((idx_t != TC_I32 && idx_t != TC_I64) || n_idx < 0 || outer < 0 || src_rows < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_rows: bad index dtype %s or sizes",
                         tcd::dname(idx_t));
    const int64_t total_rows = outer * n_idx;
    if (total_rows == 0 || row_bytes == 0) return TC_OK;
    if (!src || !dst || !idx) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_rows: NULL buffer");
    const uint64_t v[3] = {(uint64_t)row_bytes, (uint64_t)(uintptr_t)src, (uint64_t)(uintptr_t)dst};
    const size_t w = unit_for(1, v, 3);
    const int64_t upr = (int64_t)(row_bytes / w), total = total_rows * upr;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = tcd::blocks_for(total);
#define RK(U) rows_kernel<U><<<blocks, tcd::kThreads, 0, s>>>((const U *)src, (U *)dst, upr, idx, (int)idx_t, n_idx, \
                                                              src_rows, total, err_flag)
    switch (w) {
    case 1: RK(uint8_t); break;
    case 2: RK(uint16_t); break;
    case 4: RK(uint32_t); break;
    case 8: RK(uint64_t); break;
    default: RK(uint4); break;
    }
#undef RK
    return tcd::launched("tc_cuda_index_rows", err);
}

extern "C" tc_status tc_cuda_gather_dim(const void *x, void *y, size_t esize, const void *idx, tc_dtype idx_t,
                                        const tc_cuda_gather_args *a, unsigned int *err_flag, void *stream,
                                        tc_error *err)
{
    if (!a || (idx_t != TC_I32 && idx_t != TC_I64) || !esize_ok(esize) || a->rank < 0 || a->rank > TC_MAX_RANK ||
        (a->rank > 0 && (a->dim < 0 || a->dim >= a->rank)) || a->numel < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_dim: malformed arguments");
    if (a->numel == 0) return TC_OK;
    if (!x || !y || !idx) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_dim: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = tcd::blocks_for(a->numel);
#define GK(E) gather_dim_kernel<E><<<blocks, tcd::kThreads, 0, s>>>((const E *)x, (E *)y, idx, (int)idx_t, *a, err_flag)
    switch (esize) {
    case 1: GK(uint8_t); break;
    case 2: GK(uint16_t); break;
    case 4: GK(uint32_t); break;
    default: GK(uint64_t); break;
    }
#undef GK
    return tcd::launched("tc_cuda_gather_dim", err);
}

extern "C" tc_status tc_cuda_index_tensor(const void *x, void *y, size_t esize, const tc_cuda_index_args *a,
                                          unsigned int *err_flag, void *stream, tc_error *err)
{
    if (!a || !esize_ok(esize) || a->n_rowdims < 0 || a->n_rowdims > TC_MAX_RANK || a->n_idx < 1 ||
        a->n_idx > TC_MAX_RANK || a->brank < 0 || a->brank > TC_MAX_RANK || a->rows < 0 || a->inner_bytes % esize)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_tensor: malformed arguments");
    for (int t = 0; t < a->n_idx; t++)
        if ((a->idx_t[t] != TC_I32 && a->idx_t[t] != TC_I64) || !a->idx[t])
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_tensor: index %d is not an i32/i64 buffer", t);
    for (int k = 0; k < a->n_rowdims; k++)
        if (a->rowsrc[k] >= TC_MAX_RANK || a->rowsrc[k] < -a->brank || a->rowdims[k] < 1)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_tensor: bad row dim %d", k);
    if (a->rows == 0 || a->inner_bytes == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_index_tensor: NULL buffer");
    const uint64_t v[3] = {(uint64_t)a->inner_bytes, (uint64_t)(uintptr_t)x, (uint64_t)(uintptr_t)y};
    const size_t w = unit_for(1, v, 3);
    const int64_t upr = (int64_t)(a->inner_bytes / w);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = tcd::blocks_for(a->rows * upr);
#define IK(U) index_tensor_kernel<U><<<blocks, tcd::kThreads, 0, s>>>((const char *)x, (U *)y, upr, *a, (int64_t)esize, err_flag)
    switch (w) {
    case 1: IK(uint8_t); break;
    case 2: IK(uint16_t); break;
    case 4: IK(uint32_t); break;
    case 8: IK(uint64_t); break;
    default: IK(uint4); break;
    }
#undef IK
    return tcd::launched("tc_cuda_index_tensor", err);
}

extern "C" tc_status tc_cuda_fill(void *dst, size_t esize, const void *elem, int64_t n, void *stream, tc_error *err)
{
    if (!esize_ok(esize) || !elem || n < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_fill: bad element size %zu or count", esize);
    if (n == 0) return TC_OK;
    if (!dst) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_fill: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    unsigned char b[16];
    for (int k = 0; k < 16; k++) b[k] = ((const unsigned char *)elem)[k % esize];
    bool same = true;
    for (size_t k = 1; k < esize; k++) same = same && b[k] == b[0];
    const size_t bytes = (size_t)n * esize;
    /* a byte pattern (zeros above all) is a memset, which graph capture records as a node */
    if (same) return TC_CUDA_CHECK(cudaMemsetAsync(dst, b[0], bytes, s), err);
    if (tcd::aligned(dst, 16) && bytes % 16 == 0) {
        uint4 v;
        memcpy(&v, b, 16);
        fill_kernel<uint4><<<tcd::blocks_for((int64_t)(bytes / 16)), tcd::kThreads, 0, s>>>((uint4 *)dst, v,
                                                                                          (int64_t)(bytes / 16));
    } else {
        switch (esize) {
        case 2: {
            uint16_t v;
            memcpy(&v, b, 2);
            fill_kernel<uint16_t><<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>((uint16_t *)dst, v, n);
            break;
        }
        case 4: {
            uint32_t v;
            memcpy(&v, b, 4);
            fill_kernel<uint32_t><<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>((uint32_t *)dst, v, n);
            break;
        }
        default: {
            uint64_t v;
            memcpy(&v, b, 8);
            fill_kernel<uint64_t><<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>((uint64_t *)dst, v, n);
            break;
        }
        }
    }
    return tcd::launched("tc_cuda_fill", err);
}

extern "C" tc_status tc_cuda_arange(void *dst, tc_dtype dt, int64_t n, double start, double step, int64_t istart,
                                    int64_t istep, void *stream, tc_error *err)
{
    if (dt == TC_BOOL || dt == TC_F8E4M3 || (unsigned)dt >= TC_DTYPE_COUNT)
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_arange: arange does not produce %s tensors", tcd::dname(dt));
    if (n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_arange: negative count");
    if (n == 0) return TC_OK;
    if (!dst) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_arange: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    arange_kernel<<<tcd::blocks_for(n), tcd::kThreads, 0, s>>>(dst, (int)dt, n, start, step, istart, istep);
    return tcd::launched("tc_cuda_arange", err);
}
