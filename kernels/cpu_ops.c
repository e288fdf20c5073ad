/* cpu_ops.c - the CPU backend's OpenMP loops over the shared math (see cpu_ops.h: this text is
 * compiled once per ISA). Every loop calls the per-element rules of ops_math.h, the ones the CUDA
 * kernels call per thread. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "err.h"

#ifdef CH_CPU_OPS_V4
#define OPS(name) name##_v4
#define OPS_TABLE ch_cpu_ops_v4
#define OPS_ISA "x86-64-v4"
#else
#define OPS(name) name##_base
#define OPS_TABLE ch_cpu_ops_base
#define OPS_ISA "baseline"
#endif

static void OPS(add_bias)(float *y, const float *b, int ntok, int n) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntok; t++) {
        float *yr = y + (size_t)t * n;
        CH_SIMD
        for (int j = 0; j < n; j++) yr[j] += b[j];
    }
}

static void OPS(rmsnorm)(const float *x, const float *w, int ntok, int d, float eps, float *out) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntok; t++) {
        const float *xr = x + (size_t)t * d;
        float *o = out + (size_t)t * d;
        double ss = 0; /* double: the mean of squares is the one reduction that loses precision */
        CH_SIMD_SUM(ss)
        for (int j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float inv = ch_rms_inv((float)ss, d, eps);
        CH_SIMD
        for (int j = 0; j < d; j++) o[j] = ch_rms_apply(xr[j], inv, w[j]);
    }
}

static void OPS(rope_table)(const int32_t *pos, int ntok, int half, const float *inv_freq, float *cs) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntok; t++)
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i];
            cs[(size_t)t * 2 * half + i] = cosf(ang);
            cs[(size_t)t * 2 * half + half + i] = sinf(ang);
        }
}

static void OPS(rope)(float *x, int ntok, int nheads, int head_dim, const float *cs) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntok; t++) {
        const float *c = cs + (size_t)t * 2 * half, *s = c + half;
        for (int h = 0; h < nheads; h++) {
            float *v = x + ((size_t)t * nheads + h) * head_dim;
            CH_SIMD
            for (int i = 0; i < half; i++) ch_rope_rotate(&v[i], &v[i + half], c[i], s[i]);
        }
    }
}

/* Attention by (sequence, kv head, block of queries): the group of query heads that share the kv
 * head are stacked, head after head, into one matrix Q of ATT_ROWS rows at most (ATT_ROWS / group
 * queries of each), so that their scores against every key the block sees - from the first key
 * of its first query's window (ch_attn_first_key) to its last query - are one GEMM (S = scale Q
 * K^T, K packed once for the group), each row is soft-capped where asked (ch_softcap) and its
 * softmax is ch_softmax_row over the query's own keys (keys after it, or before its window,
 * weigh 0), and the output is a second GEMM (O = P V), divided by the row sums as it is copied
 * back. The flops are OpenBLAS's and there is one exponential per (query, key the block sees).
 * Scratch per thread: ATT_ROWS x (longest sequence + 2 head_dim + 1) floats. */
#define ATT_ROWS 128
static int OPS(attention)(const float *q, const float *k, const float *v, const ch_seqs *s, int nq, int nkv,
                          int head_dim, const ch_attn_params *p, float *out) {
    const int group = nq / nkv, qb = ATT_ROWS / group > 0 ? ATT_ROWS / group : 1, D = head_dim;
    const int window = p->window;
    const float scale = p->scale, cap = p->softcap;
    const size_t qstride = (size_t)nq * D, kstride = (size_t)nkv * D;
    const size_t rows = (size_t)group * qb, longest = (size_t)(s->max_len > 0 ? s->max_len : 1);
    int failed = 0, nblk_max = (int)((longest + qb - 1) / qb);
#pragma omp parallel reduction(| : failed)
    {
        float *sc = malloc(sizeof(float) * rows * (longest + 2 * (size_t)D + 1));
        float *qg = sc ? sc + rows * longest : NULL, *og = sc ? qg + rows * D : NULL, *rowsum = sc ? og + rows * D : NULL;
        if (!sc) failed = 1;
#pragma omp for collapse(3) schedule(dynamic)
        for (int sq = 0; sq < s->nseq; sq++)
            for (int kh = 0; kh < nkv; kh++)
                for (int blk = 0; blk < nblk_max; blk++) {
                    int t0 = s->start[sq], len = s->start[sq + 1] - t0, i0 = blk * qb;
                    if (!sc || i0 >= len) continue;
                    /* the block's queries i0..i0+nb-1 see keys k0..k0+nk-1 between them */
                    int nb = len - i0 < qb ? len - i0 : qb, k0 = ch_attn_first_key(i0, window), nk = i0 + nb - k0,
                        m = group * nb;
                    const float *kr = k + (size_t)(t0 + k0) * kstride + (size_t)kh * D;
                    const float *vr = v + (size_t)(t0 + k0) * kstride + (size_t)kh * D;
                    /* row g * nb + i of Q: query i0 + i of head kh * group + g */
                    for (int g = 0; g < group; g++)
                        for (int i = 0; i < nb; i++)
                            memcpy(qg + ((size_t)g * nb + i) * D,
                                   q + (size_t)(t0 + i0 + i) * qstride + (size_t)(kh * group + g) * D, sizeof(float) * D);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nk, D, scale, qg, D, kr, (int)kstride, 0.0f,
                                sc, nk);
                    for (int r = 0; r < m; r++) {
                        const int i = i0 + r % nb, lo = ch_attn_first_key(i, window) - k0, hi = i + 1 - k0;
                        float *row = sc + (size_t)r * nk;
                        if (cap > 0.0f)
                            for (int j = lo; j < hi; j++) row[j] = ch_softcap(row[j], cap);
                        rowsum[r] = ch_softmax_row(row, lo, hi, nk);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, nk, 1.0f, sc, nk, vr, (int)kstride, 0.0f,
                                og, D);
                    for (int g = 0; g < group; g++)
                        for (int i = 0; i < nb; i++) {
                            const float inv = 1.0f / rowsum[g * nb + i], *src = og + ((size_t)g * nb + i) * D;
                            float *o = out + (size_t)(t0 + i0 + i) * qstride + (size_t)(kh * group + g) * D;
                            CH_SIMD
                            for (int d = 0; d < D; d++) o[d] = src[d] * inv;
                        }
                }
        free(sc);
    }
    if (failed)
        CH_FAIL(CH_ENOMEM, "out of memory for attention scratch (%zu x %zu floats a thread)", rows,
                longest + 2 * (size_t)D + 1);
    return 0;
}

static void OPS(swiglu)(float *gate, const float *up, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) gate[i] = ch_swiglu(gate[i], up[i]);
}

static void OPS(geglu)(float *gate, const float *up, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) gate[i] = ch_geglu(gate[i], up[i]);
}

static void OPS(scale)(float *x, float s, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

static void OPS(add)(float *x, const float *y, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

const ch_cpu_ops OPS_TABLE = {.isa = OPS_ISA,
                              .add_bias = OPS(add_bias),
                              .rmsnorm = OPS(rmsnorm),
                              .rope_table = OPS(rope_table),
                              .rope = OPS(rope),
                              .attention = OPS(attention),
                              .swiglu = OPS(swiglu),
                              .geglu = OPS(geglu),
                              .scale = OPS(scale),
                              .add = OPS(add)};

#ifndef CH_CPU_OPS_V4 /* ---- once ------------------------------------------------------------ */
const ch_cpu_ops *ch_cpu_ops_pick(void) {
    const char *isa = getenv("CAPHEADS_CPU_ISA");
    if (isa && !strcmp(isa, "baseline")) return &ch_cpu_ops_base;
#ifdef CH_CPU_HAVE_V4
    /* GCC's check includes the OS enabling the AVX-512 register state */
    if (__builtin_cpu_supports("x86-64-v4")) return &ch_cpu_ops_v4;
#endif
    return &ch_cpu_ops_base;
}
#endif
