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
    hid_t f, scores, selected;
    int ntask;
    int64_t nrows;
    char *path;
};

#define H5CHK(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(fail, CH_EHDF5, "%s: %s failed", path, #call);              \
    } while (0)

int ch_scores_create(const char *path, char **tasks, int ntask, int64_t nrows, MPI_Comm comm,
                     ch_scores_file **out) {
    int rc = 0;
    ch_scores_file *s = NULL;
    hid_t fapl = -1, sp = -1, st = -1, d = -1;
    char *flat = NULL;
    CH_TRY(CH_ALLOC(s, 1, "scores file"));
    s->f = s->scores = s->selected = -1;
    s->ntask = ntask, s->nrows = nrows;
    s->path = strdup(path);
    H5CHK(fapl = H5Pcreate(H5P_FILE_ACCESS));
    H5CHK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    H5CHK(s->f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    hsize_t dims[2] = {(hsize_t)ntask, (hsize_t)nrows};
    H5CHK(sp = H5Screate_simple(2, dims, NULL));
    H5CHK(s->scores = H5Dcreate2(s->f, "scores", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5CHK(s->selected = H5Dcreate2(s->f, "selected", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    size_t len = 1;
    for (int i = 0; i < ntask; i++)
        if (strlen(tasks[i]) + 1 > len) len = strlen(tasks[i]) + 1;
    CH_TRY_GOTO(CH_ALLOC(flat, (size_t)ntask * len + 1, "task names"), fail);
    for (int i = 0; i < ntask; i++) memcpy(flat + i * len, tasks[i], strlen(tasks[i]));
    H5Sclose(sp);
    hsize_t tn = (hsize_t)ntask;
    H5CHK(sp = H5Screate_simple(1, &tn, NULL));
    H5CHK(st = H5Tcopy(H5T_C_S1));
    H5CHK(H5Tset_size(st, len));
    H5CHK(d = H5Dcreate2(s->f, "tasks", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    /* every rank writes the same small dataset collectively (identical data) */
    H5CHK(H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat));
    H5Dclose(d), d = -1;
    H5Tclose(st), st = -1;
    H5Sclose(sp), sp = -1;
    H5Pclose(fapl);
    free(flat);
    *out = s;
    return 0;
fail:
    if (d >= 0) H5Dclose(d);
    if (st >= 0) H5Tclose(st);
    if (sp >= 0) H5Sclose(sp);
    if (fapl >= 0) H5Pclose(fapl);
    free(flat);
    ch_scores_close(s);
    return rc;
}

static int write_slab(ch_scores_file *s, hid_t d, hid_t mt, int t, int64_t row0, int64_t n, const void *buf) {
    const char *path = s->path;
    int rc = 0;
    hid_t fs = -1, ms = -1, x = -1;
    H5CHK(fs = H5Dget_space(d));
    hsize_t start[2] = {(hsize_t)t, (hsize_t)row0}, count[2] = {1, (hsize_t)n}, mn = (hsize_t)(n ? n : 1);
    if (n) {
        H5CHK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
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

int ch_scores_write(ch_scores_file *s, int t, int64_t row0, int64_t n, const float *scores,
                    const uint8_t *sel) {
    CH_TRY(write_slab(s, s->scores, H5T_NATIVE_FLOAT, t, row0, n, scores));
    return write_slab(s, s->selected, H5T_NATIVE_UINT8, t, row0, n, sel);
}

int ch_scores_close(ch_scores_file *s) {
    if (!s) return 0;
    int bad = 0;
    if (s->scores >= 0) bad |= H5Dclose(s->scores) < 0;
    if (s->selected >= 0) bad |= H5Dclose(s->selected) < 0;
    if (s->f >= 0) bad |= H5Fclose(s->f) < 0;
    char *path = s->path;
    free(s);
    int rc = bad ? ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: closing failed", path ? path : "scores") : 0;
    free(path);
    return rc;
}
