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

/* The published config.json of mistralai/Mistral-7B-v0.1 (a 4096 window on every layer),
 * google/gemma-2-2b and google/gemma-3-1b-it. */
static const char *mistral_7b =
    "{\"architectures\":[\"MistralForCausalLM\"],\"bos_token_id\":1,\"eos_token_id\":2,\"hidden_act\":\"silu\","
    "\"hidden_size\":4096,\"initializer_range\":0.02,\"intermediate_size\":14336,\"max_position_embeddings\":32768,"
    "\"model_type\":\"mistral\",\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":8,"
    "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"sliding_window\":4096,\"tie_word_embeddings\":false,"
    "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.34.0.dev0\",\"use_cache\":true,\"vocab_size\":32000}";
static const char *gemma2_2b =
    "{\"architectures\":[\"Gemma2ForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"attn_logit_softcapping\":50.0,\"bos_token_id\":2,\"cache_implementation\":\"hybrid\",\"eos_token_id\":1,"
    "\"final_logit_softcapping\":30.0,\"head_dim\":256,\"hidden_act\":\"gelu_pytorch_tanh\","
    "\"hidden_activation\":\"gelu_pytorch_tanh\",\"hidden_size\":2304,\"initializer_range\":0.02,"
    "\"intermediate_size\":9216,\"max_position_embeddings\":8192,\"model_type\":\"gemma2\","
    "\"num_attention_heads\":8,\"num_hidden_layers\":26,\"num_key_value_heads\":4,\"pad_token_id\":0,"
    "\"query_pre_attn_scalar\":256,\"rms_norm_eps\":1e-06,\"rope_theta\":10000.0,\"sliding_window\":4096,"
    "\"torch_dtype\":\"float32\",\"transformers_version\":\"4.42.4\",\"use_cache\":true,\"vocab_size\":256000}";
static const char *gemma3_1b =
    "{\"architectures\":[\"Gemma3ForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"attn_logit_softcapping\":null,\"bos_token_id\":2,\"cache_implementation\":\"hybrid\",\"eos_token_id\":[1,106],"
    "\"final_logit_softcapping\":null,\"head_dim\":256,\"hidden_activation\":\"gelu_pytorch_tanh\","
    "\"hidden_size\":1152,\"initializer_range\":0.02,\"intermediate_size\":6912,\"max_position_embeddings\":32768,"
    "\"model_type\":\"gemma3_text\",\"num_attention_heads\":4,\"num_hidden_layers\":26,\"num_key_value_heads\":1,"
    "\"pad_token_id\":0,\"query_pre_attn_scalar\":256,\"rms_norm_eps\":1e-06,\"rope_local_base_freq\":10000,"
    "\"rope_scaling\":null,\"rope_theta\":1000000,\"sliding_window\":512,\"sliding_window_pattern\":6,"
    "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.50.0.dev0\",\"use_cache\":true,\"vocab_size\":262144}";

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

/* sliding_window 4096 on every layer; null (v0.2 on): none; absent: transformers' default 4096 */
START_TEST(test_mistral_published_config_window) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(mistral_7b, "mistral", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_MISTRAL);
    ck_assert_int_eq(c.act, CH_ACT_SILU);
    ck_assert_int_eq(c.gemma, 0);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.qkv_bias + c.o_bias + c.qk_norm, 0);
    ck_assert_int_eq(c.sliding_window, 4096);
    for (int l = 0; l < c.n_layers; l++) ck_assert_int_eq(c.sliding[l], 1);
    ck_assert_float_eq_tol(c.attn_scale, 1.0f / sqrtf(128.0f), 1e-9f);
    ck_assert_float_eq(c.attn_softcap, 0.0f);
    ch_config_free(&c);
    char *a = edit(mistral_7b, "\"sliding_window\":4096", "\"sliding_window\":null");
    ck_assert_int_eq(ch_config_parse(a, "mistral v0.3", &c), 0);
    ck_assert_int_eq(c.sliding_window, 0);
    for (int l = 0; l < c.n_layers; l++) ck_assert_int_eq(c.sliding[l], 0);
    ch_config_free(&c);
    char *b = edit(mistral_7b, "\"sliding_window\":4096,", "");
    ck_assert_int_eq(ch_config_parse(b, "mistral default", &c), 0);
    ck_assert_int_eq(c.sliding_window, 4096);
    ch_config_free(&c);
    free(a), free(b);
}
END_TEST

/* Gemma 2: every other layer slides (layer 0 first), scale 1/sqrt(query_pre_attn_scalar), cap 50;
 * the same defaults when those keys are absent; null cap: none */
START_TEST(test_gemma2_published_config_and_defaults) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(gemma2_2b, "gemma2", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_GEMMA2);
    ck_assert_int_eq(c.gemma, 1);
    ck_assert_int_eq(c.act, CH_ACT_GELU_TANH);
    ck_assert_int_eq(c.head_dim, 256);
    ck_assert_int_eq(c.qk_norm + c.local_rope, 0);
    ck_assert_int_eq(c.sliding_window, 4096);
    for (int l = 0; l < c.n_layers; l++) ck_assert_int_eq(c.sliding[l], l % 2 == 0);
    ck_assert_float_eq(c.attn_scale, 1.0f / 16.0f);
    ck_assert_float_eq(c.attn_softcap, 50.0f);
    ck_assert_float_eq(c.rope.theta, 10000.0f);
    ch_config_free(&c);
    char *a = edit(gemma2_2b, "\"attn_logit_softcapping\":50.0,", "");
    char *b = edit(a, "\"query_pre_attn_scalar\":256,", "");
    char *d = edit(b, "\"sliding_window\":4096,", "");
    ck_assert_int_eq(ch_config_parse(d, "gemma2 defaults", &c), 0);
    ck_assert_float_eq(c.attn_scale, 1.0f / 16.0f);
    ck_assert_float_eq(c.attn_softcap, 50.0f);
    ck_assert_int_eq(c.sliding_window, 4096);
    ch_config_free(&c);
    char *e = edit(gemma2_2b, "\"attn_logit_softcapping\":50.0", "\"attn_logit_softcapping\":null");
    ck_assert_int_eq(ch_config_parse(e, "gemma2 uncapped", &c), 0);
    ck_assert_float_eq(c.attn_softcap, 0.0f);
    ch_config_free(&c);
    free(a), free(b), free(d), free(e);
}
END_TEST

/* Gemma 3 as published: every 6th layer global, q/k norms, rope 1e6 global and 1e4 local; and
 * transformers 5's own form (layer_types, rope_parameters per layer type) */
START_TEST(test_gemma3_published_and_v5_configs) {
    ch_config c;
    ck_assert_int_eq(ch_config_parse(gemma3_1b, "gemma3", &c), 0);
    ck_assert_int_eq(c.arch, CH_ARCH_GEMMA3);
    ck_assert_int_eq(c.gemma + c.qk_norm + c.local_rope, 3);
    ck_assert_int_eq(c.sliding_window, 512);
    for (int l = 0; l < c.n_layers; l++) ck_assert_int_eq(c.sliding[l], (l + 1) % 6 != 0);
    ck_assert_float_eq(c.attn_softcap, 0.0f);
    ck_assert_float_eq(c.rope.theta, 1e6f);
    ck_assert_float_eq(c.rope_local.theta, 1e4f);
    ck_assert_float_eq(c.rope.linear + c.rope_local.linear, 0.0f);
    ch_config_free(&c);
    char *a = edit(gemma3_1b, "\"rope_scaling\":null", "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}");
    ck_assert_int_eq(ch_config_parse(a, "gemma3 4b", &c), 0);
    ck_assert_float_eq(c.rope.linear, 8.0f);
    ck_assert_float_eq(c.rope_local.linear, 0.0f);
    ck_assert_float_eq_tol(ch_rope_inv_freq(3, &c.rope), 1.0f / powf(1e6f, 6.0f / 256.0f) / 8.0f, 1e-12f);
    ch_config_free(&c);
    char *b = edit(gemma3_1b, "\"rope_local_base_freq\":10000,\"rope_scaling\":null,\"rope_theta\":1000000,",
                   "\"rope_parameters\":{\"full_attention\":{\"rope_theta\":500000.0,\"rope_type\":\"linear\","
                   "\"factor\":4.0},\"sliding_attention\":{\"rope_theta\":20000.0,\"rope_type\":\"default\"}},"
                   "\"_sliding_window_pattern\":2,\"layer_types\":[\"full_attention\",\"sliding_attention\",\"full_attention\","
                   "\"sliding_attention\"],");
    char *d = edit(b, "\"num_hidden_layers\":26", "\"num_hidden_layers\":4");
    ck_assert_int_eq(ch_config_parse(d, "gemma3 v5", &c), 0);
    ck_assert_float_eq(c.rope.theta, 5e5f);
    ck_assert_float_eq(c.rope.linear, 4.0f);
    ck_assert_float_eq(c.rope_local.theta, 2e4f);
    for (int l = 0; l < 4; l++) ck_assert_int_eq(c.sliding[l], l % 2);
    ch_config_free(&c);
    free(a), free(b), free(d);
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
    char *j = edit(llama31_8b, "LlamaForCausalLM", "PhiForCausalLM");
    expect_refused(j, CH_EUNSUPPORTED, "PhiForCausalLM");
    /* the refusal lists what is supported */
    ck_assert_ptr_nonnull(strstr(ch_err_msg(), "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
                                               "MistralForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM"));
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
        {mistral_7b, "\"use_cache\":true", "\"layer_types\":[\"full_attention\"]", "layer_types"},
        {mistral_7b, "\"use_cache\":true", "\"attention_bias\":true", "attention_bias"},
        {mistral_7b, "\"sliding_window\":4096", "\"sliding_window\":0", "sliding_window"},
        {llama31_8b, "\"use_cache\":true", "\"query_pre_attn_scalar\":128", "query_pre_attn_scalar"},
        {qwen3_06b, "\"use_cache\":true", "\"attn_logit_softcapping\":50.0", "attn_logit_softcapping"},
        {gemma2_2b, "\"hidden_activation\":\"gelu_pytorch_tanh\"", "\"hidden_activation\":\"gelu\"", "hidden_activation"},
        {gemma2_2b, "\"attn_logit_softcapping\":50.0", "\"attn_logit_softcapping\":0", "attn_logit_softcapping"},
        {gemma2_2b, "\"use_cache\":true", "\"use_bidirectional_attention\":true", "use_bidirectional_attention"},
        {gemma2_2b, "\"head_dim\":256,", "", "head_dim"},
        {gemma2_2b, "\"num_key_value_heads\":4,", "", "num_key_value_heads"},
        {gemma2_2b, "\"sliding_window\":4096", "\"sliding_window\":null", "sliding_window"},
        {gemma2_2b, "\"use_cache\":true", "\"layer_types\":[\"sliding_attention\"]", "layer_types"},
        {gemma2_2b, "\"use_cache\":true", "\"sliding_window_pattern\":6", "sliding_window_pattern"},
        {gemma3_1b, "\"attn_logit_softcapping\":null", "\"attn_logit_softcapping\":50.0", "attn_logit_softcapping"},
        {gemma3_1b, "\"rope_scaling\":null", "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":8.0}", "yarn"},
        {gemma3_1b, "\"rope_scaling\":null", "\"rope_parameters\":{\"chunked_attention\":{}}", "chunked_attention"},
        {gemma3_1b, "\"sliding_window_pattern\":6", "\"sliding_window_pattern\":0", "sliding_window_pattern"},
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
    tcase_add_test(tc, test_mistral_published_config_window);
    tcase_add_test(tc, test_gemma2_published_config_and_defaults);
    tcase_add_test(tc, test_gemma3_published_and_v5_configs);
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
