/* probe.h - per-head multinomial logistic-regression probes over the five capabilities.
 *
 * The model for one head: p = softmax(W z + b), z the head's standardized activation (D values),
 * W [5, D], b [5]. Objective, the same on every rank count:
 *     f(W, b) = (1/n_train) * sum_i -log p_{y_i}(z_i) + (lambda/2) * ||W||^2   (b not penalized)
 * which is scikit-learn's LogisticRegression(multinomial, C) objective divided by C * n_train, so
 * C = 1 / (lambda * n_train). Classes absent from the training rows are masked out of the
 * softmax (probability 0, weights 0), like scikit-learn which fits only the classes it sees.
 *
 * Solver: L-BFGS (memory m) with Armijo backtracking, one instance per head, all heads of a group
 * run in lockstep: every function evaluation computes loss and gradient of every still-active
 * head from the rank's rows, and one reduction sums them over ranks. The reduction is MPI_Reduce
 * to rank 0 followed by MPI_Bcast (not MPI_Allreduce) so every rank sees bit-identical sums and
 * takes the same branch; partial sums are accumulated in f32 within a block of rows (CH_PROBE_BLOCK
 * archive rows, never split between ranks) and in double across blocks. Rank counts
 * change only the association of those double sums (~1e-16 relative), which the tests bound:
 * outputs agree to 1e-6 for 1..4 ranks. A head stops when its gradient's max-norm <= tol (or its
 * line search cannot decrease f any more); stopped heads are skipped in later evaluations. */
#ifndef CH_PROBE_H
#define CH_PROBE_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "archive.h"

typedef struct {
    double lambda; /* L2 strength on W (default 1e-3) */
    double tol;    /* stop when max |grad| <= tol (default 1e-6) */
    int max_evals; /* cap on function evaluations per head (default 500) */
    int history;   /* L-BFGS memory (default 10) */
    double cache_mib; /* rows of the heads fitted together at most this big (default 4 MiB; at
                       * least one head) */
} ch_probe_opts;

void ch_probe_opts_default(ch_probe_opts *o);

/* The train/validation split: FNV-1a 64-bit hash of the id's bytes; validation when hash % 5 == 0
 * (about 20%). Depends on the id only, so it does not change with rank count or row order. */
uint64_t ch_probe_fnv1a64(const char *s);
int ch_probe_is_validation(const char *id);

/* Rows per f32 summation block of the fit (see ch_probe_data.blk). */
#define CH_PROBE_BLOCK 32

/* Rank-local training data for a group of nh heads: x is head-major [nh][n][D] standardized
 * f32, or NULL when x16 holds the same rows as the archive's binary16 values (head-major
 * [nh][n][D]) with mean and std [nh][D]: the fit then standardizes a cache-sized batch of heads
 * at a time (ch_probe_standardize16), so the f32 copy of the whole group never exists.
 * y [n] labels in 0..4. n_global is the total number of training rows over all ranks.
 * blk (may be NULL: blocks of CH_PROBE_BLOCK rows) holds nblk + 1 offsets: block b is rows
 * [blk[b], blk[b+1]), the unit of f32 summation; for results that do not depend on the rank
 * count, a block must be the same rows on every rank count (cmd_probe: the training rows of
 * archive rows [k*CH_PROBE_BLOCK, (k+1)*CH_PROBE_BLOCK), and ranks own whole blocks). */
typedef struct {
    int nh, D;
    int64_t n, n_global;
    const float *x;
    const int32_t *y;
    int present[CH_NCAP]; /* 1 when the class has training rows somewhere */
    const int64_t *blk;
    int64_t nblk;
    const uint16_t *x16;
    const float *mean, *std;
} ch_probe_data;

/* Collective. Fits every head; W [nh][5][D] and b [nh][5] (outputs, identical on all ranks).
 * train_correct (may be NULL) gets per head the training rows of all ranks whose argmax class is
 * their label at the solution; evals_out (may be NULL) the most evaluations a head needed,
 * unconverged_out (may be NULL) the number of heads that hit max_evals. */
int ch_probe_fit(const ch_probe_opts *o, const ch_probe_data *d, MPI_Comm comm, float *W, float *b,
                 int64_t *train_correct, int *evals_out, int *unconverged_out);

/* Probabilities of n rows x [nh][n][D] for each head: prob [nh][n][5] (absent classes get 0). */
void ch_probe_predict(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                      const int present[CH_NCAP], float *prob);
/* The same from binary16 rows x16 [nh][n][D], standardized with mean, std [nh][D] on the way
 * (the same f32 values as ch_probe_standardize16's). Returns CH_ENOMEM (message set) or 0. */
int ch_probe_predict16(int nh, int D, int64_t n, const uint16_t *x16, const float *mean,
                       const float *std, const float *W, const float *b, const int present[CH_NCAP],
                       float *prob);
/* out [n][D] = (x16 - mean) / std in f32, x16 [n][D] binary16 bits, mean and std [D]. */
void ch_probe_standardize16(int64_t n, int D, const uint16_t *x16, const float *mean,
                            const float *std, float *out);
/* 64-byte aligned f32 buffer of n values (free with free()), NULL when out of memory. */
float *ch_probe_alloc_f32(size_t n);

/* One-vs-rest ROC AUC of score against pos (Mann-Whitney, ties count 1/2). NaN when there are no
 * positives or no negatives. stride: distance between consecutive scores; scratch holds 2n pairs. */
typedef struct {
    float s;
    int32_t pos;
} ch_auc_pair;
double ch_probe_auc(const float *score, int stride, const uint8_t *pos, int64_t n,
                    ch_auc_pair *scratch);

/* ---- results (src/probe_out.c) ---------------------------------------------------------------- */

#define CH_PROBES_FORMAT "capheads-probes"
#define CH_PROBES_VERSION 1

typedef struct {
    int L, H, D, k;
    float *weights, *bias, *mean, *std;        /* [L,H,5,D] [L,H,5] [L,H,D] [L,H,D] */
    float *val_acc, *train_acc;                /* [L,H] */
    float *ovr_acc, *ovr_auc;                  /* [L,H,5] */
    int32_t *top_heads;                        /* [5,k] flat l*H+h */
    float *top_scores;                         /* [5,k] */
    double best_head_acc, ensemble_acc;
    int best_head;
    int64_t n_train, n_val, n_skipped_unlabeled, n_skipped_incomplete;
    int64_t class_train[CH_NCAP], class_val[CH_NCAP];
    int evals, unconverged;
    /* provenance */
    const char *input_path, *input_created, *input_sha256, *options;
    const ch_render_rule *render; /* the input archive's rendering rule, copied (none when NULL) */
} ch_probe_result;

/* Rank 0: from the validation probabilities prob [L*H][nval][5] and labels y, fill val_acc,
 * ovr_acc (accuracy of "argmax == c" as a detector of class c), ovr_auc (AUC of p_c), the top-k
 * heads per capability by ovr_auc (NaN last, ties to the lower index), best_head(_acc) and
 * ensemble_acc: per capability c the mean of p_c over c's top-k heads, predicted class = argmax
 * of those five means. The top-k are chosen on the same validation rows, so ensemble_acc is an
 * optimistic (selection-biased) figure; the per-head accuracies are not. */
int ch_probe_metrics(int64_t nval, const float *prob, const int32_t *y, ch_probe_result *r);

/* Serial write (call on one rank) of the probe file. */
int ch_probe_write(const char *path, const ch_probe_result *r);
/* One SVG per capability (layers x heads, colour = ovr AUC, top-k outlined) + scores.csv. */
int ch_probe_heatmap(const char *dir, const ch_probe_result *r);
/* Human summary of a probe file (for `capheads inspect`). */
int ch_probe_print_summary(const char *path, FILE *f);

#endif
