/* probe.c - fitting math of the per-head probes (see probe.h for the objective and solver). */
#include "probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ISO C mode turns off contraction of a*b+c into FMA; the fit's products want it (both clones
 * of the hot loop below stay deterministic on their own). */
#pragma GCC optimize("fp-contract=fast")

#ifdef _OPENMP
#include <omp.h>
#endif


void ch_probe_opts_default(ch_probe_opts *o) {
    o->lambda = 1e-3;
    o->tol = 1e-5;
    o->max_evals = 500;
    o->history = 10;
    o->cache_mib = 16;
}

uint64_t ch_probe_fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int ch_probe_is_validation(const char *id) { return ch_probe_fnv1a64(id) % 5 == 0; }

#define TR 8 /* rows per tile: a tile's logits are one 8-lane vector per class */

/* Eight-lane float vectors (GCC/clang vector extensions: AVX registers in the x86-64-v3 clone,
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

/* One tile of TR rows xr[k] under weights w [5][D] and bias b: logits z[c] and probabilities
 * p[c] (lane k = row k; 0 for classes with keep[c] == 0) and the log-sum-exp of each row;
 * w_zero says W is all zero. Used by the fit and the prediction alike. */
INLINE void tile_softmax(const float *restrict w, const float *restrict b, const int *keep,
                         const float *const *xr, int D, int w_zero, v8f z[CH_NCAP], v8f p[CH_NCAP],
                         v8f *lse) {
    const int D8 = D & ~7;
    for (int c = 0; c < CH_NCAP; c++) {
        if (w_zero) { /* the fit's first evaluation (W = 0): every logit is the bias */
            z[c] = splat8(b[c]);
            continue;
        }
        const float *wc = w + (size_t)c * D;
        /* eight independent accumulators, spelled out so that they stay in registers */
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        for (int j = 0; j < D8; j += 8) {
            const v8f wv = load8(wc + j);
            a0 += wv * load8(xr[0] + j), a1 += wv * load8(xr[1] + j);
            a2 += wv * load8(xr[2] + j), a3 += wv * load8(xr[3] + j);
            a4 += wv * load8(xr[4] + j), a5 += wv * load8(xr[5] + j);
            a6 += wv * load8(xr[6] + j), a7 += wv * load8(xr[7] + j);
        }
        const v8f a[TR] = {a0, a1, a2, a3, a4, a5, a6, a7};
        v8f zc = hsum8x8(a);
        for (int j = D8; j < D; j++) { /* head_dim not a multiple of 8 */
            float t[TR];
            for (int k = 0; k < TR; k++) t[k] = wc[j] * xr[k][j];
            zc += load8(t);
        }
        z[c] = zc + b[c];
    }
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

/* Loss sum and gradient sum (unscaled, no penalty) of one head over the rank's rows. out holds
 * [5*D weights grad, 5 bias grad, loss, rows predicted right (the train accuracy for free)]. The work is two thin products per row (5 logits, then a
 * rank-5 update of the 5 x D gradient), so it is written for registers and tiles of TR rows:
 * the update adds TR rows per load/store of the accumulator, all in f32. f32 sums run within
 * one block of rows (d->blk: the rank's training rows of CH_PROBE_BLOCK archive rows, which no
 * rank count splits); blocks are added in double. So a block's sum is the same bits on any rank
 * count and only the association of the double block sums changes (~1e-16 relative). */
#define HOT CH_PROBE_HOT
HOT static int head_sums(const ch_probe_data *d, const float *x, const double *w, double *out) {
    const int D = d->D, P = CH_NCAP * D + CH_NCAP;
    float *wf = malloc(sizeof(float) * 2 * CH_NCAP * (size_t)D);
    if (!wf) return -1;
    float *acc = wf + (size_t)CH_NCAP * D; /* the block's weight-gradient sum [5][D] */
    int w_zero = 1;
    for (int i = 0; i < CH_NCAP * D; i++) {
        wf[i] = (float)w[i];
        w_zero &= wf[i] == 0;
    }
    float bias[CH_NCAP];
    for (int c = 0; c < CH_NCAP; c++) bias[c] = (float)w[CH_NCAP * D + c];
    memset(out, 0, sizeof(double) * (size_t)(P + 2));
    int64_t correct = 0;
    const int64_t nblk = d->blk ? d->nblk : (d->n + CH_PROBE_BLOCK - 1) / CH_PROBE_BLOCK;
    for (int64_t bk = 0; bk < nblk; bk++) {
        int64_t r0 = d->blk ? d->blk[bk] : bk * CH_PROBE_BLOCK;
        int64_t r1 = d->blk ? d->blk[bk + 1] : r0 + CH_PROBE_BLOCK;
        if (r1 > d->n) r1 = d->n;
        if (r0 >= r1) continue;
        memset(acc, 0, sizeof(float) * CH_NCAP * (size_t)D);
        float gb[CH_NCAP] = {0};
        double loss = 0;
        for (int64_t q = r0; q < r1; q += TR) {
            const int nr = r1 - q < TR ? (int)(r1 - q) : TR;
            const float *xr[TR];
            for (int k = 0; k < TR; k++) xr[k] = x + (size_t)(q + (k < nr ? k : 0)) * D;
            v8f zv[CH_NCAP], pv[CH_NCAP], lv;
            tile_softmax(wf, bias, d->present, xr, D, w_zero, zv, pv, &lv);
            /* argmax over the present classes, ties to the lower class, against the labels */
            v8f bz = splat8(-INFINITY);
            v8i bc = {0}, yv;
            for (int c = 0; c < CH_NCAP; c++) {
                if (!d->present[c]) continue;
                const v8i gt = zv[c] > bz;
                bz = select8(gt, zv[c], bz);
                bc = (gt & c) | (~gt & bc);
            }
            for (int k = 0; k < TR; k++) yv[k] = k < nr ? d->y[q + k] : -1;
            const v8i hit = bc == yv;
            for (int k = 0; k < TR; k++) correct -= hit[k]; /* -1 where right */
            float z[CH_NCAP][TR], g[CH_NCAP][TR], lse[TR];
            memcpy(z, zv, sizeof z), memcpy(g, pv, sizeof g), memcpy(lse, &lv, sizeof lse);
            for (int k = 0; k < TR; k++) {
                if (k >= nr) { /* padding rows (copies of the first) add nothing */
                    for (int c = 0; c < CH_NCAP; c++) g[c][k] = 0;
                    continue;
                }
                const int y = d->y[q + k];
                loss += (double)(lse[k] - z[y][k]);
                g[y][k] -= 1.0f;
            }
            /* acc[c] += sum_k g[c][k] * x_k */
            for (int c = 0; c < CH_NCAP; c++) {
                float *restrict ac = acc + (size_t)c * D;
                const float *restrict x0 = xr[0], *restrict x1 = xr[1], *restrict x2 = xr[2], *restrict x3 = xr[3];
                const float *restrict x4 = xr[4], *restrict x5 = xr[5], *restrict x6 = xr[6], *restrict x7 = xr[7];
                const float g0 = g[c][0], g1 = g[c][1], g2 = g[c][2], g3 = g[c][3];
                const float g4 = g[c][4], g5 = g[c][5], g6 = g[c][6], g7 = g[c][7];
#pragma omp simd
                for (int j = 0; j < D; j++)
                    ac[j] += ((g0 * x0[j] + g1 * x1[j]) + (g2 * x2[j] + g3 * x3[j])) +
                             ((g4 * x4[j] + g5 * x5[j]) + (g6 * x6[j] + g7 * x7[j]));
                gb[c] += ((g0 + g1) + (g2 + g3)) + ((g4 + g5) + (g6 + g7));
            }
        }
        double *restrict o = out;
        const float *restrict ac = acc;
#pragma omp simd
        for (int i = 0; i < CH_NCAP * D; i++) o[i] += ac[i];
        for (int c = 0; c < CH_NCAP; c++) out[CH_NCAP * D + c] += gb[c];
        out[P] += loss;
    }
    out[P + 1] = (double)correct;
    free(wf);
    return 0;
}

/* Sum buf over ranks with the same result on every rank (Reduce in a fixed tree + Bcast). */
static int allsum(double *buf, double *tmp, int n, MPI_Comm comm) {
    int rank;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "MPI_Comm_rank failed");
    if (MPI_Reduce(buf, tmp, n, MPI_DOUBLE, MPI_SUM, 0, comm) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Reduce of probe gradients failed");
    if (rank == 0) memcpy(buf, tmp, sizeof(double) * (size_t)n);
    if (MPI_Bcast(buf, n, MPI_DOUBLE, 0, comm) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Bcast of probe gradients failed");
    return 0;
}

/* Loss f[h] and gradient g[h] of every active head at w (global, scaled, with penalty). */
/* Loss f[h], gradient g[h] and train rows predicted right cor[h] of every active head at w
 * (global, scaled, with penalty). */
static int evaluate(const ch_probe_opts *o, const ch_probe_data *d, const double *w,
                    const uint8_t *active, double *f, double *g, int64_t *cor, double *sums, double *tmp,
                    MPI_Comm comm) {
    const int D = d->D, P = CH_NCAP * D + CH_NCAP, nh = d->nh;
    const size_t S = (size_t)P + 2; /* per head: gradient, loss, correct count */
    int bad = 0;
#pragma omp parallel for schedule(dynamic) reduction(| : bad)
    for (int h = 0; h < nh; h++) {
        double *s = sums + (size_t)h * S;
        if (!active[h]) {
            memset(s, 0, sizeof(double) * S);
            continue;
        }
        if (head_sums(d, d->x + (size_t)h * (size_t)d->n * D, w + (size_t)h * P, s)) bad = 1;
    }
    if (bad) CH_FAIL(CH_ENOMEM, "out of memory for probe scratch (head_dim %d)", D);
    CH_TRY(allsum(sums, tmp, nh * (int)S, comm));
    const double inv = 1.0 / (double)d->n_global;
    for (int h = 0; h < nh; h++) {
        if (!active[h]) continue;
        const double *s = sums + (size_t)h * S, *wh = w + (size_t)h * P;
        double *gh = g + (size_t)h * P, reg = 0;
        for (int i = 0; i < CH_NCAP * D; i++) {
            gh[i] = s[i] * inv + o->lambda * wh[i];
            reg += wh[i] * wh[i];
        }
        for (int c = 0; c < CH_NCAP; c++) gh[CH_NCAP * D + c] = d->present[c] ? s[CH_NCAP * D + c] * inv : 0;
        f[h] = s[P] * inv + 0.5 * o->lambda * reg;
        cor[h] = (int64_t)s[P + 1];
    }
    return 0;
}

static double dot(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double maxabs(const double *a, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

typedef struct {
    int P, m;
    double *S, *Y, *rho; /* [m][P], [m][P], [m] ring */
    int count, next;
} lbfgs_hist;

/* d = -H g by the two-loop recursion (H0 = gamma I, gamma = s'y / y'y of the newest pair). */
static void two_loop(const lbfgs_hist *hs, const double *g, double *d, double *alpha) {
    const int P = hs->P;
    for (int i = 0; i < P; i++) d[i] = -g[i];
    for (int k = 0; k < hs->count; k++) {
        int j = (hs->next - 1 - k + hs->m) % hs->m;
        alpha[j] = hs->rho[j] * dot(hs->S + (size_t)j * P, d, P);
        const double *y = hs->Y + (size_t)j * P;
        for (int i = 0; i < P; i++) d[i] -= alpha[j] * y[i];
    }
    if (hs->count > 0) {
        int j = (hs->next - 1 + hs->m) % hs->m;
        const double *y = hs->Y + (size_t)j * P;
        double gamma = 1.0 / (hs->rho[j] * dot(y, y, P));
        for (int i = 0; i < P; i++) d[i] *= gamma;
    }
    for (int k = hs->count - 1; k >= 0; k--) {
        int j = (hs->next - 1 - k + hs->m) % hs->m;
        double beta = hs->rho[j] * dot(hs->Y + (size_t)j * P, d, P);
        const double *s = hs->S + (size_t)j * P;
        for (int i = 0; i < P; i++) d[i] += (alpha[j] - beta) * s[i];
    }
}

/* Fresh steepest-descent direction with a step that moves at most 1 in 2-norm. */
static double restart(const double *g, double *d, int P) {
    for (int i = 0; i < P; i++) d[i] = -g[i];
    double gn = sqrt(dot(g, g, P));
    return gn > 1 ? 1.0 / gn : 1.0;
}

static int fit_batch(const ch_probe_opts *o, const ch_probe_data *d, MPI_Comm comm, float *W, float *b,
                     int64_t *train_correct, int *evals_out, int *unconverged_out) {
    const int nh = d->nh, D = d->D, P = CH_NCAP * D + CH_NCAP, m = o->history;
    if (nh <= 0) return 0;
    if (d->n_global <= 0) CH_FAIL(CH_EARG, "no training rows to fit the probes on");
    const size_t NP = (size_t)nh * P;
    double *x = NULL, *xt = NULL, *g = NULL, *gt = NULL, *dir = NULL, *f = NULL, *ft = NULL,
           *t = NULL, *gd = NULL, *sums = NULL, *tmp = NULL, *S = NULL, *Y = NULL, *rho = NULL,
           *alpha = NULL;
    uint8_t *active = NULL;
    int64_t *cor = NULL, *cort = NULL;
    lbfgs_hist *hist = NULL;
    int rc = 0, evals = 0;
    CH_TRY_GOTO(CH_ALLOC(x, NP, "probe parameters"), done);
    CH_TRY_GOTO(CH_ALLOC(xt, NP, "probe trial parameters"), done);
    CH_TRY_GOTO(CH_ALLOC(g, NP, "probe gradients"), done);
    CH_TRY_GOTO(CH_ALLOC(gt, NP, "probe trial gradients"), done);
    CH_TRY_GOTO(CH_ALLOC(dir, NP, "probe directions"), done);
    CH_TRY_GOTO(CH_ALLOC(sums, (size_t)nh * (P + 2), "probe partial sums"), done);
    CH_TRY_GOTO(CH_ALLOC(tmp, (size_t)nh * (P + 2), "probe reduction buffer"), done);
    CH_TRY_GOTO(CH_ALLOC(cor, nh, "probe train counts"), done);
    CH_TRY_GOTO(CH_ALLOC(cort, nh, "probe train counts"), done);
    CH_TRY_GOTO(CH_ALLOC(S, NP * m, "L-BFGS history"), done);
    CH_TRY_GOTO(CH_ALLOC(Y, NP * m, "L-BFGS history"), done);
    CH_TRY_GOTO(CH_ALLOC(rho, (size_t)nh * m, "L-BFGS history"), done);
    CH_TRY_GOTO(CH_ALLOC(alpha, (size_t)m, "L-BFGS scratch"), done);
    CH_TRY_GOTO(CH_ALLOC(f, nh, "probe losses"), done);
    CH_TRY_GOTO(CH_ALLOC(ft, nh, "probe losses"), done);
    CH_TRY_GOTO(CH_ALLOC(t, nh, "probe steps"), done);
    CH_TRY_GOTO(CH_ALLOC(gd, nh, "probe slopes"), done);
    CH_TRY_GOTO(CH_ALLOC(active, nh, "probe mask"), done);
    CH_TRY_GOTO(CH_ALLOC(hist, nh, "L-BFGS state"), done);
    for (int h = 0; h < nh; h++) {
        hist[h] = (lbfgs_hist){P, m, S + (size_t)h * m * P, Y + (size_t)h * m * P, rho + (size_t)h * m, 0, 0};
        active[h] = 1;
    }
    CH_TRY_GOTO(evaluate(o, d, x, active, f, g, cor, sums, tmp, comm), done);
    evals = 1;
    int npresent = 0;
    for (int c = 0; c < CH_NCAP; c++) npresent += d->present[c] != 0;
    const double hdiag = 1.0 / npresent;
    int n_active = 0;
    for (int h = 0; h < nh; h++) {
        double *gh = g + (size_t)h * P;
        if (maxabs(gh, P) <= o->tol) {
            active[h] = 0;
            continue;
        }
        n_active++;
        /* First step: Newton's, with the Hessian at the start taken as block-diagonal. At
         * W = 0, b = 0 every present class has p = 1/K, so the softmax curvature is
         * (diag(p) - p p^T), which is p I on the gradients' subspace (their class sum is 0),
         * times the features' second moment, the identity for standardized data up to their
         * correlations: H ~ (1/K) I (+ lambda for W). One such step nearly solves a head without
         * signal, where a unit-length steepest-descent step needed ~3 more evaluations. */
        double *dh = dir + (size_t)h * P;
        for (int i = 0; i < P; i++) dh[i] = -gh[i] / (i < CH_NCAP * D ? hdiag + o->lambda : hdiag);
        t[h] = 1.0;
        gd[h] = dot(gh, dh, P);
    }
    while (n_active > 0 && evals < o->max_evals) {
        for (int h = 0; h < nh; h++) {
            if (!active[h]) continue;
            const double *xh = x + (size_t)h * P, *dh = dir + (size_t)h * P;
            double *th = xt + (size_t)h * P;
            for (int i = 0; i < P; i++) th[i] = xh[i] + t[h] * dh[i];
        }
        CH_TRY_GOTO(evaluate(o, d, xt, active, ft, gt, cort, sums, tmp, comm), done);
        evals++;
        for (int h = 0; h < nh; h++) {
            if (!active[h]) continue;
            double *xh = x + (size_t)h * P, *gh = g + (size_t)h * P, *dh = dir + (size_t)h * P;
            const double *th = xt + (size_t)h * P, *gth = gt + (size_t)h * P;
            if (ft[h] <= f[h] + 1e-4 * t[h] * gd[h]) { /* Armijo: accept */
                lbfgs_hist *hs = &hist[h];
                double *s = hs->S + (size_t)hs->next * P, *y = hs->Y + (size_t)hs->next * P;
                for (int i = 0; i < P; i++) {
                    s[i] = th[i] - xh[i];
                    y[i] = gth[i] - gh[i];
                }
                double sy = dot(s, y, P);
                if (sy > 1e-12 * sqrt(dot(s, s, P) * dot(y, y, P)) && sy > 0) {
                    hs->rho[hs->next] = 1.0 / sy;
                    hs->next = (hs->next + 1) % m;
                    if (hs->count < m) hs->count++;
                }
                memcpy(xh, th, sizeof(double) * P);
                memcpy(gh, gth, sizeof(double) * P);
                f[h] = ft[h];
                cor[h] = cort[h];
                if (maxabs(gh, P) <= o->tol) {
                    active[h] = 0;
                    n_active--;
                    continue;
                }
                two_loop(hs, gh, dh, alpha);
                t[h] = 1.0;
                gd[h] = dot(gh, dh, P);
                if (!(gd[h] < 0)) { /* not a descent direction: forget the curvature pairs */
                    hs->count = hs->next = 0;
                    t[h] = restart(gh, dh, P);
                    gd[h] = dot(gh, dh, P);
                }
            } else {
                t[h] *= 0.5;
                if (t[h] * sqrt(dot(dh, dh, P)) < 1e-14) {
                    if (hist[h].count > 0) { /* stale curvature: retry from steepest descent */
                        hist[h].count = hist[h].next = 0;
                        t[h] = restart(gh, dh, P);
                        gd[h] = dot(gh, dh, P);
                    } else { /* f cannot decrease along -g at f64 precision: at the optimum */
                        active[h] = 0;
                        n_active--;
                    }
                }
            }
        }
    }
    for (int h = 0; h < nh; h++) {
        const double *xh = x + (size_t)h * P;
        for (int i = 0; i < CH_NCAP * D; i++) W[(size_t)h * CH_NCAP * D + i] = (float)xh[i];
        for (int c = 0; c < CH_NCAP; c++) b[(size_t)h * CH_NCAP + c] = (float)xh[CH_NCAP * D + c];
    }
    if (evals_out) *evals_out = evals;
    if (unconverged_out) *unconverged_out = n_active;
    if (train_correct) memcpy(train_correct, cor, sizeof *cor * (size_t)nh);
done:
    free(cor), free(cort);
    free(x), free(xt), free(g), free(gt), free(dir), free(f), free(ft), free(t), free(gd);
    free(sums), free(tmp), free(S), free(Y), free(rho), free(alpha), free(active), free(hist);
    return rc;
}

/* Heads are independent problems, so they are fitted in batches small enough that a batch's
 * rows stay in the last-level cache across its evaluations (each evaluation streams every
 * active head's rows once; from memory that, not arithmetic, bounds the speed). A head's path
 * does not depend on which batch it is in, so the batch size changes no result; it only has to
 * be the same on every rank (the evaluations are collective), hence the reduced row count. */
int ch_probe_fit(const ch_probe_opts *o, const ch_probe_data *d, MPI_Comm comm, float *W, float *b,
                 int64_t *train_correct, int *evals_out, int *unconverged_out) {
    int64_t nmax = d->n;
    if (MPI_Allreduce(&d->n, &nmax, 1, MPI_INT64_T, MPI_MAX, comm) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Allreduce of the row count failed");
    const double head_bytes = (double)(nmax > 0 ? nmax : 1) * d->D * sizeof *d->x;
    int hb = (int)(o->cache_mib * 1048576.0 / head_bytes);
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    hb = hb < nt ? nt : hb;
    hb = hb < 1 ? 1 : hb > d->nh ? d->nh : hb;
    int evals = 0, unconv = 0;
    for (int h0 = 0; h0 < d->nh; h0 += hb) {
        ch_probe_data s = *d;
        s.nh = d->nh - h0 < hb ? d->nh - h0 : hb;
        s.x = d->x + (size_t)h0 * (size_t)d->n * d->D;
        int e = 0, u = 0;
        CH_TRY(fit_batch(o, &s, comm, W + (size_t)h0 * CH_NCAP * d->D, b + (size_t)h0 * CH_NCAP,
                         train_correct ? train_correct + h0 : NULL, &e, &u));
        evals = e > evals ? e : evals;
        unconv += u;
    }
    if (evals_out) *evals_out = evals;
    if (unconverged_out) *unconverged_out = unconv;
    return 0;
}

HOT void ch_probe_predict(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                          const int present[CH_NCAP], float *prob) {
#pragma omp parallel for schedule(static)
    for (int h = 0; h < nh; h++) {
        const float *xh = x + (size_t)h * (size_t)n * D, *Wh = W + (size_t)h * CH_NCAP * D;
        float *ph = prob + (size_t)h * n * CH_NCAP;
        for (int64_t q = 0; q < n; q += TR) {
            const int nr = n - q < TR ? (int)(n - q) : TR;
            const float *xr[TR];
            for (int k = 0; k < TR; k++) xr[k] = xh + (size_t)(q + (k < nr ? k : 0)) * D;
            v8f zv[CH_NCAP], pv[CH_NCAP], lv;
            tile_softmax(Wh, b + (size_t)h * CH_NCAP, present, xr, D, 0, zv, pv, &lv);
            float p[CH_NCAP][TR];
            memcpy(p, pv, sizeof p);
            for (int k = 0; k < nr; k++)
                for (int c = 0; c < CH_NCAP; c++) ph[(size_t)(q + k) * CH_NCAP + c] = p[c][k];
        }
    }
}

/* Order-preserving unsigned key of a float (negative floats flipped whole, positive ones get
 * the sign bit): the radix sort below then sorts by value. */
static uint32_t float_key(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/* Stable LSD radix sort of a[0..n) by score, 8 bits a pass, b[0..n) as the other buffer; the
 * result ends in a (an even number of passes). The AUC's ~5 x heads sorts made qsort's
 * callbacks a visible share of the stage. */
static void sort_pairs(ch_auc_pair *a, ch_auc_pair *b, int64_t n) {
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t cnt[257] = {0};
        for (int64_t i = 0; i < n; i++) cnt[((float_key(a[i].s) >> shift) & 255) + 1]++;
        for (int k = 0; k < 256; k++) cnt[k + 1] += cnt[k];
        for (int64_t i = 0; i < n; i++) b[cnt[(float_key(a[i].s) >> shift) & 255]++] = a[i];
        ch_auc_pair *t = a;
        a = b, b = t;
    }
}

double ch_probe_auc(const float *score, int stride, const uint8_t *pos, int64_t n,
                    ch_auc_pair *scratch) {
    int64_t npos = 0;
    for (int64_t i = 0; i < n; i++) {
        scratch[i].s = score[i * stride];
        scratch[i].pos = pos[i] != 0;
        npos += pos[i] != 0;
    }
    if (npos == 0 || npos == n) return NAN;
    sort_pairs(scratch, scratch + n, n);
    /* Sum of the positives' ranks (1-based), tied scores sharing their average rank. */
    double rank_sum = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && scratch[j].s == scratch[i].s) j++;
        double avg = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1..j */
        for (int64_t k = i; k < j; k++)
            if (scratch[k].pos) rank_sum += avg;
        i = j;
    }
    double nneg = (double)(n - npos);
    return (rank_sum - 0.5 * (double)npos * (double)(npos + 1)) / ((double)npos * nneg);
}
