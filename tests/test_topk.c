/* test_topk.c (MPI, run with 1..4 ranks) - the distributed top-k selects exactly the rows a
 * serial sort by (score desc, id asc) selects, for any rank count, with heavy ties. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "topk.h"

#define N 997

typedef struct {
    double s;
    char id[16];
    int row;
} rec;

static int cmp(const void *a, const void *b) {
    const rec *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    int c = strcmp(x->id, y->id);
    return c ? c : x->row - y->row;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, fails = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    static rec all[N], sorted[N];
    unsigned long long r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        /* few distinct values -> many ties; a few negatives and zeros of both signs */
        all[i].s = (double)((int)((r >> 33) % 13) - 3) / 7.0;
        if (i % 101 == 0) all[i].s = -0.0;
        snprintf(all[i].id, sizeof all[i].id, "id%04d", (int)((r >> 20) % 600)); /* duplicate ids */
        all[i].row = i;
    }
    memcpy(sorted, all, sizeof all);
    qsort(sorted, N, sizeof(rec), cmp);
    int64_t ks[] = {0, 1, 5, 50, 333, 996, 997, 2000};
    int lo = (int)((long long)N * rank / size), hi = (int)((long long)N * (rank + 1) / size);
    int n = hi - lo;
    double *score = malloc(sizeof(double) * (n + 1));
    const char **ids = malloc(sizeof(char *) * (n + 1));
    uint8_t *sel = malloc(n + 1), *gsel = malloc(N);
    int *counts = malloc(sizeof(int) * size), *displ = malloc(sizeof(int) * size);
    for (int q = 0; q < size; q++) {
        displ[q] = (int)((long long)N * q / size);
        counts[q] = (int)((long long)N * (q + 1) / size) - displ[q];
    }
    for (int i = 0; i < n; i++) score[i] = all[lo + i].s, ids[i] = all[lo + i].id;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        double kth;
        if (ch_topk_select(score, ids, n, ks[t], MPI_COMM_WORLD, sel, &kth)) {
            fprintf(stderr, "rank %d: %s\n", rank, ch_err_msg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Allgatherv(sel, n, MPI_UINT8_T, gsel, counts, displ, MPI_UINT8_T, MPI_COMM_WORLD);
        if (rank == 0) {
            int64_t k = ks[t] > N ? N : ks[t];
            uint8_t expect[N] = {0};
            /* duplicates (same score and id) are taken in row order: qsort's row tie-break */
            for (int64_t i = 0; i < k; i++) expect[sorted[i].row] = 1;
            int64_t nsel = 0, bad = 0;
            for (int i = 0; i < N; i++) nsel += gsel[i], bad += gsel[i] != expect[i];
            if (nsel != k || bad) {
                fprintf(stderr, "k=%lld: selected %lld, %lld rows differ from the serial sort\n",
                        (long long)ks[t], (long long)nsel, (long long)bad);
                fails++;
            }
            if (k > 0 && kth != sorted[k - 1].s) {
                fprintf(stderr, "k=%lld: kth score %g, expected %g\n", (long long)ks[t], kth, sorted[k - 1].s);
                fails++;
            }
        }
    }
    /* NaN is refused on every rank */
    if (n > 0) score[0] = NAN;
    double kth;
    int rc = ch_topk_select(score, ids, n, 3, MPI_COMM_WORLD, sel, &kth);
    if (rc != CH_EARG || !strstr(ch_err_msg(), "NaN")) {
        fprintf(stderr, "rank %d: NaN scores not refused (rc %d)\n", rank, rc);
        fails++;
    }
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("test_topk on %d ranks: %s\n", size, fails ? "FAILED" : "ok");
    free(score), free(ids), free(sel), free(gsel), free(counts), free(displ);
    MPI_Finalize();
    return fails ? 1 : 0;
}
