/* capmix.c - see capmix.h. */
#include "capmix.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "h5seal.h"
#include "h5util.h"

#define H5CHK(call)                                                                               \
    do {                                                                                          \
        if ((call) < 0) CH_FAIL_GOTO(done, CH_EHDF5, "%s: %s failed", path, #call);              \
    } while (0)

/* Read a whole float/int dataset with an expected number of elements. */
static int read_all(hid_t f, const char *path, const char *name, hid_t memtype, size_t expect,
                    void *dst) {
    int rc = 0;
    hid_t d = -1, s = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        CH_FAIL(CH_EFORMAT, "%s: no dataset '%s' (not a capheads probe file?)", path, name);
    H5CHK(d = H5Dopen2(f, name, H5P_DEFAULT));
    H5CHK(s = H5Dget_space(d));
    hssize_t n = H5Sget_simple_extent_npoints(s);
    if (n < 0 || (size_t)n != expect)
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: dataset '%s' has %lld elements, expected %zu", path, name,
                     (long long)n, expect);
    H5CHK(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst));
done:
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int dims_of(hid_t f, const char *path, const char *name, int rank, hsize_t *dims) {
    int rc = 0;
    hid_t d = -1, s = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        CH_FAIL(CH_EFORMAT, "%s: no dataset '%s' (not a capheads probe file?)", path, name);
    H5CHK(d = H5Dopen2(f, name, H5P_DEFAULT));
    H5CHK(s = H5Dget_space(d));
    if (H5Sget_simple_extent_ndims(s) != rank)
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: dataset '%s' should have %d dimensions", path, name, rank);
    H5CHK(H5Sget_simple_extent_dims(s, dims, NULL));
done:
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* Read rows `idx` (n of them, ascending) of a dataset whose leading dims are [L*H] flattened,
 * each row `row` floats, by one hyperslab per row (n is small: the mapped heads). */
static int read_rows(hid_t f, const char *path, const char *name, const int *idx, int n, size_t row,
                     int L, int H, float *dst) {
    int rc = 0;
    hid_t d = -1, fs = -1, ms = -1;
    H5CHK(d = H5Dopen2(f, name, H5P_DEFAULT));
    H5CHK(fs = H5Dget_space(d));
    int nd = H5Sget_simple_extent_ndims(fs);
    if (nd < 2 || nd > 4) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: dataset '%s' rank %d", path, name, nd);
    hsize_t dims[4];
    H5CHK(H5Sget_simple_extent_dims(fs, dims, NULL));
    size_t inner = 1;
    for (int i = 2; i < nd; i++) inner *= dims[i];
    if (dims[0] != (hsize_t)L || dims[1] != (hsize_t)H || inner != row)
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: dataset '%s' has the wrong shape", path, name);
    hsize_t mdim = row;
    H5CHK(ms = H5Screate_simple(1, &mdim, NULL));
    for (int i = 0; i < n; i++) {
        hsize_t start[4] = {(hsize_t)(idx[i] / H), (hsize_t)(idx[i] % H), 0, 0};
        hsize_t count[4] = {1, 1, nd > 2 ? dims[2] : 1, nd > 3 ? dims[3] : 1};
        H5CHK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
        H5CHK(H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst + (size_t)i * row));
    }
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Which classes the probes know: /class_train counts when the file has them, else a class is
 * absent when the fit never moved it from its zero start at any mapped head. */
static int load_present(hid_t f, const char *path, ch_capmix *cm) {
    const size_t D = (size_t)cm->head_dim;
    int n = 0;
    if (H5Lexists(f, "class_train", H5P_DEFAULT) > 0) {
        int64_t cnt[CH_NCAP];
        CH_TRY(read_all(f, path, "class_train", H5T_NATIVE_INT64, CH_NCAP, cnt));
        for (int c = 0; c < CH_NCAP; c++) n += (cm->present[c] = cnt[c] > 0);
    } else {
        for (int c = 0; c < CH_NCAP; c++) {
            int moved = 0;
            for (int m = 0; m < cm->n_mapped && !moved; m++) {
                moved = cm->b[m * CH_NCAP + c] != 0;
                for (size_t d = 0; d < D && !moved; d++) moved = cm->w[((size_t)m * CH_NCAP + c) * D + d] != 0;
            }
            n += (cm->present[c] = moved);
        }
    }
    if (n < 1) CH_FAIL(CH_EFORMAT, "%s: the probes know no capability class (class_train all 0?)", path);
    return 0;
}

/* SHA-256 over everything the mixes depend on (see capmix.h). */
static int make_digest(const ch_capmix *cm, const int *top, char hex[65]) {
    const size_t D = (size_t)cm->head_dim, M = (size_t)cm->n_mapped;
    int32_t shape[4] = {cm->n_layers, cm->n_heads, cm->head_dim, cm->top_k}, pres[CH_NCAP];
    for (int c = 0; c < CH_NCAP; c++) pres[c] = cm->present[c];
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, "capheads-probes-digest-1", 24) == 1 &&
             EVP_DigestUpdate(ctx, shape, sizeof shape) == 1 &&
             EVP_DigestUpdate(ctx, top, sizeof(int) * CH_NCAP * (size_t)cm->top_k) == 1 &&
             EVP_DigestUpdate(ctx, pres, sizeof pres) == 1 &&
             EVP_DigestUpdate(ctx, cm->w, sizeof(float) * M * CH_NCAP * D) == 1 &&
             EVP_DigestUpdate(ctx, cm->b, sizeof(float) * M * CH_NCAP) == 1 &&
             EVP_DigestUpdate(ctx, cm->mean, sizeof(float) * M * D) == 1 &&
             EVP_DigestUpdate(ctx, cm->std, sizeof(float) * M * D) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    ch_sha256_hex(md, hex);
    return 0;
}

int ch_capmix_load(const char *path, ch_capmix *cm) {
    memset(cm, 0, sizeof *cm);
    int rc = 0, *top = NULL;
    hid_t f = -1;
    CH_TRY(ch_h5_open_sealed(path, &f)); /* every byte checked: h5seal.h */
    hsize_t wd[4], td[2];
    CH_TRY_GOTO(dims_of(f, path, "weights", 4, wd), done);
    CH_TRY_GOTO(dims_of(f, path, "top_heads", 2, td), done);
    if (wd[2] != CH_NCAP || td[0] != CH_NCAP)
        CH_FAIL_GOTO(done, CH_EMISMATCH, "%s: probes are for %llu capabilities, expected %d", path,
                     (unsigned long long)wd[2], CH_NCAP);
    cm->n_layers = (int)wd[0], cm->n_heads = (int)wd[1], cm->head_dim = (int)wd[3];
    cm->top_k = (int)td[1];
    int nheads = cm->n_layers * cm->n_heads;
    CH_TRY_GOTO(CH_ALLOC(top, CH_NCAP * cm->top_k, "top heads"), done);
    CH_TRY_GOTO(read_all(f, path, "top_heads", H5T_NATIVE_INT, (size_t)CH_NCAP * cm->top_k, top), done);
    /* union of the sets, ascending */
    CH_TRY_GOTO(CH_ALLOC(cm->mapped, CH_NCAP * cm->top_k, "mapped heads"), done);
    memcpy(cm->mapped, top, sizeof(int) * CH_NCAP * cm->top_k);
    qsort(cm->mapped, (size_t)CH_NCAP * cm->top_k, sizeof(int), cmp_int);
    for (int i = 0; i < CH_NCAP * cm->top_k; i++) {
        if (cm->mapped[i] < 0 || cm->mapped[i] >= nheads)
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s: top_heads holds head %d outside 0..%d", path,
                         cm->mapped[i], nheads - 1);
        if (!cm->n_mapped || cm->mapped[cm->n_mapped - 1] != cm->mapped[i])
            cm->mapped[cm->n_mapped++] = cm->mapped[i];
    }
    CH_TRY_GOTO(CH_ALLOC(cm->used, cm->n_layers, "used layers"), done);
    for (int i = 0; i < cm->n_mapped; i++) {
        int l = cm->mapped[i] / cm->n_heads;
        if (!cm->n_used || cm->used[cm->n_used - 1] != l) cm->used[cm->n_used++] = l;
    }
    CH_TRY_GOTO(CH_ALLOC(cm->sets, CH_NCAP * cm->top_k, "head sets"), done);
    for (int i = 0; i < CH_NCAP * cm->top_k; i++) {
        int *at = bsearch(&top[i], cm->mapped, (size_t)cm->n_mapped, sizeof(int), cmp_int);
        cm->sets[i] = (int)(at - cm->mapped);
    }
    size_t D = (size_t)cm->head_dim, M = (size_t)cm->n_mapped;
    CH_TRY_GOTO(CH_ALLOC(cm->w, M * CH_NCAP * D, "probe weights"), done);
    CH_TRY_GOTO(CH_ALLOC(cm->b, M * CH_NCAP, "probe biases"), done);
    CH_TRY_GOTO(CH_ALLOC(cm->mean, M * D, "probe means"), done);
    CH_TRY_GOTO(CH_ALLOC(cm->std, M * D, "probe scales"), done);
    CH_TRY_GOTO(read_rows(f, path, "weights", cm->mapped, cm->n_mapped, CH_NCAP * D, cm->n_layers,
                          cm->n_heads, cm->w), done);
    CH_TRY_GOTO(read_rows(f, path, "bias", cm->mapped, cm->n_mapped, CH_NCAP, cm->n_layers,
                          cm->n_heads, cm->b), done);
    CH_TRY_GOTO(read_rows(f, path, "mean", cm->mapped, cm->n_mapped, D, cm->n_layers, cm->n_heads,
                          cm->mean), done);
    CH_TRY_GOTO(read_rows(f, path, "std", cm->mapped, cm->n_mapped, D, cm->n_layers, cm->n_heads,
                          cm->std), done);
    for (size_t i = 0; i < M * D; i++)
        if (!(cm->std[i] > 0) || !isfinite(cm->mean[i]))
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s: standardization of mapped head %d is not usable", path,
                         cm->mapped[i / D]);
    CH_TRY_GOTO(load_present(f, path, cm), done);
    CH_TRY_GOTO(make_digest(cm, top, cm->digest), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "capability_names", &cm->capability_names), done);
    CH_TRY_GOTO(ch_h5_get_str(f, "input_sha256", &cm->source_sha256), done);
    CH_TRY_GOTO(ch_render_rule_read(f, path, &cm->render), done);
    cm->heads = CH_HEADS_OWN;
done:
    free(top);
    H5Fclose(f);
    if (rc) ch_capmix_free(cm);
    return rc;
}

void ch_capmix_free(ch_capmix *cm) {
    free(cm->mapped), free(cm->sets), free(cm->w), free(cm->b), free(cm->mean), free(cm->std);
    free(cm->source_sha256), free(cm->used), free(cm->capability_names);
    memset(cm, 0, sizeof *cm);
}

/* rows are [nl][H][D]; slot[m] is where mapped head m starts inside a row */
static int apply(const ch_capmix *cm, const float *acts, int64_t n, double *p, size_t width, const size_t *slot) {
    const int D = cm->head_dim;
    double probs[CH_NCAP]; /* one head's softmax */
    double *ph = malloc(sizeof(double) * cm->n_mapped * CH_NCAP);
    if (!ph) CH_FAIL(CH_ENOMEM, "out of memory for probe outputs");
    for (int64_t r = 0; r < n; r++) {
        const float *x = acts + (size_t)r * width;
        for (int m = 0; m < cm->n_mapped; m++) {
            const float *xh = x + slot[m];
            double mx = -INFINITY;
            for (int c = 0; c < CH_NCAP; c++) {
                if (!cm->present[c]) continue; /* masked out of the softmax, as in the fit */
                const float *w = cm->w + ((size_t)m * CH_NCAP + c) * D;
                double z = cm->b[m * CH_NCAP + c];
                for (int d = 0; d < D; d++) {
                    if (!isfinite(xh[d])) {
                        free(ph);
                        CH_FAIL(CH_EFORMAT, "row %lld, layer %d head %d: non-finite activation",
                                (long long)r, cm->mapped[m] / cm->n_heads, cm->mapped[m] % cm->n_heads);
                    }
                    z += (double)w[d] * ((xh[d] - cm->mean[(size_t)m * D + d]) / cm->std[(size_t)m * D + d]);
                }
                probs[c] = z;
                if (z > mx) mx = z;
            }
            double den = 0;
            for (int c = 0; c < CH_NCAP; c++) den += (probs[c] = cm->present[c] ? exp(probs[c] - mx) : 0);
            for (int c = 0; c < CH_NCAP; c++) ph[m * CH_NCAP + c] = probs[c] / den;
        }
        double q[CH_NCAP], tot = 0;
        for (int c = 0; c < CH_NCAP; c++) {
            double s = 0;
            if (cm->heads == CH_HEADS_UNION) { /* every mapped head's whole distribution */
                for (int m = 0; m < cm->n_mapped; m++) s += ph[m * CH_NCAP + c];
                q[c] = s / cm->n_mapped;
            } else { /* capability c by its own heads S_c */
                for (int j = 0; j < cm->top_k; j++) s += ph[cm->sets[c * cm->top_k + j] * CH_NCAP + c];
                q[c] = s / cm->top_k;
            }
            tot += q[c];
        }
        if (!(tot > 0)) { /* own: every capability's heads give it (numerically) nothing */
            free(ph);
            CH_FAIL(CH_EFORMAT, "row %lld: every capability has probability 0 at its own heads", (long long)r);
        }
        for (int c = 0; c < CH_NCAP; c++) p[r * CH_NCAP + c] = q[c] / tot;
    }
    free(ph);
    return 0;
}

int ch_capmix_apply(const ch_capmix *cm, const float *acts, int64_t n, double *p) {
    size_t *slot = malloc(sizeof(size_t) * (size_t)(cm->n_mapped ? cm->n_mapped : 1));
    if (!slot) CH_FAIL(CH_ENOMEM, "out of memory");
    for (int m = 0; m < cm->n_mapped; m++) slot[m] = (size_t)cm->mapped[m] * cm->head_dim;
    int rc = apply(cm, acts, n, p, (size_t)cm->n_layers * cm->n_heads * cm->head_dim, slot);
    free(slot);
    return rc;
}

int ch_capmix_apply_used(const ch_capmix *cm, const float *acts, int64_t n, double *p) {
    size_t *slot = malloc(sizeof(size_t) * (size_t)(cm->n_mapped ? cm->n_mapped : 1));
    if (!slot) CH_FAIL(CH_ENOMEM, "out of memory");
    for (int m = 0, u = 0; m < cm->n_mapped; m++) {
        while (cm->used[u] != cm->mapped[m] / cm->n_heads) u++;
        slot[m] = ((size_t)u * cm->n_heads + (size_t)(cm->mapped[m] % cm->n_heads)) * cm->head_dim;
    }
    int rc = apply(cm, acts, n, p, (size_t)cm->n_used * cm->n_heads * cm->head_dim, slot);
    free(slot);
    return rc;
}

int ch_capmix_read(const ch_capmix *cm, ch_archive_reader *r, int64_t row0, int64_t n, float *acts, float *tmp) {
    const size_t HD = (size_t)cm->n_heads * cm->head_dim;
    for (int u = 0; u < cm->n_used; u++) {
        CH_TRY(ch_archive_read_acts_layers(r, row0, n, cm->used[u], 1, tmp));
        for (int64_t i = 0; i < n; i++) memcpy(acts + ((size_t)i * cm->n_used + u) * HD, tmp + (size_t)i * HD, HD * sizeof(float));
    }
    return 0;
}

const char *ch_capmix_heads_name(int heads) { return heads == CH_HEADS_UNION ? "union" : "own"; }

int ch_capmix_heads_parse(const char *name, int *heads) {
    if (!strcmp(name, "own")) *heads = CH_HEADS_OWN;
    else if (!strcmp(name, "union")) *heads = CH_HEADS_UNION;
    else CH_FAIL(CH_EARG, "--heads must be own or union, got '%s'", name);
    return 0;
}

int ch_capability_names_same(const char *a, const char *b) {
    cJSON *x = a ? cJSON_Parse(a) : NULL, *y = b ? cJSON_Parse(b) : NULL;
    int same = cJSON_IsArray(x) && cJSON_IsArray(y) && cJSON_GetArraySize(x) == cJSON_GetArraySize(y);
    for (int i = 0; same && i < cJSON_GetArraySize(x); i++) {
        cJSON *u = cJSON_GetArrayItem(x, i), *v = cJSON_GetArrayItem(y, i);
        same = cJSON_IsString(u) && cJSON_IsString(v) && !strcmp(u->valuestring, v->valuestring);
    }
    cJSON_Delete(x), cJSON_Delete(y);
    return same;
}

double ch_capmix_score_dot(const double *w, const double *p) {
    double s = 0;
    for (int c = 0; c < CH_NCAP; c++) s += w[c] * p[c];
    return s;
}

double ch_capmix_score_cosine(const double *w, const double *p) {
    double s = 0, a = 0, b = 0;
    for (int c = 0; c < CH_NCAP; c++) s += w[c] * p[c], a += w[c] * w[c], b += p[c] * p[c];
    return a > 0 && b > 0 ? s / sqrt(a * b) : 0.0;
}
