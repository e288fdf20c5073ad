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
    int32_t *n_tokens; /* per own record */
    int id_len, task_len;
} own_records;

static int first_pass(const char *input, int max_tokens, const ch_tokenizer *tok, ch_chat_style style, int vocab,
                      own_records *own, MPI_Comm comm) {
    CH_TRY(ch_lines_plan(input, comm, &own->lines));
    ch_lines *l = &own->lines;
    int rc = CH_ALLOC(own->n_tokens, l->count, "token counts");
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
        if ((rc = ch_corpus_record(buf, (size_t)l->len[i], input, l->line[i], tok, style, vocab, &r))) break;
        if (r.n_tokens > max_tokens)
            rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "%s:%lld: record '%s' has %d tokens, more than --max-tokens %d",
                            input, (long long)l->line[i], r.id, r.n_tokens, max_tokens);
        own->n_tokens[i] = r.n_tokens;
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

/* Global batches [bstart[b], bstart[b+1]) of records under the token budget; then this rank's
 * block of batches [*b0, *b1), balanced by tokens. */
static int plan_batches(int batch_tokens, own_records *own, MPI_Comm comm, int32_t **all_ntok, int64_t **bstart,
                        int64_t *nb, int64_t *b0, int64_t *b1) {
    int rank, size;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    int64_t N = own->lines.total;
    int *counts = NULL, *displ = NULL;
    CH_TRY(CH_ALLOC(*all_ntok, N, "token counts"));
    CH_TRY(CH_ALLOC(counts, size, "counts"));
    CH_TRY(CH_ALLOC(displ, size, "displacements"));
    int mine = (int)own->lines.count;
    int rc = 0;
    CH_MPI_TRY_GOTO(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm), out);
    for (int r = 0, off = 0; r < size; r++) displ[r] = off, off += counts[r];
    CH_MPI_TRY_GOTO(MPI_Allgatherv(own->n_tokens, mine, MPI_INT32_T, *all_ntok, counts, displ, MPI_INT32_T, comm), out);
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

int ch_extract_plan_make(const char *input, const ch_tokenizer *tok, ch_chat_style style, int vocab,
                         int max_tokens, int batch_tokens, MPI_Comm comm, ch_extract_plan *p) {
    memset(p, 0, sizeof *p);
    own_records own;
    memset(&own, 0, sizeof own);
    int rc = first_pass(input, max_tokens, tok, style, vocab, &own, comm);
    if (!rc) rc = plan_batches(batch_tokens, &own, comm, &p->n_tokens, &p->batch_start, &p->n_batches, &p->b0, &p->b1);
    if (!rc) rc = gather_offsets(&own, comm, &p->start, &p->len, &p->line);
    p->n_records = own.lines.total;
    p->id_len = own.id_len, p->task_len = own.task_len;
    for (int64_t i = 0; !rc && i < p->n_records; i++) p->total_tokens += p->n_tokens[i];
    ch_lines_free(&own.lines);
    free(own.n_tokens);
    if (rc) ch_extract_plan_free(p);
    return rc;
}

void ch_extract_plan_free(ch_extract_plan *p) {
    free(p->batch_start), free(p->n_tokens), free(p->start), free(p->len), free(p->line);
    memset(p, 0, sizeof *p);
}
