/* cpu_avx512bf16.h - the CPU backend's bf16 Linear on AVX512-BF16 dot products (VDPBF16PS), for
 * CPUs with AVX512-BF16 and no usable AMX: AMD Zen 4 and 5, Intel Cooper Lake, virtual machines
 * that mask AMX.
 *
 * y[t, o] = sum_k bf16(x[t, k]) * w[o, k], the contract of cpu_amx.h: the weight stays bf16 - in
 * the AMX tile layout, packed by ch_amx_pack_weight at load, whose tile rows are exactly the
 * vectors VDPBF16PS takes (16 outputs x one pair of k) - each activation is rounded by
 * ch_f32_to_bf16 (into a bf16 copy of the input, per call), and the products are summed in f32
 * by VDPBF16PS (subnormal inputs and results as zero, as on AMX). Every output's sum runs over k
 * in order, from k = 0 to the end, in one accumulator (spilled exactly to the output between
 * k-chunks): the bits depend on neither the blocking nor the thread count.
 *
 * The file is compiled with AVX-512 flags (kernels/CMakeLists in the top CMakeLists.txt): call
 * it only where ch_cpu_features_get()->avx512bf16 says so. */
#ifndef CH_CPU_AVX512BF16_H
#define CH_CPU_AVX512BF16_H

#include <stddef.h>
#include <stdint.h>

/* uint16 elements of the bf16 copy of an input of ntok x cols. */
size_t ch_dpbf16_input_elems(int64_t ntok, int64_t cols);

/* y[t * ldy + o] = sum_k bf16(x[t * ldx + k]) * w[o, k] for t < ntok, o < rows; w packed by
 * ch_amx_pack_weight, xb scratch of ch_dpbf16_input_elems(ntok, cols). OpenMP inside. */
void ch_dpbf16_linear(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t ldx, int64_t ntok,
                      uint16_t *xb, float *y, int64_t ldy);

/* The MLP as cpu_amx.h's ch_amx_mlp: out [ntok, hidden] = (silu(x wg^T) * (x wu^T)) wd^T, bit for
 * bit ch_dpbf16_linear of gate and up, ch_swiglu, and ch_dpbf16_linear of down; h is rounded to
 * bf16 into hb (ch_dpbf16_input_elems(ntok, inter)) as it is made, the products never stored as
 * f32. xb: ch_dpbf16_input_elems(ntok, hidden). */
void ch_dpbf16_mlp(const uint16_t *wg, const uint16_t *wu, const uint16_t *wd, int64_t inter, int64_t hidden,
                   const float *x, int64_t ntok, uint16_t *xb, uint16_t *hb, float *out);

#endif
