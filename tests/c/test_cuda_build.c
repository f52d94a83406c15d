/* Checks that the CUDA backend is built and linked right: the libraries loaded at run time match
 * the headers compiled against, launchers reject bad arguments without a GPU, and, where a GPU is
 * present, the cast / add / mul / relu kernels agree with hand-worked values and a host reference. */
#include <stdio.h>

#ifndef TC_HAVE_CUDA

int main(void)
{
    printf("cuda backend not built: skipped\n0 passed, 0 failed\n");
    return 0;
}

#else

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels/kernels.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_version.h>
#include <nvrtc.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed;

static void check(int ok, const char *name, const char *detail)
{
    if (ok) {
        g_passed++;
        printf("ok   %s\n", name);
    } else {
        g_failed++;
        printf("FAIL %s%s%s\n", name, detail && *detail ? ": " : "", detail ? detail : "");
    }
}

/* ---- host reference conversions, written from the IEEE formats ---------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
static float ref_h2f(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    double v;
    if (exp == 31) v = man ? NAN : INFINITY;
    else if (exp == 0) v = ldexp(man, -24);
    else v = ldexp(1024 + man, exp - 25);
    return (float)(sign ? -v : v);
}

/* Round to nearest even by scaling into the integer grid of the target's spacing. */
static uint16_t ref_f2h(float f)
{
    uint16_t sign = (f32_bits(f) >> 16) & 0x8000;
    if (isnan(f)) return 0x7e00;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00; /* halfway between 65504 and 2^16 rounds up to inf */
    if (a < ldexp(1, -14)) {                  /* subnormal grid: multiples of 2^-24 */
        double q = nearbyint(ldexp(a, 24));   /* default rounding mode is to nearest even */
        return sign | (uint16_t)q;            /* q == 1024 becomes the smallest normal exactly */
    }
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    double q = nearbyint(ldexp(a, 11 - e)); /* 11 significant bits */
    if (q == 2048) {
        q = 1024;
        e++;
    }
    int exp = e - 1 + 15;
    if (exp >= 31) return sign | 0x7c00;
    return sign | (uint16_t)(exp << 10) | (uint16_t)((int)q - 1024);
}

static float ref_bf2f(uint16_t b) { return bits_f32((uint32_t)b << 16); }

static uint16_t ref_f2bf(float f)
{
    if (isnan(f)) return (uint16_t)((f32_bits(f) >> 16) | 0x40);
    uint32_t u = f32_bits(f);
    uint32_t hi = u >> 16, lo = u & 0xffff;
    if (lo > 0x8000 || (lo == 0x8000 && (hi & 1))) hi++;
    return (uint16_t)hi;
}

static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static int same_half_bits(uint16_t a, uint16_t b, int is_bf16)
{
    int a_nan = is_bf16 ? isnan(ref_bf2f(a)) : isnan(ref_h2f(a));
    int b_nan = is_bf16 ? isnan(ref_bf2f(b)) : isnan(ref_h2f(b));
    return (a_nan && b_nan) || a == b;
}

/* ---- checks that need no GPU -------------------------------------------------------------- */

static void check_versions(void)
{
    char buf[256], want[64], detail[512];
    tc_status st = tc_cuda_library_versions(buf, sizeof buf);
    snprintf(detail, sizeof detail, "status %d, \"%s\"", (int)st, st == TC_OK ? buf : "");
    check(st == TC_OK, "library versions are reported without a GPU", detail);
    if (st != TC_OK) return;
    printf("     %s\n", buf);

    snprintf(want, sizeof want, "cuDNN %d.%d.", CUDNN_MAJOR, CUDNN_MINOR);
    snprintf(detail, sizeof detail, "headers say %s, loaded: %s", want, buf);
    check(strstr(buf, want) != NULL, "loaded cuDNN matches cudnn_version.h", detail);

    snprintf(want, sizeof want, "cuBLASLt %d.%d.", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR);
    snprintf(detail, sizeof detail, "headers say %s, loaded: %s", want, buf);
    check(strstr(buf, want) != NULL, "loaded cuBLASLt matches cublas_api.h", detail);

    snprintf(want, sizeof want, "cudart %d.%d,", CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10);
    snprintf(detail, sizeof detail, "headers say %s loaded: %s", want, buf);
    check(strstr(buf, want) != NULL, "loaded cudart matches cuda_runtime_api.h", detail);

    snprintf(want, sizeof want, "NVRTC %d.", CUDART_VERSION / 1000);
    snprintf(detail, sizeof detail, "want %s, loaded: %s", want, buf);
    check(strstr(buf, want) != NULL, "loaded NVRTC has the toolkit's major version", detail);

    char small[8];
    check(tc_cuda_library_versions(small, sizeof small) == TC_ERR_INVALID_ARGUMENT,
          "a too-small version buffer is reported", NULL);
    check(tc_cuda_library_versions(NULL, 10) == TC_ERR_INVALID_ARGUMENT,
          "a NULL version buffer is rejected", NULL);
}

/* NVRTC needs no GPU, but it loads libnvrtc-builtins at run time: this fails when the RPATH does
 * not reach a wheel's lib directory. */
static void check_nvrtc_compiles(void)
{
    const char *src = "extern \"C\" __global__ void scale(float *x, float a) { x[threadIdx.x] *= a; }";
    const char *opts[] = {"-arch=sm_90"};
    nvrtcProgram prog;
    char detail[512] = "";
    size_t cubin = 0;
    nvrtcResult r = nvrtcCreateProgram(&prog, src, "scale.cu", 0, NULL, NULL);
    if (r == NVRTC_SUCCESS) {
        r = nvrtcCompileProgram(prog, 1, opts);
        size_t log_size = 0;
        if (r != NVRTC_SUCCESS && nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS &&
            log_size < sizeof detail - 64) {
            int w = snprintf(detail, sizeof detail, "%s: ", nvrtcGetErrorString(r));
            nvrtcGetProgramLog(prog, detail + w);
        }
        if (r == NVRTC_SUCCESS) r = nvrtcGetCUBINSize(prog, &cubin);
        nvrtcDestroyProgram(&prog);
    }
    if (!detail[0]) snprintf(detail, sizeof detail, "%s", nvrtcGetErrorString(r));
    check(r == NVRTC_SUCCESS && cubin > 0, "NVRTC compiles a kernel to sm_90 CUBIN", detail);
}

/* Argument checks happen before any CUDA call, so these run on machines without a GPU. */
static void check_launcher_arguments(void)
{
    tc_error err;
    char fake[64]; /* host memory: never dereferenced, the calls must fail before launching */
    tc_error_clear(&err);
    check(tc_cuda_cast(fake, TC_I64, fake + 32, TC_F32, 4, NULL, &err) == TC_ERR_DTYPE &&
              strstr(err.msg, "not supported") != NULL,
          "cast from i64 is rejected with a message", err.msg);
    check(tc_cuda_cast(fake, TC_F32, fake + 32, TC_F16, -1, NULL, &err) == TC_ERR_INVALID_ARGUMENT,
          "cast with a negative count is rejected", err.msg);
    check(tc_cuda_cast(NULL, TC_F32, fake, TC_F16, 4, NULL, &err) == TC_ERR_INVALID_ARGUMENT,
          "cast from NULL is rejected", err.msg);
    check(tc_cuda_cast(fake, TC_F16, fake + 2, TC_F32, 4, NULL, &err) == TC_ERR_INVALID_ARGUMENT &&
              strstr(err.msg, "overlap") != NULL,
          "overlapping cast buffers are rejected", err.msg);
    check(tc_cuda_cast(NULL, TC_F32, NULL, TC_BF16, 0, NULL, &err) == TC_OK,
          "an empty cast is a no-op", err.msg);
    check(tc_cuda_add(fake, NULL, fake, TC_F32, 4, NULL, &err) == TC_ERR_INVALID_ARGUMENT,
          "add with a NULL input is rejected", err.msg);
    check(tc_cuda_mul(fake, fake, fake, TC_I32, 4, NULL, &err) == TC_ERR_DTYPE,
          "mul of i32 is rejected", err.msg);
    check(tc_cuda_add(fake, fake, fake + 4, TC_F32, 4, NULL, &err) == TC_ERR_INVALID_ARGUMENT,
          "add into a partially overlapping output is rejected", err.msg);
    check(tc_cuda_relu(fake, fake, TC_F64, 4, NULL, &err) == TC_ERR_DTYPE, "relu of f64 is rejected",
          err.msg);
}

/* ---- GPU checks --------------------------------------------------------------------------- */

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) return NULL;
    return p;
}

/* Runs one cast on the GPU over n values; returns 0 on a CUDA failure (reported). */
static int gpu_cast(const void *host_in, tc_dtype in_t, size_t in_sz, void *host_out, tc_dtype out_t,
                    size_t out_sz, int64_t n, int misalign, const char *name)
{
    tc_error err;
    tc_error_clear(&err);
    /* misalign shifts both buffers by one element so that the scalar path runs. */
    char *din = dev_alloc((size_t)(n + 1) * in_sz), *dout = dev_alloc((size_t)(n + 1) * out_sz);
    int ok = din && dout;
    if (ok) ok = cudaMemcpy(din + misalign * in_sz, host_in, (size_t)n * in_sz, cudaMemcpyHostToDevice) == cudaSuccess;
    if (ok) ok = tc_cuda_cast(din + misalign * in_sz, in_t, dout + misalign * out_sz, out_t, n, NULL, &err) == TC_OK;
    if (ok) ok = cudaDeviceSynchronize() == cudaSuccess;
    if (ok) ok = cudaMemcpy(host_out, dout + misalign * out_sz, (size_t)n * out_sz, cudaMemcpyDeviceToHost) == cudaSuccess;
    if (!ok) check(0, name, err.msg[0] ? err.msg : cudaGetErrorString(cudaGetLastError()));
    cudaFree(din);
    cudaFree(dout);
    return ok;
}

static void check_cast_hand_values(void)
{
    /* Hand-worked: 1/3 in f32 is 0x3EAAAAAB; as f16 0x3555 (0.333251953125), as bf16 0x3EAB.
     * 0.1f is 0x3DCCCCCD: f16 0x2E66, bf16 0x3DCD. 2^-24 is the smallest f16 subnormal 0x0001;
     * 2^-26 rounds to 0. 65504 is the largest f16; 65520 is halfway to 2^16 and rounds to inf. */
    const float in[] = {1.0f, -2.0f, 1.0f / 3.0f, 0.1f, 5.9604644775390625e-08f, 1.4901161193847656e-08f,
                        65504.0f, 65520.0f, -0.0f, INFINITY};
    const uint16_t want_h[] = {0x3c00, 0xc000, 0x3555, 0x2e66, 0x0001, 0x0000, 0x7bff, 0x7c00, 0x8000, 0x7c00};
    const uint16_t want_bf[] = {0x3f80, 0xc000, 0x3eab, 0x3dcd, 0x3380, 0x3280, 0x4780, 0x4780, 0x8000, 0x7f80};
    enum { N = sizeof in / sizeof in[0] };
    uint16_t h[N], bf[N];
    char detail[128];
    if (!gpu_cast(in, TC_F32, 4, h, TC_F16, 2, N, 0, "cast f32->f16 runs")) return;
    for (int i = 0; i < N; i++) {
        snprintf(detail, sizeof detail, "in %g: got 0x%04x, want 0x%04x", in[i], h[i], want_h[i]);
        check(h[i] == want_h[i], "cast f32->f16 hand value", detail);
    }
    if (!gpu_cast(in, TC_F32, 4, bf, TC_BF16, 2, N, 0, "cast f32->bf16 runs")) return;
    for (int i = 0; i < N; i++) {
        snprintf(detail, sizeof detail, "in %g: got 0x%04x, want 0x%04x", in[i], bf[i], want_bf[i]);
        check(bf[i] == want_bf[i], "cast f32->bf16 hand value", detail);
    }
    /* f16 0x3555 = 0.333251953125 = f32 0x3EAAA000, which rounds up to bf16 0x3EAB; bf16 1.0 is f16 1.0. */
    uint16_t h_in[2] = {0x3555, 0x0001}, bf_out[2], bf_in[2] = {0x3f80, 0xc040}, h_out[2];
    if (gpu_cast(h_in, TC_F16, 2, bf_out, TC_BF16, 2, 2, 0, "cast f16->bf16 runs")) {
        snprintf(detail, sizeof detail, "got 0x%04x 0x%04x, want 0x3eab 0x3380", bf_out[0], bf_out[1]);
        check(bf_out[0] == 0x3eab && bf_out[1] == 0x3380, "cast f16->bf16 hand values", detail);
    }
    if (gpu_cast(bf_in, TC_BF16, 2, h_out, TC_F16, 2, 2, 0, "cast bf16->f16 runs")) {
        snprintf(detail, sizeof detail, "got 0x%04x 0x%04x, want 0x3c00 0xc200", h_out[0], h_out[1]);
        check(h_out[0] == 0x3c00 && h_out[1] == 0xc200, "cast bf16->f16 hand values (1, -3)", detail);
    }
}

static uint32_t g_rng = 12345;
static float rnd(void)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return ((float)(g_rng >> 8) / 16777216.0f) * 8.0f - 4.0f;
}

/* Every pair among f32/f16/bf16 over an odd-sized buffer (vector body plus tail), aligned and
 * misaligned, against the host reference. */
static void check_cast_random(void)
{
    const int64_t n = 100003;
    float *f = malloc(n * 4), *f_out = malloc(n * 4);
    uint16_t *h = malloc(n * 2), *b = malloc(n * 2), *o = malloc(n * 2);
    if (!f || !f_out || !h || !b || !o) {
        check(0, "cast random: host allocation", NULL);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        f[i] = rnd() * (i % 7 == 0 ? 10000.0f : 1.0f);
        h[i] = ref_f2h(f[i]);
        b[i] = ref_f2bf(f[i]);
    }
    f[5] = NAN;
    h[5] = 0x7e00;
    b[5] = 0x7fc0;
    for (int mis = 0; mis <= 1; mis++) {
        char name[96], detail[160];
        int64_t bad;
#define CAST_CASE(label, in, it, isz, out, ot, osz, want_expr, cmp)                                          \
    snprintf(name, sizeof name, "cast %s over %lld values%s", label, (long long)n, mis ? " (misaligned)" : ""); \
    if (gpu_cast(in, it, isz, out, ot, osz, n, mis, name)) {                                                 \
        bad = -1;                                                                                            \
        for (int64_t i = 0; i < n && bad < 0; i++)                                                           \
            if (!(cmp)) bad = i;                                                                             \
        snprintf(detail, sizeof detail, "first mismatch at %lld", (long long)bad);                         \
        check(bad < 0, name, detail);                                                                        \
    }
        CAST_CASE("f32->f16", f, TC_F32, 4, o, TC_F16, 2, ref_f2h(f[i]), same_half_bits(o[i], ref_f2h(f[i]), 0));
        CAST_CASE("f32->bf16", f, TC_F32, 4, o, TC_BF16, 2, ref_f2bf(f[i]), same_half_bits(o[i], ref_f2bf(f[i]), 1));
        CAST_CASE("f16->f32", h, TC_F16, 2, f_out, TC_F32, 4, ref_h2f(h[i]), same_float(f_out[i], ref_h2f(h[i])));
        CAST_CASE("bf16->f32", b, TC_BF16, 2, f_out, TC_F32, 4, ref_bf2f(b[i]), same_float(f_out[i], ref_bf2f(b[i])));
        CAST_CASE("f16->bf16", h, TC_F16, 2, o, TC_BF16, 2, 0, same_half_bits(o[i], ref_f2bf(ref_h2f(h[i])), 1));
        CAST_CASE("bf16->f16", b, TC_BF16, 2, o, TC_F16, 2, 0, same_half_bits(o[i], ref_f2h(ref_bf2f(b[i])), 0));
#undef CAST_CASE
    }
done:
    free(f);
    free(f_out);
    free(h);
    free(b);
    free(o);
}

enum { OP_ADD, OP_MUL, OP_RELU };

static float ref_op(int op, float a, float b)
{
    volatile float r; /* keep the host from fusing or widening */
    if (op == OP_ADD) r = a + b;
    else if (op == OP_MUL) r = a * b;
    else r = a < 0.0f ? 0.0f : a;
    return r;
}

/* Element type size and conversions for the three dtypes, on raw bytes. */
static float load_as_f32(const void *p, tc_dtype t, int64_t i)
{
    if (t == TC_F32) return ((const float *)p)[i];
    uint16_t v = ((const uint16_t *)p)[i];
    return t == TC_F16 ? ref_h2f(v) : ref_bf2f(v);
}

static int matches(const void *got, tc_dtype t, int64_t i, float want)
{
    if (t == TC_F32) return same_float(((const float *)got)[i], want);
    uint16_t g = ((const uint16_t *)got)[i];
    return same_half_bits(g, t == TC_F16 ? ref_f2h(want) : ref_f2bf(want), t == TC_BF16);
}

static void check_elementwise(int op, tc_dtype t, int in_place)
{
    static const char *op_names[] = {"add", "mul", "relu"};
    const char *tn = t == TC_F32 ? "f32" : t == TC_F16 ? "f16" : "bf16";
    const int64_t n = 65539;
    const size_t sz = t == TC_F32 ? 4 : 2;
    char name[96], detail[160];
    snprintf(name, sizeof name, "%s %s over %lld values%s", op_names[op], tn, (long long)n,
             in_place ? " in place" : "");
    unsigned char *a = malloc(n * sz), *b = malloc(n * sz), *out = malloc(n * sz);
    char *da = dev_alloc(n * sz), *db = dev_alloc(n * sz), *dout = in_place ? da : dev_alloc(n * sz);
    tc_error err;
    tc_error_clear(&err);
    int ok = a && b && out && da && db && dout;
    if (ok) {
        for (int64_t i = 0; i < n; i++) {
            float x = rnd(), y = rnd();
            if (t == TC_F32) {
                ((float *)a)[i] = x;
                ((float *)b)[i] = y;
            } else {
                ((uint16_t *)a)[i] = t == TC_F16 ? ref_f2h(x) : ref_f2bf(x);
                ((uint16_t *)b)[i] = t == TC_F16 ? ref_f2h(y) : ref_f2bf(y);
            }
        }
        ok = cudaMemcpy(da, a, n * sz, cudaMemcpyHostToDevice) == cudaSuccess &&
             cudaMemcpy(db, b, n * sz, cudaMemcpyHostToDevice) == cudaSuccess;
    }
    tc_status st = TC_OK;
    if (ok) {
        if (op == OP_ADD) st = tc_cuda_add(da, db, dout, t, n, NULL, &err);
        else if (op == OP_MUL) st = tc_cuda_mul(da, db, dout, t, n, NULL, &err);
        else st = tc_cuda_relu(da, dout, t, n, NULL, &err);
        ok = st == TC_OK && cudaDeviceSynchronize() == cudaSuccess &&
             cudaMemcpy(out, dout, n * sz, cudaMemcpyDeviceToHost) == cudaSuccess;
    }
    if (!ok) {
        check(0, name, err.msg[0] ? err.msg : "allocation or copy failed");
    } else {
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            float want = ref_op(op, load_as_f32(a, t, i), load_as_f32(b, t, i));
            if (!matches(out, t, i, want)) bad = i;
        }
        snprintf(detail, sizeof detail, "first mismatch at %lld", (long long)bad);
        check(bad < 0, name, detail);
    }
    free(a);
    free(b);
    free(out);
    cudaFree(da);
    cudaFree(db);
    if (!in_place) cudaFree(dout);
}

static void check_device_info(int count)
{
    tc_error err;
    tc_error_clear(&err);
    tc_cuda_device_props p;
    tc_status st = tc_cuda_device_info(0, &p, &err);
    check(st == TC_OK && p.name[0] && p.sm_count > 0 && p.total_memory > 0 && p.cc_major >= 3,
          "device 0 reports name, compute capability, SMs and memory", err.msg);
    if (st == TC_OK)
        printf("     device 0: %s, cc %d.%d, %d SMs, %.1f GiB, L2 %zu KiB, driver %d, runtime %d\n", p.name,
               p.cc_major, p.cc_minor, p.sm_count, p.total_memory / 1073741824.0, p.l2_cache_bytes / 1024,
               p.driver_version, p.runtime_version);
    check(tc_cuda_device_info(count, &p, &err) == TC_ERR_INVALID_ARGUMENT, "a device index past the end is rejected",
          err.msg);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    check_versions();
    check_nvrtc_compiles();
    check_launcher_arguments();

    int count = 0;
    tc_error err;
    tc_error_clear(&err);
    tc_status st = tc_cuda_device_count(&count, &err);
    if (st != TC_OK || count == 0) {
        check(st == TC_ERR_CUDA && count == 0 && err.msg[0] != '\0',
              "no GPU is reported as TC_ERR_CUDA with a message", err.msg);
        printf("SKIP: no CUDA device (%s)\n", err.msg[0] ? err.msg : "0 devices");
        printf("%d passed, %d failed\n", g_passed, g_failed);
        return g_failed ? 1 : 0;
    }

    check_device_info(count);
    check_cast_hand_values();
    check_cast_random();
    const tc_dtype types[] = {TC_F32, TC_F16, TC_BF16};
    for (int ti = 0; ti < 3; ti++)
        for (int op = OP_ADD; op <= OP_RELU; op++) check_elementwise(op, types[ti], 0);
    check_elementwise(OP_ADD, TC_BF16, 1);
    check_elementwise(OP_RELU, TC_F16, 1);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}

#endif
