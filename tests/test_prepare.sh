#!/usr/bin/env bash
# test_prepare.sh - `capheads prepare` on every format: output equals the committed expected JSONL
# byte for byte, and the expected files equal what tests/prepare_check.py re-derives from the
# sources with Python's own json/csv parsers (so neither can drift alone). Bad input fails with
# a message naming file and place, a non-zero exit, and no output file. The probing set is
# balanced, seeded, independent of the order of its inputs, and rendered with one template for every
# class. No evaluation split is taken without --allow-eval-split; --limit is a seeded sample;
# --match-length gives every class the same length distribution.
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
case_ok gsm8k_cue.jsonl gsm8k src/test.jsonl --cue '' --limit 2 --seed 5 --task demo/math
case_ok mmlu.jsonl mmlu src/tiny_law_dev.csv src/physics_val.csv
case_ok mmlu_prof.jsonl mmlu src/tiny_law_dev.csv --label professional --limit 3 --cue ''
case_ok mmlu_eval.jsonl mmlu src/eval --allow-eval-split
case_ok bbh.jsonl bbh src/tiny_task.json --allow-eval-split
case_ok bbh_cot.jsonl bbh-cot src/cot
case_ok arc.jsonl arc src/ARC-Tiny-Test.jsonl
case_ok arc_hf.jsonl arc-hf src/arc_hf.jsonl
case_ok csqa.jsonl csqa src/csqa_tiny.jsonl
case_ok csqa_hf.jsonl csqa src/csqa_hf.jsonl
case_ok squad.jsonl squad src/squad_tiny.json
case_ok less.jsonl less src/pool.jsonl
case_ok race.jsonl race src/race/high src/race/middle src/race_rows.jsonl
case_ok cosmosqa.jsonl cosmosqa src/cosmos/cosmos_tiny.csv src/cosmos/cosmos_rows.jsonl
case_ok sciq.jsonl sciq src/sciq_tiny.json
case_ok hellaswag.jsonl hellaswag src/hellaswag_tiny.jsonl
case_ok medqa.jsonl medqa src/medqa_tiny.jsonl
# the Hugging Face layouts are the same records as AI2's: arc-hf is the arc reader
"$CAPHEADS" prepare arc src/arc_hf.jsonl --output "$T/arc_auto.jsonl" >/dev/null 2>&1 &&
  cmp -s "$T/arc_auto.jsonl" expected/arc_hf.jsonl || fail "arc does not detect the Hugging Face layout like arc-hf"
# RACE's high/1.txt and middle/1.txt: ids from the article ids, so both are kept
grep -q '"id":"race/high1/1"' expected/race.jsonl && grep -q '"id":"race/middle1/0"' expected/race.jsonl ||
  fail "race: ids not named after the articles"

# ---- evaluation splits: refused (exit 2, file and benchmark named), taken and marked when allowed ----
eval_refused() { # eval_refused BENCHMARK FILE-IN-MESSAGE N-MARKED FORMAT SRC...
  local bench=$1 file=$2 nmark=$3 fmt=$4; shift 4
  "$CAPHEADS" prepare "$fmt" "$@" --output "$T/eval.jsonl" --force >"$T/out" 2>"$T/err"
  local rc=$?
  [ $rc -eq 2 ] || fail "$fmt $*: an evaluation split gave exit $rc, expected 2"
  grep -qF "$file" "$T/err" && grep -qF "contaminate the $bench evaluation" "$T/err" ||
    fail "$fmt $*: refusal does not name $file and $bench: $(cat "$T/err")"
  [ -e "$T/eval.jsonl" ] && fail "$fmt $*: refused run wrote its output"
  "$CAPHEADS" prepare "$fmt" "$@" --allow-eval-split --output "$T/eval.jsonl" --force >"$T/out" 2>"$T/err" ||
    fail "$fmt $* --allow-eval-split: $(cat "$T/err")"
  grep -qF "contaminates: $bench" "$T/err" || fail "$fmt $* --allow-eval-split: stderr lacks 'contaminates: $bench'"
  /usr/bin/python3 -c 'import json,sys
r=[json.loads(l) for l in open(sys.argv[1])]
m=[x for x in r if x["meta"].get("eval_split")==sys.argv[2]]
sys.exit(len(m)!=int(sys.argv[3]) or any("eval_split" in x["meta"] and x not in m for x in r))' \
    "$T/eval.jsonl" "$bench" "$nmark" || fail "$fmt $*: not exactly $nmark records with meta.eval_split=$bench"
  rm -f "$T/eval.jsonl"
}
eval_refused MMLU src/eval/tiny_law_test.csv 2 mmlu src/eval/tiny_law_test.csv
eval_refused MMLU src/eval/test/astronomy.csv 1 mmlu src/eval/test/astronomy.csv
eval_refused MMLU src/eval/tiny_law_test.csv 2 mmlu src/tiny_law_dev.csv src/eval   # one bad file among others
eval_refused BBH src/tiny_task.json 3 bbh src/tiny_task.json
# dev and val are no evaluation split: taken, unmarked
grep -q eval_split expected/mmlu.jsonl expected/bbh_cot.jsonl && fail "dev/val or cot exemplars marked as evaluation data"

# ---- --limit: a seeded sample over the whole file, not its head --------------------------------
G=$SRC/data/demo/gsm8k/test.jsonl   # 100 real GSM8K questions (committed)
if [ -f "$G" ]; then
  "$CAPHEADS" prepare gsm8k "$G" --output "$T/all.jsonl" >/dev/null 2>&1 || fail "gsm8k demo file"
  for s in 1 2; do
    "$CAPHEADS" prepare gsm8k "$G" --limit 10 --seed $s --output "$T/lim$s.jsonl" >/dev/null 2>&1 || fail "--limit 10 --seed $s"
    $CHECK gsm8k "$T/lim$s.jsonl" "$G" --limit 10 --seed $s >"$T/clog" || fail "--limit seed $s: $(cat "$T/clog")"
  done
  cmp -s "$T/lim1.jsonl" "$T/lim2.jsonl" && fail "--limit: seeds 1 and 2 draw the same sample"
  /usr/bin/python3 - "$T/all.jsonl" "$T/lim1.jsonl" <<'PY' || fail "--limit: not a spread-out subset of the full conversion"
import json, sys
full = open(sys.argv[1]).read().splitlines()
lim = open(sys.argv[2]).read().splitlines()
assert len(lim) == 10 and set(lim) <= set(full), "a sample must be records of the full output, unchanged"
idx = [int(json.loads(l)["id"].rsplit("/", 1)[1]) for l in lim]
assert idx == sorted(idx), "kept in file order"
assert idx != list(range(10)) and max(idx) >= 50, "the head of the file, not a sample: %s" % idx
PY
fi

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
  real_case bbh "$D/bbh/bbh" --allow-eval-split
  real_case bbh-cot "$D/bbh/cot-prompts"
  # every exemplar's answer is in the target vocabulary of its task's evaluation examples
  /usr/bin/python3 - "$T/real.jsonl" "$D/bbh/bbh" <<'PY' || fail "bbh-cot: an exemplar answer outside its task's targets"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 12, len(recs)
for r in recs:
    task = r["task"].split("/", 1)[1]
    targets = {e["target"] for e in json.load(open("%s/%s.json" % (sys.argv[2], task)))["examples"]}
    assert r["meta"]["answer"] in targets, (r["id"], r["meta"]["answer"], sorted(targets)[:8])
    assert r["text"] == r["meta"]["question"] + "\nAnswer:", r["id"]
PY
  real_case arc "$D/arc"
  real_case csqa "$D/csqa"
  real_case squad "$D/squad"
  real_case less "$D/less"
fi
# the probing sources of ../shared/data (the real files; absent in CI)
R=${CH_SHARED_DATA:-$SRC/../shared/data}
if [ -d "$R/sciq" ]; then
  real_case arc "$R/arc/ARC-Easy/ARC-Easy-Train.jsonl" "$R/arc/ARC-Challenge/ARC-Challenge-Train.jsonl"
  real_case sciq "$R/sciq/test.json" "$R/sciq/valid.json"
  real_case csqa "$R/commonsenseqa/train_rand_split.jsonl" "$R/commonsenseqa/test_rand_split_no_answers.jsonl"
  real_case cosmosqa "$R/cosmosqa/valid.csv" --limit 500 --seed 3
  real_case bbh-cot "$R/bbh/cot-prompts"
  [ "$(wc -l <"$T/real.jsonl")" = 81 ] || fail "bbh-cot: 27 tasks x 3 exemplars expected"
  # SciQ's correct answer is spread over the four letters, fixed by the id
  "$CAPHEADS" prepare sciq "$R/sciq/test.json" --output "$T/sciq.jsonl" --force >/dev/null 2>&1
  /usr/bin/python3 -c 'import json,sys,collections
c=collections.Counter(json.loads(l)["meta"]["answer"] for l in open(sys.argv[1]))
sys.exit(not (sorted(c)==list("ABCD") and min(c.values())>150))' "$T/sciq.jsonl" || fail "sciq: answer letters not spread"
fi

# the demo corpora script (what the demo runs) works and gives balanced, complete files
if [ -d "$D/less" ]; then
  CAPHEADS=$CAPHEADS bash "$SRC/scripts/make-demo-data.sh" "$T/demo" >"$T/log" 2>&1 || fail "make-demo-data.sh: $(cat "$T/log")"
  for f in probeset:300 tasks:27 pool:300; do
    n=$(wc -l <"$T/demo/${f%%:*}.jsonl" 2>/dev/null)
    [ "$n" = "${f##*:}" ] || fail "make-demo-data.sh: ${f%%:*}.jsonl has $n records, expected ${f##*:}"
  done
  (cd "$SRC" && $CHECK probeset "$T/demo/probeset.jsonl" math="$T/demo/parts/math.jsonl" reading="$T/demo/parts/reading.jsonl" \
     commonsense="$T/demo/parts/commonsense.jsonl" science="$T/demo/parts/science.jsonl" \
     professional="$T/demo/parts/professional.jsonl" --seed 1 >"$T/clog") || fail "demo probeset: $(cat "$T/clog")"
fi

# ---- jobs/paper_prepare.txt follows the defaults: no evaluation split, every class a sample ----
J=$SRC/jobs/paper_prepare.txt
grep -v '^#' "$J" | grep -qE '_test\.csv|/test( |/|$)|bbh/bbh|allow-eval-split' && fail "paper_prepare.txt takes an evaluation split"
grep -v '^#' "$J" | grep -E '^(gsm8k|squad|csqa|medqa) ' | grep -qv -- '--limit [0-9]* --seed' &&
  fail "paper_prepare.txt: a large probing source is not drawn as a seeded sample"
if [ -d "$R/mmlu/data/dev" ]; then # its target lines, run on the real MMLU and BBH files
  while read -r -a l; do
    l=("${l[@]/#data\//$R/}"); l=("${l[@]/#corpora\//$T/corpora/}")
    mkdir -p "$T/corpora/tasks"
    "$CAPHEADS" prepare "${l[@]}" >/dev/null 2>"$T/err" || fail "paper_prepare.txt: ${l[*]}: $(cat "$T/err")"
  done < <(grep -E '^(mmlu|bbh-cot) ' "$J")
  [ "$(wc -l <"$T/corpora/tasks/bbh.jsonl")" = 81 ] && [ "$(wc -l <"$T/corpora/tasks/mmlu.jsonl")" = 285 ] ||
    fail "paper_prepare.txt targets: expected 27 x 3 BBH exemplars and 57 x 5 MMLU dev questions"
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
bad "bad/missing_target.json: examples[1]: missing 'target'" bbh bad/missing_target.json --allow-eval-split
bad "bad/badrole.jsonl:1: messages[1]: role 'bot' is not user, assistant or system" less bad/badrole.jsonl
bad "bad/squad_noctx.json: data[0].paragraphs[0]: missing 'context'" squad bad/squad_noctx.json
bad "bad/arc_badkey.jsonl:1: answerKey 'C' is not one of the choice labels" arc bad/arc_badkey.jsonl
bad "nosuch.jsonl: No such file or directory" gsm8k nosuch.jsonl
bad "unknown format 'racer' (known: gsm8k, mmlu, bbh, bbh-cot, arc, arc-hf, csqa, csqa-hf, squad, race, cosmosqa, sciq, hellaswag, medqa, less, probeset)" racer src/test.jsonl
bad "bad/cot_noanswer.txt:6: 'Q:' block without an 'A:' line" bbh-cot bad/cot_noanswer.txt
bad "bad/cot_nosay.txt:4: the answer does not say \"So the answer is ...\"" bbh-cot bad/cot_nosay.txt
bad "bad/cot_empty.txt: no exemplar (no line starts with 'Q: ')" bbh-cot bad/cot_empty.txt
bad "bad/race_counts.txt: 2 questions but 1 option lists and 2 answers" race bad/race_counts.txt
bad "bad/medqa_badidx.jsonl:1: answer_idx 'C' is not one of the option keys" medqa bad/medqa_badidx.jsonl
bad "bad/hellaswag_label.jsonl:2: 'label' is not the index of one of the 4 endings" hellaswag bad/hellaswag_label.jsonl
bad "bad/cosmos_nocol.csv:1: the header has no column 'answer3'" cosmosqa bad/cosmos_nocol.csv
bad "bad/arc_hf_counts.jsonl:1: 2 choice labels for 3 choice texts" arc bad/arc_hf_counts.jsonl
bad "--options applies to probeset only" gsm8k src/test.jsonl --options show
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

# one template for every class: text = [passage \n\n] Question: q \n Answer:, rebuilt from meta; no class
# shows option lines by default, whatever its source's text had
/usr/bin/python3 - "$T/p1.jsonl" <<'PY' || fail "probeset: texts do not follow the one template"
import json, re, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    m = r["meta"]
    want = (m["passage"] + "\n\n" if "passage" in m else "") + "Question: " + m["question"] + "\nAnswer:"
    assert r["text"] == want, r["id"]
    assert not re.search(r"\n[A-Z1-9]\. ", r["text"][len(m.get("passage", "")):]), "option lines in " + r["id"]
PY
# --options show: the choices shown the same way for every record; refused when a class has none
# (GSM8K) or when the counts differ (CommonsenseQA's 5 against 4), since either tells the class
Q=(reading=expected/race.jsonl science=expected/sciq.jsonl professional=expected/mmlu_prof.jsonl
   commonsense=expected/hellaswag.jsonl)
probe "${Q[@]}" --options show --seed 3 --output "$T/pshow.jsonl"
$CHECK probeset "$T/pshow.jsonl" "${Q[@]}" --options show --seed 3 >"$T/clog" || fail "probeset --options show: $(cat "$T/clog")"
grep -q '\\nD\. ' "$T/pshow.jsonl" || fail "probeset --options show: no option lines"
bad "--options show needs choices in every record" probeset "${Q[@]}" math=expected/gsm8k.jsonl --options show
bad "shown options need one count for every record" probeset "${Q[@]}" commonsense=expected/csqa.jsonl --options show
# --limit on probeset sources: each file's seeded sample
probe "${Q[@]}" --limit 1 --seed 4 --output "$T/plim.jsonl"
$CHECK probeset "$T/plim.jsonl" "${Q[@]}" --limit 1 --seed 4 >"$T/clog" || fail "probeset --limit 1: $(cat "$T/clog")"
# --match-length: per class the same count in each length bin, so the k-th shortest text of every class
# lies in one bin (< 1/8 apart); the demo's parts overlap in length only three classes at a time
# (GSM8K/SQuAD/MMLU-professional around 430-560 characters, CSQA/ARC/MMLU-professional under 100)
"$CAPHEADS" prepare gsm8k "$D/gsm8k/test.jsonl" --output "$T/lm_math.jsonl" >/dev/null 2>&1 &&
"$CAPHEADS" prepare squad "$D/squad" --output "$T/lm_reading.jsonl" >/dev/null 2>&1 &&
"$CAPHEADS" prepare csqa "$D/csqa" --output "$T/lm_commonsense.jsonl" >/dev/null 2>&1 &&
"$CAPHEADS" prepare arc "$D/arc" --output "$T/lm_science.jsonl" >/dev/null 2>&1 &&
"$CAPHEADS" prepare mmlu "$D/mmlu/data/dev/professional_medicine_dev.csv" "$D/mmlu/data/val/professional_medicine_val.csv" \
  "$D/mmlu/data/val/professional_accounting_val.csv" "$D/mmlu/data/val/college_medicine_val.csv" --label professional \
  --output "$T/lm_professional.jsonl" >/dev/null 2>&1 || fail "--match-length: preparing the demo parts failed"
L1=(math="$T/lm_math.jsonl" reading="$T/lm_reading.jsonl" professional="$T/lm_professional.jsonl")
L2=(commonsense="$T/lm_commonsense.jsonl" science="$T/lm_science.jsonl" professional="$T/lm_professional.jsonl")
lenmatched() { # FILE MAXRATIO: max/min over classes of the k-th shortest text, for every k
  /usr/bin/python3 - "$@" <<'PY'
import collections, json, sys
by = collections.defaultdict(list)
for l in open(sys.argv[1]):
    r = json.loads(l)
    by[r["label"]].append(len(r["text"]))
ls = [sorted(v) for v in by.values()]
assert len({len(v) for v in ls}) == 1, "classes of different sizes"
worst = max(max(k) / min(k) for k in zip(*ls))
sys.exit(0 if worst < float(sys.argv[2]) else 1)
PY
}
for s in 1 2; do
  "$CAPHEADS" prepare probeset "${L1[@]}" --match-length --seed $s --output "$T/lm$s.jsonl" >/dev/null 2>"$T/lmerr" ||
    fail "probeset --match-length: $(cat "$T/lmerr")"
  $CHECK probeset "$T/lm$s.jsonl" "${L1[@]}" --match-length --seed $s >"$T/clog" || fail "probeset --match-length seed $s: $(cat "$T/clog")"
  lenmatched "$T/lm$s.jsonl" 1.125 || fail "probeset --match-length seed $s: class lengths not matched"
done
grep -qE "^prepare probeset --match-length: reading +[0-9]+ of 60 kept, median length 484 -> [0-9]+ characters" "$T/lmerr" ||
  fail "probeset --match-length: no per-class report on stderr: $(cat "$T/lmerr")"
"$CAPHEADS" prepare probeset "${L1[2]}" "${L1[0]}" "${L1[1]}" --match-length --seed 2 --output "$T/lm2r.jsonl" >/dev/null 2>&1
cmp -s "$T/lm2.jsonl" "$T/lm2r.jsonl" || fail "probeset --match-length: depends on the order of the CAP=FILE arguments"
"$CAPHEADS" prepare probeset "${L1[@]}" --seed 1 --output "$T/lm_off.jsonl" >/dev/null 2>&1
lenmatched "$T/lm_off.jsonl" 2 && fail "probeset without --match-length: lengths matched already (the test above proves nothing)"
"$CAPHEADS" prepare probeset "${L2[@]}" --match-length --per-class 5 --seed 3 --output "$T/lm3.jsonl" >/dev/null 2>"$T/lmerr" ||
  fail "probeset --match-length --per-class 5: $(cat "$T/lmerr")"
$CHECK probeset "$T/lm3.jsonl" "${L2[@]}" --match-length --per-class 5 --seed 3 >"$T/clog" ||
  fail "probeset --match-length --per-class 5: $(cat "$T/clog")"
[ "$(wc -l <"$T/lm3.jsonl")" = 15 ] || fail "probeset --match-length --per-class 5 over 3 classes: expected 15 records"
lenmatched "$T/lm3.jsonl" 1.125 || fail "probeset --match-length --per-class 5: class lengths not matched"
bad "--per-class 50 but --match-length keeps only" probeset "${L2[@]}" --match-length --per-class 50
bad "no length bin holds records of every class" probeset "${L1[@]}" "${L2[0]}" --match-length
bad "--match-length applies to probeset only" gsm8k src/test.jsonl --match-length
# evaluation data stays out of the probing set unless allowed, and then is said
bad "record of an evaluation split (meta.eval_split): refused without --allow-eval-split" probeset \
  professional=expected/mmlu_eval.jsonl math=expected/gsm8k.jsonl
"$CAPHEADS" prepare probeset professional=expected/mmlu_eval.jsonl math=expected/gsm8k.jsonl --allow-eval-split \
  --output "$T/peval.jsonl" >/dev/null 2>"$T/err" || fail "probeset --allow-eval-split: $(cat "$T/err")"
grep -qF "contaminates" "$T/err" || fail "probeset --allow-eval-split: stderr does not say it contaminates"
bad "no meta.question to render the probing template from" probeset math=expected/less.jsonl reading=expected/squad.jsonl

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
for f in gsm8k mmlu bbh bbh-cot arc arc-hf csqa csqa-hf squad race cosmosqa sciq hellaswag medqa less probeset; do
  grep -q "^  $f " "$T/help" || fail "--help does not list $f"
done
grep -q -- "--per-class" "$T/help" && grep -q -- "--limit" "$T/help" || fail "--help lacks options"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "test_prepare: all passed"
