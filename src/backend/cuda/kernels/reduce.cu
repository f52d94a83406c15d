/* CUDA kernels for the reduction ops, cumsum and softmax, and the strided copy and dtype
 * conversion the host glue uses to bring an input into the [outer, R, inner] form. Floats reduce
 * in f32, integers exactly in int64 (wrapping like PyTorch). Each output is folded by a fixed set
 * of threads in a fixed order chosen from the shapes alone, so no result depends on timing. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/reduce.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;
/* Long rows with few outputs are split into chunks of this many elements, folded by separate
 * blocks, and the chunks merged in order by a second kernel. */
constexpr int64_t kRowChunk = 16384;
constexpr int64_t kColChunk = 512;

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

/* The accumulation domain of a storage type and the load into it. */
template <typename T> struct domain {
    using A = int64_t;
    static __device__ __forceinline__ int64_t load(T x) { return (int64_t)x; }
};
template <> struct domain<float> {
    using A = float;
    static __device__ __forceinline__ float load(float x) { return x; }
};
template <> struct domain<__half> {
    using A = float;
    static __device__ __forceinline__ float load(__half x) { return __half2float(x); }
};
template <> struct domain<__nv_bfloat16> {
    using A = float;
    static __device__ __forceinline__ float load(__nv_bfloat16 x) { return __bfloat162float(x); }
};

/* Integer sums and products wrap without undefined behaviour. */
__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ int64_t add(int64_t a, int64_t b)
{
    return (int64_t)((unsigned long long)a + (unsigned long long)b);
}
__device__ __forceinline__ float mul(float a, float b) { return a * b; }
__device__ __forceinline__ int64_t mul(int64_t a, int64_t b)
{
    return (int64_t)((unsigned long long)a * (unsigned long long)b);
}

__device__ __forceinline__ float shfl_down(float v, int d) { return __shfl_down_sync(0xffffffffu, v, d); }
__device__ __forceinline__ int64_t shfl_down(int64_t v, int d)
{
    return (int64_t)__shfl_down_sync(0xffffffffu, (long long)v, d);
}

template <typename A> struct rstate {
    A v;
    int64_t i; /* chosen index for arg ops, -1 before the first element */
};

constexpr bool is_max(int op) { return op == TC_CUDA_RED_MAX || op == TC_CUDA_RED_ARGMAX; }
constexpr bool is_arg(int op) { return op == TC_CUDA_RED_ARGMAX || op == TC_CUDA_RED_ARGMIN; }
constexpr bool is_extreme(int op) { return op == TC_CUDA_RED_MAX || op == TC_CUDA_RED_MIN; }

/* e beats cur: NaN beats everything but NaN, as in PyTorch's max/min. */
template <int OP> __device__ __forceinline__ bool better(float e, float cur)
{
    if (e != e) return cur == cur;
    return is_max(OP) ? e > cur : e < cur;
}
template <int OP> __device__ __forceinline__ bool better(int64_t e, int64_t cur)
{
    return is_max(OP) ? e > cur : e < cur;
}

template <typename A> __device__ __forceinline__ A lowest();
template <> __device__ __forceinline__ float lowest<float>() { return -INFINITY; }
template <> __device__ __forceinline__ int64_t lowest<int64_t>() { return INT64_MIN; }
template <typename A> __device__ __forceinline__ A highest();
template <> __device__ __forceinline__ float highest<float>() { return INFINITY; }
template <> __device__ __forceinline__ int64_t highest<int64_t>() { return INT64_MAX; }

template <typename A, int OP> __device__ __forceinline__ rstate<A> state_init()
{
    rstate<A> s;
    s.i = -1;
    if constexpr (OP == TC_CUDA_RED_PROD || OP == TC_CUDA_RED_ALL) s.v = (A)1;
    else if constexpr (is_max(OP)) s.v = lowest<A>();
    else if constexpr (OP == TC_CUDA_RED_MIN || OP == TC_CUDA_RED_ARGMIN) s.v = highest<A>();
    else s.v = (A)0;
    return s;
}

/* Folds element x at reduced position r; a thread meets its positions in increasing order. */
template <typename A, int OP> __device__ __forceinline__ void fold(rstate<A> &s, A x, int64_t r, float mean)
{
    if constexpr (OP == TC_CUDA_RED_SUM) s.v = add(s.v, x);
    else if constexpr (OP == TC_CUDA_RED_SQDEV) {
        float d = (float)x - mean;
        s.v += d * d;
    } else if constexpr (OP == TC_CUDA_RED_PROD) s.v = mul(s.v, x);
    else if constexpr (is_extreme(OP)) {
        if (better<OP>(x, s.v)) s.v = x;
    } else if constexpr (is_arg(OP)) {
        if (s.i < 0 || better<OP>(x, s.v)) s.v = x, s.i = r;
    } else if constexpr (OP == TC_CUDA_RED_ANY) s.v = s.v | (A)(x != 0);
    else if constexpr (OP == TC_CUDA_RED_ALL) s.v = s.v & (A)(x != 0);
}

/* Combines two partial states of one output in either order: ties between arg states go to the
 * smaller index, so the first occurrence wins however the positions were split. */
template <typename A, int OP> __device__ __forceinline__ rstate<A> merge(rstate<A> a, rstate<A> b)
{
    if constexpr (OP == TC_CUDA_RED_SUM || OP == TC_CUDA_RED_SQDEV) a.v = add(a.v, b.v);
    else if constexpr (OP == TC_CUDA_RED_PROD) a.v = mul(a.v, b.v);
    else if constexpr (is_extreme(OP)) {
        if (better<OP>(b.v, a.v)) a.v = b.v;
    } else if constexpr (is_arg(OP)) {
        if (b.i < 0) return a;
        if (a.i < 0) return b;
        if (better<OP>(b.v, a.v) || (!better<OP>(a.v, b.v) && b.i < a.i)) return b;
    } else if constexpr (OP == TC_CUDA_RED_ANY) a.v = a.v | b.v;
    else if constexpr (OP == TC_CUDA_RED_ALL) a.v = a.v & b.v;
    return a;
}

/* Lane 0 ends with the merge of the warp's 32 states. */
template <typename A, int OP> __device__ __forceinline__ rstate<A> warp_reduce(rstate<A> s)
{
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
        rstate<A> o;
        o.v = shfl_down(s.v, d);
        o.i = is_arg(OP) ? shfl_down(s.i, d) : -1;
        s = merge<A, OP>(s, o);
    }
    return s;
}

/* Thread 0 ends with the merge of the block's kThreads states; every thread must call it. */
template <typename A, int OP> __device__ __forceinline__ rstate<A> block_reduce(rstate<A> s)
{
    __shared__ rstate<A> warps[kThreads / 32];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    s = warp_reduce<A, OP>(s);
    if (lane == 0) warps[w] = s;
    __syncthreads();
    if (w == 0) {
        s = lane < kThreads / 32 ? warps[lane] : state_init<A, OP>();
        s = warp_reduce<A, OP>(s);
    }
    return s;
}

__device__ __forceinline__ void store_value(void *y, tc_dtype t, int64_t o, float v)
{
    switch (t) {
    case TC_F16: static_cast<__half *>(y)[o] = __float2half_rn(v); return;
    case TC_BF16: static_cast<__nv_bfloat16 *>(y)[o] = __float2bfloat16_rn(v); return;
    default: static_cast<float *>(y)[o] = v; return;
    }
}

__device__ __forceinline__ void store_value(void *y, tc_dtype t, int64_t o, int64_t v)
{
    switch (t) {
    case TC_I32: static_cast<int32_t *>(y)[o] = (int32_t)v; return;
    case TC_I8: static_cast<int8_t *>(y)[o] = (int8_t)v; return;
    case TC_U8: static_cast<uint8_t *>(y)[o] = (uint8_t)v; return;
    case TC_BOOL: static_cast<uint8_t *>(y)[o] = v != 0; return;
    default: static_cast<int64_t *>(y)[o] = v; return;
    }
}

struct red_geom {
    int64_t n_out, R, inner;
    int64_t chunk, nchunks; /* reduced positions per block, blocks per output */
};

struct red_out {
    int fin;
    void *y;
    tc_dtype yt;
    int64_t *idx;
    const float *mean;
    double divisor;
    float count; /* R as float, for means */
    void *partial;
};

template <typename A> __device__ __forceinline__ void finish(const red_out &f, int64_t o, const rstate<A> &s)
{
    switch (f.fin) {
    case TC_CUDA_FIN_VALUE_INDEX: f.idx[o] = s.i; store_value(f.y, f.yt, o, s.v); return;
    case TC_CUDA_FIN_VALUE: store_value(f.y, f.yt, o, s.v); return;
    case TC_CUDA_FIN_INDEX: f.idx[o] = s.i; return;
    case TC_CUDA_FIN_MEAN:
        if constexpr (sizeof(A) == sizeof(float)) store_value(f.y, f.yt, o, s.v / f.count);
        return;
    case TC_CUDA_FIN_VAR:
        if constexpr (sizeof(A) == sizeof(float)) store_value(f.y, f.yt, o, (float)((double)s.v / f.divisor));
        return;
    }
}

/* Rows of contiguous reduced elements (inner == 1): TPR threads per (row, chunk) task, each
 * taking runs of V elements TPR * V apart. A run is one 16-byte load when the row allows it and
 * V scalar loads otherwise, so which thread folds what does not depend on alignment. */
template <typename T, int OP, int TPR>
__global__ void __launch_bounds__(kThreads) reduce_rows(const T *x, red_geom g, red_out f)
{
    using A = typename domain<T>::A;
    constexpr int V = 16 / sizeof(T);
    const int t = threadIdx.x % TPR;
    const int64_t task = (int64_t)blockIdx.x * (kThreads / TPR) + threadIdx.x / TPR;
    if (TPR < kThreads && task >= g.n_out * g.nchunks) return; /* whole warps leave together */
    const int64_t o = task / g.nchunks, ch = task % g.nchunks;
    const int64_t r0 = ch * g.chunk, r1 = r0 + g.chunk < g.R ? r0 + g.chunk : g.R;
    const T *row = x + o * g.R;
    const float mean = OP == TC_CUDA_RED_SQDEV ? f.mean[o] : 0.0f;
    const bool vec = ((uintptr_t)(row + r0) % 16) == 0;
    rstate<A> s = state_init<A, OP>();
    for (int64_t e = r0 + (int64_t)t * V; e < r1; e += (int64_t)TPR * V) {
        if (vec && e + V <= r1) {
            const pack<T, V> p = *reinterpret_cast<const pack<T, V> *>(row + e);
#pragma unroll
            for (int j = 0; j < V; j++) fold<A, OP>(s, domain<T>::load(p.v[j]), e + j, mean);
        } else {
            for (int j = 0; j < V && e + j < r1; j++) fold<A, OP>(s, domain<T>::load(row[e + j]), e + j, mean);
        }
    }
    if constexpr (TPR == 32) s = warp_reduce<A, OP>(s);
    else s = block_reduce<A, OP>(s);
    if (t != 0) return;
    if (g.nchunks == 1) finish<A>(f, o, s);
    else static_cast<rstate<A> *>(f.partial)[task] = s;
}

/* [outer, R, inner] with inner > 1: a block holds 32 adjacent columns (coalesced) by 8 row
 * lanes; the 8 lane states of a column are merged in lane order. */
template <typename T, int OP>
__global__ void __launch_bounds__(kThreads) reduce_cols(const T *x, red_geom g, red_out f)
{
    using A = typename domain<T>::A;
    __shared__ rstate<A> lanes[8][32];
    const int64_t ncb = (g.inner + 31) / 32;
    const int64_t oo = blockIdx.x / ncb;
    const int64_t i = (blockIdx.x % ncb) * 32 + threadIdx.x;
    const int64_t ch = blockIdx.y;
    const int64_t r0 = ch * g.chunk, r1 = r0 + g.chunk < g.R ? r0 + g.chunk : g.R;
    const int64_t o = oo * g.inner + i;
    rstate<A> s = state_init<A, OP>();
    if (i < g.inner) {
        const T *col = x + oo * g.R * g.inner + i;
        const float mean = OP == TC_CUDA_RED_SQDEV ? f.mean[o] : 0.0f;
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) fold<A, OP>(s, domain<T>::load(col[r * g.inner]), r, mean);
    }
    lanes[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || i >= g.inner) return;
    for (int k = 1; k < 8; k++) s = merge<A, OP>(s, lanes[k][threadIdx.x]);
    if (g.nchunks == 1) finish<A>(f, o, s);
    else static_cast<rstate<A> *>(f.partial)[o * g.nchunks + ch] = s;
}

/* Merges each output's chunk states in chunk order. */
template <typename A, int OP> __global__ void reduce_partials(red_geom g, red_out f)
{
    const rstate<A> *p = static_cast<const rstate<A> *>(f.partial);
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < g.n_out;
         o += (int64_t)gridDim.x * blockDim.x) {
        rstate<A> s = p[o * g.nchunks];
        for (int64_t k = 1; k < g.nchunks; k++) s = merge<A, OP>(s, p[o * g.nchunks + k]);
        finish<A>(f, o, s);
    }
}

int blocks_for(int64_t work, int threads)
{
    int64_t b = (work + threads - 1) / threads;
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

/* Shape-only choice of how a reduction is split (see kRowChunk / kColChunk). */
red_geom plan(const tc_cuda_reduce_args *a)
{
    red_geom g;
    g.n_out = a->outer * a->inner;
    g.R = a->R;
    g.inner = a->inner;
    g.chunk = a->R > 0 ? a->R : 1;
    g.nchunks = 1;
    if (a->inner == 1) {
        if (a->R >= 4 * kRowChunk && g.n_out <= 1024) g.chunk = kRowChunk;
    } else {
        const int64_t blocks = a->outer * ((a->inner + 31) / 32);
        if (a->R >= 8 * kColChunk && blocks < 256) g.chunk = kColChunk;
    }
    g.nchunks = (g.R + g.chunk - 1) / g.chunk;
    if (g.nchunks < 1) g.nchunks = 1;
    return g;
}

template <typename T, int OP> tc_status launch_reduce(const tc_cuda_reduce_args *a, cudaStream_t s, tc_error *err)
{
    using A = typename domain<T>::A;
    const red_geom g = plan(a);
    red_out f;
    f.fin = a->fin;
    f.y = a->y;
    f.yt = a->y_dtype;
    f.idx = a->idx;
    f.mean = a->mean;
    f.divisor = a->divisor;
    f.count = (float)a->R;
    f.partial = a->partial;
    if (g.nchunks > 1 && !a->partial)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: a split reduction needs %zu scratch bytes",
                         tc_cuda_reduce_scratch_bytes(a));
    const T *x = static_cast<const T *>(a->x);
    if (a->inner == 1) {
        const int64_t tasks = g.n_out * g.nchunks;
        if (g.chunk <= 1024) {
            const int64_t blocks = (tasks + kThreads / 32 - 1) / (kThreads / 32);
            if (blocks > INT32_MAX)
                return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_reduce: %lld rows are too many", (long long)tasks);
            reduce_rows<T, OP, 32><<<(unsigned)blocks, kThreads, 0, s>>>(x, g, f);
        } else {
            if (tasks > INT32_MAX)
                return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_reduce: %lld rows are too many", (long long)tasks);
            reduce_rows<T, OP, kThreads><<<(unsigned)tasks, kThreads, 0, s>>>(x, g, f);
        }
    } else {
        const int64_t blocks = a->outer * ((a->inner + 31) / 32);
        if (blocks > INT32_MAX || g.nchunks > 65535)
            return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_reduce: [%lld, %lld, %lld] is too large for one launch",
                             (long long)a->outer, (long long)a->R, (long long)a->inner);
        reduce_cols<T, OP><<<dim3((unsigned)blocks, (unsigned)g.nchunks), dim3(32, 8), 0, s>>>(x, g, f);
    }
    TC_TRY(launched("tc_cuda_reduce", err));
    if (g.nchunks == 1) return TC_OK;
    reduce_partials<A, OP><<<blocks_for(g.n_out, kThreads), kThreads, 0, s>>>(g, f);
    return launched("tc_cuda_reduce (merge)", err);
}

template <typename T> tc_status reduce_float(const tc_cuda_reduce_args *a, cudaStream_t s, tc_error *err)
{
    switch (a->op) {
    case TC_CUDA_RED_SUM: return launch_reduce<T, TC_CUDA_RED_SUM>(a, s, err);
    case TC_CUDA_RED_PROD: return launch_reduce<T, TC_CUDA_RED_PROD>(a, s, err);
    case TC_CUDA_RED_MAX: return launch_reduce<T, TC_CUDA_RED_MAX>(a, s, err);
    case TC_CUDA_RED_MIN: return launch_reduce<T, TC_CUDA_RED_MIN>(a, s, err);
    case TC_CUDA_RED_ARGMAX: return launch_reduce<T, TC_CUDA_RED_ARGMAX>(a, s, err);
    case TC_CUDA_RED_ARGMIN: return launch_reduce<T, TC_CUDA_RED_ARGMIN>(a, s, err);
    case TC_CUDA_RED_SQDEV: return launch_reduce<T, TC_CUDA_RED_SQDEV>(a, s, err);
    case TC_CUDA_RED_ANY:
    case TC_CUDA_RED_ALL: break;
    }
    return tc_errorf(err, TC_ERR_INVALID_ARGUMENT,
                     "tc_cuda_reduce: op %d does not run on floats (convert to bool first)", (int)a->op);
}

template <typename T> tc_status reduce_int(const tc_cuda_reduce_args *a, cudaStream_t s, tc_error *err)
{
    switch (a->op) {
    case TC_CUDA_RED_SUM: return launch_reduce<T, TC_CUDA_RED_SUM>(a, s, err);
    case TC_CUDA_RED_PROD: return launch_reduce<T, TC_CUDA_RED_PROD>(a, s, err);
    case TC_CUDA_RED_MAX: return launch_reduce<T, TC_CUDA_RED_MAX>(a, s, err);
    case TC_CUDA_RED_MIN: return launch_reduce<T, TC_CUDA_RED_MIN>(a, s, err);
    case TC_CUDA_RED_ARGMAX: return launch_reduce<T, TC_CUDA_RED_ARGMAX>(a, s, err);
    case TC_CUDA_RED_ARGMIN: return launch_reduce<T, TC_CUDA_RED_ARGMIN>(a, s, err);
    case TC_CUDA_RED_ANY: return launch_reduce<T, TC_CUDA_RED_ANY>(a, s, err);
    case TC_CUDA_RED_ALL: return launch_reduce<T, TC_CUDA_RED_ALL>(a, s, err);
    case TC_CUDA_RED_SQDEV: break;
    }
    return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: variance needs a float input");
}

bool is_float_t(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }
bool is_int_t(tc_dtype t) { return t == TC_I64 || t == TC_I32 || t == TC_I8 || t == TC_U8 || t == TC_BOOL; }

/* --- cumsum ---------------------------------------------------------------------------------- */

constexpr int kScanItems = 4;

/* One block per row, in tiles of blockDim * kScanItems: each thread scans its kScanItems
 * consecutive elements, the block scans the thread totals, and a carry crosses tiles. */
template <typename T>
__global__ void __launch_bounds__(kThreads) cumsum_rows(const T *x, void *y, tc_dtype yt, int64_t rows, int64_t n)
{
    using A = typename domain<T>::A;
    __shared__ A warp_tot[kThreads / 32];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T *xr = x + row * n;
        A carry = 0;
        for (int64_t base = 0; base < n; base += (int64_t)blockDim.x * kScanItems) {
            const int64_t i0 = base + (int64_t)threadIdx.x * kScanItems;
            A v[kScanItems];
            A run = 0;
#pragma unroll
            for (int j = 0; j < kScanItems; j++) {
                run = add(run, i0 + j < n ? domain<T>::load(xr[i0 + j]) : (A)0);
                v[j] = run;
            }
            A incl = run; /* inclusive scan of the thread totals within the warp */
#pragma unroll
            for (int d = 1; d < 32; d <<= 1) {
                A o;
                if constexpr (sizeof(A) == sizeof(float)) o = __shfl_up_sync(0xffffffffu, incl, d);
                else o = (A)__shfl_up_sync(0xffffffffu, (long long)incl, d);
                if (lane >= d) incl = add(incl, o);
            }
            if (lane == 31) warp_tot[w] = incl;
            __syncthreads();
            A excl; /* this warp's lanes to the left */
            if constexpr (sizeof(A) == sizeof(float)) excl = __shfl_up_sync(0xffffffffu, incl, 1);
            else excl = (A)__shfl_up_sync(0xffffffffu, (long long)incl, 1);
            if (lane == 0) excl = 0;
            A before = carry; /* everything left of this thread */
            for (int k = 0; k < w; k++) before = add(before, warp_tot[k]);
            A tile = 0;
            for (int k = 0; k < nw; k++) tile = add(tile, warp_tot[k]);
            before = add(before, excl);
#pragma unroll
            for (int j = 0; j < kScanItems; j++)
                if (i0 + j < n) store_value(y, yt, row * n + i0 + j, add(before, v[j]));
            carry = add(carry, tile);
            __syncthreads(); /* warp_tot is rewritten by the next tile */
        }
    }
}

/* inner > 1: one thread per column, sequential down the scanned dim (coalesced across columns). */
template <typename T>
__global__ void cumsum_cols(const T *x, void *y, tc_dtype yt, int64_t outer, int64_t n, int64_t inner)
{
    using A = typename domain<T>::A;
    const int64_t cols = outer * inner;
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        const int64_t oo = c / inner, i = c % inner;
        const int64_t base = oo * n * inner + i;
        A acc = 0;
        for (int64_t r = 0; r < n; r++) {
            acc = add(acc, domain<T>::load(x[base + r * inner]));
            store_value(y, yt, base + r * inner, acc);
        }
    }
}

template <typename T>
tc_status launch_cumsum(const void *x, void *y, tc_dtype yt, int64_t outer, int64_t n, int64_t inner, cudaStream_t s,
                        tc_error *err)
{
    const T *tx = static_cast<const T *>(x);
    if (inner == 1) {
        int threads = 32;
        while (threads < kThreads && (int64_t)threads * kScanItems < n) threads *= 2;
        const int64_t blocks = outer < 65535 * 16 ? outer : 65535 * 16;
        cumsum_rows<T><<<(unsigned)blocks, threads, 0, s>>>(tx, y, yt, outer, n);
    } else {
        cumsum_cols<T><<<blocks_for(outer * inner, kThreads), kThreads, 0, s>>>(tx, y, yt, outer, n, inner);
    }
    return launched("tc_cuda_cumsum", err);
}

/* --- softmax --------------------------------------------------------------------------------- */

template <int TPR> __device__ __forceinline__ float allreduce_max(float v, float *sm)
{
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
    if constexpr (TPR == 32) return v;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) sm[w] = v;
    __syncthreads();
    v = sm[0];
    for (int k = 1; k < TPR / 32; k++) v = fmaxf(v, sm[k]);
    return v;
}

/* Every thread gets the same sum: the butterfly gives all lanes one value, and the warp totals
 * are added in warp order. */
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

/* Rows of n contiguous values (inner == 1), TPR threads per row, runs of V elements as in
 * reduce_rows. A row whose largest value is -inf (all -inf) gives NaN, a NaN anywhere makes
 * the whole row NaN, as in PyTorch. */
template <typename Ti, typename To, bool LOG, int TPR>
__global__ void __launch_bounds__(kThreads) softmax_rows(const Ti *x, To *y, int64_t rows, int64_t n)
{
    constexpr int V = 16 / (sizeof(Ti) > sizeof(To) ? sizeof(Ti) : sizeof(To));
    __shared__ float sm[kThreads / 32];
    const int t = threadIdx.x % TPR;
    const int64_t row = (int64_t)blockIdx.x * (kThreads / TPR) + threadIdx.x / TPR;
    if (TPR < kThreads && row >= rows) return;
    const Ti *xr = x + row * n;
    To *yr = y + row * n;
    const bool vin = ((uintptr_t)xr % (sizeof(Ti) * V)) == 0;
    const bool vout = ((uintptr_t)yr % (sizeof(To) * V)) == 0;
    const int64_t step = (int64_t)TPR * V;

    float m = -INFINITY;
    for (int64_t e = (int64_t)t * V; e < n; e += step) {
        if (vin && e + V <= n) {
            const pack<Ti, V> p = *reinterpret_cast<const pack<Ti, V> *>(xr + e);
#pragma unroll
            for (int j = 0; j < V; j++) m = fmaxf(m, to_f32(p.v[j]));
        } else {
            for (int j = 0; j < V && e + j < n; j++) m = fmaxf(m, to_f32(xr[e + j]));
        }
    }
    m = allreduce_max<TPR>(m, sm);
    if (m == -INFINITY) m = NAN;

    float sum = 0.0f;
    for (int64_t e = (int64_t)t * V; e < n; e += step) {
        if (vin && e + V <= n) {
            const pack<Ti, V> p = *reinterpret_cast<const pack<Ti, V> *>(xr + e);
#pragma unroll
            for (int j = 0; j < V; j++) sum += expf(to_f32(p.v[j]) - m);
        } else {
            for (int j = 0; j < V && e + j < n; j++) sum += expf(to_f32(xr[e + j]) - m);
        }
    }
    sum = allreduce_sum<TPR>(sum, sm);
    const float shift = LOG ? m + logf(sum) : m;
    const float inv = 1.0f / sum;

    for (int64_t e = (int64_t)t * V; e < n; e += step) {
        if (vin && vout && e + V <= n) {
            const pack<Ti, V> p = *reinterpret_cast<const pack<Ti, V> *>(xr + e);
            pack<To, V> r;
#pragma unroll
            for (int j = 0; j < V; j++) {
                const float v = to_f32(p.v[j]);
                r.v[j] = from_f32<To>(LOG ? v - shift : expf(v - shift) * inv);
            }
            *reinterpret_cast<pack<To, V> *>(yr + e) = r;
        } else {
            for (int j = 0; j < V && e + j < n; j++) {
                const float v = to_f32(xr[e + j]);
                yr[e + j] = from_f32<To>(LOG ? v - shift : expf(v - shift) * inv);
            }
        }
    }
}

/* inner > 1: one thread per column, three sequential passes down the dim. */
template <typename Ti, typename To, bool LOG>
__global__ void softmax_cols(const Ti *x, To *y, int64_t outer, int64_t n, int64_t inner)
{
    const int64_t cols = outer * inner;
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (c / inner) * n * inner + c % inner;
        float m = -INFINITY;
        for (int64_t r = 0; r < n; r++) m = fmaxf(m, to_f32(x[base + r * inner]));
        if (m == -INFINITY) m = NAN;
        float sum = 0.0f;
        for (int64_t r = 0; r < n; r++) sum += expf(to_f32(x[base + r * inner]) - m);
        const float shift = LOG ? m + logf(sum) : m;
        const float inv = 1.0f / sum;
        for (int64_t r = 0; r < n; r++) {
            const float v = to_f32(x[base + r * inner]);
            y[base + r * inner] = from_f32<To>(LOG ? v - shift : expf(v - shift) * inv);
        }
    }
}

template <typename Ti, typename To, bool LOG>
tc_status launch_softmax(const void *x, void *y, int64_t outer, int64_t n, int64_t inner, cudaStream_t s,
                         tc_error *err)
{
    const Ti *tx = static_cast<const Ti *>(x);
    To *ty = static_cast<To *>(y);
    if (inner == 1) {
        if (n <= 1024) {
            const int64_t blocks = (outer + kThreads / 32 - 1) / (kThreads / 32);
            if (blocks > INT32_MAX) return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_softmax: too many rows");
            softmax_rows<Ti, To, LOG, 32><<<(unsigned)blocks, kThreads, 0, s>>>(tx, ty, outer, n);
        } else {
            if (outer > INT32_MAX) return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_softmax: too many rows");
            softmax_rows<Ti, To, LOG, kThreads><<<(unsigned)outer, kThreads, 0, s>>>(tx, ty, outer, n);
        }
    } else {
        softmax_cols<Ti, To, LOG><<<blocks_for(outer * inner, kThreads), kThreads, 0, s>>>(tx, ty, outer, n, inner);
    }
    return launched("tc_cuda_softmax", err);
}

template <typename Ti, typename To>
tc_status softmax_form(const void *x, void *y, int64_t outer, int64_t n, int64_t inner, bool log_form, cudaStream_t s,
                       tc_error *err)
{
    return log_form ? launch_softmax<Ti, To, true>(x, y, outer, n, inner, s, err)
                    : launch_softmax<Ti, To, false>(x, y, outer, n, inner, s, err);
}

/* --- strided copy and conversion -------------------------------------------------------------- */

struct copy_geom {
    int rank;
    int64_t dims[TC_MAX_RANK];
    int64_t strides[TC_MAX_RANK];
};

template <typename E> __global__ void strided_copy(const E *x, E *y, copy_geom g, int64_t n)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = j, off = 0;
        for (int d = g.rank - 1; d >= 0; d--) {
            off += (rem % g.dims[d]) * g.strides[d];
            rem /= g.dims[d];
        }
        y[j] = x[off];
    }
}

/* Source element as double (exact for every supported type but i64 beyond 2^53, which PyTorch
 * also rounds when it makes floats of it) or as int64 for integer sources. */
template <typename S> struct src {
    static __device__ __forceinline__ int64_t as_int(S v) { return (int64_t)v; }
    static __device__ __forceinline__ float as_float(S v) { return (float)(double)(int64_t)v; }
    static __device__ __forceinline__ bool as_bool(S v) { return v != 0; }
};
template <typename S> struct fsrc {
    static __device__ __forceinline__ int64_t as_int(S v)
    {
        const float f = to_f32(v);
        if (f != f) return INT64_MIN;
        if (f >= 9.2233720368547758e18f) return INT64_MAX;
        if (f <= -9.2233720368547758e18f) return INT64_MIN;
        return (int64_t)f;
    }
    static __device__ __forceinline__ float as_float(S v) { return to_f32(v); }
    static __device__ __forceinline__ bool as_bool(S v) { return to_f32(v) != 0.0f; }
};
template <> struct src<float> : fsrc<float> {};
template <> struct src<__half> : fsrc<__half> {};
template <> struct src<__nv_bfloat16> : fsrc<__nv_bfloat16> {};

/* Bool sources are read as != 0, whatever byte they hold. */
struct bool_byte {
    uint8_t b;
};
template <> struct src<bool_byte> {
    static __device__ __forceinline__ int64_t as_int(bool_byte v) { return v.b != 0; }
    static __device__ __forceinline__ float as_float(bool_byte v) { return v.b != 0 ? 1.0f : 0.0f; }
    static __device__ __forceinline__ bool as_bool(bool_byte v) { return v.b != 0; }
};

template <typename S> __global__ void convert_kernel(const S *x, void *y, tc_dtype yt, int64_t n)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (int64_t)gridDim.x * blockDim.x) {
        const S v = x[j];
        if (yt == TC_F32) static_cast<float *>(y)[j] = src<S>::as_float(v);
        else if (yt == TC_I64) static_cast<int64_t *>(y)[j] = src<S>::as_int(v);
        else static_cast<uint8_t *>(y)[j] = src<S>::as_bool(v);
    }
}

} // namespace

extern "C" size_t tc_cuda_reduce_scratch_bytes(const tc_cuda_reduce_args *a)
{
    const red_geom g = plan(a);
    if (g.nchunks <= 1) return 0;
    return (size_t)(g.n_out * g.nchunks) * sizeof(rstate<int64_t>);
}

extern "C" tc_status tc_cuda_reduce(const tc_cuda_reduce_args *a, void *stream, tc_error *err)
{
    if (a->outer < 0 || a->R < 0 || a->inner < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: bad geometry [%lld, %lld, %lld]",
                         (long long)a->outer, (long long)a->R, (long long)a->inner);
    if (a->outer == 0) return TC_OK;
    if (a->R > 0 && !a->x) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: NULL input");
    const bool wants_index = a->fin == TC_CUDA_FIN_INDEX || a->fin == TC_CUDA_FIN_VALUE_INDEX;
    const bool wants_value = a->fin != TC_CUDA_FIN_INDEX;
    if ((wants_index && !a->idx) || (wants_value && !a->y) || (a->op == TC_CUDA_RED_SQDEV && !a->mean))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: NULL output, index or mean buffer");
    if (wants_index && !(a->op == TC_CUDA_RED_ARGMAX || a->op == TC_CUDA_RED_ARGMIN))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_reduce: indices come only from argmax/argmin");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const bool fdom = is_float_t(a->x_dtype);
    if (wants_value && (fdom ? !is_float_t(a->y_dtype) : !is_int_t(a->y_dtype)))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_reduce: a %s input cannot reduce into %s (convert first)",
                         name_of(a->x_dtype), name_of(a->y_dtype));
    if (!fdom && (a->fin == TC_CUDA_FIN_MEAN || a->fin == TC_CUDA_FIN_VAR))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_reduce: means and variances need a float input, got %s",
                         name_of(a->x_dtype));
    switch (a->x_dtype) {
    case TC_F32: return reduce_float<float>(a, s, err);
    case TC_F16: return reduce_float<__half>(a, s, err);
    case TC_BF16: return reduce_float<__nv_bfloat16>(a, s, err);
    case TC_I64: return reduce_int<int64_t>(a, s, err);
    case TC_I32: return reduce_int<int32_t>(a, s, err);
    case TC_I8: return reduce_int<int8_t>(a, s, err);
    case TC_U8:
    case TC_BOOL: return reduce_int<uint8_t>(a, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_reduce: input dtype %s is not supported", name_of(a->x_dtype));
}

extern "C" tc_status tc_cuda_cumsum(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t outer,
                                    int64_t n, int64_t inner, void *stream, tc_error *err)
{
    if (outer < 0 || n < 0 || inner < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_cumsum: bad geometry [%lld, %lld, %lld]",
                         (long long)outer, (long long)n, (long long)inner);
    if (outer == 0 || n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_cumsum: NULL buffer");
    const bool fdom = is_float_t(x_dtype);
    if (fdom ? !is_float_t(y_dtype) : !(is_int_t(x_dtype) && is_int_t(y_dtype) && y_dtype != TC_BOOL))
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_cumsum: %s -> %s is not supported (convert the input first)",
                         name_of(x_dtype), name_of(y_dtype));
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (x_dtype) {
    case TC_F32: return launch_cumsum<float>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_F16: return launch_cumsum<__half>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_BF16: return launch_cumsum<__nv_bfloat16>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_I64: return launch_cumsum<int64_t>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_I32: return launch_cumsum<int32_t>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_I8: return launch_cumsum<int8_t>(x, y, y_dtype, outer, n, inner, s, err);
    case TC_U8:
    case TC_BOOL: return launch_cumsum<uint8_t>(x, y, y_dtype, outer, n, inner, s, err);
    default: break;
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_cumsum: input dtype %s is not supported", name_of(x_dtype));
}

extern "C" tc_status tc_cuda_softmax(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t outer,
                                     int64_t n, int64_t inner, bool log_form, void *stream, tc_error *err)
{
    if (outer < 0 || n < 0 || inner < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_softmax: bad geometry [%lld, %lld, %lld]",
                         (long long)outer, (long long)n, (long long)inner);
    if (outer == 0 || n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_softmax: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (x_dtype == y_dtype) {
        switch (x_dtype) {
        case TC_F32: return softmax_form<float, float>(x, y, outer, n, inner, log_form, s, err);
        case TC_F16: return softmax_form<__half, __half>(x, y, outer, n, inner, log_form, s, err);
        case TC_BF16: return softmax_form<__nv_bfloat16, __nv_bfloat16>(x, y, outer, n, inner, log_form, s, err);
        default: break;
        }
    } else if (y_dtype == TC_F32) {
        if (x_dtype == TC_F16) return softmax_form<__half, float>(x, y, outer, n, inner, log_form, s, err);
        if (x_dtype == TC_BF16) return softmax_form<__nv_bfloat16, float>(x, y, outer, n, inner, log_form, s, err);
    }
    return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_softmax: %s -> %s is not supported", name_of(x_dtype),
                     name_of(y_dtype));
}

extern "C" tc_status tc_cuda_strided_copy(const void *x, void *y, size_t elem_size, int rank, const int64_t *dims,
                                          const int64_t *strides, void *stream, tc_error *err)
{
    if (rank < 0 || rank > TC_MAX_RANK)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_strided_copy: rank %d is out of range", rank);
    copy_geom g;
    g.rank = rank;
    int64_t n = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_strided_copy: negative dim");
        g.dims[d] = dims[d];
        g.strides[d] = strides[d];
        n *= dims[d];
    }
    if (n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_strided_copy: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = blocks_for(n, kThreads);
    switch (elem_size) {
    case 1: strided_copy<uint8_t><<<blocks, kThreads, 0, s>>>((const uint8_t *)x, (uint8_t *)y, g, n); break;
    case 2: strided_copy<uint16_t><<<blocks, kThreads, 0, s>>>((const uint16_t *)x, (uint16_t *)y, g, n); break;
    case 4: strided_copy<uint32_t><<<blocks, kThreads, 0, s>>>((const uint32_t *)x, (uint32_t *)y, g, n); break;
    case 8: strided_copy<uint64_t><<<blocks, kThreads, 0, s>>>((const uint64_t *)x, (uint64_t *)y, g, n); break;
    default:
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_strided_copy: element size %zu is not supported",
                         elem_size);
    }
    return launched("tc_cuda_strided_copy", err);
}

extern "C" tc_status tc_cuda_convert(const void *x, tc_dtype x_dtype, void *y, tc_dtype y_dtype, int64_t n,
                                     void *stream, tc_error *err)
{
    if (y_dtype != TC_F32 && y_dtype != TC_I64 && y_dtype != TC_BOOL)
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_convert: output dtype %s is not supported (f32, i64, bool)",
                         name_of(y_dtype));
    if (n < 0) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert: negative element count");
    if (n == 0) return TC_OK;
    if (!x || !y) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_convert: NULL buffer");
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    const int blocks = blocks_for(n, kThreads);
    switch (x_dtype) {
    case TC_F32: convert_kernel<float><<<blocks, kThreads, 0, s>>>((const float *)x, y, y_dtype, n); break;
    case TC_F16: convert_kernel<__half><<<blocks, kThreads, 0, s>>>((const __half *)x, y, y_dtype, n); break;
    case TC_BF16:
        convert_kernel<__nv_bfloat16><<<blocks, kThreads, 0, s>>>((const __nv_bfloat16 *)x, y, y_dtype, n);
        break;
    case TC_I64: convert_kernel<int64_t><<<blocks, kThreads, 0, s>>>((const int64_t *)x, y, y_dtype, n); break;
    case TC_I32: convert_kernel<int32_t><<<blocks, kThreads, 0, s>>>((const int32_t *)x, y, y_dtype, n); break;
    case TC_I8: convert_kernel<int8_t><<<blocks, kThreads, 0, s>>>((const int8_t *)x, y, y_dtype, n); break;
    case TC_U8: convert_kernel<uint8_t><<<blocks, kThreads, 0, s>>>((const uint8_t *)x, y, y_dtype, n); break;
    case TC_BOOL: convert_kernel<bool_byte><<<blocks, kThreads, 0, s>>>((const bool_byte *)x, y, y_dtype, n); break;
    default:
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_convert: input dtype %s is not supported", name_of(x_dtype));
    }
    return launched("tc_cuda_convert", err);
}
