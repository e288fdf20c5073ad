/* config.h - a Hugging Face config.json, read and checked against what the engine implements.
 *
 * Only LlamaForCausalLM (Llama 3 / 3.1 / 3.2, and SentencePiece Llamas such as Llama-2 / TinyLlama),
 * Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, Gemma2ForCausalLM and Gemma3ForCausalLM
 * (text) are accepted. Every key of
 * the file is either interpreted, or known to be irrelevant to a forward pass without an LM head
 * (token ids, dropout, init ranges, ...); any other key, and any interpreted key with a value the
 * engine does not implement, is refused with CH_EUNSUPPORTED naming the file and the key. */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include "ops_math.h"

typedef enum {
    CH_ARCH_LLAMA = 0,
    CH_ARCH_QWEN2 = 1,
    CH_ARCH_QWEN3 = 2,
    CH_ARCH_MISTRAL = 3,
    CH_ARCH_GEMMA2 = 4,
    CH_ARCH_GEMMA3 = 5,
    CH_ARCH_COUNT
} ch_arch;

/* The supported architectures: config.json's `architectures` entry as transformers writes it,
 * and the families it covers; the one list the parser, its refusal and `extract --help` use. */
typedef struct {
    const char *name, *families;
} ch_arch_info;
extern const ch_arch_info ch_archs[CH_ARCH_COUNT];

/* The MLP's gate activation: SwiGLU (silu) or GeGLU (gelu_pytorch_tanh, Gemma). */
typedef enum { CH_ACT_SILU = 0, CH_ACT_GELU_TANH = 1 } ch_act;

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
    int qk_norm;            /* Qwen3, Gemma3: RMSNorm over each head's q and k (q_norm / k_norm [head_dim]) before RoPE */
    ch_act act;             /* hidden_act (silu) or, for Gemma, hidden_activation (gelu_pytorch_tanh) */
    int gemma;              /* Gemma 2 / 3: RMSNorm weights act as (1 + w), the embedding is scaled by
                             * sqrt(hidden), and the attention and MLP outputs pass their own RMSNorm
                             * (post_attention_layernorm, post_feedforward_layernorm) before the
                             * residual; pre_feedforward_layernorm is the MLP's input norm */
    float attn_scale;       /* scores = attn_scale * q.k: 1/sqrt(head_dim), Gemma 1/sqrt(query_pre_attn_scalar) */
    float attn_softcap;     /* Gemma 2 attn_logit_softcapping (0: none) */
    int sliding_window;     /* keys a sliding layer's query sees (itself included); 0: none */
    unsigned char *sliding; /* [n_layers]: 1 where the layer attends through the sliding window */
    int local_rope;         /* Gemma 3: sliding layers rotate with rope_local (rope_local_base_freq) */
    ch_rope_params rope_local;
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
