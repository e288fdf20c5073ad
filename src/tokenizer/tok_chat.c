/* tok_chat.c - the built-in chat templates.
 *
 * What ch_tok_encode_chat renders (then encodes with add_special = 0, so special tokens written
 * in the template are matched as added tokens exactly as in transformers' apply_chat_template):
 *
 * CH_CHAT_LLAMA3 - the chat_template of Meta's Llama 3 instruct tokenizer_config.json (the one in
 *   tests/data/tokenizers/llama3_1): "<|begin_of_text|>" once, then per message
 *   "<|start_header_id|>" role "<|end_header_id|>\n\n" content.strip() "<|eot_id|>", and with
 *   add_generation_prompt "<|start_header_id|>assistant<|end_header_id|>\n\n". No default system
 *   message is inserted (Llama 3.1's own later template adds "Cutting Knowledge Date: ..."; we do not).
 * CH_CHAT_CHATML - plain ChatML as Qwen2/2.5/3 use it: per message
 *   "<|im_start|>" role "\n" content "<|im_end|>\n", generation prompt "<|im_start|>assistant\n".
 *   It equals Qwen3's template for system/user turns and assistant turns before the last user
 *   turn; it never inserts Qwen2.5's default system prompt nor Qwen3's "<think>" blocks.
 *
 * Which one: ch_tok_open_dir reads the model directory's config.json (tok_model_config below);
 * the other architectures the engine runs (Mistral, Gemma 2 / 3) have none built in: their
 * directories open, and a chat is refused when one is encoded;
 * a tokenizer opened without one (ch_tok_load, or a directory holding no config.json) falls back
 * to the template whose special tokens it has (ch_tok_chat_style). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "err.h"
#include "tok_internal.h"

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) CH_FAIL(CH_ENOMEM, "out of memory rendering a chat (%zu bytes)", cap);
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int puts_(sbuf *b, const char *s) { return put(b, s, strlen(s)); }

/* Python's str.isspace(), which Jinja's trim filter uses through str.strip(). */
static int py_space(int32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Trimmed view of s (valid UTF-8 assumed; bytes that do not decode are kept). */
static void strip(const char *s, size_t *a, size_t *z) {
    size_t n = strlen(s), i = 0, end = 0;
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0 || !py_space(c)) break;
        i += (size_t)k;
    }
    *a = i;
    for (size_t j = i; j < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + j, (utf8proc_ssize_t)(n - j), &c);
        if (k <= 0) k = 1, c = -1;
        j += (size_t)k;
        if (c < 0 || !py_space(c)) end = j;
    }
    *z = end > i ? end : i;
}

static int render(ch_chat_style style, const ch_message *m, int nmsg, int gen, sbuf *b) {
    if (style == CH_CHAT_LLAMA3) {
        CH_TRY(puts_(b, "<|begin_of_text|>"));
        for (int i = 0; i < nmsg; i++) {
            size_t a, z;
            strip(m[i].content, &a, &z);
            CH_TRY(puts_(b, "<|start_header_id|>"));
            CH_TRY(puts_(b, m[i].role));
            CH_TRY(puts_(b, "<|end_header_id|>\n\n"));
            CH_TRY(put(b, m[i].content + a, z - a));
            CH_TRY(puts_(b, "<|eot_id|>"));
        }
        if (gen) CH_TRY(puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
        return 0;
    }
    if (style == CH_CHAT_CHATML) {
        for (int i = 0; i < nmsg; i++) {
            CH_TRY(puts_(b, "<|im_start|>"));
            CH_TRY(puts_(b, m[i].role));
            CH_TRY(puts_(b, "\n"));
            CH_TRY(puts_(b, m[i].content));
            CH_TRY(puts_(b, "<|im_end|>\n"));
        }
        if (gen) CH_TRY(puts_(b, "<|im_start|>assistant\n"));
        return 0;
    }
    CH_FAIL(CH_EARG, "unknown chat style %d", (int)style);
}

/* The added tokens each template writes. */
static const char *const chat_need[][5] = {
    {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", NULL},
    {"<|im_start|>", "<|im_end|>", NULL}};

int ch_tok_encode_chat(const ch_tokenizer *t, ch_chat_style style, const ch_message *msgs, int nmsg,
                       int add_generation_prompt, int32_t **ids, size_t *n) {
    *ids = NULL, *n = 0;
    for (int i = 0; i < nmsg; i++)
        if (!msgs[i].role || !msgs[i].content) CH_FAIL(CH_EARG, "chat message %d has no role or content", i);
    if (style == CH_CHAT_NONE)
        CH_FAIL(CH_EUNSUPPORTED, "%s: %s has no built-in chat template: give its records as 'text' or 'tokens', "
                "not 'messages'", t->chat_checked ? t->model_config_path : t->path,
                t->chat_checked ? t->model_config_what : "this tokenizer");
    if (style == CH_CHAT_LLAMA3 || style == CH_CHAT_CHATML) {
        for (const char *const *k = chat_need[style == CH_CHAT_CHATML]; *k; k++) {
            if (ch_tok_token_id(t, *k) >= 0) continue;
            if (t->chat_checked && style == t->chat_style) /* the template config.json chose (tok_model_config) */
                CH_FAIL(CH_EMISMATCH,
                        "%s: %s selects the %s chat template, but %s has no added token %s: is it this model's "
                        "tokenizer? (needed only for records with 'messages')",
                        t->model_config_path, t->model_config_what, style == CH_CHAT_LLAMA3 ? "Llama 3" : "ChatML",
                        t->path, *k);
            CH_FAIL(CH_EMISMATCH, "%s: chat style %s needs the added token %s, which this tokenizer lacks", t->path,
                    style == CH_CHAT_LLAMA3 ? "llama3" : "chatml", *k);
        }
    }
    sbuf b = {0};
    int rc = render(style, msgs, nmsg, add_generation_prompt, &b);
    if (!rc) rc = ch_tok_encode(t, b.p ? b.p : "", b.n, 0, ids, n);
    free(b.p);
    return rc;
}

/* config.json of the model directory chooses the template, as the issue asks: LlamaForCausalLM
 * (model_type llama) -> Llama 3 headers, Qwen2ForCausalLM / Qwen3ForCausalLM (qwen2 / qwen3) -> ChatML
 * (plain, see CH_CHAT_CHATML: no default system prompt, no <think> block); MistralForCausalLM,
 * Gemma2ForCausalLM, Gemma3ForCausalLM (mistral, gemma2, gemma3_text) -> none (NO_TEMPLATE): the
 * engine runs them, their [INST] / <start_of_turn> templates are not built in. A tokenizer without
 * that template's tokens cannot render it: ch_tok_encode_chat refuses then (CH_EMISMATCH, naming
 * this config.json), so a text-only corpus runs with any tokenizer of the architecture (a Llama-2
 * style SentencePiece one in a LlamaForCausalLM directory). */
int tok_model_config(ch_tokenizer *t, const char *path, const char *json, size_t len) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = 0;
    if (!cJSON_IsObject(root)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not a JSON object (malformed JSON?)", path);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *a = NULL, *m = cJSON_IsString(mt) ? mt->valuestring : NULL;
    if (arch && !cJSON_IsNull(arch)) {
        if (!cJSON_IsArray(arch) || cJSON_GetArraySize(arch) != 1 || !cJSON_IsString(arch->child))
            CH_FAIL_GOTO(done, CH_EUNSUPPORTED, "%s: 'architectures' must name exactly one class", path);
        a = arch->child->valuestring;
    }
    if (mt && !cJSON_IsNull(mt) && !m) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: 'model_type' must be a string", path);
    if (!a && !m)
        CH_FAIL_GOTO(done, CH_EFORMAT, "%s: neither 'architectures' nor 'model_type': no chat template to choose", path);
    /* -1: a class / type the engine does not run */
    enum { NO_TEMPLATE = -2 };
    int sa = !a ? CH_CHAT_NONE : !strcmp(a, "LlamaForCausalLM") ? CH_CHAT_LLAMA3
             : !strcmp(a, "Qwen2ForCausalLM") || !strcmp(a, "Qwen3ForCausalLM") ? CH_CHAT_CHATML
             : !strcmp(a, "MistralForCausalLM") || !strcmp(a, "Gemma2ForCausalLM") || !strcmp(a, "Gemma3ForCausalLM")
                 ? NO_TEMPLATE : -1;
    int sm = !m ? CH_CHAT_NONE : !strcmp(m, "llama") ? CH_CHAT_LLAMA3
             : !strcmp(m, "qwen2") || !strcmp(m, "qwen3") ? CH_CHAT_CHATML
             : !strcmp(m, "mistral") || !strcmp(m, "gemma2") || !strcmp(m, "gemma3_text") ? NO_TEMPLATE : -1;
    if (sa == -1 || sm == -1)
        CH_FAIL_GOTO(done, CH_EUNSUPPORTED,
                     "%s: %s '%s' has no built-in chat template (LlamaForCausalLM / llama -> Llama 3 headers, "
                     "Qwen2ForCausalLM / qwen2, Qwen3ForCausalLM / qwen3 -> ChatML; Mistral and Gemma 2 / 3 run "
                     "without one)",
                     path, sa == -1 ? "architecture" : "model_type", sa == -1 ? a : m);
    if (sa && sm && sa != sm)
        CH_FAIL_GOTO(done, CH_EMISMATCH, "%s: architecture '%s' and model_type '%s' disagree", path, a, m);
    const int st = sa ? sa : sm;
    t->chat_style = st == NO_TEMPLATE ? CH_CHAT_NONE : (ch_chat_style)st;
    t->chat_checked = 1;
    snprintf(t->model_config_path, sizeof t->model_config_path, "%s", path);
    snprintf(t->model_config_what, sizeof t->model_config_what, "%s '%.150s'", a ? "architecture" : "model_type", a ? a : m);
    t->hf_qwen2 = m && !strcmp(m, "qwen2");
done:
    cJSON_Delete(root);
    return rc;
}

ch_chat_style ch_tok_chat_style(const ch_tokenizer *t) {
    if (t->chat_checked) return t->chat_style; /* chosen by the model's config.json (NONE: no template) */
    if (ch_tok_token_id(t, "<|start_header_id|>") >= 0) return CH_CHAT_LLAMA3;
    if (ch_tok_token_id(t, "<|im_start|>") >= 0) return CH_CHAT_CHATML;
    return CH_CHAT_NONE;
}
