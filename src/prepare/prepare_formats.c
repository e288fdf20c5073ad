/* prepare_formats.c - the readers of the datasets capheads started with (GSM8K, MMLU, BBH, ARC,
 * CommonsenseQA, SQuAD, the LESS pool) and the table of every format; the probing sources added
 * later are in prepare_readers.c. See prepare.h for the record shape.
 *
 * Each converter reads one source file, builds records and hands them to ch_prep_emit. Messages
 * name the file and the line (JSONL, CSV) or the JSON path of the record (whole-file JSON such as
 * BBH and SQuAD, where a record has no line of its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "err.h"
#include "prepare_fmt.h"

/* ---- GSM8K: {"question", "answer"} per line ------------------------------------------------ */

static int gsm8k_one(const ch_prep_line *c, const cJSON *obj) {
    const char *q, *a;
    CH_TRY(ch_prep_get_str(obj, "question", c->where, 1, &q));
    CH_TRY(ch_prep_get_str(obj, "answer", c->where, 1, &a));
    char id[1024];
    snprintf(id, sizeof id, "gsm8k/%s/%ld", c->stem, c->idx);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(c->o->label, "math"), .task = c->o->task, .question = q,
                     .answer = a, .cue = ch_prep_pick(c->o->cue, "Answer:")};
    return ch_prep_qa_emit(c->w, &qa);
}

static int conv_gsm8k(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return ch_prep_jsonl_each(w, o, path, stem, gsm8k_one);
}

/* ---- MMLU: headerless CSV question,A,B,C,D,answer in SUBJECT_{dev,val,test}.csv ------------ */

static int conv_mmlu(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    /* the subject is the file stem without its split suffix */
    char subject[512];
    snprintf(subject, sizeof subject, "%s", stem);
    static const char *const splits[] = {"_dev", "_val", "_test"};
    for (int i = 0; i < 3; i++) {
        size_t ls = strlen(subject), lx = strlen(splits[i]);
        if (ls > lx && !strcmp(subject + ls - lx, splits[i])) {
            subject[ls - lx] = 0;
            break;
        }
    }
    char task[600];
    snprintf(task, sizeof task, "mmlu/%s", subject);

    char *buf;
    size_t len;
    CH_TRY(ch_prep_read_text(path, &buf, &len));
    int rc = 0;
    ch_csv c;
    ch_csv_init(&c, path, buf, len);
    for (long idx = 0;; idx++) {
        int has;
        long line;
        CH_TRY_GOTO(ch_csv_next(&c, &has, &line), done);
        if (!has) break;
        if (c.nfields != 6)
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: expected 6 columns (question,A,B,C,D,answer), found %d", path,
                         line, c.nfields);
        const char *ans = c.fields[5];
        if (strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D')
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: answer '%.20s' is not one of A, B, C, D", path, line, ans);
        char id[1024];
        snprintf(id, sizeof id, "mmlu/%s/%ld", stem, idx);
        const char *choices[4] = {c.fields[1], c.fields[2], c.fields[3], c.fields[4]};
        ch_prep_qa qa = {.id = id, .label = o->label, .task = ch_prep_pick(o->task, task), .question = c.fields[0],
                         .choices = choices, .nchoices = 4, .answer = ans, .cue = ch_prep_pick(o->cue, "Answer:")};
        CH_TRY_GOTO(ch_prep_qa_emit(w, &qa), done);
    }
done:
    ch_csv_free(&c);
    free(buf);
    return rc;
}

/* ---- ARC and CommonsenseQA, two layouts per line, told apart by the type of "question":
 *   AI2's release: {"id", "question": {"stem", "choices": [{"text","label"}], "question_concept"?},
 *                   "answerKey"?}
 *   Hugging Face Hub (allenai/ai2_arc, tau/commonsense_qa): {"id", "question": "...",
 *                   "question_concept"?, "choices": {"label": [...], "text": [...]}, "answerKey"} */

typedef struct {
    const char *stem, *concept;
    const char *labels[26], *texts[26];
    int n;
} arc_fields;

static int arc_ai2(const cJSON *q, const char *where, int want_concept, arc_fields *f) {
    CH_TRY(ch_prep_get_str(q, "stem", where, 1, &f->stem));
    if (want_concept) CH_TRY(ch_prep_get_str(q, "question_concept", where, 0, &f->concept));
    const cJSON *arr;
    CH_TRY(ch_prep_get_array(q, "choices", where, &arr));
    f->n = cJSON_GetArraySize(arr);
    if (f->n < 2 || f->n > 26) CH_FAIL(CH_EFORMAT, "%s: %d choices (expected 2 to 26)", where, f->n);
    int k = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, arr) {
        if (!cJSON_IsObject(ch)) CH_FAIL(CH_EFORMAT, "%s: choice %d is not an object", where, k);
        CH_TRY(ch_prep_get_str(ch, "label", where, 1, &f->labels[k]));
        CH_TRY(ch_prep_get_str(ch, "text", where, 1, &f->texts[k]));
        k++;
    }
    return 0;
}

static int arc_hf(const cJSON *obj, const char *where, int want_concept, arc_fields *f) {
    CH_TRY(ch_prep_get_str(obj, "question", where, 1, &f->stem));
    if (want_concept) CH_TRY(ch_prep_get_str(obj, "question_concept", where, 0, &f->concept));
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(obj, "choices");
    if (!cJSON_IsObject(ch)) CH_FAIL(CH_EFORMAT, "%s: 'choices' is not an object {label, text}", where);
    const cJSON *labels, *texts;
    int nl;
    CH_TRY(ch_prep_get_array(ch, "label", where, &labels));
    CH_TRY(ch_prep_get_array(ch, "text", where, &texts));
    CH_TRY(ch_prep_get_choices(labels, "choices.label", where, f->labels, &nl));
    CH_TRY(ch_prep_get_choices(texts, "choices.text", where, f->texts, &f->n));
    if (nl != f->n) CH_FAIL(CH_EFORMAT, "%s: %d choice labels for %d choice texts", where, nl, f->n);
    return 0;
}

static int arc_like_one(const ch_prep_line *c, const cJSON *obj, const char *dataset, const char *dflt_label,
                        int want_concept) {
    const char *where = c->where, *source_id, *answer;
    CH_TRY(ch_prep_get_str(obj, "id", where, 0, &source_id));
    CH_TRY(ch_prep_get_str(obj, "answerKey", where, 0, &answer));
    if (answer && !*answer) answer = NULL; /* the Hub's unlabelled test rows */
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "question");
    if (!q) CH_FAIL(CH_EFORMAT, "%s: missing 'question'", where);
    arc_fields f = {0};
    if (cJSON_IsObject(q))
        CH_TRY(arc_ai2(q, where, want_concept, &f));
    else if (cJSON_IsString(q))
        CH_TRY(arc_hf(obj, where, want_concept, &f));
    else
        CH_FAIL(CH_EFORMAT, "%s: 'question' is neither an object (AI2 layout) nor a string (Hugging Face layout)",
                where);
    if (answer) {
        int found = 0;
        for (int i = 0; i < f.n; i++)
            found |= !strcmp(f.labels[i], answer);
        if (!found) CH_FAIL(CH_EFORMAT, "%s: answerKey '%.20s' is not one of the choice labels", where, answer);
    }
    char id[1024];
    snprintf(id, sizeof id, "%s/%s/%ld", dataset, c->stem, c->idx);
    ch_prep_qa qa = {.id = id, .label = ch_prep_pick(c->o->label, dflt_label), .task = c->o->task,
                     .source_id = source_id, .question = f.stem, .labels = f.labels, .choices = f.texts,
                     .nchoices = f.n, .answer = answer, .cue = ch_prep_pick(c->o->cue, "Answer:")};
    qa.extra_key = "concept", qa.extra_val = f.concept;
    return ch_prep_qa_emit(c->w, &qa);
}

static int arc_one(const ch_prep_line *c, const cJSON *obj) { return arc_like_one(c, obj, "arc", "science", 0); }

static int csqa_one(const ch_prep_line *c, const cJSON *obj) {
    return arc_like_one(c, obj, "csqa", "commonsense", 1);
}

static int conv_arc(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return ch_prep_jsonl_each(w, o, path, stem, arc_one);
}

static int conv_csqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return ch_prep_jsonl_each(w, o, path, stem, csqa_one);
}

/* ---- BBH evaluation examples: {"examples": [{"input", "target"}]} -------------------------- */

static int bbh_one(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *ex, const char *where, const char *stem,
                   long idx) {
    if (!cJSON_IsObject(ex)) CH_FAIL(CH_EFORMAT, "%s: not an object", where);
    const char *input, *target;
    CH_TRY(ch_prep_get_str(ex, "input", where, 1, &input));
    CH_TRY(ch_prep_get_str(ex, "target", where, 1, &target));
    char id[1024], task[600];
    snprintf(id, sizeof id, "bbh/%s/%ld", stem, idx);
    snprintf(task, sizeof task, "bbh/%s", stem);
    ch_prep_qa qa = {.id = id, .label = o->label, .task = ch_prep_pick(o->task, task), .question = input,
                     .answer = target, .cue = ch_prep_pick(o->cue, "Answer:")};
    return ch_prep_qa_emit(w, &qa);
}

static int conv_bbh(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    cJSON *root;
    CH_TRY(ch_prep_read_json(path, 1, &root));
    int rc = 0;
    const cJSON *arr;
    CH_TRY_GOTO(ch_prep_get_array(root, "examples", path, &arr), done);
    long idx = 0;
    const cJSON *ex;
    cJSON_ArrayForEach(ex, arr) {
        char where[1024];
        snprintf(where, sizeof where, "%s: examples[%ld]", path, idx);
        CH_TRY_GOTO(bbh_one(w, o, ex, where, stem, idx), done);
        idx++;
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- SQuAD v1.1/v2.0: {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]} ------ */

static int squad_answers(const cJSON *qa, const char *where, cJSON **texts) {
    const cJSON *answers;
    CH_TRY(ch_prep_get_array(qa, "answers", where, &answers));
    *texts = cJSON_CreateArray();
    if (!*texts) CH_FAIL(CH_ENOMEM, "out of memory");
    const cJSON *a;
    cJSON_ArrayForEach(a, answers) {
        const char *at;
        int rc = cJSON_IsObject(a)
                     ? ch_prep_get_str(a, "text", where, 1, &at)
                     : ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: an answer is not an object", where);
        cJSON *t = rc ? NULL : cJSON_CreateString(at);
        if (!rc && (!t || !cJSON_AddItemToArray(*texts, t))) {
            cJSON_Delete(t);
            rc = ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory building the answers of %s", where);
        }
        if (rc) {
            cJSON_Delete(*texts);
            *texts = NULL;
            return rc;
        }
    }
    return 0;
}

static int squad_one(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *qa, const char *where, const char *stem,
                     long idx, const char *title, const char *context) {
    if (!cJSON_IsObject(qa)) CH_FAIL(CH_EFORMAT, "%s: not an object", where);
    const char *question, *source_id;
    CH_TRY(ch_prep_get_str(qa, "question", where, 1, &question));
    CH_TRY(ch_prep_get_str(qa, "id", where, 0, &source_id));
    const cJSON *imp = cJSON_GetObjectItemCaseSensitive(qa, "is_impossible");
    if (imp && !cJSON_IsBool(imp)) CH_FAIL(CH_EFORMAT, "%s: 'is_impossible' is not a boolean", where);
    cJSON *texts;
    CH_TRY(squad_answers(qa, where, &texts));
    char id[1024];
    snprintf(id, sizeof id, "squad/%s/%ld", stem, idx);
    ch_prep_qa q = {.id = id, .label = ch_prep_pick(o->label, "reading"), .task = o->task, .source_id = source_id,
                    .passage = context, .question = question, .cue = ch_prep_pick(o->cue, "Answer:")};
    cJSON *rec, *meta;
    int rc = ch_prep_qa_record(&q, &rec, &meta);
    if (rc) {
        cJSON_Delete(texts);
        return rc;
    }
    if (ch_prep_meta_str(meta, "title", title) || !cJSON_AddItemToObject(meta, "answers", texts) ||
        (imp && !cJSON_AddBoolToObject(meta, "is_impossible", cJSON_IsTrue(imp)))) {
        if (!cJSON_GetObjectItemCaseSensitive(meta, "answers")) cJSON_Delete(texts);
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return ch_prep_finish(w, rec, meta);
}

static int conv_squad(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    cJSON *root;
    CH_TRY(ch_prep_read_json(path, 1, &root));
    int rc = 0;
    const cJSON *data, *art, *paras, *para, *qas, *qa;
    CH_TRY_GOTO(ch_prep_get_array(root, "data", path, &data), done);
    long idx = 0, ia = 0;
    char where[1024];
    cJSON_ArrayForEach(art, data) {
        snprintf(where, sizeof where, "%s: data[%ld]", path, ia);
        if (!cJSON_IsObject(art)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not an object", where);
        const char *title;
        CH_TRY_GOTO(ch_prep_get_str(art, "title", where, 0, &title), done);
        CH_TRY_GOTO(ch_prep_get_array(art, "paragraphs", where, &paras), done);
        long ip = 0;
        cJSON_ArrayForEach(para, paras) {
            snprintf(where, sizeof where, "%s: data[%ld].paragraphs[%ld]", path, ia, ip);
            if (!cJSON_IsObject(para)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not an object", where);
            const char *context;
            CH_TRY_GOTO(ch_prep_get_str(para, "context", where, 1, &context), done);
            CH_TRY_GOTO(ch_prep_get_array(para, "qas", where, &qas), done);
            long iq = 0;
            cJSON_ArrayForEach(qa, qas) {
                snprintf(where, sizeof where, "%s: data[%ld].paragraphs[%ld].qas[%ld]", path, ia, ip, iq);
                CH_TRY_GOTO(squad_one(w, o, qa, where, stem, idx, title, context), done);
                idx++;
                iq++;
            }
            ip++;
        }
        ia++;
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- LESS pool: {"dataset", "id", "messages": [{"role","content"}]} per line -------------- */

static int less_one(const ch_prep_line *c, const cJSON *obj) {
    const ch_prepare_opts *o = c->o;
    const ch_jsonl *r = c->r;
    const char *where = c->where;
    const char *dataset, *source_id;
    CH_TRY(ch_prep_get_str(obj, "dataset", where, 0, &dataset));
    CH_TRY(ch_prep_get_str(obj, "id", where, 0, &source_id));
    const cJSON *msgs;
    CH_TRY(ch_prep_get_array(obj, "messages", where, &msgs));
    if (cJSON_GetArraySize(msgs) == 0) CH_FAIL(CH_EFORMAT, "%s: 'messages' is empty", where);
    int k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const char *role, *content;
        char mw[1100];
        snprintf(mw, sizeof mw, "%s: messages[%d]", where, k++);
        if (!cJSON_IsObject(m)) CH_FAIL(CH_EFORMAT, "%s: not an object", mw);
        CH_TRY(ch_prep_get_str(m, "role", mw, 1, &role));
        CH_TRY(ch_prep_get_str(m, "content", mw, 1, &content));
        if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))
            CH_FAIL(CH_EFORMAT, "%s: role '%.40s' is not user, assistant or system", mw, role);
    }
    char id[1024];
    snprintf(id, sizeof id, "less/%s/%ld", c->stem, c->idx);
    cJSON *rec = NULL;
    CH_TRY(ch_prep_new_record(&rec, id, NULL, NULL, NULL));
    /* messages kept intact (every key, in order), then label/task like the other formats */
    cJSON *copy = cJSON_Duplicate(msgs, 1);
    cJSON *meta = cJSON_CreateObject();
    const char *label = o->label;
    if (!copy || !meta || !cJSON_AddItemToObject(rec, "messages", copy) ||
        (label && *label && !cJSON_AddStringToObject(rec, "label", label)) ||
        (o->task && *o->task && !cJSON_AddStringToObject(rec, "task", o->task)) ||
        ch_prep_meta_str(meta, "dataset", dataset) || ch_prep_meta_str(meta, "source_id", source_id) ||
        ch_prep_meta_str(meta, "file", c->path) ||
        !cJSON_AddNumberToObject(meta, "line", (double)r->lineno) ||
        !cJSON_AddNumberToObject(meta, "offset", (double)r->offset) ||
        !cJSON_AddNumberToObject(meta, "bytes", (double)r->len)) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "messages")) cJSON_Delete(copy);
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return ch_prep_finish(c->w, rec, meta);
}

static int conv_less(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    if (o->cue)
        CH_FAIL(CH_EARG, "--cue does not apply to the less format (messages are kept intact)");
    return ch_prep_jsonl_each(w, o, path, stem, less_one);
}

const ch_prep_format ch_prep_formats[] = {
    {"gsm8k", ".jsonl", "math", "Answer:", "GSM8K JSONL {question, answer}; text = question", conv_gsm8k},
    {"mmlu", ".csv", NULL, "Answer:",
     "MMLU headerless CSV question,A,B,C,D,answer (SUBJECT_split.csv); task mmlu/SUBJECT", conv_mmlu},
    {"bbh", ".json", NULL, "Answer:",
     "BIG-Bench Hard evaluation examples {\"examples\":[{input,target}]}; task\n"
     "bbh/NAME (an evaluation split: refused without --allow-eval-split)",
     conv_bbh},
    {"bbh-cot", ".txt", NULL, "Answer:",
     "BIG-Bench Hard cot-prompts/NAME.txt: the 3 exemplars of a task (Q:/A: blocks);\n"
     "task bbh/NAME, meta.answer from \"So the answer is X.\"",
     ch_prep_conv_bbh_cot},
    {"arc", ".jsonl", "science", "Answer:",
     "ARC JSONL, AI2 {id, question{stem, choices}, answerKey} or Hugging Face\n"
     "{id, question, choices{text, label}, answerKey} (detected per line)",
     conv_arc},
    {"arc-hf", ".jsonl", "science", "Answer:", "= arc (the Hugging Face layout is detected)", conv_arc},
    {"csqa", ".jsonl", "commonsense", "Answer:",
     "CommonsenseQA JSONL (ARC's two layouts + question_concept)", conv_csqa},
    {"csqa-hf", ".jsonl", "commonsense", "Answer:", "= csqa (the Hugging Face layout is detected)", conv_csqa},
    {"squad", ".json", "reading", "Answer:", "SQuAD v1.1/2.0 JSON; text = context + question, one record per question",
     conv_squad},
    {"race", ".txt", "reading", "Answer:",
     "RACE: one JSON {article, questions, options, answers, id} per file (.txt),\n"
     "or JSONL of those or of {example_id, article, question, options, answer}",
     ch_prep_conv_race},
    {"cosmosqa", ".csv", "reading", "Answer:",
     "Cosmos QA CSV id,context,question,answer0..3,label (header), or JSONL", ch_prep_conv_cosmosqa},
    {"sciq", ".json", "science", "Answer:",
     "SciQ JSON list {question, distractor1..3, correct_answer, support}", ch_prep_conv_sciq},
    {"hellaswag", ".jsonl", "commonsense", "Answer:",
     "HellaSwag JSONL {ind, ctx, endings, label, activity_label, source_id, ...}", ch_prep_conv_hellaswag},
    {"medqa", ".jsonl", "professional", "Answer:",
     "MedQA JSONL {question, options{A..}, answer, answer_idx, meta_info}", ch_prep_conv_medqa},
    {"less", ".jsonl", NULL, NULL, "LESS pool JSONL {dataset, id, messages}; messages kept, line offset in meta",
     conv_less},
};
const int ch_prep_nformats = (int)(sizeof ch_prep_formats / sizeof ch_prep_formats[0]);
