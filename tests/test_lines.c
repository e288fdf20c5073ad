/* test_lines.c (MPI, 1..4 ranks) - the byte-range line plan gives every record exactly once, in
 * file order, whatever the rank count: blank lines skipped, CRLF kept, a last line without '\n',
 * lines longer than a rank's byte range, and an empty file. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "lines.h"

static int check(const char *path, const char *content, MPI_Comm comm) {
    int rank, size, fails = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ch_lines l;
    if (ch_lines_plan(path, comm, &l)) {
        fprintf(stderr, "rank %d: %s\n", rank, ch_err_msg());
        return 1;
    }
    /* serial reference: non-blank lines */
    int64_t starts[64], lens[64], lines[64], n = 0, pos = 0, phys = 0, clen = (int64_t)strlen(content);
    while (pos < clen) {
        const char *nl = memchr(content + pos, '\n', (size_t)(clen - pos));
        int64_t len = nl ? nl - (content + pos) : clen - pos, blank = 1;
        for (int64_t i = 0; i < len; i++)
            if (!strchr(" \t\r", content[pos + i])) blank = 0;
        phys++;
        if (!blank) starts[n] = pos, lines[n] = phys, lens[n++] = len;
        pos += len + 1;
    }
    if (l.total != n) fails++;
    for (int64_t i = 0; i < l.count; i++) {
        int64_t g = l.first + i;
        if (g >= n || l.start[i] != starts[g] || l.len[i] != lens[g] || l.line[i] != lines[g]) fails++;
    }
    int64_t sum = l.count;
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_INT64_T, MPI_SUM, comm);
    if (sum != n) fails++;
    ch_lines_free(&l);
    return fails;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, fails = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *cases[] = {
        "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n",
        "\n\n{\"id\":\"a\"}\r\n   \n{\"id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}\n{\"x\":1}",
        "",
        "{\"only\":1}",
        "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n",
    };
    char path[256];
    snprintf(path, sizeof path, "/tmp/ch_lines_%d.jsonl", rank == 0 ? (int)getpid() : 0);
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (rank == 0) {
            FILE *f = fopen(path, "wb");
            fputs(cases[c], f);
            fclose(f);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        int bad = check(path, cases[c], MPI_COMM_WORLD);
        if (bad) fprintf(stderr, "rank %d: case %zu: %d mismatches\n", rank, c, bad);
        fails += bad;
        MPI_Barrier(MPI_COMM_WORLD);
    }
    /* a missing file is an error on every rank */
    ch_lines l;
    if (ch_lines_plan("/nonexistent/x.jsonl", MPI_COMM_WORLD, &l) == 0) fails++;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        unlink(path);
        printf("test_lines: %s\n", fails ? "FAILED" : "ok");
    }
    MPI_Finalize();
    return fails ? 1 : 0;
}
