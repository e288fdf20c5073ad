#!/opt/oracle/bin/python
"""Golden per-head held-out figures for the probe stage, from scikit-learn.

Makes (with tests/tools/make_archive.py, Debian python3) the committed archive probe_small.h5 if it
is missing, then fits, for every (layer, head), scikit-learn's LogisticRegression (lbfgs,
multinomial for 5 classes) with the same data choices as `capheads probe`:
  * rows: done and labelled (label != -1);
  * split: FNV-1a-64(id bytes) % 5 == 0 validation, == 1 test, otherwise train;
  * lambda: per head, each of the grid (default 1e-4,1e-3,1e-2,1e-1,1) fitted on the train rows,
    the one with the lowest validation cross-entropy kept (p floored at 1e-30; ties to the larger);
  * inputs: float16 widened to float32, standardized with the TRAIN rows' mean and population std
    (a zero std becomes 1), like StandardScaler;
  * objective: capheads minimizes (1/n) sum CE + lambda/2 ||W||^2; sklearn minimizes
    C * sum CE + 1/2 ||W||^2; the two agree with C = 1 / (lambda * n_train).
Writes probe_small_expected.csv: layer,head,lambda,val_accuracy,test_accuracy,train_accuracy.

usage: /tmp/venv/bin/python tests/golden/make_probe_golden.py [--lambda-grid 1e-4,1e-3,1e-2,1e-1,1]
"""
import argparse
import os
import subprocess

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHIVE = os.path.join(HERE, "probe_small.h5")
ARCHIVE_ARGS = ["--n", "1000", "--layers", "2", "--heads", "4", "--dim", "8", "--seed", "7",
                "--signal", "0:0:0.25,0:1:0.5,0:3:0.1,1:0:1.0,1:2:0.35,1:3:0.7"]


def fnv1a64(s: bytes) -> int:
    h = 14695981039346656037
    for b in s:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def fit(xt, yt, lam):
    clf = LogisticRegression(C=1.0 / (lam * len(yt)), tol=1e-10, max_iter=100000)
    return clf.fit(xt, yt)


def xent(clf, x, y):
    p = np.zeros((len(y), 5))
    p[:, clf.classes_] = clf.predict_proba(x)
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-30)).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lambda-grid", dest="grid", default="1e-4,1e-3,1e-2,1e-1,1")
    a = ap.parse_args()
    grid = sorted(float(v) for v in a.grid.split(","))
    if not os.path.exists(ARCHIVE):
        subprocess.check_call(["/usr/bin/python3", os.path.join(HERE, "..", "tools", "make_archive.py"),
                               ARCHIVE] + ARCHIVE_ARGS)
    with h5py.File(ARCHIVE, "r") as f:
        x = f["activations"][()].astype(np.float32)
        y = f["labels"][()]
        done = f["done"][()]
        ids = [s.rstrip(b"\0") for s in f["ids"][()]]
    keep = (done != 0) & (y >= 0)
    bucket = np.array([fnv1a64(i) % 5 for i in ids])
    val, test = (bucket == 0) & keep, (bucket == 1) & keep
    tr = (bucket >= 2) & keep
    rows = []
    L, H = x.shape[1], x.shape[2]
    for l in range(L):
        for h in range(H):
            xt = x[tr, l, h].astype(np.float64)
            mu = xt.mean(0)
            sd = xt.std(0)
            sd[sd <= 1e-12] = 1.0
            z = lambda m: (x[m, l, h].astype(np.float64) - mu) / sd
            best = None
            for lam in reversed(grid):  # larger first: a tie keeps the larger lambda
                clf = fit(z(tr), y[tr], lam)
                loss = xent(clf, z(val), y[val])
                if best is None or loss < best[0]:
                    best = (loss, lam, clf)
            _, lam, clf = best
            acc = lambda m: float((clf.predict(z(m)) == y[m]).mean())
            rows.append((l, h, lam, acc(val), acc(test), acc(tr)))
    with open(os.path.join(HERE, "probe_small_expected.csv"), "w") as f:
        f.write(f"# scikit-learn LogisticRegression, C = 1/(lambda*n_train), lambda per head from {grid} by "
                f"validation cross-entropy, n_train = {int(tr.sum())}, n_val = {int(val.sum())}, "
                f"n_test = {int(test.sum())}\n")
        f.write("layer,head,lambda,val_accuracy,test_accuracy,train_accuracy\n")
        for l, h, lam, va, te, ta in rows:
            f.write(f"{l},{h},{lam:g},{va:.6f},{te:.6f},{ta:.6f}\n")
    print(open(os.path.join(HERE, "probe_small_expected.csv")).read())


if __name__ == "__main__":
    main()
