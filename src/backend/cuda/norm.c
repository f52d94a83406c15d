/* CUDA kernels for the norm ops: argument handling on the host; the device code is in kernels/norm.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_norm(tc_cuda_kernel *t) { (void)t; }
