/* config.c - read config.json and refuse what the engine does not implement. See config.h. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"

/* Keys that do not change a forward pass without an LM head, or whose only supported value is
 * checked below. Anything not listed here and not interpreted is refused: a silently ignored
 * key is how a model ends up computing something other than what its authors trained. */
static const char *const ignorable[] = {
    "_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache",
    "attention_dropout", "tie_word_embeddings", "output_attentions", "output_hidden_states",
    "return_dict", "max_window_layers", "sliding_window", "use_sliding_window", "layer_types",
    "pretraining_tp", "mlp_bias", "attention_bias", "hidden_act", "rope_scaling", "rope_theta",
    "rope_parameters", "head_dim", "max_position_embeddings", "vocab_size", "rms_norm_eps",
    "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "hidden_size",
    "intermediate_size", "partial_rotary_factor", "chunk_size_feed_forward", "is_encoder_decoder",
    "id2label", "label2id", "problem_type", "tokenizer_class", "finetuning_task", "prefix",
    "task_specific_params", "bos_token", "eos_token", "unsloth_fixed", "quantization_config",
    "use_mrope"};

static int is_known_key(const char *k) {
    for (size_t i = 0; i < sizeof ignorable / sizeof ignorable[0]; i++)
        if (!strcmp(k, ignorable[i])) return 1;
    return 0;
}

static int get_int(const cJSON *root, const char *where, const char *key, int required, int dflt,
                   int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) CH_FAIL(CH_EFORMAT, "%s: missing required key '%s'", where, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e9)
        CH_FAIL(CH_EFORMAT, "%s: key '%s' must be a non-negative integer", where, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *root, const char *where, const char *key, int required,
                   double dflt, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) CH_FAIL(CH_EFORMAT, "%s: missing required key '%s'", where, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) CH_FAIL(CH_EFORMAT, "%s: key '%s' must be a number", where, key);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *where, const char *key, int dflt, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) CH_FAIL(CH_EFORMAT, "%s: key '%s' must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* rope_scaling (classic form) or rope_parameters (newer transformers): the same fields, the
 * latter also carrying rope_theta. Only the default rope and Llama 3's scaling are implemented. */
static int parse_rope(const cJSON *root, const char *where, ch_config *c) {
    double theta = 10000.0;
    CH_TRY(get_num(root, where, "rope_theta", 0, 10000.0, &theta));
    const char *key = "rope_scaling";
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, key);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) CH_FAIL(CH_EFORMAT, "%s: 'rope_parameters' must be an object", where);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rp, "rope_theta");
        if (t && cJSON_IsNumber(t)) theta = t->valuedouble;
        if (!rs || cJSON_IsNull(rs)) {
            rs = rp;
            key = "rope_parameters";
        }
    }
    memset(&c->rope, 0, sizeof c->rope);
    c->rope.theta = (float)theta;
    c->rope.head_dim = c->head_dim;
    if (!(theta > 1.0)) CH_FAIL(CH_EUNSUPPORTED, "%s: rope_theta %g is not supported", where, theta);
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) CH_FAIL(CH_EFORMAT, "%s: '%s' must be an object or null", where, key);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type || !cJSON_IsString(type))
        CH_FAIL(CH_EFORMAT, "%s: '%s' has no string 'rope_type'", where, key);
    if (!strcmp(type->valuestring, "default")) return 0;
    if (strcmp(type->valuestring, "llama3"))
        CH_FAIL(CH_EUNSUPPORTED,
                "%s: %s.rope_type '%s' is not supported (supported: default, llama3)", where, key,
                type->valuestring);
    double f, lo, hi, orig;
    CH_TRY(get_num(rs, where, "factor", 1, 0, &f));
    CH_TRY(get_num(rs, where, "low_freq_factor", 1, 0, &lo));
    CH_TRY(get_num(rs, where, "high_freq_factor", 1, 0, &hi));
    CH_TRY(get_num(rs, where, "original_max_position_embeddings", 1, 0, &orig));
    if (!(f > 0) || !(lo > 0) || !(hi > lo) || !(orig > 0))
        CH_FAIL(CH_EFORMAT,
                "%s: %s llama3 parameters must satisfy factor > 0, 0 < low_freq_factor < "
                "high_freq_factor, original_max_position_embeddings > 0",
                where, key);
    for (const cJSON *it = rs->child; it; it = it->next) {
        static const char *ok[] = {"rope_type", "type", "factor", "low_freq_factor", "high_freq_factor",
                                   "original_max_position_embeddings", "rope_theta"};
        int known = 0;
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) known |= !strcmp(it->string, ok[i]);
        if (!known) CH_FAIL(CH_EUNSUPPORTED, "%s: %s.%s is not supported", where, key, it->string);
    }
    c->rope.llama3 = 1;
    c->rope.factor = (float)f;
    c->rope.low_freq_factor = (float)lo;
    c->rope.high_freq_factor = (float)hi;
    c->rope.orig_max_pos = (float)orig;
    return 0;
}

static int check_values(const cJSON *root, const char *where, ch_config *c) {
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "hidden_act")) &&
        (!cJSON_IsString(v) || strcmp(v->valuestring, "silu")))
        CH_FAIL(CH_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", where,
                cJSON_IsString(v) ? v->valuestring : "?");
    int b = 0;
    CH_TRY(get_bool(root, where, "mlp_bias", 0, &b));
    if (b) CH_FAIL(CH_EUNSUPPORTED, "%s: mlp_bias true is not supported", where);
    CH_TRY(get_bool(root, where, "use_mrope", 0, &b));
    if (b) CH_FAIL(CH_EUNSUPPORTED, "%s: use_mrope true is not supported", where);
    CH_TRY(get_bool(root, where, "use_sliding_window", 0, &b));
    if (b) CH_FAIL(CH_EUNSUPPORTED, "%s: use_sliding_window true is not supported", where);
    int tp = 1;
    CH_TRY(get_int(root, where, "pretraining_tp", 0, 1, &tp));
    if (tp != 1) CH_FAIL(CH_EUNSUPPORTED, "%s: pretraining_tp %d is not supported (only 1)", where, tp);
    double prf = 1.0;
    CH_TRY(get_num(root, where, "partial_rotary_factor", 0, 1.0, &prf));
    if (prf != 1.0) CH_FAIL(CH_EUNSUPPORTED, "%s: partial_rotary_factor %g is not supported", where, prf);
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "quantization_config")) && !cJSON_IsNull(v))
        CH_FAIL(CH_EUNSUPPORTED, "%s: quantization_config: quantized checkpoints are not supported", where);
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "layer_types")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v)) CH_FAIL(CH_EFORMAT, "%s: layer_types must be a list", where);
        int i = 0;
        for (const cJSON *it = v->child; it; it = it->next, i++)
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "full_attention"))
                CH_FAIL(CH_EUNSUPPORTED,
                        "%s: layer_types[%d] '%s' is not supported (only full_attention)", where, i,
                        cJSON_IsString(it) ? it->valuestring : "?");
    }
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->intermediate <= 0 || c->vocab <= 0 || c->head_dim <= 0)
        CH_FAIL(CH_EFORMAT, "%s: sizes must be positive", where);
    if (c->n_heads % c->n_kv_heads)
        CH_FAIL(CH_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                where, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 || c->head_dim > 512)
        CH_FAIL(CH_EUNSUPPORTED, "%s: head_dim %d is not supported (even, <= 512)", where, c->head_dim);
    if (!(c->rms_eps > 0)) CH_FAIL(CH_EFORMAT, "%s: rms_norm_eps must be > 0", where);
    return 0;
}

int ch_config_parse(const char *text, const char *where, ch_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text ? (long)(at - text) : -1;
        cJSON_Delete(root);
        CH_FAIL(CH_EFORMAT, "%s: not a JSON object (parse error near byte %ld)", where, off);
    }
    int rc = 0;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!a0 || !cJSON_IsString(a0))
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: missing 'architectures' list", where);
    if (cJSON_GetArraySize(arch) != 1)
        CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: architectures must name exactly one class", where);
    if (!strcmp(a0->valuestring, "LlamaForCausalLM"))
        c->arch = CH_ARCH_LLAMA;
    else if (!strcmp(a0->valuestring, "Qwen2ForCausalLM"))
        c->arch = CH_ARCH_QWEN2;
    else if (!strcmp(a0->valuestring, "Qwen3ForCausalLM"))
        c->arch = CH_ARCH_QWEN3;
    else
        CH_FAIL_GOTO(done, CH_EUNSUPPORTED,
                     "%s: architecture '%s' is not supported (supported: LlamaForCausalLM, "
                     "Qwen2ForCausalLM, Qwen3ForCausalLM)",
                     where, a0->valuestring);
    snprintf(c->arch_name, sizeof c->arch_name, "%s", a0->valuestring);

    for (const cJSON *it = root->child; it; it = it->next)
        if (!is_known_key(it->string))
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED,
                         "%s: config key '%s' is not supported by the engine (it may change the "
                         "forward pass)",
                         where, it->string);

    CH_TRY_GOTO(get_int(root, where, "hidden_size", 1, 0, &c->hidden), done);
    CH_TRY_GOTO(get_int(root, where, "intermediate_size", 1, 0, &c->intermediate), done);
    CH_TRY_GOTO(get_int(root, where, "num_hidden_layers", 1, 0, &c->n_layers), done);
    CH_TRY_GOTO(get_int(root, where, "num_attention_heads", 1, 0, &c->n_heads), done);
    CH_TRY_GOTO(get_int(root, where, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads), done);
    CH_TRY_GOTO(get_int(root, where, "vocab_size", 1, 0, &c->vocab), done);
    CH_TRY_GOTO(get_int(root, where, "max_position_embeddings", 0, 0, &c->max_pos), done);
    if (c->n_heads <= 0) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: num_attention_heads must be > 0", where);
    CH_TRY_GOTO(get_int(root, where, "head_dim", 0, c->hidden / c->n_heads, &c->head_dim), done);
    double eps;
    CH_TRY_GOTO(get_num(root, where, "rms_norm_eps", 0, 1e-6, &eps), done);
    c->rms_eps = (float)eps;
    int attn_bias = 0;
    CH_TRY_GOTO(get_bool(root, where, "attention_bias", 0, &attn_bias), done);
    if (c->arch == CH_ARCH_QWEN2) {
        if (attn_bias) /* Qwen2 has q/k/v biases by construction and never an o_proj bias */
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: attention_bias is not a Qwen2 option", where);
        c->qkv_bias = 1;
    } else { /* Llama and Qwen3: attention_bias puts a bias on q, k, v and o alike */
        c->qkv_bias = c->o_bias = attn_bias;
    }
    c->qk_norm = c->arch == CH_ARCH_QWEN3;
    CH_TRY_GOTO(get_bool(root, where, "tie_word_embeddings", 0, &c->tie_embeddings), done);
    CH_TRY_GOTO(check_values(root, where, c), done);
    CH_TRY_GOTO(parse_rope(root, where, c), done);
    c->json = strdup(text);
    if (!c->json) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory copying %s", where);
done:
    cJSON_Delete(root);
    return rc;
}

int ch_config_load(const char *path, ch_config *c) {
    memset(c, 0, sizeof *c);
    char *buf = NULL;
    size_t len = 0;
    CH_TRY(ch_fs_read_file(path, &buf, &len));
    int rc = ch_config_parse(buf, path, c);
    free(buf);
    return rc;
}

void ch_config_free(ch_config *c) {
    if (!c) return;
    free(c->json);
    c->json = NULL;
}
