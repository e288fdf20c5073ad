/* h5seal.c - see h5seal.h. */
#include "h5seal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "h5util.h"

#define DS_ATTR "sha256"
#define ROOT_ATTR "content_sha256"

/* The file seal: HDF5's user block (the bytes before its superblock, left to the application)
 * holds SEAL_MAGIC, the SHA-256 of every byte after the block as 64 hex digits, a newline and
 * zeros. It is checked on the raw bytes before HDF5 parses anything: HDF5 1.10 reads a damaged
 * object header past its buffer (seen under ASan), so a flipped bit in its own structures must
 * never reach it. */
#define SEAL_BLOCK 512
#define SEAL_MAGIC "capheads sealed file v1\nsha256 "
static const char HDF5_SIGNATURE[8] = {'\211', 'H', 'D', 'F', '\r', '\n', '\032', '\n'};

typedef struct {
    const char *path;
    int verify;         /* 0: write each dataset's sha256, 1: compare with it */
    EVP_MD_CTX *all;    /* the root digest */
    const char *ds;     /* visit_attr: the dataset whose attributes these are, NULL for the root */
    int rc;
} walk;

static int sha_hex(const void *buf, size_t n, char hex[65]) {
    unsigned char md[32];
    CH_TRY(ch_sha256(buf, n, md));
    ch_sha256_hex(md, hex);
    return 0;
}

static void feed(EVP_MD_CTX *c, const char *kind, const char *name, const char *hex) {
    EVP_DigestUpdate(c, kind, strlen(kind));
    EVP_DigestUpdate(c, name, strlen(name) + 1);
    EVP_DigestUpdate(c, hex, strlen(hex));
    EVP_DigestUpdate(c, "\n", 1);
}

/* SHA-256 of a dataset's bytes in its file type (fixed-length strings and numbers as stored). */
static int dataset_hex(hid_t d, const char *path, const char *name, char hex[65]) {
    int rc = 0;
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    char *buf = NULL;
    if (t < 0 || s < 0) CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: HDF5 cannot read its type or shape (damaged file?)", path, name);
    if (H5Tis_variable_str(t) > 0 || H5Tget_class(t) == H5T_VLEN)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s has variable-length data, which capheads does not write", path, name);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    size_t es = H5Tget_size(t);
    if (n < 0 || es == 0) CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: bad shape or type (damaged file?)", path, name);
    size_t bytes = (size_t)n * es;
    /* none of these files is compressed: a shape larger than the file is a damaged one */
    hid_t file = H5Iget_file_id(d);
    hsize_t fsize = 0;
    if (file < 0 || H5Fget_filesize(file, &fsize) < 0 || (hsize_t)bytes > fsize) {
        if (file >= 0) H5Fclose(file);
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: its shape says %zu bytes, more than the file holds (damaged file?)",
                     path, name, bytes);
    }
    H5Fclose(file);
    buf = malloc(bytes ? bytes : 1);
    if (!buf) CH_FAIL_GOTO(out, CH_ENOMEM, "%s: out of memory reading /%s (%zu bytes)", path, name, bytes);
    if (bytes && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: HDF5 cannot read it (damaged file?)", path, name);
    rc = sha_hex(buf, bytes, hex);
out:
    free(buf);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    return rc;
}

/* Every hard link's full name ("a", "g/b"); datasets are picked out later. */
typedef struct {
    char **name;
    size_t n, cap;
} names;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)g;
    names *l = op;
    if (info->type != H5L_TYPE_HARD) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **nn = realloc(l->name, cap * sizeof *nn);
        if (!nn) return -1;
        l->name = nn, l->cap = cap;
    }
    return (l->name[l->n] = strdup(name)) ? (l->n++, 0) : -1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static herr_t visit_attr(hid_t obj, const char *name, const H5A_info_t *ainfo, void *op);

/* One dataset: its digest written (seal) or compared (verify), then fed to the root digest. */
static int one_dataset(walk *w, hid_t f, const char *name) {
    const char *path = w->path;
    hid_t o = H5Oopen(f, name, H5P_DEFAULT);
    if (o < 0) CH_FAIL(CH_EFORMAT, "%s: /%s: HDF5 cannot open it (damaged file?)", path, name);
    int rc = 0;
    char hex[65] = "", *stored = NULL;
    if (H5Iget_type(o) != H5I_DATASET) goto out;
    CH_TRY_GOTO(dataset_hex(o, path, name, hex), out);
    if (w->verify) {
        if (ch_h5_get_str(o, DS_ATTR, &stored))
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: its sha256 attribute is unreadable (damaged file?)", path, name);
        if (!stored)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s has no sha256: not written by this capheads, or damaged; rerun the stage that made it", path, name);
        if (strcmp(stored, hex))
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s does not match its stored SHA-256 (the file is damaged: rerun the stage that made it)", path, name);
    } else if (ch_h5_put_str(o, DS_ATTR, hex)) {
        CH_FAIL_GOTO(out, CH_EHDF5, "%s: cannot write the checksum of /%s", path, name);
    }
    feed(w->all, "D ", name, hex);
    hsize_t idx = 0;
    w->ds = name;
    herr_t e = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, w);
    w->ds = NULL;
    if (w->rc) rc = w->rc;
    else if (e < 0) CH_FAIL_GOTO(out, CH_EFORMAT, "%s: dataset /%s: HDF5 cannot list its attributes (damaged file?)", path, name);
out:
    free(stored);
    H5Oclose(o);
    return rc;
}

/* One attribute fed to the root digest: a root one as "A name", a dataset's as "a ds/name" (its
 * own sha256 left out), so that a flipped `split` or unit on a dataset is caught too. */
static herr_t visit_attr(hid_t obj, const char *name, const H5A_info_t *ainfo, void *op) {
    (void)ainfo;
    walk *w = op;
    if (!strcmp(name, w->ds ? DS_ATTR : ROOT_ATTR)) return 0;
    int rc = 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    char *buf = NULL, hex[65] = "-";
    if (a < 0 || t < 0 || s < 0)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s: root attribute %s: HDF5 cannot read it (damaged file?)", w->path, name);
    if (H5Tis_variable_str(t) <= 0 && H5Tget_class(t) != H5T_VLEN) {
        hssize_t n = H5Sget_simple_extent_npoints(s);
        size_t bytes = (size_t)(n > 0 ? n : 0) * H5Tget_size(t);
        if (!(buf = malloc(bytes + 1))) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory");
        if (bytes && H5Aread(a, t, buf) < 0)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: root attribute %s: HDF5 cannot read it (damaged file?)", w->path, name);
        CH_TRY_GOTO(sha_hex(buf, bytes, hex), out);
    }
    if (w->ds) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", w->ds, name);
        feed(w->all, "a ", full, hex);
    } else {
        feed(w->all, "A ", name, hex);
    }
out:
    free(buf);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (rc) w->rc = rc;
    return rc ? -1 : 0;
}

/* Walk every dataset and root attribute; hex = the root digest. */
static int walk_file(hid_t f, const char *path, int verify, char hex[65]) {
    walk w = {path, verify, EVP_MD_CTX_new(), NULL, 0};
    if (!w.all || EVP_DigestInit_ex(w.all, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(w.all);
        CH_FAIL(CH_EINTERNAL, "OpenSSL SHA-256 unavailable");
    }
    /* datasets in strcmp order of their full names, whatever order HDF5 visits them in */
    names l = {0};
    herr_t e = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, collect, &l);
    if (e >= 0 && l.n) qsort(l.name, l.n, sizeof *l.name, cmp_name); /* l.name is NULL when there are none */
    for (size_t i = 0; e >= 0 && !w.rc && i < l.n; i++) w.rc = one_dataset(&w, f, l.name[i]);
    for (size_t i = 0; i < l.n; i++) free(l.name[i]);
    free(l.name);
    if (e >= 0 && !w.rc) {
        hsize_t idx = 0;
        e = H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, &w);
    }
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(w.all, md, &len);
    EVP_MD_CTX_free(w.all);
    ch_sha256_hex(md, hex);
    if (w.rc) return w.rc;
    if (e < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot list its datasets and attributes (damaged file?)", path);
    return 0;
}

hid_t ch_h5_mem_create(const char *name) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0) f = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

static int seal_hex(const char *img, size_t n, char hex[65]) {
    return sha_hex(img + SEAL_BLOCK, n - SEAL_BLOCK, hex);
}

/* Write the seal into the first SEAL_BLOCK bytes of img, which the HDF5 image follows. */
static int fill_block(char *img, size_t n) {
    char hex[65];
    CH_TRY(seal_hex(img, n, hex));
    memset(img, 0, SEAL_BLOCK);
    snprintf(img, SEAL_BLOCK, "%s%s\n", SEAL_MAGIC, hex);
    return 0;
}

/* The raw bytes of a file as they were read: *sealed = 1 when the file seal is there and holds,
 * 0 when the file starts with HDF5's signature (no user block: an archive, or a sealed file
 * rewritten by h5unjam; its content seal still applies). Anything else is CH_EFORMAT. */
static int check_block(const char *path, const char *img, size_t n, int *sealed) {
    *sealed = 0;
    if (n >= sizeof HDF5_SIGNATURE && !memcmp(img, HDF5_SIGNATURE, sizeof HDF5_SIGNATURE)) return 0;
    const size_t m = strlen(SEAL_MAGIC);
    if (n < SEAL_BLOCK + sizeof HDF5_SIGNATURE || memcmp(img, SEAL_MAGIC, m))
        CH_FAIL(CH_EFORMAT, "%s: neither an HDF5 file nor a sealed capheads file (its first bytes are damaged, or it is "
                            "not a capheads output)", path);
    char hex[65];
    CH_TRY(seal_hex(img, n, hex));
    int block_ok = img[m + 64] == '\n';
    for (size_t i = m + 65; block_ok && i < SEAL_BLOCK; i++) block_ok = img[i] == 0;
    if (!block_ok || memcmp(img + m, hex, 64))
        CH_FAIL(CH_EFORMAT, "%s: its bytes do not match the SHA-256 in its first %d bytes (the file seal): the file is "
                            "damaged, or was rewritten by another program; rerun the stage that made it",
                path, SEAL_BLOCK);
    *sealed = 1;
    return 0;
}

int ch_h5_check_file_seal(const char *path, int *sealed) {
    *sealed = 0;
    char head[sizeof HDF5_SIGNATURE], *img = NULL;
    size_t n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) CH_FAIL(CH_EIO, "%s: cannot open: %s", path, strerror(errno));
    n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (n == sizeof head && !memcmp(head, HDF5_SIGNATURE, sizeof head)) return 0; /* an archive: not read whole */
    CH_TRY(ch_fs_read_file(path, &img, &n));
    int rc = check_block(path, img, n, sealed);
    free(img);
    return rc;
}

/* An HDF5 handle on bytes in memory (the core driver, nothing on disk). */
static hid_t open_image(char *img, size_t n, unsigned flags) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_file_image(fapl, img, n) >= 0)
        f = H5Fopen("/dev/null/capheads-in-memory", flags, fapl); /* the core driver refuses a name that
                                                                    * exists on disk */
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

/* Write f's bytes to path and close f. With seal, the bytes follow a user block holding the
 * file seal: H5Fget_file_image leaves any user block out, and HDF5 finds a superblock that
 * starts 512 bytes in by itself (h5py, h5dump and h5repack read such files). */
static int save_image(hid_t f, const char *path, int seal) {
    int rc = 0, fd = -1;
    char *img = NULL;
    size_t at = seal ? SEAL_BLOCK : 0;
    ssize_t n = H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(f, NULL, 0);
    if (n < 0 || !(img = calloc(at + (size_t)n + 1, 1)) || H5Fget_file_image(f, img + at, (size_t)n) != n)
        CH_FAIL_GOTO(out, CH_EHDF5, "%s: HDF5 could not make the file's bytes", path);
    n += (ssize_t)at;
    if (seal) CH_TRY_GOTO(fill_block(img, (size_t)n), out);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        CH_FAIL_GOTO(out, CH_EIO, "%s: cannot create: %s", path, strerror(errno));
    for (ssize_t done = 0, w; done < n; done += w)
        if ((w = write(fd, img + done, (size_t)(n - done))) <= 0)
            CH_FAIL_GOTO(out, CH_EIO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress (disk full?)");
    if (fsync(fd)) CH_FAIL_GOTO(out, CH_EIO, "%s: write failed: %s", path, strerror(errno));
out:
    if (fd >= 0 && close(fd) && !rc) rc = ch_err_set(CH_EIO, __FILE__, __LINE__, "%s: write failed: %s", path, strerror(errno));
    free(img);
    if (H5Fclose(f) < 0 && !rc) rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: closing the in-memory file failed", path);
    return rc;
}

int ch_h5_mem_save(hid_t f, const char *path) {
    return save_image(f, path, 0);
}

/* The file is read into memory, sealed there and written back whole. */
int ch_h5_seal(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char *buf = NULL;
    size_t len = 0;
    CH_TRY(ch_fs_read_file(path, &buf, &len));
    hid_t f = open_image(buf, len, H5F_ACC_RDWR);
    free(buf);
    if (f < 0) CH_FAIL(CH_EFORMAT, "%s: HDF5 cannot open it to add its checksums", path);
    char hex[65];
    int rc = walk_file(f, path, 0, hex);
    if (!rc && ch_h5_put_str(f, ROOT_ATTR, hex)) rc = ch_err_set(CH_EHDF5, __FILE__, __LINE__, "%s: cannot write content_sha256", path);
    if (rc) {
        H5Fclose(f);
        return rc;
    }
    return save_image(f, path, 1);
}

int ch_h5_verify_seal(hid_t f, const char *path) {
    char hex[65], *stored = NULL;
    if (ch_h5_get_str(f, ROOT_ATTR, &stored))
        CH_FAIL(CH_EFORMAT, "%s: its content_sha256 is unreadable (damaged file?)", path);
    if (!stored)
        CH_FAIL(CH_EFORMAT, "%s: no content_sha256: not written by this capheads (or damaged); rerun the stage that made it", path);
    int rc = walk_file(f, path, 1, hex);
    if (!rc && strcmp(hex, stored))
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                        "%s: its attributes (the root's or a dataset's) or its list of datasets do not match content_sha256 (the file is damaged: rerun the stage that made it)", path);
    free(stored);
    return rc;
}

/* HDF5 parses the very bytes whose file seal was checked: read once, opened from memory. */
int ch_h5_open_sealed(const char *path, hid_t *f) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    *f = -1;
    struct stat sb;
    if (stat(path, &sb)) CH_FAIL(CH_EIO, "%s: cannot open: no such file", path);
    char *img = NULL;
    size_t n = 0;
    int sealed = 0;
    CH_TRY(ch_fs_read_file(path, &img, &n));
    int rc = check_block(path, img, n, &sealed);
    if (!rc && (*f = open_image(img, n, H5F_ACC_RDONLY)) < 0)
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: HDF5 cannot open it (not an HDF5 file, or damaged or truncated)", path);
    free(img);
    if (!rc) rc = ch_h5_verify_seal(*f, path);
    if (rc && *f >= 0) {
        H5Fclose(*f);
        *f = -1;
    }
    return rc;
}
