/* provenance.c - see provenance.h. */
#include "provenance.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "fsutil.h"
#include "err.h"
#include "mpicheck.h"

int ch_select_bcast_hex(char hex[65], MPI_Comm comm) {
    CH_MPI_TRY(MPI_Bcast(hex, 65, MPI_CHAR, 0, comm));
    hex[64] = 0;
    return 0;
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
    ch_sha256_hex(md, hex);
    return 0;
}
