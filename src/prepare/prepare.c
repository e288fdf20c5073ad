/* prepare.c - the `prepare` stage: command line, the output writer (temporary file, renamed only
 * when complete), id uniqueness, and the balanced probing-set builder. Format converters live in
 * prepare_formats.c. */
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

/* ---- the output writer --------------------------------------------------------------------- */

struct ch_prep_out {
    FILE *f;
    const char *path;
    char tmp[4096];
    char **ids;
    long n, cap;
};

static int out_open(ch_prep_out *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->path = path;
    if ((size_t)snprintf(w->tmp, sizeof w->tmp, "%s.tmp.XXXXXX", path) >= sizeof w->tmp)
        CH_FAIL(CH_EARG, "output path too long: %s", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0)
        CH_FAIL(CH_EIO, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
    w->f = fdopen(fd, "w");
    if (!w->f) {
        close(fd);
        unlink(w->tmp);
        CH_FAIL(CH_EIO, "%s: fdopen failed: %s", w->tmp, strerror(errno));
    }
    return 0;
}

static void out_free(ch_prep_out *w) {
    for (long i = 0; i < w->n; i++)
        free(w->ids[i]);
    free(w->ids);
    w->ids = NULL;
    w->n = 0;
}

/* Drop the temporary file: a failed run leaves no output, not half of one. */
static void out_abort(ch_prep_out *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
    unlink(w->tmp);
    out_free(w);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int out_commit(ch_prep_out *w) {
    int rc = 0;
    qsort(w->ids, (size_t)w->n, sizeof *w->ids, cmp_str);
    for (long i = 1; i < w->n; i++)
        if (!strcmp(w->ids[i - 1], w->ids[i]))
            CH_FAIL_GOTO(fail, CH_EFORMAT,
                         "duplicate id '%s' in the output (ids are dataset/file stem/index: two "
                         "sources with the same file name?)",
                         w->ids[i]);
    if (fflush(w->f) || fsync(fileno(w->f)))
        CH_FAIL_GOTO(fail, CH_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f)) CH_FAIL_GOTO(fail, CH_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    CH_TRY_GOTO(ch_out_publish(w->tmp, w->path), fail);
    out_free(w);
    return 0;
fail:
    out_abort(w);
    return rc;
}

int ch_prep_emit(ch_prep_out *w, cJSON *rec) {
    int rc = 0;
    ch_out_kill_point("write"); /* fault injection (tests/test_faults.sh) */
    char *line = NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(rec, "label");
    if (!cJSON_IsString(id) || !id->valuestring[0])
        CH_FAIL_GOTO(done, CH_EINTERNAL, "record without an id");
    if (label && (!cJSON_IsString(label) || ch_capability_index(label->valuestring) < 0))
        CH_FAIL_GOTO(done, CH_EARG,
                     "label '%s' of %s is not a capability (" CH_CAP_LIST ")",
                     cJSON_IsString(label) ? label->valuestring : "?", id->valuestring);
    if (w->n == w->cap) {
        long cap = w->cap ? w->cap * 2 : 1024;
        char **p = realloc(w->ids, (size_t)cap * sizeof *p);
        if (!p) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory (%ld ids)", cap);
        w->ids = p;
        w->cap = cap;
    }
    w->ids[w->n] = strdup(id->valuestring);
    if (!w->ids[w->n]) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory");
    w->n++;
    line = cJSON_PrintUnformatted(rec);
    if (!line) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory printing record %s", id->valuestring);
    if (fputs(line, w->f) == EOF || fputc('\n', w->f) == EOF)
        CH_FAIL_GOTO(done, CH_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
done:
    free(line);
    cJSON_Delete(rec);
    return rc;
}

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

static int convert_path(ch_prep_out *w, const ch_prepare_opts *o, const ch_prep_format *fmt,
                        const char *path) {
    struct stat st;
    if (stat(path, &st)) CH_FAIL(CH_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        char stem[512];
        stem_of(path, stem, sizeof stem);
        return fmt->convert(w, o, path, stem);
    }
    DIR *d = opendir(path);
    if (!d) CH_FAIL(CH_EIO, "%s: cannot list: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0, lx = strlen(fmt->ext);
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= lx || strcmp(e->d_name + l - lx, fmt->ext)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory listing %s", path);
            names = p;
        }
        if (!(names[n] = malloc(strlen(path) + l + 2)))
            CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory");
        sprintf(names[n++], "%s/%s", path, e->d_name);
    }
    if (n == 0) CH_FAIL_GOTO(done, CH_EARG, "%s: no *%s files in this directory", path, fmt->ext);
    qsort(names, n, sizeof *names, cmp_str); /* stable order whatever readdir returns */
    for (size_t i = 0; i < n && !rc; i++) {
        char stem[512];
        stem_of(names[i], stem, sizeof stem);
        rc = fmt->convert(w, o, names[i], stem);
    }
done:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- probeset: balanced, seeded selection from already prepared files ---------------------- */

/* The order of records is a function of (seed, id) only: sort by a 64-bit mix of both. The n
 * records of a class with the smallest keys are kept, and the output is sorted by key, so the
 * result does not depend on the order of the inputs. */
static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

typedef struct {
    uint64_t key;
    int cap;
    cJSON *rec;
} probe_item;

static int cmp_item(const void *a, const void *b) {
    const probe_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(cJSON_GetObjectItemCaseSensitive(x->rec, "id")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(y->rec, "id")->valuestring);
}

/* Rebuild a prepared record in the canonical key order with label = capability. */
static int probe_record(const cJSON *in, const char *cap, cJSON **out) {
    cJSON *r = cJSON_CreateObject();
    int ok = r != NULL;
    const char *keys[] = {"id", "text", "messages"};
    for (int i = 0; i < 3 && ok; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, keys[i]);
        if (v) ok = cJSON_AddItemToObject(r, keys[i], cJSON_Duplicate(v, 1));
    }
    ok = ok && cJSON_AddStringToObject(r, "label", cap);
    const char *rest[] = {"task", "meta"};
    for (int i = 0; i < 2 && ok; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, rest[i]);
        if (v) ok = cJSON_AddItemToObject(r, rest[i], cJSON_Duplicate(v, 1));
    }
    if (!ok) {
        cJSON_Delete(r);
        CH_FAIL(CH_ENOMEM, "out of memory building the probing set");
    }
    *out = r;
    return 0;
}

static int read_probe_file(const ch_prepare_opts *o, const char *path, int cap, probe_item **items,
                           long *n, long *capacity) {
    ch_jsonl r;
    CH_TRY(ch_jsonl_open(&r, path));
    int rc = 0;
    uint64_t seedmix = mix64(o->seed);
    for (long idx = 0; o->limit < 0 || idx < o->limit; idx++) {
        const char *line;
        size_t len;
        int has;
        cJSON *obj = NULL;
        CH_TRY_GOTO(ch_jsonl_next(&r, &line, &len, &has), done);
        if (!has) break;
        CH_TRY_GOTO(ch_json_parse(path, r.lineno, line, len, &obj), done);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(obj, "label");
        const char *why = NULL;
        if (!cJSON_IsObject(obj))
            why = "expected a JSON object";
        else if (!cJSON_IsString(id) || !id->valuestring[0])
            why = "missing 'id' (not a prepared file?)";
        else if (!cJSON_IsString(text) && !cJSON_IsArray(msgs))
            why = "missing 'text' or 'messages'";
        else if (label &&
                 (!cJSON_IsString(label) || strcmp(label->valuestring, ch_capability_names[cap])))
            why = "record carries another label than the class it is given for";
        if (why) {
            cJSON_Delete(obj);
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: %s (%s=%s)", path, r.lineno, why,
                         ch_capability_names[cap], path);
        }
        if (*n == *capacity) {
            long c2 = *capacity ? *capacity * 2 : 1024;
            probe_item *p = realloc(*items, (size_t)c2 * sizeof *p);
            if (!p) {
                cJSON_Delete(obj);
                CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory reading %s", path);
            }
            *items = p;
            *capacity = c2;
        }
        (*items)[*n] = (probe_item){mix64(fnv1a64(id->valuestring) ^ seedmix), cap, obj};
        (*n)++;
    }
done:
    ch_jsonl_close(&r);
    return rc;
}

/* The records of the probeset's sources, read (every source is CAP=FILE). */
typedef struct {
    probe_item *items;
    long n, capacity;
    int present[5]; /* the classes given */
} probe_items;

static int read_classes(const ch_prepare_opts *o, probe_items *pi) {
    for (int i = 0; i < o->nsrcs; i++) {
        const char *arg = o->srcs[i], *eq = strchr(arg, '=');
        char cap[64];
        if (!eq || (size_t)(eq - arg) >= sizeof cap || !eq[1])
            CH_FAIL(CH_EARG, "probeset: expected CAP=FILE, got '%s'", arg);
        memcpy(cap, arg, (size_t)(eq - arg));
        cap[eq - arg] = 0;
        int c = ch_capability_index(cap);
        if (c < 0) CH_FAIL(CH_EARG, "probeset: '%s' is not a capability (" CH_CAP_LIST ")", cap);
        pi->present[c] = 1;
        CH_TRY(read_probe_file(o, eq + 1, c, &pi->items, &pi->n, &pi->capacity));
    }
    return 0;
}

/* Records per class: the smallest class's count, or --per-class when every class has that many. */
static int class_quota(const ch_prepare_opts *o, const probe_items *pi, long *m, int *nclasses) {
    long count[5] = {0};
    int ncls = 0;
    *m = -1;
    for (long i = 0; i < pi->n; i++) count[pi->items[i].cap]++;
    for (int c = 0; c < 5; c++) {
        if (!pi->present[c]) continue;
        ncls++;
        if (count[c] == 0) CH_FAIL(CH_EFORMAT, "probeset: class %s has no records", ch_capability_names[c]);
        if (*m < 0 || count[c] < *m) *m = count[c];
    }
    if (ncls < 2) CH_FAIL(CH_EARG, "probeset: give at least two classes as CAP=FILE");
    if (o->per_class >= 0) {
        for (int c = 0; c < 5; c++)
            if (pi->present[c] && count[c] < o->per_class)
                CH_FAIL(CH_EARG, "probeset: --per-class %ld but class %s has only %ld records", (long)o->per_class,
                        ch_capability_names[c], count[c]);
        *m = (long)o->per_class;
    }
    *nclasses = ncls;
    return 0;
}

/* Smallest keys first; keep the first m of each class, in that (global key) order. */
static int write_probeset(const ch_prepare_opts *o, probe_items *pi, long m, long *written) {
    ch_prep_out w;
    qsort(pi->items, (size_t)pi->n, sizeof *pi->items, cmp_item);
    CH_TRY(out_open(&w, o->output));
    long taken[5] = {0};
    int rc = 0;
    for (long i = 0; i < pi->n && !rc; i++) {
        int c = pi->items[i].cap;
        if (taken[c] >= m) continue;
        cJSON *rec = NULL;
        rc = probe_record(pi->items[i].rec, ch_capability_names[c], &rec);
        if (!rc) rc = ch_prep_emit(&w, rec);
        taken[c]++;
    }
    if (rc) {
        out_abort(&w);
        return rc;
    }
    *written = w.n;
    return out_commit(&w);
}

static int run_probeset(const ch_prepare_opts *o, long *written, long *per_class, int *nclasses) {
    probe_items pi;
    memset(&pi, 0, sizeof pi);
    int rc = read_classes(o, &pi);
    if (!rc) rc = class_quota(o, &pi, per_class, nclasses);
    if (!rc) rc = write_probeset(o, &pi, *per_class, written);
    for (long i = 0; i < pi.n; i++) cJSON_Delete(pi.items[i].rec);
    free(pi.items);
    return rc;
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
     .help = "line appended to each text ('' for none; default per format above);\nnot for less"},
    {"limit", 0, CH_OPT_INT64, offsetof(cli, p.limit), "N", .lo = 0, .hi = INT64_MAX,
     .help = "take at most the first N records of each source file (default: all)"},
    {"seed", 0, CH_OPT_U64, offsetof(cli, p.seed), "S", .def = "0",
     .help = "probeset: selection and order seed"},
    {"per-class", 0, CH_OPT_INT64, offsetof(cli, p.per_class), "N", .lo = 0, .hi = INT64_MAX,
     .help = "probeset: records per class (default: the smallest class)"},
    {"force", 0, CH_OPT_FLAG, offsetof(cli, force),
     .help = "replace an existing output (without it an existing one is refused)"},
    {"timing", 0, CH_OPT_PATH, offsetof(cli, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = records\n"
             "written, sources = SRC arguments"},
};

static void list_formats(FILE *f) {
    fprintf(f, "\nformats:\n");
    for (int i = 0; i < ch_prep_nformats; i++) {
        const ch_prep_format *p = &ch_prep_formats[i];
        fprintf(f, "  %-8s %s (label: %s%s%s)\n", p->name, p->help, p->label ? p->label : "none",
                p->cue ? ", cue: " : "", p->cue ? p->cue : "");
    }
    fprintf(f,
            "  %-8s the balanced probing set from prepared files given as CAP=FILE (CAP: math,\n"
            "           reading, commonsense, science, professional; repeat a CAP for more files);\n"
            "           records get label CAP; every class gets the same count (the smallest, or\n"
            "           --per-class N); order and choice depend only on --seed and the ids\n",
            "probeset");
}

static const ch_opt_cmd cmd = {
    "prepare", opts_table, CH_NOPTS(opts_table), .positional = "FORMAT SRC...", .min_pos = 1, .max_pos = -1,
    .pos_offset = offsetof(cli, p.srcs), .npos_offset = offsetof(cli, p.nsrcs),
    .about = "The probing set: capheads prepare probeset CAP=FILE... --output FILE.jsonl [--seed S]\n"
             "[--per-class N]\n\n"
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
    return 0;
}

/* Every source converted into one output, committed only when all of them are. */
static int run_convert(const ch_prepare_opts *o, const ch_prep_format *fmt, long *nrec) {
    ch_prep_out w;
    int rc = out_open(&w, o->output);
    for (int i = 0; !rc && i < o->nsrcs; i++) rc = convert_path(&w, o, fmt, o->srcs[i]);
    long n = w.n;
    *nrec = n;
    if (!rc) rc = out_commit(&w);
    else if (w.f) out_abort(&w);
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
    int rc = ch_stage_guard(comm, in, c->p.nsrcs, out, 2, 1, c->force);
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
        rc = run_probeset(o, nrec, &m, &ncls);
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
