/* tokenizer.h - Hugging Face tokenizer.json BPE: byte-level (Llama 3.x, Qwen2.x) and SentencePiece-style
 * (Llama-2, TinyLlama, Mistral, Gemma: Metaspace / Prepend+Replace, byte_fallback).
 *
 * The contract is exact token ids: ch_tok_encode returns what Hugging Face `tokenizers`
 * Tokenizer.encode(text, add_special_tokens=...) returns for the same file. */
#ifndef CH_TOKENIZER_H
#define CH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ch_tokenizer ch_tokenizer;

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} ch_message;

typedef enum { CH_CHAT_NONE = 0, CH_CHAT_LLAMA3, CH_CHAT_CHATML } ch_chat_style;

/* Load a tokenizer.json file alone: the ids of HF `tokenizers` Tokenizer.from_file. Unknown
 * component types are refused by name (CH_EUNSUPPORTED). */
int ch_tok_load(const char *tokenizer_json, ch_tokenizer **out);
/* Load a model (or tokenizer) directory: the ids of transformers' AutoTokenizer.from_pretrained(DIR).
 * Reads DIR/tokenizer.json, then, where present: DIR/config.json (architectures / model_type choose
 * the chat template, ch_tok_encode_chat gives CH_EMISMATCH when the tokenizer lacks its tokens; model_type can also choose
 * transformers' tokenizer class), DIR/tokenizer_config.json (the keys that change ids are applied
 * as transformers applies them; values the engine cannot reproduce are refused by key name,
 * CH_EUNSUPPORTED), and DIR/special_tokens_map.json when transformers reads it (see
 * docs/tokenizer.md). The files read are folded into ch_tok_hash. */
int ch_tok_open_dir(const char *model_dir, ch_tokenizer **out);
void ch_tok_free(ch_tokenizer *t);

/* Encode len bytes of text (need not be NUL-terminated, may be invalid UTF-8: byte-level
 * treatment as HF does). add_special: apply the post-processor (BOS for Llama 3). *ids is
 * malloc'd; the caller frees it. */
int ch_tok_encode(const ch_tokenizer *t, const char *text, size_t len, int add_special,
                  int32_t **ids, size_t *n);

/* Invalid UTF-8 in text: each maximal ill-formed subpart is read as U+FFFD, as Python's
 * bytes.decode("utf-8", errors="replace") does, so the ids equal HF's for that decoded str. */

/* Chat formatting with the family's built-in template (Llama 3 header tokens, or ChatML); what
 * exactly is rendered is documented in tok_chat.c (no default system message is inserted). */
int ch_tok_encode_chat(const ch_tokenizer *t, ch_chat_style style, const ch_message *msgs,
                       int nmsg, int add_generation_prompt, int32_t **ids, size_t *n);

/* Provenance for archives (SHA-256, hex): of the tokenizer.json bytes, or, when ch_tok_open_dir
 * also read tokenizer_config.json and/or special_tokens_map.json, of the listing `sha256sum
 * tokenizer.json <those files>` prints in DIR (config.json is in the archive's model config). */
const char *ch_tok_hash(const ch_tokenizer *t);
int ch_tok_vocab_size(const ch_tokenizer *t);
/* Id of an added (special) token given its content, e.g. "<|eot_id|>"; -1 when there is none. */
int32_t ch_tok_token_id(const ch_tokenizer *t, const char *token);
/* The chat style: the one the model directory's config.json chose (ch_tok_open_dir), else the one
 * whose special tokens this tokenizer has (CH_CHAT_NONE when neither). */
ch_chat_style ch_tok_chat_style(const ch_tokenizer *t);

#endif
