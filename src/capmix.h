/* capmix.h - the capability-head map applied to activations: each row's capability mix.
 *
 * A probe file (the probe stage's output) holds, for every head, a 5-way logistic-regression
 * probe on standardized inputs, and for every capability c its top-k heads S_c. A row x gets
 *     q_c(x) = mean over h in S_c of softmax(W_h z_h(x) + b_h)[c],  z_h = (x_h - mean_h) / std_h
 * and its capability mix p(x) = q(x) / sum_c q_c(x): each capability is judged by the heads the
 * map assigned to it (METHOD.md sections 4-5). Only the mapped heads are loaded. */
#ifndef CH_CAPMIX_H
#define CH_CAPMIX_H

#include <stdint.h>

#include "archive.h"

typedef struct {
    int n_layers, n_heads, head_dim, top_k;
    int n_mapped;      /* distinct heads in the union of the S_c */
    int *mapped;       /* flat head index l * n_heads + h, ascending */
    int *sets;         /* [CH_NCAP][top_k] positions into mapped[] */
    float *w;          /* [n_mapped][CH_NCAP][head_dim] */
    float *b;          /* [n_mapped][CH_NCAP] */
    float *mean, *std; /* [n_mapped][head_dim] */
    char *source_sha256; /* the probe file's provenance: the probing archive's input hash */
    int n_used;        /* distinct layers holding mapped heads ... */
    int *used;         /* ... ascending: a reader needs only these layers' chunks */
} ch_capmix;

/* Read the map and the mapped heads' probes from a probe file (format capheads-probes). */
int ch_capmix_load(const char *probes_path, ch_capmix *cm);
void ch_capmix_free(ch_capmix *cm);

/* p[i][c] for n rows of activations acts [n][L][H][D]. Non-finite inputs are refused
 * (CH_EFORMAT naming the row offset and head). */
int ch_capmix_apply(const ch_capmix *cm, const float *acts, int64_t n, double *p);
/* The same on the used layers only: acts is [n][n_used][H][D] (ch_capmix_read gives it). */
int ch_capmix_apply_used(const ch_capmix *cm, const float *acts, int64_t n, double *p);
/* Read rows [row0, row0+n) of the used layers into acts [n][n_used][H][D]; tmp holds n*H*D. */
int ch_capmix_read(const ch_capmix *cm, ch_archive_reader *r, int64_t row0, int64_t n, float *acts, float *tmp);

/* The formulas of METHOD.md section 5 for one pool row against one task mix. */
double ch_capmix_score_dot(const double *w_task, const double *p);
double ch_capmix_score_cosine(const double *w_task, const double *p);

#endif
