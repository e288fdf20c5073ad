#!/usr/bin/env bash
# --timing FILE on every stage (docs/timing.md): the demo pipeline on 2 ranks, each stage appending
# to one file; every line is one valid JSON object with the required keys and types, the stage's
# own keys in the documented order, and counts that match the data (records written, corpus rows,
# rows fitted, rows folded into mixes, pool rows and rows kept). Every stage's --help names the
# option, and a timing file that cannot be written fails the stage with exit 5, naming the file.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_timing_XXXXXX)
trap 'rm -rf "$T"' EXIT

for s in prepare extract probe decompose select; do
  # through a file: grep -q leaving early would SIGPIPE a help text longer than one stdio buffer
  "$CAPHEADS" "$s" --help >"$T/help.txt"
  grep -q -- '--timing FILE' "$T/help.txt" || fail "capheads $s --help does not mention --timing FILE"
done

M=$T/model
ch_demo_model "$M"
CAPHEADS=$CAPHEADS bash "$CH_SRC/scripts/make-demo-data.sh" "$T/data" >/dev/null
D=$T/data
TF=$T/timing.jsonl
cd "$T"
# prepare: a converter (one SRC) and the probing set (five CAP=FILE sources)
"$CAPHEADS" prepare less "$CH_SRC/data/demo/less/pool.jsonl" --output pool2.jsonl --timing "$TF" >/dev/null
run 2 prepare probeset math=$D/parts/math.jsonl reading=$D/parts/reading.jsonl commonsense=$D/parts/commonsense.jsonl \
  science=$D/parts/science.jsonl professional=$D/parts/professional.jsonl --seed 1 --output probeset2.jsonl \
  --timing "$TF" >/dev/null
for set in probeset tasks pool; do
  run 2 extract --model "$M" --input "$D/$set.jsonl" --output $set.h5 --device cpu --timing "$TF" 2>/dev/null
done
run 2 probe --input probeset.h5 --output probes.h5 --top-k 4 --timing "$TF" >/dev/null
run 2 decompose --probes probes.h5 --input tasks.h5 --output mix --timing "$TF" >/dev/null
run 2 select --probes probes.h5 --mix mix --input pool.h5 --pool "$D/pool.jsonl" --fraction 0.05 \
  --output sel --timing "$TF" >/dev/null 2>&1

/usr/bin/python3 - "$TF" "$T" <<'PY' || fail "timing records"
import glob, json, math, sys, h5py
path, d = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
assert lines[-1] == "", "the file must end with a newline"
recs = []
for i, l in enumerate(lines[:-1], 1):
    r = json.loads(l)                                   # one JSON object per line
    assert isinstance(r, dict), (i, l)
    recs.append(r)
assert [r["stage"] for r in recs] == ["prepare"] * 2 + ["extract"] * 3 + ["probe", "decompose", "select"], \
    [r["stage"] for r in recs]
nlines = lambda f: sum(1 for l in open(f, "rb") if l.strip())
def num(v): return isinstance(v, (int, float)) and not isinstance(v, bool)
for r in recs:
    assert isinstance(r["ranks"], int) and num(r["seconds"]) and r["seconds"] >= 0, r
    for k in ("records", "tokens", "io_seconds"):       # present, a number or null (not measured)
        assert k in r and (r[k] is None or num(r[k])), (k, r)
    assert isinstance(r["records"], int) and r["records"] >= 0, r
own = {"prepare": ["sources"], "extract": ["backend", "precision"], "probe": ["heads", "train_rows", "val_rows", "test_rows", "lambdas"],
       "decompose": ["tasks"], "select": ["tasks", "benchmarks", "selected"]}
for r in recs:
    keys = list(r)
    assert keys == ["stage", "ranks", "records", "tokens", "seconds", "io_seconds"] + own[r["stage"]], keys
p1, p2, x1, x2, x3, pr, de, se = recs
assert (p1["ranks"], p1["records"], p1["sources"]) == (1, nlines(d + "/pool2.jsonl"), 1), p1
assert (p2["ranks"], p2["records"], p2["sources"]) == (2, nlines(d + "/probeset2.jsonl"), 5), p2
for r, s in ((x1, "probeset"), (x2, "tasks"), (x3, "pool")):
    a = h5py.File("%s/%s.h5" % (d, s), "r")
    assert r["ranks"] == 2 and r["records"] == nlines("%s/data/%s.jsonl" % (d, s)) == a["ids"].shape[0], r
    assert r["tokens"] == int(a["n_tokens"][:].sum()) and num(r["io_seconds"]) and r["backend"] == "cpu", r
    assert r["precision"] == "bf16", r  # the demo model is bf16, extract's default precision auto
    assert r["io_seconds"] <= r["seconds"], r
p = h5py.File(d + "/probes.h5", "r")
labels = h5py.File(d + "/probeset.h5", "r")["labels"][:]
assert pr["records"] == pr["train_rows"] + pr["val_rows"] + pr["test_rows"] == int((labels >= 0).sum()), pr
assert pr["lambdas"] == len(p["lambda_grid"]) == 5, pr
assert num(pr["io_seconds"]) and 0 < pr["io_seconds"] <= pr["seconds"], pr
acts = h5py.File(d + "/probeset.h5", "r")["activations"]
assert pr["heads"] == acts.shape[1] * acts.shape[2], pr
ntask = nlines(d + "/data/tasks.jsonl")
mixrows = [l.split(",") for l in open(d + "/mix/mix.csv").read().splitlines()[1:] if l]
assert de["records"] == ntask and de["tasks"] == len(mixrows), (de, len(mixrows))
npool = nlines(d + "/data/pool.jsonl")
files = glob.glob(d + "/sel/*.jsonl")
assert se["records"] == npool and se["tasks"] == len(files) == de["tasks"], se
assert se["selected"] == math.ceil(0.05 * npool) == nlines(files[0]), se
benches = glob.glob(d + "/sel/benchmark/*.jsonl")     # mmlu and bbh
assert se["benchmarks"] == len(benches) == 2 and nlines(benches[0]) == se["selected"], se
print("timing: %d records, all valid: %s" % (len(recs), " ".join("%s %.3fs" % (r["stage"], r["seconds"]) for r in recs)))
PY

set +e
run 2 decompose --probes probes.h5 --input tasks.h5 --output mix2 --timing "$T/nodir/t.jsonl" >out.txt 2>&1
rc=$?
set -e
[ $rc -eq 5 ] && grep -q "$T/nodir/t.jsonl: cannot open the timing file" out.txt ||
  { cat out.txt; fail "unwritable timing file: exit $rc (want 5 and a message naming the file)"; }
echo "  unwritable timing file: exit 5: $(grep -m1 'cannot open the timing file' out.txt)"
echo "timing: ok"
