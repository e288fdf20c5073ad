/* corpus.h - one record of a normalized JSONL corpus, turned into token ids.
 *
 * Record shape (docs/prepare.md): {"id": str, "text": str | "messages": [{"role","content"}] |
 * "tokens": [int...], "label": capability name (optional), "task": str (optional), "meta": any}.
 * "tokens" (pre-tokenized input) is for tests and for corpora tokenized elsewhere; it must not
 * be combined with text or messages. */
#ifndef CH_CORPUS_H
#define CH_CORPUS_H

#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    char *id, *task;   /* task "" when absent */
    int32_t label;     /* capability index, -1 when absent */
    int32_t *tokens;
    int n_tokens;
} ch_record;

/* Parse one line (where = file name, line = its 1-based number for messages) and tokenize it.
 * tok may be NULL: then only "tokens" records are accepted. add_special applies to text. */
int ch_corpus_record(const char *line, size_t len, const char *where, int64_t lineno, const ch_tokenizer *tok,
                     ch_chat_style style, int vocab, ch_record *r);
void ch_record_free(ch_record *r);

#endif
