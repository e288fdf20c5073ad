/* lines.c - see lines.h. */
#include "lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agree.h"
#include "err.h"
#include "mpicheck.h"

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int grow(int64_t **a, size_t n) {
    int64_t *p = realloc(*a, n * sizeof *p);
    if (!p) return -1;
    *a = p;
    return 0;
}

static int push(ch_lines *l, size_t *cap, int64_t start, int64_t len, int64_t line) {
    if ((size_t)l->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        if (grow(&l->start, nc) || grow(&l->len, nc) || grow(&l->line, nc))
            CH_FAIL(CH_ENOMEM, "out of memory indexing lines");
        *cap = nc;
    }
    l->start[l->count] = start;
    l->len[l->count] = len;
    l->line[l->count++] = line;
    return 0;
}

/* Scan lines starting in [lo, hi) of f; *nphys counts them all, blank ones included, and
 * l->line holds local (0-based) physical indices until ch_lines_plan adds the global offset. */
static int scan(FILE *f, const char *path, int64_t lo, int64_t hi, ch_lines *l, int64_t *nphys) {
    size_t cap = 0;
    int64_t pos = lo;
    if (lo > 0) { /* a line starts at lo only if the byte before it ends a line */
        if (fseeko(f, lo - 1, SEEK_SET)) CH_FAIL(CH_EIO, "%s: seek failed: %s", path, strerror(errno));
        int c = fgetc(f);
        if (c != '\n') { /* skip the rest of a line that started before lo */
            while ((c = fgetc(f)) != EOF && c != '\n') {
            }
            pos = ftello(f);
        }
    } else if (fseeko(f, 0, SEEK_SET)) {
        CH_FAIL(CH_EIO, "%s: seek failed", path);
    }
    char *buf = NULL;
    size_t bcap = 0;
    while (pos < hi) {
        ssize_t n = getline(&buf, &bcap, f);
        if (n < 0) break;
        int64_t len = n && buf[n - 1] == '\n' ? n - 1 : n;
        if (!is_blank(buf, (size_t)len) && push(l, &cap, pos, len, *nphys)) {
            free(buf);
            return CH_ENOMEM;
        }
        (*nphys)++;
        pos += n;
    }
    int bad = ferror(f);
    free(buf);
    if (bad) CH_FAIL(CH_EIO, "%s: read error", path);
    return 0;
}

int ch_lines_plan(const char *path, MPI_Comm comm, ch_lines *out) {
    memset(out, 0, sizeof *out);
    int rank, size, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f)
        rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(fileno(f), &sb))
        rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot stat", path);
    int64_t nphys = 0, phys0 = 0;
    if (!rc) {
        int64_t S = sb.st_size;
        rc = scan(f, path, S * rank / size, S * (rank + 1) / size, out, &nphys);
    }
    if (f) fclose(f);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), fail);
    int64_t first = 0;
    CH_MPI_TRY_GOTO(MPI_Exscan(&out->count, &first, 1, MPI_INT64_T, MPI_SUM, comm), fail);
    CH_MPI_TRY_GOTO(MPI_Allreduce(&out->count, &out->total, 1, MPI_INT64_T, MPI_SUM, comm), fail);
    out->first = rank ? first : 0;
    CH_MPI_TRY_GOTO(MPI_Exscan(&nphys, &phys0, 1, MPI_INT64_T, MPI_SUM, comm), fail);
    if (!rank) phys0 = 0;
    for (int64_t i = 0; i < out->count; i++) out->line[i] += phys0 + 1;
    return 0;
fail:
    ch_lines_free(out);
    return rc;
}

void ch_lines_free(ch_lines *l) {
    free(l->start), free(l->len), free(l->line);
    memset(l, 0, sizeof *l);
}
