/* cpu_bf16.h - the CPU backend's Linear for bf16 weights: y = bf16(x) W^T, summed in f32.
 *
 * Every activation is rounded to bf16 by ch_f32_to_bf16 before it is multiplied: the CUDA
 * backend's contract for 16-bit weights (kernels/cuda.cu cuda_gemm). Three kernels, one result up
 * to the order of the f32 sums, chosen by CPU features (cpu_features.h), never by CPU model:
 *   AMX        the weight packed into tiles at load (cpu_amx.h), half the memory of f32, summed
 *              by TDPBF16PS; where the CPU has AMX-BF16 and the kernel grants the tile state;
 *   avx512bf16 the same packed weight (a tile row is one VDPBF16PS operand), summed by VDPBF16PS
 *              (cpu_avx512bf16.h); where the CPU has AVX512-BF16 but no usable AMX (Zen 4/5,
 *              Cooper Lake, virtual machines that mask AMX);
 *   widen      the weight widened to f32 at load (exact), the rounded activations multiplied by
 *             OpenBLAS SGEMM - bf16 products are exact in f32, so this is the same arithmetic, at
 *             the speed and the memory of --precision f32 (widening block by block at each call
 *             instead cost 30% of the speed: every block repacked the activations).
 * The AMX kernel splits the work into blocks fixed by the shapes alone, and the avx512bf16 one sums
 * every output over k in order in one accumulator, so their bits do not depend on the thread
 * count; the widening one splits the outputs over the threads as --precision f32 does (the
 * thread count may change last bits there).
 *
 * CAPHEADS_CPU_BF16 = auto (default: amx, else avx512bf16, else widen) | amx | avx512bf16 |
 * widen picks one, so that any machine can measure each path it runs; a kernel the CPU lacks
 * falls back as auto does, the reason in the backend's info string. CAPHEADS_CPU_AMX=0 (older)
 * is CAPHEADS_CPU_BF16=widen. */
#ifndef CH_CPU_BF16_H
#define CH_CPU_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* ch_weight.packed of a bf16 Linear weight on the CPU: the AMX tile layout (cpu_amx.h; both the
 * AMX and the avx512bf16 kernel multiply it), or f32 values */
enum { CH_BF16_AMX = 1, CH_BF16_TILES = CH_BF16_AMX, CH_BF16_WIDE = 2 };

/* the kernels */
typedef enum { CH_BF16_K_WIDEN = 0, CH_BF16_K_AMX = 1, CH_BF16_K_AVX512BF16 = 2 } ch_bf16_kernel;

typedef struct {
    int amx;             /* 1: AMX kernel (kernel == CH_BF16_K_AMX) */
    ch_bf16_kernel kernel;
    char why_not[160];   /* why not AMX (or not the kernel asked for), when it is not */
    void *scratch[2];    /* the rounded inputs of the current call (the MLP's two), grown as needed */
    size_t scratch_bytes[2];
} ch_bf16_ctx;

/* The kernel by CAPHEADS_CPU_BF16 and the CPU's features; allow_amx 0 forces the widening one
 * (CAPHEADS_CPU_AMX=0). */
void ch_bf16_init(ch_bf16_ctx *c, int allow_amx);
/* "on AMX tiles", "on AVX512-BF16 dot products (no AMX: ...)", "on OpenBLAS, widened: ...":
 * for the backend's info string. */
void ch_bf16_describe(const ch_bf16_ctx *c, char *buf, size_t len);
void ch_bf16_free(ch_bf16_ctx *c);

/* A bf16 [rows, cols] tensor as a CH_WEIGHT_LINEAR weight: dtype bf16 (the contract), stored as
 * tiles (packed CH_BF16_TILES: AMX and avx512bf16) or as f32 row-major (CH_BF16_WIDE). */
int ch_bf16_load(const ch_bf16_ctx *c, const ch_st_tensor *t, ch_weight *w);

/* Scratch bytes per token for inputs of `in` features. */
size_t ch_bf16_workspace(const ch_bf16_ctx *c, size_t in);

/* Tiled weights (AMX or avx512bf16): y[t * ldy + o] = sum_k bf16(x[t * ldx + k]) * w[o, k], t < ntok, o < w->rows. */
int ch_bf16_linear(ch_bf16_ctx *c, const ch_weight *w, const float *x, int64_t ldx, int64_t ntok, float *y,
                   int64_t ldy);

/* Portable weights: x [ntok, in] (row pitch ldx) rounded to bf16 values as f32, into scratch that
 * *xr points to (row pitch in) until the next call; the caller multiplies it by the f32 data. */
int ch_bf16_round_input(ch_bf16_ctx *c, const float *x, int64_t ldx, int64_t ntok, int64_t in, const float **xr);

/* 1 when ch_bf16_mlp has a fused kernel for these weights (all three tiled). */
int ch_bf16_can_fuse(const ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down);
/* out [ntok, down->rows] = (silu(x gate^T) * (x up^T)) down^T in one pass (ch_bf16_can_fuse): bit
 * for bit three ch_bf16_linear calls around ch_swiglu (cpu_amx.h ch_amx_mlp). */
int ch_bf16_mlp(ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down, const float *x,
                int64_t ntok, float *out);

#endif
