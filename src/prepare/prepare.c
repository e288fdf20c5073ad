/* prepare.c - the `prepare` stage: command line, the output writer (temporary file, renamed only
 * when complete), id uniqueness, and the balanced probing-set builder. Format converters live in
 * prepare_formats.c. */
#include "prepare.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpi.h>

#include "archive.h"
#include "stage.h"
#include "err.h"
#include "jsonl.h"
#include "mpicheck.h"
#include "options.h"
#include "agree.h"
#include "timing.h"

/* ---- the output writer --------------------------------------------------------------------- */

struct ch_prep_out {
    FILE *f;
    const char *path;
    char tmp[4096];
    char **ids;
    long n, cap;
    int64_t limit;     /* --limit: hold each file's records and write its sample */
    uint64_t seed;
    const char *eval;  /* the benchmark whose evaluation split the current file is, or NULL */
    cJSON **held;      /* the current file's records under --limit, in file order */
    long nheld, capheld;
};

/* The sampling key (prepare.h): a 64-bit mix of the id and the seed. */
static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

uint64_t ch_prep_key(const char *id, uint64_t seed) { return mix64(fnv1a64(id) ^ mix64(seed)); }

static const char *rec_id(const cJSON *rec) {
    return cJSON_GetObjectItemCaseSensitive(rec, "id")->valuestring;
}

static int out_open(ch_prep_out *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->limit = -1;
    if ((size_t)snprintf(w->tmp, sizeof w->tmp, "%s.tmp.XXXXXX", path) >= sizeof w->tmp)
        CH_FAIL(CH_EARG, "output path too long: %s", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0)
        CH_FAIL(CH_EIO, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
    w->f = fdopen(fd, "w");
    if (!w->f) {
        close(fd);
        unlink(w->tmp);
        CH_FAIL(CH_EIO, "%s: fdopen failed: %s", w->tmp, strerror(errno));
    }
    return 0;
}

static void out_free(ch_prep_out *w) {
    for (long i = 0; i < w->n; i++)
        free(w->ids[i]);
    free(w->ids);
    w->ids = NULL;
    w->n = 0;
    for (long i = 0; i < w->nheld; i++)
        cJSON_Delete(w->held[i]);
    free(w->held);
    w->held = NULL;
    w->nheld = w->capheld = 0;
}

/* Drop the temporary file: a failed run leaves no output, not half of one. */
static void out_abort(ch_prep_out *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
    unlink(w->tmp);
    out_free(w);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int out_commit(ch_prep_out *w) {
    int rc = 0;
    qsort(w->ids, (size_t)w->n, sizeof *w->ids, cmp_str);
    for (long i = 1; i < w->n; i++)
        if (!strcmp(w->ids[i - 1], w->ids[i]))
            CH_FAIL_GOTO(fail, CH_EFORMAT,
                         "duplicate id '%s' in the output (ids are dataset/file stem/index: two "
                         "sources with the same file name?)",
                         w->ids[i]);
    if (fflush(w->f) || fsync(fileno(w->f)))
        CH_FAIL_GOTO(fail, CH_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f)) CH_FAIL_GOTO(fail, CH_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path))
        CH_FAIL_GOTO(fail, CH_EIO, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    out_free(w);
    return 0;
fail:
    out_abort(w);
    return rc;
}

/* Write one record (and remember its id); rec is consumed. */
static int write_rec(ch_prep_out *w, cJSON *rec) {
    int rc = 0;
    char *line = NULL;
    const char *id = rec_id(rec);
    if (w->n == w->cap) {
        long cap = w->cap ? w->cap * 2 : 1024;
        char **p = realloc(w->ids, (size_t)cap * sizeof *p);
        if (!p) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory (%ld ids)", cap);
        w->ids = p;
        w->cap = cap;
    }
    w->ids[w->n] = strdup(id);
    if (!w->ids[w->n]) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory");
    w->n++;
    line = cJSON_PrintUnformatted(rec);
    if (!line) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory printing record %s", id);
    if (fputs(line, w->f) == EOF || fputc('\n', w->f) == EOF)
        CH_FAIL_GOTO(done, CH_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
done:
    free(line);
    cJSON_Delete(rec);
    return rc;
}

/* meta.eval_split = the benchmark, the last key of meta (created when the record has none). */
static int mark_eval(cJSON *rec, const char *benchmark) {
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(rec, "meta");
    if (!meta && !(meta = cJSON_AddObjectToObject(rec, "meta"))) CH_FAIL(CH_ENOMEM, "out of memory");
    if (!cJSON_AddStringToObject(meta, "eval_split", benchmark)) CH_FAIL(CH_ENOMEM, "out of memory");
    return 0;
}

int ch_prep_emit(ch_prep_out *w, cJSON *rec) {
    int rc = 0;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(rec, "label");
    if (!cJSON_IsString(id) || !id->valuestring[0]) CH_FAIL_GOTO(fail, CH_EINTERNAL, "record without an id");
    if (label && (!cJSON_IsString(label) || ch_capability_index(label->valuestring) < 0))
        CH_FAIL_GOTO(fail, CH_EARG, "label '%s' of %s is not a capability (" CH_CAP_LIST ")",
                     cJSON_IsString(label) ? label->valuestring : "?", id->valuestring);
    if (w->eval) CH_TRY_GOTO(mark_eval(rec, w->eval), fail);
    if (w->limit < 0) return write_rec(w, rec);
    if (w->nheld == w->capheld) {
        long cap = w->capheld ? w->capheld * 2 : 1024;
        cJSON **p = realloc(w->held, (size_t)cap * sizeof *p);
        if (!p) CH_FAIL_GOTO(fail, CH_ENOMEM, "out of memory (%ld records)", cap);
        w->held = p;
        w->capheld = cap;
    }
    w->held[w->nheld++] = rec;
    return 0;
fail:
    cJSON_Delete(rec);
    return rc;
}

/* ---- --limit: a seeded sample of each source file ----------------------------------------- */

typedef struct {
    uint64_t key;
    long pos;
    const char *id;
} sample_key;

static int cmp_sample(const void *a, const void *b) {
    const sample_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The end of a source file: write the limit records with the smallest (key, id), in file order. */
static int flush_sample(ch_prep_out *w) {
    long n = w->nheld, keep = w->limit < n ? (long)w->limit : n;
    sample_key *k = malloc((size_t)(n ? n : 1) * sizeof *k);
    char *take = calloc((size_t)(n ? n : 1), 1);
    int rc = 0;
    if (!k || !take) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory sampling %ld records", n);
    for (long i = 0; i < n; i++)
        k[i] = (sample_key){ch_prep_key(rec_id(w->held[i]), w->seed), i, rec_id(w->held[i])};
    qsort(k, (size_t)n, sizeof *k, cmp_sample);
    for (long i = 0; i < keep; i++)
        take[k[i].pos] = 1;
    for (long i = 0; i < n; i++) {
        cJSON *rec = w->held[i];
        w->held[i] = NULL;
        if (!take[i]) cJSON_Delete(rec);
        else if (!rc) rc = write_rec(w, rec);
        else cJSON_Delete(rec);
    }
    w->nheld = 0;
done:
    free(k);
    free(take);
    return rc;
}

/* ---- sources: files, or directories expanded to their files with the format's extension ---- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* File name without directory and without its last extension. */
static void stem_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", base_name(path));
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* The files a SRC stands for: itself, or a directory's files with the format's extension, in
 * name order (stable whatever readdir returns). Appended to *files (malloc'ed strings). */
typedef struct {
    char **v;
    size_t n, cap;
} file_list;

static int list_push(file_list *l, char *s) {
    if (!s) CH_FAIL(CH_ENOMEM, "out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->v, cap * sizeof *p);
        if (!p) {
            free(s);
            CH_FAIL(CH_ENOMEM, "out of memory listing sources");
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int expand_src(const ch_prep_format *fmt, const char *path, file_list *l) {
    struct stat st;
    if (stat(path, &st)) CH_FAIL(CH_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return list_push(l, strdup(path));
    DIR *d = opendir(path);
    if (!d) CH_FAIL(CH_EIO, "%s: cannot list: %s", path, strerror(errno));
    size_t first = l->n, lx = strlen(fmt->ext);
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= lx || strcmp(e->d_name + len - lx, fmt->ext)) continue;
        char *name = malloc(strlen(path) + len + 2);
        if (name) sprintf(name, "%s/%s", path, e->d_name);
        rc = list_push(l, name);
    }
    closedir(d);
    if (rc) return rc;
    if (l->n == first) CH_FAIL(CH_EARG, "%s: no *%s files in this directory", path, fmt->ext);
    qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
    return 0;
}

/* An evaluation split is refused unless --allow-eval-split; allowed, stderr says which
 * benchmarks the output contaminates. */
static int check_eval_splits(const ch_prepare_opts *o, const ch_prep_format *fmt, const file_list *l) {
    int used[16] = {0}, any = 0;
    for (size_t i = 0; i < l->n; i++) {
        const ch_prep_eval_split *e = ch_prep_eval_split_of(fmt->name, l->v[i]);
        if (!e) continue;
        if (!o->allow_eval)
            CH_FAIL(CH_EARG,
                    "%s: %s: taking it would contaminate the %s evaluation (use the few-shot/dev data for targets, "
                    "or --allow-eval-split to take it anyway)",
                    l->v[i], e->how, e->benchmark);
        used[e - ch_prep_eval_splits] = any = 1;
    }
    if (!any) return 0;
    fprintf(stderr, "prepare %s: --allow-eval-split: contaminates:", fmt->name);
    for (int i = 0, k = 0; i < ch_prep_neval_splits; i++)
        if (used[i]) fprintf(stderr, "%s %s", k++ ? "," : "", ch_prep_eval_splits[i].benchmark);
    fprintf(stderr, " (its records carry meta.eval_split)\n");
    return 0;
}

static int convert_file(ch_prep_out *w, const ch_prepare_opts *o, const ch_prep_format *fmt, const char *path) {
    char stem[512];
    stem_of(path, stem, sizeof stem);
    const ch_prep_eval_split *e = ch_prep_eval_split_of(fmt->name, path);
    w->eval = e ? e->benchmark : NULL;
    CH_TRY(fmt->convert(w, o, path, stem));
    return w->limit >= 0 ? flush_sample(w) : 0;
}

/* ---- probeset: balanced, seeded selection from already prepared files ---------------------- */

/* The order of records is a function of (seed, id) only: sort by ch_prep_key. The n records of a
 * class with the smallest keys are kept, and the output is sorted by key, so the result does not
 * depend on the order of the inputs. Every kept record's text is rendered again from its meta
 * with the one probing template (ch_prep_probe_text). */
typedef struct {
    uint64_t key;
    int cap;
    cJSON *rec;
} probe_item;

static int cmp_item(const void *a, const void *b) {
    const probe_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(rec_id(x->rec), rec_id(y->rec));
}

/* Rebuild a prepared record in the canonical key order: label = capability, text = the probing
 * template of its meta. */
static int probe_record(const ch_prepare_opts *o, const cJSON *in, const char *cap, cJSON **out) {
    char *text = NULL;
    CH_TRY(ch_prep_probe_text(cJSON_GetObjectItemCaseSensitive(in, "meta"), o->show_options,
                              o->cue ? o->cue : "Answer:", rec_id(in), &text));
    cJSON *r = cJSON_CreateObject();
    int ok = r && cJSON_AddStringToObject(r, "id", rec_id(in)) && cJSON_AddStringToObject(r, "text", text) &&
             cJSON_AddStringToObject(r, "label", cap);
    free(text);
    const char *rest[] = {"task", "meta"};
    for (int i = 0; i < 2 && ok; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, rest[i]);
        if (v) ok = cJSON_AddItemToObject(r, rest[i], cJSON_Duplicate(v, 1));
    }
    if (!ok) {
        cJSON_Delete(r);
        CH_FAIL(CH_ENOMEM, "out of memory building the probing set");
    }
    *out = r;
    return 0;
}

/* Why a line of a CAP=FILE source cannot go into the probing set, or NULL. */
static const char *probe_line_problem(const ch_prepare_opts *o, const cJSON *obj, int cap) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(obj, "label");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "meta");
    if (!cJSON_IsObject(obj)) return "expected a JSON object";
    if (!cJSON_IsString(id) || !id->valuestring[0]) return "missing 'id' (not a prepared file?)";
    if (label && (!cJSON_IsString(label) || strcmp(label->valuestring, ch_capability_names[cap])))
        return "record carries another label than the class it is given for";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(meta, "question")))
        return "no meta.question to render the probing template from (prepare the source again)";
    if (!o->allow_eval && cJSON_GetObjectItemCaseSensitive(meta, "eval_split"))
        return "record of an evaluation split (meta.eval_split): refused without --allow-eval-split";
    return NULL;
}

static int push_item(probe_item **items, long *n, long *capacity, probe_item it) {
    if (*n == *capacity) {
        long c2 = *capacity ? *capacity * 2 : 1024;
        probe_item *p = realloc(*items, (size_t)c2 * sizeof *p);
        if (!p) CH_FAIL(CH_ENOMEM, "out of memory reading the probing sources");
        *items = p;
        *capacity = c2;
    }
    (*items)[(*n)++] = it;
    return 0;
}

/* --limit: keep the limit items of [first, *n) with the smallest keys. */
static void limit_items(const ch_prepare_opts *o, probe_item *items, long first, long *n) {
    if (o->limit < 0 || *n - first <= o->limit) return;
    qsort(items + first, (size_t)(*n - first), sizeof *items, cmp_item);
    for (long i = first + (long)o->limit; i < *n; i++)
        cJSON_Delete(items[i].rec);
    *n = first + (long)o->limit;
}

static int read_probe_file(const ch_prepare_opts *o, const char *path, int cap, probe_item **items, long *n,
                           long *capacity, int *eval) {
    ch_jsonl r;
    CH_TRY(ch_jsonl_open(&r, path));
    int rc = 0;
    long first = *n;
    for (;;) {
        const char *line;
        size_t len;
        int has;
        cJSON *obj = NULL;
        CH_TRY_GOTO(ch_jsonl_next(&r, &line, &len, &has), done);
        if (!has) break;
        CH_TRY_GOTO(ch_json_parse(path, r.lineno, line, len, &obj), done);
        const char *why = probe_line_problem(o, obj, cap);
        if (why) {
            cJSON_Delete(obj);
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: %s (%s=%s)", path, r.lineno, why, ch_capability_names[cap], path);
        }
        *eval |= cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "meta"), "eval_split") != NULL;
        probe_item it = {ch_prep_key(rec_id(obj), o->seed), cap, obj};
        if ((rc = push_item(items, n, capacity, it))) {
            cJSON_Delete(obj);
            goto done;
        }
    }
    limit_items(o, *items, first, n);
done:
    ch_jsonl_close(&r);
    return rc;
}

/* The records of the probeset's sources, read (every source is CAP=FILE). */
typedef struct {
    probe_item *items;
    long n, capacity;
    int present[5]; /* the classes given */
    int eval;       /* some record comes from an evaluation split */
} probe_items;

static int read_classes(const ch_prepare_opts *o, probe_items *pi) {
    for (int i = 0; i < o->nsrcs; i++) {
        const char *arg = o->srcs[i], *eq = strchr(arg, '=');
        char cap[64];
        if (!eq || (size_t)(eq - arg) >= sizeof cap || !eq[1])
            CH_FAIL(CH_EARG, "probeset: expected CAP=FILE, got '%s'", arg);
        memcpy(cap, arg, (size_t)(eq - arg));
        cap[eq - arg] = 0;
        int c = ch_capability_index(cap);
        if (c < 0) CH_FAIL(CH_EARG, "probeset: '%s' is not a capability (" CH_CAP_LIST ")", cap);
        pi->present[c] = 1;
        CH_TRY(read_probe_file(o, eq + 1, c, &pi->items, &pi->n, &pi->capacity, &pi->eval));
    }
    if (pi->eval)
        fprintf(stderr, "prepare probeset: --allow-eval-split: contaminates the benchmarks named in the records' "
                        "meta.eval_split\n");
    return 0;
}

/* Records per class: the smallest class's count, or --per-class when every class has that many. */
static int class_quota(const ch_prepare_opts *o, const probe_items *pi, long *m, int *nclasses) {
    long count[5] = {0};
    int ncls = 0;
    *m = -1;
    for (long i = 0; i < pi->n; i++) count[pi->items[i].cap]++;
    for (int c = 0; c < 5; c++) {
        if (!pi->present[c]) continue;
        ncls++;
        if (count[c] == 0) CH_FAIL(CH_EFORMAT, "probeset: class %s has no records", ch_capability_names[c]);
        if (*m < 0 || count[c] < *m) *m = count[c];
    }
    if (ncls < 2) CH_FAIL(CH_EARG, "probeset: give at least two classes as CAP=FILE");
    if (o->per_class >= 0) {
        for (int c = 0; c < 5; c++)
            if (pi->present[c] && count[c] < o->per_class)
                CH_FAIL(CH_EARG, "probeset: --per-class %ld but class %s has only %ld records", (long)o->per_class,
                        ch_capability_names[c], count[c]);
        *m = (long)o->per_class;
    }
    *nclasses = ncls;
    return 0;
}

static int nchoices(const cJSON *rec) {
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "meta"), "choices");
    return cJSON_IsArray(ch) ? cJSON_GetArraySize(ch) : 0;
}

/* Shown options must not tell the classes apart by their number either. */
static int same_choice_count(const cJSON *rec, const cJSON **first) {
    if (!*first) *first = rec;
    if (nchoices(rec) != nchoices(*first))
        CH_FAIL(CH_EFORMAT,
                "probeset --options show: %s has %d choices but %s has %d; shown options need one count for every "
                "record (else the count tells the classes apart): use --options hide",
                rec_id(rec), nchoices(rec), rec_id(*first), nchoices(*first));
    return 0;
}

/* Smallest keys first; keep the first m of each class, in that (global key) order. */
static int write_probeset(const ch_prepare_opts *o, probe_items *pi, long m, long *written) {
    ch_prep_out w;
    qsort(pi->items, (size_t)pi->n, sizeof *pi->items, cmp_item);
    CH_TRY(out_open(&w, o->output));
    long taken[5] = {0};
    int rc = 0;
    const cJSON *first = NULL; /* --options show: the record whose choice count all must share */
    for (long i = 0; i < pi->n && !rc; i++) {
        int c = pi->items[i].cap;
        if (taken[c] >= m) continue;
        cJSON *rec = NULL;
        rc = probe_record(o, pi->items[i].rec, ch_capability_names[c], &rec);
        if (!rc && o->show_options && (rc = same_choice_count(pi->items[i].rec, &first))) cJSON_Delete(rec);
        if (!rc) rc = ch_prep_emit(&w, rec);
        taken[c]++;
    }
    if (rc) {
        out_abort(&w);
        return rc;
    }
    *written = w.n;
    return out_commit(&w);
}

static int run_probeset(const ch_prepare_opts *o, long *written, long *per_class, int *nclasses) {
    probe_items pi;
    memset(&pi, 0, sizeof pi);
    int rc = read_classes(o, &pi);
    if (!rc) rc = class_quota(o, &pi, per_class, nclasses);
    if (!rc) rc = write_probeset(o, &pi, *per_class, written);
    for (long i = 0; i < pi.n; i++) cJSON_Delete(pi.items[i].rec);
    free(pi.items);
    return rc;
}

/* ---- command line ------------------------------------------------------------------------- */

typedef struct {
    ch_prepare_opts p;
    const char *timing;
    int force;
} cli;

static const ch_opt opts_table[] = {
    {"output", 'o', CH_OPT_PATH, offsetof(cli, p.output), "FILE", .flags = CH_OPT_REQUIRED,
     .help = "where to write (via a temporary file renamed at the end)"},
    {"label", 0, CH_OPT_STRING, offsetof(cli, p.label), "CAP",
     .help = "set the label of every record ('' for none); e.g. `prepare mmlu\n"
             "--label professional` for the professional-expertise class"},
    {"task", 0, CH_OPT_STRING, offsetof(cli, p.task), "NAME", .help = "set the task of every record ('' for none)"},
    {"cue", 0, CH_OPT_STRING, offsetof(cli, p.cue), "TEXT",
     .help = "line appended to each text ('' for none; default per format above,\n"
             "and Answer: for probeset); not for less"},
    {"limit", 0, CH_OPT_INT64, offsetof(cli, p.limit), "N", .lo = 0, .hi = INT64_MAX,
     .help = "a random sample of N records of each source file, drawn over the whole\n"
             "file (by --seed and the ids only; ids keep their file index; default: all)"},
    {"seed", 0, CH_OPT_U64, offsetof(cli, p.seed), "S", .def = "0",
     .help = "seed of --limit's sample and of probeset's selection and order"},
    {"allow-eval-split", 0, CH_OPT_FLAG, offsetof(cli, p.allow_eval),
     .help = "take a benchmark's evaluation split (MMLU test, BBH evaluation examples),\n"
             "refused otherwise; stderr names the benchmarks it contaminates"},
    {"options", 0, CH_OPT_CHOICE, offsetof(cli, p.show_options), .choices = "hide|show", .def = "hide",
     .help = "probeset: leave the choices out of every text (hide), or show them as\n"
             "A. ... lines in every text (show: every record needs the same count)"},
    {"per-class", 0, CH_OPT_INT64, offsetof(cli, p.per_class), "N", .lo = 0, .hi = INT64_MAX,
     .help = "probeset: records per class (default: the smallest class)"},
    {"force", 0, CH_OPT_FLAG, offsetof(cli, force),
     .help = "replace an existing output (without it an existing one is refused)"},
    {"timing", 0, CH_OPT_PATH, offsetof(cli, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = records\n"
             "written, sources = SRC arguments"},
};

/* One help line per format; a '\n' in its help continues under the text column. */
static void print_format(FILE *f, const char *name, const char *help, const char *label, const char *cue) {
    fprintf(f, "  %-10s ", name);
    for (const char *p = help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') fprintf(f, "%13s", "");
    }
    fprintf(f, " (label: %s%s%s)\n", label ? label : "none", cue ? ", cue: " : "", cue ? cue : "");
}

static void list_formats(FILE *f) {
    fprintf(f, "\nformats:\n");
    for (int i = 0; i < ch_prep_nformats; i++) {
        const ch_prep_format *p = &ch_prep_formats[i];
        print_format(f, p->name, p->help, p->label, p->cue);
    }
    fprintf(f,
            "  %-10s the balanced probing set from prepared files given as CAP=FILE (CAP: math,\n"
            "             reading, commonsense, science, professional; repeat a CAP for more files);\n"
            "             records get label CAP and the one probing template as text:\n"
            "             [PASSAGE\\n\\n]Question: QUESTION[\\nA. CHOICE...]\\nAnswer: (from meta; choices\n"
            "             only with --options show); every class gets the same count (the smallest,\n"
            "             or --per-class N); order and choice depend only on --seed and the ids\n",
            "probeset");
    fprintf(f, "\nevaluation splits (refused without --allow-eval-split):\n");
    for (int i = 0; i < ch_prep_neval_splits; i++)
        fprintf(f, "  %-10s %s -> contaminates %s\n", ch_prep_eval_splits[i].format, ch_prep_eval_splits[i].how,
                ch_prep_eval_splits[i].benchmark);
}

static const ch_opt_cmd cmd = {
    "prepare", opts_table, CH_NOPTS(opts_table), .positional = "FORMAT SRC...", .min_pos = 1, .max_pos = -1,
    .pos_offset = offsetof(cli, p.srcs), .npos_offset = offsetof(cli, p.nsrcs),
    .about = "The probing set: capheads prepare probeset CAP=FILE... --output FILE.jsonl [--seed S]\n"
             "[--per-class N]\n\n"
             "Convert a dataset's original format into capheads' JSONL records, one per line:\n"
             "  {\"id\", \"text\" | \"messages\", \"label\"?, \"task\"?, \"meta\"?}\n"
             "ids are DATASET/FILE-STEM/INDEX (INDEX counts the records of one file from 0).\n"
             "A SRC directory stands for its files with the format's extension, in name order.\n",
    .more_help = list_formats};

/* FORMAT is the first positional argument, the sources the rest; the format must be known. */
static int resolve_format(ch_prepare_opts *o, const ch_prep_format **fmt) {
    o->format = o->srcs[0];
    o->srcs++, o->nsrcs--;
    *fmt = NULL;
    for (int i = 0; i < ch_prep_nformats; i++)
        if (!strcmp(o->format, ch_prep_formats[i].name)) *fmt = &ch_prep_formats[i];
    if (!*fmt && strcmp(o->format, "probeset")) {
        char known[256] = "";
        for (int i = 0; i < ch_prep_nformats; i++) {
            strcat(known, ch_prep_formats[i].name);
            strcat(known, ", ");
        }
        CH_FAIL(CH_EARG, "unknown format '%s' (known: %sprobeset)", o->format, known);
    }
    if (o->nsrcs < 1) CH_FAIL(CH_EARG, "%s: no SRC given", o->format);
    if (o->label && *o->label && ch_capability_index(o->label) < 0)
        CH_FAIL(CH_EARG, "--label '%s' is not a capability (" CH_CAP_LIST ")", o->label);
    if (*fmt && o->show_options)
        CH_FAIL(CH_EARG, "--options applies to probeset only (a format's text shows its choices)");
    return 0;
}

/* Every source converted into one output, committed only when all of them are. */
static int run_convert(const ch_prepare_opts *o, const ch_prep_format *fmt, long *nrec) {
    file_list files = {0};
    int rc = 0;
    for (int i = 0; !rc && i < o->nsrcs; i++) rc = expand_src(fmt, o->srcs[i], &files);
    if (!rc) rc = check_eval_splits(o, fmt, &files);
    if (rc) {
        list_free(&files);
        return rc;
    }
    ch_prep_out w;
    rc = out_open(&w, o->output);
    w.limit = o->limit;
    w.seed = o->seed;
    for (size_t i = 0; !rc && i < files.n; i++) rc = convert_file(&w, o, fmt, files.v[i]);
    list_free(&files);
    long n = w.n;
    *nrec = n;
    if (!rc) rc = out_commit(&w);
    else if (w.f) out_abort(&w);
    if (!rc) printf("prepare %s: %ld records -> %s\n", o->format, n, o->output);
    return rc;
}

/* The sources (CAP=FILE for probeset: the FILE) against --output and --timing. */
static int guard(const cli *c, MPI_Comm comm) {
    ch_path_role *in = calloc((size_t)c->p.nsrcs + 1, sizeof *in);
    if (!in) CH_FAIL(CH_ENOMEM, "out of memory");
    for (int i = 0; i < c->p.nsrcs; i++) {
        const char *eq = strcmp(c->p.format, "probeset") ? NULL : strchr(c->p.srcs[i], '=');
        in[i] = (ch_path_role){eq ? eq + 1 : c->p.srcs[i], "SRC", 0};
    }
    const ch_path_role out[] = {{c->p.output, "--output", 0}, {c->timing, "--timing", 0}};
    int rc = ch_stage_guard(comm, in, c->p.nsrcs, out, 2, 1, c->force);
    free(in);
    return rc;
}

/* A serial stage: rank 0 converts, the others learn the outcome. */
static int run(const ch_prepare_opts *o, const ch_prep_format *fmt, MPI_Comm comm, long *nrec) {
    int rank, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (rank == 0 && fmt) rc = run_convert(o, fmt, nrec);
    if (rank == 0 && !fmt) {
        long m = 0;
        int ncls = 0;
        rc = run_probeset(o, nrec, &m, &ncls);
        if (!rc)
            printf("prepare probeset: %ld records (%d classes x %ld, seed %" PRIu64 ") -> %s\n", *nrec, ncls, m,
                   o->seed, o->output);
    }
    int arc = ch_mpi_agree(comm, rc);
    if (arc && !rc) ch_err_wrap("prepare runs on rank 0 only: ");
    return arc;
}

int ch_cmd_prepare(int argc, char **argv, MPI_Comm comm) {
    cli c = {.p = {.limit = -1, .per_class = -1}};
    int help, rc = 0;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &c, &help));
    char **pos = c.p.srcs; /* resolve_format moves srcs past FORMAT */
    if (help) {
        rc = ch_opt_help(&cmd, comm);
        goto done;
    }
    const ch_prep_format *fmt;
    CH_TRY_GOTO(resolve_format(&c.p, &fmt), done);
    CH_TRY_GOTO(guard(&c, comm), done);
    long nrec = -1; /* records written (rank 0), for the timing record */
    ch_timing tm;
    ch_timing_start(&tm, "prepare");
    rc = run(&c.p, fmt, comm, &nrec);
    tm.records = nrec;
    if (!rc) rc = ch_timing_add(&tm, "sources", c.p.nsrcs);
    rc = ch_timing_finish(&tm, c.timing, rc, comm);
done:
    free(pos);
    return rc;
}
