/* safetensors.c - memory-mapped, fully validated safetensors reader (see safetensors.h).
 *
 * A file is mapped once, read-only; every tensor's data pointer points into the mapping, so a
 * 16 GB checkpoint costs page cache, not heap. Nothing is handed out before the whole header has
 * been checked: a bad file fails at open with a message naming the file and the tensor, never
 * later as a wild read inside a GEMM. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "dtype.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

struct ch_st_file {
    char *path;
    void *map;
    size_t map_len;
    const uint8_t *buf; /* start of the byte buffer (after the header) */
    size_t buf_len;
    int n;
    ch_st_tensor *t; /* sorted by name */
};

struct ch_st_dir {
    char *path;
    int nfiles;
    ch_st_file **files;
    int n;
    const ch_st_tensor **byname; /* sorted by name */
};




/* ---- small helpers ------------------------------------------------------------------------- */

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int join_path(const char *dir, const char *name, char **out) {
    size_t a = strlen(dir), b = strlen(name);
    CH_TRY(ch_malloc((void **)out, a + b + 2, "a path"));
    memcpy(*out, dir, a);
    (*out)[a] = '/';
    memcpy(*out + a + 1, name, b + 1);
    return 0;
}

/* A JSON number that is an exact non-negative integer (below 2^53, where doubles are exact). */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static void format_shape(char *s, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(s, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(s + k, cap - k, "]");
}

/* ---- one file ------------------------------------------------------------------------------ */

/* Fill t from one header entry; offsets are checked against the buffer. */
static int parse_entry(const ch_st_file *f, const cJSON *e, ch_st_tensor *t) {
    const char *p = f->path, *name = e->string;
    if (!cJSON_IsObject(e))
        CH_FAIL(CH_EFORMAT, "%s: tensor '%s': header entry is not a JSON object", p, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) CH_FAIL(CH_EFORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", p, name);
    if (!cJSON_IsArray(sh)) CH_FAIL(CH_EFORMAT, "%s: tensor '%s': missing or non-array \"shape\"", p, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        CH_FAIL(CH_EFORMAT, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", p, name);

    if (!ch_dtype_parse(dt->valuestring, &t->dtype))
        CH_FAIL(CH_EUNSUPPORTED,
                "%s: tensor '%s': dtype '%s' is not supported (capheads reads F32, F16, BF16, I32, I64, U8)",
                p, name, dt->valuestring);

    int ndim = cJSON_GetArraySize(sh);
    if (ndim > CH_ST_MAXDIM)
        CH_FAIL(CH_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", p, name, ndim,
                CH_ST_MAXDIM);
    t->ndim = ndim;
    size_t nbytes = ch_dtype_size(t->dtype);
    int zero = 0, overflow = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d;
        if (!json_u64(cJSON_GetArrayItem(sh, i), &d))
            CH_FAIL(CH_EFORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", p, name, i);
        t->shape[i] = (int64_t)d;
        if (d == 0)
            zero = 1;
        else if (nbytes > SIZE_MAX / d)
            overflow = 1;
        else
            nbytes *= (size_t)d;
    }
    if (zero)
        nbytes = 0; /* a zero dimension makes the product 0 whatever came before */
    else if (overflow)
        CH_FAIL(CH_EFORMAT, "%s: tensor '%s': shape is too large to address", p, name);

    uint64_t b, en;
    if (!json_u64(cJSON_GetArrayItem(off, 0), &b) || !json_u64(cJSON_GetArrayItem(off, 1), &en))
        CH_FAIL(CH_EFORMAT, "%s: tensor '%s': data_offsets must be non-negative integers", p, name);
    if (b > en)
        CH_FAIL(CH_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] have begin > end", p, name,
                (unsigned long long)b, (unsigned long long)en);
    if (en > f->buf_len)
        CH_FAIL(
            CH_EFORMAT,
            "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the file (buffer is %zu bytes)",
            p, name, (unsigned long long)b, (unsigned long long)en, f->buf_len);
    if (en - b != nbytes) {
        char s[256];
        format_shape(s, sizeof s, ndim, t->shape);
        CH_FAIL(CH_EFORMAT,
                "%s: tensor '%s': shape %s of %s needs %zu bytes but data_offsets [%llu, %llu] hold %llu", p,
                name, s, ch_dtype_name(t->dtype), nbytes, (unsigned long long)b, (unsigned long long)en,
                (unsigned long long)(en - b));
    }
    t->nbytes = nbytes;
    t->data = f->buf + b;
    t->file = f->path;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const ch_st_tensor *x = a, *y = b;
    const uint8_t *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}
static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const ch_st_tensor *)a)->name, ((const ch_st_tensor *)b)->name);
}

/* Parse and validate the header of a mapped file: fills f->n and f->t (sorted by name). */
static int parse_header(ch_st_file *f) {
    const char *p = f->path;
    const uint8_t *m = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m[i];
    if (hlen > f->map_len - 8)
        CH_FAIL(CH_EFORMAT,
                "%s: header length %llu runs past the end of the file (%zu bytes after the length)", p,
                (unsigned long long)hlen, f->map_len - 8);
    const char *hdr = (const char *)m + 8, *end = NULL;
    f->buf = m + 8 + hlen;
    f->buf_len = f->map_len - 8 - (size_t)hlen;

    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        CH_FAIL(CH_EFORMAT, "%s: header (%llu bytes) is not valid JSON (error near header byte %zu)", p,
                (unsigned long long)hlen, at);
    }
    int rc = 0;
    for (; end < hdr + hlen; end++) /* the writer pads the header with spaces */
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
            CH_FAIL_GOTO(done, CH_EFORMAT,
                         "%s: header has trailing bytes after the JSON object (at header byte %zu)", p,
                         (size_t)(end - hdr));
    if (!cJSON_IsObject(root)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: header is JSON but not an object", p);

    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    CH_TRY_GOTO(CH_ALLOC(f->t, n ? n : 1, "safetensors tensor table"), done);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e))
                CH_FAIL_GOTO(done, CH_EFORMAT, "%s: \"__metadata__\" is not an object", p);
            continue;
        }
        ch_st_tensor *t = &f->t[f->n];
        CH_TRY_GOTO(parse_entry(f, e, t), done);
        if (!(t->name = dupstr(e->string)))
            CH_FAIL_GOTO(done, CH_ENOMEM, "%s: out of memory for tensor names", p);
        f->n++;
    }

    /* Overlap: after sorting by offset, an overlapping pair exists iff two consecutive non-empty
     * tensors overlap. Empty tensors occupy no bytes and may sit anywhere. */
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_by_offset);
    const ch_st_tensor *prev = NULL;
    for (int i = 0; i < f->n; i++) {
        const ch_st_tensor *t = &f->t[i];
        if (!t->nbytes) continue;
        if (prev && (const uint8_t *)prev->data + prev->nbytes > (const uint8_t *)t->data) {
            size_t pb = (size_t)((const uint8_t *)prev->data - f->buf),
                   tb = (size_t)((const uint8_t *)t->data - f->buf);
            CH_FAIL_GOTO(done, CH_EFORMAT,
                         "%s: tensor '%s': data_offsets [%zu, %zu] overlap those of tensor '%s' [%zu, %zu]",
                         p, t->name, tb, tb + t->nbytes, prev->name, pb, pb + prev->nbytes);
        }
        prev = t;
    }
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_by_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0)
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s: tensor '%s' appears twice in the header", p, f->t[i].name);
done:
    cJSON_Delete(root);
    return rc;
}

int ch_st_file_open(const char *path, ch_st_file **out) {
    *out = NULL;
    ch_st_file *f;
    CH_TRY(CH_ALLOC(f, 1, "safetensors file"));
    int rc = 0, fd = -1;
    if (!(f->path = dupstr(path))) CH_FAIL_GOTO(fail, CH_ENOMEM, "%s: out of memory", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) CH_FAIL_GOTO(fail, CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) CH_FAIL_GOTO(fail, CH_EIO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) CH_FAIL_GOTO(fail, CH_EIO, "%s: not a regular file", path);
    if (st.st_size < 8)
        CH_FAIL_GOTO(fail, CH_EFORMAT, "%s: file is %lld bytes, too short for the 8-byte header length", path,
                     (long long)st.st_size);
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        CH_FAIL_GOTO(fail, CH_EIO, "%s: mmap of %zu bytes failed: %s", path, f->map_len, strerror(errno));
    }
    close(fd);
    fd = -1;
    CH_TRY_GOTO(parse_header(f), fail);
    *out = f;
    return 0;
fail:
    if (fd >= 0) close(fd);
    ch_st_file_close(f);
    return rc;
}

void ch_st_file_close(ch_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

int ch_st_file_count(const ch_st_file *f) { return f->n; }
const ch_st_tensor *ch_st_file_tensor(const ch_st_file *f, int i) {
    return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

static const ch_st_tensor *file_find(const ch_st_file *f, const char *name) {
    ch_st_tensor key = {.name = name};
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_by_name);
}

/* ---- a model directory --------------------------------------------------------------------- */

static int cmp_ptr_by_name(const void *a, const void *b) {
    return strcmp((*(const ch_st_tensor *const *)a)->name, (*(const ch_st_tensor *const *)b)->name);
}


/* Build the sorted name table and reject names that occur twice. */
static int finish_dir(ch_st_dir *d, const char *what) {
    qsort(d->byname, (size_t)d->n, sizeof *d->byname, cmp_ptr_by_name);
    for (int i = 1; i < d->n; i++)
        if (strcmp(d->byname[i - 1]->name, d->byname[i]->name) == 0)
            CH_FAIL(CH_EFORMAT, "%s: tensor '%s' is listed twice", what, d->byname[i]->name);
    return 0;
}

static int open_single(ch_st_dir *d, const char *path) {
    CH_TRY(CH_ALLOC(d->files, 1, "shard table"));
    CH_TRY(ch_st_file_open(path, &d->files[0]));
    d->nfiles = 1;
    ch_st_file *f = d->files[0];
    CH_TRY(CH_ALLOC(d->byname, f->n ? f->n : 1, "tensor name table"));
    for (int i = 0; i < f->n; i++) d->byname[d->n++] = &f->t[i];
    return finish_dir(d, path);
}

/* The index maps every tensor to a shard file in the same directory. Each distinct shard is
 * opened once; tensors a shard holds but the index does not list are not exposed (the index is
 * the namespace, as in transformers). */
static int open_index(ch_st_dir *d, const char *ipath) {
    char *text = NULL, *spath = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    const cJSON **owner = NULL; /* per shard: one weight_map entry that names it, for messages */
    int rc = 0;
    CH_TRY(ch_fs_read_file(ipath, &text, &len));
    if (!(root = cJSON_ParseWithLength(text, len)))
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not valid JSON", ipath);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: no \"weight_map\" object", ipath);
    int n = cJSON_GetArraySize(wm);
    CH_TRY_GOTO(CH_ALLOC(d->files, n ? n : 1, "shard table"), done);
    CH_TRY_GOTO(CH_ALLOC(owner, n ? n : 1, "shard table"), done);
    CH_TRY_GOTO(CH_ALLOC(d->byname, n ? n : 1, "tensor name table"), done);

    int nshards = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s: weight_map entry for tensor '%s' is not a file name", ipath,
                         e->string);
        const char *s = e->valuestring;
        if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
            CH_FAIL_GOTO(done, CH_EFORMAT,
                         "%s: tensor '%s': shard '%s' is not a file name in the model directory", ipath,
                         e->string, s);
        int k = 0;
        while (k < nshards && strcmp(owner[k]->valuestring, s) != 0) k++;
        if (k == nshards) owner[nshards++] = e;
    }
    for (int k = 0; k < nshards; k++) {
        free(spath);
        spath = NULL;
        CH_TRY_GOTO(join_path(d->path, owner[k]->valuestring, &spath), done);
        if (access(spath, F_OK) != 0 && errno == ENOENT)
            CH_FAIL_GOTO(done, CH_EINCOMPLETE, "%s: shard '%s' is missing (it should hold tensor '%s')",
                         ipath, owner[k]->valuestring, owner[k]->string);
        CH_TRY_GOTO(ch_st_file_open(spath, &d->files[k]), done);
        d->nfiles++;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        int k = 0;
        while (strcmp(owner[k]->valuestring, e->valuestring) != 0) k++;
        const ch_st_tensor *t = file_find(d->files[k], e->string);
        if (!t)
            CH_FAIL_GOTO(done, CH_EFORMAT,
                         "%s: tensor '%s' is listed in shard '%s', but %s has no such tensor", ipath,
                         e->string, e->valuestring, d->files[k]->path);
        d->byname[d->n++] = t;
    }
    CH_TRY_GOTO(finish_dir(d, ipath), done);
done:
    free(spath);
    free(owner);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int ch_st_open_dir(const char *dir, ch_st_dir **out) {
    *out = NULL;
    ch_st_dir *d;
    CH_TRY(CH_ALLOC(d, 1, "model directory"));
    char *single = NULL, *index = NULL;
    int rc = 0;
    if (!(d->path = dupstr(dir))) CH_FAIL_GOTO(fail, CH_ENOMEM, "%s: out of memory", dir);
    CH_TRY_GOTO(join_path(dir, "model.safetensors", &single), fail);
    CH_TRY_GOTO(join_path(dir, "model.safetensors.index.json", &index), fail);
    if (access(single, F_OK) == 0)
        CH_TRY_GOTO(open_single(d, single), fail);
    else if (access(index, F_OK) == 0)
        CH_TRY_GOTO(open_index(d, index), fail);
    else
        CH_FAIL_GOTO(fail, CH_EIO,
                     "%s: no model.safetensors or model.safetensors.index.json in this directory", dir);
    free(single);
    free(index);
    *out = d;
    return 0;
fail:
    free(single);
    free(index);
    ch_st_close_dir(d);
    return rc;
}

void ch_st_close_dir(ch_st_dir *d) {
    if (!d) return;
    for (int i = 0; i < d->nfiles; i++) ch_st_file_close(d->files[i]);
    free(d->files);
    free(d->byname);
    free(d->path);
    free(d);
}

const ch_st_tensor *ch_st_find(const ch_st_dir *d, const char *name) {
    ch_st_tensor key = {.name = name};
    const ch_st_tensor *kp = &key;
    const ch_st_tensor **hit = bsearch(&kp, d->byname, (size_t)d->n, sizeof *d->byname, cmp_ptr_by_name);
    return hit ? *hit : NULL;
}

int ch_st_dir_nfiles(const ch_st_dir *d) { return d->nfiles; }
const char *ch_st_dir_file(const ch_st_dir *d, int i) { return d->files[i]->path; }

int ch_st_count(const ch_st_dir *d) { return d->n; }
const ch_st_tensor *ch_st_tensor_at(const ch_st_dir *d, int i) {
    return i >= 0 && i < d->n ? d->byname[i] : NULL;
}

int ch_st_get(const ch_st_dir *d, const char *name, int ndim, const int64_t *shape,
              const ch_st_tensor **out) {
    *out = NULL;
    const ch_st_tensor *t = ch_st_find(d, name);
    if (!t) CH_FAIL(CH_EFORMAT, "%s: the checkpoint has no tensor '%s'", d->path, name);
    if (t->dtype != CH_DT_F32 && t->dtype != CH_DT_F16 && t->dtype != CH_DT_BF16)
        CH_FAIL(CH_EUNSUPPORTED, "%s: tensor '%s' has dtype %s, expected a float type (F32, F16, BF16)",
                t->file, name, ch_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[256], got[256];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        CH_FAIL(CH_EMISMATCH, "%s: tensor '%s': expected shape %s, found %s", t->file, name, want, got);
    }
    *out = t;
    return 0;
}
