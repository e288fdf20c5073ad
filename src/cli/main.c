/* main.c - `capheads <stage> [options]`: initialise MPI, dispatch, print errors, map exit codes. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "stage.h"
#include "cpu_features.h"
#include "err.h"
#include "init.h"
#include "mpicheck.h"

static int ch_cmd_version(int argc, char **argv, MPI_Comm comm) {
    int rank = 0, n = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (rank) return 0;
    const ch_backend_reg *reg = ch_backend_registry(&n);
    printf("capheads %s (backends:", CAPHEADS_VERSION);
    for (int i = 0, first = 1; i < n; i++)
        if (reg[i].compiled_in) printf("%s %s", first ? "" : ",", reg[i].name), first = 0;
    printf(")\n");
    return 0;
}

static const ch_cmd commands[] = {
    {"version", "print the version and the backends compiled in", ch_cmd_version},
    {"prepare", "convert dataset formats (GSM8K, MMLU, BBH, ARC, CSQA, SQuAD, LESS) to JSONL records",
     ch_cmd_prepare},
    {"extract", "run the model over a JSONL corpus, write per-head outputs to one HDF5 archive",
     ch_cmd_extract},
    {"probe", "fit per-head capability probes on an activation archive", ch_cmd_probe},
    {"decompose", "capability mix of every target task (MMLU subject, BBH task, ...)", ch_cmd_decompose},
    {"select", "score the instruction pool per task, write the selected records", ch_cmd_select},
    {"inspect", "summarise a capheads file; --verify checks an archive is complete", ch_cmd_inspect},
};
static const int ncommands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f,
            "capheads %s - probe LLM attention heads for capabilities and select tuning data\n\n"
            "usage: [mpirun -n R] capheads <stage> [options]   (capheads <stage> --help for more)\n\n"
            "stages:\n",
            CAPHEADS_VERSION);
    for (int i = 0; i < ncommands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    /* OpenBLAS fell back to a generic core on a CPU with AVX2/AVX-512? Run again with the right one
     * (kernels/cpu_features.h): before MPI and before any thread starts. */
    ch_cpu_blas_fix(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("capheads %s\n", CAPHEADS_VERSION);
        return 0;
    }
    const ch_cmd *cmd = NULL;
    for (int i = 0; i < ncommands; i++)
        if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "capheads: unknown stage '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }

    if (ch_mpi_init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "capheads: MPI_Init_thread failed\n");
        return 1;
    }
    int rank = 0, size = 1;
    int rc = CH_MPI_RC(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (!rc) rc = CH_MPI_RC(MPI_Comm_size(MPI_COMM_WORLD, &size));
    if (!rc) rc = cmd->run(argc - 1, argv + 1, MPI_COMM_WORLD);
    if (rc) {
        /* Every failing rank reports; with several ranks, say which one. */
        if (size > 1)
            fprintf(stderr, "capheads %s [rank %d]: %s\n", cmd->name, rank, ch_err_msg());
        else
            fprintf(stderr, "capheads %s: %s\n", cmd->name, ch_err_msg());
        if (getenv("CAPHEADS_DEBUG")) fprintf(stderr, "  (raised at %s)\n", ch_err_where());
    }
    /* A stage that failed on some ranks only must not leave the others hanging in a collective:
     * stages reach agreement on errors before collective calls; here we only finalise. */
    int status = ch_err_exit_status(rc);
    if (CH_MPI_RC(MPI_Finalize()) && !rc) {
        fprintf(stderr, "capheads %s: %s\n", cmd->name, ch_err_msg());
        status = ch_err_exit_status(CH_EMPI);
    }
    return status;
}
