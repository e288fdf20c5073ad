/* weights_hash.h - one SHA-256 of a checkpoint's weights, computed by all ranks together.
 *
 * extract --resume must refuse an archive begun with other weights under the same config.json
 * and tokenizer (a fine-tuned checkpoint, a re-download of another revision). The files are cut
 * into 64 MiB blocks in the order the model directory lists them; rank r hashes blocks r, r+R,
 * r+2R... and every rank gets the SHA-256 of the block digests in order. The value is the same
 * for any rank count; each byte is read once per run, by one rank. */
#ifndef CH_WEIGHTS_HASH_H
#define CH_WEIGHTS_HASH_H

#include <mpi.h>
#include <stdint.h>

/* hex: 64 hex digits + NUL, equal on every rank; *bytes: the checkpoint's size. */
int ch_weights_sha256(const char *const *files, int nfiles, MPI_Comm comm, char hex[65], double *bytes);
/* The same with another block size (tests cut small files into many blocks). */
int ch_weights_sha256_blocks(const char *const *files, int nfiles, int64_t block, MPI_Comm comm, char hex[65],
                             double *bytes);

#endif
