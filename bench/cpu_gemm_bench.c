/* Times tc_sgemm on square and ResNet-like shapes for each micro-kernel family and thread count.
 * Standalone, not built by CMake:
 *   gcc -std=c11 -O3 -Iinclude -Isrc bench/cpu_gemm_bench.c src/backend/cpu/gemm.c \
 *       src/core/parallel.c src/core/error.c -lpthread -o /tmp/cpu_gemm_bench && /tmp/cpu_gemm_bench */
#define _POSIX_C_SOURCE 200809L
#include "backend/cpu/gemm.h"
#include "backend/cpu/im2col.h"
#include "core/parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of several runs, each at least ~0.2 s, in GFLOP/s. */
static double bench(bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    float *A = malloc(sizeof(float) * (size_t)(M * K));
    float *B = malloc(sizeof(float) * (size_t)(K * N));
    float *C = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
    for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    tc_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
    double flops = 2.0 * (double)M * (double)N * (double)K, best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        int iters = 0;
        double t0 = now_s(), t;
        do {
            tc_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
            iters++;
            t = now_s() - t0;
        } while (t < 0.2);
        double g = flops * iters / t * 1e-9;
        if (g > best) best = g;
    }
    free(A);
    free(B);
    free(C);
    return best;
}

/* One conv of a batch-1 forward: im2col (skipped for 1x1 stride 1) then W[OC, C*k*k] @ col. */
static double conv_layer(int64_t C, int64_t OC, int64_t k, int64_t stride, int64_t H, float *img,
                         float *w, float *col, float *out, int64_t *oh_out)
{
    int64_t pad = k / 2, OH = (H + 2 * pad - k) / stride + 1;
    const float *b = img;
    if (k != 1 || stride != 1) {
        tc_im2col_f32(img, C, H, H, k, k, pad, pad, stride, stride, 1, 1, OH, OH, col);
        b = col;
    }
    tc_sgemm(false, false, OC, OH * OH, C * k * k, 1.0f, w, C * k * k, b, OH * OH, 0.0f, out,
             OH * OH);
    *oh_out = OH;
    return 2.0 * (double)OC * (double)(OH * OH) * (double)(C * k * k);
}

/* The convolutions and the classifier of a batch-1 ResNet-50 (224x224): the GEMM share of the
 * CPU backend's forward pass. Returns seconds per pass; *gflop gets the work. */
static double resnet50_pass(double *gflop)
{
    static float *img, *w, *col, *out;
    if (!img) {
        img = calloc(64 * 112 * 112 * 4, sizeof(float));   /* largest activation */
        w = calloc(2048 * 512 * 9, sizeof(float));         /* largest weight (and fc) */
        col = calloc(64 * 9 * 56 * 56 * 4, sizeof(float)); /* largest column matrix */
        out = calloc(64 * 112 * 112 * 4, sizeof(float));
        for (int64_t i = 0; i < 2048 * 512 * 9; i++) w[i] = (float)(i % 7) * 0.01f;
    }
    double flops = 0.0, t0 = now_s();
    int64_t H = 224, OH;
    flops += conv_layer(3, 64, 7, 2, H, img, w, col, out, &OH);
    H = OH / 2; /* max pool */
    int64_t in = 64;
    static const int64_t blocks[4] = {3, 4, 6, 3};
    for (int s = 0; s < 4; s++) {
        int64_t width = 64 << s;
        for (int64_t b = 0; b < blocks[s]; b++) {
            int64_t stride = (s > 0 && b == 0) ? 2 : 1, h2;
            flops += conv_layer(in, width, 1, 1, H, img, w, col, out, &OH);
            flops += conv_layer(width, width, 3, stride, H, img, w, col, out, &h2);
            flops += conv_layer(width, width * 4, 1, 1, h2, img, w, col, out, &OH);
            if (b == 0) flops += conv_layer(in, width * 4, 1, stride, H, img, w, col, out, &OH);
            in = width * 4;
            H = h2;
        }
    }
    tc_sgemm(false, true, 1, 1000, 2048, 1.0f, img, 2048, w, 2048, 0.0f, out, 1000);
    flops += 2.0 * 1000 * 2048;
    *gflop = flops * 1e-9;
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    static const struct { bool ta, tb; int64_t M, N, K; const char *what; } shapes[] = {
        {false, false, 512, 512, 512, "square 512"},
        {false, false, 1024, 1024, 1024, "square 1024"},
        {true, false, 1024, 1024, 1024, "square 1024 A^T"},
        {false, true, 1024, 1024, 1024, "square 1024 B^T"},
        {false, false, 64, 3136, 576, "resnet conv2_x 3x3"},
        {false, false, 256, 3136, 64, "resnet conv2_x 1x1 expand"},
        {false, false, 512, 49, 4608, "resnet conv5_x 3x3"},
        {false, true, 1, 1000, 2048, "resnet fc, batch 1"},
    };
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int isa = TC_GEMM_ISA_GENERIC; isa < TC_GEMM_ISA_COUNT; isa++) {
        if (!tc_gemm_isa_supported((tc_gemm_isa)isa)) continue;
        if (only && strcmp(only, tc_gemm_isa_name((tc_gemm_isa)isa)) != 0) continue;
        tc_gemm_set_isa((tc_gemm_isa)isa);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            tc_parallel_set_threads(1);
            double g1 = bench(shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K);
            tc_parallel_set_threads(2);
            double g2 = bench(shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K);
            printf("%-8s %-28s M=%-5lld N=%-5lld K=%-5lld  1 thread %7.1f GFLOP/s  2 threads %7.1f GFLOP/s\n",
                   tc_gemm_isa_name((tc_gemm_isa)isa), shapes[s].what, (long long)shapes[s].M,
                   (long long)shapes[s].N, (long long)shapes[s].K, g1, g2);
            fflush(stdout);
        }
        for (int th = 1; th <= 2; th++) {
            tc_parallel_set_threads(th);
            double gflop = 0.0, best = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                double t = resnet50_pass(&gflop);
                if (t < best) best = t;
            }
            printf("%-8s resnet-50 convs + fc, batch 1: %.2f GFLOP in %.1f ms with %d thread(s) "
                   "(%.1f GFLOP/s)\n",
                   tc_gemm_isa_name((tc_gemm_isa)isa), gflop, best * 1e3, th, gflop / best);
        }
    }
    return 0;
}
