/* lines.h - split a JSONL file among ranks by bytes, so no rank reads the whole file.
 *
 * Rank k of R owns the records (non-blank lines) whose first byte lies in bytes
 * [size*k/R, size*(k+1)/R) of the file. Each rank scans only its range (plus the tail of its last
 * line); an MPI_Exscan of the counts gives every rank the global index of its first record, so
 * record i is the same line whatever R is. */
#ifndef CH_LINES_H
#define CH_LINES_H

#include <mpi.h>
#include <stdint.h>

typedef struct {
    int64_t first;  /* global index of this rank's first record */
    int64_t count;  /* records owned by this rank */
    int64_t total;  /* records in the file */
    int64_t *start; /* byte offset of each owned record */
    int64_t *len;   /* its length in bytes, without the '\n' */
    int64_t *line;  /* its 1-based physical line number (blank lines count), for messages */
} ch_lines;

/* Collective. */
int ch_lines_plan(const char *path, MPI_Comm comm, ch_lines *out);
void ch_lines_free(ch_lines *l);

#endif
