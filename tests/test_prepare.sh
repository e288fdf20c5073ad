#!/usr/bin/env bash
# test_prepare.sh - `capheads prepare` on every format: output equals the committed expected JSONL
# byte for byte, and the expected files equal what tests/prepare_check.py re-derives from the
# sources with Python's own json/csv parsers (so neither can drift alone). Bad input fails with
# a message naming file and place, a non-zero exit, and no output file. The probing set is
# balanced, seeded, and independent of the order of its inputs.
set -uo pipefail
CAPHEADS=${CAPHEADS:?path to the capheads binary}
SRC=${CH_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
CHECK="/usr/bin/python3 $SRC/tests/prepare_check.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$SRC/tests/data/prepare" || exit 1 # relative paths: ids and meta.file do not depend on the checkout
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- each format: binary == expected, checker(sources) == expected --------------------------
# case NAME FORMAT ARGS... : expected/NAME is the reference
case_ok() {
  local name=$1 fmt=$2; shift 2
  if ! "$CAPHEADS" prepare "$fmt" "$@" --output "$T/$name" >"$T/log" 2>&1; then
    fail "$name: prepare failed: $(cat "$T/log")"; return
  fi
  cmp -s "$T/$name" "expected/$name" || fail "$name: output differs from expected/$name: $(diff "$T/$name" "expected/$name" | head -4)"
  $CHECK "$fmt" "expected/$name" "$@" >"$T/clog" 2>&1 || fail "$name: checker disagrees with expected/$name: $(cat "$T/clog")"
}
case_ok gsm8k.jsonl gsm8k src/test.jsonl
case_ok gsm8k_cue.jsonl gsm8k src/test.jsonl --cue Answer: --limit 2 --task demo/math
case_ok mmlu.jsonl mmlu src/tiny_law_dev.csv src/physics_val.csv
case_ok mmlu_prof.jsonl mmlu src/tiny_law_dev.csv --label professional --limit 3 --cue ''
case_ok bbh.jsonl bbh src/tiny_task.json
case_ok arc.jsonl arc src/ARC-Tiny-Test.jsonl
case_ok csqa.jsonl csqa src/csqa_tiny.jsonl
case_ok squad.jsonl squad src/squad_tiny.json
case_ok less.jsonl less src/pool.jsonl

# A directory stands for its files of the format's extension in name order.
"$CAPHEADS" prepare mmlu src --output "$T/dir.jsonl" >/dev/null 2>&1 || fail "mmlu on a directory failed"
$CHECK mmlu "$T/dir.jsonl" src >/dev/null || fail "mmlu on a directory: checker disagrees"
[ "$(wc -l <"$T/dir.jsonl")" = 5 ] || fail "mmlu on a directory: expected 5 records"

# (LESS: prepare_check.py asserts that meta offset/bytes give back each original line exactly.)

# ---- the real datasets, where the checkout has them (skipped in CI otherwise) ---------------
D=$SRC/data/demo
if [ -d "$D/mmlu/data/val" ]; then
  # real_case FORMAT SRC... : the binary and the checker agree on a real dataset sample
  real_case() {
    local fmt=$1; shift
    "$CAPHEADS" prepare "$fmt" "$@" --output "$T/real.jsonl" --force >/dev/null 2>"$T/err" || { fail "real $fmt $*: $(cat "$T/err")"; return; }
    $CHECK "$fmt" "$T/real.jsonl" "$@" >"$T/clog" || fail "real $fmt $*: $(cat "$T/clog")"
  }
  real_case mmlu "$D/mmlu/data/dev" "$D/mmlu/data/val"
  real_case gsm8k "$D/gsm8k/test.jsonl"
  real_case bbh "$D/bbh/bbh"
  real_case arc "$D/arc"
  real_case csqa "$D/csqa"
  real_case squad "$D/squad"
  real_case less "$D/less"
fi

# the demo corpora script (what the demo runs) works and gives balanced, complete files
if [ -d "$D/less" ]; then
  CAPHEADS=$CAPHEADS bash "$SRC/scripts/make-demo-data.sh" "$T/demo" >"$T/log" 2>&1 || fail "make-demo-data.sh: $(cat "$T/log")"
  for f in probeset:300 tasks:149 pool:300; do
    n=$(wc -l <"$T/demo/${f%%:*}.jsonl" 2>/dev/null)
    [ "$n" = "${f##*:}" ] || fail "make-demo-data.sh: ${f%%:*}.jsonl has $n records, expected ${f##*:}"
  done
  (cd "$SRC" && $CHECK probeset "$T/demo/probeset.jsonl" math="$T/demo/parts/math.jsonl" reading="$T/demo/parts/reading.jsonl" \
     commonsense="$T/demo/parts/commonsense.jsonl" science="$T/demo/parts/science.jsonl" \
     professional="$T/demo/parts/professional.jsonl" --seed 1 >"$T/clog") || fail "demo probeset: $(cat "$T/clog")"
fi

# ---- bad input: message names file and place, exit != 0, no output -------------------------
# bad EXPECTED-SUBSTRING FORMAT ARGS...
bad() {
  local want=$1 fmt=$2; shift 2
  echo previous >"$T/keep.jsonl"
  "$CAPHEADS" prepare "$fmt" "$@" --output "$T/keep.jsonl" --force >"$T/out" 2>"$T/err"
  local rc=$?
  [ $rc -ne 0 ] || fail "$fmt $*: exit 0 on bad input"
  grep -qF -- "$want" "$T/err" || fail "$fmt $*: message lacks '$want': $(cat "$T/err")"
  [ "$(cat "$T/keep.jsonl")" = previous ] || fail "$fmt $*: a failed run replaced the output"
  ls "$T"/keep.jsonl.tmp.* >/dev/null 2>&1 && fail "$fmt $*: temporary file left behind"
  grep -qi "sanitizer\|Segmentation" "$T/err" && fail "$fmt $*: crashed"
}
bad "bad/malformed.jsonl:2: malformed JSON" gsm8k bad/malformed.jsonl
bad "bad/missing_question.jsonl:3: missing 'question'" gsm8k bad/missing_question.jsonl
bad "bad/not_string.jsonl:1: 'question' is not a string" gsm8k bad/not_string.jsonl
bad "bad/trailing.jsonl:1: unexpected text after the JSON value" gsm8k bad/trailing.jsonl
bad "bad/bad_utf8.jsonl:2: invalid UTF-8" gsm8k bad/bad_utf8.jsonl
bad "bad/wrongcols_dev.csv:2: expected 6 columns (question,A,B,C,D,answer), found 5" mmlu bad/wrongcols_dev.csv
bad "bad/badanswer_dev.csv:2: answer 'E' is not one of A, B, C, D" mmlu bad/badanswer_dev.csv
bad "bad/unterminated_dev.csv:2: quoted field opened on this line is never closed" mmlu bad/unterminated_dev.csv
bad "bad/missing_target.json: examples[1]: missing 'target'" bbh bad/missing_target.json
bad "bad/badrole.jsonl:1: messages[1]: role 'bot' is not user, assistant or system" less bad/badrole.jsonl
bad "bad/squad_noctx.json: data[0].paragraphs[0]: missing 'context'" squad bad/squad_noctx.json
bad "bad/arc_badkey.jsonl:1: answerKey 'C' is not one of the choice labels" arc bad/arc_badkey.jsonl
bad "nosuch.jsonl: No such file or directory" gsm8k nosuch.jsonl
bad "unknown format 'race' (known: gsm8k, mmlu, bbh, arc, csqa, squad, less, probeset)" race src/test.jsonl
bad "--label 'maths' is not a capability" gsm8k src/test.jsonl --label maths
bad "duplicate id 'gsm8k/test/0'" gsm8k src/test.jsonl src/test.jsonl
bad "--cue does not apply to the less format" less src/pool.jsonl --cue x
bad "--limit expects a non-negative integer, got 'many'" gsm8k src/test.jsonl --limit many
bad "unknown option '--frobnicate'" gsm8k src/test.jsonl --frobnicate
"$CAPHEADS" prepare gsm8k src/test.jsonl >/dev/null 2>"$T/err" && fail "missing --output accepted"
grep -qF "missing --output FILE" "$T/err" || fail "missing --output: $(cat "$T/err")"

# ---- probeset ---------------------------------------------------------------------------------
P=(math=expected/gsm8k.jsonl reading=expected/squad.jsonl commonsense=expected/csqa.jsonl
   science=expected/arc.jsonl professional=expected/mmlu_prof.jsonl)
probe() { "$CAPHEADS" prepare probeset "$@" >/dev/null 2>"$T/err" || fail "probeset $*: $(cat "$T/err")"; }
probe "${P[@]}" --seed 1 --output "$T/p1.jsonl"
probe "${P[@]}" --seed 1 --output "$T/p1b.jsonl"
probe "${P[@]}" --seed 2 --output "$T/p2.jsonl"
probe "${P[4]}" "${P[2]}" "${P[0]}" "${P[3]}" "${P[1]}" --seed 1 --output "$T/p1r.jsonl"
cmp -s "$T/p1.jsonl" "$T/p1b.jsonl" || fail "probeset: same seed, different files"
cmp -s "$T/p1.jsonl" "$T/p1r.jsonl" || fail "probeset: depends on the order of the CAP=FILE arguments"
cmp -s "$T/p1.jsonl" "$T/p2.jsonl" && fail "probeset: seeds 1 and 2 give the same file"
for s in 1 2; do
  $CHECK probeset "$T/p$s.jsonl" "${P[@]}" --seed $s >"$T/clog" || fail "probeset seed $s: $(cat "$T/clog")"
done
# balanced: the smallest class (csqa, 2 records) sets the count; every label appears equally
counts=$(/usr/bin/python3 -c 'import json,sys,collections
c=collections.Counter(json.loads(l)["label"] for l in open(sys.argv[1])); print(sorted(c.items()))' "$T/p1.jsonl")
[ "$counts" = "[('commonsense', 2), ('math', 2), ('professional', 2), ('reading', 2), ('science', 2)]" ] ||
  fail "probeset not balanced: $counts"
grep -q '"split"' "$T/p1.jsonl" && fail "probeset must not carry a split (derived later from the id)"
probe "${P[@]:0:2}" --per-class 3 --seed 7 --output "$T/p3.jsonl"
$CHECK probeset "$T/p3.jsonl" "${P[@]:0:2}" --seed 7 --per-class 3 >"$T/clog" || fail "probeset --per-class 3: $(cat "$T/clog")"
[ "$(wc -l <"$T/p3.jsonl")" = 6 ] || fail "probeset --per-class 3 over 2 classes: expected 6 records"
bad "--per-class 3 but class commonsense has only 2 records" probeset "${P[@]}" --per-class 3
bad "record carries another label than the class it is given for" probeset math=expected/mmlu_prof.jsonl reading=expected/squad.jsonl
bad "'chemistry' is not a capability" probeset chemistry=expected/gsm8k.jsonl math=expected/gsm8k.jsonl
bad "expected CAP=FILE" probeset expected/gsm8k.jsonl

# ---- under mpirun: rank 0 converts, the others agree on the outcome --------------------------
if [ -n "${MPIEXEC:-}" ]; then
  "$MPIEXEC" -n 2 --oversubscribe "$CAPHEADS" prepare arc src/ARC-Tiny-Test.jsonl --output "$T/mpi.jsonl" >"$T/out" 2>&1 ||
    fail "prepare under mpirun -n 2: $(cat "$T/out")"
  cmp -s "$T/mpi.jsonl" expected/arc.jsonl || fail "prepare under mpirun -n 2: output differs"
  [ "$(grep -c '^prepare arc:' "$T/out")" = 1 ] || fail "prepare under mpirun -n 2: summary not printed once"
  "$MPIEXEC" -n 2 --oversubscribe "$CAPHEADS" prepare gsm8k bad/malformed.jsonl --output "$T/mpi2.jsonl" >"$T/out" 2>&1 &&
    fail "prepare under mpirun -n 2: bad input accepted"
  grep -qF "bad/malformed.jsonl:2: malformed JSON" "$T/out" || fail "mpirun -n 2 bad input: $(cat "$T/out")"
fi

# ---- --help tells the truth: every format it lists is accepted ------------------------------
"$CAPHEADS" prepare --help >"$T/help" || fail "--help exit status"
for f in gsm8k mmlu bbh arc csqa squad less probeset; do
  grep -q "^  $f " "$T/help" || fail "--help does not list $f"
done
grep -q -- "--per-class" "$T/help" && grep -q -- "--limit" "$T/help" || fail "--help lacks options"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "test_prepare: all passed"
