/* prepare_readers.c - readers for the BBH chain-of-thought exemplars (the BBH target set that is
 * no evaluation data) and for the probing sources users have besides the original five: RACE,
 * SciQ, Cosmos QA, HellaSwag, MedQA. Each keeps the structured fields (passage, question, choices,
 * answer) in meta through ch_prep_qa, so probeset can render every class with one template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "err.h"
#include "prepare_fmt.h"

/* ---- BBH cot-prompts/NAME.txt --------------------------------------------------------------
 * [canary line, "-----" line,] the task description, then three blocks
 *   Q: <question, may run over several lines>
 *   A: <reasoning ending in "So the answer is X.">
 * separated by blank lines. */

typedef struct {
    char **lines;
    long n;
} text_lines;

/* Split buf in place at '\n' (a '\r' before it is dropped). */
static int split_lines(char *buf, size_t len, text_lines *t) {
    long cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += buf[i] == '\n';
    t->lines = malloc((size_t)cap * sizeof *t->lines);
    if (!t->lines) CH_FAIL(CH_ENOMEM, "out of memory");
    t->n = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = 0;
        *e = 0;
        t->lines[t->n++] = p;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* Lines [a, b) joined by '\n', trailing blank lines dropped; skip bytes of the first line. */
static int join_lines(const text_lines *t, long a, long b, size_t skip, char **out) {
    while (b > a && !t->lines[b - 1][0])
        b--;
    ch_prep_sb s = {0};
    int rc = ch_prep_sb_add(&s, "");
    for (long i = a; i < b && !rc; i++) {
        if (i > a) rc = ch_prep_sb_add(&s, "\n");
        if (!rc) rc = ch_prep_sb_add(&s, t->lines[i] + (i == a ? skip : 0));
    }
    if (rc) free(s.s);
    else *out = s.s;
    return rc;
}

/* "... So the answer is X." -> "X" (the last occurrence; one final '.' dropped). */
static int cot_answer(const char *cot, const char *where, char **out) {
    static const char key[] = "So the answer is ";
    const char *p = NULL;
    for (const char *q = strstr(cot, key); q; q = strstr(q + 1, key))
        p = q;
    if (!p) CH_FAIL(CH_EFORMAT, "%s: the answer does not say \"So the answer is ...\"", where);
    p += sizeof key - 1;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\n')) n--;
    if (n && p[n - 1] == '.') n--;
    if (!n) CH_FAIL(CH_EFORMAT, "%s: empty answer after \"So the answer is\"", where);
    if (!(*out = strndup(p, n))) CH_FAIL(CH_ENOMEM, "out of memory");
    return 0;
}

static int cot_emit(ch_prep_out *w, const ch_prepare_opts *o, const char *stem, long idx, const char *question,
                    const char *cot, const char *where) {
    char *answer = NULL;
    CH_TRY(cot_answer(cot, where, &answer));
    char id[1024], task[600];
    snprintf(id, sizeof id, "bbh-cot/%s/%ld", stem, idx);
    snprintf(task, sizeof task, "bbh/%s", stem);
    ch_prep_qa qa = {.id = id, .label = o->label, .task = ch_prep_pick(o->task, task), .question = question,
                     .answer = answer, .cue = ch_prep_pick(o->cue, "Answer:"), .extra_key = "cot", .extra_val = cot};
    int rc = ch_prep_qa_emit(w, &qa);
    free(answer);
    return rc;
}

/* One Q/A block starting at line *i (a "Q: " line); *i moves past it. */
static int cot_block(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem,
                     const text_lines *t, long *i, long idx) {
    long q = *i, a = q + 1;
    while (a < t->n && strncmp(t->lines[a], "A: ", 3) && strncmp(t->lines[a], "Q: ", 3))
        a++;
    if (a == t->n || t->lines[a][0] == 'Q') CH_FAIL(CH_EFORMAT, "%s:%ld: 'Q:' block without an 'A:' line", path, q + 1);
    long e = a + 1;
    while (e < t->n && strncmp(t->lines[e], "Q: ", 3))
        e++;
    char *question = NULL, *cot = NULL, where[1100];
    snprintf(where, sizeof where, "%s:%ld", path, a + 1);
    int rc = join_lines(t, q, a, 3, &question);
    if (!rc) rc = join_lines(t, a, e, 3, &cot);
    if (!rc) rc = cot_emit(w, o, stem, idx, question, cot, where);
    free(question);
    free(cot);
    *i = e;
    return rc;
}

int ch_prep_conv_bbh_cot(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    char *buf;
    size_t len;
    CH_TRY(ch_prep_read_text(path, &buf, &len));
    text_lines t = {0};
    int rc = split_lines(buf, len, &t);
    long i = 0, idx = 0;
    while (!rc && i < t.n && strncmp(t.lines[i], "Q: ", 3)) {
        if (!strncmp(t.lines[i], "A: ", 3))
            rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s:%ld: 'A:' line before any 'Q:'", path, i + 1);
        i++;
    }
    if (!rc && i == t.n)
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: no exemplar (no line starts with 'Q: ')", path);
    while (!rc && i < t.n)
        rc = cot_block(w, o, path, stem, &t, &i, idx++);
    free(t.lines);
    free(buf);
    return rc;
}

/* ---- RACE ----------------------------------------------------------------------------------
 * As published: one JSON object per file (RACE/{train,dev,test}/{high,middle}/N.txt)
 *   {"article", "questions": [...], "options": [[4 strings]...], "answers": ["A"...], "id": "high1.txt"}
 * The files of high/ and middle/ share names, so the id's middle part is the article's own id
 * without ".txt" (race/high1/0), not the file name. Also read: JSONL of those objects (ids count
 * the questions of the file), and JSONL of the per-question Hugging Face rows
 *   {"example_id", "article", "question", "options": [...], "answer"}. */

static int race_question(ch_prep_out *w, const ch_prepare_opts *o, const char *id, const char *source_id,
                         const char *article, const char *question, const cJSON *options, const char *answer,
                         const char *where) {
    const char *choices[26];
    int n;
    if (!cJSON_IsArray(options)) CH_FAIL(CH_EFORMAT, "%s: the options of a question are not an array", where);
    CH_TRY(ch_prep_get_choices(options, "options", where, choices, &n));
    if (answer && (strlen(answer) != 1 || answer[0] < 'A' || answer[0] >= 'A' + n))
        CH_FAIL(CH_EFORMAT, "%s: answer '%.20s' is not one of the %d option letters", where, answer, n);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(o->label, "reading"), .task = o->task, .source_id = source_id,
                     .passage = article, .question = question, .choices = choices, .nchoices = n,
                     .answer = answer, .cue = ch_prep_pick(o->cue, "Answer:")};
    return ch_prep_qa_emit(w, &qa);
}

/* An article object: every question a record; *idx counts them; id_stem names them. */
static int race_article(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *obj, const char *where,
                        const char *id_stem, long *idx) {
    const char *article, *source_id;
    const cJSON *qs, *opts, *ans;
    CH_TRY(ch_prep_get_str(obj, "article", where, 1, &article));
    CH_TRY(ch_prep_get_str(obj, "id", where, 0, &source_id));
    CH_TRY(ch_prep_get_array(obj, "questions", where, &qs));
    CH_TRY(ch_prep_get_array(obj, "options", where, &opts));
    CH_TRY(ch_prep_get_array(obj, "answers", where, &ans));
    int n = cJSON_GetArraySize(qs);
    if (cJSON_GetArraySize(opts) != n || cJSON_GetArraySize(ans) != n)
        CH_FAIL(CH_EFORMAT, "%s: %d questions but %d option lists and %d answers", where, n,
                cJSON_GetArraySize(opts), cJSON_GetArraySize(ans));
    for (int k = 0; k < n; k++) {
        const cJSON *q = cJSON_GetArrayItem(qs, k), *a = cJSON_GetArrayItem(ans, k);
        char qw[1100], id[1024];
        snprintf(qw, sizeof qw, "%s: questions[%d]", where, k);
        if (!cJSON_IsString(q) || !cJSON_IsString(a)) CH_FAIL(CH_EFORMAT, "%s: question or answer is not a string", qw);
        snprintf(id, sizeof id, "race/%s/%ld", id_stem, (*idx)++);
        CH_TRY(race_question(w, o, id, source_id, article, q->valuestring, cJSON_GetArrayItem(opts, k), a->valuestring,
                             qw));
    }
    return 0;
}

static int race_line(const ch_prep_line *c, const cJSON *obj) {
    if (cJSON_GetObjectItemCaseSensitive(obj, "questions"))
        return race_article(c->w, c->o, obj, c->where, c->stem, c->next_idx);
    const char *article, *question, *answer, *source_id;
    CH_TRY(ch_prep_get_str(obj, "article", c->where, 1, &article));
    CH_TRY(ch_prep_get_str(obj, "question", c->where, 1, &question));
    CH_TRY(ch_prep_get_str(obj, "answer", c->where, 0, &answer));
    CH_TRY(ch_prep_get_str(obj, "example_id", c->where, 0, &source_id));
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(obj, "options");
    if (!opts) CH_FAIL(CH_EFORMAT, "%s: missing 'options' (neither a RACE article nor a question row)", c->where);
    char id[1024];
    snprintf(id, sizeof id, "race/%s/%ld", c->stem, (*c->next_idx)++);
    return race_question(c->w, c->o, id, source_id, article, question, opts, answer, c->where);
}

int ch_prep_conv_race(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    if (ch_prep_ends_with(path, ".jsonl")) return ch_prep_jsonl_each(w, o, path, stem, race_line);
    cJSON *root;
    CH_TRY(ch_prep_read_json(path, 1, &root));
    const char *aid = NULL;
    int rc = ch_prep_get_str(root, "id", path, 0, &aid);
    char id_stem[512];
    snprintf(id_stem, sizeof id_stem, "%s", aid && *aid ? aid : stem);
    if (ch_prep_ends_with(id_stem, ".txt")) id_stem[strlen(id_stem) - 4] = 0;
    long idx = 0;
    if (!rc) rc = race_article(w, o, root, path, id_stem, &idx);
    cJSON_Delete(root);
    return rc;
}

/* ---- SciQ: a JSON list of {question, distractor1..3, correct_answer, support} --------------
 * The correct answer goes at position fnv1a64(id) mod 4 among the distractors (kept in order), so
 * its letter is spread over A-D yet fixed by the id alone. */

static int sciq_one(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *ex, const char *where, const char *stem,
                    long idx) {
    if (!cJSON_IsObject(ex)) CH_FAIL(CH_EFORMAT, "%s: not an object", where);
    const char *q, *correct, *support, *d[3];
    CH_TRY(ch_prep_get_str(ex, "question", where, 1, &q));
    CH_TRY(ch_prep_get_str(ex, "correct_answer", where, 1, &correct));
    CH_TRY(ch_prep_get_str(ex, "support", where, 0, &support));
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "distractor%d", i + 1);
        CH_TRY(ch_prep_get_str(ex, key, where, 1, &d[i]));
    }
    char id[1024];
    snprintf(id, sizeof id, "sciq/%s/%ld", stem, idx);
    int pos = (int)(ch_prep_fnv1a64(id) % 4);
    const char *choices[4];
    for (int i = 0, k = 0; i < 4; i++)
        choices[i] = i == pos ? correct : d[k++];
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(o->label, "science"), .task = o->task, .question = q,
                     .choices = choices, .nchoices = 4, .answer = ch_prep_letter(pos),
                     .cue = ch_prep_pick(o->cue, "Answer:")};
    qa.extra_key = "support", qa.extra_val = support;
    return ch_prep_qa_emit(w, &qa);
}

int ch_prep_conv_sciq(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    cJSON *root;
    CH_TRY(ch_prep_read_json(path, 0, &root));
    int rc = 0;
    long idx = 0;
    const cJSON *ex;
    cJSON_ArrayForEach(ex, root) {
        char where[1024];
        snprintf(where, sizeof where, "%s: [%ld]", path, idx);
        if ((rc = sciq_one(w, o, ex, where, stem, idx))) break;
        idx++;
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- Cosmos QA: CSV with the header id,context,question,answer0..answer3[,label], or JSONL of
 * the same keys (label an integer or a digit string; absent in the unlabelled test split) ---- */

static int cosmos_emit(ch_prep_out *w, const ch_prepare_opts *o, const char *stem, long idx, const char *where,
                       const char *source_id, const char *context, const char *question, const char *const *ans,
                       const char *label) {
    const char *answer = NULL;
    if (label && *label) {
        if (strlen(label) != 1 || label[0] < '0' || label[0] > '3')
            CH_FAIL(CH_EFORMAT, "%s: label '%.20s' is not 0, 1, 2 or 3", where, label);
        answer = ch_prep_letter(label[0] - '0');
    }
    char id[1024];
    snprintf(id, sizeof id, "cosmosqa/%s/%ld", stem, idx);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(o->label, "reading"), .task = o->task, .source_id = source_id,
                     .passage = context, .question = question, .choices = ans, .nchoices = 4, .answer = answer,
                     .cue = ch_prep_pick(o->cue, "Answer:")};
    return ch_prep_qa_emit(w, &qa);
}

static int cosmos_line(const ch_prep_line *c, const cJSON *obj) {
    const char *f[7];
    static const char *const keys[7] = {"id", "context", "question", "answer0", "answer1", "answer2", "answer3"};
    for (int i = 0; i < 7; i++)
        CH_TRY(ch_prep_get_str(obj, keys[i], c->where, i > 0, &f[i]));
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(obj, "label");
    char lbuf[32] = "";
    if (cJSON_IsNumber(lab))
        snprintf(lbuf, sizeof lbuf, "%d", lab->valueint);
    else if (cJSON_IsString(lab))
        snprintf(lbuf, sizeof lbuf, "%.30s", lab->valuestring);
    else if (lab && !cJSON_IsNull(lab))
        CH_FAIL(CH_EFORMAT, "%s: 'label' is neither a number nor a string", c->where);
    return cosmos_emit(c->w, c->o, c->stem, c->idx, c->where, f[0], f[1], f[2], f + 3, lbuf);
}

/* Column of each wanted name in the header; -1 when absent (only label may be). */
static int cosmos_header(const ch_csv *c, const char *path, long line, int col[8]) {
    static const char *const names[8] = {"id", "context", "question", "answer0", "answer1", "answer2", "answer3",
                                         "label"};
    for (int k = 0; k < 8; k++) {
        col[k] = -1;
        for (int i = 0; i < c->nfields; i++)
            if (!strcmp(c->fields[i], names[k])) col[k] = i;
        if (col[k] < 0 && k < 7)
            CH_FAIL(CH_EFORMAT, "%s:%ld: the header has no column '%s' (expected id,context,question,answer0..3,label)",
                    path, line, names[k]);
    }
    return 0;
}

int ch_prep_conv_cosmosqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    if (ch_prep_ends_with(path, ".jsonl")) return ch_prep_jsonl_each(w, o, path, stem, cosmos_line);
    char *buf;
    size_t len;
    CH_TRY(ch_prep_read_text(path, &buf, &len));
    ch_csv c;
    ch_csv_init(&c, path, buf, len);
    int rc = 0, has, col[8];
    long line;
    CH_TRY_GOTO(ch_csv_next(&c, &has, &line), done);
    if (!has) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: empty file (expected a header line)", path);
    CH_TRY_GOTO(cosmos_header(&c, path, line, col), done);
    int ncol = c.nfields;
    for (long idx = 0;; idx++) {
        CH_TRY_GOTO(ch_csv_next(&c, &has, &line), done);
        if (!has) break;
        if (c.nfields != ncol)
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: %d columns, the header has %d", path, line, c.nfields, ncol);
        char where[1100];
        snprintf(where, sizeof where, "%s:%ld", path, line);
        const char *ans[4] = {c.fields[col[3]], c.fields[col[4]], c.fields[col[5]], c.fields[col[6]]};
        CH_TRY_GOTO(cosmos_emit(w, o, stem, idx, where, c.fields[col[0]], c.fields[col[1]], c.fields[col[2]], ans,
                                col[7] >= 0 ? c.fields[col[7]] : NULL),
                    done);
    }
done:
    ch_csv_free(&c);
    free(buf);
    return rc;
}

/* ---- HellaSwag: JSONL {ind, activity_label, ctx_a, ctx_b, ctx, split, split_type, label?,
 * endings, source_id}; the question is ctx (the context to complete), the choices the endings -- */

static int hellaswag_one(const ch_prep_line *c, const cJSON *obj) {
    const char *ctx, *activity, *source_id, *choices[26];
    int n;
    const cJSON *endings;
    CH_TRY(ch_prep_get_str(obj, "ctx", c->where, 1, &ctx));
    CH_TRY(ch_prep_get_str(obj, "activity_label", c->where, 0, &activity));
    CH_TRY(ch_prep_get_str(obj, "source_id", c->where, 0, &source_id));
    CH_TRY(ch_prep_get_array(obj, "endings", c->where, &endings));
    CH_TRY(ch_prep_get_choices(endings, "endings", c->where, choices, &n));
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(obj, "label");
    const char *answer = NULL;
    if (lab && !cJSON_IsNull(lab) && !(cJSON_IsString(lab) && !lab->valuestring[0])) { /* test: "", null, none */
        int k = cJSON_IsNumber(lab) ? lab->valueint
                : cJSON_IsString(lab) && strlen(lab->valuestring) == 1 ? lab->valuestring[0] - '0'
                                                                        : -1;
        if (k < 0 || k >= n) CH_FAIL(CH_EFORMAT, "%s: 'label' is not the index of one of the %d endings", c->where, n);
        answer = ch_prep_letter(k);
    }
    char id[1024];
    snprintf(id, sizeof id, "hellaswag/%s/%ld", c->stem, c->idx);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(c->o->label, "commonsense"), .task = c->o->task,
                     .source_id = source_id, .question = ctx, .choices = choices, .nchoices = n, .answer = answer,
                     .cue = ch_prep_pick(c->o->cue, "Answer:")};
    qa.extra_key = "activity_label", qa.extra_val = activity;
    return ch_prep_qa_emit(c->w, &qa);
}

int ch_prep_conv_hellaswag(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return ch_prep_jsonl_each(w, o, path, stem, hellaswag_one);
}

/* ---- MedQA (USMLE) as published: JSONL {question, options: {"A": ..}, answer, answer_idx,
 * meta_info}; the choices are the options in the order of their keys as written -------------- */

static int medqa_one(const ch_prep_line *c, const cJSON *obj) {
    const char *q, *answer, *meta_info, *labels[26], *choices[26];
    CH_TRY(ch_prep_get_str(obj, "question", c->where, 1, &q));
    CH_TRY(ch_prep_get_str(obj, "answer_idx", c->where, 0, &answer));
    CH_TRY(ch_prep_get_str(obj, "meta_info", c->where, 0, &meta_info));
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(obj, "options"), *v;
    if (!cJSON_IsObject(opts)) CH_FAIL(CH_EFORMAT, "%s: 'options' is not an object {\"A\": ...}", c->where);
    int n = 0, found = 0;
    cJSON_ArrayForEach(v, opts) {
        if (n == 26) CH_FAIL(CH_EFORMAT, "%s: more than 26 options", c->where);
        if (!cJSON_IsString(v)) CH_FAIL(CH_EFORMAT, "%s: option '%s' is not a string", c->where, v->string);
        labels[n] = v->string;
        choices[n++] = v->valuestring;
        found |= answer && !strcmp(v->string, answer);
    }
    if (n < 2) CH_FAIL(CH_EFORMAT, "%s: %d options (expected 2 to 26)", c->where, n);
    if (answer && !found) CH_FAIL(CH_EFORMAT, "%s: answer_idx '%.20s' is not one of the option keys", c->where, answer);
    char id[1024];
    snprintf(id, sizeof id, "medqa/%s/%ld", c->stem, c->idx);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(c->o->label, "professional"), .task = c->o->task, .question = q,
                     .labels = labels, .choices = choices, .nchoices = n, .answer = answer,
                     .cue = ch_prep_pick(c->o->cue, "Answer:")};
    qa.extra_key = "meta_info", qa.extra_val = meta_info;
    return ch_prep_qa_emit(c->w, &qa);
}

int ch_prep_conv_medqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return ch_prep_jsonl_each(w, o, path, stem, medqa_one);
}
