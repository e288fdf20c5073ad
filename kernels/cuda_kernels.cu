/* cuda_kernels.cu - the non-GEMM ops of the CUDA backend.
 *
 * Every kernel is a loop nest around the per-element rules of ops_math.h (ch_rms_inv,
 * ch_rms_apply, ch_rope_rotate, ch_swiglu, ch_geglu, ch_softcap, ch_softmax_step, the dtype conversions): the same
 * inline functions kernels/cpu.c calls, so the CPU tests cover this arithmetic. Only the order of
 * the RMSNorm sum of squares (a block tree of doubles instead of a sequential double sum)
 * differs. */
#include "cuda_impl.h"

#define THREADS 256
#define GRID_YZ_MAX 65535 /* gridDim.y and gridDim.z limit */

/* Grid for a grid-stride loop over n items. */
static unsigned blocks_for(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 65536 ? (b ? b : 1) : 65536);
}

__device__ __forceinline__ float load_as_f32(const void *p, ch_dtype dt, size_t i) {
    if (dt == CH_DT_BF16) return ch_bf16_to_f32(((const uint16_t *)p)[i]);
    if (dt == CH_DT_F16) return ch_f16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

#define GRID_STRIDE(i, n)                                                                         \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                       \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- elementwise ----------------------------------------------------------------------------- */

__global__ void round_kernel(const float *src, size_t n, int bf16, uint16_t *dst) {
    GRID_STRIDE(i, n) dst[i] = bf16 ? ch_f32_to_bf16(src[i]) : ch_f32_to_f16(src[i]);
}

int ch_cuda_round_to_16(ch_cuda *c, const float *src, size_t n, ch_dtype dt, void *dst) {
    round_kernel<<<blocks_for(n), THREADS, 0, c->stream>>>(src, n, dt == CH_DT_BF16,
                                                           (uint16_t *)dst);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

__global__ void embed_kernel(const void *table, ch_dtype dt, int64_t vocab, int64_t d,
                             const int32_t *ids, size_t n, float *x) {
    GRID_STRIDE(i, n) {
        size_t t = i / (size_t)d, j = i % (size_t)d;
        int64_t id = ids[t];
        /* out-of-range ids were refused on the host; never read outside the table anyway */
        x[i] = (id >= 0 && id < vocab) ? load_as_f32(table, dt, (size_t)id * (size_t)d + j) : NAN;
    }
}

int ch_cuda_embed(ch_backend *be, const ch_weight *table, const int32_t *ids, int ntok, float *x) {
    ch_cuda *c = cuda_of(be);
    size_t n = (size_t)ntok * (size_t)table->cols;
    if (!n) return 0;
    embed_kernel<<<blocks_for(n), THREADS, 0, c->stream>>>(table->data, table->dtype, table->rows,
                                                           table->cols, ids, n, x);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

__global__ void add_bias_kernel(float *y, const void *bias, ch_dtype dt, size_t n, int width) {
    GRID_STRIDE(i, n) y[i] += load_as_f32(bias, dt, i % (size_t)width);
}

int ch_cuda_add_bias(ch_backend *be, float *y, const ch_weight *bias, int ntok, int n) {
    ch_cuda *c = cuda_of(be);
    size_t total = (size_t)ntok * (size_t)n;
    if (!total) return 0;
    add_bias_kernel<<<blocks_for(total), THREADS, 0, c->stream>>>(y, bias->data, bias->dtype, total,
                                                                  n);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

/* The gated MLP activations: gate = act(gate) * up, the act from ops_math.h. */
struct swiglu_op {
    __device__ float operator()(float gate, float up) const { return ch_swiglu(gate, up); }
};
struct geglu_op {
    __device__ float operator()(float gate, float up) const { return ch_geglu(gate, up); }
};

template <class Op> __global__ void gated_kernel(float *gate, const float *up, size_t n) {
    GRID_STRIDE(i, n) gate[i] = Op()(gate[i], up[i]);
}

template <class Op> static int gated(ch_backend *be, float *gate, const float *up, size_t n) {
    ch_cuda *c = cuda_of(be);
    if (!n) return 0;
    gated_kernel<Op><<<blocks_for(n), THREADS, 0, c->stream>>>(gate, up, n);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

int ch_cuda_swiglu(ch_backend *be, float *gate, const float *up, size_t n) { return gated<swiglu_op>(be, gate, up, n); }
int ch_cuda_geglu(ch_backend *be, float *gate, const float *up, size_t n) { return gated<geglu_op>(be, gate, up, n); }

__global__ void add_kernel(float *x, const float *y, size_t n) {
    GRID_STRIDE(i, n) x[i] += y[i];
}


__global__ void scale_kernel(float *x, float s, size_t n) {
    GRID_STRIDE(i, n) x[i] *= s;
}

int ch_cuda_scale(ch_backend *be, float *x, float s, size_t n) {
    ch_cuda *c = cuda_of(be);
    if (!n) return 0;
    scale_kernel<<<blocks_for(n), THREADS, 0, c->stream>>>(x, s, n);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

int ch_cuda_add(ch_backend *be, float *x, const float *y, size_t n) {
    ch_cuda *c = cuda_of(be);
    if (!n) return 0;
    add_kernel<<<blocks_for(n), THREADS, 0, c->stream>>>(x, y, n);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

/* ---- RMSNorm: one block per token ------------------------------------------------------------ */

__global__ void rmsnorm_kernel(const float *x, const void *w, ch_dtype dt, int d, float eps,
                               float *out) {
    __shared__ double part[THREADS / 32];
    const float *row = x + (size_t)blockIdx.x * d;
    float *orow = out + (size_t)blockIdx.x * d;
    double s = 0; /* double, as the CPU backend: the one reduction that loses precision */
    for (int j = threadIdx.x; j < d; j += blockDim.x) s += (double)row[j] * row[j];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    double sumsq = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) sumsq += part[i];
    float inv = ch_rms_inv((float)sumsq, d, eps);
    /* out may alias x: each thread rewrites only the elements it reads, after the reduction */
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        orow[j] = ch_rms_apply(row[j], inv, load_as_f32(w, dt, (size_t)j));
}

int ch_cuda_rmsnorm(ch_backend *be, const float *x, const ch_weight *w, int ntok, int d, float eps,
                    float *out) {
    ch_cuda *c = cuda_of(be);
    if (ntok <= 0) return 0;
    rmsnorm_kernel<<<(unsigned)ntok, THREADS, 0, c->stream>>>(x, w->data, w->dtype, d, eps, out);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

/* ---- RoPE: one thread per rotary pair -------------------------------------------------------- */

__global__ void rope_kernel(float *x, size_t npairs, int nheads, int half, const int32_t *pos,
                            const float *inv_freq) {
    GRID_STRIDE(i, npairs) {
        size_t th = i / (size_t)half; /* token * nheads + head */
        int p = (int)(i % (size_t)half);
        size_t t = th / (size_t)nheads;
        float ang = (float)pos[t] * inv_freq[p];
        float *h = x + th * (size_t)(2 * half);
        ch_rope_rotate(&h[p], &h[p + half], cosf(ang), sinf(ang));
    }
}

int ch_cuda_rope(ch_backend *be, float *x, int ntok, int nheads, int head_dim, const int32_t *pos,
                 const float *inv_freq) {
    ch_cuda *c = cuda_of(be);
    if (head_dim % 2) CH_FAIL(CH_EARG, "rope: odd head_dim %d", head_dim);
    size_t n = (size_t)ntok * (size_t)nheads * (size_t)(head_dim / 2);
    if (!n) return 0;
    rope_kernel<<<blocks_for(n), THREADS, 0, c->stream>>>(x, n, nheads, head_dim / 2, pos,
                                                          inv_freq);
    CH_CUDA_LAUNCHED(c);
    return 0;
}

/* ---- pool: one thread per (sequence, column) ------------------------------------------------- */

__global__ void pool_kernel(const float *x, int width, const int *start, int mean, int f16, void *out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
    if (j >= width) return;
    size_t w = (size_t)width;
    ch_pool_store(out, (size_t)s * w + j, ch_pool_value(x, w, start[s], start[s + 1], (size_t)j, mean), f16);
}

/* out_dtype f16: the narrowing to the archive's binary16 happens here, by ch_f32_to_f16 (the
 * same function as the CPU backend's), so the capture is downloaded at half the bytes and the
 * host writes it as it comes. */
int ch_cuda_pool(ch_backend *be, const float *x, int width, const ch_seqs *s, ch_pool mode,
                 ch_dtype out_dtype, void *out) {
    ch_cuda *c = cuda_of(be);
    if (out_dtype != CH_DT_F32 && out_dtype != CH_DT_F16)
        CH_FAIL(CH_EINTERNAL, "cuda pool: output type %d", (int)out_dtype);
    if (s->nseq <= 0 || width <= 0) return 0;
    const int f16 = out_dtype == CH_DT_F16;
    const size_t esize = f16 ? 2 : 4;
    /* gridDim.y is at most 65535: launch in chunks of sequences (start holds absolute rows) */
    for (int s0 = 0; s0 < s->nseq; s0 += GRID_YZ_MAX) {
        int ns = min(GRID_YZ_MAX, s->nseq - s0);
        dim3 grid((unsigned)((width + THREADS - 1) / THREADS), (unsigned)ns);
        pool_kernel<<<grid, THREADS, 0, c->stream>>>(x, width, s->start_dev + s0, mode == CH_POOL_MEAN, f16,
                                                     (char *)out + (size_t)s0 * (size_t)width * esize);
        CH_CUDA_LAUNCHED(c);
    }
    return 0;
}

/* ---- attention -------------------------------------------------------------------------------
 * One block per (query tile of ATT_TQ tokens, query head, sequence). Each warp owns ATT_QPW
 * queries; keys and values stream through shared memory ATT_TK at a time. Inside a key tile lane
 * j computes the score of key j (a sequential dot product over D, like the CPU), then the warp
 * walks the keys in order, every lane applying ch_softmax_step to the broadcast score and
 * updating its D/32 slice of the accumulator. No kernel holds more than one tile of scores.
 * Scores are soft-capped by ch_softcap where asked; the key tiles start at the first key of the
 * tile's first query's window, and each query walks only its own keys (ch_attn_first_key). */
#define ATT_WARPS 4
#define ATT_QPW 4
#define ATT_TQ (ATT_WARPS * ATT_QPW)
#define ATT_TK 32
#define ATT_DMAX 256
#define ATT_EPL (ATT_DMAX / 32)

static size_t att_smem(int D) {
    return sizeof(float) * ((size_t)ATT_TQ * D + (size_t)ATT_TK * (D + 1) + (size_t)ATT_TK * D);
}

__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_kernel(const float *q, const float *k, const float *v, const int *start, int nq,
                     int nkv, int D, float scale, float softcap, int window, float *out) {
    extern __shared__ float sm[];
    float *qs = sm;                       /* ATT_TQ x D */
    float *ks = qs + ATT_TQ * D;          /* ATT_TK x (D + 1): padded, lane j reads row j */
    float *vs = ks + ATT_TK * (D + 1);    /* ATT_TK x D */
    const int s = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * ATT_TQ;
    const int base = start[s], len = start[s + 1] - base;
    if (q0 >= len) return;
    const int hk = h / (nq / nkv);
    const size_t qstride = (size_t)nq * D, kstride = (size_t)nkv * D;
    const int nqt = min(ATT_TQ, len - q0);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int i = threadIdx.x; i < nqt * D; i += blockDim.x)
        qs[i] = q[(size_t)(base + q0 + i / D) * qstride + (size_t)h * D + i % D];

    float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][ATT_EPL];
#pragma unroll
    for (int a = 0; a < ATT_QPW; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
#pragma unroll
        for (int e = 0; e < ATT_EPL; e++) acc[a][e] = 0.0f;
    }

    const int kend = q0 + nqt; /* causal: the last query of the tile sees keys [0, kend) */
    for (int k0 = ch_attn_first_key(q0, window); k0 < kend; k0 += ATT_TK) {
        const int nk = min(ATT_TK, kend - k0);
        __syncthreads(); /* the previous tile is consumed (first pass: q tile is complete) */
        for (int i = threadIdx.x; i < nk * D; i += blockDim.x) {
            size_t row = (size_t)(base + k0 + i / D) * kstride + (size_t)hk * D + i % D;
            ks[(i / D) * (D + 1) + i % D] = k[row];
            vs[i] = v[row];
        }
        __syncthreads();
#pragma unroll
        for (int a = 0; a < ATT_QPW; a++) {
            const int r = warp * ATT_QPW + a;
            if (r >= nqt) continue; /* warp-uniform */
            float sc = -INFINITY;
            if (lane < nk) {
                float dot = 0.0f;
                for (int d = 0; d < D; d++) dot += qs[r * D + d] * ks[lane * (D + 1) + d];
                sc = ch_softcap(dot * scale, softcap);
            }
            const int jmax = min(nk, q0 + r - k0 + 1); /* keys up to the query itself */
            const int jmin = max(0, ch_attn_first_key(q0 + r, window) - k0); /* and from its window's first */
            for (int j = jmin; j < jmax; j++) {
                float sj = __shfl_sync(0xffffffffu, sc, j), so, p;
                ch_softmax_step(sj, &m[a], &l[a], &so, &p);
#pragma unroll
                for (int e = 0; e < ATT_EPL; e++) {
                    int d = lane + 32 * e;
                    if (d < D) acc[a][e] = acc[a][e] * so + p * vs[j * D + d];
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < ATT_QPW; a++) {
        const int r = warp * ATT_QPW + a;
        if (r >= nqt) continue;
        float *o = out + (size_t)(base + q0 + r) * qstride + (size_t)h * D;
#pragma unroll
        for (int e = 0; e < ATT_EPL; e++) {
            int d = lane + 32 * e;
            if (d < D) o[d] = acc[a][e] / l[a];
        }
    }
}

int ch_cuda_attention(ch_backend *be, const float *q, const float *k, const float *v,
                      const ch_seqs *s, int nq, int nkv, int head_dim, const ch_attn_params *p, float *out) {
    ch_cuda *c = cuda_of(be);
    if (s->nseq <= 0 || s->ntok <= 0) return 0;
    if (nkv <= 0 || nq % nkv)
        CH_FAIL(CH_EARG, "attention: %d query heads not a multiple of %d kv heads", nq, nkv);
    if (head_dim <= 0 || head_dim > ATT_DMAX)
        CH_FAIL(CH_EUNSUPPORTED, "attention: head_dim %d (the CUDA kernel takes 1..%d)", head_dim,
                ATT_DMAX);
    if (nq > GRID_YZ_MAX)
        CH_FAIL(CH_EUNSUPPORTED, "attention: %d query heads exceed the grid (max %d)", nq,
                GRID_YZ_MAX);
    size_t smem = att_smem(head_dim);
    if (smem > 48 * 1024) {
        if (smem > (size_t)c->smem_optin)
            CH_FAIL(CH_EUNSUPPORTED, "attention: head_dim %d needs %zu bytes of shared memory, GPU "
                    "allows %d", head_dim, smem, c->smem_optin);
        CH_CUDA(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
    }
    if (s->max_len <= 0) CH_FAIL(CH_EARG, "attention: max_len %d", s->max_len);
    /* gridDim.z is at most 65535: launch in chunks of sequences (start holds absolute rows) */
    for (int s0 = 0; s0 < s->nseq; s0 += GRID_YZ_MAX) {
        int ns = min(GRID_YZ_MAX, s->nseq - s0);
        dim3 grid((unsigned)((s->max_len + ATT_TQ - 1) / ATT_TQ), (unsigned)nq, (unsigned)ns);
        attention_kernel<<<grid, ATT_WARPS * 32, smem, c->stream>>>(
            q, k, v, s->start_dev + s0, nq, nkv, head_dim, p->scale, p->softcap, p->window, out);
        CH_CUDA_LAUNCHED(c);
    }
    return 0;
}
