/* Fused scaled-dot-product attention in CUDA: a block takes 16 query rows of one batch-head (4
 * warps x 4 rows), walks the keys in tiles of 32 staged in shared memory as f32, and keeps an
 * online softmax (running max, sum, and output accumulators) in f32 registers. A lane owns one
 * key of a tile for the scores and 1/32 of the value columns for the output. No scores are ever
 * written to memory, and every sum is taken in a fixed order. */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBQ = kWarps * kRowsPerWarp; /* query rows per block */
constexpr int kBK = 32;                    /* keys per tile: one per lane */
constexpr int kMaxDim = 512;

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

enum mask_kind { MASK_NONE, MASK_BOOL, MASK_F32, MASK_F16, MASK_BF16 };

struct sdpa_geom {
    const void *q, *k, *v;
    void *o;
    const void *mask;
    int mask_kind;
    int causal;
    int rb;
    float scale;
    int64_t L, S, E, Ev, ntiles;
    int64_t ob[TC_MAX_RANK], qs[TC_MAX_RANK], ks[TC_MAX_RANK], vs[TC_MAX_RANK], ms[TC_MAX_RANK];
    int64_t k_rep, v_rep, mask_ls, mask_ss;
};

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
    return v;
}

/* NACC = value columns per lane (Ev <= 32 * NACC). Shared memory: Q tile [kBQ][E], K tile
 * [kBK][E + 1] (the pad puts each lane's key row in its own bank), V tile [kBK][Ev]. */
template <typename T, int NACC> __global__ void __launch_bounds__(kWarps * 32) sdpa_kernel(sdpa_geom g)
{
    extern __shared__ float smem[];
    const int E = (int)g.E, Ev = (int)g.Ev;
    float *Qs = smem;
    float *Ks = Qs + kBQ * E;
    float *Vs = Ks + kBK * (E + 1);
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int64_t bi = blockIdx.x / g.ntiles, l0 = (blockIdx.x % g.ntiles) * kBQ;

    int64_t qo = 0, ko = 0, vo = 0, mo = 0, rem = bi;
    for (int d = g.rb - 1; d >= 0; d--) {
        const int64_t i = rem % g.ob[d];
        rem /= g.ob[d];
        const bool head = d == g.rb - 1;
        qo += i * g.qs[d];
        ko += (head ? i / g.k_rep : i) * g.ks[d];
        vo += (head ? i / g.v_rep : i) * g.vs[d];
        mo += i * g.ms[d];
    }
    const T *q = static_cast<const T *>(g.q) + qo;
    const T *k = static_cast<const T *>(g.k) + ko;
    const T *v = static_cast<const T *>(g.v) + vo;

    for (int r = w; r < kBQ; r += kWarps)
        for (int e = lane; e < E; e += 32) Qs[r * E + e] = l0 + r < g.L ? to_f32(q[(l0 + r) * g.E + e]) : 0.0f;

    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][NACC];
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; j++) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
#pragma unroll
        for (int t = 0; t < NACC; t++) acc[j][t] = 0.0f;
    }

    /* with a causal mask no row of this block sees a key at or past min(L, l0 + kBQ) */
    int64_t kend = g.S;
    if (g.causal) {
        const int64_t last = l0 + kBQ < g.L ? l0 + kBQ : g.L;
        kend = last < kend ? last : kend;
    }
    for (int64_t k0 = 0; k0 < kend; k0 += kBK) {
        __syncthreads(); /* the previous tile is consumed (and, the first time, Qs is written) */
        for (int r = w; r < kBK; r += kWarps) {
            const bool in = k0 + r < g.S;
            for (int e = lane; e < E; e += 32) Ks[r * (E + 1) + e] = in ? to_f32(k[(k0 + r) * g.E + e]) : 0.0f;
            for (int d = lane; d < Ev; d += 32) Vs[r * Ev + d] = in ? to_f32(v[(k0 + r) * g.Ev + d]) : 0.0f;
        }
        __syncthreads();

        const int64_t key = k0 + lane;
        const bool kvalid = key < g.S;
        float s[kRowsPerWarp];
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) s[j] = 0.0f;
        const float *kr = Ks + lane * (E + 1);
        const float *qr = Qs + w * kRowsPerWarp * E;
        for (int e = 0; e < E; e++) {
            const float kv = kr[e];
#pragma unroll
            for (int j = 0; j < kRowsPerWarp; j++) s[j] += qr[j * E + e] * kv;
        }

        float p[kRowsPerWarp];
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) {
            const int64_t row = l0 + w * kRowsPerWarp + j;
            float sc = s[j] * g.scale;
            bool masked = false;
            if (kvalid && row < g.L) {
                const int64_t mi = mo + row * g.mask_ls + key * g.mask_ss;
                switch (g.mask_kind) {
                case MASK_BOOL: masked = static_cast<const uint8_t *>(g.mask)[mi] == 0; break;
                case MASK_F32: sc += static_cast<const float *>(g.mask)[mi]; break;
                case MASK_F16: sc += __half2float(static_cast<const __half *>(g.mask)[mi]); break;
                case MASK_BF16: sc += __bfloat162float(static_cast<const __nv_bfloat16 *>(g.mask)[mi]); break;
                default: masked = g.causal && key > row; break;
                }
            }
            /* a masked-out score is -inf whatever the product was, NaN included */
            if (masked) sc = -INFINITY;
            const float mn = fmaxf(m[j], warp_max(kvalid ? sc : -INFINITY));
            /* while every score so far is -inf nothing has accumulated: keep the sums as they are
             * (0), and let a NaN score through so that the row ends NaN as on the CPU */
            const float alpha = mn == -INFINITY ? 1.0f : expf(m[j] - mn);
            float pj = 0.0f;
            if (kvalid) pj = mn == -INFINITY ? (sc != sc ? sc : 0.0f) : expf(sc - mn);
            l[j] = l[j] * alpha + warp_sum(pj);
            m[j] = mn;
#pragma unroll
            for (int t = 0; t < NACC; t++) acc[j][t] *= alpha;
            p[j] = pj;
        }

        for (int kk = 0; kk < kBK; kk++) {
            const float *vr = Vs + kk * Ev;
            float pk[kRowsPerWarp];
#pragma unroll
            for (int j = 0; j < kRowsPerWarp; j++) pk[j] = __shfl_sync(0xffffffffu, p[j], kk);
#pragma unroll
            for (int t = 0; t < NACC; t++) {
                const int d = lane + 32 * t;
                if (d < Ev) {
                    const float vv = vr[d];
#pragma unroll
                    for (int j = 0; j < kRowsPerWarp; j++) acc[j][t] += pk[j] * vv;
                }
            }
        }
    }

    T *o = static_cast<T *>(g.o) + bi * g.L * g.Ev;
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; j++) {
        const int64_t row = l0 + w * kRowsPerWarp + j;
        if (row >= g.L) continue;
        /* l == 0: every key was masked out (or there are none), which gives zeros */
        const float inv = l[j] == 0.0f ? 0.0f : 1.0f / l[j];
#pragma unroll
        for (int t = 0; t < NACC; t++) {
            const int d = lane + 32 * t;
            if (d < Ev) o[row * g.Ev + d] = from_f32<T>(acc[j][t] * inv);
        }
    }
}

const char *name_of(tc_dtype t)
{
    const char *s = tc_dtype_name(t);
    return s ? s : "?";
}

template <typename T, int NACC>
tc_status launch(const sdpa_geom &g, int64_t blocks, size_t smem, cudaStream_t s, tc_error *err)
{
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(sdpa_kernel<T, NACC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            return tc_errorf(err, TC_ERR_UNSUPPORTED,
                             "tc_cuda_sdpa: head dims E=%lld, Ev=%lld need %zu bytes of shared memory per block, "
                             "more than this GPU gives (%s)",
                             (long long)g.E, (long long)g.Ev, smem, cudaGetErrorString(e));
        }
    }
    sdpa_kernel<T, NACC><<<(unsigned)blocks, kWarps * 32, smem, s>>>(g);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TC_OK;
    return tc_errorf(err, TC_ERR_CUDA, "tc_cuda_sdpa: kernel launch failed: %s (%s)", cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

template <typename T> tc_status launch_t(const sdpa_geom &g, int64_t blocks, size_t smem, cudaStream_t s, tc_error *err)
{
    if (g.Ev <= 32) return launch<T, 1>(g, blocks, smem, s, err);
    if (g.Ev <= 64) return launch<T, 2>(g, blocks, smem, s, err);
    if (g.Ev <= 128) return launch<T, 4>(g, blocks, smem, s, err);
    if (g.Ev <= 256) return launch<T, 8>(g, blocks, smem, s, err);
    return launch<T, 16>(g, blocks, smem, s, err);
}

} // namespace

extern "C" tc_status tc_cuda_sdpa(const tc_cuda_sdpa_args *a, void *stream, tc_error *err)
{
    if (a->dtype != TC_F32 && a->dtype != TC_F16 && a->dtype != TC_BF16)
        return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_sdpa: dtype %s is not supported (f32, f16, bf16)",
                         name_of(a->dtype));
    if (a->L < 0 || a->S < 0 || a->E < 0 || a->Ev < 0 || a->rb < 0 || a->rb > TC_MAX_RANK || a->k_rep < 1 ||
        a->v_rep < 1)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_sdpa: bad geometry");
    if (a->E > kMaxDim || a->Ev > kMaxDim)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_sdpa: head dims E=%lld, Ev=%lld exceed %d",
                         (long long)a->E, (long long)a->Ev, kMaxDim);
    int64_t nb = 1;
    for (int d = 0; d < a->rb; d++) nb *= a->ob[d];
    if (nb == 0 || a->L == 0 || a->Ev == 0) return TC_OK;
    if (!a->q || !a->o || (a->S > 0 && (!a->k || !a->v)))
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "tc_cuda_sdpa: NULL buffer");
    sdpa_geom g;
    g.q = a->q, g.k = a->k, g.v = a->v, g.o = a->o;
    g.mask = a->mask;
    g.mask_kind = MASK_NONE;
    if (a->mask) {
        switch (a->mask_dtype) {
        case TC_BOOL: g.mask_kind = MASK_BOOL; break;
        case TC_F32: g.mask_kind = MASK_F32; break;
        case TC_F16: g.mask_kind = MASK_F16; break;
        case TC_BF16: g.mask_kind = MASK_BF16; break;
        default:
            return tc_errorf(err, TC_ERR_DTYPE, "tc_cuda_sdpa: attn_mask dtype %s is not supported",
                             name_of(a->mask_dtype));
        }
    }
    g.causal = a->causal;
    g.rb = a->rb;
    g.scale = a->scale;
    g.L = a->L, g.S = a->S, g.E = a->E, g.Ev = a->Ev;
    g.ntiles = (a->L + kBQ - 1) / kBQ;
    for (int d = 0; d < TC_MAX_RANK; d++) {
        const bool in = d < a->rb;
        g.ob[d] = in ? a->ob[d] : 1;
        g.qs[d] = in ? a->qs[d] : 0;
        g.ks[d] = in ? a->ks[d] : 0;
        g.vs[d] = in ? a->vs[d] : 0;
        g.ms[d] = in ? a->ms[d] : 0;
    }
    g.k_rep = a->k_rep, g.v_rep = a->v_rep;
    g.mask_ls = a->mask_ls, g.mask_ss = a->mask_ss;
    const int64_t blocks = nb * g.ntiles;
    if (blocks > INT32_MAX)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "tc_cuda_sdpa: %lld query tiles are too many for one launch",
                         (long long)blocks);
    const size_t smem = sizeof(float) * (size_t)(kBQ * a->E + kBK * (a->E + 1) + kBK * a->Ev);
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (a->dtype) {
    case TC_F32: return launch_t<float>(g, blocks, smem, s, err);
    case TC_F16: return launch_t<__half>(g, blocks, smem, s, err);
    default: return launch_t<__nv_bfloat16>(g, blocks, smem, s, err);
    }
}
