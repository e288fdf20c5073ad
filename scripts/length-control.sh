#!/usr/bin/env bash
# The length control of METHOD.md section 8: one probing set drawn as usual and one with
# `probeset --match-length`, the same count per class, both extracted with the demo model and
# probed; prints each set's format-only baseline and the per-class lengths kept.
# usage: scripts/length-control.sh DATA OUTDIR     (DATA: the folder of /work/shared/data's layout)
#   CAPHEADS=path/to/capheads overrides the binary (default build/capheads)
# Sources (no evaluation split): GSM8K train, Cosmos QA valid, CommonsenseQA train+dev, SciQ
# valid+test and ARC train+dev, MMLU dev+val of professional_* and two medical subjects.
set -euo pipefail
R=${1:?DATA folder}
OUT=${2:?OUTDIR}
cd "$(dirname "$0")/.."
CH=${CAPHEADS:-build/capheads}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
P=$OUT/parts
mkdir -p "$P"
prep() { "$CH" prepare "$@" --force >/dev/null; }
prep gsm8k "$R/gsm8k/train.jsonl" --output "$P/math.jsonl"
prep cosmosqa "$R/cosmosqa/valid.csv" --output "$P/reading.jsonl"
prep csqa "$R/commonsenseqa/train_rand_split.jsonl" "$R/commonsenseqa/dev_rand_split.jsonl" --output "$P/commonsense.jsonl"
prep sciq "$R/sciq/valid.json" "$R/sciq/test.json" --output "$P/sciq.jsonl"
prep arc "$R"/arc/ARC-*/ARC-*-Train.jsonl "$R"/arc/ARC-*/ARC-*-Dev.jsonl --output "$P/arc.jsonl"
pro=()
for s in professional_accounting professional_law professional_medicine professional_psychology college_medicine \
  clinical_knowledge; do
  pro+=("$R/mmlu/data/dev/${s}_dev.csv" "$R/mmlu/data/val/${s}_val.csv")
done
prep mmlu "${pro[@]}" --label professional --output "$P/professional.jsonl"
A=(math="$P/math.jsonl" reading="$P/reading.jsonl" commonsense="$P/commonsense.jsonl" science="$P/sciq.jsonl"
   science="$P/arc.jsonl" professional="$P/professional.jsonl")
"$CH" prepare probeset "${A[@]}" --match-length --seed 1 --output "$OUT/matched.jsonl" --force
n=$(($(wc -l <"$OUT/matched.jsonl") / 5))
"$CH" prepare probeset "${A[@]}" --per-class "$n" --seed 1 --output "$OUT/unmatched.jsonl" --force

MODEL=$OUT/model
mkdir -p "$MODEL"
cp data/demo/model/config.json data/demo/model/model.safetensors "$MODEL/"
gzip -dc tests/data/tokenizers/llama3_1/tokenizer.json.gz >"$MODEL/tokenizer.json"
gzip -dc tests/data/tokenizers/llama3_1/tokenizer_config.json.gz >"$MODEL/tokenizer_config.json"
for s in unmatched matched; do
  "$CH" extract --model "$MODEL" --input "$OUT/$s.jsonl" --output "$OUT/$s.h5" --hidden --force >/dev/null
  echo "== $s"
  "$CH" probe --input "$OUT/$s.h5" --output "$OUT/probes_$s.h5" --force 2>&1 | grep -E "^probe: (test|format)"
done
