/* prepare_fmt.h - what the format readers share (prepare_fmt.c): a growing text buffer, typed
 * getters whose messages name the place, the question-answer record every multiple-choice and
 * reading reader builds, and the file walkers (JSONL line by line, whole-file JSON). */
#ifndef CH_PREPARE_FMT_H
#define CH_PREPARE_FMT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "jsonl.h"
#include "prepare.h"

typedef struct {
    char *s;
    size_t n, cap;
} ch_prep_sb;

int ch_prep_sb_add(ch_prep_sb *b, const char *s);
/* The text ends with "\n<cue>" when the cue is not empty. */
int ch_prep_add_cue(ch_prep_sb *b, const char *cue);

static inline const char *ch_prep_pick(const char *opt, const char *dflt) { return opt ? opt : dflt; }

/* A new record {"id", "text"?, "label"?, "task"?}; meta is added by ch_prep_finish, last. */
int ch_prep_new_record(cJSON **out, const char *id, const char *text, const char *label, const char *task);
/* Attach meta to rec and emit; rec and meta are consumed whatever happens. */
int ch_prep_finish(ch_prep_out *w, cJSON *rec, cJSON *meta);

/* A string member of obj. where is "file:line" or "file: path"; missing is an error when
 * required, otherwise *out = NULL. */
int ch_prep_get_str(const cJSON *obj, const char *key, const char *where, int required, const char **out);
int ch_prep_get_array(const cJSON *obj, const char *key, const char *where, const cJSON **out);
/* An array of 2..26 strings (choices): pointers into arr in *out, count in *n. */
int ch_prep_get_choices(const cJSON *arr, const char *key, const char *where, const char **out, int *n);
int ch_prep_meta_str(cJSON *meta, const char *key, const char *val);

/* A question with its optional passage and choices: the structured fields every reader keeps in
 * meta, in this order (source_id, passage, question, choices, answer), so probeset can render
 * every class with one template. */
typedef struct {
    const char *id, *label, *task;
    const char *source_id; /* the dataset's own id, NULL = none */
    const char *passage;   /* NULL = none */
    const char *question;
    const char *const *labels; /* choice labels shown in the text (NULL = A, B, C, ...) */
    const char *const *choices;
    int nchoices;          /* 0 = no choices */
    const char *answer;    /* NULL = none */
    const char *cue;
    const char *extra_key, *extra_val; /* one more meta string after answer (NULL: none) */
} ch_prep_qa;

/* The reader's own text: [passage "\n\nQuestion: "] question, "\nL. choice" lines, "\n" cue. */
int ch_prep_qa_text(const ch_prep_qa *q, char **text);
/* Build the record and its meta; *meta is returned for the caller to add extra keys before
 * ch_prep_finish. */
int ch_prep_qa_record(const ch_prep_qa *q, cJSON **rec, cJSON **meta);
/* ch_prep_qa_record + ch_prep_finish. */
int ch_prep_qa_emit(ch_prep_out *w, const ch_prep_qa *q);

/* The letter of choice i: "A".."Z". */
const char *ch_prep_letter(int i);

/* What a per-line converter sees: the source, its line, and where to send records. */
typedef struct {
    ch_prep_out *w;
    const ch_prepare_opts *o;
    const char *path, *stem;
    const ch_jsonl *r; /* line number, offset and length of the current line */
    const char *where; /* "file:line" for messages */
    long idx;          /* record index in this file (the reader may count several per line) */
    long *next_idx;    /* the index the next record of this file gets */
} ch_prep_line;

typedef int (*ch_prep_line_fn)(const ch_prep_line *c, const cJSON *obj);

/* Each line of a JSONL file parsed, given to fn with its "file:line"; fn owns obj (frees or keeps
 * it); a nonzero return stops the reading and is returned. */
typedef int (*ch_prep_obj_fn)(void *ctx, const ch_jsonl *r, const char *where, cJSON *obj);
int ch_prep_jsonl_objects(const char *path, ch_prep_obj_fn fn, void *ctx);
/* Call fn on each JSON-object line of a JSONL file (another JSON value: CH_EFORMAT by file:line). */
int ch_prep_jsonl_each(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem,
                       ch_prep_line_fn fn);
/* Parse a whole file as JSON; want_object: top level must be an object, else an array. */
int ch_prep_read_json(const char *path, int want_object, cJSON **out);
/* Read a whole text file, refusing invalid UTF-8 with file:line. */
int ch_prep_read_text(const char *path, char **buf, size_t *len);
/* Does path end with suffix? */
int ch_prep_ends_with(const char *path, const char *suffix);

/* The readers of prepare_readers.c (the table is in prepare_formats.c). */
int ch_prep_conv_bbh_cot(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);
int ch_prep_conv_race(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);
int ch_prep_conv_sciq(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);
int ch_prep_conv_cosmosqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);
int ch_prep_conv_hellaswag(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);
int ch_prep_conv_medqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem);

#endif
