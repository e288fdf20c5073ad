/* test_crc32c.c - the archive's row checksum is CRC-32C: RFC 3720's test vectors, the check value
 * of "123456789", and the hardware path equal to the table-driven one on every length and
 * alignment up to 300 bytes. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "crc32c.h"
#include "check_main.h"

START_TEST(test_known_values) {
    unsigned char z[32], f[32], inc[32], dec[32];
    memset(z, 0, 32), memset(f, 0xff, 32);
    for (int i = 0; i < 32; i++) inc[i] = (unsigned char)i, dec[i] = (unsigned char)(31 - i);
    ck_assert_uint_eq(ch_crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(ch_crc32c(0, z, 32), 0x8a9136aau); /* RFC 3720 B.4 */
    ck_assert_uint_eq(ch_crc32c(0, f, 32), 0x62a8ab43u);
    ck_assert_uint_eq(ch_crc32c(0, inc, 32), 0x46dd794eu);
    ck_assert_uint_eq(ch_crc32c(0, dec, 32), 0x113fdb5cu);
    ck_assert_uint_eq(ch_crc32c(0, "", 0), 0u);
    /* continuing a CRC over a split buffer gives the whole buffer's */
    ck_assert_uint_eq(ch_crc32c(ch_crc32c(0, "12345", 5), "6789", 4), 0xe3069283u);
}
END_TEST

START_TEST(test_hardware_equals_portable) {
    unsigned char buf[320];
    uint32_t x = 2463534242u;
    for (int i = 0; i < 320; i++) x ^= x << 13, x ^= x >> 17, x ^= x << 5, buf[i] = (unsigned char)x;
    for (int off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++)
            ck_assert_uint_eq(ch_crc32c(7, buf + off, n), ch_crc32c_portable(7, buf + off, n));
    /* one flipped bit changes it */
    uint32_t before = ch_crc32c(0, buf, 256);
    buf[100] ^= 0x04;
    ck_assert_uint_ne(ch_crc32c(0, buf, 256), before);
}
END_TEST

int main(void) {
    Suite *s = suite_create("crc32c");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_hardware_equals_portable);
    suite_add_tcase(s, tc);
    return ch_check_run(s);
}
