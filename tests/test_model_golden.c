/* test_model_golden.c - the engine against Hugging Face transformers (tests/golden/
 * make_model_golden.py): every layer's per-head attention output, at the last token and averaged
 * over the prompt, and the mean final hidden state, for tiny random Llama-3.1 / Llama-3.2 /
 * Qwen2.5 / Qwen3 (per-head q/k RMSNorm, head_dim != hidden / heads) / Mistral (sliding window on
 * every layer) / Gemma 2 (GeGLU, scaled embedding, (1 + w) sandwich norms, soft-capped scores,
 * sliding and global layers) / Gemma 3 (q/k norms, local rope base, linear rope scaling)
 * checkpoints in f32 and bf16 (one sharded). All sequences run packed in ONE batch and
 * again one per batch, at both precisions. Error metric: max |ours - HF| / max |HF| per
 * (sequence, layer).
 *   f32 weights (either precision): <= 1e-4.
 *   bf16 weights, --precision f32, vs HF in f32 on the same weights: <= 1e-4.
 *   bf16 weights, --precision auto (bf16 Linear inputs), vs that f32 run with every Linear's
 *   input rounded to bf16 (heads_bf16in): <= BF16IN_TOL - well under the bf16-vs-f32 gap itself,
 *   so an engine that skipped the rounding (or rounded elsewhere) fails it.
 *   bf16 weights, both precisions, vs HF running natively in bf16: <= 2e-2, or - where HF's own
 *   bf16 run is further than that from HF's run of the precision's contract (the f32 run, or the
 *   bf16-input one) - no further than that run is (x 1.1). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "safetensors.h"

#define NSEQ 6

typedef struct {
    const char *name;
    int bf16;
    double bf16in_tol; /* 0: BF16IN_TOL */
} golden;

/* bf16-rounded Linear inputs against the reference that rounds the same inputs: what is left is
 * the order of the f32 sums (~3e-7), and the rare input that lands on the other side of a bf16
 * rounding boundary because of it (one bf16 step on one element of a sum: up to 5.1e-4 seen, on
 * the portable kernel's final hidden state). The worst gap over the six sequences between that
 * reference and the unrounded f32 run - what an engine that skipped the rounding would show - is
 * 5.0e-3 to 1e-2 on these models, pooled either way: the limit sits between. */
#define BF16IN_TOL 2e-3
/* gemma2_bf16 is worse conditioned: on its 100-token sequence transformers' own f32 run of the
 * bf16-input contract is 2.6e-3 from the same contract run in float64 (last token, third layer;
 * 1e-4 on the second, < 4e-7 on every other sequence) - a rounding flip the soft-capped layers
 * amplify. 5e-3 allows twice that and stays under both the skip-the-rounding gap (1.2e-2) and
 * the gap of an embedding scale left unrounded (1.2e-2; on gemma3_bf16 6.2e-3 against 2e-3). */
#define GEMMA2_BF16IN_TOL 5e-3

static const golden models[] = {{"llama31_f32", 0, 0},  {"llama31_bf16", 1, 0}, {"llama31_bf16_sharded", 1, 0},
                                {"llama32_tied", 0, 0}, {"qwen25_f32", 0, 0},  {"qwen25_bf16", 1, 0},
                                {"qwen3_f32", 0, 0},    {"qwen3_bf16", 1, 0},  {"mistral_f32", 0, 0},
                                {"mistral_bf16", 1, 0}, {"gemma2_f32", 0, 0},  {"gemma2_bf16", 1, GEMMA2_BF16IN_TOL},
                                {"gemma3_f32", 0, 0},   {"gemma3_bf16", 1, 0}};

#include "golden_ref.h"

static void check_model(const golden *g, int packed, ch_precision prec) {
    char dir[4096], exp[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden/models/%s", getenv("CH_SRC"), g->name);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    ch_backend *be;
    ch_model *m;
    ch_st_file *f;
    ck_assert_int_eq(ch_backend_cpu_create(2, &be), 0);
    ck_assert_msg(ch_model_open(dir, be, prec, &m) == 0, "%s: %s", g->name, ch_err_msg());
    ck_assert_msg(ch_st_file_open(exp, &f) == 0, "%s", ch_err_msg());
    const int rounded = g->bf16 && prec == CH_PRECISION_AUTO; /* bf16 Linear inputs */
    ck_assert_str_eq(ch_model_precision(m), rounded ? "bf16" : "f32");
    const ch_config *c = ch_model_config(m);
    const int L = c->n_layers, W = c->n_heads * c->head_dim;
    const int64_t width = ch_model_capture_width(m);
    int64_t len[NSEQ];
    const int32_t *tok[NSEQ];
    int start[NSEQ + 1] = {0};
    for (int i = 0; i < NSEQ; i++) {
        tok[i] = (const int32_t *)golden_tensor(f, "tokens", i, &len[i]);
        start[i + 1] = start[i] + (int)len[i];
    }
    int32_t *all = malloc(sizeof(int32_t) * start[NSEQ]);
    for (int i = 0; i < NSEQ; i++) memcpy(all + start[i], tok[i], sizeof(int32_t) * len[i]);
    float *out = malloc(sizeof(float) * width * NSEQ), *hid = malloc(sizeof(float) * c->hidden * NSEQ);
    const char *refs[2] = {!g->bf16 ? "heads" : rounded ? "heads_bf16in" : "heads_f32", g->bf16 ? "heads" : NULL};
    const char *hrefs[2] = {!g->bf16 ? "final_hidden" : rounded ? "final_hidden_bf16in" : "final_hidden_f32",
                            g->bf16 ? "final_hidden" : NULL};
    const double tol[2] = {rounded ? (g->bf16in_tol > 0 ? g->bf16in_tol : BF16IN_TOL) : 1e-4, 2e-2};
    for (int pool = 0; pool < 2; pool++) {
        if (packed) {
            ch_batch b = {NSEQ, all, start};
            ck_assert_msg(ch_model_capture_ex(m, &b, (ch_pool)pool, out, hid) == 0, "%s", ch_err_msg());
        } else {
            for (int i = 0; i < NSEQ; i++) {
                int st[2] = {0, (int)len[i]};
                ch_batch b = {1, tok[i], st};
                ck_assert_int_eq(ch_model_capture_ex(m, &b, (ch_pool)pool, out + i * width, hid + i * c->hidden), 0);
            }
        }
        /* HF's own gap between its native bf16 run and the run of this precision's contract
         * (f32, or f32 with bf16 Linear inputs), pooled the same way */
        double hf_gap = 0, hf_hgap = 0;
        if (g->bf16)
            for (int i = 0; i < NSEQ; i++) {
                const float *nat = golden_tensor(f, "heads", i, NULL), *f32 = golden_tensor(f, refs[0], i, NULL); /* the contract run */
                const float *hn = golden_tensor(f, "final_hidden", i, NULL), *hf = golden_tensor(f, hrefs[0], i, NULL);
                float *pooled = malloc(sizeof(float) * (size_t)L * W), *hp = malloc(sizeof(float) * c->hidden);
                for (int l = 0; l < L; l++)
                    for (int j = 0; j < W; j++) {
                        double acc = 0;
                        for (int t = 0; t < len[i]; t++) acc += f32[((size_t)t * L + l) * W + j];
                        pooled[(size_t)l * W + j] = pool == CH_POOL_LAST ? f32[((size_t)(len[i] - 1) * L + l) * W + j]
                                                                         : (float)(acc / len[i]);
                    }
                for (int j = 0; j < c->hidden; j++) {
                    double acc = 0;
                    for (int t = 0; t < len[i]; t++) acc += hf[(size_t)t * c->hidden + j];
                    hp[j] = (float)(acc / len[i]);
                }
                double e = golden_err(pooled, nat, (int)len[i], L, W, (ch_pool)pool);
                double h = golden_err(hp, hn, (int)len[i], 1, c->hidden, CH_POOL_MEAN);
                hf_gap = e > hf_gap ? e : hf_gap, hf_hgap = h > hf_hgap ? h : hf_hgap;
                free(pooled), free(hp);
            }
        for (int r = 0; r < 2; r++) {
            if (!refs[r]) continue;
            double worst = 0, hworst = 0;
            for (int i = 0; i < NSEQ; i++) {
                double e = golden_err(out + i * width, golden_tensor(f, refs[r], i, NULL), (int)len[i], L, W, (ch_pool)pool);
                worst = e > worst ? e : worst;
                double h = golden_err(hid + i * c->hidden, golden_tensor(f, hrefs[r], i, NULL), (int)len[i], 1, c->hidden,
                                      CH_POOL_MEAN);
                hworst = h > hworst ? h : hworst;
            }
            double lim = tol[r], hlim = tol[r];
            if (r == 1) {
                lim = 1.1 * hf_gap > lim ? 1.1 * hf_gap : lim;
                hlim = 1.1 * hf_hgap > hlim ? 1.1 * hf_hgap : hlim;
            }
            printf("%-22s %-4s %-6s %s vs HF %-12s heads %.2e (limit %.2e)  hidden %.2e (limit %.2e)\n", g->name,
                   ch_model_precision(m), pool ? "mean" : "last", packed ? "packed" : "single", refs[r], worst, lim,
                   hworst, hlim);
            if (r == 1) printf("    HF bf16 vs HF %s on the same weights: heads %.2e, hidden %.2e\n", refs[0], hf_gap, hf_hgap);
            ck_assert_msg(worst <= lim, "%s %s vs %s: head outputs relative error %.3g > %.2e", g->name,
                          pool ? "mean" : "last", refs[r], worst, lim);
            ck_assert_msg(hworst <= hlim, "%s vs %s: final hidden relative error %.3g > %.2e", g->name, hrefs[r],
                          hworst, hlim);
        }
    }
    free(all), free(out), free(hid);
    ch_st_file_close(f);
    ch_model_close(m);
    ch_backend_destroy(be);
}

/* loop index: model _i / 2 at precision _i % 2 */
START_TEST(test_packed_batch_matches_transformers) { check_model(&models[_i / 2], 1, (ch_precision)(_i % 2)); }
END_TEST

START_TEST(test_one_sequence_per_batch_matches_transformers) {
    check_model(&models[_i / 2], 0, (ch_precision)(_i % 2));
}
END_TEST

/* The CPU backend splits each GEMM's output features over its threads (blocks of 64) and runs
 * attention per (sequence, head). The thread count must not change the results beyond rounding:
 * a block given the wrong rows or offset would be off by the values' own size. Not to the bit:
 * OpenBLAS may sum an edge tile in another order than a whole one (seen under valgrind, whose
 * CPU makes OpenBLAS pick other kernels). With bf16 weights (bf16-rounded Linear inputs) such an
 * f32 last-bit difference may put one input element on the other side of a bf16 rounding
 * boundary: one bf16 step (2^-8 relative) on one element of a sum, up to ~3e-4 of the output's
 * largest value at these sizes (weights 0.15, sums of 64-160); 1.8e-5 (heads) and 1.2e-4
 * (hidden) seen on qwen3_bf16 under valgrind. Those models get 1e-3 - still three orders under a
 * misplaced block; without valgrind all models agree to 1e-6.
 * Packed batch, both poolings, hidden too. */
static double rel_gap(const float *a, const float *ref, size_t n) {
    double d = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]), r = fabs((double)ref[i]);
        d = e > d || e != e ? e : d, mx = r > mx ? r : mx;
    }
    return mx > 0 ? d / mx : d;
}

START_TEST(test_thread_count_changes_only_rounding) {
    const golden *g = &models[_i];
    char dir[4096], exp[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden/models/%s", getenv("CH_SRC"), g->name);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    ch_st_file *f;
    ck_assert_msg(ch_st_file_open(exp, &f) == 0, "%s", ch_err_msg());
    int64_t len[NSEQ];
    int start[NSEQ + 1] = {0};
    for (int i = 0; i < NSEQ; i++) golden_tensor(f, "tokens", i, &len[i]), start[i + 1] = start[i] + (int)len[i];
    int32_t *all = malloc(sizeof(int32_t) * start[NSEQ]);
    for (int i = 0; i < NSEQ; i++) memcpy(all + start[i], golden_tensor(f, "tokens", i, NULL), sizeof(int32_t) * len[i]);
    float *ref = NULL, *refh = NULL;
    size_t nout = 0, nhid = 0;
    const int threads[] = {1, 2, 3};
    for (int ti = 0; ti < 3; ti++) {
        ch_backend *be;
        ch_model *m;
        ck_assert_int_eq(ch_backend_cpu_create(threads[ti], &be), 0);
        ck_assert_msg(ch_model_open(dir, be, CH_PRECISION_AUTO, &m) == 0, "%s: %s", g->name, ch_err_msg());
        nout = (size_t)ch_model_capture_width(m) * NSEQ, nhid = (size_t)ch_model_config(m)->hidden * NSEQ;
        float *out = malloc(sizeof(float) * nout * 2), *hid = malloc(sizeof(float) * nhid * 2);
        ch_batch b = {NSEQ, all, start};
        for (int pool = 0; pool < 2; pool++)
            ck_assert_msg(ch_model_capture_ex(m, &b, (ch_pool)pool, out + pool * nout, hid + pool * nhid) == 0, "%s",
                          ch_err_msg());
        if (!ref) {
            ref = out, refh = hid;
        } else {
            double e = rel_gap(out, ref, nout * 2), h = rel_gap(hid, refh, nhid * 2);
            const double lim = g->bf16 ? 1e-3 : 1e-6;
            ck_assert_msg(e <= lim, "%s: head outputs with %d threads are %.3g (relative) from 1 thread's", g->name,
                          threads[ti], e);
            ck_assert_msg(h <= lim, "%s: hidden with %d threads is %.3g (relative) from 1 thread's", g->name, threads[ti], h);
            free(out), free(hid);
        }
        ch_model_close(m);
        ch_backend_destroy(be);
    }
    free(ref), free(refh), free(all);
    ch_st_file_close(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    int n = (int)(sizeof models / sizeof models[0]);
    tcase_add_loop_test(tc, test_packed_batch_matches_transformers, 0, 2 * n);
    tcase_add_loop_test(tc, test_one_sequence_per_batch_matches_transformers, 0, 2 * n);
    tcase_add_loop_test(tc, test_thread_count_changes_only_rounding, 0, n);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
