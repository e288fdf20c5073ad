/* select_out.h - the select stage's outputs, written collectively.
 *
 * DIR/<task>.jsonl : the selected pool lines, byte-identical to the pool file, in pool order.
 *                    Each rank copies its own selected lines; offsets come from an MPI_Exscan of
 *                    the byte counts and one MPI_File_write_at_all puts them in place. Written
 *                    under its partial name (outpath.h), removed on failure; the caller renames
 *                    it into place with the run's other outputs (ch_out_set_add / ch_out_set_finish).
 * DIR/scores.h5    : /scores [T, N] f32 (every pool row's score for every task), /selected
 *                    [T, N] uint8, /tasks [T]; written with parallel HDF5, each rank its rows. */
#ifndef CH_SELECT_OUT_H
#define CH_SELECT_OUT_H

#include <mpi.h>
#include <stdint.h>

/* Collective. Lines [start[i], start[i]+len[i]) of pool for the local rows with sel[i]. */
int ch_select_write_jsonl(const char *out_path, const char *pool_path, const int64_t *start,
                          const int64_t *len, const uint8_t *sel, int64_t n, MPI_Comm comm);

typedef struct ch_scores_file ch_scores_file;
/* Collective. */
int ch_scores_create(const char *path, char **tasks, int ntask, int64_t nrows, MPI_Comm comm,
                     ch_scores_file **out);
/* Collective: rows [row0, row0 + n) of task t. */
int ch_scores_write(ch_scores_file *s, int t, int64_t row0, int64_t n, const float *scores,
                    const uint8_t *sel);
int ch_scores_close(ch_scores_file *s);

#endif
