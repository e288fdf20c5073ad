/* agree.h - ranks agree on failure before a collective call.
 *
 * A rank that failed locally must not skip a collective the others are entering: everyone calls
 * ch_mpi_agree(comm, rc) at the next agreement point. It returns 0 when every rank succeeded,
 * otherwise a non-zero code on every rank: a failing rank keeps its own code and message, the
 * others get the lowest failing rank's code with "rank N failed" as their message. */
#ifndef CH_AGREE_H
#define CH_AGREE_H

#include <mpi.h>

int ch_mpi_agree(MPI_Comm comm, int rc);

#endif
