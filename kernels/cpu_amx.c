/* cpu_amx.c - bf16 Linear on AMX tiles (see cpu_amx.h for the contract and the layouts).
 *
 * The file is compiled with the project's flags; only the functions marked AMX_FN use AMX and
 * AVX-512 instructions, so the feature check itself runs on any x86-64 CPU. Tile use:
 *   tmm0..3  the f32 sums of a 32-token x 32-output block (2 x 2 tiles of 16 x 16; in the MLP,
 *            16 gate and 16 up outputs)
 *   tmm4, 5  two 16-token input tiles (16 rows x 32 bf16)
 *   tmm6, 7  two 16-output weight tiles (16 k-pairs x 16 outputs x 2 bf16)
 * Each k-step of 32 loads 4 KiB and runs 4 TDPBF16PS: every tile loaded is used twice. */
#define _DEFAULT_SOURCE /* syscall() */
#include "cpu_amx.h"

#include <stdio.h>
#include <string.h>

#include "ops_math.h"

#define TILE_ELEMS 512 /* uint16 in one 16 x 32 bf16 tile (1 KiB) */
#define OUT_BLOCK 128  /* outputs a task covers: 4 weight-tile pairs, 128 x 2048 x 2 B = 512 KiB of L2 */
#define TOK_BLOCK 256  /* tokens a task covers */
#define K_BLOCKS 64    /* k-blocks of 32 summed before moving on (2048 k): bounds the L2 footprint */
#define GU_BLOCK 64    /* gate and up outputs an MLP task covers: 2 x 64 x K x 2 B = 1 MiB of L2 at K = 4096 */

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

size_t ch_amx_weight_elems(int64_t rows, int64_t cols) {
    return (size_t)round_up(rows, 32) * (size_t)round_up(cols, 32);
}
size_t ch_amx_input_elems(int64_t ntok, int64_t cols) {
    return (size_t)round_up(ntok, 32) * (size_t)round_up(cols, 32);
}

void ch_amx_pack_weight(const void *w, int64_t rows, int64_t cols, uint16_t *dst) {
    const unsigned char *src = w;
    int64_t kbs = round_up(cols, 32) / 32, obs = round_up(rows, 32) / 16;
#pragma omp parallel for schedule(static)
    for (int64_t ob = 0; ob < obs; ob++)
        for (int64_t kb = 0; kb < kbs; kb++) {
            uint16_t *t = dst + (size_t)(ob * kbs + kb) * TILE_ELEMS;
            for (int n = 0; n < 16; n++) { /* output row o's 32 k, zeros past the matrix */
                int64_t o = ob * 16 + n, k0 = kb * 32, nk = cols - k0 < 32 ? cols - k0 : 32;
                uint16_t seg[32] = {0};
                if (o < rows) memcpy(seg, src + ((size_t)o * cols + k0) * 2, (size_t)nk * 2);
                for (int j = 0; j < 32; j++) t[((j / 2) * 16 + n) * 2 + j % 2] = seg[j];
            }
        }
}

#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_include)
#if __has_include(<amxtileintrin.h>)
#define CH_AMX_BUILT 1
#endif
#endif

#ifdef CH_AMX_BUILT
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_FN __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int ch_amx_usable(char *why, size_t why_len) {
    unsigned a, b, c, d;
    const char *no = NULL;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) no = "the OS does not enable XSAVE";
    else if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) no = "CPUID leaf 7 is missing";
    else if (!(d & (1u << 24)) || !(d & (1u << 22))) no = "the CPU has no AMX-BF16";
    else if (!(b & (1u << 16)) || !(b & (1u << 30)) || !(b & (1u << 31))) no = "the CPU has no AVX-512 F/BW/VL";
    else {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        /* XCR0: SSE, AVX, the three AVX-512 states, and the two tile states */
        unsigned need = (1u << 1) | (1u << 2) | (7u << 5) | (3u << 17);
        if ((lo & need) != need) no = "the OS does not enable the AVX-512 and tile register states";
        else if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
            no = "the kernel refused this process the AMX tile state (arch_prctl)";
    }
    if (why && why_len) snprintf(why, why_len, "%s", no ? no : "");
    return no == NULL;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

AMX_FN static void tiles_begin(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
}

/* Input tile (tb, kb): rows 16 tb.., k 32 kb.., rounded; zeros past ntok and cols. */
AMX_FN static void pack_input_tile(const float *x, int64_t ldx, int64_t ntok, int64_t cols, int64_t tb,
                                   int64_t kb, uint16_t *t) {
    int64_t k0 = kb * 32;
    for (int r = 0; r < 16; r++) {
        int64_t tok = tb * 16 + r;
        uint16_t *o = t + r * 32;
        if (tok >= ntok) {
            memset(o, 0, 64);
            continue;
        }
        const float *xr = x + (size_t)tok * ldx + k0;
        if (k0 + 32 <= cols) {
#pragma omp simd
            for (int c = 0; c < 32; c++) o[c] = ch_f32_to_bf16(xr[c]);
        } else
            for (int c = 0; c < 32; c++) o[c] = k0 + c < cols ? ch_f32_to_bf16(xr[c]) : 0;
    }
}

/* What becomes of a block's f32 sums once its tiles are stored (tmp [32][32], 32 tokens x 32
 * columns): a Linear copies the nt x no valid part to its output c (row pitch ldc floats); the
 * MLP takes gate from columns 0..15 and up from 16..31 and writes h = ch_swiglu(gate, up), rounded
 * by ch_f32_to_bf16, straight into the 16 columns of the down projection's
 * packed input h16 (row pitch 32; the next 16 tokens' tile h_pair further). Either is done a few
 * rows at a time between the tile products of the next block: the two use different units, and
 * the MLP's division and exponential cost a fifth of its AMX time when they ran after it (15.1 ->
 * 11.9 ms a layer of Qwen2.5-0.5B's MLP at 1,024 tokens, 2 threads, once overlapped). */
typedef struct {
    float tmp[32 * 32] __attribute__((aligned(64)));
    int pending, next; /* rows next..31 of tmp are still to be written out */
    int mlp;           /* 1: SwiGLU into h16; 0: copy into c */
    float *c;
    int64_t ldc, nt, no;
    uint16_t *h16;
    size_t h_pair;
} epilogue;

AMX_FN static void epilogue_rows(epilogue *e, int upto) {
    if (!e->pending) return;
    for (; e->next < upto; e->next++) {
        const int i = e->next;
        const float *s = e->tmp + i * 32;
        if (e->mlp) {
            uint16_t *row = e->h16 + (i >= 16 ? e->h_pair : 0) + (i % 16) * 32;
#pragma omp simd
            for (int j = 0; j < 16; j++) row[j] = ch_f32_to_bf16(ch_swiglu(s[j], s[16 + j]));
        } else if (i < e->nt && e->no == 32) {
            _mm512_storeu_ps(e->c + i * e->ldc, _mm512_load_ps(s));
            _mm512_storeu_ps(e->c + i * e->ldc + 16, _mm512_load_ps(s + 16));
        } else if (i < e->nt)
            memcpy(e->c + i * e->ldc, s, (size_t)e->no * sizeof(float));
    }
    if (e->next >= 32) e->pending = 0;
}

/* The sums of the 32 x 32 block whose input tiles start at a (16 tokens) and a + a_pair (the next
 * 16), against weight tiles b0 (16 columns) and b1 (the next 16), over nk k-blocks, starting from
 * zero or - a later k-chunk of a Linear - from the f32 values at load (row pitch ldl, after the
 * pending epilogue, which may be this block's own, is finished). The pending epilogue runs between
 * the products; the sums end in e->tmp, for the caller to make the next pending epilogue. */
AMX_FN static void block_sums(const uint16_t *a, size_t a_pair, const uint16_t *b0, const uint16_t *b1, int64_t nk,
                              const float *load, int64_t ldl, epilogue *e) {
    const int64_t per_step = (32 + nk - 1) / nk; /* pending rows finished per k-step */
    if (load) {
        epilogue_rows(e, 32);
        const size_t ld = (size_t)ldl * sizeof(float);
        _tile_loadd(0, load, ld);
        _tile_loadd(1, load + 16, ld);
        _tile_loadd(2, load + 16 * ldl, ld);
        _tile_loadd(3, load + 16 * ldl + 16, ld);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t kb = 0; kb < nk; kb++) {
        _tile_loadd(4, a + kb * TILE_ELEMS, 64);
        _tile_loadd(5, a + a_pair + kb * TILE_ELEMS, 64);
        _tile_loadd(6, b0 + kb * TILE_ELEMS, 64);
        _tile_loadd(7, b1 + kb * TILE_ELEMS, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        epilogue_rows(e, (int)((kb + 1) * per_step < 32 ? (kb + 1) * per_step : 32));
    }
    epilogue_rows(e, 32);
    _tile_stored(0, e->tmp, 128);
    _tile_stored(1, e->tmp + 16, 128);
    _tile_stored(2, e->tmp + 16 * 32, 128);
    _tile_stored(3, e->tmp + 16 * 32 + 16, 128);
}

/* One task of a Linear: outputs [o0, o1) x tokens [t0, t1), both 32-aligned ranges of the padded
 * sizes. A whole block is summed k-chunk by k-chunk, later chunks adding to the output; an edge
 * block (past ntok or rows) all of k at once. */
AMX_FN static void task(const uint16_t *w, int64_t rows, int64_t kbs, const uint16_t *xp, int64_t ntok, float *y,
                        int64_t ldy, int64_t o0, int64_t o1, int64_t t0, int64_t t1, epilogue *e) {
    const size_t pair = (size_t)kbs * TILE_ELEMS; /* from one 16-row tile strip to the next */
    for (int64_t kc = 0; kc < kbs; kc += K_BLOCKS) {
        int64_t nk = kbs - kc < K_BLOCKS ? kbs - kc : K_BLOCKS;
        for (int64_t t = t0; t < t1; t += 32) {
            const uint16_t *a = xp + (size_t)(t / 16) * pair;
            for (int64_t o = o0; o < o1; o += 32) {
                const uint16_t *b = w + (size_t)(o / 16) * pair;
                int64_t nt = ntok - t < 32 ? ntok - t : 32, no = rows - o < 32 ? rows - o : 32;
                float *c = y + t * ldy + o;
                if (nt == 32 && no == 32)
                    block_sums(a + kc * TILE_ELEMS, pair, b + kc * TILE_ELEMS, b + pair + kc * TILE_ELEMS, nk,
                               kc > 0 ? c : NULL, ldy, e);
                else if (kc == 0 && nt > 0 && no > 0)
                    block_sums(a, pair, b, b + pair, kbs, NULL, 0, e);
                else
                    continue;
                e->pending = 1, e->next = 0, e->mlp = 0, e->c = c, e->ldc = ldy, e->nt = nt, e->no = no;
            }
        }
    }
}

/* One block of the MLP's middle: gate (weight tiles bg) and up (bu) of 32 tokens x 16 features,
 * all of k; its epilogue writes h at h16. Padded tokens and features have zero inputs and
 * weights, so their h is silu(0) * 0 = 0: the padding down needs. */
AMX_FN static void block_gate_up(const uint16_t *a, size_t a_pair, const uint16_t *bg, const uint16_t *bu, int64_t nk,
                                 epilogue *e, uint16_t *h16, size_t h_pair) {
    block_sums(a, a_pair, bg, bu, nk, NULL, 0, e);
    e->pending = 1, e->next = 0, e->mlp = 1, e->h16 = h16, e->h_pair = h_pair;
}

/* Round and pack x into tiles, all threads; the barrier after the loop orders it before use. */
AMX_FN static void pack_input(const float *x, int64_t ldx, int64_t ntok, int64_t cols, uint16_t *xpack) {
    const int64_t kbs = round_up(cols, 32) / 32, tbs = round_up(ntok, 32) / 16;
#pragma omp for collapse(2) schedule(static)
    for (int64_t tb = 0; tb < tbs; tb++)
        for (int64_t kb = 0; kb < kbs; kb++)
            pack_input_tile(x, ldx, ntok, cols, tb, kb, xpack + (size_t)(tb * kbs + kb) * TILE_ELEMS);
}

/* Tasks of OUT_BLOCK outputs x TOK_BLOCK tokens of a Linear whose input is packed in xp, shared
 * by the team; y is complete when it returns (this thread's last epilogue, then a barrier). */
AMX_FN static void linear_tasks(const uint16_t *w, int64_t rows, int64_t cols, const uint16_t *xp, int64_t ntok,
                                float *y, int64_t ldy, epilogue *e) {
    const int64_t kbs = round_up(cols, 32) / 32, rows_p = round_up(rows, 32), ntok_p = round_up(ntok, 32);
    const int64_t n_ob = (rows_p + OUT_BLOCK - 1) / OUT_BLOCK, n_tb = (ntok_p + TOK_BLOCK - 1) / TOK_BLOCK;
#pragma omp for collapse(2) schedule(dynamic, 1) nowait
    for (int64_t i = 0; i < n_ob; i++)
        for (int64_t j = 0; j < n_tb; j++) {
            int64_t o0 = i * OUT_BLOCK, t0 = j * TOK_BLOCK;
            int64_t o1 = o0 + OUT_BLOCK < rows_p ? o0 + OUT_BLOCK : rows_p;
            int64_t t1 = t0 + TOK_BLOCK < ntok_p ? t0 + TOK_BLOCK : ntok_p;
            task(w, rows, kbs, xp, ntok, y, ldy, o0, o1, t0, t1, e);
        }
    epilogue_rows(e, 32);
#pragma omp barrier
}

AMX_FN void ch_amx_mlp(const uint16_t *wg, const uint16_t *wu, const uint16_t *wd, int64_t inter, int64_t hidden,
                       const float *x, int64_t ntok, uint16_t *xpack, uint16_t *hpack, float *out) {
    const int64_t kbs = round_up(hidden, 32) / 32, pair = kbs * TILE_ELEMS;           /* x's tiles */
    const int64_t hkbs = round_up(inter, 32) / 32, h_pair = hkbs * TILE_ELEMS;        /* h's tiles */
    const int64_t inter_p = round_up(inter, 32), ntok_p = round_up(ntok, 32);
    const int64_t n_ob = (inter_p + GU_BLOCK - 1) / GU_BLOCK, n_tb = (ntok_p + TOK_BLOCK - 1) / TOK_BLOCK;
#pragma omp parallel
    {
        pack_input(x, hidden, ntok, hidden, xpack);
        tiles_begin();
        epilogue e;
        e.pending = 0;
#pragma omp for collapse(2) schedule(dynamic, 1) nowait
        for (int64_t i = 0; i < n_ob; i++)
            for (int64_t j = 0; j < n_tb; j++) {
                int64_t o1 = (i + 1) * GU_BLOCK < inter_p ? (i + 1) * GU_BLOCK : inter_p;
                int64_t t1 = (j + 1) * TOK_BLOCK < ntok_p ? (j + 1) * TOK_BLOCK : ntok_p;
                for (int64_t t = j * TOK_BLOCK; t < t1; t += 32)
                    for (int64_t o = i * GU_BLOCK; o < o1; o += 16)
                        block_gate_up(xpack + (t / 16) * pair, (size_t)pair, wg + (o / 16) * pair, wu + (o / 16) * pair,
                                      kbs, &e, hpack + (t / 16) * h_pair + (o / 32) * TILE_ELEMS + o % 32,
                                      (size_t)h_pair);
            }
        epilogue_rows(&e, 32); /* this thread's last block */
#pragma omp barrier
        /* h is whole: down reads it */
        linear_tasks(wd, hidden, inter, hpack, ntok, out, hidden, &e);
        _tile_release();
    }
}

AMX_FN void ch_amx_linear(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t ldx, int64_t ntok,
                          uint16_t *xpack, float *y, int64_t ldy) {
#pragma omp parallel
    {
        pack_input(x, ldx, ntok, cols, xpack);
        tiles_begin();
        epilogue e;
        e.pending = 0;
        linear_tasks(w, rows, cols, xpack, ntok, y, ldy, &e);
        _tile_release();
    }
}

#else /* no AMX in this build */

int ch_amx_usable(char *why, size_t why_len) {
    if (why && why_len) snprintf(why, why_len, "this build has no AMX code (not x86-64 GCC/clang with AMX headers)");
    return 0;
}
void ch_amx_linear(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t ldx, int64_t ntok,
                   uint16_t *xpack, float *y, int64_t ldy) {
    (void)w, (void)rows, (void)cols, (void)x, (void)ldx, (void)ntok, (void)xpack, (void)y, (void)ldy;
}
void ch_amx_mlp(const uint16_t *wg, const uint16_t *wu, const uint16_t *wd, int64_t inter, int64_t hidden,
                const float *x, int64_t ntok, uint16_t *xpack, uint16_t *hpack, float *out) {
    (void)wg, (void)wu, (void)wd, (void)inter, (void)hidden, (void)x, (void)ntok, (void)xpack, (void)hpack, (void)out;
}

#endif
