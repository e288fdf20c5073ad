/* cuda_stub.c - ch_backend_cuda_create when capheads is built without CUDA (no nvcc, or
 * -DCAPHEADS_CUDA=OFF): a clean CH_EUNSUPPORTED, so "auto" falls back to the CPU. */
#include "backend.h"
#include "err.h"

#ifndef CAPHEADS_HAVE_CUDA
int ch_backend_cuda_create(int device, ch_backend **out) {
    (void)device;
    *out = NULL;
    CH_FAIL(CH_EUNSUPPORTED, "CUDA backend unavailable: capheads was built without CUDA "
                             "(configure with nvcc present, or -DCAPHEADS_CUDA=ON)");
}
#else
typedef int ch_cuda_stub_unused; /* the real one is kernels/cuda.cu; ISO C wants a declaration */
#endif
