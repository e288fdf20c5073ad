/* tokenizer.c - opening a tokenizer: one tokenizer.json, or a model directory's files read as
 * transformers reads them; and freeing it. Encoding is tok_encode.c. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "tok_internal.h"

static int sha256_hex(const char *buf, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        CH_FAIL(CH_EINTERNAL, "SHA-256 of a tokenizer file failed (OpenSSL EVP_Digest)");
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int ch_tok_load(const char *path, ch_tokenizer **out) {
    *out = NULL;
    ch_tokenizer *t;
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    CH_TRY(CH_ALLOC(t, 1, "tokenizer"));
    snprintf(t->path, sizeof t->path, "%s", path);
    CH_TRY_GOTO(ch_fs_read_file(path, &buf, &len), fail);
    CH_TRY_GOTO(sha256_hex(buf, len, t->sha256), fail);
    CH_TRY_GOTO(tok_load_json(t, buf, len), fail);
    free(buf);
    *out = t;
    return 0;
fail:
    free(buf);
    ch_tok_free(t);
    return rc;
}

/* DIR/name when it exists: *buf (malloc'd) and *len; *buf = NULL when there is no such file. */
static int read_if_present(const char *dir, const char *name, char *path, size_t pathsz, char **buf, size_t *len) {
    *buf = NULL, *len = 0;
    if ((size_t)snprintf(path, pathsz, "%s/%s", dir, name) >= pathsz)
        CH_FAIL(CH_EARG, "model directory path too long: %s", dir);
    if (access(path, F_OK) != 0) return 0;
    return ch_fs_read_file(path, buf, len);
}

/* The files of a model directory that make transformers' ids, as AutoTokenizer.from_pretrained
 * reads them: tokenizer.json; config.json (its model_type can pick the tokenizer class; here it
 * also picks the chat template); tokenizer_config.json; special_tokens_map.json and
 * added_tokens.json only when tokenizer_config.json has no added_tokens_decoder. */
int ch_tok_open_dir(const char *dir, ch_tokenizer **out) {
    char path[1200], listing[1024];
    *out = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        CH_FAIL(CH_EARG, "model directory path too long: %s", dir);
    ch_tokenizer *t;
    CH_TRY(ch_tok_load(path, &t));
    char *buf = NULL, hex[65];
    size_t len, nl = (size_t)snprintf(listing, sizeof listing, "%s  tokenizer.json\n", t->sha256);
    int rc = 0, consults_map = 1, folded = 0;
    CH_TRY_GOTO(read_if_present(dir, "config.json", path, sizeof path, &buf, &len), fail);
    if (buf) CH_TRY_GOTO(tok_model_config(t, path, buf, len), fail);
    free(buf);
    CH_TRY_GOTO(read_if_present(dir, "tokenizer_config.json", path, sizeof path, &buf, &len), fail);
    if (buf) {
        CH_TRY_GOTO(sha256_hex(buf, len, hex), fail);
        nl += (size_t)snprintf(listing + nl, sizeof listing - nl, "%s  tokenizer_config.json\n", hex);
        folded = 1;
    }
    CH_TRY_GOTO(tok_load_hf_config(t, path, buf, len, &consults_map), fail);
    free(buf);
    buf = NULL;
    if (consults_map) {
        CH_TRY_GOTO(read_if_present(dir, "special_tokens_map.json", path, sizeof path, &buf, &len), fail);
        if (buf) {
            CH_TRY_GOTO(sha256_hex(buf, len, hex), fail);
            nl += (size_t)snprintf(listing + nl, sizeof listing - nl, "%s  special_tokens_map.json\n", hex);
            folded = 1;
            CH_TRY_GOTO(tok_check_special_map(t, path, buf, len), fail);
        }
        free(buf);
        buf = NULL;
        CH_TRY_GOTO(read_if_present(dir, "added_tokens.json", path, sizeof path, &buf, &len), fail);
        if (buf)
            CH_FAIL_GOTO(fail, CH_EUNSUPPORTED,
                         "%s: not supported: transformers adds its tokens because tokenizer_config.json has no "
                         "added_tokens_decoder",
                         path);
    }
    /* the archive's tokenizer hash covers every file read: `sha256sum tokenizer.json
     * tokenizer_config.json [special_tokens_map.json] | sha256sum` in DIR */
    if (folded) CH_TRY_GOTO(sha256_hex(listing, nl, t->sha256), fail);
    *out = t;
    return 0;
fail:
    free(buf);
    ch_tok_free(t);
    return rc;
}

void ch_tok_free(ch_tokenizer *t) {
    if (!t) return;
    tok_bpe_free(&t->bpe);
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].match != t->added[i].content) free(t->added[i].match);
        free(t->added[i].content);
    }
    free(t->added);
    tok_match_set_free(&t->raw_set);
    tok_match_set_free(&t->norm_set);
    for (int i = 0; i < t->n_steps; i++) {
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
        free(t->steps[i].pattern);
    }
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pat), free(t->norm[i].content);
        if (t->norm[i].re) pcre2_code_free(t->norm[i].re);
    }
    free(t->prefix_ids), free(t->suffix_ids);
    free(t);
}

const char *ch_tok_hash(const ch_tokenizer *t) { return t->sha256; }
int ch_tok_vocab_size(const ch_tokenizer *t) { return t->vocab_size; }
