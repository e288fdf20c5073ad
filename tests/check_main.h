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

#endif
