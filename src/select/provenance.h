/* provenance.h - what scores.h5 records of the inputs a selection was made from.
 *
 * The pool archive's attributes are read with plain HDF5 attribute reads on rank 0 and sent to
 * every rank (parallel HDF5 writes an attribute collectively, every rank with the same value).
 * The mix's identity is a SHA-256 over its content, so it is the same for a copy or a rewrite
 * of mix.h5 with the same numbers (HDF5 object timestamps change the file's bytes). */
#ifndef CH_SELECT_PROVENANCE_H
#define CH_SELECT_PROVENANCE_H

#include <mpi.h>

#include "mixfile.h"

typedef struct {
    /* the pool archive's root attributes, "" when absent */
    char *input_sha256, *rows_sha256, *weights_sha256;
} ch_select_prov;

/* Collective: rank 0 reads the attributes of the archive at path, every rank gets them. */
int ch_select_prov_read(const char *path, MPI_Comm comm, ch_select_prov *p);
void ch_select_prov_free(ch_select_prov *p);
/* Collective: rank 0's string hex[65] on every rank. */
int ch_select_bcast_hex(char hex[65], MPI_Comm comm);
/* SHA-256 over the mix's tasks, mixes, example counts, hidden means and the attributes that say
 * what it was made from (capability_names, probes_sha256, heads, input_sha256). */
int ch_select_mix_identity(const ch_mix *m, char hex[65]);

#endif
