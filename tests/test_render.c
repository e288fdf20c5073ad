/* test_render.c - the rendering rule (io/render_rule.h, src/extract/corpus.c) against the oracles.
 *
 * tests/golden/render_golden.jsonl (made by tests/golden/make_render_golden.py with `tokenizers`
 * and transformers' apply_chat_template) holds, for the records of tests/golden/render_cases.jsonl
 * (pool conversations and text records), the token ids each rule must give with the Llama 3.1 and
 * Qwen3 tokenizers; ch_corpus_record must give them id for id. Also: the cut of --truncate, a
 * conversation with no prompt turn, and the rule's attributes written, read and compared. */
#include <check.h>
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "corpus.h"
#include "err.h"
#include "render_rule.h"
#include "tok_testdata.h"

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert(fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

/* The line of render_cases.jsonl whose id is id (a pointer into cases, NUL-terminated copy). */
static char *case_line(const char *cases, const char *id) {
    char key[160];
    snprintf(key, sizeof key, "{\"id\": \"%s\"", id);
    const char *p = strstr(cases, key);
    ck_assert_msg(p != NULL, "no case %s", id);
    const char *e = strchr(p, '\n');
    return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

START_TEST(test_every_rule_gives_the_oracles_ids) {
    char path[4200];
    const char *src = td_env("CH_SRC", ".");
    snprintf(path, sizeof path, "%s/tests/golden/render_cases.jsonl", src);
    char *cases = read_all(path);
    snprintf(path, sizeof path, "%s/tests/golden/render_golden.jsonl", src);
    char *gold = read_all(path);
    ch_tokenizer *tok[2] = {NULL, NULL};
    const char *fams[2] = {"llama3_1", "qwen3"};
    for (int i = 0; i < 2; i++) {
        const char *tj = td_tokenizer_json(fams[i]);
        ck_assert_msg(tj && ch_tok_load(tj, &tok[i]) == 0, "load %s: %s", fams[i], ch_err_msg());
    }
    int checked = 0, bad = 0, chat = 0, fam_seen[2] = {0, 0};
    char *end = gold + strlen(gold);
    for (char *line = gold, *nl; line < end && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) nl = end;
        *nl = 0;
        cJSON *g = cJSON_Parse(line);
        ck_assert(g != NULL);
        int f = !strcmp(cJSON_GetObjectItem(g, "family")->valuestring, "qwen3");
        ch_render_rule rule;
        ck_assert_int_eq(ch_render_rule_make(cJSON_GetObjectItem(g, "template")->valuestring,
                                             cJSON_GetObjectItem(g, "span")->valuestring,
                                             cJSON_GetObjectItem(g, "cue")->valuestring, &rule), 0);
        ch_corpus_render how = {tok[f], ch_tok_chat_style(tok[f]), &rule, ch_tok_vocab_size(tok[f]), -1};
        char *c = case_line(cases, cJSON_GetObjectItem(g, "id")->valuestring);
        ch_record r;
        int rc = ch_corpus_record(c, strlen(c), "render_cases.jsonl", 1, &how, &r);
        ck_assert_msg(rc == 0, "%s: %s", c, ch_err_msg());
        const cJSON *want = cJSON_GetObjectItem(g, "ids");
        int same = cJSON_GetArraySize(want) == r.n_tokens, k = 0;
        for (const cJSON *it = want->child; same && it; it = it->next, k++) same = (int32_t)it->valueint == r.tokens[k];
        if (!same && bad++ < 5)
            fprintf(stderr, "%s %s/%s cue '%s' %s: %d ids, oracle %d\n", fams[f], rule.template_name, rule.span,
                    rule.cue, r.id, r.n_tokens, cJSON_GetArraySize(want));
        checked++, fam_seen[f]++, chat += ch_render_rule_is_chat(&rule);
        ch_record_free(&r);
        free(c);
        cJSON_Delete(g);
    }
    ck_assert_msg(bad == 0, "%d of %d renderings differ from the oracles", bad, checked);
    ck_assert_int_ge(checked, 60);
    ck_assert(fam_seen[0] > 20 && fam_seen[1] > 20 && chat > 20);
    ch_tok_free(tok[0]), ch_tok_free(tok[1]);
    free(cases), free(gold);
}
END_TEST

START_TEST(test_cut_keeps_the_last_or_first_tokens) {
    ch_record r = {0};
    r.tokens = malloc(sizeof(int32_t) * 10);
    for (int i = 0; i < 10; i++) r.tokens[i] = 100 + i;
    r.n_tokens = 10;
    ck_assert_int_eq(ch_record_cut(&r, 10, CH_TRUNC_LEFT, -1), 0); /* not longer: untouched */
    ck_assert_int_eq(ch_record_cut(&r, 4, CH_TRUNC_NONE, -1), 0);
    ck_assert_int_eq(r.n_tokens, 10);
    ck_assert_int_eq(ch_record_cut(&r, 4, CH_TRUNC_LEFT, 999), 1); /* no leading BOS: the last 4 */
    ck_assert_int_eq(r.n_tokens, 4);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(r.tokens[i], 106 + i);
    ck_assert_int_eq(ch_record_cut(&r, 3, CH_TRUNC_RIGHT, 106), 1); /* right: the first 3, BOS or not */
    ck_assert_int_eq(r.n_tokens, 3);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(r.tokens[i], 106 + i);
    /* a leading BOS stays, with the last limit - 1 tokens after it */
    for (int i = 0; i < 10; i++) r.tokens[i] = 100 + i;
    r.n_tokens = 10;
    ck_assert_int_eq(ch_record_cut(&r, 4, CH_TRUNC_LEFT, 100), 1);
    ck_assert_int_eq(r.n_tokens, 4);
    ck_assert_int_eq(r.tokens[0], 100);
    for (int i = 1; i < 4; i++) ck_assert_int_eq(r.tokens[i], 106 + i);
    ch_record_free(&r);
}
END_TEST

/* The BOS id is the post-processor's first token: Llama 3.1 puts <|begin_of_text|>, Qwen3 nothing. */
START_TEST(test_bos_of_the_tokenizers) {
    ch_tokenizer *t = NULL;
    ck_assert_int_eq(ch_tok_load(td_tokenizer_json("llama3_1"), &t), 0);
    ck_assert_int_eq(ch_corpus_bos(t), ch_tok_token_id(t, "<|begin_of_text|>"));
    ck_assert_int_eq(ch_corpus_bos(t), 128000);
    ch_tok_free(t);
    ck_assert_int_eq(ch_tok_load(td_tokenizer_json("qwen3"), &t), 0);
    ck_assert_int_eq(ch_corpus_bos(t), -1);
    ch_tok_free(t);
    ck_assert_int_eq(ch_corpus_bos(NULL), -1);
}
END_TEST

START_TEST(test_no_prompt_turn_refused_by_name) {
    ch_tokenizer *t = NULL;
    ck_assert_int_eq(ch_tok_load(td_tokenizer_json("llama3_1"), &t), 0);
    ch_render_rule rule;
    ch_render_rule_default(&rule);
    ch_corpus_render how = {t, ch_tok_chat_style(t), &rule, ch_tok_vocab_size(t), -1};
    const char *line = "{\"id\":\"lonely\",\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}]}";
    ch_record r;
    ck_assert_int_eq(ch_corpus_record(line, strlen(line), "c.jsonl", 7, &how, &r), CH_EFORMAT);
    ck_assert_msg(strstr(ch_err_msg(), "c.jsonl:7") && strstr(ch_err_msg(), "'lonely'"), "%s", ch_err_msg());
    /* span full renders the response: accepted */
    ck_assert_int_eq(ch_render_rule_make("plain", "full", "Answer:", &rule), 0);
    ck_assert_int_eq(ch_corpus_record(line, strlen(line), "c.jsonl", 7, &how, &r), 0);
    ch_record_free(&r);
    ch_tok_free(t);
}
END_TEST

START_TEST(test_rule_attributes_round_trip_and_compare) {
    ch_render_rule a, b, c, none;
    ck_assert_int_eq(ch_render_rule_make("chat", "prompt", "Answer:", &a), 0);
    ck_assert_str_eq(a.cue, ""); /* the cue is not used under chat */
    ck_assert_int_eq(ch_render_rule_make("html", "prompt", "", &b), CH_EARG);
    ck_assert_int_eq(ch_render_rule_make("plain", "all", "", &b), CH_EARG);
    char path[256];
    snprintf(path, sizeof path, "/tmp/ch_render_rule_%d.h5", (int)getpid());
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert_int_eq(ch_render_rule_read(f, path, &none), 0);
    ck_assert_int_eq(none.recorded, 0);
    ck_assert_int_eq(ch_render_rule_write(f, path, &a), 0);
    H5Fclose(f);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert_int_eq(ch_render_rule_read(f, path, &b), 0);
    H5Fclose(f);
    ck_assert(b.recorded && !strcmp(b.template_name, "chat") && !strcmp(b.span, "prompt") && !b.cue[0]);
    ck_assert_int_eq(ch_render_rule_check("mix", "m.h5", &a, "pool archive", "p.h5", &b, 1), 0);
    ch_render_rule_default(&c);
    ck_assert_int_eq(ch_render_rule_check("mix", "m.h5", &a, "pool archive", "p.h5", &c, 0), CH_EMISMATCH);
    const char *msg = ch_err_msg();
    ck_assert_msg(strstr(msg, "m.h5") && strstr(msg, "p.h5") && strstr(msg, "template chat") &&
                  strstr(msg, "template plain"), "%s", msg);
    ck_assert_int_eq(ch_render_rule_check("mix", "m.h5", &a, "pool archive", "p.h5", &none, 0), CH_EMISMATCH);
    ck_assert_msg(strstr(ch_err_msg(), "no render rule recorded: re-extract"), "%s", ch_err_msg());
    /* span is compared only when asked (select accepts a span-full pool) */
    ck_assert_int_eq(ch_render_rule_make("chat", "full", "", &c), 0);
    ck_assert_int_eq(ch_render_rule_check("mix", "m.h5", &a, "pool archive", "p.h5", &c, 0), 0);
    ck_assert_int_eq(ch_render_rule_check("mix", "m.h5", &a, "pool archive", "p.h5", &c, 1), CH_EMISMATCH);
    ck_assert_int_eq(ch_render_rule_need_prompt("probe", "probing archive", "p.h5", &c), CH_EMISMATCH);
    ck_assert_msg(strstr(ch_err_msg(), "span full") && strstr(ch_err_msg(), "p.h5"), "%s", ch_err_msg());
    /* a rule recorded in part is a damaged file */
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "render_cue");
    ck_assert_int_eq(ch_render_rule_read(f, path, &b), CH_EFORMAT);
    H5Fclose(f);
    unlink(path);
}
END_TEST

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const TTest *const tests[] = {
        test_every_rule_gives_the_oracles_ids,
        test_cut_keeps_the_last_or_first_tokens,
        test_bos_of_the_tokenizers,
        test_no_prompt_turn_refused_by_name,
        test_rule_attributes_round_trip_and_compare,
    };
    return ch_check_tests("render", 120, tests, (int)(sizeof tests / sizeof tests[0]));
}
