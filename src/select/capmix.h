/* capmix.h - the capability-head map applied to activations: each row's capability mix.
 *
 * A probe file (the probe stage's output) holds, for every head, a 5-way logistic-regression
 * probe on standardized inputs, and for every capability c its top-k heads S_c. Each mapped head
 * h gives a row x the distribution P_h(x) = softmax(W_h z_h(x) + b_h) over the classes present in
 * the probing set (a class with no training rows has probability 0, as in the probe stage),
 * z_h = (x_h - mean_h) / std_h. The row's capability mix p(x) is (METHOD.md sections 4-5):
 *   own   (default) q_c(x) = mean over h in S_c of P_h(x)[c],  p(x) = q(x) / sum_c q_c(x):
 *         each capability is judged by the heads the map assigned to it;
 *   union p(x) = mean over the distinct heads h of U = S_1 u ... u S_5 of P_h(x): every mapped
 *         head's whole distribution, averaged (METHOD.md section 4 read literally).
 * Only the mapped heads are loaded. */
#ifndef CH_CAPMIX_H
#define CH_CAPMIX_H

#include <stdint.h>

#include "archive.h"
#include "render_rule.h"

/* The mix formula (ch_capmix.heads). */
enum { CH_HEADS_OWN = 0, CH_HEADS_UNION = 1 };

typedef struct {
    int n_layers, n_heads, head_dim, top_k;
    int heads;         /* CH_HEADS_OWN (what load sets) or CH_HEADS_UNION: set before apply */
    int present[CH_NCAP]; /* 1 when the class had training rows (the probe file's class_train) */
    int n_mapped;      /* distinct heads in the union of the S_c */
    int *mapped;       /* flat head index l * n_heads + h, ascending */
    int *sets;         /* [CH_NCAP][top_k] positions into mapped[] */
    float *w;          /* [n_mapped][CH_NCAP][head_dim] */
    float *b;          /* [n_mapped][CH_NCAP] */
    float *mean, *std; /* [n_mapped][head_dim] */
    char *source_sha256; /* the probe file's provenance: the probing archive's input hash */
    char *capability_names; /* the probe file's capability_names attribute (JSON), NULL if none */
    ch_render_rule render; /* where the probing set was read (render.recorded 0: older probe files) */
    char digest[65];   /* SHA-256 (hex) of what the mix depends on: shape, map, present classes
                        * and the mapped heads' parameters; the mix file records it */
    int n_used;        /* distinct layers holding mapped heads ... */
    int *used;         /* ... ascending: a reader needs only these layers' chunks */
} ch_capmix;

/* Read the map and the mapped heads' probes from a probe file (format capheads-probes). The
 * present classes come from its /class_train counts; a file without them (older probe files)
 * counts a class absent when its weights and bias are exactly 0 at every mapped head, which is
 * what the fit leaves for a class with no training rows. The file is opened once, its seals
 * checked (h5seal.h); the render rule comes with the rest, so no caller reads the file again. */
int ch_capmix_load(const char *probes_path, ch_capmix *cm);
void ch_capmix_free(ch_capmix *cm);

/* p[i][c] for n rows of activations acts [n][L][H][D], by cm->heads' formula. Non-finite inputs
 * are refused (CH_EFORMAT naming the row offset and head). */
int ch_capmix_apply(const ch_capmix *cm, const float *acts, int64_t n, double *p);
/* The same on the used layers only: acts is [n][n_used][H][D] (ch_capmix_read gives it). */
int ch_capmix_apply_used(const ch_capmix *cm, const float *acts, int64_t n, double *p);
/* Read rows [row0, row0+n) of the used layers into acts [n][n_used][H][D]; tmp holds n*H*D. */
int ch_capmix_read(const ch_capmix *cm, ch_archive_reader *r, int64_t row0, int64_t n, float *acts, float *tmp);

/* "own" / "union" <-> CH_HEADS_*; parse returns CH_EARG for anything else. */
const char *ch_capmix_heads_name(int heads);
int ch_capmix_heads_parse(const char *name, int *heads);
/* 1 when two JSON lists of capability names hold the same names in the same order. */
int ch_capability_names_same(const char *a, const char *b);

/* The formulas of METHOD.md section 5 for one pool row against one task mix. */
double ch_capmix_score_dot(const double *w_task, const double *p);
double ch_capmix_score_cosine(const double *w_task, const double *p);

#endif
