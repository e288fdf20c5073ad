#!/usr/bin/env bash
# The whole demo pipeline (issue 7's proof): prepare -> extract -> probe -> decompose -> select
#  - with 1 and 3 ranks every output is identical (mixes, selections, scores), and select on 2
#    ranks writes the same bytes too (task and benchmark sets, scores.h5)
#  - each task selects exactly ceil(fraction x N) pool rows, and the selected JSONL lines are
#    byte-identical to lines of the pool file, in pool order
#  - the random and rds baselines run and are rank-invariant too
#  - the benchmark-level sets (DIR/benchmark/<b>.jsonl) against an independent reference: the
#    benchmark of a task = its name up to the first '/', a row's score = the max over the
#    benchmark's tasks of scores.h5's task scores, the top ceil(f N) by score then id; the task
#    sets by the same reference; the random scores recomputed (splitmix64 of seed and id)
#  - scores.h5: the pool ids, method, fraction, seed, heads, render rule and input identities
#    against the inputs themselves (sha256 of the pool JSONL, the archive's and mix's attributes);
#    the mix identity does not change when mix.h5 is repacked and does when a mix value does
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
for f in mix/mix.csv sel_capability/*.jsonl sel_random/*.jsonl sel_rds/*.jsonl sel_cos/*.jsonl \
  sel_capability/benchmark/*.jsonl sel_random/benchmark/*.jsonl sel_rds/benchmark/*.jsonl sel_cos/benchmark/*.jsonl; do
  for a in "$T"/one/$f; do
    b=$T/three/${a#"$T"/one/}
    cmp -s "$a" "$b" || fail "${a#"$T"/one/} differs between 1 and 3 ranks"
  done
done
h5diff "$T/one/mix/mix.h5" "$T/three/mix/mix.h5" >/dev/null || fail "mix.h5 differs between 1 and 3 ranks"
for m in capability random rds cos; do
  h5diff "$T/one/sel_$m/scores.h5" "$T/three/sel_$m/scores.h5" >/dev/null || fail "scores ($m) differ between 1 and 3 ranks"
done
echo "== select on 2 ranks: the bytes of 1 rank"
cd "$T/one"
for m in capability random rds; do
  run 2 select --probes probes.h5 --mix mix --input pool.h5 --pool ../data/pool.jsonl --fraction 0.05 \
    --method $m --output sel2_$m >/dev/null 2>&1 || fail "select --method $m on 2 ranks"
  [ "$(cd sel_$m && ls -R)" = "$(cd sel2_$m && ls -R)" ] || fail "select ($m) on 2 ranks writes other files"
  for a in sel_$m/*.jsonl sel_$m/benchmark/*.jsonl; do
    cmp -s "$a" "sel2_${a#sel_}" || fail "$a differs between 1 and 2 ranks"
  done
  h5diff sel_$m/scores.h5 sel2_$m/scores.h5 >/dev/null || fail "scores ($m) differ between 1 and 2 ranks"
done
cd - >/dev/null

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

echo "== benchmark-level sets and scores.h5 against an independent reference"
/usr/bin/python3 - "$T/one" "$T/data/pool.jsonl" <<'PY' || fail "benchmark sets / scores.h5"
import hashlib, json, math, os, re, sys, h5py, numpy as np
d, pool = sys.argv[1], sys.argv[2]
s_ = lambda v: v.decode() if isinstance(v, bytes) else str(v)
raw = [l for l in open(pool, "rb").read().split(b"\n") if l.strip()]
ids = [json.loads(l)["id"] for l in raw]
pos = {l: i for i, l in enumerate(raw)}
n = len(ids)
arch, mixf = h5py.File(os.path.join(d, "pool.h5"), "r"), h5py.File(os.path.join(d, "mix", "mix.h5"), "r")
safe = lambda name: re.sub(rb"[^A-Za-z0-9._-]", b"_", name.encode())[:255].decode()
def splitmix(seed, id_):        # select.c's random score, written out again
    h = 1469598103934665603
    for c in id_.encode():
        h = ((h ^ c) * 1099511628211) % 2**64
    z = (h + seed * 0x9e3779b97f4a7c15) % 2**64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) % 2**64
    z ^= z >> 31
    return (z >> 11) / 9007199254740992.0
def top(score, k):              # score descending, then id ascending (bytes); in pool order
    return sorted(sorted(range(n), key=lambda i: (-score[i], ids[i].encode()))[:k])
def lines_of(path):
    got = open(path, "rb").read().split(b"\n")
    assert got[-1] == b"", path
    return [pos[l] for l in got[:-1]]
nb_checked = 0
for method, frac in (("capability", 0.05), ("random", 0.05), ("rds", 0.05), ("cos", 0.1)):
    sd = os.path.join(d, "sel_" + method)
    s = h5py.File(os.path.join(sd, "scores.h5"), "r")
    assert [s_(x) for x in s["ids"][()]] == ids == [s_(x) for x in arch["ids"][()]], method + ": ids"
    tasks = [s_(x) for x in s["tasks"][()]]
    sc = s["scores"][()]
    assert sc.dtype == np.float64 and sc.shape == (len(tasks), n)
    k = int(s.attrs["k"])
    assert k == math.ceil(frac * n - 1e-9) and abs(float(s.attrs["fraction"]) - frac) < 1e-15
    groups = {}
    for t, name in enumerate(tasks):
        groups.setdefault(name.split("/", 1)[0], []).append(t)
    assert [s_(x) for x in s["benchmarks"][()]] == list(groups), (method, list(groups))
    assert len(groups) == 2 and all(len(v) > 1 for v in groups.values())   # mmlu and bbh, several tasks each
    for b, (name, ts) in enumerate(groups.items()):
        assert list(s["benchmark_of_task"][ts]) == [b] * len(ts)
        ref = sc[ts].max(axis=0)
        assert np.array_equal(ref, s["benchmark_scores"][b]), (method, name)
        want = top(ref, k)
        assert lines_of(os.path.join(sd, "benchmark", safe(name) + ".jsonl")) == want, (method, name)
        assert list(np.nonzero(s["benchmark_selected"][b])[0]) == want
        nb_checked += 1
    for t, name in enumerate(tasks):
        want = top(sc[t], k)
        assert lines_of(os.path.join(sd, safe(name) + ".jsonl")) == want, (method, name)
        assert list(np.nonzero(s["selected"][t])[0]) == want
    if method == "random":
        assert all(sc[t][i] == splitmix(1, ids[i]) for t in range(len(tasks)) for i in range(n))
    a = {k_: s_(v) for k_, v in s.attrs.items() if k_ not in ("fraction", "k", "seed")}
    assert a["format"] == "capheads-scores" and int(s.attrs["seed"]) == 1 and a["level"] == "both"
    assert a["method"] == ("capability" if method == "cos" else method)
    assert a["score"] == {"capability": "dot", "cos": "cosine"}.get(method, "")
    assert a["heads"] == s_(mixf.attrs["heads"]) == "own"
    assert a["pool_sha256"] == hashlib.sha256(open(pool, "rb").read()).hexdigest()
    for mine, theirs in (("archive_input_sha256", "input_sha256"), ("archive_rows_sha256", "rows_sha256"),
                         ("archive_weights_sha256", "weights_sha256"), ("render_template", "render_template"),
                         ("render_span", "render_span"), ("render_cue", "render_cue")):
        assert a[mine] == s_(arch.attrs.get(theirs, "")), (mine, a[mine])
    assert len(a["archive_rows_sha256"]) == 64 and len(a["archive_weights_sha256"]) == 64
    assert a["probes_sha256"] == s_(mixf.attrs["probes_sha256"]) and len(a["probes_sha256"]) == 64
    assert re.fullmatch("[0-9a-f]{64}", a["mix_sha256"]) and a["capability_names"] == s_(mixf.attrs["capability_names"])
    assert (a["pool"], a["input"], a["mix"]) == ("../data/pool.jsonl", "pool.h5", "mix")
print("benchmark sets: %d checked against the max-over-tasks reference; task sets, ids, attributes checked" % nb_checked)
PY
D=$T/one
cp -r "$D/mix" "$T/mix_repacked" && rm "$T/mix_repacked/mix.h5"
h5repack "$D/mix/mix.h5" "$T/mix_repacked/mix.h5"
# h5repack copies the user block, whose file seal no longer matches the rewritten bytes: refused;
# without the block (h5unjam) the content seal alone is checked, and the mix keeps its identity
set +e; run 1 select --mix "$T/mix_repacked" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --method random \
  --output "$T/sel_stale" >"$T/stale.txt" 2>&1; rc=$?; set -e
[ $rc -eq 3 ] && grep -q "mix_repacked/mix.h5: its bytes do not match the SHA-256 in its first 512 bytes" "$T/stale.txt" ||
  { cat "$T/stale.txt"; fail "a repacked mix with a stale file seal: exit $rc"; }
h5unjam -i "$T/mix_repacked/mix.h5" -o "$T/mix_repacked/unjammed.h5" >/dev/null && mv "$T/mix_repacked/unjammed.h5" "$T/mix_repacked/mix.h5"
cp "$D/pool.h5" "$T/pool_render.h5"   # the rule a newer extract records: copied into scores.h5 as it is
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+')
for k, v in (('render_template', 'plain'), ('render_span', 'prompt'), ('render_cue', 'Answer:')):
    f.attrs[k] = v.encode()   # fixed-length, as extract writes
" "$T/pool_render.h5"
run 1 select --mix "$T/mix_repacked" --input "$T/pool_render.h5" --pool "$T/data/pool.jsonl" --method random \
  --seed 7 --fraction 0.2 --level benchmark --output "$T/sel_repacked" >/dev/null 2>&1 || fail "select on a repacked mix"
cp -r "$D/mix" "$T/mix_changed"
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+'); m = f['mix'][()]; m[0, 0] += 1e-12; f['mix'][...] = m
" "$T/mix_changed/mix.h5"
/usr/bin/python3 "$CH_SRC/tests/tools/h5seal.py" seal "$T/mix_changed/mix.h5" >/dev/null  # edited on purpose: checksums redone
run 1 select --mix "$T/mix_changed" --input "$D/pool.h5" --pool "$T/data/pool.jsonl" --method random \
  --output "$T/sel_changed" >/dev/null 2>&1 || fail "select on a changed mix"
/usr/bin/python3 - "$D/sel_random/scores.h5" "$T/sel_repacked" "$T/sel_changed/scores.h5" <<'PY' || fail "mix identity / render rule / level"
import os, sys, h5py
s_ = lambda v: v.decode() if isinstance(v, bytes) else str(v)
base, rep, chg = h5py.File(sys.argv[1], "r"), h5py.File(os.path.join(sys.argv[2], "scores.h5"), "r"), h5py.File(sys.argv[3], "r")
assert s_(rep.attrs["mix_sha256"]) == s_(base.attrs["mix_sha256"]), "repacking mix.h5 changed its identity"
assert s_(chg.attrs["mix_sha256"]) != s_(base.attrs["mix_sha256"]), "a changed mix kept its identity"
assert [s_(rep.attrs[k]) for k in ("render_template", "render_span", "render_cue")] == ["plain", "prompt", "Answer:"]
assert int(rep.attrs["seed"]) == 7 and float(rep.attrs["fraction"]) == 0.2 and s_(rep.attrs["level"]) == "benchmark"
assert s_(rep.attrs["probes"]) == "" and s_(rep.attrs["probes_sha256"]) == s_(base.attrs["probes_sha256"])
assert "selected" not in rep and "benchmark_selected" in rep and "scores" in rep
assert not [f for f in os.listdir(sys.argv[2]) if f.endswith(".jsonl")], "--level benchmark wrote task sets"
print("mix identity: same after h5repack, different after a change of 1e-12; render rule copied; --level benchmark")
PY

echo "== bad input"
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
