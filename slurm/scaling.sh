#!/usr/bin/env bash
# slurm/scaling.sh - a scaling study of one stage: one Slurm job per rank count, run one after the
# other (so runs do not share the nodes), each appending its timing records (docs/timing.md) to
# OUT/timing/<label>.jsonl: the template's wrapper record and the stage's own (--timing, every
# stage has it); then the table and plot of slurm/scaling_report.py.
#
# usage: slurm/scaling.sh --stage extract --ranks "1 2 4 8" [--nodes "1 1 1 2"] [--mode strong|weak]
#          [--repeat R] [--out DIR] [--sbatch-args "..."] [--no-wait] -- TEMPLATE-ARGS...
#   TEMPLATE-ARGS go to slurm/<stage>.sbatch with {ranks}, {nodes}, {label} replaced per run; give
#   every run its own output (e.g. --output OUT/runs/{label}.h5); for weak scaling make the input
#   grow with the ranks (e.g. --input corpus-{ranks}x.jsonl).
#   --nodes: nodes per run, one per rank count (default 1 each); ranks are spread evenly over them.
#   --repeat R: R runs per rank count (median reported; default 1).
# Writes OUT/scaling.txt (the table, also printed) and OUT/scaling.svg.  Example (4 GPUs per node):
#   slurm/scaling.sh --stage extract --ranks "4 8 16" --nodes "1 2 4" --out scal \
#     --sbatch-args "--gpus-per-node=4" -- --model llama --input c.jsonl --output scal/{label}.h5
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CH_SLURM_DIR=$here
stage="" ranks="" nodes="" mode=strong repeat=1 out=scaling sbargs="" wait=1
while [ $# -gt 0 ]; do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --sbatch-args) sbargs=$2; shift 2 ;;
    --no-wait) wait=0; shift ;;
    --) shift; break ;;
    *) echo "scaling.sh: unknown option $1 (template arguments go after --)" >&2; exit 2 ;;
  esac
done
[ -n "$stage" ] && [ -n "$ranks" ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ -r "$here/$stage.sbatch" ] || { echo "scaling.sh: no template $here/$stage.sbatch" >&2; exit 2; }
case $mode in strong|weak) ;; *) echo "scaling.sh: --mode strong|weak" >&2; exit 2 ;; esac
case " $* " in *"{label}"*) ;; *) echo "scaling.sh: warning: no {label} in the template arguments: runs share their output" >&2 ;; esac
read -ra R <<<"$ranks"
read -ra N <<<"${nodes:-}"
mkdir -p "$out"/{timing,logs}
out=$(cd "$out" && pwd)
rm -f "$out"/timing/*.jsonl

prev="" ids=()
for i in "${!R[@]}"; do
  n=${R[$i]} m=${N[$i]:-1}
  per=$(((n + m - 1) / m))
  for rep in $(seq 1 "$repeat"); do
    label=$mode-r$n-n$m-$rep
    args=()
    for a in "$@"; do a=${a//\{ranks\}/$n}; a=${a//\{nodes\}/$m}; args+=("${a//\{label\}/$label}"); done
    cmd=(sbatch --parsable --export=ALL --job-name="ch-scal-$label" -o "$out/logs/$label.out"
         --nodes="$m" --ntasks="$n" --ntasks-per-node="$per")
    # shellcheck disable=SC2206
    [ -n "$sbargs" ] && cmd+=($sbargs)
    [ -n "$prev" ] && cmd+=(--dependency="afterany:$prev")   # one run at a time
    cmd+=("$here/$stage.sbatch" "${args[@]}")
    prev=$(CH_TIMING=$out/timing/$label.jsonl CH_LABEL=$label CH_STAGE_TIMING=1 "${cmd[@]}")
    prev=${prev%%;*}
    ids+=("$prev")
    echo "$label job $prev" >&2
  done
done
[ $wait -eq 1 ] || exit 0
while squeue -h -j "$(IFS=,; echo "${ids[*]}")" 2>/dev/null | grep -q .; do sleep 2; done
/usr/bin/python3 "$here/scaling_report.py" --mode "$mode" --stage "$stage" --svg "$out/scaling.svg" \
  "$out"/timing/*.jsonl | tee "$out/scaling.txt"
echo "plot: $out/scaling.svg" >&2
