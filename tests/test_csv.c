/* test_csv.c - the CSV reader follows RFC 4180 / Python's csv "excel" dialect on the quoting edge
 * cases MMLU's files contain, and names file and line on malformed input. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "err.h"

/* Read every record of s; rows[i] is the fields joined with '|' and lines[i] the start line. */
typedef struct {
    int n;
    char rows[16][256];
    long lines[16];
    int nfields[16];
} parsed;

static int parse_all(const char *s, size_t len, parsed *p) {
    ch_csv c;
    ch_csv_init(&c, "t.csv", s, len);
    memset(p, 0, sizeof *p);
    int rc = 0, has = 0;
    for (;;) {
        long line = 0;
        rc = ch_csv_next(&c, &has, &line);
        if (rc || !has) break;
        ck_assert_int_lt(p->n, 16);
        char *out = p->rows[p->n];
        for (int i = 0; i < c.nfields; i++) {
            if (i) strcat(out, "|");
            strcat(out, c.fields[i]);
        }
        p->lines[p->n] = line;
        p->nfields[p->n] = c.nfields;
        p->n++;
    }
    ch_csv_free(&c);
    return rc;
}
#define PARSE(s, p) parse_all((s), strlen(s), (p))

START_TEST(test_plain_rows_with_lf_and_crlf) {
    parsed p;
    ck_assert_int_eq(PARSE("a,b,c\r\nd,e,f\ng,h,i", &p), 0);
    ck_assert_int_eq(p.n, 3);
    ck_assert_str_eq(p.rows[0], "a|b|c");
    ck_assert_str_eq(p.rows[1], "d|e|f");
    ck_assert_str_eq(p.rows[2], "g|h|i"); /* last record without a newline */
    ck_assert_int_eq(p.lines[2], 3);
}
END_TEST

START_TEST(test_bare_cr_ends_a_record) {
    parsed p;
    ck_assert_int_eq(PARSE("a,b\rc,d\r", &p), 0);
    ck_assert_int_eq(p.n, 2);
    ck_assert_str_eq(p.rows[1], "c|d");
    ck_assert_int_eq(p.lines[1], 2);
}
END_TEST

START_TEST(test_quoted_field_keeps_commas_and_doubled_quotes) {
    parsed p;
    ck_assert_int_eq(PARSE("\"x, y\",\"say \"\"hi\"\"\",\"\"\"\"\n", &p), 0);
    ck_assert_int_eq(p.n, 1);
    ck_assert_int_eq(p.nfields[0], 3);
    ck_assert_str_eq(p.rows[0], "x, y|say \"hi\"|\"");
}
END_TEST

START_TEST(test_newlines_inside_quotes_are_data_and_counted) {
    parsed p;
    ck_assert_int_eq(PARSE("\"line1\nline2\r\nline3\",b\nnext,row\n", &p), 0);
    ck_assert_int_eq(p.n, 2);
    ck_assert_str_eq(p.rows[0], "line1\nline2\r\nline3|b");
    ck_assert_int_eq(p.lines[0], 1);
    ck_assert_int_eq(p.lines[1], 4); /* the record after a 3-line field starts on line 4 */
}
END_TEST

START_TEST(test_empty_fields_and_trailing_comma) {
    parsed p;
    ck_assert_int_eq(PARSE(",,\n\"\",x,\n", &p), 0);
    ck_assert_int_eq(p.n, 2);
    ck_assert_int_eq(p.nfields[0], 3);
    ck_assert_str_eq(p.rows[0], "||");
    ck_assert_int_eq(p.nfields[1], 3);
    ck_assert_str_eq(p.rows[1], "|x|");
}
END_TEST

START_TEST(test_blank_lines_are_skipped_but_counted) {
    parsed p;
    ck_assert_int_eq(PARSE("\n\r\na,b\n\n\nc,d\n\n", &p), 0);
    ck_assert_int_eq(p.n, 2);
    ck_assert_int_eq(p.lines[0], 3);
    ck_assert_int_eq(p.lines[1], 6);
}
END_TEST

START_TEST(test_quote_inside_unquoted_field_is_literal) {
    parsed p;
    ck_assert_int_eq(PARSE("5\" pipe,b\n", &p), 0);
    ck_assert_str_eq(p.rows[0], "5\" pipe|b");
}
END_TEST

START_TEST(test_utf8_bytes_pass_through) {
    parsed p;
    ck_assert_int_eq(PARSE("\"caf\xc3\xa9\",\xe2\x80\x99\n", &p), 0);
    ck_assert_str_eq(p.rows[0], "caf\xc3\xa9|\xe2\x80\x99");
}
END_TEST

START_TEST(test_unterminated_quote_names_file_and_start_line) {
    parsed p;
    ck_assert_int_eq(PARSE("a,b\n\"open,\nstill open\n", &p), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "t.csv:2: quoted field opened on this line is never closed");
}
END_TEST

START_TEST(test_text_after_closing_quote_is_refused) {
    parsed p;
    ck_assert_int_eq(PARSE("a\n\"ab\"cd,e\n", &p), CH_EFORMAT);
    ck_assert_ptr_nonnull(
        strstr(ch_err_msg(), "t.csv:2: unexpected character 'c' after a closing quote"));
}
END_TEST

START_TEST(test_nul_byte_is_refused) {
    parsed p;
    ck_assert_int_eq(parse_all("a,b\nc\0d\n", 8, &p), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "t.csv:2: NUL byte in CSV");
}
END_TEST

START_TEST(test_empty_input_has_no_rows) {
    parsed p;
    ck_assert_int_eq(parse_all("", 0, &p), 0);
    ck_assert_int_eq(p.n, 0);
}
END_TEST

START_TEST(test_long_field_grows_buffer) {
    size_t n = 100000;
    char *s = malloc(n + 8);
    s[0] = '"';
    memset(s + 1, 'x', n);
    memcpy(s + 1 + n, "\",y\n", 5);
    ch_csv c;
    ch_csv_init(&c, "big.csv", s, strlen(s));
    int has = 0;
    ck_assert_int_eq(ch_csv_next(&c, &has, NULL), 0);
    ck_assert_int_eq(has, 1);
    ck_assert_int_eq(c.nfields, 2);
    ck_assert_uint_eq(strlen(c.fields[0]), n);
    ck_assert_str_eq(c.fields[1], "y");
    ck_assert_int_eq(ch_csv_next(&c, &has, NULL), 0);
    ck_assert_int_eq(has, 0);
    ch_csv_free(&c);
    free(s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("csv");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_plain_rows_with_lf_and_crlf);
    tcase_add_test(tc, test_bare_cr_ends_a_record);
    tcase_add_test(tc, test_quoted_field_keeps_commas_and_doubled_quotes);
    tcase_add_test(tc, test_newlines_inside_quotes_are_data_and_counted);
    tcase_add_test(tc, test_empty_fields_and_trailing_comma);
    tcase_add_test(tc, test_blank_lines_are_skipped_but_counted);
    tcase_add_test(tc, test_quote_inside_unquoted_field_is_literal);
    tcase_add_test(tc, test_utf8_bytes_pass_through);
    tcase_add_test(tc, test_unterminated_quote_names_file_and_start_line);
    tcase_add_test(tc, test_text_after_closing_quote_is_refused);
    tcase_add_test(tc, test_nul_byte_is_refused);
    tcase_add_test(tc, test_empty_input_has_no_rows);
    tcase_add_test(tc, test_long_field_grows_buffer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
