/* probe_format.c - the format-only baseline's features: what a record's text shows without its
 * meaning (length, option lines, character shares, ...), read from the corpus the archive was
 * extracted from. A linear probe on these tells whether the capability classes can be told apart
 * by format alone (docs/probe.md#format-baseline). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonl.h"
#include "probe.h"
#include "probe_format.h"

const char *const ch_probe_format_features[CH_PROBE_NFEAT] = {
    "n_tokens",    "chars",       "words",       "lines",       "option_lines",     "digit_share",
    "upper_share", "punct_share", "space_share", "mean_word_length", "question_lines", "longest_line"};

/* An option line: optional blanks, then "A." / "A)" followed by a blank or the line's end, or
 * "(A)"; letters A..J. */
static int option_line(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i + 2 <= n && s[i] >= 'A' && s[i] <= 'J' && (s[i + 1] == '.' || s[i + 1] == ')'))
        return i + 2 == n || isspace((unsigned char)s[i + 2]);
    return i + 3 <= n && s[i] == '(' && s[i + 1] >= 'A' && s[i + 1] <= 'J' && s[i + 2] == ')';
}

/* The line [s, s+n) ends with '?' once trailing blanks are dropped. */
static int question_line(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    return n > 0 && s[n - 1] == '?';
}

void ch_probe_text_features(const char *text, size_t len, int32_t n_tokens, float *out) {
    double chars = 0, words = 0, lines = 0, options = 0, digits = 0, upper = 0, punct = 0, space = 0;
    double word_chars = 0, questions = 0, longest = 0;
    size_t l0 = 0;
    int in_word = 0;
    double line_chars = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') { /* a line ends */
            lines++;
            options += option_line(text + l0, i - l0);
            questions += question_line(text + l0, i - l0);
            longest = line_chars > longest ? line_chars : longest;
            line_chars = 0;
            l0 = i + 1;
            in_word = 0;
            if (i < len) chars++, space++;
            continue;
        }
        const unsigned char ch = (unsigned char)text[i];
        if ((ch & 0xc0) == 0x80) continue; /* a UTF-8 continuation byte: not a new character */
        chars++, line_chars++;
        if (isspace(ch)) {
            space++, in_word = 0;
            continue;
        }
        words += !in_word, in_word = 1, word_chars++;
        digits += isdigit(ch) != 0, upper += isupper(ch) != 0, punct += ispunct(ch) != 0;
    }
    const double c = chars > 0 ? chars : 1;
    const double v[CH_PROBE_NFEAT] = {n_tokens, chars, words, lines, options, digits / c, upper / c,
                                      punct / c, space / c, words > 0 ? word_chars / words : 0,
                                      questions, longest};
    for (int k = 0; k < CH_PROBE_NFEAT; k++) out[k] = (float)v[k];
}

typedef struct {
    const char *id;
    int64_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b) {
    return strcmp(((const id_row *)a)->id, ((const id_row *)b)->id);
}

/* The record's text: 'text', or the contents of 'messages' joined by "\n\n"; "" for 'tokens'
 * records. *buf (grown as needed, *cap bytes) holds a joined text. */
static int record_text(const cJSON *j, const char *where, long line, char **buf, size_t *cap,
                       const char **text, size_t *len) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text"),
                *m = cJSON_GetObjectItemCaseSensitive(j, "messages");
    *text = "", *len = 0;
    if (cJSON_IsString(t)) {
        *text = t->valuestring, *len = strlen(t->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(m)) return 0;
    size_t n = 0;
    for (const cJSON *it = m->child; it; it = it->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(c)) CH_FAIL(CH_EFORMAT, "%s:%ld: a message without string 'content'", where, line);
        const size_t cl = strlen(c->valuestring);
        if (n + cl + 3 > *cap) {
            const size_t nc = 2 * (n + cl + 3);
            char *nb = realloc(*buf, nc);
            if (!nb) CH_FAIL(CH_ENOMEM, "out of memory for a record's text (%zu bytes)", nc);
            *buf = nb, *cap = nc;
        }
        if (n > 0) memcpy(*buf + n, "\n\n", 2), n += 2;
        memcpy(*buf + n, c->valuestring, cl), n += cl;
    }
    if (*buf) (*buf)[n] = 0;
    *text = *buf ? *buf : "", *len = n;
    return 0;
}

/* One corpus line: when its id is one of the wanted rows (sorted in want), its features. */
static int feature_line(const char *corpus, long lineno, const char *s, size_t n, const id_row *want,
                        int64_t nwant, const int32_t *ntok, float *feat, uint8_t *seen, char **buf,
                        size_t *cap) {
    cJSON *j = NULL;
    CH_TRY(ch_json_parse(corpus, lineno, s, n, &j));
    int rc = 0;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (!cJSON_IsString(id)) CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%ld: record without a string 'id'", corpus, lineno);
    const id_row key = {id->valuestring, 0};
    const id_row *hit = bsearch(&key, want, (size_t)nwant, sizeof *want, cmp_id_row);
    if (!hit) goto out;
    const char *text;
    size_t len;
    CH_TRY_GOTO(record_text(j, corpus, lineno, buf, cap, &text, &len), out);
    /* equal ids are adjacent in want: an id that is repeated in the archive fills every row */
    while (hit > want && !strcmp(hit[-1].id, key.id)) hit--;
    for (; hit < want + nwant && !strcmp(hit->id, key.id); hit++) {
        ch_probe_text_features(text, len, ntok[hit->row], feat + (size_t)hit->row * CH_PROBE_NFEAT);
        seen[hit->row] = 1;
    }
out:
    cJSON_Delete(j);
    return rc;
}

int ch_probe_corpus_features(const char *corpus, char *const *ids, const uint8_t *keep, int64_t n,
                             const int32_t *ntok, float *feat) {
    id_row *want = NULL;
    uint8_t *seen = NULL;
    char *buf = NULL;
    size_t cap = 0;
    int64_t nwant = 0;
    int rc = 0, open = 0;
    ch_jsonl r;
    CH_TRY_GOTO(CH_ALLOC(want, n + 1, "corpus ids"), out);
    CH_TRY_GOTO(CH_ALLOC(seen, n + 1, "corpus rows seen"), out);
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) want[nwant++] = (id_row){ids[i], i};
    qsort(want, (size_t)nwant, sizeof *want, cmp_id_row);
    CH_TRY_GOTO(ch_jsonl_open(&r, corpus), out);
    open = 1;
    for (;;) {
        const char *line;
        size_t len;
        int has;
        CH_TRY_GOTO(ch_jsonl_next(&r, &line, &len, &has), out);
        if (!has) break;
        CH_TRY_GOTO(feature_line(corpus, r.lineno, line, len, want, nwant, ntok, feat, seen, &buf, &cap), out);
    }
    for (int64_t i = 0; i < n; i++)
        if (keep[i] && !seen[i])
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s: no record with id '%s' (an archive row): not the corpus the archive was extracted from",
                         corpus, ids[i]);
out:
    if (open) ch_jsonl_close(&r);
    free(want), free(seen), free(buf);
    return rc;
}
