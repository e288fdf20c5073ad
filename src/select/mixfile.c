/* mixfile.c - read and write the mix file, see mixfile.h. */
#include "mixfile.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "err.h"
#include "fsutil.h"
#include "h5seal.h"
#include "h5util.h"
#include "outpath.h"

#define H5CHK(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(done, CH_EHDF5, "%s: %s failed", path, #call);              \
    } while (0)

#define MIX_FORMAT "capheads-mix"

static int put_data(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t s = H5Screate_simple(rank, dims, NULL), d = -1;
    int ok = s >= 0 && (d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    return ok ? 0 : -1;
}

static int write_h5(const char *path, const ch_mix *m) {
    int rc = 0;
    size_t len = 1;
    for (int i = 0; i < m->ntask; i++)
        if (strlen(m->tasks[i]) + 1 > len) len = strlen(m->tasks[i]) + 1;
    char *flat = calloc((size_t)m->ntask * len + 1, 1);
    hid_t f = -1, st = -1;
    if (!flat) CH_FAIL(CH_ENOMEM, "out of memory writing %s", path);
    for (int i = 0; i < m->ntask; i++) memcpy(flat + (size_t)i * len, m->tasks[i], strlen(m->tasks[i]));
    H5CHK(f = ch_h5_mem_create(path)); /* built in memory, written by ch_h5_mem_save (h5seal.h) */
    H5CHK(st = H5Tcopy(H5T_C_S1));
    H5CHK(H5Tset_size(st, len));
    H5CHK(H5Tset_strpad(st, H5T_STR_NULLPAD));
    hsize_t t1 = (hsize_t)m->ntask, t2[2] = {(hsize_t)m->ntask, CH_NCAP};
    H5CHK(put_data(f, "tasks", st, 1, &t1, flat));
    H5CHK(put_data(f, "mix", H5T_NATIVE_DOUBLE, 2, t2, m->mix));
    H5CHK(put_data(f, "n_examples", H5T_NATIVE_INT64, 1, &t1, m->count));
    if (m->hidden_mean) {
        hsize_t hd[2] = {(hsize_t)m->ntask, (hsize_t)m->hidden_dim};
        H5CHK(put_data(f, "hidden_mean", H5T_NATIVE_FLOAT, 2, hd, m->hidden_mean));
    }
    H5CHK(ch_h5_put_str(f, "format", MIX_FORMAT));
    H5CHK(ch_h5_put_str(f, "capability_names", m->capability_names ? m->capability_names : ""));
    H5CHK(ch_h5_put_str(f, "probes", m->probes ? m->probes : ""));
    H5CHK(ch_h5_put_str(f, "input", m->input ? m->input : ""));
    H5CHK(ch_h5_put_str(f, "input_sha256", m->input_sha256 ? m->input_sha256 : ""));
    H5CHK(ch_h5_put_str(f, "probes_sha256", m->probes_sha256 ? m->probes_sha256 : ""));
    H5CHK(ch_h5_put_str(f, "probes_input_sha256", m->probes_input_sha256 ? m->probes_input_sha256 : ""));
    H5CHK(ch_h5_put_str(f, "heads", m->heads ? m->heads : "own"));
    if (m->render.recorded) CH_TRY_GOTO(ch_render_rule_write(f, path, &m->render), done);
done:
    if (st >= 0) H5Tclose(st);
    if (f >= 0 && rc) H5Fclose(f);
    else if (f >= 0) rc = ch_h5_mem_save(f, path);
    free(flat);
    return rc;
}

/* One CSV field (RFC 4180): quoted, with quotes doubled, when it holds , " CR or LF. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const ch_mix *m) {
    FILE *f;
    char tmp[4200];
    CH_TRY(ch_fs_open_tmp(path, &f, tmp, sizeof tmp));
    fprintf(f, "task,n_examples");
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",%s", ch_capability_names[c]);
    fprintf(f, "\n");
    for (int i = 0; i < m->ntask; i++) {
        csv_field(f, m->tasks[i]);
        fprintf(f, ",%lld", (long long)m->count[i]);
        for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",%.6f", m->mix[i * CH_NCAP + c]);
        fprintf(f, "\n");
    }
    return ch_fs_commit(f, tmp, path);
}

int ch_mix_write(const char *dir, const ch_mix *m) {
    char p[4096], h5[4096], partial[4200];
    CH_TRY(ch_fs_mkdir_p(dir));
    /* mix.h5, what select reads, under its partial name and published (sealed, renamed) last */
    snprintf(h5, sizeof h5, "%s/mix.h5", dir);
    CH_TRY(ch_out_partial_name(h5, partial, sizeof partial));
    int rc = write_h5(partial, m);
    if (!rc) ch_out_kill_point("write");
    snprintf(p, sizeof p, "%s/mix.csv", dir);
    if (!rc) rc = write_csv(p, m);
    snprintf(p, sizeof p, "%s/mix.svg", dir);
    if (!rc) rc = ch_mix_plot_svg(m, p);
    if (rc) ch_out_discard(partial);
    return rc ? rc : ch_out_seal_publish(partial, h5);
}

int ch_mix_read(const char *where, ch_mix *m) {
    memset(m, 0, sizeof *m);
    char path[4096];
    size_t wl = strlen(where);
    if (wl > 3 && !strcmp(where + wl - 3, ".h5"))
        snprintf(path, sizeof path, "%s", where);
    else
        snprintf(path, sizeof path, "%s/mix.h5", where);
    int rc = 0;
    hid_t f = -1, d = -1, s = -1, t = -1, mt = -1;
    char *flat = NULL, *fmt = NULL;
    CH_TRY(ch_h5_open_sealed(path, &f)); /* every byte checked: h5seal.h */
    CH_TRY_GOTO(ch_h5_get_str(f, "format", &fmt), done);
    if (!fmt || strcmp(fmt, MIX_FORMAT))
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not a capheads mix file (format '%s')", path, fmt ? fmt : "none");
    CH_TRY_GOTO(ch_h5_get_str(f, "capability_names", &m->capability_names), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "probes", &m->probes), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "input", &m->input), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "input_sha256", &m->input_sha256), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "probes_sha256", &m->probes_sha256), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "probes_input_sha256", &m->probes_input_sha256), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "heads", &m->heads), done);
    CH_TRY_GOTO(ch_render_rule_read(f, path, &m->render), done);
    H5CHK(d = H5Dopen2(f, "tasks", H5P_DEFAULT));
    H5CHK(s = H5Dget_space(d));
    m->ntask = (int)H5Sget_simple_extent_npoints(s);
    H5CHK(t = H5Dget_type(d));
    size_t len = H5Tget_size(t);
    H5CHK(mt = H5Tcopy(t));
    CH_TRY_GOTO(CH_ALLOC(flat, (size_t)m->ntask * len + 1, "mix tasks"), done);
    H5CHK(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat));
    CH_TRY_GOTO(CH_ALLOC(m->tasks, m->ntask, "mix tasks"), done);
    for (int i = 0; i < m->ntask; i++) {
        m->tasks[i] = strndup(flat + (size_t)i * len, len);
        if (!m->tasks[i]) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory reading %s", path);
    }
    H5Dclose(d), d = -1;
    CH_TRY_GOTO(CH_ALLOC(m->mix, (size_t)m->ntask * CH_NCAP, "mixes"), done);
    CH_TRY_GOTO(CH_ALLOC(m->count, m->ntask, "counts"), done);
    H5CHK(d = H5Dopen2(f, "mix", H5P_DEFAULT));
    H5CHK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->mix));
    H5Dclose(d), d = -1;
    H5CHK(d = H5Dopen2(f, "n_examples", H5P_DEFAULT));
    H5CHK(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->count));
    H5Dclose(d), d = -1;
    if (H5Lexists(f, "hidden_mean", H5P_DEFAULT) > 0) {
        H5Sclose(s), s = -1;
        H5CHK(d = H5Dopen2(f, "hidden_mean", H5P_DEFAULT));
        H5CHK(s = H5Dget_space(d));
        hsize_t hd[2];
        H5CHK(H5Sget_simple_extent_dims(s, hd, NULL));
        m->hidden_dim = (int)hd[1];
        CH_TRY_GOTO(CH_ALLOC(m->hidden_mean, (size_t)m->ntask * m->hidden_dim, "hidden means"), done);
        H5CHK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->hidden_mean));
    }
done:
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    free(flat);
    free(fmt);
    if (rc) ch_mix_free(m);
    return rc;
}

void ch_mix_free(ch_mix *m) {
    if (m->tasks)
        for (int i = 0; i < m->ntask; i++) free(m->tasks[i]);
    free(m->tasks), free(m->mix), free(m->count), free(m->hidden_mean);
    free(m->capability_names), free(m->probes), free(m->input), free(m->input_sha256);
    free(m->probes_sha256), free(m->probes_input_sha256), free(m->heads);
    memset(m, 0, sizeof *m);
}

int ch_mix_find(const ch_mix *m, const char *task) {
    for (int i = 0; i < m->ntask; i++)
        if (!strcmp(m->tasks[i], task)) return i;
    return -1;
}
