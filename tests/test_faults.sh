#!/usr/bin/env bash
# Data safety under attack (docs/faults.md has the table of cases and outcomes). Each case ends
# with a clear error and the documented exit code, or with outputs equal to an uninterrupted
# run's - never with a destroyed input or a file that claims to be complete and is not.
#  - records: longer than the model's window, duplicate ids (both lines named)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_faults_XXXXXX)
trap 'rm -rf "$T"' EXIT
M=$T/model
ch_demo_model "$M"
CAPHEADS=$CAPHEADS bash "$CH_SRC/scripts/make-demo-data.sh" "$T/data" >/dev/null
D=$T/data
head -n 30 "$D/probeset.jsonl" >"$T/corpus.jsonl"
X=(extract --model "$M" --device cpu --batch-tokens 700)
# expect_code NAME CODE PATTERN cmd...: exit status CODE and PATTERN in the output
expect_code() {
  local name=$1 code=$2 pat=$3; shift 3
  set +e; "$@" >"$T/out.txt" 2>&1; local rc=$?; set -e
  [ $rc -eq "$code" ] || { cat "$T/out.txt"; fail "$name: exit $rc, expected $code"; }
  grep -aq -- "$pat" "$T/out.txt" || { cat "$T/out.txt"; fail "$name: message lacks '$pat'"; }
  echo "  $name: exit $rc: $(grep -a -m1 -- "$pat" "$T/out.txt" | cut -c1-160)"
}

echo "== records the model cannot take"
mkdir -p "$T/small"
cp "$M"/* "$T/small/"
sed -i 's/"max_position_embeddings": *[0-9]*/"max_position_embeddings": 64/' "$T/small/config.json"
long=$(awk 'length($0) > 900 {print NR; exit}' "$D/probeset.jsonl")
sed -n "${long}p" "$D/probeset.jsonl" >"$T/long.jsonl"
for r in 1 2; do
  expect_code "record over the window ($r ranks)" 3 "more than the model's window (max_position_embeddings 64" \
    run $r extract --model "$T/small" --device cpu --input "$T/long.jsonl" --output "$T/long.h5"
  [ ! -e "$T/long.h5" ] || fail "a refused run left $T/long.h5"
done
expect_code "record over --max-tokens" 3 "more than --max-tokens 20" \
  "$CAPHEADS" "${X[@]}" --input "$T/long.jsonl" --output "$T/long.h5" --max-tokens 20
{ head -n 12 "$T/corpus.jsonl"; sed -n 3p "$T/corpus.jsonl"; tail -n +13 "$T/corpus.jsonl"; } >"$T/dup.jsonl"
dupid=$(sed -n 3p "$T/corpus.jsonl" | sed 's/^{"id":"\([^"]*\)".*/\1/')
for r in 1 2 3; do
  expect_code "duplicate id ($r ranks)" 3 "dup.jsonl:13: duplicate id '$dupid' (first at line 3)" \
    run $r "${X[@]}" --input "$T/dup.jsonl" --output "$T/dup.h5"
done
echo "faults: all cases ended as documented"
