/* cuda.cu - the CUDA backend: device choice, memory, weights and the cuBLAS GEMM.
 *
 * Everything runs on one stream per backend, in order; upload/download/sync wait for it, so the
 * caller sees the same synchronous semantics as the CPU backend. download_async does not: it
 * queues a copy into page-locked host memory behind the kernels, and event_wait (a CUDA event
 * recorded on the stream) is where the host waits for it. Weights stay in their stored
 * dtype (bf16/f16/f32). The non-GEMM kernels live in cuda_kernels.cu. The device is made current
 * once, in create: use a backend from the thread that created it (the CUDA current device is
 * per thread). */
#include "cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>

static const char *base_name(const char *file) {
    const char *s = strrchr(file, '/');
    return s ? s + 1 : file;
}

int ch_cuda_fail(cudaError_t e, const char *file, int line, const char *call) {
    (void)cudaGetLastError(); /* clear a sticky-free error so the next call starts clean */
    return ch_err_set(CH_EDEVICE, file, line, "%s:%d: %s: %s (%s)", base_name(file), line, call,
                      cudaGetErrorString(e), cudaGetErrorName(e));
}

int ch_cublas_fail(cublasStatus_t s, const char *file, int line, const char *call) {
    return ch_err_set(CH_EDEVICE, file, line, "%s:%d: %s: %s", base_name(file), line, call,
                      cublasGetStatusString(s));
}

/* io/safetensors.c owns ch_dtype_name/size; a local name keeps the backend linkable on its own
 * (tests that use only backend.h). */
static const char *dt_name(ch_dtype dt) {
    static const char *n[] = {"F32", "F16", "BF16", "I32", "I64", "U8"};
    return (unsigned)dt < sizeof n / sizeof n[0] ? n[dt] : "unknown";
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* cudaMalloc with an out-of-memory message a user can act on. */
static int dev_malloc(ch_cuda *c, size_t bytes, void **p, int line) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        (void)cudaMemGetInfo(&fr, &tot);
        (void)cudaGetLastError();
        const double gib = 1024.0 * 1024.0 * 1024.0;
        return ch_err_set(CH_ENOMEM, __FILE__, line,
                          "cuda.cu:%d: cudaMalloc(%zu bytes = %.3f GiB) on GPU %d: out of GPU "
                          "memory (%.3f GiB free of %.3f GiB); lower --batch-tokens, or run "
                          "fewer ranks per GPU",
                          line, bytes, (double)bytes / gib, c->device, (double)fr / gib,
                          (double)tot / gib);
    }
    if (e != cudaSuccess) return ch_cuda_fail(e, __FILE__, line, "cudaMalloc");
    return 0;
}

static int cuda_alloc(ch_backend *be, size_t bytes, void **p) {
    return dev_malloc(cuda_of(be), bytes, p, __LINE__);
}

static void cuda_free(ch_backend *be, void *p) {
    (void)be;
    if (p) (void)cudaFree(p); /* a failing free has no useful recovery; teardown goes on */
}

static int cuda_upload(ch_backend *be, void *dst, const void *src, size_t bytes) {
    ch_cuda *c = cuda_of(be);
    if (!bytes) return 0;
    CH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CH_CUDA(cudaStreamSynchronize(c->stream)); /* src may be reused as soon as we return */
    return 0;
}

static int cuda_download(ch_backend *be, void *dst, const void *src, size_t bytes) {
    ch_cuda *c = cuda_of(be);
    if (!bytes) return 0;
    CH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CH_CUDA(cudaStreamSynchronize(c->stream));
    return 0;
}

static int cuda_sync(ch_backend *be) {
    CH_CUDA(cudaStreamSynchronize(cuda_of(be)->stream));
    return 0;
}

/* ---- asynchronous downloads into page-locked host memory ------------------------------------- */

struct ch_event {
    cudaEvent_t e;
};

static int cuda_host_alloc(ch_backend *be, size_t bytes, void **p) {
    *p = NULL;
    cudaError_t e = cudaHostAlloc(p, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        *p = NULL;
        return ch_err_set(CH_ENOMEM, __FILE__, __LINE__,
                          "cuda.cu:%d: cudaHostAlloc(%zu bytes = %.1f MiB): out of page-locked host "
                          "memory; lower --batch-tokens, or raise the locked-memory limit "
                          "(ulimit -l)",
                          __LINE__, bytes, (double)bytes / (1024.0 * 1024.0));
    }
    if (e != cudaSuccess) {
        *p = NULL;
        return ch_cuda_fail(e, __FILE__, __LINE__, "cudaHostAlloc");
    }
    return 0;
}

static void cuda_host_free(ch_backend *be, void *p) {
    (void)be;
    if (p) (void)cudaFreeHost(p); /* teardown goes on whatever it says */
}

static int cuda_download_async(ch_backend *be, void *dst, size_t dpitch, const void *src,
                               size_t spitch, size_t width, size_t rows) {
    ch_cuda *c = cuda_of(be);
    if (width > dpitch || width > spitch)
        CH_FAIL(CH_EARG, "download_async: row width %zu exceeds a pitch (%zu, %zu)", width, dpitch,
                spitch);
    if (!width || !rows) return 0;
    if (rows == 1)
        CH_CUDA(cudaMemcpyAsync(dst, src, width, cudaMemcpyDeviceToHost, c->stream));
    else
        CH_CUDA(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToHost,
                                  c->stream));
    return 0;
}

static int cuda_event_create(ch_backend *be, ch_event **ev) {
    (void)be;
    *ev = NULL;
    ch_event *x = NULL;
    CH_TRY(CH_ALLOC(x, 1, "CUDA event"));
    cudaError_t e = cudaEventCreateWithFlags(&x->e, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        free(x);
        return ch_cuda_fail(e, __FILE__, __LINE__, "cudaEventCreateWithFlags");
    }
    *ev = x;
    return 0;
}

static void cuda_event_destroy(ch_backend *be, ch_event *ev) {
    (void)be;
    if (!ev) return;
    (void)cudaEventDestroy(ev->e);
    free(ev);
}

static int cuda_event_record(ch_backend *be, ch_event *ev) {
    CH_CUDA(cudaEventRecord(ev->e, cuda_of(be)->stream));
    return 0;
}

static int cuda_event_wait(ch_backend *be, ch_event *ev) {
    (void)be;
    CH_CUDA(cudaEventSynchronize(ev->e));
    return 0;
}

static int cuda_mem_info(ch_backend *be, size_t *free_bytes, size_t *total_bytes) {
    (void)be;
    *free_bytes = *total_bytes = 0;
    CH_CUDA(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

/* ---- weights --------------------------------------------------------------------------------- */

/* CH_WEIGHT_LINEAR and CH_WEIGHT_ROWS keep the stored type (cuBLAS multiplies bf16 and f16, the
 * kernels read any of the three); CH_WEIGHT_F32 of a 16-bit tensor is widened on the host and
 * uploaded as f32 (--precision f32: f32 GEMMs throughout). */
static int cuda_load_weight(ch_backend *be, const ch_st_tensor *t, ch_weight_use use, ch_weight *w) {
    memset(w, 0, sizeof *w);
    if (t->dtype != CH_DT_F32 && t->dtype != CH_DT_F16 && t->dtype != CH_DT_BF16)
        CH_FAIL(CH_EUNSUPPORTED, "%s: tensor %s has dtype %s; the CUDA backend takes F32/F16/BF16",
                t->file ? t->file : "?", t->name ? t->name : "?", dt_name(t->dtype));
    if (t->ndim < 1 || t->ndim > 2)
        CH_FAIL(CH_EUNSUPPORTED, "%s: tensor %s has %d dimensions; weights have 1 or 2",
                t->file ? t->file : "?", t->name ? t->name : "?", t->ndim);
    w->rows = t->shape[0];
    w->cols = t->ndim == 2 ? t->shape[1] : 1;
    size_t n = (size_t)(w->rows * w->cols);
    if (n * (t->dtype == CH_DT_F32 ? 4u : 2u) != t->nbytes)
        CH_FAIL(CH_EINTERNAL, "%s: tensor %s: shape and byte size disagree",
                t->file ? t->file : "?", t->name ? t->name : "?");
    const void *src = t->data;
    float *wide = NULL;
    w->dtype = t->dtype;
    if (use == CH_WEIGHT_F32 && t->dtype != CH_DT_F32) {
        wide = (float *)malloc(n * sizeof(float));
        if (!wide) CH_FAIL(CH_ENOMEM, "loading %s: out of host memory widening it to f32", t->name ? t->name : "weight");
        const unsigned char *raw = (const unsigned char *)t->data; /* maybe only 2-byte aligned */
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            wide[i] = t->dtype == CH_DT_BF16 ? ch_bf16_to_f32(h) : ch_f16_to_f32(h);
        }
        src = wide;
        w->dtype = CH_DT_F32;
    }
    size_t bytes = n * (w->dtype == CH_DT_F32 ? 4u : 2u);
    int rc = dev_malloc(cuda_of(be), bytes, &w->data, __LINE__);
    if (!rc) rc = cuda_upload(be, w->data, src, bytes);
    free(wide);
    if (rc) {
        if (w->data) cuda_free(be, w->data);
        w->data = NULL;
        return ch_err_wrap("loading %s: ", t->name ? t->name : "weight");
    }
    return 0;
}

static void cuda_free_weight(ch_backend *be, ch_weight *w) {
    if (!w) return;
    cuda_free(be, w->data);
    w->data = NULL;
}

/* ---- GEMM ------------------------------------------------------------------------------------ */

/* The GEMM's 16-bit copy of B is grown with headroom: batch shapes vary a little. */
static size_t scratch_want(size_t bytes) { return bytes + bytes / 4; }

static size_t cuda_gemm_workspace(ch_backend *be, ch_dtype a_dtype, size_t b_elems) {
    (void)be;
    return a_dtype == CH_DT_BF16 || a_dtype == CH_DT_F16 ? scratch_want(b_elems * 2) : 0;
}

static int ensure_scratch(ch_cuda *c, size_t bytes) {
    if (bytes <= c->scratch_bytes) return 0;
    if (c->scratch) {
        CH_CUDA(cudaStreamSynchronize(c->stream)); /* a queued GEMM may still read it */
        CH_CUDA(cudaFree(c->scratch));
        c->scratch = NULL;
        c->scratch_bytes = 0;
    }
    size_t want = scratch_want(bytes);
    CH_TRY(dev_malloc(c, want, &c->scratch, __LINE__));
    c->scratch_bytes = want;
    return 0;
}

/* C = alpha op(A) op(B) + beta C, column-major, fp32 accumulation (CUBLAS_COMPUTE_32F).
 * f32 A: an f32 GEMM; TF32 is never enabled (the handle keeps CUBLAS_DEFAULT_MATH and the
 * compute type is plain 32F), so results are f32-accurate.
 * bf16/f16 A: cuBLAS wants A and B of one type, so op(B) (f32 activations) is rounded to A's
 * type in a scratch buffer first. Precision consequence: each activation carries a relative
 * error up to 2^-9 (bf16) or 2^-11 (f16) before the fp32-accumulated products - the rounding
 * every Linear input gets when HF transformers runs the model in bf16 (HF also keeps the residual
 * stream in bf16; here it stays f32). Expect ~1e-3 relative difference from the CPU backend per
 * layer, not bit equality. f16 also saturates activations beyond 65504 to inf. */
static int cuda_gemm(ch_backend *be, int transa, int transb, int m, int n, int k, float alpha,
                     const ch_weight *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc) {
    ch_cuda *cx = cuda_of(be);
    int arows = transa ? k : m, brows = transb ? n : k, bcols = transb ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) ||
        ldc < (m > 1 ? m : 1))
        CH_FAIL(CH_EARG, "gemm: bad shape m=%d n=%d k=%d lda=%d ldb=%d ldc=%d (trans %d %d)", m,
                n, k, lda, ldb, ldc, transa, transb);
    if (m == 0 || n == 0) return 0;
    cublasOperation_t opa = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (a->dtype == CH_DT_F32) {
        CH_CUBLAS(cublasGemmEx(cx->blas, opa, opb, m, n, k, &alpha, a->data, CUDA_R_32F, lda, b,
                               CUDA_R_32F, ldb, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
        return 0;
    }
    if (a->dtype != CH_DT_BF16 && a->dtype != CH_DT_F16)
        CH_FAIL(CH_EUNSUPPORTED, "gemm: weight dtype %s", dt_name(a->dtype));
    cudaDataType ht = a->dtype == CH_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    /* op(B) is brows x bcols with leading dimension ldb; the last column needs only brows. */
    size_t nb = k == 0 ? 0 : (size_t)ldb * (size_t)(bcols - 1) + (size_t)brows;
    if (nb) {
        CH_TRY(ensure_scratch(cx, nb * 2));
        CH_TRY(ch_cuda_round_to_16(cx, b, nb, a->dtype, cx->scratch));
    }
    CH_CUBLAS(cublasGemmEx(cx->blas, opa, opb, m, n, k, &alpha, a->data, ht, lda, cx->scratch, ht,
                           ldb, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* ---- construction ---------------------------------------------------------------------------- */

static void cuda_destroy(ch_backend *be) {
    if (!be) return;
    ch_cuda *c = cuda_of(be);
    if (c) {
        if (c->stream) (void)cudaStreamSynchronize(c->stream);
        if (c->scratch) (void)cudaFree(c->scratch);
        if (c->blas) (void)cublasDestroy(c->blas);
        if (c->stream) (void)cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

/* Node-local rank from the launcher's environment (Open MPI, MPICH/Hydra, Slurm), 0 if none:
 * ranks on one node then take GPUs round-robin. */
static int local_rank(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID",
                                 "PMI_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v) continue;
        char *end = NULL;
        long r = strtol(v, &end, 10);
        if (*end == 0 && r >= 0 && r < 1 << 20) return (int)r;
    }
    return 0;
}

static int cuda_init(ch_backend *be, int device) {
    ch_cuda *c = cuda_of(be);
    c->device = device;
    CH_CUDA(cudaSetDevice(device));
    CH_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CH_CUBLAS(cublasCreate(&c->blas));
    CH_CUBLAS(cublasSetStream(c->blas, c->stream));
    CH_CUBLAS(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    CH_CUDA(cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                   device));
    const char *s = getenv("CAPHEADS_CUDA_SYNC");
    c->sync_each = s && *s && strcmp(s, "0") != 0;
    return 0;
}

extern "C" int ch_backend_cuda_create(int device, ch_backend **out) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        CH_FAIL(CH_EUNSUPPORTED, "no usable CUDA GPU: cudaGetDeviceCount: %s (%s)",
                cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (n <= 0) CH_FAIL(CH_EUNSUPPORTED, "no usable CUDA GPU: cudaGetDeviceCount found no device");
    if (device >= n) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        CH_FAIL(CH_EARG, "CUDA device %d requested, but %d visible (CUDA_VISIBLE_DEVICES=%s)",
                device, n, vis ? vis : "unset");
    }
    if (device < 0) device = local_rank() % n;

    ch_backend *be = NULL;
    ch_cuda *c = NULL;
    CH_TRY(CH_ALLOC(be, 1, "CUDA backend"));
    if (CH_ALLOC(c, 1, "CUDA backend state")) {
        free(be);
        return CH_ENOMEM;
    }
    be->impl = c;
    be->name = "cuda";
    be->mem_name = "GPU";
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->sync = cuda_sync;
    be->host_alloc = cuda_host_alloc;
    be->host_free = cuda_host_free;
    be->download_async = cuda_download_async;
    be->event_create = cuda_event_create;
    be->event_destroy = cuda_event_destroy;
    be->event_record = cuda_event_record;
    be->event_wait = cuda_event_wait;
    be->mem_info = cuda_mem_info;
    be->gemm_workspace = cuda_gemm_workspace;
    be->load_weight = cuda_load_weight;
    be->free_weight = cuda_free_weight;
    be->embed = ch_cuda_embed;
    be->gemm = cuda_gemm;
    be->add_bias = ch_cuda_add_bias;
    be->rmsnorm = ch_cuda_rmsnorm;
    be->rope = ch_cuda_rope;
    be->attention = ch_cuda_attention;
    be->swiglu = ch_cuda_swiglu;
    be->geglu = ch_cuda_geglu;
    be->scale = ch_cuda_scale;
    be->add = ch_cuda_add;
    be->pool = ch_cuda_pool;
    be->destroy = cuda_destroy;
    int rc = cuda_init(be, device);
    if (rc) {
        cuda_destroy(be);
        return ch_err_wrap("initialising CUDA device %d: ", device);
    }
    *out = be;
    return 0;
}
