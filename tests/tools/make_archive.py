#!/usr/bin/env python3
"""Write a synthetic capheads activation archive (format "capheads-activations" v1, see io/archive.h).

Runs with Debian's python3 + python3-h5py + python3-numpy (what CI has). Rows get a label in 0..4
(balanced, shuffled by the seed); every head's activation is Gaussian noise, and a "signal head"
l:h:s additionally adds s * mu[l,h,label] where mu is a fixed random unit-variance vector per class,
so a linear probe can find exactly those heads. Options that break the archive on purpose feed the
bad-input tests.

--corpus FILE also writes the JSONL the archive stands for (one {"id", "text", "label"} record per
row) and records its path and sha256 as input_path / input_sha256; with --format-signal the texts of
class c differ from the others' by format only (c + 2 option lines "A. ...", a class-specific word
count), otherwise every text has the same shape whatever its class (random words, 4 option lines).

usage: make_archive.py OUT.h5 [--n N --layers L --heads H --dim D --signal l:h:s,... --seed S
        --rows-per-chunk R --unlabeled K --incomplete K --bad-label ROW --nan ROW:l:h --classes C
        --corpus FILE [--format-signal]]
"""
import hashlib
import argparse
import json

import h5py
import numpy as np

CAPS = ["math", "reading", "commonsense", "science", "professional"]


WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "number", "market", "theory"]


def write_corpus(path, ids, labels, format_signal, rng):
    """One text record per row. With format_signal the class shows in the format (option lines,
    length); without it the format is the same for every class."""
    with open(path, "w") as f:
        for rid, lab in zip(ids, labels):
            c = int(lab) if 0 <= lab < 5 else 0
            n_opt = c + 2 if format_signal else 4
            n_words = 6 + 5 * c if format_signal else int(rng.integers(6, 27))
            q = " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), n_words))
            opts = "\n".join(f"{'ABCDEFGHIJ'[k]}. {WORDS[int(rng.integers(0, len(WORDS)))]}" for k in range(n_opt))
            rec = {"id": rid, "text": f"{q}?\n{opts}\nAnswer:"}
            if 0 <= lab < 5:
                rec["label"] = CAPS[lab]
            f.write(json.dumps(rec) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--signal", default="", help="comma list of layer:head:strength")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows-per-chunk", type=int, default=64)
    ap.add_argument("--unlabeled", type=int, default=0, help="last K rows get label -1")
    ap.add_argument("--incomplete", type=int, default=0, help="last K rows are not done")
    ap.add_argument("--bad-label", type=int, default=-1, help="row that gets label 7")
    ap.add_argument("--nan", default="", help="row:layer:head that gets a NaN")
    ap.add_argument("--classes", type=int, default=5, help="use only the first C classes")
    ap.add_argument("--block", type=int, default=4096, help="rows generated at a time")
    ap.add_argument("--corpus", default="", help="also write the records' JSONL here")
    ap.add_argument("--format-signal", action="store_true", help="class-dependent text format")
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    N, L, H, D = a.n, a.layers, a.heads, a.dim
    labels = (np.arange(N) % a.classes).astype(np.int32)
    rng.shuffle(labels)
    if a.unlabeled:
        labels[N - a.unlabeled:] = -1
    if a.bad_label >= 0:
        labels[a.bad_label] = 7
    signal = []
    for item in filter(None, a.signal.split(",")):
        l, h, s = item.split(":")
        signal.append((int(l), int(h), float(s)))
    mu = {(l, h): rng.standard_normal((5, D)) for l, h, _ in signal}
    ids = [f"rec-{i:06d}" for i in range(N)]
    tasks = [CAPS[x] if x in range(5) else "" for x in labels]

    input_path, input_sha = "synthetic.jsonl", "%064x" % a.seed
    if a.corpus:
        write_corpus(a.corpus, ids, labels, a.format_signal, np.random.default_rng(a.seed + 1))
        input_path, input_sha = a.corpus, hashlib.sha256(open(a.corpus, "rb").read()).hexdigest()

    f16le = h5py.h5t.IEEE_F16LE if hasattr(h5py.h5t, "IEEE_F16LE") else np.dtype("<f2")
    with h5py.File(a.out, "w") as f:
        R = max(1, min(a.rows_per_chunk, N))
        acts = f.create_dataset("activations", (N, L, H, D), dtype="<f2", chunks=(R, 1, H, D))
        for r0 in range(0, N, a.block):
            r1 = min(N, r0 + a.block)
            x = rng.standard_normal((r1 - r0, L, H, D), dtype=np.float32)
            lab = labels[r0:r1]
            ok = (lab >= 0) & (lab < 5)
            for l, h, s in signal:
                x[ok, l, h, :] += s * mu[(l, h)][lab[ok]]
            if a.nan:
                row, l, h = map(int, a.nan.split(":"))
                if r0 <= row < r1:
                    x[row - r0, l, h, 0] = np.nan
            acts[r0:r1] = x.astype("<f2")
        idlen = max(len(s) for s in ids)
        tasklen = max(1, max(len(s) for s in tasks))
        f.create_dataset("ids", data=np.array([s.encode() for s in ids], dtype=f"S{idlen}"))
        f.create_dataset("labels", data=labels)
        f.create_dataset("tasks", data=np.array([s.encode() for s in tasks], dtype=f"S{tasklen}"))
        f.create_dataset("n_tokens", data=np.full(N, 12, dtype=np.int32))
        done = np.ones(N, dtype=np.uint8)
        if a.incomplete:
            done[N - a.incomplete:] = 0
        f.create_dataset("done", data=done)
        for name, n in (("row", N), ("layer", L), ("head", H), ("dim", D)):
            f.create_dataset(name, data=np.arange(n, dtype=np.int32))
            f[name].make_scale(name)
        for i, name in enumerate(("row", "layer", "head", "dim")):
            acts.dims[i].attach_scale(f[name])
        cfg = {"architectures": ["SyntheticForTest"], "num_hidden_layers": L,
               "num_attention_heads": H, "head_dim": D}
        attrs = {
            "format": "capheads-activations", "format_version": np.int32(1),
            "model_config": json.dumps(cfg), "model_dir": "synthetic",
            "tokenizer_sha256": "0" * 64, "pool": "last", "input_path": input_path,
            "input_sha256": input_sha, "n_records": np.int64(N),
            "capability_names": json.dumps(CAPS),
            "command_line": "tests/tools/make_archive.py " + a.out,
            "created": "2026-01-01T00:00:00Z", "complete": np.uint8(0 if a.incomplete else 1),
        }
        for k, v in attrs.items():
            if isinstance(v, str):  # fixed-length ASCII strings, like the C writer
                f.attrs.create(k, np.bytes_(v.encode()))
            else:
                f.attrs[k] = v


if __name__ == "__main__":
    main()
