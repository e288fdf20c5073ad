#!/usr/bin/env bash
# Regenerate the prepared demo corpora from data/demo with `capheads prepare`:
#   OUTDIR/probeset.jsonl  the balanced five-capability probing set (60 per class, seed 1)
#   OUTDIR/tasks.jsonl     target-task examples: 3 MMLU subjects (their 5 dev questions each) and
#                          4 BBH tasks (their 3 chain-of-thought exemplars each)
#   OUTDIR/pool.jsonl      the LESS-style instruction pool (messages; meta maps back to the lines)
# usage: scripts/make-demo-data.sh [OUTDIR]        (default build/demo)
#   CAPHEADS=path/to/capheads overrides the binary (default build/capheads)
#
# No evaluation split is read (MMLU test, BBH's evaluation examples): the targets are the few-shot
# data the benchmarks ship, the professional class is MMLU dev+val of subjects that are no target
# here. probeset draws each class as a seeded random sample and renders every record with one
# template ("[passage]Question: ...\nAnswer:", no option lines), so no class is told by its layout.
# Every probing and task text ends with the same cue line "Answer:", so the last-token activation
# the probes read is taken at the same kind of position for every class and task.
set -euo pipefail
cd "$(dirname "$0")/.."                       # paths in ids/meta stay relative to the checkout
OUT=${1:-build/demo}
CAPHEADS=${CAPHEADS:-build/capheads}
[ -x "$CAPHEADS" ] || { echo "make-demo-data: no capheads binary at $CAPHEADS (build first)" >&2; exit 1; }
D=data/demo
P=$OUT/parts
mkdir -p "$P"
# --force: this script regenerates its outputs (prepare refuses to replace a file otherwise)
prep() { "$CAPHEADS" prepare "$@" --force; }

# probing set: one prepared file per capability
prep gsm8k "$D/gsm8k/test.jsonl" --output "$P/math.jsonl"
prep squad "$D/squad" --output "$P/reading.jsonl"
prep csqa "$D/csqa" --output "$P/commonsense.jsonl"
prep arc "$D/arc" --output "$P/science.jsonl"
prof=()
for s in professional_medicine professional_accounting college_medicine; do
  prof+=("$D/mmlu/data/dev/${s}_dev.csv" "$D/mmlu/data/val/${s}_val.csv")
done
prep mmlu "${prof[@]}" --label professional --output "$P/professional.jsonl"
prep probeset math="$P/math.jsonl" reading="$P/reading.jsonl" commonsense="$P/commonsense.jsonl" \
  science="$P/science.jsonl" professional="$P/professional.jsonl" --seed 1 --output "$OUT/probeset.jsonl"

# target tasks: MMLU subjects outside the probing set (dev), and BBH tasks (cot-prompts exemplars)
tasks=()
for s in high_school_physics abstract_algebra high_school_world_history; do
  tasks+=("$D/mmlu/data/dev/${s}_dev.csv")
done
prep mmlu "${tasks[@]}" --output "$P/tasks_mmlu.jsonl"
prep bbh-cot "$D/bbh/cot-prompts" --output "$P/tasks_bbh.jsonl"
cat "$P/tasks_mmlu.jsonl" "$P/tasks_bbh.jsonl" >"$OUT/tasks.jsonl.tmp"
mv "$OUT/tasks.jsonl.tmp" "$OUT/tasks.jsonl"   # never leave half a file under the final name

# the instruction pool
prep less "$D/less/pool.jsonl" --output "$OUT/pool.jsonl"
echo "make-demo-data: $(wc -l <"$OUT/probeset.jsonl") probing, $(wc -l <"$OUT/tasks.jsonl") task," \
     "$(wc -l <"$OUT/pool.jsonl") pool records in $OUT"
