/* outfinish.h - the end of an output written by all ranks under its partial name (outpath.h).
 *
 * Collective. rc is this rank's state after its writes and the collective close; the ranks
 * agree on it, then rank 0 alone seals the file (seal: an HDF5 output, h5seal.h) and renames it
 * into place, or removes it when any rank failed, and the ranks agree again: no rank reports
 * success before the file is under its final name, and a failed run leaves no partial file. */
#ifndef CH_OUTFINISH_H
#define CH_OUTFINISH_H

#include <mpi.h>

int ch_out_finish(MPI_Comm comm, int rc, const char *partial, const char *path, int seal);

/* Collective, before a parallel write of about `need` bytes to path: CH_EIO "not enough space"
 * when its file system has less free (rank 0 asks it). Parallel HDF5 cannot always report a disk
 * that fills in the middle of a collective write or close - a rank can wait forever for one that
 * failed - so the parallel writers refuse up front, as the archive does. */
int ch_out_space_check(MPI_Comm comm, const char *path, double need);

#endif
