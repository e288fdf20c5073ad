/* extract_plan.h - who computes which records, in which batches (the extract stage's plan).
 *
 * The corpus is split among ranks by bytes (mpi/lines.h); each rank parses and tokenizes its own
 * records once, to learn their token counts and string widths. The token counts are gathered (4
 * bytes a record) and every rank cuts the SAME global batches from them under the token budget,
 * then takes a contiguous block of batches balanced by tokens. A record is therefore always
 * computed in the same batch whatever the rank count, which keeps the archive byte-identical for
 * 1..R ranks even though GEMM results depend on the batch's shape. */
#ifndef CH_EXTRACT_PLAN_H
#define CH_EXTRACT_PLAN_H

#include <mpi.h>
#include <stdint.h>

#include "corpus.h"

typedef struct {
    int64_t n_records;
    int id_len, task_len;   /* longest id / task + 1, over all ranks */
    int64_t total_tokens;
    int64_t n_batches;
    int64_t *batch_start;   /* [n_batches + 1] record index where each batch starts */
    int64_t b0, b1;         /* this rank's batches [b0, b1) */
    int32_t *n_tokens;      /* [n_records], after any cut */
    uint8_t *cut;           /* [n_records] 1 when --truncate cut the record */
    int64_t n_truncated;    /* records cut */
    int64_t *start, *len, *line; /* [n_records] byte offset, length, 1-based line of each record */
} ch_extract_plan;

/* Collective. Parses and renders every record (errors name file:line), refuses records longer
 * than max_tokens or than the model's window (max_position_embeddings; 0: none) or, under trunc
 * left|right, cuts them to ch_extract_limit (batch_load must cut them the same way), refuses
 * duplicate ids (naming both lines), plans batches of at most batch_tokens tokens (a longer record
 * is a batch alone). The plan is made from the token counts of all ranks together: the same for
 * any rank count. */
int ch_extract_plan_make(const char *input, const ch_corpus_render *how, int window, int max_tokens, ch_truncate trunc,
                         int batch_tokens, MPI_Comm comm, ch_extract_plan *p);
/* The length --truncate cuts to: min(max_tokens, window) when a window is known (> 0). */
int ch_extract_limit(int max_tokens, int window);
void ch_extract_plan_free(ch_extract_plan *p);

#endif
