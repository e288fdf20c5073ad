/* progress.h - rank 0 reports the progress of all ranks on stderr.
 *
 * Each rank adds what it finished since the last call; the sums travel in one MPI_Allreduce per
 * call (call it once per write round, where ranks meet anyway). On a terminal the line is
 * redrawn in place twice a second; otherwise a line is printed every 10 s (CAPHEADS_PROGRESS_SECONDS
 * changes that), so batch logs stay short. */
#ifndef CH_PROGRESS_H
#define CH_PROGRESS_H

#include <mpi.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm;
    int rank, tty;
    const char *what;
    double t0, last, interval;
    int64_t total_rows, done_rows, skipped_rows, tokens;
} ch_progress;

int ch_progress_init(ch_progress *p, const char *what, int64_t total_rows, int64_t already_done, MPI_Comm comm);
/* Collective. */
int ch_progress_add(ch_progress *p, int64_t rows, int64_t tokens);
/* Final line (rank 0); returns the elapsed seconds. */
double ch_progress_finish(ch_progress *p);

#endif
