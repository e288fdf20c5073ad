/* cpu_bf16.c - bf16 Linear for the CPU backend: the AMX kernel or the portable one (cpu_bf16.h). */
#include "cpu_bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_amx.h"
#include "err.h"

void ch_bf16_init(ch_bf16_ctx *c, int allow_amx) {
    memset(c, 0, sizeof *c);
    if (!allow_amx) snprintf(c->why_not, sizeof c->why_not, "CAPHEADS_CPU_AMX=0");
    else c->amx = ch_amx_usable(c->why_not, sizeof c->why_not);
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
    size_t bytes = c->amx ? ch_amx_weight_elems(w->rows, w->cols) * sizeof(uint16_t) : n * sizeof(float);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) CH_FAIL(CH_ENOMEM, "%s: out of memory loading tensor '%s' (%zu bytes)", t->file, t->name, bytes);
    if (c->amx) ch_amx_pack_weight(t->data, w->rows, w->cols, p);
    else ch_convert_to_f32(t->data, CH_DT_BF16, n, p);
    w->data = p;
    w->packed = c->amx ? CH_BF16_AMX : CH_BF16_WIDE;
    return 0;
}

/* The MLP holds its input and its intermediate at once: callers ask for hidden + intermediate. */
size_t ch_bf16_workspace(const ch_bf16_ctx *c, size_t in) {
    return c->amx ? (in + 31) / 32 * 32 * sizeof(uint16_t) : in * sizeof(float);
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
    return c->amx && gate->packed == CH_BF16_AMX && up->packed == CH_BF16_AMX && down->packed == CH_BF16_AMX &&
           gate->rows == up->rows &&
           gate->cols == up->cols && down->cols == gate->rows && down->rows == gate->cols;
}

int ch_bf16_mlp(ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down, const float *x,
                int64_t ntok, float *out) {
    if (!ch_bf16_can_fuse(c, gate, up, down)) CH_FAIL(CH_EINTERNAL, "cpu backend: no fused MLP kernel for these weights");
    if (ntok <= 0) return 0;
    CH_TRY(grow(c, 0, ch_amx_input_elems(ntok, gate->cols) * sizeof(uint16_t)));
    CH_TRY(grow(c, 1, ch_amx_input_elems(ntok, gate->rows) * sizeof(uint16_t)));
    ch_amx_mlp(gate->data, up->data, down->data, gate->rows, gate->cols, x, ntok, c->scratch[0], c->scratch[1], out);
    return 0;
}

int ch_bf16_linear(ch_bf16_ctx *c, const ch_weight *w, const float *x, int64_t ldx, int64_t ntok, float *y,
                   int64_t ldy) {
    if (ntok <= 0 || w->rows <= 0) return 0;
    if (w->packed != CH_BF16_AMX || !c->amx) CH_FAIL(CH_EINTERNAL, "cpu backend: ch_bf16_linear of a weight not in AMX tiles");
    CH_TRY(grow(c, 0, ch_amx_input_elems(ntok, w->cols) * sizeof(uint16_t)));
    ch_amx_linear(w->data, w->rows, w->cols, x, ldx, ntok, c->scratch[0], y, ldy);
    return 0;
}
