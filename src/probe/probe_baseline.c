/* probe_baseline.c - the format-only baseline of `capheads probe`: the same multinomial logistic
 * regression as a head's probe, on features of the record's text (src/probe_format.c) instead of
 * activations, fitted on the same training rows (which stay on their ranks, summed in the same
 * blocks), lambda chosen on the same validation rows, its accuracy reported on the same test rows.
 * If it comes close to the heads, the classes can be told apart by format and the probes may read
 * the format rather than the capability (docs/probe.md#format-baseline). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "err.h"
#include "fsutil.h"
#include "mpicheck.h"
#include "probe_format.h"
#include "probe_stage.h"

#define NF CH_PROBE_NFEAT

/* Rank 0: whether the corpus can be used: *skip = 1 when it cannot be read (note says why); an
 * error when its sha256 is not the archive's input_sha256. */
static int check_corpus(const probe_ctx *c, const probe_args *a, const char *corpus, ch_probe_baseline *b,
                        int *skip) {
    *skip = 1;
    if (!corpus || !corpus[0]) {
        snprintf(b->note, sizeof b->note, "the archive records no input_path (give --corpus FILE)");
        return 0;
    }
    FILE *f = fopen(corpus, "rb");
    if (!f) {
        snprintf(b->note, sizeof b->note, "cannot read the corpus %s: %s (give --corpus FILE)", corpus, strerror(errno));
        return 0;
    }
    fclose(f);
    char hex[65];
    CH_TRY(ch_fs_sha256(corpus, hex));
    const char *want = c->info.input_sha256 ? c->info.input_sha256 : "";
    if (strcmp(hex, want))
        CH_FAIL(CH_EMISMATCH, "%s: sha256 %s, but %s was extracted from input_sha256 %s: not the corpus of this archive",
                corpus, hex, a->input, want[0] ? want : "(none recorded)");
    snprintf(b->note, sizeof b->note, "%s", corpus);
    *skip = 0;
    return 0;
}

/* Every rank: the corpus usable (*skip 0) or to be skipped (1), rank 0 deciding. */
static int corpus_state(probe_ctx *c, const probe_args *a, const char *corpus, ch_probe_baseline *b, int *skip) {
    int rc = 0;
    *skip = 0;
    if (c->rank == 0) rc = check_corpus(c, a, corpus, b, skip);
    CH_TRY(ch_mpi_agree(c->comm, rc));
    CH_MPI_TRY(MPI_Bcast(skip, 1, MPI_INT, 0, c->comm));
    return 0;
}

/* The features of the rank's rows of each split, x[s] [n[s]][NF], standardized with the training
 * rows' mean and population std (sums in double, in row order, reduced like the heads'). */
static int split_features(probe_ctx *c, const float *feat, float *x[CH_NSPLIT], float mean[NF], float sd[NF]) {
    double s[2 * NF] = {0}, g[2 * NF];
    for (int sp = 0; sp < CH_NSPLIT; sp++)
        for (int64_t i = 0; i < c->n[sp]; i++) memcpy(x[sp] + i * NF, feat + c->idx[sp][i] * NF, sizeof(float) * NF);
    for (int64_t i = 0; i < c->n[CH_SPLIT_TRAIN]; i++)
        for (int k = 0; k < NF; k++) {
            const double v = x[CH_SPLIT_TRAIN][i * NF + k];
            s[k] += v, s[NF + k] += v * v;
        }
    CH_MPI_TRY(MPI_Reduce(s, g, 2 * NF, MPI_DOUBLE, MPI_SUM, 0, c->comm));
    CH_MPI_TRY(MPI_Bcast(g, 2 * NF, MPI_DOUBLE, 0, c->comm));
    const double n = (double)c->ntot[CH_SPLIT_TRAIN];
    for (int k = 0; k < NF; k++) {
        const double mu = g[k] / n, var = g[NF + k] / n - mu * mu, d = var > 0 ? sqrt(var) : 0;
        mean[k] = (float)mu;
        sd[k] = d > 1e-12 ? (float)d : 1.0f; /* a constant feature: like StandardScaler */
    }
    for (int sp = 0; sp < CH_NSPLIT; sp++)
        for (int64_t i = 0; i < c->n[sp]; i++)
            for (int k = 0; k < NF; k++) x[sp][i * NF + k] = (x[sp][i * NF + k] - mean[k]) / sd[k];
    return 0;
}

/* The rank's rows' features from the corpus (every kept row must be in it). */
static int read_features(probe_ctx *c, const char *corpus, float *feat) {
    int32_t *ntok = NULL;
    uint8_t *keep = NULL;
    int rc = 0;
    CH_TRY_GOTO(CH_ALLOC(ntok, c->nloc + 1, "token counts"), out);
    CH_TRY_GOTO(CH_ALLOC(keep, c->nloc + 1, "kept rows"), out);
    CH_TRY_GOTO(ch_archive_read_n_tokens(c->ar, c->row0, c->nloc, ntok), out);
    for (int sp = 0; sp < CH_NSPLIT; sp++)
        for (int64_t i = 0; i < c->n[sp]; i++) keep[c->idx[sp][i]] = 1;
    rc = ch_probe_corpus_features(corpus, c->ids, keep, c->nloc, ntok, feat);
out:
    free(ntok), free(keep);
    return rc;
}

/* Fit on train, lambda by validation, accuracies on validation and test (rank 0). */
static int fit_baseline(probe_ctx *c, const probe_args *a, float *x[CH_NSPLIT], const float *mean, const float *sd,
                        ch_probe_baseline *b) {
    float W[CH_NCAP * NF], bias[CH_NCAP];
    float *pv = NULL, *pt = NULL;
    int64_t right;
    int evals, unconv, pick, rc = 0;
    ch_probe_data d = {1, NF, c->n[CH_SPLIT_TRAIN], c->ntot[CH_SPLIT_TRAIN], x[CH_SPLIT_TRAIN], c->y[CH_SPLIT_TRAIN],
                       {0}, c->trblk, c->lblk, NULL, mean, sd, NULL, NULL};
    memcpy(d.present, c->present, sizeof c->present);
    probe_rows val = {1, NF, NULL, x[CH_SPLIT_VAL], mean, sd}, test = val;
    test.x = x[CH_SPLIT_TEST];
    if (c->rank == 0) {
        CH_TRY_GOTO(CH_ALLOC(pv, (size_t)c->ntot[CH_SPLIT_VAL] * CH_NCAP, "baseline probabilities"), out);
        CH_TRY_GOTO(CH_ALLOC(pt, (size_t)c->ntot[CH_SPLIT_TEST] * CH_NCAP, "baseline probabilities"), out);
    }
    CH_TRY_GOTO(ch_mpi_agree(c->comm, rc), out);
    CH_TRY_GOTO(ch_probe_fit_grid(c, a, &d, &val, W, bias, &right, &pick, NULL, 1, &evals, &unconv), out);
    CH_TRY_GOTO(ch_probe_predict_split(c, &val, CH_SPLIT_VAL, W, bias, pv), out);
    CH_TRY_GOTO(ch_probe_predict_split(c, &test, CH_SPLIT_TEST, W, bias, pt), out);
    b->fitted = 1, b->lambda = a->grid[pick];
    if (c->rank == 0) {
        b->val_acc = ch_probe_accuracy(c->ntot[CH_SPLIT_VAL], pv, c->yall[CH_SPLIT_VAL]);
        b->test_acc = ch_probe_accuracy(c->ntot[CH_SPLIT_TEST], pt, c->yall[CH_SPLIT_TEST]);
    }
out:
    free(pv), free(pt);
    return rc;
}

int ch_probe_baseline_run(probe_ctx *c, const probe_args *a, ch_probe_result *res) {
    ch_probe_baseline *b = &res->base;
    const char *corpus = a->corpus ? a->corpus : c->info.input_path;
    int skip = 0, rc = 0;
    CH_TRY(corpus_state(c, a, corpus, b, &skip));
    if (skip) {
        if (a->require_baseline) CH_FAIL(CH_EIO, "format-only baseline (--require-baseline): %s", b->note);
        return 0;
    }
    float *feat = NULL, *x[CH_NSPLIT] = {NULL}, mean[NF], sd[NF];
    CH_TRY_GOTO(CH_ALLOC(feat, (size_t)(c->nloc + 1) * NF, "baseline features"), out);
    for (int sp = 0; sp < CH_NSPLIT; sp++)
        CH_TRY_GOTO(CH_ALLOC(x[sp], (size_t)(c->n[sp] + 1) * NF, "baseline features"), out);
    CH_TRY_GOTO(ch_mpi_agree(c->comm, read_features(c, corpus, feat)), out);
    CH_TRY_GOTO(split_features(c, feat, x, mean, sd), out);
    rc = fit_baseline(c, a, x, mean, sd, b);
out:
    free(feat);
    for (int sp = 0; sp < CH_NSPLIT; sp++) free(x[sp]);
    return rc;
}
