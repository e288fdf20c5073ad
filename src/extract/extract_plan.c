/* extract_plan.c - see extract_plan.h. */
#include "extract_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "corpus.h"
#include "err.h"
#include "mpicheck.h"
#include "lines.h"

/* What a rank knows of its own records after the first pass. */
typedef struct {
    ch_lines lines;
    int32_t *n_tokens; /* per own record, after any cut */
    uint8_t *cut;      /* per own record: 1 when --truncate cut it */
    uint64_t *id_hash; /* per own record: FNV-1a of the id, to find duplicates across ranks */
    char **ids;        /* per own record, until the duplicate check has run */
    int id_len, task_len;
} own_records;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* A record longer than the model's window would be computed at positions the model never saw
 * (and past a RoPE table sized for the window): refused by name, as one over --max-tokens, unless
 * --truncate cuts it to min(--max-tokens, window). */
static int check_length(const char *input, int64_t line, ch_record *r, int max_tokens, int window, ch_truncate trunc,
                        int32_t bos, uint8_t *cut) {
    *cut = (uint8_t)ch_record_cut(r, ch_extract_limit(max_tokens, window), trunc, bos);
    if (window > 0 && r->n_tokens > window)
        CH_FAIL(CH_EFORMAT, "%s:%lld: record '%s' has %d tokens, more than the model's window "
                "(max_position_embeddings %d in config.json; --truncate left|right cuts such records)", input, (long long)line, r->id, r->n_tokens, window);
    if (r->n_tokens > max_tokens)
        CH_FAIL(CH_EFORMAT, "%s:%lld: record '%s' has %d tokens, more than --max-tokens %d (--truncate left|right cuts "
                "such records)", input,
                (long long)line, r->id, r->n_tokens, max_tokens);
    return 0;
}

static int first_pass(const char *input, int max_tokens, int window, ch_truncate trunc, const ch_corpus_render *how,
                      own_records *own, MPI_Comm comm) {
    CH_TRY(ch_lines_plan(input, comm, &own->lines));
    ch_lines *l = &own->lines;
    int rc = CH_ALLOC(own->n_tokens, l->count, "token counts");
    if (!rc) rc = CH_ALLOC(own->id_hash, l->count, "id hashes");
    if (!rc) rc = CH_ALLOC(own->ids, l->count, "ids");
    if (!rc) rc = CH_ALLOC(own->cut, l->count, "cut flags");
    FILE *f = rc ? NULL : fopen(input, "rb");
    if (!rc && !f) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open", input);
    char *buf = NULL;
    own->id_len = own->task_len = 1;
    for (int64_t i = 0; i < l->count && !rc; i++) {
        char *nb = realloc(buf, (size_t)l->len[i] + 1);
        if (!nb) {
            rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
            break;
        }
        buf = nb;
        if (fseeko(f, l->start[i], SEEK_SET) || fread(buf, 1, (size_t)l->len[i], f) != (size_t)l->len[i]) {
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s:%lld: read failed", input, (long long)l->line[i]);
            break;
        }
        ch_record r;
        if ((rc = ch_corpus_record(buf, (size_t)l->len[i], input, l->line[i], how, &r))) break;
        rc = check_length(input, l->line[i], &r, max_tokens, window, trunc, how->bos, &own->cut[i]);
        own->n_tokens[i] = r.n_tokens;
        own->id_hash[i] = fnv1a(r.id);
        if (!rc && !(own->ids[i] = strdup(r.id))) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
        if ((int)strlen(r.id) + 1 > own->id_len) own->id_len = (int)strlen(r.id) + 1;
        if ((int)strlen(r.task) + 1 > own->task_len) own->task_len = (int)strlen(r.task) + 1;
        ch_record_free(&r);
    }
    free(buf);
    if (f) fclose(f);
    CH_TRY(ch_mpi_agree(comm, rc));
    int lens[2] = {own->id_len, own->task_len};
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, lens, 2, MPI_INT, MPI_MAX, comm));
    own->id_len = lens[0], own->task_len = lens[1];
    if (l->total == 0) CH_FAIL(CH_EFORMAT, "%s: the corpus has no records", input);
    return 0;
}

/* Ids are the rows' names in the archive and what select writes back: two records with one id
 * would make the archive ambiguous (inspect --verify calls it inconsistent). The hashes and line
 * numbers of all records are gathered; the rank holding the later record of the first duplicate
 * names both lines, the other ranks fail with it through the agreement. */
typedef struct {
    uint64_t hash;
    int64_t g; /* the record's index in the corpus */
} id_key;

static int cmp_id_key(const void *a, const void *b) {
    const id_key *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

static int check_unique_ids(const char *input, own_records *own, MPI_Comm comm) {
    int rank = 0, size = 1, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    const int64_t N = own->lines.total;
    int *counts = NULL, *displ = NULL, mine = (int)own->lines.count;
    uint64_t *hash = NULL;
    int64_t *line = NULL;
    id_key *key = NULL;
    CH_TRY_GOTO(CH_ALLOC(counts, size, "counts"), out);
    CH_TRY_GOTO(CH_ALLOC(displ, size, "displacements"), out);
    CH_TRY_GOTO(CH_ALLOC(hash, N + 1, "id hashes"), out);
    CH_TRY_GOTO(CH_ALLOC(line, N + 1, "line numbers"), out);
    CH_TRY_GOTO(CH_ALLOC(key, N + 1, "id order"), out);
    CH_MPI_TRY_GOTO(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm), out);
    for (int r = 0, off = 0; r < size; r++) displ[r] = off, off += counts[r];
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->id_hash, mine, MPI_UINT64_T, hash, counts, displ, MPI_UINT64_T, comm), out);
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->lines.line, mine, MPI_INT64_T, line, counts, displ, MPI_INT64_T, comm), out);
    for (int64_t g = 0; g < N; g++) key[g] = (id_key){hash[g], g};
    qsort(key, (size_t)N, sizeof *key, cmp_id_key);
    /* equal ids sort together, in file order: report the earliest repeat and its group's first */
    int64_t first = -1, second = -1;
    for (int64_t k = 1, head = 0; k < N; k++) {
        if (key[k].hash != key[k - 1].hash) {
            head = k;
            continue;
        }
        if (second < 0 || key[k].g < second) first = key[head].g, second = key[k].g;
    }
    if (second >= displ[rank] && second < displ[rank] + mine)
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s:%lld: duplicate id '%s' (first at line %lld): ids must be unique",
                        input, (long long)line[second], own->ids[second - displ[rank]], (long long)line[first]);
out:
    free(counts), free(displ), free(hash), free(line), free(key);
    return ch_mpi_agree(comm, rc);
}

/* Global batches [bstart[b], bstart[b+1]) of records under the token budget; then this rank's
 * block of batches [*b0, *b1), balanced by tokens. */
static int plan_batches(int batch_tokens, own_records *own, MPI_Comm comm, int32_t **all_ntok, uint8_t **all_cut,
                        int64_t **bstart, int64_t *nb, int64_t *b0, int64_t *b1) {
    int rank, size;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    int64_t N = own->lines.total;
    int *counts = NULL, *displ = NULL;
    CH_TRY(CH_ALLOC(*all_ntok, N, "token counts"));
    CH_TRY(CH_ALLOC(*all_cut, N, "cut flags"));
    CH_TRY(CH_ALLOC(counts, size, "counts"));
    CH_TRY(CH_ALLOC(displ, size, "displacements"));
    int mine = (int)own->lines.count;
    int rc = 0;
    CH_MPI_TRY_GOTO(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm), out);
    for (int r = 0, off = 0; r < size; r++) displ[r] = off, off += counts[r];
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->n_tokens, mine, MPI_INT32_T, *all_ntok, counts, displ, MPI_INT32_T, comm), out);
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->cut, mine, MPI_UINT8_T, *all_cut, counts, displ, MPI_UINT8_T, comm), out);
    CH_TRY_GOTO(CH_ALLOC(*bstart, N + 1, "batch plan"), out);
    int64_t n = 0, tok = 0, total = 0;
    (*bstart)[0] = 0;
    for (int64_t i = 0; i < N; i++) {
        if (i > (*bstart)[n] && tok + (*all_ntok)[i] > batch_tokens) (*bstart)[++n] = i, tok = 0;
        tok += (*all_ntok)[i];
        total += (*all_ntok)[i];
    }
    (*bstart)[++n] = N;
    *nb = n;
    /* batch b goes to the rank whose token share holds the batch's first token */
    int64_t cum = 0;
    *b0 = *b1 = -1;
    for (int64_t b = 0; b < n; b++) {
        int owner = total ? (int)((__int128)cum * size / total) : 0;
        if (owner == rank && *b0 < 0) *b0 = b;
        if (owner == rank) *b1 = b + 1;
        for (int64_t i = (*bstart)[b]; i < (*bstart)[b + 1]; i++) cum += (*all_ntok)[i];
    }
    if (*b0 < 0) *b0 = *b1 = 0;
out:
    free(counts), free(displ);
    return rc;
}

/* Byte offsets of every record (each rank needs the lines of its batches). */
static int gather_offsets(own_records *own, MPI_Comm comm, int64_t **start, int64_t **len, int64_t **line) {
    int size;
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    int64_t N = own->lines.total;
    int *counts = NULL, *displ = NULL, mine = (int)own->lines.count, rc = 0;
    CH_TRY(CH_ALLOC(counts, size, "counts"));
    CH_TRY_GOTO(CH_ALLOC(displ, size, "displacements"), out);
    CH_TRY_GOTO(CH_ALLOC(*start, N, "offsets"), out);
    CH_TRY_GOTO(CH_ALLOC(*len, N, "lengths"), out);
    CH_TRY_GOTO(CH_ALLOC(*line, N, "line numbers"), out);
    CH_MPI_TRY_GOTO(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm), out);
    for (int r = 0, off = 0; r < size; r++) displ[r] = off, off += counts[r];
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->lines.start, mine, MPI_INT64_T, *start, counts, displ, MPI_INT64_T, comm), out);
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->lines.len, mine, MPI_INT64_T, *len, counts, displ, MPI_INT64_T, comm), out);
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->lines.line, mine, MPI_INT64_T, *line, counts, displ, MPI_INT64_T, comm), out);
out:
    free(counts), free(displ);
    return rc;
}

int ch_extract_limit(int max_tokens, int window) { return window > 0 && window < max_tokens ? window : max_tokens; }

int ch_extract_plan_make(const char *input, const ch_corpus_render *how, int window, int max_tokens, ch_truncate trunc,
                         int batch_tokens, MPI_Comm comm, ch_extract_plan *p) {
    memset(p, 0, sizeof *p);
    own_records own;
    memset(&own, 0, sizeof own);
    int rc = first_pass(input, max_tokens, window, trunc, how, &own, comm);
    if (!rc) rc = check_unique_ids(input, &own, comm);
    if (!rc)
        rc = plan_batches(batch_tokens, &own, comm, &p->n_tokens, &p->cut, &p->batch_start, &p->n_batches, &p->b0,
                          &p->b1);
    if (!rc) rc = gather_offsets(&own, comm, &p->start, &p->len, &p->line);
    p->n_records = own.lines.total;
    p->id_len = own.id_len, p->task_len = own.task_len;
    for (int64_t i = 0; !rc && i < p->n_records; i++) p->total_tokens += p->n_tokens[i], p->n_truncated += p->cut[i];
    for (int64_t i = 0; own.ids && i < own.lines.count; i++) free(own.ids[i]);
    ch_lines_free(&own.lines);
    free(own.n_tokens), free(own.id_hash), free(own.ids), free(own.cut);
    if (rc) ch_extract_plan_free(p);
    return rc;
}

void ch_extract_plan_free(ch_extract_plan *p) {
    free(p->batch_start), free(p->n_tokens), free(p->cut), free(p->start), free(p->len), free(p->line);
    memset(p, 0, sizeof *p);
}
