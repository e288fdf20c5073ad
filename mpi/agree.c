/* agree.c - see agree.h. */
#include "agree.h"

#include "err.h"

int ch_mpi_agree(MPI_Comm comm, int rc) {
    int rank, size;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Comm_rank/size failed");
    /* lowest failing rank; size when none failed */
    int mine = rc ? rank : size, first;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Allreduce (error agreement) failed");
    if (first == size) return 0;
    int code = rc;
    if (MPI_Bcast(&code, 1, MPI_INT, first, comm) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "MPI_Bcast failed");
    if (rc) return rc;
    return ch_err_set(code, __FILE__, __LINE__, "rank %d failed (see its message)", first);
}
