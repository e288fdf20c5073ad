/* tok_text.c - text passes before the BPE: UTF-8 repair, added-token matching, normalization. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "err.h"
#include "tok_internal.h"

/* ---- UTF-8 repair ----------------------------------------------------------------------------- */

/* Length of the well-formed sequence at s[0..n), or -(length of its maximal ill-formed
 * subpart) (Unicode 15, section 3.9, Table 3-7). */
static long utf8_step(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c == 0xe0) need = 2, lo = 0xa0;
    else if (c >= 0xe1 && c <= 0xec) need = 2;
    else if (c == 0xed) need = 2, hi = 0x9f;
    else if (c >= 0xee && c <= 0xef) need = 2;
    else if (c == 0xf0) need = 3, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) need = 3;
    else if (c == 0xf4) need = 3, hi = 0x8f;
    else return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) return -k;
        lo = 0x80, hi = 0xbf; /* only the second byte has a narrowed range */
    }
    return need + 1;
}

int tok_utf8_repair(const char *s, size_t n, char **out, size_t *outlen) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        long k = utf8_step(u + i, n - i);
        if (k < 0) bad++, k = -k;
        i += (size_t)k;
    }
    *out = NULL;
    *outlen = n;
    if (!bad) return 0;
    char *r;
    CH_TRY(ch_malloc((void **)&r, n + 2 * bad + 1, "UTF-8 repaired text")); /* 1+ bytes -> 3 */
    size_t o = 0;
    for (i = 0; i < n;) {
        long k = u[i] < 0x80 ? 1 : utf8_step(u + i, n - i);
        if (k > 0) {
            memcpy(r + o, s + i, (size_t)k);
            o += (size_t)k, i += (size_t)k;
        } else {
            memcpy(r + o, "\xef\xbf\xbd", 3);
            o += 3, i += (size_t)-k;
        }
    }
    *out = r;
    *outlen = o;
    return 0;
}

/* ---- whitespace as Rust's char::is_whitespace (Unicode White_Space) --------------------------- */
static int is_ws(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Decode the (valid) character at s[i]; sets its length. */
static uint32_t decode_at(const char *s, size_t n, size_t i, size_t *len) {
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    *len = k > 0 ? (size_t)k : 1;
    return cp < 0 ? 0xfffd : (uint32_t)cp;
}

/* ---- added tokens ----------------------------------------------------------------------------- */
static int cmp_added(const void *a, const void *b) {
    const tok_added *x = *(const tok_added *const *)a, *y = *(const tok_added *const *)b;
    unsigned char cx = (unsigned char)x->match[0], cy = (unsigned char)y->match[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->mlen != y->mlen) return x->mlen > y->mlen ? -1 : 1; /* longest first */
    return x->id < y->id ? -1 : x->id > y->id;
}

int tok_match_set_build(tok_match_set *m, const tok_added *all, int n, int normalized) {
    memset(m, 0, sizeof *m);
    CH_TRY(CH_ALLOC(m->tok, n, "added token index"));
    for (int i = 0; i < n; i++)
        if (all[i].mlen > 0 && !all[i].normalized == !normalized) m->tok[m->n++] = &all[i];
    qsort(m->tok, (size_t)m->n, sizeof *m->tok, cmp_added);
    int k = 0;
    for (int c = 0; c < 256; c++) {
        m->first[c] = k;
        while (k < m->n && (unsigned char)m->tok[k]->match[0] == c) k++;
    }
    m->first[256] = m->n;
    return 0;
}

void tok_match_set_free(tok_match_set *m) {
    free(m->tok);
    memset(m, 0, sizeof *m);
}

int tok_match_next(const tok_match_set *m, const char *s, size_t n, size_t *pos, size_t floor,
                   const tok_added **tok, size_t *ms, size_t *me) {
    if (!m->n) return 0;
    for (size_t i = *pos; i < n; i++) {
        int c = (unsigned char)s[i];
        for (int k = m->first[c]; k < m->first[c + 1]; k++) {
            const tok_added *a = m->tok[k];
            if (a->mlen > n - i || (a->mlen > 1 && a->match[1] != s[i + 1]) ||
                a->match[a->mlen - 1] != s[i + a->mlen - 1] || memcmp(s + i, a->match, a->mlen) != 0)
                continue; /* second and last byte first: most candidates fail there */
            size_t start = i, stop = i + a->mlen;
            *pos = stop;
            if (a->lstrip) { /* swallow the whitespace before it, not past the previous match */
                while (start > floor) {
                    size_t j = start - 1, len;
                    while (j > floor && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
                    if (!is_ws(decode_at(s, n, j, &len))) break;
                    start = j;
                }
            }
            if (a->rstrip) {
                size_t len;
                while (stop < n && is_ws(decode_at(s, n, stop, &len))) stop += len;
            }
            *tok = a, *ms = start, *me = stop;
            return 1;
        }
    }
    *pos = n;
    return 0;
}

/* ---- normalization ---------------------------------------------------------------------------- */

/* Combining marks that HF `tokenizers` NFC treats as starters (canonical combining class 0): its
 * Unicode tables predate them, so it never reorders marks around them. utf8proc (Unicode 15)
 * knows their classes; to give HF's result we normalize the text between them separately. Found
 * by comparing HF's NFC with utf8proc's class of every mark (tests/golden/scan_unicode_classes.py). */
static const uint32_t hf_starters[][2] = {
    {0x7fd, 0x7fd},     {0x898, 0x89f},     {0x8ca, 0x8d3},     {0x9fe, 0x9fe},     {0xc3c, 0xc3c},
    {0xd3b, 0xd3c},     {0xeba, 0xeba},     {0x1715, 0x1715},   {0x1abf, 0x1ace},   {0x1df6, 0x1dfa},
    {0xa82c, 0xa82c},   {0x10d24, 0x10d27}, {0x10eab, 0x10eac}, {0x10efd, 0x10eff}, {0x10f46, 0x10f50},
    {0x10f82, 0x10f85}, {0x11070, 0x11070}, {0x1133b, 0x1133b}, {0x1145e, 0x1145e}, {0x11839, 0x1183a},
    {0x1193d, 0x1193e}, {0x11943, 0x11943}, {0x119e0, 0x119e0}, {0x11a34, 0x11a34}, {0x11a47, 0x11a47},
    {0x11a99, 0x11a99}, {0x11d42, 0x11d42}, {0x11d44, 0x11d45}, {0x11d97, 0x11d97}, {0x11f41, 0x11f42},
    {0x16ff0, 0x16ff1}, {0x1e08f, 0x1e08f}, {0x1e130, 0x1e136}, {0x1e2ae, 0x1e2ae}, {0x1e2ec, 0x1e2ef},
    {0x1e4ec, 0x1e4ef}};

static int hf_starter(uint32_t c) {
    if (c < 0x7fd) return 0;
    size_t lo = 0, hi = sizeof hf_starters / sizeof hf_starters[0];
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (c < hf_starters[m][0]) hi = m;
        else if (c > hf_starters[m][1]) lo = m + 1;
        else return 1;
    }
    return 0;
}

int tok_buf_reserve(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *q = realloc(*p, c);
    if (!q) CH_FAIL(CH_ENOMEM, "out of memory for %zu bytes of normalized text", c);
    *p = q, *cap = c;
    return 0;
}

/* An output buffer of the normalizer chain. */
typedef struct {
    char **p;
    size_t *cap, o;
} obuf;

static int buf_put(obuf *b, const void *s, size_t n) {
    if (!n) return 0; /* an empty piece may come with no buffer at all; memcpy wants one */
    CH_TRY(tok_buf_reserve(b->p, b->cap, b->o + n));
    memcpy(*b->p + b->o, s, n);
    b->o += n;
    return 0;
}

static int nfc_append(obuf *b, const char *s, size_t n) {
    if (!n) return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (k < 0) CH_FAIL(CH_EINTERNAL, "NFC normalization failed: %s", utf8proc_errmsg(k));
    int rc = buf_put(b, dst, (size_t)k);
    free(dst);
    return rc;
}

/* NFC of s into b; returns 1 in *same when s is its own NFC (ASCII), b untouched. */
static int nfc(obuf *b, const char *s, size_t n, int *same) {
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0x80) i++;
    *same = i == n; /* ASCII is its own NFC */
    if (*same) return 0;
    size_t seg = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = decode_at(s, n, i, &len);
        if (hf_starter(cp)) {
            CH_TRY(nfc_append(b, s + seg, i - seg));
            CH_TRY(buf_put(b, s + i, len));
            seg = i + len;
        }
        i += len;
    }
    return nfc_append(b, s + seg, n - seg);
}

static const char *find(const char *s, size_t n, const char *pat, size_t m) {
    for (const char *p = s, *end = s + n - m + 1; n >= m && (p = memchr(p, pat[0], (size_t)(end - p))); p++)
        if (!memcmp(p, pat, m)) return p;
    return NULL;
}

/* Replace: every non-overlapping match, left to right (HF's NormalizedString::replace). */
static int replace(const tok_norm_op *op, tok_ctx *c, obuf *b, const char *s, size_t n, int *same) {
    size_t last = 0, off = 0;
    *same = 1;
    if (!op->re) {
        if (!op->plen) return 0;
        for (const char *q; off + op->plen <= n && (q = find(s + off, n - off, op->pat, op->plen));) {
            size_t at = (size_t)(q - s);
            *same = 0;
            CH_TRY(buf_put(b, s + last, at - last));
            CH_TRY(buf_put(b, op->content, op->clen));
            last = off = at + op->plen;
        }
    } else {
        while (off <= n) {
            int rc = pcre2_match(op->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) CH_FAIL(CH_EUNSUPPORTED, "Replace normalizer regex failed on a %zu-byte piece (error %d)", n, rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            size_t ms = ov[0], me = ov[1];
            if (me > ms) { /* an empty match replaces nothing */
                *same = 0;
                CH_TRY(buf_put(b, s + last, ms - last));
                CH_TRY(buf_put(b, op->content, op->clen));
                last = me;
                off = me;
            } else {
                if (ms >= n) break;
                off = ms + 1;
                while (off < n && ((unsigned char)s[off] & 0xc0) == 0x80) off++;
            }
        }
    }
    if (*same) return 0;
    return buf_put(b, s + last, n - last);
}

int tok_normalize(const struct ch_tokenizer *t, tok_ctx *c, const char *s, size_t n, const char **out, size_t *outlen) {
    *out = s, *outlen = n;
    int which = 0;
    for (int k = 0; k < t->n_norm; k++) {
        const tok_norm_op *op = &t->norm[k];
        if (op->kind == TOK_NORM_PREPEND && !n) continue; /* HF prepends to non-empty text only */
        obuf b = {&c->nbuf[which], &c->nbuf_cap[which], 0};
        int same = 0;
        if (op->kind == TOK_NORM_NFC) {
            CH_TRY(nfc(&b, s, n, &same));
        } else if (op->kind == TOK_NORM_PREPEND) {
            CH_TRY(buf_put(&b, op->pat, op->plen));
            CH_TRY(buf_put(&b, s, n));
        } else {
            if (op->re && !c->md) {
                c->md = pcre2_match_data_create(t->max_match_data ? t->max_match_data : 1, NULL);
                if (!c->md) CH_FAIL(CH_ENOMEM, "out of memory for regex match data");
            }
            CH_TRY(replace(op, c, &b, s, n, &same));
        }
        if (same) continue;
        s = c->nbuf[which], n = b.o;
        which ^= 1;
    }
    *out = s, *outlen = n;
    return 0;
}
