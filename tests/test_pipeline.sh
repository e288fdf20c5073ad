#!/usr/bin/env bash
# The whole demo pipeline (issue 7's proof): prepare -> extract -> probe -> decompose -> select
#  - with 1 and 3 ranks every output is identical (mixes, selections, scores)
#  - each task selects exactly ceil(fraction x N) pool rows, and the selected JSONL lines are
#    byte-identical to lines of the pool file, in pool order
#  - the random and rds baselines run and are rank-invariant too
#  - bad input: a task with no examples, a mix file for other capabilities, a pool JSONL that
#    does not match the pool archive
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_pipeline_XXXXXX)
trap 'rm -rf "$T"' EXIT

M=$T/model
ch_demo_model "$M"
CAPHEADS=$CAPHEADS bash "$CH_SRC/scripts/make-demo-data.sh" "$T/data" >/dev/null

pipeline() { # pipeline RANKS DIR
  local r=$1 d=$T/$2
  mkdir -p "$d"
  cd "$d"
  for set in probeset tasks pool; do
    run $r extract --model ../model --input ../data/$set.jsonl --output $set.h5 --device cpu --hidden 2>/dev/null
  done
  run $r probe --input probeset.h5 --output probes.h5 --top-k 4 >/dev/null 2>&1
  run $r decompose --probes probes.h5 --input tasks.h5 --output mix >/dev/null
  for m in capability random rds; do
    run $r select --probes probes.h5 --mix mix --input pool.h5 --pool ../data/pool.jsonl --fraction 0.05 \
      --method $m --output sel_$m >/dev/null 2>&1
  done
  run $r select --probes probes.h5 --mix mix --input pool.h5 --pool ../data/pool.jsonl --fraction 0.1 \
    --score cosine --output sel_cos >/dev/null 2>&1
  cd - >/dev/null
}
echo "== demo pipeline on 1 and 3 ranks"
pipeline 1 one
pipeline 3 three
for f in mix/mix.csv sel_capability/*.jsonl sel_random/*.jsonl sel_rds/*.jsonl sel_cos/*.jsonl; do
  for a in "$T"/one/$f; do
    b=$T/three/${a#"$T"/one/}
    cmp -s "$a" "$b" || fail "${a#"$T"/one/} differs between 1 and 3 ranks"
  done
done
h5diff "$T/one/mix/mix.h5" "$T/three/mix/mix.h5" >/dev/null || fail "mix.h5 differs between 1 and 3 ranks"
for m in capability random rds cos; do
  h5diff "$T/one/sel_$m/scores.h5" "$T/three/sel_$m/scores.h5" >/dev/null || fail "scores ($m) differ between 1 and 3 ranks"
done

echo "== selection size and byte-identical pool lines"
N=$(grep -c . "$T/data/pool.jsonl")
/usr/bin/python3 - "$T/one" "$T/data/pool.jsonl" "$N" <<'PY' || fail "selection checks"
import glob, math, os, sys, h5py
d, pool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = [l for l in open(pool, "rb").read().split(b"\n") if l.strip()]
pos = {l: i for i, l in enumerate(lines)}
for method, frac in (("capability", 0.05), ("random", 0.05), ("rds", 0.05), ("cos", 0.1)):
    files = sorted(glob.glob(os.path.join(d, "sel_" + method, "*.jsonl")))
    assert files, method
    s = h5py.File(os.path.join(d, "sel_" + method, "scores.h5"), "r")
    for t, f in enumerate(files):
        got = open(f, "rb").read().split(b"\n")
        assert got[-1] == b"", f + ": must end with a newline"
        got = got[:-1]
        assert len(got) == math.ceil(frac * n), (f, len(got))
        idx = [pos[l] for l in got]                      # KeyError: not a pool line
        assert idx == sorted(idx), f + ": not in pool order"
    # the selected rows are the top scores, ties broken by id (scores.h5 has every score)
    for t in range(s["scores"].shape[0]):
        sc, sel = s["scores"][t], s["selected"][t]
        k = int(sel.sum())
        assert k == math.ceil(frac * n)
        assert sc[sel == 1].min() >= sc[sel == 0].max()
print("selection: sizes, pool order, byte-identical lines and top scores checked")
PY

echo "== bad input"
D=$T/one
expect_fail "task with no examples" "has no examples" "$CAPHEADS" decompose --probes "$D/probes.h5" \
  --input "$D/tasks.h5" --output "$T/m2" --tasks mmlu/anatomy
cp -r "$D/mix" "$T/othercaps"
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+')
del f.attrs['capability_names']
f.attrs.create('capability_names', b'[\"math\",\"coding\",\"commonsense\",\"science\",\"professional\"]')
" "$T/othercaps/mix.h5"
expect_fail "mix for other capabilities" "coding" "$CAPHEADS" select --probes "$D/probes.h5" --mix "$T/othercaps" \
  --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --output "$T/s2"
head -n 299 "$T/data/pool.jsonl" >"$T/short.jsonl"
expect_fail "pool JSONL with other records" "not the pool" "$CAPHEADS" select --probes "$D/probes.h5" --mix "$D/mix" \
  --input "$D/pool.h5" --pool "$T/short.jsonl" --output "$T/s3"
sed '1s/"id":"[^"]*"/"id":"renamed"/' "$T/data/pool.jsonl" >"$T/renamed.jsonl"
expect_fail "pool JSONL edited" "not the corpus" "$CAPHEADS" select --probes "$D/probes.h5" --mix "$D/mix" \
  --input "$D/pool.h5" --pool "$T/renamed.jsonl" --output "$T/s4"
expect_fail "probes for another archive shape" "probes" "$CAPHEADS" decompose --probes "$D/probes.h5" \
  --input "$CH_SRC/tests/golden/probe_small.h5" --output "$T/m3"
echo "test_pipeline: all checks passed"
