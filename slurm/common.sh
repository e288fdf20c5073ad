# shellcheck shell=bash
# slurm/common.sh - sourced by every slurm/*.sbatch template: parameters, the srun launch, GPU
# binding, timing records.  Not a job script itself.
#
# Parameters.  A template declares its parameters with ch_params (names like batch_tokens); each one
# is read, in increasing priority, from the template's default, the environment (CH_BATCH_TOKENS) and
# the command line after the script name (`sbatch extract.sbatch --batch-tokens 4096`).  Arguments
# the template does not know are passed through to the capheads stage unchanged.  #SBATCH lines are
# overridden the Slurm way: options given to sbatch itself, or SBATCH_* environment variables.
#
# Array jobs.  With --list FILE (CH_LIST) and an array index, line SLURM_ARRAY_TASK_ID (0-based,
# '#' comments and blank lines skipped) of FILE is "ITEM [PATH]", and every parameter value has
# {item} and {path} replaced: `--input tasks/{path} --output mix/{item}` fans one stage out per line.
#
# Shared settings (environment): CAPHEADS (the binary; default build/capheads under the submit
# directory if it exists, else `capheads` on PATH), CH_MPI (srun --mpi= plugin, default pmix),
# CH_SRUN_ARGS (extra srun options), CH_GPU_BIND (localid|none, see bind.sh), CH_TIMING (append a
# timing record per run to this JSON-lines file, docs/timing.md), CH_STAGE_TIMING=1 (the stage also
# gets --timing CH_TIMING and writes its own, more detailed record).

CH_SLURM_DIR=${CH_SLURM_DIR:-${SLURM_SUBMIT_DIR:-.}/slurm}
if [ -z "${CAPHEADS:-}" ]; then
  if [ -x "${SLURM_SUBMIT_DIR:-.}/build/capheads" ]; then CAPHEADS=${SLURM_SUBMIT_DIR:-.}/build/capheads
  else CAPHEADS=capheads; fi
fi
CH_MPI=${CH_MPI:-pmix}
CH_EXTRA=()

ch_log() { echo "[$(date -u +%FT%TZ) job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+[$SLURM_ARRAY_TASK_ID]}] $*" >&2; }
ch_die() { ch_log "error: $*"; exit 2; }

# ch_params "name=default name2=default2 ..." "$@"  -> sets CH_NAME for each, CH_EXTRA for the rest
ch_params() {
  local spec=$1 kv name def var opt
  shift
  for kv in $spec; do
    name=${kv%%=*}; def=${kv#*=}; [ "$kv" = "$name" ] && def=""
    var=CH_$(echo "$name" | tr '[:lower:]' '[:upper:]')
    [ -n "${!var+x}" ] || printf -v "$var" '%s' "$def"
  done
  while [ $# -gt 0 ]; do
    opt=${1#--}; opt=${opt//-/_}
    if [ "${1:0:2}" = "--" ] && [[ " $spec list " =~ [[:space:]]${opt}(=[^[:space:]]*)?[[:space:]] ]]; then
      [ $# -ge 2 ] || ch_die "option $1 needs a value"
      var=CH_$(echo "$opt" | tr '[:lower:]' '[:upper:]')
      printf -v "$var" '%s' "$2"
      shift 2
    else
      CH_EXTRA+=("$1"); shift
    fi
  done
  ch_array_item "$spec"
}

# resolve {item}/{path} from line SLURM_ARRAY_TASK_ID of CH_LIST (see the header)
ch_array_item() {
  [ -n "${CH_LIST:-}" ] || return 0
  [ -n "${SLURM_ARRAY_TASK_ID:-}" ] || ch_die "--list $CH_LIST given but this is not an array job (sbatch --array)"
  [ -r "$CH_LIST" ] || ch_die "cannot read list $CH_LIST"
  local line kv var val
  line=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$CH_LIST" | sed -n "$((SLURM_ARRAY_TASK_ID + 1))p")
  [ -n "$line" ] || ch_die "$CH_LIST has no line for array index $SLURM_ARRAY_TASK_ID"
  read -r CH_ITEM CH_PATH <<<"$line"
  CH_PATH=${CH_PATH:-$CH_ITEM}
  for kv in $1; do
    var=CH_$(echo "${kv%%=*}" | tr '[:lower:]' '[:upper:]')
    val=${!var}; val=${val//\{item\}/$CH_ITEM}; val=${val//\{path\}/$CH_PATH}
    printf -v "$var" '%s' "$val"
  done
  ch_log "array item $SLURM_ARRAY_TASK_ID: $CH_ITEM ($CH_PATH)"
}

ch_need() { local v; for v in "$@"; do [ -n "${!v:-}" ] || ch_die "missing --$(echo "${v#CH_}" | tr '[:upper:]_' '[:lower:]-') (or $v)"; done; }

# JSON string (stdlib-free: the values here are paths and names)
ch_json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# ch_timing_record STAGE SECONDS RC [RECORDS]  -> one JSON line appended to CH_TIMING (docs/timing.md)
ch_timing_record() {
  [ -n "${CH_TIMING:-}" ] || return 0
  local records=${4:-null}
  mkdir -p "$(dirname "$CH_TIMING")"
  printf '{"stage":%s,"ranks":%d,"nodes":%d,"records":%s,"tokens":null,"seconds":%s,"io_seconds":null,"source":"sbatch","job":%s,"label":%s,"rc":%d}\n' \
    "$(ch_json_str "$1")" "${SLURM_NTASKS:-1}" "${SLURM_JOB_NUM_NODES:-1}" "$records" "$2" \
    "$(ch_json_str "${SLURM_JOB_ID:-}${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID}")" \
    "$(ch_json_str "${CH_LABEL:-}")" "$3" >>"$CH_TIMING"
}

# ch_run STAGE ARGS...: srun the stage over the allocation, in the background so that a signal
# (--signal=B:USR1, see extract.sbatch) reaches the batch shell's trap while the ranks run.
ch_run() {
  local stage=$1 t0 t1 rc
  shift
  local cmd=(srun --mpi="$CH_MPI" --kill-on-bad-exit=1)
  # shellcheck disable=SC2206  # CH_SRUN_ARGS is a word list by design
  [ -n "${CH_SRUN_ARGS:-}" ] && cmd+=($CH_SRUN_ARGS)
  cmd+=(bash "$CH_SLURM_DIR/bind.sh" "$CAPHEADS" "$stage" "$@" "${CH_EXTRA[@]}")
  if [ "${CH_STAGE_TIMING:-0}" = 1 ] && [ -n "${CH_TIMING:-}" ]; then  # every stage has --timing
    mkdir -p "$(dirname "$CH_TIMING")"; cmd+=(--timing "$CH_TIMING")
  fi
  ch_log "${SLURM_NTASKS:-1} ranks on ${SLURM_JOB_NUM_NODES:-1} nodes: ${cmd[*]}"
  t0=$(date +%s.%N)
  "${cmd[@]}" </dev/null &   # srun would forward our stdin to rank 0 (and eat a caller's loop input)
  CH_SRUN_PID=$!
  wait "$CH_SRUN_PID"; rc=$?
  # a trapped signal interrupts `wait` (rc > 128) while srun still runs: wait for it properly
  while [ $rc -gt 128 ] && kill -0 "$CH_SRUN_PID" 2>/dev/null; do wait "$CH_SRUN_PID"; rc=$?; done
  t1=$(date +%s.%N)
  ch_timing_record "$stage" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" "$rc" "${CH_RECORDS:-}"
  ch_log "$stage exited with $rc"
  return $rc
}
