/* corpus.h - one record of a normalized JSONL corpus, turned into token ids by the rendering rule.
 *
 * Record shape (docs/prepare.md): {"id": str, "text": str | "messages": [{"role","content"}] |
 * "tokens": [int...], "label": capability name (optional), "task": str (optional), "meta": any}.
 * "tokens" (pre-tokenized input) is for tests and for corpora tokenized elsewhere; it must not
 * be combined with text or messages.
 *
 * The rendering rule (io/render_rule.h; docs/prepare.md, "The rendering rule"):
 *   plain, prompt  text: the text (BOS as the tokenizer adds it); messages: the prompt turns
 *                  (every message but a final assistant one) joined by "\n\n", then "\n" + cue
 *                  when the cue is not empty, tokenized like text
 *   chat,  prompt  text: one user message; messages: the prompt turns; both by the model's chat
 *                  template with the generation prompt
 *   span full      messages: every turn, plain joined by "\n\n" (no cue) or by the chat template
 *                  without the generation prompt; text as under span prompt
 *   tokens records are taken as they are under every rule. */
#ifndef CH_CORPUS_H
#define CH_CORPUS_H

#include <stdint.h>

#include "render_rule.h"
#include "tokenizer.h"

typedef struct {
    char *id, *task;   /* task "" when absent */
    int32_t label;     /* capability index, -1 when absent */
    int32_t *tokens;
    int n_tokens;
} ch_record;

/* What turns a record into tokens. tok may be NULL: then only "tokens" records are accepted. */
typedef struct {
    const ch_tokenizer *tok;
    ch_chat_style style;        /* the chat template, for rule template chat */
    const ch_render_rule *rule;
    int vocab;                  /* token ids of "tokens" records must be below it */
    int32_t bos;                /* the token the tokenizer puts first (BOS; ch_corpus_bos), -1: none */
} ch_corpus_render;

/* The id the tokenizer's post-processor puts before every text (Llama's BOS), -1 when it puts
 * none first (Qwen) or there is no tokenizer. */
int32_t ch_corpus_bos(const ch_tokenizer *tok);

/* Parse one line (where = file name, line = its 1-based number for messages) and render it. */
int ch_corpus_record(const char *line, size_t len, const char *where, int64_t lineno, const ch_corpus_render *how,
                     ch_record *r);
void ch_record_free(ch_record *r);

/* extract --truncate: what a record longer than the limit keeps. */
typedef enum { CH_TRUNC_NONE = 0, CH_TRUNC_LEFT, CH_TRUNC_RIGHT } ch_truncate;
/* Cut r to its last (LEFT) or first (RIGHT) limit tokens when it is longer; 1 when it was cut.
 * LEFT keeps a leading bos (>= 0) and the last limit - 1 tokens after it. */
int ch_record_cut(ch_record *r, int limit, ch_truncate mode, int32_t bos);

#endif
