#!/opt/oracle/bin/python
"""bench_probe: `capheads probe` (all heads, lockstep L-BFGS, MPI) vs scikit-learn looping over heads.

Peer: scikit-learn LogisticRegression(lbfgs, multinomial), same standardization, same split and the
same objective (C = 1/(lambda*n_train)), default tol 1e-4, timed on a SUBSET of heads and
extrapolated linearly to all heads (per-head problems are independent and equal-sized); its data is
pre-loaded into memory (not timed), while capheads' time includes reading the archive. Runs are
interleaved A B A B (A = capheads 1 rank, A2 = capheads 2 ranks, B = sklearn subset). Accuracy:
mean |difference| of per-head validation accuracy on the subset heads.

usage: /opt/oracle/bin/python benchmarks/bench_probe.py --capheads build/capheads
         [--rows 20000 --layers 32 --heads 32 --dim 128 --sk-heads 16 --pairs 5 --archive PATH]
"""
import os

# One BLAS/OpenMP thread for the peer too: the table compares one core with one core (capheads 1
# rank runs with OMP_NUM_THREADS=1), and 2 ranks with 2 cores.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
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
    # sklearn's subset: heads spread over the grid (including the signal heads)
    nheads = L * H
    subset = sorted(set(np.linspace(0, nheads - 1, a.sk_heads).astype(int).tolist()) | {3})
    with h5py.File(a.archive, "r") as f:
        y = f["labels"][()]
        ids = [s.rstrip(b"\0") for s in f["ids"][()]]
        val = np.array([fnv1a64(i) % 5 == 0 for i in ids])
        tr = ~val
        data = {k: f["activations"][:, k // H, k % H, :].astype(np.float32) for k in subset}
    n_train = int(tr.sum())

    def sk_run():
        accs = {}
        t0 = time.perf_counter()
        for k, x in data.items():
            xt, xv = x[tr].astype(np.float64), x[val].astype(np.float64)
            mu, sd = xt.mean(0), xt.std(0)
            sd[sd <= 1e-12] = 1
            clf = LogisticRegression(C=1.0 / (a.lam * n_train), max_iter=1000)
            clf.fit((xt - mu) / sd, y[tr])
            accs[k] = float((clf.predict((xv - mu) / sd) == y[val]).mean())
        return (time.perf_counter() - t0) * nheads / len(data), accs

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def ch_run(ranks):
        out = f"/tmp/bench_probe_out_{ranks}.h5"
        t0 = time.perf_counter()
        subprocess.check_call(["mpirun", "-n", str(ranks), "--oversubscribe", a.capheads, "probe",
                               "--input", a.archive, "--output", out, "--lambda", str(a.lam),
                               "--tol", a.tol], env=env, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        with h5py.File(out, "r") as f:
            acc = f["val_accuracy"][()].reshape(-1)
        return dt, acc

    print(f"# archive {a.archive}: N={N} L={L} H={H} D={D} ({size_gb:.2f} GB f16), "
          f"n_train={n_train}, n_val={int(val.sum())}, lambda={a.lam}, capheads --tol {a.tol}, "
          f"sklearn tol 1e-4 (default)")
    print(f"# sklearn {len(data)} of {nheads} heads timed, extrapolated x{nheads / len(data):.1f}; "
          f"capheads fits all {nheads} heads incl. archive I/O")
    print("| pair | capheads 1 rank (s) | capheads 2 ranks (s) | sklearn est. (s) | speedup 1r | speedup 2r | 1r/2r |")
    print("|---|---|---|---|---|---|---|")
    r1, r2, rs, sp1, sp2 = [], [], [], [], []
    for p in range(a.pairs):
        t1, acc1 = ch_run(1)
        ts, sacc = sk_run()
        t2, acc2 = ch_run(2)
        r1.append(t1), r2.append(t2), rs.append(ts)
        sp1.append(ts / t1), sp2.append(ts / t2)
        print(f"| {p + 1} | {t1:.2f} | {t2:.2f} | {ts:.1f} | {ts / t1:.1f}x | {ts / t2:.1f}x | {t1 / t2:.2f} |")
        sys.stdout.flush()
    diffs = [abs(acc1[k] - sacc[k]) * 100 for k in sacc]
    print(f"| median | {statistics.median(r1):.2f} | {statistics.median(r2):.2f} | {statistics.median(rs):.1f} | "
          f"{statistics.median(sp1):.1f}x | {statistics.median(sp2):.1f}x | "
          f"{statistics.median([x / y for x, y in zip(r1, r2)]):.2f} |")
    print(f"# accuracy on the {len(sacc)} subset heads: mean |capheads - sklearn| = {np.mean(diffs):.3f} points, "
          f"max {np.max(diffs):.3f}; 1 vs 2 ranks max |diff| {np.max(np.abs(acc1 - acc2)):.2e}")


if __name__ == "__main__":
    main()
