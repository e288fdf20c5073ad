/* mpicheck.c - see mpicheck.h. */
#include "mpicheck.h"

#include <string.h>

int ch_mpi_check(int mpirc, const char *call, const char *file, int line) {
    if (mpirc == MPI_SUCCESS) return 0;
    char why[MPI_MAX_ERROR_STRING + 1] = "";
    int n = 0;
    if (MPI_Error_string(mpirc, why, &n) != MPI_SUCCESS || n <= 0) strcpy(why, "unknown MPI error");
    why[n > 0 && n <= MPI_MAX_ERROR_STRING ? n : (int)strlen(why)] = 0;
    /* the call's name up to its argument list: "MPI_Allreduce(...)" reads better than all of it */
    int len = (int)strcspn(call, "(");
    return ch_err_set(CH_EMPI, file, line, "%.*s failed: %s (error %d)", len, call, why, mpirc);
}
