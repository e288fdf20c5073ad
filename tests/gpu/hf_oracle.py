#!/usr/bin/env python3
"""hf_oracle.py - HF transformers as a second oracle for `capheads extract` (tests/gpu/README.md).

The golden files of tests/golden/models check the forward pass on token ids; this checks the
whole extract path (tokenizer from a model directory, packing into --batch-tokens batches, the
archive) against transformers run here, on checkpoints made here with torch - so nothing but this
script and the committed tokenizers has to travel to the GPU machine.

Four tiny random checkpoints with the real tokenizers (tests/data/tokenizers, full vocabularies):
  llama_f32   LlamaForCausalLM, GQA 4q/2kv, head_dim 64, llama3 rope scaling, untied, float32
  llama_bf16  the same weights in bfloat16
  qwen2_f32   Qwen2ForCausalLM: q/k/v biases, rope theta 1e6, tied, float32 (Qwen3 tokenizer)
  qwen2_bf16  the same in bfloat16
capheads extracts a corpus of varied-length texts (packed, several batches) with --device DEV;
transformers runs each text alone (eager attention, no padding, TF32 off) with a forward pre-hook
on every o_proj, and takes the last token: the same per-head outputs as the archive's
/activations [N, L, H, D] (float16) with the default --pool last.

Metric: relative L2 per (record, layer, head) = |capheads - HF| / |HF| over head_dim.
  f32 checkpoints, and bf16 checkpoints at --precision f32 (vs HF in float32 on the upcast
  weights): every head <= 2e-3 (the float16 archive alone costs up to ~5e-4).
  bf16 checkpoints at --precision auto (bf16 Linear inputs, as HF in bf16 rounds them): vs HF in
  float32 on the same weights, worst head <= 1.5x the worst head of HF's own bf16-vs-f32 gap, and
  median head <= 1.5x HF's median gap (capheads rounds only the Linear inputs, HF bf16 rounds
  everything, so capheads should be nearer).
Token counts (/n_tokens) must equal AutoTokenizer's. Writes every figure to --json.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np

# quiet logs: the progress bars of every save/load would bury the figures
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F32_LIMIT = 2e-3
GAP_FACTOR = 1.5

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there one all we their been has when who will more no if "
         "out so said what up its about into than them can only other new some could time these two "
         "may then do first any my now such like our over man me even most made after also did many "
         "before must through back years where much your way well down should because each just those "
         "people how too little state good very make world still own see men work long get here between "
         "both life being under never day same another know while last might us great old year off come "
         "since against go came right used take three probability theorem mitochondria photosynthesis "
         "enzyme tariff liability jurisprudence 3.14159 1,234,567 2024 42 café naïve résumé Zürich "
         "東京 数学 Привет мир ¿qué? — … don't it's we'll").split()


def texts(seed, n):
    """n texts from 1 to ~350 tokens, in a shuffled order so each batch packs short and long."""
    rng = random.Random(seed)
    lens = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233] + [rng.randint(1, 300) for _ in range(n - 12)]
    rng.shuffle(lens)
    out = []
    for k in lens:
        words = [rng.choice(WORDS) for _ in range(k)]
        s = " ".join(words)
        if k > 6:
            s = s[0].upper() + s[1:] + rng.choice([".", "?", "!\n", ":\n\n", ""]) + \
                rng.choice(["", " Answer:", "\nAnswer:"])
        out.append(s)
    return out


def configs(vocab_llama, vocab_qwen):
    from transformers import LlamaConfig, Qwen2Config
    common = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, attn_implementation="eager")
    llama = LlamaConfig(vocab_size=vocab_llama, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
                        tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                        **common)
    qwen = Qwen2Config(vocab_size=vocab_qwen, rms_norm_eps=1e-6, rope_theta=1000000.0,
                       tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645, **common)
    return llama, qwen


def randomize(model, seed):
    """As tests/golden/make_model_golden.py, with the weight scale kept at its per-element size for
    the wider hidden state: attention neither uniform nor one-hot."""
    import torch
    g = torch.Generator().manual_seed(seed)
    scale = 0.15 * (64 / model.config.hidden_size) ** 0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))


def tokenizer_vocab(tokdir):
    with gzip.open(os.path.join(ROOT, "tests/data/tokenizers", tokdir, "tokenizer.json.gz"), "rt") as f:
        t = json.load(f)
    n = max(max(t["model"]["vocab"].values()), max(a["id"] for a in t["added_tokens"])) + 1
    return (n + 63) // 64 * 64


def make_checkpoints(work, log):
    import torch
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM
    llama_cfg, qwen_cfg = configs(tokenizer_vocab("llama3_1"), tokenizer_vocab("qwen3"))
    made = {}
    for fam, cls, cfg, tokdir, seed in (("llama", LlamaForCausalLM, llama_cfg, "llama3_1", 21),
                                         ("qwen2", Qwen2ForCausalLM, qwen_cfg, "qwen3", 22)):
        torch.manual_seed(seed)
        model = cls(cfg).eval()
        randomize(model, seed)
        for dt, tdt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            d = os.path.join(work, f"{fam}_{dt}")
            shutil.rmtree(d, ignore_errors=True)
            model.to(tdt).save_pretrained(d, safe_serialization=True)
            gc = os.path.join(d, "generation_config.json")
            if os.path.exists(gc):
                os.remove(gc)
            for fn in ("tokenizer.json", "tokenizer_config.json"):
                with gzip.open(os.path.join(ROOT, "tests/data/tokenizers", tokdir, fn + ".gz"), "rb") as src, \
                        open(os.path.join(d, fn), "wb") as dst:
                    shutil.copyfileobj(src, dst)
            made[f"{fam}_{dt}"] = (cls, d)
        del model
    log(f"checkpoints made in {work}")
    return made


def hf_capture(cls, d, dtype, ids_list, device):
    """Per record: [L, H, D] float32 at the last token, HF running the record alone."""
    import torch
    model = cls.from_pretrained(d, dtype=dtype, attn_implementation="eager").to(device).eval()
    cfg = model.config
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    layers = model.model.layers
    caught = [None] * len(layers)
    hooks = [layer.self_attn.o_proj.register_forward_pre_hook(
        lambda m, a, l=l: caught.__setitem__(l, a[0][0, -1].float().cpu()))
        for l, layer in enumerate(layers)]
    out = []
    with torch.inference_mode():
        for ids in ids_list:
            model(torch.tensor([ids], device=device))
            out.append(torch.stack(caught).reshape(len(layers), cfg.num_attention_heads, hd).numpy())
    for h in hooks:
        h.remove()
    del model
    return np.stack(out)


def per_head(x, ref):
    return np.linalg.norm(x - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capheads", required=True, help="capheads executable (a wrapper that sources a bundle's env.sh is fine)")
    ap.add_argument("--device", default="cuda", help="capheads extract --device (cuda; cpu for the self-test)")
    ap.add_argument("--hf-device", default="auto", help="torch device for transformers (auto: cuda when available)")
    ap.add_argument("--work", required=True, help="scratch folder for checkpoints and archives")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--records", type=int, default=40)
    ap.add_argument("--batch-tokens", type=int, default=512)
    a = ap.parse_args()

    import torch
    import h5py
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 reference means f32, not TF32
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    hf_dev = a.hf_device
    if hf_dev == "auto":
        hf_dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    log = lambda s: print(f"hf_oracle [{time.time() - t0:6.1f}s] {s}", flush=True)
    os.makedirs(a.work, exist_ok=True)
    made = make_checkpoints(a.work, log)

    corpus = os.path.join(a.work, "corpus.jsonl")
    recs = texts(7, a.records)
    with open(corpus, "w") as f:
        for i, t in enumerate(recs):
            f.write(json.dumps({"id": f"r{i}", "text": t}, ensure_ascii=False) + "\n")

    res = {"capheads_device": a.device, "hf_device": hf_dev, "torch": torch.__version__,
           "transformers": __import__("transformers").__version__, "records": len(recs),
           "batch_tokens": a.batch_tokens, "f32_limit": F32_LIMIT, "gap_factor": GAP_FACTOR, "runs": []}
    if hf_dev == "cuda":
        res["hf_gpu"] = torch.cuda.get_device_name(0)
    ok = True
    for fam in ("llama", "qwen2"):
        # the same tokenizer files in both directories of a family; AutoTokenizer is the contract
        tok = AutoTokenizer.from_pretrained(made[f"{fam}_f32"][1])
        ids_list = [tok.encode(t) for t in recs]
        lens = [len(i) for i in ids_list]
        cls = made[f"{fam}_f32"][0]
        ref32 = {dt: hf_capture(cls, made[f"{fam}_{dt}"][1], torch.float32, ids_list, hf_dev)
                 for dt in ("f32", "bf16")}
        hf_bf16 = hf_capture(cls, made[f"{fam}_bf16"][1], torch.bfloat16, ids_list, hf_dev)
        gap = per_head(hf_bf16, ref32["bf16"])
        log(f"{fam}: {len(recs)} records, {sum(lens)} tokens (longest {max(lens)}); HF bf16 vs HF f32 "
            f"per head: median {np.median(gap):.2e} max {gap.max():.2e}")
        for dt, prec in (("f32", "auto"), ("bf16", "auto"), ("bf16", "f32")):
            name = f"{fam}_{dt}"
            d = made[name][1]
            out = os.path.join(a.work, f"{name}_{prec}.h5")
            cmd = [a.capheads, "extract", "--model", d, "--input", corpus, "--output", out,
                   "--device", a.device, "--batch-tokens", str(a.batch_tokens), "--precision", prec]
            ts = time.time()
            r = subprocess.run(cmd, capture_output=True, text=True)
            secs = time.time() - ts
            run = {"checkpoint": name, "precision_option": prec, "extract_seconds": round(secs, 2)}
            if r.returncode:
                log(f"FAIL {name} --precision {prec}: capheads exit {r.returncode}\n{r.stderr[-3000:]}")
                run.update(status="fail", error=f"capheads exit {r.returncode}: {r.stderr[-500:]}")
                res["runs"].append(run)
                ok = False
                continue
            with h5py.File(out, "r") as f:
                x = f["activations"][()].astype(np.float32)
                nt = [int(v) for v in f["n_tokens"][()]]
                got_prec = f.attrs["precision"]
                got_prec = got_prec.decode() if isinstance(got_prec, bytes) else str(got_prec)
                backend = f.attrs["backend"]
                backend = backend.decode() if isinstance(backend, bytes) else str(backend)
            ref = ref32[dt]
            err = per_head(x, ref)
            worst = np.unravel_index(np.argmax(err), err.shape)
            run.update(archive_precision=got_prec, backend=backend, shape=list(x.shape),
                       tokens_match=nt == lens, rel_l2_head_median=float(np.median(err)),
                       rel_l2_head_max=float(err.max()),
                       worst_head={"record": int(worst[0]), "layer": int(worst[1]), "head": int(worst[2]),
                                   "tokens": lens[worst[0]]})
            fails = []
            if nt != lens:
                bad = [i for i in range(len(lens)) if nt[i] != lens[i]][:5]
                fails.append(f"n_tokens differ from AutoTokenizer's at records {bad}")
            if x.shape != ref.shape:
                fails.append(f"shape {x.shape}, HF {ref.shape}")
            if not np.isfinite(x).all():
                fails.append("non-finite values")
            if backend != a.device:
                fails.append(f"archive backend {backend}, asked for {a.device}")
            if dt == "f32" or prec == "f32":
                want_prec, lim_max, lim_med = "f32", F32_LIMIT, F32_LIMIT
                run["reference"] = "HF float32"
            else:
                want_prec = "bf16"
                lim_max, lim_med = GAP_FACTOR * float(gap.max()), GAP_FACTOR * float(np.median(gap))
                run.update(reference="HF float32 on the bf16 weights", hf_gap_head_median=float(np.median(gap)),
                           hf_gap_head_max=float(gap.max()))
            run.update(limit_max=lim_max, limit_median=lim_med)
            if got_prec != want_prec:
                fails.append(f"archive precision {got_prec}, expected {want_prec}")
            if not fails and err.max() > lim_max:
                fails.append(f"worst head {err.max():.3e} > {lim_max:.3e}")
            if not fails and np.median(err) > lim_med:
                fails.append(f"median head {np.median(err):.3e} > {lim_med:.3e}")
            run["status"] = "fail" if fails else "pass"
            if fails:
                run["error"] = "; ".join(fails)
                ok = False
            log(f"{'FAIL' if fails else 'ok  '} {name:<10} --precision {prec:<4} ({got_prec}, {backend}, "
                f"{secs:.1f}s): per head median {np.median(err):.2e} max {err.max():.2e} "
                f"(limits {lim_med:.2e} / {lim_max:.2e})" + (f": {'; '.join(fails)}" if fails else ""))
            res["runs"].append(run)
    res["status"] = "pass" if ok else "fail"
    res["seconds"] = round(time.time() - t0, 1)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    log("all comparisons passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
