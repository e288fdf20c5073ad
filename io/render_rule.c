/* render_rule.c - see render_rule.h. */
#include "render_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "h5util.h"

static const char *const attr_names[3] = {"render_template", "render_span", "render_cue"};

void ch_render_rule_default(ch_render_rule *r) {
    memset(r, 0, sizeof *r);
    r->recorded = 1;
    strcpy(r->template_name, "plain");
    strcpy(r->span, "prompt");
    strcpy(r->cue, "Answer:");
}

static int one_of(const char *v, const char *a, const char *b) { return v && (!strcmp(v, a) || !strcmp(v, b)); }

int ch_render_rule_make(const char *template_name, const char *span, const char *cue, ch_render_rule *r) {
    memset(r, 0, sizeof *r);
    if (!one_of(template_name, "plain", "chat"))
        CH_FAIL(CH_EARG, "--template must be plain or chat, got '%s'", template_name ? template_name : "");
    if (!one_of(span, "prompt", "full")) CH_FAIL(CH_EARG, "--span must be prompt or full, got '%s'", span ? span : "");
    if (!cue) cue = "";
    if (strlen(cue) >= CH_RENDER_CUE_MAX) CH_FAIL(CH_EARG, "--cue is longer than %d bytes", CH_RENDER_CUE_MAX - 1);
    r->recorded = 1;
    snprintf(r->template_name, sizeof r->template_name, "%s", template_name);
    snprintf(r->span, sizeof r->span, "%s", span);
    /* the chat template ends the prompt with its own generation prompt: no cue line */
    snprintf(r->cue, sizeof r->cue, "%s", strcmp(template_name, "chat") ? cue : "");
    return 0;
}

int ch_render_rule_is_chat(const ch_render_rule *r) { return !strcmp(r->template_name, "chat"); }
int ch_render_rule_is_full(const ch_render_rule *r) { return !strcmp(r->span, "full"); }

void ch_render_rule_describe(const ch_render_rule *r, char *buf, size_t n) {
    if (!r->recorded) snprintf(buf, n, "no render rule recorded");
    else snprintf(buf, n, "template %s, span %s, cue \"%.80s\"", r->template_name, r->span, r->cue);
}

int ch_render_rule_write(hid_t loc, const char *path, const ch_render_rule *r) {
    const char *v[3] = {r->template_name, r->span, r->cue};
    for (int i = 0; i < 3; i++)
        if (ch_h5_put_str(loc, attr_names[i], v[i]))
            CH_FAIL(CH_EHDF5, "%s: writing attribute %s failed", path, attr_names[i]);
    return 0;
}

int ch_render_rule_read(hid_t loc, const char *path, ch_render_rule *r) {
    memset(r, 0, sizeof *r);
    char *v[3] = {NULL, NULL, NULL};
    int rc = 0, n = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        rc = ch_h5_get_str(loc, attr_names[i], &v[i]);
        if (rc) ch_err_wrap("%s: ", path);
        n += v[i] != NULL;
    }
    if (!rc && n > 0 && n < 3)
        rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__, "%s: the render rule is recorded only in part (%s%s%s missing)",
                        path, v[0] ? "" : "render_template ", v[1] ? "" : "render_span ", v[2] ? "" : "render_cue");
    if (!rc && n == 3) {
        if (!one_of(v[0], "plain", "chat") || !one_of(v[1], "prompt", "full") || strlen(v[2]) >= CH_RENDER_CUE_MAX)
            rc = ch_err_set(CH_EFORMAT, __FILE__, __LINE__,
                            "%s: render rule attributes hold template '%s', span '%s' (expected plain|chat, prompt|full)",
                            path, v[0], v[1]);
        else {
            r->recorded = 1;
            snprintf(r->template_name, sizeof r->template_name, "%s", v[0]);
            snprintf(r->span, sizeof r->span, "%s", v[1]);
            snprintf(r->cue, sizeof r->cue, "%s", v[2]);
        }
    }
    for (int i = 0; i < 3; i++) free(v[i]);
    return rc;
}

int ch_render_rule_need(const char *what, const char *path, const ch_render_rule *r) {
    if (!r->recorded)
        CH_FAIL(CH_EMISMATCH,
                "%s %s: no render rule recorded: re-extract (an older capheads made it; the rule says at which "
                "position the activations were read, see docs/prepare.md)",
                what, path);
    return 0;
}

int ch_render_rule_need_prompt(const char *stage, const char *what, const char *path, const ch_render_rule *r) {
    CH_TRY(ch_render_rule_need(what, path, r));
    if (ch_render_rule_is_full(r)) {
        char d[400];
        ch_render_rule_describe(r, d, sizeof d);
        CH_FAIL(CH_EMISMATCH,
                "%s %s was extracted with %s: %s reads activations at the prompt's end only (span full is a "
                "pool-only ablation for select); re-extract it with --span prompt",
                what, path, d, stage);
    }
    return 0;
}

int ch_render_rule_check(const char *what_a, const char *path_a, const ch_render_rule *a, const char *what_b,
                         const char *path_b, const ch_render_rule *b, int with_span) {
    CH_TRY(ch_render_rule_need(what_a, path_a, a));
    CH_TRY(ch_render_rule_need(what_b, path_b, b));
    const char *diff = strcmp(a->template_name, b->template_name) ? "template"
                       : strcmp(a->cue, b->cue)                   ? "cue"
                       : with_span && strcmp(a->span, b->span)    ? "span"
                                                                  : NULL;
    if (!diff) return 0;
    char da[400], db[400];
    ch_render_rule_describe(a, da, sizeof da);
    ch_render_rule_describe(b, db, sizeof db);
    CH_FAIL(CH_EMISMATCH,
            "render rules differ (%s): the %s %s was made with %s but the %s %s with %s; probes must be "
            "applied at the kind of position they were fitted at: extract both with one rule",
            diff, what_a, path_a, da, what_b, path_b, db);
}
