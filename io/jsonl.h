/* jsonl.h - JSON and JSON Lines input with messages that name file, line and column.
 *
 * A JSONL reader streams a file line by line (memory bounded by the longest line, never by the
 * file) and reports, for each line, its 1-based number, byte offset and length, so a later stage
 * can copy the original bytes of a record back out (select emits pool lines byte-identical).
 * Parsing is strict: one JSON value per line, nothing but whitespace after it, valid UTF-8. */
#ifndef CH_JSONL_H
#define CH_JSONL_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

typedef struct {
    FILE *f;
    const char *name;   /* file name as given, for messages */
    char *buf;
    size_t cap;
    long lineno;        /* 1-based number of the line last returned */
    int64_t offset;     /* byte offset of the line last returned */
    int64_t next_offset;
    size_t len;         /* bytes of the line last returned, without its '\n' */
} ch_jsonl;

int ch_jsonl_open(ch_jsonl *r, const char *path);
/* Next non-blank line: *line (NUL-terminated, owned by r) and *len exclude the final '\n' (a
 * '\r' before it is kept: it belongs to the original bytes). *has = 0 at end of file. */
int ch_jsonl_next(ch_jsonl *r, const char **line, size_t *len, int *has);
void ch_jsonl_close(ch_jsonl *r);

/* Parse exactly one JSON value from s[0..n): invalid UTF-8, a syntax error or trailing
 * non-whitespace fail with "NAME:LINE: ..." where LINE is first_line plus the newlines before
 * the error. */
int ch_json_parse(const char *name, long first_line, const char *s, size_t n, cJSON **out);

/* Offset of the first byte of s[0..n) that is not part of a well-formed UTF-8 sequence
 * (overlongs, surrogates and code points above U+10FFFF are ill-formed), or -1. */
long ch_utf8_invalid_at(const char *s, size_t n);

#endif
