/* inspect.c - `capheads inspect FILE [--verify]`: what a capheads file holds, and whether it is
 * complete and consistent. Archives get a full check under --verify (every row done, `complete`
 * agreeing with the rows, ids present and unique, token counts positive, labels -1..4, every
 * stored value finite); mix files print their table. Exit status 3 when a check fails. */
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "stage.h"
#include "err.h"
#include "h5util.h"
#include "mixfile.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int verify_archive(ch_archive_reader *r, const ch_archive_info *in, const char *path) {
    int64_t N = in->n_rows, B = 1024;
    size_t width = (size_t)in->n_layers * in->n_heads * in->head_dim;
    int64_t bad_done = 0, bad_tok = 0, bad_val = 0, bad_label = 0, empty_id = 0, dup = 0, first_bad = -1;
    char **ids = NULL, **blk = NULL;
    float *acts = NULL;
    uint8_t *done = NULL;
    int32_t *nt = NULL, *lab = NULL;
    int rc = CH_ALLOC(ids, N, "ids");
    if (!rc) rc = CH_ALLOC(acts, (size_t)B * width, "rows");
    if (!rc) rc = CH_ALLOC(done, B, "done");
    if (!rc) rc = CH_ALLOC(nt, B, "n_tokens");
    if (!rc) rc = CH_ALLOC(lab, B, "labels");
    for (int64_t r0 = 0; r0 < N && !rc; r0 += B) {
        int64_t n = N - r0 < B ? N - r0 : B;
        if ((rc = ch_archive_read_done(r, r0, n, done)) || (rc = ch_archive_read_n_tokens(r, r0, n, nt)) ||
            (rc = ch_archive_read_ids(r, r0, n, ids + r0)) || (rc = ch_archive_read_acts(r, r0, n, acts)) ||
            (rc = ch_archive_read_labels(r, r0, n, lab)))
            break;
        for (int64_t i = 0; i < n; i++) {
            if (!done[i]) {
                if (first_bad < 0) first_bad = r0 + i;
                bad_done++;
                continue;
            }
            if (nt[i] < 1) bad_tok++;
            if (lab[i] < -1 || lab[i] >= CH_NCAP) bad_label++; /* -1 = unlabelled */
            if (!ids[r0 + i][0]) empty_id++;
            for (size_t j = 0; j < width; j++)
                if (!isfinite(acts[i * width + j])) {
                    bad_val++;
                    break;
                }
        }
    }
    if (!rc) {
        blk = malloc(sizeof(char *) * (size_t)(N ? N : 1));
        if (blk) {
            memcpy(blk, ids, sizeof(char *) * (size_t)N);
            qsort(blk, (size_t)N, sizeof *blk, cmp_str);
            for (int64_t i = 1; i < N; i++) dup += blk[i][0] && !strcmp(blk[i], blk[i - 1]);
        }
    }
    free(blk);
    if (ids) ch_archive_free_strings(ids, N);
    free(ids), free(acts), free(done), free(nt), free(lab);
    CH_TRY(rc);
    const char *sums = NULL;
    CH_TRY(ch_archive_verify_checksums(r, &sums));
    printf("verify: checksums: %s\n", sums);
    printf("verify: %lld/%lld rows done", (long long)(N - bad_done), (long long)N);
    if (bad_done) printf(" (first missing row %lld)", (long long)first_bad);
    printf("; complete flag %s\n", in->complete ? "set" : "not set");
    if (bad_tok || bad_val || bad_label || empty_id || dup)
        printf("verify: %lld done rows without tokens, %lld with non-finite values, %lld with a label outside "
               "-1..%d, %lld empty ids, %lld duplicate ids\n",
               (long long)bad_tok, (long long)bad_val, (long long)bad_label, CH_NCAP - 1, (long long)empty_id,
               (long long)dup);
    if (bad_done && in->complete)
        CH_FAIL(CH_EFORMAT, "%s: INCONSISTENT: marked complete but %lld rows are not done", path, (long long)bad_done);
    if (bad_tok || bad_val || bad_label || empty_id || dup) CH_FAIL(CH_EFORMAT, "%s: INCONSISTENT (see above)", path);
    if (bad_done)
        CH_FAIL(CH_EINCOMPLETE, "%s: INCOMPLETE: %lld of %lld rows not done (finish with extract --resume)", path,
                (long long)bad_done, (long long)N);
    printf("verify: OK, complete and consistent\n");
    return 0;
}

static int inspect_archive(const char *path, int verify) {
    ch_archive_reader *r;
    CH_TRY(ch_archive_open_read(path, MPI_COMM_SELF, &r));
    ch_archive_info in;
    int rc = ch_archive_get_info(r, &in);
    if (rc) {
        ch_archive_close_read(r);
        return rc;
    }
    double gib = (double)in.n_rows * in.n_layers * in.n_heads * in.head_dim * 2 / (1 << 30);
    printf("%s: capheads activation archive (format %s v%d)\n", path, CH_ARCHIVE_FORMAT, CH_ARCHIVE_VERSION);
    printf("  rows       %lld (%lld done)%s\n", (long long)in.n_rows, (long long)in.n_done,
           in.complete ? ", complete" : ", INCOMPLETE");
    printf("  shape      [%lld, %d layers, %d heads, %d] float16 = %.3f GiB\n", (long long)in.n_rows, in.n_layers,
           in.n_heads, in.head_dim, gib);
    printf("  pooling    %s\n", in.pool ? in.pool : "?");
    if (in.hidden_dim) printf("  hidden     [%lld, %d] float16 (mean final hidden state)\n", (long long)in.n_rows, in.hidden_dim);
    printf("  model      %s (backend %s, Linear inputs %s)\n", in.model_dir ? in.model_dir : "?",
           in.backend && *in.backend ? in.backend : "?", in.precision && *in.precision ? in.precision : "?");
    printf("  tokenizer  sha256 %s\n", in.tokenizer_sha256 ? in.tokenizer_sha256 : "?");
    printf("  input      %s (sha256 %s)\n", in.input_path ? in.input_path : "?", in.input_sha256 ? in.input_sha256 : "?");
    printf("  created    %s\n  command    %s\n", in.created ? in.created : "?", in.command_line ? in.command_line : "?");
    if (verify) rc = verify_archive(r, &in, path);
    ch_archive_info_free(&in);
    int crc = ch_archive_close_read(r);
    return rc ? rc : crc;
}

static int inspect_mix(const char *path) {
    ch_mix m;
    CH_TRY(ch_mix_read(path, &m));
    printf("%s: capheads capability mixes of %d task(s) (probes %s)\n", path, m.ntask, m.probes ? m.probes : "?");
    printf("%-40s %8s", "task", "n");
    for (int c = 0; c < CH_NCAP; c++) printf(" %12s", ch_capability_names[c]);
    printf("\n");
    for (int i = 0; i < m.ntask; i++) {
        printf("%-40s %8lld", m.tasks[i], (long long)m.count[i]);
        for (int c = 0; c < CH_NCAP; c++) printf(" %12.4f", m.mix[i * CH_NCAP + c]);
        printf("\n");
    }
    ch_mix_free(&m);
    return 0;
}

/* Probe files are summarised by the probe module when it is linked in. */
__attribute__((weak)) int ch_probe_print_summary(const char *path, FILE *f);

int ch_cmd_inspect(int argc, char **argv, MPI_Comm comm) {
    static const struct option lo[] = {{"verify", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int verify = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        if (c == 'v') verify = 1;
        else if (c == 'h') {
            printf("usage: capheads inspect FILE [--verify]\n\n"
                   "Summarise a capheads file: an activation archive (rows, shape, provenance), a probe\n"
                   "file (the capability-head map) or a mix file. --verify checks that an archive is\n"
                   "complete and consistent (exit status 3 when not).\n");
            return 0;
        } else CH_FAIL(CH_EARG, "unknown option '%s' (see --help)", argv[optind - 1]);
    }
    if (optind != argc - 1) CH_FAIL(CH_EARG, "inspect takes exactly one FILE (see --help)");
    const char *path = argv[optind];
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank) return 0; /* a serial tool: rank 0 does it */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EIO, "%s: cannot open as an HDF5 file", path);
    char *fmt = NULL;
    int rc = ch_h5_get_str(f, "format", &fmt);
    H5Fclose(f);
    CH_TRY(rc);
    if (fmt && !strcmp(fmt, CH_ARCHIVE_FORMAT)) rc = inspect_archive(path, verify);
    else if (fmt && !strcmp(fmt, "capheads-mix")) rc = inspect_mix(path);
    else if (fmt && !strcmp(fmt, "capheads-probes") && ch_probe_print_summary) rc = ch_probe_print_summary(path, stdout);
    else rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: not a capheads file (format '%s')", path, fmt ? fmt : "none");
    free(fmt);
    return rc;
}
