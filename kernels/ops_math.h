/* ops_math.h - the math of every non-GEMM op, written once.
 *
 * Each function here is the per-element (or per-pair, per-row-scalar) rule of an op. Under a C
 * compiler CH_HD makes them static inline and kernels/cpu.c loops over them; under nvcc they
 * become __host__ __device__ and kernels/cuda.cu calls them from each thread. A CPU test of one
 * of these functions is therefore a test of the GPU path's arithmetic too. Nothing here
 * allocates, loops over a whole tensor, or touches memory it is not handed. */
#ifndef CH_OPS_MATH_H
#define CH_OPS_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hostdev.h"
#include "numfmt.h"

/* ---- exp ----------------------------------------------------------------------------------- */

/* e^x in plain float arithmetic: no libm call and no branch, so a loop over it vectorizes (glibc's
 * expf goes one element at a time; CUDA's expf is its own approximation anyway). Cody-Waite
 * reduction x = n ln2 + r with n rounded by the 1.5 * 2^23 trick - the sum's low bits are n as an
 * integer, so no float-to-int conversion (undefined on NaN) - the Cephes expf polynomial for e^r
 * on [-ln2/2, ln2/2], and 2^n as the product of two powers of two built from exponent bits (each
 * in range for every n in [-126, 128]). Within 2 ulp of e^x on [-87.33, 88.72]; below that 0 (the
 * true value is subnormal), above it inf, and NaN stays NaN. tests/test_cpu_backend.c sweeps it
 * against double-precision exp. */
CH_HD float ch_expf(float x) {
    const float lo = -87.33654022216797f, hi = 88.72283935546875f; /* ln 2^-126, ln FLT_MAX */
    float xc = x < lo ? lo : x; /* comparisons are false for NaN: it passes through */
    xc = xc > hi ? hi : xc;
    const float t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23 + n */
    const float n = t - 12582912.0f;
    const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln2, ln2 in two parts */
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    const uint32_t nb = ch_f32_to_bits(t) - 0x4b400000u + 128u; /* n + 128, in [2, 256] */
    const uint32_t a = nb >> 1, b = nb - a;                      /* 2^n = 2^(a-64) 2^(b-64) */
    const float v = q * ch_bits_to_f32((a + 63u) << 23) * ch_bits_to_f32((b + 63u) << 23);
    return x > hi ? INFINITY : x < lo ? 0.0f : v;
}

/* ---- activations --------------------------------------------------------------------------- */

CH_HD float ch_silu(float x) { return x / (1.0f + ch_expf(-x)); }
/* SwiGLU as in Llama/Qwen2 MLP: down(silu(gate(x)) * up(x)) - this is the middle part. */
CH_HD float ch_swiglu(float gate, float up) { return ch_silu(gate) * up; }
/* GELU, tanh form (PyTorch's gelu(approximate="tanh"), transformers' gelu_pytorch_tanh), in the
 * order PyTorch's kernel computes it: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
CH_HD float ch_gelu_tanh(float x) {
    const float beta = 0.7978845608028654f, kappa = 0.044715f; /* sqrt(2/pi) */
    const float inner = beta * (x + kappa * (x * x * x));
    return 0.5f * x * (1.0f + tanhf(inner));
}
/* GeGLU as in Gemma's MLP: down(gelu_tanh(gate(x)) * up(x)) - the middle part. */
CH_HD float ch_geglu(float gate, float up) { return ch_gelu_tanh(gate) * up; }

/* ---- RMSNorm ------------------------------------------------------------------------------- */
/* HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, the mean taken in f32. */
CH_HD float ch_rms_inv(float sumsq, int d, float eps) { return 1.0f / sqrtf(sumsq / (float)d + eps); }
CH_HD float ch_rms_apply(float x, float inv, float w) { return (x * inv) * w; }

/* ---- RoPE ---------------------------------------------------------------------------------- */

typedef struct {
    float theta;              /* rope_theta (base) */
    int head_dim;             /* rotary dim = head_dim (partial rotary is refused by config) */
    int llama3;               /* rope_scaling.rope_type == "llama3" */
    float factor;             /* llama3 parameters */
    float low_freq_factor;
    float high_freq_factor;
    float orig_max_pos;       /* original_max_position_embeddings */
    float linear;             /* rope_type "linear": every frequency divided by this factor (0: none) */
} ch_rope_params;

/* Inverse frequency of rotary pair i (0 <= i < head_dim/2), with Llama-3 scaling when asked.
 * Mirrors HF's default rope init (1 / theta^(2i/dim)) followed by _compute_llama3_parameters:
 * long wavelengths are divided by factor, short ones kept, the band between blended smoothly;
 * or by _compute_linear_scaling_rope_parameters: every one divided by the linear factor. */
CH_HD float ch_rope_inv_freq(int i, const ch_rope_params *r) {
    float inv = 1.0f / powf(r->theta, (float)(2 * i) / (float)r->head_dim);
    if (r->linear > 0.0f) return inv / r->linear;
    if (!r->llama3) return inv;
    const float two_pi = 6.283185307179586f;
    float low_wavelen = r->orig_max_pos / r->low_freq_factor;
    float high_wavelen = r->orig_max_pos / r->high_freq_factor;
    float wavelen = two_pi / inv;
    if (wavelen > low_wavelen) return inv / r->factor;
    if (wavelen < high_wavelen) return inv;
    float smooth = (r->orig_max_pos / wavelen - r->low_freq_factor) /
                   (r->high_freq_factor - r->low_freq_factor);
    return (1.0f - smooth) * inv / r->factor + smooth * inv;
}

/* HF rotate_half convention: element j pairs with j + dim/2, both use angle pos * inv_freq[j].
 * x0' = x0 cos - x1 sin ; x1' = x1 cos + x0 sin */
CH_HD void ch_rope_rotate(float *x0, float *x1, float c, float s) {
    float a = *x0, b = *x1;
    *x0 = a * c - b * s;
    *x1 = b * c + a * s;
}

/* ---- attention: scores and softmax ------------------------------------------------------------
 * A score is scale * q.k, capped by tanh where the model asks (Gemma 2's attn_logit_softcapping,
 * in transformers' order: divide, tanh, multiply); cap <= 0 leaves it as it is. A key's weight
 * is exp(score - max) over the scores seen; the denominator is their sum. */
CH_HD float ch_softcap(float score, float cap) { return cap > 0.0f ? tanhf(score / cap) * cap : score; }
CH_HD float ch_softmax_weight(float score, float max) { return ch_expf(score - max); }

/* The keys query position i may see: j in [ch_attn_first_key(i, window), i], all earlier ones
 * when window <= 0, else the window's last `window` positions (transformers' sliding window:
 * kv_idx > q_idx - window). */
CH_HD int ch_attn_first_key(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

/* Whole-row form: row[lo..hi) are one query's scores, the rest of row[0..n) keys it must not see
 * (causal and sliding-window mask). Replaces the scores with their weights over the row's max,
 * the masked ones with 0, and returns the denominator (>= 1: the max's own weight is 1). The CPU
 * backend's blocked attention (kernels/cpu.c) then multiplies the weights with V and divides by
 * it. */
CH_HD float ch_softmax_row(float *row, int lo, int hi, int n) {
    float mx = -INFINITY, l = 0.0f;
    CH_SIMD_MAX(mx)
    for (int j = lo; j < hi; j++) mx = row[j] > mx ? row[j] : mx;
    CH_SIMD_SUM(l)
    for (int j = lo; j < hi; j++) l += row[j] = ch_softmax_weight(row[j], mx);
    for (int j = 0; j < lo; j++) row[j] = 0.0f;
    for (int j = hi; j < n; j++) row[j] = 0.0f;
    return l;
}

/* Online form: attention for one query accumulated key by key (flash-attention style; the CUDA
 * kernel), so no kernel holds a full score matrix. State: running max m, running denominator l,
 * and the output accumulator acc[D] (scaled by the same factor as l). */
CH_HD void ch_softmax_step(float score, float *m, float *l, float *scale_old, float *p) {
    float m_new = score > *m ? score : *m;
    *scale_old = ch_softmax_weight(*m, m_new); /* e^-inf = 0 on the first key */
    *p = ch_softmax_weight(score, m_new);
    *l = *l * *scale_old + *p;
    *m = m_new;
}

/* ---- pooling over a sequence's tokens -------------------------------------------------------
 * Column j of x [ntok, width] pooled over one sequence's rows [t0, t1): its last row, or the
 * mean, summed in double and rounded once (the CPU backend and the CUDA kernel then agree to the
 * bit for any realistic length). ch_pool_store writes the result as the caller's output type:
 * f32, or the archive's binary16 bits (ch_f32_to_f16), so the capture leaves the device in the
 * form the archive stores. */
CH_HD float ch_pool_last(const float *x, size_t width, int t1, size_t j) { return x[(size_t)(t1 - 1) * width + j]; }
CH_HD float ch_pool_mean(const float *x, size_t width, int t0, int t1, size_t j) {
    double sum = 0;
    for (int t = t0; t < t1; t++) sum += x[(size_t)t * width + j];
    return (float)(sum / (t1 - t0));
}
CH_HD float ch_pool_value(const float *x, size_t width, int t0, int t1, size_t j, int mean) {
    return mean ? ch_pool_mean(x, width, t0, t1, j) : ch_pool_last(x, width, t1, j);
}
CH_HD void ch_pool_store(void *out, size_t i, float v, int f16) {
    if (f16) ((uint16_t *)out)[i] = ch_f32_to_f16(v);
    else ((float *)out)[i] = v;
}

#endif
