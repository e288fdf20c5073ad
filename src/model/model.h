/* model.h - a decoder-only transformer (Llama / Qwen2) run for its attention-head outputs.
 *
 * ch_model_capture runs one forward pass over a packed batch of token sequences and returns, for
 * every layer l and query head h, the head's attention output softmax(q k^T / sqrt(D)) v - the
 * slice h of the o_proj input - at the last token of each sequence or averaged over its tokens:
 * as f32 (ch_model_capture, ch_model_capture_ex) or in the archive's binary16, layer-major
 * (ch_model_capture_start). The LM head is never computed. */
#ifndef CH_MODEL_H
#define CH_MODEL_H

#include <stdint.h>

#include "backend.h"
#include "config.h"

typedef struct ch_model ch_model;

/* A packed batch: sequence s is tokens[start[s] .. start[s+1]), nseq >= 1, every length >= 1. */
typedef struct {
    int nseq;
    const int32_t *tokens;
    const int *start; /* nseq + 1 offsets */
} ch_batch;

/* What the Linear layers (q, k, v, o, gate, up, down) multiply:
 *   CH_PRECISION_AUTO  a bf16 (f16) checkpoint's Linear weights stay bf16 (f16) where the backend
 *                      multiplies that type - CPU: bf16; CUDA: bf16 and f16 - and their inputs
 *                      are rounded to it, the sums f32: how the model runs in its own dtype
 *                      (transformers' dtype="auto"), at half the weight memory of f32. Other
 *                      weights (f32, or f16 on the CPU): f32.
 *   CH_PRECISION_F32   every Linear in f32, the weights widened at load: the reference, within
 *                      1e-4 of transformers run in float32 (auto is typically 1e-3 to 1e-2 away,
 *                      relative), at twice the weight memory.
 * Everything else (norms, RoPE, attention, SwiGLU, the residual stream) is f32 in both. */
typedef enum { CH_PRECISION_AUTO = 0, CH_PRECISION_F32 = 1 } ch_precision;

/* Open a Hugging Face model directory (config.json + model.safetensors or an index + shards),
 * check every tensor's presence and shape, and load the weights into the backend. The model
 * borrows the backend (the caller destroys it after ch_model_close). */
int ch_model_open(const char *dir, ch_backend *be, ch_precision prec, ch_model **out);
/* The type the Linear inputs are rounded to: "bf16", "f16" or "f32" (archives record it). */
const char *ch_model_precision(const ch_model *m);
void ch_model_close(ch_model *m);
const ch_config *ch_model_config(const ch_model *m);

/* Floats per sequence in the capture output: n_layers * n_heads * head_dim. */
int64_t ch_model_capture_width(const ch_model *m);

/* Forward pass, synchronous; out (host) receives [nseq][n_layers][n_heads][head_dim] f32: the
 * values before the archive's narrowing to binary16 (what the golden tests compare; tools and
 * benchmarks). Token ids must be < vocab (CH_EARG otherwise, naming the sequence and position). */
int ch_model_capture(ch_model *m, const ch_batch *b, ch_pool pool, float *out);

/* As ch_model_capture, and when hidden is not NULL also the final hidden state (after the final
 * RMSNorm, the LM head's input) mean-pooled over each sequence's tokens: hidden [nseq][hidden]
 * f32 (the representation the RDS selection baseline compares). Costs the last layer's MLP. */
int ch_model_capture_ex(ch_model *m, const ch_batch *b, ch_pool pool, float *out, float *hidden);

/* The archive's form, asynchronous: what extract writes. acts receives the captures layer-major,
 * [n_layers][nseq][n_heads * head_dim], and hidden (when not NULL) [nseq][hidden], both as
 * IEEE binary16 bits: ch_f32_to_f16 of ch_model_capture_ex's values, narrowed on the device by
 * the backend's pool, so acts is exactly the block ch_archive_write_rows takes. Queues the
 * forward pass of b and the copies of its results into acts (and hidden), records `done` (an
 * event of the model's backend) after them, and returns: on CUDA once the work is queued, on the
 * CPU when it is done. acts and hidden may be read only after be->event_wait(be, done) returned
 * 0, and should come from be->host_alloc (page-locked on CUDA; other memory makes the copy
 * synchronous). b's arrays may be reused at once. done NULL: wait here.
 * The next call may start before the previous batch's event was waited for: the device runs the
 * work in order, so the previous copies read the scratch before this batch overwrites it.
 * Out of device memory (CH_ENOMEM): the message tells the batch's needs per token and per
 * sequence, the free memory and a --batch-tokens budget that would fit. */
int ch_model_capture_start(ch_model *m, const ch_batch *b, ch_pool pool, uint16_t *acts, uint16_t *hidden,
                           ch_event *done);

/* Device bytes of the forward pass for a batch of ntok tokens in nseq sequences: the activation
 * scratch (x, xn, tmp [T, hidden]; q, att [T, H*D]; k, v [T, KV*D]; gate, up [T, intermediate];
 * token ids and positions [T]; the captures [S, L, H*D]; offsets [S + 1]) plus
 * gemm_ws_per_token bytes per token of GEMM workspace (be->gemm_workspace for one token's row of
 * the widest Linear input; 0 on the CPU). Weights not included: they are loaded already. */
size_t ch_model_batch_bytes(const ch_config *c, int64_t ntok, int64_t nseq, size_t gemm_ws_per_token);

/* The largest token budget N (1 .. INT_MAX) whose batches need at most avail bytes
 * (ch_model_batch_bytes) when they hold seqs_per_token sequences per token (clamped to [0, 1]):
 * nseq = ceil(N x seqs_per_token), at least 1. 0 when not even one token fits. */
int64_t ch_model_fit_batch_tokens(const ch_config *c, size_t avail, double seqs_per_token,
                                  size_t gemm_ws_per_token);

#endif
