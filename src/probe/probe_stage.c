/* cmd_probe.c - `capheads probe`: fit the per-head probes of an activation archive.
 *
 * Data flow: each rank owns a contiguous run of whole CH_PROBE_BLOCK-row blocks (blocks
 * [B*rank/R, B*(rank+1)/R) of the B blocks) and streams it in reads of 256 rows, one layer at a
 * time: the layer's activations for the rank's rows are cached as the archive's binary16,
 * head-major, so that the solver's many passes never touch the file again. One layer (the
 * archive's chunks are one layer wide) keeps the cache small and reused: a bigger group made
 * nothing faster, and its first touch of fresh memory cost more than the copy into it.
 * Standardization statistics (mean, population std over TRAIN rows) are reduced over ranks, the
 * probes of the layer's heads are fitted in lockstep (src/probe.c) on cache-sized batches, every
 * lambda of the grid in the same run, each head keeping the lambda its validation rows prefer
 * (src/probe_grid.c); the validation and test probabilities are gathered on rank 0, which chooses
 * the capability-head map and k on validation, reports the test split's figures, and writes the
 * probe file (serially) and the heatmaps. The format-only baseline (src/probe_baseline.c) is
 * fitted the same way on features of the corpus text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "outfinish.h"
#include "stage.h"
#include "err.h"
#include "h5util.h"
#include "mpicheck.h"
#include "numfmt.h"
#include "options.h"
#include "agree.h"
#include "probe.h"
#include "probe_stage.h"
#include "timing.h"

#define RBLOCK 256
#define TILE 32

/* The fit's defaults are ch_probe_opts_default's (src/probe/probe.c), written out for --help. */
static const ch_opt opts_table[] = {
    {"input", 0, CH_OPT_PATH, offsetof(probe_args, input), "PROBESET.h5", .flags = CH_OPT_REQUIRED,
     .help = "the probing set's archive (capheads extract)"},
    {"output", 0, CH_OPT_PATH, offsetof(probe_args, output), "PROBES.h5", .flags = CH_OPT_REQUIRED,
     .help = "the probe file"},
    {"top-k", 0, CH_OPT_INT, offsetof(probe_args, top_k), "K", .lo = 1, .hi = INT32_MAX,
     .help = "heads per capability in the capability-head map (default: chosen on validation\n"
             "from 1, 2, 4, ..., 64, capped at layers x heads)"},
    {"heatmap", 0, CH_OPT_PATH, offsetof(probe_args, heatmap), "DIR",
     .help = "also draw per-capability head heatmaps (SVG) into DIR"},
    {"lambda", 0, CH_OPT_DOUBLE, offsetof(probe_args, lambda), "L", .flo = 0, .fhi = INFINITY,
     .flags = CH_OPT_LO_OPEN, .help = "fix the L2 regularisation strength (default: chosen per head on\n"
                                      "validation from --lambda-grid)"},
    {"lambda-grid", 0, CH_OPT_STRING, offsetof(probe_args, lambda_grid), "L1,L2,...",
     .help = "candidate strengths, each head keeping the one with the lowest validation\n"
             "cross-entropy (default " CH_PROBE_LAMBDA_GRID ")"},
    {"corpus", 0, CH_OPT_PATH, offsetof(probe_args, corpus), "FILE",
     .help = "the JSONL the archive was extracted from, for the format-only baseline\n"
             "(default: the archive's input_path; its sha256 must be the archive's input_sha256)"},
    {"require-baseline", 0, CH_OPT_FLAG, offsetof(probe_args, require_baseline),
     .help = "fail when the format-only baseline cannot be fitted (default: skip it, saying why)"},
    {"tol", 0, CH_OPT_DOUBLE, offsetof(probe_args, fit.tol), "T", .def = "1e-5", .flo = 0, .fhi = INFINITY,
     .flags = CH_OPT_LO_OPEN, .help = "convergence tolerance of the solver"},
    {"max-evals", 0, CH_OPT_INT, offsetof(probe_args, fit.max_evals), "N", .def = "500", .lo = 1, .hi = INT32_MAX,
     .help = "function evaluations per head at most"},
    CH_OPT_FORCE(probe_args, force),
    {"allow-incomplete", 0, CH_OPT_FLAG, offsetof(probe_args, allow_incomplete),
     .help = "skip rows an unfinished extraction left undone"},
    {"timing", 0, CH_OPT_PATH, offsetof(probe_args, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = rows fitted\n"
             "(train + validation + test), heads, train_rows, val_rows, test_rows, lambdas"},
};

static const ch_opt_cmd cmd = {
    "probe", opts_table, CH_NOPTS(opts_table),
    .about = "Fits a multinomial logistic-regression probe per (layer, head) over the five\n"
             "capabilities. Rows split by the FNV-1a 64 hash of their id: % 5 == 0 validation (chooses\n"
             "lambda, the head ranking and k), == 1 test (every accuracy reported), else train.\n"};

/* Labels, done mask and ids of the rank's rows: split into train/validation/test, skip unlabeled
 * rows. */
static int load_rows(probe_ctx *c, const probe_args *a) {
    int32_t *lab = NULL;
    uint8_t *done = NULL;
    int rc = 0;
    int64_t n = c->nloc;
    CH_TRY_GOTO(CH_ALLOC(lab, n + 1, "labels"), out);
    CH_TRY_GOTO(CH_ALLOC(done, n + 1, "done mask"), out);
    CH_TRY_GOTO(CH_ALLOC(c->ids, n + 1, "ids"), out);
    for (int s = 0; s < CH_NSPLIT; s++) {
        CH_TRY_GOTO(CH_ALLOC(c->idx[s], n + 1, "split rows"), out);
        CH_TRY_GOTO(CH_ALLOC(c->y[s], n + 1, "split labels"), out);
    }
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
            c->skipped[1]++;
            continue;
        }
        if (lab[i] == -1) {
            c->skipped[0]++;
            continue;
        }
        if (lab[i] < 0 || lab[i] >= CH_NCAP)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: row %lld (id '%s'): label %d outside 0..4 (-1 = none)",
                         a->input, (long long)(c->row0 + i), id, lab[i]);
        const int s = ch_probe_split(id);
        c->y[s][c->n[s]] = lab[i], c->idx[s][c->n[s]++] = i;
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

/* A read block's kept rows: where in buf, where in head 0's rows of their split's cache (head h
 * adds h * n[split] * D), and which split. */
typedef struct {
    int n;
    int pick[RBLOCK];
    uint16_t *dst[RBLOCK];
    uint8_t split[RBLOCK];
} kept_rows;

/* The split of local row i when it is the next row of one (next[s]: the next row of split s), or
 * -1. */
static int row_split(const probe_ctx *c, const int64_t next[CH_NSPLIT], int64_t i) {
    for (int s = 0; s < CH_NSPLIT; s++)
        if (next[s] < c->n[s] && c->idx[s][next[s]] == i) return s;
    return -1;
}

/* The kept rows of block [r0, r0+nb) (layers l0.., nh heads in buf); next[s]: the next row of
 * split s. One scan of the block; a row-by-row search only when it finds something, and only
 * kept rows count (an incomplete row may hold anything). */
static int pick_rows(const probe_ctx *c, const probe_args *a, int l0, int nh, int64_t r0, int64_t nb,
                     const uint16_t *buf, int64_t next[CH_NSPLIT], kept_rows *k) {
    const int H = c->H, D = c->D;
    const int bad = ch_h5_f16_any_nonfinite(buf, (size_t)nb * nh * D);
    k->n = 0;
    for (int64_t i = r0; i < r0 + nb; i++) {
        const int sp = row_split(c, next, i);
        if (sp < 0) continue;
        const uint16_t *src = buf + (size_t)(i - r0) * nh * D;
        if (bad && ch_h5_f16_any_nonfinite(src, (size_t)nh * D)) {
            size_t e = 0;
            while ((src[e] & 0x7c00u) != 0x7c00u) e++;
            CH_FAIL(CH_EFORMAT, "%s: row %lld (id '%s'), layer %d, head %d: activation %d is %s",
                    a->input, (long long)(c->row0 + i), c->ids[i], l0 + (int)(e / D) / H,
                    (int)(e / D) % H, (int)(e % D), src[e] & 0x3ffu ? "NaN" : "Inf");
        }
        k->pick[k->n] = (int)(i - r0);
        k->dst[k->n] = c->x16[sp] + (size_t)next[sp]++ * D;
        k->split[k->n++] = (uint8_t)sp;
    }
    return 0;
}

/* Copy the kept rows head-major and add the train rows to s1, s2: tiles of TILE rows x all
 * heads, so that a head's rows of a tile are TILE strided reads and one contiguous write, and
 * the tile's source lines stay in cache across the heads. */
static void copy_rows(const probe_ctx *c, int nh, int f16c, const uint16_t *buf, const kept_rows *k, double *s1,
                      double *s2) {
    const int D = c->D;
    for (int k0 = 0; k0 < k->n; k0 += TILE) {
        const int k1 = k->n - k0 < TILE ? k->n : k0 + TILE;
        int tr_rows[TILE], nt = 0;
        for (int j = k0; j < k1; j++)
            if (k->split[j] == CH_SPLIT_TRAIN) tr_rows[nt++] = k->pick[j];
        for (int h = 0; h < nh; h++) {
            for (int j = k0; j < k1; j++)
                memcpy(k->dst[j] + (size_t)h * (size_t)c->n[k->split[j]] * D,
                       buf + ((size_t)k->pick[j] * nh + h) * D, sizeof(uint16_t) * D);
            add_stats(f16c, buf + (size_t)h * D, (size_t)nh * D, tr_rows, nt, D, s1 + (size_t)h * D,
                      s2 + (size_t)h * D);
        }
    }
}

/* Read layers [l0, l0+G) of the rank's kept rows into the head-major caches x16[s]
 * [G*H][n[s]][D] of their splits, the archive's binary16 values as they are (half the bytes of
 * f32; the fit standardizes a cache-sized batch of heads at a time), refusing non-finite values;
 * s1, s2 [G*H][D] get the train rows' sums of x and x^2 (double, in row order), the
 * standardization's statistics, in the same pass. */
static int load_group(probe_ctx *c, const probe_args *a, int l0, int G, uint16_t *buf, double *s1, double *s2) {
    const int nh = G * c->H, D = c->D;
    const int f16c = ch_h5_have_f16c();
    int64_t next[CH_NSPLIT] = {0};
    memset(s1, 0, sizeof(double) * (size_t)nh * D);
    memset(s2, 0, sizeof(double) * (size_t)nh * D);
    kept_rows k;
    for (int64_t r0 = 0; r0 < c->nloc; r0 += RBLOCK) {
        int64_t nb = c->nloc - r0 < RBLOCK ? c->nloc - r0 : RBLOCK;
        /* skip blocks with no kept rows (e.g. an unlabeled tail) */
        int64_t first = INT64_MAX;
        for (int s = 0; s < CH_NSPLIT; s++)
            if (next[s] < c->n[s] && c->idx[s][next[s]] < first) first = c->idx[s][next[s]];
        if (first >= r0 + nb) continue;
        const double t0 = MPI_Wtime();
        CH_TRY(ch_archive_read_acts_raw(c->ar, c->row0 + r0, nb, l0, G, buf));
        c->io_seconds += MPI_Wtime() - t0;
        CH_TRY(pick_rows(c, a, l0, nh, r0, nb, buf, next, &k));
        copy_rows(c, nh, f16c, buf, &k, s1, s2);
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
    CH_MPI_TRY_GOTO(MPI_Reduce(g, s1, (int)(2 * M), MPI_DOUBLE, MPI_SUM, 0, c->comm), out);
    CH_MPI_TRY_GOTO(MPI_Bcast(s1, (int)(2 * M), MPI_DOUBLE, 0, c->comm), out);
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

static int alloc_result(ch_probe_result *r, int L, int H, int D, int kroom, int G) {
    const size_t nh = (size_t)L * H;
    r->L = L, r->H = H, r->D = D;
    CH_TRY(CH_ALLOC(r->weights, nh * CH_NCAP * D, "probe weights"));
    CH_TRY(CH_ALLOC(r->bias, nh * CH_NCAP, "probe biases"));
    CH_TRY(CH_ALLOC(r->mean, nh * D, "feature means"));
    CH_TRY(CH_ALLOC(r->std, nh * D, "feature stds"));
    CH_TRY(CH_ALLOC(r->val_acc, nh, "validation accuracies"));
    CH_TRY(CH_ALLOC(r->test_acc, nh, "test accuracies"));
    CH_TRY(CH_ALLOC(r->train_acc, nh, "train accuracies"));
    CH_TRY(CH_ALLOC(r->ovr_acc, nh * CH_NCAP, "one-vs-rest accuracies"));
    CH_TRY(CH_ALLOC(r->ovr_auc, nh * CH_NCAP, "one-vs-rest AUCs"));
    CH_TRY(CH_ALLOC(r->test_ovr_acc, nh * CH_NCAP, "test one-vs-rest accuracies"));
    CH_TRY(CH_ALLOC(r->test_ovr_auc, nh * CH_NCAP, "test one-vs-rest AUCs"));
    CH_TRY(CH_ALLOC(r->lambda, nh, "chosen lambdas"));
    CH_TRY(CH_ALLOC(r->val_loss, nh * G, "validation losses"));
    CH_TRY(CH_ALLOC(r->top_heads, (size_t)CH_NCAP * kroom, "top heads"));
    return CH_ALLOC(r->top_scores, (size_t)CH_NCAP * kroom, "top scores");
}

static void free_result(ch_probe_result *r) {
    free(r->weights), free(r->bias), free(r->mean), free(r->std), free(r->val_acc), free(r->test_acc);
    free(r->train_acc), free(r->ovr_acc), free(r->ovr_auc), free(r->test_ovr_acc), free(r->test_ovr_auc);
    free(r->lambda), free(r->val_loss), free(r->top_heads), free(r->top_scores);
}

/* Open the archive; this rank gets whole FB-row blocks: a block is the unit of the fit's f32
 * sums, so keeping every block on one rank keeps the results independent of the rank count. */
static int open_input(probe_ctx *c, const probe_args *a) {
    CH_TRY(ch_mpi_agree(c->comm, ch_archive_open_read(a->input, c->comm, &c->ar)));
    CH_TRY(ch_mpi_agree(c->comm, ch_archive_get_info(c->ar, &c->info)));
    /* the probes are applied at the prompt's end (decompose, select): fitted there too */
    if (c->info.render.recorded)
        CH_TRY(ch_render_rule_need_prompt("probe", "probing archive", a->input, &c->info.render));
    else if (c->rank == 0)
        fprintf(stderr, "probe: %s records no render rule (an older extract): the probe file will record none, and "
                        "decompose and select refuse such probes\n", a->input);
    c->L = c->info.n_layers, c->H = c->info.n_heads, c->D = c->info.head_dim;
    const int64_t N = c->info.n_rows, FB = CH_PROBE_BLOCK;
    int64_t nblk = (N + FB - 1) / FB, b0 = nblk * c->rank / c->size, b1 = nblk * (c->rank + 1) / c->size;
    c->row0 = b0 * FB;
    c->nloc = (b1 * FB < N ? b1 * FB : N) - c->row0;
    if (c->nloc < 0) c->nloc = 0;
    return 0;
}

/* The rank's rows into the three splits, and the train rows' block offsets. */
static int split_rows(probe_ctx *c, const probe_args *a) {
    const int64_t FB = CH_PROBE_BLOCK;
    CH_TRY(ch_mpi_agree(c->comm, load_rows(c, a)));
    c->lblk = (c->nloc + FB - 1) / FB;
    CH_TRY(ch_mpi_agree(c->comm, CH_ALLOC(c->trblk, c->lblk + 1, "block offsets")));
    const int64_t *train = c->idx[CH_SPLIT_TRAIN];
    for (int64_t b = 0, i = 0; b <= c->lblk; b++) {
        while (i < c->n[CH_SPLIT_TRAIN] && train[i] < b * FB) i++;
        c->trblk[b] = i;
    }
    return 0;
}

/* Row and class counts over all ranks; probing needs two classes, validation and test rows. */
static int count_rows(probe_ctx *c, const probe_args *a, ch_probe_result *res) {
    int64_t cls[CH_NSPLIT * CH_NCAP] = {0}, gcls[CH_NSPLIT * CH_NCAP], loc[2 + CH_NSPLIT], glob[2 + CH_NSPLIT];
    for (int s = 0; s < CH_NSPLIT; s++)
        for (int64_t i = 0; i < c->n[s]; i++) cls[s * CH_NCAP + c->y[s][i]]++;
    loc[0] = c->skipped[0], loc[1] = c->skipped[1];
    for (int s = 0; s < CH_NSPLIT; s++) loc[2 + s] = c->n[s];
    CH_MPI_TRY(MPI_Allreduce(loc, glob, 2 + CH_NSPLIT, MPI_INT64_T, MPI_SUM, c->comm));
    CH_MPI_TRY(MPI_Allreduce(cls, gcls, CH_NSPLIT * CH_NCAP, MPI_INT64_T, MPI_SUM, c->comm));
    res->n_skipped_unlabeled = glob[0], res->n_skipped_incomplete = glob[1];
    for (int s = 0; s < CH_NSPLIT; s++) c->ntot[s] = glob[2 + s];
    res->n_train = c->ntot[CH_SPLIT_TRAIN], res->n_val = c->ntot[CH_SPLIT_VAL], res->n_test = c->ntot[CH_SPLIT_TEST];
    int npresent = 0;
    for (int k = 0; k < CH_NCAP; k++) {
        res->class_train[k] = gcls[CH_SPLIT_TRAIN * CH_NCAP + k];
        res->class_val[k] = gcls[CH_SPLIT_VAL * CH_NCAP + k];
        res->class_test[k] = gcls[CH_SPLIT_TEST * CH_NCAP + k];
        c->present[k] = res->class_train[k] > 0;
        npresent += c->present[k];
    }
    if (npresent < 2)
        CH_FAIL(CH_EFORMAT, "%s: the training rows hold %d capability class(es); probing needs at least two",
                a->input, npresent);
    if (res->n_val == 0) CH_FAIL(CH_EFORMAT, "%s: no validation rows (ids with FNV-1a %% 5 == 0)", a->input);
    if (res->n_test == 0) CH_FAIL(CH_EFORMAT, "%s: no test rows (ids with FNV-1a %% 5 == 1)", a->input);
    const int LH = c->L * c->H, kroom = a->top_k > CH_PROBE_TOPK_MAX ? a->top_k : CH_PROBE_TOPK_MAX;
    res->k_fixed = a->top_k;
    res->n_lambda = a->ngrid;
    memcpy(res->lambda_grid, a->grid, sizeof(double) * (size_t)a->ngrid);
    return alloc_result(res, c->L, c->H, c->D, kroom < LH ? kroom : LH, a->ngrid);
}

/* The layer caches, and rank 0's gathered held-out labels and probability buffers. */
static int alloc_buffers(probe_ctx *c, const ch_probe_result *res) {
    const int nhg = c->H, D = c->D; /* one layer at a time (see the top of the file) */
    const int64_t nho = c->n[CH_SPLIT_VAL] > c->n[CH_SPLIT_TEST] ? c->n[CH_SPLIT_VAL] : c->n[CH_SPLIT_TEST];
    const int64_t gho = res->n_val > res->n_test ? res->n_val : res->n_test;
    CH_TRY(CH_ALLOC(c->buf, (size_t)RBLOCK * nhg * D, "read buffer"));
    CH_TRY(CH_ALLOC(c->s1, 2 * (size_t)nhg * D, "standardization sums"));
    for (int s = 0; s < CH_NSPLIT; s++) CH_TRY(CH_ALLOC(c->x16[s], (size_t)nhg * (c->n[s] + 1) * D, "activations"));
    CH_TRY(CH_ALLOC(c->ploc, (size_t)nhg * (nho + 1) * CH_NCAP, "probabilities"));
    for (int s = CH_SPLIT_VAL; s <= CH_SPLIT_TEST; s++) {
        CH_TRY(CH_ALLOC(c->nall[s], c->size, "held-out counts"));
        int n_i = (int)c->n[s];
        CH_MPI_TRY(MPI_Allgather(&n_i, 1, MPI_INT, c->nall[s], 1, MPI_INT, c->comm));
        if (c->rank == 0) {
            CH_TRY(CH_ALLOC(c->prob[s], (size_t)c->L * c->H * c->ntot[s] * CH_NCAP, "held-out probabilities"));
            CH_TRY(CH_ALLOC(c->yall[s], c->ntot[s], "held-out labels"));
        }
        int *dsp = NULL;
        CH_TRY(CH_ALLOC(dsp, c->size, "held-out offsets"));
        for (int r = 0, o = 0; r < c->size; r++) dsp[r] = o, o += c->nall[s][r];
        const int e = MPI_Gatherv(c->y[s], n_i, MPI_INT32_T, c->yall[s], c->nall[s], dsp, MPI_INT32_T, 0, c->comm);
        free(dsp);
        CH_MPI_TRY(e);
    }
    if (c->rank == 0) CH_TRY(CH_ALLOC(c->rbuf, (size_t)nhg * gho * CH_NCAP, "gather buffer"));
    CH_TRY(CH_ALLOC(c->pick, nhg, "chosen lambdas"));
    return CH_ALLOC(c->tr_correct, (size_t)c->L * c->H, "train accuracy counts");
}

/* Layer l: load, standardize, fit its heads' probes once per lambda in lockstep and keep each
 * head's validation choice, gather the validation and test probabilities on rank 0. */
static int fit_layer(probe_ctx *c, const probe_args *a, ch_probe_result *res, int l) {
    const int H = c->H, D = c->D, nh = H, hg0 = l * H;
    double *s1 = c->s1, *s2 = s1 + (size_t)nh * D;
    CH_TRY(ch_mpi_agree(c->comm, load_group(c, a, l, 1, c->buf, s1, s2)));
    float *mean = res->mean + (size_t)hg0 * D, *std = res->std + (size_t)hg0 * D;
    CH_TRY(stats(c, nh, res->n_train, s1, s2, mean, std));
    ch_probe_data d = {nh, D, c->n[CH_SPLIT_TRAIN], res->n_train, NULL, c->y[CH_SPLIT_TRAIN], {0}, c->trblk, c->lblk,
                       c->x16[CH_SPLIT_TRAIN], mean, std, NULL, NULL};
    memcpy(d.present, c->present, sizeof c->present);
    int evals = 0, unconv = 0;
    float *W = res->weights + (size_t)hg0 * CH_NCAP * D, *b = res->bias + (size_t)hg0 * CH_NCAP;
    probe_rows val = {nh, D, c->x16[CH_SPLIT_VAL], NULL, mean, std}, test = val;
    test.x16 = c->x16[CH_SPLIT_TEST];
    CH_TRY(ch_probe_fit_grid(c, a, &d, &val, W, b, c->tr_correct + hg0, c->pick, res->val_loss + hg0, c->L * H,
                             &evals, &unconv));
    for (int h = 0; h < nh; h++) res->lambda[hg0 + h] = (float)a->grid[c->pick[h]];
    res->evals = evals > res->evals ? evals : res->evals;
    res->unconverged += unconv;
    const size_t off_v = (size_t)hg0 * res->n_val * CH_NCAP, off_t = (size_t)hg0 * res->n_test * CH_NCAP;
    CH_TRY(ch_probe_predict_split(c, &val, CH_SPLIT_VAL, W, b, c->rank == 0 ? c->prob[CH_SPLIT_VAL] + off_v : NULL));
    CH_TRY(ch_probe_predict_split(c, &test, CH_SPLIT_TEST, W, b, c->rank == 0 ? c->prob[CH_SPLIT_TEST] + off_t : NULL));
    if (c->rank == 0) {
        printf("probe: layer %d of %d fitted, %d lambda(s), in %d evaluations at most (%d fit(s) at the cap)\n", l + 1,
               c->L, a->ngrid, evals, unconv);
        fflush(stdout);
    }
    return 0;
}

/* Rank 0 computes the figures, chooses k and writes the probe file (and the heatmaps); every rank
 * learns whether it could. */
static int write_output(probe_ctx *c, const probe_args *a, ch_probe_result *res, char *opts_json) {
    /* the fit counted the rows right over all ranks at each head's solution */
    for (int h = 0; h < c->L * c->H; h++) res->train_acc[h] = (float)((double)c->tr_correct[h] / res->n_train);
    res->input_path = a->input, res->input_created = c->info.created ? c->info.created : "";
    res->input_sha256 = c->info.input_sha256 ? c->info.input_sha256 : "";
    res->options = opts_json;
    res->render = &c->info.render;
    /* under the partial name, published (sealed, renamed) after the heatmaps: outfinish.h */
    char partial[4200];
    int orc = ch_out_partial_name(a->output, partial, sizeof partial);
    if (c->rank == 0 && !orc) {
        const ch_probe_split_probs v = {res->n_val, c->prob[CH_SPLIT_VAL], c->yall[CH_SPLIT_VAL]},
                                   t = {res->n_test, c->prob[CH_SPLIT_TEST], c->yall[CH_SPLIT_TEST]};
        orc = ch_probe_metrics(&v, &t, res);
        if (res->base.fitted) res->base.warn = ch_probe_baseline_warns(res->base.test_acc, res->best_head_test_acc);
        if (!orc) orc = ch_probe_write(partial, res);
        if (!orc) ch_out_kill_point("write");
        if (!orc && a->heatmap) orc = ch_probe_heatmap(a->heatmap, res);
    }
    return ch_out_finish(c->comm, orc, partial, a->output, 1);
}

static void report_start(const probe_ctx *c, const ch_probe_result *res) {
    if (c->rank != 0) return;
    printf("probe: %lld train + %lld validation + %lld test rows (%lld unlabeled, %lld incomplete skipped), "
           "%d x %d heads, D=%d, %d rank(s)\n",
           (long long)res->n_train, (long long)res->n_val, (long long)res->n_test,
           (long long)res->n_skipped_unlabeled, (long long)res->n_skipped_incomplete, c->L, c->H, c->D, c->size);
}

/* What validation chose: the lambdas (how many heads took each) and k. */
static void report_choices(const probe_ctx *c, const ch_probe_result *res) {
    printf("probe: lambda per head, chosen on validation:");
    for (int g = 0; g < res->n_lambda; g++) {
        int n = 0;
        for (int h = 0; h < c->L * c->H; h++) n += res->lambda[h] == (float)res->lambda_grid[g];
        printf(" %g (%d head(s))%s", res->lambda_grid[g], n, g + 1 < res->n_lambda ? "," : "\n");
    }
    /* (the validation accuracies behind the choice are in the file, not printed: every accuracy
     * printed is the test split's) */
    printf("probe: top-k = %d, %s", res->k, res->k_fixed ? "fixed by --top-k" : "chosen on validation from");
    for (int i = 0; i < res->n_topk && !res->k_fixed; i++) printf(" %d", res->topk_grid[i]);
    printf("\n");
}

/* The format-only baseline beside the heads, and the warning when it comes within the margin. */
static void report_baseline(const ch_probe_result *res) {
    const ch_probe_baseline *b = &res->base;
    if (!b->fitted) {
        printf("probe: format-only baseline skipped: %s\n", b->note);
        return;
    }
    printf("probe: format-only baseline test accuracy (held out, n=%lld) %.2f%% (lambda %g); the heads above it: "
           "best head %+.2f points, ensemble %+.2f points\n",
           (long long)res->n_test, 100 * b->test_acc, b->lambda, 100 * (res->best_head_test_acc - b->test_acc),
           100 * (res->ensemble_test_acc - b->test_acc));
    if (b->warn) {
        fflush(stdout);
        fprintf(stderr,
                "warning: a format-only baseline reaches %.2f%% on the test split (held out, n=%lld; best head "
                "%.2f%%, ensemble %.2f%%): the classes can be told apart by format; the probes may read the "
                "format, not the capability (docs/probe.md#format-baseline)\n",
                100 * b->test_acc, (long long)res->n_test, 100 * res->best_head_test_acc, 100 * res->ensemble_test_acc);
    }
}

static void report_end(const probe_ctx *c, const probe_args *a, const ch_probe_result *res) {
    if (c->rank != 0) return;
    const int H = c->H;
    report_choices(c, res);
    printf("probe: test accuracy (held out, n=%lld): best head L%d.H%d (chosen on validation) %.2f%%; top-%d "
           "ensemble %.2f%%\n",
           (long long)res->n_test, res->best_head / H, res->best_head % H, 100 * res->best_head_test_acc, res->k,
           100 * res->ensemble_test_acc);
    report_baseline(res);
    for (int k = 0; k < CH_NCAP; k++) {
        printf("  %-12s top heads (test AUC):", ch_capability_names[k]);
        for (int j = 0; j < res->k && j < 5; j++) {
            const int h = res->top_heads[k * res->k + j];
            printf(" L%d.H%d(%.3f)", h / H, h % H, res->test_ovr_auc[h * CH_NCAP + k]);
        }
        printf("%s\n", res->k > 5 ? " ..." : "");
    }
    printf("probe: wrote %s\n", a->output);
}

static int run(probe_ctx *c, const probe_args *a, ch_probe_result *res, char *opts_json) {
    const ch_path_role in[] = {{a->input, "--input", 0}, {a->corpus, "--corpus", 1}};
    const ch_path_role out[] = {{a->output, "--output", 0}, {a->heatmap, "--heatmap", 1}, {a->timing, "--timing", 0}};
    CH_TRY(ch_stage_guard(c->comm, in, a->corpus ? 2 : 1, out, 3, 2, a->force, &c->lock));
    CH_TRY(open_input(c, a));
    CH_TRY(split_rows(c, a));
    CH_TRY(count_rows(c, a, res));
    CH_TRY(alloc_buffers(c, res));
    report_start(c, res);
    for (int l = 0; l < c->L; l++) {
        CH_TRY(fit_layer(c, a, res, l));
        (void)ch_lock_refresh(c->lock); /* heartbeat; a failed touch only ages the lock */
    }
    CH_TRY(ch_probe_baseline_run(c, a, res));
    CH_TRY(write_output(c, a, res, opts_json));
    report_end(c, a, res);
    return 0;
}

static void ctx_free(probe_ctx *c) {
    if (c->ids) ch_archive_free_strings(c->ids, c->nloc);
    free(c->ids);
    for (int s = 0; s < CH_NSPLIT; s++)
        free(c->idx[s]), free(c->y[s]), free(c->x16[s]), free(c->prob[s]), free(c->yall[s]), free(c->nall[s]);
    ch_archive_info_free(&c->info);
    free(c->buf), free(c->ploc), free(c->rbuf), free(c->trblk), free(c->s1), free(c->tr_correct), free(c->pick);
    ch_lock_release(c->lock);
}

/* The lambda grid: --lambda alone, or --lambda-grid (its default when neither is given). */
static int lambda_grid(probe_args *a) {
    if (a->lambda > 0 && a->lambda_grid)
        CH_FAIL(CH_EARG, "--lambda %g and --lambda-grid %s: give one (--lambda fixes lambda, the grid chooses it)",
                a->lambda, a->lambda_grid);
    if (a->lambda > 0) {
        a->grid[0] = a->lambda, a->ngrid = 1;
        return 0;
    }
    return ch_probe_parse_grid("lambda-grid", a->lambda_grid ? a->lambda_grid : CH_PROBE_LAMBDA_GRID, a->grid,
                               &a->ngrid);
}

/* The options as the probe file records them. */
static void options_json(const probe_args *a, char *buf, size_t cap) {
    char grid[CH_PROBE_MAX_LAMBDAS * 26] = "";
    for (int g = 0, n = 0; g < a->ngrid; g++)
        n += snprintf(grid + n, sizeof grid - (size_t)n, "%s%.17g", g ? ", " : "", a->grid[g]);
    snprintf(buf, cap,
             "{\"top_k\": %d, \"lambda_grid\": [%s], \"tol\": %.17g, \"max_evals\": %d, \"history\": %d, "
             "\"allow_incomplete\": %s, \"corpus\": \"%s\", \"require_baseline\": %s, "
             "\"split\": \"fnv1a64(id) %% 5: 0 validation, 1 test, 2..4 train\", \"score\": \"ovr_auc\"}",
             a->top_k, grid, a->fit.tol, a->fit.max_evals, a->fit.history, a->allow_incomplete ? "true" : "false",
             a->corpus ? a->corpus : "", a->require_baseline ? "true" : "false");
}

int ch_cmd_probe(int argc, char **argv, MPI_Comm comm) {
    probe_args a;
    memset(&a, 0, sizeof a);
    ch_probe_opts_default(&a.fit); /* history and cache size; the table sets the rest */
    int help;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &a, &help));
    if (help) return ch_opt_help(&cmd, comm);
    CH_TRY(lambda_grid(&a));
    ch_timing tm;
    ch_timing_start(&tm, "probe");
    probe_ctx c;
    memset(&c, 0, sizeof c);
    c.comm = comm;
    CH_MPI_TRY(MPI_Comm_rank(comm, &c.rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &c.size));
    char opts[2048];
    options_json(&a, opts, sizeof opts);
    ch_probe_result res;
    memset(&res, 0, sizeof res);
    int rc = run(&c, &a, &res, opts);
    free_result(&res);
    ctx_free(&c);
    int crc = ch_archive_close_read(c.ar);
    rc = rc ? rc : crc;
    tm.records = res.n_train + res.n_val + res.n_test;
    tm.io_seconds = c.io_seconds;
    if (!rc) rc = ch_timing_add(&tm, "heads", (int64_t)c.L * c.H);
    if (!rc) rc = ch_timing_add(&tm, "train_rows", res.n_train);
    if (!rc) rc = ch_timing_add(&tm, "val_rows", res.n_val);
    if (!rc) rc = ch_timing_add(&tm, "test_rows", res.n_test);
    if (!rc) rc = ch_timing_add(&tm, "lambdas", a.ngrid);
    return ch_timing_finish(&tm, a.timing, rc, comm);
}
