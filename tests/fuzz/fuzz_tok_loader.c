/* fuzz_tok_loader.c - libFuzzer target: the tokenizer.json loader on mutated JSON.
 *
 * Seeds: the small trained tokenizers of tests/golden (tokenizer_mini_*.json, tokenizer_sp_*.json). Whatever the
 * bytes, loading (and then encoding a fixed text) must succeed or fail with a message; never
 * crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ch_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return 0;
    snprintf(t->path, sizeof t->path, "fuzz.json");
    if (tok_load_json(t, (const char *)data, size) == 0) {
        static const char text[] = "Hello, world! 123 4567 <s> caf\xc3\xa9 \xff";
        int32_t *ids;
        size_t n;
        if (ch_tok_encode(t, text, sizeof text - 1, 1, &ids, &n) == 0) free(ids);
        else if (!ch_err_msg()[0]) abort(); /* e.g. a regex over PCRE2's limits: must say so */
    } else if (!ch_err_msg()[0] || ch_err_code() == 0) {
        abort(); /* a failure must say why */
    }
    ch_tok_free(t);
    return 0;
}
