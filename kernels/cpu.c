/* cpu.c - the CPU backend: OpenBLAS for GEMM, OpenMP loops over the shared math of ops_math.h.
 * One thread pool: OpenMP's. OpenBLAS is set to one thread and called from inside it.
 *
 * Weights: a bf16 Linear weight asked for as CH_WEIGHT_LINEAR keeps the bf16 contract through
 * cpu_bf16.h (AMX tiles; or widened at load, the inputs rounded per call); everything else read
 * as numbers is widened
 * to f32 once at load (an f32 checkpoint whose data is 4-byte aligned is used straight from the
 * mapping), and the embedding table is read from the mapping row by row.
 * "Device" memory is host memory, so upload/download are memcpy. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_bf16.h"
#include "cpu_features.h"
#include "cpu_ops.h"
#include "err.h"

/* RoPE's cos and sin for the positions of the current batch: the same for every layer and for q
 * and k, so made once a batch (48 times fewer sincos for a 24-layer model). Kept with a copy of
 * the positions and frequencies they were made for, and remade when a call brings others. */
typedef struct {
    float *cs;       /* [ntok][2][half] */
    int32_t *pos;    /* the positions they are for */
    const float *inv_freq;
    int ntok, half;  /* ntok 0: none */
    size_t cs_cap, pos_cap; /* elements allocated */
} rope_cache;

typedef struct {
    int threads;
    const ch_cpu_ops *ops; /* the row loops, built for this CPU's widest ISA */
    ch_bf16_ctx bf16;      /* the bf16 Linear's kernel choice and scratch */
    rope_cache rope;
} cpu_impl;

static cpu_impl *impl_of(ch_backend *be) { return be->impl; }

static int cpu_alloc(ch_backend *be, size_t bytes, void **p) {
    /* 64-byte alignment keeps OpenBLAS and the vectorised loops on their fast paths. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!*p) CH_FAIL(CH_ENOMEM, "cpu backend: out of memory allocating %zu bytes", bytes);
    return 0;
}
static void cpu_free(ch_backend *be, void *p) { free(p); }
static int cpu_copy(ch_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}
static int cpu_sync(ch_backend *be) { return 0; }

/* The asynchronous half of the seam, done at once: same code path as CUDA, no overlap. */
struct ch_event {
    int recorded;
};
static int cpu_host_alloc(ch_backend *be, size_t bytes, void **p) { return cpu_alloc(be, bytes, p); }
static int cpu_download_async(ch_backend *be, void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t rows) {
    if (width > dpitch || width > spitch)
        CH_FAIL(CH_EARG, "download_async: row width %zu exceeds a pitch (%zu, %zu)", width, dpitch, spitch);
    for (size_t r = 0; r < rows && width; r++)
        memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return 0;
}
static int cpu_event_create(ch_backend *be, ch_event **ev) { return CH_ALLOC(*ev, 1, "cpu event"); }
static void cpu_event_destroy(ch_backend *be, ch_event *ev) { free(ev); }
static int cpu_event_record(ch_backend *be, ch_event *ev) {
    ev->recorded = 1;
    return 0;
}
static int cpu_event_wait(ch_backend *be, ch_event *ev) { return 0; }

/* Available and physical host memory (sysconf), 0 when the system does not say. */
static int cpu_mem_info(ch_backend *be, size_t *free_bytes, size_t *total_bytes) {
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), phys = sysconf(_SC_PHYS_PAGES);
    *free_bytes = page > 0 && avail > 0 ? (size_t)avail * (size_t)page : 0;
    *total_bytes = page > 0 && phys > 0 ? (size_t)phys * (size_t)page : 0;
    return 0;
}
/* OpenBLAS multiplies f32 operands in place; a bf16 weight's GEMM keeps a rounded copy of B. */
static size_t cpu_gemm_workspace(ch_backend *be, ch_dtype a_dtype, size_t b_elems) {
    return a_dtype == CH_DT_BF16 ? ch_bf16_workspace(&impl_of(be)->bf16, b_elems) : 0;
}

static int cpu_load_weight(ch_backend *be, const ch_st_tensor *t, ch_weight_use use, ch_weight *w) {
    if (t->dtype != CH_DT_F32 && t->dtype != CH_DT_F16 && t->dtype != CH_DT_BF16)
        CH_FAIL(CH_EUNSUPPORTED, "%s: tensor '%s' has dtype %s, expected a float type", t->file,
                t->name, ch_dtype_name(t->dtype));
    if (use == CH_WEIGHT_LINEAR && t->dtype == CH_DT_BF16 && t->ndim == 2)
        return ch_bf16_load(&impl_of(be)->bf16, t, w);
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    memset(w, 0, sizeof *w);
    w->rows = t->ndim >= 1 ? t->shape[0] : 1;
    w->cols = t->ndim >= 2 ? (int64_t)(n / (size_t)w->rows) : 1;
    w->dtype = CH_DT_F32;
    if ((t->dtype == CH_DT_F32 && ((uintptr_t)t->data & 3u) == 0) || use == CH_WEIGHT_ROWS) {
        w->data = (void *)t->data;
        w->dtype = t->dtype;
        w->borrowed = 1;
        return 0;
    }
    void *p;
    CH_TRY(cpu_alloc(be, n * sizeof(float), &p));
    ch_convert_to_f32(t->data, t->dtype, n, p);
    w->data = p;
    return 0;
}
static void cpu_free_weight(ch_backend *be, ch_weight *w) {
    if (w && w->data && !w->borrowed) free(w->data);
    if (w) w->data = NULL;
}

/* The table may be any float dtype (a borrowed CH_WEIGHT_ROWS weight): rows widened exactly. */
static int cpu_embed(ch_backend *be, const ch_weight *table, const int32_t *ids, int ntok, float *x) {
    if (table->packed) CH_FAIL(CH_EINTERNAL, "cpu embed: the table is packed for GEMM");
    const char *tab = table->data;
    int64_t d = table->cols;
    size_t row_bytes = (size_t)d * ch_dtype_size(table->dtype);
    for (int t = 0; t < ntok; t++) {
        if (ids[t] < 0 || ids[t] >= table->rows)
            CH_FAIL(CH_EARG, "token id %d at packed position %d is outside the vocabulary (%lld)",
                    (int)ids[t], t, (long long)table->rows);
        ch_convert_to_f32(tab + (size_t)ids[t] * row_bytes, table->dtype, (size_t)d, x + (size_t)t * d);
    }
    return 0;
}

static void gemm_f32(int transa, int transb, int m, int n, int k, float alpha, const float *A, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);

static int cpu_gemm(ch_backend *be, int transa, int transb, int m, int n, int k, float alpha,
                    const ch_weight *a, int lda, const float *b, int ldb, float beta, float *c,
                    int ldc) {
    if (a->dtype == CH_DT_BF16) { /* cpu_bf16.h: AMX tiles, or f32 data times rounded inputs */
        if (!transa || transb || alpha != 1.0f || beta != 0.0f || lda != k || ldb < k || ldc < m || a->rows != m ||
            a->cols != k)
            CH_FAIL(CH_EINTERNAL, "cpu gemm: a bf16 weight is multiplied only as a Linear (got trans %d %d, alpha "
                    "%g, beta %g, m %d k %d lda %d for a %lld x %lld weight)", transa, transb, alpha, beta, m, k,
                    lda, (long long)a->rows, (long long)a->cols);
        if (a->packed == CH_BF16_AMX) return ch_bf16_linear(&impl_of(be)->bf16, a, b, ldb, n, c, ldc);
        CH_TRY(ch_bf16_round_input(&impl_of(be)->bf16, b, ldb, n, k, &b));
        ldb = k;
    } else if (a->dtype != CH_DT_F32)
        CH_FAIL(CH_EINTERNAL, "cpu gemm: weight is %s", ch_dtype_name(a->dtype));
    gemm_f32(transa, transb, m, n, k, alpha, a->data, lda, b, ldb, beta, c, ldc);
    return 0;
}

static void gemm_f32(int transa, int transb, int m, int n, int k, float alpha, const float *A, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
    /* One thread pool, ours: each OpenMP thread multiplies its own block of op(A)'s rows (the
     * weight's output features) with a single-threaded OpenBLAS call. Two pools (OpenBLAS's
     * pthreads for the GEMMs, OpenMP for everything else) fought over the cores: OpenMP's
     * threads spin after each region while OpenBLAS's wait by sched_yield, and perf put a
     * quarter of a prefill in libgomp's spin and the scheduler. Blocks start at multiples of
     * 64 rows, to line up with OpenBLAS's tiles; the thread count may still change last bits
     * (seen under valgrind, where OpenBLAS picks other kernels): test_model_golden bounds the
     * difference at 1e-6 relative. */
    int nt = omp_get_max_threads();
    if (nt > m / 64) nt = m / 64 > 0 ? m / 64 : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int m0 = (int)((int64_t)(m / 64) * t / T) * 64, m1 = t + 1 == T ? m : (int)((int64_t)(m / 64) * (t + 1) / T) * 64;
        if (m1 > m0)
            cblas_sgemm(CblasColMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
                        m1 - m0, n, k, alpha, A + (transa ? (size_t)m0 * lda : (size_t)m0), lda, b, ldb, beta,
                        c + m0, ldc);
    }
}

/* AMX-packed bf16 weights: one fused pass (cpu_amx.h); others: the four calls it stands for
 * (widened bf16 weights: gate and up share one rounding of x). */
static int cpu_mlp(ch_backend *be, const ch_weight *gate, const ch_weight *up, const ch_weight *down, const float *x,
                   int ntok, float *out, float *gate_s, float *up_s) {
    cpu_impl *im = impl_of(be);
    if (ch_bf16_can_fuse(&im->bf16, gate, up, down)) return ch_bf16_mlp(&im->bf16, gate, up, down, x, ntok, out);
    int inter = (int)gate->rows, hid = (int)gate->cols;
    if (gate->packed == CH_BF16_WIDE && up->packed == CH_BF16_WIDE) {
        const float *xr;
        CH_TRY(ch_bf16_round_input(&im->bf16, x, hid, ntok, hid, &xr));
        gemm_f32(1, 0, inter, ntok, hid, 1.0f, gate->data, hid, xr, hid, 0.0f, gate_s, inter);
        gemm_f32(1, 0, inter, ntok, hid, 1.0f, up->data, hid, xr, hid, 0.0f, up_s, inter);
    } else {
        CH_TRY(cpu_gemm(be, 1, 0, inter, ntok, hid, 1.0f, gate, hid, x, hid, 0.0f, gate_s, inter));
        CH_TRY(cpu_gemm(be, 1, 0, inter, ntok, hid, 1.0f, up, hid, x, hid, 0.0f, up_s, inter));
    }
    im->ops->swiglu(gate_s, up_s, (size_t)ntok * (size_t)inter);
    return cpu_gemm(be, 1, 0, hid, ntok, inter, 1.0f, down, inter, gate_s, inter, 0.0f, out, hid);
}

/* The row loops live in cpu_ops.c, built per ISA; the seam's functions pass through. */
static int cpu_add_bias(ch_backend *be, float *y, const ch_weight *bias, int ntok, int n) {
    impl_of(be)->ops->add_bias(y, bias->data, ntok, n);
    return 0;
}
static int cpu_rmsnorm(ch_backend *be, const float *x, const ch_weight *w, int ntok, int d, float eps, float *out) {
    impl_of(be)->ops->rmsnorm(x, w->data, ntok, d, eps, out);
    return 0;
}
static int cpu_rope(ch_backend *be, float *x, int ntok, int nheads, int head_dim, const int32_t *pos,
                    const float *inv_freq) {
    cpu_impl *im = impl_of(be);
    rope_cache *rc = &im->rope;
    int half = head_dim / 2;
    if (ntok <= 0) return 0;
    if (rc->ntok != ntok || rc->half != half || rc->inv_freq != inv_freq || memcmp(rc->pos, pos, sizeof(int32_t) * ntok)) {
        size_t ncs = 2 * (size_t)ntok * (size_t)half;
        rc->ntok = 0; /* until remade */
        if (ncs > rc->cs_cap || (size_t)ntok > rc->pos_cap) {
            free(rc->cs), free(rc->pos);
            rc->cs = malloc(sizeof(float) * ncs);
            rc->pos = malloc(sizeof(int32_t) * (size_t)ntok);
            rc->cs_cap = rc->cs && rc->pos ? ncs : 0;
            rc->pos_cap = rc->cs && rc->pos ? (size_t)ntok : 0;
            if (!rc->cs_cap) CH_FAIL(CH_ENOMEM, "cpu backend: out of memory for the RoPE table of %d tokens", ntok);
        }
        im->ops->rope_table(pos, ntok, half, inv_freq, rc->cs);
        memcpy(rc->pos, pos, sizeof(int32_t) * ntok);
        rc->ntok = ntok, rc->half = half, rc->inv_freq = inv_freq;
    }
    im->ops->rope(x, ntok, nheads, head_dim, rc->cs);
    return 0;
}
static int cpu_attention(ch_backend *be, const float *q, const float *k, const float *v, const ch_seqs *s, int nq,
                         int nkv, int head_dim, const ch_attn_params *p, float *out) {
    return impl_of(be)->ops->attention(q, k, v, s, nq, nkv, head_dim, p, out);
}
static int cpu_swiglu(ch_backend *be, float *gate, const float *up, size_t n) {
    impl_of(be)->ops->swiglu(gate, up, n);
    return 0;
}
static int cpu_geglu(ch_backend *be, float *gate, const float *up, size_t n) {
    impl_of(be)->ops->geglu(gate, up, n);
    return 0;
}
static int cpu_scale(ch_backend *be, float *x, float s, size_t n) {
    impl_of(be)->ops->scale(x, s, n);
    return 0;
}
static int cpu_add(ch_backend *be, float *x, const float *y, size_t n) {
    impl_of(be)->ops->add(x, y, n);
    return 0;
}

/* One sequence per thread; each value is ch_pool_value, stored as f32 or narrowed to binary16
 * here, in the op's own loop (the archive's form, without a second pass over the capture). */
static int cpu_pool(ch_backend *be, const float *x, int width, const ch_seqs *s, ch_pool mode, ch_dtype out_dtype,
                    void *out) {
    if (out_dtype != CH_DT_F32 && out_dtype != CH_DT_F16)
        CH_FAIL(CH_EINTERNAL, "cpu pool: output type %s", ch_dtype_name(out_dtype));
    const int f16 = out_dtype == CH_DT_F16, mean = mode == CH_POOL_MEAN;
    const size_t w = (size_t)width;
#pragma omp parallel for schedule(static)
    for (int sq = 0; sq < s->nseq; sq++) {
        int t0 = s->start[sq], t1 = s->start[sq + 1];
        for (size_t j = 0; j < w; j++) ch_pool_store(out, (size_t)sq * w + j, ch_pool_value(x, w, t0, t1, j, mean), f16);
    }
    return 0;
}

static void cpu_destroy(ch_backend *be) {
    if (!be) return;
    if (be->impl) {
        ch_bf16_free(&impl_of(be)->bf16);
        free(impl_of(be)->rope.cs), free(impl_of(be)->rope.pos);
    }
    free(be->impl);
    free(be);
}

int ch_backend_cpu_create(int threads, ch_backend **out) {
    ch_backend *be = NULL;
    cpu_impl *impl = NULL;
    CH_TRY(CH_ALLOC(be, 1, "cpu backend"));
    if (CH_ALLOC(impl, 1, "cpu backend")) {
        free(be);
        return CH_ENOMEM;
    }
    impl->threads = threads;
    /* the bf16 kernel by CAPHEADS_CPU_BF16 and CPUID; CAPHEADS_CPU_AMX=0 asks for the widening one */
    const char *amx = getenv("CAPHEADS_CPU_AMX");
    ch_bf16_init(&impl->bf16, !(amx && !strcmp(amx, "0")));
    impl->ops = ch_cpu_ops_pick();
    /* OpenBLAS runs inside our OpenMP threads (cpu_gemm), one thread per call; the OpenMP pool
     * is process-wide, and the caller asked for this count explicitly. */
    openblas_set_num_threads(1);
    if (threads > 0) omp_set_num_threads(threads);
    *be = (ch_backend){.name = "cpu",
                       .mem_name = "host",
                       .alloc = cpu_alloc,
                       .free = cpu_free,
                       .upload = cpu_copy,
                       .download = cpu_copy,
                       .sync = cpu_sync,
                       .host_alloc = cpu_host_alloc,
                       .host_free = cpu_free,
                       .download_async = cpu_download_async,
                       .event_create = cpu_event_create,
                       .event_destroy = cpu_event_destroy,
                       .event_record = cpu_event_record,
                       .event_wait = cpu_event_wait,
                       .mem_info = cpu_mem_info,
                       .gemm_workspace = cpu_gemm_workspace,
                       .load_weight = cpu_load_weight,
                       .free_weight = cpu_free_weight,
                       .embed = cpu_embed,
                       .gemm = cpu_gemm,
                       .add_bias = cpu_add_bias,
                       .rmsnorm = cpu_rmsnorm,
                       .rope = cpu_rope,
                       .attention = cpu_attention,
                       .swiglu = cpu_swiglu,
                       .geglu = cpu_geglu,
                       .scale = cpu_scale,
                       .mlp = cpu_mlp,
                       .add = cpu_add,
                       .pool = cpu_pool,
                       .destroy = cpu_destroy,
                       .impl = impl};
    int nt = omp_get_max_threads();
    char blas[128], bf16[200];
    ch_cpu_blas_describe(blas, sizeof blas), ch_bf16_describe(&impl->bf16, bf16, sizeof bf16);
    char info[512]; /* a long reason is cut at the end of be->info */
    snprintf(info, sizeof info, " (%d thread%s, %s loops, %s; bf16 Linear %s)", nt, nt == 1 ? "" : "s",
             impl->ops->isa, blas, bf16);
    size_t len = strlen(info) < sizeof be->info ? strlen(info) : sizeof be->info - 1;
    memcpy(be->info, info, len), be->info[len] = '\0';
    *out = be;
    return 0;
}
