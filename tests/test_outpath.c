/* test_outpath.c - a run's outputs never land on its inputs or on each other (io/outpath.h),
 * and one writer at a time holds an output (io/lock.h): live holders refused with who they
 * are, stale locks reported and taken over only when asked. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "h5seal.h"
#include "h5util.h"
#include "lock.h"
#include "outpath.h"
#include "check_main.h"

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/ch_outpath_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
static void touch(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x\n", f);
    fclose(f);
}
/* dir/rel; kept until the test's process ends (each test runs in its own fork) */
static const char *at(const char *rel) {
    static char buf[64][512];
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
    return buf[k];
}

/* expect CH_EARG whose message names both paths */
static void refused(const ch_path_role *in, int nin, const ch_path_role *out, int nout, const char *a,
                    const char *b) {
    ck_assert_int_eq(ch_paths_check(in, nin, out, nout), CH_EARG);
    ck_assert_msg(strstr(ch_err_msg(), a) && strstr(ch_err_msg(), b), "message: %s", ch_err_msg());
    ch_err_clear();
}

START_TEST(test_output_equal_to_an_input_however_spelt) {
    touch("corpus.jsonl");
    mkdir(at("sub"), 0755);
    ch_path_role in[] = {{at("corpus.jsonl"), "--input", 0}};
    ch_path_role out1[] = {{at("corpus.jsonl"), "--output", 0}};
    refused(in, 1, out1, 1, "--output", "--input");
    ch_path_role out2[] = {{at("sub/../corpus.jsonl"), "--output", 0}};
    refused(in, 1, out2, 1, "sub/../corpus.jsonl", "corpus.jsonl");
    ck_assert_int_eq(symlink(at("corpus.jsonl"), at("link.h5")), 0);
    ch_path_role out3[] = {{at("link.h5"), "--output", 0}};
    refused(in, 1, out3, 1, "link.h5", "corpus.jsonl");
    ck_assert_int_eq(link(at("corpus.jsonl"), at("hard.h5")), 0);
    ch_path_role out4[] = {{at("hard.h5"), "--output", 0}};
    refused(in, 1, out4, 1, "hard.h5", "corpus.jsonl");
    /* a new file beside the input is fine */
    ch_path_role ok[] = {{at("acts.h5"), "--output", 0}};
    ck_assert_int_eq(ch_paths_check(in, 1, ok, 1), 0);
}
END_TEST

START_TEST(test_output_on_a_file_of_an_input_directory) {
    mkdir(at("model"), 0755);
    touch("model/model.safetensors");
    touch("model/config.json");
    ch_path_role in[] = {{at("corpus.jsonl"), "--input", 0}, {at("model"), "--model", 0}};
    ch_path_role out[] = {{at("model/model.safetensors"), "--output", 0}};
    refused(in, 2, out, 1, "model.safetensors", "--model");
    ch_path_role out2[] = {{at("model"), "--output", 0}};
    refused(in, 2, out2, 1, "--output", "--model");
    ch_path_role ok[] = {{at("model/new.h5"), "--output", 0}};
    ck_assert_int_eq(ch_paths_check(in, 2, ok, 1), 0);
}
END_TEST

START_TEST(test_output_directory_holding_an_input) {
    mkdir(at("run"), 0755);
    touch("run/pool.jsonl");
    ch_path_role in[] = {{at("run/pool.jsonl"), "--pool", 0}};
    ch_path_role out[] = {{at("run"), "--output", 1}};
    refused(in, 1, out, 1, "--output", "--pool");
    ch_path_role out_new[] = {{at("run/selected"), "--output", 1}};
    ck_assert_int_eq(ch_paths_check(in, 1, out_new, 1), 0);
    /* a directory output that does not exist yet, whose parent is the input's directory */
    ch_path_role out_parent[] = {{at("."), "--output", 1}};
    refused(in, 1, out_parent, 1, "--output", "pool.jsonl");
}
END_TEST

START_TEST(test_two_outputs_in_one_place) {
    ch_path_role in[] = {{at("a.h5"), "--input", 0}};
    ch_path_role out[] = {{at("p.h5"), "--output", 0}, {at("./p.h5"), "--timing", 0}};
    refused(in, 1, out, 2, "--output", "--timing");
    ch_path_role out2[] = {{at("heat"), "--heatmap", 1}, {at("heat/x.h5"), "--output", 0}};
    refused(in, 1, out2, 2, "--heatmap", "--output");
    ch_path_role none[] = {{NULL, "--timing", 0}, {"", "--heatmap", 1}, {at("p.h5"), "--output", 0}};
    ck_assert_int_eq(ch_paths_check(in, 1, none, 3), 0);
}
END_TEST

START_TEST(test_existing_output_replaced_only_when_asked) {
    ck_assert_int_eq(ch_out_may_replace(at("new.h5"), "--output", 0), 0);
    touch("old.h5");
    ck_assert_int_eq(ch_out_may_replace(at("old.h5"), "--output", 0), CH_EARG);
    ck_assert_msg(strstr(ch_err_msg(), "old.h5") && strstr(ch_err_msg(), "--force"), "%s", ch_err_msg());
    ch_err_clear();
    ck_assert_int_eq(ch_out_may_replace(at("old.h5"), "--output", 1), 0);
    mkdir(at("sel"), 0755);
    ck_assert_int_eq(ch_out_may_replace(at("sel"), "--output", 0), 0); /* empty directory */
    touch("sel/a.jsonl");
    ck_assert_int_eq(ch_out_may_replace(at("sel"), "--output", 0), CH_EARG);
    ch_err_clear();
    char part[512];
    ck_assert_int_eq(ch_out_partial_name(at("old.h5"), part, sizeof part), 0);
    ck_assert_str_eq(part + strlen(part) - 16, "/.old.h5.partial"); /* a hidden sibling */
    touch(".old.h5.partial");
    mkdir(at("sel2"), 0755);
    touch("sel2/.b.jsonl.partial");
    ck_assert_int_eq(ch_out_may_replace(at("sel2"), "--output", 0), 0); /* a killed run's leftover only */
    ck_assert_int_eq(ch_out_publish(part, at("old.h5")), 0);
    ck_assert_int_ne(access(part, F_OK), 0);
    ck_assert_int_eq(ch_out_partial_name("rel.h5", part, sizeof part), 0);
    ck_assert_str_eq(part, ".rel.h5.partial");
}
END_TEST

/* A sealed file verifies; any change after the seal is refused by the file seal; without the user
 * block (as h5unjam leaves it) one changed byte of a dataset is named by the dataset, a changed
 * root attribute by content_sha256; a file never sealed is refused - all CH_EFORMAT. */
static void put_ints(hid_t f, const char *name, int v0) {
    int v[4] = {v0, 2, 3, 4};
    hsize_t n = 4;
    hid_t s = H5Screate_simple(1, &n, NULL), d = H5Dcreate2(f, name, H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d), H5Sclose(s);
}
/* What h5unjam does: the file without its first 512 bytes (HDF5 finds its superblock at 0). */
static void drop_user_block(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert(n > 512 && n < sizeof buf);
    ck_assert(!memcmp(buf, "capheads sealed file", 20));
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf + 512, 1, n - 512, f), n - 512);
    fclose(f);
}

START_TEST(test_seal_names_the_damaged_dataset) {
    const char *p = at("s.h5");
    hid_t f = ch_h5_mem_create(p);
    ck_assert_int_ge(f, 0);
    put_ints(f, "a", 1);
    ck_assert_int_ge(H5Gclose(H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)), 0);
    put_ints(f, "g/b", 1);
    ck_assert_int_eq(ch_h5_put_str(f, "note", "first"), 0);
    ck_assert_int_eq(ch_h5_mem_save(f, p), 0);
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), CH_EFORMAT); /* not sealed yet */
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "no content_sha256"));
    ck_assert_int_eq(ch_h5_seal(p), 0);
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), 0);
    H5Fclose(f);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT); /* another value in /g/b, checksums kept */
    hid_t d = H5Dopen2(f, "g/b", H5P_DEFAULT);
    int v[4] = {9, 2, 3, 4};
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d), H5Fclose(f);
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "do not match the SHA-256 in its first 512 bytes"), "%s", ch_err_msg());
    drop_user_block(p);
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "dataset /g/b does not match its stored SHA-256"), "%s", ch_err_msg());
    ck_assert_int_eq(ch_h5_seal(p), 0); /* a file without the block gets one */
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), 0);
    H5Fclose(f);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT); /* another root attribute value */
    ck_assert_int_eq(ch_h5_put_str(f, "note", "other"), 0);
    H5Fclose(f);
    drop_user_block(p);
    ck_assert_int_eq(ch_h5_open_sealed(p, &f), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "do not match content_sha256"), "%s", ch_err_msg());
    ck_assert_int_eq(ch_h5_open_sealed(at("none.h5"), &f), CH_EIO);
    touch("junk.h5");
    ck_assert_int_eq(ch_h5_open_sealed(at("junk.h5"), &f), CH_EFORMAT);
}
END_TEST

START_TEST(test_lock_refuses_a_live_holder_and_names_it) {
    ch_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(ch_lock_take(at("acts.h5"), 0, &a), 0);
    ck_assert_int_eq(access(at("acts.h5.lock"), F_OK), 0);
    /* a second writer in another process (as a second mpirun would be) */
    pid_t pid = fork();
    if (pid == 0) {
        ch_lock *c = NULL;
        int rc = ch_lock_take(at("acts.h5"), 1, &c);
        _exit(rc == CH_EBUSY && strstr(ch_err_msg(), "being written by another run") &&
                      strstr(ch_err_msg(), "pid ")
                  ? 0
                  : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(ch_lock_refresh(a), 0);
    ch_lock_release(a);
    ck_assert_int_ne(access(at("acts.h5.lock"), F_OK), 0);
    ck_assert_int_eq(ch_lock_take(at("acts.h5"), 0, &b), 0);
    ch_lock_release(b);
}
END_TEST

START_TEST(test_stale_lock_reported_and_taken_over_only_when_asked) {
    /* a lock left by a killed process of this host */
    pid_t pid = fork();
    if (pid == 0) {
        ch_lock *c = NULL;
        _exit(ch_lock_take(at("acts.h5"), 0, &c) ? 3 : 0); /* exits without releasing */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ch_lock *l = NULL;
    ck_assert_int_eq(ch_lock_take(at("acts.h5"), 0, &l), CH_EBUSY);
    ck_assert_msg(strstr(ch_err_msg(), "stale") && strstr(ch_err_msg(), "--resume"), "%s", ch_err_msg());
    ch_err_clear();
    ck_assert_int_eq(ch_lock_take(at("acts.h5"), 1, &l), 0);
    ch_lock_release(l);

    /* another host's lock: live while its heartbeat is fresh, stale once it is old */
    FILE *f = fopen(at("b.h5.lock"), "w");
    fprintf(f, "node-elsewhere 4242 1700000000\n");
    fclose(f);
    ck_assert_int_eq(ch_lock_take(at("b.h5"), 1, &l), CH_EBUSY);
    ck_assert_msg(strstr(ch_err_msg(), "node-elsewhere") && strstr(ch_err_msg(), "4242"), "%s", ch_err_msg());
    ch_err_clear();
    setenv("CAPHEADS_LOCK_STALE_S", "1", 1);
    struct timespec old[2] = {{1700000000, 0}, {1700000000, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, at("b.h5.lock"), old, 0), 0);
    ck_assert_int_eq(ch_lock_take(at("b.h5"), 1, &l), 0);
    unsetenv("CAPHEADS_LOCK_STALE_S");
    ch_lock_release(l);
}
END_TEST

int main(void) {
    Suite *s = suite_create("outpath");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_output_equal_to_an_input_however_spelt);
    tcase_add_test(tc, test_output_on_a_file_of_an_input_directory);
    tcase_add_test(tc, test_output_directory_holding_an_input);
    tcase_add_test(tc, test_two_outputs_in_one_place);
    tcase_add_test(tc, test_existing_output_replaced_only_when_asked);
    tcase_add_test(tc, test_seal_names_the_damaged_dataset);
    tcase_add_test(tc, test_lock_refuses_a_live_holder_and_names_it);
    tcase_add_test(tc, test_stale_lock_reported_and_taken_over_only_when_asked);
    suite_add_tcase(s, tc);
    return ch_check_run(s);
}
