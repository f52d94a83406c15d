/* CUDA kernels for the pool ops: argument handling on the host; the device code is in kernels/pool.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_pool(tc_cuda_kernel *t) { (void)t; }
