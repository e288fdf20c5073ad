/* progress.c - see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mpicheck.h"

int ch_progress_init(ch_progress *p, const char *what, int64_t total_rows, int64_t already_done, MPI_Comm comm) {
    p->comm = comm;
    CH_MPI_TRY(MPI_Comm_rank(comm, &p->rank));
    p->tty = isatty(STDERR_FILENO);
    p->what = what;
    p->t0 = p->last = MPI_Wtime();
    const char *env = getenv("CAPHEADS_PROGRESS_SECONDS");
    p->interval = env ? atof(env) : (p->tty ? 0.5 : 10.0);
    p->total_rows = total_rows;
    p->done_rows = p->skipped_rows = already_done;
    p->tokens = 0;
    return 0;
}

static void print(const ch_progress *p, double now, int final) {
    double dt = now - p->t0;
    int64_t computed = p->done_rows - p->skipped_rows, left = p->total_rows - p->done_rows;
    double rate = dt > 0 ? computed / dt : 0, tps = dt > 0 ? p->tokens / dt : 0;
    char eta[48] = "";
    if (!final && rate > 0) snprintf(eta, sizeof eta, ", ~%.0f s left", left / rate);
    fprintf(stderr, "%s%s: %lld/%lld records (%.1f%%), %.0f tokens/s, %.1f s%s%s", p->tty && !final ? "\r" : "",
            p->what, (long long)p->done_rows, (long long)p->total_rows,
            p->total_rows ? 100.0 * p->done_rows / p->total_rows : 100.0, tps, dt, eta,
            p->tty && !final ? "   " : "\n");
    fflush(stderr);
}

int ch_progress_add(ch_progress *p, int64_t rows, int64_t tokens) {
    int64_t v[2] = {rows, tokens};
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_SUM, p->comm));
    p->done_rows += v[0];
    p->tokens += v[1];
    double now = MPI_Wtime();
    if (p->rank == 0 && now - p->last >= p->interval) {
        print(p, now, 0);
        p->last = now;
    }
    return 0;
}

double ch_progress_finish(ch_progress *p) {
    double now = MPI_Wtime();
    if (p->rank == 0) print(p, now, 1);
    return now - p->t0;
}
