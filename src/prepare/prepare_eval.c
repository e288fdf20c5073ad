/* prepare_eval.c - the evaluation splits prepare recognises, in one table. The method evaluates
 * the model tuned on the selected data on MMLU (test split) and BBH (the evaluation examples of
 * each task), so neither may feed the probing set, the target tasks or anything else by default:
 * prepare refuses such a source unless --allow-eval-split, and then marks its records
 * (meta.eval_split) so probeset and a reader of the output can tell. */
#include <string.h>

#include "prepare.h"

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* SUBJECT_test.csv, or any file directly in a directory named test. */
static int mmlu_test(const char *path) {
    const char *b = base_name(path);
    size_t n = strlen(b);
    if (n > 9 && !strcmp(b + n - 9, "_test.csv")) return 1;
    if (b == path) return 0;
    const char *dir_end = b - 1, *d = dir_end;
    while (d > path && d[-1] != '/')
        d--;
    return dir_end - d == 4 && !strncmp(d, "test", 4);
}

/* Every file of BBH's own format is a task's evaluation examples (its few-shot exemplars are the
 * separate cot-prompts/ files, format bbh-cot). */
static int any_file(const char *path) {
    (void)path;
    return 1;
}

const ch_prep_eval_split ch_prep_eval_splits[] = {
    {"mmlu", "MMLU test split (SUBJECT_test.csv, or a file in a test/ directory)", "MMLU", mmlu_test},
    {"bbh", "BBH evaluation examples (bbh/NAME.json; the exemplars are cot-prompts/NAME.txt, format bbh-cot)", "BBH",
     any_file},
};
const int ch_prep_neval_splits = (int)(sizeof ch_prep_eval_splits / sizeof ch_prep_eval_splits[0]);

const ch_prep_eval_split *ch_prep_eval_split_of(const char *format, const char *path) {
    for (int i = 0; i < ch_prep_neval_splits; i++)
        if (!strcmp(format, ch_prep_eval_splits[i].format) && ch_prep_eval_splits[i].match(path))
            return &ch_prep_eval_splits[i];
    return NULL;
}
