# tests/lib.sh - shared set-up of the shell tests (sourced). Needs CAPHEADS and CH_SRC.
set -euo pipefail
: "${CAPHEADS:?}" "${CH_SRC:?}"
MPIEXEC=${MPIEXEC:-mpirun}
export SOURCE_DATE_EPOCH=1700000000 # pins the archives' `created`: runs compare byte for byte
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { "$MPIEXEC" -n "$1" --oversubscribe "$CAPHEADS" "${@:2}"; }
# ch_demo_model DIR: the demo model as Hugging Face ships it (weights, config, real tokenizer)
ch_demo_model() {
  mkdir -p "$1"
  cp "$CH_SRC/data/demo/model/config.json" "$CH_SRC/data/demo/model/model.safetensors" "$1/"
  gzip -dc "$CH_SRC/tests/data/tokenizers/llama3_1/tokenizer.json.gz" >"$1/tokenizer.json"
}
# expect_fail NAME PATTERN cmd...: the command must exit non-zero with PATTERN in its output
expect_fail() {
  local name=$1 pat=$2; shift 2
  set +e; "$@" >"$T/out.txt" 2>&1; local rc=$?; set -e
  [ $rc -ne 0 ] || fail "$name: exit 0"
  grep -aq -- "$pat" "$T/out.txt" || { cat "$T/out.txt"; fail "$name: message lacks '$pat'"; }
  echo "  $name: exit $rc: $(grep -a -m1 -- "$pat" "$T/out.txt")"
}
