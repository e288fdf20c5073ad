/* tok_load.c - read a Hugging Face tokenizer.json into a ch_tokenizer.
 *
 * Every component type and option is checked against what this implementation does; anything
 * else is refused by name (CH_EUNSUPPORTED) rather than silently changing token ids. Errors name
 * the file and the JSON path ("tokenizer.json: $.model.merges[17]: ..."). */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

typedef struct {
    ch_tokenizer *t;
    int16_t unbyte[324]; /* GPT-2 byte-level code point -> byte, -1 when not in the alphabet */
    int saw_bytelevel, saw_template, saw_metaspace;
    int sp; /* no ByteLevel pre-tokenizer: SentencePiece-style vocabulary of plain UTF-8 strings */
} loader;

static int bad(const loader *L, int code, const char *jpath, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int bad(const loader *L, int code, const char *jpath, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ch_err_set(code, __FILE__, __LINE__, "%s: %s: %s", L->t->path, jpath, msg);
}

/* Refuse keys of obj that are not in the NULL-terminated list. */
static int only_keys(const loader *L, const cJSON *obj, const char *jpath, const char *what, const char *const *keys) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++) ok = strcmp(it->string, keys[i]) == 0;
        if (!ok) return bad(L, CH_EUNSUPPORTED, jpath, "unsupported %s option '%s'", what, it->string);
    }
    return 0;
}

static int get_type(const loader *L, const cJSON *obj, const char *jpath, const char **type) {
    const cJSON *ty = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "type") : NULL;
    if (!cJSON_IsString(ty)) return bad(L, CH_EFORMAT, jpath, "expected an object with a string \"type\"");
    *type = ty->valuestring;
    return 0;
}

/* Boolean option: absent -> dflt. */
static int get_bool(const loader *L, const cJSON *obj, const char *key, const char *jpath, int dflt, int *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return *v = dflt, 0;
    if (!cJSON_IsBool(it)) return bad(L, CH_EFORMAT, jpath, "\"%s\" must be true or false", key);
    *v = cJSON_IsTrue(it);
    return 0;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100.. in byte order. We invert it to read vocabulary entries back as bytes. */
static void init_unbyte(loader *L) {
    for (int i = 0; i < 324; i++) L->unbyte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        L->unbyte[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

/* Byte-level string -> raw bytes in out (at most strlen(s) bytes). Returns the length, or -1
 * when s holds a character outside the byte-level alphabet. */
static long unbyte(const loader *L, const char *s, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    long n = 0;
    while (*u) {
        int cp;
        if (u[0] < 0x80) cp = u[0], u += 1;
        else if ((u[0] & 0xe0) == 0xc0 && (u[1] & 0xc0) == 0x80) cp = (u[0] & 0x1f) << 6 | (u[1] & 0x3f), u += 2;
        else return -1;
        if (cp >= 324 || L->unbyte[cp] < 0) return -1;
        out[n++] = (char)L->unbyte[cp];
    }
    return n;
}

/* ---- model ------------------------------------------------------------------------------------ */
static int load_vocab(loader *L, const cJSON *vocab) {
    tok_bpe *b = &L->t->bpe;
    if (!cJSON_IsObject(vocab)) return bad(L, CH_EFORMAT, "$.model.vocab", "expected an object of token -> id");
    long max_id = -1;
    size_t total = 0;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX - 1 ||
            it->valuedouble != (double)(long)it->valuedouble)
            return bad(L, CH_EFORMAT, "$.model.vocab", "token \"%s\" has an id that is not a non-negative integer", it->string);
        if ((long)it->valuedouble > max_id) max_id = (long)it->valuedouble;
        total += strlen(it->string);
    }
    if (max_id < 0) return bad(L, CH_EFORMAT, "$.model.vocab", "empty vocabulary");
    long count = cJSON_GetArraySize(vocab);
    if (max_id > 4 * count + 4096) /* tables are indexed by id: refuse absurdly sparse ids */
        return bad(L, CH_EFORMAT, "$.model.vocab", "id %ld is far beyond the %ld entries", max_id, count);
    CH_TRY(tok_bpe_init_vocab(b, (int32_t)max_id + 1, total));
    size_t off = 0;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int32_t id = (int32_t)it->valuedouble;
        if (b->len[id] != UINT32_MAX)
            return bad(L, CH_EFORMAT, "$.model.vocab", "id %d is given to two tokens (\"%s\" and another)", id, it->string);
        long n = L->sp ? (long)strlen(it->string) : unbyte(L, it->string, b->bytes + off);
        if (L->sp) memcpy(b->bytes + off, it->string, (size_t)n);
        if (n < 0) { /* not a byte-level string: the byte-level pipeline can never produce it */
            b->len[id] = UINT32_MAX - 1;
            continue;
        }
        b->off[id] = (uint32_t)off, b->len[id] = (uint32_t)n;
        off += (size_t)n;
        if (tok_bpe_insert(b, id) >= 0)
            return bad(L, CH_EFORMAT, "$.model.vocab", "token \"%s\" (id %d) is listed twice", it->string, id);
    }
    if (L->sp) { /* the byte_fallback tokens "<0xNN>" (HF spells them with format!("<{:#04X}>")) */
        static const char hex[] = "0123456789ABCDEF";
        for (int i = 0; i < 256; i++) {
            char tok[7] = {'<', '0', 'x', hex[i >> 4], hex[i & 15], '>', 0};
            b->fb_id[i] = tok_bpe_lookup(b, tok, 6);
        }
        return 0;
    }
    for (int i = 0; i < 256; i++)
        if (b->byte_id[i] < 0)
            return bad(L, CH_EUNSUPPORTED, "$.model.vocab",
                       "no token for byte 0x%02x: only byte-level BPE vocabularies are supported", i);
    return 0;
}

static int merge_side(loader *L, const char *s, const char *jpath, char *tmp, int32_t *id) {
    long n = L->sp ? (long)strlen(s) : unbyte(L, s, tmp);
    if (L->sp) memcpy(tmp, s, (size_t)n);
    *id = n < 0 ? -1 : tok_bpe_lookup(&L->t->bpe, tmp, (size_t)n);
    if (*id < 0) return bad(L, CH_EFORMAT, jpath, "merge references \"%s\", which is not a (byte-level) token of the vocabulary", s);
    return 0;
}

static int load_merges(loader *L, const cJSON *merges) {
    tok_bpe *b = &L->t->bpe;
    if (!cJSON_IsArray(merges)) return bad(L, CH_EFORMAT, "$.model.merges", "expected an array");
    char jp[64], *w = NULL, *tmp = NULL;
    size_t cap = 0;
    uint32_t rank = 0;
    int rc = 0;
    for (const cJSON *it = merges->child; it; it = it->next, rank++) {
        snprintf(jp, sizeof jp, "$.model.merges[%u]", rank);
        const char *a, *bs;
        size_t need;
        if (cJSON_IsString(it)) {
            need = strlen(it->valuestring) + 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            need = strlen(it->child->valuestring) + strlen(it->child->next->valuestring) + 2;
        } else {
            rc = bad(L, CH_EFORMAT, jp, "merge must be \"a b\" or [\"a\", \"b\"]");
            goto out;
        }
        if (need > cap) {
            free(w), free(tmp);
            cap = 2 * need;
            w = malloc(cap), tmp = malloc(cap);
            if (!w || !tmp) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory reading merges");
        }
        if (cJSON_IsString(it)) { /* "a b": exactly one space, as HF requires */
            memcpy(w, it->valuestring, need);
            char *sp = strchr(w, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = bad(L, CH_EFORMAT, jp, "merge \"%s\" is not two tokens separated by one space", it->valuestring);
                goto out;
            }
            *sp = 0;
            a = w, bs = sp + 1;
        } else { /* ["a", "b"] */
            a = it->child->valuestring, bs = it->child->next->valuestring;
        }
        int32_t l, r;
        CH_TRY_GOTO(merge_side(L, a, jp, tmp, &l), out);
        CH_TRY_GOTO(merge_side(L, bs, jp, tmp, &r), out);
        size_t nl = b->len[l], nr = b->len[r];
        memcpy(tmp, b->bytes + b->off[l], nl);
        memcpy(tmp + nl, b->bytes + b->off[r], nr);
        int32_t res = tok_bpe_lookup(b, tmp, nl + nr);
        if (res < 0) {
            rc = bad(L, CH_EFORMAT, jp, "merge of \"%s\" and \"%s\" gives a token not in the vocabulary", a, bs);
            goto out;
        }
        CH_TRY_GOTO(tok_bpe_add_merge(b, l, r, rank, res), out);
    }
out:
    free(w), free(tmp);
    return rc;
}

static int load_model(loader *L, const cJSON *m) {
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                       "end_of_word_suffix", "fuse_unk", "byte_fallback",
                                       "ignore_merges", "vocab", "merges", NULL};
    const char *type;
    CH_TRY(get_type(L, m, "$.model", &type));
    if (strcmp(type, "BPE")) return bad(L, CH_EUNSUPPORTED, "$.model.type", "unsupported model type '%s' (only BPE)", type);
    CH_TRY(only_keys(L, m, "$.model", "BPE model", keys));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (d && !cJSON_IsNull(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return bad(L, CH_EUNSUPPORTED, "$.model.dropout", "BPE dropout is not supported (ids would be random)");
    static const char *const empty_ok[] = {"continuing_subword_prefix", "end_of_word_suffix", NULL};
    for (int i = 0; empty_ok[i]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(m, empty_ok[i]);
        if (x && !cJSON_IsNull(x) && !(cJSON_IsString(x) && !x->valuestring[0]))
            return bad(L, CH_EUNSUPPORTED, "$.model", "BPE option '%s' must be null or empty", empty_ok[i]);
    }
    int bf, fuse;
    CH_TRY(get_bool(L, m, "byte_fallback", "$.model", 0, &bf));
    CH_TRY(get_bool(L, m, "fuse_unk", "$.model", 0, &fuse)); /* unk never occurs: every byte has a token */
    if (bf && !L->sp)
        return bad(L, CH_EUNSUPPORTED, "$.model.byte_fallback",
                   "byte_fallback BPE is not supported with a ByteLevel pre-tokenizer (only SentencePiece-style BPE)");
    tok_bpe *b = &L->t->bpe;
    b->sp = L->sp, b->byte_fallback = bf, b->fuse_unk = fuse;
    CH_TRY(get_bool(L, m, "ignore_merges", "$.model", 0, &b->ignore_merges));
    CH_TRY(load_vocab(L, cJSON_GetObjectItemCaseSensitive(m, "vocab")));
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk)) return bad(L, CH_EFORMAT, "$.model.unk_token", "must be a string or null");
        if (L->sp) { /* byte-level: every byte has a token, so unk never occurs */
            b->unk_id = tok_bpe_lookup(b, unk->valuestring, strlen(unk->valuestring));
            if (b->unk_id < 0)
                return bad(L, CH_EUNSUPPORTED, "$.model.unk_token",
                           "'%s' is not in the vocabulary (HF fails at encode time when it is needed): not supported",
                           unk->valuestring);
        }
    }
    return load_merges(L, cJSON_GetObjectItemCaseSensitive(m, "merges"));
}

/* ---- added tokens ----------------------------------------------------------------------------- */
static int load_added(loader *L, const cJSON *arr) {
    static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special", NULL};
    ch_tokenizer *t = L->t;
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return bad(L, CH_EFORMAT, "$.added_tokens", "expected an array");
    CH_TRY(CH_ALLOC(t->added, cJSON_GetArraySize(arr), "added tokens"));
    char jp[64];
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        snprintf(jp, sizeof jp, "$.added_tokens[%d]", i);
        if (!cJSON_IsObject(it)) return bad(L, CH_EFORMAT, jp, "expected an object");
        CH_TRY(only_keys(L, it, jp, "added token", keys));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX - 1 || !cJSON_IsString(c))
            return bad(L, CH_EFORMAT, jp, "needs a non-negative integer \"id\" and a string \"content\"");
        tok_added *a = &t->added[t->n_added];
        int sw, v;
        CH_TRY(get_bool(L, it, "single_word", jp, 0, &sw));
        if (sw) return bad(L, CH_EUNSUPPORTED, jp, "added token option single_word=true is not supported");
        CH_TRY(get_bool(L, it, "lstrip", jp, 0, &v));
        a->lstrip = (unsigned char)v;
        CH_TRY(get_bool(L, it, "rstrip", jp, 0, &v));
        a->rstrip = (unsigned char)v;
        CH_TRY(get_bool(L, it, "normalized", jp, 0, &v));
        a->normalized = (unsigned char)v;
        CH_TRY(get_bool(L, it, "special", jp, 0, &v));
        a->special = (unsigned char)v;
        a->id = (int32_t)id->valuedouble;
        a->len = strlen(c->valuestring);
        a->content = strdup(c->valuestring);
        if (!a->content) CH_FAIL(CH_ENOMEM, "out of memory for added tokens");
        t->n_added++;
        a->match = a->content, a->mlen = a->len;
        if (a->normalized && t->n_norm) { /* matched in normalized text, so normalized itself */
            tok_ctx nc = {0};
            const char *p;
            size_t np;
            int rc = tok_normalize(t, &nc, a->content, a->len, &p, &np);
            if (!rc && p != a->content) {
                a->match = malloc(np + 1);
                if (a->match) memcpy(a->match, p, np), a->match[np] = 0, a->mlen = np;
                else a->match = a->content, rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory for added tokens");
            }
            tok_ctx_free(&nc);
            CH_TRY(rc);
        }
        if (a->id + 1 > t->vocab_size) t->vocab_size = a->id + 1;
    }
    CH_TRY(tok_match_set_build(&t->raw_set, t->added, t->n_added, 0));
    return tok_match_set_build(&t->norm_set, t->added, t->n_added, 1);
}

/* ---- normalizer ------------------------------------------------------------------------------- */
static int load_normalizer(loader *L, const cJSON *n, const char *jpath) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type;
    char jp[256];
    CH_TRY(get_type(L, n, jpath, &type));
    ch_tokenizer *t = L->t;
    int simple = !strcmp(type, "NFC") || !strcmp(type, "Prepend") || !strcmp(type, "Replace");
    if (simple && t->n_norm == TOK_MAX_NORM) return bad(L, CH_EUNSUPPORTED, jpath, "more than %d normalizers", TOK_MAX_NORM);
    tok_norm_op *op = simple ? &t->norm[t->n_norm] : NULL;
    if (!strcmp(type, "NFC")) {
        static const char *const keys[] = {"type", NULL};
        CH_TRY(only_keys(L, n, jpath, "NFC normalizer", keys));
        op->kind = TOK_NORM_NFC;
        t->n_norm++;
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        static const char *const keys[] = {"type", "prepend", NULL};
        CH_TRY(only_keys(L, n, jpath, "Prepend normalizer", keys));
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(n, "prepend");
        if (!cJSON_IsString(pp)) return bad(L, CH_EFORMAT, jpath, "\"prepend\" must be a string");
        op->kind = TOK_NORM_PREPEND;
        op->plen = strlen(pp->valuestring);
        if (!(op->pat = strdup(pp->valuestring))) CH_FAIL(CH_ENOMEM, "out of memory for a normalizer");
        t->n_norm++;
        return 0;
    }
    if (!strcmp(type, "Replace")) {
        static const char *const keys[] = {"type", "pattern", "content", NULL};
        CH_TRY(only_keys(L, n, jpath, "Replace normalizer", keys));
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const cJSON *re = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const cJSON *str = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(n, "content");
        if (!(cJSON_IsString(re) ^ cJSON_IsString(str)) || cJSON_GetArraySize(pat) != 1)
            return bad(L, CH_EFORMAT, jpath, "\"pattern\" must be {\"Regex\": ...} or {\"String\": ...}");
        if (!cJSON_IsString(content)) return bad(L, CH_EFORMAT, jpath, "\"content\" must be a string");
        op->kind = TOK_NORM_REPLACE;
        op->clen = strlen(content->valuestring);
        if (!(op->content = strdup(content->valuestring))) CH_FAIL(CH_ENOMEM, "out of memory for a normalizer");
        t->n_norm++;
        if (str) {
            op->plen = strlen(str->valuestring);
            if (!(op->pat = strdup(str->valuestring))) CH_FAIL(CH_ENOMEM, "out of memory for a normalizer");
            return 0;
        }
        char msg[300];
        int rc = tok_regex_compile(re->valuestring, strlen(re->valuestring), 0, &op->re, msg, sizeof msg);
        if (rc == CH_ENOMEM) return rc;
        if (rc) return bad(L, rc, jpath, "%s", msg);
        uint32_t pairs = 0;
        pcre2_pattern_info(op->re, PCRE2_INFO_CAPTURECOUNT, &pairs);
        if (pairs + 1 > t->max_match_data) t->max_match_data = pairs + 1;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "normalizers", NULL};
        CH_TRY(only_keys(L, n, jpath, "Sequence normalizer", keys));
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(arr)) return bad(L, CH_EFORMAT, jpath, "\"normalizers\" must be an array");
        int i = 0;
        for (const cJSON *it = arr->child; it; it = it->next, i++) {
            snprintf(jp, sizeof jp, "%s.normalizers[%d]", jpath, i);
            CH_TRY(load_normalizer(L, it, jp));
        }
        return 0;
    }
    return bad(L, CH_EUNSUPPORTED, jpath, "unsupported normalizer type '%s' (supported: NFC, Prepend, Replace, Sequence)", type);
}

/* ---- pre-tokenizer ---------------------------------------------------------------------------- */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* bytelevel: a ByteLevel step (pattern: its GPT-2 regex or NULL), else a Split step. */
static int add_step(loader *L, const char *jpath, const char *pattern, size_t plen, int literal,
                    tok_split_behavior beh, int invert, int prefix_space, int bytelevel) {
    ch_tokenizer *t = L->t;
    if (L->saw_bytelevel)
        return bad(L, CH_EUNSUPPORTED, jpath, "a pre-tokenizer after ByteLevel is not supported");
    if (t->n_steps == TOK_MAX_STEPS) return bad(L, CH_EUNSUPPORTED, jpath, "more than %d pre-tokenizers", TOK_MAX_STEPS);
    tok_step *st = &t->steps[t->n_steps++];
    st->behavior = beh, st->invert = invert, st->prefix_space = prefix_space;
    st->bytelevel = bytelevel, st->literal = literal;
    if (!pattern) return 0;
    if (!bytelevel) {
        if (!(st->pattern = malloc(plen + 1))) CH_FAIL(CH_ENOMEM, "out of memory for a pre-tokenizer pattern");
        memcpy(st->pattern, pattern, plen);
        st->pattern[plen] = 0;
    }
    char msg[300];
    int rc = tok_regex_compile(pattern, plen, literal, &st->re, msg, sizeof msg);
    if (rc == CH_ENOMEM) return rc;
    if (rc) return bad(L, rc, jpath, "%s", msg);
    uint32_t pairs = 0;
    pcre2_pattern_info(st->re, PCRE2_INFO_CAPTURECOUNT, &pairs);
    if (pairs + 1 > t->max_match_data) t->max_match_data = pairs + 1;
    return 0;
}

static int load_split(loader *L, const cJSON *p, const char *jpath) {
    static const char *const keys[] = {"type", "pattern", "behavior", "invert", NULL};
    static const char *const behs[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    CH_TRY(only_keys(L, p, jpath, "Split pre-tokenizer", keys));
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
    const cJSON *str = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
    const cJSON *src = cJSON_IsString(re) ? re : str;
    if (!cJSON_IsString(src) || (re && str))
        return bad(L, CH_EFORMAT, jpath, "\"pattern\" must be {\"Regex\": ...} or {\"String\": ...}");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    if (!cJSON_IsString(b)) return bad(L, CH_EFORMAT, jpath, "\"behavior\" must be a string");
    int beh = -1, inv;
    for (int i = 0; i < 5; i++)
        if (!strcmp(b->valuestring, behs[i])) beh = i;
    if (beh < 0) return bad(L, CH_EUNSUPPORTED, jpath, "unsupported Split behavior '%s'", b->valuestring);
    CH_TRY(get_bool(L, p, "invert", jpath, 0, &inv));
    return add_step(L, jpath, src->valuestring, strlen(src->valuestring), src == str, (tok_split_behavior)beh, inv, 0, 0);
}

/* Metaspace: ' ' -> replacement, the replacement prepended by prepend_scheme (always: to a piece
 * not starting with it; first: only to the piece at offset 0 of the input), then with split the
 * piece is cut before each replacement (MergedWithNext), as HF's Metaspace pre-tokenizer. */
static int load_metaspace(loader *L, const cJSON *p, const char *jpath) {
    static const char *const keys[] = {"type", "replacement", "prepend_scheme", "split", "add_prefix_space", NULL};
    CH_TRY(only_keys(L, p, jpath, "Metaspace pre-tokenizer", keys));
    if (!L->sp) return bad(L, CH_EUNSUPPORTED, jpath, "Metaspace together with ByteLevel is not supported");
    if (L->saw_metaspace) return bad(L, CH_EUNSUPPORTED, jpath, "two Metaspace pre-tokenizers are not supported");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(p, "replacement");
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
    int split, aps;
    if (!cJSON_IsString(rep)) return bad(L, CH_EFORMAT, jpath, "\"replacement\" must be a string");
    size_t rl = strlen(rep->valuestring);
    const unsigned char *r = (const unsigned char *)rep->valuestring;
    size_t cl = !rl ? 0 : r[0] < 0x80 ? 1 : r[0] < 0xe0 ? 2 : r[0] < 0xf0 ? 3 : 4;
    if (!rl || rl != cl) return bad(L, CH_EFORMAT, jpath, "\"replacement\" must be one character");
    CH_TRY(get_bool(L, p, "split", jpath, 1, &split));
    CH_TRY(get_bool(L, p, "add_prefix_space", jpath, 1, &aps)); /* the old spelling of always / never */
    int scheme = aps ? 2 : 0;
    if (sch && !cJSON_IsNull(sch)) {
        if (!cJSON_IsString(sch)) return bad(L, CH_EFORMAT, jpath, "\"prepend_scheme\" must be a string");
        if (!strcmp(sch->valuestring, "never")) scheme = 0;
        else if (!strcmp(sch->valuestring, "first")) scheme = 1;
        else if (!strcmp(sch->valuestring, "always")) scheme = 2;
        else return bad(L, CH_EUNSUPPORTED, jpath, "unsupported prepend_scheme '%s' (never, first, always)", sch->valuestring);
    }
    CH_TRY(add_step(L, jpath, split ? rep->valuestring : NULL, rl, 1, SPLIT_MERGED_NEXT, 0, 0, 0));
    tok_step *st = &L->t->steps[L->t->n_steps - 1];
    st->metaspace = 1, st->prepend = scheme;
    memcpy(st->rep, rep->valuestring, rl);
    st->rep_len = rl;
    L->saw_metaspace = 1;
    return 0;
}

static int load_pretok(loader *L, const cJSON *p, const char *jpath) {
    const char *type;
    char jp[256];
    CH_TRY(get_type(L, p, jpath, &type));
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "pretokenizers", NULL};
        CH_TRY(only_keys(L, p, jpath, "Sequence pre-tokenizer", keys));
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(arr)) return bad(L, CH_EFORMAT, jpath, "\"pretokenizers\" must be an array");
        int i = 0;
        for (const cJSON *it = arr->child; it; it = it->next, i++) {
            snprintf(jp, sizeof jp, "%s.pretokenizers[%d]", jpath, i);
            CH_TRY(load_pretok(L, it, jp));
        }
        return 0;
    }
    if (!strcmp(type, "Split")) return load_split(L, p, jpath);
    if (!strcmp(type, "Metaspace")) return load_metaspace(L, p, jpath);
    if (!strcmp(type, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int aps, use_re, trim;
        CH_TRY(only_keys(L, p, jpath, "ByteLevel pre-tokenizer", keys));
        CH_TRY(get_bool(L, p, "add_prefix_space", jpath, 1, &aps));
        CH_TRY(get_bool(L, p, "use_regex", jpath, 1, &use_re));
        CH_TRY(get_bool(L, p, "trim_offsets", jpath, 1, &trim)); /* offsets only */
        CH_TRY(add_step(L, jpath, use_re ? gpt2_regex : NULL, sizeof gpt2_regex - 1, 0, SPLIT_ISOLATED, 0, aps, 1));
        L->saw_bytelevel = 1;
        return 0;
    }
    return bad(L, CH_EUNSUPPORTED, jpath, "unsupported pre-tokenizer type '%s' (supported: Sequence, Split, ByteLevel, Metaspace)", type);
}

/* ---- post-processor --------------------------------------------------------------------------- */
static int template_ids(loader *L, const cJSON *specials, const char *name, const char *jpath, int32_t **ids, int *n) {
    const cJSON *sp = cJSON_IsObject(specials) ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
    const cJSON *arr = sp ? cJSON_GetObjectItemCaseSensitive(sp, "ids") : NULL;
    if (!cJSON_IsArray(arr)) return bad(L, CH_EFORMAT, jpath, "special token '%s' is not in \"special_tokens\" with \"ids\"", name);
    for (const cJSON *it = arr->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT32_MAX - 1)
            return bad(L, CH_EFORMAT, jpath, "special token '%s' has a bad id", name);
        int32_t *p = realloc(*ids, sizeof(int32_t) * (size_t)(*n + 1));
        if (!p) CH_FAIL(CH_ENOMEM, "out of memory for the post-processor template");
        *ids = p;
        (*ids)[(*n)++] = (int32_t)it->valuedouble;
    }
    return 0;
}

static int load_template(loader *L, const cJSON *p, const char *jpath) {
    static const char *const keys[] = {"type", "single", "pair", "special_tokens", NULL};
    ch_tokenizer *t = L->t;
    CH_TRY(only_keys(L, p, jpath, "TemplateProcessing", keys));
    if (L->saw_template) return bad(L, CH_EUNSUPPORTED, jpath, "two TemplateProcessing post-processors");
    L->saw_template = 1;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    if (!cJSON_IsArray(single)) return bad(L, CH_EFORMAT, jpath, "\"single\" must be an array");
    int seen_a = 0, i = 0;
    char jp[256];
    for (const cJSON *it = single->child; it; it = it->next, i++) {
        snprintf(jp, sizeof jp, "%s.single[%d]", jpath, i);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(st ? st : sq, "id");
        if (!cJSON_IsString(id)) return bad(L, CH_EFORMAT, jp, "expected {\"SpecialToken\"|\"Sequence\": {\"id\": ...}}");
        if (sq) {
            if (strcmp(id->valuestring, "A") || seen_a)
                return bad(L, CH_EUNSUPPORTED, jp, "single template must hold sequence A once (got '%s')", id->valuestring);
            seen_a = 1;
        } else if (seen_a) {
            CH_TRY(template_ids(L, specials, id->valuestring, jp, &t->suffix_ids, &t->n_suffix));
        } else {
            CH_TRY(template_ids(L, specials, id->valuestring, jp, &t->prefix_ids, &t->n_prefix));
        }
    }
    if (!seen_a) return bad(L, CH_EFORMAT, jpath, "single template lacks sequence A");
    return 0;
}

static int load_post(loader *L, const cJSON *p, const char *jpath) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type;
    char jp[256];
    CH_TRY(get_type(L, p, jpath, &type));
    if (!strcmp(type, "ByteLevel")) { /* only trims offsets: ids unchanged */
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        return only_keys(L, p, jpath, "ByteLevel post-processor", keys);
    }
    if (!strcmp(type, "TemplateProcessing")) return load_template(L, p, jpath);
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "processors", NULL};
        CH_TRY(only_keys(L, p, jpath, "Sequence post-processor", keys));
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(arr)) return bad(L, CH_EFORMAT, jpath, "\"processors\" must be an array");
        int i = 0;
        for (const cJSON *it = arr->child; it; it = it->next, i++) {
            snprintf(jp, sizeof jp, "%s.processors[%d]", jpath, i);
            CH_TRY(load_post(L, it, jp));
        }
        return 0;
    }
    return bad(L, CH_EUNSUPPORTED, jpath, "unsupported post-processor type '%s' (supported: ByteLevel, TemplateProcessing, Sequence)", type);
}

/* A ByteLevel pre-tokenizer, alone or in a Sequence: the vocabulary is byte-level. */
static int has_bytelevel(const cJSON *p) {
    const cJSON *ty = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "type") : NULL;
    if (!cJSON_IsString(ty)) return 0;
    if (!strcmp(ty->valuestring, "ByteLevel")) return 1;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    for (const cJSON *it = cJSON_IsArray(arr) ? arr->child : NULL; it; it = it->next)
        if (has_bytelevel(it)) return 1;
    return 0;
}

/* ---- the file --------------------------------------------------------------------------------- */
static int load_root(loader *L, const cJSON *root) {
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "post_processor", "decoder", "model", NULL};
    if (!cJSON_IsObject(root)) return bad(L, CH_EFORMAT, "$", "expected a JSON object");
    CH_TRY(only_keys(L, root, "$", "tokenizer", keys));
    static const char *const must_null[] = {"truncation", "padding", NULL};
    for (int i = 0; must_null[i]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, must_null[i]);
        if (x && !cJSON_IsNull(x)) return bad(L, CH_EUNSUPPORTED, "$", "\"%s\" must be null (not supported)", must_null[i]);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) return bad(L, CH_EFORMAT, "$", "no \"model\"");
    L->sp = !has_bytelevel(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    CH_TRY(load_model(L, model));
    L->t->vocab_size = L->t->bpe.n_ids;
    CH_TRY(load_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "$.normalizer"));
    CH_TRY(load_added(L, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")));
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) CH_TRY(load_pretok(L, pre, "$.pre_tokenizer"));
    return load_post(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "$.post_processor");
}

/* Parse a whole JSON file; a syntax error is reported as path:line:col. */
int tok_parse_json(const char *path, const char *json, size_t len, cJSON **root) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (*root) return 0;
    size_t off = end && end >= json ? (size_t)(end - json) : 0, line = 1, col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (json[i] == '\n') line++, col = 1;
        else col++;
    }
    size_t rest = off; /* only blanks after the error: the text ended inside the document */
    while (rest < len && (json[rest] == ' ' || json[rest] == '\n' || json[rest] == '\r' || json[rest] == '\t')) rest++;
    CH_FAIL(CH_EFORMAT, "%s:%zu:%zu: malformed JSON%s", path, line, col,
            rest >= len ? " (the file ends before the document does: truncated?)" : "");
}

int tok_load_json(ch_tokenizer *t, const char *json, size_t len) {
    loader L = {.t = t};
    init_unbyte(&L);
    static const char bl[] = "\"ByteLevel\""; /* transformers' test: the text anywhere in the file */
    for (size_t i = 0; !t->file_bytelevel && i + sizeof bl - 1 <= len; i++)
        t->file_bytelevel = json[i] == '"' && !memcmp(json + i, bl, sizeof bl - 1);
    cJSON *root;
    CH_TRY(tok_parse_json(t->path, json, len, &root));
    int rc = load_root(&L, root);
    cJSON_Delete(root);
    return rc;
}
