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

/* Outputs of one run published together at its end (select: every JSONL it wrote, then
 * scores.h5): a writer adds each final path and writes under the partial name it gets back. */
typedef struct {
    char **path, **partial;
    int n, cap;
} ch_out_set;
/* *partial: the name to write path under (owned by the set). Same on every rank. */
int ch_out_set_add(ch_out_set *s, const char *path, const char **partial);
/* Collective: rc agreed, then every member renamed into place in the order added (rank 0), or,
 * when any rank failed, every partial file removed. */
int ch_out_set_finish(MPI_Comm comm, int rc, ch_out_set *s);
/* Rank 0 of a run that stopped early removes the partial files (discard); frees the set. */
void ch_out_set_free(ch_out_set *s, int discard);

/* Collective, before a parallel write of about `need` bytes to path: CH_EIO "not enough space"
 * when its file system has less free (rank 0 asks it). Parallel HDF5 cannot always report a disk
 * that fills in the middle of a collective write or close - a rank can wait forever for one that
 * failed - so the parallel writers refuse up front, as the archive does. */
int ch_out_space_check(MPI_Comm comm, const char *path, double need);

#endif
