/* test_weights_hash.c (MPI, any rank count) - the weights' SHA-256 is the same for every rank
 * count and block size split, equals SHA-256 over the blocks' digests computed here in one
 * process with OpenSSL, and changes with one flipped byte. */
#include <mpi.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "weights_hash.h"

#define CHECK(c, ...)                                                                            \
    do {                                                                                         \
        if (!(c)) {                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fprintf(stderr, "\n");                                                                \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                         \
        }                                                                                        \
    } while (0)

/* the reference: one process, files read whole, cut into blocks of `block` bytes per file */
static void reference(char **paths, int n, long block, char hex[65]) {
    EVP_MD_CTX *outer = EVP_MD_CTX_new();
    EVP_DigestInit_ex(outer, EVP_sha256(), NULL);
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(paths[i], "rb");
        unsigned char *buf = malloc((size_t)block);
        size_t got;
        while ((got = fread(buf, 1, (size_t)block, f)) > 0) {
            unsigned char md[32];
            unsigned int len;
            EVP_Digest(buf, got, md, &len, EVP_sha256(), NULL);
            EVP_DigestUpdate(outer, md, 32);
        }
        free(buf);
        fclose(f);
    }
    unsigned char md[32];
    unsigned int len;
    EVP_DigestFinal_ex(outer, md, &len);
    EVP_MD_CTX_free(outer);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char dir[64] = "/tmp/ch_whash_XXXXXX";
    if (rank == 0) CHECK(mkdtemp(dir), "mkdtemp");
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    char *paths[3];
    const long sizes[3] = {10007, 1, 4096};
    for (int i = 0; i < 3; i++) {
        paths[i] = malloc(128);
        snprintf(paths[i], 128, "%s/model-%05d.safetensors", dir, i);
        if (rank == 0) {
            FILE *f = fopen(paths[i], "wb");
            unsigned x = 2463534242u + (unsigned)i;
            for (long k = 0; k < sizes[i]; k++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                fputc((int)(x & 0xff), f);
            }
            fclose(f);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const long blocks[] = {1000, 4096, 1 << 20};
    for (int b = 0; b < 3; b++) {
        char got[65], want[65];
        double bytes = 0;
        int rc = ch_weights_sha256_blocks((const char *const *)paths, 3, blocks[b], MPI_COMM_WORLD, got, &bytes);
        CHECK(rc == 0, "block %ld: %s", blocks[b], ch_err_msg());
        CHECK(bytes == 10007 + 1 + 4096, "bytes %.0f", bytes);
        reference(paths, 3, blocks[b], want);
        CHECK(!strcmp(got, want), "block %ld: %s != %s", blocks[b], got, want);
    }
    /* one flipped byte in the last block of the first file changes it */
    char before[65], after[65];
    double bytes;
    CHECK(!ch_weights_sha256_blocks((const char *const *)paths, 3, 1000, MPI_COMM_WORLD, before, &bytes), "hash");
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        FILE *f = fopen(paths[0], "r+b");
        fseek(f, 10005, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 10005, SEEK_SET);
        fputc(c ^ 1, f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(!ch_weights_sha256_blocks((const char *const *)paths, 3, 1000, MPI_COMM_WORLD, after, &bytes), "hash");
    CHECK(strcmp(before, after), "a flipped byte left the hash at %s", after);
    /* a missing file fails on every rank, none hangs */
    const char *missing[] = {paths[0], "/nonexistent/model.safetensors"};
    CHECK(ch_weights_sha256_blocks(missing, 2, 1000, MPI_COMM_WORLD, after, &bytes) == CH_EIO, "missing file");
    CHECK(strstr(ch_err_msg(), "/nonexistent/model.safetensors"), "%s", ch_err_msg());
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        for (int i = 0; i < 3; i++) unlink(paths[i]);
        rmdir(dir);
        printf("weights hash: equal to the one-process reference at 3 block sizes; a flipped byte changes it\n");
    }
    for (int i = 0; i < 3; i++) free(paths[i]);
    MPI_Finalize();
    return 0;
}
