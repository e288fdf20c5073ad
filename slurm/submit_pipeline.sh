#!/usr/bin/env bash
# slurm/submit_pipeline.sh - submit the whole capheads pipeline as chained Slurm jobs:
#
#   prepare ─┬─> extract probeset ──> probe ─┐
#            ├─> extract tasks[i] (array) ───┴─> decompose[i] (array) ─aftercorr─> select[i] (array)
#            └─> extract pool ─────────────────────────────────────────────────────┘
#
# Every edge is --dependency=afterok (a failed stage stops what depends on it); select[i] waits for
# decompose[i] only (aftercorr), so the tasks finish independently.  One array element per target task.
#
# usage: slurm/submit_pipeline.sh --model DIR --probeset P.jsonl --pool POOL.jsonl \
#          --tasks T1.jsonl[,T2.jsonl...] --out DIR [options]
#   --prepare FILE        first run slurm/prepare.sbatch --commands FILE (the corpora above may be
#                         its outputs: they need not exist at submit time)
#   --nodes N             nodes per extract job (default 1)
#   --ranks-per-node R    ranks per node for extract (default 1; = GPUs per node on GPU nodes)
#   --gpus-per-node G     request G GPUs per node for extract (default 0: CPU)
#   --top-k K --fraction F --method M --pool-mode last|mean --batch-tokens N   stage options
#   --partition P --account A --time-extract T    passed to sbatch
#   --sbatch-args "..."   more sbatch options for every job
#   --extract-args "..."  more `capheads extract` options (e.g. "--hidden" for select --method rds)
#   --prepare-args "..." --probe-args "..." --decompose-args "..." --select-args "..."
#                         the same for the other stages (e.g. --probe-args "--lambda 0.01",
#                         --select-args "--score cosine"); prepare's go to every --prepare command.
#                         Words split on blanks, no quoting (options the template itself knows,
#                         like --tasks for select, are its parameters and get {item} replaced)
#   --dry-run             print the sbatch commands instead of submitting
# Every option can also be given as an environment variable: --ranks-per-node -> CH_RANKS_PER_NODE.
# Prints one line per job: "stage jobid"; the job ids are also written to OUT/jobs.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CH_SLURM_DIR=$here

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
opts="model probeset pool tasks out prepare nodes ranks_per_node gpus_per_node top_k fraction method
      pool_mode batch_tokens partition account time_extract sbatch_args extract_args prepare_args
      probe_args decompose_args select_args dry_run"
for o in $opts; do v=CH_$(echo "$o" | tr '[:lower:]' '[:upper:]'); eval "$v=\${$v:-}"; done
while [ $# -gt 0 ]; do
  o=${1#--}; o=${o//-/_}
  case " $(echo $opts) " in *" $o "*) ;; *) echo "submit_pipeline: unknown option $1" >&2; usage ;; esac
  v=CH_$(echo "$o" | tr '[:lower:]' '[:upper:]')
  if [ "$o" = dry_run ]; then CH_DRY_RUN=1; shift; continue; fi
  [ $# -ge 2 ] || { echo "submit_pipeline: $1 needs a value" >&2; exit 2; }
  printf -v "$v" '%s' "$2"; shift 2
done
for v in CH_MODEL CH_PROBESET CH_POOL CH_TASKS CH_OUT; do
  [ -n "${!v}" ] || { echo "submit_pipeline: missing --$(echo "${v#CH_}" | tr '[:upper:]_' '[:lower:]-')" >&2; usage; }
done
# the per-stage parameters below are passed on the command line; clear the environment copies the
# templates would otherwise also read (CH_POOL means different things to the two)
unset CH_INPUT CH_OUTPUT CH_LIST
for o in $opts; do export -n "CH_$(echo "$o" | tr '[:lower:]' '[:upper:]')"; done

out=$CH_OUT
mkdir -p "$out"/{logs,archives/tasks,mix,selected}
out=$(cd "$out" && pwd)

# the task list: one line "ITEM PATH" per target-task corpus, ITEM = file name without .jsonl
list=$out/tasks.list
: >"$list"
IFS=, read -ra task_files <<<"$CH_TASKS"
for t in "${task_files[@]}"; do
  item=$(basename "$t" .jsonl)
  case $t in /*) ;; *) t=$PWD/$t ;; esac
  echo "$item $t" >>"$list"
done
ntasks=${#task_files[@]}
[ "$ntasks" -gt 0 ] || { echo "submit_pipeline: --tasks is empty" >&2; exit 2; }
last=$((ntasks - 1))

common=(--parsable --export=ALL)
[ -n "$CH_PARTITION" ] && common+=(--partition="$CH_PARTITION")
[ -n "$CH_ACCOUNT" ] && common+=(--account="$CH_ACCOUNT")
# shellcheck disable=SC2206
[ -n "$CH_SBATCH_ARGS" ] && common+=($CH_SBATCH_ARGS)
ext=(--nodes="${CH_NODES:-1}" --ntasks-per-node="${CH_RANKS_PER_NODE:-1}")
[ "${CH_GPUS_PER_NODE:-0}" -gt 0 ] && ext+=(--gpus-per-node="$CH_GPUS_PER_NODE")
[ -n "$CH_TIME_EXTRACT" ] && ext+=(--time="$CH_TIME_EXTRACT")
xopt=()
[ -n "$CH_POOL_MODE" ] && xopt+=(--pool "$CH_POOL_MODE")
[ -n "$CH_BATCH_TOKENS" ] && xopt+=(--batch-tokens "$CH_BATCH_TOKENS")
# shellcheck disable=SC2206
[ -n "$CH_EXTRACT_ARGS" ] && xopt+=($CH_EXTRACT_ARGS)
# more options per stage: the templates pass options they do not know on to the stage
# shellcheck disable=SC2206
prepopt=($CH_PREPARE_ARGS) popt=($CH_PROBE_ARGS) dopt=($CH_DECOMPOSE_ARGS) sopt=($CH_SELECT_ARGS)

: >"$out/jobs.txt"
n_dry=0
# submit NAME DEPENDENCY SBATCH-ARGS... -- TEMPLATE ARGS...   -> prints the job id
submit() {
  local name=$1 dep=$2 id log
  log="$out/logs/$name-%j.out"
  shift 2
  case " $* " in *" --array="*) log="$out/logs/$name-%A_%a.out" ;; esac
  local cmd=(sbatch "${common[@]}" --job-name="ch-$name" -o "$log")
  [ -n "$dep" ] && cmd+=(--dependency="$dep")
  cmd+=("$@")
  if [ -n "$CH_DRY_RUN" ]; then
    n_dry=$((n_dry + 1)); id=DRY$n_dry
    printf '%q ' "${cmd[@]}" >&2; echo >&2
  else
    id=$("${cmd[@]}") || { echo "submit_pipeline: sbatch failed for $name" >&2; exit 1; }
    id=${id%%;*}
  fi
  echo "$name $id" >>"$out/jobs.txt"
  echo "$name $id" >&2
  SUBMITTED=$id
}

dep0=""
if [ -n "$CH_PREPARE" ]; then
  submit prepare "" "$here/prepare.sbatch" --commands "$CH_PREPARE" "${prepopt[@]}"
  dep0=afterok:$SUBMITTED
fi
submit extract-probeset "$dep0" "${ext[@]}" "$here/extract.sbatch" --model "$CH_MODEL" \
  --input "$CH_PROBESET" --output "$out/archives/probeset.h5" "${xopt[@]}"
j_xprobe=$SUBMITTED
submit extract-pool "$dep0" "${ext[@]}" "$here/extract.sbatch" --model "$CH_MODEL" \
  --input "$CH_POOL" --output "$out/archives/pool.h5" "${xopt[@]}"
j_xpool=$SUBMITTED
submit extract-tasks "$dep0" "${ext[@]}" --array="0-$last" "$here/extract.sbatch" --list "$list" \
  --model "$CH_MODEL" --input "{path}" --output "$out/archives/tasks/{item}.h5" "${xopt[@]}"
j_xtasks=$SUBMITTED
[ -n "$CH_TOP_K" ] && popt+=(--top-k "$CH_TOP_K")
submit probe "afterok:$j_xprobe" "$here/probe.sbatch" --input "$out/archives/probeset.h5" \
  --output "$out/probes.h5" --heatmap "$out/heatmaps" "${popt[@]}"
j_probe=$SUBMITTED
submit decompose "afterok:$j_probe:$j_xtasks" --array="0-$last" "$here/decompose.sbatch" --list "$list" \
  --probes "$out/probes.h5" --input "$out/archives/tasks/{item}.h5" --output "$out/mix/{item}" "${dopt[@]}"
j_dec=$SUBMITTED
[ -n "$CH_FRACTION" ] && sopt+=(--fraction "$CH_FRACTION")
[ -n "$CH_METHOD" ] && sopt+=(--method "$CH_METHOD")
submit select "aftercorr:$j_dec,afterok:$j_xpool" --array="0-$last" "$here/select.sbatch" --list "$list" \
  --probes "$out/probes.h5" --mix "$out/mix/{item}" --input "$out/archives/pool.h5" \
  --pool "$CH_POOL" --output "$out/selected/{item}" "${sopt[@]}"
