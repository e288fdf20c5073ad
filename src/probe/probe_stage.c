/* cmd_probe.c - `capheads probe`: fit the per-head probes of an activation archive.
 *
 * Data flow: each rank owns a contiguous run of whole CH_PROBE_BLOCK-row blocks (blocks
 * [B*rank/R, B*(rank+1)/R) of the B blocks) and streams it in reads of 256 rows, one layer at a
 * time: the layer's activations for the rank's rows are cached as the archive's binary16,
 * head-major, so that the solver's many passes never touch the file again. One layer (the
 * archive's chunks are one layer wide) keeps the cache small and reused: a bigger group made
 * nothing faster, and its first touch of fresh memory cost more than the copy into it.
 * Standardization statistics (mean, population std over TRAIN rows) are reduced over ranks, the
 * probes of the layer's heads are fitted in lockstep (src/probe.c) on cache-sized batches, and
 * the validation probabilities are gathered on rank 0, which computes accuracies, one-vs-rest
 * AUCs, the capability-head map and writes the probe file (serially) and the heatmaps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "stage.h"
#include "err.h"
#include "h5util.h"
#include "numfmt.h"
#include "probe.h"
#include "timing.h"

#define RBLOCK 256
#define TILE 32

#define CH_MPI(call)                                                                              \
    do {                                                                                          \
        if ((call) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "%s failed", #call);                          \
    } while (0)

typedef struct {
    const char *input, *output, *heatmap, *timing;
    int top_k, allow_incomplete;
    ch_probe_opts fit;
} probe_args;

typedef struct {
    MPI_Comm comm;
    int rank, size;
    ch_archive_reader *ar;
    int L, H, D;
    int64_t row0, nloc;          /* this rank's row block */
    int64_t *train, *val;        /* local row indices (0-based within the block) */
    int64_t ntr, nva;            /* local counts */
    int32_t *ytr, *yva;
    char **ids;
    double io_seconds; /* in activation reads (the timing record's io_seconds) */
} probe_ctx;

static void usage(FILE *f) {
    fprintf(f, "usage: [mpirun -n R] capheads probe --input PROBESET.h5 --output PROBES.h5\n"
               "         [--top-k 16] [--heatmap DIR] [--lambda 1e-3] [--tol 1e-5] [--max-evals 500]\n"
               "         [--allow-incomplete] [--timing FILE]\n"
               "Fits a multinomial logistic-regression probe per (layer, head) over the five\n"
               "capabilities; validation rows are the ids whose FNV-1a 64 hash %% 5 == 0.\n"
               "  --timing FILE  append a JSON timing record (docs/timing.md): records = rows fitted\n"
               "                 (train + validation), heads, train_rows, val_rows\n");
}

static int parse(int argc, char **argv, probe_args *a, int *help) {
    memset(a, 0, sizeof *a);
    a->top_k = 16;
    ch_probe_opts_default(&a->fit);
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            *help = 1;
            return 0;
        } else if (!strcmp(o, "--allow-incomplete")) {
            a->allow_incomplete = 1;
            continue;
        }
        if (!v) CH_FAIL(CH_EARG, "option %s needs a value (see --help)", o);
        i++;
        if (!strcmp(o, "--input")) a->input = v;
        else if (!strcmp(o, "--output")) a->output = v;
        else if (!strcmp(o, "--heatmap")) a->heatmap = v;
        else if (!strcmp(o, "--timing")) a->timing = v;
        else if (!strcmp(o, "--top-k")) a->top_k = (int)strtol(v, &end, 10);
        else if (!strcmp(o, "--max-evals")) a->fit.max_evals = (int)strtol(v, &end, 10);
        else if (!strcmp(o, "--lambda")) a->fit.lambda = strtod(v, &end);
        else if (!strcmp(o, "--tol")) a->fit.tol = strtod(v, &end);
        else CH_FAIL(CH_EARG, "unknown option '%s' (see --help)", o);
        if (end && *end) CH_FAIL(CH_EARG, "option %s: '%s' is not a number", o, v);
    }
    if (!a->input || !a->output) CH_FAIL(CH_EARG, "--input and --output are required (see --help)");
    if (a->top_k < 1) CH_FAIL(CH_EARG, "--top-k must be >= 1");
    if (!(a->fit.lambda > 0)) CH_FAIL(CH_EARG, "--lambda must be > 0");
    if (!(a->fit.tol > 0) || a->fit.max_evals < 1) CH_FAIL(CH_EARG, "--tol must be > 0, --max-evals >= 1");
    return 0;
}

/* Make every rank fail together: a rank whose own step succeeded learns of another's failure. */
static int agree(int rc, MPI_Comm comm) {
    int worst = 0;
    if (MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return rc ? rc : ch_err_set(CH_EMPI, __FILE__, __LINE__, "MPI_Allreduce of a status failed");
    if (worst && !rc)
        return ch_err_set(worst, __FILE__, __LINE__, "stopped: another rank failed (see its message)");
    return rc ? rc : worst;
}

/* Labels, done mask and ids of the rank's rows: split into train/val, skip unlabeled rows. */
static int load_rows(probe_ctx *c, const probe_args *a, int64_t counts[4]) {
    int32_t *lab = NULL;
    uint8_t *done = NULL;
    int rc = 0;
    int64_t n = c->nloc;
    CH_TRY_GOTO(CH_ALLOC(lab, n + 1, "labels"), out);
    CH_TRY_GOTO(CH_ALLOC(done, n + 1, "done mask"), out);
    CH_TRY_GOTO(CH_ALLOC(c->ids, n + 1, "ids"), out);
    CH_TRY_GOTO(CH_ALLOC(c->train, n + 1, "train rows"), out);
    CH_TRY_GOTO(CH_ALLOC(c->val, n + 1, "validation rows"), out);
    CH_TRY_GOTO(CH_ALLOC(c->ytr, n + 1, "train labels"), out);
    CH_TRY_GOTO(CH_ALLOC(c->yva, n + 1, "validation labels"), out);
    CH_TRY_GOTO(ch_archive_read_labels(c->ar, c->row0, n, lab), out);
    CH_TRY_GOTO(ch_archive_read_done(c->ar, c->row0, n, done), out);
    CH_TRY_GOTO(ch_archive_read_ids(c->ar, c->row0, n, c->ids), out);
    for (int64_t i = 0; i < n; i++) {
        const char *id = c->ids[i];
        if (!done[i]) {
            if (!a->allow_incomplete)
                CH_FAIL_GOTO(out, CH_EINCOMPLETE,
                             "%s: row %lld (id '%s') is not done: the archive is incomplete "
                             "(finish it with extract --resume, or pass --allow-incomplete)",
                             a->input, (long long)(c->row0 + i), id);
            counts[1]++;
            continue;
        }
        if (lab[i] == -1) {
            counts[0]++;
            continue;
        }
        if (lab[i] < 0 || lab[i] >= CH_NCAP)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: row %lld (id '%s'): label %d outside 0..4 (-1 = none)",
                         a->input, (long long)(c->row0 + i), id, lab[i]);
        if (ch_probe_is_validation(id)) c->yva[c->nva] = lab[i], c->val[c->nva++] = i;
        else c->ytr[c->ntr] = lab[i], c->train[c->ntr++] = i;
    }
out:
    free(lab);
    free(done);
    return rc;
}

/* a1[j] += x[j], a2[j] += x[j]^2 for j in [j0, D) and the binary16 rows x = base + rows[r] *
 * stride, r < nr, in double and in row order: the rule, one value at a time. */
static void stats_plain(const uint16_t *base, size_t stride, const int *rows, int nr, int j0, int D,
                        double *a1, double *a2) {
    for (int j = j0; j < D; j++)
        for (int r = 0; r < nr; r++) {
            const double v = ch_f16_to_f32(base[(size_t)rows[r] * stride + j]);
            a1[j] += v;
            a2[j] += v * v;
        }
}

/* The same sums exactly (same order, same operations), with F16C: the running sums of sixteen
 * features stay in registers over the rows (the plain loop's memory round trip per row, or a
 * separate widening pass, cost more than the copy of the rows itself). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
__attribute__((target("avx2,f16c"))) static void stats_f16c(const uint16_t *base, size_t stride,
                                                           const int *rows, int nr, int D, double *a1,
                                                           double *a2) {
    int j = 0;
    for (; j + 16 <= D; j += 16) {
        __m256d s0 = _mm256_loadu_pd(a1 + j), s1 = _mm256_loadu_pd(a1 + j + 4);
        __m256d s2 = _mm256_loadu_pd(a1 + j + 8), s3 = _mm256_loadu_pd(a1 + j + 12);
        __m256d q0 = _mm256_loadu_pd(a2 + j), q1 = _mm256_loadu_pd(a2 + j + 4);
        __m256d q2 = _mm256_loadu_pd(a2 + j + 8), q3 = _mm256_loadu_pd(a2 + j + 12);
        for (int r = 0; r < nr; r++) {
            const uint16_t *x = base + (size_t)rows[r] * stride + j;
            const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x));
            const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8)));
            const __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lo));
            const __m256d v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1));
            const __m256d v2 = _mm256_cvtps_pd(_mm256_castps256_ps128(hi));
            const __m256d v3 = _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1));
            /* a2 += v * v as a rounded product then a sum, like the plain loop (no FMA) */
            s0 = _mm256_add_pd(s0, v0), q0 = _mm256_add_pd(q0, _mm256_mul_pd(v0, v0));
            s1 = _mm256_add_pd(s1, v1), q1 = _mm256_add_pd(q1, _mm256_mul_pd(v1, v1));
            s2 = _mm256_add_pd(s2, v2), q2 = _mm256_add_pd(q2, _mm256_mul_pd(v2, v2));
            s3 = _mm256_add_pd(s3, v3), q3 = _mm256_add_pd(q3, _mm256_mul_pd(v3, v3));
        }
        _mm256_storeu_pd(a1 + j, s0), _mm256_storeu_pd(a1 + j + 4, s1);
        _mm256_storeu_pd(a1 + j + 8, s2), _mm256_storeu_pd(a1 + j + 12, s3);
        _mm256_storeu_pd(a2 + j, q0), _mm256_storeu_pd(a2 + j + 4, q1);
        _mm256_storeu_pd(a2 + j + 8, q2), _mm256_storeu_pd(a2 + j + 12, q3);
    }
    stats_plain(base, stride, rows, nr, j, D, a1, a2); /* head_dim not a multiple of 16 */
}
#define HAVE_STATS_F16C 1
#endif

static void add_stats(int f16c, const uint16_t *base, size_t stride, const int *rows, int nr, int D,
                      double *a1, double *a2) {
#ifdef HAVE_STATS_F16C
    if (f16c) {
        stats_f16c(base, stride, rows, nr, D, a1, a2);
        return;
    }
#endif
    (void)f16c;
    stats_plain(base, stride, rows, nr, 0, D, a1, a2);
}

/* Read layers [l0, l0+G) of the rank's kept rows into head-major xtr [G*H][ntr][D] and
 * xva [G*H][nva][D], the archive's binary16 values as they are (half the bytes of f32; the fit
 * standardizes a cache-sized batch of heads at a time), refusing non-finite values; s1, s2
 * [G*H][D] get the train rows' sums of x and x^2 (double, in row order), the standardization's
 * statistics, in the same pass. */
static int load_group(probe_ctx *c, const probe_args *a, int l0, int G, uint16_t *buf, uint16_t *xtr,
                      uint16_t *xva, double *s1, double *s2) {
    const int H = c->H, D = c->D, nh = G * H;
    const int f16c = ch_h5_have_f16c();
    int64_t it = 0, iv = 0;
    memset(s1, 0, sizeof(double) * (size_t)nh * D);
    memset(s2, 0, sizeof(double) * (size_t)nh * D);
    /* a read block's kept rows: where in buf, where in head 0's rows of xtr or xva (head h adds
     * h * ntr * D or h * nva * D), and whether a training row */
    int pick[RBLOCK];
    uint16_t *dst[RBLOCK];
    uint8_t is_train[RBLOCK];
    for (int64_t r0 = 0; r0 < c->nloc; r0 += RBLOCK) {
        int64_t nb = c->nloc - r0 < RBLOCK ? c->nloc - r0 : RBLOCK;
        /* skip blocks with no kept rows (e.g. an unlabeled tail) */
        int64_t next_t = it < c->ntr ? c->train[it] : INT64_MAX,
                next_v = iv < c->nva ? c->val[iv] : INT64_MAX;
        if ((next_t < next_v ? next_t : next_v) >= r0 + nb) continue;
        const double t0 = MPI_Wtime();
        CH_TRY(ch_archive_read_acts_raw(c->ar, c->row0 + r0, nb, l0, G, buf));
        c->io_seconds += MPI_Wtime() - t0;
        /* one scan of the block; a row-by-row search only when it finds something, and only
         * kept rows count (an incomplete row may hold anything) */
        const int bad = ch_h5_f16_any_nonfinite(buf, (size_t)nb * nh * D);
        int nk = 0;
        for (int64_t i = r0; i < r0 + nb; i++) {
            const int is_tr = it < c->ntr && c->train[it] == i;
            if (!is_tr && !(iv < c->nva && c->val[iv] == i)) continue;
            const uint16_t *src = buf + (size_t)(i - r0) * nh * D;
            if (bad && ch_h5_f16_any_nonfinite(src, (size_t)nh * D)) {
                size_t e = 0;
                while ((src[e] & 0x7c00u) != 0x7c00u) e++;
                CH_FAIL(CH_EFORMAT, "%s: row %lld (id '%s'), layer %d, head %d: activation %d is %s",
                        a->input, (long long)(c->row0 + i), c->ids[i], l0 + (int)(e / D) / H,
                        (int)(e / D) % H, (int)(e % D), src[e] & 0x3ffu ? "NaN" : "Inf");
            }
            pick[nk] = (int)(i - r0);
            dst[nk] = is_tr ? xtr + (size_t)it++ * D : xva + (size_t)iv++ * D;
            is_train[nk++] = (uint8_t)is_tr;
        }
        /* tiles of TILE rows x all heads: a head's rows of a tile are TILE strided reads and
         * one contiguous write, and the tile's source lines stay in cache across the heads */
        for (int k0 = 0; k0 < nk; k0 += TILE) {
            const int k1 = nk - k0 < TILE ? nk : k0 + TILE;
            int tr_rows[TILE], nt = 0;
            for (int k = k0; k < k1; k++)
                if (is_train[k]) tr_rows[nt++] = pick[k];
            for (int h = 0; h < nh; h++) {
                for (int k = k0; k < k1; k++)
                    memcpy(dst[k] + (size_t)h * (size_t)(is_train[k] ? c->ntr : c->nva) * D,
                           buf + ((size_t)pick[k] * nh + h) * D, sizeof(uint16_t) * D);
                add_stats(f16c, buf + (size_t)h * D, (size_t)nh * D, tr_rows, nt, D, s1 + (size_t)h * D,
                          s2 + (size_t)h * D);
            }
        }
    }
    return 0;
}

/* Mean and population std per (head, feature) over the TRAIN rows of all ranks, from the rank's
 * sums s1 (x) and s2 (x^2) of load_group. The sums are double in row order and the reduction is
 * Reduce + Bcast, so every rank gets bit-identical statistics. The variance is E[x^2] - E[x]^2:
 * in double its error is ~1e-16 (mean/std)^2 relative, far below float's. The data itself is
 * standardized later, a batch of heads at a time, by the fit (ch_probe_data.x16). */
static int stats(probe_ctx *c, int nh, int64_t ntr_global, double *s1, double *s2, float *mean,
                 float *std) {
    const int D = c->D;
    const size_t M = (size_t)nh * D;
    double *g = NULL;
    int rc = 0;
    CH_TRY_GOTO(CH_ALLOC(g, 2 * M, "standardization sums"), out);
    /* s2 follows s1 in one buffer (run()): one reduction for both */
    memcpy(g, s1, sizeof(double) * 2 * M);
    if (MPI_Reduce(g, s1, (int)(2 * M), MPI_DOUBLE, MPI_SUM, 0, c->comm) != MPI_SUCCESS ||
        MPI_Bcast(s1, (int)(2 * M), MPI_DOUBLE, 0, c->comm) != MPI_SUCCESS)
        CH_FAIL_GOTO(out, CH_EMPI, "reducing standardization statistics failed");
    for (size_t hk = 0; hk < M; hk++) {
        const double mu = s1[hk] / (double)ntr_global, var = s2[hk] / (double)ntr_global - mu * mu;
        const double sd = var > 0 ? sqrt(var) : 0;
        mean[hk] = (float)mu;
        std[hk] = sd > 1e-12 ? (float)sd : 1.0f; /* constant feature: like StandardScaler */
    }
out:
    free(g);
    return rc;
}

static int alloc_result(ch_probe_result *r, int L, int H, int D, int k) {
    const size_t nh = (size_t)L * H;
    r->L = L, r->H = H, r->D = D, r->k = k;
    CH_TRY(CH_ALLOC(r->weights, nh * CH_NCAP * D, "probe weights"));
    CH_TRY(CH_ALLOC(r->bias, nh * CH_NCAP, "probe biases"));
    CH_TRY(CH_ALLOC(r->mean, nh * D, "feature means"));
    CH_TRY(CH_ALLOC(r->std, nh * D, "feature stds"));
    CH_TRY(CH_ALLOC(r->val_acc, nh, "validation accuracies"));
    CH_TRY(CH_ALLOC(r->train_acc, nh, "train accuracies"));
    CH_TRY(CH_ALLOC(r->ovr_acc, nh * CH_NCAP, "one-vs-rest accuracies"));
    CH_TRY(CH_ALLOC(r->ovr_auc, nh * CH_NCAP, "one-vs-rest AUCs"));
    CH_TRY(CH_ALLOC(r->top_heads, (size_t)CH_NCAP * k, "top heads"));
    CH_TRY(CH_ALLOC(r->top_scores, (size_t)CH_NCAP * k, "top scores"));
    return 0;
}

static void free_result(ch_probe_result *r) {
    free(r->weights), free(r->bias), free(r->mean), free(r->std), free(r->val_acc);
    free(r->train_acc), free(r->ovr_acc), free(r->ovr_auc), free(r->top_heads), free(r->top_scores);
}

/* Gather the rank's validation probabilities [nh][nva][5] into rank 0's global
 * vprob [L*H][nval][5] (rows in rank order = archive row order), heads [hg0, hg0+nh). */
static int gather_val(probe_ctx *c, int nh, int hg0, const float *loc, const int *nva_all,
                      int64_t nval, float *vprob, float *rbuf) {
    int *cnt = NULL, *dsp = NULL, rc = 0;
    CH_TRY_GOTO(CH_ALLOC(cnt, c->size, "gather counts"), out);
    CH_TRY_GOTO(CH_ALLOC(dsp, c->size, "gather offsets"), out);
    int64_t off = 0;
    for (int r = 0; r < c->size; r++) {
        int64_t n = (int64_t)nh * nva_all[r] * CH_NCAP;
        if (off + n > INT32_MAX)
            CH_FAIL_GOTO(out, CH_EUNSUPPORTED, "validation set too large to gather (%lld values)",
                         (long long)(off + n));
        cnt[r] = (int)n, dsp[r] = (int)off, off += n;
    }
    if (MPI_Gatherv(loc, cnt[c->rank], MPI_FLOAT, rbuf, cnt, dsp, MPI_FLOAT, 0, c->comm) != MPI_SUCCESS)
        CH_FAIL_GOTO(out, CH_EMPI, "MPI_Gatherv of validation probabilities failed");
    if (c->rank == 0) {
        int64_t row = 0;
        for (int r = 0; r < c->size; r++) {
            for (int h = 0; h < nh; h++)
                memcpy(vprob + (((size_t)(hg0 + h) * nval) + row) * CH_NCAP,
                       rbuf + dsp[r] + (size_t)h * nva_all[r] * CH_NCAP,
                       sizeof(float) * (size_t)nva_all[r] * CH_NCAP);
            row += nva_all[r];
        }
    }
out:
    free(cnt);
    free(dsp);
    return rc;
}

static int run(probe_ctx *c, const probe_args *a, ch_probe_result *res, char *opts_json) {
    int rc = 0;
    int64_t counts[4] = {0}, gcounts[4];
    int64_t cls[2 * CH_NCAP] = {0}, gcls[2 * CH_NCAP];
    uint16_t *buf = NULL, *xtr = NULL, *xva = NULL; /* binary16 as in the archive */
    float *ploc = NULL, *vprob = NULL, *rbuf = NULL;
    int32_t *yval = NULL;
    int64_t *trblk = NULL;
    double *s1 = NULL; /* [2][group heads][D]: sums of x, then of x^2 */
    int *nva_all = NULL, *dsp = NULL;
    ch_archive_info info;
    memset(&info, 0, sizeof info);

    rc = agree(ch_archive_open_read(a->input, c->comm, &c->ar), c->comm);
    if (rc) return rc;
    CH_TRY_GOTO(agree(ch_archive_get_info(c->ar, &info), c->comm), out);
    c->L = info.n_layers, c->H = info.n_heads, c->D = info.head_dim;
    int64_t N = info.n_rows;
    /* whole FB-row blocks per rank: a block is the unit of the fit's f32 sums, so keeping every
     * block on one rank keeps the results independent of the rank count */
    const int64_t FB = CH_PROBE_BLOCK;
    int64_t nblk = (N + FB - 1) / FB, b0 = nblk * c->rank / c->size, b1 = nblk * (c->rank + 1) / c->size;
    c->row0 = b0 * FB;
    c->nloc = (b1 * FB < N ? b1 * FB : N) - c->row0;
    if (c->nloc < 0) c->nloc = 0;
    CH_TRY_GOTO(agree(load_rows(c, a, counts), c->comm), out);
    /* training rows per block: offsets into the rank's training rows */
    int64_t lblk = (c->nloc + FB - 1) / FB;
    CH_TRY_GOTO(agree(CH_ALLOC(trblk, lblk + 1, "block offsets"), c->comm), out);
    for (int64_t b = 0, i = 0; b <= lblk; b++) {
        while (i < c->ntr && c->train[i] < b * FB) i++;
        trblk[b] = i;
    }
    for (int64_t i = 0; i < c->ntr; i++) cls[c->ytr[i]]++;
    for (int64_t i = 0; i < c->nva; i++) cls[CH_NCAP + c->yva[i]]++;
    counts[2] = c->ntr, counts[3] = c->nva;
    CH_MPI(MPI_Allreduce(counts, gcounts, 4, MPI_INT64_T, MPI_SUM, c->comm));
    CH_MPI(MPI_Allreduce(cls, gcls, 2 * CH_NCAP, MPI_INT64_T, MPI_SUM, c->comm));
    res->n_skipped_unlabeled = gcounts[0], res->n_skipped_incomplete = gcounts[1];
    res->n_train = gcounts[2], res->n_val = gcounts[3];
    int present[CH_NCAP], npresent = 0;
    for (int k = 0; k < CH_NCAP; k++) {
        res->class_train[k] = gcls[k], res->class_val[k] = gcls[CH_NCAP + k];
        present[k] = gcls[k] > 0;
        npresent += present[k];
    }
    if (npresent < 2)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: the training rows hold %d capability class(es); probing "
                     "needs at least two", a->input, npresent);
    if (res->n_val == 0)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: no validation rows (ids with FNV-1a %% 5 == 0)", a->input);
    const int L = c->L, H = c->H, D = c->D;
    CH_TRY_GOTO(alloc_result(res, L, H, D, a->top_k < L * H ? a->top_k : L * H), out);

    const int64_t kept = c->ntr + c->nva;
    const int nhg = H; /* one layer at a time (see the top of the file) */
    CH_TRY_GOTO(CH_ALLOC(buf, (size_t)RBLOCK * nhg * D, "read buffer"), out);
    CH_TRY_GOTO(CH_ALLOC(s1, 2 * (size_t)nhg * D, "standardization sums"), out);
    CH_TRY_GOTO(CH_ALLOC(xtr, (size_t)nhg * (c->ntr + 1) * D, "train activations"), out);
    CH_TRY_GOTO(CH_ALLOC(xva, (size_t)nhg * (c->nva + 1) * D, "validation activations"), out);
    CH_TRY_GOTO(CH_ALLOC(ploc, (size_t)nhg * (kept + 1) * CH_NCAP, "probabilities"), out);
    CH_TRY_GOTO(CH_ALLOC(nva_all, c->size, "validation counts"), out);
    CH_TRY_GOTO(CH_ALLOC(dsp, c->size, "validation offsets"), out);
    int nva_i = (int)c->nva;
    CH_MPI(MPI_Allgather(&nva_i, 1, MPI_INT, nva_all, 1, MPI_INT, c->comm));
    if (c->rank == 0) {
        CH_TRY_GOTO(CH_ALLOC(vprob, (size_t)L * H * res->n_val * CH_NCAP, "validation probabilities"), out);
        CH_TRY_GOTO(CH_ALLOC(rbuf, (size_t)nhg * res->n_val * CH_NCAP, "gather buffer"), out);
        CH_TRY_GOTO(CH_ALLOC(yval, res->n_val, "validation labels"), out);
    }
    for (int r = 0, o = 0; r < c->size; r++) dsp[r] = o, o += nva_all[r];
    CH_MPI(MPI_Gatherv(c->yva, nva_i, MPI_INT32_T, yval, nva_all, dsp, MPI_INT32_T, 0, c->comm));
    if (c->rank == 0)
        printf("probe: %lld train + %lld validation rows (%lld unlabeled, %lld incomplete skipped), "
               "%d x %d heads, D=%d, %d rank(s)\n",
               (long long)res->n_train, (long long)res->n_val, (long long)res->n_skipped_unlabeled,
               (long long)res->n_skipped_incomplete, L, H, D, c->size);

    int64_t *tr_correct = NULL;
    CH_TRY_GOTO(CH_ALLOC(tr_correct, (size_t)L * H, "train accuracy counts"), out);
    for (int l = 0; l < L && !rc; l++) {
        const int nh = H, hg0 = l * H;
        double *s2 = s1 + (size_t)nh * D;
        rc = agree(load_group(c, a, l, 1, buf, xtr, xva, s1, s2), c->comm);
        if (rc) break;
        float *mean = res->mean + (size_t)hg0 * D, *std = res->std + (size_t)hg0 * D;
        rc = stats(c, nh, res->n_train, s1, s2, mean, std);
        if (rc) break;
        ch_probe_data d = {nh, D, c->ntr, res->n_train, NULL, c->ytr, {0}, trblk, lblk, xtr, mean, std};
        memcpy(d.present, present, sizeof present);
        int evals = 0, unconv = 0;
        float *W = res->weights + (size_t)hg0 * CH_NCAP * D, *b = res->bias + (size_t)hg0 * CH_NCAP;
        rc = ch_probe_fit(&a->fit, &d, c->comm, W, b, tr_correct + hg0, &evals, &unconv);
        if (rc) break;
        res->evals = evals > res->evals ? evals : res->evals;
        res->unconverged += unconv;
        rc = agree(ch_probe_predict16(nh, D, c->nva, xva, mean, std, W, b, present, ploc), c->comm);
        if (rc) break;
        rc = gather_val(c, nh, hg0, ploc, nva_all, res->n_val, vprob, rbuf);
        if (rc == 0 && c->rank == 0) {
            printf("probe: layer %d of %d fitted in %d evaluations (%d head(s) at the cap)\n", l + 1,
                   L, evals, unconv);
            fflush(stdout);
        }
    }
    if (rc) {
        free(tr_correct);
        goto out;
    }
    /* the fit counted the rows right over all ranks at each head's solution */
    for (int h = 0; h < L * H; h++) res->train_acc[h] = (float)((double)tr_correct[h] / res->n_train);
    free(tr_correct);

    res->input_path = a->input, res->input_created = info.created ? info.created : "";
    res->input_sha256 = info.input_sha256 ? info.input_sha256 : "";
    res->options = opts_json;
    int orc = 0;
    if (c->rank == 0) {
        orc = ch_probe_metrics(res->n_val, vprob, yval, res);
        if (!orc) orc = ch_probe_write(a->output, res);
        if (!orc && a->heatmap) orc = ch_probe_heatmap(a->heatmap, res);
    }
    CH_TRY_GOTO(agree(orc, c->comm), out);
    if (c->rank == 0) {
        printf("probe: best head L%d.H%d validation accuracy %.2f%%; top-%d ensemble %.2f%%\n",
               res->best_head / H, res->best_head % H, 100 * res->best_head_acc, res->k,
               100 * res->ensemble_acc);
        for (int k = 0; k < CH_NCAP; k++) {
            printf("  %-12s top heads:", ch_capability_names[k]);
            for (int j = 0; j < res->k && j < 5; j++)
                printf(" L%d.H%d(%.3f)", res->top_heads[k * res->k + j] / H,
                       res->top_heads[k * res->k + j] % H, res->top_scores[k * res->k + j]);
            printf("%s\n", res->k > 5 ? " ..." : "");
        }
        printf("probe: wrote %s\n", a->output);
    }
out:
    ch_archive_info_free(&info);
    free(buf), free(xtr), free(xva), free(ploc), free(vprob), free(rbuf), free(yval);
    free(nva_all), free(dsp), free(trblk), free(s1);
    return rc;
}

int ch_cmd_probe(int argc, char **argv, MPI_Comm comm) {
    probe_args a;
    int help = 0;
    CH_TRY(parse(argc, argv, &a, &help));
    ch_timing tm;
    ch_timing_start(&tm, "probe");
    probe_ctx c;
    memset(&c, 0, sizeof c);
    c.comm = comm;
    CH_MPI(MPI_Comm_rank(comm, &c.rank));
    CH_MPI(MPI_Comm_size(comm, &c.size));
    if (help) {
        if (c.rank == 0) usage(stdout);
        return 0;
    }
    char opts[512];
    snprintf(opts, sizeof opts,
             "{\"top_k\": %d, \"lambda\": %.17g, \"tol\": %.17g, \"max_evals\": %d, \"history\": %d, "
             "\"allow_incomplete\": %s, \"split\": \"fnv1a64(id) %% 5 == 0 -> validation\", "
             "\"score\": \"ovr_auc\"}",
             a.top_k, a.fit.lambda, a.fit.tol, a.fit.max_evals, a.fit.history,
             a.allow_incomplete ? "true" : "false");
    ch_probe_result res;
    memset(&res, 0, sizeof res);
    int rc = run(&c, &a, &res, opts);
    free_result(&res);
    if (c.ids) ch_archive_free_strings(c.ids, c.nloc);
    free(c.ids), free(c.train), free(c.val), free(c.ytr), free(c.yva);
    int crc = ch_archive_close_read(c.ar);
    rc = rc ? rc : crc;
    tm.records = res.n_train + res.n_val;
    tm.io_seconds = c.io_seconds;
    if (!rc) rc = ch_timing_add(&tm, "heads", (int64_t)c.L * c.H);
    if (!rc) rc = ch_timing_add(&tm, "train_rows", res.n_train);
    if (!rc) rc = ch_timing_add(&tm, "val_rows", res.n_val);
    return ch_timing_finish(&tm, a.timing, rc, comm);
}
