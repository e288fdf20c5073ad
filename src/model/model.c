/* model.c - the Llama / Qwen2 / Qwen3 / Mistral / Gemma 2 / Gemma 3 forward pass, written once
 * against the backend seam.
 *
 * Read forward() top to bottom: embed (Gemma: times sqrt(hidden)), then per layer: RMSNorm,
 * q/k/v projections (+bias for Qwen2), per-head q/k RMSNorm (Qwen3, Gemma 3), RoPE (Gemma 3's
 * sliding layers with their own base), causal GQA attention - through a sliding window where
 * the layer has one (Mistral, Gemma's local layers), scores soft-capped for Gemma 2 - whose
 * output, the o_proj input, is what we capture - then o_proj, (Gemma: RMSNorm,) residual,
 * RMSNorm, SwiGLU or GeGLU MLP, (Gemma: RMSNorm,) residual. Gemma's RMSNorm weights w act as
 * (1 + w), added once at load. The last layer stops after its attention:
 * nothing after it is captured. The LM head is never computed. The captures are pooled into
 * one [L][nseq][H*D] buffer on the device - narrowed there to the archive's binary16 for
 * ch_model_capture_start - and copied to the host by download_async, queued behind the kernels:
 * ch_model_capture_start returns while the device still works (CUDA), and an event tells when
 * the host buffer is filled. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define MAX_INV_FREQ_STACK 256

/* ln1: the attention's input norm, ln2: the MLP's; attn_out, mlp_out: Gemma's norms on each
 * block's output before the residual add (post_attention_layernorm, post_feedforward_layernorm) */
typedef struct {
    ch_weight ln1, wq, wk, wv, wo, bq, bk, bv, bo, qn, kn, ln2, wgate, wup, wdown, attn_out, mlp_out;
} layer_weights;

/* Scratch activations for a batch of up to `cap` tokens and `seq_cap` sequences. */
typedef struct {
    int cap, seq_cap;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up;
    void *captured; /* [L][nseq][H*D] of the capture's type (f32 bytes reserved: either fits) */
    int32_t *ids, *pos;
    int *start;
} scratch;

struct ch_model {
    ch_config cfg;
    ch_backend *be;
    ch_weight_use linear_use; /* CH_WEIGHT_LINEAR (--precision auto) or CH_WEIGHT_F32 */
    ch_st_dir *ckpt;
    ch_weight embed, final_norm;
    layer_weights *layers;
    float *inv_freq;       /* device, head_dim / 2 */
    float *inv_freq_local; /* Gemma 3's sliding layers (rope_local), else NULL */
    float **plus_one;      /* host (1 + w) norm weights the backend may borrow, n_plus_one of them */
    int n_plus_one;
    float embed_scale;     /* Gemma: sqrt(hidden) in the Linear inputs' type; else 1 */
    scratch s;
};

const ch_config *ch_model_config(const ch_model *m) { return &m->cfg; }

int64_t ch_model_capture_width(const ch_model *m) {
    return (int64_t)m->cfg.n_layers * m->cfg.n_heads * m->cfg.head_dim;
}

/* ---- loading --------------------------------------------------------------------------------- */

static int load(ch_model *m, const char *name, int64_t rows, int64_t cols, ch_weight_use use, ch_weight *w) {
    const ch_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    CH_TRY(ch_st_get(m->ckpt, name, cols > 0 ? 2 : 1, shape, &t));
    return m->be->load_weight(m->be, t, use, w);
}

/* An RMSNorm weight: as stored, or for Gemma as (1 + w) - what Gemma's RMSNorm multiplies by,
 * summed in f32 as transformers does - made on the host once, kept for the model's life (the
 * CPU backend uses an f32 vector in place). */
static int load_norm(ch_model *m, const char *name, int64_t n, ch_weight *w) {
    if (!m->cfg.gemma) return load(m, name, n, 0, CH_WEIGHT_F32, w);
    const ch_st_tensor *t;
    int64_t shape[1] = {n};
    CH_TRY(ch_st_get(m->ckpt, name, 1, shape, &t));
    /* per layer: input, q, k, post-attention, pre- and post-feedforward norms; then the final one */
    const int cap = 6 * m->cfg.n_layers + 1;
    if (!m->plus_one) CH_TRY(CH_ALLOC(m->plus_one, cap, "norm weights"));
    if (m->n_plus_one >= cap) CH_FAIL(CH_EINTERNAL, "more norm weights than the model has");
    float *v = NULL;
    CH_TRY(CH_ALLOC(v, n, "norm weight"));
    m->plus_one[m->n_plus_one++] = v;
    ch_convert_to_f32(t->data, t->dtype, (size_t)n, v);
    for (int64_t i = 0; i < n; i++) v[i] += 1.0f;
    ch_st_tensor f32 = *t;
    f32.dtype = CH_DT_F32;
    f32.data = v;
    f32.nbytes = (size_t)n * sizeof(float);
    return m->be->load_weight(m->be, &f32, CH_WEIGHT_F32, w);
}

static int load_layer(ch_model *m, int l, layer_weights *w) {
    const ch_config *c = &m->cfg;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    char n[160];
    /* vectors as f32 values, matrices as the precision says */
#define LOAD(field, suffix, rows, cols)                                                           \
    do {                                                                                          \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                   \
        CH_TRY(load(m, n, rows, cols, (cols) ? m->linear_use : CH_WEIGHT_F32, &w->field));        \
    } while (0)
#define NORM(field, suffix, size)                                                                 \
    do {                                                                                          \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                   \
        CH_TRY(load_norm(m, n, size, &w->field));                                                 \
    } while (0)
    NORM(ln1, "input_layernorm.weight", c->hidden);
    LOAD(wq, "self_attn.q_proj.weight", qd, c->hidden);
    LOAD(wk, "self_attn.k_proj.weight", kvd, c->hidden);
    LOAD(wv, "self_attn.v_proj.weight", kvd, c->hidden);
    LOAD(wo, "self_attn.o_proj.weight", c->hidden, qd);
    if (c->qkv_bias) {
        LOAD(bq, "self_attn.q_proj.bias", qd, 0);
        LOAD(bk, "self_attn.k_proj.bias", kvd, 0);
        LOAD(bv, "self_attn.v_proj.bias", kvd, 0);
    }
    if (c->o_bias) LOAD(bo, "self_attn.o_proj.bias", c->hidden, 0);
    if (c->qk_norm) {
        NORM(qn, "self_attn.q_norm.weight", c->head_dim);
        NORM(kn, "self_attn.k_norm.weight", c->head_dim);
    }
    if (c->gemma) {
        NORM(attn_out, "post_attention_layernorm.weight", c->hidden);
        NORM(ln2, "pre_feedforward_layernorm.weight", c->hidden);
        NORM(mlp_out, "post_feedforward_layernorm.weight", c->hidden);
    } else {
        NORM(ln2, "post_attention_layernorm.weight", c->hidden);
    }
    LOAD(wgate, "mlp.gate_proj.weight", c->intermediate, c->hidden);
    LOAD(wup, "mlp.up_proj.weight", c->intermediate, c->hidden);
    LOAD(wdown, "mlp.down_proj.weight", c->hidden, c->intermediate);
#undef LOAD
#undef NORM
    return 0;
}

/* Every Linear weight must have come out in one type: that type is the model's precision. */
static int check_precision(const ch_model *m, const char *dir) {
    static const char *const names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    const ch_dtype want = m->layers[0].wq.dtype;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        const ch_weight *lin[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->wgate, &w->wup, &w->wdown};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
            if (lin[i]->dtype != want)
                CH_FAIL(CH_EUNSUPPORTED, "%s: model.layers.%d.%s.weight is stored as %s but model.layers.0.self_attn."
                        "q_proj.weight as %s: a checkpoint with mixed Linear dtypes runs only with --precision f32",
                        dir, l, names[i], ch_dtype_name(lin[i]->dtype), ch_dtype_name(want));
    }
    return 0;
}

const char *ch_model_precision(const ch_model *m) {
    switch (m->layers[0].wq.dtype) {
    case CH_DT_BF16: return "bf16";
    case CH_DT_F16: return "f16";
    default: return "f32";
    }
}

static int upload_inv_freq(ch_model *m, const ch_rope_params *r, float **dev) {
    int half = m->cfg.head_dim / 2;
    float inv[MAX_INV_FREQ_STACK];
    if (half > MAX_INV_FREQ_STACK) CH_FAIL(CH_EUNSUPPORTED, "head_dim too large");
    for (int i = 0; i < half; i++) inv[i] = ch_rope_inv_freq(i, r);
    CH_TRY(m->be->alloc(m->be, half * sizeof(float), (void **)dev));
    return m->be->upload(m->be, *dev, inv, half * sizeof(float));
}

/* Gemma's embedding scale: sqrt(hidden) made a tensor of the model's dtype, as transformers does
 * (Gemma2/3TextScaledWordEmbedding: sqrt(2304) = 48 stays, sqrt(3072) becomes 55.5 in bf16) -
 * here the type the Linear inputs are rounded to (bf16 or f16 at --precision auto, f32 at f32),
 * the precision's contract; the product itself stays f32. 1 for the other architectures. */
static float embed_scale(const ch_config *c, ch_dtype linear) {
    if (!c->gemma) return 1.0f;
    float s = (float)sqrt((double)c->hidden);
    if (linear == CH_DT_BF16) return ch_bf16_to_f32(ch_f32_to_bf16(s));
    if (linear == CH_DT_F16) return ch_f16_to_f32(ch_f32_to_f16(s));
    return s;
}

int ch_model_open(const char *dir, ch_backend *be, ch_precision prec, ch_model **out) {
    *out = NULL;
    ch_model *m = NULL;
    CH_TRY(CH_ALLOC(m, 1, "model"));
    m->be = be;
    m->linear_use = prec == CH_PRECISION_F32 ? CH_WEIGHT_F32 : CH_WEIGHT_LINEAR;
    int rc = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CH_TRY_GOTO(ch_config_load(path, &m->cfg), fail);
    CH_TRY_GOTO(ch_st_open_dir(dir, &m->ckpt), fail);
    const ch_config *c = &m->cfg;
    CH_TRY_GOTO(load(m, "model.embed_tokens.weight", c->vocab, c->hidden, CH_WEIGHT_ROWS, &m->embed), fail);
    CH_TRY_GOTO(CH_ALLOC(m->layers, c->n_layers, "layer table"), fail);
    for (int l = 0; l < c->n_layers; l++) CH_TRY_GOTO(load_layer(m, l, &m->layers[l]), fail);
    CH_TRY_GOTO(check_precision(m, dir), fail);
    CH_TRY_GOTO(load_norm(m, "model.norm.weight", c->hidden, &m->final_norm), fail);
    CH_TRY_GOTO(upload_inv_freq(m, &c->rope, &m->inv_freq), fail);
    if (c->local_rope) CH_TRY_GOTO(upload_inv_freq(m, &c->rope_local, &m->inv_freq_local), fail);
    m->embed_scale = embed_scale(c, m->layers[0].wq.dtype);
    *out = m;
    return 0;
fail: /* messages from config/safetensors already name the file */
    ch_model_close(m);
    if (rc == CH_ENOMEM) /* before any batch: no token budget helps */
        rc = ch_err_wrap("%s: the weights alone do not fit in %s memory (no --batch-tokens helps; fewer ranks "
                         "per GPU or a larger device does): ",
                         dir, be->mem_name);
    return rc;
}

static void scratch_free(ch_backend *be, scratch *s) {
    void *bufs[] = {s->x, s->xn, s->q, s->k, s->v, s->att, s->tmp, s->gate, s->up, s->captured,
                    s->ids, s->pos, s->start};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    memset(s, 0, sizeof *s);
}

void ch_model_close(ch_model *m) {
    if (!m) return;
    ch_backend *be = m->be;
    if (m->s.cap) (void)be->sync(be); /* a queued download may still read the scratch */
    scratch_free(be, &m->s);
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            ch_weight *w = (ch_weight *)&m->layers[l];
            for (size_t i = 0; i < sizeof(layer_weights) / sizeof(ch_weight); i++)
                if (w[i].data) be->free_weight(be, &w[i]);
        }
        free(m->layers);
    }
    if (m->embed.data) be->free_weight(be, &m->embed);
    if (m->final_norm.data) be->free_weight(be, &m->final_norm);
    if (m->inv_freq) be->free(be, m->inv_freq);
    if (m->inv_freq_local) be->free(be, m->inv_freq_local);
    for (int i = 0; i < m->n_plus_one; i++) free(m->plus_one[i]); /* after the weights that may borrow them */
    free(m->plus_one);
    ch_st_close_dir(m->ckpt);
    ch_config_free(&m->cfg);
    free(m);
}

/* ---- scratch sized by the batch, grown when a larger batch arrives ---------------------------- */

/* The scratch buffers, in the order of the struct's pointers, and their bytes for a batch of T
 * tokens in S sequences: one table for scratch_reserve and for the batch budget. */
enum { SB_X, SB_XN, SB_Q, SB_K, SB_V, SB_ATT, SB_TMP, SB_GATE, SB_UP, SB_CAPTURED, SB_IDS, SB_POS, SB_START, SB_N };

static void scratch_sizes(const ch_config *c, size_t T, size_t S, size_t sz[SB_N]) {
    size_t f = sizeof(float), qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    sz[SB_X] = sz[SB_XN] = sz[SB_TMP] = T * (size_t)c->hidden * f;
    sz[SB_Q] = sz[SB_ATT] = T * qd * f;
    sz[SB_K] = sz[SB_V] = T * kvd * f;
    sz[SB_GATE] = sz[SB_UP] = T * (size_t)c->intermediate * f;
    sz[SB_CAPTURED] = S * (size_t)c->n_layers * qd * f;
    sz[SB_IDS] = sz[SB_POS] = T * sizeof(int32_t);
    sz[SB_START] = (S + 1) * sizeof(int);
}

size_t ch_model_batch_bytes(const ch_config *c, int64_t ntok, int64_t nseq, size_t gemm_ws_per_token) {
    size_t sz[SB_N], sum = 0;
    scratch_sizes(c, (size_t)(ntok > 0 ? ntok : 0), (size_t)(nseq > 0 ? nseq : 0), sz);
    for (int i = 0; i < SB_N; i++) sum += sz[i];
    return sum + (size_t)(ntok > 0 ? ntok : 0) * gemm_ws_per_token;
}

int64_t ch_model_fit_batch_tokens(const ch_config *c, size_t avail, double seqs_per_token,
                                  size_t gemm_ws_per_token) {
    if (!(seqs_per_token >= 0)) seqs_per_token = 0; /* NaN too */
    if (seqs_per_token > 1) seqs_per_token = 1;     /* a sequence holds at least one token */
    /* bytes(N) grows with N: the largest N in [1, INT_MAX] with bytes(N) <= avail, by bisection */
    int64_t lo = 0, hi = INT_MAX;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        int64_t seqs = (int64_t)ceil((double)mid * seqs_per_token);
        if (seqs < 1) seqs = 1;
        if (ch_model_batch_bytes(c, mid, seqs, gemm_ws_per_token) <= avail) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Workspace bytes per token of the backend's GEMM: its widest B operand is one token's row of
 * the widest Linear input (H*D, or hidden + intermediate: a fused MLP holds its input and its
 * intermediate at once). */
static size_t gemm_ws_per_token(const ch_model *m) {
    const ch_config *c = &m->cfg;
    size_t in = (size_t)c->hidden + (size_t)c->intermediate;
    if ((size_t)c->n_heads * c->head_dim > in) in = (size_t)c->n_heads * c->head_dim;
    return m->be->gemm_workspace && m->layers ? m->be->gemm_workspace(m->be, m->layers[0].wq.dtype, in) : 0;
}

static int scratch_reserve(ch_model *m, int ntok, int nseq) {
    scratch *s = &m->s;
    if (ntok <= s->cap && nseq <= s->seq_cap) return 0;
    ch_backend *be = m->be;
    int cap = ntok > s->cap ? ntok : s->cap, seq_cap = nseq > s->seq_cap ? nseq : s->seq_cap;
    /* a download queued by the previous batch may still read the old buffers */
    if (s->cap) CH_TRY(be->sync(be));
    scratch_free(be, s);
    size_t sz[SB_N];
    scratch_sizes(&m->cfg, (size_t)cap, (size_t)seq_cap, sz);
    void **slot[SB_N] = {(void **)&s->x,    (void **)&s->xn,   (void **)&s->q,        (void **)&s->k,
                         (void **)&s->v,    (void **)&s->att,  (void **)&s->tmp,      (void **)&s->gate,
                         (void **)&s->up,   (void **)&s->captured, (void **)&s->ids,  (void **)&s->pos,
                         (void **)&s->start};
    for (int i = 0; i < SB_N; i++) CH_TRY(be->alloc(be, sz[i], slot[i]));
    s->cap = cap;
    s->seq_cap = seq_cap;
    return 0;
}

/* "1.50 GiB" or "12.3 MiB" */
static const char *bytes_text(size_t b, char *buf, size_t n) {
    const double mib = 1024.0 * 1024.0, gib = 1024.0 * mib;
    if ((double)b >= gib) snprintf(buf, n, "%.2f GiB", (double)b / gib);
    else snprintf(buf, n, "%.1f MiB", (double)b / mib);
    return buf;
}

/* After a batch ran out of device memory: release the scratch, ask the backend what is free, and
 * put in front of the message what the batch needs and a --batch-tokens that would fit. */
static int oom_advice(ch_model *m, int ntok, int nseq, int max_len) {
    ch_backend *be = m->be;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", ch_err_msg());
    /* a queued download may read the scratch; failures here must not replace the message */
    (void)be->sync(be);
    scratch_free(be, &m->s);
    size_t fr = 0, tot = 0;
    if (be->mem_info && be->mem_info(be, &fr, &tot)) fr = tot = 0;
    ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "%s", saved);
    const ch_config *c = &m->cfg;
    size_t ws = gemm_ws_per_token(m);
    size_t need = ch_model_batch_bytes(c, ntok, nseq, ws), base = ch_model_batch_bytes(c, 0, 0, ws);
    size_t per_tok = ch_model_batch_bytes(c, 1, 0, ws) - base, per_seq = ch_model_batch_bytes(c, 0, 1, ws) - base;
    char what[512], sz[2][32];
    snprintf(what, sizeof what,
             "a batch of %d tokens in %d sequences needs %s of %s memory for activations (%zu bytes per "
             "token, %zu per sequence)",
             ntok, nseq, bytes_text(need, sz[0], sizeof sz[0]), be->mem_name, per_tok,
             per_seq);
    if (!tot) return ch_err_wrap("%s: ", what);
    bytes_text(fr, sz[1], sizeof sz[1]);
    /* 90%: the allocator's granularity and fragmentation, and the runtime's own workspaces */
    size_t avail = (size_t)((double)fr * 0.9);
    int64_t fit = ch_model_fit_batch_tokens(c, avail, (double)nseq / ntok, ws);
    if (fit < 1)
        return ch_err_wrap("%s; with the model loaded %s are free, not enough for one token: use a device with "
                           "more memory, or fewer ranks per device: ",
                           what, sz[1]);
    char longer[256] = "";
    if (max_len > fit) /* a record longer than the budget is a batch alone, and that would not fit */
        snprintf(longer, sizeof longer,
                 "; a record of %d tokens would still not fit alone: --max-tokens %lld refuses such records",
                 max_len, (long long)fit);
    return ch_err_wrap("%s; with the model loaded %s are free: --batch-tokens %lld would fit batches like this "
                       "one (%.4f sequences per token)%s: ",
                       what, sz[1], (long long)fit, (double)nseq / ntok, longer);
}

/* y[ntok, out] = x[ntok, in] W^T (+ b): a HF Linear as one column-major GEMM. */
static int linear(ch_backend *be, const ch_weight *w, const ch_weight *b, const float *x,
                  int ntok, float *y) {
    int out = (int)w->rows, in = (int)w->cols;
    CH_TRY(be->gemm(be, 1, 0, out, ntok, in, 1.0f, w, in, x, in, 0.0f, y, out));
    if (b && b->data) CH_TRY(be->add_bias(be, y, b, ntok, out));
    return 0;
}

/* out = down(act(gate(xn)) * up(xn)), gate and up as scratch: SwiGLU in one pass where the
 * backend fuses it (the CPU on AMX); GeGLU always as its four calls. */
static int mlp(ch_backend *be, ch_act act, const layer_weights *w, const float *xn, int ntok, float *out, float *gate,
               float *up) {
    if (be->mlp && act == CH_ACT_SILU) return be->mlp(be, &w->wgate, &w->wup, &w->wdown, xn, ntok, out, gate, up);
    CH_TRY(linear(be, &w->wgate, NULL, xn, ntok, gate));
    CH_TRY(linear(be, &w->wup, NULL, xn, ntok, up));
    const size_t n = (size_t)ntok * (size_t)w->wgate.rows;
    CH_TRY(act == CH_ACT_SILU ? be->swiglu(be, gate, up, n) : be->geglu(be, gate, up, n));
    return linear(be, &w->wdown, NULL, gate, ntok, out);
}

/* ---- the forward pass ------------------------------------------------------------------------ */

static int check_batch(const ch_model *m, const ch_batch *b, int *ntok, int *max_len) {
    if (b->nseq < 1 || !b->start || !b->tokens) CH_FAIL(CH_EARG, "empty batch");
    if (b->start[0] != 0) CH_FAIL(CH_EARG, "batch offsets must start at 0");
    *max_len = 0;
    for (int s = 0; s < b->nseq; s++) {
        int len = b->start[s + 1] - b->start[s];
        if (len < 1) CH_FAIL(CH_EARG, "sequence %d of the batch is empty", s);
        if (len > *max_len) *max_len = len;
        for (int t = b->start[s]; t < b->start[s + 1]; t++)
            if (b->tokens[t] < 0 || b->tokens[t] >= m->cfg.vocab)
                CH_FAIL(CH_EARG, "sequence %d, position %d: token id %d outside the vocabulary (%d)", s,
                        t - b->start[s], (int)b->tokens[t], m->cfg.vocab);
    }
    *ntok = b->start[b->nseq];
    return 0;
}

/* The forward pass of a checked batch whose scratch is reserved: device work only (uploads,
 * kernels, the queued downloads), so that an out-of-memory failure here is the device's. */
static int forward(ch_model *m, const ch_batch *b, const int32_t *pos, int ntok, int max_len, ch_pool pool,
                   ch_dtype dt, void *out, void *hidden, ch_event *done) {
    const ch_config *c = &m->cfg;
    ch_backend *be = m->be;
    scratch *s = &m->s;
    CH_TRY(be->upload(be, s->pos, pos, (size_t)ntok * sizeof(int32_t)));
    CH_TRY(be->upload(be, s->ids, b->tokens, (size_t)ntok * sizeof(int32_t)));
    CH_TRY(be->upload(be, s->start, b->start, ((size_t)b->nseq + 1) * sizeof(int)));
    ch_seqs seqs = {.nseq = b->nseq, .ntok = ntok, .max_len = max_len, .start = b->start,
                    .start_dev = s->start, .pos_dev = s->pos};

    const int L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, qd = H * D;
    const size_t esize = dt == CH_DT_F16 ? 2 : 4;
    const size_t layer_cap = (size_t)b->nseq * qd * esize; /* captured bytes per layer */

    CH_TRY(be->embed(be, &m->embed, s->ids, ntok, s->x));
    if (c->gemma) CH_TRY(be->scale(be, s->x, m->embed_scale, (size_t)ntok * c->hidden));
    for (int l = 0; l < L; l++) {
        const layer_weights *w = &m->layers[l];
        const int slide = c->sliding[l];
        const ch_attn_params ap = {.scale = c->attn_scale, .softcap = c->attn_softcap,
                                   .window = slide ? c->sliding_window : 0};
        const float *inv_freq = slide && m->inv_freq_local ? m->inv_freq_local : m->inv_freq;
        /* attention block */
        CH_TRY(be->rmsnorm(be, s->x, &w->ln1, ntok, c->hidden, c->rms_eps, s->xn));
        CH_TRY(linear(be, &w->wq, &w->bq, s->xn, ntok, s->q));
        CH_TRY(linear(be, &w->wk, &w->bk, s->xn, ntok, s->k));
        CH_TRY(linear(be, &w->wv, &w->bv, s->xn, ntok, s->v));
        if (c->qk_norm) { /* Qwen3, Gemma 3: each head's q and k, as [ntok * heads, D] rows, before RoPE */
            CH_TRY(be->rmsnorm(be, s->q, &w->qn, ntok * H, D, c->rms_eps, s->q));
            CH_TRY(be->rmsnorm(be, s->k, &w->kn, ntok * KV, D, c->rms_eps, s->k));
        }
        CH_TRY(be->rope(be, s->q, ntok, H, D, s->pos, inv_freq));
        CH_TRY(be->rope(be, s->k, ntok, KV, D, s->pos, inv_freq));
        CH_TRY(be->attention(be, s->q, s->k, s->v, &seqs, H, KV, D, &ap, s->att));
        /* the capture: o_proj's input, per head, pooled per sequence */
        CH_TRY(be->pool(be, s->att, qd, &seqs, pool, dt, (char *)s->captured + (size_t)l * layer_cap));
        if (l == L - 1 && !hidden) break; /* nothing after it is captured */
        CH_TRY(linear(be, &w->wo, &w->bo, s->att, ntok, s->tmp));
        if (c->gemma) CH_TRY(be->rmsnorm(be, s->tmp, &w->attn_out, ntok, c->hidden, c->rms_eps, s->tmp));
        CH_TRY(be->add(be, s->x, s->tmp, (size_t)ntok * c->hidden));
        /* MLP block */
        CH_TRY(be->rmsnorm(be, s->x, &w->ln2, ntok, c->hidden, c->rms_eps, s->xn));
        CH_TRY(mlp(be, c->act, w, s->xn, ntok, s->tmp, s->gate, s->up));
        if (c->gemma) CH_TRY(be->rmsnorm(be, s->tmp, &w->mlp_out, ntok, c->hidden, c->rms_eps, s->tmp));
        CH_TRY(be->add(be, s->x, s->tmp, (size_t)ntok * c->hidden));
    }

    /* captured is [L][nseq][H*D] on the device, queued behind the kernels to the host: f16 as
     * it is, one block (the archive writer's layout); f32 into [nseq][L][H*D], one strided copy
     * per layer (rows of H*D floats, host pitch L*H*D) */
    if (dt == CH_DT_F16) {
        CH_TRY(be->download_async(be, out, (size_t)L * layer_cap, s->captured, (size_t)L * layer_cap,
                                  (size_t)L * layer_cap, 1));
    } else {
        const size_t row = (size_t)qd * esize;
        for (int l = 0; l < L; l++)
            CH_TRY(be->download_async(be, (char *)out + (size_t)l * row, (size_t)L * row,
                                      (char *)s->captured + (size_t)l * layer_cap, row, row, (size_t)b->nseq));
    }
    if (hidden) { /* final norm, mean over tokens; xn and tmp are free scratch by now */
        CH_TRY(be->rmsnorm(be, s->x, &m->final_norm, ntok, c->hidden, c->rms_eps, s->xn));
        CH_TRY(be->pool(be, s->xn, c->hidden, &seqs, CH_POOL_MEAN, dt, s->tmp));
        size_t hb = (size_t)b->nseq * c->hidden * esize;
        CH_TRY(be->download_async(be, hidden, hb, s->tmp, hb, hb, 1));
    }
    return done ? be->event_record(be, done) : be->sync(be);
}

static int capture(ch_model *m, const ch_batch *b, ch_pool pool, ch_dtype dt, void *out, void *hidden,
                   ch_event *done) {
    int ntok = 0, max_len = 0;
    CH_TRY(check_batch(m, b, &ntok, &max_len));
    /* positions restart at 0 in every packed sequence */
    int32_t *pos = NULL;
    CH_TRY(CH_ALLOC(pos, ntok, "positions"));
    for (int q = 0; q < b->nseq; q++)
        for (int t = b->start[q]; t < b->start[q + 1]; t++) pos[t] = t - b->start[q];
    int rc = scratch_reserve(m, ntok, b->nseq);
    if (!rc) rc = forward(m, b, pos, ntok, max_len, pool, dt, out, hidden, done);
    free(pos); /* the uploads are synchronous */
    if (rc == CH_ENOMEM) rc = oom_advice(m, ntok, b->nseq, max_len);
    return rc;
}

int ch_model_capture_start(ch_model *m, const ch_batch *b, ch_pool pool, uint16_t *acts, uint16_t *hidden,
                           ch_event *done) {
    return capture(m, b, pool, CH_DT_F16, acts, hidden, done);
}

int ch_model_capture_ex(ch_model *m, const ch_batch *b, ch_pool pool, float *out, float *hidden) {
    return capture(m, b, pool, CH_DT_F32, out, hidden, NULL);
}

int ch_model_capture(ch_model *m, const ch_batch *b, ch_pool pool, float *out) {
    return ch_model_capture_ex(m, b, pool, out, NULL);
}
