/* mpicheck.h - the one check of an MPI call's return code.
 *
 * CH_MPI_TRY(MPI_Allreduce(...)) returns CH_EMPI from the calling function when the call fails,
 * with a message naming the call and MPI's own words for the error; CH_MPI_TRY_GOTO jumps to a
 * cleanup label instead (the function declares `int rc`). CH_MPI_RC(call) is the status itself
 * (0 or CH_EMPI), for `rc = ...` chains. Every MPI call of mpi/ and of the stages goes through
 * them; ranks still agree on failures before the next collective (agree.h). */
#ifndef CH_MPICHECK_H
#define CH_MPICHECK_H

#include <mpi.h>

#include "err.h"

/* 0 when mpirc is MPI_SUCCESS, else CH_EMPI with "<call> failed: <MPI_Error_string>". */
int ch_mpi_check(int mpirc, const char *call, const char *file, int line);

#define CH_MPI_RC(call) ch_mpi_check((call), #call, __FILE__, __LINE__)
#define CH_MPI_TRY(call) CH_TRY(CH_MPI_RC(call))
#define CH_MPI_TRY_GOTO(call, label) CH_TRY_GOTO(CH_MPI_RC(call), label)

#endif
