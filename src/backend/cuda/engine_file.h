/* The CUDA backend's side of engine files: the hooks (tc_engine_backend_hooks) that describe the
 * GPU and libraries an engine is built for, check that this process can run a loaded engine, and
 * name each step's implementation for `tensorc inspect`. Only in builds with TC_HAVE_CUDA. */
#ifndef TC_BACKEND_CUDA_ENGINE_FILE_H
#define TC_BACKEND_CUDA_ENGINE_FILE_H

#include "engine/serialize.h"

/* The hooks; serialize.c uses them for CUDA engines unless others were installed. */
const tc_engine_backend_hooks *tc_cuda_engine_file_hooks(void);
/* Installs them with tc_engine_set_backend_hooks (idempotent). */
void tc_cuda_register_engine_file_hooks(void);
/* The target facts of GPU `device` as this process sees it: name, compute capability, SM count and
 * the versions of the CUDA runtime, driver, cuDNN, cuBLASLt and NVRTC it loaded. */
tc_status tc_cuda_target_of_device(int device, tc_engine_target *t, tc_error *err);

#endif
