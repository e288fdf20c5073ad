/* select_out.c - see select_out.h. */
#include "select_out.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agree.h"
#include "err.h"
#include "h5util.h"
#include "mpicheck.h"
#include "outpath.h"

int ch_select_write_jsonl(const char *out_path, const char *pool_path, const int64_t *start,
                          const int64_t *len, const uint8_t *sel, int64_t n, MPI_Comm comm) {
    int rank, rc = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    char tmp[4200];
    CH_TRY(ch_out_partial_name(out_path, tmp, sizeof tmp));
    int64_t bytes = 0;
    for (int64_t i = 0; i < n; i++)
        if (sel[i]) bytes += len[i] + 1;
    char *buf = malloc((size_t)bytes + 1), *w = buf;
    int fd = open(pool_path, O_RDONLY);
    if (!buf) rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory for %lld selected bytes", (long long)bytes);
    else if (fd < 0) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: cannot open: %s", pool_path, strerror(errno));
    for (int64_t i = 0; i < n && !rc; i++) {
        if (!sel[i]) continue;
        if (pread(fd, w, (size_t)len[i], start[i]) != (ssize_t)len[i])
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: short read at byte %lld", pool_path, (long long)start[i]);
        w += len[i];
        *w++ = '\n';
    }
    if (fd >= 0) close(fd);
    CH_TRY_GOTO(ch_mpi_agree(comm, rc), done);
    int64_t off = 0;
    CH_MPI_TRY_GOTO(MPI_Exscan(&bytes, &off, 1, MPI_INT64_T, MPI_SUM, comm), done);
    if (rank == 0) off = 0;
    MPI_File fh;
    if (rank == 0) unlink(tmp); /* MPI_MODE_CREATE does not truncate */
    CH_MPI_TRY_GOTO(MPI_Barrier(comm), done);
    /* MPI-IO failures are the file's: CH_EIO naming it, like any other write */
    if (MPI_File_open(comm, tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh) != MPI_SUCCESS)
        CH_FAIL_GOTO(done, CH_EIO, "%s: cannot create (MPI_File_open)", tmp);
    /* write in pieces below 2 GiB: MPI counts are int */
    int64_t done_b = 0, chunk = 1 << 30;
    int64_t my_rounds = (bytes + chunk - 1) / chunk, rounds;
    rc = CH_MPI_RC(MPI_Allreduce(&my_rounds, &rounds, 1, MPI_INT64_T, MPI_MAX, comm));
    if (rc) rounds = 0; /* still close the file, then agree */
    for (int64_t r = 0; r < rounds; r++) {
        int cnt = (int)(bytes - done_b < chunk ? bytes - done_b : chunk);
        MPI_Status st;
        if (MPI_File_write_at_all(fh, off + done_b, buf + done_b, cnt, MPI_CHAR, &st) != MPI_SUCCESS)
            rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: write failed (disk full?)", tmp);
        done_b += cnt;
    }
    if (MPI_File_close(&fh) != MPI_SUCCESS && !rc)
        rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: close failed", tmp);
    ch_out_kill_point("write");
done:
    rc = ch_mpi_agree(comm, rc); /* complete under the partial name: the caller publishes it */
    if (rc && rank == 0) ch_out_discard(tmp);
    free(buf);
    return rc;
}

struct ch_scores_file {
    hid_t f, scores, selected, bscores, bselected, ids; /* -1: not in this file */
    char *path;
};

#define H5CHK(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(fail, CH_EHDF5, "%s: %s failed", path, #call);              \
    } while (0)

/* A [rows, cols] dataset of type t (cols 0: one-dimensional [rows]). */
static int make_2d(ch_scores_file *s, const char *name, hid_t t, int64_t rows, int64_t cols, hid_t *d) {
    const char *path = s->path;
    int rc = 0;
    hid_t sp = -1;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    H5CHK(sp = H5Screate_simple(cols ? 2 : 1, dims, NULL));
    H5CHK(*d = H5Dcreate2(s->f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
fail:
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* A small dataset every rank writes whole, collectively, with identical data: names [n] as
 * fixed-length NUL-padded strings. */
static int put_names(ch_scores_file *s, const char *name, char *const *v, int n) {
    const char *path = s->path;
    int rc = 0;
    hid_t st = -1, d = -1;
    char *flat = NULL;
    size_t len = 1;
    for (int i = 0; i < n; i++)
        if (strlen(v[i]) + 1 > len) len = strlen(v[i]) + 1;
    CH_TRY(CH_ALLOC(flat, (size_t)n * len + 1, name));
    for (int i = 0; i < n; i++) memcpy(flat + (size_t)i * len, v[i], strlen(v[i]));
    H5CHK(st = ch_h5_str_type(len));
    CH_TRY_GOTO(make_2d(s, name, st, n, 0, &d), fail);
    H5CHK(H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat));
fail:
    if (d >= 0) H5Dclose(d);
    if (st >= 0) H5Tclose(st);
    free(flat);
    return rc;
}

static int put_ints(ch_scores_file *s, const char *name, const int *v, int n) {
    const char *path = s->path;
    int rc = 0;
    hid_t d = -1;
    CH_TRY(make_2d(s, name, H5T_STD_I32LE, n, 0, &d));
    H5CHK(H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
fail:
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int create_sets(ch_scores_file *s, const ch_scores_layout *l) {
    const char *path = s->path;
    int rc = 0;
    hid_t st = -1;
    CH_TRY(make_2d(s, "scores", H5T_IEEE_F64LE, l->ntask, l->nrows, &s->scores));
    CH_TRY(make_2d(s, "benchmark_scores", H5T_IEEE_F64LE, l->nbench, l->nrows, &s->bscores));
    if (l->task_selected) CH_TRY(make_2d(s, "selected", H5T_STD_U8LE, l->ntask, l->nrows, &s->selected));
    if (l->bench_selected)
        CH_TRY(make_2d(s, "benchmark_selected", H5T_STD_U8LE, l->nbench, l->nrows, &s->bselected));
    H5CHK(st = ch_h5_str_type((size_t)(l->id_len > 0 ? l->id_len : 1)));
    CH_TRY_GOTO(make_2d(s, "ids", st, l->nrows, 0, &s->ids), fail);
    CH_TRY_GOTO(put_names(s, "tasks", l->tasks, l->ntask), fail);
    CH_TRY_GOTO(put_names(s, "benchmarks", l->benchmarks, l->nbench), fail);
    CH_TRY_GOTO(put_ints(s, "benchmark_of_task", l->bench_of_task, l->ntask), fail);
    H5CHK(ch_h5_put_str(s->f, "format", CH_SCORES_FORMAT));
fail:
    if (st >= 0) H5Tclose(st);
    return rc;
}

double ch_scores_room(const ch_scores_layout *l, int tasks, int benches) {
    return (double)(tasks + benches) * (double)l->nrows * 9.0 + (double)l->nrows * l->id_len +
           (double)(l->ntask + l->nbench) * 256 + 65536.0 + 512.0;
}

int ch_scores_create(const char *path, const ch_scores_layout *l, MPI_Comm comm, ch_scores_file **out) {
    int rc = 0;
    ch_scores_file *s = NULL;
    hid_t fapl = -1;
    CH_TRY(CH_ALLOC(s, 1, "scores file"));
    s->f = s->scores = s->selected = s->bscores = s->bselected = s->ids = -1;
    if (!(s->path = strdup(path))) {
        free(s);
        CH_FAIL(CH_ENOMEM, "out of memory");
    }
    H5CHK(fapl = H5Pcreate(H5P_FILE_ACCESS));
    H5CHK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    H5CHK(s->f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    CH_TRY_GOTO(create_sets(s, l), fail);
    H5Pclose(fapl);
    *out = s;
    return 0;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    ch_scores_close(s);
    return rc;
}

/* Collective write of rows [row0, row0 + n) of row r of a [R, N] dataset (r < 0: of a [N] one). */
static int write_slab(ch_scores_file *s, hid_t d, hid_t mt, int r, int64_t row0, int64_t n, const void *buf) {
    const char *path = s->path;
    int rc = 0;
    hid_t fs = -1, ms = -1, x = -1;
    H5CHK(fs = H5Dget_space(d));
    int two = r >= 0;
    hsize_t start[2] = {(hsize_t)r, (hsize_t)row0}, count[2] = {1, (hsize_t)n}, mn = (hsize_t)(n ? n : 1);
    if (n) {
        H5CHK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, two ? start : start + 1, NULL, two ? count : count + 1, NULL));
    } else {
        H5CHK(H5Sselect_none(fs));
    }
    H5CHK(ms = H5Screate_simple(1, &mn, NULL));
    if (!n) H5CHK(H5Sselect_none(ms));
    H5CHK(x = H5Pcreate(H5P_DATASET_XFER));
    H5CHK(H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE));
    H5CHK(H5Dwrite(d, mt, ms, fs, x, buf));
fail:
    if (x >= 0) H5Pclose(x);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

int ch_scores_write_ids(ch_scores_file *s, int64_t row0, int64_t n, char *const *ids) {
    const char *path = s->path;
    int rc = 0;
    hid_t t = -1;
    char *flat = NULL;
    H5CHK(t = H5Dget_type(s->ids));
    size_t len = H5Tget_size(t);
    CH_TRY_GOTO(CH_ALLOC(flat, (size_t)n * len + 1, "ids"), fail);
    for (int64_t i = 0; i < n; i++) {
        size_t l = strlen(ids[i]);
        memcpy(flat + (size_t)i * len, ids[i], l < len ? l : len);
    }
    rc = write_slab(s, s->ids, t, -1, row0, n, flat);
fail:
    if (t >= 0) H5Tclose(t);
    free(flat);
    return rc;
}

int ch_scores_write_task(ch_scores_file *s, int t, int64_t row0, int64_t n, const double *scores,
                         const uint8_t *sel) {
    CH_TRY(write_slab(s, s->scores, H5T_NATIVE_DOUBLE, t, row0, n, scores));
    return s->selected >= 0 ? write_slab(s, s->selected, H5T_NATIVE_UINT8, t, row0, n, sel) : 0;
}

int ch_scores_write_benchmark(ch_scores_file *s, int b, int64_t row0, int64_t n, const double *scores,
                              const uint8_t *sel) {
    CH_TRY(write_slab(s, s->bscores, H5T_NATIVE_DOUBLE, b, row0, n, scores));
    return s->bselected >= 0 ? write_slab(s, s->bselected, H5T_NATIVE_UINT8, b, row0, n, sel) : 0;
}

int ch_scores_attr_str(ch_scores_file *s, const char *name, const char *value) {
    if (ch_h5_put_str(s->f, name, value ? value : ""))
        return ch_err_wrap("%s: attribute %s: ", s->path, name);
    return 0;
}

int ch_scores_attr_i64(ch_scores_file *s, const char *name, int64_t value) {
    if (ch_h5_put_i64(s->f, name, value)) return ch_err_wrap("%s: attribute %s: ", s->path, name);
    return 0;
}

int ch_scores_attr_f64(ch_scores_file *s, const char *name, double value) {
    const char *path = s->path;
    int rc = 0;
    hid_t sp = -1, a = -1;
    H5CHK(sp = H5Screate(H5S_SCALAR));
    H5CHK(a = H5Acreate2(s->f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT));
    H5CHK(H5Awrite(a, H5T_NATIVE_DOUBLE, &value));
fail:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int ch_scores_close(ch_scores_file *s) {
    if (!s) return 0;
    int bad = 0;
    hid_t d[] = {s->scores, s->selected, s->bscores, s->bselected, s->ids};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (d[i] >= 0) bad |= H5Dclose(d[i]) < 0;
    if (s->f >= 0) bad |= H5Fclose(s->f) < 0;
    char *path = s->path;
    free(s);
    int rc = bad ? ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: closing failed", path ? path : "scores") : 0;
    free(path);
    return rc;
}

int ch_scores_put_render(ch_scores_file *s, const ch_render_rule *r) {
    return r->recorded ? ch_render_rule_write(s->f, s->path, r) : 0;
}
