/* test_config.c - config.json parsing: the real published configs are accepted, everything the
 * engine does not implement is refused naming the key, and RoPE frequencies equal transformers'. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

/* The published config.json of meta-llama/Llama-3.1-8B, Qwen/Qwen2.5-7B and Qwen/Qwen3-0.6B
 * (head_dim 128 != hidden / heads = 64, tied, sliding-window keys present but off). */
static const char *llama31_8b =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"bos_token_id\":128000,\"eos_token_id\":128001,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
    "\"initializer_range\":0.02,\"intermediate_size\":14336,\"max_position_embeddings\":131072,"
    "\"mlp_bias\":false,\"model_type\":\"llama\",\"num_attention_heads\":32,\"num_hidden_layers\":32,"
    "\"num_key_value_heads\":8,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":{\"factor\":"
    "8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
    "\"rope_type\":\"llama3\"},\"rope_theta\":500000.0,\"tie_word_embeddings\":false,\"torch_dtype\":"
    "\"bfloat16\",\"transformers_version\":\"4.43.0.dev0\",\"use_cache\":true,\"vocab_size\":128256}";
static const char *qwen25_7b =
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"attention_dropout\":0.0,\"bos_token_id\":151643,"
    "\"eos_token_id\":151643,\"hidden_act\":\"silu\",\"hidden_size\":3584,\"initializer_range\":0.02,"
    "\"intermediate_size\":18944,\"max_position_embeddings\":131072,\"max_window_layers\":28,"
    "\"model_type\":\"qwen2\",\"num_attention_heads\":28,\"num_hidden_layers\":28,"
    "\"num_key_value_heads\":4,\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"sliding_window\":131072,"
    "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.43.1\","
    "\"use_cache\":true,\"use_mrope\":false,\"use_sliding_window\":false,\"vocab_size\":152064}";

static const char *qwen3_06b =
    "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"bos_token_id\":151643,\"eos_token_id\":151645,\"head_dim\":128,\"hidden_act\":\"silu\","
    "\"hidden_size\":1024,\"initializer_range\":0.02,\"intermediate_size\":3072,"
    "\"max_position_embeddings\":40960,\"max_window_layers\":28,\"model_type\":\"qwen3\","
    "\"num_attention_heads\":16,\"num_hidden_layers\":28,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-06,"
    "\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":null,\"tie_word_embeddings\":true,"
    "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.51.0\",\"use_cache\":true,"
    "\"use_sliding_window\":false,\"vocab_size\":151936}";

/* Replace the first occurrence of `from` in base by `to` (test helper). */
static char *edit(const char *base, const char *from, const char *to) {
    const char *at = strstr(base, from);
    ck_assert_ptr_nonnull(at);
    size_t n = strlen(base) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return out;
}

static void expect_refused(const char *json, int code, const char *needle) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(json, "cfg.json", &c), code);
    ck_assert_msg(strstr(ch_err_msg(), needle) && strstr(ch_err_msg(), "cfg.json"),
                  "message '%s' lacks '%s' or the file name", ch_err_msg(), needle);
}

START_TEST(test_llama31_8b_published_config_accepted) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(llama31_8b, "llama", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_LLAMA);
    ck_assert_int_eq(c.n_layers, 32);
    ck_assert_int_eq(c.n_heads, 32);
    ck_assert_int_eq(c.n_kv_heads, 8);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.qkv_bias, 0);
    ck_assert_int_eq(c.rope.llama3, 1);
    ck_assert_float_eq(c.rope.theta, 500000.0f);
    ck_assert_float_eq_tol(c.rms_eps, 1e-5f, 1e-12f);
    ck_assert_str_eq(c.json, llama31_8b);
    ch_config_free(&c);
}
END_TEST

START_TEST(test_qwen25_7b_published_config_accepted) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(qwen25_7b, "qwen", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_QWEN2);
    ck_assert_int_eq(c.n_heads, 28);
    ck_assert_int_eq(c.n_kv_heads, 4);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.qkv_bias, 1);
    ck_assert_int_eq(c.o_bias, 0);
    ck_assert_int_eq(c.rope.llama3, 0);
    ch_config_free(&c);
}
END_TEST

START_TEST(test_qwen3_06b_published_config_accepted) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(qwen3_06b, "qwen3", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_QWEN3);
    ck_assert_int_eq(c.n_heads, 16);
    ck_assert_int_eq(c.n_kv_heads, 8);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.rope.head_dim, 128);
    ck_assert_int_eq(c.qk_norm, 1);
    ck_assert_int_eq(c.qkv_bias, 0);
    ck_assert_int_eq(c.o_bias, 0);
    ck_assert_int_eq(c.tie_embeddings, 1);
    ck_assert_float_eq(c.rope.theta, 1000000.0f);
    ch_config_free(&c);
    /* transformers 5's Qwen3Config().to_dict() form: rope_parameters and layer_types */
    char *a = edit(qwen3_06b, "\"rope_scaling\":null,\"rope_theta\":1000000,",
                   "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
                   "\"layer_types\":[\"full_attention\",\"full_attention\"],\"dtype\":null,"
                   "\"chunk_size_feed_forward\":0,\"output_attentions\":false,\"return_dict\":true,");
    ck_assert_int_eq(ch_config_parse(a, "qwen3 v5", &c), 0);
    ck_assert_float_eq(c.rope.theta, 1000000.0f);
    ch_config_free(&c);
    free(a);
}
END_TEST

START_TEST(test_rope_parameters_form_accepted) {
    /* transformers 5 writes rope_parameters (with rope_theta inside) instead of the two keys */
    char *a = edit(llama31_8b, "\"rope_scaling\":", "\"rope_parameters\":");
    char *b = edit(a, "\"rope_type\":\"llama3\"}", "\"rope_type\":\"llama3\",\"rope_theta\":250000.0}");
    char *j = edit(b, "\"rope_theta\":500000.0,", "");
    ch_config c;
    ck_assert_int_eq(ch_config_parse(j, "v5", &c), 0);
    ck_assert_int_eq(c.rope.llama3, 1);
    ck_assert_float_eq(c.rope.theta, 250000.0f);
    ch_config_free(&c);
    free(a), free(b), free(j);
}
END_TEST

START_TEST(test_unsupported_architecture_named) {
    char *j = edit(llama31_8b, "LlamaForCausalLM", "MistralForCausalLM");
    expect_refused(j, CH_EUNSUPPORTED, "MistralForCausalLM");
    /* the refusal lists what is supported */
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"));
    free(j);
}
END_TEST

START_TEST(test_unknown_key_named) {
    char *j = edit(llama31_8b, "\"use_cache\":true", "\"use_cache\":true,\"logit_softcapping\":30.0");
    expect_refused(j, CH_EUNSUPPORTED, "logit_softcapping");
    free(j);
}
END_TEST

START_TEST(test_unimplemented_values_named) {
    struct {
        const char *base, *from, *to, *needle;
    } cases[] = {
        {llama31_8b, "\"rope_type\":\"llama3\"", "\"rope_type\":\"yarn\"", "yarn"},
        {llama31_8b, "\"hidden_act\":\"silu\"", "\"hidden_act\":\"gelu\"", "hidden_act"},
        {llama31_8b, "\"mlp_bias\":false", "\"mlp_bias\":true", "mlp_bias"},
        {llama31_8b, "\"pretraining_tp\":1", "\"pretraining_tp\":2", "pretraining_tp"},
        {qwen25_7b, "\"use_sliding_window\":false", "\"use_sliding_window\":true", "use_sliding_window"},
        {qwen25_7b, "\"use_mrope\":false", "\"use_mrope\":true", "use_mrope"},
        {qwen3_06b, "\"use_sliding_window\":false", "\"use_sliding_window\":true", "use_sliding_window"},
        {qwen3_06b, "\"sliding_window\":null", "\"layer_types\":[\"sliding_attention\"]", "layer_types"},
        {llama31_8b, "\"low_freq_factor\":1.0,", "", "low_freq_factor"},
        {llama31_8b, "\"num_key_value_heads\":8", "\"num_key_value_heads\":7", "num_key_value_heads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = edit(cases[i].base, cases[i].from, cases[i].to);
        ch_config c;
        int rc = ch_config_parse(j, "cfg.json", &c);
        ck_assert_msg(rc == CH_EUNSUPPORTED || rc == CH_EFORMAT, "case %zu accepted", i);
        ck_assert_msg(strstr(ch_err_msg(), cases[i].needle), "case %zu: '%s' lacks '%s'", i,
                      ch_err_msg(), cases[i].needle);
        free(j);
    }
}
END_TEST

START_TEST(test_malformed_json_and_missing_file) {
    expect_refused("{\"architectures\": [\"LlamaForCausalLM\"", CH_EFORMAT, "not a JSON object");
    ch_config c;
    ck_assert_int_eq(ch_config_load("/nonexistent/config.json", &c), CH_EIO);
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "/nonexistent/config.json"));
}
END_TEST

/* inv_freq recorded from transformers' rotary embedding classes by make_rope_golden.py */
START_TEST(test_rope_inv_freq_matches_transformers) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/rope_inv_freq.txt", getenv("CH_SRC"));
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct {
        const char *name;
        ch_rope_params p;
    } cases[] = {
        {"llama31_8b", {500000.0f, 128, 1, 8.0f, 1.0f, 4.0f, 8192.0f}},
        {"llama32_3b", {500000.0f, 128, 1, 32.0f, 1.0f, 4.0f, 8192.0f}},
        {"llama_tiny16", {500000.0f, 16, 1, 8.0f, 1.0f, 4.0f, 64.0f}},
        {"qwen25_7b", {1000000.0f, 128, 0, 0, 0, 0, 0}},
        {"llama_plain", {10000.0f, 64, 0, 0, 0, 0, 0}},
    };
    char name[64];
    int hd, seen = 0;
    while (fscanf(f, "%63s %d", name, &hd) == 2) {
        const ch_rope_params *p = NULL;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!strcmp(cases[i].name, name)) p = &cases[i].p;
        ck_assert_msg(p != NULL, "unknown case %s", name);
        ck_assert_int_eq(hd, p->head_dim);
        for (int i = 0; i < hd / 2; i++) {
            double ref;
            ck_assert_int_eq(fscanf(f, "%lf", &ref), 1);
            double got = ch_rope_inv_freq(i, p);
            ck_assert_msg(fabs(got - ref) <= 2e-6 * fabs(ref), "%s inv_freq[%d]: %.9g vs HF %.9g", name,
                          i, got, ref);
        }
        seen++;
    }
    fclose(f);
    ck_assert_int_eq(seen, 5);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_llama31_8b_published_config_accepted);
    tcase_add_test(tc, test_qwen25_7b_published_config_accepted);
    tcase_add_test(tc, test_qwen3_06b_published_config_accepted);
    tcase_add_test(tc, test_rope_parameters_form_accepted);
    tcase_add_test(tc, test_unsupported_architecture_named);
    tcase_add_test(tc, test_unknown_key_named);
    tcase_add_test(tc, test_unimplemented_values_named);
    tcase_add_test(tc, test_malformed_json_and_missing_file);
    tcase_add_test(tc, test_rope_inv_freq_matches_transformers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
