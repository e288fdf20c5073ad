#!/usr/bin/env python3
"""Golden data for a real trained checkpoint: stories260K (LlamaForCausalLM, f32, SentencePiece
tokenizer), from Hugging Face transformers (run with the oracle venv: torch + transformers from
PyPI; CI never runs this, it only reads what it wrote).

Model: ../shared/data/models/stories260K-hf relative to the repository root (config.json +
model.safetensors); tokenizer: the committed tests/data/tokenizers/stories260k files (made from
that folder's tokenizer.model by make_sp_tokenizer_golden.py), which capheads reads too.
For each of the TEXTS it records every layer's per-head attention output (o_proj's input,
forward pre-hooks), at the last token and averaged over the prompt, in float32, eager attention,
one sequence at a time:
  tests/golden/stories/corpus.jsonl          {"id": ..., "text": ...} per line, the corpus capheads runs
  tests/golden/stories/expected.safetensors  "tokens.<i>" (I32 [T], with the BOS the tokenizer
                                             adds), "last" and "mean" (F32 [N, L, H, D])
"""
import gzip
import json
import os
import shutil
import tempfile

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoTokenizer, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "..", "shared", "data", "models", "stories260K-hf")
TOK = os.path.join(ROOT, "tests", "data", "tokenizers", "stories260k")
OUT = os.path.join(HERE, "stories")

TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Tom had a red ball.",
    "The sun was shining and the birds were singing in the big green tree.",
    "One day, a cat saw a dog in the park.",
    "She wanted to play with her friends, but it was raining outside.",
    "Mom said, \"Let's go to the store!\"",
    "The little boy was very happy.",
    "They ate cake and laughed all day long.",
    "Ben found a shiny rock near the river and showed it to his sister.",
    "The bird flew high in the sky.",
    "Lily",
    "Once",
    "The end.",
    "He was sad because his toy was broken, so his dad helped him fix it.",
    "A big bear lived in the forest. He liked honey very much.",
    "Sue and Tim went to the beach to build a sand castle.",
    "The fish swam fast.",
    "\"Can I have one?\" asked the little mouse.",
    "It was a cold winter night, and the snow fell softly on the roof.",
    "Max the dog liked to run and jump. Every morning he woke up early to chase the ducks by the pond.",
]


def main():
    tmp = tempfile.mkdtemp()
    try:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            with gzip.open(os.path.join(TOK, f + ".gz"), "rb") as src, open(os.path.join(tmp, f), "wb") as dst:
                shutil.copyfileobj(src, dst)
        tok = AutoTokenizer.from_pretrained(tmp)
    finally:
        shutil.rmtree(tmp)
    model = LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.num_attention_heads
    D = cfg.head_dim or cfg.hidden_size // H
    heads = []
    hooks = [layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a: heads.append(a[0][0].float().clone()))
             for layer in model.model.layers]
    out = {}
    last, mean = [], []
    for i, text in enumerate(TEXTS):
        ids = tok(text)["input_ids"]
        out["tokens.%d" % i] = np.array(ids, dtype=np.int32)
        heads.clear()
        with torch.no_grad():
            model(torch.tensor([ids]))
        x = torch.stack(heads, dim=1).reshape(len(ids), L, H, D).double()
        last.append(x[-1].float().numpy())
        mean.append(x.mean(dim=0).float().numpy())
    for h in hooks:
        h.remove()
    out["last"] = np.stack(last).astype(np.float32)
    out["mean"] = np.stack(mean).astype(np.float32)
    os.makedirs(OUT, exist_ok=True)
    save_file(out, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "corpus.jsonl"), "w") as f:
        for i, t in enumerate(TEXTS):
            f.write(json.dumps({"id": "story%02d" % i, "text": t}) + "\n")
    print("stories260K:", len(TEXTS), "texts,", sum(len(v) for k, v in out.items() if k.startswith("tokens")),
          "tokens; L H D =", L, H, D)


main()
