/* model.c - the Llama / Qwen2 forward pass, written once against the backend seam.
 *
 * Read ch_model_capture top to bottom: embed, then per layer: RMSNorm, q/k/v projections (+bias
 * for Qwen2), RoPE, causal GQA attention - whose output, the o_proj input, is what we capture -
 * then o_proj, residual, RMSNorm, SwiGLU MLP, residual. The last layer stops after its attention:
 * nothing after it is captured. The LM head is never computed. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define MAX_INV_FREQ_STACK 256

typedef struct {
    ch_weight ln1, wq, wk, wv, wo, bq, bk, bv, bo, ln2, wgate, wup, wdown;
} layer_weights;

/* Scratch activations for a batch of up to `cap` tokens and `seq_cap` sequences. */
typedef struct {
    int cap, seq_cap;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *captured;
    int32_t *ids, *pos;
    int *start;
} scratch;

struct ch_model {
    ch_config cfg;
    ch_backend *be;
    ch_st_dir *ckpt;
    ch_weight embed;
    layer_weights *layers;
    float *inv_freq; /* device, head_dim / 2 */
    scratch s;
};

const ch_config *ch_model_config(const ch_model *m) { return &m->cfg; }

int64_t ch_model_capture_width(const ch_model *m) {
    return (int64_t)m->cfg.n_layers * m->cfg.n_heads * m->cfg.head_dim;
}

/* ---- loading --------------------------------------------------------------------------------- */

static int load(ch_model *m, const char *name, int64_t rows, int64_t cols, ch_weight *w) {
    const ch_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    CH_TRY(ch_st_get(m->ckpt, name, cols > 0 ? 2 : 1, shape, &t));
    return m->be->load_weight(m->be, t, w);
}

static int load_layer(ch_model *m, int l, layer_weights *w) {
    const ch_config *c = &m->cfg;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    char n[160];
#define LOAD(field, suffix, rows, cols)                                                           \
    do {                                                                                          \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                   \
        CH_TRY(load(m, n, rows, cols, &w->field));                                                \
    } while (0)
    LOAD(ln1, "input_layernorm.weight", c->hidden, 0);
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
    LOAD(ln2, "post_attention_layernorm.weight", c->hidden, 0);
    LOAD(wgate, "mlp.gate_proj.weight", c->intermediate, c->hidden);
    LOAD(wup, "mlp.up_proj.weight", c->intermediate, c->hidden);
    LOAD(wdown, "mlp.down_proj.weight", c->hidden, c->intermediate);
#undef LOAD
    return 0;
}

int ch_model_open(const char *dir, ch_backend *be, ch_model **out) {
    *out = NULL;
    ch_model *m = NULL;
    CH_TRY(CH_ALLOC(m, 1, "model"));
    m->be = be;
    int rc = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CH_TRY_GOTO(ch_config_load(path, &m->cfg), fail);
    CH_TRY_GOTO(ch_st_open_dir(dir, &m->ckpt), fail);
    const ch_config *c = &m->cfg;
    CH_TRY_GOTO(load(m, "model.embed_tokens.weight", c->vocab, c->hidden, &m->embed), fail);
    CH_TRY_GOTO(CH_ALLOC(m->layers, c->n_layers, "layer table"), fail);
    for (int l = 0; l < c->n_layers; l++) CH_TRY_GOTO(load_layer(m, l, &m->layers[l]), fail);

    int half = c->head_dim / 2;
    float inv[MAX_INV_FREQ_STACK];
    if (half > MAX_INV_FREQ_STACK) CH_FAIL_GOTO(fail, CH_EUNSUPPORTED, "head_dim too large");
    for (int i = 0; i < half; i++) inv[i] = ch_rope_inv_freq(i, &c->rope);
    CH_TRY_GOTO(be->alloc(be, half * sizeof(float), (void **)&m->inv_freq), fail);
    CH_TRY_GOTO(be->upload(be, m->inv_freq, inv, half * sizeof(float)), fail);
    *out = m;
    return 0;
fail: /* messages from config/safetensors already name the file */
    ch_model_close(m);
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
    if (m->inv_freq) be->free(be, m->inv_freq);
    ch_st_close_dir(m->ckpt);
    ch_config_free(&m->cfg);
    free(m);
}

/* ---- scratch sized by the batch, grown when a larger batch arrives ---------------------------- */

static int scratch_reserve(ch_model *m, int ntok, int nseq) {
    scratch *s = &m->s;
    if (ntok <= s->cap && nseq <= s->seq_cap) return 0;
    ch_backend *be = m->be;
    const ch_config *c = &m->cfg;
    int cap = ntok > s->cap ? ntok : s->cap, seq_cap = nseq > s->seq_cap ? nseq : s->seq_cap;
    scratch_free(be, s);
    size_t T = (size_t)cap, f = sizeof(float);
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    CH_TRY(be->alloc(be, T * c->hidden * f, (void **)&s->x));
    CH_TRY(be->alloc(be, T * c->hidden * f, (void **)&s->xn));
    CH_TRY(be->alloc(be, T * qd * f, (void **)&s->q));
    CH_TRY(be->alloc(be, T * kvd * f, (void **)&s->k));
    CH_TRY(be->alloc(be, T * kvd * f, (void **)&s->v));
    CH_TRY(be->alloc(be, T * qd * f, (void **)&s->att));
    CH_TRY(be->alloc(be, T * c->hidden * f, (void **)&s->tmp));
    CH_TRY(be->alloc(be, T * c->intermediate * f, (void **)&s->gate));
    CH_TRY(be->alloc(be, T * c->intermediate * f, (void **)&s->up));
    CH_TRY(be->alloc(be, (size_t)seq_cap * c->n_layers * qd * f, (void **)&s->captured));
    CH_TRY(be->alloc(be, T * sizeof(int32_t), (void **)&s->ids));
    CH_TRY(be->alloc(be, T * sizeof(int32_t), (void **)&s->pos));
    CH_TRY(be->alloc(be, ((size_t)seq_cap + 1) * sizeof(int), (void **)&s->start));
    s->cap = cap;
    s->seq_cap = seq_cap;
    return 0;
}

/* y[ntok, out] = x[ntok, in] W^T (+ b): a HF Linear as one column-major GEMM. */
static int linear(ch_backend *be, const ch_weight *w, const ch_weight *b, const float *x,
                  int ntok, float *y) {
    int out = (int)w->rows, in = (int)w->cols;
    CH_TRY(be->gemm(be, 1, 0, out, ntok, in, 1.0f, w, in, x, in, 0.0f, y, out));
    if (b && b->data) CH_TRY(be->add_bias(be, y, b, ntok, out));
    return 0;
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

int ch_model_capture(ch_model *m, const ch_batch *b, ch_pool pool, float *out) {
    const ch_config *c = &m->cfg;
    ch_backend *be = m->be;
    int ntok = 0, max_len = 0;
    CH_TRY(check_batch(m, b, &ntok, &max_len));
    CH_TRY(scratch_reserve(m, ntok, b->nseq));
    scratch *s = &m->s;

    /* positions restart at 0 in every packed sequence */
    int32_t *pos = NULL;
    CH_TRY(CH_ALLOC(pos, ntok, "positions"));
    for (int q = 0; q < b->nseq; q++)
        for (int t = b->start[q]; t < b->start[q + 1]; t++) pos[t] = t - b->start[q];
    int rc = be->upload(be, s->pos, pos, (size_t)ntok * sizeof(int32_t));
    free(pos);
    CH_TRY(rc);
    CH_TRY(be->upload(be, s->ids, b->tokens, (size_t)ntok * sizeof(int32_t)));
    CH_TRY(be->upload(be, s->start, b->start, ((size_t)b->nseq + 1) * sizeof(int)));
    ch_seqs seqs = {.nseq = b->nseq, .ntok = ntok, .max_len = max_len, .start = b->start,
                    .start_dev = s->start, .pos_dev = s->pos};

    const int H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, qd = H * D;
    const size_t layer_cap = (size_t)b->nseq * qd; /* captured floats per layer */
    const float scale = 1.0f / sqrtf((float)D);

    CH_TRY(be->embed(be, &m->embed, s->ids, ntok, s->x));
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        /* attention block */
        CH_TRY(be->rmsnorm(be, s->x, &w->ln1, ntok, c->hidden, c->rms_eps, s->xn));
        CH_TRY(linear(be, &w->wq, &w->bq, s->xn, ntok, s->q));
        CH_TRY(linear(be, &w->wk, &w->bk, s->xn, ntok, s->k));
        CH_TRY(linear(be, &w->wv, &w->bv, s->xn, ntok, s->v));
        CH_TRY(be->rope(be, s->q, ntok, H, D, s->pos, m->inv_freq));
        CH_TRY(be->rope(be, s->k, ntok, KV, D, s->pos, m->inv_freq));
        CH_TRY(be->attention(be, s->q, s->k, s->v, &seqs, H, KV, D, scale, s->att));
        /* the capture: o_proj's input, per head, pooled per sequence */
        CH_TRY(be->pool(be, s->att, qd, &seqs, pool, s->captured + (size_t)l * layer_cap));
        if (l == c->n_layers - 1) break; /* nothing after the last attention is captured */
        CH_TRY(linear(be, &w->wo, &w->bo, s->att, ntok, s->tmp));
        CH_TRY(be->add(be, s->x, s->tmp, (size_t)ntok * c->hidden));
        /* MLP block */
        CH_TRY(be->rmsnorm(be, s->x, &w->ln2, ntok, c->hidden, c->rms_eps, s->xn));
        CH_TRY(linear(be, &w->wgate, NULL, s->xn, ntok, s->gate));
        CH_TRY(linear(be, &w->wup, NULL, s->xn, ntok, s->up));
        CH_TRY(be->swiglu(be, s->gate, s->up, (size_t)ntok * c->intermediate));
        CH_TRY(linear(be, &w->wdown, NULL, s->gate, ntok, s->tmp));
        CH_TRY(be->add(be, s->x, s->tmp, (size_t)ntok * c->hidden));
    }

    /* captured is [L][nseq][H*D] on the device; out is [nseq][L][H*D] on the host */
    float *host = NULL;
    CH_TRY(CH_ALLOC(host, layer_cap * c->n_layers, "captured heads"));
    rc = be->download(be, host, s->captured, layer_cap * c->n_layers * sizeof(float));
    if (!rc)
        for (int q = 0; q < b->nseq; q++)
            for (int l = 0; l < c->n_layers; l++)
                memcpy(out + ((size_t)q * c->n_layers + l) * qd, host + l * layer_cap + (size_t)q * qd,
                       (size_t)qd * sizeof(float));
    free(host);
    return rc;
}
