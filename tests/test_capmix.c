/* test_capmix.c - a row's capability mix through the capability-head map, hand-computed on a
 * two-head probe file written here, and the two score formulas of METHOD.md section 5. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capmix.h"
#include "err.h"

static char path[256];

static void put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(s);
}

/* L=1, H=2, D=1, k=1. head 0: W = 0, b = log(p0) -> softmax = p0. head 1: W[c] = c, b = 0,
 * mean 1, std 2 -> logits c * z. Map: math, commonsense, professional -> head 0; reading,
 * science -> head 1. */
static const double p0[5] = {0.1, 0.2, 0.3, 0.2, 0.2};

static void write_probe_file(int top_k_override_bad) {
    snprintf(path, sizeof path, "/tmp/ch_capmix_%d.h5", (int)getpid());
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float w[1][2][5][1] = {{{{0}, {0}, {0}, {0}, {0}}, {{0}, {1}, {2}, {3}, {4}}}};
    float b[1][2][5] = {{{0}, {0}}};
    for (int c = 0; c < 5; c++) b[0][0][c] = (float)log(p0[c]);
    float mean[1][2][1] = {{{0}, {1}}}, std[1][2][1] = {{{1}, {2}}};
    int top[5][1] = {{0}, {1}, {0}, {1}, {top_k_override_bad ? 7 : 0}};
    hsize_t wd[4] = {1, 2, 5, 1}, bd[3] = {1, 2, 5}, md[3] = {1, 2, 1}, td[2] = {5, 1};
    put(f, "weights", H5T_NATIVE_FLOAT, 4, wd, w);
    put(f, "bias", H5T_NATIVE_FLOAT, 3, bd, b);
    put(f, "mean", H5T_NATIVE_FLOAT, 3, md, mean);
    put(f, "std", H5T_NATIVE_FLOAT, 3, md, std);
    put(f, "top_heads", H5T_NATIVE_INT, 2, td, top);
    H5Fclose(f);
}

START_TEST(test_mix_is_each_capability_judged_by_its_heads) {
    write_probe_file(0);
    ch_capmix cm;
    ck_assert_int_eq(ch_capmix_load(path, &cm), 0);
    ck_assert_int_eq(cm.n_mapped, 2);
    /* head 1 input x = 1 + 2 ln 2 -> z = ln 2 -> softmax ∝ 2^c */
    float acts[2] = {123.0f, (float)(1 + 2 * log(2.0))};
    double p[5];
    ck_assert_int_eq(ch_capmix_apply(&cm, acts, 1, p), 0);
    double p1[5], q[5], tot = 0;
    for (int c = 0; c < 5; c++) p1[c] = pow(2, c) / 31.0;
    q[0] = p0[0], q[1] = p1[1], q[2] = p0[2], q[3] = p1[3], q[4] = p0[4];
    for (int c = 0; c < 5; c++) tot += q[c];
    double sum = 0;
    for (int c = 0; c < 5; c++) {
        ck_assert_double_eq_tol(p[c], q[c] / tot, 1e-6);
        sum += p[c];
    }
    ck_assert_double_eq_tol(sum, 1.0, 1e-12);

    double wt[5] = {0.5, 0, 0, 0.5, 0};
    ck_assert_double_eq_tol(ch_capmix_score_dot(wt, p), 0.5 * p[0] + 0.5 * p[3], 1e-15);
    double cosr = (0.5 * p[0] + 0.5 * p[3]) /
                  (sqrt(0.5) * sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2] + p[3] * p[3] + p[4] * p[4]));
    ck_assert_double_eq_tol(ch_capmix_score_cosine(wt, p), cosr, 1e-12);

    acts[1] = NAN;
    ck_assert_int_eq(ch_capmix_apply(&cm, acts, 1, p), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "layer 0 head 1"));
    ch_capmix_free(&cm);
    unlink(path);
}
END_TEST

START_TEST(test_bad_probe_files_refused) {
    write_probe_file(1); /* a mapped head index outside the 2 heads */
    ch_capmix cm;
    ck_assert_int_eq(ch_capmix_load(path, &cm), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "top_heads"));
    unlink(path);
    ck_assert_int_eq(ch_capmix_load("/nonexistent/p.h5", &cm), CH_EIO);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "/nonexistent/p.h5"));
}
END_TEST

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the refusals are the expected errors here */
    Suite *s = suite_create("capmix");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mix_is_each_capability_judged_by_its_heads);
    tcase_add_test(tc, test_bad_probe_files_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
