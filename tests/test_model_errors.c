/* test_model_errors.c - bad checkpoints are refused with a message that names the file and the
 * tensor, never a crash: wrong shape for the config, missing tensor, unsupported architecture,
 * truncated file, missing shard, Linear weights of mixed dtypes. The checkpoints are written here,
 * byte by byte. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "model.h"

#define HID 8
#define INTER 16
#define VOCAB 10
#define QD 8  /* 2 heads x 4 */
#define KVD 4 /* 1 kv head x 4 */

static const char *config_fmt =
    "{\"architectures\":[\"%s\"],\"hidden_size\":8,\"intermediate_size\":%d,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":10,"
    "\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"hidden_act\":\"silu\",\"tie_word_embeddings\":true}";

typedef struct {
    const char *name;
    int rows, cols; /* cols 0: vector */
} spec;

static const spec llama_tensors[] = {
    {"model.embed_tokens.weight", VOCAB, HID},
    {"model.layers.0.input_layernorm.weight", HID, 0},
    {"model.layers.0.self_attn.q_proj.weight", QD, HID},
    {"model.layers.0.self_attn.k_proj.weight", KVD, HID},
    {"model.layers.0.self_attn.v_proj.weight", KVD, HID},
    {"model.layers.0.self_attn.o_proj.weight", HID, QD},
    {"model.layers.0.post_attention_layernorm.weight", HID, 0},
    {"model.layers.0.mlp.gate_proj.weight", INTER, HID},
    {"model.layers.0.mlp.up_proj.weight", INTER, HID},
    {"model.layers.0.mlp.down_proj.weight", HID, INTER},
    {"model.norm.weight", HID, 0},
};
#define NT ((int)(sizeof llama_tensors / sizeof llama_tensors[0]))

static char dir[256];

static void write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Write tensors [from, to) of the spec list as f32 into dir/name; `skip` (may be NULL) omitted;
 * the tensor named by bf16_one (may be NULL) as bf16 instead. */
static void write_st_dt(const char *name, int from, int to, const char *skip, int inter, const char *bf16_one) {
    char hdr[8192] = "{", p[512];
    size_t off = 0, n = 1;
    for (int i = from; i < to; i++) {
        const spec *s = &llama_tensors[i];
        if (skip && !strcmp(skip, s->name)) continue;
        int rows = s->rows == INTER ? inter : s->rows, cols = s->cols == INTER ? inter : s->cols;
        size_t cnt = (size_t)rows * (cols ? cols : 1);
        char shape[64];
        if (cols)
            snprintf(shape, sizeof shape, "[%d,%d]", rows, cols);
        else
            snprintf(shape, sizeof shape, "[%d]", rows);
        int b16 = bf16_one && !strcmp(bf16_one, s->name);
        n += snprintf(hdr + strlen(hdr), sizeof hdr - strlen(hdr),
                      "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                      strlen(hdr) > 1 ? "," : "", s->name, b16 ? "BF16" : "F32", shape, off, off + cnt * (b16 ? 2 : 4));
        off += cnt * (b16 ? 2 : 4);
    }
    strcat(hdr, "}");
    while (strlen(hdr) % 8) strcat(hdr, " ");
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned long long hl = strlen(hdr);
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    size_t i = 0; /* values 0.01 x (i mod 17) over the whole buffer, in each tensor's dtype */
    for (int t = from; t < to; t++) {
        const spec *s = &llama_tensors[t];
        if (skip && !strcmp(skip, s->name)) continue;
        int rows = s->rows == INTER ? inter : s->rows, cols = s->cols == INTER ? inter : s->cols;
        int b16 = bf16_one && !strcmp(bf16_one, s->name);
        for (size_t e = 0; e < (size_t)rows * (cols ? cols : 1); e++, i++) {
            float v = 0.01f * (float)(i % 17);
            unsigned int u;
            memcpy(&u, &v, 4);
            unsigned short h = (unsigned short)(u >> 16);
            if (b16) fwrite(&h, 2, 1, f);
            else fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
}
static void write_st(const char *name, int from, int to, const char *skip, int inter) {
    write_st_dt(name, from, to, skip, inter, NULL);
}

static void fresh_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/ch_model_errors_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}
static void cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return;
}

static void write_config(const char *arch, int inter) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, config_fmt, arch, inter);
    write_text("config.json", cfg);
}

static int open_model_at(ch_precision prec) {
    ch_backend *be;
    ck_assert_int_eq(ch_backend_cpu_create(1, &be), 0);
    ch_model *m = NULL;
    int rc = ch_model_open(dir, be, prec, &m);
    if (!rc) {
        /* a valid model must also run */
        int32_t toks[] = {1, 2, 3};
        int start[] = {0, 3};
        ch_batch b = {1, toks, start};
        float out[QD];
        ck_assert_int_eq(ch_model_capture(m, &b, CH_POOL_LAST, out), 0);
        int32_t bad[] = {1, 10};
        int st2[] = {0, 2};
        ch_batch bb = {1, bad, st2};
        ck_assert_int_eq(ch_model_capture(m, &bb, CH_POOL_LAST, out), CH_EARG);
        ck_assert_ptr_nonnull(strstr(ch_err_msg(), "token id 10"));
    }
    if (rc && getenv("CH_TEST_VERBOSE")) fprintf(stderr, "refused: %s\n", ch_err_msg());
    ch_model_close(m);
    ch_backend_destroy(be);
    return rc;
}
static int open_model(void) { return open_model_at(CH_PRECISION_AUTO); }

static void assert_msg_has(const char *a, const char *b) {
    ck_assert_msg(strstr(ch_err_msg(), a) && (!b || strstr(ch_err_msg(), b)), "message '%s' lacks '%s'/'%s'",
                  ch_err_msg(), a, b ? b : "");
}

START_TEST(test_valid_handmade_checkpoint_loads_and_runs) {
    fresh_dir();
    write_config("LlamaForCausalLM", INTER);
    write_st("model.safetensors", 0, NT, NULL, INTER);
    ck_assert_int_eq(open_model(), 0);
    cleanup();
}
END_TEST

START_TEST(test_wrong_shape_for_config_names_tensor) {
    fresh_dir();
    write_config("LlamaForCausalLM", 24); /* config says 24, tensors are 16 wide */
    write_st("model.safetensors", 0, NT, NULL, INTER);
    ck_assert_int_ne(open_model(), 0);
    assert_msg_has("model.layers.0.mlp.gate_proj.weight", "model.safetensors");
    cleanup();
}
END_TEST

/* one bf16 Linear among f32 ones: refused at the default precision (naming it and the advice),
 * loaded at --precision f32 */
START_TEST(test_mixed_linear_dtypes_need_f32) {
    fresh_dir();
    write_config("LlamaForCausalLM", INTER);
    write_st_dt("model.safetensors", 0, NT, NULL, INTER, "model.layers.0.mlp.up_proj.weight");
    ck_assert_int_eq(open_model(), CH_EUNSUPPORTED);
    assert_msg_has("model.layers.0.mlp.up_proj.weight is stored as BF16", "--precision f32");
    ck_assert_int_eq(open_model_at(CH_PRECISION_F32), 0);
    cleanup();
}
END_TEST

START_TEST(test_missing_tensor_names_tensor) {
    fresh_dir();
    write_config("LlamaForCausalLM", INTER);
    write_st("model.safetensors", 0, NT, "model.layers.0.self_attn.k_proj.weight", INTER);
    ck_assert_int_ne(open_model(), 0);
    assert_msg_has("model.layers.0.self_attn.k_proj.weight", NULL);
    cleanup();
}
END_TEST

START_TEST(test_unsupported_architecture_refused) {
    fresh_dir();
    write_config("GPT2LMHeadModel", INTER);
    write_st("model.safetensors", 0, NT, NULL, INTER);
    ck_assert_int_eq(open_model(), CH_EUNSUPPORTED);
    assert_msg_has("GPT2LMHeadModel", "config.json");
    for (int i = 0; i < CH_ARCH_COUNT; i++) assert_msg_has(ch_archs[i].name, NULL); /* the whole list */
    cleanup();
}
END_TEST

START_TEST(test_truncated_checkpoint_names_file) {
    fresh_dir();
    write_config("LlamaForCausalLM", INTER);
    write_st("model.safetensors", 0, NT, NULL, INTER);
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat sb;
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(truncate(p, sb.st_size - 100), 0);
    ck_assert_int_ne(open_model(), 0);
    assert_msg_has("model.safetensors", NULL);
    cleanup();
}
END_TEST

START_TEST(test_missing_shard_names_shard) {
    fresh_dir();
    write_config("LlamaForCausalLM", INTER);
    write_st("model-00001-of-00002.safetensors", 0, 5, NULL, INTER);
    /* shard 2 is listed in the index but never written */
    char idx[4096] = "{\"metadata\":{},\"weight_map\":{";
    for (int i = 0; i < NT; i++)
        snprintf(idx + strlen(idx), sizeof idx - strlen(idx), "%s\"%s\":\"model-0000%d-of-00002.safetensors\"",
                 i ? "," : "", llama_tensors[i].name, i < 5 ? 1 : 2);
    strcat(idx, "}}");
    write_text("model.safetensors.index.json", idx);
    ck_assert_int_ne(open_model(), 0);
    assert_msg_has("model-00002-of-00002.safetensors", NULL);
    /* and once the shard exists, the same directory loads */
    write_st("model-00002-of-00002.safetensors", 5, NT, NULL, INTER);
    ck_assert_int_eq(open_model(), 0);
    cleanup();
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_errors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_valid_handmade_checkpoint_loads_and_runs);
    tcase_add_test(tc, test_wrong_shape_for_config_names_tensor);
    tcase_add_test(tc, test_missing_tensor_names_tensor);
    tcase_add_test(tc, test_mixed_linear_dtypes_need_f32);
    tcase_add_test(tc, test_unsupported_architecture_refused);
    tcase_add_test(tc, test_truncated_checkpoint_names_file);
    tcase_add_test(tc, test_missing_shard_names_shard);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
