/* bench_tokenizer.c - single-thread encode throughput of ch_tok_encode.
 *
 *   bench_tokenizer TOKENIZER_JSON CORPUS [REPS]
 *   bench_tokenizer --ids TOKENIZER_JSON CORPUS   (print the ids of each record, one line each:
 *                                                  used by tests/golden/scan_unicode_classes.py)
 *
 * CORPUS holds records separated by NUL bytes; each record is one ch_tok_encode call
 * (add_special = 0). Prints one line "bytes=B seconds=S ids=N" for the fastest of REPS passes
 * (default 1), load time excluded. benchmarks/bench_tokenizer.py runs this interleaved with HF
 * `tokenizers` on the same records and prints the comparison table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int dump = argc > 1 && !strcmp(argv[1], "--ids");
    argv += dump, argc -= dump;
    if (argc < 3) {
        fprintf(stderr, "usage: %s [--ids] TOKENIZER_JSON CORPUS [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 1;
    ch_tokenizer *t;
    if (ch_tok_load(argv[1], &t)) {
        fprintf(stderr, "bench_tokenizer: %s\n", ch_err_msg());
        return ch_err_exit_status(ch_err_code());
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]);
        return 5;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]);
        return 5;
    }
    fclose(f);
    buf[len] = 0;
    double best = 1e30;
    size_t total_ids = 0;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        total_ids = 0;
        double t0 = now();
        for (char *p = buf; p < buf + len;) {
            size_t n = strlen(p);
            int32_t *ids;
            size_t nid;
            if (ch_tok_encode(t, p, n, 0, &ids, &nid)) {
                fprintf(stderr, "bench_tokenizer: %s\n", ch_err_msg());
                return 1;
            }
            total_ids += nid;
            for (size_t i = 0; dump && i < nid; i++) printf(i ? " %d" : "%d", ids[i]);
            if (dump) printf("\n");
            free(ids);
            p += n + 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    if (!dump) printf("bytes=%ld seconds=%.6f ids=%zu\n", len, best, total_ids);
    free(buf);
    ch_tok_free(t);
    return 0;
}
