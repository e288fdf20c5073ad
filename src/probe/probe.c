/* probe.c - fitting math of the per-head probes (see probe.h for the objective and solver). */
#include "probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mpicheck.h"
#include "probe_kernel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void ch_probe_opts_default(ch_probe_opts *o) {
    o->lambda = 1e-3;
    o->tol = 1e-5;
    o->max_evals = 500;
    o->history = 10;
    o->cache_mib = 4;
}

uint64_t ch_probe_fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int ch_probe_split(const char *id) {
    const uint64_t b = ch_probe_fnv1a64(id) % 5;
    return b == 0 ? CH_SPLIT_VAL : b == 1 ? CH_SPLIT_TEST : CH_SPLIT_TRAIN;
}

int ch_probe_is_validation(const char *id) { return ch_probe_split(id) == CH_SPLIT_VAL; }

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int ch_probe_parse_grid(const char *opt, const char *s, double *grid, int *n) {
    *n = 0;
    for (const char *p = s;;) {
        const char *e = strchr(p, ',');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item)
            CH_FAIL(CH_EARG, "--%s: empty or overlong item in '%s'", opt, s);
        memcpy(item, p, len);
        item[len] = 0;
        char *end;
        const double v = strtod(item, &end);
        if (*end || !(v > 0) || !isfinite(v))
            CH_FAIL(CH_EARG, "--%s expects numbers > 0 separated by commas, got '%s' in '%s'", opt, item, s);
        if (*n >= CH_PROBE_MAX_LAMBDAS)
            CH_FAIL(CH_EARG, "--%s: more than %d values in '%s'", opt, CH_PROBE_MAX_LAMBDAS, s);
        grid[(*n)++] = v;
        if (!e) break;
        p = e + 1;
    }
    qsort(grid, (size_t)*n, sizeof *grid, cmp_double);
    for (int i = 1; i < *n; i++)
        if (grid[i] == grid[i - 1]) CH_FAIL(CH_EARG, "--%s: %g given twice in '%s'", opt, grid[i], s);
    return 0;
}

/* Sum buf over ranks with the same result on every rank (Reduce in a fixed tree + Bcast). */
static int allsum(double *buf, double *tmp, int n, MPI_Comm comm) {
    int rank;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Reduce(buf, tmp, n, MPI_DOUBLE, MPI_SUM, 0, comm));
    if (rank == 0) memcpy(buf, tmp, sizeof(double) * (size_t)n);
    CH_MPI_TRY(MPI_Bcast(buf, n, MPI_DOUBLE, 0, comm));
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
        if (ch_probe_head_sums(d, d->x + (size_t)h * (size_t)d->n * D, w + (size_t)h * P, s)) bad = 1;
    }
    if (bad) CH_FAIL(CH_ENOMEM, "out of memory for probe scratch (head_dim %d)", D);
    CH_TRY(allsum(sums, tmp, nh * (int)S, comm));
    const double inv = 1.0 / (double)d->n_global;
    for (int h = 0; h < nh; h++) {
        if (!active[h]) continue;
        const double *s = sums + (size_t)h * S, *wh = w + (size_t)h * P;
        double *gh = g + (size_t)h * P, reg = 0;
        const double lam = d->lambda ? d->lambda[h] : o->lambda;
        for (int i = 0; i < CH_NCAP * D; i++) {
            gh[i] = s[i] * inv + lam * wh[i];
            reg += wh[i] * wh[i];
        }
        for (int c = 0; c < CH_NCAP; c++) gh[CH_NCAP * D + c] = d->present[c] ? s[CH_NCAP * D + c] * inv : 0;
        f[h] = s[P] * inv + 0.5 * lam * reg;
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
        const double lam = d->lambda ? d->lambda[h] : o->lambda;
        for (int i = 0; i < P; i++) dh[i] = -gh[i] / (i < CH_NCAP * D ? hdiag + lam : hdiag);
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
 * active head's rows once; from memory that, not arithmetic, bounds the speed). Measured on the
 * bench archive (16,004 rows, 8 MB of f32 per head, 2-core VM): one head per batch 2.0-2.2 s,
 * two (16 MiB) 2.7-2.9 s, four 2.9-3.4 s, hence 4 MiB and at least one head. A head's path
 * does not depend on which batch it is in, so the batch size changes no result; it only has to
 * be the same on every rank (the evaluations are collective), hence the reduced row count. */
int ch_probe_fit(const ch_probe_opts *o, const ch_probe_data *d, MPI_Comm comm, float *W, float *b,
                 int64_t *train_correct, int *evals_out, int *unconverged_out) {
    int64_t nmax = d->n;
    CH_MPI_TRY(MPI_Allreduce(&d->n, &nmax, 1, MPI_INT64_T, MPI_MAX, comm));
    const double head_bytes = (double)(nmax > 0 ? nmax : 1) * d->D * sizeof *d->x;
    int hb = (int)(o->cache_mib * 1048576.0 / head_bytes);
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    hb = hb < nt ? nt : hb;
    hb = hb < 1 ? 1 : hb > d->nh ? d->nh : hb;
    /* binary16 input (or heads mapped by src): each batch is standardized (copied) into one f32
     * buffer, reused batch to batch */
    const size_t head_vals = (size_t)d->n * d->D;
    float *xb = NULL;
    if (d->x16 || d->src) { /* (a rank without rows still gets a buffer: no arithmetic on NULL below) */
        xb = ch_probe_alloc_f32((size_t)hb * head_vals);
        if (!xb)
            CH_FAIL(CH_ENOMEM, "out of memory for the probe batch (%d heads x %lld rows x %d)", hb,
                    (long long)d->n, d->D);
    }
    int evals = 0, unconv = 0, rc = 0;
    for (int h0 = 0; h0 < d->nh && !rc; h0 += hb) {
        ch_probe_data s = *d;
        s.nh = d->nh - h0 < hb ? d->nh - h0 : hb;
        s.src = NULL, s.lambda = d->lambda ? d->lambda + h0 : NULL;
        if (xb) {
#pragma omp parallel for schedule(static)
            for (int h = 0; h < s.nh; h++) {
                const size_t sh = (size_t)(d->src ? d->src[h0 + h] : h0 + h);
                if (d->x16)
                    ch_probe_standardize16(d->n, d->D, d->x16 + sh * head_vals, d->mean + sh * d->D,
                                           d->std + sh * d->D, xb + (size_t)h * head_vals);
                else
                    memcpy(xb + (size_t)h * head_vals, d->x + sh * head_vals, sizeof(float) * head_vals);
            }
            s.x = xb;
        } else {
            s.x = d->x + (size_t)h0 * head_vals;
        }
        int e = 0, u = 0;
        rc = fit_batch(o, &s, comm, W + (size_t)h0 * CH_NCAP * d->D, b + (size_t)h0 * CH_NCAP,
                       train_correct ? train_correct + h0 : NULL, &e, &u);
        evals = e > evals ? e : evals;
        unconv += u;
    }
    free(xb);
    if (rc) return rc;
    if (evals_out) *evals_out = evals;
    if (unconverged_out) *unconverged_out = unconv;
    return 0;
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
