/* cuda_impl.h - private to the CUDA backend (kernels/cuda.cu, kernels/cuda_kernels.cu).
 *
 * C++ (nvcc) only. The public C headers are included inside extern "C" so that the backend's
 * entry points and the error facility keep C linkage; the system and CUDA headers come first so
 * that their C++ overloads are not declared with C linkage. */
#ifndef CH_CUDA_IMPL_H
#define CH_CUDA_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "err.h"
#include "backend.h"
}

typedef struct {
    int device;
    cudaStream_t stream;      /* every kernel, copy and cuBLAS call of this backend runs here */
    cublasHandle_t blas;
    void *scratch;            /* GEMM operand B rounded to the weight's 16-bit type */
    size_t scratch_bytes;
    int sync_each;            /* CAPHEADS_CUDA_SYNC=1: synchronize after each launch (debugging) */
    int smem_optin;           /* largest dynamic shared memory a block may opt in to */
} ch_cuda;

static inline ch_cuda *cuda_of(ch_backend *be) { return (ch_cuda *)be->impl; }

/* Record CH_EDEVICE "file:line: call: error string" and return it. */
int ch_cuda_fail(cudaError_t e, const char *file, int line, const char *call);
int ch_cublas_fail(cublasStatus_t s, const char *file, int line, const char *call);

#define CH_CUDA(call)                                                                             \
    do {                                                                                          \
        cudaError_t ch_ce_ = (call);                                                              \
        if (ch_ce_ != cudaSuccess) return ch_cuda_fail(ch_ce_, __FILE__, __LINE__, #call);        \
    } while (0)
#define CH_CUBLAS(call)                                                                           \
    do {                                                                                          \
        cublasStatus_t ch_bs_ = (call);                                                           \
        if (ch_bs_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return ch_cublas_fail(ch_bs_, __FILE__, __LINE__, #call);                             \
    } while (0)
/* After a kernel launch: launch errors now, execution errors too when sync_each is set. */
#define CH_CUDA_LAUNCHED(ctx)                                                                     \
    do {                                                                                          \
        CH_CUDA(cudaGetLastError());                                                              \
        if ((ctx)->sync_each) CH_CUDA(cudaStreamSynchronize((ctx)->stream));                      \
    } while (0)

/* Kernels (kernels/cuda_kernels.cu): the table entries of backend.h, plus the B-operand rounding
 * used by the GEMM. */
int ch_cuda_round_to_16(ch_cuda *c, const float *src, size_t n, ch_dtype dt, void *dst);
int ch_cuda_embed(ch_backend *be, const ch_weight *table, const int32_t *ids, int ntok, float *x);
int ch_cuda_add_bias(ch_backend *be, float *y, const ch_weight *bias, int ntok, int n);
int ch_cuda_rmsnorm(ch_backend *be, const float *x, const ch_weight *w, int ntok, int d, float eps,
                    float *out);
int ch_cuda_rope(ch_backend *be, float *x, int ntok, int nheads, int head_dim, const int32_t *pos,
                 const float *inv_freq);
int ch_cuda_swiglu(ch_backend *be, float *gate, const float *up, size_t n);
int ch_cuda_geglu(ch_backend *be, float *gate, const float *up, size_t n);
int ch_cuda_scale(ch_backend *be, float *x, float s, size_t n);
int ch_cuda_add(ch_backend *be, float *x, const float *y, size_t n);
int ch_cuda_pool(ch_backend *be, const float *x, int width, const ch_seqs *s, ch_pool mode,
                 ch_dtype out_dtype, void *out);
int ch_cuda_attention(ch_backend *be, const float *q, const float *k, const float *v,
                      const ch_seqs *s, int nq, int nkv, int head_dim, const ch_attn_params *p, float *out);

#endif
