/* probe_kernel_v3.c - the probes' hot loops built a second time, for AVX2+FMA (x86-64-v3): the
 * build compiles this file with -march=x86-64-v3 where the compiler is GCC on x86-64 and leaves
 * it out elsewhere. The code is src/probe_kernel.c's; its entry points pick this copy at run
 * time on CPUs that have those instructions. */
#define CH_PROBE_KERNEL_V3 1
#include "probe_kernel.c"
