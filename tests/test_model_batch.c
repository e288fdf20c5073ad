/* test_model_batch.c - the batch side of the engine, on the CPU backend:
 *  - the device-memory budget of a batch (ch_model_batch_bytes) and the largest --batch-tokens
 *    that fits a given amount of free memory (ch_model_fit_batch_tokens), by hand-computed values
 *    for the Llama-3.1-8B shape and by the defining inequality;
 *  - out of memory in a forward pass: the message names the batch's sizes, the free memory and
 *    the budget that would fit, and the model stays usable (a backend whose alloc fails above a
 *    size and whose mem_info reports a chosen free amount);
 *  - the asynchronous capture (download_async into host_alloc buffers, events): two batches in
 *    flight give the same values as the synchronous capture, and the strided download copies
 *    exactly the rows it is asked for. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"

/* Llama-3.1-8B: hidden 4096, intermediate 14336, 32 layers, 32 query heads, 8 kv heads, D 128. */
static ch_config llama8b(void) {
    ch_config c;
    memset(&c, 0, sizeof c);
    c.hidden = 4096, c.intermediate = 14336, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 8,
    c.head_dim = 128, c.vocab = 128256;
    return c;
}

START_TEST(test_batch_bytes_of_the_llama8b_shape_by_hand) {
    ch_config c = llama8b();
    /* per token: x, xn, tmp 3 x 4096 + q, att 2 x 4096 + k, v 2 x 1024 + gate, up 2 x 14336
     * floats, + ids and positions 2 x 4 bytes; per sequence: the captures 32 x 4096 floats and
     * one offset; fixed: the extra offset */
    const size_t per_tok = (3 * 4096 + 2 * 4096 + 2 * 1024 + 2 * 14336) * 4 + 8;
    const size_t per_seq = 32 * 4096 * 4 + 4;
    ck_assert_uint_eq(per_tok, 204808);
    ck_assert_uint_eq(per_seq, 524292);
    ck_assert_uint_eq(ch_model_batch_bytes(&c, 0, 0, 0), 4);
    ck_assert_uint_eq(ch_model_batch_bytes(&c, 1, 0, 0), 4 + per_tok);
    ck_assert_uint_eq(ch_model_batch_bytes(&c, 0, 1, 0), 4 + per_seq);
    ck_assert_uint_eq(ch_model_batch_bytes(&c, 4096, 16, 0), 4 + 4096 * per_tok + 16 * per_seq);
    /* the CUDA GEMM's workspace for bf16 weights: a 16-bit copy of the widest input (14336) with
     * a quarter of headroom, per token */
    const size_t ws = 14336 * 2 + 14336 * 2 / 4;
    ck_assert_uint_eq(ch_model_batch_bytes(&c, 4096, 16, ws), 4 + 4096 * (per_tok + ws) + 16 * per_seq);
    /* 16384 tokens in 64 sequences: about 3.7 GiB of activations */
    double gib = (double)ch_model_batch_bytes(&c, 16384, 64, ws) / (1024.0 * 1024 * 1024);
    ck_assert_msg(gib > 3.6 && gib < 3.8, "%.3f GiB", gib);
}
END_TEST

START_TEST(test_fit_batch_tokens_by_hand) {
    ch_config c = llama8b();
    /* one sequence whatever the budget (ratio 0): 1 GiB holds floor((2^30 - 524292 - 8) /
     * 204808) = 5240 tokens */
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, (size_t)1 << 30, 0.0, 0), 5240);
    /* exactly the bytes of 5240 tokens in one sequence fit, one byte less does not */
    size_t b5240 = ch_model_batch_bytes(&c, 5240, 1, 0);
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, b5240, 0.0, 0), 5240);
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, b5240 - 1, 0.0, 0), 5239);
    /* nothing fits below one token in one sequence */
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, ch_model_batch_bytes(&c, 1, 1, 0) - 1, 0.0, 0), 0);
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, 0, 0.5, 0), 0);
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, ch_model_batch_bytes(&c, 1, 1, 0), 0.5, 0), 1);
    /* the ratio is clamped to [0, 1]: more sequences than tokens cannot happen, NaN counts as 0 */
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, (size_t)1 << 30, 3.0, 0),
                     ch_model_fit_batch_tokens(&c, (size_t)1 << 30, 1.0, 0));
    ck_assert_int_eq(ch_model_fit_batch_tokens(&c, (size_t)1 << 30, NAN, 0),
                     ch_model_fit_batch_tokens(&c, (size_t)1 << 30, 0.0, 0));
    /* a budget never exceeds what --batch-tokens takes */
    ch_config tiny = c;
    tiny.hidden = tiny.intermediate = tiny.n_layers = tiny.n_heads = tiny.n_kv_heads = tiny.head_dim = 1;
    ck_assert_int_eq(ch_model_fit_batch_tokens(&tiny, (size_t)1 << 60, 0.0, 0), 2147483647);
}
END_TEST

START_TEST(test_fit_batch_tokens_is_the_largest_that_fits) {
    ch_config c = llama8b();
    const double ratios[] = {0.0, 1.0 / 4096, 1.0 / 256, 1.0 / 37, 0.1, 0.5, 1.0};
    const size_t wss[] = {0, 35840};
    for (size_t w = 0; w < 2; w++)
        for (size_t r = 0; r < sizeof ratios / sizeof ratios[0]; r++)
            for (double g = 0.01; g < 200; g *= 1.7) {
                size_t avail = (size_t)(g * 1024 * 1024 * 1024);
                int64_t n = ch_model_fit_batch_tokens(&c, avail, ratios[r], wss[w]);
                int64_t s = (int64_t)ceil((double)n * ratios[r]), s1 = (int64_t)ceil((double)(n + 1) * ratios[r]);
                if (s < 1) s = 1;
                if (s1 < 1) s1 = 1;
                if (n > 0)
                    ck_assert_msg(ch_model_batch_bytes(&c, n, s, wss[w]) <= avail, "%.2f GiB ratio %g: %lld too many",
                                  g, ratios[r], (long long)n);
                ck_assert_msg(ch_model_batch_bytes(&c, n + 1, s1, wss[w]) > avail, "%.2f GiB ratio %g: %lld not the largest",
                              g, ratios[r], (long long)n);
            }
}
END_TEST

/* ---- the demo model on a CPU backend ------------------------------------------------------ */

static ch_backend *be;
static ch_model *m;
static int (*real_alloc)(ch_backend *, size_t, void **);
static size_t alloc_limit, fake_free;

static int limited_alloc(ch_backend *b, size_t bytes, void **p) {
    if (bytes > alloc_limit) CH_FAIL(CH_ENOMEM, "test backend: %zu bytes is over the limit", bytes);
    return real_alloc(b, bytes, p);
}
static int fake_mem_info(ch_backend *b, size_t *fr, size_t *tot) {
    *fr = fake_free, *tot = 2 * fake_free;
    return 0;
}

static void open_demo(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data/demo/model", getenv("CH_SRC") ? getenv("CH_SRC") : ".");
    ck_assert_int_eq(ch_backend_cpu_create(1, &be), 0);
    ck_assert_msg(ch_model_open(dir, be, CH_PRECISION_AUTO, &m) == 0, "%s", ch_err_msg());
}
static void close_demo(void) {
    ch_model_close(m);
    ch_backend_destroy(be);
    m = NULL, be = NULL;
}

/* nseq sequences of lengths 1 + (s * 7) % maxlen, token ids from a counter */
typedef struct {
    int32_t *tok;
    int *start;
    ch_batch b;
} test_batch;
static test_batch make_batch(int nseq, int maxlen, int seed) {
    test_batch t;
    t.start = malloc(sizeof(int) * (nseq + 1));
    t.start[0] = 0;
    for (int s = 0; s < nseq; s++) t.start[s + 1] = t.start[s] + 1 + (s * 7 + seed) % maxlen;
    t.tok = malloc(sizeof(int32_t) * t.start[nseq]);
    for (int i = 0; i < t.start[nseq]; i++) t.tok[i] = (int32_t)((i * 7919 + seed * 104729) % 128000);
    t.b = (ch_batch){.nseq = nseq, .tokens = t.tok, .start = t.start};
    return t;
}
static void free_batch(test_batch *t) { free(t->tok), free(t->start); }

START_TEST(test_out_of_memory_names_sizes_and_a_budget_that_fits) {
    open_demo();
    const ch_config *c = ch_model_config(m);
    real_alloc = be->alloc;
    be->alloc = limited_alloc;
    be->mem_info = fake_mem_info;
    /* 64 sequences of 16 tokens: the [1024, intermediate] f32 buffers (512 KiB) fail */
    int32_t tok[1024];
    int start[65];
    for (int i = 0; i < 1024; i++) tok[i] = (int32_t)(i * 31 % 128000);
    for (int s = 0; s <= 64; s++) start[s] = 16 * s;
    ch_batch b = {.nseq = 64, .tokens = tok, .start = start};
    alloc_limit = 256 << 10, fake_free = 1 << 20;
    float *out = malloc(sizeof(float) * 64 * ch_model_capture_width(m));
    ck_assert_int_eq(ch_model_capture(m, &b, CH_POOL_LAST, out), CH_ENOMEM);
    const char *msg = ch_err_msg();
    if (getenv("CH_TEST_VERBOSE")) fprintf(stderr, "out-of-memory message: %s\n", msg);
    /* the demo shape: per token (3 x 48 + 2 x 48 + 2 x 16 + 2 x 128) x 4 + 8, per sequence
     * 4 x 48 x 4 + 4; plus the bf16 GEMM's copy of one token's widest input (the MLP's: hidden 48
     * and intermediate 128 at once) */
    ck_assert_uint_eq(ch_model_batch_bytes(c, 1, 0, 0) - ch_model_batch_bytes(c, 0, 0, 0), 2120);
    size_t ws = be->gemm_workspace(be, CH_DT_BF16, 48 + 128);
    ck_assert_uint_ge(ws, (48 + 128) * 2);
    int64_t fit = ch_model_fit_batch_tokens(c, (size_t)(0.9 * (1 << 20)), 64.0 / 1024, ws);
    ck_assert_int_gt(fit, 16);
    ck_assert_int_lt(fit, 1024);
    char want[64], per_tok[64];
    snprintf(want, sizeof want, "--batch-tokens %lld would fit", (long long)fit);
    snprintf(per_tok, sizeof per_tok, "%zu bytes per token", 2120 + ws);
    ck_assert_msg(strstr(msg, "1024 tokens in 64 sequences") && strstr(msg, per_tok) &&
                      strstr(msg, "772 per sequence") && strstr(msg, "1.0 MiB are free") && strstr(msg, want) &&
                      strstr(msg, "over the limit"),
                  "message: %s", msg);
    ck_assert_ptr_null(strstr(msg, "--max-tokens")); /* 16-token records fit alone */
    /* a record longer than any budget that fits is told to --max-tokens */
    fake_free = 64 << 10;
    int st1[2] = {0, 1024};
    ch_batch one = {.nseq = 1, .tokens = tok, .start = st1};
    ck_assert_int_eq(ch_model_capture(m, &one, CH_POOL_LAST, out), CH_ENOMEM);
    ck_assert_msg(strstr(ch_err_msg(), "a record of 1024 tokens would still not fit alone: --max-tokens"), "message: %s",
                  ch_err_msg());
    /* nothing fits at all */
    fake_free = 1000;
    ck_assert_int_eq(ch_model_capture(m, &b, CH_POOL_LAST, out), CH_ENOMEM);
    ck_assert_msg(strstr(ch_err_msg(), "not enough for one token"), "message: %s", ch_err_msg());
    /* the model is still usable: a batch of the suggested size runs */
    int n = 0, nt = 0;
    while (n < 64 && nt + 16 <= fit) n++, nt += 16;
    b.nseq = n;
    ck_assert_msg(ch_model_capture(m, &b, CH_POOL_LAST, out) == 0, "%s", ch_err_msg());
    free(out);
    close_demo();
}
END_TEST

START_TEST(test_async_capture_of_two_batches_in_flight_equals_sync) {
    open_demo();
    const ch_config *c = ch_model_config(m);
    const size_t W = (size_t)ch_model_capture_width(m);
    /* the reference from a second instance, so that m's scratch grows between the two batches
     * (62 tokens in 9 sequences, then 258 in 12) while the first one's copies are queued */
    ch_model *ref_m = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data/demo/model", getenv("CH_SRC") ? getenv("CH_SRC") : ".");
    ck_assert_msg(ch_model_open(dir, be, CH_PRECISION_AUTO, &ref_m) == 0, "%s", ch_err_msg());
    test_batch t[2] = {make_batch(9, 13, 1), make_batch(12, 40, 2)};
    ck_assert_int_eq(t[0].start[9], 62);
    ck_assert_int_eq(t[1].start[12], 258);
    const size_t L = (size_t)c->n_layers, HD = W / L;
    for (int pool = 0; pool < 2; pool++) {
        float *ref[2], *href[2];
        uint16_t *out[2], *hid[2];
        ch_event *ev[2];
        for (int k = 0; k < 2; k++) {
            int ns = t[k].b.nseq;
            ref[k] = malloc(sizeof(float) * ns * W), href[k] = malloc(sizeof(float) * ns * c->hidden);
            ck_assert_int_eq(ch_model_capture_ex(ref_m, &t[k].b, (ch_pool)pool, ref[k], href[k]), 0);
            ck_assert_int_eq(be->host_alloc(be, sizeof(uint16_t) * ns * W, (void **)&out[k]), 0);
            ck_assert_int_eq(be->host_alloc(be, sizeof(uint16_t) * ns * c->hidden, (void **)&hid[k]), 0);
            memset(out[k], 0xff, sizeof(uint16_t) * ns * W);
            ck_assert_int_eq(be->event_create(be, &ev[k]), 0);
            ck_assert_int_eq(be->event_wait(be, ev[k]), 0); /* never recorded: returns at once */
        }
        /* both queued before either is waited for, the second with a larger scratch */
        for (int k = 0; k < 2; k++)
            ck_assert_msg(ch_model_capture_start(m, &t[k].b, (ch_pool)pool, out[k], hid[k], ev[k]) == 0, "%s",
                          ch_err_msg());
        for (int k = 1; k >= 0; k--) {
            ck_assert_int_eq(be->event_wait(be, ev[k]), 0);
            int ns = t[k].b.nseq;
            /* the archive's form of the synchronous f32 values, exactly: each one narrowed by
             * ch_f32_to_f16, laid out [L][nseq][H*D] */
            size_t bad = 0, hbad = 0;
            for (int q = 0; q < ns; q++)
                for (size_t l = 0; l < L; l++)
                    for (size_t j = 0; j < HD; j++)
                        bad += out[k][(l * ns + q) * HD + j] != ch_f32_to_f16(ref[k][q * W + l * HD + j]);
            for (size_t i = 0; i < (size_t)ns * c->hidden; i++) hbad += hid[k][i] != ch_f32_to_f16(href[k][i]);
            ck_assert_msg(!bad, "batch %d pool %d: %zu captures differ", k, pool, bad);
            ck_assert_msg(!hbad, "batch %d: %zu hidden values differ", k, hbad);
            free(ref[k]), free(href[k]);
            be->host_free(be, out[k]), be->host_free(be, hid[k]);
            be->event_destroy(be, ev[k]);
        }
    }
    free_batch(&t[0]), free_batch(&t[1]);
    ch_model_close(ref_m);
    close_demo();
}
END_TEST

START_TEST(test_download_async_copies_exactly_the_strided_rows) {
    ck_assert_int_eq(ch_backend_cpu_create(1, &be), 0);
    float src[6 * 10], *dst = NULL, *dev = NULL;
    for (int i = 0; i < 60; i++) src[i] = (float)i;
    ck_assert_int_eq(be->alloc(be, sizeof src, (void **)&dev), 0);
    ck_assert_int_eq(be->upload(be, dev, src, sizeof src), 0);
    ck_assert_int_eq(be->host_alloc(be, sizeof(float) * 4 * 16, (void **)&dst), 0);
    ck_assert_uint_eq((uintptr_t)dst % 64, 0);
    for (int i = 0; i < 64; i++) dst[i] = -1;
    ch_event *ev = NULL;
    ck_assert_int_eq(be->event_create(be, &ev), 0);
    /* rows 1..4 of [6, 10], columns 2..6, into a [4, 16] buffer at column 3 */
    ck_assert_int_eq(be->download_async(be, dst + 3, 16 * sizeof(float), dev + 10 + 2, 10 * sizeof(float),
                                        5 * sizeof(float), 4),
                     0);
    ck_assert_int_eq(be->event_record(be, ev), 0);
    ck_assert_int_eq(be->event_wait(be, ev), 0);
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 16; j++) {
            float want = j >= 3 && j < 8 ? (float)((r + 1) * 10 + 2 + j - 3) : -1.0f;
            ck_assert_msg(dst[r * 16 + j] == want, "row %d col %d: %g, want %g", r, j, dst[r * 16 + j], want);
        }
    /* a row wider than a pitch is refused */
    ck_assert_int_eq(be->download_async(be, dst, 4, dev, 40, 8, 2), CH_EARG);
    /* the CPU reports the host's memory */
    size_t fr = 0, tot = 0;
    ck_assert_int_eq(be->mem_info(be, &fr, &tot), 0);
    ck_assert_uint_le(fr, tot);
    /* f32 weights: OpenBLAS needs nothing of ours; bf16: a rounded copy of B, >= 16 bits each */
    ck_assert_uint_eq(be->gemm_workspace(be, CH_DT_F32, 1000), 0);
    ck_assert_uint_ge(be->gemm_workspace(be, CH_DT_BF16, 1000), 2000);
    be->event_destroy(be, ev);
    be->host_free(be, dst);
    be->free(be, dev);
    ch_backend_destroy(be);
    be = NULL;
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_batch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_batch_bytes_of_the_llama8b_shape_by_hand);
    tcase_add_test(tc, test_fit_batch_tokens_by_hand);
    tcase_add_test(tc, test_fit_batch_tokens_is_the_largest_that_fits);
    tcase_add_test(tc, test_out_of_memory_names_sizes_and_a_budget_that_fits);
    tcase_add_test(tc, test_async_capture_of_two_batches_in_flight_equals_sync);
    tcase_add_test(tc, test_download_async_copies_exactly_the_strided_rows);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
