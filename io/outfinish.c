/* outfinish.c - see outfinish.h. */
#include "outfinish.h"

#include "agree.h"
#include "err.h"
#include "outpath.h"

int ch_out_finish(MPI_Comm comm, int rc, const char *partial, const char *path, int seal) {
    int rank = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) rc = rc ? rc : ch_err_set(CH_EMPI, __FILE__, __LINE__, "MPI_Comm_rank failed");
    rc = ch_mpi_agree(comm, rc);
    int prc = 0;
    if (rank == 0) {
        if (rc) ch_out_discard(partial);
        else prc = seal ? ch_out_seal_publish(partial, path) : ch_out_publish(partial, path);
        if (prc) ch_out_discard(partial);
    }
    prc = ch_mpi_agree(comm, prc);
    return rc ? rc : prc;
}
