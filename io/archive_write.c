/* archive_write.c - the collective writer of the activation archive (layout: archive.h).
 *
 * All ranks open the file with the MPI-IO driver and every write is a collective H5Dwrite in
 * which each rank selects its own rows (or nothing). The order inside a write round is what
 * makes a crash safe: data datasets first, H5Fflush, then the rows' /done flags, H5Fflush. A row
 * is never marked done before its data is on disk, so --resume recomputes exactly the rows a
 * killed run did not finish. The /activations dataset is allocated without fill (writing 71 GB
 * of zeros first would double the cost of a real run); /done is filled with zeros. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "agree.h"
#include "archive.h"
#include "err.h"
#include "outfinish.h"
#include "h5util.h"
#include "mpicheck.h"
#include <hdf5_hl.h>
#include "numfmt.h"

struct ch_archive {
    hid_t f, acts, ids, tasks, labels, ntok, done, hidden, crc; /* crc: -1 with no_checksums */
    hid_t f16, id_t, task_t, xfer;
    int64_t n_rows;
    int L, H, D, hidden_dim, id_len, task_len;
    MPI_Comm comm;
    char *path;
    /* rows written but not yet flushed: their done flags wait for the next sync point */
    int64_t *pend0, *pendn;
    int npend, cappend;
    int64_t unsynced;  /* bytes written by all ranks since the last sync (same on every rank) */
    int64_t sync_every; /* bytes between syncs (CAPHEADS_SYNC_MIB, default 256 MiB) */
    uint32_t *crcbuf; /* the round's row checksums [n][L + 1] */
    size_t crc_cap;   /* elements */
};

/* Rows per chunk: about 4 MiB of one layer ([R, 1, H, D] binary16). */
static hsize_t chunk_rows(int64_t n, int H, int D) {
    hsize_t r = (hsize_t)((4u << 20) / ((size_t)H * D * 2));
    if (r < 1) r = 1;
    if (r > (hsize_t)n) r = (hsize_t)n;
    return r;
}

static void handles_close(ch_archive *a) {
    hid_t *hs[] = {&a->acts, &a->ids, &a->tasks, &a->labels, &a->ntok, &a->done, &a->hidden, &a->crc};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (*hs[i] >= 0) H5Dclose(*hs[i]), *hs[i] = -1;
    if (a->f16 >= 0) H5Tclose(a->f16), a->f16 = -1;
    if (a->id_t >= 0) H5Tclose(a->id_t), a->id_t = -1;
    if (a->task_t >= 0) H5Tclose(a->task_t), a->task_t = -1;
    if (a->xfer >= 0) H5Pclose(a->xfer), a->xfer = -1;
}

static void archive_free(ch_archive *a) {
    if (!a) return;
    free(a->pend0), free(a->pendn);
    free(a->crcbuf);
    handles_close(a);
    if (a->f >= 0) H5Fclose(a->f);
    free(a->path);
    free(a);
}

static int archive_new(const char *path, MPI_Comm comm, ch_archive **out) {
    ch_archive *a = NULL;
    CH_TRY(CH_ALLOC(a, 1, "archive"));
    a->f = a->acts = a->ids = a->tasks = a->labels = a->ntok = a->done = a->hidden = a->crc = -1;
    a->f16 = a->id_t = a->task_t = a->xfer = -1;
    a->comm = comm;
    /* every rank must decide to sync in the same round (the sync is collective): rank 0's
     * setting is the one, whatever the other ranks' environments say */
    const char *mib = getenv("CAPHEADS_SYNC_MIB");
    long long v = mib ? atoll(mib) : 256;
    a->sync_every = (int64_t)(v > 0 ? v : 0) << 20;
    if (MPI_Bcast(&a->sync_every, 1, MPI_INT64_T, 0, comm) != MPI_SUCCESS) {
        free(a);
        CH_FAIL(CH_EMPI, "%s: MPI_Bcast of the sync interval failed", path);
    }
    a->path = strdup(path);
    if (!a->path) {
        free(a);
        CH_FAIL(CH_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

static hid_t make_dset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                       const hsize_t *chunk, int fill_zero) {
    hid_t s = H5Screate_simple(rank, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE), d = -1;
    if (s >= 0 && p >= 0 && (!chunk || H5Pset_chunk(p, rank, chunk) >= 0) &&
        H5Pset_alloc_time(p, H5D_ALLOC_TIME_EARLY) >= 0 && H5Pset_obj_track_times(p, 0) >= 0 &&
        H5Pset_fill_time(p, fill_zero ? H5D_FILL_TIME_ALLOC : H5D_FILL_TIME_NEVER) >= 0)
        d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
    if (p >= 0) H5Pclose(p);
    if (s >= 0) H5Sclose(s);
    return d;
}

/* Small index datasets that name the axes (dimension scales, readable by xarray via h5netcdf). */
static int attach_scales(ch_archive *a) {
    const char *path = a->path;
    int rc = 0;
    const char *labels[4] = {"row", "layer", "head", "dim"};
    for (int i = 0; i < 4; i++) CH_H5(H5DSset_label(a->acts, (unsigned)i, labels[i]));
    int sizes[3] = {a->L, a->H, a->D};
    for (int i = 0; i < 3; i++) {
        hsize_t n = (hsize_t)sizes[i];
        hid_t d = make_dset(a->f, labels[i + 1], H5T_STD_I32LE, 1, &n, NULL, 1);
        if (d < 0) CH_FAIL_GOTO(fail, CH_EHDF5, "%s: cannot create scale '%s'", path, labels[i + 1]);
        int32_t *idx = malloc(sizeof(int32_t) * n);
        for (hsize_t j = 0; idx && j < n; j++) idx[j] = (int32_t)j;
        herr_t w = idx ? H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, a->xfer, idx) : -1;
        free(idx);
        if (w < 0 || H5DSset_scale(d, labels[i + 1]) < 0 || H5DSattach_scale(a->acts, d, (unsigned)(i + 1)) < 0) {
            H5Dclose(d);
            CH_FAIL_GOTO(fail, CH_EHDF5, "%s: cannot attach dimension scale '%s'", path, labels[i + 1]);
        }
        H5Dclose(d);
    }
fail:
    return rc;
}

static int open_handles(ch_archive *a) {
    const char *path = a->path;
    int rc = 0;
    CH_H5(a->acts = H5Dopen2(a->f, "activations", H5P_DEFAULT));
    CH_H5(a->ids = H5Dopen2(a->f, "ids", H5P_DEFAULT));
    CH_H5(a->tasks = H5Dopen2(a->f, "tasks", H5P_DEFAULT));
    CH_H5(a->labels = H5Dopen2(a->f, "labels", H5P_DEFAULT));
    CH_H5(a->ntok = H5Dopen2(a->f, "n_tokens", H5P_DEFAULT));
    CH_H5(a->done = H5Dopen2(a->f, "done", H5P_DEFAULT));
    if (a->hidden_dim > 0) CH_H5(a->hidden = H5Dopen2(a->f, "hidden", H5P_DEFAULT));
    if (H5Lexists(a->f, "row_crc", H5P_DEFAULT) > 0) CH_H5(a->crc = H5Dopen2(a->f, "row_crc", H5P_DEFAULT));
fail:
    return rc;
}

static int common_types(ch_archive *a) {
    const char *path = a->path;
    int rc = 0;
    CH_H5(a->f16 = ch_h5_f16_type());
    CH_H5(a->id_t = ch_h5_str_type((size_t)a->id_len));
    CH_H5(a->task_t = ch_h5_str_type((size_t)a->task_len));
    CH_H5(a->xfer = H5Pcreate(H5P_DATASET_XFER));
    CH_H5(H5Pset_dxpl_mpio(a->xfer, H5FD_MPIO_COLLECTIVE));
fail:
    return rc;
}

static hid_t mpio_fapl(MPI_Comm comm) {
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    if (p >= 0 && H5Pset_fapl_mpio(p, comm, MPI_INFO_NULL) < 0) {
        H5Pclose(p);
        return -1;
    }
    /* all ranks hold identical metadata: write it collectively too */
    if (p >= 0) H5Pset_all_coll_metadata_ops(p, 1), H5Pset_coll_metadata_write(p, 1);
    /* HDF5 1.10's file format checksums its own structures (superblock, object headers, chunk
     * indexes): a damaged one is an error HDF5 reports, not one it reads past a buffer on */
    if (p >= 0 && H5Pset_libver_bounds(p, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

/* The archive's size, known from its shape: create refuses up front when it cannot fit
 * (ch_out_space_check), as a full disk discovered half-way through a collective write is the one
 * failure parallel HDF5 cannot always report cleanly. */
static double archive_bytes(const ch_archive_meta *m) {
    return (double)m->n_rows * ((double)m->n_layers * m->n_heads * m->head_dim * 2 + (double)m->hidden_dim * 2 +
                                m->id_len + m->task_len + 9) + (1 << 20);
}

/* The root group keeps its links and attributes in its own object header, which the 1.10 format
 * checksums; past 8 of either HDF5 moves them to "dense" heap blocks that it reads without one. */
static hid_t compact_root(void) {
    hid_t p = H5Pcreate(H5P_FILE_CREATE);
    if (p >= 0 && (H5Pset_link_phase_change(p, 256, 192) < 0 || H5Pset_attr_phase_change(p, 256, 192) < 0 ||
                   H5Pset_obj_track_times(p, 0) < 0)) { /* no clock in the bytes: 1 and N ranks write the same file */
        H5Pclose(p);
        return -1;
    }
    return p;
}

int ch_archive_create(const char *path, const ch_archive_meta *m, MPI_Comm comm, ch_archive **out) {
    *out = NULL;
    if (m->n_rows < 1) CH_FAIL(CH_EARG, "%s: an archive needs at least one row", path);
    ch_archive *a;
    CH_TRY(archive_new(path, comm, &a));
    a->n_rows = m->n_rows, a->L = m->n_layers, a->H = m->n_heads, a->D = m->head_dim;
    a->hidden_dim = m->hidden_dim, a->id_len = m->id_len, a->task_len = m->task_len;
    int rc = 0;
    hid_t fapl = -1, fcpl = -1;
    CH_TRY_GOTO(ch_out_space_check(comm, path, archive_bytes(m)), fail_early);
    CH_TRY_GOTO(common_types(a), fail);
    CH_H5(fapl = mpio_fapl(comm));
    CH_H5(fcpl = compact_root());
    a->f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    if (a->f < 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot create the archive (directory missing or read-only?)", path);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), fail);
    hsize_t N = (hsize_t)m->n_rows;
    hsize_t dims[4] = {N, (hsize_t)a->L, (hsize_t)a->H, (hsize_t)a->D};
    hsize_t chunk[4] = {chunk_rows(m->n_rows, a->H, a->D), 1, (hsize_t)a->H, (hsize_t)a->D};
    /* Each creation is collective: ranks agree after every step, so a rank that failed (a full
     * disk hits the rank that writes the fill values) never leaves the others inside the next
     * collective call. */
#define STEP(expr)                                                                                \
    do {                                                                                          \
        if ((expr) < 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: %s failed (file system full?)", path, #expr); \
        CH_TRY_GOTO(ch_mpi_agree(comm, rc), fail);                                               \
    } while (0)
    STEP(a->acts = make_dset(a->f, "activations", a->f16, 4, dims, chunk, 0));
    STEP(a->ids = make_dset(a->f, "ids", a->id_t, 1, &N, NULL, 1));
    STEP(a->tasks = make_dset(a->f, "tasks", a->task_t, 1, &N, NULL, 1));
    STEP(a->labels = make_dset(a->f, "labels", H5T_STD_I32LE, 1, &N, NULL, 1));
    STEP(a->ntok = make_dset(a->f, "n_tokens", H5T_STD_I32LE, 1, &N, NULL, 1));
    STEP(a->done = make_dset(a->f, "done", H5T_STD_U8LE, 1, &N, NULL, 1));
    if (a->hidden_dim > 0) {
        hsize_t hd[2] = {N, (hsize_t)a->hidden_dim};
        STEP(a->hidden = make_dset(a->f, "hidden", a->f16, 2, hd, NULL, 0));
    }
    if (!m->no_checksums) {
        hsize_t cd[2] = {N, (hsize_t)a->L + 1};
        STEP(a->crc = make_dset(a->f, "row_crc", H5T_STD_U32LE, 2, cd, NULL, 1));
    }
#undef STEP
    CH_TRY_GOTO(ch_mpi_agree(comm, attach_scales(a)), fail);
    char created[32];
    /* SOURCE_DATE_EPOCH (the reproducible-builds convention) pins the one varying attribute, so
     * two runs can be compared byte for byte */
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t now = sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    CH_H5(ch_h5_put_str(a->f, "format", CH_ARCHIVE_FORMAT));
    CH_H5(ch_h5_put_i64(a->f, "format_version", CH_ARCHIVE_VERSION));
    CH_H5(ch_h5_put_str(a->f, "model_config", m->model_config));
    CH_H5(ch_h5_put_str(a->f, "model_dir", m->model_dir));
    CH_H5(ch_h5_put_str(a->f, "tokenizer_sha256", m->tokenizer_sha256));
    CH_H5(ch_h5_put_str(a->f, "weights_sha256", m->weights_sha256));
    CH_H5(ch_h5_put_str(a->f, "pool", m->pool));
    CH_H5(ch_h5_put_str(a->f, "input_path", m->input_path));
    CH_H5(ch_h5_put_str(a->f, "input_sha256", m->input_sha256));
    CH_H5(ch_h5_put_i64(a->f, "n_records", m->n_rows));
    CH_H5(ch_h5_put_str(a->f, "capability_names", CH_CAP_JSON));
    CH_H5(ch_h5_put_str(a->f, "command_line", m->command_line));
    CH_H5(ch_h5_put_str(a->f, "backend", m->backend));
    CH_H5(ch_h5_put_str(a->f, "precision", m->precision));
    CH_H5(ch_h5_put_i64(a->f, "batch_tokens", m->batch_tokens));
    CH_H5(ch_h5_put_i64(a->f, "max_tokens", m->max_tokens));
    if (m->render) CH_TRY_GOTO(ch_render_rule_write(a->f, path, m->render), fail);
    CH_H5(ch_h5_put_str(a->f, "truncate", m->truncate ? m->truncate : "none"));
    CH_H5(ch_h5_put_i64(a->f, "n_truncated", m->n_truncated));
    CH_H5(ch_h5_put_str(a->f, "created", created));
    CH_H5(ch_h5_put_i64(a->f, "complete", 0));
    CH_H5(H5Fflush(a->f, H5F_SCOPE_GLOBAL));
    H5Pclose(fapl);
    H5Pclose(fcpl);
    *out = a;
    return 0;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
fail_early:
    archive_free(a);
    return rc;
}

/* Compare a stored attribute with the expected value; CH_EMISMATCH names both. */
static int expect_attr(ch_archive *a, const char *name, const char *want) {
    char *have = NULL;
    if (!want) want = ""; /* what ch_h5_put_str stores for NULL */
    CH_TRY(ch_h5_get_str(a->f, name, &have));
    if (!have || strcmp(have, want)) {
        int rc = ch_err_set(CH_EMISMATCH, __FILE__, __LINE__,
                            "%s: cannot resume: its %s is '%.60s%s' but this run's is '%.60s%s'", a->path, name,
                            have ? have : "(none)", have && strlen(have) > 60 ? "..." : "", want,
                            strlen(want) > 60 ? "..." : "");
        free(have);
        return rc;
    }
    free(have);
    return 0;
}

/* The same for an integer attribute recording an option the batch plan depends on. */
static int expect_option(ch_archive *a, const char *name, const char *option, int64_t want) {
    int64_t have = 0;
    int found = 0;
    CH_TRY(ch_h5_get_i64(a->f, name, &have, &found));
    if (!found)
        CH_FAIL(CH_EMISMATCH, "%s: cannot resume: the archive does not record its %s (written by an older "
                "capheads), so its batch plan is unknown; extract it anew", a->path, option);
    if (have != want)
        CH_FAIL(CH_EMISMATCH, "%s: cannot resume: it was written with %s %lld but this run has %s %lld "
                "(the batch plan, and with it every row's bytes, depends on it); rerun with %s %lld",
                a->path, option, (long long)have, option, (long long)want, option, (long long)have);
    return 0;
}

/* The rows' tokens depend on the rendering rule and, when records are cut, on the cut and its
 * length: a resume under another one would mix two kinds of rows in one archive. */
static int expect_tokens(ch_archive *a, const ch_archive_meta *m) {
    ch_render_rule have;
    CH_TRY(ch_render_rule_read(a->f, a->path, &have));
    if (m->render) {
        if (!have.recorded)
            CH_FAIL(CH_EMISMATCH, "%s: cannot resume: no render rule recorded (an older extract made it): extract it "
                    "anew", a->path);
        if (strcmp(have.template_name, m->render->template_name) || strcmp(have.span, m->render->span) ||
            strcmp(have.cue, m->render->cue)) {
            char dh[400], dw[400];
            ch_render_rule_describe(&have, dh, sizeof dh);
            ch_render_rule_describe(m->render, dw, sizeof dw);
            CH_FAIL(CH_EMISMATCH, "%s: cannot resume: it was rendered with %s but this run renders with %s", a->path,
                    dh, dw);
        }
    }
    char *tr = NULL;
    CH_TRY(ch_h5_get_str(a->f, "truncate", &tr));
    const char *want = m->truncate ? m->truncate : "none";
    char got[16];
    snprintf(got, sizeof got, "%s", tr ? tr : "none");
    free(tr);
    if (strcmp(got, want))
        CH_FAIL(CH_EMISMATCH, "%s: cannot resume: it was written with --truncate %s but this run has --truncate %s",
                a->path, got, want);
    if (strcmp(want, "none")) CH_TRY(expect_option(a, "max_tokens", "--max-tokens", m->max_tokens));
    return 0;
}

int ch_archive_open_resume(const char *path, const ch_archive_meta *m, MPI_Comm comm, ch_archive **out) {
    *out = NULL;
    ch_archive *a;
    CH_TRY(archive_new(path, comm, &a));
    a->n_rows = m->n_rows, a->L = m->n_layers, a->H = m->n_heads, a->D = m->head_dim;
    a->hidden_dim = m->hidden_dim;
    int rc = 0;
    hid_t fapl = -1, s = -1, t = -1;
    CH_H5(fapl = mpio_fapl(comm));
    H5E_BEGIN_TRY { a->f = H5Fopen(path, H5F_ACC_RDWR, fapl); }
    H5E_END_TRY;
    if (a->f < 0) CH_FAIL_GOTO(fail, CH_EIO, "%s: cannot open for --resume (missing, not HDF5, or read-only)", path);
    char *fmt = NULL;
    CH_TRY_GOTO(ch_h5_get_str(a->f, "format", &fmt), fail);
    int ok = fmt && !strcmp(fmt, CH_ARCHIVE_FORMAT);
    free(fmt);
    if (!ok) CH_FAIL_GOTO(fail, CH_EFORMAT, "%s: not a capheads activation archive", path);
    CH_TRY_GOTO(expect_attr(a, "model_config", m->model_config), fail);
    CH_TRY_GOTO(expect_attr(a, "tokenizer_sha256", m->tokenizer_sha256), fail);
    /* other weights under the same config.json and tokenizer (a fine-tune, another revision) */
    CH_TRY_GOTO(expect_attr(a, "weights_sha256", m->weights_sha256), fail);
    CH_TRY_GOTO(expect_attr(a, "pool", m->pool), fail);
    CH_TRY_GOTO(expect_attr(a, "input_sha256", m->input_sha256), fail);
    /* the backends agree to rounding, not to the bit: one archive is computed by one of them */
    CH_TRY_GOTO(expect_attr(a, "backend", m->backend), fail);
    /* bf16 and f32 Linear inputs differ by ~1e-2: never mixed in one archive either */
    CH_TRY_GOTO(expect_attr(a, "precision", m->precision), fail);
    CH_TRY_GOTO(expect_option(a, "batch_tokens", "--batch-tokens", m->batch_tokens), fail);
    /* max_tokens only refuses long records unless they are cut to it (expect_tokens compares it then) */
    CH_TRY_GOTO(expect_tokens(a, m), fail);
    if (m->hidden_dim > 0 && H5Lexists(a->f, "hidden", H5P_DEFAULT) <= 0)
        CH_FAIL_GOTO(fail, CH_EMISMATCH, "%s: cannot resume with --hidden: the archive was made without it", path);
    if (m->hidden_dim == 0 && H5Lexists(a->f, "hidden", H5P_DEFAULT) > 0)
        CH_FAIL_GOTO(fail, CH_EMISMATCH, "%s: cannot resume without --hidden: the archive was made with it", path);
    CH_TRY_GOTO(open_handles(a), fail);
    hsize_t dims[4];
    CH_H5(s = H5Dget_space(a->acts));
    CH_H5(H5Sget_simple_extent_dims(s, dims, NULL));
    if (dims[0] != (hsize_t)m->n_rows || dims[1] != (hsize_t)m->n_layers || dims[2] != (hsize_t)m->n_heads ||
        dims[3] != (hsize_t)m->head_dim)
        CH_FAIL_GOTO(fail, CH_EMISMATCH, "%s: cannot resume: shape [%llu, %llu, %llu, %llu] differs from this run's", path,
                     (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                     (unsigned long long)dims[3]);
    /* string widths come from the file: the corpus is the same (hash checked) */
    CH_H5(t = H5Dget_type(a->ids));
    a->id_len = (int)H5Tget_size(t);
    H5Tclose(t), t = -1;
    CH_H5(t = H5Dget_type(a->tasks));
    a->task_len = (int)H5Tget_size(t);
    CH_TRY_GOTO(common_types(a), fail);
    CH_H5(ch_h5_put_i64(a->f, "complete", 0));
    H5Sclose(s), H5Tclose(t), H5Pclose(fapl);
    *out = a;
    return 0;
fail:
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (fapl >= 0) H5Pclose(fapl);
    archive_free(a);
    return rc;
}

/* Collective (n may be 0): rows [row0, row0+n) of d, all of them, or of one layer (layer >= 0, /activations
 * only), from buf laid out as the selection ([n, ...], [n, 1, H, D] for a layer). */
static int write_slab(ch_archive *a, hid_t d, hid_t mtype, int64_t row0, int64_t n, int layer, const void *buf) {
    const char *path = a->path;
    int rc = 0;
    hid_t fs = -1, ms = -1;
    CH_H5(fs = H5Dget_space(d));
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[4], start[4] = {0}, count[4];
    CH_H5(H5Sget_simple_extent_dims(fs, dims, NULL));
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    start[0] = (hsize_t)row0, count[0] = (hsize_t)n;
    if (layer >= 0) start[1] = (hsize_t)layer, count[1] = 1;
    if (n > 0) {
        CH_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        CH_H5(ms = H5Screate_simple(rank, count, NULL));
    } else {
        hsize_t one = 1;
        CH_H5(H5Sselect_none(fs));
        CH_H5(ms = H5Screate_simple(1, &one, NULL));
        CH_H5(H5Sselect_none(ms));
    }
    if (H5Dwrite(d, mtype, ms, fs, a->xfer, buf) < 0)
        CH_FAIL_GOTO(fail, CH_EIO, "%s: writing rows %lld..%lld failed (disk full or file system error?)", path,
                     (long long)row0, (long long)(row0 + n));
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static int pack_strings(const char *const *s, int64_t n, int len, char **out) {
    CH_TRY(CH_ALLOC(*out, (size_t)(n ? n : 1) * (size_t)len, "string column"));
    for (int64_t i = 0; i < n; i++) {
        size_t l = s && s[i] ? strlen(s[i]) : 0;
        if (l > (size_t)len) CH_FAIL(CH_EINTERNAL, "string '%s' longer than its column (%d)", s[i], len);
        if (l) memcpy(*out + (size_t)i * len, s[i], l);
    }
    return 0;
}

/* Sync point (collective): flush everything written so far, then write the done flags of the
 * rows that flush made durable, in one collective write of each rank's union of ranges. The
 * flags themselves reach the disk at the next sync point or at close. */
static int sync_and_mark(ch_archive *a) {
    const char *path = a->path;
    int rc = 0;
    hid_t fs = -1, ms = -1;
    static const uint8_t none[1];
    uint8_t *ones = NULL;
    if (H5Fflush(a->f, H5F_SCOPE_GLOBAL) < 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: flush failed (disk full?)", path);
    CH_TRY_GOTO(ch_mpi_agree(a->comm, rc), fail);
    /* From here a local failure still joins the collective write, with an empty selection, so
     * that no rank waits forever; the union of the pending ranges is what gets written (rows
     * written twice, as a retried round may, count once). */
    hssize_t total = 0;
    if ((fs = H5Dget_space(a->done)) < 0 || H5Sselect_none(fs) < 0)
        rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: HDF5 dataspace of /done failed", path);
    for (int i = 0; !rc && i < a->npend; i++) {
        hsize_t st = (hsize_t)a->pend0[i], cnt = (hsize_t)a->pendn[i];
        if (H5Sselect_hyperslab(fs, H5S_SELECT_OR, &st, NULL, &cnt, NULL) < 0)
            rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: selecting done rows failed", path);
    }
    if (!rc && (total = H5Sget_select_npoints(fs)) < 0)
        rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: counting done rows failed", path);
    if (!rc && total && !(ones = malloc((size_t)total))) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
    if (ones) memset(ones, 1, (size_t)total);
    hsize_t mn = (hsize_t)(!rc && total ? total : 1);
    if ((ms = H5Screate_simple(1, &mn, NULL)) < 0 && !rc)
        rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: HDF5 memory space failed", path);
    if (rc || !total) { /* nothing of ours to write, but the write is collective */
        if (fs >= 0) H5Sselect_none(fs);
        if (ms >= 0) H5Sselect_none(ms);
    }
    if (fs < 0 || ms < 0 || H5Dwrite(a->done, H5T_NATIVE_UINT8, ms, fs, a->xfer, ones ? (const void *)ones : none) < 0) {
        if (!rc) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: writing done flags failed", path);
    }
    a->npend = 0;
    a->unsynced = 0;
fail:
    free(ones);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

void ch_archive_pack_f16(const float *src, int64_t n, int L, size_t hd, uint16_t *dst) {
    size_t width = (size_t)L * hd;
#pragma omp parallel for schedule(static) if (n * (int64_t)width > 65536)
    for (int64_t i = 0; i < n; i++)
        for (int l = 0; l < L; l++) ch_h5_narrow_f16(src + (size_t)i * width + l * hd, dst + ((size_t)l * n + i) * hd, hd);
}

/* The round's row checksums: CRC-32C of each row's binary16 bytes of each layer, and of its
 * /hidden row in the last column (0 without --hidden). Stored in /row_crc [N, L + 1] beside the
 * rows, so that a reader checks exactly the rows and layers it reads (ch_archive_crc_rows). */
static int row_checksums(ch_archive *a, const uint16_t *half, const uint16_t *hhalf, int64_t n) {
    const size_t cols = (size_t)a->L + 1, hd = (size_t)a->H * a->D, need = (size_t)n * cols;
    if (need > a->crc_cap) {
        uint32_t *p = realloc(a->crcbuf, sizeof *p * need);
        if (!p) CH_FAIL(CH_ENOMEM, "out of memory for %zu row checksums", need);
        a->crcbuf = p, a->crc_cap = need;
    }
#pragma omp parallel for schedule(static) if (n * (int64_t)hd * a->L > 65536)
    for (int64_t i = 0; i < n; i++) {
        for (int l = 0; l < a->L; l++)
            a->crcbuf[(size_t)i * cols + l] = ch_crc32_f16(half + ((size_t)l * n + i) * hd, hd);
        a->crcbuf[(size_t)i * cols + a->L] =
            hhalf ? ch_crc32_f16(hhalf + (size_t)i * a->hidden_dim, (size_t)a->hidden_dim) : 0;
    }
    return 0;
}

int ch_archive_write_rows(ch_archive *a, int64_t row0, int64_t nrows, const uint16_t *acts, const uint16_t *hidden,
                          const ch_archive_rows *rows) {
    const char *path = a->path;
    int rc = 0;
    static const ch_archive_rows no_rows;
    if (!rows) rows = &no_rows;
    size_t width = (size_t)a->L * a->H * a->D;
    char *idbuf = NULL, *taskbuf = NULL;
    /* a bad range is a local failure: still join the collectives below (with nothing to write)
     * so the other ranks learn of it instead of waiting forever */
    if (nrows < 0 || row0 < 0 || row0 + nrows > a->n_rows) {
        rc = ch_err_set(CH_EINTERNAL, __FILE__, __LINE__, "%s: rows %lld..%lld outside the archive", path,
                        (long long)row0, (long long)(row0 + nrows));
        row0 = 0, nrows = 0;
    }
    if (!rc && nrows > 0 && (!acts || (a->hidden_dim > 0 && !hidden)))
        rc = ch_err_set(CH_EINTERNAL, __FILE__, __LINE__, "%s: rows %lld..%lld come without their %s", path,
                        (long long)row0, (long long)(row0 + nrows), acts ? "hidden states" : "activations");
    if (!rc) rc = pack_strings(rows->ids, nrows, a->id_len, &idbuf);
    if (!rc) rc = pack_strings(rows->tasks, nrows, a->task_len, &taskbuf);
    /* a local failure must still join the collectives below: write nothing in that case */
    int64_t n = rc ? 0 : nrows;
    /* The rows come narrowed and layer-major, acts[l][i][H*D] (the device made them so): written
     * by one collective write per layer, a layer's rows are one contiguous buffer for one
     * contiguous stretch of its chunk, which MPI-IO copies in one piece. Each rank's part of a
     * write being contiguous is also why ch_mpi_init picks the fcoll that does no aggregation
     * (mpi/init.h). */
    size_t hd = (size_t)a->H * a->D;
    if (a->crc >= 0 && n > 0 && !rc) rc = row_checksums(a, acts, hidden, n);
    if (rc) n = 0;
    /* every collective write is joined whatever happened locally (n is 0 then); a rank whose
     * buffer could not be made hands HDF5 a dummy one for its empty selection */
    static const uint64_t none[1];
#define BUF(p) ((p) && n ? (const void *)(p) : (const void *)none)
    int failed = rc;
    for (int l = 0; l < a->L; l++) /* L collective writes: every rank makes all of them */
        failed |= write_slab(a, a->acts, a->f16, row0, n, l, BUF(acts ? acts + (size_t)l * n * hd : NULL));
    if (a->hidden_dim > 0) failed |= write_slab(a, a->hidden, a->f16, row0, n, -1, BUF(hidden));
    if (a->crc >= 0) failed |= write_slab(a, a->crc, H5T_NATIVE_UINT32, row0, n, -1, BUF(a->crcbuf));
    failed |= write_slab(a, a->ids, a->id_t, row0, n, -1, BUF(idbuf));
    failed |= write_slab(a, a->tasks, a->task_t, row0, n, -1, BUF(taskbuf));
    failed |= write_slab(a, a->labels, H5T_NATIVE_INT32, row0, n, -1, BUF(rows->labels));
    failed |= write_slab(a, a->ntok, H5T_NATIVE_INT32, row0, n, -1, BUF(rows->n_tokens));
#undef BUF
    /* room to remember the rows (their done flags wait for a sync that made their data durable);
     * made before the round's verdict so that running out of memory is part of it */
    if (!failed && n > 0 && a->npend == a->cappend) {
        int nc = a->cappend ? 2 * a->cappend : 16;
        int64_t *p0 = realloc(a->pend0, sizeof *p0 * nc);
        if (p0) a->pend0 = p0;
        int64_t *pn = p0 ? realloc(a->pendn, sizeof *pn * nc) : NULL;
        if (pn) a->pendn = pn, a->cappend = nc;
        else failed = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory");
    }
    int64_t v[2] = {failed != 0, n * (int64_t)(width + a->hidden_dim) * 2};
    if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_SUM, a->comm) != MPI_SUCCESS) v[0] = 1;
    if (v[0]) {
        rc = failed ? (rc ? rc : ch_err_code() ? ch_err_code() : CH_EIO)
                    : ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: another rank failed to write its rows", path);
        goto out;
    }
    /* only a round that succeeded on every rank gets its rows marked, later */
    if (n > 0) a->pend0[a->npend] = row0, a->pendn[a->npend++] = n;
    /* Syncing every round would make a small-batch run wait on the disk (one fsync per round on
     * every rank under MPI-IO); syncing every sync_every bytes keeps the cost near a plain write
     * while a crash loses at most that much work, recomputed on --resume. */
    a->unsynced += v[1];
    if (a->unsynced >= a->sync_every) rc = sync_and_mark(a);
out:
    free(idbuf), free(taskbuf);
    return rc;
}

int ch_archive_done(ch_archive *a, int64_t row0, int64_t n, uint8_t *mask) {
    const char *path = a->path;
    int rc = 0;
    hid_t fs = -1, ms = -1;
    if (n == 0) return 0;
    CH_H5(fs = H5Dget_space(a->done));
    hsize_t start = (hsize_t)row0, count = (hsize_t)n;
    CH_H5(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL));
    CH_H5(ms = H5Screate_simple(1, &count, NULL));
    CH_H5(H5Dread(a->done, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, mask));
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

int ch_archive_close(ch_archive *a) {
    if (!a) return 0;
    int rc = 0, rank = 0, size = 1;
    CH_MPI_TRY(MPI_Comm_rank(a->comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(a->comm, &size));
    /* the last rows' data is synced, then their flags written (the close flushes those) */
    int src = sync_and_mark(a);
    /* count done rows: each rank reads its share of the mask */
    int64_t lo = a->n_rows * rank / size, hi = a->n_rows * (rank + 1) / size, mine = 0, all = 0;
    uint8_t *mask = malloc((size_t)(hi - lo) + 1);
    if (!mask || ch_archive_done(a, lo, hi - lo, mask)) mine = -a->n_rows - 1; /* poison the sum */
    for (int64_t i = 0; mask && mine >= 0 && i < hi - lo; i++) mine += mask[i];
    free(mask);
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT64_T, MPI_SUM, a->comm) != MPI_SUCCESS) all = -1;
    const char *path = a->path;
    if (all == a->n_rows && !src) {
        char hex[65] = "";
        int drc = rank == 0 ? ch_archive_rows_sha256(a->f, hex) : 0;
        CH_TRY_GOTO(ch_mpi_agree(a->comm, drc), fail);
        if (MPI_Bcast(hex, sizeof hex, MPI_CHAR, 0, a->comm) != MPI_SUCCESS)
            CH_FAIL_GOTO(fail, CH_EMPI, "%s: MPI_Bcast of the rows digest failed", path);
        CH_H5(ch_h5_put_str(a->f, "rows_sha256", hex));
        CH_H5(ch_h5_put_i64(a->f, "complete", 1));
    }
    rc = src;
fail:
    handles_close(a);
    if (H5Fclose(a->f) < 0 && !rc) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: closing failed", a->path);
    a->f = -1;
    archive_free(a);
    return rc;
}
