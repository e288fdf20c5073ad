/* test_probe.c - the archive reader against h5py/numpy, and the probe math's pieces.
 * Runs under mpirun with 1..4 ranks: each rank reads its own row block of an archive made by
 * tests/tools/make_archive.py and compares with numpy's float16 -> float32 dump of the same rows. */
#include <check.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "err.h"
#include "ops_math.h"
#include "probe.h"
#include "probe_format.h"
#include "probe_kernel.h"

static char arch[512], dump[512], labdump[512];
static int rank_, size_;

static void make_fixture(void) {
    /* one fixture per rank count: ctest may run the np1..np4 variants at the same time */
    snprintf(arch, sizeof arch, "%s/test_probe_fixture_np%d.h5", getenv("CH_BIN") ? getenv("CH_BIN") : ".",
             size_);
    snprintf(dump, sizeof dump, "%s.f32", arch);
    snprintf(labdump, sizeof labdump, "%s.lab", arch);
    if (rank_ == 0) {
        char cmd[2048];
        const char *src = getenv("CH_SRC") ? getenv("CH_SRC") : "..";
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 %s/tests/tools/make_archive.py %s --n 203 --layers 3 --heads 2 "
                 "--dim 5 --rows-per-chunk 16 --signal 1:1:2 --unlabeled 3 --incomplete 2 && "
                 "/usr/bin/python3 -c \"import h5py,numpy as np,sys; f=h5py.File(sys.argv[1]); "
                 "f['activations'][()].astype(np.float32).tofile(sys.argv[2]); "
                 "f['labels'][()].astype(np.int32).tofile(sys.argv[3])\" %s %s %s",
                 src, arch, arch, dump, labdump);
        if (system(cmd) != 0) fprintf(stderr, "fixture command failed: %s\n", cmd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

START_TEST(test_reader_rank_block_matches_numpy_f16_widening) {
    ch_archive_reader *r = NULL;
    ck_assert_int_eq(ch_archive_open_read(arch, MPI_COMM_WORLD, &r), 0);
    ch_archive_info info;
    ck_assert_int_eq(ch_archive_get_info(r, &info), 0);
    ck_assert_int_eq(info.n_rows, 203);
    ck_assert_int_eq(info.n_layers, 3);
    ck_assert_int_eq(info.n_heads, 2);
    ck_assert_int_eq(info.head_dim, 5);
    ck_assert_int_eq(info.n_done, 201);
    ck_assert_int_eq(info.complete, 0);
    ck_assert_str_eq(info.pool, "last");
    int64_t r0 = 203 * rank_ / size_, n = 203 * (rank_ + 1) / size_ - r0;
    const size_t row = 3 * 2 * 5;
    float *got = calloc((size_t)n * row + 1, sizeof(float)), *want = calloc(203 * row, sizeof(float));
    FILE *f = fopen(dump, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(want, sizeof(float), 203 * row, f), 203 * row);
    fclose(f);
    ck_assert_int_eq(ch_archive_read_acts(r, r0, n, got), 0);
    ck_assert_int_eq(memcmp(got, want + r0 * row, (size_t)n * row * sizeof(float)), 0);
    /* one layer only: [n, 1, H, D] */
    ck_assert_int_eq(ch_archive_read_acts_layers(r, r0, n, 2, 1, got), 0);
    for (int64_t i = 0; i < n; i++)
        ck_assert_int_eq(memcmp(got + i * 10, want + (r0 + i) * row + 20, 10 * sizeof(float)), 0);
    int32_t lab[203], wl[203];
    f = fopen(labdump, "rb");
    ck_assert_int_eq(fread(wl, sizeof(int32_t), 203, f), 203);
    fclose(f);
    ck_assert_int_eq(ch_archive_read_labels(r, r0, n, lab), 0);
    ck_assert_int_eq(memcmp(lab, wl + r0, (size_t)n * sizeof(int32_t)), 0);
    char *ids[203];
    ck_assert_int_eq(ch_archive_read_ids(r, r0, n, ids), 0);
    char expect[32];
    snprintf(expect, sizeof expect, "rec-%06lld", (long long)r0);
    ck_assert_str_eq(ids[0], expect);
    ch_archive_free_strings(ids, n);
    ck_assert_int_eq(ch_archive_read_tasks(r, 200, 3, ids), 0);
    ck_assert_str_eq(ids[0], ""); /* unlabeled rows have no task */
    ch_archive_free_strings(ids, 3);
    /* out-of-range reads are refused, naming the file */
    ck_assert_int_eq(ch_archive_read_labels(r, 200, 10, lab), CH_EARG);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), arch));
    ch_archive_info_free(&info);
    ck_assert_int_eq(ch_archive_close_read(r), 0);
    free(got);
    free(want);
}
END_TEST

START_TEST(test_reader_refuses_non_archive_naming_file) {
    ch_archive_reader *r = NULL;
    char bogus[600];
    snprintf(bogus, sizeof bogus, "%s.notthere", arch);
    ck_assert_int_eq(ch_archive_open_read(bogus, MPI_COMM_WORLD, &r), CH_EIO);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), bogus));
    ck_assert_ptr_null(r);
    /* a text file is not HDF5 either */
    if (rank_ == 0) {
        FILE *f = fopen(bogus, "w");
        fputs("not hdf5\n", f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ck_assert_int_ne(ch_archive_open_read(bogus, MPI_COMM_WORLD, &r), 0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_ == 0) remove(bogus);
}
END_TEST

START_TEST(test_fnv1a64_published_vectors) {
    /* Offset basis and the reference vectors of the FNV specification. */
    ck_assert_uint_eq(ch_probe_fnv1a64(""), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(ch_probe_fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(ch_probe_fnv1a64("foobar"), 0x85944171f73967e8ULL);
    ck_assert_int_eq(ch_probe_is_validation("a"), 0xaf63dc4c8601ec8cULL % 5 == 0);
}
END_TEST

START_TEST(test_auc_counts_ties_as_half) {
    ch_auc_pair scr[12];
    /* positives 0.9, 0.5, 0.3; negatives 0.5, 0.2, 0.1: pairs won 3 + (2 + 0.5 tie) + 2 = 7.5 of 9 */
    float s[6] = {0.9f, 0.5f, 0.3f, 0.5f, 0.2f, 0.1f};
    uint8_t pos[6] = {1, 1, 1, 0, 0, 0};
    ck_assert_double_eq_tol(ch_probe_auc(s, 1, pos, 6, scr), 7.5 / 9.0, 1e-12);
    uint8_t none[6] = {0};
    ck_assert(isnan(ch_probe_auc(s, 1, none, 6, scr)));
}
END_TEST

START_TEST(test_auc_matches_pair_count_with_signs_ties_and_stride) {
    /* 600 scores of both signs, many tied (quantized), read with stride 3: the rank formula must
     * equal the definition, the share of (positive, negative) pairs ordered right, ties 1/2 */
    enum { N = 600 };
    static float s[3 * N];
    static uint8_t pos[N];
    static ch_auc_pair scr[2 * N];
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        s[3 * i] = (float)((int)(r >> 24) - 128) / 16.0f; /* -8 .. 7.94 in steps of 1/16 */
        pos[i] = ((r >> 8) & 7) < 3 + (s[3 * i] > 0);
    }
    double won = 0, pairs = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (pos[i] && !pos[j]) {
                pairs += 1;
                won += s[3 * i] > s[3 * j] ? 1 : s[3 * i] == s[3 * j] ? 0.5 : 0;
            }
    ck_assert_double_eq_tol(ch_probe_auc(s, 3, pos, N, scr), won / pairs, 1e-12);
}
END_TEST

START_TEST(test_fit_separable_two_class_single_rank_data) {
    /* One head, D=1, x = +-1 by class, classes 0 and 2 only: the fit must put all mass on the right
     * class and leave absent classes at probability 0. Runs on every rank with MPI_COMM_SELF. */
    float x[8] = {-1, -1, -1, -1, 1, 1, 1, 1};
    int32_t y[8] = {0, 0, 0, 0, 2, 2, 2, 2};
    ch_probe_data d = {1, 1, 8, 8, x, y, {1, 0, 1, 0, 0}};
    ch_probe_opts o;
    ch_probe_opts_default(&o);
    float W[5], b[5], p[8 * 5];
    int evals = 0, unconv = -1;
    int64_t right = -1;
    ck_assert_int_eq(ch_probe_fit(&o, &d, MPI_COMM_SELF, W, b, &right, &evals, &unconv), 0);
    ck_assert_int_eq(unconv, 0);
    ck_assert_int_eq(right, 8); /* separable: every training row predicted right */
    ch_probe_predict(1, 1, 8, x, W, b, d.present, p);
    for (int i = 0; i < 8; i++) {
        ck_assert_float_gt(p[i * 5 + y[i]], 0.9f);
        ck_assert_float_eq(p[i * 5 + 1], 0.0f);
    }
    /* optimality: gradient of (1/n) sum CE + lambda/2 W^2 is ~0, so W2 - W0 = (1/(lambda n)) *
     * sum (y - p) x-weighted; check the symmetric solution W0 = -W2, b0 = b2 */
    ck_assert_float_eq_tol(W[0], -W[2], 1e-4);
    ck_assert_float_eq_tol(b[0], b[2], 1e-4);
}
END_TEST

/* Independent double-precision loss and gradient of one head (the objective's unscaled sums). */
static void ref_sums(int D, int n, const float *x, const int32_t *y, const int present[5],
                     const double *w, double *out) {
    memset(out, 0, sizeof(double) * (5 * D + 7));
    for (int i = 0; i < n; i++) {
        double z[5], m = -INFINITY, s = 0;
        for (int c = 0; c < 5; c++) {
            z[c] = w[5 * D + c];
            for (int j = 0; j < D; j++) z[c] += w[c * D + j] * x[i * D + j];
            if (present[c] && z[c] > m) m = z[c];
        }
        for (int c = 0; c < 5; c++) s += present[c] ? exp(z[c] - m) : 0;
        int best = -1;
        for (int c = 0; c < 5; c++) {
            if (!present[c]) continue;
            double g = exp(z[c] - m) / s - (c == y[i]);
            for (int j = 0; j < D; j++) out[c * D + j] += g * x[i * D + j];
            out[5 * D + c] += g;
            if (best < 0 || z[c] > z[best]) best = c;
        }
        out[5 * D + 5] += m + log(s) - z[y[i]];
        out[5 * D + 6] += best == y[i];
    }
}

static float urand(unsigned *st) {
    *st = *st * 1103515245u + 12345u;
    return (float)((*st >> 8) & 0xffffff) / 16777216.0f;
}

START_TEST(test_head_sums_match_double_reference) {
    /* head_dim 128 (the register-blocked paths) and 19 (every tail), 77 rows (a partial block and
     * a partial tile), class 3 absent; at random weights and at zero (the first evaluation's
     * shortcut), against ref_sums; both builds of the kernel (baseline and, where this CPU runs
     * it, x86-64-v3), whichever the entry point picks */
    typedef int (*sums_fn)(const ch_probe_data *, const float *, const double *, double *);
    sums_fn fns[2] = {ch_probe_head_sums_base, NULL};
    const char *names[2] = {"baseline", "x86-64-v3"};
#ifdef CH_PROBE_HAVE_V3
    if (__builtin_cpu_supports("x86-64-v3")) fns[1] = ch_probe_head_sums_v3;
#endif
    if (!fns[1]) printf("test_head_sums_match_double_reference: no x86-64-v3 copy here, baseline only\n");
    const int dims[2] = {128, 19}, n = 77, present[5] = {1, 1, 1, 0, 1};
    unsigned st = 7;
    for (int t = 0; t < 4; t++) {
        const sums_fn sums = fns[t / 2];
        if (!sums) continue;
        const int D = dims[t % 2], P = 5 * D + 5;
        float *x = malloc(sizeof(float) * n * D);
        int32_t *y = malloc(sizeof(int32_t) * n);
        double *w = calloc(P, sizeof(double)), *got = malloc(sizeof(double) * (P + 2)),
               *want = malloc(sizeof(double) * (P + 2));
        for (int i = 0; i < n * D; i++) x[i] = 4 * urand(&st) - 2;
        for (int i = 0; i < n; i++) y[i] = (int32_t)(i * 7 % 4), y[i] += y[i] == 3;
        ch_probe_data d = {1, D, n, n, x, y, {1, 1, 1, 0, 1}};
        for (int zero = 1; zero >= 0; zero--) {
            for (int i = 0; i < P; i++) w[i] = zero ? 0 : (urand(&st) - 0.5) * 0.3;
            for (int j = 0; j < D; j++) w[3 * D + j] = 0; /* an absent class keeps W = 0, b = 0 */
            w[5 * D + 3] = 0;
            ck_assert_int_eq(sums(&d, x, w, got), 0);
            ref_sums(D, n, x, y, present, w, want);
            for (int i = 0; i < P + 1; i++)
                ck_assert_msg(fabs(got[i] - want[i]) <= 2e-5 * (1 + fabs(want[i])),
                              "%s D=%d zero=%d: sum %d is %.9g, reference %.9g", names[t / 2], D, zero, i,
                              got[i], want[i]);
            if (sums == (fns[1] ? fns[1] : fns[0])) { /* the copy the entry point picks */
                double *entry = malloc(sizeof(double) * (P + 2));
                ck_assert_int_eq(ch_probe_head_sums(&d, x, w, entry), 0);
                ck_assert(!memcmp(entry, got, sizeof(double) * (P + 2)));
                free(entry);
            }
            ck_assert_double_eq(got[P + 1], want[P + 1]);
        }
        free(x), free(y), free(w), free(got), free(want);
    }
}
END_TEST

START_TEST(test_binary16_input_fits_and_predicts_like_f32) {
    /* The stage hands the fit the archive's binary16 rows with mean and std; that must be the
     * same problem as the f32 rows standardized beforehand: the same bits out of fit and predict. */
    enum { NH = 3, N = 77, DD = 19 };
    unsigned st = 11;
    uint16_t *x16 = malloc(sizeof(uint16_t) * NH * N * DD);
    float *x = malloc(sizeof(float) * NH * N * DD), mean[NH * DD], sd[NH * DD];
    int32_t y[N];
    for (int i = 0; i < N; i++) y[i] = (int32_t)(i % 5);
    for (int h = 0; h < NH; h++)
        for (int j = 0; j < DD; j++) {
            mean[h * DD + j] = 3 * urand(&st) - 1, sd[h * DD + j] = 0.5f + urand(&st);
            for (int i = 0; i < N; i++) {
                float v = mean[h * DD + j] + sd[h * DD + j] * (2 * urand(&st) - 1) +
                          0.2f * (float)y[i] * (j == h); /* a little signal in feature h */
                x16[((size_t)h * N + i) * DD + j] = ch_f32_to_f16(v);
            }
        }
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < DD; j++) {
                size_t e = ((size_t)h * N + i) * DD + j;
                x[e] = (ch_f16_to_f32(x16[e]) - mean[h * DD + j]) / sd[h * DD + j];
            }
    float got[N * DD];
    ch_probe_standardize16(N, DD, x16 + N * DD, mean + DD, sd + DD, got);
    ck_assert_mem_eq(got, x + N * DD, sizeof got);
    ch_probe_opts o;
    ch_probe_opts_default(&o);
    o.cache_mib = 0.01; /* batches of one head: the buffer is reused */
    ch_probe_data a = {NH, DD, N, N, x, y, {1, 1, 1, 1, 1}}, b = a;
    b.x = NULL, b.x16 = x16, b.mean = mean, b.std = sd;
    float Wa[NH * 5 * DD], ba[NH * 5], Wb[NH * 5 * DD], bb[NH * 5], pa[NH * N * 5], pb[NH * N * 5];
    int64_t ra[NH], rb[NH];
    ck_assert_int_eq(ch_probe_fit(&o, &a, MPI_COMM_SELF, Wa, ba, ra, NULL, NULL), 0);
    ck_assert_int_eq(ch_probe_fit(&o, &b, MPI_COMM_SELF, Wb, bb, rb, NULL, NULL), 0);
    ck_assert_mem_eq(Wa, Wb, sizeof Wa);
    ck_assert_mem_eq(ba, bb, sizeof ba);
    ck_assert_mem_eq(ra, rb, sizeof ra);
    ch_probe_predict(NH, DD, N, x, Wa, ba, a.present, pa);
    ck_assert_int_eq(ch_probe_predict16(NH, DD, N, x16, mean, sd, Wa, ba, a.present, pb), 0);
    ck_assert_mem_eq(pa, pb, sizeof pa);
    free(x16), free(x);
}
END_TEST

START_TEST(test_probe_file_roundtrip_and_summary) {
    /* write a tiny probe file (1 layer x 2 heads, D=1, k=1) and read it back through the summary
     * that `capheads inspect` prints; only rank 0 writes (the stage writes serially too) */
    if (rank_ != 0) return;
    float w[10] = {0}, b[10] = {0}, m[2] = {0}, sd[2] = {1, 1}, va[2] = {0.25f, 0.75f}, ta[2] = {0.5f, 0.5f};
    float te[2] = {0.3f, 0.7f}, lam[2] = {1e-3f, 1e-2f}, vl[4] = {1, 2, 3, 4};
    float oa[10] = {0}, auc[10] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f};
    int32_t top[5] = {1, 1, 1, 1, 1};
    float ts[5] = {0.9f, 0.9f, 0.9f, 0.9f, 0.9f};
    ch_probe_result r = {.L = 1, .H = 2, .D = 1, .k = 1, .weights = w, .bias = b, .mean = m, .std = sd,
                         .val_acc = va, .train_acc = ta, .test_acc = te, .ovr_acc = oa, .ovr_auc = auc,
                         .test_ovr_acc = oa, .test_ovr_auc = auc, .lambda = lam, .val_loss = vl,
                         .top_heads = top, .top_scores = ts, .n_lambda = 2, .lambda_grid = {1e-3, 1e-2},
                         .n_topk = 2, .topk_grid = {1, 2}, .ens_val_by_k = {0.8, 0.7},
                         .best_head_val_acc = 0.75, .best_head_test_acc = 0.7, .ensemble_val_acc = 0.8,
                         .ensemble_test_acc = 0.65, .best_head = 1, .n_train = 60, .n_val = 20, .n_test = 21,
                         .base = {.fitted = 1, .note = "corpus.jsonl", .lambda = 0.1, .val_acc = 0.5,
                                  .test_acc = 0.675, .warn = 1},
                         .input_path = "in.h5", .input_created = "2026-01-01T00:00:00Z", .input_sha256 = "abc",
                         .options = "{}"};
    char path[600], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s.probes.h5", arch);
    ck_assert_int_eq(ch_probe_write(path, &r), 0);
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(ch_probe_print_summary(path, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "1 layers x 2 heads, 60 train / 20 validation / 21 test rows"));
    ck_assert_ptr_nonnull(strstr(text, "test accuracy (held out, n=21): best head L0.H1 70.00%, top-1 ensemble 65.00%"));
    ck_assert_ptr_nonnull(strstr(text, "(the heads, their lambdas, k and the best head were chosen on the 20 validation rows)"));
    ck_assert_ptr_null(strstr(text, "75.00%")); /* no validation accuracy shown */
    ck_assert_ptr_null(strstr(text, "80.00%"));
    ck_assert_ptr_nonnull(strstr(text, "format-only baseline: test accuracy (held out, n=21) 67.50%: WARNING"));
    ck_assert_ptr_nonnull(strstr(text, "math         L0.H1"));
    free(text);
    /* a skipped baseline says why */
    r.base = (ch_probe_baseline){.fitted = 0, .note = "cannot read the corpus x.jsonl"};
    ck_assert_int_eq(ch_probe_write(path, &r), 0);
    f = open_memstream(&text, &len);
    ck_assert_int_eq(ch_probe_print_summary(path, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "format-only baseline: skipped (cannot read the corpus x.jsonl)"));
    free(text);
    /* an activation archive is not a probe file */
    f = open_memstream(&text, &len);
    ck_assert_int_eq(ch_probe_print_summary(arch, f), CH_EFORMAT);
    fclose(f);
    free(text);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "not a probe file"));
    remove(path);
}
END_TEST

START_TEST(test_split_is_the_id_hash_mod_5) {
    int n[3] = {0, 0, 0};
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "rec-%06d", i);
        const uint64_t b = ch_probe_fnv1a64(id) % 5;
        const int s = ch_probe_split(id);
        ck_assert_int_eq(s, b == 0 ? CH_SPLIT_VAL : b == 1 ? CH_SPLIT_TEST : CH_SPLIT_TRAIN);
        ck_assert_int_eq(ch_probe_is_validation(id), b == 0);
        n[s]++;
    }
    /* about 60/20/20 (binomial sd of a 20% share over 20000 ids: 0.28 points) */
    ck_assert(fabs(n[CH_SPLIT_VAL] / 20000.0 - 0.2) < 0.015);
    ck_assert(fabs(n[CH_SPLIT_TEST] / 20000.0 - 0.2) < 0.015);
}
END_TEST

START_TEST(test_lambda_grid_parse_sorts_and_refuses) {
    double g[CH_PROBE_MAX_LAMBDAS];
    int n = 0;
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", "1,1e-4,0.01", g, &n), 0);
    ck_assert_int_eq(n, 3);
    ck_assert(g[0] == 1e-4 && g[1] == 0.01 && g[2] == 1);
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", CH_PROBE_LAMBDA_GRID, g, &n), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", "1e-3,,1", g, &n), CH_EARG);
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", "1e-3,-1", g, &n), CH_EARG);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "got '-1'"));
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", "0.1,1e-1", g, &n), CH_EARG);
    ck_assert_int_eq(ch_probe_parse_grid("lambda-grid", "abc", g, &n), CH_EARG);
}
END_TEST

START_TEST(test_topk_grid_capped_at_the_head_count) {
    int32_t g[CH_PROBE_MAX_TOPKS];
    ck_assert_int_eq(ch_probe_topk_grid(1024, g), 7);
    ck_assert_int_eq(g[0], 1);
    ck_assert_int_eq(g[6], 64);
    ck_assert_int_eq(ch_probe_topk_grid(12, g), 5);
    ck_assert(g[0] == 1 && g[1] == 2 && g[2] == 4 && g[3] == 8 && g[4] == 12);
    ck_assert_int_eq(ch_probe_topk_grid(1, g), 1);
}
END_TEST

/* Three heads over 4 validation and 4 test rows, probabilities set by hand: head 2 ranks first
 * on validation AUC for every class, head 0 has the best validation accuracy; k is chosen where
 * the validation ensemble is best (k = 1: only head 2), and the test figures come from the test
 * rows alone. */
START_TEST(test_metrics_choose_on_validation_report_test) {
    if (rank_ != 0) return;
    enum { NH = 3, N = 4 };
    const int32_t yv[N] = {0, 1, 2, 3}, yt[N] = {0, 1, 2, 3};
    float pv[NH][N][5], pt[NH][N][5];
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < N; i++)
            for (int c = 0; c < 5; c++) pv[h][i][c] = pt[h][i][c] = 0.1f;
    /* head 0: validation right on 3 of 4 rows by a small margin, wrong on row 3 */
    for (int i = 0; i < 3; i++) pv[0][i][yv[i]] = 0.2f;
    pv[0][3][0] = 0.3f, pv[0][3][1] = 0.25f, pv[0][3][2] = 0.25f; /* no class ranked perfectly */
    /* head 1: validation right on 2 */
    pv[1][0][0] = 0.2f, pv[1][1][1] = 0.2f, pv[1][2][4] = 0.3f, pv[1][3][4] = 0.3f;
    pv[1][2][0] = 0.25f, pv[1][3][1] = 0.25f;
    /* head 2: validation right on 2 but ranks every class perfectly (AUC 1) */
    for (int i = 0; i < N; i++) pv[2][i][yv[i]] = 0.15f;
    pv[2][2][4] = 0.9f, pv[2][3][4] = 0.9f;
    /* test: head 0 right on 1, head 2 right on all 4 */
    pt[0][0][0] = 0.3f, pt[0][1][4] = 0.3f, pt[0][2][4] = 0.3f, pt[0][3][4] = 0.3f;
    for (int i = 0; i < N; i++) pt[2][i][yt[i]] = 0.5f;
    float va[NH], ta[NH], tra[NH], oa[NH * 5], auc[NH * 5], toa[NH * 5], tauc[NH * 5], ts[5 * NH];
    int32_t top[5 * NH];
    ch_probe_result r = {.L = 1, .H = NH, .D = 1, .val_acc = va, .test_acc = ta, .train_acc = tra, .ovr_acc = oa,
                         .ovr_auc = auc, .test_ovr_acc = toa, .test_ovr_auc = tauc, .top_heads = top,
                         .top_scores = ts};
    const ch_probe_split_probs v = {N, &pv[0][0][0], yv}, t = {N, &pt[0][0][0], yt};
    ck_assert_int_eq(ch_probe_metrics(&v, &t, &r), 0);
    ck_assert_float_eq_tol(va[0], 0.75, 1e-6);
    ck_assert_float_eq_tol(va[2], 0.5, 1e-6);
    ck_assert_int_eq(r.best_head, 0);
    ck_assert_double_eq_tol(r.best_head_val_acc, 0.75, 1e-9);
    ck_assert_double_eq_tol(r.best_head_test_acc, 0.25, 1e-9); /* head 0 on the test rows */
    ck_assert_float_eq_tol(ta[2], 1.0, 1e-6);
    ck_assert_int_eq(r.n_topk, 3); /* 1, 2, then 3 = L*H for 4 and above */
    ck_assert_int_eq(r.topk_grid[2], 3);
    for (int c = 0; c < 4; c++) ck_assert_int_eq(top[c], 2); /* classes with validation rows */
    ck_assert_float_eq_tol(auc[2 * 5 + 0], 1.0, 1e-6);
    ck_assert_int_eq(r.k, 1);
    ck_assert_double_eq_tol(r.ensemble_val_acc, r.ens_val_by_k[0], 1e-12);
    ck_assert_double_eq_tol(r.ensemble_test_acc, 1.0, 1e-9); /* head 2 alone on the test rows */
    /* --top-k fixes k */
    r.k_fixed = 3;
    ck_assert_int_eq(ch_probe_metrics(&v, &t, &r), 0);
    ck_assert_int_eq(r.k, 3);
}
END_TEST

START_TEST(test_text_features_counted_by_hand) {
    const char *t = "What is 12+30?\nA. 42\n(B) 41\nC) x\nAnswer:";
    float f[CH_PROBE_NFEAT];
    ch_probe_text_features(t, strlen(t), 17, f);
    const char *const *names = ch_probe_format_features;
    ck_assert_str_eq(names[0], "n_tokens");
    ck_assert_float_eq(f[0], 17);
    ck_assert_float_eq(f[1], (float)strlen(t)); /* chars: ASCII, newlines included */
    ck_assert_float_eq(f[2], 10);               /* words: What is 12+30? A. 42 (B) 41 C) x Answer: */
    ck_assert_float_eq(f[3], 5);                /* lines */
    ck_assert_float_eq(f[4], 3);                /* option lines: A. / (B) / C) */
    ck_assert_float_eq_tol(f[5], 8.0 / strlen(t), 1e-6);  /* digits 1,2,3,0,4,2,4,1 */
    ck_assert_float_eq_tol(f[6], 5.0 / strlen(t), 1e-6);  /* W A B C A */
    ck_assert_float_eq_tol(f[7], 7.0 / strlen(t), 1e-6);  /* + ? . ( ) ) : */
    ck_assert_float_eq(f[10], 1);               /* question lines */
    ck_assert_float_eq(f[11], 14);              /* longest line: "What is 12+30?" */
    /* UTF-8: characters, not bytes; an option letter must be followed by a blank */
    const char *u = "\xc3\xa9t\xc3\xa9\nA.b";
    ch_probe_text_features(u, strlen(u), 1, f);
    ck_assert_float_eq(f[1], 7);
    ck_assert_float_eq(f[4], 0);
}
END_TEST

START_TEST(test_corpus_features_by_id_messages_joined) {
    /* rows in another order than the corpus; a messages record is its contents joined by a blank
     * line; a tokens record has no text; a row not kept is not looked up */
    if (rank_ != 0) return;
    char path[600];
    snprintf(path, sizeof path, "%s.corpus.jsonl", arch);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"id\": \"t1\", \"text\": \"Is it? A. yes\"}\n"
          "{\"id\": \"m1\", \"messages\": [{\"role\": \"user\", \"content\": \"Q1\\nA) x\"}, "
          "{\"role\": \"assistant\", \"content\": \"ok\"}]}\n"
          "{\"id\": \"k1\", \"tokens\": [1, 2, 3]}\n", f);
    fclose(f);
    char *ids[4] = {"k1", "m1", "t1", "zz"};
    const uint8_t keep[4] = {1, 1, 1, 0};
    const int32_t ntok[4] = {3, 9, 7, 1};
    float got[4 * CH_PROBE_NFEAT], want[CH_PROBE_NFEAT];
    ck_assert_int_eq(ch_probe_corpus_features(path, ids, keep, 4, ntok, got), 0);
    ch_probe_text_features("", 0, 3, want);
    ck_assert_mem_eq(got, want, sizeof want);
    const char *joined = "Q1\nA) x\n\nok";
    ch_probe_text_features(joined, strlen(joined), 9, want);
    ck_assert_mem_eq(got + CH_PROBE_NFEAT, want, sizeof want);
    ck_assert_float_eq(got[CH_PROBE_NFEAT + 3], 4); /* lines */
    ck_assert_float_eq(got[CH_PROBE_NFEAT + 4], 1); /* option lines */
    ch_probe_text_features("Is it? A. yes", 13, 7, want);
    ck_assert_mem_eq(got + 2 * CH_PROBE_NFEAT, want, sizeof want);
    /* a kept row whose id the corpus lacks */
    const uint8_t keep_all[4] = {1, 1, 1, 1};
    ck_assert_int_eq(ch_probe_corpus_features(path, ids, keep_all, 4, ntok, got), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "no record with id 'zz'"));
    remove(path);
}
END_TEST

/* One lockstep fit of a grid (src maps every problem to the same head, lambda per problem) gives
 * bit for bit the fits of one call per lambda: the stage's grid relies on it. */
START_TEST(test_grid_in_one_fit_equals_one_fit_per_lambda) {
    enum { N = 96, DD = 5, G = 3 };
    float x[N * DD];
    int32_t y[N];
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = i % 4;
        for (int j = 0; j < DD; j++) {
            r = r * 1664525u + 1013904223u;
            x[i * DD + j] = (float)((r >> 8) / 16777216.0 - 0.5) + (j == y[i] ? 0.4f : 0.0f);
        }
    }
    const double lam[G] = {1e-3, 1e-1, 1.0};
    const int src[G] = {0, 0, 0};
    ch_probe_opts o;
    ch_probe_opts_default(&o);
    float Wg[G * 5 * DD], bg[G * 5], W1[5 * DD], b1[5];
    int64_t rg[G], r1;
    ch_probe_data d = {G, DD, N, N, x, y, {1, 1, 1, 1, 0}};
    d.src = src, d.lambda = lam;
    ck_assert_int_eq(ch_probe_fit(&o, &d, MPI_COMM_SELF, Wg, bg, rg, NULL, NULL), 0);
    ch_probe_data one = {1, DD, N, N, x, y, {1, 1, 1, 1, 0}};
    for (int g = 0; g < G; g++) {
        o.lambda = lam[g];
        ck_assert_int_eq(ch_probe_fit(&o, &one, MPI_COMM_SELF, W1, b1, &r1, NULL, NULL), 0);
        ck_assert_mem_eq(Wg + g * 5 * DD, W1, sizeof W1);
        ck_assert_mem_eq(bg + g * 5, b1, sizeof b1);
        ck_assert_int_eq(rg[g], r1);
    }
    /* and the lambdas matter: the strongest shrinks the weights the most */
    double n0 = 0, n2 = 0;
    for (int i = 0; i < 5 * DD; i++) n0 += fabs(Wg[i]), n2 += fabs(Wg[2 * 5 * DD + i]);
    ck_assert(n2 < 0.5 * n0);
}
END_TEST

START_TEST(test_baseline_warning_margin) {
    ck_assert(ch_probe_baseline_warns(0.60, 0.64));  /* within 5 points */
    ck_assert(!ch_probe_baseline_warns(0.58, 0.64));
    ck_assert(ch_probe_baseline_warns(0.91, 0.999)); /* 90% absolute */
    ck_assert(!ch_probe_baseline_warns(0.25, 0.95));
}
END_TEST

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    make_fixture();
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reader_rank_block_matches_numpy_f16_widening);
    tcase_add_test(tc, test_reader_refuses_non_archive_naming_file);
    tcase_add_test(tc, test_split_is_the_id_hash_mod_5);
    tcase_add_test(tc, test_lambda_grid_parse_sorts_and_refuses);
    tcase_add_test(tc, test_topk_grid_capped_at_the_head_count);
    tcase_add_test(tc, test_metrics_choose_on_validation_report_test);
    tcase_add_test(tc, test_text_features_counted_by_hand);
    tcase_add_test(tc, test_baseline_warning_margin);
    tcase_add_test(tc, test_grid_in_one_fit_equals_one_fit_per_lambda);
    tcase_add_test(tc, test_corpus_features_by_id_messages_joined);
    tcase_add_test(tc, test_fnv1a64_published_vectors);
    tcase_add_test(tc, test_auc_counts_ties_as_half);
    tcase_add_test(tc, test_auc_matches_pair_count_with_signs_ties_and_stride);
    tcase_add_test(tc, test_fit_separable_two_class_single_rank_data);
    tcase_add_test(tc, test_head_sums_match_double_reference);
    tcase_add_test(tc, test_binary16_input_fits_and_predicts_like_f32);
    tcase_add_test(tc, test_probe_file_roundtrip_and_summary);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* MPI processes must not fork */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
