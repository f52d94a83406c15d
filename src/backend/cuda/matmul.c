/* CUDA kernels for the matmul ops: argument handling on the host; the device code is in kernels/matmul.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_matmul(tc_cuda_kernel *t) { (void)t; }
