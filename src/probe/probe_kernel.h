/* probe_kernel.h - what the probe solver (src/probe.c) needs of the per-row arithmetic
 * (src/probe_kernel.c); the public part (prediction, standardization) is in probe.h. */
#ifndef CH_PROBE_KERNEL_H
#define CH_PROBE_KERNEL_H

#include "probe.h"

/* Loss sum and gradient sum (unscaled, no penalty) of one head at parameters w [5*D weights,
 * 5 biases] over the rank's rows x [n][D] (standardized f32) of d: out [5*D + 5] the gradient,
 * out[5*D + 5] the loss, out[5*D + 6] the rows whose argmax class is their label. Returns -1
 * when out of memory for its scratch, else 0. */
int ch_probe_head_sums(const ch_probe_data *d, const float *x, const double *w, double *out);

/* The two builds of src/probe_kernel.c that ch_probe_head_sums, ch_probe_predict and
 * ch_probe_predict16 choose between: baseline x86-64 and x86-64-v3 (only where the build has
 * it: CH_PROBE_HAVE_V3). Same arguments as the entry points. */
int ch_probe_head_sums_base(const ch_probe_data *d, const float *x, const double *w, double *out);
void ch_probe_predict_base(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                           const int present[CH_NCAP], float *prob);
int ch_probe_predict16_base(int nh, int D, int64_t n, const uint16_t *x16, const float *mean,
                            const float *std, const float *W, const float *b,
                            const int present[CH_NCAP], float *prob);
int ch_probe_head_sums_v3(const ch_probe_data *d, const float *x, const double *w, double *out);
void ch_probe_predict_v3(int nh, int D, int64_t n, const float *x, const float *W, const float *b,
                         const int present[CH_NCAP], float *prob);
int ch_probe_predict16_v3(int nh, int D, int64_t n, const uint16_t *x16, const float *mean,
                          const float *std, const float *W, const float *b,
                          const int present[CH_NCAP], float *prob);

#endif
