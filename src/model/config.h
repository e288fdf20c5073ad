/* config.h - a Hugging Face config.json, read and checked against what the engine implements.
 *
 * Only LlamaForCausalLM (Llama 3 / 3.1 / 3.2, and SentencePiece Llamas such as Llama-2 / TinyLlama),
 * Qwen2ForCausalLM and Qwen3ForCausalLM are accepted. Every key of
 * the file is either interpreted, or known to be irrelevant to a forward pass without an LM head
 * (token ids, dropout, init ranges, ...); any other key, and any interpreted key with a value the
 * engine does not implement, is refused with CH_EUNSUPPORTED naming the file and the key. */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include "ops_math.h"

typedef enum { CH_ARCH_LLAMA = 0, CH_ARCH_QWEN2 = 1, CH_ARCH_QWEN3 = 2 } ch_arch;

typedef struct {
    ch_arch arch;
    char arch_name[64];     /* "LlamaForCausalLM" */
    int hidden;             /* hidden_size */
    int intermediate;       /* intermediate_size */
    int n_layers;           /* num_hidden_layers */
    int n_heads;            /* num_attention_heads (query heads) */
    int n_kv_heads;         /* num_key_value_heads */
    int head_dim;           /* head_dim, default hidden / n_heads */
    int vocab;              /* vocab_size */
    float rms_eps;          /* rms_norm_eps */
    int qkv_bias;           /* Qwen2 always; Llama / Qwen3 when attention_bias */
    int o_bias;             /* Llama / Qwen3 attention_bias */
    int qk_norm;            /* Qwen3: RMSNorm over each head's q and k (q_norm / k_norm [head_dim]) before RoPE */
    int tie_embeddings;     /* tie_word_embeddings (irrelevant without LM head, recorded) */
    int max_pos;            /* max_position_embeddings */
    ch_rope_params rope;
    char *json;             /* the file's text, verbatim (provenance for archives) */
} ch_config;

/* path: a config.json file. */
int ch_config_load(const char *path, ch_config *c);
/* Parse text; `where` names the source in messages. */
int ch_config_parse(const char *text, const char *where, ch_config *c);
void ch_config_free(ch_config *c);

#endif
