/* tok_testdata.h - test-side access to the committed, gzip'd tokenizer files and golden data.
 *
 * The real tokenizer.json files are committed compressed (tests/data/tokenizers/<family>/);
 * they are decompressed at test time with gzip(1) (part of every Debian system) into the build
 * directory, once, and shared by the tests, fuzzers and the benchmark. */
#ifndef CH_TOK_TESTDATA_H
#define CH_TOK_TESTDATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *td_env(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Read all of `gzip -dc path` into a NUL-terminated buffer; returns 0 on success. */
static int td_gunzip(const char *path, char **buf, size_t *len) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap + 1);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, p)) > 0;) {
        n += k;
        if (n == cap) {
            char *q = realloc(b, 2 * cap + 1);
            if (!q) free(b);
            b = q, cap *= 2;
        }
    }
    if (pclose(p) != 0 || !b) {
        free(b);
        return -1;
    }
    b[n] = 0;
    *buf = b, *len = n;
    return 0;
}

/* Path of the decompressed tokenizer.json of a family (llama3_1, qwen3) under $CH_BIN/tokdata,
 * decompressing it on first use (to a temporary name, then renamed: concurrent tests are safe). */
static const char *td_tokenizer_dir(const char *family) {
    static char dir[2048]; /* test-side convenience; one thread */
    const char *src = td_env("CH_SRC", "."), *bin = td_env("CH_BIN", ".");
    snprintf(dir, sizeof dir, "%s/tokdata/%s", bin, family);
    char cmd[8192], path[2100];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) {
        snprintf(cmd, sizeof cmd,
                 "set -e; mkdir -p '%s'; for f in tokenizer.json tokenizer_config.json; do "
                 "gzip -dc '%s/tests/data/tokenizers/%s/'$f.gz > '%s/'$f.tmp.$$; mv '%s/'$f.tmp.$$ '%s/'$f; done",
                 dir, src, family, dir, dir, dir);
        if (system(cmd) != 0) return NULL;
    }
    return dir;
}

static const char *td_tokenizer_json(const char *family) {
    static char path[2100];
    const char *d = td_tokenizer_dir(family);
    if (!d) return NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", d);
    return path;
}

#endif
