/* CUDA kernels for the index ops: argument handling on the host; the device code is in kernels/index.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_index(tc_cuda_kernel *t) { (void)t; }
