/* probe.c - fitting math of the per-head probes (see probe.h for the objective and solver). */
#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"


void ch_probe_opts_default(ch_probe_opts *o) {
    o->lambda = 1e-3;
    o->tol = 1e-5;
    o->max_evals = 500;
    o->history = 10;
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

/* Softmax over the present classes of logits z (absent ones get p = 0). Returns log(sum exp). */
static double softmax5(const double *z, const int *present, double *p) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < CH_NCAP; c++)
        if (present[c] && z[c] > m) m = z[c];
    for (int c = 0; c < CH_NCAP; c++) {
        p[c] = present[c] ? exp(z[c] - m) : 0.0;
        s += p[c];
    }
    for (int c = 0; c < CH_NCAP; c++) p[c] /= s;
    return m + log(s);
}

/* Loss sum and gradient sum (unscaled, no penalty) of one head over the rank's rows. out holds
 * [5*D weights grad, 5 bias grad, loss]. Logits are f32 dot products of one row (independent of
 * how rows are split over ranks); each product G*x of two floats is exact in double, and the
 * sums are double, so a different rank count changes the result only at ~1e-16 relative. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* The hot loop of the stage: built for AVX2+FMA too and picked at load time (ifunc), since the
 * library itself targets baseline x86-64. Each variant is deterministic on its own. */
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif
HOT static int head_sums(const ch_probe_data *d, const float *x, const double *w, double *out) {
    const int D = d->D, P = CH_NCAP * D + CH_NCAP;
    float *wf = malloc(sizeof(float) * CH_NCAP * (size_t)D);
    if (!wf) return -1;
    for (int i = 0; i < CH_NCAP * D; i++) wf[i] = (float)w[i];
    memset(out, 0, sizeof(double) * (size_t)(P + 1));
    for (int64_t r = 0; r < d->n; r++) {
        const float *xi = x + (size_t)r * D;
        double z[CH_NCAP], p[CH_NCAP];
        for (int c = 0; c < CH_NCAP; c++) {
            const float *wc = wf + (size_t)c * D;
            float a = 0;
#pragma omp simd reduction(+ : a)
            for (int j = 0; j < D; j++) a += wc[j] * xi[j];
            z[c] = (double)a + w[CH_NCAP * D + c];
        }
        int y = d->y[r];
        out[P] += softmax5(z, d->present, p) - z[y];
        for (int c = 0; c < CH_NCAP; c++) {
            double gi = (double)(float)(p[c] - (c == y));
            double *g = out + (size_t)c * D;
            if (gi == 0) continue;
#pragma omp simd
            for (int j = 0; j < D; j++) g[j] += gi * (double)xi[j];
            out[CH_NCAP * D + c] += gi;
        }
    }
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
static int evaluate(const ch_probe_opts *o, const ch_probe_data *d, const double *w,
                    const uint8_t *active, double *f, double *g, double *sums, double *tmp,
                    MPI_Comm comm) {
    const int D = d->D, P = CH_NCAP * D + CH_NCAP, nh = d->nh;
    int bad = 0;
#pragma omp parallel for schedule(dynamic) reduction(| : bad)
    for (int h = 0; h < nh; h++) {
        double *s = sums + (size_t)h * (P + 1);
        if (!active[h]) {
            memset(s, 0, sizeof(double) * (size_t)(P + 1));
            continue;
        }
        if (head_sums(d, d->x + (size_t)h * (size_t)d->n * D, w + (size_t)h * P, s)) bad = 1;
    }
    if (bad) CH_FAIL(CH_ENOMEM, "out of memory for probe scratch (head_dim %d)", D);
    CH_TRY(allsum(sums, tmp, nh * (P + 1), comm));
    const double inv = 1.0 / (double)d->n_global;
    for (int h = 0; h < nh; h++) {
        if (!active[h]) continue;
        const double *s = sums + (size_t)h * (P + 1), *wh = w + (size_t)h * P;
        double *gh = g + (size_t)h * P, reg = 0;
        for (int i = 0; i < CH_NCAP * D; i++) {
            gh[i] = s[i] * inv + o->lambda * wh[i];
            reg += wh[i] * wh[i];
        }
        for (int c = 0; c < CH_NCAP; c++) gh[CH_NCAP * D + c] = d->present[c] ? s[CH_NCAP * D + c] * inv : 0;
        f[h] = s[P] * inv + 0.5 * o->lambda * reg;
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

int ch_probe_fit(const ch_probe_opts *o, const ch_probe_data *d, MPI_Comm comm, float *W, float *b,
                 int *evals_out, int *unconverged_out) {
    const int nh = d->nh, D = d->D, P = CH_NCAP * D + CH_NCAP, m = o->history;
    if (nh <= 0) return 0;
    if (d->n_global <= 0) CH_FAIL(CH_EARG, "no training rows to fit the probes on");
    const size_t NP = (size_t)nh * P;
    double *x = NULL, *xt = NULL, *g = NULL, *gt = NULL, *dir = NULL, *f = NULL, *ft = NULL,
           *t = NULL, *gd = NULL, *sums = NULL, *tmp = NULL, *S = NULL, *Y = NULL, *rho = NULL,
           *alpha = NULL;
    uint8_t *active = NULL;
    lbfgs_hist *hist = NULL;
    int rc = 0, evals = 0;
    CH_TRY_GOTO(CH_ALLOC(x, NP, "probe parameters"), done);
    CH_TRY_GOTO(CH_ALLOC(xt, NP, "probe trial parameters"), done);
    CH_TRY_GOTO(CH_ALLOC(g, NP, "probe gradients"), done);
    CH_TRY_GOTO(CH_ALLOC(gt, NP, "probe trial gradients"), done);
    CH_TRY_GOTO(CH_ALLOC(dir, NP, "probe directions"), done);
    CH_TRY_GOTO(CH_ALLOC(sums, (size_t)nh * (P + 1), "probe partial sums"), done);
    CH_TRY_GOTO(CH_ALLOC(tmp, (size_t)nh * (P + 1), "probe reduction buffer"), done);
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
    CH_TRY_GOTO(evaluate(o, d, x, active, f, g, sums, tmp, comm), done);
    evals = 1;
    int n_active = 0;
    for (int h = 0; h < nh; h++) {
        double *gh = g + (size_t)h * P;
        if (maxabs(gh, P) <= o->tol) {
            active[h] = 0;
            continue;
        }
        n_active++;
        t[h] = restart(gh, dir + (size_t)h * P, P);
        gd[h] = dot(gh, dir + (size_t)h * P, P);
    }
    while (n_active > 0 && evals < o->max_evals) {
        for (int h = 0; h < nh; h++) {
            if (!active[h]) continue;
            const double *xh = x + (size_t)h * P, *dh = dir + (size_t)h * P;
            double *th = xt + (size_t)h * P;
            for (int i = 0; i < P; i++) th[i] = xh[i] + t[h] * dh[i];
        }
        CH_TRY_GOTO(evaluate(o, d, xt, active, ft, gt, sums, tmp, comm), done);
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
done:
    free(x), free(xt), free(g), free(gt), free(dir), free(f), free(ft), free(t), free(gd);
    free(sums), free(tmp), free(S), free(Y), free(rho), free(alpha), free(active), free(hist);
    return rc;
}

HOT void ch_probe_predict(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                      const int present[CH_NCAP], float *prob) {
#pragma omp parallel for schedule(static)
    for (int h = 0; h < nh; h++) {
        const float *xh = x + (size_t)h * (size_t)n * D, *Wh = W + (size_t)h * CH_NCAP * D;
        for (int64_t i = 0; i < n; i++) {
            double z[CH_NCAP], p[CH_NCAP];
            for (int c = 0; c < CH_NCAP; c++) {
                float a = 0;
#pragma omp simd reduction(+ : a)
                for (int j = 0; j < D; j++) a += Wh[(size_t)c * D + j] * xh[(size_t)i * D + j];
                z[c] = (double)a + b[(size_t)h * CH_NCAP + c];
            }
            softmax5(z, present, p);
            for (int c = 0; c < CH_NCAP; c++) prob[((size_t)h * n + i) * CH_NCAP + c] = (float)p[c];
        }
    }
}

static int cmp_pair(const void *a, const void *b) {
    float x = ((const ch_auc_pair *)a)->s, y = ((const ch_auc_pair *)b)->s;
    return (x > y) - (x < y);
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
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_pair);
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
