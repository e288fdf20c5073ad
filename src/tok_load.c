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
    int saw_bytelevel, saw_template;
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
        long n = unbyte(L, it->string, b->bytes + off);
        if (n < 0) { /* not a byte-level string: the byte-level pipeline can never produce it */
            b->len[id] = UINT32_MAX - 1;
            continue;
        }
        b->off[id] = (uint32_t)off, b->len[id] = (uint32_t)n;
        off += (size_t)n;
        if (tok_bpe_insert(b, id) >= 0)
            return bad(L, CH_EFORMAT, "$.model.vocab", "token \"%s\" (id %d) is listed twice", it->string, id);
    }
    for (int i = 0; i < 256; i++)
        if (b->byte_id[i] < 0)
            return bad(L, CH_EUNSUPPORTED, "$.model.vocab",
                       "no token for byte 0x%02x: only byte-level BPE vocabularies are supported", i);
    return 0;
}

static int merge_side(loader *L, const char *s, const char *jpath, char *tmp, int32_t *id) {
    long n = unbyte(L, s, tmp);
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
    if (bf) return bad(L, CH_EUNSUPPORTED, "$.model.byte_fallback", "byte_fallback BPE is not supported");
    CH_TRY(get_bool(L, m, "ignore_merges", "$.model", 0, &L->t->bpe.ignore_merges));
    CH_TRY(load_vocab(L, cJSON_GetObjectItemCaseSensitive(m, "vocab")));
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
        if (a->normalized && t->norm) { /* matched in normalized text, so normalized itself */
            tok_ctx nc = {0};
            const char *p;
            size_t np;
            int rc = tok_normalize(t->norm, &nc, a->content, a->len, &p, &np);
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
    if (!strcmp(type, "NFC")) {
        static const char *const keys[] = {"type", NULL};
        CH_TRY(only_keys(L, n, jpath, "NFC normalizer", keys));
        L->t->norm |= TOK_NORM_NFC;
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
    return bad(L, CH_EUNSUPPORTED, jpath, "unsupported normalizer type '%s' (supported: NFC, Sequence)", type);
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
    return bad(L, CH_EUNSUPPORTED, jpath, "unsupported pre-tokenizer type '%s' (supported: Sequence, Split, ByteLevel)", type);
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
    CH_TRY(load_model(L, model));
    L->t->vocab_size = L->t->bpe.n_ids;
    CH_TRY(load_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "$.normalizer"));
    CH_TRY(load_added(L, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")));
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) CH_TRY(load_pretok(L, pre, "$.pre_tokenizer"));
    if (!L->saw_bytelevel)
        return bad(L, CH_EUNSUPPORTED, "$.pre_tokenizer", "no ByteLevel pre-tokenizer: only byte-level BPE is supported");
    return load_post(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "$.post_processor");
}

/* Parse a whole JSON file; a syntax error is reported as path:line:col. */
static int parse_file(const char *path, const char *json, size_t len, cJSON **root) {
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
    cJSON *root;
    CH_TRY(parse_file(t->path, json, len, &root));
    int rc = load_root(&L, root);
    cJSON_Delete(root);
    return rc;
}

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
    if (t->norm != TOK_NORM_NFC) diff = "$.normalizer (Qwen2Tokenizer: NFC)";
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

static int apply_hf_config(hfcfg *C, const cJSON *root, int *consults_special_map) {
    /* keys that never change encode ids: decoding, chat rendering (the engine's templates are
     * built in), model input names, truncation/padding only when asked for, remote-code-free meta */
    static const char *const inert[] = {"chat_template", "clean_up_tokenization_spaces", "errors",
                                        "spaces_between_special_tokens", "model_max_length", "model_input_names",
                                        "padding_side", "truncation_side", "legacy", "use_default_system_prompt",
                                        "processor_class", "name_or_path", "init_inputs", NULL};
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
        } else if (!in_list(cls->valuestring, backend)) {
            return cfg_bad(C, CH_EUNSUPPORTED, "tokenizer_class",
                           "'%s' is not supported (supported: PreTrainedTokenizerFast, TokenizersBackend, "
                           "LlamaTokenizer(Fast), Qwen2Tokenizer(Fast)); other transformers classes rebuild the tokenizer "
                           "their own way",
                           cls->valuestring);
        }
    }
    if (C->qwen2) CH_TRY(check_qwen2(C));
    int aps = 0, v;
    for (const cJSON *it = root ? root->child : NULL; it; it = it->next) {
        const char *k = it->string;
        if (!strcmp(k, "tokenizer_class") || in_list(k, inert)) continue;
        if (!strcmp(k, "added_tokens_decoder")) {
            *consults_special_map = 0;
            CH_TRY(check_added_decoder(C, it));
        } else if (!strcmp(k, "add_bos_token") || !strcmp(k, "add_eos_token")) {
            CH_TRY(cfg_bool(C, root, k, k, 0, &v)); /* dropped by transformers when tokenizer.json exists */
        } else if (!strcmp(k, "add_prefix_space")) {
            CH_TRY(cfg_bool(C, root, k, k, 0, &aps)); /* Qwen2Tokenizer's ByteLevel; TokenizersBackend ignores it */
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
    return 0;
}

int tok_load_hf_config(ch_tokenizer *t, const char *path, const char *json, size_t len, int *consults_special_map) {
    hfcfg C = {t, path, t->hf_qwen2 != 0, qwen2_why(t->hf_qwen2)};
    cJSON *root = NULL;
    if (json) {
        CH_TRY(parse_file(path, json, len, &root));
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
    hfcfg C = {t, path, t->hf_qwen2 != 0, qwen2_why(t->hf_qwen2)};
    cJSON *root;
    CH_TRY(parse_file(path, json, len, &root));
    int rc = cJSON_IsObject(root) ? 0 : ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: expected a JSON object", path);
    for (const cJSON *it = root->child; !rc && it; it = it->next)
        rc = !strcmp(it->string, "additional_special_tokens") || !strcmp(it->string, "extra_special_tokens")
                 ? token_list(&C, it->string, it)
                 : named_token(&C, it->string, it);
    cJSON_Delete(root);
    return rc;
}
