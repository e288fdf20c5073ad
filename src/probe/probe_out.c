/* probe_out.c - the probe file, heatmaps and the probe-file summary (rank 0 only). */
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

/* A figure's dataset with its split said in a string attribute "split". */
static int write_fig(hid_t f, const char *path, const char *name, int rank, const hsize_t *dims,
                     const float *data, const char *split) {
    CH_TRY(write_ds(f, path, name, H5T_NATIVE_FLOAT, rank, dims, data));
    int rc = 0;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    H5C(d, name);
    rc = write_str_attr(d, path, "split", split);
out:
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* "[a, b, ...]" of the feature names, for the baseline's attribute. */
static void feature_list(char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < CH_PROBE_NFEAT && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\"", k ? ", " : "", ch_probe_format_features[k]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* The held-out figures (test split), the validation ones they were chosen by, and the choices. */
static int write_figures(hid_t f, const char *path, const ch_probe_result *r) {
    const hsize_t L = r->L, H = r->H, C = CH_NCAP, G = r->n_lambda, NK = r->n_topk;
    const hsize_t db[3] = {L, H, C}, dh[2] = {L, H}, dg[3] = {G, L, H};
    CH_TRY(write_fig(f, path, "test_accuracy", 2, dh, r->test_acc, "test"));
    CH_TRY(write_fig(f, path, "test_ovr_accuracy", 3, db, r->test_ovr_acc, "test"));
    CH_TRY(write_fig(f, path, "test_ovr_auc", 3, db, r->test_ovr_auc, "test"));
    CH_TRY(write_fig(f, path, "val_accuracy", 2, dh, r->val_acc, "validation"));
    CH_TRY(write_fig(f, path, "ovr_accuracy", 3, db, r->ovr_acc, "validation"));
    CH_TRY(write_fig(f, path, "ovr_auc", 3, db, r->ovr_auc, "validation"));
    CH_TRY(write_fig(f, path, "train_accuracy", 2, dh, r->train_acc, "train"));
    CH_TRY(write_fig(f, path, "lambda", 2, dh, r->lambda, "chosen on validation"));
    CH_TRY(write_fig(f, path, "val_loss", 3, dg, r->val_loss, "validation"));
    CH_TRY(write_ds(f, path, "lambda_grid", H5T_NATIVE_DOUBLE, 1, &G, r->lambda_grid));
    CH_TRY(write_ds(f, path, "top_k_grid", H5T_NATIVE_INT32, 1, &NK, r->topk_grid));
    CH_TRY(write_ds(f, path, "ensemble_val_accuracy_by_k", H5T_NATIVE_DOUBLE, 1, &NK, r->ens_val_by_k));
    const int32_t best = r->best_head, k = r->k;
    CH_TRY(write_attr(f, path, "top_k", H5T_NATIVE_INT32, &k));
    CH_TRY(write_str_attr(f, path, "top_k_chosen_by", r->k_fixed ? "--top-k" : "validation ensemble accuracy"));
    CH_TRY(write_str_attr(f, path, "lambda_chosen_by",
                          r->n_lambda > 1 ? "per head: lowest validation cross-entropy" : "--lambda"));
    CH_TRY(write_attr(f, path, "best_head", H5T_NATIVE_INT32, &best));
    CH_TRY(write_attr(f, path, "best_head_test_accuracy", H5T_NATIVE_DOUBLE, &r->best_head_test_acc));
    CH_TRY(write_attr(f, path, "ensemble_test_accuracy", H5T_NATIVE_DOUBLE, &r->ensemble_test_acc));
    CH_TRY(write_attr(f, path, "best_head_val_accuracy", H5T_NATIVE_DOUBLE, &r->best_head_val_acc));
    CH_TRY(write_attr(f, path, "ensemble_val_accuracy", H5T_NATIVE_DOUBLE, &r->ensemble_val_acc));
    CH_TRY(write_attr(f, path, "n_train", H5T_NATIVE_INT64, &r->n_train));
    CH_TRY(write_attr(f, path, "n_val", H5T_NATIVE_INT64, &r->n_val));
    CH_TRY(write_attr(f, path, "n_test", H5T_NATIVE_INT64, &r->n_test));
    return write_str_attr(f, path, "split", "fnv1a64(id) % 5: 0 validation, 1 test, 2..4 train");
}

/* The format-only baseline: its figures when fitted, why not otherwise. */
static int write_baseline(hid_t f, const char *path, const ch_probe_baseline *b) {
    char feats[512];
    feature_list(feats, sizeof feats);
    const int32_t warn = b->warn;
    CH_TRY(write_str_attr(f, path, "format_baseline", b->fitted ? "fitted" : "skipped"));
    CH_TRY(write_str_attr(f, path, "format_baseline_note", b->note));
    CH_TRY(write_str_attr(f, path, "format_baseline_features", feats));
    if (!b->fitted) return 0;
    CH_TRY(write_attr(f, path, "format_baseline_test_accuracy", H5T_NATIVE_DOUBLE, &b->test_acc));
    CH_TRY(write_attr(f, path, "format_baseline_val_accuracy", H5T_NATIVE_DOUBLE, &b->val_acc));
    CH_TRY(write_attr(f, path, "format_baseline_lambda", H5T_NATIVE_DOUBLE, &b->lambda));
    return write_attr(f, path, "format_baseline_warning", H5T_NATIVE_INT32, &warn);
}

int ch_probe_write(const char *path, const ch_probe_result *r) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = ch_h5_mem_create(path); /* built in memory, written by ch_h5_mem_save (h5seal.h) */
    if (f < 0) CH_FAIL(CH_EHDF5, "%s: cannot create the probe file", path);
    int rc = 0;
    const hsize_t L = r->L, H = r->H, D = r->D, C = CH_NCAP, K = r->k;
    const hsize_t dw[4] = {L, H, C, D}, db[3] = {L, H, C}, dm[3] = {L, H, D}, dt[2] = {C, K};
    CH_TRY_GOTO(write_ds(f, path, "weights", H5T_NATIVE_FLOAT, 4, dw, r->weights), out);
    CH_TRY_GOTO(write_ds(f, path, "bias", H5T_NATIVE_FLOAT, 3, db, r->bias), out);
    CH_TRY_GOTO(write_ds(f, path, "mean", H5T_NATIVE_FLOAT, 3, dm, r->mean), out);
    CH_TRY_GOTO(write_ds(f, path, "std", H5T_NATIVE_FLOAT, 3, dm, r->std), out);
    CH_TRY_GOTO(write_ds(f, path, "top_heads", H5T_NATIVE_INT32, 2, dt, r->top_heads), out);
    CH_TRY_GOTO(write_fig(f, path, "top_scores", 2, dt, r->top_scores, "validation"), out);
    /* training rows per class: a class with none is masked out of every softmax (capmix) */
    CH_TRY_GOTO(write_ds(f, path, "class_train", H5T_NATIVE_INT64, 1, &C, r->class_train), out);
    CH_TRY_GOTO(write_ds(f, path, "class_val", H5T_NATIVE_INT64, 1, &C, r->class_val), out);
    CH_TRY_GOTO(write_ds(f, path, "class_test", H5T_NATIVE_INT64, 1, &C, r->class_test), out);
    CH_TRY_GOTO(write_figures(f, path, r), out);
    CH_TRY_GOTO(write_baseline(f, path, &r->base), out);
    int32_t ver = CH_PROBES_VERSION;
    char caps[160];
    snprintf(caps, sizeof caps, "[\"%s\", \"%s\", \"%s\", \"%s\", \"%s\"]", ch_capability_names[0],
             ch_capability_names[1], ch_capability_names[2], ch_capability_names[3],
             ch_capability_names[4]);
    CH_TRY_GOTO(write_str_attr(f, path, "format", CH_PROBES_FORMAT), out);
    CH_TRY_GOTO(write_attr(f, path, "format_version", H5T_NATIVE_INT32, &ver), out);
    CH_TRY_GOTO(write_str_attr(f, path, "capability_names", caps), out);
    CH_TRY_GOTO(write_str_attr(f, path, "score", "ovr_auc: one-vs-rest ROC AUC of the head's multinomial probability (validation)"), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_path", r->input_path), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_created", r->input_created), out);
    CH_TRY_GOTO(write_str_attr(f, path, "input_sha256", r->input_sha256), out);
    CH_TRY_GOTO(write_str_attr(f, path, "options", r->options), out);
    if (r->render && r->render->recorded) CH_TRY_GOTO(ch_render_rule_write(f, path, r->render), out);
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
        double s = r->test_ovr_auc[h * CH_NCAP + c];
        if (!isnan(s)) lo = s < lo ? s : lo, hi = s > hi ? s : hi;
    }
    if (!(hi > lo)) lo = 0, hi = 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", w, hgt);
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"14\">%s: test one-vs-rest AUC per head (held out, n=%lld); "
               "top-%d by validation outlined</text>\n",
            x0, ch_capability_names[c], (long long)r->n_test, r->k);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            double s = r->test_ovr_auc[(l * H + h) * CH_NCAP + c];
            int rgb[3] = {200, 200, 200}; /* NaN (class absent from the test rows): grey */
            if (!isnan(s)) ramp((s - lo) / (hi - lo), rgb);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\">"
                       "<title>layer %d head %d: test AUC %.4f</title></rect>\n",
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
    fprintf(f, "<text x=\"%d\" y=\"%d\">test AUC</text>\n</svg>\n", bx, y0 - 6);
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
    fprintf(f, "layer,head,test_accuracy,val_accuracy,lambda");
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",test_auc_%s", ch_capability_names[c]);
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",val_auc_%s", ch_capability_names[c]);
    for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",top_%s", ch_capability_names[c]);
    fprintf(f, "\n");
    for (int h = 0; h < r->L * r->H; h++) {
        fprintf(f, "%d,%d,%.6f,%.6f,%.6g", h / r->H, h % r->H, r->test_acc[h], r->val_acc[h], r->lambda[h]);
        for (int c = 0; c < CH_NCAP; c++) fprintf(f, ",%.6f", r->test_ovr_auc[h * CH_NCAP + c]);
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

/* The summary's root attributes of a version-2 probe file. */
typedef struct {
    int32_t ver, k, best;
    double best_test, ens_test, base_test;
    int64_t ntr, nva, nte;
    char input[1024], base[16], note[1024];
    int32_t warn;
} probe_summary;

static int read_str(hid_t f, const char *name, char *buf, size_t cap) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, cap) < 0) {
        if (t >= 0) H5Tclose(t);
        return -1;
    }
    const int e = read_attr(f, name, t, buf);
    H5Tclose(t);
    buf[cap - 1] = 0;
    return e;
}

static int read_summary(hid_t f, const char *path, probe_summary *s) {
    char fmt[64] = "";
    if (read_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, CH_PROBES_FORMAT))
        CH_FAIL(CH_EFORMAT, "%s: not a probe file (format '%s')", path, fmt);
    if (read_attr(f, "format_version", H5T_NATIVE_INT32, &s->ver))
        CH_FAIL(CH_EFORMAT, "%s: probe file without format_version", path);
    if (s->ver != CH_PROBES_VERSION)
        CH_FAIL(CH_EFORMAT, "%s: probe file version %d, this build reads version %d (version 1 has no held-out "
                "test figures: run probe again)", path, s->ver, CH_PROBES_VERSION);
    if (read_attr(f, "top_k", H5T_NATIVE_INT32, &s->k) || s->k < 1 ||
        read_attr(f, "best_head", H5T_NATIVE_INT32, &s->best) ||
        read_attr(f, "best_head_test_accuracy", H5T_NATIVE_DOUBLE, &s->best_test) ||
        read_attr(f, "ensemble_test_accuracy", H5T_NATIVE_DOUBLE, &s->ens_test) ||
        read_attr(f, "n_train", H5T_NATIVE_INT64, &s->ntr) || read_attr(f, "n_val", H5T_NATIVE_INT64, &s->nva) ||
        read_attr(f, "n_test", H5T_NATIVE_INT64, &s->nte) || read_str(f, "input_path", s->input, sizeof s->input) ||
        read_str(f, "format_baseline", s->base, sizeof s->base) ||
        read_str(f, "format_baseline_note", s->note, sizeof s->note))
        CH_FAIL(CH_EFORMAT, "%s: probe file version %d: missing or bad root attributes", path, s->ver);
    if (!strcmp(s->base, "fitted") &&
        (read_attr(f, "format_baseline_test_accuracy", H5T_NATIVE_DOUBLE, &s->base_test) ||
         read_attr(f, "format_baseline_warning", H5T_NATIVE_INT32, &s->warn)))
        CH_FAIL(CH_EFORMAT, "%s: format_baseline is 'fitted' without its figures", path);
    return 0;
}

int ch_probe_print_summary(const char *path, FILE *out) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) CH_FAIL(CH_EIO, "%s: cannot open as an HDF5 file", path);
    int rc = 0;
    int32_t *top = NULL;
    probe_summary s;
    memset(&s, 0, sizeof s);
    hid_t d = -1, sp = -1;
    CH_TRY_GOTO(read_summary(f, path, &s), out_);
    d = H5Dopen2(f, "test_accuracy", H5P_DEFAULT);
    hsize_t dims[2] = {0, 0};
    sp = d >= 0 ? H5Dget_space(d) : -1;
    if (sp < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) != 2 || dims[1] < 1)
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: /test_accuracy missing or not [L,H]", path);
    H5Dclose(d);
    d = H5Dopen2(f, "top_heads", H5P_DEFAULT);
    CH_TRY_GOTO(CH_ALLOC(top, (size_t)CH_NCAP * s.k, "top heads"), out_);
    if (d < 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, top) < 0)
        CH_FAIL_GOTO(out_, CH_EFORMAT, "%s: /top_heads missing or unreadable", path);
    const int H = (int)dims[1];
    fprintf(out, "%s: capheads probe file v%d\n  input: %s\n  %llu layers x %llu heads, %lld train / %lld "
                 "validation / %lld test rows\n",
            path, s.ver, s.input, (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)s.ntr,
            (long long)s.nva, (long long)s.nte);
    fprintf(out, "  test accuracy (held out, n=%lld): best head L%d.H%d %.2f%%, top-%d ensemble %.2f%%\n",
            (long long)s.nte, s.best / H, s.best % H, 100 * s.best_test, s.k, 100 * s.ens_test);
    fprintf(out, "  (the heads, their lambdas, k and the best head were chosen on the %lld validation rows)\n",
            (long long)s.nva);
    if (!strcmp(s.base, "fitted"))
        fprintf(out, "  format-only baseline: test accuracy (held out, n=%lld) %.2f%%%s\n", (long long)s.nte,
                100 * s.base_test, s.warn ? ": WARNING, the classes can be told apart by format (docs/probe.md#format-baseline)" : "");
    else
        fprintf(out, "  format-only baseline: skipped (%s)\n", s.note);
    for (int c = 0; c < CH_NCAP; c++) {
        fprintf(out, "  %-12s", ch_capability_names[c]);
        for (int j = 0; j < s.k; j++) fprintf(out, " L%d.H%d", top[c * s.k + j] / H, top[c * s.k + j] % H);
        fprintf(out, "\n");
    }
out_:
    free(top);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}
