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

static int from_messages(const cJSON *msgs, const char *where, int64_t line, const ch_tokenizer *tok,
                         ch_chat_style style, ch_record *r) {
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
    size_t nt = 0;
    rc = ch_tok_encode_chat(tok, style, m, n, 0, &r->tokens, &nt);
    free(m);
    if (rc) return ch_err_wrap("%s:%lld: ", where, (long long)line);
    r->n_tokens = (int)nt;
    return 0;
}

int ch_corpus_record(const char *text, size_t len, const char *where, int64_t line, const ch_tokenizer *tok,
                     ch_chat_style style, int vocab, ch_record *r) {
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
        size_t nt = 0;
        if ((rc = ch_tok_encode(tok, t->valuestring, strlen(t->valuestring), 1, &r->tokens, &nt))) {
            ch_err_wrap("%s:%lld: ", where, (long long)line);
            goto out;
        }
        r->n_tokens = (int)nt;
    } else {
        if (!cJSON_IsArray(msgs)) CH_FAIL_GOTO(out, CH_EFORMAT, "%s:%lld: 'messages' of '%s' must be a list", where, (long long)line, r->id);
        CH_TRY_GOTO(from_messages(msgs, where, line, tok, style, r), out);
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
