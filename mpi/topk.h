/* topk.h - the global top k of scores spread over ranks, without gathering them.
 *
 * Order: score descending, then id ascending (byte order), so the choice is a pure function of
 * the (id, score) set: the same rows are selected for any number of ranks and any split. The k-th
 * largest score is found by radix selection on the scores' order-preserving 64-bit keys: 8 rounds
 * of one MPI_Allreduce of 256 counts. Only the rows that tie exactly with the k-th score have
 * their ids exchanged (MPI_Allgatherv), to break the tie by id. */
#ifndef CH_TOPK_H
#define CH_TOPK_H

#include <mpi.h>
#include <stdint.h>

/* Collective. score/ids: this rank's n rows; selected[i] set to 1 for the chosen rows (0
 * otherwise). k is global (0 <= k; k >= total selects all). NaN scores are refused. On return
 * *kth_score holds the smallest selected score (NaN when nothing is selected). */
int ch_topk_select(const double *score, const char *const *ids, int64_t n, int64_t k,
                   MPI_Comm comm, uint8_t *selected, double *kth_score);

#endif
