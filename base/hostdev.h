/* hostdev.h - CH_HD: one definition of a small function for the host and the device.
 *
 * Under a C compiler CH_HD is `static inline`; under nvcc it is `__host__ __device__`, so the
 * CPU code and the CUDA kernels call the same text and a CPU test covers both. CH_SIMD and its
 * reduction forms ask a C compiler to vectorize a row loop; nvcc ignores them. */
#ifndef CH_HOSTDEV_H
#define CH_HOSTDEV_H

#ifdef __CUDACC__
#define CH_HD __host__ __device__ __forceinline__
#define CH_SIMD
#define CH_SIMD_MAX(v)
#define CH_SIMD_SUM(v)
#else
#define CH_HD static inline
/* Loops over a row (the CPU's): vectorize, with a max / sum reduction in vector lanes */
#define CH_SIMD _Pragma("omp simd")
#define CH_PRAGMA_(x) _Pragma(#x)
#define CH_SIMD_MAX(v) CH_PRAGMA_(omp simd reduction(max : v))
#define CH_SIMD_SUM(v) CH_PRAGMA_(omp simd reduction(+ : v))
#endif

#endif
