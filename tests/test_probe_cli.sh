#!/usr/bin/env bash
# capheads probe end to end: scikit-learn golden accuracies, known signal heads, identical output for
# 1..4 ranks, heatmaps, and the bad-input refusals. Needs Debian python3 + h5py + numpy (CI has them).
set -euo pipefail
: "${CAPHEADS:?} ${MPIEXEC:?} ${CH_SRC:?} ${CH_BIN:?}"
T="$CH_BIN/probe_cli_tmp"
rm -rf "$T" && mkdir -p "$T"
PY=/usr/bin/python3
MK="$PY $CH_SRC/tests/tools/make_archive.py"
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { "$MPIEXEC" -n "$1" --oversubscribe "$CAPHEADS" probe "${@:2}"; }

# 1. golden: per-head lambda (chosen on validation), validation and test accuracies vs scikit-learn
#    (tests/golden/make_probe_golden.py: the same split, grid and choice rule)
run 1 --input "$CH_SRC/tests/golden/probe_small.h5" --output "$T/golden.h5" > "$T/golden.log"
$PY - "$T/golden.h5" "$CH_SRC/tests/golden/probe_small_expected.csv" <<'PYEOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1])
rows = [l.strip().split(",") for l in open(sys.argv[2]) if l[0].isdigit()]
for name, col in (("test_accuracy", 4), ("val_accuracy", 3)):
    got = f[name][()]
    want = np.zeros_like(got)
    for r in rows: want[int(r[0]), int(r[1])] = float(r[col])
    d = np.abs(got - want) * 100
    print("golden %s: mean |diff| %.3f points, max %.3f points" % (name, d.mean(), d.max()))
    assert d.mean() <= 0.5 and d.max() <= 2.0, (name, got, want)
lam = f["lambda"][()]
for r in rows:
    assert abs(lam[int(r[0]), int(r[1])] / float(r[2]) - 1) < 1e-6, ("lambda", r, lam)
assert f["test_accuracy"].attrs["split"] in (b"test", "test")
assert list(f["lambda_grid"][()]) == [1e-4, 1e-3, 1e-2, 1e-1, 1]
assert f["val_loss"].shape == (5, 2, 4)
# lambda is the grid's argmin of the recorded validation losses
assert np.allclose(f["lambda_grid"][()][np.argmin(f["val_loss"][()], 0)], lam)
# k: the candidate with the best validation ensemble accuracy (ties to the smaller)
ks, acc = f["top_k_grid"][()], f["ensemble_val_accuracy_by_k"][()]
assert list(ks) == [1, 2, 4, 8] and f.attrs["top_k"] == ks[np.argmax(acc)] == f["top_heads"].shape[1]
assert f.attrs["n_test"] == 200 and f.attrs["n_val"] == 204 and f.attrs["n_train"] == 596
best = int(f.attrs["best_head"])
assert best == int(np.argmax(f["val_accuracy"][()].reshape(-1)))
assert abs(f.attrs["best_head_test_accuracy"] - f["test_accuracy"][()].reshape(-1)[best]) < 1e-6
print("golden: lambdas equal, k and the best head chosen on validation")
PYEOF
grep -q "probe: test accuracy (held out, n=200): best head L1.H0 (chosen on validation)" "$T/golden.log" \
  || { cat "$T/golden.log"; fail "the printed accuracy is not the test split's"; }
grep -q "format-only baseline skipped: cannot read the corpus synthetic.jsonl" "$T/golden.log" \
  || { cat "$T/golden.log"; fail "no word on the skipped baseline"; }
# every percentage printed is on a line that says it is the test split's
if grep "%" "$T/golden.log" | grep -v "test"; then fail "an accuracy printed without saying it is the test split's"; fi

# 2. known signal heads: layer 0 head 2, layer 1 head 3, layer 2 head 1 (flat 2, 7, 9) must be
#    exactly the top-3 of every capability; the baseline (a corpus without format signal) near
#    chance and no warning; 1..4 ranks agree
$MK "$T/signal.h5" --n 600 --layers 3 --heads 4 --dim 8 --seed 3 --signal 0:2:1.5,1:3:1.5,2:1:1.5 \
  --corpus "$T/signal.jsonl"
for r in 1 2 3 4; do
  run $r --input "$T/signal.h5" --output "$T/sig$r.h5" --top-k 3 $([ $r = 1 ] && echo --heatmap "$T/hm") \
    > "$T/sig$r.log" 2>&1
done
if grep -q "warning" "$T/sig1.log"; then cat "$T/sig1.log"; fail "a format warning without format signal"; fi
$PY - "$T" <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
a = h5py.File(t + "/sig1.h5")
for c in range(5):
    assert sorted(a["top_heads"][c]) == [2, 7, 9], a["top_heads"][()]
assert a.attrs["format"] == b"capheads-probes" or a.attrs["format"] == "capheads-probes"
assert a.attrs["top_k"] == 3 and a["weights"].shape == (3, 4, 5, 8) and a["ovr_auc"].shape == (3, 4, 5)
assert a.attrs["format_baseline"] in (b"fitted", "fitted")
base = a.attrs["format_baseline_test_accuracy"]
assert base < 0.35 and a.attrs["format_baseline_warning"] == 0, base
assert a.attrs["best_head_test_accuracy"] > 0.8
for r in (2, 3, 4):
    b = h5py.File(t + "/sig%d.h5" % r)
    for k in ("weights", "bias", "mean", "std", "val_accuracy", "train_accuracy", "test_accuracy", "ovr_accuracy",
              "ovr_auc", "test_ovr_accuracy", "test_ovr_auc", "top_heads", "top_scores", "lambda", "val_loss"):
        d = np.max(np.abs(a[k][()].astype(np.float64) - b[k][()]))
        assert d <= 1e-6, (r, k, d)
    for k in ("best_head_val_accuracy", "ensemble_val_accuracy", "best_head_test_accuracy",
              "ensemble_test_accuracy", "format_baseline_test_accuracy", "format_baseline_val_accuracy",
              "format_baseline_lambda"):
        assert abs(a.attrs[k] - b.attrs[k]) <= 1e-6, (r, k)
    assert a.attrs["best_head"] == b.attrs["best_head"]
print("signal heads found; baseline at chance (%.3f); 1..4 ranks agree to 1e-6" % base)
import xml.etree.ElementTree as ET, csv
for cap in ("math", "reading", "commonsense", "science", "professional"):
    svg = open(t + "/hm/heatmap_%s.svg" % cap).read()
    ET.fromstring(svg)
    assert "test one-vs-rest AUC per head (held out, n=%d)" % a.attrs["n_test"] in svg
rows = list(csv.DictReader(open(t + "/hm/scores.csv")))
assert len(rows) == 12 and abs(float(rows[2]["test_auc_math"]) - a["test_ovr_auc"][0, 2, 0]) < 1e-5
assert abs(float(rows[2]["test_accuracy"]) - a["test_accuracy"][0, 2]) < 1e-5
PYEOF

# 2b. classes that differ only by format (activations pure noise): the baseline finds them, the
#     heads do not, the warning names the figures; equal on 1..3 ranks; --corpus overrides the
#     recorded path; a corpus that is not the archive's is refused naming both
$MK "$T/fmt.h5" --n 600 --layers 2 --heads 3 --dim 8 --seed 5 --corpus "$T/fmt.jsonl" --format-signal
for r in 1 2 3; do run $r --input "$T/fmt.h5" --output "$T/fmt$r.h5" > "$T/fmt$r.log" 2>&1; done
grep -q "warning: a format-only baseline reaches 100.00% on the test split (held out, n=" "$T/fmt1.log" \
  || { cat "$T/fmt1.log"; fail "no format warning"; }
grep -q "(docs/probe.md#format-baseline)" "$T/fmt1.log" || fail "the warning does not point at the docs"
$PY - "$T" <<'PYEOF'
import sys, h5py
t = sys.argv[1]
a = h5py.File(t + "/fmt1.h5")
assert a.attrs["format_baseline_test_accuracy"] >= 0.95, a.attrs["format_baseline_test_accuracy"]
assert a.attrs["best_head_test_accuracy"] <= 0.35 and a.attrs["format_baseline_warning"] == 1
for r in (2, 3):
    b = h5py.File(t + "/fmt%d.h5" % r)
    for k in ("format_baseline_test_accuracy", "format_baseline_val_accuracy", "format_baseline_lambda"):
        assert abs(a.attrs[k] - b.attrs[k]) <= 1e-6, (r, k)
print("format-only classes: baseline %.3f, best head %.3f" % (a.attrs["format_baseline_test_accuracy"],
                                                             a.attrs["best_head_test_accuracy"]))
PYEOF
"$CAPHEADS" inspect "$T/fmt1.h5" > "$T/fmt_inspect.log"
grep -q "test accuracy (held out, n=" "$T/fmt_inspect.log" || { cat "$T/fmt_inspect.log"; fail "inspect: test figures"; }
grep -q "format-only baseline: test accuracy (held out, n=.*WARNING" "$T/fmt_inspect.log" \
  || { cat "$T/fmt_inspect.log"; fail "inspect: baseline warning"; }
if cat "$T/fmt1.log" "$T/fmt_inspect.log" | grep "%" | grep -v "test"; then
  fail "probe or inspect shows an accuracy without saying it is the test split's"
fi
mkdir -p "$T/moved" && cp "$T/fmt.jsonl" "$T/moved/corpus.jsonl" && mv "$T/fmt.jsonl" "$T/fmt.jsonl.away"
run 2 --input "$T/fmt.h5" --output "$T/fmt_moved.h5" --corpus "$T/moved/corpus.jsonl" > "$T/moved.log" 2>&1
grep -q "warning: a format-only baseline" "$T/moved.log" || { cat "$T/moved.log"; fail "--corpus not used"; }

# 3. bad input: clear message, non-zero exit
expect_fail() { # expect_fail STATUS PATTERN args...
  local want=$1 pat=$2; shift 2
  set +e; run 2 "$@" > "$T/bad.log" 2>&1; local st=$?; set -e
  [ $st -eq "$want" ] || { cat "$T/bad.log"; fail "exit $st, expected $want for $*"; }
  grep -q -- "$pat" "$T/bad.log" || { cat "$T/bad.log"; fail "no '$pat' in the message for $*"; }
}
$MK "$T/inc.h5" --n 300 --incomplete 2 --unlabeled 3
expect_fail 3 "row 298 (id 'rec-000298') is not done" --input "$T/inc.h5" --output "$T/x.h5"
run 2 --input "$T/inc.h5" --output "$T/x.h5" --allow-incomplete --force > "$T/inc.log"
grep -q "(1 unlabeled, 2 incomplete skipped)" "$T/inc.log" || { cat "$T/inc.log"; fail "skip counts"; }
$MK "$T/lab.h5" --n 300 --bad-label 17
expect_fail 3 "row 17 (id 'rec-000017'): label 7 outside 0..4" --input "$T/lab.h5" --output "$T/x.h5" --force
$MK "$T/nan.h5" --n 300 --layers 2 --heads 3 --nan 250:1:2
expect_fail 3 "row 250 (id 'rec-000250'), layer 1, head 2: activation 0 is NaN" --input "$T/nan.h5" --output "$T/x.h5" --force
$MK "$T/one.h5" --n 300 --classes 1
expect_fail 3 "needs at least two" --input "$T/one.h5" --output "$T/x.h5" --force
expect_fail 3 "not an activation archive" --input "$T/sig1.h5" --output "$T/x.h5" --force
expect_fail 5 "cannot open" --input "$T/missing.h5" --output "$T/x.h5" --force
expect_fail 2 "missing --output PROBES.h5 (required" --input "$T/inc.h5"
expect_fail 2 "--lambda expects a number > 0, got 'abc'" --input "$T/inc.h5" --output "$T/x.h5" --lambda abc
expect_fail 2 "give one" --input "$T/inc.h5" --output "$T/x.h5" --lambda 1e-3 --lambda-grid 1e-3,1e-2
expect_fail 2 "--lambda-grid expects numbers > 0 separated by commas, got '0'" --input "$T/inc.h5" --output "$T/x.h5" --lambda-grid 1,0
expect_fail 5 "format-only baseline (--require-baseline): cannot read the corpus synthetic.jsonl"   --input "$T/inc.h5" --output "$T/x.h5" --force --allow-incomplete --require-baseline
head -c 100 "$T/moved/corpus.jsonl" > "$T/other.jsonl"
expect_fail 3 "$T/other.jsonl: sha256 [0-9a-f]*, but $T/fmt.h5 was extracted from input_sha256 [0-9a-f]*"   --input "$T/fmt.h5" --output "$T/x.h5" --force --corpus "$T/other.jsonl"
head -n -1 "$T/moved/corpus.jsonl" > "$T/short.jsonl"
# a corpus without one of the archive's ids (its sha256 checked first: record it as the archive's)
cp "$T/fmt.h5" "$T/fmt_short.h5"
$PY -c "import h5py,hashlib,sys,numpy as np; f=h5py.File(sys.argv[1],'r+'); f.attrs['input_sha256']=np.bytes_(hashlib.sha256(open(sys.argv[2],'rb').read()).hexdigest().encode())" "$T/fmt_short.h5" "$T/short.jsonl"
expect_fail 3 "$T/short.jsonl: no record with id 'rec-000599'" --input "$T/fmt_short.h5" --output "$T/x.h5" --force --corpus "$T/short.jsonl"
echo "test_probe_cli: all passed"
