#!/usr/bin/env python3
"""bench_extract_gpu.py - capheads extract (CUDA backend) vs HF transformers on the same GPU.

Both sides run a random-weight Llama-3.1-8B-shaped model (bf16, GQA 32/8 heads, llama3 rope
scaling; --layers to shorten it) over the same corpus, split into the same token-budget batches,
and capture what capheads captures: every layer's o_proj input at the last prompt token. The HF
peer is LlamaModel (no LM head, like capheads) with SDPA attention and a forward pre-hook on each
o_proj; it pads each batch (HF has no packed variable-length path in the eager API) and moves the
captures to the host as float16, as capheads writes them.

capheads' time is the difference between a run over the whole corpus and a run over its first
batch, so the one-off costs (process start, MPI init, loading the checkpoint) cancel; HF loads
its model once, outside the timed region. Runs alternate capheads, HF, capheads, HF ... for
--pairs pairs (>= 5); the table shows the median of each and the median of the per-pair ratios.
capheads runs with `--device cuda` (extract's --device defaults to auto and ignores
CAPHEADS_BACKEND), so a build or driver problem fails the benchmark instead of silently timing
the CPU backend.

MFU counts the FLOPs the captured outputs need, the same numerator for both systems, against the
GPU's dense bf16 peak: per token 2 x (the q/k/v projection weights of every layer + the o_proj
and MLP weights of every layer but the last) + causal attention (2 x layers x token-weighted mean
context x q width). The last layer's o_proj and MLP feed nothing that is captured and the LM head
is never needed, so capheads skips them and they are not counted; HF's LlamaModel still runs the
last layer's o_proj and MLP (and pads its batches), work that shows up as lower MFU for it.

Needs: a GPU, the capheads binary built with CUDA, a python with torch (CUDA build),
transformers, tokenizers, h5py, numpy. Examples:
    python benchmarks/bench_extract_gpu.py --capheads build-gpu/capheads --layers 8
    python3 benchmarks/bench_extract_gpu.py --bundle gpu-bundle --layers 8
--bundle DIR takes capheads from a build packed by tests/gpu/pack.sh (the lent GPU machine has no
Open MPI or HDF5 of its own): each capheads run sources DIR/env.sh first, while this script keeps
its own library path (the bundle's Debian libraries are not what torch was built against).
The checkpoint (about 16 GB for 32 layers) is written once under --workdir and reused.

--device cpu --tiny is the self-test of this script on a machine without a GPU (capheads and HF on
the CPU, a tiny model of the same structure); it prints no GPU name, MFU or GPU figures:
    python3 benchmarks/bench_extract_gpu.py --bundle gpu-bundle --device cpu --tiny \
        --layers 2 --records 32 --seq-len 48 --batch-tokens 512
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import numpy as np

LLAMA31_8B = dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                  num_key_value_heads=8, head_dim=128, vocab_size=128256, rms_norm_eps=1e-5,
                  rope_theta=500000.0, max_position_embeddings=131072,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                  tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                  bos_token_id=0, eos_token_id=1)
# --tiny: the same structure (GQA, llama3 rope scaling, untied) at toy size, for the CPU self-test;
# the vocabulary is the trained tokenizer's 8192
TINY = dict(LLAMA31_8B, hidden_size=64, intermediate_size=160, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, vocab_size=8192)

# Llama-3's pre-tokenizer split pattern (tokenizer.json of Meta-Llama-3.1-8B).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}


def make_tokenizer(path, words):
    """A Llama-3-structured byte-level BPE (split regex + ByteLevel, BOS template), 8k merges."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    # the header tokens too: capheads opens a LlamaForCausalLM directory with the Llama 3 chat
    # template and refuses a tokenizer that lacks that template's tokens
    trainer = trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|begin_of_text|>", "<|end_of_text|>",
                                                                   "<|start_header_id|>", "<|end_header_id|>",
                                                                   "<|eot_id|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((" ".join(random.choices(words, k=64)) for _ in range(4000)), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    tok.save(path)
    return tok


def make_model(d, layers, device, shape):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(num_hidden_layers=layers, **shape)
    torch.manual_seed(0)
    with torch.device(device):
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(d, safe_serialization=True, max_shard_size="5GB")
    del m


def make_corpus(path, tok, words, n, target_len):
    """n records of about target_len tokens each (lengths vary +-50% so packing matters)."""
    recs = []
    for i in range(n):
        want = max(8, int(target_len * random.uniform(0.5, 1.5)))
        text = " ".join(random.choices(words, k=want))
        ids = tok.encode(text).ids[:want]
        text = tok.decode(ids[1:])  # cut to about `want` tokens; re-encoded below
        recs.append({"id": f"r{i}", "text": text, "label": "math"})
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def batches(lengths, budget):
    """Consecutive records, at most `budget` tokens per batch (capheads' --batch-tokens rule)."""
    out, cur, tot = [], [], 0
    for i, n in enumerate(lengths):
        if cur and tot + n > budget:
            out.append(cur)
            cur, tot = [], 0
        cur.append(i)
        tot += n
    if cur:
        out.append(cur)
    return out


def capheads_cmd(exe, bundle):
    """The command prefix that runs capheads: from a bundle, through bash sourcing its env.sh."""
    if not bundle:
        return [exe]
    b = os.path.abspath(bundle)
    return ["bash", "-c", 'source "$1/env.sh" && shift && exec "$0" "$@"', os.path.join(b, "bin", "capheads"), b]


def run_capheads(exe, model, corpus, out, budget, device):
    # an explicit --device: extract's default (auto) does not read CAPHEADS_BACKEND, and a CUDA
    # failure must stop the benchmark rather than fall back to the CPU
    cmd = exe + ["extract", "--model", model, "--input", corpus, "--output", out,
                 "--batch-tokens", str(budget), "--pool", "last", "--device", device]
    if os.path.exists(out):
        os.remove(out)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"capheads failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return dt


def hf_extract(model, tok, texts, budget, device):
    """Same captures as capheads: o_proj input at the last token of each sequence, as float16."""
    import torch
    enc = [tok.encode(t).ids for t in texts]
    L = len(model.layers)
    caught = [None] * L
    hooks = [layer.self_attn.o_proj.register_forward_pre_hook(
        lambda mod, args, l=l: caught.__setitem__(l, args[0])) for l, layer in enumerate(model.layers)]
    out = []
    with torch.inference_mode():
        for b in batches([len(e) for e in enc], budget):
            n = max(len(enc[i]) for i in b)
            ids = torch.zeros((len(b), n), dtype=torch.long)
            mask = torch.zeros((len(b), n), dtype=torch.long)
            for r, i in enumerate(b):
                ids[r, :len(enc[i])] = torch.tensor(enc[i])
                mask[r, :len(enc[i])] = 1
            last = mask.sum(1) - 1
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
            rows = torch.arange(len(b), device=device)
            cap = torch.stack([c[rows, last.to(device)] for c in caught], 1)  # [B, L, H*D]
            out.append(cap.to(torch.float16).cpu())
    for h in hooks:
        h.remove()
    return torch.cat(out).numpy(), sum(len(e) for e in enc)


def needed_params(model, n_layers):
    """Weights the captured outputs depend on: q/k/v of every layer, o_proj and the MLP of every
    layer but the last (the capture is the last layer's o_proj INPUT). No embedding lookup (not a
    matmul), no final norm, no LM head (LlamaModel has none)."""
    total = 0
    for name, p in model.named_parameters():
        parts = name.split(".")
        if p.dim() != 2 or "layers" not in parts:
            continue
        layer = int(parts[parts.index("layers") + 1])
        if any(k in name for k in ("q_proj", "k_proj", "v_proj")):
            total += p.numel()
        elif layer < n_layers - 1 and ("o_proj" in name or ".mlp." in name):
            total += p.numel()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capheads", default="build-gpu/capheads")
    ap.add_argument("--bundle", help="a tests/gpu/pack.sh bundle: its bin/capheads, run with its env.sh")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cuda (the benchmark); cpu: self-test without a GPU, no GPU figures")
    ap.add_argument("--tiny", action="store_true", help="a toy model of the same structure (self-test)")
    ap.add_argument("--workdir", default="bench-gpu-work")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--records", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=256, help="mean prompt length in tokens")
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=0, help="dense bf16 peak (auto by GPU name)")
    a = ap.parse_args()
    if a.pairs < 5:
        sys.exit("--pairs must be >= 5")

    import torch
    from transformers import LlamaForCausalLM
    device = a.device
    exe = capheads_cmd(a.capheads, a.bundle)
    if device == "cuda":
        gpu = torch.cuda.get_device_name(0)
        peak = a.peak_tflops * 1e12 or next((v for k, v in PEAK_BF16.items() if k in gpu), 0)
    else:  # no GPU figures from a CPU run: no GPU name, no peak, so no MFU
        gpu, peak = None, 0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    random.seed(1234)
    os.makedirs(a.workdir, exist_ok=True)
    mdir = os.path.join(a.workdir, f"{'tiny' if a.tiny else 'llama31-8b-shape'}-{a.layers}L")
    words = ["".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=random.randint(2, 9)))
             for _ in range(3000)]
    if not os.path.exists(os.path.join(mdir, "config.json")):
        make_model(mdir, a.layers, device, TINY if a.tiny else LLAMA31_8B)
    from tokenizers import Tokenizer
    tpath = os.path.join(mdir, "tokenizer.json")
    tok = Tokenizer.from_file(tpath) if os.path.exists(tpath) else make_tokenizer(tpath, words)
    corpus = os.path.join(a.workdir, "corpus.jsonl")
    recs = make_corpus(corpus, tok, words, a.records, a.seq_len)
    texts = [r["text"] for r in recs]
    lens = [len(tok.encode(t).ids) for t in texts]
    first = batches(lens, a.batch_tokens)[0]
    small = os.path.join(a.workdir, "corpus-first-batch.jsonl")
    with open(small, "w") as f:
        for i in first:
            f.write(json.dumps(recs[i]) + "\n")
    ntok = sum(lens) - sum(lens[i] for i in first)  # tokens timed on the capheads side

    hf = LlamaForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16,
                                          attn_implementation="sdpa").model.to(device).eval()
    cfg = hf.config
    qw = cfg.num_attention_heads * cfg.head_dim
    p_needed = needed_params(hf, cfg.num_hidden_layers)
    ctx = sum(n * n for n in lens) / sum(lens)  # token-weighted mean context
    flops_tok = 2 * p_needed + 2 * cfg.num_hidden_layers * ctx * qw

    hf_extract(hf, tok, texts[:8], a.batch_tokens, device)  # warm-up (cuBLAS, SDPA kernels)
    out = os.path.join(a.workdir, "out.h5")
    rows = []
    for p in range(a.pairs):
        t_small = run_capheads(exe, mdir, small, out, a.batch_tokens, device)
        t_all = run_capheads(exe, mdir, corpus, out, a.batch_tokens, device)
        ch_tps = ntok / max(t_all - t_small, 1e-9)
        sync()
        t = time.perf_counter()
        caps, hf_ntok = hf_extract(hf, tok, texts, a.batch_tokens, device)
        sync()
        hf_tps = hf_ntok / (time.perf_counter() - t)
        rows.append((ch_tps, hf_tps))
        print(f"pair {p + 1}: capheads {ch_tps:10.0f} tok/s   HF {hf_tps:10.0f} tok/s", flush=True)

    # agreement of the last runs' captures (both bf16 pipelines: expect ~1e-2 relative)
    import h5py
    with h5py.File(out, "r") as f:
        x = f["activations"][()].astype(np.float32).reshape(len(texts), cfg.num_hidden_layers, -1)
        assert list(f["n_tokens"][()]) == lens, "capheads and HF tokenized the corpus differently"
    y = caps.astype(np.float32)
    rel = np.linalg.norm(x - y, axis=2) / (np.linalg.norm(y, axis=2) + 1e-6)

    ch = statistics.median(r[0] for r in rows)
    hfm = statistics.median(r[1] for r in rows)
    ratio = statistics.median(r[0] / r[1] for r in rows)
    if device == "cpu":
        print("\nCPU SELF-TEST (--device cpu): capheads and HF both on the CPU; these are not GPU figures")
    shape = "tiny Llama-3.1 structure" if a.tiny else "Llama-3.1-8B shape"
    print(f"\n{'GPU: ' + gpu if gpu else 'device: cpu'}; model: {shape}, {cfg.num_hidden_layers} layers, bf16; "
          f"{len(texts)} records, {sum(lens)} tokens, batch budget {a.batch_tokens} tokens; "
          f"{a.pairs} interleaved pairs")
    print(f"MFU numerator: {flops_tok / 1e9:.2f} GFLOP per token ({p_needed / 1e9:.2f} B weights the capture "
          f"needs: q/k/v of all {cfg.num_hidden_layers} layers, o_proj + MLP of the first "
          f"{cfg.num_hidden_layers - 1}; causal attention at mean context {ctx:.0f})")
    print(f"{'system':<28}{'tokens/s (median)':>20}{'MFU':>10}")
    for name, v in ((f"capheads extract ({device})", ch), ("HF transformers + hooks", hfm)):
        mfu = f"{100 * v * flops_tok / peak:.1f}%" if peak else "n/a"
        print(f"{name:<28}{v:>20.0f}{mfu:>10}")
    print(f"median ratio capheads/HF: {ratio:.2f}x")
    print(f"capture agreement, per (record, layer) relative L2: median {np.median(rel):.2e}, "
          f"max {rel.max():.2e}")


if __name__ == "__main__":
    main()
