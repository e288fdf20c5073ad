#!/usr/bin/env python3
"""Build the demo's tiny model: a randomly initialised Llama-3.1-style checkpoint that uses the real
Llama 3.1 tokenizer, so the demo exercises the same code path as the paper's Llama-3.1-8B run.

Run with the oracle venv (torch + transformers from PyPI), from the repository root:
    /opt/oracle/bin/python data/demo/make_demo_model.py
Writes data/demo/model/{config.json, model.safetensors}. The tokenizer files are not copied here:
scripts/demo.sh decompresses tests/data/tokenizers/llama3_1/tokenizer.json.gz next to the weights.
Size: the embedding table dominates (128256 x 48 bf16 = 12.3 MB).
"""
import os
import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.manual_seed(20251124)
cfg = LlamaConfig(
    vocab_size=128256, hidden_size=48, intermediate_size=128, num_hidden_layers=4,
    num_attention_heads=6, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
    rope_theta=500000.0, max_position_embeddings=131072,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
)
model = LlamaForCausalLM(cfg)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        else:
            p.normal_(0.0, 0.4)  # large enough that every layer mixes its inputs visibly
model = model.to(torch.bfloat16)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")
model.save_pretrained(out, safe_serialization=True)
print("wrote", out, sorted(os.listdir(out)))
