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

static void OPS(rope)(float *x, int ntok, int nheads, int head_dim, const int32_t *pos, const float *inv_freq) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntok; t++) {
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i];
            float c = cosf(ang), s = sinf(ang);
            for (int h = 0; h < nheads; h++) {
                float *v = x + ((size_t)t * nheads + h) * head_dim;
                ch_rope_rotate(&v[i], &v[i + half], c, s);
            }
        }
    }
}

/* One (sequence, query head) pair per task, its queries in blocks of ATT_QB: the block's scores
 * against every key up to its last query are one GEMM (S = scale * Q K^T), each row's softmax is
 * ch_softmax_row (keys past the query's own position weigh 0), and the output is a second GEMM
 * (O = P V) divided by the row sums. Against the key-by-key online softmax this was, it spends
 * its flops in OpenBLAS and takes one exponential per (query, key) instead of two; scratch per
 * thread is ATT_QB x (longest sequence) floats. */
#define ATT_QB 64
static int OPS(attention)(const float *q, const float *k, const float *v, const ch_seqs *s, int nq, int nkv,
                          int head_dim, float scale, float *out) {
    int group = nq / nkv, failed = 0;
    size_t qstride = (size_t)nq * head_dim, kstride = (size_t)nkv * head_dim;
#pragma omp parallel reduction(| : failed)
    {
        const size_t scores = (size_t)ATT_QB * (size_t)(s->max_len > 0 ? s->max_len : 1);
        float *sc = malloc(sizeof(float) * (scores + ATT_QB)), *rowsum = sc ? sc + scores : NULL;
        if (!sc) failed = 1;
#pragma omp for collapse(2) schedule(dynamic)
        for (int sq = 0; sq < s->nseq; sq++) {
            for (int h = 0; h < nq; h++) {
                if (!sc) continue;
                int t0 = s->start[sq], len = s->start[sq + 1] - t0, kh = h / group;
                const float *qh = q + (size_t)t0 * qstride + (size_t)h * head_dim;
                const float *kr = k + (size_t)t0 * kstride + (size_t)kh * head_dim;
                const float *vr = v + (size_t)t0 * kstride + (size_t)kh * head_dim;
                float *oh = out + (size_t)t0 * qstride + (size_t)h * head_dim;
                for (int i0 = 0; i0 < len; i0 += ATT_QB) {
                    int nb = len - i0 < ATT_QB ? len - i0 : ATT_QB, nk = i0 + nb; /* keys 0..nk-1 */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, head_dim, scale,
                                qh + (size_t)i0 * qstride, (int)qstride, kr, (int)kstride, 0.0f, sc, nk);
                    /* query i0+i sees keys 0..i0+i (its own position and before) */
                    for (int i = 0; i < nb; i++) rowsum[i] = ch_softmax_row(sc + (size_t)i * nk, i0 + i + 1, nk);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, head_dim, nk, 1.0f, sc, nk, vr,
                                (int)kstride, 0.0f, oh + (size_t)i0 * qstride, (int)qstride);
                    for (int i = 0; i < nb; i++) {
                        float inv = 1.0f / rowsum[i], *o = oh + (size_t)(i0 + i) * qstride;
                        CH_SIMD
                        for (int d = 0; d < head_dim; d++) o[d] *= inv;
                    }
                }
            }
        }
        free(sc);
    }
    if (failed) CH_FAIL(CH_ENOMEM, "out of memory for attention scratch (%d x %d floats a thread)", ATT_QB, s->max_len);
    return 0;
}

static void OPS(swiglu)(float *gate, const float *up, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) gate[i] = ch_swiglu(gate[i], up[i]);
}

static void OPS(add)(float *x, const float *y, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

const ch_cpu_ops OPS_TABLE = {.isa = OPS_ISA,
                              .add_bias = OPS(add_bias),
                              .rmsnorm = OPS(rmsnorm),
                              .rope = OPS(rope),
                              .attention = OPS(attention),
                              .swiglu = OPS(swiglu),
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
