#!/usr/bin/env bash
# A stand-in for the capheads binary with the stages' command lines, for the Slurm tests: it checks
# that its inputs exist (so a stage started before its predecessor finished fails), records each
# call (stage, rank, ranks, argv, SLURM_RESTART_COUNT, CUDA_VISIBLE_DEVICES) in FAKE_LOG, and writes
# small text outputs.  `extract` handles one record per FAKE_DELAY seconds, appending "done ID"
# lines to its output as it goes, and with --resume skips the ids already there: enough to tell a
# resumed extraction from one started again.
set -euo pipefail
stage=$1; shift
rank=${SLURM_PROCID:-0}; nranks=${SLURM_NTASKS:-1}
log() { [ -n "${FAKE_LOG:-}" ] && echo "$stage rank=$rank/$nranks restart=${SLURM_RESTART_COUNT:-0} gpu=${CUDA_VISIBLE_DEVICES:-} $*" >>"$FAKE_LOG"; return 0; }
log "$*"
declare -A o=(); resume=0; pos=()
while [ $# -gt 0 ]; do
  case $1 in
    --resume) resume=1; shift ;;
    --*) o[${1#--}]=$2; shift 2 ;;
    *) pos+=("$1"); shift ;;
  esac
done
need() { local f; for f in "$@"; do [ -e "$f" ] || { echo "fake capheads $stage: missing input $f" >&2; exit 1; }; done; }
[ "$rank" -eq 0 ] || exit 0   # the outputs are written by rank 0
case $stage in
  version) echo "capheads fake" ;;
  prepare) need "${pos[@]:1}"; cat "${pos[@]:1}" >"${o[output]}" ;;
  extract)
    need "${o[model]}" "${o[input]}"
    if [ -e "${o[output]}" ] && [ $resume -eq 0 ]; then echo "fake extract: ${o[output]} exists (use --resume)" >&2; exit 1; fi
    touch "${o[output]}"
    n=0
    while IFS= read -r _; do
      n=$((n + 1))
      grep -qx "done $n" "${o[output]}" && continue
      sleep "${FAKE_DELAY:-0}"
      echo "done $n" >>"${o[output]}"
    done <"${o[input]}" ;;
  probe) need "${o[input]}"; echo "probes from ${o[input]}" >"${o[output]}" ;;
  decompose) need "${o[probes]}" "${o[input]}"; mkdir -p "${o[output]}"; echo "mix of ${o[input]}" >"${o[output]}/mix.csv" ;;
  select) need "${o[probes]}" "${o[mix]}/mix.csv" "${o[input]}" "${o[pool]}"; mkdir -p "${o[output]}"
          echo "selected ${o[fraction]} for ${o[mix]}" >"${o[output]}/selected.jsonl" ;;
  *) echo "fake capheads: unknown stage $stage" >&2; exit 2 ;;
esac
