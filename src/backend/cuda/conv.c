/* CUDA kernels for the conv ops: argument handling on the host; the device code is in kernels/conv.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_conv(tc_cuda_kernel *t) { (void)t; }
