#!/opt/oracle/bin/python
"""bench_probe: `capheads probe` (all heads, lockstep L-BFGS, MPI) vs scikit-learn looping over heads.

Peer: scikit-learn LogisticRegression(lbfgs, multinomial), same standardization, same split and the
same objective (C = 1/(lambda*n_train)), default tol 1e-4, timed on a SUBSET of heads and
extrapolated to all heads (per-head problems are independent and equal-sized), stratified: the
archive's signal heads (slower to fit) are all timed and counted once, the timed heads without
signal stand for the other heads (--signal-heads none for an archive with signal everywhere,
which is extrapolated uniformly); its data is
pre-loaded into memory (not timed), while capheads' time includes reading the archive. Runs are
interleaved A B A B (A = capheads 1 rank, A2 = capheads 2 ranks, B = sklearn subset). Accuracy:
mean |difference| of per-head validation accuracy on the subset heads. capheads runs with one fixed
--lambda here (no grid), so both sides fit each head once.

usage: /opt/oracle/bin/python benchmarks/bench_probe.py --capheads build/capheads
         [--rows 20000 --layers 32 --heads 32 --dim 128 --sk-heads 16 --pairs 5 --archive PATH]
"""
import os

# One BLAS/OpenMP thread for the peer too: the table compares one core with one core (capheads 1
# rank runs with OMP_NUM_THREADS=1), and 2 ranks with 2 cores.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))


def fnv1a64(s):
    h = 14695981039346656037
    for b in s:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capheads", required=True)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--sk-heads", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--archive", default="/tmp/bench_probe_archive.h5")
    ap.add_argument("--signal-heads", default="auto",
                    help="flat l*H+h indices of the archive's signal heads, comma-separated; 'auto' = "
                         "the three this script plants; 'none' = signal everywhere (uniform "
                         "extrapolation)")
    ap.add_argument("--tol", default="1e-4",
                    help="capheads --tol; 1e-4 is sklearn's default tol on the same criterion "
                         "(max |gradient| of the same averaged objective)")
    a = ap.parse_args()
    L, H, D, N = a.layers, a.heads, a.dim, a.rows
    if not os.path.exists(a.archive):
        sig = f"0:3:0.3,{L // 2}:{H // 3}:0.25,{L - 1}:{H - 1}:0.2"
        subprocess.check_call(["/usr/bin/python3", os.path.join(HERE, "..", "tests", "tools", "make_archive.py"),
                               a.archive, "--n", str(N), "--layers", str(L), "--heads", str(H), "--dim",
                               str(D), "--signal", sig, "--rows-per-chunk", "256"])
    size_gb = os.path.getsize(a.archive) / 1e9
    # sklearn's subset: every signal head plus heads spread over the grid
    nheads = L * H
    if a.signal_heads == "auto":
        signal = {3, (L // 2) * H + H // 3, (L - 1) * H + H - 1}
    elif a.signal_heads == "none":
        signal = set()
    else:
        signal = {int(v) for v in a.signal_heads.split(",")}
    spread = set(np.linspace(0, nheads - 1, a.sk_heads).astype(int).tolist()) - signal
    subset = sorted(spread | signal)
    with h5py.File(a.archive, "r") as f:
        y = f["labels"][()]
        ids = [s.rstrip(b"\0") for s in f["ids"][()]]
        bucket = np.array([fnv1a64(i) % 5 for i in ids])
        val, tr = bucket == 0, bucket >= 2  # capheads' split: 1 is the test split, not fitted on
        data = {k: f["activations"][:, k // H, k % H, :].astype(np.float32) for k in subset}
    n_train = int(tr.sum())

    def sk_run():
        accs, secs = {}, {}
        for k, x in data.items():
            t0 = time.perf_counter()
            xt, xv = x[tr].astype(np.float64), x[val].astype(np.float64)
            mu, sd = xt.mean(0), xt.std(0)
            sd[sd <= 1e-12] = 1
            clf = LogisticRegression(C=1.0 / (a.lam * n_train), max_iter=1000)
            clf.fit((xt - mu) / sd, y[tr])
            accs[k] = float((clf.predict((xv - mu) / sd) == y[val]).mean())
            secs[k] = time.perf_counter() - t0
        plain = [secs[k] for k in secs if k not in signal]
        est = sum(secs[k] for k in signal) + (nheads - len(signal)) * sum(plain) / len(plain)
        return est, accs

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def ch_run(ranks):
        out, tf = f"/tmp/bench_probe_out_{ranks}.h5", f"/tmp/bench_probe_timing_{ranks}.jsonl"
        if os.path.exists(tf):
            os.unlink(tf)
        t0 = time.perf_counter()
        subprocess.check_call(["mpirun", "-n", str(ranks), "--oversubscribe", a.capheads, "probe",
                               "--input", a.archive, "--output", out, "--lambda", str(a.lam),
                               "--tol", a.tol, "--timing", tf, "--force"], env=env, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        with open(tf) as f:
            stage = json.loads(f.readline())["seconds"]
        with h5py.File(out, "r") as f:
            acc = f["val_accuracy"][()].reshape(-1)
        return dt, stage, acc

    print(f"# archive {a.archive}: N={N} L={L} H={H} D={D} ({size_gb:.2f} GB f16), "
          f"n_train={n_train}, n_val={int(val.sum())}, lambda={a.lam}, capheads --tol {a.tol}, "
          f"sklearn tol 1e-4 (default)")
    print(f"# sklearn {len(data)} of {nheads} heads timed ({len(signal)} signal heads counted once, "
          f"{len(data) - len(signal)} others standing for {nheads - len(signal)}); "
          f"capheads fits all {nheads} heads incl. archive I/O and MPI start-up")
    print("# wall = mpirun start to exit (launch, MPI start-up, archive reads, fit, output); "
          "stage = the stage's own --timing seconds (no launcher)")
    print("| pair | 1 rank wall (s) | 1 rank stage (s) | 2 ranks wall (s) | 2 ranks stage (s) | sklearn est. (s) "
          "| speedup 1r wall | 1r stage | 2r wall | 2r stage | 1r/2r wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    sk_run()  # warm-up, untimed: scikit-learn's first fit pays one-off costs that the stratified
    # estimate would multiply by (heads / timed heads)
    cols = {k: [] for k in ("w1", "s1", "w2", "s2", "sk")}
    for p in range(a.pairs):
        w1, s1, acc1 = ch_run(1)
        ts, sacc = sk_run()
        w2, s2, acc2 = ch_run(2)
        for k, v in (("w1", w1), ("s1", s1), ("w2", w2), ("s2", s2), ("sk", ts)):
            cols[k].append(v)
        print(f"| {p + 1} | {w1:.2f} | {s1:.2f} | {w2:.2f} | {s2:.2f} | {ts:.1f} | {ts / w1:.1f}x | {ts / s1:.1f}x | "
              f"{ts / w2:.1f}x | {ts / s2:.1f}x | {w1 / w2:.2f} |")
        sys.stdout.flush()
    diffs = [abs(acc1[k] - sacc[k]) * 100 for k in sacc]
    med = {k: statistics.median(v) for k, v in cols.items()}
    ratio = lambda k: statistics.median([s / t for s, t in zip(cols["sk"], cols[k])])
    print(f"| median | {med['w1']:.2f} | {med['s1']:.2f} | {med['w2']:.2f} | {med['s2']:.2f} | {med['sk']:.1f} | "
          f"{ratio('w1'):.1f}x | {ratio('s1'):.1f}x | {ratio('w2'):.1f}x | {ratio('s2'):.1f}x | "
          f"{statistics.median([x / y for x, y in zip(cols['w1'], cols['w2'])]):.2f} |")
    print(f"# accuracy on the {len(sacc)} subset heads: mean |capheads - sklearn| = {np.mean(diffs):.3f} points, "
          f"max {np.max(diffs):.3f}; 1 vs 2 ranks max |diff| {np.max(np.abs(acc1 - acc2)):.2e}")


if __name__ == "__main__":
    main()
