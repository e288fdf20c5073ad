/* probe_metrics.c - the figures of the probes (rank 0 only): what the validation split chooses
 * (the ranking of heads per capability, the best head, the ensemble's k) and what the test split,
 * which chose nothing, reports. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "probe.h"

static int argmax5(const float *p) {
    int best = 0;
    for (int c = 1; c < CH_NCAP; c++) best = p[c] > p[best] ? c : best;
    return best;
}

double ch_probe_accuracy(int64_t n, const float *prob, const int32_t *y) {
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) right += argmax5(prob + i * CH_NCAP) == y[i];
    return n > 0 ? (double)right / (double)n : NAN;
}

double ch_probe_xent(int64_t n, const float *prob, const int32_t *y) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double p = prob[i * CH_NCAP + y[i]];
        s -= log(p > 1e-30 ? p : 1e-30);
    }
    return n > 0 ? s / (double)n : NAN;
}

int ch_probe_topk_grid(int nheads, int32_t grid[CH_PROBE_MAX_TOPKS]) {
    int n = 0;
    for (int k = 1; k <= CH_PROBE_TOPK_MAX && n < CH_PROBE_MAX_TOPKS; k *= 2) {
        const int v = k < nheads ? k : nheads;
        if (n == 0 || grid[n - 1] != v) grid[n++] = v;
    }
    return n;
}

int ch_probe_baseline_warns(double base_test, double best_test) {
    return base_test >= best_test - CH_PROBE_BASELINE_MARGIN || base_test >= CH_PROBE_BASELINE_ABS;
}

/* Per head of one split: accuracy, one-vs-rest accuracy and AUC of each class. */
static int head_figures(const ch_probe_split_probs *s, int nh, float *acc, float *ovr_acc, float *ovr_auc) {
    const int64_t n = s->n;
    ch_auc_pair *scr = NULL;
    uint8_t *pos = NULL;
    int rc = 0;
    CH_TRY_GOTO(CH_ALLOC(scr, 2 * n + 1, "AUC scratch"), out);
    CH_TRY_GOTO(CH_ALLOC(pos, (size_t)CH_NCAP * (n + 1), "AUC labels"), out);
    for (int c = 0; c < CH_NCAP; c++)
        for (int64_t i = 0; i < n; i++) pos[c * n + i] = s->y[i] == c;
    for (int h = 0; h < nh; h++) {
        const float *p = s->prob + (size_t)h * n * CH_NCAP;
        int64_t correct = 0, ovr[CH_NCAP] = {0};
        for (int64_t i = 0; i < n; i++) {
            const int best = argmax5(p + i * CH_NCAP);
            correct += best == s->y[i];
            for (int c = 0; c < CH_NCAP; c++) ovr[c] += (best == c) == (s->y[i] == c);
        }
        acc[h] = (float)((double)correct / (double)n);
        for (int c = 0; c < CH_NCAP; c++) {
            ovr_acc[h * CH_NCAP + c] = (float)((double)ovr[c] / (double)n);
            ovr_auc[h * CH_NCAP + c] = (float)ch_probe_auc(p + c, CH_NCAP, pos + c * n, n, scr);
        }
    }
out:
    free(scr), free(pos);
    return rc;
}

/* rank [5][kmax]: per capability the kmax best heads by validation AUC, NaN last, ties to the lower
 * flat index (selection sort: kmax is small). */
static int rank_heads(const ch_probe_result *r, int kmax, int32_t *rank) {
    const int nh = r->L * r->H;
    uint8_t *used = NULL;
    CH_TRY(CH_ALLOC(used, nh, "head order"));
    for (int c = 0; c < CH_NCAP; c++) {
        memset(used, 0, (size_t)nh);
        for (int j = 0; j < kmax; j++) {
            int best = -1;
            for (int h = 0; h < nh; h++) {
                if (used[h]) continue;
                const float s = r->ovr_auc[h * CH_NCAP + c], bs = best < 0 ? 0 : r->ovr_auc[best * CH_NCAP + c];
                if (best < 0 || (!isnan(s) && (isnan(bs) || s > bs))) best = h;
            }
            used[best] = 1;
            rank[c * kmax + j] = best;
        }
    }
    free(used);
    return 0;
}

/* Accuracy of the top-k ensemble (rank [5][kmax], its first k columns) on split s; ens scratch
 * [n][5]. */
static double ensemble_acc(const ch_probe_split_probs *s, const int32_t *rank, int kmax, int k, double *ens) {
    const int64_t n = s->n;
    for (int64_t i = 0; i < n * CH_NCAP; i++) ens[i] = 0;
    for (int c = 0; c < CH_NCAP; c++)
        for (int j = 0; j < k; j++) {
            const float *p = s->prob + (size_t)rank[c * kmax + j] * n * CH_NCAP;
            for (int64_t i = 0; i < n; i++) ens[i * CH_NCAP + c] += p[i * CH_NCAP + c] / k;
        }
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < CH_NCAP; c++) best = ens[i * CH_NCAP + c] > ens[i * CH_NCAP + best] ? c : best;
        correct += best == s->y[i];
    }
    return (double)correct / (double)n;
}

int ch_probe_metrics(const ch_probe_split_probs *v, const ch_probe_split_probs *t, ch_probe_result *r) {
    const int nh = r->L * r->H;
    const int kcap = r->k_fixed > CH_PROBE_TOPK_MAX ? r->k_fixed : CH_PROBE_TOPK_MAX;
    const int kmax = kcap < nh ? kcap : nh; /* every candidate and the fixed k fit */
    int32_t *rank = NULL;
    double *ens = NULL;
    int rc = 0;
    const int64_t nmax = v->n > t->n ? v->n : t->n;
    CH_TRY_GOTO(head_figures(v, nh, r->val_acc, r->ovr_acc, r->ovr_auc), out);
    CH_TRY_GOTO(head_figures(t, nh, r->test_acc, r->test_ovr_acc, r->test_ovr_auc), out);
    r->best_head = 0;
    for (int h = 1; h < nh; h++)
        if (r->val_acc[h] > r->val_acc[r->best_head]) r->best_head = h;
    r->best_head_val_acc = r->val_acc[r->best_head];
    r->best_head_test_acc = r->test_acc[r->best_head];
    CH_TRY_GOTO(CH_ALLOC(rank, (size_t)CH_NCAP * kmax, "head ranking"), out);
    CH_TRY_GOTO(CH_ALLOC(ens, (size_t)(nmax + 1) * CH_NCAP, "ensemble scores"), out);
    CH_TRY_GOTO(rank_heads(r, kmax, rank), out);
    r->n_topk = ch_probe_topk_grid(nh, r->topk_grid);
    int k = r->k_fixed > 0 ? (r->k_fixed < nh ? r->k_fixed : nh) : 0;
    double kacc = -1;
    for (int i = 0; i < r->n_topk; i++) {
        r->ens_val_by_k[i] = ensemble_acc(v, rank, kmax, r->topk_grid[i], ens);
        if (r->k_fixed == 0 && r->ens_val_by_k[i] > kacc) kacc = r->ens_val_by_k[i], k = r->topk_grid[i];
    }
    r->k = k;
    for (int c = 0; c < CH_NCAP; c++)
        for (int j = 0; j < k; j++) {
            const int h = rank[c * kmax + j];
            r->top_heads[c * k + j] = h;
            r->top_scores[c * k + j] = r->ovr_auc[h * CH_NCAP + c];
        }
    r->ensemble_val_acc = ensemble_acc(v, rank, kmax, k, ens);
    r->ensemble_test_acc = ensemble_acc(t, rank, kmax, k, ens);
out:
    free(rank), free(ens);
    return rc;
}
