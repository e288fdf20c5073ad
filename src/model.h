/* model.h - a decoder-only transformer (Llama / Qwen2) run for its attention-head outputs.
 *
 * ch_model_capture runs one forward pass over a packed batch of token sequences and returns, for
 * every layer l and query head h, the head's attention output softmax(q k^T / sqrt(D)) v - the
 * slice h of the o_proj input - at the last token of each sequence or averaged over its tokens.
 * The LM head is never computed. */
#ifndef CH_MODEL_H
#define CH_MODEL_H

#include <stdint.h>

#include "../kernels/backend.h"
#include "config.h"

typedef struct ch_model ch_model;

/* A packed batch: sequence s is tokens[start[s] .. start[s+1]), nseq >= 1, every length >= 1. */
typedef struct {
    int nseq;
    const int32_t *tokens;
    const int *start; /* nseq + 1 offsets */
} ch_batch;

/* Open a Hugging Face model directory (config.json + model.safetensors or an index + shards),
 * check every tensor's presence and shape, and load the weights into the backend. The model
 * borrows the backend (the caller destroys it after ch_model_close). */
int ch_model_open(const char *dir, ch_backend *be, ch_model **out);
void ch_model_close(ch_model *m);
const ch_config *ch_model_config(const ch_model *m);

/* Floats per sequence in the capture output: n_layers * n_heads * head_dim. */
int64_t ch_model_capture_width(const ch_model *m);

/* Forward pass; out (host) receives [nseq][n_layers][n_heads][head_dim] f32.
 * Token ids must be < vocab (CH_EARG otherwise, naming the sequence and position). */
int ch_model_capture(ch_model *m, const ch_batch *b, ch_pool pool, float *out);

/* As ch_model_capture, and when hidden is not NULL also the final hidden state (after the final
 * RMSNorm, the LM head's input) mean-pooled over each sequence's tokens: hidden [nseq][hidden]
 * (the representation the RDS selection baseline compares). Costs the last layer's MLP. */
int ch_model_capture_ex(ch_model *m, const ch_batch *b, ch_pool pool, float *out, float *hidden);

#endif
