/* Tests for the CPU GEMM, the thread pool and im2col/col2im: tc_sgemm/tc_dgemm against a
 * double-precision triple loop, bit-identical results across thread counts, and convolution
 * through im2col (and transposed convolution through col2im) against direct loops. */
#include "backend/cpu/gemm.h"
#include "backend/cpu/im2col.h"
#include "core/parallel.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed;

static void check(int ok, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#include <stdarg.h>
static void check(int ok, const char *fmt, ...)
{
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(g_rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *rand_buf(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * GEMM against a double-precision reference
 */
typedef struct gemm_case {
    bool ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
} gemm_case;

/* Stored sizes, with leading dims padded by `pad` (odd pads catch ld/width mix-ups). */
static gemm_case make_case(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t pad,
                           float alpha, float beta)
{
    gemm_case c = {ta, tb, M, N, K, 0, 0, 0, alpha, beta};
    c.lda = (ta ? M : K) + pad;
    c.ldb = (tb ? K : N) + pad;
    c.ldc = N + pad;
    if (c.lda < 1) c.lda = 1;
    if (c.ldb < 1) c.ldb = 1;
    if (c.ldc < 1) c.ldc = 1;
    return c;
}

static int64_t a_elems(const gemm_case *c) { return (c->ta ? c->K : c->M) * c->lda; }
static int64_t b_elems(const gemm_case *c) { return (c->tb ? c->N : c->K) * c->ldb; }
static int64_t c_elems(const gemm_case *c) { return c->M * c->ldc; }

/* Runs one case through tc_sgemm and checks every element of C (and that padding columns of C
 * are untouched). C starts as c0, or as NaN when beta == 0. */
static void run_sgemm_case(const gemm_case *c, const char *tag)
{
    float *A = rand_buf(a_elems(c)), *B = rand_buf(b_elems(c)), *C0 = rand_buf(c_elems(c));
    float *C = malloc(sizeof(float) * (size_t)(c_elems(c) > 0 ? c_elems(c) : 1));
    for (int64_t i = 0; i < c_elems(c); i++) {
        if (c->beta == 0.0f && i % c->ldc < c->N) C0[i] = NAN;
        C[i] = C0[i];
    }
    tc_sgemm(c->ta, c->tb, c->M, c->N, c->K, c->alpha, A, c->lda, B, c->ldb, c->beta, C, c->ldc);

    double worst = 0.0;
    int bad_pad = 0;
    for (int64_t i = 0; i < c->M; i++) {
        for (int64_t j = 0; j < c->ldc; j++) {
            float got = C[i * c->ldc + j];
            if (j >= c->N) {
                if (memcmp(&got, &C0[i * c->ldc + j], sizeof got) != 0) bad_pad++;
                continue;
            }
            double s = 0.0, mag = 0.0;
            for (int64_t p = 0; p < c->K; p++) {
                double a = c->ta ? A[p * c->lda + i] : A[i * c->lda + p];
                double b = c->tb ? B[j * c->ldb + p] : B[p * c->ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double ref = (double)c->alpha * s, scale = fabs((double)c->alpha) * mag;
            if (c->beta != 0.0f) {
                ref += (double)c->beta * C0[i * c->ldc + j];
                scale += fabs((double)c->beta * C0[i * c->ldc + j]);
            }
            /* Worst-case float summation error grows like K * 2^-24; never ask for less than 1e-5. */
            double tol = fmax(1e-5, 1.2e-7 * (double)(c->K + 2)) * (scale + 1e-30);
            double err = fabs((double)got - ref);
            if (!(err <= tol)) {
                if (worst == 0.0)
                    fprintf(stderr, "  first bad element (%lld,%lld): got %.9g want %.9g\n",
                            (long long)i, (long long)j, got, ref);
                worst = isnan(err) ? INFINITY : fmax(worst, err / (scale + 1e-30));
            }
        }
    }
    check(worst == 0.0 && bad_pad == 0,
          "%s sgemm ta=%d tb=%d M=%lld N=%lld K=%lld lda=%lld ldb=%lld ldc=%lld alpha=%g beta=%g: "
          "worst scaled error %g, %d padding elements changed",
          tag, c->ta, c->tb, (long long)c->M, (long long)c->N, (long long)c->K, (long long)c->lda,
          (long long)c->ldb, (long long)c->ldc, c->alpha, c->beta, worst, bad_pad);
    free(A);
    free(B);
    free(C0);
    free(C);
}

static void test_sgemm_shapes(const char *tag)
{
    /* 0 and 1, around the micro-tiles (4x8, 6x16, 12x32) and K block (256), and big enough to
     * use several job tiles and threads. */
    static const int64_t shapes[][3] = {
        {0, 0, 0},   {0, 5, 3},    {5, 0, 3},     {4, 3, 0},     {1, 1, 1},     {1, 1, 7},
        {1, 7, 1},   {7, 1, 1},    {7, 7, 7},     {1, 33, 17},   {33, 1, 17},   {2, 3, 4},
        {5, 9, 13},  {6, 16, 8},   {12, 32, 16},  {13, 33, 5},   {11, 31, 257}, {25, 17, 256},
        {24, 48, 512}, {37, 65, 300}, {100, 129, 64}, {145, 97, 33}, {64, 3136 / 4, 72},
        {300, 257, 520}, {1, 1000, 513}, {513, 3, 129}, {1, 600, 40}, {700, 1, 33},
        {1, 2, 4000}, {2, 1, 4000},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}, {-2.0f, 1.0f}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int t = 0; t < 4; t++) {
            for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++) {
                int64_t pad = (int64_t)((s + t + k) % 3) * 3; /* 0, 3 or 6 */
                gemm_case c = make_case(t & 1, (t >> 1) & 1, shapes[s][0], shapes[s][1],
                                        shapes[s][2], pad, ab[k][0], ab[k][1]);
                run_sgemm_case(&c, tag);
            }
        }
    }
}

/* alpha == 0 must not read A or B (NaN there must not leak) and K == 0 must give beta * C. */
static void test_sgemm_alpha_zero_and_empty_k(void)
{
    float A[6], B[6], C[4] = {1, 2, 3, 4};
    for (int i = 0; i < 6; i++) A[i] = B[i] = NAN;
    tc_sgemm(false, false, 2, 2, 3, 0.0f, A, 3, B, 2, 2.0f, C, 2);
    check(C[0] == 2 && C[1] == 4 && C[2] == 6 && C[3] == 8, "alpha=0 gives beta*C: %g %g %g %g",
          C[0], C[1], C[2], C[3]);
    float D[4] = {NAN, NAN, NAN, NAN};
    tc_sgemm(true, true, 2, 2, 0, 1.0f, A, 2, B, 1, 0.0f, D, 2);
    check(D[0] == 0 && D[1] == 0 && D[2] == 0 && D[3] == 0, "K=0, beta=0 gives zeros");
}

/* A hand-worked product: [[1,2,3],[4,5,6]] @ [[1,0],[0,1],[1,1]] = [[4,5],[10,11]]. */
static void test_sgemm_hand_worked(void)
{
    const float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1};
    float C[4] = {100, 100, 100, 100};
    tc_sgemm(false, false, 2, 2, 3, 1.0f, A, 3, B, 2, 0.5f, C, 2);
    check(C[0] == 54 && C[1] == 55 && C[2] == 60 && C[3] == 61,
          "hand-worked 2x3x2 product with beta 0.5: %g %g %g %g", C[0], C[1], C[2], C[3]);
}

static void test_sgemm_batched(void)
{
    const int64_t batch = 5, M = 19, N = 23, K = 37;
    static const int64_t strides[][2] = {{M * K, K * N}, {0, K * N}, {M * K, 0}};
    for (size_t v = 0; v < 3; v++) {
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = (t >> 1) & 1;
            int64_t sa = strides[v][0], sb = strides[v][1], sc = M * N + 1;
            float *A = rand_buf(batch * M * K), *B = rand_buf(batch * K * N);
            float *C = rand_buf(batch * sc), *C0 = malloc(sizeof(float) * (size_t)(batch * sc));
            memcpy(C0, C, sizeof(float) * (size_t)(batch * sc));
            int64_t lda = ta ? M : K, ldb = tb ? K : N;
            tc_sgemm_batched(batch, ta, tb, M, N, K, 1.5f, A, lda, sa, B, ldb, sb, -0.25f, C, N,
                             sc);
            double worst = 0.0;
            for (int64_t b = 0; b < batch; b++) {
                const float *a = A + b * sa, *bb = B + b * sb;
                for (int64_t i = 0; i < M; i++) {
                    for (int64_t j = 0; j < N; j++) {
                        double s = 0.0, mag = 0.0;
                        for (int64_t p = 0; p < K; p++) {
                            double x = ta ? a[p * lda + i] : a[i * lda + p];
                            double y = tb ? bb[j * ldb + p] : bb[p * ldb + j];
                            s += x * y;
                            mag += fabs(x * y);
                        }
                        double c0 = C0[b * sc + i * N + j];
                        double ref = 1.5 * s - 0.25 * c0, scale = 1.5 * mag + 0.25 * fabs(c0);
                        worst = fmax(worst, fabs(C[b * sc + i * N + j] - ref) / scale);
                    }
                }
                /* the element between two outputs belongs to nobody and must stay */
                if (memcmp(&C[b * sc + M * N], &C0[b * sc + M * N], sizeof(float)) != 0)
                    worst = INFINITY;
            }
            check(worst <= 1e-5, "batched stride_a=%lld stride_b=%lld ta=%d tb=%d: scaled error %g",
                  (long long)sa, (long long)sb, ta, tb, worst);
            free(A);
            free(B);
            free(C);
            free(C0);
        }
    }
    /* stride_c == 0 runs the products in order into one C: C = 2*(2*C + AB) + AB = 4C + 3AB */
    float A[2] = {1, 2}, B[2] = {3, 4}, C[1] = {1};
    tc_sgemm_batched(2, false, false, 1, 1, 2, 1.0f, A, 2, 0, B, 1, 0, 2.0f, C, 1, 0);
    check(C[0] == 4 + 3 * 11, "batched with stride_c 0 accumulates in order: %g", C[0]);
}

/* The same product with 1, 2 and 3 threads must give the same bits. */
static void test_sgemm_thread_invariance(const char *tag)
{
    static const int64_t shapes[][3] = {{300, 257, 520}, {64, 784, 576}, {512, 49, 1000},
                                        {1000, 30, 300}, {7, 2000, 600}, {1, 3000, 700},
                                        {3000, 1, 700}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = (t >> 1) & 1;
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *A = rand_buf(M * K), *B = rand_buf(K * N), *C0 = rand_buf(M * N);
            float *C[3];
            for (int th = 0; th < 3; th++) {
                tc_parallel_set_threads(th + 1);
                C[th] = malloc(sizeof(float) * (size_t)(M * N));
                memcpy(C[th], C0, sizeof(float) * (size_t)(M * N));
                tc_sgemm(ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C[th], N);
            }
            bool same = memcmp(C[0], C[1], sizeof(float) * (size_t)(M * N)) == 0 &&
                        memcmp(C[0], C[2], sizeof(float) * (size_t)(M * N)) == 0;
            check(same, "%s sgemm M=%lld N=%lld K=%lld ta=%d tb=%d: bits differ between 1, 2 and 3 "
                  "threads", tag, (long long)M, (long long)N, (long long)K, ta, tb);
            for (int th = 0; th < 3; th++) free(C[th]);
            free(A);
            free(B);
            free(C0);
        }
    }
    /* batched, small products: the batch is split across threads */
    const int64_t batch = 64, M = 33, N = 40, K = 70;
    float *A = rand_buf(batch * M * K), *B = rand_buf(K * N), *C[2];
    for (int th = 0; th < 2; th++) {
        tc_parallel_set_threads(th + 1);
        C[th] = malloc(sizeof(float) * (size_t)(batch * M * N));
        tc_sgemm_batched(batch, false, false, M, N, K, 1.0f, A, K, M * K, B, N, 0, 0.0f, C[th], N,
                         M * N);
    }
    check(memcmp(C[0], C[1], sizeof(float) * (size_t)(batch * M * N)) == 0,
          "%s batched sgemm: bits differ between 1 and 2 threads", tag);
    free(A);
    free(B);
    free(C[0]);
    free(C[1]);
    tc_parallel_set_threads(0);
}

static void test_dgemm(void)
{
    const int64_t M = 9, N = 11, K = 13;
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = (t >> 1) & 1;
        int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
        double A[(13 + 1) * (11 + 2)], B[(13 + 2) * (11 + 2)], C[9 * 14], C0[9 * 14];
        for (size_t i = 0; i < sizeof A / sizeof A[0]; i++) A[i] = frand();
        for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) B[i] = frand();
        for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) C[i] = C0[i] = frand();
        tc_dgemm(ta, tb, M, N, K, 2.0, A, lda, B, ldb, -1.0, C, ldc);
        double worst = 0.0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                long double s = 0;
                for (int64_t p = 0; p < K; p++)
                    s += (long double)(ta ? A[p * lda + i] : A[i * lda + p]) *
                         (tb ? B[j * ldb + p] : B[p * ldb + j]);
                double ref = (double)(2 * s - C0[i * ldc + j]);
                worst = fmax(worst, fabs(C[i * ldc + j] - ref));
            }
        check(worst <= 1e-12, "dgemm ta=%d tb=%d: error %g", ta, tb, worst);
    }
    double C[2] = {NAN, NAN};
    const double A[2] = {1, 2}, B[2] = {3, 4};
    tc_dgemm(false, false, 1, 1, 2, 1.0, A, 2, B, 1, 0.0, C, 1);
    check(C[0] == 11.0, "dgemm beta=0 ignores NaN in C: %g", C[0]);
}

/* ---------------------------------------------------------------------------------------------
 * Thread pool
 */
typedef struct pool_ctx {
    int *hits;
    _Atomic int64_t min_len; /* shortest chunk seen */
} pool_ctx;

static void mark(void *ctx, int64_t b, int64_t e)
{
    pool_ctx *c = ctx;
    for (int64_t i = b; i < e; i++) c->hits[i]++;
    int64_t cur = atomic_load(&c->min_len);
    while (e - b < cur && !atomic_compare_exchange_weak(&c->min_len, &cur, e - b)) {
    }
}

static void nested_outer(void *ctx, int64_t b, int64_t e)
{
    int *hits = ctx;
    for (int64_t i = b; i < e; i++) {
        pool_ctx inner = {hits + i * 10, 1 << 30};
        tc_parallel_for(10, 1, mark, &inner); /* runs inline */
    }
}

static void test_parallel_for(void)
{
    for (int th = 1; th <= 3; th++) {
        tc_parallel_set_threads(th);
        check(tc_parallel_threads() == th, "set_threads(%d) reads back %d", th,
              tc_parallel_threads());
        static const int64_t ns[] = {1, 2, 3, 10, 1001};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int *hits = calloc((size_t)ns[k], sizeof(int));
            pool_ctx c = {hits, 1 << 30};
            tc_parallel_for(ns[k], 4, mark, &c);
            int ok = 1;
            for (int64_t i = 0; i < ns[k]; i++) ok &= hits[i] == 1;
            check(ok, "parallel_for n=%lld threads=%d covers each index once", (long long)ns[k],
                  th);
            int64_t min_len = atomic_load(&c.min_len);
            check(min_len >= (ns[k] < 4 ? ns[k] : 4),
                  "parallel_for n=%lld grain=4 threads=%d: a chunk of only %lld items",
                  (long long)ns[k], th, (long long)min_len);
            free(hits);
        }
        int *hits = calloc(50, sizeof(int));
        tc_parallel_for(5, 1, nested_outer, hits);
        int ok = 1;
        for (int i = 0; i < 50; i++) ok &= hits[i] == 1;
        check(ok, "nested parallel_for with %d threads covers each index once", th);
        free(hits);
    }
    tc_parallel_set_threads(0);
    check(tc_parallel_threads() >= 1, "set_threads(0) gives at least one thread");
}

/* ---------------------------------------------------------------------------------------------
 * im2col / col2im
 */
typedef struct conv_geom {
    int64_t C, H, W, KH, KW, ph, pw, sh, sw, dh, dw;
} conv_geom;

static int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil)
{
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

/* conv2d via im2col + a double matmul against the direct 7-deep loop. */
static void test_im2col_conv(const conv_geom *g)
{
    const int64_t OC = 3;
    int64_t OH = out_size(g->H, g->KH, g->ph, g->sh, g->dh);
    int64_t OW = out_size(g->W, g->KW, g->pw, g->sw, g->dw);
    int64_t rows = g->C * g->KH * g->KW, cols = OH * OW;
    float *img = rand_buf(g->C * g->H * g->W), *w = rand_buf(OC * rows);
    float *col = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) col[i] = NAN; /* every element must be written */
    tc_im2col_f32(img, g->C, g->H, g->W, g->KH, g->KW, g->ph, g->pw, g->sh, g->sw, g->dh, g->dw,
                  OH, OW, col);
    double worst = 0.0;
    for (int64_t oc = 0; oc < OC; oc++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double direct = 0.0, via = 0.0;
                for (int64_t c = 0; c < g->C; c++)
                    for (int64_t kh = 0; kh < g->KH; kh++)
                        for (int64_t kw = 0; kw < g->KW; kw++) {
                            int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                            int64_t iw = ow * g->sw - g->pw + kw * g->dw;
                            if (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W)
                                direct += (double)w[((oc * g->C + c) * g->KH + kh) * g->KW + kw] *
                                          img[(c * g->H + ih) * g->W + iw];
                        }
                for (int64_t r = 0; r < rows; r++)
                    via += (double)w[oc * rows + r] * col[r * cols + oh * OW + ow];
                double e = fabs(direct - via);
                worst = isnan(e) ? INFINITY : fmax(worst, e);
            }
    check(worst <= 1e-9,
          "im2col conv C=%lld H=%lld W=%lld K=%lldx%lld pad=%lld,%lld stride=%lld,%lld "
          "dil=%lld,%lld: error %g",
          (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->KH, (long long)g->KW,
          (long long)g->ph, (long long)g->pw, (long long)g->sh, (long long)g->sw,
          (long long)g->dh, (long long)g->dw, worst);
    free(img);
    free(w);
    free(col);
}

/* conv_transpose2d via GEMM + col2im against a direct scatter loop. Input x is [CI, OH, OW]
 * (the forward conv's output shape); output y is [C, H, W]; weights w are [CI, C, KH, KW]. */
static void test_col2im_conv_transpose(const conv_geom *g)
{
    const int64_t CI = 2;
    int64_t OH = out_size(g->H, g->KH, g->ph, g->sh, g->dh);
    int64_t OW = out_size(g->W, g->KW, g->pw, g->sw, g->dw);
    int64_t rows = g->C * g->KH * g->KW, cols = OH * OW, out_n = g->C * g->H * g->W;
    float *x = rand_buf(CI * cols), *w = rand_buf(CI * rows);
    float *col = malloc(sizeof(float) * (size_t)(rows * cols));
    float *y = malloc(sizeof(float) * (size_t)out_n);
    double *ref = calloc((size_t)out_n, sizeof(double));
    float bias = 0.25f;
    for (int64_t i = 0; i < out_n; i++) y[i] = bias; /* col2im accumulates onto this */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            double s = 0.0;
            for (int64_t ci = 0; ci < CI; ci++) s += (double)w[ci * rows + r] * x[ci * cols + j];
            col[r * cols + j] = (float)s;
        }
    tc_col2im_f32(col, g->C, g->H, g->W, g->KH, g->KW, g->ph, g->pw, g->sh, g->sw, g->dh, g->dw,
                  OH, OW, y);
    for (int64_t ci = 0; ci < CI; ci++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t c = 0; c < g->C; c++)
                    for (int64_t kh = 0; kh < g->KH; kh++)
                        for (int64_t kw = 0; kw < g->KW; kw++) {
                            int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                            int64_t iw = ow * g->sw - g->pw + kw * g->dw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            ref[(c * g->H + ih) * g->W + iw] +=
                                (double)x[(ci * OH + oh) * OW + ow] *
                                w[((ci * g->C + c) * g->KH + kh) * g->KW + kw];
                        }
    double worst = 0.0;
    for (int64_t i = 0; i < out_n; i++) {
        double e = fabs((double)y[i] - (ref[i] + bias));
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    check(worst <= 1e-5,
          "col2im conv_transpose C=%lld H=%lld W=%lld K=%lldx%lld pad=%lld,%lld stride=%lld,%lld "
          "dil=%lld,%lld: error %g",
          (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->KH, (long long)g->KW,
          (long long)g->ph, (long long)g->pw, (long long)g->sh, (long long)g->sw,
          (long long)g->dh, (long long)g->dw, worst);
    free(x);
    free(w);
    free(col);
    free(y);
    free(ref);
}

/* 1x3x3 image 1..9, 2x2 kernel of ones, no padding: outputs 12 16 24 28. col2im of all-ones
 * columns counts how many windows cover each pixel: 1 2 1 / 2 4 2 / 1 2 1. */
static void test_im2col_hand_worked(void)
{
    const float img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float col[16];
    tc_im2col_f32(img, 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, 2, 2, col);
    float out[4];
    for (int j = 0; j < 4; j++) out[j] = col[j] + col[4 + j] + col[8 + j] + col[12 + j];
    check(out[0] == 12 && out[1] == 16 && out[2] == 24 && out[3] == 28,
          "hand-worked 2x2 box filter: %g %g %g %g", out[0], out[1], out[2], out[3]);
    float ones[16], cover[9] = {0};
    for (int i = 0; i < 16; i++) ones[i] = 1.0f;
    tc_col2im_f32(ones, 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, 2, 2, cover);
    static const float want[9] = {1, 2, 1, 2, 4, 2, 1, 2, 1};
    check(memcmp(cover, want, sizeof want) == 0, "hand-worked col2im coverage counts");
}

int main(void)
{
    test_parallel_for();
    test_sgemm_hand_worked();
    test_sgemm_alpha_zero_and_empty_k();
    test_dgemm();
    for (int isa = TC_GEMM_ISA_GENERIC; isa < TC_GEMM_ISA_COUNT; isa++) {
        if (!tc_gemm_isa_supported((tc_gemm_isa)isa)) {
            printf("skipping the %s kernel: this CPU does not support it\n",
                   tc_gemm_isa_name((tc_gemm_isa)isa));
            continue;
        }
        tc_gemm_set_isa((tc_gemm_isa)isa);
        const char *tag = tc_gemm_isa_name((tc_gemm_isa)isa);
        tc_parallel_set_threads(2);
        test_sgemm_shapes(tag);
        test_sgemm_batched();
        test_sgemm_thread_invariance(tag);
    }
    tc_gemm_set_isa(TC_GEMM_ISA_AUTO);

    test_im2col_hand_worked();
    static const conv_geom geoms[] = {
        {2, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1},  /* same-padding 3x3 */
        {3, 7, 8, 3, 3, 0, 0, 2, 2, 1, 1},  /* stride 2 */
        {2, 9, 9, 3, 3, 2, 2, 1, 1, 2, 2},  /* dilation 2 */
        {1, 1, 10, 1, 3, 0, 1, 1, 2, 1, 1}, /* 1-D, stride 2 */
        {4, 4, 4, 1, 1, 0, 0, 1, 1, 1, 1},  /* 1x1 */
        {2, 3, 4, 2, 2, 3, 3, 1, 1, 1, 1},  /* padding wider than the kernel */
        {2, 11, 13, 3, 2, 1, 2, 3, 2, 2, 3}, /* unequal stride and dilation */
        {1, 7, 7, 7, 7, 3, 3, 2, 2, 1, 1},  /* ResNet stem shape, small */
    };
    for (size_t i = 0; i < sizeof geoms / sizeof geoms[0]; i++) {
        test_im2col_conv(&geoms[i]);
        test_col2im_conv_transpose(&geoms[i]);
    }

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed != 0;
}
