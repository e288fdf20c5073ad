/* fsutil.h - small file-system helpers shared by the stages. */
#ifndef CH_FSUTIL_H
#define CH_FSUTIL_H

#include <stdio.h>

/* mkdir -p; an existing directory is fine. */
int ch_fs_mkdir_p(const char *dir);
/* Open PATH.tmp.<pid> for writing; ch_fs_commit renames it onto PATH after a successful fclose
 * (so a reader never sees a half-written file), ch_fs_abort removes it. */
int ch_fs_open_tmp(const char *path, FILE **f, char *tmp, size_t tmpsz);
int ch_fs_commit(FILE *f, const char *tmp, const char *path);
void ch_fs_abort(FILE *f, const char *tmp);
/* A file name made from a task name: [A-Za-z0-9._-] kept, everything else '_'. */
void ch_fs_safe_name(const char *name, char *out, size_t outsz);
/* The whole file, NUL-terminated (*len excludes the NUL); the caller frees *buf. */
int ch_fs_read_file(const char *path, char **buf, size_t *len);
/* SHA-256 of n bytes (CH_EINTERNAL when OpenSSL has none). */
int ch_sha256(const void *p, size_t n, unsigned char md[32]);
/* A digest as 64 lowercase hex digits + NUL. */
void ch_sha256_hex(const unsigned char md[32], char hex[65]);
/* SHA-256 of a file as 64 hex chars + NUL. */
int ch_fs_sha256(const char *path, char hex[65]);

#endif
