#!/usr/bin/env python3
"""Prefill throughput: capheads' CPU engine vs Hugging Face transformers on CPU, same machine, same
token batches, interleaved (ours, peer, ours, peer, ...), median of the pairs.

Run with the oracle venv (torch + transformers from PyPI) after building:
    /opt/oracle/bin/python benchmarks/bench_prefill.py [--pairs 5] [--build build]
(CAPHEADS_CPU_BF16=amx|avx512bf16|widen measures one bf16 kernel; the table names the CPU by
family, model and flags, and the kernels capheads ran: OpenBLAS core, bf16 Linear.)
Model: a random checkpoint with Qwen2.5-0.5B's exact config (bf16, 494M parameters), made once
in $CAPHEADS_BENCH_CACHE (default /tmp/capheads-bench). Work: 16 sequences of 64..256 tokens
(seeded), every head's attention output at the last token (the o_proj input, captured with
forward pre-hooks in the peer: the same work, no LM head: transformers' base AutoModel).
Two precisions, each against the peer at the same one: capheads --precision auto (bf16 weights
times bf16-rounded activations, f32 sums: AMX where the CPU has it) against transformers in
bfloat16, and capheads --precision f32 against transformers in float32. The peer runs twice per
pair: padding each batch (attention mask) as batched transformers inference does - ours packs
sequences without padding - and one sequence per call, where nothing is padded.
Both sides are timed after one untimed pass over the batches (the peer's warm-up; ours: a first
run in the same process, so page faults of fresh buffers are not timed on either side).
The same run measures this CPU's peak (benchmarks/bench_peak: f32 FMA and bf16 dot products on
the same threads, before and after the pairs) and prints each engine's share of it, in model
FLOPs: the Linears and causal attention of every layer of these sequences, unpadded, what the
peer's one-by-one form computes. capheads skips the last layer's o_proj and MLP (nothing after
the last attention is captured); its ceiling - the most it could be above a peer on this CPU -
counts the FLOPs it does run. On a CPU with AMX the bf16 figure is not a ceiling.
"""
import argparse, os, statistics, struct, subprocess, time

import numpy as np
import torch
from transformers import AutoModel, Qwen2Config, Qwen2ForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--pairs", type=int, default=5)
ap.add_argument("--build", default="build")
ap.add_argument("--threads", type=int, default=os.cpu_count())
args = ap.parse_args()
cache = os.environ.get("CAPHEADS_BENCH_CACHE", "/tmp/capheads-bench")
mdir = os.path.join(cache, "qwen25_05b_random")
if not os.path.exists(os.path.join(mdir, "model.safetensors")):
    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
                      rms_norm_eps=1e-6, max_position_embeddings=32768)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(mdir)
rng = np.random.default_rng(1)
lens = rng.integers(64, 257, size=16).tolist()
seqs = [rng.integers(0, 151936, size=n).tolist() for n in lens]
ntok = sum(lens)
tokfile = os.path.join(cache, "prefill_tokens.bin")
with open(tokfile, "wb") as f:
    f.write(struct.pack("<i", len(seqs)) + struct.pack("<%di" % len(lens), *lens))
    for s in seqs:
        f.write(struct.pack("<%di" % len(s), *s))

torch.set_num_threads(args.threads)
BATCH_TOKENS = 1024


def batches():
    out, cur, tok = [], [], 0
    for s in seqs:
        if cur and tok + len(s) > BATCH_TOKENS:
            out.append(cur)
            cur, tok = [], 0
        cur.append(s)
        tok += len(s)
    return out + [cur]


def peer(model, padded=True):
    caps = []
    hooks = [l.self_attn.o_proj.register_forward_pre_hook(lambda m, a: caps.append(a[0])) for l in model.layers]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches() if padded else [[s] for s in seqs]:
            T = max(len(s) for s in b)
            ids = torch.zeros((len(b), T), dtype=torch.long)
            mask = torch.zeros((len(b), T), dtype=torch.long)
            for i, s in enumerate(b):
                ids[i, :len(s)] = torch.tensor(s)
                mask[i, :len(s)] = 1
            caps.clear()
            model(input_ids=ids, attention_mask=mask)
            last = torch.tensor([len(s) - 1 for s in b])
            _ = [c[torch.arange(len(b)), last].float() for c in caps]
    dt = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    return ntok / dt


backend = {}


def ours(precision):
    """tokens/s of the second of two runs in one process (the first is the warm-up)"""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    r = subprocess.run([os.path.join(args.build, "benchmarks", "bench_prefill"), mdir, tokfile, "2",
                        str(BATCH_TOKENS), precision], capture_output=True, text=True, env=env, check=True)
    backend[precision] = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "?"
    return float(r.stdout.split()[-1])


def cpu_line():
    """the CPU by family, model and the flags the kernels are chosen by (never the model)"""
    info = {}
    for line in open("/proc/cpuinfo"):
        if ":" in line:
            k, v = (x.strip() for x in line.split(":", 1))
            info.setdefault(k, v)
        if not line.strip() and info:
            break
    flags = [f for f in info.get("flags", "").split() if f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16",
                                                              "amx_bf16", "amx_tile")]
    return "%s, family %s model %s, %d logical CPUs, flags: %s" % (info.get("model name", "?"), info.get("cpu family", "?"),
                                                                   info.get("model", "?"), os.cpu_count(), " ".join(flags))


def model_flops():
    """(model FLOPs of the whole batch set, capheads' FLOPs): Linears 2 x weights a token, causal
    attention 2 x 2 x heads x head_dim a (query, key) pair, for every layer; capheads leaves out
    the last layer's o_proj and MLP"""
    import json
    c = json.load(open(os.path.join(mdir, "config.json")))
    h, nh, kv, inter, L = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // nh
    q, kvw, o, mlp = h * nh * hd, 2 * h * kv * hd, nh * hd * h, 3 * h * inter
    lin = 2 * (q + kvw + o + mlp) * ntok * L
    att = sum(4 * nh * hd * n * (n + 1) // 2 for n in lens) * L
    return lin + att, lin + att - 2 * (o + mlp) * ntok


def peak():
    """this CPU's f32 and bf16 GFLOP/s on the benchmark's threads (bench_peak)"""
    r = subprocess.run([os.path.join(args.build, "benchmarks", "bench_peak"), str(args.threads)], capture_output=True,
                       text=True, check=True)
    kv = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    return float(kv["f32_gflops"]), float(kv["bf16_gflops"]), kv["bf16_insn"]


def load():
    return open("/proc/loadavg").read().split()[0]


models = {"fp32": AutoModel.from_pretrained(mdir, dtype=torch.float32, attn_implementation="sdpa").eval(),
          "bf16": AutoModel.from_pretrained(mdir, dtype=torch.bfloat16, attn_implementation="sdpa").eval()}
for m in models.values():  # warm-up
    peer(m), peer(m, padded=False)
rows = {k: [] for k in ("ours_bf16", "bf16", "bf16_1", "ours_f32", "fp32", "fp32_1")}
print("CPU:", cpu_line(), flush=True)
peaks = [peak()]
print("peak before the pairs: f32 %.0f GFLOP/s, bf16 %.0f GFLOP/s (%s)" % peaks[0], flush=True)
for p in range(args.pairs):  # A B C A B C: each of ours right before its peers
    load0 = load()
    rows["ours_bf16"].append(ours("auto"))
    rows["bf16"].append(peer(models["bf16"]))
    rows["bf16_1"].append(peer(models["bf16"], padded=False))
    rows["ours_f32"].append(ours("f32"))
    rows["fp32"].append(peer(models["fp32"]))
    rows["fp32_1"].append(peer(models["fp32"], padded=False))
    print("pair %d: ours bf16 %.0f tok/s, transformers bf16 %.0f (one by one %.0f); ours f32 %.0f, transformers "
          "fp32 %.0f (one by one %.0f); load %s -> %s" % (p + 1, rows["ours_bf16"][-1], rows["bf16"][-1], rows["bf16_1"][-1],
                                           rows["ours_f32"][-1], rows["fp32"][-1], rows["fp32_1"][-1], load0, load()),
          flush=True)
peaks.append(peak())
print("peak after the pairs: f32 %.0f GFLOP/s, bf16 %.0f GFLOP/s (%s)" % peaks[1], flush=True)
ratio = lambda ours, peer: statistics.median(a / b for a, b in zip(rows[ours], rows[peer]))
print()
print("Prefill, Qwen2.5-0.5B shape (random bf16 weights), %d sequences / %d tokens, %d threads, %d pairs" % (
    len(seqs), ntok, args.threads, args.pairs))
print("CPU: %s" % cpu_line())
print("capheads --precision auto: %s" % backend.get("auto", "?"))
print("capheads --precision f32: %s" % backend.get("f32", "?"))
print("| engine | median tokens/s | capheads / this (median of pairs) |")
print("| --- | --- | --- |")
med = lambda k: statistics.median(rows[k])
print("| capheads CPU, --precision auto (bf16 Linear inputs, packed) | %.0f | |" % med("ours_bf16"))
print("| transformers bf16, padded batches (sdpa) | %.0f | %.2f |" % (med("bf16"), ratio("ours_bf16", "bf16")))
print("| transformers bf16, one sequence per call | %.0f | %.2f |" % (med("bf16_1"), ratio("ours_bf16", "bf16_1")))
print("| capheads CPU, --precision f32 (packed) | %.0f | |" % med("ours_f32"))
print("| transformers fp32, padded batches (sdpa) | %.0f | %.2f |" % (med("fp32"), ratio("ours_f32", "fp32")))
print("| transformers fp32, one sequence per call | %.0f | %.2f |" % (med("fp32_1"), ratio("ours_f32", "fp32_1")))

# Shares of this CPU's peak, and the ceiling each ratio has here.
full, own = model_flops()
pk = {"f32": max(p[0] for p in peaks), "bf16": max(p[1] for p in peaks)}
print()
print("This CPU's peak on %d threads (bench_peak, best of before/after the pairs): f32 %.0f GFLOP/s (FMA), bf16 %.0f "
      "GFLOP/s (%s)%s" % (args.threads, pk["f32"], pk["bf16"], peaks[0][2],
                          "; AMX not measured: not a ceiling on this CPU" if "amx_bf16" in cpu_line() else ""))
print("Work: %.0f model MFLOP a token (Linears and causal attention of every layer, unpadded); capheads runs %.0f"
      % (full / ntok / 1e6, own / ntok / 1e6))
print("| engine | median tokens/s | GFLOP/s (of the work it must do) | share of peak | most capheads can be above it here |")
print("| --- | --- | --- | --- | --- |")
for key, name, kind in (("ours_bf16", "capheads --precision auto", "bf16"), ("bf16", "transformers bf16, padded", "bf16"),
                        ("bf16_1", "transformers bf16, one by one", "bf16"), ("ours_f32", "capheads --precision f32", "f32"),
                        ("fp32", "transformers fp32, padded", "f32"), ("fp32_1", "transformers fp32, one by one", "f32")):
    g = med(key) * (own if key.startswith("ours") else full) / ntok / 1e9
    ceil = "" if key.startswith("ours") else "%.2fx" % (pk[kind] * 1e9 / (own / ntok) / med(key))
    print("| %s | %.0f | %.0f | %.0f%% of %s | %s |" % (name, med(key), g, 100 * g / pk[kind], kind, ceil))
