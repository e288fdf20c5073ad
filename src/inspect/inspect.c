/* inspect.c - `capheads inspect FILE [--verify]`: what a capheads file holds, and whether it is
 * complete and consistent. Archives get a full check under --verify (every row done, `complete`
 * agreeing with the rows, ids present and unique, token counts positive, labels -1..4, every
 * stored value finite); mix files print their table. Exit status 3 when a check fails. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "stage.h"
#include "err.h"
#include "h5seal.h"
#include "h5util.h"
#include "mixfile.h"
#include "mpicheck.h"
#include "options.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* What --verify counts over the done rows (first_bad: the first row not done). */
typedef struct {
    int64_t not_done, no_tokens, nonfinite, bad_label, empty_id, dup, first_bad;
} verify_counts;

/* The row buffers of one read block; ids hold every row (duplicates are found at the end). */
typedef struct {
    char **ids;
    float *acts;
    uint8_t *done;
    int32_t *nt, *lab;
} verify_bufs;

static int bufs_alloc(verify_bufs *b, int64_t N, int64_t B, size_t width) {
    memset(b, 0, sizeof *b);
    CH_TRY(CH_ALLOC(b->ids, N, "ids"));
    CH_TRY(CH_ALLOC(b->acts, (size_t)B * width, "rows"));
    CH_TRY(CH_ALLOC(b->done, B, "done"));
    CH_TRY(CH_ALLOC(b->nt, B, "n_tokens"));
    return CH_ALLOC(b->lab, B, "labels");
}

static void bufs_free(verify_bufs *b, int64_t N) {
    if (b->ids) ch_archive_free_strings(b->ids, N);
    free(b->ids), free(b->acts), free(b->done), free(b->nt), free(b->lab);
}

/* Rows [r0, r0+n): read them and count what is wrong with the done ones. */
static int verify_block(ch_archive_reader *r, int64_t r0, int64_t n, size_t width, verify_bufs *b,
                        verify_counts *c) {
    CH_TRY(ch_archive_read_done(r, r0, n, b->done));
    CH_TRY(ch_archive_read_n_tokens(r, r0, n, b->nt));
    CH_TRY(ch_archive_read_ids(r, r0, n, b->ids + r0));
    CH_TRY(ch_archive_read_acts(r, r0, n, b->acts));
    CH_TRY(ch_archive_read_labels(r, r0, n, b->lab));
    for (int64_t i = 0; i < n; i++) {
        if (!b->done[i]) {
            if (c->first_bad < 0) c->first_bad = r0 + i;
            c->not_done++;
            continue;
        }
        if (b->nt[i] < 1) c->no_tokens++;
        if (b->lab[i] < -1 || b->lab[i] >= CH_NCAP) c->bad_label++; /* -1 = unlabelled */
        if (!b->ids[r0 + i][0]) c->empty_id++;
        for (size_t j = 0; j < width; j++)
            if (!isfinite(b->acts[i * width + j])) {
                c->nonfinite++;
                break;
            }
    }
    return 0;
}

/* Non-empty ids that occur more than once (sorted copy of the pointers). */
static int64_t count_duplicates(char **ids, int64_t N) {
    char **blk = malloc(sizeof(char *) * (size_t)(N ? N : 1));
    int64_t dup = 0;
    if (!blk) return 0;
    memcpy(blk, ids, sizeof(char *) * (size_t)N);
    qsort(blk, (size_t)N, sizeof *blk, cmp_str);
    for (int64_t i = 1; i < N; i++) dup += blk[i][0] && !strcmp(blk[i], blk[i - 1]);
    free(blk);
    return dup;
}

/* Print what verify found; the verdict is the return code (complete, inconsistent, incomplete). */
static int verify_report(const verify_counts *c, int64_t N, int complete, const char *path) {
    printf("verify: %lld/%lld rows done", (long long)(N - c->not_done), (long long)N);
    if (c->not_done) printf(" (first missing row %lld)", (long long)c->first_bad);
    printf("; complete flag %s\n", complete ? "set" : "not set");
    int bad = c->no_tokens || c->nonfinite || c->bad_label || c->empty_id || c->dup;
    if (bad)
        printf("verify: %lld done rows without tokens, %lld with non-finite values, %lld with a label outside "
               "-1..%d, %lld empty ids, %lld duplicate ids\n",
               (long long)c->no_tokens, (long long)c->nonfinite, (long long)c->bad_label, CH_NCAP - 1,
               (long long)c->empty_id, (long long)c->dup);
    if (c->not_done && complete)
        CH_FAIL(CH_EFORMAT, "%s: INCONSISTENT: marked complete but %lld rows are not done", path,
                (long long)c->not_done);
    if (bad) CH_FAIL(CH_EFORMAT, "%s: INCONSISTENT (see above)", path);
    if (c->not_done)
        CH_FAIL(CH_EINCOMPLETE, "%s: INCOMPLETE: %lld of %lld rows not done (finish with extract --resume)", path,
                (long long)c->not_done, (long long)N);
    printf("verify: OK, complete and consistent\n");
    return 0;
}

static int verify_archive(ch_archive_reader *r, const ch_archive_info *in, const char *path) {
    const int64_t N = in->n_rows, B = 1024;
    const size_t width = (size_t)in->n_layers * in->n_heads * in->head_dim;
    verify_counts c = {.first_bad = -1};
    verify_bufs b;
    int rc = bufs_alloc(&b, N, B, width);
    for (int64_t r0 = 0; r0 < N && !rc; r0 += B) rc = verify_block(r, r0, N - r0 < B ? N - r0 : B, width, &b, &c);
    if (!rc) c.dup = count_duplicates(b.ids, N);
    bufs_free(&b, N);
    CH_TRY(rc);
    const char *sums = NULL;
    CH_TRY(ch_archive_verify_checksums(r, &sums));
    printf("verify: checksums: %s\n", sums);
    return verify_report(&c, N, in->complete, path);
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
    char rule[400];
    ch_render_rule_describe(&in.render, rule, sizeof rule);
    printf("  rendering  %s; truncate %s (%lld record(s) cut)\n", rule, in.truncate, (long long)in.n_truncated);
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

typedef struct {
    char **files; /* the one FILE */
    int nfiles;
    int verify;
} opts;

static const ch_opt opts_table[] = {
    {"verify", 0, CH_OPT_FLAG, offsetof(opts, verify),
     .help = "check that an archive is complete and consistent: every row done,\n"
             "`complete` agreeing with the rows, ids present and unique, token\n"
             "counts positive, labels -1..4, every value finite (exit status 3 if not);\n"
             "a probe, mix or scores file: every dataset and root attribute against\n"
             "its stored SHA-256 (exit status 3 naming the dataset if one differs)"},
};

static const ch_opt_cmd cmd = {
    "inspect", opts_table, CH_NOPTS(opts_table), .positional = "FILE", .min_pos = 1, .max_pos = 1,
    .pos_offset = offsetof(opts, files), .npos_offset = offsetof(opts, nfiles),
    .about = "Summarise a capheads file: an activation archive (rows, shape, provenance), a probe\n"
             "file (the capability-head map) or a mix file.\n"};

/* The file's `format` attribute says what it is. *file_sealed: its file seal (h5seal.h) was
 * checked here, so a later step need not hash the file again. */
static int read_format(const char *path, char **fmt, int *file_sealed) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, F_OK)) CH_FAIL(CH_EIO, "%s: cannot open: no such file", path);
    CH_TRY(ch_h5_check_file_seal(path, file_sealed)); /* a damaged sealed file never reaches HDF5 */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot open it (not an HDF5 file, or damaged or truncated)", path);
    int rc = ch_h5_get_str(f, "format", fmt);
    if (!rc && !*fmt && H5Aexists(f, "content_sha256") > 0) *fmt = strdup("sealed"); /* scores.h5 */
    H5Fclose(f);
    if (rc) CH_FAIL(CH_EFORMAT, "%s: its format attribute is unreadable (damaged file?)", path);
    return 0;
}

/* The probe, mix and scores files carry content checksums (h5seal.h): --verify checks every
 * dataset and attribute. The file seal, when there is one, read_format has checked already; a
 * file without it (h5unjam's output) has only the content seal to go by. */
static int verify_sealed(const char *path, int file_sealed) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot open it (damaged or truncated)", path);
    int rc = ch_h5_verify_seal(f, path);
    H5Fclose(f);
    CH_TRY(rc);
    printf("verify: %severy dataset and root attribute matches its checksum (content_sha256)\n",
           file_sealed ? "the file seal (SHA-256 of every byte after its first 512) holds; "
                       : "no file seal (a copy without its first 512 bytes); ");
    return 0;
}

/* scores.h5: how the scores were made and from what (docs/select.md). */
static int inspect_scores(const char *path) {
    static const char *const keys[] = {"method", "score", "level", "heads", "pool", "pool_sha256", "input",
                                       "render_template", "render_span", "render_cue", "mix", "probes"};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot open it", path);
    printf("%s: capheads selection scores (scores.h5)\n", path);
    int rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !rc; i++) {
        char *v = NULL;
        if (H5Aexists(f, keys[i]) <= 0) continue;
        if ((rc = ch_h5_get_str(f, keys[i], &v))) break;
        printf("  %-16s %s\n", keys[i], v ? v : "");
        free(v);
    }
    if (H5Fclose(f) < 0 && !rc) rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: close failed", path);
    return rc;
}

static int inspect_file(const char *path, int verify) {
    char *fmt = NULL;
    int file_sealed = 0;
    CH_TRY(read_format(path, &fmt, &file_sealed));
    int rc = 0;
    int sealed = fmt && strcmp(fmt, CH_ARCHIVE_FORMAT);
    if (sealed && verify && (rc = verify_sealed(path, file_sealed))) {
        free(fmt);
        return rc;
    }
    if (fmt && (!strcmp(fmt, "sealed") || !strcmp(fmt, "capheads-scores"))) rc = inspect_scores(path);
    else if (fmt && !strcmp(fmt, CH_ARCHIVE_FORMAT)) rc = inspect_archive(path, verify);
    else if (fmt && !strcmp(fmt, "capheads-mix")) rc = inspect_mix(path);
    else if (fmt && !strcmp(fmt, "capheads-probes") && ch_probe_print_summary) rc = ch_probe_print_summary(path, stdout);
    else rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: not a capheads file (format '%s')", path, fmt ? fmt : "none");
    free(fmt);
    return rc;
}

int ch_cmd_inspect(int argc, char **argv, MPI_Comm comm) {
    opts o = {0};
    int help, rank, rc;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &o, &help));
    if (help) return ch_opt_help(&cmd, comm);
    CH_MPI_TRY_GOTO(MPI_Comm_rank(comm, &rank), out);
    rc = rank ? 0 : inspect_file(o.files[0], o.verify); /* a serial tool: rank 0 does it */
out:
    ch_opt_free(&cmd, &o);
    return rc;
}
