/* dtype.c - element types: names as safetensors writes them, sizes, widening to f32. */
#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "numfmt.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"I64", 8}, {"U8", 1}};
#define NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t ch_dtype_size(ch_dtype dt) { return (int)dt >= 0 && (int)dt < NDTYPES ? dtypes[dt].size : 0; }
const char *ch_dtype_name(ch_dtype dt) { return (int)dt >= 0 && (int)dt < NDTYPES ? dtypes[dt].name : "?"; }

int ch_dtype_parse(const char *name, ch_dtype *out) {
    for (int k = 0; k < NDTYPES; k++)
        if (name && !strcmp(dtypes[k].name, name)) {
            *out = (ch_dtype)k;
            return 1;
        }
    return 0;
}

void ch_convert_to_f32(const void *src, ch_dtype dt, size_t n, float *dst) {
    /* memcpy per element: the data may sit at any byte offset of the mapping. */
    const uint8_t *s = src;
    switch (dt) {
    case CH_DT_F32:
        memcpy(dst, src, n * 4);
        break;
    case CH_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ch_f16_to_f32(h);
        }
        break;
    case CH_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ch_bf16_to_f32(h);
        }
        break;
    case CH_DT_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case CH_DT_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case CH_DT_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
}
