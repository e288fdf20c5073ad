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

#endif
