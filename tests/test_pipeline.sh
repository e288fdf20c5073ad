#!/usr/bin/env bash
# The whole demo pipeline (issue 7's proof): prepare -> extract -> probe -> decompose -> select
#  - with 1 and 3 ranks every output is identical (mixes, selections, scores)
#  - each task selects exactly ceil(fraction x N) pool rows, and the selected JSONL lines are
#    byte-identical to lines of the pool file, in pool order
#  - the random and rds baselines run and are rank-invariant too
#  - bad input: a task with no examples, a mix file for other capabilities, a pool JSONL that
#    does not match the pool archive (record count, hash, ids), a probe file for other
#    capabilities than the mix, a mix made from other probes or with another --heads
#  - mix.svg: one bar group per task, segment widths proportional to the mix; mix.csv quotes
#    task names (RFC 4180); two tasks with one output file name are refused
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
/usr/bin/python3 "$CH_SRC/tests/tools/h5seal.py" seal "$T/othercaps/mix.h5" >/dev/null  # edited on purpose: checksums redone
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
sha=$(sha256sum "$T/renamed.jsonl" | cut -d' ' -f1)
cp "$D/pool.h5" "$T/pool_renamed.h5"   # the archive now claims the edited corpus: the ids still differ
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+')
del f.attrs['input_sha256']
f.attrs.create('input_sha256', sys.argv[2].encode())
" "$T/pool_renamed.h5" "$sha"
expect_fail "pool JSONL ids differ from the archive's" "has id 'renamed'" "$CAPHEADS" select --probes "$D/probes.h5" \
  --mix "$D/mix" --input "$T/pool_renamed.h5" --pool "$T/renamed.jsonl" --output "$T/s5"

echo "== mix and probe file must belong together"
cp "$D/probes.h5" "$T/probes_coding.h5"
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+')
del f.attrs['capability_names']
f.attrs.create('capability_names', b'[\"math\", \"coding\", \"commonsense\", \"science\", \"professional\"]')
" "$T/probes_coding.h5"
/usr/bin/python3 "$CH_SRC/tests/tools/h5seal.py" seal "$T/probes_coding.h5" >/dev/null  # edited on purpose: checksums redone
expect_fail "probe file for other capabilities than the mix" "probes_coding.h5 is for" "$CAPHEADS" select \
  --probes "$T/probes_coding.h5" --mix "$D/mix" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --output "$T/s6"
grep -q "coding" "$T/out.txt" && grep -q "mix $D/mix" "$T/out.txt" || fail "the refusal must name both files and lists"
expect_fail "decompose with probes for other capabilities" "coding" "$CAPHEADS" decompose \
  --probes "$T/probes_coding.h5" --input "$D/tasks.h5" --output "$T/m4"
cp "$D/probes.h5" "$T/probes_other.h5"  # one mapped head's probe changed: other probes
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+')
H = f['weights'].shape[1]; h = int(f['top_heads'][0, 0])
w = f['weights'][h // H, h % H]; w[0, 0] += 0.01; f['weights'][h // H, h % H] = w
" "$T/probes_other.h5"
/usr/bin/python3 "$CH_SRC/tests/tools/h5seal.py" seal "$T/probes_other.h5" >/dev/null  # edited on purpose: checksums redone
expect_fail "mix made from other probes" "other probes" "$CAPHEADS" select --probes "$T/probes_other.h5" \
  --mix "$D/mix" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --output "$T/s7"
grep -q "probes_other.h5" "$T/out.txt" && grep -q "mix $D/mix" "$T/out.txt" || fail "the refusal must name both files"
run 1 decompose --probes "$D/probes.h5" --input "$D/tasks.h5" --output "$T/mixu" --heads union >/dev/null
expect_fail "union mix scored with --heads own" "made with --heads union" "$CAPHEADS" select --probes "$D/probes.h5" \
  --mix "$T/mixu" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --output "$T/s8"
run 1 select --probes "$D/probes.h5" --mix "$T/mixu" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" \
  --heads union --output "$T/sel_union" >/dev/null 2>&1 || fail "select --heads union on a union mix"
/usr/bin/python3 - "$D/mix/mix.h5" "$T/mixu/mix.h5" "$D/probes.h5" <<'PY' || fail "mix attributes (heads, probe identity)"
import sys, h5py, numpy as np
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
own, uni = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert s(own.attrs["heads"]) == "own" and s(uni.attrs["heads"]) == "union"
assert len(s(own.attrs["probes_sha256"])) == 64 and s(own.attrs["probes_sha256"]) == s(uni.attrs["probes_sha256"])
assert s(own.attrs["probes_input_sha256"]) == s(h5py.File(sys.argv[3], "r").attrs["input_sha256"])
assert np.allclose(uni["mix"][()].sum(axis=1), 1) and not np.allclose(uni["mix"][()], own["mix"][()])
print("mix attributes: heads own/union, one probe identity, union rows sum to 1")
PY

echo "== mix.svg and mix.csv"
/usr/bin/python3 - "$D/mix" <<'PY' || fail "mix.svg / mix.csv"
import csv, sys, h5py
import xml.etree.ElementTree as ET
d = sys.argv[1]
h = h5py.File(d + "/mix.h5", "r")
tasks = [t.decode() if isinstance(t, bytes) else t for t in h["tasks"][()]]
mix = h["mix"][()]
ns = "{http://www.w3.org/2000/svg}"
groups = [g for g in ET.parse(d + "/mix.svg").getroot().iter(ns + "g") if g.get("class") == "bar"]
assert len(groups) == len(tasks), (len(groups), len(tasks))
for g, t, m in zip(groups, tasks, mix):
    assert g.find(ns + "text").text.startswith(t), (g.find(ns + "text").text, t)
    w = [float(r.get("width")) for r in g.findall(ns + "rect")]
    assert len(w) == 5 and sum(w) > 0, w
    for wc, mc in zip(w, m):
        assert abs(wc / sum(w) - mc) < 1e-4, (t, w, m)
rows = list(csv.reader(open(d + "/mix.csv", newline="")))
assert [r[0] for r in rows[1:]] == tasks and all(len(r) == 7 for r in rows)
print("mix.svg: %d bar groups, widths proportional to the mix; mix.csv: %d rows" % (len(groups), len(tasks)))
PY
/usr/bin/python3 - "$T/data/tasks.jsonl" "$T/odd.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][:4]
for i, r in enumerate(recs):   # both names become the file name odd__name_.jsonl
    r["task"] = 'odd,"name"' if i < 2 else 'odd/"name"'
    r["id"] = "odd-%d" % i
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in recs))
PY
run 1 extract --model "$M" --input "$T/odd.jsonl" --output "$T/odd.h5" --device cpu >/dev/null 2>&1
run 1 decompose --probes "$D/probes.h5" --input "$T/odd.h5" --output "$T/oddmix" >/dev/null
grep -q '^"odd,""name""",2,' "$T/oddmix/mix.csv" || { cat "$T/oddmix/mix.csv"; fail "mix.csv must quote a task name with a comma"; }
/usr/bin/python3 -c "
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
assert sorted(r[0] for r in rows[1:]) == ['odd,\"name\"', 'odd/\"name\"'], rows
" "$T/oddmix/mix.csv" || fail "mix.csv does not read back as CSV"
expect_fail "two tasks with one file name" "would both be written" "$CAPHEADS" select --probes "$D/probes.h5" \
  --mix "$T/oddmix" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --output "$T/s9"
echo "test_pipeline: all checks passed"
