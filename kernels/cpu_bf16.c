/* cpu_bf16.c - bf16 Linear for the CPU backend: the AMX kernel, the avx512bf16 one, or the widening
 * one (cpu_bf16.h), chosen by CAPHEADS_CPU_BF16 and the CPU's features. */
#include "cpu_bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_amx.h"
#include "cpu_avx512bf16.h"
#include "cpu_features.h"
#include "err.h"

/* The avx512bf16 kernel is in this build (x86-64 GCC: CH_CPU_HAVE_V4) and this CPU runs it. */
static int dp_usable(char *why, size_t len) {
#ifdef CH_CPU_HAVE_V4
    if (ch_cpu_features_get()->avx512bf16) return 1;
    snprintf(why, len, "the CPU has no AVX512-BF16");
#else
    snprintf(why, len, "this build has no AVX512-BF16 code (x86-64 GCC only)");
#endif
    return 0;
}

void ch_bf16_init(ch_bf16_ctx *c, int allow_amx) {
    memset(c, 0, sizeof *c);
    const char *want = getenv("CAPHEADS_CPU_BF16");
    if (!allow_amx) want = "widen";
    else if (!want || !*want) want = "auto";
    char amx_no[96] = "", dp_no[96] = "";
    int amx = 0, dp = 0;
    if (!strcmp(want, "widen")) {
        snprintf(c->why_not, sizeof c->why_not, "%s", allow_amx ? "CAPHEADS_CPU_BF16=widen" : "CAPHEADS_CPU_AMX=0");
    } else if (!strcmp(want, "avx512bf16")) {
        if ((dp = dp_usable(dp_no, sizeof dp_no))) snprintf(c->why_not, sizeof c->why_not, "CAPHEADS_CPU_BF16=avx512bf16");
        else snprintf(c->why_not, sizeof c->why_not, "CAPHEADS_CPU_BF16=avx512bf16, but %s", dp_no);
    } else {
        if (strcmp(want, "auto") && strcmp(want, "amx")) {
            fprintf(stderr, "capheads: warning: CAPHEADS_CPU_BF16=%s is not auto, amx, avx512bf16 or widen; using auto\n",
                    want);
            want = "auto";
        }
        if (!(amx = ch_amx_usable(amx_no, sizeof amx_no))) {
            dp = dp_usable(dp_no, sizeof dp_no);
            snprintf(c->why_not, sizeof c->why_not, "%s%s%s%s%s", !strcmp(want, "amx") ? "CAPHEADS_CPU_BF16=amx, but " : "",
                     amx_no, dp ? "" : " and ", dp ? "" : dp_no, "");
        }
    }
    c->kernel = amx ? CH_BF16_K_AMX : dp ? CH_BF16_K_AVX512BF16 : CH_BF16_K_WIDEN;
    c->amx = amx;
}

void ch_bf16_describe(const ch_bf16_ctx *c, char *buf, size_t len) {
    if (c->kernel == CH_BF16_K_AMX) snprintf(buf, len, "on AMX tiles");
    else if (c->kernel == CH_BF16_K_AVX512BF16)
        snprintf(buf, len, "on AVX512-BF16 (not AMX: %s)", c->why_not);
    else snprintf(buf, len, "on OpenBLAS, widened: %s", c->why_not);
}

void ch_bf16_free(ch_bf16_ctx *c) {
    free(c->scratch[0]), free(c->scratch[1]);
    memset(c, 0, sizeof *c);
}

int ch_bf16_load(const ch_bf16_ctx *c, const ch_st_tensor *t, ch_weight *w) {
    if (t->dtype != CH_DT_BF16 || t->ndim != 2)
        CH_FAIL(CH_EINTERNAL, "%s: tensor '%s' is not a bf16 matrix", t->file, t->name);
    memset(w, 0, sizeof *w);
    w->rows = t->shape[0], w->cols = t->shape[1], w->dtype = CH_DT_BF16;
    size_t n = (size_t)(w->rows * w->cols);
    int tiles = c->kernel != CH_BF16_K_WIDEN;
    size_t bytes = tiles ? ch_amx_weight_elems(w->rows, w->cols) * sizeof(uint16_t) : n * sizeof(float);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) CH_FAIL(CH_ENOMEM, "%s: out of memory loading tensor '%s' (%zu bytes)", t->file, t->name, bytes);
    if (tiles) ch_amx_pack_weight(t->data, w->rows, w->cols, p);
    else ch_convert_to_f32(t->data, CH_DT_BF16, n, p);
    w->data = p;
    w->packed = tiles ? CH_BF16_TILES : CH_BF16_WIDE;
    return 0;
}

/* The MLP holds its input and its intermediate at once: callers ask for hidden + intermediate. */
size_t ch_bf16_workspace(const ch_bf16_ctx *c, size_t in) {
    return c->kernel != CH_BF16_K_WIDEN ? (in + 31) / 32 * 32 * sizeof(uint16_t) : in * sizeof(float);
}

static int grow(ch_bf16_ctx *c, int i, size_t bytes) {
    if (bytes <= c->scratch_bytes[i]) return 0;
    free(c->scratch[i]);
    c->scratch_bytes[i] = 0;
    c->scratch[i] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!c->scratch[i]) CH_FAIL(CH_ENOMEM, "cpu backend: out of memory for a bf16 GEMM input (%zu bytes)", bytes);
    c->scratch_bytes[i] = bytes;
    return 0;
}

int ch_bf16_round_input(ch_bf16_ctx *c, const float *x, int64_t ldx, int64_t ntok, int64_t in, const float **xr) {
    CH_TRY(grow(c, 0, (size_t)ntok * (size_t)in * sizeof(float)));
    float *r = c->scratch[0];
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < ntok; t++) {
        const float *xt = x + t * ldx;
        float *rt = r + t * in;
        CH_SIMD
        for (int64_t k = 0; k < in; k++) rt[k] = ch_bf16_to_f32(ch_f32_to_bf16(xt[k]));
    }
    *xr = r;
    return 0;
}

int ch_bf16_can_fuse(const ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down) {
    return c->kernel != CH_BF16_K_WIDEN && gate->packed == CH_BF16_TILES && up->packed == CH_BF16_TILES &&
           down->packed == CH_BF16_TILES &&
           gate->rows == up->rows &&
           gate->cols == up->cols && down->cols == gate->rows && down->rows == gate->cols;
}

int ch_bf16_mlp(ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down, const float *x,
                int64_t ntok, float *out) {
    if (!ch_bf16_can_fuse(c, gate, up, down)) CH_FAIL(CH_EINTERNAL, "cpu backend: no fused MLP kernel for these weights");
    if (ntok <= 0) return 0;
    if (c->kernel == CH_BF16_K_AVX512BF16) {
#ifdef CH_CPU_HAVE_V4
        CH_TRY(grow(c, 0, ch_dpbf16_input_elems(ntok, gate->cols) * sizeof(uint16_t)));
        CH_TRY(grow(c, 1, ch_dpbf16_input_elems(ntok, gate->rows) * sizeof(uint16_t)));
        ch_dpbf16_mlp(gate->data, up->data, down->data, gate->rows, gate->cols, x, ntok, c->scratch[0], c->scratch[1],
                      out);
#endif
        return 0;
    }
    CH_TRY(grow(c, 0, ch_amx_input_elems(ntok, gate->cols) * sizeof(uint16_t)));
    CH_TRY(grow(c, 1, ch_amx_input_elems(ntok, gate->rows) * sizeof(uint16_t)));
    ch_amx_mlp(gate->data, up->data, down->data, gate->rows, gate->cols, x, ntok, c->scratch[0], c->scratch[1], out);
    return 0;
}

int ch_bf16_linear(ch_bf16_ctx *c, const ch_weight *w, const float *x, int64_t ldx, int64_t ntok, float *y,
                   int64_t ldy) {
    if (ntok <= 0 || w->rows <= 0) return 0;
    if (w->packed != CH_BF16_TILES || c->kernel == CH_BF16_K_WIDEN)
        CH_FAIL(CH_EINTERNAL, "cpu backend: ch_bf16_linear of a weight not in tiles");
    if (c->kernel == CH_BF16_K_AVX512BF16) {
#ifdef CH_CPU_HAVE_V4
        CH_TRY(grow(c, 0, ch_dpbf16_input_elems(ntok, w->cols) * sizeof(uint16_t)));
        ch_dpbf16_linear(w->data, w->rows, w->cols, x, ldx, ntok, c->scratch[0], y, ldy);
#endif
        return 0;
    }
    CH_TRY(grow(c, 0, ch_amx_input_elems(ntok, w->cols) * sizeof(uint16_t)));
    ch_amx_linear(w->data, w->rows, w->cols, x, ldx, ntok, c->scratch[0], y, ldy);
    return 0;
}
