/* test_f16_narrow.c - the archive writer's batched f32 -> binary16 narrowing (F16C where the CPU
 * has it) gives exactly ch_f32_to_f16 of every value, so archives do not depend on the CPU; the
 * readers' widening gives exactly ch_f16_to_f32 of every binary16 value, and the non-finite scan
 * finds every Inf/NaN pattern. The scalar rules themselves are pinned against numpy by
 * tests/test_extract.sh and test_probe's reader test (h5py readback). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "ops_math.h"

enum { BLK = 4096 };

/* Narrow n values both ways; returns the number of differing outputs (first one in *at). */
static size_t mismatches(const float *src, size_t n, size_t *at) {
    static uint16_t got[BLK + 64];
    size_t bad = 0;
    ch_h5_narrow_f16(src, got, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != ch_f32_to_f16(src[i])) {
            if (!bad) *at = i;
            bad++;
        }
    return bad;
}

START_TEST(test_narrow_matches_scalar_rule_across_f32_space) {
    /* every 251st bit pattern: all exponents, both signs, NaNs and infinities included */
    static float buf[BLK];
    size_t bad = 0, at = 0, k = 0;
    uint32_t first_bad = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 251) {
        buf[k++] = ch_bits_to_f32((uint32_t)u);
        if (k == BLK) {
            size_t b = mismatches(buf, k, &at);
            if (b && !bad) first_bad = ch_f32_to_bits(buf[at]);
            bad += b, k = 0;
        }
    }
    bad += mismatches(buf, k, &at);
    ck_assert_msg(bad == 0, "%zu values differ, first 0x%08x", bad, first_bad);
}
END_TEST

START_TEST(test_narrow_rounds_ties_and_near_ties_like_scalar) {
    /* for every finite binary16 step (normal and subnormal), the f32 midpoint to the next value
     * and its neighbours one and two ulps away, both signs */
    static float buf[BLK];
    size_t bad = 0, at = 0, k = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float lo = ch_f16_to_f32((uint16_t)h), hi = ch_f16_to_f32((uint16_t)(h + 1));
        uint32_t mid = ch_f32_to_bits(lo + (hi - lo) / 2); /* exact in f32 */
        for (int d = -2; d <= 2; d++)
            for (int sgn = 0; sgn < 2; sgn++) {
                buf[k++] = ch_bits_to_f32((mid + (uint32_t)d) | (sgn ? 0x80000000u : 0));
                if (k == BLK) bad += mismatches(buf, k, &at), k = 0;
            }
    }
    bad += mismatches(buf, k, &at);
    ck_assert_msg(bad == 0, "%zu near-tie values differ", bad);
}
END_TEST

START_TEST(test_narrow_handles_tails_offsets_and_nan_blocks) {
    static float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)(i - 30) * 1.37e-3f;
    buf[9] = ch_bits_to_f32(0x7fa00001u);  /* signalling NaN with a payload */
    buf[20] = ch_bits_to_f32(0xffc12345u); /* negative quiet NaN with a payload */
    buf[33] = 1e30f, buf[34] = -1e-30f, buf[35] = 65519.0f, buf[36] = 65520.0f;
    size_t at = 0;
    for (size_t off = 0; off < 4; off++)
        for (size_t n = 0; n + off <= 64; n++)
            ck_assert_msg(mismatches(buf + off, n, &at) == 0, "offset %zu n %zu: value %zu differs", off, n, at);
    uint16_t h[64];
    ch_h5_narrow_f16(buf, h, 64);
    ck_assert_uint_eq(h[9], 0x7e00);
    ck_assert_uint_eq(h[20], 0xfe00);
    ck_assert_uint_eq(h[35], 0x7bff);
    ck_assert_uint_eq(h[36], 0x7c00);
}
END_TEST

START_TEST(test_widen_matches_scalar_rule_for_every_binary16) {
    /* all 65536 patterns, at 4 alignments and in place (halves in the second half of the buffer) */
    static uint16_t h[65536 + 8];
    static float got[65536 + 8], inplace[2 * 65536];
    for (size_t off = 0; off < 4; off++) {
        for (uint32_t u = 0; u < 65536; u++) h[off + u] = (uint16_t)u;
        ch_h5_widen_f16(h + off, got, 65536);
        for (uint32_t u = 0; u < 65536; u++) {
            float want = ch_f16_to_f32((uint16_t)u);
            if (want != want) /* F16C quiets signalling NaNs; a NaN must stay a NaN of that sign */
                ck_assert_msg(got[u] != got[u] && signbit(got[u]) == signbit(want), "0x%04x", u);
            else
                ck_assert_msg(ch_f32_to_bits(got[u]) == ch_f32_to_bits(want), "0x%04x -> 0x%08x, want 0x%08x",
                              u, ch_f32_to_bits(got[u]), ch_f32_to_bits(want));
        }
    }
    uint16_t *tail = (uint16_t *)inplace + 65536;
    for (uint32_t u = 0; u < 65536; u++) tail[u] = (uint16_t)u;
    ch_h5_widen_f16(tail, inplace, 65536);
    for (uint32_t u = 0; u < 65536; u++)
        if (ch_f16_to_f32((uint16_t)u) == ch_f16_to_f32((uint16_t)u))
            ck_assert_msg(inplace[u] == ch_f16_to_f32((uint16_t)u), "in place: 0x%04x", u);
    ck_assert_float_eq(ch_f16_to_f32(0x3c00), 1.0f);
    ck_assert_float_eq(ch_f16_to_f32(0x0001), 5.9604644775390625e-8f); /* smallest subnormal */
    ck_assert_float_eq(ch_f16_to_f32(0xfbff), -65504.0f);
}
END_TEST

START_TEST(test_nonfinite_scan_finds_every_inf_and_nan) {
    static uint16_t buf[67];
    for (int i = 0; i < 67; i++) buf[i] = (uint16_t)((i & 1 ? 0x8000 : 0) + 0x3c00 + 37 * i); /* finite */
    buf[5] = 0xfbff, buf[6] = 0x8001, buf[7] = 0x7bff;
    ck_assert_int_eq(ch_h5_f16_any_nonfinite(buf, 67), 0);
    for (uint32_t u = 0; u < 65536; u++) {
        const int nonfinite = (u & 0x7c00u) == 0x7c00u;
        for (int at = 0; at < 67; at += 22) { /* vector body and scalar tail positions */
            uint16_t keep = buf[at];
            buf[at] = (uint16_t)u;
            ck_assert_msg(ch_h5_f16_any_nonfinite(buf, 67) == nonfinite, "0x%04x at %d", u, at);
            ck_assert_int_eq(ch_h5_f16_any_nonfinite(buf, (size_t)at), 0);
            buf[at] = keep;
        }
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("f16_narrow");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_narrow_matches_scalar_rule_across_f32_space);
    tcase_add_test(tc, test_narrow_rounds_ties_and_near_ties_like_scalar);
    tcase_add_test(tc, test_narrow_handles_tails_offsets_and_nan_blocks);
    tcase_add_test(tc, test_widen_matches_scalar_rule_for_every_binary16);
    tcase_add_test(tc, test_nonfinite_scan_finds_every_inf_and_nan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
