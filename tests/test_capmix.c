/* test_capmix.c - a row's capability mix through the capability-head map, hand-computed on a
 * two-head probe file written here, and the two score formulas of METHOD.md section 5; then a
 * three-layer map (tests/capmix_fixture.h: a class absent from the probing set, --heads own and
 * union, the probe identity). The same case through the archive reader, decompose and select:
 * tests/test_capmix_stage.c (an MPI program; this suite also runs under valgrind). */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capmix.h"
#include "capmix_fixture.h"
#include "err.h"
#include "h5seal.h"

static char path[256];

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
    ck_assert_int_eq(ch_h5_seal(path), 0); /* as the probe stage does: readers check it */
}

START_TEST(test_mix_is_each_capability_judged_by_its_heads) {
    write_probe_file(0);
    ch_capmix cm;
    ck_assert_int_eq(ch_capmix_load(path, &cm), 0);
    ck_assert_int_eq(cm.n_mapped, 2);
    ck_assert_int_eq(cm.render.recorded, 0); /* no render rule written: loaded as none */
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

/* The fixture's rows through ch_capmix_apply: own and union by hand, the absent class masked
 * whether class_train says so or the zero parameters do, and what the identity depends on. */
START_TEST(test_three_layer_map_own_union_absent_class) {
    char p[256];
    for (int with_counts = 1; with_counts >= 0; with_counts--) {
        snprintf(p, sizeof p, "/tmp/ch_capmix_%d_%d.h5", (int)getpid(), with_counts);
        write_stage_probes(p, with_counts, caps5, 0);
        ch_capmix cm;
        ck_assert_msg(ch_capmix_load(p, &cm) == 0, "%s", ch_err_msg());
        ck_assert_int_eq(cm.n_mapped, 3);
        /* the render rule comes with the probes (decompose and select read the file once) */
        ck_assert(cm.render.recorded && !strcmp(cm.render.template_name, "plain") &&
                  !strcmp(cm.render.span, "prompt") && !strcmp(cm.render.cue, "Answer:"));
        ck_assert_int_eq(cm.n_used, 2); /* layers 0 and 2 */
        ck_assert_int_eq(cm.used[0], 0);
        ck_assert_int_eq(cm.used[1], 2);
        for (int c = 0; c < 5; c++) ck_assert_int_eq(cm.present[c], c < 4);
        ck_assert_str_eq(cm.source_sha256, "probing-set-hash");
        ck_assert_str_eq(cm.capability_names, caps5);
        ck_assert_int_eq(cm.heads, CH_HEADS_OWN);
        const double *own[3] = {P1, P2, P3}, *uni[3] = {U1, U2, U3}, den[3] = {149, 138, 863}, uden[3] = {360, 360, 2040};
        float row[SL * SH * SD];
        double q[5];
        for (int r = 0; r < 3; r++) {
            stage_row(r, row);
            cm.heads = CH_HEADS_OWN;
            ck_assert_int_eq(ch_capmix_apply(&cm, row, 1, q), 0);
            check_vec(q, own[r], den[r], 1e-6);
            cm.heads = CH_HEADS_UNION;
            ck_assert_int_eq(ch_capmix_apply(&cm, row, 1, q), 0);
            check_vec(q, uni[r], uden[r], 1e-6);
        }
        stage_row(3, row); /* NaN at head C */
        ck_assert_int_eq(ch_capmix_apply(&cm, row, 1, q), CH_EFORMAT);
        ck_assert_ptr_nonnull(strstr(ch_err_msg(), "layer 2 head 1"));
        ch_capmix_free(&cm);
    }
    /* the identity is the same whether the present classes came from class_train or not, and
     * changes with a mapped head's parameters */
    ch_capmix a, b, c;
    ck_assert_int_eq(ch_capmix_load(p, &b), 0); /* the file without class_train */
    snprintf(p, sizeof p, "/tmp/ch_capmix_%d_1.h5", (int)getpid());
    ck_assert_int_eq(ch_capmix_load(p, &a), 0);
    write_stage_probes(p, 1, caps5, 0.5f);
    ck_assert_int_eq(ch_capmix_load(p, &c), 0);
    ck_assert_str_eq(a.digest, b.digest);
    ck_assert_str_ne(a.digest, c.digest);
    ck_assert_uint_eq(strlen(a.digest), 64);
    ch_capmix_free(&a), ch_capmix_free(&b), ch_capmix_free(&c);
    unlink(p);
    snprintf(p, sizeof p, "/tmp/ch_capmix_%d_0.h5", (int)getpid());
    unlink(p);

    int h = -1;
    ck_assert_int_eq(ch_capmix_heads_parse("union", &h), 0);
    ck_assert_int_eq(h, CH_HEADS_UNION);
    ck_assert_str_eq(ch_capmix_heads_name(h), "union");
    ck_assert_int_eq(ch_capmix_heads_parse("all", &h), CH_EARG);
    ck_assert(ch_capability_names_same(caps5, "[\"math\",\"reading\",\"commonsense\",\"science\",\"professional\"]"));
    ck_assert(!ch_capability_names_same(caps5, "[\"math\",\"reading\",\"commonsense\",\"science\"]"));
    ck_assert(!ch_capability_names_same(caps5, NULL));
}
END_TEST

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the refusals are the expected errors here */
    Suite *s = suite_create("capmix");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mix_is_each_capability_judged_by_its_heads);
    tcase_add_test(tc, test_bad_probe_files_refused);
    tcase_add_test(tc, test_three_layer_map_own_union_absent_class);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
