/* synth_archive.c - a synthetic activation archive of any shape, written by the real collective
 * writer, with the JSONL corpus it claims to come from (so select can check ids and hashes).
 * usage: [mpirun -n R] synth_archive OUT.h5 OUT.jsonl N L H D [--tasks K] [--labels] [--seed S]
 * Values: each row is a random mix of five fixed class patterns plus noise (labels/tasks follow
 * the dominant pattern), so probes and mixes computed on it are not degenerate. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "err.h"
#include "fsutil.h"

static unsigned long long rng_next(unsigned long long *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}
static float frand(unsigned long long *s) { return (float)((rng_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 7) {
        if (!rank) fprintf(stderr, "usage: synth_archive OUT.h5 OUT.jsonl N L H D [--tasks K] [--labels] [--seed S]\n");
        MPI_Finalize();
        return 2;
    }
    const char *out = argv[1], *jsonl = argv[2];
    int64_t N = atoll(argv[3]);
    int L = atoi(argv[4]), H = atoi(argv[5]), D = atoi(argv[6]), ntasks = 0, labels = 0;
    unsigned long long seed = 7;
    for (int i = 7; i < argc; i++) {
        if (!strcmp(argv[i], "--tasks") && i + 1 < argc) ntasks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--labels")) labels = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    }
    /* class of row i: a hash of i, the same for any rank count */
#define CLASS(i) ((int)(((unsigned long long)(i) * 0x9e3779b97f4a7c15ull) >> 61) % 5)
    if (rank == 0) {
        FILE *f = fopen(jsonl, "w");
        for (int64_t i = 0; i < N; i++) {
            fprintf(f, "{\"id\":\"row/%lld\",\"text\":\"synthetic %lld\"", (long long)i, (long long)i);
            if (labels) fprintf(f, ",\"label\":\"%s\"", ch_capability_names[CLASS(i)]);
            if (ntasks) fprintf(f, ",\"task\":\"task%d\"", (int)(i % ntasks));
            fprintf(f, "}\n");
        }
        fclose(f);
    }
    char hash[65] = {0};
    if (rank == 0 && ch_fs_sha256(jsonl, hash)) fprintf(stderr, "%s\n", ch_err_msg());
    MPI_Bcast(hash, 65, MPI_CHAR, 0, MPI_COMM_WORLD);
    ch_archive_meta m = {.n_rows = N, .n_layers = L, .n_heads = H, .head_dim = D, .id_len = 24, .task_len = 16,
                         .model_config = "{\"synthetic\":true}", .model_dir = "synthetic", .tokenizer_sha256 = "none",
                         .pool = "last", .input_path = jsonl, .input_sha256 = hash, .command_line = "synth_archive"};
    ch_archive *a;
    if (ch_archive_create(out, &m, MPI_COMM_WORLD, &a)) {
        fprintf(stderr, "synth_archive: %s\n", ch_err_msg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    size_t width = (size_t)L * H * D;
    float *pattern = malloc(sizeof(float) * 5 * width);
    unsigned long long ps = 12345;
    for (size_t i = 0; i < 5 * width; i++) pattern[i] = frand(&ps);
    const int64_t B = 64;
    int64_t lo = N * rank / size, hi = N * (rank + 1) / size, rounds = (hi - lo + B - 1) / B, maxr;
    MPI_Allreduce(&rounds, &maxr, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    float *acts = malloc(sizeof(float) * B * width);
    uint16_t *half = malloc(sizeof(uint16_t) * B * width);
    char (*ids)[24] = malloc(24 * B), (*tasks)[16] = malloc(16 * B);
    const char *idp[64], *tp[64];
    int32_t lab[64], nt[64];
    double t0 = MPI_Wtime();
    for (int64_t r = 0; r < maxr; r++) {
        int64_t r0 = lo + r * B, n = r0 < hi ? (hi - r0 < B ? hi - r0 : B) : 0;
        for (int64_t i = 0; i < n; i++) {
            unsigned long long s = seed ^ ((unsigned long long)(r0 + i) * 0x9e3779b97f4a7c15ull);
            int c = CLASS(r0 + i);
            for (size_t j = 0; j < width; j++) acts[i * width + j] = 0.7f * pattern[c * width + j] + 0.5f * frand(&s);
            snprintf(ids[i], 24, "row/%lld", (long long)(r0 + i));
            if (ntasks) snprintf(tasks[i], 16, "task%d", (int)((r0 + i) % ntasks));
            else tasks[i][0] = 0;
            idp[i] = ids[i], tp[i] = tasks[i], lab[i] = labels ? c : -1, nt[i] = 1;
        }
        ch_archive_pack_f16(acts, n, L, (size_t)H * D, half); /* the writer's form */
        ch_archive_rows rw = {.ids = idp, .tasks = tp, .labels = lab, .n_tokens = nt};
        if (ch_archive_write_rows(a, n ? r0 : 0, n, half, NULL, &rw)) {
            fprintf(stderr, "synth_archive: %s\n", ch_err_msg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    if (ch_archive_close(a)) fprintf(stderr, "synth_archive: %s\n", ch_err_msg());
    if (!rank)
        fprintf(stderr, "synth_archive: %lld rows [%d,%d,%d] in %.1f s\n", (long long)N, L, H, D, MPI_Wtime() - t0);
    free(pattern), free(acts), free(half), free(ids), free(tasks);
    MPI_Finalize();
    return 0;
}
