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
    float oa[10] = {0}, auc[10] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f};
    int32_t top[5] = {1, 1, 1, 1, 1};
    float ts[5] = {0.9f, 0.9f, 0.9f, 0.9f, 0.9f};
    ch_probe_result r = {1, 2, 1, 1, w, b, m, sd, va, ta, oa, auc, top, ts, 0.75, 0.8, 1, 80, 20, 0, 0,
                         {0}, {0}, 3, 0, "in.h5", "2026-01-01T00:00:00Z", "abc", "{}"};
    char path[600], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s.probes.h5", arch);
    ck_assert_int_eq(ch_probe_write(path, &r), 0);
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(ch_probe_print_summary(path, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "1 layers x 2 heads, 80 train / 20 validation rows"));
    ck_assert_ptr_nonnull(strstr(text, "best head validation accuracy 75.00%, top-1 ensemble 80.00%"));
    ck_assert_ptr_nonnull(strstr(text, "math         L0.H1"));
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
