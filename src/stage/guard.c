/* guard.c - see ch_stage_guard in stage.h. */
#include "stage.h"

#include <stdio.h>
#include <string.h>

#include "agree.h"
#include "err.h"

/* OUT.lock beside the output: "sel/" locks as "sel.lock", never as a file inside the directory. */
static int take_lock(const char *path, ch_lock **lock) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) CH_FAIL(CH_EARG, "%s: path too long", path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--) p[n - 1] = 0;
    return ch_lock_take(p, 1, lock);
}

int ch_stage_guard(MPI_Comm comm, const ch_path_role *in, int nin, const ch_path_role *out, int nout, int nreplace,
                   int force, ch_lock **lock) {
    int rank = 0, rc = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "MPI_Comm_rank failed");
    if (lock) *lock = NULL;
    if (rank == 0) {
        rc = ch_paths_check(in, nin, out, nout);
        if (!rc && lock) rc = take_lock(out[0].path, lock);
        for (int i = 0; !rc && i < nreplace && i < nout; i++) rc = ch_out_may_replace(out[i].path, out[i].option, force);
        if (rc && lock) {
            ch_lock_release(*lock);
            *lock = NULL;
        }
    }
    CH_TRY(ch_mpi_agree(comm, rc));
    ch_out_kill_point("start"); /* fault injection (tests/test_faults.sh) */
    return 0;
}
