/* archive_read.c - the reading half of io/archive.h.
 *
 * The file is opened with the MPI-IO driver on the caller's communicator (collective open), and
 * every read after that is an independent hyperslab read, so ranks stream their own row blocks
 * at their own pace. binary16 is read raw (memory type = the file's 16-bit float type, no HDF5
 * conversion) and widened with ch_h5_widen_f16 (io/h5util.h). Measured (2026-11-24, 2-core
 * shared box, 131M values, 5 repetitions): HDF5 1.10 converting to H5T_NATIVE_FLOAT took
 * 3.9-5.5 s, the raw read plus the widening 0.11-0.17 s: about 32x faster (HDF5's soft
 * conversion of a non-native float type works element by element through its generic path). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5_hl.h>

#include "archive.h"
#include "err.h"
#include "h5util.h"

#define RD_H5(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot read it (%s): a damaged file?", r->path, #call); \
    } while (0)

struct ch_archive_reader {
    char *path;
    hid_t file, acts, ids, labels, tasks, done, hidden; /* hidden: -1 when absent */
    hid_t crc;          /* /row_crc [N, L + 1], -1 in archives from before checksums */
    uint32_t *crcbuf;   /* the checksums of the rows being read */
    size_t crc_cap;
    hid_t f16; /* memory type for raw binary16 reads */
    int64_t n_rows;
    int L, H, D, hidden_dim;
    size_t id_len, task_len;
};

/* A root string attribute (fixed or variable length) as a malloc'd string. */
static int attr_string(ch_archive_reader *r, const char *name, int required, char **out) {
    int rc = ch_h5_get_str(r->file, name, out);
    if (rc) return ch_err_wrap("%s: ", r->path);
    if (!*out && required) CH_FAIL(CH_EFORMAT, "%s: missing root attribute '%s'", r->path, name);
    return 0;
}

static int attr_int64(ch_archive_reader *r, const char *name, int required, int64_t dflt, int64_t *out) {
    *out = dflt;
    htri_t ex = H5Aexists(r->file, name);
    RD_H5(ex);
    if (!ex) {
        if (required) CH_FAIL(CH_EFORMAT, "%s: missing root attribute '%s'", r->path, name);
        return 0;
    }
    hid_t a = H5Aopen(r->file, name, H5P_DEFAULT);
    if (a < 0) CH_FAIL(CH_EHDF5, "%s: cannot open attribute '%s'", r->path, name);
    hid_t t = H5Aget_type(a);
    int ok = t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    if (!ok) CH_FAIL(CH_EFORMAT, "%s: attribute '%s' is not a readable integer", r->path, name);
    return 0;
}

static int open_1d(ch_archive_reader *r, const char *name, hid_t *out) {
    *out = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (*out < 0) CH_FAIL(CH_EFORMAT, "%s: missing dataset /%s", r->path, name);
    hid_t s = H5Dget_space(*out);
    hsize_t n = 0;
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (nd == 1) H5Sget_simple_extent_dims(s, &n, NULL);
    if (s >= 0) H5Sclose(s);
    if (nd != 1 || (int64_t)n != r->n_rows)
        CH_FAIL(CH_EFORMAT, "%s: /%s should be 1-D with %lld rows", r->path, name,
                (long long)r->n_rows);
    return 0;
}

static int string_len(ch_archive_reader *r, hid_t d, const char *name, size_t *len) {
    hid_t t = H5Dget_type(d);
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0;
    *len = ok ? H5Tget_size(t) : 0;
    if (t >= 0) H5Tclose(t);
    if (!ok) CH_FAIL(CH_EFORMAT, "%s: /%s should hold fixed-length strings", r->path, name);
    return 0;
}

static int open_all(ch_archive_reader *r) {
    char *fmt = NULL;
    CH_TRY(attr_string(r, "format", 1, &fmt));
    int bad = strcmp(fmt, CH_ARCHIVE_FORMAT) != 0;
    if (bad) {
        int rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                            "%s: format is '%s', expected '%s' (not an activation archive)",
                            r->path, fmt, CH_ARCHIVE_FORMAT);
        free(fmt);
        return rc;
    }
    free(fmt);
    int64_t ver = 0;
    CH_TRY(attr_int64(r, "format_version", 1, 0, &ver));
    if (ver != CH_ARCHIVE_VERSION)
        CH_FAIL(CH_EFORMAT, "%s: format_version %lld, this build reads version %d", r->path,
                (long long)ver, CH_ARCHIVE_VERSION);

    r->acts = H5Dopen2(r->file, "activations", H5P_DEFAULT);
    if (r->acts < 0) CH_FAIL(CH_EFORMAT, "%s: missing dataset /activations", r->path);
    hid_t s = H5Dget_space(r->acts);
    hsize_t dims[4] = {0};
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (nd == 4) H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0) H5Sclose(s);
    if (nd != 4) CH_FAIL(CH_EFORMAT, "%s: /activations should have 4 dimensions [N,L,H,D]", r->path);
    r->n_rows = (int64_t)dims[0];
    r->L = (int)dims[1], r->H = (int)dims[2], r->D = (int)dims[3];
    hid_t t = H5Dget_type(r->acts);
    int is16 = t >= 0 && H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 2;
    size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    if (is16) {
        H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
        is16 = spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
               H5Tget_order(t) == H5T_ORDER_LE && H5Tget_ebias(t) == 15;
    }
    if (is16) r->f16 = H5Tcopy(t);
    if (t >= 0) H5Tclose(t);
    if (!is16) CH_FAIL(CH_EFORMAT, "%s: /activations is not little-endian IEEE binary16", r->path);

    CH_TRY(open_1d(r, "ids", &r->ids));
    CH_TRY(open_1d(r, "labels", &r->labels));
    CH_TRY(open_1d(r, "tasks", &r->tasks));
    CH_TRY(open_1d(r, "done", &r->done));
    CH_TRY(string_len(r, r->ids, "ids", &r->id_len));
    CH_TRY(string_len(r, r->tasks, "tasks", &r->task_len));
    if (H5Lexists(r->file, "hidden", H5P_DEFAULT) > 0) {
        r->hidden = H5Dopen2(r->file, "hidden", H5P_DEFAULT);
        hid_t hs = r->hidden >= 0 ? H5Dget_space(r->hidden) : -1;
        hsize_t hd[2] = {0, 0};
        int hn = hs >= 0 ? H5Sget_simple_extent_ndims(hs) : -1;
        if (hn == 2) H5Sget_simple_extent_dims(hs, hd, NULL);
        if (hs >= 0) H5Sclose(hs);
        if (hn != 2 || (int64_t)hd[0] != r->n_rows)
            CH_FAIL(CH_EFORMAT, "%s: /hidden should be [%lld, hidden]", r->path, (long long)r->n_rows);
        r->hidden_dim = (int)hd[1];
    }
    if (H5Lexists(r->file, "row_crc", H5P_DEFAULT) > 0) {
        r->crc = H5Dopen2(r->file, "row_crc", H5P_DEFAULT);
        hid_t cs = r->crc >= 0 ? H5Dget_space(r->crc) : -1;
        hsize_t cd[2] = {0, 0};
        int cn = cs >= 0 ? H5Sget_simple_extent_ndims(cs) : -1;
        if (cn == 2) H5Sget_simple_extent_dims(cs, cd, NULL);
        if (cs >= 0) H5Sclose(cs);
        if (cn != 2 || (int64_t)cd[0] != r->n_rows || (int64_t)cd[1] != r->L + 1)
            CH_FAIL(CH_EFORMAT, "%s: /row_crc should be [%lld, %d]", r->path, (long long)r->n_rows, r->L + 1);
    }
    return 0;
}

int ch_archive_open_read(const char *path, MPI_Comm comm, ch_archive_reader **out) {
    *out = NULL;
    ch_archive_reader *r;
    CH_TRY(CH_ALLOC(r, 1, "archive reader"));
    r->file = r->acts = r->ids = r->labels = r->tasks = r->done = r->f16 = r->hidden = r->crc = -1;
    size_t n = strlen(path);
    int rc = ch_malloc((void **)&r->path, n + 1, "archive path");
    if (rc) {
        free(r);
        return rc;
    }
    memcpy(r->path, path, n + 1);
    /* Turn off HDF5's own error stack printing: library code never prints; our messages say it. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: cannot set up the MPI-IO driver", path);
        ch_archive_close_read(r);
        return rc;
    }
    r->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (r->file < 0) {
        rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open as an HDF5 file", path);
        ch_archive_close_read(r);
        return rc;
    }
    rc = open_all(r);
    if (rc) {
        ch_archive_close_read(r);
        return rc;
    }
    *out = r;
    return 0;
}

int ch_archive_close_read(ch_archive_reader *r) {
    if (!r) return 0;
    hid_t ds[] = {r->acts, r->ids, r->labels, r->tasks, r->done, r->hidden, r->crc};
    int bad = 0;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        if (ds[i] >= 0 && H5Dclose(ds[i]) < 0) bad = 1;
    free(r->crcbuf);
    if (r->f16 >= 0) H5Tclose(r->f16);
    if (r->file >= 0 && H5Fclose(r->file) < 0) bad = 1;
    int rc = bad ? ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: closing failed", r->path) : 0;
    free(r->path);
    free(r);
    return rc;
}

void ch_archive_info_free(ch_archive_info *info) {
    if (!info) return;
    char **s[] = {&info->pool, &info->model_config, &info->tokenizer_sha256, &info->input_sha256,
                  &info->input_path, &info->command_line, &info->created, &info->model_dir, &info->backend,
                  &info->precision, &info->rows_sha256, &info->weights_sha256};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        free(*s[i]);
        *s[i] = NULL;
    }
}

int ch_archive_get_info(ch_archive_reader *r, ch_archive_info *info) {
    memset(info, 0, sizeof *info);
    info->n_rows = r->n_rows;
    info->n_layers = r->L, info->n_heads = r->H, info->head_dim = r->D;
    info->hidden_dim = r->hidden_dim;
    int64_t complete = 0;
    int rc = 0;
    CH_TRY_GOTO(attr_int64(r, "complete", 0, 0, &complete), fail);
    info->complete = complete != 0;
    struct { const char *name; char **dst; } s[] = {
        {"pool", &info->pool}, {"model_config", &info->model_config},
        {"tokenizer_sha256", &info->tokenizer_sha256}, {"input_sha256", &info->input_sha256},
        {"input_path", &info->input_path}, {"command_line", &info->command_line},
        {"created", &info->created}, {"model_dir", &info->model_dir}, {"backend", &info->backend},
        {"precision", &info->precision}, {"rows_sha256", &info->rows_sha256},
        {"weights_sha256", &info->weights_sha256}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        CH_TRY_GOTO(attr_string(r, s[i].name, 0, s[i].dst), fail);
    CH_TRY_GOTO(ch_render_rule_read(r->file, r->path, &info->render), fail);
    char *tr = NULL;
    CH_TRY_GOTO(attr_string(r, "truncate", 0, &tr), fail);
    snprintf(info->truncate, sizeof info->truncate, "%s", tr ? tr : "none");
    free(tr);
    CH_TRY_GOTO(attr_int64(r, "n_truncated", 0, 0, &info->n_truncated), fail);
    /* n_done counts the done mask in blocks, so a huge archive never needs N bytes at once. */
    uint8_t buf[65536];
    for (int64_t r0 = 0; r0 < r->n_rows; r0 += (int64_t)sizeof buf) {
        int64_t n = r->n_rows - r0 < (int64_t)sizeof buf ? r->n_rows - r0 : (int64_t)sizeof buf;
        CH_TRY_GOTO(ch_archive_read_done(r, r0, n, buf), fail);
        for (int64_t i = 0; i < n; i++) info->n_done += buf[i] != 0;
    }
    return 0;
fail:
    ch_archive_info_free(info);
    return rc;
}

static herr_t read_box(hid_t d, int rank, const hsize_t *start, const hsize_t *count, hid_t mt, void *buf) {
    hid_t fs = H5Dget_space(d);
    if (fs < 0) return -1;
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0) e = H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return e;
}

/* Independent read of a hyperslab of dataset d into buf with memory type mt. */
static int read_slab(ch_archive_reader *r, hid_t d, const char *name, int rank,
                     const hsize_t *start, const hsize_t *count, hid_t mt, void *buf) {
    if (read_box(d, rank, start, count, mt, buf) < 0)
        CH_FAIL(CH_EIO, "%s: reading /%s rows %llu..%llu failed (an I/O error, or a damaged file)", r->path, name,
                (unsigned long long)start[0], (unsigned long long)(start[0] + count[0]));
    return 0;
}

static int check_rows(ch_archive_reader *r, int64_t row0, int64_t n, const char *what) {
    if (row0 < 0 || n < 0 || row0 + n > r->n_rows)
        CH_FAIL(CH_EARG, "%s: %s rows %lld..%lld outside the archive's %lld rows", r->path, what,
                (long long)row0, (long long)(row0 + n), (long long)r->n_rows);
    return 0;
}

/* Rows [row0, row0+n) as read into v ([n][ncol_read][width] binary16, columns c0..): each
 * (row, column) against its stored CRC-32. Column L is /hidden. */
static int check_crc(ch_archive_reader *r, const char *name, int64_t row0, int64_t n, int c0, int nc, size_t width,
                     const uint16_t *v) {
    if (r->crc < 0 || n == 0) return 0;
    const size_t cols = (size_t)r->L + 1, need = (size_t)n * cols;
    if (need > r->crc_cap) {
        uint32_t *p = realloc(r->crcbuf, sizeof *p * need);
        if (!p) CH_FAIL(CH_ENOMEM, "%s: out of memory for %zu row checksums", r->path, need);
        r->crcbuf = p, r->crc_cap = need;
    }
    hsize_t start[2] = {(hsize_t)row0, 0}, cnt[2] = {(hsize_t)n, cols};
    CH_TRY(read_slab(r, r->crc, "row_crc", 2, start, cnt, H5T_NATIVE_UINT32, r->crcbuf));
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < nc; c++) {
            uint32_t want = r->crcbuf[(size_t)i * cols + c0 + c];
            if (ch_crc32_f16(v + ((size_t)i * nc + c) * width, width) == want) continue;
            char layer[40] = "";
            if (c0 + c < r->L) snprintf(layer, sizeof layer, ", layer %d", c0 + c);
            CH_FAIL(CH_EFORMAT,
                    "%s: /%s row %lld%s does not match its checksum in /row_crc: the file was changed or damaged "
                    "on disk",
                    r->path, name, (long long)(row0 + i), layer);
        }
    return 0;
}

int ch_archive_read_acts_raw(ch_archive_reader *r, int64_t row0, int64_t n, int l0, int nl,
                             uint16_t *dst) {
    CH_TRY(check_rows(r, row0, n, "activation"));
    if (l0 < 0 || nl < 0 || l0 + nl > r->L)
        CH_FAIL(CH_EARG, "%s: layers %d..%d outside the archive's %d layers", r->path, l0,
                l0 + nl, r->L);
    if (n == 0 || nl == 0) return 0;
    hsize_t start[4] = {(hsize_t)row0, (hsize_t)l0, 0, 0};
    hsize_t cnt[4] = {(hsize_t)n, (hsize_t)nl, (hsize_t)r->H, (hsize_t)r->D};
    CH_TRY(read_slab(r, r->acts, "activations", 4, start, cnt, r->f16, dst));
    return check_crc(r, "activations", row0, n, l0, nl, (size_t)r->H * r->D, dst);
}

int ch_archive_read_acts_layers(ch_archive_reader *r, int64_t row0, int64_t n, int l0, int nl,
                                float *dst) {
    size_t count = (size_t)(n > 0 ? n : 0) * (size_t)(nl > 0 ? nl : 0) * (size_t)r->H * (size_t)r->D;
    /* Read the 16-bit values into the tail half of dst, then widen front to back: element i's
     * f32 (bytes 4i..4i+3) never overwrites a half not yet read (at byte 2*count + 2j, j >= i),
     * so no second buffer is needed. */
    uint16_t *raw = (uint16_t *)(dst) + count;
    CH_TRY(ch_archive_read_acts_raw(r, row0, n, l0, nl, raw));
    ch_h5_widen_f16(raw, dst, count);
    return 0;
}

int ch_archive_read_acts(ch_archive_reader *r, int64_t row0, int64_t n, float *dst) {
    return ch_archive_read_acts_layers(r, row0, n, 0, r->L, dst);
}

int ch_archive_read_hidden(ch_archive_reader *r, int64_t row0, int64_t n, float *dst) {
    CH_TRY(check_rows(r, row0, n, "hidden"));
    if (r->hidden < 0) CH_FAIL(CH_EARG, "%s: no /hidden dataset (extract with --hidden)", r->path);
    if (n == 0) return 0;
    size_t count = (size_t)n * (size_t)r->hidden_dim;
    uint16_t *raw = (uint16_t *)dst + count; /* widen in place, as for activations */
    hsize_t start[2] = {(hsize_t)row0, 0}, cnt[2] = {(hsize_t)n, (hsize_t)r->hidden_dim};
    CH_TRY(read_slab(r, r->hidden, "hidden", 2, start, cnt, r->f16, raw));
    CH_TRY(check_crc(r, "hidden", row0, n, r->L, 1, (size_t)r->hidden_dim, raw));
    ch_h5_widen_f16(raw, dst, count);
    return 0;
}

int ch_archive_read_n_tokens(ch_archive_reader *r, int64_t row0, int64_t n, int32_t *dst) {
    CH_TRY(check_rows(r, row0, n, "n_tokens"));
    if (n == 0) return 0;
    hid_t d = H5Dopen2(r->file, "n_tokens", H5P_DEFAULT);
    if (d < 0) CH_FAIL(CH_EFORMAT, "%s: missing dataset /n_tokens", r->path);
    hsize_t start = (hsize_t)row0, cnt = (hsize_t)n;
    int rc = read_slab(r, d, "n_tokens", 1, &start, &cnt, H5T_NATIVE_INT32, dst);
    H5Dclose(d);
    return rc;
}

int ch_archive_read_labels(ch_archive_reader *r, int64_t row0, int64_t n, int32_t *dst) {
    CH_TRY(check_rows(r, row0, n, "label"));
    if (n == 0) return 0;
    hsize_t start = (hsize_t)row0, cnt = (hsize_t)n;
    return read_slab(r, r->labels, "labels", 1, &start, &cnt, H5T_NATIVE_INT32, dst);
}

int ch_archive_read_done(ch_archive_reader *r, int64_t row0, int64_t n, uint8_t *dst) {
    CH_TRY(check_rows(r, row0, n, "done"));
    if (n == 0) return 0;
    hsize_t start = (hsize_t)row0, cnt = (hsize_t)n;
    return read_slab(r, r->done, "done", 1, &start, &cnt, H5T_NATIVE_UINT8, dst);
}

static int read_strings(ch_archive_reader *r, hid_t d, const char *name, size_t len,
                        int64_t row0, int64_t n, char **out) {
    CH_TRY(check_rows(r, row0, n, name));
    for (int64_t i = 0; i < n; i++) out[i] = NULL;
    if (n == 0) return 0;
    char *buf;
    CH_TRY(ch_malloc((void **)&buf, (size_t)n * len, name));
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = 0;
    if (mt < 0 || H5Tset_size(mt, len) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0)
        CH_FAIL_GOTO(done, CH_EHDF5, "%s: /%s: cannot make a string type", r->path, name);
    hsize_t start = (hsize_t)row0, cnt = (hsize_t)n;
    CH_TRY_GOTO(read_slab(r, d, name, 1, &start, &cnt, mt, buf), done);
    for (int64_t i = 0; i < n; i++) {
        const char *s = buf + (size_t)i * len;
        size_t l = strnlen(s, len);
        CH_TRY_GOTO(ch_malloc((void **)&out[i], l + 1, name), done);
        memcpy(out[i], s, l);
        out[i][l] = 0;
    }
done:
    if (rc) ch_archive_free_strings(out, n);
    if (mt >= 0) H5Tclose(mt);
    free(buf);
    return rc;
}

int ch_archive_read_ids(ch_archive_reader *r, int64_t row0, int64_t n, char **ids) {
    return read_strings(r, r->ids, "ids", r->id_len, row0, n, ids);
}

int ch_archive_read_tasks(ch_archive_reader *r, int64_t row0, int64_t n, char **tasks) {
    return read_strings(r, r->tasks, "tasks", r->task_len, row0, n, tasks);
}

void ch_archive_free_strings(char **s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) {
        free(s[i]);
        s[i] = NULL;
    }
}

/* ---- the file's own structure --------------------------------------------------------------- */

typedef struct {
    const char *path;
    const char *obj; /* the object whose attributes are being read */
    int rc;
} walk_ctx;

/* Read one attribute whole, in its native memory type. Variable-length ones (the dimension
 * scales' DIMENSION_LIST and DIMENSION_LABELS) are only opened: their data lives in HDF5's
 * global heap, which the format does not checksum and HDF5 reads past its buffer when damaged;
 * capheads never reads them (docs/faults.md). */
static herr_t read_attr(hid_t obj, const char *name, const H5A_info_t *info, void *op) {
    (void)info;
    walk_ctx *w = op;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    int heap = ft >= 0 && (H5Tdetect_class(ft, H5T_VLEN) > 0 || H5Tis_variable_str(ft) > 0);
    hid_t mt = ft >= 0 && !heap ? H5Tget_native_type(ft, H5T_DIR_ASCEND) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    size_t es = mt >= 0 ? H5Tget_size(mt) : 0;
    void *buf = n >= 0 && es ? calloc((size_t)n + 1, es) : NULL;
    int ok = heap ? s >= 0 : buf && H5Aread(a, mt, buf) >= 0;
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (s >= 0) H5Sclose(s);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    if (ok) return 0;
    w->rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                       "%s: HDF5 cannot read attribute '%s' of %s: the file's structure is damaged", w->path, name,
                       w->obj);
    return -1;
}

/* Every object HDF5 can reach, and each of its attributes: in the 1.10 format that capheads
 * writes, reading them checks the checksums of every object header and attribute block. */
static herr_t visit_obj(hid_t loc, const char *name, const H5O_info_t *info, void *op) {
    (void)info;
    walk_ctx *w = op;
    char full[1024];
    snprintf(full, sizeof full, "/%s", strcmp(name, ".") ? name : "");
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) {
        w->rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: HDF5 cannot open %s: the file's structure is damaged",
                           w->path, full);
        return -1;
    }
    w->obj = full;
    hsize_t idx = 0;
    herr_t e = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, read_attr, w);
    H5Oclose(o);
    if (e < 0 && !w->rc)
        w->rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: HDF5 cannot list the attributes of %s: the file's "
                           "structure is damaged", w->path, full);
    return e < 0 ? -1 : 0;
}

/* The axes of /activations as the writer made them: the scale datasets layer, head, dim holding
 * 0..n-1 under their own name (their attachment lives in the unchecksummed global heap). */
static int check_axes(ch_archive_reader *r) {
    static const char *const axes[3] = {"layer", "head", "dim"};
    const int sizes[3] = {r->L, r->H, r->D};
    for (int i = 0; i < 3; i++) {
        hid_t d = H5Dopen2(r->file, axes[i], H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : -1;
        char name[16] = "";
        int ok = s >= 0 && H5Sget_simple_extent_npoints(s) == sizes[i] &&
                 H5DSget_scale_name(d, name, sizeof name) > 0 && !strcmp(name, axes[i]);
        int32_t *v = ok ? malloc(sizeof(int32_t) * (size_t)sizes[i] + 1) : NULL;
        ok = v && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
        for (int j = 0; ok && j < sizes[i]; j++) ok = v[j] == j;
        free(v);
        if (s >= 0) H5Sclose(s);
        if (d >= 0) H5Dclose(d);
        if (!ok)
            CH_FAIL(CH_EFORMAT, "%s: the axis /%s does not hold 0..%d under its name: a damaged file", r->path, axes[i],
                    sizes[i] - 1);
    }
    return 0;
}

static int verify_structure(ch_archive_reader *r) {
    walk_ctx w = {r->path, "/", 0};
    herr_t e = H5Ovisit2(r->file, H5_INDEX_NAME, H5_ITER_INC, visit_obj, &w, H5O_INFO_BASIC);
    if (w.rc) return w.rc;
    if (e < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot walk its objects: the file's structure is damaged", r->path);
    return check_axes(r);
}

int ch_archive_verify_checksums(ch_archive_reader *r, const char **what) {
    *what = "none (the archive was written before capheads stored checksums)";
    CH_TRY(verify_structure(r));
    if (r->crc < 0) return 0;
    if (r->hidden >= 0 && r->n_rows > 0) {
        const int64_t B = 4096;
        float *buf = malloc((size_t)B * (size_t)r->hidden_dim * sizeof(float) + 1);
        if (!buf) CH_FAIL(CH_ENOMEM, "%s: out of memory checking /hidden", r->path);
        int rc = 0;
        for (int64_t r0 = 0; r0 < r->n_rows && !rc; r0 += B)
            rc = ch_archive_read_hidden(r, r0, r->n_rows - r0 < B ? r->n_rows - r0 : B, buf);
        free(buf);
        CH_TRY(rc);
    }
    *what = "CRC-32C of every row and layer of /activations and /hidden";
    char *want = NULL, got[65];
    CH_TRY(attr_string(r, "rows_sha256", 0, &want));
    if (!want) return 0; /* not complete yet: that digest is written at the end */
    int rc = ch_archive_rows_sha256(r->file, got);
    if (!rc && strcmp(want, got))
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                        "%s: the per-row datasets (ids, tasks, labels, n_tokens, done) do not match their stored "
                        "SHA-256: the file was changed or damaged on disk",
                        r->path);
    free(want);
    *what = "every object and attribute read (checksummed by HDF5's 1.10 format), the axes, CRC-32C of every row "
            "and layer of /activations and /hidden, SHA-256 of ids, tasks, labels, n_tokens and done";
    return rc;
}
