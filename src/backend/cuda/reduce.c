/* CUDA kernels for the reduce ops: argument handling on the host; the device code is in kernels/reduce.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_reduce(tc_cuda_kernel *t) { (void)t; }
