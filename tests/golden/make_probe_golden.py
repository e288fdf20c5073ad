#!/opt/oracle/bin/python
"""Golden per-head validation accuracies for the probe stage, from scikit-learn.

Makes (with tests/tools/make_archive.py, Debian python3) the committed archive probe_small.h5 if it
is missing, then fits, for every (layer, head), scikit-learn's LogisticRegression (lbfgs,
multinomial for 5 classes) with the same data choices as `capheads probe`:
  * rows: done and labelled (label != -1);
  * split: validation when FNV-1a-64(id bytes) % 5 == 0;
  * inputs: float16 widened to float32, standardized with the TRAIN rows' mean and population std
    (a zero std becomes 1), like StandardScaler;
  * objective: capheads minimizes (1/n) sum CE + lambda/2 ||W||^2; sklearn minimizes
    C * sum CE + 1/2 ||W||^2; the two agree with C = 1 / (lambda * n_train).
Writes probe_small_expected.csv: layer,head,val_accuracy,train_accuracy.

usage: /opt/oracle/bin/python tests/golden/make_probe_golden.py [--lambda 1e-3]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lambda", dest="lam", type=float, default=1e-3)
    a = ap.parse_args()
    if not os.path.exists(ARCHIVE):
        subprocess.check_call(["/usr/bin/python3", os.path.join(HERE, "..", "tools", "make_archive.py"),
                               ARCHIVE] + ARCHIVE_ARGS)
    with h5py.File(ARCHIVE, "r") as f:
        x = f["activations"][()].astype(np.float32)
        y = f["labels"][()]
        done = f["done"][()]
        ids = [s.rstrip(b"\0") for s in f["ids"][()]]
    keep = (done != 0) & (y >= 0)
    val = np.array([fnv1a64(i) % 5 == 0 for i in ids]) & keep
    tr = ~val & keep
    n_train = int(tr.sum())
    C = 1.0 / (a.lam * n_train)
    rows = []
    L, H = x.shape[1], x.shape[2]
    for l in range(L):
        for h in range(H):
            xt, xv = x[tr, l, h].astype(np.float64), x[val, l, h].astype(np.float64)
            mu = xt.mean(0)
            sd = xt.std(0)
            sd[sd <= 1e-12] = 1.0
            clf = LogisticRegression(C=C, tol=1e-10, max_iter=100000)
            clf.fit((xt - mu) / sd, y[tr])
            va = float((clf.predict((xv - mu) / sd) == y[val]).mean())
            ta = float((clf.predict((xt - mu) / sd) == y[tr]).mean())
            rows.append((l, h, va, ta))
    with open(os.path.join(HERE, "probe_small_expected.csv"), "w") as f:
        f.write(f"# scikit-learn LogisticRegression, C = 1/(lambda*n_train), lambda = {a.lam}, "
                f"n_train = {n_train}, n_val = {int(val.sum())}\n")
        f.write("layer,head,val_accuracy,train_accuracy\n")
        for l, h, va, ta in rows:
            f.write(f"{l},{h},{va:.6f},{ta:.6f}\n")
    print(open(os.path.join(HERE, "probe_small_expected.csv")).read())


if __name__ == "__main__":
    main()
