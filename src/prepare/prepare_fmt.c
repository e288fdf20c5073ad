/* prepare_fmt.c - helpers shared by the format readers, see prepare_fmt.h. */
#include "prepare_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"

int ch_prep_sb_add(ch_prep_sb *b, const char *s) {
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

int ch_prep_add_cue(ch_prep_sb *b, const char *cue) {
    if (!cue || !*cue) return 0;
    CH_TRY(ch_prep_sb_add(b, "\n"));
    return ch_prep_sb_add(b, cue);
}

int ch_prep_new_record(cJSON **out, const char *id, const char *text, const char *label, const char *task) {
    cJSON *r = cJSON_CreateObject();
    if (!r || !cJSON_AddStringToObject(r, "id", id) || (text && !cJSON_AddStringToObject(r, "text", text)) ||
        (label && *label && !cJSON_AddStringToObject(r, "label", label)) ||
        (task && *task && !cJSON_AddStringToObject(r, "task", task))) {
        cJSON_Delete(r);
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", id);
    }
    *out = r;
    return 0;
}

int ch_prep_finish(ch_prep_out *w, cJSON *rec, cJSON *meta) {
    if (meta) cJSON_AddItemToObject(rec, "meta", meta);
    return ch_prep_emit(w, rec);
}

int ch_prep_get_str(const cJSON *obj, const char *key, const char *where, int required, const char **out) {
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

int ch_prep_get_array(const cJSON *obj, const char *key, const char *where, const cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*out) CH_FAIL(CH_EFORMAT, "%s: missing '%s'", where, key);
    if (!cJSON_IsArray(*out)) CH_FAIL(CH_EFORMAT, "%s: '%s' is not an array", where, key);
    return 0;
}

int ch_prep_get_choices(const cJSON *arr, const char *key, const char *where, const char **out, int *n) {
    int k = cJSON_GetArraySize(arr);
    if (k < 2 || k > 26) CH_FAIL(CH_EFORMAT, "%s: '%s' has %d entries (expected 2 to 26)", where, key, k);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsString(v)) CH_FAIL(CH_EFORMAT, "%s: %s[%d] is not a string", where, key, i);
        out[i++] = v->valuestring;
    }
    *n = k;
    return 0;
}

int ch_prep_meta_str(cJSON *meta, const char *key, const char *val) {
    if (val && !cJSON_AddStringToObject(meta, key, val)) CH_FAIL(CH_ENOMEM, "out of memory building record metadata");
    return 0;
}

const char *ch_prep_letter(int i) {
    static const char *const l[26] = {"A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M",
                                      "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z"};
    return i >= 0 && i < 26 ? l[i] : "?";
}

int ch_prep_qa_text(const ch_prep_qa *q, char **text) {
    ch_prep_sb t = {0};
    int rc = 0;
    if (q->passage) {
        CH_TRY_GOTO(ch_prep_sb_add(&t, q->passage), fail);
        CH_TRY_GOTO(ch_prep_sb_add(&t, "\n\nQuestion: "), fail);
    }
    CH_TRY_GOTO(ch_prep_sb_add(&t, q->question), fail);
    for (int i = 0; i < q->nchoices; i++) {
        CH_TRY_GOTO(ch_prep_sb_add(&t, "\n"), fail);
        CH_TRY_GOTO(ch_prep_sb_add(&t, q->labels ? q->labels[i] : ch_prep_letter(i)), fail);
        CH_TRY_GOTO(ch_prep_sb_add(&t, ". "), fail);
        CH_TRY_GOTO(ch_prep_sb_add(&t, q->choices[i]), fail);
    }
    CH_TRY_GOTO(ch_prep_add_cue(&t, q->cue), fail);
    *text = t.s;
    return 0;
fail:
    free(t.s);
    return rc;
}

int ch_prep_qa_record(const ch_prep_qa *q, cJSON **rec, cJSON **meta) {
    char *text = NULL;
    *rec = *meta = NULL;
    CH_TRY(ch_prep_qa_text(q, &text));
    int rc = ch_prep_new_record(rec, q->id, text, q->label, q->task);
    free(text);
    if (rc) return rc;
    cJSON *m = cJSON_CreateObject();
    cJSON *ch = q->nchoices ? cJSON_CreateStringArray(q->choices, q->nchoices) : NULL;
    int ok = m && (!q->nchoices || ch);
    ok = ok && !ch_prep_meta_str(m, "source_id", q->source_id) && !ch_prep_meta_str(m, "passage", q->passage) &&
         !ch_prep_meta_str(m, "question", q->question);
    if (ok && ch) {
        ok = cJSON_AddItemToObject(m, "choices", ch);
        if (ok) ch = NULL;
    }
    ok = ok && !ch_prep_meta_str(m, "answer", q->answer);
    ok = ok && (!q->extra_key || !ch_prep_meta_str(m, q->extra_key, q->extra_val));
    if (!ok) {
        cJSON_Delete(ch);
        cJSON_Delete(m);
        cJSON_Delete(*rec);
        *rec = NULL;
        CH_FAIL(CH_ENOMEM, "out of memory building record %s", q->id);
    }
    *meta = m;
    return 0;
}

int ch_prep_qa_emit(ch_prep_out *w, const ch_prep_qa *q) {
    cJSON *rec, *meta;
    CH_TRY(ch_prep_qa_record(q, &rec, &meta));
    return ch_prep_finish(w, rec, meta);
}

int ch_prep_jsonl_objects(const char *path, ch_prep_obj_fn fn, void *ctx) {
    ch_jsonl r;
    CH_TRY(ch_jsonl_open(&r, path));
    int rc = 0;
    for (;;) {
        const char *line;
        size_t len;
        int has;
        cJSON *obj = NULL;
        CH_TRY_GOTO(ch_jsonl_next(&r, &line, &len, &has), done);
        if (!has) break;
        CH_TRY_GOTO(ch_json_parse(path, r.lineno, line, len, &obj), done);
        char where[1024];
        snprintf(where, sizeof where, "%s:%ld", path, r.lineno);
        if ((rc = fn(ctx, &r, where, obj))) break;
    }
done:
    ch_jsonl_close(&r);
    return rc;
}

/* ch_prep_jsonl_each's state: the converter and the record index it is at. */
typedef struct {
    ch_prep_out *w;
    const ch_prepare_opts *o;
    const char *path, *stem;
    ch_prep_line_fn fn;
    long idx, next;
} each_ctx;

static int each_line(void *ctx, const ch_jsonl *r, const char *where, cJSON *obj) {
    each_ctx *e = ctx;
    int rc = cJSON_IsObject(obj) ? e->fn(&(ch_prep_line){e->w, e->o, e->path, e->stem, r, where, e->idx, &e->next}, obj)
                                 : ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: expected a JSON object", where);
    cJSON_Delete(obj);
    e->idx++;
    return rc;
}

int ch_prep_jsonl_each(ch_prep_out *w, const ch_prepare_opts *o, const char *path, const char *stem,
                       ch_prep_line_fn fn) {
    each_ctx e = {w, o, path, stem, fn, 0, 0};
    return ch_prep_jsonl_objects(path, each_line, &e);
}

int ch_prep_read_text(const char *path, char **buf, size_t *len) {
    CH_TRY(ch_fs_read_file(path, buf, len));
    long bad = ch_utf8_invalid_at(*buf, *len);
    if (bad >= 0) {
        long line = 1;
        for (long i = 0; i < bad; i++)
            line += (*buf)[i] == '\n';
        free(*buf);
        *buf = NULL;
        CH_FAIL(CH_EFORMAT, "%s:%ld: invalid UTF-8", path, line);
    }
    return 0;
}

int ch_prep_read_json(const char *path, int want_object, cJSON **out) {
    char *buf;
    size_t len;
    CH_TRY(ch_fs_read_file(path, &buf, &len));
    int rc = ch_json_parse(path, 1, buf, len, out);
    free(buf);
    if (!rc && (want_object ? !cJSON_IsObject(*out) : !cJSON_IsArray(*out))) {
        cJSON_Delete(*out);
        *out = NULL;
        CH_FAIL(CH_EFORMAT, "%s: expected a JSON %s at the top level", path, want_object ? "object" : "array");
    }
    return rc;
}

int ch_prep_ends_with(const char *path, const char *suffix) {
    size_t a = strlen(path), b = strlen(suffix);
    return a >= b && !strcmp(path + a - b, suffix);
}
