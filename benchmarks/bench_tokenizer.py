#!/usr/bin/env python3
"""Single-thread encode throughput: capheads' ch_tok_encode vs Hugging Face `tokenizers`.

    RAYON_NUM_THREADS=1 /opt/oracle/bin/python benchmarks/bench_tokenizer.py \
        --bin build/benchmarks/bench_tokenizer [--data /work/shared/data] [--pairs 5] [--mb 2] \
        [--families llama3_1,qwen3,stories260k,stories260k_legacy]

A family is DATA/tokenizers/<family>/tokenizer.json, or else the committed
tests/data/tokenizers/<family>/tokenizer.json.gz (the SentencePiece ones: stories260k is
transformers' LlamaTokenizer conversion, Metaspace + byte_fallback; stories260k_legacy the
Llama-2 layout, Prepend + Replace normalizers and no pre-tokenizer, so a whole record is one word).

Same records for both (GSM8K questions+answers, then MMLU test questions, up to --mb MB), one
encode per record without special tokens. HF runs Tokenizer.encode_batch in-process with one
thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false); ours runs as a subprocess that times
its own loop (file load excluded on both sides). Runs are interleaved A B A B, >= 5 pairs; the
table shows each pair and the median ratio. The total id count of both is compared as a check.
"""
import argparse
import csv
import glob
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402  (after the thread settings)


def corpus(data, limit):
    recs, size = [], 0
    with open(os.path.join(data, "gsm8k/train.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            recs += [r["question"], r["answer"]]
            size += len(r["question"].encode()) + len(r["answer"].encode())
            if size >= limit * 0.6:
                break
    for path in sorted(glob.glob(os.path.join(data, "mmlu/data/test/*.csv"))):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                s = " ".join(row[:5])
                recs.append(s)
                size += len(s.encode())
        if size >= limit:
            break
    return recs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--families", default="llama3_1,qwen3,stories260k,stories260k_legacy")
    a = ap.parse_args()
    recs = corpus(a.data, a.mb * 1e6)
    raw = "\0".join(recs).encode()
    nbytes = len(raw) - (len(recs) - 1)
    with tempfile.NamedTemporaryFile(delete=False, suffix=".txt") as f:
        f.write(raw)
        cpath = f.name
    print(f"corpus: {len(recs)} records, {nbytes / 1e6:.2f} MB; single thread; interleaved pairs\n")
    print(f"| family | pair | capheads MB/s | HF tokenizers MB/s | ratio |")
    print(f"| --- | --- | --- | --- | --- |")
    summary = []
    for fam in a.families.split(","):
        tj = os.path.join(a.data, "tokenizers", fam, "tokenizer.json")
        if not os.path.exists(tj):
            repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            with gzip.open(os.path.join(repo, "tests/data/tokenizers", fam, "tokenizer.json.gz")) as g, \
                    tempfile.NamedTemporaryFile(delete=False, suffix=".json") as f:
                f.write(g.read())
                tj = f.name
        hf = Tokenizer.from_file(tj)
        ratios = []
        for p in range(a.pairs):
            out = subprocess.run([a.bin, tj, cpath], check=True, capture_output=True, text=True).stdout
            kv = dict(x.split("=") for x in out.split())
            ours = nbytes / float(kv["seconds"]) / 1e6
            t0 = time.perf_counter()
            enc = hf.encode_batch(recs, add_special_tokens=False)
            dt = time.perf_counter() - t0
            theirs = nbytes / dt / 1e6
            hf_ids = sum(len(e.ids) for e in enc)
            if hf_ids != int(kv["ids"]):
                sys.exit(f"{fam}: id count differs: capheads {kv['ids']} vs HF {hf_ids}")
            ratios.append(ours / theirs)
            print(f"| {fam} | {p + 1} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |")
        summary.append((fam, statistics.median(ratios)))
    print()
    for fam, r in summary:
        print(f"{fam}: median speed ratio capheads / HF tokenizers = {r:.2f}")
    os.unlink(cpath)


if __name__ == "__main__":
    main()
