/* benchmarks.c - see benchmarks.h. */
#include "benchmarks.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int ch_benchmarks_group(char *const *tasks, int nt, ch_benchmarks *b) {
    memset(b, 0, sizeof *b);
    int rc = CH_ALLOC(b->name, nt ? nt : 1, "benchmark names");
    if (!rc) rc = CH_ALLOC(b->of_task, nt ? nt : 1, "benchmark of each task");
    for (int t = 0; t < nt && !rc; t++) {
        const char *slash = strchr(tasks[t], '/');
        size_t len = slash ? (size_t)(slash - tasks[t]) : strlen(tasks[t]);
        int j = 0;
        while (j < b->nb && !(strlen(b->name[j]) == len && !strncmp(b->name[j], tasks[t], len))) j++;
        if (j == b->nb) {
            if (!(b->name[j] = strndup(tasks[t], len))) {
                rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory for benchmark names");
                break;
            }
            b->nb++;
        }
        b->of_task[t] = j;
    }
    if (rc) ch_benchmarks_free(b);
    return rc;
}

void ch_benchmarks_free(ch_benchmarks *b) {
    if (b->name)
        for (int j = 0; j < b->nb; j++) free(b->name[j]);
    free(b->name), free(b->of_task);
    memset(b, 0, sizeof *b);
}
