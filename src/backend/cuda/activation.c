/* CUDA kernels for the activation ops: argument handling on the host; the device code is in kernels/activation.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_activation(tc_cuda_kernel *t) { (void)t; }
