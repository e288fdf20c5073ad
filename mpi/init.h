/* init.h - MPI start-up for capheads' programs, with the MPI-IO defaults the archive wants.
 *
 * Open MPI picks its collective-write algorithm (the OMPIO "fcoll" component) at start-up from
 * the OMPI_MCA_fcoll variable; its default, vulcan, wrote the activation archive at 48% of dd
 * from 1 rank and 79% from 2 where dynamic_gen2 reached 79% and 101% (1 GiB, interleaved in the
 * same minutes, benchmarks/bench_archive_results.md). ch_mpi_init sets dynamic_gen2 unless the
 * variable is already set, so a choice made in the environment wins. A choice made only in an
 * Open MPI parameter file (openmpi-mca-params.conf) does not: the environment outranks it, so a
 * site that wants another component exports OMPI_MCA_fcoll. Other MPIs ignore the variable. */
#ifndef CH_MPI_INIT_H
#define CH_MPI_INIT_H

/* The defaults above, then MPI_Init_thread(MPI_THREAD_FUNNELED). Returns MPI's status. */
int ch_mpi_init(int *argc, char ***argv);

#endif
