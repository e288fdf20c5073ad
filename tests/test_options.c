/* test_options.c - the stages' option table: parsing, number rules, environment, --help. */
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "options.h"
#include "check_main.h"

typedef struct {
    const char *in, *label;
    int n, flag, pick;
    int64_t big;
    uint64_t seed;
    double frac;
    char **pos;
    int npos;
} t_opts;

static const ch_opt table[] = {
    {"input", 'i', CH_OPT_PATH, offsetof(t_opts, in), "FILE", .flags = CH_OPT_REQUIRED, .help = "the input"},
    {"label", 0, CH_OPT_STRING, offsetof(t_opts, label), "CAP", .help = "a label ('' for none)"},
    {"n", 0, CH_OPT_INT, offsetof(t_opts, n), "N", .def = "7", .lo = 1, .hi = 100, .help = "a count"},
    {"flag", 0, CH_OPT_FLAG, offsetof(t_opts, flag), .help = "a switch"},
    {"pick", 0, CH_OPT_CHOICE, offsetof(t_opts, pick), .choices = "a|b|c", .def = "b", .help = "one of three"},
    {"big", 0, CH_OPT_INT64, offsetof(t_opts, big), "N", .lo = 0, .hi = INT64_MAX, .env = "CH_TEST_OPT_BIG",
     .help = "a large count"},
    {"seed", 0, CH_OPT_U64, offsetof(t_opts, seed), "S", .def = "1", .help = "a seed"},
    {"fraction", 0, CH_OPT_DOUBLE, offsetof(t_opts, frac), "F", .def = "0.05", .flo = 0, .fhi = 1,
     .flags = CH_OPT_LO_OPEN, .help = "a share"},
};

static const ch_opt_cmd cmd = {"demo", table, CH_NOPTS(table), .positional = "FILE...", .min_pos = 0,
                               .max_pos = 2, .pos_offset = offsetof(t_opts, pos),
                               .npos_offset = offsetof(t_opts, npos), .about = "A stage for the tests.\n"};

/* Parse a NULL-terminated argument list (argv[0] = "demo"). */
static int parse(t_opts *o, int *help, ...) {
    char *argv[32] = {"demo"};
    int argc = 1;
    va_list ap;
    va_start(ap, help);
    for (char *a; (a = va_arg(ap, char *));) argv[argc++] = a;
    va_end(ap);
    ch_opt_free(&cmd, o); /* the previous parse's positional arguments */
    memset(o, 0, sizeof *o);
    ch_err_clear();
    return ch_opt_parse(&cmd, argc, argv, o, help);
}

START_TEST(test_values_defaults_and_both_spellings) {
    t_opts o = {0};
    int help;
    ck_assert_int_eq(parse(&o, &help, "--input", "x.h5", "--n=42", "--flag", "--label=", "--seed", "18446744073709551615",
                           "a", "--", "--b", NULL), 0);
    ck_assert_str_eq(o.in, "x.h5");
    ck_assert_int_eq(o.n, 42);
    ck_assert_int_eq(o.flag, 1);
    ck_assert_str_eq(o.label, ""); /* given empty: not the same as absent */
    ck_assert_int_eq(o.pick, 1);   /* default "b" */
    ck_assert(o.seed == UINT64_MAX);
    ck_assert(o.frac == 0.05);
    ck_assert_int_eq(o.npos, 2);
    ck_assert_str_eq(o.pos[0], "a");
    ck_assert_str_eq(o.pos[1], "--b"); /* after "--" */
    ch_opt_free(&cmd, &o);
    ck_assert_int_eq(parse(&o, &help, "-ix.h5", "--pick", "c", NULL), 0);
    ck_assert_str_eq(o.in, "x.h5");
    ck_assert_int_eq(o.pick, 2);
    ch_opt_free(&cmd, &o);
}
END_TEST

START_TEST(test_numbers_are_whole_strings_in_range) {
    t_opts o = {0};
    int help;
    const char *bad[] = {"12x", "", " 5", "0", "101", "2.5", "1e3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(parse(&o, &help, "--input", "x", "--n", bad[i], NULL), CH_EARG);
        ck_assert_ptr_nonnull(strstr(ch_err_msg(), "--n expects an integer from 1 to 100, got '"));
        ck_assert_int_eq(ch_err_exit_status(ch_err_code()), 2);
    }
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--seed", "-1", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "--seed expects a non-negative integer, got '-1'");
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--big", "x", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "--big expects a non-negative integer, got 'x'");
    const char *badf[] = {"0", "1.5", "nan", "inf", "0.1x", "-0.2"};
    for (size_t i = 0; i < sizeof badf / sizeof *badf; i++) {
        ck_assert_int_eq(parse(&o, &help, "--input", "x", "--fraction", badf[i], NULL), CH_EARG);
        ck_assert_ptr_nonnull(strstr(ch_err_msg(), "--fraction expects a number in (0, 1], got '"));
    }
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--fraction", "1", NULL), 0);
    ck_assert(o.frac == 1.0);
    ch_opt_free(&cmd, &o);
}
END_TEST

START_TEST(test_usage_errors_name_the_option) {
    t_opts o = {0};
    int help;
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--frobnicate", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "unknown option '--frobnicate' (see --help)");
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--n", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "--n needs a value (see --help)");
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--flag=1", NULL), CH_EARG);
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--pick", "d", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "--pick must be a, b or c, got 'd'");
    ck_assert_int_eq(parse(&o, &help, "--n", "3", NULL), CH_EARG);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "missing --input FILE (required"));
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "a", "b", "c", NULL), CH_EARG);
    ck_assert_int_eq(parse(&o, &help, "--input", "", NULL), CH_EARG);
    ch_opt_free(&cmd, &o);
}
END_TEST

START_TEST(test_environment_then_command_line) {
    t_opts o = {0};
    int help;
    setenv("CH_TEST_OPT_BIG", "123", 1);
    ck_assert_int_eq(parse(&o, &help, "--input", "x", NULL), 0);
    ck_assert_int_eq(o.big, 123);
    ck_assert_int_eq(parse(&o, &help, "--input", "x", "--big", "5", NULL), 0);
    ck_assert_int_eq(o.big, 5);
    setenv("CH_TEST_OPT_BIG", "lots", 1);
    ck_assert_int_eq(parse(&o, &help, "--input", "x", NULL), CH_EARG);
    ck_assert_str_eq(ch_err_msg(), "--big (from CH_TEST_OPT_BIG) expects a non-negative integer, got 'lots'");
    unsetenv("CH_TEST_OPT_BIG");
    ch_opt_free(&cmd, &o);
}
END_TEST

START_TEST(test_help_wins_and_tells_defaults) {
    t_opts o = {0};
    int help;
    ck_assert_int_eq(parse(&o, &help, "--n", "bad", "--help", NULL), 0);
    ck_assert_int_eq(help, 1);
    ch_opt_free(&cmd, &o);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ch_opt_print_help(&cmd, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "usage: [mpirun -n R] capheads demo FILE... --input FILE [--label CAP]"));
    ck_assert_ptr_nonnull(strstr(text, "  -i, --input FILE      the input (required)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  --n N                 a count (default 7)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  --pick a|b|c          one of three (default b)\n"));
    ck_assert_ptr_nonnull(strstr(text, "(environment CH_TEST_OPT_BIG)"));
    free(text);
}
END_TEST

int main(void) {
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_values_defaults_and_both_spellings);
    tcase_add_test(tc, test_numbers_are_whole_strings_in_range);
    tcase_add_test(tc, test_usage_errors_name_the_option);
    tcase_add_test(tc, test_environment_then_command_line);
    tcase_add_test(tc, test_help_wins_and_tells_defaults);
    suite_add_tcase(s, tc);
    return ch_check_run(s);
}
