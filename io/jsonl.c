/* jsonl.c - JSON / JSON Lines input, see jsonl.h. */
#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "err.h"

long ch_utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int k;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c == 0xE0) k = 2, lo = 0xA0;
        else if (c == 0xED) k = 2, hi = 0x9F; /* no UTF-16 surrogates */
        else if (c >= 0xE1 && c <= 0xEF) k = 2;
        else if (c == 0xF0) k = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) k = 3;
        else if (c == 0xF4) k = 3, hi = 0x8F; /* nothing above U+10FFFF */
        else return (long)i;
        if (i + (size_t)k >= n) return (long)i; /* truncated sequence */
        if (u[i + 1] < lo || u[i + 1] > hi) return (long)i;
        for (int j = 2; j <= k; j++)
            if (u[i + j] < 0x80 || u[i + j] > 0xBF) return (long)i;
        i += (size_t)k + 1;
    }
    return -1;
}

static long count_lines(const char *s, size_t upto) {
    long nl = 0;
    for (size_t i = 0; i < upto; i++) nl += s[i] == '\n';
    return nl;
}

int ch_json_parse(const char *name, long first_line, const char *s, size_t n, cJSON **out) {
    *out = NULL;
    long bad = ch_utf8_invalid_at(s, n);
    if (bad >= 0)
        CH_FAIL(CH_EFORMAT, "%s:%ld: invalid UTF-8 (byte 0x%02x)", name,
                first_line + count_lines(s, (size_t)bad), (unsigned char)s[bad]);
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v) {
        size_t at = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
        long line = first_line + count_lines(s, at);
        size_t bol = at;
        while (bol > 0 && s[bol - 1] != '\n') bol--;
        CH_FAIL(CH_EFORMAT, "%s:%ld: malformed JSON near column %zu", name, line, at - bol + 1);
    }
    size_t at = (size_t)(end - s);
    while (at < n && (s[at] == ' ' || s[at] == '\t' || s[at] == '\r' || s[at] == '\n')) at++;
    if (at < n && s[at] != '\0') {
        cJSON_Delete(v);
        CH_FAIL(CH_EFORMAT, "%s:%ld: unexpected text after the JSON value", name,
                first_line + count_lines(s, at));
    }
    *out = v;
    return 0;
}


int ch_jsonl_open(ch_jsonl *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->name = path;
    r->f = fopen(path, "rb");
    if (!r->f) CH_FAIL(CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    return 0;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int ch_jsonl_next(ch_jsonl *r, const char **line, size_t *len, int *has) {
    *has = 0;
    for (;;) {
        errno = 0;
        ssize_t got = getline(&r->buf, &r->cap, r->f);
        if (got < 0) {
            if (ferror(r->f)) CH_FAIL(CH_EIO, "%s:%ld: read error: %s", r->name, r->lineno + 1,
                                      strerror(errno));
            return 0;
        }
        r->lineno++;
        r->offset = r->next_offset;
        r->next_offset += got;
        size_t n = (size_t)got;
        if (n > 0 && r->buf[n - 1] == '\n') n--;
        if (memchr(r->buf, '\0', n))
            CH_FAIL(CH_EFORMAT, "%s:%ld: NUL byte in a JSON line", r->name, r->lineno);
        if (blank(r->buf, n)) continue;
        r->buf[n] = 0;
        *line = r->buf;
        *len = n;
        r->len = n;
        *has = 1;
        return 0;
    }
}

void ch_jsonl_close(ch_jsonl *r) {
    if (r->f) fclose(r->f);
    free(r->buf);
    r->f = NULL;
    r->buf = NULL;
}
