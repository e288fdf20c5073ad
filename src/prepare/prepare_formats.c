/* prepare_formats.c - one converter per original dataset format, see prepare.h.
 *
 * Each converter reads one source file, builds records in the normalized shape and hands them to
 * ch_prep_emit. Messages name the file and the line (JSONL, CSV) or the JSON path of the record
 * (whole-file JSON such as BBH and SQuAD, where a record has no line of its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "err.h"
#include "fsutil.h"
#include "jsonl.h"
#include "prepare.h"

/* ---- small helpers ------------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) CH_FAIL(CH_ENOMEM, "out of memory building a record text");
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
    return 0;
}

static const char *pick(const char *opt, const char *dflt) { return opt ? opt : dflt; }

/* The text ends with "\n<cue>" when the cue is not empty ("Answer:" for multiple choice). */
static int add_cue(sbuf *b, const char *cue) {
    if (!cue || !*cue) return 0;
    CH_TRY(sb_add(b, "\n"));
    return sb_add(b, cue);
}

/* A new record {"id", "text", "label"?, "task"?}; meta is added by the caller, last. */
static int new_record(cJSON **out, const char *id, const char *text, const char *label,
                      const char *task) {
    cJSON *r = cJSON_CreateObject();
    if (!r || !cJSON_AddStringToObject(r, "id", id) ||
        (text && !cJSON_AddStringToObject(r, "text", text)) ||
        (label && *label && !cJSON_AddStringToObject(r, "label", label)) ||
        (task && *task && !cJSON_AddStringToObject(r, "task", task))) {
        cJSON_Delete(r);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    *out = r;
    return 0;
}

/* A string member of obj. where is "file:line" or "file: path"; missing is an error when
 * required, otherwise *out = NULL. */
static int get_str(const cJSON *obj, const char *key, const char *where, int required,
                   const char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required) CH_FAIL(CH_EFORMAT, "%s: missing '%s'", where, key);
        return 0;
    }
    if (!cJSON_IsString(v)) CH_FAIL(CH_EFORMAT, "%s: '%s' is not a string", where, key);
    *out = v->valuestring;
    return 0;
}

static int get_array(const cJSON *obj, const char *key, const char *where, const cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*out) CH_FAIL(CH_EFORMAT, "%s: missing '%s'", where, key);
    if (!cJSON_IsArray(*out)) CH_FAIL(CH_EFORMAT, "%s: '%s' is not an array", where, key);
    return 0;
}

static int add_meta_str(cJSON *meta, const char *key, const char *val) {
    if (val && !cJSON_AddStringToObject(meta, key, val))
        CH_FAIL(CH_ENOMEM, "out of memory building record metadata");
    return 0;
}

/* Attach meta to rec and emit; rec and meta are consumed whatever happens. */
static int finish(ch_prep_out *w, cJSON *rec, cJSON *meta) {
    if (meta) cJSON_AddItemToObject(rec, "meta", meta);
    return ch_prep_emit(w, rec);
}

/* What a per-line converter sees: the source, its line, and where to send records. */
typedef struct {
    ch_prep_out *w;
    const ch_prepare_opts *o;
    const char *path, *stem;
    const ch_jsonl *r; /* line number, offset and length of the current line */
    const char *where; /* "file:line" for messages */
    long idx;          /* record index in this file */
} line_ctx;

typedef int (*line_fn)(const line_ctx *c, const cJSON *obj);

/* Call fn on each JSON-object line of a JSONL file (at most o->limit of them). */
static int jsonl_each(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem,
                      line_fn fn) {
    ch_jsonl r;
    CH_TRY(ch_jsonl_open(&r, path));
    int rc = 0;
    for (long idx = 0; o->limit < 0 || idx < o->limit; idx++) {
        const char *line;
        size_t len;
        int has;
        cJSON *obj = NULL;
        CH_TRY_GOTO(ch_jsonl_next(&r, &line, &len, &has), done);
        if (!has) break;
        CH_TRY_GOTO(ch_json_parse(path, r.lineno, line, len, &obj), done);
        char where[1024];
        snprintf(where, sizeof where, "%s:%ld", path, r.lineno);
        if (!cJSON_IsObject(obj))
            rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: expected a JSON object", where);
        else
            rc = fn(&(line_ctx){w, o, path, stem, &r, where, idx}, obj);
        cJSON_Delete(obj);
        if (rc) break;
    }
done:
    ch_jsonl_close(&r);
    return rc;
}

/* ---- GSM8K: {"question", "answer"} per line ------------------------------------------------ */

static int gsm8k_one(const line_ctx *c, const cJSON *obj) {
    const ch_prepare_opts *o = c->o;
    const char *where = c->where;
    const char *q, *a;
    CH_TRY(get_str(obj, "question", where, 1, &q));
    CH_TRY(get_str(obj, "answer", where, 1, &a));
    char id[1024];
    snprintf(id, sizeof id, "gsm8k/%s/%ld", c->stem, c->idx);
    sbuf t = {0};
    int rc = sb_add(&t, q);
    if (!rc) rc = add_cue(&t, pick(o->cue, NULL));
    cJSON *rec = NULL, *meta = NULL;
    if (!rc) rc = new_record(&rec, id, t.s, pick(o->label, "math"), o->task);
    free(t.s);
    if (rc) return rc;
    meta = cJSON_CreateObject();
    if (!meta) rc = CH_ENOMEM;
    if (!rc) rc = add_meta_str(meta, "answer", a);
    if (rc) {
        cJSON_Delete(rec);
        cJSON_Delete(meta);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return finish(c->w, rec, meta);
}

static int conv_gsm8k(ch_prep_out *w, const ch_prepare_opts *o, const char *path,
                      const char *stem) {
    return jsonl_each(w, o, path, stem, gsm8k_one);
}

/* ---- multiple choice: shared by MMLU, ARC, CommonsenseQA ---------------------------------- */

/* text = question, then "L. choice" per line, then the cue. */
static int mc_text(sbuf *t, const char *question, const char *const *labels,
                   const char *const *choices, int n, const char *cue) {
    CH_TRY(sb_add(t, question));
    for (int i = 0; i < n; i++) {
        CH_TRY(sb_add(t, "\n"));
        CH_TRY(sb_add(t, labels[i]));
        CH_TRY(sb_add(t, ". "));
        CH_TRY(sb_add(t, choices[i]));
    }
    return add_cue(t, cue);
}

static int mc_record(ch_prep_out *w, const char *id, const char *question,
                     const char *const *labels, const char *const *choices, int n, const char *cue,
                     const char *label, const char *task, const char *source_id, const char *answer,
                     const char *concept) {
    sbuf t = {0};
    cJSON *rec = NULL;
    int rc = mc_text(&t, question, labels, choices, n, cue);
    if (!rc) rc = new_record(&rec, id, t.s, label, task);
    free(t.s);
    if (rc) return rc;
    cJSON *meta = cJSON_CreateObject();
    cJSON *ch = cJSON_CreateStringArray(choices, n);
    if (!meta || !ch || add_meta_str(meta, "source_id", source_id) ||
        add_meta_str(meta, "answer", answer) || !cJSON_AddItemToObject(meta, "choices", ch) ||
        add_meta_str(meta, "concept", concept)) {
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(meta, "choices"))) cJSON_Delete(ch);
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return finish(w, rec, meta);
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
    CH_TRY(ch_fs_read_file(path, &buf, &len));
    int rc = 0;
    long bad = ch_utf8_invalid_at(buf, len);
    if (bad >= 0) {
        long line = 1;
        for (long i = 0; i < bad; i++)
            line += buf[i] == '\n';
        free(buf);
        CH_FAIL(CH_EFORMAT, "%s:%ld: invalid UTF-8", path, line);
    }
    ch_csv c;
    ch_csv_init(&c, path, buf, len);
    static const char *const letters[] = {"A", "B", "C", "D"};
    for (long idx = 0; o->limit < 0 || idx < o->limit; idx++) {
        int has;
        long line;
        CH_TRY_GOTO(ch_csv_next(&c, &has, &line), done);
        if (!has) break;
        if (c.nfields != 6)
            CH_FAIL_GOTO(done, CH_EFORMAT,
                         "%s:%ld: expected 6 columns (question,A,B,C,D,answer), found %d", path,
                         line, c.nfields);
        const char *ans = c.fields[5];
        if (strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D')
            CH_FAIL_GOTO(done, CH_EFORMAT, "%s:%ld: answer '%.20s' is not one of A, B, C, D", path,
                         line, ans);
        char id[1024];
        snprintf(id, sizeof id, "mmlu/%s/%ld", stem, idx);
        const char *choices[4] = {c.fields[1], c.fields[2], c.fields[3], c.fields[4]};
        CH_TRY_GOTO(mc_record(w, id, c.fields[0], letters, choices, 4, pick(o->cue, "Answer:"),
                              o->label, pick(o->task, task), NULL, ans, NULL),
                    done);
    }
done:
    ch_csv_free(&c);
    free(buf);
    return rc;
}

/* ---- ARC and CommonsenseQA: {"id", "question": {"stem", "choices": [{"text","label"}],
 *      "question_concept"?}, "answerKey"?} per line ----------------------------------------- */

static int arc_like_one(const line_ctx *c, const cJSON *obj, const char *dataset,
                        const char *dflt_label, int want_concept) {
    const char *where = c->where;
    const char *source_id, *answer, *qstem, *concept = NULL;
    CH_TRY(get_str(obj, "id", where, 0, &source_id));
    CH_TRY(get_str(obj, "answerKey", where, 0, &answer));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "question");
    if (!q) CH_FAIL(CH_EFORMAT, "%s: missing 'question'", where);
    if (!cJSON_IsObject(q)) CH_FAIL(CH_EFORMAT, "%s: 'question' is not an object", where);
    CH_TRY(get_str(q, "stem", where, 1, &qstem));
    if (want_concept) CH_TRY(get_str(q, "question_concept", where, 0, &concept));
    const cJSON *arr;
    CH_TRY(get_array(q, "choices", where, &arr));
    int n = cJSON_GetArraySize(arr);
    if (n < 2 || n > 26) CH_FAIL(CH_EFORMAT, "%s: %d choices (expected 2 to 26)", where, n);
    const char *labels[26], *texts[26];
    int k = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, arr) {
        if (!cJSON_IsObject(ch)) CH_FAIL(CH_EFORMAT, "%s: choice %d is not an object", where, k);
        CH_TRY(get_str(ch, "label", where, 1, &labels[k]));
        CH_TRY(get_str(ch, "text", where, 1, &texts[k]));
        k++;
    }
    if (answer) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= !strcmp(labels[i], answer);
        if (!found)
            CH_FAIL(CH_EFORMAT, "%s: answerKey '%.20s' is not one of the choice labels", where,
                    answer);
    }
    char id[1024];
    snprintf(id, sizeof id, "%s/%s/%ld", dataset, c->stem, c->idx);
    return mc_record(c->w, id, qstem, labels, texts, n, pick(c->o->cue, "Answer:"),
                     pick(c->o->label, dflt_label), c->o->task, source_id, answer, concept);
}

static int arc_one(const line_ctx *c, const cJSON *obj) {
    return arc_like_one(c, obj, "arc", "science", 0);
}

static int csqa_one(const line_ctx *c, const cJSON *obj) {
    return arc_like_one(c, obj, "csqa", "commonsense", 1);
}

static int conv_arc(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return jsonl_each(w, o, path, stem, arc_one);
}

static int conv_csqa(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    return jsonl_each(w, o, path, stem, csqa_one);
}

/* ---- whole-file JSON: BBH and SQuAD ------------------------------------------------------- */

static int read_json(const char *path, cJSON **out) {
    char *buf;
    size_t len;
    CH_TRY(ch_fs_read_file(path, &buf, &len));
    int rc = ch_json_parse(path, 1, buf, len, out);
    free(buf);
    if (!rc && !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        CH_FAIL(CH_EFORMAT, "%s: expected a JSON object at the top level", path);
    }
    return rc;
}

static int bbh_one(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *ex, const char *where,
                   const char *stem, long idx) {
    if (!cJSON_IsObject(ex)) CH_FAIL(CH_EFORMAT, "%s: not an object", where);
    const char *input, *target;
    CH_TRY(get_str(ex, "input", where, 1, &input));
    CH_TRY(get_str(ex, "target", where, 1, &target));
    char id[1024], task[600];
    snprintf(id, sizeof id, "bbh/%s/%ld", stem, idx);
    snprintf(task, sizeof task, "bbh/%s", stem);
    sbuf t = {0};
    cJSON *rec = NULL;
    int rc = sb_add(&t, input);
    if (!rc) rc = add_cue(&t, o->cue);
    if (!rc) rc = new_record(&rec, id, t.s, o->label, pick(o->task, task));
    free(t.s);
    if (rc) return rc;
    cJSON *meta = cJSON_CreateObject();
    if (!meta || add_meta_str(meta, "target", target)) {
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return finish(w, rec, meta);
}

static int conv_bbh(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    cJSON *root;
    CH_TRY(read_json(path, &root));
    int rc = 0;
    const cJSON *arr;
    CH_TRY_GOTO(get_array(root, "examples", path, &arr), done);
    long idx = 0;
    const cJSON *ex;
    cJSON_ArrayForEach(ex, arr) {
        if (o->limit >= 0 && idx >= o->limit) break;
        char where[1024];
        snprintf(where, sizeof where, "%s: examples[%ld]", path, idx);
        CH_TRY_GOTO(bbh_one(w, o, ex, where, stem, idx), done);
        idx++;
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int squad_one(ch_prep_out *w, const ch_prepare_opts *o, const cJSON *qa, const char *where,
                     const char *stem, long idx, const char *title, const char *context) {
    if (!cJSON_IsObject(qa)) CH_FAIL(CH_EFORMAT, "%s: not an object", where);
    const char *question, *source_id;
    CH_TRY(get_str(qa, "question", where, 1, &question));
    CH_TRY(get_str(qa, "id", where, 0, &source_id));
    const cJSON *answers;
    CH_TRY(get_array(qa, "answers", where, &answers));
    const cJSON *imp = cJSON_GetObjectItemCaseSensitive(qa, "is_impossible");
    if (imp && !cJSON_IsBool(imp))
        CH_FAIL(CH_EFORMAT, "%s: 'is_impossible' is not a boolean", where);
    cJSON *texts = cJSON_CreateArray();
    if (!texts) CH_FAIL(CH_ENOMEM, "out of memory");
    const cJSON *a;
    cJSON_ArrayForEach(a, answers) {
        const char *at;
        int rc = cJSON_IsObject(a) ? get_str(a, "text", where, 1, &at)
                                   : ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                                                "%s: an answer is not an object", where);
        if (rc) {
            cJSON_Delete(texts);
            return rc;
        }
        cJSON *t = cJSON_CreateString(at);
        if (!t || !cJSON_AddItemToArray(texts, t)) {
            cJSON_Delete(t);
            cJSON_Delete(texts);
            CH_FAIL(CH_ENOMEM, "out of memory building the answers of %s", where);
        }
    }
    char id[1024];
    snprintf(id, sizeof id, "squad/%s/%ld", stem, idx);
    sbuf t = {0};
    cJSON *rec = NULL;
    int rc = sb_add(&t, context);
    if (!rc) rc = sb_add(&t, "\n\nQuestion: ");
    if (!rc) rc = sb_add(&t, question);
    if (!rc) rc = add_cue(&t, pick(o->cue, "Answer:"));
    if (!rc) rc = new_record(&rec, id, t.s, pick(o->label, "reading"), o->task);
    free(t.s);
    if (rc) {
        cJSON_Delete(texts);
        return rc;
    }
    cJSON *meta = cJSON_CreateObject();
    if (!meta || add_meta_str(meta, "source_id", source_id) || add_meta_str(meta, "title", title) ||
        !cJSON_AddItemToObject(meta, "answers", texts) ||
        (imp && !cJSON_AddBoolToObject(meta, "is_impossible", cJSON_IsTrue(imp)))) {
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return finish(w, rec, meta);
}

static int conv_squad(ch_prep_out *w, const ch_prepare_opts *o, const char *path,
                      const char *stem) {
    cJSON *root;
    CH_TRY(read_json(path, &root));
    int rc = 0;
    const cJSON *data, *art, *paras, *para, *qas, *qa;
    CH_TRY_GOTO(get_array(root, "data", path, &data), done);
    long idx = 0, ia = 0;
    char where[1024];
    cJSON_ArrayForEach(art, data) {
        snprintf(where, sizeof where, "%s: data[%ld]", path, ia);
        if (!cJSON_IsObject(art)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not an object", where);
        const char *title;
        CH_TRY_GOTO(get_str(art, "title", where, 0, &title), done);
        CH_TRY_GOTO(get_array(art, "paragraphs", where, &paras), done);
        long ip = 0;
        cJSON_ArrayForEach(para, paras) {
            snprintf(where, sizeof where, "%s: data[%ld].paragraphs[%ld]", path, ia, ip);
            if (!cJSON_IsObject(para)) CH_FAIL_GOTO(done, CH_EFORMAT, "%s: not an object", where);
            const char *context;
            CH_TRY_GOTO(get_str(para, "context", where, 1, &context), done);
            CH_TRY_GOTO(get_array(para, "qas", where, &qas), done);
            long iq = 0;
            cJSON_ArrayForEach(qa, qas) {
                if (o->limit >= 0 && idx >= o->limit) goto done;
                snprintf(where, sizeof where, "%s: data[%ld].paragraphs[%ld].qas[%ld]", path, ia,
                         ip, iq);
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

static int less_one(const line_ctx *c, const cJSON *obj) {
    const ch_prepare_opts *o = c->o;
    const ch_jsonl *r = c->r;
    const char *where = c->where;
    const char *dataset, *source_id;
    CH_TRY(get_str(obj, "dataset", where, 0, &dataset));
    CH_TRY(get_str(obj, "id", where, 0, &source_id));
    const cJSON *msgs;
    CH_TRY(get_array(obj, "messages", where, &msgs));
    if (cJSON_GetArraySize(msgs) == 0) CH_FAIL(CH_EFORMAT, "%s: 'messages' is empty", where);
    int k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const char *role, *content;
        char mw[1100];
        snprintf(mw, sizeof mw, "%s: messages[%d]", where, k++);
        if (!cJSON_IsObject(m)) CH_FAIL(CH_EFORMAT, "%s: not an object", mw);
        CH_TRY(get_str(m, "role", mw, 1, &role));
        CH_TRY(get_str(m, "content", mw, 1, &content));
        if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))
            CH_FAIL(CH_EFORMAT, "%s: role '%.40s' is not user, assistant or system", mw, role);
    }
    char id[1024];
    snprintf(id, sizeof id, "less/%s/%ld", c->stem, c->idx);
    cJSON *rec = NULL;
    CH_TRY(new_record(&rec, id, NULL, NULL, NULL));
    /* messages kept intact (every key, in order), then label/task like the other formats */
    cJSON *copy = cJSON_Duplicate(msgs, 1);
    cJSON *meta = cJSON_CreateObject();
    const char *label = o->label;
    if (!copy || !meta || !cJSON_AddItemToObject(rec, "messages", copy) ||
        (label && *label && !cJSON_AddStringToObject(rec, "label", label)) ||
        (o->task && *o->task && !cJSON_AddStringToObject(rec, "task", o->task)) ||
        add_meta_str(meta, "dataset", dataset) || add_meta_str(meta, "source_id", source_id) ||
        add_meta_str(meta, "file", c->path) ||
        !cJSON_AddNumberToObject(meta, "line", (double)r->lineno) ||
        !cJSON_AddNumberToObject(meta, "offset", (double)r->offset) ||
        !cJSON_AddNumberToObject(meta, "bytes", (double)r->len)) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "messages")) cJSON_Delete(copy);
        cJSON_Delete(meta);
        cJSON_Delete(rec);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    return finish(c->w, rec, meta);
}

static int conv_less(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem) {
    if (o->cue)
        CH_FAIL(CH_EARG, "--cue does not apply to the less format (messages are kept intact)");
    return jsonl_each(w, o, path, stem, less_one);
}

const ch_prep_format ch_prep_formats[] = {
    {"gsm8k", ".jsonl", "math", NULL, "GSM8K JSONL {question, answer}; text = question",
     conv_gsm8k},
    {"mmlu", ".csv", NULL, "Answer:",
     "MMLU headerless CSV question,A,B,C,D,answer (SUBJECT_split.csv); task mmlu/SUBJECT",
     conv_mmlu},
    {"bbh", ".json", NULL, NULL, "BIG-Bench Hard {\"examples\":[{input,target}]}; task bbh/NAME",
     conv_bbh},
    {"arc", ".jsonl", "science", "Answer:", "ARC JSONL {id, question{stem, choices}, answerKey}",
     conv_arc},
    {"csqa", ".jsonl", "commonsense",
     "Answer:", "CommonsenseQA JSONL (ARC shape + question_concept)", conv_csqa},
    {"squad", ".json", "reading", "Answer:",
     "SQuAD v1.1/2.0 JSON; text = context + question, one record per question", conv_squad},
    {"less", ".jsonl", NULL, NULL,
     "LESS pool JSONL {dataset, id, messages}; messages kept, line offset in meta", conv_less},
};
const int ch_prep_nformats = (int)(sizeof ch_prep_formats / sizeof ch_prep_formats[0]);
