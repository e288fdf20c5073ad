/* prepare_out.h - the output of `prepare` (prepare_out.c): a temporary file renamed only when
 * complete, the ids written (checked unique at the end), and --limit's per-file sample. */
#ifndef CH_PREPARE_OUT_H
#define CH_PREPARE_OUT_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "prepare.h"

struct ch_prep_out {
    FILE *f;
    const char *path;
    char tmp[4096];
    char **ids;
    long n, cap;       /* records written */
    int64_t limit;     /* --limit: hold each file's records and write its sample; -1 = write at once */
    uint64_t seed;
    const char *eval;  /* the benchmark whose evaluation split the current file is, or NULL */
    cJSON **held;      /* the current file's records under --limit, in file order */
    long nheld, capheld;
};

/* Open a temporary file next to path; limit -1, no evaluation split. */
int ch_prep_out_open(ch_prep_out *w, const char *path);
/* The end of a source file: under --limit, write the file's sample. */
int ch_prep_out_end_file(ch_prep_out *w);
/* Check the ids are unique, then rename the temporary file to the output. Aborts on failure. */
int ch_prep_out_commit(ch_prep_out *w);
/* Drop the temporary file: a failed run leaves no output, not half of one. */
void ch_prep_out_abort(ch_prep_out *w);
/* The id of a record the writer accepted (ch_prep_emit checked it is a string). */
const char *ch_prep_rec_id(const cJSON *rec);
int ch_prep_cmp_str(const void *a, const void *b);

#endif
