/* csv.c - RFC 4180 CSV reader, see csv.h. */
#include "csv.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

void ch_csv_init(ch_csv *c, const char *name, const char *buf, size_t len) {
    memset(c, 0, sizeof *c);
    c->name = name ? name : "<csv>";
    c->buf = buf;
    c->len = len;
    c->line = 1;
}

void ch_csv_free(ch_csv *c) {
    free(c->data);
    free(c->starts);
    free(c->fields);
    c->data = NULL;
    c->starts = NULL;
    c->fields = NULL;
    c->data_cap = 0;
    c->fields_cap = 0;
}

static int put(ch_csv *c, char ch) {
    if (c->data_len + 1 > c->data_cap) {
        size_t cap = c->data_cap ? c->data_cap * 2 : 256;
        char *d = realloc(c->data, cap);
        if (!d) CH_FAIL(CH_ENOMEM, "%s: out of memory reading a CSV record", c->name);
        c->data = d;
        c->data_cap = cap;
    }
    c->data[c->data_len++] = ch;
    return 0;
}

/* Start a new field at the current end of data. */
static int begin_field(ch_csv *c) {
    if (c->nfields == c->fields_cap) {
        int cap = c->fields_cap ? c->fields_cap * 2 : 16;
        size_t *s = realloc(c->starts, (size_t)cap * sizeof *s);
        if (!s) CH_FAIL(CH_ENOMEM, "%s: out of memory reading a CSV record", c->name);
        c->starts = s;
        char **f = realloc(c->fields, (size_t)cap * sizeof *f);
        if (!f) CH_FAIL(CH_ENOMEM, "%s: out of memory reading a CSV record", c->name);
        c->fields = f;
        c->fields_cap = cap;
    }
    c->starts[c->nfields++] = c->data_len;
    return 0;
}

/* Consume one end of line (\n, \r\n or \r) at pos if there is one; returns 1 if consumed. */
static int eat_eol(ch_csv *c) {
    if (c->pos >= c->len) return 0;
    if (c->buf[c->pos] == '\n') {
        c->pos++;
        c->line++;
        return 1;
    }
    if (c->buf[c->pos] == '\r') {
        c->pos++;
        if (c->pos < c->len && c->buf[c->pos] == '\n') c->pos++;
        c->line++;
        return 1;
    }
    return 0;
}

int ch_csv_next(ch_csv *c, int *has_row, long *line) {
    *has_row = 0;
    c->nfields = 0;
    c->data_len = 0;
    while (eat_eol(c)) /* blank lines carry no record */
        ;
    if (c->pos >= c->len) return 0;
    long start_line = c->line;
    if (line) *line = start_line;

    for (;;) { /* one field per iteration */
        CH_TRY(begin_field(c));
        if (c->pos < c->len && c->buf[c->pos] == '"') {
            c->pos++;
            for (;;) {
                if (c->pos >= c->len)
                    CH_FAIL(CH_EFORMAT, "%s:%ld: quoted field opened on this line is never closed",
                            c->name, start_line);
                char ch = c->buf[c->pos++];
                if (ch == '\0') CH_FAIL(CH_EFORMAT, "%s:%ld: NUL byte in CSV", c->name, c->line);
                if (ch == '"') {
                    if (c->pos < c->len && c->buf[c->pos] == '"') {
                        c->pos++;
                        CH_TRY(put(c, '"'));
                        continue;
                    }
                    break; /* closing quote */
                }
                /* newlines inside quotes are data, kept byte for byte; count them for messages */
                if (ch == '\n' || (ch == '\r' && !(c->pos < c->len && c->buf[c->pos] == '\n')))
                    c->line++;
                CH_TRY(put(c, ch));
            }
            if (c->pos < c->len && c->buf[c->pos] != ',' && c->buf[c->pos] != '\n' &&
                c->buf[c->pos] != '\r')
                CH_FAIL(CH_EFORMAT, "%s:%ld: unexpected character '%c' after a closing quote",
                        c->name, c->line, c->buf[c->pos]);
        } else {
            while (c->pos < c->len && c->buf[c->pos] != ',' && c->buf[c->pos] != '\n' &&
                   c->buf[c->pos] != '\r') {
                if (c->buf[c->pos] == '\0')
                    CH_FAIL(CH_EFORMAT, "%s:%ld: NUL byte in CSV", c->name, c->line);
                CH_TRY(put(c, c->buf[c->pos++]));
            }
        }
        CH_TRY(put(c, '\0'));
        if (c->pos < c->len && c->buf[c->pos] == ',') {
            c->pos++;
            continue; /* a trailing comma means one more (empty) field */
        }
        eat_eol(c);
        break;
    }
    for (int i = 0; i < c->nfields; i++) c->fields[i] = c->data + c->starts[i];
    *has_row = 1;
    return 0;
}
