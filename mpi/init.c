/* init.c - see init.h. */
#include "init.h"

#include <mpi.h>
#include <stdlib.h>

int ch_mpi_init(int *argc, char ***argv) {
    /* before MPI_Init: Open MPI reads its MCA variables from the environment there */
    setenv("OMPI_MCA_fcoll", CH_MPI_FCOLL_DEFAULT, 0);
    int provided = 0;
    return MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
}
