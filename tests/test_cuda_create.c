/* test_cuda_create.c - asking for the CUDA backend never crashes: on a machine with a usable GPU
 * it works, anywhere else it fails with CH_EUNSUPPORTED and says why. Runs in every build. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "err.h"

START_TEST(test_cuda_create_works_or_names_the_reason) {
    ch_backend *be = (ch_backend *)0x1;
    ch_err_clear();
    int rc = ch_backend_cuda_create(-1, &be);
    if (rc == 0) {
        /* a GPU is here: the backend must really move data */
        ck_assert_str_eq(be->name, "cuda");
        float h[1000], back[1000];
        for (int i = 0; i < 1000; i++)
            h[i] = (float)i * 0.5f - 7.0f;
        void *d = NULL;
        ck_assert_int_eq(be->alloc(be, sizeof h, &d), 0);
        ck_assert_int_eq(be->upload(be, d, h, sizeof h), 0);
        ck_assert_int_eq(be->download(be, back, d, sizeof h), 0);
        ck_assert_int_eq(memcmp(h, back, sizeof h), 0);
        be->free(be, d);
        ch_backend_destroy(be);
        return;
    }
    ck_assert_int_eq(rc, CH_EUNSUPPORTED);
    ck_assert_ptr_null(be);
    ck_assert_int_eq(ch_err_code(), CH_EUNSUPPORTED);
#ifdef CAPHEADS_HAVE_CUDA
    /* built with CUDA but no GPU: the runtime's own reason is passed on */
    ck_assert_msg(strstr(ch_err_msg(), "no usable CUDA GPU") &&
                      strstr(ch_err_msg(), "cudaGetDeviceCount"),
                  "message: %s", ch_err_msg());
#else
    ck_assert_msg(strstr(ch_err_msg(), "built without CUDA"), "message: %s", ch_err_msg());
#endif
}
END_TEST

START_TEST(test_cuda_create_out_of_range_device_is_refused) {
    ch_backend *be = NULL;
    int rc = ch_backend_cuda_create(1 << 20, &be);
    ck_assert_ptr_null(be);
    /* CH_EARG naming the visible count with a GPU, CH_EUNSUPPORTED without one */
    ck_assert_msg(rc == CH_EARG || rc == CH_EUNSUPPORTED, "rc %d: %s", rc, ch_err_msg());
    if (rc == CH_EARG) ck_assert_ptr_nonnull(strstr(ch_err_msg(), "1048576"));
}
END_TEST

START_TEST(test_backend_create_unknown_name_is_an_argument_error) {
    ch_backend *be = NULL;
    ck_assert_int_eq(ch_backend_create("tpu", 1, &be), CH_EARG);
    ck_assert_ptr_null(be);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "'tpu'"));
}
END_TEST

START_TEST(test_backend_auto_is_cuda_when_usable_else_cpu) {
    ch_backend *cu = NULL, *be = NULL;
    int cuda_rc = ch_backend_cuda_create(-1, &cu);
    ch_backend_destroy(cu);
    ck_assert_msg(ch_backend_create("auto", 1, &be) == 0, "%s", ch_err_msg());
    ck_assert_str_eq(be->name, cuda_rc == 0 ? "cuda" : "cpu");
    ch_backend_destroy(be);
    be = NULL;
    ck_assert_int_eq(ch_backend_create("cuda", 1, &be), cuda_rc);
    ch_backend_destroy(be);
}
END_TEST

START_TEST(test_registry_lists_backends_and_check_finds_unset_entries) {
    int n = 0, cpu = -1, cuda = -1;
    const ch_backend_reg *reg = ch_backend_registry(&n);
    for (int i = 0; i < n; i++) {
        if (!strcmp(reg[i].name, "cpu")) cpu = i;
        if (!strcmp(reg[i].name, "cuda")) cuda = i;
    }
    ck_assert_int_ge(cpu, 0);
    ck_assert_int_ge(cuda, 0);
    ck_assert_int_eq(cpu, n - 1); /* auto's fallback: tried last */
    ck_assert_int_eq(reg[cpu].compiled_in, 1);
#ifdef CAPHEADS_HAVE_CUDA
    ck_assert_int_eq(reg[cuda].compiled_in, 1);
#else
    ck_assert_int_eq(reg[cuda].compiled_in, 0);
#endif
    ch_backend *be = NULL;
    ck_assert_msg(ch_backend_create("cpu", 1, &be) == 0, "%s", ch_err_msg());
    ck_assert_str_eq(be->mem_name, "host");
    ck_assert_int_eq(ch_backend_check(be), 0);
    ch_backend copy = *be;
    copy.mlp = NULL, copy.mem_info = NULL, copy.gemm_workspace = NULL; /* optional */
    ck_assert_int_eq(ch_backend_check(&copy), 0);
    copy.pool = NULL; /* required */
    ck_assert_int_eq(ch_backend_check(&copy), CH_EINTERNAL);
    ck_assert_msg(strstr(ch_err_msg(), "'cpu'") && strstr(ch_err_msg(), "'pool'"), "message: %s", ch_err_msg());
    copy = *be, copy.event_wait = NULL;
    ck_assert_int_eq(ch_backend_check(&copy), CH_EINTERNAL);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "'event_wait'"));
    ch_backend_destroy(be);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_create");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cuda_create_works_or_names_the_reason);
    tcase_add_test(tc, test_cuda_create_out_of_range_device_is_refused);
    tcase_add_test(tc, test_backend_create_unknown_name_is_an_argument_error);
    tcase_add_test(tc, test_backend_auto_is_cuda_when_usable_else_cpu);
    tcase_add_test(tc, test_registry_lists_backends_and_check_finds_unset_entries);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
