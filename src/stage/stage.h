/* stage.h - the stage entry points of the capheads executable, and what every stage shares.
 *
 * Each stage is `int ch_cmd_<stage>(int argc, char **argv, MPI_Comm comm)`: argv[0] is the stage
 * name, the return value is a ch_errcode (message in ch_err_msg()). Stages print their own
 * results and progress (rank 0); errors are printed by main. */
#ifndef CH_STAGE_H
#define CH_STAGE_H

#include <mpi.h>

#include "lock.h"
#include "outpath.h"

typedef int (*ch_cmd_fn)(int argc, char **argv, MPI_Comm comm);

typedef struct {
    const char *name;
    const char *summary;
    ch_cmd_fn run;
} ch_cmd;

/* The table lives in src/cli/main.c; each stage room defines its entry point. */
int ch_cmd_prepare(int argc, char **argv, MPI_Comm comm);   /* src/prepare/prepare.c */
int ch_cmd_extract(int argc, char **argv, MPI_Comm comm);   /* src/extract/extract.c */
int ch_cmd_decompose(int argc, char **argv, MPI_Comm comm); /* src/select/decompose.c */
int ch_cmd_select(int argc, char **argv, MPI_Comm comm);    /* src/select/select.c */
int ch_cmd_inspect(int argc, char **argv, MPI_Comm comm);   /* src/inspect/inspect.c */
int ch_cmd_probe(int argc, char **argv, MPI_Comm comm);     /* src/probe/probe_stage.c */

/* Collective, before a stage writes anything: no output on an input or on another output
 * (ch_paths_check), and each output of `replace` (the first nreplace of out: the stage's own
 * results, not an appended --timing file) replaced only with --force. Rank 0 decides.
 * With lock (NULL: none), rank 0 also takes OUT.lock beside the first output (io/lock.h) for
 * the whole run, so that a second run writing the same output is refused naming the holder
 * (CH_EBUSY) instead of sharing its partial names; a stale lock (a killed run's) is taken over.
 * The caller refreshes it as it works and releases it at the end. */
int ch_stage_guard(MPI_Comm comm, const ch_path_role *in, int nin, const ch_path_role *out, int nout, int nreplace,
                   int force, ch_lock **lock);

#endif
