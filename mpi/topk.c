/* topk.c - distributed top-k by radix selection, see topk.h. */
#include "topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpicheck.h"

/* Order-preserving map of a double to an unsigned key: a > b  <=>  key(a) > key(b). */
static uint64_t key_of(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    if (d == 0) u = 0; /* -0.0 and +0.0 are the same score */
    return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ch_topk_select(const double *score, const char *const *ids, int64_t n, int64_t k,
                   MPI_Comm comm, uint8_t *selected, double *kth_score) {
    *kth_score = NAN;
    int64_t local_nan = 0, total = 0;
    for (int64_t i = 0; i < n; i++) local_nan += isnan(score[i]) != 0;
    int64_t counts[2] = {local_nan, n}, sums[2];
    CH_MPI_TRY(MPI_Allreduce(counts, sums, 2, MPI_INT64_T, MPI_SUM, comm));
    if (sums[0]) CH_FAIL(CH_EARG, "top-k: %lld scores are NaN", (long long)sums[0]);
    total = sums[1];
    if (k <= 0 || total == 0) {
        memset(selected, 0, (size_t)n);
        return 0;
    }
    if (k >= total) {
        memset(selected, 1, (size_t)n);
        double mn = INFINITY, gmn;
        for (int64_t i = 0; i < n; i++) mn = score[i] < mn ? score[i] : mn;
        CH_MPI_TRY(MPI_Allreduce(&mn, &gmn, 1, MPI_DOUBLE, MPI_MIN, comm));
        *kth_score = gmn;
        return 0;
    }

    /* Radix-select the k-th largest key, most significant byte first. */
    uint64_t prefix = 0, mask = 0;
    int64_t need = k; /* how many of the rows matching prefix we still must take */
    for (int b = 7; b >= 0; b--) {
        int64_t hist[256] = {0}, ghist[256];
        for (int64_t i = 0; i < n; i++) {
            uint64_t key = key_of(score[i]);
            if ((key & mask) == prefix) hist[(key >> (8 * b)) & 0xff]++;
        }
        CH_MPI_TRY(MPI_Allreduce(hist, ghist, 256, MPI_INT64_T, MPI_SUM, comm));
        int bucket = 255;
        for (; bucket > 0; bucket--) {
            if (ghist[bucket] >= need) break;
            need -= ghist[bucket];
        }
        prefix |= (uint64_t)bucket << (8 * b);
        mask |= 0xffull << (8 * b);
    }
    /* prefix is the k-th key; rows above it are in, `need` rows equal to it are in. */
    int64_t nties = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t key = key_of(score[i]);
        selected[i] = key > prefix;
        nties += key == prefix;
        if (key == prefix) *kth_score = score[i];
    }
    double kth_local = nties ? *kth_score : -INFINITY;
    CH_MPI_TRY(MPI_Allreduce(&kth_local, kth_score, 1, MPI_DOUBLE, MPI_MAX, comm));

    /* Break the tie by id: gather only the tied ids, take the `need` smallest. */
    int size;
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    int64_t bytes = 0;
    for (int64_t i = 0; i < n; i++)
        if (key_of(score[i]) == prefix) bytes += (int64_t)strlen(ids[i]) + 1;
    if (bytes > INT32_MAX) CH_FAIL(CH_EUNSUPPORTED, "top-k: %lld bytes of tied ids", (long long)bytes);
    int mybytes = (int)bytes, *rbytes = NULL, *displ = NULL;
    char *mine = NULL, *all = NULL, **sorted = NULL;
    int rc = 0;
    CH_TRY_GOTO(CH_ALLOC(rbytes, size, "tie counts"), done);
    CH_TRY_GOTO(CH_ALLOC(displ, size, "tie offsets"), done);
    CH_TRY_GOTO(CH_ALLOC(mine, mybytes + 1, "tied ids"), done);
    CH_MPI_TRY_GOTO(MPI_Allgather(&mybytes, 1, MPI_INT, rbytes, 1, MPI_INT, comm), done);
    int64_t tot = 0;
    for (int r = 0; r < size; r++) displ[r] = (int)tot, tot += rbytes[r];
    if (tot > INT32_MAX) CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "top-k: too many tied ids");
    char *w = mine;
    for (int64_t i = 0; i < n; i++)
        if (key_of(score[i]) == prefix) w = stpcpy(w, ids[i]) + 1;
    CH_TRY_GOTO(CH_ALLOC(all, tot + 1, "all tied ids"), done);
    CH_MPI_TRY_GOTO(MPI_Allgatherv(mine, mybytes, MPI_CHAR, all, rbytes, displ, MPI_CHAR, comm), done);
    int64_t ntot = 0;
    for (int64_t off = 0; off < tot; off += (int64_t)strlen(all + off) + 1) ntot++;
    CH_TRY_GOTO(CH_ALLOC(sorted, ntot, "tie order"), done);
    int64_t j = 0;
    for (int64_t off = 0; off < tot; off += (int64_t)strlen(all + off) + 1) sorted[j++] = all + off;
    qsort(sorted, (size_t)ntot, sizeof *sorted, cmp_str);
    /* the last id taken; ids equal to it (duplicates) are all taken or all left by position */
    const char *last = sorted[need - 1];
    int64_t taken_before = 0; /* tied ids strictly smaller than `last` */
    while (taken_before < ntot && strcmp(sorted[taken_before], last) < 0) taken_before++;
    int64_t dup_quota = need - taken_before; /* copies of `last` still to take (duplicate ids) */
    int64_t dup_seen_before = 0;             /* copies of `last` on lower ranks */
    int64_t my_dups = 0;
    for (int64_t i = 0; i < n; i++)
        if (key_of(score[i]) == prefix && !strcmp(ids[i], last)) my_dups++;
    CH_MPI_TRY_GOTO(MPI_Exscan(&my_dups, &dup_seen_before, 1, MPI_INT64_T, MPI_SUM, comm), done);
    int rank;
    CH_MPI_TRY_GOTO(MPI_Comm_rank(comm, &rank), done);
    if (rank == 0) dup_seen_before = 0;
    for (int64_t i = 0; i < n; i++) {
        if (key_of(score[i]) != prefix) continue;
        int c = strcmp(ids[i], last);
        if (c < 0)
            selected[i] = 1;
        else if (c == 0)
            selected[i] = dup_seen_before++ < dup_quota;
    }
done:
    free(rbytes), free(displ), free(mine), free(all), free(sorted);
    return rc;
}
