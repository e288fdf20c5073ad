/* tok_config.c - tokenizer_config.json (and special_tokens_map.json) checked against a loaded
 * tokenizer.json, the way transformers reads them (see the comment below); tok_load.c reads
 * tokenizer.json itself. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

/* ---- tokenizer_config.json, read as transformers reads it ------------------------------------ */
/* What AutoTokenizer.from_pretrained(DIR) makes of the file for the two families (transformers
 * 5.24 / tokenizers 0.23, checked by tests/golden/make_tokenizer_golden.py; docs/tokenizer.md):
 * - The class. Qwen2Tokenizer when config.json says model_type "qwen2" (whatever tokenizer_class
 *   says) or tokenizer_class is Qwen2Tokenizer(Fast); otherwise TokenizersBackend (what
 *   PreTrainedTokenizerFast, and LlamaTokenizer(Fast) with a byte-level file, load as), which runs
 *   tokenizer.json as it is. Qwen2Tokenizer keeps the vocabulary, merges and post-processor but
 *   builds its own NFC normalizer, Qwen2 Split regex and ByteLevel(add_prefix_space = this file's
 *   add_prefix_space, default false), a BPE without ignore_merges, and numbers the added tokens
 *   (those of added_tokens_decoder when present) in order after the vocabulary.
 * - add_bos_token / add_eos_token are dropped when tokenizer.json exists: BOS/EOS are what the
 *   file's post-processor says.
 * - A named token (bos_token, eos_token, ..., any other *_token, additional_special_tokens,
 *   extra_special_tokens) that is not an added token is added as a new one: new ids.
 *   Qwen2Tokenizer re-adds its special tokens with lstrip/rstrip/normalized false.
 * - added_tokens_decoder's flags replace tokenizer.json's; an entry tokenizer.json lacks is added.
 * - split_special_tokens: true stops special tokens from being matched.
 * What the engine cannot reproduce is refused by key name. The other keys of the real files only
 * act on decoding, chat rendering, or explicit truncation/padding. */
typedef struct {
    ch_tokenizer *t;
    const char *path;
    int qwen2;
    const char *why; /* what made transformers choose Qwen2Tokenizer */
    int llama;       /* LlamaTokenizer(Fast) on a tokenizer.json without "ByteLevel" (see llama_rebuild) */
} hfcfg;

static const char *qwen2_why(int q) { return q == 1 ? "config.json model_type qwen2" : "tokenizer_class Qwen2Tokenizer"; }

static int cfg_bad(const hfcfg *C, int code, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int cfg_bad(const hfcfg *C, int code, const char *key, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ch_err_set(code, __FILE__, __LINE__, "%s: %s: %s", C->path, key, msg);
}

static const tok_added *added_by_content(const ch_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return &t->added[i];
    return NULL;
}

static const tok_added *added_by_id(const ch_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

static int cfg_bool(const hfcfg *C, const cJSON *obj, const char *name, const char *key, int dflt, int *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it || cJSON_IsNull(it)) return *v = dflt, 0;
    if (!cJSON_IsBool(it)) return cfg_bad(C, CH_EFORMAT, key, "\"%s\" must be true, false or null", name);
    *v = cJSON_IsTrue(it);
    return 0;
}

/* A token value: "text", an AddedToken object {"content": "text", ...}, or null (*s = NULL). */
static int token_value(const hfcfg *C, const char *key, const cJSON *v, const char **s) {
    *s = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) return *s = v->valuestring, 0;
    const cJSON *c = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "content") : NULL;
    if (!cJSON_IsString(c)) return cfg_bad(C, CH_EFORMAT, key, "expected a token string, an AddedToken object or null");
    *s = c->valuestring;
    return 0;
}

/* The flags of an AddedToken object must be tokenizer.json's: transformers would apply them.
 * with_special: an added_tokens_decoder entry (special defaults to false and is compared), else a
 * named token (transformers makes it special). normalized defaults to !special, as in tokenizers. */
static int same_flags(const hfcfg *C, const char *key, const cJSON *o, const tok_added *a, int with_special) {
    int l, r, n, sw, sp;
    CH_TRY(cfg_bool(C, o, "special", key, !with_special, &sp));
    CH_TRY(cfg_bool(C, o, "lstrip", key, 0, &l));
    CH_TRY(cfg_bool(C, o, "rstrip", key, 0, &r));
    CH_TRY(cfg_bool(C, o, "single_word", key, 0, &sw));
    CH_TRY(cfg_bool(C, o, "normalized", key, !sp, &n));
    const char *what = l != a->lstrip ? "lstrip" : r != a->rstrip ? "rstrip" : n != a->normalized ? "normalized"
                     : sw ? "single_word" : with_special && sp != a->special ? "special" : NULL;
    if (what)
        return cfg_bad(C, CH_EUNSUPPORTED, key,
                       "'%s' has %s different from tokenizer.json: transformers would use this file's flags, which changes "
                       "ids; make the two files agree",
                       a->content, what);
    return 0;
}

static int named_token(const hfcfg *C, const char *key, const cJSON *v) {
    const char *s;
    CH_TRY(token_value(C, key, v, &s));
    if (!s) return 0;
    const tok_added *a = added_by_content(C->t, s);
    if (!a)
        return cfg_bad(C, CH_EUNSUPPORTED, key,
                       "'%s' is not an added token of %s: transformers would add it as a new token, which changes ids", s,
                       C->t->path);
    if (cJSON_IsObject(v)) CH_TRY(same_flags(C, key, v, a, 0));
    if (C->qwen2 && (a->lstrip || a->rstrip || a->normalized))
        return cfg_bad(C, CH_EUNSUPPORTED, key,
                       "transformers' Qwen2Tokenizer (%s) re-adds special token '%s' with lstrip, rstrip and normalized false, "
                       "but tokenizer.json sets one of them: not supported",
                       C->why, s);
    return 0;
}

/* additional_special_tokens / extra_special_tokens: a list of tokens, or (extra) name -> token. */
static int token_list(const hfcfg *C, const char *key, const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return cfg_bad(C, CH_EFORMAT, key, "expected a list of tokens");
    char k[200];
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        if (cJSON_IsArray(v)) snprintf(k, sizeof k, "%s[%d]", key, i);
        else snprintf(k, sizeof k, "%s.%.120s", key, it->string);
        CH_TRY(named_token(C, k, it));
    }
    return 0;
}

static int check_added_decoder(const hfcfg *C, const cJSON *d) {
    const char *key = "added_tokens_decoder";
    if (!cJSON_IsObject(d)) return cfg_bad(C, CH_EFORMAT, key, "expected an object of id -> AddedToken");
    char k[120];
    for (const cJSON *it = d->child; it; it = it->next) {
        snprintf(k, sizeof k, "%s[\"%.40s\"]", key, it->string);
        char *end;
        long id = strtol(it->string, &end, 10);
        if (!it->string[0] || *end || id < 0 || id > INT32_MAX - 1) return cfg_bad(C, CH_EFORMAT, k, "the key must be a token id");
        if (!cJSON_IsObject(it)) return cfg_bad(C, CH_EFORMAT, k, "expected an AddedToken object");
        const char *s;
        CH_TRY(token_value(C, k, it, &s));
        const tok_added *a = added_by_id(C->t, (int32_t)id);
        if (!a)
            return cfg_bad(C, CH_EUNSUPPORTED, k,
                           "'%s' is not an added token of %s (none has id %ld): transformers would add it, which changes ids",
                           s, C->t->path, id);
        if (strcmp(a->content, s))
            return cfg_bad(C, CH_EUNSUPPORTED, k, "'%s', but the added token %ld of %s is '%s'", s, id, C->t->path, a->content);
        CH_TRY(same_flags(C, k, it, a, 1));
    }
    if (!C->qwen2) return 0; /* TokenizersBackend keeps tokenizer.json's tokens that are not listed */
    for (int i = 0; i < C->t->n_added; i++) {
        snprintf(k, sizeof k, "%d", C->t->added[i].id);
        if (!cJSON_GetObjectItemCaseSensitive(d, k))
            return cfg_bad(C, CH_EUNSUPPORTED, key,
                           "lacks the added token %d '%s' of tokenizer.json: transformers' Qwen2Tokenizer (%s) keeps only the "
                           "listed tokens and renumbers them, which changes ids",
                           C->t->added[i].id, C->t->added[i].content, C->why);
    }
    return 0;
}

static const char qwen2_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                                  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Qwen2Tokenizer's own pipeline must be tokenizer.json's, add_prefix_space aside. */
static int check_qwen2(const hfcfg *C) {
    ch_tokenizer *t = C->t;
    const tok_step *s0 = &t->steps[0], *s1 = &t->steps[1];
    const char *diff = NULL;
    if (t->n_norm != 1 || t->norm[0].kind != TOK_NORM_NFC) diff = "$.normalizer (Qwen2Tokenizer: NFC)";
    else if (t->n_steps != 2 || s0->bytelevel || !s0->pattern || s0->literal || strcmp(s0->pattern, qwen2_regex) ||
             s0->behavior != SPLIT_ISOLATED || s0->invert || !s1->bytelevel || s1->re)
        diff = "$.pre_tokenizer (Qwen2Tokenizer: Split with Qwen2's regex, Isolated, then ByteLevel without its regex)";
    if (diff)
        CH_FAIL(CH_EUNSUPPORTED,
                "%s: transformers loads it as a Qwen2Tokenizer (%s), which builds its own normalizer and pre-tokenizer, and "
                "the file's differ at %s: not supported",
                t->path, C->why, diff);
    int32_t *ids;
    CH_TRY(CH_ALLOC(ids, t->n_added + 1, "added token ids"));
    for (int i = 0; i < t->n_added; i++) ids[i] = t->added[i].id;
    qsort(ids, (size_t)t->n_added, sizeof *ids, cmp_i32);
    for (int i = 0; i < t->n_added; i++)
        if (ids[i] != t->bpe.n_ids + i) {
            int32_t got = ids[i];
            free(ids);
            CH_FAIL(CH_EUNSUPPORTED,
                    "%s: added token ids do not follow the %d vocabulary ids one by one (id %d where %d is due): "
                    "transformers' Qwen2Tokenizer (%s) numbers them that way, which changes ids: not supported",
                    t->path, t->bpe.n_ids, got, t->bpe.n_ids + i, C->why);
        }
    free(ids);
    return 0;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

static int in_list(const char *s, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i])) return 1;
    return 0;
}

/* tokenizer_config.json keys that change no encode id, each with the reason (transformers 5.25;
 * docs/tokenizer.md lists them). Keys not here and not handled in apply_hf_config are refused. */
static const struct {
    const char *key, *why;
} inert_keys[] = {
    {"chat_template", "chat rendering only; the engine's templates are built in (tok_chat.c)"},
    {"clean_up_tokenization_spaces", "decode only"},
    {"errors", "decode only (how invalid UTF-8 is shown)"},
    {"spaces_between_special_tokens", "decode only"},
    {"model_max_length", "truncation only when asked for (the engine never truncates)"},
    {"model_input_names", "names of the returned tensors"},
    {"padding_side", "padding only when asked for"},
    {"truncation_side", "truncation only when asked for"},
    {"legacy", "TokenizersBackend ignores it; LlamaTokenizer's prepend scheme reads it (llama_rebuild)"},
    {"use_default_system_prompt", "chat rendering only"},
    {"processor_class", "which processor wraps the tokenizer"},
    {"name_or_path", "provenance"},
    {"init_inputs", "positional arguments saved by old versions; none given with tokenizer.json"},
    {"is_local", "written by save_pretrained (5.x): where the files came from"},
    {"local_files_only", "written by save_pretrained (5.x): download policy"},
    {"sp_model_kwargs", "options of the slow SentencePiece model, unused with tokenizer.json"},
    {"tokenizer_file", "path hint; the directory's tokenizer.json is read"},
    {NULL, NULL}};

static int inert_key(const char *k) {
    for (int i = 0; inert_keys[i].key; i++)
        if (!strcmp(k, inert_keys[i].key)) return 1;
    return 0;
}

/* transformers' LlamaTokenizer (5.x, models/llama/tokenization_llama.py) keeps tokenizer.json's
 * vocabulary, merges, added tokens and post-processor but builds its own pipeline: no normalizer,
 * Metaspace("▁", prepend_scheme = never when add_prefix_space is false, else first, or always
 * with legacy: true; split false), BPE(byte_fallback, fuse_unk, no unk_token, no ignore_merges).
 * AutoTokenizer takes it when tokenizer_class says LlamaTokenizer(Fast) and tokenizer.json does
 * not mention "ByteLevel" (otherwise TokenizersBackend). */
static int llama_rebuild(hfcfg *C, int legacy, int aps) {
    ch_tokenizer *t = C->t;
    for (int i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (a->lstrip || a->rstrip)
            return cfg_bad(C, CH_EUNSUPPORTED, "tokenizer_class",
                           "LlamaTokenizer rebuilds the pipeline; added token '%s' with lstrip/rstrip is not supported there",
                           a->content);
        if (a->match != a->content) free(a->match);
        a->match = a->content, a->mlen = a->len; /* no normalizer any more */
    }
    tok_match_set_free(&t->raw_set);
    tok_match_set_free(&t->norm_set);
    CH_TRY(tok_match_set_build(&t->raw_set, t->added, t->n_added, 0));
    CH_TRY(tok_match_set_build(&t->norm_set, t->added, t->n_added, 1));
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pat), free(t->norm[i].content);
        if (t->norm[i].re) pcre2_code_free(t->norm[i].re);
    }
    memset(t->norm, 0, sizeof t->norm);
    t->n_norm = 0;
    for (int i = 0; i < t->n_steps; i++) {
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
        free(t->steps[i].pattern);
    }
    memset(t->steps, 0, sizeof t->steps);
    t->n_steps = 1;
    tok_step *st = &t->steps[0];
    st->metaspace = 1, st->prepend = !aps ? 0 : legacy ? 2 : 1;
    memcpy(st->rep, "\xe2\x96\x81", 3), st->rep_len = 3;
    t->bpe.byte_fallback = 1, t->bpe.fuse_unk = 1, t->bpe.unk_id = -1, t->bpe.ignore_merges = 0;
    return 0;
}

static int t_is_bytelevel(const hfcfg *C) { return C->t->file_bytelevel; }

static int apply_hf_config(hfcfg *C, const cJSON *root, int *consults_special_map) {
    static const char *const backend[] = {"PreTrainedTokenizerFast", "TokenizersBackend", "LlamaTokenizer",
                                          "LlamaTokenizerFast", NULL};
    *consults_special_map = 1;
    const cJSON *cls = root ? cJSON_GetObjectItemCaseSensitive(root, "tokenizer_class") : NULL;
    if (cls && !cJSON_IsNull(cls)) {
        if (!cJSON_IsString(cls)) return cfg_bad(C, CH_EFORMAT, "tokenizer_class", "expected a string");
        if (C->qwen2) {
            /* model_type qwen2 overrides tokenizer_class (transformers' MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS) */
        } else if (!strcmp(cls->valuestring, "Qwen2Tokenizer") || !strcmp(cls->valuestring, "Qwen2TokenizerFast")) {
            C->qwen2 = 1, C->why = qwen2_why(2);
        } else if (!t_is_bytelevel(C) && (!strcmp(cls->valuestring, "LlamaTokenizer") ||
                                           !strcmp(cls->valuestring, "LlamaTokenizerFast"))) {
            C->llama = 1;
        } else if (!in_list(cls->valuestring, backend)) {
            return cfg_bad(C, CH_EUNSUPPORTED, "tokenizer_class",
                           "'%s' is not supported (supported: PreTrainedTokenizerFast, TokenizersBackend, "
                           "LlamaTokenizer(Fast), Qwen2Tokenizer(Fast)); other transformers classes rebuild the tokenizer "
                           "their own way",
                           cls->valuestring);
        }
    }
    if (C->qwen2) CH_TRY(check_qwen2(C));
    int aps = 0, v, legacy = 0, llama_aps = 1;
    for (const cJSON *it = root ? root->child : NULL; it; it = it->next) {
        const char *k = it->string;
        if (!strcmp(k, "legacy")) CH_TRY(cfg_bool(C, root, k, k, 0, &legacy));
        if (!strcmp(k, "tokenizer_class") || inert_key(k)) continue;
        if (!strcmp(k, "backend")) { /* 5.x: which backend class family; "tokenizers" runs tokenizer.json */
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "tokenizers"))
                return cfg_bad(C, CH_EUNSUPPORTED, k, "only \"tokenizers\" is supported (another backend encodes its own way)");
            continue;
        }
        if (!strcmp(k, "from_slow")) { /* true: transformers converts tokenizer.model instead of reading tokenizer.json */
            CH_TRY(cfg_bool(C, root, k, k, 0, &v));
            if (v) return cfg_bad(C, CH_EUNSUPPORTED, k, "true (convert the slow tokenizer instead of tokenizer.json) is not supported");
            continue;
        }
        if (!strcmp(k, "added_tokens_decoder")) {
            *consults_special_map = 0;
            CH_TRY(check_added_decoder(C, it));
        } else if (!strcmp(k, "add_bos_token") || !strcmp(k, "add_eos_token")) {
            CH_TRY(cfg_bool(C, root, k, k, 0, &v)); /* dropped by transformers when tokenizer.json exists */
        } else if (!strcmp(k, "add_prefix_space")) {
            CH_TRY(cfg_bool(C, root, k, k, 0, &aps)); /* Qwen2Tokenizer's ByteLevel; TokenizersBackend ignores it */
            CH_TRY(cfg_bool(C, root, k, k, 1, &llama_aps)); /* LlamaTokenizer: null -> true */
        } else if (!strcmp(k, "split_special_tokens")) {
            CH_TRY(cfg_bool(C, root, k, k, 0, &v));
            if (v) return cfg_bad(C, CH_EUNSUPPORTED, k, "true (special tokens not matched in text) is not supported");
        } else if (!strcmp(k, "additional_special_tokens") || !strcmp(k, "extra_special_tokens")) {
            CH_TRY(token_list(C, k, it));
        } else if (ends_with(k, "_token")) {
            CH_TRY(named_token(C, k, it));
        } else {
            return cfg_bad(C, CH_EUNSUPPORTED, k, "key not supported (it may change the ids transformers produces)");
        }
    }
    if (C->qwen2) { /* Qwen2Tokenizer's defaults for the named tokens the file does not set */
        static const char *const dflt[] = {"unk_token (Qwen2Tokenizer's default)", "eos_token (Qwen2Tokenizer's default)",
                                           "pad_token (Qwen2Tokenizer's default)", NULL};
        static const char *const names[] = {"unk_token", "eos_token", "pad_token"};
        cJSON *eot = cJSON_CreateString("<|endoftext|>");
        if (!eot) CH_FAIL(CH_ENOMEM, "out of memory");
        int rc = 0;
        for (int i = 0; dflt[i] && !rc; i++)
            if (!root || !cJSON_GetObjectItemCaseSensitive(root, names[i])) rc = named_token(C, dflt[i], eot);
        cJSON_Delete(eot);
        CH_TRY(rc);
        C->t->steps[1].prefix_space = aps; /* its ByteLevel(add_prefix_space=...) */
        C->t->bpe.ignore_merges = 0;       /* its BPE(...) leaves ignore_merges false */
    }
    if (C->llama) { /* LlamaTokenizer's defaults for the named tokens the file does not set */
        static const char *const dflt[] = {"unk_token (LlamaTokenizer's default)", "bos_token (LlamaTokenizer's default)",
                                           "eos_token (LlamaTokenizer's default)", NULL};
        static const char *const names[] = {"unk_token", "bos_token", "eos_token"}, *const vals[] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; dflt[i]; i++)
            if (!root || !cJSON_GetObjectItemCaseSensitive(root, names[i])) {
                cJSON *tv = cJSON_CreateString(vals[i]);
                if (!tv) CH_FAIL(CH_ENOMEM, "out of memory");
                int rc = named_token(C, dflt[i], tv);
                cJSON_Delete(tv);
                CH_TRY(rc);
            }
        CH_TRY(llama_rebuild(C, legacy, llama_aps));
    }
    return 0;
}

int tok_load_hf_config(ch_tokenizer *t, const char *path, const char *json, size_t len, int *consults_special_map) {
    hfcfg C = {t, path, t->hf_qwen2 != 0, qwen2_why(t->hf_qwen2), 0};
    cJSON *root = NULL;
    if (json) {
        CH_TRY(tok_parse_json(path, json, len, &root));
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            CH_FAIL(CH_EFORMAT, "%s: expected a JSON object", path);
        }
    }
    int rc = apply_hf_config(&C, root, consults_special_map);
    if (C.qwen2 && !t->hf_qwen2) t->hf_qwen2 = 2;
    cJSON_Delete(root);
    return rc;
}

int tok_check_special_map(ch_tokenizer *t, const char *path, const char *json, size_t len) {
    hfcfg C = {t, path, t->hf_qwen2 != 0, qwen2_why(t->hf_qwen2), 0};
    cJSON *root;
    CH_TRY(tok_parse_json(path, json, len, &root));
    int rc = cJSON_IsObject(root) ? 0 : ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: expected a JSON object", path);
    for (const cJSON *it = root->child; !rc && it; it = it->next)
        rc = !strcmp(it->string, "additional_special_tokens") || !strcmp(it->string, "extra_special_tokens")
                 ? token_list(&C, it->string, it)
                 : named_token(&C, it->string, it);
    cJSON_Delete(root);
    return rc;
}
