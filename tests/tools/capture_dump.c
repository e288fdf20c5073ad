/* capture_dump.c - run the engine over a corpus, one record at a time, and write the captured
 * heads as raw little-endian f32 [N, L, H, D]: the in-memory reference the archive test compares
 * the HDF5 archive (read by h5py) against.
 * usage: capture_dump MODEL_DIR CORPUS.jsonl OUT.f32 [last|mean] [auto|f32]  (pooling, precision) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "err.h"
#include "jsonl.h"
#include "model.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: capture_dump MODEL_DIR CORPUS.jsonl OUT.f32 [last|mean] [auto|f32]\n");
        return 2;
    }
    ch_pool pool = argc > 4 && !strcmp(argv[4], "mean") ? CH_POOL_MEAN : CH_POOL_LAST;
    ch_precision prec = argc > 5 && !strcmp(argv[5], "f32") ? CH_PRECISION_F32 : CH_PRECISION_AUTO;
    ch_backend *be = NULL;
    ch_model *m = NULL;
    ch_tokenizer *tok = NULL;
    ch_jsonl r;
    char tp[4096];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", argv[1]);
    FILE *probe = fopen(tp, "r");
    int rc = ch_backend_cpu_create(1, &be);
    if (!rc) rc = ch_model_open(argv[1], be, prec, &m);
    if (!rc && probe) rc = ch_tok_open_dir(argv[1], &tok);
    if (probe) fclose(probe);
    if (!rc) rc = ch_jsonl_open(&r, argv[2]);
    FILE *out = rc ? NULL : fopen(argv[3], "wb");
    if (rc || !out) {
        fprintf(stderr, "capture_dump: %s\n", rc ? ch_err_msg() : "cannot create output");
        return 1;
    }
    int64_t width = ch_model_capture_width(m);
    float *v = malloc(sizeof(float) * width);
    const char *line;
    size_t len;
    int has;
    while (!(rc = ch_jsonl_next(&r, &line, &len, &has)) && has) {
        ch_record rec;
        ch_render_rule rule; /* extract's default rule */
        ch_render_rule_default(&rule);
        ch_corpus_render how = {tok, tok ? ch_tok_chat_style(tok) : CH_CHAT_NONE, &rule, ch_model_config(m)->vocab, -1};
        if ((rc = ch_corpus_record(line, len, argv[2], r.lineno, &how, &rec))) break;
        int start[2] = {0, rec.n_tokens};
        ch_batch b = {1, rec.tokens, start};
        rc = ch_model_capture(m, &b, pool, v);
        ch_record_free(&rec);
        if (rc) break;
        fwrite(v, sizeof(float), (size_t)width, out);
    }
    fclose(out);
    ch_jsonl_close(&r);
    free(v);
    ch_tok_free(tok);
    ch_model_close(m);
    ch_backend_destroy(be);
    if (rc) fprintf(stderr, "capture_dump: %s\n", ch_err_msg());
    return rc ? 1 : 0;
}
