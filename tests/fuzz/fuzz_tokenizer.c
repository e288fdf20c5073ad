/* fuzz_tokenizer.c - libFuzzer target: ch_tok_encode / ch_tok_encode_chat on arbitrary bytes.
 *
 * Loads the real Llama 3.1 and Qwen3 tokenizers once (decompressed from tests/data by
 * tok_testdata.h into $CH_BIN). Any input must encode without error, every id must lie inside
 * the vocabulary, and add_special must only add the template's ids around the same ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_testdata.h"
#include "tokenizer.h"

static ch_tokenizer *tok[2];
/* SentencePiece-style BPE: stories260K (Metaspace first, byte_fallback; BOS-less template), its
 * Llama-2 layout (Prepend + Replace, one word per piece, "<s> $A") and the trained minis with a
 * fused unk (never_unk) and an unfused one without byte_fallback (always_nofuse) */
#define N_SP 5
static ch_tokenizer *sp[N_SP];
static int sp_prefix[N_SP] = {0, 1, 0, 0, 1}; /* ids the template puts before the text */
static int sp_suffix[N_SP] = {0, 0, 0, 0, 1};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *fam[2] = {"llama3_1", "qwen3"};
    for (int i = 0; i < 2; i++) {
        const char *p = td_tokenizer_json(fam[i]);
        if (!p || ch_tok_load(p, &tok[i])) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", fam[i], ch_err_msg());
            abort();
        }
    }
    const char *spf[N_SP] = {"stories260k", "stories260k_legacy", "sp_never_unk", "sp_always_nofuse", "sp_first_split"};
    for (int i = 0; i < N_SP; i++) {
        char path[4200];
        const char *p = path;
        if (i < 2) p = td_tokenizer_json(spf[i]);
        else snprintf(path, sizeof path, "%s/tests/golden/tokenizer_%s.json", td_env("CH_SRC", "."), spf[i]);
        if (!p || ch_tok_load(p, &sp[i])) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", spf[i], ch_err_msg());
            abort();
        }
    }
    return 0;
}

static void check(const ch_tokenizer *t, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ch_tok_vocab_size(t)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int k = 0; k < 2; k++) {
        int32_t *a, *b;
        size_t na, nb;
        if (ch_tok_encode(tok[k], (const char *)data, size, 0, &a, &na)) abort();
        if (ch_tok_encode(tok[k], (const char *)data, size, 1, &b, &nb)) abort();
        check(tok[k], a, na);
        check(tok[k], b, nb);
        size_t extra = nb - na, pre = k == 0 ? 1 : 0; /* Llama 3: BOS; Qwen3: nothing */
        if (nb < na || extra != pre || memcmp(a, b + pre, na * sizeof *a) != 0) abort();
        free(a), free(b);
    }
    for (int k = 0; k < N_SP; k++) {
        int32_t *a, *b;
        size_t na, nb;
        if (ch_tok_encode(sp[k], (const char *)data, size, 0, &a, &na)) abort();
        if (ch_tok_encode(sp[k], (const char *)data, size, 1, &b, &nb)) abort();
        check(sp[k], a, na);
        check(sp[k], b, nb);
        size_t pre = (size_t)sp_prefix[k], suf = (size_t)sp_suffix[k];
        if (nb != na + pre + suf || memcmp(a, b + pre, na * sizeof *a) != 0) abort();
        if (k != 3 && size && memchr(data, 0, size) == NULL && na == 0) {
            /* byte_fallback or unk: non-empty text always gives ids, unless it is only spaces the
             * normalizer may drop (not in these) */
            abort();
        }
        free(a), free(b);
    }
    /* chat: the input as a user message (content must be a C string) */
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    ch_message m[2] = {{"system", "Be brief."}, {"user", s}};
    for (int k = 0; k < 2; k++) {
        int32_t *ids;
        size_t n;
        if (ch_tok_encode_chat(tok[k], k == 0 ? CH_CHAT_LLAMA3 : CH_CHAT_CHATML, m, 2, 1, &ids, &n)) abort();
        check(tok[k], ids, n);
        free(ids);
    }
    free(s);
    return 0;
}
