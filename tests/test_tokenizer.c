/* test_tokenizer.c - the tokenizer against Hugging Face `tokenizers` / transformers golden ids.
 *
 * Golden data: tests/golden/tokenizer_<family>.jsonl.gz and tokenizer_chat.jsonl.gz, made by
 * tests/golden/make_tokenizer_golden.py from the real Llama 3.1 and Qwen3 tokenizer files. */
#include <check.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tok_testdata.h"
#include "tokenizer.h"

static size_t b64_decode(const char *s, unsigned char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(tab, *s);
        ck_assert_msg(p != NULL, "bad base64 in golden file");
        acc = acc << 6 | (uint32_t)(p - tab);
        bits += 6;
        if (bits >= 8) bits -= 8, out[n++] = (unsigned char)(acc >> bits);
    }
    return n;
}

static ch_tokenizer *load_family(const char *family) {
    const char *path = td_tokenizer_json(family);
    ck_assert_msg(path != NULL, "cannot decompress the %s tokenizer test data", family);
    ch_tokenizer *t = NULL;
    int rc = ch_tok_load(path, &t);
    ck_assert_msg(rc == 0, "load %s: %s", path, ch_err_msg());
    return t;
}

static int ids_equal(const int32_t *got, size_t n, const cJSON *want) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    for (const cJSON *it = want->child; it; it = it->next, i++)
        if ((int32_t)it->valuedouble != got[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Every golden string of tests/golden/tokenizer_<family>.jsonl.gz, with and without add_special.
 * t: the tokenizer (freed here); min_strings: how many strings the file must hold at least. */
static void check_golden(ch_tokenizer *t, const char *family, size_t min_strings) {
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/tests/golden/tokenizer_%s.jsonl.gz", td_env("CH_SRC", "."), family);
    char *buf;
    size_t len;
    ck_assert_msg(td_gunzip(gz, &buf, &len) == 0, "cannot read %s", gz);
    size_t checked = 0, bad = 0;
    unsigned char *raw = malloc(len + 1);
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) nl = buf + len;
        *nl = 0;
        if (!*line) continue;
        cJSON *rec = cJSON_Parse(line);
        ck_assert_msg(rec != NULL, "bad golden line in %s", gz);
        size_t n = b64_decode(cJSON_GetObjectItem(rec, "b64")->valuestring, raw);
        for (int special = 0; special <= 1; special++) {
            int32_t *ids;
            size_t nid;
            int rc = ch_tok_encode(t, (const char *)raw, n, special, &ids, &nid);
            ck_assert_msg(rc == 0, "encode failed: %s", ch_err_msg());
            const cJSON *want = cJSON_GetObjectItem(rec, special ? "ids_special" : "ids");
            if (!ids_equal(ids, nid, want)) {
                if (bad++ < 8) {
                    fprintf(stderr, "%s mismatch (add_special=%d) for %.*s\n", family, special,
                            (int)(n < 200 ? n : 200), (const char *)raw);
                    print_ids("ours", ids, nid);
                    int32_t w[40];
                    size_t k = 0;
                    for (const cJSON *it = want->child; it && k < 40; it = it->next) w[k++] = (int32_t)it->valuedouble;
                    print_ids("HF  ", w, (size_t)cJSON_GetArraySize(want));
                }
            }
            free(ids);
            checked++;
        }
        cJSON_Delete(rec);
    }
    free(raw);
    free(buf);
    ch_tok_free(t);
    ck_assert_msg(checked >= 2 * min_strings, "only %zu encodings in %s", checked, gz);
    ck_assert_msg(bad == 0, "%zu of %zu encodings differ from HF tokenizers (%s)", bad, checked, family);
}

START_TEST(test_llama3_ids_equal_hf_string_merges_ignore_merges_bos) {
    check_golden(load_family("llama3_1"), "llama3_1", 2000);
}
END_TEST

START_TEST(test_qwen3_ids_equal_hf_pair_merges_nfc) { check_golden(load_family("qwen3"), "qwen3", 2000); }
END_TEST

static ch_tokenizer *load_mini(const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/golden/tokenizer_%s.json", td_env("CH_SRC", "."), name);
    ch_tokenizer *t = NULL;
    ck_assert_msg(ch_tok_load(path, &t) == 0, "%s", ch_err_msg());
    return t;
}

/* mini_a: Split MergedWithNext + String/Removed, ByteLevel use_regex + add_prefix_space,
 * lstrip/rstrip/normalized added tokens, template with BOS and EOS */
START_TEST(test_mini_a_prefix_space_lstrip_rstrip_template_equal_hf) {
    check_golden(load_mini("mini_a"), "mini_a", 1000);
}
END_TEST

/* mini_b: inverted Contiguous / Isolated splits, MergedWithPrevious, "a b" merges, ignore_merges */
START_TEST(test_mini_b_inverted_contiguous_merged_previous_equal_hf) {
    check_golden(load_mini("mini_b"), "mini_b", 1000);
}
END_TEST

/* Every record of tests/golden/tokenizer_chat.jsonl.gz; by_tokenizer: render with the style
 * ch_tok_chat_style gives (it must be the record's), else with the record's style. */
static void check_chat_golden(const ch_tokenizer *tl, const ch_tokenizer *tq, int by_tokenizer) {
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/tests/golden/tokenizer_chat.jsonl.gz", td_env("CH_SRC", "."));
    char *buf;
    size_t len;
    ck_assert(td_gunzip(gz, &buf, &len) == 0);
    int records = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *rec = cJSON_Parse(line);
        ck_assert(rec != NULL);
        int llama = strcmp(cJSON_GetObjectItem(rec, "style")->valuestring, "llama3") == 0;
        const cJSON *ms = cJSON_GetObjectItem(rec, "messages");
        ch_message m[8];
        int nm = 0;
        for (const cJSON *it = ms->child; it && nm < 8; it = it->next, nm++)
            m[nm] = (ch_message){cJSON_GetObjectItem(it, "role")->valuestring, cJSON_GetObjectItem(it, "content")->valuestring};
        int32_t *ids;
        size_t n;
        ch_chat_style style = llama ? CH_CHAT_LLAMA3 : CH_CHAT_CHATML;
        if (by_tokenizer) {
            ck_assert_int_eq(ch_tok_chat_style(llama ? tl : tq), style);
            style = ch_tok_chat_style(llama ? tl : tq);
        }
        int rc = ch_tok_encode_chat(llama ? tl : tq, style, m, nm, cJSON_GetObjectItem(rec, "gen")->valueint, &ids, &n);
        ck_assert_msg(rc == 0, "%s", ch_err_msg());
        ck_assert_msg(ids_equal(ids, n, cJSON_GetObjectItem(rec, "ids")), "chat record %d differs", records);
        free(ids);
        cJSON_Delete(rec);
        records++;
    }
    ck_assert_int_ge(records, 16);
    free(buf);
}

START_TEST(test_chat_templates_equal_transformers_apply_chat_template) {
    ch_tokenizer *tl = load_family("llama3_1"), *tq = load_family("qwen3");
    check_chat_golden(tl, tq, 0);
    ck_assert_int_eq(ch_tok_chat_style(tl), CH_CHAT_LLAMA3);
    ck_assert_int_eq(ch_tok_chat_style(tq), CH_CHAT_CHATML);
    /* a style whose tokens the file lacks is refused, not rendered into plain text */
    int32_t *ids;
    size_t n;
    ch_message one = {"user", "hi"};
    ck_assert_int_eq(ch_tok_encode_chat(tq, CH_CHAT_LLAMA3, &one, 1, 0, &ids, &n), CH_EMISMATCH);
    ch_tok_free(tl), ch_tok_free(tq);
}
END_TEST

START_TEST(test_vocab_size_and_special_ids) {
    ch_tokenizer *tl = load_family("llama3_1"), *tq = load_family("qwen3");
    ck_assert_int_eq(ch_tok_vocab_size(tl), 128256);
    ck_assert_int_eq(ch_tok_vocab_size(tq), 151669);
    ck_assert_int_eq(ch_tok_token_id(tl, "<|eot_id|>"), 128009);
    ck_assert_int_eq(ch_tok_token_id(tq, "<|im_end|>"), 151645);
    ck_assert_int_eq(ch_tok_token_id(tq, "not a token"), -1);
    ch_tok_free(tl), ch_tok_free(tq);
}
END_TEST

START_TEST(test_hash_is_sha256_of_file_bytes) {
    const char *path = td_tokenizer_json("qwen3");
    char cmd[4200], want[65] = {0};
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    ck_assert(p && fread(want, 1, 64, p) == 64);
    pclose(p);
    ch_tokenizer *t = load_family("qwen3");
    ck_assert_str_eq(ch_tok_hash(t), want);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_long_word_merge_loop_is_not_quadratic) {
    /* 400 KB without a break is one pre-token: a quadratic merge loop needs ~1e11 steps here */
    ch_tokenizer *t = load_family("qwen3");
    size_t n = 400000;
    char *s = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) x = x * 1103515245u + 12345u, s[i] = (char)('a' + (x >> 16) % 26);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int32_t *ids;
    size_t nid;
    ck_assert_int_eq(ch_tok_encode(t, s, n, 0, &ids, &nid), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double sec = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    ck_assert_msg(sec < 20.0, "400 KB word took %.1f s", sec);
    ck_assert(nid > n / 8 && nid < n); /* merged, but no token longer than ~8 letters of noise */
    free(ids), free(s);
    ch_tok_free(t);
}
END_TEST

/* ---- malformed and unsupported files ------------------------------------------------------------ */
static char *write_tmp(const char *text, size_t n) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/tok_bad_%d.json", td_env("CH_BIN", "/tmp"), (int)getpid());
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(text, 1, n, f) == n);
    fclose(f);
    return path;
}

/* The mini tokenizer (tests/golden/tokenizer_mini_*.json) with one substitution applied. */
static int load_mutated(const char *from, const char *to) {
    char path[4200], *buf;
    snprintf(path, sizeof path, "%s/tests/golden/tokenizer_mini_a.json", td_env("CH_SRC", "."));
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + strlen(to) + 1);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    buf[n] = 0;
    char *at = strstr(buf, from);
    ck_assert_msg(at != NULL, "'%s' not in the mini tokenizer", from);
    size_t fl = strlen(from), tl = strlen(to);
    memmove(at + tl, at + fl, (size_t)n - (size_t)(at - buf) - fl + 1);
    memcpy(at, to, tl);
    ch_tokenizer *t = NULL;
    int rc = ch_tok_load(write_tmp(buf, strlen(buf)), &t);
    ch_tok_free(t);
    free(buf);
    return rc;
}

START_TEST(test_truncated_json_names_file_and_line) {
    const char *path = td_tokenizer_json("llama3_1");
    FILE *f = fopen(path, "rb");
    char *buf = malloc(300000);
    size_t n = fread(buf, 1, 300000, f);
    fclose(f);
    ch_tokenizer *t = NULL;
    const char *bad = write_tmp(buf, n);
    ck_assert_int_eq(ch_tok_load(bad, &t), CH_EFORMAT);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(ch_err_msg(), bad) && strstr(ch_err_msg(), "malformed JSON") &&
                  strstr(ch_err_msg(), "truncated"), "%s", ch_err_msg());
    free(buf);
}
END_TEST

START_TEST(test_unknown_pretokenizer_type_refused_by_name) {
    ck_assert_int_eq(load_mutated("\"type\":\"Split\"", "\"type\":\"Whitespace\""), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'Whitespace'") && strstr(ch_err_msg(), "$.pre_tokenizer.pretokenizers[0]"),
                  "%s", ch_err_msg());
}
END_TEST

START_TEST(test_merge_with_unknown_token_names_json_path) {
    ck_assert_int_eq(load_mutated("\"merges\":[[", "\"merges\":[[\"Ġ\",\"nosuchtoken\"],["), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "$.model.merges[0]") && strstr(ch_err_msg(), "nosuchtoken"), "%s", ch_err_msg());
}
END_TEST

START_TEST(test_unknown_options_refused_by_name) {
    ck_assert_int_eq(load_mutated("\"ignore_merges\":", "\"frobnicate\":1,\"ignore_merges\":"), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'frobnicate'"), "%s", ch_err_msg());
    ck_assert_int_eq(load_mutated("\"normalizer\":{\"type\":\"NFC\"}", "\"normalizer\":{\"type\":\"Lowercase\"}"),
                     CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'Lowercase'") && strstr(ch_err_msg(), "$.normalizer"), "%s", ch_err_msg());
    ck_assert_int_eq(load_mutated("\"byte_fallback\":false", "\"byte_fallback\":true"), CH_EUNSUPPORTED);
    ck_assert_int_eq(load_mutated("\"truncation\":null", "\"truncation\":{\"max_length\":8}"), CH_EUNSUPPORTED);
    ck_assert_int_eq(load_mutated("\"type\":\"BPE\"", "\"type\":\"WordPiece\""), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'WordPiece'"), "%s", ch_err_msg());
}
END_TEST

START_TEST(test_unknown_post_processor_type_refused_by_name) {
    ck_assert_int_eq(load_mutated("\"type\":\"TemplateProcessing\"", "\"type\":\"RobertaProcessing\""), CH_EUNSUPPORTED);
    ck_assert_msg(strstr(ch_err_msg(), "'RobertaProcessing'") && strstr(ch_err_msg(), "$.post_processor"), "%s", ch_err_msg());
}
END_TEST

/* ---- model directories: tokenizer_config.json and config.json ----------------------------------- */
#define LLAMA_CONFIG "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"}"
#define QWEN2_CONFIG "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\"}"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fputs(text, f) >= 0, "%s", path);
    fclose(f);
}

/* Apply an edit (as in make_tokenizer_golden.py: key or "a/b/c" path -> value, "<delete>" removes). */
static void apply_edit(cJSON *cfg, const cJSON *edit) {
    for (const cJSON *e = edit ? edit->child : NULL; e; e = e->next) {
        char key[256];
        snprintf(key, sizeof key, "%s", e->string);
        cJSON *node = cfg;
        char *part = key, *slash;
        while ((slash = strchr(part, '/'))) {
            *slash = 0;
            node = cJSON_GetObjectItemCaseSensitive(node, part);
            ck_assert_msg(node != NULL, "edit path %s", e->string);
            part = slash + 1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(node, part);
        if (!(cJSON_IsString(e) && !strcmp(e->valuestring, "<delete>")))
            cJSON_AddItemToObject(node, part, cJSON_Duplicate(e, 1));
    }
}

/* A model directory under $CH_BIN: the family's tokenizer.json (a symlink; family "mini_a": the
 * small tests/golden/tokenizer_mini_a.json, cheap to load), its tokenizer_config.json with edit
 * applied (edit "!": no such file; "!text": the file is text, the only choice for mini_a), and
 * config.json = model_config when not NULL. The path stays valid until the next call. */
static const char *make_dir(const char *family, const char *edit, const char *model_config) {
    static char dir[4200];
    static int serial;
    char src[PATH_MAX], cwd[PATH_MAX / 2], path[4400], target[PATH_MAX + 32];
    int mini = !strcmp(family, "mini_a");
    const char *td = mini ? td_env("CH_SRC", ".") : td_tokenizer_dir(family);
    ck_assert_msg(td != NULL && getcwd(cwd, sizeof cwd) != NULL, "tokenizer test data of %s", family);
    if (td[0] == '/') snprintf(src, sizeof src, "%s", td); /* the symlink needs an absolute target */
    else snprintf(src, sizeof src, "%s/%s", cwd, td);
    snprintf(dir, sizeof dir, "%s/tok_dir_%d_%d", td_env("CH_BIN", "/tmp"), (int)getpid(), serial++);
    ck_assert_msg(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(target, sizeof target, mini ? "%s/tests/golden/tokenizer_mini_a.json" : "%s/tokenizer.json", src);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    ck_assert(symlink(target, path) == 0);
    ck_assert_msg(!mini || (edit && edit[0] == '!'), "mini_a has no tokenizer_config.json to edit");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (edit && edit[0] == '!') {
        if (edit[1]) write_file(path, edit + 1);
    } else {
        char cfgpath[PATH_MAX + 32], *buf;
        snprintf(cfgpath, sizeof cfgpath, "%s/tokenizer_config.json", src);
        FILE *f = fopen(cfgpath, "rb");
        ck_assert(f != NULL);
        buf = malloc(1 << 20);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = 0;
        cJSON *cfg = cJSON_Parse(buf), *ed = edit ? cJSON_Parse(edit) : NULL;
        ck_assert_msg(cfg && (!edit || ed), "bad edit %s", edit ? edit : "");
        apply_edit(cfg, ed);
        char *text = cJSON_PrintUnformatted(cfg);
        write_file(path, text);
        free(text), free(buf);
        cJSON_Delete(cfg), cJSON_Delete(ed);
    }
    if (model_config) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        write_file(path, model_config);
    }
    return dir;
}

/* ch_tok_open_dir on such a directory: the status; *out (may be NULL) gets the tokenizer. */
static int open_dir(const char *family, const char *edit, const char *model_config, ch_tokenizer **out) {
    ch_tokenizer *t = NULL;
    int rc = ch_tok_open_dir(make_dir(family, edit, model_config), &t);
    if (rc) ck_assert_ptr_null(t);
    if (out) *out = t;
    else ch_tok_free(t);
    return rc;
}

static void assert_chat_refused(const char *family, const char *model_config, const char *a, const char *b);

static void assert_refused(int rc, int code, const char *a, const char *b) {
    ck_assert_msg(rc == code, "status %d, want %d: %s", rc, code, rc ? ch_err_msg() : "(none)");
    ck_assert_msg(strstr(ch_err_msg(), a) && (!b || strstr(ch_err_msg(), b)), "'%s' / '%s' not in: %s", a, b ? b : "",
                  ch_err_msg());
}

START_TEST(test_model_dirs_equal_hf_golden_with_tokenizer_config) {
    /* the committed tokenizer_config.json (read by ch_tok_open_dir) changes no id: every golden string */
    ch_tokenizer *t;
    ck_assert_msg(ch_tok_open_dir(td_tokenizer_dir("llama3_1"), &t) == 0, "%s", ch_err_msg());
    check_golden(t, "llama3_1", 2000);
    ck_assert_msg(open_dir("qwen3", NULL, QWEN2_CONFIG, &t) == 0, "%s", ch_err_msg());
    check_golden(t, "qwen3", 2000);
    /* a Qwen3ForCausalLM directory (the engine runs it): plain ChatML, as for Qwen2 */
    ck_assert_msg(open_dir("qwen3", NULL, "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\"}", &t) == 0,
                  "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_CHATML);
    ch_tok_free(t);
}
END_TEST

/* tests/golden/tokenizer_config_variants.jsonl.gz: transformers' AutoTokenizer ids for edited
 * tokenizer_config.json files (add_prefix_space honoured by Qwen2Tokenizer and ignored by
 * TokenizersBackend, add_bos_token / add_eos_token dropped, tokenizer_class, no added_tokens_decoder) */
/* Every variant of a tests/golden/<file> written by make_tokenizer_golden.py's write_config_variants
 * (or make_sp_tokenizer_golden.py's config_variants): AutoTokenizer's ids for edited directories. */
static void check_config_variants(const char *file, int min_variants, int min_prefix_space, int min_checked) {
    char gz[4096], *buf;
    size_t len;
    snprintf(gz, sizeof gz, "%s/tests/golden/%s", td_env("CH_SRC", "."), file);
    ck_assert_msg(td_gunzip(gz, &buf, &len) == 0, "cannot read %s", gz);
    unsigned char *raw = malloc(len + 1);
    ch_tokenizer *t = NULL;
    int variants = 0, checked = 0, bad = 0, prefix_space_seen = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *rec = cJSON_Parse(line);
        ck_assert(rec != NULL);
        const char *name = cJSON_GetObjectItem(rec, "variant")->valuestring;
        const cJSON *fam = cJSON_GetObjectItem(rec, "family");
        if (fam) { /* a variant: its directory */
            ch_tok_free(t);
            char *edit = cJSON_PrintUnformatted(cJSON_GetObjectItem(rec, "edit"));
            const cJSON *mc = cJSON_GetObjectItem(rec, "model_config");
            char *mcs = cJSON_IsNull(mc) ? NULL : cJSON_PrintUnformatted(mc);
            ck_assert_msg(open_dir(fam->valuestring, edit, mcs, &t) == 0, "%s: %s", name, ch_err_msg());
            prefix_space_seen += strstr(edit, "add_prefix_space") != NULL;
            free(edit), free(mcs);
            variants++;
        } else {
            size_t n = b64_decode(cJSON_GetObjectItem(rec, "b64")->valuestring, raw);
            for (int special = 0; special <= 1; special++) {
                int32_t *ids;
                size_t nid;
                ck_assert_msg(ch_tok_encode(t, (const char *)raw, n, special, &ids, &nid) == 0, "%s", ch_err_msg());
                if (!ids_equal(ids, nid, cJSON_GetObjectItem(rec, special ? "ids_special" : "ids")) && bad++ < 8)
                    fprintf(stderr, "%s: add_special=%d differs for %.*s\n", name, special, (int)(n < 100 ? n : 100), raw);
                free(ids);
                checked++;
            }
        }
        cJSON_Delete(rec);
    }
    ch_tok_free(t);
    free(raw), free(buf);
    ck_assert_int_ge(variants, min_variants);
    ck_assert_int_ge(prefix_space_seen, min_prefix_space);
    ck_assert_int_ge(checked, min_checked);
    ck_assert_msg(bad == 0, "%s: %d of %d encodings differ from transformers' AutoTokenizer", file, bad, checked);
}

START_TEST(test_tokenizer_config_keys_equal_transformers_autotokenizer) {
    check_config_variants("tokenizer_config_variants.jsonl.gz", 8, 2, 8 * 2 * 400);
}
END_TEST

/* LlamaTokenizer (tokenizer_class) on a SentencePiece tokenizer.json: transformers rebuilds the
 * pipeline (Metaspace first / always by legacy / never by add_prefix_space false, no normalizer);
 * TokenizersBackend or no tokenizer_class runs the file as it is. */
START_TEST(test_sp_tokenizer_config_equal_transformers_autotokenizer) {
    check_config_variants("tokenizer_sp_config_variants.jsonl.gz", 7, 1, 7 * 2 * 250);
}
END_TEST

/* ---- SentencePiece-style BPE ---------------------------------------------------------------------- */
/* stories260K's tokenizer.model converted and saved by transformers' LlamaTokenizer: Metaspace
 * (prepend_scheme first), byte_fallback <0xNN> tokens; the directory also through ch_tok_open_dir */
START_TEST(test_stories260k_sp_ids_equal_hf) {
    check_golden(load_family("stories260k"), "stories260k", 4000);
    ch_tokenizer *t;
    ck_assert_msg(ch_tok_open_dir(td_tokenizer_dir("stories260k"), &t) == 0, "%s", ch_err_msg());
    check_golden(t, "stories260k", 4000);
}
END_TEST

/* the same vocabulary in the Llama-2 / TinyLlama layout of transformers 4.x: Prepend + Replace
 * normalizers, no pre-tokenizer (a whole piece is one word), unk, "<s> $A" */
START_TEST(test_stories260k_llama2_layout_ids_equal_hf) {
    check_golden(load_family("stories260k_legacy"), "stories260k_legacy", 2000);
}
END_TEST

START_TEST(test_sp_minis_equal_hf) {
    /* first_split: Metaspace first + split, NFC, lstrip/rstrip/normalized added tokens, BOS+EOS;
     * never_unk: no prefix, byte tokens only for ASCII so other characters give one fused <unk>;
     * always_nofuse: always + split, no byte_fallback, unk not fused, ignore_merges, "a b" merges;
     * gemma: Replace(" ", "▁") only; legacy: Prepend + Replace; spm: transformers' generic
     * SentencePiece conversion (Replace regexes for SentencePiece's whitespace rules, Metaspace always) */
    static const char *const names[] = {"sp_first_split", "sp_never_unk", "sp_always_nofuse", "sp_gemma", "sp_legacy", "sp_spm"};
    for (int i = 0; i < 6; i++) check_golden(load_mini(names[i]), names[i], 2000);
}
END_TEST

/* A LlamaForCausalLM directory with a SentencePiece tokenizer (no Llama 3 chat tokens) opens and
 * encodes text; only a chat is refused, naming config.json. */
START_TEST(test_text_only_llama_sp_directory_opens) {
    assert_chat_refused("stories260k", LLAMA_CONFIG, "config.json: architecture 'LlamaForCausalLM'",
                        "no added token <|begin_of_text|>");
    ch_tokenizer *t;
    ck_assert_msg(open_dir("stories260k", NULL, LLAMA_CONFIG, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_LLAMA3);
    ck_assert_int_eq(ch_tok_vocab_size(t), 512);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ch_tok_encode(t, "Once upon a time", 16, 1, &ids, &n), 0);
    ck_assert(n > 2);
    free(ids);
    ch_tok_free(t);
}
END_TEST

/* tokenizer_config.json as transformers 5.x save_pretrained writes it for the real Llama 3.1 and
 * Qwen3 tokenizers (backend, is_local, local_files_only, ...): accepted, ids unchanged. */
START_TEST(test_saved_by_transformers5_config_accepted) {
    static const char *const fams[] = {"llama3_1", "qwen3"}, *const mc[] = {LLAMA_CONFIG, QWEN2_CONFIG};
    for (int i = 0; i < 2; i++) {
        char path[4200], *buf, edit[1 << 16];
        size_t len;
        snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s/tokenizer_config.saved5.json", td_env("CH_SRC", "."), fams[i]);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "%s", path);
        buf = malloc(1 << 16);
        len = fread(buf, 1, (1 << 16) - 1, f);
        fclose(f);
        buf[len] = 0;
        ck_assert_msg(strstr(buf, "\"is_local\"") && strstr(buf, "\"backend\"") && strstr(buf, "\"local_files_only\""),
                      "%s lacks the 5.x keys", path);
        snprintf(edit, sizeof edit, "!%s", buf);
        free(buf);
        ch_tokenizer *t;
        ck_assert_msg(open_dir(fams[i], edit, mc[i], &t) == 0, "%s: %s", fams[i], ch_err_msg());
        check_golden(t, fams[i], 2000);
    }
    /* keys that could change ids are still refused by name */
    assert_refused(open_dir("mini_a", "!{\"backend\":\"sentencepiece\"}", NULL, NULL), CH_EUNSUPPORTED,
                   "tokenizer_config.json: backend", "tokenizers");
    assert_refused(open_dir("mini_a", "!{\"from_slow\":true}", NULL, NULL), CH_EUNSUPPORTED, "from_slow", NULL);
    ck_assert_msg(open_dir("mini_a", "!{\"backend\":\"tokenizers\",\"is_local\":true,\"local_files_only\":false,"
                           "\"from_slow\":false,\"sp_model_kwargs\":{}}", NULL, NULL) == 0, "%s", ch_err_msg());
    /* LlamaTokenizer's default <s> / <unk> (added as new tokens were they not the file's): here they are */
    ck_assert_msg(open_dir("stories260k", "{\"bos_token\":\"<delete>\",\"unk_token\":\"<delete>\"}", NULL, NULL) == 0, "%s",
                  ch_err_msg());
    assert_refused(open_dir("stories260k", "{\"eos_token\":\"<eos>\"}", NULL, NULL), CH_EUNSUPPORTED, "eos_token", "'<eos>'");
}
END_TEST

START_TEST(test_qwen2_add_prefix_space_changes_ids) {
    ch_tokenizer *t;
    int32_t *ids;
    size_t n;
    ck_assert_msg(open_dir("qwen3", "{\"add_prefix_space\":true}", NULL, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_encode(t, "Hello", 5, 0, &ids, &n), 0);
    ck_assert(n == 1 && ids[0] == 21927); /* " Hello", as Qwen2Tokenizer gives; 9707 ("Hello") without */
    free(ids);
    ch_tok_free(t);
    /* TokenizersBackend (Llama 3) ignores it */
    ck_assert_msg(open_dir("llama3_1", "{\"add_prefix_space\":true}", NULL, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_encode(t, "Hello", 5, 0, &ids, &n), 0);
    ck_assert(n == 1 && ids[0] == 9906);
    free(ids);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_tokenizer_config_values_engine_cannot_honour_refused_by_key) {
    /* mini_a (added tokens <lst> <rst> <nrm> <s> </s>, NFC, its own Split steps) is cheap to load */
    assert_refused(open_dir("mini_a", "!{\"split_special_tokens\":true}", NULL, NULL), CH_EUNSUPPORTED,
                   "tokenizer_config.json: split_special_tokens", NULL);
    ck_assert_msg(open_dir("mini_a", "!{\"split_special_tokens\":false,\"bos_token\":\"<s>\"}", NULL, NULL) == 0, "%s",
                  ch_err_msg());
    assert_refused(open_dir("mini_a", "!{\"bos_token\":\"<bos>\"}", NULL, NULL), CH_EUNSUPPORTED,
                   "tokenizer_config.json: bos_token", "'<bos>' is not an added token");
    assert_refused(open_dir("mini_a", "!{\"pad_token\":{\"content\":\"<pad>\",\"special\":true}}", NULL, NULL),
                   CH_EUNSUPPORTED, "pad_token", "'<pad>'");
    assert_refused(open_dir("mini_a", "!{\"image_token\":\"<image>\"}", NULL, NULL), CH_EUNSUPPORTED, "image_token",
                   "'<image>'");
    assert_refused(open_dir("mini_a", "!{\"tokenizer_class\":\"GPT2Tokenizer\"}", NULL, NULL), CH_EUNSUPPORTED,
                   "tokenizer_class", "'GPT2Tokenizer'");
    /* Qwen2Tokenizer builds its own NFC + Qwen2 regex pre-tokenizer: mini_a's differs */
    assert_refused(open_dir("mini_a", "!{\"tokenizer_class\":\"Qwen2Tokenizer\"}", NULL, NULL), CH_EUNSUPPORTED,
                   "Qwen2Tokenizer", "$.pre_tokenizer");
    assert_refused(open_dir("mini_a", "!{\"frobnicate\":1}", NULL, NULL), CH_EUNSUPPORTED,
                   "tokenizer_config.json: frobnicate", "not supported");
    assert_refused(open_dir("mini_a", "!{\"auto_map\":{\"AutoTokenizer\":[\"x.X\",null]}}", NULL, NULL),
                   CH_EUNSUPPORTED, "auto_map", NULL);
    assert_refused(open_dir("mini_a", "!{\"add_eos_token\":\"yes\"}", NULL, NULL), CH_EFORMAT, "add_eos_token", NULL);
    assert_refused(open_dir("mini_a", "!{\"bos_token\": ", NULL, NULL), CH_EFORMAT, "tokenizer_config.json:1:", "truncated");
    assert_refused(open_dir("mini_a", "![1, 2]", NULL, NULL), CH_EFORMAT, "tokenizer_config.json", "JSON object");
    /* the real files, edited */
    assert_refused(open_dir("qwen3", "{\"additional_special_tokens\":[\"<|im_start|>\",\"<nope>\"]}", NULL, NULL),
                   CH_EUNSUPPORTED, "additional_special_tokens[1]", "'<nope>'");
    assert_refused(open_dir("qwen3", "{\"added_tokens_decoder/151667/lstrip\":true}", NULL, NULL), CH_EUNSUPPORTED,
                   "added_tokens_decoder[\"151667\"]", "lstrip");
    assert_refused(open_dir("qwen3", "{\"added_tokens_decoder/151667/content\":\"<thinking>\"}", NULL, NULL),
                   CH_EUNSUPPORTED, "added_tokens_decoder[\"151667\"]", "'<think>'");
    assert_refused(open_dir("qwen3", "{\"added_tokens_decoder/151669\":{\"content\":\"<new>\"}}", NULL, NULL),
                   CH_EUNSUPPORTED, "added_tokens_decoder[\"151669\"]", "not an added token");
    /* Qwen2Tokenizer keeps only the listed tokens; TokenizersBackend keeps tokenizer.json's */
    assert_refused(open_dir("qwen3", "{\"added_tokens_decoder/151667\":\"<delete>\"}", NULL, NULL), CH_EUNSUPPORTED,
                   "added_tokens_decoder", "151667 '<think>'");
    ck_assert_msg(open_dir("qwen3", "{\"tokenizer_class\":\"PreTrainedTokenizerFast\",\"added_tokens_decoder/151667\":\"<delete>\"}",
                           NULL, NULL) == 0,
                  "%s", ch_err_msg());
}
END_TEST

START_TEST(test_special_tokens_map_checked_when_transformers_reads_it) {
    /* read only when tokenizer_config.json has no added_tokens_decoder */
    const char *d = make_dir("llama3_1", "{\"added_tokens_decoder\":\"<delete>\"}", NULL);
    char path[4400];
    snprintf(path, sizeof path, "%s/special_tokens_map.json", d);
    write_file(path, "{\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":{\"content\":\"<eos>\"}}");
    ch_tokenizer *t = NULL;
    assert_refused(ch_tok_open_dir(d, &t), CH_EUNSUPPORTED, "special_tokens_map.json: eos_token", "'<eos>'");
    d = make_dir("llama3_1", NULL, NULL); /* has added_tokens_decoder: the map is not read */
    snprintf(path, sizeof path, "%s/special_tokens_map.json", d);
    write_file(path, "{\"eos_token\":\"<eos>\"}");
    ck_assert_msg(ch_tok_open_dir(d, &t) == 0, "%s", ch_err_msg());
    ch_tok_free(t);
}
END_TEST

static void sha256_of_listing(const char *dir, const char *files, char want[65]) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && sha256sum %s | sha256sum", dir, files);
    FILE *p = popen(cmd, "r");
    ck_assert(p && fread(want, 1, 64, p) == 64);
    want[64] = 0;
    pclose(p);
}

START_TEST(test_hash_folds_tokenizer_config_so_a_changed_config_differs) {
    char want[65], first[65];
    ch_tokenizer *t;
    const char *d = make_dir("qwen3", NULL, NULL);
    ck_assert_msg(ch_tok_open_dir(d, &t) == 0, "%s", ch_err_msg());
    sha256_of_listing(d, "tokenizer.json tokenizer_config.json", want);
    ck_assert_str_eq(ch_tok_hash(t), want);
    snprintf(first, sizeof first, "%s", ch_tok_hash(t));
    ch_tok_free(t);
    /* an edit that changes no id still changes the hash: a resume with another config is refused */
    ck_assert_msg(open_dir("qwen3", "{\"model_max_length\":4096}", NULL, &t) == 0, "%s", ch_err_msg());
    ck_assert_str_ne(ch_tok_hash(t), first);
    ch_tok_free(t);
    /* no tokenizer_config.json: the hash of tokenizer.json, as ch_tok_load gives */
    ck_assert_msg(open_dir("qwen3", "!", NULL, &t) == 0, "%s", ch_err_msg());
    ch_tokenizer *bare = load_family("qwen3");
    ck_assert_str_eq(ch_tok_hash(t), ch_tok_hash(bare));
    ck_assert_str_ne(ch_tok_hash(t), first);
    ch_tok_free(t), ch_tok_free(bare);
}
END_TEST

/* The directory opens and encodes text; ch_tok_encode_chat with the chosen style is refused. */
static void assert_chat_refused(const char *family, const char *model_config, const char *a, const char *b) {
    ch_tokenizer *t;
    ck_assert_msg(open_dir(family, NULL, model_config, &t) == 0, "%s", ch_err_msg());
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ch_tok_encode(t, "plain text", 10, 1, &ids, &n), 0);
    free(ids);
    ch_message m = {"user", "hi"};
    assert_refused(ch_tok_encode_chat(t, ch_tok_chat_style(t), &m, 1, 0, &ids, &n), CH_EMISMATCH, a, b);
    ch_tok_free(t);
}

START_TEST(test_chat_template_chosen_by_model_config) {
    ch_tokenizer *t, *tq;
    ck_assert_msg(open_dir("llama3_1", NULL, LLAMA_CONFIG, &t) == 0, "%s", ch_err_msg());
    ck_assert_msg(open_dir("qwen3", NULL, "{\"architectures\":[\"Qwen2ForCausalLM\"]}", &tq) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_LLAMA3);
    ck_assert_int_eq(ch_tok_chat_style(tq), CH_CHAT_CHATML);
    check_chat_golden(t, tq, 1); /* the chosen templates give transformers' apply_chat_template ids */
    ch_tok_free(t), ch_tok_free(tq);
    /* a tokenizer lacking the template's tokens cannot render it: refused when a chat is encoded
     * (a text-only corpus needs no chat tokens), with the message naming config.json */
    assert_chat_refused("qwen3", LLAMA_CONFIG, "config.json: architecture 'LlamaForCausalLM'",
                        "no added token <|begin_of_text|>");
    assert_chat_refused("llama3_1", "{\"architectures\":[\"Qwen2ForCausalLM\"]}", "ChatML", "no added token <|im_start|>");
    assert_refused(open_dir("llama3_1", NULL, "{\"model_type\":\"llama\",\"architectures\":[\"Qwen2ForCausalLM\"]}", NULL),
                   CH_EMISMATCH, "disagree", NULL);
    assert_refused(open_dir("llama3_1", NULL, "{\"architectures\":[\"PhiForCausalLM\"],\"model_type\":\"phi\"}", NULL),
                   CH_EUNSUPPORTED, "'PhiForCausalLM'", "no built-in chat template");
    /* the engine runs Mistral and Gemma without their chat templates: text encodes, a chat is
     * refused naming config.json, even with a tokenizer that has another template's tokens */
    static const char *const untemplated[] = {"{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\"}",
                                              "{\"architectures\":[\"Gemma2ForCausalLM\"],\"model_type\":\"gemma2\"}",
                                              "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":\"gemma3_text\"}"};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(open_dir("llama3_1", NULL, untemplated[i], &t) == 0, "%s", ch_err_msg());
        ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_NONE);
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(ch_tok_encode(t, "plain text", 10, 1, &ids, &n), 0);
        free(ids);
        ch_message msg = {"user", "hi"};
        assert_refused(ch_tok_encode_chat(t, ch_tok_chat_style(t), &msg, 1, 0, &ids, &n), CH_EUNSUPPORTED,
                       "config.json: architecture", "no built-in chat template");
        ch_tok_free(t);
    }
    assert_refused(open_dir("llama3_1", NULL, "{\"hidden_size\":8}", NULL), CH_EFORMAT, "config.json",
                   "neither 'architectures' nor 'model_type'");
    /* without config.json (a tokenizer directory): the template whose tokens the file has */
    ck_assert_msg(open_dir("qwen3", NULL, NULL, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_CHATML);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_model_config_beats_added_tokens_for_chat) {
    /* a Llama 3 tokenizer.json that also has the ChatML tokens (two reserved tokens renamed):
     * by its tokens it is llama3; in a directory whose config.json is Qwen2's, ChatML */
    const char *d = make_dir("llama3_1", "!", "{\"architectures\":[\"Qwen2ForCausalLM\"]}");
    char path[4400], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/tokenizer.json", d);
    FILE *f = fopen(path, "rb");
    ck_assert(f != NULL);
    buf = malloc(16 << 20);
    len = fread(buf, 1, (16 << 20) - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *from[] = {"<|reserved_special_token_0|>", "<|reserved_special_token_1|>"}, *to[] = {"<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 2; i++) {
        char *at = strstr(buf, from[i]);
        ck_assert(at != NULL);
        size_t fl = strlen(from[i]), tl = strlen(to[i]);
        memmove(at + tl, at + fl, len - (size_t)(at - buf) - fl + 1);
        memcpy(at, to[i], tl);
        len -= fl - tl;
    }
    unlink(path);
    write_file(path, buf);
    free(buf);
    ch_tokenizer *t;
    ck_assert_msg(ch_tok_load(path, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_LLAMA3);
    ch_tok_free(t);
    ck_assert_msg(ch_tok_open_dir(d, &t) == 0, "%s", ch_err_msg());
    ck_assert_int_eq(ch_tok_chat_style(t), CH_CHAT_CHATML);
    ch_message m = {"user", "hi"};
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ch_tok_encode_chat(t, ch_tok_chat_style(t), &m, 1, 0, &ids, &n), 0);
    ck_assert(n > 2 && ids[0] == ch_tok_token_id(t, "<|im_start|>"));
    free(ids);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_missing_file_is_io_error_naming_it) {
    ch_tokenizer *t = NULL;
    ck_assert_int_eq(ch_tok_open_dir("/nonexistent/model", &t), CH_EIO);
    ck_assert_msg(strstr(ch_err_msg(), "/nonexistent/model/tokenizer.json"), "%s", ch_err_msg());
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_llama3_ids_equal_hf_string_merges_ignore_merges_bos);
    tcase_add_test(tc, test_qwen3_ids_equal_hf_pair_merges_nfc);
    tcase_add_test(tc, test_mini_a_prefix_space_lstrip_rstrip_template_equal_hf);
    tcase_add_test(tc, test_mini_b_inverted_contiguous_merged_previous_equal_hf);
    tcase_add_test(tc, test_chat_templates_equal_transformers_apply_chat_template);
    tcase_add_test(tc, test_vocab_size_and_special_ids);
    tcase_add_test(tc, test_hash_is_sha256_of_file_bytes);
    tcase_add_test(tc, test_long_word_merge_loop_is_not_quadratic);
    tcase_add_test(tc, test_truncated_json_names_file_and_line);
    tcase_add_test(tc, test_unknown_pretokenizer_type_refused_by_name);
    tcase_add_test(tc, test_merge_with_unknown_token_names_json_path);
    tcase_add_test(tc, test_unknown_options_refused_by_name);
    tcase_add_test(tc, test_unknown_post_processor_type_refused_by_name);
    tcase_add_test(tc, test_model_dirs_equal_hf_golden_with_tokenizer_config);
    tcase_add_test(tc, test_tokenizer_config_keys_equal_transformers_autotokenizer);
    tcase_add_test(tc, test_qwen2_add_prefix_space_changes_ids);
    tcase_add_test(tc, test_tokenizer_config_values_engine_cannot_honour_refused_by_key);
    tcase_add_test(tc, test_special_tokens_map_checked_when_transformers_reads_it);
    tcase_add_test(tc, test_hash_folds_tokenizer_config_so_a_changed_config_differs);
    tcase_add_test(tc, test_chat_template_chosen_by_model_config);
    tcase_add_test(tc, test_model_config_beats_added_tokens_for_chat);
    tcase_add_test(tc, test_missing_file_is_io_error_naming_it);
    tcase_add_test(tc, test_sp_tokenizer_config_equal_transformers_autotokenizer);
    tcase_add_test(tc, test_stories260k_sp_ids_equal_hf);
    tcase_add_test(tc, test_stories260k_llama2_layout_ids_equal_hf);
    tcase_add_test(tc, test_sp_minis_equal_hf);
    tcase_add_test(tc, test_text_only_llama_sp_directory_opens);
    tcase_add_test(tc, test_saved_by_transformers5_config_accepted);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[4200]; /* the model directories make_dir left */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/tok_dir_*_*", td_env("CH_BIN", "/tmp"));
    if (system(cmd) != 0) fprintf(stderr, "could not remove the test directories\n");
    return failed ? 1 : 0;
}
