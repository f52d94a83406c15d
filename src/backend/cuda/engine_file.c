/* The CUDA backend's engine-file hooks: the target section of a CUDA engine (GPU name, compute
 * capability, SM count, library versions), the load-time check that this process can run it (same
 * compute capability, same cuDNN and cuBLASLt major versions), and step descriptions for inspect. */
#include "backend/cuda/engine_file.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/records.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <nvrtc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "13.0" for 13000 (cudart, driver); "none" for 0 (no driver). */
static void cuda_version(int v, char *buf, size_t n) {
    if (v <= 0) snprintf(buf, n, "none");
    else snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* cuDNN 9 and cuBLASLt 12+ encode major * 10000 + minor * 100 + patch. */
static void lib_version(size_t v, char *buf, size_t n) {
    snprintf(buf, n, "%zu.%zu.%zu", v / 10000, (v / 100) % 100, v % 100);
}

tc_status tc_cuda_target_of_device(int device, tc_engine_target *t, tc_error *err) {
    tc_cuda_device_props p;
    TC_TRY(tc_cuda_device_info(device, &p, err));
    t->backend = TC_BACKEND_CUDA;
    snprintf(t->device_name, sizeof t->device_name, "%s", p.name);
    t->cc_major = p.cc_major;
    t->cc_minor = p.cc_minor;
    t->sm_count = p.sm_count;
    cuda_version(p.runtime_version, t->cuda_version, sizeof t->cuda_version);
    cuda_version(p.driver_version, t->driver_version, sizeof t->driver_version);
    lib_version(cudnnGetVersion(), t->cudnn_version, sizeof t->cudnn_version);
    lib_version(cublasLtGetVersion(), t->cublaslt_version, sizeof t->cublaslt_version);
    int major = 0, minor = 0;
    if (nvrtcVersion(&major, &minor) == NVRTC_SUCCESS) snprintf(t->nvrtc_version, sizeof t->nvrtc_version, "%d.%d", major, minor);
    else snprintf(t->nvrtc_version, sizeof t->nvrtc_version, "unknown");
    return TC_OK;
}

static tc_status describe_target(const tc_engine_t *e, tc_engine_target *t, tc_error *err) {
    const tc_build_options *o = tc_engine_options(e);
    return tc_cuda_target_of_device(o ? o->device : 0, t, err);
}

/* The major version at the start of "9.24.0"; -1 when the text does not start with a number (an
 * engine written without the facts), so that nothing is compared then. */
static long major_of(const char *v) {
    if (!v || v[0] < '0' || v[0] > '9') return -1;
    return strtol(v, NULL, 10);
}

/* A GPU of the same compute capability but another model (other SM count or name) is accepted:
 * a stored plan that this GPU or these library versions cannot make again is chosen anew at the
 * first run (records.c), at the cost of that run's time and of bit-identity with the building
 * process. A major version change of cuDNN or cuBLASLt is rejected. */
static tc_status check_target(const tc_engine_target *t, const tc_build_options *o, tc_error *err) {
    tc_engine_target here = {0};
    tc_error why = {0};
    int dev = o ? o->device : 0;
    tc_status st = tc_cuda_target_of_device(dev, &here, &why);
    if (st != TC_OK)
        return tc_errorf(err, st, "the engine was built for CUDA on %s (compute capability %d.%d), but it cannot run "
                         "on CUDA device %d here: %s", t->device_name, t->cc_major, t->cc_minor, dev, why.msg);
    if (here.cc_major != t->cc_major || here.cc_minor != t->cc_minor)
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "the engine was built for %s (compute capability %d.%d, %d SMs), but CUDA device %d is %s "
                         "(compute capability %d.%d, %d SMs)",
                         t->device_name, t->cc_major, t->cc_minor, t->sm_count, dev, here.device_name, here.cc_major,
                         here.cc_minor, here.sm_count);
    static const char *names[] = {"cuDNN", "cuBLASLt"};
    const char *built[] = {t->cudnn_version, t->cublaslt_version};
    const char *now[] = {here.cudnn_version, here.cublaslt_version};
    for (int i = 0; i < 2; i++) {
        long a = major_of(built[i]), b = major_of(now[i]);
        if (a >= 0 && b >= 0 && a != b)
            return tc_errorf(err, TC_ERR_VERSION,
                             "the engine was built with %s %s, but this process loaded %s %s (another major version)",
                             names[i], built[i], names[i], now[i]);
    }
    return TC_OK;
}

static const char *const cublaslt_ops[] = {"mm", "bmm", "addmm", "linear", NULL};

static bool is_library_dtype(tc_dtype t) { return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F64; }

/* What the CUDA kernels of src/backend/cuda pick for a step: cuBLASLt for float matrix products,
 * cuDNN for float convolutions, otherwise our own kernel of the op's family; with the stored
 * plan (the cuDNN engine and layout, the cuBLASLt algorithm) when the engine has one for it. */
static void describe_step(const tc_engine_t *e, int step, tc_step_desc *d) {
    const tc_graph *g = tc_engine_graph(e);
    const tc_build_options *o = tc_engine_options(e);
    if (!g || step < 0 || step >= g->nodes.n) return;
    const tc_node *n = g->nodes.items[step];
    char base[48];
    snprintf(base, sizeof base, "%s", n->op_name);
    char *dot = strchr(base, '.');
    if (dot) *dot = '\0';
    tc_dtype dt = n->n_outputs ? n->outputs[0]->dtype : TC_F32;
    const char *lib = NULL;
    for (int i = 0; cublaslt_ops[i]; i++)
        if (strcmp(base, cublaslt_ops[i]) == 0) lib = is_library_dtype(dt) ? "cublaslt" : "int-gemm";
    if (strcmp(base, "convolution") == 0) {
        const tc_value *x = tc_node_tensor(n, 0), *y = n->n_outputs ? n->outputs[0] : NULL;
        int64_t groups = tc_node_int(n, 8);
        bool known = x && y && x->rank >= 3 && y->rank >= 3 && !TC_DIM_IS_SYM(groups) &&
                     !TC_DIM_IS_SYM(x->dims[1]) && !TC_DIM_IS_SYM(y->dims[1]);
        struct tc_cuda_engine *cen = tc_engine_cuda(e);
        lib = known && tc_cuda_conv_runs_depthwise(cen ? tc_cuda_engine_depthwise(cen) : true, groups, x->dims[1],
                                                   y->dims[1], tc_node_bool(n, 6))
                  ? "depthwise kernel" : "cudnn";
    }
    char stored[64];
    struct tc_cuda_engine *ce = tc_engine_cuda(e);
    if (ce && tc_cuda_choice_describe(ce, step, stored, sizeof stored))
        snprintf(d->implementation, sizeof d->implementation, "cuda:%.58s", stored);
    else
        snprintf(d->implementation, sizeof d->implementation, "cuda:%s", lib ? lib : base);
    bool library = lib && (strcmp(lib, "cublaslt") == 0 || strcmp(lib, "cudnn") == 0);
    /* f32 products run on TF32 tensor cores unless the engine was built with --no-tf32 */
    if (library && dt == TC_F32 && o && !o->disable_tf32) snprintf(d->precision, sizeof d->precision, "tf32");
    if (library) {
        size_t cap = o && o->workspace_bytes ? o->workspace_bytes : TC_CUDA_DEFAULT_WORKSPACE;
        d->workspace_bytes = cap;
    }
}

static tc_status write_records(const tc_engine_t *e, tc_record_writer *w, tc_error *err) {
    struct tc_cuda_engine *ce = tc_engine_cuda(e);
    return ce ? tc_cuda_write_records(ce, w, err) : TC_OK;
}

static tc_status read_records(tc_engine_t *e, const tc_step_record *r, uint32_t n, tc_error *err) {
    struct tc_cuda_engine *ce = tc_engine_cuda(e);
    return ce ? tc_cuda_read_records(ce, r, n, false, err) : TC_OK;
}

static const tc_engine_backend_hooks hooks = {
    .describe_target = describe_target,
    .check_target = check_target,
    .write_backend_records = write_records,
    .read_backend_records = read_records,
    .describe_step = describe_step,
};

const tc_engine_backend_hooks *tc_cuda_engine_file_hooks(void) { return &hooks; }

void tc_cuda_register_engine_file_hooks(void) { tc_engine_set_backend_hooks(TC_BACKEND_CUDA, &hooks); }
