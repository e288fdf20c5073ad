/* corpus.c - see corpus.h. */
#include "corpus.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "err.h"
#include "jsonl.h"

#define MAX_MESSAGES 4096

/* The turns a rule renders: span full every one, span prompt all but a final assistant turn (the
 * response); a conversation that does not end with the assistant is all prompt. */
static int rendered_turns(const ch_message *m, int n, const ch_render_rule *rule) {
    if (ch_render_rule_is_full(rule)) return n;
    return !strcmp(m[n - 1].role, "assistant") ? n - 1 : n;
}

/* Contents joined by "\n\n", then "\n" + cue under span prompt when the cue is not empty. */
static int join_plain(const ch_message *m, int n, const ch_render_rule *rule, char **out) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(m[i].content) + 2;
    const char *cue = ch_render_rule_is_full(rule) ? "" : rule->cue;
    len += strlen(cue) + 1;
    char *s = malloc(len);
    if (!s) CH_FAIL(CH_ENOMEM, "out of memory rendering a conversation (%zu bytes)", len);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (i) s[k++] = '\n', s[k++] = '\n';
        size_t l = strlen(m[i].content);
        memcpy(s + k, m[i].content, l);
        k += l;
    }
    if (cue[0]) {
        s[k++] = '\n';
        memcpy(s + k, cue, strlen(cue));
        k += strlen(cue);
    }
    s[k] = 0;
    *out = s;
    return 0;
}

/* n messages (n >= 1) into r->tokens by the rule. */
static int render_messages(const ch_message *m, int n, const char *id, const ch_corpus_render *how, ch_record *r) {
    const ch_render_rule *rule = how->rule;
    int k = rendered_turns(m, n, rule);
    if (k < 1)
        CH_FAIL(CH_EFORMAT, "record '%s' has no prompt turn: its only message is the assistant's (span prompt "
                "renders the turns before the response)", id);
    size_t nt = 0;
    if (ch_render_rule_is_chat(rule)) {
        CH_TRY(ch_tok_encode_chat(how->tok, how->style, m, k, !ch_render_rule_is_full(rule), &r->tokens, &nt));
    } else {
        char *s = NULL;
        CH_TRY(join_plain(m, k, rule, &s));
        int rc = ch_tok_encode(how->tok, s, strlen(s), 1, &r->tokens, &nt);
        free(s);
        CH_TRY(rc);
    }
    r->n_tokens = (int)nt;
    return 0;
}

static int from_messages(const cJSON *msgs, const char *where, int64_t line, const ch_corpus_render *how, ch_record *r) {
    int n = cJSON_GetArraySize(msgs);
    if (n < 1 || n > MAX_MESSAGES) CH_FAIL(CH_EFORMAT, "%s:%lld: 'messages' must hold 1..%d messages", where, (long long)line, MAX_MESSAGES);
    ch_message *m = calloc((size_t)n, sizeof *m);
    if (!m) CH_FAIL(CH_ENOMEM, "out of memory");
    int i = 0, rc = 0;
    for (const cJSON *it = msgs->child; it; it = it->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(c)) {
            free(m);
            CH_FAIL(CH_EFORMAT, "%s:%lld: messages[%d] needs string 'role' and 'content'", where, (long long)line, i);
        }
        m[i].role = role->valuestring, m[i].content = c->valuestring;
    }
    rc = render_messages(m, n, r->id, how, r);
    free(m);
    if (rc) return ch_err_wrap("%s:%lld: ", where, (long long)line);
    return 0;
}

/* A text record: plain as it is (prepared texts end with the cue line already), chat as one user
 * message with the generation prompt, under either span. */
static int from_text(const char *text, const char *where, int64_t line, const ch_corpus_render *how, ch_record *r) {
    int rc;
    size_t nt = 0;
    if (ch_render_rule_is_chat(how->rule)) {
        ch_message m = {"user", text};
        rc = ch_tok_encode_chat(how->tok, how->style, &m, 1, 1, &r->tokens, &nt);
    } else {
        rc = ch_tok_encode(how->tok, text, strlen(text), 1, &r->tokens, &nt);
    }
    if (rc) return ch_err_wrap("%s:%lld: ", where, (long long)line);
    r->n_tokens = (int)nt;
    return 0;
}

int ch_corpus_record(const char *text, size_t len, const char *where, int64_t line, const ch_corpus_render *how,
                     ch_record *r) {
    const ch_tokenizer *tok = how->tok;
    const int vocab = how->vocab;
    memset(r, 0, sizeof *r);
    r->label = -1;
    cJSON *j = NULL;
    CH_TRY(ch_json_parse(where, (long)line, text, len, &j));
    int rc = 0;
    if (!cJSON_IsObject(j)) CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: a record must be a JSON object", where, (long long)line);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id"), *t = cJSON_GetObjectItemCaseSensitive(j, "text"),
                *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *toks = cJSON_GetObjectItemCaseSensitive(j, "tokens"),
                *label = cJSON_GetObjectItemCaseSensitive(j, "label"), *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    if (!cJSON_IsString(id) || !id->valuestring[0])
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: record without a non-empty string 'id'", where, (long long)line);
    if ((t != NULL) + (msgs != NULL) + (toks != NULL) != 1)
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: record '%s' needs exactly one of 'text', 'messages', 'tokens'", where,
                     (long long)line, id->valuestring);
    if (label && !cJSON_IsNull(label)) {
        if (!cJSON_IsString(label) || (r->label = ch_capability_index(label->valuestring)) < 0)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: label of '%s' is not one of " CH_CAP_LIST,
                         where, (long long)line, id->valuestring);
    }
    if (task && !cJSON_IsNull(task) && !cJSON_IsString(task))
        CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: 'task' of '%s' must be a string", where, (long long)line, id->valuestring);
    r->id = strdup(id->valuestring);
    r->task = strdup(cJSON_IsString(task) ? task->valuestring : "");
    if (!r->id || !r->task) CH_FAIL_GOTO(out, CH_ENOMEM, "out of memory");
    if (toks) {
        int n = cJSON_GetArraySize(toks), i = 0;
        if (!cJSON_IsArray(toks) || n < 1)
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: 'tokens' of '%s' must be a non-empty list", where, (long long)line, r->id);
        CH_TRY_GOTO(CH_ALLOC(r->tokens, n, "tokens"), out);
        for (const cJSON *it = toks->child; it; it = it->next, i++) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 || it->valuedouble >= vocab)
                CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: tokens[%d] of '%s' is not a token id below %d", where, (long long)line, i,
                             r->id, vocab);
            r->tokens[i] = (int32_t)it->valuedouble;
        }
        r->n_tokens = n;
    } else if (!tok) {
        CH_FAIL_GOTO(out, CH_EARG, "%s:%lld: record '%s' has text but the model directory has no tokenizer.json", where,
                     (long long)line, r->id);
    } else if (t) {
        if (!cJSON_IsString(t) || !t->valuestring[0])
            CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: 'text' of '%s' must be a non-empty string", where, (long long)line, r->id);
        CH_TRY_GOTO(from_text(t->valuestring, where, line, how, r), out);
    } else {
        if (!cJSON_IsArray(msgs)) CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: 'messages' of '%s' must be a list", where, (long long)line, r->id);
        CH_TRY_GOTO(from_messages(msgs, where, line, how, r), out);
    }
    if (r->n_tokens < 1) CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: record '%s' has no tokens", where, (long long)line, r->id);
out:
    cJSON_Delete(j);
    if (rc) ch_record_free(r);
    return rc;
}

void ch_record_free(ch_record *r) {
    free(r->id), free(r->task), free(r->tokens);
    memset(r, 0, sizeof *r);
    r->label = -1;
}

int ch_record_cut(ch_record *r, int limit, ch_truncate mode, int32_t bos) {
    if (mode == CH_TRUNC_NONE || limit < 1 || r->n_tokens <= limit) return 0;
    /* left keeps the last tokens, so the read position (the prompt's end) is the one it was; and
     * the BOS the model always saw first (the attention sink of Llama-style models), so that a
     * cut prompt still starts the way every prompt of training did */
    if (mode == CH_TRUNC_LEFT) {
        const int head = bos >= 0 && limit >= 2 && r->tokens[0] == bos;
        memmove(r->tokens + head, r->tokens + (r->n_tokens - (limit - head)), sizeof(int32_t) * (size_t)(limit - head));
    }
    r->n_tokens = limit;
    return 1;
}

int32_t ch_corpus_bos(const ch_tokenizer *tok) {
    if (!tok) return -1;
    int32_t *e = NULL, *a = NULL, *b = NULL;
    size_t ne = 0, na = 0, nb = 0;
    int32_t bos = -1;
    /* the post-processor's first token: present with add_special, absent without, before "a" */
    if (!ch_tok_encode(tok, "", 0, 1, &e, &ne) && !ch_tok_encode(tok, "a", 1, 1, &a, &na) &&
        !ch_tok_encode(tok, "a", 1, 0, &b, &nb) && ne >= 1 && na == nb + ne && a[0] == e[0] && (nb == 0 || b[0] != e[0]))
        bos = e[0];
    ch_err_clear();
    free(e), free(a), free(b);
    return bos;
}
