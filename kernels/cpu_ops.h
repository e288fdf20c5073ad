/* cpu_ops.h - the CPU backend's loops over the shared math of ops_math.h, built per ISA.
 *
 * kernels/cpu_ops.c is compiled twice: for baseline x86-64 (ch_cpu_ops_base), and with
 * -march=x86-64-v4 (AVX-512) by kernels/cpu_ops_v4.c where the compiler is GCC on x86-64
 * (ch_cpu_ops_v4, with CH_CPU_HAVE_V4 defined). The text - and so the math - is the same; the
 * wider copy runs the loops 16 floats at a time (ch_expf is branch-free so that they vectorize).
 * Both copies are built with -fno-trapping-math, which lets GCC turn the comparisons of ch_expf
 * into vector selects; no code here reads the floating-point exception flags. */
#ifndef CH_CPU_OPS_H
#define CH_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef struct {
    const char *isa; /* "x86-64-v4", "baseline" */
    /* y[t, j] += b[j] */
    void (*add_bias)(float *y, const float *b, int ntok, int n);
    /* out[t, :] = rmsnorm(x[t, :]) * w; out may equal x */
    void (*rmsnorm)(const float *x, const float *w, int ntok, int d, float eps, float *out);
    /* cs [ntok][2][half] = cos, sin of pos[t] * inv_freq[i], i < half */
    void (*rope_table)(const int32_t *pos, int ntok, int half, const float *inv_freq, float *cs);
    /* x [ntok, nheads, head_dim] rotated by the angles of cs (rope_table, half = head_dim / 2) */
    void (*rope)(float *x, int ntok, int nheads, int head_dim, const float *cs);
    /* the backend's attention (backend.h); CH_ENOMEM when the per-thread scratch fails */
    int (*attention)(const float *q, const float *k, const float *v, const ch_seqs *s, int nq, int nkv,
                     int head_dim, const ch_attn_params *p, float *out);
    /* gate[i] = silu(gate[i]) * up[i] */
    void (*swiglu)(float *gate, const float *up, size_t n);
    /* gate[i] = gelu_tanh(gate[i]) * up[i] */
    void (*geglu)(float *gate, const float *up, size_t n);
    /* x[i] *= s */
    void (*scale)(float *x, float s, size_t n);
    /* x[i] += y[i] */
    void (*add)(float *x, const float *y, size_t n);
} ch_cpu_ops;

extern const ch_cpu_ops ch_cpu_ops_base;
#ifdef CH_CPU_HAVE_V4
extern const ch_cpu_ops ch_cpu_ops_v4;
#endif

/* The widest copy this CPU runs (CAPHEADS_CPU_ISA=baseline forces the baseline one). */
const ch_cpu_ops *ch_cpu_ops_pick(void);

#endif
