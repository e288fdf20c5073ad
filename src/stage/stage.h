/* cli.h - the stage entry points of the capheads executable.
 *
 * Each stage is `int ch_cmd_<stage>(int argc, char **argv, MPI_Comm comm)`: argv[0] is the stage
 * name, the return value is a ch_errcode (message in ch_err_msg()). Stages print their own
 * results and progress (rank 0); errors are printed by main. */
#ifndef CH_CLI_H
#define CH_CLI_H

#include <mpi.h>

typedef int (*ch_cmd_fn)(int argc, char **argv, MPI_Comm comm);

typedef struct {
    const char *name;
    const char *summary;
    ch_cmd_fn run;
} ch_cmd;

/* The table lives in src/main.c; each stage module declares its entry point here. */
int ch_cmd_prepare(int argc, char **argv, MPI_Comm comm);   /* src/prepare.c */
int ch_cmd_extract(int argc, char **argv, MPI_Comm comm);   /* src/extract.c */
int ch_cmd_decompose(int argc, char **argv, MPI_Comm comm); /* src/decompose.c */
int ch_cmd_select(int argc, char **argv, MPI_Comm comm);    /* src/select.c */
int ch_cmd_inspect(int argc, char **argv, MPI_Comm comm);   /* src/inspect.c */
int ch_cmd_probe(int argc, char **argv, MPI_Comm comm); /* src/cmd_probe.c */

#endif
