/* cpu_bf16.c - bf16 Linear for the CPU backend: the AMX kernel or the portable one (cpu_bf16.h). */
#include "cpu_bf16.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_amx.h"
#include "err.h"

#define PORTABLE_ROWS 128 /* weight rows widened at a time: 128 x 4864 x 4 B = 2.4 MiB a thread at most */

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
    if (!c->amx) { /* the mapping's bytes as they are; read with memcpy-safe widening */
        w->data = (void *)t->data;
        w->borrowed = 1;
        return 0;
    }
    size_t bytes = ch_amx_weight_elems(w->rows, w->cols) * sizeof(uint16_t);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) CH_FAIL(CH_ENOMEM, "%s: out of memory packing tensor '%s' (%zu bytes)", t->file, t->name, bytes);
    ch_amx_pack_weight(t->data, w->rows, w->cols, p);
    w->data = p;
    w->packed = 1;
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

static int linear_portable(ch_bf16_ctx *c, const ch_weight *w, const float *x, int64_t ldx, int64_t ntok, float *y,
                           int64_t ldy) {
    const int64_t in = w->cols, out = w->rows, nblk = (out + PORTABLE_ROWS - 1) / PORTABLE_ROWS;
    CH_TRY(grow(c, 0, (size_t)ntok * (size_t)in * sizeof(float)));
    float *xr = c->scratch[0];
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < ntok; t++)
        for (int64_t k = 0; k < in; k++) xr[t * in + k] = ch_bf16_to_f32(ch_f32_to_bf16(x[t * ldx + k]));
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *wb = malloc(sizeof(float) * PORTABLE_ROWS * (size_t)in);
        if (!wb) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblk; b++) {
            if (!wb) continue;
            int64_t r0 = b * PORTABLE_ROWS, nr = out - r0 < PORTABLE_ROWS ? out - r0 : PORTABLE_ROWS;
            ch_convert_to_f32((const char *)w->data + (size_t)r0 * in * 2, CH_DT_BF16, (size_t)(nr * in), wb);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ntok, (int)nr, (int)in, 1.0f, xr, (int)in, wb,
                        (int)in, 0.0f, y + r0, (int)ldy);
        }
        free(wb);
    }
    if (failed)
        CH_FAIL(CH_ENOMEM, "cpu backend: out of memory widening %d weight rows of %lld", PORTABLE_ROWS, (long long)in);
    return 0;
}

int ch_bf16_can_fuse(const ch_bf16_ctx *c, const ch_weight *gate, const ch_weight *up, const ch_weight *down) {
    return c->amx && gate->packed && up->packed && down->packed && gate->rows == up->rows &&
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
    if (!w->packed) return linear_portable(c, w, x, ldx, ntok, y, ldy);
    if (!c->amx) CH_FAIL(CH_EINTERNAL, "cpu backend: an AMX-packed weight without AMX");
    CH_TRY(grow(c, 0, ch_amx_input_elems(ntok, w->cols) * sizeof(uint16_t)));
    ch_amx_linear(w->data, w->rows, w->cols, x, ldx, ntok, c->scratch[0], y, ldy);
    return 0;
}
