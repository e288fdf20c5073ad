/* extract.c - `capheads extract`: per-head attention outputs of a corpus into one HDF5 archive.
 *
 * The plan (extract_plan.h) fixes which records form each batch, the same for any rank count,
 * and gives each rank a block of batches. Then write rounds: each rank queues its next batch's
 * forward pass (the device computes it, and copies the captures into page-locked host memory,
 * while the host goes on) and all ranks write the previous batch's rows collectively (a rank out
 * of work joins with an empty selection). A batch's rows are marked done only after its data is
 * flushed; --resume skips batches whose rows are all done. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agree.h"
#include "archive.h"
#include "stage.h"
#include "corpus.h"
#include "err.h"
#include "fsutil.h"
#include "extract_plan.h"
#include "model.h"
#include "progress.h"
#include "timing.h"

typedef struct {
    const char *model, *input, *output, *device, *timing;
    ch_pool pool;
    ch_precision precision;
    int batch_tokens, max_tokens, resume, hidden, threads;
    char *command_line;
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -n R] capheads extract --model DIR --input CORPUS.jsonl --output ACTS.h5\n"
            "           [--pool last|mean] [--batch-tokens N] [--resume] [--hidden]\n"
            "           [--device cpu|cuda|auto] [--precision auto|f32] [--threads N]\n"
            "           [--max-tokens N] [--timing FILE]\n\n"
            "Run the model (a Hugging Face directory: config.json, safetensors, tokenizer.json) over\n"
            "every record of the corpus and store, for every layer and query head, the head's\n"
            "attention output at the last prompt token (--pool last, default) or averaged over the\n"
            "prompt (--pool mean), as float16, in one HDF5 archive written by all ranks.\n"
            "  --batch-tokens N  tokens per forward pass (default 4096); bounds memory\n"
            "  --resume          continue an interrupted run of the same model, corpus, pooling,\n"
            "                    --batch-tokens, backend and precision (the archive records them)\n"
            "  --hidden          also store the mean final hidden state (for select --method rds)\n"
            "  --max-tokens N    refuse records longer than N tokens (default 8192)\n"
            "  --device          compute backend (default auto: cuda when a GPU is usable)\n"
            "  --precision P     auto (default): a bf16 checkpoint's Linear layers multiply bf16\n"
            "                    weights by activations rounded to bf16, summing in f32, as the\n"
            "                    model runs in its own dtype (CPU: AMX tiles where the CPU has them;\n"
            "                    CUDA: also f16); f32: every Linear in f32, weights widened at load\n"
            "                    (twice the weight memory; within 1e-4 of transformers in float32,\n"
            "                    from which auto is typically 1e-3 to 1e-2 away, relative)\n"
            "  --threads N       CPU backend threads per rank (default: OpenMP's, OMP_NUM_THREADS)\n"
            "  --timing FILE     append a JSON timing record (docs/timing.md)\n"
            "Environment: CAPHEADS_SYNC_MIB (default 256) - rows are marked done, and so skipped by\n"
            "--resume, once the data written since the last sync reaches this many MiB (0: every\n"
            "batch); a crash loses at most that much work, recomputed on --resume.\n");
}

/* A whole-string decimal integer in [lo, hi] for option opt, else CH_EARG (exit 2) naming it. */
static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = s && *s && !isspace((unsigned char)*s) ? strtol(s, &end, 10) : 0;
    if (!end || end == s || *end || errno == ERANGE || v < lo || v > hi)
        CH_FAIL(CH_EARG, "%s must be a whole number from %ld to %ld, got '%s'", opt, lo, hi, s ? s : "");
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, opts *o) {
    static const struct option lo[] = {
        {"model", 1, 0, 'm'},   {"input", 1, 0, 'i'},        {"output", 1, 0, 'o'}, {"pool", 1, 0, 'p'},
        {"batch-tokens", 1, 0, 'b'}, {"resume", 0, 0, 'r'},  {"hidden", 0, 0, 'H'}, {"device", 1, 0, 'd'},
        {"threads", 1, 0, 't'}, {"max-tokens", 1, 0, 'M'},   {"timing", 1, 0, 'T'}, {"help", 0, 0, 'h'},
        {"precision", 1, 0, 'P'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->batch_tokens = 4096, o->max_tokens = 8192, o->device = "auto";
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->input = optarg; break;
        case 'o': o->output = optarg; break;
        case 'p':
            if (!strcmp(optarg, "last")) o->pool = CH_POOL_LAST;
            else if (!strcmp(optarg, "mean")) o->pool = CH_POOL_MEAN;
            else CH_FAIL(CH_EARG, "--pool must be last or mean, got '%s'", optarg);
            break;
        case 'b': CH_TRY(parse_int("--batch-tokens", optarg, 1, 1L << 30, &o->batch_tokens)); break;
        case 'r': o->resume = 1; break;
        case 'H': o->hidden = 1; break;
        case 'd': o->device = optarg; break;
        case 'P':
            if (!strcmp(optarg, "auto")) o->precision = CH_PRECISION_AUTO;
            else if (!strcmp(optarg, "f32")) o->precision = CH_PRECISION_F32;
            else CH_FAIL(CH_EARG, "--precision must be auto or f32, got '%s'", optarg);
            break;
        case 't': CH_TRY(parse_int("--threads", optarg, 1, 4096, &o->threads)); break;
        case 'M': CH_TRY(parse_int("--max-tokens", optarg, 1, 1L << 30, &o->max_tokens)); break;
        case 'T': o->timing = optarg; break;
        case 'h': usage(stdout); return -1;
        default: CH_FAIL(CH_EARG, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) CH_FAIL(CH_EARG, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->model || !o->input || !o->output) CH_FAIL(CH_EARG, "--model, --input and --output are required (see --help)");
    return 0;
}


static char *join_args(int argc, char **argv) {
    size_t n = 16;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    strcpy(s, "capheads");
    for (int i = 0; i < argc; i++) strcat(s, " "), strcat(s, argv[i]);
    return s;
}

/* Read, parse and tokenize the records of batch b into one packed ch_batch. */
typedef struct {
    ch_record *rec;
    int n;
    int32_t *tokens;
    int *start;
} batch_buf;

static void batch_free(batch_buf *bb) {
    for (int i = 0; i < bb->n; i++) ch_record_free(&bb->rec[i]);
    free(bb->rec), free(bb->tokens), free(bb->start);
    memset(bb, 0, sizeof *bb);
}

static int batch_load(const opts *o, const ch_extract_plan *p, int64_t b, FILE *f, const ch_tokenizer *tok,
                      ch_chat_style style, int vocab, batch_buf *bb) {
    memset(bb, 0, sizeof *bb);
    int64_t r0 = p->batch_start[b], r1 = p->batch_start[b + 1];
    int n = (int)(r1 - r0), ntok = 0, rc = 0;
    for (int64_t i = r0; i < r1; i++) ntok += p->n_tokens[i];
    CH_TRY(CH_ALLOC(bb->rec, n, "batch records"));
    CH_TRY(CH_ALLOC(bb->tokens, ntok, "batch tokens"));
    CH_TRY(CH_ALLOC(bb->start, n + 1, "batch offsets"));
    char *buf = NULL;
    for (int i = 0; i < n && !rc; i++) {
        int64_t g = r0 + i;
        char *nb = realloc(buf, (size_t)p->len[g] + 1);
        if (!nb) {
            rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
            break;
        }
        buf = nb;
        if (fseeko(f, p->start[g], SEEK_SET) || fread(buf, 1, (size_t)p->len[g], f) != (size_t)p->len[g]) {
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s:%lld: read failed (file changed?)", o->input,
                            (long long)p->line[g]);
            break;
        }
        if ((rc = ch_corpus_record(buf, (size_t)p->len[g], o->input, p->line[g], tok, style, vocab, &bb->rec[i]))) break;
        bb->n = i + 1;
        if (bb->rec[i].n_tokens != p->n_tokens[g]) {
            rc = ch_err_set(CH_EINTERNAL, __FILE__, __LINE__, "%s:%lld: tokenized differently on two passes", o->input,
                            (long long)p->line[g]);
            break;
        }
        bb->start[i + 1] = bb->start[i] + bb->rec[i].n_tokens;
        memcpy(bb->tokens + bb->start[i], bb->rec[i].tokens, sizeof(int32_t) * bb->rec[i].n_tokens);
    }
    free(buf);
    return rc;
}

/* One batch in flight (double buffering): its records, and the host buffers (be->host_alloc:
 * page-locked on CUDA) its captures are copied into while the device computes. */
typedef struct {
    batch_buf bb;
    uint16_t *out, *hidden; /* binary16 [L][n][H*D] (maxn rows' room), [maxn, hidden] or NULL */
    ch_event *ev;        /* recorded after the copies into out / hidden */
    int64_t row0, n, ntok; /* n > 0: queued, its rows not yet written */
} slot;

static int slots_make(ch_backend *be, size_t out_floats, size_t hidden_floats, slot sl[2]) {
    for (int i = 0; i < 2; i++) {
        CH_TRY(be->host_alloc(be, out_floats * sizeof(uint16_t), (void **)&sl[i].out));
        if (hidden_floats) CH_TRY(be->host_alloc(be, hidden_floats * sizeof(uint16_t), (void **)&sl[i].hidden));
        CH_TRY(be->event_create(be, &sl[i].ev));
    }
    return 0;
}

/* A copy may still be filling a buffer (a run that stopped early, even in the middle of queueing
 * a batch): wait for the device before freeing, without replacing the message of the error that
 * stopped the run. */
static void slots_free(ch_backend *be, slot sl[2]) {
    if (!be) return;
    if (sl[0].out || sl[1].out) {
        char msg[1024];
        int code = ch_err_code();
        snprintf(msg, sizeof msg, "%s", ch_err_msg());
        (void)be->sync(be);
        if (code) ch_err_set(code, __FILE__, __LINE__, "%s", msg);
    }
    for (int i = 0; i < 2; i++) {
        batch_free(&sl[i].bb);
        if (sl[i].out) be->host_free(be, sl[i].out);
        if (sl[i].hidden) be->host_free(be, sl[i].hidden);
        if (sl[i].ev) be->event_destroy(be, sl[i].ev);
    }
    memset(sl, 0, 2 * sizeof *sl);
}

static int run(const opts *o, MPI_Comm comm) {
    int rank, size, rc = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ch_timing tm;
    ch_timing_start(&tm, "extract");
    ch_backend *be = NULL;
    ch_model *m = NULL;
    ch_tokenizer *tok = NULL;
    ch_archive *a = NULL;
    ch_extract_plan plan;
    memset(&plan, 0, sizeof plan);
    FILE *f = NULL;
    slot sl[2];
    memset(sl, 0, sizeof sl);
    uint8_t *skip = NULL;

    rc = ch_backend_create(o->device, o->threads, &be);
    if (!rc) rc = ch_model_open(o->model, be, o->precision, &m);
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->model);
    if (!rc && access(tpath, R_OK) == 0) rc = ch_tok_open_dir(o->model, &tok);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), done);
    const ch_config *cfg = ch_model_config(m);
    ch_chat_style style = tok ? ch_tok_chat_style(tok) : CH_CHAT_NONE;
    CH_TRY_GOTO(ch_extract_plan_make(o->input, tok, style, cfg->vocab, cfg->max_pos, o->max_tokens, o->batch_tokens, comm, &plan), done);

    char hash[65] = {0};
    if (rank == 0) rc = ch_fs_sha256(o->input, hash);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), done);
    MPI_Bcast(hash, 65, MPI_CHAR, 0, comm);
    ch_archive_meta meta = {.n_rows = plan.n_records, .n_layers = cfg->n_layers, .n_heads = cfg->n_heads,
                            .head_dim = cfg->head_dim, .id_len = plan.id_len, .task_len = plan.task_len,
                            .hidden_dim = o->hidden ? cfg->hidden : 0, .model_config = cfg->json,
                            .model_dir = o->model, .tokenizer_sha256 = tok ? ch_tok_hash(tok) : "none",
                            .pool = o->pool == CH_POOL_MEAN ? "mean" : "last", .input_path = o->input,
                            .input_sha256 = hash, .command_line = o->command_line, .backend = be->name,
                            .precision = ch_model_precision(m),
                            .batch_tokens = o->batch_tokens, .max_tokens = o->max_tokens};
    int exists = access(o->output, F_OK) == 0;
    if (o->resume && exists)
        rc = ch_archive_open_resume(o->output, &meta, comm, &a);
    else
        rc = ch_archive_create(o->output, &meta, comm, &a);
    CH_TRY_GOTO(rc, done);

    /* which of my batches still need computing */
    int64_t mine = plan.b1 - plan.b0, todo = 0, already = 0;
    rc = CH_ALLOC(skip, mine ? mine : 1, "batch mask");
    for (int64_t b = plan.b0; !rc && b < plan.b1; b++) {
        if (!(o->resume && exists)) {
            todo++;
            continue;
        }
        int64_t r0 = plan.batch_start[b], n = plan.batch_start[b + 1] - r0;
        uint8_t *mask = malloc((size_t)n);
        if (!mask || (rc = ch_archive_done(a, r0, n, mask))) {
            free(mask);
            if (!rc) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
            break;
        }
        int all = 1;
        for (int64_t i = 0; i < n; i++) all &= mask[i] != 0;
        free(mask);
        skip[b - plan.b0] = (uint8_t)all;
        if (all) already += n;
        else todo++;
    }
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), done);
    int64_t rounds = todo, tot_already = already;
    MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &tot_already, 1, MPI_INT64_T, MPI_SUM, comm);
    if (rank == 0)
        fprintf(stderr, "extract: %lld records, %lld tokens, %lld batches on %d rank(s), backend %s%s, Linear inputs %s%s\n",
                (long long)plan.n_records, (long long)plan.total_tokens, (long long)plan.n_batches, size, be->name,
                be->info[0] ? be->info : "", ch_model_precision(m), tot_already ? " (resuming)" : "");

    size_t width = (size_t)ch_model_capture_width(m);
    int64_t maxn = 1;
    for (int64_t b = plan.b0; b < plan.b1; b++)
        if (plan.batch_start[b + 1] - plan.batch_start[b] > maxn) maxn = plan.batch_start[b + 1] - plan.batch_start[b];
    rc = slots_make(be, (size_t)maxn * width, o->hidden ? (size_t)maxn * cfg->hidden : 0, sl);
    if (!rc && !(f = fopen(o->input, "rb"))) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open", o->input);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), done);

    ch_progress prog;
    ch_progress_init(&prog, "extract", plan.n_records, tot_already, comm);
    double io_seconds = 0;
    int64_t b = plan.b0;
    /* Fault injection for the crash-resume test: die by SIGKILL after N write rounds, the way a
     * preempted job dies (no cleanup, no close). */
    const char *kill_env = getenv("CAPHEADS_TEST_KILL_AFTER_ROUNDS");
    int64_t kill_after = kill_env ? atoll(kill_env) : -1;
    /* Double buffering: round r queues batch r's forward pass and the copy of its captures into
     * slot r % 2, then writes batch r - 1's rows from the other slot while the device computes
     * (on the CPU backend the forward pass is done by then: same path, no overlap). A last round
     * writes the last batch, so every rank joins `rounds` collective writes. */
    for (int64_t round = 0; round <= rounds; round++) {
        slot *cur = &sl[round % 2], *prev = &sl[(round + 1) % 2];
        while (round < rounds && b < plan.b1 && skip[b - plan.b0]) b++;
        if (round < rounds && !rc && b < plan.b1) {
            rc = batch_load(o, &plan, b, f, tok, style, cfg->vocab, &cur->bb);
            if (!rc) {
                ch_batch batch = {.nseq = cur->bb.n, .tokens = cur->bb.tokens, .start = cur->bb.start};
                rc = ch_model_capture_start(m, &batch, o->pool, cur->out, cur->hidden, cur->ev);
            }
            if (!rc) cur->row0 = plan.batch_start[b], cur->n = cur->bb.n, cur->ntok = cur->bb.start[cur->bb.n];
            b++;
        }
        if (round == 0) continue; /* nothing written yet: the first batch is on its way */
        int64_t row0 = prev->row0, n = prev->n, ntok = prev->ntok;
        if (!rc && n) rc = be->event_wait(be, prev->ev); /* its captures are in prev->out now */
        const char **ids = NULL, **tasks = NULL;
        int32_t *labels = NULL, *nt = NULL;
        if (n && !rc) {
            ids = malloc(sizeof(char *) * n), tasks = malloc(sizeof(char *) * n);
            labels = malloc(sizeof(int32_t) * n), nt = malloc(sizeof(int32_t) * n);
            if (!ids || !tasks || !labels || !nt) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory"), n = 0;
            for (int64_t i = 0; i < n; i++)
                ids[i] = prev->bb.rec[i].id, tasks[i] = prev->bb.rec[i].task, labels[i] = prev->bb.rec[i].label,
                nt[i] = prev->bb.rec[i].n_tokens;
        }
        /* wait for the slowest rank's forward pass here, so io_seconds is the write itself and
         * not load imbalance (the collective write would wait for it anyway) */
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        /* every rank joins the collective write, with nothing when it failed or has no work */
        ch_archive_rows rows = {.ids = ids, .tasks = tasks, .labels = labels, .n_tokens = nt};
        int wrc = ch_archive_write_rows(a, row0, rc ? 0 : n, prev->out, prev->hidden, &rows);
        io_seconds += MPI_Wtime() - t0;
        if (!rc) rc = wrc;
        free(ids), free(tasks), free(labels), free(nt);
        batch_free(&prev->bb);
        prev->n = 0;
        if (ch_mpi_agree(comm, rc)) {
            if (!rc) rc = ch_err_code();
            break;
        }
        ch_progress_add(&prog, n, ntok);
        if (kill_after >= 0 && round >= kill_after) raise(SIGKILL); /* after `round` write rounds */
    }
    double seconds = ch_progress_finish(&prog);
    double io_max = io_seconds; /* the slowest rank's write time */
    if (MPI_Allreduce(&io_seconds, &io_max, 1, MPI_DOUBLE, MPI_MAX, comm) != MPI_SUCCESS)
        io_max = io_seconds; /* only the report's figure: this rank's own */
    int crc = ch_archive_close(a); /* sets `complete` only when every row is done */
    a = NULL;
    if (!rc) rc = ch_mpi_agree(comm, crc);
    if (!rc && rank == 0) {
        fprintf(stderr, "extract: wrote %s (%lld rows x %d layers x %d heads x %d, float16); I/O %.1f%% of %.1f s\n",
                o->output, (long long)plan.n_records, cfg->n_layers, cfg->n_heads, cfg->head_dim,
                seconds > 0 ? 100.0 * io_max / seconds : 0.0, seconds);
    }
    tm.records = plan.n_records, tm.tokens = plan.total_tokens, tm.io_seconds = io_seconds, tm.backend = be->name;
    tm.precision = ch_model_precision(m);
    rc = ch_timing_finish(&tm, o->timing, rc, comm); /* one JSON line (docs/timing.md) */
done:
    if (a) ch_archive_close(a);
    if (f) fclose(f);
    slots_free(be, sl); /* before the model and backend go */
    free(skip);
    ch_extract_plan_free(&plan);
    ch_tok_free(tok);
    ch_model_close(m);
    ch_backend_destroy(be);
    return rc;
}

int ch_cmd_extract(int argc, char **argv, MPI_Comm comm) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc < 0) return 0;
    CH_TRY(rc);
    o.command_line = join_args(argc, argv);
    rc = run(&o, comm);
    free(o.command_line);
    return rc;
}
