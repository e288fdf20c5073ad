/* test_err.c - the error facility keeps the message, code and place, and wraps context. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static int fails_with_place(void) { CH_FAIL(CH_EFORMAT, "corpus.jsonl:%d: expected '\"'", 1841); }

START_TEST(test_fail_records_message_and_code) {
    ch_err_clear();
    ck_assert_int_eq(fails_with_place(), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "corpus.jsonl:1841: expected '\"'");
    ck_assert_int_eq(ch_err_code(), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_where(), "test_err.c:"));
}
END_TEST

START_TEST(test_wrap_prepends_context) {
    fails_with_place();
    ck_assert_int_eq(ch_err_wrap("extract: "), CH_EFORMAT);
    ck_assert_str_eq(ch_err_msg(), "extract: corpus.jsonl:1841: expected '\"'");
}
END_TEST

START_TEST(test_exit_status_per_class) {
    ck_assert_int_eq(ch_err_exit_status(CH_OK), 0);
    ck_assert_int_eq(ch_err_exit_status(CH_EARG), 2);
    ck_assert_int_eq(ch_err_exit_status(CH_EFORMAT), 3);
    ck_assert_int_eq(ch_err_exit_status(CH_EUNSUPPORTED), 4);
    ck_assert_int_ne(ch_err_exit_status(CH_EINTERNAL), 0);
}
END_TEST

START_TEST(test_alloc_overflow_is_reported) {
    void *p = NULL;
    ck_assert_int_eq(ch_calloc(&p, (size_t)-1 / 2, 16, "huge table"), CH_ENOMEM);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "huge table"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fail_records_message_and_code);
    tcase_add_test(tc, test_wrap_prepends_context);
    tcase_add_test(tc, test_exit_status_per_class);
    tcase_add_test(tc, test_alloc_overflow_is_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
