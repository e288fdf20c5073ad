/* fsutil.c - see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

int ch_fs_mkdir_p(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) CH_FAIL(CH_EARG, "path too long: %s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) CH_FAIL(CH_EIO, "%s: cannot create: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0777) && errno != EEXIST) CH_FAIL(CH_EIO, "%s: cannot create: %s", p, strerror(errno));
    struct stat sb;
    if (stat(p, &sb) || !S_ISDIR(sb.st_mode)) CH_FAIL(CH_EIO, "%s: not a directory", p);
    return 0;
}

int ch_fs_open_tmp(const char *path, FILE **f, char *tmp, size_t tmpsz) {
    snprintf(tmp, tmpsz, "%s.tmp.%d", path, (int)getpid());
    *f = fopen(tmp, "wb");
    if (!*f) CH_FAIL(CH_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

int ch_fs_commit(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        unlink(tmp);
        CH_FAIL(CH_EIO, "%s: write failed (disk full?)", path);
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        CH_FAIL(CH_EIO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return 0;
}

void ch_fs_abort(FILE *f, const char *tmp) {
    if (f) fclose(f);
    unlink(tmp);
}

void ch_fs_safe_name(const char *name, char *out, size_t outsz) {
    size_t i = 0;
    for (; name[i] && i + 1 < outsz; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '-' || c == '_';
        out[i] = ok ? c : '_';
    }
    out[i] = 0;
}

int ch_sha256(const void *p, size_t n, unsigned char md[32]) {
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, p, n) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    return 0;
}

void ch_sha256_hex(const unsigned char md[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = digits[md[i] >> 4], hex[2 * i + 1] = digits[md[i] & 15];
    hex[64] = 0;
}

int ch_fs_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) CH_FAIL(CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    }
    static const size_t bufsz = 1 << 20;
    unsigned char *buf = malloc(bufsz);
    int rc = 0;
    if (!buf) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory hashing %s", path);
    size_t n;
    while ((n = fread(buf, 1, bufsz, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    if (ferror(f)) CH_FAIL_GOTO(done, CH_EIO, "%s: read error", path);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    ch_sha256_hex(md, hex);
done:
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

int ch_fs_read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) CH_FAIL(CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) {
        fclose(f);
        CH_FAIL(CH_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                fclose(f);
                CH_FAIL(CH_ENOMEM, "%s: out of memory (%zu bytes)", path, cap * 2);
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        CH_FAIL(CH_EIO, "%s: read error", path);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}
