/* extract.c - `capheads extract`: per-head attention outputs of a corpus into one HDF5 archive.
 *
 * The plan (extract_plan.h) fixes which records form each batch, the same for any rank count,
 * and gives each rank a block of batches. Then write rounds: each rank queues its next batch's
 * forward pass (the device computes it, and copies the captures into page-locked host memory,
 * while the host goes on) and all ranks write the previous batch's rows collectively (a rank out
 * of work joins with an empty selection). A batch's rows are marked done only after its data is
 * flushed; --resume skips batches whose rows are all done. */
#include <cjson/cJSON.h>
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
#include "config.h"
#include "corpus.h"
#include "err.h"
#include "fsutil.h"
#include "extract_plan.h"
#include "lock.h"
#include "outpath.h"
#include "safetensors.h"
#include "weights_hash.h"
#include "model.h"
#include "mpicheck.h"
#include "options.h"
#include "progress.h"
#include "timing.h"

typedef struct {
    const char *model, *input, *output, *device, *timing, *cue;
    int pool;      /* ch_pool */
    int precision; /* ch_precision */
    int template_chat, span_full; /* the rendering rule (io/render_rule.h) */
    int truncate;  /* ch_truncate */
    int batch_tokens, max_tokens, resume, force, hidden, threads;
    char *command_line;
} opts;

static const ch_opt opts_table[] = {
    {"model", 0, CH_OPT_PATH, offsetof(opts, model), "DIR", .flags = CH_OPT_REQUIRED,
     .help = "a Hugging Face model directory (config.json, safetensors,\ntokenizer.json)"},
    {"input", 0, CH_OPT_PATH, offsetof(opts, input), "CORPUS.jsonl", .flags = CH_OPT_REQUIRED,
     .help = "the records (docs/prepare.md)"},
    {"output", 0, CH_OPT_PATH, offsetof(opts, output), "ACTS.h5", .flags = CH_OPT_REQUIRED,
     .help = "the archive, written by all ranks"},
    {"pool", 0, CH_OPT_CHOICE, offsetof(opts, pool), .choices = "last|mean", .def = "last",
     .help = "a head's output at the last prompt token, or averaged over\nthe prompt"},
    {"batch-tokens", 0, CH_OPT_INT, offsetof(opts, batch_tokens), "N", .def = "4096", .lo = 1, .hi = 1 << 30,
     .help = "tokens per forward pass; bounds memory"},
    {"resume", 0, CH_OPT_FLAG, offsetof(opts, resume),
     .help = "continue an interrupted run of the same model, corpus, pooling,\n"
             "--batch-tokens, backend and precision (the archive records them)"},
    {"force", 0, CH_OPT_FLAG, offsetof(opts, force),
     .help = "replace an existing archive (without it, an existing one is refused:\n"
             "--resume continues it)"},
    {"hidden", 0, CH_OPT_FLAG, offsetof(opts, hidden),
     .help = "also store the mean final hidden state (for select --method rds)"},
    {"device", 0, CH_OPT_STRING, offsetof(opts, device), "cpu|cuda|auto", .def = "auto",
     .help = "compute backend (auto: cuda when a GPU is usable)"},
    {"precision", 0, CH_OPT_CHOICE, offsetof(opts, precision), .choices = "auto|f32", .def = "auto",
     .help = "auto: a bf16 checkpoint's Linear layers multiply bf16 weights by\n"
             "activations rounded to bf16, summing in f32, as the model runs in its\n"
             "own dtype (CPU: AMX tiles where the CPU has them; CUDA: also f16);\n"
             "f32: every Linear in f32, weights widened at load (twice the weight\n"
             "memory; within 1e-4 of transformers in float32, from which auto is\n"
             "typically 1e-3 to 1e-2 away, relative)"},
    {"threads", 0, CH_OPT_INT, offsetof(opts, threads), "N", .lo = 1, .hi = 4096,
     .help = "CPU backend threads per rank (default: OpenMP's, OMP_NUM_THREADS)"},
    {"max-tokens", 0, CH_OPT_INT, offsetof(opts, max_tokens), "N", .def = "8192", .lo = 1, .hi = 1 << 30,
     .help = "refuse records longer than N tokens (or than the model's window),\nor cut them (--truncate)"},
    {"truncate", 0, CH_OPT_CHOICE, offsetof(opts, truncate), .choices = "none|left|right", .def = "none",
     .help = "a record longer than min(--max-tokens, the model's window): none:\n"
             "refused by name; left: keep its LAST N tokens (the read position\n"
             "stays the prompt's end: recommended); right: keep its first N.\n"
             "Cut records are counted on stderr and in the archive"},
    {"template", 0, CH_OPT_CHOICE, offsetof(opts, template_chat), .choices = "plain|chat", .def = "plain",
     .help = "the rendering rule (docs/prepare.md): plain text, or the model's\n"
             "chat template with the generation prompt; one rule for the probing\n"
             "set, the target tasks and the pool (decompose and select check it)"},
    {"span", 0, CH_OPT_CHOICE, offsetof(opts, span_full), .choices = "prompt|full", .def = "prompt",
     .help = "prompt: a conversation's turns before its final assistant turn;\n"
             "full: every turn, response included (a pool-only ablation: probe\n"
             "and decompose refuse it)"},
    {"cue", 0, CH_OPT_STRING, offsetof(opts, cue), "TEXT", .def = "Answer:",
     .help = "under --template plain --span prompt, a conversation's prompt ends\n"
             "with a line TEXT (\"\": none), as prepared texts do"},
    {"timing", 0, CH_OPT_PATH, offsetof(opts, timing), "FILE",
     .help = "append a JSON timing record (docs/timing.md)"},
};

/* --help: the architectures config.json may name (README.md, "Models"). */
static void list_archs(FILE *f) {
    fprintf(f, "\nsupported architectures (config.json `architectures`; any other is refused):\n");
    for (int i = 0; i < CH_ARCH_COUNT; i++) fprintf(f, "  %-20s %s\n", ch_archs[i].name, ch_archs[i].families);
}

static const ch_opt_cmd cmd = {
    "extract", opts_table, CH_NOPTS(opts_table), .more_help = list_archs,
    .about = "Run the model (a Hugging Face directory: config.json, safetensors, tokenizer.json) over\n"
             "every record of the corpus and store, for every layer and query head, the head's\n"
             "attention output at the last prompt token (--pool last, default) or averaged over the\n"
             "prompt (--pool mean), as float16, in one HDF5 archive written by all ranks.\n",
    .epilog = "Environment: CAPHEADS_SYNC_MIB (default 256) - rows are marked done, and so skipped by\n"
              "--resume, once the data written since the last sync reaches this many MiB (0: every\n"
              "batch); a crash loses at most that much work, recomputed on --resume.\n"};

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

static int batch_load(const opts *o, const ch_extract_plan *p, int64_t b, FILE *f, const ch_corpus_render *how,
                      int window, batch_buf *bb) {
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
        if ((rc = ch_corpus_record(buf, (size_t)p->len[g], o->input, p->line[g], how, &bb->rec[i]))) break;
        bb->n = i + 1;
        /* the cut the plan made (extract_plan.c), made again */
        ch_record_cut(&bb->rec[i], ch_extract_limit(o->max_tokens, window), (ch_truncate)o->truncate, how->bos);
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

/* Everything one run holds, so that each step below is a function of (run, options). */
typedef struct {
    MPI_Comm comm;
    int rank, size;
    ch_timing tm;
    ch_backend *be;
    ch_model *m;
    ch_tokenizer *tok;
    const ch_config *cfg;
    ch_chat_style style;
    ch_render_rule rule;
    ch_corpus_render how;   /* how records become tokens: tokenizer, template, rule */
    ch_extract_plan plan;
    ch_archive *a;
    int exists;             /* the output was there before: --resume continues it */
    char partial[4200];     /* the archive's name until it is complete (outpath.h) */
    const char *target;     /* the file written: partial, or --output itself when --resume
                             * continues one written in place (complete, or older capheads) */
    uint8_t *skip;          /* [b1 - b0]: my batches whose rows are all done already */
    int64_t rounds;         /* write rounds every rank joins: the most batches any rank computes */
    int64_t already;        /* rows done before this run, over all ranks */
    FILE *f;                /* the corpus */
    slot sl[2];
    double io_seconds;      /* this rank's time in collective writes */
    ch_lock *lock;          /* rank 0: the output's lock, held for the whole run */
    char weights[65];       /* SHA-256 of the checkpoint files */
} xrun;

/* Before anything is computed: the output may not land on an input, an existing archive is
 * continued (--resume) or replaced (--force) only when asked, and one run at a time writes it
 * (rank 0 takes the lock for all ranks; a stale one is taken over by --resume or --force). */
static int guard_output(xrun *x, const opts *o) {
    int rc = ch_out_partial_name(o->output, x->partial, sizeof x->partial);
    if (x->rank == 0 && !rc) {
        const ch_path_role in[] = {{o->input, "--input", 0}, {o->model, "--model", 0}};
        const ch_path_role out[] = {{o->output, "--output", 0}, {o->timing, "--timing", 0}};
        rc = ch_paths_check(in, 2, out, 2);
        /* the lock first: after a killed run, its stale lock is the news, not the file it left */
        if (!rc) rc = ch_lock_take(o->output, o->resume || o->force, &x->lock);
        if (!rc && !o->resume && !o->force && access(o->output, F_OK) == 0)
            rc = ch_err_set(CH_EARG, __FILE__, __LINE__,
                            "--output %s exists: add --resume to continue it, or --force to replace it", o->output);
        if (!rc && !o->resume && !o->force && access(x->partial, F_OK) == 0)
            rc = ch_err_set(CH_EARG, __FILE__, __LINE__,
                            "%s is the unfinished archive of --output %s (a run that stopped part-way): add --resume "
                            "to continue it, or --force to start over", x->partial, o->output);
    }
    CH_TRY(ch_mpi_agree(x->comm, rc));
    ch_out_kill_point("start"); /* fault injection (tests/test_faults.sh) */
    return 0;
}

/* The checkpoint's SHA-256, computed once by all ranks together and printed with its cost: the
 * archive records it and --resume refuses other weights under the same config and tokenizer. */
static int hash_weights(xrun *x, const opts *o) {
    ch_st_dir *d = NULL;
    int rc = ch_st_open_dir(o->model, &d);
    CH_TRY(ch_mpi_agree(x->comm, rc));
    int n = ch_st_dir_nfiles(d);
    const char **files = malloc(sizeof *files * (size_t)(n ? n : 1));
    if (!files) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
    for (int i = 0; !rc && i < n; i++) files[i] = ch_st_dir_file(d, i);
    double t0 = MPI_Wtime(), bytes = 0;
    if (!rc) rc = ch_weights_sha256(files, n, x->comm, x->weights, &bytes);
    if (!rc && x->rank == 0)
        fprintf(stderr, "extract: weights sha256 %.16s... (%.2f GB in %d file(s), hashed by %d rank(s) in %.2f s)\n",
                x->weights, bytes / 1e9, n, x->size, MPI_Wtime() - t0);
    free(files);
    ch_st_close_dir(d);
    return rc; /* ch_weights_sha256 agrees across ranks itself */
}

static int open_model(xrun *x, const opts *o) {
    int rc = 0;
    rc = ch_backend_create(o->device, o->threads, &x->be);
    if (!rc) rc = ch_model_open(o->model, x->be, o->precision, &x->m);
    /* a model without tokenizer.json takes pre-tokenized records (corpus.h) */
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->model);
    if (!rc && access(tpath, R_OK) == 0) rc = ch_tok_open_dir(o->model, &x->tok);
    CH_TRY(ch_mpi_agree(x->comm, rc));
    x->cfg = ch_model_config(x->m);
    x->style = x->tok ? ch_tok_chat_style(x->tok) : CH_CHAT_NONE;
    return 0;
}

static const char *const trunc_names[] = {"none", "left", "right"};

/* The rendering rule of this run; a chat template needs a tokenizer that has one. */
static int make_rule(xrun *x, const opts *o) {
    CH_TRY(ch_render_rule_make(o->template_chat ? "chat" : "plain", o->span_full ? "full" : "prompt", o->cue, &x->rule));
    if (o->template_chat && x->style == CH_CHAT_NONE)
        CH_FAIL(CH_EARG, "--template chat: %s has %s: no chat template to render with (--template plain needs none)",
                o->model, x->tok ? "a tokenizer without one (no Llama 3 or ChatML special tokens)" : "no tokenizer.json");
    x->how = (ch_corpus_render){.tok = x->tok, .style = x->style, .rule = &x->rule, .vocab = x->cfg->vocab,
                                .bos = ch_corpus_bos(x->tok)};
    if (x->rank == 0 && o->span_full)
        fprintf(stderr, "extract: --span full renders every turn, responses included: an ablation for a pool "
                        "(probe and decompose refuse such an archive)\n");
    return 0;
}

/* How many records --truncate cut, and the first few of them by id (rank 0 reads their lines
 * again: the plan holds every record's place). */
static void report_truncation(const xrun *x, const opts *o) {
    const ch_extract_plan *p = &x->plan;
    if (x->rank != 0 || !p->n_truncated) return;
    fprintf(stderr, "extract: --truncate %s cut %lld record(s) to %d tokens:", trunc_names[o->truncate],
            (long long)p->n_truncated, ch_extract_limit(o->max_tokens, x->cfg->max_pos));
    int shown = 0;
    char *buf = NULL;
    for (int64_t i = 0; i < p->n_records && shown < 5; i++) {
        if (!p->cut[i]) continue;
        char *nb = realloc(buf, (size_t)p->len[i] + 1);
        if (!nb) break;
        buf = nb;
        cJSON *j = NULL;
        if (!fseeko(x->f, p->start[i], SEEK_SET) && fread(buf, 1, (size_t)p->len[i], x->f) == (size_t)p->len[i])
            j = cJSON_ParseWithLength(buf, (size_t)p->len[i]);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        fprintf(stderr, "%s '%s' (line %lld)", shown ? "," : "", cJSON_IsString(id) ? id->valuestring : "?",
                (long long)p->line[i]);
        cJSON_Delete(j);
        shown++;
    }
    free(buf);
    fprintf(stderr, "%s\n", p->n_truncated > shown ? ", ..." : "");
}

/* The archive records the corpus's sha256 (rank 0 reads it) and how it was made, so that
 * --resume can refuse to continue it with other inputs. */
static int open_archive(xrun *x, const opts *o) {
    char hash[65] = {0};
    int rc = x->rank == 0 ? ch_fs_sha256(o->input, hash) : 0;
    CH_TRY(ch_mpi_agree(x->comm, rc));
    CH_MPI_TRY(MPI_Bcast(hash, 65, MPI_CHAR, 0, x->comm));
    const ch_config *cfg = x->cfg;
    ch_model *m = x->m;
    ch_extract_plan plan = x->plan;
    ch_archive_meta meta = {.n_rows = plan.n_records, .n_layers = cfg->n_layers, .n_heads = cfg->n_heads,
                            .head_dim = cfg->head_dim, .id_len = plan.id_len, .task_len = plan.task_len,
                            .hidden_dim = o->hidden ? cfg->hidden : 0, .model_config = cfg->json,
                            .model_dir = o->model, .tokenizer_sha256 = x->tok ? ch_tok_hash(x->tok) : "none",
                            .weights_sha256 = x->weights,
                            .pool = o->pool == CH_POOL_MEAN ? "mean" : "last", .input_path = o->input,
                            .input_sha256 = hash, .command_line = o->command_line, .backend = x->be->name,
                            .precision = ch_model_precision(m),
                            .batch_tokens = o->batch_tokens, .max_tokens = o->max_tokens,
                            .render = &x->rule, .truncate = trunc_names[o->truncate], .n_truncated = plan.n_truncated};
    /* --resume continues the unfinished archive, or one under the final name (complete, or
     * written in place by an older capheads); otherwise a new one is made under the partial name */
    x->target = x->partial;
    x->exists = o->resume && access(x->partial, F_OK) == 0;
    if (o->resume && !x->exists && access(o->output, F_OK) == 0) x->target = o->output, x->exists = 1;
    if (x->exists)
        rc = ch_archive_open_resume(x->target, &meta, x->comm, &x->a);
    else
        rc = ch_archive_create(x->target, &meta, x->comm, &x->a);
    return rc;
}

/* Is every row of batch b done already (a resumed archive)? */
static int batch_done(xrun *x, int64_t b, int *all) {
    int64_t r0 = x->plan.batch_start[b], n = x->plan.batch_start[b + 1] - r0;
    uint8_t *mask = NULL;
    CH_TRY(CH_ALLOC(mask, n ? n : 1, "done mask"));
    int rc = ch_archive_done(x->a, r0, n, mask);
    *all = 1;
    for (int64_t i = 0; i < n && !rc; i++) *all &= mask[i] != 0;
    free(mask);
    return rc;
}

/* Which of my batches still need computing, and how many write rounds all ranks join. */
static int find_todo(xrun *x, const opts *o) {
    const ch_extract_plan *p = &x->plan;
    int64_t mine = p->b1 - p->b0, todo = 0, already = 0;
    int rc = CH_ALLOC(x->skip, mine ? mine : 1, "batch mask");
    for (int64_t b = p->b0; !rc && b < p->b1; b++) {
        int all = 0;
        if (o->resume && x->exists) rc = batch_done(x, b, &all);
        x->skip[b - p->b0] = (uint8_t)all;
        if (all) already += p->batch_start[b + 1] - p->batch_start[b];
        else todo++;
    }
    CH_TRY(ch_mpi_agree(x->comm, rc));
    x->rounds = todo, x->already = already;
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &x->rounds, 1, MPI_INT64_T, MPI_MAX, x->comm));
    CH_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &x->already, 1, MPI_INT64_T, MPI_SUM, x->comm));
    return 0;
}

/* Two slots of host buffers, sized for my largest batch, and the corpus open for reading. */
static int open_slots(xrun *x, const opts *o) {
    const ch_extract_plan *p = &x->plan;
    size_t width = (size_t)ch_model_capture_width(x->m);
    int64_t maxn = 1;
    for (int64_t b = p->b0; b < p->b1; b++)
        if (p->batch_start[b + 1] - p->batch_start[b] > maxn) maxn = p->batch_start[b + 1] - p->batch_start[b];
    int rc = slots_make(x->be, (size_t)maxn * width, o->hidden ? (size_t)maxn * x->cfg->hidden : 0, x->sl);
    if (!rc && !(x->f = fopen(o->input, "rb"))) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open", o->input);
    return ch_mpi_agree(x->comm, rc);
}

static void report_start(const xrun *x) {
    if (x->rank != 0) return;
    const ch_extract_plan *p = &x->plan;
    fprintf(stderr, "extract: %lld records, %lld tokens, %lld batches on %d rank(s), backend %s%s, Linear inputs %s%s\n",
            (long long)p->n_records, (long long)p->total_tokens, (long long)p->n_batches, x->size, x->be->name,
            x->be->info[0] ? x->be->info : "", ch_model_precision(x->m), x->already ? " (resuming)" : "");
    char d[400];
    ch_render_rule_describe(&x->rule, d, sizeof d);
    fprintf(stderr, "extract: render rule %s\n", d);
}

/* Load batch b's records into cur and queue its forward pass and the copy of its captures. */
static int queue_batch(xrun *x, const opts *o, int64_t b, slot *cur) {
    ch_model *m = x->m;
    int rc = batch_load(o, &x->plan, b, x->f, &x->how, x->cfg->max_pos, &cur->bb);
    if (!rc) {
        ch_batch batch = {.nseq = cur->bb.n, .tokens = cur->bb.tokens, .start = cur->bb.start};
        rc = ch_model_capture_start(m, &batch, o->pool, cur->out, cur->hidden, cur->ev);
    }
    if (!rc) cur->row0 = x->plan.batch_start[b], cur->n = cur->bb.n, cur->ntok = cur->bb.start[cur->bb.n];
    return rc;
}

/* The collective write of prev's rows (every rank joins, with nothing when it failed or has no
 * work); rc is this rank's state so far, the result its new state. */
static int write_batch(xrun *x, slot *prev, int rc) {
    ch_backend *be = x->be;
    ch_archive *a = x->a;
    int64_t row0 = prev->row0, n = prev->n;
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
    int brc = CH_MPI_RC(MPI_Barrier(x->comm));
    if (!rc) rc = brc;
    double t0 = MPI_Wtime();
    /* every rank joins the collective write, with nothing when it failed or has no work */
    ch_archive_rows rows = {.ids = ids, .tasks = tasks, .labels = labels, .n_tokens = nt};
    int wrc = ch_archive_write_rows(a, row0, rc ? 0 : n, prev->out, prev->hidden, &rows);
    x->io_seconds += MPI_Wtime() - t0;
    if (!rc) rc = wrc;
    free(ids), free(tasks), free(labels), free(nt);
    batch_free(&prev->bb);
    prev->n = 0;
    return ch_mpi_agree(x->comm, rc);
}

/* Double buffering: round r queues batch r's forward pass and the copy of its captures into
 * slot r % 2, then writes batch r - 1's rows from the other slot while the device computes
 * (on the CPU backend the forward pass is done by then: same path, no overlap). A last round
 * writes the last batch, so every rank joins `rounds` collective writes. */
static int write_rounds(xrun *x, const opts *o, ch_progress *prog) {
    const ch_extract_plan *p = &x->plan;
    /* Fault injection for the crash-resume test: die by SIGKILL after N write rounds, the way a
     * preempted job dies (no cleanup, no close). */
    const char *kill_env = getenv("CAPHEADS_TEST_KILL_AFTER_ROUNDS");
    int64_t kill_after = kill_env ? atoll(kill_env) : -1;
    int rc = 0;
    int64_t b = p->b0;
    for (int64_t round = 0; round <= x->rounds; round++) {
        slot *cur = &x->sl[round % 2], *prev = &x->sl[(round + 1) % 2];
        while (round < x->rounds && b < p->b1 && x->skip[b - p->b0]) b++;
        if (round < x->rounds && !rc && b < p->b1) rc = queue_batch(x, o, b++, cur);
        if (round == 0) continue; /* nothing written yet: the first batch is on its way */
        int64_t n = prev->n, ntok = prev->ntok;
        if ((rc = write_batch(x, prev, rc))) break;
        ch_progress_add(prog, n, ntok);
        if (x->lock) (void)ch_lock_refresh(x->lock); /* heartbeat; a failed touch only ages the lock */
        if (kill_after >= 0 && round >= kill_after) raise(SIGKILL); /* after `round` write rounds */
        ch_out_kill_point("write");
    }
    return rc;
}

/* The closed archive under its final name, once it says complete (rank 0 reads it back). An
 * unfinished one stays under the partial name for --resume. */
static int publish(xrun *x, const opts *o) {
    int rc = 0;
    if (x->rank == 0) {
        ch_archive_reader *r = NULL;
        ch_archive_info info;
        memset(&info, 0, sizeof info);
        rc = ch_archive_open_read(x->partial, MPI_COMM_SELF, &r);
        if (!rc) rc = ch_archive_get_info(r, &info);
        if (!rc && !info.complete)
            rc = ch_err_set(CH_EINCOMPLETE, __FILE__, __LINE__, "%s: %lld of %lld rows done after the run: rerun with --resume",
                            x->partial, (long long)info.n_done, (long long)info.n_rows);
        ch_archive_info_free(&info);
        if (r) {
            int crc = ch_archive_close_read(r);
            rc = rc ? rc : crc;
        }
        if (!rc) rc = ch_out_publish(x->partial, o->output);
    }
    return ch_mpi_agree(x->comm, rc);
}

/* Close the archive (it sets `complete` only when every row is done), report, and append the
 * timing record; rc is the state of the write rounds. */
static int finish(xrun *x, const opts *o, double seconds, int rc) {
    double io_max = x->io_seconds; /* the slowest rank's write time */
    if (CH_MPI_RC(MPI_Allreduce(&x->io_seconds, &io_max, 1, MPI_DOUBLE, MPI_MAX, x->comm)))
        io_max = x->io_seconds; /* only the report's figure: this rank's own */
    int crc = ch_archive_close(x->a);
    x->a = NULL;
    if (!rc) rc = ch_mpi_agree(x->comm, crc);
    if (!rc && x->target == x->partial) rc = publish(x, o);
    const ch_config *cfg = x->cfg;
    if (!rc && x->rank == 0)
        fprintf(stderr, "extract: wrote %s (%lld rows x %d layers x %d heads x %d, float16); I/O %.1f%% of %.1f s\n",
                o->output, (long long)x->plan.n_records, cfg->n_layers, cfg->n_heads, cfg->head_dim,
                seconds > 0 ? 100.0 * io_max / seconds : 0.0, seconds);
    ch_timing *tm = &x->tm;
    tm->records = x->plan.n_records, tm->tokens = x->plan.total_tokens, tm->io_seconds = x->io_seconds;
    tm->backend = x->be->name, tm->precision = ch_model_precision(x->m);
    return ch_timing_finish(tm, o->timing, rc, x->comm); /* one JSON line (docs/timing.md) */
}

static void xrun_free(xrun *x) {
    if (x->a) ch_archive_close(x->a);
    ch_lock_release(x->lock);
    if (x->f) fclose(x->f);
    slots_free(x->be, x->sl); /* before the model and backend go */
    free(x->skip);
    ch_extract_plan_free(&x->plan);
    ch_tok_free(x->tok);
    ch_model_close(x->m);
    ch_backend_destroy(x->be);
}

static int run(const opts *o, MPI_Comm comm) {
    xrun x;
    memset(&x, 0, sizeof x);
    x.comm = comm;
    int rc = 0;
    ch_timing_start(&x.tm, "extract");
    CH_MPI_TRY_GOTO(MPI_Comm_rank(comm, &x.rank), done);
    CH_MPI_TRY_GOTO(MPI_Comm_size(comm, &x.size), done);
    CH_TRY_GOTO(guard_output(&x, o), done);
    CH_TRY_GOTO(open_model(&x, o), done);
    CH_TRY_GOTO(hash_weights(&x, o), done);
    CH_TRY_GOTO(ch_mpi_agree(comm, make_rule(&x, o)), done);
    CH_TRY_GOTO(ch_extract_plan_make(o->input, &x.how, x.cfg->max_pos, o->max_tokens, (ch_truncate)o->truncate,
                                     o->batch_tokens, comm, &x.plan), done);
    CH_TRY_GOTO(open_archive(&x, o), done);
    CH_TRY_GOTO(find_todo(&x, o), done); /* --resume: skip batches whose rows are all done */
    report_start(&x);
    CH_TRY_GOTO(open_slots(&x, o), done);
    report_truncation(&x, o);
    ch_progress prog;
    CH_TRY_GOTO(ch_progress_init(&prog, "extract", x.plan.n_records, x.already, comm), done);
    rc = write_rounds(&x, o, &prog);
    rc = finish(&x, o, ch_progress_finish(&prog), rc);
done:
    xrun_free(&x);
    return rc;
}

int ch_cmd_extract(int argc, char **argv, MPI_Comm comm) {
    opts o = {0};
    int help;
    CH_TRY(ch_opt_parse(&cmd, argc, argv, &o, &help));
    if (help) return ch_opt_help(&cmd, comm);
    o.command_line = ch_opt_command_line(argc, argv);
    int rc = run(&o, comm);
    free(o.command_line);
    return rc;
}
