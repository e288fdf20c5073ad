#!/usr/bin/env bash
# OpenBLAS's kernels match the CPU's features (kernels/cpu_features.h), through the real path:
# OpenBLAS reads OPENBLAS_CORETYPE in its load-time constructor, capheads' main compares the core
# it chose with CPUID and, when it fell short, runs itself once more with a better core.
#  - OPENBLAS_CORETYPE=Prescott with CAPHEADS_BLAS_FIX=off: extract's start line says Prescott
#    (what would run without the fix, as when OpenBLAS falls back on a CPU newer than its table);
#  - the same with CAPHEADS_BLAS_FIX=force (a generic core treated as OpenBLAS's fallback): the
#    start line names a core of the CPU's tier, "set by capheads, not Prescott" - on 1 and 2 ranks;
#  - with the default (auto) a user's OPENBLAS_CORETYPE is respected, with a warning;
#  - unset: never a generic core on a CPU with AVX2;
#  - the bf16 Linear's kernel is named too, and CAPHEADS_CPU_BF16 picks it.
# Needs an x86-64 CPU with AVX2 (exit 77 otherwise).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_blasfix_XXXXXX)
trap 'rm -rf "$T"' EXIT
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
case " $flags " in *" avx2 "*) ;; *) echo "SKIP: this CPU has no AVX2"; exit 77 ;; esac
generic='Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|Banias|Athlon|Opteron|Barcelona|Nano|Bobcat|Unknown|Sandybridge|Bulldozer|Piledriver|Steamroller'

ch_demo_model "$T/model"
printf '{"id":"a","text":"hello world"}\n{"id":"b","text":"two plus two is four"}\n' >"$T/c.jsonl"
unset OPENBLAS_CORETYPE CAPHEADS_BLAS_FIX CAPHEADS_BLAS_FIXED CAPHEADS_CPU_BF16 CAPHEADS_CPU_AMX
# start_line RANKS [VAR=value...]: extract's start line (and any warning) on stdout
start_line() {
  local r=$1; shift
  rm -f "$T/o.h5"
  env "$@" "$MPIEXEC" -n "$r" --oversubscribe "$CAPHEADS" extract --model "$T/model" --input "$T/c.jsonl" \
    --output "$T/o.h5" --device cpu 2>&1 | grep -E '^extract: [0-9]+ records|warning' || true
}
core_of() { sed -n 's/.*OpenBLAS \([A-Za-z0-9()]*\).*/\1/p' <<<"$1" | head -n1; }

echo "== without the fix: Prescott"
out=$(start_line 1 OPENBLAS_CORETYPE=Prescott CAPHEADS_BLAS_FIX=off); echo "$out"
[ "$(core_of "$out")" = Prescott ] || fail "CAPHEADS_BLAS_FIX=off: the core is not Prescott"

for r in 1 2; do
  echo "== CAPHEADS_BLAS_FIX=force, $r rank(s): corrected"
  out=$(start_line $r OPENBLAS_CORETYPE=Prescott CAPHEADS_BLAS_FIX=force); echo "$out"
  core=$(core_of "$out")
  [ -n "$core" ] || fail "no OpenBLAS core in the start line"
  grep -qiEx "$generic" <<<"$core" && fail "force: OpenBLAS still runs the generic core $core"
  grep -q "set by capheads, not Prescott" <<<"$out" || fail "force: the start line does not say what was corrected"
done

echo "== auto: the user's OPENBLAS_CORETYPE is respected, with a warning"
out=$(start_line 1 OPENBLAS_CORETYPE=Prescott); echo "$out"
[ "$(core_of "$out")" = Prescott ] || fail "auto changed a user-set OPENBLAS_CORETYPE"
grep -q "warning: OPENBLAS_CORETYPE=Prescott" <<<"$out" || fail "auto: no warning about a generic core"

echo "== unset: never a generic core"
out=$(start_line 1); echo "$out"
core=$(core_of "$out")
grep -qiEx "$generic" <<<"$core" && fail "OpenBLAS runs the generic core $core on a CPU with AVX2"
grep -q "set by capheads" <<<"$out" && echo "  (OpenBLAS's own choice was corrected on this CPU)"

echo "== the bf16 Linear's kernel, by CAPHEADS_CPU_BF16"
out=$(start_line 1 CAPHEADS_CPU_BF16=widen); echo "$out"
grep -q "bf16 Linear on OpenBLAS, widened: CAPHEADS_CPU_BF16=widen" <<<"$out" || fail "widen not named"
case " $flags " in
  *" avx512_bf16 "*)
    out=$(start_line 1 CAPHEADS_CPU_BF16=avx512bf16); echo "$out"
    grep -q "bf16 Linear on AVX512-BF16" <<<"$out" || fail "avx512bf16 not named" ;;
esac
echo "PASS"
