#!/usr/bin/env python3
"""compare_archives.py - the archive checks of run_gpu_tests.sh, each printing its figures and
adding them to a JSON file (so one GPU run brings back every number, not only pass/fail).

  compare_archives.py backends CPU.h5 DEV.h5 PREC --json F --key K
      the demo extraction on two backends: ids, token counts, labels and done mask identical,
      `precision` attribute bf16 (PREC auto, the demo model is bf16) or f32 on both, relative L2
      per (row, layer) below 5e-2 (auto) or 1e-3 (f32)
  compare_archives.py same A.h5 B.h5 --json F --key K
      two runs that must agree exactly: every dataset equal bit for bit (and the attributes, but
      command_line and created), both complete
  compare_archives.py partial A.h5 --json F --key K
      a killed run's archive: incomplete, some but not all rows done, every row marked done holds
      finite data and a token count (no row claimed that the kill lost)
"""
import json
import os
import sys

import h5py
import numpy as np


def attr(f, name):
    v = f.attrs.get(name)
    return v.decode() if isinstance(v, bytes) else v


def record(path, key, figs):
    if not path:
        return
    d = {}
    if os.path.exists(path):
        with open(path) as f:
            d = json.load(f)
    d[key] = figs
    with open(path, "w") as f:
        json.dump(d, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def backends(a_path, b_path, prec):
    a, b = h5py.File(a_path, "r"), h5py.File(b_path, "r")
    want = "bf16" if prec == "auto" else "f32"
    figs = {"precision_option": prec, "backend_a": attr(a, "backend"), "backend_b": attr(b, "backend")}
    for f in (a, b):
        assert attr(f, "precision") == want, (prec, attr(f, "precision"))
    for name in ("ids", "n_tokens", "done", "labels"):
        assert np.array_equal(a[name][()], b[name][()]), f"/{name} differs between the backends"
    x = a["activations"][()].astype(np.float32)
    y = b["activations"][()].astype(np.float32)
    assert x.shape == y.shape, f"shapes differ: {x.shape}, {y.shape}"
    assert np.isfinite(y).all(), "second archive holds non-finite values"
    # per (row, layer) over all heads: the bound; per head for information (a head with a tiny
    # norm inflates that one)
    n, L = x.shape[0], x.shape[1]
    rel = np.linalg.norm((x - y).reshape(n, L, -1), axis=2) / (np.linalg.norm(x.reshape(n, L, -1), axis=2) + 1e-6)
    hrel = np.linalg.norm(x - y, axis=3) / (np.linalg.norm(x, axis=3) + 1e-6)
    # auto: both round the Linear inputs to bf16, so they differ by the order of f32 sums and the
    # roundings it flips; f32: f32 throughout (no TF32). The bounds were set before any GPU ran
    # the f32 comparison (2026-12-03): loosen them only with the printed figures in hand.
    lim = 5e-2 if prec == "auto" else 1e-3
    figs.update(shape=list(x.shape), rel_l2_row_layer_median=float(np.median(rel)),
                rel_l2_row_layer_max=float(rel.max()), rel_l2_head_median=float(np.median(hrel)),
                rel_l2_head_max=float(hrel.max()), limit=lim, bitwise_equal=bool(np.array_equal(x, y)))
    print(f"{figs['backend_a']} vs {figs['backend_b']}, --precision {prec}: {x.shape}; relative L2 per "
          f"(row, layer) median {np.median(rel):.2e} max {rel.max():.2e}; per head median "
          f"{np.median(hrel):.2e} max {hrel.max():.2e} (limit {lim:.0e})")
    figs["status"] = "pass" if rel.max() < lim else "fail"
    return figs, rel.max() < lim


def same(a_path, b_path):
    a, b = h5py.File(a_path, "r"), h5py.File(b_path, "r")
    figs = {"files_byte_identical": open(a_path, "rb").read() == open(b_path, "rb").read()}
    bad = []
    names = sorted(set(a.keys()) | set(b.keys()))
    for name in names:
        if name not in a or name not in b:
            bad.append(f"/{name} only in one")
        elif not np.array_equal(a[name][()], b[name][()]):
            bad.append(f"/{name} differs")
    for k in sorted(set(a.attrs) | set(b.attrs)):
        if k in ("command_line", "created"):
            continue
        va, vb = a.attrs.get(k), b.attrs.get(k)
        if not np.array_equal(np.asarray(va), np.asarray(vb)):
            bad.append(f"attribute {k}: {va!r} vs {vb!r}")
    for f, p in ((a, a_path), (b, b_path)):
        if int(attr(f, "complete")) != 1:
            bad.append(f"{p} not complete")
    figs.update(rows=int(a["activations"].shape[0]), datasets=names, differences=bad,
                status="fail" if bad else "pass")
    print(f"{a_path} vs {b_path}: {len(names)} datasets, {'equal' if not bad else 'DIFFER: ' + '; '.join(bad)}"
          f"; files byte-identical: {figs['files_byte_identical']}")
    return figs, not bad


def partial(path):
    f = h5py.File(path, "r")
    done = f["done"][()]
    figs = {"rows": int(len(done)), "rows_done": int(done.sum()), "complete": int(attr(f, "complete"))}
    ok = 0 < done.sum() < len(done) and figs["complete"] == 0
    acts = f["activations"][()][done == 1]
    ok = ok and bool(np.isfinite(acts).all()) and bool((f["n_tokens"][()][done == 1] > 0).all())
    figs["status"] = "pass" if ok else "fail"
    print(f"killed archive {path}: {figs['rows_done']} of {figs['rows']} rows done, complete={figs['complete']}"
          f" -> {'as expected' if ok else 'NOT a clean partial archive'}")
    return figs, ok


def main():
    av = sys.argv[1:]
    js = key = None
    if "--json" in av:
        i = av.index("--json"); js = av[i + 1]; del av[i:i + 2]
    if "--key" in av:
        i = av.index("--key"); key = av[i + 1]; del av[i:i + 2]
    mode, args = av[0], av[1:]
    try:
        figs, ok = {"backends": backends, "same": same, "partial": partial}[mode](*args)
    except AssertionError as e:
        figs, ok = {"status": "fail", "error": str(e)}, False
        print(f"compare_archives {mode}: FAIL: {e}")
    record(js, key or mode, figs)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
