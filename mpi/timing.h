/* timing.h - the stages' machine-readable timing record (`--timing FILE`, docs/timing.md).
 *
 * A stage calls ch_timing_start right after parsing its arguments, fills in what it measured
 * (records, tokens, io_seconds, backend, precision, stage-specific counts with ch_timing_add) and ends with
 * ch_timing_finish, after its last collective. That call is collective: the ranks agree on the
 * stage's status first, the wall time and I/O time are reduced as the max over ranks, and rank 0
 * appends ONE JSON line to the file (a single write(2) on an O_APPEND descriptor, so array jobs
 * sharing a file do not interleave their lines). The counts are taken from rank 0. */
#ifndef CH_TIMING_H
#define CH_TIMING_H

#include <mpi.h>
#include <stdint.h>

#define CH_TIMING_MAX_EXTRA 6

typedef struct {
    const char *stage;
    double t0;                /* MPI_Wtime() at ch_timing_start */
    int64_t records, tokens;  /* < 0: not measured (written as null) */
    double io_seconds;        /* this rank's seconds in file I/O; < 0: not measured (null) */
    const char *backend;      /* NULL: the key is left out */
    const char *precision;    /* the Linear inputs' type (extract); NULL: left out */
    int nextra;
    const char *extra_key[CH_TIMING_MAX_EXTRA]; /* stage-specific integer fields, in order */
    int64_t extra_val[CH_TIMING_MAX_EXTRA];
} ch_timing;

/* Start the clock; nothing measured yet. Not collective. */
void ch_timing_start(ch_timing *t, const char *stage);

/* Add a stage-specific integer field (key: [a-z_]+, not a standard key); CH_EARG when full. */
int ch_timing_add(ch_timing *t, const char *key, int64_t value);

/* Collective when path is non-NULL (every rank, same path, with its own status rc): returns the
 * agreed status (non-zero on every rank when any rank failed) without writing anything, or the
 * result of appending the record (CH_EIO naming the file, on every rank). path NULL: returns rc. */
int ch_timing_finish(const ch_timing *t, const char *path, int rc, MPI_Comm comm);

#endif
