/* test_safetensors.c - the safetensors reader and the f16/bf16 conversions.
 *
 * References: a file written by the Python `safetensors` package and numpy conversion results
 * (tests/golden/make_safetensors_golden.py); hand-built files for the layouts and every kind of
 * damage the reader must refuse with a message naming the file and the tensor. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "ops_math.h"
#include "safetensors.h"

static char tmpdir[256];

static const char *golden(const char *name) {
    static char p[1024];
    const char *src = getenv("CH_SRC");
    snprintf(p, sizeof p, "%s/tests/golden/safetensors/%s", src ? src : ".", name);
    return p;
}

/* tmpdir/sub/name; sub may be "" */
static const char *tpath(const char *sub, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s%s%s", tmpdir, sub, *sub ? "/" : "", name);
    return p;
}

static const char *mkdir_t(const char *sub) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, sub);
    ck_assert_msg(mkdir(p, 0700) == 0, "mkdir %s", p);
    return p;
}

static void write_raw(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* A safetensors file: 8-byte LE header length (hlen_override when not 0), header, data. */
static void write_st_len(const char *path, const char *hdr, const void *data, size_t ndata,
                         unsigned long long hlen_override) {
    size_t h = strlen(hdr);
    unsigned long long hl = hlen_override ? hlen_override : h;
    unsigned char *b = malloc(8 + h + ndata + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (ndata) memcpy(b + 8 + h, data, ndata);
    write_raw(path, b, 8 + h + ndata);
    free(b);
}
static void write_st(const char *path, const char *hdr, const void *data, size_t ndata) {
    write_st_len(path, hdr, data, ndata, 0);
}

static void expect_open_fails(const char *path, int code, const char *needle) {
    ch_st_file *f = (ch_st_file *)1;
    ch_err_clear();
    int rc = ch_st_file_open(path, &f);
    ck_assert_msg(rc == code, "%s: rc %d (%s), want %d", path, rc, ch_err_msg(), code);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(ch_err_msg(), path) != NULL, "message does not name the file: %s", ch_err_msg());
    ck_assert_msg(strstr(ch_err_msg(), needle) != NULL, "message lacks '%s': %s", needle, ch_err_msg());
}

static uint32_t bits(float f) { return ch_f32_to_bits(f); }

/* ---- reading real files ------------------------------------------------------------------- */

START_TEST(test_reads_file_written_by_python_safetensors) {
    ch_st_file *f;
    ck_assert_int_eq(ch_st_file_open(golden("tiny.safetensors"), &f), 0);
    FILE *e = fopen(golden("tiny_expected.txt"), "r");
    ck_assert_ptr_nonnull(e);
    char name[128], dt[16];
    int ndim, i = 0;
    while (fscanf(e, "%127s %15s %d", name, dt, &ndim) == 3) {
        const ch_st_tensor *t = ch_st_file_tensor(f, i++); /* both sorted by name */
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, name);
        ck_assert_str_eq(ch_dtype_name(t->dtype), dt);
        ck_assert_int_eq(t->ndim, ndim);
        for (int k = 0; k < ndim; k++) {
            long long d;
            ck_assert_int_eq(fscanf(e, "%lld", &d), 1);
            ck_assert_int_eq(t->shape[k], d);
        }
        size_t n;
        ck_assert_int_eq(fscanf(e, "%zu", &n), 1);
        ck_assert_uint_eq(t->nbytes, n * ch_dtype_size(t->dtype));
        float *v = malloc((n ? n : 1) * sizeof *v);
        ch_convert_to_f32(t->data, t->dtype, n, v);
        for (size_t k = 0; k < n; k++) {
            unsigned want;
            ck_assert_int_eq(fscanf(e, "%x", &want), 1);
            ck_assert_msg(bits(v[k]) == want, "%s[%zu]: %08x, torch says %08x", name, k, bits(v[k]), want);
        }
        free(v);
    }
    ck_assert_int_eq(i, 7);
    ck_assert_int_eq(ch_st_file_count(f), 7);
    ck_assert_ptr_null(ch_st_file_tensor(f, 7));
    fclose(e);
    ch_st_file_close(f);
}
END_TEST

/* Header of odd length: the data lands unaligned, which the reader must handle (UBSan checks). */
START_TEST(test_roundtrip_unaligned_f32_f16_bf16_via_dir) {
    float w[4] = {1.5f, -0.25f, 3.0e-3f, 1024.0f};
    float h[3] = {0.5f, -2.0f, 65504.0f}, g[2] = {-1.0f, 0.15625f}; /* exact in f16 / bf16 */
    unsigned char data[16 + 6 + 4];
    memcpy(data, w, 16);
    for (int i = 0; i < 3; i++) {
        uint16_t b = ch_f32_to_f16(h[i]);
        memcpy(data + 16 + 2 * i, &b, 2);
    }
    for (int i = 0; i < 2; i++) {
        uint16_t b = ch_f32_to_bf16(g[i]);
        memcpy(data + 22 + 2 * i, &b, 2);
    }
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                      "\"b.h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                      "\"c.g\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[22,26]}}";
    ck_assert_int_eq(strlen(hdr) % 2, 1);
    mkdir_t("rt");
    write_st(tpath("rt", "model.safetensors"), hdr, data, sizeof data);
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "rt"), &d), 0);
    ck_assert_int_eq(ch_st_count(d), 3);
    ck_assert_str_eq(ch_st_tensor_at(d, 2)->name, "c.g");
    ck_assert_ptr_null(ch_st_find(d, "nope"));
    const ch_st_tensor *t;
    float out[4];
    ck_assert_int_eq(ch_st_get(d, "a.w", 2, (int64_t[]){2, 2}, &t), 0);
    ch_convert_to_f32(t->data, t->dtype, 4, out);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(bits(out[i]), bits(w[i]));
    ck_assert_int_eq(ch_st_get(d, "b.h", 1, (int64_t[]){3}, &t), 0);
    ck_assert_uint_eq(t->nbytes, 6);
    ch_convert_to_f32(t->data, t->dtype, 3, out);
    for (int i = 0; i < 3; i++) ck_assert_uint_eq(bits(out[i]), bits(h[i]));
    ck_assert_int_eq(ch_st_get(d, "c.g", 2, (int64_t[]){1, 2}, &t), 0);
    ck_assert_str_eq(t->file, tpath("rt", "model.safetensors"));
    ch_convert_to_f32(t->data, t->dtype, 2, out);
    for (int i = 0; i < 2; i++) ck_assert_uint_eq(bits(out[i]), bits(g[i]));
    /* the pointer is at header + offset in the mapping */
    ck_assert_ptr_eq((const char *)t->data - 22, (const char *)ch_st_find(d, "a.w")->data);
    ch_st_close_dir(d);
}
END_TEST

START_TEST(test_sharded_dir_maps_each_tensor_to_its_shard) {
    mkdir_t("sh");
    float a[3] = {1, 2, 9}, b[3] = {3, 4, 5};
    write_st(tpath("sh", "model-00001-of-00002.safetensors"),
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"unlisted\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
             a, sizeof a);
    write_st(tpath("sh", "model-00002-of-00002.safetensors"),
             "{\"y\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}}",
             b, sizeof b);
    const char *idx = "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
                      "\"y\":\"model-00002-of-00002.safetensors\",\"x\":\"model-00001-of-00002.safetensors\","
                      "\"z\":\"model-00002-of-00002.safetensors\"}}";
    write_raw(tpath("sh", "model.safetensors.index.json"), idx, strlen(idx));
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "sh"), &d), 0);
    ck_assert_int_eq(ch_st_count(d), 3);
    ck_assert_ptr_null(ch_st_find(d, "unlisted")); /* the index is the namespace */
    const ch_st_tensor *x = ch_st_find(d, "x"), *y = ch_st_find(d, "y"), *z = ch_st_find(d, "z");
    ck_assert_ptr_nonnull(strstr(x->file, "model-00001-of-00002"));
    ck_assert_ptr_nonnull(strstr(y->file, "model-00002-of-00002"));
    ck_assert_ptr_eq(y->file, z->file); /* one shard opened once */
    float v[3];
    ch_convert_to_f32(y->data, y->dtype, 3, v);
    ck_assert(v[0] == 3 && v[1] == 4 && v[2] == 5);
    ch_convert_to_f32(x->data, x->dtype, 2, v);
    ck_assert(v[0] == 1 && v[1] == 2);
    ch_st_close_dir(d);
}
END_TEST

START_TEST(test_missing_shard_is_incomplete_and_named) {
    mkdir_t("ms");
    float a = 1;
    write_st(tpath("ms", "s1.safetensors"), "{\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
             &a, 4);
    const char *idx = "{\"weight_map\":{\"x\":\"s1.safetensors\",\"layers.3.w\":\"s2.safetensors\"}}";
    write_raw(tpath("ms", "model.safetensors.index.json"), idx, strlen(idx));
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "ms"), &d), CH_EINCOMPLETE);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "shard 's2.safetensors' is missing"));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "layers.3.w"));
}
END_TEST

START_TEST(test_index_tensor_absent_from_shard) {
    mkdir_t("ab");
    float a = 1;
    write_st(tpath("ab", "s1.safetensors"),
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", &a, 4);
    const char *idx = "{\"weight_map\":{\"x\":\"s1.safetensors\",\"ghost\":\"s1.safetensors\"}}";
    write_raw(tpath("ab", "model.safetensors.index.json"), idx, strlen(idx));
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "ab"), &d), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "tensor 'ghost' is listed in shard 's1.safetensors'"));
}
END_TEST

START_TEST(test_index_shard_outside_dir_refused) {
    mkdir_t("es");
    const char *idx = "{\"weight_map\":{\"x\":\"../elsewhere.safetensors\"}}";
    write_raw(tpath("es", "model.safetensors.index.json"), idx, strlen(idx));
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "es"), &d), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "not a file name in the model directory"));
}
END_TEST

START_TEST(test_dir_without_checkpoint_names_dir) {
    const char *dir = mkdir_t("none");
    ch_st_dir *d;
    ck_assert_int_eq(ch_st_open_dir(dir, &d), CH_EIO);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), dir));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "no model.safetensors"));
}
END_TEST

/* ---- damaged files ------------------------------------------------------------------------ */

#define ONE_F32(name, off) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}"
static const float eight[8] = {1, 2, 3, 4, 5, 6, 7, 8};

START_TEST(test_header_length_past_eof) {
    const char *p = tpath("", "hlen.safetensors");
    write_st_len(p, "{" ONE_F32("a", "[0,8]") "}", eight, 8, 4096);
    expect_open_fails(p, CH_EFORMAT, "header length 4096 runs past the end of the file");
    write_raw(p, "\x10\0\0", 3);
    expect_open_fails(p, CH_EFORMAT, "too short for the 8-byte header length");
}
END_TEST

START_TEST(test_data_cut_short_names_tensor) {
    const char *p = tpath("", "cut.safetensors");
    write_st(p, "{" ONE_F32("a", "[0,8]") "," ONE_F32("model.layers.0.mlp.up_proj.weight", "[8,16]") "}",
             eight, 12); /* four bytes of the second tensor are missing */
    expect_open_fails(p, CH_EFORMAT,
                      "tensor 'model.layers.0.mlp.up_proj.weight': data_offsets [8, 16] run past the end of "
                      "the file (buffer is 12 bytes)");
}
END_TEST

START_TEST(test_overlapping_offsets_name_both_tensors) {
    const char *p = tpath("", "ovl.safetensors");
    write_st(p,
             "{" ONE_F32("c", "[16,24]") "," ONE_F32("a", "[0,8]") "," ONE_F32(
                 "b", "[4,12]") ","
                                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]}}",
             eight, 32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'b': data_offsets [4, 12] overlap those of tensor 'a' [0, 8]");
    /* An empty tensor inside another's bytes occupies nothing: not an overlap. */
    write_st(p, "{" ONE_F32("a", "[0,8]") ",\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
             eight, 8);
    ch_st_file *f;
    ck_assert_int_eq(ch_st_file_open(p, &f), 0);
    ch_st_file_close(f);
}
END_TEST

START_TEST(test_offsets_past_file) {
    const char *p = tpath("", "past.safetensors");
    write_st(p, "{" ONE_F32("w", "[100,108]") "}", eight, 32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': data_offsets [100, 108] run past the end of the file");
}
END_TEST

START_TEST(test_begin_after_end) {
    const char *p = tpath("", "rev.safetensors");
    write_st(p, "{" ONE_F32("w", "[8,0]") "}", eight, 32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': data_offsets [8, 0] have begin > end");
    write_st(p, "{" ONE_F32("w", "[-8,0]") "}", eight, 32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': data_offsets must be non-negative integers");
}
END_TEST

START_TEST(test_shape_size_mismatch) {
    const char *p = tpath("", "size.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,8]}}", eight, 32);
    expect_open_fails(p, CH_EFORMAT,
                      "tensor 'w': shape [3, 2] of BF16 needs 12 bytes but data_offsets [0, 8] hold 8");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", eight, 32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': shape[0] is not a non-negative integer");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", eight,
             32);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': shape is too large to address");
}
END_TEST

START_TEST(test_unknown_dtype_is_unsupported) {
    const char *p = tpath("", "dt.safetensors");
    write_st(p, "{\"lm_head.weight\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", eight, 8);
    expect_open_fails(p, CH_EUNSUPPORTED, "tensor 'lm_head.weight': dtype 'F64' is not supported");
    write_st(p, "{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': missing or non-string \"dtype\"");
}
END_TEST

START_TEST(test_non_json_header) {
    const char *p = tpath("", "json.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "is not valid JSON");
    write_st(p, "{}garbage", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "trailing bytes after the JSON object");
    write_st(p, "[1,2]", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "header is JSON but not an object");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': \"data_offsets\" must be an array [begin, end]");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", eight, 8);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w': missing or non-array \"shape\"");
    write_st(p, "{" ONE_F32("w", "[0,8]") "," ONE_F32("w", "[8,16]") "}", eight, 16);
    expect_open_fails(p, CH_EFORMAT, "tensor 'w' appears twice");
}
END_TEST

START_TEST(test_padded_header_and_empty_file_accepted) {
    const char *p = tpath("", "pad.safetensors");
    write_st(p, "{" ONE_F32("w", "[0,8]") "}      ", eight, 8);
    ch_st_file *f;
    ck_assert_int_eq(ch_st_file_open(p, &f), 0);
    ck_assert_int_eq(ch_st_file_count(f), 1);
    ch_st_file_close(f);
    write_st(p, "{}", NULL, 0);
    ck_assert_int_eq(ch_st_file_open(p, &f), 0);
    ck_assert_int_eq(ch_st_file_count(f), 0);
    ch_st_file_close(f);
}
END_TEST

START_TEST(test_get_checks_shape_and_dtype) {
    mkdir_t("get");
    int32_t ids[2] = {1, 2};
    unsigned char data[16 + 8];
    memcpy(data, eight, 16);
    memcpy(data + 16, ids, 8);
    write_st(tpath("get", "model.safetensors"),
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
             "\"ids\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
             data, sizeof data);
    ch_st_dir *d;
    const ch_st_tensor *t = (const ch_st_tensor *)1;
    ck_assert_int_eq(ch_st_open_dir(tpath("", "get"), &d), 0);
    ck_assert_int_eq(ch_st_get(d, "w", 2, (int64_t[]){4, 1}, &t), CH_EMISMATCH);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), tpath("get", "model.safetensors")));
    ck_assert_ptr_nonnull(
        strstr(ch_err_msg(), "model.safetensors: tensor 'w': expected shape [4, 1], found [2, 2]"));
    ck_assert_int_eq(ch_st_get(d, "w", 1, (int64_t[]){4}, &t), CH_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "expected shape [4], found [2, 2]"));
    ck_assert_int_eq(ch_st_get(d, "ids", 1, (int64_t[]){2}, &t), CH_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "tensor 'ids' has dtype I32, expected a float type"));
    ck_assert_int_eq(ch_st_get(d, "model.norm.weight", 1, (int64_t[]){2}, &t), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "has no tensor 'model.norm.weight'"));
    ck_assert_int_eq(ch_st_get(d, "w", 2, (int64_t[]){2, 2}, &t), 0);
    ck_assert_ptr_eq(t, ch_st_find(d, "w"));
    ch_st_close_dir(d);
}
END_TEST

/* ---- conversions against numpy ------------------------------------------------------------ */

static uint32_t *load_f16_table(void) {
    uint32_t *tab = malloc(65536 * 4);
    FILE *f = fopen(golden("f16_to_f32.bin"), "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(tab, 4, 65536, f), 65536);
    fclose(f);
    return tab;
}

START_TEST(test_f16_to_f32_all_patterns_match_numpy) {
    uint32_t *tab = load_f16_table();
    /* through ch_convert_to_f32 from an odd address: unaligned input is allowed */
    unsigned char *src = malloc(2 * 65536 + 1);
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        memcpy(src + 1 + 2 * i, &h, 2);
    }
    float *out = malloc(65536 * sizeof *out);
    ch_convert_to_f32(src + 1, CH_DT_F16, 65536, out);
    for (uint32_t i = 0; i < 65536; i++) {
        ck_assert_msg(bits(ch_f16_to_f32((uint16_t)i)) == tab[i], "f16 %04x: %08x, numpy %08x", i,
                      bits(ch_f16_to_f32((uint16_t)i)), tab[i]);
        ck_assert_uint_eq(bits(out[i]), tab[i]);
    }
    free(out);
    free(src);
    free(tab);
}
END_TEST

START_TEST(test_f16_roundtrip_all_patterns) {
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i, back = ch_f32_to_f16(ch_f16_to_f32(h));
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) /* NaN: comes back as the quiet NaN, same sign */
            ck_assert_uint_eq(back, (h & 0x8000) | 0x7e00);
        else
            ck_assert_msg(back == h, "f16 %04x came back as %04x", h, back);
    }
}
END_TEST

/* Reads f32_cases.txt and checks one column; NaN inputs other than the canonical quiet NaN only
 * need to stay NaN with their sign (payload handling differs between numpy's paths). */
static void check_f32_cases(int bf16) {
    FILE *f = fopen(golden("f32_cases.txt"), "r");
    ck_assert_ptr_nonnull(f);
    char line[128];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        unsigned x, h;
        char b[16];
        ck_assert_int_eq(sscanf(line, "%x %x %15s", &x, &h, b), 3);
        float v = ch_bits_to_f32(x);
        uint16_t got = bf16 ? ch_f32_to_bf16(v) : ch_f32_to_f16(v);
        int is_nan = (x & 0x7fffffffu) > 0x7f800000u;
        if (is_nan && (x & 0x7fffffffu) != 0x7fc00000u) {
            float back = bf16 ? ch_bf16_to_f32(got) : ch_f16_to_f32(got);
            ck_assert_msg(back != back && (got >> 15) == (x >> 31), "NaN %08x -> %04x", x, got);
        } else {
            unsigned want = h;
            if (bf16 && !is_nan) ck_assert_int_eq(sscanf(b, "%x", &want), 1);
            if (bf16 && is_nan) want = (x >> 16) | 0x40;
            ck_assert_msg(got == want, "%s(%08x = %.9g) = %04x, reference %04x", bf16 ? "bf16" : "f16", x,
                          (double)v, got, want);
        }
        n++;
    }
    fclose(f);
    ck_assert_int_gt(n, 3000);
}

START_TEST(test_f32_to_f16_matches_numpy) { check_f32_cases(0); }
END_TEST
START_TEST(test_f32_to_bf16_matches_exact_rne) { check_f32_cases(1); }
END_TEST

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) { return remove(p); }

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/ch_st_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) return EXIT_FAILURE;
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_reads_file_written_by_python_safetensors);
    tcase_add_test(tc, test_roundtrip_unaligned_f32_f16_bf16_via_dir);
    tcase_add_test(tc, test_sharded_dir_maps_each_tensor_to_its_shard);
    tcase_add_test(tc, test_missing_shard_is_incomplete_and_named);
    tcase_add_test(tc, test_index_tensor_absent_from_shard);
    tcase_add_test(tc, test_index_shard_outside_dir_refused);
    tcase_add_test(tc, test_dir_without_checkpoint_names_dir);
    tcase_add_test(tc, test_header_length_past_eof);
    tcase_add_test(tc, test_data_cut_short_names_tensor);
    tcase_add_test(tc, test_overlapping_offsets_name_both_tensors);
    tcase_add_test(tc, test_offsets_past_file);
    tcase_add_test(tc, test_begin_after_end);
    tcase_add_test(tc, test_shape_size_mismatch);
    tcase_add_test(tc, test_unknown_dtype_is_unsupported);
    tcase_add_test(tc, test_non_json_header);
    tcase_add_test(tc, test_padded_header_and_empty_file_accepted);
    tcase_add_test(tc, test_get_checks_shape_and_dtype);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("conversions");
    tcase_add_test(tv, test_f16_to_f32_all_patterns_match_numpy);
    tcase_add_test(tv, test_f16_roundtrip_all_patterns);
    tcase_add_test(tv, test_f32_to_f16_matches_numpy);
    tcase_add_test(tv, test_f32_to_bf16_matches_exact_rne);
    suite_add_tcase(s, tv);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
