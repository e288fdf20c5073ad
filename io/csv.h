/* csv.h - an RFC 4180 CSV reader over an in-memory buffer (the dialect Python's csv module calls
 * "excel"): comma separators; records end at \n, \r\n or \r; a field that starts with '"' is
 * quoted and may hold commas, newlines and doubled quotes ("" -> "); a '"' inside an unquoted
 * field is kept literally. Blank lines are skipped (Python yields an empty row for them; no
 * dataset we read has a record with zero fields).
 *
 * Refused with CH_EFORMAT and "NAME:LINE: ..." (LINE = line where the record starts):
 * a quoted field never closed, a character other than ',' or end of line after a closing quote,
 * and NUL bytes. */
#ifndef CH_CSV_H
#define CH_CSV_H

#include <stddef.h>

typedef struct {
    const char *name; /* for messages: the file name as the user gave it */
    const char *buf;
    size_t len, pos;
    long line;        /* 1-based line number of buf[pos] */
    /* the current record: field bytes, each NUL-terminated, packed in data */
    char *data;
    size_t data_len, data_cap;
    size_t *starts;   /* offsets of the fields in data */
    char **fields;    /* pointers into data, valid until the next ch_csv_next or ch_csv_free */
    int nfields, fields_cap;
} ch_csv;

/* Borrow buf (len bytes, need not be NUL-terminated) for the life of the reader. */
void ch_csv_init(ch_csv *c, const char *name, const char *buf, size_t len);
/* Read the next record. On success sets *has_row (0 at the end of the input); the record is in
 * c->fields[0..c->nfields) and started on line *line (may be NULL). */
int ch_csv_next(ch_csv *c, int *has_row, long *line);
void ch_csv_free(ch_csv *c);

#endif
