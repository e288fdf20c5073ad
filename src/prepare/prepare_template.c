/* prepare_template.c - the one probing template (prepare.h). Every class of the probing set is
 * rendered from the same meta fields with the same words, so no class is told apart by layout:
 * the options are left out unless asked for, and then shown the same way for every record. */
#include <stdlib.h>

#include "err.h"
#include "prepare_fmt.h"

static int add_choices(ch_prep_sb *t, const cJSON *choices, const char *where) {
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, choices) {
        if (!cJSON_IsString(c)) CH_FAIL(CH_EFORMAT, "%s: meta.choices[%d] is not a string", where, i);
        CH_TRY(ch_prep_sb_add(t, "\n"));
        CH_TRY(ch_prep_sb_add(t, ch_prep_letter(i)));
        CH_TRY(ch_prep_sb_add(t, ". "));
        CH_TRY(ch_prep_sb_add(t, c->valuestring));
        i++;
    }
    return 0;
}

int ch_prep_probe_text(const cJSON *meta, int show_options, const char *cue, const char *where, char **text) {
    const char *passage, *question;
    if (!cJSON_IsObject(meta))
        CH_FAIL(CH_EFORMAT, "%s: no meta object with the question (prepare the source again with this version)", where);
    CH_TRY(ch_prep_get_str(meta, "passage", where, 0, &passage));
    CH_TRY(ch_prep_get_str(meta, "question", where, 1, &question));
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(meta, "choices");
    if (show_options && !cJSON_IsArray(choices))
        CH_FAIL(CH_EFORMAT, "%s: no meta.choices, but --options show needs choices in every record (a class without "
                "them would be told by the missing option lines)", where);
    ch_prep_sb t = {0};
    int rc = 0;
    if (passage) {
        CH_TRY_GOTO(ch_prep_sb_add(&t, passage), fail);
        CH_TRY_GOTO(ch_prep_sb_add(&t, "\n\n"), fail);
    }
    CH_TRY_GOTO(ch_prep_sb_add(&t, "Question: "), fail);
    CH_TRY_GOTO(ch_prep_sb_add(&t, question), fail);
    if (show_options) CH_TRY_GOTO(add_choices(&t, choices, where), fail);
    CH_TRY_GOTO(ch_prep_add_cue(&t, cue), fail);
    *text = t.s;
    return 0;
fail:
    free(t.s);
    return rc;
}
