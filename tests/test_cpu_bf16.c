/* test_cpu_bf16.c - the CPU backend's Linear for bf16 weights (kernels/cpu_bf16.h), through the
 * backend seam, for each of its kernels (CAPHEADS_CPU_BF16): AMX tiles and AVX512-BF16 dot
 * products (where this CPU and kernel allow them; the reason is printed when not) and the
 * widening one, which runs everywhere.
 *   - against a double-precision sum of the bf16-rounded products, within the f32 summation bound
 *     n u sum|products|, on shapes with ragged edges and a K long enough to be summed in chunks;
 *   - the rounding of the activations is ch_f32_to_bf16's, bit for bit (ties to even, carries,
 *     overflow to inf, NaN), seen through an identity weight;
 *   - 1, 2 and 3 threads give the same bits on AMX and AVX512-BF16 (Linear and fused MLP), the
 *     same values to rounding on the widening one;
 *   - the fused MLP (gate, up, SwiGLU, down) equals three Linears and swiglu, bit for bit;
 *   - what load_weight keeps for each use, and the GEMM arguments a bf16 weight refuses. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_amx.h"
#include "cpu_bf16.h"
#include "cpu_features.h"
#include "err.h"
#include "test_rand.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { return ch_test_frand(&rng); }

/* kernel 0: widen, 1: AMX, 2: AVX512-BF16. NULL (and a printed reason) when this CPU lacks it. */
static const char *kernel_env[] = {"widen", "amx", "avx512bf16"};
static const char *kernel_name[] = {"widen", "AMX", "AVX512-BF16"};
static ch_backend *make_backend(int kernel, int threads) {
    char why[96];
    if (kernel == 1 && !ch_amx_usable(why, sizeof why)) {
        printf("AMX kernel not tested here: %s\n", why);
        return NULL;
    }
    if (kernel == 2 && !ch_cpu_features_get()->avx512bf16) {
        printf("AVX512-BF16 kernel not tested here: the CPU has no AVX512-BF16\n");
        return NULL;
    }
    setenv("CAPHEADS_CPU_BF16", kernel_env[kernel], 1);
    ch_backend *be = NULL;
    ck_assert_int_eq(ch_backend_cpu_create(threads, &be), 0);
    unsetenv("CAPHEADS_CPU_BF16");
    static const char *says[] = {"bf16 Linear on OpenBLAS, widened", "bf16 Linear on AMX tiles", "bf16 Linear on AVX512-BF16"};
#if !(defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__))
    if (kernel == 2 && !strstr(be->info, says[2])) { /* a build without the kernel (not x86-64 GCC) */
        printf("AVX512-BF16 kernel not in this build:%s\n", be->info);
        ch_backend_destroy(be);
        return NULL;
    }
#endif
    ck_assert_msg(strstr(be->info, says[kernel]), "CAPHEADS_CPU_BF16=%s: info is%s", kernel_env[kernel], be->info);
    return be;
}

/* A checkpoint-like tensor over host data (bf16 unless dt says otherwise). */
static ch_st_tensor tensor(const void *data, ch_dtype dt, int64_t rows, int64_t cols) {
    ch_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "test.weight", t.file = "test", t.dtype = dt, t.ndim = 2;
    t.shape[0] = rows, t.shape[1] = cols;
    t.nbytes = (size_t)(rows * cols) * ch_dtype_size(dt);
    t.data = data;
    return t;
}

/* y [ntok, rows] = bf16(x) [ntok, cols] W^T through the seam, as src/model.c's linear() calls it */
static void linear(ch_backend *be, const ch_weight *w, const float *x, int ntok, float *y) {
    int out = (int)w->rows, in = (int)w->cols;
    ck_assert_msg(be->gemm(be, 1, 0, out, ntok, in, 1.0f, w, in, x, in, 0.0f, y, out) == 0, "%s", ch_err_msg());
}

START_TEST(test_linear_matches_double_reference) {
    ch_backend *be = make_backend(_i, 2);
    if (!be) return;
    /* rows, cols, ntok: edges in every direction; 2112 = 66 k-blocks, summed as 64 + 2 (AMX) and
     * 1056 pairs as 4 x 256 + 32 (AVX512-BF16); 385 tokens = 2 x 192 + 1 */
    static const int shapes[][3] = {{40, 48, 33}, {160, 64, 70}, {17, 31, 1}, {96, 2112, 40}, {130, 96, 64}, {32, 32, 32},
                                    {80, 520, 385}, {1, 7, 5}, {200, 34, 13}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int rows = shapes[si][0], cols = shapes[si][1], ntok = shapes[si][2];
        uint16_t *w16 = malloc(sizeof(uint16_t) * rows * cols);
        float *x = malloc(sizeof(float) * ntok * cols), *y = malloc(sizeof(float) * ntok * rows);
        for (int i = 0; i < rows * cols; i++) w16[i] = ch_f32_to_bf16(0.2f * frand());
        for (int i = 0; i < ntok * cols; i++) x[i] = 4.0f * frand();
        ch_st_tensor t = tensor(w16, CH_DT_BF16, rows, cols);
        ch_weight w;
        ck_assert_int_eq(be->load_weight(be, &t, CH_WEIGHT_LINEAR, &w), 0);
        ck_assert_int_eq(w.dtype, CH_DT_BF16);
        ck_assert_int_eq(w.packed, _i ? CH_BF16_TILES : CH_BF16_WIDE);
        for (int i = 0; i < ntok * rows; i++) y[i] = NAN; /* every output must be written */
        linear(be, &w, x, ntok, y);
        double worst = 0;
        for (int tk = 0; tk < ntok; tk++)
            for (int o = 0; o < rows; o++) {
                double s = 0, a = 0;
                for (int k = 0; k < cols; k++) {
                    double p = (double)ch_bf16_to_f32(ch_f32_to_bf16(x[tk * cols + k])) * ch_bf16_to_f32(w16[o * cols + k]);
                    s += p, a += fabs(p);
                }
                double err = fabs(y[tk * rows + o] - s), bound = (cols + 2) * ldexp(1.0, -24) * a + 1e-30;
                ck_assert_msg(err <= bound, "kernel %d, %dx%d, %d tokens: y[%d][%d] = %.9g, reference %.9g (bound %.3g)",
                              _i, rows, cols, ntok, tk, o, y[tk * rows + o], s, bound);
                worst = err / bound > worst ? err / bound : worst;
            }
        printf("kernel %s %4d x %4d, %3d tokens: worst error %.2f of the f32 summation bound\n", kernel_name[_i],
               rows, cols, ntok, worst);
        be->free_weight(be, &w);
        free(w16), free(x), free(y);
    }
    ch_backend_destroy(be);
}
END_TEST

/* Identity weight: y[t][t % 64] = bf16(v_t) exactly (one product by 1, the rest 0 x 0). */
START_TEST(test_activation_rounding_is_ch_f32_to_bf16) {
    ch_backend *be = make_backend(_i, 2);
    if (!be) return;
    enum { D = 64, N = 4096 };
    static const uint32_t special[] = {
        0x3f808000u, /* a tie, even below: stays 0x3f80 */
        0x3f818000u, /* a tie, odd below: up to 0x3f82 */
        0x3f808001u, 0x3f807fffu, /* just above and below a tie */
        0x3fffffffu, /* rounds up across the exponent: 2.0 */
        0x7f7fffffu, /* the largest float rounds to inf */
        0xff7fffffu, /* and its negative to -inf */
        0x7f800000u, 0xff800000u, /* infinities stay */
        0x7fc00000u, 0x7f800001u, /* NaNs stay NaN */
        0x00800000u, 0x80800000u, /* the smallest normals */
        0xbf818000u, 0x42f6e979u, 0xc2f6e979u};
    uint16_t *eye = calloc((size_t)D * D, sizeof(uint16_t));
    for (int i = 0; i < D; i++) eye[i * D + i] = 0x3f80; /* 1.0 */
    float *x = calloc((size_t)N * D, sizeof(float)), *y = malloc(sizeof(float) * N * D);
    uint32_t *bits = malloc(sizeof(uint32_t) * N);
    const int ns = (int)(sizeof special / sizeof special[0]);
    for (int t = 0; t < N; t++) {
        if (t < ns) bits[t] = special[t];
        else { /* normal floats of every exponent from 2^-100 to 2^100, random mantissas */
            float v = ldexpf(1.0f + fabsf(frand()), (int)(frand() * 100));
            bits[t] = ch_f32_to_bits(t % 2 ? -v : v);
        }
        x[t * D + t % D] = ch_bits_to_f32(bits[t]);
    }
    ch_st_tensor tt = tensor(eye, CH_DT_BF16, D, D);
    ch_weight w;
    ck_assert_int_eq(be->load_weight(be, &tt, CH_WEIGHT_LINEAR, &w), 0);
    linear(be, &w, x, N, y);
    for (int t = 0; t < N; t++) {
        float got = y[t * D + t % D], want = ch_bf16_to_f32(ch_f32_to_bf16(ch_bits_to_f32(bits[t])));
        if (isnan(want)) ck_assert_msg(isnan(got), "kernel %d: x = 0x%08x gave %g, want NaN", _i, bits[t], got);
        else
            ck_assert_msg(ch_f32_to_bits(got) == ch_f32_to_bits(want), "kernel %d: x = 0x%08x rounded to 0x%08x, want 0x%08x",
                          _i, bits[t], ch_f32_to_bits(got), ch_f32_to_bits(want));
    }
    be->free_weight(be, &w);
    free(eye), free(x), free(y), free(bits);
    ch_backend_destroy(be);
}
END_TEST

START_TEST(test_thread_count_does_not_change_a_bit) {
    /* a Linear past two k-chunks and two token blocks; an MLP with ragged I and hidden */
    enum { ROWS = 200, COLS = 2200, NTOK = 397, I = 333, HID = 120 };
    uint16_t *w16 = malloc(sizeof(uint16_t) * ROWS * COLS), *g16 = malloc(sizeof(uint16_t) * I * HID);
    uint16_t *u16 = malloc(sizeof(uint16_t) * I * HID), *d16 = malloc(sizeof(uint16_t) * I * HID);
    float *x = malloc(sizeof(float) * NTOK * COLS), *y[3], *m[3];
    float *gs = malloc(sizeof(float) * NTOK * I), *us = malloc(sizeof(float) * NTOK * I);
    for (int i = 0; i < ROWS * COLS; i++) w16[i] = ch_f32_to_bf16(0.1f * frand());
    for (int i = 0; i < I * HID; i++)
        g16[i] = ch_f32_to_bf16(0.3f * frand()), u16[i] = ch_f32_to_bf16(0.3f * frand()), d16[i] = ch_f32_to_bf16(0.3f * frand());
    for (int i = 0; i < NTOK * COLS; i++) x[i] = frand();
    ch_st_tensor t = tensor(w16, CH_DT_BF16, ROWS, COLS);
    ch_st_tensor tg = tensor(g16, CH_DT_BF16, I, HID), tu = tensor(u16, CH_DT_BF16, I, HID), td = tensor(d16, CH_DT_BF16, HID, I);
    int made = 0;
    for (int n = 0; n < 3; n++) {
        ch_backend *be = make_backend(_i, n + 1);
        if (!be) break;
        ch_weight w, wg, wu, wd;
        ck_assert_int_eq(be->load_weight(be, &t, CH_WEIGHT_LINEAR, &w), 0);
        y[n] = malloc(sizeof(float) * NTOK * ROWS), m[n] = malloc(sizeof(float) * NTOK * HID);
        made++;
        linear(be, &w, x, NTOK, y[n]);
        ck_assert_int_eq(be->load_weight(be, &tg, CH_WEIGHT_LINEAR, &wg), 0);
        ck_assert_int_eq(be->load_weight(be, &tu, CH_WEIGHT_LINEAR, &wu), 0);
        ck_assert_int_eq(be->load_weight(be, &td, CH_WEIGHT_LINEAR, &wd), 0);
        ck_assert_msg(be->mlp(be, &wg, &wu, &wd, x, NTOK, m[n], gs, us) == 0, "%s", ch_err_msg());
        be->free_weight(be, &w), be->free_weight(be, &wg), be->free_weight(be, &wu), be->free_weight(be, &wd);
        ch_backend_destroy(be);
    }
    /* AMX: the blocks do not depend on the thread count, nor do the bits; AVX512-BF16: each output
     * is one accumulator over k in order. Widen: the threads split the outputs as at --precision
     * f32, and OpenBLAS may sum an edge tile in another order (seen under valgrind, whose CPU makes
     * it pick other kernels): rounding only. */
    for (int n = 1; n < made; n++) {
        if (_i >= 1) {
            ck_assert_msg(!memcmp(y[0], y[n], sizeof(float) * NTOK * ROWS), "%s: %d threads differ from 1",
                          kernel_name[_i], n + 1);
            ck_assert_msg(!memcmp(m[0], m[n], sizeof(float) * NTOK * HID), "%s MLP: %d threads differ from 1",
                          kernel_name[_i], n + 1);
            continue;
        }
        for (int which = 0; which < 2; which++) {
            const float *a = which ? m[0] : y[0], *b = which ? m[n] : y[n];
            int cnt = which ? NTOK * HID : NTOK * ROWS;
            double d = 0, mx = 0;
            for (int i = 0; i < cnt; i++) {
                double e = fabs((double)b[i] - a[i]);
                d = e > d || e != e ? e : d, mx = fabs(a[i]) > mx ? fabs(a[i]) : mx;
            }
            ck_assert_msg(d <= 1e-6 * mx, "widen%s: %d threads are %.3g (relative) from 1 thread's", which ? " MLP" : "",
                          n + 1, d / mx);
        }
    }
    for (int n = 0; n < made; n++) free(y[n]), free(m[n]);
    free(w16), free(g16), free(u16), free(d16), free(x), free(gs), free(us);
}
END_TEST

START_TEST(test_fused_mlp_is_three_linears_and_swiglu) {
    ch_backend *be = make_backend(_i, 2);
    if (!be) return;
    /* I, hidden, ntok: ragged in each; 2112 = a hidden past one k-chunk of down's input; 200
     * tokens past one token block */
    static const int shapes[][3] = {{160, 64, 70}, {48, 96, 33}, {37, 40, 5}, {64, 2112, 20}, {2100, 48, 40},
                                    {90, 70, 200}, {16, 16, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int I = shapes[si][0], hid = shapes[si][1], ntok = shapes[si][2];
        uint16_t *g16 = malloc(sizeof(uint16_t) * I * hid), *u16 = malloc(sizeof(uint16_t) * I * hid);
        uint16_t *d16 = malloc(sizeof(uint16_t) * I * hid);
        float *x = malloc(sizeof(float) * ntok * hid), *out = malloc(sizeof(float) * ntok * hid);
        float *ref = malloc(sizeof(float) * ntok * hid);
        float *g = malloc(sizeof(float) * ntok * I), *u = malloc(sizeof(float) * ntok * I);
        for (int i = 0; i < I * hid; i++) {
            g16[i] = ch_f32_to_bf16(0.3f * frand()), u16[i] = ch_f32_to_bf16(0.3f * frand());
            d16[i] = ch_f32_to_bf16(0.3f * frand());
        }
        for (int i = 0; i < ntok * hid; i++) x[i] = 3.0f * frand();
        ch_st_tensor tg = tensor(g16, CH_DT_BF16, I, hid), tu = tensor(u16, CH_DT_BF16, I, hid);
        ch_st_tensor td = tensor(d16, CH_DT_BF16, hid, I);
        ch_weight wg, wu, wd;
        ck_assert_int_eq(be->load_weight(be, &tg, CH_WEIGHT_LINEAR, &wg), 0);
        ck_assert_int_eq(be->load_weight(be, &tu, CH_WEIGHT_LINEAR, &wu), 0);
        ck_assert_int_eq(be->load_weight(be, &td, CH_WEIGHT_LINEAR, &wd), 0);
        for (int i = 0; i < ntok * hid; i++) out[i] = NAN;
        ck_assert_msg(be->mlp(be, &wg, &wu, &wd, x, ntok, out, g, u) == 0, "%s", ch_err_msg());
        linear(be, &wg, x, ntok, g);
        linear(be, &wu, x, ntok, u);
        ck_assert_int_eq(be->swiglu(be, g, u, (size_t)ntok * I), 0);
        linear(be, &wd, g, ntok, ref);
        for (int i = 0; i < ntok * hid; i++)
            ck_assert_msg(ch_f32_to_bits(out[i]) == ch_f32_to_bits(ref[i]),
                          "kernel %d, I %d hidden %d: out[%d] %.9g, unfused %.9g", _i, I, hid, i, out[i], ref[i]);
        be->free_weight(be, &wg), be->free_weight(be, &wu), be->free_weight(be, &wd);
        free(g16), free(u16), free(d16), free(x), free(out), free(ref), free(g), free(u);
    }
    ch_backend_destroy(be);
}
END_TEST

START_TEST(test_what_load_weight_keeps) {
    ch_backend *be = make_backend(_i, 2);
    if (!be) return;
    enum { R = 5, C = 6 };
    uint16_t b16[R * C], f16[R * C];
    float want[R * C], row[C];
    for (int i = 0; i < R * C; i++) {
        b16[i] = ch_f32_to_bf16(frand()), f16[i] = ch_f32_to_f16(frand());
        want[i] = ch_bf16_to_f32(b16[i]);
    }
    ch_weight w;
    /* a bf16 Linear stays bf16; read as f32 values it is widened exactly */
    ch_st_tensor tb = tensor(b16, CH_DT_BF16, R, C);
    ck_assert_int_eq(be->load_weight(be, &tb, CH_WEIGHT_F32, &w), 0);
    ck_assert_int_eq(w.dtype, CH_DT_F32);
    ck_assert(!memcmp(w.data, want, sizeof want));
    be->free_weight(be, &w);
    /* a table is read from the checkpoint's bytes, rows widened exactly */
    ck_assert_int_eq(be->load_weight(be, &tb, CH_WEIGHT_ROWS, &w), 0);
    ck_assert(w.borrowed && w.dtype == CH_DT_BF16 && !w.packed);
    int32_t id = 3;
    ck_assert_int_eq(be->embed(be, &w, &id, 1, row), 0);
    ck_assert(!memcmp(row, want + 3 * C, sizeof row));
    be->free_weight(be, &w);
    /* f16 has no 16-bit kernel on the CPU: the Linear is widened to f32 */
    ch_st_tensor th = tensor(f16, CH_DT_F16, R, C);
    ck_assert_int_eq(be->load_weight(be, &th, CH_WEIGHT_LINEAR, &w), 0);
    ck_assert_int_eq(w.dtype, CH_DT_F32);
    be->free_weight(be, &w);
    /* a bf16 weight multiplies only as a Linear */
    ck_assert_int_eq(be->load_weight(be, &tb, CH_WEIGHT_LINEAR, &w), 0);
    float x[2 * C] = {0}, y[2 * R];
    ck_assert_int_eq(be->gemm(be, 0, 0, R, 2, C, 1.0f, &w, R, x, C, 0.0f, y, R), CH_EINTERNAL);
    ck_assert_int_eq(be->gemm(be, 1, 0, R, 2, C, 1.0f, &w, C, x, C, 1.0f, y, R), CH_EINTERNAL);
    ck_assert_msg(strstr(ch_err_msg(), "only as a Linear"), "%s", ch_err_msg());
    ck_assert_int_eq(be->gemm(be, 1, 0, R, 2, C, 1.0f, &w, C, x, C, 0.0f, y, R), 0);
    be->free_weight(be, &w);
    ch_backend_destroy(be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cpu_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 120);
    /* loop index: 0 the widening kernel, 1 AMX, 2 AVX512-BF16 */
    tcase_add_loop_test(tc, test_linear_matches_double_reference, 0, 3);
    tcase_add_loop_test(tc, test_activation_rounding_is_ch_f32_to_bf16, 0, 3);
    tcase_add_loop_test(tc, test_thread_count_does_not_change_a_bit, 0, 3);
    tcase_add_loop_test(tc, test_fused_mlp_is_three_linears_and_swiglu, 0, 3);
    tcase_add_loop_test(tc, test_what_load_weight_keeps, 0, 3);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
