/* prepare_probeset.c - `prepare probeset`: the balanced probing set from prepared files given as
 * CAP=FILE, every record rendered with the one probing template (prepare.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "err.h"
#include "jsonl.h"
#include "prepare_fmt.h"
#include "prepare_out.h"

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
    return strcmp(ch_prep_rec_id(x->rec), ch_prep_rec_id(y->rec));
}

/* Rebuild a prepared record in the canonical key order: label = capability, text = the probing
 * template of its meta. */
static int probe_record(const ch_prepare_opts *o, const cJSON *in, const char *cap, cJSON **out) {
    char *text = NULL;
    CH_TRY(ch_prep_probe_text(cJSON_GetObjectItemCaseSensitive(in, "meta"), o->show_options,
                              o->cue ? o->cue : "Answer:", ch_prep_rec_id(in), &text));
    cJSON *r = cJSON_CreateObject();
    int ok = r && cJSON_AddStringToObject(r, "id", ch_prep_rec_id(in)) && cJSON_AddStringToObject(r, "text", text) &&
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

/* read_probe_file's state: the class its records are for and where they go. */
typedef struct {
    const ch_prepare_opts *o;
    const char *path;
    int cap;
    probe_item **items;
    long *n, *capacity;
    int *eval;
} probe_file;

static int probe_line(void *ctx, const ch_jsonl *r, const char *where, cJSON *obj) {
    (void)r;
    probe_file *p = ctx;
    const char *why = probe_line_problem(p->o, obj, p->cap);
    int rc = why ? ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: %s (%s=%s)", where, why, ch_capability_names[p->cap], p->path)
                 : push_item(p->items, p->n, p->capacity, (probe_item){ch_prep_key(ch_prep_rec_id(obj), p->o->seed), p->cap, obj});
    if (rc) cJSON_Delete(obj);
    else *p->eval |= cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "meta"), "eval_split") != NULL;
    return rc;
}

static int read_probe_file(const ch_prepare_opts *o, const char *path, int cap, probe_item **items, long *n,
                           long *capacity, int *eval) {
    long first = *n;
    probe_file p = {o, path, cap, items, n, capacity, eval};
    CH_TRY(ch_prep_jsonl_objects(path, probe_line, &p));
    limit_items(o, *items, first, n);
    return 0;
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
                ch_prep_rec_id(rec), nchoices(rec), ch_prep_rec_id(*first), nchoices(*first));
    return 0;
}

/* In key order: the first m of each class, or (--match-length) those keep marks. */
static int write_probeset(const ch_prepare_opts *o, probe_items *pi, long m, const char *keep, long *written) {
    ch_prep_out w;
    CH_TRY(ch_prep_out_open(&w, o->output));
    long taken[5] = {0};
    int rc = 0;
    const cJSON *first = NULL; /* --options show: the record whose choice count all must share */
    for (long i = 0; i < pi->n && !rc; i++) {
        int c = pi->items[i].cap;
        if (keep ? !keep[i] : taken[c] >= m) continue;
        cJSON *rec = NULL;
        rc = probe_record(o, pi->items[i].rec, ch_capability_names[c], &rec);
        if (!rc && o->show_options && (rc = same_choice_count(pi->items[i].rec, &first))) cJSON_Delete(rec);
        if (!rc) rc = ch_prep_emit(&w, rec);
        taken[c]++;
    }
    if (rc) {
        ch_prep_out_abort(&w);
        return rc;
    }
    *written = w.n;
    return ch_prep_out_commit(&w);
}

/* Unicode code points of a UTF-8 string: what probe's format baseline counts as chars. */
static long code_points(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* --match-length: every candidate's rendered text measured, the kept ones marked in *keep. */
static int match_lengths(const ch_prepare_opts *o, const probe_items *pi, long *m, char **keep) {
    int *cap = malloc((size_t)(pi->n ? pi->n : 1) * sizeof *cap);
    long *len = malloc((size_t)(pi->n ? pi->n : 1) * sizeof *len);
    *keep = malloc((size_t)(pi->n ? pi->n : 1));
    int rc = 0;
    if (!cap || !len || !*keep) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory matching lengths");
    for (long i = 0; i < pi->n; i++) {
        const cJSON *rec = pi->items[i].rec;
        char *text = NULL;
        CH_TRY_GOTO(ch_prep_probe_text(cJSON_GetObjectItemCaseSensitive(rec, "meta"), o->show_options,
                                       o->cue ? o->cue : "Answer:", ch_prep_rec_id(rec), &text),
                    done);
        cap[i] = pi->items[i].cap;
        len[i] = code_points(text);
        free(text);
    }
    rc = ch_prep_match_length(pi->n, cap, len, pi->present, o->per_class, *keep, m);
done:
    free(cap);
    free(len);
    return rc;
}

int ch_prep_run_probeset(const ch_prepare_opts *o, long *written, long *per_class, int *nclasses) {
    probe_items pi;
    memset(&pi, 0, sizeof pi);
    char *keep = NULL;
    int rc = read_classes(o, &pi);
    if (!rc) rc = class_quota(o, &pi, per_class, nclasses);
    if (!rc) qsort(pi.items, (size_t)pi.n, sizeof *pi.items, cmp_item);
    if (!rc && o->match_length) rc = match_lengths(o, &pi, per_class, &keep);
    if (!rc) rc = write_probeset(o, &pi, *per_class, keep, written);
    free(keep);
    for (long i = 0; i < pi.n; i++) cJSON_Delete(pi.items[i].rec);
    free(pi.items);
    return rc;
}
