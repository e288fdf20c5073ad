/* bench_prefill.c - prefill throughput of the engine (capture of every head at the last token).
 * usage: bench_prefill MODEL_DIR TOKENS.bin RUNS [BATCH_TOKENS [auto|f32]]
 * TOKENS.bin: int32 nseq, int32 len[nseq], int32 tokens[sum(len)] (written by bench_prefill.py).
 * Prints one line per run: "tokens_per_s <value>". Batches are cut from the sequences in order
 * under BATCH_TOKENS (default 4096), as extract does; the last argument is extract's --precision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_prefill MODEL_DIR TOKENS.bin RUNS [BATCH_TOKENS [auto|f32]]\n");
        return 2;
    }
    int runs = atoi(argv[3]), budget = argc > 4 ? atoi(argv[4]) : 4096;
    ch_precision prec = argc > 5 && !strcmp(argv[5], "f32") ? CH_PRECISION_F32 : CH_PRECISION_AUTO;
    FILE *f = fopen(argv[2], "rb");
    int32_t nseq = 0;
    if (!f || fread(&nseq, 4, 1, f) != 1 || nseq < 1) {
        fprintf(stderr, "bench_prefill: cannot read %s\n", argv[2]);
        return 1;
    }
    int32_t *len = malloc(sizeof(int32_t) * nseq);
    int *start = malloc(sizeof(int) * (nseq + 1));
    if (fread(len, 4, (size_t)nseq, f) != (size_t)nseq) return 1;
    start[0] = 0;
    for (int i = 0; i < nseq; i++) start[i + 1] = start[i] + len[i];
    int32_t *tok = malloc(sizeof(int32_t) * start[nseq]);
    if (fread(tok, 4, (size_t)start[nseq], f) != (size_t)start[nseq]) return 1;
    fclose(f);
    ch_backend *be;
    ch_model *m;
    if (ch_backend_create("cpu", 0, &be) || ch_model_open(argv[1], be, prec, &m)) {
        fprintf(stderr, "bench_prefill: %s\n", ch_err_msg());
        return 1;
    }
    /* the kernels (OpenBLAS core, bf16 Linear) and, as extract's start line, what the Linears take */
    fprintf(stderr, "backend %s%s, Linear inputs %s\n", be->name, be->info, ch_model_precision(m));
    float *out = malloc(sizeof(float) * ch_model_capture_width(m) * nseq);
    int *bs = malloc(sizeof(int) * (nseq + 1));
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        for (int s0 = 0; s0 < nseq;) {
            int s1 = s0 + 1;
            while (s1 < nseq && start[s1 + 1] - start[s0] <= budget) s1++;
            for (int i = s0; i <= s1; i++) bs[i - s0] = start[i] - start[s0];
            ch_batch b = {s1 - s0, tok + start[s0], bs};
            if (ch_model_capture(m, &b, CH_POOL_LAST, out)) {
                fprintf(stderr, "bench_prefill: %s\n", ch_err_msg());
                return 1;
            }
            s0 = s1;
        }
        printf("tokens_per_s %.1f\n", start[nseq] / (now() - t0));
        fflush(stdout);
    }
    ch_model_close(m);
    ch_backend_destroy(be);
    free(out), free(bs), free(tok), free(len), free(start);
    return 0;
}
