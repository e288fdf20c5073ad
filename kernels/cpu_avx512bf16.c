/* cpu_avx512bf16.c - bf16 Linear and MLP on VDPBF16PS (cpu_avx512bf16.h for the contract).
 *
 * Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 (and -fno-trapping-math,
 * as the row loops, so that the MLP's SwiGLU is the same code as theirs): every function here
 * may use those instructions. ch_bf16_init calls in only on CPUs whose CPUID and XCR0 say so.
 *
 * Register block: 6 tokens x 64 outputs (4 vectors of 16) = 24 zmm accumulators; per pair of k,
 * 4 weight vectors are loaded (the tile rows of 4 consecutive 16-output panels) and each token's
 * pair of bf16 broadcast to all lanes: 24 VDPBF16PS per 4 loads and 6 broadcasts. A task is a
 * group of 64 outputs by a block of TOK_BLOCK tokens, summed K_CHUNK pairs of k at a time (the
 * weight chunk, 64 KiB, and the inputs' chunk stay in L2 across the block's tokens); between
 * chunks the f32 sums wait in the output, exactly. */
#include "cpu_avx512bf16.h"

#include <immintrin.h>
#include <string.h>

#include "ops_math.h"

#define MR 6           /* tokens of the register block */
#define TOK_BLOCK 192  /* tokens a task covers (32 register blocks) */
#define K_CHUNK 256    /* pairs of k summed before moving to the next register block */
#define FN static inline __attribute__((always_inline))
/* the bf16 copies are read a pair (32 bits) at a time */
typedef int32_t __attribute__((may_alias)) pair_t;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

size_t ch_dpbf16_input_elems(int64_t ntok, int64_t cols) { return (size_t)ntok * (size_t)round_up(cols, 32); }

/* c[i * ldc + 16 j + l] (+)= sum over np pairs p of the products of token i's pair p (xa, pitch
 * xpitch pairs) and panel j's vector p (wp[j]); lanes past nvalid are neither read nor written. */
FN void micro(const int M, const int NV, const pair_t *xa, int64_t xpitch, const uint16_t *const *wp, int64_t np,
              float *c, int64_t ldc, int load, int nvalid) {
    __m512 acc[MR][4];
    __mmask16 mk[4];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
        int v = nvalid - 16 * j;
        mk[j] = v >= 16 ? (__mmask16)0xffff : v <= 0 ? (__mmask16)0 : (__mmask16)((1u << v) - 1);
    }
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            acc[i][j] = load ? _mm512_maskz_loadu_ps(mk[j], c + i * ldc + 16 * j) : _mm512_setzero_ps();
    const uint16_t *w0 = wp[0], *w1 = wp[NV > 1 ? 1 : 0], *w2 = wp[NV > 2 ? 2 : 0], *w3 = wp[NV > 3 ? 3 : 0];
    for (int64_t p = 0; p < np; p++) {
        __m512bh wv[4];
        wv[0] = (__m512bh)_mm512_load_si512(w0 + p * 32);
        if (NV > 1) wv[1] = (__m512bh)_mm512_load_si512(w1 + p * 32);
        if (NV > 2) wv[2] = (__m512bh)_mm512_load_si512(w2 + p * 32);
        if (NV > 3) wv[3] = (__m512bh)_mm512_load_si512(w3 + p * 32);
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m512bh xv = (__m512bh)_mm512_set1_epi32(xa[i * xpitch + p]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[j], xv);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) _mm512_mask_storeu_ps(c + i * ldc + 16 * j, mk[j], acc[i][j]);
}

#define MICRO_CASE(m, nv)                                                                                    \
    case (m) * 8 + (nv):                                                                                     \
        micro(m, nv, xa, xpitch, wp, np, c, ldc, load, nvalid);                                              \
        break;
static void micro_any(int M, int NV, const pair_t *xa, int64_t xpitch, const uint16_t *const *wp, int64_t np,
                      float *c, int64_t ldc, int load, int nvalid) {
    switch (M * 8 + NV) {
        MICRO_CASE(6, 4) MICRO_CASE(5, 4) MICRO_CASE(4, 4) MICRO_CASE(3, 4) MICRO_CASE(2, 4) MICRO_CASE(1, 4)
        MICRO_CASE(6, 2) MICRO_CASE(5, 2) MICRO_CASE(4, 2) MICRO_CASE(3, 2) MICRO_CASE(2, 2) MICRO_CASE(1, 2)
    default:
        break;
    }
}

/* Round x [ntok, cols] (row pitch ldx) to bf16 into xb [ntok, KP], zeros past cols; the team's
 * share (an omp for, whose barrier orders it before use). */
static void pack_input(const float *x, int64_t ldx, int64_t ntok, int64_t cols, uint16_t *xb) {
    const int64_t kp = round_up(cols, 32);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < ntok; t++) {
        const float *xr = x + t * ldx;
        uint16_t *o = xb + t * kp;
#pragma omp simd
        for (int64_t k = 0; k < cols; k++) o[k] = ch_f32_to_bf16(xr[k]);
        for (int64_t k = cols; k < kp; k++) o[k] = 0;
    }
}

/* One task of a Linear: outputs of panel group g (64 outputs, fewer at the edge) x tokens [t0, t1). */
static void linear_task(const uint16_t *w, int64_t rows, int64_t cols, const uint16_t *xb, float *y, int64_t ldy,
                        int64_t g, int64_t t0, int64_t t1) {
    const int64_t kp = round_up(cols, 32), npairs = kp / 2, panel = kp * 16, panels = round_up(rows, 32) / 16;
    const int nv = panels - 4 * g >= 4 ? 4 : (int)(panels - 4 * g);
    const int64_t o0 = 64 * g;
    const pair_t *x32 = (const pair_t *)xb;
    for (int64_t p0 = 0; p0 < npairs; p0 += K_CHUNK) {
        int64_t np = npairs - p0 < K_CHUNK ? npairs - p0 : K_CHUNK;
        const uint16_t *wp[4];
        for (int j = 0; j < 4; j++) wp[j] = w + (4 * g + (j < nv ? j : 0)) * panel + p0 * 32;
        for (int64_t t = t0; t < t1; t += MR) {
            int m = t1 - t < MR ? (int)(t1 - t) : MR;
            micro_any(m, nv, x32 + t * npairs + p0, npairs, wp, np, y + t * ldy + o0, ldy, p0 > 0, (int)(rows - o0));
        }
    }
}

static void linear_tasks(const uint16_t *w, int64_t rows, int64_t cols, const uint16_t *xb, int64_t ntok, float *y,
                         int64_t ldy) {
    const int64_t ng = (round_up(rows, 32) + 63) / 64, nt = (ntok + TOK_BLOCK - 1) / TOK_BLOCK;
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t j = 0; j < nt; j++)
        for (int64_t g = 0; g < ng; g++) {
            int64_t t0 = j * TOK_BLOCK, t1 = t0 + TOK_BLOCK < ntok ? t0 + TOK_BLOCK : ntok;
            linear_task(w, rows, cols, xb, y, ldy, g, t0, t1);
        }
}

void ch_dpbf16_linear(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t ldx, int64_t ntok,
                      uint16_t *xb, float *y, int64_t ldy) {
    if (ntok <= 0 || rows <= 0) return;
#pragma omp parallel
    {
        pack_input(x, ldx, ntok, cols, xb);
        linear_tasks(w, rows, cols, xb, ntok, y, ldy);
    }
}

/* One task of the MLP's middle: features [32 g, 32 g + 32) of gate and up x tokens [t0, t1), the
 * sums in tmp [TOK_BLOCK][64] (gate 0..31, up 32..63), then h into hb (row pitch kpi). */
static void gate_up_task(const uint16_t *wg, const uint16_t *wu, int64_t inter, int64_t hidden, const uint16_t *xb,
                         uint16_t *hb, int64_t g, int64_t t0, int64_t t1, float *tmp) {
    const int64_t kp = round_up(hidden, 32), npairs = kp / 2, panel = kp * 16, kpi = round_up(inter, 32);
    const pair_t *x32 = (const pair_t *)xb;
    for (int64_t p0 = 0; p0 < npairs; p0 += K_CHUNK) {
        int64_t np = npairs - p0 < K_CHUNK ? npairs - p0 : K_CHUNK;
        const uint16_t *wp[4] = {wg + (2 * g) * panel + p0 * 32, wg + (2 * g + 1) * panel + p0 * 32,
                                 wu + (2 * g) * panel + p0 * 32, wu + (2 * g + 1) * panel + p0 * 32};
        for (int64_t t = t0; t < t1; t += MR) {
            int m = t1 - t < MR ? (int)(t1 - t) : MR;
            micro_any(m, 4, x32 + t * npairs + p0, npairs, wp, np, tmp + (t - t0) * 64, 64, p0 > 0, 64);
        }
    }
    for (int64_t t = t0; t < t1; t++) {
        const float *s = tmp + (t - t0) * 64;
        uint16_t *h = hb + t * kpi + 32 * g;
        /* features past inter have zero weights, so zero sums and h = silu(0) * 0 = 0: the padding */
#pragma omp simd
        for (int f = 0; f < 32; f++) h[f] = ch_f32_to_bf16(ch_swiglu(s[f], s[32 + f]));
    }
}

void ch_dpbf16_mlp(const uint16_t *wg, const uint16_t *wu, const uint16_t *wd, int64_t inter, int64_t hidden,
                   const float *x, int64_t ntok, uint16_t *xb, uint16_t *hb, float *out) {
    if (ntok <= 0) return;
    const int64_t ng = round_up(inter, 32) / 32, nt = (ntok + TOK_BLOCK - 1) / TOK_BLOCK;
#pragma omp parallel
    {
        float tmp[TOK_BLOCK * 64] __attribute__((aligned(64))); /* 48 KiB of this thread's stack */
        pack_input(x, hidden, ntok, hidden, xb);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int64_t j = 0; j < nt; j++)
            for (int64_t g = 0; g < ng; g++) {
                int64_t t0 = j * TOK_BLOCK, t1 = t0 + TOK_BLOCK < ntok ? t0 + TOK_BLOCK : ntok;
                gate_up_task(wg, wu, inter, hidden, xb, hb, g, t0, t1, tmp);
            }
        /* h is whole (the omp for's barrier): down reads it */
        linear_tasks(wd, hidden, inter, hb, ntok, out, hidden);
    }
}
