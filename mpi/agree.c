/* agree.c - see agree.h. */
#include "agree.h"

#include "mpicheck.h"

int ch_mpi_agree(MPI_Comm comm, int rc) {
    int rank, size;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    /* lowest failing rank; size when none failed */
    int mine = rc ? rank : size, first;
    CH_MPI_TRY(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == size) return 0;
    int code = rc;
    CH_MPI_TRY(MPI_Bcast(&code, 1, MPI_INT, first, comm));
    if (rc) return rc;
    return ch_err_set(code, __FILE__, __LINE__, "rank %d failed (see its message)", first);
}
