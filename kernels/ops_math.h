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
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define CH_HD __host__ __device__ __forceinline__
#else
#define CH_HD static inline
#endif

/* ---- number formats ------------------------------------------------------------------------ */

CH_HD float ch_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
CH_HD uint32_t ch_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
/* bf16 is the top half of an f32: widening is exact. */
CH_HD float ch_bf16_to_f32(uint16_t h) { return ch_bits_to_f32((uint32_t)h << 16); }
/* Round to nearest even; NaN stays NaN (quiet). */
CH_HD uint16_t ch_f32_to_bf16(float f) {
    uint32_t u = ch_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* IEEE binary16 -> binary32, exact (subnormals included). */
CH_HD float ch_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return ch_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return ch_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return ch_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}
/* binary32 -> binary16, round to nearest even, overflow to inf, NaN kept. */
CH_HD uint16_t ch_f32_to_f16(float f) {
    uint32_t u = ch_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);         /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);        /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                          /* below 2^-14: subnormal */
        /* value / 2^-24 rounded to nearest even integer, computed exactly in f32 arithmetic */
        float v = ch_bits_to_f32(a) * 16777216.0f;                  /* exact scaling by 2^24 */
        float r = rintf(v);                                          /* ties to even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t mant_rounded = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | (uint16_t)((mant_rounded - 0x38000000u) >> 13));
}

/* ---- activations --------------------------------------------------------------------------- */

CH_HD float ch_silu(float x) { return x / (1.0f + expf(-x)); }
/* SwiGLU as in Llama/Qwen2 MLP: down(silu(gate(x)) * up(x)) - this is the middle part. */
CH_HD float ch_swiglu(float gate, float up) { return ch_silu(gate) * up; }

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
} ch_rope_params;

/* Inverse frequency of rotary pair i (0 <= i < head_dim/2), with Llama-3 scaling when asked.
 * Mirrors HF's default rope init (1 / theta^(2i/dim)) followed by _compute_llama3_parameters:
 * long wavelengths are divided by factor, short ones kept, the band between blended smoothly. */
CH_HD float ch_rope_inv_freq(int i, const ch_rope_params *r) {
    float inv = 1.0f / powf(r->theta, (float)(2 * i) / (float)r->head_dim);
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

/* ---- attention: softmax ---------------------------------------------------------------------
 * A key's weight is exp(score - max) over the scores seen; the denominator is their sum. */
CH_HD float ch_softmax_weight(float score, float max) { return expf(score - max); }

/* Whole-row form: row[0..n_valid) are one query's scores, row[n_valid..n) keys it must not see
 * (causal mask). Replaces the scores with their weights over the row's max, the masked ones with
 * 0, and returns the denominator (>= 1: the max's own weight is 1). The CPU backend's blocked
 * attention (kernels/cpu.c) then multiplies the weights with V and divides by it. */
CH_HD float ch_softmax_row(float *row, int n_valid, int n) {
    float mx = -INFINITY, l = 0.0f;
    for (int j = 0; j < n_valid; j++) mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < n_valid; j++) l += row[j] = ch_softmax_weight(row[j], mx);
    for (int j = n_valid; j < n; j++) row[j] = 0.0f;
    return l;
}

/* Online form: attention for one query accumulated key by key (flash-attention style; the CUDA
 * kernel), so no kernel holds a full score matrix. State: running max m, running denominator l,
 * and the output accumulator acc[D] (scaled by the same factor as l). */
CH_HD void ch_softmax_step(float score, float *m, float *l, float *scale_old, float *p) {
    float m_new = score > *m ? score : *m;
    *scale_old = ch_softmax_weight(*m, m_new); /* expf(-inf) = 0 on the first key */
    *p = ch_softmax_weight(score, m_new);
    *l = *l * *scale_old + *p;
    *m = m_new;
}

#endif
