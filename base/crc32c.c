/* crc32c.c - see crc32c.h. */
#include "crc32c.h"

#include <string.h>

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t ch_crc32c_portable(uint32_t crc, const void *p, size_t n) {
    if (!table_ready) make_table(); /* idempotent: racing threads write the same values */
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const unsigned char *b, size_t n) {
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        c = _mm_crc32_u64(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--, b++) c32 = _mm_crc32_u8(c32, *b);
    return ~c32;
}

uint32_t ch_crc32c(uint32_t crc, const void *p, size_t n) {
    static int have = -1;
    if (have < 0) have = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    return have ? crc_sse42(crc, p, n) : ch_crc32c_portable(crc, p, n);
}
#else
uint32_t ch_crc32c(uint32_t crc, const void *p, size_t n) { return ch_crc32c_portable(crc, p, n); }
#endif
