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

const ch_arch_info ch_archs[CH_ARCH_COUNT] = {
    [CH_ARCH_LLAMA] = {"LlamaForCausalLM", "Llama 3 / 3.1 / 3.2, and SentencePiece Llamas (Llama-2, TinyLlama)"},
    [CH_ARCH_QWEN2] = {"Qwen2ForCausalLM", "Qwen2, Qwen2.5"},
    [CH_ARCH_QWEN3] = {"Qwen3ForCausalLM", "Qwen3 (dense)"},
    [CH_ARCH_MISTRAL] = {"MistralForCausalLM", "Mistral 7B v0.1 - v0.3, Mistral-Nemo (sliding window)"},
    [CH_ARCH_GEMMA2] = {"Gemma2ForCausalLM", "Gemma 2"},
    [CH_ARCH_GEMMA3] = {"Gemma3ForCausalLM", "Gemma 3 text models"},
};

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

#define FAM(a) (1u << (a))
#define GEMMA (FAM(CH_ARCH_GEMMA2) | FAM(CH_ARCH_GEMMA3))
/* Keys of one family only: read below, or irrelevant to a forward pass without an LM head. On
 * another architecture they are refused like any unknown key. */
static const struct {
    const char *key;
    unsigned archs;
} family_keys[] = {
    {"query_pre_attn_scalar", GEMMA},            /* read: the attention scale */
    {"attn_logit_softcapping", GEMMA},           /* read: Gemma 2's tanh cap on the scores */
    {"final_logit_softcapping", GEMMA},          /* caps the LM head's logits, never computed */
    {"hidden_activation", GEMMA},                /* read: the MLP's activation */
    {"cache_implementation", GEMMA},             /* generation's KV cache layout */
    {"use_bidirectional_attention", GEMMA},      /* read: only false */
    {"rope_local_base_freq", FAM(CH_ARCH_GEMMA3)},   /* read: the sliding layers' rope base */
    {"sliding_window_pattern", FAM(CH_ARCH_GEMMA3)}, /* read when layer_types is absent */
    /* transformers 5 writes it beside the layer_types it made from it, and never reads it back */
    {"_sliding_window_pattern", FAM(CH_ARCH_GEMMA3)},
};

static int is_known_key(const char *k, ch_arch arch) {
    for (size_t i = 0; i < sizeof ignorable / sizeof ignorable[0]; i++)
        if (!strcmp(k, ignorable[i])) return 1;
    for (size_t i = 0; i < sizeof family_keys / sizeof family_keys[0]; i++)
        if (!strcmp(k, family_keys[i].key)) return (family_keys[i].archs & FAM(arch)) != 0;
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

/* One rope description - rope_scaling, rope_parameters, or one of Gemma 3's per-layer-type
 * entries - whose base theta was found already: rope_type default, llama3 or linear (the only
 * ones implemented). rs NULL or null: the default rope. */
static int rope_from(const cJSON *rs, const char *where, const char *key, double theta, int head_dim,
                     ch_rope_params *r) {
    memset(r, 0, sizeof *r);
    r->theta = (float)theta;
    r->head_dim = head_dim;
    if (!(theta > 1.0)) CH_FAIL(CH_EUNSUPPORTED, "%s: rope_theta %g is not supported", where, theta);
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) CH_FAIL(CH_EFORMAT, "%s: '%s' must be an object or null", where, key);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type || !cJSON_IsString(type))
        CH_FAIL(CH_EFORMAT, "%s: '%s' has no string 'rope_type'", where, key);
    if (!strcmp(type->valuestring, "default")) return 0;
    const int linear = !strcmp(type->valuestring, "linear");
    if (strcmp(type->valuestring, "llama3") && !linear)
        CH_FAIL(CH_EUNSUPPORTED,
                "%s: %s.rope_type '%s' is not supported (supported: default, linear, llama3)", where, key,
                type->valuestring);
    double f, lo = 0, hi = 0, orig = 0;
    CH_TRY(get_num(rs, where, "factor", 1, 0, &f));
    if (linear) {
        if (!(f > 0)) CH_FAIL(CH_EFORMAT, "%s: %s.factor must be > 0", where, key);
    } else {
        CH_TRY(get_num(rs, where, "low_freq_factor", 1, 0, &lo));
        CH_TRY(get_num(rs, where, "high_freq_factor", 1, 0, &hi));
        CH_TRY(get_num(rs, where, "original_max_position_embeddings", 1, 0, &orig));
        if (!(f > 0) || !(lo > 0) || !(hi > lo) || !(orig > 0))
            CH_FAIL(CH_EFORMAT,
                    "%s: %s llama3 parameters must satisfy factor > 0, 0 < low_freq_factor < "
                    "high_freq_factor, original_max_position_embeddings > 0",
                    where, key);
    }
    for (const cJSON *it = rs->child; it; it = it->next) {
        static const char *ok[] = {"rope_type", "type", "factor", "rope_theta", "low_freq_factor", "high_freq_factor",
                                   "original_max_position_embeddings"};
        int known = 0;
        for (size_t i = 0; i < (linear ? 4 : sizeof ok / sizeof ok[0]); i++) known |= !strcmp(it->string, ok[i]);
        if (!known) CH_FAIL(CH_EUNSUPPORTED, "%s: %s.%s is not supported", where, key, it->string);
    }
    if (linear) {
        r->linear = (float)f;
        return 0;
    }
    r->llama3 = 1;
    r->factor = (float)f;
    r->low_freq_factor = (float)lo;
    r->high_freq_factor = (float)hi;
    r->orig_max_pos = (float)orig;
    return 0;
}

/* rope_scaling (classic form) or rope_parameters (newer transformers): the same fields, the
 * latter also carrying rope_theta. */
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
    return rope_from(rs, where, key, theta, c->head_dim, &c->rope);
}

/* Gemma 3: full-attention layers rotate with rope_theta (default 1e6) and rope_scaling, sliding
 * ones with rope_local_base_freq (default 1e4) and no scaling - as Gemma3TextConfig reads the
 * published form; transformers 5 writes rope_parameters {full_attention: {...},
 * sliding_attention: {...}} instead, each with its rope_theta. */
static int parse_rope_gemma3(const cJSON *root, const char *where, ch_config *c) {
    double global = 1e6, local = 1e4;
    CH_TRY(get_num(root, where, "rope_theta", 0, 1e6, &global));
    CH_TRY(get_num(root, where, "rope_local_base_freq", 0, 1e4, &local));
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), *slide = NULL;
    const char *full_key = "rope_scaling";
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) CH_FAIL(CH_EFORMAT, "%s: 'rope_parameters' must be an object", where);
        if (full && !cJSON_IsNull(full))
            CH_FAIL(CH_EUNSUPPORTED, "%s: both rope_scaling and rope_parameters: give one", where);
        for (const cJSON *it = rp->child; it; it = it->next) {
            const int is_full = !strcmp(it->string, "full_attention");
            if (!is_full && strcmp(it->string, "sliding_attention"))
                CH_FAIL(CH_EUNSUPPORTED, "%s: rope_parameters.%s is not supported (Gemma 3 takes full_attention and "
                        "sliding_attention)", where, it->string);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "rope_theta");
            if (t && cJSON_IsNumber(t)) *(is_full ? &global : &local) = t->valuedouble;
            *(is_full ? &full : &slide) = it;
        }
        full_key = "rope_parameters.full_attention";
    }
    CH_TRY(rope_from(full, where, full_key, global, c->head_dim, &c->rope));
    CH_TRY(rope_from(slide, where, "rope_parameters.sliding_attention", local, c->head_dim, &c->rope_local));
    c->local_rope = 1;
    return 0;
}

/* The MLP's activation: hidden_act, silu only; Gemma's classes read hidden_activation instead
 * (default gelu_pytorch_tanh) and never hidden_act, which its published configs also carry. */
static int parse_act(const cJSON *root, const char *where, ch_config *c) {
    const int gemma = c->arch == CH_ARCH_GEMMA2 || c->arch == CH_ARCH_GEMMA3;
    const char *key = gemma ? "hidden_activation" : "hidden_act", *want = gemma ? "gelu_pytorch_tanh" : "silu";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, want)))
        CH_FAIL(CH_EUNSUPPORTED, "%s: %s '%s' is not supported (only %s)", where, key,
                cJSON_IsString(v) ? v->valuestring : "?", want);
    c->act = gemma ? CH_ACT_GELU_TANH : CH_ACT_SILU;
    return 0;
}

/* sliding_window: absent is transformers' default (4096 for Mistral and Gemma), null is none. */
static int get_window(const cJSON *root, const char *where, int *w) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (v && cJSON_IsNull(v)) {
        *w = 0;
        return 0;
    }
    CH_TRY(get_int(root, where, "sliding_window", 0, 4096, w));
    if (*w < 1) CH_FAIL(CH_EUNSUPPORTED, "%s: sliding_window %d is not supported (>= 1 or null)", where, *w);
    return 0;
}

/* Gemma: which layers slide - layer_types, else every `pattern`-th layer is global (Gemma 2: 2,
 * Gemma 3: sliding_window_pattern, default 6) - and the window they slide with. */
static int gemma_layers(const cJSON *root, const char *where, const cJSON *lt, ch_config *c) {
    int pattern = 2, any = 0;
    if (c->arch == CH_ARCH_GEMMA3) CH_TRY(get_int(root, where, "sliding_window_pattern", 0, 6, &pattern));
    if (pattern < 1) CH_FAIL(CH_EFORMAT, "%s: sliding_window_pattern must be >= 1", where);
    if (lt && cJSON_GetArraySize(lt) != c->n_layers)
        CH_FAIL(CH_EFORMAT, "%s: layer_types has %d entries for %d layers", where, cJSON_GetArraySize(lt), c->n_layers);
    for (int i = 0; i < c->n_layers; i++) {
        if (lt) {
            const cJSON *it = cJSON_GetArrayItem(lt, i);
            const int slide = cJSON_IsString(it) && !strcmp(it->valuestring, "sliding_attention");
            if (!slide && !(cJSON_IsString(it) && !strcmp(it->valuestring, "full_attention")))
                CH_FAIL(CH_EUNSUPPORTED,
                        "%s: layer_types[%d] '%s' is not supported (full_attention, sliding_attention)", where, i,
                        cJSON_IsString(it) ? it->valuestring : "?");
            c->sliding[i] = (unsigned char)slide;
        } else {
            c->sliding[i] = (i + 1) % pattern != 0;
        }
        any |= c->sliding[i];
    }
    CH_TRY(get_window(root, where, &c->sliding_window));
    if (any && !c->sliding_window)
        CH_FAIL(CH_EFORMAT, "%s: sliding_window is null but layers slide (transformers refuses it too)", where);
    return 0;
}

/* Gemma's attention: scale 1/sqrt(query_pre_attn_scalar) (default 256), Gemma 2's
 * attn_logit_softcapping (default 50; null: none). Gemma 3's transformers attention never
 * applies a cap: one given there is refused rather than guessed. Bidirectional attention (an
 * encoder use) is not implemented. */
static int gemma_attention(const cJSON *root, const char *where, ch_config *c) {
    double qs, cap = c->arch == CH_ARCH_GEMMA2 ? 50.0 : 0.0;
    CH_TRY(get_num(root, where, "query_pre_attn_scalar", 0, 256.0, &qs));
    if (!(qs > 0)) CH_FAIL(CH_EFORMAT, "%s: query_pre_attn_scalar must be > 0", where);
    c->attn_scale = (float)pow(qs, -0.5);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "attn_logit_softcapping");
    if (v && cJSON_IsNull(v)) cap = 0.0;
    else if (v && c->arch == CH_ARCH_GEMMA3)
        CH_FAIL(CH_EUNSUPPORTED, "%s: attn_logit_softcapping on Gemma 3 is not supported (transformers' "
                "Gemma3 attention does not apply it)", where);
    else CH_TRY(get_num(root, where, "attn_logit_softcapping", 0, cap, &cap));
    if (v && !cJSON_IsNull(v) && !(cap > 0))
        CH_FAIL(CH_EFORMAT, "%s: attn_logit_softcapping must be > 0 or null", where);
    c->attn_softcap = (float)cap;
    int bidir = 0;
    CH_TRY(get_bool(root, where, "use_bidirectional_attention", 0, &bidir));
    if (bidir) CH_FAIL(CH_EUNSUPPORTED, "%s: use_bidirectional_attention true is not supported", where);
    return 0;
}

/* Which layers attend through a sliding window, how wide, and the scores' scale and cap. */
static int parse_attention(const cJSON *root, const char *where, ch_config *c) {
    c->attn_scale = (float)(1.0 / sqrt((double)c->head_dim));
    CH_TRY(CH_ALLOC(c->sliding, c->n_layers, "layer types"));
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (lt && cJSON_IsNull(lt)) lt = NULL;
    if (lt && !cJSON_IsArray(lt)) CH_FAIL(CH_EFORMAT, "%s: layer_types must be a list", where);
    switch (c->arch) {
    case CH_ARCH_MISTRAL: /* transformers slides every layer's window and ignores layer_types */
        if (lt)
            CH_FAIL(CH_EUNSUPPORTED, "%s: layer_types on MistralForCausalLM is not supported (transformers ignores "
                    "it there; alternating layers are Ministral's)", where);
        CH_TRY(get_window(root, where, &c->sliding_window));
        memset(c->sliding, c->sliding_window > 0, (size_t)c->n_layers);
        return 0;
    case CH_ARCH_GEMMA2:
    case CH_ARCH_GEMMA3:
        CH_TRY(gemma_attention(root, where, c));
        return gemma_layers(root, where, lt, c);
    default: /* Llama, Qwen: sliding_window is read only with use_sliding_window, refused above */
        for (int i = 0; lt && i < cJSON_GetArraySize(lt); i++) {
            const cJSON *it = cJSON_GetArrayItem(lt, i);
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "full_attention"))
                CH_FAIL(CH_EUNSUPPORTED, "%s: layer_types[%d] '%s' is not supported (only full_attention)", where, i,
                        cJSON_IsString(it) ? it->valuestring : "?");
        }
        return 0;
    }
}

static int check_values(const cJSON *root, const char *where, ch_config *c) {
    const cJSON *v;
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
    int a = 0;
    while (a < CH_ARCH_COUNT && strcmp(a0->valuestring, ch_archs[a].name)) a++;
    if (a == CH_ARCH_COUNT) {
        char list[512] = "";
        for (int i = 0; i < CH_ARCH_COUNT; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", ch_archs[i].name);
        CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", where,
                     a0->valuestring, list);
    }
    c->arch = (ch_arch)a;
    c->gemma = c->arch == CH_ARCH_GEMMA2 || c->arch == CH_ARCH_GEMMA3;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", a0->valuestring);

    for (const cJSON *it = root->child; it; it = it->next)
        if (!is_known_key(it->string, c->arch))
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED,
                         "%s: config key '%s' is not supported by the engine (it may change the "
                         "forward pass)",
                         where, it->string);

    CH_TRY_GOTO(get_int(root, where, "hidden_size", 1, 0, &c->hidden), done);
    CH_TRY_GOTO(get_int(root, where, "intermediate_size", 1, 0, &c->intermediate), done);
    CH_TRY_GOTO(get_int(root, where, "num_hidden_layers", 1, 0, &c->n_layers), done);
    CH_TRY_GOTO(get_int(root, where, "num_attention_heads", 1, 0, &c->n_heads), done);
    /* Gemma's classes default these to Gemma-7B's values, not to the other keys': required */
    CH_TRY_GOTO(get_int(root, where, "num_key_value_heads", c->gemma, c->n_heads, &c->n_kv_heads), done);
    CH_TRY_GOTO(get_int(root, where, "vocab_size", 1, 0, &c->vocab), done);
    CH_TRY_GOTO(get_int(root, where, "max_position_embeddings", 0, 0, &c->max_pos), done);
    if (c->n_heads <= 0) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: num_attention_heads must be > 0", where);
    CH_TRY_GOTO(get_int(root, where, "head_dim", c->gemma, c->hidden / c->n_heads, &c->head_dim), done);
    double eps;
    CH_TRY_GOTO(get_num(root, where, "rms_norm_eps", 0, 1e-6, &eps), done);
    c->rms_eps = (float)eps;
    int attn_bias = 0;
    CH_TRY_GOTO(get_bool(root, where, "attention_bias", 0, &attn_bias), done);
    if (c->arch == CH_ARCH_QWEN2) {
        if (attn_bias) /* Qwen2 has q/k/v biases by construction and never an o_proj bias */
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: attention_bias is not a Qwen2 option", where);
        c->qkv_bias = 1;
    } else if (c->arch == CH_ARCH_MISTRAL) {
        if (attn_bias) /* MistralAttention's projections never have biases */
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: attention_bias is not a Mistral option", where);
    } else { /* Llama, Qwen3, Gemma: attention_bias puts a bias on q, k, v and o alike */
        c->qkv_bias = c->o_bias = attn_bias;
    }
    c->qk_norm = c->arch == CH_ARCH_QWEN3 || c->arch == CH_ARCH_GEMMA3;
    CH_TRY_GOTO(get_bool(root, where, "tie_word_embeddings", 0, &c->tie_embeddings), done);
    CH_TRY_GOTO(check_values(root, where, c), done);
    CH_TRY_GOTO(parse_act(root, where, c), done);
    CH_TRY_GOTO(parse_attention(root, where, c), done);
    if (c->arch == CH_ARCH_GEMMA3) CH_TRY_GOTO(parse_rope_gemma3(root, where, c), done);
    else CH_TRY_GOTO(parse_rope(root, where, c), done);
    c->json = strdup(text);
    if (!c->json) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory copying %s", where);
done:
    cJSON_Delete(root);
    if (rc) ch_config_free(c);
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
    free(c->sliding);
    c->json = NULL;
    c->sliding = NULL;
}
