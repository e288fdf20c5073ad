/* provenance.c - see provenance.h. */
#include "provenance.h"

#include <hdf5.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "capability.h"
#include "err.h"
#include "h5util.h"
#include "mpicheck.h"

/* Rank 0's *s (NULL is "") on every rank. */
static int bcast_str(char **s, MPI_Comm comm) {
    int rank;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    long long len = rank == 0 && *s ? (long long)strlen(*s) : 0;
    CH_MPI_TRY(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm));
    if (rank != 0) {
        free(*s);
        *s = NULL;
    }
    int rc = 0;
    if (!*s) rc = CH_ALLOC(*s, len + 1, "attribute");
    CH_TRY(ch_mpi_agree(comm, rc));
    for (long long off = 0; off < len; off += 1 << 30) {
        int n = (int)(len - off < (1 << 30) ? len - off : (1 << 30));
        CH_MPI_TRY(MPI_Bcast(*s + off, n, MPI_CHAR, 0, comm));
    }
    (*s)[len] = 0;
    return 0;
}

int ch_select_bcast_hex(char hex[65], MPI_Comm comm) {
    CH_MPI_TRY(MPI_Bcast(hex, 65, MPI_CHAR, 0, comm));
    hex[64] = 0;
    return 0;
}

static int read_attrs(const char *path, ch_select_prov *p) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EIO, "%s: cannot open as an HDF5 file", path);
    struct { const char *name; char **dst; } a[] = {
        {"input_sha256", &p->input_sha256}, {"rows_sha256", &p->rows_sha256},
        {"weights_sha256", &p->weights_sha256}};
    int rc = 0;
    for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
        if ((rc = ch_h5_get_str(f, a[i].name, a[i].dst))) ch_err_wrap("%s: attribute %s: ", path, a[i].name);
    if (H5Fclose(f) < 0 && !rc) rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: close failed", path);
    return rc;
}

int ch_select_prov_read(const char *path, MPI_Comm comm, ch_select_prov *p) {
    memset(p, 0, sizeof *p);
    int rank, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (rank == 0) rc = read_attrs(path, p);
    CH_TRY(ch_mpi_agree(comm, rc));
    char **s[] = {&p->input_sha256, &p->rows_sha256, &p->weights_sha256};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) CH_TRY(bcast_str(s[i], comm));
    return 0;
}

void ch_select_prov_free(ch_select_prov *p) {
    free(p->input_sha256), free(p->rows_sha256), free(p->weights_sha256);
    memset(p, 0, sizeof *p);
}

/* A string with its NUL, so that ("ab", "c") and ("a", "bc") differ; NULL as "". */
static int put_str(EVP_MD_CTX *ctx, const char *s) {
    return EVP_DigestUpdate(ctx, s ? s : "", strlen(s ? s : "") + 1) == 1;
}

int ch_select_mix_identity(const ch_mix *m, char hex[65]) {
    int32_t shape[3] = {m->ntask, CH_NCAP, m->hidden_mean ? m->hidden_dim : 0};
    size_t nt = (size_t)m->ntask;
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, "capheads-mix-digest-1", 21) == 1 &&
             EVP_DigestUpdate(ctx, shape, sizeof shape) == 1;
    for (size_t t = 0; t < nt && ok; t++) ok = put_str(ctx, m->tasks[t]);
    ok = ok && EVP_DigestUpdate(ctx, m->mix, sizeof(double) * nt * CH_NCAP) == 1 &&
         EVP_DigestUpdate(ctx, m->count, sizeof(int64_t) * nt) == 1 &&
         (!m->hidden_mean ||
          EVP_DigestUpdate(ctx, m->hidden_mean, sizeof(float) * nt * (size_t)m->hidden_dim) == 1) &&
         put_str(ctx, m->capability_names) && put_str(ctx, m->probes_sha256) &&
         put_str(ctx, m->heads && m->heads[0] ? m->heads : "own") && put_str(ctx, m->input_sha256) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}
