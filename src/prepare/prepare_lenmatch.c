/* prepare_lenmatch.c - probeset --match-length (prepare.h): keep per class the same number of
 * records in every length bin, so no class can be told by the length of its texts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "err.h"
#include "prepare.h"

/* Bin edges e_0 = 1, e_{i+1} = e_i + max(1, e_i / 8) (integer division): lengths in one bin
 * differ by less than 1/8 from 8 on, the same edges for any input, and exact in C and Python. */
static long length_bin(long len) {
    long e = 1, b = 0;
    for (;;) {
        long next = e + (e / 8 > 1 ? e / 8 : 1);
        if (next > len) return b;
        e = next;
        b++;
    }
}

typedef struct {
    long *count; /* [5][nb]: candidates per class and bin */
    long *quota; /* [nb]: records kept per class in each bin */
    long nb;
} bins;

/* Spread n over the bins in proportion to q (sum Q), the same for every class: floor(n q_b / Q),
 * the rest one each to the largest remainders (n q_b mod Q), ties to the smaller bin. */
static int scale_quota(long *q, long nb, long n, long total) {
    long given = 0;
    long *rem = malloc((size_t)nb * sizeof *rem);
    if (!rem) CH_FAIL(CH_ENOMEM, "out of memory matching lengths");
    for (long b = 0; b < nb; b++) {
        unsigned long long x = (unsigned long long)n * (unsigned long long)q[b];
        rem[b] = (long)(x % (unsigned long long)total);
        q[b] = (long)(x / (unsigned long long)total);
        given += q[b];
    }
    for (; given < n; given++) {
        long best = -1;
        for (long b = 0; b < nb; b++)
            if (rem[b] >= 0 && (best < 0 || rem[b] > rem[best])) best = b;
        q[best]++;
        rem[best] = -1;
    }
    free(rem);
    return 0;
}

static int make_bins(long n, const int *cap, const long *len, const int present[5], bins *bn, long **binof) {
    long *bi = malloc((size_t)(n ? n : 1) * sizeof *bi);
    if (!bi) CH_FAIL(CH_ENOMEM, "out of memory matching lengths");
    bn->nb = 1;
    for (long i = 0; i < n; i++) {
        bi[i] = length_bin(len[i]);
        if (bi[i] + 1 > bn->nb) bn->nb = bi[i] + 1;
    }
    bn->count = calloc((size_t)(5 * bn->nb), sizeof *bn->count);
    bn->quota = calloc((size_t)bn->nb, sizeof *bn->quota);
    if (!bn->count || !bn->quota) {
        free(bi);
        CH_FAIL(CH_ENOMEM, "out of memory matching lengths");
    }
    for (long i = 0; i < n; i++) bn->count[cap[i] * bn->nb + bi[i]]++;
    for (long b = 0; b < bn->nb; b++) {
        long q = -1;
        for (int c = 0; c < 5; c++)
            if (present[c] && (q < 0 || bn->count[c * bn->nb + b] < q)) q = bn->count[c * bn->nb + b];
        bn->quota[b] = q < 0 ? 0 : q;
    }
    *binof = bi;
    return 0;
}

/* The lower median (element (k-1)/2 of the sorted k) of class c's lengths, of all or of the kept. */
static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long median_len(long n, const int *cap, const long *len, const char *keep, int c, long *tmp) {
    long k = 0;
    for (long i = 0; i < n; i++)
        if (cap[i] == c && (!keep || keep[i])) tmp[k++] = len[i];
    if (!k) return 0;
    qsort(tmp, (size_t)k, sizeof *tmp, cmp_long);
    return tmp[(k - 1) / 2];
}

static void report(long n, const int *cap, const long *len, const char *keep, const int present[5], long m) {
    long *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    if (!tmp) return;
    for (int c = 0; c < 5; c++) {
        if (!present[c]) continue;
        long all = 0;
        for (long i = 0; i < n; i++) all += cap[i] == c;
        fprintf(stderr,
                "prepare probeset --match-length: %-12s %ld of %ld kept, median length %ld -> %ld characters\n",
                ch_capability_names[c], m, all, median_len(n, cap, len, NULL, c, tmp),
                median_len(n, cap, len, keep, c, tmp));
    }
    free(tmp);
}

int ch_prep_match_length(long n, const int *cap, const long *len, const int present[5], int64_t per_class,
                         char *keep, long *kept) {
    bins bn = {0};
    long *bi = NULL;
    CH_TRY(make_bins(n, cap, len, present, &bn, &bi));
    long total = 0;
    int rc = 0;
    for (long b = 0; b < bn.nb; b++) total += bn.quota[b];
    if (total == 0)
        CH_FAIL_GOTO(done, CH_EFORMAT,
                     "probeset --match-length: no length bin holds records of every class (the classes' lengths do "
                     "not overlap): choose sources of comparable lengths");
    if (per_class > total)
        CH_FAIL_GOTO(done, CH_EARG, "probeset --per-class %ld but --match-length keeps only %ld records per class",
                     (long)per_class, total);
    if (per_class >= 0) CH_TRY_GOTO(scale_quota(bn.quota, bn.nb, (long)per_class, total), done);
    /* Smallest keys first within each class and bin: the items come sorted by key. */
    long *taken = calloc((size_t)(5 * bn.nb), sizeof *taken);
    if (!taken) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory matching lengths");
    for (long i = 0; i < n; i++) {
        long *t = &taken[cap[i] * bn.nb + bi[i]];
        keep[i] = *t < bn.quota[bi[i]];
        *t += keep[i];
    }
    free(taken);
    *kept = per_class >= 0 ? (long)per_class : total;
    report(n, cap, len, keep, present, *kept);
done:
    free(bi);
    free(bn.count);
    free(bn.quota);
    return rc;
}
