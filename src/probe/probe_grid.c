/* probe_grid.c - the regularization strength chosen on validation: every head is fitted for each
 * lambda of the grid on the training rows (all of them in one lockstep run), and keeps the fit with
 * the lowest validation cross-entropy; and the gathers that bring a split's probabilities to
 * rank 0. */
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "err.h"
#include "mpicheck.h"
#include "probe_stage.h"

/* Gather the rank's probabilities loc [nh][n_local][5] of a split into rank 0's dst
 * [nh][ntot][5], rows in rank order (= archive row order). */
static int gather_split(probe_ctx *c, int nh, int split, const float *loc, float *dst) {
    int *cnt = NULL, *dsp = NULL, rc = 0;
    const int *nall = c->nall[split];
    CH_TRY_GOTO(CH_ALLOC(cnt, c->size, "gather counts"), out);
    CH_TRY_GOTO(CH_ALLOC(dsp, c->size, "gather offsets"), out);
    int64_t off = 0;
    for (int r = 0; r < c->size; r++) {
        const int64_t n = (int64_t)nh * nall[r] * CH_NCAP;
        if (off + n > INT32_MAX)
            CH_FAIL_GOTO(out, CH_EUNSUPPORTED, "held-out set too large to gather (%lld values)", (long long)(off + n));
        cnt[r] = (int)n, dsp[r] = (int)off, off += n;
    }
    CH_MPI_TRY_GOTO(MPI_Gatherv(loc, cnt[c->rank], MPI_FLOAT, c->rbuf, cnt, dsp, MPI_FLOAT, 0, c->comm), out);
    if (c->rank == 0) {
        int64_t row = 0;
        for (int r = 0; r < c->size; r++) {
            for (int h = 0; h < nh; h++)
                memcpy(dst + ((size_t)h * c->ntot[split] + row) * CH_NCAP, c->rbuf + dsp[r] + (size_t)h * nall[r] * CH_NCAP,
                       sizeof(float) * (size_t)nall[r] * CH_NCAP);
            row += nall[r];
        }
    }
out:
    free(cnt);
    free(dsp);
    return rc;
}

int ch_probe_predict_split(probe_ctx *c, const probe_rows *rows, int split, const float *W, const float *b,
                           float *dst) {
    const int64_t n = c->n[split];
    int rc = 0;
    if (rows->x16)
        rc = ch_probe_predict16(rows->nh, rows->D, n, rows->x16, rows->mean, rows->std, W, b, c->present, c->ploc);
    else
        ch_probe_predict(rows->nh, rows->D, n, rows->x, W, b, c->present, c->ploc);
    CH_TRY(ch_mpi_agree(c->comm, rc));
    return gather_split(c, rows->nh, split, c->ploc, dst);
}

/* Rank 0: per head, the grid index with the lowest validation loss (ties to the larger lambda). */
static void choose(int G, int nh, const double *loss, int *pick) {
    for (int h = 0; h < nh; h++) {
        int best = G - 1;
        for (int g = G - 2; g >= 0; g--)
            if (loss[(size_t)g * nh + h] < loss[(size_t)best * nh + h]) best = g;
        pick[h] = best;
    }
}

typedef struct {
    float *W, *b, *vprob;
    int64_t *trc;
    double *loss, *lam;
    int *pick, *src;
} grid_scratch;

static void scratch_free(grid_scratch *s) {
    free(s->W), free(s->b), free(s->vprob), free(s->trc), free(s->loss), free(s->lam), free(s->pick), free(s->src);
}

/* All G x nh problems (head h with lambda g is problem g * nh + h) in one lockstep fit: one
 * reduction per evaluation serves the whole grid, where a fit per lambda paid G times the
 * collective rounds (what bounds small problems on many ranks). A head's path does not depend on
 * its batch, so the results are those of one fit per lambda. */
static int fit_all(probe_ctx *c, const probe_args *a, const ch_probe_data *d, grid_scratch *s, int *evals,
                   int *unconverged) {
    const int G = a->ngrid, nh = d->nh;
    for (int g = 0; g < G; g++)
        for (int h = 0; h < nh; h++) s->src[g * nh + h] = h, s->lam[g * nh + h] = a->grid[g];
    ch_probe_data all = *d;
    all.nh = G * nh, all.src = s->src, all.lambda = s->lam;
    return ch_probe_fit(&a->fit, &all, c->comm, s->W, s->b, s->trc, evals, unconverged);
}

int ch_probe_fit_grid(probe_ctx *c, const probe_args *a, const ch_probe_data *d, const probe_rows *val,
                      float *W, float *b, int64_t *train_correct, int *pick, float *val_loss, int stride,
                      int *evals, int *unconverged) {
    const int G = a->ngrid, nh = d->nh, D = d->D;
    const size_t PW = (size_t)nh * CH_NCAP * D, PB = (size_t)nh * CH_NCAP;
    const int64_t nval = c->ntot[CH_SPLIT_VAL];
    grid_scratch s = {0};
    int rc = 0;
    CH_TRY_GOTO(CH_ALLOC(s.W, PW * G, "probe weights per lambda"), out);
    CH_TRY_GOTO(CH_ALLOC(s.b, PB * G, "probe biases per lambda"), out);
    CH_TRY_GOTO(CH_ALLOC(s.trc, (size_t)nh * G, "train counts per lambda"), out);
    CH_TRY_GOTO(CH_ALLOC(s.pick, nh, "chosen lambdas"), out);
    CH_TRY_GOTO(CH_ALLOC(s.src, (size_t)nh * G, "grid heads"), out);
    CH_TRY_GOTO(CH_ALLOC(s.lam, (size_t)nh * G, "grid lambdas"), out);
    CH_TRY_GOTO(CH_ALLOC(s.loss, (size_t)nh * G, "validation losses"), out);
    if (c->rank == 0) CH_TRY_GOTO(CH_ALLOC(s.vprob, (size_t)nh * nval * CH_NCAP, "validation probabilities"), out);
    CH_TRY_GOTO(ch_mpi_agree(c->comm, rc), out);
    CH_TRY_GOTO(fit_all(c, a, d, &s, evals, unconverged), out);
    for (int g = 0; g < G; g++) {
        CH_TRY_GOTO(ch_probe_predict_split(c, val, CH_SPLIT_VAL, s.W + PW * g, s.b + PB * g, s.vprob), out);
        if (c->rank == 0)
            for (int h = 0; h < nh; h++)
                s.loss[(size_t)g * nh + h] = ch_probe_xent(nval, s.vprob + (size_t)h * nval * CH_NCAP,
                                                           c->yall[CH_SPLIT_VAL]);
    }
    if (c->rank == 0) choose(G, nh, s.loss, s.pick);
    CH_MPI_TRY_GOTO(MPI_Bcast(s.pick, nh, MPI_INT, 0, c->comm), out);
    for (int h = 0; h < nh; h++) {
        const int g = s.pick[h];
        memcpy(W + (size_t)h * CH_NCAP * D, s.W + PW * g + (size_t)h * CH_NCAP * D, sizeof(float) * CH_NCAP * D);
        memcpy(b + (size_t)h * CH_NCAP, s.b + PB * g + (size_t)h * CH_NCAP, sizeof(float) * CH_NCAP);
        train_correct[h] = s.trc[(size_t)nh * g + h];
        pick[h] = g;
    }
    if (c->rank == 0 && val_loss)
        for (int g = 0; g < G; g++)
            for (int h = 0; h < nh; h++) val_loss[(size_t)g * stride + h] = (float)s.loss[(size_t)g * nh + h];
out:
    scratch_free(&s);
    return rc;
}
