/* probe_kernel.c - the per-row arithmetic of the probes: logits, softmax, loss and gradient sums
 * of one head over a rank's rows, the binary16 -> standardized f32 conversion, and prediction.
 * The solver that drives it (lockstep L-BFGS, reductions) is src/probe.c.
 *
 * The hot part is compiled twice: here for baseline x86-64 (the functions named *_base), and
 * with -march=x86-64-v3 (AVX2+FMA) by src/probe_kernel_v3.c, which includes this file with
 * CH_PROBE_KERNEL_V3 defined (the *_v3 functions). The math is the same text; the public entry
 * points at the end pick a copy once the CPU is known. Why not target_clones: inside a clone the
 * helpers below are first optimized for the baseline and only then inlined (a 32-byte load
 * became two 16-byte ones and an insert), and no clone can say which instruction set it is for,
 * which PIN below needs. */
#include "probe_kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "h5util.h"
#include "numfmt.h"

#ifdef CH_PROBE_KERNEL_V3
#define KFN(name) name##_v3
/* Keep v in a register: see tile_logits. */
#define PIN(v) __asm__("" : "+x"(v))
#else
#define KFN(name) name##_base
#define PIN(v) ((void)0)
#endif

/* ISO C mode turns off contraction of a*b+c into FMA; the fit's products want it (both copies
 * of the hot loops below stay deterministic on their own). */
#pragma GCC optimize("fp-contract=fast")

#define TR 8 /* rows per tile: a tile's logits are one 8-lane vector per class */

/* Eight-lane float vectors (GCC/clang vector extensions: AVX registers in the x86-64-v3 copy,
 * pairs of SSE registers in the baseline one). Lane k of a tile's vectors is row k. */
/* the helpers below are always inlined, so the vector-argument ABI note does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#if defined(__clang__)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (v8i){__VA_ARGS__})
#endif
#define INLINE static inline __attribute__((always_inline))

INLINE v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE v8f splat8(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
INLINE v8f select8(v8i mask, v8f a, v8f b) { return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask)); }
INLINE v8f max8(v8f a, v8f b) { return select8(a > b, a, b); }

/* Lane k of the result = the sum of a[k]'s eight lanes (three rounds of pairwise adds). */
INLINE v8f hsum8x8(const v8f a[8]) {
    v8f u01 = SHUF(a[0], a[1], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[0], a[1], 1, 9, 3, 11, 5, 13, 7, 15);
    v8f u23 = SHUF(a[2], a[3], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[2], a[3], 1, 9, 3, 11, 5, 13, 7, 15);
    v8f u45 = SHUF(a[4], a[5], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[4], a[5], 1, 9, 3, 11, 5, 13, 7, 15);
    v8f u67 = SHUF(a[6], a[7], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[6], a[7], 1, 9, 3, 11, 5, 13, 7, 15);
    v8f v03 = SHUF(u01, u23, 0, 1, 8, 9, 4, 5, 12, 13) + SHUF(u01, u23, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f v47 = SHUF(u45, u67, 0, 1, 8, 9, 4, 5, 12, 13) + SHUF(u45, u67, 2, 3, 10, 11, 6, 7, 14, 15);
    return SHUF(v03, v47, 0, 1, 2, 3, 8, 9, 10, 11) + SHUF(v03, v47, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* e^x for x <= 0 (below -87: e^-87, ~1.6e-38). Cody-Waite reduction by ln 2 (round to nearest
 * with the 1.5 * 2^23 trick), the Cephes expf polynomial on [-ln2/2, ln2/2], 2^n from the
 * exponent bits: ~1 ulp, in plain vector arithmetic (libm's expf is one lane at a time). */
INLINE v8f exp_neg8(v8f x) {
    x = max8(x, splat8(-87.0f));
    const v8f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const v8f r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    v8f q = splat8(1.9875691500e-4f);
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    const v8i two_n = (__builtin_convertvector(n, v8i) + 127) << 23; /* n in [-126, 0] */
    return q * (v8f)two_n;
}

/* log(s) for s in [1, 5] (a softmax denominator): s = 2^e f with f in [sqrt(1/2), sqrt(2)),
 * log f = 2 atanh(u), u = (f-1)/(f+1), |u| <= 0.172, by its series to u^9 (error < 1e-9). */
INLINE v8f log_denominator8(v8f s) {
    const v8i bits = (v8i)s;
    v8i e = (bits >> 23) - 127;
    v8f f = (v8f)((bits & 0x7fffff) | 0x3f800000);
    const v8i big = f > 1.41421356f;
    f = select8(big, f * 0.5f, f);
    e -= big; /* big is -1 where true */
    const v8f u = (f - 1.0f) / (f + 1.0f), u2 = u * u;
    const v8f series = (((u2 * (1.0f / 9) + (1.0f / 7)) * u2 + (1.0f / 5)) * u2 + (1.0f / 3)) * u2 + 1.0f;
    return __builtin_convertvector(e, v8f) * 0.693147180559945309f + 2.0f * u * series;
}

/* Logits of one tile of TR rows xr[k] under weights w [5][D] and bias b: z[c], lane k = row k.
 * The product is register-blocked like a GEMM micro-kernel: two rows times five classes make ten
 * accumulators (lanes along the feature axis), so each load of a row chunk feeds five FMAs and
 * each load of a weight chunk two; three-quarters of the old one-row-per-accumulator loop's loads
 * are gone, which is what bounded it. A transposition tree then sums each accumulator's lanes.
 * PIN holds each weight chunk in a register for its two FMAs: left alone, GCC folds its load
 * into both (twelve loads for ten FMAs, which bound the loop); pinned, the kernel runs ~3% faster. */
INLINE void tile_logits(const float *restrict w, const float *restrict b, const float *const *xr,
                        int D, v8f z[CH_NCAP]) {
    const int D8 = D & ~7;
    v8f sp[CH_NCAP][TR];
    for (int r = 0; r < TR; r += 2) {
        const float *restrict x0 = xr[r], *restrict x1 = xr[r + 1];
        v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a04 = {0};
        v8f a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0}, a14 = {0};
        for (int j = 0; j < D8; j += 8) {
            const v8f u = load8(x0 + j), v = load8(x1 + j);
            v8f wv = load8(w + j);
            PIN(wv);
            a00 += wv * u, a10 += wv * v;
            wv = load8(w + D + j);
            PIN(wv);
            a01 += wv * u, a11 += wv * v;
            wv = load8(w + 2 * D + j);
            PIN(wv);
            a02 += wv * u, a12 += wv * v;
            wv = load8(w + 3 * D + j);
            PIN(wv);
            a03 += wv * u, a13 += wv * v;
            wv = load8(w + 4 * D + j);
            PIN(wv);
            a04 += wv * u, a14 += wv * v;
        }
        sp[0][r] = a00, sp[1][r] = a01, sp[2][r] = a02, sp[3][r] = a03, sp[4][r] = a04;
        sp[0][r + 1] = a10, sp[1][r + 1] = a11, sp[2][r + 1] = a12, sp[3][r + 1] = a13,
                  sp[4][r + 1] = a14;
    }
    for (int c = 0; c < CH_NCAP; c++) {
        v8f zc = hsum8x8(sp[c]);
        const float *wc = w + (size_t)c * D;
        for (int j = D8; j < D; j++) { /* head_dim not a multiple of 8 */
            float t[TR];
            for (int k = 0; k < TR; k++) t[k] = wc[j] * xr[k][j];
            zc += load8(t);
        }
        z[c] = zc + b[c];
    }
}

/* Probabilities p[c] of a tile from its logits (0 for classes with keep[c] == 0) and the
 * log-sum-exp of each row. Used by the fit and the prediction alike. */
INLINE void tile_softmax(const int *keep, const v8f z[CH_NCAP], v8f p[CH_NCAP], v8f *lse) {
    v8f m = splat8(-INFINITY), s = splat8(0);
    for (int c = 0; c < CH_NCAP; c++)
        if (keep[c]) m = max8(m, z[c]);
    for (int c = 0; c < CH_NCAP; c++) {
        p[c] = keep[c] ? exp_neg8(z[c] - m) : splat8(0);
        s += p[c];
    }
    const v8f inv = 1.0f / s;
    for (int c = 0; c < CH_NCAP; c++) p[c] *= inv;
    *lse = m + log_denominator8(s);
}

/* out[c*D + j] += sum over the block's nb rows x[r] of g[c][r] * x[r][j]: the rank-5 update of
 * the gradient, register-blocked the other way round (five classes times sixteen features in ten
 * accumulators, held over all the block's rows, so the f32 sum of a block never leaves registers
 * and reaches memory once, added to the double total). */
INLINE void block_grad(const float *restrict x, int nb, int D, const float g[CH_NCAP][CH_PROBE_BLOCK],
                       double *restrict out) {
    int j = 0;
    for (; j + 16 <= D; j += 16) {
        v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
        v8f a40 = {0}, a41 = {0};
        for (int r = 0; r < nb; r++) {
            const float *xr = x + (size_t)r * D + j;
            /* the next block's rows: the forward pass that follows would otherwise wait on
             * them (the hardware prefetcher does not run that far ahead of this loop) */
            __builtin_prefetch(xr + (size_t)nb * D);
            const v8f u = load8(xr), v = load8(xr + 8);
            v8f gc = splat8(g[0][r]);
            a00 += gc * u, a01 += gc * v;
            gc = splat8(g[1][r]);
            a10 += gc * u, a11 += gc * v;
            gc = splat8(g[2][r]);
            a20 += gc * u, a21 += gc * v;
            gc = splat8(g[3][r]);
            a30 += gc * u, a31 += gc * v;
            gc = splat8(g[4][r]);
            a40 += gc * u, a41 += gc * v;
        }
        const v8f acc[CH_NCAP][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}};
        for (int c = 0; c < CH_NCAP; c++)
            for (int h = 0; h < 2; h++) {
                double *restrict o = out + (size_t)c * D + j + 8 * h;
                for (int k = 0; k < 8; k++) o[k] += acc[c][h][k];
            }
    }
    for (; j < D; j++) /* head_dim not a multiple of 16 */
        for (int c = 0; c < CH_NCAP; c++) {
            float s = 0;
            for (int r = 0; r < nb; r++) s += g[c][r] * x[(size_t)r * D + j];
            out[(size_t)c * D + j] += s;
        }
}

/* The f32 summation units over d's rows, in order: the blocks of ch_probe_data.blk (or of
 * CH_PROBE_BLOCK rows when it is NULL), a longer block cut into pieces of CH_PROBE_BLOCK rows the
 * same way on every rank count. for (piece p = {0}; next_piece(d, &p);) visits rows [p.r0, p.r1). */
typedef struct {
    int64_t bk, r0, r1, end;
} piece;

static int next_piece(const ch_probe_data *d, piece *p) {
    const int64_t nblk = d->blk ? d->nblk : (d->n + CH_PROBE_BLOCK - 1) / CH_PROBE_BLOCK;
    while (p->r1 >= p->end) { /* the current block is done: the next non-empty one */
        if (p->bk >= nblk) return 0;
        p->r1 = d->blk ? d->blk[p->bk] : p->bk * CH_PROBE_BLOCK;
        p->end = d->blk ? d->blk[p->bk + 1] : p->r1 + CH_PROBE_BLOCK;
        p->end = p->end > d->n ? d->n : p->end;
        p->bk++;
    }
    p->r0 = p->r1;
    p->r1 = p->end - p->r0 < CH_PROBE_BLOCK ? p->end : p->r0 + CH_PROBE_BLOCK;
    return 1;
}


/* The sums at W = 0, b = 0 (the fit's first evaluation), where every present class has p = 1/K:
 * the gradient of class c is sum_r (1/K - [y_r = c]) x_r = T/K - C_c with C_c the block's sum
 * of class c's rows and T = sum_c C_c, one add per value instead of ten FMAs and a softmax.
 * The loss is log K a row and the argmax of equal logits is the lowest present class. */
static void zero_sums(const ch_probe_data *d, const float *x, float *acc /* [6][D] */, double *out) {
    const int D = d->D;
    int K = 0, first = -1;
    for (int c = 0; c < CH_NCAP; c++)
        if (d->present[c]) K++, first = first < 0 ? c : first;
    const float invk = 1.0f / (float)K;
    const double logk = log((double)K);
    int64_t correct = 0, rows = 0;
    for (piece p = {0}; next_piece(d, &p);) {
        int cnt[CH_NCAP] = {0};
        memset(acc, 0, sizeof(float) * CH_NCAP * (size_t)D);
        for (int64_t r = p.r0; r < p.r1; r++) {
            const int y = d->y[r];
            float *restrict a = acc + (size_t)y * D;
            const float *restrict xr = x + (size_t)r * D;
#pragma omp simd
            for (int j = 0; j < D; j++) a[j] += xr[j];
            cnt[y]++;
            correct += y == first;
        }
        float *restrict t = acc + (size_t)CH_NCAP * D; /* T, the piece's sum of all rows */
#pragma omp simd
        for (int j = 0; j < D; j++)
            t[j] = (((acc[j] + acc[D + j]) + acc[2 * D + j]) + acc[3 * D + j]) + acc[4 * D + j];
        for (int c = 0; c < CH_NCAP; c++) {
            if (!d->present[c]) continue;
            const float *restrict ac = acc + (size_t)c * D;
            double *restrict o = out + (size_t)c * D;
#pragma omp simd
            for (int j = 0; j < D; j++) o[j] += t[j] * invk - ac[j];
            out[CH_NCAP * D + c] += (double)((float)(p.r1 - p.r0) * invk - (float)cnt[c]);
        }
        rows += p.r1 - p.r0;
    }
    out[CH_NCAP * D + CH_NCAP] = (double)rows * logk;
    out[CH_NCAP * D + CH_NCAP + 1] = (double)correct;
}

/* Loss sum and gradient sum (unscaled, no penalty) of one head over the rank's rows. out holds
 * [5*D weights grad, 5 bias grad, loss, rows predicted right (the train accuracy for free)].
 * Per block of rows: the logits and softmax tile by tile (TR rows), the residuals g = p - onehot
 * kept for the block, then the gradient update over the whole block. f32 sums run within one
 * block of rows (d->blk: the rank's training rows of CH_PROBE_BLOCK archive rows, which no rank
 * count splits); blocks are added in double. So a block's sum is the same bits on any rank count
 * and only the association of the double block sums changes (~1e-16 relative). */
int KFN(ch_probe_head_sums)(const ch_probe_data *d, const float *x, const double *w, double *out) {
    const int D = d->D, P = CH_NCAP * D + CH_NCAP;
    float *wf = malloc(sizeof(float) * (CH_NCAP + 1) * (size_t)D); /* zero_sums needs 6 x D */
    if (!wf) return -1;
    int zero = 1;
    for (int i = 0; i < CH_NCAP * D; i++) {
        wf[i] = (float)w[i];
        zero &= w[i] == 0;
    }
    float bias[CH_NCAP];
    for (int c = 0; c < CH_NCAP; c++) {
        bias[c] = (float)w[CH_NCAP * D + c];
        zero &= bias[c] == 0;
    }
    memset(out, 0, sizeof(double) * (size_t)(P + 2));
    if (zero) {
        zero_sums(d, x, wf, out); /* wf is the scratch */
        free(wf);
        return 0;
    }
    int64_t correct = 0;
    float g[CH_NCAP][CH_PROBE_BLOCK]; /* the piece's residuals p - onehot(y) */
    for (piece pc = {0}; next_piece(d, &pc);) {
        const int64_t r0 = pc.r0;
        const int nb = (int)(pc.r1 - pc.r0);
        float gb[CH_NCAP] = {0};
        double loss = 0;
        for (int q = 0; q < nb; q += TR) {
            const int nr = nb - q < TR ? nb - q : TR;
            const float *xr[TR];
            for (int k = 0; k < TR; k++) xr[k] = x + (size_t)(r0 + q + (k < nr ? k : 0)) * D;
            v8f zv[CH_NCAP], pv[CH_NCAP], lv;
            tile_logits(wf, bias, xr, D, zv);
            tile_softmax(d->present, zv, pv, &lv);
            /* argmax over the present classes, ties to the lower class, against the labels */
            v8f bz = splat8(-INFINITY);
            v8i bc = {0}, yv;
            for (int c = 0; c < CH_NCAP; c++) {
                if (!d->present[c]) continue;
                const v8i gt = zv[c] > bz;
                bz = select8(gt, zv[c], bz);
                bc = (gt & c) | (~gt & bc);
            }
            const int32_t *yq = d->y + r0 + q;
            for (int k = 0; k < TR; k++) yv[k] = k < nr ? yq[k] : -1;
            const v8i hit = bc == yv;
            for (int k = 0; k < TR; k++) correct -= hit[k]; /* -1 where right */
            float z[CH_NCAP][TR], lse[TR];
            memcpy(z, zv, sizeof z), memcpy(lse, &lv, sizeof lse);
            for (int c = 0; c < CH_NCAP; c++) {
                float pcv[TR];
                memcpy(pcv, &pv[c], sizeof pcv);
                for (int k = 0; k < nr; k++) g[c][q + k] = pcv[k];
            }
            for (int k = 0; k < nr; k++) {
                loss += (double)(lse[k] - z[yq[k]][k]);
                g[yq[k]][q + k] -= 1.0f;
            }
            for (int c = 0; c < CH_NCAP; c++)
                for (int k = 0; k < nr; k++) gb[c] += g[c][q + k];
        }
        block_grad(x + (size_t)r0 * D, nb, D, (const float(*)[CH_PROBE_BLOCK])g, out);
        for (int c = 0; c < CH_NCAP; c++) out[CH_NCAP * D + c] += gb[c];
        out[P] += loss;
    }
    out[P + 1] = (double)correct;
    free(wf);
    return 0;
}

/* ---- prediction -------------------------------------------------------------------------------- */

/* Probabilities ph [n][5] of one head's rows: xh [n][D] f32, or x16 binary16 rows standardized a
 * tile at a time into tile [TR][D]. */
static void predict_head(int D, int64_t n, const float *xh, const uint16_t *x16, const float *mean,
                         const float *std, float *tile, const float *Wh, const float *bh,
                         const int present[CH_NCAP], float *ph) {
    for (int64_t q = 0; q < n; q += TR) {
        const int nr = n - q < TR ? (int)(n - q) : TR;
        const float *xr[TR];
        if (x16) {
            ch_probe_standardize16(nr, D, x16 + (size_t)q * D, mean, std, tile);
            for (int k = 0; k < TR; k++) xr[k] = tile + (size_t)(k < nr ? k : 0) * D;
        } else {
            for (int k = 0; k < TR; k++) xr[k] = xh + (size_t)(q + (k < nr ? k : 0)) * D;
        }
        v8f zv[CH_NCAP], pv[CH_NCAP], lv;
        tile_logits(Wh, bh, xr, D, zv);
        tile_softmax(present, zv, pv, &lv);
        float p[CH_NCAP][TR];
        memcpy(p, pv, sizeof p);
        for (int k = 0; k < nr; k++)
            for (int c = 0; c < CH_NCAP; c++) ph[(size_t)(q + k) * CH_NCAP + c] = p[c][k];
    }
}

void KFN(ch_probe_predict)(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                           const int present[CH_NCAP], float *prob) {
#pragma omp parallel for schedule(static)
    for (int h = 0; h < nh; h++)
        predict_head(D, n, x + (size_t)h * (size_t)n * D, NULL, NULL, NULL, NULL,
                     W + (size_t)h * CH_NCAP * D, b + (size_t)h * CH_NCAP, present,
                     prob + (size_t)h * n * CH_NCAP);
}

int KFN(ch_probe_predict16)(int nh, int D, int64_t n, const uint16_t *x16, const float *mean,
                            const float *std, const float *W, const float *b,
                            const int present[CH_NCAP], float *prob) {
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        float *tile = ch_probe_alloc_f32((size_t)TR * D);
        bad = tile == NULL;
#pragma omp for schedule(static)
        for (int h = 0; h < nh; h++)
            if (tile)
                predict_head(D, n, NULL, x16 + (size_t)h * (size_t)n * D, mean + (size_t)h * D,
                             std + (size_t)h * D, tile, W + (size_t)h * CH_NCAP * D,
                             b + (size_t)h * CH_NCAP, present, prob + (size_t)h * n * CH_NCAP);
        free(tile);
    }
    if (bad) return ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory for a prediction tile");
    return 0;
}

#ifndef CH_PROBE_KERNEL_V3 /* ---- once: the shared parts and the entry points ---------------- */

/* ---- binary16 rows, standardized ------------------------------------------------------------ */

float *ch_probe_alloc_f32(size_t n) {
    void *p = NULL;
    /* aligned rows (D = 128: 512 B) keep the tiles' vector loads within cache lines */
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float))) return NULL;
    return p;
}

/* out[i][k] = (x16[i][k] - mean[k]) / std[k] for k in [k0, D): the rule, one value at a time. */
static void standardize_plain(int64_t n, int k0, int D, const uint16_t *x16, const float *mean,
                              const float *std, float *out) {
    for (int64_t i = 0; i < n; i++)
        for (int k = k0; k < D; k++)
            out[(size_t)i * D + k] = (ch_f16_to_f32(x16[(size_t)i * D + k]) - mean[k]) / std[k];
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
/* The F16C path of ch_probe_standardize16: the same operations (exact widening, subtract,
 * divide) in one pass, 8 values at a time. */
__attribute__((target("avx2,f16c"))) static void standardize_f16c(int64_t n, int D, const uint16_t *x16,
                                                                  const float *mean,
                                                                  const float *std, float *out) {
    const int D8 = D & ~7;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t *x = x16 + (size_t)i * D;
        float *o = out + (size_t)i * D;
        for (int k = 0; k < D8; k += 8) {
            const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + k)));
            _mm256_storeu_ps(o + k, _mm256_div_ps(_mm256_sub_ps(f, _mm256_loadu_ps(mean + k)),
                                                  _mm256_loadu_ps(std + k)));
        }
    }
    if (D8 < D) standardize_plain(n, D8, D, x16, mean, std, out); /* head_dim not a multiple of 8 */
}
#define HAVE_STANDARDIZE_F16C 1
#endif

void ch_probe_standardize16(int64_t n, int D, const uint16_t *x16, const float *mean,
                            const float *std, float *out) {
#ifdef HAVE_STANDARDIZE_F16C
    if (ch_h5_have_f16c()) {
        standardize_f16c(n, D, x16, mean, std, out);
        return;
    }
#endif
    standardize_plain(n, 0, D, x16, mean, std, out);
}

/* ---- the entry points: the copy for this CPU, AVX2+FMA where it runs ------------------------- */

static int use_v3(void) {
#ifdef CH_PROBE_HAVE_V3
    return __builtin_cpu_supports("x86-64-v3");
#else
    return 0;
#endif
}

int ch_probe_head_sums(const ch_probe_data *d, const float *x, const double *w, double *out) {
#ifdef CH_PROBE_HAVE_V3
    if (use_v3()) return ch_probe_head_sums_v3(d, x, w, out);
#endif
    return ch_probe_head_sums_base(d, x, w, out);
}

void ch_probe_predict(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                      const int present[CH_NCAP], float *prob) {
#ifdef CH_PROBE_HAVE_V3
    if (use_v3()) {
        ch_probe_predict_v3(nh, D, n, x, W, b, present, prob);
        return;
    }
#endif
    ch_probe_predict_base(nh, D, n, x, W, b, present, prob);
}

int ch_probe_predict16(int nh, int D, int64_t n, const uint16_t *x16, const float *mean,
                       const float *std, const float *W, const float *b, const int present[CH_NCAP],
                       float *prob) {
#ifdef CH_PROBE_HAVE_V3
    if (use_v3()) return ch_probe_predict16_v3(nh, D, n, x16, mean, std, W, b, present, prob);
#endif
    return ch_probe_predict16_base(nh, D, n, x16, mean, std, W, b, present, prob);
}

#endif /* once */
