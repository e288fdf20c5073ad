#!/usr/bin/env python3
"""Golden data for the model engine, from Hugging Face transformers (run with the oracle venv:
torch + transformers from PyPI; CI never runs this, it only reads what it wrote).

Builds tiny random checkpoints with the real architectures' features and records, for a set of
token sequences of varied lengths, every layer's per-head attention output (the input of o_proj,
captured with a forward pre-hook) at every position, and the final norm's output:
  llama31_f32          LlamaForCausalLM, GQA 4q/2kv, llama3 rope scaling (all three frequency
                       bands occur at head_dim 16), untied embeddings, float32
  llama31_bf16         the same weights in bfloat16
  llama31_bf16_sharded the same, saved as 3 shards + model.safetensors.index.json
  llama32_tied         Llama 3.2 style: tied embeddings (no lm_head tensor), float32
  qwen25_f32           Qwen2ForCausalLM: q/k/v biases, rope theta 1e6, tied, GQA, float32
  qwen25_bf16          the same in bfloat16
  qwen3_f32            Qwen3ForCausalLM: per-head q_norm/k_norm RMSNorm before RoPE, no q/k/v
                       biases, head_dim 32 != hidden / heads (16), rope theta 1e6, tied, GQA, float32
  qwen3_bf16           the same in bfloat16
  mistral_f32          MistralForCausalLM: sliding_window 20 on every layer (shorter than the two
                       longest sequences, 33 and 100; 100 also spans several of the CPU backend's
                       query blocks), GQA, rope theta 1e6, untied, float32
  mistral_bf16         the same in bfloat16
  gemma2_f32           Gemma2ForCausalLM: GeGLU (gelu_pytorch_tanh), embedding x sqrt(hidden 72) (not
                       a bf16 number: 8.485 -> 8.5), (1 + w) RMSNorms before and after attention and
                       MLP, query_pre_attn_scalar 24 != head_dim 32, attn_logit_softcapping 3 (it
                       changes most scores here), layers sliding / global / sliding with window 12,
                       tied, float32
  gemma2_bf16          the same in bfloat16
  gemma3_f32           Gemma3ForCausalLM (text): Gemma 2's features without the soft cap, plus
                       q_norm / k_norm, and config.json in the published form (sliding_window_pattern
                       3, rope_theta 1e6 with linear rope_scaling x8 for the global layers,
                       rope_local_base_freq 1e4 for the sliding ones), float32
  gemma3_bf16          the same in bfloat16
The new architectures' sequences are 1, 2, 7, 16, 33 and 100 tokens long.
Arguments, if any, name the models to (re)build; none: all.
tests/golden/models/<name>/expected.safetensors holds "tokens.<i>" (I32 [T]), "heads.<i>" (F32
[T, L, H, D]) and "final_hidden.<i>" (F32 [T, hidden]); bf16 models also "heads_f32.<i>" and
"final_hidden_f32.<i>": the same bf16 weights upcast to float32 and run in float32, which an
f32-computing engine must match tightly, and "heads_bf16in.<i>", "final_hidden_bf16in.<i>": that
float32 run with every Linear's input rounded to bfloat16 first (a forward pre-hook on each
nn.Linear of the decoder) - and for Gemma its embedding scale rounded to bfloat16, as the bf16
model's own is - the contract of capheads' default precision for bf16 weights (bf16
weights times bf16-rounded activations, summed in f32; everything else f32). Runs use attn_implementation="eager", one sequence at a
time, no padding.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig,
                          LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")
LENGTHS = [1, 2, 7, 16, 33, 64]
LONG_LENGTHS = [1, 2, 7, 16, 33, 100]
VOCAB = 320


def llama_config(tied):
    return LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                       rope_theta=500000.0, max_position_embeddings=256, tie_word_embeddings=tied,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                       attn_implementation="eager")


def qwen_config():
    return Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       max_position_embeddings=256, tie_word_embeddings=True, attn_implementation="eager")


def qwen3_config():
    return Qwen3Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, max_position_embeddings=256, tie_word_embeddings=True,
                       attention_bias=False, use_sliding_window=False, attn_implementation="eager")


def mistral_config():
    return MistralConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                         rope_theta=1000000.0, max_position_embeddings=256, tie_word_embeddings=False,
                         sliding_window=20, attn_implementation="eager")


def gemma2_config():
    return Gemma2Config(vocab_size=VOCAB, hidden_size=72, intermediate_size=160, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                        rope_theta=10000.0, max_position_embeddings=256, query_pre_attn_scalar=24,
                        sliding_window=12, attn_logit_softcapping=3.0, final_logit_softcapping=30.0,
                        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                        attn_implementation="eager")


def gemma3_config():
    return Gemma3TextConfig(vocab_size=VOCAB, hidden_size=72, intermediate_size=160, num_hidden_layers=3,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                            rope_theta=1000000.0, rope_local_base_freq=10000.0,
                            rope_scaling={"rope_type": "linear", "factor": 8.0}, sliding_window_pattern=3,
                            max_position_embeddings=256, query_pre_attn_scalar=24, sliding_window=12,
                            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                            attn_implementation="eager")


# config.json of a Gemma 3 checkpoint as published (google/gemma-3-1b-it and the 4B+ text models),
# which transformers reads into the layer_types and rope_parameters it writes itself
GEMMA3_PUBLISHED = {"rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                    "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 3}


def publish_gemma3_config(d):
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    types = cfg.pop("layer_types")
    cfg.pop("rope_parameters")
    cfg.pop("_sliding_window_pattern")
    cfg.update(GEMMA3_PUBLISHED)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    return types


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # Gemma's RMSNorm multiplies by (1 + w): its weights sit around 0 for the same scale
        center = 0.0 if model.config.model_type.startswith("gemma") else 1.0
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(center + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:  # attention neither uniform nor one-hot: a wrong op shows, bf16 rounding does not flip it
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def capture(model, ids, bf16_inputs=False):
    """Every layer's o_proj input and the final norm's output, per token. bf16_inputs: every
    decoder Linear's input is rounded to bfloat16 (and back to float32) before it multiplies; the
    rounding hooks come after the capturing ones, so the captured o_proj input is unrounded, as
    capheads captures it. Gemma's embedding scale is then rounded to bfloat16 too (the bf16
    model's own is), for this run only."""
    heads, final = [], []
    emb = model.model.embed_tokens
    saved_scale = emb.embed_scale.clone() if hasattr(emb, "embed_scale") else None
    if bf16_inputs and saved_scale is not None:
        emb.embed_scale.copy_(saved_scale.to(torch.bfloat16).to(saved_scale.dtype))
    hooks = [layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a: heads.append(a[0][0].float().clone()))
             for layer in model.model.layers]
    hooks.append(model.model.norm.register_forward_hook(lambda m, a, o: final.append(o[0].float().clone())))
    if bf16_inputs:
        hooks += [m.register_forward_pre_hook(lambda m, a: (a[0].to(torch.bfloat16).to(torch.float32),) + a[1:])
                  for m in model.model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    if saved_scale is not None:
        emb.embed_scale.copy_(saved_scale)
    cfg = model.config
    hd = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // cfg.num_attention_heads
    t = len(ids)
    stacked = torch.stack(heads, dim=1).reshape(t, cfg.num_hidden_layers, cfg.num_attention_heads, hd)
    return stacked.numpy().astype(np.float32), final[0].numpy().astype(np.float32)


def build(name, cls, cfg, seed, dtype, shards=0, lengths=LENGTHS, publish=None):
    if len(sys.argv) > 1 and name not in sys.argv[1:]:
        return
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    randomize(model, seed)
    if dtype == torch.bfloat16:
        model = model.to(torch.bfloat16)
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    if shards:
        model.save_pretrained(d, safe_serialization=True, max_shard_size="150KB")
    else:
        model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    if publish:  # the reference runs below read the rewritten config: it must mean the same model
        types = publish(d)
        assert cls.from_pretrained(d).config.layer_types == types
    rng = np.random.default_rng(seed)
    out = {}
    ref32 = None
    if dtype == torch.bfloat16:
        ref32 = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    native = cls.from_pretrained(d, dtype=dtype, attn_implementation="eager").eval()
    for i, n in enumerate(lengths):
        ids = rng.integers(0, VOCAB, size=n).tolist()
        out["tokens.%d" % i] = np.array(ids, dtype=np.int32)
        out["heads.%d" % i], out["final_hidden.%d" % i] = capture(native, ids)
        if ref32 is not None:
            out["heads_f32.%d" % i], out["final_hidden_f32.%d" % i] = capture(ref32, ids)
            out["heads_bf16in.%d" % i], out["final_hidden_bf16in.%d" % i] = capture(ref32, ids, bf16_inputs=True)
    save_file(out, os.path.join(d, "expected.safetensors"))
    files = sorted(os.listdir(d))
    print(name, files, sum(os.path.getsize(os.path.join(d, f)) for f in files), "bytes")


os.makedirs(OUT, exist_ok=True)
build("llama31_f32", LlamaForCausalLM, llama_config(False), 11, torch.float32)
build("llama31_bf16", LlamaForCausalLM, llama_config(False), 11, torch.bfloat16)
build("llama31_bf16_sharded", LlamaForCausalLM, llama_config(False), 11, torch.bfloat16, shards=3)
build("llama32_tied", LlamaForCausalLM, llama_config(True), 12, torch.float32)
build("qwen25_f32", Qwen2ForCausalLM, qwen_config(), 13, torch.float32)
build("qwen25_bf16", Qwen2ForCausalLM, qwen_config(), 13, torch.bfloat16)
build("qwen3_f32", Qwen3ForCausalLM, qwen3_config(), 14, torch.float32)
build("qwen3_bf16", Qwen3ForCausalLM, qwen3_config(), 14, torch.bfloat16)
build("mistral_f32", MistralForCausalLM, mistral_config(), 15, torch.float32, lengths=LONG_LENGTHS)
build("mistral_bf16", MistralForCausalLM, mistral_config(), 15, torch.bfloat16, lengths=LONG_LENGTHS)
build("gemma2_f32", Gemma2ForCausalLM, gemma2_config(), 16, torch.float32, lengths=LONG_LENGTHS)
build("gemma2_bf16", Gemma2ForCausalLM, gemma2_config(), 16, torch.bfloat16, lengths=LONG_LENGTHS)
build("gemma3_f32", Gemma3ForCausalLM, gemma3_config(), 17, torch.float32, lengths=LONG_LENGTHS,
      publish=publish_gemma3_config)
build("gemma3_bf16", Gemma3ForCausalLM, gemma3_config(), 17, torch.bfloat16, lengths=LONG_LENGTHS,
      publish=publish_gemma3_config)
