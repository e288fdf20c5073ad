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
 *               needs archives extracted with --hidden */
#include <cjson/cJSON.h>
#include <sys/resource.h>
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
#include "fsutil.h"
#include "lines.h"
#include "mixfile.h"
#include "select_out.h"
#include "timing.h"
#include "topk.h"

typedef enum { M_CAPABILITY, M_RANDOM, M_RDS } method;

typedef struct {
    const char *probes, *mix, *input, *pool, *output, *tasks, *timing;
    double fraction;
    method method;
    int cosine, allow_incomplete;
    int heads; /* CH_HEADS_OWN | CH_HEADS_UNION: must be the mix's */
    unsigned long long seed;
    int64_t block_rows;
    ch_timing *tm; /* filled in by run() */
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -n R] capheads select [--probes PROBES.h5] --mix MIXDIR --input POOL.h5\n"
            "           --pool POOL.jsonl --output DIR [--fraction 0.05] [--tasks T1,T2,...]\n"
            "           [--method capability|random|rds] [--score dot|cosine] [--seed N]\n"
            "           [--heads own|union] [--block-rows N]\n"
            "           [--timing FILE]\n\n"
            "Score every pool row for every target task of the mix and write, per task,\n"
            "DIR/<task>.jsonl: the selected pool lines, byte-identical, in pool order\n"
            "(ceil(fraction x rows) of them), plus DIR/scores.h5 with every score. <task> is the\n"
            "task name with every character other than A-Z a-z 0-9 . _ - replaced by '_'\n"
            "(mmlu/anatomy -> mmlu_anatomy.jsonl); two tasks of one run that map to the same file\n"
            "name are refused (select them in separate runs with --tasks).\n"
            "  --probes FILE        the probe file the mix was made from (checked); needed only by\n"
            "                       --method capability\n"
            "  --method capability  w_task . p_row, the capability mixes (default)\n"
            "           random      seeded uniform subset (baseline)\n"
            "           rds         cosine of mean final hidden states (baseline; needs --hidden\n"
            "                       at extraction for the pool and the task archives)\n"
            "  --score cosine       cosine(w_task, p_row) instead of the dot product\n"
            "  --heads own|union    the row mix formula (decompose --heads); must be the one the mix\n"
            "                       was made with (default own)\n"
            "  --seed N             seed of --method random (default 1)\n"
            "  --block-rows N       pool archive rows read per block (default 256)\n"
            "  --allow-incomplete   accept an unfinished pool archive (unfinished rows never selected)\n"
            "  --timing FILE        append a JSON timing record (docs/timing.md): records = pool rows\n"
            "                       scored, tasks, selected = rows kept per task\n");
}

static int parse(int argc, char **argv, opts *o) {
    static const struct option lo[] = {
        {"probes", 1, 0, 'p'}, {"mix", 1, 0, 'm'},    {"input", 1, 0, 'i'},  {"pool", 1, 0, 'P'},
        {"output", 1, 0, 'o'}, {"tasks", 1, 0, 't'},  {"fraction", 1, 0, 'f'}, {"method", 1, 0, 'M'},
        {"score", 1, 0, 's'},  {"seed", 1, 0, 'S'},   {"allow-incomplete", 0, 0, 'a'},
        {"heads", 1, 0, 'H'},
        {"block-rows", 1, 0, 'b'}, {"timing", 1, 0, 'T'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->fraction = 0.05, o->block_rows = 256, o->seed = 1;
    optind = 1;
    opterr = 0;
    char *end;
    for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        switch (c) {
        case 'p': o->probes = optarg; break;
        case 'm': o->mix = optarg; break;
        case 'i': o->input = optarg; break;
        case 'P': o->pool = optarg; break;
        case 'o': o->output = optarg; break;
        case 't': o->tasks = optarg; break;
        case 'f':
            o->fraction = strtod(optarg, &end);
            if (*end || !(o->fraction > 0) || o->fraction > 1)
                CH_FAIL(CH_EARG, "--fraction must be in (0, 1], got '%s'", optarg);
            break;
        case 'M':
            if (!strcmp(optarg, "capability")) o->method = M_CAPABILITY;
            else if (!strcmp(optarg, "random")) o->method = M_RANDOM;
            else if (!strcmp(optarg, "rds")) o->method = M_RDS;
            else CH_FAIL(CH_EARG, "--method must be capability, random or rds, got '%s'", optarg);
            break;
        case 's':
            if (strcmp(optarg, "dot") && strcmp(optarg, "cosine"))
                CH_FAIL(CH_EARG, "--score must be dot or cosine, got '%s'", optarg);
            o->cosine = !strcmp(optarg, "cosine");
            break;
        case 'S': o->seed = strtoull(optarg, NULL, 10); break;
        case 'a': o->allow_incomplete = 1; break;
        case 'H': CH_TRY(ch_capmix_heads_parse(optarg, &o->heads)); break;
        case 'b': o->block_rows = atoll(optarg); break;
        case 'T': o->timing = optarg; break;
        case 'h': usage(stdout); return -1;
        default: CH_FAIL(CH_EARG, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) CH_FAIL(CH_EARG, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->mix || !o->input || !o->pool || !o->output)
        CH_FAIL(CH_EARG, "--mix, --input, --pool and --output are required (see --help)");
    if (o->method == M_CAPABILITY && !o->probes) CH_FAIL(CH_EARG, "--probes is required for --method capability");
    if (o->block_rows < 1) CH_FAIL(CH_EARG, "--block-rows must be >= 1");
    return 0;
}

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
static int check_probes(const opts *o, const ch_mix *mix) {
    ch_capmix cm;
    CH_TRY(ch_capmix_load(o->probes, &cm));
    int rc = 0;
    const char *mh = mix->heads && mix->heads[0] ? mix->heads : "own"; /* older mixes: own only */
    if (!ch_capability_names_same(mix->capability_names, cm.capability_names))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s is for capabilities %s but the probe file %s is for %s", o->mix,
                        mix->capability_names ? mix->capability_names : "(none recorded)", o->probes,
                        cm.capability_names ? cm.capability_names : "(none recorded)");
    else if (!mix->probes_sha256 || !mix->probes_sha256[0])
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s records no probe identity (an older decompose made it): rerun "
                        "decompose with --probes %s", o->mix, o->probes);
    else if (strcmp(mix->probes_sha256, cm.digest))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s was made from other probes (%s, identity %.12s...) than the probe file "
                        "%s (identity %.12s...): pass the probe file the mix was made from, or rerun "
                        "decompose with these probes", o->mix, mix->probes ? mix->probes : "?",
                        mix->probes_sha256, o->probes, cm.digest);
    else if (strcmp(mh, ch_capmix_heads_name(o->heads)))
        rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                        "the mix %s was made with --heads %s but this run uses --heads %s: pass --heads %s "
                        "(or rerun decompose)", o->mix, mh, ch_capmix_heads_name(o->heads), mh);
    ch_capmix_free(&cm);
    return rc;
}

/* Each task's selection goes to DIR/<safe name>.jsonl: two tasks with one file name would
 * overwrite each other, so they are refused. */
static int check_file_names(const opts *o, const ch_mix *mix, const int *which, int nt) {
    char a[256], b[256];
    for (int i = 0; i < nt; i++) {
        ch_fs_safe_name(mix->tasks[which[i]], a, sizeof a);
        for (int j = 0; j < i; j++) {
            if (which[i] == which[j]) CH_FAIL(CH_EARG, "task '%s' is listed twice in --tasks", mix->tasks[which[i]]);
            ch_fs_safe_name(mix->tasks[which[j]], b, sizeof b);
            if (!strcmp(a, b))
                CH_FAIL(CH_EARG, "tasks '%s' and '%s' would both be written to %s/%s.jsonl: select them in "
                        "separate runs (--tasks)", mix->tasks[which[j]], mix->tasks[which[i]], o->output, a);
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
 * same id on every line this rank holds. */
static int check_pool(const opts *o, const ch_archive_info *info, const ch_lines *l, char **ids,
                      MPI_Comm comm) {
    int rank, rc = 0;
    MPI_Comm_rank(comm, &rank);
    if (l->total != info->n_rows)
        CH_FAIL(CH_EMISMATCH, "%s has %lld records but %s has %lld rows: not the pool it was extracted from",
                o->pool, (long long)l->total, o->input, (long long)info->n_rows);
    if (rank == 0) {
        char hex[65];
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
    return ch_mpi_agree(comm, rc);
}

/* Per-row features for this rank's rows: capability mixes p [n][5], or hidden states. */
static int row_features(const opts *o, ch_archive_reader *r, const ch_archive_info *info, const ch_lines *l,
                        double *p, const uint8_t *done) {
    ch_capmix cm;
    CH_TRY(ch_capmix_load(o->probes, &cm));
    cm.heads = o->heads;
    int rc = 0;
    if (info->n_layers != cm.n_layers || info->n_heads != cm.n_heads || info->head_dim != cm.head_dim)
        CH_FAIL_GOTO(out, CH_EMISMATCH, "%s holds %d x %d heads of dim %d, the probes in %s are for %d x %d of dim %d",
                     o->input, info->n_layers, info->n_heads, info->head_dim, o->probes, cm.n_layers,
                     cm.n_heads, cm.head_dim);
    /* only the layers that hold mapped heads are read */
    size_t width = (size_t)cm.n_used * info->n_heads * info->head_dim, hd = (size_t)info->n_heads * info->head_dim;
    float *acts = NULL;
    float *tmp = NULL;
    CH_TRY_GOTO(CH_ALLOC(acts, (size_t)o->block_rows * width, "activation block"), out);
    if ((rc = CH_ALLOC(tmp, (size_t)o->block_rows * hd, "layer block"))) {
        free(acts);
        goto out;
    }
    for (int64_t b0 = 0; b0 < l->count && !rc; b0 += o->block_rows) {
        int64_t n = l->count - b0 < o->block_rows ? l->count - b0 : o->block_rows;
        rc = ch_capmix_read(&cm, r, l->first + b0, n, acts, tmp);
        for (int64_t i = 0; i < n && !rc; i++) {
            if (!done[b0 + i]) { /* an unfinished row has zeros: never let it score */
                for (int c = 0; c < CH_NCAP; c++) p[(b0 + i) * CH_NCAP + c] = 0;
                continue;
            }
            rc = ch_capmix_apply_used(&cm, acts + i * width, 1, p + (b0 + i) * CH_NCAP);
            if (rc) ch_err_wrap("%s: row %lld: ", o->input, (long long)(l->first + b0 + i));
        }
    }
    free(acts), free(tmp);
out:
    ch_capmix_free(&cm);
    return rc;
}

static int run(const opts *o, MPI_Comm comm) {
    int rank, rc = 0;
    MPI_Comm_rank(comm, &rank);
    ch_mix mix;
    ch_lines l;
    ch_archive_info info;
    ch_archive_reader *r = NULL;
    memset(&l, 0, sizeof l), memset(&info, 0, sizeof info);
    char **ids = NULL;
    double *p = NULL, *score = NULL;
    float *fscore = NULL, *hid = NULL; /* hid: RDS, this rank's rows' mean final hidden states */
    uint8_t *sel = NULL, *done = NULL;
    int *which = NULL, nt = 0;
    ch_scores_file *sf = NULL;
    CH_TRY(ch_mix_read(o->mix, &mix));
    CH_TRY_GOTO(check_capabilities(mix.capability_names, o->mix), out);
    if (o->method == M_CAPABILITY) CH_TRY_GOTO(check_probes(o, &mix), out);
    if (o->method == M_RDS && !mix.hidden_mean)
        CH_FAIL_GOTO(out, CH_EARG, "--method rds needs hidden-state means in %s: extract the task archive with --hidden", o->mix);
    CH_TRY_GOTO(CH_ALLOC(which, mix.ntask, "task list"), out);
    if (o->tasks) {
        char *list = strdup(o->tasks), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
            int i = ch_mix_find(&mix, t);
            if (i < 0) rc = ch_err_set(CH_EARG, __FILE__, __LINE__, "task '%s' is not in the mix %s", t, o->mix);
            else which[nt++] = i;
        }
        free(list);
        if (rc) goto out;
    } else {
        for (int i = 0; i < mix.ntask; i++) which[nt++] = i;
    }
    CH_TRY_GOTO(check_file_names(o, &mix, which, nt), out);
    CH_TRY_GOTO(ch_archive_open_read(o->input, comm, &r), out);
    CH_TRY_GOTO(ch_archive_get_info(r, &info), out);
    if (!info.complete && !o->allow_incomplete)
        CH_FAIL_GOTO(out, CH_EINCOMPLETE, "%s is incomplete (%lld of %lld rows done): finish it with extract --resume, or pass --allow-incomplete",
                     o->input, (long long)info.n_done, (long long)info.n_rows);
    CH_TRY_GOTO(ch_lines_plan(o->pool, comm, &l), out);
    if (l.total == info.n_rows) {
        rc = CH_ALLOC(ids, l.count, "pool ids");
        if (!rc) rc = ch_archive_read_ids(r, l.first, l.count, ids);
        if (!rc) rc = CH_ALLOC(done, l.count, "done mask");
        if (!rc) rc = ch_archive_read_done(r, l.first, l.count, done);
    }
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), out);
    CH_TRY_GOTO(check_pool(o, &info, &l, ids, comm), out);

    int64_t n = l.count, N = info.n_rows;
    rc = CH_ALLOC(score, n, "scores");
    if (!rc) rc = CH_ALLOC(fscore, n, "scores");
    if (!rc) rc = CH_ALLOC(sel, n, "selection");
    if (!rc && o->method == M_CAPABILITY) {
        rc = CH_ALLOC(p, (size_t)n * CH_NCAP, "row mixes");
        if (!rc) rc = row_features(o, r, &info, &l, p, done);
    }
    if (!rc && o->method == M_RDS) {
        if (info.hidden_dim != mix.hidden_dim)
            rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                            "--method rds: %s has hidden states of size %d, the mix %s has %d (extract both with --hidden)",
                            o->input, info.hidden_dim, o->mix, mix.hidden_dim);
        if (!rc) rc = CH_ALLOC(hid, (size_t)n * info.hidden_dim, "hidden states");
        if (!rc) rc = ch_archive_read_hidden(r, l.first, n, hid);
    }
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), out);

    int64_t k = (int64_t)ceil(o->fraction * (double)N - 1e-9);
    if (rank == 0) {
        rc = ch_fs_mkdir_p(o->output);
        fprintf(stderr, "select: %lld pool rows, %d task(s), keeping %lld per task (%s)\n", (long long)N, nt,
                (long long)k, o->method == M_CAPABILITY ? (o->cosine ? "capability, cosine" : "capability, dot")
                              : o->method == M_RANDOM ? "random" : "rds");
    }
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), out);
    char path[4200], safe[256];
    snprintf(path, sizeof path, "%s/scores.h5", o->output);
    char **names = NULL;
    CH_TRY_GOTO(CH_ALLOC(names, nt, "task names"), out);
    for (int t = 0; t < nt; t++) names[t] = mix.tasks[which[t]];
    rc = ch_scores_create(path, names, nt, N, comm, &sf);
    free(names);
    CH_TRY_GOTO(rc, out);
    if (rank == 0) printf("%-40s %8s %12s %12s  %s\n", "task", "selected", "min score", "mean score", "file");
    for (int t = 0; t < nt && !rc; t++) {
        const double *w = mix.mix + (size_t)which[t] * CH_NCAP;
        for (int64_t i = 0; i < n; i++) {
            if (!done[i]) score[i] = -INFINITY;
            else if (o->method == M_RANDOM) score[i] = random_score(o->seed, ids[i]);
            else if (o->method == M_RDS)
                score[i] = cosine_f(hid + (size_t)i * mix.hidden_dim, mix.hidden_mean + (size_t)which[t] * mix.hidden_dim,
                                    mix.hidden_dim);
            else score[i] = o->cosine ? ch_capmix_score_cosine(w, p + i * CH_NCAP) : ch_capmix_score_dot(w, p + i * CH_NCAP);
            fscore[i] = (float)score[i];
        }
        double kth;
        CH_TRY_GOTO(ch_topk_select(score, (const char *const *)ids, n, k, comm, sel, &kth), out);
        for (int64_t i = 0; i < n; i++) /* an unfinished row is never selected, even to fill k */
            if (!done[i]) sel[i] = 0;
        const char *tname = mix.tasks[which[t]];
        ch_fs_safe_name(tname, safe, sizeof safe);
        snprintf(path, sizeof path, "%s/%s.jsonl", o->output, safe);
        CH_TRY_GOTO(ch_select_write_jsonl(path, o->pool, l.start, l.len, sel, n, comm), out);
        CH_TRY_GOTO(ch_scores_write(sf, t, l.first, n, fscore, sel), out);
        double sum = 0, cnt = 0;
        for (int64_t i = 0; i < n; i++)
            if (sel[i]) sum += score[i], cnt++;
        double tot[2] = {sum, cnt};
        MPI_Allreduce(MPI_IN_PLACE, tot, 2, MPI_DOUBLE, MPI_SUM, comm);
        if (rank == 0)
            printf("%-40s %8.0f %12.6f %12.6f  %s\n", tname, tot[1], kth, tot[1] ? tot[0] / tot[1] : 0.0, path);
    }
    rc = ch_scores_close(sf);
    sf = NULL;
    rc = ch_mpi_agree(comm, rc);
    struct rusage ru;
    long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0; /* KiB on Linux */
    MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_LONG, MPI_MAX, comm);
    if (!rc && rank == 0)
        printf("wrote %s/scores.h5 and one JSONL per task (peak memory per rank %.0f MiB)\n", o->output, rss / 1024.0);
    if (!rc) o->tm->records = N, rc = ch_timing_add(o->tm, "tasks", nt);
    if (!rc) rc = ch_timing_add(o->tm, "selected", k);
out:
    if (sf) ch_scores_close(sf);
    if (ids) ch_archive_free_strings(ids, l.count);
    free(p), free(score), free(fscore), free(sel), free(done), free(which), free(hid);
    ch_lines_free(&l);
    ch_archive_info_free(&info);
    if (r) ch_archive_close_read(r);
    ch_mix_free(&mix);
    return rc;
}

int ch_cmd_select(int argc, char **argv, MPI_Comm comm) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc < 0) return 0;
    CH_TRY(rc);
    ch_timing tm;
    ch_timing_start(&tm, "select");
    o.tm = &tm;
    return ch_timing_finish(&tm, o.timing, run(&o, comm), comm);
}
