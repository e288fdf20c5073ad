/* test_tokenizer.c - the tokenizer against Hugging Face `tokenizers` / transformers golden ids.
 *
 * Golden data: tests/golden/tokenizer_<family>.jsonl.gz and tokenizer_chat.jsonl.gz, made by
 * tests/golden/make_tokenizer_golden.py from the real Llama 3.1 and Qwen3 tokenizer files. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tok_testdata.h"
#include "tokenizer.h"

static size_t b64_decode(const char *s, unsigned char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(tab, *s);
        ck_assert_msg(p != NULL, "bad base64 in golden file");
        acc = acc << 6 | (uint32_t)(p - tab);
        bits += 6;
        if (bits >= 8) bits -= 8, out[n++] = (unsigned char)(acc >> bits);
    }
    return n;
}

static ch_tokenizer *load_family(const char *family) {
    const char *path = td_tokenizer_json(family);
    ck_assert_msg(path != NULL, "cannot decompress the %s tokenizer test data", family);
    ch_tokenizer *t = NULL;
    int rc = ch_tok_load(path, &t);
    ck_assert_msg(rc == 0, "load %s: %s", path, ch_err_msg());
    return t;
}

static int ids_equal(const int32_t *got, size_t n, const cJSON *want) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    for (const cJSON *it = want->child; it; it = it->next, i++)
        if ((int32_t)it->valuedouble != got[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Every golden string of tests/golden/tokenizer_<family>.jsonl.gz, with and without add_special.
 * t: the tokenizer (freed here); min_strings: how many strings the file must hold at least. */
static void check_golden(ch_tokenizer *t, const char *family, size_t min_strings) {
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/tests/golden/tokenizer_%s.jsonl.gz", td_env("CH_SRC", "."), family);
    char *buf;
    size_t len;
    ck_assert_msg(td_gunzip(gz, &buf, &len) == 0, "cannot read %s", gz);
    size_t checked = 0, bad = 0;
    unsigned char *raw = malloc(len + 1);
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) nl = buf + len;
        *nl = 0;
        if (!*line) continue;
        cJSON *rec = cJSON_Parse(line);
        ck_assert_msg(rec != NULL, "bad golden line in %s", gz);
        size_t n = b64_decode(cJSON_GetObjectItem(rec, "b64")->valuestring, raw);
        for (int special = 0; special <= 1; special++) {
            int32_t *ids;
            size_t nid;
            int rc = ch_tok_encode(t, (const char *)raw, n, special, &ids, &nid);
            ck_assert_msg(rc == 0, "encode failed: %s", ch_err_msg());
            const cJSON *want = cJSON_GetObjectItem(rec, special ? "ids_special" : "ids");
            if (!ids_equal(ids, nid, want)) {
                if (bad++ < 8) {
                    fprintf(stderr, "%s mismatch (add_special=%d) for %.*s\n", family, special,
                            (int)(n < 200 ? n : 200), (const char *)raw);
                    print_ids("ours", ids, nid);
                    int32_t w[40];
                    size_t k = 0;
                    for (const cJSON *it = want->child; it && k < 40; it = it->next) w[k++] = (int32_t)it->valuedouble;
                    print_ids("HF  ", w, (size_t)cJSON_GetArraySize(want));
                }
            }
            free(ids);
            checked++;
        }
        cJSON_Delete(rec);
    }
    free(raw);
    free(buf);
    ch_tok_free(t);
    ck_assert_msg(checked >= 2 * min_strings, "only %zu encodings in %s", checked, gz);
    ck_assert_msg(bad == 0, "%zu of %zu encodings differ from HF tokenizers (%s)", bad, checked, family);
}

START_TEST(test_llama3_ids_equal_hf_string_merges_ignore_merges_bos) {
    check_golden(load_family("llama3_1"), "llama3_1", 2000);
}
END_TEST

START_TEST(test_qwen3_ids_equal_hf_pair_merges_nfc) { check_golden(load_family("qwen3"), "qwen3", 2000); }
END_TEST

static ch_tokenizer *load_mini(const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/golden/tokenizer_%s.json", td_env("CH_SRC", "."), name);
    ch_tokenizer *t = NULL;
    ck_assert_msg(ch_tok_load(path, &t) == 0, "%s", ch_err_msg());
    return t;
}

/* mini_a: Split MergedWithNext + String/Removed, ByteLevel use_regex + add_prefix_space,
 * lstrip/rstrip/normalized added tokens, template with BOS and EOS */
START_TEST(test_mini_a_prefix_space_lstrip_rstrip_template_equal_hf) {
    check_golden(load_mini("mini_a"), "mini_a", 1000);
}
END_TEST

/* mini_b: inverted Contiguous / Isolated splits, MergedWithPrevious, "a b" merges, ignore_merges */
START_TEST(test_mini_b_inverted_contiguous_merged_previous_equal_hf) {
    check_golden(load_mini("mini_b"), "mini_b", 1000);
}
END_TEST

START_TEST(test_chat_templates_equal_transformers_apply_chat_template) {
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/tests/golden/tokenizer_chat.jsonl.gz", td_env("CH_SRC", "."));
    char *buf;
    size_t len;
    ck_assert(td_gunzip(gz, &buf, &len) == 0);
    ch_tokenizer *tl = load_family("llama3_1"), *tq = load_family("qwen3");
    int records = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *rec = cJSON_Parse(line);
        ck_assert(rec != NULL);
        int llama = strcmp(cJSON_GetObjectItem(rec, "style")->valuestring, "llama3") == 0;
        const cJSON *ms = cJSON_GetObjectItem(rec, "messages");
        ch_message m[8];
        int nm = 0;
        for (const cJSON *it = ms->child; it && nm < 8; it = it->next, nm++)
            m[nm] = (ch_message){cJSON_GetObjectItem(it, "role")->valuestring, cJSON_GetObjectItem(it, "content")->valuestring};
        int32_t *ids;
        size_t n;
        int rc = ch_tok_encode_chat(llama ? tl : tq, llama ? CH_CHAT_LLAMA3 : CH_CHAT_CHATML, m, nm,
                                    cJSON_GetObjectItem(rec, "gen")->valueint, &ids, &n);
        ck_assert_msg(rc == 0, "%s", ch_err_msg());
        ck_assert_msg(ids_equal(ids, n, cJSON_GetObjectItem(rec, "ids")), "chat record %d differs", records);
        free(ids);
        cJSON_Delete(rec);
        records++;
    }
    ck_assert_int_ge(records, 16);
    ck_assert_int_eq(ch_tok_chat_style(tl), CH_CHAT_LLAMA3);
    ck_assert_int_eq(ch_tok_chat_style(tq), CH_CHAT_CHATML);
    /* a style whose tokens the file lacks is refused, not rendered into plain text */
    int32_t *ids;
    size_t n;
    ch_message one = {"user", "hi"};
    ck_assert_int_eq(ch_tok_encode_chat(tq, CH_CHAT_LLAMA3, &one, 1, 0, &ids, &n), CH_EMISMATCH);
    ch_tok_free(tl), ch_tok_free(tq);
    free(buf);
}
END_TEST

START_TEST(test_vocab_size_and_special_ids) {
    ch_tokenizer *tl = load_family("llama3_1"), *tq = load_family("qwen3");
    ck_assert_int_eq(ch_tok_vocab_size(tl), 128256);
    ck_assert_int_eq(ch_tok_vocab_size(tq), 151669);
    ck_assert_int_eq(ch_tok_token_id(tl, "<|eot_id|>"), 128009);
    ck_assert_int_eq(ch_tok_token_id(tq, "<|im_end|>"), 151645);
    ck_assert_int_eq(ch_tok_token_id(tq, "not a token"), -1);
    ch_tok_free(tl), ch_tok_free(tq);
}
END_TEST

START_TEST(test_hash_is_sha256_of_file_bytes) {
    const char *path = td_tokenizer_json("qwen3");
    char cmd[4200], want[65] = {0};
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    ck_assert(p && fread(want, 1, 64, p) == 64);
    pclose(p);
    ch_tokenizer *t = load_family("qwen3");
    ck_assert_str_eq(ch_tok_hash(t), want);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_long_word_merge_loop_is_not_quadratic) {
    /* 400 KB without a break is one pre-token: a quadratic merge loop needs ~1e11 steps here */
    ch_tokenizer *t = load_family("qwen3");
    size_t n = 400000;
    char *s = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) x = x * 1103515245u + 12345u, s[i] = (char)('a' + (x >> 16) % 26);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int32_t *ids;
    size_t nid;
    ck_assert_int_eq(ch_tok_encode(t, s, n, 0, &ids, &nid), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double sec = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    ck_assert_msg(sec < 20.0, "400 KB word took %.1f s", sec);
    ck_assert(nid > n / 8 && nid < n); /* merged, but no token longer than ~8 letters of noise */
    free(ids), free(s);
    ch_tok_free(t);
}
END_TEST

/* ---- malformed and unsupported files ------------------------------------------------------------ */
static char *write_tmp(const char *text, size_t n) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/tok_bad_%d.json", td_env("CH_BIN", "/tmp"), (int)getpid());
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(text, 1, n, f) == n);
    fclose(f);
    return path;
}

/* The mini tokenizer (tests/golden/tokenizer_mini_*.json) with one substitution applied. */
static int load_mutated(const char *from, const char *to) {
    char path[4200], *buf;
    snprintf(path, sizeof path, "%s/tests/golden/tokenizer_mini_a.json", td_env("CH_SRC", "."));
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + strlen(to) + 1);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    buf[n] = 0;
    char *at = strstr(buf, from);
    ck_assert_msg(at != NULL, "'%s' not in the mini tokenizer", from);
    size_t fl = strlen(from), tl = strlen(to);
    memmove(at + tl, at + fl, (size_t)n - (size_t)(at - buf) - fl + 1);
    memcpy(at, to, tl);
    ch_tokenizer *t = NULL;
    int rc = ch_tok_load(write_tmp(buf, strlen(buf)), &t);
    ch_tok_free(t);
    free(buf);
    return rc;
}

START_TEST(test_truncated_json_names_file_and_line) {
    const char *path = td_tokenizer_json("llama3_1");
    FILE *f = fopen(path, "rb");
    char *buf = malloc(300000);
    size_t n = fread(buf, 1, 300000, f);
    fclose(f);
    ch_tokenizer *t = NULL;
    const char *bad = write_tmp(buf, n);
    ck_assert_int_eq(ch_tok_load(bad, &t), CH_EFORMAT);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(ch_err_msg(), bad) && strstr(ch_err_msg(), "malformed JSON") &&
                  strstr(ch_err_msg(), "truncated"), "%s", ch_err_msg());
    free(buf);
}
END_TEST

START_TEST(test_unknown_pretokenizer_type_refused_by_name) {
    ck_assert_int_eq(load_mutated("\"type\":\"Split\"", "\"type\":\"Whitespace\""), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'Whitespace'") && strstr(ch_err_msg(), "$.pre_tokenizer.pretokenizers[0]"),
                  "%s", ch_err_msg());
}
END_TEST

START_TEST(test_merge_with_unknown_token_names_json_path) {
    ck_assert_int_eq(load_mutated("\"merges\":[[", "\"merges\":[[\"Ġ\",\"nosuchtoken\"],["), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "$.model.merges[0]") && strstr(ch_err_msg(), "nosuchtoken"), "%s", ch_err_msg());
}
END_TEST

START_TEST(test_unknown_options_refused_by_name) {
    ck_assert_int_eq(load_mutated("\"ignore_merges\":", "\"frobnicate\":1,\"ignore_merges\":"), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'frobnicate'"), "%s", ch_err_msg());
    ck_assert_int_eq(load_mutated("\"normalizer\":{\"type\":\"NFC\"}", "\"normalizer\":{\"type\":\"Lowercase\"}"),
                     CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'Lowercase'") && strstr(ch_err_msg(), "$.normalizer"), "%s", ch_err_msg());
    ck_assert_int_eq(load_mutated("\"byte_fallback\":false", "\"byte_fallback\":true"), CH_EUNSUPPORTED);
    ck_assert_int_eq(load_mutated("\"truncation\":null", "\"truncation\":{\"max_length\":8}"), CH_EUNSUPPORTED);
    ck_assert_int_eq(load_mutated("\"type\":\"BPE\"", "\"type\":\"WordPiece\""), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'WordPiece'"), "%s", ch_err_msg());
}
END_TEST

START_TEST(test_missing_file_is_io_error_naming_it) {
    ch_tokenizer *t = NULL;
    ck_assert_int_eq(ch_tok_open_dir("/nonexistent/model", &t), CH_EIO);
    ck_assert_msg(strstr(ch_err_msg(), "/nonexistent/model/tokenizer.json"), "%s", ch_err_msg());
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_llama3_ids_equal_hf_string_merges_ignore_merges_bos);
    tcase_add_test(tc, test_qwen3_ids_equal_hf_pair_merges_nfc);
    tcase_add_test(tc, test_mini_a_prefix_space_lstrip_rstrip_template_equal_hf);
    tcase_add_test(tc, test_mini_b_inverted_contiguous_merged_previous_equal_hf);
    tcase_add_test(tc, test_chat_templates_equal_transformers_apply_chat_template);
    tcase_add_test(tc, test_vocab_size_and_special_ids);
    tcase_add_test(tc, test_hash_is_sha256_of_file_bytes);
    tcase_add_test(tc, test_long_word_merge_loop_is_not_quadratic);
    tcase_add_test(tc, test_truncated_json_names_file_and_line);
    tcase_add_test(tc, test_unknown_pretokenizer_type_refused_by_name);
    tcase_add_test(tc, test_merge_with_unknown_token_names_json_path);
    tcase_add_test(tc, test_unknown_options_refused_by_name);
    tcase_add_test(tc, test_missing_file_is_io_error_naming_it);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
