/* decompose.c - `capheads decompose`: the capability mix of every task in an archive.
 *
 * Each rank takes a contiguous block of rows, streams it in row blocks through the mapped heads'
 * probes (capmix) and sums each task's capability distributions. The sums are kept in fixed
 * point (2^-40 units, int64): integer addition is associative, so the MPI_Allreduce gives the
 * same bits for any number of ranks and the mixes are identical for 1 or N ranks. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "archive.h"
#include "capmix.h"
#include "stage.h"
#include "err.h"
#include "mixfile.h"
#include "timing.h"

#define FIX_SCALE 1099511627776.0 /* 2^40: mixes are in [0, 1] */
#define FIX_HIDDEN 16777216.0     /* 2^24: hidden states are stored as binary16 anyway */
#define BUILD_CAPS CH_CAP_JSON

typedef struct {
    const char *probes, *input, *output, *tasks, *timing;
    int allow_incomplete;
    int heads; /* CH_HEADS_OWN | CH_HEADS_UNION */
    int64_t block_rows;
    ch_timing *tm; /* filled in by run() */
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -n R] capheads decompose --probes PROBES.h5 --input TASKS.h5 --output DIR\n"
            "                                        [--tasks T1,T2,...] [--allow-incomplete]\n"
            "                                        [--heads own|union] [--block-rows N]\n"
            "                                        [--timing FILE]\n\n"
            "For every task in the archive (its `task` field: MMLU subjects, BBH tasks, ...), run\n"
            "the probes of the mapped heads over the task's examples and average the predicted\n"
            "capability distribution. Writes DIR/mix.h5, DIR/mix.csv, DIR/mix.svg.\n"
            "  --tasks LIST        only these tasks (each must have examples)\n"
            "  --heads own         a row's mix: capability c = the mean probability of c at c's own\n"
            "                      top-k heads, then normalised to sum 1 (default)\n"
            "          union       the mean of the whole distribution of every mapped head (the union\n"
            "                      of the top-k sets); select must be given the same --heads\n"
            "  --block-rows N      archive rows read per block (default 256): memory per rank is N rows\n"
            "                      of the layers that hold mapped heads\n"
            "  --allow-incomplete  use an archive whose extraction did not finish (done rows only)\n"
            "  --timing FILE       append a JSON timing record (docs/timing.md): records = archive\n"
            "                      rows folded into a mix, tasks = tasks reported\n");
}

static int parse(int argc, char **argv, opts *o) {
    static const struct option lo[] = {{"probes", 1, 0, 'p'}, {"input", 1, 0, 'i'}, {"output", 1, 0, 'o'},
                                       {"heads", 1, 0, 'H'},
                                       {"tasks", 1, 0, 't'},  {"allow-incomplete", 0, 0, 'a'},
                                       {"block-rows", 1, 0, 'b'}, {"timing", 1, 0, 'T'},
                                       {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->block_rows = 256;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        switch (c) {
        case 'p': o->probes = optarg; break;
        case 'i': o->input = optarg; break;
        case 'o': o->output = optarg; break;
        case 't': o->tasks = optarg; break;
        case 'a': o->allow_incomplete = 1; break;
        case 'H': CH_TRY(ch_capmix_heads_parse(optarg, &o->heads)); break;
        case 'b': o->block_rows = atoll(optarg); break;
        case 'T': o->timing = optarg; break;
        case 'h': usage(stdout); return -1;
        default: CH_FAIL(CH_EARG, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) CH_FAIL(CH_EARG, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->probes || !o->input || !o->output) CH_FAIL(CH_EARG, "--probes, --input and --output are required");
    if (o->block_rows < 1) CH_FAIL(CH_EARG, "--block-rows must be >= 1");
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted distinct non-empty task names of all rows (every rank reads the whole, small, column). */
static int task_list(ch_archive_reader *r, int64_t n, char ***rows_out, char ***uniq, int *nuniq) {
    char **rows = NULL, **u = NULL;
    CH_TRY(CH_ALLOC(rows, n, "task names"));
    int rc = ch_archive_read_tasks(r, 0, n, rows);
    if (rc) {
        free(rows);
        return rc;
    }
    if (CH_ALLOC(u, n, "task list")) {
        ch_archive_free_strings(rows, n);
        return CH_ENOMEM;
    }
    int k = 0;
    for (int64_t i = 0; i < n; i++)
        if (rows[i][0]) u[k++] = rows[i];
    qsort(u, (size_t)k, sizeof *u, cmp_str);
    int m = 0;
    for (int i = 0; i < k; i++)
        if (!m || strcmp(u[m - 1], u[i])) u[m++] = u[i];
    *rows_out = rows, *uniq = u, *nuniq = m;
    return 0;
}

static int find_task(char **u, int n, const char *t) {
    char **at = bsearch(&t, u, (size_t)n, sizeof *u, cmp_str);
    return at ? (int)(at - u) : -1;
}

static int run(const opts *o, MPI_Comm comm) {
    int rank, size, rc = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ch_capmix cm;
    ch_archive_reader *r = NULL;
    ch_archive_info info;
    memset(&info, 0, sizeof info);
    char **rows = NULL, **uniq = NULL;
    int nuniq = 0;
    int64_t *fix = NULL, *cnt = NULL;
    float *acts = NULL, *tmp = NULL;
    uint8_t *done_mask = NULL;
    int64_t *hfix = NULL; /* per-task sums of hidden states (RDS), when the archive has them */
    float *hid = NULL;
    double *p = NULL;
    ch_mix mix;
    memset(&mix, 0, sizeof mix);
    CH_TRY(ch_capmix_load(o->probes, &cm));
    cm.heads = o->heads;
    if (!ch_capability_names_same(cm.capability_names, BUILD_CAPS))
        CH_FAIL_GOTO(out, CH_EMISMATCH, "the probes in %s are for capabilities %s, this build's are %s", o->probes,
                     cm.capability_names ? cm.capability_names : "(none recorded)", BUILD_CAPS);
    CH_TRY_GOTO(ch_archive_open_read(o->input, comm, &r), out);
    CH_TRY_GOTO(ch_archive_get_info(r, &info), out);
    if (info.n_layers != cm.n_layers || info.n_heads != cm.n_heads || info.head_dim != cm.head_dim)
        CH_FAIL_GOTO(out, CH_EMISMATCH,
                     "%s holds %d x %d heads of dim %d but the probes in %s are for %d x %d of dim %d",
                     o->input, info.n_layers, info.n_heads, info.head_dim, o->probes, cm.n_layers,
                     cm.n_heads, cm.head_dim);
    if (!info.complete && !o->allow_incomplete)
        CH_FAIL_GOTO(out, CH_EINCOMPLETE,
                     "%s is incomplete (%lld of %lld rows done): finish it with extract --resume, or "
                     "pass --allow-incomplete",
                     o->input, (long long)info.n_done, (long long)info.n_rows);
    const int64_t N = info.n_rows;
    CH_TRY_GOTO(task_list(r, N, &rows, &uniq, &nuniq), out);
    if (!nuniq) CH_FAIL_GOTO(out, CH_EFORMAT, "%s: no row has a task (the `task` field of the corpus)", o->input);

    /* which tasks to report */
    int *want = NULL;
    CH_TRY_GOTO(CH_ALLOC(want, nuniq, "task filter"), out);
    if (o->tasks) {
        char *list = strdup(o->tasks), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int i = find_task(uniq, nuniq, t);
            if (i < 0) {
                rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "task '%s' has no examples in %s", t, o->input);
                free(list), free(want);
                goto out;
            }
            want[i] = 1;
        }
        free(list);
    } else {
        for (int i = 0; i < nuniq; i++) want[i] = 1;
    }

    int64_t r0 = N * rank / size, r1 = N * (rank + 1) / size;
    int64_t B = o->block_rows;
    /* only the layers that hold mapped heads are read */
    size_t width = (size_t)cm.n_used * info.n_heads * info.head_dim;
    if (!(rc = CH_ALLOC(fix, (size_t)nuniq * CH_NCAP, "sums")) && !(rc = CH_ALLOC(cnt, nuniq, "counts")) &&
        !(rc = CH_ALLOC(acts, (size_t)B * width, "activation block")) &&
        !(rc = CH_ALLOC(tmp, (size_t)B * info.n_heads * info.head_dim, "layer block")) &&
        !(rc = CH_ALLOC(p, CH_NCAP, "row mix")))
        rc = CH_ALLOC(done_mask, B, "done mask");
    const int hd = info.hidden_dim;
    if (!rc && hd > 0 && !(rc = CH_ALLOC(hfix, (size_t)nuniq * hd, "hidden sums")))
        rc = CH_ALLOC(hid, (size_t)B * hd, "hidden block");
    for (int64_t b0 = r0; b0 < r1 && !rc; b0 += B) {
        int64_t n = r1 - b0 < B ? r1 - b0 : B;
        rc = ch_capmix_read(&cm, r, b0, n, acts, tmp);
        if (!rc) rc = ch_archive_read_done(r, b0, n, done_mask);
        if (!rc && hd > 0) rc = ch_archive_read_hidden(r, b0, n, hid);
        for (int64_t i = 0; i < n && !rc; i++) {
            /* rows not done hold no data (only with --allow-incomplete) and rows without a task
             * belong to no mix */
            if (!done_mask[i] || !rows[b0 + i][0]) continue;
            if ((rc = ch_capmix_apply_used(&cm, acts + i * width, 1, p))) {
                ch_err_wrap("%s: row %lld: ", o->input, (long long)(b0 + i));
                break;
            }
            int t = find_task(uniq, nuniq, rows[b0 + i]);
            cnt[t]++;
            for (int c = 0; c < CH_NCAP; c++) fix[t * CH_NCAP + c] += llround(p[c] * FIX_SCALE);
            for (int j = 0; j < hd; j++) hfix[(size_t)t * hd + j] += llround(hid[i * hd + j] * FIX_HIDDEN);
        }
    }
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), out2); /* a failed rank must not skip the reduction */
    if (MPI_Allreduce(MPI_IN_PLACE, fix, nuniq * CH_NCAP, MPI_INT64_T, MPI_SUM, comm) != MPI_SUCCESS ||
        MPI_Allreduce(MPI_IN_PLACE, cnt, nuniq, MPI_INT64_T, MPI_SUM, comm) != MPI_SUCCESS ||
        (hd > 0 && MPI_Allreduce(MPI_IN_PLACE, hfix, nuniq * hd, MPI_INT64_T, MPI_SUM, comm) != MPI_SUCCESS))
        CH_FAIL_GOTO(out2, CH_EMPI, "decompose: MPI_Allreduce of the task sums failed");

    int nt = 0;
    for (int i = 0; i < nuniq; i++) nt += want[i];
    CH_TRY_GOTO(CH_ALLOC(mix.tasks, nt, "mix"), out2);
    CH_TRY_GOTO(CH_ALLOC(mix.mix, (size_t)nt * CH_NCAP, "mix"), out2);
    CH_TRY_GOTO(CH_ALLOC(mix.count, nt, "mix"), out2);
    if (hd > 0) CH_TRY_GOTO(CH_ALLOC(mix.hidden_mean, (size_t)nt * hd, "hidden means"), out2);
    mix.hidden_dim = hd;
    for (int i = 0, j = 0; i < nuniq; i++) {
        if (!want[i]) continue;
        if (!cnt[i])
            CH_FAIL_GOTO(out2, CH_EINCOMPLETE, "task '%s' has no finished examples in %s", uniq[i], o->input);
        mix.tasks[j] = uniq[i];
        mix.count[j] = cnt[i];
        for (int c = 0; c < CH_NCAP; c++)
            mix.mix[j * CH_NCAP + c] = (double)fix[i * CH_NCAP + c] / FIX_SCALE / (double)cnt[i];
        for (int d = 0; d < hd; d++)
            mix.hidden_mean[(size_t)j * hd + d] = (float)((double)hfix[(size_t)i * hd + d] / FIX_HIDDEN / (double)cnt[i]);
        j++;
    }
    mix.ntask = nt;
    mix.probes = (char *)o->probes;
    mix.input = (char *)o->input;
    mix.input_sha256 = info.input_sha256;
    mix.capability_names = BUILD_CAPS;
    mix.probes_sha256 = cm.digest; /* the identity select checks its --probes against */
    mix.probes_input_sha256 = cm.source_sha256;
    mix.heads = (char *)ch_capmix_heads_name(cm.heads);
    if (rank == 0) {
        rc = ch_mix_write(o->output, &mix);
        if (!rc) {
            printf("%-40s %8s", "task", "n");
            for (int c = 0; c < CH_NCAP; c++) printf(" %12s", ch_capability_names[c]);
            printf("\n");
            for (int i = 0; i < nt; i++) {
                printf("%-40s %8lld", mix.tasks[i], (long long)mix.count[i]);
                for (int c = 0; c < CH_NCAP; c++) printf(" %12.4f", mix.mix[i * CH_NCAP + c]);
                printf("\n");
            }
            printf("wrote %s/mix.h5, mix.csv, mix.svg\n", o->output);
        }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc && rank) rc = ch_err_set(rc, __FILE__, __LINE__, "rank 0 could not write %s", o->output);
    for (int i = 0; !rc && i < nuniq; i++) o->tm->records += cnt[i]; /* rows that went into a mix */
    if (!rc) rc = ch_timing_add(o->tm, "tasks", nt);
out2:
    free(want);
    /* mix borrows task names and strings: free only its own arrays */
    free(mix.tasks), free(mix.mix), free(mix.count), free(mix.hidden_mean);
out:
    free(fix), free(cnt), free(acts), free(p), free(done_mask), free(hfix), free(hid), free(tmp);
    free(uniq);
    if (rows) ch_archive_free_strings(rows, info.n_rows);
    ch_archive_info_free(&info);
    if (r) ch_archive_close_read(r);
    ch_capmix_free(&cm);
    return rc;
}

int ch_cmd_decompose(int argc, char **argv, MPI_Comm comm) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc < 0) return 0;
    CH_TRY(rc);
    ch_timing tm;
    ch_timing_start(&tm, "decompose");
    tm.records = 0, o.tm = &tm;
    return ch_timing_finish(&tm, o.timing, run(&o, comm), comm);
}
