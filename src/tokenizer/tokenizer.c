/* tokenizer.c - the encode pipeline and the public API of tokenizer.h.
 *
 * Pipeline, as Hugging Face `tokenizers` runs it for Tokenizer.encode(text):
 *   1. invalid UTF-8 is repaired (each maximal ill-formed subpart -> U+FFFD, as Python's
 *      bytes.decode("utf-8", "replace") does before HF ever sees the text);
 *   2. added tokens with normalized=false are cut out of the raw text (leftmost-longest);
 *   3. every other piece is normalized (NFC), and added tokens with normalized=true cut out;
 *   4. the pre-tokenizer steps split the pieces (regex Split, ByteLevel);
 *   5. each pre-token goes through the BPE; 6. the post-processor template adds BOS etc. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "tok_internal.h"

/* ---- pre-tokenizer steps ---------------------------------------------------------------------- */
static int run_steps(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n);

/* Combines raw regex segments into pieces according to the Split behavior (HF's
 * SplitDelimiterBehavior) and hands each non-empty piece to the next step. */
typedef struct {
    const ch_tokenizer *t;
    tok_ctx *c;
    int next_step;
    tok_split_behavior beh;
    const char *s;
    size_t ps, pe;   /* pending piece */
    int have, pmatch; /* pending exists / it is a (raw) match */
    int prev_match;
} combiner;

static int emit(combiner *k, size_t a, size_t b) {
    if (b > a) return run_steps(k->t, k->c, k->next_step, k->s + a, b - a);
    return 0;
}

static int flush(combiner *k) {
    int rc = k->have ? emit(k, k->ps, k->pe) : 0;
    k->have = 0;
    return rc;
}

static int segment(combiner *k, size_t a, size_t b, int m) {
    switch (k->beh) {
    case SPLIT_ISOLATED: return emit(k, a, b);
    case SPLIT_REMOVED: return m ? 0 : emit(k, a, b);
    case SPLIT_MERGED_PREV:
        if (m && !k->prev_match && k->have) {
            k->pe = b;
        } else {
            CH_TRY(flush(k));
            k->ps = a, k->pe = b, k->have = 1;
        }
        break;
    case SPLIT_CONTIGUOUS:
        if (m == k->prev_match && k->have) {
            k->pe = b;
        } else {
            CH_TRY(flush(k));
            k->ps = a, k->pe = b, k->have = 1;
        }
        break;
    case SPLIT_MERGED_NEXT: /* a match joins the piece after it when that one is not a match */
        if (k->have && k->pmatch && !m) {
            k->pe = b;
            CH_TRY(flush(k));
        } else {
            CH_TRY(flush(k));
            if (m) k->ps = a, k->pe = b, k->have = 1, k->pmatch = 1;
            else CH_TRY(emit(k, a, b));
        }
        break;
    }
    k->prev_match = m;
    return 0;
}

static int split_step(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n) {
    const tok_step *st = &t->steps[step];
    if (!st->re) return run_steps(t, c, step + 1, s, n);
    combiner k = {t, c, step + 1, st->behavior, s, 0, 0, 0, 0, 0};
    size_t off = 0, prev = 0;
    while (off < n) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            /* a match or JIT stack limit: the file's pattern backtracks too much on this text */
            CH_FAIL(CH_EUNSUPPORTED, "%s: pre-tokenizer %d regex failed at byte %zu of a %zu-byte piece: %s",
                    t->path, step, off, n, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev) CH_TRY(segment(&k, prev, ms, st->invert));
        if (me > ms) CH_TRY(segment(&k, ms, me, !st->invert));
        prev = ms > prev ? ms : prev;
        prev = me > prev ? me : prev;
        if (me > off) {
            off = me;
        } else { /* empty match: step over one character */
            off++;
            while (off < n && ((unsigned char)s[off] & 0xc0) == 0x80) off++;
        }
    }
    if (n > prev) CH_TRY(segment(&k, prev, n, st->invert));
    return flush(&k);
}

static int run_steps(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n) {
    if (step == t->n_steps) return tok_bpe_word(&t->bpe, c, s, n);
    if (!t->steps[step].prefix_space || (n && s[0] == ' ')) return split_step(t, c, step, s, n);
    char *p;
    CH_TRY(ch_malloc((void **)&p, n + 1, "prefix-space piece"));
    p[0] = ' ';
    memcpy(p + 1, s, n);
    int rc = split_step(t, c, step, p, n + 1);
    free(p);
    return rc;
}

/* A piece of raw text between non-normalized added tokens. */
static int normalized_piece(const ch_tokenizer *t, tok_ctx *c, const char *s, size_t n) {
    const char *p;
    size_t np, pos = 0, last = 0, ms, me;
    CH_TRY(tok_normalize(t->norm, c, s, n, &p, &np));
    const tok_added *a;
    while (tok_match_next(&t->norm_set, p, np, &pos, last, &a, &ms, &me)) {
        if (ms > last) CH_TRY(run_steps(t, c, 0, p + last, ms - last));
        CH_TRY(tok_push_id(c, a->id));
        last = me;
    }
    return np > last ? run_steps(t, c, 0, p + last, np - last) : 0;
}

int tok_encode_ctx(const ch_tokenizer *t, tok_ctx *c, const char *text, size_t len, int add_special) {
    char *fixed = NULL;
    size_t n;
    CH_TRY(tok_utf8_repair(text, len, &fixed, &n));
    const char *s = fixed ? fixed : text;
    int rc = 0;
    if (t->max_match_data && !c->md) {
        c->md = pcre2_match_data_create(t->max_match_data, NULL);
        if (!c->md) CH_FAIL_GOTO(done, CH_ENOMEM, "out of memory for regex match data");
    }
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++) CH_TRY_GOTO(tok_push_id(c, t->prefix_ids[i]), done);
    size_t pos = 0, last = 0, ms, me;
    const tok_added *a;
    while (tok_match_next(&t->raw_set, s, n, &pos, last, &a, &ms, &me)) {
        if (ms > last) CH_TRY_GOTO(normalized_piece(t, c, s + last, ms - last), done);
        CH_TRY_GOTO(tok_push_id(c, a->id), done);
        last = me;
    }
    if (n > last) CH_TRY_GOTO(normalized_piece(t, c, s + last, n - last), done);
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) CH_TRY_GOTO(tok_push_id(c, t->suffix_ids[i]), done);
done:
    free(fixed);
    return rc;
}

void tok_ctx_free(tok_ctx *c) {
    free(c->ids), free(c->sym), free(c->heap), free(c->buf);
    if (c->md) pcre2_match_data_free(c->md);
    memset(c, 0, sizeof *c);
}

/* ---- public API ------------------------------------------------------------------------------- */
int ch_tok_encode(const ch_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                  size_t *n) {
    *ids = NULL, *n = 0;
    if (!t || (!text && len)) CH_FAIL(CH_EARG, "ch_tok_encode: NULL tokenizer or text");
    tok_ctx c = {0};
    int rc = tok_encode_ctx(t, &c, text ? text : "", len, add_special);
    if (rc) {
        tok_ctx_free(&c);
        return rc;
    }
    *ids = c.ids ? c.ids : malloc(sizeof(int32_t)); /* never NULL on success */
    if (!*ids) CH_FAIL(CH_ENOMEM, "out of memory for an empty id array");
    *n = c.n;
    c.ids = NULL;
    tok_ctx_free(&c);
    return 0;
}


static int sha256_hex(const char *buf, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        CH_FAIL(CH_EINTERNAL, "SHA-256 of a tokenizer file failed (OpenSSL EVP_Digest)");
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int ch_tok_load(const char *path, ch_tokenizer **out) {
    *out = NULL;
    ch_tokenizer *t;
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    CH_TRY(CH_ALLOC(t, 1, "tokenizer"));
    snprintf(t->path, sizeof t->path, "%s", path);
    CH_TRY_GOTO(ch_fs_read_file(path, &buf, &len), fail);
    CH_TRY_GOTO(sha256_hex(buf, len, t->sha256), fail);
    CH_TRY_GOTO(tok_load_json(t, buf, len), fail);
    free(buf);
    *out = t;
    return 0;
fail:
    free(buf);
    ch_tok_free(t);
    return rc;
}

/* DIR/name when it exists: *buf (malloc'd) and *len; *buf = NULL when there is no such file. */
static int read_if_present(const char *dir, const char *name, char *path, size_t pathsz, char **buf, size_t *len) {
    *buf = NULL, *len = 0;
    if ((size_t)snprintf(path, pathsz, "%s/%s", dir, name) >= pathsz)
        CH_FAIL(CH_EARG, "model directory path too long: %s", dir);
    if (access(path, F_OK) != 0) return 0;
    return ch_fs_read_file(path, buf, len);
}

/* The files of a model directory that make transformers' ids, as AutoTokenizer.from_pretrained
 * reads them: tokenizer.json; config.json (its model_type can pick the tokenizer class; here it
 * also picks the chat template); tokenizer_config.json; special_tokens_map.json and
 * added_tokens.json only when tokenizer_config.json has no added_tokens_decoder. */
int ch_tok_open_dir(const char *dir, ch_tokenizer **out) {
    char path[1200], listing[1024];
    *out = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        CH_FAIL(CH_EARG, "model directory path too long: %s", dir);
    ch_tokenizer *t;
    CH_TRY(ch_tok_load(path, &t));
    char *buf = NULL, hex[65];
    size_t len, nl = (size_t)snprintf(listing, sizeof listing, "%s  tokenizer.json\n", t->sha256);
    int rc = 0, consults_map = 1, folded = 0;
    CH_TRY_GOTO(read_if_present(dir, "config.json", path, sizeof path, &buf, &len), fail);
    if (buf) CH_TRY_GOTO(tok_model_config(t, path, buf, len), fail);
    free(buf);
    CH_TRY_GOTO(read_if_present(dir, "tokenizer_config.json", path, sizeof path, &buf, &len), fail);
    if (buf) {
        CH_TRY_GOTO(sha256_hex(buf, len, hex), fail);
        nl += (size_t)snprintf(listing + nl, sizeof listing - nl, "%s  tokenizer_config.json\n", hex);
        folded = 1;
    }
    CH_TRY_GOTO(tok_load_hf_config(t, path, buf, len, &consults_map), fail);
    free(buf);
    buf = NULL;
    if (consults_map) {
        CH_TRY_GOTO(read_if_present(dir, "special_tokens_map.json", path, sizeof path, &buf, &len), fail);
        if (buf) {
            CH_TRY_GOTO(sha256_hex(buf, len, hex), fail);
            nl += (size_t)snprintf(listing + nl, sizeof listing - nl, "%s  special_tokens_map.json\n", hex);
            folded = 1;
            CH_TRY_GOTO(tok_check_special_map(t, path, buf, len), fail);
        }
        free(buf);
        buf = NULL;
        CH_TRY_GOTO(read_if_present(dir, "added_tokens.json", path, sizeof path, &buf, &len), fail);
        if (buf)
            CH_FAIL_GOTO(fail, CH_EUNSUPPORTED,
                         "%s: not supported: transformers adds its tokens because tokenizer_config.json has no "
                         "added_tokens_decoder",
                         path);
    }
    /* the archive's tokenizer hash covers every file read: `sha256sum tokenizer.json
     * tokenizer_config.json [special_tokens_map.json] | sha256sum` in DIR */
    if (folded) CH_TRY_GOTO(sha256_hex(listing, nl, t->sha256), fail);
    *out = t;
    return 0;
fail:
    free(buf);
    ch_tok_free(t);
    return rc;
}

void ch_tok_free(ch_tokenizer *t) {
    if (!t) return;
    tok_bpe_free(&t->bpe);
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].match != t->added[i].content) free(t->added[i].match);
        free(t->added[i].content);
    }
    free(t->added);
    tok_match_set_free(&t->raw_set);
    tok_match_set_free(&t->norm_set);
    for (int i = 0; i < t->n_steps; i++) {
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
        free(t->steps[i].pattern);
    }
    free(t->prefix_ids), free(t->suffix_ids);
    free(t);
}

const char *ch_tok_hash(const ch_tokenizer *t) { return t->sha256; }
int ch_tok_vocab_size(const ch_tokenizer *t) { return t->vocab_size; }

int32_t ch_tok_token_id(const ch_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0) return t->added[i].id;
    return -1;
}
