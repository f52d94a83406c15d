/* Packed, cache-blocked f32 GEMM (BLIS-style loops around a register-blocked micro-kernel), with
 * AVX-512 / AVX2+FMA kernels selected at run time and a portable one, plus a plain f64 GEMM.
 * Each C element is summed over K in fixed KC-sized blocks by one kernel call per block, so
 * neither the thread count nor the tiling of M and N changes its bits. */
#include "backend/cpu/gemm.h"

#include "core/error.h"
#include "core/parallel.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define TC_GEMM_X86 1
#include <immintrin.h>
#else
#define TC_GEMM_X86 0
#endif

/* The largest micro-tile of any kernel; sizes the stack tile used at the ragged edges. */
#define TC_MAX_MR 12
#define TC_MAX_NR 32

/* c = alpha * a_panel @ b_panel (+ beta * c unless beta == 0), for one mr x nr tile.
 * a: k steps of mr values; b: k steps of nr values; both 64-byte aligned. */
typedef void (*tc_ukr_fn)(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                          float alpha, float beta);

typedef struct tc_gemm_kernel {
    const char *name;
    int mr, nr;
    int64_t kc;        /* K block: an nr-wide B panel of kc steps stays in L1 */
    int64_t mc;        /* M block: an mc x kc A block stays in L2 */
    int64_t nc;        /* widest N block a thread packs at once */
    double macs_per_cycle; /* rough kernel speed, for the work split only */
    tc_ukr_fn ukr;
} tc_gemm_kernel;

/* ---------------------------------------------------------------------------------------------
 * Micro-kernels
 */
enum { GEN_MR = 4, GEN_NR = 8 };

static void ukr_generic(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                        float alpha, float beta)
{
    float acc[GEN_MR][GEN_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < k; p++) {
        const float *ap = a + p * GEN_MR, *bp = b + p * GEN_NR;
        for (int r = 0; r < GEN_MR; r++) {
            float ar = ap[r];
            for (int j = 0; j < GEN_NR; j++) acc[r][j] += ar * bp[j];
        }
    }
    for (int r = 0; r < GEN_MR; r++) {
        float *cr = c + r * ldc;
        if (beta == 0.0f) {
            for (int j = 0; j < GEN_NR; j++) cr[j] = alpha * acc[r][j];
        } else {
            for (int j = 0; j < GEN_NR; j++) cr[j] = beta * cr[j] + alpha * acc[r][j];
        }
    }
}

#if TC_GEMM_X86
enum { AVX2_MR = 6, AVX2_NR = 16 };

__attribute__((target("avx2,fma"))) static void
ukr_avx2(int64_t k, const float *a, const float *b, float *c, int64_t ldc, float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < k; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), ar;
#define TC_ROW(r)                                 \
    ar = _mm256_broadcast_ss(a + r);              \
    c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);   \
    c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);
        TC_ROW(0) TC_ROW(1) TC_ROW(2) TC_ROW(3) TC_ROW(4) TC_ROW(5)
#undef TC_ROW
        a += AVX2_MR;
        b += AVX2_NR;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#define TC_ROW(r)                                                  \
    _mm256_storeu_ps(c + r * ldc, _mm256_mul_ps(va, c##r##0));     \
    _mm256_storeu_ps(c + r * ldc + 8, _mm256_mul_ps(va, c##r##1));
        TC_ROW(0) TC_ROW(1) TC_ROW(2) TC_ROW(3) TC_ROW(4) TC_ROW(5)
#undef TC_ROW
    } else {
        __m256 vb = _mm256_set1_ps(beta);
#define TC_ROW(r)                                                                          \
    _mm256_storeu_ps(c + r * ldc, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + r * ldc),        \
                                                  _mm256_mul_ps(va, c##r##0)));            \
    _mm256_storeu_ps(c + r * ldc + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + r * ldc + 8), \
                                                      _mm256_mul_ps(va, c##r##1)));
        TC_ROW(0) TC_ROW(1) TC_ROW(2) TC_ROW(3) TC_ROW(4) TC_ROW(5)
#undef TC_ROW
    }
}

enum { AVX512_MR = 12, AVX512_NR = 32 };

__attribute__((target("avx512f"))) static void
ukr_avx512(int64_t k, const float *a, const float *b, float *c, int64_t ldc, float alpha, float beta)
{
    __m512 z = _mm512_setzero_ps();
    __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
    __m512 c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
    __m512 c80 = z, c81 = z, c90 = z, c91 = z, cA0 = z, cA1 = z, cB0 = z, cB1 = z;
    for (int64_t p = 0; p < k; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), ar;
#define TC_ROW(r, i)                              \
    ar = _mm512_set1_ps(a[i]);                    \
    c##r##0 = _mm512_fmadd_ps(ar, b0, c##r##0);   \
    c##r##1 = _mm512_fmadd_ps(ar, b1, c##r##1);
        TC_ROW(0, 0) TC_ROW(1, 1) TC_ROW(2, 2) TC_ROW(3, 3) TC_ROW(4, 4) TC_ROW(5, 5)
        TC_ROW(6, 6) TC_ROW(7, 7) TC_ROW(8, 8) TC_ROW(9, 9) TC_ROW(A, 10) TC_ROW(B, 11)
#undef TC_ROW
        a += AVX512_MR;
        b += AVX512_NR;
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#define TC_ROW(r, i)                                                 \
    _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, c##r##0));       \
    _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, c##r##1));
        TC_ROW(0, 0) TC_ROW(1, 1) TC_ROW(2, 2) TC_ROW(3, 3) TC_ROW(4, 4) TC_ROW(5, 5)
        TC_ROW(6, 6) TC_ROW(7, 7) TC_ROW(8, 8) TC_ROW(9, 9) TC_ROW(A, 10) TC_ROW(B, 11)
#undef TC_ROW
    } else {
        __m512 vb = _mm512_set1_ps(beta);
#define TC_ROW(r, i)                                                                             \
    _mm512_storeu_ps(c + i * ldc, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc),              \
                                                  _mm512_mul_ps(va, c##r##0)));                  \
    _mm512_storeu_ps(c + i * ldc + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc + 16),    \
                                                       _mm512_mul_ps(va, c##r##1)));
        TC_ROW(0, 0) TC_ROW(1, 1) TC_ROW(2, 2) TC_ROW(3, 3) TC_ROW(4, 4) TC_ROW(5, 5)
        TC_ROW(6, 6) TC_ROW(7, 7) TC_ROW(8, 8) TC_ROW(9, 9) TC_ROW(A, 10) TC_ROW(B, 11)
#undef TC_ROW
    }
}
#endif

static const tc_gemm_kernel g_kernels[TC_GEMM_ISA_COUNT] = {
    [TC_GEMM_ISA_GENERIC] = {"generic", GEN_MR, GEN_NR, 256, 128, 1024, 4.0, ukr_generic},
#if TC_GEMM_X86
    [TC_GEMM_ISA_AVX2] = {"avx2", AVX2_MR, AVX2_NR, 256, 144, 2048, 16.0, ukr_avx2},
    [TC_GEMM_ISA_AVX512] = {"avx512", AVX512_MR, AVX512_NR, 256, 144, 2048, 32.0, ukr_avx512},
#endif
};

/* ---------------------------------------------------------------------------------------------
 * Kernel selection
 */
static atomic_int g_isa; /* a tc_gemm_isa; AUTO until first use */

bool tc_gemm_isa_supported(tc_gemm_isa isa)
{
    switch (isa) {
    case TC_GEMM_ISA_AUTO:
    case TC_GEMM_ISA_GENERIC: return true;
    case TC_GEMM_ISA_AVX2:
#if TC_GEMM_X86
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        return false;
#endif
    case TC_GEMM_ISA_AVX512:
#if TC_GEMM_X86
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
#else
        return false;
#endif
    case TC_GEMM_ISA_COUNT: return false;
    }
    return false;
}

static tc_gemm_isa best_isa(void)
{
    if (tc_gemm_isa_supported(TC_GEMM_ISA_AVX512)) return TC_GEMM_ISA_AVX512;
    if (tc_gemm_isa_supported(TC_GEMM_ISA_AVX2)) return TC_GEMM_ISA_AVX2;
    return TC_GEMM_ISA_GENERIC;
}

tc_gemm_isa tc_gemm_get_isa(void)
{
    int isa = atomic_load(&g_isa);
    if (isa == TC_GEMM_ISA_AUTO) {
        isa = best_isa();
        atomic_store(&g_isa, isa);
    }
    return (tc_gemm_isa)isa;
}

bool tc_gemm_set_isa(tc_gemm_isa isa)
{
    if (isa < 0 || isa >= TC_GEMM_ISA_COUNT || !tc_gemm_isa_supported(isa)) return false;
    atomic_store(&g_isa, isa == TC_GEMM_ISA_AUTO ? best_isa() : isa);
    return true;
}

const char *tc_gemm_isa_name(tc_gemm_isa isa)
{
    switch (isa) {
    case TC_GEMM_ISA_AUTO: return "auto";
    case TC_GEMM_ISA_GENERIC: return "generic";
    case TC_GEMM_ISA_AVX2: return "avx2";
    case TC_GEMM_ISA_AVX512: return "avx512";
    case TC_GEMM_ISA_COUNT: break;
    }
    return "?";
}

/* ---------------------------------------------------------------------------------------------
 * Packing: op(A) rows into mr-row panels, op(B) columns into nr-column panels, zero-padded.
 */
static void pack_a(const float *A, int64_t lda, bool trans, int64_t i0, int64_t mlen, int64_t p0,
                   int64_t klen, int mr, float *dst)
{
    for (int64_t ir = 0; ir < mlen; ir += mr) {
        int rows = mlen - ir < mr ? (int)(mlen - ir) : mr;
        float *d = dst + ir * klen;
        if (!trans) {
            for (int r = 0; r < rows; r++) {
                const float *s = A + (i0 + ir + r) * lda + p0;
                for (int64_t p = 0; p < klen; p++) d[p * mr + r] = s[p];
            }
            for (int r = rows; r < mr; r++)
                for (int64_t p = 0; p < klen; p++) d[p * mr + r] = 0.0f;
        } else {
            for (int64_t p = 0; p < klen; p++) {
                const float *s = A + (p0 + p) * lda + i0 + ir;
                float *dp = d + p * mr;
                for (int r = 0; r < rows; r++) dp[r] = s[r];
                for (int r = rows; r < mr; r++) dp[r] = 0.0f;
            }
        }
    }
}

static void pack_b(const float *B, int64_t ldb, bool trans, int64_t p0, int64_t klen, int64_t j0,
                   int64_t nlen, int nr, float *dst)
{
    for (int64_t jr = 0; jr < nlen; jr += nr) {
        int cols = nlen - jr < nr ? (int)(nlen - jr) : nr;
        float *d = dst + jr * klen;
        if (!trans) {
            for (int64_t p = 0; p < klen; p++) {
                const float *s = B + (p0 + p) * ldb + j0 + jr;
                float *dp = d + p * nr;
                for (int c = 0; c < cols; c++) dp[c] = s[c];
                for (int c = cols; c < nr; c++) dp[c] = 0.0f;
            }
        } else {
            for (int c = 0; c < cols; c++) {
                const float *s = B + (j0 + jr + c) * ldb + p0;
                for (int64_t p = 0; p < klen; p++) d[p * nr + c] = s[p];
            }
            for (int c = cols; c < nr; c++)
                for (int64_t p = 0; p < klen; p++) d[p * nr + c] = 0.0f;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Blocked driver
 */
typedef struct tc_gemm_plan {
    const tc_gemm_kernel *kr;
    bool ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
    int64_t mcj, ncj; /* job tile: rows (multiple of mr) x columns (multiple of nr) */
    int64_t nm, nn;   /* jobs along M and N; job j covers M block j % nm, N block j / nm */
    int64_t kcb;      /* K block actually used: min(kc, K) */
} tc_gemm_plan;

/* The inner two loops over one packed A block and one packed B block. */
static void macro_kernel(const tc_gemm_plan *g, int64_t kl, const float *pa, const float *pb,
                         int64_t ml, int64_t nl, float *C, float beta)
{
    const tc_gemm_kernel *kr = g->kr;
    const int mr = kr->mr, nr = kr->nr;
    _Alignas(64) float tile[TC_MAX_MR * TC_MAX_NR];
    for (int64_t jr = 0; jr < nl; jr += nr) {
        int cols = nl - jr < nr ? (int)(nl - jr) : nr;
        const float *bp = pb + jr * kl;
        for (int64_t ir = 0; ir < ml; ir += mr) {
            int rows = ml - ir < mr ? (int)(ml - ir) : mr;
            const float *ap = pa + ir * kl;
            float *cp = C + ir * g->ldc + jr;
            if (rows == mr && cols == nr) {
                kr->ukr(kl, ap, bp, cp, g->ldc, g->alpha, beta);
                continue;
            }
            /* Ragged edge: same kernel on a private tile, so edge elements round like the rest. */
            if (beta != 0.0f) {
                for (int r = 0; r < rows; r++)
                    memcpy(tile + r * nr, cp + r * g->ldc, (size_t)cols * sizeof(float));
            }
            kr->ukr(kl, ap, bp, tile, nr, g->alpha, beta);
            for (int r = 0; r < rows; r++)
                memcpy(cp + r * g->ldc, tile + r * nr, (size_t)cols * sizeof(float));
        }
    }
}

/* Computes C rows [i0, i0+mlen) x columns [j0, j0+nlen) with buffers for mc_cap x kcb of A and
 * kcb x nc_cap of B. B is packed once per K block and shared by all the M blocks. */
static void run_block(const tc_gemm_plan *g, int64_t i0, int64_t mlen, int64_t j0, int64_t nlen,
                      float *pa, float *pb, int64_t mc_cap, int64_t nc_cap)
{
    const tc_gemm_kernel *kr = g->kr;
    for (int64_t jc = 0; jc < nlen; jc += nc_cap) {
        int64_t nl = nlen - jc < nc_cap ? nlen - jc : nc_cap;
        for (int64_t pc = 0; pc < g->K; pc += kr->kc) {
            int64_t kl = g->K - pc < kr->kc ? g->K - pc : kr->kc;
            float beta = pc == 0 ? g->beta : 1.0f;
            pack_b(g->B, g->ldb, g->tb, pc, kl, j0 + jc, nl, kr->nr, pb);
            for (int64_t ic = 0; ic < mlen; ic += mc_cap) {
                int64_t ml = mlen - ic < mc_cap ? mlen - ic : mc_cap;
                pack_a(g->A, g->lda, g->ta, i0 + ic, ml, pc, kl, kr->mr, pa);
                macro_kernel(g, kl, pa, pb, ml, nl, g->C + (i0 + ic) * g->ldc + j0 + jc, beta);
            }
        }
    }
}

static void *alloc_aligned(size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Runs jobs [begin, end) with the given buffers: consecutive jobs share an N block, so they
 * become one run_block. */
static void run_jobs_with(const tc_gemm_plan *g, int64_t begin, int64_t end, float *pa, float *pb,
                          int64_t mc_cap, int64_t nc_cap)
{
    for (int64_t job = begin; job < end;) {
        int64_t nb = job / g->nm;
        int64_t mb_lo = job - nb * g->nm;
        int64_t mb_hi = end - nb * g->nm < g->nm ? end - nb * g->nm : g->nm;
        int64_t i0 = mb_lo * g->mcj;
        int64_t i1 = mb_hi * g->mcj < g->M ? mb_hi * g->mcj : g->M;
        int64_t j0 = nb * g->ncj;
        int64_t j1 = j0 + g->ncj < g->N ? j0 + g->ncj : g->N;
        run_block(g, i0, i1 - i0, j0, j1 - j0, pa, pb, mc_cap, nc_cap);
        job = (nb + 1) * g->nm;
    }
}

/* Out of memory: one micro-panel of each operand on the stack; slower, same arithmetic. Kept
 * out of line so the common path does not reserve this stack. */
#define TC_SMALL_KC 256
__attribute__((noinline)) static void run_jobs_small(const tc_gemm_plan *g, int64_t begin,
                                                     int64_t end)
{
    _Alignas(64) float small_a[TC_MAX_MR * TC_SMALL_KC], small_b[TC_MAX_NR * TC_SMALL_KC];
    TC_ASSERT(g->kr->kc <= TC_SMALL_KC);
    run_jobs_with(g, begin, end, small_a, small_b, g->kr->mr, g->kr->nr);
}

static void run_jobs(void *ctx, int64_t begin, int64_t end)
{
    const tc_gemm_plan *g = ctx;
    float *pa = alloc_aligned((size_t)g->mcj * (size_t)g->kcb * sizeof(float));
    float *pb = alloc_aligned((size_t)g->ncj * (size_t)g->kcb * sizeof(float));
    if (pa && pb) {
        run_jobs_with(g, begin, end, pa, pb, g->mcj, g->ncj);
    } else {
        run_jobs_small(g, begin, end);
    }
    free(pa);
    free(pb);
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

/* Chooses the job tiles for `threads` threads with a rough cycle model: kernel time plus
 * packing (A once per job, B once per N block a thread touches), on the busiest thread. */
static void plan_split(tc_gemm_plan *g, int threads)
{
    const tc_gemm_kernel *kr = g->kr;
    int64_t mr = kr->mr, nr = kr->nr;
    int64_t nm0 = ceil_div(g->M, kr->mc), nn0 = ceil_div(g->N, kr->nc);
    int64_t nm_max = ceil_div(g->M, mr), nn_max = ceil_div(g->N, nr);
    double a_cost = g->ta ? 0.5 : 1.5, b_cost = g->tb ? 1.5 : 0.3;
    double best = -1.0;
    int64_t extra = threads > 1 ? 16 : 1;
    for (int64_t nm = nm0; nm <= nm_max && nm < nm0 + extra; nm++) {
        int64_t mcj = round_up(ceil_div(g->M, nm), mr), nm_eff = ceil_div(g->M, mcj);
        for (int64_t nn = nn0; nn <= nn_max && nn < nn0 + 2 * extra; nn++) {
            int64_t ncj = round_up(ceil_div(g->N, nn), nr), nn_eff = ceil_div(g->N, ncj);
            int64_t jobs = nm_eff * nn_eff, per = ceil_div(jobs, threads);
            double cost = (double)per * ((double)(mcj * ncj) / kr->macs_per_cycle +
                                         (double)mcj * a_cost + 200.0) +
                          (double)(ceil_div(per, nm_eff) + 1) * (double)ncj * b_cost;
            if (best < 0 || cost < best) {
                best = cost;
                g->mcj = mcj;
                g->ncj = ncj;
                g->nm = nm_eff;
                g->nn = nn_eff;
            }
        }
    }
}

/* Problems below this many multiply-adds are not worth waking the pool for. */
#define TC_GEMM_PARALLEL_MACS (1 << 21)

/* ---------------------------------------------------------------------------------------------
 * Matrix-vector products (M == 1 or N == 1). Packing would pad the one row or column out to a
 * whole micro-tile, so these read the matrix once instead. Outputs are split across threads;
 * each is still summed by one thread in a fixed order.
 */
#define TC_GEMV_LANES 16
#define TC_GEMV_COLS 256

typedef struct tc_gemv_plan {
    bool dot;        /* out[j] = v . X[j, :] (rows of X contiguous) rather than out += v[k] X[k, :] */
    int64_t n, K;    /* outputs, reduction length */
    const float *X;  /* dot: [n, K] with ldx; axpy: [K, n] with ldx */
    int64_t ldx;
    const float *v;  /* K values with stride incv */
    int64_t incv;
    float *out;      /* n values with stride incout */
    int64_t incout;
    float alpha, beta;
} tc_gemv_plan;

static void gemv_store(const tc_gemv_plan *g, int64_t j, float s)
{
    float *o = g->out + j * g->incout;
    *o = g->beta == 0.0f ? g->alpha * s : g->beta * *o + g->alpha * s;
}

/* x . v with v[k] at v[k * incv], summed in TC_GEMV_LANES interleaved lanes then a fixed tree. */
static float dot_lanes(const float *x, const float *v, int64_t incv, int64_t K)
{
    float acc[TC_GEMV_LANES] = {0};
    int64_t k = 0;
    if (incv == 1) {
        for (; k + TC_GEMV_LANES <= K; k += TC_GEMV_LANES)
            for (int l = 0; l < TC_GEMV_LANES; l++) acc[l] += x[k + l] * v[k + l];
    } else {
        for (; k + TC_GEMV_LANES <= K; k += TC_GEMV_LANES)
            for (int l = 0; l < TC_GEMV_LANES; l++) acc[l] += x[k + l] * v[(k + l) * incv];
    }
    for (int l = 0; k < K; k++, l++) acc[l] += x[k] * v[k * incv];
    for (int w = TC_GEMV_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static void gemv_range(void *ctx, int64_t begin, int64_t end)
{
    const tc_gemv_plan *g = ctx;
    if (g->dot) {
        for (int64_t j = begin; j < end; j++)
            gemv_store(g, j, dot_lanes(g->X + j * g->ldx, g->v, g->incv, g->K));
        return;
    }
    _Alignas(64) float buf[TC_GEMV_COLS];
    for (int64_t j0 = begin; j0 < end; j0 += TC_GEMV_COLS) {
        int64_t w = end - j0 < TC_GEMV_COLS ? end - j0 : TC_GEMV_COLS;
        memset(buf, 0, sizeof buf);
        for (int64_t k = 0; k < g->K; k++) {
            float vk = g->v[k * g->incv];
            const float *x = g->X + k * g->ldx + j0;
            for (int64_t j = 0; j < w; j++) buf[j] += vk * x[j];
        }
        for (int64_t j = 0; j < w; j++) gemv_store(g, j0 + j, buf[j]);
    }
}

static void gemv_run(const tc_gemv_plan *g, bool allow_parallel)
{
    int threads = allow_parallel ? tc_parallel_threads() : 1;
    if (threads > 1 && (double)g->n * (double)g->K >= TC_GEMM_PARALLEL_MACS / 4) {
        int64_t grain = g->dot ? 16 : TC_GEMV_COLS; /* small chunks are not worth a thread */
        tc_parallel_for(g->n, grain, gemv_range, (void *)g);
    } else {
        gemv_range((void *)g, 0, g->n);
    }
}

static void sgemv(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                  bool allow_parallel)
{
    tc_gemv_plan g = {.K = K, .alpha = alpha, .beta = beta, .out = C};
    if (M == 1) { /* C[0, j] = sum_k op(A)[0, k] op(B)[k, j] */
        g.n = N;
        g.incout = 1;
        g.v = A;
        g.incv = ta ? lda : 1;
        g.X = B;
        g.ldx = ldb;
        g.dot = tb;
    } else { /* N == 1: C[i, 0] = sum_k op(A)[i, k] op(B)[k, 0] */
        g.n = M;
        g.incout = ldc;
        g.v = B;
        g.incv = tb ? 1 : ldb;
        g.X = A;
        g.ldx = lda;
        g.dot = !ta;
    }
    gemv_run(&g, allow_parallel);
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) {
            memset(c, 0, (size_t)N * sizeof(float));
        } else if (beta != 1.0f) {
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
        }
    }
}

static void check_args(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                       int64_t ldb, int64_t ldc)
{
    TC_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M > 0 && K > 0) TC_ASSERT(lda >= (ta ? M : K));
    if (N > 0 && K > 0) TC_ASSERT(ldb >= (tb ? K : N));
    if (M > 0 && N > 0) TC_ASSERT(ldc >= N);
}

static void sgemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc, bool allow_parallel)
{
    check_args(ta, tb, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    if (M == 1 || N == 1) {
        sgemv(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, allow_parallel);
        return;
    }
    tc_gemm_plan g = {
        .kr = &g_kernels[tc_gemm_get_isa()],
        .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc,
    };
    g.kcb = K < g.kr->kc ? K : g.kr->kc;
    int threads = allow_parallel ? tc_parallel_threads() : 1;
    if ((double)M * (double)N * (double)K < TC_GEMM_PARALLEL_MACS) threads = 1;
    plan_split(&g, threads);
    int64_t jobs = g.nm * g.nn;
    if (threads == 1) {
        run_jobs(&g, 0, jobs);
    } else {
        tc_parallel_for(jobs, 1, run_jobs, &g);
    }
}

void tc_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc)
{
    sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, true);
}

typedef struct tc_batch_ctx {
    bool ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc, sa, sb, sc;
} tc_batch_ctx;

static void run_batch(void *ctx, int64_t begin, int64_t end)
{
    const tc_batch_ctx *b = ctx;
    for (int64_t i = begin; i < end; i++) {
        sgemm_impl(b->ta, b->tb, b->M, b->N, b->K, b->alpha, b->A + i * b->sa, b->lda,
                   b->B + i * b->sb, b->ldb, b->beta, b->C + i * b->sc, b->ldc, false);
    }
}

void tc_sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                      int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                      int64_t stride_c)
{
    TC_ASSERT(batch >= 0);
    if (batch == 0) return;
    tc_batch_ctx b = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C,
                      lda, ldb, ldc, stride_a, stride_b, stride_c};
    double macs = (double)M * (double)N * (double)K;
    int threads = tc_parallel_threads();
    /* Whole products per thread when each is small or there are plenty of them; otherwise each
     * product splits its own tiles. Either way every element sees the same arithmetic. */
    if (stride_c != 0 && batch > 1 && threads > 1 &&
        (macs < TC_GEMM_PARALLEL_MACS || batch >= 4 * threads) &&
        macs * (double)batch >= TC_GEMM_PARALLEL_MACS) {
        tc_parallel_for(batch, 1, run_batch, &b);
        return;
    }
    for (int64_t i = 0; i < batch; i++) {
        sgemm_impl(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
                   beta, C + i * stride_c, ldc, true);
    }
}

void tc_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double *A, int64_t lda, const double *B, int64_t ldb, double beta, double *C,
              int64_t ldc)
{
    check_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
    for (int64_t i = 0; i < M; i++) {
        double *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            if (alpha != 0.0) {
                for (int64_t p = 0; p < K; p++) {
                    double a = trans_a ? A[p * lda + i] : A[i * lda + p];
                    double bv = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                    s += a * bv;
                }
            }
            c[j] = beta == 0.0 ? alpha * s : alpha * s + beta * c[j];
        }
    }
}
