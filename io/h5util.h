/* h5util.h - checked HDF5 calls and the small helpers every capheads HDF5 file uses. */
#ifndef CH_H5UTIL_H
#define CH_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Inside a function with `int rc` and a `fail:` label; `path` names the file in the message. */
#define CH_H5(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(fail, CH_EHDF5, "%s: HDF5 call failed: %s", path, #call);   \
    } while (0)

/* IEEE binary16, little endian (h5py reads it as float16). Caller closes it. */
hid_t ch_h5_f16_type(void);
/* 1 when the CPU has F16C and AVX2 (the binary16 conversions' fast paths, here and in the probe
 * stage, are built for x86-64 with GCC; elsewhere 0). */
int ch_h5_have_f16c(void);
/* dst[i] = ch_f32_to_f16(src[i]) for i < n, bit for bit (round to nearest even, overflow to
 * inf, NaN -> sign|0x7e00); with F16C 8 values per instruction. The archive writer's narrowing. */
void ch_h5_narrow_f16(const float *src, uint16_t *dst, size_t n);
/* The other way, dst[i] = the value of binary16 bits src[i] (exact; F16C 8 at a time). In place
 * is allowed when the halves sit in the second half of dst's buffer (src == (uint16_t *)dst + n):
 * element i's f32 only overwrites halves below src + i + 8, which have been read by then. */
void ch_h5_widen_f16(const uint16_t *src, float *dst, size_t n);
/* Nonzero when some src[i], i < n, is an Inf or NaN (exponent bits all ones). */
int ch_h5_f16_any_nonfinite(const uint16_t *src, size_t n);
/* Fixed-length NUL-padded string type of len bytes. Caller closes it. */
hid_t ch_h5_str_type(size_t len);
/* Scalar string attribute. */
int ch_h5_put_str(hid_t obj, const char *name, const char *value);
/* A string attribute as a malloc'd string; NULL (no error) when absent. */
int ch_h5_get_str(hid_t obj, const char *name, char **out);
int ch_h5_put_i64(hid_t obj, const char *name, int64_t v);
/* SHA-256 (hex) of the per-row datasets ids, tasks, labels, n_tokens and done of an archive, read
 * whole in their file types (the bytes as stored). Independent reads: one process calls it. The
 * archive stores it as rows_sha256 when complete; inspect --verify recomputes it. */
int ch_archive_rows_sha256(hid_t f, char hex[65]);
/* CRC-32C of n binary16 values (their bytes): the archive's per-row, per-layer checksum. */
uint32_t ch_crc32_f16(const uint16_t *v, size_t n);
int ch_h5_get_i64(hid_t obj, const char *name, int64_t *v, int *found);

#endif
