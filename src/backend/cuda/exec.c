/* The CUDA executor. Placeholder until the backend lands: every engine build fails clearly. */
#include "backend/cuda/cuda.h"

#include <stdlib.h>
#include <string.h>

static tc_cuda_kernel kernels[TC_OP_COUNT];

tc_cuda_kernel tc_cuda_kernel_for(int op) { return op >= 0 && op < TC_OP_COUNT ? kernels[op] : NULL; }

tc_status tc_cuda_check_graph(const tc_graph *g, tc_error *err) {
    (void)g;
    return tc_errorf(err, TC_ERR_UNSUPPORTED, "the CUDA backend cannot run graphs yet");
}
tc_status tc_cuda_engine_create(const tc_graph *g, const tc_build_options *opt, tc_cuda_engine **out, tc_error *err) {
    (void)g, (void)opt;
    *out = NULL;
    return tc_errorf(err, TC_ERR_UNSUPPORTED, "the CUDA backend cannot run graphs yet");
}
void tc_cuda_engine_free(tc_cuda_engine *e) { (void)e; }
tc_status tc_cuda_exec_create(tc_cuda_engine *e, tc_cuda_exec **out, tc_error *err) {
    (void)e;
    *out = NULL;
    return tc_errorf(err, TC_ERR_UNSUPPORTED, "the CUDA backend cannot run graphs yet");
}
void tc_cuda_exec_free(tc_cuda_exec *x) { (void)x; }
tc_status tc_cuda_exec_run(tc_cuda_exec *x, const tc_tensor *in, const tc_tensor *out, void *stream, tc_error *err) {
    (void)x, (void)in, (void)out, (void)stream;
    return tc_errorf(err, TC_ERR_UNSUPPORTED, "the CUDA backend cannot run graphs yet");
}
tc_status tc_cuda_exec_sync(tc_cuda_exec *x, void *stream, tc_error *err) {
    (void)x, (void)stream;
    return tc_errorf(err, TC_ERR_UNSUPPORTED, "the CUDA backend cannot run graphs yet");
}
void tc_cuda_exec_output(const tc_cuda_exec *x, int i, tc_tensor *out) {
    (void)x, (void)i;
    memset(out, 0, sizeof *out);
}
