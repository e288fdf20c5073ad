/* select_out.h - the select stage's outputs, written collectively.
 *
 * DIR/<task>.jsonl : the selected pool lines, byte-identical to the pool file, in pool order.
 *                    Each rank copies its own selected lines; offsets come from an MPI_Exscan of
 *                    the byte counts and one MPI_File_write_at_all puts them in place. Written
 *                    under its partial name (outpath.h), removed on failure; the caller renames
 *                    it into place with the run's other outputs (ch_out_set_add / ch_out_set_finish).
 * DIR/benchmark/<benchmark>.jsonl : the same for a benchmark's selection (select.c).
 * DIR/scores.h5    : format "capheads-scores": /scores [T, N] f64 (every pool row's score for
 *                    every task, the values ranked), /benchmark_scores [B, N] f64, /selected
 *                    [T, N] and /benchmark_selected [B, N] uint8 (each only when that level was
 *                    selected), /ids [N] (the pool ids, fixed-length strings, row i = pool record
 *                    i), /tasks [T], /benchmarks [B], /benchmark_of_task [T] int32; root
 *                    attributes from the caller (docs/select.md), the pool archive's rendering rule
 *                    (io/render_rule.h). Written with parallel HDF5, each rank its rows (collective
 *                    hyperslab writes). */
#ifndef CH_SELECT_OUT_H
#define CH_SELECT_OUT_H

#include <mpi.h>
#include <stdint.h>

#include "render_rule.h"

/* Collective. Lines [start[i], start[i]+len[i]) of pool for the local rows with sel[i]. */
int ch_select_write_jsonl(const char *out_path, const char *pool_path, const int64_t *start,
                          const int64_t *len, const uint8_t *sel, int64_t n, MPI_Comm comm);

#define CH_SCORES_FORMAT "capheads-scores"

typedef struct ch_scores_file ch_scores_file;
typedef struct {
    char *const *tasks;
    int ntask;
    char *const *benchmarks;
    int nbench;
    const int *bench_of_task; /* [ntask] */
    int64_t nrows;
    int id_len;               /* the longest pool id (bytes) over all ranks */
    int task_selected, bench_selected; /* 1: create /selected, /benchmark_selected */
} ch_scores_layout;

/* Bytes the file may still take with `tasks` task and `benches` benchmark columns unwritten
 * (for the space check before a parallel write, outfinish.h): a f64 score and a selected byte
 * per row and column, the ids, the names, 64 KiB of HDF5 metadata and the file seal. */
double ch_scores_room(const ch_scores_layout *l, int tasks, int benches);
/* Collective. */
int ch_scores_create(const char *path, const ch_scores_layout *l, MPI_Comm comm, ch_scores_file **out);
/* Collective: rows [row0, row0 + n) of /ids. */
int ch_scores_write_ids(ch_scores_file *s, int64_t row0, int64_t n, char *const *ids);
/* Collective: rows [row0, row0 + n) of task t (of benchmark b); sel is written only when the
 * file has that level's selected dataset. */
int ch_scores_write_task(ch_scores_file *s, int t, int64_t row0, int64_t n, const double *scores,
                         const uint8_t *sel);
int ch_scores_write_benchmark(ch_scores_file *s, int b, int64_t row0, int64_t n, const double *scores,
                              const uint8_t *sel);
/* Collective, every rank with the same value: a root attribute. */
int ch_scores_attr_str(ch_scores_file *s, const char *name, const char *value);
int ch_scores_attr_i64(ch_scores_file *s, const char *name, int64_t value);
int ch_scores_attr_f64(ch_scores_file *s, const char *name, double value);
int ch_scores_close(ch_scores_file *s);
/* Collective: record the pool archive's rendering rule (render_template, render_span, render_cue). */
int ch_scores_put_render(ch_scores_file *s, const ch_render_rule *r);

#endif
