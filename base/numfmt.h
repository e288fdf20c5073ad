/* numfmt.h - the number formats of checkpoints and archives: f32 bits, bf16, IEEE binary16.
 *
 * Every conversion capheads makes (reading weights, rounding Linear inputs, narrowing captured
 * heads to the archive's float16) goes through these functions, on the CPU and on the GPU. */
#ifndef CH_NUMFMT_H
#define CH_NUMFMT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hostdev.h"

CH_HD float ch_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
CH_HD uint32_t ch_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
/* bf16 is the top half of an f32: widening is exact. */
CH_HD float ch_bf16_to_f32(uint16_t h) { return ch_bits_to_f32((uint32_t)h << 16); }
/* Round to nearest even; NaN stays NaN (quiet). */
CH_HD uint16_t ch_f32_to_bf16(float f) {
    uint32_t u = ch_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* IEEE binary16 -> binary32, exact (subnormals included). */
CH_HD float ch_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return ch_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return ch_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return ch_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}
/* binary32 -> binary16, round to nearest even, overflow to inf, NaN kept. */
CH_HD uint16_t ch_f32_to_f16(float f) {
    uint32_t u = ch_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);         /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);        /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                          /* below 2^-14: subnormal */
        /* value / 2^-24 rounded to nearest even integer, computed exactly in f32 arithmetic */
        float v = ch_bits_to_f32(a) * 16777216.0f;                  /* exact scaling by 2^24 */
        float r = rintf(v);                                          /* ties to even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t mant_rounded = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | (uint16_t)((mant_rounded - 0x38000000u) >> 13));
}

#endif
