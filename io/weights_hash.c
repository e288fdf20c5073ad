/* weights_hash.c - see weights_hash.h. */
#include "weights_hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"


/* Digest of block b of file path (its bytes [b*BLOCK, min(size, (b+1)*BLOCK))). */
static int hash_block(const char *path, int64_t BLOCK, int64_t b, int64_t size, unsigned char *buf,
                      unsigned char md[32]) {
    FILE *f = fopen(path, "rb");
    if (!f) CH_FAIL(CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    int64_t off = b * BLOCK, n = size - off < BLOCK ? size - off : BLOCK;
    int bad = fseeko(f, (off_t)off, SEEK_SET) || fread(buf, 1, (size_t)n, f) != (size_t)n;
    fclose(f);
    if (bad) CH_FAIL(CH_EIO, "%s: read error at byte %lld", path, (long long)off);
    return ch_sha256(buf, (size_t)n, md);
}

int ch_weights_sha256(const char *const *files, int nfiles, MPI_Comm comm, char hex[65], double *bytes) {
    return ch_weights_sha256_blocks(files, nfiles, (int64_t)64 << 20, comm, hex, bytes);
}

int ch_weights_sha256_blocks(const char *const *files, int nfiles, int64_t BLOCK, MPI_Comm comm, char hex[65],
                             double *bytes) {
    int rank = 0, size = 1, rc = 0;
    int64_t nblocks = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        CH_FAIL(CH_EMPI, "MPI_Comm_rank/size failed while hashing the weights");
    int64_t *sizes = calloc((size_t)nfiles + 1, sizeof *sizes), *first = calloc((size_t)nfiles + 1, sizeof *first);
    unsigned char *digests = NULL, *all = NULL, *buf = NULL;
    if (!sizes || !first) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory hashing the weights");
    *bytes = 0;
    for (int i = 0; i < nfiles; i++) { /* every rank stats every file: block numbering agrees */
        struct stat sb;
        if (stat(files[i], &sb)) CH_FAIL_GOTO(out, CH_EIO, "%s: %s", files[i], strerror(errno));
        sizes[i] = (int64_t)sb.st_size;
        first[i + 1] = first[i] + (sizes[i] + BLOCK - 1) / BLOCK;
        *bytes += (double)sizes[i];
    }
    nblocks = first[nfiles];
    digests = calloc((size_t)nblocks + 1, 32);
    all = calloc((size_t)nblocks + 1, 32);
    if (!digests || !all) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory hashing the weights");
    for (int i = 0; i < nfiles && !rc; i++)
        for (int64_t b = first[i]; b < first[i + 1] && !rc; b++) {
            if (b % size != rank) continue;
            if (!buf && !(buf = malloc((size_t)BLOCK))) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory hashing the weights");
            rc = hash_block(files[i], BLOCK, b - first[i], sizes[i], buf, digests + 32 * b);
        }
out:;
    /* Everyone reaches the reduction, so a rank's failure is every rank's (the flag rides along). */
    int bad = rc != 0, anybad = 0;
    if (MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS && !rc)
        rc = ch_err_set(CH_EMPI, __FILE__, __LINE__, "MPI_Allreduce failed while hashing the weights");
    if (!rc && anybad) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "another rank could not hash the weights");
    if (!rc && MPI_Allreduce(digests, all, (int)(32 * nblocks), MPI_UNSIGNED_CHAR, MPI_BOR, comm) != MPI_SUCCESS)
        rc = ch_err_set(CH_EMPI, __FILE__, __LINE__, "MPI_Allreduce of the block digests failed");
    unsigned char md[32];
    if (!rc) rc = ch_sha256(all, (size_t)(32 * nblocks), md);
    if (!rc) ch_sha256_hex(md, hex);
    free(buf);
    free(all);
    free(digests);
    free(first);
    free(sizes);
    return rc;
}
