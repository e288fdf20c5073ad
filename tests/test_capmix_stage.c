/* test_capmix_stage.c - the hand-computed case of tests/capmix_fixture.h at the level the stages
 * run, on archives written here: ch_capmix_read + ch_capmix_apply_used (only the used layers are
 * read), `decompose` (w_task = the mean of the rows' mixes over a task's examples, --heads own
 * and union, the attributes it records) and `select` (dot and cosine scores, the selected rows
 * and their JSONL lines, the mix/probe consistency refusals; the benchmark-level sets, a row's
 * benchmark score being the max of its task scores, --level, benchmark file name collisions).
 * An MPI program, run on one rank:
 * the stages are called as the CLI calls them. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "capmix.h"
#include "capmix_fixture.h"
#include "stage.h"
#include "err.h"
#include "fsutil.h"
#include "mixfile.h"

static char dir[256];

/* An archive of n rows of the hand case, with the given ids, tasks and corpus hash. */
static void write_stage_archive(const char *p, int n, const char *const *ids, const char *const *tasks,
                                const char *sha) {
    ch_render_rule rule; /* extract's default: the probe file's too (capmix_fixture.h) */
    ch_render_rule_default(&rule);
    ch_archive_meta m = {.n_rows = n, .n_layers = SL, .n_heads = SH, .head_dim = SD, .id_len = 8,
                         .task_len = 8, .model_config = "{}", .model_dir = "m", .tokenizer_sha256 = "t",
                         .pool = "last", .input_path = "in.jsonl", .input_sha256 = sha, .command_line = "test",
                         .render = &rule};
    float acts[4][SL * SH * SD];
    int32_t lab[4] = {-1, -1, -1, -1}, ntok[4] = {1, 1, 1, 1};
    for (int r = 0; r < n; r++) stage_row(r, acts[r]);
    ch_archive *a = NULL;
    ck_assert_msg(ch_archive_create(p, &m, MPI_COMM_WORLD, &a) == 0, "%s", ch_err_msg());
    uint16_t half[4 * SL * SH * SD]; /* the writer's form: binary16, layer-major */
    ch_archive_pack_f16(acts[0], n, SL, SH * SD, half);
    ch_archive_rows rw = {.ids = ids, .tasks = tasks, .labels = lab, .n_tokens = ntok};
    ck_assert_msg(ch_archive_write_rows(a, 0, n, half, NULL, &rw) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_archive_close(a), 0);
}

static char probes[300], tasks_h5[300], pool_h5[300], pool_jsonl[300];

static void stage_fixture(void) {
    snprintf(dir, sizeof dir, "/tmp/ch_capmix_stage_%d", (int)getpid());
    ck_assert_int_eq(ch_fs_mkdir_p(dir), 0);
    snprintf(probes, sizeof probes, "%s/probes.h5", dir);
    snprintf(tasks_h5, sizeof tasks_h5, "%s/tasks.h5", dir);
    snprintf(pool_h5, sizeof pool_h5, "%s/pool.h5", dir);
    snprintf(pool_jsonl, sizeof pool_jsonl, "%s/pool.jsonl", dir);
    write_stage_probes(probes, 1, caps5, 0);
    const char *tid[4] = {"e1", "e2", "e3", "e4"}, *tt[4] = {"t/alpha", "t/alpha", "t,beta", ""};
    write_stage_archive(tasks_h5, 4, tid, tt, "tasks-hash");
    FILE *f = fopen(pool_jsonl, "w");
    fputs("{\"id\":\"p1\",\"text\":\"one\"}\n{\"id\":\"p2\",\"text\":\"two\"}\n{\"id\":\"p3\",\"text\":\"three\"}\n", f);
    fclose(f);
    char hex[65];
    ck_assert_int_eq(ch_fs_sha256(pool_jsonl, hex), 0);
    const char *pid[3] = {"p1", "p2", "p3"}, *pt[3] = {"", "", ""};
    write_stage_archive(pool_h5, 3, pid, pt, hex);
}

START_TEST(test_read_used_layers_then_apply_by_hand) {
    stage_fixture();
    ch_capmix cm;
    ck_assert_msg(ch_capmix_load(probes, &cm) == 0, "%s", ch_err_msg());
    ch_archive_reader *r = NULL;
    ck_assert_int_eq(ch_archive_open_read(tasks_h5, MPI_COMM_SELF, &r), 0);
    /* rows [n][n_used = 2][H][D]: layers 0 and 2 only (layer 1 and head 4 are NaN) */
    float acts[3 * 2 * SH * SD], tmp[3 * SH * SD];
    ck_assert_msg(ch_capmix_read(&cm, r, 0, 3, acts, tmp) == 0, "%s", ch_err_msg());
    double p3[3][5], q[5];
    ck_assert_msg(ch_capmix_apply_used(&cm, acts, 3, p3[0]) == 0, "%s", ch_err_msg());
    check_vec(p3[0], P1, 149, 1e-6), check_vec(p3[1], P2, 138, 1e-6), check_vec(p3[2], P3, 863, 1e-6);
    cm.heads = CH_HEADS_UNION;
    ck_assert_int_eq(ch_capmix_apply_used(&cm, acts, 3, p3[0]), 0);
    check_vec(p3[0], U1, 360, 1e-6), check_vec(p3[1], U2, 360, 1e-6), check_vec(p3[2], U3, 2040, 1e-6);
    /* row 4 has NaN at a mapped head: refused, naming layer 2 head 1 */
    ck_assert_int_eq(ch_capmix_read(&cm, r, 3, 1, acts, tmp), 0);
    ck_assert_int_eq(ch_capmix_apply_used(&cm, acts, 1, q), CH_EFORMAT);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "layer 2 head 1"));
    ch_archive_close_read(r);
    ch_capmix_free(&cm);
}
END_TEST

static int cli(int (*cmd)(int, char **, MPI_Comm), char **argv) {
    int n = 0;
    while (argv[n]) n++;
    return cmd(n, argv, MPI_COMM_WORLD);
}

/* scores.h5 /scores and /selected of task t */
static void read_scores(const char *out, int t, float sc[3], uint8_t sel[3]) {
    char p[400];
    snprintf(p, sizeof p, "%s/scores.h5", out);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    float all_s[2][3];
    uint8_t all_k[2][3];
    hid_t d = H5Dopen2(f, "scores", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all_s), 0);
    H5Dclose(d);
    d = H5Dopen2(f, "selected", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, all_k), 0);
    H5Dclose(d);
    H5Fclose(f);
    memcpy(sc, all_s[t], sizeof all_s[t]), memcpy(sel, all_k[t], sizeof all_k[t]);
}

static void check_line(const char *out, const char *name, const char *want) {
    char p[400], *buf = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/%s", out, name);
    ck_assert_msg(ch_fs_read_file(p, &buf, &len) == 0, "%s", ch_err_msg());
    ck_assert_str_eq(buf, want);
    free(buf);
}

/* A whole numeric dataset of scores.h5 as doubles; 0 when it is not there. */
static int read_all(const char *out, const char *name, double *v, int n) {
    char p[400];
    snprintf(p, sizeof p, "%s/scores.h5", out);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    int there = H5Lexists(f, name, H5P_DEFAULT) > 0;
    if (there) {
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(d);
        ck_assert_int_eq(H5Sget_simple_extent_npoints(sp), n);
        ck_assert_int_ge(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
        H5Sclose(sp), H5Dclose(d);
    }
    H5Fclose(f);
    return there;
}

static int exists(const char *out, const char *name) {
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", out, name);
    return stat(p, &st) == 0;
}

START_TEST(test_decompose_and_select_by_hand) {
    stage_fixture();
    char mix_own[300], mix_uni[300], out[300];
    snprintf(mix_own, sizeof mix_own, "%s/mix_own", dir);
    snprintf(mix_uni, sizeof mix_uni, "%s/mix_union", dir);
    char *d1[] = {"decompose", "--probes", probes, "--input", tasks_h5, "--output", mix_own, "--block-rows", "3", NULL};
    ck_assert_msg(cli(ch_cmd_decompose, d1) == 0, "%s", ch_err_msg());
    char *d2[] = {"decompose", "--probes", probes, "--input", tasks_h5, "--output", mix_uni, "--heads", "union", NULL};
    ck_assert_msg(cli(ch_cmd_decompose, d2) == 0, "%s", ch_err_msg());

    ch_mix m;
    ch_capmix cm;
    ck_assert_int_eq(ch_capmix_load(probes, &cm), 0);
    ck_assert_msg(ch_mix_read(mix_own, &m) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(m.ntask, 2); /* sorted: "t,beta" < "t/alpha"; the row without a task is in none */
    ck_assert_str_eq(m.tasks[0], "t,beta");
    ck_assert_str_eq(m.tasks[1], "t/alpha");
    ck_assert_int_eq(m.count[0], 1);
    ck_assert_int_eq(m.count[1], 2);
    double wa[5], rowp[3][5], exact[5];
    for (int c = 0; c < 5; c++) wa[c] = (P1[c] / 149 + P2[c] / 138) / 2;
    check_vec(m.mix, P3, 863, 1e-6); /* 1e-6: the probe's c ln 2 is a float */
    check_vec(m.mix + 5, wa, 1, 1e-6);
    float row[SL * SH * SD];
    for (int r = 0; r < 3; r++) {
        stage_row(r, row);
        ck_assert_int_eq(ch_capmix_apply(&cm, row, 1, rowp[r]), 0);
    }
    for (int c = 0; c < 5; c++) exact[c] = (rowp[0][c] + rowp[1][c]) / 2; /* the mean, to the 2^-40 sums */
    check_vec(m.mix + 5, exact, 1, 1e-11);
    check_vec(m.mix, rowp[2], 1, 1e-11);
    ck_assert_str_eq(m.heads, "own");
    ck_assert_str_eq(m.probes_sha256, cm.digest);
    ck_assert_str_eq(m.probes_input_sha256, "probing-set-hash");
    ch_mix_free(&m);
    ck_assert_int_eq(ch_mix_read(mix_uni, &m), 0);
    const double UA[5] = {91, 77, 82, 110, 0};
    check_vec(m.mix, U3, 2040, 1e-6);
    check_vec(m.mix + 5, UA, 360, 1e-6);
    ck_assert_str_eq(m.heads, "union");
    ch_mix_free(&m);
    ch_capmix_free(&cm);

    /* select: task 0 = t,beta, task 1 = t/alpha; files t_beta.jsonl, t_alpha.jsonl */
    const char *line[3] = {"{\"id\":\"p1\",\"text\":\"one\"}\n", "{\"id\":\"p2\",\"text\":\"two\"}\n",
                           "{\"id\":\"p3\",\"text\":\"three\"}\n"};
    float sc[3];
    uint8_t sel[3];
    double pr[3][5], wb[5];
    hand(pr[0], P1, 149), hand(pr[1], P2, 138), hand(pr[2], P3, 863), hand(wb, P3, 863);
    snprintf(out, sizeof out, "%s/sel_dot", dir);
    char *s1[] = {"select", "--probes", probes, "--mix", mix_own, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s1) == 0, "%s", ch_err_msg());
    read_scores(out, 1, sc, sel);
    const double dot_alpha[3] = {0.266448, 0.254865, 0.275631};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(sc[i], ch_capmix_score_dot(wa, pr[i]), 1e-6);
        ck_assert_double_eq_tol(sc[i], dot_alpha[i], 1e-6);
        ck_assert_int_eq(sel[i], i == 2);
    }
    check_line(out, "t_alpha.jsonl", line[2]);
    read_scores(out, 0, sc, sel);
    ck_assert_double_eq_tol(sc[0], 37263.0 / 128587, 1e-6);
    ck_assert_double_eq_tol(sc[1], 31140.0 / 119094, 1e-6);
    ck_assert_double_eq_tol(sc[2], 233037.0 / 744769, 1e-6);
    ck_assert_int_eq(sel[2], 1);
    check_line(out, "t_beta.jsonl", line[2]);
    /* one task each: benchmark t (from t/alpha) and t,beta (no '/': its own benchmark) */
    check_line(out, "benchmark/t_beta.jsonl", line[2]);
    check_line(out, "benchmark/t.jsonl", line[2]);
    double bs[2][3], ts[2][3], bot[2];
    ck_assert(read_all(out, "benchmark_scores", bs[0], 6) && read_all(out, "scores", ts[0], 6));
    ck_assert(read_all(out, "benchmark_of_task", bot, 2));
    ck_assert(bot[0] == 0 && bot[1] == 1); /* benchmarks in the order of their first task */
    ck_assert_mem_eq(bs, ts, sizeof bs);

    snprintf(out, sizeof out, "%s/sel_cos", dir);
    char *s2[] = {"select", "--probes", probes, "--mix", mix_own, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--score", "cosine", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s2) == 0, "%s", ch_err_msg());
    read_scores(out, 1, sc, sel);
    const double cos_alpha[3] = {0.994249, 0.993719, 0.965144};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(sc[i], ch_capmix_score_cosine(wa, pr[i]), 1e-6);
        ck_assert_double_eq_tol(sc[i], cos_alpha[i], 1e-6);
        ck_assert_int_eq(sel[i], i == 0);
    }
    check_line(out, "t_alpha.jsonl", line[0]);
    read_scores(out, 0, sc, sel);
    ck_assert_double_eq_tol(sc[2], 1.0, 1e-6); /* the task's own row */
    ck_assert_int_eq(sel[2], 1);

    snprintf(out, sizeof out, "%s/sel_union", dir);
    char *s3[] = {"select", "--probes", probes, "--mix", mix_uni, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--heads", "union", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s3) == 0, "%s", ch_err_msg());
    read_scores(out, 1, sc, sel);
    const double udot[3] = {0.258071, 0.251713, 0.263706};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(sc[i], udot[i], 1e-6);
        ck_assert_int_eq(sel[i], i == 2);
    }

    /* refusals: a union mix scored by own, a mix from other probes, other capability names */
    snprintf(out, sizeof out, "%s/sel_bad", dir);
    char *s4[] = {"select", "--probes", probes, "--mix", mix_uni, "--input", pool_h5, "--pool", pool_jsonl,
                  "--output", out, NULL};
    ck_assert_int_eq(cli(ch_cmd_select, s4), CH_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "--heads union"));
    char other[300];
    snprintf(other, sizeof other, "%s/other.h5", dir);
    write_stage_probes(other, 1, caps5, 0.5f);
    char *s5[] = {"select", "--probes", other, "--mix", mix_own, "--input", pool_h5, "--pool", pool_jsonl,
                  "--output", out, NULL};
    ck_assert_int_eq(cli(ch_cmd_select, s5), CH_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "other probes"));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), other));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), mix_own));
    write_stage_probes(other, 1, "[\"math\", \"coding\", \"commonsense\", \"science\", \"professional\"]", 0);
    ck_assert_int_eq(cli(ch_cmd_select, s5), CH_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "coding"));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), mix_own));
    char *d3[] = {"decompose", "--probes", other, "--input", tasks_h5, "--output", out, NULL};
    ck_assert_int_eq(cli(ch_cmd_decompose, d3), CH_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "coding"));
    char *d4[] = {"decompose", "--probes", probes, "--input", tasks_h5, "--output", out, "--heads", "all", NULL};
    ck_assert_int_eq(cli(ch_cmd_decompose, d4), CH_EARG);
}
END_TEST

/* Benchmark b = tasks b/x (rows e1, e2: mix wa) and b/y (row e3: mix wb). A pool row's benchmark
 * score is the max of its two cosine scores; k = ceil(0.3 x 3) = 1. */
START_TEST(test_benchmark_level_by_hand) {
    stage_fixture();
    char tb[300], mix[300], out[300];
    snprintf(tb, sizeof tb, "%s/tasks_b.h5", dir);
    snprintf(mix, sizeof mix, "%s/mix_b", dir);
    const char *tid[4] = {"e1", "e2", "e3", "e4"}, *tt[4] = {"b/x", "b/x", "b/y", ""};
    write_stage_archive(tb, 4, tid, tt, "tasks-hash");
    char *d1[] = {"decompose", "--probes", probes, "--input", tb, "--output", mix, NULL};
    ck_assert_msg(cli(ch_cmd_decompose, d1) == 0, "%s", ch_err_msg());
    double wa[5], wb[5], pr[3][5], ca[3], cb[3], bm[3];
    for (int c = 0; c < 5; c++) wa[c] = (P1[c] / 149 + P2[c] / 138) / 2;
    hand(wb, P3, 863), hand(pr[0], P1, 149), hand(pr[1], P2, 138), hand(pr[2], P3, 863);
    for (int i = 0; i < 3; i++) {
        ca[i] = ch_capmix_score_cosine(wa, pr[i]), cb[i] = ch_capmix_score_cosine(wb, pr[i]);
        bm[i] = ca[i] > cb[i] ? ca[i] : cb[i];
    }
    /* b/x keeps p1 (0.994249), b/y keeps p3 (its own row, 1.0); the max keeps p3, where the mean
     * of the two scores would keep p1 (0.990601 > 0.982572) */
    ck_assert_double_eq_tol(ca[0], 0.994249, 1e-6);
    ck_assert_double_eq_tol(cb[0], 0.986952, 1e-6);
    ck_assert_double_eq_tol(cb[2], 1.0, 1e-12);
    ck_assert(ca[0] > ca[1] && ca[0] > ca[2] && cb[2] > cb[0] && cb[2] > cb[1]);
    ck_assert(ca[0] + cb[0] > ca[2] + cb[2] && bm[2] > bm[0] && bm[2] > bm[1]);

    snprintf(out, sizeof out, "%s/sel_b", dir);
    char *s1[] = {"select", "--probes", probes, "--mix", mix, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--score", "cosine", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s1) == 0, "%s", ch_err_msg());
    check_line(out, "b_x.jsonl", "{\"id\":\"p1\",\"text\":\"one\"}\n");
    check_line(out, "b_y.jsonl", "{\"id\":\"p3\",\"text\":\"three\"}\n");
    check_line(out, "benchmark/b.jsonl", "{\"id\":\"p3\",\"text\":\"three\"}\n");
    double bs[3], bsel[3], sc[2][3];
    ck_assert(read_all(out, "benchmark_scores", bs, 3) && read_all(out, "benchmark_selected", bsel, 3));
    ck_assert(read_all(out, "scores", sc[0], 6));
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(bs[i], bm[i], 1e-6);
        ck_assert(bs[i] == (sc[0][i] > sc[1][i] ? sc[0][i] : sc[1][i])); /* exactly the max */
        ck_assert(bsel[i] == (i == 2));
    }

    /* --level task: no benchmark sets; --level benchmark: no task sets */
    snprintf(out, sizeof out, "%s/sel_task", dir);
    char *s2[] = {"select", "--probes", probes, "--mix", mix, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--score", "cosine", "--level", "task", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s2) == 0, "%s", ch_err_msg());
    ck_assert(exists(out, "b_x.jsonl") && exists(out, "b_y.jsonl") && !exists(out, "benchmark"));
    ck_assert(!read_all(out, "benchmark_selected", bsel, 3) && read_all(out, "benchmark_scores", bs, 3));
    snprintf(out, sizeof out, "%s/sel_bench", dir);
    char *s3[] = {"select", "--probes", probes, "--mix", mix, "--input", pool_h5, "--pool", pool_jsonl,
                  "--fraction", "0.3", "--score", "cosine", "--level", "benchmark", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s3) == 0, "%s", ch_err_msg());
    ck_assert(!exists(out, "b_x.jsonl") && !exists(out, "b_y.jsonl"));
    check_line(out, "benchmark/b.jsonl", "{\"id\":\"p3\",\"text\":\"three\"}\n");
    ck_assert(!read_all(out, "selected", sc[0], 6) && read_all(out, "scores", sc[0], 6));

    /* benchmarks "a b" and "a_b" would share benchmark/a_b.jsonl: refused before anything is
     * written; their tasks' files differ, so --level task is fine */
    const char *tc[4] = {"a b/x", "a b/x", "a_b/y", ""};
    write_stage_archive(tb, 4, tid, tc, "tasks-hash");
    snprintf(mix, sizeof mix, "%s/mix_c", dir);
    ck_assert_msg(cli(ch_cmd_decompose, d1) == 0, "%s", ch_err_msg());
    snprintf(out, sizeof out, "%s/sel_c", dir);
    char *s4[] = {"select", "--probes", probes, "--mix", mix, "--input", pool_h5, "--pool", pool_jsonl,
                  "--output", out, NULL};
    ck_assert_int_eq(cli(ch_cmd_select, s4), CH_EARG);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "would both be written"));
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "benchmark/a_b.jsonl"));
    ck_assert(!exists(out, "scores.h5"));
    char *s5[] = {"select", "--probes", probes, "--mix", mix, "--input", pool_h5, "--pool", pool_jsonl,
                  "--level", "task", "--output", out, NULL};
    ck_assert_msg(cli(ch_cmd_select, s5) == 0, "%s", ch_err_msg());
    ck_assert(exists(out, "a_b_x.jsonl") && exists(out, "a_b_y.jsonl"));
}
END_TEST

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the refusals are the expected errors here */
    Suite *s = suite_create("capmix_stage");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_read_used_layers_then_apply_by_hand);
    tcase_add_test(tc, test_decompose_and_select_by_hand);
    tcase_add_test(tc, test_benchmark_level_by_hand);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* an MPI process must not fork */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (!failed && dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    }
    MPI_Finalize();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
