/* benchmarks.h - target tasks grouped into benchmarks, for the benchmark-level selection.
 *
 * LESS (Xia et al. 2024, less/data_selection/matching.py) selects one set per benchmark: a
 * sample's score for MMLU or BBH is the maximum over the benchmark's subtasks of its score for
 * each subtask. The benchmark of a task is its name up to the first '/' (mmlu/anatomy -> mmlu,
 * bbh/date_understanding -> bbh); a task without '/' is a benchmark of its own. */
#ifndef CH_BENCHMARKS_H
#define CH_BENCHMARKS_H

typedef struct {
    int nb;        /* benchmarks, in the order of their first task */
    char **name;   /* [nb] */
    int *of_task;  /* [nt]: the benchmark of each task */
} ch_benchmarks;

/* Group tasks[0..nt) into benchmarks. */
int ch_benchmarks_group(char *const *tasks, int nt, ch_benchmarks *b);
void ch_benchmarks_free(ch_benchmarks *b);

#endif
