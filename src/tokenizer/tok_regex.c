/* tok_regex.c - compile a tokenizer.json Split regex (written for Oniguruma, which HF
 * `tokenizers` uses) with PCRE2, translating where the two engines read the same syntax
 * differently.
 *
 * \s / \S: PCRE2 (UCP) counts U+180E MONGOLIAN VOWEL SEPARATOR as white space (its \h list
 * predates Unicode 6.3); Oniguruma uses the Unicode White_Space property. We spell \s out as
 * that property's code points, so "a\u180eb" splits as HF splits it.
 *
 * \p{L}, \p{N}: Debian 12's PCRE2 10.42 has Unicode 14 tables; HF's Oniguruma is newer and knows
 * the letters and digits of Unicode 15 and 16. tests/golden/scan_unicode_classes.py encodes probe
 * strings for every code point with HF and with us; the ranges below are every difference it
 * found, and \p{L} / \p{N} / \d are widened by them (the golden file holds a sample of each range). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

/* Unicode White_Space (PropList.txt), as Oniguruma's \s, in class-member syntax. */
static const char ws_members[] =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

/* Nd of Unicode 15/16 unknown to PCRE2 10.42 (Garay, Kawi, Kirat Rai, Ol Onal, ...). */
static const char n_members[] =
    "\\p{N}\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}";

/* The same digits for \d (Nd only: the Kaktovik numerals U+1D2C0.. are No). */
static const char d_members[] =
    "\\p{Nd}\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1E4F0}-\\x{1E4F9}"
    "\\x{1E5F1}-\\x{1E5FA}";

/* L of Unicode 15/16 unknown to PCRE2 10.42 (CJK Ext. H and I, Egyptian Hieroglyphs Ext.-A, ...). */
static const char l_members[] =
    "\\p{L}\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}"
    "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"
    "\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"
    "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"
    "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";

typedef struct {
    char *p;
    size_t n, cap;
} obuf;

static int put(obuf *o, const char *s, size_t n) {
    if (o->n + n + 1 > o->cap) {
        size_t cap = (o->n + n + 1) * 2;
        char *q = realloc(o->p, cap);
        if (!q) CH_FAIL(CH_ENOMEM, "out of memory translating a regex");
        o->p = q, o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = 0;
    return 0;
}

/* Translate pattern into *out (malloc'd). Fails with a message in err when the pattern uses
 * \S inside a character class (no faithful member list exists). */
static int translate(const char *pat, size_t len, char **out, size_t *outlen, char *err, size_t errlen) {
    obuf o = {0};
    int in_class = 0, rc = 0;
    size_t class_start = 0;
    for (size_t i = 0; i < len && !rc; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char e = pat[i + 1];
            if (e == 's' || e == 'S' || e == 'd' || e == 'D') {
                int neg = e == 'S' || e == 'D';
                const char *m = e == 's' || e == 'S' ? ws_members : d_members;
                if (in_class && neg) {
                    snprintf(err, errlen, "\\%c inside a character class at offset %zu", e, i);
                    free(o.p);
                    return CH_EUNSUPPORTED;
                }
                if (!in_class) rc = put(&o, neg ? "[^" : "[", neg ? 2 : 1);
                if (!rc) rc = put(&o, m, strlen(m));
                if (!rc && !in_class) rc = put(&o, "]", 1);
            } else if (e == 'p' && i + 4 < len && (!memcmp(pat + i + 2, "{N}", 3) || !memcmp(pat + i + 2, "{L}", 3))) {
                const char *m = pat[i + 3] == 'N' ? n_members : l_members;
                if (!in_class) rc = put(&o, "[", 1);
                if (!rc) rc = put(&o, m, strlen(m));
                if (!rc && !in_class) rc = put(&o, "]", 1);
                i += 3;
            } else {
                rc = put(&o, pat + i, 2);
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            class_start = i + 1;
            if (i + 1 < len && pat[i + 1] == '^') class_start++;
        } else if (in_class && c == ']' && i > class_start) {
            in_class = 0;
        } else if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') { /* [:posix:] */
            const char *end = strstr(pat + i + 2, ":]");
            if (end && (size_t)(end - pat) < len) {
                rc = put(&o, pat + i, (size_t)(end - (pat + i)) + 2);
                i = (size_t)(end - pat) + 1;
                continue;
            }
        }
        rc = put(&o, &c, 1);
    }
    if (rc) {
        free(o.p);
        return rc;
    }
    *out = o.p ? o.p : calloc(1, 1);
    *outlen = o.n;
    return *out ? 0 : CH_ENOMEM;
}

int tok_regex_compile(const char *pattern, size_t len, int literal, pcre2_code **re, char *err, size_t errlen) {
    *re = NULL;
    char *tr = NULL;
    size_t tlen = len;
    if (!literal) {
        int rc = translate(pattern, len, &tr, &tlen, err, errlen);
        if (rc) return rc;
    }
    int code;
    PCRE2_SIZE eoff;
    *re = pcre2_compile((PCRE2_SPTR)(tr ? tr : pattern), tlen,
                        PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &code, &eoff, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "regex not accepted by PCRE2: %s (at offset %zu of the %s pattern)", (char *)msg,
                 (size_t)eoff, tr ? "translated" : "given");
        free(tr);
        return CH_EUNSUPPORTED;
    }
    free(tr);
    pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE); /* the interpreter runs it if JIT is unavailable */
    return 0;
}
