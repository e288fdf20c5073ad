/* guard.c - see ch_stage_guard in stage.h. */
#include "stage.h"

#include "agree.h"
#include "err.h"

int ch_stage_guard(MPI_Comm comm, const ch_path_role *in, int nin, const ch_path_role *out, int nout, int nreplace,
                   int force) {
    int rank = 0, rc = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "MPI_Comm_rank failed");
    if (rank == 0) {
        rc = ch_paths_check(in, nin, out, nout);
        for (int i = 0; !rc && i < nreplace && i < nout; i++) rc = ch_out_may_replace(out[i].path, out[i].option, force);
    }
    CH_TRY(ch_mpi_agree(comm, rc));
    ch_out_kill_point("start"); /* fault injection (tests/test_faults.sh) */
    return 0;
}
