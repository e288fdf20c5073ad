/* cpu_ops_v4.c - the CPU backend's loops built a second time, for AVX-512 (x86-64-v4): the build
 * compiles this file with -march=x86-64-v4 where the compiler is GCC on x86-64 and leaves it out
 * elsewhere. The code is kernels/cpu_ops.c's; ch_cpu_ops_pick chooses this copy at run time on
 * CPUs (and kernels) that run those instructions. */
#define CH_CPU_OPS_V4 1
#include "cpu_ops.c"
