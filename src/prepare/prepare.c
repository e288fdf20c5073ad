/* prepare.c - the `prepare` stage: command line, the sources (files, directories), the refusal of
 * evaluation splits, and the run. The writer is prepare_out.c, the probing set
 * prepare_probeset.c, the format readers prepare_formats.c and prepare_readers.c. */
#include "prepare.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpi.h>

#include "archive.h"
#include "stage.h"
#include "err.h"
#include "jsonl.h"
#include "mpicheck.h"
#include "options.h"
#include "agree.h"
#include "timing.h"
#include "prepare_out.h"

/* ---- sources: files, or directories expanded to their files with the format's extension ---- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* File name without directory and without its last extension. */
static void stem_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", base_name(path));
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* The files a SRC stands for: itself, or a directory's files with the format's extension, in
 * name order (stable whatever readdir returns). Appended to *files (malloc'ed strings). */
typedef struct {
    char **v;
    size_t n, cap;
} file_list;

static int list_push(file_list *l, char *s) {
    if (!s) CH_FAIL(CH_ENOMEM, "out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->v, cap * sizeof *p);
        if (!p) {
            free(s);
            CH_FAIL(CH_ENOMEM, "out of memory listing sources");
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int expand_src(const ch_prep_format *fmt, const char *path, file_list *l) {
    struct stat st;
    if (stat(path, &st)) CH_FAIL(CH_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return list_push(l, strdup(path));
    DIR *d = opendir(path);
    if (!d) CH_FAIL(CH_EIO, "%s: cannot list: %s", path, strerror(errno));
    size_t first = l->n, lx = strlen(fmt->ext);
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= lx || strcmp(e->d_name + len - lx, fmt->ext)) continue;
        char *name = malloc(strlen(path) + len + 2);
        if (name) sprintf(name, "%s/%s", path, e->d_name);
        rc = list_push(l, name);
    }
    closedir(d);
    if (rc) return rc;
    if (l->n == first) CH_FAIL(CH_EARG, "%s: no *%s files in this directory", path, fmt->ext);
    qsort(l->v + first, l->n - first, sizeof *l->v, ch_prep_cmp_str);
    return 0;
}

/* An evaluation split is refused unless --allow-eval-split; allowed, stderr says which
 * benchmarks the output contaminates. */
static int check_eval_splits(const ch_prepare_opts *o, const ch_prep_format *fmt, const file_list *l) {
    int used[16] = {0}, any = 0;
    for (size_t i = 0; i < l->n; i++) {
        const ch_prep_eval_split *e = ch_prep_eval_split_of(fmt->name, l->v[i]);
        if (!e) continue;
        if (!o->allow_eval)
            CH_FAIL(CH_EARG,
                    "%s: %s: taking it would contaminate the %s evaluation (use the few-shot/dev data for targets, "
                    "or --allow-eval-split to take it anyway)",
                    l->v[i], e->how, e->benchmark);
        used[e - ch_prep_eval_splits] = any = 1;
    }
    if (!any) return 0;
    fprintf(stderr, "prepare %s: --allow-eval-split: contaminates:", fmt->name);
    for (int i = 0, k = 0; i < ch_prep_neval_splits; i++)
        if (used[i]) fprintf(stderr, "%s %s", k++ ? "," : "", ch_prep_eval_splits[i].benchmark);
    fprintf(stderr, " (its records carry meta.eval_split)\n");
    return 0;
}

static int convert_file(ch_prep_out *w, const ch_prepare_opts *o, const ch_prep_format *fmt, const char *path) {
    char stem[512];
    stem_of(path, stem, sizeof stem);
    const ch_prep_eval_split *e = ch_prep_eval_split_of(fmt->name, path);
    w->eval = e ? e->benchmark : NULL;
    CH_TRY(fmt->convert(w, o, path, stem));
    return ch_prep_out_end_file(w);
}

/* ---- command line ------------------------------------------------------------------------- */

typedef struct {
    ch_prepare_opts p;
    const char *timing;
    int force;
} cli;

static const ch_opt opts_table[] = {
    {"output", 'o', CH_OPT_PATH, offsetof(cli, p.output), "FILE", .flags = CH_OPT_REQUIRED,
     .help = "where to write (via a temporary file renamed at the end)"},
    {"label", 0, CH_OPT_STRING, offsetof(cli, p.label), "CAP",
     .help = "set the label of every record ('' for none); e.g. `prepare mmlu\n"
             "--label professional` for the professional-expertise class"},
    {"task", 0, CH_OPT_STRING, offsetof(cli, p.task), "NAME", .help = "set the task of every record ('' for none)"},
    {"cue", 0, CH_OPT_STRING, offsetof(cli, p.cue), "TEXT",
     .help = "line appended to each text ('' for none; default per format above,\n"
             "and Answer: for probeset); not for less"},
    {"limit", 0, CH_OPT_INT64, offsetof(cli, p.limit), "N", .lo = 0, .hi = INT64_MAX,
     .help = "a random sample of N records of each source file, drawn over the whole\n"
             "file (by --seed and the ids only; ids keep their file index; default: all)"},
    {"seed", 0, CH_OPT_U64, offsetof(cli, p.seed), "S", .def = "0",
     .help = "seed of --limit's sample and of probeset's selection and order"},
    {"allow-eval-split", 0, CH_OPT_FLAG, offsetof(cli, p.allow_eval),
     .help = "take a benchmark's evaluation split (MMLU test, BBH evaluation examples),\n"
             "refused otherwise; stderr names the benchmarks it contaminates"},
    {"options", 0, CH_OPT_CHOICE, offsetof(cli, p.show_options), .choices = "hide|show", .def = "hide",
     .help = "probeset: leave the choices out of every text (hide), or show them as\n"
             "A. ... lines in every text (show: every record needs the same count)"},
    {"match-length", 0, CH_OPT_FLAG, offsetof(cli, p.match_length),
     .help = "probeset: keep per class the same number of records in each length bin\n"
             "(characters of the rendered text, bins 1/8 wide), so every class has\n"
             "the same length distribution; stderr: per class kept, median lengths"},
    {"per-class", 0, CH_OPT_INT64, offsetof(cli, p.per_class), "N", .lo = 0, .hi = INT64_MAX,
     .help = "probeset: records per class (default: the smallest class)"},
    {"force", 0, CH_OPT_FLAG, offsetof(cli, force),
     .help = "replace an existing output (without it an existing one is refused)"},
    {"timing", 0, CH_OPT_PATH, offsetof(cli, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = records\n"
             "written, sources = SRC arguments"},
};

/* One help line per format; a '\n' in its help continues under the text column. */
static void print_format(FILE *f, const char *name, const char *help, const char *label, const char *cue) {
    fprintf(f, "  %-10s ", name);
    for (const char *p = help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') fprintf(f, "%13s", "");
    }
    fprintf(f, " (label: %s%s%s)\n", label ? label : "none", cue ? ", cue: " : "", cue ? cue : "");
}

static void list_formats(FILE *f) {
    fprintf(f, "\nformats:\n");
    for (int i = 0; i < ch_prep_nformats; i++) {
        const ch_prep_format *p = &ch_prep_formats[i];
        print_format(f, p->name, p->help, p->label, p->cue);
    }
    fprintf(f,
            "  %-10s the balanced probing set from prepared files given as CAP=FILE (CAP: math,\n"
            "             reading, commonsense, science, professional; repeat a CAP for more files);\n"
            "             records get label CAP and the one probing template as text:\n"
            "             [PASSAGE\\n\\n]Question: QUESTION[\\nA. CHOICE...]\\nAnswer: (from meta; choices\n"
            "             only with --options show); every class gets the same count (the smallest,\n"
            "             or --per-class N); order and choice depend only on --seed and the ids;\n"
            "             --match-length: the same length distribution in every class\n",
            "probeset");
    fprintf(f, "\nevaluation splits (refused without --allow-eval-split):\n");
    for (int i = 0; i < ch_prep_neval_splits; i++)
        fprintf(f, "  %-10s %s -> contaminates %s\n", ch_prep_eval_splits[i].format, ch_prep_eval_splits[i].how,
                ch_prep_eval_splits[i].benchmark);
}

static const ch_opt_cmd cmd = {
    "prepare", opts_table, CH_NOPTS(opts_table), .positional = "FORMAT SRC...", .min_pos = 1, .max_pos = -1,
    .pos_offset = offsetof(cli, p.srcs), .npos_offset = offsetof(cli, p.nsrcs),
    .about = "The probing set: capheads prepare probeset CAP=FILE... --output FILE.jsonl [--seed S]\n"
             "[--per-class N] [--match-length]\n\n"
             "Convert a dataset's original format into capheads' JSONL records, one per line:\n"
             "  {\"id\", \"text\" | \"messages\", \"label\"?, \"task\"?, \"meta\"?}\n"
             "ids are DATASET/FILE-STEM/INDEX (INDEX counts the records of one file from 0).\n"
             "A SRC directory stands for its files with the format's extension, in name order.\n",
    .more_help = list_formats};

/* FORMAT is the first positional argument, the sources the rest; the format must be known. */
static int resolve_format(ch_prepare_opts *o, const ch_prep_format **fmt) {
    o->format = o->srcs[0];
    o->srcs++, o->nsrcs--;
    *fmt = NULL;
    for (int i = 0; i < ch_prep_nformats; i++)
        if (!strcmp(o->format, ch_prep_formats[i].name)) *fmt = &ch_prep_formats[i];
    if (!*fmt && strcmp(o->format, "probeset")) {
        char known[256] = "";
        for (int i = 0; i < ch_prep_nformats; i++) {
            strcat(known, ch_prep_formats[i].name);
            strcat(known, ", ");
        }
        CH_FAIL(CH_EARG, "unknown format '%s' (known: %sprobeset)", o->format, known);
    }
    if (o->nsrcs < 1) CH_FAIL(CH_EARG, "%s: no SRC given", o->format);
    if (o->label && *o->label && ch_capability_index(o->label) < 0)
        CH_FAIL(CH_EARG, "--label '%s' is not a capability (" CH_CAP_LIST ")", o->label);
    if (*fmt && o->show_options)
        CH_FAIL(CH_EARG, "--options applies to probeset only (a format's text shows its choices)");
    if (*fmt && o->match_length) CH_FAIL(CH_EARG, "--match-length applies to probeset only");
    return 0;
}

/* Every source converted into one output, committed only when all of them are. */
static int run_convert(const ch_prepare_opts *o, const ch_prep_format *fmt, long *nrec) {
    file_list files = {0};
    int rc = 0;
    for (int i = 0; !rc && i < o->nsrcs; i++) rc = expand_src(fmt, o->srcs[i], &files);
    if (!rc) rc = check_eval_splits(o, fmt, &files);
    if (rc) {
        list_free(&files);
        return rc;
    }
    ch_prep_out w;
    rc = ch_prep_out_open(&w, o->output);
    w.limit = o->limit;
    w.seed = o->seed;
    for (size_t i = 0; !rc && i < files.n; i++) rc = convert_file(&w, o, fmt, files.v[i]);
    list_free(&files);
    long n = w.n;
    *nrec = n;
    if (!rc) rc = ch_prep_out_commit(&w);
    else if (w.f) ch_prep_out_abort(&w);
    if (!rc) printf("prepare %s: %ld records -> %s\n", o->format, n, o->output);
    return rc;
}

/* The sources (CAP=FILE for probeset: the FILE) against --output and --timing. */
static int guard(const cli *c, MPI_Comm comm) {
    ch_path_role *in = calloc((size_t)c->p.nsrcs + 1, sizeof *in);
    if (!in) CH_FAIL(CH_ENOMEM, "out of memory");
    for (int i = 0; i < c->p.nsrcs; i++) {
        const char *eq = strcmp(c->p.format, "probeset") ? NULL : strchr(c->p.srcs[i], '=');
        in[i] = (ch_path_role){eq ? eq + 1 : c->p.srcs[i], "SRC", 0};
    }
    const ch_path_role out[] = {{c->p.output, "--output", 0}, {c->timing, "--timing", 0}};
    int rc = ch_stage_guard(comm, in, c->p.nsrcs, out, 2, 1, c->force, NULL); /* unique temporary names */
    free(in);
    return rc;
}

/* A serial stage: rank 0 converts, the others learn the outcome. */
static int run(const ch_prepare_opts *o, const ch_prep_format *fmt, MPI_Comm comm, long *nrec) {
    int rank, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (rank == 0 && fmt) rc = run_convert(o, fmt, nrec);
    if (rank == 0 && !fmt) {
        long m = 0;
        int ncls = 0;
        rc = ch_prep_run_probeset(o, nrec, &m, &ncls);
        if (!rc)
            printf("prepare probeset: %ld records (%d classes x %ld, seed %" PRIu64 ") -> %s\n", *nrec, ncls, m,
                   o->seed, o->output);
    }
    int arc = ch_mpi_agree(comm, rc);
    if (arc && !rc) ch_err_wrap("prepare runs on rank 0 only: ");
    return arc;
}

int ch_cmd_prepare(int argc, char **argv, MPI_Comm comm) {
    cli c = {.p = {.limit = -1, .per_class = -1}};
    int help, rc = 0;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &c, &help));
    char **pos = c.p.srcs; /* resolve_format moves srcs past FORMAT */
    if (help) {
        rc = ch_opt_help(&cmd, comm);
        goto done;
    }
    const ch_prep_format *fmt;
    CH_TRY_GOTO(resolve_format(&c.p, &fmt), done);
    CH_TRY_GOTO(guard(&c, comm), done);
    long nrec = -1; /* records written (rank 0), for the timing record */
    ch_timing tm;
    ch_timing_start(&tm, "prepare");
    rc = run(&c.p, fmt, comm, &nrec);
    tm.records = nrec;
    if (!rc) rc = ch_timing_add(&tm, "sources", c.p.nsrcs);
    rc = ch_timing_finish(&tm, c.timing, rc, comm);
done:
    free(pos);
    return rc;
}
