/* mixfile.h - the capability mixes of target tasks (the decompose stage's output).
 *
 * DIR/mix.h5 (format "capheads-mix" v1): /tasks [T] strings, /mix [T, 5] f64 (rows sum to 1),
 * /n_examples [T] int64, optional /hidden_mean [T, hidden] f32 (mean final hidden state of the
 * task's examples, for the RDS baseline); root attributes capability_names (JSON list), probes
 * (path of the probe file), probes_sha256 (ch_capmix.digest: the identity of the probes the mix
 * was computed with), probes_input_sha256 (the probe file's own input_sha256), heads ("own" or
 * "union": the mix formula, capmix.h), input (path of the task archive), input_sha256 (its
 * corpus hash), render_template, render_span, render_cue (the task archive's rendering rule,
 * io/render_rule.h). Beside it: mix.csv (task, n_examples, one column per capability; a task name
 * holding a comma, quote or line break is quoted as RFC 4180 says) and mix.svg, a stacked bar
 * chart of the mixes (one <g class="bar"> per task, in mix order). */
#ifndef CH_MIXFILE_H
#define CH_MIXFILE_H

#include <stdint.h>

#include "render_rule.h"

typedef struct {
    int ntask;
    char **tasks;
    double *mix;        /* [ntask][CH_NCAP] */
    int64_t *count;     /* examples per task */
    int hidden_dim;     /* 0 when no hidden means */
    float *hidden_mean; /* [ntask][hidden_dim] or NULL */
    char *capability_names; /* JSON list */
    char *probes, *input, *input_sha256;
    char *probes_sha256, *probes_input_sha256, *heads; /* NULL when absent (older mix files) */
    ch_render_rule render; /* the tasks archive's rendering rule (render.recorded 0: older mix files) */
} ch_mix;

/* Write DIR/mix.h5, DIR/mix.csv, DIR/mix.svg (serial: call from one rank). */
int ch_mix_write(const char *dir, const ch_mix *m);
/* Read DIR/mix.h5 (or a mix.h5 path). */
int ch_mix_read(const char *path, ch_mix *m);
void ch_mix_free(ch_mix *m);
/* Index of a task, -1 when absent. */
int ch_mix_find(const ch_mix *m, const char *task);

/* The stacked bar chart (mixplot.c). */
int ch_mix_plot_svg(const ch_mix *m, const char *path);

#endif
