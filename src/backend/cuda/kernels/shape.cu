/* Shape/copy CUDA kernels: a strided gather into a contiguous output (all view-like ops) and a
 * 2-D copy with dtype conversion (cat, _to_copy). Both work on whole elements of 1 to 16 bytes,
 * widened to 16-byte units when rows are contiguous and aligned; index math is 32-bit when every
 * offset fits. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/kernels.h"
#include "backend/cuda/kernels/shape.h"
#include "backend/cuda/kernels/ew_device.cuh"

#include <cuda_runtime.h>

#include <stdint.h>

namespace {

struct gather_plan {
    int rank;
    int64_t dims[TC_CUDA_COPY_MAX_RANK];
    int64_t strides[TC_CUDA_COPY_MAX_RANK];
    int64_t base;
    int64_t numel;
};

template <typename E, typename IDX>
__global__ void gather_kernel(const E *__restrict__ src, E *__restrict__ dst, const gather_plan p)
{
    const IDX n = (IDX)p.numel;
    const IDX stride = (IDX)gridDim.x * blockDim.x;
    const int last = p.rank - 1;
    const IDX inner = (IDX)p.dims[last], inner_st = (IDX)p.strides[last];
    for (IDX i = (IDX)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        IDX rem = i / inner;
        IDX off = (IDX)p.base + (i - rem * inner) * inner_st;
        for (int d = last - 1; d >= 0; d--) {
            const IDX dim = (IDX)p.dims[d];
            const IDX q = rem / dim;
            off += (rem - q * dim) * (IDX)p.strides[d];
            rem = q;
        }
        dst[i] = src[off];
    }
}

template <typename E, typename IDX>
__global__ void copy2d_kernel(const E *__restrict__ src, IDX src_ld, E *__restrict__ dst, IDX dst_ld, IDX rows,
                              IDX cols)
{
    const IDX n = rows * cols;
    const IDX stride = (IDX)gridDim.x * blockDim.x;
    for (IDX i = (IDX)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const IDX r = i / cols, c = i - r * cols;
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}

__global__ void convert2d_kernel(const void *src, int st, int64_t src_ld, void *dst, int dt, int64_t dst_ld,
                                 int64_t rows, int64_t cols)
{
    const int64_t n = rows * cols;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / cols, c = i - r * cols;
        tcd::convert_one(src, st, r * src_ld + c, dst, dt, r * dst_ld + c);
    }
}

template <typename E>
void launch_gather(const void *src, void *dst, const gather_plan &p, bool small, cudaStream_t s)
{
    const int blocks = tcd::blocks_for(p.numel);
    if (small) gather_kernel<E, uint32_t><<<blocks, tcd::kThreads, 0, s>>>((const E *)src, (E *)dst, p);
    else gather_kernel<E, int64_t><<<blocks, tcd::kThreads, 0, s>>>((const E *)src, (E *)dst, p);
}

template <typename E>
void launch_copy2d(const void *src, int64_t sld, void *dst, int64_t dld, int64_t rows, int64_t cols, bool small,
                   cudaStream_t s)
{
    const int blocks = tcd::blocks_for(rows * cols);
    if (small)
        copy2d_kernel<E, uint32_t><<<blocks, tcd::kThreads, 0, s>>>((const E *)src, (uint32_t)sld, (E *)dst,
                                                                   (uint32_t)dld, (uint32_t)rows, (uint32_t)cols);
    else
        copy2d_kernel<E, int64_t><<<blocks, tcd::kThreads, 0, s>>>((const E *)src, sld, (E *)dst, dld, rows, cols);
}

/* The widest unit (up to 16 bytes) that divides every count and offset given in bytes. */
size_t widest_unit(size_t esize, const uint64_t *bytes, int n)
{
    size_t w = 16;
    while (w > esize) {
        bool ok = true;
        for (int k = 0; k < n && ok; k++) ok = bytes[k] % w == 0;
        if (ok) break;
        w /= 2;
    }
    return w;
}

bool launch_by_size(size_t unit, const void *src, void *dst, const gather_plan &p, bool small, cudaStream_t s)
{
    switch (unit) {
    case 1: launch_gather<uint8_t>(src, dst, p, small, s); return true;
    case 2: launch_gather<uint16_t>(src, dst, p, small, s); return true;
    case 4: launch_gather<uint32_t>(src, dst, p, small, s); return true;
    case 8: launch_gather<uint64_t>(src, dst, p, small, s); return true;
    case 16: launch_gather<uint4>(src, dst, p, small, s); return true;
    default: return false;
    }
}

} // namespace

extern "C" tc_status tc_cuda_gather_copy(const void *src, void *dst, size_t esize, int rank, const int64_t *dims,
                                          const int64_t *strides, int64_t base, void *stream, tc_error *err)
{
    if (rank < 0 || rank > TC_CUDA_COPY_MAX_RANK || (rank > 0 && (!dims || !strides)) ||
        (esize != 1 && esize != 2 && esize != 4 && esize != 8) || base < 0)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_copy: bad rank %d, element size %zu or base %lld",
                         rank, esize, (long long)base);
    int64_t numel = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0 || strides[k] < 0)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_copy: negative size or stride at dim %d", k);
        numel *= dims[k];
    }
    if (numel == 0) return TC_OK;
    if (!src || !dst) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_copy: NULL buffer");
    gather_plan p = {};
    p.base = base;
    p.numel = numel;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 1) continue;
        if (p.rank > 0 && p.strides[p.rank - 1] == strides[k] * dims[k]) {
            p.dims[p.rank - 1] *= dims[k];
            p.strides[p.rank - 1] = strides[k];
            continue;
        }
        p.dims[p.rank] = dims[k];
        p.strides[p.rank] = strides[k];
        p.rank++;
    }
    if (p.rank == 0) p.dims[0] = 1, p.strides[0] = 1, p.rank = 1;
    /* widen: a contiguous innermost dim moves in units of up to 16 bytes */
    size_t unit = esize;
    if (p.strides[p.rank - 1] == 1) {
        uint64_t b[TC_CUDA_COPY_MAX_RANK + 3];
        int nb = 0;
        b[nb++] = (uint64_t)p.dims[p.rank - 1] * esize;
        b[nb++] = (uint64_t)p.base * esize;
        b[nb++] = (uint64_t)(uintptr_t)src;
        b[nb++] = (uint64_t)(uintptr_t)dst;
        for (int k = 0; k < p.rank - 1; k++) b[nb++] = (uint64_t)p.strides[k] * esize;
        unit = widest_unit(esize, b, nb);
        const int64_t w = (int64_t)(unit / esize);
        if (w > 1) {
            p.dims[p.rank - 1] /= w;
            for (int k = 0; k < p.rank - 1; k++) p.strides[k] /= w;
            p.base /= w;
            p.numel /= w;
        }
    }
    int64_t maxoff = p.base;
    for (int k = 0; k < p.rank; k++) maxoff += (p.dims[k] - 1) * p.strides[k];
    const bool small = p.numel < ((int64_t)1 << 31) && maxoff < ((int64_t)1 << 31);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (!launch_by_size(unit, src, dst, p, small, s))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_gather_copy: unit of %zu bytes", unit);
    return tcd::launched("tc_cuda_gather_copy", err);
}

extern "C" tc_status tc_cuda_convert_2d(const void *src, tc_dtype st, int64_t src_ld, void *dst, tc_dtype dt,
                                        int64_t dst_ld, int64_t rows, int64_t cols, void *stream, tc_error *err)
{
    if ((unsigned)st >= TC_DTYPE_COUNT || (unsigned)dt >= TC_DTYPE_COUNT)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert_2d: bad dtypes %d -> %d", (int)st, (int)dt);
    if (rows < 0 || cols < 0 || src_ld < cols || dst_ld < cols)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert_2d: bad sizes %lld x %lld (ld %lld, %lld)",
                         (long long)rows, (long long)cols, (long long)src_ld, (long long)dst_ld);
    if (rows == 0 || cols == 0) return TC_OK;
    if (!src || !dst) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert_2d: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const bool flat = rows == 1 || (src_ld == cols && dst_ld == cols);
    const bool float_src = st == TC_F32 || st == TC_F16 || st == TC_BF16;
    const bool float_dst = dt == TC_F32 || dt == TC_F16 || dt == TC_BF16;
    /* the f32/f16/bf16 casts of kernels.h round exactly as tc_convert does */
    if (flat && st != dt && float_src && float_dst) return tc_cuda_cast(src, st, dst, dt, rows * cols, stream, err);
    if (st == dt) {
        const size_t es = tc_dtype_size(st);
        if (flat) return TC_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)(rows * cols) * es, cudaMemcpyDeviceToDevice, s), err);
        const uint64_t b[5] = {(uint64_t)cols * es, (uint64_t)src_ld * es, (uint64_t)dst_ld * es,
                               (uint64_t)(uintptr_t)src, (uint64_t)(uintptr_t)dst};
        const size_t unit = widest_unit(es, b, 5);
        const int64_t w = (int64_t)(unit / es);
        const int64_t c = cols / w, sl = src_ld / w, dl = dst_ld / w;
        const bool small = rows * (sl > dl ? sl : dl) < ((int64_t)1 << 31);
        switch (unit) {
        case 1: launch_copy2d<uint8_t>(src, sl, dst, dl, rows, c, small, s); break;
        case 2: launch_copy2d<uint16_t>(src, sl, dst, dl, rows, c, small, s); break;
        case 4: launch_copy2d<uint32_t>(src, sl, dst, dl, rows, c, small, s); break;
        case 8: launch_copy2d<uint64_t>(src, sl, dst, dl, rows, c, small, s); break;
        case 16: launch_copy2d<uint4>(src, sl, dst, dl, rows, c, small, s); break;
        default: return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert_2d: element size %zu", es);
        }
        return tcd::launched("tc_cuda_convert_2d", err);
    }
    convert2d_kernel<<<tcd::blocks_for(rows * cols), tcd::kThreads, 0, s>>>(src, (int)st, src_ld, dst, (int)dt, dst_ld,
                                                                              rows, cols);
    return tcd::launched("tc_cuda_convert_2d", err);
}
