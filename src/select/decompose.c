/* decompose.c - `capheads decompose`: the capability mix of every task in an archive.
 *
 * Each rank takes a contiguous block of rows, streams it in row blocks through the mapped heads'
 * probes (capmix) and sums each task's capability distributions. The sums are kept in fixed
 * point (2^-40 units, int64): integer addition is associative, so the MPI_Allreduce gives the
 * same bits for any number of ranks and the mixes are identical for 1 or N ranks. */
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
#include "mpicheck.h"
#include "options.h"
#include "timing.h"

#define FIX_SCALE 1099511627776.0 /* 2^40: mixes are in [0, 1] */
#define FIX_HIDDEN 16777216.0     /* 2^24: hidden states are stored as binary16 anyway */
#define BUILD_CAPS CH_CAP_JSON

typedef struct {
    const char *probes, *input, *output, *tasks, *timing;
    int allow_incomplete, force;
    int heads; /* CH_HEADS_OWN | CH_HEADS_UNION */
    int64_t block_rows;
    ch_timing *tm; /* filled in by run() */
} opts;

static const ch_opt opts_table[] = {
    {"probes", 0, CH_OPT_PATH, offsetof(opts, probes), "PROBES.h5", .flags = CH_OPT_REQUIRED,
     .help = "the probe file (capheads probe)"},
    {"input", 0, CH_OPT_PATH, offsetof(opts, input), "TASKS.h5", .flags = CH_OPT_REQUIRED,
     .help = "the target tasks' archive (capheads extract)"},
    {"output", 0, CH_OPT_PATH, offsetof(opts, output), "DIR", .flags = CH_OPT_REQUIRED,
     .help = "where mix.h5, mix.csv and mix.svg go"},
    {"tasks", 0, CH_OPT_STRING, offsetof(opts, tasks), "T1,T2,...",
     .help = "only these tasks (each must have examples)"},
    CH_OPT_FORCE(opts, force),
    {"allow-incomplete", 0, CH_OPT_FLAG, offsetof(opts, allow_incomplete),
     .help = "use an archive whose extraction did not finish (done rows only)"},
    {"heads", 0, CH_OPT_CHOICE, offsetof(opts, heads), .choices = "own|union", .def = "own",
     .help = "own: a row's mix: capability c = the mean probability of c at c's\n"
             "own top-k heads, then normalised to sum 1; union: the mean of the\n"
             "whole distribution of every mapped head (the union of the top-k\n"
             "sets); select must be given the same --heads"},
    {"block-rows", 0, CH_OPT_INT64, offsetof(opts, block_rows), "N", .def = "256", .lo = 1, .hi = INT64_MAX,
     .help = "archive rows read per block: memory per rank is N rows of the\n"
             "layers that hold mapped heads"},
    {"timing", 0, CH_OPT_PATH, offsetof(opts, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = archive\n"
             "rows folded into a mix, tasks = tasks reported"},
};

static const ch_opt_cmd cmd = {
    "decompose", opts_table, CH_NOPTS(opts_table),
    .about = "For every task in the archive (its `task` field: MMLU subjects, BBH tasks, ...), run\n"
             "the probes of the mapped heads over the task's examples and average the predicted\n"
             "capability distribution. Writes DIR/mix.h5, DIR/mix.csv, DIR/mix.svg.\n"};

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

/* Everything one run holds; the steps below fill it in order. */
typedef struct {
    MPI_Comm comm;
    int rank, size;
    ch_capmix cm;
    ch_archive_reader *r;
    ch_archive_info info;
    char **rows, **uniq; /* every row's task; the sorted distinct tasks */
    int nuniq;
    int *want;           /* [nuniq]: reported */
    int64_t *fix, *cnt;  /* [nuniq][5] fixed-point sums of row mixes, [nuniq] rows */
    int64_t *hfix;       /* [nuniq][hidden]: sums of hidden states (RDS), when the archive has them */
    float *acts, *tmp, *hid;
    uint8_t *done_mask;
    double *p;
    ch_mix mix;
    ch_lock *lock;       /* rank 0: the output's lock, for the whole run */
} dctx;

/* The tasks are read where the probes were fitted: the prompt's end, rendered by one rule. */
static int check_render(dctx *d, const opts *o) {
    const ch_render_rule *probes = &d->cm.render;
    CH_TRY(ch_render_rule_need_prompt("decompose", "tasks archive", o->input, &d->info.render));
    CH_TRY(ch_render_rule_need_prompt("decompose", "probe file", o->probes, probes));
    return ch_render_rule_check("probe file", o->probes, probes, "tasks archive", o->input, &d->info.render, 0);
}

/* The probes and the archive must be for the same capabilities and heads. */
static int open_inputs(dctx *d, const opts *o) {
    CH_TRY(ch_capmix_load(o->probes, &d->cm));
    d->cm.heads = o->heads;
    const ch_capmix *cm = &d->cm;
    if (!ch_capability_names_same(cm->capability_names, BUILD_CAPS))
        CH_FAIL(CH_EMISMATCH, "the probes in %s are for capabilities %s, this build's are %s", o->probes,
                cm->capability_names ? cm->capability_names : "(none recorded)", BUILD_CAPS);
    CH_TRY(ch_archive_open_read(o->input, d->comm, &d->r));
    CH_TRY(ch_archive_get_info(d->r, &d->info));
    const ch_archive_info *info = &d->info;
    if (info->n_layers != cm->n_layers || info->n_heads != cm->n_heads || info->head_dim != cm->head_dim)
        CH_FAIL(CH_EMISMATCH, "%s holds %d x %d heads of dim %d but the probes in %s are for %d x %d of dim %d",
                o->input, info->n_layers, info->n_heads, info->head_dim, o->probes, cm->n_layers, cm->n_heads,
                cm->head_dim);
    if (!info->complete && !o->allow_incomplete)
        CH_FAIL(CH_EINCOMPLETE,
                "%s is incomplete (%lld of %lld rows done): finish it with extract --resume, or "
                "pass --allow-incomplete",
                o->input, (long long)info->n_done, (long long)info->n_rows);
    return check_render(d, o);
}

/* The archive's tasks, and which of them to report (--tasks). */
static int list_tasks(dctx *d, const opts *o) {
    CH_TRY(task_list(d->r, d->info.n_rows, &d->rows, &d->uniq, &d->nuniq));
    if (!d->nuniq) CH_FAIL(CH_EFORMAT, "%s: no row has a task (the `task` field of the corpus)", o->input);
    CH_TRY(CH_ALLOC(d->want, d->nuniq, "task filter"));
    if (!o->tasks) {
        for (int i = 0; i < d->nuniq; i++) d->want[i] = 1;
        return 0;
    }
    char *list = strdup(o->tasks), *save = NULL;
    if (!list) CH_FAIL(CH_ENOMEM, "out of memory");
    int rc = 0;
    for (char *t = strtok_r(list, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        int i = find_task(d->uniq, d->nuniq, t);
        if (i < 0) rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "task '%s' has no examples in %s", t, o->input);
        else d->want[i] = 1;
    }
    free(list);
    return rc;
}

static int alloc_sums(dctx *d, int64_t B, size_t width) {
    const int hd = d->info.hidden_dim;
    CH_TRY(CH_ALLOC(d->fix, (size_t)d->nuniq * CH_NCAP, "sums"));
    CH_TRY(CH_ALLOC(d->cnt, d->nuniq, "counts"));
    CH_TRY(CH_ALLOC(d->acts, (size_t)B * width, "activation block"));
    CH_TRY(CH_ALLOC(d->tmp, (size_t)B * d->info.n_heads * d->info.head_dim, "layer block"));
    CH_TRY(CH_ALLOC(d->p, CH_NCAP, "row mix"));
    CH_TRY(CH_ALLOC(d->done_mask, B, "done mask"));
    if (hd > 0) CH_TRY(CH_ALLOC(d->hfix, (size_t)d->nuniq * hd, "hidden sums"));
    if (hd > 0) CH_TRY(CH_ALLOC(d->hid, (size_t)B * hd, "hidden block"));
    return 0;
}

/* Rows [b0, b0+n) into their tasks' sums. */
static int sum_block(dctx *d, const opts *o, int64_t b0, int64_t n, size_t width) {
    const int hd = d->info.hidden_dim;
    CH_TRY(ch_capmix_read(&d->cm, d->r, b0, n, d->acts, d->tmp));
    CH_TRY(ch_archive_read_done(d->r, b0, n, d->done_mask));
    if (hd > 0) CH_TRY(ch_archive_read_hidden(d->r, b0, n, d->hid));
    for (int64_t i = 0; i < n; i++) {
        /* rows not done hold no data (only with --allow-incomplete) and rows without a task
         * belong to no mix */
        if (!d->done_mask[i] || !d->rows[b0 + i][0]) continue;
        if (ch_capmix_apply_used(&d->cm, d->acts + i * width, 1, d->p))
            return ch_err_wrap("%s: row %lld: ", o->input, (long long)(b0 + i));
        int t = find_task(d->uniq, d->nuniq, d->rows[b0 + i]);
        d->cnt[t]++;
        for (int c = 0; c < CH_NCAP; c++) d->fix[t * CH_NCAP + c] += llround(d->p[c] * FIX_SCALE);
        for (int j = 0; j < hd; j++) d->hfix[(size_t)t * hd + j] += llround(d->hid[i * hd + j] * FIX_HIDDEN);
    }
    return 0;
}

/* Each rank sums a contiguous block of rows; integer sums reduce to the same bits for any rank
 * count. */
static int sum_rows(dctx *d, const opts *o) {
    const int64_t N = d->info.n_rows, r0 = N * d->rank / d->size, r1 = N * (d->rank + 1) / d->size;
    const int64_t B = o->block_rows;
    /* only the layers that hold mapped heads are read */
    const size_t width = (size_t)d->cm.n_used * d->info.n_heads * d->info.head_dim;
    int rc = alloc_sums(d, B, width);
    for (int64_t b0 = r0; b0 < r1 && !rc; b0 += B) {
        rc = sum_block(d, o, b0, r1 - b0 < B ? r1 - b0 : B, width);
        (void)ch_lock_refresh(d->lock); /* heartbeat (rank 0 holds it) */
    }
    CH_TRY(ch_mpi_agree(d->comm, rc)); /* a failed rank must not skip the reduction */
    const int nu = d->nuniq, hd = d->info.hidden_dim;
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, d->fix, nu * CH_NCAP, MPI_INT64_T, MPI_SUM, d->comm));
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, d->cnt, nu, MPI_INT64_T, MPI_SUM, d->comm));
    if (hd > 0) CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, d->hfix, nu * hd, MPI_INT64_T, MPI_SUM, d->comm));
    return 0;
}

/* The reported tasks' mean mixes (and hidden states) from the sums; the mix borrows names. */
static int make_mix(dctx *d, const opts *o) {
    ch_mix *mix = &d->mix;
    const int hd = d->info.hidden_dim;
    int nt = 0;
    for (int i = 0; i < d->nuniq; i++) nt += d->want[i];
    CH_TRY(CH_ALLOC(mix->tasks, nt, "mix"));
    CH_TRY(CH_ALLOC(mix->mix, (size_t)nt * CH_NCAP, "mix"));
    CH_TRY(CH_ALLOC(mix->count, nt, "mix"));
    if (hd > 0) CH_TRY(CH_ALLOC(mix->hidden_mean, (size_t)nt * hd, "hidden means"));
    mix->hidden_dim = hd;
    for (int i = 0, j = 0; i < d->nuniq; i++) {
        if (!d->want[i]) continue;
        const int64_t n = d->cnt[i];
        if (!n) CH_FAIL(CH_EINCOMPLETE, "task '%s' has no finished examples in %s", d->uniq[i], o->input);
        mix->tasks[j] = d->uniq[i];
        mix->count[j] = n;
        for (int c = 0; c < CH_NCAP; c++)
            mix->mix[j * CH_NCAP + c] = (double)d->fix[i * CH_NCAP + c] / FIX_SCALE / (double)n;
        for (int k = 0; k < hd; k++)
            mix->hidden_mean[(size_t)j * hd + k] = (float)((double)d->hfix[(size_t)i * hd + k] / FIX_HIDDEN / (double)n);
        j++;
    }
    mix->ntask = nt;
    mix->probes = (char *)o->probes;
    mix->input = (char *)o->input;
    mix->input_sha256 = d->info.input_sha256;
    mix->capability_names = BUILD_CAPS;
    mix->probes_sha256 = d->cm.digest; /* the identity select checks its --probes against */
    mix->probes_input_sha256 = d->cm.source_sha256;
    mix->heads = (char *)ch_capmix_heads_name(d->cm.heads);
    mix->render = d->info.render;
    return 0;
}

static void print_mix(const ch_mix *mix, const char *dir) {
    printf("%-40s %8s", "task", "n");
    for (int c = 0; c < CH_NCAP; c++) printf(" %12s", ch_capability_names[c]);
    printf("\n");
    for (int i = 0; i < mix->ntask; i++) {
        printf("%-40s %8lld", mix->tasks[i], (long long)mix->count[i]);
        for (int c = 0; c < CH_NCAP; c++) printf(" %12.4f", mix->mix[i * CH_NCAP + c]);
        printf("\n");
    }
    printf("wrote %s/mix.h5, mix.csv, mix.svg\n", dir);
}

/* Rank 0 writes; every rank learns whether it could. */
static int write_mix(dctx *d, const opts *o) {
    int rc = d->rank == 0 ? ch_mix_write(o->output, &d->mix) : 0;
    if (!rc && d->rank == 0) print_mix(&d->mix, o->output);
    int arc = ch_mpi_agree(d->comm, rc);
    if (arc && !rc) ch_err_wrap("writing %s: ", o->output);
    CH_TRY(arc);
    for (int i = 0; i < d->nuniq; i++) o->tm->records += d->cnt[i]; /* rows that went into a mix */
    return ch_timing_add(o->tm, "tasks", d->mix.ntask);
}

static void dctx_free(dctx *d) {
    /* mix borrows task names and strings: free only its own arrays */
    free(d->mix.tasks), free(d->mix.mix), free(d->mix.count), free(d->mix.hidden_mean);
    free(d->want);
    free(d->fix), free(d->cnt), free(d->acts), free(d->p), free(d->done_mask), free(d->hfix), free(d->hid);
    free(d->tmp);
    free(d->uniq);
    if (d->rows) ch_archive_free_strings(d->rows, d->info.n_rows);
    ch_archive_info_free(&d->info);
    if (d->r) ch_archive_close_read(d->r);
    ch_capmix_free(&d->cm);
    ch_lock_release(d->lock);
}

static int run(const opts *o, MPI_Comm comm) {
    dctx d;
    memset(&d, 0, sizeof d);
    d.comm = comm;
    int rc = 0;
    CH_MPI_TRY_GOTO(MPI_Comm_rank(comm, &d.rank), out);
    CH_MPI_TRY_GOTO(MPI_Comm_size(comm, &d.size), out);
    const ch_path_role in[] = {{o->probes, "--probes", 0}, {o->input, "--input", 0}};
    const ch_path_role outs[] = {{o->output, "--output", 1}, {o->timing, "--timing", 0}};
    CH_TRY_GOTO(ch_stage_guard(comm, in, 2, outs, 2, 1, o->force, &d.lock), out);
    CH_TRY_GOTO(open_inputs(&d, o), out);
    CH_TRY_GOTO(list_tasks(&d, o), out);
    CH_TRY_GOTO(sum_rows(&d, o), out);
    CH_TRY_GOTO(make_mix(&d, o), out);
    rc = write_mix(&d, o);
out:
    dctx_free(&d);
    return rc;
}

int ch_cmd_decompose(int argc, char **argv, MPI_Comm comm) {
    opts o = {0};
    int help;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &o, &help));
    if (help) return ch_opt_help(&cmd, comm);
    ch_timing tm;
    ch_timing_start(&tm, "decompose");
    tm.records = 0, o.tm = &tm;
    return ch_timing_finish(&tm, o.timing, run(&o, comm), comm);
}
