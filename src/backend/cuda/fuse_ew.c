/* Generated kernels for chains of elementwise ops (on unless TENSORC_CUDA_NVRTC=0): the lowering groups a
 * chain of float elementwise nodes whose intermediate values nothing else reads into one step; here
 * each step becomes a CUDA C kernel, all of an engine's in one program compiled by NVRTC for the
 * engine's GPU at its first run (or taken from the cubin stored in its engine file), loaded with
 * cudaLibraryLoadData and launched on the context's stream.
 *
 * The generated code needs no header: f16 and bf16 travel as 16-bit words converted with the PTX
 * cvt instructions that cuda_fp16.h and cuda_bf16.h use. Each op computes in f32 with the formula
 * of its own kernel (kernels/activation.cu, kernels/elementwise.cu) and rounds its result to the
 * tensor dtype, so a chain gives what its nodes give one by one. */
#include "backend/cuda/exec_internal.h"
#include "core/dtype.h"
#include "engine/serialize.h"

#include <cuda_runtime_api.h>
#include <nvrtc.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- which nodes fuse ----------------------------------------------------------------------- */

static bool ew_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16; }

bool tc_cuda_ew_node_ok(const tc_node *n) {
    switch (n->op) {
    case TC_OP_RELU: case TC_OP_HARDTANH: case TC_OP_SIGMOID: case TC_OP_LEAKY_RELU: case TC_OP_ELU:
    case TC_OP_SILU: case TC_OP_HARDSWISH: case TC_OP_HARDSIGMOID: case TC_OP_ABS: case TC_OP_NEG:
    case TC_OP_EXP: case TC_OP_LOG: case TC_OP_SQRT: case TC_OP_RSQRT: case TC_OP_RECIPROCAL: case TC_OP_SIN:
    case TC_OP_COS: case TC_OP_TANH: case TC_OP_ERF: case TC_OP_ADD_TENSOR: case TC_OP_SUB_TENSOR:
    case TC_OP_MUL_TENSOR: case TC_OP_DIV_TENSOR: case TC_OP_MAXIMUM: case TC_OP_MINIMUM: case TC_OP_ADD_SCALAR:
    case TC_OP_SUB_SCALAR: case TC_OP_MUL_SCALAR: case TC_OP_DIV_SCALAR: break;
    case TC_OP_GELU: {
        const char *a = tc_node_str(n, 1);
        if (a && strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0) return false;
        break;
    }
    default: return false;
    }
    if (n->n_outputs != 1 || !ew_dtype(n->outputs[0]->dtype)) return false;
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] && n->inputs[k]->dtype != n->outputs[0]->dtype) return false;
    /* scalars are baked into the source: a symbolic one would change with the input sizes */
    for (int i = 0; i < n->n_args; i++) {
        const tc_arg *a = tc_node_arg_at(n, i);
        if (a->kind == TC_ARG_INT && TC_DIM_IS_SYM(a->u.i)) return false;
    }
    return true;
}

bool tc_cuda_ew_classify(const tc_value *v, const tc_value *out, tc_cuda_ew_operand *o) {
    memset(o, 0, sizeof *o);
    o->value = v->id;
    int r = out->rank, off = out->rank - v->rank;
    if (off < 0) return false;
    int a = -1, b = -1;
    for (int d = 0; d < r; d++) {
        tc_dim vd = d >= off ? v->dims[d - off] : 1;
        if (vd == 1) continue;
        if (vd != out->dims[d]) return false; /* a broadcast this kernel does not index */
        if (a < 0) a = d;
        b = d;
    }
    /* the dims kept must form one block: [.., 1, C, 1, 1] or [.., H, W] but not [C, 1, W] */
    for (int d = a; a >= 0 && d <= b; d++) {
        tc_dim vd = d >= off ? v->dims[d - off] : 1;
        if (vd == 1 && out->dims[d] != 1) return false;
    }
    o->first = a, o->last = b;
    o->full = v->rank == out->rank;
    for (int d = 0; o->full && d < r; d++) o->full = v->dims[d] == out->dims[d];
    return true;
}

/* ---- code generation ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q, b->cap = cap;
    }
}

/* The f32 constant c exactly, whatever its value (also infinities and NaN). */
static const char *fconst(float c, char *buf) {
    uint32_t u;
    memcpy(&u, &c, 4);
    snprintf(buf, 32, "__int_as_float(0x%08x)", (unsigned)u);
    return buf;
}

/* f16/bf16 rounding of a scalar operand the way the host glue rounds it (elementwise.c). */
static float round_to(float v, tc_dtype t) {
    if (t == TC_F16) return tc_f16_to_f32(tc_f32_to_f16(v));
    if (t == TC_BF16) return tc_bf16_to_f32(tc_f32_to_bf16(v));
    return v;
}

static const char *PRELUDE =
    "/* generated by tensorc: chains of elementwise ops, one kernel per chain */\n"
    "typedef unsigned short tc_u16;\n"
    "static __device__ __forceinline__ float tc_ld(const float *p, long long i) { return p[i]; }\n"
    "static __device__ __forceinline__ float tc_ldh(const tc_u16 *p, long long i) {\n"
    "    float f; asm(\"{ cvt.f32.f16 %0, %1; }\" : \"=f\"(f) : \"h\"(p[i])); return f; }\n"
    "static __device__ __forceinline__ float tc_ldb(const tc_u16 *p, long long i) {\n"
    "    return __uint_as_float(((unsigned)p[i]) << 16); }\n"
    "static __device__ __forceinline__ tc_u16 tc_f2h(float f) {\n"
    "    tc_u16 h; asm(\"{ cvt.rn.f16.f32 %0, %1; }\" : \"=h\"(h) : \"f\"(f)); return h; }\n"
    "static __device__ __forceinline__ tc_u16 tc_f2b(float f) {\n"
    "    tc_u16 h; asm(\"{ cvt.rn.bf16.f32 %0, %1; }\" : \"=h\"(h) : \"f\"(f)); return h; }\n"
    "static __device__ __forceinline__ float tc_rh(float f) {\n"
    "    float r; tc_u16 h = tc_f2h(f); asm(\"{ cvt.f32.f16 %0, %1; }\" : \"=f\"(r) : \"h\"(h)); return r; }\n"
    "static __device__ __forceinline__ float tc_rb(float f) { return __uint_as_float(((unsigned)tc_f2b(f)) << 16); }\n"
    "/* f32: an add that is never merged into a multiply-add, so that no product of one node fuses\n"
    " * with an addition of the next (each node's kernel rounds its result on its own) */\n"
    "static __device__ __forceinline__ float tc_rf(float f) { return __fadd_rn(f, -0.0f); }\n"
    "static __device__ __forceinline__ float tc_max(float a, float b) { return (a != a || a > b) ? a : b; }\n"
    "static __device__ __forceinline__ float tc_min(float a, float b) { return (a != a || a < b) ? a : b; }\n";

/* The expression of operand k of node m as kernel code: the chain's previous value, or an input. */
static void operand_expr(const tc_cuda_ew_step *es, const tc_node *m, const tc_value *v, int step_k, char *out,
                         size_t n) {
    (void)m;
    if (step_k > 0 && v && v->id == es->chain[step_k - 1]) {
        snprintf(out, n, "t%d", step_k - 1);
        return;
    }
    for (int j = 0; v && j < es->n_in; j++)
        if (es->in[j].value == v->id) {
            snprintf(out, n, "v%d", j);
            return;
        }
    snprintf(out, n, "0.0f /* missing operand */");
}

/* Appends node m's value as an f32 expression of its operands; false for an op the generator
 * does not know (the lowering never groups one). */
static bool node_expr(sbuf *b, const tc_cuda_ew_step *es, const tc_node *m, int k) {
    char x[64], y[64], c0[32], c1[32], c2[32];
    tc_dtype t = m->outputs[0]->dtype;
    operand_expr(es, m, tc_node_tensor(m, 0), k, x, sizeof x);
    switch (m->op) {
    case TC_OP_RELU: put(b, "(%s < 0.0f ? 0.0f : %s)", x, x); return true;
    case TC_OP_HARDTANH:
        fconst((float)tc_node_float(m, 1), c0), fconst((float)tc_node_float(m, 2), c1);
        put(b, "(%s != %s ? %s : %s < %s ? %s : %s > %s ? %s : %s)", x, x, x, x, c0, c0, x, c1, c1, x);
        return true;
    case TC_OP_SIGMOID: put(b, "(1.0f / (1.0f + expf(-%s)))", x); return true;
    case TC_OP_GELU: {
        const char *a = tc_node_str(m, 1);
        if (a && strcmp(a, "tanh") == 0) {
            fconst((float)0.7978845608028654, c0), fconst((float)0.044715, c1);
            put(b, "(0.5f * %s * (1.0f + tanhf(%s * (%s + %s * %s * %s * %s))))", x, c0, x, c1, x, x, x);
        } else {
            fconst((float)0.70710678118654752440, c0);
            put(b, "(0.5f * %s * (1.0f + erff(%s * %s)))", x, x, c0);
        }
        return true;
    }
    case TC_OP_LEAKY_RELU:
        put(b, "(%s > 0.0f ? %s : %s * %s)", x, x, x, fconst((float)tc_node_float(m, 1), c0));
        return true;
    case TC_OP_ELU:
        fconst((float)tc_node_float(m, 1), c0), fconst((float)tc_node_float(m, 2), c1);
        fconst((float)tc_node_float(m, 3), c2);
        put(b, "(%s <= 0.0f ? expm1f(%s * %s) * %s * %s : %s * %s)", x, x, c2, c0, c1, x, c1);
        return true;
    case TC_OP_SILU: put(b, "(%s / (1.0f + expf(-%s)))", x, x); return true;
    case TC_OP_ABS: put(b, "fabsf(%s)", x); return true;
    case TC_OP_NEG: put(b, "(-%s)", x); return true;
    case TC_OP_EXP: put(b, "expf(%s)", x); return true;
    case TC_OP_LOG: put(b, "logf(%s)", x); return true;
    case TC_OP_SQRT: put(b, "sqrtf(%s)", x); return true;
    case TC_OP_RSQRT: put(b, "(1.0f / sqrtf(%s))", x); return true;
    case TC_OP_RECIPROCAL: put(b, "(1.0f / %s)", x); return true;
    case TC_OP_SIN: put(b, "sinf(%s)", x); return true;
    case TC_OP_COS: put(b, "cosf(%s)", x); return true;
    case TC_OP_TANH: put(b, "tanhf(%s)", x); return true;
    case TC_OP_ERF: put(b, "erff(%s)", x); return true;
    default: break;
    }
    /* binary: self op other (Tensor), or self op scalar */
    bool scalar = m->op == TC_OP_ADD_SCALAR || m->op == TC_OP_SUB_SCALAR || m->op == TC_OP_MUL_SCALAR ||
                  m->op == TC_OP_DIV_SCALAR;
    if (scalar) {
        /* add/sub round the scalar to the tensor dtype; mul/div keep it in f32 (elementwise.c) */
        float s = (float)tc_node_float(m, 1);
        if (m->op == TC_OP_ADD_SCALAR || m->op == TC_OP_SUB_SCALAR) s = round_to(s, t);
        fconst(s, c1);
        snprintf(y, sizeof y, "%s", c1);
    } else {
        operand_expr(es, m, tc_node_tensor(m, 1), k, y, sizeof y);
    }
    switch (m->op) {
    case TC_OP_ADD_TENSOR: case TC_OP_ADD_SCALAR: case TC_OP_SUB_TENSOR: case TC_OP_SUB_SCALAR: {
        float alpha = round_to((float)tc_node_float(m, 2), t);
        bool add = m->op == TC_OP_ADD_TENSOR || m->op == TC_OP_ADD_SCALAR;
        put(b, "%s(%s, __fmul_rn(%s, %s))", add ? "__fadd_rn" : "__fsub_rn", x, fconst(alpha, c0), y);
        return true;
    }
    case TC_OP_MUL_TENSOR: case TC_OP_MUL_SCALAR: put(b, "__fmul_rn(%s, %s)", x, y); return true;
    case TC_OP_DIV_TENSOR: case TC_OP_DIV_SCALAR: put(b, "(%s / %s)", x, y); return true;
    case TC_OP_MAXIMUM: put(b, "tc_max(%s, %s)", x, y); return true;
    case TC_OP_MINIMUM: put(b, "tc_min(%s, %s)", x, y); return true;
    default: return false;
    }
}

tc_status tc_cuda_ew_source(const tc_cuda_engine *e, char **src, size_t *len, tc_error *err) {
    *src = NULL;
    *len = 0;
    sbuf b = {0};
    put(&b, "%s", PRELUDE);
    for (int si = 0; si < e->n_steps; si++) {
        const tc_cuda_step *s = &e->steps[si];
        if (s->kind != TC_CUDA_STEP_EW) continue;
        const tc_cuda_ew_step *es = &e->ew[s->ew];
        const char *st = es->dtype == TC_F32 ? "float" : "tc_u16";
        const char *ld = es->dtype == TC_F32 ? "tc_ld" : es->dtype == TC_F16 ? "tc_ldh" : "tc_ldb";
        const char *rnd = es->dtype == TC_F32 ? "tc_rf" : es->dtype == TC_F16 ? "tc_rh" : "tc_rb";
        const char *cvt = es->dtype == TC_F32 ? "" : es->dtype == TC_F16 ? "tc_f2h" : "tc_f2b";
        put(&b, "\nextern \"C\" __global__ void tc_ew_%d(long long n, %s *__restrict__ out", s->ew, st);
        for (int j = 0; j < es->n_in; j++)
            put(&b, ", const %s *__restrict__ in%d, long long inner%d, long long size%d", st, j, j, j);
        put(&b, ")\n{\n    const long long step = (long long)gridDim.x * blockDim.x;\n");
        put(&b, "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {\n");
        for (int j = 0; j < es->n_in; j++) {
            if (es->in[j].full) put(&b, "        const float v%d = %s(in%d, i);\n", j, ld, j);
            else put(&b, "        const float v%d = %s(in%d, (i / inner%d) %% size%d);\n", j, ld, j, j, j);
        }
        for (int k = 0; k < es->n_nodes; k++) {
            const tc_node *m = e->g->nodes.items[e->step_nodes[s->first + k]];
            put(&b, "        const float t%d = %s(", k, rnd);
            if (m->op == TC_OP_HARDSWISH || m->op == TC_OP_HARDSIGMOID) {
                /* r = clamp(v + 3, 0, 6) as activation.cu computes it; NaN passes */
                char x[64];
                operand_expr(es, m, tc_node_tensor(m, 0), k, x, sizeof x);
                put(&b, "(%s != %s) ? %s : ", x, x, x);
                if (m->op == TC_OP_HARDSWISH)
                    put(&b, "%s * ((%s + 3.0f) < 0.0f ? 0.0f : (%s + 3.0f) > 6.0f ? 6.0f : (%s + 3.0f)) / 6.0f", x, x,
                        x, x);
                else
                    put(&b, "((%s + 3.0f) < 0.0f ? 0.0f : (%s + 3.0f) > 6.0f ? 6.0f : (%s + 3.0f)) / 6.0f", x, x, x);
            } else if (!node_expr(&b, es, m, k)) {
                free(b.p);
                return tc_errorf(err, TC_ERR_INTERNAL, "no generated code for %s", m->op_name);
            }
            put(&b, ");\n");
        }
        put(&b, "        out[i] = %s(t%d);\n    }\n}\n", cvt, es->n_nodes - 1);
    }
    if (b.oom) {
        free(b.p);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory generating kernels");
    }
    *src = b.p;
    *len = b.n;
    return TC_OK;
}

/* ---- NVRTC ---------------------------------------------------------------------------------- */

tc_status tc_cuda_nvrtc_compile(const char *src, int cc_major, int cc_minor, void **cubin, size_t *size,
                                tc_error *err) {
    *cubin = NULL;
    *size = 0;
    nvrtcProgram prog;
    nvrtcResult r = nvrtcCreateProgram(&prog, src, "tensorc_ew.cu", 0, NULL, NULL);
    if (r != NVRTC_SUCCESS) return tc_errorf(err, TC_ERR_CUDA, "NVRTC: creating the program failed: %s", nvrtcGetErrorString(r));
    char arch[40];
    snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", cc_major, cc_minor);
    /* TENSORC_CUDA_NVRTC_OPTIONS: more options, space-separated (e.g. -lineinfo for profiling) */
    const char *opts[16] = {arch, "--std=c++17"};
    int nopt = 2;
    char extra[512] = "";
    const char *env = getenv("TENSORC_CUDA_NVRTC_OPTIONS");
    if (env) snprintf(extra, sizeof extra, "%s", env);
    for (char *tok = strtok(extra, " "); tok && nopt < 16; tok = strtok(NULL, " ")) opts[nopt++] = tok;
    r = nvrtcCompileProgram(prog, nopt, opts);
    tc_status st = TC_OK;
    if (r != NVRTC_SUCCESS) {
        size_t n = 0;
        char log[1024] = "";
        if (nvrtcGetProgramLogSize(prog, &n) == NVRTC_SUCCESS && n > 1) {
            char *full = malloc(n);
            if (full && nvrtcGetProgramLog(prog, full) == NVRTC_SUCCESS) snprintf(log, sizeof log, "%s", full);
            free(full);
        }
        st = tc_errorf(err, TC_ERR_CUDA, "NVRTC could not compile the generated kernels for %s (%s): %s", arch + 19,
                       nvrtcGetErrorString(r), log);
    }
    size_t n = 0;
    if (st == TC_OK && (r = nvrtcGetCUBINSize(prog, &n)) != NVRTC_SUCCESS)
        st = tc_errorf(err, TC_ERR_CUDA, "NVRTC: no cubin: %s", nvrtcGetErrorString(r));
    void *bin = st == TC_OK ? malloc(n ? n : 1) : NULL;
    if (st == TC_OK && !bin) st = tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory for a cubin");
    if (st == TC_OK && (r = nvrtcGetCUBIN(prog, bin)) != NVRTC_SUCCESS)
        st = tc_errorf(err, TC_ERR_CUDA, "NVRTC: reading the cubin failed: %s", nvrtcGetErrorString(r));
    nvrtcDestroyProgram(&prog);
    if (st != TC_OK) {
        free(bin);
        return st;
    }
    *cubin = bin;
    *size = n;
    return TC_OK;
}

/* ---- loading and running -------------------------------------------------------------------- */

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Compiles (or takes from the engine's table) and loads the engine's kernels, once per engine. */
static tc_status ew_load(tc_cuda_engine *e, tc_error *err) {
    pthread_mutex_lock(&e->ew_lock);
    tc_status st = TC_OK;
    if (atomic_load_explicit(&e->ew_loaded, memory_order_acquire)) goto done;
    char *src = NULL;
    size_t len = 0;
    st = tc_cuda_ew_source(e, &src, &len, err);
    if (st != TC_OK) goto done;
    /* key: the source and the target, so a stored cubin is only used for the same code and GPU */
    int64_t key[3] = {0x6e767274 /* "nvrt" */, (int64_t)fnv(src, len, 1469598103934665603ull),
                      e->props.cc_major * 100 + e->props.cc_minor};
    size_t bin_len = 0;
    void *bin = tc_cuda_choice_find_engine(e, TC_RECORD_NVRTC_CUBIN, key, sizeof key, &bin_len, -1);
    cudaLibrary_t lib = NULL;
    if (bin && cudaLibraryLoadData(&lib, bin, NULL, NULL, 0, NULL, NULL, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        lib = NULL; /* a damaged or foreign cubin: compile again */
    }
    for (int i = 0; lib && i < e->n_ew; i++) { /* a stored cubin must hold every kernel */
        char name[32];
        snprintf(name, sizeof name, "tc_ew_%d", i);
        if (cudaLibraryGetKernel(&e->ew[i].kernel, lib, name) != cudaSuccess) {
            (void)cudaGetLastError();
            (void)cudaLibraryUnload(lib);
            lib = NULL;
        }
    }
    /* (the table's lock nests inside ew_lock, never the other way round) */
    if (bin && !lib) tc_cuda_choice_drop_engine(e, TC_RECORD_NVRTC_CUBIN, key, sizeof key);
    if (!lib) {
        free(bin);
        bin = NULL;
        st = tc_cuda_nvrtc_compile(src, e->props.cc_major, e->props.cc_minor, &bin, &bin_len, err);
        if (st == TC_OK && cudaLibraryLoadData(&lib, bin, NULL, NULL, 0, NULL, NULL, 0) != cudaSuccess) {
            cudaError_t ce = cudaGetLastError();
            st = tc_errorf(err, TC_ERR_CUDA, "loading the generated kernels failed: %s (%s)", cudaGetErrorName(ce),
                           cudaGetErrorString(ce));
        }
        if (st == TC_OK) {
            int first = -1;
            for (int si = 0; si < e->n_steps && first < 0; si++)
                if (e->steps[si].kind == TC_CUDA_STEP_EW) first = e->steps[si].node;
            tc_cuda_choice_store_engine(e, TC_RECORD_NVRTC_CUBIN, key, sizeof key, "nvrtc generated kernels", bin, bin_len, true,
                                        first < 0 ? 0 : first);
        }
    }
    free(bin);
    free(src);
    for (int i = 0; st == TC_OK && i < e->n_ew; i++) {
        char name[32];
        snprintf(name, sizeof name, "tc_ew_%d", i);
        if (cudaLibraryGetKernel(&e->ew[i].kernel, lib, name) != cudaSuccess) {
            cudaError_t ce = cudaGetLastError();
            st = tc_errorf(err, TC_ERR_CUDA, "the generated kernel %s is missing: %s", name, cudaGetErrorString(ce));
        }
    }
    if (st == TC_OK) {
        e->ew_lib = lib;
    } else {
        if (lib) (void)cudaLibraryUnload(lib);
        /* the chains run node by node from now on; say so once */
        fprintf(stderr, "tensorc: the generated elementwise kernels are not used (%s); their chains run node by "
                        "node\n", err->msg);
        e->ew_failed = true;
        st = TC_OK;
    }
    atomic_store_explicit(&e->ew_loaded, true, memory_order_release);
done:
    pthread_mutex_unlock(&e->ew_lock);
    return st;
}

/* The chain's nodes one by one with their own kernels, intermediates in scratch slots 2 and 3
 * (elementwise and activation kernels use no scratch of their own): when the generated kernels
 * could not be compiled or loaded. */
static tc_status run_nodes(tc_cuda_exec *x, const tc_cuda_step *s, tc_error *err) {
    const tc_graph *g = x->g;
    const tc_node *last = g->nodes.items[s->last];
    const tc_cuda_tensor *y = &x->vals[last->outputs[0]->id];
    size_t bytes = (size_t)y->numel * tc_dtype_size(y->dtype);
    tc_status st = TC_OK;
    for (int k = 0; st == TC_OK && k < s->count; k++) {
        tc_node *m = g->nodes.items[x->e->step_nodes[s->first + k]];
        tc_cuda_tensor *out = &x->vals[m->outputs[0]->id];
        tc_cuda_call call = {g, m, x->in_ptrs, x->out_ptrs, x->symvals, x, x->stream, err, NULL};
        if (k + 1 < s->count) {
            out->data = tc_cuda_scratch(&call, 2 + k % 2, bytes ? bytes : 1);
            if (!out->data) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "no scratch memory for a chain value");
        }
        for (int i = 0; i < m->n_inputs; i++) x->in_ptrs[i] = m->inputs[i] ? &x->vals[m->inputs[i]->id] : NULL;
        x->out_ptrs[0] = out;
        st = tc_cuda_kernel_for(m->op)(&call);
    }
    for (int k = 0; k + 1 < s->count; k++) { /* no memory of their own outside this step */
        const tc_node *m = g->nodes.items[x->e->step_nodes[s->first + k]];
        x->vals[m->outputs[0]->id].data = NULL;
    }
    return st;
}

void tc_cuda_ew_unload(tc_cuda_engine *e) {
    if (e->ew_lib) (void)cudaLibraryUnload(e->ew_lib);
    e->ew_lib = NULL;
    atomic_store_explicit(&e->ew_loaded, false, memory_order_relaxed);
}

tc_status tc_cuda_ew_run(tc_cuda_exec *x, const tc_cuda_step *s, tc_error *err) {
    tc_cuda_engine *e = x->e;
    if (!atomic_load_explicit(&e->ew_loaded, memory_order_acquire)) {
        if (x->mode != TC_CUDA_MODE_EAGER)
            return tc_errorf(err, TC_ERR_INTERNAL, "the generated kernels were not loaded before graph capture");
        TC_TRY(ew_load(e, err));
    }
    if (e->ew_failed) return run_nodes(x, s, err);
    const tc_cuda_ew_step *es = &e->ew[s->ew];
    const tc_node *last = x->g->nodes.items[s->last];
    const tc_cuda_tensor *y = &x->vals[last->outputs[0]->id];
    long long n = (long long)y->numel;
    if (n == 0) return TC_OK;
    /* kernel arguments: n, out, then per input its pointer, inner and size */
    void *ptrs[TC_CUDA_EW_MAX_IN];
    long long inner[TC_CUDA_EW_MAX_IN], size[TC_CUDA_EW_MAX_IN];
    void *args[2 + 3 * TC_CUDA_EW_MAX_IN];
    void *out = y->data;
    int na = 0;
    args[na++] = &n;
    args[na++] = &out;
    for (int j = 0; j < es->n_in; j++) {
        const tc_cuda_ew_operand *o = &es->in[j];
        const tc_cuda_tensor *t = &x->vals[o->value];
        ptrs[j] = t->data;
        inner[j] = 1, size[j] = 1;
        if (o->first >= 0) {
            for (int d = o->first; d <= o->last; d++) size[j] *= y->dims[d];
            for (int d = o->last + 1; d < y->rank; d++) inner[j] *= y->dims[d];
        }
        if (size[j] < 1) size[j] = 1;
        args[na++] = &ptrs[j];
        args[na++] = &inner[j];
        args[na++] = &size[j];
    }
    long long blocks = (n + 255) / 256;
    if (blocks > 8192) blocks = 8192;
    dim3 grid = {(unsigned)blocks, 1, 1}, block = {256, 1, 1};
    cudaError_t ce = cudaLaunchKernel((const void *)es->kernel, grid, block, args, 0, x->stream);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return tc_errorf(err, TC_ERR_CUDA, "launching the generated kernel tc_ew_%d failed: %s (%s)", s->ew,
                         cudaGetErrorName(ce), cudaGetErrorString(ce));
    }
    return TC_OK;
}
