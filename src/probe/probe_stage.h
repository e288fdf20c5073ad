/* probe_stage.h - what the parts of `capheads probe` share: its options, the run's context, the
 * lambda grid's fit-and-choose step (src/probe_grid.c) and the format-only baseline
 * (src/probe_baseline.c). Not a public interface. */
#ifndef CH_PROBE_STAGE_H
#define CH_PROBE_STAGE_H

#include <mpi.h>
#include <stdint.h>

#include "archive.h"
#include "lock.h"
#include "probe.h"

#define CH_NSPLIT 3 /* CH_SPLIT_TRAIN, CH_SPLIT_VAL, CH_SPLIT_TEST */

typedef struct {
    const char *input, *output, *heatmap, *timing, *lambda_grid, *corpus;
    int top_k, allow_incomplete, force, require_baseline;
    double lambda; /* 0: choose from the grid */
    ch_probe_opts fit;
    double grid[CH_PROBE_MAX_LAMBDAS];
    int ngrid;
} probe_args;

typedef struct {
    MPI_Comm comm;
    int rank, size;
    ch_archive_reader *ar;
    int L, H, D;
    int64_t row0, nloc;             /* this rank's row block */
    int64_t *idx[CH_NSPLIT];        /* local row indices of each split (0-based within the block) */
    int64_t n[CH_NSPLIT];           /* local counts */
    int64_t ntot[CH_NSPLIT];        /* over all ranks */
    int32_t *y[CH_NSPLIT];
    int *nall[CH_NSPLIT];           /* rows of each split per rank (the gathers' counts) */
    char **ids;
    double io_seconds;              /* in activation reads (the timing record's io_seconds) */
    ch_archive_info info;
    int64_t skipped[2];             /* local: unlabeled, incomplete rows */
    int64_t *trblk, lblk;           /* [lblk + 1]: offsets of each FB-row block into the train rows */
    int present[CH_NCAP];           /* classes with training rows, over all ranks */
    uint16_t *buf, *x16[CH_NSPLIT]; /* binary16 as in the archive */
    double *s1;                     /* [2][group heads][D]: sums of x, then of x^2 */
    float *ploc, *rbuf;             /* local probabilities, rank 0's gather buffer */
    float *prob[CH_NSPLIT];         /* rank 0: [L*H][n][5] of the validation and test rows */
    int32_t *yall[CH_NSPLIT];       /* rank 0: every validation and test label, in row order */
    int64_t *tr_correct;            /* [L*H]: training rows each head's probe gets right */
    int *pick;                      /* [H]: the grid index each head of a layer chose */
    ch_lock *lock;                  /* rank 0: the output's lock, for the whole run */
} probe_ctx;

/* Where a split's rows of nh heads are for prediction: binary16 x16 [nh][n][D] standardized
 * with mean, std [nh][D], or standardized f32 x [nh][n][D]. */
typedef struct {
    int nh, D;
    const uint16_t *x16;
    const float *x, *mean, *std;
} probe_rows;

/* Collective. Rank 0's dst [nh][ntot][5] (row order = rank order) gets the probabilities of the
 * split's rows (CH_SPLIT_VAL or CH_SPLIT_TEST) under W [nh][5][D], b [nh][5]. */
int ch_probe_predict_split(probe_ctx *c, const probe_rows *rows, int split, const float *W, const float *b,
                           float *dst);

/* Collective. Fit the nh heads of d once per lambda of a->grid on the training rows (one lockstep
 * run for the whole grid), and keep for
 * each head the fit whose validation cross-entropy (rank 0, over the gathered probabilities) is
 * lowest, ties to the larger lambda: W, b, train_correct and pick [nh], the index of the lambda in
 * a->grid (identical on every rank).
 * val_loss (rank 0, may be NULL) gets [G][stride] the losses, head h at column h. */
int ch_probe_fit_grid(probe_ctx *c, const probe_args *a, const ch_probe_data *d, const probe_rows *val,
                      float *W, float *b, int64_t *train_correct, int *pick, float *val_loss, int stride,
                      int *evals, int *unconverged);

/* Collective. The format-only baseline into res->base (rank 0's figures); a corpus that cannot be
 * read is a skip with the reason in res->base.note, or an error under --require-baseline; one
 * whose sha256 is not the archive's input_sha256 is an error naming both. */
int ch_probe_baseline_run(probe_ctx *c, const probe_args *a, ch_probe_result *res);

#endif
