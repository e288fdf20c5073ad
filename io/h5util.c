/* h5util.c - see h5util.h. */
#include "h5util.h"

#include <openssl/evp.h>

#include "crc32c.h"
#include "fsutil.h"
#include <stdio.h>
#include <stdlib.h>

#include "numfmt.h"

#include <stdlib.h>
#include <string.h>

hid_t ch_h5_f16_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    /* sign bit 15, exponent bits 10..14 (bias 15), mantissa bits 0..9 */
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0 ||
        H5Tset_precision(t, 16) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

hid_t ch_h5_str_type(size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int ch_h5_put_str(hid_t obj, const char *name, const char *value) {
    const char *path = name;
    int rc = 0;
    hid_t t = -1, s = -1, a = -1;
    if (!value) value = "";
    CH_H5(t = H5Tcopy(H5T_C_S1));
    CH_H5(H5Tset_size(t, strlen(value) + 1));
    CH_H5(s = H5Screate(H5S_SCALAR));
    if (H5Aexists(obj, name) > 0) CH_H5(H5Adelete(obj, name));
    CH_H5(a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT));
    CH_H5(H5Awrite(a, t, value));
fail:
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int ch_h5_get_str(hid_t obj, const char *name, char **out) {
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return 0;
    const char *path = name;
    int rc = 0;
    hid_t a = -1, t = -1, mt = -1;
    CH_H5(a = H5Aopen(obj, name, H5P_DEFAULT));
    CH_H5(t = H5Aget_type(a));
    if (H5Tget_class(t) != H5T_STRING)
        CH_FAIL_GOTO(fail, CH_EFORMAT, "attribute '%s' is not a string", name);
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        CH_H5(mt = H5Tcopy(H5T_C_S1));
        CH_H5(H5Tset_size(mt, H5T_VARIABLE));
        CH_H5(H5Aread(a, mt, &v));
        *out = strdup(v ? v : "");
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(t);
        CH_H5(mt = H5Tcopy(t));
        *out = calloc(n + 1, 1);
        if (!*out) CH_FAIL_GOTO(fail, CH_ENOMEM, "out of memory reading attribute '%s'", name);
        CH_H5(H5Aread(a, mt, *out));
    }
    if (!*out) CH_FAIL_GOTO(fail, CH_ENOMEM, "out of memory reading attribute '%s'", name);
fail:
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (rc) free(*out), *out = NULL;
    return rc;
}

int ch_h5_put_i64(hid_t obj, const char *name, int64_t v) {
    const char *path = name;
    int rc = 0;
    hid_t s = -1, a = -1;
    CH_H5(s = H5Screate(H5S_SCALAR));
    if (H5Aexists(obj, name) > 0) CH_H5(H5Adelete(obj, name));
    CH_H5(a = H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT));
    CH_H5(H5Awrite(a, H5T_NATIVE_INT64, &v));
fail:
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    return rc;
}

int ch_h5_get_i64(hid_t obj, const char *name, int64_t *v, int *found) {
    *found = 0;
    if (H5Aexists(obj, name) <= 0) return 0;
    const char *path = name;
    int rc = 0;
    hid_t a = -1;
    CH_H5(a = H5Aopen(obj, name, H5P_DEFAULT));
    CH_H5(H5Aread(a, H5T_NATIVE_INT64, v));
    *found = 1;
fail:
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* F16C's vcvtps2ph with round-to-nearest-even gives exactly ch_f32_to_f16 for every non-NaN input
 * (overflow to inf, subnormals, signed zeros); NaNs keep part of their payload there, so a block
 * holding one is redone by the scalar rule to keep the bytes independent of the CPU.
 * test_f16_narrow sweeps the f32 space against the scalar rule. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
__attribute__((target("avx2,f16c"))) static void narrow_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (size_t j = i; j < i + 8; j++) dst[j] = ch_f32_to_f16(src[j]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) dst[i] = ch_f32_to_f16(src[i]);
}
/* Widening is exact for every binary16 value, so F16C and the scalar rule agree bit for bit. */
__attribute__((target("avx2,f16c"))) static void widen_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, v); /* dst[i..i+8) overlaps src only below src + i + 8 */
    }
    for (; i < n; i++) dst[i] = ch_f16_to_f32(src[i]);
}
#define HAVE_F16C 1
#endif

int ch_h5_have_f16c(void) {
#ifdef HAVE_F16C
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

void ch_h5_narrow_f16(const float *src, uint16_t *dst, size_t n) {
#ifdef HAVE_F16C
    if (ch_h5_have_f16c()) {
        narrow_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = ch_f32_to_f16(src[i]);
}

void ch_h5_widen_f16(const uint16_t *src, float *dst, size_t n) {
#ifdef HAVE_F16C
    if (ch_h5_have_f16c()) {
        widen_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = ch_f16_to_f32(src[i]);
}

int ch_h5_f16_any_nonfinite(const uint16_t *src, size_t n) {
    /* (v & 0x7c00) == 0x7c00 exactly when adding 0x0400 to it carries into bit 15: one
     * branch-free pass that vectorizes, OR-ing the carries */
    uint16_t any = 0;
#pragma omp simd reduction(| : any)
    for (size_t i = 0; i < n; i++) any |= (uint16_t)(((src[i] & 0x7c00u) + 0x0400u) & 0x8000u);
    return any != 0;
}

uint32_t ch_crc32_f16(const uint16_t *v, size_t n) { return ch_crc32c(0, v, n * sizeof *v); }

int ch_archive_rows_sha256(hid_t f, char hex[65]) {
    static const char *const names[] = {"ids", "tasks", "labels", "n_tokens", "done"};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    }
    int rc = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !rc; k++) {
        hid_t d = H5Dopen2(f, names[k], H5P_DEFAULT), t = d < 0 ? -1 : H5Dget_type(d);
        hssize_t n = -1;
        if (t >= 0) {
            hid_t sp = H5Dget_space(d);
            n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
            if (sp >= 0) H5Sclose(sp);
        }
        size_t bytes = n < 0 ? 0 : (size_t)n * H5Tget_size(t);
        void *buf = n < 0 ? NULL : malloc(bytes + 1);
        if (!buf || H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "reading /%s to hash it failed", names[k]);
        else
            EVP_DigestUpdate(ctx, buf, bytes);
        free(buf);
        if (t >= 0) H5Tclose(t);
        if (d >= 0) H5Dclose(d);
    }
    unsigned char md[32];
    unsigned int len = 0;
    if (!rc) EVP_DigestFinal_ex(ctx, md, &len);
    if (!rc) ch_sha256_hex(md, hex);
    EVP_MD_CTX_free(ctx);
    return rc;
}
