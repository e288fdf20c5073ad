/* tok_encode.c - the encode pipeline: text to ids, and token lookup by content.
 *
 * Pipeline, as Hugging Face `tokenizers` runs it for Tokenizer.encode(text):
 *   1. invalid UTF-8 is repaired (each maximal ill-formed subpart -> U+FFFD, as Python's
 *      bytes.decode("utf-8", "replace") does before HF ever sees the text);
 *   2. added tokens with normalized=false are cut out of the raw text (leftmost-longest);
 *   3. every other piece is normalized (NFC), and added tokens with normalized=true cut out;
 *   4. the pre-tokenizer steps split the pieces (regex Split, ByteLevel);
 *   5. each pre-token goes through the BPE; 6. the post-processor template adds BOS etc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

/* ---- pre-tokenizer steps ---------------------------------------------------------------------- */
/* first: the piece starts at offset 0 of the input (Metaspace prepend_scheme "first"). */
static int run_steps(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n, int first);

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
    int first;
} combiner;

static int emit(combiner *k, size_t a, size_t b) {
    if (b > a) return run_steps(k->t, k->c, k->next_step, k->s + a, b - a, k->first && a == 0);
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

static int split_step(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n, int first) {
    const tok_step *st = &t->steps[step];
    if (!st->re) return run_steps(t, c, step + 1, s, n, first);
    combiner k = {t, c, step + 1, st->behavior, s, 0, 0, 0, 0, 0, first};
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

/* Metaspace: ' ' -> the replacement, which is prepended by the scheme, into c->mbuf; then split
 * before each replacement when the step splits. */
static int metaspace_step(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n, int first) {
    const tok_step *st = &t->steps[step];
    size_t spaces = 0, rl = st->rep_len;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    CH_TRY(tok_buf_reserve(&c->mbuf, &c->mbuf_cap, n + spaces * (rl - 1) + rl + 1));
    char *o = c->mbuf;
    size_t k = 0;
    int starts = n && (s[0] == ' ' || (n >= rl && !memcmp(s, st->rep, rl)));
    if (!starts && (st->prepend == 2 || (st->prepend == 1 && first))) memcpy(o, st->rep, rl), k = rl;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') memcpy(o + k, st->rep, rl), k += rl;
        else o[k++] = s[i];
    }
    return split_step(t, c, step, o, k, first);
}

static int run_steps(const ch_tokenizer *t, tok_ctx *c, int step, const char *s, size_t n, int first) {
    if (step == t->n_steps) return tok_bpe_word(&t->bpe, c, s, n);
    if (t->steps[step].metaspace) return metaspace_step(t, c, step, s, n, first);
    if (!t->steps[step].prefix_space || (n && s[0] == ' ')) return split_step(t, c, step, s, n, first);
    char *p;
    CH_TRY(ch_malloc((void **)&p, n + 1, "prefix-space piece"));
    p[0] = ' ';
    memcpy(p + 1, s, n);
    int rc = split_step(t, c, step, p, n + 1, first);
    free(p);
    return rc;
}

/* A piece of raw text between non-normalized added tokens; first: it starts the input. */
static int normalized_piece(const ch_tokenizer *t, tok_ctx *c, const char *s, size_t n, int first) {
    const char *p;
    size_t np, pos = 0, last = 0, ms, me;
    CH_TRY(tok_normalize(t, c, s, n, &p, &np));
    const tok_added *a;
    while (tok_match_next(&t->norm_set, p, np, &pos, last, &a, &ms, &me)) {
        if (ms > last) CH_TRY(run_steps(t, c, 0, p + last, ms - last, first && last == 0));
        CH_TRY(tok_push_id(c, a->id));
        last = me;
    }
    return np > last ? run_steps(t, c, 0, p + last, np - last, first && last == 0) : 0;
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
        if (ms > last) CH_TRY_GOTO(normalized_piece(t, c, s + last, ms - last, last == 0), done);
        CH_TRY_GOTO(tok_push_id(c, a->id), done);
        last = me;
    }
    if (n > last) CH_TRY_GOTO(normalized_piece(t, c, s + last, n - last, last == 0), done);
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) CH_TRY_GOTO(tok_push_id(c, t->suffix_ids[i]), done);
done:
    free(fixed);
    return rc;
}

void tok_ctx_free(tok_ctx *c) {
    free(c->ids), free(c->sym), free(c->heap), free(c->nbuf[0]), free(c->nbuf[1]), free(c->mbuf), free(c->init);
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

int32_t ch_tok_token_id(const ch_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0) return t->added[i].id;
    return -1;
}
