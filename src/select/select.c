/* select.c - `capheads select`: score every pool row for every target task, keep the top fraction.
 *
 * Rows are split among ranks by the pool JSONL's bytes (mpi/lines.h), so each rank reads only its
 * part of the pool file and of the archive. Every score is computed on the rank that holds the
 * row; the global top fraction comes from a radix selection over reductions (mpi/topk.h), never
 * from gathering the pool. Ties are broken by id, so the selection is the same for any number
 * of ranks. Methods:
 *   capability  score = w_task . p_row (METHOD.md section 5), or cosine(w_task, p_row)
 *   random      a seeded hash of the row id: a uniform, reproducible random subset
 *   rds         cosine of mean-pooled final hidden states (row vs the task examples' mean);
 *               needs archives extracted with --hidden
 * Besides one set per task, one set per benchmark (benchmarks.h): a row's benchmark score is the
 * maximum of its scores for the benchmark's tasks, as LESS selects for MMLU and BBH. */
#include <cjson/cJSON.h>
#include <sys/resource.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "archive.h"
#include "benchmarks.h"
#include "capmix.h"
#include "stage.h"
#include "err.h"
#include "fsutil.h"
#include "h5seal.h"
#include "lines.h"
#include "mixfile.h"
#include "mpicheck.h"
#include "outfinish.h"
#include "options.h"
#include "provenance.h"
#include "select_out.h"
#include "timing.h"
#include "topk.h"

typedef enum { M_CAPABILITY, M_RANDOM, M_RDS } method;
typedef enum { L_BOTH, L_TASK, L_BENCHMARK } level;
static const char *const method_names[] = {"capability", "random", "rds"};
static const char *const level_names[] = {"both", "task", "benchmark"};
#define BENCH_DIR "benchmark" /* DIR/benchmark/<b>.jsonl: never a task's DIR/<t>.jsonl */

typedef struct {
    const char *probes, *mix, *input, *pool, *output, *tasks, *timing;
    double fraction;
    int method; /* M_CAPABILITY, M_RANDOM or M_RDS */
    int cosine, allow_incomplete, force;
    int heads; /* CH_HEADS_OWN | CH_HEADS_UNION: must be the mix's */
    int level; /* L_BOTH, L_TASK or L_BENCHMARK */
    uint64_t seed;
    int64_t block_rows;
    ch_timing *tm; /* filled in by run() */
} opts;

static const ch_opt opts_table[] = {
    {"probes", 0, CH_OPT_PATH, offsetof(opts, probes), "FILE",
     .help = "the probe file the mix was made from (checked); needed only by\n"
             "--method capability"},
    {"mix", 0, CH_OPT_PATH, offsetof(opts, mix), "MIXDIR", .flags = CH_OPT_REQUIRED,
     .help = "decompose's output"},
    {"input", 0, CH_OPT_PATH, offsetof(opts, input), "POOL.h5", .flags = CH_OPT_REQUIRED,
     .help = "the pool's archive"},
    {"pool", 0, CH_OPT_PATH, offsetof(opts, pool), "POOL.jsonl", .flags = CH_OPT_REQUIRED,
     .help = "the pool JSONL the archive was extracted from"},
    {"output", 0, CH_OPT_PATH, offsetof(opts, output), "DIR", .flags = CH_OPT_REQUIRED,
     .help = "where <task>.jsonl, benchmark/<benchmark>.jsonl and scores.h5 go"},
    {"fraction", 0, CH_OPT_DOUBLE, offsetof(opts, fraction), "F", .def = "0.05", .flo = 0, .fhi = 1,
     .flags = CH_OPT_LO_OPEN, .help = "keep ceil(F x rows) pool rows per task and per benchmark"},
    {"tasks", 0, CH_OPT_STRING, offsetof(opts, tasks), "T1,T2,...", .help = "only these tasks of the mix"},
    {"level", 0, CH_OPT_CHOICE, offsetof(opts, level), .choices = "both|task|benchmark", .def = "both",
     .help = "task: one set per task (DIR/<task>.jsonl); benchmark: one set per\n"
             "benchmark (DIR/benchmark/<benchmark>.jsonl, a row's score = the max\n"
             "of its scores for the benchmark's tasks, as LESS); both"},
    {"method", 0, CH_OPT_CHOICE, offsetof(opts, method), .choices = "capability|random|rds", .def = "capability",
     .help = "capability: w_task . p_row, the capability mixes;\n"
             "random: seeded uniform subset (baseline);\n"
             "rds: cosine of mean final hidden states (baseline; needs --hidden\n"
             "at extraction for the pool and the task archives)"},
    {"score", 0, CH_OPT_CHOICE, offsetof(opts, cosine), .choices = "dot|cosine", .def = "dot",
     .help = "cosine: cosine(w_task, p_row) instead of the dot product"},
    {"seed", 0, CH_OPT_U64, offsetof(opts, seed), "N", .def = "1", .help = "seed of --method random"},
    {"heads", 0, CH_OPT_CHOICE, offsetof(opts, heads), .choices = "own|union", .def = "own",
     .help = "the row mix formula (decompose --heads); must be the one the mix\nwas made with"},
    {"block-rows", 0, CH_OPT_INT64, offsetof(opts, block_rows), "N", .def = "256", .lo = 1, .hi = INT64_MAX,
     .help = "pool archive rows read per block"},
    CH_OPT_FORCE(opts, force),
    {"allow-incomplete", 0, CH_OPT_FLAG, offsetof(opts, allow_incomplete),
     .help = "accept an unfinished pool archive (unfinished rows never selected)"},
    {"timing", 0, CH_OPT_PATH, offsetof(opts, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md): records = pool rows\n"
             "scored, tasks, benchmarks, selected = rows kept per set"},
};

static const ch_opt_cmd cmd = {
    "select", opts_table, CH_NOPTS(opts_table),
    .about = "Score every pool row for every target task of the mix and write, per task,\n"
             "DIR/<task>.jsonl: the selected pool lines, byte-identical, in pool order\n"
             "(ceil(fraction x rows) of them), plus DIR/scores.h5 with every score. <task> is the\n"
             "task name with every character other than A-Z a-z 0-9 . _ - replaced by '_'\n"
             "(mmlu/anatomy -> mmlu_anatomy.jsonl); two tasks of one run that map to the same file\n"
             "name are refused (select them in separate runs with --tasks). The benchmark of a task\n"
             "is its name up to the first '/' (mmlu/anatomy -> mmlu; a task without '/' is its own):\n"
             "DIR/benchmark/<benchmark>.jsonl holds the top rows by the max of the row's scores for\n"
             "the benchmark's tasks of this run (--level).\n"};

/* The mix must be over the same five capabilities, in the same order, as this build's. */
static int check_capabilities(const char *json, const char *where) {
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == CH_NCAP;
    for (int c = 0; ok && c < CH_NCAP; c++) {
        cJSON *it = cJSON_GetArrayItem(a, c);
        ok = cJSON_IsString(it) && !strcmp(it->valuestring, ch_capability_names[c]);
    }
    cJSON_Delete(a);
    if (!ok)
        CH_FAIL(CH_EMISMATCH, "%s is for capabilities %s, expected [" CH_CAP_LIST "]",
                where, json ? json : "(none recorded)");
    return 0;
}

/* --method capability: the mix must come from these probes, by the same formula. The probe
 * file's capability names must be the mix's, its identity (ch_capmix.digest) the one the mix
 * recorded, and --heads the mix's. */
static int check_probes(const opts *o, const ch_mix *mix, const ch_capmix *cm) {
    int rc = 0;
    const char *mh = mix->heads && mix->heads[0] ? mix->heads : "own"; /* older mixes: own only */
    if (!ch_capability_names_same(mix->capability_names, cm->capability_names))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s is for capabilities %s but the probe file %s is for %s", o->mix,
                        mix->capability_names ? mix->capability_names : "(none recorded)", o->probes,
                        cm->capability_names ? cm->capability_names : "(none recorded)");
    else if (!mix->probes_sha256 || !mix->probes_sha256[0])
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s records no probe identity (an older decompose made it): rerun "
                        "decompose with --probes %s", o->mix, o->probes);
    else if (strcmp(mix->probes_sha256, cm->digest))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s was made from other probes (%s, identity %.12s...) than the probe file "
                        "%s (identity %.12s...): pass the probe file the mix was made from, or rerun "
                        "decompose with these probes", o->mix, mix->probes ? mix->probes : "?",
                        mix->probes_sha256, o->probes, cm->digest);
    else if (strcmp(mh, ch_capmix_heads_name(o->heads)))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s was made with --heads %s but this run uses --heads %s: pass --heads %s "
                        "(or rerun decompose)", o->mix, mh, ch_capmix_heads_name(o->heads), mh);
    return rc;
}

/* Each selection goes to DIR/[sub/]<safe name>.jsonl: two names with one file name would
 * overwrite each other, so they are refused. what: "tasks" or "benchmarks". */
static int check_file_names(const opts *o, char *const *names, int n, const char *sub, const char *what) {
    char a[256], b[256];
    for (int i = 0; i < n; i++) {
        ch_fs_safe_name(names[i], a, sizeof a);
        for (int j = 0; j < i; j++) {
            ch_fs_safe_name(names[j], b, sizeof b);
            if (!strcmp(a, b))
                CH_FAIL(CH_EARG, "%s '%s' and '%s' would both be written to %s/%s%s%s.jsonl: select them in "
                        "separate runs (--tasks)%s", what, names[j], names[i], o->output, sub, *sub ? "/" : "", a,
                        *sub ? " or with --level task" : "");
        }
    }
    return 0;
}

/* splitmix64 of (seed, FNV-1a of id): a score in [0, 1) that depends on nothing but the id. */
static double random_score(unsigned long long seed, const char *id) {
    unsigned long long h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ull;
    unsigned long long z = h + seed * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* RDS (representation similarity): cosine of two hidden-state vectors. */
static double cosine_f(const float *a, const float *b, int n) {
    double s = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
    return na > 0 && nb > 0 ? s / sqrt(na * nb) : 0.0;
}

/* Check the pool JSONL against the archive: same number of records, same corpus hash, and the
 * same id on every line this rank holds. hex: the pool file's SHA-256, on every rank. */
static int check_pool(const opts *o, const ch_archive_info *info, const ch_lines *l, char **ids,
                      MPI_Comm comm, char hex[65]) {
    int rank, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (l->total != info->n_rows)
        CH_FAIL(CH_EMISMATCH, "%s has %lld records but %s has %lld rows: not the pool it was extracted from",
                o->pool, (long long)l->total, o->input, (long long)info->n_rows);
    if (rank == 0) {
        rc = ch_fs_sha256(o->pool, hex);
        if (!rc && info->input_sha256 && strcmp(hex, info->input_sha256))
            rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                            "%s (sha256 %.12s...) is not the corpus %s was extracted from (sha256 %.12s...)",
                            o->pool, hex, o->input, info->input_sha256);
    }
    FILE *f = fopen(o->pool, "rb");
    if (!f && !rc) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open", o->pool);
    char *line = NULL;
    for (int64_t i = 0; i < l->count && !rc; i++) {
        free(line);
        line = malloc((size_t)l->len[i] + 1);
        if (!line || fseeko(f, l->start[i], SEEK_SET) || fread(line, 1, (size_t)l->len[i], f) != (size_t)l->len[i]) {
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot read record %lld", o->pool, (long long)(l->first + i));
            break;
        }
        line[l->len[i]] = 0;
        cJSON *rec = cJSON_Parse(line), *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
        if (!cJSON_IsString(id) || strcmp(id->valuestring, ids[i]))
            rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                            "%s: record %lld has id '%s' but row %lld of %s is '%s'", o->pool,
                            (long long)(l->first + i + 1), cJSON_IsString(id) ? id->valuestring : "(none)",
                            (long long)(l->first + i), o->input, ids[i]);
        cJSON_Delete(rec);
    }
    free(line);
    if (f) fclose(f);
    CH_TRY(ch_mpi_agree(comm, rc));
    return ch_select_bcast_hex(hex, comm);
}

/* Per-row features for this rank's rows: capability mixes p [n][5], or hidden states. */
static int row_features(const opts *o, const ch_capmix *cm, ch_archive_reader *r, const ch_archive_info *info,
                        const ch_lines *l, double *p, const uint8_t *done) {
    int rc = 0;
    if (info->n_layers != cm->n_layers || info->n_heads != cm->n_heads || info->head_dim != cm->head_dim)
        CH_FAIL(CH_EMISMATCH, "%s holds %d x %d heads of dim %d, the probes in %s are for %d x %d of dim %d",
                o->input, info->n_layers, info->n_heads, info->head_dim, o->probes, cm->n_layers, cm->n_heads,
                cm->head_dim);
    /* only the layers that hold mapped heads are read */
    size_t width = (size_t)cm->n_used * info->n_heads * info->head_dim, hd = (size_t)info->n_heads * info->head_dim;
    float *acts = NULL;
    float *tmp = NULL;
    CH_TRY(CH_ALLOC(acts, (size_t)o->block_rows * width, "activation block"));
    if ((rc = CH_ALLOC(tmp, (size_t)o->block_rows * hd, "layer block"))) {
        free(acts);
        return rc;
    }
    for (int64_t b0 = 0; b0 < l->count && !rc; b0 += o->block_rows) {
        int64_t n = l->count - b0 < o->block_rows ? l->count - b0 : o->block_rows;
        rc = ch_capmix_read(cm, r, l->first + b0, n, acts, tmp);
        for (int64_t i = 0; i < n && !rc; i++) {
            if (!done[b0 + i]) { /* an unfinished row has zeros: never let it score */
                for (int c = 0; c < CH_NCAP; c++) p[(b0 + i) * CH_NCAP + c] = 0;
                continue;
            }
            rc = ch_capmix_apply_used(cm, acts + i * width, 1, p + (b0 + i) * CH_NCAP);
            if (rc) ch_err_wrap("%s: row %lld: ", o->input, (long long)(l->first + b0 + i));
        }
    }
    free(acts), free(tmp);
    return rc;
}

/* Everything one run holds; the steps below fill it in order. */
typedef struct {
    MPI_Comm comm;
    int rank;
    ch_mix mix;
    ch_capmix cm;          /* --method capability: the probes, read once */
    int *which, nt;        /* the mix's tasks to select for */
    char **tnames;         /* [nt] their names */
    ch_benchmarks bench;   /* the benchmarks of those tasks */
    char pool_sha256[65], mix_sha256[65];
    ch_archive_reader *r;
    ch_archive_info info;
    ch_lines l;            /* this rank's pool lines */
    char **ids;
    uint8_t *done, *sel;
    double *p, *score;     /* p: capability mixes [n][5] */
    double *bmax;          /* the running benchmark score of this rank's rows */
    float *hid;            /* RDS: this rank's rows' mean final hidden states */
    int64_t k;             /* rows kept per task and per benchmark */
    int done_tasks, done_benches; /* columns of scores.h5 written: what it still needs on disk */
    ch_scores_layout lay;         /* scores.h5's datasets */
    ch_lock *lock;                /* rank 0: the output's lock, for the whole run */
    ch_scores_file *sf;
    char scores[4200], scores_partial[4200]; /* written under the partial name: outfinish.h */
    ch_out_set outs; /* the JSONL files, published together at the end (outfinish.h) */
} sctx;

/* The tasks of --tasks (all the mix's without it), their benchmarks, their output names. */
static int pick_tasks(sctx *s, const opts *o) {
    CH_TRY(CH_ALLOC(s->which, s->mix.ntask, "task list"));
    int rc = 0;
    if (!o->tasks)
        for (int i = 0; i < s->mix.ntask; i++) s->which[s->nt++] = i;
    else {
        char *list = strdup(o->tasks), *save = NULL;
        if (!list) CH_FAIL(CH_ENOMEM, "out of memory");
        for (char *t = strtok_r(list, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
            int i = ch_mix_find(&s->mix, t);
            if (i < 0) rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "task '%s' is not in the mix %s", t, o->mix);
            for (int j = 0; j < s->nt && !rc; j++)
                if (s->which[j] == i) rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "task '%s' is listed twice in --tasks", t);
            if (!rc) s->which[s->nt++] = i;
        }
        free(list);
        CH_TRY(rc);
    }
    CH_TRY(CH_ALLOC(s->tnames, s->nt ? s->nt : 1, "task names"));
    for (int t = 0; t < s->nt; t++) s->tnames[t] = s->mix.tasks[s->which[t]];
    CH_TRY(ch_benchmarks_group(s->tnames, s->nt, &s->bench));
    if (o->level != L_BENCHMARK) CH_TRY(check_file_names(o, s->tnames, s->nt, "", "tasks"));
    if (o->level != L_TASK) CH_TRY(check_file_names(o, s->bench.name, s->bench.nb, BENCH_DIR, "benchmarks"));
    return 0;
}

/* The mix, checked against this build, the probes and the method; the tasks to select for. */
static int read_mix(sctx *s, const opts *o) {
    CH_TRY(ch_mix_read(o->mix, &s->mix));
    CH_TRY(check_capabilities(s->mix.capability_names, o->mix));
    if (o->method == M_CAPABILITY) {
        CH_TRY(ch_capmix_load(o->probes, &s->cm));
        s->cm.heads = o->heads;
        CH_TRY(check_probes(o, &s->mix, &s->cm));
    }
    if (o->method == M_RDS && !s->mix.hidden_mean)
        CH_FAIL(CH_EARG, "--method rds needs hidden-state means in %s: extract the task archive with --hidden", o->mix);
    CH_TRY(ch_select_mix_identity(&s->mix, s->mix_sha256));
    return pick_tasks(s, o);
}

/* The pool archive and this rank's part of the pool JSONL, checked to belong together. */
static int open_pool(sctx *s, const opts *o) {
    CH_TRY(ch_archive_open_read(o->input, s->comm, &s->r));
    CH_TRY(ch_archive_get_info(s->r, &s->info));
    if (!s->info.complete && !o->allow_incomplete)
        CH_FAIL(CH_EINCOMPLETE, "%s is incomplete (%lld of %lld rows done): finish it with extract --resume, or pass --allow-incomplete",
                o->input, (long long)s->info.n_done, (long long)s->info.n_rows);
    CH_TRY(ch_lines_plan(o->pool, s->comm, &s->l));
    int rc = 0;
    if (s->l.total == s->info.n_rows) {
        rc = CH_ALLOC(s->ids, s->l.count, "pool ids");
        if (!rc) rc = ch_archive_read_ids(s->r, s->l.first, s->l.count, s->ids);
        if (!rc) rc = CH_ALLOC(s->done, s->l.count, "done mask");
        if (!rc) rc = ch_archive_read_done(s->r, s->l.first, s->l.count, s->done);
    }
    CH_TRY(ch_mpi_agree(s->comm, rc));
    return check_pool(o, &s->info, &s->l, s->ids, s->comm, s->pool_sha256);
}

/* The pool is read where the tasks and probes were: rendered by the same template and cue. Span
 * full (responses included) is accepted for the pool as an ablation, and said. */
static int check_render(sctx *s, const opts *o) {
    const ch_render_rule *pool = &s->info.render;
    int rc = ch_render_rule_check("mix", o->mix, &s->mix.render, "pool archive", o->input, pool, 0);
    if (!rc && o->method == M_CAPABILITY) {
        rc = ch_render_rule_check("probe file", o->probes, &s->cm.render, "pool archive", o->input, pool, 0);
    }
    CH_TRY(ch_mpi_agree(s->comm, rc));
    if (s->rank == 0 && ch_render_rule_is_full(pool))
        fprintf(stderr, "select: the pool archive %s was extracted with --span full (prompt and response): an "
                        "ablation, read at the response's end while the probes were fitted at the prompt's\n",
                o->input);
    return 0;
}

/* What the method scores rows by: capability mixes or hidden states of this rank's rows. */
static int row_inputs(sctx *s, const opts *o) {
    const int64_t n = s->l.count;
    int rc = CH_ALLOC(s->score, n, "scores");
    if (!rc) rc = CH_ALLOC(s->bmax, n, "benchmark scores");
    if (!rc) rc = CH_ALLOC(s->sel, n, "selection");
    if (!rc && o->method == M_CAPABILITY) {
        rc = CH_ALLOC(s->p, (size_t)n * CH_NCAP, "row mixes");
        if (!rc) rc = row_features(o, &s->cm, s->r, &s->info, &s->l, s->p, s->done);
    }
    if (!rc && o->method == M_RDS) {
        if (s->info.hidden_dim != s->mix.hidden_dim)
            rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                            "--method rds: %s has hidden states of size %d, the mix %s has %d (extract both with --hidden)",
                            o->input, s->info.hidden_dim, o->mix, s->mix.hidden_dim);
        if (!rc) rc = CH_ALLOC(s->hid, (size_t)n * s->info.hidden_dim, "hidden states");
        if (!rc) rc = ch_archive_read_hidden(s->r, s->l.first, n, s->hid);
    }
    return ch_mpi_agree(s->comm, rc);
}

static const char *or_empty(const char *v) { return v ? v : ""; }

/* scores.h5's root attributes: how the scores were made and the identities of the inputs. */
static int write_provenance(sctx *s, const opts *o) {
    ch_scores_file *f = s->sf;
    const ch_archive_info *pv = &s->info; /* what the pool archive records of its inputs */
    const struct { const char *name, *value; } a[] = {
        {"method", method_names[o->method]},
        {"score", o->method == M_CAPABILITY ? (o->cosine ? "cosine" : "dot") : ""},
        {"level", level_names[o->level]},
        {"heads", s->mix.heads && s->mix.heads[0] ? s->mix.heads : "own"},
        {"tie_rule", "score descending, then id ascending (bytes)"},
        {"pool", o->pool}, {"pool_sha256", s->pool_sha256},
        {"input", o->input}, {"archive_input_sha256", or_empty(pv->input_sha256)},
        {"archive_rows_sha256", or_empty(pv->rows_sha256)}, {"archive_weights_sha256", or_empty(pv->weights_sha256)},
        {"mix", o->mix}, {"mix_sha256", s->mix_sha256},
        {"probes", or_empty(o->probes)}, {"probes_sha256", or_empty(s->mix.probes_sha256)},
        {"capability_names", s->mix.capability_names}};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) CH_TRY(ch_scores_attr_str(f, a[i].name, a[i].value));
    CH_TRY(ch_scores_put_render(f, &s->info.render));
    CH_TRY(ch_scores_attr_f64(f, "fraction", o->fraction));
    CH_TRY(ch_scores_attr_i64(f, "k", s->k));
    return ch_scores_attr_i64(f, "seed", (int64_t)o->seed);
}

/* scores.h5 (all ranks), under its partial name: its datasets, this rank's ids, the provenance. */
static int open_scores(sctx *s, const opts *o) {
    long long idl = 1;
    for (int64_t i = 0; i < s->l.count; i++)
        if ((long long)strlen(s->ids[i]) > idl) idl = (long long)strlen(s->ids[i]);
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &idl, 1, MPI_LONG_LONG, MPI_MAX, s->comm));
    s->lay = (ch_scores_layout){.tasks = s->tnames, .ntask = s->nt, .benchmarks = s->bench.name,
                                .nbench = s->bench.nb, .bench_of_task = s->bench.of_task,
                                .nrows = s->info.n_rows, .id_len = (int)idl,
                                .task_selected = o->level != L_BENCHMARK, .bench_selected = o->level != L_TASK};
    snprintf(s->scores, sizeof s->scores, "%s/scores.h5", o->output);
    CH_TRY(ch_out_partial_name(s->scores, s->scores_partial, sizeof s->scores_partial));
    int rc = ch_out_space_check(s->comm, s->scores_partial, ch_scores_room(&s->lay, s->nt, s->bench.nb)); /* outfinish.h */
    if (!rc) rc = ch_scores_create(s->scores_partial, &s->lay, s->comm, &s->sf);
    if (rc && s->rank == 0) ch_out_discard(s->scores_partial);
    CH_TRY(rc);
    CH_TRY(ch_scores_write_ids(s->sf, s->l.first, s->l.count, s->ids));
    return write_provenance(s, o);
}

/* The output directories (rank 0) and scores.h5 (all ranks). */
static int open_output(sctx *s, const opts *o) {
    const int64_t N = s->info.n_rows;
    s->k = (int64_t)ceil(o->fraction * (double)N - 1e-9);
    int rc = 0;
    if (s->rank == 0) {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/" BENCH_DIR, o->output);
        rc = ch_fs_mkdir_p(o->output);
        if (!rc && o->level != L_TASK) rc = ch_fs_mkdir_p(sub);
        fprintf(stderr, "select: %lld pool rows, %d task(s) in %d benchmark(s), keeping %lld per %s (%s)\n",
                (long long)N, s->nt, s->bench.nb, (long long)s->k,
                o->level == L_TASK ? "task" : o->level == L_BENCHMARK ? "benchmark" : "task and per benchmark",
                o->method == M_CAPABILITY ? (o->cosine ? "capability, cosine" : "capability, dot")
                                          : method_names[o->method]);
    }
    CH_TRY(ch_mpi_agree(s->comm, rc));
    CH_TRY(open_scores(s, o));
    if (s->rank == 0) printf("%-40s %8s %12s %12s  %s\n", "task / benchmark", "selected", "min score", "mean score", "file");
    return 0;
}

/* Task t's score of each of this rank's rows (an unfinished row scores -inf). */
static void score_rows(sctx *s, const opts *o, int t) {
    const ch_mix *mix = &s->mix;
    const double *w = mix->mix + (size_t)s->which[t] * CH_NCAP;
    const double *p = s->p;
    for (int64_t i = 0; i < s->l.count; i++) {
        double v;
        if (!s->done[i]) v = -INFINITY;
        else if (o->method == M_RANDOM) v = random_score(o->seed, s->ids[i]);
        else if (o->method == M_RDS)
            v = cosine_f(s->hid + (size_t)i * mix->hidden_dim, mix->hidden_mean + (size_t)s->which[t] * mix->hidden_dim,
                         mix->hidden_dim);
        else v = o->cosine ? ch_capmix_score_cosine(w, p + i * CH_NCAP) : ch_capmix_score_dot(w, p + i * CH_NCAP);
        s->score[i] = v;
    }
}

/* The selection is published whole: scores.h5 sealed, then every JSONL and scores.h5 renamed
 * into place; a failure anywhere removes what is left under partial names. */
static int publish(sctx *s, int rc) {
    if (!rc && s->rank == 0) rc = ch_h5_seal(s->scores_partial);
    rc = ch_out_set_finish(s->comm, rc, &s->outs);
    return ch_out_finish(s->comm, rc, s->scores_partial, s->scores, 0);
}

/* The global top k of score, its JSONL at path and the summary line. */
static int keep_top(sctx *s, const opts *o, const double *score, const char *name, const char *path) {
    const int64_t n = s->l.count;
    double kth;
    CH_TRY(ch_topk_select(score, (const char *const *)s->ids, n, s->k, s->comm, s->sel, &kth));
    for (int64_t i = 0; i < n; i++) /* an unfinished row is never selected, even to fill k */
        if (!s->done[i]) s->sel[i] = 0;
    const char *partial;
    CH_TRY(ch_out_set_add(&s->outs, path, &partial)); /* written as partial, renamed at the end */
    double bytes = 0; /* the selected lines, and what scores.h5 still needs: on disk, or refused now */
    for (int64_t i = 0; i < n; i++) bytes += s->sel[i] ? (double)s->l.len[i] + 1 : 0;
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &bytes, 1, MPI_DOUBLE, MPI_SUM, s->comm));
    CH_TRY(ch_out_space_check(s->comm, partial, bytes + ch_scores_room(&s->lay, s->nt - s->done_tasks, s->bench.nb - s->done_benches)));
    CH_TRY(ch_select_write_jsonl(path, o->pool, s->l.start, s->l.len, s->sel, n, s->comm));
    double tot[2] = {0, 0}; /* sum of the kept scores, kept rows */
    for (int64_t i = 0; i < n; i++)
        if (s->sel[i]) tot[0] += score[i], tot[1]++;
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, tot, 2, MPI_DOUBLE, MPI_SUM, s->comm));
    if (s->rank == 0)
        printf("%-40s %8.0f %12.6f %12.6f  %s\n", name, tot[1], kth, tot[1] ? tot[0] / tot[1] : 0.0, path);
    return 0;
}

/* Task t: its scores, its column of scores.h5 and, at task level, its top k and JSONL; the
 * running maximum of its benchmark. */
static int select_task(sctx *s, const opts *o, int t) {
    const int64_t n = s->l.count;
    score_rows(s, o, t);
    for (int64_t i = 0; i < n; i++) /* a NaN stays, for the top-k to refuse as at task level */
        if (isnan(s->score[i]) || s->score[i] > s->bmax[i]) s->bmax[i] = s->score[i];
    if (o->level != L_BENCHMARK) {
        char path[4200], safe[256];
        ch_fs_safe_name(s->tnames[t], safe, sizeof safe);
        snprintf(path, sizeof path, "%s/%s.jsonl", o->output, safe);
        CH_TRY(keep_top(s, o, s->score, s->tnames[t], path));
    }
    s->done_tasks++;
    return ch_scores_write_task(s->sf, t, s->l.first, n, s->score, s->sel);
}

/* Benchmark b: every task of it in turn, then (at benchmark level) the top k by the max of the
 * row's task scores. An unfinished row's -inf stays -inf. */
static int select_benchmark(sctx *s, const opts *o, int b) {
    const int64_t n = s->l.count;
    for (int64_t i = 0; i < n; i++) s->bmax[i] = -INFINITY;
    for (int t = 0; t < s->nt; t++)
        if (s->bench.of_task[t] == b) CH_TRY(select_task(s, o, t));
    if (o->level != L_TASK) {
        char path[4200], safe[256], name[300];
        ch_fs_safe_name(s->bench.name[b], safe, sizeof safe);
        snprintf(path, sizeof path, "%s/" BENCH_DIR "/%s.jsonl", o->output, safe);
        snprintf(name, sizeof name, "[%s]", s->bench.name[b]);
        CH_TRY(keep_top(s, o, s->bmax, name, path));
    }
    s->done_benches++;
    return ch_scores_write_benchmark(s->sf, b, s->l.first, n, s->bmax, s->sel);
}

/* Close scores.h5, report the peak memory, fill in the timing record. */
static int finish(sctx *s, const opts *o) {
    int rc = ch_scores_close(s->sf);
    s->sf = NULL;
    CH_TRY(publish(s, rc));
    struct rusage ru;
    long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0; /* KiB on Linux */
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_LONG, MPI_MAX, s->comm));
    if (s->rank == 0)
        printf("wrote %s/scores.h5 and the selections (peak memory per rank %.0f MiB)\n", o->output, rss / 1024.0);
    o->tm->records = s->info.n_rows;
    CH_TRY(ch_timing_add(o->tm, "tasks", s->nt));
    CH_TRY(ch_timing_add(o->tm, "benchmarks", s->bench.nb));
    return ch_timing_add(o->tm, "selected", s->k);
}

static void sctx_free(sctx *s) {
    if (s->sf) ch_scores_close(s->sf);
    /* a failed run leaves no partial file (after a published run there is none to find) */
    if (s->rank == 0 && s->scores_partial[0]) ch_out_discard(s->scores_partial);
    ch_out_set_free(&s->outs, s->rank == 0);
    if (s->ids) ch_archive_free_strings(s->ids, s->l.count);
    free(s->ids);
    free(s->p), free(s->score), free(s->bmax), free(s->sel), free(s->done), free(s->which), free(s->hid);
    free(s->tnames);
    ch_benchmarks_free(&s->bench);
    ch_lines_free(&s->l);
    ch_archive_info_free(&s->info);
    if (s->r) ch_archive_close_read(s->r);
    ch_mix_free(&s->mix);
    ch_capmix_free(&s->cm);
    ch_lock_release(s->lock);
}

static int run(const opts *o, MPI_Comm comm) {
    sctx s;
    memset(&s, 0, sizeof s);
    s.comm = comm;
    int rc = 0;
    CH_MPI_TRY_GOTO(MPI_Comm_rank(comm, &s.rank), out);
    const ch_path_role in[] = {{o->probes, "--probes", 0}, {o->mix, "--mix", 0}, {o->input, "--input", 0},
                               {o->pool, "--pool", 0}};
    const ch_path_role outs[] = {{o->output, "--output", 1}, {o->timing, "--timing", 0}};
    CH_TRY_GOTO(ch_stage_guard(comm, in, 4, outs, 2, 1, o->force, &s.lock), out);
    CH_TRY_GOTO(read_mix(&s, o), out);
    CH_TRY_GOTO(open_pool(&s, o), out);
    CH_TRY_GOTO(check_render(&s, o), out);
    CH_TRY_GOTO(row_inputs(&s, o), out);
    CH_TRY_GOTO(open_output(&s, o), out);
    for (int b = 0; b < s.bench.nb; b++) {
        CH_TRY_GOTO(select_benchmark(&s, o, b), out);
        (void)ch_lock_refresh(s.lock); /* heartbeat (rank 0 holds it) */
    }
    rc = finish(&s, o);
out:
    sctx_free(&s);
    return rc;
}

int ch_cmd_select(int argc, char **argv, MPI_Comm comm) {
    opts o = {0};
    int help;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &o, &help));
    if (help) return ch_opt_help(&cmd, comm);
    if (o.method == M_CAPABILITY && !o.probes) CH_FAIL(CH_EARG, "--probes is required for --method capability");
    ch_timing tm;
    ch_timing_start(&tm, "select");
    o.tm = &tm;
    return ch_timing_finish(&tm, o.timing, run(&o, comm), comm);
}
