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

/* The split: h = FNV-1a 64-bit hash of the id's bytes; h % 5 == 0 validation, h % 5 == 1 test,
 * otherwise train (about 60/20/20). Depends on the id only, so it does not change with rank count
 * or row order; the validation ids are the ones the two-way split of format 1 used. */
enum { CH_SPLIT_TRAIN = 0, CH_SPLIT_VAL = 1, CH_SPLIT_TEST = 2 };
uint64_t ch_probe_fnv1a64(const char *s);
int ch_probe_split(const char *id);
int ch_probe_is_validation(const char *id);

/* The default --lambda-grid, and the top-k candidates (powers of two up to this, capped at L*H). */
#define CH_PROBE_LAMBDA_GRID "1e-4,1e-3,1e-2,1e-1,1"
#define CH_PROBE_MAX_LAMBDAS 32
#define CH_PROBE_TOPK_MAX 64
#define CH_PROBE_MAX_TOPKS 8
/* Parse a comma list of positive numbers into grid[0..*n) (at most CH_PROBE_MAX_LAMBDAS, sorted
 * ascending, duplicates refused); CH_EARG naming the option and the item otherwise. */
int ch_probe_parse_grid(const char *opt, const char *s, double *grid, int *n);

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
    /* Optional (NULL: head h is head h, lambda is the options'): head h fits the rows, mean and
     * std of head src[h] of x16 or x, with lambda[h]; one call then fits a grid of lambdas for
     * the same heads in lockstep, one reduction per evaluation for all of them. */
    const int *src;
    const double *lambda;
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
#define CH_PROBES_VERSION 2

/* The format-only baseline (src/probe_format.c): features of a record's text. */
#define CH_PROBE_NFEAT 12
extern const char *const ch_probe_format_features[CH_PROBE_NFEAT];
/* Warn when the baseline's test accuracy is within this of the best head's, or above ABS. */
#define CH_PROBE_BASELINE_MARGIN 0.05
#define CH_PROBE_BASELINE_ABS 0.90

typedef struct {
    int fitted;            /* 0: skipped (note says why) */
    char note[1024];       /* the corpus used, or why the baseline was skipped */
    double lambda, val_acc, test_acc;
    int warn;              /* the test accuracy came within the margin: see ch_probe_baseline_warns */
} ch_probe_baseline;

/* Rows of one held-out split on rank 0: prob [heads][n][5] and labels y [n]. */
typedef struct {
    int64_t n;
    const float *prob;
    const int32_t *y;
} ch_probe_split_probs;

typedef struct {
    int L, H, D, k;
    float *weights, *bias, *mean, *std;        /* [L,H,5,D] [L,H,5] [L,H,D] [L,H,D] */
    float *val_acc, *train_acc, *test_acc;     /* [L,H] */
    float *ovr_acc, *ovr_auc;                  /* [L,H,5] validation: the ranking */
    float *test_ovr_acc, *test_ovr_auc;        /* [L,H,5] test */
    float *lambda;                             /* [L,H] the lambda chosen per head */
    float *val_loss;                           /* [G,L,H] validation cross-entropy per grid lambda */
    int32_t *top_heads;                        /* [5,k] flat l*H+h (room for [5,kmax]) */
    float *top_scores;                         /* [5,k] validation AUCs */
    int n_lambda;
    double lambda_grid[CH_PROBE_MAX_LAMBDAS];
    int k_fixed;                               /* --top-k (0: chosen on validation from the grid) */
    int n_topk;
    int32_t topk_grid[CH_PROBE_MAX_TOPKS];
    double ens_val_by_k[CH_PROBE_MAX_TOPKS];   /* validation ensemble accuracy of each candidate */
    double best_head_val_acc, best_head_test_acc, ensemble_val_acc, ensemble_test_acc;
    int best_head;                             /* chosen by validation accuracy */
    int64_t n_train, n_val, n_test, n_skipped_unlabeled, n_skipped_incomplete;
    int64_t class_train[CH_NCAP], class_val[CH_NCAP], class_test[CH_NCAP];
    int evals, unconverged;
    ch_probe_baseline base;
    /* provenance */
    const char *input_path, *input_created, *input_sha256, *options;
    const ch_render_rule *render; /* the input archive's rendering rule, copied (none when NULL) */
} ch_probe_result;

/* Rank 0, after the fits. From the validation split v: val_acc, ovr_acc, ovr_auc (one-vs-rest
 * AUC of p_c), each capability's ranking of the heads by ovr_auc (NaN last, ties to the lower
 * index), the best head (highest validation accuracy, ties to the lower index), and k: r->k_fixed,
 * or the candidate of r->topk_grid whose validation ensemble accuracy is highest (ties to the
 * smaller k). The ensemble: per capability c the mean of p_c over c's top-k heads, predicted class
 * = argmax of the five means. Then from the test split t, which chose nothing: test_acc,
 * test_ovr_acc, test_ovr_auc, best_head_test_acc and ensemble_test_acc. r->top_heads and
 * r->top_scores need room for [5, min(max(CH_PROBE_TOPK_MAX, k_fixed), L*H)]. */
int ch_probe_metrics(const ch_probe_split_probs *v, const ch_probe_split_probs *t, ch_probe_result *r);
/* The top-k candidates for L*H heads: 1, 2, 4, ..., CH_PROBE_TOPK_MAX, those above L*H replaced
 * by L*H once. Returns their count. */
int ch_probe_topk_grid(int nheads, int32_t grid[CH_PROBE_MAX_TOPKS]);
/* Whether a format baseline at base_test comes within the documented margin of best_test. */
int ch_probe_baseline_warns(double base_test, double best_test);
/* Features of one record for the format baseline: out [CH_PROBE_NFEAT], text the record's text
 * (messages: their contents joined by "\n\n"; tokens records: ""), n_tokens from the archive. */
void ch_probe_text_features(const char *text, size_t len, int32_t n_tokens, float *out);

/* Multinomial accuracy (argmax, ties to the lower class) and mean cross-entropy of n rows'
 * probabilities prob [n][5] against y (p floored at 1e-30 so a wrong certainty costs ~69). */
double ch_probe_accuracy(int64_t n, const float *prob, const int32_t *y);
double ch_probe_xent(int64_t n, const float *prob, const int32_t *y);

/* Serial write (call on one rank) of the probe file. */
int ch_probe_write(const char *path, const ch_probe_result *r);
/* One SVG per capability (layers x heads, colour = ovr AUC, top-k outlined) + scores.csv. */
int ch_probe_heatmap(const char *dir, const ch_probe_result *r);
/* Human summary of a probe file (for `capheads inspect`). */
int ch_probe_print_summary(const char *path, FILE *f);

#endif
