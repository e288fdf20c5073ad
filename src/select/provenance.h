/* provenance.h - what scores.h5 records of the inputs a selection was made from.
 *
 * The pool archive's identities (input, rows, weights sha256) come from its ch_archive_info, read
 * alike by every rank (parallel HDF5 writes an attribute collectively, every rank with the same
 * value). The mix's identity is a SHA-256 over its content, so it is the same for a copy or a rewrite
 * of mix.h5 with the same numbers (HDF5 object timestamps change the file's bytes). */
#ifndef CH_SELECT_PROVENANCE_H
#define CH_SELECT_PROVENANCE_H

#include <mpi.h>

#include "mixfile.h"

/* Collective: rank 0's string hex[65] on every rank. */
int ch_select_bcast_hex(char hex[65], MPI_Comm comm);
/* SHA-256 over the mix's tasks, mixes, example counts, hidden means and the attributes that say
 * what it was made from (capability_names, probes_sha256, heads, input_sha256). */
int ch_select_mix_identity(const ch_mix *m, char hex[65]);

#endif
