/* prepare.h - `capheads prepare`: convert the datasets' original formats into the one normalized
 * JSONL record shape every other stage reads:
 *
 *   {"id": "gsm8k/test/17",              stable, unique: dataset / source file stem / index
 *    "text": "..."  OR  "messages": [{"role": "user"|"assistant"|"system", "content": "..."}],
 *    "label": "math",                     optional: one of the five capabilities
 *    "task": "mmlu/anatomy",              optional: the target task the record belongs to
 *    "meta": {...}}                       optional: original answer, choices, source id, ...
 *
 * Keys are always written in that order, compactly, one record per line; strings are copied
 * exactly (UTF-8 kept, control characters escaped), so the output equals Python's
 * json.dumps(record, ensure_ascii=False, separators=(",", ":")).
 *
 * The index in an id counts records of one source file from 0 (blank lines do not count), so it
 * does not change when other files are added (nor with --limit, which samples records of a file
 * without renumbering them). For the LESS pool, meta also records the source
 * file, 1-based line, byte offset and byte length (without the '\n') of the original line, so
 * `select` can emit the chosen pool lines byte-identical to the pool file. */
#ifndef CH_PREPARE_H
#define CH_PREPARE_H

#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct {
    const char *format;
    char **srcs; /* SRC arguments (files or directories; CAP=FILE for probeset) */
    int nsrcs;
    const char *output;
    const char *label; /* --label: NULL = the format's default, "" = no label */
    const char *task;  /* --task: NULL = the format's default */
    const char *cue;   /* --cue: NULL = the format's default, "" = none */
    int64_t limit;     /* --limit: a seeded sample of N records per source file, -1 = all */
    uint64_t seed;     /* --limit's sample; probeset's selection and order */
    int64_t per_class; /* probeset: -1 = the smallest class */
    int allow_eval;    /* --allow-eval-split: take a benchmark's evaluation split */
    int show_options;  /* probeset --options show: the choices in every text */
    int match_length;  /* probeset --match-length: every class gets the same length distribution */
} ch_prepare_opts;

/* The sampling key of a record: splitmix64(fnv1a64(id) ^ splitmix64(seed)). --limit keeps the N
 * records of a file with the smallest (key, id); probeset orders and picks by the same key. */
uint64_t ch_prep_key(const char *id, uint64_t seed);
uint64_t ch_prep_fnv1a64(const char *s);

/* The output being written (temporary file + id bookkeeping); defined in prepare.c. */
typedef struct ch_prep_out ch_prep_out;

/* Append one record (ownership of rec passes to the writer, which deletes it). Checks the
 * record shape and that a label, if any, is one of the five capabilities; a record of an
 * evaluation split gets meta.eval_split = the benchmark. Under --limit records are held until the
 * end of their source file and only the file's sample is written, in file order. */
int ch_prep_emit(ch_prep_out *w, cJSON *rec);

typedef int (*ch_prep_convert_fn)(ch_prep_out *w, const ch_prepare_opts *o, const char *path,
                                  const char *stem);

typedef struct {
    const char *name;
    const char *ext;   /* files taken from a directory SRC */
    const char *label; /* default label, NULL = none */
    const char *cue;   /* default line appended to the text, NULL = none */
    const char *help;  /* one line for --help */
    ch_prep_convert_fn convert;
} ch_prep_format;

/* The converters (prepare_formats.c, prepare_readers.c); probeset is handled by prepare.c. */
extern const ch_prep_format ch_prep_formats[];
extern const int ch_prep_nformats;

/* The probing set (prepare_probeset.c): CAP=FILE sources in o->srcs; writes o->output. */
int ch_prep_run_probeset(const ch_prepare_opts *o, long *written, long *per_class, int *nclasses);

/* probeset --match-length (prepare_lenmatch.c). n candidates sorted by key, of class cap[i] and
 * len[i] characters (Unicode code points of the rendered text). Lengths fall in fixed bins (edges
 * e_0 = 1, e_{i+1} = e_i + max(1, e_i / 8)); in each bin every class keeps the smallest count any
 * class in present has there (scaled to per_class when >= 0, the same for every class), taking
 * its records of smallest key. Sets keep[i] and *kept (records per class); stderr gets per class
 * the count kept and the median length before and after. */
int ch_prep_match_length(long n, const int *cap, const long *len, const int present[5], int64_t per_class,
                         char *keep, long *kept);

/* ---- evaluation splits (prepare_eval.c) ---------------------------------------------------- */

/* One row per evaluation split prepare can recognise: the format that reads it, how a source file
 * is recognised as that split, and the benchmark whose scores it would contaminate. */
typedef struct {
    const char *format;
    const char *how;       /* for messages and --help */
    const char *benchmark; /* e.g. "MMLU" */
    int (*match)(const char *path);
} ch_prep_eval_split;

extern const ch_prep_eval_split ch_prep_eval_splits[];
extern const int ch_prep_neval_splits;

/* The table row a source file of this format matches, or NULL when it is no evaluation split. */
const ch_prep_eval_split *ch_prep_eval_split_of(const char *format, const char *path);

/* ---- the probing template (prepare_template.c) -------------------------------------------- */

/* The one text every probing record gets, built from its meta (passage?, question, choices?):
 *   [PASSAGE "\n\n"] "Question: " QUESTION ["\nA. " CHOICE ...] ["\n" CUE]
 * with the choices only when show_options. *text is malloc'ed. where names the record. */
int ch_prep_probe_text(const cJSON *meta, int show_options, const char *cue, const char *where,
                       char **text);


#endif
