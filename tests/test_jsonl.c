/* test_jsonl.c - the JSON/JSONL input layer: UTF-8 validation per RFC 3629, strict one-value
 * parsing with file:line messages, and line offsets that give back the original bytes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "jsonl.h"

START_TEST(test_utf8_accepts_well_formed_sequences) {
    const char *ok = "a\xc3\xa9\xe2\x80\x99\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf";
    ck_assert_int_eq(ch_utf8_invalid_at(ok, strlen(ok)), -1);
    ck_assert_int_eq(ch_utf8_invalid_at("", 0), -1);
}
END_TEST

START_TEST(test_utf8_rejects_ill_formed_sequences_at_their_first_byte) {
    struct {
        const char *s;
        long at;
    } bad[] = {
        {"ab\xc0\x80", 2},         /* overlong NUL */
        {"\xc1\xbf", 0},           /* overlong */
        {"x\xe0\x9f\xbf", 1},      /* overlong 3-byte */
        {"\xed\xa0\x80", 0},       /* UTF-16 surrogate D800 */
        {"\xf4\x90\x80\x80", 0},   /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0},   /* invalid lead */
        {"ok\xe2\x80", 2},         /* truncated at the end */
        {"\xe2\x28\xa1", 0},       /* bad continuation */
        {"\x80", 0},               /* lone continuation */
        {"caf\xc3 ", 3},           /* lead then ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ch_utf8_invalid_at(bad[i].s, strlen(bad[i].s)) == bad[i].at, "case %zu", i);
}
END_TEST

START_TEST(test_parse_reports_line_and_column_of_syntax_error) {
    cJSON *v = (cJSON *)1;
    const char *s = "{\n  \"a\": 1,\n  \"b\": }\n";
    ck_assert_int_eq(ch_json_parse("f.json", 1, s, strlen(s), &v), CH_EFORMAT);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(ch_err_msg(), "f.json:3: malformed JSON near column 8");
}
END_TEST

START_TEST(test_parse_refuses_text_after_the_value) {
    cJSON *v;
    const char *s = "{\"a\": 1} {\"b\": 2}";
    ck_assert_int_eq(ch_json_parse("x.jsonl", 7, s, strlen(s), &v), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "x.jsonl:7: unexpected text after the JSON value");
    s = "[1, 2]  \r\n ";
    ck_assert_int_eq(ch_json_parse("x.jsonl", 7, s, strlen(s), &v), 0);
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    cJSON_Delete(v);
}
END_TEST

START_TEST(test_parse_refuses_invalid_utf8_naming_the_line) {
    cJSON *v;
    const char *s = "{\"a\":\n\"\xff\"}";
    ck_assert_int_eq(ch_json_parse("y.json", 1, s, strlen(s), &v), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "y.json:2: invalid UTF-8 (byte 0xff)");
}
END_TEST

START_TEST(test_parse_decodes_escapes_to_utf8) {
    cJSON *v;
    const char *s = "\"\\u00e9\\ud83d\\ude00\\n\"";
    ck_assert_int_eq(ch_json_parse("z", 1, s, strlen(s), &v), 0);
    ck_assert_str_eq(v->valuestring, "\xc3\xa9\xf0\x9f\x98\x80\n");
    cJSON_Delete(v);
}
END_TEST

START_TEST(test_lines_give_number_offset_and_original_bytes) {
    char path[] = "/tmp/test_jsonl_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char data[] = "{\"a\":1}\n\n   \n{\"b\":2}\r\n{\"c\":3}";
    ck_assert_int_eq(write(fd, data, sizeof data - 1), (ssize_t)(sizeof data - 1));
    close(fd);
    ch_jsonl r;
    ck_assert_int_eq(ch_jsonl_open(&r, path), 0);
    const char *line;
    size_t len;
    int has;
    long want_line[] = {1, 4, 5};
    long want_off[] = {0, 13, 22};
    const char *want[] = {"{\"a\":1}", "{\"b\":2}\r", "{\"c\":3}"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ch_jsonl_next(&r, &line, &len, &has), 0);
        ck_assert_int_eq(has, 1);
        ck_assert_int_eq(r.lineno, want_line[i]);
        ck_assert_int_eq(r.offset, want_off[i]);
        ck_assert_uint_eq(len, strlen(want[i]));
        ck_assert_int_eq(memcmp(data + r.offset, want[i], len), 0); /* offset gives the bytes back */
        ck_assert_str_eq(line, want[i]);
    }
    ck_assert_int_eq(ch_jsonl_next(&r, &line, &len, &has), 0);
    ck_assert_int_eq(has, 0);
    ch_jsonl_close(&r);
    unlink(path);
}
END_TEST

START_TEST(test_open_missing_file_names_it) {
    ch_jsonl r;
    ck_assert_int_eq(ch_jsonl_open(&r, "/nonexistent/pool.jsonl"), CH_EIO);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "/nonexistent/pool.jsonl: cannot open"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("jsonl");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_utf8_accepts_well_formed_sequences);
    tcase_add_test(tc, test_utf8_rejects_ill_formed_sequences_at_their_first_byte);
    tcase_add_test(tc, test_parse_reports_line_and_column_of_syntax_error);
    tcase_add_test(tc, test_parse_refuses_text_after_the_value);
    tcase_add_test(tc, test_parse_refuses_invalid_utf8_naming_the_line);
    tcase_add_test(tc, test_parse_decodes_escapes_to_utf8);
    tcase_add_test(tc, test_lines_give_number_offset_and_original_bytes);
    tcase_add_test(tc, test_open_missing_file_names_it);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
