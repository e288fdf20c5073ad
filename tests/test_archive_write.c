/* test_archive_write.c (MPI, 1..4 ranks) - the collective archive writer, alone (no model):
 *  - rows written in ragged rounds (blocks of 0..3 rows dealt round-robin, ranks running out of
 *    work join with empty selections) land at their index with binary16 values equal to
 *    ch_f32_to_f16 of the input (narrowed and made layer-major by ch_archive_pack_f16, the form
 *    the device hands extract), strings/labels/n_tokens exact, every row done, complete set;
 *  - the file is byte-identical to one written by a single process in one round;
 *  - a partial run is marked incomplete with exactly its rows done, and resuming it yields the
 *    same bytes as the uninterrupted run;
 *  - resume with another pooling, model config, tokenizer, corpus, shape or --batch-tokens is
 *    refused on every rank naming what differs, and leaves the archive complete; another
 *    --max-tokens (recorded, not part of the batch plan) is accepted;
 *  - a failure on one rank (rows out of range, an id longer than its column) fails the round
 *    on every rank without deadlock, and none of that round's rows is marked done.
 * Read back with the archive reader; tests/test_extract.sh reads archives with h5py. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "err.h"
#include "init.h"
#include "ops_math.h"

enum { N = 37, L = 3, H = 2, D = 5, W = L * H * D };

static int fails;
#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fails++;                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
        }                                                                                         \
    } while (0)

typedef struct {
    float acts[N][W];
    char id[N][16], task[N][8];
    const char *idp[N], *taskp[N];
    int32_t label[N], ntok[N];
} rows;

static void make_rows(rows *r) {
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < W; j++) r->acts[i][j] = (float)(i * 7 + j) * 0.0123f - 1.3f;
        r->acts[i][0] = i % 2 ? 1e-6f : 70000.0f; /* a subnormal and an overflow to inf */
        snprintf(r->id[i], sizeof r->id[i], "rec-%d%s", i, i % 5 ? "" : "-long");
        snprintf(r->task[i], sizeof r->task[i], "%s", i % 3 ? (i % 2 ? "mmlu" : "bbh") : "");
        r->idp[i] = r->id[i], r->taskp[i] = r->task[i];
        r->label[i] = i % 6 - 1, r->ntok[i] = i + 1;
    }
}

static ch_archive_meta meta(const char *pool) {
    ch_archive_meta m = {.n_rows = N, .n_layers = L, .n_heads = H, .head_dim = D, .id_len = 12, .task_len = 4,
                         .model_config = "{\"test\":1}", .model_dir = "m", .tokenizer_sha256 = "abc", .pool = pool,
                         .input_path = "in.jsonl", .input_sha256 = "def", .command_line = "test",
                         .batch_tokens = 700, .max_tokens = 8192};
    return m;
}

/* The writer takes the rows as the device hands them to extract: binary16, layer-major. The
 * test's rows are f32 [n][L][H*D]: ch_archive_pack_f16 narrows them (ch_f32_to_f16) first. */
static int write_f32(ch_archive *a, int64_t row0, int64_t n, const float *acts, const char *const *ids,
                     const char *const *tasks, const int32_t *labels, const int32_t *ntok) {
    uint16_t *half = malloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1) * W);
    if (!half) return ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
    if (acts && n > 0) ch_archive_pack_f16(acts, n, L, H * D, half);
    ch_archive_rows rw = {.ids = ids, .tasks = tasks, .labels = labels, .n_tokens = ntok};
    int rc = ch_archive_write_rows(a, row0, n, acts ? half : NULL, NULL, &rw);
    free(half);
    return rc;
}

/* Block b holds b % 4 rows (some blocks empty) and goes to rank b % size. Writes the blocks
 * b with keep(b) true, one block per collective round. */
static int write_blocks(ch_archive *a, const rows *r, int (*keep)(int), MPI_Comm comm) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int starts[64], lens[64], nb = 0, mine[64], nmine = 0;
    for (int row = 0, b = 0; row < N; b++) {
        int len = b % 4 < N - row ? b % 4 : N - row;
        starts[nb] = row, lens[nb] = len, nb++, row += len;
    }
    for (int b = 0; b < nb; b++)
        if (b % size == rank && keep(b)) mine[nmine++] = b;
    int rounds = nmine;
    MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT, MPI_MAX, comm);
    for (int k = 0; k < rounds; k++) {
        int row0 = k < nmine ? starts[mine[k]] : 0, n = k < nmine ? lens[mine[k]] : 0;
        CH_TRY(write_f32(a, row0, n, n ? r->acts[row0] : NULL, r->idp + row0, r->taskp + row0,
                                     r->label + row0, r->ntok + row0));
    }
    return 0;
}
static int keep_all(int b) { return 1; }
static int keep_even(int b) { return b % 2 == 0; }
static int keep_odd(int b) { return b % 2 == 1; }

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*len + 1);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) free(b), b = NULL;
    fclose(f);
    return b;
}

static int same_bytes(const char *p, const char *q) {
    long lp = 0, lq = 0;
    char *a = slurp(p, &lp), *b = slurp(q, &lq);
    int same = a && b && lp == lq && memcmp(a, b, (size_t)lp) == 0;
    free(a), free(b);
    return same;
}

/* Every row of a complete archive equals the input. */
static void check_contents(const char *path, const rows *r, MPI_Comm comm) {
    ch_archive_reader *rd = NULL;
    if (ch_archive_open_read(path, comm, &rd)) {
        CHECK(0, "open_read: %s", ch_err_msg());
        return;
    }
    ch_archive_info info;
    static float got[N][W];
    char *ids[N], *tasks[N];
    int32_t lab[N], nt[N];
    uint8_t done[N];
    if (ch_archive_get_info(rd, &info)) {
        CHECK(0, "get_info: %s", ch_err_msg());
        ch_archive_close_read(rd);
        return;
    }
    CHECK(info.n_rows == N && info.n_layers == L && info.n_heads == H && info.head_dim == D, "shape");
    CHECK(info.complete == 1 && info.n_done == N, "complete %d, n_done %lld", info.complete, (long long)info.n_done);
    CHECK(!strcmp(info.pool, "last") && !strcmp(info.created, "2023-11-14T22:13:20Z"), "pool %s created %s",
          info.pool, info.created);
    ch_archive_info_free(&info);
    CHECK(ch_archive_read_acts(rd, 0, N, &got[0][0]) == 0, "read_acts: %s", ch_err_msg());
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < W; j++) {
            float want = ch_f16_to_f32(ch_f32_to_f16(r->acts[i][j]));
            if (memcmp(&want, &got[i][j], 4)) bad++;
        }
    CHECK(bad == 0, "%d activation values differ from binary16 of the input", bad);
    CHECK(got[0][0] > 65504.0f && got[1][0] > 0.0f && got[1][0] < 6.2e-5f, "inf %g subnormal %g", got[0][0], got[1][0]);
    int cols = ch_archive_read_labels(rd, 0, N, lab) == 0 && ch_archive_read_n_tokens(rd, 0, N, nt) == 0 &&
               ch_archive_read_done(rd, 0, N, done) == 0;
    CHECK(cols, "columns: %s", ch_err_msg());
    for (int i = 0; cols && i < N; i++)
        CHECK(lab[i] == r->label[i] && nt[i] == r->ntok[i] && done[i] == 1, "row %d columns", i);
    if (ch_archive_read_ids(rd, 0, N, ids) == 0) {
        for (int i = 0; i < N; i++) CHECK(!strcmp(ids[i], r->id[i]), "row %d: id '%s'", i, ids[i]);
        ch_archive_free_strings(ids, N);
    } else CHECK(0, "read_ids: %s", ch_err_msg());
    if (ch_archive_read_tasks(rd, 0, N, tasks) == 0) {
        for (int i = 0; i < N; i++) CHECK(!strcmp(tasks[i], r->task[i]), "row %d: task '%s'", i, tasks[i]);
        ch_archive_free_strings(tasks, N);
    } else CHECK(0, "read_tasks: %s", ch_err_msg());
    ch_archive_close_read(rd);
}

static void test_rows_land_at_their_index_for_any_rank_count(const char *dir, const rows *r, MPI_Comm comm) {
    char p[300];
    snprintf(p, sizeof p, "%s/full.h5", dir);
    ch_archive_meta m = meta("last");
    ch_archive *a = NULL;
    int rc = ch_archive_create(p, &m, comm, &a);
    if (!rc) rc = write_blocks(a, r, keep_all, comm);
    int crc = a ? ch_archive_close(a) : 0;
    CHECK(rc == 0 && crc == 0, "write: %s", ch_err_msg());
    check_contents(p, r, comm);
}

static void test_archive_bytes_do_not_depend_on_ranks(const char *dir, const rows *r, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/full.h5", dir);
    snprintf(q, sizeof q, "%s/serial.h5", dir);
    if (rank == 0) { /* one process, one round of all rows */
        ch_archive_meta m = meta("last");
        ch_archive *a = NULL;
        int rc = ch_archive_create(q, &m, MPI_COMM_SELF, &a);
        if (!rc) rc = write_f32(a, 0, N, r->acts[0], r->idp, r->taskp, r->label, r->ntok);
        int crc = a ? ch_archive_close(a) : 0;
        CHECK(rc == 0 && crc == 0, "serial write: %s", ch_err_msg());
        CHECK(same_bytes(p, q), "the archive written by the ranks differs from the single-process one");
    }
    MPI_Barrier(comm);
}

static void test_partial_run_is_incomplete_and_resume_completes(const char *dir, const rows *r, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char p[300], full[300];
    snprintf(p, sizeof p, "%s/resumed.h5", dir);
    snprintf(full, sizeof full, "%s/full.h5", dir);
    ch_archive_meta m = meta("last");
    ch_archive *a = NULL;
    int rc = ch_archive_create(p, &m, comm, &a);
    if (!rc) rc = write_blocks(a, r, keep_even, comm);
    int crc = a ? ch_archive_close(a) : 0;
    CHECK(rc == 0 && crc == 0, "partial write: %s", ch_err_msg());

    /* expected mask: rows of even blocks */
    uint8_t want[N], got[N];
    for (int row = 0, b = 0; row < N; b++)
        for (int k = 0; k < b % 4 && row < N; k++) want[row++] = b % 2 == 0;
    int nwant = 0;
    for (int i = 0; i < N; i++) nwant += want[i];
    ch_archive_reader *rd = NULL;
    ch_archive_info info;
    CHECK(ch_archive_open_read(p, comm, &rd) == 0, "open: %s", ch_err_msg());
    if (rd && ch_archive_get_info(rd, &info) == 0) {
        CHECK(info.complete == 0 && info.n_done == nwant, "partial: complete %d n_done %lld want %d", info.complete,
              (long long)info.n_done, nwant);
        ch_archive_info_free(&info);
        CHECK(ch_archive_read_done(rd, 0, N, got) == 0 && !memcmp(got, want, N), "done mask of the partial run");
        ch_archive_close_read(rd);
    }

    a = NULL;
    rc = ch_archive_open_resume(p, &m, comm, &a);
    CHECK(rc == 0, "open_resume: %s", ch_err_msg());
    if (!rc) {
        CHECK(ch_archive_done(a, 0, N, got) == 0 && !memcmp(got, want, N), "resume sees the done mask");
        rc = write_blocks(a, r, keep_odd, comm);
        crc = ch_archive_close(a);
        CHECK(rc == 0 && crc == 0, "resume write: %s", ch_err_msg());
    }
    check_contents(p, r, comm);
    MPI_Barrier(comm);
    if (rank == 0) CHECK(same_bytes(p, full), "resumed archive differs from the uninterrupted one");
}

/* Each differing input is refused on every rank, naming what differs, and leaves the archive
 * as it was (complete). */
static void test_resume_refuses_other_model_input_or_pooling(const char *dir, MPI_Comm comm) {
    char p[300];
    snprintf(p, sizeof p, "%s/full.h5", dir);
    for (int k = 0; k < 6; k++) {
        ch_archive_meta m = meta("last");
        const char *names[] = {"pool", "model_config", "tokenizer_sha256", "input_sha256", "shape",
                               "written with --batch-tokens 700 but this run has --batch-tokens 800"};
        if (k == 0) m.pool = "mean";
        if (k == 1) m.model_config = "{\"test\":2}";
        if (k == 2) m.tokenizer_sha256 = "abd";
        if (k == 3) m.input_sha256 = "deg";
        if (k == 4) m.n_layers = L + 1;
        if (k == 5) m.batch_tokens = 800;
        ch_archive *a = NULL;
        int rc = ch_archive_open_resume(p, &m, comm, &a);
        CHECK(rc == CH_EMISMATCH && a == NULL, "%s: rc %d", names[k], rc);
        CHECK(strstr(ch_err_msg(), names[k]) != NULL, "message names %s: %s", names[k], ch_err_msg());
        if (a) ch_archive_close(a);
    }
    ch_archive_meta mt = meta("last");
    mt.max_tokens = 100;
    ch_archive *ma = NULL;
    int mrc = ch_archive_open_resume(p, &mt, comm, &ma);
    CHECK(mrc == 0 && ma, "resume with another max_tokens: rc %d: %s", mrc, ch_err_msg());
    if (ma) CHECK(ch_archive_close(ma) == 0, "close: %s", ch_err_msg());
    ch_archive_reader *rd = NULL;
    ch_archive_info info;
    int ok = ch_archive_open_read(p, comm, &rd) == 0 && ch_archive_get_info(rd, &info) == 0;
    CHECK(ok, "reopen: %s", ch_err_msg());
    if (ok) {
        CHECK(info.complete == 1 && info.n_done == N, "refused resumes changed the archive");
        ch_archive_info_free(&info);
    }
    if (rd) ch_archive_close_read(rd);
}

static void test_one_rank_failure_reaches_every_rank(const char *dir, const rows *r, MPI_Comm comm) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    char p[300];
    snprintf(p, sizeof p, "%s/fail.h5", dir);
    ch_archive_meta m = meta("last");
    m.id_len = 6; /* "rec-10-long" and friends do not fit */
    ch_archive *a = NULL;
    int rc = ch_archive_create(p, &m, comm, &a);
    CHECK(rc == 0, "create: %s", ch_err_msg());
    if (rc) return;
    int last = rank == size - 1;
    /* round 1: the last rank asks for rows past the end; round 2: it passes an id too long */
    int64_t row0 = last ? N - 1 : 2 * rank;
    rc = write_f32(a, row0, 2, r->acts[0], r->idp + 2, r->taskp, r->label, r->ntok);
    CHECK(rc != 0, "out-of-range rows on rank %d: round did not fail here", size - 1);
    row0 = last ? 10 : 2 * rank;
    const char *const *idp = last ? r->idp + 10 : r->idp + 2;
    rc = write_f32(a, row0, 1, r->acts[0], idp, r->taskp, r->label, r->ntok);
    CHECK(rc != 0, "too-long id on rank %d: round did not fail here", size - 1);
    uint8_t done[N];
    CHECK(ch_archive_done(a, 0, N, done) == 0, "done: %s", ch_err_msg());
    int ndone = 0;
    for (int i = 0; i < N; i++) ndone += done[i];
    CHECK(ndone == 0, "%d rows marked done by failed rounds", ndone);
    ch_archive_close(a);
    /* the close syncs: rows of rounds that failed on any rank must not be marked then either */
    ch_archive_reader *rd = NULL;
    ch_archive_info info;
    if (ch_archive_open_read(p, comm, &rd) == 0 && ch_archive_get_info(rd, &info) == 0) {
        CHECK(info.n_done == 0 && info.complete == 0, "after close: %lld rows marked done by failed rounds",
              (long long)info.n_done);
        ch_archive_info_free(&info);
    } else {
        CHECK(0, "reopen after failed rounds: %s", ch_err_msg());
    }
    if (rd) ch_archive_close_read(rd);
}

int main(int argc, char **argv) {
    char fcoll[64] = "";
    const char *pre = getenv("OMPI_MCA_fcoll");
    if (pre) snprintf(fcoll, sizeof fcoll, "%s", pre);
    ch_mpi_init(&argc, &argv); /* the stages' MPI-IO defaults (mpi/init.h) */
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* the collective-write default is set, and a value already there is left alone */
    const char *now = getenv("OMPI_MCA_fcoll");
    CHECK(now && !strcmp(now, pre ? fcoll : CH_MPI_FCOLL_DEFAULT), "OMPI_MCA_fcoll is '%s' after ch_mpi_init (was '%s')",
          now ? now : "(unset)", pre ? fcoll : "(unset)");
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    char dir[256] = "";
    if (rank == 0 && !mkdtemp(strcpy(dir, "/tmp/ch_archive_XXXXXX"))) dir[0] = 0;
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!dir[0]) MPI_Abort(MPI_COMM_WORLD, 1);
    static rows r;
    make_rows(&r);
    test_rows_land_at_their_index_for_any_rank_count(dir, &r, MPI_COMM_WORLD);
    test_archive_bytes_do_not_depend_on_ranks(dir, &r, MPI_COMM_WORLD);
    test_partial_run_is_incomplete_and_resume_completes(dir, &r, MPI_COMM_WORLD);
    test_resume_refuses_other_model_input_or_pooling(dir, MPI_COMM_WORLD);
    test_one_rank_failure_reaches_every_rank(dir, &r, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        printf("test_archive_write: %s (%d failed checks)\n", fails ? "FAIL" : "ok", fails);
    }
    MPI_Finalize();
    return fails ? 1 : 0;
}
