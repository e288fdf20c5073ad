/* init.h - MPI start-up for capheads' programs, with the MPI-IO defaults the archive wants.
 *
 * Open MPI picks its collective-write algorithm (the OMPIO "fcoll" component) at start-up from
 * the OMPI_MCA_fcoll variable. The archive writer hands MPI-IO one contiguous buffer per layer
 * for one contiguous stretch of the file on each rank (io/archive_write.c), so the two-phase
 * aggregation of vulcan (Open MPI's default) and dynamic_gen2 only adds a shuffle of the bytes
 * between ranks: "individual", where each rank's part of the collective write goes straight to
 * the file, was faster from 2 and 4 ranks and level from 1 on this development VM's disk and
 * on tmpfs (benchmarks/bench_archive_results.md). On a parallel file system with many ranks per
 * storage target, aggregation may win again: export OMPI_MCA_fcoll=dynamic_gen2 (or vulcan).
 * ch_mpi_init sets CH_MPI_FCOLL_DEFAULT unless the variable is already set, so a choice made in
 * the environment wins. A choice made only in an Open MPI parameter file
 * (openmpi-mca-params.conf) does not: the environment outranks it, so a site that wants another
 * component exports OMPI_MCA_fcoll. Other MPIs ignore the variable. */
#ifndef CH_MPI_INIT_H
#define CH_MPI_INIT_H

#define CH_MPI_FCOLL_DEFAULT "individual"

/* The defaults above, then MPI_Init_thread(MPI_THREAD_FUNNELED). Returns MPI's status. */
int ch_mpi_init(int *argc, char ***argv);

#endif
