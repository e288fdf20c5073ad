/* check_main.h - the runner every single-suite Check program ends with. */
#ifndef CH_CHECK_MAIN_H
#define CH_CHECK_MAIN_H

#include <check.h>

/* Run suite s (verbosity from CK_VERBOSITY), free it; the process status: 0 when all passed. */
static inline int ch_check_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* One suite of one "core" case: the n tests, each given timeout seconds; run as ch_check_run. */
static inline int ch_check_tests(const char *name, double timeout, const TTest *const *tests, int n) {
    Suite *s = suite_create(name);
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, timeout);
    for (int i = 0; i < n; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return ch_check_run(s);
}

#endif
