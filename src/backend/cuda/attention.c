/* CUDA kernels for the attention ops: argument handling on the host; the device code is in kernels/attention.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_attention(tc_cuda_kernel *t) { (void)t; }
