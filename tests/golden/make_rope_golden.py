#!/usr/bin/env python3
"""Record Hugging Face transformers' RoPE inverse frequencies for the configs the engine supports.

Run with the oracle venv (transformers from PyPI); writes rope_inv_freq.txt next to this script:
one line per case: name head_dim then head_dim/2 floats (repr of float32 values).
The C test (tests/test_config.c) recomputes them with kernels/ops_math.h's ch_rope_inv_freq.
"""
import os
from transformers import LlamaConfig, Qwen2Config
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

CASES = [
    # Llama-3.1-8B: theta 5e5, llama3 scaling (factor 8, 1, 4, 8192), head_dim 128
    ("llama31_8b", LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0,
                                             "original_max_position_embeddings": 8192}), LlamaRotaryEmbedding),
    # Llama-3.2 style (factor 32)
    ("llama32_3b", LlamaConfig(hidden_size=3072, num_attention_heads=24, rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0,
                                             "original_max_position_embeddings": 8192}), LlamaRotaryEmbedding),
    # tiny: all three branches with head_dim 16
    ("llama_tiny16", LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=500000.0,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 64}), LlamaRotaryEmbedding),
    ("qwen25_7b", Qwen2Config(hidden_size=3584, num_attention_heads=28, rope_theta=1000000.0), Qwen2RotaryEmbedding),
    ("llama_plain", LlamaConfig(hidden_size=512, num_attention_heads=8, rope_theta=10000.0), LlamaRotaryEmbedding),
]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rope_inv_freq.txt")
with open(out, "w") as f:
    for name, cfg, cls in CASES:
        emb = cls(config=cfg)
        inv = emb.inv_freq.float().numpy()
        hd = cfg.hidden_size // cfg.num_attention_heads
        assert inv.shape[0] == hd // 2
        f.write(name + " " + str(hd) + " " + " ".join("%.9e" % float(v) for v in inv) + "\n")
print("wrote", out)
