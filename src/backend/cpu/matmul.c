/* CPU kernels for the matmul ops. */
#include "backend/cpu/cpu.h"

void tc_cpu_register_matmul(tc_cpu_kernel *t) { (void)t; }
