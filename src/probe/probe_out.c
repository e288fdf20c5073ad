/* probe_out.c - metrics, the probe file, heatmaps and the probe-file summary (rank 0 only). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "h5seal.h"
#include "probe.h"

int ch_probe_metrics(int64_t nval, const float *prob, const int32_t *y, ch_probe_result *r) {
    const int nh = r->L * r->H, k = r->k;
    ch_auc_pair *scr = NULL;
    uint8_t *pos = NULL;
    int *order = NULL, rc = 0;
    double *ens = NULL;
    CH_TRY_GOTO(CH_ALLOC(scr, 2 * nval + 1, "AUC scratch"), out);
    CH_TRY_GOTO(CH_ALLOC(pos, (size_t)CH_NCAP * (nval + 1), "AUC labels"), out);
    CH_TRY_GOTO(CH_ALLOC(order, nh, "head order"), out);
    CH_TRY_GOTO(CH_ALLOC(ens, (size_t)(nval + 1) * CH_NCAP, "ensemble scores"), out);
    for (int c = 0; c < CH_NCAP; c++)
        for (int64_t i = 0; i < nval; i++) pos[c * nval + i] = y[i] == c;
    r->best_head = 0, r->best_head_acc = -1;
    for (int h = 0; h < nh; h++) {
        const float *p = prob + (size_t)h * nval * CH_NCAP;
        int64_t correct = 0, ovr[CH_NCAP] = {0};
        for (int64_t i = 0; i < nval; i++) {
            int best = 0;
            for (int c = 1; c < CH_NCAP; c++) best = p[i * CH_NCAP + c] > p[i * CH_NCAP + best] ? c : best;
            correct += best == y[i];
            for (int c = 0; c < CH_NCAP; c++) ovr[c] += (best == c) == (y[i] == c);
        }
        r->val_acc[h] = (float)((double)correct / (double)nval);
        if (r->val_acc[h] > r->best_head_acc) r->best_head_acc = r->val_acc[h], r->best_head = h;
        for (int c = 0; c < CH_NCAP; c++) {
            r->ovr_acc[h * CH_NCAP + c] = (float)((double)ovr[c] / (double)nval);
            r->ovr_auc[h * CH_NCAP + c] = (float)ch_probe_auc(p + c, CH_NCAP, pos + c * nval, nval, scr);
        }
    }
    /* top-k per capability by AUC, NaN last, ties to the lower flat index (selection sort: k small) */
    for (int c = 0; c < CH_NCAP; c++) {
        for (int h = 0; h < nh; h++) order[h] = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int h = 0; h < nh; h++) {
                if (order[h]) continue;
                float s = r->ovr_auc[h * CH_NCAP + c], bs = best < 0 ? 0 : r->ovr_auc[best * CH_NCAP + c];
                if (best < 0 || (!isnan(s) && (isnan(bs) || s > bs))) best = h;
            }
            order[best] = 1;
            r->top_heads[c * k + j] = best;
            r->top_scores[c * k + j] = r->ovr_auc[best * CH_NCAP + c];
        }
    }
    for (int64_t i = 0; i < nval * CH_NCAP; i++) ens[i] = 0;
    for (int c = 0; c < CH_NCAP; c++)
        for (int j = 0; j < k; j++) {
            const float *p = prob + (size_t)r->top_heads[c * k + j] * nval * CH_NCAP;
            for (int64_t i = 0; i < nval; i++) ens[i * CH_NCAP + c] += p[i * CH_NCAP + c] / k;
        }
    int64_t correct = 0;
    for (int64_t i = 0; i < nval; i++) {
        int best = 0;
        for (int c = 1; c < CH_NCAP; c++) best = ens[i * CH_NCAP + c] > ens[i * CH_NCAP + best] ? c : best;
        correct += best == y[i];
    }
    r->ensemble_acc = (double)correct / (double)nval;
out:
    free(scr), free(pos), free(order), free(ens);
    return rc;
}

#define H5C(call, what)                                                                           \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(out, CH_EHDF5, "%s: writing %s failed", path, what);         \
    } while (0)

static int write_ds(hid_t f, const char *path, const char *name, hid_t type, int rank,
                    const hsize_t *dims, const void *data) {
    int rc = 0;
    hid_t s = H5Screate_simple(rank, dims, NULL), d = -1;
    H5C(s, name);
    d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5C(d, name);
    H5C(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
out:
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    return rc;
}

static int write_attr(hid_t f, const char *path, const char *name, hid_t type, const void *v) {
    int rc = 0;
    hid_t s = H5Screate(H5S_SCALAR), a = -1;
    H5C(s, name);
    a = H5Acreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    H5C(a, name);
    H5C(H5Awrite(a, type, v), name);
out:
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    return rc;
}

static int write_str_attr(hid_t f, const char *path, const char *name, const char *v) {
    int rc = 0;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5C(t, name);
    H5C(H5Tset_size(t, strlen(v) + 1), name);
    rc = write_attr(f, path, name, t, v);
out:
    if (t >= 0) H5Tclose(t);
    return rc;
}

int ch_probe_write(const char *path, const ch_probe_result *r) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = ch_h5_mem_create(path); /* built in memory, written by ch_h5_mem_save (h5seal.h) */
    if (f < 0) CH_FAIL(CH_EHDF5, "%s: cannot create the probe file", path);
    int rc = 0;
    const hsize_t L = r->L, H = r->H, D = r->D, C = CH_NCAP, K = r->k;
    const hsize_t dw[4] = {L, H, C, D}, db[3] = {L, H, C}, dm[3] = {L, H, D}, dh[2] = {L, H},
                  dt[2] = {C, K};
    CH_TRY_GOTO(write_ds(f, path, "weights", H5T_NATIVE_FLOAT, 4, dw, r->weights), out);
    CH_TRY_GOTO(write_ds(f, path, "bias", H5T_NATIVE_FLOAT, 3, db, r->bias), out);
    CH_TRY_GOTO(write_ds(f, path, "mean", H5T_NATIVE_FLOAT, 3, dm, r->mean), out);
    CH_TRY_GOTO(write_ds(f, path, "std", H5T_NATIVE_FLOAT, 3, dm, r->std), out);
    CH_TRY_GOTO(write_ds(f, path, "val_accuracy", H5T_NATIVE_FLOAT, 2, dh, r->val_acc), out);
    CH_TRY_GOTO(write_ds(f, path, "train_accuracy", H5T_NATIVE_FLOAT, 2, dh, r->train_acc), out);
    CH_TRY_GOTO(write_ds(f, path, "ovr_accuracy", H5T_NATIVE_FLOAT, 3, db, r->ovr_acc), out);
    CH_TRY_GOTO(write_ds(f, path, "ovr_auc", H5T_NATIVE_FLOAT, 3, db, r->ovr_auc), out);
    CH_TRY_GOTO(write_ds(f, path, "top_heads", H5T_NATIVE_INT32, 2, dt, r->top_heads), out);
    CH_TRY_GOTO(write_ds(f, path, "top_scores", H5T_NATIVE_FLOAT, 2, dt, r->top_scores), out);
    /* training rows per class: a class with none is masked out of every softmax (capmix) */
    CH_TRY_GOTO(write_ds(f, path, "class_train", H5T_NATIVE_INT64, 1, &C, r->class_train), out);
    int32_t ver = CH_PROBES_VERSION, k = r->k, best = r->best_head;
    char caps[160];
    snprintf(caps, sizeof caps, "[\"%s\", \"%s\", \"%s\", \"%s\", \"%s\"]", ch_capability_names[0],
             ch_capability_names[1], ch_capability_names[2], ch_capability_names[3],
             ch_capability_names[4]);
    CH_TRY_GOTO(write_str_attr(f, path, "format", CH_PROBES_FORMAT), out);
    CH_TRY_GOTO(write_attr(f, path, "format_version", H5T_NATIVE_INT32, &ver), out);
    CH_TRY_GOTO(write_str_attr(f, path, "capability_names", caps), out);
    CH_TRY_GOTO(write_str_attr(f, path, "score", "ovr_auc: one-vs-rest ROC AUC of the head's multinomial probability"), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_path", r->input_path), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_created", r->input_created), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_sha256", r->input_sha256), out);
    CH_TRY_GOTO(write_str_attr(f, path, "options", r->options), out);
    CH_TRY_GOTO(write_attr(f, path, "top_k", H5T_NATIVE_INT32, &k), out);
    CH_TRY_GOTO(write_attr(f, path, "best_head", H5T_NATIVE_INT32, &best), out);
    CH_TRY_GOTO(write_attr(f, path, "best_head_val_accuracy", H5T_NATIVE_DOUBLE, &r->best_head_acc), out);
    CH_TRY_GOTO(write_attr(f, path, "ensemble_val_accuracy", H5T_NATIVE_DOUBLE, &r->ensemble_acc), out);
    CH_TRY_GOTO(write_attr(f, path, "n_train", H5T_NATIVE_INT64, &r->n_train), out);
    CH_TRY_GOTO(write_attr(f, path, "n_val", H5T_NATIVE_INT64, &r->n_val), out);
out:
    if (rc) H5Fclose(f);
    else rc = ch_h5_mem_save(f, path);
    return rc;
}

/* Perceptual colour ramp (viridis, 5 stops) interpolated linearly; t in [0,1]. */
static void ramp(double t, int rgb[3]) {
    static const int stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 4;
    int i = (int)x < 4 ? (int)x : 3;
    double u = x - i;
    for (int j = 0; j < 3; j++) rgb[j] = (int)lround(stops[i][j] * (1 - u) + stops[i + 1][j] * u);
}

static int heatmap_svg(const char *dir, const ch_probe_result *r, int c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/heatmap_%s.svg", dir, ch_capability_names[c]);
    FILE *f;
    char tmp[4200];
    CH_TRY(ch_fs_open_tmp(path, &f, tmp, sizeof tmp)); /* renamed into place when complete */
    const int L = r->L, H = r->H, cell = H > 48 ? 10 : 16, x0 = 60, y0 = 50;
    /* wide enough for the title even when the grid is small */
    const int w = x0 + H * cell + 110 > 440 ? x0 + H * cell + 110 : 440, hgt = y0 + L * cell + 50;
    double lo = INFINITY, hi = -INFINITY;
    for (int h = 0; h < L * H; h++) {
        double s = r->ovr_auc[h * CH_NCAP + c];
        if (!isnan(s)) lo = s < lo ? s : lo, hi = s > hi ? s : hi;
    }
    if (!(hi > lo)) lo = 0, hi = 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", w, hgt);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"14\">%s: one-vs-rest AUC per head (top-%d outlined)</text>\n",
            x0, ch_capability_names[c], r->k);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            double s = r->ovr_auc[(l * H + h) * CH_NCAP + c];
            int rgb[3] = {200, 200, 200}; /* NaN (class absent from validation): grey */
            if (!isnan(s)) ramp((s - lo) / (hi - lo), rgb);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\">"
                       "<title>layer %d head %d: %.4f</title></rect>\n",
                    x0 + h * cell, y0 + l * cell, cell, cell, rgb[0], rgb[1], rgb[2], l, h, s);
        }
    for (int j = 0; j < r->k; j++) { /* outline the top-k on top of the grid */
        int t = r->top_heads[c * r->k + j];
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"red\" "
                   "stroke-width=\"2\"/>\n", x0 + (t % H) * cell + 1, y0 + (t / H) * cell + 1, cell - 2, cell - 2);
    }
    int step = L > 16 ? 4 : 1;
    for (int l = 0; l < L; l += step)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>\n", x0 - 4, y0 + l * cell + cell - 4, l);
    step = H > 16 ? 4 : 1;
    for (int h = 0; h < H; h += step)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x0 + h * cell + cell / 2, y0 - 4, h);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">head</text>\n", x0 + H * cell / 2, y0 + L * cell + 20);
    fprintf(f, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">layer</text>\n",
            y0 + L * cell / 2, y0 + L * cell / 2);
    /* colour bar: 20 steps from lo (bottom) to hi (top) */
    const int bx = x0 + H * cell + 20, bh = L * cell;
    for (int i = 0; i < 20; i++) {
        int rgb[3];
        ramp((i + 0.5) / 20.0, rgb);
        fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\"/>\n", bx,
                y0 + bh - (i + 1) * bh / 20.0, bh / 20.0 + 0.5, rgb[0], rgb[1], rgb[2]);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\">%.3f</text>\n<text x=\"%d\" y=\"%d\">%.3f</text>\n", bx + 20, y0 + 10,
            hi, bx + 20, y0 + bh, lo);
    fprintf(f, "<text x=\"%d\" y=\"%d\">AUC</text>\n</svg>\n", bx, y0 - 6);
    return ch_fs_commit(f, tmp, path);
}

int ch_probe_heatmap(const char *dir, const ch_probe_result *r) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        CH_FAIL(CH_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    for (int c = 0; c < CH_NCAP; c++) CH_TRY(heatmap_svg(dir, r, c));
    char path[4096];
    snprintf(path, sizeof path, "%s/scores.csv", dir);
    FILE *f;
    char tmp[4200];
    CH_TRY(ch_fs_open_tmp(path, &f, tmp, sizeof tmp));
    fprintf(f, "layer,head,val_accuracy");
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",auc_%s", ch_capability_names[c]);
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",top_%s", ch_capability_names[c]);
    fprintf(f, "\n");
    for (int h = 0; h < r->L * r->H; h++) {
        fprintf(f, "%d,%d,%.6f", h / r->H, h % r->H, r->val_acc[h]);
        for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",%.6f", r->ovr_auc[h * CH_NCAP + c]);
        for (int c = 0; c < CH_NCAP; c++) {
            int in = 0;
            for (int j = 0; j < r->k; j++) in |= r->top_heads[c * r->k + j] == h;
            fprintf(f, ",%d", in);
        }
        fprintf(f, "\n");
    }
    return ch_fs_commit(f, tmp, path);
}

static int read_attr(hid_t f, const char *name, hid_t type, void *v) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t e = H5Aread(a, type, v);
    H5Aclose(a);
    return e < 0 ? -1 : 0;
}

int ch_probe_print_summary(const char *path, FILE *out) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EIO, "%s: cannot open as an HDF5 file", path);
    int rc = 0;
    char fmt[64] = "", input[1024] = "";
    int32_t ver = 0, k = 0, *top = NULL;
    double best = 0, ens = 0;
    int64_t ntr = 0, nva = 0;
    hid_t s64 = H5Tcopy(H5T_C_S1), s1k = H5Tcopy(H5T_C_S1), d = -1;
    if (s64 < 0 || s1k < 0 || H5Tset_size(s64, sizeof fmt) < 0 || H5Tset_size(s1k, sizeof input) < 0)
        CH_FAIL_GOTO(out_, CH_EHDF5, "%s: cannot make string types", path);
    if (read_attr(f, "format", s64, fmt) || strcmp(fmt, CH_PROBES_FORMAT))
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: not a probe file (format '%s')", path, fmt);
    if (read_attr(f, "format_version", H5T_NATIVE_INT32, &ver) || ver != CH_PROBES_VERSION ||
        read_attr(f, "top_k", H5T_NATIVE_INT32, &k) || k < 1 ||
        read_attr(f, "best_head_val_accuracy", H5T_NATIVE_DOUBLE, &best) ||
        read_attr(f, "ensemble_val_accuracy", H5T_NATIVE_DOUBLE, &ens) ||
        read_attr(f, "n_train", H5T_NATIVE_INT64, &ntr) || read_attr(f, "n_val", H5T_NATIVE_INT64, &nva) ||
        read_attr(f, "input_path", s1k, input))
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: probe file version %d: missing or bad root attributes", path, ver);
    d = H5Dopen2(f, "val_accuracy", H5P_DEFAULT);
    hsize_t dims[2] = {0, 0};
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    if (sp < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) != 2)
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: /val_accuracy missing or not [L,H]", path);
    H5Sclose(sp);
    H5Dclose(d);
    d = H5Dopen2(f, "top_heads", H5P_DEFAULT);
    CH_TRY_GOTO(CH_ALLOC(top, (size_t)CH_NCAP * k, "top heads"), out_);
    if (d < 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, top) < 0)
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: /top_heads missing or unreadable", path);
    fprintf(out, "%s: capheads probe file v%d\n  input: %s\n  %llu layers x %llu heads, %lld train / "
                 "%lld validation rows\n  best head validation accuracy %.2f%%, top-%d ensemble %.2f%%\n",
            path, ver, input, (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)ntr,
            (long long)nva, 100 * best, k, 100 * ens);
    for (int c = 0; c < CH_NCAP; c++) {
        fprintf(out, "  %-12s", ch_capability_names[c]);
        for (int j = 0; j < k; j++) fprintf(out, " L%d.H%d", top[c * k + j] / (int)dims[1], top[c * k + j] % (int)dims[1]);
        fprintf(out, "\n");
    }
out_:
    free(top);
    if (d >= 0) H5Dclose(d);
    if (s64 >= 0) H5Tclose(s64);
    if (s1k >= 0) H5Tclose(s1k);
    H5Fclose(f);
    return rc;
}
