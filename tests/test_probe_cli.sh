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

# 1. golden: per-head validation accuracies vs scikit-learn (tests/golden/make_probe_golden.py)
run 1 --input "$CH_SRC/tests/golden/probe_small.h5" --output "$T/golden.h5" > "$T/golden.log"
$PY - "$T/golden.h5" "$CH_SRC/tests/golden/probe_small_expected.csv" <<'PYEOF'
import sys, h5py, numpy as np
got = h5py.File(sys.argv[1])["val_accuracy"][()]
rows = [l.split(",") for l in open(sys.argv[2]) if l[0].isdigit()]
want = np.zeros_like(got)
for l, h, va, _ in rows: want[int(l), int(h)] = float(va)
d = np.abs(got - want) * 100
print("golden: mean |diff| %.3f points, max %.3f points" % (d.mean(), d.max()))
assert d.mean() <= 0.5 and d.max() <= 2.0, (got, want)
PYEOF

# 2. known signal heads: layer 0 head 2, layer 1 head 3, layer 2 head 1 (flat 2, 7, 9) must be
#    exactly the top-3 of every capability
$MK "$T/signal.h5" --n 600 --layers 3 --heads 4 --dim 8 --seed 3 --signal 0:2:1.5,1:3:1.5,2:1:1.5
for r in 1 2 3 4; do
  run $r --input "$T/signal.h5" --output "$T/sig$r.h5" --top-k 3 $([ $r = 1 ] && echo --heatmap "$T/hm") > "$T/sig$r.log"
done
$PY - "$T" <<'PYEOF'
import sys, h5py, numpy as np
t = sys.argv[1]
a = h5py.File(t + "/sig1.h5")
for c in range(5):
    assert sorted(a["top_heads"][c]) == [2, 7, 9], a["top_heads"][()]
assert a.attrs["format"] == b"capheads-probes" or a.attrs["format"] == "capheads-probes"
assert a["weights"].shape == (3, 4, 5, 8) and a["ovr_auc"].shape == (3, 4, 5)
for r in (2, 3, 4):
    b = h5py.File(t + "/sig%d.h5" % r)
    for k in ("weights", "bias", "mean", "std", "val_accuracy", "train_accuracy", "ovr_accuracy",
              "ovr_auc", "top_heads", "top_scores"):
        d = np.max(np.abs(a[k][()].astype(np.float64) - b[k][()]))
        assert d <= 1e-6, (r, k, d)
    for k in ("best_head_val_accuracy", "ensemble_val_accuracy"):
        assert abs(a.attrs[k] - b.attrs[k]) <= 1e-6, (r, k)
print("signal heads found; 1..4 ranks agree to 1e-6")
import xml.etree.ElementTree as ET, csv
for cap in ("math", "reading", "commonsense", "science", "professional"):
    ET.parse(t + "/hm/heatmap_%s.svg" % cap)
rows = list(csv.DictReader(open(t + "/hm/scores.csv")))
assert len(rows) == 12 and abs(float(rows[2]["auc_math"]) - a["ovr_auc"][0, 2, 0]) < 1e-5
PYEOF

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
echo "test_probe_cli: all passed"
