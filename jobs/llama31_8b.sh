#!/usr/bin/env bash
# The paper's Llama-3.1-8B run: probe the five capabilities, map the heads, decompose the 57 MMLU
# subjects and 27 BBH tasks, select 5% of the LESS pool per task.
#
# Inputs
#   MODEL   meta-llama/Llama-3.1-8B as downloaded from Hugging Face (config.json, 4 safetensors
#           shards + model.safetensors.index.json, tokenizer.json); put it on the parallel FS
#   corpora/probeset.jsonl, corpora/tasks/{mmlu,bbh}.jsonl, corpora/pool.jsonl
#           made by jobs/paper_prepare.txt (pass PREPARE=1 to run that first)
# Defaults  probe chooses lambda and k on validation and reports the test split; every set is
#           rendered by extract's default rule; a record over 8192 tokens keeps its last 8192
# Output    $OUT: archives (probeset ~2.6 GB for 10K prompts, pool ~71 GB for 270K samples),
#           probes.h5 + heatmaps, mix/ per task, selected/<task>.jsonl and
#           selected/benchmark/{mmlu,bbh}.jsonl (5% each; the benchmark sets are LESS's)
# Resources 4 nodes x 4 GPUs for extraction (one rank per GPU), ~12 h limit with requeue/resume.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-/pfs/models/Llama-3.1-8B}
OUT=${OUT:-/pfs/$USER/capheads/llama31_8b}
extra=()
[ "${PREPARE:-0}" = 1 ] && extra+=(--prepare jobs/paper_prepare.txt)
exec slurm/submit_pipeline.sh --model "$MODEL" --probeset corpora/probeset.jsonl --pool corpora/pool.jsonl \
  --tasks corpora/tasks/mmlu.jsonl,corpora/tasks/bbh.jsonl --out "$OUT" \
  --nodes "${NODES:-4}" --ranks-per-node "${GPUS_PER_NODE:-4}" --gpus-per-node "${GPUS_PER_NODE:-4}" \
  --fraction 0.05 --method capability --pool-mode last --batch-tokens 16384 \
  --extract-args "--truncate left" \
  --time-extract "${TIME_EXTRACT:-12:00:00}" ${PARTITION:+--partition "$PARTITION"} "${extra[@]}" "$@"
