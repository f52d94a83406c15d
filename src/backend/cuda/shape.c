/* CUDA kernels for the shape ops: argument handling on the host; the device code is in kernels/shape.cu. */
#include "backend/cuda/cuda.h"

void tc_cuda_register_shape(tc_cuda_kernel *t) { (void)t; }
