/* cpu_amx.h - the CPU backend's bf16 Linear on Intel AMX tiles (Sapphire Rapids and later).
 *
 * y[t, o] = sum_k bf16(x[t, k]) * w[o, k]: the weight stays bf16, each activation is rounded to
 * bf16 by ch_f32_to_bf16 (ops_math.h, the rule the CUDA backend rounds with), and the products -
 * exact in f32, a bf16 mantissa times a bf16 mantissa fits in 16 bits - are summed in f32 by
 * TDPBF16PS. The sums run k-block by k-block in a fixed order whatever the thread count, so the
 * output does not depend on it.
 *
 * Layouts (zero-padded to whole tiles; "KP" is cols rounded up to 32):
 *   weight  [rows/16][KP/32] tiles of 16 k-pairs x 16 outputs x 2 (AMX's "VNNI" B layout): element
 *           (r, n, e) of tile (ob, kb) is w[16 ob + n, 32 kb + 2 r + e]. Packed once at load.
 *   input   [ntok/16][KP/32] tiles of 16 tokens x 32 k: packed (and rounded) per call, so every
 *           tile load is 1 KiB contiguous whatever the row length (no cache-set conflicts).
 * TDPBF16PS treats subnormal inputs and results as zero (the portable kernel keeps them): a
 * difference only below 1.2e-38. ch_amx_linear and ch_amx_mlp use AMX and AVX-512 instructions
 * and fault on another CPU: call them only after ch_amx_usable() said yes (the check and the
 * packing of weights run anywhere). */
#ifndef CH_CPU_AMX_H
#define CH_CPU_AMX_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU has AMX-BF16 and AVX-512BW and the kernel lets this process use the tile
 * registers (Linux asks each process to request them: arch_prctl ARCH_REQ_XCOMP_PERM, done here
 * once; the permission covers every thread). 0 otherwise, with the reason in why. */
int ch_amx_usable(char *why, size_t why_len);

/* uint16 elements of a packed weight of rows x cols, and of a packed input of ntok x cols. */
size_t ch_amx_weight_elems(int64_t rows, int64_t cols);
size_t ch_amx_input_elems(int64_t ntok, int64_t cols);

/* Pack a row-major bf16 weight [rows, cols] (any alignment: checkpoint data). */
void ch_amx_pack_weight(const void *w, int64_t rows, int64_t cols, uint16_t *dst);

/* y[t * ldy + o] = sum_k bf16(x[t * ldx + k]) * w[o, k] for t < ntok, o < rows, with w packed by
 * ch_amx_pack_weight and xpack scratch of ch_amx_input_elems(ntok, cols). OpenMP inside. */
void ch_amx_linear(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t ldx, int64_t ntok,
                   uint16_t *xpack, float *y, int64_t ldy);

/* The MLP: out [ntok, hidden] = (silu(x wg^T) * (x wu^T)) wd^T, with wg, wu [inter, hidden] and wd
 * [hidden, inter] packed, x [ntok, hidden] - bit for bit ch_amx_linear of gate and up, ch_swiglu,
 * and ch_amx_linear of down, without the two products or h ever in memory as f32: h is rounded to
 * bf16 into down's packed input hpack (ch_amx_input_elems(ntok, inter)) as it is made. xpack:
 * ch_amx_input_elems(ntok, hidden). */
void ch_amx_mlp(const uint16_t *wg, const uint16_t *wu, const uint16_t *wd, int64_t inter, int64_t hidden,
                const float *x, int64_t ntok, uint16_t *xpack, uint16_t *hpack, float *out);

#endif
