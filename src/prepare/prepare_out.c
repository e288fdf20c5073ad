/* prepare_out.c - the output writer of `prepare` (prepare_out.h): records go to a temporary file
 * renamed only when complete; ids are checked unique at the end; under --limit each source file's
 * records are held and only its seeded sample is written, in file order. */
#include "prepare_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capability.h"
#include "err.h"
#include "outpath.h"


/* The sampling key (prepare.h): a 64-bit mix of the id and the seed. */
static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ch_prep_fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

uint64_t ch_prep_key(const char *id, uint64_t seed) { return mix64(ch_prep_fnv1a64(id) ^ mix64(seed)); }

const char *ch_prep_rec_id(const cJSON *rec) {
    return cJSON_GetObjectItemCaseSensitive(rec, "id")->valuestring;
}

int ch_prep_out_open(ch_prep_out *w, const char *path) {
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

void ch_prep_out_abort(ch_prep_out *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
    unlink(w->tmp);
    out_free(w);
}

int ch_prep_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ch_prep_out_commit(ch_prep_out *w) {
    int rc = 0;
    qsort(w->ids, (size_t)w->n, sizeof *w->ids, ch_prep_cmp_str);
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
    CH_TRY_GOTO(ch_out_publish(w->tmp, w->path), fail);
    out_free(w);
    return 0;
fail:
    ch_prep_out_abort(w);
    return rc;
}

/* arr (of *cap items of size each, n used) with room for one more: doubled when full; NULL
 * (arr untouched) when memory is out. */
static void *room_for_one(void *arr, long *cap, long n, size_t size) {
    if (n < *cap) return arr;
    long c2 = *cap ? *cap * 2 : 1024;
    void *p = realloc(arr, (size_t)c2 * size);
    if (p) *cap = c2;
    return p;
}

/* Write one record (and remember its id); rec is consumed. */
static int write_rec(ch_prep_out *w, cJSON *rec) {
    int rc = 0;
    ch_out_kill_point("write"); /* fault injection (tests/test_faults_stages.sh) */
    char *line = NULL;
    const char *id = ch_prep_rec_id(rec);
    char **ids = room_for_one(w->ids, &w->cap, w->n, sizeof *w->ids);
    if (!ids) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory (%ld ids)", w->n);
    w->ids = ids;
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
    cJSON **held = room_for_one(w->held, &w->capheld, w->nheld, sizeof *w->held);
    if (!held) CH_FAIL_GOTO(fail, CH_ENOMEM, "out of memory (%ld records)", w->nheld);
    w->held = held;
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
int ch_prep_out_end_file(ch_prep_out *w) {
    if (w->limit < 0) return 0;
    long n = w->nheld, keep = w->limit < n ? (long)w->limit : n;
    sample_key *k = malloc((size_t)(n ? n : 1) * sizeof *k);
    char *take = calloc((size_t)(n ? n : 1), 1);
    int rc = 0;
    if (!k || !take) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory sampling %ld records", n);
    for (long i = 0; i < n; i++)
        k[i] = (sample_key){ch_prep_key(ch_prep_rec_id(w->held[i]), w->seed), i, ch_prep_rec_id(w->held[i])};
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
