#!/usr/bin/env bash
# The embedded demo through Slurm (the same pipeline scripts/demo.sh runs directly): tiny random
# Llama-3.1-style model + real Llama 3.1 tokenizer, demo corpora made from data/demo.
# Inputs: data/demo (see data/demo/*/SOURCE.txt), built capheads in build/.
# Usage: jobs/demo.sh [OUT]   (needs a Slurm cluster: tests/slurm/cluster.sh up starts one locally)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-slurm}
mkdir -p "$OUT/model"
cp data/demo/model/config.json data/demo/model/model.safetensors "$OUT/model/"
gzip -dc tests/data/tokenizers/llama3_1/tokenizer.json.gz >"$OUT/model/tokenizer.json"
CAPHEADS=build/capheads bash scripts/make-demo-data.sh "$OUT/data" >/dev/null
exec slurm/submit_pipeline.sh --model "$OUT/model" --probeset "$OUT/data/probeset.jsonl" \
  --pool "$OUT/data/pool.jsonl" --tasks "$OUT/data/tasks.jsonl" --out "$OUT/run" \
  --nodes 1 --ranks-per-node 2 --fraction 0.05
