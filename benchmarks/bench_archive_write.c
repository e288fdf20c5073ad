/* bench_archive_write.c - time the collective archive writer on synthetic rows.
 *
 * usage: mpirun -n R bench_archive_write PATH N_ROWS LAYERS HEADS HEAD_DIM ROWS_PER_ROUND
 *
 * The rows are split as extract splits them: rank r owns a contiguous block of rounds and every
 * rank joins every collective round (empty selection when out of work). Timed: create, all
 * write rounds (data, done flags, the flushes the writer does), close, and an fsync of the file
 * by rank 0 so the figure is comparable with `dd conv=fsync`. The synthetic activations are
 * generated, and narrowed to the writer's layer-major binary16 (the form extract gets from the
 * device), before the clock starts. Rank 0 prints one line: "bytes seconds conv_seconds"
 * (bytes = the file's size on disk; conv_seconds = the slowest rank's time for the f32 ->
 * binary16 narrowing of its rows alone (ch_h5_narrow_f16, one thread), measured separately
 * after the run: the CPU work the writer did before the device took it over). bench_archive.sh
 * drives it against dd. A last argument `nosum` writes without the row checksums (/row_crc), to
 * measure what they cost. */
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "err.h"
#include "h5util.h"
#include "init.h"

static int bench(const char *path, int64_t n, int L, int H, int D, int64_t per_round, int no_checksums,
                 MPI_Comm comm) {
    int rank, size, rc = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    size_t width = (size_t)L * H * D;
    float *acts = NULL;
    CH_TRY(CH_ALLOC(acts, (size_t)per_round * width, "synthetic rows"));
    uint32_t s = 12345u + (uint32_t)rank;
    for (size_t i = 0; i < (size_t)per_round * width; i++) {
        s = s * 1664525u + 1013904223u;
        acts[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    const char **ids = malloc(sizeof(char *) * per_round), **tasks = malloc(sizeof(char *) * per_round);
    int32_t *labels = malloc(sizeof(int32_t) * per_round), *nt = malloc(sizeof(int32_t) * per_round);
    if (!ids || !tasks || !labels || !nt) {
        free(acts), free(ids), free(tasks), free(labels), free(nt);
        CH_FAIL(CH_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < per_round; i++) ids[i] = "record-000000", tasks[i] = "bench", labels[i] = (int32_t)(i % 5), nt[i] = 64;
    ch_archive_rows rows = {.ids = ids, .tasks = tasks, .labels = labels, .n_tokens = nt};
    /* the rows as extract hands them over: binary16, layer-major (every round the same rows) */
    uint16_t *lm = malloc(sizeof(uint16_t) * (size_t)per_round * width);
    if (!lm) {
        free(acts), free(ids), free(tasks), free(labels), free(nt);
        CH_FAIL(CH_ENOMEM, "out of memory");
    }
    ch_archive_pack_f16(acts, per_round, L, (size_t)H * D, lm);

    int64_t nb = (n + per_round - 1) / per_round;                 /* batches of per_round rows */
    int64_t b0 = nb * rank / size, b1 = nb * (rank + 1) / size;   /* this rank's block */
    int64_t rounds = (nb + size - 1) / size;                      /* the largest block */
    ch_archive_meta m = {.n_rows = n, .n_layers = L, .n_heads = H, .head_dim = D, .id_len = 13, .task_len = 5,
                         .model_config = "{}", .model_dir = "bench", .tokenizer_sha256 = "", .pool = "last",
                         .input_path = "bench", .input_sha256 = "", .command_line = "bench_archive_write",
                         .no_checksums = no_checksums};
    ch_archive *a = NULL;
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    rc = ch_archive_create(path, &m, comm, &a);
    for (int64_t r = 0; !rc && r < rounds; r++) {
        int64_t b = b0 + r, row0 = 0, cnt = 0;
        if (b < b1) row0 = b * per_round, cnt = (row0 + per_round > n ? n : row0 + per_round) - row0;
        rc = ch_archive_write_rows(a, row0, cnt, lm, NULL, &rows);
    }
    if (a) {
        int crc = ch_archive_close(a);
        if (!rc) rc = crc;
    }
    if (!rc && rank == 0) {
        int fd = open(path, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: fsync failed", path);
        if (fd >= 0) close(fd);
    }
    MPI_Barrier(comm);
    double t = MPI_Wtime() - t0;
    /* the conversion alone, same rows per rank, the writer's narrowing (one thread) */
    uint16_t *half = malloc(sizeof(uint16_t) * (size_t)per_round * width);
    double tc = MPI_Wtime();
    volatile uint16_t sink = 0;
    for (int64_t b = b0; half && b < b1; b++) {
        int64_t cnt = ((b + 1) * per_round > n ? n : (b + 1) * per_round) - b * per_round;
        ch_h5_narrow_f16(acts, half, (size_t)cnt * width);
        sink ^= half[0];
    }
    tc = MPI_Wtime() - tc;
    free(half);
    MPI_Allreduce(MPI_IN_PLACE, &tc, 1, MPI_DOUBLE, MPI_MAX, comm);
    struct stat st;
    if (!rc && rank == 0) {
        if (stat(path, &st) != 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: stat failed", path);
        else printf("%lld %.6f %.6f\n", (long long)st.st_size, t, tc);
    }
    free(acts), free(lm), free(ids), free(tasks), free(labels), free(nt);
    return rc;
}

int main(int argc, char **argv) {
    ch_mpi_init(&argc, &argv); /* the stages' MPI-IO defaults (mpi/init.h) */
    int rc = 0;
    if (argc != 7 && !(argc == 8 && !strcmp(argv[7], "nosum"))) {
        fprintf(stderr, "usage: bench_archive_write PATH N_ROWS LAYERS HEADS HEAD_DIM ROWS_PER_ROUND [nosum]\n");
        rc = CH_EARG;
    } else {
        rc = bench(argv[1], atoll(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoll(argv[6]),
                   argc == 8, MPI_COMM_WORLD);
        if (rc) fprintf(stderr, "bench_archive_write: %s\n", ch_err_msg());
    }
    MPI_Finalize();
    return rc ? 1 : 0;
}
