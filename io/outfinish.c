/* outfinish.c - see outfinish.h. */
#include "outfinish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "agree.h"
#include "err.h"
#include "outpath.h"

int ch_out_finish(MPI_Comm comm, int rc, const char *partial, const char *path, int seal) {
    int rank = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) rc = rc ? rc : ch_err_set(CH_EMPI, __FILE__, __LINE__, "MPI_Comm_rank failed");
    rc = ch_mpi_agree(comm, rc);
    int prc = 0;
    if (rank == 0) {
        if (rc) ch_out_discard(partial);
        else prc = seal ? ch_out_seal_publish(partial, path) : ch_out_publish(partial, path);
        if (prc) ch_out_discard(partial);
    }
    prc = ch_mpi_agree(comm, prc);
    return rc ? rc : prc;
}

int ch_out_space_check(MPI_Comm comm, const char *path, double need) {
    int rank = 0, rc = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS) CH_FAIL(CH_EMPI, "MPI_Comm_rank failed");
    if (rank == 0) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *(slash == dir ? slash + 1 : slash) = 0;
        else snprintf(dir, sizeof dir, ".");
        struct statvfs sv;
        double have = statvfs(dir, &sv) ? need : (double)sv.f_bavail * sv.f_frsize; /* unknown: let the writes tell */
        if (need > have)
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: not enough space: it needs about %.1f KiB more, the file system has %.1f KiB free",
                            path, need / 1024, have / 1024);
    }
    return ch_mpi_agree(comm, rc);
}

int ch_out_set_add(ch_out_set *s, const char *path, const char **partial) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **p = realloc(s->path, sizeof *p * (size_t)cap), **q = p ? realloc(s->partial, sizeof *q * (size_t)cap) : NULL;
        if (p) s->path = p;
        if (q) s->partial = q;
        if (!p || !q) CH_FAIL(CH_ENOMEM, "out of memory for the output list");
        s->cap = cap;
    }
    char buf[4200];
    CH_TRY(ch_out_partial_name(path, buf, sizeof buf));
    s->path[s->n] = strdup(path);
    s->partial[s->n] = strdup(buf);
    if (!s->path[s->n] || !s->partial[s->n]) {
        free(s->path[s->n]), free(s->partial[s->n]);
        CH_FAIL(CH_ENOMEM, "out of memory for the output list");
    }
    *partial = s->partial[s->n++];
    return 0;
}

int ch_out_set_finish(MPI_Comm comm, int rc, ch_out_set *s) {
    for (int i = 0; i < s->n; i++) rc = ch_out_finish(comm, rc, s->partial[i], s->path[i], 0);
    return rc;
}

void ch_out_set_free(ch_out_set *s, int discard) {
    for (int i = 0; i < s->n; i++) {
        if (discard) ch_out_discard(s->partial[i]);
        free(s->path[i]), free(s->partial[i]);
    }
    free(s->path), free(s->partial);
    memset(s, 0, sizeof *s);
}
