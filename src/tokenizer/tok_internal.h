/* tok_internal.h - the parts of the tokenizer shared by its files (not a public contract).
 *
 * Layout of the work: tok_load.c reads tokenizer.json into a ch_tokenizer and applies
 * tokenizer_config.json as transformers does; tok_bpe.c holds the vocabulary / merge tables and
 * the merge loop; tok_text.c the text passes (UTF-8 repair, added-token matching, NFC, regex
 * splitting); tokenizer.c runs the pipeline; tok_chat.c the chat templates and their choice by
 * the model's config.json.
 *
 * The BPE works on raw bytes, not on the GPT-2 "byte-level" unicode alphabet: the loader maps
 * every vocabulary entry back to the bytes it stands for, so the ByteLevel pre-tokenizer step is
 * the identity and the hot loop never re-encodes text. */
#ifndef CH_TOK_INTERNAL_H
#define CH_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- BPE model (tok_bpe.c) ------------------------------------------------------------------ */
/* One slot of the merge table: key, rank and result together, so a lookup is one cache line. */
typedef struct tok_merge {
    uint64_t key; /* UINT64_MAX = empty */
    uint32_t rank;
    int32_t result;
} tok_merge;

typedef struct {
    char *bytes;          /* all token strings (raw bytes), back to back */
    uint32_t *off, *len;  /* by id; len == UINT32_MAX for an id with no byte form */
    int32_t n_ids;        /* max model id + 1 */
    int32_t *vtab;        /* open-addressing table of ids keyed by bytes; -1 = empty */
    uint32_t vmask;
    struct tok_merge *merges; /* open addressing, keyed by (left id << 32 | right id) */
    uint32_t mmask;
    int32_t byte_id[256]; /* the id of each single byte */
    int ignore_merges;
    /* SentencePiece-style BPE (no ByteLevel pre-tokenizer): the vocabulary holds plain UTF-8
     * strings, a word starts as one symbol per character; a character not in the vocabulary
     * becomes its <0xNN> byte tokens (byte_fallback) or the unk token (consecutive ones fused
     * into one with fuse_unk), else it is dropped, exactly as HF's BPE::merge_word. */
    int sp;
    int byte_fallback, fuse_unk;
    int32_t unk_id;       /* -1: no unk token */
    int32_t fb_id[256];   /* id of "<0xNN>", -1 when absent */
    int32_t ascii_id[128]; /* id of each one-byte character, -1 when absent (SP mode) */
} tok_bpe;

int tok_bpe_init_vocab(tok_bpe *b, int32_t n_ids, size_t total_bytes);
/* Find the id of the byte string s[0..n), or -1. */
int32_t tok_bpe_lookup(const tok_bpe *b, const char *s, size_t n);
/* Index id, whose bytes are set in off/len; returns the id already holding the same bytes, or -1. */
int32_t tok_bpe_insert(tok_bpe *b, int32_t id);
int tok_bpe_add_merge(tok_bpe *b, int32_t left, int32_t right, uint32_t rank, int32_t result);
void tok_bpe_free(tok_bpe *b);

/* Scratch owned by one encode call (the tokenizer itself stays read-only and shareable). */
typedef struct {
    int32_t *ids;
    size_t n, cap;
    void *sym, *heap; /* merge loop arrays, grown on demand */
    size_t sym_cap, heap_cap;
    pcre2_match_data *md;
    char *nbuf[2]; /* normalizer outputs (each step reads one, writes the other) */
    size_t nbuf_cap[2];
    char *mbuf;    /* Metaspace output */
    size_t mbuf_cap;
    int32_t *init; /* SP mode: a word's initial symbols */
    size_t init_cap;
} tok_ctx;

int tok_push_id(tok_ctx *c, int32_t id);
/* Append the ids of one pre-token (raw bytes) to c->ids. */
int tok_bpe_word(const tok_bpe *b, tok_ctx *c, const char *s, size_t n);

/* ---- text passes (tok_text.c) --------------------------------------------------------------- */
typedef struct {
    char *content;
    size_t len;
    char *match; /* what is matched: content, normalized when the token is (HF does the same) */
    size_t mlen;
    int32_t id;
    unsigned char lstrip, rstrip, normalized, special;
} tok_added;

/* A set of added tokens matched leftmost-longest (HF uses Aho-Corasick LeftmostLongest). */
typedef struct {
    const tok_added **tok; /* sorted by first byte, then longest first */
    int n;
    int first[257];        /* tok[first[c] .. first[c+1]) start with byte c */
} tok_match_set;

int tok_match_set_build(tok_match_set *m, const tok_added *all, int n, int normalized);
void tok_match_set_free(tok_match_set *m);
/* Find the next added token at or after *pos in s[0..n): returns 1 and sets the token, the match
 * [*ms, *me) (after lstrip/rstrip, never starting before floor) and *pos to where the search goes on. */
int tok_match_next(const tok_match_set *m, const char *s, size_t n, size_t *pos, size_t floor,
                   const tok_added **tok, size_t *ms, size_t *me);

/* Replace ill-formed UTF-8 by U+FFFD, one per maximal ill-formed subpart (the Unicode standard's
 * practice, which Python's decode(errors="replace") follows). Sets *out = NULL when s is valid,
 * else *out and *outlen to a malloc'd repaired copy. */
int tok_utf8_repair(const char *s, size_t n, char **out, size_t *outlen);

/* One normalizer of tokenizer.json's (Sequence flattened), applied in order. */
typedef enum { TOK_NORM_NFC = 1, TOK_NORM_PREPEND, TOK_NORM_REPLACE } tok_norm_kind;
typedef struct {
    tok_norm_kind kind;
    char *pat;         /* Prepend: the text; Replace: the String pattern (NULL for a Regex one) */
    size_t plen;
    pcre2_code *re;    /* Replace with a Regex pattern */
    char *content;     /* Replace: what each match becomes */
    size_t clen;
} tok_norm_op;

#define TOK_MAX_NORM 8
struct ch_tokenizer;
/* Apply the tokenizer's normalizers to s; *out points to s itself or to a buffer of c. */
int tok_normalize(const struct ch_tokenizer *t, tok_ctx *c, const char *s, size_t n, const char **out, size_t *outlen);
/* Grow a buffer to at least need bytes. */
int tok_buf_reserve(char **p, size_t *cap, size_t need);

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } tok_split_behavior;

typedef struct {
    pcre2_code *re;
    tok_split_behavior behavior;
    int invert;
    int prefix_space; /* ByteLevel add_prefix_space: prepend ' ' to a piece not starting with one */
    int bytelevel;    /* a ByteLevel step (re: its GPT-2 regex when use_regex, else NULL) */
    int literal;      /* a Split {"String": ...} pattern */
    int metaspace;    /* a Metaspace step: ' ' -> rep, prepend rep by scheme, split before rep when re */
    int prepend;      /* Metaspace prepend_scheme: 0 never, 1 first, 2 always */
    char rep[8];      /* Metaspace replacement (UTF-8) */
    size_t rep_len;
    char *pattern;    /* the Split pattern as the file gives it (NULL for ByteLevel) */
} tok_step;

#define TOK_MAX_STEPS 8

/* Compile a Split pattern (tok_regex.c): Oniguruma syntax translated where PCRE2 reads it
 * differently; literal: a {"String": ...} pattern. On failure err says why. */
int tok_regex_compile(const char *pattern, size_t len, int literal, pcre2_code **re, char *err, size_t errlen);

/* ---- the tokenizer ---------------------------------------------------------------------------- */
struct ch_tokenizer {
    char path[1024];
    char sha256[65];
    tok_bpe bpe;
    tok_added *added;
    int n_added;
    tok_match_set raw_set, norm_set; /* added tokens matched before / after normalization */
    tok_norm_op norm[TOK_MAX_NORM];  /* the normalizers, in order */
    int n_norm;
    int file_bytelevel;              /* tokenizer.json mentions "ByteLevel" (transformers' own test) */
    tok_step steps[TOK_MAX_STEPS];
    int n_steps;
    uint32_t max_match_data;         /* ovector pairs the regexes need */
    int32_t *prefix_ids, *suffix_ids; /* post-processor template around the sequence */
    int n_prefix, n_suffix;
    int vocab_size;                  /* model vocabulary plus added tokens (max id + 1) */
    ch_chat_style chat_style;        /* set by the model directory's config.json; NONE: by added tokens */
    int hf_qwen2;                    /* transformers loads it as a Qwen2Tokenizer: 1 by config.json's
                                        model_type, 2 by tokenizer_class; 0 as TokenizersBackend */
    int chat_checked;                /* config.json chose chat_style: its tokens are checked when used */
    char model_config_path[1100];    /* that config.json, for the message */
    char model_config_what[200];     /* "architecture 'LlamaForCausalLM'" */
};

int tok_load_json(ch_tokenizer *t, const char *json, size_t len);
/* Parse a JSON document; a malformed one fails naming path, line and column (cJSON forward-
 * declared by the includer). */
struct cJSON;
int tok_parse_json(const char *path, const char *json, size_t len, struct cJSON **root);

/* The model directory's files next to tokenizer.json, read the way transformers'
 * AutoTokenizer.from_pretrained reads them (tok_load.c, tok_chat.c). path names the file in
 * messages. tok_load_hf_config applies tokenizer_config.json (json NULL: the file is absent) and
 * sets *consults_special_map when transformers would also read special_tokens_map.json, which
 * tok_check_special_map then checks. tok_model_config reads config.json: the chat template. */
int tok_load_hf_config(ch_tokenizer *t, const char *path, const char *json, size_t len, int *consults_special_map);
int tok_check_special_map(ch_tokenizer *t, const char *path, const char *json, size_t len);
int tok_model_config(ch_tokenizer *t, const char *path, const char *json, size_t len);
int tok_encode_ctx(const ch_tokenizer *t, tok_ctx *c, const char *text, size_t len, int add_special);
void tok_ctx_free(tok_ctx *c);

#endif
