#!/usr/bin/env bash
# The whole pipeline on the embedded demo: a tiny random Llama-3.1-style model with the real
# Llama 3.1 tokenizer, small real samples of GSM8K / MMLU / BBH and hand-made samples of the
# other probing sets and of a LESS-style pool (data/demo/*/SOURCE.txt says which is which).
#   prepare -> extract (probing set, tasks, pool) -> probe -> decompose -> select
# Usage: bash scripts/demo.sh [OUTDIR]     (default demo-out/; RANKS=N for the MPI rank count)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
RANKS=${RANKS:-2}
bash scripts/install-deps.sh
echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPI=(mpirun -n "$RANKS" --oversubscribe)
# every stage runs with --force: the demo regenerates its outputs each time (a stage refuses to
# replace an existing output unless asked)
CH=build/capheads

echo "== prepare (data/demo -> $OUT/data)"
mkdir -p "$OUT"
CAPHEADS=$CH bash scripts/make-demo-data.sh "$OUT/data" >/dev/null

# the model directory as Hugging Face ships it: weights + config + tokenizer files
MODEL=$OUT/model
mkdir -p "$MODEL"
cp data/demo/model/config.json data/demo/model/model.safetensors "$MODEL/"
gzip -dc tests/data/tokenizers/llama3_1/tokenizer.json.gz >"$MODEL/tokenizer.json"
gzip -dc tests/data/tokenizers/llama3_1/tokenizer_config.json.gz >"$MODEL/tokenizer_config.json"

echo "== extract ($RANKS ranks)"
for set in probeset tasks pool; do
  "${MPI[@]}" $CH extract --model "$MODEL" --input "$OUT/data/$set.jsonl" --output "$OUT/$set.h5" --hidden --force
done
echo "== probe"
"${MPI[@]}" $CH probe --input "$OUT/probeset.h5" --output "$OUT/probes.h5" --heatmap "$OUT/heatmaps" --force
echo "== decompose"
"${MPI[@]}" $CH decompose --probes "$OUT/probes.h5" --input "$OUT/tasks.h5" --output "$OUT/mix" --force
echo "== select"
"${MPI[@]}" $CH select --probes "$OUT/probes.h5" --mix "$OUT/mix" --input "$OUT/pool.h5" \
  --pool "$OUT/data/pool.jsonl" --fraction 0.05 --output "$OUT/selected" --force

cat <<MSG

Demo finished. Outputs:
  activation archives   $OUT/probeset.h5 $OUT/tasks.h5 $OUT/pool.h5   (capheads inspect FILE)
  probes and head map   $OUT/probes.h5                                (capheads inspect $OUT/probes.h5)
  heatmaps (SVG + CSV)  $OUT/heatmaps/
  capability mixes      $OUT/mix/mix.csv  $OUT/mix/mix.svg
  selected pool data    $OUT/selected/*.jsonl  (scores: $OUT/selected/scores.h5)
MSG
