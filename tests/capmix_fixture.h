/* capmix_fixture.h - a three-layer probe file with numbers worked out by hand, shared by
 * test_capmix.c (ch_capmix_apply) and test_capmix_stage.c (archive reads, decompose, select). */
#ifndef CH_CAPMIX_FIXTURE_H
#define CH_CAPMIX_FIXTURE_H

#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>

#include "h5seal.h"
#include "h5util.h"
#include "render_rule.h"

static void put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(s);
}

/* L=1, H=2, D=1, k=1. head 0: W = 0, b = log(p0) -> softmax = p0. head 1: W[c] = c, b = 0,
 * mean 1, std 2 -> logits c * z. Map: math, commonsense, professional -> head 0; reading,

/* The hand-computed case of tests/test_capmix.c and tests/test_capmix_stage.c.
 *
 * L = 3 layers, H = 2 heads, D = 2. Mapped heads (flat l*H+h): A = 0 (layer 0 head 0), B = 1
 * (layer 0 head 1), C = 5 (layer 2 head 1); layer 1 holds none (never read: its activations are
 * NaN, as are those of head 4, the unmapped head of layer 2). k = 2, the map
 *     math {A,B}  reading {C,A}  commonsense {B,C}  science {C,B}  professional {A,C}.
 * professional had no training rows (class_train[4] = 0; the fit leaves W = b = 0 for it): it is
 * masked out of every softmax, so every P_h below is over the first four classes.
 *   A: W = 0, b = log a,  a = (1/2, 1/4, 1/8, 1/8)    -> P_A = a whatever the row
 *   B: W = 0, b = log b,  b = (1/10, 2/10, 3/10, 4/10) -> P_B = b
 *   C: W[c] = (c ln 2, 0), b = 0, mean (1, 0), std (2, 1): z0 = (x0 - 1)/2, P_C ∝ 2^(c z0):
 *      row 1 x0 = 3 (z0 = 1): g1 = (1,2,4,8)/15;  row 2 x0 = 1: g2 = (1,1,1,1)/4;
 *      row 3 x0 = 5 (z0 = 2): g3 = (1,4,16,64)/85  (the second dim has weight 0: x1 = 7 anywhere)
 * own: q_c = mean of P_h[c] over c's two heads, p = q / sum q:
 *   row 1: q = (3/10, (2/15+1/4)/2, (3/10+4/15)/2, (8/15+2/5)/2, 0) = (36, 23, 34, 56, 0)/120
 *          -> p1 = (36, 23, 34, 56, 0)/149
 *   row 2: q = (36, 30, 33, 39, 0)/120 -> p2 = (36, 30, 33, 39, 0)/138
 *   row 3: q = (204, 101, 166, 392, 0)/680 -> p3 = (204, 101, 166, 392, 0)/863
 * union: p = (P_A + P_B + P_C)/3 (in 120ths a = (60,30,15,15), b = (12,24,36,48)):
 *   u1 = (80, 70, 83, 127, 0)/360, u2 = (102, 84, 81, 93, 0)/360, u3 = (416, 338, 417, 869, 0)/2040
 * Tasks: rows 1, 2 are "t/alpha", row 3 "t,beta", row 4 has no task (and NaN at C: never used).
 *   own:   w_alpha = (p1 + p2)/2 = (0.251240, 0.185877, 0.233659, 0.329224, 0), w_beta = p3
 *   union: w_alpha = (u1 + u2)/2 = (91, 77, 82, 110, 0)/360, w_beta = u3
 * Pool = rows 1..3 again (ids p1, p2, p3), --fraction 0.3 -> k = ceil(0.9) = 1 row per task:
 *   own dot    alpha: p1 0.266448, p2 0.254865, p3 0.275631 -> p3 selected
 *   own cosine alpha: p1 0.994249, p2 0.993719, p3 0.965144 -> p1 selected (dot and cosine differ)
 *   own dot    beta:  p1 37263/128587 = 0.289788, p2 31140/119094 = 0.261474,
 *                     p3 233037/744769 = 0.312898 -> p3;  cosine beta of p3 = 1 exactly
 *   union dot alpha: u1 0.258071, u2 0.251713, u3 0.263706 -> p3; cosine: u1 0.993351 -> p1 */
enum { SL = 3, SH = 2, SD = 2 };
static const double ha[4] = {0.5, 0.25, 0.125, 0.125}, hb[4] = {0.1, 0.2, 0.3, 0.4};

static void hand(double *v, const double *num, double den) {
    for (int c = 0; c < 5; c++) v[c] = num[c] / den;
}
static const double P1[5] = {36, 23, 34, 56, 0}, P2[5] = {36, 30, 33, 39, 0}, P3[5] = {204, 101, 166, 392, 0};
static const double U1[5] = {80, 70, 83, 127, 0}, U2[5] = {102, 84, 81, 93, 0}, U3[5] = {416, 338, 417, 869, 0};

/* The probe file; class_train: write the counts (else capmix falls back on W = b = 0);
 * caps: the capability_names attribute; bump: added to C's bias of math (another probe). */
static void write_stage_probes(const char *p, int class_train, const char *caps, float bump) {
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float w[SL][SH][5][SD] = {{{{0}}}}, b[SL][SH][5] = {{{0}}}, mean[SL][SH][SD] = {{{0}}}, sd[SL][SH][SD];
    for (int l = 0; l < SL; l++)
        for (int h = 0; h < SH; h++) sd[l][h][0] = sd[l][h][1] = 1;
    for (int c = 0; c < 4; c++) {
        b[0][0][c] = (float)log(ha[c]), b[0][1][c] = (float)log(hb[c]);
        w[2][1][c][0] = (float)(c * log(2.0));
    }
    b[2][1][0] += bump;
    mean[2][1][0] = 1, sd[2][1][0] = 2;
    int top[5][2] = {{0, 1}, {5, 0}, {1, 5}, {5, 1}, {0, 5}};
    int64_t cls[5] = {10, 10, 10, 10, 0};
    hsize_t wd[4] = {SL, SH, 5, SD}, bd[3] = {SL, SH, 5}, md[3] = {SL, SH, SD}, td[2] = {5, 2}, cd = 5;
    put(f, "weights", H5T_NATIVE_FLOAT, 4, wd, w);
    put(f, "bias", H5T_NATIVE_FLOAT, 3, bd, b);
    put(f, "mean", H5T_NATIVE_FLOAT, 3, md, mean);
    put(f, "std", H5T_NATIVE_FLOAT, 3, md, sd);
    put(f, "top_heads", H5T_NATIVE_INT, 2, td, top);
    if (class_train) put(f, "class_train", H5T_NATIVE_INT64, 1, &cd, cls);
    ck_assert_int_eq(ch_h5_put_str(f, "capability_names", caps), 0);
    ck_assert_int_eq(ch_h5_put_str(f, "input_sha256", "probing-set-hash"), 0);
    ch_render_rule rule; /* what probe copies from its input archive: extract's default */
    ch_render_rule_default(&rule);
    ck_assert_int_eq(ch_render_rule_write(f, p, &rule), 0);
    H5Fclose(f);
    ck_assert_int_eq(ch_h5_seal(p), 0); /* as the probe stage does: readers check it */
}

static const char *caps5 = "[\"math\", \"reading\", \"commonsense\", \"science\", \"professional\"]";

/* Row r (0-based) of the hand case: x0 of head C = 3, 1, 5, NaN. */
static void stage_row(int r, float *x) {
    const float x0[4] = {3, 1, 5, NAN};
    for (int j = 0; j < SL * SH * SD; j++) x[j] = NAN;
    x[0] = 0.5f, x[1] = -2, x[2] = 4, x[3] = 0.25f; /* A, B: their weights are 0 */
    x[(2 * SH + 1) * SD] = x0[r], x[(2 * SH + 1) * SD + 1] = 7;
}

static void check_vec(const double *got, const double *num, double den, double tol) {
    double want[5];
    hand(want, num, den);
    for (int c = 0; c < 5; c++) ck_assert_msg(fabs(got[c] - want[c]) <= tol, "c %d: %.9f, expected %.9f", c, got[c], want[c]);
}
#endif
