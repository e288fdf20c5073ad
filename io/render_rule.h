/* render_rule.h - how records become tokens: the rendering rule an archive records.
 *
 * extract renders every record by one rule (--template plain|chat, --span prompt|full, --cue TEXT;
 * docs/prepare.md, "The rendering rule") and stores it as three root string attributes:
 * render_template ("plain"|"chat"), render_span ("prompt"|"full"), render_cue (the cue line,
 * "" under chat). The probe file copies its input archive's rule, the mix file its tasks
 * archive's, scores.h5 the pool archive's. Probes are fitted at one kind of position and must be
 * applied at the same kind, so the stages compare rules here:
 *   probe, decompose   refuse span full (a pool-only ablation);
 *   decompose          refuses a tasks archive whose template or cue differ from the probe file's;
 *   select             refuses a pool archive whose template or cue differ from the mix's or the
 *                      probe file's (span full is accepted for the pool: an ablation).
 * An input without the attributes (an older extract) is refused by decompose and select. Every
 * refusal is CH_EMISMATCH (exit 3) and names both files and both rules. */
#ifndef CH_RENDER_RULE_H
#define CH_RENDER_RULE_H

#include <hdf5.h>
#include <stddef.h>

#define CH_RENDER_CUE_MAX 256 /* bytes of the cue, with its NUL */

typedef struct {
    int recorded;                /* 0: the file has no rule (written by an older capheads) */
    char template_name[8];       /* "plain" | "chat" */
    char span[8];                /* "prompt" | "full" */
    char cue[CH_RENDER_CUE_MAX]; /* appended as "\n" + cue under plain/prompt; "" under chat */
} ch_render_rule;

/* The default: plain, prompt, "Answer:" (what prepare ends probing and task texts with). */
void ch_render_rule_default(ch_render_rule *r);
/* A rule from extract's options (CH_EARG naming the option when a value is not one of its
 * choices or the cue is too long); under chat the cue is not used and recorded as "". */
int ch_render_rule_make(const char *template_name, const char *span, const char *cue, ch_render_rule *r);
int ch_render_rule_is_chat(const ch_render_rule *r);
int ch_render_rule_is_full(const ch_render_rule *r);
/* `template plain, span prompt, cue "Answer:"` (or "no render rule recorded") into buf. */
void ch_render_rule_describe(const ch_render_rule *r, char *buf, size_t n);

/* The three root attributes of loc (a file or group); path names it in messages. */
int ch_render_rule_write(hid_t loc, const char *path, const ch_render_rule *r);
/* r->recorded = 0 when none of the three is there; CH_EFORMAT naming the file when only some are,
 * or a value is not one of its choices. */
int ch_render_rule_read(hid_t loc, const char *path, ch_render_rule *r);

/* what/path: the role and the file (e.g. "tasks archive", "tasks.h5"). */
/* A recorded rule, or CH_EMISMATCH "PATH: no render rule recorded: re-extract ...". */
int ch_render_rule_need(const char *what, const char *path, const ch_render_rule *r);
/* Span prompt, or CH_EMISMATCH naming the file, its rule and the stage that refuses it. */
int ch_render_rule_need_prompt(const char *stage, const char *what, const char *path, const ch_render_rule *r);
/* a and b must both be recorded and agree on template and cue (and span when with_span), else
 * CH_EMISMATCH naming both files and both rules. */
int ch_render_rule_check(const char *what_a, const char *path_a, const ch_render_rule *a, const char *what_b,
                         const char *path_b, const ch_render_rule *b, int with_span);

#endif
