/* backend.h - the compute seam between the model and the hardware.
 *
 * src/model.c runs the forward pass by calling only the functions in this table, on buffers the
 * backend allocated ("device" memory: host memory for the CPU backend, GPU memory for CUDA).
 * Activations are always f32. Weights are ch_weight handles whose storage is the backend's
 * choice within what the model asks for (ch_weight_use): a Linear weight asked for as
 * CH_WEIGHT_LINEAR keeps its 16-bit type where the backend multiplies that type (CPU: bf16, in
 * AMX tiles, or widened at load where the CPU has no AMX; CUDA: bf16 and f16), and the GEMM then
 * rounds the activations to that type and sums in f32 - the same contract on both backends.
 *
 * GEMM follows cuBLAS: column-major, C = alpha * op(A) * op(B) + beta * C, op(A) is m x k.
 * The model stores row-major [rows, cols] matrices, i.e. column-major [cols, rows]; a HF Linear
 * y = x W^T over T tokens is gemm(T, N, out, T, in, W, in, x, in, y, out). */
#ifndef CH_BACKEND_H
#define CH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "ops_math.h"

typedef struct ch_backend ch_backend;
/* A point in a backend's queue of work (download_async, event_*); each backend defines it. */
typedef struct ch_event ch_event;

typedef struct {
    void *data;       /* device pointer */
    ch_dtype dtype;   /* storage dtype on the device */
    int64_t rows, cols; /* logical row-major shape; a vector of n is rows = n, cols = 1 */
    int borrowed;     /* data points into the checkpoint mapping (not freed by free_weight) */
    int packed;       /* nonzero: backend-specific storage, not dtype row-major (CPU: a bf16
                       * weight in AMX tiles, or widened to f32 values; cpu_bf16.h) */
} ch_weight;

/* What the model will do with a weight, which bounds how the backend may store it:
 *   CH_WEIGHT_F32     read as f32 values (norm weights, biases; every Linear at --precision
 *                     f32): widened at load when stored narrower
 *   CH_WEIGHT_ROWS    a lookup table (the embedding): any float dtype, rows widened when read
 *   CH_WEIGHT_LINEAR  the A operand of gemm (a Linear's [out, in] matrix): kept in its 16-bit
 *                     type where the backend's GEMM takes that type, else widened to f32.
 *                     w->dtype tells which: the precision of that Linear's inputs. */
typedef enum { CH_WEIGHT_F32 = 0, CH_WEIGHT_ROWS, CH_WEIGHT_LINEAR } ch_weight_use;

/* A packed batch of variable-length sequences: tokens of sequence s are rows
 * [start[s], start[s+1]) of every activation matrix. Host and device copies of the offsets. */
typedef struct {
    int nseq;
    int ntok;              /* start[nseq] */
    int max_len;           /* longest sequence */
    const int *start;      /* host, nseq + 1 */
    const int *start_dev;  /* device copy (== start on the CPU backend) */
    const int32_t *pos_dev; /* device, ntok: position of each token inside its sequence */
} ch_seqs;

typedef enum { CH_POOL_LAST = 0, CH_POOL_MEAN = 1 } ch_pool;

/* What a layer's attention does beyond causal softmax(q k^T) v (ops_math.h has the rules):
 * scores scale * q.k, capped by ch_softcap(score, softcap) when softcap > 0 (Gemma 2), and
 * query i sees keys j in [ch_attn_first_key(i, window), i]: all j <= i when window <= 0, the
 * last `window` positions otherwise (Mistral, Gemma's sliding layers). */
typedef struct {
    float scale;
    float softcap;
    int window;
} ch_attn_params;

/* The table a backend fills. Two sections: the device and its stream (memory, copies, order of
 * work), and the compute ops the forward pass calls. Every entry is required unless tagged
 * "optional"; ch_backend_check (run by ch_backend_create) refuses a backend that leaves a
 * required one NULL. A new backend is its own files, a line in the registry (backend.c) and its
 * CMake; nothing above kernels/ names a backend. */
struct ch_backend {
    const char *name;     /* the registry's name: "cpu", "cuda" */
    const char *mem_name; /* whose memory alloc hands out, for messages: "host", "GPU" */
    char info[192];       /* for logs, "" or " (what it runs on)", e.g. the CPU's bf16 kernel */

    /* ==== device and stream ==================================================================== */

    int (*alloc)(ch_backend *be, size_t bytes, void **p);
    void (*free)(ch_backend *be, void *p);
    int (*upload)(ch_backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(ch_backend *be, void *dst, const void *src, size_t bytes);
    /* Wait for queued work (a no-op on the CPU). */
    int (*sync)(ch_backend *be);

    /* Asynchronous copies back to the host, so that the host can use one batch's results (write
     * them to the archive) while the device computes the next batch:
     *   host_alloc     host memory for download_async: page-locked (cudaHostAlloc) on CUDA, so
     *                  the copy is a real DMA that runs behind the host; 64-byte-aligned malloc
     *                  on the CPU. Free with host_free.
     *   download_async queue a copy of `rows` rows of `width` bytes from device memory src (row
     *                  pitch spitch) to host dst (row pitch dpitch), after all work queued
     *                  before it, and return: dst may be read only after event_wait on an event
     *                  recorded after the copy. CPU: copies at once. CUDA with dst not from
     *                  host_alloc: still correct, but the call waits for the copy.
     *   event_record   mark the point after everything queued so far (again: moves the mark);
     *   event_wait     block the host until the work before the latest mark is done (at once
     *                  when never recorded). Events are no-ops on the CPU.
     * Everything queued runs in order (one stream), so a download queued before the next
     * batch's kernels reads the results before those kernels overwrite them. */
    int (*host_alloc)(ch_backend *be, size_t bytes, void **p);
    void (*host_free)(ch_backend *be, void *p);
    int (*download_async)(ch_backend *be, void *dst, size_t dpitch, const void *src, size_t spitch,
                          size_t width, size_t rows);
    int (*event_create)(ch_backend *be, ch_event **ev);
    void (*event_destroy)(ch_backend *be, ch_event *ev);
    int (*event_record)(ch_backend *be, ch_event *ev);
    int (*event_wait)(ch_backend *be, ch_event *ev);

    /* optional: NULL means unknown (out-of-memory messages then give no --batch-tokens advice).
     * Device memory free and total, in bytes (cudaMemGetInfo; the CPU backend reports the
     * host's available and physical memory, 0 when unknown). */
    int (*mem_info)(ch_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* ==== compute ops ========================================================================== */

    /* optional: NULL means the GEMM keeps no workspace (0 bytes).
     * Device bytes the GEMM keeps as workspace for a B operand of b_elems elements against a
     * weight stored as a_dtype (a 16-bit copy of B for bf16/f16 weights: CUDA with headroom, the
     * CPU's AMX kernel padded to 32, its portable kernel as f32; 0 for f32). For sizing batches. */
    size_t (*gemm_workspace)(ch_backend *be, ch_dtype a_dtype, size_t b_elems);

    /* Make a device weight from a host tensor (mmap'd checkpoint data, any float dtype). */
    int (*load_weight)(ch_backend *be, const ch_st_tensor *t, ch_weight_use use, ch_weight *w);
    void (*free_weight)(ch_backend *be, ch_weight *w);

    /* x[t, :] = table[ids[t], :]  (ids on device, table rows = vocab, cols = d) */
    int (*embed)(ch_backend *be, const ch_weight *table, const int32_t *ids, int ntok, float *x);
    /* Column-major GEMM, B and C are f32. With a 16-bit A (loaded as CH_WEIGHT_LINEAR), op(B)
     * is rounded to A's type (ch_f32_to_bf16 / ch_f32_to_f16) and the products summed in f32;
     * the CPU backend multiplies a 16-bit A only as a Linear does (transa = 1, transb = 0,
     * alpha = 1, beta = 0; anything else is CH_EINTERNAL). */
    int (*gemm)(ch_backend *be, int transa, int transb, int m, int n, int k, float alpha,
                const ch_weight *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
    /* y[t, j] += bias[j] for t < ntok, j < n */
    int (*add_bias)(ch_backend *be, float *y, const ch_weight *bias, int ntok, int n);
    /* out[t, :] = rmsnorm(x[t, :]) * w ; out may equal x */
    int (*rmsnorm)(ch_backend *be, const float *x, const ch_weight *w, int ntok, int d, float eps,
                   float *out);
    /* Rotate x viewed as [ntok, nheads, head_dim] at the token positions; inv_freq has head_dim/2
     * entries (device). */
    int (*rope)(ch_backend *be, float *x, int ntok, int nheads, int head_dim, const int32_t *pos,
                const float *inv_freq);
    /* Causal self-attention inside each sequence, GQA: query head h reads kv head
     * h / (nq / nkv), as p says (scale, soft cap, sliding window). q [ntok, nq*D],
     * k, v [ntok, nkv*D], out [ntok, nq*D]. */
    int (*attention)(ch_backend *be, const float *q, const float *k, const float *v,
                     const ch_seqs *s, int nq, int nkv, int head_dim, const ch_attn_params *p, float *out);
    /* gate[i] = silu(gate[i]) * up[i] */
    int (*swiglu)(ch_backend *be, float *gate, const float *up, size_t n);
    /* gate[i] = gelu_tanh(gate[i]) * up[i] (Gemma's MLP; the model never fuses it) */
    int (*geglu)(ch_backend *be, float *gate, const float *up, size_t n);
    /* x[i] *= s (Gemma's embedding scale) */
    int (*scale)(ch_backend *be, float *x, float s, size_t n);
    /* optional: NULL means the model runs gemm, gemm, swiglu, gemm. The SwiGLU MLP, out [ntok, hidden] =
     * (silu(x Wg^T) * (x Wu^T)) Wd^T for gate and up [I, hidden], down [hidden, I], x [ntok,
     * hidden] - the values of those four calls, where the backend can keep the products and h
     * out of memory. gate_s and up_s [ntok, I] are the backend's scratch. */
    int (*mlp)(ch_backend *be, const ch_weight *gate, const ch_weight *up, const ch_weight *down, const float *x,
               int ntok, float *out, float *gate_s, float *up_s);
    /* x[i] += y[i] */
    int (*add)(ch_backend *be, float *x, const float *y, size_t n);
    /* out[s, :] = x[last token of s, :] (CH_POOL_LAST) or the mean over s's tokens (CH_POOL_MEAN)
     * (ch_pool_value of ops_math.h); x is [ntok, width] on the device, out is [nseq, width] on
     * the device, of out_dtype: CH_DT_F32, or CH_DT_F16 - the binary16 bits ch_f32_to_f16 makes
     * of the f32 result, the archive's form (anything else is CH_EINTERNAL). */
    int (*pool)(ch_backend *be, const float *x, int width, const ch_seqs *s, ch_pool mode,
                ch_dtype out_dtype, void *out);

    /* ==== lifetime ============================================================================== */

    void (*destroy)(ch_backend *be);
    void *impl;
};

/* Constructors. threads <= 0: let the backend decide (CPU: OMP/OpenBLAS defaults). */
int ch_backend_cpu_create(int threads, ch_backend **out);
/* CH_EUNSUPPORTED with the reason when CUDA support is not compiled in or no GPU is usable.
 * device < 0: pick by node-local rank. */
int ch_backend_cuda_create(int device, ch_backend **out);

/* The registry (backend.c): every backend, in the order "auto" tries them. compiled_in is 0 for
 * a backend whose build left it out (its create then says so, CH_EUNSUPPORTED). */
typedef struct {
    const char *name;
    int (*create)(int threads, ch_backend **out); /* threads: as ch_backend_cpu_create's */
    int compiled_in;
} ch_backend_reg;
/* The registry's entries; *n receives their count. */
const ch_backend_reg *ch_backend_registry(int *n);

/* name: a registry name or "auto" (the first backend whose create succeeds; one that reports
 * CH_EUNSUPPORTED is skipped, any other failure is returned: a GPU that exists but fails is
 * an error to report, not a reason to fall back). NULL or "": $CAPHEADS_BACKEND, else auto.
 * CUDA device choice: the node-local rank from OMPI_COMM_WORLD_LOCAL_RANK / MPI_LOCALRANKID /
 * SLURM_LOCALID modulo the visible devices. upload/download are synchronous on all backends.
 * The backend made is checked with ch_backend_check. */
int ch_backend_create(const char *name, int threads, ch_backend **out);
/* CH_EINTERNAL naming the backend and the entry when a required entry of the table is NULL. */
int ch_backend_check(const ch_backend *be);
static inline void ch_backend_destroy(ch_backend *be) {
    if (be) be->destroy(be);
}

#endif
