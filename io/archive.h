/* archive.h - the activation archive: one HDF5 file, written collectively by all ranks.
 *
 * Layout (format "capheads-activations", version 1):
 *   /activations  [N, L, H, D]  IEEE binary16 (H5T_IEEE_F16LE-equivalent: a copy of
 *                 H5T_IEEE_F32LE with 16-bit fields: sign 15, exponent 10..14 bias 15, mantissa
 *                 0..9; h5py reads it as float16). Chunked [R, 1, H, D]: one chunk = a block of R
 *                 rows of ONE layer, so the probe stage, which streams row blocks of all layers,
 *                 and readers wanting one layer both touch whole chunks.
 *   /ids          [N]  fixed-length strings (length = longest id, NUL padded)
 *   /labels       [N]  int32, capability index, -1 when the record has none
 *   /tasks        [N]  fixed-length strings ("" when none)
 *   /n_tokens     [N]  int32, prompt length in tokens
 *   /hidden       [N, hidden] binary16, optional (extract --hidden): the final hidden state
 *                 (after the final norm) mean-pooled over the prompt, for the RDS baseline
 *   /done         [N]  uint8, 1 when the row's data is written (the resume mask); written and
 *                 flushed only AFTER the data it covers, so a crash never marks unwritten rows.
 *   dimension scales on /activations: "row", "layer", "head", "dim"
 *   root attributes: format, format_version, model_config (JSON text), model_dir,
 *                    tokenizer_sha256, pool ("last"|"mean"), input_path, input_sha256,
 *                    n_records, capability_names (JSON list), command_line, batch_tokens and
 *                    max_tokens (int64: extract's options; the batch plan, which fixes every
 *                    row's bytes, depends on batch_tokens; max_tokens only refuses longer
 *                    records unless --truncate cuts them to it), render_template,
 *                    render_span, render_cue (the rendering rule, io/render_rule.h), truncate
 *                    ("none"|"left"|"right") and n_truncated (int64: records cut), created (ISO time;
 *                    the only attribute that differs between identical runs), complete (uint8,
 *                    set to 1 by close when every row is done).
 * Row i always holds record i of the input, whatever the number of ranks.
 *
 * Every function taking an MPI_Comm or documented "collective" must be called by all ranks. */
#ifndef CH_ARCHIVE_H
#define CH_ARCHIVE_H

#include <mpi.h>
#include <stdint.h>

#include "capability.h"
#include "render_rule.h"

#define CH_ARCHIVE_FORMAT "capheads-activations"
#define CH_ARCHIVE_VERSION 1

/* The five capabilities of the method, in archive label order: base/capability.h. */

typedef struct {
    int64_t n_rows;
    int n_layers, n_heads, head_dim;
    int id_len, task_len;         /* fixed string lengths (>= 1) */
    int hidden_dim;               /* > 0: store /hidden [N, hidden_dim] */
    const char *model_config;     /* JSON text */
    const char *model_dir;
    const char *tokenizer_sha256;
    const char *weights_sha256;   /* io/weights_hash.h: the checkpoint's bytes, compared on resume */
    const char *pool;             /* "last" | "mean" */
    const char *input_path;
    const char *input_sha256;
    const char *command_line;
    const char *backend;          /* "cpu" | "cuda": which one computed the rows */
    const char *precision;        /* "bf16" | "f16" | "f32": what the Linear inputs were rounded to */
    int64_t batch_tokens;         /* extract's --batch-tokens: the batch plan, and so the bytes */
    int64_t max_tokens;           /* extract's --max-tokens (recorded, not compared on resume) */
    int no_checksums;             /* 1: no /row_crc (only bench_archive, to measure what it costs) */
    const ch_render_rule *render; /* how records became tokens (render_rule.h); NULL: not recorded
                                   * (synthetic archives of tests and benchmarks only) */
    const char *truncate;         /* extract's --truncate: "none" | "left" | "right" (NULL: "none") */
    int64_t n_truncated;          /* records cut to the limit under --truncate */
} ch_archive_meta;

typedef struct ch_archive ch_archive;

/* ---- writing (io/archive_write.c) ------------------------------------------------------------ */

/* Collective. Create (truncate) path with the layout above, every row not done. */
int ch_archive_create(const char *path, const ch_archive_meta *m, MPI_Comm comm, ch_archive **out);
/* Collective. Reopen an existing archive for --resume: refuses (CH_EMISMATCH, naming the
 * attribute or option and both values) when model_config, tokenizer_sha256, pool, input_sha256,
 * backend, precision, batch_tokens, the render rule, truncate or the shape differ from `expect` (an archive
 * without batch_tokens or a render rule, from before they were recorded, is refused too: its plan is
 * unknown). max_tokens is compared only under --truncate left|right, where it changes the rows. */
int ch_archive_open_resume(const char *path, const ch_archive_meta *expect, MPI_Comm comm,
                           ch_archive **out);
/* What the archive stores of each row besides its data: ids and tasks NUL-terminated (a NULL
 * array or entry is ""), labels and n_tokens one per row. */
typedef struct {
    const char *const *ids;
    const char *const *tasks;
    const int32_t *labels;
    const int32_t *n_tokens;
} ch_archive_rows;

/* Collective: every rank calls it once per write round, nrows may be 0. Writes rows
 * [row0, row0+nrows) of this rank as they come, without converting: acts is one layer-major
 * block [L][nrows][H*D] of IEEE binary16 bits (ch_model_capture_start's output, narrowed on the
 * device), hidden [nrows][hidden_dim] binary16 bits or NULL when the archive has none, and rows
 * their ids, tasks, labels and n_tokens. Marks the rows done after the data is written and
 * flushed. */
int ch_archive_write_rows(ch_archive *a, int64_t row0, int64_t nrows, const uint16_t *acts,
                          const uint16_t *hidden, const ch_archive_rows *rows);
/* For callers that hold f32 rows (tests, synthetic archives): narrow [n][L][hd] f32 into the
 * writer's layer-major [L][n][hd] binary16 (ch_f32_to_f16 of every value, F16C where the CPU has
 * it: the same bits as the device's narrowing). L = 1 narrows a [n][hd] block (hidden). */
void ch_archive_pack_f16(const float *src, int64_t n, int L, size_t hd, uint16_t *dst);
/* Read the done mask for rows [row0, row0+n) (independent). */
int ch_archive_done(ch_archive *a, int64_t row0, int64_t n, uint8_t *mask);
/* Collective. Sets `complete` when every row is done, closes. Frees a even on error. */
int ch_archive_close(ch_archive *a);

/* ---- reading (io/archive_read.c) ------------------------------------------------------------- */

typedef struct {
    int64_t n_rows;
    int n_layers, n_heads, head_dim;
    int64_t n_done;
    int complete;
    int hidden_dim;     /* 0 when the archive has no /hidden */
    char *pool, *model_config, *tokenizer_sha256, *input_sha256, *input_path, *command_line,
        *created, *model_dir, *backend, *precision, *rows_sha256, *weights_sha256; /* NULL: absent */
    ch_render_rule render; /* render.recorded = 0 in archives of an older extract */
    char truncate[8];      /* "none" | "left" | "right" ("none" when not recorded) */
    int64_t n_truncated;
} ch_archive_info;

typedef struct ch_archive_reader ch_archive_reader;

/* Open read-only with the MPI-IO driver on comm (collective); comm may be MPI_COMM_SELF. Checks
 * format name and version (CH_EFORMAT naming the file otherwise). */
int ch_archive_open_read(const char *path, MPI_Comm comm, ch_archive_reader **out);
void ch_archive_info_free(ch_archive_info *info);
int ch_archive_get_info(ch_archive_reader *r, ch_archive_info *info);
/* Rows [row0, row0+n) of every layer as f32 into dst [n, L, H, D] (independent I/O). */
int ch_archive_read_acts(ch_archive_reader *r, int64_t row0, int64_t n, float *dst);
/* Rows [row0, row0+n) of layers [l0, l0+nl) as f32 into dst [n, nl, H, D] (independent I/O):
 * a reader of a few layers touches only their [R,1,H,D] chunks. */
int ch_archive_read_acts_layers(ch_archive_reader *r, int64_t row0, int64_t n, int l0, int nl,
                                float *dst);
/* The same rows as the binary16 bits the archive stores, unconverted: dst [n, nl, H, D]. */
int ch_archive_read_acts_raw(ch_archive_reader *r, int64_t row0, int64_t n, int l0, int nl,
                             uint16_t *dst);
/* /hidden rows as f32 into dst [n, hidden_dim]; CH_EARG when the archive has none. */
int ch_archive_read_hidden(ch_archive_reader *r, int64_t row0, int64_t n, float *dst);
int ch_archive_read_n_tokens(ch_archive_reader *r, int64_t row0, int64_t n, int32_t *dst);
int ch_archive_read_labels(ch_archive_reader *r, int64_t row0, int64_t n, int32_t *dst);
int ch_archive_read_done(ch_archive_reader *r, int64_t row0, int64_t n, uint8_t *dst);
/* ids[i] / tasks[i] are malloc'd strings; free with ch_archive_free_strings. */
int ch_archive_read_ids(ch_archive_reader *r, int64_t row0, int64_t n, char **ids);
int ch_archive_read_tasks(ch_archive_reader *r, int64_t row0, int64_t n, char **tasks);
void ch_archive_free_strings(char **s, int64_t n);
/* The checks beyond what every read does (each read of /activations and /hidden already checks
 * the rows' CRC-32C against /row_crc): reads /hidden whole and recomputes the SHA-256 of the
 * per-row datasets against rows_sha256. *what says what was checked ("none": an archive from before
 * checksums). CH_EFORMAT naming the dataset and rows on a mismatch. */
int ch_archive_verify_checksums(ch_archive_reader *r, const char **what);
int ch_archive_close_read(ch_archive_reader *r);

#endif
