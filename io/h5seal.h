/* h5seal.h - a content checksum inside the small HDF5 outputs (probes.h5, mix.h5, scores.h5).
 *
 * The writer closes its file and seals it: every dataset (at any depth, visited in name order)
 * gets an attribute `sha256`, the SHA-256 of its bytes as stored (read whole in its file type),
 * and the root gets `content_sha256`, the SHA-256 of the list of (dataset name, sha256) and
 * (root attribute name, SHA-256 of its bytes), so a flipped byte in a dataset is named by the
 * dataset, and one in a root attribute, or a dataset gone or added, by content_sha256.
 * Readers open these files through ch_h5_open_sealed: a mismatch, a missing checksum or
 * anything HDF5 cannot read is CH_EFORMAT (exit 3) naming the file and, where known, the
 * dataset - never a silent run on damaged probes or mixes.
 *
 * Around that, a file seal: ch_h5_seal writes the file behind a 512-byte HDF5 user block that
 * holds the SHA-256 of every later byte. Readers check it on the raw bytes
 * before HDF5 sees them (a flipped bit in HDF5's own structures can crash HDF5 1.10), then parse
 * the same bytes from memory. A file without the block (h5unjam removes it) is checked by its
 * content seal alone; a rewrite that keeps a stale block (h5repack copies it) is refused. */
#ifndef CH_H5SEAL_H
#define CH_H5SEAL_H

#include <hdf5.h>

/* Add the checksums to a closed file (serial: one process). The file is sealed in memory and
 * written back whole, so a full disk is a clean CH_EIO, never a failed HDF5 close. */
int ch_h5_seal(const char *path);
/* A small HDF5 output built in memory (the core driver, no backing store) and written by
 * ch_h5_mem_save with checked write(2)s and an fsync: HDF5 1.10 cannot recover from a close
 * that fails for a full disk (the library crashes at exit on the half-closed file), so the
 * serial writers never let HDF5 touch the disk. name is only HDF5's label for it. */
hid_t ch_h5_mem_create(const char *name);
/* Write the file's bytes to path and close f (always). CH_EIO with errno's words on failure. */
int ch_h5_mem_save(hid_t f, const char *path);
/* Check the checksums of an open file; CH_EFORMAT naming path and dataset on a mismatch. */
int ch_h5_verify_seal(hid_t f, const char *path);
/* The file seal of the file on disk, checked without HDF5: *sealed = 1 when it holds, 0 when the
 * file has no user block (an archive); CH_EFORMAT naming the file when it is damaged. */
int ch_h5_check_file_seal(const char *path, int *sealed);
/* Read the file, check its file seal, open those bytes read-only in memory and verify the content
 * seal. A file that is not there: CH_EIO; one HDF5 cannot open: CH_EFORMAT.
 * The caller closes *f. */
int ch_h5_open_sealed(const char *path, hid_t *f);

#endif
